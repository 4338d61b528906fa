package io.ds4j.bench;

import io.ds4j.tokenizer.HfTokenizerJsonMetadata;
import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Single-thread throughput of the real DeepSeek tokenizer (tokenizer.json through the test adapter
 * {@link TestTokenizers}) on 1 MB inputs from {@link BenchText}. One operation is one byte of UTF-8
 * text ({@link OperationsPerInvocation} = {@link BenchText#BYTES}) and the unit is microseconds, so
 * the score in ops/us is MB/s (10^6 bytes per second). Run with {@code scripts/bench-tokenizer}.
 *
 * <ul>
 *   <li>{@code encodeProse}: English-like prose, steady state (the piece cache is warm, as in a
 *       server that has seen English before).
 *   <li>{@code encodeColdCache}: nonsense words, a different 1 MB text on each call out of eight, so
 *       practically every piece misses the cache: pre-tokenizer regexes plus BPE merges alone.
 *   <li>{@code decodeProse}: token ids of the prose back to the text (MB/s of decoded UTF-8).
 *   <li>{@code loadTokenizer}: parse tokenizer.json and build the tokenizer, ms per load (single
 *       shot after three warm-up loads; the one benchmark whose unit is not MB/s).
 * </ul>
 * On a shared machine add {@code -prof io.ds4j.bench.CpuTimeProfiler} (the script does) for MB per
 * CPU second next to MB per wall second. Not a test: nothing here is run by surefire ({@code BenchTextTest} checks the inputs).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@OperationsPerInvocation(BenchText.BYTES)
@Warmup(iterations = 5, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g"})
@Threads(1)
public class TokenizerBenchmark {
    static final long PROSE_SEED = 1;
    static final int COLD_TEXTS = 8;

    @State(Scope.Thread)
    public static class Prose {
        Tokenizer tok;
        String text;
        int[] ids;

        @Setup
        public void setup() {
            tok = TestTokenizers.real();
            text = BenchText.prose(PROSE_SEED);
            ids = tok.encode(text);
        }
    }

    @State(Scope.Thread)
    public static class Cold {
        Tokenizer tok;
        String[] texts = new String[COLD_TEXTS];
        int next;

        @Setup
        public void setup() {
            tok = TestTokenizers.real();
            for (int i = 0; i < COLD_TEXTS; i++) texts[i] = BenchText.pseudoWords(100 + i);
        }
    }

    @Benchmark
    public int[] encodeProse(Prose s) {
        return s.tok.encode(s.text);
    }

    @Benchmark
    public int[] encodeColdCache(Cold s) {
        // 7 MB of other new words are encoded before a text comes round again; with 65536 cache
        // slots none of its pieces survive that long.
        String t = s.texts[s.next];
        s.next = (s.next + 1) % COLD_TEXTS;
        return s.tok.encode(t);
    }

    @Benchmark
    public String decodeProse(Prose s) {
        return s.tok.decode(s.ids);
    }

    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @OperationsPerInvocation(1)
    @Warmup(iterations = 3)
    @Measurement(iterations = 5)
    public Tokenizer loadTokenizer() throws IOException {
        return Tokenizer.fromMetadata(new HfTokenizerJsonMetadata(TestTokenizers.tokenizerJson()));
    }
}
