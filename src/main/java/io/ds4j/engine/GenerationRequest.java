package io.ds4j.engine;

/**
 * One generation: the full prompt (the longest prefix a cached session holds
 * is reused), sampling, the output budget, how
 * many alternatives to report per token (0 = none) and an optional
 * constraint on the generated tokens (null = none).
 */
public record GenerationRequest(int[] prompt, SamplingParams sampling, int maxTokens, int topLogprobs,
                                TokenConstraint constraint) {
    public GenerationRequest(int[] prompt, SamplingParams sampling, int maxTokens, int topLogprobs) {
        this(prompt, sampling, maxTokens, topLogprobs, null);
    }
}
