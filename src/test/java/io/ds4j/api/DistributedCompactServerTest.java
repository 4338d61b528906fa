package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.engine.EngineService;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * ds4.distributed.expert-compact=true on the one-rank backend with a file
 * made by `ds4j-tool slice --experts 0:8` (every expert of tiny-a, so one
 * rank may serve it): the engine opens, /actuator/info shows the file's
 * slice and the range the rank owns, and a completion runs.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=64",
        "ds4.engine.threads=1",
        "ds4.distributed.enabled=true",
        "ds4.distributed.backend=local",
        "ds4.distributed.world-size=1",
        "ds4.distributed.rank=0",
        "ds4.distributed.expert-compact=true"})
@AutoConfigureWebTestClient(timeout = "60s")
class DistributedCompactServerTest {
    @Autowired
    WebTestClient web;

    @Autowired
    EngineService engine;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.tinyASlice(0, 8).toString());
    }

    @Test
    void sliceHoldingTheRanksExpertsServes() {
        assertThat(engine.loadError()).isNull();
        web.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk();
        web.get().uri("/actuator/info").exchange().expectStatus().isOk().expectBody()
                .jsonPath("$.distributed.expert_compact").isEqualTo(true)
                .jsonPath("$.distributed.expert_slice[0]").isEqualTo(0)
                .jsonPath("$.distributed.expert_slice[1]").isEqualTo(8)
                .jsonPath("$.distributed.expert_range[1]").isEqualTo(8);
        web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":[3,4],\"max_tokens\":2}").exchange().expectStatus().isOk();
    }
}
