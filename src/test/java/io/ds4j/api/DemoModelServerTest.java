package io.ds4j.api;

import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * One running server (shared Spring context) with the REAL engine serving the
 * synthetic demo model (`ds4j-tool synth --preset demo`, DeepSeek's tokenizer,
 * random weights): chat, text prompts, tokenizer endpoints, client tests.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=4096",
        "ds4.engine.threads=2",
        "ds4.server.max-output-tokens=4000",
        "ds4.server.shutdown-drain=1s"})
@AutoConfigureWebTestClient(timeout = "60s")
public abstract class DemoModelServerTest {
    @Autowired
    protected WebTestClient web;
    @LocalServerPort
    protected int port;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.demo().toString());
    }
}
