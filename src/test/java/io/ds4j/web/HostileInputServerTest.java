package io.ds4j.web;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.api.TestModels;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Hostile clients at the socket against the real server serving the demo model (native engine): a body
 * that never finishes, connections half-closed before or while being answered, oversized headers, invalid
 * UTF-8 inside JSON strings and deeply nested JSON. Each is answered with a 4xx or its connection closed
 * within the configured limits, and after each the server is still healthy: health is UP and a normal
 * chat completion is generated ({@link #theServerIsStillHealthy}, after every test).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=512",
        "ds4.engine.threads=2",
        "ds4.server.shutdown-drain=1s",
        "ds4.server.idle-timeout=2s",
        "ds4.server.request-read-timeout=1s"})
class HostileInputServerTest {
    @LocalServerPort
    int port;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.demo().toString());
    }

    record Answer(String text, long millis) {
        int status() {
            if (!text.startsWith("HTTP/1.1 ")) return -1;
            return Integer.parseInt(text.substring(9, 12));
        }
    }

    /** Reads until the server closes the connection (or resets it); fails if it stays open for 10 s. */
    static Answer readUntilClosed(Socket s, long start) throws IOException {
        s.setSoTimeout(10_000);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        InputStream in = s.getInputStream();
        byte[] buf = new byte[8192];
        try {
            for (int n; (n = in.read(buf)) >= 0; ) out.write(buf, 0, n);
        } catch (SocketTimeoutException e) {
            throw new AssertionError("the server kept the connection open for 10 s; received: "
                    + out.toString(StandardCharsets.ISO_8859_1), e);
        } catch (IOException reset) {
            // a reset also ends the connection
        }
        return new Answer(out.toString(StandardCharsets.UTF_8), (System.nanoTime() - start) / 1_000_000);
    }

    /** Sends one request with Connection: close and reads the whole answer. */
    Answer exchange(String method, String path, byte[] body) throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            OutputStream o = s.getOutputStream();
            String head = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    + (body == null ? "" : "Content-Type: application/json\r\nContent-Length: " + body.length + "\r\n")
                    + "\r\n";
            o.write(head.getBytes(StandardCharsets.US_ASCII));
            if (body != null) o.write(body);
            o.flush();
            return readUntilClosed(s, System.nanoTime());
        }
    }

    static byte[] concat(String a, byte[] b, String c) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(a.getBytes(StandardCharsets.UTF_8));
        out.writeBytes(b);
        out.writeBytes(c.getBytes(StandardCharsets.UTF_8));
        return out.toByteArray();
    }

    static void assertOpenAiError(Answer a, int status) {
        assertThat(a.status()).as(a.text()).isEqualTo(status);
        assertThat(a.text()).contains("\"error\"").contains("\"invalid_request_error\"");
    }

    @AfterEach
    void theServerIsStillHealthy() throws IOException {
        Answer health = exchange("GET", "/actuator/health", null);
        assertThat(health.status()).as(health.text()).isEqualTo(200);
        assertThat(health.text()).contains("\"status\":\"UP\"");
        Answer chat = exchange("POST", "/v1/chat/completions",
                "{\"model\":\"ds4j\",\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
                        .getBytes(StandardCharsets.UTF_8));
        assertThat(chat.status()).as(chat.text()).isEqualTo(200);
        assertThat(chat.text()).contains("\"chat.completion\"").contains("\"finish_reason\"");
    }

    @Test
    void aBodyThatNeverFinishesIsClosedAfterTheReadTimeoutWhileOthersAreServed() throws IOException {
        try (Socket slow = new Socket("127.0.0.1", port)) {
            long start = System.nanoTime();
            slow.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"messages\":[")
                    .getBytes(StandardCharsets.US_ASCII));
            slow.getOutputStream().flush();
            // the stalled upload holds no engine time: a normal request is answered meanwhile
            Answer other = exchange("POST", "/v1/chat/completions",
                    "{\"max_tokens\":2,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}".getBytes(StandardCharsets.UTF_8));
            assertThat(other.status()).as(other.text()).isEqualTo(200);
            Answer a = readUntilClosed(slow, start);
            // request-read-timeout is 1 s; closed well before the 10 s the reader waits
            assertThat(a.millis()).isLessThan(8000L);
            assertThat(a.status()).as(a.text()).isIn(-1, 400, 408, 413);
        }
    }

    @Test
    void aConnectionHalfClosedInsideTheBodyIsClosed() throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            long start = System.nanoTime();
            s.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 500\r\n\r\n{\"prompt\":\"half").getBytes(StandardCharsets.US_ASCII));
            s.getOutputStream().flush();
            s.shutdownOutput();
            Answer a = readUntilClosed(s, start);
            assertThat(a.millis()).isLessThan(8000L);
            assertThat(a.status()).as(a.text()).isIn(-1, 400, 408);
        }
    }

    @Test
    void aStreamingRequestHalfClosedAfterSendingIsAnsweredOrDroppedAndFreesTheEngine() throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            long start = System.nanoTime();
            byte[] body = "{\"stream\":true,\"max_tokens\":200,\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}"
                    .getBytes(StandardCharsets.UTF_8);
            s.getOutputStream().write(concat("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    + "Content-Type: application/json\r\nContent-Length: " + body.length + "\r\n\r\n", body, ""));
            s.getOutputStream().flush();
            s.shutdownOutput();
            Answer a = readUntilClosed(s, start);
            // either the server saw the half-close as the end of the connection (nothing or a partial stream),
            // or it answered the whole stream; never an error status
            if (a.status() != -1) {
                assertThat(a.status()).as(a.text()).isEqualTo(200);
            }
            if (a.text().contains("data: [DONE]")) {
                assertThat(a.text()).contains("\"finish_reason\":\"length\"");
            }
        }
        // the engine is not left generating for a gone client: the normal request after this test gets its turn
    }

    @Test
    void manySmallHeadersOverTheHeaderLimitGet431() throws IOException {
        StringBuilder req = new StringBuilder("GET /v1/models HTTP/1.1\r\nHost: x\r\n");
        for (int i = 0; i < 2000; i++) req.append("X-H").append(i).append(": v\r\n");
        req.append("\r\n");
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.getOutputStream().write(req.toString().getBytes(StandardCharsets.US_ASCII));
            Answer a = readUntilClosed(s, System.nanoTime());
            assertThat(a.status()).as(a.text()).isEqualTo(431);
        }
    }

    @Test
    void anOversizedRequestLineGetsA4xx() throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.getOutputStream().write(("GET /v1/models?q=" + "a".repeat(70_000) + " HTTP/1.1\r\nHost: x\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            Answer a = readUntilClosed(s, System.nanoTime());
            assertThat(a.status()).as(a.text()).isBetween(400, 499);
        }
    }

    @Test
    void invalidUtf8InsideAJsonStringIsA400OnEveryEndpoint() throws IOException {
        byte[][] bad = {
            {(byte) 0xC3, (byte) 0x28},             // a lead byte followed by ASCII
            {(byte) 0xFF, (byte) 0xFE},             // never valid in UTF-8
            {(byte) 0xED, (byte) 0xA0, (byte) 0x80}, // an encoded surrogate
            {(byte) 0xE2, (byte) 0x82},             // truncated 3-byte sequence at the string's end
        };
        for (byte[] b : bad) {
            assertOpenAiError(exchange("POST", "/v1/chat/completions",
                    concat("{\"messages\":[{\"role\":\"user\",\"content\":\"a", b, "\"}]}")), 400);
            assertOpenAiError(exchange("POST", "/v1/completions", concat("{\"prompt\":\"a", b, "\",\"max_tokens\":1}")), 400);
            assertOpenAiError(exchange("POST", "/tokenize", concat("{\"content\":\"", b, "\"}")), 400);
        }
    }

    @Test
    void deeplyNestedJsonIsA400NotAStackOverflow() throws IOException {
        String arrays = "[".repeat(100_000);
        assertOpenAiError(exchange("POST", "/v1/chat/completions", ("{\"messages\":" + arrays)
                .getBytes(StandardCharsets.UTF_8)), 400);
        assertOpenAiError(exchange("POST", "/v1/chat/completions", arrays.getBytes(StandardCharsets.UTF_8)), 400);
        String objects = "{\"a\":".repeat(100_000);
        assertOpenAiError(exchange("POST", "/v1/completions", ("{\"prompt\":\"x\",\"logit_bias\":" + objects)
                .getBytes(StandardCharsets.UTF_8)), 400);
        // a complete, well-formed document nested deeper than the parser allows
        String closed = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"metadata\":"
                + "[".repeat(5000) + "]".repeat(5000) + "}";
        assertOpenAiError(exchange("POST", "/v1/chat/completions", closed.getBytes(StandardCharsets.UTF_8)), 400);
    }

    @Test
    void aJsonSchemaNestedJustUnderTheParserLimitIsAnsweredWithoutCrashing() throws IOException {
        // deep enough to pass the JSON parser but to stress the schema compiler's recursion
        int depth = 400;
        String schema = "{\"type\":\"object\",\"properties\":{\"a\":".repeat(depth) + "{\"type\":\"string\"}"
                + "}}".repeat(depth);
        String body = "{\"max_tokens\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                + "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"deep\",\"schema\":" + schema + "}}}";
        Answer a = exchange("POST", "/v1/chat/completions", body.getBytes(StandardCharsets.UTF_8));
        assertThat(a.status()).as(a.text()).isIn(200, 400);
        if (a.status() == 400) assertOpenAiError(a, 400);
    }
}
