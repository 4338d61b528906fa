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
    private boolean active;
    // the end of the reasoning seen so far, to find "</think>" written as text tokens
    private final byte[] tail = new byte[END_THINK.length];
    private int tailLen;
    private static final byte[] END_THINK = io.ds4j.chat.ChatRenderer.END_THINK.getBytes(java.nio.charset.StandardCharsets.UTF_8);

    private static final JsonSchema ANY_OBJECT = JsonSchema.anyObject();

    /** JSON object mode. */
    public JsonConstraint(JsonVocabulary vocab, boolean afterThinking) {
        this(vocab, new SchemaRecognizer(ANY_OBJECT), afterThinking);
    }

    /**
     * @param start the grammar, in its start state (owned by the constraint from now on)
     * @param afterThinking the output starts with reasoning, closed by the end-of-thinking token
     */
    public JsonConstraint(JsonVocabulary vocab, ByteRecognizer start, boolean afterThinking) {
        this.vocab = vocab;
        this.state = start;
        this.trial = start.blank();
        this.bits = new byte[(vocab.vocabSize() + 7) / 8];
        this.active = !afterThinking || vocab.endThink() < 0;
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
        if (!active) return null;
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
        if (!active) {
            if (token == vocab.endThink()) {
                active = true;
            } else {
                byte[] b = vocab.bytes(token);
                if (b != null && endsReasoning(b)) active = true;
            }
            return;
        }
        byte[] b = vocab.bytes(token);
        if (b != null && !state.feed(b)) {
            throw new IllegalStateException("token " + token + " was sampled outside the allowed set");
        }
    }

    /**
     * The model may also write the end-of-thinking marker as ordinary text tokens (the output parser
     * accepts that too); the answer starts after it. Bytes after the marker inside the same token are
     * not expected from a BPE vocabulary and are not constrained.
     */
    private boolean endsReasoning(byte[] b) {
        for (byte x : b) {
            if (tailLen == tail.length) {
                System.arraycopy(tail, 1, tail, 0, tail.length - 1);
                tailLen--;
            }
            tail[tailLen++] = x;
            if (tailLen == tail.length && Arrays.equals(tail, END_THINK)) return true;
        }
        return false;
    }

    /** Feeds raw bytes into the grammar state (tests: reach a state in the middle of a token). */
    boolean feedForTest(int c) {
        return state.feed(c);
    }

    private void set(int id) {
        if (id >= 0 && id < vocab.vocabSize()) bits[id >> 3] |= (byte) (1 << (id & 7));
    }
}
