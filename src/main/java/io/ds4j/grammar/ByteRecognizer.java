package io.ds4j.grammar;

/**
 * A byte-level recogniser used for constrained decoding: it accepts a byte only if the text so far is still
 * a prefix of some accepted document (a rejected byte leaves the state unchanged) and says when the
 * document is complete. Copies make trial runs cheap: the allowed set of the next token is computed by
 * running every vocabulary token on a copy of the current state.
 */
public interface ByteRecognizer {
    /** Feeds one byte (0..255); false and no change if it cannot continue an accepted document. */
    boolean feed(int c);

    /** The document is complete: only end-of-sequence may follow. */
    boolean complete();

    /** Makes this an exact copy of {@code other} (a recogniser of the same kind and grammar). */
    void copyFrom(ByteRecognizer other);

    /** A new recogniser of the same grammar in its start state. */
    ByteRecognizer blank();

    /** Feeds all bytes; false (state unspecified) if one is rejected. */
    default boolean feed(byte[] bytes) {
        for (byte b : bytes) if (!feed(b & 0xff)) return false;
        return true;
    }
}
