package io.ds4j.health;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import org.junit.jupiter.api.Test;

/** ds4j_engine_describe's JSON → the engine health component's backend and gpu details. */
class BackendDetailsTest {
    static final String CUDA_DESCRIBE = """
            {"arch":"deepseek4","backend":"cuda","device":{"index":1,"name":"NVIDIA H100 80GB HBM3",
             "compute_capability":"9.0","memory_total":85045477376,"memory_free":84490321920,
             "plan":{"weights":6442450944,"scratch":268435456}},"rank":0,"world_size":1}
            """;

    @Test
    void cudaDescribeGivesTheBackendAndTheGpuWithItsMemoryPlan() {
        Map<String, Object> d = BackendDetails.of(CUDA_DESCRIBE, "cuda");
        assertThat(d).containsOnlyKeys("backend", "gpu").containsEntry("backend", "cuda");
        assertThat(d.get("gpu")).isEqualTo(Map.of("index", 1, "name", "NVIDIA H100 80GB HBM3",
                "compute_capability", "9.0", "memory_total", 85045477376L, "memory_free", 84490321920L,
                "plan", Map.of("weights", 6442450944L, "scratch", 268435456L)));
    }

    @Test
    void cpuDescribeHasNoGpu() {
        Map<String, Object> d = BackendDetails.of("{\"backend\":\"cpu\",\"rank\":0}", "cpu");
        assertThat(d).isEqualTo(Map.of("backend", "cpu"));
    }

    @Test
    void theEnginesBackendWinsOverTheConfiguredOne() {
        assertThat(BackendDetails.of("{\"backend\":\"cpu\"}", "cuda")).containsEntry("backend", "cpu");
    }

    @Test
    void withoutABackendInTheDescribeTheConfiguredOneIsReported() {
        // no model ("{}"), a native build that predates the backend option, or an unparsable string
        assertThat(BackendDetails.of("{}", "cpu")).isEqualTo(Map.of("backend", "cpu"));
        assertThat(BackendDetails.of("{\"rank\":0,\"world_size\":1}", "cuda")).isEqualTo(Map.of("backend", "cuda"));
        assertThat(BackendDetails.of("not json {", "cpu")).isEqualTo(Map.of("backend", "cpu"));
        assertThat(BackendDetails.of("[1,2]", "cpu")).isEqualTo(Map.of("backend", "cpu"));
        assertThat(BackendDetails.of(null, "cpu")).isEqualTo(Map.of("backend", "cpu"));
    }

    @Test
    void gpuFieldsMissingOrOfAnotherTypeAreLeftOut() {
        Map<String, Object> d = BackendDetails.of("""
                {"backend":"cuda","device":{"index":"zero","name":"GPU","compute_capability":8.6,
                 "memory_total":-1.5,"plan":{"weights":10}}}
                """, "cuda");
        assertThat(d.get("gpu")).isEqualTo(Map.of("name", "GPU", "compute_capability", "8.6",
                "plan", Map.of("weights", 10L)));
        assertThat(BackendDetails.of("{\"backend\":\"cuda\",\"device\":3}", "cuda")).doesNotContainKey("gpu");
    }
}
