package io.ds4j.api;

import io.ds4j.chat.ChatMessage;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.chat.ToolFunction;
import io.ds4j.engine.SamplingParams;
import java.util.List;

/**
 * One chat generation in API-independent terms: what /v1/chat/completions, /v1/responses and /v1/messages
 * each translate their request into before {@link ChatPipeline} renders it (one rendering, one parser, one
 * constraint builder, one scheduler path whichever API carried it).
 *
 * @param messages the conversation, OpenAI chat roles (system, developer, user, assistant, tool)
 * @param tools declared function tools (empty = none)
 * @param toolChoice "auto" | "none" | "required" | a tool name; null = auto
 * @param thinking null = the server default (ds4.server.default-thinking)
 * @param format free text, a JSON object or a JSON schema (constrained decoding)
 * @param parallelToolCalls false: at most one invoke in a constrained call block
 * @param stop stop strings (applied to the content)
 * @param sampling sampler settings
 * @param maxTokens the requested output limit (null = the server's, clipped to the context left)
 * @param topLogprobs alternatives per token, -1 = no logprobs at all
 */
record Conversation(List<ChatMessage> messages, List<ToolFunction> tools, String toolChoice, ThinkingMode thinking,
                           JsonCheck.ResponseFormat format, boolean parallelToolCalls, List<String> stop,
                           SamplingParams sampling, Integer maxTokens, int topLogprobs) {
    public Conversation {
        messages = List.copyOf(messages);
        tools = tools == null ? List.of() : List.copyOf(tools);
        format = format == null ? JsonCheck.ResponseFormat.TEXT : format;
        stop = stop == null ? List.of() : List.copyOf(stop);
    }

    /** Tools are offered (declared and not switched off with tool_choice "none"). */
    boolean toolsOn() {
        return !tools.isEmpty() && !"none".equals(toolChoice);
    }

    /** The answer must be a tool call (tool_choice "required" or a named tool). */
    boolean forceCall() {
        return toolsOn() && toolChoice != null && !"auto".equals(toolChoice);
    }
}
