package io.ds4j.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LaunchPlanTest {
    @Test
    void rendersOneMpmdCommandWithTheLeaderFirstAndAFollowerPerOtherNode(@TempDir Path dir) throws Exception {
        Path values = dir.resolve("values.yaml");
        Files.writeString(values, """
                model: /models/flash.gguf
                backend: mpi
                port: 9000
                threads: 8
                repo: /opt/ds4j
                nodes:
                  - host: mac-a
                  - host: mac-b
                  - host: mac-c
                """);
        LaunchPlan plan = new LaunchPlan(LaunchCli.load(values));
        assertThat(plan.hostfile()).contains("mac-a slots=1\nmac-b slots=1\nmac-c slots=1\n");
        List<String> argv = plan.mpirunArgv("/tmp/h");
        String line = String.join(" ", argv);
        assertThat(argv.get(0)).isEqualTo("mpirun");
        assertThat(line).contains("--hostfile /tmp/h");
        // a dead follower must not make mpirun kill the leader's server
        assertThat(argv.get(1)).isEqualTo("--enable-recovery");
        assertThat(line).contains("-np 1 /opt/ds4j/scripts/run --model /models/flash.gguf --port 9000 --");
        assertThat(line).contains("--ds4.distributed.world-size=3").contains("--ds4.distributed.rank=0")
                .contains("--ds4.distributed.coordinator=mac-a:9000");
        assertThat(argv.stream().filter(":"::equals)).hasSize(2);
        assertThat(line).contains(": -np 1 /opt/ds4j/scripts/ds4j-tool follow --model /models/flash.gguf --options comm=mpi;threads=8");
        assertThat(LaunchPlan.shellLine(argv)).contains("'comm=mpi;threads=8'");
        // the leader can replace a lost follower with the same program (recovery), placed by the hostfile
        assertThat(argv).contains("--ds4.distributed.recovery.respawn-tool=/opt/ds4j/scripts/ds4j-tool");
        assertThat(argv.indexOf("--ds4.distributed.recovery.respawn-tool=/opt/ds4j/scripts/ds4j-tool"))
                .isLessThan(argv.indexOf(":"));
    }

    @Test
    void theLeaderListensOnLoopbackUnlessAddressOpensIt(@TempDir Path dir) throws Exception {
        Path plain = dir.resolve("plain.yaml");
        Files.writeString(plain, "model: m.gguf\nnodes:\n  - host: a\n  - host: b\n");
        // no address: scripts/run's default (127.0.0.1) applies, nothing is added
        assertThat(String.join(" ", new LaunchPlan(LaunchCli.load(plain)).mpirunArgv("h")))
                .contains("run --model m.gguf --port 8080 --").doesNotContain("--address");
        Path open = dir.resolve("open.yaml");
        Files.writeString(open, "model: m.gguf\naddress: 0.0.0.0\nnodes:\n  - host: a\n  - host: b\n");
        List<String> argv = new LaunchPlan(LaunchCli.load(open)).mpirunArgv("h");
        assertThat(String.join(" ", argv)).contains("run --model m.gguf --port 8080 --address 0.0.0.0 --");
        Path bad = dir.resolve("bad.yaml");
        Files.writeString(bad, "model: m.gguf\naddress: 'a b'\nnodes:\n  - host: a\n");
        assertThatThrownBy(() -> LaunchCli.load(bad)).hasMessageContaining("'address'");
    }

    @Test
    void explicitExpertRangesGoToEachRank(@TempDir Path dir) throws Exception {
        Path values = dir.resolve("v.yaml");
        Files.writeString(values, """
                model: m.gguf
                nodes:
                  - {host: a, experts: "0:100"}
                  - {host: b, experts: "100:256"}
                """);
        LaunchPlan plan = new LaunchPlan(LaunchCli.load(values));
        assertThat(plan.engineOptions(1)).isEqualTo("comm=mpi;threads=0;expert_range=100:256");
        assertThat(String.join(" ", plan.mpirunArgv("h"))).contains("--ds4.distributed.expert-range=0:100");
    }

    @Test
    void perNodeModelsAndExpertCompactGoToEachRank(@TempDir Path dir) throws Exception {
        Path values = dir.resolve("v.yaml");
        Files.writeString(values, """
                model: /models/flash-part{rank}-of-3.gguf
                expertCompact: true
                repo: /opt/ds4j
                nodes:
                  - host: a
                  - {host: b, model: /big/disk/b-slice.gguf}
                  - {host: c, model: /models/full.gguf, expertCompact: false}
                """);
        ClusterSpec spec = LaunchCli.load(values);
        assertThat(spec.modelOf(0)).isEqualTo("/models/flash-part0-of-3.gguf");
        assertThat(spec.modelOf(1)).isEqualTo("/big/disk/b-slice.gguf");
        LaunchPlan plan = new LaunchPlan(spec);
        assertThat(plan.engineOptions(1)).isEqualTo("comm=mpi;threads=0;expert_compact=1");
        assertThat(plan.engineOptions(2)).isEqualTo("comm=mpi;threads=0");
        String line = String.join(" ", plan.mpirunArgv("h"));
        assertThat(line).contains("/opt/ds4j/scripts/run --model /models/flash-part0-of-3.gguf --port 8080")
                .contains("--ds4.distributed.expert-compact=true")
                .contains("follow --model /big/disk/b-slice.gguf --options comm=mpi;threads=0;expert_compact=1")
                .contains("follow --model /models/full.gguf --options comm=mpi;threads=0");
        assertThat(line).doesNotContain("{rank}");
        // without expertCompact nothing changes for the leader
        Files.writeString(values, "model: m.gguf\nnodes: [{host: a, model: 'a.gguf'}, {host: b}]\n");
        LaunchPlan plain = new LaunchPlan(LaunchCli.load(values));
        assertThat(String.join(" ", plain.mpirunArgv("h"))).contains("run --model a.gguf")
                .contains("follow --model m.gguf").doesNotContain("expert-compact").doesNotContain("expert_compact");
    }

    @Test
    void cudaRanksGetTheBackendAndTheirDeviceAndNcclSharesIt(@TempDir Path dir) throws Exception {
        LaunchPlan plan = new LaunchPlan(spec(dir, """
                model: m.gguf
                backend: nccl
                engineBackend: cuda
                nodes:
                  - host: a
                  - {host: b, device: 1}
                  - {host: c, engineBackend: cpu}
                """));
        assertThat(plan.engineOptions(1)).isEqualTo("comm=nccl;threads=0;backend=cuda;device=1;comm_options=device=1");
        // a cpu rank of an NCCL cluster: no backend option, NCCL picks its GPU as before
        assertThat(plan.engineOptions(2)).isEqualTo("comm=nccl;threads=0");
        List<String> argv = plan.mpirunArgv("h");
        assertThat(argv).contains("--ds4.engine.backend=cuda", "--ds4.engine.device=0")
                .doesNotContain("--ds4.distributed.comm-options=device=0");
        assertThat(String.join(" ", argv))
                .contains("follow --model m.gguf --options comm=nccl;threads=0;backend=cuda;device=1;comm_options=device=1");

        LaunchPlan leaderOnGpu1 = new LaunchPlan(spec(dir, """
                model: m.gguf
                backend: nccl
                nodes: [{host: a, engineBackend: cuda, device: 1}, {host: b}]
                """));
        assertThat(leaderOnGpu1.mpirunArgv("h")).contains("--ds4.engine.backend=cuda", "--ds4.engine.device=1",
                "--ds4.distributed.comm-options=device=1");
        assertThat(leaderOnGpu1.engineOptions(1)).isEqualTo("comm=nccl;threads=0");
    }

    @Test
    void cpuClustersRenderWithoutBackendOrDevice(@TempDir Path dir) throws Exception {
        LaunchPlan plan = new LaunchPlan(spec(dir, "model: m.gguf\nengineBackend: cpu\nnodes: [{host: a}, {host: b}]\n"));
        assertThat(plan.engineOptions(1)).isEqualTo("comm=mpi;threads=0");
        assertThat(String.join(" ", plan.mpirunArgv("h"))).doesNotContain("ds4.engine.backend")
                .doesNotContain("ds4.engine.device").doesNotContain("comm-options");
    }

    @Test
    void aSixteenBitAllSumGoesToTheLeaderAndEveryFollower(@TempDir Path dir) throws Exception {
        LaunchPlan plan = new LaunchPlan(spec(dir, """
                model: m.gguf
                backend: nccl
                allSumDtype: bf16
                nodes:
                  - host: a
                  - {host: b, device: 1}
                  - host: c
                """));
        assertThat(plan.engineOptions(1)).isEqualTo("comm=nccl;threads=0;comm_options=device=1;all_sum_dtype=bf16");
        assertThat(plan.engineOptions(2)).isEqualTo("comm=nccl;threads=0;all_sum_dtype=bf16");
        List<String> argv = plan.mpirunArgv("h");
        assertThat(argv).contains("--ds4.distributed.all-sum-dtype=bf16");
        assertThat(argv.stream().filter(a -> a.endsWith(";all_sum_dtype=bf16"))).hasSize(2);

        LaunchPlan f16 = new LaunchPlan(spec(dir, "model: m\nallSumDtype: f16\nnodes: [{host: a}, {host: b}]\n"));
        assertThat(f16.engineOptions(1)).isEqualTo("comm=mpi;threads=0;all_sum_dtype=f16");
        assertThat(f16.mpirunArgv("h")).contains("--ds4.distributed.all-sum-dtype=f16");
    }

    @Test
    void anF32AllSumRendersExactlyLikeTheDefault(@TempDir Path dir) throws Exception {
        ClusterSpec plain = spec(dir, "model: m\nnodes: [{host: a}, {host: b}]\n");
        ClusterSpec f32 = spec(dir, "model: m\nallSumDtype: f32\nnodes: [{host: a}, {host: b}]\n");
        assertThat(plain.allSumDtype()).isEqualTo("f32");
        assertThat(f32.allSumDtype()).isEqualTo("f32");
        List<String> argv = new LaunchPlan(f32).mpirunArgv("h");
        assertThat(argv).isEqualTo(new LaunchPlan(plain).mpirunArgv("h"));
        assertThat(String.join(" ", argv)).doesNotContain("all_sum_dtype").doesNotContain("all-sum-dtype");
    }

    @Test
    void anUnknownAllSumDtypeIsRejectedWithTheKey(@TempDir Path dir) throws Exception {
        assertThatThrownBy(() -> spec(dir, "model: m\nallSumDtype: fp8\nnodes: [{host: a}]\n"))
                .hasMessageContaining("'allSumDtype' must be one of [f32, f16, bf16]").hasMessageContaining("fp8");
        // one payload type for the whole cluster: not a per-node key
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, allSumDtype: f16}]\n"))
                .hasMessageContaining("node a: unknown key 'allSumDtype'");
    }

    @Test
    void badEngineBackendOrDeviceIsRejectedWithTheNode(@TempDir Path dir) throws Exception {
        assertThatThrownBy(() -> spec(dir, "model: m\nengineBackend: rocm\nnodes: [{host: a}]\n"))
                .hasMessageContaining("'engineBackend' must be one of [cpu, cuda]").hasMessageContaining("rocm");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, engineBackend: gpu}]\n"))
                .hasMessageContaining("node a: 'engineBackend' must be one of [cpu, cuda]");
        assertThatThrownBy(() -> spec(dir, "model: m\nengineBackend: cuda\nnodes: [{host: a, device: -1}]\n"))
                .hasMessageContaining("node a: 'device' must be >= 0");
        assertThatThrownBy(() -> spec(dir, "model: m\nengineBackend: cuda\nnodes: [{host: a, device: 1.5}]\n"))
                .hasMessageContaining("node a: 'device' must be a CUDA device index").hasMessageContaining("1.5");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, device: 1}]\n"))
                .hasMessageContaining("node a: 'device' needs engineBackend cuda or backend nccl");
        // with NCCL a cpu rank's device is the GPU its all-reduce uses
        assertThat(new LaunchPlan(spec(dir, "model: m\nbackend: nccl\nnodes: [{host: a}, {host: b, device: 1}]\n"))
                .engineOptions(1)).isEqualTo("comm=nccl;threads=0;comm_options=device=1");
    }

    @Test
    void badValuesAreRejectedWithTheOffendingKey(@TempDir Path dir) throws Exception {
        assertThatThrownBy(() -> spec(dir, "nodes: [{host: a}]\n")).hasMessageContaining("'model' is required");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: []\n")).hasMessageContaining("at least one node");
        assertThatThrownBy(() -> spec(dir, "model: m\nmodle: x\nnodes: [{host: a}]\n")).hasMessageContaining("unknown key 'modle'");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, experts: '0:10'}, {host: b}]\n"))
                .hasMessageContaining("every node sets 'experts'");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, experts: '0:10'}, {host: b, experts: '5:20'}]\n"))
                .hasMessageContaining("overlap");
        assertThatThrownBy(() -> spec(dir, "model: m\nport: http\nnodes: [{host: a}]\n")).hasMessageContaining("'port' must be an integer");
        assertThatThrownBy(() -> spec(dir, "model: [unclosed\n")).hasMessageContaining("not valid YAML");
        assertThatThrownBy(() -> new LaunchPlan(spec(dir, "model: m\nbackend: jaccl\nnodes: [{host: a}]\n")))
                .hasMessageContaining("only mpi and nccl can be launched");
        LaunchPlan nccl = new LaunchPlan(spec(dir, "model: m\nbackend: nccl\nnodes: [{host: a}, {host: b}]\n"));
        assertThat(nccl.engineOptions(1)).startsWith("comm=nccl;");
        assertThat(nccl.mpirunArgv("h")).contains("--ds4.distributed.backend=nccl", "NCCL_NVLS_ENABLE=0");
        assertThatThrownBy(() -> spec(dir, "nodes: [{host: a, model: x.gguf}, {host: b}]\n"))
                .hasMessageContaining("'model' is required").hasMessageContaining("node b does not");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, model: ''}]\n")).hasMessageContaining("node a: 'model' is empty");
        assertThatThrownBy(() -> spec(dir, "model: m\nexpertCompact: yes-please\nnodes: [{host: a}]\n"))
                .hasMessageContaining("'expertCompact' must be true or false");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, expertCompact: 3}]\n"))
                .hasMessageContaining("node a: 'expertCompact' must be true or false");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, modle: x}]\n")).hasMessageContaining("unknown key 'modle'");
    }

    @Test
    void severalRanksOnOneHostShareItsSlotsInRankOrderWithOneGpuEach(@TempDir Path dir) throws Exception {
        LaunchPlan plan = new LaunchPlan(spec(dir, """
                model: m.gguf
                backend: nccl
                engineBackend: cuda
                nodes:
                  - {host: gpu-a, slots: 2, devices: [0, 1]}
                  - {host: gpu-b, slots: 2}
                """));
        assertThat(plan.hostfile()).contains("gpu-a slots=2\ngpu-b slots=2\n");
        List<String> argv = plan.mpirunArgv("h");
        String line = String.join(" ", argv);
        assertThat(line).contains("--map-by slot").contains("--ds4.distributed.world-size=4");
        assertThat(argv.stream().filter(":"::equals)).hasSize(3);
        // every app context names its host, so rank r runs on its own entry's host
        assertThat(line).contains("-np 1 --host gpu-a:2 ./scripts/run --model m.gguf")
                .contains(": -np 1 --host gpu-a:2 ./scripts/ds4j-tool follow --model m.gguf --options "
                        + "comm=nccl;threads=0;backend=cuda;device=1;comm_options=device=1 :")
                .contains(": -np 1 --host gpu-b:2 ./scripts/ds4j-tool follow --model m.gguf --options "
                        + "comm=nccl;threads=0;backend=cuda;device=0 :")
                .endsWith("--host gpu-b:2 ./scripts/ds4j-tool follow --model m.gguf --options "
                        + "comm=nccl;threads=0;backend=cuda;device=1;comm_options=device=1");
        assertThat(argv).contains("--ds4.engine.device=0");
    }

    @Test
    void aRepeatedHostIsOneRankPerEntryAndNamesEachRanksFile(@TempDir Path dir) throws Exception {
        LaunchPlan plan = new LaunchPlan(spec(dir, """
                model: /m/part{rank}.gguf
                expertCompact: true
                nodes:
                  - {host: localhost, experts: "0:8"}
                  - {host: other, experts: "8:12"}
                  - {host: localhost, experts: "12:16"}
                """));
        assertThat(plan.hostfile()).contains("localhost slots=2\nother slots=1\n");
        String line = String.join(" ", plan.mpirunArgv("h"));
        assertThat(line).contains("-np 1 --host localhost:2 ./scripts/run --model /m/part0.gguf")
                .contains(": -np 1 --host other:1 ./scripts/ds4j-tool follow --model /m/part1.gguf --options "
                        + "comm=mpi;threads=0;expert_range=8:12;expert_compact=1")
                .contains(": -np 1 --host localhost:2 ./scripts/ds4j-tool follow --model /m/part2.gguf --options "
                        + "comm=mpi;threads=0;expert_range=12:16;expert_compact=1");
        // a cpu cluster with one rank per host renders as before: no --host per rank
        assertThat(String.join(" ", new LaunchPlan(spec(dir, "model: m\nnodes: [{host: a}, {host: b}]\n")).mpirunArgv("h")))
                .contains("--map-by node").doesNotContain("--host ");
        ClusterSpec two = spec(dir, "model: m\nnodes: [{host: localhost, slots: 2}]\n");
        assertThat(two.worldSize()).isEqualTo(2);
        assertThat(new LaunchPlan(two).engineOptions(1)).isEqualTo("comm=mpi;threads=0");
    }

    @Test
    void badSlotsOrDevicesAreRejectedWithTheNode(@TempDir Path dir) throws Exception {
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, slots: 0}]\n")).hasMessageContaining("node a: 'slots' must be 1..1024");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, slots: two}]\n")).hasMessageContaining("'slots' must be an integer");
        assertThatThrownBy(() -> spec(dir, "model: m\nengineBackend: cuda\nnodes: [{host: a, slots: 2, devices: [0]}]\n"))
                .hasMessageContaining("node a: 'devices' lists 1 GPU(s) for 2 slot(s)");
        assertThatThrownBy(() -> spec(dir, "model: m\nengineBackend: cuda\nnodes: [{host: a, slots: 2, device: 1}]\n"))
                .hasMessageContaining("node a: 'device' names one GPU but the node has 2 slots");
        assertThatThrownBy(() -> spec(dir, "model: m\nengineBackend: cuda\nnodes: [{host: a, slots: 2, devices: 0}]\n"))
                .hasMessageContaining("'devices' must be a list");
        assertThatThrownBy(() -> spec(dir, "model: m\nengineBackend: cuda\nnodes: [{host: a, slots: 2, devices: [0, -1]}]\n"))
                .hasMessageContaining("device indexes >= 0");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, slots: 2, devices: [0, 1]}]\n"))
                .hasMessageContaining("node a: 'devices' needs engineBackend cuda or backend nccl");
        assertThatThrownBy(() -> spec(dir, "model: m\nnodes: [{host: a, slots: 2, experts: '0:4'}]\n"))
                .hasMessageContaining("list the host once per rank");
        assertThatThrownBy(() -> spec(dir, "model: m\nbackend: nccl\nnodes: [{host: a, device: 1}, {host: a, device: 1}]\n"))
                .hasMessageContaining("host a: GPU 1 is given to two ranks");
        // under MPI two cuda ranks may share a GPU (how a one-GPU machine tests expert parallelism)
        assertThat(spec(dir, "model: m\nengineBackend: cuda\nnodes: [{host: a, slots: 2, devices: [0, 0]}]\n").worldSize()).isEqualTo(2);
    }

    @Test
    void theCollectiveTimeoutGoesToEveryRankNextToNcclsDevice(@TempDir Path dir) throws Exception {
        LaunchPlan mpi = new LaunchPlan(spec(dir, "model: m\ncommTimeoutMs: 5000\nnodes: [{host: a}, {host: b}]\n"));
        assertThat(mpi.mpirunArgv("h")).contains("--ds4.distributed.comm-options=timeout_ms=5000");
        assertThat(mpi.engineOptions(1)).isEqualTo("comm=mpi;threads=0;comm_options=timeout_ms=5000");
        LaunchPlan nccl = new LaunchPlan(spec(dir, "model: m\nbackend: nccl\ncommTimeoutMs: 0\n"
                + "nodes: [{host: a, device: 1}, {host: b, device: 2}]\n"));
        assertThat(nccl.mpirunArgv("h")).contains("--ds4.distributed.comm-options=device=1,timeout_ms=0");
        assertThat(nccl.engineOptions(1)).isEqualTo("comm=nccl;threads=0;comm_options=device=2,timeout_ms=0");
        assertThatThrownBy(() -> spec(dir, "model: m\ncommTimeoutMs: -1\nnodes: [{host: a}]\n"))
                .hasMessageContaining("'commTimeoutMs' must be >= 0");
    }

    @Test
    void theCommittedExampleIsValid() throws Exception {
        ClusterSpec spec = LaunchCli.load(Path.of("helm-like-launch/values.example.yaml"));
        assertThat(spec.nodes()).hasSizeGreaterThan(1);
        assertThat(new LaunchPlan(spec).mpirunArgv("h")).contains("follow");
    }

    private static ClusterSpec spec(Path dir, String yaml) throws Exception {
        Path p = Files.createTempFile(dir, "v", ".yaml");
        Files.writeString(p, yaml);
        return LaunchCli.load(p);
    }

    @Test
    void recoveryIntervalMsSetsTheLeadersRecoveryAndZeroTurnsItOff(@TempDir Path dir) throws Exception {
        Path every = dir.resolve("every.yaml");
        Files.writeString(every, "model: m.gguf\nrepo: /r\nrecoveryIntervalMs: 8000\nnodes:\n  - host: a\n  - host: b\n");
        assertThat(new LaunchPlan(LaunchCli.load(every)).mpirunArgv("h"))
                .contains("--ds4.distributed.recovery.interval=8000ms", "--ds4.distributed.recovery.respawn-tool=/r/scripts/ds4j-tool");
        Path off = dir.resolve("off.yaml");
        Files.writeString(off, "model: m.gguf\nrecoveryIntervalMs: 0\nnodes:\n  - host: a\n  - host: b\n");
        List<String> argv = new LaunchPlan(LaunchCli.load(off)).mpirunArgv("h");
        assertThat(argv).contains("--ds4.distributed.recovery.enabled=false");
        assertThat(String.join(" ", argv)).doesNotContain("respawn-tool").doesNotContain("recovery.interval");
        Path bad = dir.resolve("bad.yaml");
        Files.writeString(bad, "model: m.gguf\nrecoveryIntervalMs: -1\nnodes:\n  - host: a\n");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> LaunchCli.load(bad))
                .hasMessageContaining("'recoveryIntervalMs' must be >= 0");
    }
}
