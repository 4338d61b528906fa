package io.ds4j.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.config.Ds4jProperties;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/** The ds4.* configuration → the option string of ds4j_engine_open. */
class EngineOptionsTest {
    static String options(String... keyValues) {
        Map<String, String> m = new HashMap<>();
        for (String kv : keyValues) {
            int eq = kv.indexOf('=');
            m.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        Ds4jProperties p = new Binder(new MapConfigurationPropertySource(m)).bindOrCreate("ds4", Ds4jProperties.class);
        return EngineService.engineOptions(p);
    }

    @Test
    void theDefaultCpuBackendSendsNoBackendOrDeviceOption() {
        // a cpu configuration must open native builds that predate the backend option
        assertThat(options()).isEqualTo("threads=0;kv_precision=f32");
        assertThat(options("ds4.engine.backend=cpu", "ds4.engine.device=0")).isEqualTo("threads=0;kv_precision=f32");
    }

    @Test
    void cudaSendsTheBackendAndItsDevice() {
        assertThat(options("ds4.engine.backend=cuda")).isEqualTo("threads=0;kv_precision=f32;backend=cuda;device=0");
        assertThat(options("ds4.engine.backend=cuda", "ds4.engine.device=3", "ds4.engine.threads=8",
                "ds4.engine.prefill-chunk=128"))
                .isEqualTo("threads=8;prefill_chunk=128;kv_precision=f32;backend=cuda;device=3");
    }

    @Test
    void cudaComesBeforeTheDistributedOptions() {
        assertThat(options("ds4.engine.backend=cuda", "ds4.engine.device=1", "ds4.distributed.enabled=true",
                "ds4.distributed.backend=nccl", "ds4.distributed.world-size=2", "ds4.distributed.comm-options=device=1"))
                .isEqualTo("threads=0;kv_precision=f32;backend=cuda;device=1;comm=nccl;comm_options=device=1");
    }

    @Test
    void anF32AllSumSendsNoAllSumDtypeOption() {
        // f32 is the engine's default: the default configuration must open native builds without the option
        assertThat(options("ds4.distributed.enabled=true", "ds4.distributed.world-size=2"))
                .isEqualTo("threads=0;kv_precision=f32;comm=mpi");
        assertThat(options("ds4.distributed.enabled=true", "ds4.distributed.world-size=2",
                "ds4.distributed.all-sum-dtype=f32")).isEqualTo("threads=0;kv_precision=f32;comm=mpi");
    }

    @Test
    void aSixteenBitAllSumIsSentAsAllSumDtype() {
        assertThat(options("ds4.distributed.enabled=true", "ds4.distributed.world-size=2",
                "ds4.distributed.all-sum-dtype=f16"))
                .isEqualTo("threads=0;kv_precision=f32;comm=mpi;all_sum_dtype=f16");
        assertThat(options("ds4.engine.backend=cuda", "ds4.distributed.enabled=true", "ds4.distributed.backend=nccl",
                "ds4.distributed.world-size=2", "ds4.distributed.comm-options=device=0",
                "ds4.distributed.expert-compact=true", "ds4.distributed.all-sum-dtype=bf16"))
                .isEqualTo("threads=0;kv_precision=f32;backend=cuda;device=0;comm=nccl;comm_options=device=0;"
                        + "expert_compact=1;all_sum_dtype=bf16");
    }

    @Test
    void turningTheAllsumOverlapOffIsSentAsAllsumOverlap0AndOnIsTheEnginesDefault() {
        assertThat(options("ds4.distributed.enabled=true", "ds4.distributed.world-size=2",
                "ds4.distributed.allsum-overlap=false"))
                .isEqualTo("threads=0;kv_precision=f32;comm=mpi;allsum_overlap=0");
        assertThat(options("ds4.distributed.enabled=true", "ds4.distributed.world-size=2",
                "ds4.distributed.allsum-overlap=true")).isEqualTo("threads=0;kv_precision=f32;comm=mpi");
    }

    @Test
    void allSumDtypeIsNotSentWithoutDistributedOperation() {
        // one process has no all_sum: like the other ds4.distributed settings, the type is then ignored
        assertThat(options("ds4.distributed.all-sum-dtype=bf16")).isEqualTo("threads=0;kv_precision=f32");
    }

    @Test
    void theRecoveryToolIsSentAsRespawnToolOnlyWhenConfigured() {
        // unset: the engine looks beside libds4j itself, and older native builds still open
        assertThat(options("ds4.distributed.enabled=true", "ds4.distributed.world-size=2"))
                .doesNotContain("respawn_tool");
        assertThat(options("ds4.distributed.enabled=true", "ds4.distributed.world-size=2",
                "ds4.distributed.recovery.respawn-tool=/opt/ds4j/scripts/ds4j-tool"))
                .isEqualTo("threads=0;kv_precision=f32;comm=mpi;respawn_tool=/opt/ds4j/scripts/ds4j-tool");
        assertThat(options("ds4.distributed.recovery.respawn-tool=/x/ds4j-tool")).doesNotContain("respawn_tool");
    }
}
