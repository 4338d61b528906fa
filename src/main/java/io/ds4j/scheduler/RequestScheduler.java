package io.ds4j.scheduler;

import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * Bounded FIFO in front of the engine. Exactly one request generates at a
 * time (the engine has one timeline: its session's KV state); up to
 * {@code queueLimit} more wait in arrival order, further ones are refused with
 * {@link QueueFullException}. Work runs on the engine owner thread
 * ({@code executor}, which must be single-threaded and FIFO).
 */
public class RequestScheduler {
    private final Executor executor;
    private final int queueLimit;
    /** requests admitted and not yet finished or cancelled while queued */
    private final AtomicInteger admitted = new AtomicInteger();
    private final AtomicInteger running = new AtomicInteger();

    public RequestScheduler(Executor executor, int queueLimit) {
        this.executor = executor;
        this.queueLimit = queueLimit;
    }

    public int queueLimit() {
        return queueLimit;
    }

    /** Requests waiting (not counting the one generating). */
    public int queueDepth() {
        return Math.max(0, admitted.get() - running.get());
    }

    /** 1 while a request generates. */
    public int active() {
        return running.get();
    }

    /**
     * Admits a request: {@code work} later runs on the engine thread with its
     * ticket (unless cancelled while queued, then {@code onSkipped} runs there
     * instead, or nothing if the ticket was already released).
     *
     * @throws QueueFullException when {@code queueLimit} requests already wait
     */
    public Ticket submit(String requestId, Consumer<Ticket> work) {
        while (true) {
            int n = admitted.get();
            if (n >= queueLimit + 1) throw new QueueFullException(queueLimit);
            if (admitted.compareAndSet(n, n + 1)) break;
        }
        Ticket ticket = new Ticket(requestId, admitted::decrementAndGet);
        try {
            executor.execute(() -> run(ticket, work));
        } catch (RejectedExecutionException e) {
            ticket.cancel();
            throw new IllegalStateException("the engine is shutting down", e);
        }
        return ticket;
    }

    private void run(Ticket ticket, Consumer<Ticket> work) {
        if (!ticket.start()) return; // cancelled while queued: its slot is already free
        running.incrementAndGet();
        try {
            work.accept(ticket);
        } finally {
            ticket.finish();
            running.decrementAndGet();
            admitted.decrementAndGet();
        }
    }
}
