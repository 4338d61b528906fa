package io.ds4j.tokenizer;

import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * Read-only view of the GGUF metadata a {@link Tokenizer} is built from (the {@code tokenizer.ggml.*}
 * keys). The server implements it over the native {@code ds4j_meta_*} binding; tests may implement it
 * over a HF {@code tokenizer.json}.
 */
public interface TokenizerMetadata {
    Optional<String> string(String key);

    /** Any GGUF integer type or bool. */
    OptionalLong integer(String key);

    /** Empty list if absent. */
    List<String> stringArray(String key);

    /** Empty array if absent. */
    int[] intArray(String key);
}
