package io.ds4j.security;

import org.springframework.http.HttpHeaders;
import org.springframework.security.core.Authentication;
import org.springframework.security.web.server.authentication.ServerAuthenticationConverter;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;

/**
 * Reads the key of {@code Authorization: Bearer <key>} (OpenAI clients) or {@code x-api-key: <key>}
 * (Anthropic-style clients); no key gives an empty result, which the entry point answers with 401.
 */
public final class ApiKeyAuthenticationConverter implements ServerAuthenticationConverter {
    static final String X_API_KEY = "x-api-key";
    private static final String BEARER = "bearer ";

    @Override
    public Mono<Authentication> convert(ServerWebExchange exchange) {
        HttpHeaders h = exchange.getRequest().getHeaders();
        String auth = h.getFirst(HttpHeaders.AUTHORIZATION);
        if (auth != null && auth.length() > BEARER.length() && auth.regionMatches(true, 0, BEARER, 0, BEARER.length())) {
            return Mono.just(ApiKeyAuthentication.presented(auth.substring(BEARER.length()).strip()));
        }
        String key = h.getFirst(X_API_KEY);
        if (key != null && !key.isBlank()) return Mono.just(ApiKeyAuthentication.presented(key.strip()));
        if (auth != null) return Mono.just(ApiKeyAuthentication.presented("")); // another scheme: a wrong key
        return Mono.empty();
    }
}
