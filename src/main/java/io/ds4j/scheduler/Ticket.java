package io.ds4j.scheduler;

import java.util.concurrent.atomic.AtomicReference;

/**
 * A request's place in the scheduler: QUEUED, then RUNNING, then DONE; or
 * cancelled. Between QUEUED and RUNNING it may be PARKED: out of the queue
 * and holding a place in the batch, but still without a session, waiting for
 * a running sequence to evaluate the prompt prefix the two share (see
 * {@link RequestScheduler}). Cancelling a queued or parked ticket frees its
 * place at once; cancelling a running one makes the generation stop at its
 * next token.
 */
public final class Ticket {
    public enum State { QUEUED, PARKED, RUNNING, DONE, CANCELLED_QUEUED }

    private final String requestId;
    private final long enqueuedNanos = System.nanoTime();
    private final AtomicReference<State> state = new AtomicReference<>(State.QUEUED);
    private volatile boolean cancelRequested;
    private final Runnable onCancelQueued;

    Ticket(String requestId, Runnable onCancelQueued) {
        this.requestId = requestId;
        this.onCancelQueued = onCancelQueued;
    }

    public String requestId() {
        return requestId;
    }

    public long enqueuedNanos() {
        return enqueuedNanos;
    }

    public State state() {
        return state.get();
    }

    /** True once cancel() was called (checked by the generation loop). */
    public boolean cancelRequested() {
        return cancelRequested;
    }

    public void cancel() {
        cancelRequested = true;
        // a parked ticket has no session yet either: nothing to stop, its place is free now (the step loop drops it)
        if (state.compareAndSet(State.QUEUED, State.CANCELLED_QUEUED)
                || state.compareAndSet(State.PARKED, State.CANCELLED_QUEUED)) {
            onCancelQueued.run();
        }
    }

    boolean start() {
        return state.compareAndSet(State.QUEUED, State.RUNNING);
    }

    /** A ticket just started goes back to waiting, now for a running sequence's prefix. */
    void park() {
        if (!state.compareAndSet(State.RUNNING, State.PARKED)) throw new IllegalStateException("not running: " + state.get());
    }

    /** A parked ticket joins the batch; false if it was cancelled meanwhile (its place is already free). */
    boolean unpark() {
        return state.compareAndSet(State.PARKED, State.RUNNING);
    }

    void finish() {
        state.set(State.DONE);
    }
}
