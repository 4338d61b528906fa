package io.ds4j.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;
import org.springframework.boot.validation.autoconfigure.ValidationAutoConfiguration;
import org.springframework.boot.autoconfigure.AutoConfigurations;
import org.springframework.context.annotation.Configuration;

/** Binding and validation of the ds4.* properties: bad values stop the context with a message naming the property. */
class Ds4jPropertiesValidationTest {
    @Configuration
    @EnableConfigurationProperties(Ds4jProperties.class)
    static class Config {}

    final ApplicationContextRunner runner = new ApplicationContextRunner()
            .withConfiguration(AutoConfigurations.of(ValidationAutoConfiguration.class))
            .withUserConfiguration(Config.class);

    static String failureText(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) sb.append(c.getMessage()).append('\n');
        return sb.toString();
    }

    @Test
    void defaultsBind() {
        runner.run(ctx -> {
            assertThat(ctx).hasNotFailed();
            Ds4jProperties p = ctx.getBean(Ds4jProperties.class);
            assertThat(p.engine().contextSize()).isEqualTo(4096);
            assertThat(p.server().queueLimit()).isEqualTo(16);
            assertThat(p.server().reasoningField()).isEqualTo(Ds4jProperties.ReasoningField.reasoning_content);
            assertThat(p.sampling().temperature()).isEqualTo(1.0);
            assertThat(p.distributed().enabled()).isFalse();
            assertThat(p.model().effectiveId()).isEqualTo("none");
            assertThat(p.engine().backend()).isEqualTo(Ds4jProperties.EngineBackend.cpu);
            assertThat(p.engine().device()).isZero();
        });
    }

    @Test
    void engineBackendCudaBindsWithItsDevice() {
        runner.withPropertyValues("ds4.engine.backend=cuda", "ds4.engine.device=3").run(ctx -> {
            assertThat(ctx).hasNotFailed();
            Ds4jProperties.Engine e = ctx.getBean(Ds4jProperties.class).engine();
            assertThat(e.backend()).isEqualTo(Ds4jProperties.EngineBackend.cuda);
            assertThat(e.device()).isEqualTo(3);
        });
        // enum values bind case-insensitively
        runner.withPropertyValues("ds4.engine.backend=CUDA").run(ctx ->
                assertThat(ctx.getBean(Ds4jProperties.class).engine().backend()).isEqualTo(Ds4jProperties.EngineBackend.cuda));
    }

    @Test
    void badEngineBackendOrDeviceNamesTheProperty() {
        runner.withPropertyValues("ds4.engine.backend=rocm").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.engine.backend").contains("rocm");
        });
        runner.withPropertyValues("ds4.engine.backend=cuda", "ds4.engine.device=-1").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("engine.device");
        });
        runner.withPropertyValues("ds4.engine.device=gpu0").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.engine.device").contains("gpu0");
        });
    }

    @Test
    void schedulerDefaultsLeaveTheSizesToStartupAndBadValuesNameTheProperty() {
        runner.run(ctx -> {
            Ds4jProperties.Scheduler s = ctx.getBean(Ds4jProperties.class).scheduler();
            assertThat(s.maxConcurrent()).isNull();
            assertThat(s.cacheSessions()).isNull();
            assertThat(s.sessionMemory()).isNull();
            assertThat(s.samplingThreads()).isNull();
            assertThat(s.stepTokens()).isEqualTo(256);
        });
        runner.withPropertyValues("ds4.scheduler.max-concurrent=8", "ds4.scheduler.cache-sessions=0",
                "ds4.scheduler.step-tokens=32", "ds4.scheduler.session-memory=2GB",
                "ds4.scheduler.sampling-threads=3").run(ctx -> {
            assertThat(ctx).hasNotFailed();
            Ds4jProperties.Scheduler s = ctx.getBean(Ds4jProperties.class).scheduler();
            assertThat(s.maxConcurrent()).isEqualTo(8);
            assertThat(s.cacheSessions()).isZero();
            assertThat(s.stepTokens()).isEqualTo(32);
            assertThat(s.sessionMemory().toGigabytes()).isEqualTo(2);
            assertThat(s.samplingThreads()).isEqualTo(3);
        });
        for (String bad : new String[] {"max-concurrent=0", "step-tokens=0", "cache-sessions=-1", "max-concurrent=many",
                "sampling-threads=0", "sampling-threads=257"}) {
            runner.withPropertyValues("ds4.scheduler." + bad).run(ctx -> {
                assertThat(ctx).as(bad).hasFailed();
                String name = bad.split("=")[0];
                String camel = java.util.regex.Pattern.compile("-(\\w)").matcher(name)
                        .replaceAll(m -> m.group(1).toUpperCase(java.util.Locale.ROOT));
                assertThat(failureText(ctx.getStartupFailure())).as(bad).containsAnyOf("scheduler." + name, "scheduler." + camel);
            });
        }
        runner.withPropertyValues("ds4.scheduler.session-memory=0B").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.scheduler.session-memory must be positive");
        });
    }

    @Test
    void theDiskCacheIsOffByDefaultAndBadBoundsNameTheProperty() {
        runner.run(ctx -> {
            Ds4jProperties.Disk d = ctx.getBean(Ds4jProperties.class).cache().disk();
            assertThat(d.enabled()).isFalse();
            assertThat(d.maxSize().toGigabytes()).isEqualTo(16);
            assertThat(d.minTokens()).isEqualTo(512);
        });
        runner.withPropertyValues("ds4.cache.disk.dir=/var/cache/ds4j", "ds4.cache.disk.max-size=2GB").run(ctx -> {
            Ds4jProperties.Disk d = ctx.getBean(Ds4jProperties.class).cache().disk();
            assertThat(d.enabled()).isTrue();
            assertThat(d.maxSize().toMegabytes()).isEqualTo(2048);
        });
        runner.withPropertyValues("ds4.cache.disk.max-size=0B").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.cache.disk.max-size");
        });
        runner.withPropertyValues("ds4.cache.disk.min-tokens=0").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("cache.disk.minTokens");
        });
    }

    @Test
    void aDeviceIndexNeedsTheCudaBackend() {
        runner.withPropertyValues("ds4.engine.device=1").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure()))
                    .contains("ds4.engine.device=1 needs ds4.engine.backend=cuda");
        });
        runner.withPropertyValues("ds4.engine.backend=cpu", "ds4.engine.device=0").run(ctx -> assertThat(ctx).hasNotFailed());
    }

    @Test
    void relaxedNamesBind(@TempDir Path dir) throws Exception {
        Path model = Files.writeString(dir.resolve("m.gguf"), "x");
        runner.withPropertyValues("ds4.model.path=" + model, "ds4.server.reasoning-field=both",
                "ds4.sampling.top-p=0.9", "ds4.distributed.all-sum-dtype=bf16", "ds4.engine.kv-precision=fp8")
                .run(ctx -> {
                    assertThat(ctx).hasNotFailed();
                    Ds4jProperties p = ctx.getBean(Ds4jProperties.class);
                    assertThat(p.model().effectiveId()).isEqualTo("m");
                    assertThat(p.server().reasoningField().content()).isTrue();
                    assertThat(p.server().reasoningField().plain()).isTrue();
                    assertThat(p.sampling().topP()).isEqualTo(0.9);
                    assertThat(p.distributed().allSumDtype()).isEqualTo(Ds4jProperties.AllSumDtype.bf16);
                });
    }

    @Test
    void outOfRangeValueNamesTheProperty() {
        runner.withPropertyValues("ds4.engine.context-size=3").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("engine.contextSize").contains("16");
        });
        runner.withPropertyValues("ds4.sampling.temperature=7").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("sampling.temperature");
        });
    }

    @Test
    void requestLimitsHaveDefaultsAndBadValuesNameTheProperty() {
        runner.run(ctx -> {
            var server = ctx.getBean(Ds4jProperties.class).server();
            assertThat(server.maxRequestSize().toMegabytes()).isEqualTo(32);
            assertThat(server.maxMessages()).isEqualTo(1024);
            assertThat(server.requestTimeout()).isZero();
            assertThat(server.idleTimeout()).isZero();
            assertThat(server.requestReadTimeout()).isZero();
        });
        runner.withPropertyValues("ds4.server.idle-timeout=-5s").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.server.idle-timeout");
        });
        runner.withPropertyValues("ds4.server.max-request-size=10B").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.server.max-request-size");
        });
        runner.withPropertyValues("ds4.server.max-messages=0").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("server.maxMessages");
        });
        runner.withPropertyValues("ds4.server.request-timeout=-1s").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.server.request-timeout");
        });
    }

    @Test
    void unknownEnumValueNamesTheProperty() {
        runner.withPropertyValues("ds4.server.reasoning-field=thoughts").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.server.reasoning-field").contains("thoughts");
        });
        runner.withPropertyValues("ds4.distributed.backend=tcp").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.distributed.backend");
        });
    }

    @Test
    void allSumDtypeAcceptsF32F16AndBf16WithF32AsTheDefault() {
        runner.withPropertyValues("ds4.distributed.enabled=true").run(ctx ->
                assertThat(ctx.getBean(Ds4jProperties.class).distributed().allSumDtype())
                        .isEqualTo(Ds4jProperties.AllSumDtype.f32));
        for (String t : new String[] {"f32", "f16", "bf16"}) {
            runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.all-sum-dtype=" + t).run(ctx -> {
                assertThat(ctx).hasNotFailed();
                assertThat(ctx.getBean(Ds4jProperties.class).distributed().allSumDtype().name()).isEqualTo(t);
            });
        }
    }

    @Test
    void unknownAllSumDtypeStopsStartupNamingTheProperty() {
        for (String bad : new String[] {"fp8", "f64", "int8"}) {
            runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.all-sum-dtype=" + bad).run(ctx -> {
                assertThat(ctx).hasFailed();
                assertThat(failureText(ctx.getStartupFailure())).contains("ds4.distributed.all-sum-dtype").contains(bad);
            });
        }
    }

    @Test
    void recoveryIsOnEveryFiveSecondsByDefaultAndABadIntervalNamesTheProperty() {
        runner.withPropertyValues("ds4.distributed.enabled=true").run(ctx -> {
            var r = ctx.getBean(Ds4jProperties.class).distributed().recovery();
            assertThat(r.enabled()).isTrue();
            assertThat(r.interval()).isEqualTo(java.time.Duration.ofSeconds(5));
            assertThat(r.respawnTool()).isEmpty();
        });
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.recovery.enabled=false",
                "ds4.distributed.recovery.interval=250ms").run(ctx -> {
            var r = ctx.getBean(Ds4jProperties.class).distributed().recovery();
            assertThat(r.enabled()).isFalse();
            assertThat(r.interval()).isEqualTo(java.time.Duration.ofMillis(250));
        });
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.recovery.interval=0s").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.distributed.recovery.interval must be positive");
        });
    }

    @Test
    void missingModelFileNamesTheProperty() {
        runner.withPropertyValues("ds4.model.path=/nonexistent/model.gguf").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.model.path").contains("/nonexistent/model.gguf");
        });
    }

    @Test
    void rankMustBeBelowWorldSize() {
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.rank=2",
                "ds4.distributed.world-size=2", "ds4.distributed.coordinator=h0:7000").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure()))
                    .contains("ds4.distributed.rank (2) must be smaller than ds4.distributed.world-size (2)");
        });
    }

    @Test
    void coordinatorRequiredForAClusterAndIgnoredWhenDisabled() {
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.backend=jaccl",
                "ds4.distributed.world-size=2").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.distributed.coordinator");
        });
        // MPI's launcher does the rendezvous; NCCL bootstraps its unique id through MPI
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.world-size=2")
                .run(ctx -> assertThat(ctx).hasNotFailed());
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.backend=nccl",
                "ds4.distributed.world-size=2", "ds4.distributed.comm-options=device=1,timeout_ms=60000")
                .run(ctx -> {
                    assertThat(ctx).hasNotFailed();
                    assertThat(ctx.getBean(Ds4jProperties.class).distributed().commOptions())
                            .isEqualTo("device=1,timeout_ms=60000");
                });
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.backend=nccl",
                "ds4.distributed.comm-options=device=1;threads=3").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.distributed.comm-options must not contain ';'");
        });
        runner.withPropertyValues("ds4.distributed.rank=5").run(ctx -> assertThat(ctx).hasNotFailed());
    }

    @Test
    void jacclNeedsAnExistingDevicesFile(@TempDir Path dir) throws Exception {
        String[] base = {"ds4.distributed.enabled=true", "ds4.distributed.backend=jaccl",
                "ds4.distributed.world-size=2", "ds4.distributed.rank=1", "ds4.distributed.coordinator=h0:7000"};
        runner.withPropertyValues(base).withPropertyValues("ds4.distributed.jaccl.ibv-devices=" + dir.resolve("none.json"))
                .run(ctx -> {
                    assertThat(ctx).hasFailed();
                    assertThat(failureText(ctx.getStartupFailure()))
                            .contains("ds4.distributed.jaccl.ibv-devices: no such file").contains("none.json");
                });
        Path devices = Files.writeString(dir.resolve("devices.json"), "[[null, \"rdma_en0\"], [\"rdma_en0\", null]]");
        runner.withPropertyValues(base).withPropertyValues("ds4.distributed.jaccl.ibv-devices=" + devices)
                .run(ctx -> {
                    assertThat(ctx).hasNotFailed();
                    assertThat(ctx.getBean(Ds4jProperties.class).distributed().jaccl().effectiveIbvDevices())
                            .isEqualTo(devices.toString());
                });
    }

    @Test
    void expertRangeMustBeAColonPair() {
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.expert-range=0-4").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure())).contains("ds4.distributed.expert-range must be A:B");
        });
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.expert-range=0:4").run(ctx ->
                assertThat(ctx.getBean(Ds4jProperties.class).distributed().expertRange()).isEqualTo("0:4"));
    }

    @Test
    void expertCompactBindsExplicitly() {
        runner.withPropertyValues("ds4.distributed.enabled=true", "ds4.distributed.expert-compact=true").run(ctx ->
                assertThat(ctx.getBean(Ds4jProperties.class).distributed().expertCompact()).isTrue());
        runner.withPropertyValues("ds4.distributed.expert-compact=true").run(ctx -> {
            assertThat(ctx).hasFailed();
            assertThat(failureText(ctx.getStartupFailure()))
                    .contains("ds4.distributed.expert-compact=true needs ds4.distributed.enabled=true");
        });
        runner.withPropertyValues("ds4.distributed.expert-compact=false").run(ctx ->
                assertThat(ctx.getBean(Ds4jProperties.class).distributed().expertCompact()).isFalse());
    }

    @Test
    void distributedProfileExampleBindsAndValidates(@TempDir Path dir) throws Exception {
        Path devices = Files.writeString(dir.resolve("jaccl.json"), "[]");
        try (var ctx = new org.springframework.boot.builder.SpringApplicationBuilder(Config.class,
                org.springframework.boot.validation.autoconfigure.ValidationAutoConfiguration.class)
                .web(org.springframework.boot.WebApplicationType.NONE).logStartupInfo(false)
                .profiles("distributed").properties("JACCL_IBV_DEVICES=" + devices).run()) {
            Ds4jProperties.Distributed d = ctx.getBean(Ds4jProperties.class).distributed();
            assertThat(d.enabled()).isTrue();
            assertThat(d.backend()).isEqualTo(Ds4jProperties.Backend.mpi);
            assertThat(d.worldSize()).isEqualTo(2);
            assertThat(d.allSumDtype()).isEqualTo(Ds4jProperties.AllSumDtype.f32);
            assertThat(d.jaccl().effectiveIbvDevices()).isEqualTo(devices.toString());
            // the leader keeps the loopback default of application.yml unless it is opened explicitly
            assertThat(ctx.getEnvironment().getProperty("server.address")).isEqualTo("127.0.0.1");
        }
        var bad = new org.springframework.boot.builder.SpringApplicationBuilder(Config.class,
                org.springframework.boot.validation.autoconfigure.ValidationAutoConfiguration.class)
                .web(org.springframework.boot.WebApplicationType.NONE).logStartupInfo(false)
                .profiles("distributed").properties("JACCL_IBV_DEVICES=" + devices);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> bad.run("--ds4.distributed.rank=2"))
                .satisfies(t -> assertThat(failureText(t)).contains("ds4.distributed.rank (2)"));
    }
}
