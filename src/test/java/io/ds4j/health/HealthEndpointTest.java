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

    @Test
    void healthShowsTheEngineComponentWithNoModel() {
        web.get().uri("/actuator/health").exchange()
                .expectStatus().isOk()
                .expectBody()
                .jsonPath("$.status").isEqualTo("UP")
                .jsonPath("$.components.engine.status").isEqualTo("UP")
                .jsonPath("$.components.engine.details.model").isEqualTo("none")
                .jsonPath("$.components.engine.details.library").value(v -> org.assertj.core.api.Assertions.assertThat((String) v).startsWith("ds4j "));
    }
}
