package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.chat.ChatMessage;
import io.ds4j.chat.ChatPrompt;
import io.ds4j.chat.ThinkingMode;
import io.ds4j.chat.ToolCall;
import io.ds4j.chat.ToolFunction;
import io.ds4j.engine.EngineService;
import io.ds4j.scheduler.RequestScheduler;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.http.MediaType;
import org.springframework.web.reactive.function.client.WebClient;
import tools.jackson.databind.JsonNode;

/** /v1/chat/completions, text completions and the tokenizer endpoints on the synthetic demo model. */
class ChatEndToEndTest extends DemoModelServerTest {
    @Autowired
    ServedModel model;
    @Autowired
    RequestScheduler scheduler;
    @Autowired
    EngineService engine;

    JsonNode post(String path, String body) {
        String s = web.post().uri(path).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
        return Params.JSON.readTree(s);
    }

    List<JsonNode> stream(String path, String body) {
        String s = web.post().uri(path).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectHeader().contentTypeCompatibleWith(MediaType.TEXT_EVENT_STREAM)
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(s).endsWith("data: [DONE]\n\n");
        List<JsonNode> out = new ArrayList<>();
        for (String e : s.split("\n\n")) {
            if (e.startsWith(":") || e.equals("data: [DONE]")) continue;
            assertThat(e).startsWith("data: ");
            out.add(Params.JSON.readTree(e.substring(6)));
        }
        return out;
    }

    static final String HELLO = "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
            + "{\"role\":\"user\",\"content\":\"Hello!\"}]";

    int renderedLength(List<ChatMessage> msgs, List<ToolFunction> tools, ThinkingMode mode) {
        return model.renderer().render(new ChatPrompt(msgs, tools, null, mode)).length;
    }

    @Test
    void nonStreamingChatHasOpenAiShapeAndExactUsage() {
        JsonNode r = post("/v1/chat/completions", "{\"model\":\"demo\"," + HELLO
                + ",\"max_tokens\":8,\"temperature\":0,\"thinking\":false}");
        assertThat(r.get("id").stringValue()).startsWith("chatcmpl-");
        assertThat(r.get("object").stringValue()).isEqualTo("chat.completion");
        assertThat(r.get("model").stringValue()).isEqualTo("demo");
        assertThat(r.get("created").longValue()).isPositive();
        JsonNode choice = r.get("choices").get(0);
        assertThat(choice.get("message").get("role").stringValue()).isEqualTo("assistant");
        assertThat(choice.get("message").get("content").isString()).isTrue();
        assertThat(choice.get("message").has("reasoning_content")).isFalse();
        assertThat(choice.get("finish_reason").stringValue()).isIn("length", "stop");
        int expectedPrompt = renderedLength(List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hello!")),
                List.of(), ThinkingMode.OFF);
        JsonNode u = r.get("usage");
        assertThat(u.get("prompt_tokens").intValue()).isEqualTo(expectedPrompt);
        assertThat(u.get("completion_tokens").intValue()).isBetween(1, 8);
        assertThat(u.get("total_tokens").intValue()).isEqualTo(expectedPrompt + u.get("completion_tokens").intValue());
        assertThat(u.get("prompt_tokens_details").get("cached_tokens").isInt()).isTrue();
    }

    @Test
    void streamingGivesTheSameGreedyTextAsNonStreaming() {
        String req = "{" + HELLO + ",\"max_tokens\":12,\"temperature\":0,\"thinking\":false";
        JsonNode whole = post("/v1/chat/completions", req + "}");
        List<JsonNode> chunks = stream("/v1/chat/completions", req + ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
        JsonNode first = chunks.getFirst();
        assertThat(first.get("object").stringValue()).isEqualTo("chat.completion.chunk");
        assertThat(first.get("choices").get(0).get("delta").get("role").stringValue()).isEqualTo("assistant");
        JsonNode usage = chunks.getLast();
        assertThat(usage.get("choices").isEmpty()).isTrue();
        assertThat(usage.get("usage").get("completion_tokens").intValue())
                .isEqualTo(whole.get("usage").get("completion_tokens").intValue());
        JsonNode fin = chunks.get(chunks.size() - 2).get("choices").get(0);
        assertThat(fin.get("finish_reason").stringValue()).isEqualTo(whole.get("choices").get(0).get("finish_reason").stringValue());
        StringBuilder text = new StringBuilder();
        for (JsonNode c : chunks.subList(1, chunks.size() - 2)) {
            JsonNode ch = c.get("choices").get(0);
            assertThat(ch.get("finish_reason").isNull()).isTrue();
            if (ch.get("delta").has("content")) text.append(ch.get("delta").get("content").stringValue());
        }
        assertThat(text.toString()).isEqualTo(whole.get("choices").get(0).get("message").get("content").stringValue());
    }

    @Test
    void thinkingModeSendsReasoningContent() {
        JsonNode r = post("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":6,\"temperature\":0,\"reasoning_effort\":\"high\"}");
        JsonNode msg = r.get("choices").get(0).get("message");
        assertThat(msg.has("reasoning_content")).isTrue();
        assertThat(msg.has("reasoning")).isFalse(); // default ds4.server.reasoning-field=reasoning_content
        int expectedPrompt = renderedLength(List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hello!")),
                List.of(), ThinkingMode.HIGH);
        assertThat(r.get("usage").get("prompt_tokens").intValue()).isEqualTo(expectedPrompt);
        String reasoning = msg.get("reasoning_content").stringValue();
        String content = msg.get("content").stringValue();
        assertThat(reasoning.length() + content.length()).isPositive();
        if (!reasoning.isEmpty()) {
            assertThat(r.get("usage").get("completion_tokens_details").get("reasoning_tokens").intValue()).isPositive();
        }
    }

    @Test
    void stopStringCutsTheContentAndStopsGeneration() {
        String base = "{" + HELLO + ",\"max_tokens\":30,\"temperature\":0,\"thinking\":false";
        String full = post("/v1/chat/completions", base + "}").get("choices").get(0).get("message").get("content").stringValue();
        assertThat(full.length()).isGreaterThan(12);
        int k = full.length() / 2;
        String stop = full.substring(k, k + 3);
        int cut = full.indexOf(stop);
        JsonNode r = post("/v1/chat/completions", base + ",\"stop\":[" + Params.JSON.writeValueAsString(stop) + "]}");
        JsonNode choice = r.get("choices").get(0);
        assertThat(choice.get("message").get("content").stringValue()).isEqualTo(full.substring(0, cut));
        assertThat(choice.get("finish_reason").stringValue()).isEqualTo("stop");
        assertThat(r.get("usage").get("completion_tokens").intValue()).isLessThan(30);
    }

    @Test
    void toolDefinitionsAndAToolCallRoundTripAreRendered() {
        String tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather of a city\","
                + "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]";
        String msgs = "[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                + "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
                + "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
                + "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C, sunny\"}]";
        JsonNode r = post("/v1/chat/completions", "{\"messages\":" + msgs + ",\"tools\":" + tools
                + ",\"tool_choice\":\"auto\",\"max_tokens\":4,\"temperature\":0,\"thinking\":false}");
        var toolFns = List.of(new ToolFunction("get_weather", "Weather of a city",
                "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}"));
        var history = List.of(ChatMessage.user("Weather in Paris?"),
                ChatMessage.assistant(null, null, List.of(new ToolCall("call_1", "get_weather", "{\"city\":\"Paris\"}"))),
                ChatMessage.tool("call_1", "18C, sunny"));
        int withTools = renderedLength(history, toolFns, ThinkingMode.OFF);
        assertThat(r.get("usage").get("prompt_tokens").intValue()).isEqualTo(withTools);
        assertThat(withTools).isGreaterThan(renderedLength(history, List.of(), ThinkingMode.OFF));
        assertThat(r.get("choices").get(0).get("finish_reason").stringValue()).isIn("stop", "length", "tool_calls");
        web.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"messages\":" + msgs + ",\"tools\":" + tools
                        + ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}")
                .exchange().expectStatus().isBadRequest().expectBody().jsonPath("$.error.param").isEqualTo("tool_choice");
    }

    @Test
    void chatValidationErrors() {
        expect("{}", 400, "messages");
        expect("{\"messages\":[]}", 400, "messages");
        expect("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400, "messages[0].role");
        expect("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}", 400,
                "messages[0].content");
        expect("{" + HELLO + ",\"n\":3}", 400, "n");
        expect("{" + HELLO + ",\"top_logprobs\":3}", 400, "top_logprobs");
        expect("{" + HELLO + ",\"model\":\"other\"}", 404, "model");
        expect("{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", 400, "messages[0].tool_call_id");
    }

    void expect(String body, int status, String param) {
        web.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isEqualTo(status).expectBody()
                .jsonPath("$.error.param").isEqualTo(param)
                .jsonPath("$.error.message").isNotEmpty();
    }

    @Test
    void chatLogprobsListEveryGeneratedToken() {
        JsonNode r = post("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":5,\"temperature\":0,\"thinking\":false,"
                + "\"logprobs\":true,\"top_logprobs\":2}");
        JsonNode content = r.get("choices").get(0).get("logprobs").get("content");
        assertThat(content.size()).isEqualTo(r.get("usage").get("completion_tokens").intValue());
        for (JsonNode t : content) {
            assertThat(t.get("top_logprobs").size()).isEqualTo(2);
            assertThat(t.get("logprob").doubleValue()).isEqualTo(t.get("top_logprobs").get(0).get("logprob").doubleValue());
            assertThat(t.get("bytes").isArray()).isTrue();
        }
    }

    @Test
    void clientDisconnectStopsGenerationWithinATokenAndFreesTheEngine() throws Exception {
        String body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a very long story.\"}],"
                + "\"max_tokens\":3000,\"temperature\":0,\"thinking\":false,\"stream\":true}";
        List<String> got = WebClient.create("http://localhost:" + port).post().uri("/v1/chat/completions")
                .contentType(MediaType.APPLICATION_JSON).bodyValue(body).retrieve().bodyToFlux(String.class)
                .take(4).collectList().block(Duration.ofSeconds(60));
        assertThat(got).hasSize(4);
        long deadline = System.currentTimeMillis() + 20_000;
        while (scheduler.active() > 0 && System.currentTimeMillis() < deadline) Thread.sleep(10);
        assertThat(scheduler.active()).isZero();
        // 3000 tokens were allowed; the session shows generation stopped early
        assertThat(engine.contextUsed()).isLessThan(1000);
        post("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":2}");
    }

    @Test
    void textCompletionWithStopString() {
        String base = "{\"prompt\":\"Once upon a time\",\"max_tokens\":20,\"temperature\":0";
        String full = post("/v1/completions", base + "}").get("choices").get(0).get("text").stringValue();
        assertThat(full.length()).isGreaterThan(10);
        String stop = full.substring(full.length() / 2, full.length() / 2 + 2);
        JsonNode r = post("/v1/completions", base + ",\"stop\":" + Params.JSON.writeValueAsString(stop) + "}");
        assertThat(r.get("choices").get(0).get("text").stringValue()).isEqualTo(full.substring(0, full.indexOf(stop)));
        assertThat(r.get("choices").get(0).get("finish_reason").stringValue()).isEqualTo("stop");
        int promptTokens = model.tokenizer().orElseThrow().encode("Once upon a time", true).length;
        assertThat(r.get("usage").get("prompt_tokens").intValue()).isEqualTo(promptTokens);
    }

    @Test
    void tokenizeAndDetokenizeRoundTrip() {
        var tok = model.tokenizer().orElseThrow();
        JsonNode t = post("/tokenize", "{\"content\":\"Hello world, ünïcode!\"}");
        int[] expected = tok.encode("Hello world, ünïcode!", true);
        assertThat(t.get("tokens").size()).isEqualTo(expected.length);
        for (int i = 0; i < expected.length; i++) assertThat(t.get("tokens").get(i).intValue()).isEqualTo(expected[i]);
        JsonNode withBos = post("/tokenize", "{\"content\":\"Hello\",\"add_special\":true,\"with_pieces\":true}");
        assertThat(withBos.get("tokens").get(0).get("id").intValue()).isEqualTo(tok.bosId());
        assertThat(withBos.get("tokens").get(1).get("piece").stringValue()).isEqualTo("Hello");
        JsonNode d = post("/detokenize", "{\"tokens\":" + t.get("tokens") + "}");
        assertThat(d.get("content").stringValue()).isEqualTo("Hello world, ünïcode!");
        web.post().uri("/detokenize").contentType(MediaType.APPLICATION_JSON).bodyValue("{\"tokens\":[-1]}").exchange()
                .expectStatus().isBadRequest().expectBody().jsonPath("$.error.param").isEqualTo("tokens");
    }

    @Test
    void modelIsListedAndFlaggedSynthetic() {
        web.get().uri("/v1/models").exchange().expectStatus().isOk().expectBody()
                .jsonPath("$.data[0].id").isEqualTo("demo")
                .jsonPath("$.data[0].synthetic").isEqualTo(true);
    }

    static boolean jsonPrefix(String s) {
        return new io.ds4j.grammar.SchemaRecognizer(io.ds4j.grammar.JsonSchema.anyObject()).feed(s.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    @Test
    void jsonModeMakesEvenTheRandomModelAnswerWithAJsonObject() {
        var tok = model.requireTokenizer("messages");
        // unconstrained, the random demo model does not write JSON (so the constraint below is what does)
        JsonNode free = post("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":24,\"temperature\":1,\"seed\":3,"
                + "\"thinking\":false}");
        assertThat(jsonPrefix(free.get("choices").get(0).get("message").get("content").stringValue())).isFalse();
        for (int seed = 1; seed <= 3; seed++) {
            JsonNode r = post("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":40,\"temperature\":1,\"seed\":" + seed
                    + ",\"thinking\":false,\"response_format\":{\"type\":\"json_object\"}}");
            JsonNode choice = r.get("choices").get(0);
            String content = choice.get("message").get("content").stringValue();
            assertThat(content).startsWith("{");
            assertThat(jsonPrefix(content)).as(content).isTrue();
            if (choice.get("finish_reason").stringValue().equals("stop")) {
                assertThat(Params.JSON.readTree(content).isObject()).isTrue();
            } else {
                assertThat(choice.get("finish_reason").stringValue()).isEqualTo("length");
            }
        }
        // steered towards closing (logit_bias), the object completes, generation stops at it, and it parses
        String close = tok.encodeOne("}") + "\":8,\"" + tok.encodeOne("\"") + "\":4";
        JsonNode done = post("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":200,\"temperature\":1,\"seed\":7,"
                + "\"thinking\":false,\"response_format\":{\"type\":\"json_object\"},\"logit_bias\":{\"" + close + "}}");
        JsonNode choice = done.get("choices").get(0);
        assertThat(choice.get("finish_reason").stringValue()).isEqualTo("stop");
        assertThat(Params.JSON.readTree(choice.get("message").get("content").stringValue()).isObject()).isTrue();
        // streamed, the concatenated deltas are the same kind of text
        StringBuilder sb = new StringBuilder();
        for (JsonNode c : stream("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":200,\"temperature\":1,\"seed\":7,"
                + "\"stream\":true,\"thinking\":false,\"response_format\":{\"type\":\"json_object\"},\"logit_bias\":{\""
                + close + "}}")) {
            JsonNode d = c.get("choices").isEmpty() ? null : c.get("choices").get(0).get("delta");
            if (d != null && d.has("content") && !d.get("content").isNull()) sb.append(d.get("content").stringValue());
        }
        assertThat(sb.toString()).isEqualTo(choice.get("message").get("content").stringValue());
    }

    static final String TOOLS = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
            + "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}},"
            + "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":{\"type\":\"object\"}}}]";

    @Test
    void toolChoiceRequiredOrNamedMakesEvenTheRandomModelCallTheTool() {
        for (String[] c : new String[][] {{"{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}", "get_time"},
                {"\"required\"", null}}) {
            for (int seed = 1; seed <= 2; seed++) {
                JsonNode r = post("/v1/chat/completions", "{" + HELLO + "," + TOOLS + ",\"tool_choice\":" + c[0]
                        + ",\"max_tokens\":40,\"temperature\":1,\"seed\":" + seed + ",\"thinking\":false}");
                JsonNode choice = r.get("choices").get(0);
                JsonNode calls = choice.get("message").get("tool_calls");
                assertThat(calls).as(choice.toString()).isNotNull();
                String name = calls.get(0).get("function").get("name").stringValue();
                if (c[1] != null) assertThat(name).isEqualTo(c[1]);
                else assertThat(name).isIn("get_weather", "get_time");
                assertThat(choice.get("finish_reason").stringValue()).isIn("tool_calls", "length");
            }
        }
        // with auto the random model does not call (so the constraint above is what made it)
        JsonNode free = post("/v1/chat/completions", "{" + HELLO + "," + TOOLS + ",\"tool_choice\":\"auto\",\"max_tokens\":40,"
                + "\"temperature\":1,\"seed\":1,\"thinking\":false}");
        assertThat(free.get("choices").get(0).get("message").get("tool_calls")).isNull();
    }

    @Test
    void settingsThatLeaveNoTokenToSampleAreAClear400() {
        var tok = model.requireTokenizer("messages");
        // JSON mode may only end with end-of-sequence; banning it (and steering to close the object) leaves
        // nothing to sample once the object is complete
        String bias = "\"" + tok.encodeOne("}") + "\":8,\"" + tok.encodeOne("\"") + "\":4,\"" + tok.eosId() + "\":-100";
        web.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{" + HELLO + ",\"max_tokens\":200,\"temperature\":1,\"seed\":7,\"thinking\":false,"
                        + "\"response_format\":{\"type\":\"json_object\"},\"logit_bias\":{" + bias + "}}")
                .exchange().expectStatus().isBadRequest().expectBody()
                .jsonPath("$.error.type").isEqualTo("invalid_request_error")
                .jsonPath("$.error.message").value(m -> assertThat((String) m).contains("no candidate token left"));
        // and the server still answers
        post("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":2,\"temperature\":0,\"thinking\":false}");
    }

    @Test
    void jsonModeWithThinkingConstrainsOnlyTheAnswer() {
        // the random model rarely ends its reasoning by itself: a bias on </think> makes it end at once, and
        // the answer after it must then be JSON (the reasoning itself is not constrained)
        var tok = model.requireTokenizer("messages");
        int endThink = tok.specialTokenId(io.ds4j.chat.ChatRenderer.END_THINK).orElseThrow();
        JsonNode r = post("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":60,\"temperature\":1,\"seed\":2,"
                + "\"thinking\":true,\"logit_bias\":{\"" + endThink + "\":30},\"response_format\":{\"type\":\"json_object\"}}");
        JsonNode msg = r.get("choices").get(0).get("message");
        String content = msg.get("content").stringValue();
        assertThat(content).as(msg.toString()).startsWith("{");
        assertThat(jsonPrefix(content)).as(content).isTrue();
        // a forced tool call also waits for the end of the reasoning
        JsonNode t = post("/v1/chat/completions", "{" + HELLO + "," + TOOLS + ",\"tool_choice\":\"required\",\"max_tokens\":40,"
                + "\"temperature\":1,\"seed\":2,\"thinking\":true,\"logit_bias\":{\"" + endThink + "\":30}}");
        assertThat(t.get("choices").get(0).get("message").get("tool_calls")).as(t.toString()).isNotNull();
    }

    @Test
    void jsonSchemaModeForcesTheRandomModelIntoTheSchema() {
        String schema = "{\"type\":\"object\",\"properties\":{\"answer\":{\"enum\":[\"yes\",\"no\"]},"
                + "\"confidence\":{\"type\":\"integer\"}},\"required\":[\"answer\"],\"additionalProperties\":false}";
        // whitespace runs are bounded, so even a random model must reach the end well within the budget
        for (int seed = 1; seed <= 2; seed++) {
            JsonNode r = post("/v1/chat/completions", "{" + HELLO + ",\"max_tokens\":600,\"temperature\":1,\"seed\":" + seed
                    + ",\"thinking\":false,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\","
                    + "\"strict\":true,\"schema\":" + schema + "}}}");
            JsonNode choice = r.get("choices").get(0);
            assertThat(choice.get("finish_reason").stringValue()).isEqualTo("stop");
            JsonNode doc = Params.JSON.readTree(choice.get("message").get("content").stringValue());
            assertThat(doc.get("answer").stringValue()).isIn("yes", "no");
            assertThat(doc.properties().stream().map(java.util.Map.Entry::getKey).toList()).isSubsetOf("answer", "confidence");
            if (doc.has("confidence")) assertThat(doc.get("confidence").isIntegralNumber()).isTrue();
        }
    }

    @Test
    void jsonModeRejectsToolsAndUnsupportedSchemas() {
        expect("{" + HELLO + ",\"response_format\":{\"type\":\"json_object\"},\"tools\":[{\"type\":\"function\","
                + "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}]}", 400, "response_format");
        expect("{" + HELLO + ",\"response_format\":\"json\"}", 400, "response_format");
        expect("{" + HELLO + ",\"response_format\":{\"type\":\"xml\"}}", 400, "response_format");
        expect("{" + HELLO + ",\"response_format\":{\"type\":\"json_schema\"}}", 400, "response_format.json_schema");
        expect("{" + HELLO + ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}}", 400,
                "response_format.json_schema.schema");
        web.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{" + HELLO + ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
                        + "\"schema\":{\"type\":\"string\",\"pattern\":\"^a+$\"}}}}")
                .exchange().expectStatus().isBadRequest().expectBody()
                .jsonPath("$.error.param").isEqualTo("response_format.json_schema.schema")
                .jsonPath("$.error.message").value(m -> assertThat((String) m).contains("pattern"));
    }
}
