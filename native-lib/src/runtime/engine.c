/*
 * engine.c — the public API's engine entry points (ds4j.h): version, option
 * parsing, engine open/close, the metadata view and the JSON description.
 * Model loading and evaluation live in model_dsv4.c / forward_dsv4.c,
 * sessions in session.c, sampling in sampling.c.
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "quants.h"
#include "session.h"
#include "cuda_backend.h"

DS4J_API const char *ds4j_version(void) { return "ds4j " DS4J_VERSION_STRING; }

DS4J_API int32_t ds4j_api_version(void) { return DS4J_API_VERSION; }

/* ------------------------------------------------------------ options */

int ds4j_parse_i64(const char *v, int64_t *out) {
    if (!v || !*v) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end) return -1;
    *out = x;
    return 0;
}

int ds4j_parse_f64(const char *v, double *out) {
    if (!v || !*v) return -1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

int ds4j_opts_parse(const char *s, int (*cb)(void *, const char *, const char *), void *user) {
    if (!s) return 0;
    char item[512];
    while (*s) {
        size_t n = strcspn(s, ";\n");
        if (n >= sizeof item) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "option item too long");
        memcpy(item, s, n);
        item[n] = 0;
        s += n;
        if (*s) s++;
        char *b = item, *e = item + n;
        while (*b && isspace((unsigned char)*b)) b++;
        while (e > b && isspace((unsigned char)e[-1])) *--e = 0;
        if (!*b) continue;
        char *eq = strchr(b, '=');
        if (!eq) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "option '%s' is not key=value", b);
        *eq = 0;
        char *k = b, *v = eq + 1, *ke = eq;
        while (ke > k && isspace((unsigned char)ke[-1])) *--ke = 0;
        while (*v && isspace((unsigned char)*v)) v++;
        int rc = cb(user, k, v);
        if (rc) return rc;
    }
    return 0;
}

typedef struct engine_opts {
    int64_t threads, vocab_only, prefill_chunk, exp_lo, exp_hi, exp_compact;
    int kv_fp8;
    int cuda;
    int64_t device;
    int all_sum_dtype; /* 0 f32, 1 f16, 2 bf16 */
    int64_t allsum_overlap;
    int64_t divergence_check; /* compare the ranks' token hashes every N forwards; 0 = off */
    char comm[16];
    char comm_plugin[400];
    char comm_options[256];
    char respawn_tool[400];
} engine_opts;

static int engine_opt_cb(void *user, const char *k, const char *v) {
    engine_opts *o = user;
    int64_t x;
    if (!strcmp(k, "threads")) {
        if (ds4j_parse_i64(v, &x) || x < 0 || x > 1024)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "threads=%s: expected an integer in [0, 1024]", v);
        o->threads = x;
    } else if (!strcmp(k, "vocab_only")) {
        if (ds4j_parse_i64(v, &x) || (x != 0 && x != 1))
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "vocab_only=%s: expected 0 or 1", v);
        o->vocab_only = x;
    } else if (!strcmp(k, "prefill_chunk")) {
        if (ds4j_parse_i64(v, &x) || x < 1 || x > 65536)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "prefill_chunk=%s: expected an integer in [1, 65536]", v);
        o->prefill_chunk = x;
    } else if (!strcmp(k, "expert_range")) {
        const char *c = strchr(v, ':');
        char a[32];
        if (!c || (size_t)(c - v) >= sizeof a)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "expert_range=%s: expected A:B", v);
        memcpy(a, v, (size_t)(c - v));
        a[c - v] = 0;
        if (ds4j_parse_i64(a, &o->exp_lo) || ds4j_parse_i64(c + 1, &o->exp_hi) || o->exp_lo < 0 || o->exp_hi <= o->exp_lo)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "expert_range=%s: expected A:B with 0 <= A < B", v);
    } else if (!strcmp(k, "kv_precision")) {
        if (!strcmp(v, "f32")) o->kv_fp8 = 0;
        else if (!strcmp(v, "fp8")) o->kv_fp8 = 1;
        else return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "kv_precision=%s: expected f32 or fp8", v);
    } else if (!strcmp(k, "all_sum_dtype")) {
        if (!strcmp(v, "f32")) o->all_sum_dtype = 0;
        else if (!strcmp(v, "f16")) o->all_sum_dtype = 1;
        else if (!strcmp(v, "bf16")) o->all_sum_dtype = 2;
        else return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "all_sum_dtype=%s: expected f32, f16 or bf16", v);
    } else if (!strcmp(k, "allsum_overlap")) {
        if (ds4j_parse_i64(v, &x) || (x != 0 && x != 1))
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "allsum_overlap=%s: expected 0 or 1", v);
        o->allsum_overlap = x;
    } else if (!strcmp(k, "divergence_check")) {
        if (ds4j_parse_i64(v, &x) || x < 0 || x > 1000000)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "divergence_check=%s: expected an integer in [0, 1000000] "
                             "(forwards between checks, 0 = off)", v);
        o->divergence_check = x;
    } else if (!strcmp(k, "backend")) {
        if (!strcmp(v, "cpu")) o->cuda = 0;
        else if (!strcmp(v, "cuda")) o->cuda = 1;
        else return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "backend=%s: expected cpu or cuda", v);
    } else if (!strcmp(k, "device")) {
        if (ds4j_parse_i64(v, &x) || x < 0 || x > 1023)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "device=%s: expected a CUDA device index in [0, 1023]", v);
        o->device = x;
    } else if (!strcmp(k, "comm")) {
        if (strlen(v) >= sizeof o->comm || !*v)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "comm=%s: expected none, local, mpi, nccl or jaccl", v);
        snprintf(o->comm, sizeof o->comm, "%s", v);
    } else if (!strcmp(k, "comm_plugin")) {
        if (strlen(v) >= sizeof o->comm_plugin)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "comm_plugin: path too long");
        snprintf(o->comm_plugin, sizeof o->comm_plugin, "%s", v);
    } else if (!strcmp(k, "comm_options")) {
        /* handed verbatim to the backend plugin (comm=nccl: device=N,timeout_ms=N) */
        if (strlen(v) >= sizeof o->comm_options)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "comm_options: too long");
        snprintf(o->comm_options, sizeof o->comm_options, "%s", v);
    } else if (!strcmp(k, "respawn_tool")) {
        /* recovery (ds4j_engine_recover): the ds4j-tool that new followers run */
        if (strlen(v) >= sizeof o->respawn_tool || !*v)
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "respawn_tool: expected the path of ds4j-tool (at most %zu bytes)",
                             sizeof o->respawn_tool - 1);
        snprintf(o->respawn_tool, sizeof o->respawn_tool, "%s", v);
    } else if (!strcmp(k, "expert_compact")) {
        if (ds4j_parse_i64(v, &x) || (x != 0 && x != 1))
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "expert_compact=%s: expected 0 or 1", v);
        o->exp_compact = x;
    } else {
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "unknown engine option '%s'", k);
    }
    return 0;
}

/* ------------------------------------------------------------ describe */

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t avail = b->cap - b->n;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? avail : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->p && (size_t)k < avail) { b->n += (size_t)k; return; }
        size_t nc = (b->cap ? b->cap * 2 : 1024) + (size_t)k;
        char *np = realloc(b->p, nc);
        if (!np) return;
        b->p = np;
        b->cap = nc;
    }
}

static char *build_describe(const ds4j_engine *e) {
    sbuf b = {0};
    sb_printf(&b, "{\"architecture\":\"deepseek4\",\"path\":\"");
    for (const char *c = e->path; *c; c++) {
        if (*c == '"' || *c == '\\') sb_printf(&b, "\\%c", *c);
        else if ((unsigned char)*c < 0x20) sb_printf(&b, "\\u%04x", *c);
        else sb_printf(&b, "%c", *c);
    }
    sb_printf(&b, "\",\"comm\":\"%s\",\"rank\":%d,\"world_size\":%d", e->comm ? ds4j_comm_name(e->comm) : "none",
              ds4j_comm_rank(e->comm), ds4j_comm_size(e->comm));
    sb_printf(&b, ",\"backend\":\"%s\",\"all_sum_dtype\":\"%s\"", e->gpu ? "cuda" : "cpu",
              e->all_sum_dtype == 1 ? "f16" : e->all_sum_dtype == 2 ? "bf16" : "f32");
    /* in effect: false without a multi-process group, with backend=cuda or allsum_overlap=0 */
    sb_printf(&b, ",\"allsum_overlap\":%s", e->dist && e->allsum_overlap ? "true" : "false");
    if (e->gpu) sb_printf(&b, ",\"device\":%s", cuda_engine_describe(e->gpu));
    sb_printf(&b, ",\"n_vocab\":%lld,\"vocab_only\":%s,\"threads\":%d,\"prefill_chunk\":%lld,\"checkpoint_interval\":%d,"
              "\"kernels\":\"%s\"", (long long)e->n_vocab, e->vocab_only ? "true" : "false", e->n_threads,
              (long long)e->prefill_chunk, DS4J_CK_INTERVAL, ds4j_quants_kernel_name());
    if (e->model) {
        const dsv4_model *m = e->model;
        const dsv4_hparams *hp = &m->hp;
        sb_printf(&b,
                  ",\"n_embd\":%lld,\"n_layer\":%lld,\"n_head\":%lld,\"head_dim\":%lld,\"n_rot\":%lld,\"q_lora_rank\":%lld,"
                  "\"o_groups\":%lld,\"o_lora_rank\":%lld,\"n_expert\":%lld,\"n_expert_used\":%lld,\"expert_ff\":%lld,"
                  "\"n_hash_layers\":%lld,\"sliding_window\":%lld,\"indexer_heads\":%lld,\"indexer_dim\":%lld,"
                  "\"indexer_topk\":%lld,\"hc\":%lld,\"context_length\":%lld,\"expert_range\":[%lld,%lld],"
                  "\"expert_compact\":%s,\"kv_precision\":\"%s\",\"n_params\":%lld,\"weight_bytes\":%lld,\"active_bytes_per_token\":%lld",
                  (long long)hp->n_embd, (long long)hp->n_layer, (long long)hp->n_head, (long long)hp->head_dim,
                  (long long)hp->n_rot, (long long)hp->q_lora, (long long)hp->o_groups, (long long)hp->o_lora,
                  (long long)hp->n_expert, (long long)hp->n_expert_used, (long long)hp->n_ff_exp, (long long)hp->n_hash,
                  (long long)hp->window, (long long)hp->idx_heads, (long long)hp->idx_dim, (long long)hp->idx_topk,
                  (long long)hp->hc, (long long)hp->ctx_train, (long long)m->expert_lo, (long long)m->expert_hi,
                  e->expert_compact ? "true" : "false", e->kv_fp8 ? "fp8" : "f32", (long long)m->n_params, (long long)m->total_bytes,
                  (long long)m->active_bytes);
        /* the experts the file's tensors hold (null: a full file) */
        if (m->sliced) sb_printf(&b, ",\"expert_slice\":[%lld,%lld]", (long long)m->slice_lo, (long long)m->slice_hi);
        else sb_printf(&b, ",\"expert_slice\":null");
        sb_printf(&b, ",\"compress_ratios\":[");
        for (int64_t l = 0; l < hp->n_layer; l++) sb_printf(&b, "%s%d", l ? "," : "", hp->ratio[l]);
        sb_printf(&b, "],\"layer_kinds\":[");
        for (int64_t l = 0; l < hp->n_layer; l++)
            sb_printf(&b, "%s\"%s\"", l ? "," : "", hp->kind[l] == DSV4_SWA ? "swa" : hp->kind[l] == DSV4_CSA ? "csa" : "hca");
        sb_printf(&b, "],\"tensor_types\":{");
        int64_t counts[DS4J_TYPE_COUNT] = {0};
        for (int64_t i = 0; i < gguf_tensor_count(e->gguf); i++) {
            int32_t t = gguf_tensor_at(e->gguf, i)->type;
            if (t >= 0 && t < DS4J_TYPE_COUNT) counts[t]++;
        }
        int first = 1;
        for (int t = 0; t < DS4J_TYPE_COUNT; t++) {
            if (!counts[t]) continue;
            const ds4j_type_traits *tr = ds4j_type_get(t);
            sb_printf(&b, "%s\"%s\":%lld", first ? "" : ",", tr ? tr->name : "?", (long long)counts[t]);
            first = 0;
        }
        sb_printf(&b, "}");
    }
    sb_printf(&b, "}");
    return b.p;
}

/* ------------------------------------------------------------ engine */

DS4J_API ds4j_engine *ds4j_engine_open(const char *gguf_path, const char *options) {
    ds4j_clear_error();
    if (!gguf_path || !*gguf_path) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "model path is empty");
        return NULL;
    }
    engine_opts o = {.threads = 0, .vocab_only = 0, .prefill_chunk = 64, .exp_lo = -1, .exp_hi = -1, .kv_fp8 = 0,
                      .divergence_check = 1, .allsum_overlap = 1};
    if (ds4j_opts_parse(options, engine_opt_cb, &o)) return NULL;
    if (o.cuda && o.vocab_only) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "backend=cuda needs the weights (not with vocab_only=1)");
        return NULL;
    }
    if (o.cuda && o.kv_fp8) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "backend=cuda keeps the decoder state in f32: kv_precision=fp8 is CPU-only");
        return NULL;
    }
    int use_comm = o.comm[0] && strcmp(o.comm, "none") != 0;
    if (use_comm && o.vocab_only) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "comm=%s needs the weights (not with vocab_only=1)", o.comm);
        return NULL;
    }
    if (o.exp_compact && o.vocab_only) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "expert_compact=1 needs the weights (not with vocab_only=1)");
        return NULL;
    }
    ds4j_quants_init();
    ds4j_engine *e = calloc(1, sizeof *e);
    if (!e) { ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory"); return NULL; }
    int handshake_done = 0;
    e->path = strdup(gguf_path);
    e->options = strdup(options ? options : "");
    snprintf(e->respawn_tool, sizeof e->respawn_tool, "%s", o.respawn_tool);
    e->vocab_only = (int)o.vocab_only;
    e->kv_fp8 = o.kv_fp8;
    e->expert_compact = (int)o.exp_compact;
    e->prefill_chunk = o.prefill_chunk;
    e->all_sum_dtype = o.all_sum_dtype;
    e->allsum_overlap = (int)o.allsum_overlap;
    e->divergence_check = o.divergence_check;
    /* The communicator comes first: from here on a failure must still take
     * part in the handshake (see fail:) so that peers are not left waiting. */
    if (use_comm && ds4j_comm_open_opts(&e->comm, o.comm, o.comm_plugin, o.comm_options)) goto fail;
    FILE *fp = fopen(gguf_path, "rb");
    if (!fp) {
        ds4j_fail(DS4J_ERR_IO, "cannot open model file '%s': %s", gguf_path, strerror(errno));
        goto fail;
    }
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    if (got != 4 || memcmp(magic, "GGUF", 4) != 0) {
        ds4j_fail(DS4J_ERR_FORMAT, "'%s' is not a GGUF file (bad magic)", gguf_path);
        goto fail;
    }
    char err[512] = {0};
    int rc = gguf_open(&e->gguf, gguf_path, err, sizeof err);
    if (rc) {
        ds4j_fail(rc, "%s", err[0] ? err : "cannot open model file");
        if (!strstr(ds4j_last_error(), gguf_path)) ds4j_fail(rc, "'%s': %s", gguf_path, err);
        goto fail;
    }
    if (!e->vocab_only) {
        if (dsv4_model_load(&e->model, e->gguf)) goto fail;
        e->n_vocab = e->model->hp.n_vocab;
        e->model->require_compact = e->expert_compact;
        if (!e->comm) {
            /* one process computes every routed expert's share itself, so
             * it cannot run on a file that lacks some of them */
            if (dsv4_model_partial(e->model)) {
                ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "'%s' is an expert slice (experts %lld:%lld of %lld): a single "
                          "process (no comm=) cannot serve it; open it with comm= as the rank that owns those experts, "
                          "or use the full file", gguf_path, (long long)e->model->slice_lo,
                          (long long)e->model->slice_hi, (long long)e->model->hp.n_expert);
                goto fail;
            }
            int64_t lo = o.exp_lo >= 0 ? o.exp_lo : 0, hi = o.exp_lo >= 0 ? o.exp_hi : e->model->hp.n_expert;
            if (dsv4_model_set_expert_range(e->model, lo, hi)) goto fail;
        }
        e->pool = ds4j_pool_new((int)o.threads);
        if (!e->pool) { ds4j_fail(DS4J_ERR_NO_MEMORY, "cannot start worker threads"); goto fail; }
        e->n_threads = ds4j_pool_size(e->pool);
        if (!o.cuda) {
            e->scratch = dsv4_scratch_new(e->model, e->prefill_chunk, e->n_threads);
            if (!e->scratch) { ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory for evaluation scratch"); goto fail; }
        }
        if (e->comm) {
            handshake_done = 1;
            if (ds4j_dist_handshake(e, 1, o.exp_lo, o.exp_hi)) goto fail;
        }
        /* the expert range is final only now (the handshake sets it under
         * comm=): upload just the owned experts. A failure here is after the
         * handshake, so the peers learn of it at their first collective. */
        if (o.cuda) {
            e->device = (int)o.device;
            if (cuda_engine_open(&e->gpu, e->model, e->device, e->prefill_chunk)) goto fail;
        }
    } else {
        const gguf_kv *kv = gguf_find_kv(e->gguf, "deepseek4.vocab_size");
        int64_t v = 0;
        if (kv && gguf_kv_get_int(kv, &v) && v > 0) e->n_vocab = v;
        else if ((kv = gguf_find_kv(e->gguf, "tokenizer.ggml.tokens"))) e->n_vocab = (int64_t)gguf_kv_arr_len(kv);
        else {
            const gguf_tensor *t = gguf_find_tensor(e->gguf, "token_embd.weight");
            e->n_vocab = t ? t->ne[1] : 0;
        }
        if (e->n_vocab <= 0 || e->n_vocab > INT32_MAX) {
            ds4j_fail(DS4J_ERR_FORMAT, "'%s': vocabulary size %lld is out of range [1, %d]", gguf_path,
                      (long long)e->n_vocab, INT32_MAX);
            goto fail;
        }
    }
    ds4j_state_fingerprint_init(e);
    e->describe = build_describe(e);
    if (!e->describe) { ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory"); goto fail; }
    return e;
fail:
    if (e->comm && !handshake_done) ds4j_dist_handshake(e, 0, -1, -1);
    ds4j_engine_close(e);
    return NULL;
}

DS4J_API void ds4j_engine_close(ds4j_engine *e) {
    if (!e) return;
    ds4j_dist_close(e);
    cuda_engine_close(e->gpu);
    dsv4_scratch_free(e->scratch);
    ds4j_batch_ws_free(e);
    ds4j_pool_free(e->pool);
    dsv4_model_free(e->model);
    if (e->gguf) gguf_close(e->gguf);
    free(e->describe);
    free(e->options);
    free(e->path);
    free(e);
}

DS4J_API const char *ds4j_engine_describe(const ds4j_engine *e) { return e ? e->describe : NULL; }

DS4J_API int32_t ds4j_n_vocab(const ds4j_engine *e) { return e ? (int32_t)e->n_vocab : DS4J_ERR_INVALID_ARGUMENT; }

/* ------------------------------------------------------------ metadata */

/* Every metadata getter goes through here, so each call leaves either no
 * error or its own (never a stale message from an earlier call). */
static const gguf_kv *kv_at(const ds4j_engine *e, int32_t i) {
    ds4j_clear_error();
    if (!e || !e->gguf) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "metadata: engine is NULL or has no file");
        return NULL;
    }
    if (i < 0 || i >= gguf_kv_count(e->gguf)) {
        ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "metadata index %d out of range [0, %lld)", i,
                  (long long)gguf_kv_count(e->gguf));
        return NULL;
    }
    return gguf_kv_at(e->gguf, i);
}

DS4J_API int32_t ds4j_meta_count(const ds4j_engine *e) { return e && e->gguf ? (int32_t)gguf_kv_count(e->gguf) : 0; }

DS4J_API int32_t ds4j_meta_find(const ds4j_engine *e, const char *key) {
    if (!e || !e->gguf || !key) return -1;
    return (int32_t)gguf_find_kv_index(e->gguf, key);
}

DS4J_API const char *ds4j_meta_key(const ds4j_engine *e, int32_t i) {
    const gguf_kv *kv = kv_at(e, i);
    return kv ? gguf_kv_key(kv) : NULL;
}

DS4J_API int32_t ds4j_meta_type(const ds4j_engine *e, int32_t i) {
    const gguf_kv *kv = kv_at(e, i);
    return kv ? gguf_kv_type(kv) : DS4J_ERR_INVALID_ARGUMENT;
}

DS4J_API int64_t ds4j_meta_int(const ds4j_engine *e, int32_t i) {
    const gguf_kv *kv = kv_at(e, i);
    int64_t v = 0;
    if (kv) gguf_kv_get_int(kv, &v);
    return v;
}

DS4J_API double ds4j_meta_float(const ds4j_engine *e, int32_t i) {
    const gguf_kv *kv = kv_at(e, i);
    double v = 0;
    if (kv) gguf_kv_get_float(kv, &v);
    return v;
}

DS4J_API const char *ds4j_meta_str(const ds4j_engine *e, int32_t i, int64_t *len) {
    const gguf_kv *kv = kv_at(e, i);
    gguf_string s;
    if (!kv || !gguf_kv_get_str(kv, &s)) {
        if (kv) ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "metadata '%s' is not a string", gguf_kv_key(kv));
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = (int64_t)s.len;
    return s.ptr;
}

DS4J_API int32_t ds4j_meta_arr_type(const ds4j_engine *e, int32_t i) {
    const gguf_kv *kv = kv_at(e, i);
    return kv ? gguf_kv_arr_type(kv) : -1;
}

DS4J_API int64_t ds4j_meta_arr_len(const ds4j_engine *e, int32_t i) {
    const gguf_kv *kv = kv_at(e, i);
    return kv ? (int64_t)gguf_kv_arr_len(kv) : 0;
}

DS4J_API int64_t ds4j_meta_arr_int(const ds4j_engine *e, int32_t i, int64_t j) {
    const gguf_kv *kv = kv_at(e, i);
    int64_t v = 0;
    if (kv && j >= 0) gguf_kv_arr_int(kv, (uint64_t)j, &v);
    return v;
}

DS4J_API double ds4j_meta_arr_float(const ds4j_engine *e, int32_t i, int64_t j) {
    const gguf_kv *kv = kv_at(e, i);
    double v = 0;
    if (kv && j >= 0) gguf_kv_arr_float(kv, (uint64_t)j, &v);
    return v;
}

DS4J_API const char *ds4j_meta_arr_str(const ds4j_engine *e, int32_t i, int64_t j, int64_t *len) {
    const gguf_kv *kv = kv_at(e, i);
    gguf_string s;
    if (!kv || j < 0 || !gguf_kv_arr_str(kv, (uint64_t)j, &s)) {
        if (kv) ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "metadata '%s': element %lld is not a string", gguf_kv_key(kv),
                          (long long)j);
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = (int64_t)s.len;
    return s.ptr;
}
