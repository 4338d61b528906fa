package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.http.MediaType;
import tools.jackson.databind.JsonNode;

/**
 * /v1/messages on the wire: every bad body is a 400 in Anthropic's error shape (never OpenAI's), unknown
 * models 404 not_found_error; the SSE stream names each event as its data's type, numbers content blocks
 * in order and closes every block it opens; stop_sequences end the text with stop_reason stop_sequence.
 */
class MessagesEndpointTest extends DemoModelServerTest {
    static final String USER = "\"messages\":[{\"role\":\"user\",\"content\":\"Hello!\"}]";

    JsonNode error(String body, int status) {
        String s = web.post().uri("/v1/messages").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isEqualTo(status).expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_JSON)
                .expectBody(String.class).returnResult().getResponseBody();
        JsonNode n = Params.JSON.readTree(s);
        assertThat(n.get("type").stringValue()).as(s).isEqualTo("error");
        assertThat(n.get("error").get("message").stringValue()).as(s).isNotEmpty();
        return n.get("error");
    }

    JsonNode post(String body) {
        String s = web.post().uri("/v1/messages").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
        return Params.JSON.readTree(s);
    }

    @Test
    void badBodiesAre400InAnthropicsShape() {
        String[] bad = {
            "{not json",
            "[]",
            "{" + USER + "}",                                                        // max_tokens missing
            "{" + USER + ",\"max_tokens\":0}",
            "{" + USER + ",\"max_tokens\":999999}",                                  // above ds4.server.max-output-tokens
            "{\"max_tokens\":5}",                                                    // messages missing
            "{\"max_tokens\":5,\"messages\":[]}",
            "{\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
            "{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
            "{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{}}]}]}",
            "{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]}",
            "{" + USER + ",\"max_tokens\":5,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":5}}",
            "{" + USER + ",\"max_tokens\":5,\"thinking\":{\"type\":\"sometimes\"}}",
            "{" + USER + ",\"max_tokens\":5,\"tools\":[{\"name\":\"f\"}]}",
            "{" + USER + ",\"max_tokens\":5,\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]}",
            "{" + USER + ",\"max_tokens\":5,\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}],"
                    + "\"tool_choice\":{\"type\":\"tool\",\"name\":\"g\"}}",
            "{" + USER + ",\"max_tokens\":5,\"tool_choice\":{\"type\":\"any\"}}",
            "{" + USER + ",\"max_tokens\":5,\"stop_sequences\":\"x\"}",
            "{" + USER + ",\"max_tokens\":5,\"temperature\":\"hot\"}",
            "{" + USER + ",\"max_tokens\":5,\"system\":[{\"type\":\"image\"}]}",
        };
        for (String b : bad) {
            assertThat(error(b, 400).get("type").stringValue()).as(b).isEqualTo("invalid_request_error");
        }
        assertThat(error("{\"model\":\"nope\"," + USER + ",\"max_tokens\":5}", 404).get("type").stringValue())
                .isEqualTo("not_found_error");
        String s = web.post().uri("/v1/messages/count_tokens").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"messages\":[]}").exchange().expectStatus().isBadRequest()
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(Params.JSON.readTree(s).get("error").get("type").stringValue()).isEqualTo("invalid_request_error");
        // OpenAI's endpoints keep OpenAI's shape
        String o = web.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON).bodyValue("{not json")
                .exchange().expectStatus().isBadRequest().expectBody(String.class).returnResult().getResponseBody();
        assertThat(Params.JSON.readTree(o).has("type")).isFalse();
        assertThat(Params.JSON.readTree(o).get("error").get("type").stringValue()).isEqualTo("invalid_request_error");
    }

    record Event(String name, JsonNode data) {}

    List<Event> stream(String body) {
        String s = web.post().uri("/v1/messages").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectHeader().contentTypeCompatibleWith(MediaType.TEXT_EVENT_STREAM)
                .expectBody(String.class).returnResult().getResponseBody();
        List<Event> out = new ArrayList<>();
        for (String e : s.split("\n\n")) {
            if (e.startsWith(":")) continue;
            String[] lines = e.split("\n");
            assertThat(lines).hasSize(2);
            assertThat(lines[0]).startsWith("event: ");
            assertThat(lines[1]).startsWith("data: ");
            JsonNode data = Params.JSON.readTree(lines[1].substring(6));
            String name = lines[0].substring(7);
            assertThat(data.get("type").stringValue()).isEqualTo(name);
            out.add(new Event(name, data));
        }
        return out;
    }

    @Test
    void streamedEventsAreWellFormedAndCarryTheSameTextAndUsage() {
        String body = "{" + USER + ",\"max_tokens\":10,\"temperature\":0,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":4}";
        JsonNode whole = post(body + "}");
        List<Event> events = stream(body + ",\"stream\":true}");
        assertThat(events.getFirst().name()).isEqualTo("message_start");
        assertThat(events.getLast().name()).isEqualTo("message_stop");
        assertThat(events.get(events.size() - 2).name()).isEqualTo("message_delta");
        int open = -1, expected = 0;
        StringBuilder text = new StringBuilder(), thinking = new StringBuilder();
        for (Event e : events) {
            switch (e.name()) {
                case "content_block_start" -> {
                    assertThat(open).as("previous block closed").isEqualTo(-1);
                    assertThat(e.data().get("index").intValue()).isEqualTo(expected);
                    open = expected++;
                }
                case "content_block_delta" -> {
                    assertThat(e.data().get("index").intValue()).isEqualTo(open);
                    JsonNode d = e.data().get("delta");
                    switch (d.get("type").stringValue()) {
                        case "text_delta" -> text.append(d.get("text").stringValue());
                        case "thinking_delta" -> thinking.append(d.get("thinking").stringValue());
                        case "signature_delta", "input_json_delta" -> { }
                        default -> throw new AssertionError("unexpected delta " + d);
                    }
                }
                case "content_block_stop" -> {
                    assertThat(e.data().get("index").intValue()).isEqualTo(open);
                    open = -1;
                }
                default -> { }
            }
        }
        assertThat(open).isEqualTo(-1);
        StringBuilder wholeText = new StringBuilder(), wholeThinking = new StringBuilder();
        for (JsonNode b : whole.get("content")) {
            if (b.get("type").stringValue().equals("text")) wholeText.append(b.get("text").stringValue());
            if (b.get("type").stringValue().equals("thinking")) wholeThinking.append(b.get("thinking").stringValue());
        }
        assertThat(thinking.toString()).isEqualTo(wholeThinking.toString()).isNotEmpty();
        assertThat(text.toString()).isEqualTo(wholeText.toString());
        JsonNode delta = events.get(events.size() - 2).data();
        assertThat(delta.get("delta").get("stop_reason").stringValue()).isEqualTo(whole.get("stop_reason").stringValue());
        assertThat(delta.get("usage").get("output_tokens").intValue()).isEqualTo(whole.get("usage").get("output_tokens").intValue());
        JsonNode startUsage = events.getFirst().data().get("message").get("usage");
        assertThat(startUsage.get("input_tokens").intValue() + startUsage.get("cache_read_input_tokens").intValue())
                .isEqualTo(whole.get("usage").get("input_tokens").intValue() + whole.get("usage").get("cache_read_input_tokens").intValue());
    }

    @Test
    void aStopSequenceEndsTheTextWithStopReasonStopSequence() {
        String body = "{" + USER + ",\"max_tokens\":24,\"temperature\":0,\"thinking\":{\"type\":\"disabled\"}";
        JsonNode free = post(body + "}");
        String text = free.get("content").get(0).get("text").stringValue();
        assertThat(text.length()).as(text).isGreaterThan(6);
        String stop = text.substring(text.length() / 2, text.length() / 2 + 3);
        String expected = text.substring(0, text.indexOf(stop));
        for (boolean streamed : new boolean[] {false, true}) {
            String req = body + ",\"stop_sequences\":[" + Params.JSON.writeValueAsString(stop) + "]";
            if (!streamed) {
                JsonNode r = post(req + "}");
                assertThat(r.get("stop_reason").stringValue()).isEqualTo("stop_sequence");
                assertThat(r.get("stop_sequence").stringValue()).isEqualTo(stop);
                assertThat(r.get("content").get(0).get("text").stringValue()).isEqualTo(expected);
            } else {
                List<Event> events = stream(req + ",\"stream\":true}");
                JsonNode d = events.get(events.size() - 2).data().get("delta");
                assertThat(d.get("stop_reason").stringValue()).isEqualTo("stop_sequence");
                assertThat(d.get("stop_sequence").stringValue()).isEqualTo(stop);
            }
        }
    }
}
