package io.ds4j.chat;

import java.util.List;

/**
 * One OpenAI chat message. role: system | developer | user | assistant | tool. Unused fields are null
 * (toolCalls may also be an empty list).
 */
public record ChatMessage(String role, String content, String reasoningContent,
                          List<ToolCall> toolCalls, String toolCallId, String name) {
    public static ChatMessage system(String content) {
        return new ChatMessage("system", content, null, null, null, null);
    }

    public static ChatMessage developer(String content) {
        return new ChatMessage("developer", content, null, null, null, null);
    }

    public static ChatMessage user(String content) {
        return new ChatMessage("user", content, null, null, null, null);
    }

    public static ChatMessage assistant(String content) {
        return new ChatMessage("assistant", content, null, null, null, null);
    }

    public static ChatMessage assistant(String content, String reasoning, List<ToolCall> toolCalls) {
        return new ChatMessage("assistant", content, reasoning, toolCalls, null, null);
    }

    public static ChatMessage tool(String toolCallId, String content) {
        return new ChatMessage("tool", content, null, null, toolCallId, null);
    }
}
