package io.ds4j.api;

import io.ds4j.chat.OutputEvent;
import io.ds4j.chat.ToolCall;
import io.ds4j.engine.GenerationResult;
import java.util.ArrayList;
import java.util.List;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The Anthropic Messages API: POST /v1/messages (streaming or not) and POST /v1/messages/count_tokens.
 * Requests become a {@link Conversation} ({@link MessagesRequest}) and run through the same
 * {@link ChatPipeline} as chat completions; the parser's events are written as Anthropic content blocks
 * (thinking, text, tool_use) and, streamed, as Anthropic's SSE events. Errors use Anthropic's shape
 * ({@link AnthropicErrors}).
 */
@RestController
public class MessagesController {
    /** The signature of thinking blocks: this server does not sign reasoning; clients only echo it back. */
    static final String SIGNATURE = "ds4j-unsigned";

    private final ApiSupport api;
    private final ChatPipeline pipeline;

    public MessagesController(ApiSupport api, ChatPipeline pipeline) {
        this.api = api;
        this.pipeline = pipeline;
    }

    @PostMapping("/v1/messages/count_tokens")
    public Mono<Void> countTokens(ServerWebExchange exchange) {
        return api.body(exchange).flatMap(body -> {
            Params p = Params.parse(body);
            var parsed = MessagesRequest.parse(p, api.props, true);
            api.model.checkModel(parsed.model());
            int[] prompt = pipeline.render(parsed.conversation());
            ObjectNode root = ApiSupport.object();
            root.put("input_tokens", prompt.length);
            return ApiSupport.json(exchange.getResponse(), root);
        });
    }

    @PostMapping("/v1/messages")
    public Mono<Void> messages(ServerWebExchange exchange) {
        return api.body(exchange).flatMap(body -> run(body, exchange.getResponse()));
    }

    private Mono<Void> run(String body, ServerHttpResponse response) {
        long arrival = System.nanoTime();
        Params p = Params.parse(body);
        var parsed = MessagesRequest.parse(p, api.props, false);
        api.model.checkModel(parsed.model());
        checkVocabulary(parsed.conversation());
        ChatPipeline.Prepared prepared = pipeline.prepare(parsed.conversation(), "messages", "messages");
        ChatPipeline.Handler handler = prepared.handler();
        String id = ApiSupport.newId("msg_");
        response.getHeaders().set("X-Request-Id", id);
        response.getHeaders().set("request-id", id);
        Generations.Started gen = pipeline.start(id, arrival, prepared);
        String modelId = api.model.id();
        String user = parsed.user();
        if (!parsed.stream()) {
            return gen.bind(gen.events().collectList().flatMap(list -> {
                ChatPipeline.Collected c = ChatPipeline.collect(list, handler);
                ObjectNode root = message(id, modelId);
                ArrayNode content = root.putArray("content");
                if (!c.reasoning().isEmpty()) {
                    content.addObject().put("type", "thinking").put("thinking", c.reasoning()).put("signature", SIGNATURE);
                }
                List<ObjectNode> uses = new ArrayList<>();
                for (ToolCall t : c.calls()) {
                    JsonNode input = argumentsObject(t.argumentsJson());
                    if (input == null) continue; // an unfinished call (max_tokens): Anthropic's input must be an object
                    uses.add(toolUse(t.id(), t.name()).set("input", input));
                }
                if (!c.content().isEmpty() || uses.isEmpty()) textBlock(content, c.content());
                uses.forEach(content::add);
                String stop = stopReason(c.finish(), c.matchedStop(), !uses.isEmpty());
                root.put("stop_reason", stop);
                if ("stop_sequence".equals(stop)) root.put("stop_sequence", c.matchedStop());
                else root.putNull("stop_sequence");
                root.set("usage", usage(c.result()));
                api.logRequest(id, "messages", user, "ok", c.finish(), c.result(), arrival);
                return ApiSupport.json(response, root);
            }).doOnError(t -> api.logRequest(id, "messages", user, ApiSupport.statusOf(t), null, null, arrival))
                    .doOnCancel(() -> api.logRequest(id, "messages", user, "cancelled", null, null, arrival)));
        }
        Stream s = new Stream(id, modelId, prepared.prompt().length);
        Flux<String> events = gen.events().concatMap(e -> Flux.fromIterable(switch (e) {
            case Generations.Event.KeepAlive k -> s.started ? List.of(Sse.event("ping", "{\"type\":\"ping\"}")) : List.of(Sse.KEEP_ALIVE);
            case Generations.Event.PromptDone pd -> s.start(pd.cachedTokens());
            case Generations.Event.Output(ChatPipeline.Step step) -> s.step(step.events());
            case Generations.Event.Output other -> List.<String>of();
            case Generations.Event.End end -> {
                List<String> out = s.end(end.result(), handler.matchedStop());
                api.logRequest(id, "messages", user, "ok", s.finish, end.result(), arrival);
                yield out;
            }
        })).onErrorResume(t -> {
            api.logRequest(id, "messages", user, ApiSupport.statusOf(t), null, null, arrival);
            return Flux.just(Sse.event("error", AnthropicErrors.body(OpenAiErrors.toApi(t)).toString()));
        }).doOnCancel(() -> api.logRequest(id, "messages", user, "cancelled", null, null, arrival));
        return gen.bind(ApiSupport.sse(response, events));
    }

    private void checkVocabulary(Conversation c) {
        var bias = c.sampling().logitBias();
        if (!bias.isEmpty() && bias.lastKey() >= api.model.vocabSize()) {
            throw ApiException.invalid("logit_bias", "token id " + bias.lastKey() + " in 'logit_bias' is outside the vocabulary ("
                    + api.model.vocabSize() + " tokens)");
        }
    }

    /** end_turn, max_tokens, stop_sequence or tool_use. */
    static String stopReason(String finish, String matchedStop, boolean calls) {
        if ("tool_calls".equals(finish) && calls) return "tool_use";
        if ("length".equals(finish)) return "max_tokens";
        if (matchedStop != null) return "stop_sequence";
        return "end_turn";
    }

    private static ObjectNode message(String id, String model) {
        ObjectNode root = ApiSupport.object();
        root.put("id", id);
        root.put("type", "message");
        root.put("role", "assistant");
        root.put("model", model);
        return root;
    }

    private static void textBlock(ArrayNode content, String text) {
        content.addObject().put("type", "text").put("text", text).putNull("citations");
    }

    private static ObjectNode toolUse(String id, String name) {
        ObjectNode b = ApiSupport.object();
        b.put("type", "tool_use");
        b.put("id", id);
        b.put("name", name);
        b.putObject("caller").put("type", "direct");
        return b;
    }

    /** The call's arguments as a JSON object, or null if they are not one (a call cut short). */
    static JsonNode argumentsObject(String json) {
        try {
            JsonNode n = Params.JSON.readTree(json);
            return n != null && n.isObject() ? n : null;
        } catch (JacksonException e) {
            return null;
        }
    }

    /**
     * Anthropic counts prompt tokens read from the cache apart from input_tokens: input_tokens +
     * cache_read_input_tokens is the whole prompt.
     */
    static ObjectNode usage(GenerationResult r) {
        ObjectNode u = ApiSupport.object();
        u.put("input_tokens", r.promptTokens() - r.cachedTokens());
        u.put("output_tokens", r.generatedTokens());
        u.put("cache_creation_input_tokens", 0);
        u.put("cache_read_input_tokens", r.cachedTokens());
        return u;
    }

    /** The SSE writer of one streamed message: content blocks open and close as the parser's events change kind. */
    static final class Stream {
        private final String id;
        private final String model;
        private final int promptTokens;
        boolean started;
        String stopReason;
        private int index = -1;
        private String open; // "thinking" | "text" | "tool_use" | null
        /** The parser's finish reason; after {@link #end} the client-facing one (stop, length, tool_calls), as logged. */
        String finish;
        private boolean anyToolUse;

        Stream(String id, String model, int promptTokens) {
            this.id = id;
            this.model = model;
            this.promptTokens = promptTokens;
        }

        /** message_start (once), with the prompt's usage as far as known. */
        List<String> start(int cachedTokens) {
            if (started) return List.of();
            started = true;
            ObjectNode m = message(id, model);
            m.putArray("content");
            m.putNull("stop_reason");
            m.putNull("stop_sequence");
            ObjectNode u = m.putObject("usage");
            u.put("input_tokens", promptTokens - cachedTokens);
            u.put("output_tokens", 0);
            u.put("cache_creation_input_tokens", 0);
            u.put("cache_read_input_tokens", cachedTokens);
            ObjectNode e = ApiSupport.object();
            e.put("type", "message_start");
            e.set("message", m);
            return List.of(Sse.event("message_start", e.toString()));
        }

        List<String> step(List<OutputEvent> events) {
            List<String> out = new ArrayList<>(start(0));
            for (OutputEvent ev : events) {
                switch (ev) {
                    case OutputEvent.ReasoningDelta d -> {
                        if (d.text().isEmpty()) continue;
                        if (!"thinking".equals(open)) {
                            ObjectNode b = ApiSupport.object().put("type", "thinking").put("thinking", "").put("signature", "");
                            openBlock("thinking", b, out);
                        }
                        delta(ApiSupport.object().put("type", "thinking_delta").put("thinking", d.text()), out);
                    }
                    case OutputEvent.ContentDelta d -> {
                        if (d.text().isEmpty()) continue;
                        if (!"text".equals(open)) {
                            openBlock("text", ApiSupport.object().put("type", "text").put("text", "").putNull("citations"), out);
                        }
                        delta(ApiSupport.object().put("type", "text_delta").put("text", d.text()), out);
                    }
                    case OutputEvent.ToolCallStart t -> {
                        ObjectNode b = toolUse(t.id(), t.name());
                        b.putObject("input");
                        openBlock("tool_use", b, out);
                        anyToolUse = true;
                    }
                    case OutputEvent.ToolCallArgumentsDelta d -> {
                        if (d.fragment().isEmpty()) continue;
                        delta(ApiSupport.object().put("type", "input_json_delta").put("partial_json", d.fragment()), out);
                    }
                    case OutputEvent.Finished f -> finish = f.finishReason();
                }
            }
            return out;
        }

        List<String> end(GenerationResult r, String matchedStop) {
            List<String> out = new ArrayList<>(start(r.cachedTokens()));
            if (index < 0) openBlock("text", ApiSupport.object().put("type", "text").put("text", "").putNull("citations"), out);
            closeBlock(out);
            finish = ChatPipeline.finishReason(finish, r);
            stopReason = stopReason(finish, matchedStop, anyToolUse);
            ObjectNode e = ApiSupport.object();
            e.put("type", "message_delta");
            ObjectNode d = e.putObject("delta");
            d.put("stop_reason", stopReason);
            if ("stop_sequence".equals(stopReason)) d.put("stop_sequence", matchedStop);
            else d.putNull("stop_sequence");
            e.set("usage", usage(r));
            out.add(Sse.event("message_delta", e.toString()));
            out.add(Sse.event("message_stop", "{\"type\":\"message_stop\"}"));
            return out;
        }

        private void openBlock(String kind, ObjectNode block, List<String> out) {
            closeBlock(out);
            index++;
            open = kind;
            ObjectNode e = ApiSupport.object();
            e.put("type", "content_block_start");
            e.put("index", index);
            e.set("content_block", block);
            out.add(Sse.event("content_block_start", e.toString()));
        }

        private void delta(ObjectNode delta, List<String> out) {
            ObjectNode e = ApiSupport.object();
            e.put("type", "content_block_delta");
            e.put("index", index);
            e.set("delta", delta);
            out.add(Sse.event("content_block_delta", e.toString()));
        }

        private void closeBlock(List<String> out) {
            if (open == null) return;
            if (open.equals("thinking")) delta(ApiSupport.object().put("type", "signature_delta").put("signature", SIGNATURE), out);
            ObjectNode e = ApiSupport.object();
            e.put("type", "content_block_stop");
            e.put("index", index);
            out.add(Sse.event("content_block_stop", e.toString()));
            open = null;
        }
    }
}
