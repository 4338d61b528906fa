package io.ds4j.engine;

import java.util.Locale;

/** Sampler settings of one request, rendered as ds4j_sampler_new options. */
public record SamplingParams(double temperature, double topP, int topK, double minP, double repeatPenalty,
                             double presencePenalty, double frequencyPenalty, int penaltyLastN, long seed) {

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
