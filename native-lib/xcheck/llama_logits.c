/*
 * llama_logits.c — cross-check helper for scripts/xcheck-llamacpp (not part
 * of libds4j or ds4j-tool; the script compiles it against the llama.h and
 * libllama.so of a prebuilt llama.cpp).
 *
 *   llama_logits run --model M.gguf --tokens 1,2,3 --out F.f32 [--ubatch N]
 *                    [--greedy G --greedy-out C.txt] [--libdir D] [--threads N]
 *     Loads M on the CPU with an F32 K/V cache and flash attention off (the
 *     precision settings of shared/docs/deepseek-v4-model.md 16) and writes
 *     one row of n_vocab float32 logits per position. --ubatch 1 evaluates
 *     token by token (one llama_decode per token); N > 1 submits the whole
 *     list as one batch split into physical batches of N; 0 = one batch of
 *     all tokens. With --greedy G the prompt is followed by G greedy steps
 *     (argmax, lowest id on ties), each decoded alone; their logits rows are
 *     appended and the chosen ids written to C.txt (comma-separated).
 *
 *   llama_logits compare A.f32 B.f32 N_VOCAB
 *     Prints, per row, max |A-B| and both argmaxes, then one summary line
 *     "rows R max_abs X argmax_agree K/R". Needs no llama.cpp.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef XCHECK_COMPARE_ONLY
#include "llama.h"
#endif

static int argmax(const float *v, long n) {
    int best = 0;
    for (long i = 1; i < n; i++)
        if (v[i] > v[best]) best = (int)i;
    return best;
}

static int cmd_compare(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: llama_logits compare A.f32 B.f32 N_VOCAB\n");
        return 2;
    }
    long nv = atol(argv[4]);
    FILE *fa = fopen(argv[2], "rb"), *fb = fopen(argv[3], "rb");
    if (nv <= 0 || !fa || !fb) {
        fprintf(stderr, "compare: cannot open inputs or bad N_VOCAB\n");
        return 2;
    }
    float *a = malloc(nv * sizeof(float)), *b = malloc(nv * sizeof(float));
    if (!a || !b) return 2;
    long rows = 0, agree = 0;
    double worst = 0.0;
    for (;;) {
        size_t ra = fread(a, sizeof(float), nv, fa), rb = fread(b, sizeof(float), nv, fb);
        if (ra == 0 && rb == 0) break;
        if (ra != (size_t)nv || rb != (size_t)nv) {
            fprintf(stderr, "compare: files differ in length or are not a whole number of rows\n");
            return 2;
        }
        double m = 0.0;
        for (long i = 0; i < nv; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            if (!(d <= m)) m = d; /* NaN propagates as the worst value */
        }
        int xa = argmax(a, nv), xb = argmax(b, nv);
        agree += xa == xb;
        printf("row %ld max_abs %.3e argmax %d %d%s\n", rows, m, xa, xb, xa == xb ? "" : "  DIFFERENT");
        if (!(m <= worst)) worst = m;
        rows++;
    }
    printf("rows %ld max_abs %.3e argmax_agree %ld/%ld\n", rows, worst, agree, rows);
    fclose(fa);
    fclose(fb);
    free(a);
    free(b);
    return rows > 0 ? 0 : 2;
}

#ifdef XCHECK_COMPARE_ONLY
int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "compare")) return cmd_compare(argc, argv);
    fprintf(stderr, "built without llama.cpp: only 'compare' is available\n");
    return 2;
}
#else

static int quiet = 1;

static void log_cb(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    /* llama.cpp is chatty at INFO; keep its warnings and errors, which is
     * where a refused file says which key or tensor is wrong. */
    if (!quiet || level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static int parse_ids(const char *s, llama_token **out) {
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    llama_token *ids = malloc(n * sizeof *ids);
    if (!ids) return -1;
    int k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 0x7fffffff) { free(ids); return -1; }
        ids[k++] = (llama_token)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) { free(ids); return -1; }
    }
    *out = ids;
    return k;
}

static int write_rows(FILE *f, const float *rows, long n_rows, long nv) {
    return fwrite(rows, sizeof(float), (size_t)(n_rows * nv), f) == (size_t)(n_rows * nv) ? 0 : -1;
}

static int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *tokens = NULL, *out = NULL, *libdir = NULL, *greedy_out = NULL;
    int ubatch = 1, greedy = 0, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--verbose")) { quiet = 0; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "run: %s needs a value\n", a); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--tokens")) tokens = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--libdir")) libdir = v;
        else if (!strcmp(a, "--ubatch")) ubatch = atoi(v);
        else if (!strcmp(a, "--greedy")) greedy = atoi(v);
        else if (!strcmp(a, "--greedy-out")) greedy_out = v;
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else { fprintf(stderr, "run: unknown option %s\n", a); return 2; }
    }
    if (!model_path || !tokens || !out || ubatch < 0 || greedy < 0 || threads < 1 || (greedy && !greedy_out)) {
        fprintf(stderr, "usage: llama_logits run --model M.gguf --tokens 1,2,3 --out F.f32 [--ubatch N] "
                        "[--greedy G --greedy-out C.txt] [--libdir D] [--threads N] [--verbose]\n");
        return 2;
    }
    llama_token *ids = NULL;
    int n = parse_ids(tokens, &ids);
    if (n <= 0) { fprintf(stderr, "run: bad --tokens\n"); return 2; }

    llama_log_set(log_cb, NULL);
    if (libdir) ggml_backend_load_all_from_path(libdir);
    else ggml_backend_load_all();
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) { fprintf(stderr, "run: llama.cpp could not load %s (see its messages above)\n", model_path); return 1; }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    const long nv = llama_vocab_n_tokens(vocab);
    for (int i = 0; i < n; i++)
        if (ids[i] >= nv) { fprintf(stderr, "run: token %d out of range (n_vocab %ld)\n", ids[i], nv); return 2; }

    const int total = n + greedy;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)((total + 255) / 256 * 256);
    cp.n_batch = (uint32_t)(ubatch == 1 ? 1 : total);
    cp.n_ubatch = (uint32_t)(ubatch == 0 || ubatch > total ? total : ubatch);
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "run: llama_init_from_model failed\n"); return 1; }

    FILE *f = fopen(out, "wb");
    if (!f) { fprintf(stderr, "run: cannot write %s\n", out); return 1; }
    int rc = 0;
    struct llama_batch batch = llama_batch_init(total, 0, 1);
    int pos = 0;
    /* prompt */
    for (int start = 0; start < n && !rc;) {
        int len = ubatch == 1 ? 1 : n;
        batch.n_tokens = len;
        for (int j = 0; j < len; j++) {
            batch.token[j] = ids[start + j];
            batch.pos[j] = pos + j;
            batch.n_seq_id[j] = 1;
            batch.seq_id[j][0] = 0;
            batch.logits[j] = 1;
        }
        int d = llama_decode(ctx, batch);
        if (d != 0) { fprintf(stderr, "run: llama_decode returned %d at position %d\n", d, pos); rc = 1; break; }
        for (int j = 0; j < len && !rc; j++) {
            const float *lg = llama_get_logits_ith(ctx, j);
            if (!lg || write_rows(f, lg, 1, nv)) { fprintf(stderr, "run: no logits for row %d\n", pos + j); rc = 1; }
        }
        pos += len;
        start += len;
    }
    /* greedy continuation, one token per decode */
    FILE *g = NULL;
    if (!rc && greedy) {
        g = fopen(greedy_out, "w");
        if (!g) { fprintf(stderr, "run: cannot write %s\n", greedy_out); rc = 1; }
    }
    for (int s = 0; s < greedy && !rc; s++) {
        const float *last = llama_get_logits_ith(ctx, -1);
        llama_token next = (llama_token)argmax(last, nv);
        fprintf(g, s ? ",%d" : "%d", next);
        batch.n_tokens = 1;
        batch.token[0] = next;
        batch.pos[0] = pos;
        batch.n_seq_id[0] = 1;
        batch.seq_id[0][0] = 0;
        batch.logits[0] = 1;
        int d = llama_decode(ctx, batch);
        if (d != 0) { fprintf(stderr, "run: llama_decode returned %d at position %d\n", d, pos); rc = 1; break; }
        if (write_rows(f, llama_get_logits_ith(ctx, 0), 1, nv)) rc = 1;
        pos++;
    }
    if (g) { fputc('\n', g); if (fclose(g)) rc = 1; }
    if (fclose(f)) rc = 1;
    if (!rc) fprintf(stderr, "llama.cpp: %d rows of %ld logits -> %s (ubatch %d)\n", pos, nv, out, ubatch);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(ids);
    return rc;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "compare")) return cmd_compare(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "run")) return cmd_run(argc, argv);
    fprintf(stderr, "usage: llama_logits run ... | llama_logits compare A.f32 B.f32 N_VOCAB\n");
    return 2;
}
#endif
