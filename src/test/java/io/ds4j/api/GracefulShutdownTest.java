package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.scheduler.ShutdownCoordinator;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.http.MediaType;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.reactive.function.client.WebClient;

/**
 * Shutdown with a stream in flight (drain time 0): the stream ends with an
 * OpenAI error event (no [DONE]) instead of being cut, and new requests get 503.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=4096", "ds4.engine.threads=2", "ds4.server.shutdown-drain=0s"})
@DirtiesContext
class GracefulShutdownTest {
    @LocalServerPort
    int port;
    @Autowired
    ShutdownCoordinator shutdown;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.demo().toString());
    }

    @Test
    void inFlightStreamEndsWithAnErrorEventAndNewRequestsAreRefused() throws Exception {
        WebClient client = WebClient.create("http://localhost:" + port);
        List<String> events = new CopyOnWriteArrayList<>();
        CountDownLatch some = new CountDownLatch(3);
        CountDownLatch done = new CountDownLatch(1);
        client.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":\"Once upon a time\",\"max_tokens\":3000,\"stream\":true}")
                .retrieve().bodyToFlux(String.class)
                .doOnNext(e -> {
                    events.add(e);
                    some.countDown();
                })
                .doFinally(s -> done.countDown())
                .subscribe();
        assertThat(some.await(60, TimeUnit.SECONDS)).isTrue();
        shutdown.stop();
        assertThat(done.await(30, TimeUnit.SECONDS)).isTrue();
        assertThat(events.getLast()).contains("\"error\"").contains("shutting down");
        assertThat(events).doesNotContain("[DONE]");
        var status = client.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":\"x\",\"max_tokens\":1}").exchangeToMono(r -> reactor.core.publisher.Mono.just(r.statusCode().value()))
                .block(Duration.ofSeconds(30));
        assertThat(status).isEqualTo(503);
    }
}
