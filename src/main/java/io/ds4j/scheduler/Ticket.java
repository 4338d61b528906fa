package io.ds4j.scheduler;

import java.util.concurrent.atomic.AtomicReference;

/**
 * A request's place in the scheduler: QUEUED, then RUNNING, then DONE; or
 * cancelled. Cancelling a queued ticket frees its slot at once; cancelling a
 * running one makes the generation stop at its next token.
 */
public final class Ticket {
    public enum State { QUEUED, RUNNING, DONE, CANCELLED_QUEUED }

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
        if (state.compareAndSet(State.QUEUED, State.CANCELLED_QUEUED)) onCancelQueued.run();
    }

    boolean start() {
        return state.compareAndSet(State.QUEUED, State.RUNNING);
    }

    void finish() {
        state.set(State.DONE);
    }
}
