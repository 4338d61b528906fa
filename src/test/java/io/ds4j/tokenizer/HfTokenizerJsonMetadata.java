package io.ds4j.tokenizer;

import io.ds4j.chat.Json;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Test fixture builder: the {@code tokenizer.ggml.*} keys a GGUF converted from a HF
 * {@code tokenizer.json} would carry, built the same way as {@code ds4j-tool convert --tokenizer}
 * (vocabulary ids as given, added tokens typed 3 if "special" else 4, the V4 added tokens of
 * chat-format.md 1.6 (sources S1/S2) overriding V3 placeholders as type 3, gaps "[PADn]" type 5,
 * 129 280 entries).
 */
public final class HfTokenizerJsonMetadata implements TokenizerMetadata {
    static final int V4_VOCAB = 129280;
    static final Object[][] V4_SPECIAL = {
        {128821, "<think>"}, {128822, "</think>"}, {128825, "｜DSML｜"}, {128828, "<｜latest_reminder｜>"},
        {128829, "<｜action｜>"}, {128830, "<｜query｜>"}, {128831, "<｜authority｜>"}, {128832, "<｜domain｜>"},
        {128836, "<｜title｜>"}, {128845, "<｜read_url｜>"}, {129279, "<｜image｜>"},
    };

    private final Map<String, Object> values = new HashMap<>();
    /** The pre-tokenizer regexes found in the file, in order. */
    final List<String> preTokenizerRegexes = new ArrayList<>();

    @SuppressWarnings("unchecked")
    public HfTokenizerJsonMetadata(Path tokenizerJson) throws IOException {
        Map<String, Object> root = (Map<String, Object>) Json.parse(Files.readString(tokenizerJson, StandardCharsets.UTF_8));
        Map<String, Object> model = (Map<String, Object>) root.get("model");
        Map<String, Object> vocab = (Map<String, Object>) model.get("vocab");
        List<Object> merges = (List<Object>) model.get("merges");
        List<Object> added = (List<Object>) root.get("added_tokens");
        String[] tokens = new String[V4_VOCAB];
        int[] types = new int[V4_VOCAB];
        vocab.forEach((k, v) -> {
            int id = Integer.parseInt(((Json.Num) v).literal());
            tokens[id] = k;
            types[id] = 1;
        });
        for (Object o : added) {
            Map<String, Object> a = (Map<String, Object>) o;
            int id = Integer.parseInt(((Json.Num) a.get("id")).literal());
            tokens[id] = (String) a.get("content");
            types[id] = Boolean.TRUE.equals(a.get("special")) ? 3 : 4;
        }
        for (Object[] sp : V4_SPECIAL) {
            tokens[(Integer) sp[0]] = (String) sp[1];
            types[(Integer) sp[0]] = 3;
        }
        for (int i = 0; i < V4_VOCAB; i++) {
            if (tokens[i] == null) {
                tokens[i] = "[PAD" + i + "]";
                types[i] = 5;
            }
        }
        List<String> mergeStrings = new ArrayList<>(merges.size());
        for (Object m : merges) {
            if (m instanceof String s) mergeStrings.add(s);
            else {
                List<Object> pair = (List<Object>) m;
                mergeStrings.add(pair.get(0) + " " + pair.get(1));
            }
        }
        Map<String, Object> pre = (Map<String, Object>) root.get("pre_tokenizer");
        for (Object p : (List<Object>) pre.get("pretokenizers")) {
            Map<String, Object> pm = (Map<String, Object>) p;
            if ("Split".equals(pm.get("type"))) {
                preTokenizerRegexes.add((String) ((Map<String, Object>) pm.get("pattern")).get("Regex"));
            }
        }
        values.put("tokenizer.ggml.model", "gpt2");
        values.put("tokenizer.ggml.pre", "joyai-llm");
        values.put("tokenizer.ggml.tokens", Arrays.asList(tokens));
        values.put("tokenizer.ggml.token_type", types);
        values.put("tokenizer.ggml.merges", mergeStrings);
        values.put("tokenizer.ggml.bos_token_id", 0L);
        values.put("tokenizer.ggml.eos_token_id", 1L);
    }

    private HfTokenizerJsonMetadata(HfTokenizerJsonMetadata other) {
        values.putAll(other.values);
        preTokenizerRegexes.addAll(other.preTokenizerRegexes);
    }

    /** A copy whose keys can be changed without touching this one. */
    public HfTokenizerJsonMetadata copy() {
        return new HfTokenizerJsonMetadata(this);
    }

    /** Replaces or removes (value null) one key, for negative tests. */
    public HfTokenizerJsonMetadata with(String key, Object value) {
        if (value == null) values.remove(key);
        else values.put(key, value);
        return this;
    }

    @Override
    public Optional<String> string(String key) {
        return values.get(key) instanceof String s ? Optional.of(s) : Optional.empty();
    }

    @Override
    public OptionalLong integer(String key) {
        return values.get(key) instanceof Long l ? OptionalLong.of(l) : OptionalLong.empty();
    }

    @Override
    @SuppressWarnings("unchecked")
    public List<String> stringArray(String key) {
        return values.get(key) instanceof List<?> l ? (List<String>) l : List.of();
    }

    @Override
    public int[] intArray(String key) {
        return values.get(key) instanceof int[] a ? a : new int[0];
    }
}
