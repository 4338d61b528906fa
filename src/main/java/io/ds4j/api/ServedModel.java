package io.ds4j.api;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.EngineService;
import io.ds4j.engine.GgufMetadata;
import io.ds4j.tokenizer.Tokenizer;
import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;

/**
 * The model this server serves: its id (ds4.model.id, default the file
 * name), the tokenizer built from the GGUF's tokenizer.ggml.* keys (absent
 * in tokenizer-less files such as converted test fixtures: then only
 * token-id prompts work), and whether it is a random-weight demo model.
 */
@Component
public class ServedModel {
    private static final Logger log = LoggerFactory.getLogger(ServedModel.class);

    private final EngineService engine;
    private final String id;
    private final List<String> aliases;
    private final long created = Instant.now().getEpochSecond();
    private final Tokenizer tokenizer;
    private final String tokenizerError;
    private final boolean synthetic;
    private final io.ds4j.chat.ToolCallMemory toolCallMemory;
    private final io.ds4j.chat.ChatRenderer renderer;
    private final io.ds4j.chat.ThinkingMode defaultThinking;

    public ServedModel(EngineService engine, Ds4jProperties props) {
        this.engine = engine;
        this.id = props.model().effectiveId();
        this.aliases = props.model().aliases();
        Tokenizer tok = null;
        String tokErr = null;
        boolean synth = false;
        if (engine.modelLoaded()) {
            GgufMetadata m = engine.metadata();
            try {
                tok = Tokenizer.fromMetadata(m);
                log.info("tokenizer: {} tokens, bos {}, eos {}", tok.vocabSize(), tok.bosId(), tok.eosId());
            } catch (IllegalArgumentException | IllegalStateException e) {
                tokErr = e.getMessage();
                log.warn("model '{}' has no usable tokenizer ({}): only token-id prompts on /v1/completions work", id,
                        e.getMessage());
            }
            synth = isSynthetic(m);
            if (synth) {
                log.warn("model '{}' ({}) has RANDOM weights (synthetic demo model): its output is random text, "
                        + "useful only to try the API", id, m.string("general.name").orElse("?"));
            }
        }
        this.tokenizer = tok;
        this.tokenizerError = tokErr;
        this.synthetic = synth;
        this.defaultThinking = switch (props.server().defaultThinking()) {
            case off -> io.ds4j.chat.ThinkingMode.OFF;
            case high -> io.ds4j.chat.ThinkingMode.HIGH;
            case max -> io.ds4j.chat.ThinkingMode.MAX;
        };
        this.toolCallMemory = new io.ds4j.chat.ToolCallMemory(Math.max(1, props.server().toolCallMemory()));
        var defaults = io.ds4j.chat.ChatTemplateSettings.defaults();
        this.renderer = tok == null ? null : new io.ds4j.chat.ChatRenderer(tok,
                new io.ds4j.chat.ChatTemplateSettings(defaults.encoder(), defaultThinking, defaults.dropThinking()),
                toolCallMemory);
    }

    /** The chat prompt renderer (requires a tokenizer). */
    public io.ds4j.chat.ChatRenderer renderer() {
        requireTokenizer("messages");
        return renderer;
    }

    private io.ds4j.grammar.JsonVocabulary jsonVocabulary;
    private io.ds4j.grammar.JsonVocabulary toolVocabulary;

    /** JSON mode's view of the vocabulary, built on first use (requires a tokenizer). */
    public synchronized io.ds4j.grammar.JsonVocabulary jsonVocabulary() {
        if (jsonVocabulary == null) jsonVocabulary = vocabularyView(java.util.Set.of());
        return jsonVocabulary;
    }

    /** The view for forcing a tool call: like JSON mode's, plus the DSML marker token. */
    public synchronized io.ds4j.grammar.JsonVocabulary toolVocabulary() {
        if (toolVocabulary == null) toolVocabulary = vocabularyView(java.util.Set.of(io.ds4j.chat.ChatRenderer.DSML));
        return toolVocabulary;
    }

    private io.ds4j.grammar.JsonVocabulary vocabularyView(java.util.Set<String> specials) {
        return new io.ds4j.grammar.JsonVocabulary(requireTokenizer("messages"), vocabSize(),
                io.ds4j.chat.ChatRenderer.END_THINK, specials);
    }

    /** Shared between renderer and output parsers: generated tool calls are replayed exactly. */
    public io.ds4j.chat.ToolCallMemory toolCallMemory() {
        return toolCallMemory;
    }

    public io.ds4j.chat.ThinkingMode defaultThinking() {
        return defaultThinking;
    }

    static boolean isSynthetic(GgufMetadata m) {
        if (m.integer("ds4j.synthetic").orElse(0) != 0) return true;
        String flag = m.string("ds4j.synthetic").orElse("").toLowerCase(Locale.ROOT);
        if (flag.equals("true") || flag.equals("1") || flag.equals("yes")) return true;
        String name = m.string("general.name").orElse("").toLowerCase(Locale.ROOT);
        return name.startsWith("ds4j-synth") || name.contains("synthetic") || name.contains("random");
    }

    public String id() {
        return id;
    }

    public long created() {
        return created;
    }

    public boolean synthetic() {
        return synthetic;
    }

    public boolean loaded() {
        return engine.modelLoaded();
    }

    /** Token ids a prompt may use: the engine's vocabulary. */
    public int vocabSize() {
        return engine.nVocab();
    }

    public int contextSize() {
        return engine.contextSize();
    }

    /** Accepts the served id, an alias, or no model field; anything else is a 404. */
    public boolean matches(String requested) {
        return requested == null || requested.isEmpty() || requested.equals(id) || aliases.contains(requested);
    }

    public void checkModel(String requested) {
        requireLoaded();
        if (!matches(requested)) throw ApiException.modelNotFound(requested);
    }

    public void requireLoaded() {
        if (engine.shuttingDown()) throw ApiException.notReady("the server is shutting down");
        if (engine.follower()) {
            throw ApiException.notReady("this node is a follower (rank " + engine.rank() + " of " + engine.worldSize()
                    + " in expert-parallel mode): send requests to rank 0"
                    + (engine.loadError() != null ? "; " + engine.loadError() : ""));
        }
        if (!engine.modelLoaded()) {
            throw ApiException.notReady(engine.loadError() != null ? "the model failed to load: " + engine.loadError()
                    : "no model is loaded (start the server with ds4.model.path)");
        }
    }

    public Optional<Tokenizer> tokenizer() {
        return Optional.ofNullable(tokenizer);
    }

    public Tokenizer requireTokenizer(String param) {
        requireLoaded();
        if (tokenizer == null) {
            throw ApiException.invalid(param, "model_has_no_tokenizer", "the model '" + id
                    + "' cannot tokenize text (" + tokenizerError + "); send token ids instead");
        }
        return tokenizer;
    }

    /** End-of-text id: the tokenizer's, else tokenizer.ggml.eos_token_id, else -1. */
    public int eosId() {
        if (tokenizer != null) return tokenizer.eosId();
        return (int) engine.metadata().integer("tokenizer.ggml.eos_token_id").orElse(-1);
    }
}
