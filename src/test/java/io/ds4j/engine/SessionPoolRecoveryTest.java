package io.ds4j.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.ds4j.api.TestModels;
import java.lang.foreign.MemorySegment;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What the server does with its sessions after the cluster was recovered, with the real engine (tiny-a,
 * one process): every session predates the new followers, so idle ones (and their cached prefixes) are
 * freed at once, a busy one when its request ends, and a fresh session serves the next request exactly as
 * before. The multi-process recovery itself is tested by test_dist_mpi and scripts/test-launch.
 */
class SessionPoolRecoveryTest {
    static final int N_CTX = 128, VOCAB = 512;
    static Ds4jNative lib;
    MemorySegment engine;
    SessionPool pool;

    @BeforeAll
    static void load() {
        lib = Ds4jNative.load(Ds4jNativeTest.libraryPath());
    }

    @BeforeEach
    void open() {
        engine = lib.engineOpen(TestModels.tinyA().toString(), "threads=1");
        pool = new SessionPool(lib, engine, N_CTX, lib.sessionNew(engine, N_CTX));
        pool.configure(3, 3);
    }

    @AfterEach
    void close() {
        pool.closeAll();
        lib.engineClose(engine);
    }

    static int[] prompt(int salt) {
        return IntStream.range(0, 20).map(k -> (k * 13 + salt * 29 + 3) % VOCAB).toArray();
    }

    float[] serve(int[] prompt, int[] cachedOut) {
        SessionPool.Lease lease = pool.acquire(prompt);
        cachedOut[0] = lease.cached();
        if (!lease.ready()) pool.finishPrompt(lease.slot(), prompt);
        float[] logits = lib.sessionLogits(lease.slot().handle(), VOCAB);
        pool.release(lease.slot());
        return logits;
    }

    @Test
    void invalidateAllDropsIdleSessionsAtOnceBusyOnesAtReleaseAndServesFromAFreshSession() {
        int[] cached = new int[1];
        float[] first = serve(prompt(1), cached);
        assertThat(serve(prompt(1), cached)).containsExactly(first);
        assertThat(cached[0]).isEqualTo(20); // the idle session is the prefix cache
        SessionPool.Lease busy = pool.acquire(prompt(2));
        assertThat(pool.size()).isGreaterThanOrEqualTo(2);
        assertThat(pool.idle()).isPositive();

        pool.invalidateAll();
        // the idle one is gone, the busy one stays until its request ends, one fresh session is ready
        assertThat(pool.size()).isEqualTo(2);
        assertThat(pool.idle()).isEqualTo(1);
        pool.release(busy.slot());
        assertThat(pool.size()).isEqualTo(1);

        float[] again = serve(prompt(1), cached);
        assertThat(cached[0]).isZero(); // nothing cached survived
        assertThat(again).containsExactly(first);
    }

    @Test
    void recoverWithoutAClusterIsAStateErrorNotACrash() {
        assertThatThrownBy(() -> lib.engineRecover(engine))
                .isInstanceOf(EngineException.class)
                .hasMessageContaining("no distributed group")
                .satisfies(ex -> assertThat(((EngineException) ex).code()).isEqualTo(EngineException.STATE));
    }
}
