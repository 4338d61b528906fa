package io.ds4j.scheduler;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Admission control in front of the batch: at most {@code maxRunning +
 * queueLimit} requests are admitted at once (running or waiting), further ones
 * are refused with {@link QueueFullException}. Waiting ones join in arrival
 * order; cancelling a waiting ticket frees its place at once. Any thread may
 * admit; {@link #next()} and {@link #finished()} are called by the step loop.
 *
 * @param <T> what a waiting request carries
 */
final class Admission<T> {
    record Waiting<T>(Ticket ticket, T item) {}

    private final int maxRunning;
    private final int queueLimit;
    private final AtomicInteger admitted = new AtomicInteger();
    private final ConcurrentLinkedQueue<Waiting<T>> waiting = new ConcurrentLinkedQueue<>();

    Admission(int maxRunning, int queueLimit) {
        this.maxRunning = maxRunning;
        this.queueLimit = queueLimit;
    }

    int queueLimit() {
        return queueLimit;
    }

    /** Requests admitted and not finished (running plus waiting). */
    int admitted() {
        return admitted.get();
    }

    /** Admits {@code item} at the end of the line, or refuses it. */
    Ticket admit(String requestId, T item) {
        while (true) {
            int n = admitted.get();
            if (n >= maxRunning + queueLimit) throw new QueueFullException(queueLimit);
            if (admitted.compareAndSet(n, n + 1)) break;
        }
        Ticket ticket = new Ticket(requestId, admitted::decrementAndGet);
        waiting.add(new Waiting<>(ticket, item));
        return ticket;
    }

    boolean hasWaiting() {
        return !waiting.isEmpty();
    }

    /** The next waiting request, now RUNNING; tickets cancelled while waiting are dropped. Null if none. */
    Waiting<T> next() {
        Waiting<T> w;
        while ((w = waiting.poll()) != null) {
            if (w.ticket().start()) return w;
        }
        return null;
    }

    /** A running request ended: its place is free. */
    void finished(Ticket t) {
        t.finish();
        admitted.decrementAndGet();
    }
}
