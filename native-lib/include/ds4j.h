/*
 * ds4j.h — the public C API of the ds4j engine, and the only header Java binds
 * (through java.lang.foreign; see io.ds4j.engine). Keep it small and plain:
 * scalars, pointers, opaque handles and NUL-terminated UTF-8 strings; no
 * structs passed by value, no varargs, no callbacks that may longjmp.
 *
 * Error convention: functions returning a pointer return NULL on failure,
 * functions returning int return a negative DS4J_ERR_* code on failure.
 * In both cases ds4j_last_error() returns a human-readable message for the
 * calling thread (valid until the next ds4j call on that thread).
 *
 * Threading: an engine and its sessions must be used from one thread at a
 * time (Java uses one owner thread). The engine runs its own worker pool.
 */
#ifndef DS4J_H
#define DS4J_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DS4J_BUILDING_LIBRARY)
#define DS4J_API __attribute__((visibility("default")))
#else
#define DS4J_API
#endif

#define DS4J_API_VERSION 1

/* Error codes (negative return values). */
#define DS4J_OK 0
#define DS4J_ERR_INVALID_ARGUMENT (-1) /* bad argument from the caller */
#define DS4J_ERR_IO (-2)               /* file missing, unreadable, mmap failed */
#define DS4J_ERR_FORMAT (-3)           /* malformed or unsupported GGUF */
#define DS4J_ERR_NO_MEMORY (-4)
#define DS4J_ERR_CONTEXT_FULL (-5)     /* request would exceed the session's context */
#define DS4J_ERR_CANCELLED (-6)        /* progress callback asked to stop */
#define DS4J_ERR_COMM (-7)             /* collective failed (peer died, timeout) */
#define DS4J_ERR_STATE (-8)            /* call not valid in the current state */

/* Library identity: "ds4j <semver> (<kernels>; <backends>)". */
DS4J_API const char *ds4j_version(void);
DS4J_API int32_t ds4j_api_version(void);
/* Message for the last failure on this thread ("" if none). */
DS4J_API const char *ds4j_last_error(void);
/* The DS4J_ERR_* code of that failure (0 if none): tells why a function that
 * returns a pointer (e.g. ds4j_engine_open) returned NULL. */
DS4J_API int32_t ds4j_last_error_code(void);

/* ---------------------------------------------------------------- engine */

typedef struct ds4j_engine ds4j_engine;

/* KV precision modes (see docs/architecture.md: numerics). */
#define DS4J_KV_F32 0 /* float32 everywhere: reproduces transformers */
#define DS4J_KV_FP8 1 /* ds4/official-style FP8 KV rows, Hadamard+FP4 indexer */

/*
 * Options for ds4j_engine_open, as "key=value" pairs separated by ';' or
 * newlines (unknown keys are an error). A string keeps the ABI stable while
 * options grow. Keys:
 *   threads=N          worker threads (0 = number of online CPUs)
 *   vocab_only=0|1     parse metadata only (tokenizer tools); no weights bound
 *   expert_range=A:B   routed experts owned by this process, [A, B); default all
 *                      (a sliced file: its slice, which any range must equal)
 *   kv_precision=f32|fp8
 *   prefill_chunk=N    tokens per batched prefill step (default 64)
 *   comm=NAME          expert parallelism across processes (docs/distributed.md):
 *                      none (default), local (one rank, built in), mpi (plugin
 *                      libds4j_comm_mpi.so next to libds4j; run under mpirun),
 *                      nccl (plugin libds4j_comm_nccl.so, built when CUDA,
 *                      NCCL and MPI are found; one GPU per rank, run under
 *                      mpirun), jaccl (recognised; not built yet). Opening is
 *                      collective: every rank opens the same model together.
 *                      Without expert_range each rank owns an even split of the
 *                      routed experts; ranges must partition [0, E).
 *   comm_plugin=PATH   load the backend plugin from PATH instead
 *   comm_options=K=V,K=V  backend options handed to the plugin (comm=nccl:
 *                      device=N CUDA device, timeout_ms=N bound on a
 *                      collective; comm=mpi takes none)
 *   backend=cpu|cuda   where the forward pass runs (default cpu). cuda: an NVIDIA
 *                      GPU (libds4j built where CMake found nvcc); weights of
 *                      the owned experts and the sessions' decoder state live in
 *                      device memory, after a memory plan that refuses a model
 *                      that does not fit (naming the sizes). F32, F16, BF16,
 *                      Q8_0, Q2_K, Q4_K and IQ2_XXS weights; not with
 *                      kv_precision=fp8. The describe JSON's "device" object
 *                      names the GPU, its memory and the plan.
 *   device=N           backend=cuda: the CUDA device index (default 0)
 *   all_sum_dtype=f32|f16|bf16  payload of the routed all_sum under comm=
 *                      (default f32): 16-bit halves the bytes; every rank
 *                      adopts the leader's value at open
 *   allsum_overlap=0|1 1 (default): the CPU forward starts the routed
 *                      all_sum, computes the shared expert while it travels
 *                      and waits for it only then (same bits as 0); in
 *                      effect only where the comm backend has a split
 *                      all_sum (local, mpi; not nccl) and with backend=cpu;
 *                      every rank adopts the leader's value at open; the
 *                      describe JSON's "allsum_overlap" says whether it is
 *                      in effect
 *   expert_compact=0|1 1 = this rank's file holds only its own routed experts
 *                      (made by `ds4j-tool slice`); a file holding others is
 *                      refused. A sliced file (ds4j.expert_slice.start/end
 *                      metadata) is self-describing with or without it: its
 *                      range is the rank's default expert_range, any other
 *                      range is refused, and it needs comm= unless it holds
 *                      every expert.
 */
DS4J_API ds4j_engine *ds4j_engine_open(const char *gguf_path, const char *options);
DS4J_API void ds4j_engine_close(ds4j_engine *engine);

/* ------------------------------------------------- expert parallelism
 * With comm=..., N processes (ranks) each own a slice of the routed experts
 * and run every layer in lockstep; after each MoE layer the partial routed
 * outputs are summed across ranks (all_sum) before the replicated shared
 * expert is added. Leader and followers: only rank 0 (the leader) calls the
 * session API; with world size > 1 it announces every state-changing call
 * (session new/free, sync, eval, eval_batch, rewind, copy, batch_eval, and the
 * collectives below) to the other ranks, which run ds4j_engine_follow and replay them
 * on their own copies of the sessions. On ranks > 0, session_new,
 * broadcast_tokens and barrier outside ds4j_engine_follow fail with
 * DS4J_ERR_STATE. Without comm=, rank is 0, world size 1 and the
 * collectives below are no-ops. */
DS4J_API int32_t ds4j_engine_rank(const ds4j_engine *engine);
DS4J_API int32_t ds4j_engine_world_size(const ds4j_engine *engine);
/* Collective: root's tokens[0..n) replace every other rank's. Called by the
 * leader only (root 0); the followers receive it inside ds4j_engine_follow.
 * Returns n or a negative error (DS4J_ERR_COMM: a peer failed; the engine's
 * communicator is unusable afterwards). */
DS4J_API int32_t ds4j_engine_broadcast_tokens(ds4j_engine *engine, int32_t *tokens, int32_t n, int32_t root);
/* Collective: returns when every rank has called it. */
DS4J_API int32_t ds4j_engine_barrier(ds4j_engine *engine);
/*
 * Follower loop for ranks > 0 of a comm= engine: mirrors the session
 * operations the leader (rank 0) makes on the same engine (session new/free,
 * sync, eval, eval_batch, rewind, copy, batch_eval), which the leader broadcasts automatically
 * when world size > 1, and returns 0 when the leader closes its engine (or a
 * negative error, e.g. DS4J_ERR_COMM when a peer dies). Rank 0 gets
 * DS4J_ERR_STATE. Sessions are matched by creation order; the followers'
 * copies skip the LM head (nobody reads their logits) and are freed when the
 * loop returns. The followers adopt the leader's prefill_chunk at open.
 */
DS4J_API int32_t ds4j_engine_follow(ds4j_engine *engine);
/*
 * Recovery, leader (rank 0) only, after a call failed with DS4J_ERR_COMM
 * (a follower died, stalled or diverged; a healthy group is not replaced:
 * DS4J_ERR_STATE): replaces the whole follower group
 * with world size - 1 new processes and makes the engine usable again.
 * comm=mpi only (DS4J_ERR_STATE for other backends), and the leader's
 * process must have survived the death (mpirun --enable-recovery) and
 * mpirun must have a free slot for each new process (the dead ranks' slots
 * count; a hostfile or --oversubscribe). The new followers run
 *     <respawn_tool> follow --model <the leader's path>
 *         --options '<the leader's options>;expert_range=<lost rank's A:B>'
 * where respawn_tool is the engine option, else the environment variable
 * DS4J_RESPAWN_TOOL, else ds4j-tool beside libds4j; each new rank r owns
 * exactly the experts the lost rank r owned (the leader recorded them at
 * open). Surviving old followers on the leader's host are killed (they
 * belonged to the abandoned group, and a stopped one would never leave);
 * those on other hosts leave when their own wait on the old group fails.
 * Then the open-time handshake runs again (same model, the ranges partition
 * the experts, the leader's chunking and all_sum payload; the new
 * followers may take up to comm_options spawn_timeout_ms, default 10 min,
 * to load the model) and the divergence guard's hash starts afresh.
 * Every session created before the call is invalidated: its copies on the
 * followers are gone, so every state-changing call on it fails with
 * DS4J_ERR_STATE ("created before the cluster was recovered"); free it
 * (no announcement is sent) and create new ones. Reads (logits, tokens)
 * still work. Returns DS4J_OK, or a negative error with the reason
 * (DS4J_ERR_COMM: spawning or the handshake failed; the engine stays
 * broken and the call may be repeated). Not with expert_compact=1 (every
 * rank serves its own slice file).
 */
DS4J_API int32_t ds4j_engine_recover(ds4j_engine *engine);
/*
 * all_sum latency of the routed-expert reduction, measured on this rank
 * (includes waiting for slower peers; with allsum_overlap in effect, the time
 * the forward spent in the all_sum calls: starting it, the polls between the
 * shared expert's row blocks, and the wait that remains after it). Cumulative since open for one layer,
 * or summed over layers (max over layers) with layer = -1; zeros without
 * comm=. May be called from any thread, also while the owner thread evaluates.
 */
DS4J_API int32_t ds4j_engine_allsum_stats(const ds4j_engine *engine, int32_t layer, int64_t *count,
                                          int64_t *total_ns, int64_t *max_ns);
/*
 * Samples since the last drain, oldest first, for latency histograms: up to
 * cap (layer, nanoseconds) pairs; returns the number written (samples left
 * over stay for the next call). The engine keeps at most 16384 undrained
 * samples; *dropped (may be NULL) receives how many older ones were
 * overwritten since the previous drain. Any thread, like allsum_stats.
 */
DS4J_API int32_t ds4j_engine_allsum_drain(ds4j_engine *engine, int32_t *layers, int64_t *ns, int32_t cap,
                                          int64_t *dropped);

/* JSON object describing the model (hyper-parameters, tensor types, sizes,
 * parameter counts). Owned by the engine. */
DS4J_API const char *ds4j_engine_describe(const ds4j_engine *engine);

/* ------------------------------------------------------ GGUF metadata view
 * Read-only access to the model file's metadata, so that Java never parses
 * GGUF itself (e.g. the tokenizer is built from tokenizer.ggml.*). Values
 * are indexed 0..ds4j_meta_count-1. Types use the GGUF numbering:
 * 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string,
 * 9 array, 10 u64, 11 i64, 12 f64. */
DS4J_API int32_t ds4j_meta_count(const ds4j_engine *engine);
DS4J_API int32_t ds4j_meta_find(const ds4j_engine *engine, const char *key); /* -1 if absent */
DS4J_API const char *ds4j_meta_key(const ds4j_engine *engine, int32_t index);
DS4J_API int32_t ds4j_meta_type(const ds4j_engine *engine, int32_t index);
/* Scalars: integer types and bool as int64, float types as double, strings as
 * pointer + byte length (not NUL-terminated in general). */
DS4J_API int64_t ds4j_meta_int(const ds4j_engine *engine, int32_t index);
DS4J_API double ds4j_meta_float(const ds4j_engine *engine, int32_t index);
DS4J_API const char *ds4j_meta_str(const ds4j_engine *engine, int32_t index, int64_t *len);
/* Arrays: element type, length, element access (same conversions). */
DS4J_API int32_t ds4j_meta_arr_type(const ds4j_engine *engine, int32_t index);
DS4J_API int64_t ds4j_meta_arr_len(const ds4j_engine *engine, int32_t index);
DS4J_API int64_t ds4j_meta_arr_int(const ds4j_engine *engine, int32_t index, int64_t i);
DS4J_API double ds4j_meta_arr_float(const ds4j_engine *engine, int32_t index, int64_t i);
DS4J_API const char *ds4j_meta_arr_str(const ds4j_engine *engine, int32_t index, int64_t i, int64_t *len);

/* --------------------------------------------------------------- session
 * One mutable timeline: the tokens evaluated so far and the decoder state
 * (sliding windows, compressor buffers, compressed KV, indexer keys). */

typedef struct ds4j_session ds4j_session;

/* Bytes a session of n_ctx tokens will allocate, before creating it, plus
 * (CPU backend) its row of the engine's logits buffer for batched steps
 * (ds4j_batch_eval), so that n sessions need n times this figure. */
DS4J_API int64_t ds4j_context_memory(const ds4j_engine *engine, int32_t n_ctx);
DS4J_API ds4j_session *ds4j_session_new(ds4j_engine *engine, int32_t n_ctx);
DS4J_API void ds4j_session_free(ds4j_session *session);
DS4J_API int32_t ds4j_session_n_ctx(const ds4j_session *session);
/* Number of tokens evaluated (= position of the next token). */
DS4J_API int32_t ds4j_session_pos(const ds4j_session *session);
/* Copies up to cap evaluated token ids into out; returns the count copied. */
DS4J_API int32_t ds4j_session_tokens(const ds4j_session *session, int32_t *out, int32_t cap);

/* Progress callback for long evaluations: called between prefill chunks
 * with (done, total) tokens; returning non-zero cancels (DS4J_ERR_CANCELLED,
 * the session then holds the tokens evaluated so far). May be NULL. */
typedef int32_t (*ds4j_progress_fn)(void *user, int32_t done, int32_t total);

/*
 * Make the session's timeline equal to tokens[0..n): reuses the longest
 * common prefix with what is already evaluated, rewinds the rest and
 * evaluates only the new suffix (batched, chunked). Afterwards the logits
 * are those after tokens[n-1]. Returns the number of reused tokens (>= 0).
 */
DS4J_API int32_t ds4j_session_sync(ds4j_session *session, const int32_t *tokens, int32_t n,
                                   ds4j_progress_fn progress, void *user);
/* Evaluate one more token (decode step). */
DS4J_API int32_t ds4j_session_eval(ds4j_session *session, int32_t token);
/*
 * Evaluate n tokens after the current position in chunks of `chunk` tokens
 * (0 = engine default, 1 = token by token). If logits_out is not NULL it
 * receives n rows of n_vocab floats: row t = next-token logits after token t.
 */
DS4J_API int32_t ds4j_session_eval_batch(ds4j_session *session, const int32_t *tokens, int32_t n,
                                         int32_t chunk, float *logits_out);
/* Drop everything after position pos (0 <= pos <= current position). */
DS4J_API int32_t ds4j_session_rewind(ds4j_session *session, int32_t pos);
/*
 * Position of the newest state the session holds at or before max_pos: its
 * current position when that is <= max_pos, else its newest checkpoint
 * there (one every 64 positions over the last 8 x 64, plus the position
 * before the last token of its latest sync); 0 if none. What
 * ds4j_session_copy (and ds4j_session_save) would take; changes nothing.
 * Negative: DS4J_ERR_INVALID_ARGUMENT (NULL, max_pos < 0).
 */
DS4J_API int32_t ds4j_session_state_at(const ds4j_session *session, int32_t max_pos);
/*
 * Replace dst's content with src's newest state at a position <= max_pos
 * (the one ds4j_session_state_at(src, max_pos) names) and the tokens before
 * it, without evaluating anything: afterwards dst continues bit for bit as
 * src would from there (and as a session that evaluated those tokens
 * itself). dst keeps a checkpoint at that position and no other; it has
 * logits only when the copy is src's current state and src has them (then
 * they are copied too). src is not changed, and the two sessions are
 * independent afterwards. Works with either state precision and on the GPU
 * (a device-to-device copy); the sessions' n_ctx may differ. Returns the
 * position copied (0: src holds no state in (0, max_pos], dst is left
 * empty), or a negative error, with dst unchanged: DS4J_ERR_INVALID_ARGUMENT
 * (NULL, dst == src, sessions of different engines, max_pos < 0),
 * DS4J_ERR_CONTEXT_FULL (the position exceeds dst's n_ctx), DS4J_ERR_STATE
 * (a session from before ds4j_engine_recover). Under comm= it is announced
 * like the other session operations and replayed by the followers.
 */
DS4J_API int32_t ds4j_session_copy(ds4j_session *dst, const ds4j_session *src, int32_t max_pos);
/* Next-token logits after the last evaluated token (n_vocab floats, owned
 * by the session, valid until the next evaluation); NULL before any token. */
DS4J_API const float *ds4j_session_logits(const ds4j_session *session);
DS4J_API int32_t ds4j_n_vocab(const ds4j_engine *engine);

/* ------------------------------------------------- session state on disk
 * A session's state at one position written to a file and read back into a
 * session of any n_ctx that holds it (a prefix cache that survives restarts
 * and eviction from memory). The file holds the tokens, the fixed-size state
 * and the compressed entries up to that position, the engine fingerprint and
 * a checksum over all of it; it holds no logits (evaluate at least one more
 * token after loading). Not available under comm= (DS4J_ERR_STATE). */

/* 32 hex digits naming what a state file depends on: the model file's
 * content (gguf header, size and samples of the data), the backend and the
 * decoder state precision. NULL without weights (vocab_only). */
DS4J_API const char *ds4j_engine_fingerprint(const ds4j_engine *engine);
/*
 * Write the session's newest state at a position <= max_pos to path: the
 * current state if its position is <= max_pos, else the newest checkpoint
 * at or before max_pos (the one before the last token of the latest sync is
 * always kept). The session is unchanged. Returns the position written (> 0)
 * or a negative error: DS4J_ERR_STATE when it holds no state in (0, max_pos],
 * DS4J_ERR_IO when the file cannot be written (a partial file is removed).
 * The caller makes it visible atomically (write to a temporary name in the
 * same directory, then rename).
 */
DS4J_API int32_t ds4j_session_save(ds4j_session *session, const char *path, int32_t max_pos);
/*
 * Token ids of a state file (its header only; the checksum is verified by
 * ds4j_session_load): copies up to cap of them into out and returns their
 * total number, or a negative error: DS4J_ERR_IO (unreadable),
 * DS4J_ERR_FORMAT (not a state file, or a truncated or inconsistent one),
 * DS4J_ERR_STATE (a state file of another model, backend or precision:
 * a different ds4j_engine_fingerprint).
 */
DS4J_API int32_t ds4j_state_file_tokens(const ds4j_engine *engine, const char *path, int32_t *out, int32_t cap);
/*
 * Replace the session's content with a state file: afterwards it holds the
 * file's tokens and state (no logits) and a checkpoint there. The whole
 * file is verified (header, sizes, fingerprint, token ids, checksum); on
 * any error the session is left empty (position 0) and the error says why
 * (as ds4j_state_file_tokens, DS4J_ERR_CONTEXT_FULL when the file holds
 * more tokens than the session's n_ctx). Returns the position loaded.
 */
DS4J_API int32_t ds4j_session_load(ds4j_session *session, const char *path);

/* ------------------------------------------------------------ batch steps */

/* One sequence's share of a batched step: evaluate tokens[0..n_tokens)
 * after the session's current position (1 token = a decode step, more = a
 * prefill chunk). 24 bytes: pointer, pointer, int32, int32. */
typedef struct ds4j_batch_entry {
    ds4j_session *session;
    const int32_t *tokens;
    int32_t n_tokens;
    int32_t flags;          /* reserved, must be 0 */
} ds4j_batch_entry;
/*
 * Evaluate several sessions (distinct, all of this engine) together. Each
 * entry's tokens are cut into pieces of at most prefill_chunk tokens (and at
 * the session's checkpoint boundaries, as ds4j_session_eval_batch does); one
 * forward pass takes a piece of every entry that still has tokens, in entry
 * order, up to prefill_chunk rows in all, and the call runs forwards until
 * every entry is done (decode rows and short chunks: one forward). In a
 * forward the dense weights are read once for all rows, routed experts
 * gather the rows of every sequence that chose them, and attention runs per
 * sequence on its own state at its own positions. Afterwards
 * ds4j_session_logits(entry.session) holds each entry's next-token logits
 * after its last token. On the CPU backend every row is computed exactly as
 * it would be alone: a session's logits and state are bit-for-bit those of
 * evaluating its tokens alone (ds4j_session_eval_batch, any chunking).
 * backend=cuda: accepted, but the entries run one after another through the
 * single-sequence path (not yet batched on the GPU). Under comm= the leader
 * announces the step and the followers replay it in lockstep; the routed
 * outputs are summed across ranks by the backend, whose order of addition
 * may depend on the message size (the rows of a forward) beyond 2 ranks, so
 * there a batch is within rounding of the alone run rather than bit-exact.
 * Validation (NULL or foreign session, a session named twice, flags != 0,
 * n_tokens <= 0, token ids out of range, context overflow) happens before
 * anything is evaluated: on such an error no session changed. n_entries = 0
 * does nothing. A failure inside a forward (DS4J_ERR_COMM) returns sessions
 * of that forward to their last checkpoint (see ds4j_session_pos); entries
 * finished by earlier forwards of the call keep their result. Returns 0 or a
 * negative DS4J_ERR_*.
 */
DS4J_API int32_t ds4j_batch_eval(ds4j_engine *engine, const ds4j_batch_entry *entries, int32_t n_entries);

/* -------------------------------------------------------------- sampling */

typedef struct ds4j_sampler ds4j_sampler;

/*
 * Sampling options, "key=value" pairs as for the engine: temperature (0 =
 * greedy), top_k (0 = off), top_p (1 = off), min_p (0 = off),
 * repeat_penalty (1 = off), presence_penalty, frequency_penalty,
 * penalty_last_n (tokens of history considered, default 64), seed (u64).
 */
DS4J_API ds4j_sampler *ds4j_sampler_new(const char *options);
DS4J_API void ds4j_sampler_free(ds4j_sampler *sampler);
/* Feed a token into the penalty history (prompt tokens and sampled ones). */
DS4J_API void ds4j_sampler_accept(ds4j_sampler *sampler, int32_t token);
DS4J_API void ds4j_sampler_reset(ds4j_sampler *sampler);
/*
 * Per-token logit bias (OpenAI's logit_bias), replacing any earlier set:
 * bias[i] is added to token ids[i]'s logit before penalties and sampling
 * (greedy too); a bias <= -100 bans the token outright. n = 0 clears it; a
 * repeated id keeps its last bias. Ids must be >= 0 (ids beyond the
 * vocabulary are refused when sampling) and biases finite. At most 65536
 * entries. Returns 0 or a negative error. Log-probabilities stay those of
 * the model's own distribution.
 */
DS4J_API int32_t ds4j_sampler_set_logit_bias(ds4j_sampler *sampler, const int32_t *ids, const float *bias,
                                             int32_t n);
/*
 * Restrict the next samples to a set of tokens (constrained decoding, e.g.
 * JSON mode): bit (id & 7) of bits[id >> 3] set = token id allowed; ids at or
 * beyond n_tokens are not allowed. The set is copied and stays until changed;
 * bits = NULL (or n_tokens = 0) lifts the restriction. Applied with the logit
 * bias, before penalties and sampling; when the set and the bias leave no
 * token, sampling fails with DS4J_ERR_INVALID_ARGUMENT (the caller's settings
 * are at fault, not the engine). Returns 0 or a negative error.
 */
DS4J_API int32_t ds4j_sampler_set_allowed(ds4j_sampler *sampler, const uint8_t *bits, int32_t n_tokens);
/*
 * Sample the next token from the session's current logits. If n_top > 0,
 * top_ids/top_logprobs receive the n_top most likely tokens of the
 * (temperature-1, unpenalised) distribution and *logprob the sampled
 * token's log-probability under it (any pointer may be NULL).
 * Returns the token id, or a negative error.
 */
DS4J_API int32_t ds4j_sampler_sample(ds4j_sampler *sampler, const ds4j_session *session,
                                     int32_t n_top, int32_t *top_ids, float *top_logprobs,
                                     float *logprob);

#ifdef __cplusplus
}
#endif
#endif /* DS4J_H */
