package io.ds4j.api;

import io.ds4j.chat.ChatMessage;
import io.ds4j.chat.OutputEvent;
import io.ds4j.chat.ToolCall;
import io.ds4j.engine.GenerationResult;
import java.util.ArrayList;
import java.util.List;
import org.springframework.http.HttpStatus;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.web.bind.annotation.DeleteMapping;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The OpenAI Responses API: POST /v1/responses (streaming or not), GET and DELETE /v1/responses/{id}.
 * Requests become a {@link Conversation} ({@link ResponsesRequest}) and run through the same
 * {@link ChatPipeline} as chat completions; the parser's events become output items (reasoning, message,
 * function_call) and, streamed, the typed Responses events with their sequence numbers. Stored responses
 * ({@link ResponseStore}) let a request continue one with previous_response_id.
 */
@RestController
public class ResponsesController {
    private final ApiSupport api;
    private final ChatPipeline pipeline;
    private final ResponseStore store;

    public ResponsesController(ApiSupport api, ChatPipeline pipeline, ResponseStore store) {
        this.api = api;
        this.pipeline = pipeline;
        this.store = store;
    }

    @GetMapping("/v1/responses/{id}")
    public Mono<Void> retrieve(@PathVariable String id, ServerWebExchange exchange) {
        return Mono.defer(() -> ApiSupport.json(exchange.getResponse(),
                store.get(id).orElseThrow(() -> notFound(id)).response()));
    }

    @DeleteMapping("/v1/responses/{id}")
    public Mono<Void> delete(@PathVariable String id, ServerWebExchange exchange) {
        return Mono.defer(() -> {
            if (!store.remove(id)) throw notFound(id);
            ObjectNode root = ApiSupport.object();
            root.put("id", id);
            root.put("object", "response.deleted");
            root.put("deleted", true);
            return ApiSupport.json(exchange.getResponse(), root);
        });
    }

    private static ApiException notFound(String id) {
        return new ApiException(HttpStatus.NOT_FOUND, "invalid_request_error", "response_id", "response_not_found",
                "Response with id '" + id + "' not found.");
    }

    @PostMapping("/v1/responses")
    public Mono<Void> create(ServerWebExchange exchange) {
        return api.body(exchange).flatMap(body -> run(body, exchange.getResponse()));
    }

    private Mono<Void> run(String body, ServerHttpResponse response) {
        long arrival = System.nanoTime();
        Params p = Params.parse(body);
        var parsed = ResponsesRequest.parse(p, api.props, store);
        api.model.checkModel(parsed.model());
        var bias = parsed.conversation().sampling().logitBias();
        if (!bias.isEmpty() && bias.lastKey() >= api.model.vocabSize()) {
            throw ApiException.invalid("logit_bias", "token id " + bias.lastKey() + " in 'logit_bias' is outside the vocabulary ("
                    + api.model.vocabSize() + " tokens)");
        }
        ChatPipeline.Prepared prepared = pipeline.prepare(parsed.conversation(), "input", "text.format");
        ChatPipeline.Handler handler = prepared.handler();
        String id = ApiSupport.newId("resp_");
        response.getHeaders().set("X-Request-Id", id);
        Generations.Started gen = pipeline.start(id, arrival, prepared);
        Shape shape = new Shape(id, System.currentTimeMillis() / 1000, api.model.id(), parsed);
        String user = parsed.user();
        if (!parsed.stream()) {
            return gen.bind(gen.events().collectList().flatMap(list -> {
                ChatPipeline.Collected c = ChatPipeline.collect(list, handler);
                List<ObjectNode> items = new ArrayList<>();
                if (!c.reasoning().isEmpty()) items.add(reasoningItem(ApiSupport.newId("rs_"), c.reasoning(), "completed"));
                if (!c.content().isEmpty() || c.calls().isEmpty()) {
                    items.add(messageItem(ApiSupport.newId("msg_"), c.content(), "completed"));
                }
                for (ToolCall t : c.calls()) {
                    items.add(callItem(ApiSupport.newId("fc_"), t.id(), t.name(), t.argumentsJson(), "completed"));
                }
                // cut by max_output_tokens: the item that was being written is the incomplete one
                if ("length".equals(c.finish())) items.getLast().put("status", "incomplete");
                ObjectNode root = shape.finished(items, c.finish(), c.result(), handler.reasoningTokens);
                keep(parsed, root, c.content(), c.reasoning(), c.calls());
                api.logRequest(id, "responses", user, "ok", c.finish(), c.result(), arrival);
                return ApiSupport.json(response, root);
            }).doOnError(t -> api.logRequest(id, "responses", user, ApiSupport.statusOf(t), null, null, arrival))
                    .doOnCancel(() -> api.logRequest(id, "responses", user, "cancelled", null, null, arrival)));
        }
        Stream s = new Stream(shape);
        Flux<String> events = gen.events().concatMap(e -> Flux.fromIterable(switch (e) {
            case Generations.Event.KeepAlive k -> List.of(Sse.KEEP_ALIVE);
            case Generations.Event.PromptDone pd -> List.<String>of();
            case Generations.Event.Output(ChatPipeline.Step step) -> s.step(step.events());
            case Generations.Event.Output other -> List.<String>of();
            case Generations.Event.End end -> {
                List<String> out = s.end(end.result(), handler.reasoningTokens);
                keep(parsed, s.finalResponse, s.content.toString(), s.reasoning.toString(), s.calls);
                api.logRequest(id, "responses", user, "ok", s.finish, end.result(), arrival);
                yield out;
            }
        })).onErrorResume(t -> {
            api.logRequest(id, "responses", user, ApiSupport.statusOf(t), null, null, arrival);
            ApiException a = OpenAiErrors.toApi(t);
            ObjectNode err = ApiSupport.object();
            err.put("type", "error");
            if (a.code() == null) err.putNull("code");
            else err.put("code", a.code());
            err.put("message", a.getMessage());
            if (a.param() == null) err.putNull("param");
            else err.put("param", a.param());
            return Flux.just(s.event(err));
        }).doOnCancel(() -> api.logRequest(id, "responses", user, "cancelled", null, null, arrival));
        return gen.bind(ApiSupport.sse(response, Flux.concat(Flux.fromIterable(s.header()), events)));
    }

    /** Stores the response and the conversation it ends (store: true). */
    private void keep(ResponsesRequest.Parsed parsed, ObjectNode root, String content, String reasoning, List<ToolCall> calls) {
        if (!parsed.store()) return;
        List<ChatMessage> conversation = new ArrayList<>(parsed.history());
        conversation.add(ChatMessage.assistant(content, reasoning.isEmpty() ? null : reasoning, calls.isEmpty() ? null : calls));
        store.put(root.get("id").stringValue(), root, conversation);
    }

    static ObjectNode reasoningItem(String id, String text, String status) {
        ObjectNode item = ApiSupport.object();
        item.put("id", id);
        item.put("type", "reasoning");
        item.putArray("summary");
        item.putArray("content").addObject().put("type", "reasoning_text").put("text", text);
        item.put("status", status);
        return item;
    }

    static ObjectNode outputText(String text) {
        ObjectNode part = ApiSupport.object();
        part.put("type", "output_text");
        part.put("text", text);
        part.putArray("annotations");
        part.putArray("logprobs");
        return part;
    }

    static ObjectNode messageItem(String id, String text, String status) {
        ObjectNode item = ApiSupport.object();
        item.put("id", id);
        item.put("type", "message");
        item.put("status", status);
        item.put("role", "assistant");
        ArrayNode content = item.putArray("content");
        if (text != null) content.add(outputText(text));
        return item;
    }

    static ObjectNode callItem(String id, String callId, String name, String arguments, String status) {
        ObjectNode item = ApiSupport.object();
        item.put("id", id);
        item.put("type", "function_call");
        item.put("status", status);
        item.put("call_id", callId);
        item.put("name", name);
        item.put("arguments", arguments);
        return item;
    }

    /** The response object's fixed fields (id, times, the echoed request) and its final form. */
    static final class Shape {
        final String id;
        final long createdAt;
        final String model;
        final ResponsesRequest.Parsed parsed;

        Shape(String id, long createdAt, String model, ResponsesRequest.Parsed parsed) {
            this.id = id;
            this.createdAt = createdAt;
            this.model = model;
            this.parsed = parsed;
        }

        ObjectNode base(String status) {
            ObjectNode root = ApiSupport.object();
            root.put("id", id);
            root.put("object", "response");
            root.put("created_at", createdAt);
            root.put("status", status);
            root.put("background", false);
            root.putNull("error");
            root.putNull("incomplete_details");
            root.set("instructions", parsed.echo().get("instructions"));
            root.set("max_output_tokens", parsed.echo().get("max_output_tokens"));
            root.put("model", model);
            root.putArray("output");
            root.set("parallel_tool_calls", parsed.echo().get("parallel_tool_calls"));
            if (parsed.previousResponseId() == null) root.putNull("previous_response_id");
            else root.put("previous_response_id", parsed.previousResponseId());
            root.set("reasoning", parsed.echo().get("reasoning"));
            root.put("store", parsed.store());
            root.set("temperature", parsed.echo().get("temperature"));
            root.set("text", parsed.echo().get("text"));
            root.set("tool_choice", parsed.echo().get("tool_choice"));
            root.set("tools", parsed.echo().get("tools"));
            root.set("top_p", parsed.echo().get("top_p"));
            root.put("truncation", "disabled");
            root.putNull("usage");
            root.set("user", parsed.echo().get("user"));
            root.set("metadata", parsed.echo().get("metadata"));
            return root;
        }

        ObjectNode finished(List<ObjectNode> items, String finish, GenerationResult r, int reasoningTokens) {
            boolean incomplete = "length".equals(finish);
            ObjectNode root = base(incomplete ? "incomplete" : "completed");
            if (incomplete) root.putObject("incomplete_details").put("reason", "max_output_tokens");
            ArrayNode output = root.putArray("output");
            items.forEach(output::add);
            ObjectNode u = root.putObject("usage");
            u.put("input_tokens", r.promptTokens());
            u.putObject("input_tokens_details").put("cached_tokens", r.cachedTokens());
            u.put("output_tokens", r.generatedTokens());
            u.putObject("output_tokens_details").put("reasoning_tokens", reasoningTokens);
            u.put("total_tokens", r.promptTokens() + r.generatedTokens());
            return root;
        }
    }

    /** The typed event stream of one response: items open and close as the parser's events change kind. */
    static final class Stream {
        private final Shape shape;
        private int sequence;
        private final List<ObjectNode> items = new ArrayList<>();
        private ObjectNode current; // the open item (its final form is built on close)
        private String kind; // "reasoning" | "message" | "function_call" | null
        private boolean answered; // a message or function_call item was opened
        private final StringBuilder text = new StringBuilder(); // the open item's text / arguments
        final StringBuilder content = new StringBuilder();
        final StringBuilder reasoning = new StringBuilder();
        final List<ToolCall> calls = new ArrayList<>();
        String finish;
        ObjectNode finalResponse;

        Stream(Shape shape) {
            this.shape = shape;
        }

        String event(ObjectNode e) {
            e.put("sequence_number", sequence++);
            return Sse.event(e.get("type").stringValue(), e.toString());
        }

        private ObjectNode typed(String type) {
            ObjectNode e = ApiSupport.object();
            e.put("type", type);
            return e;
        }

        List<String> header() {
            List<String> out = new ArrayList<>();
            ObjectNode created = typed("response.created");
            created.set("response", shape.base("in_progress"));
            out.add(event(created));
            ObjectNode progress = typed("response.in_progress");
            progress.set("response", shape.base("in_progress"));
            out.add(event(progress));
            return out;
        }

        private int outputIndex() {
            return items.size();
        }

        private void open(String k, ObjectNode item, List<String> out) {
            close(out, "completed");
            if (!k.equals("reasoning")) answered = true;
            kind = k;
            current = item;
            text.setLength(0);
            ObjectNode e = typed("response.output_item.added");
            e.put("output_index", outputIndex());
            e.set("item", item);
            out.add(event(e));
            ObjectNode part = switch (k) {
                case "reasoning" -> ApiSupport.object().put("type", "reasoning_text").put("text", "");
                case "message" -> outputText("");
                default -> null;
            };
            if (part != null) {
                ObjectNode pa = typed("response.content_part.added");
                pa.put("item_id", item.get("id").stringValue());
                pa.put("output_index", outputIndex());
                pa.put("content_index", 0);
                pa.set("part", part);
                out.add(event(pa));
            }
        }

        private ObjectNode itemEvent(String type) {
            ObjectNode e = typed(type);
            e.put("item_id", current.get("id").stringValue());
            e.put("output_index", outputIndex());
            return e;
        }

        private void close(List<String> out, String status) {
            if (current == null) return;
            String itemId = current.get("id").stringValue();
            ObjectNode done;
            switch (kind) {
                case "reasoning" -> {
                    ObjectNode d = itemEvent("response.reasoning_text.done").put("content_index", 0).put("text", text.toString());
                    out.add(event(d));
                    ObjectNode pd = itemEvent("response.content_part.done").put("content_index", 0);
                    pd.set("part", ApiSupport.object().put("type", "reasoning_text").put("text", text.toString()));
                    out.add(event(pd));
                    done = reasoningItem(itemId, text.toString(), status);
                }
                case "message" -> {
                    ObjectNode d = itemEvent("response.output_text.done").put("content_index", 0).put("text", text.toString());
                    d.putArray("logprobs");
                    out.add(event(d));
                    ObjectNode pd = itemEvent("response.content_part.done").put("content_index", 0);
                    pd.set("part", outputText(text.toString()));
                    out.add(event(pd));
                    done = messageItem(itemId, text.toString(), status);
                }
                default -> {
                    String name = current.get("name").stringValue();
                    ObjectNode d = itemEvent("response.function_call_arguments.done").put("name", name)
                            .put("arguments", text.toString());
                    out.add(event(d));
                    done = callItem(itemId, current.get("call_id").stringValue(), name, text.toString(), status);
                }
            }
            ObjectNode e = typed("response.output_item.done");
            e.put("output_index", outputIndex());
            e.set("item", done);
            out.add(event(e));
            items.add(done);
            current = null;
            kind = null;
        }

        List<String> step(List<OutputEvent> events) {
            List<String> out = new ArrayList<>();
            for (OutputEvent ev : events) {
                switch (ev) {
                    case OutputEvent.ReasoningDelta d -> {
                        if (d.text().isEmpty()) continue;
                        if (!"reasoning".equals(kind)) {
                            ObjectNode item = reasoningItem(ApiSupport.newId("rs_"), "", "in_progress");
                            item.putArray("content");
                            open("reasoning", item, out);
                        }
                        text.append(d.text());
                        reasoning.append(d.text());
                        out.add(event(itemEvent("response.reasoning_text.delta").put("content_index", 0).put("delta", d.text())));
                    }
                    case OutputEvent.ContentDelta d -> {
                        if (d.text().isEmpty()) continue;
                        if (!"message".equals(kind)) open("message", messageItem(ApiSupport.newId("msg_"), null, "in_progress"), out);
                        text.append(d.text());
                        content.append(d.text());
                        ObjectNode e = itemEvent("response.output_text.delta").put("content_index", 0).put("delta", d.text());
                        e.putArray("logprobs");
                        out.add(event(e));
                    }
                    case OutputEvent.ToolCallStart t -> {
                        open("function_call", callItem(ApiSupport.newId("fc_"), t.id(), t.name(), "", "in_progress"), out);
                        calls.add(new ToolCall(t.id(), t.name(), ""));
                    }
                    case OutputEvent.ToolCallArgumentsDelta d -> {
                        if (d.fragment().isEmpty()) continue;
                        text.append(d.fragment());
                        ToolCall last = calls.getLast();
                        calls.set(calls.size() - 1, new ToolCall(last.id(), last.name(), last.argumentsJson() + d.fragment()));
                        out.add(event(itemEvent("response.function_call_arguments.delta").put("delta", d.fragment())));
                    }
                    case OutputEvent.Finished f -> finish = f.finishReason();
                }
            }
            return out;
        }

        List<String> end(GenerationResult r, int reasoningTokens) {
            List<String> out = new ArrayList<>();
            finish = ChatPipeline.finishReason(finish, r);
            boolean incomplete = "length".equals(finish);
            if (!answered) {
                // only reasoning (or nothing): the answer is an empty message, as in the non-streamed response
                close(out, "completed");
                open("message", messageItem(ApiSupport.newId("msg_"), null, "in_progress"), out);
            }
            close(out, incomplete ? "incomplete" : "completed");
            finalResponse = shape.finished(items, finish, r, reasoningTokens);
            ObjectNode e = typed(incomplete ? "response.incomplete" : "response.completed");
            e.set("response", finalResponse);
            out.add(event(e));
            return out;
        }
    }
}
