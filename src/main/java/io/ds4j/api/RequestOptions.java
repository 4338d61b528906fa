package io.ds4j.api;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.SamplingParams;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import tools.jackson.databind.JsonNode;

/** The OpenAI request fields shared by /v1/chat/completions and /v1/completions. */
record RequestOptions(String model, Integer maxTokens, SamplingParams sampling, List<String> stop, boolean stream,
                      boolean includeUsage, int topLogprobs, boolean logprobs, String user, boolean returnTokens) {

    static RequestOptions parse(Params p, Ds4jProperties props, boolean chat) {
        String model = p.string("model");
        p.onlyDefault("n", 1, "this server generates one choice per request (send n=1 or leave it out)");
        p.onlyDefault("best_of", 1, "best_of is not supported");
        Integer maxTokens = p.integer("max_completion_tokens", 1, Integer.MAX_VALUE);
        if (maxTokens == null) maxTokens = p.integer("max_tokens", 1, Integer.MAX_VALUE);
        if (maxTokens != null && maxTokens > props.server().maxOutputTokens()) {
            throw ApiException.invalid(p.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                    "the output limit is " + props.server().maxOutputTokens() + " tokens (got " + maxTokens + ")");
        }
        var sampling = sampling(p, props);
        List<String> stop = p.stop();
        boolean stream = p.bool("stream", false);
        boolean includeUsage = false;
        JsonNode so = p.get("stream_options");
        if (so != null) {
            if (!so.isObject()) throw ApiException.invalid("stream_options", "'stream_options' must be an object");
            JsonNode iu = so.get("include_usage");
            if (iu != null && !iu.isNull()) {
                if (!iu.isBoolean()) throw ApiException.invalid("stream_options.include_usage", "'include_usage' must be a boolean");
                includeUsage = iu.booleanValue();
            }
        }
        int top;
        boolean logprobs;
        if (chat) {
            logprobs = p.bool("logprobs", false);
            Integer t = p.integer("top_logprobs", 0, 20);
            if (t != null && !logprobs) throw ApiException.invalid("top_logprobs", "'top_logprobs' requires 'logprobs': true");
            top = t == null ? 0 : t;
        } else {
            Integer t = p.integer("logprobs", 0, 20);
            logprobs = t != null;
            top = t == null ? 0 : t;
        }
        String user = p.string("user");
        boolean returnTokens = p.bool("return_tokens", false);
        return new RequestOptions(model, maxTokens, sampling, stop, stream, includeUsage, top, logprobs, user, returnTokens);
    }

    /**
     * The sampler fields every generation endpoint reads with these names: temperature (0-2), top_p,
     * top_k, min_p, presence/frequency/repetition penalties, seed and logit_bias; omitted ones take
     * ds4.sampling.*.
     */
    static SamplingParams sampling(Params p, Ds4jProperties props) {
        var d = props.sampling();
        double temperature = or(p.number("temperature", 0, 2), d.temperature());
        double topP = or(p.number("top_p", 0, 1), d.topP());
        if (topP == 0) topP = 1e-9; // OpenAI allows 0: keep only the most likely token
        int topK = or(p.integer("top_k", 0, 1_000_000), d.topK());
        double minP = or(p.number("min_p", 0, 1), d.minP());
        double presence = or(p.number("presence_penalty", -2, 2), d.presencePenalty());
        double frequency = or(p.number("frequency_penalty", -2, 2), d.frequencyPenalty());
        Double rep = p.number("repetition_penalty", 0.01, 10);
        if (rep == null) rep = p.number("repeat_penalty", 0.01, 10);
        double repeat = or(rep, d.repeatPenalty());
        Long seed = p.int64("seed");
        long s = seed != null ? seed : ThreadLocalRandom.current().nextLong();
        return new SamplingParams(temperature, topP, topK, minP, repeat, presence, frequency, d.penaltyLastN(), s,
                p.logitBias());
    }

    /** Token ids in logit_bias must exist in the served model's vocabulary. */
    void checkVocabulary(int vocab) {
        var bias = sampling.logitBias();
        if (!bias.isEmpty() && bias.lastKey() >= vocab) {
            throw ApiException.invalid("logit_bias", "token id " + bias.lastKey() + " in 'logit_bias' is outside the vocabulary ("
                    + vocab + " tokens)");
        }
    }

    private static double or(Double v, double d) {
        return v == null ? d : v;
    }

    private static int or(Integer v, int d) {
        return v == null ? d : v;
    }
}
