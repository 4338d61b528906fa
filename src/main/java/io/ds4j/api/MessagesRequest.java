package io.ds4j.api;

import io.ds4j.chat.ChatMessage;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.chat.ToolCall;
import io.ds4j.chat.ToolFunction;
import io.ds4j.config.Ds4jProperties;
import java.util.ArrayList;
import java.util.List;
import tools.jackson.databind.JsonNode;

/**
 * Parses an Anthropic Messages body (POST /v1/messages and /v1/messages/count_tokens) into a
 * {@link Conversation}: {@code system} becomes a system message, {@code tool_use} blocks assistant tool
 * calls, {@code tool_result} blocks tool messages (before the text of the same user turn), {@code thinking}
 * blocks the assistant's reasoning; tools, tool_choice, thinking, stop_sequences and the sampling fields
 * map to their chat-completions equivalents. Every failure is a 400 naming the field.
 */
final class MessagesRequest {
    /** thinking.budget_tokens from which the maximum reasoning effort is used (below: high). */
    static final int MAX_EFFORT_BUDGET = 16384;

    private MessagesRequest() {}

    /** A parsed request: the conversation, and the fields only the endpoint needs. */
    record Parsed(Conversation conversation, String model, boolean stream, String user) {}

    static Parsed parse(Params p, Ds4jProperties props, boolean countOnly) {
        String model = p.string("model");
        Integer maxTokens = null;
        if (!countOnly) {
            maxTokens = p.integer("max_tokens", 1, Integer.MAX_VALUE);
            if (maxTokens == null) throw ApiException.invalid("max_tokens", "'max_tokens' is required");
            if (maxTokens > props.server().maxOutputTokens()) {
                throw ApiException.invalid("max_tokens", "the output limit is " + props.server().maxOutputTokens()
                        + " tokens (got " + maxTokens + ")");
            }
        }
        List<ChatMessage> messages = new ArrayList<>();
        String system = system(p.get("system"));
        if (system != null) messages.add(ChatMessage.system(system));
        messages.addAll(messages(p.get("messages"), props.server().maxMessages()));
        List<ToolFunction> tools = tools(p.get("tools"));
        JsonNode tc = p.get("tool_choice");
        String toolChoice = toolChoice(tc, tools);
        boolean parallel = true;
        if (tc != null && tc.has("disable_parallel_tool_use")) {
            JsonNode d = tc.get("disable_parallel_tool_use");
            if (!d.isBoolean()) throw ApiException.invalid("tool_choice.disable_parallel_tool_use", "must be a boolean");
            parallel = !d.booleanValue();
        }
        ThinkingMode thinking = thinking(p.get("thinking"), maxTokens);
        List<String> stop = stopSequences(p.get("stop_sequences"));
        var sampling = RequestOptions.sampling(p, props);
        boolean stream = !countOnly && p.bool("stream", false);
        String user = null;
        JsonNode meta = p.get("metadata");
        if (meta != null) {
            if (!meta.isObject()) throw ApiException.invalid("metadata", "'metadata' must be an object");
            JsonNode u = meta.get("user_id");
            if (u != null && !u.isNull()) {
                if (!u.isString()) throw ApiException.invalid("metadata.user_id", "'metadata.user_id' must be a string");
                user = u.stringValue();
            }
        }
        var conversation = new Conversation(messages, tools, toolChoice, thinking, JsonCheck.ResponseFormat.TEXT, parallel,
                stop, sampling, maxTokens, -1);
        return new Parsed(conversation, model, stream, user);
    }

    /** A string or an array of text blocks (joined without separator, as chat text parts are). */
    static String system(JsonNode n) {
        if (n == null) return null;
        if (n.isString()) return n.stringValue();
        if (!n.isArray()) throw ApiException.invalid("system", "'system' must be a string or an array of text blocks");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n.size(); i++) sb.append(text(n.get(i), "system[" + i + "]"));
        return sb.toString();
    }

    private static String text(JsonNode block, String at) {
        if (!block.isObject() || !"text".equals(block.path("type").asString(""))) {
            throw ApiException.invalid(at, "unsupported_content", "'" + at + "' must be a text block {\"type\":\"text\",\"text\":...}");
        }
        JsonNode t = block.get("text");
        if (t == null || !t.isString()) throw ApiException.invalid(at + ".text", "a text block needs a 'text' string");
        return t.stringValue();
    }

    static List<ChatMessage> messages(JsonNode n, int maxMessages) {
        ChatRequest.messageArray(n, maxMessages);
        List<ChatMessage> out = new ArrayList<>();
        for (int i = 0; i < n.size(); i++) {
            String at = "messages[" + i + "]";
            JsonNode m = n.get(i);
            if (!m.isObject()) throw ApiException.invalid(at, "'" + at + "' must be an object");
            JsonNode roleNode = m.get("role");
            String role = roleNode != null && roleNode.isString() ? roleNode.stringValue() : null;
            if (!"user".equals(role) && !"assistant".equals(role)) {
                throw ApiException.invalid(at + ".role", "'" + at + ".role' must be 'user' or 'assistant'");
            }
            JsonNode content = m.get("content");
            if (content == null || content.isNull()) throw ApiException.invalid(at + ".content", "'" + at + ".content' is required");
            if (role.equals("assistant") && i == n.size() - 1) {
                throw ApiException.invalid(at, "unsupported_value", "a final assistant message (prefill) is not supported: "
                        + "the last message must be from the user");
            }
            if (content.isString()) {
                out.add(new ChatMessage(role, content.stringValue(), null, null, null, null));
                continue;
            }
            if (!content.isArray() || content.isEmpty()) {
                throw ApiException.invalid(at + ".content", "'" + at + ".content' must be a string or a non-empty array of blocks");
            }
            if (role.equals("user")) user(content, at, out);
            else out.add(assistant(content, at));
        }
        return out;
    }

    /** tool_result blocks become tool messages; the text blocks one user message after them. */
    private static void user(JsonNode blocks, String at, List<ChatMessage> out) {
        StringBuilder text = null;
        for (int k = 0; k < blocks.size(); k++) {
            String bat = at + ".content[" + k + "]";
            JsonNode b = blocks.get(k);
            String type = b.path("type").asString("");
            switch (type) {
                case "text" -> {
                    if (text == null) text = new StringBuilder();
                    text.append(text(b, bat));
                }
                case "tool_result" -> {
                    JsonNode id = b.get("tool_use_id");
                    if (id == null || !id.isString() || id.stringValue().isEmpty()) {
                        throw ApiException.invalid(bat + ".tool_use_id", "a tool_result block needs 'tool_use_id'");
                    }
                    JsonNode c = b.get("content");
                    String result;
                    if (c == null || c.isNull()) result = "";
                    else if (c.isString()) result = c.stringValue();
                    else if (c.isArray()) {
                        StringBuilder sb = new StringBuilder();
                        for (int j = 0; j < c.size(); j++) sb.append(text(c.get(j), bat + ".content[" + j + "]"));
                        result = sb.toString();
                    } else {
                        throw ApiException.invalid(bat + ".content", "tool_result content must be a string or text blocks");
                    }
                    out.add(ChatMessage.tool(id.stringValue(), result));
                }
                default -> throw ApiException.invalid(bat, "unsupported_content", "content blocks of type '" + type
                        + "' are not supported in user messages (text, tool_result)");
            }
        }
        if (text != null) out.add(ChatMessage.user(text.toString()));
    }

    private static ChatMessage assistant(JsonNode blocks, String at) {
        StringBuilder text = new StringBuilder();
        StringBuilder reasoning = null;
        List<ToolCall> calls = new ArrayList<>();
        for (int k = 0; k < blocks.size(); k++) {
            String bat = at + ".content[" + k + "]";
            JsonNode b = blocks.get(k);
            String type = b.path("type").asString("");
            switch (type) {
                case "text" -> text.append(text(b, bat));
                case "thinking" -> {
                    JsonNode t = b.get("thinking");
                    if (t == null || !t.isString()) throw ApiException.invalid(bat + ".thinking", "a thinking block needs a 'thinking' string");
                    if (reasoning == null) reasoning = new StringBuilder();
                    reasoning.append(t.stringValue());
                }
                case "redacted_thinking" -> { }
                case "tool_use" -> {
                    JsonNode id = b.get("id");
                    JsonNode name = b.get("name");
                    JsonNode input = b.get("input");
                    if (id == null || !id.isString()) throw ApiException.invalid(bat + ".id", "a tool_use block needs an 'id' string");
                    if (name == null || !name.isString() || name.stringValue().isEmpty()) {
                        throw ApiException.invalid(bat + ".name", "a tool_use block needs a 'name' string");
                    }
                    if (input != null && !input.isNull() && !input.isObject()) {
                        throw ApiException.invalid(bat + ".input", "'input' must be an object");
                    }
                    calls.add(new ToolCall(id.stringValue(), name.stringValue(),
                            input == null || input.isNull() ? "{}" : input.toString()));
                }
                default -> throw ApiException.invalid(bat, "unsupported_content", "content blocks of type '" + type
                        + "' are not supported in assistant messages (text, thinking, redacted_thinking, tool_use)");
            }
        }
        return ChatMessage.assistant(text.toString(), reasoning == null ? null : reasoning.toString(),
                calls.isEmpty() ? null : calls);
    }

    static List<ToolFunction> tools(JsonNode n) {
        List<ToolFunction> out = new ArrayList<>();
        ChatRequest.eachTool(n, (at, t) -> {
            if (!t.isObject()) throw ApiException.invalid(at, "'" + at + "' must be an object");
            String type = t.path("type").asString("custom");
            if (!type.equals("custom")) {
                throw ApiException.invalid(at + ".type", "unsupported_value", "tool type '" + type
                        + "' is not supported (only client tools with an input_schema)");
            }
            String name = ChatRequest.toolName(t.get("name"), at + ".name");
            JsonNode schema = t.get("input_schema");
            if (schema == null || !schema.isObject()) {
                throw ApiException.invalid(at + ".input_schema", "'" + at + ".input_schema' must be a JSON Schema object");
            }
            out.add(new ToolFunction(name, ChatRequest.str(t, "description", at), schema.toString()));
        });
        return out;
    }

    /** auto → auto, any → required, tool → the tool's name, none → none. */
    static String toolChoice(JsonNode n, List<ToolFunction> tools) {
        if (n == null) return null;
        if (!n.isObject()) throw ApiException.invalid("tool_choice", "'tool_choice' must be an object {\"type\":...}");
        String type = n.path("type").asString("");
        return switch (type) {
            case "auto" -> "auto";
            case "none" -> "none";
            case "any" -> {
                if (tools.isEmpty()) throw ApiException.invalid("tool_choice", "tool_choice 'any' needs tools");
                yield "required";
            }
            case "tool" -> {
                JsonNode name = n.get("name");
                if (name == null || !name.isString()) throw ApiException.invalid("tool_choice.name", "tool_choice 'tool' needs a 'name'");
                yield ChatRequest.namedTool(name.stringValue(), tools, "tool_choice.name");
            }
            default -> throw ApiException.invalid("tool_choice.type", "'tool_choice.type' must be auto, any, tool or none");
        };
    }

    /**
     * {"type":"disabled"} → off; {"type":"enabled","budget_tokens":N} → high, or max from
     * {@link #MAX_EFFORT_BUDGET}; absent → the server default. The budget must be below max_tokens (as
     * Anthropic requires) but does not cut the reasoning short.
     */
    static ThinkingMode thinking(JsonNode n, Integer maxTokens) {
        if (n == null) return null;
        if (!n.isObject()) throw ApiException.invalid("thinking", "'thinking' must be an object {\"type\":\"enabled\"|\"disabled\"}");
        String type = n.path("type").asString("");
        switch (type) {
            case "disabled":
                return ThinkingMode.OFF;
            case "enabled": {
                JsonNode b = n.get("budget_tokens");
                if (b == null || !b.isIntegralNumber() || !b.canConvertToInt() || b.intValue() < 1) {
                    throw ApiException.invalid("thinking.budget_tokens", "'thinking.budget_tokens' must be a positive integer");
                }
                if (maxTokens != null && b.intValue() >= maxTokens) {
                    throw ApiException.invalid("thinking.budget_tokens", "'max_tokens' must be greater than 'thinking.budget_tokens'");
                }
                return b.intValue() >= MAX_EFFORT_BUDGET ? ThinkingMode.MAX : ThinkingMode.HIGH;
            }
            case "adaptive":
                return ThinkingMode.HIGH;
            default:
                throw ApiException.invalid("thinking.type", "'thinking.type' must be enabled, disabled or adaptive");
        }
    }

    static List<String> stopSequences(JsonNode n) {
        List<String> out = new ArrayList<>();
        if (n == null) return out;
        if (!n.isArray()) throw ApiException.invalid("stop_sequences", "'stop_sequences' must be an array of strings");
        if (n.size() > 16) throw ApiException.invalid("stop_sequences", "'stop_sequences' may hold at most 16 strings");
        for (JsonNode s : n) {
            if (!s.isString()) throw ApiException.invalid("stop_sequences", "'stop_sequences' must be an array of strings");
            if (!s.stringValue().isEmpty()) out.add(s.stringValue());
        }
        return out;
    }
}
