package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;
import tools.jackson.databind.JsonNode;

/**
 * ds4.engine.backend=cuda reaches the engine (option backend=cuda;device=0) and the engine health
 * component names it either way: on a machine or build without CUDA the open fails ("built without
 * CUDA", "no CUDA device", or an engine that predates the option) and the component is DOWN with
 * that error; with a CUDA build and a GPU it is UP and shows the GPU the engine opened.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=64",
        "ds4.engine.threads=1",
        "ds4.engine.backend=cuda"})
@AutoConfigureWebTestClient(timeout = "60s")
class CudaBackendServerTest {
    @Autowired
    WebTestClient web;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.tinyA().toString());
    }

    @Test
    void healthNamesTheCudaBackendWithTheGpuOrTheLoadError() {
        String body = web.get().uri("/actuator/health").exchange().expectBody(String.class).returnResult().getResponseBody();
        JsonNode engine = Params.JSON.readTree(body).get("components").get("engine");
        JsonNode details = engine.get("details");
        assertThat(details.get("backend").stringValue()).isEqualTo("cuda");
        if (engine.get("status").stringValue().equals("DOWN")) {
            assertThat(details.get("model").stringValue()).isEqualTo("failed");
            // the engine's own reason, not any load failure: no device, or a build without CUDA
            assertThat(details.get("error").stringValue()).contains("backend=cuda")
                    .containsAnyOf("no CUDA device", "built without CUDA");
            assertThat(details.has("gpu")).isFalse();
        } else {
            assertThat(engine.get("status").stringValue()).isEqualTo("UP");
            assertThat(details.get("gpu").get("index").intValue()).isZero();
            assertThat(details.get("gpu").get("name").stringValue()).isNotBlank();
            assertThat(details.get("gpu").get("memory_total").longValue()).isPositive();
        }
    }
}
