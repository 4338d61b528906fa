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
        for (int id = 0; id < engineVocab; id++) {
            if (bytes[id] == null) continue;
            int chars = plainChars(bytes[id]);
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

    /**
     * Characters in b if it is plain JSON string text — whole, valid UTF-8 characters (no overlongs,
     * surrogates or code points above U+10FFFF) with no quote, backslash or control byte — else -1. Such a
     * token is accepted inside any string that has room for its characters and leaves it at a character
     * boundary.
     */
    static int plainChars(byte[] b) {
        int chars = 0;
        for (int i = 0; i < b.length; chars++) {
            int c = b[i] & 0xff;
            if (c < 0x80) {
                if (c < 0x20 || c == '"' || c == '\\') return -1;
                i++;
                continue;
            }
            int need, lo = 0x80, hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) need = 1;
            else if (c == 0xE0) { need = 2; lo = 0xA0; }
            else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
            else if (c == 0xED) { need = 2; hi = 0x9F; }
            else if (c == 0xF0) { need = 3; lo = 0x90; }
            else if (c >= 0xF1 && c <= 0xF3) need = 3;
            else if (c == 0xF4) { need = 3; hi = 0x8F; }
            else return -1;
            if (i + need >= b.length) return -1; // the character continues in another token
            for (int k = 1; k <= need; k++) {
                int x = b[i + k] & 0xff;
                if (x < lo || x > hi) return -1;
                lo = 0x80;
                hi = 0xBF;
            }
            i += need + 1;
        }
        return chars;
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
