package io.ds4j.web;

import io.ds4j.config.Ds4jProperties;
import java.time.Duration;
import org.springframework.boot.reactor.netty.NettyServerCustomizer;
import org.springframework.stereotype.Component;
import reactor.netty.http.server.HttpServer;

/**
 * Bounds what a hostile or broken client can hold open on the Netty server: a connection that sends no
 * request for {@code ds4.server.idle-timeout} is closed, and a request body must arrive within
 * {@code ds4.server.request-read-timeout} (in total, and between any two reads). Generation time is not
 * limited here: that is {@code ds4.server.request-timeout}. Both are off (0) by default; with 0 the
 * server is left exactly as Spring Boot builds it.
 */
@Component
public class ConnectionTimeouts implements NettyServerCustomizer {
    private final Duration idleTimeout;
    private final Duration readTimeout;

    public ConnectionTimeouts(Ds4jProperties props) {
        this.idleTimeout = props.server().idleTimeout();
        this.readTimeout = props.server().requestReadTimeout();
    }

    @Override
    public HttpServer apply(HttpServer server) {
        HttpServer s = server;
        if (!idleTimeout.isZero()) s = s.idleTimeout(idleTimeout);
        if (!readTimeout.isZero()) s = s.readTimeout(readTimeout).requestTimeout(readTimeout);
        return s;
    }
}
