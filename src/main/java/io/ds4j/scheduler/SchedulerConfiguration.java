package io.ds4j.scheduler;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.EngineService;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** The one scheduler, stepping on the engine owner thread, sized from the configuration and the memory available. */
@Configuration(proxyBeanMethods = false)
public class SchedulerConfiguration {
    private static final Logger log = LoggerFactory.getLogger(SchedulerConfiguration.class);
    /** The default max-concurrent never exceeds this (a CPU step gains little beyond it). */
    static final int DEFAULT_CAP = 64;
    /** ds4.scheduler.sampling-threads when unset: the cores, up to this many */
    static final int DEFAULT_SAMPLING_THREADS = 8;

    @Bean
    RequestScheduler requestScheduler(EngineService engine, Ds4jProperties props) {
        var sp = props.scheduler();
        long perSession = engine.sessionBytes();
        long budget = sp.sessionMemory() != null ? sp.sessionMemory().toBytes()
                : engine.freeSessionMemory() > 0 ? engine.freeSessionMemory() / 2 : -1;
        int max = sp.maxConcurrent() != null ? sp.maxConcurrent() : defaultMaxConcurrent(budget, perSession);
        int cache = sp.cacheSessions() != null ? Math.min(sp.cacheSessions(), max) : max;
        if (engine.sessions() != null) {
            engine.call(() -> {
                engine.sessions().configure(max, cache);
                return null;
            });
            log.info("scheduler: up to {} concurrent sequence(s){} of {} MiB each, {} token rows per step, {} cached "
                    + "idle session(s), queue {}", max, sp.maxConcurrent() != null ? "" : " (from " + (budget >> 20)
                    + " MiB for sessions)", perSession >> 20, sp.stepTokens(), cache, props.server().queueLimit());
        }
        int threads = sp.samplingThreads() != null ? sp.samplingThreads()
                : Math.min(DEFAULT_SAMPLING_THREADS, Runtime.getRuntime().availableProcessors());
        return new RequestScheduler(engine, max, props.server().queueLimit(), sp.stepTokens(), sp.parkSharedPrefixes(),
                threads);
    }

    /** min(64, budget / per-session bytes), at least 1 (1 when either is unknown, e.g. without a model). */
    static int defaultMaxConcurrent(long budget, long perSession) {
        if (budget <= 0 || perSession <= 0) return 1;
        return (int) Math.max(1, Math.min(DEFAULT_CAP, budget / perSession));
    }
}
