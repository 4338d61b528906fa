package io.ds4j.api;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.Ds4jNative;
import io.ds4j.engine.EngineService;
import io.ds4j.engine.GenerationListener;
import io.ds4j.engine.GenerationRequest;
import io.ds4j.engine.GenerationResult;
import io.ds4j.metrics.ServerMetrics;
import io.ds4j.scheduler.RequestScheduler;
import io.ds4j.scheduler.Ticket;
import java.util.function.Consumer;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;
import java.util.concurrent.TimeUnit;
import reactor.core.Disposable;
import reactor.core.scheduler.Schedulers;

/**
 * Runs generations through the scheduler on the engine thread and exposes
 * them as a Flux of events. The request is admitted (or refused with 429)
 * synchronously in {@link #start}; cancelling the Flux (client gone) cancels
 * the ticket, which frees a queued slot at once or stops a running
 * generation at its next token.
 */
@Component
public class Generations {
    /** Events of one generation, in order. */
    public sealed interface Event {
        record KeepAlive() implements Event {}

        record PromptDone(int promptTokens, int cachedTokens) implements Event {}

        record Output(Object item) implements Event {}

        record End(GenerationResult result) implements Event {}
    }

    /** Turns sampled tokens into endpoint-specific outputs; called on the engine thread. */
    public interface TokenHandler {
        /** Returns false to stop generating. */
        boolean onToken(Ds4jNative.Sample sample, Consumer<Object> emit);

        void onEnd(GenerationResult result, Consumer<Object> emit);
    }

    private final RequestScheduler scheduler;
    private final EngineService engine;
    private final ServerMetrics metrics;
    private final long keepAliveNanos;

    public Generations(RequestScheduler scheduler, EngineService engine, ServerMetrics metrics, Ds4jProperties props) {
        this.scheduler = scheduler;
        this.engine = engine;
        this.metrics = metrics;
        this.keepAliveNanos = props.server().keepAliveInterval().toNanos();
    }

    /** Serialises emissions from the engine thread and the keep-alive timer into one sink. */
    static final class Emitter {
        private final Sinks.Many<Event> sink = Sinks.many().unicast().onBackpressureBuffer();

        synchronized void tryEmitNext(Event e) {
            sink.tryEmitNext(e);
        }

        synchronized void tryEmitError(Throwable t) {
            sink.tryEmitError(t);
        }

        synchronized void tryEmitComplete() {
            sink.tryEmitComplete();
        }

        Flux<Event> asFlux() {
            return sink.asFlux();
        }
    }

    public Flux<Event> start(String requestId, long arrivalNanos, GenerationRequest req, TokenHandler handler) {
        Emitter sink = new Emitter();
        Ticket ticket = scheduler.submit(requestId, t -> run(t, arrivalNanos, req, handler, sink));
        // keep-alives while the request waits in the queue (during prefill the progress callback sends them)
        long period = Math.max(keepAliveNanos, 100_000_000L); // 0 = as often as sensible
        Disposable ticker = Schedulers.parallel().schedulePeriodically(() -> {
            if (ticket.state() == Ticket.State.QUEUED) sink.tryEmitNext(new Event.KeepAlive());
        }, period, period, TimeUnit.NANOSECONDS);
        return sink.asFlux().doOnCancel(ticket::cancel).doFinally(s -> ticker.dispose());
    }

    private void run(Ticket t, long arrival, GenerationRequest req, TokenHandler handler, Emitter sink) {
        Consumer<Object> emit = o -> sink.tryEmitNext(new Event.Output(o));
        try {
            long[] last = {System.nanoTime(), 0};
            GenerationResult r = engine.generate(req, new GenerationListener() {
                @Override
                public boolean onPrefillProgress(int done, int total) {
                    long now = System.nanoTime();
                    if (now - last[0] >= keepAliveNanos) {
                        last[0] = now;
                        sink.tryEmitNext(new Event.KeepAlive());
                    }
                    return !t.cancelRequested();
                }

                @Override
                public void onPromptDone(int promptTokens, int cachedTokens) {
                    sink.tryEmitNext(new Event.PromptDone(promptTokens, cachedTokens));
                }

                @Override
                public boolean onToken(Ds4jNative.Sample sample) {
                    long now = System.nanoTime();
                    if (last[1] == 0) metrics.firstToken(now - arrival);
                    else metrics.interToken(now - last[1]);
                    last[1] = now;
                    return handler.onToken(sample, emit);
                }
            }, t::cancelRequested);
            metrics.generation(r);
            if (r.stop() == GenerationResult.Stop.CANCELLED && !t.cancelRequested()) {
                sink.tryEmitError(ApiException.notReady("the server is shutting down; generation was stopped"));
                return;
            }
            handler.onEnd(r, emit);
            sink.tryEmitNext(new Event.End(r));
            sink.tryEmitComplete();
        } catch (Throwable e) {
            sink.tryEmitError(e);
        }
    }
}
