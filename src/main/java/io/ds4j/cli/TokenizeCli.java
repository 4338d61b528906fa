package io.ds4j.cli;

import io.ds4j.chat.Json;
import io.ds4j.engine.Ds4jNative;
import io.ds4j.engine.GgufMetadata;
import io.ds4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Command-line tokenizer over a model file (no server, no weights loaded):
 * <pre>
 *   tokenize   --model M.gguf [--special] [--library libds4j.so]   UTF-8 text on stdin -> JSON array of ids
 *   detokenize --model M.gguf [--library libds4j.so]               JSON array of ids on stdin -> UTF-8 text
 * </pre>
 * {@code --special} matches added/special-token strings in the text (like HF); without it they are plain
 * text. The library defaults to $DS4J_NATIVE_LIB, else build/native/libds4j.so. Run through
 * {@code scripts/ds4j}. Exit status: 0 ok, 1 error, 2 usage.
 */
public final class TokenizeCli {
    private TokenizeCli() {}

    public static void main(String[] args) {
        System.exit(run(args, System.in, System.out, System.err));
    }

    static final String USAGE = "usage: ds4j tokenize --model M.gguf [--special] [--library libds4j.so] < text\n"
            + "       ds4j detokenize --model M.gguf [--library libds4j.so] < ids.json";

    public static int run(String[] args, InputStream in, PrintStream out, PrintStream err) {
        if (args.length == 0 || !(args[0].equals("tokenize") || args[0].equals("detokenize"))) {
            err.println(USAGE);
            return 2;
        }
        String model = null;
        String library = System.getenv().getOrDefault("DS4J_NATIVE_LIB", "build/native/libds4j.so");
        boolean special = false;
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--model" -> {
                    if (++i >= args.length) return usage(err, "--model needs a file");
                    model = args[i];
                }
                case "--library" -> {
                    if (++i >= args.length) return usage(err, "--library needs a file");
                    library = args[i];
                }
                case "--special" -> special = true;
                default -> {
                    return usage(err, "unknown argument " + args[i]);
                }
            }
        }
        if (model == null) return usage(err, "--model is required");
        if (!Files.isRegularFile(Path.of(model))) {
            err.println("ds4j: model file not found: " + model);
            return 1;
        }
        try {
            Tokenizer tok = load(Path.of(library), model);
            byte[] input = in.readAllBytes();
            if (args[0].equals("tokenize")) {
                int[] ids = tok.encode(new String(input, StandardCharsets.UTF_8), special);
                StringBuilder sb = new StringBuilder(ids.length * 7 + 2).append('[');
                for (int i = 0; i < ids.length; i++) {
                    if (i > 0) sb.append(',');
                    sb.append(ids[i]);
                }
                out.println(sb.append(']'));
            } else {
                out.write(tok.decode(parseIds(new String(input, StandardCharsets.UTF_8))).getBytes(StandardCharsets.UTF_8));
            }
            out.flush();
            return 0;
        } catch (IllegalArgumentException | IllegalStateException | IOException e) {
            err.println("ds4j: " + e.getMessage());
            return 1;
        } catch (RuntimeException e) {
            err.println("ds4j: " + e);
            return 1;
        }
    }

    private static int usage(PrintStream err, String why) {
        err.println("ds4j: " + why);
        err.println(USAGE);
        return 2;
    }

    static Tokenizer load(Path library, String model) {
        Ds4jNative lib = Ds4jNative.load(library);
        MemorySegment engine = lib.engineOpen(model, "vocab_only=1");
        try {
            return Tokenizer.fromMetadata(GgufMetadata.read(lib, engine));
        } finally {
            lib.engineClose(engine);
        }
    }

    static int[] parseIds(String json) {
        Object v;
        try {
            v = Json.parse(json.strip());
        } catch (Json.JsonException e) {
            throw new IllegalArgumentException("stdin is not a JSON array of token ids: " + e.getMessage());
        }
        if (!(v instanceof List<?> list)) throw new IllegalArgumentException("stdin is not a JSON array of token ids");
        int[] ids = new int[list.size()];
        for (int i = 0; i < ids.length; i++) {
            if (!(list.get(i) instanceof Json.Num n) || !n.literal().matches("-?[0-9]{1,10}")) {
                throw new IllegalArgumentException("element " + i + " is not an integer token id");
            }
            long id = Long.parseLong(n.literal());
            if (id < 0 || id > Integer.MAX_VALUE) throw new IllegalArgumentException("element " + i + " is out of range: " + id);
            ids[i] = (int) id;
        }
        return ids;
    }
}
