package io.ds4j.engine;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The serving sessions (one native timeline of n_ctx tokens each) and the
 * prefix cache they form: a finished sequence's session stays idle with its
 * tokens, and a new request takes the idle session sharing the longest prefix
 * with its prompt (ties: the most recently used), rewinding it to that point.
 * At most {@code maxSessions} sessions exist (created on demand); idle ones
 * beyond {@code maxIdle} are freed, least recently used first. Each session's
 * tokens are mirrored here so a lookup needs no native call. With a disk
 * cache ({@link DiskStateCache}), a request whose prompt extends a prefix on
 * disk further than any idle session loads that state into a session
 * instead of evaluating it, and a finished request's prompt state is written
 * there: when the engine has nothing else to do ({@link #flushPendingWrites},
 * called by the scheduler once its batch is empty), or right before that
 * session is reused or freed, so a write never holds back a running batch
 * that it does not have to. Sessions of running sequences are prefix sources
 * too: when one of them holds a longer prefix of the prompt than any idle
 * session and the disk (at least {@link #MIN_COPY_TOKENS} tokens), its state
 * there is copied (ds4j_session_copy, no evaluation) into a new or the least
 * recently used idle session, so requests sharing a system prompt with one
 * that is still running do not evaluate it again. Engine owner thread only
 * (the scheduler calls {@link #acquire} between steps, when every session's
 * state is consistent).
 */
public final class SessionPool {
    private static final Logger log = LoggerFactory.getLogger(SessionPool.class);
    /** One native session and the tokens it holds. */
    public static final class Slot {
        final MemorySegment handle;
        int[] tokens = new int[64];
        int len;
        long lastUsed;
        boolean busy;
        boolean stale; // created before a cluster recovery: freed when its sequence ends
        int promptLen; // the current request's prompt, once all of it is in (0 before)
        int[] pendingWrite; // a finished prompt whose state is still to be written to the disk cache

        Slot(MemorySegment handle) {
            this.handle = handle;
        }

        public MemorySegment handle() {
            return handle;
        }

        /** Tokens evaluated (the session's position). */
        public int pos() {
            return len;
        }

        void append(int[] toks) {
            if (len + toks.length > tokens.length) tokens = Arrays.copyOf(tokens, Math.max(len + toks.length, tokens.length * 2));
            System.arraycopy(toks, 0, tokens, len, toks.length);
            len += toks.length;
        }

        int commonPrefix(int[] prompt) {
            int n = Math.min(len, prompt.length), i = 0;
            while (i < n && tokens[i] == prompt[i]) i++;
            return i;
        }
    }

    /**
     * A session handed to a new sequence: the first {@code next} prompt tokens
     * are in it, {@code cached} of them reused (restored, not evaluated);
     * {@code ready} = the whole prompt is in, with its next-token logits, so
     * the first token can be sampled at once.
     */
    public record Lease(Slot slot, int cached, int next, boolean ready) {}

    /**
     * The shortest prefix copied from a running sequence's session: one checkpoint interval of the engine
     * (a running session holds states every 64 positions, plus the one before its prompt's last token).
     * A copy takes a session (a new one, or the least recently used idle one with its cached prefix), so
     * shorter shares are evaluated instead.
     */
    public static final int MIN_COPY_TOKENS = 64;

    /** Copies from running sequences' sessions so far (read by the metrics from any thread). */
    public record CopyStats(long copies, long tokens) {}

    private final Ds4jNative lib;
    private final MemorySegment engine;
    private final int nCtx;
    private final List<Slot> slots = new ArrayList<>();
    private int maxSessions = 1;
    private int maxIdle = 1;
    private long clock;
    private boolean closed;
    private volatile CopyStats copyStats = new CopyStats(0, 0);
    private volatile DiskStateCache disk;

    SessionPool(Ds4jNative lib, MemorySegment engine, int nCtx, MemorySegment first) {
        this.lib = lib;
        this.engine = engine;
        this.nCtx = nCtx;
        slots.add(new Slot(first));
    }

    /** Sets the bounds (called once the scheduler is sized). */
    public void configure(int maxSessions, int maxIdle) {
        this.maxSessions = Math.max(1, maxSessions);
        this.maxIdle = Math.max(0, maxIdle);
        trim();
    }

    /** Adds the prefix cache on disk (at startup, before the first request). */
    public void attachDisk(DiskStateCache disk) {
        this.disk = disk;
    }

    public DiskStateCache disk() {
        return disk;
    }

    /** Prefixes copied from running sequences' sessions (requests, tokens). */
    public CopyStats copyStats() {
        return copyStats;
    }

    public int size() {
        return slots.size();
    }

    public int idle() {
        int n = 0;
        for (Slot s : slots) if (!s.busy) n++;
        return n;
    }

    /** Takes the best idle session for {@code prompt} (or a new one) and positions it; see {@link Lease}. */
    public Lease acquire(int[] prompt) {
        if (closed) throw new EngineException(EngineException.STATE, "the engine is closed");
        Slot best = null;
        int bestLen = 0;
        for (Slot s : slots) {
            if (s.busy) continue;
            int l = s.commonPrefix(prompt);
            if (l > bestLen || (l == bestLen && l > 0 && s.lastUsed > best.lastUsed)) {
                best = s;
                bestLen = l;
            }
        }
        // a running sequence's session may hold more of the prompt (e.g. the same system prompt)
        Source running = runningSource(prompt, bestLen);
        Slot source = running == null ? null : running.slot();
        int sourcePos = running == null ? 0 : running.pos();
        DiskStateCache.Entry stored = disk == null ? null : disk.best(prompt, Math.max(bestLen, sourcePos));
        if (stored == null && source != null) {
            Slot target = spare();
            if (target != null) {
                settle(target);
                try {
                    int p = lib.sessionCopy(target.handle, source.handle, sourcePos);
                    target.len = 0;
                    target.append(Arrays.copyOf(source.tokens, p));
                    best = target;
                    bestLen = p;
                    CopyStats c = copyStats;
                    copyStats = new CopyStats(c.copies() + 1, c.tokens() + p);
                } catch (CommunicationException e) {
                    throw e; // the cluster is broken: the request fails as for any other engine call
                } catch (EngineException e) {
                    // refused, the target unchanged: go on with the best idle session
                    log.warn("prefix copy from a running sequence failed: {}", e.getMessage());
                }
                target.lastUsed = ++clock;
            }
        }
        if (stored != null) {
            // a longer prefix on disk: load it into a new or the least recently used idle session
            Slot target = spare();
            if (target != null) {
                settle(target);
                target.len = 0;
                if (disk.load(target.handle, stored)) {
                    target.append(stored.tokens());
                    best = target;
                    bestLen = stored.length();
                } else if (best == null || target == best) {
                    best = target; // the failed load left it empty: start from scratch there
                    bestLen = 0;
                }
                target.lastUsed = ++clock;
            }
        }
        if (best == null) {
            best = spare();
            if (best == null) throw new EngineException(EngineException.STATE, "no free session (all " + slots.size() + " busy)");
            bestLen = 0;
        }
        settle(best);
        best.busy = true;
        best.promptLen = 0;
        try {
            int n = prompt.length;
            if (bestLen == n) {
                // an exact repeat: the engine restores the state after the whole prompt, logits included
                lib.sessionRewind(best.handle, n);
                best.len = n;
                best.promptLen = n;
                return new Lease(best, n, n, true);
            }
            // ds4j_session_sync up to the first new token: the engine restores its newest checkpoint at or before
            // the shared prefix (its answer is the cached count, as for a lone request), replays up to the
            // prefix and evaluates that one token; the rest of the prompt follows in the batched steps
            int k = bestLen + 1;
            int[] head = Arrays.copyOf(prompt, k);
            int cached = lib.sessionSync(best.handle, head, null);
            best.len = 0;
            best.append(head);
            if (k == n) best.promptLen = n;
            return new Lease(best, cached, k, k == n);
        } catch (RuntimeException e) {
            resync(best);
            best.busy = false;
            throw e;
        }
    }

    /**
     * The busy session whose state at or before the shared part of {@code prompt} (capped one short of the
     * prompt: its last token is always evaluated, for its logits) is the longest, at least
     * {@link #MIN_COPY_TOKENS} and more than {@code floor}; null if none, or with cache-sessions=0 (no prefix
     * reuse at all: every request starts empty).
     */
    private Source runningSource(int[] prompt, int floor) {
        if (!sharesRunningPrefixes()) return null;
        Slot source = null;
        int sourcePos = floor;
        int limit = prompt.length - 1;
        for (Slot s : slots) {
            if (!s.busy || s.stale) continue;
            int l = Math.min(s.commonPrefix(prompt), limit);
            if (l < MIN_COPY_TOKENS || l <= sourcePos) continue;
            int p = lib.sessionStateAt(s.handle, l); // its newest state at or before l (current or checkpoint)
            if (p >= MIN_COPY_TOKENS && p > sourcePos) {
                source = s;
                sourcePos = p;
            }
        }
        return source == null ? null : new Source(source, sourcePos);
    }

    /** A running sequence's session and the position of its state that a copy would take. */
    private record Source(Slot slot, int pos) {}

    /** Whether {@link #acquire} copies prefixes from running sequences' sessions (not with cache-sessions=0). */
    public boolean sharesRunningPrefixes() {
        return maxIdle > 0;
    }

    /**
     * The prefix of {@code prompt} that {@link #acquire} would reuse now (restore or copy instead of
     * evaluating), from an idle session, the disk or a running sequence's session; changes nothing. The
     * scheduler compares it with what a sequence still prefilling the same prefix will offer soon.
     */
    public int reusable(int[] prompt) {
        int best = 0;
        for (Slot s : slots) if (!s.busy) best = Math.max(best, s.commonPrefix(prompt));
        DiskStateCache d = disk;
        DiskStateCache.Entry stored = d == null ? null : d.best(prompt, best);
        if (stored != null) best = stored.length();
        Source source = runningSource(prompt, best);
        return source == null ? best : source.pos();
    }

    /**
     * Evaluates the last chunk of a prompt with ds4j_session_sync (the session
     * holds {@code prompt} up to that chunk): the engine then keeps a
     * checkpoint just before the prompt's last token, where the next turn of a
     * conversation usually diverges, however long the answer grows.
     */
    public void finishPrompt(Slot s, int[] prompt) {
        try {
            lib.sessionSync(s.handle, prompt, null);
        } catch (RuntimeException e) {
            resync(s);
            throw e;
        }
        s.len = 0;
        s.append(prompt);
        s.promptLen = prompt.length;
    }

    private Slot create() {
        try {
            Slot s = new Slot(lib.sessionNew(engine, nCtx));
            slots.add(s);
            return s;
        } catch (EngineException e) {
            if (e.code() != EngineException.NO_MEMORY || idle() == 0) throw e;
            return null; // out of memory for one more: reuse an idle one instead
        }
    }

    /** A new session while there is room for one, else the least recently used idle one (null if none). */
    private Slot spare() {
        Slot s = slots.size() < maxSessions ? create() : null;
        return s != null ? s : leastRecentlyUsedIdle();
    }

    private Slot leastRecentlyUsedIdle() {
        Slot lru = null;
        for (Slot s : slots) if (!s.busy && (lru == null || s.lastUsed < lru.lastUsed)) lru = s;
        return lru;
    }

    /** Tokens evaluated into {@code s}. */
    public void appended(Slot s, int[] toks) {
        s.append(toks);
    }

    /** Re-reads the session's tokens after a failed evaluation (the engine may have restored a checkpoint). */
    public void resync(Slot s) {
        if (closed) return;
        try {
            int[] t = lib.sessionTokens(s.handle);
            s.len = 0;
            s.append(t);
        } catch (RuntimeException e) {
            s.len = 0;
            try {
                lib.sessionRewind(s.handle, 0);
            } catch (RuntimeException ignored) {
                // the session is unusable; its (empty) mirror matches nothing
            }
        }
    }

    /**
     * After the cluster was recovered (ds4j_engine_recover) every session predates the new followers and is
     * refused by the engine: idle ones are freed now (with their cached prefixes), busy ones when their
     * sequence ends; one new session is created at once, which also proves the new group serves (its
     * creation is collective).
     */
    public void invalidateAll() {
        for (var it = slots.iterator(); it.hasNext(); ) {
            Slot s = it.next();
            if (s.busy) {
                s.stale = true;
                continue;
            }
            it.remove();
            lib.sessionFree(s.handle);
        }
        Slot fresh = new Slot(lib.sessionNew(engine, nCtx));
        fresh.lastUsed = ++clock;
        slots.add(fresh);
    }

    /** The sequence using {@code s} is done: it becomes an idle, cached session. */
    public void release(Slot s) {
        if (s.stale) {
            s.busy = false;
            slots.remove(s);
            if (!closed) lib.sessionFree(s.handle);
            return;
        }
        s.busy = false;
        s.lastUsed = ++clock;
        if (disk != null && !closed && s.promptLen > 0 && s.len >= s.promptLen) {
            s.pendingWrite = Arrays.copyOf(s.tokens, s.promptLen);
        }
        s.promptLen = 0;
        trim();
    }

    private void trim() {
        if (closed) return;
        while (idle() > maxIdle || slots.size() > maxSessions) {
            Slot lru = leastRecentlyUsedIdle();
            if (lru == null || slots.size() <= 1 && maxIdle > 0) return;
            settle(lru);
            slots.remove(lru);
            lib.sessionFree(lru.handle);
        }
    }

    /** Writes every idle session's pending prompt state to the disk cache (the engine is idle). */
    public void flushPendingWrites() {
        if (disk == null || closed) return;
        for (Slot s : slots) if (!s.busy) settle(s);
    }

    /** Whether some idle session still has a prompt state to write. */
    public boolean hasPendingWrites() {
        for (Slot s : slots) if (s.pendingWrite != null) return true;
        return false;
    }

    /** Writes {@code s}'s pending prompt state before the session changes. */
    private void settle(Slot s) {
        int[] p = s.pendingWrite;
        if (p == null) return;
        s.pendingWrite = null;
        if (disk != null && !closed && !s.stale) disk.store(s.handle, p);
    }

    /** Frees every session (engine close). */
    void closeAll() {
        flushPendingWrites();
        closed = true;
        for (Slot s : slots) lib.sessionFree(s.handle);
        slots.clear();
    }
}
