/*
 * session.h — internal layout of the public handles (ds4j_engine,
 * ds4j_session) shared by engine.c and session.c, plus the option-string
 * parser used by the engine and the sampler.
 */
#ifndef DS4J_SESSION_H
#define DS4J_SESSION_H

#include <stdint.h>

#include "ds4j.h"
#include "comm.h"
#include "gguf.h"
#include "kv_state.h"
#include "model_dsv4.h"
#include "threadpool.h"

struct ds4j_engine {
    char *path;
    gguf_file *gguf;
    dsv4_model *model;      /* NULL with vocab_only */
    ds4j_pool *pool;
    dsv4_scratch *scratch;  /* CPU backend */
    struct cuda_engine *gpu; /* backend=cuda: weights, scratch and sessions' state on the GPU */
    int device;             /* backend=cuda: CUDA device index */
    int n_threads;
    int vocab_only;
    int kv_fp8;
    int expert_compact;     /* expert_compact=1: the file holds only this rank's experts */
    int64_t prefill_chunk;
    int all_sum_dtype;      /* routed all_sum payload: 0 f32, 1 f16, 2 bf16 (the leader's, adopted at open) */
    int allsum_overlap;     /* option allsum_overlap (default 1); after the handshake: 1 only where the
                             * leader asked for it, the backend has a split all_sum and the CPU forward runs */
    int64_t n_vocab;
    char *describe;
    struct ds4j_comm *comm;  /* NULL without comm= (one process) */
    struct ds4j_dist *dist;  /* all_sum timing; NULL without comm= */
    int64_t divergence_check; /* forwards between token-hash comparisons (dist.c); 0 = off; the leader's */
    int64_t fault_after;     /* test hook (ds4j_dist_fault_kill_after): 0 = off */
    int64_t fault_seen;
    int fault_sig;           /* the signal it raises: SIGKILL (0) or e.g. SIGSTOP */
    int following;           /* rank > 0 inside ds4j_engine_follow */
    int32_t next_sid;        /* leader: id of the next session (creation order) */
    int32_t epoch;           /* leader: ds4j_engine_recover calls so far; a session of an older epoch
                              * has no follower copies (ds4j_dist_check_session) */
    char *options;           /* the engine options as opened (recovery derives the new followers' from them) */
    char respawn_tool[400];  /* recovery: the ds4j-tool new followers run ("" = beside libds4j) */
    int64_t *rank_range;     /* [2 x world size]: every rank's expert range, from the handshake */
    char fingerprint[33];    /* ds4j_engine_fingerprint (state_file.c); "" with vocab_only */
    /* ds4j_batch_eval's workspace, grown at the call (never inside a step) */
    struct {
        int64_t cap;             /* entries the arrays below hold */
        int64_t *done;           /* [cap] tokens of each entry evaluated so far */
        dsv4_seq *seqs;          /* [cap] pieces of one forward */
        int32_t *entry;          /* [cap] entry of each piece */
        int64_t *pos;            /* [cap] its session's position before the forward */
        int32_t *msg;            /* leader: the announcement (sid, n) pairs + tokens */
        int64_t msg_cap;
        uint32_t stamp;          /* per call, marks sessions already seen (duplicates) */
    } batch;
};

/* Checkpoints: a ring of snapshots of the fixed-size decoder state taken
 * every DS4J_CK_INTERVAL tokens, plus one slot (DS4J_CK_MARK) for the
 * position before the last token of the latest sync (see session.c). The
 * describe JSON reports the interval ("checkpoint_interval"). */
#define DS4J_CK_INTERVAL 64
#define DS4J_CK_SLOTS 8
#define DS4J_CK_MARK DS4J_CK_SLOTS
#define DS4J_CK_TOTAL (DS4J_CK_SLOTS + 1)

struct ds4j_session {
    ds4j_engine *eng;
    kv_state *st;
    int64_t n_ctx;
    int32_t *tokens;        /* [n_ctx] evaluated tokens */
    float *logits;          /* [V] after the last token */
    int has_logits;
    int64_t ck_interval;
    uint8_t *ck_data;       /* [DS4J_CK_TOTAL][fixed_bytes] */
    int64_t ck_pos[DS4J_CK_TOTAL]; /* -1 = empty */
    int32_t sid;            /* id shared by the leader and its followers */
    int32_t epoch;          /* the engine's epoch at creation (recovery) */
    int skip_head;          /* follower: nobody reads the logits, skip the LM head */
    uint32_t batch_mark;    /* the engine's batch.stamp of the last ds4j_batch_eval naming it */
};

/* Parse "k=v;k=v\n..." calling cb(user, key, value) for each pair; stops at
 * the first non-zero return. Empty items are skipped. Returns 0 or the
 * callback's error / DS4J_ERR_INVALID_ARGUMENT for malformed input. */
int ds4j_opts_parse(const char *s, int (*cb)(void *user, const char *key, const char *val), void *user);
int ds4j_parse_i64(const char *v, int64_t *out);
int ds4j_parse_f64(const char *v, double *out);
/* Computes e->fingerprint (engine open; state_file.c). */
void ds4j_state_fingerprint_init(ds4j_engine *e);
/* The session's checkpoints, for state_file.c: the newest snapshot of the
 * fixed state at a position in (0, max_pos] (the current state counts when
 * its position qualifies). Returns the position and sets *fixed to the
 * buffer holding it (session memory kind), or 0 if none. */
int64_t ds4j_session_snapshot(const ds4j_session *s, int64_t max_pos, const void **fixed);
/* After the state buffers were overwritten at pos (a loaded file) or wiped
 * (pos 0): drop every checkpoint, forget the logits, and keep the state at
 * pos as the mark checkpoint. */
void ds4j_session_adopt(ds4j_session *s, int64_t pos);
/* Frees the engine's ds4j_batch_eval workspace (engine close). */
void ds4j_batch_ws_free(ds4j_engine *e);
/* Test hook (sampling.c): the sampler's sort of a top-p tail on n (value,
 * id) pairs, values descending and equal values by ascending id, in place.
 * Returns 0 or DS4J_ERR_NO_MEMORY. */
int ds4j_sampler_sort_desc(float *val, int32_t *id, int64_t n);

#endif
