package io.ds4j.engine;

/**
 * Constrained decoding: which tokens may come next. The engine asks before
 * every sampled token and reports the token it sampled. Called on the engine
 * owner thread only, one instance per generation.
 */
public interface TokenConstraint {
    /**
     * The tokens allowed next as a bitset (bit {@code id & 7} of byte {@code id >> 3}), or null when any
     * token may follow. The array may be reused between calls; the engine copies it at once.
     */
    byte[] allowedNext();

    /** Number of token ids the bitset covers (ids beyond it are never allowed). */
    int vocabSize();

    /** The token that was sampled (always one the last {@link #allowedNext()} allowed). */
    void accept(int token);
}
