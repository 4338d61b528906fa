/*
 * session.c — sessions (ds4j.h): one timeline of evaluated tokens with its
 * decoder state, prefix-reusing sync, batched evaluation, rewind, and
 * ds4j_batch_eval (several sessions' tokens in one forward, at the end).
 *
 * Rewind strategy: the sliding windows, compressor windows and CSA overlap
 * slices cannot be "un-evaluated", so a session keeps a ring of
 * DS4J_CK_SLOTS snapshots of that fixed-size state, taken whenever the
 * position reaches a multiple of ck_interval (evaluation chunks are split
 * at those boundaries). Compressed entries are append-only and need no
 * snapshot: restoring a checkpoint at c just resets the entry counters to
 * floor(c / ratio). Rewinding to pos restores the newest checkpoint at or
 * before pos (or the empty state) and replays the tokens in between, so
 * the cost is at most ~ck_interval tokens for recent positions, and a full
 * replay for positions older than the ring covers.
 *
 * One more snapshot marks the position before the last token of the latest
 * sync. A chat's next turn usually diverges exactly there (the previous
 * prompt ended with the assistant's opening, e.g. <think>, which the history
 * renders differently) or later, inside the answer; with the mark the next
 * sync replays nothing before the previous prompt's end instead of up to
 * ck_interval - 1 tokens.
 *
 * Distributed engines: on the leader (rank 0 of world size > 1) every
 * state-changing entry point first announces itself to the followers
 * (dist.c) and then runs exactly the code the followers run, so both sides
 * take the same decisions (prefix reuse, checkpoint restores, chunking).
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include <unistd.h>

#include "dist.h"
#include "session.h"
#include "cuda_backend.h"

static int64_t ck_fixed_bytes(const ds4j_engine *e, int64_t n_ctx, int64_t *total) {
    int64_t fixed = 0;
    int64_t st = kv_state_bytes(e->model, n_ctx, e->kv_fp8, &fixed);
    if (st < 0) return -1;
    int64_t scratch = dsv4_scratch_ctx_bytes(e->model, n_ctx, e->kv_fp8, e->n_threads);
    int64_t ck, t;
    if (scratch < 0 || !ds4j_mul_ok(fixed, DS4J_CK_TOTAL, &ck) || !ds4j_add_ok(st, ck, &t) ||
        !ds4j_add_ok(t, (int64_t)n_ctx * 4 + e->n_vocab * 4 + (int64_t)sizeof(ds4j_session), &t) ||
        !ds4j_add_ok(t, scratch, &t))
        return -1;
    /* CPU: its row of the engine's head buffer when it decodes in a batch (ds4j_batch_eval) */
    if (!e->gpu && !ds4j_add_ok(t, e->n_vocab * 4, &t)) return -1;
    *total = t;
    return fixed;
}

DS4J_API int64_t ds4j_context_memory(const ds4j_engine *e, int32_t n_ctx) {
    ds4j_clear_error();
    if (!e || !e->model) return ds4j_fail(DS4J_ERR_STATE, "engine has no model loaded");
    if (n_ctx <= 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "n_ctx must be positive (got %d)", n_ctx);
    int64_t total;
    if (ck_fixed_bytes(e, n_ctx, &total) < 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "n_ctx %d too large", n_ctx);
    return total;
}

static void session_destroy(ds4j_session *s);

static ds4j_session *session_create(ds4j_engine *e, int32_t n_ctx) {
    /* Session memory is zeroed (committed) up front: with Linux overcommit an
     * impossible size would not fail here but get the process OOM-killed while
     * touching it, so compare with the machine's physical memory first. */
    int64_t need;
    if (ck_fixed_bytes(e, n_ctx, &need) < 0) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "a session of %d tokens is too large for this model", n_ctx);
        return NULL;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    /* (with the GPU backend the state lives in device memory, which the
     * backend checks against the device's free memory itself) */
    if (!e->gpu && pages > 0 && page > 0 && need / page > pages) {
        ds4j_fail(DS4J_ERR_NO_MEMORY, "a session of %d tokens needs %.1f GiB but this machine has %.1f GiB of memory",
                  n_ctx, need / 1073741824.0, (double)pages * page / 1073741824.0);
        return NULL;
    }
    if (e->gpu) {
        if (cuda_reserve_session(e->gpu, n_ctx, DS4J_CK_TOTAL)) return NULL;
    } else if (dsv4_scratch_reserve_ctx(e->model, e->scratch, n_ctx, e->kv_fp8)) {
        return NULL;
    }
    ds4j_session *s = calloc(1, sizeof *s);
    if (!s) { ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory"); return NULL; }
    s->eng = e;
    s->n_ctx = n_ctx;
    s->st = kv_state_new_mem(e->model, n_ctx, e->kv_fp8, e->gpu ? cuda_kv_mem(e->gpu) : NULL);
    if (!s->st) { free(s); return NULL; }
    s->tokens = ds4j_alloc((size_t)n_ctx * sizeof(int32_t));
    s->logits = ds4j_alloc((size_t)e->n_vocab * sizeof(float));
    s->ck_interval = DS4J_CK_INTERVAL;
    s->ck_data = kv_state_mem_alloc(s->st, (size_t)(s->st->fixed_bytes * DS4J_CK_TOTAL));
    if (!s->tokens || !s->logits || !s->ck_data) {
        session_destroy(s);
        ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory for a session of %d tokens", n_ctx);
        return NULL;
    }
    for (int i = 0; i < DS4J_CK_TOTAL; i++) s->ck_pos[i] = -1;
    kv_state_reset(s->st);
    return s;
}

static void session_destroy(ds4j_session *s) {
    if (!s) return;
    if (s->st) kv_state_mem_free(s->st, s->ck_data);
    if (s->eng->gpu && s->st) cuda_forget_state(s->eng->gpu, s->st);
    kv_state_free(s->st);
    ds4j_free(s->tokens);
    ds4j_free(s->logits);
    free(s);
}

DS4J_API ds4j_session *ds4j_session_new(ds4j_engine *e, int32_t n_ctx) {
    ds4j_clear_error();
    if (!e || !e->model) { ds4j_fail(DS4J_ERR_STATE, "engine has no model loaded (vocab_only?)"); return NULL; }
    if (n_ctx <= 0) { ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "n_ctx must be positive (got %d)", n_ctx); return NULL; }
    if (ds4j_dist_check_driver(e, "session_new")) return NULL;
    if (!ds4j_dist_leading(e)) return session_create(e, n_ctx);
    int32_t sid = e->next_sid++;
    if (ds4j_dist_announce(e, DS4J_OP_NEW, sid, n_ctx, NULL, 0)) return NULL;
    ds4j_session *s = session_create(e, n_ctx);
    if (s) {
        s->sid = sid;
        s->epoch = e->epoch;
    }
    /* every rank must hold the session, or none does */
    if (ds4j_dist_agree(e, s != NULL, "session_new")) {
        session_destroy(s);
        return NULL;
    }
    return s;
}

DS4J_API void ds4j_session_free(ds4j_session *s) {
    if (!s) return;
    /* a session from before a recovery has no follower copies to free */
    if (ds4j_dist_leading(s->eng) && s->epoch == s->eng->epoch)
        ds4j_dist_announce(s->eng, DS4J_OP_FREE, s->sid, 0, NULL, 0);
    session_destroy(s);
}

/* Follower side of DS4J_OP_NEW (dist.c): create, then agree like the leader. */
ds4j_session *ds4j_session_new_follower(ds4j_engine *e, int32_t sid, int32_t n_ctx) {
    ds4j_session *s = n_ctx > 0 ? session_create(e, n_ctx) : NULL;
    if (s) {
        s->sid = sid;
        s->skip_head = 1;
    }
    if (ds4j_dist_agree(e, s != NULL, "session_new")) {
        session_destroy(s);
        return NULL;
    }
    return s;
}

DS4J_API int32_t ds4j_session_n_ctx(const ds4j_session *s) { return s ? (int32_t)s->n_ctx : DS4J_ERR_INVALID_ARGUMENT; }

DS4J_API int32_t ds4j_session_pos(const ds4j_session *s) { return s ? (int32_t)s->st->pos : DS4J_ERR_INVALID_ARGUMENT; }

DS4J_API int32_t ds4j_session_tokens(const ds4j_session *s, int32_t *out, int32_t cap) {
    if (!s || cap < 0 || (cap > 0 && !out)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "invalid arguments");
    int64_t n = s->st->pos < cap ? s->st->pos : cap;
    memcpy(out, s->tokens, (size_t)n * sizeof(int32_t));
    return (int32_t)n;
}

DS4J_API const float *ds4j_session_logits(const ds4j_session *s) { return s && s->has_logits ? s->logits : NULL; }

/* ------------------------------------------------------------ checkpoints */

static void ck_save(ds4j_session *s) {
    int64_t pos = s->st->pos;
    int slot = (int)((pos / s->ck_interval) % DS4J_CK_SLOTS);
    kv_state_save_fixed(s->st, s->ck_data + slot * s->st->fixed_bytes);
    s->ck_pos[slot] = pos;
}

static void ck_save_mark(ds4j_session *s) {
    kv_state_save_fixed(s->st, s->ck_data + DS4J_CK_MARK * s->st->fixed_bytes);
    s->ck_pos[DS4J_CK_MARK] = s->st->pos;
}

static void ck_drop_after(ds4j_session *s, int64_t pos) {
    for (int i = 0; i < DS4J_CK_TOTAL; i++)
        if (s->ck_pos[i] > pos) s->ck_pos[i] = -1;
}

int64_t ds4j_session_snapshot(const ds4j_session *s, int64_t max_pos, const void **fixed) {
    if (s->st->pos > 0 && s->st->pos <= max_pos) {
        *fixed = s->st->fixed;
        return s->st->pos;
    }
    int best = -1;
    for (int i = 0; i < DS4J_CK_TOTAL; i++)
        if (s->ck_pos[i] > 0 && s->ck_pos[i] <= max_pos && s->ck_pos[i] <= s->st->pos &&
            (best < 0 || s->ck_pos[i] > s->ck_pos[best]))
            best = i;
    if (best < 0) return 0;
    *fixed = s->ck_data + best * s->st->fixed_bytes;
    return s->ck_pos[best];
}

void ds4j_session_adopt(ds4j_session *s, int64_t pos) {
    for (int i = 0; i < DS4J_CK_TOTAL; i++) s->ck_pos[i] = -1;
    s->has_logits = 0;
    if (pos > 0) ck_save_mark(s);
}

/* Restore the newest state at a position <= limit; returns that position. */
static int64_t ck_restore(ds4j_session *s, int64_t limit, int force) {
    int best = -1;
    for (int i = 0; i < DS4J_CK_TOTAL; i++)
        if (s->ck_pos[i] > 0 && s->ck_pos[i] <= limit && (best < 0 || s->ck_pos[i] > s->ck_pos[best])) best = i;
    int64_t at = best >= 0 ? s->ck_pos[best] : 0;
    ck_drop_after(s, at);
    if (at == s->st->pos && !force) return at;
    if (best >= 0) kv_state_restore_fixed(s->st, s->ck_data + best * s->st->fixed_bytes, at);
    else kv_state_reset(s->st);
    s->has_logits = 0;
    return at;
}

/* ------------------------------------------------------------ evaluation */

/* One forward over pieces of one or more sessions, on the CPU or the GPU
 * (both evaluate all pieces in one step). */
static int forward_pieces(ds4j_engine *e, const dsv4_seq *seqs, int64_t n) {
    if (!e->gpu) return dsv4_forward_batch(e->model, e->scratch, e->pool, seqs, n);
    return cuda_forward_batch(e->gpu, seqs, n);
}

/*
 * Evaluate toks[0..n) after the current position in chunks of at most
 * `chunk` tokens (split at checkpoint boundaries). Row t of logits_out (if
 * given) gets the logits after toks[t].
 */
static int eval_tokens(ds4j_session *s, const int32_t *toks, int64_t n, int64_t chunk, float *logits_out,
                       ds4j_progress_fn progress, void *user, int64_t prog_base, int64_t prog_total) {
    ds4j_engine *e = s->eng;
    if (chunk <= 0) chunk = e->prefill_chunk;
    if (chunk > e->prefill_chunk) chunk = e->prefill_chunk;
    if (s->st->pos + n > s->n_ctx)
        return ds4j_fail(DS4J_ERR_CONTEXT_FULL, "context full: %lld tokens evaluated + %lld new exceed n_ctx = %lld",
                         (long long)s->st->pos, (long long)n, (long long)s->n_ctx);
    for (int64_t i = 0; i < n; i++)
        if (toks[i] < 0 || toks[i] >= e->n_vocab)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "token id %d at index %lld is out of range [0, %lld)", toks[i],
                             (long long)i, (long long)e->n_vocab);
    int64_t done = 0;
    while (done < n) {
        int64_t pos = s->st->pos;
        int64_t len = n - done;
        if (len > chunk) len = chunk;
        int64_t next_ck = (pos / s->ck_interval + 1) * s->ck_interval;
        if (pos + len > next_ck) len = next_ck - pos;
        /* has_logits stays in step with the leader even when a follower
         * skips the head: rewind decisions depend on it */
        float *rows = logits_out ? logits_out + done * e->n_vocab : NULL, *last = s->skip_head ? NULL : s->logits;
        ds4j_dist_fold(e, s->sid, pos, toks + done, len); /* divergence guard: what this rank evaluates */
        dsv4_seq piece = {.st = s->st, .tokens = toks + done, .n = len, .logits_all = rows, .logits_last = last};
        int rc = forward_pieces(e, &piece, 1);
        if (rc) {
            /* a failure inside the layers (e.g. a peer's all-reduce) leaves the
             * state half-updated: fall back to the last consistent checkpoint */
            ck_restore(s, pos, 1);
            s->has_logits = 0;
            return rc;
        }
        memmove(s->tokens + pos, toks + done, (size_t)len * sizeof(int32_t));
        s->has_logits = 1;
        done += len;
        if (s->st->pos % s->ck_interval == 0) ck_save(s);
        if (progress && done < n && progress(user, (int32_t)(prog_base + done), (int32_t)prog_total))
            return ds4j_fail(DS4J_ERR_CANCELLED, "evaluation cancelled after %lld of %lld tokens",
                             (long long)(prog_base + done), (long long)prog_total);
    }
    return 0;
}

/* Bring the state to exactly `pos` tokens with logits after token pos-1. */
static int rewind_to(ds4j_session *s, int64_t pos) {
    if (pos == s->st->pos && (s->has_logits || pos == 0)) return 0;
    int64_t at = ck_restore(s, pos > 0 ? pos - 1 : 0, 0);
    if (pos == 0) { s->has_logits = 0; return 0; }
    /* replay tokens[at..pos) from the session's own history */
    return eval_tokens(s, s->tokens + at, pos - at, 0, NULL, NULL, NULL, 0, 0);
}

DS4J_API int32_t ds4j_session_rewind(ds4j_session *s, int32_t pos) {
    ds4j_clear_error();
    if (!s) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "session is NULL");
    if (pos < 0 || pos > s->st->pos)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "rewind position %d outside [0, %lld]", pos, (long long)s->st->pos);
    if (ds4j_dist_check_session(s)) return DS4J_ERR_STATE;
    if (ds4j_dist_leading(s->eng) && ds4j_dist_announce(s->eng, DS4J_OP_REWIND, s->sid, pos, NULL, 0)) return DS4J_ERR_COMM;
    int rc = rewind_to(s, pos);
    return rc ? rc : DS4J_OK;
}

DS4J_API int32_t ds4j_session_eval(ds4j_session *s, int32_t token) {
    ds4j_clear_error();
    if (!s) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "session is NULL");
    if (ds4j_dist_check_session(s)) return DS4J_ERR_STATE;
    if (ds4j_dist_leading(s->eng) && ds4j_dist_announce(s->eng, DS4J_OP_EVAL, s->sid, token, NULL, 0)) return DS4J_ERR_COMM;
    int rc = eval_tokens(s, &token, 1, 1, NULL, NULL, NULL, 0, 0);
    return rc ? rc : DS4J_OK;
}

DS4J_API int32_t ds4j_session_eval_batch(ds4j_session *s, const int32_t *tokens, int32_t n, int32_t chunk,
                                         float *logits_out) {
    ds4j_clear_error();
    if (!s || n < 0 || (n > 0 && !tokens) || chunk < 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "invalid arguments");
    if (n == 0) return DS4J_OK;
    if (ds4j_dist_check_session(s)) return DS4J_ERR_STATE;
    if (ds4j_dist_leading(s->eng) && ds4j_dist_announce(s->eng, DS4J_OP_EVAL_BATCH, s->sid, chunk, tokens, n))
        return DS4J_ERR_COMM;
    int rc = eval_tokens(s, tokens, n, chunk, logits_out, NULL, NULL, 0, 0);
    return rc ? rc : DS4J_OK;
}

static int32_t sync_impl(ds4j_session *s, const int32_t *tokens, int32_t n, ds4j_progress_fn progress, void *user) {
    if (n > s->n_ctx)
        return ds4j_fail(DS4J_ERR_CONTEXT_FULL, "prompt of %d tokens exceeds n_ctx = %lld", n, (long long)s->n_ctx);
    int64_t cur = s->st->pos, lcp = 0;
    while (lcp < cur && lcp < n && s->tokens[lcp] == tokens[lcp]) lcp++;
    if (lcp == n) {
        int rc = rewind_to(s, n);
        return rc ? rc : n;
    }
    int64_t at = cur;
    if (lcp < cur) at = ck_restore(s, lcp, 0);
    /* evaluate up to the last token, mark that state, then the last token */
    int64_t last = n - 1;
    int rc = 0;
    if (last > at) {
        rc = eval_tokens(s, tokens + at, last - at, 0, NULL, progress, user, at, n);
        if (!rc && last % s->ck_interval != 0) ck_save_mark(s);
        if (!rc && progress && progress(user, (int32_t)last, n))
            rc = ds4j_fail(DS4J_ERR_CANCELLED, "evaluation cancelled after %lld of %d tokens", (long long)last, n);
    }
    if (!rc) rc = eval_tokens(s, tokens + s->st->pos, n - s->st->pos, 0, NULL, progress, user, s->st->pos, n);
    return rc ? rc : (int32_t)at;
}

DS4J_API int32_t ds4j_session_sync(ds4j_session *s, const int32_t *tokens, int32_t n, ds4j_progress_fn progress,
                                   void *user) {
    ds4j_clear_error();
    if (!s || n < 0 || (n > 0 && !tokens)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "invalid arguments");
    if (!ds4j_dist_leading(s->eng)) return sync_impl(s, tokens, n, progress, user);
    if (ds4j_dist_check_session(s)) return DS4J_ERR_STATE;
    /* The followers redo the prefix match themselves from the full list; the
     * progress callback's verdict at each chunk boundary is broadcast so that
     * a cancellation stops every rank at the same position. */
    if (ds4j_dist_announce(s->eng, DS4J_OP_SYNC, s->sid, progress != NULL, tokens, n)) return DS4J_ERR_COMM;
    ds4j_dist_progress p = {.fn = progress, .user = user, .e = s->eng};
    int32_t rc = sync_impl(s, tokens, n, progress ? ds4j_dist_progress_cb : NULL, &p);
    if (p.failed) {
        ds4j_set_error_str(p.msg);
        return DS4J_ERR_COMM;
    }
    return rc;
}

/* Follower side of DS4J_OP_SYNC: the leader's verdicts arrive through p. */
int32_t ds4j_session_sync_follower(ds4j_session *s, const int32_t *tokens, int32_t n, int has_progress,
                                   ds4j_dist_progress *p) {
    int32_t rc = sync_impl(s, tokens, n, has_progress ? ds4j_dist_progress_cb : NULL, p);
    if (p->failed) {
        ds4j_set_error_str(p->msg);
        return DS4J_ERR_COMM;
    }
    return rc;
}

/* ------------------------------------------------------------ copy
 *
 * ds4j_session_copy: another session's prefix without evaluating it (the
 * server's prefix cache takes a running sequence's system prompt this way).
 * The source's newest state at or before max_pos is its current state or a
 * checkpoint (ring or mark): the same one ds4j_session_save would write, so
 * the copy is bit for bit the state src had there. dst ends like a session
 * that loaded a state file: that state, the tokens before it and one
 * checkpoint there (the mark), its own checkpoints dropped; it also keeps
 * src's logits when the copy is src's current state and src has them, so
 * an exact copy samples at once. Nothing is evaluated, so there is no
 * all_sum; under comm= the followers replay it on their copies (by sid). */

DS4J_API int32_t ds4j_session_state_at(const ds4j_session *s, int32_t max_pos) {
    ds4j_clear_error();
    if (!s) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "session is NULL");
    if (max_pos < 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "max_pos must be >= 0 (got %d)", max_pos);
    const void *fixed = NULL;
    return (int32_t)ds4j_session_snapshot(s, max_pos, &fixed);
}

DS4J_API int32_t ds4j_session_copy(ds4j_session *dst, const ds4j_session *src, int32_t max_pos) {
    ds4j_clear_error();
    if (!dst || !src) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "session_copy: session is NULL");
    if (dst == src) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "session_copy: a session cannot be copied onto itself");
    if (dst->eng != src->eng)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "session_copy: the sessions belong to different engines");
    if (max_pos < 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "session_copy: max_pos must be >= 0 (got %d)", max_pos);
    ds4j_engine *e = dst->eng;
    if (ds4j_dist_check_session(dst) || ds4j_dist_check_session(src)) return DS4J_ERR_STATE;
    /* every check before anything changes (and before the announcement: the
     * followers take the same decision from the same states) */
    const void *fixed = NULL;
    int64_t pos = ds4j_session_snapshot(src, max_pos, &fixed);
    if (pos > dst->n_ctx)
        return ds4j_fail(DS4J_ERR_CONTEXT_FULL, "session_copy: the source's state at %lld tokens does not fit the "
                         "destination's n_ctx %lld", (long long)pos, (long long)dst->n_ctx);
    if (ds4j_dist_leading(e)) {
        int32_t src_sid = src->sid;
        if (ds4j_dist_announce(e, DS4J_OP_COPY, dst->sid, max_pos, &src_sid, 1)) return DS4J_ERR_COMM;
    }
    if (pos == 0) {
        kv_state_reset(dst->st);
        ds4j_session_adopt(dst, 0);
    } else {
        kv_state_copy_at(dst->st, src->st, fixed, pos);
        memcpy(dst->tokens, src->tokens, (size_t)pos * sizeof(int32_t));
        ds4j_session_adopt(dst, pos);
        if (pos == src->st->pos && src->has_logits) {
            /* has_logits is kept in step on the followers, which skip the head (nothing to copy there) */
            if (!dst->skip_head) memcpy(dst->logits, src->logits, (size_t)e->n_vocab * sizeof(float));
            dst->has_logits = 1;
        }
    }
    /* divergence guard: a follower that copied another prefix (another
     * source, position or tokens) must show up at the next check, although
     * no forward ran */
    ds4j_dist_fold_op(e, DS4J_OP_COPY, dst->sid, src->sid, dst->tokens, pos);
    return (int32_t)pos;
}

/* ------------------------------------------------------------ batch steps
 *
 * ds4j_batch_eval: every entry's tokens are cut into pieces the way
 * eval_tokens cuts one session's (at most prefill_chunk tokens, split at
 * checkpoint boundaries); one forward takes a piece of each entry that
 * still has tokens, in the order of the entries, until the step's rows
 * (prefill_chunk, what the scratch holds) are used up, and the call repeats
 * forwards until every entry is done. With decode rows and short chunks
 * that is a single forward. Where a piece ends does not change any row's
 * result (forward_dsv4.c), so each session ends exactly as if evaluated
 * alone. Only a session's final piece computes logits; after a non-final
 * piece has_logits is 0 (on leader and followers alike).
 */

void ds4j_batch_ws_free(ds4j_engine *e) {
    free(e->batch.done);
    free(e->batch.seqs);
    free(e->batch.entry);
    free(e->batch.pos);
    free(e->batch.msg);
    memset(&e->batch, 0, sizeof e->batch);
}

static int batch_ws_grow(ds4j_engine *e, int64_t n, int64_t msg) {
    if (n > e->batch.cap) {
        int64_t *done = malloc((size_t)n * sizeof *done), *pos = malloc((size_t)n * sizeof *pos);
        dsv4_seq *seqs = malloc((size_t)n * sizeof *seqs);
        int32_t *entry = malloc((size_t)n * sizeof *entry);
        if (!done || !pos || !seqs || !entry) {
            free(done); free(pos); free(seqs); free(entry);
            return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory for a batch of %lld entries", (long long)n);
        }
        free(e->batch.done); free(e->batch.pos); free(e->batch.seqs); free(e->batch.entry);
        e->batch.done = done; e->batch.pos = pos; e->batch.seqs = seqs; e->batch.entry = entry;
        e->batch.cap = n;
    }
    if (msg > e->batch.msg_cap) {
        int32_t *m = malloc((size_t)msg * sizeof *m);
        if (!m) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory for a batch of %lld ints", (long long)msg);
        free(e->batch.msg);
        e->batch.msg = m;
        e->batch.msg_cap = msg;
    }
    return 0;
}

/* Every reason to refuse the call, before anything changes. *total gets
 * the number of tokens of all entries. */
static int batch_check(ds4j_engine *e, const ds4j_batch_entry *en, int32_t n, int64_t *total) {
    uint32_t stamp = ++e->batch.stamp;
    if (stamp == 0) stamp = ++e->batch.stamp; /* 0 is a fresh session's mark */
    int64_t t = 0;
    for (int32_t i = 0; i < n; i++) {
        ds4j_session *s = en[i].session;
        if (!s) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "batch entry %d: session is NULL", i);
        if (s->eng != e)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "batch entry %d: the session belongs to another engine", i);
        if (ds4j_dist_check_session(s)) return DS4J_ERR_STATE;
        if (s->batch_mark == stamp) {
            int32_t j = 0;
            while (en[j].session != s) j++;
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "batch entries %d and %d name the same session", j, i);
        }
        s->batch_mark = stamp;
        if (en[i].flags != 0)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "batch entry %d: flags must be 0 (got %d)", i, en[i].flags);
        if (en[i].n_tokens <= 0 || !en[i].tokens)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "batch entry %d: needs at least one token (n_tokens = %d%s)", i,
                             en[i].n_tokens, en[i].tokens ? "" : ", tokens NULL");
        if (s->st->pos + en[i].n_tokens > s->n_ctx)
            return ds4j_fail(DS4J_ERR_CONTEXT_FULL,
                             "batch entry %d: context full: %lld tokens evaluated + %d new exceed n_ctx = %lld", i,
                             (long long)s->st->pos, en[i].n_tokens, (long long)s->n_ctx);
        for (int32_t k = 0; k < en[i].n_tokens; k++)
            if (en[i].tokens[k] < 0 || en[i].tokens[k] >= e->n_vocab)
                return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "batch entry %d: token id %d at index %d is out of range [0, %lld)",
                                 i, en[i].tokens[k], k, (long long)e->n_vocab);
        t += en[i].n_tokens;
    }
    /* the followers' announcement carries (sid, n) pairs and the tokens as int32s */
    if (t + 2 * (int64_t)n > INT32_MAX)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "a batch of %lld tokens is too large for one call", (long long)t);
    *total = t;
    return 0;
}

static int batch_run(ds4j_engine *e, const ds4j_batch_entry *en, int32_t n) {
    int64_t cap = e->prefill_chunk; /* rows of one forward: the scratch (CPU or GPU) was sized for it */
    int64_t *done = e->batch.done, *pos = e->batch.pos;
    dsv4_seq *seqs = e->batch.seqs;
    int32_t *entry = e->batch.entry;
    for (int32_t i = 0; i < n; i++) done[i] = 0;
    int32_t first = 0; /* entries before it are done */
    while (first < n) {
        int64_t np = 0, rows = 0;
        for (int32_t i = first; i < n && rows < cap; i++) {
            ds4j_session *s = en[i].session;
            int64_t rem = en[i].n_tokens - done[i];
            if (rem == 0) continue;
            int64_t p = s->st->pos, len = rem;
            int64_t next_ck = (p / s->ck_interval + 1) * s->ck_interval;
            if (len > e->prefill_chunk) len = e->prefill_chunk;
            if (len > cap - rows) len = cap - rows;
            if (p + len > next_ck) len = next_ck - p;
            seqs[np] = (dsv4_seq){.st = s->st, .tokens = en[i].tokens + done[i], .n = len, .logits_all = NULL,
                                  .logits_last = len == rem && !s->skip_head ? s->logits : NULL};
            entry[np] = i;
            pos[np] = p;
            ds4j_dist_fold(e, s->sid, p, seqs[np].tokens, len); /* divergence guard, as for one session */
            np++;
            rows += len;
        }
        int rc = forward_pieces(e, seqs, np);
        if (rc) {
            /* a failure inside the layers (a peer's all-reduce) leaves these
             * states half-updated: back to their last consistent checkpoints */
            for (int64_t k = 0; k < np; k++) {
                ds4j_session *s = en[entry[k]].session;
                ck_restore(s, pos[k], 1);
                s->has_logits = 0;
            }
            return rc;
        }
        for (int64_t k = 0; k < np; k++) {
            int32_t i = entry[k];
            ds4j_session *s = en[i].session;
            memmove(s->tokens + pos[k], seqs[k].tokens, (size_t)seqs[k].n * sizeof(int32_t));
            done[i] += seqs[k].n;
            s->has_logits = done[i] == en[i].n_tokens;
            if (s->st->pos % s->ck_interval == 0) ck_save(s);
        }
        while (first < n && done[first] == en[first].n_tokens) first++;
    }
    return 0;
}

DS4J_API int32_t ds4j_batch_eval(ds4j_engine *e, const ds4j_batch_entry *entries, int32_t n_entries) {
    ds4j_clear_error();
    if (!e || !e->model) return ds4j_fail(e ? DS4J_ERR_STATE : DS4J_ERR_INVALID_ARGUMENT, "engine is NULL or has no model");
    if (n_entries < 0 || (n_entries > 0 && !entries))
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "batch: %d entries%s", n_entries, entries ? "" : " at NULL");
    if (ds4j_dist_check_driver(e, "batch_eval")) return DS4J_ERR_STATE;
    if (n_entries == 0) return DS4J_OK;
    int64_t total = 0;
    int rc = batch_check(e, entries, n_entries, &total);
    if (rc) return rc;
    int lead = ds4j_dist_leading(e);
    if (batch_ws_grow(e, n_entries, lead ? 2 * (int64_t)n_entries + total : 0)) return DS4J_ERR_NO_MEMORY;
    /* the head's buffer for several sessions' logits in one forward */
    int64_t heads = 0;
    for (int32_t i = 0; i < n_entries; i++) heads += !entries[i].session->skip_head;
    if (!e->gpu && heads > 1 && dsv4_scratch_reserve_head(e->model, e->scratch, heads)) return DS4J_ERR_NO_MEMORY;
    if (lead) {
        int32_t *m = e->batch.msg, *tok = m + 2 * (int64_t)n_entries;
        for (int32_t i = 0; i < n_entries; i++) {
            m[2 * i] = entries[i].session->sid;
            m[2 * i + 1] = entries[i].n_tokens;
            memcpy(tok, entries[i].tokens, (size_t)entries[i].n_tokens * sizeof(int32_t));
            tok += entries[i].n_tokens;
        }
        if (ds4j_dist_announce(e, DS4J_OP_BATCH, -1, n_entries, m, (int32_t)(2 * (int64_t)n_entries + total)))
            return DS4J_ERR_COMM;
    }
    rc = batch_run(e, entries, n_entries);
    return rc ? rc : DS4J_OK;
}
