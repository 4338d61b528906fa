/*
 * model_dsv4.h — the DeepSeek V4 model: hyper-parameters read from GGUF
 * metadata (nothing Flash-specific is baked in), weights bound by GGUF name
 * with shape/type validation, and the forward pass over a chunk of tokens
 * (spec docs/deepseek-v4-model.md sections 2-8).
 */
#ifndef DS4J_MODEL_DSV4_H
#define DS4J_MODEL_DSV4_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "ops.h"
#include "threadpool.h"

struct kv_state;

enum { DSV4_SWA = 0, DSV4_CSA = 1, DSV4_HCA = 2 };

typedef struct dsv4_hparams {
    int64_t n_embd;        /* H */
    int64_t n_layer;       /* L */
    int64_t n_vocab;       /* V */
    int64_t n_head;        /* nh */
    int64_t n_head_kv;     /* 1 */
    int64_t head_dim;      /* D */
    int64_t n_rot;         /* dr */
    int64_t q_lora;        /* rq */
    int64_t o_groups;      /* G */
    int64_t o_lora;        /* ro */
    int64_t n_expert;      /* E */
    int64_t n_expert_used; /* k */
    int64_t n_ff_exp;      /* I */
    int64_t n_shared;      /* ns */
    int64_t n_hash;        /* leading hash-routed layers */
    int64_t window;        /* W */
    int64_t idx_heads;     /* nI */
    int64_t idx_dim;       /* DI */
    int64_t idx_topk;      /* kI */
    int64_t hc;            /* hyper-connection streams */
    int64_t sinkhorn_iters;
    int64_t ctx_train;     /* display only */
    int64_t csa_rate;      /* m (0 if no CSA layer) */
    float hc_eps, eps;
    double theta_main, theta_c, yarn_factor, yarn_orig, yarn_bf, yarn_bs;
    float rsf;             /* routed scaling factor */
    int32_t *ratio;        /* [L] compress ratio per layer */
    int32_t *kind;         /* [L] DSV4_SWA / CSA / HCA */
    float *swiglu_lim;     /* [L] */
} dsv4_hparams;

/* A weight matrix: n_out rows of n_in elements of `type` (GGUF ne0 = n_in). */
typedef struct dsv4_mat {
    const uint8_t *data;
    int32_t type;
    int64_t n_in, n_out, n_mat; /* n_mat > 1 for stacked experts */
    int64_t row_bytes;
    const char *name;
} dsv4_mat;

typedef struct dsv4_hc_w {
    dsv4_mat fn;      /* [hc*H -> Mx] */
    float *base;      /* [Mx] */
    float *scale;     /* [3] */
} dsv4_hc_w;

typedef struct dsv4_comp_w {
    dsv4_mat wkv, wgate; /* [H -> cw] */
    float *ape;          /* [r][cw] */
    float *norm;         /* [dout] */
} dsv4_comp_w;

typedef struct dsv4_layer {
    int kind;
    int64_t ratio;
    dsv4_hc_w hc_attn, hc_ffn;
    float *attn_norm, *ffn_norm;
    dsv4_mat wq_a;   /* H -> rq */
    float *q_norm;
    dsv4_mat wq_b;   /* rq -> nh*D */
    dsv4_mat wkv;    /* H -> D */
    float *kv_norm;
    float *sinks;    /* [nh] */
    dsv4_mat wo_a;   /* nh*D/G -> G*ro (grouped) */
    dsv4_mat wo_b;   /* G*ro -> H */
    dsv4_comp_w comp;          /* CSA/HCA */
    dsv4_mat idx_wq_b;         /* CSA: rq -> nI*DI */
    dsv4_mat idx_proj;         /* CSA: H -> nI */
    dsv4_comp_w idx_comp;      /* CSA */
    dsv4_mat gate_inp;         /* H -> E */
    float *exp_bias;           /* [E] or NULL */
    const int32_t *tid2eid;    /* [V][k] for hash layers (converted to i32) */
    dsv4_mat gate_exps, up_exps, down_exps; /* stacked E */
    dsv4_mat gate_sh, up_sh, down_sh;
} dsv4_layer;

/* Sum the routed-expert output of one MoE layer across processes that own
 * disjoint expert ranges (buf has n floats). Returns 0 or a negative error. */
typedef int (*dsv4_allreduce_fn)(void *user, int layer, float *buf, int64_t n);
/* Its split form, which lets the CPU forward compute the shared expert while
 * the sum travels: start begins the sum of buf, poll lets it advance (called
 * between row blocks of the shared expert's matmuls; returns 1 once the sum
 * is complete, 0 while it travels, < 0 on failure), finish completes it; buf is left
 * alone in between, and the result is the blocking hook's, bit for bit.
 * After a successful start the forward always calls finish, unless a poll
 * failed. */
typedef int (*dsv4_allreduce_step_fn)(void *user, int layer);

typedef struct dsv4_model {
    dsv4_hparams hp;
    const gguf_file *gguf;
    dsv4_mat tok_embd;       /* H x V */
    float *out_norm;         /* [H] */
    dsv4_mat output;         /* H -> V */
    dsv4_mat out_hc_fn;      /* hc*H -> hc */
    float *out_hc_base;      /* [hc] */
    float *out_hc_scale;     /* [1] */
    dsv4_layer *layers;
    ops_rope rope_main, rope_comp;
    int64_t expert_lo, expert_hi; /* owned routed experts [lo, hi) */
    /* Experts the stacked tensors hold: [0, E) for a full file, the
     * ds4j.expert_slice.* range for a file cut by `ds4j-tool slice`.
     * Expert e (a global id, as routing produces it) is matrix e - slice_lo. */
    int64_t slice_lo, slice_hi;
    int sliced;                  /* the file carries ds4j.expert_slice.* */
    int require_compact;         /* expert_compact=1: the owned range must be exactly the stored one */
    int64_t expert_bytes;        /* bytes of the stacked routed-expert tensors in this file */
    dsv4_allreduce_fn allreduce;
    void *allreduce_user;
    dsv4_allreduce_fn allreduce_start; /* NULL: the blocking hook only */
    dsv4_allreduce_step_fn allreduce_poll, allreduce_finish;
    int64_t n_params;            /* total parameters */
    int64_t active_bytes;        /* weight bytes read per decode token (k experts) */
    int64_t total_bytes;
    void **allocs;               /* f32 copies of small tensors, tid2eid tables */
    int64_t n_allocs, cap_allocs;
} dsv4_model;

/* Bind a model from an open GGUF. Returns 0 or a negative DS4J_ERR_* with
 * ds4j_fail() message naming the key/tensor. The gguf must outlive it. */
int dsv4_model_load(dsv4_model **out, const gguf_file *f);
void dsv4_model_free(dsv4_model *m);
/* Metadata keys of an expert slice (u32 global expert ids, [start, end)). */
#define DSV4_KEY_SLICE_START "ds4j.expert_slice.start"
#define DSV4_KEY_SLICE_END "ds4j.expert_slice.end"
/* Reads and validates the slice keys of f (both or neither; 0 <= start <
 * end <= n_expert). Without them: [0, n_expert) and *sliced = 0. Returns 0
 * or DS4J_ERR_FORMAT with a ds4j_fail() message. */
int dsv4_read_slice(const gguf_file *f, int64_t n_expert, int64_t *lo, int64_t *hi, int *sliced);
/* 1 if the file holds only part of the routed experts. */
static inline int dsv4_model_partial(const dsv4_model *m) { return m->slice_lo != 0 || m->slice_hi != m->hp.n_expert; }
/* Owned routed experts [lo, hi); validated against E, against the stored
 * slice (a partial slice serves exactly its own experts) and, with
 * require_compact, against "stores nothing but its own experts". */
int dsv4_model_set_expert_range(dsv4_model *m, int64_t lo, int64_t hi);
/* Internal setter for the expert-parallel reduction hook (NULL = identity). */
void dsv4_model_set_allreduce(dsv4_model *m, dsv4_allreduce_fn fn, void *user);
/* The split hook beside it (NULL start = none); same user pointer. */
void dsv4_model_set_allreduce_split(dsv4_model *m, dsv4_allreduce_fn start, dsv4_allreduce_step_fn poll,
                                    dsv4_allreduce_step_fn finish);

/* Per-engine scratch for chunks of up to max_tokens tokens. */
typedef struct dsv4_scratch dsv4_scratch;
dsv4_scratch *dsv4_scratch_new(const dsv4_model *m, int64_t max_tokens, int n_threads);
void dsv4_scratch_free(dsv4_scratch *s);
int64_t dsv4_scratch_bytes(const dsv4_model *m, int64_t max_tokens, int n_threads);
/* Grow the context-dependent attention buffers for sessions of n_ctx
 * tokens (called at session creation, never while evaluating). */
int dsv4_scratch_reserve_ctx(const dsv4_model *m, dsv4_scratch *s, int64_t n_ctx, int kv_fp8);
int64_t dsv4_scratch_ctx_bytes(const dsv4_model *m, int64_t n_ctx, int kv_fp8, int n_threads);

/* Rows one step can hold (the max_tokens the scratch was made for). */
int64_t dsv4_scratch_rows(const dsv4_scratch *s);
/* Room for the last-row logits of `rows` sequences of one step (needed when
 * more than one sequence of a step wants logits_last without logits_all);
 * grown explicitly, never while evaluating. */
int dsv4_scratch_reserve_head(const dsv4_model *m, dsv4_scratch *s, int64_t rows);

/* One sequence's share of a step: tokens[0..n) at positions st->pos ..
 * st->pos+n-1. logits_all (n rows of V) if not NULL receives every row,
 * logits_last (V) if not NULL the last row. */
typedef struct dsv4_seq {
    struct kv_state *st;
    const int32_t *tokens;
    int64_t n;
    float *logits_all;
    float *logits_last;
} dsv4_seq;

/*
 * Evaluate one step over several sequences (distinct states, rows in total
 * <= the scratch's max_tokens), advancing each state by its n. States with
 * kv_fp8 need a scratch reserved with kv_fp8 (decoded-key buffers). Every
 * row's result is bit-identical to evaluating its sequence alone (see
 * forward_dsv4.c). Arguments are validated before anything changes; after
 * a failure inside the layers (the all-reduce) the states are half-updated
 * and the caller restores them. A plain function of (states, tokens):
 * peers replay it in lockstep, one all-reduce per MoE layer per step.
 */
int dsv4_forward_batch(const dsv4_model *m, dsv4_scratch *sc, ds4j_pool *pool, const dsv4_seq *seqs,
                       int64_t n_seqs);
/* The one-sequence step. */
int dsv4_forward(const dsv4_model *m, struct kv_state *st, dsv4_scratch *sc, ds4j_pool *pool,
                 const int32_t *tokens, int64_t n, float *logits_all, float *logits_last);

#endif
