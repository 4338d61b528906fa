package io.ds4j.scheduler;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.EngineService;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;
import org.springframework.stereotype.Component;

/**
 * Graceful shutdown, before the web server's own: refuse new requests (503),
 * let the running and queued ones finish for up to ds4.server.shutdown-drain,
 * then stop what is left at its next token (its stream ends with an error
 * event, a non-streaming request gets a 503), so the web server's graceful
 * phase finds no stuck connections.
 */
@Component
public class ShutdownCoordinator implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(ShutdownCoordinator.class);
    private final EngineService engine;
    private final RequestScheduler scheduler;
    private final long drainMillis;
    private volatile boolean running;

    public ShutdownCoordinator(EngineService engine, RequestScheduler scheduler, Ds4jProperties props) {
        this.engine = engine;
        this.scheduler = scheduler;
        this.drainMillis = props.server().shutdownDrain().toMillis();
    }

    @Override
    public void start() {
        engine.resume();
        running = true;
    }

    @Override
    public void stop() {
        running = false;
        engine.beginDrain();
        long deadline = System.currentTimeMillis() + drainMillis;
        int busy = scheduler.active() + scheduler.queueDepth();
        if (busy > 0) log.info("shutdown: letting {} request(s) finish (up to {} ms)", busy, drainMillis);
        while (scheduler.active() + scheduler.queueDepth() > 0 && System.currentTimeMillis() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        if (scheduler.active() + scheduler.queueDepth() > 0) {
            log.warn("shutdown: stopping {} unfinished request(s)", scheduler.active() + scheduler.queueDepth());
        }
        engine.beginShutdown();
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    @Override
    public int getPhase() {
        return Integer.MAX_VALUE; // stops first: before the web server's graceful shutdown
    }
}
