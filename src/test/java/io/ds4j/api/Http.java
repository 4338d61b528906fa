package io.ds4j.api;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Many simultaneous HTTP/1.1 requests (one connection each) for the concurrency tests. */
final class Http {
    private static final HttpClient CLIENT = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();

    private Http() {}

    static CompletableFuture<HttpResponse<String>> postAsync(int port, String path, String body) {
        HttpRequest r = HttpRequest.newBuilder(URI.create("http://localhost:" + port + path))
                .header("Content-Type", "application/json").timeout(Duration.ofSeconds(120))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build();
        return CLIENT.sendAsync(r, HttpResponse.BodyHandlers.ofString());
    }

    /** Sends every body at once and waits for all the responses, in the order of {@code bodies}. */
    static List<HttpResponse<String>> postAll(int port, String path, List<String> bodies) throws Exception {
        List<CompletableFuture<HttpResponse<String>>> fs = new ArrayList<>();
        for (String b : bodies) fs.add(postAsync(port, path, b));
        List<HttpResponse<String>> out = new ArrayList<>();
        for (var f : fs) out.add(f.get(180, TimeUnit.SECONDS));
        return out;
    }
}
