/*
 * model_dsv4.c — DeepSeek V4 model loading: hyper-parameters from GGUF
 * metadata and tensor binding with shape/type validation. The forward pass
 * lives in forward_dsv4.c. Spec: docs/deepseek-v4-model.md sections 1 and 9.
 */
#include "model_dsv4.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "quants.h"

#define ARCH "deepseek4"
#define MAX_DIM ((int64_t)1 << 30)

/* ------------------------------------------------------------ metadata */

/* The ARCH.key entry in *kv (NULL if absent); an error if a required key is missing. */
static int meta_find(const gguf_file *f, const char *key, int required, char *full, size_t cap, const gguf_kv **kv) {
    snprintf(full, cap, ARCH ".%s", key);
    *kv = gguf_find_kv(f, full);
    if (!*kv && required) return ds4j_fail(DS4J_ERR_FORMAT, "missing metadata key '%s'", full);
    return 0;
}

static int meta_int(const gguf_file *f, const char *key, int64_t *out, int required, int64_t def) {
    char full[160];
    const gguf_kv *kv;
    int rc = meta_find(f, key, required, full, sizeof full, &kv);
    if (rc || !kv) {
        *out = def;
        return rc;
    }
    if (!gguf_kv_get_int(kv, out))
        return ds4j_fail(DS4J_ERR_FORMAT, "metadata key '%s' must be an integer (found GGUF type %d)", full,
                         (int)gguf_kv_type(kv));
    return 0;
}

static int meta_dim(const gguf_file *f, const char *key, int64_t *out, int required, int64_t def, int64_t lo) {
    int rc = meta_int(f, key, out, required, def);
    if (rc) return rc;
    if (*out < lo || *out > MAX_DIM)
        return ds4j_fail(DS4J_ERR_FORMAT, "metadata key '" ARCH ".%s' = %lld is out of range [%lld, %lld]", key,
                         (long long)*out, (long long)lo, (long long)MAX_DIM);
    return 0;
}

static int meta_float(const gguf_file *f, const char *key, double *out, int required, double def) {
    char full[160];
    const gguf_kv *kv;
    int rc = meta_find(f, key, required, full, sizeof full, &kv);
    if (rc || !kv) {
        *out = def;
        return rc;
    }
    if (gguf_kv_type(kv) == GGUF_T_BOOL || !gguf_kv_get_float(kv, out))
        return ds4j_fail(DS4J_ERR_FORMAT, "metadata key '%s' must be a number (found GGUF type %d)", full,
                         (int)gguf_kv_type(kv));
    if (!isfinite(*out)) return ds4j_fail(DS4J_ERR_FORMAT, "metadata key '%s' is not finite", full);
    return 0;
}

static void *model_alloc(dsv4_model *m, size_t bytes) {
    if (m->n_allocs == m->cap_allocs) {
        int64_t nc = m->cap_allocs ? m->cap_allocs * 2 : 64;
        void **na = realloc(m->allocs, (size_t)nc * sizeof(void *));
        if (!na) return NULL;
        m->allocs = na;
        m->cap_allocs = nc;
    }
    void *p = ds4j_alloc(bytes);
    if (p) m->allocs[m->n_allocs++] = p;
    return p;
}

static int read_hparams(dsv4_model *m, const gguf_file *f) {
    dsv4_hparams *hp = &m->hp;
    int rc;
    const gguf_kv *arch = gguf_find_kv(f, "general.architecture");
    gguf_string as;
    if (!arch || !gguf_kv_get_str(arch, &as))
        return ds4j_fail(DS4J_ERR_FORMAT, "missing metadata key 'general.architecture'");
    if (as.len != strlen(ARCH) || memcmp(as.ptr, ARCH, as.len) != 0)
        return ds4j_fail(DS4J_ERR_FORMAT, "unsupported architecture '%.*s' (expected '" ARCH "')",
                         (int)(as.len > 64 ? 64 : as.len), as.ptr);
#define DIM(field, key, lo) do { if ((rc = meta_dim(f, key, &hp->field, 1, 0, lo))) return rc; } while (0)
#define DIMOPT(field, key, def, lo) do { if ((rc = meta_dim(f, key, &hp->field, 0, def, lo))) return rc; } while (0)
    DIM(n_embd, "embedding_length", 1);
    DIM(n_layer, "block_count", 1);
    DIM(n_head, "attention.head_count", 1);
    DIMOPT(n_head_kv, "attention.head_count_kv", 1, 1);
    DIM(head_dim, "attention.key_length", 2);
    DIM(n_rot, "rope.dimension_count", 2);
    DIM(q_lora, "attention.q_lora_rank", 1);
    DIM(o_groups, "attention.output_group_count", 1);
    DIM(o_lora, "attention.output_lora_rank", 1);
    DIM(n_expert, "expert_count", 1);
    DIM(n_expert_used, "expert_used_count", 1);
    DIM(n_ff_exp, "expert_feed_forward_length", 1);
    DIMOPT(n_shared, "expert_shared_count", 1, 0);
    DIMOPT(n_hash, "hash_layer_count", 0, 0);
    DIM(window, "attention.sliding_window", 1);
    /* window and indexer top-k size per-query buffers (window + n_ctx/ratio
     * rows per head): keep them far from where those products could wrap. */
    if (hp->window > ((int64_t)1 << 20))
        return ds4j_fail(DS4J_ERR_FORMAT, "attention.sliding_window = %lld is implausibly large (max %d)",
                         (long long)hp->window, 1 << 20);
    DIM(hc, "hyper_connection.count", 1);
    DIM(sinkhorn_iters, "hyper_connection.sinkhorn_iterations", 1);
    DIMOPT(ctx_train, "context_length", 0, 0);
    int64_t vlen;
    if ((rc = meta_dim(f, "attention.value_length", &vlen, 0, hp->head_dim, 1))) return rc;
    if (vlen != hp->head_dim)
        return ds4j_fail(DS4J_ERR_FORMAT, ARCH ".attention.value_length (%lld) must equal key_length (%lld)",
                         (long long)vlen, (long long)hp->head_dim);
    if (hp->n_head_kv != 1)
        return ds4j_fail(DS4J_ERR_FORMAT, ARCH ".attention.head_count_kv must be 1 (found %lld)", (long long)hp->n_head_kv);
    int64_t g0, g1;
    if ((rc = meta_int(f, "expert_group_count", &g0, 0, 0)) || (rc = meta_int(f, "expert_group_used_count", &g1, 0, 0)))
        return rc;
    if (g0 > 1 || g1 > 1)
        return ds4j_fail(DS4J_ERR_FORMAT, "expert groups are not supported (" ARCH ".expert_group_count = %lld)", (long long)g0);
    const gguf_kv *wn = gguf_find_kv(f, ARCH ".expert_weights_norm");
    int64_t wnv;
    if (wn && gguf_kv_get_int(wn, &wnv) && wnv == 0)
        return ds4j_fail(DS4J_ERR_FORMAT, ARCH ".expert_weights_norm = false is not supported");

    double d;
    if ((rc = meta_float(f, "hyper_connection.epsilon", &d, 1, 0))) return rc;
    hp->hc_eps = (float)d;
    if ((rc = meta_float(f, "attention.layer_norm_rms_epsilon", &d, 1, 0))) return rc;
    hp->eps = (float)d;
    if ((rc = meta_float(f, "rope.freq_base", &hp->theta_main, 1, 0))) return rc;
    if ((rc = meta_float(f, "expert_weights_scale", &d, 0, 1.0))) return rc;
    hp->rsf = (float)d;

    /* vocab: the key, or the embedding's row count */
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if ((rc = meta_dim(f, "vocab_size", &hp->n_vocab, 0, te ? te->ne[1] : 0, 1))) return rc;

    int64_t L = hp->n_layer;
    if (hp->n_head % hp->o_groups)
        return ds4j_fail(DS4J_ERR_FORMAT, "head_count %lld is not a multiple of output_group_count %lld",
                         (long long)hp->n_head, (long long)hp->o_groups);
    if (hp->n_rot % 2 || hp->n_rot > hp->head_dim || hp->n_rot / 2 > OPS_ROPE_MAX_PAIRS)
        return ds4j_fail(DS4J_ERR_FORMAT, "rope.dimension_count %lld must be even and <= key_length %lld",
                         (long long)hp->n_rot, (long long)hp->head_dim);
    if (hp->n_expert_used > hp->n_expert)
        return ds4j_fail(DS4J_ERR_FORMAT, "expert_used_count %lld exceeds expert_count %lld",
                         (long long)hp->n_expert_used, (long long)hp->n_expert);
    if (hp->n_hash > L)
        return ds4j_fail(DS4J_ERR_FORMAT, "hash_layer_count %lld exceeds block_count %lld", (long long)hp->n_hash, (long long)L);
    if (hp->hc > 64) return ds4j_fail(DS4J_ERR_FORMAT, "hyper_connection.count %lld is too large", (long long)hp->hc);
    if (hp->sinkhorn_iters > 1000)
        return ds4j_fail(DS4J_ERR_FORMAT, "sinkhorn_iterations %lld is too large", (long long)hp->sinkhorn_iters);

    /* Every layer has a score of tensors, so a block_count beyond the tensor
     * count is corrupt; refuse it before sizing per-layer arrays by it (a
     * fuzzed 167772165 made this allocate 2 GB before failing). */
    if (L > gguf_tensor_count(f))
        return ds4j_fail(DS4J_ERR_FORMAT, ARCH ".block_count = %lld is larger than the file's %lld tensors", (long long)L,
                         (long long)gguf_tensor_count(f));
    const gguf_kv *cr = gguf_find_kv(f, ARCH ".attention.compress_ratios");
    if (!cr) return ds4j_fail(DS4J_ERR_FORMAT, "missing metadata key '" ARCH ".attention.compress_ratios'");
    if (gguf_kv_type(cr) != GGUF_T_ARRAY || gguf_kv_arr_len(cr) < (uint64_t)L)
        return ds4j_fail(DS4J_ERR_FORMAT, ARCH ".attention.compress_ratios must be an integer array of >= %lld entries", (long long)L);

    hp->ratio = model_alloc(m, (size_t)L * sizeof(int32_t));
    hp->kind = model_alloc(m, (size_t)L * sizeof(int32_t));
    hp->swiglu_lim = model_alloc(m, (size_t)L * sizeof(float));
    if (!hp->ratio || !hp->kind || !hp->swiglu_lim) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
    int any_comp = 0;
    hp->csa_rate = 0;
    for (int64_t l = 0; l < L; l++) {
        int64_t r;
        if (!gguf_kv_arr_int(cr, (uint64_t)l, &r))
            return ds4j_fail(DS4J_ERR_FORMAT, ARCH ".attention.compress_ratios must hold integers");
        if (r < 0 || r > MAX_DIM)
            return ds4j_fail(DS4J_ERR_FORMAT, ARCH ".attention.compress_ratios[%lld] = %lld is invalid", (long long)l, (long long)r);
        hp->ratio[l] = (int32_t)r;
        if (r == 0) { hp->kind[l] = DSV4_SWA; continue; }
        any_comp = 1;
        char name[96];
        snprintf(name, sizeof name, "blk.%lld.indexer.attn_q_b.weight", (long long)l);
        if (gguf_find_tensor(f, name)) {
            hp->kind[l] = DSV4_CSA;
            if (hp->csa_rate && hp->csa_rate != r)
                return ds4j_fail(DS4J_ERR_FORMAT, "CSA layers have different compress ratios (%lld and %lld)",
                                 (long long)hp->csa_rate, (long long)r);
            hp->csa_rate = r;
        } else {
            hp->kind[l] = DSV4_HCA;
        }
    }
    const gguf_kv *sw = gguf_find_kv(f, ARCH ".swiglu_clamp_exp");
    if (!sw) return ds4j_fail(DS4J_ERR_FORMAT, "missing metadata key '" ARCH ".swiglu_clamp_exp'");
    for (int64_t l = 0; l < L; l++) {
        double v;
        if (gguf_kv_type(sw) == GGUF_T_ARRAY) {
            if (gguf_kv_arr_len(sw) < (uint64_t)L || !gguf_kv_arr_float(sw, (uint64_t)l, &v))
                return ds4j_fail(DS4J_ERR_FORMAT, ARCH ".swiglu_clamp_exp must be a float array of >= %lld entries", (long long)L);
        } else if (!gguf_kv_get_float(sw, &v)) {
            return ds4j_fail(DS4J_ERR_FORMAT, ARCH ".swiglu_clamp_exp must be a float array");
        }
        hp->swiglu_lim[l] = v > 0 ? (float)v : INFINITY;
    }
    if (hp->csa_rate) {
        DIM(idx_heads, "attention.indexer.head_count", 1);
        DIM(idx_dim, "attention.indexer.key_length", 2);
        DIM(idx_topk, "attention.indexer.top_k", 1);
        if (hp->idx_topk > ((int64_t)1 << 20))
            return ds4j_fail(DS4J_ERR_FORMAT, "attention.indexer.top_k = %lld is implausibly large (max %d)",
                             (long long)hp->idx_topk, 1 << 20);
        if (hp->n_rot > hp->idx_dim)
            return ds4j_fail(DS4J_ERR_FORMAT, "rope.dimension_count %lld exceeds indexer key_length %lld",
                             (long long)hp->n_rot, (long long)hp->idx_dim);
    }
    if (ops_rope_init(&m->rope_main, (int)hp->n_rot, hp->theta_main))
        return ds4j_fail(DS4J_ERR_FORMAT, "invalid rope.freq_base %g", hp->theta_main);
    if (any_comp) {
        if ((rc = meta_float(f, "attention.compress_rope_freq_base", &hp->theta_c, 1, 0))) return rc;
        if ((rc = meta_float(f, "rope.scaling.factor", &hp->yarn_factor, 1, 0))) return rc;
        if ((rc = meta_float(f, "rope.scaling.original_context_length", &hp->yarn_orig, 1, 0))) return rc;
        if ((rc = meta_float(f, "rope.scaling.yarn_beta_fast", &hp->yarn_bf, 0, 32.0))) return rc;
        if ((rc = meta_float(f, "rope.scaling.yarn_beta_slow", &hp->yarn_bs, 0, 1.0))) return rc;
        if (ops_rope_init_yarn(&m->rope_comp, (int)hp->n_rot, hp->theta_c, hp->yarn_factor, hp->yarn_orig,
                               hp->yarn_bf, hp->yarn_bs))
            return ds4j_fail(DS4J_ERR_FORMAT, "invalid YaRN parameters (base %g, factor %g, original context %g)",
                             hp->theta_c, hp->yarn_factor, hp->yarn_orig);
    } else {
        m->rope_comp = m->rope_main;
    }
#undef DIM
#undef DIMOPT
    return 0;
}

/* ------------------------------------------------------------- tensors */

static void fmt_ne(char *buf, size_t cap, const int64_t *ne, int nd) {
    size_t o = 0;
    o += snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < nd && o < cap; i++) o += snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static int check_shape(const gguf_tensor *t, const char *name, const int64_t *ne, int nd) {
    int ok = 1;
    for (int i = 0; i < GGUF_MAX_DIMS; i++) {
        int64_t want = i < nd ? ne[i] : 1;
        if (t->ne[i] != want) ok = 0;
    }
    if (!ok) {
        char a[96], b[96];
        fmt_ne(a, sizeof a, ne, nd);
        fmt_ne(b, sizeof b, t->ne, (int)(t->n_dims ? t->n_dims : 1));
        return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': expected shape %s, found %s", name, a, b);
    }
    return 0;
}

static int bind_mat(dsv4_model *m, const gguf_file *f, dsv4_mat *w, const char *name, int64_t n_in, int64_t n_out,
                    int64_t n_mat) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return ds4j_fail(DS4J_ERR_FORMAT, "missing tensor '%s'", name);
    int64_t ne[3] = {n_in, n_out, n_mat};
    int rc = check_shape(t, name, ne, n_mat > 1 ? 3 : 2);
    if (rc) return rc;
    const ds4j_type_traits *tr = ds4j_type_get(t->type);
    if (!tr || !tr->supported || !tr->vec_dot || !tr->to_float)
        return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': unsupported type %s (%d)", name, tr ? tr->name : "unknown",
                         (int)t->type);
    const ds4j_type_traits *at = ds4j_type_get(tr->act_type);
    if (!at || (tr->act_type != DS4J_TYPE_F32 && !at->from_float))
        return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': no activation format for type %s", name, tr->name);
    if (n_in % tr->block_size || n_in % at->block_size)
        return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': row length %lld is not a multiple of the %s block size",
                         name, (long long)n_in, tr->name);
    int64_t rb = ds4j_row_size(t->type, n_in), tot;
    if (rb <= 0 || !ds4j_mul_ok(rb, n_out, &tot) || !ds4j_mul_ok(tot, n_mat, &tot) || (uint64_t)tot > t->nbytes)
        return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': data size %llu does not match its shape", name,
                         (unsigned long long)t->nbytes);
    w->data = t->data;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->n_mat = n_mat;
    w->row_bytes = rb;
    w->name = t->name;
    (void)m;
    return 0;
}

/* Small tensors are converted to float32 once (any float/quant type). */
static int bind_vec(dsv4_model *m, const gguf_file *f, float **out, const char *name, int64_t n0, int64_t n1,
                    int optional) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        if (optional) { *out = NULL; return 0; }
        return ds4j_fail(DS4J_ERR_FORMAT, "missing tensor '%s'", name);
    }
    int64_t ne[2] = {n0, n1};
    int rc = check_shape(t, name, ne, n1 > 1 ? 2 : 1);
    if (rc) return rc;
    const ds4j_type_traits *tr = ds4j_type_get(t->type);
    if (!tr || !tr->to_float || n0 % tr->block_size)
        return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': unsupported type %s", name, tr ? tr->name : "unknown");
    int64_t rb = ds4j_row_size(t->type, n0);
    if (rb <= 0 || (uint64_t)(rb * n1) > t->nbytes)
        return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': data size does not match its shape", name);
    float *v = model_alloc(m, (size_t)(n0 * n1) * sizeof(float));
    if (!v) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
    for (int64_t r = 0; r < n1; r++) tr->to_float((const uint8_t *)t->data + r * rb, v + r * n0, n0);
    *out = v;
    return 0;
}

static int bind_tid2eid(dsv4_model *m, const gguf_file *f, dsv4_layer *ly, const char *name) {
    const dsv4_hparams *hp = &m->hp;
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return ds4j_fail(DS4J_ERR_FORMAT, "missing tensor '%s' (required on hash-routed layers)", name);
    int64_t ne[2] = {hp->n_expert_used, hp->n_vocab};
    int rc = check_shape(t, name, ne, 2);
    if (rc) return rc;
    int64_t n = hp->n_expert_used * hp->n_vocab;
    int es = t->type == DS4J_TYPE_I32 ? 4 : t->type == DS4J_TYPE_I64 ? 8 : 0;
    if (!es) return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': type must be I32 or I64 (found %d)", name, (int)t->type);
    if (t->nbytes < (uint64_t)(n * es)) return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': data too short", name);
    int32_t *v = model_alloc(m, (size_t)n * sizeof(int32_t));
    if (!v) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        int64_t e;
        if (es == 4) { int32_t x; memcpy(&x, (const uint8_t *)t->data + i * 4, 4); e = x; }
        else memcpy(&e, (const uint8_t *)t->data + i * 8, 8);
        if (e < 0 || e >= hp->n_expert)
            return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s': expert id %lld at index %lld is out of range [0, %lld)",
                             name, (long long)e, (long long)i, (long long)hp->n_expert);
        v[i] = (int32_t)e;
    }
    ly->tid2eid = v;
    return 0;
}

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

static int bind_hc(dsv4_model *m, const gguf_file *f, dsv4_hc_w *w, int64_t l, const char *site) {
    const dsv4_hparams *hp = &m->hp;
    char n[128];
    int64_t mx = (2 + hp->hc) * hp->hc;
    snprintf(n, sizeof n, "blk.%lld.hc_%s_fn.weight", (long long)l, site);
    TRY(bind_mat(m, f, &w->fn, n, hp->hc * hp->n_embd, mx, 1));
    snprintf(n, sizeof n, "blk.%lld.hc_%s_base.weight", (long long)l, site);
    TRY(bind_vec(m, f, &w->base, n, mx, 1, 0));
    snprintf(n, sizeof n, "blk.%lld.hc_%s_scale.weight", (long long)l, site);
    TRY(bind_vec(m, f, &w->scale, n, 3, 1, 0));
    return 0;
}

static int bind_comp(dsv4_model *m, const gguf_file *f, dsv4_comp_w *w, int64_t l, const char *pfx, int64_t r,
                     int64_t dout, int overlap) {
    const dsv4_hparams *hp = &m->hp;
    char n[128];
    int64_t cw = overlap ? 2 * dout : dout;
    snprintf(n, sizeof n, "blk.%lld.%s_ape.weight", (long long)l, pfx);
    TRY(bind_vec(m, f, &w->ape, n, cw, r, 0));
    snprintf(n, sizeof n, "blk.%lld.%s_kv.weight", (long long)l, pfx);
    TRY(bind_mat(m, f, &w->wkv, n, hp->n_embd, cw, 1));
    snprintf(n, sizeof n, "blk.%lld.%s_gate.weight", (long long)l, pfx);
    TRY(bind_mat(m, f, &w->wgate, n, hp->n_embd, cw, 1));
    snprintf(n, sizeof n, "blk.%lld.%s_norm.weight", (long long)l, pfx);
    TRY(bind_vec(m, f, &w->norm, n, dout, 1, 0));
    return 0;
}

/* The stacked expert count first, so that a slice whose tensors disagree
 * with its metadata gets a message about the slice, not a bare shape. */
static int check_exps(const dsv4_model *m, const gguf_file *f, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return ds4j_fail(DS4J_ERR_FORMAT, "missing tensor '%s'", name);
    int64_t want = m->slice_hi - m->slice_lo;
    if (t->ne[2] == want) return 0;
    if (m->sliced)
        return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s' holds %lld experts but the file's expert slice %lld:%lld ("
                         DSV4_KEY_SLICE_START "/end) needs %lld", name, (long long)t->ne[2], (long long)m->slice_lo,
                         (long long)m->slice_hi, (long long)want);
    return ds4j_fail(DS4J_ERR_FORMAT, "tensor '%s' holds %lld experts but " ARCH ".expert_count is %lld (a partial "
                     "file needs " DSV4_KEY_SLICE_START "/end metadata)", name, (long long)t->ne[2], (long long)want);
}

/* The ds4j.expert_slice.* pair written by `ds4j-tool slice`: both or
 * neither, plain integers, 0 <= start < end <= expert_count. */
int dsv4_read_slice(const gguf_file *f, int64_t n_expert, int64_t *lo, int64_t *hi, int *sliced) {
    const gguf_kv *ks = gguf_find_kv(f, DSV4_KEY_SLICE_START), *ke = gguf_find_kv(f, DSV4_KEY_SLICE_END);
    *lo = 0;
    *hi = n_expert;
    *sliced = 0;
    if (!ks && !ke) return 0;
    if (!ks || !ke)
        return ds4j_fail(DS4J_ERR_FORMAT, "metadata key '%s' is present without '%s'",
                         ks ? DSV4_KEY_SLICE_START : DSV4_KEY_SLICE_END, ks ? DSV4_KEY_SLICE_END : DSV4_KEY_SLICE_START);
    uint64_t a, b;
    if (gguf_kv_type(ks) == GGUF_T_BOOL || gguf_kv_type(ke) == GGUF_T_BOOL || !gguf_kv_get_uint(ks, &a) ||
        !gguf_kv_get_uint(ke, &b))
        return ds4j_fail(DS4J_ERR_FORMAT, "metadata keys '" DSV4_KEY_SLICE_START "' and '" DSV4_KEY_SLICE_END
                         "' must be non-negative integers");
    if (a >= b || b > (uint64_t)n_expert)
        return ds4j_fail(DS4J_ERR_FORMAT, "expert slice %llu:%llu (" DSV4_KEY_SLICE_START "/end) is invalid for %lld "
                         "experts: needs 0 <= start < end <= " ARCH ".expert_count", (unsigned long long)a,
                         (unsigned long long)b, (long long)n_expert);
    *lo = (int64_t)a;
    *hi = (int64_t)b;
    *sliced = 1;
    return 0;
}

static int bind_layer(dsv4_model *m, const gguf_file *f, int64_t l) {
    const dsv4_hparams *hp = &m->hp;
    dsv4_layer *ly = &m->layers[l];
    ly->kind = hp->kind[l];
    ly->ratio = hp->ratio[l];
    int64_t H = hp->n_embd, D = hp->head_dim, nh = hp->n_head, G = hp->o_groups;
    char n[128];
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%lld." suffix, (long long)l), n)
    TRY(bind_hc(m, f, &ly->hc_attn, l, "attn"));
    TRY(bind_hc(m, f, &ly->hc_ffn, l, "ffn"));
    TRY(bind_vec(m, f, &ly->attn_norm, NAME("attn_norm.weight"), H, 1, 0));
    TRY(bind_vec(m, f, &ly->ffn_norm, NAME("ffn_norm.weight"), H, 1, 0));
    TRY(bind_mat(m, f, &ly->wq_a, NAME("attn_q_a.weight"), H, hp->q_lora, 1));
    TRY(bind_vec(m, f, &ly->q_norm, NAME("attn_q_a_norm.weight"), hp->q_lora, 1, 0));
    TRY(bind_mat(m, f, &ly->wq_b, NAME("attn_q_b.weight"), hp->q_lora, nh * D, 1));
    TRY(bind_mat(m, f, &ly->wkv, NAME("attn_kv.weight"), H, D, 1));
    TRY(bind_vec(m, f, &ly->kv_norm, NAME("attn_kv_a_norm.weight"), D, 1, 0));
    TRY(bind_vec(m, f, &ly->sinks, NAME("attn_sinks.weight"), nh, 1, 0));
    TRY(bind_mat(m, f, &ly->wo_a, NAME("attn_output_a.weight"), nh * D / G, G * hp->o_lora, 1));
    TRY(bind_mat(m, f, &ly->wo_b, NAME("attn_output_b.weight"), G * hp->o_lora, H, 1));
    if (ly->kind != DSV4_SWA) {
        TRY(bind_comp(m, f, &ly->comp, l, "attn_compressor", ly->ratio, D, ly->kind == DSV4_CSA));
    } else if (gguf_find_tensor(f, NAME("attn_compressor_kv.weight"))) {
        return ds4j_fail(DS4J_ERR_FORMAT, "layer %lld has compress ratio 0 but carries compressor tensors", (long long)l);
    }
    if (ly->kind == DSV4_CSA) {
        TRY(bind_mat(m, f, &ly->idx_wq_b, NAME("indexer.attn_q_b.weight"), hp->q_lora, hp->idx_heads * hp->idx_dim, 1));
        TRY(bind_mat(m, f, &ly->idx_proj, NAME("indexer.proj.weight"), H, hp->idx_heads, 1));
        TRY(bind_comp(m, f, &ly->idx_comp, l, "indexer_compressor", ly->ratio, hp->idx_dim, 1));
    }
    TRY(bind_mat(m, f, &ly->gate_inp, NAME("ffn_gate_inp.weight"), H, hp->n_expert, 1));
    TRY(bind_vec(m, f, &ly->exp_bias, NAME("exp_probs_b.bias"), hp->n_expert, 1, 1));
    if (l < hp->n_hash) TRY(bind_tid2eid(m, f, ly, NAME("ffn_gate_tid2eid.weight")));
    int64_t E = m->slice_hi - m->slice_lo, I = hp->n_ff_exp;
    TRY(check_exps(m, f, NAME("ffn_gate_exps.weight")));
    TRY(bind_mat(m, f, &ly->gate_exps, n, H, I, E));
    TRY(check_exps(m, f, NAME("ffn_up_exps.weight")));
    TRY(bind_mat(m, f, &ly->up_exps, n, H, I, E));
    TRY(check_exps(m, f, NAME("ffn_down_exps.weight")));
    TRY(bind_mat(m, f, &ly->down_exps, n, I, H, E));
    TRY(bind_mat(m, f, &ly->gate_sh, NAME("ffn_gate_shexp.weight"), H, I, 1));
    TRY(bind_mat(m, f, &ly->up_sh, NAME("ffn_up_shexp.weight"), H, I, 1));
    TRY(bind_mat(m, f, &ly->down_sh, NAME("ffn_down_shexp.weight"), I, H, 1));
#undef NAME
    return 0;
}

int dsv4_model_load(dsv4_model **out, const gguf_file *f) {
    *out = NULL;
    ds4j_quants_init();
    dsv4_model *m = calloc(1, sizeof *m);
    if (!m) return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
    m->gguf = f;
    int rc = read_hparams(m, f);
    if (rc) goto fail;
    if ((rc = dsv4_read_slice(f, m->hp.n_expert, &m->slice_lo, &m->slice_hi, &m->sliced))) goto fail;
    const dsv4_hparams *hp = &m->hp;
    int64_t H = hp->n_embd, hc = hp->hc;
    if ((rc = bind_mat(m, f, &m->tok_embd, "token_embd.weight", H, hp->n_vocab, 1))) goto fail;
    if ((rc = bind_vec(m, f, &m->out_norm, "output_norm.weight", H, 1, 0))) goto fail;
    if ((rc = bind_mat(m, f, &m->output, "output.weight", H, hp->n_vocab, 1))) goto fail;
    if ((rc = bind_mat(m, f, &m->out_hc_fn, "output_hc_fn.weight", hc * H, hc, 1))) goto fail;
    if ((rc = bind_vec(m, f, &m->out_hc_base, "output_hc_base.weight", hc, 1, 0))) goto fail;
    if ((rc = bind_vec(m, f, &m->out_hc_scale, "output_hc_scale.weight", 1, 1, 0))) goto fail;
    m->layers = calloc((size_t)hp->n_layer, sizeof(dsv4_layer));
    if (!m->layers) { rc = ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory"); goto fail; }
    for (int64_t l = 0; l < hp->n_layer; l++)
        if ((rc = bind_layer(m, f, l))) goto fail;
    m->expert_lo = m->slice_lo;
    m->expert_hi = m->slice_hi;
    /* parameter and byte counts */
    int64_t exp_bytes = 0, embd_skip = 0;
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        int64_t ne = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) ne *= t->ne[d];
        m->n_params += ne;
        m->total_bytes += (int64_t)t->nbytes;
        if (strstr(t->name, "_exps.weight")) exp_bytes += (int64_t)t->nbytes;
        /* a token reads one row of the embedding table, not all of it */
        if (!strcmp(t->name, "token_embd.weight") && hp->n_vocab > 0)
            embd_skip = (int64_t)t->nbytes - (int64_t)t->nbytes / hp->n_vocab;
    }
    /* per stored expert, so a slice reports the same figure as the full file */
    m->expert_bytes = exp_bytes;
    m->active_bytes = m->total_bytes - exp_bytes - embd_skip +
                      (int64_t)((double)exp_bytes * hp->n_expert_used / (double)(m->slice_hi - m->slice_lo));
    *out = m;
    return 0;
fail:
    dsv4_model_free(m);
    return rc;
}

void dsv4_model_free(dsv4_model *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n_allocs; i++) ds4j_free(m->allocs[i]);
    free(m->allocs);
    free(m->layers);
    free(m);
}

int dsv4_model_set_expert_range(dsv4_model *m, int64_t lo, int64_t hi) {
    if (lo < 0 || hi > m->hp.n_expert || lo >= hi)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "expert range %lld:%lld is invalid for %lld experts",
                         (long long)lo, (long long)hi, (long long)m->hp.n_expert);
    if (dsv4_model_partial(m) && (lo != m->slice_lo || hi != m->slice_hi))
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "expert_range %lld:%lld does not match the file's expert slice "
                         "%lld:%lld: a sliced file serves exactly the experts it holds", (long long)lo, (long long)hi,
                         (long long)m->slice_lo, (long long)m->slice_hi);
    if (m->require_compact && (lo != m->slice_lo || hi != m->slice_hi))
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "expert_compact=1: this rank owns experts %lld:%lld but the file "
                         "holds experts %lld:%lld; make this rank's file with `ds4j-tool slice --model FULL.gguf "
                         "--experts %lld:%lld --out PART.gguf`", (long long)lo, (long long)hi, (long long)m->slice_lo,
                         (long long)m->slice_hi, (long long)lo, (long long)hi);
    m->expert_lo = lo;
    m->expert_hi = hi;
    return 0;
}

void dsv4_model_set_allreduce(dsv4_model *m, dsv4_allreduce_fn fn, void *user) {
    m->allreduce = fn;
    m->allreduce_user = user;
}

void dsv4_model_set_allreduce_split(dsv4_model *m, dsv4_allreduce_fn start, dsv4_allreduce_step_fn poll,
                                    dsv4_allreduce_step_fn finish) {
    int ok = start && poll && finish;
    m->allreduce_start = ok ? start : NULL;
    m->allreduce_poll = ok ? poll : NULL;
    m->allreduce_finish = ok ? finish : NULL;
}
