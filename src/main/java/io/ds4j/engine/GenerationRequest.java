package io.ds4j.engine;

/**
 * One generation on the serving session: the full prompt (the engine reuses
 * the longest prefix already evaluated), sampling, the output budget, how
 * many alternatives to report per token (0 = none) and an optional
 * constraint on the generated tokens (null = none).
 */
public record GenerationRequest(int[] prompt, SamplingParams sampling, int maxTokens, int topLogprobs,
                                TokenConstraint constraint) {
    public GenerationRequest(int[] prompt, SamplingParams sampling, int maxTokens, int topLogprobs) {
        this(prompt, sampling, maxTokens, topLogprobs, null);
    }
}
