package io.ds4j.health;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.test.web.reactive.server.WebTestClient;

/** The app starts against the real native library with no model configured. */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = "ds4.engine.library=${ds4j.native.dir}/libds4j.so")
@AutoConfigureWebTestClient
class HealthEndpointTest {
    @Autowired
    WebTestClient web;

    /**
     * Without a model the engine component is UP (model none) but the server is not ready for traffic;
     * it names the configured compute backend, the default cpu, and no GPU.
     */
    @Test
    void healthShowsTheEngineComponentWithNoModel() {
        web.get().uri("/actuator/health").exchange()
                .expectStatus().isEqualTo(503)
                .expectBody()
                .jsonPath("$.status").isEqualTo("OUT_OF_SERVICE")
                .jsonPath("$.components.readinessState.status").isEqualTo("OUT_OF_SERVICE")
                .jsonPath("$.components.livenessState.status").isEqualTo("UP")
                .jsonPath("$.components.engine.status").isEqualTo("UP")
                .jsonPath("$.components.engine.details.model").isEqualTo("none")
                .jsonPath("$.components.engine.details.backend").isEqualTo("cpu")
                .jsonPath("$.components.engine.details.gpu").doesNotExist()
                .jsonPath("$.components.engine.details.library").value(v -> org.assertj.core.api.Assertions.assertThat((String) v).startsWith("ds4j "));
    }
}
