/*
 * kv_state.c — allocation and checkpointing of the decoder state (see
 * kv_state.h). Entry capacity is n_ctx / ratio + 1 per compressor.
 */
#include "kv_state.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model_dsv4.h"

typedef struct sizing {
    int64_t fixed, ent;
} sizing;

static int comp_size(int64_t r, int64_t dout, int overlap, int64_t n_ctx, sizing *s) {
    int64_t cw = overlap ? 2 * dout : dout, t;
    int64_t f = 2 * r * cw + (overlap ? 2 * r * dout : 0);
    int64_t cap = n_ctx / r + 1;
    if (!ds4j_mul_ok(cap, dout, &t)) return -1;
    if (!ds4j_add_ok(s->fixed, f, &s->fixed) || !ds4j_add_ok(s->ent, t, &s->ent)) return -1;
    return 0;
}

static int state_sizes(const dsv4_model *m, int64_t n_ctx, sizing *s) {
    const dsv4_hparams *hp = &m->hp;
    s->fixed = s->ent = 0;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        int64_t t;
        if (!ds4j_mul_ok(hp->window, hp->head_dim, &t) || !ds4j_add_ok(s->fixed, t, &s->fixed)) return -1;
        int kind = hp->kind[l];
        if (kind == DSV4_SWA) continue;
        if (comp_size(hp->ratio[l], hp->head_dim, kind == DSV4_CSA, n_ctx, s)) return -1;
        if (kind == DSV4_CSA && comp_size(hp->ratio[l], hp->idx_dim, 1, n_ctx, s)) return -1;
    }
    return 0;
}

int64_t kv_state_bytes(const dsv4_model *m, int64_t n_ctx, int64_t *fixed_bytes) {
    sizing s;
    if (state_sizes(m, n_ctx, &s)) return -1;
    int64_t total = (s.fixed + s.ent) * (int64_t)sizeof(float) + m->hp.n_layer * (int64_t)sizeof(kv_layer) + 256;
    if (fixed_bytes) *fixed_bytes = s.fixed * (int64_t)sizeof(float);
    return total;
}

static void comp_bind(kv_comp *c, int64_t r, int64_t dout, int overlap, int64_t n_ctx, float **fx, float **en) {
    c->r = r;
    c->dout = dout;
    c->overlap = overlap;
    c->cw = overlap ? 2 * dout : dout;
    c->pend_kv = *fx; *fx += r * c->cw;
    c->pend_g = *fx; *fx += r * c->cw;
    if (overlap) {
        c->prev_kv = *fx; *fx += r * dout;
        c->prev_g = *fx; *fx += r * dout;
    }
    c->cap = n_ctx / r + 1;
    c->entries = *en; *en += c->cap * dout;
    c->n = 0;
}

kv_state *kv_state_new(const dsv4_model *m, int64_t n_ctx) {
    const dsv4_hparams *hp = &m->hp;
    sizing s;
    if (n_ctx <= 0 || state_sizes(m, n_ctx, &s)) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "invalid context size %lld", (long long)n_ctx);
        return NULL;
    }
    kv_state *st = calloc(1, sizeof *st);
    if (!st) goto oom;
    st->n_layer = hp->n_layer;
    st->n_ctx = n_ctx;
    st->W = hp->window;
    st->D = hp->head_dim;
    st->layers = calloc((size_t)hp->n_layer, sizeof(kv_layer));
    st->fixed_floats = s.fixed;
    st->ent_floats = s.ent;
    st->fixed = ds4j_alloc((size_t)s.fixed * sizeof(float));
    st->ent = ds4j_alloc((size_t)(s.ent ? s.ent : 1) * sizeof(float));
    if (!st->layers || !st->fixed || !st->ent) goto oom;
    float *fx = st->fixed, *en = st->ent;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        kv_layer *L = &st->layers[l];
        L->win = fx;
        fx += hp->window * hp->head_dim;
        int kind = hp->kind[l];
        if (kind == DSV4_SWA) continue;
        comp_bind(&L->comp, hp->ratio[l], hp->head_dim, kind == DSV4_CSA, n_ctx, &fx, &en);
        if (kind == DSV4_CSA) comp_bind(&L->idx, hp->ratio[l], hp->idx_dim, 1, n_ctx, &fx, &en);
    }
    return st;
oom:
    kv_state_free(st);
    ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory allocating the decoder state for %lld tokens", (long long)n_ctx);
    return NULL;
}

void kv_state_free(kv_state *st) {
    if (!st) return;
    free(st->layers);
    ds4j_free(st->fixed);
    ds4j_free(st->ent);
    free(st);
}

static void set_counters(kv_state *st, int64_t pos) {
    st->pos = pos;
    for (int64_t l = 0; l < st->n_layer; l++) {
        kv_layer *L = &st->layers[l];
        if (L->comp.r) L->comp.n = pos / L->comp.r;
        if (L->idx.r) L->idx.n = pos / L->idx.r;
    }
}

void kv_state_reset(kv_state *st) {
    memset(st->fixed, 0, (size_t)st->fixed_floats * sizeof(float));
    set_counters(st, 0);
}

void kv_state_save_fixed(const kv_state *st, float *dst) {
    memcpy(dst, st->fixed, (size_t)st->fixed_floats * sizeof(float));
}

void kv_state_restore_fixed(kv_state *st, const float *src, int64_t pos) {
    memcpy(st->fixed, src, (size_t)st->fixed_floats * sizeof(float));
    set_counters(st, pos);
}
