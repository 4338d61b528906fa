package io.ds4j.scheduler;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Queue logic of the scheduler (the work items are plain tasks; engine behaviour is tested end to end). */
class RequestSchedulerTest {
    final ExecutorService thread = Executors.newSingleThreadExecutor();

    @AfterEach
    void stop() {
        thread.shutdownNow();
    }

    @Test
    void runsOneAtATimeInArrivalOrderAndRefusesBeyondTheLimit() throws Exception {
        RequestScheduler s = new RequestScheduler(thread, 2);
        CountDownLatch release = new CountDownLatch(1);
        CountDownLatch started = new CountDownLatch(1);
        List<String> order = new CopyOnWriteArrayList<>();
        s.submit("a", t -> {
            started.countDown();
            await(release);
            order.add("a");
        });
        assertThat(started.await(5, TimeUnit.SECONDS)).isTrue();
        s.submit("b", t -> order.add("b"));
        s.submit("c", t -> order.add("c"));
        assertThat(s.queueDepth()).isEqualTo(2);
        assertThat(s.active()).isEqualTo(1);
        assertThatThrownBy(() -> s.submit("d", t -> order.add("d")))
                .isInstanceOf(QueueFullException.class).hasMessageContaining("busy");
        release.countDown();
        drain();
        assertThat(order).containsExactly("a", "b", "c");
        assertThat(s.queueDepth()).isZero();
        s.submit("e", t -> order.add("e"));
        drain();
        assertThat(order).endsWith("e");
    }

    @Test
    void cancellingAQueuedRequestFreesItsSlotAndSkipsIt() throws Exception {
        RequestScheduler s = new RequestScheduler(thread, 1);
        CountDownLatch release = new CountDownLatch(1);
        List<String> order = new CopyOnWriteArrayList<>();
        s.submit("a", t -> await(release));
        Ticket b = s.submit("b", t -> order.add("b"));
        assertThatThrownBy(() -> s.submit("c", t -> order.add("c"))).isInstanceOf(QueueFullException.class);
        b.cancel();
        assertThat(b.state()).isEqualTo(Ticket.State.CANCELLED_QUEUED);
        s.submit("c", t -> order.add("c"));
        release.countDown();
        drain();
        assertThat(order).containsExactly("c");
    }

    @Test
    void zeroQueueLimitAdmitsOnlyTheRunningRequest() throws Exception {
        RequestScheduler s = new RequestScheduler(thread, 0);
        CountDownLatch release = new CountDownLatch(1);
        Ticket a = s.submit("a", t -> await(release));
        assertThatThrownBy(() -> s.submit("b", t -> {})).isInstanceOf(QueueFullException.class);
        a.cancel(); // running: only flags it
        assertThat(a.cancelRequested()).isTrue();
        release.countDown();
        drain();
        s.submit("c", t -> {});
        drain();
        assertThat(s.queueDepth()).isZero();
    }

    private void drain() throws Exception {
        thread.submit(() -> {}).get(5, TimeUnit.SECONDS);
    }

    private static void await(CountDownLatch l) {
        try {
            l.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
