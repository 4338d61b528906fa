/*
 * kv_state.h — the per-sequence decoder state of DeepSeek V4 (spec section
 * 8): per layer a ring of W raw kv rows, the compressor's pending window,
 * the CSA overlap slice, the compressed entries and the indexer keys.
 *
 * Everything whose size does not depend on the context length lives in one
 * contiguous "fixed" block so a checkpoint is a single memcpy; compressed
 * entries are append-only, so restoring a checkpoint taken at position c
 * only needs the entry counters reset to floor(c / ratio).
 *
 * With kv_fp8 the window rows and the compressed entries are stored in the
 * compact formats of kv_quant.h (FP8 + f16 RoPE tail, FP4 indexer keys)
 * instead of f32; the compressor's pending windows stay f32 (as in ds4).
 */
#ifndef DS4J_KV_STATE_H
#define DS4J_KV_STATE_H

#include <stddef.h>
#include <stdint.h>

struct dsv4_model;

/* Where a state's buffers live: host memory (NULL ops) or a GPU backend's
 * device memory (cuda/). Only allocation, zeroing and copies of whole
 * buffers go through these; the forward pass that reads the buffers is
 * the one of the same backend. alloc returns zeroed memory or NULL. */
typedef struct kv_mem_ops {
    void *(*alloc)(void *user, size_t bytes);
    void (*free)(void *user, void *p);
    void (*copy)(void *user, void *dst, const void *src, size_t bytes);
    void (*zero)(void *user, void *p, size_t bytes);
    /* between a buffer of this kind and host memory (state files) */
    void (*to_host)(void *user, void *host_dst, const void *src, size_t bytes);
    void (*from_host)(void *user, void *dst, const void *host_src, size_t bytes);
    void *user;
} kv_mem_ops;

typedef struct kv_comp {
    int64_t r;        /* window length (compress ratio) */
    int64_t cw;       /* projection width: dout (HCA) or 2*dout (CSA) */
    int64_t dout;     /* entry width: D (main) or DI (indexer) */
    int overlap;      /* CSA-style two-series pooling */
    float *pend_kv;   /* [r][cw] projections of the current window */
    float *pend_g;    /* [r][cw] gate logits + ape */
    float *prev_kv;   /* [r][dout] Ca half of the previous window (overlap) */
    float *prev_g;    /* [r][dout] */
    float *entries;   /* [cap][dout] post-norm, post-RoPE (f32 mode) */
    uint8_t *ent8;    /* [cap][row_bytes] compact entries (fp8 mode) */
    int64_t row_bytes;
    int fmt;          /* KV_FMT_* of the entries */
    int64_t cap;
    int64_t n;        /* entries emitted */
} kv_comp;

enum { KV_FMT_F32 = 0, KV_FMT_FP8 = 1, KV_FMT_FP4_IDX = 2 };

typedef struct kv_layer {
    float *win;       /* [W][D], row of position p at p % W (f32 mode) */
    uint8_t *win8;    /* [W][win_row_bytes] compact rows (fp8 mode) */
    int64_t win_row_bytes;
    kv_comp comp;     /* CSA/HCA */
    kv_comp idx;      /* CSA indexer */
} kv_layer;

typedef struct kv_state {
    int64_t n_layer, n_ctx, pos, W, D;
    kv_layer *layers;
    int64_t n_rot;        /* dr: RoPE tail kept in f16 by the compact rows */
    uint8_t *fixed;       /* contiguous fixed-size part */
    int64_t fixed_bytes;
    uint8_t *ent;         /* all entry arrays */
    int64_t ent_bytes;
    int kv_fp8;           /* compact FP8/FP4 storage, ds4 numerics (kv_precision=fp8) */
    const kv_mem_ops *mem; /* NULL: host memory */
    uint64_t step_mark;   /* dsv4_forward_batch: the last step whose check named this state */
} kv_state;

/* Bytes kv_state_new(m, n_ctx, kv_fp8) allocates; *fixed_bytes gets the
 * size of one checkpoint. -1 on overflow. */
int64_t kv_state_bytes(const struct dsv4_model *m, int64_t n_ctx, int kv_fp8, int64_t *fixed_bytes);
kv_state *kv_state_new(const struct dsv4_model *m, int64_t n_ctx, int kv_fp8);
/* The same with buffers from mem (NULL = host). */
kv_state *kv_state_new_mem(const struct dsv4_model *m, int64_t n_ctx, int kv_fp8, const kv_mem_ops *mem);
/* Memory of the state's kind (for checkpoints of its fixed part). */
void *kv_state_mem_alloc(const kv_state *st, size_t bytes);
void kv_state_mem_free(const kv_state *st, void *p);
void kv_state_free(kv_state *st);
void kv_state_reset(kv_state *st);
/* Copy the fixed part into dst (fixed_bytes bytes of kv_state_mem_alloc memory). */
void kv_state_save_fixed(const kv_state *st, void *dst);
/* Restore a fixed part saved at position pos. */
void kv_state_restore_fixed(kv_state *st, const void *src, int64_t pos);
/* Set the position and entry counters after the buffers were filled at pos
 * by other means (a state file). */
void kv_state_set_pos(kv_state *st, int64_t pos);
/* dst takes src's state at pos (ds4j_session_copy): the fixed part from
 * `fixed` (src's current fixed part or a checkpoint of it taken at pos, in
 * src's memory kind) and the first floor(pos / ratio) entries of every
 * compressor, which is the complete state at pos because entries are
 * append-only. Both states belong to one model, precision and memory kind
 * (one engine); dst->n_ctx >= pos (its entry arrays may be longer or
 * shorter than src's: each compressor is copied on its own). */
void kv_state_copy_at(kv_state *dst, const kv_state *src, const void *fixed, int64_t pos);

#endif
