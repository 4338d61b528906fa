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
    private final int vocabSize;
    private final int eos;
    private final int endThink;

    public JsonVocabulary(Tokenizer tok, int engineVocab, String endThinkMarker) {
        this.vocabSize = engineVocab;
        this.bytes = new byte[engineVocab][];
        int n = Math.min(engineVocab, tok.vocabSize());
        for (int id = 0; id < n; id++) {
            if (tok.isControl(id) || tok.tokenType(id) == TYPE_UNUSED) continue;
            byte[] b = tok.tokenBytes(id);
            if (b.length > 0) bytes[id] = b;
        }
        this.eos = tok.eosId();
        this.endThink = tok.specialTokenId(endThinkMarker).orElse(-1);
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
