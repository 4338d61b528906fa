package io.ds4j.chat;

import java.util.List;

/**
 * A request to render. toolChoice: "auto" | "none" | "required" | a function name; null = auto.
 * "none" leaves the tools out of the prompt; the others render them the same way (the prompt format
 * has no way to force a call). thinking null = {@link ChatTemplateSettings#defaultThinking()}.
 */
public record ChatPrompt(List<ChatMessage> messages, List<ToolFunction> tools,
                         String toolChoice, ThinkingMode thinking) {
    public ChatPrompt(List<ChatMessage> messages, ThinkingMode thinking) {
        this(messages, List.of(), null, thinking);
    }
}
