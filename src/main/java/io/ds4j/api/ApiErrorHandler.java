package io.ds4j.api;

import io.ds4j.config.Ds4jProperties;
import java.nio.charset.StandardCharsets;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.annotation.Order;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpStatus;
import org.springframework.http.HttpStatusCode;
import org.springframework.http.MediaType;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebExceptionHandler;
import reactor.core.publisher.Mono;

/**
 * Answers every failure on the API paths (/v1/**, /tokenize, /detokenize) in
 * OpenAI's error shape (Anthropic's under /v1/messages, {@link AnthropicErrors}), including malformed JSON, unknown URLs and 429 (with
 * Retry-After). Runs before Spring Boot's default error handler.
 */
@Component
@Order(-2)
public class ApiErrorHandler implements WebExceptionHandler {
    private static final Logger log = LoggerFactory.getLogger(ApiErrorHandler.class);
    private final long retryAfterSeconds;

    public ApiErrorHandler(Ds4jProperties props) {
        this.retryAfterSeconds = Math.max(1, props.server().retryAfter().toSeconds());
    }

    static boolean apiPath(String path) {
        return path.startsWith("/v1/") || path.equals("/v1") || path.equals("/tokenize") || path.equals("/detokenize");
    }

    @Override
    public Mono<Void> handle(ServerWebExchange exchange, Throwable ex) {
        if (!apiPath(exchange.getRequest().getPath().value()) || exchange.getResponse().isCommitted()) {
            return Mono.error(ex);
        }
        if (ex instanceof reactor.netty.channel.AbortedException) {
            // the client closed its side (or the whole connection) before its request was read: nobody to answer
            log.debug("request {} {}: the client closed the connection", exchange.getRequest().getMethod(),
                    exchange.getRequest().getPath());
            return Mono.empty();
        }
        ApiException api = OpenAiErrors.toApi(ex);
        if (api.status().is5xxServerError() && api.status() != HttpStatus.SERVICE_UNAVAILABLE) {
            log.error("request {} {} failed", exchange.getRequest().getMethod(), exchange.getRequest().getPath(), ex);
        }
        var response = exchange.getResponse();
        boolean anthropic = AnthropicErrors.anthropicPath(exchange.getRequest().getPath().value());
        response.setStatusCode(anthropic ? HttpStatusCode.valueOf(AnthropicErrors.status(api)) : api.status());
        response.getHeaders().setContentType(MediaType.APPLICATION_JSON);
        if (api.status() == HttpStatus.TOO_MANY_REQUESTS || api.status() == HttpStatus.SERVICE_UNAVAILABLE) {
            response.getHeaders().set(HttpHeaders.RETRY_AFTER, Long.toString(retryAfterSeconds));
        }
        var body = anthropic ? AnthropicErrors.body(api) : OpenAiErrors.body(api);
        byte[] bytes = body.toString().getBytes(StandardCharsets.UTF_8);
        return response.writeWith(Mono.just(response.bufferFactory().wrap(bytes)));
    }
}
