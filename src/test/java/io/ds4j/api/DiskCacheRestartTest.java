package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.ds4j.Ds4jApplication;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import tools.jackson.databind.JsonNode;

/**
 * The prefix cache on disk across server restarts (demo model, chat API): a
 * long conversation's prompt state written by one server is loaded by the
 * next one, whose cached_tokens shows the reuse and whose greedy answer is
 * the one computed from scratch; after the file is corrupted, the next
 * server detects it, removes it, and answers from scratch again.
 */
class DiskCacheRestartTest {
    @TempDir
    Path cacheDir;

    ConfigurableApplicationContext start() {
        return new SpringApplicationBuilder(Ds4jApplication.class).web(WebApplicationType.REACTIVE).logStartupInfo(false)
                .run("--server.port=0", "--server.address=127.0.0.1",
                        "--ds4.engine.library=" + TestModels.library(),
                        "--ds4.model.path=" + TestModels.demo(),
                        "--ds4.engine.context-size=2048", "--ds4.engine.threads=2",
                        "--ds4.scheduler.max-concurrent=2", "--ds4.server.shutdown-drain=1s",
                        "--ds4.cache.disk.dir=" + cacheDir, "--ds4.cache.disk.min-tokens=64");
    }

    static int port(ConfigurableApplicationContext ctx) {
        return Integer.parseInt(ctx.getEnvironment().getProperty("local.server.port"));
    }

    /** A conversation of a few turns with a long system prompt (some hundreds of tokens). */
    static String conversation() {
        StringBuilder system = new StringBuilder("You are the assistant of a small engineering team. Rules:");
        for (int i = 1; i <= 30; i++) {
            system.append(" Rule ").append(i).append(": keep answer ").append(i).append(" short and cite file names.");
        }
        return "{\"model\":\"demo\",\"max_tokens\":12,\"temperature\":0,\"thinking\":false,\"messages\":["
                + "{\"role\":\"system\",\"content\":\"" + system + "\"},"
                + "{\"role\":\"user\",\"content\":\"Where is the tokenizer?\"},"
                + "{\"role\":\"assistant\",\"content\":\"In src/main/java/io/ds4j/tokenizer.\"},"
                + "{\"role\":\"user\",\"content\":\"And the scheduler?\"}]}";
    }

    record Answer(String text, int promptTokens, int cached) {}

    static Answer ask(ConfigurableApplicationContext ctx) throws Exception {
        HttpResponse<String> r = Http.postAsync(port(ctx), "/v1/chat/completions", conversation()).get();
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode j = Params.JSON.readTree(r.body());
        return new Answer(j.get("choices").get(0).get("message").get("content").stringValue(),
                j.get("usage").get("prompt_tokens").intValue(),
                j.get("usage").get("prompt_tokens_details").get("cached_tokens").intValue());
    }

    double meter(ConfigurableApplicationContext ctx, String name) {
        var registry = ctx.getBean(io.micrometer.core.instrument.MeterRegistry.class);
        var m = registry.find(name).meter();
        return m == null ? -1 : m.measure().iterator().next().getValue();
    }

    List<Path> stateFiles() throws Exception {
        try (Stream<Path> s = Files.walk(cacheDir)) {
            return s.filter(p -> p.toString().endsWith(".state")).toList();
        }
    }

    @Test
    void aRestartedServerReloadsTheConversationFromDiskAndAnswersAsFromScratch() throws Exception {
        Answer fromScratch;
        try (var first = start()) {
            fromScratch = ask(first);
            assertThat(fromScratch.cached()).isZero();
            assertThat(fromScratch.promptTokens()).isGreaterThan(200);
            // written once the engine is idle, right after the answer
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (meter(first, "ds4j.prefix.cache.disk.writes") < 1 && System.nanoTime() < deadline) Thread.sleep(20);
            assertThat(meter(first, "ds4j.prefix.cache.disk.writes")).isEqualTo(1);
        }
        assertThat(stateFiles()).hasSize(1);

        try (var second = start()) {
            Answer again = ask(second);
            assertThat(again.cached()).as("all but the last prompt token loaded from disk")
                    .isEqualTo(fromScratch.promptTokens() - 1);
            assertThat(again.text()).isEqualTo(fromScratch.text());
            assertThat(meter(second, "ds4j.prefix.cache.disk.hits")).isEqualTo(1);
            assertThat(meter(second, "ds4j.prefix.cache.disk.loaded.tokens")).isEqualTo(fromScratch.promptTokens() - 1);
        }

        // one byte of the state changed: detected on load, removed, answered from scratch
        Path file = stateFiles().getFirst();
        byte[] b = Files.readAllBytes(file);
        b[b.length / 2] ^= 0x40;
        Files.write(file, b);
        try (var third = start()) {
            Answer afterDamage = ask(third);
            assertThat(afterDamage.cached()).isZero();
            assertThat(afterDamage.text()).isEqualTo(fromScratch.text());
            assertThat(meter(third, "ds4j.prefix.cache.disk.removed.damaged")).isEqualTo(1);
        }
        // (and the third server wrote a good copy back)
        assertThat(stateFiles()).hasSize(1);
        assertThat(Files.readAllBytes(stateFiles().getFirst())).isNotEqualTo(b);
    }
}
