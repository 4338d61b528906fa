package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.engine.EngineService;
import io.ds4j.scheduler.RequestScheduler;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.http.MediaType;
import org.springframework.web.reactive.function.client.WebClient;
import tools.jackson.databind.JsonNode;

/** /v1/completions against the real engine on the tiny-a fixture (token-id prompts). */
class CompletionsEndToEndTest extends TinyModelServerTest {
    @Autowired
    RequestScheduler scheduler;
    @Autowired
    EngineService engine;
    @org.springframework.boot.test.web.server.LocalServerPort
    int port;

    static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).intValue();
        return out;
    }

    static String ids(int[] a) {
        return IntStream.of(a).mapToObj(Integer::toString).reduce((x, y) -> x + "," + y).orElse("");
    }

    JsonNode post(String path, String body) {
        String s = web.post().uri(path).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectBody(String.class).returnResult().getResponseBody();
        return Params.JSON.readTree(s);
    }

    List<String> stream(String body) {
        String s = web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isOk().expectHeader().contentTypeCompatibleWith(MediaType.TEXT_EVENT_STREAM)
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(s).endsWith("\n\n");
        return List.of(s.substring(0, s.length() - 2).split("\n\n", -1));
    }

    @Test
    void greedyOutputEqualsTheFixturesGreedyTokens() {
        JsonNode ref = TestModels.reference("dsv4-tiny-a");
        int seq = ref.get("greedy").get("prompt_sequence").intValue();
        int[] prompt = ints(ref.get("sequences").get(seq).get("tokens"));
        int[] expected = ints(ref.get("greedy").get("generated"));
        JsonNode r = post("/v1/completions", "{\"model\":\"tiny-a\",\"prompt\":[" + ids(prompt) + "],\"temperature\":0,"
                + "\"max_tokens\":" + expected.length + ",\"return_tokens\":true}");
        assertThat(r.get("object").stringValue()).isEqualTo("text_completion");
        assertThat(r.get("id").stringValue()).startsWith("cmpl-");
        assertThat(r.get("model").stringValue()).isEqualTo("tiny-a");
        JsonNode choice = r.get("choices").get(0);
        assertThat(ints(choice.get("tokens"))).containsExactly(expected);
        assertThat(choice.get("finish_reason").stringValue()).isEqualTo("length");
        JsonNode u = r.get("usage");
        assertThat(u.get("prompt_tokens").intValue()).isEqualTo(prompt.length);
        assertThat(u.get("completion_tokens").intValue()).isEqualTo(expected.length);
        assertThat(u.get("total_tokens").intValue()).isEqualTo(prompt.length + expected.length);
        assertThat(u.get("prompt_tokens_details").get("cached_tokens").intValue()).isBetween(0, prompt.length);
    }

    @Test
    void streamingIsOpenAiSseWithUsageChunkAndDone() {
        JsonNode ref = TestModels.reference("dsv4-tiny-a");
        int[] prompt = ints(ref.get("sequences").get(2).get("tokens"));
        int[] expected = ints(ref.get("greedy").get("generated"));
        List<String> events = stream("{\"prompt\":[" + ids(prompt) + "],\"temperature\":0,\"max_tokens\":5,"
                + "\"return_tokens\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
        assertThat(events.getLast()).isEqualTo("data: [DONE]");
        List<Integer> got = new ArrayList<>();
        List<JsonNode> chunks = new ArrayList<>();
        for (String e : events.subList(0, events.size() - 1)) {
            if (e.startsWith(":")) continue; // keep-alive comment
            assertThat(e).startsWith("data: ");
            chunks.add(Params.JSON.readTree(e.substring(6)));
        }
        JsonNode usage = chunks.getLast();
        assertThat(usage.get("choices").isEmpty()).isTrue();
        assertThat(usage.get("usage").get("completion_tokens").intValue()).isEqualTo(5);
        assertThat(usage.get("usage").get("prompt_tokens").intValue()).isEqualTo(prompt.length);
        JsonNode fin = chunks.get(chunks.size() - 2);
        assertThat(fin.get("choices").get(0).get("finish_reason").stringValue()).isEqualTo("length");
        for (JsonNode c : chunks.subList(0, chunks.size() - 2)) {
            assertThat(c.get("choices").get(0).get("finish_reason").isNull()).isTrue();
            for (JsonNode t : c.get("choices").get(0).get("tokens")) got.add(t.intValue());
        }
        assertThat(got).containsExactly(expected[0], expected[1], expected[2], expected[3], expected[4]);
        String id = chunks.getFirst().get("id").stringValue();
        assertThat(chunks).allSatisfy(c -> assertThat(c.get("id").stringValue()).isEqualTo(id));
    }

    @Test
    void sharedPrefixIsReusedAndGivesTheSameTokens() {
        int[] seq3 = ints(TestModels.reference("dsv4-tiny-a").get("sequences").get(3).get("tokens"));
        int[] prompt = java.util.Arrays.copyOf(seq3, 90); // the engine checkpoints every 64 tokens
        String other = "{\"prompt\":[7,7,7],\"temperature\":0,\"max_tokens\":1}";
        String body = "{\"prompt\":[" + ids(prompt) + "],\"temperature\":0,\"max_tokens\":8,\"return_tokens\":true}";
        post("/v1/completions", other); // puts something else in the session
        JsonNode fresh = post("/v1/completions", body);
        assertThat(fresh.get("usage").get("prompt_tokens_details").get("cached_tokens").intValue()).isZero();
        JsonNode again = post("/v1/completions", body);
        int cached = again.get("usage").get("prompt_tokens_details").get("cached_tokens").intValue();
        assertThat(cached).isGreaterThanOrEqualTo(64).isLessThanOrEqualTo(prompt.length);
        assertThat(ints(again.get("choices").get(0).get("tokens")))
                .containsExactly(ints(fresh.get("choices").get(0).get("tokens")));
        // a longer prompt sharing the prefix reuses it too
        JsonNode ext = post("/v1/completions", "{\"prompt\":[" + ids(seq3) + "],\"temperature\":0,\"max_tokens\":1}");
        assertThat(ext.get("usage").get("prompt_tokens_details").get("cached_tokens").intValue()).isGreaterThanOrEqualTo(64);
    }

    @Test
    void logprobsReportTheGreedyTokenAsMostLikely() {
        JsonNode r = post("/v1/completions", "{\"prompt\":[253],\"temperature\":0,\"max_tokens\":3,\"logprobs\":3,"
                + "\"return_tokens\":true}");
        JsonNode lp = r.get("choices").get(0).get("logprobs");
        assertThat(lp.get("tokens").size()).isEqualTo(3);
        assertThat(lp.get("top_logprobs").get(0).size()).isEqualTo(3);
        assertThat(r.get("choices").get(0).get("tokens").get(0).intValue())
                .isEqualTo(TestModels.reference("dsv4-tiny-a").get("sequences").get(0).get("argmax_last").intValue());
        for (int i = 0; i < 3; i++) {
            double chosen = lp.get("token_logprobs").get(i).doubleValue();
            assertThat(chosen).isLessThanOrEqualTo(0.0);
            double max = Double.NEGATIVE_INFINITY;
            for (var e : lp.get("top_logprobs").get(i).properties()) max = Math.max(max, e.getValue().doubleValue());
            assertThat(chosen).isEqualTo(max);
        }
    }

    @Test
    void seededSamplingIsReproducible() {
        String body = "{\"prompt\":[1,2,3],\"temperature\":1.0,\"top_k\":50,\"seed\":42,\"max_tokens\":12,\"return_tokens\":true}";
        JsonNode a = post("/v1/completions", body);
        JsonNode b = post("/v1/completions", body);
        assertThat(ints(a.get("choices").get(0).get("tokens"))).containsExactly(ints(b.get("choices").get(0).get("tokens")));
    }

    @Test
    void longPromptSendsKeepAlivesDuringPrefill() {
        int[] prompt = IntStream.range(0, 200).map(i -> (i * 37 + 11) % 512).toArray();
        List<String> events = stream("{\"prompt\":[" + ids(prompt) + "],\"max_tokens\":1,\"stream\":true}");
        assertThat(events).contains(": keep-alive");
        assertThat(events.getLast()).isEqualTo("data: [DONE]");
    }

    @Test
    void queueFullGives429WithRetryAfterAndCancelledQueuedRequestFreesItsSlot() throws Exception {
        CountDownLatch hold = new CountDownLatch(1);
        CountDownLatch started = new CountDownLatch(1);
        try {
            // the engine thread is held: no step runs, so admitted requests wait in the queue
            engine.executor().execute(() -> {
                started.countDown();
                try {
                    hold.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
            // max-concurrent=1 + queue-limit=1: two requests may be admitted; the first one is (a sequence
            // joins only at a step) a plain one, the second a stream that is kept alive while it waits
            var first = WebClient.create("http://localhost:" + port).post().uri("/v1/completions")
                    .contentType(MediaType.APPLICATION_JSON).bodyValue("{\"prompt\":[5,6],\"max_tokens\":2}")
                    .retrieve().bodyToMono(String.class).subscribe();
            long until = System.currentTimeMillis() + 10_000;
            while (scheduler.queueDepth() < 1 && System.currentTimeMillis() < until) Thread.sleep(10);
            StringBuffer received = new StringBuffer();
            var waiting = WebClient.create("http://localhost:" + port).post().uri("/v1/completions")
                    .contentType(MediaType.APPLICATION_JSON)
                    .bodyValue("{\"prompt\":[5,6],\"max_tokens\":2,\"stream\":true}")
                    .retrieve().bodyToFlux(org.springframework.core.io.buffer.DataBuffer.class)
                    .subscribe(b -> {
                        received.append(b.toString(java.nio.charset.StandardCharsets.UTF_8));
                        org.springframework.core.io.buffer.DataBufferUtils.release(b);
                    });
            long deadline = System.currentTimeMillis() + 10_000;
            while (scheduler.queueDepth() < 2 && System.currentTimeMillis() < deadline) Thread.sleep(10);
            assertThat(scheduler.queueDepth()).isEqualTo(2);
            // a queued stream is kept alive with SSE comments
            deadline = System.currentTimeMillis() + 10_000;
            while (!received.toString().contains(": keep-alive\n\n") && System.currentTimeMillis() < deadline) Thread.sleep(10);
            assertThat(received.toString()).startsWith(": keep-alive\n\n");
            web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                    .bodyValue("{\"prompt\":[5,6],\"max_tokens\":2}").exchange()
                    .expectStatus().isEqualTo(429)
                    .expectHeader().exists("Retry-After")
                    .expectBody().jsonPath("$.error.code").isEqualTo("queue_full")
                    .jsonPath("$.error.type").isEqualTo("rate_limit_error");
            // the queued client goes away: its slot is freed at once
            waiting.dispose();
            deadline = System.currentTimeMillis() + 10_000;
            while (scheduler.queueDepth() > 1 && System.currentTimeMillis() < deadline) Thread.sleep(10);
            assertThat(scheduler.queueDepth()).isEqualTo(1);
            first.dispose();
            deadline = System.currentTimeMillis() + 10_000;
            while (scheduler.queueDepth() > 0 && System.currentTimeMillis() < deadline) Thread.sleep(10);
            assertThat(scheduler.queueDepth()).isZero();
        } finally {
            hold.countDown();
        }
        post("/v1/completions", "{\"prompt\":[5,6],\"max_tokens\":2}");
    }

    @Test
    void validationErrorsUseTheOpenAiShape() {
        expectError("{\"prompt\":[1],\"n\":2}", 400, "n", "unsupported_value");
        expectError("{\"prompt\":[1],\"temperature\":5}", 400, "temperature", null);
        expectError("{\"prompt\":[1],\"max_tokens\":0}", 400, "max_tokens", null);
        expectError("{\"prompt\":[1],\"max_tokens\":100000}", 400, "max_tokens", null);
        expectError("{\"prompt\":[99999]}", 400, "prompt", null);
        expectError("{\"prompt\":[]}", 400, "prompt", null);
        expectError("{\"prompt\":\"hello\"}", 400, "prompt", "model_has_no_tokenizer");
        expectError("{\"prompt\":[1],\"stop\":5}", 400, "stop", null);
        expectError("{\"prompt\":[1],\"stream\":\"yes\"}", 400, "stream", null);
        expectError("{\"model\":\"gpt-4\",\"prompt\":[1]}", 404, "model", "model_not_found");
        expectError("[1,2]", 400, null, null);
        expectError("{\"prompt\":[1", 400, null, "invalid_json");
        int[] tooLong = IntStream.range(0, 600).map(i -> i % 512).toArray();
        expectError("{\"prompt\":[" + ids(tooLong) + "]}", 400, "prompt", "context_length_exceeded");
        web.post().uri("/v1/nothing").contentType(MediaType.APPLICATION_JSON).bodyValue("{}").exchange()
                .expectStatus().isNotFound().expectBody().jsonPath("$.error.type").isEqualTo("invalid_request_error");
        web.get().uri("/v1/models/nope").exchange().expectStatus().isNotFound()
                .expectBody().jsonPath("$.error.code").isEqualTo("model_not_found");
    }

    void expectError(String body, int status, String param, String code) {
        var spec = web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isEqualTo(status)
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_JSON)
                .expectBody()
                .jsonPath("$.error.message").isNotEmpty()
                .jsonPath("$.error.type").isNotEmpty();
        if (param != null) spec.jsonPath("$.error.param").isEqualTo(param);
        if (code != null) spec.jsonPath("$.error.code").isEqualTo(code);
    }

    @Test
    void modelsListTheServedModel() {
        web.get().uri("/v1/models").exchange().expectStatus().isOk().expectBody()
                .jsonPath("$.object").isEqualTo("list")
                .jsonPath("$.data[0].id").isEqualTo("tiny-a")
                .jsonPath("$.data[0].object").isEqualTo("model")
                .jsonPath("$.data[0].owned_by").isEqualTo("ds4j");
        web.get().uri("/v1/models/tiny-a").exchange().expectStatus().isOk().expectBody()
                .jsonPath("$.id").isEqualTo("tiny-a").jsonPath("$.context_length").isEqualTo(512);
    }

    @Test
    void operationsEndpointsReportTheModelAndMetrics() {
        post("/v1/completions", "{\"prompt\":[3,4],\"max_tokens\":2}");
        web.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk();
        web.get().uri("/actuator/health/liveness").exchange().expectStatus().isOk();
        // the default configuration computes on the CPU: the engine component says so and shows no GPU
        web.get().uri("/actuator/health").exchange().expectStatus().isOk().expectBody()
                .jsonPath("$.components.engine.details.model").isEqualTo("loaded")
                .jsonPath("$.components.engine.details.backend").isEqualTo("cpu")
                .jsonPath("$.components.engine.details.gpu").doesNotExist();
        web.get().uri("/actuator/info").exchange().expectStatus().isOk().expectBody()
                .jsonPath("$.model.id").isEqualTo("tiny-a")
                .jsonPath("$.model.quantization").isEqualTo("F32")
                .jsonPath("$.model.context_size").isEqualTo(512)
                .jsonPath("$.model.describe").isMap()
                .jsonPath("$.engine.library").value(v -> assertThat((String) v).startsWith("ds4j "));
        String prom = web.get().uri("/actuator/prometheus").exchange().expectStatus().isOk()
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(prom).contains("ds4j_requests_total{", "endpoint=\"completions\"", "finish_reason=\"length\"",
                "ds4j_queue_depth", "ds4j_tokens_prompt_total", "ds4j_tokens_generated_total", "ds4j_tokens_cached_total",
                "ds4j_time_to_first_token_seconds", "ds4j_inter_token_latency_seconds", "ds4j_request_duration_seconds",
                "ds4j_prefill_speed", "ds4j_decode_speed", "ds4j_context_usage");
        assertThat(engine.contextUsed()).isPositive();
    }

    @Test
    void logitBiasBansForcesAndShiftsTokens() {
        JsonNode ref = TestModels.reference("dsv4-tiny-a");
        int seq = ref.get("greedy").get("prompt_sequence").intValue();
        String prompt = ids(ints(ref.get("sequences").get(seq).get("tokens")));
        int[] expected = ints(ref.get("greedy").get("generated"));
        // banning the greedy first token changes it; the rest of the answer is then a different continuation
        JsonNode banned = post("/v1/completions", "{\"prompt\":[" + prompt + "],\"temperature\":0,\"max_tokens\":1,"
                + "\"return_tokens\":true,\"logit_bias\":{\"" + expected[0] + "\":-100}}");
        assertThat(ints(banned.get("choices").get(0).get("tokens"))[0]).isNotEqualTo(expected[0]);
        // +100 forces a token even when sampling at temperature
        JsonNode forced = post("/v1/completions", "{\"prompt\":[" + prompt + "],\"temperature\":1.2,\"seed\":5,"
                + "\"max_tokens\":6,\"return_tokens\":true,\"logit_bias\":{\"77\":100}}");
        assertThat(ints(forced.get("choices").get(0).get("tokens"))).containsOnly(77);
        // a bias that is not applied to the chosen tokens leaves greedy output unchanged
        JsonNode neutral = post("/v1/completions", "{\"prompt\":[" + prompt + "],\"temperature\":0,\"max_tokens\":3,"
                + "\"return_tokens\":true,\"logit_bias\":{\"" + expected[0] + "\":0.0}}");
        assertThat(ints(neutral.get("choices").get(0).get("tokens"))).containsExactly(expected[0], expected[1], expected[2]);
    }

    @Test
    void badLogitBiasIsA400NamingTheField() {
        for (String bias : List.of("[1]", "{\"x\":1}", "{\"-1\":1}", "{\"3\":101}", "{\"3\":\"up\"}", "{\"512\":1}",
                "{\"99999999999\":1}")) {
            web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                    .bodyValue("{\"prompt\":[1,2],\"max_tokens\":1,\"logit_bias\":" + bias + "}").exchange()
                    .expectStatus().isBadRequest().expectBody()
                    .jsonPath("$.error.param").isEqualTo("logit_bias")
                    .jsonPath("$.error.message").isNotEmpty();
        }
    }
}
