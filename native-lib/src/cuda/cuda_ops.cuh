/*
 * cuda_ops.cuh — the non-matmul kernels of the GPU forward pass, one per
 * step of model/forward_dsv4.c (RMSNorm, hyper-connection split and merge,
 * RoPE, compressors, indexer scores and top-k, attention with sinks,
 * router, expert grouping, SwiGLU, head mixing). Positions are read from
 * device memory (seg_tab) so that a captured decode graph replays at any
 * position; `S` (rows of the step) is a launch constant.
 */
#ifndef DS4J_CUDA_OPS_CUH
#define DS4J_CUDA_OPS_CUH

#include <cuda_runtime.h>
#include <stdint.h>

struct rope_tab {
    const float *inv_freq; /* [dr/2] */
    int dr;
};

/*
 * The sequences of a step, in device memory: sequence k owns the chunk's
 * rows [r0[k], r0[k] + n[k]) and starts at position pos0[k]; row_seg[s] is
 * the sequence of row s. One sequence (a prefill chunk or a decode row) is
 * nseg = 1. The stateful kernels below take every sequence's state through
 * per-sequence pointer arrays (device arrays of nseg pointers), so one
 * launch serves the whole batch and each row sees exactly its own state.
 */
struct seg_tab {
    const int64_t *pos0;
    const int32_t *r0, *n, *row_seg;
    int nseg;
    int max_n; /* the largest n[k] (launch bounds) */
};

/* One compressor (main or indexer) of one layer for one step. */
struct comp_args {
    const float *ckv, *cg;   /* the step's projections [S][cw] */
    const float *ape, *norm; /* [r][cw], [dout] */
    float *const *pend_kv, *const *pend_g; /* per sequence: state [r][cw] */
    float *const *prev_kv, *const *prev_g; /* per sequence: state [r][dout] (overlap) */
    float *const *entries;                 /* per sequence: state [cap][dout] */
    int64_t r, cw, dout;
    int overlap;
    rope_tab rope;
    float eps;
};

void op_embed(const int32_t *tok, int64_t S, int type, const uint8_t *w, int64_t n_vocab, int64_t H, int hc, float *X,
              cudaStream_t st);
void op_rmsnorm(const float *x, int64_t x_stride, float *y, int64_t y_stride, const float *w, int64_t n, int64_t rows,
                float eps, cudaStream_t st);
void op_hc_split(const float *mix, const float *scale, const float *base, int hc, int iters, float hc_eps,
                 float *pre, float *post, float *comb, const float *X, float *x, int64_t H, int64_t S,
                 cudaStream_t st);
void op_hc_post(float *X, const float *post, const float *comb, const float *a, const float *b, int hc, int64_t H,
                int64_t S, cudaStream_t st);
void op_out_hc(const float *mix, const float *scale, const float *base, int hc, float hc_eps, const float *X,
               float *x, int64_t H, int64_t S, cudaStream_t st);
/* RoPE of q (nh heads of D), kv (D) and, when qI != NULL, the indexer
 * queries (nI heads of DI) with wI *= 1/sqrt(nI). */
void op_rope_qkv(const seg_tab &sg, int64_t S, float *q, int64_t nh, int64_t D, float *kv, float *qI, float *wI,
                 int64_t nI, int64_t DI, rope_tab rope, cudaStream_t st);
void op_comp(const seg_tab &sg, int64_t S, const comp_args &c, cudaStream_t st);
/* Indexer: scores of every visible entry for each token whose visible
 * count exceeds topk, then the topk (ties to the lower index), ascending;
 * tokens with fewer entries select all of them. */
void op_indexer(const seg_tab &sg, int64_t S, const float *qI, const float *wI, const float *const *keys, int64_t nI,
                int64_t DI, int64_t r, int64_t topk, float *score, int64_t score_stride, int32_t *sel, int32_t *nsel,
                cudaStream_t st);
struct attn_args {
    const float *q;      /* [S][nh][D] */
    const float *kv;     /* [S][D] this step's rows (post-RoPE) */
    const float *const *win; /* per sequence: state ring [W][D] (rows before the step) */
    const float *const *ent; /* per sequence: compressed entries [cap][D], or NULL */
    const int32_t *sel;  /* CSA: [S][sel_stride] selected entries, nsel[S] */
    const int32_t *nsel;
    int64_t sel_stride;
    int64_t ratio;       /* HCA: every entry < (p + 1) / ratio; 0 = none */
    const float *sinks;
    float *o;            /* [S][nh][D] */
    int64_t nh, D, W;
    rope_tab rope;
};
void op_attention(const seg_tab &sg, int64_t S, const attn_args &a, cudaStream_t st);
void op_win_write(const seg_tab &sg, int64_t S, const float *kv, float *const *win, int64_t W, int64_t D, cudaStream_t st);
void op_router(const int32_t *tok, int64_t S, float *rl, const float *bias, const int32_t *tid2eid, int64_t E,
               int64_t k, float rsf, int32_t *sel, float *wt, cudaStream_t st);
/* Slots (token, expert) of the owned experts, expert-major then token,
 * grouped by expert for the grouped products. */
void op_moe_group(const int32_t *sel, const float *wt, int64_t S, int64_t k, int64_t lo, int64_t hi,
                  int32_t *n_groups, int32_t *g_expert, int32_t *g_first, int32_t *slot_tok, float *slot_wt,
                  int32_t *n_slots, cudaStream_t st);
void op_moe_combine(const float *dn, const int32_t *slot_tok, const float *slot_wt, const int32_t *n_slots,
                    float *routed, int64_t S, int64_t H, cudaStream_t st);
void op_swiglu(float *g, const float *u, int64_t n, float lim, cudaStream_t st);

#endif
