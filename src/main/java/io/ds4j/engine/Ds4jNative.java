package io.ds4j.engine;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * FFM downcalls into libds4j (native-lib/include/ds4j.h): every DS4J_API
 * function is declared in {@link #SIGNATURES} (a test parses the header and
 * fails when one is missing or its shape differs). Handles are plain
 * {@link MemorySegment} addresses; callers own them and must use them from
 * one thread (EngineService's owner thread). Failures become typed
 * {@link EngineException}s carrying ds4j_last_error().
 *
 * <p>Symbols the loaded library does not export (an older build) are bound
 * lazily: calling one throws {@link NativeLibraryException}; only the core
 * identity functions are required at load time.
 */
public final class Ds4jNative {
    /** C signature of every function in ds4j.h, keyed by symbol name. */
    public static final Map<String, FunctionDescriptor> SIGNATURES;

    static {
        Map<String, FunctionDescriptor> m = new LinkedHashMap<>();
        m.put("ds4j_version", FunctionDescriptor.of(ADDRESS));
        m.put("ds4j_api_version", FunctionDescriptor.of(JAVA_INT));
        m.put("ds4j_last_error", FunctionDescriptor.of(ADDRESS));
        m.put("ds4j_last_error_code", FunctionDescriptor.of(JAVA_INT));
        // engine
        m.put("ds4j_engine_open", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS));
        m.put("ds4j_engine_close", FunctionDescriptor.ofVoid(ADDRESS));
        m.put("ds4j_engine_describe", FunctionDescriptor.of(ADDRESS, ADDRESS));
        // expert parallelism
        m.put("ds4j_engine_rank", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        m.put("ds4j_engine_world_size", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        m.put("ds4j_engine_broadcast_tokens", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT));
        m.put("ds4j_engine_barrier", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        m.put("ds4j_engine_follow", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        m.put("ds4j_engine_recover", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        m.put("ds4j_engine_allsum_stats", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        m.put("ds4j_engine_allsum_drain", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS));
        // metadata
        m.put("ds4j_meta_count", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        m.put("ds4j_meta_find", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        m.put("ds4j_meta_key", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT));
        m.put("ds4j_meta_type", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        m.put("ds4j_meta_int", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_INT));
        m.put("ds4j_meta_float", FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS, JAVA_INT));
        m.put("ds4j_meta_str", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, ADDRESS));
        m.put("ds4j_meta_arr_type", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        m.put("ds4j_meta_arr_len", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_INT));
        m.put("ds4j_meta_arr_int", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_INT, JAVA_LONG));
        m.put("ds4j_meta_arr_float", FunctionDescriptor.of(JAVA_DOUBLE, ADDRESS, JAVA_INT, JAVA_LONG));
        m.put("ds4j_meta_arr_str", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS));
        // sessions
        m.put("ds4j_context_memory", FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_INT));
        m.put("ds4j_session_new", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT));
        m.put("ds4j_session_free", FunctionDescriptor.ofVoid(ADDRESS));
        m.put("ds4j_session_n_ctx", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        m.put("ds4j_session_pos", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        m.put("ds4j_session_tokens", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        m.put("ds4j_session_sync", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
        m.put("ds4j_session_eval", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        m.put("ds4j_session_eval_batch", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS));
        m.put("ds4j_session_rewind", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        m.put("ds4j_session_state_at", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        m.put("ds4j_session_copy", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        m.put("ds4j_session_logits", FunctionDescriptor.of(ADDRESS, ADDRESS));
        m.put("ds4j_n_vocab", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        // session state on disk
        m.put("ds4j_engine_fingerprint", FunctionDescriptor.of(ADDRESS, ADDRESS));
        m.put("ds4j_session_save", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        m.put("ds4j_state_file_tokens", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT));
        m.put("ds4j_session_load", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        // sampling
        m.put("ds4j_sampler_new", FunctionDescriptor.of(ADDRESS, ADDRESS));
        m.put("ds4j_sampler_free", FunctionDescriptor.ofVoid(ADDRESS));
        m.put("ds4j_sampler_accept", FunctionDescriptor.ofVoid(ADDRESS, JAVA_INT));
        m.put("ds4j_sampler_reset", FunctionDescriptor.ofVoid(ADDRESS));
        m.put("ds4j_sampler_set_logit_bias", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT));
        m.put("ds4j_sampler_set_allowed", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        m.put("ds4j_sampler_sample", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        SIGNATURES = Collections.unmodifiableMap(m);
        // newer functions a build may not have yet: bound when present, never reported missing
        Map<String, FunctionDescriptor> o = new LinkedHashMap<>();
        o.put("ds4j_batch_eval", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        OPTIONAL_SIGNATURES = Collections.unmodifiableMap(o);
    }

    /**
     * Functions Java binds only when the library exports them, with a fallback
     * where they are called (ds4j_batch_eval: one session call per entry). Once
     * ds4j.h declares one, its shape must match (HeaderBindingTest).
     */
    public static final Map<String, FunctionDescriptor> OPTIONAL_SIGNATURES;

    /** struct ds4j_batch_entry { ds4j_session *session; const int32_t *tokens; int32_t n_tokens; int32_t flags; } */
    static final java.lang.foreign.StructLayout BATCH_ENTRY = java.lang.foreign.MemoryLayout.structLayout(
            ADDRESS.withName("session"), ADDRESS.withName("tokens"), JAVA_INT.withName("n_tokens"),
            JAVA_INT.withName("flags"));

    /** ds4j_progress_fn: int32_t (*)(void *user, int32_t done, int32_t total). */
    static final FunctionDescriptor PROGRESS_FN = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT);

    private static final Set<String> REQUIRED = Set.of("ds4j_version", "ds4j_api_version", "ds4j_last_error",
            "ds4j_engine_open", "ds4j_engine_close");

    private final Path library;
    private final Map<String, MethodHandle> handles = new LinkedHashMap<>();
    private final Set<String> missing = new TreeSet<>();

    private Ds4jNative(Path library, SymbolLookup lookup) {
        this.library = library;
        Linker linker = Linker.nativeLinker();
        for (var e : SIGNATURES.entrySet()) {
            var symbol = lookup.find(e.getKey());
            if (symbol.isPresent()) {
                handles.put(e.getKey(), linker.downcallHandle(symbol.get(), e.getValue()));
            } else if (REQUIRED.contains(e.getKey())) {
                throw new NativeLibraryException("native engine library lacks symbol " + e.getKey()
                        + " (stale build? rerun ./scripts/setup)", null);
            } else {
                missing.add(e.getKey());
            }
        }
        for (var e : OPTIONAL_SIGNATURES.entrySet()) {
            lookup.find(e.getKey()).ifPresent(sym -> handles.put(e.getKey(), linker.downcallHandle(sym, e.getValue())));
        }
    }

    /** Loads the library at {@code path} for the lifetime of the JVM. */
    public static Ds4jNative load(Path path) {
        Path abs = path.toAbsolutePath().normalize();
        if (!Files.isRegularFile(abs)) {
            throw new NativeLibraryException("native engine library not found at " + abs
                    + " (build it with ./scripts/setup, or set ds4.engine.library)", null);
        }
        try {
            return new Ds4jNative(abs, SymbolLookup.libraryLookup(abs, Arena.global()));
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new NativeLibraryException("cannot load native engine library " + abs + ": " + e.getMessage(), e);
        }
    }

    public Path library() {
        return library;
    }

    /** Functions of ds4j.h this library build does not export (empty for a complete build). */
    public Set<String> missingSymbols() {
        return Collections.unmodifiableSet(missing);
    }

    public boolean has(String symbol) {
        return handles.containsKey(symbol);
    }

    private MethodHandle h(String name) {
        MethodHandle mh = handles.get(name);
        if (mh == null) {
            throw new NativeLibraryException("native engine library " + library + " does not export " + name
                    + " (this build of native-lib is incomplete or stale; rerun ./scripts/setup)", null);
        }
        return mh;
    }

    // ------------------------------------------------------------ identity

    public String version() {
        try {
            return string((MemorySegment) h("ds4j_version").invokeExact());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int apiVersion() {
        try {
            return (int) h("ds4j_api_version").invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String lastError() {
        try {
            return string((MemorySegment) h("ds4j_last_error").invokeExact());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private EngineException failure(int code, String what) {
        String msg = lastError();
        return EngineException.of(code, msg.isEmpty() ? what + " failed (error " + code + ")" : msg);
    }

    private int check(int rc, String what) {
        if (rc < 0) throw failure(rc, what);
        return rc;
    }

    /** The DS4J_ERR_* code of this thread's last native failure, or 0 (older libraries: 0). */
    public int lastErrorCode() {
        MethodHandle mh = handles.get("ds4j_last_error_code");
        if (mh == null) return 0;
        try {
            return (int) mh.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A NULL result: the native error code says why; {@code code} is the fallback. */
    private MemorySegment checkPtr(MemorySegment p, String what, int code) {
        if (p.equals(MemorySegment.NULL)) {
            int reported = lastErrorCode();
            throw failure(reported < 0 ? reported : code, what);
        }
        return p;
    }

    // -------------------------------------------------------------- engine

    /** Opens a model; throws EngineException with the native message on failure. */
    public MemorySegment engineOpen(String path, String options) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handle = (MemorySegment) h("ds4j_engine_open").invokeExact(
                    arena.allocateFrom(path), arena.allocateFrom(options == null ? "" : options));
            return checkPtr(handle, "ds4j_engine_open", EngineException.INVALID_ARGUMENT);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void engineClose(MemorySegment engine) {
        try {
            h("ds4j_engine_close").invokeExact(engine);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String engineDescribe(MemorySegment engine) {
        try {
            return string((MemorySegment) h("ds4j_engine_describe").invokeExact(engine));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int nVocab(MemorySegment engine) {
        try {
            return check((int) h("ds4j_n_vocab").invokeExact(engine), "ds4j_n_vocab");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // -------------------------------------------------- expert parallelism

    /** This process's rank (0 without comm=). */
    public int engineRank(MemorySegment engine) {
        try {
            return check((int) h("ds4j_engine_rank").invokeExact(engine), "ds4j_engine_rank");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Number of ranks (1 without comm=). */
    public int engineWorldSize(MemorySegment engine) {
        try {
            return check((int) h("ds4j_engine_world_size").invokeExact(engine), "ds4j_engine_world_size");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Collective broadcast of {@code tokens} from {@code root}: on return the
     * array holds root's values on every rank. Owner thread only.
     */
    public void engineBroadcastTokens(MemorySegment engine, int[] tokens, int root) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocateFrom(JAVA_INT, tokens.length == 0 ? new int[] {0} : tokens);
            check((int) h("ds4j_engine_broadcast_tokens").invokeExact(engine, buf, tokens.length, root),
                    "ds4j_engine_broadcast_tokens");
            MemorySegment.copy(buf, JAVA_INT, 0, tokens, 0, tokens.length);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Collective barrier across ranks. Owner thread only. */
    public void engineBarrier(MemorySegment engine) {
        try {
            check((int) h("ds4j_engine_barrier").invokeExact(engine), "ds4j_engine_barrier");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Leader of a cluster after a collective failure: spawns new followers in
     * place of the lost group and reruns the open-time handshake
     * (ds4j_engine_recover). Every session created before it is invalid
     * afterwards (free them and create new ones). Owner thread only.
     */
    public void engineRecover(MemorySegment engine) {
        try {
            check((int) h("ds4j_engine_recover").invokeExact(engine), "ds4j_engine_recover");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Follower loop (rank > 0): blocks mirroring the leader's session
     * operations until the leader closes its engine. Owner thread only.
     */
    public void engineFollow(MemorySegment engine) {
        try {
            check((int) h("ds4j_engine_follow").invokeExact(engine), "ds4j_engine_follow");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Cumulative all_sum statistics of one layer, or of all layers with {@code layer = -1}. */
    public record AllsumStats(long count, long totalNs, long maxNs) {}

    /** ds4j_engine_allsum_stats; any thread. */
    public AllsumStats engineAllsumStats(MemorySegment engine, int layer) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment c = arena.allocate(JAVA_LONG);
            MemorySegment t = arena.allocate(JAVA_LONG);
            MemorySegment mx = arena.allocate(JAVA_LONG);
            check((int) h("ds4j_engine_allsum_stats").invokeExact(engine, layer, c, t, mx), "ds4j_engine_allsum_stats");
            return new AllsumStats(c.get(JAVA_LONG, 0), t.get(JAVA_LONG, 0), mx.get(JAVA_LONG, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Receives drained all_sum samples. */
    @FunctionalInterface
    public interface AllsumSink {
        void sample(int layer, long nanos);
    }

    /**
     * Drains every pending all_sum latency sample into {@code sink} (any
     * thread, in batches of {@code batch}); returns the number of samples the
     * engine dropped (overwritten) since the previous drain.
     */
    public long engineAllsumDrain(MemorySegment engine, int batch, AllsumSink sink) {
        int cap = Math.max(1, batch);
        long dropped = 0;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment layers = arena.allocate(JAVA_INT, cap);
            MemorySegment ns = arena.allocate(JAVA_LONG, cap);
            MemorySegment drop = arena.allocate(JAVA_LONG);
            for (int round = 0; round < 1024; round++) {
                drop.set(JAVA_LONG, 0, 0);
                int n = check((int) h("ds4j_engine_allsum_drain").invokeExact(engine, layers, ns, cap, drop),
                        "ds4j_engine_allsum_drain");
                dropped += drop.get(JAVA_LONG, 0);
                for (int i = 0; i < n; i++) {
                    sink.sample(layers.getAtIndex(JAVA_INT, i), ns.getAtIndex(JAVA_LONG, i));
                }
                if (n < cap) break;
            }
            return dropped;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------ metadata

    public int metaCount(MemorySegment engine) {
        try {
            return check((int) h("ds4j_meta_count").invokeExact(engine), "ds4j_meta_count");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Index of {@code key}, or -1 if absent. */
    public int metaFind(MemorySegment engine, String key) {
        try (Arena arena = Arena.ofConfined()) {
            int i = (int) h("ds4j_meta_find").invokeExact(engine, arena.allocateFrom(key));
            return i < 0 ? -1 : i;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String metaKey(MemorySegment engine, int index) {
        try {
            MemorySegment p = (MemorySegment) h("ds4j_meta_key").invokeExact(engine, index);
            return string(checkPtr(p, "ds4j_meta_key", EngineException.INVALID_ARGUMENT));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int metaType(MemorySegment engine, int index) {
        try {
            return check((int) h("ds4j_meta_type").invokeExact(engine, index), "ds4j_meta_type");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public long metaInt(MemorySegment engine, int index) {
        try {
            return (long) h("ds4j_meta_int").invokeExact(engine, index);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public double metaFloat(MemorySegment engine, int index) {
        try {
            return (double) h("ds4j_meta_float").invokeExact(engine, index);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String metaStr(MemorySegment engine, int index) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment len = arena.allocate(JAVA_LONG);
            MemorySegment p = (MemorySegment) h("ds4j_meta_str").invokeExact(engine, index, len);
            return utf8(checkPtr(p, "ds4j_meta_str", EngineException.INVALID_ARGUMENT), len.get(JAVA_LONG, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int metaArrType(MemorySegment engine, int index) {
        try {
            return check((int) h("ds4j_meta_arr_type").invokeExact(engine, index), "ds4j_meta_arr_type");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public long metaArrLen(MemorySegment engine, int index) {
        try {
            long n = (long) h("ds4j_meta_arr_len").invokeExact(engine, index);
            if (n < 0) throw failure((int) n, "ds4j_meta_arr_len");
            return n;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public long metaArrInt(MemorySegment engine, int index, long i) {
        try {
            return (long) h("ds4j_meta_arr_int").invokeExact(engine, index, i);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public double metaArrFloat(MemorySegment engine, int index, long i) {
        try {
            return (double) h("ds4j_meta_arr_float").invokeExact(engine, index, i);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Array string element; {@code scratch} holds the int64 length out-parameter (reused across calls). */
    public String metaArrStr(MemorySegment engine, int index, long i, MemorySegment scratch) {
        try {
            MemorySegment p = (MemorySegment) h("ds4j_meta_arr_str").invokeExact(engine, index, i, scratch);
            return utf8(checkPtr(p, "ds4j_meta_arr_str", EngineException.INVALID_ARGUMENT), scratch.get(JAVA_LONG, 0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------ sessions

    public long contextMemory(MemorySegment engine, int nCtx) {
        try {
            long n = (long) h("ds4j_context_memory").invokeExact(engine, nCtx);
            if (n < 0) throw failure((int) n, "ds4j_context_memory");
            return n;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public MemorySegment sessionNew(MemorySegment engine, int nCtx) {
        try {
            MemorySegment p = (MemorySegment) h("ds4j_session_new").invokeExact(engine, nCtx);
            return checkPtr(p, "ds4j_session_new", EngineException.NO_MEMORY);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void sessionFree(MemorySegment session) {
        try {
            h("ds4j_session_free").invokeExact(session);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int sessionNCtx(MemorySegment session) {
        try {
            return check((int) h("ds4j_session_n_ctx").invokeExact(session), "ds4j_session_n_ctx");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int sessionPos(MemorySegment session) {
        try {
            return check((int) h("ds4j_session_pos").invokeExact(session), "ds4j_session_pos");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int[] sessionTokens(MemorySegment session) {
        int n = sessionPos(session);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT, Math.max(1, n));
            int got = check((int) h("ds4j_session_tokens").invokeExact(session, out, n), "ds4j_session_tokens");
            return out.asSlice(0, (long) got * 4).toArray(JAVA_INT);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * ds4j_session_state_at: the position of the newest state the session holds at or before {@code maxPos}
     * (its current state or a checkpoint), 0 if none: what {@link #sessionCopy} would take. Changes nothing.
     */
    public int sessionStateAt(MemorySegment session, int maxPos) {
        try {
            return check((int) h("ds4j_session_state_at").invokeExact(session, maxPos), "ds4j_session_state_at");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * ds4j_session_copy: {@code dst} drops its content and takes {@code src}'s newest state at a position
     * <= {@code maxPos} with the tokens before it, evaluating nothing ({@code src} is unchanged); returns that
     * position. On an error dst is unchanged.
     */
    public int sessionCopy(MemorySegment dst, MemorySegment src, int maxPos) {
        try {
            return check((int) h("ds4j_session_copy").invokeExact(dst, src, maxPos), "ds4j_session_copy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The engine's fingerprint (32 hex digits) naming what its state files depend on; null without weights. */
    public String engineFingerprint(MemorySegment engine) {
        try {
            MemorySegment p = (MemorySegment) h("ds4j_engine_fingerprint").invokeExact(engine);
            return p.equals(MemorySegment.NULL) ? null : string(p);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** ds4j_session_save: writes the newest state at a position <= maxPos to {@code file}; returns that position. */
    public int sessionSave(MemorySegment session, java.nio.file.Path file, int maxPos) {
        try (Arena arena = Arena.ofConfined()) {
            int rc = (int) h("ds4j_session_save").invokeExact(session, arena.allocateFrom(file.toString()), maxPos);
            return check(rc, "ds4j_session_save");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * ds4j_state_file_tokens: the token ids of a state file of this engine (its header checked, not its
     * checksum), or null when it holds more than {@code cap} tokens (one read of the header and the ids).
     */
    public int[] stateFileTokens(MemorySegment engine, java.nio.file.Path file, int cap) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT, Math.max(1, cap));
            int n = check((int) h("ds4j_state_file_tokens").invokeExact(engine, arena.allocateFrom(file.toString()), out,
                    cap), "ds4j_state_file_tokens");
            return n > cap ? null : out.asSlice(0, (long) n * 4).toArray(JAVA_INT);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** ds4j_session_load: replaces the session's content with a state file (verified); returns its position. */
    public int sessionLoad(MemorySegment session, java.nio.file.Path file) {
        try (Arena arena = Arena.ofConfined()) {
            int rc = (int) h("ds4j_session_load").invokeExact(session, arena.allocateFrom(file.toString()));
            return check(rc, "ds4j_session_load");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Progress of a long evaluation; return false to cancel. Must not throw. */
    @FunctionalInterface
    public interface Progress {
        boolean onProgress(int done, int total);
    }

    /**
     * ds4j_session_sync with {@code progress} as an FFM upcall (null = none).
     * Returns the number of reused prompt tokens; CancelledException when the
     * callback asked to stop.
     */
    public int sessionSync(MemorySegment session, int[] tokens, Progress progress) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ids = arena.allocateFrom(JAVA_INT, tokens.length == 0 ? new int[] {0} : tokens);
            MemorySegment fn = progress == null ? MemorySegment.NULL : upcall(progress, arena);
            int rc = (int) h("ds4j_session_sync").invokeExact(session, ids, tokens.length, fn, MemorySegment.NULL);
            return check(rc, "ds4j_session_sync");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void sessionEval(MemorySegment session, int token) {
        try {
            check((int) h("ds4j_session_eval").invokeExact(session, token), "ds4j_session_eval");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Evaluates tokens; returns n rows of n_vocab logits when {@code nVocab > 0}, else null. */
    public float[] sessionEvalBatch(MemorySegment session, int[] tokens, int chunk, int nVocab) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ids = arena.allocateFrom(JAVA_INT, tokens.length == 0 ? new int[] {0} : tokens);
            MemorySegment out = nVocab > 0 ? arena.allocate(JAVA_FLOAT, Math.multiplyExact((long) tokens.length, nVocab))
                    : MemorySegment.NULL;
            check((int) h("ds4j_session_eval_batch").invokeExact(session, ids, tokens.length, chunk, out),
                    "ds4j_session_eval_batch");
            return nVocab > 0 ? out.toArray(JAVA_FLOAT) : null;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Whether the library exports ds4j_batch_eval (else {@link EngineService#step} evaluates entry by entry). */
    public boolean hasBatchEval() {
        return handles.containsKey("ds4j_batch_eval");
    }

    /**
     * ds4j_batch_eval: one evaluation over several distinct sessions of
     * {@code engine}, entry i appending {@code tokens[i]} to {@code sessions[i]}.
     * A validation failure leaves every session unchanged.
     */
    public void batchEval(MemorySegment engine, MemorySegment[] sessions, int[][] tokens) {
        if (sessions.length != tokens.length) throw new IllegalArgumentException("sessions and tokens differ in length");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment entries = arena.allocate(BATCH_ENTRY, Math.max(1, sessions.length));
            long size = BATCH_ENTRY.byteSize();
            for (int i = 0; i < sessions.length; i++) {
                MemorySegment e = entries.asSlice(i * size, size);
                e.set(ADDRESS, 0, sessions[i]);
                e.set(ADDRESS, ADDRESS.byteSize(), arena.allocateFrom(JAVA_INT, tokens[i].length == 0 ? new int[] {0} : tokens[i]));
                e.set(JAVA_INT, 2 * ADDRESS.byteSize(), tokens[i].length);
                e.set(JAVA_INT, 2 * ADDRESS.byteSize() + 4, 0);
            }
            check((int) h("ds4j_batch_eval").invokeExact(engine, entries, sessions.length), "ds4j_batch_eval");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void sessionRewind(MemorySegment session, int pos) {
        try {
            check((int) h("ds4j_session_rewind").invokeExact(session, pos), "ds4j_session_rewind");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Copy of the current next-token logits, or null before any token. */
    public float[] sessionLogits(MemorySegment session, int nVocab) {
        try {
            MemorySegment p = (MemorySegment) h("ds4j_session_logits").invokeExact(session);
            if (p.equals(MemorySegment.NULL)) return null;
            return p.reinterpret((long) nVocab * 4).toArray(JAVA_FLOAT);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------- sampling

    public MemorySegment samplerNew(String options) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = (MemorySegment) h("ds4j_sampler_new").invokeExact(arena.allocateFrom(options));
            return checkPtr(p, "ds4j_sampler_new", EngineException.INVALID_ARGUMENT);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void samplerFree(MemorySegment sampler) {
        try {
            h("ds4j_sampler_free").invokeExact(sampler);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void samplerAccept(MemorySegment sampler, int token) {
        try {
            h("ds4j_sampler_accept").invokeExact(sampler, token);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void samplerReset(MemorySegment sampler) {
        try {
            h("ds4j_sampler_reset").invokeExact(sampler);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Replace the sampler's logit bias (ids[i] gets bias[i]; empty arrays clear it). */
    public void samplerSetLogitBias(MemorySegment sampler, int[] ids, float[] bias) {
        if (ids.length != bias.length) throw new IllegalArgumentException("ids and bias differ in length");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment i = ids.length == 0 ? MemorySegment.NULL : arena.allocateFrom(JAVA_INT, ids);
            MemorySegment b = bias.length == 0 ? MemorySegment.NULL : arena.allocateFrom(JAVA_FLOAT, bias);
            check((int) h("ds4j_sampler_set_logit_bias").invokeExact(sampler, i, b, ids.length),
                    "ds4j_sampler_set_logit_bias");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Restrict the next samples to the tokens set in {@code bits} (bit id&7 of byte id>>3, over
     * {@code nTokens} ids; native memory the caller reuses); {@code MemorySegment.NULL} lifts the
     * restriction. The engine copies the bits.
     */
    public void samplerSetAllowed(MemorySegment sampler, MemorySegment bits, int nTokens) {
        try {
            if (!bits.equals(MemorySegment.NULL) && bits.byteSize() * 8 < nTokens) {
                throw new IllegalArgumentException("bitset shorter than nTokens");
            }
            check((int) h("ds4j_sampler_set_allowed").invokeExact(sampler, bits, nTokens), "ds4j_sampler_set_allowed");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A sampled token with its log-probability and the n_top alternatives (temperature-1 distribution). */
    public record Sample(int token, float logprob, int[] topIds, float[] topLogprobs) {}

    /** Buffers for repeated sampling (allocate once per request on the owner thread). */
    public static final class SampleBuffers {
        final int nTop;
        final boolean logprob;
        final MemorySegment ids;
        final MemorySegment lps;
        final MemorySegment lp;

        public SampleBuffers(Arena arena, int nTop) {
            this(arena, nTop, true);
        }

        /** logprob false (and nTop 0): the sampled token's log-probability is not computed (NaN in the Sample). */
        public SampleBuffers(Arena arena, int nTop, boolean logprob) {
            this.nTop = nTop;
            this.logprob = logprob || nTop > 0;
            this.ids = arena.allocate(JAVA_INT, Math.max(1, nTop));
            this.lps = arena.allocate(JAVA_FLOAT, Math.max(1, nTop));
            this.lp = arena.allocate(JAVA_FLOAT);
        }
    }

    public Sample samplerSample(MemorySegment sampler, MemorySegment session, SampleBuffers buf) {
        try {
            MemorySegment idsOut = buf.nTop > 0 ? buf.ids : MemorySegment.NULL;
            MemorySegment lpsOut = buf.nTop > 0 ? buf.lps : MemorySegment.NULL;
            MemorySegment lpOut = buf.logprob ? buf.lp : MemorySegment.NULL;
            int tok = (int) h("ds4j_sampler_sample").invokeExact(sampler, session, buf.nTop, idsOut, lpsOut, lpOut);
            check(tok, "ds4j_sampler_sample");
            int[] ids = buf.nTop > 0 ? buf.ids.asSlice(0, 4L * buf.nTop).toArray(JAVA_INT) : new int[0];
            float[] lps = buf.nTop > 0 ? buf.lps.asSlice(0, 4L * buf.nTop).toArray(JAVA_FLOAT) : new float[0];
            return new Sample(tok, buf.logprob ? buf.lp.get(JAVA_FLOAT, 0) : Float.NaN, ids, lps);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // -------------------------------------------------------------- helpers

    /** Adapts a Java Progress to the C callback; exceptions never cross into native code. */
    static final class ProgressBridge {
        private final Progress target;

        ProgressBridge(Progress target) {
            this.target = target;
        }

        int call(MemorySegment user, int done, int total) {
            try {
                return target.onProgress(done, total) ? 0 : 1;
            } catch (Throwable t) {
                return 1; // a failing listener cancels rather than unwinding through C
            }
        }
    }

    private static final MethodHandle PROGRESS_CALL;

    static {
        try {
            PROGRESS_CALL = MethodHandles.lookup().findVirtual(ProgressBridge.class, "call",
                    MethodType.methodType(int.class, MemorySegment.class, int.class, int.class));
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    static MemorySegment upcall(Progress progress, Arena arena) {
        MethodHandle target = PROGRESS_CALL.bindTo(new ProgressBridge(progress));
        return Linker.nativeLinker().upcallStub(target, PROGRESS_FN, arena);
    }

    static String string(MemorySegment p) {
        if (p.equals(MemorySegment.NULL)) return "";
        return p.reinterpret(Long.MAX_VALUE).getString(0);
    }

    static String utf8(MemorySegment p, long len) {
        if (len < 0 || len > Integer.MAX_VALUE) throw new EngineException(EngineException.FORMAT, "bad string length " + len);
        byte[] b = p.reinterpret(len).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        return new String(b, StandardCharsets.UTF_8);
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }
}
