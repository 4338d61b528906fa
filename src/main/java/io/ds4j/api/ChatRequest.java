package io.ds4j.api;

import io.ds4j.chat.ChatMessage;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.chat.ToolCall;
import io.ds4j.chat.ToolFunction;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import tools.jackson.databind.JsonNode;

/** Parses the chat-specific fields of a /v1/chat/completions body into the chat package's records. */
final class ChatRequest {
    private static final Set<String> ROLES = Set.of("system", "developer", "user", "assistant", "tool");

    private ChatRequest() {}

    /** A request's 'messages' (chat and Anthropic): present, a non-empty array, at most {@code maxMessages}. */
    static JsonNode messageArray(JsonNode n, int maxMessages) {
        if (n == null) throw ApiException.invalid("messages", "'messages' is required");
        if (!n.isArray() || n.isEmpty()) throw ApiException.invalid("messages", "'messages' must be a non-empty array");
        if (n.size() > maxMessages) {
            throw ApiException.invalid("messages", "too_many_messages", "'messages' may hold at most " + maxMessages
                    + " messages (got " + n.size() + "; ds4.server.max-messages)");
        }
        return n;
    }

    /** Each entry of a 'tools' array (chat, Responses, Anthropic), as (its path, the entry). */
    static void eachTool(JsonNode n, java.util.function.BiConsumer<String, JsonNode> f) {
        if (n == null) return;
        if (!n.isArray()) throw ApiException.invalid("tools", "'tools' must be an array");
        for (int i = 0; i < n.size(); i++) f.accept("tools[" + i + "]", n.get(i));
    }

    /** tool_choice given as a string: auto | none | required (required needs tools); {@code forms} for the error. */
    static String toolChoiceMode(String v, List<ToolFunction> tools, String forms) {
        if (!v.equals("auto") && !v.equals("none") && !v.equals("required")) {
            throw ApiException.invalid("tool_choice", "'tool_choice' must be auto, none, required or " + forms);
        }
        if (v.equals("required") && tools.isEmpty()) throw ApiException.invalid("tool_choice", "tool_choice 'required' needs tools");
        return v;
    }

    /** A tool_choice naming one tool ({@code at}: the field): it must be among {@code tools}. */
    static String namedTool(String name, List<ToolFunction> tools, String at) {
        if (tools.stream().noneMatch(t -> t.name().equals(name))) {
            throw ApiException.invalid(at, "tool_choice names '" + name + "', which is not in 'tools'");
        }
        return name;
    }

    static List<ChatMessage> messages(Params p, int maxMessages) {
        JsonNode n = messageArray(p.get("messages"), maxMessages);
        List<ChatMessage> out = new ArrayList<>();
        for (int i = 0; i < n.size(); i++) {
            String at = "messages[" + i + "]";
            JsonNode m = n.get(i);
            if (!m.isObject()) throw ApiException.invalid(at, "'" + at + "' must be an object");
            String role = str(m, "role", at);
            if (role == null || !ROLES.contains(role)) {
                throw ApiException.invalid(at + ".role", "'" + at + ".role' must be one of " + ROLES + " (got " + role + ")");
            }
            String content = content(m.get("content"), at + ".content");
            String reasoning = str(m, "reasoning_content", at);
            if (reasoning == null) reasoning = str(m, "reasoning", at);
            List<ToolCall> calls = null;
            JsonNode tc = m.get("tool_calls");
            if (tc != null && !tc.isNull()) {
                if (!role.equals("assistant")) throw ApiException.invalid(at + ".tool_calls", "only assistant messages carry tool_calls");
                if (!tc.isArray()) throw ApiException.invalid(at + ".tool_calls", "'tool_calls' must be an array");
                calls = new ArrayList<>();
                for (int k = 0; k < tc.size(); k++) {
                    String cat = at + ".tool_calls[" + k + "]";
                    JsonNode c = tc.get(k);
                    JsonNode f = c.get("function");
                    if (f == null || !f.isObject()) throw ApiException.invalid(cat + ".function", "'" + cat + ".function' is required");
                    String name = str(f, "name", cat + ".function");
                    if (name == null || name.isEmpty()) throw ApiException.invalid(cat + ".function.name", "a tool call needs a function name");
                    JsonNode args = f.get("arguments");
                    String argsJson = args == null || args.isNull() ? "{}" : args.isString() ? args.stringValue() : args.toString();
                    calls.add(new ToolCall(str(c, "id", cat), name, argsJson));
                }
            }
            String toolCallId = str(m, "tool_call_id", at);
            if (role.equals("tool") && toolCallId == null) {
                throw ApiException.invalid(at + ".tool_call_id", "tool messages need 'tool_call_id'");
            }
            if (content == null && calls == null && !role.equals("assistant")) {
                throw ApiException.invalid(at + ".content", "'" + at + ".content' is required");
            }
            out.add(new ChatMessage(role, content, reasoning, calls, toolCallId, str(m, "name", at)));
        }
        return out;
    }

    /** A string, or an array of {"type":"text","text":...} parts (concatenated). */
    static String content(JsonNode c, String at) {
        if (c == null || c.isNull()) return null;
        if (c.isString()) return c.stringValue();
        if (c.isArray()) {
            StringBuilder sb = new StringBuilder();
            for (JsonNode part : c) {
                String type = part.path("type").asString("");
                if (!type.equals("text")) {
                    throw ApiException.invalid(at, "unsupported_content", "content parts of type '" + type
                            + "' are not supported (text only)");
                }
                JsonNode t = part.get("text");
                if (t == null || !t.isString()) throw ApiException.invalid(at, "a text part needs a 'text' string");
                sb.append(t.stringValue());
            }
            return sb.toString();
        }
        throw ApiException.invalid(at, "'" + at + "' must be a string or an array of text parts");
    }

    /** An optional string field of {@code o} (null when absent or null; 400 at at.field when not a string). */
    static String str(JsonNode o, String field, String at) {
        JsonNode v = o.get(field);
        if (v == null || v.isNull()) return null;
        if (!v.isString()) throw ApiException.invalid(at + "." + field, "'" + at + "." + field + "' must be a string");
        return v.stringValue();
    }

    static List<ToolFunction> tools(Params p) {
        List<ToolFunction> out = new ArrayList<>();
        eachTool(p.get("tools"), (at, t) -> {
            String type = t.path("type").asString("function");
            if (!type.equals("function")) throw ApiException.invalid(at + ".type", "only tools of type 'function' are supported");
            JsonNode f = t.get("function");
            if (f == null || !f.isObject()) throw ApiException.invalid(at + ".function", "'" + at + ".function' is required");
            String name = toolName(f.get("name"), at + ".function.name");
            JsonNode params = f.get("parameters");
            if (params != null && !params.isNull() && !params.isObject()) {
                throw ApiException.invalid(at + ".function.parameters", "'parameters' must be a JSON Schema object");
            }
            out.add(new ToolFunction(name, str(f, "description", at + ".function"),
                    params == null || params.isNull() ? null : params.toString()));
        });
        return out;
    }

    /** A tool's name, the same rule for every API: 1-128 characters of a-z, A-Z, 0-9, _ . : - (else 400 at {@code param}). */
    static String toolName(JsonNode name, String param) {
        if (name == null || !name.isString() || !name.stringValue().matches("[A-Za-z0-9_.:-]{1,128}")) {
            throw ApiException.invalid(param, "'" + param + "' must be 1-128 characters of a-z, A-Z, 0-9, _ . : -");
        }
        return name.stringValue();
    }

    /** parallel_tool_calls (default true): false allows at most one invoke in a constrained call. */
    static boolean parallelToolCalls(Params p) {
        JsonNode n = p.get("parallel_tool_calls");
        if (n == null) return true;
        if (!n.isBoolean()) throw ApiException.invalid("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
        return n.booleanValue();
    }

    static String toolChoice(Params p, List<ToolFunction> tools) {
        JsonNode n = p.get("tool_choice");
        if (n == null) return null;
        if (n.isString()) return toolChoiceMode(n.stringValue(), tools, "{\"type\":\"function\",...}");
        JsonNode name = n.path("function").get("name");
        if (!n.isObject() || name == null || !name.isString()) {
            throw ApiException.invalid("tool_choice", "'tool_choice' must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":...}}");
        }
        return namedTool(name.stringValue(), tools, "tool_choice");
    }

    /**
     * Thinking mode: "thinking": true|false|{"type":"enabled"|"disabled"}, "chat_template_kwargs":
     * {"thinking": bool}, or "reasoning_effort": none|minimal (off), low|medium|high (high), max|xhigh (max).
     * Null = the server default.
     */
    static ThinkingMode thinking(Params p) {
        ThinkingMode mode = null;
        JsonNode t = p.get("thinking");
        if (t == null) {
            JsonNode kw = p.get("chat_template_kwargs");
            if (kw != null && kw.isObject()) {
                JsonNode v = kw.get("thinking");
                if (v == null) v = kw.get("enable_thinking");
                if (v != null && v.isBoolean()) t = v;
            }
        }
        if (t != null) {
            if (t.isBoolean()) mode = t.booleanValue() ? ThinkingMode.HIGH : ThinkingMode.OFF;
            else if (t.isObject() && t.path("type").isString()) {
                String type = t.path("type").stringValue();
                if (type.equals("enabled")) mode = ThinkingMode.HIGH;
                else if (type.equals("disabled")) mode = ThinkingMode.OFF;
                else throw ApiException.invalid("thinking", "'thinking.type' must be enabled or disabled");
            } else {
                throw ApiException.invalid("thinking", "'thinking' must be a boolean or {\"type\":\"enabled\"|\"disabled\"}");
            }
        }
        String effort = p.string("reasoning_effort");
        if (effort != null) {
            ThinkingMode e = switch (effort.toLowerCase(Locale.ROOT)) {
                case "none", "minimal" -> ThinkingMode.OFF;
                case "low", "medium", "high" -> ThinkingMode.HIGH;
                case "max", "xhigh" -> ThinkingMode.MAX;
                default -> throw ApiException.invalid("reasoning_effort",
                        "'reasoning_effort' must be none, minimal, low, medium, high, xhigh or max");
            };
            if (mode == null || mode.thinking()) mode = e.thinking() || mode == null ? e : mode;
        }
        return mode;
    }
}
