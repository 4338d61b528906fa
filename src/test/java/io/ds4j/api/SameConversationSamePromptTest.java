package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.config.Ds4jProperties;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.http.MediaType;
import tools.jackson.databind.JsonNode;

/**
 * One conversation (system prompt, tools, a user turn, an assistant tool call, its result, a new user
 * turn) written in each API's own shape: /v1/chat/completions, /v1/responses and /v1/messages parse it
 * into conversations that {@link ChatPipeline} renders to the very same prompt token ids, and on the
 * running server each reports that prompt length and gives the same greedy answer, with thinking off and
 * on.
 */
class SameConversationSamePromptTest extends DemoModelServerTest {
    @Autowired
    ChatPipeline pipeline;
    @Autowired
    Ds4jProperties props;
    @Autowired
    ResponseStore store;

    static final String SCHEMA = "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}";

    static String chat(boolean thinking) {
        return "{\"model\":\"demo\",\"max_tokens\":8,\"temperature\":0,\"thinking\":" + thinking + ","
                + "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather of a city\","
                + "\"parameters\":" + SCHEMA + "}}],"
                + "\"messages\":[{\"role\":\"system\",\"content\":\"You are terse.\"},"
                + "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                + "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
                + "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
                + "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C, sunny\"},"
                + "{\"role\":\"user\",\"content\":\"Thanks. And Rome?\"}]}";
    }

    static String responses(boolean thinking) {
        return "{\"model\":\"demo\",\"max_output_tokens\":8,\"temperature\":0,\"store\":false,"
                + "\"reasoning\":{\"effort\":\"" + (thinking ? "high" : "none") + "\"},"
                + "\"instructions\":\"You are terse.\","
                + "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"description\":\"Weather of a city\","
                + "\"parameters\":" + SCHEMA + "}],"
                + "\"input\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                + "{\"type\":\"function_call\",\"call_id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"},"
                + "{\"type\":\"function_call_output\",\"call_id\":\"call_1\",\"output\":\"18C, sunny\"},"
                + "{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"Thanks. And Rome?\"}]}]}";
    }

    static String messages(boolean thinking) {
        return "{\"model\":\"demo\",\"max_tokens\":8,\"temperature\":0,"
                + "\"thinking\":" + (thinking ? "{\"type\":\"enabled\",\"budget_tokens\":4}" : "{\"type\":\"disabled\"}") + ","
                + "\"system\":[{\"type\":\"text\",\"text\":\"You are terse.\"}],"
                + "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather of a city\",\"input_schema\":" + SCHEMA + "}],"
                + "\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                + "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"get_weather\","
                + "\"input\":{\"city\":\"Paris\"}}]},"
                + "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"call_1\",\"content\":\"18C, sunny\"},"
                + "{\"type\":\"text\",\"text\":\"Thanks. And Rome?\"}]}]}";
    }

    Conversation chatConversation(String body) {
        Params p = Params.parse(body);
        RequestOptions o = RequestOptions.parse(p, props, true);
        var tools = ChatRequest.tools(p);
        return new Conversation(ChatRequest.messages(p, 100), tools, ChatRequest.toolChoice(p, tools), ChatRequest.thinking(p),
                JsonCheck.responseFormat(p), true, o.stop(), o.sampling(), o.maxTokens(), -1);
    }

    @Test
    void allThreeApisRenderTheSamePromptTokens() {
        for (boolean thinking : new boolean[] {false, true}) {
            int[] chat = pipeline.render(chatConversation(chat(thinking)));
            int[] responses = pipeline.render(ResponsesRequest.parse(Params.parse(responses(thinking)), props, store).conversation());
            int[] messages = pipeline.render(MessagesRequest.parse(Params.parse(messages(thinking)), props, false).conversation());
            assertThat(responses).as("responses, thinking %s", thinking).containsExactly(chat);
            assertThat(messages).as("messages, thinking %s", thinking).containsExactly(chat);
        }
        // thinking changes the prompt, so the comparison above can tell the modes apart
        assertThat(pipeline.render(chatConversation(chat(true)))).isNotEqualTo(pipeline.render(chatConversation(chat(false))));
    }

    JsonNode post(String path, String body) {
        String s = web.post().uri(path).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
        return Params.JSON.readTree(s);
    }

    @Test
    void theServerReportsThatPromptAndGivesTheSameGreedyAnswerThroughEachApi() {
        for (boolean thinking : new boolean[] {false, true}) {
            int expected = pipeline.render(chatConversation(chat(thinking))).length;

            JsonNode c = post("/v1/chat/completions", chat(thinking));
            JsonNode msg = c.get("choices").get(0).get("message");
            StringBuilder chatAnswer = new StringBuilder();
            if (msg.hasNonNull("reasoning_content")) chatAnswer.append("R:").append(msg.get("reasoning_content").stringValue());
            if (msg.hasNonNull("content")) chatAnswer.append("T:").append(msg.get("content").stringValue());
            if (msg.has("tool_calls")) {
                for (JsonNode t : msg.get("tool_calls")) {
                    chatAnswer.append("C:").append(t.get("function").get("name").stringValue())
                            .append(t.get("function").get("arguments").stringValue());
                }
            }
            assertThat(c.get("usage").get("prompt_tokens").intValue()).isEqualTo(expected);

            JsonNode r = post("/v1/responses", responses(thinking));
            StringBuilder responsesAnswer = new StringBuilder();
            for (JsonNode item : r.get("output")) {
                switch (item.get("type").stringValue()) {
                    case "reasoning" -> responsesAnswer.append("R:").append(item.get("content").get(0).get("text").stringValue());
                    case "message" -> responsesAnswer.append("T:").append(item.get("content").get(0).get("text").stringValue());
                    case "function_call" -> responsesAnswer.append("C:").append(item.get("name").stringValue())
                            .append(item.get("arguments").stringValue());
                    default -> throw new AssertionError(item.toString());
                }
            }
            assertThat(r.get("usage").get("input_tokens").intValue()).isEqualTo(expected);

            JsonNode m = post("/v1/messages", messages(thinking));
            StringBuilder messagesAnswer = new StringBuilder();
            for (JsonNode b : m.get("content")) {
                switch (b.get("type").stringValue()) {
                    case "thinking" -> messagesAnswer.append("R:").append(b.get("thinking").stringValue());
                    case "text" -> messagesAnswer.append("T:").append(b.get("text").stringValue());
                    case "tool_use" -> messagesAnswer.append("C:").append(b.get("name").stringValue())
                            .append(b.get("input").toString());
                    default -> throw new AssertionError(b.toString());
                }
            }
            JsonNode u = m.get("usage");
            assertThat(u.get("input_tokens").intValue() + u.get("cache_read_input_tokens").intValue()).isEqualTo(expected);
            // the same prompt again: the session had it already
            assertThat(u.get("cache_read_input_tokens").intValue()).isPositive();

            if (!chatAnswer.toString().contains("C:")) {
                assertThat(responsesAnswer.toString()).as("thinking %s", thinking).isEqualTo(chatAnswer.toString());
                assertThat(messagesAnswer.toString()).as("thinking %s", thinking).isEqualTo(chatAnswer.toString());
            } else {
                // tool-call arguments are compared as JSON values (Anthropic returns an object, not the text)
                assertThat(responsesAnswer.toString()).isEqualTo(chatAnswer.toString());
                assertThat(messagesAnswer.toString().replace(" ", "")).isEqualTo(chatAnswer.toString().replace(" ", ""));
            }
        }
    }
}
