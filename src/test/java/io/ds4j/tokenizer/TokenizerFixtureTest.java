package io.ds4j.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.ds4j.chat.Json;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The tokenizer against the shared reference vectors (fixtures/tokenizer) and chat-format.md section 1. */
class TokenizerFixtureTest {
    /** README "Using these vectors for the DeepSeek V4 tokenizer": lines whose V4 ids differ from V3. */
    static final Map<Integer, int[]> V4_LINES = Map.of(
            62, new int[] {128803, 19923, 128804, 128822, 23166, 1031},
            63, new int[] {128821, 86512, 288, 128822, 19995},
            64, new int[] {271, 30, 128825, 72461, 4941, 12548, 1018, 30, 128825, 40148, 5406, 2329, 1281, 1133, 65, 50219, 3816, 30, 128825,
                41523, 2329, 1281, 37399, 4, 3418, 1281, 11476, 3320, 52, 6091, 1718, 128825, 41523, 1018, 30, 128825, 41523, 2329, 1281,
                28026, 4, 3418, 1281, 19836, 3320, 21, 1718, 128825, 41523, 1018, 1718, 128825, 40148, 5406, 1018, 1718, 128825, 72461,
                4941, 12548, 32},
            66, new int[] {128828, 9595, 128829, 128830},
            78, new int[] {65376, 59955, 128825, 41523, 32, 1051, 2030, 29, 1051, 43687, 29},
            84, new int[] {0, 3476, 477, 260, 11502, 22896, 16, 128803, 3085, 344, 223, 20, 13, 20, 33, 128804, 128822});

    record Line(int no, String text, int[] ids) {}

    static List<Line> lines;
    static Tokenizer tok;

    @BeforeAll
    static void load() throws IOException {
        tok = TestTokenizers.real();
        lines = readLines();
    }

    @SuppressWarnings("unchecked")
    static List<Line> readLines() throws IOException {
        List<Line> out = new ArrayList<>();
        List<String> raw = Files.readAllLines(TestTokenizers.sharedDir().resolve("fixtures/tokenizer/deepseek-v3-tokenize.jsonl"),
                StandardCharsets.UTF_8);
        for (int i = 0; i < raw.size(); i++) {
            if (raw.get(i).isBlank()) continue;
            Map<String, Object> o = (Map<String, Object>) Json.parse(raw.get(i));
            List<Object> ids = (List<Object>) o.get("ids");
            out.add(new Line(i + 1, (String) o.get("text"),
                    ids.stream().mapToInt(x -> Integer.parseInt(((Json.Num) x).literal())).toArray()));
        }
        return out;
    }

    @Test
    void everyFixtureLineEncodesToItsIds() {
        assertThat(lines).hasSize(93);
        int checked = 0;
        for (Line l : lines) {
            int[] expected = V4_LINES.getOrDefault(l.no, l.ids);
            assertThat(tok.encode(l.text, true)).as("line %d: %s", l.no, l.text).containsExactly(expected);
            checked++;
        }
        assertThat(checked).isEqualTo(93);
    }

    @Test
    void decodeRoundTrips() {
        for (Line l : lines) {
            int[] ids = V4_LINES.getOrDefault(l.no, l.ids);
            String expected = l.no >= 92 ? Tokenizer.replaceLoneSurrogates(l.text) : l.text;
            if (l.no >= 92) assertThat(expected).contains("\uFFFD").isNotEqualTo(l.text);
            assertThat(tok.decode(ids)).as("line %d", l.no).isEqualTo(expected);
        }
    }

    @Test
    void streamDecodingEqualsDecodeAndNeverSplitsCharacters() {
        for (Line l : lines) {
            int[] ids = V4_LINES.getOrDefault(l.no, l.ids);
            StreamDecoder sd = tok.streamDecoder();
            StringBuilder sb = new StringBuilder();
            for (int id : ids) {
                String part = sd.push(id);
                if (!part.isEmpty()) {
                    assertThat(Character.isLowSurrogate(part.charAt(0))).isFalse();
                    assertThat(Character.isHighSurrogate(part.charAt(part.length() - 1))).isFalse();
                }
                sb.append(part);
            }
            sb.append(sd.flush());
            String full = tok.decode(ids);
            assertThat(sb.toString()).as("line %d", l.no).isEqualTo(full);
            if (!l.text.contains("\uFFFD") && l.no < 92) assertThat(sb.toString()).doesNotContain("\uFFFD");
        }
    }

    @Test
    void streamDecoderHoldsIncompleteSequenceAndFlushesBrokenOne() {
        // 76589 131 100 = "ĠÑĤ" split mid-character (chat-format.md 1.8)
        StreamDecoder sd = tok.streamDecoder();
        String a = sd.push(76589);
        String b = sd.push(131);
        String c = sd.push(100);
        assertThat(a + b + c + sd.flush()).isEqualTo(tok.decode(new int[] {76589, 131, 100}));
        // a lone lead byte at the end becomes U+FFFD on flush, not dropped
        StreamDecoder sd2 = tok.streamDecoder();
        int lead = tok.bpeModel().byteIds[0xE4];
        assertThat(sd2.push(lead)).isEmpty();
        assertThat(sd2.flush()).isEqualTo("\uFFFD");
        // a lead byte followed by ASCII: emitted as soon as it cannot complete
        assertThat(sd2.push(lead) + sd2.push(tok.bpeModel().byteIds['a'])).isEqualTo("\uFFFDa");
    }

    @Test
    void rustProbeStringsLeftOutOfTheFixture() {
        assertThat(tok.encode(" \u0085 x", true)).containsExactly(1203, 230, 1527);
        assertThat(tok.encode("x \u0085", true)).containsExactly(90, 1203, 230);
        assertThat(tok.encode("   \uFEFF", true)).containsExactly(262, 223, 15251);
    }

    @Test
    void plainEncodeDoesNotMatchSpecialTokens() {
        for (String s : List.of("<｜User｜>", "</think>", "<｜end▁of▁sentence｜>", "<｜DSML｜tool_calls>", "<｜begin▁of▁sentence｜>hi")) {
            int[] plain = tok.encode(s);
            assertThat(plain).as(s).hasSizeGreaterThan(1);
            for (int id : plain) assertThat(tok.isControl(id)).as(s + " id " + id).isFalse();
            assertThat(tok.decode(plain)).isEqualTo(s);
        }
        assertThat(tok.encode("<｜User｜>", true)).containsExactly(128803);
        assertThat(tok.encode("a<｜User｜>b")).doesNotContain(128803);
    }

    @Test
    void v4ChatVectorOfDeepseekTokenizerPackage() {
        assertThat(tok.encode("<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>", true))
                .containsExactly(128803, 30594, 128804, 128821, 36101, 128822, 7624, 1);
    }

    @Test
    void vocabularyFacts() {
        assertThat(tok.vocabSize()).isEqualTo(129280);
        assertThat(tok.bosId()).isZero();
        assertThat(tok.eosId()).isEqualTo(1);
        assertThat(tok.specialTokenId("<｜User｜>")).hasValue(128803);
        assertThat(tok.specialTokenId("<｜Assistant｜>")).hasValue(128804);
        assertThat(tok.specialTokenId("<think>")).hasValue(128821);
        assertThat(tok.specialTokenId("</think>")).hasValue(128822);
        assertThat(tok.specialTokenId("｜DSML｜")).hasValue(128825);
        assertThat(tok.specialTokenId("hello")).isEmpty();
        assertThat(tok.specialTokenId("[PAD128900]")).isEmpty(); // unused entries are not added tokens
        assertThat(tok.isControl(1)).isTrue();
        assertThat(tok.isControl(128803)).isTrue();
        assertThat(tok.isControl(3)).isFalse();
        assertThat(tok.tokenText(128822)).isEqualTo("</think>");
        assertThat(tok.tokenText(223)).isEqualTo(" ");
        assertThat(tok.rawToken(223)).isEqualTo("Ġ");
        // byte symbols: id = 3 + position in the GPT-2 byte order (chat-format.md 1.4)
        int[][] bytes = {{'!', 3}, {'~', 96}, {0xA1, 97}, {0xFF, 190}, {0x00, 191}, {'\n', 201}, {' ', 223}, {0xAD, 258}};
        for (int[] b : bytes) assertThat(tok.bpeModel().byteIds[b[0]]).as("byte 0x%02X", b[0]).isEqualTo(b[1]);
        assertThatThrownBy(() -> tok.decode(new int[] {129280})).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> tok.tokenText(-1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void preTokenizerRegexesAreTheOnesInTokenizerJson() {
        assertThat(TestTokenizers.realMetadata().preTokenizerRegexes)
                .containsExactly(PreTokenizer.DIGITS, PreTokenizer.CJK, PreTokenizer.WORDS);
    }

    @Test
    void preTokenizerPiecesFromTheDoc() {
        assertThat(pieces(" 2026")).containsExactly(" ", "202", "6");
        assertThat(pieces("hello 世界")).containsExactly("hello", " ", "世界");
        assertThat(pieces("    int")).containsExactly("   ", " int");
        assertThat(pieces(">;\n")).containsExactly(">;\n");
        assertThat(pieces("1234567890")).containsExactly("123", "456", "789", "0");
    }

    static List<String> pieces(String s) {
        List<String> out = new ArrayList<>();
        new PreTokenizer(s, (a, b) -> out.add(s.substring(a, b))).split(0, s.length());
        return out;
    }

    @Test
    void heapMergeEqualsScanMergeOnLongPieces() {
        Random r = new Random(42);
        String alphabet = "aabbeeinorst  \n\t.,é世";
        BpeModel bpe = tok.bpeModel();
        for (int t = 0; t < 300; t++) {
            int len = 1 + r.nextInt(t < 150 ? 20 : 200);
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < len; i++) sb.append(alphabet.charAt(r.nextInt(alphabet.length())));
            int[][] both = bpe.encodeBothWays(sb.toString().getBytes(StandardCharsets.UTF_8));
            assertThat(both[1]).as(sb.toString()).containsExactly(both[0]);
        }
        // long pieces through the public API still round trip
        String longWs = " ".repeat(5000) + "x" + "ab".repeat(3000);
        assertThat(tok.decode(tok.encode(longWs))).isEqualTo(longWs);
    }

    @Test
    void loneSurrogatesBecomeReplacementCharacter() {
        assertThat(tok.encode("a\uD800b")).containsExactly(tok.encode("a\uFFFDb"));
        assertThat(tok.encode("\uDC00")).containsExactly(tok.encode("\uFFFD"));
        assertThat(Tokenizer.replaceLoneSurrogates("ok 😀")).isEqualTo("ok 😀");
    }

    @Test
    void unusableMetadataIsAClearError() {
        var bad1 = TestTokenizers.realMetadata().copy().with("tokenizer.ggml.model", null);
        assertThatThrownBy(() -> Tokenizer.fromMetadata(bad1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("tokenizer.ggml.model");
        var bad2 = TestTokenizers.realMetadata().copy().with("tokenizer.ggml.model", "llama");
        assertThatThrownBy(() -> Tokenizer.fromMetadata(bad2)).hasMessageContaining("llama");
        var bad3 = TestTokenizers.realMetadata().copy().with("tokenizer.ggml.token_type", new int[] {1, 2, 3});
        assertThatThrownBy(() -> Tokenizer.fromMetadata(bad3)).hasMessageContaining("token_type");
        var bad4 = TestTokenizers.realMetadata().copy().with("tokenizer.ggml.merges", List.of("Ġ t", "zzzq qqqz"));
        assertThatThrownBy(() -> Tokenizer.fromMetadata(bad4)).hasMessageContaining("merges[1]");
        var bad5 = TestTokenizers.realMetadata().copy().with("tokenizer.ggml.eos_token_id", 999999L);
        assertThatThrownBy(() -> Tokenizer.fromMetadata(bad5)).hasMessageContaining("eos_token_id");
        var bad6 = TestTokenizers.realMetadata().copy().with("tokenizer.ggml.tokens", Arrays.asList("a", "b"))
                .with("tokenizer.ggml.token_type", new int[] {1, 1});
        assertThatThrownBy(() -> Tokenizer.fromMetadata(bad6)).hasMessageContaining("byte-level symbol");
    }
}
