package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.scheduler.RequestScheduler;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import tools.jackson.databind.JsonNode;

/**
 * 64 streaming chat clients at once against the demo model with the default
 * scheduler configuration: every one is served (none gets 429), every stream
 * is well formed (a role chunk, content chunks of the same id, one finish
 * reason, a usage chunk, [DONE]).
 */
class ConcurrentStreamsTest extends DemoModelServerTest {
    @Autowired
    RequestScheduler scheduler;
    @Autowired
    io.micrometer.core.instrument.MeterRegistry registry;

    @Test
    void sixtyFourConcurrentStreamingClientsAllCompleteWithWellFormedStreams() throws Exception {
        assertThat(scheduler.maxConcurrent() + scheduler.queueLimit()).as("default capacity").isGreaterThanOrEqualTo(64);
        List<String> bodies = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            bodies.add("{\"messages\":[{\"role\":\"user\",\"content\":\"Client " + i + " says hello.\"}],"
                    + "\"max_tokens\":4,\"temperature\":0,\"thinking\":false,\"stream\":true,"
                    + "\"stream_options\":{\"include_usage\":true}}");
        }
        List<HttpResponse<String>> rs = Http.postAll(port, "/v1/chat/completions", bodies);
        for (int i = 0; i < rs.size(); i++) {
            HttpResponse<String> r = rs.get(i);
            assertThat(r.statusCode()).as("client %d: %s", i, r.body()).isEqualTo(200);
            assertThat(r.headers().firstValue("Content-Type").orElse("")).startsWith("text/event-stream");
            String body = r.body();
            assertThat(body).as("client %d", i).endsWith("data: [DONE]\n\n");
            List<String> events = List.of(body.substring(0, body.length() - 2).split("\n\n", -1));
            String id = null;
            int finishes = 0;
            int completion = -1;
            for (String e : events.subList(0, events.size() - 1)) {
                if (e.startsWith(":")) continue; // keep-alive comment
                assertThat(e).as("client %d event", i).startsWith("data: ");
                JsonNode c = Params.JSON.readTree(e.substring(6));
                assertThat(c.has("error")).as("client %d: %s", i, e).isFalse();
                if (id == null) id = c.get("id").stringValue();
                assertThat(c.get("id").stringValue()).isEqualTo(id);
                if (c.get("choices").isEmpty()) {
                    completion = c.get("usage").get("completion_tokens").intValue();
                } else if (!c.get("choices").get(0).get("finish_reason").isNull()) {
                    finishes++;
                }
            }
            assertThat(events.getFirst()).contains("\"role\":\"assistant\"");
            assertThat(finishes).as("client %d finish chunks", i).isEqualTo(1);
            assertThat(completion).as("client %d usage", i).isBetween(1, 4);
        }
        assertThat(registry.find("ds4j.batch.sequences").summary().max()).as("sequences in one step").isGreaterThan(1);
        String prom = web.get().uri("/actuator/prometheus").exchange().expectStatus().isOk().expectBody(String.class)
                .returnResult().getResponseBody();
        System.out.println(prom.lines().filter(l -> l.startsWith("ds4j_batch") || l.startsWith("ds4j_prefix")
                || l.startsWith("ds4j_queue_wait") || l.startsWith("ds4j_tokens_sampled") || l.startsWith("ds4j_scheduler")
                || l.startsWith("ds4j_requests_active")).filter(l -> !l.contains("_bucket")).toList());
        assertThat(prom).contains("ds4j_batch_sequences_count", "ds4j_batch_rows_tokens_count", "ds4j_queue_wait_seconds_count",
                "ds4j_tokens_sampled_tokens_total", "ds4j_prefix_cache_lookups_total", "ds4j_prefix_cache_hits_total",
                "ds4j_requests_active", "ds4j_scheduler_max_concurrent");
    }
}
