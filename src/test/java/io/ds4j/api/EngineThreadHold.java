package io.ds4j.api;

import io.ds4j.engine.EngineService;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Test helper: blocks the engine thread between two scheduler steps, so a test can line requests up
 * against a known batch state; the returned latch lets it go on (a 60 s bound everywhere).
 */
final class EngineThreadHold {
    private EngineThreadHold() {}

    /** At the next moment between two steps. */
    static CountDownLatch now(ConfigurableApplicationContext ctx) throws Exception {
        return when(ctx, () -> true);
    }

    /** At the first moment between two steps when {@code cond} holds there (checked on the engine thread). */
    static CountDownLatch when(ConfigurableApplicationContext ctx, BooleanSupplier cond) throws Exception {
        EngineService engine = ctx.getBean(EngineService.class);
        CountDownLatch release = new CountDownLatch(1);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < deadline) {
            CompletableFuture<Boolean> held = new CompletableFuture<>();
            engine.executor().execute(() -> {
                boolean now = cond.getAsBoolean();
                held.complete(now);
                if (!now) return;
                try {
                    release.await(60, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            if (held.get(60, TimeUnit.SECONDS)) return release;
            Thread.sleep(1);
        }
        throw new AssertionError("the engine thread never reached the wanted state");
    }
}
