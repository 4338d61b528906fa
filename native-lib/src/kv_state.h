/*
 * kv_state.h — the per-sequence decoder state of DeepSeek V4 (spec section
 * 8): per layer a ring of W raw kv rows, the compressor's pending window,
 * the CSA overlap slice, the compressed entries and the indexer keys.
 *
 * Everything whose size does not depend on the context length lives in one
 * contiguous "fixed" block so a checkpoint is a single memcpy; compressed
 * entries are append-only, so restoring a checkpoint taken at position c
 * only needs the entry counters reset to floor(c / ratio).
 */
#ifndef DS4J_KV_STATE_H
#define DS4J_KV_STATE_H

#include <stdint.h>

struct dsv4_model;

typedef struct kv_comp {
    int64_t r;        /* window length (compress ratio) */
    int64_t cw;       /* projection width: dout (HCA) or 2*dout (CSA) */
    int64_t dout;     /* entry width: D (main) or DI (indexer) */
    int overlap;      /* CSA-style two-series pooling */
    float *pend_kv;   /* [r][cw] projections of the current window */
    float *pend_g;    /* [r][cw] gate logits + ape */
    float *prev_kv;   /* [r][dout] Ca half of the previous window (overlap) */
    float *prev_g;    /* [r][dout] */
    float *entries;   /* [cap][dout] post-norm, post-RoPE */
    int64_t cap;
    int64_t n;        /* entries emitted */
} kv_comp;

typedef struct kv_layer {
    float *win;       /* [W][D], row of position p at p % W */
    kv_comp comp;     /* CSA/HCA */
    kv_comp idx;      /* CSA indexer */
} kv_layer;

typedef struct kv_state {
    int64_t n_layer, n_ctx, pos, W, D;
    kv_layer *layers;
    float *fixed;         /* contiguous fixed-size part */
    int64_t fixed_floats;
    float *ent;           /* all entry arrays */
    int64_t ent_floats;
    int kv_fp8;           /* round-trip kv rows / entries through FP8 (ds4 numerics) */
} kv_state;

/* Bytes kv_state_new(m, n_ctx) allocates; *fixed_bytes gets the size of
 * one checkpoint. -1 on overflow. */
int64_t kv_state_bytes(const struct dsv4_model *m, int64_t n_ctx, int64_t *fixed_bytes);
kv_state *kv_state_new(const struct dsv4_model *m, int64_t n_ctx);
void kv_state_free(kv_state *st);
void kv_state_reset(kv_state *st);
/* Copy the fixed part into dst (fixed_floats floats). */
void kv_state_save_fixed(const kv_state *st, float *dst);
/* Restore a fixed part saved at position pos. */
void kv_state_restore_fixed(kv_state *st, const float *src, int64_t pos);

#endif
