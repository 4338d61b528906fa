/*
 * kv_state.c — allocation and checkpointing of the decoder state (see
 * kv_state.h). Entry capacity is n_ctx / ratio + 1 per compressor. One
 * layout walk both measures and binds, so the reported size is exactly
 * what is allocated.
 */
#include "kv_state.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kv_quant.h"
#include "model_dsv4.h"

/* Sub-buffers start on 64-byte boundaries. */
typedef struct walk {
    int64_t fixed, ent;   /* running byte offsets */
    uint8_t *fbase, *ebase; /* NULL while measuring */
    int ok;
} walk;

static void *take(walk *w, int64_t *off, uint8_t *base, int64_t n, int64_t size) {
    int64_t b;
    if (!w->ok || !ds4j_mul_ok(n, size, &b) || !ds4j_add_ok(b, 63, &b)) { w->ok = 0; return NULL; }
    b &= ~(int64_t)63;
    void *p = base ? base + *off : NULL;
    if (!ds4j_add_ok(*off, b, off)) w->ok = 0;
    return p;
}

static void comp_walk(walk *w, kv_comp *c, int64_t r, int64_t dout, int overlap, int fmt, int64_t n_rot,
                      int64_t n_ctx) {
    kv_comp tmp;
    if (!c) c = &tmp;
    c->r = r;
    c->dout = dout;
    c->overlap = overlap;
    c->cw = overlap ? 2 * dout : dout;
    c->fmt = fmt;
    c->pend_kv = take(w, &w->fixed, w->fbase, r * c->cw, 4);
    c->pend_g = take(w, &w->fixed, w->fbase, r * c->cw, 4);
    c->prev_kv = c->prev_g = NULL;
    if (overlap) {
        c->prev_kv = take(w, &w->fixed, w->fbase, r * dout, 4);
        c->prev_g = take(w, &w->fixed, w->fbase, r * dout, 4);
    }
    c->cap = n_ctx / r + 1;
    c->entries = NULL;
    c->ent8 = NULL;
    if (fmt == KV_FMT_F32) {
        c->row_bytes = dout * 4;
        c->entries = take(w, &w->ent, w->ebase, c->cap, c->row_bytes);
    } else {
        c->row_bytes = fmt == KV_FMT_FP8 ? kvq_kv_row_bytes(dout, n_rot) : kvq_idx_row_bytes(dout);
        c->ent8 = take(w, &w->ent, w->ebase, c->cap, c->row_bytes);
    }
    c->n = 0;
}

static void state_walk(const dsv4_model *m, int64_t n_ctx, int kv_fp8, walk *w, kv_layer *layers) {
    const dsv4_hparams *hp = &m->hp;
    int64_t D = hp->head_dim, dr = hp->n_rot;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        kv_layer tmp, *L = layers ? &layers[l] : &tmp;
        memset(L, 0, sizeof *L);
        if (kv_fp8) {
            L->win_row_bytes = kvq_kv_row_bytes(D, dr);
            L->win8 = take(w, &w->fixed, w->fbase, hp->window, L->win_row_bytes);
        } else {
            L->win_row_bytes = D * 4;
            L->win = take(w, &w->fixed, w->fbase, hp->window, L->win_row_bytes);
        }
        int kind = hp->kind[l];
        if (kind == DSV4_SWA) continue;
        comp_walk(w, &L->comp, hp->ratio[l], D, kind == DSV4_CSA, kv_fp8 ? KV_FMT_FP8 : KV_FMT_F32, dr, n_ctx);
        if (kind == DSV4_CSA)
            comp_walk(w, &L->idx, hp->ratio[l], hp->idx_dim, 1, kv_fp8 ? KV_FMT_FP4_IDX : KV_FMT_F32, dr, n_ctx);
    }
}

int64_t kv_state_bytes(const dsv4_model *m, int64_t n_ctx, int kv_fp8, int64_t *fixed_bytes) {
    if (n_ctx <= 0) return -1;
    walk w = {.ok = 1};
    state_walk(m, n_ctx, kv_fp8, &w, NULL);
    int64_t total;
    if (!w.ok || !ds4j_add_ok(w.fixed, w.ent, &total)) return -1;
    total += m->hp.n_layer * (int64_t)sizeof(kv_layer) + (int64_t)sizeof(kv_state);
    if (fixed_bytes) *fixed_bytes = w.fixed;
    return total;
}

static void *host_alloc(void *u, size_t n) { (void)u; return ds4j_alloc(n ? n : 64); }
static void host_free(void *u, void *p) { (void)u; ds4j_free(p); }
static void host_copy(void *u, void *d, const void *s, size_t n) { (void)u; memcpy(d, s, n); }
static void host_zero(void *u, void *p, size_t n) { (void)u; memset(p, 0, n); }
static const kv_mem_ops host_mem = {host_alloc, host_free, host_copy, host_zero, host_copy, host_copy, NULL};

kv_state *kv_state_new(const dsv4_model *m, int64_t n_ctx, int kv_fp8) { return kv_state_new_mem(m, n_ctx, kv_fp8, NULL); }

void *kv_state_mem_alloc(const kv_state *st, size_t bytes) { return st->mem->alloc(st->mem->user, bytes); }
void kv_state_mem_free(const kv_state *st, void *p) { if (p) st->mem->free(st->mem->user, p); }

kv_state *kv_state_new_mem(const dsv4_model *m, int64_t n_ctx, int kv_fp8, const kv_mem_ops *mem) {
    if (!mem) mem = &host_mem;
    const dsv4_hparams *hp = &m->hp;
    walk w = {.ok = 1};
    if (n_ctx > 0) state_walk(m, n_ctx, kv_fp8, &w, NULL);
    if (n_ctx <= 0 || !w.ok) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "invalid context size %lld", (long long)n_ctx);
        return NULL;
    }
    kv_state *st = calloc(1, sizeof *st);
    if (!st) goto oom;
    st->n_layer = hp->n_layer;
    st->n_ctx = n_ctx;
    st->W = hp->window;
    st->D = hp->head_dim;
    st->n_rot = hp->n_rot;
    st->kv_fp8 = kv_fp8;
    st->mem = mem;
    st->layers = calloc((size_t)hp->n_layer, sizeof(kv_layer));
    st->fixed_bytes = w.fixed;
    st->ent_bytes = w.ent;
    st->fixed = mem->alloc(mem->user, (size_t)(w.fixed ? w.fixed : 64));
    st->ent = mem->alloc(mem->user, (size_t)(w.ent ? w.ent : 64));
    if (!st->layers || !st->fixed || !st->ent) goto oom;
    walk b = {.ok = 1, .fbase = st->fixed, .ebase = st->ent};
    state_walk(m, n_ctx, kv_fp8, &b, st->layers);
    return st;
oom:
    kv_state_free(st);
    ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory allocating the decoder state for %lld tokens", (long long)n_ctx);
    return NULL;
}

void kv_state_free(kv_state *st) {
    if (!st) return;
    free(st->layers);
    if (st->mem) {
        if (st->fixed) st->mem->free(st->mem->user, st->fixed);
        if (st->ent) st->mem->free(st->mem->user, st->ent);
    }
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

void kv_state_set_pos(kv_state *st, int64_t pos) { set_counters(st, pos); }

static void *entry_base(const kv_comp *c) { return c->entries ? (void *)c->entries : (void *)c->ent8; }

void kv_state_copy_at(kv_state *dst, const kv_state *src, const void *fixed, int64_t pos) {
    const kv_mem_ops *mem = dst->mem;
    mem->copy(mem->user, dst->fixed, fixed, (size_t)dst->fixed_bytes);
    for (int64_t l = 0; l < dst->n_layer; l++) {
        const kv_comp *sc[2] = {&src->layers[l].comp, &src->layers[l].idx};
        kv_comp *dc[2] = {&dst->layers[l].comp, &dst->layers[l].idx};
        for (int k = 0; k < 2; k++) {
            if (!dc[k]->r) continue;
            size_t bytes = (size_t)((pos / dc[k]->r) * dc[k]->row_bytes);
            /* (the capacities differ with n_ctx, so the arrays start at different offsets) */
            if (bytes) mem->copy(mem->user, entry_base(dc[k]), entry_base(sc[k]), bytes);
        }
    }
    set_counters(dst, pos);
}

void kv_state_reset(kv_state *st) {
    st->mem->zero(st->mem->user, st->fixed, (size_t)st->fixed_bytes);
    set_counters(st, 0);
}

void kv_state_save_fixed(const kv_state *st, void *dst) { st->mem->copy(st->mem->user, dst, st->fixed, (size_t)st->fixed_bytes); }

void kv_state_restore_fixed(kv_state *st, const void *src, int64_t pos) {
    st->mem->copy(st->mem->user, st->fixed, src, (size_t)st->fixed_bytes);
    set_counters(st, pos);
}
