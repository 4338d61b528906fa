/*
 * convert.c — HF DeepSeek V4 checkpoint -> deepseek4 GGUF.
 *
 * Owns: config.json parsing into ds4j_hparams, the GGUF tensor plan (names,
 * shapes and the type policy, shared with synth.c), the metadata and
 * tokenizer keys, source-name resolution for both the official DeepSeek and
 * the transformers save_pretrained naming, dequantisation of FP8/FP4 sources
 * and streaming of each GGUF tensor through the gguf writer's fill callback
 * (one tensor, or one layer's expert stack, in memory at a time).
 */
#include "convert.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "quants.h"
#include "safetensors.h"

/* ------------------------------------------------------------------ */
/* small helpers                                                       */


static void logf_(ds4j_log_fn log, void *user, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logf_(ds4j_log_fn log, void *user, const char *fmt, ...) {
    if (!log) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log(user, buf);
}

/* Block geometry of the types the converter writes (ggml values); kept here
 * so that planning does not depend on which kernels exist. */
static int type_geom(int32_t t, int *blk, int *bytes) {
    switch (t) {
    case DS4J_TYPE_F32: *blk = 1; *bytes = 4; return 0;
    case DS4J_TYPE_F16: *blk = 1; *bytes = 2; return 0;
    case DS4J_TYPE_BF16: *blk = 1; *bytes = 2; return 0;
    case DS4J_TYPE_I32: *blk = 1; *bytes = 4; return 0;
    case DS4J_TYPE_Q8_0: *blk = 32; *bytes = 34; return 0;
    case DS4J_TYPE_Q4_K: *blk = 256; *bytes = 144; return 0;
    case DS4J_TYPE_Q2_K: *blk = 256; *bytes = 84; return 0;
    case DS4J_TYPE_IQ2_XXS: *blk = 256; *bytes = 66; return 0;
    default: return -1;
    }
}

static const char *type_name(int32_t t) {
    switch (t) {
    case DS4J_TYPE_F32: return "f32";
    case DS4J_TYPE_F16: return "f16";
    case DS4J_TYPE_BF16: return "bf16";
    case DS4J_TYPE_I32: return "i32";
    case DS4J_TYPE_Q8_0: return "q8_0";
    case DS4J_TYPE_Q4_K: return "q4_k";
    case DS4J_TYPE_Q2_K: return "q2_k";
    case DS4J_TYPE_IQ2_XXS: return "iq2_xxs";
    default: return "?";
    }
}

int32_t ds4j_parse_type(const char *s) {
    static const struct { const char *n; int32_t t; } T[] = {
        {"f32", DS4J_TYPE_F32}, {"f16", DS4J_TYPE_F16}, {"bf16", DS4J_TYPE_BF16}, {"q8_0", DS4J_TYPE_Q8_0},
        {"q4_k", DS4J_TYPE_Q4_K}, {"q2_k", DS4J_TYPE_Q2_K}, {"iq2_xxs", DS4J_TYPE_IQ2_XXS},
    };
    if (!s) return -1;
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (!strcasecmp(s, T[i].n)) return T[i].t;
    return -1;
}

static bool is_quantized(int32_t t) {
    return t == DS4J_TYPE_Q8_0 || t == DS4J_TYPE_Q4_K || t == DS4J_TYPE_Q2_K || t == DS4J_TYPE_IQ2_XXS;
}

/* ------------------------------------------------------------------ */
/* config.json                                                         */

static int cfg_u32(const json_value *c, const char *k, uint32_t *out, bool required, uint32_t dflt, char *err,
                   size_t cap) {
    const json_value *v = json_get(c, k);
    if (!v || v->type == JSON_NULL) {
        if (required) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: missing \"%s\"", k);
        *out = dflt;
        return 0;
    }
    int64_t x;
    if (!json_as_int(v, &x) || x < 0 || x > UINT32_MAX)
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: \"%s\" must be a non-negative integer", k);
    *out = (uint32_t)x;
    return 0;
}

static int cfg_f32(const json_value *c, const char *k, float *out, float dflt, char *err, size_t cap) {
    const json_value *v = json_get(c, k);
    if (!v || v->type == JSON_NULL) { *out = dflt; return 0; }
    double d;
    if (!json_as_num(v, &d) || !isfinite(d)) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: \"%s\" must be a number", k);
    *out = (float)d;
    return 0;
}

int ds4j_hparams_from_config(const json_value *c, ds4j_hparams *hp, char *err, size_t cap) {
    memset(hp, 0, sizeof *hp);
    if (!c || c->type != JSON_OBJECT) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: not a JSON object");
    int rc = 0;
#define U(k, f, req, d) if ((rc = cfg_u32(c, k, &hp->f, req, d, err, cap))) return rc
#define F(k, f, d) if ((rc = cfg_f32(c, k, &hp->f, d, err, cap))) return rc
    U("hidden_size", n_embd, true, 0);
    U("num_hidden_layers", n_layer, true, 0);
    U("vocab_size", n_vocab, true, 0);
    U("num_attention_heads", n_head, true, 0);
    U("num_key_value_heads", n_head_kv, false, 1);
    U("head_dim", head_dim, true, 0);
    U("q_lora_rank", q_lora, true, 0);
    U("o_groups", o_groups, true, 0);
    U("o_lora_rank", o_lora, true, 0);
    U("n_routed_experts", n_expert, true, 0);
    U("num_experts_per_tok", n_expert_used, true, 0);
    U("moe_intermediate_size", n_ff_exp, true, 0);
    U("n_shared_experts", n_shared, false, 1);
    U("sliding_window", window, false, 128);
    U("index_n_heads", idx_heads, false, 0);
    U("index_head_dim", idx_dim, false, 0);
    U("index_topk", idx_topk, false, 0);
    U("hc_mult", hc, true, 0);
    U("hc_sinkhorn_iters", sinkhorn_iters, false, 20);
    U("bos_token_id", bos_id, false, 0);
    U("eos_token_id", eos_id, false, 1);
    F("hc_eps", hc_eps, 1e-6f);
    F("rms_norm_eps", rms_eps, 1e-6f);
    F("routed_scaling_factor", routed_scale, 1.5f);
    F("swiglu_limit", swiglu_limit, 10.0f);
    {
        uint32_t mp32;
        int64_t mp;
        if (json_get_int(c, "max_position_embeddings", &mp) && mp > 0) hp->max_pos = (uint64_t)mp;
        else if (json_get(c, "max_position_embeddings")) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: bad max_position_embeddings");
        else hp->max_pos = 1048576;
        (void)mp32;
    }
    if (!hp->n_embd || !hp->n_layer || !hp->n_vocab || !hp->n_head || !hp->head_dim || !hp->q_lora || !hp->o_groups ||
        !hp->o_lora || !hp->n_expert || !hp->n_expert_used || !hp->n_ff_exp || !hp->hc)
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: a size is zero");
    if (hp->n_layer > DS4J_MAX_LAYERS) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: %u layers (max %d)", hp->n_layer, DS4J_MAX_LAYERS);
    if (hp->n_expert_used > hp->n_expert) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: num_experts_per_tok > n_routed_experts");
    if ((hp->n_head * (uint64_t)hp->head_dim) % hp->o_groups) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: heads*head_dim not divisible by o_groups");

    /* rotary dims */
    {
        const json_value *v = json_get(c, "qk_rope_head_dim");
        int64_t x;
        double prf;
        if (v && v->type != JSON_NULL) {
            if (!json_as_int(v, &x) || x <= 0 || x > hp->head_dim) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: bad qk_rope_head_dim");
            hp->rope_dim = (uint32_t)x;
        } else if (json_get_num(c, "partial_rotary_factor", &prf) && prf > 0 && prf <= 1) {
            hp->rope_dim = (uint32_t)(hp->head_dim * prf);
        } else {
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: neither qk_rope_head_dim nor partial_rotary_factor");
        }
    }

    /* attention schedule */
    const json_value *lt = json_get(c, "layer_types");
    const json_value *cr = json_get(c, "compress_ratios");
    if (lt && lt->type == JSON_ARRAY) {
        uint32_t csa = 4, hca = 128;
        const json_value *rates = json_get(c, "compress_rates");
        if (rates) {
            if ((rc = cfg_u32(rates, "compressed_sparse_attention", &csa, false, 4, err, cap))) return rc;
            if ((rc = cfg_u32(rates, "heavily_compressed_attention", &hca, false, 128, err, cap))) return rc;
        }
        if (lt->u.arr.n != hp->n_layer)
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: layer_types has %zu entries, num_hidden_layers is %u", lt->u.arr.n, hp->n_layer);
        for (uint32_t i = 0; i < hp->n_layer; i++) {
            const char *s = json_as_str(&lt->u.arr.items[i]);
            if (s && !strcmp(s, "sliding_attention")) hp->compress_ratio[i] = 0;
            else if (s && !strcmp(s, "compressed_sparse_attention")) { hp->compress_ratio[i] = csa; hp->is_csa[i] = true; }
            else if (s && !strcmp(s, "heavily_compressed_attention")) hp->compress_ratio[i] = hca;
            else return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: layer_types[%u] = %s is unknown", i, s ? s : "(not a string)");
        }
    } else if (cr && cr->type == JSON_ARRAY) {
        uint32_t csa;
        if ((rc = cfg_u32(c, "compress_rate_csa", &csa, false, 4, err, cap))) return rc;
        if (cr->u.arr.n < hp->n_layer)
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: compress_ratios has %zu entries for %u layers", cr->u.arr.n, hp->n_layer);
        for (uint32_t i = 0; i < hp->n_layer; i++) {
            int64_t x;
            if (!json_as_int(&cr->u.arr.items[i], &x) || x < 0 || x > 1 << 20)
                return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: compress_ratios[%u] is not a small non-negative integer", i);
            hp->compress_ratio[i] = (uint32_t)x;
            hp->is_csa[i] = x != 0 && (uint32_t)x == csa;
        }
    } else {
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: neither layer_types nor compress_ratios");
    }
    bool any_csa = false;
    for (uint32_t i = 0; i < hp->n_layer; i++) any_csa |= hp->is_csa[i];
    if (any_csa && (!hp->idx_heads || !hp->idx_dim || !hp->idx_topk))
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: CSA layers need index_n_heads, index_head_dim and index_topk");

    /* MoE routing schedule */
    const json_value *mt = json_get(c, "mlp_layer_types");
    if (mt && mt->type == JSON_ARRAY) {
        if (mt->u.arr.n != hp->n_layer)
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: mlp_layer_types has %zu entries, num_hidden_layers is %u", mt->u.arr.n, hp->n_layer);
        bool seen_topk = false;
        for (uint32_t i = 0; i < hp->n_layer; i++) {
            const char *s = json_as_str(&mt->u.arr.items[i]);
            if (s && !strcmp(s, "hash_moe")) {
                if (seen_topk) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: hash_moe layer %u after a moe layer (hash layers must lead)", i);
                hp->n_hash++;
            } else if (s && !strcmp(s, "moe")) {
                seen_topk = true;
            } else {
                return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: mlp_layer_types[%u] = %s is unknown", i, s ? s : "(not a string)");
            }
        }
    } else {
        U("num_hash_layers", n_hash, false, 0);
        if (hp->n_hash > hp->n_layer) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "config.json: num_hash_layers > num_hidden_layers");
    }

    /* RoPE */
    const json_value *rp = json_get(c, "rope_parameters");
    const json_value *main_p = json_get(rp, "main"), *comp_p = json_get(rp, "compress");
    F("rope_theta", rope_theta, 10000.0f);
    if (main_p && (rc = cfg_f32(main_p, "rope_theta", &hp->rope_theta, hp->rope_theta, err, cap))) return rc;
    F("compress_rope_theta", compress_rope_theta, 160000.0f);
    const json_value *ys = comp_p ? comp_p : json_get(c, "rope_scaling");
    if (comp_p && (rc = cfg_f32(comp_p, "rope_theta", &hp->compress_rope_theta, hp->compress_rope_theta, err, cap))) return rc;
    uint32_t dflt_orig = hp->max_pos > UINT32_MAX ? UINT32_MAX : (uint32_t)hp->max_pos;
    if (ys && ys->type == JSON_OBJECT) {
        if ((rc = cfg_f32(ys, "factor", &hp->yarn_factor, 1.0f, err, cap))) return rc;
        if ((rc = cfg_f32(ys, "beta_fast", &hp->yarn_beta_fast, 32.0f, err, cap))) return rc;
        if ((rc = cfg_f32(ys, "beta_slow", &hp->yarn_beta_slow, 1.0f, err, cap))) return rc;
        if ((rc = cfg_u32(ys, "original_max_position_embeddings", &hp->yarn_orig_ctx, false, dflt_orig, err, cap))) return rc;
    } else {
        hp->yarn_factor = 1.0f;
        hp->yarn_beta_fast = 32.0f;
        hp->yarn_beta_slow = 1.0f;
        hp->yarn_orig_ctx = dflt_orig;
    }
#undef U
#undef F
    return 0;
}

/* ------------------------------------------------------------------ */
/* tensor plan                                                         */

typedef struct role_info {
    const char *gguf;  /* suffix after blk.N. (or the global name) */
    int tclass;
} role_info;

static const role_info ROLES[R_COUNT] = {
    [R_EMBD] = {"token_embd.weight", DS4J_TC_SMALLMAT},
    [R_OUT_NORM] = {"output_norm.weight", DS4J_TC_F32},
    [R_HEAD] = {"output.weight", DS4J_TC_DENSE},
    [R_HC_HEAD_FN] = {"output_hc_fn.weight", DS4J_TC_SMALLMAT},
    [R_HC_HEAD_BASE] = {"output_hc_base.weight", DS4J_TC_F32},
    [R_HC_HEAD_SCALE] = {"output_hc_scale.weight", DS4J_TC_F32},
    [R_HC_ATTN_FN] = {"hc_attn_fn.weight", DS4J_TC_SMALLMAT},
    [R_HC_ATTN_BASE] = {"hc_attn_base.weight", DS4J_TC_F32},
    [R_HC_ATTN_SCALE] = {"hc_attn_scale.weight", DS4J_TC_F32},
    [R_HC_FFN_FN] = {"hc_ffn_fn.weight", DS4J_TC_SMALLMAT},
    [R_HC_FFN_BASE] = {"hc_ffn_base.weight", DS4J_TC_F32},
    [R_HC_FFN_SCALE] = {"hc_ffn_scale.weight", DS4J_TC_F32},
    [R_ATTN_NORM] = {"attn_norm.weight", DS4J_TC_F32},
    [R_FFN_NORM] = {"ffn_norm.weight", DS4J_TC_F32},
    [R_Q_A] = {"attn_q_a.weight", DS4J_TC_DENSE},
    [R_Q_NORM] = {"attn_q_a_norm.weight", DS4J_TC_F32},
    [R_Q_B] = {"attn_q_b.weight", DS4J_TC_DENSE},
    [R_KV] = {"attn_kv.weight", DS4J_TC_DENSE},
    [R_KV_NORM] = {"attn_kv_a_norm.weight", DS4J_TC_F32},
    [R_SINKS] = {"attn_sinks.weight", DS4J_TC_F32},
    [R_O_A] = {"attn_output_a.weight", DS4J_TC_DENSE},
    [R_O_B] = {"attn_output_b.weight", DS4J_TC_DENSE},
    [R_C_APE] = {"attn_compressor_ape.weight", DS4J_TC_SMALLMAT},
    [R_C_KV] = {"attn_compressor_kv.weight", DS4J_TC_SMALLMAT},
    [R_C_GATE] = {"attn_compressor_gate.weight", DS4J_TC_SMALLMAT},
    [R_C_NORM] = {"attn_compressor_norm.weight", DS4J_TC_F32},
    [R_I_QB] = {"indexer.attn_q_b.weight", DS4J_TC_SMALLMAT},
    [R_I_PROJ] = {"indexer.proj.weight", DS4J_TC_SMALLMAT},
    [R_I_APE] = {"indexer_compressor_ape.weight", DS4J_TC_SMALLMAT},
    [R_I_KV] = {"indexer_compressor_kv.weight", DS4J_TC_SMALLMAT},
    [R_I_GATE] = {"indexer_compressor_gate.weight", DS4J_TC_SMALLMAT},
    [R_I_NORM] = {"indexer_compressor_norm.weight", DS4J_TC_F32},
    [R_GATE_INP] = {"ffn_gate_inp.weight", DS4J_TC_SMALLMAT},
    [R_GATE_BIAS] = {"exp_probs_b.bias", DS4J_TC_F32},
    [R_TID2EID] = {"ffn_gate_tid2eid.weight", DS4J_TC_I32},
    [R_EXP_GATE] = {"ffn_gate_exps.weight", DS4J_TC_EXPERT},
    [R_EXP_UP] = {"ffn_up_exps.weight", DS4J_TC_EXPERT},
    [R_EXP_DOWN] = {"ffn_down_exps.weight", DS4J_TC_EXPERT},
    [R_SH_GATE] = {"ffn_gate_shexp.weight", DS4J_TC_DENSE},
    [R_SH_UP] = {"ffn_up_shexp.weight", DS4J_TC_DENSE},
    [R_SH_DOWN] = {"ffn_down_shexp.weight", DS4J_TC_DENSE},
};

/* Next type down the fallback chain when a row does not fill whole blocks. */
static int32_t fallback_type(int32_t t) {
    switch (t) {
    case DS4J_TYPE_Q4_K: case DS4J_TYPE_Q2_K: case DS4J_TYPE_IQ2_XXS: return DS4J_TYPE_Q8_0;
    case DS4J_TYPE_Q8_0: return DS4J_TYPE_F16;
    default: return DS4J_TYPE_F32;
    }
}

static int plan_add(ds4j_plan *p, int cap_n, const ds4j_hparams *hp, int role, int layer, int64_t rows, int64_t cols,
                    int src_dims, int32_t dense_type, int32_t expert_type, ds4j_log_fn log, void *lu, char *err,
                    size_t cap) {
    if (p->n >= cap_n) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "internal: plan overflow");
    ds4j_plan_entry *e = &p->e[p->n++];
    memset(e, 0, sizeof *e);
    e->role = role;
    e->layer = layer;
    e->tclass = ROLES[role].tclass;
    if (layer >= 0) snprintf(e->name, sizeof e->name, "blk.%d.%s", layer, ROLES[role].gguf);
    else snprintf(e->name, sizeof e->name, "%s", ROLES[role].gguf);
    e->src_dims = src_dims;
    e->src_shape[0] = rows;
    e->src_shape[1] = cols;
    if (src_dims == 1) {
        e->n_dims = 1;
        e->ne[0] = rows;
        e->ne[1] = e->ne[2] = e->ne[3] = 1;
    } else {
        e->n_dims = 2;
        e->ne[0] = cols;
        e->ne[1] = rows;
        e->ne[2] = e->ne[3] = 1;
    }
    if (e->tclass == DS4J_TC_EXPERT) {
        e->n_dims = 3;
        e->ne[2] = hp->n_expert;
    }
    int32_t t;
    switch (e->tclass) {
    case DS4J_TC_F32: t = DS4J_TYPE_F32; break;
    case DS4J_TC_I32: t = DS4J_TYPE_I32; break;
    case DS4J_TC_DENSE: t = dense_type; break;
    case DS4J_TC_EXPERT: t = expert_type; break;
    default: t = dense_type == DS4J_TYPE_F32 ? DS4J_TYPE_F32 : dense_type == DS4J_TYPE_BF16 ? DS4J_TYPE_BF16 : DS4J_TYPE_F16;
    }
    if (e->n_dims == 1 && t != DS4J_TYPE_I32) t = DS4J_TYPE_F32;
    int blk, bytes;
    if (type_geom(t, &blk, &bytes)) return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "unsupported output type %d", t);
    while (e->ne[0] % blk) {
        int32_t nt = fallback_type(t);
        logf_(log, lu, "%s: row length %lld is not a multiple of %s's block of %d; using %s", e->name,
              (long long)e->ne[0], type_name(t), blk, type_name(nt));
        t = nt;
        type_geom(t, &blk, &bytes);
    }
    e->type = t;
    int64_t nb = e->ne[0] / blk * bytes;
    for (int d = 1; d < 4; d++)
        if (!ds4j_mul_ok(nb, e->ne[d], &nb)) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "%s: size overflow", e->name);
    e->nbytes = (uint64_t)nb;
    return 0;
}

int ds4j_plan_build(const ds4j_hparams *hp, int32_t dense_type, int32_t expert_type, ds4j_plan *plan,
                    ds4j_log_fn log, void *lu, char *err, size_t cap) {
    plan->n = 0;
    int cap_n = 8 + (int)hp->n_layer * 48;
    plan->e = calloc((size_t)cap_n, sizeof *plan->e);
    if (!plan->e) return DS4J_ERR_NO_MEMORY;
    int blk, bytes;
    if (type_geom(dense_type, &blk, &bytes) || dense_type == DS4J_TYPE_I32)
        return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "unsupported --type");
    if (type_geom(expert_type, &blk, &bytes) || expert_type == DS4J_TYPE_I32)
        return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "unsupported --experts type");
    const int64_t H = hp->n_embd, V = hp->n_vocab, hc = hp->hc, D = hp->head_dim, nh = hp->n_head;
    const int64_t rq = hp->q_lora, G = hp->o_groups, ro = hp->o_lora, E = hp->n_expert, I = hp->n_ff_exp;
    const int64_t Mx = (2 + hc) * hc, nI = hp->idx_heads, DI = hp->idx_dim;
    int rc;
#define ADD(role, layer, r, c, nd) \
    if ((rc = plan_add(plan, cap_n, hp, role, layer, r, c, nd, dense_type, expert_type, log, lu, err, cap))) return rc
    ADD(R_EMBD, -1, V, H, 2);
    for (int l = 0; l < (int)hp->n_layer; l++) {
        uint32_t ratio = hp->compress_ratio[l];
        int64_t coff = hp->is_csa[l] ? 2 : 1, cw = coff * D;
        ADD(R_HC_ATTN_FN, l, Mx, hc * H, 2);
        ADD(R_HC_ATTN_BASE, l, Mx, 0, 1);
        ADD(R_HC_ATTN_SCALE, l, 3, 0, 1);
        ADD(R_HC_FFN_FN, l, Mx, hc * H, 2);
        ADD(R_HC_FFN_BASE, l, Mx, 0, 1);
        ADD(R_HC_FFN_SCALE, l, 3, 0, 1);
        ADD(R_ATTN_NORM, l, H, 0, 1);
        ADD(R_Q_A, l, rq, H, 2);
        ADD(R_Q_NORM, l, rq, 0, 1);
        ADD(R_Q_B, l, nh * D, rq, 2);
        ADD(R_KV, l, D, H, 2);
        ADD(R_KV_NORM, l, D, 0, 1);
        ADD(R_SINKS, l, nh, 0, 1);
        ADD(R_O_A, l, G * ro, nh * D / G, 2);
        ADD(R_O_B, l, H, G * ro, 2);
        if (ratio) {
            ADD(R_C_APE, l, ratio, cw, 2);
            ADD(R_C_KV, l, cw, H, 2);
            ADD(R_C_GATE, l, cw, H, 2);
            ADD(R_C_NORM, l, D, 0, 1);
        }
        if (ratio && hp->is_csa[l]) {
            ADD(R_I_QB, l, nI * DI, rq, 2);
            ADD(R_I_PROJ, l, nI, H, 2);
            ADD(R_I_APE, l, ratio, 2 * DI, 2);
            ADD(R_I_KV, l, 2 * DI, H, 2);
            ADD(R_I_GATE, l, 2 * DI, H, 2);
            ADD(R_I_NORM, l, DI, 0, 1);
        }
        ADD(R_FFN_NORM, l, H, 0, 1);
        ADD(R_GATE_INP, l, E, H, 2);
        if ((uint32_t)l < hp->n_hash) {
            ADD(R_TID2EID, l, V, hp->n_expert_used, 2);
        } else {
            ADD(R_GATE_BIAS, l, E, 0, 1);
        }
        ADD(R_EXP_GATE, l, I, H, 2);
        ADD(R_EXP_UP, l, I, H, 2);
        ADD(R_EXP_DOWN, l, H, I, 2);
        if (hp->n_shared) {
            int64_t Is = I * hp->n_shared;
            ADD(R_SH_GATE, l, Is, H, 2);
            ADD(R_SH_UP, l, Is, H, 2);
            ADD(R_SH_DOWN, l, H, Is, 2);
        }
    }
    ADD(R_OUT_NORM, -1, H, 0, 1);
    ADD(R_HC_HEAD_FN, -1, hc, hc * H, 2);
    ADD(R_HC_HEAD_BASE, -1, hc, 0, 1);
    ADD(R_HC_HEAD_SCALE, -1, 1, 0, 1);
    ADD(R_HEAD, -1, V, H, 2);
#undef ADD
    return 0;
}

void ds4j_plan_free(ds4j_plan *plan) {
    free(plan->e);
    plan->e = NULL;
    plan->n = 0;
}

/* ------------------------------------------------------------------ */
/* metadata                                                            */

static uint32_t file_type_of(int32_t t) {
    /* llama.cpp LLAMA_FTYPE values */
    switch (t) {
    case DS4J_TYPE_F32: return 0;
    case DS4J_TYPE_F16: return 1;
    case DS4J_TYPE_Q8_0: return 7;
    case DS4J_TYPE_Q2_K: return 10;
    case DS4J_TYPE_Q4_K: return 15;
    case DS4J_TYPE_IQ2_XXS: return 19;
    case DS4J_TYPE_BF16: return 32;
    default: return 0;
    }
}

void ds4j_write_metadata(gguf_writer *w, const ds4j_hparams *hp, int32_t dense_type, int32_t expert_type,
                         const char *name) {
    const char *A = "deepseek4.";
    char k[128];
#define KU(key, v) do { snprintf(k, sizeof k, "%s%s", A, key); gguf_writer_set_u32(w, k, (uint32_t)(v)); } while (0)
#define KF(key, v) do { snprintf(k, sizeof k, "%s%s", A, key); gguf_writer_set_f32(w, k, (float)(v)); } while (0)
    gguf_writer_set_str(w, "general.architecture", "deepseek4");
    gguf_writer_set_str(w, "general.name", name && name[0] ? name : "deepseek4");
    /* The routed experts dominate the size, so they name the file type. */
    gguf_writer_set_u32(w, "general.file_type", file_type_of(expert_type));
    gguf_writer_set_u32(w, "general.alignment", GGUF_DEFAULT_ALIGNMENT);
    if (is_quantized(dense_type) || is_quantized(expert_type)) gguf_writer_set_u32(w, "general.quantization_version", 2);

    KU("context_length", hp->max_pos > UINT32_MAX ? UINT32_MAX : hp->max_pos);
    KU("embedding_length", hp->n_embd);
    KU("block_count", hp->n_layer);
    KU("vocab_size", hp->n_vocab);
    KU("attention.head_count", hp->n_head);
    KU("attention.head_count_kv", hp->n_head_kv);
    KU("attention.key_length", hp->head_dim);
    KU("attention.value_length", hp->head_dim);
    KU("rope.dimension_count", hp->rope_dim);
    KU("attention.q_lora_rank", hp->q_lora);
    KU("attention.output_group_count", hp->o_groups);
    KU("attention.output_lora_rank", hp->o_lora);
    KU("expert_count", hp->n_expert);
    KU("expert_used_count", hp->n_expert_used);
    KU("expert_feed_forward_length", hp->n_ff_exp);
    KU("expert_shared_count", hp->n_shared);
    KU("hash_layer_count", hp->n_hash);
    KU("attention.sliding_window", hp->window);
    KU("attention.indexer.head_count", hp->idx_heads);
    KU("attention.indexer.key_length", hp->idx_dim);
    KU("attention.indexer.top_k", hp->idx_topk);
    snprintf(k, sizeof k, "%sattention.compress_ratios", A);
    gguf_writer_set_arr(w, k, GGUF_T_UINT32, hp->compress_ratio, hp->n_layer);
    KU("hyper_connection.count", hp->hc);
    KU("hyper_connection.sinkhorn_iterations", hp->sinkhorn_iters);
    KF("hyper_connection.epsilon", hp->hc_eps);
    KF("attention.layer_norm_rms_epsilon", hp->rms_eps);
    KF("rope.freq_base", hp->rope_theta);
    KF("attention.compress_rope_freq_base", hp->compress_rope_theta);
    snprintf(k, sizeof k, "%srope.scaling.type", A);
    gguf_writer_set_str(w, k, "yarn");
    KF("rope.scaling.factor", hp->yarn_factor);
    KU("rope.scaling.original_context_length", hp->yarn_orig_ctx);
    KF("rope.scaling.yarn_beta_fast", hp->yarn_beta_fast);
    KF("rope.scaling.yarn_beta_slow", hp->yarn_beta_slow);
    KF("expert_weights_scale", hp->routed_scale);
    snprintf(k, sizeof k, "%sexpert_weights_norm", A);
    gguf_writer_set_bool(w, k, true);
    KU("expert_gating_func", 4); /* sqrtsoftplus */
    {
        float clamp[DS4J_MAX_LAYERS];
        for (uint32_t i = 0; i < hp->n_layer; i++) clamp[i] = hp->swiglu_limit;
        snprintf(k, sizeof k, "%sswiglu_clamp_exp", A);
        gguf_writer_set_arr(w, k, GGUF_T_FLOAT32, clamp, hp->n_layer);
    }
#undef KU
#undef KF
}

/* ------------------------------------------------------------------ */
/* tokenizer                                                           */

/* V4 added tokens at ids where the V3 tokenizer.json has nothing or a
 * placeholder (chat-format.md 1.6, sources S1/S2 only). */
static const struct { uint32_t id; const char *s; } V4_SPECIAL[] = {
    {128821, "<think>"},
    {128822, "</think>"},
    {128825, "\xef\xbd\x9c" "DSML" "\xef\xbd\x9c"},
    {128828, "<\xef\xbd\x9c" "latest_reminder" "\xef\xbd\x9c>"},
    {128829, "<\xef\xbd\x9c" "action" "\xef\xbd\x9c>"},
    {128830, "<\xef\xbd\x9c" "query" "\xef\xbd\x9c>"},
    {128831, "<\xef\xbd\x9c" "authority" "\xef\xbd\x9c>"},
    {128832, "<\xef\xbd\x9c" "domain" "\xef\xbd\x9c>"},
    {128836, "<\xef\xbd\x9c" "title" "\xef\xbd\x9c>"},
    {128845, "<\xef\xbd\x9c" "read_url" "\xef\xbd\x9c>"},
    {129279, "<\xef\xbd\x9c" "image" "\xef\xbd\x9c>"},
};

struct ds4j_tokenizer_data {
    json_doc *doc;
    const char **tokens;
    char **owned;   /* padding strings and joined merges we allocated */
    size_t n_owned;
    int32_t *types;
    const char **merges;
};

void ds4j_tokenizer_free(ds4j_tokenizer_data *t) {
    if (!t) return;
    json_free(t->doc);
    for (size_t i = 0; i < t->n_owned; i++) free(t->owned[i]);
    free(t->owned);
    free(t->tokens);
    free(t->types);
    free(t->merges);
    free(t);
}

int ds4j_tokenizer_add(gguf_writer *w, const char *path, uint32_t n_vocab, uint32_t bos_id, uint32_t eos_id,
                       ds4j_tokenizer_data **keep, uint32_t *n_tokens_out, char *err, size_t cap) {
    *keep = NULL;
    ds4j_tokenizer_data *t = calloc(1, sizeof *t);
    if (!t) return DS4J_ERR_NO_MEMORY;
    int rc = json_parse_file(&t->doc, path, err, cap);
    if (rc) { free(t); return rc; }
    const json_value *root = json_root(t->doc);
    const json_value *model = json_get(root, "model");
    const json_value *vocab = json_get(model, "vocab");
    const json_value *merges = json_get(model, "merges");
    const json_value *added = json_get(root, "added_tokens");
    const char *mtype = json_get_str(model, "type");
    if (!vocab || vocab->type != JSON_OBJECT || !merges || merges->type != JSON_ARRAY || (mtype && strcmp(mtype, "BPE"))) {
        ds4j_tokenizer_free(t);
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "%s: expected a BPE tokenizer.json (model.vocab object, model.merges array)", path);
    }
    if (added && added->type != JSON_ARRAY) added = NULL;
    /* Size: the model's vocabulary, or more if the file/specials need it. */
    uint64_t n = n_vocab;
    for (size_t i = 0; i < vocab->u.obj.n; i++) {
        int64_t id;
        if (!json_as_int(&vocab->u.obj.vals[i], &id) || id < 0 || id >= (1 << 24)) {
            ds4j_tokenizer_free(t);
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "%s: vocab entry %zu has a bad id", path, i);
        }
        if ((uint64_t)id + 1 > n) n = (uint64_t)id + 1;
    }
    for (size_t i = 0; added && i < added->u.arr.n; i++) {
        int64_t id;
        if (!json_get_int(&added->u.arr.items[i], "id", &id) || id < 0 || id >= (1 << 24) ||
            !json_get_str(&added->u.arr.items[i], "content")) {
            ds4j_tokenizer_free(t);
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "%s: added_tokens[%zu] lacks id/content", path, i);
        }
        if ((uint64_t)id + 1 > n) n = (uint64_t)id + 1;
    }
    for (size_t i = 0; i < sizeof V4_SPECIAL / sizeof V4_SPECIAL[0]; i++)
        if (V4_SPECIAL[i].id + 1 > n) n = V4_SPECIAL[i].id + 1;
    t->tokens = calloc(n, sizeof *t->tokens);
    t->types = calloc(n, sizeof *t->types);
    t->owned = calloc(n + merges->u.arr.n, sizeof *t->owned);
    t->merges = calloc(merges->u.arr.n + 1, sizeof *t->merges);
    if (!t->tokens || !t->types || !t->owned || !t->merges) { ds4j_tokenizer_free(t); return DS4J_ERR_NO_MEMORY; }
    for (size_t i = 0; i < vocab->u.obj.n; i++) {
        int64_t id;
        json_as_int(&vocab->u.obj.vals[i], &id);
        t->tokens[id] = vocab->u.obj.keys[i].u.str.s;
        t->types[id] = 1;
    }
    for (size_t i = 0; added && i < added->u.arr.n; i++) {
        const json_value *a = &added->u.arr.items[i];
        int64_t id;
        bool special = false;
        json_get_int(a, "id", &id);
        json_get_bool(a, "special", &special);
        t->tokens[id] = json_get_str(a, "content");
        t->types[id] = special ? 3 : 4;
    }
    for (size_t i = 0; i < sizeof V4_SPECIAL / sizeof V4_SPECIAL[0]; i++) {
        /* A V4 string may already sit elsewhere in the V3 file (it does not for
         * the npm file); a duplicate text would make lookups ambiguous. */
        t->tokens[V4_SPECIAL[i].id] = V4_SPECIAL[i].s;
        t->types[V4_SPECIAL[i].id] = 3;
    }
    for (uint64_t id = 0; id < n; id++) {
        if (t->tokens[id]) continue;
        char buf[32];
        snprintf(buf, sizeof buf, "[PAD%llu]", (unsigned long long)id);
        char *s = strdup(buf);
        if (!s) { ds4j_tokenizer_free(t); return DS4J_ERR_NO_MEMORY; }
        t->owned[t->n_owned++] = s;
        t->tokens[id] = s;
        t->types[id] = 5;
    }
    /* merges: "a b" strings (older files) or ["a", "b"] pairs (newer files). */
    size_t nm = merges->u.arr.n;
    for (size_t i = 0; i < nm; i++) {
        const json_value *m = &merges->u.arr.items[i];
        if (m->type == JSON_STRING) {
            t->merges[i] = m->u.str.s;
        } else if (m->type == JSON_ARRAY && m->u.arr.n == 2 && m->u.arr.items[0].type == JSON_STRING &&
                   m->u.arr.items[1].type == JSON_STRING) {
            size_t la = m->u.arr.items[0].u.str.len, lb = m->u.arr.items[1].u.str.len;
            char *s = malloc(la + lb + 2);
            if (!s) { ds4j_tokenizer_free(t); return DS4J_ERR_NO_MEMORY; }
            memcpy(s, m->u.arr.items[0].u.str.s, la);
            s[la] = ' ';
            memcpy(s + la + 1, m->u.arr.items[1].u.str.s, lb);
            s[la + lb + 1] = 0;
            t->owned[t->n_owned++] = s;
            t->merges[i] = s;
        } else {
            ds4j_tokenizer_free(t);
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "%s: merges[%zu] is neither \"a b\" nor [a, b]", path, i);
        }
    }
    if (bos_id >= n || eos_id >= n) {
        ds4j_tokenizer_free(t);
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "bos/eos id outside the %llu tokens", (unsigned long long)n);
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "joyai-llm");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t->tokens, n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_INT32, t->types, n);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", t->merges, nm);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", bos_id);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", eos_id);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    *keep = t;
    if (n_tokens_out) *n_tokens_out = (uint32_t)n;
    return 0;
}

/* ------------------------------------------------------------------ */
/* source decoding                                                     */

static float g_e4m3[256];
static float g_e2m1[16];
static void init_fp8_tables(void) {
    for (int b = 0; b < 256; b++) {
        int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
        float v;
        if (e == 15 && m == 7) v = NAN;
        else if (e == 0) v = ldexpf((float)m / 8.0f, -6);
        else v = ldexpf(1.0f + (float)m / 8.0f, e - 7);
        g_e4m3[b] = s ? -v : v;
    }
    static const float mag[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    for (int b = 0; b < 16; b++) g_e2m1[b] = (b & 8) ? -mag[b & 7] : mag[b & 7];
}

static float elem_f32(const st_tensor *t, int64_t i) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case ST_F64: { double v; memcpy(&v, p + 8 * i, 8); return (float)v; }
    case ST_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return ds4j_f16_to_f32(h); }
    case ST_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); uint32_t u = (uint32_t)h << 16; float v; memcpy(&v, &u, 4); return v; }
    case ST_F8_E4M3: return g_e4m3[p[i]];
    case ST_F8_E8M0: return p[i] == 255 ? NAN : ldexpf(1.0f, (int)p[i] - 127);
    case ST_U8: return ldexpf(1.0f, (int)p[i] - 127); /* only used for E8M0 scales stored as U8 */
    default: return NAN;
    }
}

typedef struct src_ref {
    const st_tensor *w;     /* weight */
    const st_tensor *scale; /* FP8/FP4 block scales or NULL */
    int fp4;                /* packed E2M1, logical cols = 2 * stored cols */
} src_ref;

/* Rows [r0, r0+nr) of a [rows, cols] source as floats. */
static int read_rows(const src_ref *s, int64_t rows, int64_t cols, int64_t r0, int64_t nr, float *dst, char *err,
                     size_t cap) {
    const st_tensor *w = s->w;
    if (s->fp4) {
        const st_tensor *sc = s->scale;
        int64_t nb = cols / 32;
        for (int64_t r = r0; r < r0 + nr; r++) {
            const uint8_t *row = w->data + r * (cols / 2);
            float *o = dst + (r - r0) * cols;
            for (int64_t c = 0; c < cols; c += 2) {
                uint8_t b = row[c / 2];
                o[c] = g_e2m1[b & 15];
                o[c + 1] = g_e2m1[b >> 4];
            }
            for (int64_t b = 0; b < nb; b++) {
                float f = elem_f32(sc, r * nb + b);
                for (int64_t c = 0; c < 32; c++) o[b * 32 + c] *= f;
            }
        }
        return 0;
    }
    if (w->dtype == ST_F32) {
        memcpy(dst, w->data + (uint64_t)r0 * cols * 4, (size_t)(nr * cols) * 4);
    } else if (w->dtype == ST_F64 || w->dtype == ST_F16 || w->dtype == ST_BF16 || w->dtype == ST_F8_E4M3) {
        for (int64_t i = 0; i < nr * cols; i++) dst[i] = elem_f32(w, r0 * cols + i);
    } else {
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "tensor '%s': dtype %s cannot be converted to floats", w->name,
                    st_dtype_name(w->dtype));
    }
    if (w->dtype == ST_F8_E4M3 && s->scale) {
        int64_t sb_cols = (cols + 127) / 128;
        for (int64_t r = r0; r < r0 + nr; r++)
            for (int64_t c = 0; c < cols; c++) dst[(r - r0) * cols + c] *= elem_f32(s->scale, (r / 128) * sb_cols + c / 128);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* the converter                                                       */

typedef struct conv_item {
    struct conv *cv;
    int idx;               /* plan entry */
    src_ref *src;          /* 1 ref, or n_expert refs for stacks */
    int n_src;
} conv_item;

typedef struct conv {
    const ds4j_convert_opts *o;
    const ds4j_hparams *hp;
    st_model *st;
    ds4j_plan plan;
    conv_item *items;
    uint8_t *used;         /* per safetensors tensor */
    float *buf;            /* row chunk scratch */
    size_t buf_floats;
} conv;

static const st_tensor *find_any(conv *cv, const char *const *cands, int n) {
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_find(cv->st, cands[i]);
        if (t) return t;
    }
    return NULL;
}

static void mark(conv *cv, const st_tensor *t) {
    if (t) cv->used[t - st_at(cv->st, 0)] = 1;
}

/* Candidate source names of a role ("%s" = layer prefix variants). */
static int role_names(int role, int layer, int expert, char names[][160]) {
    static const char *const SUFFIX[R_COUNT][2] = {
        [R_HC_ATTN_FN] = {"hc_attn_fn"}, [R_HC_ATTN_BASE] = {"hc_attn_base"}, [R_HC_ATTN_SCALE] = {"hc_attn_scale"},
        [R_HC_FFN_FN] = {"hc_ffn_fn"}, [R_HC_FFN_BASE] = {"hc_ffn_base"}, [R_HC_FFN_SCALE] = {"hc_ffn_scale"},
        [R_ATTN_NORM] = {"attn_norm.weight"}, [R_FFN_NORM] = {"ffn_norm.weight"},
        [R_Q_A] = {"attn.wq_a.weight"}, [R_Q_NORM] = {"attn.q_norm.weight"}, [R_Q_B] = {"attn.wq_b.weight"},
        [R_KV] = {"attn.wkv.weight"}, [R_KV_NORM] = {"attn.kv_norm.weight", "attn.norm.weight"},
        [R_SINKS] = {"attn.attn_sink"}, [R_O_A] = {"attn.wo_a.weight"}, [R_O_B] = {"attn.wo_b.weight"},
        [R_C_APE] = {"attn.compressor.ape"}, [R_C_KV] = {"attn.compressor.wkv.weight"},
        [R_C_GATE] = {"attn.compressor.wgate.weight"}, [R_C_NORM] = {"attn.compressor.norm.weight"},
        [R_I_QB] = {"attn.indexer.wq_b.weight"}, [R_I_PROJ] = {"attn.indexer.weights_proj.weight"},
        [R_I_APE] = {"attn.indexer.compressor.ape"}, [R_I_KV] = {"attn.indexer.compressor.wkv.weight"},
        [R_I_GATE] = {"attn.indexer.compressor.wgate.weight"}, [R_I_NORM] = {"attn.indexer.compressor.norm.weight"},
        [R_GATE_INP] = {"ffn.gate.weight"}, [R_GATE_BIAS] = {"ffn.gate.bias"}, [R_TID2EID] = {"ffn.gate.tid2eid"},
        [R_SH_GATE] = {"ffn.shared_experts.w1.weight"}, [R_SH_UP] = {"ffn.shared_experts.w3.weight"},
        [R_SH_DOWN] = {"ffn.shared_experts.w2.weight"},
    };
    int n = 0;
    if (layer < 0) {
        static const char *const G[R_COUNT][4] = {
            [R_EMBD] = {"embed.weight", "model.embed_tokens.weight", "model.embed.weight"},
            [R_OUT_NORM] = {"norm.weight", "model.norm.weight"},
            [R_HEAD] = {"head.weight", "lm_head.weight", "model.head.weight"},
            [R_HC_HEAD_FN] = {"hc_head_fn", "model.hc_head.hc_fn", "model.hc_head_fn"},
            [R_HC_HEAD_BASE] = {"hc_head_base", "model.hc_head.hc_base", "model.hc_head_base"},
            [R_HC_HEAD_SCALE] = {"hc_head_scale", "model.hc_head.hc_scale", "model.hc_head_scale"},
        };
        for (int i = 0; i < 4 && G[role][i]; i++) snprintf(names[n++], 160, "%s", G[role][i]);
        return n;
    }
    static const char *const PFX[2] = {"layers.", "model.layers."};
    if (role == R_EXP_GATE || role == R_EXP_UP || role == R_EXP_DOWN) {
        const char *w = role == R_EXP_GATE ? "w1" : role == R_EXP_UP ? "w3" : "w2";
        for (int p = 0; p < 2; p++) snprintf(names[n++], 160, "%s%d.ffn.experts.%d.%s.weight", PFX[p], layer, expert, w);
        return n;
    }
    for (int s = 0; s < 2 && SUFFIX[role][s]; s++)
        for (int p = 0; p < 2; p++) snprintf(names[n++], 160, "%s%d.%s", PFX[p], layer, SUFFIX[role][s]);
    return n;
}

static int resolve_src(conv *cv, const ds4j_plan_entry *e, int expert, src_ref *out, char *err, size_t cap) {
    char names[8][160];
    int n = role_names(e->role, e->layer, expert, names);
    const char *cands[8];
    for (int i = 0; i < n; i++) cands[i] = names[i];
    const st_tensor *t = find_any(cv, cands, n);
    if (!t) {
        if (e->tclass == DS4J_TC_EXPERT)
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "missing tensor '%s' (expert %d of %s)", names[0], expert, e->name);
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "missing tensor '%s' (for %s)", names[0], e->name);
    }
    memset(out, 0, sizeof *out);
    out->w = t;
    mark(cv, t);
    /* FP8/FP4 scale sibling: X.weight -> X.scale (official) or X.weight_scale_inv. */
    size_t l = strlen(t->name);
    if (l > 7 && !strcmp(t->name + l - 7, ".weight")) {
        char sn[200];
        snprintf(sn, sizeof sn, "%.*s.scale", (int)(l - 7), t->name);
        const st_tensor *s = st_find(cv->st, sn);
        if (!s) {
            snprintf(sn, sizeof sn, "%s_scale_inv", t->name);
            s = st_find(cv->st, sn);
        }
        if (s) { out->scale = s; mark(cv, s); }
    }
    const int64_t rows = e->src_shape[0], cols = e->src_dims == 2 ? e->src_shape[1] : 0;
    /* Shape check (logical PyTorch shape). */
    int ok;
    if (e->src_dims == 1) {
        ok = t->n_dims == 1 && t->shape[0] == rows;
    } else if ((t->dtype == ST_I8 || t->dtype == ST_U8) && out->scale && e->tclass != DS4J_TC_I32) {
        out->fp4 = 1;
        ok = t->n_dims == 2 && t->shape[0] == rows && t->shape[1] * 2 == cols && cols % 32 == 0 &&
             out->scale->n_dims == 2 && out->scale->shape[0] == rows && out->scale->shape[1] == cols / 32;
    } else {
        ok = t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
        if (ok && out->scale && t->dtype == ST_F8_E4M3)
            ok = out->scale->n_dims == 2 && out->scale->shape[0] == (rows + 127) / 128 &&
                 out->scale->shape[1] == (cols + 127) / 128;
    }
    if (!ok) {
        char got[96] = "", *p = got;
        for (int d = 0; d < t->n_dims; d++) p += snprintf(p, got + sizeof got - p, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        if (e->src_dims == 1)
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "tensor '%s': shape [%s], expected [%lld] (for %s)", t->name, got, (long long)rows, e->name);
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "tensor '%s': shape [%s] (%s), expected [%lld, %lld] (for %s)", t->name, got,
                    st_dtype_name(t->dtype), (long long)rows, (long long)cols, e->name);
    }
    if (e->tclass == DS4J_TC_I32) {
        if (t->dtype != ST_I64 && t->dtype != ST_I32)
            return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "tensor '%s': dtype %s, expected I64 or I32", t->name, st_dtype_name(t->dtype));
    } else if (!out->fp4 && t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64 &&
               t->dtype != ST_F8_E4M3) {
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "tensor '%s': dtype %s is not a float type", t->name, st_dtype_name(t->dtype));
    }
    if (out->scale && (out->scale->dtype == ST_I64 || out->scale->dtype == ST_I32 || out->scale->dtype == ST_I8 || out->scale->dtype == ST_BOOL))
        return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "tensor '%s': scale dtype %s", out->scale->name, st_dtype_name(out->scale->dtype));
    return 0;
}

/* Convert one [rows, cols] source into dst (GGUF rows of the entry's type). */
static int emit_matrix(conv *cv, const ds4j_plan_entry *e, const src_ref *s, uint8_t *dst, char *err, size_t cap) {
    const int64_t rows = e->src_dims == 2 ? e->src_shape[0] : 1;
    const int64_t cols = e->src_dims == 2 ? e->src_shape[1] : e->src_shape[0];
    int blk = 1, bytes = 4;
    type_geom(e->type, &blk, &bytes);
    const int64_t row_bytes = cols / blk * bytes;
    if (e->type == DS4J_TYPE_F32 && s->w->dtype == ST_F32 && !s->scale) {
        memcpy(dst, s->w->data, (size_t)(rows * cols * 4)); /* exact */
        return 0;
    }
    const ds4j_type_traits *tr = NULL;
    if (e->type != DS4J_TYPE_F32) {
        tr = ds4j_type_get(e->type);
        if (!tr || !tr->from_float)
            return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "%s: no quantizer for %s in this build", e->name, type_name(e->type));
    }
    /* Chunks of whole 128-row FP8 scale blocks keep the scratch bounded. */
    int64_t chunk = (int64_t)(cv->buf_floats / (size_t)cols);
    if (chunk > 128) chunk -= chunk % 128;
    if (chunk < 1) chunk = 1;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        int rc = read_rows(s, rows, cols, r0, nr, cv->buf, err, cap);
        if (rc) return rc;
        for (int64_t r = 0; r < nr; r++) {
            uint8_t *o = dst + (r0 + r) * row_bytes;
            if (!tr) memcpy(o, cv->buf + r * cols, (size_t)cols * 4);
            else tr->from_float(cv->buf + r * cols, o, cols);
        }
    }
    return 0;
}

static int fill_cb(void *user, const char *name, void *dst, uint64_t nbytes, char *err, size_t cap) {
    conv_item *it = user;
    conv *cv = it->cv;
    const ds4j_plan_entry *e = &cv->plan.e[it->idx];
    if (nbytes != e->nbytes) return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "%s: writer asks %llu bytes, plan has %llu", name,
                                         (unsigned long long)nbytes, (unsigned long long)e->nbytes);
    if (e->tclass == DS4J_TC_I32) {
        const st_tensor *t = it->src[0].w;
        int32_t *o = dst;
        for (int64_t i = 0; i < t->numel; i++) {
            int64_t v;
            if (t->dtype == ST_I64) memcpy(&v, t->data + 8 * i, 8);
            else { int32_t v32; memcpy(&v32, t->data + 4 * i, 4); v = v32; }
            if (v < 0 || v >= (int64_t)cv->hp->n_expert) {
                return ds4j_errf(err, cap, DS4J_ERR_FORMAT, "%s: expert id %lld outside [0, %u)", t->name, (long long)v, cv->hp->n_expert);
            }
            o[i] = (int32_t)v;
        }
        return 0;
    }
    if (e->tclass == DS4J_TC_EXPERT) {
        uint64_t per = e->nbytes / (uint64_t)it->n_src;
        for (int x = 0; x < it->n_src; x++) {
            int rc = emit_matrix(cv, e, &it->src[x], (uint8_t *)dst + per * (uint64_t)x, err, cap);
            if (rc) return rc;
        }
        return 0;
    }
    return emit_matrix(cv, e, &it->src[0], dst, err, cap);
}

static void conv_free(conv *cv) {
    if (cv->items) {
        for (int i = 0; i < cv->plan.n; i++) free(cv->items[i].src);
        free(cv->items);
    }
    ds4j_plan_free(&cv->plan);
    free(cv->used);
    free(cv->buf);
    st_close(cv->st);
}

int ds4j_convert_hf(const ds4j_convert_opts *o, char *err, size_t cap) {
    static int tables_ready;
    if (!tables_ready) { init_fp8_tables(); tables_ready = 1; }
    if (!o || !o->hf_dir || !o->out_path) return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "convert: --hf and --out are required");
    int32_t dense = o->dense_type, experts = o->expert_type < 0 ? o->dense_type : o->expert_type;
    ds4j_quants_init();
    for (int k = 0; k < 2; k++) {
        int32_t t = k ? experts : dense;
        const ds4j_type_traits *tr = ds4j_type_get(t);
        if (t != DS4J_TYPE_F32 && (!tr || !tr->from_float))
            return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "%s %s: this build has no quantizer for it",
                        k ? "--experts" : "--type", type_name(t));
    }
    conv cv = {0};
    cv.o = o;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", o->hf_dir);
    json_doc *cfg;
    int rc = json_parse_file(&cfg, path, err, cap);
    if (rc) return rc;
    ds4j_hparams *hp = calloc(1, sizeof *hp);
    if (!hp) { json_free(cfg); return DS4J_ERR_NO_MEMORY; }
    rc = ds4j_hparams_from_config(json_root(cfg), hp, err, cap);
    json_free(cfg);
    if (rc) { free(hp); return rc; }
    cv.hp = hp;

    rc = st_open(&cv.st, o->hf_dir, err, cap);
    if (rc) { free(hp); return rc; }
    /* Which compressed layers carry an indexer is visible in the checkpoint;
     * it must agree with the config. */
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        char a[96], b[96];
        snprintf(a, sizeof a, "layers.%u.attn.indexer.wq_b.weight", l);
        snprintf(b, sizeof b, "model.layers.%u.attn.indexer.wq_b.weight", l);
        bool has = st_find(cv.st, a) || st_find(cv.st, b);
        if (has != (hp->is_csa[l] && hp->compress_ratio[l])) {
            rc = ds4j_errf(err, cap, DS4J_ERR_FORMAT, "layer %u: config says %s but the checkpoint %s indexer tensors", l,
                      hp->compress_ratio[l] ? (hp->is_csa[l] ? "CSA" : "HCA") : "sliding", has ? "has" : "has no");
            goto out;
        }
    }
    rc = ds4j_plan_build(hp, dense, experts, &cv.plan, o->log, o->log_user, err, cap);
    if (rc) goto out;
    cv.used = calloc((size_t)st_count(cv.st) + 1, 1);
    cv.items = calloc((size_t)cv.plan.n, sizeof *cv.items);
    cv.buf_floats = (size_t)4 << 20;
    cv.buf = malloc(cv.buf_floats * sizeof(float));
    if (!cv.used || !cv.items || !cv.buf) { rc = DS4J_ERR_NO_MEMORY; goto out; }
    for (int i = 0; i < cv.plan.n; i++) {
        ds4j_plan_entry *e = &cv.plan.e[i];
        conv_item *it = &cv.items[i];
        it->cv = &cv;
        it->idx = i;
        it->n_src = e->tclass == DS4J_TC_EXPERT ? (int)hp->n_expert : 1;
        it->src = calloc((size_t)it->n_src, sizeof *it->src);
        if (!it->src) { rc = DS4J_ERR_NO_MEMORY; goto out; }
        for (int x = 0; x < it->n_src; x++)
            if ((rc = resolve_src(&cv, e, x, &it->src[x], err, cap))) goto out;
        if ((size_t)(e->src_dims == 2 ? e->src_shape[1] : e->src_shape[0]) > cv.buf_floats) {
            rc = ds4j_errf(err, cap, DS4J_ERR_FORMAT, "%s: rows longer than %zu elements", e->name, cv.buf_floats);
            goto out;
        }
    }
    /* Every source tensor must be accounted for; MTP weights are skipped. */
    for (int64_t i = 0; i < st_count(cv.st); i++) {
        const st_tensor *t = st_at(cv.st, i);
        if (cv.used[i]) continue;
        if (!strncmp(t->name, "mtp.", 4) || !strncmp(t->name, "model.mtp.", 10)) continue;
        rc = ds4j_errf(err, cap, DS4J_ERR_FORMAT, "unknown tensor '%s' in the checkpoint (no GGUF mapping)", t->name);
        goto out;
    }
    {
        gguf_writer *w = gguf_writer_new();
        if (!w) { rc = DS4J_ERR_NO_MEMORY; goto out; }
        const char *name = o->name;
        if (!name) {
            name = strrchr(o->hf_dir, '/');
            name = name && name[1] ? name + 1 : o->hf_dir;
        }
        ds4j_write_metadata(w, hp, dense, experts, name);
        ds4j_tokenizer_data *tok = NULL;
        if (o->tokenizer) {
            uint32_t ntok = 0;
            rc = ds4j_tokenizer_add(w, o->tokenizer, hp->n_vocab, hp->bos_id, hp->eos_id, &tok, &ntok, err, cap);
            if (!rc && ntok != hp->n_vocab) {
                rc = ds4j_errf(err, cap, DS4J_ERR_FORMAT, "tokenizer has %u tokens but the model's vocab_size is %u", ntok, hp->n_vocab);
            }
        }
        for (int i = 0; i < cv.plan.n && !rc; i++) {
            ds4j_plan_entry *e = &cv.plan.e[i];
            rc = gguf_writer_add_tensor(w, e->name, e->type, e->n_dims, e->ne, fill_cb, &cv.items[i]);
            if (rc) ds4j_errf(err, cap, rc, "%s: gguf_writer_add_tensor failed", e->name);
        }
        if (!rc) {
            logf_(o->log, o->log_user, "writing %s: %d tensors, --type %s, --experts %s", o->out_path, cv.plan.n,
                  type_name(dense), type_name(experts));
            rc = gguf_writer_write(w, o->out_path, err, cap);
        }
        gguf_writer_free(w);
        ds4j_tokenizer_free(tok);
    }
out:
    conv_free(&cv);
    free(hp);
    return rc;
}
