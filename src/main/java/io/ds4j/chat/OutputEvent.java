package io.ds4j.chat;

/** What a generated token contributed, in OpenAI streaming terms. */
public sealed interface OutputEvent {
    record ReasoningDelta(String text) implements OutputEvent {}

    record ContentDelta(String text) implements OutputEvent {}

    record ToolCallStart(int index, String id, String name) implements OutputEvent {}

    /** A piece of the call's arguments JSON; the fragments of one index concatenate to a JSON object. */
    record ToolCallArgumentsDelta(int index, String fragment) implements OutputEvent {}

    /** "stop" | "length" | "tool_calls". */
    record Finished(String finishReason) implements OutputEvent {}
}
