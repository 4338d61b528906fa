package io.ds4j.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.chat.ChatMessage;
import io.ds4j.chat.ChatPrompt;
import io.ds4j.chat.ChatRenderer;
import io.ds4j.chat.ChatTemplateSettings;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.engine.Ds4jNative;
import io.ds4j.engine.GgufMetadata;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * End to end through the engine: a GGUF written by {@code ds4j-tool synth --tokenizer} from the real
 * tokenizer.json, its tokenizer.ggml.* keys read back through the ds4j_meta_* binding (GgufMetadata),
 * gives the same tokenizer as the tokenizer.json fixture builder: same vocabulary and types, and the
 * fixture vectors encode to their ids.
 */
class GgufTokenizerTest {
    @TempDir
    Path tmp;

    @Test
    void tokenizerFromAConvertedGgufMatchesTheReference() throws Exception {
        Path nativeDir = Path.of(System.getProperty("ds4j.native.dir", "build/native"));
        Path tool = nativeDir.resolve("ds4j-tool");
        assertThat(tool).as("ds4j-tool (run scripts/setup --native-only)").isExecutable();
        Path gguf = tmp.resolve("demo.gguf");
        Process p = new ProcessBuilder(tool.toString(), "synth", "--preset", "demo", "--out", gguf.toString(),
                "--tokenizer", TestTokenizers.tokenizerJson().toString()).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(log).isZero();

        Ds4jNative lib = Ds4jNative.load(nativeDir.resolve("libds4j.so"));
        MemorySegment engine = lib.engineOpen(gguf.toString(), "vocab_only=1");
        GgufMetadata meta;
        try {
            meta = GgufMetadata.read(lib, engine);
        } finally {
            lib.engineClose(engine);
        }
        Files.deleteIfExists(gguf);

        Tokenizer fromGguf = Tokenizer.fromMetadata(meta);
        Tokenizer ref = TestTokenizers.real();
        assertThat(fromGguf.vocabSize()).isEqualTo(ref.vocabSize()).isEqualTo(129280);
        assertThat(fromGguf.bosId()).isZero();
        assertThat(fromGguf.eosId()).isEqualTo(1);
        for (int id = 0; id < ref.vocabSize(); id++) {
            if (!fromGguf.rawToken(id).equals(ref.rawToken(id)) || fromGguf.tokenType(id) != ref.tokenType(id)) {
                assertThat(fromGguf.rawToken(id) + "/" + fromGguf.tokenType(id)).as("token %d", id)
                        .isEqualTo(ref.rawToken(id) + "/" + ref.tokenType(id));
            }
        }
        for (TokenizerFixtureTest.Line l : TokenizerFixtureTest.readLines()) {
            int[] expected = TokenizerFixtureTest.V4_LINES.getOrDefault(l.no(), l.ids());
            assertThat(fromGguf.encode(l.text(), true)).as("line %d", l.no()).containsExactly(expected);
        }
        ChatRenderer r = new ChatRenderer(fromGguf, ChatTemplateSettings.defaults());
        assertThat(r.render(new ChatPrompt(List.of(ChatMessage.system("You are a helpful assistant."), ChatMessage.user("What is 2+2?")),
                ThinkingMode.OFF))).containsExactly(0, 3476, 477, 260, 11502, 22896, 16, 128803, 3085, 344, 223, 20, 13, 20, 33, 128804, 128822);
    }
}
