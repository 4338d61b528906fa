/*
 * cuda_backend.h — the GPU backend (backend=cuda) as the rest of the engine
 * sees it: open it over a loaded model (weights are copied once into device
 * memory after a memory plan), give sessions device memory for their
 * decoder state, and run the forward pass of model/forward_dsv4.c on the
 * GPU with the same order of operations. Built only when CMake finds the
 * CUDA toolkit (DS4J_HAVE_CUDA); otherwise every entry point fails with
 * "built without CUDA" and nothing here links CUDA.
 */
#ifndef DS4J_CUDA_BACKEND_H
#define DS4J_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "common.h"
#include "kv_state.h"
#include "model_dsv4.h"

typedef struct cuda_engine cuda_engine;

#if defined(DS4J_HAVE_CUDA)
/*
 * Open device `device` for model m: computes the memory plan (weights of
 * the owned routed experts, dense weights, scratch for chunks of up to
 * max_tokens tokens), refuses with DS4J_ERR_NO_MEMORY naming the sizes
 * when it does not fit the device's free memory, then uploads. m must
 * have its expert range set and outlive the engine. Returns 0 or a
 * negative DS4J_ERR_* with a ds4j_fail() message.
 */
int cuda_engine_open(cuda_engine **out, const dsv4_model *m, int device, int64_t max_tokens);
void cuda_engine_close(cuda_engine *g);
/* JSON object describing the device and the memory plan (owned by g). */
const char *cuda_engine_describe(const cuda_engine *g);
/* Device memory for kv_state_new_mem (decoder states and checkpoints). */
const kv_mem_ops *cuda_kv_mem(cuda_engine *g);
/* Grow the context-dependent scratch for sessions of n_ctx tokens and
 * check that a session's state and n_checkpoints copies of its fixed part
 * fit the free device memory. */
int cuda_reserve_session(cuda_engine *g, int64_t n_ctx, int n_checkpoints);
/* Drop anything cached for st (its decode graph) before st is freed. */
void cuda_forget_state(cuda_engine *g, const kv_state *st);
/* dsv4_forward_batch on the GPU (one sequence: dsv4_forward), the same
 * contract: one step over one or more sequences (distinct states, rows in
 * total <= max_tokens). Products, norms, router, experts and head run once
 * over all rows; the stateful steps (RoPE, compressors, indexer, attention,
 * window) take every sequence in one launch, each row its own state, so
 * every row's result is bit-identical to its sequence alone. A decode step
 * (one row each) is captured as a graph once the same sessions decode
 * twice in a row. */
int cuda_forward_batch(cuda_engine *g, const dsv4_seq *seqs, int64_t n_seqs);
/* A plain read-bandwidth measurement of the device (bytes/s, 0 on
 * failure): the roofline of ds4j-tool bench. */
double cuda_engine_read_bandwidth(cuda_engine *g, int64_t bytes, int reps);
/* Number of visible CUDA devices (0 when none or no driver). */
int cuda_device_count(void);
#else
static inline int cuda_engine_open(cuda_engine **out, const dsv4_model *m, int device, int64_t max_tokens) {
    (void)out; (void)m; (void)device; (void)max_tokens;
    return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "backend=cuda: this libds4j was built without CUDA (rebuild "
                     "native-lib where CMake finds the CUDA toolkit)");
}
static inline void cuda_engine_close(cuda_engine *g) { (void)g; }
static inline const char *cuda_engine_describe(const cuda_engine *g) { (void)g; return "null"; }
static inline const kv_mem_ops *cuda_kv_mem(cuda_engine *g) { (void)g; return NULL; }
static inline int cuda_reserve_session(cuda_engine *g, int64_t n_ctx, int n_checkpoints) {
    (void)g; (void)n_ctx; (void)n_checkpoints;
    return DS4J_ERR_STATE;
}
static inline void cuda_forget_state(cuda_engine *g, const kv_state *st) { (void)g; (void)st; }
static inline int cuda_forward_batch(cuda_engine *g, const dsv4_seq *seqs, int64_t n_seqs) {
    (void)g; (void)seqs; (void)n_seqs;
    return DS4J_ERR_STATE;
}
static inline double cuda_engine_read_bandwidth(cuda_engine *g, int64_t bytes, int reps) {
    (void)g; (void)bytes; (void)reps;
    return 0;
}
static inline int cuda_device_count(void) { return 0; }
#endif

#ifdef __cplusplus
}
#endif
#endif
