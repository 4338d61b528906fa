package io.ds4j.engine;

import java.util.Locale;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * Sampler settings of one request, rendered as ds4j_sampler_new options,
 * plus the OpenAI logit_bias (token id to bias; at most -100 bans).
 */
public record SamplingParams(double temperature, double topP, int topK, double minP, double repeatPenalty,
                             double presencePenalty, double frequencyPenalty, int penaltyLastN, long seed,
                             SortedMap<Integer, Float> logitBias) {

    public SamplingParams {
        logitBias = logitBias == null ? new TreeMap<>() : new TreeMap<>(logitBias);
    }

    public SamplingParams(double temperature, double topP, int topK, double minP, double repeatPenalty,
                          double presencePenalty, double frequencyPenalty, int penaltyLastN, long seed) {
        this(temperature, topP, topK, minP, repeatPenalty, presencePenalty, frequencyPenalty, penaltyLastN, seed,
                null);
    }

    @Override
    public SortedMap<Integer, Float> logitBias() {
        return java.util.Collections.unmodifiableSortedMap(logitBias);
    }

    public int[] biasIds() {
        return logitBias.keySet().stream().mapToInt(Integer::intValue).toArray();
    }

    public float[] biasValues() {
        float[] v = new float[logitBias.size()];
        int i = 0;
        for (Map.Entry<Integer, Float> e : logitBias.entrySet()) v[i++] = e.getValue();
        return v;
    }

    public boolean greedy() {
        return temperature == 0.0;
    }

    public boolean penalised() {
        return repeatPenalty != 1.0 || presencePenalty != 0.0 || frequencyPenalty != 0.0;
    }

    /** "key=value;..." for ds4j_sampler_new. */
    public String toOptions() {
        return String.format(Locale.ROOT,
                "temperature=%s;top_p=%s;top_k=%d;min_p=%s;repeat_penalty=%s;presence_penalty=%s;"
                        + "frequency_penalty=%s;penalty_last_n=%d;seed=%s",
                temperature, topP, topK, minP, repeatPenalty, presencePenalty, frequencyPenalty, penaltyLastN,
                Long.toUnsignedString(seed));
    }
}
