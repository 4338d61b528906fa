/*
 * slice.c — `ds4j-tool slice`: a copy of a deepseek4 GGUF whose stacked
 * routed-expert tensors hold only experts [lo, hi). Expert e of a stacked
 * tensor is the contiguous block e * (nbytes / ne[2]), so a slice is one
 * memcpy per tensor from the source mapping; everything the routing needs
 * (router, bias, tid2eid) stays whole so expert ids remain global.
 */
#include "slice.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gguf.h"
#include "model_dsv4.h"

int ds4j_slice_is_expert_tensor(const char *name, int64_t *layer) {
    static const char *const kinds[] = {"gate", "up", "down"};
    long long l;
    int n = 0;
    /* digits right after "blk." (sscanf alone would also take " 1" or "+1") */
    if (strncmp(name, "blk.", 4) != 0 || name[4] < '0' || name[4] > '9') return 0;
    if (sscanf(name, "blk.%lld.ffn_%n", &l, &n) != 1 || n == 0 || l < 0) return 0;
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "%s_exps.weight", kinds[i]);
        if (!strcmp(name + n, want)) {
            if (layer) *layer = l;
            return 1;
        }
    }
    return 0;
}

typedef struct slice_ctx {
    const gguf_file *f;
    int64_t skip; /* experts of the source tensors before the first kept one */
} slice_ctx;

static int slice_fill(void *user, const char *name, void *dst, uint64_t nbytes, char *err, size_t cap) {
    const slice_ctx *c = user;
    const gguf_tensor *t = gguf_find_tensor(c->f, name);
    if (!t) { snprintf(err, cap, "tensor '%s' vanished from the source", name); return DS4J_ERR_STATE; }
    uint64_t off = 0;
    if (ds4j_slice_is_expert_tensor(name, NULL)) off = (uint64_t)c->skip * (t->nbytes / (uint64_t)t->ne[2]);
    if (off > t->nbytes || nbytes > t->nbytes - off) {
        snprintf(err, cap, "tensor '%s': %llu bytes at %llu exceed its %llu bytes", name, (unsigned long long)nbytes,
                 (unsigned long long)off, (unsigned long long)t->nbytes);
        return DS4J_ERR_FORMAT;
    }
    memcpy(dst, (const uint8_t *)t->data + off, nbytes);
    return 0;
}

static int key_int(const gguf_file *f, const char *key, int64_t *out, char *err, size_t cap) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || gguf_kv_type(kv) == GGUF_T_BOOL || !gguf_kv_get_int(kv, out) || *out < 1 || *out > INT32_MAX) {
        snprintf(err, cap, "metadata key '%s' is missing or not a positive integer", key);
        return DS4J_ERR_FORMAT;
    }
    return 0;
}

int ds4j_slice_gguf(const char *in_path, int64_t lo, int64_t hi, const char *out_path, char *err, size_t err_cap) {
    char ebuf[512];
    if (!err || !err_cap) { err = ebuf; err_cap = sizeof ebuf; }
    err[0] = 0;
    if (!in_path || !*in_path || !out_path || !*out_path) {
        snprintf(err, err_cap, "input and output paths are required");
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "%s", err);
    }
    /* renaming over the file being read would leave a reader of the old
     * name with a truncated view on some filesystems, and loses the source */
    char *ri = realpath(in_path, NULL), *ro = realpath(out_path, NULL);
    int same = ri && ro && !strcmp(ri, ro);
    free(ri);
    free(ro);
    if (same) {
        snprintf(err, err_cap, "the output '%s' is the input file; write the slice to a new path", out_path);
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "%s", err);
    }
    gguf_file *f = NULL;
    int rc = gguf_open(&f, in_path, err, err_cap);
    if (rc) return ds4j_fail(rc, "%s", err);
    gguf_writer *w = NULL;
    int64_t *found = NULL;
    int64_t E, L, slo, shi;
    int sliced;
    const gguf_kv *arch = gguf_find_kv(f, "general.architecture");
    gguf_string as;
    if (!arch || !gguf_kv_get_str(arch, &as) || as.len != 9 || memcmp(as.ptr, "deepseek4", 9) != 0) {
        snprintf(err, err_cap, "'%s' is not a deepseek4 GGUF (general.architecture)", in_path);
        rc = DS4J_ERR_FORMAT;
        goto done;
    }
    if ((rc = key_int(f, "deepseek4.expert_count", &E, err, err_cap))) goto done;
    if ((rc = key_int(f, "deepseek4.block_count", &L, err, err_cap))) goto done;
    if ((rc = dsv4_read_slice(f, E, &slo, &shi, &sliced))) {
        snprintf(err, err_cap, "'%s': %s", in_path, ds4j_last_error());
        goto done;
    }
    if (lo < 0 || hi <= lo || hi > E) {
        snprintf(err, err_cap, "expert range %lld:%lld is invalid: the model has %lld routed experts (need 0 <= A < B "
                 "<= %lld)", (long long)lo, (long long)hi, (long long)E, (long long)E);
        rc = DS4J_ERR_INVALID_ARGUMENT;
        goto done;
    }
    if (lo < slo || hi > shi) {
        snprintf(err, err_cap, "'%s' is already an expert slice holding experts %lld:%lld; %lld:%lld is not inside it "
                 "(slice the full file instead)", in_path, (long long)slo, (long long)shi, (long long)lo, (long long)hi);
        rc = DS4J_ERR_INVALID_ARGUMENT;
        goto done;
    }
    /* every layer must have its three stacked tensors, each holding the
     * source's experts: found[l] is a bit set of gate/up/down */
    found = calloc((size_t)L, sizeof *found);
    w = gguf_writer_new();
    if (!found || !w) { snprintf(err, err_cap, "out of memory"); rc = DS4J_ERR_NO_MEMORY; goto done; }
    slice_ctx ctx = {.f = f, .skip = lo - slo};
    for (int64_t i = 0; i < gguf_kv_count(f); i++)
        if ((rc = gguf_writer_set_kv(w, NULL, gguf_kv_at(f, i)))) {
            snprintf(err, err_cap, "copying metadata key '%s' failed: %s", gguf_kv_key(gguf_kv_at(f, i)), ds4j_last_error());
            goto done;
        }
    gguf_writer_set_u32(w, DSV4_KEY_SLICE_START, (uint32_t)lo);
    gguf_writer_set_u32(w, DSV4_KEY_SLICE_END, (uint32_t)hi);
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        int64_t ne[GGUF_MAX_DIMS], l;
        memcpy(ne, t->ne, sizeof ne);
        if (ds4j_slice_is_expert_tensor(t->name, &l)) {
            if (l >= L) {
                snprintf(err, err_cap, "tensor '%s' names a layer beyond block_count %lld", t->name, (long long)L);
                rc = DS4J_ERR_FORMAT;
                goto done;
            }
            if (t->n_dims != 3 || t->ne[2] != shi - slo || t->nbytes % (uint64_t)t->ne[2]) {
                snprintf(err, err_cap, "tensor '%s' has %u dims and %lld experts; expected 3 dims and %lld experts",
                         t->name, (unsigned)t->n_dims, (long long)t->ne[2], (long long)(shi - slo));
                rc = DS4J_ERR_FORMAT;
                goto done;
            }
            int bit = strstr(t->name, "_gate_exps") ? 1 : strstr(t->name, "_up_exps") ? 2 : 4;
            found[l] |= bit;
            ne[2] = hi - lo;
        }
        if ((rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, ne, slice_fill, &ctx))) {
            snprintf(err, err_cap, "tensor '%s': %s", t->name, ds4j_last_error());
            goto done;
        }
    }
    for (int64_t l = 0; l < L; l++)
        if (found[l] != 7) {
            const char *k = !(found[l] & 1) ? "gate" : !(found[l] & 2) ? "up" : "down";
            snprintf(err, err_cap, "missing tensor 'blk.%lld.ffn_%s_exps.weight' (every layer needs its stacked "
                     "routed experts)", (long long)l, k);
            rc = DS4J_ERR_FORMAT;
            goto done;
        }
    rc = gguf_writer_write(w, out_path, err, err_cap);
done:
    gguf_writer_free(w);
    free(found);
    gguf_close(f);
    if (rc) return ds4j_fail(rc, "%s", err);
    return 0;
}
