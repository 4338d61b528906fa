package io.ds4j.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.api.TestModels;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The prefix cache on disk with the real engine (tiny-a): a prompt's state
 * written when its request ends is found by a pool of a newly opened engine
 * (a restart) and continues exactly as the evaluation from scratch; damaged,
 * foreign and half-written files are removed, never trusted; the directory
 * stays within max-size, least recently used first.
 */
class DiskStateCacheTest {
    static final int N_CTX = 256, VOCAB = 512;
    static Ds4jNative lib;
    final List<MemorySegment> engines = new ArrayList<>();
    final List<SessionPool> pools = new ArrayList<>();

    @TempDir
    Path root;

    @BeforeAll
    static void load() {
        lib = Ds4jNative.load(Ds4jNativeTest.libraryPath());
    }

    @AfterEach
    void close() {
        pools.forEach(SessionPool::closeAll);
        engines.forEach(lib::engineClose);
    }

    MemorySegment engine(String options) {
        MemorySegment e = lib.engineOpen(TestModels.tinyA().toString(), options);
        engines.add(e);
        return e;
    }

    /** A pool of two sessions on a freshly opened engine, with a disk cache in root (prompts of 16+ tokens). */
    SessionPool pool(String options, long maxBytes) {
        MemorySegment e = engine(options);
        SessionPool p = new SessionPool(lib, e, N_CTX, lib.sessionNew(e, N_CTX));
        pools.add(p);
        p.configure(2, 2);
        p.attachDisk(new DiskStateCache(lib, e, root, maxBytes, 16, N_CTX));
        return p;
    }

    static int[] prompt(int n, int salt) {
        return IntStream.range(0, n).map(k -> (k * 11 + salt * 37 + 5) % VOCAB).toArray();
    }

    /**
     * Runs a request's prompt through the pool as the scheduler does, then lets the engine go idle (the
     * scheduler's flush of pending writes); returns the next-token logits.
     */
    static float[] serve(SessionPool p, int[] prompt, int[] cachedOut) {
        float[] logits = serveBusy(p, prompt, cachedOut);
        p.flushPendingWrites();
        return logits;
    }

    /** The same while other sequences keep the engine busy: the write stays pending. */
    static float[] serveBusy(SessionPool p, int[] prompt, int[] cachedOut) {
        SessionPool.Lease lease = p.acquire(prompt);
        if (cachedOut != null) cachedOut[0] = lease.cached();
        if (!lease.ready()) p.finishPrompt(lease.slot(), prompt);
        float[] logits = lib.sessionLogits(lease.slot().handle(), VOCAB);
        p.release(lease.slot());
        return logits;
    }

    List<Path> files(SessionPool p) throws Exception {
        try (Stream<Path> s = Files.list(p.disk().dir())) {
            return s.toList();
        }
    }

    @Test
    void aPromptStateWrittenWhenItsRequestEndsIsLoadedAfterARestartAndContinuesExactly() throws Exception {
        int[] prompt = prompt(100, 1);
        SessionPool first = pool("threads=2", 1 << 30);
        int[] cached = new int[1];
        float[] fromScratch = serve(first, prompt, cached);
        assertThat(cached[0]).isZero();
        assertThat(first.disk().stats().writes()).isEqualTo(1);
        assertThat(files(first)).hasSize(1).allMatch(f -> f.toString().endsWith(".state"));
        serve(first, prompt, null); // the same prefix again: not written twice
        assertThat(first.disk().stats().writes()).isEqualTo(1);

        SessionPool second = pool("threads=2", 1 << 30); // another engine: what a restarted server sees
        assertThat(second.disk().dir()).isEqualTo(first.disk().dir());
        assertThat(second.disk().stats().files()).isEqualTo(1);
        float[] reloaded = serve(second, prompt, cached);
        assertThat(cached[0]).as("all but the prompt's last token come from disk").isEqualTo(99);
        assertThat(reloaded).as("bit for bit the logits computed from scratch").containsExactly(fromScratch);
        assertThat(second.disk().stats().hits()).isEqualTo(1);
        assertThat(second.disk().stats().tokensLoaded()).isEqualTo(99);

        // a longer prompt sharing the prefix: loaded, then only the new tokens are evaluated
        int[] longer = IntStream.concat(IntStream.of(prompt).limit(99), IntStream.of(7, 8, 9, 10)).toArray();
        SessionPool third = pool("threads=2", 1 << 30);
        float[] viaDisk = serve(third, longer, cached);
        assertThat(cached[0]).isEqualTo(99);
        MemorySegment e = engines.get(0);
        MemorySegment fresh = lib.sessionNew(e, N_CTX);
        try {
            lib.sessionSync(fresh, longer, null);
            assertThat(viaDisk).containsExactly(lib.sessionLogits(fresh, VOCAB));
        } finally {
            lib.sessionFree(fresh);
        }
        // short prompts are not written
        serve(third, prompt(12, 2), null);
        assertThat(third.disk().stats().files()).isEqualTo(2);
    }

    @Test
    void aPromptStateIsWrittenWhenTheEngineIsIdleOrBeforeItsSessionIsReused() throws Exception {
        SessionPool p = pool("threads=2", 1 << 30);
        p.configure(1, 1); // one session: the next request must reuse it
        int[] a = prompt(100, 10), b = prompt(100, 11);
        serveBusy(p, a, null);
        assertThat(p.disk().stats().writes()).as("not while the engine is busy").isZero();
        assertThat(p.hasPendingWrites()).isTrue();
        serveBusy(p, b, null); // reuses a's session: a's state is written first
        assertThat(p.disk().stats().writes()).isEqualTo(1);
        assertThat(p.hasPendingWrites()).as("b's").isTrue();
        p.flushPendingWrites();
        assertThat(p.disk().stats().writes()).isEqualTo(2);
        assertThat(p.hasPendingWrites()).isFalse();
        int[] cached = new int[1];
        serve(p, a, cached);
        assertThat(cached[0]).as("a from disk: the write before the reuse held a's own state").isEqualTo(99);
        // closing the pool (engine shutdown) writes what is pending
        serveBusy(p, prompt(100, 12), null);
        p.closeAll();
        pools.remove(p);
        SessionPool after = pool("threads=2", 1 << 30);
        assertThat(after.disk().stats().files()).isEqualTo(3);
    }

    @Test
    void damagedForeignAndHalfWrittenFilesAreRemovedAndNeverTrusted() throws Exception {
        int[] prompt = prompt(100, 3);
        SessionPool writer = pool("threads=2", 1 << 30);
        float[] fromScratch = serve(writer, prompt, null);
        Path file = files(writer).getFirst();
        byte[] good = Files.readAllBytes(file);

        // a bit flipped inside the state: the header is fine, so it is indexed, then refused when loaded
        byte[] flipped = good.clone();
        flipped[good.length / 2] ^= 0x10;
        Files.write(file, flipped);
        SessionPool reader = pool("threads=2", 1 << 30);
        assertThat(reader.disk().stats().files()).isEqualTo(1);
        int[] cached = new int[1];
        float[] got = serve(reader, prompt, cached);
        assertThat(cached[0]).as("nothing reused from a corrupt file").isZero();
        assertThat(got).containsExactly(fromScratch);
        assertThat(reader.disk().stats().removedDamaged()).isEqualTo(1);
        assertThat(reader.disk().stats().hits()).isZero();
        // (the request then wrote a good file again, under the same name)
        assertThat(Files.readAllBytes(file)).isEqualTo(good);

        // truncated, a leftover temporary file, and a state file of another precision (another fingerprint)
        Files.write(file, java.util.Arrays.copyOf(good, good.length - 100));
        Path tmp = Files.writeString(reader.disk().dir().resolve(".0123.tmp"), "half");
        SessionPool fp8 = pool("threads=2;kv_precision=fp8", 1 << 30);
        assertThat(fp8.disk().dir()).isNotEqualTo(reader.disk().dir());
        serve(fp8, prompt, null);
        Path foreign = files(fp8).getFirst();
        Path planted = reader.disk().dir().resolve(DiskStateCache.nameOf(prompt(50, 9)));
        Files.copy(foreign, planted);
        SessionPool after = pool("threads=2", 1 << 30);
        assertThat(after.disk().stats().files()).isZero();
        assertThat(after.disk().stats().removedDamaged()).isEqualTo(2);
        assertThat(file).doesNotExist();
        assertThat(planted).doesNotExist();
        assertThat(tmp).doesNotExist();
        assertThat(foreign).as("another model's directory is left alone").exists();
        assertThat(serve(after, prompt, cached)).containsExactly(fromScratch);
        assertThat(cached[0]).isZero();
    }

    @Test
    void beyondMaxSizeTheLeastRecentlyUsedFilesAreRemoved() throws Exception {
        SessionPool probe = pool("threads=2", 1 << 30);
        serve(probe, prompt(100, 4), null);
        long one = probe.disk().stats().bytes();
        Files.delete(files(probe).getFirst());

        SessionPool p = pool("threads=2", one * 5 / 2); // room for two files of that size
        int[] a = prompt(100, 5), b = prompt(100, 6), c = prompt(100, 7);
        serve(p, a, null);
        serve(p, b, null);
        serve(p, prompt(100, 8), null); // a third file: a's, the least recently used, goes
        assertThat(p.disk().stats().evicted()).isEqualTo(1);
        assertThat(p.disk().stats().files()).isEqualTo(2);
        serve(p, c, null);
        assertThat(p.disk().stats().evicted()).isEqualTo(2);
        assertThat(p.disk().stats().bytes()).isLessThanOrEqualTo(one * 5 / 2);
        SessionPool restarted = pool("threads=2", one * 5 / 2);
        int[] cached = new int[1];
        serve(restarted, prompt(100, 8), cached);
        assertThat(cached[0]).as("the newer files survive").isEqualTo(99);
        serve(restarted, a, cached);
        assertThat(cached[0]).as("the oldest was removed").isZero();
    }
}
