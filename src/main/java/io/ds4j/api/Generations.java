package io.ds4j.api;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.Ds4jNative;
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
import java.util.concurrent.atomic.AtomicInteger;
import reactor.core.Disposable;
import reactor.core.Disposables;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * Runs generations through the scheduler (they join the running batch on the
 * engine thread) and exposes each one as a Flux of events. The request is admitted (or refused with 429)
 * synchronously in {@link #start}; when the bound response ends for any
 * reason (client gone, write failed, done) the ticket is cancelled, which
 * frees a queued slot at once or stops a running generation at its next token.
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
    private final ServerMetrics metrics;
    private final long keepAliveNanos;
    private final long timeoutNanos;
    private final AtomicInteger liveTimers = new AtomicInteger();

    public Generations(RequestScheduler scheduler, ServerMetrics metrics, Ds4jProperties props) {
        this.scheduler = scheduler;
        this.metrics = metrics;
        this.keepAliveNanos = props.server().keepAliveInterval().toNanos();
        this.timeoutNanos = props.server().requestTimeout().toNanos();
    }

    /** The 408 of a request that ran past ds4.server.request-timeout. */
    static ApiException timeout(long timeoutNanos) {
        return new ApiException(org.springframework.http.HttpStatus.REQUEST_TIMEOUT, "invalid_request_error", null,
                "request_timeout", "the request took longer than " + java.time.Duration.ofNanos(timeoutNanos)
                .toString().substring(2).toLowerCase(java.util.Locale.ROOT) + " (ds4.server.request-timeout)");
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

    /**
     * One admitted generation: its events, and {@link #bind} to tie its
     * lifetime to the response publisher that actually goes out. The events
     * Flux may never be subscribed (a streaming body that is cancelled, or
     * whose first write fails, before it reaches this Flux), so cleanup must
     * not depend on it alone.
     */
    public static final class Started {
        private final Flux<Event> events;
        private final Ticket ticket;
        private final Disposable ticker;

        Started(Flux<Event> events, Ticket ticket, Disposable ticker) {
            this.events = events;
            this.ticket = ticket;
            this.ticker = ticker;
        }

        public Flux<Event> events() {
            return events;
        }

        /**
         * The outermost response publisher, releasing the generation however
         * it ends: a queued ticket frees its slot, a running one stops at its
         * next token (a no-op once the generation has finished).
         */
        public <T> Mono<T> bind(Mono<T> response) {
            return response.doFinally(s -> release());
        }

        void release() {
            ticket.cancel();
            ticker.dispose();
        }
    }

    /** Keep-alive timers not yet stopped (for tests: each must stop when its request leaves the queue). */
    int liveTimers() {
        return liveTimers.get();
    }

    /** Admits the request (or throws, e.g. 429, synchronously); callers must {@link Started#bind} their response. */
    public Started start(String requestId, long arrivalNanos, GenerationRequest req, TokenHandler handler) {
        Emitter sink = new Emitter();
        // the timer only serves the QUEUED (and PARKED) phase: it is stopped when the request joins the batch, when
        // it sees the ticket has left those, and when the response ends, whichever comes first
        Disposable.Swap ticker = Disposables.swap();
        Ticket[] ticketRef = new Ticket[1];
        Ticket ticket = scheduler.submit(requestId, req, new Running(arrivalNanos, handler, sink, ticker, ticketRef));
        ticketRef[0] = ticket;
        long period = Math.max(keepAliveNanos, 100_000_000L); // 0 = as often as sensible
        liveTimers.incrementAndGet();
        Disposable task = Schedulers.parallel().schedulePeriodically(() -> {
            // parked (waiting for a running sequence's prefix) is still waiting, as far as the client can tell
            Ticket.State st = ticket.state();
            if (st == Ticket.State.QUEUED || st == Ticket.State.PARKED) sink.tryEmitNext(new Event.KeepAlive());
            else ticker.dispose();
        }, period, period, TimeUnit.NANOSECONDS);
        ticker.update(Disposables.composite(task, liveTimers::decrementAndGet));
        Flux<Event> events = sink.asFlux().doOnCancel(ticket::cancel).doFinally(s -> ticker.dispose());
        return new Started(events, ticket, ticker);
    }

    /** One generation's side of the step loop (engine thread): tokens to the endpoint's handler, events to the sink. */
    private final class Running implements RequestScheduler.Handler {
        private final long arrival;
        private final TokenHandler handler;
        private final Emitter sink;
        private final Disposable ticker;
        private final Ticket[] ticket;
        private final Consumer<Object> emit;
        private long lastKeepAlive = System.nanoTime();
        private long lastToken;

        Running(long arrival, TokenHandler handler, Emitter sink, Disposable ticker, Ticket[] ticket) {
            this.arrival = arrival;
            this.handler = handler;
            this.sink = sink;
            this.ticker = ticker;
            this.ticket = ticket;
            this.emit = o -> sink.tryEmitNext(new Event.Output(o));
        }

        /** the wall-clock limit counts from the arrival: time spent queued is part of it */
        private boolean timedOut() {
            return timeoutNanos > 0 && System.nanoTime() - arrival > timeoutNanos;
        }

        private boolean cancelRequested() {
            return ticket[0] != null && ticket[0].cancelRequested();
        }

        @Override
        public boolean stopRequested() {
            return cancelRequested() || timedOut();
        }

        @Override
        public void onJoin() {
            ticker.dispose();
            lastKeepAlive = System.nanoTime();
        }

        @Override
        public boolean onPrefillProgress(int done, int total) {
            long now = System.nanoTime();
            if (now - lastKeepAlive >= keepAliveNanos) {
                lastKeepAlive = now;
                sink.tryEmitNext(new Event.KeepAlive());
            }
            return !stopRequested();
        }

        @Override
        public void onPromptDone(int promptTokens, int cachedTokens) {
            sink.tryEmitNext(new Event.PromptDone(promptTokens, cachedTokens));
        }

        @Override
        public boolean onToken(Ds4jNative.Sample sample) {
            long now = System.nanoTime();
            if (lastToken == 0) metrics.firstToken(now - arrival);
            else metrics.interToken(now - lastToken);
            lastToken = now;
            return handler.onToken(sample, emit);
        }

        @Override
        public void onResult(GenerationResult r) {
            metrics.generation(r);
            if (r.stop() == GenerationResult.Stop.CANCELLED && !cancelRequested() && timedOut()) {
                sink.tryEmitError(timeout(timeoutNanos));
                return;
            }
            if (r.stop() == GenerationResult.Stop.CANCELLED && !cancelRequested()) {
                sink.tryEmitError(ApiException.notReady("the server is shutting down; generation was stopped"));
                return;
            }
            try {
                handler.onEnd(r, emit);
                sink.tryEmitNext(new Event.End(r));
                sink.tryEmitComplete();
            } catch (Throwable e) {
                sink.tryEmitError(e);
            }
        }

        @Override
        public void onFailure(Throwable error) {
            sink.tryEmitError(error);
        }
    }
}
