package io.ds4j.security;

import io.ds4j.api.TestModels;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.http.HttpHeaders;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * Keys read from ds4.security.api-keys-file (comments and blank lines skipped) with
 * ds4.security.protect-management=true: the actuator endpoints need a key as well, and CORS answers
 * only the configured origin. No model is loaded (the real native library, health only).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.security.protect-management=true",
        "ds4.security.cors-allowed-origins=https://ui.example"})
@AutoConfigureWebTestClient
class ProtectedManagementTest {
    @Autowired
    WebTestClient web;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.security.api-keys-file", ProtectedManagementTest::keysFile);
    }

    static String keysFile() {
        try {
            Path f = Files.createTempFile("ds4j-keys", ".txt");
            Files.writeString(f, "# operators\n\nsk-from-file\n  sk-other  \n");
            f.toFile().deleteOnExit();
            return f.toString();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void healthAndPrometheusNeedAKeyWhenProtected() {
        web.get().uri("/actuator/health").exchange().expectStatus().isUnauthorized()
                .expectBody().jsonPath("$.error.code").isEqualTo("invalid_api_key");
        web.get().uri("/actuator/prometheus").header("x-api-key", "nope").exchange().expectStatus().isUnauthorized();
        // no model: health answers 503 OUT_OF_SERVICE, but it answers
        web.get().uri("/actuator/health").headers(h -> h.setBearerAuth("sk-from-file")).exchange()
                .expectStatus().isEqualTo(503).expectBody().jsonPath("$.status").isEqualTo("OUT_OF_SERVICE");
        web.get().uri("/actuator/prometheus").header("x-api-key", "sk-other").exchange().expectStatus().isOk();
    }

    @Test
    void keysFromTheFileOpenTheApiAndCommentsAreNotKeys() {
        web.get().uri("/v1/models").header("x-api-key", "# operators").exchange().expectStatus().isUnauthorized();
        web.get().uri("/v1/models").headers(h -> h.setBearerAuth("sk-other")).exchange().expectStatus().isOk()
                .expectBody().jsonPath("$.data").isEmpty();
    }

    @Test
    void corsAnswersTheConfiguredOriginOnlyAndPreflightNeedsNoKey() {
        web.options().uri("/v1/chat/completions").header(HttpHeaders.ORIGIN, "https://ui.example")
                .header(HttpHeaders.ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(HttpHeaders.ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type").exchange()
                .expectStatus().isOk()
                .expectHeader().valueEquals(HttpHeaders.ACCESS_CONTROL_ALLOW_ORIGIN, "https://ui.example");
        web.options().uri("/v1/chat/completions").header(HttpHeaders.ORIGIN, "https://evil.example")
                .header(HttpHeaders.ACCESS_CONTROL_REQUEST_METHOD, "POST").exchange()
                .expectStatus().isForbidden()
                .expectHeader().doesNotExist(HttpHeaders.ACCESS_CONTROL_ALLOW_ORIGIN);
    }
}
