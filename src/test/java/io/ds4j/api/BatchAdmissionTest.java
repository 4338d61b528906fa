package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.engine.EngineService;
import io.ds4j.scheduler.RequestScheduler;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.reactive.function.client.WebClient;
import reactor.core.Disposable;

/**
 * Admission around the running batch (demo model, max-concurrent=2,
 * queue-limit=1): beyond running plus queued a request gets 429 with
 * Retry-After, and a client that disconnects mid-stream gives its place in
 * the batch to the next waiting request at once.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=4096",
        "ds4.engine.threads=2",
        "ds4.scheduler.max-concurrent=2",
        "ds4.server.queue-limit=1",
        "ds4.server.retry-after=3s",
        "ds4.server.max-output-tokens=4000",
        "ds4.server.shutdown-drain=1s"})
class BatchAdmissionTest {
    @LocalServerPort
    int port;
    @Autowired
    EngineService engine;
    @Autowired
    RequestScheduler scheduler;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.demo().toString());
    }

    static final String LONG = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a very long story.\"}],"
            + "\"max_tokens\":3000,\"temperature\":0,\"thinking\":false,\"ignore_eos\":true,\"stream\":true}";
    static final String SHORT = "{\"prompt\":\"Hello\",\"max_tokens\":2,\"temperature\":0}";

    static void await(BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 20_000;
        while (!cond.getAsBoolean() && System.currentTimeMillis() < deadline) Thread.sleep(5);
    }

    int status(String path, String body) throws Exception {
        return Http.postAsync(port, path, body).get(60, TimeUnit.SECONDS).statusCode();
    }

    @Test
    void beyondMaxConcurrentPlusQueueLimitA429CarriesRetryAfter() throws Exception {
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
        List<CompletableFuture<HttpResponse<String>>> admitted = new ArrayList<>();
        try {
            assertThat(held.await(10, TimeUnit.SECONDS)).isTrue();
            for (int i = 0; i < 3; i++) admitted.add(Http.postAsync(port, "/v1/completions", SHORT));
            await(() -> scheduler.queueDepth() == 3);
            assertThat(scheduler.queueDepth()).isEqualTo(3);
            HttpResponse<String> refused = Http.postAsync(port, "/v1/completions", SHORT).get(30, TimeUnit.SECONDS);
            assertThat(refused.statusCode()).isEqualTo(429);
            assertThat(refused.headers().firstValue("Retry-After")).hasValue("3");
            assertThat(Params.JSON.readTree(refused.body()).get("error").get("code").stringValue()).isEqualTo("queue_full");
        } finally {
            hold.countDown();
        }
        for (var f : admitted) assertThat(f.get(60, TimeUnit.SECONDS).statusCode()).isEqualTo(200);
        await(() -> scheduler.active() == 0 && scheduler.queueDepth() == 0);
        assertThat(status("/v1/completions", SHORT)).isEqualTo(200);
    }

    @Test
    void aClientThatDisconnectsMidStreamGivesItsPlaceToTheNextRequestAtOnce() throws Exception {
        WebClient client = WebClient.create("http://localhost:" + port);
        List<Disposable> streams = new ArrayList<>();
        try {
            // A and B stream 3000 tokens each; A goes away mid-stream when the test says so
            CountDownLatch aStreaming = new CountDownLatch(3);
            Disposable a = client.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON).bodyValue(LONG)
                    .retrieve().bodyToFlux(String.class).doOnNext(e -> aStreaming.countDown()).subscribe();
            streams.add(a);
            CountDownLatch bDone = new CountDownLatch(1);
            streams.add(client.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON).bodyValue(LONG)
                    .retrieve().bodyToFlux(String.class).doFinally(s -> bDone.countDown()).subscribe());
            await(() -> scheduler.active() == 2);
            assertThat(scheduler.active()).isEqualTo(2);
            // C waits in the queue: running plus queued is full now
            streams.add(client.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON).bodyValue(LONG)
                    .retrieve().bodyToFlux(String.class).subscribe());
            await(() -> scheduler.queueDepth() == 1);
            assertThat(scheduler.queueDepth()).isEqualTo(1);
            assertThat(status("/v1/completions", SHORT)).isEqualTo(429);

            assertThat(aStreaming.await(60, TimeUnit.SECONDS)).isTrue(); // A is mid-stream
            a.dispose(); // and disconnects
            await(() -> scheduler.queueDepth() == 0);
            assertThat(scheduler.queueDepth()).as("C took A's place").isZero();
            assertThat(scheduler.active()).isEqualTo(2);
            assertThat(bDone.getCount()).as("B is still streaming").isEqualTo(1);
            // and the queue place is free again for a new request (it waits rather than being refused)
            CompletableFuture<HttpResponse<String>> d = Http.postAsync(port, "/v1/completions", SHORT);
            await(() -> scheduler.queueDepth() == 1 || d.isDone());
            assertThat(d.isDone() ? d.get().statusCode() : 200).isEqualTo(200);
            streams.forEach(Disposable::dispose);
            assertThat(d.get(60, TimeUnit.SECONDS).statusCode()).isEqualTo(200);
        } finally {
            streams.forEach(Disposable::dispose);
        }
        await(() -> scheduler.active() == 0);
        assertThat(scheduler.active()).isZero();
    }
}
