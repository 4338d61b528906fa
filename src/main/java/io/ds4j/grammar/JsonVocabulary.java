package io.ds4j.grammar;

import io.ds4j.tokenizer.Tokenizer;

/**
 * The vocabulary as JSON mode sees it: the bytes of every token that may appear inside generated JSON
 * (null for control/added and unused tokens, which never may), the end-of-sequence id, and the engine's
 * vocabulary size (ids the tokenizer does not know are never allowed). Built once per served model.
 */
public final class JsonVocabulary {
    private static final int TYPE_UNUSED = 5;

    private final byte[][] bytes;
    private final byte[] plainBits;     // tokens that are plain string text (see isPlain)
    private final int[] nonPlain;       // the other usable tokens
    private final int maxPlainChars;
    private final int vocabSize;
    private final int eos;
    private final int endThink;

    public JsonVocabulary(Tokenizer tok, int engineVocab, String endThinkMarker) {
        this(tok, engineVocab, endThinkMarker, java.util.Set.of());
    }

    /**
     * @param specials control tokens that are usable after all, as their text (e.g. the DSML marker, which
     *     the output parser reads whether it comes as its control token or as text)
     */
    public JsonVocabulary(Tokenizer tok, int engineVocab, String endThinkMarker, java.util.Set<String> specials) {
        this.vocabSize = engineVocab;
        this.bytes = new byte[engineVocab][];
        int n = Math.min(engineVocab, tok.vocabSize());
        for (int id = 0; id < n; id++) {
            if (tok.tokenType(id) == TYPE_UNUSED) continue;
            if (tok.isControl(id) && !specials.contains(tok.rawToken(id))) continue;
            byte[] b = tok.tokenBytes(id);
            if (b.length > 0) bytes[id] = b;
        }
        this.eos = tok.eosId();
        this.endThink = tok.specialTokenId(endThinkMarker).orElse(-1);
        this.plainBits = new byte[(engineVocab + 7) / 8];
        int max = 0;
        java.util.List<Integer> other = new java.util.ArrayList<>();
        SchemaRecognizer probe = new SchemaRecognizer(IN_STRING.schema());
        for (int id = 0; id < engineVocab; id++) {
            if (bytes[id] == null) continue;
            int chars = plainChars(probe, bytes[id]);
            if (chars >= 0) {
                plainBits[id >> 3] |= (byte) (1 << (id & 7));
                max = Math.max(max, chars);
            } else {
                other.add(id);
            }
        }
        this.maxPlainChars = max;
        this.nonPlain = other.stream().mapToInt(Integer::intValue).toArray();
    }

    private static final SchemaRecognizer IN_STRING = inString();

    private static SchemaRecognizer inString() {
        SchemaRecognizer r = new SchemaRecognizer(JsonSchema.compile(
                tools.jackson.databind.json.JsonMapper.builder().build().readTree("{\"type\":\"string\"}")));
        r.feed('"');
        return r;
    }

    /**
     * Characters in b if it is plain JSON string text — the string grammar, at a character boundary,
     * accepts all of it and is at a character boundary again after it (whole UTF-8 characters, complete
     * escapes, no closing quote) — else -1. Such a token is accepted inside any string that has room for
     * its characters and leaves it ready for the next one, whatever came before.
     */
    static int plainChars(byte[] b) {
        return plainChars(new SchemaRecognizer(IN_STRING.schema()), b);
    }

    /** The same with a reusable probe (any state: it is reset first). */
    private static int plainChars(SchemaRecognizer probe, byte[] b) {
        probe.copyFrom(IN_STRING);
        int before = probe.plainStringRoom();
        if (!probe.feed(b)) return -1;
        int after = probe.plainStringRoom();
        return after < 0 ? -1 : before - after;
    }

    /** Tokens that are plain string text, as a bitset over the vocabulary (do not modify). */
    byte[] plainBits() {
        return plainBits;
    }

    /** The usable tokens that are not plain string text. */
    int[] nonPlain() {
        return nonPlain;
    }

    /** The most characters in one plain token. */
    int maxPlainChars() {
        return maxPlainChars;
    }

    int vocabSize() {
        return vocabSize;
    }

    /** Bytes of a token usable inside JSON, or null. */
    byte[] bytes(int id) {
        return id >= 0 && id < vocabSize ? bytes[id] : null;
    }

    int eos() {
        return eos;
    }

    /** The control token that ends the reasoning part (-1 if the tokenizer has none). */
    int endThink() {
        return endThink;
    }
}
