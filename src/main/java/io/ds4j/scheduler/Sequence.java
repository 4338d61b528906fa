package io.ds4j.scheduler;

import io.ds4j.engine.ContextOverflowException;
import io.ds4j.engine.Ds4jNative;
import io.ds4j.engine.EngineException;
import io.ds4j.engine.GenerationRequest;
import io.ds4j.engine.GenerationResult;
import io.ds4j.engine.SessionPool;
import io.ds4j.engine.TokenConstraint;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * One generation in the running batch, on the engine thread: its session,
 * its own sampler (temperature, seed, penalties, logit bias) and constraint,
 * how far its prompt is evaluated, what it sampled. The same sampling calls,
 * in the same order, as a generation running alone, so a seeded request
 * samples the same tokens whatever else runs beside it. Sampling is split
 * in three ({@link #prepareDraw}, {@link #draw}, {@link #commit}) so that
 * the sequences of a step can draw on several threads: only {@link #draw}
 * (the native sampler over this sequence's own logits and buffers) runs off
 * the engine thread.
 */
final class Sequence {
    final Ticket ticket;
    final GenerationRequest req;
    final RequestScheduler.Handler handler;
    private Ds4jNative lib;
    SessionPool.Slot slot;
    private MemorySegment sampler = MemorySegment.NULL;
    private Arena arena;
    private Ds4jNative.SampleBuffers buf;
    private MemorySegment allowed = MemorySegment.NULL;
    private boolean restricted;
    /** next prompt index to evaluate (prompt length once the prompt is in) */
    int next;
    int cached;
    int generated;
    /** the session's logits are this sequence's next-token distribution: sample before evaluating more */
    boolean ready;
    /** the last sampled token, to evaluate in the next step (-1 = none) */
    int pending = -1;
    /** the prefill progress listener asked to stop */
    boolean cancelled;
    private long joinedNanos;
    private long promptDoneNanos;
    /** between draw and commit: what the draw gave (null: nothing drawn, the output budget was spent) */
    private Ds4jNative.Sample drawn;
    private RuntimeException drawError;

    Sequence(Ticket ticket, GenerationRequest req, RequestScheduler.Handler handler) {
        this.ticket = ticket;
        this.req = req;
        this.handler = handler;
    }

    boolean stopRequested() {
        return cancelled || handler.stopRequested();
    }

    /** Checks the prompt, takes a session (prefix cache) and sets the sampler up. */
    void join(Ds4jNative lib, SessionPool pool, int contextSize) {
        this.lib = lib;
        joinedNanos = System.nanoTime();
        int[] prompt = req.prompt();
        if (prompt.length == 0) throw new EngineException(EngineException.INVALID_ARGUMENT, "empty prompt");
        if (prompt.length >= contextSize) {
            throw new ContextOverflowException("the prompt has " + prompt.length + " tokens but the context holds "
                    + contextSize + " (prompt plus at least one generated token)");
        }
        SessionPool.Lease lease = pool.acquire(prompt);
        slot = lease.slot();
        cached = lease.cached();
        next = lease.next();
        arena = Arena.ofShared(); // draw() may run on a sampling thread
        sampler = lib.samplerNew(req.sampling().toOptions());
        if (!req.sampling().logitBias().isEmpty()) {
            lib.samplerSetLogitBias(sampler, req.sampling().biasIds(), req.sampling().biasValues());
        }
        if (req.sampling().penalised()) {
            int from = Math.max(0, prompt.length - Math.max(req.sampling().penaltyLastN(), 1));
            for (int k = from; k < prompt.length; k++) lib.samplerAccept(sampler, prompt[k]);
        }
        buf = new Ds4jNative.SampleBuffers(arena, req.topLogprobs(), req.logprobs());
        TokenConstraint c = req.constraint();
        if (c != null) allowed = arena.allocate((c.vocabSize() + 7L) / 8);
        if (lease.ready()) promptDone();
    }

    private void promptDone() {
        ready = true;
        promptDoneNanos = System.nanoTime();
        handler.onPromptDone(req.prompt().length, cached);
    }

    /** The next chunk of the prompt: up to the next multiple of {@code chunk} positions, so the split does not depend on the batch. */
    int[] nextChunk(int chunk) {
        int end = Math.min(req.prompt().length, (next / chunk + 1) * chunk);
        return Arrays.copyOfRange(req.prompt(), next, end);
    }

    boolean prefilling() {
        return !ready && pending < 0 && next < req.prompt().length;
    }

    /**
     * The furthest state this sequence's prefill will still pass through within the prefix its prompt shares
     * with {@code other} (capped one short of {@code other}: a joiner evaluates its last token itself), so a
     * joiner can copy it from this session; 0 when none lies ahead (done prefilling, or already past the
     * shared part: what the session holds there is reusable now). The states a prefill passes through: its
     * position after each chunk (chunk-aligned, {@link #nextChunk}), the engine's checkpoints every
     * {@code interval} positions ({@link io.ds4j.engine.EngineService#checkpointInterval}), the mark before its
     * prompt's last token ({@link SessionPool#finishPrompt}) and its whole prompt once it is in (before its
     * first token is).
     */
    int prefixComing(int[] other, int chunk, int interval) {
        if (!prefilling()) return 0;
        int[] mine = req.prompt();
        int n = Math.min(mine.length, other.length), common = 0;
        while (common < n && mine[common] == other[common]) common++;
        int shared = Math.min(common, other.length - 1);
        if (next > shared) return 0;
        if (shared >= mine.length - 1) return Math.min(shared, mine.length);
        return Math.max(next, Math.max(shared / chunk * chunk, shared / interval * interval));
    }

    /** Engine thread: the constraint's allowed set for this token goes to the sampler (constraints share state). */
    void prepareDraw() {
        if (generated >= req.maxTokens()) return; // nothing to draw: commit reports LENGTH
        TokenConstraint constraint = req.constraint();
        if (constraint != null) {
            byte[] bits = constraint.allowedNext();
            if (bits != null) {
                MemorySegment.copy(bits, 0, allowed, ValueLayout.JAVA_BYTE, 0, (int) allowed.byteSize());
                lib.samplerSetAllowed(sampler, allowed, constraint.vocabSize());
                restricted = true;
            } else if (restricted) {
                lib.samplerSetAllowed(sampler, MemorySegment.NULL, 0);
                restricted = false;
            }
        }
    }

    /** Any thread, one at a time per sequence: the native draw from this sequence's logits. */
    void draw() {
        if (generated >= req.maxTokens()) return;
        try {
            drawn = lib.samplerSample(sampler, slot.handle(), buf);
        } catch (RuntimeException e) {
            drawError = e;
        }
    }

    /**
     * Engine thread: the drawn token is reported and accepted; returns the reason to stop, or null to go on
     * (the token is then {@link #pending}).
     */
    GenerationResult.Stop commit(int contextSize) {
        ready = false;
        RuntimeException e = drawError;
        Ds4jNative.Sample sample = drawn;
        drawError = null;
        drawn = null;
        if (e != null) throw e;
        if (sample == null) return GenerationResult.Stop.LENGTH;
        TokenConstraint constraint = req.constraint();
        if (constraint != null) constraint.accept(sample.token());
        generated++;
        if (!handler.onToken(sample)) return GenerationResult.Stop.LISTENER;
        if (generated >= req.maxTokens()) return GenerationResult.Stop.LENGTH;
        if (slot.pos() + 1 >= contextSize) return GenerationResult.Stop.CONTEXT;
        lib.samplerAccept(sampler, sample.token());
        pending = sample.token();
        return null;
    }

    /** {@code tokens} (a prompt chunk or the pending token) were evaluated into the session. */
    void evaluated(int[] tokens) {
        if (pending >= 0) {
            pending = -1;
            ready = true;
            return;
        }
        next += tokens.length;
        if (next == req.prompt().length) promptDone();
        else if (!handler.onPrefillProgress(next, req.prompt().length)) cancelled = true;
    }

    GenerationResult result(GenerationResult.Stop stop, int contextUsed, int contextSize) {
        long end = System.nanoTime();
        long prefill = (promptDoneNanos > 0 ? promptDoneNanos : end) - (joinedNanos > 0 ? joinedNanos : end);
        long decode = promptDoneNanos > 0 ? end - promptDoneNanos : 0;
        return new GenerationResult(stop, req.prompt().length, cached, generated, prefill, decode, contextUsed, contextSize);
    }

    /** Frees the sampler and buffers (the session goes back to the pool separately). */
    void close() {
        if (!sampler.equals(MemorySegment.NULL)) lib.samplerFree(sampler);
        sampler = MemorySegment.NULL;
        if (arena != null) arena.close();
        arena = null;
    }
}
