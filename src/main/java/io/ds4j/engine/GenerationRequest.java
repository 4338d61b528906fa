package io.ds4j.engine;

/**
 * One generation: the full prompt (the longest prefix a cached session holds
 * is reused), sampling, the output budget, how
 * many alternatives to report per token (0 = none), an optional
 * constraint on the generated tokens (null = none) and whether the sampled
 * tokens' log-probabilities are wanted at all (when not, the sampler skips
 * a softmax over the whole vocabulary per token).
 */
public record GenerationRequest(int[] prompt, SamplingParams sampling, int maxTokens, int topLogprobs,
                                TokenConstraint constraint, boolean logprobs) {
    public GenerationRequest(int[] prompt, SamplingParams sampling, int maxTokens, int topLogprobs,
                             TokenConstraint constraint) {
        this(prompt, sampling, maxTokens, topLogprobs, constraint, true);
    }

    public GenerationRequest(int[] prompt, SamplingParams sampling, int maxTokens, int topLogprobs) {
        this(prompt, sampling, maxTokens, topLogprobs, null);
    }
}
