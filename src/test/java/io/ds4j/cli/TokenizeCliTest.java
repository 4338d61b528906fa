package io.ds4j.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.tokenizer.TestTokenizers;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizeCliTest {
    @TempDir
    static Path tmp;
    static Path gguf;
    static String lib;

    @BeforeAll
    static void model() throws Exception {
        Path nativeDir = Path.of(System.getProperty("ds4j.native.dir", "build/native"));
        lib = nativeDir.resolve("libds4j.so").toString();
        gguf = tmp.resolve("demo.gguf");
        Process p = new ProcessBuilder(nativeDir.resolve("ds4j-tool").toString(), "synth", "--preset", "demo", "--out", gguf.toString(),
                "--tokenizer", TestTokenizers.tokenizerJson().toString()).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(log).isZero();
    }

    record Result(int rc, String out, String err) {}

    static Result cli(String stdin, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int rc = TokenizeCli.run(args, new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void tokenizeAndDetokenize() {
        Result plain = cli("<｜User｜>Hello, world!", "tokenize", "--model", gguf.toString(), "--library", lib);
        assertThat(plain.rc).as(plain.err).isZero();
        assertThat(plain.out).doesNotContain("128803").startsWith("[").endsWith("]\n");
        Result special = cli("<｜User｜>Hello, world!", "tokenize", "--model", gguf.toString(), "--library", lib, "--special");
        assertThat(special.out).isEqualTo("[128803,19923,14,2058,3]\n");
        Result back = cli("[128803, 19923, 14, 2058, 3]", "detokenize", "--model", gguf.toString(), "--library", lib);
        assertThat(back.rc).isZero();
        assertThat(back.out).isEqualTo("<｜User｜>Hello, world!");
    }

    @Test
    void badInputIsAClearError() {
        assertThat(cli("", "frobnicate").rc).isEqualTo(2);
        assertThat(cli("", "tokenize").err).contains("--model is required");
        assertThat(cli("", "tokenize", "--model", "/nonexistent.gguf").err).contains("not found");
        Result notJson = cli("[1, x]", "detokenize", "--model", gguf.toString(), "--library", lib);
        assertThat(notJson.rc).isEqualTo(1);
        assertThat(notJson.err).contains("JSON array");
        Result outOfRange = cli("[999999999]", "detokenize", "--model", gguf.toString(), "--library", lib);
        assertThat(outOfRange.rc).isEqualTo(1);
        assertThat(outOfRange.err).contains("outside the vocabulary");
    }
}
