package io.ds4j.grammar;

import io.ds4j.chat.ChatRenderer;
import io.ds4j.engine.TokenConstraint;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * {@code tool_choice: "auto"}: the answer is free text until the model opens a DSML tag ({@code <｜DSML｜},
 * written as the marker token or as ordinary text); from that byte on, the rest must be a tool-call block of
 * the {@link ToolCallRecognizer} grammar, so a call the model decides to make always parses and validates.
 *
 * <p>While the answer's last bytes are a proper prefix of the opening (typically a trailing {@code <}), a
 * token that would complete the opening is allowed only if its remaining bytes continue a valid block, so
 * the switch never lands on a byte the grammar rejects. Tokens that break the partial opening stay free.
 * Without such a prefix (and with no vocabulary token holding the whole opening) the next token is free and
 * costs nothing to check. With thinking on, the reasoning is free.
 */
public final class TriggeredToolCall implements TokenConstraint {
    private static final byte[] OPEN = ("<" + ChatRenderer.DSML).getBytes(StandardCharsets.UTF_8);
    private static final int[] FAIL = failure(OPEN);

    private final JsonVocabulary vocab;
    private final ToolCallRecognizer start;   // the grammar in its start state (never fed)
    private final ToolCallRecognizer opened;  // the grammar after OPEN: the state a switch starts from
    private final ToolCallRecognizer trial;
    private final AnswerStart answer;
    private final byte[] bits;
    /** tokens whose bytes contain the whole opening: they need a check even with no partial match */
    private final int[] holdOpen;
    private int match;                        // bytes of OPEN matched at the end of the free text
    private JsonConstraint inside;            // set once the block is opened

    /**
     * @param grammar the block's grammar in its start state (owned by this constraint from now on)
     * @param afterThinking the output starts with reasoning, closed by the end-of-thinking marker
     */
    public TriggeredToolCall(JsonVocabulary vocab, ToolCallRecognizer grammar, boolean afterThinking) {
        this.vocab = vocab;
        this.start = grammar;
        this.opened = (ToolCallRecognizer) grammar.blank();
        if (!opened.feed(OPEN)) throw new IllegalArgumentException("the grammar does not start with " + new String(OPEN, StandardCharsets.UTF_8));
        this.trial = (ToolCallRecognizer) grammar.blank();
        this.answer = new AnswerStart(vocab.endThink(), afterThinking);
        this.bits = new byte[(vocab.vocabSize() + 7) / 8];
        int[] hold = new int[8];
        int n = 0;
        for (int id = 0; id < vocab.vocabSize(); id++) {
            byte[] b = vocab.bytes(id);
            if (b != null && b.length >= OPEN.length && indexOf(b, OPEN) >= 0) {
                if (n == hold.length) hold = Arrays.copyOf(hold, n * 2);
                hold[n++] = id;
            }
        }
        this.holdOpen = Arrays.copyOf(hold, n);
    }

    /** The model has opened a tool-call block: the rest of the answer is constrained. */
    public boolean opened() {
        return inside != null;
    }

    /** The block is closed (only end-of-sequence may follow). */
    public boolean complete() {
        return inside != null && inside.complete();
    }

    @Override
    public int vocabSize() {
        return vocab.vocabSize();
    }

    @Override
    public byte[] allowedNext() {
        if (!answer.started()) return null;
        if (inside != null) return inside.allowedNext();
        if (match == 0 && holdOpen.length == 0) return null;
        Arrays.fill(bits, (byte) 0xff);
        int n = vocab.vocabSize();
        if ((n & 7) != 0) bits[bits.length - 1] = (byte) ((1 << (n & 7)) - 1);
        if (match == 0) {
            for (int id : holdOpen) if (!continues(0, vocab.bytes(id))) clear(id);
        } else {
            for (int id = 0; id < n; id++) {
                byte[] b = vocab.bytes(id);
                if (b != null && !continues(match, b)) clear(id);
            }
        }
        return bits;
    }

    /**
     * Appending b to free text whose tail matches m bytes of OPEN: true if the opening is not completed, or
     * it is and the bytes after it continue a valid block.
     */
    private boolean continues(int m, byte[] b) {
        for (int i = 0; i < b.length; i++) {
            m = step(m, b[i]);
            if (m == OPEN.length) {
                trial.copyFrom(opened);
                for (int j = i + 1; j < b.length; j++) if (!trial.feed(b[j] & 0xff)) return false;
                return true;
            }
        }
        return true;
    }

    @Override
    public void accept(int token) {
        byte[] b = vocab.bytes(token);
        if (!answer.started()) {
            answer.accept(token, b);
            return;
        }
        if (inside != null) {
            inside.accept(token);
            return;
        }
        if (b == null) { // a control token (not the DSML marker) breaks a partial opening
            match = 0;
            return;
        }
        for (int i = 0; i < b.length; i++) {
            match = step(match, b[i]);
            if (match == OPEN.length) {
                ToolCallRecognizer g = start;
                g.copyFrom(opened);
                for (int j = i + 1; j < b.length; j++) {
                    if (!g.feed(b[j] & 0xff)) throw new IllegalStateException("token " + token + " was sampled outside the allowed set");
                }
                inside = new JsonConstraint(vocab, g, false);
                return;
            }
        }
    }

    private void clear(int id) {
        bits[id >> 3] &= (byte) ~(1 << (id & 7));
    }

    private static int step(int m, byte c) {
        while (m > 0 && OPEN[m] != c) m = FAIL[m - 1];
        return OPEN[m] == c ? m + 1 : 0;
    }

    private static int[] failure(byte[] p) {
        int[] f = new int[p.length];
        for (int i = 1, k = 0; i < p.length; i++) {
            while (k > 0 && p[i] != p[k]) k = f[k - 1];
            if (p[i] == p[k]) k++;
            f[i] = k;
        }
        return f;
    }

    private static int indexOf(byte[] b, byte[] p) {
        for (int i = 0, m = 0; i < b.length; i++) {
            m = step(m, b[i]);
            if (m == p.length) return i;
        }
        return -1;
    }
}
