package io.ds4j.api;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.GenerationResult;
import io.ds4j.metrics.ServerMetrics;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.http.HttpHeaders;
import org.springframework.http.MediaType;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/** Shared plumbing of the generation endpoints: ids, responses, SSE writing, usage, request logs. */
@Component
public class ApiSupport {
    static final Logger requestLog = LoggerFactory.getLogger("io.ds4j.requests");
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final char[] ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".toCharArray();

    final Ds4jProperties props;
    final ServedModel model;
    final Generations generations;
    final ServerMetrics metrics;

    public ApiSupport(Ds4jProperties props, ServedModel model, Generations generations, ServerMetrics metrics) {
        this.props = props;
        this.model = model;
        this.generations = generations;
        this.metrics = metrics;
    }

    static String newId(String prefix) {
        StringBuilder sb = new StringBuilder(prefix);
        for (int i = 0; i < 24; i++) sb.append(ALPHABET[RANDOM.nextInt(ALPHABET.length)]);
        return sb.toString();
    }

    /** The request body as text, whatever its content type (clients often omit application/json). */
    Mono<String> body(org.springframework.web.server.ServerWebExchange exchange) {
        return body(exchange, props.server().maxRequestSize());
    }

    /**
     * The request body as text, at most {@code limit} bytes (more: 413 request_too_large). It must be UTF-8
     * (JSON's encoding): a malformed byte is a 400 naming its offset, never silently replaced. A body that
     * stops arriving (ds4.server.request-read-timeout) is a 408.
     */
    static Mono<String> body(org.springframework.web.server.ServerWebExchange exchange, org.springframework.util.unit.DataSize limit) {
        return org.springframework.core.io.buffer.DataBufferUtils.join(exchange.getRequest().getBody(), (int) limit.toBytes())
                .map(buf -> {
                    byte[] bytes = new byte[buf.readableByteCount()];
                    buf.read(bytes);
                    org.springframework.core.io.buffer.DataBufferUtils.release(buf);
                    return utf8(bytes);
                })
                .onErrorMap(org.springframework.core.io.buffer.DataBufferLimitException.class,
                        e -> new ApiException(org.springframework.http.HttpStatus.PAYLOAD_TOO_LARGE, "invalid_request_error",
                                null, "request_too_large", "the request body exceeds " + limit.toBytes()
                                + " bytes (ds4.server.max-request-size)"))
                // between reads (readTimeout) or in total (requestTimeout): whichever of Netty's two fires first;
                // Reactor Netty's RequestTimeoutException is package-private, hence the name
                .onErrorMap(e -> e instanceof io.netty.handler.timeout.ReadTimeoutException
                                || e.getClass().getName().equals("reactor.netty.http.server.RequestTimeoutException"),
                        e -> new ApiException(org.springframework.http.HttpStatus.REQUEST_TIMEOUT, "invalid_request_error",
                                null, "request_timeout", "the request body did not arrive in time "
                                + "(ds4.server.request-read-timeout)"))
                .defaultIfEmpty("");
    }

    /** Strict UTF-8 decoding: a malformed or truncated sequence is a 400 with the offset of its first byte. */
    static String utf8(byte[] bytes) {
        var decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT);
        java.nio.ByteBuffer in = java.nio.ByteBuffer.wrap(bytes);
        java.nio.CharBuffer out = java.nio.CharBuffer.allocate(bytes.length);
        java.nio.charset.CoderResult r = decoder.decode(in, out, true);
        if (!r.isError()) r = decoder.flush(out);
        if (r.isError()) {
            throw ApiException.invalid(null, "invalid_json", "the request body is not valid UTF-8: malformed byte "
                    + String.format("0x%02X", bytes[in.position()] & 0xff) + " at offset " + in.position());
        }
        return out.flip().toString();
    }

    static ObjectNode object() {
        return JsonNodeFactory.instance.objectNode();
    }

    static Mono<Void> json(ServerHttpResponse response, ObjectNode body) {
        response.getHeaders().setContentType(MediaType.APPLICATION_JSON);
        byte[] bytes = body.toString().getBytes(StandardCharsets.UTF_8);
        return response.writeWith(Mono.just(response.bufferFactory().wrap(bytes)));
    }

    /** Writes SSE text, flushing after every event. */
    static Mono<Void> sse(ServerHttpResponse response, Flux<String> events) {
        response.getHeaders().setContentType(MediaType.TEXT_EVENT_STREAM);
        response.getHeaders().setCacheControl("no-cache");
        response.getHeaders().set("X-Accel-Buffering", "no");
        return response.writeAndFlushWith(events.map(s -> {
            DataBuffer b = response.bufferFactory().wrap(s.getBytes(StandardCharsets.UTF_8));
            return Mono.just(b);
        }));
    }

    /** A stream's error event: data: {"error":{...}} (the stream ends after it). */
    static String errorEvent(Throwable t) {
        return Sse.data(OpenAiErrors.body(OpenAiErrors.toApi(t)).toString());
    }

    static ObjectNode usage(GenerationResult r, int reasoningTokens) {
        ObjectNode u = object();
        u.put("prompt_tokens", r.promptTokens());
        u.put("completion_tokens", r.generatedTokens());
        u.put("total_tokens", r.promptTokens() + r.generatedTokens());
        u.putObject("prompt_tokens_details").put("cached_tokens", r.cachedTokens());
        if (reasoningTokens >= 0) u.putObject("completion_tokens_details").put("reasoning_tokens", reasoningTokens);
        return u;
    }

    static String finishReason(GenerationResult.Stop stop, String fromHandler) {
        return switch (stop) {
            case LENGTH, CONTEXT -> "length";
            default -> fromHandler == null ? "stop" : fromHandler;
        };
    }

    void logRequest(String id, String endpoint, String user, String status, String finish, GenerationResult r,
                    long arrivalNanos) {
        long nanos = System.nanoTime() - arrivalNanos;
        metrics.request(endpoint, status, finish, nanos);
        if (r == null) {
            requestLog.info("id={} endpoint={} status={} user={} duration_ms={}", id, endpoint, status,
                    user == null ? "-" : user, nanos / 1_000_000);
        } else {
            requestLog.info("id={} endpoint={} status={} finish={} prompt_tokens={} cached_tokens={} completion_tokens={} "
                            + "prefill_ms={} decode_ms={} duration_ms={} user={}", id, endpoint, status, finish,
                    r.promptTokens(), r.cachedTokens(), r.generatedTokens(), r.prefillNanos() / 1_000_000,
                    r.decodeNanos() / 1_000_000, nanos / 1_000_000, user == null ? "-" : user);
        }
    }

    static String statusOf(Throwable t) {
        ApiException a = OpenAiErrors.toApi(t);
        return a.code() != null ? a.code() : Integer.toString(a.status().value());
    }

    /** Checks prompt length against the limits; returns the output budget. */
    int budget(int promptTokens, Integer requestedMax, String promptParam) {
        int ctx = model.contextSize();
        int maxPrompt = props.server().maxPromptTokens() > 0 ? Math.min(props.server().maxPromptTokens(), ctx - 1) : ctx - 1;
        if (promptTokens > maxPrompt) {
            throw new ApiException(org.springframework.http.HttpStatus.BAD_REQUEST, "invalid_request_error", promptParam,
                    "context_length_exceeded", "This model's maximum context length is " + ctx + " tokens and prompts "
                    + "may use at most " + maxPrompt + "; your prompt has " + promptTokens + " tokens.");
        }
        int room = ctx - promptTokens;
        int max = requestedMax != null ? requestedMax : props.server().maxOutputTokens();
        return Math.max(1, Math.min(max, room));
    }

    static void retryAfter(ServerHttpResponse response, long seconds) {
        response.getHeaders().set(HttpHeaders.RETRY_AFTER, Long.toString(seconds));
    }
}
