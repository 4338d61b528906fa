package io.ds4j.scheduler;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** Admission in front of the batch (pure unit; the step loop is tested end to end against the engine). */
class AdmissionTest {
    @Test
    void admitsRunningPlusQueueLimitInArrivalOrderAndRefusesBeyond() {
        Admission<String> a = new Admission<>(2, 1);
        a.admit("a", "a");
        a.admit("b", "b");
        a.admit("c", "c");
        assertThatThrownBy(() -> a.admit("d", "d")).isInstanceOf(QueueFullException.class).hasMessageContaining("busy");
        assertThat(a.admitted()).isEqualTo(3);
        var first = a.next();
        assertThat(first.item()).isEqualTo("a");
        assertThat(first.ticket().state()).isEqualTo(Ticket.State.RUNNING);
        assertThat(a.next().item()).isEqualTo("b");
        a.finished(first.ticket());
        assertThat(first.ticket().state()).isEqualTo(Ticket.State.DONE);
        a.admit("e", "e"); // a's place is free again
        assertThat(a.next().item()).isEqualTo("c");
        assertThat(a.next().item()).isEqualTo("e");
        assertThat(a.next()).isNull();
    }

    @Test
    void cancellingAWaitingRequestFreesItsPlaceAtOnceAndItNeverRuns() {
        Admission<String> a = new Admission<>(1, 1);
        a.admit("a", "a");
        Ticket b = a.admit("b", "b");
        assertThatThrownBy(() -> a.admit("c", "c")).isInstanceOf(QueueFullException.class);
        b.cancel();
        assertThat(b.state()).isEqualTo(Ticket.State.CANCELLED_QUEUED);
        assertThat(a.admitted()).isEqualTo(1);
        a.admit("c", "c");
        assertThat(a.next().item()).isEqualTo("a");
        assertThat(a.next().item()).isEqualTo("c");
        assertThat(a.hasWaiting()).isFalse();
    }

    @Test
    void cancellingARunningRequestOnlyFlagsIt() {
        Admission<String> a = new Admission<>(1, 0);
        Ticket t = a.admit("a", "a");
        assertThat(a.next().ticket()).isSameAs(t);
        t.cancel();
        assertThat(t.cancelRequested()).isTrue();
        assertThat(t.state()).isEqualTo(Ticket.State.RUNNING);
        assertThatThrownBy(() -> a.admit("b", "b")).isInstanceOf(QueueFullException.class);
        a.finished(t);
        a.admit("b", "b");
    }

    @Test
    void aParkedRequestCancelledFreesItsPlaceAtOnceAndCannotJoinAfterwards() {
        Admission<String> a = new Admission<>(2, 0);
        a.admit("lead", "lead");
        Ticket p = a.admit("p", "p");
        a.next();
        assertThat(a.next().ticket()).isSameAs(p);
        p.park(); // the step loop: waiting for the leader's prefix
        assertThat(p.state()).isEqualTo(Ticket.State.PARKED);
        assertThatThrownBy(() -> a.admit("c", "c")).isInstanceOf(QueueFullException.class);
        p.cancel();
        assertThat(p.state()).isEqualTo(Ticket.State.CANCELLED_QUEUED);
        assertThat(a.admitted()).isEqualTo(1);
        assertThat(p.unpark()).as("dropped by the step loop, never run").isFalse();
        a.admit("c", "c");
    }

    @Test
    void aParkedRequestThatJoinsIsRunningAgainAndACancelThenOnlyFlagsIt() {
        Admission<String> a = new Admission<>(1, 0);
        Ticket t = a.admit("a", "a");
        a.next();
        t.park();
        assertThat(t.unpark()).isTrue();
        assertThat(t.state()).isEqualTo(Ticket.State.RUNNING);
        t.cancel();
        assertThat(t.cancelRequested()).isTrue();
        assertThat(t.state()).isEqualTo(Ticket.State.RUNNING);
        assertThat(a.admitted()).isEqualTo(1);
    }
}
