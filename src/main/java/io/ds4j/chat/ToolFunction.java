package io.ds4j.chat;

/**
 * A declared tool (OpenAI {@code tools[].function}). {@code parametersJson} is the JSON Schema text as
 * the client sent it (key order is kept when rendering); description and parameters may be null.
 */
public record ToolFunction(String name, String description, String parametersJson) {}
