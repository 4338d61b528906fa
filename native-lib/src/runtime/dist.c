/*
 * dist.c — expert parallelism at the engine level: the open-time handshake
 * between ranks (everyone opened the same model; expert ranges partition
 * the routed experts), the all-reduce hook that sums each MoE layer's
 * routed output through the communicator, the per-layer all_sum timing
 * (cumulative counters plus a bounded ring of samples for histograms), the
 * leader/follower protocol (the leader announces each session operation;
 * ds4j_engine_follow replays them on the followers), recovery after a lost
 * rank (ds4j_engine_recover: new followers, the handshake again) and the
 * public ds4j_engine_rank / world_size / broadcast / follow / stats entry
 * points.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "common.h"
#include "dist.h"
#include "session.h"

#define DIST_RING_CAP 16384 /* samples kept between drains (~192 KiB) */

struct ds4j_dist {
    pthread_mutex_t mu;
    int64_t n_layer;
    int64_t *count, *total_ns, *max_ns; /* [n_layer] cumulative */
    int32_t *ring_layer;                /* [DIST_RING_CAP] */
    int64_t *ring_ns;
    int64_t head, len, dropped;         /* oldest sample at (head - len) mod cap */
    /* divergence guard (owner thread only) */
    uint64_t hash;                      /* FNV-1a of every forward's (sid, pos, n, tokens) */
    int64_t forwards;                   /* forwards folded so far */
    int check_due;                      /* compare at the next layer-0 all_sum */
    int64_t diverge_after, evals;       /* test hook: perturb this follower's EVAL number diverge_after */
    int64_t split_ns;                   /* split all_sum in flight: time spent in its calls so far */
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void dist_free(ds4j_dist *d) {
    if (!d) return;
    pthread_mutex_destroy(&d->mu);
    free(d->count);
    free(d->total_ns);
    free(d->max_ns);
    free(d->ring_layer);
    free(d->ring_ns);
    free(d);
}

static ds4j_dist *dist_new(int64_t n_layer) {
    ds4j_dist *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    pthread_mutex_init(&d->mu, NULL);
    d->n_layer = n_layer;
    d->count = calloc((size_t)n_layer, sizeof(int64_t));
    d->total_ns = calloc((size_t)n_layer, sizeof(int64_t));
    d->max_ns = calloc((size_t)n_layer, sizeof(int64_t));
    d->ring_layer = calloc(DIST_RING_CAP, sizeof(int32_t));
    d->ring_ns = calloc(DIST_RING_CAP, sizeof(int64_t));
    if (!d->count || !d->total_ns || !d->max_ns || !d->ring_layer || !d->ring_ns) {
        dist_free(d);
        return NULL;
    }
    return d;
}

static void dist_record(ds4j_dist *d, int layer, int64_t ns) {
    if (layer < 0 || layer >= d->n_layer) return;
    pthread_mutex_lock(&d->mu);
    d->count[layer]++;
    d->total_ns[layer] += ns;
    if (ns > d->max_ns[layer]) d->max_ns[layer] = ns;
    d->ring_layer[d->head] = layer;
    d->ring_ns[d->head] = ns;
    d->head = (d->head + 1) % DIST_RING_CAP;
    if (d->len < DIST_RING_CAP) d->len++;
    else d->dropped++; /* overwrote the oldest undrained sample */
    pthread_mutex_unlock(&d->mu);
}

static uint64_t fnv_i32(uint64_t h, int64_t v) {
    for (int i = 0; i < 4; i++) {
        h ^= (uint64_t)((v >> (8 * i)) & 0xFF);
        h *= 0x100000001b3ULL;
    }
    return h;
}

void ds4j_dist_fold(ds4j_engine *e, int32_t sid, int64_t pos, const int32_t *toks, int64_t n) {
    ds4j_dist *d = e->dist;
    if (!d || !e->divergence_check) return;
    uint64_t h = fnv_i32(fnv_i32(fnv_i32(d->hash, sid), pos), n);
    for (int64_t i = 0; i < n; i++) h = fnv_i32(h, toks[i]);
    d->hash = h;
    d->forwards++;
    d->check_due = d->forwards % e->divergence_check == 0;
}

void ds4j_dist_fold_op(ds4j_engine *e, int32_t op, int32_t sid, int32_t other, const int32_t *toks, int64_t n) {
    ds4j_dist *d = e->dist;
    if (!d || !e->divergence_check) return;
    uint64_t h = fnv_i32(fnv_i32(fnv_i32(fnv_i32(d->hash, -op), sid), other), n);
    for (int64_t i = 0; i < n; i++) h = fnv_i32(h, toks[i]);
    d->hash = h;
}

/* Every rank writes its hash as four exact 16-bit digits into its own slot
 * of a zeroed vector, so one all_sum shows every rank every other rank's
 * hash (the sums add zeros only). */
static int dist_guard(ds4j_engine *e) {
    ds4j_dist *d = e->dist;
    int size = ds4j_comm_size(e->comm), rank = ds4j_comm_rank(e->comm);
    float v[4 * 256];
    if (size > 256) return 0; /* larger clusters: not checked (the vector would not fit this stack buffer) */
    memset(v, 0, sizeof(float) * 4 * (size_t)size);
    for (int i = 0; i < 4; i++) v[4 * rank + i] = (float)((d->hash >> (16 * i)) & 0xFFFF);
    if (ds4j_comm_all_sum_f32(e->comm, v, 4 * size)) return DS4J_ERR_COMM;
    uint64_t lead = 0;
    for (int i = 0; i < 4; i++) lead |= (uint64_t)v[i] << (16 * i);
    char bad[256] = "";
    size_t o = 0;
    int n_bad = 0;
    for (int r = 1; r < size; r++) {
        uint64_t h = 0;
        for (int i = 0; i < 4; i++) h |= (uint64_t)v[4 * r + i] << (16 * i);
        if (h == lead) continue;
        if (n_bad++ < 4 && o < sizeof bad)
            o += (size_t)snprintf(bad + o, sizeof bad - o, "%srank %d 0x%016llx", n_bad > 1 ? ", " : "", r,
                                  (unsigned long long)h);
    }
    if (!n_bad) return 0;
    char msg[512];
    snprintf(msg, sizeof msg,
             "divergence guard: after forward %lld the ranks evaluated different tokens: leader (rank 0) token hash "
             "0x%016llx, %s%s; the ranks are out of step and their results would be garbage",
             (long long)d->forwards, (unsigned long long)lead, bad, n_bad > 4 ? ", ..." : "");
    ds4j_comm_mark_broken(e->comm, msg);
    return ds4j_fail(DS4J_ERR_COMM, "%s %s (seen on rank %d of %d)", ds4j_comm_name(e->comm), msg, rank, size);
}

/* What precedes every layer's sum: the fault-injection hook and, when due,
 * the divergence guard (a blocking all_sum of its own, before the layer's). */
static int dist_prologue(ds4j_engine *e, int layer) {
    if (layer == 0 && e->fault_after && ++e->fault_seen >= e->fault_after) raise(e->fault_sig ? e->fault_sig : SIGKILL);
    if (layer == 0 && e->dist->check_due) {
        e->dist->check_due = 0;
        return dist_guard(e);
    }
    return 0;
}

/* The model's reduction hook: routed-expert partial sums -> full sums. */
static int dist_allreduce(void *user, int layer, float *buf, int64_t n) {
    ds4j_engine *e = user;
    int grc = dist_prologue(e, layer);
    if (grc) return grc;
    int64_t t0 = now_ns();
    int rc = e->all_sum_dtype ? ds4j_comm_all_sum_16(e->comm, buf, n, e->all_sum_dtype == 2)
                              : ds4j_comm_all_sum_f32(e->comm, buf, n);
    if (!rc) dist_record(e->dist, layer, now_ns() - t0);
    return rc;
}

/* The split hook (allsum_overlap=1): the sum travels while the forward
 * computes the shared expert. The sample recorded is the time the forward
 * spent inside the all_sum calls (start, the polls, the wait): what the
 * overlap left exposed, comparable with the blocking hook's whole sum. */
static int dist_start(void *user, int layer, float *buf, int64_t n) {
    ds4j_engine *e = user;
    int grc = dist_prologue(e, layer);
    if (grc) return grc;
    int64_t t0 = now_ns();
    int rc = ds4j_comm_all_sum_start(e->comm, buf, n, e->all_sum_dtype);
    e->dist->split_ns = now_ns() - t0;
    return rc;
}

static int dist_poll(void *user, int layer) {
    (void)layer;
    ds4j_engine *e = user;
    int64_t t0 = now_ns();
    int done = 0;
    int rc = ds4j_comm_all_sum_test(e->comm, &done);
    e->dist->split_ns += now_ns() - t0;
    return rc ? rc : done;
}

static int dist_finish(void *user, int layer) {
    ds4j_engine *e = user;
    int64_t t0 = now_ns();
    int rc = ds4j_comm_all_sum_wait(e->comm);
    if (!rc) dist_record(e->dist, layer, e->dist->split_ns + now_ns() - t0);
    return rc;
}

void ds4j_dist_fault_kill_after(ds4j_engine *e, int64_t n) {
    e->fault_after = n + 1;
    e->fault_seen = 0;
}

void ds4j_dist_fault_stop_after(ds4j_engine *e, int64_t n) {
    ds4j_dist_fault_kill_after(e, n);
    e->fault_sig = SIGSTOP;
}

void ds4j_dist_fault_diverge_after(ds4j_engine *e, int64_t n) {
    if (e->dist) e->dist->diverge_after = n + 1;
}

/* Sum a small status vector over ranks, keeping the caller's error message
 * if it already has one (a failing rank still takes part, so that peers do
 * not wait for it forever). */
static int hs_sum(ds4j_engine *e, float *v, int64_t n) { return ds4j_comm_all_sum_f32(e->comm, v, n); }

int ds4j_dist_handshake(ds4j_engine *e, int ok, int64_t exp_lo, int64_t exp_hi) {
    ds4j_comm *c = e->comm;
    int size = ds4j_comm_size(c), rank = ds4j_comm_rank(c);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", ds4j_last_error());
    const dsv4_model *m = ok ? e->model : NULL;
    /* 1: everyone ready, and everyone opened the same model: rank 0's
     * fingerprint goes out, each rank compares, and the verdicts are summed
     * so that every rank reaches the same conclusion. */
    int32_t fp[6] = {0}, mine[6] = {0};
    if (m) {
        mine[0] = 1;
        mine[1] = (int32_t)m->hp.n_expert;
        mine[2] = (int32_t)m->hp.n_layer;
        mine[3] = (int32_t)m->hp.n_embd;
        mine[4] = (int32_t)m->hp.n_vocab;
        /* everything but the routed experts, which differ between the
         * ranks' slices under expert_compact */
        mine[5] = (int32_t)((m->total_bytes - m->expert_bytes) % 2147483647);
    }
    memcpy(fp, mine, sizeof fp);
    if (ds4j_comm_broadcast_i32(c, fp, 6, 0)) return DS4J_ERR_COMM;
    float v[2] = {(float)ok, (float)(ok && memcmp(fp, mine, sizeof fp) != 0)};
    if (hs_sum(e, v, 2)) return DS4J_ERR_COMM;
    if (!ok) {
        ds4j_set_error_str(saved);
        return DS4J_ERR_STATE; /* the caller reports its own error */
    }
    if (v[0] != (float)size)
        return ds4j_fail(DS4J_ERR_COMM, "comm=%s: %d of %d ranks failed to open the model (see their errors)",
                         ds4j_comm_name(c), size - (int)v[0], size);
    if (v[1] != 0)
        return ds4j_fail(DS4J_ERR_COMM, "comm=%s: %d rank(s) opened a different model than rank 0",
                         ds4j_comm_name(c), (int)v[1]);
    /* 2: expert ranges partition [0, E) */
    int64_t E = m->hp.n_expert;
    int range_ok = 1;
    char range_err[512] = "";
    if (exp_lo < 0 && dsv4_model_partial(m)) {
        /* a sliced file names its own range */
        exp_lo = m->slice_lo;
        exp_hi = m->slice_hi;
    } else if (exp_lo < 0) {
        if (size > E) {
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "comm=%s: %d ranks but only %lld routed experts to share",
                             ds4j_comm_name(c), size, (long long)E);
        }
        exp_lo = E * rank / size;
        exp_hi = E * (rank + 1) / size;
    }
    if (dsv4_model_set_expert_range(e->model, exp_lo, exp_hi)) {
        range_ok = 0;
        snprintf(range_err, sizeof range_err, "%s", ds4j_last_error());
    }
    /* one sum: which ranks own each expert, how many ranks are fine, and
     * every rank's range in its own slot (the leader keeps them: recovery
     * gives a new rank exactly what the lost one owned) */
    float *mask = calloc((size_t)E + 1 + 2 * (size_t)size, sizeof(float));
    int64_t *ranges = calloc(2 * (size_t)size, sizeof(int64_t));
    if (!mask || !ranges) { free(mask); free(ranges); return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory"); }
    mask[E] = (float)range_ok;
    if (range_ok) {
        for (int64_t x = exp_lo; x < exp_hi; x++) mask[x] = 1;
        mask[E + 1 + 2 * rank] = (float)exp_lo;
        mask[E + 2 + 2 * rank] = (float)exp_hi;
    }
    if (hs_sum(e, mask, E + 1 + 2 * size)) { free(mask); free(ranges); return DS4J_ERR_COMM; }
    for (int r = 0; r < 2 * size; r++) ranges[r] = (int64_t)mask[E + 1 + r];
    free(e->rank_range);
    e->rank_range = ranges;
    int rc = 0;
    if (!range_ok) rc = ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "%s", range_err);
    else if (mask[E] != (float)size)
        rc = ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "comm=%s: another rank has an invalid expert_range", ds4j_comm_name(c));
    else
        for (int64_t x = 0; x < E && !rc; x++)
            if (mask[x] != 1)
                rc = ds4j_fail(DS4J_ERR_INVALID_ARGUMENT,
                               "comm=%s: expert ranges do not partition the %lld experts: expert %lld is owned by %d ranks",
                               ds4j_comm_name(c), (long long)E, (long long)x, (int)mask[x]);
    free(mask);
    if (rc) return rc;
    /* 3: chunking must be identical everywhere (each chunk is one all_sum of
     * S x H floats per layer), so the followers adopt the leader's
     * prefill_chunk, re-sizing their scratch if it differs. */
    int32_t pc[4] = {(int32_t)e->prefill_chunk, e->all_sum_dtype, (int32_t)e->divergence_check, e->allsum_overlap};
    if (ds4j_comm_broadcast_i32(c, pc, 4, 0)) return DS4J_ERR_COMM;
    e->all_sum_dtype = pc[1]; /* the payload type is the leader's too */
    e->divergence_check = pc[2]; /* and the guard's interval: every rank must take part in each check */
    /* and whether to overlap (one plugin for all ranks, so they agree on
     * whether it can; the result is the same bits either way): only the CPU
     * forward does (backend=cuda has no CPU scratch here and keeps the
     * blocking hook) */
    e->allsum_overlap = pc[3] && ds4j_comm_can_split(c) && e->scratch != NULL;
    float bad = 0;
    /* Allocate the stats before the last agreed collective, so that a rank
     * failing here fails everywhere instead of leaving the others waiting.
     * A recovering leader keeps its statistics; the new followers start
     * their guard's hash from zero, and so does it. */
    int fresh = e->dist == NULL;
    if (fresh) e->dist = dist_new(m->hp.n_layer);
    if (!e->dist) bad = 1;
    else {
        e->dist->hash = 0;
        e->dist->forwards = 0;
        e->dist->check_due = 0;
    }
    if (pc[0] != e->prefill_chunk && !e->scratch) {
        e->prefill_chunk = pc[0]; /* backend=cuda sizes its scratch after the handshake */
    } else if (pc[0] != e->prefill_chunk) {
        dsv4_scratch *ns = pc[0] > 0 ? dsv4_scratch_new(e->model, pc[0], e->n_threads) : NULL;
        if (ns) {
            dsv4_scratch_free(e->scratch);
            e->scratch = ns;
            e->prefill_chunk = pc[0];
        } else {
            bad = 1;
        }
    }
    int sum_rc = hs_sum(e, &bad, 1);
    if (sum_rc || bad != 0) {
        /* e->dist doubles as "the handshake succeeded everywhere" (ds4j_dist_leading) */
        if (fresh) {
            dist_free(e->dist);
            e->dist = NULL;
        } else {
            ds4j_comm_mark_broken(e->comm, "the rebuilt group failed its handshake");
        }
        if (sum_rc) return DS4J_ERR_COMM;
        return ds4j_fail(DS4J_ERR_NO_MEMORY, "comm=%s: %d rank(s) ran out of memory setting up (all_sum stats or "
                         "the leader's prefill_chunk=%d)", ds4j_comm_name(c), (int)bad, pc[0]);
    }
    dsv4_model_set_allreduce(e->model, dist_allreduce, e);
    if (e->allsum_overlap) dsv4_model_set_allreduce_split(e->model, dist_start, dist_poll, dist_finish);
    else dsv4_model_set_allreduce_split(e->model, NULL, NULL, NULL);
    return 0;
}

void ds4j_dist_close(ds4j_engine *e) {
    if (ds4j_dist_leading(e)) ds4j_dist_announce(e, DS4J_OP_SHUTDOWN, -1, 0, NULL, 0);
    if (e->model) {
        dsv4_model_set_allreduce(e->model, NULL, NULL);
        dsv4_model_set_allreduce_split(e->model, NULL, NULL, NULL);
    }
    dist_free(e->dist);
    e->dist = NULL;
    free(e->rank_range);
    e->rank_range = NULL;
    ds4j_comm_close(e->comm);
    e->comm = NULL;
}

/* ------------------------------------------------- leader / followers */

#define OP_MAGIC 0x444a4f50 /* header sanity check: both sides speak this protocol */
#define OP_HDR 6            /* magic, op, sid, a, n, reserved */

int ds4j_dist_leading(const ds4j_engine *e) {
    /* e->dist is set once the open-time handshake succeeded everywhere */
    return e && e->comm && e->dist && ds4j_comm_size(e->comm) > 1 && ds4j_comm_rank(e->comm) == 0;
}

int ds4j_dist_check_driver(const ds4j_engine *e, const char *what) {
    if (e->comm && ds4j_comm_rank(e->comm) > 0 && !e->following)
        return ds4j_fail(DS4J_ERR_STATE,
                         "%s on rank %d: with comm=%s only the leader (rank 0) drives sessions; "
                         "the other ranks call ds4j_engine_follow",
                         what, ds4j_comm_rank(e->comm), ds4j_comm_name(e->comm));
    return 0;
}

int ds4j_dist_check_session(const ds4j_session *s) {
    if (!s->eng->comm || s->epoch == s->eng->epoch || ds4j_comm_rank(s->eng->comm) != 0) return 0;
    return ds4j_fail(DS4J_ERR_STATE, "this session was created before the cluster was recovered "
                     "(ds4j_engine_recover): its copies on the followers are gone; free it and create a new one");
}

int ds4j_dist_announce(ds4j_engine *e, int op, int32_t sid, int32_t a, const int32_t *payload, int32_t n) {
    int32_t h[OP_HDR] = {OP_MAGIC, op, sid, a, n, 0};
    if (ds4j_comm_broadcast_i32(e->comm, h, OP_HDR, 0)) return DS4J_ERR_COMM;
    /* the root only sends: its buffer is not written */
    if (n > 0 && ds4j_comm_broadcast_i32(e->comm, (int32_t *)payload, n, 0)) return DS4J_ERR_COMM;
    return 0;
}

int ds4j_dist_agree(ds4j_engine *e, int ok, const char *what) {
    float bad = ok ? 0.0f : 1.0f;
    char saved[512];
    snprintf(saved, sizeof saved, "%s", ds4j_last_error());
    if (ds4j_comm_all_sum_f32(e->comm, &bad, 1)) return DS4J_ERR_COMM;
    if (bad == 0) return 0;
    if (!ok) {
        ds4j_set_error_str(saved);
        return DS4J_ERR_NO_MEMORY;
    }
    return ds4j_fail(DS4J_ERR_NO_MEMORY, "%s: failed on %d other rank(s) (see their errors)", what, (int)bad);
}

int32_t ds4j_dist_progress_cb(void *ctx, int32_t done, int32_t total) {
    ds4j_dist_progress *p = ctx;
    int32_t stop = p->fn ? p->fn(p->user, done, total) != 0 : 0;
    if (ds4j_comm_broadcast_i32(p->e->comm, &stop, 1, 0)) {
        p->failed = 1;
        snprintf(p->msg, sizeof p->msg, "%s", ds4j_last_error());
        return 1;
    }
    return stop;
}

typedef struct {
    int32_t *sid;
    ds4j_session **s;
    int64_t n, cap;
    ds4j_batch_entry *batch; /* DS4J_OP_BATCH: the leader's entries rebuilt here */
    int64_t batch_cap;
} session_map;

static ds4j_session **map_find(session_map *m, int32_t sid) {
    for (int64_t i = 0; i < m->n; i++)
        if (m->sid[i] == sid) return &m->s[i];
    return NULL;
}

static int map_put(session_map *m, int32_t sid, ds4j_session *s) {
    if (m->n == m->cap) {
        int64_t cap = m->cap ? m->cap * 2 : 8;
        int32_t *ns = realloc(m->sid, (size_t)cap * sizeof *ns);
        if (ns) m->sid = ns;
        ds4j_session **nv = ns ? realloc(m->s, (size_t)cap * sizeof *nv) : NULL;
        if (!nv) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
        m->s = nv;
        m->cap = cap;
    }
    m->sid[m->n] = sid;
    m->s[m->n++] = s;
    return 0;
}

static void map_del(session_map *m, int32_t sid) {
    ds4j_session **p = map_find(m, sid);
    if (!p) return;
    int64_t i = p - m->s;
    ds4j_session_free(m->s[i]);
    m->sid[i] = m->sid[m->n - 1];
    m->s[i] = m->s[m->n - 1];
    m->n--;
}

/* DS4J_OP_BATCH: rebuild the leader's entries from (sid, n_tokens) pairs
 * and the tokens that follow them, then run the same step. */
static int follow_batch(ds4j_engine *e, session_map *m, int32_t n_entries, const int32_t *msg, int32_t len) {
    if (n_entries < 0 || 2 * (int64_t)n_entries > len)
        return ds4j_fail(DS4J_ERR_STATE, "follow: malformed batch announcement (%d entries, %d ints)", n_entries, len);
    if (n_entries > m->batch_cap) {
        ds4j_batch_entry *nb = realloc(m->batch, (size_t)n_entries * sizeof *nb);
        if (!nb) return ds4j_fail(DS4J_ERR_NO_MEMORY, "follow: out of memory for a batch of %d entries", n_entries);
        m->batch = nb;
        m->batch_cap = n_entries;
    }
    const int32_t *tok = msg + 2 * (int64_t)n_entries;
    int64_t left = len - 2 * (int64_t)n_entries;
    for (int32_t i = 0; i < n_entries; i++) {
        ds4j_session **ps = map_find(m, msg[2 * i]);
        int32_t nt = msg[2 * i + 1];
        if (!ps) return ds4j_fail(DS4J_ERR_STATE, "follow: the leader's batch names session %d, which this rank does not hold", msg[2 * i]);
        if (nt <= 0 || nt > left) return ds4j_fail(DS4J_ERR_STATE, "follow: malformed batch announcement (entry %d)", i);
        m->batch[i] = (ds4j_batch_entry){.session = *ps, .tokens = tok, .n_tokens = nt, .flags = 0};
        tok += nt;
        left -= nt;
    }
    if (left != 0) return ds4j_fail(DS4J_ERR_STATE, "follow: malformed batch announcement (%lld ints left over)", (long long)left);
    /* the leader validated the same entries against the same states */
    int rc = ds4j_batch_eval(e, m->batch, n_entries);
    return rc == DS4J_ERR_COMM ? rc : 0;
}

/* Apply one announced operation; non-zero ends the loop. Local failures
 * that the leader meets too (bad token, context full) are not fatal: the
 * leader reports them to its caller and both sides stay in step. */
static int follow_one(ds4j_engine *e, session_map *m, const int32_t *h, int32_t **buf, int64_t *buf_cap) {
    int op = h[1], n = h[4];
    int32_t sid = h[2], a = h[3];
    if (h[0] != OP_MAGIC || n < 0)
        return ds4j_fail(DS4J_ERR_STATE, "follow: unexpected message from the leader (not a ds4j operation header)");
    if (n > *buf_cap) {
        int32_t *nb = realloc(*buf, (size_t)n * sizeof(int32_t));
        if (!nb) return ds4j_fail(DS4J_ERR_NO_MEMORY, "follow: out of memory for %d tokens", n);
        *buf = nb;
        *buf_cap = n;
    }
    if (n > 0 && ds4j_comm_broadcast_i32(e->comm, *buf, n, 0)) return DS4J_ERR_COMM;
    if (op == DS4J_OP_SHUTDOWN) return 1;
    if (op == DS4J_OP_BCAST) return 0;
    if (op == DS4J_OP_BARRIER) return ds4j_comm_barrier(e->comm);
    if (op == DS4J_OP_BATCH) return follow_batch(e, m, a, *buf, n);
    if (op == DS4J_OP_NEW) {
        ds4j_session *s = ds4j_session_new_follower(e, sid, a);
        if (!s) return ds4j_comm_broken(e->comm) ? DS4J_ERR_COMM : 0; /* the leader failed the call as well */
        if (map_put(m, sid, s)) {
            ds4j_session_free(s);
            return DS4J_ERR_NO_MEMORY;
        }
        return 0;
    }
    ds4j_session **ps = map_find(m, sid);
    if (!ps) return ds4j_fail(DS4J_ERR_STATE, "follow: the leader used session %d, which this rank does not hold", sid);
    ds4j_session *s = *ps;
    int rc = 0;
    switch (op) {
    case DS4J_OP_FREE: map_del(m, sid); return 0;
    case DS4J_OP_EVAL:
        if (e->dist->diverge_after && ++e->dist->evals == e->dist->diverge_after) a = (a + 1) % (int32_t)e->n_vocab;
        rc = ds4j_session_eval(s, a);
        break;
    case DS4J_OP_EVAL_BATCH: rc = ds4j_session_eval_batch(s, *buf, n, a, NULL); break;
    case DS4J_OP_REWIND: rc = ds4j_session_rewind(s, a); break;
    case DS4J_OP_COPY: {
        ds4j_session **src = n == 1 ? map_find(m, (*buf)[0]) : NULL;
        if (!src)
            return ds4j_fail(DS4J_ERR_STATE, "follow: the leader copied from session %d, which this rank does not hold",
                             n == 1 ? (*buf)[0] : -1);
        rc = ds4j_session_copy(s, *src, a);
        break;
    }
    case DS4J_OP_SYNC: {
        ds4j_dist_progress p = {.fn = NULL, .e = e};
        rc = ds4j_session_sync_follower(s, *buf, n, a != 0, &p);
        break;
    }
    default: return ds4j_fail(DS4J_ERR_STATE, "follow: unknown operation %d from the leader", op);
    }
    return rc == DS4J_ERR_COMM ? rc : 0;
}

/* ------------------------------------------------------------ public */

DS4J_API int32_t ds4j_engine_rank(const ds4j_engine *e) {
    return e ? ds4j_comm_rank(e->comm) : DS4J_ERR_INVALID_ARGUMENT;
}

DS4J_API int32_t ds4j_engine_world_size(const ds4j_engine *e) {
    return e ? ds4j_comm_size(e->comm) : DS4J_ERR_INVALID_ARGUMENT;
}

DS4J_API int32_t ds4j_engine_broadcast_tokens(ds4j_engine *e, int32_t *tokens, int32_t n, int32_t root) {
    ds4j_clear_error();
    if (!e || n < 0 || (n > 0 && !tokens)) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "broadcast_tokens: bad arguments");
    if (!e->comm) {
        if (root != 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "broadcast_tokens: root %d but one rank", root);
        return n;
    }
    if (ds4j_dist_check_driver(e, "broadcast_tokens")) return DS4J_ERR_STATE;
    if (ds4j_dist_leading(e)) {
        /* the followers sit in ds4j_engine_follow: announce, which carries the ids */
        if (root != 0) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "broadcast_tokens: only the leader (rank 0) can be root");
        int rc = ds4j_dist_announce(e, DS4J_OP_BCAST, -1, 0, tokens, n);
        return rc ? rc : n;
    }
    int rc = ds4j_comm_broadcast_i32(e->comm, tokens, n, root);
    return rc ? rc : n;
}

DS4J_API int32_t ds4j_engine_barrier(ds4j_engine *e) {
    ds4j_clear_error();
    if (!e) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "barrier: engine is NULL");
    if (!e->comm) return DS4J_OK;
    if (ds4j_dist_check_driver(e, "barrier")) return DS4J_ERR_STATE;
    if (ds4j_dist_leading(e) && ds4j_dist_announce(e, DS4J_OP_BARRIER, -1, 0, NULL, 0)) return DS4J_ERR_COMM;
    return ds4j_comm_barrier(e->comm);
}

DS4J_API int32_t ds4j_engine_follow(ds4j_engine *e) {
    ds4j_clear_error();
    if (!e) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "follow: engine is NULL");
    if (!e->comm || !e->dist || ds4j_comm_rank(e->comm) == 0)
        return ds4j_fail(DS4J_ERR_STATE, "follow: only ranks > 0 of a comm= engine follow (this is rank %d of %d)",
                         ds4j_comm_rank(e->comm), ds4j_comm_size(e->comm));
    if (e->following) return ds4j_fail(DS4J_ERR_STATE, "follow: already following");
    e->following = 1;
    session_map m = {0};
    int32_t *buf = NULL;
    int64_t cap = 0;
    int rc;
    for (;;) {
        int32_t h[OP_HDR] = {0};
        if (ds4j_comm_broadcast_i32(e->comm, h, OP_HDR, 0)) { rc = DS4J_ERR_COMM; break; }
        rc = follow_one(e, &m, h, &buf, &cap);
        if (rc == 1) { rc = 0; break; }
        if (rc) break;
    }
    char saved[512];
    snprintf(saved, sizeof saved, "%s", ds4j_last_error());
    for (int64_t i = 0; i < m.n; i++) ds4j_session_free(m.s[i]);
    free(m.sid);
    free(m.s);
    free(m.batch);
    free(buf);
    e->following = 0;
    if (rc) ds4j_set_error_str(saved);
    else ds4j_clear_error();
    return rc;
}

DS4J_API int32_t ds4j_engine_allsum_stats(const ds4j_engine *e, int32_t layer, int64_t *count, int64_t *total_ns,
                                          int64_t *max_ns) {
    if (!e) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "allsum_stats: engine is NULL");
    int64_t L = e->model ? e->model->hp.n_layer : 0;
    if (layer < -1 || layer >= L)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "allsum_stats: layer %d out of range [-1, %lld)", layer, (long long)L);
    int64_t c = 0, t = 0, mx = 0;
    ds4j_dist *d = e->dist;
    if (d) {
        pthread_mutex_lock(&d->mu);
        for (int64_t l = layer < 0 ? 0 : layer; l < (layer < 0 ? L : layer + 1); l++) {
            c += d->count[l];
            t += d->total_ns[l];
            if (d->max_ns[l] > mx) mx = d->max_ns[l];
        }
        pthread_mutex_unlock(&d->mu);
    }
    if (count) *count = c;
    if (total_ns) *total_ns = t;
    if (max_ns) *max_ns = mx;
    return DS4J_OK;
}

DS4J_API int32_t ds4j_engine_allsum_drain(ds4j_engine *e, int32_t *layers, int64_t *ns, int32_t cap,
                                          int64_t *dropped) {
    if (!e || cap < 0 || (cap > 0 && (!layers || !ns)))
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "allsum_drain: bad arguments");
    ds4j_dist *d = e->dist;
    if (!d) {
        if (dropped) *dropped = 0;
        return 0;
    }
    pthread_mutex_lock(&d->mu);
    int64_t k = d->len < cap ? d->len : cap;
    int64_t start = (d->head - d->len + DIST_RING_CAP) % DIST_RING_CAP;
    for (int64_t i = 0; i < k; i++) {
        int64_t j = (start + i) % DIST_RING_CAP;
        layers[i] = d->ring_layer[j];
        ns[i] = d->ring_ns[j];
    }
    d->len -= k;
    if (dropped) *dropped = d->dropped;
    d->dropped = 0;
    pthread_mutex_unlock(&d->mu);
    return (int32_t)k;
}

/* ------------------------------------------------------------ recovery */

typedef struct { char *p; size_t n, cap; int overflow; } opt_buf;

/* The leader's options as the new followers get them: everything but what
 * names this rank's own share or the recovery itself. */
static int follower_opt(void *user, const char *k, const char *v) {
    opt_buf *b = user;
    if (!strcmp(k, "expert_range") || !strcmp(k, "respawn_tool")) return 0;
    int w = snprintf(b->p + b->n, b->cap - b->n, "%s=%s;", k, v);
    if (w < 0 || (size_t)w >= b->cap - b->n) b->overflow = 1;
    else b->n += (size_t)w;
    return 0;
}

DS4J_API int32_t ds4j_engine_recover(ds4j_engine *e) {
    ds4j_clear_error();
    if (!e) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "recover: engine is NULL");
    if (!e->comm || ds4j_comm_size(e->comm) < 2 || !e->dist || !e->rank_range)
        return ds4j_fail(DS4J_ERR_STATE, "recover: this engine has no distributed group (comm= with more than one rank)");
    if (ds4j_comm_rank(e->comm) != 0)
        return ds4j_fail(DS4J_ERR_STATE, "recover: only the leader (rank 0) rebuilds the group (this is rank %d)",
                         ds4j_comm_rank(e->comm));
    /* a working group is not replaced: its followers on other hosts could
     * not be stopped and would wait on the old communicator forever */
    if (!ds4j_comm_broken(e->comm))
        return ds4j_fail(DS4J_ERR_STATE, "recover: the cluster is healthy (no collective has failed): nothing to "
                         "recover");
    if (e->expert_compact || dsv4_model_partial(e->model))
        return ds4j_fail(DS4J_ERR_STATE, "recover: the ranks serve their own expert slice files (expert_compact), "
                         "which new followers started with the leader's file cannot: restart every rank");
    char tool[PATH_MAX + 16];
    const char *env = getenv("DS4J_RESPAWN_TOOL");
    if (e->respawn_tool[0]) snprintf(tool, sizeof tool, "%s", e->respawn_tool);
    else if (env && *env) snprintf(tool, sizeof tool, "%s", env);
    else {
        char dir[PATH_MAX];
        if (ds4j_comm_lib_dir(dir, sizeof dir))
            return ds4j_fail(DS4J_ERR_STATE, "recover: cannot tell where libds4j is; name ds4j-tool with respawn_tool=");
        snprintf(tool, sizeof tool, "%s/ds4j-tool", dir);
    }
    if (access(tool, X_OK) != 0)
        return ds4j_fail(DS4J_ERR_IO, "recover: the follower program %s is not executable here (set the engine option "
                         "respawn_tool=PATH or DS4J_RESPAWN_TOOL to ds4j-tool)", tool);
    int size = ds4j_comm_size(e->comm), n_new = size - 1;
    char opts_base[1024];
    opt_buf b = {opts_base, 0, sizeof opts_base, 0};
    opts_base[0] = 0;
    if (ds4j_opts_parse(e->options, follower_opt, &b) || b.overflow)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "recover: the engine options are too long to hand to new followers");
    /* per new rank r: follow --model PATH --options '<leader's>;expert_range=<what rank r owned>' */
    char (*opts)[1100] = calloc((size_t)n_new, sizeof *opts);
    char **args = calloc((size_t)n_new * 6, sizeof(char *));
    char ***argv = calloc((size_t)n_new, sizeof(char **));
    if (!opts || !args || !argv) {
        free(opts); free(args); free(argv);
        return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
    }
    for (int i = 0; i < n_new; i++) {
        int r = i + 1;
        snprintf(opts[i], sizeof opts[i], "%sexpert_range=%lld:%lld", opts_base, (long long)e->rank_range[2 * r],
                 (long long)e->rank_range[2 * r + 1]);
        char **a = args + (size_t)i * 6;
        a[0] = "follow";
        a[1] = "--model";
        a[2] = e->path;
        a[3] = "--options";
        a[4] = opts[i];
        a[5] = NULL;
        argv[i] = a;
    }
    int rc = ds4j_comm_respawn(e->comm, tool, (char *const *const *)argv);
    free(opts);
    free(args);
    free(argv);
    if (rc) return rc;
    /* the open-time checks again, with the new ranks (same model, ranges
     * partition the experts, the leader's chunking and payload); the
     * leader keeps its own range */
    rc = ds4j_dist_handshake(e, 1, e->rank_range[0], e->rank_range[1]);
    if (rc) {
        ds4j_comm_mark_broken(e->comm, ds4j_last_error());
        return rc;
    }
    e->epoch++; /* every older session's follower copies are gone */
    return DS4J_OK;
}
