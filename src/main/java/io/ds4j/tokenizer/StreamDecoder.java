package io.ds4j.tokenizer;

/**
 * Incremental detokenizer: {@link #push} returns the text that became complete with this token and
 * holds back the bytes of a UTF-8 sequence that a later token may still complete. Not thread-safe.
 */
public interface StreamDecoder {
    String push(int id);

    /** Returns whatever is held back (an incomplete sequence decodes to U+FFFD) and resets. */
    String flush();
}
