package io.ds4j.engine;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The prefix cache on disk: session states written by the engine
 * (ds4j_session_save) into {@code dir/<engine fingerprint>/}, one file per
 * token prefix, named for the SHA-256 of its token ids. The index (each
 * file's tokens, size, last use) is read from the files' headers at startup
 * (ds4j_state_file_tokens), so a restarted server finds what the previous
 * one wrote. A file is written under a temporary name and renamed, so a
 * reader never sees half of one; a file whose header is damaged or names
 * another model is removed at startup, one whose content fails the engine's
 * verification (checksum, sizes, token ids) is removed when it is loaded.
 * Beyond {@code maxBytes} the least recently used files are removed. The
 * engine verifies; this class only decides which file to try. Engine owner
 * thread only (the counters may be read from anywhere).
 */
public final class DiskStateCache {
    private static final Logger log = LoggerFactory.getLogger(DiskStateCache.class);
    static final String SUFFIX = ".state";

    /** One state file: the prefix it holds. */
    record Entry(Path file, int[] tokens, long bytes, long[] lastUsed) {
        int length() {
            return tokens.length;
        }
    }

    /** Counters for metrics and tests. */
    public record Stats(long files, long bytes, long hits, long tokensLoaded, long writes, long bytesWritten,
                        long removedDamaged, long evicted) {}

    private final Ds4jNative lib;
    private final MemorySegment engine;
    private final Path dir;
    private final long maxBytes;
    private final int minTokens;
    private final int maxTokens;
    private final List<Entry> entries = new ArrayList<>();
    private long clock;
    private final AtomicLong hits = new AtomicLong(), tokensLoaded = new AtomicLong(), writes = new AtomicLong(),
            bytesWritten = new AtomicLong(), removedDamaged = new AtomicLong(), evicted = new AtomicLong();
    private volatile long files, bytes;

    /**
     * Opens (creating it if needed) the directory of this engine's files
     * under {@code root} and indexes those that fit a session of
     * {@code maxTokens}; throws IllegalStateException when it cannot be
     * created or read.
     */
    public DiskStateCache(Ds4jNative lib, MemorySegment engine, Path root, long maxBytes, int minTokens, int maxTokens) {
        this.lib = lib;
        this.engine = engine;
        String fp = lib.engineFingerprint(engine);
        if (fp == null) throw new IllegalStateException("the engine has no weights: no state to cache");
        this.dir = root.resolve(fp);
        this.maxBytes = maxBytes;
        this.minTokens = Math.max(1, minTokens);
        this.maxTokens = maxTokens;
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new IllegalStateException("ds4.cache.disk.dir: cannot create " + dir + ": " + e, e);
        }
        scan();
    }

    public Path dir() {
        return dir;
    }

    public int minTokens() {
        return minTokens;
    }

    public Stats stats() {
        return new Stats(files, bytes, hits.get(), tokensLoaded.get(), writes.get(), bytesWritten.get(),
                removedDamaged.get(), evicted.get());
    }

    private void scan() {
        List<Path> found = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) found.add(p);
        } catch (IOException e) {
            throw new IllegalStateException("ds4.cache.disk.dir: cannot read " + dir + ": " + e, e);
        }
        for (Path p : found) {
            String name = p.getFileName().toString();
            if (name.endsWith(".tmp")) { // left by a process that died while writing
                delete(p);
                continue;
            }
            if (!name.endsWith(SUFFIX)) continue;
            try {
                int[] tokens = lib.stateFileTokens(engine, p, maxTokens);
                if (tokens == null) { // valid, but longer than this server's sessions: left alone, not indexed
                    log.info("disk cache: {} holds more tokens than ds4.engine.context-size ({}); not used", p, maxTokens);
                    continue;
                }
                if (!p.getFileName().toString().equals(nameOf(tokens))) {
                    throw EngineException.of(EngineException.FORMAT, "its name does not match the tokens it holds");
                }
                long size = Files.size(p);
                entries.add(new Entry(p, tokens, size, new long[] {Files.getLastModifiedTime(p).toMillis()}));
            } catch (EngineException | IOException e) {
                log.warn("disk cache: ignoring and removing {}: {}", p, e.getMessage());
                removedDamaged.incrementAndGet();
                delete(p);
            }
        }
        // file times order the entries found; later uses count from after the newest of them
        entries.sort((a, b) -> Long.compare(a.lastUsed[0], b.lastUsed[0]));
        for (Entry e : entries) e.lastUsed[0] = ++clock;
        recount();
        evict();
        log.info("disk cache: {} state file(s), {} MiB in {} (max {} MiB, prompts of at least {} tokens written)", files,
                bytes >> 20, dir, maxBytes >> 20, minTokens);
    }

    /**
     * The longest file whose tokens are a prefix of {@code prompt} shorter
     * than it (at least one prompt token must remain to be evaluated: files
     * hold no logits) and longer than {@code atLeast}; null if none.
     */
    Entry best(int[] prompt, int atLeast) {
        Entry best = null;
        for (Entry e : entries) {
            int n = e.length();
            if (n <= atLeast || n >= prompt.length || (best != null && n <= best.length())) continue;
            if (Arrays.equals(e.tokens, 0, n, prompt, 0, n)) best = e;
        }
        return best;
    }

    /**
     * Loads {@code e} into {@code session}; true on success. A file the
     * engine refuses is removed (the session is then empty).
     */
    boolean load(MemorySegment session, Entry e) {
        try {
            int pos = lib.sessionLoad(session, e.file);
            if (pos != e.length()) throw EngineException.of(EngineException.FORMAT, "it holds " + pos + " tokens, its header said " + e.length());
            e.lastUsed[0] = ++clock;
            touch(e.file);
            hits.incrementAndGet();
            tokensLoaded.addAndGet(pos);
            return true;
        } catch (EngineException ex) {
            if (ex.code() == EngineException.NO_MEMORY || ex.code() == EngineException.CONTEXT_FULL) {
                log.warn("disk cache: cannot load {}: {}", e.file, ex.getMessage());
                return false;
            }
            log.warn("disk cache: removing {}: {}", e.file, ex.getMessage());
            removedDamaged.incrementAndGet();
            remove(e);
            return false;
        }
    }

    /**
     * Writes the state of {@code session} before the last token of
     * {@code prompt} (which the session evaluated) unless the prompt is
     * shorter than min-tokens or that prefix is on disk already. Failures are
     * logged, never thrown: the cache is an optimisation.
     */
    void store(MemorySegment session, int[] prompt) {
        int want = prompt.length - 1;
        if (want < minTokens) return;
        Entry have = find(Arrays.copyOf(prompt, want));
        if (have != null) {
            have.lastUsed[0] = ++clock;
            touch(have.file);
            return;
        }
        Path tmp = dir.resolve("." + Long.toHexString(ThreadLocalRandom.current().nextLong()) + ".tmp");
        try {
            int pos = lib.sessionSave(session, tmp, want);
            int[] tokens = Arrays.copyOf(prompt, pos);
            if (pos < minTokens || find(tokens) != null) { // an older checkpoint: too short, or known
                delete(tmp);
                return;
            }
            Path file = dir.resolve(nameOf(tokens));
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            long size = Files.size(file);
            entries.add(new Entry(file, tokens, size, new long[] {++clock}));
            writes.incrementAndGet();
            bytesWritten.addAndGet(size);
            recount();
            evict();
        } catch (EngineException | IOException e) {
            log.warn("disk cache: cannot write the state of a {}-token prompt: {}", want, e.getMessage());
            delete(tmp);
        }
    }

    private Entry find(int[] tokens) {
        for (Entry e : entries) if (Arrays.equals(e.tokens, tokens)) return e;
        return null;
    }

    private void evict() {
        while (bytes > maxBytes && !entries.isEmpty()) {
            Entry lru = entries.get(0);
            for (Entry e : entries) if (e.lastUsed[0] < lru.lastUsed[0]) lru = e;
            evicted.incrementAndGet();
            remove(lru);
        }
    }

    private void remove(Entry e) {
        entries.remove(e);
        delete(e.file);
        recount();
    }

    private void recount() {
        long b = 0;
        for (Entry e : entries) b += e.bytes;
        bytes = b;
        files = entries.size();
    }

    private static void delete(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            log.warn("disk cache: cannot remove {}: {}", p, e.toString());
        }
    }

    private static void touch(Path p) {
        try {
            Files.setLastModifiedTime(p, FileTime.fromMillis(System.currentTimeMillis()));
        } catch (NoSuchFileException e) {
            // removed by someone else: the next load reports it
        } catch (IOException e) {
            log.debug("disk cache: cannot touch {}: {}", p, e.toString());
        }
    }

    /** File name of a prefix: the SHA-256 of its token ids (little-endian int32), 32 hex digits. */
    static String nameOf(int[] tokens) {
        ByteBuffer b = ByteBuffer.allocate(tokens.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int t : tokens) b.putInt(t);
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(b.array());
            return HexFormat.of().formatHex(d, 0, 16) + SUFFIX;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
