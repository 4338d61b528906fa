package io.ds4j.security;

import org.springframework.boot.security.autoconfigure.actuate.web.reactive.EndpointRequest;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.HttpMethod;
import org.springframework.security.config.annotation.web.reactive.EnableWebFluxSecurity;
import org.springframework.security.config.web.server.SecurityWebFiltersOrder;
import org.springframework.security.config.web.server.ServerHttpSecurity;
import org.springframework.security.web.server.SecurityWebFilterChain;
import org.springframework.security.web.server.authentication.AuthenticationWebFilter;
import org.springframework.security.web.server.authentication.ServerAuthenticationEntryPointFailureHandler;
import org.springframework.security.web.server.context.NoOpServerSecurityContextRepository;
import org.springframework.security.web.server.savedrequest.NoOpServerRequestCache;
import org.springframework.web.cors.CorsConfiguration;
import org.springframework.web.cors.reactive.UrlBasedCorsConfigurationSource;

/**
 * The one security filter chain. Stateless (no session, no saved request, no CSRF: clients send a key
 * with every call, never a cookie). With no key configured every exchange is permitted (the server's
 * behaviour before keys existed). With keys, an {@link AuthenticationWebFilter} reads the key
 * ({@link ApiKeyAuthenticationConverter}) and checks it ({@link ApiKeyAuthenticationManager}); every
 * path then needs a valid key except the actuator endpoints while {@code ds4.security.protect-management}
 * is false. CORS headers are sent only for the configured origins.
 */
@Configuration(proxyBeanMethods = false)
@EnableWebFluxSecurity
public class SecurityConfiguration {

    @Bean
    SecurityWebFilterChain apiSecurityFilterChain(ServerHttpSecurity http, ApiKeys keys,
                                                  ApiKeyAuthenticationManager manager, ApiSecurityProperties props) {
        var entryPoint = new UnauthorizedEntryPoint();
        http.csrf(ServerHttpSecurity.CsrfSpec::disable)
                .httpBasic(ServerHttpSecurity.HttpBasicSpec::disable)
                .formLogin(ServerHttpSecurity.FormLoginSpec::disable)
                .logout(ServerHttpSecurity.LogoutSpec::disable)
                .anonymous(ServerHttpSecurity.AnonymousSpec::disable)
                .requestCache(c -> c.requestCache(NoOpServerRequestCache.getInstance()))
                .securityContextRepository(NoOpServerSecurityContextRepository.getInstance())
                // responses keep the cache headers the handlers set (SSE: no-cache)
                .headers(h -> h.cache(ServerHttpSecurity.HeaderSpec.CacheSpec::disable));
        if (props.corsAllowedOrigins().isEmpty()) {
            http.cors(ServerHttpSecurity.CorsSpec::disable);
        } else {
            http.cors(c -> c.configurationSource(cors(props)));
        }
        if (!keys.required()) {
            return http.authorizeExchange(a -> a.anyExchange().permitAll()).build();
        }
        AuthenticationWebFilter authentication = new AuthenticationWebFilter(manager);
        authentication.setServerAuthenticationConverter(new ApiKeyAuthenticationConverter());
        authentication.setAuthenticationFailureHandler(new ServerAuthenticationEntryPointFailureHandler(entryPoint));
        return http.addFilterAt(authentication, SecurityWebFiltersOrder.AUTHENTICATION)
                .exceptionHandling(e -> e.authenticationEntryPoint(entryPoint))
                .authorizeExchange(a -> {
                    if (!props.protectManagement()) a.matchers(EndpointRequest.toAnyEndpoint()).permitAll();
                    if (!props.corsAllowedOrigins().isEmpty()) a.pathMatchers(HttpMethod.OPTIONS).permitAll();
                    a.anyExchange().authenticated();
                })
                .build();
    }

    private static UrlBasedCorsConfigurationSource cors(ApiSecurityProperties props) {
        CorsConfiguration c = new CorsConfiguration();
        c.setAllowedOrigins(props.corsAllowedOrigins());
        c.addAllowedMethod(HttpMethod.GET);
        c.addAllowedMethod(HttpMethod.POST);
        c.addAllowedHeader("*");
        c.addExposedHeader("X-Request-Id");
        c.setMaxAge(3600L);
        UrlBasedCorsConfigurationSource source = new UrlBasedCorsConfigurationSource();
        source.registerCorsConfiguration("/**", c);
        return source;
    }
}
