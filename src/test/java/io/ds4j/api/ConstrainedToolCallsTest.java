package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.grammar.JsonSchemaTest;
import io.ds4j.grammar.ToolCallFixtures;
import io.ds4j.grammar.ToolCallRecognizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.springframework.http.MediaType;
import tools.jackson.databind.JsonNode;

/**
 * Forced tool calls on the demo model (random weights, so the constraint alone must make the calls valid):
 * the whole DSML block is constrained, so every call is closed and its arguments parse and satisfy the
 * tool's schema by an independent validator; streamed argument deltas add up to the same arguments; a
 * block cut by max_tokens is reported as "length", never as a call with invented arguments.
 */
class ConstrainedToolCallsTest extends DemoModelServerTest {
    static final String HELLO = "\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}]";
    static final String TOOLS = "\"tools\":" + ToolCallFixtures.requestTools();
    static final Map<String, JsonNode> SCHEMAS = ToolCallFixtures.TOOLS.stream().collect(Collectors.toMap(
            ToolCallRecognizer.Tool::name, t -> Params.JSON.readTree(
                    t.parametersJson() == null ? "{\"type\":\"object\",\"additionalProperties\":false}" : t.parametersJson())));

    JsonNode post(String body) {
        String s = web.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
        return Params.JSON.readTree(s);
    }

    static String request(String choice, boolean parallel, int seed, int maxTokens, boolean stream) {
        return "{" + HELLO + "," + TOOLS + ",\"tool_choice\":" + choice + ",\"parallel_tool_calls\":" + parallel
                + ",\"max_tokens\":" + maxTokens + ",\"temperature\":1,\"seed\":" + seed + ",\"thinking\":false"
                + (stream ? ",\"stream\":true" : "") + "}";
    }

    static String named(String name) {
        return "{\"type\":\"function\",\"function\":{\"name\":\"" + name + "\"}}";
    }

    static void assertValidCall(JsonNode call, String context) {
        String name = call.get("function").get("name").stringValue();
        JsonNode schema = SCHEMAS.get(name);
        assertThat(schema).as("an allowed tool %s: %s", name, context).isNotNull();
        JsonNode args = Params.JSON.readTree(call.get("function").get("arguments").stringValue());
        assertThat(JsonSchemaTest.Validator.valid(schema, args, schema)).as("%s: %s", args, context).isTrue();
        assertThat(call.get("id").stringValue()).startsWith("call_");
    }

    @Test
    void manyForcedCallsAllCloseWithSchemaValidArguments() {
        // 100 by default (about two minutes); -Dds4j.forcedCalls=200 for the full figure
        int target = Integer.getInteger("ds4j.forcedCalls", 100);
        String[] choices = {"\"required\"", named("get_weather"), named("set_flag"), named("search"), named("noop")};
        int requests = 0, calls = 0, tokens = 0;
        Map<String, Integer> perTool = new java.util.TreeMap<>();
        long t0 = System.nanoTime();
        for (int seed = 1; calls < target; seed++) {
            String choice = choices[seed % choices.length];
            boolean parallel = seed % 2 == 0;
            JsonNode r = post(request(choice, parallel, seed, 1500, false));
            requests++;
            JsonNode c = r.get("choices").get(0);
            String context = "seed " + seed + ": " + c;
            assertThat(c.get("finish_reason").stringValue()).as(context).isEqualTo("tool_calls");
            JsonNode tc = c.get("message").get("tool_calls");
            assertThat(tc).as(context).isNotNull();
            assertThat(tc.size()).as(context).isBetween(1, parallel ? ChatPipeline.MAX_PARALLEL_CALLS : 1);
            for (JsonNode call : tc) {
                assertValidCall(call, context);
                String name = call.get("function").get("name").stringValue();
                if (!choice.equals("\"required\"")) assertThat(choice).contains("\"" + name + "\"");
                perTool.merge(name, 1, Integer::sum);
                calls++;
            }
            tokens += r.get("usage").get("completion_tokens").intValue();
        }
        double ms = (System.nanoTime() - t0) / 1e6;
        // the same number of free tokens, for the cost of the constraint per token
        long f0 = System.nanoTime();
        int free = 0;
        for (int seed = 1; free < Math.min(tokens, 2000); seed++) {
            JsonNode r = post("{" + HELLO + ",\"max_tokens\":200,\"temperature\":1,\"seed\":" + seed + ",\"thinking\":false,"
                    + "\"ignore_eos\":true}");
            free += r.get("usage").get("completion_tokens").intValue();
        }
        double freeMs = (System.nanoTime() - f0) / 1e6;
        System.out.printf("forced tool calls: %d requests, %d calls %s, all closed and schema-valid; %d tokens, "
                + "%.2f ms/token constrained vs %.2f ms/token free (demo model, whole request)%n",
                requests, calls, perTool, tokens, ms / tokens, freeMs / free);
    }

    @Test
    void underAutoACallTheModelOpensItselfIsConstrainedToo() {
        // a logit bias makes the random model write "<" and the DSML marker (in some order) until it opens a
        // tag by itself; from there the TriggeredToolCall constraint must produce a closed, valid block
        var tok = io.ds4j.tokenizer.TestTokenizers.real();
        int lt = tok.encodeOne("<"), dsml = tok.requireSpecial(io.ds4j.chat.ChatRenderer.DSML);
        int calls = 0;
        for (int seed = 1; seed <= 4; seed++) {
            boolean parallel = seed == 2;
            String body = "{" + HELLO + "," + TOOLS + ",\"tool_choice\":\"auto\",\"parallel_tool_calls\":" + parallel
                    + ",\"max_tokens\":1500,\"temperature\":1,\"seed\":" + seed + ",\"thinking\":false,"
                    + "\"logit_bias\":{\"" + lt + "\":50,\"" + dsml + "\":50}}";
            JsonNode c = post(body).get("choices").get(0);
            String context = "seed " + seed + ": " + c;
            assertThat(c.get("finish_reason").stringValue()).as(context).isEqualTo("tool_calls");
            JsonNode tc = c.get("message").get("tool_calls");
            assertThat(tc.size()).as(context).isBetween(1, parallel ? ChatPipeline.MAX_PARALLEL_CALLS : 1);
            for (JsonNode call : tc) {
                assertValidCall(call, context);
                calls++;
            }
        }
        System.out.printf("auto tool calls opened by the model: %d calls in 4 requests, all closed and schema-valid%n", calls);
    }

    @Test
    void streamedArgumentDeltasAddUpToTheFinalArguments() {
        for (int seed = 1; seed <= 4; seed++) {
            String choice = seed % 2 == 0 ? named("search") : "\"required\"";
            JsonNode whole = post(request(choice, true, seed, 400, false)).get("choices").get(0);
            String s = web.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON)
                    .bodyValue(request(choice, true, seed, 400, true)).exchange().expectStatus().isOk()
                    .expectBody(String.class).returnResult().getResponseBody();
            List<StringBuilder> args = new ArrayList<>();
            List<String> names = new ArrayList<>();
            String finish = null;
            for (String e : s.split("\n\n")) {
                if (!e.startsWith("data: {")) continue;
                JsonNode ch = Params.JSON.readTree(e.substring(6)).get("choices");
                if (ch == null || ch.isEmpty()) continue;
                JsonNode c = ch.get(0);
                if (c.hasNonNull("finish_reason")) finish = c.get("finish_reason").stringValue();
                JsonNode tc = c.get("delta").get("tool_calls");
                if (tc == null) continue;
                for (JsonNode d : tc) {
                    int i = d.get("index").intValue();
                    while (args.size() <= i) args.add(new StringBuilder());
                    if (d.get("function").has("name")) names.add(d.get("function").get("name").stringValue());
                    args.get(i).append(d.get("function").get("arguments").stringValue());
                }
            }
            assertThat(finish).isEqualTo("tool_calls");
            JsonNode calls = whole.get("message").get("tool_calls");
            assertThat(args).hasSize(calls.size());
            for (int i = 0; i < calls.size(); i++) {
                assertThat(names.get(i)).isEqualTo(calls.get(i).get("function").get("name").stringValue());
                assertThat(args.get(i).toString()).isEqualTo(calls.get(i).get("function").get("arguments").stringValue());
                assertValidCall(calls.get(i), whole.toString());
            }
        }
    }

    @Test
    void aForcedCallCutByMaxTokensIsLengthWithItsPartialArgumentsNotAnInventedCall() {
        for (int seed = 1; seed <= 4; seed++) {
            JsonNode c = post(request(named("get_weather"), false, seed, 24, false)).get("choices").get(0);
            assertThat(c.get("finish_reason").stringValue()).as(c.toString()).isEqualTo("length");
            JsonNode tc = c.get("message").get("tool_calls");
            if (tc != null) {
                String args = tc.get(0).get("function").get("arguments").stringValue();
                assertThat(args).as("no invented arguments").isNotEqualTo("{}");
                assertThat(args.isEmpty() || args.startsWith("{\"city\": ")).as(args).isTrue();
            }
        }
    }
}
