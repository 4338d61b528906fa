/*
 * model_fixture.h — helpers for the model tests: convert a shared fixture
 * (HF safetensors) to GGUF with ds4j-tool, read its reference.json (token
 * lists and the greedy continuation) and reference logits.
 */
#ifndef DS4J_TEST_MODEL_FIXTURE_H
#define DS4J_TEST_MODEL_FIXTURE_H

#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gguf.h"
#include "quants.h"

#define FX_MAX_SEQ 8

typedef struct fx_ref {
    int n_seq;
    int32_t *tok[FX_MAX_SEQ];
    int n_tok[FX_MAX_SEQ];
    char logits_file[FX_MAX_SEQ][64];
    int greedy_seq;
    int32_t *greedy;
    int n_greedy;
} fx_ref;

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static char *fx_read_file(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = n;
    return b;
}

/* Parse "[1, 2, 3]" starting at p (after skipping to '['). */
static int32_t *fx_int_array(const char *p, int *n) {
    p = strchr(p, '[');
    const char *e = p ? strchr(p, ']') : NULL;
    if (!p || !e) return NULL;
    int cap = 16, k = 0;
    int32_t *v = malloc((size_t)cap * sizeof(int32_t));
    p++;
    while (p < e) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p) { p++; continue; }
        if (k == cap) { cap *= 2; v = realloc(v, (size_t)cap * sizeof(int32_t)); }
        v[k++] = (int32_t)x;
        p = end;
    }
    *n = k;
    return v;
}

__attribute__((unused)) static int fx_load_ref(const char *dir, fx_ref *r) {
    char path[2048];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    char *js = fx_read_file(path, NULL);
    if (!js) { fprintf(stderr, "cannot read %s\n", path); return -1; }
    memset(r, 0, sizeof *r);
    const char *p = strstr(js, "\"sequences\"");
    while (p && r->n_seq < FX_MAX_SEQ) {
        const char *t = strstr(p, "\"tokens\"");
        const char *g = strstr(p, "\"greedy\"");
        if (!t || (g && t > g)) break;
        int i = r->n_seq;
        r->tok[i] = fx_int_array(t, &r->n_tok[i]);
        const char *lf = strstr(t, "\"logits\"");
        if (lf) sscanf(lf, "\"logits\": \"%63[^\"]\"", r->logits_file[i]);
        r->n_seq++;
        p = t + 8;
    }
    const char *g = strstr(js, "\"greedy\"");
    if (g) {
        const char *ps = strstr(g, "\"prompt_sequence\"");
        if (ps) r->greedy_seq = atoi(ps + strlen("\"prompt_sequence\":"));
        const char *gen = strstr(g, "\"generated\"");
        if (gen) r->greedy = fx_int_array(gen, &r->n_greedy);
    }
    free(js);
    return r->n_seq > 0 ? 0 : -1;
}

__attribute__((unused)) static float *fx_load_logits(const char *dir, const fx_ref *r, int seq, int n_vocab) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, r->logits_file[seq]);
    long len;
    char *b = fx_read_file(path, &len);
    if (!b || len != (long)r->n_tok[seq] * n_vocab * 4) {
        fprintf(stderr, "reference logits %s: unexpected size\n", path);
        free(b);
        return NULL;
    }
    return (float *)b;
}

/* Convert fixture `name` (e.g. "dsv4-tiny-a") to DS4J_BUILD_DIR/<name>-<type>.gguf. */
__attribute__((unused)) static int fx_convert(const char *name, const char *type, char *out, size_t cap) {
    snprintf(out, cap, "%s/test-%s-%s.gguf", DS4J_BUILD_DIR, name, type);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' convert --hf '%s/fixtures/%s' --out '%s' --type %s > /dev/null 2>&1", DS4J_TOOL_PATH,
             DS4J_SHARED_DIR, name, out, type);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "conversion failed: %s\n", cmd);
    return rc;
}

/* Largest |a[i] - b[i]|; a NaN anywhere makes the result NaN (so a bound check fails). */
__attribute__((unused)) static double fx_maxdiff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Run a shell command under `timeout` (120 s); its exit status (124 = timed out). */
__attribute__((unused)) static int fx_run(const char *cmd) {
    size_t n = strlen(cmd) + 32;
    char *full = malloc(n);
    if (!full) return -1;
    snprintf(full, n, "timeout -k 5 120 %s", cmd);
    int st = system(full);
    free(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* "1,2,3" into buf (truncated to cap). */
__attribute__((unused)) static void fx_ids_csv(const int32_t *ids, int n, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && o < cap; i++) o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? "," : "", ids[i]);
}

/* log-softmax in double (for KL against reference rows) and argmax */
__attribute__((unused)) static void fx_log_softmax(const float *x, double *out, int n) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) s += exp(x[i] - mx);
    double l = mx + log(s);
    for (int i = 0; i < n; i++) out[i] = x[i] - l;
}

__attribute__((unused)) static int fx_argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

__attribute__((unused)) static void fx_free_ref(fx_ref *r) {
    for (int i = 0; i < r->n_seq; i++) free(r->tok[i]);
    free(r->greedy);
}

/* Copy of a GGUF whose rounded tensors (F16, BF16, Q8_0 ...) are stored as
 * their exact F32 values. The f32 engine reproduces the reference to ~1e-13
 * KL, so running it on this copy gives the error any exact implementation
 * would show with these rounded weights: the floor the engine's own
 * arithmetic (Q8_0 activations, SIMD sums) is measured against. */
static int fx_widen_fill(void *user, const char *name, void *dst, uint64_t nbytes, char *err, size_t cap) {
    const gguf_tensor *t = gguf_find_tensor((const gguf_file *)user, name);
    if (!t) { snprintf(err, cap, "%s: not found", name); return -1; }
    if (t->type == DS4J_TYPE_F32 || t->type == DS4J_TYPE_I32) {
        memcpy(dst, t->data, nbytes);
        return 0;
    }
    int64_t n = (int64_t)(nbytes / sizeof(float));
    ds4j_type_get(t->type)->to_float(t->data, dst, n);
    return 0;
}

__attribute__((unused)) static int fx_widen_to_f32(const char *src, const char *dst) {
    char err[512];
    gguf_file *f = NULL;
    if (gguf_open(&f, src, err, sizeof err)) { fprintf(stderr, "%s\n", err); return -1; }
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_kv_count(f); i++) gguf_writer_set_kv(w, NULL, gguf_kv_at(f, i));
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        int32_t type = t->type == DS4J_TYPE_I32 ? DS4J_TYPE_I32 : DS4J_TYPE_F32;
        gguf_writer_add_tensor(w, t->name, type, t->n_dims, t->ne, fx_widen_fill, f);
    }
    int rc = gguf_writer_write(w, dst, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    gguf_writer_free(w);
    gguf_close(f);
    return rc;
}

#endif
