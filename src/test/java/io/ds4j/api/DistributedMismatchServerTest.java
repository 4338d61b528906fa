package io.ds4j.api;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * A configuration that disagrees with what the engine reports (configured
 * rank 1 of 2, but comm=local is one rank): the engine component is DOWN
 * with a message naming both, readiness stays down and the API answers 503.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=64",
        "ds4.engine.threads=1",
        "ds4.distributed.enabled=true",
        "ds4.distributed.backend=local",
        "ds4.distributed.world-size=2",
        "ds4.distributed.rank=1"})
@AutoConfigureWebTestClient(timeout = "60s")
class DistributedMismatchServerTest {
    @Autowired
    WebTestClient web;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.tinyA().toString());
    }

    @Test
    void mismatchIsDownWithAClearReason() {
        web.get().uri("/actuator/health").exchange().expectStatus().isEqualTo(503).expectBody()
                .jsonPath("$.components.engine.status").isEqualTo("DOWN")
                .jsonPath("$.components.engine.details.error").value(v -> org.assertj.core.api.Assertions
                        .assertThat((String) v).contains("cluster mismatch").contains("rank 0 of 1")
                        .contains("ds4.distributed.rank=1").contains("ds4.distributed.world-size=2"));
        web.get().uri("/actuator/health/readiness").exchange().expectStatus().isEqualTo(503);
        web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":[3,4],\"max_tokens\":1}").exchange().expectStatus().isEqualTo(503)
                .expectBody(String.class).value(s -> org.assertj.core.api.Assertions.assertThat(s).contains("cluster mismatch"));
    }
}
