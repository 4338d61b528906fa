package io.ds4j.grammar;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.chat.ChatRenderer;
import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/**
 * JSON mode over DeepSeek's real vocabulary: random walks through the allowed sets (a stand-in for a model
 * that may pick any allowed token) always produce a prefix of a JSON object, end in one that Jackson
 * parses, never allow control tokens inside the JSON, and allow only end-of-sequence once it is closed.
 */
class JsonConstraintTest {
    static final Tokenizer TOK = TestTokenizers.real();
    static final int ENGINE_VOCAB = TOK.vocabSize() + 3; // models may pad their vocabulary beyond the tokenizer's
    static final JsonVocabulary VOCAB = new JsonVocabulary(TOK, ENGINE_VOCAB, ChatRenderer.END_THINK);

    static boolean allowed(byte[] bits, int id) {
        return (bits[id >> 3] >> (id & 7) & 1) != 0;
    }

    static List<Integer> allowedIds(byte[] bits) {
        List<Integer> out = new ArrayList<>();
        for (int id = 0; id < ENGINE_VOCAB; id++) if (allowed(bits, id)) out.add(id);
        return out;
    }

    /**
     * One random walk: each step picks an allowed token; tokens that close something ('}', ']', '"') are
     * preferred with probability {@code closeBias} so that walks finish.
     */
    static String walk(long seed, double closeBias, int maxSteps) {
        Random rnd = new Random(seed);
        JsonConstraint c = new JsonConstraint(VOCAB, false);
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        for (int step = 0; step < maxSteps; step++) {
            byte[] bits = c.allowedNext();
            List<Integer> ids = allowedIds(bits);
            assertThat(ids).as("no dead end after %s", text).isNotEmpty();
            for (int id : ids) {
                if (id < TOK.vocabSize() && TOK.isControl(id)) assertThat(id).isEqualTo(TOK.eosId());
                assertThat(id).as("padding ids are never allowed").isLessThan(TOK.vocabSize());
            }
            if (c.complete()) {
                assertThat(ids).containsExactly(TOK.eosId());
                return text.toString(java.nio.charset.StandardCharsets.UTF_8);
            }
            assertThat(ids).doesNotContain(TOK.eosId());
            int pick = ids.get(rnd.nextInt(ids.size()));
            if (rnd.nextDouble() < closeBias) {
                List<Integer> closers = ids.stream().filter(id -> {
                    byte[] b = TOK.tokenBytes(id);
                    return b.length == 1 && (b[0] == '}' || b[0] == ']' || b[0] == '"');
                }).toList();
                if (!closers.isEmpty()) pick = closers.get(rnd.nextInt(closers.size()));
            }
            c.accept(pick);
            text.writeBytes(TOK.tokenBytes(pick));
            // the text so far is a prefix of a JSON object
            SchemaRecognizer check = JsonSyntaxTest.recognizer(true);
            assertThat(check.feed(text.toByteArray())).as("not a JSON prefix: %s", text).isTrue();
        }
        return null;
    }

    @Test
    void randomWalksStayValidAndFinishAsObjectsJacksonParses() {
        int finished = 0;
        for (long seed = 1; seed <= 12; seed++) {
            String doc = walk(seed, 0.6, 120);
            if (doc == null) continue;
            finished++;
            JsonNode n = JsonSyntaxTest.JSON.readTree(doc);
            assertThat(n.isObject()).as(doc).isTrue();
        }
        assertThat(finished).as("walks that closed their object").isGreaterThanOrEqualTo(6);
        // cost of one allowed-set computation inside a string (plain tokens at once) and before a value
        // (every token tried); reported, not asserted
        JsonConstraint c = new JsonConstraint(VOCAB, fedObject("{\"k\":\""), false);
        JsonConstraint v = new JsonConstraint(VOCAB, fedObject("{\"k\":"), false);
        for (int i = 0; i < 20; i++) { c.allowedNext(); v.allowedNext(); } // warm-up
        long t0 = System.nanoTime();
        for (int i = 0; i < 50; i++) c.allowedNext();
        long t1 = System.nanoTime();
        for (int i = 0; i < 50; i++) v.allowedNext();
        long t2 = System.nanoTime();
        System.out.printf("JSON mode: %d of 12 walks closed; allowed set over %d tokens: %.2f ms inside a string "
                + "(%d allowed), %.2f ms before a value (%d allowed)%n", finished, ENGINE_VOCAB, (t1 - t0) / 50e6,
                allowedIds(c.allowedNext()).size(), (t2 - t1) / 50e6, allowedIds(v.allowedNext()).size());
    }

    /** The any-object grammar after the given text. */
    static ByteRecognizer fedObject(String text) {
        ByteRecognizer r = new SchemaRecognizer(JsonSchema.anyObject());
        assertThat(r.feed(text.getBytes(java.nio.charset.StandardCharsets.UTF_8))).isTrue();
        return r;
    }

    /** The allowed set by brute force: every token tried on a fresh recogniser fed the whole text. */
    static java.util.Set<Integer> bruteForce(ByteRecognizer start, byte[] text) {
        java.util.Set<Integer> out = new java.util.TreeSet<>();
        for (int id = 0; id < TOK.vocabSize(); id++) {
            byte[] b = VOCAB.bytes(id);
            if (b == null) continue;
            ByteRecognizer r = start.blank();
            if (r.feed(text) && r.feed(b)) out.add(id);
        }
        return out;
    }

    @Test
    void theAllowedSetEqualsBruteForceInsideAndOutsideStrings() {
        JsonSchema bounded = JsonSchema.compile(JsonSyntaxTest.JSON.readTree(
                "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"maxLength\":3}},\"required\":[\"s\"]}"));
        for (Object[] c : new Object[][] {{JsonSchema.anyObject(), "{\"k\":\"ab"}, {JsonSchema.anyObject(), "{\"k\":\"a\\"},
                {JsonSchema.anyObject(), "{\"k\":\"\u00e9"}, {JsonSchema.anyObject(), "{\"k"}, {JsonSchema.anyObject(), "{\"k\":1"},
                {bounded, "{\"s\":\"a"}, {bounded, "{\"s\":\""}}) {
            ByteRecognizer start = new SchemaRecognizer((JsonSchema) c[0]);
            byte[] text = ((String) c[1]).getBytes(java.nio.charset.StandardCharsets.UTF_8);
            ByteRecognizer fed = start.blank();
            assertThat(fed.feed(text)).isTrue();
            JsonConstraint jc = new JsonConstraint(VOCAB, fed, false);
            assertThat(new java.util.TreeSet<>(allowedIds(jc.allowedNext()))).as((String) c[1])
                    .isEqualTo(bruteForce(start, text));
        }
        // a UTF-8 character split across the text: the first byte of "é" is pending
        assertThat(JsonVocabulary.plainChars("aé世😀".getBytes(java.nio.charset.StandardCharsets.UTF_8))).isEqualTo(4);
        assertThat(JsonVocabulary.plainChars(new byte[] {'a', (byte) 0xC3})).isEqualTo(-1);
        assertThat(JsonVocabulary.plainChars("a\"".getBytes(java.nio.charset.StandardCharsets.UTF_8))).isEqualTo(-1);
        assertThat(JsonVocabulary.plainChars(new byte[] {(byte) 0xED, (byte) 0xA0, (byte) 0x80})).isEqualTo(-1);
        assertThat(JsonVocabulary.plainChars("a\\n".getBytes(java.nio.charset.StandardCharsets.UTF_8))).as("a whole escape").isEqualTo(2);
        assertThat(JsonVocabulary.plainChars("a\\".getBytes(java.nio.charset.StandardCharsets.UTF_8))).as("a started escape").isEqualTo(-1);
    }

    @Test
    void unbiasedWalksAreAlwaysValidPrefixes() {
        for (long seed = 100; seed < 104; seed++) walk(seed, 0.0, 60);
    }

    @Test
    void withThinkingTheConstraintStartsAfterTheEndOfThinkingToken() {
        JsonConstraint c = new JsonConstraint(VOCAB, true);
        int endThink = TOK.specialTokenId(ChatRenderer.END_THINK).orElseThrow();
        assertThat(c.allowedNext()).isNull();
        c.accept(TOK.encode("Let me think")[0]);
        assertThat(c.allowedNext()).isNull();
        c.accept(endThink);
        byte[] bits = c.allowedNext();
        assertThat(bits).isNotNull();
        assertThat(allowed(bits, TOK.encodeOne("{"))).isTrue();
        assertThat(allowed(bits, TOK.encodeOne("a"))).isFalse();
        assertThat(allowed(bits, TOK.eosId())).isFalse();
        assertThat(allowed(bits, endThink)).isFalse();
        // the marker written as ordinary text tokens ends the reasoning too
        JsonConstraint t = new JsonConstraint(VOCAB, true);
        int[] text = TOK.encode("so the answer is yes</think>", false);
        assertThat(text.length).isGreaterThan(1);
        for (int i = 0; i < text.length; i++) {
            assertThat(t.allowedNext()).as("still reasoning before token %d", i).isNull();
            t.accept(text[i]);
        }
        assertThat(t.allowedNext()).isNotNull();
        assertThat(allowed(t.allowedNext(), TOK.encodeOne("{"))).isTrue();
    }
}
