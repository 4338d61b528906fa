package io.ds4j.api;

import io.ds4j.chat.ChatMessage;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.chat.ToolCall;
import io.ds4j.chat.ToolFunction;
import io.ds4j.config.Ds4jProperties;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * Parses an OpenAI Responses body (POST /v1/responses) into a {@link Conversation}: {@code instructions}
 * become the system message, input message items chat messages, a run of {@code reasoning},
 * assistant {@code message} and {@code function_call} items one assistant turn (reasoning, content, tool
 * calls), {@code function_call_output} items tool messages; {@code previous_response_id} puts the stored
 * conversation first. Every failure is a 400 naming the field.
 */
final class ResponsesRequest {
    private ResponsesRequest() {}

    /**
     * A parsed request. {@code history} is the conversation without the instructions (what a later
     * previous_response_id continues), {@code echo} the request fields the response object repeats.
     */
    record Parsed(Conversation conversation, List<ChatMessage> history, String model, boolean stream, boolean store,
                  String previousResponseId, String user, ObjectNode echo) {}

    static Parsed parse(Params p, Ds4jProperties props, ResponseStore store) {
        String model = p.string("model");
        for (String f : new String[] {"background", "conversation", "prompt"}) {
            JsonNode n = p.get(f);
            if (n != null && !(n.isBoolean() && !n.booleanValue())) {
                throw ApiException.invalid(f, "unsupported_value", "'" + f + "' is not supported by this server");
            }
        }
        Integer maxTokens = p.integer("max_output_tokens", 1, Integer.MAX_VALUE);
        if (maxTokens != null && maxTokens > props.server().maxOutputTokens()) {
            throw ApiException.invalid("max_output_tokens", "'max_output_tokens' may be at most "
                    + props.server().maxOutputTokens() + " (ds4.server.max-output-tokens; got " + maxTokens + ")");
        }
        String instructions = p.string("instructions");
        String previous = p.string("previous_response_id");
        List<ChatMessage> history = new ArrayList<>();
        if (previous != null) {
            var entry = store.get(previous).orElseThrow(() -> ApiException.invalid("previous_response_id",
                    "previous_response_not_found", "Previous response with id '" + previous + "' not found."));
            history.addAll(entry.conversation());
        }
        JsonNode input = p.get("input");
        if (input == null) throw ApiException.invalid("input", "'input' is required");
        history.addAll(input(input));
        int maxMessages = props.server().maxMessages();
        if (history.size() > maxMessages) {
            throw ApiException.invalid("input", "too_many_messages", "the conversation may hold at most " + maxMessages
                    + " messages (got " + history.size() + "; ds4.server.max-messages)");
        }
        List<ChatMessage> messages = new ArrayList<>();
        if (instructions != null) messages.add(ChatMessage.system(instructions));
        messages.addAll(history);

        ObjectNode echo = JsonNodeFactory.instance.objectNode();
        List<ToolFunction> tools = tools(p.get("tools"), echo.putArray("tools"));
        String toolChoice = toolChoice(p.get("tool_choice"), tools);
        echo.set("tool_choice", p.get("tool_choice") == null ? echo.stringNode("auto") : p.get("tool_choice"));
        boolean parallel = p.bool("parallel_tool_calls", true);
        echo.put("parallel_tool_calls", parallel);
        ThinkingMode thinking = null;
        ObjectNode reasoningEcho = echo.putObject("reasoning");
        reasoningEcho.putNull("effort");
        reasoningEcho.putNull("summary");
        JsonNode r = p.get("reasoning");
        if (r != null) {
            if (!r.isObject()) throw ApiException.invalid("reasoning", "'reasoning' must be an object");
            JsonNode effort = r.get("effort");
            if (effort != null && !effort.isNull()) {
                if (!effort.isString()) throw ApiException.invalid("reasoning.effort", "'reasoning.effort' must be a string");
                thinking = effort(effort.stringValue());
                reasoningEcho.put("effort", effort.stringValue());
            }
        }
        JsonNode text = p.get("text");
        JsonNode format = null;
        if (text != null) {
            if (!text.isObject()) throw ApiException.invalid("text", "'text' must be an object");
            format = text.get("format");
        }
        JsonCheck.ResponseFormat rf = JsonCheck.textFormat(format, "text.format");
        echo.putObject("text").set("format", format == null || format.isNull()
                ? JsonNodeFactory.instance.objectNode().put("type", "text") : format);
        var sampling = RequestOptions.sampling(p, props);
        echo.put("temperature", sampling.temperature());
        echo.put("top_p", p.get("top_p") == null ? sampling.topP() : p.get("top_p").doubleValue());
        if (maxTokens == null) echo.putNull("max_output_tokens");
        else echo.put("max_output_tokens", maxTokens);
        if (instructions == null) echo.putNull("instructions");
        else echo.put("instructions", instructions);
        String user = p.string("user");
        if (user == null) echo.putNull("user");
        else echo.put("user", user);
        JsonNode metadata = p.get("metadata");
        if (metadata != null && !metadata.isObject()) throw ApiException.invalid("metadata", "'metadata' must be an object");
        echo.set("metadata", metadata == null ? JsonNodeFactory.instance.objectNode() : metadata);
        boolean stream = p.bool("stream", false);
        boolean keep = p.bool("store", true);
        var conversation = new Conversation(messages, tools, toolChoice, thinking, rf, parallel, List.of(), sampling,
                maxTokens, -1);
        return new Parsed(conversation, history, model, stream, keep, previous, user, echo);
    }

    /** none / minimal → off; low / medium / high → high; xhigh / max → maximum effort (as chat's reasoning_effort). */
    static ThinkingMode effort(String e) {
        return switch (e.toLowerCase(Locale.ROOT)) {
            case "none", "minimal" -> ThinkingMode.OFF;
            case "low", "medium", "high" -> ThinkingMode.HIGH;
            case "xhigh", "max" -> ThinkingMode.MAX;
            default -> throw ApiException.invalid("reasoning.effort",
                    "'reasoning.effort' must be none, minimal, low, medium, high, xhigh or max");
        };
    }

    /** A string (one user message) or an array of items. */
    static List<ChatMessage> input(JsonNode n) {
        List<ChatMessage> out = new ArrayList<>();
        if (n.isString()) {
            out.add(ChatMessage.user(n.stringValue()));
            return out;
        }
        if (!n.isArray()) throw ApiException.invalid("input", "'input' must be a string or an array of items");
        // the assistant turn being assembled from consecutive reasoning / assistant message / function_call items
        StringBuilder content = null;
        StringBuilder reasoning = null;
        List<ToolCall> calls = null;
        for (int i = 0; i < n.size(); i++) {
            String at = "input[" + i + "]";
            JsonNode item = n.get(i);
            if (!item.isObject()) throw ApiException.invalid(at, "'" + at + "' must be an object");
            String type = item.path("type").asString(item.has("role") ? "message" : "");
            String role = item.path("role").asString("");
            boolean assistantSide = type.equals("reasoning") || type.equals("function_call")
                    || (type.equals("message") && role.equals("assistant"));
            if (!assistantSide && (content != null || reasoning != null || calls != null)) {
                out.add(ChatMessage.assistant(content == null ? "" : content.toString(),
                        reasoning == null ? null : reasoning.toString(), calls));
                content = null;
                reasoning = null;
                calls = null;
            }
            switch (type) {
                case "message" -> {
                    if (!List.of("user", "assistant", "system", "developer").contains(role)) {
                        throw ApiException.invalid(at + ".role", "'" + at + ".role' must be user, assistant, system or developer");
                    }
                    String text = content(item.get("content"), at + ".content");
                    if (role.equals("assistant")) {
                        if (content == null) content = new StringBuilder();
                        content.append(text);
                    } else {
                        out.add(new ChatMessage(role, text, null, null, null, null));
                    }
                }
                case "reasoning" -> {
                    JsonNode c = item.get("content");
                    if (c != null && !c.isNull()) {
                        if (!c.isArray()) throw ApiException.invalid(at + ".content", "reasoning content must be an array");
                        if (reasoning == null) reasoning = new StringBuilder();
                        for (JsonNode part : c) {
                            JsonNode t = part.get("text");
                            if (t == null || !t.isString()) {
                                throw ApiException.invalid(at + ".content", "reasoning content parts need a 'text' string");
                            }
                            reasoning.append(t.stringValue());
                        }
                    }
                }
                case "function_call" -> {
                    String callId = string(item, "call_id", at);
                    String name = string(item, "name", at);
                    JsonNode args = item.get("arguments");
                    if (args == null || !args.isString()) {
                        throw ApiException.invalid(at + ".arguments", "'" + at + ".arguments' must be a JSON string");
                    }
                    if (calls == null) calls = new ArrayList<>();
                    calls.add(new ToolCall(callId, name, args.stringValue()));
                }
                case "function_call_output" -> {
                    String callId = string(item, "call_id", at);
                    JsonNode o = item.get("output");
                    String output;
                    if (o != null && o.isString()) output = o.stringValue();
                    else if (o != null && o.isArray()) output = content(o, at + ".output");
                    else throw ApiException.invalid(at + ".output", "'" + at + ".output' must be a string");
                    out.add(ChatMessage.tool(callId, output));
                }
                default -> throw ApiException.invalid(at + ".type", "unsupported_value", "input items of type '" + type
                        + "' are not supported (message, reasoning, function_call, function_call_output)");
            }
        }
        if (content != null || reasoning != null || calls != null) {
            out.add(ChatMessage.assistant(content == null ? "" : content.toString(),
                    reasoning == null ? null : reasoning.toString(), calls));
        }
        if (out.isEmpty()) throw ApiException.invalid("input", "'input' holds no message");
        return out;
    }

    private static String string(JsonNode item, String field, String at) {
        JsonNode v = item.get(field);
        if (v == null || !v.isString() || v.stringValue().isEmpty()) {
            throw ApiException.invalid(at + "." + field, "'" + at + "." + field + "' must be a non-empty string");
        }
        return v.stringValue();
    }

    /** A string or an array of input_text / output_text parts (joined without separator). */
    static String content(JsonNode c, String at) {
        if (c == null || c.isNull()) throw ApiException.invalid(at, "'" + at + "' is required");
        if (c.isString()) return c.stringValue();
        if (!c.isArray()) throw ApiException.invalid(at, "'" + at + "' must be a string or an array of content parts");
        StringBuilder sb = new StringBuilder();
        for (int k = 0; k < c.size(); k++) {
            JsonNode part = c.get(k);
            String type = part.path("type").asString("");
            if (!type.equals("input_text") && !type.equals("output_text") && !type.equals("text")) {
                throw ApiException.invalid(at + "[" + k + "]", "unsupported_content", "content parts of type '" + type
                        + "' are not supported (input_text, output_text)");
            }
            JsonNode t = part.get("text");
            if (t == null || !t.isString()) throw ApiException.invalid(at + "[" + k + "].text", "a text part needs a 'text' string");
            sb.append(t.stringValue());
        }
        return sb.toString();
    }

    /** Function tools ({"type":"function","name",...,"parameters",...,"strict"}); echoed normalised into {@code echo}. */
    static List<ToolFunction> tools(JsonNode n, ArrayNode echo) {
        List<ToolFunction> out = new ArrayList<>();
        ChatRequest.eachTool(n, (at, t) -> {
            if (!t.isObject()) throw ApiException.invalid(at, "'" + at + "' must be an object");
            String type = t.path("type").asString("");
            if (!type.equals("function")) {
                throw ApiException.invalid(at + ".type", "unsupported_value", "tools of type '" + type
                        + "' are not supported (only 'function')");
            }
            String name = ChatRequest.toolName(t.get("name"), at + ".name");
            JsonNode params = t.get("parameters");
            if (params != null && !params.isNull() && !params.isObject()) {
                throw ApiException.invalid(at + ".parameters", "'parameters' must be a JSON Schema object");
            }
            String description = ChatRequest.str(t, "description", at);
            JsonNode strict = t.get("strict");
            if (strict != null && !strict.isNull() && !strict.isBoolean()) throw ApiException.invalid(at + ".strict", "'strict' must be a boolean");
            boolean noParams = params == null || params.isNull();
            out.add(new ToolFunction(name, description, noParams ? null : params.toString()));
            ObjectNode e = echo.addObject();
            e.put("type", "function");
            e.put("name", name);
            if (description == null) e.putNull("description");
            else e.put("description", description);
            if (noParams) e.putNull("parameters");
            else e.set("parameters", params);
            if (strict == null || strict.isNull()) e.putNull("strict");
            else e.put("strict", strict.booleanValue());
        });
        return out;
    }

    /** "auto" | "none" | "required" | {"type":"function","name":...}. */
    static String toolChoice(JsonNode n, List<ToolFunction> tools) {
        if (n == null) return null;
        if (n.isString()) return ChatRequest.toolChoiceMode(n.stringValue(), tools, "{\"type\":\"function\",\"name\":...}");
        JsonNode name = n.get("name");
        if (!n.isObject() || !"function".equals(n.path("type").asString("")) || name == null || !name.isString()) {
            throw ApiException.invalid("tool_choice", "unsupported_value",
                    "'tool_choice' must be auto, none, required or {\"type\":\"function\",\"name\":...}");
        }
        return ChatRequest.namedTool(name.stringValue(), tools, "tool_choice");
    }
}
