package io.ds4j.web;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.api.TestModels;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Raw sockets against the real server (native library, no model): a connection that never sends a
 * request, and a request whose body stops arriving, are both closed by the server within the configured
 * timeouts instead of being held open; oversized headers get 431.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.server.idle-timeout=1s",
        "ds4.server.request-read-timeout=1s"})
class HostileConnectionTest {
    @LocalServerPort
    int port;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
    }

    /** Reads until the server closes the connection; returns what it sent and how long that took. */
    record Closed(String received, long millis) {}

    static Closed readUntilClosed(Socket s, long start) throws IOException {
        s.setSoTimeout(10_000);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        InputStream in = s.getInputStream();
        byte[] buf = new byte[4096];
        try {
            for (int n; (n = in.read(buf)) >= 0; ) out.write(buf, 0, n);
        } catch (SocketTimeoutException e) {
            throw new AssertionError("the server kept the connection open for 10 s", e);
        } catch (IOException reset) {
            // a reset also ends the connection
        }
        return new Closed(out.toString(StandardCharsets.ISO_8859_1), (System.nanoTime() - start) / 1_000_000);
    }

    @Test
    void aConnectionThatSendsNoRequestIsClosedAfterTheIdleTimeout() throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            long start = System.nanoTime();
            Closed c = readUntilClosed(s, start);
            assertThat(c.received()).isEmpty();
            assertThat(c.millis()).isBetween(500L, 8000L);
        }
    }

    @Test
    void aRequestWhoseBodyStopsArrivingIsClosedAfterTheReadTimeout() throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            long start = System.nanoTime();
            s.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 1000\r\n\r\n{\"prompt\":").getBytes(StandardCharsets.US_ASCII));
            s.getOutputStream().flush();
            Closed c = readUntilClosed(s, start);
            assertThat(c.millis()).isBetween(500L, 8000L);
        }
    }

    @Test
    void headersOverTheHeaderSizeLimitAreRefusedWith431() throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.getOutputStream().write(("GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Junk: " + "a".repeat(20_000)
                    + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            Closed c = readUntilClosed(s, System.nanoTime());
            assertThat(c.received()).startsWith("HTTP/1.1 431");
        }
    }

    @Test
    void aPromptClientIsServedNormally() throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.getOutputStream().write("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    .getBytes(StandardCharsets.US_ASCII));
            Closed c = readUntilClosed(s, System.nanoTime());
            assertThat(c.received()).startsWith("HTTP/1.1 200").contains("\"object\":\"list\"");
        }
    }
}
