package io.ds4j.engine;

/**
 * Receives a generation's progress on the engine owner thread. Must be quick
 * and must not call the engine.
 */
public interface GenerationListener {
    /** Between prefill chunks; return false to cancel. */
    default boolean onPrefillProgress(int done, int total) {
        return true;
    }

    /** The prompt is evaluated; {@code cachedTokens} of it were reused from the session. */
    default void onPromptDone(int promptTokens, int cachedTokens) {}

    /** A sampled token; return false to stop generating (end of text, stop string, ...). */
    boolean onToken(Ds4jNative.Sample sample);
}
