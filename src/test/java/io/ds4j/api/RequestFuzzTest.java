package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * Bad HTTP bodies get a clear error and lose nothing: valid requests to every endpoint are mutated
 * (a field replaced by a value of another type or an extreme one, removed, duplicated into an unknown
 * field; or the bytes truncated / corrupted) and sent to the real server on the demo model. Every answer
 * must be a success or a 4xx in the endpoint's error shape (OpenAI's, Anthropic's under /v1/messages) with a
 * message — never a 5xx — and the server must
 * still answer a normal request afterwards.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=512",
        "ds4.engine.threads=2",
        "ds4.server.max-output-tokens=3",
        "ds4.server.max-prompt-tokens=400",
        "ds4.server.keep-alive-interval=0s",
        "ds4.server.shutdown-drain=1s"})
@AutoConfigureWebTestClient(timeout = "60s")
class RequestFuzzTest {
    @Autowired
    WebTestClient web;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.demo().toString());
    }

    static final JsonNodeFactory F = JsonNodeFactory.instance;

    static final Map<String, String> SEEDS = new TreeMap<>(Map.of(
            "/v1/chat/completions#1", "{\"model\":\"demo\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                    + "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}],\"max_tokens\":2,\"temperature\":0.7,"
                    + "\"top_p\":0.9,\"seed\":1,\"stop\":[\"x\"],\"logprobs\":true,\"top_logprobs\":2,\"thinking\":false,"
                    + "\"logit_bias\":{\"5\":-1},\"stream\":false}",
            "/v1/chat/completions#2", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":null,"
                    + "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
                    + "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"}],\"tools\":[{\"type\":\"function\",\"function\":"
                    + "{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}}],"
                    + "\"tool_choice\":\"auto\",\"max_completion_tokens\":2,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
            "/v1/chat/completions#3", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":3,\"thinking\":false,"
                    + "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":{\"type\":\"object\","
                    + "\"properties\":{\"k\":{\"enum\":[\"y\",\"n\"]}},\"required\":[\"k\"]}}}}",
            "/v1/completions", "{\"model\":\"demo\",\"prompt\":\"Once upon\",\"max_tokens\":2,\"temperature\":0,\"logprobs\":2,"
                    + "\"return_tokens\":true,\"stop\":\"x\"}",
            "/v1/completions#ids", "{\"prompt\":[1,2,3],\"max_tokens\":1,\"stream\":true}",
            "/tokenize", "{\"content\":\"Hello <｜User｜>\",\"add_special\":true,\"with_pieces\":true}",
            "/detokenize", "{\"tokens\":[19923,14]}"));

    static {
        SEEDS.put("/v1/responses#1", "{\"model\":\"demo\",\"instructions\":\"Be brief.\",\"input\":[{\"role\":\"user\",\"content\":\"Hi\"},"
                + "{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":\"hm\"}]},"
                + "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"},"
                + "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"ok\"},"
                + "{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"more\"}]}],"
                + "\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":"
                + "{\"a\":{\"type\":\"integer\"}}},\"strict\":true}],\"tool_choice\":\"auto\",\"max_output_tokens\":2,"
                + "\"reasoning\":{\"effort\":\"none\"},\"store\":false,\"stream\":true}");
        SEEDS.put("/v1/responses#2", "{\"input\":\"Hi\",\"max_output_tokens\":3,\"text\":{\"format\":{\"type\":\"json_schema\","
                + "\"name\":\"a\",\"schema\":{\"type\":\"object\",\"properties\":{\"k\":{\"enum\":[\"y\",\"n\"]}},"
                + "\"required\":[\"k\"]}}},\"reasoning\":{\"effort\":\"low\"},\"temperature\":0.5,\"top_p\":0.9}");
        SEEDS.put("/v1/messages#1", "{\"model\":\"demo\",\"max_tokens\":2,\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\"}],"
                + "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":["
                + "{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"s\"},"
                + "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{\"a\":1}}]},"
                + "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":"
                + "[{\"type\":\"text\",\"text\":\"ok\"}]},{\"type\":\"text\",\"text\":\"more\"}]}],"
                + "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}],"
                + "\"tool_choice\":{\"type\":\"auto\"},\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1},"
                + "\"stop_sequences\":[\"x\"],\"stream\":true}");
        SEEDS.put("/v1/messages#2", "{\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                + "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},"
                + "\"required\":[\"a\"]}}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"f\"},\"thinking\":{\"type\":\"disabled\"},"
                + "\"temperature\":0,\"top_k\":5}");
        SEEDS.put("/v1/messages/count_tokens", "{\"system\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}]}");
    }

    static JsonNode randomValue(Random r, int depth) {
        return switch (r.nextInt(depth > 1 ? 12 : 14)) {
            case 0 -> F.nullNode();
            case 1 -> F.booleanNode(r.nextBoolean());
            case 2 -> F.numberNode(r.nextInt(7) - 3);
            case 3 -> F.numberNode(List.of(Long.MAX_VALUE, Long.MIN_VALUE, (long) Integer.MAX_VALUE + 1, -1L).get(r.nextInt(4)));
            case 4 -> F.numberNode(List.of(1e308, -1e-308, 0.5, 3.9e9, -0.0).get(r.nextInt(5)));
            case 5 -> F.numberNode(new java.math.BigInteger("123456789012345678901234567890"));
            case 6 -> F.stringNode("");
            case 7 -> F.stringNode(List.of("x", "auto", "none", "required", "user", "system", "tool", "text",
                    "json_object", "json_schema", "function", "\u0000", "<｜end▁of▁sentence｜>", "😀", "\uD800").get(r.nextInt(15)));
            case 8 -> F.stringNode("a".repeat(r.nextInt(3) == 0 ? 70_000 : 5));
            case 9 -> F.arrayNode();
            case 10 -> F.objectNode();
            case 11 -> F.arrayNode().add(F.numberNode(r.nextInt(200_000) - 100)).add(F.stringNode("t"));
            case 12 -> {
                ArrayNode a = F.arrayNode();
                for (int i = 0; i < 3; i++) a.add(randomValue(r, depth + 1));
                yield a;
            }
            default -> {
                ObjectNode o = F.objectNode();
                o.set(List.of("type", "role", "content", "name", "text", "function", "x").get(r.nextInt(7)), randomValue(r, depth + 1));
                yield o;
            }
        };
    }

    /** Every container node of the tree with the key or index that reaches a child. */
    static void containers(JsonNode n, List<JsonNode> out) {
        if (n.isObject() || n.isArray()) {
            out.add(n);
            for (JsonNode c : n) containers(c, out);
        }
    }

    static String mutate(String seed, Random r) {
        if (r.nextInt(8) == 0) { // byte-level: truncate or corrupt
            byte[] b = seed.getBytes(StandardCharsets.UTF_8);
            if (r.nextBoolean()) return new String(b, 0, r.nextInt(b.length), StandardCharsets.UTF_8);
            b[r.nextInt(b.length)] = (byte) r.nextInt(256);
            return new String(b, StandardCharsets.ISO_8859_1);
        }
        JsonNode root = Params.JSON.readTree(seed);
        for (int m = 1 + r.nextInt(3); m > 0; m--) {
            List<JsonNode> cs = new ArrayList<>();
            containers(root, cs);
            JsonNode c = cs.get(r.nextInt(cs.size()));
            if (c instanceof ObjectNode o) {
                List<String> names = new ArrayList<>(o.propertyNames());
                if (names.isEmpty() || r.nextInt(5) == 0) {
                    o.set(names.isEmpty() || r.nextBoolean() ? "unknown_" + r.nextInt(3) : names.get(r.nextInt(names.size())) + "_",
                            randomValue(r, 0));
                } else {
                    String k = names.get(r.nextInt(names.size()));
                    if (r.nextInt(4) == 0) o.remove(k);
                    else o.set(k, randomValue(r, 0));
                }
            } else if (c instanceof ArrayNode a) {
                if (a.isEmpty() || r.nextInt(3) == 0) a.add(randomValue(r, 0));
                else if (r.nextBoolean()) a.remove(r.nextInt(a.size()));
                else a.set(r.nextInt(a.size()), randomValue(r, 0));
            }
        }
        return root.toString();
    }

    @Test
    void mutatedRequestsGetSuccessOrAClear4xxNeverA5xx() {
        Random r = new Random(Long.getLong("ds4j.fuzz.seed", 20261126L));
        int ok = 0, client = 0;
        List<String> seeds = new ArrayList<>(SEEDS.keySet());
        // answers can be large (a 70 000-character text tokenized with pieces)
        WebTestClient web = this.web.mutate().codecs(c -> c.defaultCodecs().maxInMemorySize(64 << 20)).build();
        for (int i = 0; i < 330; i++) {
            String key = seeds.get(i % seeds.size());
            String path = key.contains("#") ? key.substring(0, key.indexOf('#')) : key;
            String body = mutate(SEEDS.get(key), r);
            var res = web.post().uri(path).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                    .expectBody(byte[].class).returnResult();
            int status = res.getStatus().value();
            String text = res.getResponseBody() == null ? "" : new String(res.getResponseBody(), StandardCharsets.UTF_8);
            assertThat(status).as("%s %s -> %s", path, body.length() > 2000 ? body.substring(0, 2000) + "..." : body, text)
                    .isIn(200, 400, 404, 413);
            if (status == 200) {
                ok++;
            } else {
                client++;
                JsonNode err = Params.JSON.readTree(text).get("error");
                assertThat(err).as(text).isNotNull();
                assertThat(err.get("message").stringValue()).as(text).isNotBlank();
            }
        }
        System.out.printf("request fuzz: %d answered, %d refused with a 4xx%n", ok, client);
        assertThat(ok).as("some mutations stay valid").isPositive();
        assertThat(client).as("most mutations are refused").isGreaterThan(ok / 2);
        // nothing was lost: the server still serves
        web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":[1,2],\"max_tokens\":1}").exchange().expectStatus().isOk();
    }
}
