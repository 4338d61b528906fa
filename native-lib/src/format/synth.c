/*
 * synth.c — writes random-weight deepseek4 GGUFs from a preset.
 *
 * Every tensor gets its own generator seeded from (seed, tensor name), so a
 * file is reproducible and independent of write order. Float tensors are
 * drawn N(0, 1/sqrt(fan_in)) (norm weights around 1), which keeps the
 * activations of a forward pass finite. Quantized tensors are not quantized
 * from floats: each block is filled with random bytes and then given a
 * positive f16 scale sized so that the block's values have about the same
 * spread — any bytes form a valid block of these formats.
 */
#include "synth.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "quants.h"


/* ---- presets ---- */

static void common_defaults(ds4j_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->n_head_kv = 1;
    hp->n_shared = 1;
    hp->hc = 4;
    hp->sinkhorn_iters = 20;
    hp->hc_eps = 1e-6f;
    hp->rms_eps = 1e-6f;
    hp->rope_theta = 10000.0f;
    hp->compress_rope_theta = 160000.0f;
    hp->yarn_factor = 16.0f;
    hp->yarn_beta_fast = 32.0f;
    hp->yarn_beta_slow = 1.0f;
    hp->routed_scale = 1.5f;
    hp->swiglu_limit = 10.0f;
    hp->max_pos = 1048576;
    hp->bos_id = 0;
    hp->eos_id = 1;
}

int ds4j_synth_preset(const char *name, ds4j_hparams *hp, int32_t *dense, int32_t *experts) {
    if (!name) return DS4J_ERR_INVALID_ARGUMENT;
    common_defaults(hp);
    if (!strcmp(name, "tiny")) {
        /* the shapes of fixtures/dsv4-tiny-a */
        hp->n_embd = 64; hp->n_layer = 5; hp->n_vocab = 512; hp->n_head = 4; hp->head_dim = 32; hp->rope_dim = 16;
        hp->q_lora = 32; hp->o_groups = 2; hp->o_lora = 16; hp->n_expert = 8; hp->n_expert_used = 3; hp->n_ff_exp = 32;
        hp->n_hash = 2; hp->window = 8; hp->idx_heads = 16; hp->idx_dim = 16; hp->idx_topk = 4;
        hp->yarn_orig_ctx = 64;
        static const uint32_t r[5] = {0, 0, 4, 16, 4};
        for (int i = 0; i < 5; i++) { hp->compress_ratio[i] = r[i]; hp->is_csa[i] = r[i] == 4; }
        *dense = *experts = DS4J_TYPE_F32;
        return 0;
    }
    if (!strcmp(name, "demo")) {
        /* small, but with the real vocabulary: [SWA, CSA, HCA, CSA] */
        hp->n_embd = 256; hp->n_layer = 4; hp->n_vocab = 129280; hp->n_head = 8; hp->head_dim = 64; hp->rope_dim = 32;
        hp->q_lora = 128; hp->o_groups = 2; hp->o_lora = 64; hp->n_expert = 16; hp->n_expert_used = 4; hp->n_ff_exp = 128;
        hp->n_hash = 1; hp->window = 64; hp->idx_heads = 8; hp->idx_dim = 64; hp->idx_topk = 16;
        hp->yarn_orig_ctx = 4096;
        static const uint32_t r[4] = {0, 4, 16, 4};
        for (int i = 0; i < 4; i++) { hp->compress_ratio[i] = r[i]; hp->is_csa[i] = r[i] == 4; }
        *dense = *experts = DS4J_TYPE_Q8_0;
        return 0;
    }
    if (!strcmp(name, "xcheck")) {
        /* tiny widths within llama.cpp's deepseek4 limits (ratios 0/4/128,
         * indexer head dim 64, hc 4) with the real vocabulary, for
         * scripts/xcheck-llamacpp: [SWA x2 (hash), CSA, HCA, CSA, HCA, CSA, SWA]. */
        hp->n_embd = 64; hp->n_layer = 8; hp->n_vocab = 129280; hp->n_head = 4; hp->head_dim = 32; hp->rope_dim = 16;
        hp->q_lora = 32; hp->o_groups = 2; hp->o_lora = 16; hp->n_expert = 8; hp->n_expert_used = 3; hp->n_ff_exp = 32;
        hp->n_hash = 2; hp->window = 16; hp->idx_heads = 16; hp->idx_dim = 64; hp->idx_topk = 8;
        hp->yarn_orig_ctx = 64;
        static const uint32_t r[8] = {0, 0, 4, 128, 4, 128, 4, 0};
        for (int i = 0; i < 8; i++) { hp->compress_ratio[i] = r[i]; hp->is_csa[i] = r[i] == 4; }
        *dense = *experts = DS4J_TYPE_F32;
        return 0;
    }
    if (!strcmp(name, "small")) {
        /* Flash's structure at widths whose rows fit the 256-element blocks of
         * the k- and i-quants (H = I = q_lora = 256), for testing every type
         * end to end: [SWA (hash), CSA, HCA, CSA], vocabulary 1024 */
        hp->n_embd = 256; hp->n_layer = 4; hp->n_vocab = 1024; hp->n_head = 8; hp->head_dim = 128; hp->rope_dim = 32;
        hp->q_lora = 256; hp->o_groups = 2; hp->o_lora = 256; hp->n_expert = 16; hp->n_expert_used = 4; hp->n_ff_exp = 256;
        hp->n_hash = 1; hp->window = 16; hp->idx_heads = 8; hp->idx_dim = 64; hp->idx_topk = 8;
        hp->yarn_orig_ctx = 4096;
        static const uint32_t r[4] = {0, 4, 16, 4};
        for (int i = 0; i < 4; i++) { hp->compress_ratio[i] = r[i]; hp->is_csa[i] = r[i] == 4; }
        *dense = DS4J_TYPE_Q8_0;
        *experts = DS4J_TYPE_IQ2_XXS;
        return 0;
    }
    if (!strcmp(name, "flash8")) {
        /* DeepSeek-V4-Flash widths, eight layers: three hash-routed, then
         * CSA and HCA alternating (a quarter of a flash-sized decode) */
        hp->n_embd = 4096; hp->n_layer = 8; hp->n_vocab = 129280; hp->n_head = 64; hp->head_dim = 512; hp->rope_dim = 64;
        hp->q_lora = 1024; hp->o_groups = 8; hp->o_lora = 1024; hp->n_expert = 256; hp->n_expert_used = 6;
        hp->n_ff_exp = 2048; hp->n_hash = 3; hp->window = 128; hp->idx_heads = 64; hp->idx_dim = 128; hp->idx_topk = 512;
        hp->yarn_orig_ctx = 65536;
        for (int i = 0; i < 8; i++) { hp->compress_ratio[i] = i % 2 == 0 ? 4 : 128; hp->is_csa[i] = i % 2 == 0; }
        *dense = DS4J_TYPE_Q8_0;
        *experts = DS4J_TYPE_IQ2_XXS;
        return 0;
    }
    if (!strcmp(name, "flash2")) {
        /* DeepSeek-V4-Flash widths, two layers [CSA, HCA] */
        hp->n_embd = 4096; hp->n_layer = 2; hp->n_vocab = 129280; hp->n_head = 64; hp->head_dim = 512; hp->rope_dim = 64;
        hp->q_lora = 1024; hp->o_groups = 8; hp->o_lora = 1024; hp->n_expert = 256; hp->n_expert_used = 6;
        hp->n_ff_exp = 2048; hp->n_hash = 1; hp->window = 128; hp->idx_heads = 64; hp->idx_dim = 128; hp->idx_topk = 512;
        hp->yarn_orig_ctx = 65536;
        hp->compress_ratio[0] = 4; hp->is_csa[0] = true;
        hp->compress_ratio[1] = 128;
        *dense = DS4J_TYPE_Q8_0;
        *experts = DS4J_TYPE_IQ2_XXS;
        return 0;
    }
    return DS4J_ERR_INVALID_ARGUMENT;
}

/* ---- random numbers ---- */

typedef struct rng { uint64_t s[4]; } rng;

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void rng_seed(rng *r, uint64_t seed, const char *name) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++) { h ^= (unsigned char)*p; h *= 1099511628211ull; }
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&x);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t rng_next(rng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}
static inline double rng_unif(rng *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; }
static inline float rng_normal(rng *r) {
    double u = rng_unif(r), v = rng_unif(r);
    if (u < 1e-300) u = 1e-300;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* ---- tensor filling ---- */

typedef struct synth_item {
    const ds4j_plan_entry *e;
    const ds4j_hparams *hp;
    uint64_t seed;
} synth_item;

/* Standard deviation (and mean for "around 1" vectors) of a tensor's values. */
static void value_dist(const ds4j_plan_entry *e, float *mean, float *sd) {
    *mean = 0.0f;
    switch (e->role) {
    case R_ATTN_NORM: case R_FFN_NORM: case R_Q_NORM: case R_KV_NORM: case R_C_NORM: case R_I_NORM: case R_OUT_NORM:
        *mean = 1.0f; *sd = 0.05f; return;
    case R_HC_ATTN_BASE: case R_HC_FFN_BASE: case R_HC_HEAD_BASE: *sd = 0.1f; return;
    case R_HC_ATTN_SCALE: case R_HC_FFN_SCALE: case R_HC_HEAD_SCALE: *mean = 0.5f; *sd = 0.1f; return;
    case R_SINKS: *sd = 1.0f; return;
    case R_C_APE: case R_I_APE: case R_GATE_BIAS: *sd = 0.1f; return;
    case R_EMBD: *sd = 1.0f; return;
    default: *sd = (float)(1.0 / sqrt((double)e->ne[0]));
    }
}

static void put_f16(uint8_t *p, float v) {
    uint16_t h = ds4j_f32_to_f16(v);
    memcpy(p, &h, 2);
}

static int synth_fill(void *user, const char *name, void *dst, uint64_t nbytes, char *err, size_t cap) {
    const synth_item *it = user;
    const ds4j_plan_entry *e = it->e;
    rng r;
    rng_seed(&r, it->seed, name);
    if (nbytes != e->nbytes) return ds4j_errf(err, cap, DS4J_ERR_STATE, "size mismatch");
    if (e->type == DS4J_TYPE_I32) {
        /* tid2eid: k distinct experts per token */
        const int64_t k = e->ne[0], V = e->ne[1], E = it->hp->n_expert;
        int32_t *o = dst, perm[4096];
        if (E > 4096) return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "too many experts");
        for (int64_t t = 0; t < V; t++) {
            for (int64_t i = 0; i < E; i++) perm[i] = (int32_t)i;
            for (int64_t i = 0; i < k; i++) {
                int64_t j = i + (int64_t)(rng_next(&r) % (uint64_t)(E - i));
                int32_t tmp = perm[i]; perm[i] = perm[j]; perm[j] = tmp;
                o[t * k + i] = perm[i];
            }
        }
        return 0;
    }
    float mean, sd;
    value_dist(e, &mean, &sd);
    uint8_t *o = dst;
    if (e->type == DS4J_TYPE_F32 || e->type == DS4J_TYPE_F16 || e->type == DS4J_TYPE_BF16) {
        uint64_t n = nbytes / (e->type == DS4J_TYPE_F32 ? 4 : 2);
        for (uint64_t i = 0; i < n; i++) {
            float v = mean + sd * rng_normal(&r);
            if (e->type == DS4J_TYPE_F32) memcpy(o + 4 * i, &v, 4);
            else if (e->type == DS4J_TYPE_F16) put_f16(o + 2 * i, v);
            else { uint16_t h = ds4j_f32_to_bf16(v); memcpy(o + 2 * i, &h, 2); }
        }
        return 0;
    }
    int bsz; /* bytes per block */
    switch (e->type) {
    case DS4J_TYPE_Q8_0: bsz = 34; break;
    case DS4J_TYPE_Q4_K: bsz = 144; break;
    case DS4J_TYPE_Q2_K: bsz = 84; break;
    case DS4J_TYPE_IQ2_XXS: bsz = 66; break;
    default: return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "synth cannot make type %d", e->type);
    }
    for (uint64_t i = 0; i + 8 <= nbytes; i += 8) {
        uint64_t v = rng_next(&r);
        memcpy(o + i, &v, 8);
    }
    for (uint64_t i = nbytes & ~(uint64_t)7; i < nbytes; i++) o[i] = (uint8_t)rng_next(&r);
    for (uint64_t b = 0; b < nbytes / (uint64_t)bsz; b++) {
        uint8_t *blk = o + b * (uint64_t)bsz;
        float jitter = (float)(0.8 + 0.4 * rng_unif(&r));
        switch (e->type) {
        case DS4J_TYPE_Q8_0: /* {f16 d; int8 q[32]}: value = d*q, sd(q) ~ 73.9 */
            put_f16(blk, sd * jitter / 73.9f);
            break;
        case DS4J_TYPE_Q4_K: { /* {f16 d, dmin; scales[12]; q[128]}: d*sc*q - dmin*m */
            float d = sd * jitter / 218.0f;
            put_f16(blk, d);
            put_f16(blk + 2, 7.5f * d);
            break;
        }
        case DS4J_TYPE_Q2_K: { /* {scales[16]; q[64]; f16 d, dmin}: d*(sc&15)*q - dmin*(sc>>4) */
            float d = sd * jitter / 12.0f;
            put_f16(blk + 80, d);
            put_f16(blk + 82, 1.5f * d);
            break;
        }
        default: /* IQ2_XXS {f16 d; u16 qs[32]} */
            put_f16(blk, sd * jitter / 67.0f);
        }
    }
    return 0;
}

int ds4j_synth(const ds4j_synth_opts *o, char *err, size_t cap) {
    ds4j_quants_init();
    ds4j_hparams *hp = calloc(1, sizeof *hp);
    if (!hp) return DS4J_ERR_NO_MEMORY;
    int32_t dense, experts;
    int rc = 0;
    const char *preset = o->preset ? o->preset : "custom";
    if (o->hp) {
        *hp = *o->hp;
        dense = experts = DS4J_TYPE_F32;
    } else if (ds4j_synth_preset(o->preset, hp, &dense, &experts)) {
        free(hp);
        return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "unknown preset '%s' (tiny, small, demo, flash2, flash8, xcheck)", preset);
    }
    if (o->dense_type >= 0) dense = o->dense_type;
    if (o->expert_type >= 0) experts = o->expert_type;
    if (o->preset && (!strcmp(o->preset, "demo") || !strcmp(o->preset, "xcheck")) && !o->tokenizer && !o->hp) {
        free(hp);
        return ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "preset '%s' needs --tokenizer tokenizer.json (scripts/fetch-tokenizer)", o->preset);
    }
    ds4j_plan plan = {0};
    synth_item *items = NULL;
    gguf_writer *w = NULL;
    ds4j_tokenizer_data *tok = NULL;
    rc = ds4j_plan_build(hp, dense, experts, &plan, o->log, o->log_user, err, cap);
    if (rc) goto out;
    items = calloc((size_t)plan.n, sizeof *items);
    w = gguf_writer_new();
    if (!items || !w) { rc = DS4J_ERR_NO_MEMORY; goto out; }
    char name[96];
    snprintf(name, sizeof name, "ds4j-synth-%s-seed%llu", preset, (unsigned long long)o->seed);
    ds4j_write_metadata(w, hp, dense, experts, name);
    if (o->tokenizer) {
        uint32_t ntok = 0;
        rc = ds4j_tokenizer_add(w, o->tokenizer, hp->n_vocab, hp->bos_id, hp->eos_id, &tok, &ntok, err, cap);
        if (!rc && ntok != hp->n_vocab)
            rc = ds4j_errf(err, cap, DS4J_ERR_INVALID_ARGUMENT, "tokenizer has %u tokens, preset '%s' has a vocabulary of %u", ntok, preset, hp->n_vocab);
        if (rc) goto out;
    }
    uint64_t total = 0;
    for (int i = 0; i < plan.n; i++) {
        items[i].e = &plan.e[i];
        items[i].hp = hp;
        items[i].seed = o->seed;
        total += plan.e[i].nbytes;
        rc = gguf_writer_add_tensor(w, plan.e[i].name, plan.e[i].type, plan.e[i].n_dims, plan.e[i].ne, synth_fill, &items[i]);
        if (rc) { ds4j_errf(err, cap, rc, "%s: gguf_writer_add_tensor failed", plan.e[i].name); goto out; }
    }
    if (o->log) {
        char msg[256];
        snprintf(msg, sizeof msg, "writing %s: preset %s, %d tensors, %.1f MiB of tensor data", o->out_path, preset, plan.n,
                 (double)total / (1 << 20));
        o->log(o->log_user, msg);
    }
    rc = gguf_writer_write(w, o->out_path, err, cap);
out:
    gguf_writer_free(w);
    ds4j_tokenizer_free(tok);
    free(items);
    ds4j_plan_free(&plan);
    free(hp);
    return rc;
}
