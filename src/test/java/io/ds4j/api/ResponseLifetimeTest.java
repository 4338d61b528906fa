package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.micrometer.core.instrument.MeterRegistry;
import io.ds4j.scheduler.RequestScheduler;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.core.io.buffer.DataBufferUtils;
import org.springframework.http.MediaType;
import org.springframework.mock.http.server.reactive.MockServerHttpRequest;
import org.springframework.mock.http.server.reactive.MockServerHttpResponse;
import org.springframework.mock.web.server.MockServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * A response that ends before its body publisher reaches the generation's
 * events (client gone right after the first bytes, or the first write
 * failing) must still release the request: its scheduler slot, its
 * keep-alive timer, and a running generation.
 */
class ResponseLifetimeTest extends DemoModelServerTest {
    @Autowired
    ChatController chat;
    @Autowired
    CompletionsController completions;
    @Autowired
    Generations generations;
    @Autowired
    RequestScheduler scheduler;
    @Autowired
    MeterRegistry registry;

    static MockServerWebExchange exchange(String path, String body, Function<Flux<DataBuffer>, Mono<Void>> writer) {
        var ex = MockServerWebExchange.from(MockServerHttpRequest.post(path).contentType(MediaType.APPLICATION_JSON).body(body));
        ((MockServerHttpResponse) ex.getResponse()).setWriteHandler(writer);
        return ex;
    }

    static void await(BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 10_000;
        while (!cond.getAsBoolean() && System.currentTimeMillis() < deadline) Thread.sleep(10);
    }

    @Autowired
    io.ds4j.engine.EngineService engine;

    /** Holds the engine thread (no step runs, so requests stay queued) until the returned latch is counted down. */
    CountDownLatch blockEngine() throws InterruptedException {
        CountDownLatch hold = new CountDownLatch(1);
        CountDownLatch started = new CountDownLatch(1);
        engine.executor().execute(() -> {
            started.countDown();
            try {
                hold.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
        return hold;
    }

    @Test
    void streamingChatCancelledAfterItsFirstChunkFreesItsQueuedSlotAndTimer() throws Exception {
        List<String> written = new CopyOnWriteArrayList<>();
        CountDownLatch hold = blockEngine();
        try {
            // the client reads the role chunk and goes away, before the generation's events are subscribed
            var ex = exchange("/v1/chat/completions",
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,\"max_tokens\":50}",
                    body -> body.take(1).doOnNext(b -> {
                        written.add(b.toString(StandardCharsets.UTF_8));
                        DataBufferUtils.release(b);
                    }).then());
            chat.chat(ex).block(Duration.ofSeconds(30));
            assertThat(written).hasSize(1);
            assertThat(written.getFirst()).contains("\"role\":\"assistant\"");
            await(() -> scheduler.queueDepth() == 0 && generations.liveTimers() == 0);
            assertThat(scheduler.queueDepth()).isZero();
            assertThat(generations.liveTimers()).isZero();
        } finally {
            hold.countDown();
        }
        await(() -> scheduler.active() == 0);
        web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":[5,6],\"max_tokens\":2}").exchange().expectStatus().isOk();
    }

    @Test
    void streamingCompletionWhoseFirstWriteFailsFreesItsQueuedSlotAndTimer() throws Exception {
        CountDownLatch hold = blockEngine();
        try {
            // the connection is gone before the body publisher is even subscribed
            var ex = exchange("/v1/completions", "{\"prompt\":[5,6],\"stream\":true,\"max_tokens\":50}",
                    body -> Mono.error(new IOException("connection reset by peer")));
            assertThatThrownBy(() -> completions.completions(ex).block(Duration.ofSeconds(30)))
                    .hasRootCauseInstanceOf(IOException.class);
            await(() -> scheduler.queueDepth() == 0 && generations.liveTimers() == 0);
            assertThat(scheduler.queueDepth()).isZero();
            assertThat(generations.liveTimers()).isZero();
        } finally {
            hold.countDown();
        }
    }

    @Test
    void runningGenerationStopsWhenItsResponseFailsBeforeReadingEvents() throws Exception {
        double before = registry.counter("ds4j.tokens.generated").count();
        int maxTokens = 1000;
        var ex = exchange("/v1/completions", "{\"prompt\":[5,6],\"stream\":true,\"max_tokens\":" + maxTokens + "}",
                body -> Mono.error(new IOException("connection reset by peer")));
        assertThatThrownBy(() -> completions.completions(ex).block(Duration.ofSeconds(30)))
                .hasRootCauseInstanceOf(IOException.class);
        // the slot comes free (bounded wait), and the generation did not run to max_tokens
        await(() -> scheduler.active() == 0 && scheduler.queueDepth() == 0);
        assertThat(scheduler.active()).isZero();
        assertThat(registry.counter("ds4j.tokens.generated").count() - before).isLessThan(maxTokens);
        assertThat(generations.liveTimers()).isZero();
        web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":[5,6],\"max_tokens\":2}").exchange().expectStatus().isOk();
    }
}
