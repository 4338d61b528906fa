package io.ds4j.security;

import java.util.List;
import org.springframework.security.authentication.AbstractAuthenticationToken;

/** A presented API key: unauthenticated as read from the request, authenticated once it matched. */
public final class ApiKeyAuthentication extends AbstractAuthenticationToken {
    private final transient String key;

    private ApiKeyAuthentication(String key, boolean authenticated) {
        super(List.of());
        this.key = key;
        setAuthenticated(authenticated);
    }

    static ApiKeyAuthentication presented(String key) {
        return new ApiKeyAuthentication(key, false);
    }

    static ApiKeyAuthentication accepted() {
        return new ApiKeyAuthentication(null, true);
    }

    @Override
    public Object getCredentials() {
        return key;
    }

    @Override
    public Object getPrincipal() {
        return "api-key";
    }
}
