package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.engine.EngineService;
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
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;
import tools.jackson.databind.JsonNode;

/**
 * The prefix cache across requests (tiny-a fixture, up to 3 sessions): a new
 * request reuses the longest prefix it shares with any idle session, whichever
 * one holds it, and generates what it would from scratch. cached_tokens is
 * what the engine restores without evaluating: the shared prefix (70 tokens
 * here) down to its checkpoint (every 64 positions), the whole prompt for an
 * exact repeat — as for a request running alone.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=256",
        "ds4.engine.prefill-chunk=8",
        "ds4.engine.threads=2",
        "ds4.scheduler.max-concurrent=3",
        "ds4.server.shutdown-drain=1s"})
@AutoConfigureWebTestClient(timeout = "60s")
class PrefixCacheTest {
    @Autowired
    WebTestClient web;
    @LocalServerPort
    int port;
    @Autowired
    EngineService engine;
    @Autowired
    MeterRegistry registry;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.tinyA().toString());
    }

    static int[] concat(int[] a, int... b) {
        return IntStream.concat(IntStream.of(a), IntStream.of(b)).toArray();
    }

    static String body(int[] prompt) {
        return "{\"prompt\":[" + IntStream.of(prompt).mapToObj(Integer::toString).reduce((x, y) -> x + "," + y).orElse("")
                + "],\"temperature\":0,\"max_tokens\":5,\"return_tokens\":true}";
    }

    JsonNode post(int[] prompt) {
        String s = web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON).bodyValue(body(prompt))
                .exchange().expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
        return Params.JSON.readTree(s);
    }

    static int cached(JsonNode r) {
        return r.get("usage").get("prompt_tokens_details").get("cached_tokens").intValue();
    }

    static List<Integer> tokens(JsonNode r) {
        List<Integer> t = new ArrayList<>();
        r.get("choices").get(0).get("tokens").forEach(n -> t.add(n.intValue()));
        return t;
    }

    double count(String name) {
        return registry.find(name).counter().count();
    }

    @Test
    void aSharedPrefixIsReusedFromWhicheverIdleSessionHoldsIt() throws Exception {
        int[] s = IntStream.range(0, 70).map(k -> (k * 11 + 300) % 512).toArray();
        int[] t = IntStream.range(0, 70).map(k -> (k * 17 + 100) % 512).toArray();
        int[] c = concat(t, 7, 8);
        JsonNode fresh = post(c);
        assertThat(cached(fresh)).isZero();
        double lookups = count("ds4j.prefix.cache.lookups");
        double hits = count("ds4j.prefix.cache.hits");

        // two prompts run together, in two sessions: S + ... and T + ... (the latter reuses C's T)
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
            fs.add(Http.postAsync(port, "/v1/completions", body(concat(s, 1, 2, 3))));
            fs.add(Http.postAsync(port, "/v1/completions", body(concat(t, 4, 5, 6))));
            Thread.sleep(300);
        } finally {
            hold.countDown();
        }
        JsonNode a = Params.JSON.readTree(fs.get(0).get(60, TimeUnit.SECONDS).body());
        JsonNode b = Params.JSON.readTree(fs.get(1).get(60, TimeUnit.SECONDS).body());
        assertThat(cached(a)).isZero();
        assertThat(cached(b)).as("T from C's session").isEqualTo(64);

        // each later request finds its prefix in the session that holds it
        JsonNode again = post(c);
        // (B's own reuse left a checkpoint at the end of the shared prefix, so this one may restore all 70)
        assertThat(cached(again)).as("T again, from B's session").isBetween(64, 70);
        assertThat(tokens(again)).as("same tokens as from scratch").isEqualTo(tokens(fresh));
        JsonNode d = post(concat(s, 9));
        assertThat(cached(d)).as("S from A's session").isEqualTo(64);
        // an exact repeat of a prompt reports the whole prompt
        JsonNode repeat = post(concat(s, 9));
        assertThat(cached(repeat)).isEqualTo(71);
        assertThat(tokens(repeat)).isEqualTo(tokens(d));

        assertThat(count("ds4j.prefix.cache.lookups") - lookups).isEqualTo(5);
        assertThat(count("ds4j.prefix.cache.hits") - hits).isEqualTo(4);
        assertThat(engine.call(() -> engine.sessions().size())).isLessThanOrEqualTo(3);
    }
}
