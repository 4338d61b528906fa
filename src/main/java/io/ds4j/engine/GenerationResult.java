package io.ds4j.engine;

/**
 * How a generation ended.
 *
 * @param stop why generation stopped
 * @param promptTokens prompt length
 * @param cachedTokens prompt tokens reused from a cached session (restored, not evaluated)
 * @param generatedTokens tokens sampled (and reported to the listener)
 * @param prefillNanos time spent evaluating the new part of the prompt
 * @param decodeNanos time spent sampling and evaluating generated tokens
 * @param contextUsed session position afterwards
 * @param contextSize the session's context size
 */
public record GenerationResult(Stop stop, int promptTokens, int cachedTokens, int generatedTokens,
                               long prefillNanos, long decodeNanos, int contextUsed, int contextSize) {
    public enum Stop {
        /** the listener said stop (end of text, stop string, tool calls done) */
        LISTENER,
        /** max tokens reached */
        LENGTH,
        /** the context window is full */
        CONTEXT,
        /** cancelled (client gone, shutdown) */
        CANCELLED
    }
}
