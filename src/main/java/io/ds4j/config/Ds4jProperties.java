package io.ds4j.config;

import jakarta.validation.Valid;
import jakarta.validation.constraints.DecimalMax;
import jakarta.validation.constraints.DecimalMin;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Min;
import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.NotNull;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.springframework.util.unit.DataSize;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * All ds4j settings under the {@code ds4} prefix (see docs/configuration.md).
 * Bound once at startup; Bean Validation plus the cross-field checks in the
 * compact constructors stop the application with a message naming the property.
 *
 * @param engine where the native library is and how the engine runs
 * @param model the GGUF model to serve (none: the server starts in a "no model" state)
 * @param sampling default sampling parameters (a request's fields override them)
 * @param server request limits, queueing and response options
 * @param scheduler continuous batching: how many sequences run together, step size, prefix cache
 * @param distributed expert-parallel operation across processes
 * @param cache the prefix cache beyond memory (session state on disk)
 */
@Validated
@ConfigurationProperties("ds4")
public record Ds4jProperties(
        @Valid @DefaultValue Engine engine,
        @Valid @DefaultValue Model model,
        @Valid @DefaultValue Sampling sampling,
        @Valid @DefaultValue Server server,
        @Valid @DefaultValue Scheduler scheduler,
        @Valid @DefaultValue Distributed distributed,
        @Valid @DefaultValue Cache cache) {

    /**
     * @param library path of libds4j.so (default: the build output of scripts/setup)
     * @param threads worker threads of the native pool (0 = all cores)
     * @param contextSize tokens of each serving session (one per running sequence; the first is allocated at startup)
     * @param prefillChunk tokens per batched prefill step (0 = engine default)
     * @param kvPrecision f32 | fp8
     * @param backend where the engine computes: cpu | cuda (engine option backend=; cuda needs a
     *     libds4j built with the CUDA toolkit and an NVIDIA GPU)
     * @param device CUDA device index of the cuda backend (engine option device=); must stay 0 with cpu
     */
    public record Engine(
            @NotBlank @DefaultValue("build/native/libds4j.so") String library,
            @Min(0) @Max(1024) @DefaultValue("0") int threads,
            @Min(16) @Max(1048576) @DefaultValue("4096") int contextSize,
            @Min(0) @Max(65536) @DefaultValue("0") int prefillChunk,
            @NotNull @DefaultValue("f32") KvPrecision kvPrecision,
            @NotNull @DefaultValue("cpu") EngineBackend backend,
            @Min(0) @DefaultValue("0") int device) {
        public Engine {
            if (backend == EngineBackend.cpu && device > 0) {
                // a device index only means something to the cuda backend; ignoring it would hide a typo
                throw new IllegalArgumentException("ds4.engine.device=" + device + " needs ds4.engine.backend=cuda "
                        + "(the cpu backend uses no GPU)");
            }
        }
    }

    public enum KvPrecision { f32, fp8 }

    /** Compute backend of the engine (engine option backend=); not the collective {@link Backend}. */
    public enum EngineBackend { cpu, cuda }

    /**
     * @param path GGUF file; empty means no model is configured
     * @param id the model id reported by /v1/models (default: file name without .gguf)
     * @param aliases other model names requests may use for it
     */
    public record Model(@DefaultValue("") String path, @DefaultValue("") String id,
                        @DefaultValue("ds4j") java.util.List<String> aliases) {
        public Model {
            if (path != null && !path.isBlank() && !Files.isRegularFile(Path.of(path))) {
                throw new IllegalArgumentException("ds4.model.path: no such file: " + Path.of(path).toAbsolutePath());
            }
            aliases = aliases == null ? java.util.List.of() : java.util.List.copyOf(aliases);
        }

        public boolean configured() {
            return path != null && !path.isBlank();
        }

        public String effectiveId() {
            if (id != null && !id.isBlank()) return id;
            if (!configured()) return "none";
            String name = Path.of(path).getFileName().toString();
            return name.endsWith(".gguf") ? name.substring(0, name.length() - 5) : name;
        }
    }

    /**
     * Defaults applied when a request leaves a field out.
     *
     * @param temperature 0 = greedy
     * @param topP 1 = off
     * @param topK 0 = off
     * @param minP 0 = off
     * @param repeatPenalty 1 = off
     * @param presencePenalty OpenAI presence penalty
     * @param frequencyPenalty OpenAI frequency penalty
     * @param penaltyLastN tokens of history the penalties look at
     */
    public record Sampling(
            @DecimalMin("0") @DecimalMax("2") @DefaultValue("1.0") double temperature,
            @DecimalMin("0") @DecimalMax("1") @DefaultValue("1.0") double topP,
            @Min(0) @DefaultValue("0") int topK,
            @DecimalMin("0") @DecimalMax("1") @DefaultValue("0") double minP,
            @DecimalMin("0") @DefaultValue("1.0") double repeatPenalty,
            @DecimalMin("-2") @DecimalMax("2") @DefaultValue("0") double presencePenalty,
            @DecimalMin("-2") @DecimalMax("2") @DefaultValue("0") double frequencyPenalty,
            @Min(0) @DefaultValue("64") int penaltyLastN) {}

    /** Where the model's reasoning text goes in responses. */
    public enum ReasoningField {
        reasoning_content, reasoning, both;

        public boolean content() {
            return this != reasoning;
        }

        public boolean plain() {
            return this != reasoning_content;
        }
    }

    /**
     * @param queueLimit requests that may wait while one generates; more get 429
     * @param maxPromptTokens longest accepted prompt (0 = the context size)
     * @param maxOutputTokens upper bound of max_tokens (and its default)
     * @param reasoningField reasoning_content | reasoning | both
     * @param keepAliveInterval SSE keep-alive comment period while the prompt is evaluated or queued
     * @param retryAfter value of the Retry-After header of a 429
     * @param toolCallMemory tool calls remembered for exact replay
     * @param shutdownDrain how long shutdown lets running and queued requests finish before stopping them
     * @param defaultThinking thinking mode of chat requests that do not choose one (off | high | max)
     * @param maxRequestSize largest accepted request body; a larger one gets 413
     * @param maxMessages most entries of a chat request's messages; more get 400
     * @param requestTimeout wall-clock limit of one generation request from its arrival, queueing included
     *     (0 = none); past it the generation stops and the request gets 408 (an error event once streaming)
     * @param idleTimeout a connection that sends no request for this long is closed (0, the default = never)
     * @param requestReadTimeout a request body must arrive within this long, in total and between reads
     *     (0, the default = no limit)
     */
    public record Server(
            @Min(0) @Max(100000) @DefaultValue("16") int queueLimit,
            @Min(0) @DefaultValue("0") int maxPromptTokens,
            @Min(1) @DefaultValue("4096") int maxOutputTokens,
            @NotNull @DefaultValue("reasoning_content") ReasoningField reasoningField,
            @NotNull @DefaultValue("5s") Duration keepAliveInterval,
            @NotNull @DefaultValue("1s") Duration retryAfter,
            @Min(0) @DefaultValue("1024") int toolCallMemory,
            @NotNull @DefaultValue("20s") Duration shutdownDrain,
            @NotNull @DefaultValue("high") Thinking defaultThinking,
            @NotNull @DefaultValue("32MB") DataSize maxRequestSize,
            @Min(1) @Max(1000000) @DefaultValue("1024") int maxMessages,
            @NotNull @DefaultValue("0s") Duration requestTimeout,
            @NotNull @DefaultValue("0s") Duration idleTimeout,
            @NotNull @DefaultValue("0s") Duration requestReadTimeout) {
        public Server {
            if (keepAliveInterval != null && keepAliveInterval.isNegative()) {
                throw new IllegalArgumentException("ds4.server.keep-alive-interval must not be negative");
            }
            if (maxRequestSize != null && (maxRequestSize.toBytes() < 1024 || maxRequestSize.toBytes() > Integer.MAX_VALUE)) {
                throw new IllegalArgumentException("ds4.server.max-request-size must be between 1KB and 2047MB (got "
                        + maxRequestSize + ")");
            }
            if (requestTimeout != null && requestTimeout.isNegative()) {
                throw new IllegalArgumentException("ds4.server.request-timeout must not be negative (0 = no limit)");
            }
            if (idleTimeout != null && idleTimeout.isNegative()) {
                throw new IllegalArgumentException("ds4.server.idle-timeout must not be negative (0 = never)");
            }
            if (requestReadTimeout != null && requestReadTimeout.isNegative()) {
                throw new IllegalArgumentException("ds4.server.request-read-timeout must not be negative (0 = no limit)");
            }
        }
    }

    public enum Thinking { off, high, max }

    /**
     * Continuous batching (docs/architecture.md: the scheduler).
     *
     * @param maxConcurrent sequences that generate together, each in its own session of
     *     ds4.engine.context-size tokens (unset = chosen at startup from the memory available:
     *     min(64, session-memory / bytes of one session), at least 1); beyond it requests wait in the
     *     queue (ds4.server.queue-limit), beyond that 429
     * @param stepTokens token rows one step evaluates: every running sequence's decode token, then
     *     prefill chunks of joining prompts while the rest of this budget allows (at least one chunk
     *     per step, so a prompt always advances)
     * @param cacheSessions idle sessions kept with their tokens as the prefix cache (unset = as many as
     *     max-concurrent; 0 = none: every request starts from an empty session)
     * @param sessionMemory memory the sessions may use, for the default max-concurrent (unset = half of
     *     the memory available after the model loaded: host memory, or the GPU's with backend=cuda)
     * @param parkSharedPrefixes a request whose prompt shares at least 64 tokens with the prompt of a
     *     sequence still prefilling them waits (parked, without a session) until that sequence has evaluated
     *     the shared part, then copies it instead of evaluating it too (default on; no effect with
     *     cache-sessions=0)
     */
    public record Scheduler(
            @Min(1) @Max(4096) Integer maxConcurrent,
            @Min(1) @Max(1048576) @DefaultValue("256") int stepTokens,
            @Min(0) @Max(4096) Integer cacheSessions,
            DataSize sessionMemory,
            @DefaultValue("true") boolean parkSharedPrefixes,
            @Min(1) @Max(256) Integer samplingThreads) {
        public Scheduler {
            if (sessionMemory != null && sessionMemory.toBytes() <= 0) {
                throw new IllegalArgumentException("ds4.scheduler.session-memory must be positive (leave it unset for the "
                        + "default), got " + sessionMemory);
            }
        }
    }

    /** Collective backend (engine option comm=); {@code local} is the engine's one-rank backend for tests. */
    public enum Backend { mpi, nccl, jaccl, local }

    /**
     * Payload of the routed-expert all_sum (engine option all_sum_dtype=): {@code f32}, or a 16-bit
     * float to which every rank rounds its partial sum before the sum (half the bytes sent).
     */
    public enum AllSumDtype {
        f32, f16, bf16;

        /** Whether the engine needs the option: f32 is its default, so it is never sent. */
        public boolean sentToEngine() {
            return this != f32;
        }
    }

    /**
     * Expert parallelism: process {@code rank} of {@code worldSize} owns a
     * contiguous slice of the routed experts; partial MoE outputs are summed
     * across processes with the chosen backend.
     *
     * @param enabled run as one rank of a cluster
     * @param backend mpi | nccl | jaccl | local (engine option comm=)
     * @param rank this process, 0 .. world-size-1 (rank 0 serves HTTP); must match the engine's
     * @param worldSize number of processes; must match the engine's
     * @param coordinator host:port rank 0 listens on for the rendezvous (not used by mpi, whose
     *     launcher does the rendezvous, nor by nccl, which bootstraps through MPI, nor by local)
     * @param expertRange this rank's routed experts "A:B" (engine option expert_range; empty = even split)
     * @param commPlugin path of the backend plugin (engine option comm_plugin; empty = next to libds4j)
     * @param commOptions backend options (engine option comm_options, e.g. "device=1,timeout_ms=60000" for nccl)
     * @param jaccl JACCL settings
     * @param expertCompact this rank's model file holds only its own routed experts, made by
     *     {@code ds4j-tool slice} (engine option expert_compact=1); needs {@code enabled} when set. Not read
     *     from the seed's DS4_EXPERT_COMPACT, which means something else there (compaction of the
     *     selected-expert list, which ds4j always does; docs/distributed.md)
     * @param allSumDtype payload of the routed-expert all_sum: f32 | f16 | bf16 (engine option
     *     all_sum_dtype, sent only when not f32; the leader's value is adopted by every rank at open)
     * @param allsumOverlap compute the shared expert while the routed all_sum travels (engine option
     *     allsum_overlap, default on, sent only when off; the leader's value is adopted by every rank at open;
     *     the same bits either way)
     */
    public record Distributed(
            @DefaultValue("false") boolean enabled,
            @NotNull @DefaultValue("mpi") Backend backend,
            @Min(0) @DefaultValue("0") int rank,
            @Min(1) @Max(4096) @DefaultValue("1") int worldSize,
            @DefaultValue("") String coordinator,
            @DefaultValue("") String expertRange,
            @DefaultValue("") String commPlugin,
            @DefaultValue("") String commOptions,
            @Valid @DefaultValue Jaccl jaccl,
            Boolean expertCompact,
            @NotNull @DefaultValue("f32") AllSumDtype allSumDtype,
            @Valid @DefaultValue Recovery recovery,
            @DefaultValue("true") boolean allsumOverlap) {
        public Distributed {
            if (recovery == null) recovery = new Recovery(true, Duration.ofSeconds(5), "");
            if (Boolean.TRUE.equals(expertCompact) && !enabled) {
                // a single process serves every expert, so a per-rank file cannot be meant
                throw new IllegalArgumentException("ds4.distributed.expert-compact=true needs ds4.distributed.enabled=true "
                        + "(one process serves all routed experts from the full model file)");
            }
            // not the seed's DS4_EXPERT_COMPACT: there it selects how non-owned experts are skipped
            // (compaction), which ds4j always does, not a per-rank model file
            if (expertCompact == null) expertCompact = false;
            if (expertRange == null) expertRange = "";
            if (commPlugin == null) commPlugin = "";
            if (commOptions == null) commOptions = "";
            if (enabled) {
                if (!expertRange.isBlank() && !expertRange.trim().matches("\\d{1,9}:\\d{1,9}")) {
                    throw new IllegalArgumentException("ds4.distributed.expert-range must be A:B (routed experts [A, B) of "
                            + "this rank), got '" + expertRange + "'");
                }
                if (rank >= worldSize) {
                    throw new IllegalArgumentException("ds4.distributed.rank (" + rank
                            + ") must be smaller than ds4.distributed.world-size (" + worldSize + ")");
                }
                if (commOptions.contains(";")) {
                    throw new IllegalArgumentException("ds4.distributed.comm-options must not contain ';' (separate "
                            + "backend options with ','), got '" + commOptions + "'");
                }
                // mpi and nccl get their ranks from mpirun (nccl bootstraps its id through MPI)
                boolean needsCoordinator = backend == Backend.jaccl;
                if (worldSize > 1 && needsCoordinator && (coordinator == null || !coordinator.matches("[^:\\s]+:\\d{1,5}"))) {
                    throw new IllegalArgumentException("ds4.distributed.coordinator must be host:port when "
                            + "ds4.distributed.world-size > 1 with backend " + backend + " (got '" + coordinator + "')");
                }
                if (backend == Backend.jaccl) {
                    String dev = jaccl == null ? "" : jaccl.effectiveIbvDevices();
                    if (dev.isBlank()) {
                        throw new IllegalArgumentException("ds4.distributed.jaccl.ibv-devices (or the JACCL_IBV_DEVICES "
                                + "environment variable) must name the IBV devices JSON file when ds4.distributed.backend=jaccl");
                    }
                    if (!Files.isRegularFile(Path.of(dev))) {
                        throw new IllegalArgumentException("ds4.distributed.jaccl.ibv-devices: no such file: "
                                + Path.of(dev).toAbsolutePath());
                    }
                }
            }
        }
    }

    /**
     * The leader's automatic recovery after a lost rank (comm=mpi under mpirun --enable-recovery): new follower
     * processes are spawned in place of the lost group (ds4j_engine_recover) and serving resumes without restarting
     * this JVM.
     *
     * @param enabled try it after every cluster fault (default true; only on the leader of a cluster)
     * @param interval the pause before the first attempt and between failed attempts
     * @param respawnTool the ds4j-tool the new followers run (engine option respawn_tool); empty: the
     *     DS4J_RESPAWN_TOOL environment variable, else ds4j-tool beside libds4j
     */
    public record Recovery(
            @DefaultValue("true") boolean enabled,
            @NotNull @DefaultValue("5s") Duration interval,
            @DefaultValue("") String respawnTool) {
        public Recovery {
            if (interval == null) interval = Duration.ofSeconds(5);
            if (respawnTool == null) respawnTool = "";
            if (interval.isNegative() || interval.isZero()) {
                throw new IllegalArgumentException("ds4.distributed.recovery.interval must be positive, got " + interval);
            }
            if (respawnTool.contains(";")) {
                throw new IllegalArgumentException("ds4.distributed.recovery.respawn-tool must not contain ';', got '"
                        + respawnTool + "'");
            }
        }
    }

    /** @param ibvDevices path of the JACCL_IBV_DEVICES JSON (default: that environment variable) */
    public record Jaccl(@DefaultValue("") String ibvDevices) {
        public String effectiveIbvDevices() {
            if (ibvDevices != null && !ibvDevices.isBlank()) return ibvDevices;
            String env = System.getenv("JACCL_IBV_DEVICES");
            return env == null ? "" : env;
        }
    }

    /** @param disk session state written to disk (docs/configuration.md: the disk cache) */
    public record Cache(@Valid @DefaultValue Disk disk) {}

    /**
     * The prefix cache on disk: when a request ends, the state of its prompt (up to the token before the
     * last, where the next turn of a conversation diverges) is written to {@code dir}; a later request
     * whose prompt extends such a prefix further than any session in memory loads it instead of
     * evaluating it, also after a restart. Files are checked on read (checksum, model fingerprint);
     * a damaged or foreign one is removed. Not used with {@code ds4.distributed.enabled}.
     *
     * @param dir directory of the state files (empty, the default = no disk cache); the files go into
     *     a subdirectory named for the model's fingerprint, so several models can share it
     * @param maxSize bound of that subdirectory; least recently used files are removed beyond it
     * @param minTokens prompts shorter than this are not written (their evaluation is cheap)
     */
    public record Disk(
            @DefaultValue("") String dir,
            @NotNull @DefaultValue("16GB") DataSize maxSize,
            @Min(1) @DefaultValue("512") int minTokens) {
        public Disk {
            if (maxSize != null && maxSize.toBytes() <= 0) {
                throw new IllegalArgumentException("ds4.cache.disk.max-size must be positive, got " + maxSize);
            }
        }

        public boolean enabled() {
            return dir != null && !dir.isBlank();
        }
    }
}
