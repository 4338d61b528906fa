package io.ds4j.security;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.api.TestModels;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.MediaType;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * The real server (native engine, demo model) with two API keys configured: every API endpoint
 * answers 401 in OpenAI's error shape without a key or with a wrong one, and serves the request with
 * either key as {@code Authorization: Bearer} or {@code x-api-key}; health and Prometheus stay open
 * (ds4.security.protect-management defaults to false).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=512",
        "ds4.engine.threads=2",
        "ds4.server.shutdown-drain=1s",
        "ds4.security.api-keys=sk-first-key,sk-second-key"})
@AutoConfigureWebTestClient(timeout = "60s")
class ApiKeyAuthenticationTest {
    @Autowired
    WebTestClient web;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.demo().toString());
    }

    record Call(HttpMethod method, String path, String body) {}

    static final List<Call> API = List.of(
            new Call(HttpMethod.POST, "/v1/chat/completions",
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1,\"thinking\":false}"),
            new Call(HttpMethod.POST, "/v1/completions", "{\"prompt\":\"hello\",\"max_tokens\":1}"),
            new Call(HttpMethod.POST, "/v1/responses",
                    "{\"input\":\"hi\",\"max_output_tokens\":1,\"reasoning\":{\"effort\":\"none\"},\"store\":false}"),
            new Call(HttpMethod.GET, "/v1/models", null),
            new Call(HttpMethod.POST, "/tokenize", "{\"content\":\"hello\"}"),
            new Call(HttpMethod.POST, "/detokenize", "{\"tokens\":[19923]}"));

    WebTestClient.ResponseSpec call(Call c, Consumer<HttpHeaders> headers) {
        var spec = web.method(c.method()).uri(c.path()).headers(headers);
        if (c.body() != null) return spec.contentType(MediaType.APPLICATION_JSON).bodyValue(c.body()).exchange();
        return spec.exchange();
    }

    static void expectUnauthorized(WebTestClient.ResponseSpec r, String message) {
        r.expectStatus().isUnauthorized()
                .expectHeader().valueEquals(HttpHeaders.WWW_AUTHENTICATE, "Bearer")
                .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_JSON)
                .expectBody()
                .jsonPath("$.error.message").isEqualTo(message)
                .jsonPath("$.error.type").isEqualTo("invalid_request_error")
                .jsonPath("$.error.code").isEqualTo("invalid_api_key")
                .jsonPath("$.error.param").isEmpty();
    }

    @Test
    void everyApiEndpointAnswers401WithoutAKey() {
        for (Call c : API) expectUnauthorized(call(c, h -> {}), UnauthorizedEntryPoint.MISSING);
    }

    @Test
    void everyApiEndpointAnswers401WithAWrongKeyInEitherHeader() {
        for (Call c : API) {
            expectUnauthorized(call(c, h -> h.setBearerAuth("sk-wrong")), UnauthorizedEntryPoint.WRONG);
            expectUnauthorized(call(c, h -> h.set("x-api-key", "sk-first-ke")), UnauthorizedEntryPoint.WRONG);
            expectUnauthorized(call(c, h -> h.set(HttpHeaders.AUTHORIZATION, "Basic c2stZmlyc3Qta2V5Og==")),
                    UnauthorizedEntryPoint.WRONG);
        }
    }

    @Test
    void everyApiEndpointServesABearerKey() {
        for (Call c : API) {
            String body = call(c, h -> h.setBearerAuth("sk-first-key")).expectStatus().isOk()
                    .expectBody(String.class).returnResult().getResponseBody();
            assertThat(body).as(c.path()).doesNotContain("\"error\":{");
        }
    }

    @Test
    void everyApiEndpointServesAnXApiKeyAndEitherConfiguredKeyWorks() {
        for (Call c : API) {
            call(c, h -> h.set("x-api-key", "sk-second-key")).expectStatus().isOk();
            call(c, h -> h.set(HttpHeaders.AUTHORIZATION, "bearer sk-second-key")).expectStatus().isOk();
        }
    }

    /** The Anthropic Messages endpoints: the same keys (x-api-key is what Anthropic clients send), Anthropic's error shape. */
    static final List<Call> ANTHROPIC = List.of(
            new Call(HttpMethod.POST, "/v1/messages", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                    + "\"max_tokens\":1,\"thinking\":{\"type\":\"disabled\"}}"),
            new Call(HttpMethod.POST, "/v1/messages/count_tokens", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));

    @Test
    void anthropicEndpointsAnswer401InAnthropicsShapeAndServeEitherHeader() {
        for (Call c : ANTHROPIC) {
            for (Consumer<HttpHeaders> h : List.<Consumer<HttpHeaders>>of(x -> {}, x -> x.set("x-api-key", "sk-wrong"))) {
                call(c, h).expectStatus().isUnauthorized()
                        .expectHeader().contentTypeCompatibleWith(MediaType.APPLICATION_JSON)
                        .expectBody()
                        .jsonPath("$.type").isEqualTo("error")
                        .jsonPath("$.error.type").isEqualTo("authentication_error")
                        .jsonPath("$.error.message").isNotEmpty();
            }
            call(c, h -> h.set("x-api-key", "sk-second-key")).expectStatus().isOk();
            call(c, h -> h.setBearerAuth("sk-first-key")).expectStatus().isOk();
        }
    }

    @Test
    void unknownApiUrlsNeedAKeyBeforeAnythingIsRevealed() {
        expectUnauthorized(web.get().uri("/v1/nothing").exchange(), UnauthorizedEntryPoint.MISSING);
        web.get().uri("/v1/nothing").headers(h -> h.setBearerAuth("sk-first-key")).exchange()
                .expectStatus().isNotFound().expectBody().jsonPath("$.error.code").isEqualTo("unknown_url");
    }

    @Test
    void healthAndPrometheusStayOpenByDefault() {
        web.get().uri("/actuator/health").exchange().expectStatus().isOk();
        web.get().uri("/actuator/health/readiness").exchange().expectStatus().isOk();
        web.get().uri("/actuator/prometheus").exchange().expectStatus().isOk();
    }

    @Test
    void crossOriginCallsGetNoCorsHeadersUnlessConfigured() {
        web.get().uri("/v1/models").header(HttpHeaders.ORIGIN, "https://evil.example")
                .headers(h -> h.setBearerAuth("sk-first-key")).exchange()
                .expectHeader().doesNotExist(HttpHeaders.ACCESS_CONTROL_ALLOW_ORIGIN);
    }
}
