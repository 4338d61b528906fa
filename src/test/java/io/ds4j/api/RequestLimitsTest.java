package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * The configured request limits against the real server (native engine, demo model), each answered
 * with its 4xx in OpenAI's error shape: body size (413), number of chat messages (400), max_tokens
 * above the cap (400), and the per-request wall-clock limit (408, or an error event once streaming).
 * The connection idle and read timeouts are far shorter than the generations here: they bound a
 * connection waiting for a request and receiving it, never the time spent generating the response.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=1024",
        "ds4.engine.threads=2",
        "ds4.server.shutdown-drain=1s",
        "ds4.server.max-request-size=4KB",
        "ds4.server.max-messages=3",
        "ds4.server.max-output-tokens=1000",
        "ds4.server.request-timeout=1s",
        "ds4.server.request-read-timeout=300ms",
        "ds4.server.idle-timeout=300ms"})
@AutoConfigureWebTestClient(timeout = "60s")
class RequestLimitsTest {
    @Autowired
    WebTestClient web;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.demo().toString());
    }

    WebTestClient.BodyContentSpec expectError(String path, String body, int status, String code) {
        return web.post().uri(path).contentType(MediaType.APPLICATION_JSON).bodyValue(body).exchange()
                .expectStatus().isEqualTo(status)
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_JSON)
                .expectBody()
                .jsonPath("$.error.type").isEqualTo("invalid_request_error")
                .jsonPath("$.error.code").isEqualTo(code)
                .jsonPath("$.error.message").isNotEmpty();
    }

    @Test
    void aBodyOverMaxRequestSizeGets413OnEveryEndpoint() {
        String big = "x".repeat(5000);
        expectError("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"" + big + "\"}]}", 413,
                "request_too_large");
        expectError("/v1/completions", "{\"prompt\":\"" + big + "\",\"max_tokens\":1}", 413, "request_too_large");
        expectError("/tokenize", "{\"content\":\"" + big + "\"}", 413, "request_too_large");
        // just under the limit is served
        web.post().uri("/tokenize").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"content\":\"" + "x".repeat(3000) + "\"}").exchange().expectStatus().isOk();
    }

    @Test
    void moreChatMessagesThanMaxMessagesGet400() {
        String m = "{\"role\":\"user\",\"content\":\"hi\"}";
        expectError("/v1/chat/completions", "{\"messages\":[" + m + "," + m + "," + m + "," + m + "],\"max_tokens\":1}",
                400, "too_many_messages").jsonPath("$.error.param").isEqualTo("messages");
        web.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"messages\":[" + m + "," + m + "," + m + "],\"max_tokens\":1,\"thinking\":false}")
                .exchange().expectStatus().isOk();
    }

    @Test
    void maxTokensAboveTheCapGets400RatherThanBeingClamped() {
        web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":\"hello\",\"max_tokens\":1001}").exchange()
                .expectStatus().isBadRequest()
                .expectBody().jsonPath("$.error.param").isEqualTo("max_tokens")
                .jsonPath("$.error.type").isEqualTo("invalid_request_error");
        web.post().uri("/v1/chat/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_tokens\":5000}")
                .exchange().expectStatus().isBadRequest()
                .expectBody().jsonPath("$.error.param").isEqualTo("max_completion_tokens");
    }

    // the end-of-text token is banned, so only the clock can stop 1000 tokens of greedy decoding early
    static final String LONG = "{\"prompt\":\"hello\",\"max_tokens\":1000,\"temperature\":0,\"logit_bias\":{\"1\":-100}";

    @Test
    void aGenerationPastRequestTimeoutGets408() {
        long t0 = System.nanoTime();
        expectError("/v1/completions", LONG + "}", 408, "request_timeout");
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertThat(ms).isBetween(900L, 8000L);
        // the engine is free again at once
        web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue("{\"prompt\":\"hello\",\"max_tokens\":2}").exchange().expectStatus().isOk();
    }

    @Test
    void aStreamPastRequestTimeoutEndsWithATimeoutErrorEvent() {
        String s = web.post().uri("/v1/completions").contentType(MediaType.APPLICATION_JSON)
                .bodyValue(LONG + ",\"stream\":true}").exchange()
                .expectStatus().isOk()
                .expectBody(String.class).returnResult().getResponseBody();
        assertThat(s).contains("\"code\":\"request_timeout\"").doesNotContain("[DONE]");
    }
}
