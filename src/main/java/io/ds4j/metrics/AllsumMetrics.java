package io.ds4j.metrics;

import io.ds4j.engine.EngineService;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.DisposableBean;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * Per-layer latency of the expert-parallel all_sum (ds4j_engine_allsum_drain)
 * as Prometheus histograms:
 * {@code ds4j_allsum_latency_seconds{layer="N",rank="R",dtype="f32|f16|bf16",overlap="true|false"}}
 * and the counter {@code ds4j_allsum_dropped_total} of samples the engine
 * overwrote before they were drained. The figures are this process's engine's
 * (rank R); other ranks' reach a Prometheus only through their own endpoint
 * (a follower running the server exports its rank's, a {@code ds4j-tool follow}
 * rank exports none). dtype and overlap are the engine's payload and
 * overlap in effect (describe JSON); with overlap=true a sample is the time
 * left exposed after the shared expert, not the whole collective. Drained
 * every second on its own daemon thread (the native call may come from any
 * thread) and right before each /actuator/prometheus scrape, so a scrape sees
 * every sample taken so far. Without comm= the engine produces no samples and
 * no layer meter appears.
 */
@Component
public class AllsumMetrics implements WebFilter, DisposableBean {
    private static final Logger log = LoggerFactory.getLogger(AllsumMetrics.class);
    private final EngineService engine;
    private final MeterRegistry registry;
    private final Counter dropped;
    /** Per (layer, rank, dtype, overlap): a reloaded engine with other settings gets its own series. */
    private final ConcurrentHashMap<Key, Timer> layers = new ConcurrentHashMap<>();
    private final ScheduledExecutorService timer;
    private volatile boolean failedOnce;

    public AllsumMetrics(EngineService engine, MeterRegistry registry) {
        this.engine = engine;
        this.registry = registry;
        this.dropped = Counter.builder("ds4j.allsum.dropped")
                .description("all_sum latency samples overwritten in the engine before they were drained")
                .register(registry);
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "ds4j-allsum-metrics");
            t.setDaemon(true);
            return t;
        });
        timer.scheduleWithFixedDelay(this::drainQuietly, 1, 1, TimeUnit.SECONDS);
    }

    private record Key(int layer, int rank, String dtype, boolean overlap) {}

    private Timer layer(Key k) {
        return layers.computeIfAbsent(k, l -> Timer.builder("ds4j.allsum.latency")
                .tag("layer", Integer.toString(l.layer()))
                .tag("rank", Integer.toString(l.rank()))
                .tag("dtype", l.dtype())
                .tag("overlap", Boolean.toString(l.overlap()))
                .description("latency of the routed-expert all_sum of one MoE layer on this rank "
                        + "(includes waiting for the slowest peer; with overlap=true the part left exposed after "
                        + "the shared expert)")
                .publishPercentileHistogram()
                .register(registry));
    }

    /** Moves every pending engine sample into the meters; returns how many. Any thread. */
    public synchronized int drain() {
        int[] n = {0};
        int rank = engine.rank();
        String dtype = engine.allsumDtype();
        boolean overlap = engine.allsumOverlap();
        long lost = engine.drainAllsum((l, ns) -> {
            layer(new Key(l, rank, dtype, overlap)).record(ns, TimeUnit.NANOSECONDS);
            n[0]++;
        });
        if (lost > 0) dropped.increment(lost);
        return n[0];
    }

    private void drainQuietly() {
        try {
            drain();
        } catch (RuntimeException e) {
            if (!failedOnce) log.warn("cannot drain all_sum statistics: {}", e.toString());
            failedOnce = true;
        }
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        if (exchange.getRequest().getPath().value().endsWith("/actuator/prometheus")) drainQuietly();
        return chain.filter(exchange);
    }

    @Override
    public void destroy() {
        timer.shutdownNow();
    }
}
