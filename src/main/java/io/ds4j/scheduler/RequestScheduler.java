package io.ds4j.scheduler;

import io.ds4j.engine.BatchEntry;
import io.ds4j.engine.EngineException;
import io.ds4j.engine.EngineService;
import io.ds4j.engine.GenerationListener;
import io.ds4j.engine.GenerationRequest;
import io.ds4j.engine.GenerationResult;
import io.ds4j.engine.SessionPool;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Continuous batching. Up to {@code maxConcurrent} sequences run together,
 * each in its own session; a step loop on the engine thread advances all of
 * them at once: every running sequence samples its next token from its own
 * logits, then one batched evaluation ({@link EngineService#step}) takes each
 * one's new token plus prefill chunks of the prompts still being read, within
 * {@code stepTokens} rows (at least one chunk, so a prompt always advances
 * and a long one never holds the others' decoding back). A request joins at
 * the next step and leaves the moment it finishes, is cancelled, times out or
 * loses its client; its session then stays cached for prefix reuse
 * ({@link SessionPool}). Beyond the running ones, up to {@code queueLimit}
 * wait in arrival order; further ones are refused ({@link QueueFullException}).
 *
 * <p>Shared prefixes are evaluated once. A request that joins while a
 * running sequence is still prefilling a prefix of at least
 * {@link SessionPool#MIN_COPY_TOKENS} tokens of its prompt (typically: many
 * requests with the same system prompt arriving together) is <em>parked</em>
 * instead of evaluating the same tokens beside it: it keeps a place in the
 * batch but takes no session and no rows. At every step each parked request
 * is looked at again; it joins (and {@link SessionPool#acquire} copies the
 * shared part from the leader's session) as soon as no running prefill will
 * offer more of its prompt than can be reused now, that is once the leader's
 * state reaches the shared part, or the leader is gone (cancelled, failed,
 * finished: then it evaluates the prefix itself, and the requests still
 * parked wait for it instead). A parked request is still waiting as far as
 * its client is concerned (keep-alives, its place freed at once on cancel).
 *
 * <p>Each step is one task on the engine's single-threaded executor, queued
 * again while there is work, so other engine calls interleave between steps.
 * The sequences of a step draw their tokens on up to {@code samplingThreads}
 * threads (the native sampler over each one's own logits: a softmax over the
 * vocabulary, a sort for top-p, milliseconds a token at 129k tokens);
 * everything else about a token (constraints, reporting it) stays on the
 * engine thread in the sequences' order, and each sequence has its own
 * sampler and seed, so the tokens do not depend on the threads.
 */
public class RequestScheduler {
    private static final Logger log = LoggerFactory.getLogger(RequestScheduler.class);

    /** A generation's side of the loop; every method is called on the engine thread and must be quick. */
    public interface Handler extends GenerationListener {
        /** Polled before every step: true stops the generation (client gone, timed out). */
        boolean stopRequested();

        /** The request left the queue (before its prompt is looked at). */
        default void onJoin() {}

        /** It ended (including stopped: {@link GenerationResult.Stop#CANCELLED}). */
        void onResult(GenerationResult result);

        /** It failed (bad prompt, engine error). */
        void onFailure(Throwable error);
    }

    /** Receives the loop's measurements (metrics). */
    public interface Observer {
        /** One evaluated step: sequences in it, token rows, of which prefill rows. */
        default void step(int sequences, int rows, int prefillRows) {}

        default void queueWait(long nanos) {}

        /** A joining request looked for a cached prefix; {@code cached} tokens were reused. */
        default void prefixLookup(int cached) {}

        /** Tokens sampled in one step. */
        default void sampled(int tokens) {}
    }

    private final EngineService engine;
    private final int maxConcurrent;
    private final int stepTokens;
    private final boolean parkSharedPrefixes;
    private final Admission<Job> admission;
    private final AtomicBoolean scheduled = new AtomicBoolean();
    /** engine thread only */
    private final List<Sequence> running = new ArrayList<>();
    /** engine thread only: requests out of the queue waiting for a running sequence's prefix, in arrival order */
    private final List<Admission.Waiting<Job>> parked = new ArrayList<>();
    private volatile int active;
    private volatile int parkedCount;
    private volatile Observer observer = new Observer() {};
    private int rotate;
    /** draws of a step beside each other (daemon workers that end when idle); null = on the engine thread */
    private final ForkJoinPool sampling;

    public RequestScheduler(EngineService engine, int maxConcurrent, int queueLimit, int stepTokens,
            boolean parkSharedPrefixes, int samplingThreads) {
        this.engine = engine;
        this.maxConcurrent = maxConcurrent;
        this.stepTokens = stepTokens;
        this.parkSharedPrefixes = parkSharedPrefixes;
        this.admission = new Admission<>(maxConcurrent, queueLimit);
        int threads = Math.min(samplingThreads, maxConcurrent);
        this.sampling = threads > 1 ? new ForkJoinPool(threads) : null;
    }

    /** Threads the sequences of a step draw their tokens on (1: the engine thread alone). */
    public int samplingThreads() {
        return sampling == null ? 1 : sampling.getParallelism();
    }

    public void observe(Observer o) {
        observer = o;
    }

    public int queueLimit() {
        return admission.queueLimit();
    }

    public int maxConcurrent() {
        return maxConcurrent;
    }

    public int stepTokens() {
        return stepTokens;
    }

    /** Requests admitted but not running yet. */
    public int queueDepth() {
        return Math.max(0, admission.admitted() - active);
    }

    /** Sequences in the running batch. */
    public int active() {
        return active;
    }

    /** Requests parked until a running sequence has evaluated the prompt prefix they share (part of {@link #queueDepth}). */
    public int parked() {
        return parkedCount;
    }

    /**
     * Admits a generation: it joins the batch at a coming step, its progress
     * and end go to {@code handler} on the engine thread. A ticket cancelled
     * while queued frees its place at once and never runs.
     *
     * @throws QueueFullException when max-concurrent + queue-limit requests are already admitted
     */
    public Ticket submit(String requestId, GenerationRequest req, Handler handler) {
        Ticket t = admission.admit(requestId, new Job(req, handler));
        if (!kick()) {
            t.cancel();
            throw new IllegalStateException("the engine is shutting down");
        }
        return t;
    }

    /** An admitted request, before it joins. */
    private record Job(GenerationRequest req, Handler handler) {}

    /** Makes sure a step is queued; false when the engine thread is gone. */
    private boolean kick() {
        if (!scheduled.compareAndSet(false, true)) return true;
        try {
            engine.executor().execute(this::loop);
            return true;
        } catch (RejectedExecutionException e) {
            scheduled.set(false);
            return false;
        }
    }

    private void loop() {
        try {
            step();
        } catch (Throwable t) {
            log.error("scheduler step failed; failing its {} sequence(s)", running.size(), t);
            SessionPool pool = engine.sessions();
            for (Sequence s : List.copyOf(running)) {
                if (pool != null && s.slot != null) pool.resync(s.slot); // the step may have stopped half-way
                fail(s, t);
            }
        }
        if (!running.isEmpty() || admission.hasWaiting() || !parked.isEmpty()) {
            try {
                engine.executor().execute(this::loop);
                return;
            } catch (RejectedExecutionException e) {
                for (Sequence s : List.copyOf(running)) fail(s, new IllegalStateException("the engine is shutting down"));
                for (var w : parked) {
                    if (w.ticket().unpark()) {
                        fail(new Sequence(w.ticket(), w.item().req(), w.item().handler()),
                                new IllegalStateException("the engine is shutting down"));
                    }
                }
                parked.clear();
                parkedCount = 0;
            }
        }
        // the batch is empty: the finished prompts' states go to the disk cache now, not during a step
        SessionPool pool = engine.sessions();
        if (pool != null) {
            try {
                pool.flushPendingWrites();
            } catch (RuntimeException e) {
                log.warn("disk cache: writing the finished prompts failed: {}", e.toString());
            }
        }
        scheduled.set(false);
        if (admission.hasWaiting()) kick(); // admitted between the check and the reset
    }

    /** Every sequence's draw; returns when all are done (a draw keeps its own failure for commit). */
    private void drawAll(List<Sequence> seqs) {
        if (sampling == null || seqs.size() < 2) {
            for (Sequence s : seqs) s.draw();
            return;
        }
        List<ForkJoinTask<?>> draws = new ArrayList<>(seqs.size());
        for (Sequence s : seqs) draws.add(sampling.submit(s::draw));
        for (ForkJoinTask<?> d : draws) d.join(); // uninterruptible: no commit may see a draw still running
    }

    private void step() {
        // 1. stopped sequences leave; every one with fresh logits samples its next token: constraints first (engine
        // thread), then the draws (beside each other when there are several), then each token is reported in order
        int sampledNow = 0;
        List<Sequence> drawing = new ArrayList<>();
        for (Sequence s : List.copyOf(running)) {
            if (s.stopRequested() || engine.stopping()) {
                end(s, GenerationResult.Stop.CANCELLED);
                continue;
            }
            if (!s.ready) continue;
            try {
                s.prepareDraw();
                drawing.add(s);
            } catch (RuntimeException e) {
                fail(s, e);
            }
        }
        drawAll(drawing);
        for (Sequence s : drawing) {
            try {
                GenerationResult.Stop stop = s.commit(engine.contextSize());
                sampledNow++;
                if (stop != null) end(s, stop);
            } catch (RuntimeException e) {
                fail(s, e);
            }
        }
        if (sampledNow > 0) observer.sampled(sampledNow);
        // 2. parked requests join once waiting gains nothing more; then waiting requests take the free places
        // (also those just left), in arrival order, parking when a running sequence is prefilling their prefix
        resumeParked();
        Admission.Waiting<Job> w;
        while (running.size() + parked.size() < maxConcurrent && (w = admission.next()) != null) {
            if (shouldPark(w.item().req())) {
                w.ticket().park();
                parked.add(w);
            } else {
                join(w.ticket(), w.item());
            }
        }
        parkedCount = parked.size();
        active = running.size();
        if (running.isEmpty()) return;
        // 3. the step: every decode token, then prefill chunks within the budget
        List<BatchEntry> entries = new ArrayList<>();
        List<Sequence> owners = new ArrayList<>();
        int rows = 0;
        for (Sequence s : running) {
            if (s.pending >= 0) {
                entries.add(new BatchEntry(s.slot.handle(), new int[] {s.pending}));
                owners.add(s);
                rows++;
            }
        }
        int decodeRows = rows;
        int n = running.size();
        int chunk = Math.max(1, engine.prefillChunk());
        boolean anyPrefill = false;
        List<Sequence> closing = new ArrayList<>();
        for (int k = 0; k < n; k++) {
            Sequence s = running.get((k + rotate) % n);
            if (!s.prefilling()) continue;
            int[] c = s.nextChunk(chunk);
            if (anyPrefill && rows + c.length > stepTokens) continue;
            if (c.length > 1 && s.next + c.length == s.req.prompt().length) {
                closing.add(s); // a prompt's last chunk (see SessionPool.finishPrompt)
            } else {
                entries.add(new BatchEntry(s.slot.handle(), c));
                owners.add(s);
            }
            rows += c.length;
            anyPrefill = true;
        }
        rotate++;
        if (entries.isEmpty() && closing.isEmpty()) return;
        EngineException[] failed = engine.step(entries);
        observer.step(entries.size() + closing.size(), rows, rows - decodeRows);
        SessionPool pool = engine.sessions();
        for (Sequence s : closing) {
            int[] c = s.nextChunk(chunk);
            try {
                pool.finishPrompt(s.slot, s.req.prompt());
                s.evaluated(c);
            } catch (RuntimeException e) {
                fail(s, e);
            }
        }
        for (int i = 0; i < entries.size(); i++) {
            Sequence s = owners.get(i);
            if (failed[i] != null) {
                pool.resync(s.slot);
                fail(s, failed[i]);
                continue;
            }
            pool.appended(s.slot, entries.get(i).tokens());
            s.evaluated(entries.get(i).tokens());
        }
        active = running.size();
    }

    /**
     * Parked requests, in arrival order: one that was cancelled is dropped (its place is already free), one
     * that should stop (timed out, engine stopping) or that waiting gains nothing more joins (join reports
     * the stop). Those joining now become leaders for the ones after them.
     */
    private void resumeParked() {
        for (var it = parked.iterator(); it.hasNext(); ) {
            var w = it.next();
            Job job = w.item();
            if (!job.handler().stopRequested() && !engine.stopping() && w.ticket().state() == Ticket.State.PARKED
                    && shouldPark(job.req())) {
                continue;
            }
            it.remove();
            if (w.ticket().unpark()) join(w.ticket(), job);
        }
    }

    /**
     * Whether a request with {@code req}'s prompt should wait: some running sequence's prefill will still
     * reach a state in the shared part of the two prompts (at least {@link SessionPool#MIN_COPY_TOKENS}) that
     * is further than anything {@link SessionPool#acquire} could reuse now. Only running sequences lead, and
     * each advances at every step or leaves, so a parked request always joins within that sequence's prefill.
     */
    private boolean shouldPark(GenerationRequest req) {
        if (!parkSharedPrefixes) return false;
        SessionPool pool = engine.sessions();
        if (pool == null || !pool.sharesRunningPrefixes()) return false;
        int[] prompt = req.prompt();
        if (prompt.length <= SessionPool.MIN_COPY_TOKENS || prompt.length >= engine.contextSize()) return false; // join() refuses it at once
        int chunk = Math.max(1, engine.prefillChunk()), interval = Math.max(1, engine.checkpointInterval());
        int coming = 0;
        for (Sequence s : running) { // one leaving leads nobody
            if (!s.stopRequested()) coming = Math.max(coming, s.prefixComing(prompt, chunk, interval));
        }
        return coming >= SessionPool.MIN_COPY_TOKENS && coming > pool.reusable(prompt);
    }

    private void join(Ticket ticket, Job job) {
        Sequence s = new Sequence(ticket, job.req(), job.handler());
        observer.queueWait(System.nanoTime() - ticket.enqueuedNanos());
        safely(s.handler::onJoin);
        if (s.handler.stopRequested() || engine.stopping()) {
            finish(s, new GenerationResult(GenerationResult.Stop.CANCELLED, s.req.prompt().length, 0, 0, 0, 0,
                    engine.contextUsed(), engine.contextSize()), null);
            return;
        }
        try {
            SessionPool pool = engine.sessions();
            if (pool == null) throw new EngineException(EngineException.STATE, "no model loaded");
            s.join(engine.nativeLib(), pool, engine.contextSize());
            observer.prefixLookup(s.cached);
            running.add(s);
        } catch (RuntimeException e) {
            finish(s, null, e);
        }
    }

    private void end(Sequence s, GenerationResult.Stop stop) {
        running.remove(s);
        int used = s.slot.pos();
        engine.noteContextUsed(used);
        finish(s, s.result(stop, used, engine.contextSize()), null);
    }

    private void fail(Sequence s, Throwable t) {
        running.remove(s);
        finish(s, null, t);
    }

    /** Releases everything the sequence holds, frees its place, then reports. */
    private void finish(Sequence s, GenerationResult r, Throwable error) {
        try {
            s.close();
        } catch (RuntimeException e) {
            log.warn("freeing a sampler failed: {}", e.toString());
        }
        if (s.slot != null) {
            SessionPool pool = engine.sessions();
            if (pool != null) pool.release(s.slot);
            s.slot = null;
        }
        admission.finished(s.ticket);
        active = running.size();
        // a lost or diverged rank, met while joining or in a step: the leader records it (readiness DOWN)
        if (error instanceof io.ds4j.engine.CommunicationException ce) engine.clusterFailed(ce, "a request");
        if (error != null) safely(() -> s.handler.onFailure(error));
        else safely(() -> s.handler.onResult(r));
    }

    private static void safely(Runnable r) {
        try {
            r.run();
        } catch (RuntimeException e) {
            log.warn("a generation handler failed: {}", e.toString());
        }
    }
}
