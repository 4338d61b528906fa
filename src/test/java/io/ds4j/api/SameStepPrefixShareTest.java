package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.Ds4jApplication;
import io.ds4j.scheduler.RequestScheduler;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.http.MediaType;
import org.springframework.web.reactive.function.client.WebClient;
import reactor.core.Disposable;
import tools.jackson.databind.JsonNode;

/**
 * Requests that arrive together share their common prefix (tiny-a fixture, prefill chunks of 8): six
 * requests with the same 150-token prefix and different suffixes join in one step; the first evaluates the
 * prefix, the others park (no session, no rows) until its state covers the shared part, then copy it
 * (ds4j_session_copy) and evaluate only the rest. Every answer is the greedy answer of the same request run
 * alone on a fresh server without prefix cache. A leader cancelled while others are parked leaves them to
 * evaluate the prefix themselves (once: the first of them leads the rest), and a parked request whose
 * client goes away frees its place at once, while the engine thread is busy.
 */
class SameStepPrefixShareTest {
    static final int[] SHARED = IntStream.range(0, 150).map(k -> (k * 13 + 7) % 512).toArray();
    /** the largest engine checkpoint (every 64 positions) within the shared part: the least a copy takes */
    static final int CHECKPOINT = SHARED.length / 64 * 64;
    static final int N = 6;
    static final int MAX_TOKENS = 8;
    static final Map<Integer, List<Integer>> ALONE = new HashMap<>();

    static int[] prompt(int i) {
        return IntStream.concat(IntStream.of(SHARED), IntStream.range(0, 3 + i).map(k -> 20 + 31 * i + k)).toArray();
    }

    static String body(int[] prompt, boolean stream) {
        return "{\"prompt\":[" + IntStream.of(prompt).mapToObj(Integer::toString).reduce((x, y) -> x + "," + y).orElse("")
                + "],\"temperature\":0,\"max_tokens\":" + MAX_TOKENS + ",\"return_tokens\":true,\"stream\":" + stream + "}";
    }

    static ConfigurableApplicationContext start(int maxConcurrent, int queueLimit, String cacheSessions, boolean park) {
        return new SpringApplicationBuilder(Ds4jApplication.class).web(WebApplicationType.REACTIVE).logStartupInfo(false)
                .run("--server.port=0", "--server.address=127.0.0.1",
                        "--ds4.engine.library=" + TestModels.library(),
                        "--ds4.model.path=" + TestModels.tinyA(),
                        "--ds4.engine.context-size=512", "--ds4.engine.prefill-chunk=8", "--ds4.engine.threads=2",
                        "--ds4.scheduler.max-concurrent=" + maxConcurrent, "--ds4.server.queue-limit=" + queueLimit,
                        "--ds4.scheduler.cache-sessions=" + cacheSessions,
                        "--ds4.scheduler.park-shared-prefixes=" + park, "--ds4.server.shutdown-drain=1s");
    }

    static ConfigurableApplicationContext start(int maxConcurrent, int queueLimit) {
        return start(maxConcurrent, queueLimit, Integer.toString(maxConcurrent), true);
    }

    /** Each prompt alone on a server without any prefix reuse (every request from an empty session). */
    @BeforeAll
    static void alone() throws Exception {
        try (var fresh = start(1, 16, "0", true)) {
            for (int i = 0; i < N; i++) {
                JsonNode r = RunningPrefixShareTest.answer(Http.postAsync(port(fresh), "/v1/completions", body(prompt(i), false)));
                assertThat(cached(r)).isZero();
                ALONE.put(i, RunningPrefixShareTest.tokens(r));
            }
        }
    }

    static int port(ConfigurableApplicationContext ctx) {
        return RunningPrefixShareTest.port(ctx);
    }

    static int cached(JsonNode r) {
        return RunningPrefixShareTest.cached(r);
    }

    static double count(ConfigurableApplicationContext ctx, String name) {
        return RunningPrefixShareTest.count(ctx, name);
    }

    static void await(BooleanSupplier cond, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!cond.getAsBoolean() && System.nanoTime() < deadline) Thread.sleep(2);
        assertThat(cond.getAsBoolean()).as(what).isTrue();
    }

    /** Submits {@code i}'s request and waits until it is admitted, so arrival order is submission order. */
    static CompletableFuture<HttpResponse<String>> submit(ConfigurableApplicationContext ctx, int i) throws Exception {
        RequestScheduler scheduler = ctx.getBean(RequestScheduler.class);
        int before = scheduler.queueDepth();
        var f = Http.postAsync(port(ctx), "/v1/completions", body(prompt(i), false));
        await(() -> scheduler.queueDepth() == before + 1, "request " + i + " admitted");
        return f;
    }

    /** A streaming request through WebClient, so that the test can make its client go away. */
    static Disposable stream(ConfigurableApplicationContext ctx, int i, CountDownLatch ended) {
        return WebClient.create("http://127.0.0.1:" + port(ctx)).post().uri("/v1/completions")
                .contentType(MediaType.APPLICATION_JSON).bodyValue(body(prompt(i), true)).retrieve()
                .bodyToFlux(String.class).doFinally(s -> ended.countDown()).subscribe();
    }

    @Test
    void sixRequestsJoiningInOneStepEvaluateTheirCommonPrefixOnce() throws Exception {
        try (var ctx = start(N, 16)) {
            RequestScheduler scheduler = ctx.getBean(RequestScheduler.class);
            List<CompletableFuture<HttpResponse<String>>> fs = new ArrayList<>();
            CountDownLatch release = EngineThreadHold.now(ctx);
            try {
                for (int i = 0; i < N; i++) fs.add(submit(ctx, i));
            } finally {
                release.countDown(); // all six leave the queue in the same step
            }
            List<JsonNode> rs = new ArrayList<>();
            for (var f : fs) rs.add(RunningPrefixShareTest.answer(f));
            int evaluatedAlone = 0;
            long copiedTokens = 0;
            for (int i = 0; i < N; i++) {
                assertThat(RunningPrefixShareTest.tokens(rs.get(i))).as("request %d as alone", i).isEqualTo(ALONE.get(i));
                int c = cached(rs.get(i));
                if (c == 0) evaluatedAlone++;
                else copiedTokens += c;
                assertThat(c).as("request %d: nothing, or at least the shared part's last checkpoint", i)
                        .satisfiesAnyOf(x -> assertThat(x).isZero(), x -> assertThat(x).isBetween(CHECKPOINT, SHARED.length));
            }
            assertThat(cached(rs.get(0))).as("the first to arrive leads: it evaluates the prefix").isZero();
            assertThat(evaluatedAlone).as("exactly one request evaluated the shared prefix").isEqualTo(1);
            assertThat(count(ctx, "ds4j.prefix.cache.copies")).isEqualTo(N - 1);
            assertThat(count(ctx, "ds4j.prefix.cache.copied.tokens")).isEqualTo(copiedTokens);
            assertThat(count(ctx, "ds4j.prefix.cache.hits")).isEqualTo(N - 1);
            assertThat(scheduler.parked()).isZero();
            assertThat(scheduler.queueDepth()).isZero();
        }
    }

    @Test
    void withParkingOffRequestsJoiningTogetherEachEvaluateThePrefix() throws Exception {
        // the control for the test above: the same arrivals, ds4.scheduler.park-shared-prefixes=false
        try (var ctx = start(N, 16, Integer.toString(N), false)) {
            List<CompletableFuture<HttpResponse<String>>> fs = new ArrayList<>();
            CountDownLatch release = EngineThreadHold.now(ctx);
            try {
                for (int i = 0; i < N; i++) fs.add(submit(ctx, i));
            } finally {
                release.countDown();
            }
            for (int i = 0; i < N; i++) {
                JsonNode r = RunningPrefixShareTest.answer(fs.get(i));
                assertThat(RunningPrefixShareTest.tokens(r)).isEqualTo(ALONE.get(i));
                assertThat(cached(r)).as("no source had the prefix when they joined").isZero();
            }
            assertThat(count(ctx, "ds4j.prefix.cache.copies")).isZero();
        }
    }

    @Test
    void parkedRequestsWhoseLeaderIsCancelledEvaluateThePrefixOnceThemselves() throws Exception {
        try (var ctx = start(3, 16)) {
            RequestScheduler scheduler = ctx.getBean(RequestScheduler.class);
            CountDownLatch leaderEnded = new CountDownLatch(1);
            Disposable leader = null;
            CompletableFuture<HttpResponse<String>> p1;
            CompletableFuture<HttpResponse<String>> p2;
            CountDownLatch release = EngineThreadHold.now(ctx);
            try {
                leader = stream(ctx, 0, leaderEnded);
                await(() -> scheduler.queueDepth() == 1, "the leader admitted first");
                p1 = submit(ctx, 1);
                p2 = submit(ctx, 2);
            } finally {
                release.countDown();
            }
            // the leader prefills the prefix, the two others are parked: hold the engine there, drop the leader
            release = EngineThreadHold.when(ctx, () -> scheduler.parked() == 2 && scheduler.active() == 1);
            try {
                leader.dispose();
                Thread.sleep(1000); // the server sees the connection close and cancels the leader's ticket
            } finally {
                release.countDown();
            }
            assertThat(leaderEnded.await(30, TimeUnit.SECONDS)).isTrue();
            JsonNode r1 = RunningPrefixShareTest.answer(p1);
            JsonNode r2 = RunningPrefixShareTest.answer(p2);
            assertThat(RunningPrefixShareTest.tokens(r1)).as("1 as alone").isEqualTo(ALONE.get(1));
            assertThat(RunningPrefixShareTest.tokens(r2)).as("2 as alone").isEqualTo(ALONE.get(2));
            // 1 took over the prefill (from what the cancelled leader's idle session held, short of the copy point);
            // 2 waited for 1 and copied from it
            assertThat(cached(r1)).as("the leader left before its state covered the shared part").isLessThan(CHECKPOINT);
            assertThat(cached(r2)).isBetween(CHECKPOINT, SHARED.length);
            assertThat(count(ctx, "ds4j.prefix.cache.copies")).isEqualTo(1);
            await(() -> scheduler.active() == 0 && scheduler.queueDepth() == 0 && scheduler.parked() == 0, "all done");
        }
    }

    @Test
    void aParkedRequestWhoseClientGoesAwayFreesItsPlaceAtOnce() throws Exception {
        // two places in all (max-concurrent 2, no queue): the leader and one parked request
        try (var ctx = start(2, 0)) {
            RequestScheduler scheduler = ctx.getBean(RequestScheduler.class);
            CompletableFuture<HttpResponse<String>> leader;
            CountDownLatch parkedEnded = new CountDownLatch(1);
            Disposable parked = null;
            CountDownLatch release = EngineThreadHold.now(ctx);
            try {
                leader = submit(ctx, 0);
                parked = stream(ctx, 1, parkedEnded);
                await(() -> scheduler.queueDepth() == 2, "the second request admitted");
            } finally {
                release.countDown();
            }
            release = EngineThreadHold.when(ctx, () -> scheduler.parked() == 1);
            CompletableFuture<HttpResponse<String>> next;
            try {
                assertThat(scheduler.queueDepth()).as("parked counts as waiting").isEqualTo(1);
                assertThat(Http.postAsync(port(ctx), "/v1/completions", body(prompt(2), false)).get(30, TimeUnit.SECONDS)
                        .statusCode()).as("both places taken").isEqualTo(429);
                parked.dispose();
                // freed by the cancel itself: the engine thread is held, no step has run
                await(() -> scheduler.queueDepth() == 0, "the parked request's place freed while the engine is held");
                next = submit(ctx, 2);
            } finally {
                release.countDown();
            }
            assertThat(parkedEnded.await(30, TimeUnit.SECONDS)).isTrue();
            assertThat(RunningPrefixShareTest.tokens(RunningPrefixShareTest.answer(leader))).isEqualTo(ALONE.get(0));
            JsonNode n = RunningPrefixShareTest.answer(next);
            assertThat(RunningPrefixShareTest.tokens(n)).isEqualTo(ALONE.get(2));
            await(() -> scheduler.active() == 0 && scheduler.queueDepth() == 0 && scheduler.parked() == 0, "all done");
            assertThat(scheduler.parked()).isZero();
        }
    }
}
