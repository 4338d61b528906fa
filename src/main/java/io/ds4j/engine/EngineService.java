package io.ds4j.engine;

import io.ds4j.config.Ds4jProperties;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.DisposableBean;
import org.springframework.stereotype.Service;

/**
 * Owns the native engine: loads the library, opens the configured model,
 * holds the serving sessions ({@link SessionPool}: one per running sequence,
 * idle ones kept as the prefix cache) and runs every engine call on one
 * dedicated platform thread (native calls block for long; an engine and its
 * sessions are used from one thread). {@link #step} is the one place a
 * batched step reaches the engine.
 */
@Service
public class EngineService implements DisposableBean {
    private static final Logger log = LoggerFactory.getLogger(EngineService.class);

    private final Ds4jNative nativeLib;
    private final Ds4jProperties props;
    private final ExecutorService owner;
    private volatile Thread ownerThread;
    private volatile MemorySegment engine = MemorySegment.NULL;
    /** Owner thread only (the field is volatile for modelLoaded()). */
    private volatile SessionPool pool;
    private volatile int prefillChunk = 64;
    private volatile int checkpointInterval = 64;
    private volatile long sessionBytes;
    private volatile long freeMemory = -1;
    private volatile String loadError;
    private volatile boolean shuttingDown;
    private volatile boolean draining;
    private volatile GgufMetadata metadata = new GgufMetadata(java.util.Map.of());
    private volatile String describeJson = "{}";
    private volatile int nVocab;
    private volatile int contextSize;
    private volatile int contextUsed;
    private volatile int rank;
    private volatile int worldSize = 1;
    /** null on rank 0; "following", "failed" or "leader closed the engine" on a follower. */
    private volatile String followerState;
    /** Guards the engine handle against close while another thread drains its statistics. */
    private final Object statsLock = new Object();
    /** Leader of a cluster: the first collective failure (a rank died, stalled or diverged); null while healthy. */
    private volatile ClusterFault clusterFault;
    private final java.util.List<Runnable> faultListeners = new java.util.concurrent.CopyOnWriteArrayList<>();
    /** Leader of a cluster: an idle-time barrier every HEARTBEAT, so a rank lost between requests is noticed. */
    private java.util.concurrent.ScheduledExecutorService heartbeat;
    private final java.util.concurrent.atomic.AtomicBoolean heartbeatQueued = new java.util.concurrent.atomic.AtomicBoolean();
    static final java.time.Duration HEARTBEAT = java.time.Duration.ofSeconds(5);
    /** Leader of a cluster: successful ds4j_engine_recover calls (the group rebuilt after a fault). */
    private final java.util.concurrent.atomic.AtomicLong recoveries = new java.util.concurrent.atomic.AtomicLong();
    private volatile java.time.Instant lastRecovery;
    /** Why the last recovery attempt failed (null after a success or before any attempt). */
    private volatile String recoveryError;
    private final java.util.List<Runnable> recoveryListeners = new java.util.concurrent.CopyOnWriteArrayList<>();

    public EngineService(Ds4jProperties props) {
        this.props = props;
        this.nativeLib = Ds4jNative.load(Path.of(props.engine().library()));
        this.owner = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "ds4j-engine");
            t.setDaemon(true);
            ownerThread = t;
            return t;
        });
        log.info("native engine: {} ({})", nativeLib.version(), nativeLib.library());
        if (!nativeLib.missingSymbols().isEmpty()) {
            log.warn("native library lacks {} of ds4j.h's functions (incomplete build): {}",
                    nativeLib.missingSymbols().size(), nativeLib.missingSymbols());
        }
        if (props.model().configured()) {
            openModel(props.model().path());
        } else {
            log.warn("no model configured (ds4.model.path is empty): serving health only");
        }
    }

    /**
     * Engine options from the configuration: threads, prefill chunk, KV
     * precision, the compute backend and its device (only when not cpu, the
     * engine's default, so a cpu configuration opens any build) and, when
     * distributed, the collective backend (comm=), the explicit expert slice
     * (expert_range, default: the engine's even split), the plugin path, the
     * backend's options, expert_compact, the all_sum payload type (all_sum_dtype, only when not
     * f32, the engine's default, so the default configuration opens any build), allsum_overlap=0 when
     * the overlap is turned off (on is the engine's default) and the recovery's
     * ds4j-tool (respawn_tool, only when configured).
     */
    static String engineOptions(Ds4jProperties props) {
        var e = props.engine();
        StringBuilder sb = new StringBuilder("threads=").append(e.threads());
        if (e.prefillChunk() > 0) sb.append(";prefill_chunk=").append(e.prefillChunk());
        sb.append(";kv_precision=").append(e.kvPrecision().name());
        if (e.backend() != Ds4jProperties.EngineBackend.cpu) {
            sb.append(";backend=").append(e.backend().name()).append(";device=").append(e.device());
        }
        var d = props.distributed();
        if (d.enabled()) {
            sb.append(";comm=").append(d.backend().name());
            if (!d.expertRange().isBlank()) sb.append(";expert_range=").append(d.expertRange().trim());
            if (!d.commPlugin().isBlank()) sb.append(";comm_plugin=").append(d.commPlugin().trim());
            if (!d.commOptions().isBlank()) sb.append(";comm_options=").append(d.commOptions().trim());
            if (Boolean.TRUE.equals(d.expertCompact())) sb.append(";expert_compact=1");
            if (d.allSumDtype().sentToEngine()) sb.append(";all_sum_dtype=").append(d.allSumDtype().name());
            if (!d.allsumOverlap()) sb.append(";allsum_overlap=0");
            if (!d.recovery().respawnTool().isBlank()) sb.append(";respawn_tool=").append(d.recovery().respawnTool().trim());
        }
        return sb.toString();
    }

    /** ds4.cache.disk: the prefix cache on disk (one process only; a broken directory is logged, not fatal). */
    private void attachDiskCache(SessionPool p, MemorySegment e) {
        var disk = props.cache().disk();
        if (!disk.enabled()) return;
        if (worldSize > 1) {
            log.warn("ds4.cache.disk.dir is set but ignored: the disk cache is not available with expert parallelism "
                    + "(ds4.distributed.enabled)");
            return;
        }
        try {
            p.attachDisk(new DiskStateCache(nativeLib, e, Path.of(disk.dir()), disk.maxSize().toBytes(),
                    disk.minTokens(), props.engine().contextSize()));
        } catch (RuntimeException ex) {
            log.error("disk cache disabled: {}", ex.getMessage());
        }
    }

    private void openModel(String path) {
        try {
            call(() -> {
                long t0 = System.nanoTime();
                String options = engineOptions(props);
                MemorySegment e = nativeLib.engineOpen(path, options);
                MemorySegment first = MemorySegment.NULL;
                try {
                    metadata = GgufMetadata.read(nativeLib, e);
                    describeJson = nativeLib.engineDescribe(e);
                    nVocab = nativeLib.nVocab(e);
                    rank = nativeLib.engineRank(e);
                    worldSize = nativeLib.engineWorldSize(e);
                    checkCluster();
                    int nCtx = props.engine().contextSize();
                    long bytes = nativeLib.contextMemory(e, nCtx);
                    sessionBytes = bytes;
                    prefillChunk = jsonInt(describeJson, "prefill_chunk", 64);
                    checkpointInterval = jsonInt(describeJson, "checkpoint_interval", 64);
                    if (rank == 0) {
                        first = nativeLib.sessionNew(e, nCtx);
                        contextSize = nativeLib.sessionNCtx(first);
                        pool = new SessionPool(nativeLib, e, nCtx, first);
                        attachDiskCache(pool, e);
                        freeMemory = freeMemory(describeJson);
                    }
                    log.info("model loaded: {} ({} metadata keys, vocab {}, context {} tokens, {} MiB KV state, options '{}', "
                            + "rank {} of {}) in {} ms", path, metadata.size(), nVocab, nCtx, bytes >> 20, options, rank,
                            worldSize, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
                } catch (RuntimeException ex) {
                    if (!first.equals(MemorySegment.NULL)) nativeLib.sessionFree(first);
                    pool = null;
                    nativeLib.engineClose(e);
                    throw ex;
                }
                engine = e;
                return null;
            });
        } catch (EngineException | NativeLibraryException e) {
            loadError = e.getMessage();
            log.error("cannot load model {}: {}", path, e.getMessage());
        } catch (RuntimeException e) {
            loadError = e.toString();
            log.error("cannot load model {}", path, e);
        }
        if (loadError == null && rank > 0) startFollower();
        if (loadError == null && rank == 0 && worldSize > 1) startHeartbeat();
    }

    /**
     * Leader: every {@link #HEARTBEAT} a collective barrier is queued on the owner thread (behind any running
     * generation), so a follower that died or stalled while the server is idle fails it, bounded by the
     * backend's timeout (comm_options timeout_ms), and readiness goes DOWN before the next request meets it.
     */
    private void startHeartbeat() {
        heartbeat = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "ds4j-cluster-heartbeat");
            t.setDaemon(true);
            return t;
        });
        heartbeat.scheduleWithFixedDelay(() -> {
            if (clusterFault != null || shuttingDown || !heartbeatQueued.compareAndSet(false, true)) return;
            try {
                owner.execute(() -> {
                    try {
                        MemorySegment e = engine;
                        if (clusterFault == null && !shuttingDown && !e.equals(MemorySegment.NULL)) nativeLib.engineBarrier(e);
                    } catch (CommunicationException ex) {
                        clusterFailed(ex, "heartbeat");
                    } catch (RuntimeException ex) {
                        log.warn("cluster heartbeat: {}", ex.toString());
                    } finally {
                        heartbeatQueued.set(false);
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException closing) {
                heartbeatQueued.set(false);
            }
        }, HEARTBEAT.toMillis(), HEARTBEAT.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Records the first collective failure and tells the listeners (readiness); later ones only log. */
    public void clusterFailed(CommunicationException ex, String during) {
        boolean first;
        synchronized (faultListeners) {
            first = clusterFault == null;
            if (first) clusterFault = ClusterFault.of(ex.getMessage(), worldSize, java.time.Instant.now());
        }
        if (!first) return;
        boolean recover = recoveryPossible();
        log.error("cluster failed during {}: {} — this leader stays up and answers 503; {}", during, ex.getMessage(),
                recover ? "it rebuilds the group (new followers) in " + props.distributed().recovery().interval()
                        : "restart the cluster (ds4j-launch down/up) to serve again");
        if (recover) scheduleRecovery();
        for (Runnable r : faultListeners) {
            try {
                r.run();
            } catch (RuntimeException listenerFailure) {
                log.warn("cluster fault listener failed: {}", listenerFailure.toString());
            }
        }
    }

    /** Automatic recovery applies: the leader of a cluster, enabled, and a native build that has it. */
    private boolean recoveryPossible() {
        // mpi only: the engine cannot rebuild an NCCL group (it would refuse every attempt)
        return props.distributed().enabled() && props.distributed().recovery().enabled() && rank == 0 && worldSize > 1
                && props.distributed().backend() == Ds4jProperties.Backend.mpi
                && heartbeat != null && nativeLib.has("ds4j_engine_recover");
    }

    private void scheduleRecovery() {
        try {
            heartbeat.schedule(this::attemptRecovery, props.distributed().recovery().interval().toMillis(),
                    TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.RejectedExecutionException closing) {
            // shutting down
        }
    }

    /**
     * One recovery attempt, queued on the owner thread (behind whatever failed there): ds4j_engine_recover
     * spawns new followers and reruns the open-time handshake; every serving session predates it and is
     * replaced ({@link SessionPool#invalidateAll}); a new session and a barrier prove that the new group
     * serves. Then the fault is cleared (readiness UP again); on failure the next attempt follows after the
     * interval.
     */
    private void attemptRecovery() {
        if (shuttingDown || clusterFault == null) return;
        try {
            owner.execute(() -> {
                MemorySegment e = engine;
                if (shuttingDown || clusterFault == null || e.equals(MemorySegment.NULL)) return;
                long t0 = System.nanoTime();
                try {
                    nativeLib.engineRecover(e);
                    SessionPool p = pool;
                    if (p != null) p.invalidateAll();
                    nativeLib.engineBarrier(e);
                } catch (RuntimeException ex) {
                    recoveryError = ex.getMessage();
                    log.warn("cluster recovery failed (next attempt in {}): {}", props.distributed().recovery().interval(),
                            ex.getMessage());
                    scheduleRecovery();
                    return;
                }
                ClusterFault was;
                synchronized (faultListeners) {
                    was = clusterFault;
                    clusterFault = null;
                }
                recoveryError = null;
                lastRecovery = java.time.Instant.now();
                long n = recoveries.incrementAndGet();
                log.info("cluster recovered in {} ms (recovery {}): {} new follower(s) replaced the group that failed "
                        + "with: {}", TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0), n, worldSize - 1,
                        was == null ? "" : was.message());
                for (Runnable r : recoveryListeners) {
                    try {
                        r.run();
                    } catch (RuntimeException listenerFailure) {
                        log.warn("cluster recovery listener failed: {}", listenerFailure.toString());
                    }
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException closing) {
            // shutting down
        }
    }

    /** Successful automatic recoveries of the cluster since start (0 without a cluster). */
    public long recoveries() {
        return recoveries.get();
    }

    /** When the cluster last recovered, or null. */
    public java.time.Instant lastRecovery() {
        return lastRecovery;
    }

    /** Why the last recovery attempt failed, or null. */
    public String recoveryError() {
        return recoveryError;
    }

    /** True while a fault is being recovered automatically (attempts are scheduled). */
    public boolean recovering() {
        return clusterFault != null && recoveryPossible();
    }

    /** Runs {@code r} on the engine thread after the cluster recovered (readiness). */
    public void onClusterRecovered(Runnable r) {
        recoveryListeners.add(r);
    }

    /** The leader's record of the cluster's first failure, or null while it is healthy (or not a cluster). */
    public ClusterFault clusterFault() {
        return clusterFault;
    }

    /** Runs {@code r} (on the thread that noticed it) when the cluster fails. */
    public void onClusterFault(Runnable r) {
        faultListeners.add(r);
    }

    /** The engine's rank and world size must be what the configuration says. */
    private void checkCluster() {
        var d = props.distributed();
        int wantRank = d.enabled() ? d.rank() : 0;
        int wantWorld = d.enabled() ? d.worldSize() : 1;
        if (rank != wantRank || worldSize != wantWorld) {
            throw new EngineException(EngineException.STATE, "cluster mismatch: the engine (comm="
                    + (d.enabled() ? d.backend().name() : "none") + ") reports rank " + rank + " of " + worldSize
                    + " but the configuration says ds4.distributed.rank=" + wantRank + ", ds4.distributed.world-size="
                    + wantWorld + (d.backend() == Ds4jProperties.Backend.mpi && d.enabled()
                            ? " (under MPI the rank and size come from mpirun -np)" : ""));
        }
    }

    /**
     * Rank > 0: the owner thread runs ds4j_engine_follow, mirroring the
     * leader's session operations until the leader closes its engine. The
     * HTTP API of a follower answers 503.
     */
    private void startFollower() {
        followerState = "following";
        owner.execute(() -> {
            log.info("follower: rank {} of {} mirrors the leader (rank 0)", rank, worldSize);
            try {
                nativeLib.engineFollow(engine);
                followerState = "leader closed the engine";
                log.info("follower: the leader closed its engine; rank {} stops following", rank);
            } catch (EngineException ex) {
                String msg = ex.code() == EngineException.STATE && ex.getMessage().contains("not implemented")
                        ? "follower mode is not available in this native build (ds4j_engine_follow: " + ex.getMessage()
                                + "); rank " + rank + " cannot serve"
                        : "follower loop failed: " + ex.getMessage();
                followerState = "failed";
                loadError = msg;
                log.error("rank {}: {}", rank, msg);
            } catch (RuntimeException ex) {
                followerState = "failed";
                loadError = "follower loop failed: " + ex;
                log.error("rank {}: follower loop failed", rank, ex);
            }
        });
    }

    /** Runs {@code task} on the engine owner thread and waits for it. */
    public <T> T call(Callable<T> task) {
        if (Thread.currentThread() == ownerThread) {
            try {
                return task.call();
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
        Future<T> f = owner.submit(task);
        try {
            return f.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            if (e.getCause() instanceof Error err) throw err;
            throw new IllegalStateException(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            f.cancel(true);
            throw new IllegalStateException("interrupted waiting for the engine", e);
        }
    }

    /** The owner thread, as an Executor (the scheduler queues generations on it). */
    public Executor executor() {
        return owner;
    }

    /**
     * One batched step: every entry's tokens are evaluated after its session's
     * position, afterwards each session's logits are those after its last
     * token. With ds4j_batch_eval in the library it is one native call;
     * without, the entries are evaluated one after another with the
     * single-session calls (same results, not faster). Returns, per entry, the
     * failure that stopped it (null = evaluated). Owner thread only.
     */
    public EngineException[] step(List<BatchEntry> entries) {
        if (Thread.currentThread() != ownerThread) throw new IllegalStateException("step() off the engine thread");
        EngineException[] failed = new EngineException[entries.size()];
        if (entries.isEmpty()) return failed;
        if (nativeLib.hasBatchEval()) {
            MemorySegment[] sessions = new MemorySegment[entries.size()];
            int[][] tokens = new int[entries.size()][];
            for (int i = 0; i < sessions.length; i++) {
                sessions[i] = entries.get(i).session();
                tokens[i] = entries.get(i).tokens();
            }
            try {
                nativeLib.batchEval(engine, sessions, tokens);
                return failed;
            } catch (CommunicationException e) {
                clusterFailed(e, "a batch step");
                java.util.Arrays.fill(failed, e);
                return failed;
            } catch (EngineException e) {
                // refused before anything was evaluated: find the entries at fault one by one
                log.debug("ds4j_batch_eval refused a step of {} entries ({}); evaluating them one by one",
                        entries.size(), e.getMessage());
            }
        }
        for (int i = 0; i < failed.length; i++) {
            BatchEntry b = entries.get(i);
            try {
                if (b.tokens().length == 1) nativeLib.sessionEval(b.session(), b.tokens()[0]);
                else nativeLib.sessionEvalBatch(b.session(), b.tokens(), 0, 0);
            } catch (EngineException e) {
                if (e instanceof CommunicationException ce) clusterFailed(ce, "a batch step");
                failed[i] = e;
            }
        }
        return failed;
    }

    /** The serving sessions and their prefix cache (null without a model, or on a follower). Owner thread only. */
    public SessionPool sessions() {
        return pool;
    }

    /** Tokens per prefill chunk the engine evaluates in one forward (its prefill_chunk). */
    public int prefillChunk() {
        return prefillChunk;
    }

    /** Positions between two of a session's checkpoints (the engine's describe JSON "checkpoint_interval"). */
    public int checkpointInterval() {
        return checkpointInterval;
    }

    /** Bytes one serving session allocates (ds4j_context_memory at the context size; 0 without a model). */
    public long sessionBytes() {
        return sessionBytes;
    }

    /**
     * Memory the sessions may still take, measured after the model and the
     * first session were loaded: the GPU's free memory (cuda backend, from the
     * engine's describe JSON) or the host's available memory; -1 if unknown.
     */
    public long freeSessionMemory() {
        return freeMemory;
    }

    /** Records the context use of the session a generation just left. */
    public void noteContextUsed(int tokens) {
        contextUsed = tokens;
    }

    /** True once running generations must stop (last phase of shutdown). */
    public boolean stopping() {
        return shuttingDown;
    }

    /**
     * Drains the engine's all_sum latency samples into {@code sink} (any
     * thread); returns the samples the engine dropped, 0 without a model or
     * a native build lacking the function.
     */
    public long drainAllsum(Ds4jNative.AllsumSink sink) {
        synchronized (statsLock) {
            MemorySegment e = engine;
            if (e.equals(MemorySegment.NULL) || !nativeLib.has("ds4j_engine_allsum_drain")) return 0;
            return nativeLib.engineAllsumDrain(e, 1024, sink);
        }
    }

    static int jsonInt(String json, String key, int fallback) {
        var m = java.util.regex.Pattern.compile("\"" + key + "\"\\s*:\\s*(\\d+)").matcher(json);
        return m.find() ? Integer.parseInt(m.group(1)) : fallback;
    }

    /** The device's free memory (cuda: "memory_free" of the describe JSON's device), else the host's available memory. */
    static long freeMemory(String describe) {
        var m = java.util.regex.Pattern.compile("\"memory_free\"\\s*:\\s*(\\d+)").matcher(describe);
        if (m.find()) return Long.parseLong(m.group(1));
        try {
            for (String line : java.nio.file.Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemAvailable:")) return Long.parseLong(line.replaceAll("\\D+", "")) * 1024;
            }
        } catch (java.io.IOException | RuntimeException e) {
            // not Linux: the JVM's view below
        }
        var os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        return os instanceof com.sun.management.OperatingSystemMXBean sun ? sun.getFreeMemorySize() : -1;
    }

    /** The engine's rank (0 without comm= or without a model). */
    public int rank() {
        return rank;
    }

    /** The engine's world size (1 without comm= or without a model). */
    public int worldSize() {
        return worldSize;
    }

    /** True on a rank > 0: the HTTP API does not serve, the owner thread follows the leader. */
    public boolean follower() {
        return followerState != null;
    }

    /** The follower loop's state ("following", "failed", "leader closed the engine"), or null on the leader. */
    public String followerState() {
        return followerState;
    }

    /** The engine is open with the configured rank and world size (collective open succeeded). */
    public boolean clusterFormed() {
        var d = props.distributed();
        return !engine.equals(MemorySegment.NULL) && loadError == null
                && (!d.enabled() || (worldSize == d.worldSize() && rank == d.rank()));
    }

    public Ds4jNative nativeLib() {
        return nativeLib;
    }

    public boolean modelLoaded() {
        return !engine.equals(MemorySegment.NULL) && pool != null;
    }

    /** Why the configured model failed to load, or null. */
    public String loadError() {
        return loadError;
    }

    public GgufMetadata metadata() {
        return metadata;
    }

    /** ds4j_engine_describe's JSON ("{}" without a model). */
    public String describeJson() {
        return describeJson;
    }

    /**
     * The routed all_sum's payload in effect (describe JSON "all_sum_dtype": the leader's value, which
     * every rank adopts at open): f32, f16 or bf16; f32 without a model.
     */
    public String allsumDtype() {
        var m = java.util.regex.Pattern.compile("\"all_sum_dtype\"\\s*:\\s*\"(\\w+)\"").matcher(describeJson);
        return m.find() ? m.group(1) : "f32";
    }

    /**
     * Whether the engine overlaps the routed all_sum with the shared expert (describe JSON
     * "allsum_overlap": engine option allsum_overlap, the leader's, where the backend can); then an all_sum
     * latency sample is the time left exposed after the shared expert, not the whole collective.
     */
    public boolean allsumOverlap() {
        return java.util.regex.Pattern.compile("\"allsum_overlap\"\\s*:\\s*true").matcher(describeJson).find();
    }

    public int nVocab() {
        return nVocab;
    }

    public int contextSize() {
        return contextSize;
    }

    /** Tokens in the session of the generation that finished last (its KV usage). */
    public int contextUsed() {
        return contextUsed;
    }

    /** True once shutdown began: new requests are refused. */
    public boolean shuttingDown() {
        return shuttingDown || draining;
    }

    /** Accept requests again (the context was restarted after a stop, e.g. a paused test context). */
    public void resume() {
        if (engine.equals(MemorySegment.NULL) && loadError == null && props.model().configured()) return;
        draining = false;
        shuttingDown = false;
    }

    /** Refuse new requests; running and queued ones continue (first phase of a graceful shutdown). */
    public void beginDrain() {
        draining = true;
    }

    /** Makes running generations stop at the next token (graceful shutdown's last phase). */
    public void beginShutdown() {
        shuttingDown = true;
    }

    @Override
    public void destroy() {
        shuttingDown = true;
        if (heartbeat != null) heartbeat.shutdownNow();
        MemorySegment e = engine;
        SessionPool p = pool;
        pool = null;
        if ("following".equals(followerState)) {
            // the owner thread is inside ds4j_engine_follow, which returns only when the leader closes:
            // closing here would free the engine under it; the process exit releases it.
            synchronized (statsLock) {
                engine = MemorySegment.NULL;
            }
            log.warn("rank {} shuts down while following the leader; the engine is released at process exit", rank);
            owner.shutdownNow();
            return;
        }
        if (!e.equals(MemorySegment.NULL)) {
            try {
                owner.submit(() -> {
                    synchronized (statsLock) {
                        engine = MemorySegment.NULL;
                        if (p != null) p.closeAll();
                        nativeLib.engineClose(e);
                    }
                }).get(30, TimeUnit.SECONDS);
            } catch (Exception ex) {
                log.warn("engine did not close cleanly: {}", ex.toString());
            }
        }
        owner.shutdown();
    }
}
