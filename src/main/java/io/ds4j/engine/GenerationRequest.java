package io.ds4j.engine;

/**
 * One generation on the serving session: the full prompt (the engine reuses
 * the longest prefix already evaluated), sampling, the output budget and how
 * many alternatives to report per token (0 = none).
 */
public record GenerationRequest(int[] prompt, SamplingParams sampling, int maxTokens, int topLogprobs) {}
