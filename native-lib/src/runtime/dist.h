/*
 * dist.h — engine-level expert parallelism (dist.c): the open-time
 * handshake between ranks and teardown. The public entry points
 * (ds4j_engine_rank, ..._allsum_drain) are declared in ds4j.h.
 */
#ifndef DS4J_DIST_H
#define DS4J_DIST_H

#include <stdint.h>

struct ds4j_engine;
struct ds4j_session;
typedef struct ds4j_dist ds4j_dist;

/*
 * Collective, called by every rank right after loading (ok = 1) or after a
 * local failure (ok = 0, so that peers are not left waiting): checks that
 * all ranks opened the same model, sets this rank's expert range (exp_lo <
 * 0: an even split of E over the ranks), checks that the ranges partition
 * [0, E), and installs the all-reduce hook. With ok = 0 it returns
 * DS4J_ERR_STATE and keeps the caller's error message.
 */
int ds4j_dist_handshake(struct ds4j_engine *e, int ok, int64_t exp_lo, int64_t exp_hi);
/* Removes the hook, frees the statistics and closes the communicator. On
 * the leader of a multi-rank engine it first tells the followers to stop. */
void ds4j_dist_close(struct ds4j_engine *e);
/* Fault injection for tests (not in ds4j.h): SIGKILL this process when its
 * forward pass number n + 1 reaches its first all_sum, i.e. a peer that
 * crashes between two forwards of a request. Synchronous with the forward
 * passes, so the crash point does not depend on thread scheduling. */
void ds4j_dist_fault_kill_after(struct ds4j_engine *e, int64_t n);
/* The same with SIGSTOP: a stalled peer (the process exists, never answers). */
void ds4j_dist_fault_stop_after(struct ds4j_engine *e, int64_t n);
/* Fault injection for tests: a follower adds 1 to the token of the n + 1-th
 * single-token evaluation (DS4J_OP_EVAL) the leader announces, i.e. it really
 * computes on other data than the leader, which the divergence guard must
 * report. */
void ds4j_dist_fault_diverge_after(struct ds4j_engine *e, int64_t n);

/*
 * Divergence guard: every rank folds each forward's (session, position,
 * tokens) into a running 64-bit hash before computing it; every
 * divergence_check forwards (engine option, default 1, the leader's value),
 * at the first all_sum of the forward, the ranks exchange their hashes with
 * one extra all_sum of 4 x world-size floats. A mismatch fails the forward on
 * every rank with DS4J_ERR_COMM naming the ranks and hashes, and breaks the
 * communicator. No-op without a multi-rank communicator.
 */
void ds4j_dist_fold(struct ds4j_engine *e, int32_t sid, int64_t pos, const int32_t *toks, int64_t n);
/* The same for an operation that changes what a session holds without a
 * forward (ds4j_session_copy: op, destination sid, source sid, the tokens the
 * destination now holds): mixed into the hash but not counted as a forward,
 * so the checks (and their all_sums) fall on the same forwards as without it. */
void ds4j_dist_fold_op(struct ds4j_engine *e, int32_t op, int32_t sid, int32_t other, const int32_t *toks, int64_t n);

/*
 * Leader/follower mirroring (docs/distributed.md, "Leader and followers").
 * With world size > 1, rank 0 announces every state-changing session
 * operation and every public collective to the followers (which run
 * ds4j_engine_follow) before executing it. An announcement is one broadcast
 * of a fixed header, followed by one broadcast of the token payload when
 * the operation has one.
 */
enum {
    DS4J_OP_NEW = 1,   /* a = n_ctx; then an all_sum of the creation status */
    DS4J_OP_FREE,
    DS4J_OP_SYNC,      /* a = 1 if the leader has a progress callback (one
                        * continue/stop broadcast per chunk boundary), n tokens */
    DS4J_OP_EVAL,      /* a = token */
    DS4J_OP_EVAL_BATCH,/* a = chunk, n tokens */
    DS4J_OP_REWIND,    /* a = pos */
    DS4J_OP_BCAST,     /* n ints follow (ds4j_engine_broadcast_tokens) */
    DS4J_OP_BARRIER,
    DS4J_OP_SHUTDOWN,
    DS4J_OP_BATCH,     /* a = n entries; payload: n (sid, n_tokens) pairs, then
                        * every entry's tokens in entry order (ds4j_batch_eval) */
    DS4J_OP_COPY,      /* sid = destination, a = max_pos, payload: the source's sid
                        * (ds4j_session_copy; no all_sum) */
};
/* 1 on rank 0 of an engine with world size > 1. */
int ds4j_dist_leading(const struct ds4j_engine *e);
/* DS4J_ERR_STATE (with a message) when this rank is a follower that is not
 * inside ds4j_engine_follow: its sessions are driven by the leader. */
int ds4j_dist_check_driver(const struct ds4j_engine *e, const char *what);
/* DS4J_ERR_STATE (with a message) when s was created before the leader's
 * last ds4j_engine_recover: its follower copies died with the old group. */
int ds4j_dist_check_session(const struct ds4j_session *s);
/* Leader only: broadcast the header (op, sid, a) and payload[0..n). */
int ds4j_dist_announce(struct ds4j_engine *e, int op, int32_t sid, int32_t a, const int32_t *payload, int32_t n);

/* Collective status after DS4J_OP_NEW: 0 when every rank reports ok, else
 * an error naming how many ranks failed (DS4J_ERR_COMM if the sum itself
 * failed). */
int ds4j_dist_agree(struct ds4j_engine *e, int ok, const char *what);

/* Chunk-boundary verdicts of a mirrored sync. On the leader fn is the
 * caller's callback and its verdict is broadcast; on a follower fn is NULL
 * and the verdict is received. A failed broadcast stops the evaluation and
 * sets failed / msg. */
typedef struct ds4j_dist_progress {
    int32_t (*fn)(void *user, int32_t done, int32_t total);
    void *user;
    struct ds4j_engine *e;
    int failed;
    char msg[384];
} ds4j_dist_progress;
int32_t ds4j_dist_progress_cb(void *ctx, int32_t done, int32_t total);

/* Follower halves of session operations (session.c). */
struct ds4j_session *ds4j_session_new_follower(struct ds4j_engine *e, int32_t sid, int32_t n_ctx);
int32_t ds4j_session_sync_follower(struct ds4j_session *s, const int32_t *tokens, int32_t n, int has_progress,
                                   ds4j_dist_progress *p);

#endif
