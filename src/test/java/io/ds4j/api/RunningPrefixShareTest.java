package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.Ds4jApplication;
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
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import tools.jackson.databind.JsonNode;

/**
 * A prefix held by a running sequence (tiny-a fixture): request B shares a
 * 150-token prefix with request A and joins while A is still decoding, so no
 * idle session holds that prefix; B's session gets A's state at the end of
 * the shared part by ds4j_session_copy (A's checkpoint before its prompt's
 * last token) and evaluates only its own suffix: cached_tokens = 150, the
 * copy is counted (ds4j.prefix.cache.copies / .copied.tokens, and as a
 * prefix-cache hit), and both answers are the greedy answers of the same
 * requests run alone on a fresh server without prefix cache.
 */
class RunningPrefixShareTest {
    static final int[] SHARED = IntStream.range(0, 150).map(k -> (k * 11 + 300) % 512).toArray();
    static final int[] A = concat(SHARED, 7);
    static final int[] B = concat(SHARED, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49);

    static int[] concat(int[] a, int... b) {
        return IntStream.concat(IntStream.of(a), IntStream.of(b)).toArray();
    }

    static String body(int[] prompt, int maxTokens) {
        return "{\"prompt\":[" + IntStream.of(prompt).mapToObj(Integer::toString).reduce((x, y) -> x + "," + y).orElse("")
                + "],\"temperature\":0,\"max_tokens\":" + maxTokens + ",\"return_tokens\":true}";
    }

    static ConfigurableApplicationContext start(String cacheSessions) {
        return new SpringApplicationBuilder(Ds4jApplication.class).web(WebApplicationType.REACTIVE).logStartupInfo(false)
                .run("--server.port=0", "--server.address=127.0.0.1",
                        "--ds4.engine.library=" + TestModels.library(),
                        "--ds4.model.path=" + TestModels.tinyA(),
                        "--ds4.engine.context-size=512", "--ds4.engine.prefill-chunk=8", "--ds4.engine.threads=2",
                        "--ds4.scheduler.max-concurrent=2", "--ds4.scheduler.cache-sessions=" + cacheSessions,
                        "--ds4.server.shutdown-drain=1s");
    }

    static int port(ConfigurableApplicationContext ctx) {
        return Integer.parseInt(ctx.getEnvironment().getProperty("local.server.port"));
    }

    static JsonNode answer(CompletableFuture<HttpResponse<String>> f) throws Exception {
        HttpResponse<String> r = f.get(120, TimeUnit.SECONDS);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return Params.JSON.readTree(r.body());
    }

    static List<Integer> tokens(JsonNode r) {
        List<Integer> t = new ArrayList<>();
        r.get("choices").get(0).get("tokens").forEach(n -> t.add(n.intValue()));
        return t;
    }

    static int cached(JsonNode r) {
        return r.get("usage").get("prompt_tokens_details").get("cached_tokens").intValue();
    }

    static double count(ConfigurableApplicationContext ctx, String name) {
        var m = ctx.getBean(MeterRegistry.class).find(name).meter();
        return m == null ? -1 : m.measure().iterator().next().getValue();
    }

    /**
     * Holds the engine thread between two steps at a moment when A alone runs and has sampled at least two
     * tokens (it is decoding); the returned latch lets it go.
     */
    /** Holds the engine thread once request A alone decodes (its prompt in, two tokens sampled). */
    static CountDownLatch holdWhileDecoding(ConfigurableApplicationContext ctx) throws Exception {
        RequestScheduler scheduler = ctx.getBean(RequestScheduler.class);
        return EngineThreadHold.when(ctx, () -> scheduler.active() == 1 && count(ctx, "ds4j.tokens.sampled") >= 2);
    }

    @Test
    void aRequestJoiningWhileAnotherDecodesCopiesTheSharedPrefixAndAnswersAsAlone() throws Exception {
        JsonNode aloneA;
        JsonNode aloneB;
        try (var fresh = start("0")) { // no prefix cache: each request from an empty session
            aloneA = answer(Http.postAsync(port(fresh), "/v1/completions", body(A, 120)));
            aloneB = answer(Http.postAsync(port(fresh), "/v1/completions", body(B, 20)));
            assertThat(cached(aloneA)).isZero();
            assertThat(cached(aloneB)).isZero();
        }
        assertThat(tokens(aloneA)).as("A decodes long enough for B to join meanwhile").hasSize(120);

        try (var ctx = start("2")) {
            int port = port(ctx);
            var a = Http.postAsync(port, "/v1/completions", body(A, 120));
            CountDownLatch release = holdWhileDecoding(ctx);
            CompletableFuture<HttpResponse<String>> b;
            try {
                b = Http.postAsync(port, "/v1/completions", body(B, 20));
                RequestScheduler scheduler = ctx.getBean(RequestScheduler.class);
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (scheduler.queueDepth() < 1 && System.nanoTime() < until) Thread.sleep(2);
                assertThat(scheduler.queueDepth()).as("B admitted while A is held mid-decode").isEqualTo(1);
            } finally {
                release.countDown();
            }
            JsonNode shared = answer(b);
            JsonNode first = answer(a);
            assertThat(cached(shared)).as("the whole shared prefix, from A's checkpoint before its last prompt token")
                    .isEqualTo(SHARED.length);
            assertThat(tokens(shared)).as("B as alone").isEqualTo(tokens(aloneB));
            assertThat(tokens(first)).as("A, the source, as alone").isEqualTo(tokens(aloneA));
            assertThat(cached(first)).isZero();
            assertThat(count(ctx, "ds4j.prefix.cache.copies")).isEqualTo(1);
            assertThat(count(ctx, "ds4j.prefix.cache.copied.tokens")).isEqualTo(SHARED.length);
            assertThat(count(ctx, "ds4j.prefix.cache.lookups")).isEqualTo(2);
            assertThat(count(ctx, "ds4j.prefix.cache.hits")).isEqualTo(1);
        }
    }
}
