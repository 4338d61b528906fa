package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.engine.EngineService;
import io.ds4j.scheduler.RequestScheduler;
import io.micrometer.core.instrument.MeterRegistry;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.test.web.reactive.server.WebTestClient;
import tools.jackson.databind.JsonNode;

/**
 * Continuous batching on the real engine (tiny-a fixture): a request gives
 * the same tokens alone and inside a batch. The batch is formed for certain by
 * holding the engine thread until every request is admitted, so they all join
 * the same step; a small step budget (24 rows, 8-token chunks) makes their
 * prefills interleave with the others' decoding. No prefix cache here
 * (cache-sessions=0): every request starts from an empty session, alone or not.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=256",
        "ds4.engine.prefill-chunk=8",
        "ds4.engine.threads=2",
        "ds4.scheduler.max-concurrent=32",
        "ds4.scheduler.step-tokens=24",
        "ds4.scheduler.cache-sessions=0",
        "ds4.scheduler.sampling-threads=4",
        "ds4.server.queue-limit=8",
        "ds4.server.shutdown-drain=1s"})
@AutoConfigureWebTestClient(timeout = "60s")
class ContinuousBatchingTest {
    @Autowired
    WebTestClient web;
    @LocalServerPort
    int port;
    @Autowired
    EngineService engine;
    @Autowired
    RequestScheduler scheduler;
    @Autowired
    MeterRegistry registry;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.tinyA().toString());
    }

    static String ids(int[] a) {
        return IntStream.of(a).mapToObj(Integer::toString).reduce((x, y) -> x + "," + y).orElse("");
    }

    JsonNode alone(String body) {
        String s = web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
        return Params.JSON.readTree(s);
    }

    /** Holds the engine thread until all bodies are admitted, so they join the batch together; then collects them. */
    List<JsonNode> together(List<String> bodies) throws Exception {
        CountDownLatch hold = new CountDownLatch(1);
        CountDownLatch held = new CountDownLatch(1);
        engine.executor().execute(() -> {
            held.countDown();
            try {
                hold.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        List<CompletableFuture<HttpResponse<String>>> fs = new ArrayList<>();
        try {
            assertThat(held.await(10, TimeUnit.SECONDS)).isTrue();
            for (String b : bodies) fs.add(Http.postAsync(port, "/v1/completions", b));
            long deadline = System.currentTimeMillis() + 20_000;
            while (scheduler.queueDepth() < bodies.size() && System.currentTimeMillis() < deadline) Thread.sleep(5);
            assertThat(scheduler.queueDepth()).as("all admitted before the first step").isEqualTo(bodies.size());
        } finally {
            hold.countDown();
        }
        List<JsonNode> out = new ArrayList<>();
        for (var f : fs) {
            HttpResponse<String> r = f.get(120, TimeUnit.SECONDS);
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            out.add(Params.JSON.readTree(r.body()));
        }
        return out;
    }

    static List<Integer> tokens(JsonNode r) {
        List<Integer> t = new ArrayList<>();
        r.get("choices").get(0).get("tokens").forEach(n -> t.add(n.intValue()));
        return t;
    }

    double maxBatch() {
        return registry.find("ds4j.batch.sequences").summary().max();
    }

    @Test
    void greedyOutputsOfSixteenConcurrentRequestsEqualEachRunAlone() throws Exception {
        List<String> bodies = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            int len = 3 + 2 * i; // 3 .. 33 tokens: several prefill chunks for the longer ones
            int seed = i;
            int[] prompt = IntStream.range(0, len).map(k -> (seed * 37 + k * 13 + 5) % 512).toArray();
            bodies.add("{\"prompt\":[" + ids(prompt) + "],\"temperature\":0,\"max_tokens\":6,\"return_tokens\":true}");
        }
        List<List<Integer>> alone = new ArrayList<>();
        for (String b : bodies) alone.add(tokens(alone(b)));
        List<JsonNode> batch = together(bodies);
        for (int i = 0; i < bodies.size(); i++) {
            assertThat(tokens(batch.get(i))).as("request %d in the batch", i).isEqualTo(alone.get(i));
            assertThat(batch.get(i).get("usage").get("completion_tokens").intValue()).isEqualTo(6);
        }
        assertThat(maxBatch()).as("sequences in one step").isGreaterThanOrEqualTo(2);
    }

    @Test
    void seededSampledRequestGivesTheSameTokensAloneAndAmongThirtyOneOthers() throws Exception {
        String x = "{\"prompt\":[11,22,33,44,55,66,77,88,99,110,121],\"temperature\":0.9,\"top_k\":40,\"top_p\":0.95,"
                + "\"seed\":1234,\"presence_penalty\":0.5,\"frequency_penalty\":0.3,\"logit_bias\":{\"7\":4,\"9\":-100},"
                + "\"max_tokens\":12,\"logprobs\":2,\"return_tokens\":true}";
        JsonNode a = alone(x);
        List<String> bodies = new ArrayList<>();
        for (int j = 0; j < 31; j++) {
            int i = j;
            int[] prompt = IntStream.range(0, 4 + i % 9).map(k -> (i * 53 + k * 7 + 1) % 512).toArray();
            String sampling = i % 3 == 0 ? "\"temperature\":0" : "\"temperature\":1.0,\"seed\":" + (1000 + i);
            bodies.add("{\"prompt\":[" + ids(prompt) + "]," + sampling + ",\"max_tokens\":" + (1 + i % 12)
                    + ",\"return_tokens\":true}");
        }
        bodies.add(13, x);
        List<JsonNode> batch = together(bodies);
        JsonNode b = batch.get(13);
        // the step's draws ran on several threads (each sequence's own sampler and seed)
        assertThat(scheduler.samplingThreads()).isEqualTo(4);
        assertThat(tokens(b)).isEqualTo(tokens(a));
        for (int k : new int[] {1, 2, 4, 5, 7}) { // seeded temperature-1 neighbours: alone = in the batch too
            assertThat(tokens(batch.get(k))).as("request %d", k).isEqualTo(tokens(alone(bodies.get(k))));
        }
        assertThat(tokens(a)).doesNotContain(9); // the -100 bias bans it
        // per-session sampling over per-session logits: the log-probabilities are bit-identical too
        assertThat(b.get("choices").get(0).get("logprobs").get("token_logprobs"))
                .isEqualTo(a.get("choices").get(0).get("logprobs").get("token_logprobs"));
        assertThat(b.get("choices").get(0).get("text").stringValue()).isEqualTo(a.get("choices").get(0).get("text").stringValue());
        assertThat(maxBatch()).isGreaterThanOrEqualTo(2);
    }
}
