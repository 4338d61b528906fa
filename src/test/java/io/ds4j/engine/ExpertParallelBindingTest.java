package io.ds4j.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.ds4j.api.TestModels;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * Expert-parallelism bindings (rank, world size, collectives, follower
 * loop, all_sum statistics) against the real engine: without comm= they are
 * single-process no-ops; comm=local is a one-rank backend that still times
 * every MoE layer's all_sum.
 */
class ExpertParallelBindingTest {
    static final int LAYERS = 5; // dsv4-tiny-a: every layer is (hash) MoE

    @Test
    void withoutCommTheCollectivesAreNoOps() {
        Ds4jNative lib = Ds4jNative.load(Ds4jNativeTest.libraryPath());
        MemorySegment engine = lib.engineOpen(TestModels.tinyA().toString(), "threads=1");
        try {
            assertThat(lib.engineRank(engine)).isZero();
            assertThat(lib.engineWorldSize(engine)).isEqualTo(1);
            int[] toks = {5, 6, 7};
            lib.engineBroadcastTokens(engine, toks, 0);
            assertThat(toks).containsExactly(5, 6, 7);
            lib.engineBarrier(engine);
            assertThat(lib.engineAllsumStats(engine, -1).count()).isZero();
            List<Integer> seen = new ArrayList<>();
            assertThat(lib.engineAllsumDrain(engine, 16, (l, ns) -> seen.add(l))).isZero();
            assertThat(seen).isEmpty();
            // rank 0 is never a follower
            assertThatThrownBy(() -> lib.engineFollow(engine)).isInstanceOf(EngineException.class)
                    .satisfies(e -> assertThat(((EngineException) e).code()).isEqualTo(EngineException.STATE));
        } finally {
            lib.engineClose(engine);
        }
    }

    @Test
    void localCommRecordsOneAllsumSamplePerMoeLayerAndToken() {
        Ds4jNative lib = Ds4jNative.load(Ds4jNativeTest.libraryPath());
        MemorySegment engine = lib.engineOpen(TestModels.tinyA().toString(), "threads=1\ncomm=local");
        MemorySegment session = lib.sessionNew(engine, 64);
        try {
            assertThat(lib.engineWorldSize(engine)).isEqualTo(1);
            lib.sessionEval(session, 3);
            lib.sessionEval(session, 4);
            TreeMap<Integer, Integer> perLayer = new TreeMap<>();
            List<Long> ns = new ArrayList<>();
            // batch of 3 forces several native drain calls
            long dropped = lib.engineAllsumDrain(engine, 3, (l, n) -> {
                perLayer.merge(l, 1, Integer::sum);
                ns.add(n);
            });
            assertThat(dropped).isZero();
            assertThat(perLayer.keySet()).containsExactly(0, 1, 2, 3, 4);
            assertThat(perLayer.values()).allSatisfy(c -> assertThat(c).isEqualTo(2));
            assertThat(ns).allSatisfy(n -> assertThat(n).isNotNegative());
            assertThat(lib.engineAllsumStats(engine, -1).count()).isEqualTo(2L * LAYERS);
            assertThat(lib.engineAllsumStats(engine, 2).count()).isEqualTo(2);
            // drained: nothing left
            assertThat(lib.engineAllsumDrain(engine, 8, (l, n) -> perLayer.merge(l, 100, Integer::sum))).isZero();
            assertThat(perLayer.values()).allSatisfy(c -> assertThat(c).isEqualTo(2));
        } finally {
            lib.sessionFree(session);
            lib.engineClose(engine);
        }
    }

    /** Logits of tokens 3, 4, 5 from an engine opened with the server's options for this configuration. */
    static float[] logitsWithServerOptions(Ds4jNative lib, String allSumDtype, String[] describe) {
        String options = EngineOptionsTest.options("ds4.engine.threads=1", "ds4.distributed.enabled=true",
                "ds4.distributed.backend=local", "ds4.distributed.all-sum-dtype=" + allSumDtype);
        MemorySegment engine = lib.engineOpen(TestModels.tinyA().toString(), options);
        MemorySegment session = lib.sessionNew(engine, 64);
        try {
            describe[0] = lib.engineDescribe(engine);
            return lib.sessionEvalBatch(session, new int[] {3, 4, 5}, 0, lib.nVocab(engine));
        } finally {
            lib.sessionFree(session);
            lib.engineClose(engine);
        }
    }

    @Test
    void theServersSixteenBitAllSumOptionOpensTheEngineAndRoundsTheSum() {
        Ds4jNative lib = Ds4jNative.load(Ds4jNativeTest.libraryPath());
        String[] describe = new String[1];
        float[] f32 = logitsWithServerOptions(lib, "f32", describe);
        assertThat(describe[0]).contains("\"all_sum_dtype\":\"f32\"");
        for (String t : new String[] {"f16", "bf16"}) {
            float[] sixteen = logitsWithServerOptions(lib, t, describe);
            assertThat(describe[0]).contains("\"all_sum_dtype\":\"" + t + "\"");
            assertThat(sixteen).hasSameSizeAs(f32);
            for (float v : sixteen) assertThat(Float.isFinite(v)).isTrue();
            // comm=local's all_sum is the rank's own partial sum, rounded to 16 bits by this payload
            assertThat(sixteen).as("%s logits", t).isNotEqualTo(f32);
        }
    }
}
