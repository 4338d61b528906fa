package io.ds4j.security;

import io.ds4j.api.TestModels;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * The documented split: management.server.port puts the actuator on its own port (open to probes and
 * scrapers by default) while the API port, with keys configured, answers only holders of a key and does
 * not serve the actuator at all. No model is loaded (the real native library, health only).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "management.server.port=0",
        "ds4.security.api-keys=sk-api"})
@AutoConfigureWebTestClient
class ManagementPortTest {
    @Autowired
    WebTestClient web;
    @LocalManagementPort
    int managementPort;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
    }

    @Test
    void theActuatorIsServedOnTheManagementPortWithoutAKey() {
        WebTestClient management = WebTestClient.bindToServer().baseUrl("http://127.0.0.1:" + managementPort).build();
        management.get().uri("/actuator/health").exchange().expectStatus().isEqualTo(503)
                .expectBody().jsonPath("$.status").isEqualTo("OUT_OF_SERVICE");
        management.get().uri("/actuator/prometheus").exchange().expectStatus().isOk();
    }

    @Test
    void theApiPortNeedsAKeyAndDoesNotServeTheActuator() {
        web.get().uri("/v1/models").exchange().expectStatus().isUnauthorized();
        web.get().uri("/v1/models").header("x-api-key", "sk-api").exchange().expectStatus().isOk();
        web.get().uri("/actuator/prometheus").header("x-api-key", "sk-api").exchange().expectStatus().isNotFound();
    }
}
