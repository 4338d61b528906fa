package io.ds4j.api;

import io.ds4j.chat.ChatMessage;
import io.ds4j.chat.ChatPrompt;
import io.ds4j.chat.OutputEvent;
import io.ds4j.chat.OutputParser;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.chat.ToolFunction;
import io.ds4j.config.Ds4jProperties.ReasoningField;
import io.ds4j.engine.Ds4jNative;
import io.ds4j.engine.GenerationRequest;
import io.ds4j.engine.GenerationResult;
import io.ds4j.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * POST /v1/chat/completions. The messages are rendered with the DeepSeek V4
 * prompt format (io.ds4j.chat.ChatRenderer), generated tokens are parsed
 * incrementally (OutputParser) into reasoning, content and tool calls on the
 * engine thread, so a stop string or the end of a tool-call block stops
 * generation at once.
 */
@RestController
public class ChatController {
    private final ApiSupport api;

    public ChatController(ApiSupport api) {
        this.api = api;
    }

    /** The parser events of one sampled token (or of the final flush, sample null). */
    record Step(List<OutputEvent> events, Ds4jNative.Sample sample) {}

    @PostMapping("/v1/chat/completions")
    public Mono<Void> chat(ServerWebExchange exchange) {
        return api.body(exchange).flatMap(body -> run(body, exchange.getResponse()));
    }

    private Mono<Void> run(String body, ServerHttpResponse response) {
        long arrival = System.nanoTime();
        Params p = Params.parse(body);
        RequestOptions o = RequestOptions.parse(p, api.props, true);
        api.model.checkModel(o.model());
        o.checkVocabulary(api.model.vocabSize());
        Tokenizer tok = api.model.requireTokenizer("messages");
        List<ChatMessage> messages = ChatRequest.messages(p, api.props.server().maxMessages());
        List<ToolFunction> tools = ChatRequest.tools(p);
        String toolChoice = ChatRequest.toolChoice(p, tools);
        ThinkingMode requested = ChatRequest.thinking(p);
        ThinkingMode thinking = requested != null ? requested : api.model.defaultThinking();
        JsonCheck.ResponseFormat format = JsonCheck.responseFormat(p);
        int[] prompt = api.model.renderer().render(new ChatPrompt(messages, tools, toolChoice, thinking));
        int budget = api.budget(prompt.length, o.maxTokens(), "messages");
        boolean toolsOn = !tools.isEmpty() && !"none".equals(toolChoice);
        if (format.constrained() && toolsOn) {
            throw ApiException.invalid("response_format", "unsupported_value",
                    "a JSON response_format cannot be combined with tools (send tool_choice 'none' or no tools)");
        }
        boolean forceCall = toolsOn && toolChoice != null && !"auto".equals(toolChoice);
        io.ds4j.engine.TokenConstraint constraint = switch (format.kind()) {
            case TEXT -> forceCall ? forcedToolCall(tools, toolChoice, thinking, ChatRequest.parallelToolCalls(p))
                    : toolsOn ? autoToolCall(tools, thinking, ChatRequest.parallelToolCalls(p)) : null;
            case JSON_OBJECT -> new io.ds4j.grammar.JsonConstraint(api.model.jsonVocabulary(), thinking.thinking());
            case JSON_SCHEMA -> new io.ds4j.grammar.JsonConstraint(api.model.jsonVocabulary(),
                    new io.ds4j.grammar.SchemaRecognizer(format.schema()), thinking.thinking());
        };
        OutputParser parser = new OutputParser(tok, thinking, o.stop(), toolsOn, api.model.toolCallMemory());
        Handler handler = new Handler(parser);
        String id = ApiSupport.newId("chatcmpl-");
        response.getHeaders().set("X-Request-Id", id);
        var req = new GenerationRequest(prompt, o.sampling(), budget, o.logprobs() ? o.topLogprobs() : 0, constraint);
        Generations.Started gen = api.generations.start(id, arrival, req, handler);
        Flux<Generations.Event> events = gen.events();
        String modelId = api.model.id();
        long created = System.currentTimeMillis() / 1000;
        ReasoningField rf = api.props.server().reasoningField();
        if (!o.stream()) {
            return gen.bind(events.collectList().flatMap(list -> {
                StringBuilder content = new StringBuilder();
                StringBuilder reasoning = new StringBuilder();
                List<String[]> calls = new ArrayList<>(); // id, name, args
                ArrayNode lps = ApiSupport.object().arrayNode();
                String finish = null;
                GenerationResult r = null;
                for (var e : list) {
                    if (e instanceof Generations.Event.Output(Step step)) {
                        if (step.sample() != null && o.logprobs()) lps.add(logprob(tok, step.sample()));
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
                finish = normalise(finish, r);
                ObjectNode root = base(id, created, modelId, "chat.completion");
                ObjectNode choice = root.putArray("choices").addObject();
                choice.put("index", 0);
                ObjectNode msg = choice.putObject("message");
                msg.put("role", "assistant");
                if (content.isEmpty() && !calls.isEmpty()) msg.putNull("content");
                else msg.put("content", content.toString());
                if (thinking.thinking()) {
                    if (rf.content()) msg.put("reasoning_content", reasoning.toString());
                    if (rf.plain()) msg.put("reasoning", reasoning.toString());
                }
                if (!calls.isEmpty()) {
                    ArrayNode tc = msg.putArray("tool_calls");
                    for (String[] c : calls) {
                        ObjectNode call = tc.addObject();
                        call.put("id", c[0]);
                        call.put("type", "function");
                        call.putObject("function").put("name", c[1]).put("arguments", c[2]);
                    }
                }
                if (o.logprobs()) choice.putObject("logprobs").set("content", lps);
                else choice.putNull("logprobs");
                choice.put("finish_reason", finish);
                root.set("usage", ApiSupport.usage(r, handler.reasoningTokens));
                api.logRequest(id, "chat", o.user(), "ok", finish, r, arrival);
                return ApiSupport.json(response, root);
            }).doOnError(t -> api.logRequest(id, "chat", o.user(), ApiSupport.statusOf(t), null, null, arrival))
                    .doOnCancel(() -> api.logRequest(id, "chat", o.user(), "cancelled", null, null, arrival)));
        }
        // streaming: the role chunk goes out at once (it also commits the response headers)
        ObjectNode first = chunk(id, created, modelId);
        ObjectNode firstDelta = first.withArray("choices").objectNode();
        first.withArray("choices").add(firstDelta);
        firstDelta.put("index", 0);
        firstDelta.putObject("delta").put("role", "assistant").put("content", "");
        firstDelta.putNull("logprobs");
        firstDelta.putNull("finish_reason");
        ArrayNode[] pendingLps = {null};
        String[] finishSeen = {null};
        Flux<String> body2 = events.concatMap(e -> switch (e) {
            case Generations.Event.KeepAlive k -> Flux.just(Sse.KEEP_ALIVE);
            case Generations.Event.PromptDone pd -> Flux.empty();
            case Generations.Event.Output(Step step) -> {
                if (step.sample() != null && o.logprobs()) {
                    if (pendingLps[0] == null) pendingLps[0] = ApiSupport.object().arrayNode();
                    pendingLps[0].add(logprob(tok, step.sample()));
                }
                List<String> out = new ArrayList<>();
                for (OutputEvent ev : step.events()) {
                    ObjectNode delta = ApiSupport.object();
                    switch (ev) {
                        case OutputEvent.ReasoningDelta d -> {
                            if (d.text().isEmpty()) continue;
                            if (rf.content()) delta.put("reasoning_content", d.text());
                            if (rf.plain()) delta.put("reasoning", d.text());
                        }
                        case OutputEvent.ContentDelta d -> {
                            if (d.text().isEmpty()) continue;
                            delta.put("content", d.text());
                        }
                        case OutputEvent.ToolCallStart s -> {
                            ObjectNode call = delta.putArray("tool_calls").addObject();
                            call.put("index", s.index());
                            call.put("id", s.id());
                            call.put("type", "function");
                            call.putObject("function").put("name", s.name()).put("arguments", "");
                        }
                        case OutputEvent.ToolCallArgumentsDelta d -> {
                            ObjectNode call = delta.putArray("tool_calls").addObject();
                            call.put("index", d.index());
                            call.putObject("function").put("arguments", d.fragment());
                        }
                        case OutputEvent.Finished f -> {
                            finishSeen[0] = f.finishReason();
                            continue;
                        }
                    }
                    ObjectNode c = chunk(id, created, modelId);
                    ObjectNode ch = c.putArray("choices").addObject();
                    ch.put("index", 0);
                    ch.set("delta", delta);
                    if (pendingLps[0] != null) {
                        ch.putObject("logprobs").set("content", pendingLps[0]);
                        pendingLps[0] = null;
                    } else {
                        ch.putNull("logprobs");
                    }
                    ch.putNull("finish_reason");
                    out.add(Sse.data(c.toString()));
                }
                yield Flux.fromIterable(out);
            }
            case Generations.Event.Output other -> Flux.empty();
            case Generations.Event.End end -> {
                GenerationResult r = end.result();
                String finish = normalise(finishSeen[0], r);
                ObjectNode c = chunk(id, created, modelId);
                ObjectNode ch = c.putArray("choices").addObject();
                ch.put("index", 0);
                ch.putObject("delta");
                if (pendingLps[0] != null) ch.putObject("logprobs").set("content", pendingLps[0]);
                else ch.putNull("logprobs");
                ch.put("finish_reason", finish);
                List<String> out = new ArrayList<>();
                out.add(Sse.data(c.toString()));
                if (o.includeUsage()) {
                    ObjectNode u = chunk(id, created, modelId);
                    u.putArray("choices");
                    u.set("usage", ApiSupport.usage(r, handler.reasoningTokens));
                    out.add(Sse.data(u.toString()));
                }
                out.add(Sse.DONE);
                api.logRequest(id, "chat", o.user(), "ok", finish, r, arrival);
                yield Flux.fromIterable(out);
            }
        }).onErrorResume(t -> {
            api.logRequest(id, "chat", o.user(), ApiSupport.statusOf(t), null, null, arrival);
            return Flux.just(ApiSupport.errorEvent(t));
        }).doOnCancel(() -> api.logRequest(id, "chat", o.user(), "cancelled", null, null, arrival));
        // bound to the whole response: body2 is subscribed only after the first chunk went out
        return gen.bind(ApiSupport.sse(response, Flux.concat(Flux.just(Sse.data(first.toString())), body2)));
    }

    /** Only stop, length and tool_calls reach clients. */
    static String normalise(String parserReason, GenerationResult r) {
        if (r != null && (r.stop() == GenerationResult.Stop.LENGTH || r.stop() == GenerationResult.Stop.CONTEXT)
                && !"tool_calls".equals(parserReason) && !"stop".equals(parserReason)) {
            return "length";
        }
        if ("tool_calls".equals(parserReason) || "length".equals(parserReason)) return parserReason;
        return "stop";
    }

    private static ObjectNode base(String id, long created, String model, String object) {
        ObjectNode root = ApiSupport.object();
        root.put("id", id);
        root.put("object", object);
        root.put("created", created);
        root.put("model", model);
        root.put("system_fingerprint", "ds4j");
        return root;
    }

    private static ObjectNode chunk(String id, long created, String model) {
        return base(id, created, model, "chat.completion.chunk");
    }

    static ObjectNode logprob(Tokenizer tok, Ds4jNative.Sample s) {
        ObjectNode o = entry(tok, s.token(), s.logprob());
        ArrayNode top = o.putArray("top_logprobs");
        for (int i = 0; i < s.topIds().length; i++) top.add(entry(tok, s.topIds()[i], s.topLogprobs()[i]));
        return o;
    }

    private static ObjectNode entry(Tokenizer tok, int id, float lp) {
        ObjectNode o = ApiSupport.object();
        o.put("token", CompletionsController.text(tok, id));
        o.put("logprob", lp);
        ArrayNode bytes = o.putArray("bytes");
        byte[] b = id >= 0 && id < tok.vocabSize() ? tok.tokenBytes(id) : CompletionsController.text(tok, id).getBytes(StandardCharsets.UTF_8);
        for (byte x : b) bytes.add(x & 0xff);
        return o;
    }

    /** Engine-thread side: feeds the parser, stops when it is done. */
    static final class Handler implements Generations.TokenHandler {
        private final OutputParser parser;
        volatile int reasoningTokens;

        Handler(OutputParser parser) {
            this.parser = parser;
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
     * ({@link io.ds4j.grammar.ToolCallRecognizer}: an allowed tool, parameters of its schema, every value
     * valid, closed tags; one invoke when parallel_tool_calls is false). A schema outside the supported
     * subset falls back to forcing only the opening of the call (with more tools than the prefix can track,
     * only the block opening, and the name is the model's).
     */
    private io.ds4j.engine.TokenConstraint forcedToolCall(List<ToolFunction> tools, String toolChoice, ThinkingMode thinking,
                                                          boolean parallel) {
        List<ToolFunction> allowed = "required".equals(toolChoice) ? tools
                : tools.stream().filter(t -> t.name().equals(toolChoice)).toList();
        try {
            var grammar = io.ds4j.grammar.ToolCallRecognizer.of(allowed.stream()
                    .map(t -> new io.ds4j.grammar.ToolCallRecognizer.Tool(t.name(), t.parametersJson())).toList(),
                    parallel ? MAX_PARALLEL_CALLS : 1);
            return new io.ds4j.grammar.JsonConstraint(api.model.toolVocabulary(), grammar, thinking.thinking());
        } catch (IllegalArgumentException e) {
            // outside the supported schema subset: force the opening only
        }
        List<String> names = allowed.stream().map(ToolFunction::name).toList();
        List<String> alts = io.ds4j.chat.ChatRenderer.toolCallOpenings(names);
        if (alts.size() > io.ds4j.grammar.ForcedPrefix.MAX_ALTERNATIVES) alts = io.ds4j.chat.ChatRenderer.toolCallOpenings(List.of());
        return new io.ds4j.grammar.ForcedPrefix(api.model.toolVocabulary(), alts, thinking.thinking());
    }

    /**
     * tool_choice "auto": free text, but once the model opens a DSML block the rest is constrained like a
     * forced call over all the request's tools ({@link io.ds4j.grammar.TriggeredToolCall}), so a call it
     * decides to make always parses and validates, {@code strict} or not, and parallel_tool_calls false
     * allows one invoke. With a schema outside the supported subset (or more than 32 tools) the answer
     * stays unconstrained and the parser's half-call rule applies.
     */
    private io.ds4j.engine.TokenConstraint autoToolCall(List<ToolFunction> tools, ThinkingMode thinking, boolean parallel) {
        try {
            var grammar = io.ds4j.grammar.ToolCallRecognizer.of(tools.stream()
                    .map(t -> new io.ds4j.grammar.ToolCallRecognizer.Tool(t.name(), t.parametersJson())).toList(),
                    parallel ? MAX_PARALLEL_CALLS : 1);
            return new io.ds4j.grammar.TriggeredToolCall(api.model.toolVocabulary(), grammar, thinking.thinking());
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    /** The most invokes a constrained block may hold when parallel calls are allowed. */
    static final int MAX_PARALLEL_CALLS = 8;
}
