package io.ds4j.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.ds4j.api.TestModels;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/**
 * The FFM binding against the real engine on the converted tiny-a fixture:
 * metadata, sessions (sync / eval / rewind / logits), sampler, progress
 * upcall cancellation and typed errors. Single-threaded, like EngineService.
 */
class NativeSessionBindingTest {
    static Ds4jNative lib;
    static MemorySegment engine;
    static JsonNode ref;

    @BeforeAll
    static void open() {
        lib = Ds4jNative.load(Ds4jNativeTest.libraryPath());
        assertThat(lib.missingSymbols()).as("complete native build").isEmpty();
        engine = lib.engineOpen(TestModels.tinyA().toString(), "threads=2");
        ref = TestModels.reference("dsv4-tiny-a");
    }

    @AfterAll
    static void close() {
        if (engine != null) lib.engineClose(engine);
    }

    static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).intValue();
        return out;
    }

    static float[] referenceRow(int seq, int row) throws Exception {
        JsonNode s = ref.get("sequences").get(seq);
        int vocab = s.get("shape").get(1).intValue();
        byte[] b = Files.readAllBytes(Path.of(System.getProperty("ds4j.shared.dir", "../shared"), "fixtures/dsv4-tiny-a",
                s.get("logits").stringValue()));
        float[] out = new float[vocab];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).position(row * vocab * 4).asFloatBuffer().get(out);
        return out;
    }

    @Test
    void metadataSnapshotImplementsTokenizerMetadata() {
        GgufMetadata m = GgufMetadata.read(lib, engine);
        assertThat(m.size()).isEqualTo(lib.metaCount(engine));
        assertThat(m.string("general.architecture")).contains("deepseek4");
        assertThat(lib.metaFind(engine, "general.architecture")).isNotNegative();
        assertThat(lib.metaFind(engine, "no.such.key")).isEqualTo(-1);
        assertThat(m.integer("deepseek4.expert_count")).hasValue(8);
        assertThat(m.stringArray("no.such.array")).isEmpty();
        assertThat(m.intArray("no.such.array")).isEmpty();
        assertThat(lib.nVocab(engine)).isEqualTo(512);
        assertThat(lib.engineDescribe(engine)).startsWith("{");
    }

    @Test
    void syncGivesTheReferenceLogitsAndRewindReplays() throws Exception {
        int[] seq = ints(ref.get("sequences").get(1).get("tokens"));
        MemorySegment s = lib.sessionNew(engine, 128);
        try {
            assertThat(lib.sessionNCtx(s)).isEqualTo(128);
            assertThat(lib.sessionLogits(s, 512)).isNull();
            assertThat(lib.sessionSync(s, seq, null)).isZero();
            assertThat(lib.sessionPos(s)).isEqualTo(seq.length);
            assertThat(lib.sessionTokens(s)).containsExactly(seq);
            float[] want = referenceRow(1, seq.length - 1);
            float[] got = lib.sessionLogits(s, 512);
            for (int i = 0; i < want.length; i++) assertThat(got[i]).isCloseTo(want[i], org.assertj.core.data.Offset.offset(5e-4f));
            // greedy sampling = argmax of the logits; top-2 logprobs are sorted
            MemorySegment sampler = lib.samplerNew("temperature=0");
            try (Arena arena = Arena.ofConfined()) {
                var sample = lib.samplerSample(sampler, s, new Ds4jNative.SampleBuffers(arena, 2));
                assertThat(sample.token()).isEqualTo(ref.get("sequences").get(1).get("argmax_last").intValue());
                assertThat(sample.topIds()[0]).isEqualTo(sample.token());
                assertThat(sample.topLogprobs()[0]).isGreaterThanOrEqualTo(sample.topLogprobs()[1]);
                lib.samplerAccept(sampler, sample.token());
                lib.samplerReset(sampler);
            } finally {
                lib.samplerFree(sampler);
            }
            lib.sessionEval(s, 5);
            assertThat(lib.sessionPos(s)).isEqualTo(seq.length + 1);
            lib.sessionRewind(s, seq.length);
            float[] again = lib.sessionLogits(s, 512);
            for (int i = 0; i < want.length; i++) assertThat(again[i]).isCloseTo(want[i], org.assertj.core.data.Offset.offset(5e-4f));
            float[] rows = lib.sessionEvalBatch(s, new int[] {1, 2}, 0, 512);
            assertThat(rows).hasSize(2 * 512);
            assertThat(lib.contextMemory(engine, 128)).isPositive();
        } finally {
            lib.sessionFree(s);
        }
    }

    @Test
    void copyTakesAnotherSessionsStateAndErrorsAreTyped() {
        int[] seq = ints(ref.get("sequences").get(3).get("tokens")); // 96 tokens: a checkpoint at 64
        MemorySegment src = lib.sessionNew(engine, 128);
        MemorySegment dst = lib.sessionNew(engine, 128);
        MemorySegment small = lib.sessionNew(engine, 50);
        try {
            lib.sessionSync(src, seq, null);
            assertThat(lib.sessionStateAt(src, 1000)).isEqualTo(seq.length);
            assertThat(lib.sessionStateAt(src, 80)).isEqualTo(64);
            assertThat(lib.sessionCopy(dst, src, 1000)).isEqualTo(seq.length);
            assertThat(lib.sessionTokens(dst)).containsExactly(seq);
            assertThat(lib.sessionLogits(dst, 512)).containsExactly(lib.sessionLogits(src, 512));
            assertThat(lib.sessionCopy(dst, src, 80)).isEqualTo(64);
            assertThat(lib.sessionPos(dst)).isEqualTo(64);
            assertThat(lib.sessionLogits(dst, 512)).isNull();
            assertThatThrownBy(() -> lib.sessionCopy(src, src, 10)).isInstanceOf(EngineException.class)
                    .hasMessageContaining("itself")
                    .satisfies(e -> assertThat(((EngineException) e).code()).isEqualTo(EngineException.INVALID_ARGUMENT));
            assertThatThrownBy(() -> lib.sessionCopy(small, src, 1000)).isInstanceOf(ContextOverflowException.class);
            assertThat(lib.sessionPos(small)).isZero();
            assertThat(lib.sessionPos(src)).isEqualTo(seq.length);
        } finally {
            lib.sessionFree(small);
            lib.sessionFree(dst);
            lib.sessionFree(src);
        }
    }

    @Test
    void progressUpcallCancelsAndErrorsAreTyped() {
        MemorySegment s = lib.sessionNew(engine, 256);
        try {
            int[] prompt = new int[200];
            for (int i = 0; i < prompt.length; i++) prompt[i] = (i * 7 + 3) % 512;
            AtomicInteger calls = new AtomicInteger();
            assertThatThrownBy(() -> lib.sessionSync(s, prompt, (done, total) -> {
                calls.incrementAndGet();
                assertThat(total).isEqualTo(200);
                return false;
            })).isInstanceOf(CancelledException.class);
            assertThat(calls.get()).isEqualTo(1);
            assertThat(lib.sessionPos(s)).isBetween(1, 199);
            // a listener that throws cancels instead of crashing the JVM
            assertThatThrownBy(() -> lib.sessionSync(s, prompt, (done, total) -> {
                throw new IllegalStateException("listener bug");
            })).isInstanceOf(CancelledException.class);
            assertThatThrownBy(() -> lib.sessionSync(s, new int[300], null)).isInstanceOf(ContextOverflowException.class)
                    .hasMessageContaining("300");
            assertThatThrownBy(() -> lib.sessionRewind(s, 10_000)).isInstanceOf(EngineException.class)
                    .hasMessageContaining("rewind");
            assertThatThrownBy(() -> lib.samplerNew("nonsense=1")).isInstanceOf(EngineException.class);
        } finally {
            lib.sessionFree(s);
        }
    }
}
