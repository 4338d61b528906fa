package io.ds4j.grammar;

import io.ds4j.engine.TokenConstraint;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

/**
 * The answer must begin with one of a few strings, then continues freely. Used for
 * {@code tool_choice: "required"} or a named function: the answer opens the DSML tool-call block and an
 * invoke of an allowed tool ({@code ChatRenderer.toolCallOpenings}), so the model calls a tool — which one
 * is decided by the prefix, the arguments are the model's. A token may cross the end of the prefix (its
 * tail is free text). With thinking on, the reasoning before the end-of-thinking marker is free.
 */
public final class ForcedPrefix implements TokenConstraint {
    public static final int MAX_ALTERNATIVES = 64;

    private final JsonVocabulary vocab;
    private final byte[][] alts;
    private final AnswerStart answer;
    private final byte[] bits;
    private long live;   // alternatives still consistent with what was generated
    private int pos;     // bytes of the prefix generated so far
    private boolean done;

    public ForcedPrefix(JsonVocabulary vocab, List<String> alternatives, boolean afterThinking) {
        if (alternatives.isEmpty() || alternatives.size() > MAX_ALTERNATIVES) {
            throw new IllegalArgumentException("1.." + MAX_ALTERNATIVES + " alternatives expected");
        }
        this.vocab = vocab;
        this.alts = alternatives.stream().map(a -> a.getBytes(StandardCharsets.UTF_8)).toArray(byte[][]::new);
        this.answer = new AnswerStart(vocab.endThink(), afterThinking);
        this.bits = new byte[(vocab.vocabSize() + 7) / 8];
        this.live = alternatives.size() == 64 ? -1L : (1L << alternatives.size()) - 1;
    }

    /** The forced part has been generated: the rest is free. */
    public boolean done() {
        return done;
    }

    @Override
    public int vocabSize() {
        return vocab.vocabSize();
    }

    @Override
    public byte[] allowedNext() {
        if (!answer.started() || done) return null;
        Arrays.fill(bits, (byte) 0);
        int n = vocab.vocabSize();
        for (int id = 0; id < n; id++) {
            byte[] b = vocab.bytes(id);
            if (b != null && consistent(b) != 0) bits[id >> 3] |= (byte) (1 << (id & 7));
        }
        return bits;
    }

    /** Alternatives that b continues: b is a prefix of what remains of one, or crosses its end. */
    private long consistent(byte[] b) {
        long ok = 0;
        for (long r = live; r != 0; r &= r - 1) {
            int i = Long.numberOfTrailingZeros(r);
            byte[] a = alts[i];
            int m = Math.min(b.length, a.length - pos);
            if (Arrays.equals(b, 0, m, a, pos, pos + m)) ok |= 1L << i;
        }
        return ok;
    }

    @Override
    public void accept(int token) {
        byte[] b = vocab.bytes(token);
        if (!answer.started()) {
            answer.accept(token, b);
            return;
        }
        if (done) return;
        long ok = b == null ? 0 : consistent(b);
        if (ok == 0) throw new IllegalStateException("token " + token + " was sampled outside the allowed set");
        live = ok;
        pos += b.length;
        for (long r = ok; r != 0; r &= r - 1) if (alts[Long.numberOfTrailingZeros(r)].length <= pos) done = true;
    }
}
