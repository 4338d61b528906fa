package io.ds4j.api;

import io.ds4j.chat.ChatPrompt;
import io.ds4j.chat.ChatRenderer;
import io.ds4j.chat.OutputEvent;
import io.ds4j.chat.OutputParser;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.chat.ToolCall;
import io.ds4j.chat.ToolFunction;
import io.ds4j.engine.Ds4jNative;
import io.ds4j.engine.GenerationRequest;
import io.ds4j.engine.GenerationResult;
import io.ds4j.engine.TokenConstraint;
import io.ds4j.grammar.ForcedPrefix;
import io.ds4j.grammar.JsonConstraint;
import io.ds4j.grammar.SchemaRecognizer;
import io.ds4j.grammar.ToolCallRecognizer;
import io.ds4j.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.springframework.stereotype.Component;

/**
 * The one path from a {@link Conversation} to a running generation, shared by the chat completions,
 * Responses and Anthropic Messages endpoints: the prompt is rendered once by the model's
 * {@link ChatRenderer}, JSON modes and forced tool calls get the same decoding constraint, the generated
 * tokens go through one {@link OutputParser}, and the generation runs through {@link Generations} (the
 * scheduler and the session's prefix cache). Endpoints differ only in how they parse requests and write
 * the parser's events.
 */
@Component
public class ChatPipeline {
    /** The most invokes a constrained block may hold when parallel calls are allowed. */
    static final int MAX_PARALLEL_CALLS = 8;

    private final ApiSupport api;

    public ChatPipeline(ApiSupport api) {
        this.api = api;
    }

    /** The parser events of one sampled token (or of the final flush, sample null). */
    record Step(List<OutputEvent> events, Ds4jNative.Sample sample) {}

    /** A conversation rendered and checked, ready to start. */
    record Prepared(Conversation conversation, ThinkingMode thinking, int[] prompt, GenerationRequest request,
                    Handler handler) {}

    /** The thinking mode the conversation runs with (its own, else the server default). */
    ThinkingMode thinking(Conversation c) {
        return c.thinking() != null ? c.thinking() : api.model.defaultThinking();
    }

    /** The prompt token ids of a conversation, as every endpoint sends them to the engine. */
    int[] render(Conversation c) {
        api.model.requireTokenizer("messages");
        return api.model.renderer().render(new ChatPrompt(c.messages(), c.tools(), c.toolChoice(), thinking(c)));
    }

    /**
     * Renders the conversation, checks it against the limits and builds the constraint and the parser.
     * {@code promptParam} and {@code formatParam} name the request fields that errors point at.
     */
    Prepared prepare(Conversation c, String promptParam, String formatParam) {
        Tokenizer tok = api.model.requireTokenizer(promptParam);
        ThinkingMode thinking = thinking(c);
        int[] prompt = api.model.renderer().render(new ChatPrompt(c.messages(), c.tools(), c.toolChoice(), thinking));
        int budget = api.budget(prompt.length, c.maxTokens(), promptParam);
        if (c.format().constrained() && c.toolsOn()) {
            throw ApiException.invalid(formatParam, "unsupported_value",
                    "a JSON output format cannot be combined with tools (send tool_choice 'none' or no tools)");
        }
        TokenConstraint constraint = switch (c.format().kind()) {
            case TEXT -> c.forceCall() ? forcedToolCall(c.tools(), c.toolChoice(), thinking, c.parallelToolCalls())
                    : c.toolsOn() ? autoToolCall(c.tools(), thinking, c.parallelToolCalls()) : null;
            case JSON_OBJECT -> new JsonConstraint(api.model.jsonVocabulary(), thinking.thinking());
            case JSON_SCHEMA -> new JsonConstraint(api.model.jsonVocabulary(), new SchemaRecognizer(c.format().schema()),
                    thinking.thinking());
        };
        OutputParser parser = new OutputParser(tok, thinking, c.stop(), c.toolsOn(), api.model.toolCallMemory());
        int top = Math.max(0, c.topLogprobs());
        // topLogprobs < 0: the client asked for no logprobs (ChatController), so none are computed
        var req = new GenerationRequest(prompt, c.sampling(), budget, top, constraint, c.topLogprobs() >= 0);
        return new Prepared(c, thinking, prompt, req, new Handler(parser));
    }

    /** Admits the generation (429 when the queue is full); the caller must bind its response to it. */
    Generations.Started start(String requestId, long arrivalNanos, Prepared p) {
        return api.generations.start(requestId, arrivalNanos, p.request(), p.handler());
    }

    /** Only stop, length and tool_calls reach clients. */
    static String finishReason(String parserReason, GenerationResult r) {
        if (r != null && (r.stop() == GenerationResult.Stop.LENGTH || r.stop() == GenerationResult.Stop.CONTEXT)
                && !"tool_calls".equals(parserReason) && !"stop".equals(parserReason)) {
            return "length";
        }
        if ("tool_calls".equals(parserReason) || "length".equals(parserReason)) return parserReason;
        return "stop";
    }

    /**
     * A whole (non-streamed) answer: content, reasoning, tool calls (arguments as generated), the
     * client-facing finish reason, the stop string that ended it (null if none), the engine's result and
     * the samples (for logprobs).
     */
    record Collected(String content, String reasoning, List<ToolCall> calls, String finish, String matchedStop,
                     GenerationResult result, List<Ds4jNative.Sample> samples) {}

    static Collected collect(List<Generations.Event> events, Handler handler) {
        StringBuilder content = new StringBuilder();
        StringBuilder reasoning = new StringBuilder();
        List<String[]> calls = new ArrayList<>(); // id, name, args
        List<Ds4jNative.Sample> samples = new ArrayList<>();
        String finish = null;
        GenerationResult r = null;
        for (var e : events) {
            if (e instanceof Generations.Event.Output(Step step)) {
                if (step.sample() != null) samples.add(step.sample());
                for (OutputEvent ev : step.events()) {
                    switch (ev) {
                        case OutputEvent.ReasoningDelta d -> reasoning.append(d.text());
                        case OutputEvent.ContentDelta d -> content.append(d.text());
                        case OutputEvent.ToolCallStart s -> calls.add(new String[] {s.id(), s.name(), ""});
                        case OutputEvent.ToolCallArgumentsDelta d -> calls.get(d.index())[2] += d.fragment();
                        case OutputEvent.Finished f -> finish = f.finishReason();
                    }
                }
            } else if (e instanceof Generations.Event.End end) {
                r = end.result();
            }
        }
        List<ToolCall> tc = new ArrayList<>();
        for (String[] c : calls) tc.add(new ToolCall(c[0], c[1], c[2]));
        return new Collected(content.toString(), reasoning.toString(), tc, finishReason(finish, r),
                handler.matchedStop(), r, samples);
    }

    /** Engine-thread side: feeds the parser, stops when it is done. */
    static final class Handler implements Generations.TokenHandler {
        private final OutputParser parser;
        volatile int reasoningTokens;

        Handler(OutputParser parser) {
            this.parser = parser;
        }

        /** The stop string that ended the content (null if none). */
        String matchedStop() {
            return parser.matchedStop();
        }

        @Override
        public boolean onToken(Ds4jNative.Sample sample, Consumer<Object> emit) {
            List<OutputEvent> ev = parser.push(sample.token());
            for (OutputEvent e : ev) {
                if (e instanceof OutputEvent.ReasoningDelta) {
                    reasoningTokens++;
                    break;
                }
            }
            emit.accept(new Step(ev, sample));
            return !parser.done();
        }

        @Override
        public void onEnd(GenerationResult r, Consumer<Object> emit) {
            boolean length = r.stop() == GenerationResult.Stop.LENGTH || r.stop() == GenerationResult.Stop.CONTEXT;
            emit.accept(new Step(parser.finish(length), null));
        }
    }

    /**
     * tool_choice "required" or a named function: the whole DSML block is constrained
     * ({@link ToolCallRecognizer}: an allowed tool, parameters of its schema, every value valid, closed
     * tags; one invoke when parallel calls are off). A schema outside the supported subset falls back to
     * forcing only the opening of the call (with more tools than the prefix can track, only the block
     * opening, and the name is the model's).
     */
    private TokenConstraint forcedToolCall(List<ToolFunction> tools, String toolChoice, ThinkingMode thinking,
                                           boolean parallel) {
        List<ToolFunction> allowed = "required".equals(toolChoice) ? tools
                : tools.stream().filter(t -> t.name().equals(toolChoice)).toList();
        try {
            var grammar = ToolCallRecognizer.of(allowed.stream()
                    .map(t -> new ToolCallRecognizer.Tool(t.name(), t.parametersJson())).toList(),
                    parallel ? MAX_PARALLEL_CALLS : 1);
            return new JsonConstraint(api.model.toolVocabulary(), grammar, thinking.thinking());
        } catch (IllegalArgumentException e) {
            // outside the supported schema subset: force the opening only
        }
        List<String> names = allowed.stream().map(ToolFunction::name).toList();
        List<String> alts = ChatRenderer.toolCallOpenings(names);
        if (alts.size() > ForcedPrefix.MAX_ALTERNATIVES) alts = ChatRenderer.toolCallOpenings(List.of());
        return new ForcedPrefix(api.model.toolVocabulary(), alts, thinking.thinking());
    }

    /**
     * tool_choice "auto": free text, but once the model opens a DSML block the rest is constrained like a
     * forced call over all the request's tools ({@link io.ds4j.grammar.TriggeredToolCall}), so a call it
     * decides to make always parses and validates, {@code strict} or not, and parallel calls off allows one
     * invoke. With a schema outside the supported subset (or more than 32 tools) the answer stays
     * unconstrained and the parser's half-call rule applies.
     */
    private TokenConstraint autoToolCall(List<ToolFunction> tools, ThinkingMode thinking, boolean parallel) {
        try {
            var grammar = ToolCallRecognizer.of(tools.stream()
                    .map(t -> new ToolCallRecognizer.Tool(t.name(), t.parametersJson())).toList(),
                    parallel ? MAX_PARALLEL_CALLS : 1);
            return new io.ds4j.grammar.TriggeredToolCall(api.model.toolVocabulary(), grammar, thinking.thinking());
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
