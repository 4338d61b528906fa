package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * ds4.distributed.expert-compact=true on a rank that owns experts 0:4 but
 * points at the full model file: the engine refuses to open (the file holds
 * other experts), the engine component is DOWN with the engine's message,
 * which tells how to make the rank's file with ds4j-tool slice, and the API
 * answers 503.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=64",
        "ds4.engine.threads=1",
        "ds4.distributed.enabled=true",
        "ds4.distributed.backend=local",
        "ds4.distributed.world-size=1",
        "ds4.distributed.rank=0",
        "ds4.distributed.expert-range=0:4",
        "ds4.distributed.expert-compact=true"})
@AutoConfigureWebTestClient(timeout = "60s")
class DistributedCompactMismatchServerTest {
    @Autowired
    WebTestClient web;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.tinyA().toString());
    }

    @Test
    void fullFileUnderExpertCompactIsDownWithTheSliceCommand() {
        web.get().uri("/actuator/health").exchange().expectStatus().isEqualTo(503).expectBody()
                .jsonPath("$.components.engine.status").isEqualTo("DOWN")
                .jsonPath("$.components.engine.details.error").value(v -> assertThat((String) v)
                        .contains("expert_compact=1").contains("holds experts 0:8")
                        .contains("ds4j-tool slice --model FULL.gguf --experts 0:4"));
        web.get().uri("/actuator/health/readiness").exchange().expectStatus().isEqualTo(503);
        web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":[3,4],\"max_tokens\":1}").exchange().expectStatus().isEqualTo(503);
    }
}
