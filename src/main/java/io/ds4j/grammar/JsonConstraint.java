package io.ds4j.grammar;

import io.ds4j.engine.TokenConstraint;
import java.util.Arrays;

/**
 * JSON modes of {@code response_format}: the answer must be one document of a byte-level grammar (a
 * {@link SchemaRecognizer}: any JSON object, or a document matching a schema). Before each
 * token it allows exactly the tokens whose bytes keep the output a live prefix, and once the document is
 * complete only end-of-sequence. With thinking on, the reasoning is free: the constraint starts after the
 * end-of-thinking token.
 */
public final class JsonConstraint implements TokenConstraint {
    private final JsonVocabulary vocab;
    private final ByteRecognizer state;
    private final ByteRecognizer trial;
    private final byte[] bits;
    private final boolean[] firstOk = new boolean[256];
    private final AnswerStart answer;

    private static final JsonSchema ANY_OBJECT = JsonSchema.anyObject();

    /** JSON object mode. */
    public JsonConstraint(JsonVocabulary vocab, boolean afterThinking) {
        this(vocab, new SchemaRecognizer(ANY_OBJECT), afterThinking);
    }

    /**
     * @param start the grammar in the state the answer starts from, normally its start state (owned by the
     *     constraint from now on)
     * @param afterThinking the output starts with reasoning, closed by the end-of-thinking token
     */
    public JsonConstraint(JsonVocabulary vocab, ByteRecognizer start, boolean afterThinking) {
        this.vocab = vocab;
        this.state = start;
        this.trial = start.blank();
        this.bits = new byte[(vocab.vocabSize() + 7) / 8];
        this.answer = new AnswerStart(vocab.endThink(), afterThinking);
    }

    @Override
    public int vocabSize() {
        return vocab.vocabSize();
    }

    /** The JSON text is complete (only end-of-sequence may follow). */
    public boolean complete() {
        return state.complete();
    }

    @Override
    public byte[] allowedNext() {
        if (!answer.started()) return null;
        Arrays.fill(bits, (byte) 0);
        if (state.complete()) {
            set(vocab.eos());
            return bits;
        }
        // inside a string with room: every plain-text token is allowed as a whole, only the others
        // (quotes, escapes, control bytes, split characters) need a trial run
        int room = state.plainStringRoom();
        if (room >= vocab.maxPlainChars()) {
            System.arraycopy(vocab.plainBits(), 0, bits, 0, bits.length);
            for (int id : vocab.nonPlain()) {
                trial.copyFrom(state);
                if (trial.feed(vocab.bytes(id))) set(id);
            }
            return bits;
        }
        // which first bytes can follow at all: most tokens are rejected here without a trial run
        for (int c = 0; c < 256; c++) {
            trial.copyFrom(state);
            firstOk[c] = trial.feed(c);
        }
        int n = vocab.vocabSize();
        for (int id = 0; id < n; id++) {
            byte[] b = vocab.bytes(id);
            if (b == null || !firstOk[b[0] & 0xff]) continue;
            trial.copyFrom(state);
            if (trial.feed(b)) set(id);
        }
        return bits;
    }

    @Override
    public void accept(int token) {
        if (!answer.started()) {
            answer.accept(token, vocab.bytes(token));
            return;
        }
        byte[] b = vocab.bytes(token);
        if (b != null && !state.feed(b)) {
            throw new IllegalStateException("token " + token + " was sampled outside the allowed set");
        }
    }

    private void set(int id) {
        if (id >= 0 && id < vocab.vocabSize()) bits[id >> 3] |= (byte) (1 << (id & 7));
    }
}
