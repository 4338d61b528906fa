package io.ds4j.api;

import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.webtestclient.autoconfigure.AutoConfigureWebTestClient;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.web.reactive.server.WebTestClient;

/**
 * One running server (shared Spring context) with the REAL engine serving the
 * converted dsv4-tiny-a fixture (vocab 512, no tokenizer): token-id prompts.
 * One sequence at a time, so the queue tests see a queue (batching has its own tests).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "ds4.engine.context-size=512",
        "ds4.engine.prefill-chunk=8",
        "ds4.engine.threads=2",
        "ds4.server.queue-limit=1",
        "ds4.scheduler.max-concurrent=1",
        "ds4.server.keep-alive-interval=0s",
        "ds4.server.max-output-tokens=1000",
        "ds4.server.shutdown-drain=1s"})
@AutoConfigureWebTestClient(timeout = "60s")
public abstract class TinyModelServerTest {
    @Autowired
    protected WebTestClient web;

    @DynamicPropertySource
    static void model(DynamicPropertyRegistry r) {
        r.add("ds4.engine.library", TestModels::library);
        r.add("ds4.model.path", () -> TestModels.tinyA().toString());
    }
}
