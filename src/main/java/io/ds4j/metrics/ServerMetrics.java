package io.ds4j.metrics;

import io.ds4j.engine.EngineService;
import io.ds4j.engine.GenerationResult;
import io.ds4j.scheduler.RequestScheduler;
import io.ds4j.engine.DiskStateCache;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import org.springframework.stereotype.Component;

/**
 * The server's Micrometer meters (exported at /actuator/prometheus with a
 * ds4j_ prefix): requests by endpoint, status and finish reason; queue depth
 * and queue wait; running sequences, sequences and token rows per batched
 * step, tokens sampled (a rate of it is the aggregate tok/s); prefix-cache
 * lookups and hits; prompt / generated / cached tokens; time to first token;
 * inter-token latency; request duration; prefill and decode speed; context usage.
 */
@Component
public class ServerMetrics implements RequestScheduler.Observer {
    private final MeterRegistry registry;
    private final Counter promptTokens;
    private final Counter generatedTokens;
    private final Counter cachedTokens;
    private final Timer ttft;
    private final Timer itl;
    private final DistributionSummary prefillSpeed;
    private final DistributionSummary decodeSpeed;
    private final DistributionSummary batchSequences;
    private final DistributionSummary batchRows;
    private final Counter prefillRows;
    private final Counter sampled;
    private final Timer queueWait;
    private final Counter prefixLookups;
    private final Counter prefixHits;

    public ServerMetrics(MeterRegistry registry, RequestScheduler scheduler, EngineService engine) {
        this.registry = registry;
        Gauge.builder("ds4j.queue.depth", scheduler, RequestScheduler::queueDepth)
                .description("requests waiting for the engine").register(registry);
        Gauge.builder("ds4j.requests.active", scheduler, RequestScheduler::active)
                .description("sequences in the running batch").register(registry);
        Gauge.builder("ds4j.scheduler.parked", scheduler, RequestScheduler::parked)
                .description("requests waiting for a running sequence to evaluate the prompt prefix they share "
                        + "(counted in ds4j.queue.depth too)").register(registry);
        Gauge.builder("ds4j.scheduler.max.concurrent", scheduler, RequestScheduler::maxConcurrent)
                .description("most sequences that run together (ds4.scheduler.max-concurrent)").register(registry);
        Gauge.builder("ds4j.context.used", engine, EngineService::contextUsed).baseUnit("tokens")
                .description("tokens held by the session of the generation that finished last").register(registry);
        Gauge.builder("ds4j.context.size", engine, EngineService::contextSize).baseUnit("tokens")
                .description("context size of each serving session").register(registry);
        Gauge.builder("ds4j.context.usage", engine, e -> e.contextSize() == 0 ? 0.0 : (double) e.contextUsed() / e.contextSize())
                .description("fraction of the context in use").register(registry);
        io.micrometer.core.instrument.FunctionCounter.builder("ds4j.cluster.recoveries", engine, EngineService::recoveries)
                .description("times the leader rebuilt the cluster after a lost rank (ds4.distributed.recovery)")
                .register(registry);
        promptTokens = Counter.builder("ds4j.tokens.prompt").description("prompt tokens received").register(registry);
        generatedTokens = Counter.builder("ds4j.tokens.generated").description("tokens generated").register(registry);
        cachedTokens = Counter.builder("ds4j.tokens.cached").description("prompt tokens reused from the session")
                .register(registry);
        ttft = Timer.builder("ds4j.time.to.first.token").publishPercentileHistogram()
                .description("request arrival to first generated token").register(registry);
        itl = Timer.builder("ds4j.inter.token.latency").publishPercentileHistogram()
                .description("time between generated tokens").register(registry);
        prefillSpeed = DistributionSummary.builder("ds4j.prefill.speed").baseUnit("tokens_per_second")
                .description("prompt tokens evaluated per second").register(registry);
        decodeSpeed = DistributionSummary.builder("ds4j.decode.speed").baseUnit("tokens_per_second")
                .description("tokens generated per second").register(registry);
        batchSequences = DistributionSummary.builder("ds4j.batch.sequences").baseUnit("sequences")
                .description("sequences evaluated together in one step").register(registry);
        batchRows = DistributionSummary.builder("ds4j.batch.rows").baseUnit("tokens")
                .description("token rows (decode tokens plus prefill chunks) of one step").register(registry);
        prefillRows = Counter.builder("ds4j.batch.prefill.rows").baseUnit("tokens")
                .description("prompt tokens evaluated in batched steps").register(registry);
        sampled = Counter.builder("ds4j.tokens.sampled").baseUnit("tokens")
                .description("tokens sampled, counted per step (rate = aggregate generation speed)").register(registry);
        queueWait = Timer.builder("ds4j.queue.wait").publishPercentileHistogram()
                .description("admission to joining the running batch").register(registry);
        prefixLookups = Counter.builder("ds4j.prefix.cache.lookups")
                .description("requests that looked for a cached prompt prefix").register(registry);
        prefixHits = Counter.builder("ds4j.prefix.cache.hits")
                .description("requests that reused a cached prompt prefix (hit ratio = hits / lookups)").register(registry);
        diskMeters(registry, engine);
        copyMeters(registry, engine);
        scheduler.observe(this);
    }

    /** Prefixes copied from running sequences' sessions (SessionPool); such requests count as hits above too. */
    private static void copyMeters(MeterRegistry registry, EngineService engine) {
        io.micrometer.core.instrument.FunctionCounter.builder("ds4j.prefix.cache.copies", engine,
                        e -> e.sessions() == null ? 0 : e.sessions().copyStats().copies())
                .description("requests that copied a prompt prefix from a running sequence's session").register(registry);
        io.micrometer.core.instrument.FunctionCounter.builder("ds4j.prefix.cache.copied.tokens", engine,
                        e -> e.sessions() == null ? 0 : e.sessions().copyStats().tokens())
                .description("prompt tokens copied from running sequences' sessions instead of evaluated").register(registry);
    }

    /** The prefix cache on disk (ds4.cache.disk), registered whether or not it is configured (zeros then). */
    private static void diskMeters(MeterRegistry registry, EngineService engine) {
        record M(String name, String description, java.util.function.ToLongFunction<DiskStateCache.Stats> value,
                 boolean counter) {}
        var meters = java.util.List.of(
                new M("ds4j.prefix.cache.disk.files", "state files in the disk cache", DiskStateCache.Stats::files, false),
                new M("ds4j.prefix.cache.disk.bytes", "bytes of the disk cache's state files", DiskStateCache.Stats::bytes, false),
                new M("ds4j.prefix.cache.disk.hits", "requests that loaded a prompt prefix from disk", DiskStateCache.Stats::hits, true),
                new M("ds4j.prefix.cache.disk.loaded.tokens", "prompt tokens loaded from disk instead of evaluated",
                        DiskStateCache.Stats::tokensLoaded, true),
                new M("ds4j.prefix.cache.disk.writes", "state files written", DiskStateCache.Stats::writes, true),
                new M("ds4j.prefix.cache.disk.removed.damaged", "state files removed as damaged or foreign",
                        DiskStateCache.Stats::removedDamaged, true),
                new M("ds4j.prefix.cache.disk.evicted", "state files removed to stay within max-size",
                        DiskStateCache.Stats::evicted, true));
        for (M m : meters) {
            java.util.function.ToDoubleFunction<EngineService> f = e -> {
                var p = e.sessions();
                var d = p == null ? null : p.disk();
                return d == null ? 0 : m.value().applyAsLong(d.stats());
            };
            if (m.counter()) {
                io.micrometer.core.instrument.FunctionCounter.builder(m.name(), engine, f).description(m.description())
                        .register(registry);
            } else {
                Gauge.builder(m.name(), engine, f).description(m.description()).register(registry);
            }
        }
    }

    @Override
    public void step(int sequences, int rows, int prefill) {
        batchSequences.record(sequences);
        batchRows.record(rows);
        if (prefill > 0) prefillRows.increment(prefill);
    }

    @Override
    public void queueWait(long nanos) {
        queueWait.record(Duration.ofNanos(nanos));
    }

    @Override
    public void prefixLookup(int cached) {
        prefixLookups.increment();
        if (cached > 0) prefixHits.increment();
    }

    @Override
    public void sampled(int tokens) {
        sampled.increment(tokens);
    }

    public void firstToken(long nanos) {
        ttft.record(Duration.ofNanos(nanos));
    }

    public void interToken(long nanos) {
        itl.record(Duration.ofNanos(nanos));
    }

    public void generation(GenerationResult r) {
        promptTokens.increment(r.promptTokens());
        cachedTokens.increment(r.cachedTokens());
        generatedTokens.increment(r.generatedTokens());
        int evaluated = r.promptTokens() - r.cachedTokens();
        if (evaluated > 0 && r.prefillNanos() > 0) prefillSpeed.record(evaluated * 1e9 / r.prefillNanos());
        if (r.generatedTokens() > 1 && r.decodeNanos() > 0) decodeSpeed.record(r.generatedTokens() * 1e9 / r.decodeNanos());
    }

    /** One finished request: status is "ok", "cancelled" or an error code; finish reason "" when none. */
    public void request(String endpoint, String status, String finishReason, long nanos) {
        Counter.builder("ds4j.requests").tag("endpoint", endpoint).tag("status", status)
                .tag("finish_reason", finishReason == null ? "" : finishReason)
                .description("finished requests").register(registry).increment();
        Timer.builder("ds4j.request.duration").tag("endpoint", endpoint).tag("status", status)
                .description("request duration").register(registry).record(Duration.ofNanos(nanos));
    }
}
