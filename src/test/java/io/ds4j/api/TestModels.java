package io.ds4j.api;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Model files for end-to-end tests, made once per build with the real tools:
 * tiny-a.gguf = `ds4j-tool convert` of the shared dsv4-tiny-a fixture (f32,
 * no tokenizer), tiny-a-experts-A-B.gguf = `ds4j-tool slice` of it, demo.gguf = `ds4j-tool synth --preset demo` with DeepSeek's
 * tokenizer (random weights).
 */
public final class TestModels {
    static final Path DIR = Path.of("build/test-models");

    private TestModels() {}

    static Path nativeDir() {
        return Path.of(System.getProperty("ds4j.native.dir", "build/native"));
    }

    public static String library() {
        return nativeDir().resolve("libds4j.so").toAbsolutePath().toString();
    }

    static Path shared() {
        return Path.of(System.getProperty("ds4j.shared.dir", "../shared"));
    }

    public static synchronized Path tinyA() {
        Path out = DIR.resolve("tiny-a.gguf");
        if (!Files.isRegularFile(out)) {
            tool("convert", "--hf", shared().resolve("fixtures/dsv4-tiny-a").toString(), "--out", out.toString(),
                    "--type", "f32");
        }
        return out;
    }

    /** `ds4j-tool slice` of tiny-a: routed experts [lo, hi) only. */
    public static synchronized Path tinyASlice(int lo, int hi) {
        Path out = DIR.resolve("tiny-a-experts-" + lo + "-" + hi + ".gguf");
        if (!Files.isRegularFile(out)) {
            tool("slice", "--model", tinyA().toString(), "--experts", lo + ":" + hi, "--out", out.toString());
        }
        return out;
    }

    public static synchronized Path demo() {
        Path out = DIR.resolve("demo.gguf");
        if (!Files.isRegularFile(out)) {
            try {
                Path tok = io.ds4j.tokenizer.TestTokenizers.tokenizerJson();
                tool("synth", "--preset", "demo", "--tokenizer", tok.toString(), "--out", out.toString());
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
        return out;
    }

    private static void tool(String... args) {
        try {
            Files.createDirectories(DIR);
            List<String> cmd = new ArrayList<>();
            cmd.add(nativeDir().resolve("ds4j-tool").toString());
            cmd.addAll(List.of(args));
            Path tmpLog = Files.createTempFile("ds4j-tool", ".log");
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(tmpLog.toFile()).start();
            if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IllegalStateException(String.join(" ", cmd) + " failed:\n" + Files.readString(tmpLog));
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** reference.json of a shared fixture. */
    public static tools.jackson.databind.JsonNode reference(String fixture) {
        try {
            return Params.JSON.readTree(Files.readString(shared().resolve("fixtures").resolve(fixture).resolve("reference.json")));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
