package io.ds4j.security;

import org.springframework.security.authentication.BadCredentialsException;
import org.springframework.security.authentication.ReactiveAuthenticationManager;
import org.springframework.security.core.Authentication;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Mono;

/**
 * Accepts an {@link ApiKeyAuthentication} whose key is configured; any other key fails with
 * {@link BadCredentialsException} (401 "Incorrect API key"). Being the application's
 * ReactiveAuthenticationManager bean, it also stops Spring Boot from creating its default user.
 */
@Component
public class ApiKeyAuthenticationManager implements ReactiveAuthenticationManager {
    private final ApiKeys keys;

    public ApiKeyAuthenticationManager(ApiKeys keys) {
        this.keys = keys;
    }

    @Override
    public Mono<Authentication> authenticate(Authentication authentication) {
        return Mono.fromSupplier(() -> {
            if (authentication instanceof ApiKeyAuthentication a && keys.matches((String) a.getCredentials())) {
                return ApiKeyAuthentication.accepted();
            }
            throw new BadCredentialsException("Incorrect API key provided");
        });
    }
}
