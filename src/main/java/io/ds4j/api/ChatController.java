package io.ds4j.api;

import io.ds4j.chat.ChatMessage;
import io.ds4j.chat.OutputEvent;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.chat.ToolCall;
import io.ds4j.chat.ToolFunction;
import io.ds4j.config.Ds4jProperties.ReasoningField;
import io.ds4j.engine.Ds4jNative;
import io.ds4j.engine.GenerationRequest;
import io.ds4j.engine.GenerationResult;
import io.ds4j.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
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
    private final ChatPipeline pipeline;

    public ChatController(ApiSupport api, ChatPipeline pipeline) {
        this.api = api;
        this.pipeline = pipeline;
    }

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
        var conversation = new Conversation(messages, tools, toolChoice, ChatRequest.thinking(p), JsonCheck.responseFormat(p),
                ChatRequest.parallelToolCalls(p), o.stop(), o.sampling(), o.maxTokens(), o.logprobs() ? o.topLogprobs() : -1);
        ChatPipeline.Prepared prepared = pipeline.prepare(conversation, "messages", "response_format");
        ThinkingMode thinking = prepared.thinking();
        ChatPipeline.Handler handler = prepared.handler();
        String id = ApiSupport.newId("chatcmpl-");
        response.getHeaders().set("X-Request-Id", id);
        Generations.Started gen = pipeline.start(id, arrival, prepared);
        Flux<Generations.Event> events = gen.events();
        String modelId = api.model.id();
        long created = System.currentTimeMillis() / 1000;
        ReasoningField rf = api.props.server().reasoningField();
        if (!o.stream()) {
            return gen.bind(events.collectList().flatMap(list -> {
                ChatPipeline.Collected c = ChatPipeline.collect(list, handler);
                String finish = c.finish();
                GenerationResult r = c.result();
                ArrayNode lps = ApiSupport.object().arrayNode();
                if (o.logprobs()) for (var s : c.samples()) lps.add(logprob(tok, s));
                ObjectNode root = base(id, created, modelId, "chat.completion");
                ObjectNode choice = root.putArray("choices").addObject();
                choice.put("index", 0);
                ObjectNode msg = choice.putObject("message");
                msg.put("role", "assistant");
                if (c.content().isEmpty() && !c.calls().isEmpty()) msg.putNull("content");
                else msg.put("content", c.content());
                if (thinking.thinking()) {
                    if (rf.content()) msg.put("reasoning_content", c.reasoning());
                    if (rf.plain()) msg.put("reasoning", c.reasoning());
                }
                if (!c.calls().isEmpty()) {
                    ArrayNode tc = msg.putArray("tool_calls");
                    for (ToolCall t : c.calls()) {
                        ObjectNode call = tc.addObject();
                        call.put("id", t.id());
                        call.put("type", "function");
                        call.putObject("function").put("name", t.name()).put("arguments", t.argumentsJson());
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
            case Generations.Event.Output(ChatPipeline.Step step) -> {
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
                String finish = ChatPipeline.finishReason(finishSeen[0], r);
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
}
