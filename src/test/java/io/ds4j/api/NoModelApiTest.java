package io.ds4j.api;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.http.MediaType;
import org.springframework.test.web.reactive.server.WebTestClient;

/** The app with the real library but no model: the API answers 503, readiness is down, liveness up. */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = "ds4.engine.library=${ds4j.native.dir}/libds4j.so")
@AutoConfigureWebTestClient
class NoModelApiTest {
    @Autowired
    WebTestClient web;

    @Test
    void generationEndpointsAnswer503InOpenAiShape() {
        for (String path : new String[] {"/v1/chat/completions", "/v1/completions"}) {
            web.post().uri(path).contentType(MediaType.APPLICATION_JSON)
                    .bodyValue("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"prompt\":[1]}").exchange()
                    .expectStatus().isEqualTo(503)
                    .expectHeader().exists("Retry-After")
                    .expectBody().jsonPath("$.error.code").isEqualTo("model_not_ready")
                    .jsonPath("$.error.message").value(m -> org.assertj.core.api.Assertions.assertThat((String) m)
                            .contains("ds4.model.path"));
        }
        web.post().uri("/tokenize").contentType(MediaType.APPLICATION_JSON).bodyValue("{\"content\":\"x\"}").exchange()
                .expectStatus().isEqualTo(503);
    }

    @Test
    void modelsListIsEmptyAndProbesSplit() {
        web.get().uri("/v1/models").exchange().expectStatus().isOk().expectBody().jsonPath("$.data").isEmpty();
        web.get().uri("/actuator/health/liveness").exchange().expectStatus().isOk();
        web.get().uri("/actuator/health/readiness").exchange().expectStatus().isEqualTo(503);
    }
}
