package io.ds4j;

import org.springframework.boot.webtestclient.autoconfigure.WebTestClientBuilderCustomizer;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.client.reactive.ReactorClientHttpConnector;
import reactor.netty.http.client.HttpClient;
import reactor.netty.resources.ConnectionProvider;

/**
 * The tests' WebTestClient opens a new connection per request instead of reusing pooled keep-alive ones.
 * In full test runs (30+ servers in one JVM) a request sent on a reused connection sometimes got no answer
 * for 60 s (GET /v1/models after three POSTs in ApiKeyAuthenticationTest, GET /actuator/health elsewhere);
 * clients of the real server are not affected by this test-only choice.
 */
@Configuration(proxyBeanMethods = false)
public class TestClientConnections {
    @Bean
    WebTestClientBuilderCustomizer unpooledConnections() {
        return builder -> builder.clientConnector(
                new ReactorClientHttpConnector(HttpClient.create(ConnectionProvider.newConnection())));
    }
}
