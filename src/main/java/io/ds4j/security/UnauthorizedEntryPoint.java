package io.ds4j.security;

import io.ds4j.api.AnthropicErrors;
import io.ds4j.api.ApiException;
import io.ds4j.api.OpenAiErrors;
import java.nio.charset.StandardCharsets;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.security.authentication.BadCredentialsException;
import org.springframework.security.core.AuthenticationException;
import org.springframework.security.web.server.ServerAuthenticationEntryPoint;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;

/**
 * 401 in OpenAI's error shape, as OpenAI answers a missing or wrong key:
 * {"error":{"message":...,"type":"invalid_request_error","param":null,"code":"invalid_api_key"}},
 * with {@code WWW-Authenticate: Bearer}; under /v1/messages in Anthropic's shape
 * ({"type":"error","error":{"type":"authentication_error",...}}). The key itself is never echoed.
 */
public final class UnauthorizedEntryPoint implements ServerAuthenticationEntryPoint {
    static final String MISSING = "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'";
    static final String WRONG = "Incorrect API key provided";

    @Override
    public Mono<Void> commence(ServerWebExchange exchange, AuthenticationException ex) {
        String message = ex instanceof BadCredentialsException ? WRONG : MISSING;
        var error = new ApiException(HttpStatus.UNAUTHORIZED, "invalid_request_error", null, "invalid_api_key", message);
        var response = exchange.getResponse();
        response.setStatusCode(HttpStatus.UNAUTHORIZED);
        response.getHeaders().setContentType(MediaType.APPLICATION_JSON);
        response.getHeaders().set(HttpHeaders.WWW_AUTHENTICATE, "Bearer");
        var body = AnthropicErrors.anthropicPath(exchange.getRequest().getPath().value())
                ? AnthropicErrors.body(error) : OpenAiErrors.body(error);
        byte[] bytes = body.toString().getBytes(StandardCharsets.UTF_8);
        return response.writeWith(Mono.just(response.bufferFactory().wrap(bytes)));
    }
}
