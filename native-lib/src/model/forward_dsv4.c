/*
 * forward_dsv4.c — the DeepSeek V4 forward pass over one step of rows
 * (spec sections 3-7). A step holds the tokens of one or more sequences
 * (dsv4_seq: a decode token or a prefill chunk each, every sequence on its
 * own kv_state); a single chunk of one sequence is the one-sequence case.
 * Matrix products run over all rows of the step together (rows split
 * across the pool, each weight row reused for every row while it is in
 * cache; routed experts gather the rows of every sequence that chose them);
 * the stateful steps (sliding window, compressors, indexer, attention) run
 * row by row, each row against its own sequence's state at its own
 * position, in position order within a sequence. Every kernel computes an
 * output row from its input row alone (activation quantized per row, the
 * multi-row dot kernels bit-identical to the one-row ones, threads split
 * output rows, never a reduction), so a row's result does not depend on
 * which other rows share the step: a chunk equals token-by-token evaluation
 * (section 5.7) and a sequence in a batch equals the sequence alone, bit
 * for bit. All scratch memory is allocated up front in dsv4_scratch (the
 * head's multi-row buffer is grown explicitly, outside the forward).
 *
 * kv_precision=fp8 (state->kv_fp8): rows and entries are written in the
 * compact formats of kv_quant.h and the rows a query attends to are decoded
 * once per token into `keys`; indexer queries get the Hadamard + FP4 round
 * trip and indexer keys are decoded per thread while scoring. The f32 path
 * does none of this and reads the state in place.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kv_quant.h"
#include "kv_state.h"
#include "model_dsv4.h"
#include "quants.h"

struct dsv4_scratch {
    int64_t max_tokens;
    int64_t ctx_cap;       /* n_ctx the attention buffers are sized for */
    int n_threads;
    float *X, *Xn, *flat, *mix, *pre, *post, *comb;
    float *x, *xa, *qa, *qr, *q, *kv, *ckv, *cg, *ikv, *ig, *qI, *wI;
    float *o, *low, *aout;
    float *rl, *wt;
    int32_t *sel;
    float *xin, *g, *u, *dn, *routed, *sh;
    int32_t *slot_tok;
    float *slot_wt;
    uint8_t *act;
    int64_t act_bytes;
    float *probs;          /* [nh][W + max visible entries] */
    int64_t probs_stride;
    float *iscore;         /* [max indexer entries] */
    int32_t *iidx;
    int32_t *isel;         /* [kI] */
    float *etmp;           /* [max(D, DI)] entry being built */
    float *keys;           /* fp8: [W + max visible entries][D] decoded rows */
    float *ikbuf;          /* fp8: [n_threads][DI] decoded indexer key per thread */
    int64_t keys_ctx;      /* n_ctx `keys` is sized for (0 = none) */
    int32_t *row_tok;      /* [max_tokens] token of each row of the step */
    int32_t *row_seq;      /* [max_tokens] its sequence (index into the step's dsv4_seq) */
    int64_t *row_pos;      /* [max_tokens] its position in that sequence */
    float *head;           /* [head_rows][V] logits of several sequences' last rows */
    int64_t head_rows;
    uint64_t steps;        /* steps checked so far (marks the states a step names) */
    void *block;
};

/* ----------------------------------------------------------- sizing */

typedef struct buf_plan { int64_t off; } buf_plan;

static int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t act_row_max(const dsv4_model *m) {
    const dsv4_hparams *hp = &m->hp;
    int64_t n = max_i64(hp->hc * hp->n_embd, hp->n_embd);
    n = max_i64(n, hp->q_lora);
    n = max_i64(n, hp->n_head * hp->head_dim);
    n = max_i64(n, hp->o_groups * hp->o_lora);
    n = max_i64(n, hp->n_ff_exp);
    /* worst case bytes per element of any activation type: f32, plus block headers */
    return n * 4 + 4096;
}

/* Lay out (or measure, when base == NULL) every scratch buffer. */
static int64_t scratch_layout(const dsv4_model *m, int64_t S, dsv4_scratch *sc, uint8_t *base) {
    const dsv4_hparams *hp = &m->hp;
    int64_t H = hp->n_embd, hc = hp->hc, mx = (2 + hc) * hc;
    int64_t off = 0;
#define F(field, count) do { if (base) sc->field = (void *)(base + off); off += (((int64_t)(count) * 4) + 63) & ~(int64_t)63; } while (0)
    F(X, S * hc * H); F(Xn, S * hc * H); F(flat, S * hc * H); F(mix, S * mx);
    F(pre, S * hc); F(post, S * hc); F(comb, S * hc * hc);
    F(x, S * H); F(xa, S * H); F(qa, S * hp->q_lora); F(qr, S * hp->q_lora);
    F(q, S * hp->n_head * hp->head_dim); F(kv, S * hp->head_dim);
    F(ckv, S * 2 * hp->head_dim); F(cg, S * 2 * hp->head_dim);
    F(ikv, S * 2 * hp->idx_dim); F(ig, S * 2 * hp->idx_dim);
    F(qI, S * hp->idx_heads * hp->idx_dim); F(wI, S * hp->idx_heads);
    F(o, S * hp->n_head * hp->head_dim); F(low, S * hp->o_groups * hp->o_lora); F(aout, S * H);
    F(rl, S * hp->n_expert); F(wt, S * hp->n_expert_used); F(sel, S * hp->n_expert_used);
    F(xin, S * hp->n_expert_used * H); F(g, S * hp->n_expert_used * hp->n_ff_exp);
    F(u, S * hp->n_expert_used * hp->n_ff_exp); F(dn, S * hp->n_expert_used * H);
    F(routed, S * H); F(sh, S * H);
    F(slot_tok, S * hp->n_expert_used); F(slot_wt, S * hp->n_expert_used);
    F(etmp, max_i64(hp->head_dim, hp->idx_dim));
    F(row_tok, S); F(row_seq, S); F(row_pos, 2 * S);
    int64_t ab = act_row_max(m) * S * max_i64(hp->n_expert_used, 1);
    if (base) { sc->act = base + off; sc->act_bytes = ab; }
    off += (ab + 63) & ~(int64_t)63;
#undef F
    return off;
}

int64_t dsv4_scratch_bytes(const dsv4_model *m, int64_t max_tokens, int n_threads) {
    (void)n_threads;
    return scratch_layout(m, max_tokens, NULL, NULL) + (int64_t)sizeof(dsv4_scratch);
}

dsv4_scratch *dsv4_scratch_new(const dsv4_model *m, int64_t max_tokens, int n_threads) {
    if (max_tokens < 1) max_tokens = 1;
    dsv4_scratch *sc = calloc(1, sizeof *sc);
    if (!sc) return NULL;
    int64_t bytes = scratch_layout(m, max_tokens, NULL, NULL);
    sc->block = ds4j_alloc((size_t)bytes);
    if (!sc->block) { free(sc); return NULL; }
    scratch_layout(m, max_tokens, sc, sc->block);
    sc->max_tokens = max_tokens;
    sc->n_threads = n_threads;
    return sc;
}

void dsv4_scratch_free(dsv4_scratch *sc) {
    if (!sc) return;
    ds4j_free(sc->block);
    ds4j_free(sc->probs);
    ds4j_free(sc->iscore);
    ds4j_free(sc->iidx);
    ds4j_free(sc->isel);
    ds4j_free(sc->keys);
    ds4j_free(sc->ikbuf);
    ds4j_free(sc->head);
    free(sc);
}

int64_t dsv4_scratch_rows(const dsv4_scratch *sc) { return sc->max_tokens; }

/* The head writes one sequence's logits straight into its buffer; several
 * sequences' last rows go through this buffer (one product over all of
 * them), grown here by the caller before a multi-sequence step. */
int dsv4_scratch_reserve_head(const dsv4_model *m, dsv4_scratch *sc, int64_t rows) {
    if (rows > sc->max_tokens) rows = sc->max_tokens;
    if (rows <= sc->head_rows) return 0;
    float *h = ds4j_alloc((size_t)(rows * m->hp.n_vocab) * sizeof(float));
    if (!h) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory for the logits of %lld sequences", (long long)rows);
    ds4j_free(sc->head);
    sc->head = h;
    sc->head_rows = rows;
    return 0;
}

/* Rows a query may attend to at most (window + entries) and indexer keys
 * at most, for sessions of n_ctx tokens. */
static void ctx_extent(const dsv4_model *m, int64_t n_ctx, int64_t *rows, int64_t *maxidx) {
    const dsv4_hparams *hp = &m->hp;
    int64_t maxent = 0, mi = 0;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        if (hp->kind[l] == DSV4_HCA) maxent = max_i64(maxent, n_ctx / hp->ratio[l] + 1);
        if (hp->kind[l] == DSV4_CSA) {
            maxent = max_i64(maxent, hp->idx_topk);
            mi = max_i64(mi, n_ctx / hp->ratio[l] + 1);
        }
    }
    *rows = hp->window + maxent + 1;
    *maxidx = mi;
}

/* Attention buffers depend on the context length; grown (never in the hot
 * loop) when a session with a larger n_ctx is created. */
int dsv4_scratch_reserve_ctx(const dsv4_model *m, dsv4_scratch *sc, int64_t n_ctx, int kv_fp8) {
    const dsv4_hparams *hp = &m->hp;
    int64_t stride, maxidx;
    ctx_extent(m, n_ctx, &stride, &maxidx);
    if (kv_fp8 && n_ctx > sc->keys_ctx) {
        float *keys = ds4j_alloc((size_t)(stride * hp->head_dim) * sizeof(float));
        float *ik = sc->ikbuf ? sc->ikbuf : ds4j_alloc((size_t)(max_i64(sc->n_threads, 1) * hp->idx_dim + 1) * sizeof(float));
        if (!keys || !ik) {
            ds4j_free(keys);
            if (ik != sc->ikbuf) ds4j_free(ik);
            return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory for fp8 key buffers (n_ctx %lld)", (long long)n_ctx);
        }
        ds4j_free(sc->keys);
        sc->keys = keys;
        sc->ikbuf = ik;
        sc->keys_ctx = n_ctx;
    }
    if (n_ctx <= sc->ctx_cap) return 0;
    float *probs = ds4j_alloc((size_t)(stride * hp->n_head) * sizeof(float));
    float *is = ds4j_alloc((size_t)(maxidx + 1) * sizeof(float));
    int32_t *ii = ds4j_alloc((size_t)(maxidx + 1) * sizeof(int32_t));
    int32_t *isel = ds4j_alloc((size_t)(hp->idx_topk + 1) * sizeof(int32_t));
    if (!probs || !is || !ii || !isel) {
        ds4j_free(probs); ds4j_free(is); ds4j_free(ii); ds4j_free(isel);
        return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory for attention buffers (n_ctx %lld)", (long long)n_ctx);
    }
    ds4j_free(sc->probs); ds4j_free(sc->iscore); ds4j_free(sc->iidx); ds4j_free(sc->isel);
    sc->probs = probs; sc->probs_stride = stride; sc->iscore = is; sc->iidx = ii; sc->isel = isel;
    sc->ctx_cap = n_ctx;
    return 0;
}

int64_t dsv4_scratch_ctx_bytes(const dsv4_model *m, int64_t n_ctx, int kv_fp8, int n_threads) {
    const dsv4_hparams *hp = &m->hp;
    int64_t stride, maxidx;
    ctx_extent(m, n_ctx, &stride, &maxidx);
    int64_t b = stride * hp->n_head * 4 + (maxidx + 1) * 8 + (hp->idx_topk + 1) * 4;
    if (kv_fp8) b += stride * hp->head_dim * 4 + (max_i64(n_threads, 1) * hp->idx_dim + 1) * 4;
    return b;
}

/* ------------------------------------------------------------ matmul */

typedef struct mm_job {
    const uint8_t *w;
    int32_t type;
    int64_t row_bytes, n_in, n_out, rows_per_group;
    const uint8_t *act;
    int64_t act_tok, act_grp;   /* byte strides: per token, per group */
    int64_t S;
    float *y;
    int64_t y_stride;
} mm_job;

static void mm_worker(void *ctx, int ith, int nth) {
    const mm_job *j = ctx;
    int64_t r0 = j->n_out * ith / nth, r1 = j->n_out * (ith + 1) / nth;
    while (r0 < r1) {
        int64_t g = r0 / j->rows_per_group;
        int64_t ge = (g + 1) * j->rows_per_group;
        int64_t re = r1 < ge ? r1 : ge;
        ds4j_matmul(j->type, j->w + r0 * j->row_bytes, j->row_bytes, re - r0, j->n_in, j->act + g * j->act_grp,
                    j->act_tok, j->S, j->y + r0, j->y_stride);
        r0 = re;
    }
}

/*
 * y[s][o] = W_e[o] . x[s][g(o)] for S tokens, with rows split into `groups`
 * equal groups each reading its own n_in slice of x (grouped output
 * projection); groups = 1 is a plain product. Rows are split across the
 * pool; each thread runs the quants matmul driver on its rows.
 */
static void mm(dsv4_scratch *sc, ds4j_pool *pool, const dsv4_mat *w, int64_t e, const float *x, int64_t x_stride,
               int64_t S, float *y, int64_t y_stride, int64_t groups) {
    int64_t n_in = w->n_in;
    int64_t ab = (int64_t)ds4j_act_size(w->type, n_in);
    ab = (ab + 63) & ~(int64_t)63;
    for (int64_t s = 0; s < S; s++)
        for (int64_t g = 0; g < groups; g++)
            ds4j_quantize_act(w->type, x + s * x_stride + g * n_in, n_in, sc->act + (s * groups + g) * ab);
    mm_job j = {
        .w = w->data + e * w->n_out * w->row_bytes, .type = w->type, .row_bytes = w->row_bytes, .n_in = n_in,
        .n_out = w->n_out, .rows_per_group = w->n_out / groups, .act = sc->act, .act_tok = groups * ab,
        .act_grp = ab, .S = S, .y = y, .y_stride = y_stride,
    };
    double work = (double)w->n_out * (double)n_in * (double)S;
    int nth = work < 65536.0 ? 1 : 0;
    if (nth == 0 && w->n_out < ds4j_pool_size(pool)) nth = (int)w->n_out;
    ds4j_pool_run(pool, mm_worker, &j, nth);
}

/*
 * mm (one matrix, groups = 1) with the split all_sum's poll between row
 * blocks. Open MPI moves a started collective only inside MPI calls, and a
 * peer's message above the shared-memory eager limit (a 4096-wide f32 row
 * is 16 KiB) waits for this rank's next call, so polling only between whole
 * matmuls would leave the sum stalled for a matmul's time. Rows are
 * independent (the pool splits them across threads the same way), so the
 * blocks change no bit. *poll: 0 while the sum travels; once the poll says
 * it is complete (1) or failed (< 0) the rest runs as one block.
 */
static void mm_polled(const dsv4_model *m, int64_t l, dsv4_scratch *sc, ds4j_pool *pool, const dsv4_mat *w,
                      const float *x, int64_t x_stride, int64_t S, float *y, int64_t y_stride, int *poll) {
    int64_t n_in = w->n_in, n_out = w->n_out;
    double work = (double)n_out * (double)n_in * (double)S;
    /* at least ~32K multiply-adds per thread between polls (a few us: a
     * pool run's own cost stays small), at most 8 blocks */
    int64_t blocks = (int64_t)(work / (32768.0 * ds4j_pool_size(pool)));
    if (blocks > 8) blocks = 8;
    if (*poll != 0 || blocks < 2) {
        mm(sc, pool, w, 0, x, x_stride, S, y, y_stride, 1);
        if (*poll == 0) *poll = m->allreduce_poll(m->allreduce_user, (int)l);
        return;
    }
    int64_t ab = ((int64_t)ds4j_act_size(w->type, n_in) + 63) & ~(int64_t)63;
    for (int64_t s = 0; s < S; s++) ds4j_quantize_act(w->type, x + s * x_stride, n_in, sc->act + s * ab);
    int64_t rb = ((n_out + blocks - 1) / blocks + 15) & ~(int64_t)15;
    for (int64_t r0 = 0; r0 < n_out;) {
        int64_t r1 = *poll == 0 && r0 + rb < n_out ? r0 + rb : n_out;
        mm_job j = {
            .w = w->data + r0 * w->row_bytes, .type = w->type, .row_bytes = w->row_bytes, .n_in = n_in,
            .n_out = r1 - r0, .rows_per_group = r1 - r0, .act = sc->act, .act_tok = ab, .act_grp = ab, .S = S,
            .y = y + r0, .y_stride = y_stride,
        };
        int nth = (double)(r1 - r0) * (double)n_in * (double)S < 65536.0 ? 1 : 0;
        if (nth == 0 && r1 - r0 < ds4j_pool_size(pool)) nth = (int)(r1 - r0);
        ds4j_pool_run(pool, mm_worker, &j, nth);
        r0 = r1;
        if (*poll == 0) *poll = m->allreduce_poll(m->allreduce_user, (int)l);
    }
}

/* ------------------------------------------------------ hyper-connections */

static void hc_pre(const dsv4_model *m, dsv4_scratch *sc, ds4j_pool *pool, const dsv4_hc_w *w, int64_t S) {
    const dsv4_hparams *hp = &m->hp;
    int64_t H = hp->n_embd, hc = hp->hc, HC = hc * H, mx = (2 + hc) * hc;
    for (int64_t s = 0; s < S; s++) ops_rmsnorm(sc->flat + s * HC, sc->X + s * HC, NULL, HC, hp->eps);
    mm(sc, pool, &w->fn, 0, sc->flat, HC, S, sc->mix, mx, 1);
    for (int64_t s = 0; s < S; s++) {
        float *pre = sc->pre + s * hc;
        ops_hc_split(sc->mix + s * mx, w->scale, w->base, (int)hc, (int)hp->sinkhorn_iters, hp->hc_eps, pre,
                     sc->post + s * hc, sc->comb + s * hc * hc);
        float *x = sc->x + s * H;
        const float *X = sc->X + s * HC;
        for (int64_t i = 0; i < H; i++) {
            float acc = 0;
            for (int64_t j = 0; j < hc; j++) acc += pre[j] * X[j * H + i];
            x[i] = acc;
        }
    }
}

static void hc_post(const dsv4_model *m, dsv4_scratch *sc, const float *out, int64_t S) {
    const dsv4_hparams *hp = &m->hp;
    int64_t H = hp->n_embd, hc = hp->hc, HC = hc * H;
    for (int64_t s = 0; s < S; s++) {
        const float *X = sc->X + s * HC, *post = sc->post + s * hc, *C = sc->comb + s * hc * hc;
        const float *a = out + s * H;
        float *Xn = sc->Xn + s * HC;
        for (int64_t c = 0; c < hc; c++) {
            float *dst = Xn + c * H;
            for (int64_t i = 0; i < H; i++) dst[i] = post[c] * a[i];
            for (int64_t r = 0; r < hc; r++) {
                float w = C[r * hc + c];
                const float *src = X + r * H;
                for (int64_t i = 0; i < H; i++) dst[i] += w * src[i];
            }
        }
    }
    memcpy(sc->X, sc->Xn, (size_t)(S * HC) * sizeof(float));
}

/* ------------------------------------------------------------ compressor */

/* Push one token's projections; emits an entry when the window completes.
 * Compact formats build the entry in tmp and store it quantised. */
static void comp_push(const dsv4_model *m, kv_comp *c, const dsv4_comp_w *w, const float *kv, const float *g,
                      int64_t p, float *tmp) {
    int64_t r = c->r, cw = c->cw, dout = c->dout, j = p % r;
    memcpy(c->pend_kv + j * cw, kv, (size_t)cw * sizeof(float));
    float *pg = c->pend_g + j * cw;
    const float *ape = w->ape + j * cw;
    for (int64_t i = 0; i < cw; i++) pg[i] = g[i] + ape[i];
    if (j != r - 1) return;
    if (c->n >= c->cap) return; /* cannot happen: the caller checks n_ctx */
    float *ent = c->fmt == KV_FMT_F32 ? c->entries + c->n * dout : tmp;
    int has_prev = c->overlap && c->n > 0;
    int64_t off = c->overlap ? dout : 0; /* Cb half for overlap */
    for (int64_t ch = 0; ch < dout; ch++) {
        float mxv = -INFINITY;
        if (has_prev)
            for (int64_t s = 0; s < r; s++) mxv = fmaxf(mxv, c->prev_g[s * dout + ch]);
        for (int64_t s = 0; s < r; s++) mxv = fmaxf(mxv, c->pend_g[s * cw + off + ch]);
        double den = 0, num = 0;
        if (has_prev)
            for (int64_t s = 0; s < r; s++) {
                double e = exp((double)(c->prev_g[s * dout + ch] - mxv));
                den += e;
                num += e * c->prev_kv[s * dout + ch];
            }
        for (int64_t s = 0; s < r; s++) {
            double e = exp((double)(c->pend_g[s * cw + off + ch] - mxv));
            den += e;
            num += e * c->pend_kv[s * cw + off + ch];
        }
        ent[ch] = (float)(num / den);
    }
    ops_rmsnorm(ent, ent, w->norm, dout, m->hp.eps);
    float cs[OPS_ROPE_MAX_PAIRS], sn[OPS_ROPE_MAX_PAIRS];
    ops_rope_cs(&m->rope_comp, c->n * r, cs, sn);
    ops_rope_apply(ent, dout, (int)m->hp.n_rot, cs, sn, 0);
    if (c->fmt == KV_FMT_FP8) {
        kvq_kv_row_encode(ent, dout, m->hp.n_rot, c->ent8 + c->n * c->row_bytes);
    } else if (c->fmt == KV_FMT_FP4_IDX) {
        kvq_hadamard(ent, dout);
        kvq_idx_row_encode(ent, dout, c->ent8 + c->n * c->row_bytes);
    }
    c->n++;
    if (c->overlap)
        for (int64_t s = 0; s < r; s++) {
            memcpy(c->prev_kv + s * dout, c->pend_kv + s * cw, (size_t)dout * sizeof(float));
            memcpy(c->prev_g + s * dout, c->pend_g + s * cw, (size_t)dout * sizeof(float));
        }
}

/* ------------------------------------------------------------ indexer */

typedef struct idx_job {
    const float *q, *w, *keys;
    const uint8_t *keys8;  /* compact keys (fp8 mode), row_bytes each */
    int64_t row_bytes;
    float *kbuf;           /* [nth][DI] per-thread decoded key */
    float *score;
    int64_t T, nI, DI;
    float scale;
} idx_job;

static void idx_worker(void *ctx, int ith, int nth) {
    const idx_job *j = ctx;
    int64_t t0 = j->T * ith / nth, t1 = j->T * (ith + 1) / nth;
    for (int64_t t = t0; t < t1; t++) {
        const float *k;
        if (j->keys8) {
            float *kb = j->kbuf + ith * j->DI;
            kvq_idx_row_decode(j->keys8 + t * j->row_bytes, j->DI, kb);
            k = kb;
        } else {
            k = j->keys + t * j->DI;
        }
        double acc = 0;
        for (int64_t h = 0; h < j->nI; h++) {
            float d = ops_dot(j->q + h * j->DI, k, j->DI);
            if (d > 0) acc += (double)j->w[h] * d;
        }
        j->score[t] = (float)(acc * j->scale);
    }
}

/* Order: higher score first, then lower index (deterministic ties). */
static inline int idx_before(const float *sc, int32_t a, int32_t b) {
    return sc[a] > sc[b] || (sc[a] == sc[b] && a < b);
}

/* Partially orders idx[0..n) so that its first k elements are the k best. */
static void idx_select(const float *sc, int32_t *idx, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t pivot = idx[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (idx_before(sc, idx[i], pivot)) i++;
            while (idx_before(sc, pivot, idx[j])) j--;
            if (i <= j) { int32_t t = idx[i]; idx[i] = idx[j]; idx[j] = t; i++; j--; }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------ attention */

typedef struct att_job {
    const float *q;       /* [nh][D] */
    const float *win;     /* [W][D] */
    const float *ent;     /* entries [n][D] */
    const int32_t *sel;   /* NULL: all n_ent entries in order */
    const float *rows;    /* non-NULL: the window rows then the entries, decoded contiguously */
    int64_t n_ent;
    int64_t p, W, D, nh;
    const float *sinks;
    float *probs;
    int64_t probs_stride;
    float *o;
    float scale;
    const float *cs, *sn;
    int dr;
} att_job;

static void att_worker(void *ctx, int ith, int nth) {
    const att_job *j = ctx;
    int64_t h0 = j->nh * ith / nth, h1 = j->nh * (ith + 1) / nth;
    int64_t lo = j->p - j->W + 1;
    if (lo < 0) lo = 0;
    int64_t nw = j->p - lo + 1, D = j->D;
    for (int64_t h = h0; h < h1; h++) {
        const float *qh = j->q + h * D;
        float *z = j->probs + h * j->probs_stride;
        int64_t n = 0;
        if (j->rows) {
            for (int64_t i = 0; i < nw + j->n_ent; i++) z[n++] = ops_dot(qh, j->rows + i * D, D) * j->scale;
        } else {
            for (int64_t t = lo; t <= j->p; t++) z[n++] = ops_dot(qh, j->win + (t % j->W) * D, D) * j->scale;
            for (int64_t e = 0; e < j->n_ent; e++) {
                int64_t id = j->sel ? j->sel[e] : e;
                z[n++] = ops_dot(qh, j->ent + id * D, D) * j->scale;
            }
        }
        float mxv = j->sinks[h];
        for (int64_t i = 0; i < n; i++) mxv = fmaxf(mxv, z[i]);
        double den = exp((double)(j->sinks[h] - mxv));
        for (int64_t i = 0; i < n; i++) { z[i] = expf(z[i] - mxv); den += z[i]; }
        float inv = (float)(1.0 / den);
        float *oh = j->o + h * D;
        memset(oh, 0, (size_t)D * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            const float *key;
            if (j->rows) key = j->rows + i * D;
            else if (i < nw) key = j->win + ((lo + i) % j->W) * D;
            else { int64_t e = i - nw; key = j->ent + (j->sel ? j->sel[e] : e) * D; }
            float pw = z[i] * inv;
            for (int64_t d = 0; d < D; d++) oh[d] += pw * key[d];
        }
        ops_rope_apply(oh, D, j->dr, j->cs, j->sn, 1);
    }
}

/* ------------------------------------------------------------ layers */

static void attention_layer(const dsv4_model *m, int64_t l, const dsv4_seq *seqs, dsv4_scratch *sc,
                            ds4j_pool *pool, int64_t S) {
    const dsv4_hparams *hp = &m->hp;
    const dsv4_layer *ly = &m->layers[l];
    int64_t H = hp->n_embd, D = hp->head_dim, nh = hp->n_head, rq = hp->q_lora, dr = hp->n_rot;
    int64_t nI = hp->idx_heads, DI = hp->idx_dim;
    hc_pre(m, sc, pool, &ly->hc_attn, S);
    for (int64_t s = 0; s < S; s++) ops_rmsnorm(sc->xa + s * H, sc->x + s * H, ly->attn_norm, H, hp->eps);
    mm(sc, pool, &ly->wq_a, 0, sc->xa, H, S, sc->qa, rq, 1);
    for (int64_t s = 0; s < S; s++) ops_rmsnorm(sc->qr + s * rq, sc->qa + s * rq, ly->q_norm, rq, hp->eps);
    mm(sc, pool, &ly->wq_b, 0, sc->qr, rq, S, sc->q, nh * D, 1);
    for (int64_t s = 0; s < S * nh; s++) ops_rmsnorm(sc->q + s * D, sc->q + s * D, NULL, D, hp->eps);
    mm(sc, pool, &ly->wkv, 0, sc->xa, H, S, sc->kv, D, 1);
    for (int64_t s = 0; s < S; s++) ops_rmsnorm(sc->kv + s * D, sc->kv + s * D, ly->kv_norm, D, hp->eps);
    int64_t cw = ly->kind == DSV4_CSA ? 2 * D : D;
    if (ly->kind != DSV4_SWA) {
        mm(sc, pool, &ly->comp.wkv, 0, sc->xa, H, S, sc->ckv, cw, 1);
        mm(sc, pool, &ly->comp.wgate, 0, sc->xa, H, S, sc->cg, cw, 1);
    }
    if (ly->kind == DSV4_CSA) {
        mm(sc, pool, &ly->idx_comp.wkv, 0, sc->xa, H, S, sc->ikv, 2 * DI, 1);
        mm(sc, pool, &ly->idx_comp.wgate, 0, sc->xa, H, S, sc->ig, 2 * DI, 1);
        mm(sc, pool, &ly->idx_wq_b, 0, sc->qr, rq, S, sc->qI, nI * DI, 1);
        mm(sc, pool, &ly->idx_proj, 0, sc->xa, H, S, sc->wI, nI, 1);
    }
    const ops_rope *rope = ly->kind == DSV4_SWA ? &m->rope_main : &m->rope_comp;
    float cs[OPS_ROPE_MAX_PAIRS], sn[OPS_ROPE_MAX_PAIRS];
    for (int64_t s = 0; s < S; s++) {
        /* rows of one sequence are consecutive and in position order */
        kv_state *st = seqs[sc->row_seq[s]].st;
        kv_layer *kl = &st->layers[l];
        int64_t p = sc->row_pos[s];
        ops_rope_cs(rope, p, cs, sn);
        float *q = sc->q + s * nh * D, *kv = sc->kv + s * D;
        for (int64_t h = 0; h < nh; h++) ops_rope_apply(q + h * D, D, (int)dr, cs, sn, 0);
        ops_rope_apply(kv, D, (int)dr, cs, sn, 0);
        if (st->kv_fp8) kvq_kv_row_encode(kv, D, dr, kl->win8 + (p % hp->window) * kl->win_row_bytes);
        else memcpy(kl->win + (p % hp->window) * D, kv, (size_t)D * sizeof(float));
        att_job aj = {
            .q = q, .win = kl->win, .ent = kl->comp.entries, .sel = NULL, .n_ent = 0, .p = p, .W = hp->window,
            .D = D, .nh = nh, .sinks = ly->sinks, .probs = sc->probs, .probs_stride = sc->probs_stride,
            .o = sc->o + s * nh * D, .scale = (float)(1.0 / sqrt((double)D)), .cs = cs, .sn = sn, .dr = (int)dr,
        };
        if (ly->kind != DSV4_SWA) {
            comp_push(m, &kl->comp, &ly->comp, sc->ckv + s * cw, sc->cg + s * cw, p, sc->etmp);
            aj.n_ent = kl->comp.n;
        }
        if (ly->kind == DSV4_CSA) {
            comp_push(m, &kl->idx, &ly->idx_comp, sc->ikv + s * 2 * DI, sc->ig + s * 2 * DI, p, sc->etmp);
            int64_t T = kl->idx.n;
            if (T > hp->idx_topk) {
                float *qI = sc->qI + s * nI * DI, *wI = sc->wI + s * nI;
                for (int64_t h = 0; h < nI; h++) ops_rope_apply(qI + h * DI, DI, (int)dr, cs, sn, 0);
                if (kl->idx.fmt == KV_FMT_FP4_IDX)
                    for (int64_t h = 0; h < nI; h++) kvq_indexer_qat(qI + h * DI, DI);
                float ws = (float)(1.0 / sqrt((double)nI));
                for (int64_t h = 0; h < nI; h++) wI[h] *= ws;
                idx_job ij = {.q = qI, .w = wI, .keys = kl->idx.entries, .score = sc->iscore, .T = T, .nI = nI,
                              .DI = DI, .scale = (float)(1.0 / sqrt((double)DI))};
                if (kl->idx.fmt == KV_FMT_FP4_IDX) {
                    ij.keys = NULL;
                    ij.keys8 = kl->idx.ent8;
                    ij.row_bytes = kl->idx.row_bytes;
                    ij.kbuf = sc->ikbuf;
                }
                ds4j_pool_run(pool, idx_worker, &ij, (double)T * nI * DI < 65536.0 ? 1 : 0);
                for (int64_t t = 0; t < T; t++) sc->iidx[t] = (int32_t)t;
                idx_select(sc->iscore, sc->iidx, T, hp->idx_topk);
                memcpy(sc->isel, sc->iidx, (size_t)hp->idx_topk * sizeof(int32_t));
                qsort(sc->isel, (size_t)hp->idx_topk, sizeof(int32_t), cmp_i32);
                aj.sel = sc->isel;
                aj.n_ent = hp->idx_topk;
            }
            /* T <= kI: every entry is selected (order is irrelevant) */
        }
        if (st->kv_fp8) {
            /* decode the visible rows once; every head reads them */
            int64_t lo = p - hp->window + 1 < 0 ? 0 : p - hp->window + 1, r = 0;
            for (int64_t t = lo; t <= p; t++, r++)
                kvq_kv_row_decode(kl->win8 + (t % hp->window) * kl->win_row_bytes, D, dr, sc->keys + r * D);
            for (int64_t e = 0; e < aj.n_ent; e++, r++) {
                int64_t id = aj.sel ? aj.sel[e] : e;
                kvq_kv_row_decode(kl->comp.ent8 + id * kl->comp.row_bytes, D, dr, sc->keys + r * D);
            }
            aj.rows = sc->keys;
        }
        double work = (double)nh * (double)(hp->window + aj.n_ent) * (double)D;
        ds4j_pool_run(pool, att_worker, &aj, work < 32768.0 ? 1 : 0);
    }
    int64_t G = hp->o_groups, ro = hp->o_lora;
    mm(sc, pool, &ly->wo_a, 0, sc->o, nh * D, S, sc->low, G * ro, G);
    mm(sc, pool, &ly->wo_b, 0, sc->low, G * ro, S, sc->aout, H, 1);
    hc_post(m, sc, sc->aout, S);
}

static void swiglu(float *g, const float *u, int64_t n, float lim) {
    for (int64_t i = 0; i < n; i++) {
        float a = g[i] > lim ? lim : g[i];
        float b = u[i] > lim ? lim : (u[i] < -lim ? -lim : u[i]);
        g[i] = ops_silu(a) * b;
    }
}

/*
 * All routed experts of a layer in one pool run per stage: the slots
 * (expert, token) are laid out expert-major; `n_mats` matrices per expert
 * (gate and up, or down) are concatenated into one virtual row space that
 * the threads split evenly, so a decode step costs two pool runs instead of
 * three per expert, and each slot's activation is quantized once for gate
 * and up together.
 */
typedef struct moe_job {
    const dsv4_mat *mats[2];
    int n_mats;
    const int32_t *ex;        /* [n_ex] matrix indices in the stored slice */
    const int64_t *first;     /* [n_ex + 1] first slot of each expert */
    int64_t n_ex;
    const uint8_t *act;       /* one quantized row per slot */
    int64_t act_stride;
    float *out[2];            /* per matrix: [slot][n_out] */
} moe_job;

static void moe_worker(void *ctx, int ith, int nth) {
    const moe_job *j = ctx;
    int64_t rows = j->mats[0]->n_out, per_ex = rows * j->n_mats, total = per_ex * j->n_ex;
    int64_t v = total * ith / nth, v1 = total * (ith + 1) / nth;
    while (v < v1) {
        int64_t q = v / per_ex, mi = (v % per_ex) / rows, r0 = v % rows;
        int64_t r1 = r0 + (v1 - v) < rows ? r0 + (v1 - v) : rows;
        const dsv4_mat *w = j->mats[mi];
        int64_t f = j->first[q], cnt = j->first[q + 1] - f;
        ds4j_matmul(w->type, w->data + ((int64_t)j->ex[q] * w->n_out + r0) * w->row_bytes, w->row_bytes, r1 - r0,
                    w->n_in, j->act + f * j->act_stride, j->act_stride, cnt, j->out[mi] + f * w->n_out + r0, w->n_out);
        v += r1 - r0;
    }
}

static int moe_layer(const dsv4_model *m, int64_t l, dsv4_scratch *sc, ds4j_pool *pool, int64_t S) {
    const int32_t *tokens = sc->row_tok;
    const dsv4_hparams *hp = &m->hp;
    const dsv4_layer *ly = &m->layers[l];
    int64_t H = hp->n_embd, E = hp->n_expert, k = hp->n_expert_used, I = hp->n_ff_exp;
    float lim = hp->swiglu_lim[l];
    hc_pre(m, sc, pool, &ly->hc_ffn, S);
    float *xf = sc->xa;
    for (int64_t s = 0; s < S; s++) ops_rmsnorm(xf + s * H, sc->x + s * H, ly->ffn_norm, H, hp->eps);
    mm(sc, pool, &ly->gate_inp, 0, xf, H, S, sc->rl, E, 1);
    for (int64_t s = 0; s < S; s++) {
        float *sc_e = sc->rl + s * E;
        for (int64_t e = 0; e < E; e++) sc_e[e] = ops_sqrtsoftplus(sc_e[e]);
        int32_t *sel = sc->sel + s * k;
        if (ly->tid2eid) {
            memcpy(sel, ly->tid2eid + (int64_t)tokens[s] * k, (size_t)k * sizeof(int32_t));
        } else {
            for (int64_t i = 0; i < k; i++) {
                int32_t best = -1;
                float bv = 0;
                for (int64_t e = 0; e < E; e++) {
                    int taken = 0;
                    for (int64_t t = 0; t < i; t++) if (sel[t] == e) { taken = 1; break; }
                    if (taken) continue;
                    float v = sc_e[e] + (ly->exp_bias ? ly->exp_bias[e] : 0.0f);
                    if (best < 0 || v > bv) { best = (int32_t)e; bv = v; }
                }
                sel[i] = best;
            }
        }
        double sum = 0;
        for (int64_t i = 0; i < k; i++) sum += sc_e[sel[i]];
        for (int64_t i = 0; i < k; i++) sc->wt[s * k + i] = (float)(sc_e[sel[i]] / (sum + 1e-20)) * hp->rsf;
    }
    memset(sc->routed, 0, (size_t)(S * H) * sizeof(float));
    if (ly->gate_exps.type == ly->up_exps.type && ly->gate_exps.n_out == ly->up_exps.n_out &&
        m->expert_hi - m->expert_lo <= 1024) {
        /* slots expert-major (experts ascending, then tokens), so each
         * token still accumulates its experts in ascending order */
        int32_t ex[1024];
        int64_t first[1025], n_ex = 0, cnt = 0;
        for (int64_t e = m->expert_lo; e < m->expert_hi; e++) {
            int64_t c0 = cnt;
            for (int64_t s = 0; s < S; s++)
                for (int64_t i = 0; i < k; i++)
                    if (sc->sel[s * k + i] == e) {
                        sc->slot_tok[cnt] = (int32_t)s;
                        sc->slot_wt[cnt] = sc->wt[s * k + i];
                        cnt++;
                    }
            if (cnt == c0) continue;
            ex[n_ex] = (int32_t)(e - m->slice_lo); /* matrix index within the stored slice */
            first[n_ex++] = c0;
        }
        first[n_ex] = cnt;
        if (cnt) {
            int64_t ab = ((int64_t)ds4j_act_size(ly->gate_exps.type, H) + 63) & ~(int64_t)63;
            for (int64_t c = 0; c < cnt; c++)
                ds4j_quantize_act(ly->gate_exps.type, xf + sc->slot_tok[c] * H, H, sc->act + c * ab);
            moe_job j = {.mats = {&ly->gate_exps, &ly->up_exps}, .n_mats = 2, .ex = ex, .first = first, .n_ex = n_ex,
                         .act = sc->act, .act_stride = ab, .out = {sc->g, sc->u}};
            ds4j_pool_run(pool, moe_worker, &j, 0);
            swiglu(sc->g, sc->u, cnt * I, lim);
            int64_t ad = ((int64_t)ds4j_act_size(ly->down_exps.type, I) + 63) & ~(int64_t)63;
            for (int64_t c = 0; c < cnt; c++) ds4j_quantize_act(ly->down_exps.type, sc->g + c * I, I, sc->act + c * ad);
            moe_job jd = {.mats = {&ly->down_exps, NULL}, .n_mats = 1, .ex = ex, .first = first, .n_ex = n_ex,
                          .act = sc->act, .act_stride = ad, .out = {sc->dn, NULL}};
            ds4j_pool_run(pool, moe_worker, &jd, 0);
            for (int64_t c = 0; c < cnt; c++) {
                float w = sc->slot_wt[c];
                float *dst = sc->routed + sc->slot_tok[c] * H;
                const float *src = sc->dn + c * H;
                for (int64_t i = 0; i < H; i++) dst[i] += w * src[i];
            }
        }
    } else {
        for (int64_t e = m->expert_lo; e < m->expert_hi; e++) {
            int64_t cnt = 0;
            for (int64_t s = 0; s < S; s++)
                for (int64_t i = 0; i < k; i++)
                    if (sc->sel[s * k + i] == e) {
                        sc->slot_tok[cnt] = (int32_t)s;
                        sc->slot_wt[cnt] = sc->wt[s * k + i];
                        memcpy(sc->xin + cnt * H, xf + s * H, (size_t)H * sizeof(float));
                        cnt++;
                    }
            if (!cnt) continue;
            int64_t me = e - m->slice_lo; /* matrix index within the stored slice */
            mm(sc, pool, &ly->gate_exps, me, sc->xin, H, cnt, sc->g, I, 1);
            mm(sc, pool, &ly->up_exps, me, sc->xin, H, cnt, sc->u, I, 1);
            swiglu(sc->g, sc->u, cnt * I, lim);
            mm(sc, pool, &ly->down_exps, me, sc->g, I, cnt, sc->dn, H, 1);
            for (int64_t c = 0; c < cnt; c++) {
                float w = sc->slot_wt[c];
                float *dst = sc->routed + sc->slot_tok[c] * H;
                const float *src = sc->dn + c * H;
                for (int64_t i = 0; i < H; i++) dst[i] += w * src[i];
            }
        }
    }
    /* Expert parallelism: the routed partial sums travel while the
     * replicated shared expert is computed (split hook), or before it
     * (blocking hook). Either way routed ends as the same full sum and the
     * shared expert is added to it last, so the two give identical bits. */
    int split = m->allreduce && m->allreduce_start;
    if (m->allreduce) {
        int rc = split ? m->allreduce_start(m->allreduce_user, (int)l, sc->routed, S * H)
                       : m->allreduce(m->allreduce_user, (int)l, sc->routed, S * H);
        if (rc) return rc < 0 ? rc : DS4J_ERR_COMM;
    }
    if (split) {
        int poll = 0; /* 0 travelling, 1 complete, < 0 failed */
        mm_polled(m, l, sc, pool, &ly->gate_sh, xf, H, S, sc->g, I, &poll);
        mm_polled(m, l, sc, pool, &ly->up_sh, xf, H, S, sc->u, I, &poll);
        swiglu(sc->g, sc->u, S * I, lim);
        mm_polled(m, l, sc, pool, &ly->down_sh, sc->g, I, S, sc->sh, H, &poll);
        int rc = poll < 0 ? poll : m->allreduce_finish(m->allreduce_user, (int)l);
        if (rc) return rc < 0 ? rc : DS4J_ERR_COMM;
    } else {
        mm(sc, pool, &ly->gate_sh, 0, xf, H, S, sc->g, I, 1);
        mm(sc, pool, &ly->up_sh, 0, xf, H, S, sc->u, I, 1);
        swiglu(sc->g, sc->u, S * I, lim);
        mm(sc, pool, &ly->down_sh, 0, sc->g, I, S, sc->sh, H, 1);
    }
    for (int64_t i = 0; i < S * H; i++) sc->routed[i] += sc->sh[i];
    hc_post(m, sc, sc->routed, S);
    return 0;
}

/* Everything that can be wrong with a step, checked before any state changes. */
static int check_step(const dsv4_model *m, dsv4_scratch *sc, const dsv4_seq *seqs, int64_t n_seqs,
                      int64_t *rows_out) {
    int64_t V = m->hp.n_vocab, rows = 0, heads = 0;
    uint64_t mark = ++sc->steps;
    if (n_seqs <= 0 || !seqs) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "a step needs at least one sequence");
    for (int64_t q = 0; q < n_seqs; q++) {
        const dsv4_seq *sq = &seqs[q];
        const kv_state *st = sq->st;
        if (!st || !sq->tokens || sq->n <= 0)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "sequence %lld of the step has no state or no tokens", (long long)q);
        if (sq->n > sc->max_tokens - rows)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "a step of more than %lld rows (scratch holds %lld)",
                             (long long)(rows + sq->n), (long long)sc->max_tokens);
        rows += sq->n;
        if (st->step_mark == mark)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "sequence %lld of the step repeats an earlier one's state",
                             (long long)q);
        seqs[q].st->step_mark = mark;
        if (st->pos + sq->n > st->n_ctx)
            return ds4j_fail(DS4J_ERR_CONTEXT_FULL, "context full: %lld + %lld tokens exceed n_ctx = %lld",
                             (long long)st->pos, (long long)sq->n, (long long)st->n_ctx);
        if (sc->ctx_cap < st->n_ctx || (st->kv_fp8 && sc->keys_ctx < st->n_ctx))
            return ds4j_fail(DS4J_ERR_STATE, "scratch not reserved for n_ctx %lld", (long long)st->n_ctx);
        for (int64_t s = 0; s < sq->n; s++)
            if (sq->tokens[s] < 0 || sq->tokens[s] >= V)
                return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "token id %d is out of range [0, %lld)", sq->tokens[s],
                                 (long long)V);
        heads += sq->logits_last && !sq->logits_all;
    }
    if (heads > 1 && heads > sc->head_rows)
        return ds4j_fail(DS4J_ERR_STATE, "head buffer holds %lld rows, the step needs %lld (dsv4_scratch_reserve_head)",
                         (long long)sc->head_rows, (long long)heads);
    *rows_out = rows;
    return 0;
}

/* Final norm of every row, then the LM head over the rows whose logits
 * someone reads: all rows of a logits_all sequence (straight into its
 * buffer), the last row of the others (one product over all of them). */
static void head(const dsv4_model *m, dsv4_scratch *sc, ds4j_pool *pool, const dsv4_seq *seqs, int64_t n_seqs,
                 int64_t n) {
    const dsv4_hparams *hp = &m->hp;
    int64_t H = hp->n_embd, hc = hp->hc, HC = hc * H, V = hp->n_vocab;
    for (int64_t s = 0; s < n; s++) ops_rmsnorm(sc->flat + s * HC, sc->X + s * HC, NULL, HC, hp->eps);
    mm(sc, pool, &m->out_hc_fn, 0, sc->flat, HC, n, sc->mix, hc, 1);
    for (int64_t s = 0; s < n; s++) {
        const float *X = sc->X + s * HC, *mix = sc->mix + s * hc;
        float pre[64];
        for (int64_t j = 0; j < hc; j++) pre[j] = ops_sigmoid(mix[j] * m->out_hc_scale[0] + m->out_hc_base[j]) + hp->hc_eps;
        float *h = sc->x + s * H;
        for (int64_t i = 0; i < H; i++) {
            float acc = 0;
            for (int64_t j = 0; j < hc; j++) acc += pre[j] * X[j * H + i];
            h[i] = acc;
        }
        ops_rmsnorm(sc->xa + s * H, h, m->out_norm, H, hp->eps);
    }
    int64_t n_last = 0, r0 = 0;
    for (int64_t q = 0; q < n_seqs; r0 += seqs[q].n, q++) {
        const dsv4_seq *sq = &seqs[q];
        if (sq->logits_all) {
            mm(sc, pool, &m->output, 0, sc->xa + r0 * H, H, sq->n, sq->logits_all, V, 1);
            if (sq->logits_last)
                memcpy(sq->logits_last, sq->logits_all + (sq->n - 1) * V, (size_t)V * sizeof(float));
        } else if (sq->logits_last) {
            /* gather the last rows at the front of x (free by now; k <= row) */
            memcpy(sc->x + n_last * H, sc->xa + (r0 + sq->n - 1) * H, (size_t)H * sizeof(float));
            n_last++;
        }
    }
    if (n_last == 0) return;
    float *out = sc->head;
    if (n_last == 1)
        for (int64_t q = 0; q < n_seqs; q++)
            if (seqs[q].logits_last && !seqs[q].logits_all) out = seqs[q].logits_last;
    mm(sc, pool, &m->output, 0, sc->x, H, n_last, out, V, 1);
    if (n_last == 1) return;
    int64_t k = 0;
    for (int64_t q = 0; q < n_seqs; q++)
        if (seqs[q].logits_last && !seqs[q].logits_all)
            memcpy(seqs[q].logits_last, sc->head + (k++) * V, (size_t)V * sizeof(float));
}

int dsv4_forward_batch(const dsv4_model *m, dsv4_scratch *sc, ds4j_pool *pool, const dsv4_seq *seqs,
                       int64_t n_seqs) {
    const dsv4_hparams *hp = &m->hp;
    int64_t H = hp->n_embd, hc = hp->hc, HC = hc * H, n = 0;
    int rc = check_step(m, sc, seqs, n_seqs, &n);
    if (rc) return rc;
    for (int64_t q = 0, r = 0; q < n_seqs; q++)
        for (int64_t t = 0; t < seqs[q].n; t++, r++) {
            sc->row_tok[r] = seqs[q].tokens[t];
            sc->row_seq[r] = (int32_t)q;
            sc->row_pos[r] = seqs[q].st->pos + t;
        }
    const ds4j_type_traits *et = ds4j_type_get(m->tok_embd.type);
    for (int64_t s = 0; s < n; s++) {
        float *X = sc->X + s * HC;
        et->to_float(m->tok_embd.data + (int64_t)sc->row_tok[s] * m->tok_embd.row_bytes, X, H);
        for (int64_t j = 1; j < hc; j++) memcpy(X + j * H, X, (size_t)H * sizeof(float));
    }
    for (int64_t l = 0; l < hp->n_layer; l++) {
        attention_layer(m, l, seqs, sc, pool, n);
        rc = moe_layer(m, l, sc, pool, n);
        if (rc) {
            char why[512];
            snprintf(why, sizeof why, "%s", ds4j_last_error());
            return ds4j_fail(rc, "expert all-reduce failed at layer %lld: %s", (long long)l, why);
        }
    }
    head(m, sc, pool, seqs, n_seqs, n);
    for (int64_t q = 0; q < n_seqs; q++) seqs[q].st->pos += seqs[q].n;
    return 0;
}

int dsv4_forward(const dsv4_model *m, kv_state *st, dsv4_scratch *sc, ds4j_pool *pool, const int32_t *tokens,
                 int64_t n, float *logits_all, float *logits_last) {
    dsv4_seq one = {.st = st, .tokens = tokens, .n = n, .logits_all = logits_all, .logits_last = logits_last};
    return dsv4_forward_batch(m, sc, pool, &one, 1);
}
