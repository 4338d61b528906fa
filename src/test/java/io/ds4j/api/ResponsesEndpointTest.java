package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.http.MediaType;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.JsonNodeFactory;

/**
 * /v1/responses on the wire: bad bodies are 400 in OpenAI's error shape naming the field; the SSE stream
 * names each event as its data's type, numbers them 0, 1, 2, ..., adds and finishes every output item and
 * content part it opens, and ends with the same response object the non-streamed call returns; a
 * response not stored (store: false) cannot be continued; the store forgets the least recently used.
 */
class ResponsesEndpointTest extends DemoModelServerTest {
    JsonNode error(String body, int status) {
        String s = web.post().uri("/v1/responses").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isEqualTo(status).expectBody(String.class).returnResult().getResponseBody();
        JsonNode e = Params.JSON.readTree(s).get("error");
        assertThat(e).as(s).isNotNull();
        assertThat(e.get("message").stringValue()).isNotEmpty();
        assertThat(e.has("param")).isTrue();
        return e;
    }

    JsonNode post(String body) {
        String s = web.post().uri("/v1/responses").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
        return Params.JSON.readTree(s);
    }

    @Test
    void badBodiesAre400InOpenAisShapeNamingTheField() {
        String[][] bad = {
            {"{not json", null},
            {"{\"max_output_tokens\":4}", "input"},
            {"{\"input\":5}", "input"},
            {"{\"input\":[]}", "input"},
            {"{\"input\":[{\"type\":\"input_image\"}]}", "input[0].type"},
            {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"image_url\":\"x\"}]}]}", "input[0].content[0]"},
            {"{\"input\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "input[0].role"},
            {"{\"input\":[{\"type\":\"function_call_output\",\"output\":\"x\"}]}", "input[0].call_id"},
            {"{\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":{}}]}", "input[0].arguments"},
            {"{\"input\":\"hi\",\"max_output_tokens\":0}", "max_output_tokens"},
            {"{\"input\":\"hi\",\"max_output_tokens\":999999}", "max_output_tokens"},
            {"{\"input\":\"hi\",\"reasoning\":{\"effort\":\"extreme\"}}", "reasoning.effort"},
            {"{\"input\":\"hi\",\"tools\":[{\"type\":\"web_search\"}]}", "tools[0].type"},
            {"{\"input\":\"hi\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"}],\"tool_choice\":{\"type\":\"function\",\"name\":\"g\"}}", "tool_choice"},
            {"{\"input\":\"hi\",\"tool_choice\":\"required\"}", "tool_choice"},
            {"{\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"xml\"}}}", "text.format"},
            {"{\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"x\",\"schema\":{\"type\":\"string\",\"pattern\":\"a\"}}}}", "text.format.schema"},
            {"{\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_object\"}},\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}", "text.format"},
            {"{\"input\":\"hi\",\"previous_response_id\":\"resp_nope\"}", "previous_response_id"},
            {"{\"input\":\"hi\",\"background\":true}", "background"},
            {"{\"input\":\"hi\",\"temperature\":3}", "temperature"},
        };
        for (String[] b : bad) {
            JsonNode e = error(b[0], 400);
            assertThat(e.get("type").stringValue()).as(b[0]).isEqualTo("invalid_request_error");
            if (b[1] == null) assertThat(e.get("param").isNull()).as(b[0]).isTrue();
            else assertThat(e.get("param").stringValue()).as(b[0]).isEqualTo(b[1]);
        }
        assertThat(error("{\"model\":\"nope\",\"input\":\"hi\"}", 404).get("code").stringValue()).isEqualTo("model_not_found");
        String s = web.get().uri("/v1/responses/resp_nope").exchange().expectStatus().isNotFound()
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(Params.JSON.readTree(s).get("error").get("code").stringValue()).isEqualTo("response_not_found");
    }

    record Event(String name, JsonNode data) {}

    List<Event> stream(String body) {
        String s = web.post().uri("/v1/responses").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectHeader().contentTypeCompatibleWith(MediaType.TEXT_EVENT_STREAM)
                .expectBody(String.class).returnResult().getResponseBody();
        List<Event> out = new ArrayList<>();
        for (String e : s.split("\n\n")) {
            if (e.startsWith(":")) continue;
            String[] lines = e.split("\n");
            assertThat(lines).hasSize(2);
            JsonNode data = Params.JSON.readTree(lines[1].substring("data: ".length()));
            String name = lines[0].substring("event: ".length());
            assertThat(data.get("type").stringValue()).isEqualTo(name);
            assertThat(data.get("sequence_number").intValue()).isEqualTo(out.size());
            out.add(new Event(name, data));
        }
        return out;
    }

    @Test
    void streamedEventsOpenAndCloseEveryItemAndEndWithTheNonStreamedResponse() {
        String body = "{\"input\":\"Hello!\",\"max_output_tokens\":12,\"temperature\":0,\"reasoning\":{\"effort\":\"high\"}";
        JsonNode whole = post(body + "}");
        List<Event> events = stream(body + ",\"stream\":true}");
        assertThat(events.get(0).name()).isEqualTo("response.created");
        assertThat(events.get(0).data().get("response").get("status").stringValue()).isEqualTo("in_progress");
        assertThat(events.get(1).name()).isEqualTo("response.in_progress");
        Event last = events.getLast();
        assertThat(last.name()).isEqualTo(whole.get("status").stringValue().equals("completed")
                ? "response.completed" : "response.incomplete");
        int openItem = -1, items = 0;
        boolean partOpen = false;
        StringBuilder text = new StringBuilder();
        for (Event e : events) {
            JsonNode d = e.data();
            switch (e.name()) {
                case "response.output_item.added" -> {
                    assertThat(openItem).isEqualTo(-1);
                    assertThat(d.get("output_index").intValue()).isEqualTo(items);
                    openItem = items;
                }
                case "response.content_part.added" -> {
                    assertThat(d.get("output_index").intValue()).isEqualTo(openItem);
                    partOpen = true;
                }
                case "response.output_text.delta", "response.reasoning_text.delta", "response.function_call_arguments.delta" -> {
                    assertThat(d.get("output_index").intValue()).isEqualTo(openItem);
                    assertThat(d.get("item_id").stringValue()).isNotEmpty();
                    text.append(d.get("delta").stringValue());
                }
                case "response.output_text.done", "response.reasoning_text.done" -> {
                    assertThat(d.get("text").stringValue()).isEqualTo(text.toString());
                    text.setLength(0);
                }
                case "response.content_part.done" -> partOpen = false;
                case "response.output_item.done" -> {
                    assertThat(partOpen).isFalse();
                    assertThat(d.get("output_index").intValue()).isEqualTo(openItem);
                    JsonNode item = d.get("item");
                    JsonNode same = whole.get("output").get(items);
                    assertThat(item.get("type")).isEqualTo(same.get("type"));
                    assertThat(item.get("status")).isEqualTo(same.get("status"));
                    assertThat(item.path("content")).isEqualTo(same.path("content"));
                    openItem = -1;
                    items++;
                }
                default -> { }
            }
        }
        assertThat(openItem).isEqualTo(-1);
        JsonNode end = last.data().get("response");
        assertThat(end.get("output").size()).isEqualTo(whole.get("output").size()).isEqualTo(items);
        assertThat(end.get("usage").get("output_tokens")).isEqualTo(whole.get("usage").get("output_tokens"));
        assertThat(end.get("usage").get("output_tokens_details")).isEqualTo(whole.get("usage").get("output_tokens_details"));
        assertThat(whole.get("output").get(0).get("type").stringValue()).isEqualTo("reasoning");
    }

    @Test
    void unstoredResponsesCannotBeContinued() {
        JsonNode r = post("{\"input\":\"Hello!\",\"max_output_tokens\":2,\"store\":false,\"reasoning\":{\"effort\":\"none\"}}");
        assertThat(r.get("store").booleanValue()).isFalse();
        JsonNode e = error("{\"input\":\"more\",\"previous_response_id\":\"" + r.get("id").stringValue() + "\"}", 400);
        assertThat(e.get("code").stringValue()).isEqualTo("previous_response_not_found");
    }

    @Test
    void theStoreKeepsTheMostRecentlyUsed() {
        ResponseStore store = new ResponseStore(new ResponsesProperties(2));
        var empty = JsonNodeFactory.instance.objectNode();
        store.put("a", empty, List.of());
        store.put("b", empty, List.of());
        assertThat(store.get("a")).isPresent(); // a is now more recent than b
        store.put("c", empty, List.of());
        assertThat(store.get("b")).isEmpty();
        assertThat(store.get("a")).isPresent();
        assertThat(store.get("c")).isPresent();
        assertThat(store.size()).isEqualTo(2);
        ResponseStore none = new ResponseStore(new ResponsesProperties(0));
        none.put("a", empty, List.of());
        assertThat(none.get("a")).isEmpty();
    }
}
