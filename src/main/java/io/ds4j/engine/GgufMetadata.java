package io.ds4j.engine;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Immutable snapshot of a model file's GGUF metadata, read once through the
 * ds4j_meta_* functions on the engine owner thread; afterwards any thread may
 * read it. Values: String, Long (every integer type and bool), Double (float
 * types), List&lt;String&gt;, long[] or double[] (arrays).
 */
public final class GgufMetadata implements io.ds4j.tokenizer.TokenizerMetadata {
    static final int T_U8 = 0, T_I8 = 1, T_U16 = 2, T_I16 = 3, T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7,
            T_STRING = 8, T_ARRAY = 9, T_U64 = 10, T_I64 = 11, T_F64 = 12;

    private final Map<String, Object> values;

    public GgufMetadata(Map<String, Object> values) {
        this.values = Collections.unmodifiableMap(new LinkedHashMap<>(values));
    }

    /** Reads every key of an open engine (call on the owner thread). */
    public static GgufMetadata read(Ds4jNative lib, MemorySegment engine) {
        Map<String, Object> m = new LinkedHashMap<>();
        int n = lib.metaCount(engine);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment len = arena.allocate(JAVA_LONG);
            for (int i = 0; i < n; i++) {
                String key = lib.metaKey(engine, i);
                int type = lib.metaType(engine, i);
                Object v = switch (type) {
                    case T_STRING -> lib.metaStr(engine, i);
                    case T_F32, T_F64 -> lib.metaFloat(engine, i);
                    case T_ARRAY -> readArray(lib, engine, i, len);
                    default -> lib.metaInt(engine, i);
                };
                m.put(key, v);
            }
        }
        return new GgufMetadata(m);
    }

    private static Object readArray(Ds4jNative lib, MemorySegment engine, int i, MemorySegment len) {
        int et = lib.metaArrType(engine, i);
        long n = lib.metaArrLen(engine, i);
        if (n > Integer.MAX_VALUE - 8) throw new EngineException(EngineException.FORMAT, "metadata array too long: " + n);
        switch (et) {
            case T_STRING -> {
                List<String> out = new ArrayList<>((int) n);
                for (long k = 0; k < n; k++) out.add(lib.metaArrStr(engine, i, k, len));
                return Collections.unmodifiableList(out);
            }
            case T_F32, T_F64 -> {
                double[] out = new double[(int) n];
                for (int k = 0; k < n; k++) out[k] = lib.metaArrFloat(engine, i, k);
                return out;
            }
            case T_ARRAY -> {
                return List.of(); // nested arrays: not used by ds4j models
            }
            default -> {
                long[] out = new long[(int) n];
                for (int k = 0; k < n; k++) out[k] = lib.metaArrInt(engine, i, k);
                return out;
            }
        }
    }

    public Map<String, Object> asMap() {
        return values;
    }

    public boolean contains(String key) {
        return values.containsKey(key);
    }

    public Optional<String> string(String key) {
        return values.get(key) instanceof String s ? Optional.of(s) : Optional.empty();
    }

    public OptionalLong integer(String key) {
        return values.get(key) instanceof Long l ? OptionalLong.of(l) : OptionalLong.empty();
    }

    public java.util.OptionalDouble real(String key) {
        Object v = values.get(key);
        if (v instanceof Double d) return java.util.OptionalDouble.of(d);
        if (v instanceof Long l) return java.util.OptionalDouble.of(l);
        return java.util.OptionalDouble.empty();
    }

    @SuppressWarnings("unchecked")
    public List<String> stringArray(String key) {
        return values.get(key) instanceof List<?> l ? (List<String>) l : List.of();
    }

    public int[] intArray(String key) {
        if (!(values.get(key) instanceof long[] a)) return new int[0];
        int[] out = new int[a.length];
        for (int i = 0; i < a.length; i++) out[i] = (int) a[i];
        return out;
    }

    public int size() {
        return values.size();
    }
}
