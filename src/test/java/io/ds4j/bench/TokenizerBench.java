package io.ds4j.bench;

import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Single-thread encode throughput (MB/s of UTF-8 input), a plain main rather than a test: it reports
 * numbers and asserts nothing. Run with scripts-free Maven:
 * <pre>
 * mvn -q test-compile dependency:build-classpath -Dmdep.outputFile=target/cp.txt
 * java -cp target/test-classes:target/classes:$(cat target/cp.txt) io.ds4j.bench.TokenizerBench [file...]
 * </pre>
 * Default corpus: the English prose under ../shared/docs and /usr/share/common-licenses, repeated to
 * about 8 MB. "cold" is the first pass with an empty piece cache, "warm" the best of later passes.
 */
public final class TokenizerBench {
    public static void main(String[] args) throws Exception {
        List<Path> files = new ArrayList<>();
        for (String a : args) files.add(Path.of(a));
        if (files.isEmpty()) {
            try (Stream<Path> s = Files.list(TestTokenizers.sharedDir().resolve("docs"))) {
                s.filter(p -> p.toString().endsWith(".md")).forEach(files::add);
            }
            Path lic = Path.of("/usr/share/common-licenses");
            if (Files.isDirectory(lic)) {
                try (Stream<Path> s = Files.list(lic)) {
                    s.filter(Files::isRegularFile).forEach(files::add);
                }
            }
        }
        StringBuilder sb = new StringBuilder();
        for (Path p : files) sb.append(Files.readString(p, StandardCharsets.UTF_8)).append('\n');
        String unit = sb.toString();
        StringBuilder big = new StringBuilder();
        while (big.length() < 8_000_000) big.append(unit);
        String text = big.toString();
        double mb = text.getBytes(StandardCharsets.UTF_8).length / 1e6;

        long t0 = System.nanoTime();
        Tokenizer tok = TestTokenizers.real();
        long t1 = System.nanoTime();
        System.out.printf("load tokenizer (tokenizer.json parse + build): %.0f ms%n", (t1 - t0) / 1e6);

        // cold: fresh tokenizer instance, distinct text (the unit once)
        Tokenizer cold = Tokenizer.fromMetadata(TestTokenizers.realMetadata());
        double unitMb = unit.getBytes(StandardCharsets.UTF_8).length / 1e6;
        long c0 = System.nanoTime();
        int coldTokens = cold.encode(unit).length;
        long c1 = System.nanoTime();
        System.out.printf("cold (empty cache, JIT cold) %.2f MB -> %d tokens: %.1f MB/s%n", unitMb, coldTokens, unitMb / ((c1 - c0) / 1e9));

        double best = 0, bestCpu = 0;
        int n = 0;
        java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        for (int rep = 0; rep < 5; rep++) {
            long s = System.nanoTime(), cs = mx.getCurrentThreadCpuTime();
            n = tok.encode(text).length;
            long e = System.nanoTime(), ce = mx.getCurrentThreadCpuTime();
            best = Math.max(best, mb / ((e - s) / 1e9));
            bestCpu = Math.max(bestCpu, mb / ((ce - cs) / 1e9));
        }
        System.out.printf("warm %.1f MB English -> %d tokens (%.2f bytes/token): %.1f MB/s wall, %.1f MB/s per CPU second (best of 5, one thread)%n",
                mb, n, mb * 1e6 / n, best, bestCpu);

        // no cache help: every piece distinct (letters of real words shuffled), measures regex + BPE alone;
        // a new text each round so the piece cache cannot help
        String[] words = unit.split(" ");
        Tokenizer fresh = Tokenizer.fromMetadata(TestTokenizers.realMetadata());
        fresh.encode(unit); // JIT warm-up
        double bestMiss = 0, bestMissCpu = 0;
        for (int rep = 0; rep < 5; rep++) {
            java.util.Random r = new java.util.Random(rep);
            StringBuilder rnd = new StringBuilder();
            while (rnd.length() < 1_000_000) {
                char[] c = words[r.nextInt(words.length)].toCharArray();
                for (int i = c.length - 1; i > 0; i--) {
                    int j = r.nextInt(i + 1);
                    char t = c[i];
                    c[i] = c[j];
                    c[j] = t;
                }
                rnd.append(c).append(' ');
            }
            String rs = rnd.toString();
            double rmb = rs.getBytes(StandardCharsets.UTF_8).length / 1e6;
            long r0 = System.nanoTime(), rc0 = mx.getCurrentThreadCpuTime();
            fresh.encode(rs);
            long r1 = System.nanoTime(), rc1 = mx.getCurrentThreadCpuTime();
            bestMiss = Math.max(bestMiss, rmb / ((r1 - r0) / 1e9));
            bestMissCpu = Math.max(bestMissCpu, rmb / ((rc1 - rc0) / 1e9));
        }
        System.out.printf("scrambled words (mostly cache misses): %.1f MB/s wall, %.1f MB/s per CPU second (best of 5 x 1 MB)%n",
                bestMiss, bestMissCpu);
    }
}
