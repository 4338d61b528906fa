package io.ds4j.load;

import static io.gatling.javaapi.core.CoreDsl.StringBody;
import static io.gatling.javaapi.core.CoreDsl.asLongAs;
import static io.gatling.javaapi.core.CoreDsl.atOnceUsers;
import static io.gatling.javaapi.core.CoreDsl.bodyString;
import static io.gatling.javaapi.core.CoreDsl.constantUsersPerSec;
import static io.gatling.javaapi.core.CoreDsl.during;
import static io.gatling.javaapi.core.CoreDsl.exec;
import static io.gatling.javaapi.core.CoreDsl.nothingFor;
import static io.gatling.javaapi.core.CoreDsl.rampUsers;
import static io.gatling.javaapi.core.CoreDsl.regex;
import static io.gatling.javaapi.core.CoreDsl.scenario;
import static io.gatling.javaapi.http.HttpDsl.header;
import static io.gatling.javaapi.http.HttpDsl.http;
import static io.gatling.javaapi.http.HttpDsl.sse;
import static io.gatling.javaapi.http.HttpDsl.status;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.gatling.javaapi.core.ChainBuilder;
import io.gatling.javaapi.core.PopulationBuilder;
import io.gatling.javaapi.core.ScenarioBuilder;
import io.gatling.javaapi.core.Session;
import io.gatling.javaapi.core.Simulation;
import io.gatling.javaapi.http.HttpProtocolBuilder;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Streaming chat clients against a running ds4j server (started by {@code scripts/load}).
 *
 * <p>Load mode: {@code clients} streaming chat requests ramp up over {@code rampSeconds}; once the server
 * holds its capacity (its Prometheus gauges of active and queued requests), and not before
 * {@code rampSeconds + 1}, {@code overflow} more arrive at once. The server admits {@code capacity} requests at once (what it was
 * configured with: sequences generating plus the queue limit) and must answer the rest 429 with a
 * Retry-After header. Every accepted stream must be well-formed SSE (each event a JSON chunk of
 * {@code chat.completion.chunk}) and complete (a finish_reason, then {@code data: [DONE]}); nothing may be a
 * 5xx or any other error. Soak mode ({@code soakSeconds} > 0): the same clients loop for that long, and an
 * overflow client arrives every few seconds.
 *
 * <p>Results (counts, time to first token) are printed and written to {@code summary} as key=value lines,
 * ending with {@code result=PASS} or {@code result=FAIL}; scripts/load turns that into its exit code.
 */
public class StreamingChatSimulation extends Simulation {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String baseUrl = System.getProperty("ds4j.load.baseUrl", "http://127.0.0.1:8080");
    private final int clients = Integer.getInteger("ds4j.load.clients", 64);
    private final int overflow = Integer.getInteger("ds4j.load.overflow", 16);
    private final int capacity = Integer.getInteger("ds4j.load.capacity", clients);
    private final int rampSeconds = Integer.getInteger("ds4j.load.rampSeconds", 5);
    private final int maxTokens = Integer.getInteger("ds4j.load.maxTokens", 32);
    private final int soakSeconds = Integer.getInteger("ds4j.load.soakSeconds", 0);
    private final int streamTimeoutSeconds = Integer.getInteger("ds4j.load.streamTimeoutSeconds", 600);
    private final String apiKey = System.getProperty("ds4j.load.apiKey", "");
    private final Path summary = Path.of(System.getProperty("ds4j.load.summary", "target/load-summary.properties"));

    // what the clients saw; one simulation per JVM run
    private final AtomicInteger completed = new AtomicInteger();
    private final AtomicInteger refused = new AtomicInteger();
    private final AtomicInteger overflowAccepted = new AtomicInteger();
    private final AtomicInteger errors = new AtomicInteger();
    /** ramped clients that have had their first token, or failed */
    private final AtomicInteger mainAnswered = new AtomicInteger();
    private final long started = System.nanoTime();
    private final java.util.concurrent.atomic.AtomicBoolean overflowGo = new java.util.concurrent.atomic.AtomicBoolean();
    private final AtomicLong chunks = new AtomicLong();
    private final ConcurrentLinkedQueue<String> errorSamples = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<Long> ttftMillis = new ConcurrentLinkedQueue<>();
    /** when the first accepted stream ended, and when the last overflow request got its answer (nanoTime) */
    private final AtomicLong firstStreamEnd = new AtomicLong(Long.MAX_VALUE);
    private final AtomicLong lastOverflowAnswer = new AtomicLong(Long.MIN_VALUE);

    private String body(String who) {
        return "{\"model\":\"ds4j\",\"stream\":true,\"max_tokens\":" + maxTokens
                + ",\"messages\":[{\"role\":\"user\",\"content\":\"Load test " + who
                + ": tell me a long story about a lighthouse.\"}]}";
    }

    private HttpProtocolBuilder protocol() {
        HttpProtocolBuilder p = http.baseUrl(baseUrl)
                .contentTypeHeader("application/json")
                .sseUnmatchedInboundMessageBufferSize(1_000_000)
                .shareConnections();
        return apiKey.isEmpty() ? p : p.authorizationHeader("Bearer " + apiKey);
    }

    private void error(String what) {
        errors.incrementAndGet();
        if (errorSamples.size() < 20) errorSamples.add(what);
    }

    /**
     * One streaming request over Gatling's SSE support: the time to the first chunk carrying text is the
     * TTFT; then every event up to [DONE] is checked.
     */
    private ChainBuilder stream() {
        return exec(session -> session.set("t0", System.nanoTime()).set("ok", true))
                .exec(sse("stream").post("/v1/chat/completions").body(StringBody(session -> body("#" + session.userId())))
                        .await(Duration.ofSeconds(streamTimeoutSeconds)).on(
                                sse.checkMessage("first token").matching(
                                        regex("\\\\?\"(content|reasoning_content)\\\\?\":\\\\?\"[^\"\\\\]").exists())))
                .exec(session -> {
                    mainAnswered.incrementAndGet();
                    if (session.isFailed()) {
                        error("stream: no first token (not admitted, e.g. 429 below the capacity, or failed; see Gatling's log)");
                        return session.set("ok", false).markAsSucceeded();
                    }
                    ttftMillis.add((System.nanoTime() - session.getLong("t0")) / 1_000_000);
                    return session;
                })
                .doIf(session -> session.getBoolean("ok")).then(
                        exec(sse("stream").setCheck().await(Duration.ofSeconds(streamTimeoutSeconds)).on(
                                sse.checkMessage("[DONE]").matching(regex("\\[DONE\\]").exists())))
                                .exec(sse.processUnmatchedMessages((messages, session) -> {
                                    long end = System.nanoTime();
                                    if (session.isFailed()) {
                                        error("stream: ended without data: [DONE]");
                                        return session.markAsSucceeded();
                                    }
                                    String problem = checkEvents(messages.stream().map(m -> m.message()).toList());
                                    if (problem != null) {
                                        error("stream: " + problem);
                                    } else {
                                        completed.incrementAndGet();
                                        firstStreamEnd.accumulateAndGet(end, Math::min);
                                    }
                                    return session;
                                })))
                .exec(sse("stream").close())
                .exec(Session::markAsSucceeded);
    }

    /**
     * Waits until the server holds its capacity (the Prometheus gauges ds4j_requests_active + ds4j_queue_depth
     * = admitted requests), or every ramped client has had its first token or failed, or 5 minutes passed.
     */
    private ChainBuilder awaitFullServer() {
        return asLongAs(session -> !overflowGo.get()).on(
                exec(http("capacity poll").get("/actuator/prometheus").check(bodyString().saveAs("prom")))
                        .exec(session -> {
                            double held = 0;
                            for (String line : session.getString("prom").split("\n")) {
                                if (line.startsWith("ds4j_requests_active") || line.startsWith("ds4j_queue_depth")) {
                                    held += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
                                }
                            }
                            if (held >= capacity || mainAnswered.get() >= clients
                                    || System.nanoTime() - started > 300_000_000_000L) {
                                overflowGo.set(true);
                            }
                            return session.remove("prom");
                        })
                        .pause(Duration.ofMillis(100)));
    }

    /**
     * The events before [DONE] (Gatling hands each over as a JSON object with its {@code data}): every one
     * must be a chat.completion.chunk, and the last choice must carry a finish_reason.
     *
     * @return null if well-formed and complete, else what is wrong
     */
    private String checkEvents(List<String> events) {
        String finish = null;
        int n = 0;
        for (String e : events) {
            try {
                JsonNode ev = JSON.readTree(e);
                JsonNode data = ev.get("data");
                if (data == null) return "event without data: " + abbreviate(e);
                if (data.isTextual() && "[DONE]".equals(data.asText().trim())) continue; // the stream's end marker, not JSON
                JsonNode chunk = data.isTextual() ? JSON.readTree(data.asText()) : data;
                if (chunk.isTextual() && "[DONE]".equals(chunk.asText())) continue;
                if (!"chat.completion.chunk".equals(chunk.path("object").asText())) {
                    return "not a chat.completion.chunk: " + abbreviate(e);
                }
                n++;
                JsonNode fr = chunk.path("choices").path(0).path("finish_reason");
                if (fr.isTextual()) finish = fr.asText();
            } catch (IOException ex) {
                return "malformed event " + abbreviate(e) + ": " + ex.getMessage();
            }
        }
        chunks.addAndGet(n);
        if (finish == null) return "no finish_reason before [DONE] (" + n + " chunks)";
        if (!finish.equals("length") && !finish.equals("stop")) return "unexpected finish_reason " + finish;
        return null;
    }

    private static String abbreviate(String s) {
        return s.length() <= 200 ? s : s.substring(0, 200) + "...";
    }

    /**
     * An overflow client over plain HTTP, so that the status and headers of a refusal can be checked: 429
     * with Retry-After, or (if a slot freed meanwhile) 200 with a complete stream.
     */
    private ChainBuilder overflowRequest() {
        return exec(awaitFullServer())
                .exec(http("overflow").post("/v1/chat/completions").body(StringBody(session -> body("overflow")))
                        .check(status().saveAs("status"), header("Retry-After").optional().saveAs("retryAfter"),
                                bodyString().saveAs("body")))
                .exec(session -> {
                    lastOverflowAnswer.accumulateAndGet(System.nanoTime(), Math::max);
                    int st = session.contains("status") ? session.getInt("status") : -1;
                    String body = session.contains("body") ? session.getString("body") : "";
                    if (st == 429) {
                        String ra = session.contains("retryAfter") ? session.getString("retryAfter") : null;
                        if (ra == null || !ra.matches("[0-9]+")) error("429 without a valid Retry-After header");
                        else if (!body.contains("\"error\"")) error("429 without an error body");
                        else refused.incrementAndGet();
                    } else if (st == 200) {
                        String problem = body.trim().endsWith("data: [DONE]") ? checkEvents(sseEvents(body))
                                : "overflow stream does not end with data: [DONE]";
                        if (problem == null) overflowAccepted.incrementAndGet();
                        else error("overflow: " + problem);
                    } else {
                        error("overflow answered " + st + ": " + abbreviate(body));
                    }
                    return session.markAsSucceeded();
                });
    }

    /** The data of each event of an SSE body, wrapped like Gatling's SSE messages. */
    private static List<String> sseEvents(String body) {
        List<String> out = new ArrayList<>();
        for (String block : body.split("\n\n")) {
            StringBuilder data = new StringBuilder();
            for (String line : block.split("\n")) {
                if (line.startsWith("data:")) data.append(line.substring(line.startsWith("data: ") ? 6 : 5));
            }
            if (!data.isEmpty()) {
                out.add("{\"data\":" + JSON.valueToTree(data.toString()) + "}");
            }
        }
        return out;
    }

    {
        ScenarioBuilder streams;
        ScenarioBuilder over;
        List<PopulationBuilder> pops = new ArrayList<>();
        if (soakSeconds > 0) {
            streams = scenario("streaming clients").during(Duration.ofSeconds(soakSeconds)).on(stream());
            pops.add(streams.injectOpen(rampUsers(clients).during(Duration.ofSeconds(rampSeconds))));
            if (overflow > 0) {
                over = scenario("overflow").exec(overflowRequest());
                pops.add(over.injectOpen(nothingFor(Duration.ofSeconds(rampSeconds + 1)),
                        constantUsersPerSec(overflow / 10.0).during(Duration.ofSeconds(Math.max(1, soakSeconds - rampSeconds - 1)))));
            }
        } else {
            streams = scenario("streaming clients").exec(stream());
            pops.add(streams.injectOpen(rampUsers(clients).during(Duration.ofSeconds(rampSeconds))));
            if (overflow > 0) {
                over = scenario("overflow").exec(overflowRequest());
                pops.add(over.injectOpen(nothingFor(Duration.ofSeconds(rampSeconds + 1)), atOnceUsers(overflow)));
            }
        }
        setUp(pops).protocols(protocol());
    }

    @Override
    public void after() {
        List<Long> t = new ArrayList<>(ttftMillis);
        Collections.sort(t);
        long p50 = percentile(t, 50), p99 = percentile(t, 99);
        List<String> failures = new ArrayList<>();
        if (errors.get() > 0) failures.add(errors.get() + " error(s)");
        if (soakSeconds == 0) {
            int total = clients + overflow;
            int accepted = completed.get() + overflowAccepted.get();
            // the server refuses only when it holds `capacity` requests, so at least that many are accepted
            if (errors.get() == 0 && accepted < Math.min(total, capacity)) {
                failures.add("only " + accepted + " accepted but the server's capacity is " + capacity);
            }
            // if no stream ended before the last overflow answer, no slot ever freed: exactly capacity accepted
            if (errors.get() == 0 && overflow > 0 && firstStreamEnd.get() > lastOverflowAnswer.get()
                    && accepted != Math.min(total, capacity)) {
                failures.add(accepted + " accepted while no stream had ended; the capacity is " + capacity);
            }
        }
        boolean exact = overflow > 0 && firstStreamEnd.get() > lastOverflowAnswer.get();
        String result = failures.isEmpty() ? "PASS" : "FAIL";
        StringBuilder s = new StringBuilder();
        s.append("mode=").append(soakSeconds > 0 ? "soak" : "load").append('\n')
                .append("clients=").append(clients).append('\n')
                .append("overflow=").append(overflow).append('\n')
                .append("capacity=").append(capacity).append('\n')
                .append("max_tokens=").append(maxTokens).append('\n')
                .append("completed=").append(completed.get() + overflowAccepted.get()).append('\n')
                .append("completed_overflow=").append(overflowAccepted.get()).append('\n')
                .append("refused_429=").append(refused.get()).append('\n')
                .append("errors=").append(errors.get()).append('\n')
                .append("chunks=").append(chunks.get()).append('\n')
                .append("ttft_samples=").append(t.size()).append('\n')
                .append("ttft_p50_ms=").append(p50).append('\n')
                .append("ttft_p99_ms=").append(p99).append('\n')
                .append("ttft_max_ms=").append(t.isEmpty() ? -1 : t.get(t.size() - 1)).append('\n')
                .append("overflow_arrived_before_any_stream_ended=").append(exact).append('\n');
        int i = 0;
        for (String e : errorSamples) s.append("error_").append(i++).append('=').append(e.replace('\n', ' ')).append('\n');
        for (String f : failures) s.append("failure=").append(f).append('\n');
        s.append("result=").append(result).append('\n');
        System.out.println();
        System.out.println("==== ds4j load summary ====");
        System.out.print(s);
        System.out.println(String.format(Locale.ROOT, "completed %d / 429 %d / errors %d; TTFT p50 %d ms, p99 %d ms",
                completed.get() + overflowAccepted.get(), refused.get(), errors.get(), p50, p99));
        try {
            Files.createDirectories(summary.toAbsolutePath().getParent());
            Files.writeString(summary, s.toString(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            System.out.println("cannot write " + summary + ": " + e);
        }
    }

    private static long percentile(List<Long> sorted, int p) {
        if (sorted.isEmpty()) return -1;
        int idx = (int) Math.ceil(p / 100.0 * sorted.size()) - 1;
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, idx)));
    }
}
