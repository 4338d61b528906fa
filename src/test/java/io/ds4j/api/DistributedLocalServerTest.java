package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.engine.EngineService;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * ds4.distributed with the engine's one-rank backend (comm=local): the
 * engine is opened with comm=, the cluster (1 rank) is formed and ready,
 * /actuator/info shows what the engine reports, and every MoE layer's
 * all_sum latency reaches /actuator/prometheus as a histogram.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=128",
        "ds4.engine.threads=1",
        "ds4.distributed.enabled=true",
        "ds4.distributed.backend=local",
        "ds4.distributed.world-size=1",
        "ds4.distributed.rank=0"})
@AutoConfigureWebTestClient(timeout = "60s")
class DistributedLocalServerTest {
    static final int MOE_LAYERS = 5; // dsv4-tiny-a: every layer is a (hash) MoE layer

    @Autowired
    WebTestClient web;

    @Autowired
    EngineService engine;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.tinyA().toString());
    }

    @Test
    void clusterOfOneIsReadyAndReportedInInfo() {
        assertThat(engine.loadError()).isNull();
        web.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk();
        web.get().uri("/actuator/info").exchange().expectStatus().isOk().expectBody()
                .jsonPath("$.distributed.comm").isEqualTo("local")
                .jsonPath("$.distributed.rank").isEqualTo(0)
                .jsonPath("$.distributed.world_size").isEqualTo(1)
                .jsonPath("$.distributed.role").isEqualTo("leader")
                .jsonPath("$.distributed.allsum_overlap").isEqualTo(true)
                .jsonPath("$.distributed.all_sum_dtype_in_effect").isEqualTo("f32");
    }

    static long count(String prom, int layer) {
        Matcher m = Pattern.compile("(?m)^ds4j_allsum_latency_seconds_count\\{[^}]*layer=\"" + layer
                + "\"[^}]*\\} ([0-9.eE+]+)$").matcher(prom);
        return m.find() ? (long) Double.parseDouble(m.group(1)) : -1;
    }

    @Test
    void generationRecordsAllsumHistogramsForEveryMoeLayer() {
        String before = web.get().uri("/actuator/prometheus").exchange().expectStatus().isOk()
                .expectBody(String.class).returnResult().getResponseBody();
        long[] b = new long[MOE_LAYERS];
        for (int l = 0; l < MOE_LAYERS; l++) b[l] = Math.max(0, count(before, l));

        web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":[3,4,5,6],\"max_tokens\":3,\"temperature\":0}")
                .exchange().expectStatus().isOk();

        String prom = web.get().uri("/actuator/prometheus").exchange().expectStatus().isOk()
                .expectBody(String.class).returnResult().getResponseBody();
        for (int l = 0; l < MOE_LAYERS; l++) {
            // at least one forward over the uncached prompt part plus the decoded tokens
            assertThat(count(prom, l) - b[l]).as("all_sum samples of layer %d", l).isGreaterThanOrEqualTo(1);
        }
        assertThat(count(prom, MOE_LAYERS)).as("no layer beyond the model's").isEqualTo(-1);
        assertThat(prom).contains("ds4j_allsum_latency_seconds_bucket{").contains("ds4j_allsum_dropped_total");
        // the series name this rank, the payload and the overlap the engine reports in use
        assertThat(prom).containsPattern("(?m)^ds4j_allsum_latency_seconds_count\\{[^}]*dtype=\"f32\",layer=\"0\","
                + "overlap=\"true\",rank=\"0\"\\} ");
        assertThat(engine.allsumDtype()).isEqualTo("f32");
        assertThat(engine.allsumOverlap()).isTrue();
    }
}
