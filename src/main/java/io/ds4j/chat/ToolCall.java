package io.ds4j.chat;

/** An assistant tool call (OpenAI {@code tool_calls[]}); {@code argumentsJson} is the JSON object text. */
public record ToolCall(String id, String name, String argumentsJson) {}
