package io.ds4j.engine;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * FFM downcalls into libds4j (native-lib/include/ds4j.h). One instance per
 * loaded library; holds no mutable state besides the bound handles.
 */
public final class Ds4jNative {
    private final Path library;
    private final MethodHandle version;
    private final MethodHandle apiVersion;
    private final MethodHandle lastError;
    private final MethodHandle engineOpen;
    private final MethodHandle engineClose;

    private Ds4jNative(Path library, SymbolLookup lookup) {
        this.library = library;
        Linker linker = Linker.nativeLinker();
        this.version = bind(linker, lookup, "ds4j_version", FunctionDescriptor.of(ADDRESS));
        this.apiVersion = bind(linker, lookup, "ds4j_api_version", FunctionDescriptor.of(JAVA_INT));
        this.lastError = bind(linker, lookup, "ds4j_last_error", FunctionDescriptor.of(ADDRESS));
        this.engineOpen = bind(linker, lookup, "ds4j_engine_open", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS));
        this.engineClose = bind(linker, lookup, "ds4j_engine_close", FunctionDescriptor.ofVoid(ADDRESS));
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

    private static MethodHandle bind(Linker linker, SymbolLookup lookup, String name, FunctionDescriptor fd) {
        MemorySegment symbol = lookup.find(name).orElseThrow(() -> new NativeLibraryException(
                "native engine library lacks symbol " + name + " (stale build? rerun ./scripts/setup)", null));
        return linker.downcallHandle(symbol, fd);
    }

    public Path library() {
        return library;
    }

    public String version() {
        return string(invokeAddress(version));
    }

    public int apiVersion() {
        try {
            return (int) apiVersion.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String lastError() {
        return string(invokeAddress(lastError));
    }

    /** Opens a model; throws EngineException with the native message on failure. */
    public MemorySegment engineOpen(String path, String options) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handle = (MemorySegment) engineOpen.invokeExact(
                    arena.allocateFrom(path), arena.allocateFrom(options == null ? "" : options));
            if (handle.equals(MemorySegment.NULL)) {
                throw new EngineException(-1, lastError());
            }
            return handle;
        } catch (EngineException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void engineClose(MemorySegment engine) {
        try {
            engineClose.invokeExact(engine);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static MemorySegment invokeAddress(MethodHandle h) {
        try {
            return (MemorySegment) h.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static String string(MemorySegment p) {
        if (p.equals(MemorySegment.NULL)) return "";
        return p.reinterpret(Long.MAX_VALUE).getString(0);
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }
}
