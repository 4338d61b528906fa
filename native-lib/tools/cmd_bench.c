/*
 * cmd_bench.c — `ds4j-tool bench`: prefill and decode throughput of a model
 * (synthetic token ids), and the implied weight bandwidth of decode from
 * the bytes of the weights one token reads (all dense tensors plus k of E
 * routed experts per layer, from ds4j_engine_describe). It also measures
 * this machine's memory read bandwidth with the same number of threads in
 * the same run, so decode can be reported as a fraction of the roofline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ds4j.h"
#include "tool.h"
#include "tool_util.h"
#include "json.h"
#include "threadpool.h"
#include "session.h"
#include "cuda_backend.h"

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* An integer field of the engine's describe JSON (-1 if absent), read with
 * the engine's own JSON parser. */
static long long describe_int(const char *js, const char *key) {
    json_doc *doc = NULL;
    char err[128];
    int64_t v = -1;
    if (js && json_parse(&doc, js, strlen(js), err, sizeof err) == 0 && !json_get_int(json_root(doc), key, &v)) v = -1;
    json_free(doc);
    return (long long)v;
}

struct membw_ctx {
    const uint64_t *buf;
    size_t n;
    uint64_t sums[256];
};

static void membw_worker(void *p, int ith, int nth) {
    struct membw_ctx *c = p;
    size_t per = (c->n / (size_t)nth) & ~(size_t)7, lo = per * (size_t)ith;
    size_t hi = ith == nth - 1 ? c->n : lo + per;
    uint64_t a = 0, b = 0, d = 0, e = 0;
    for (size_t i = lo; i + 4 <= hi; i += 4) {
        a += c->buf[i];
        b ^= c->buf[i + 1];
        d += c->buf[i + 2];
        e ^= c->buf[i + 3];
    }
    c->sums[ith & 255] = a + b + d + e;
}

/* Best-of-5 read bandwidth (GB/s) of a 1 GiB buffer streamed by the pool:
 * the ceiling a memory-bound decode step can reach on this machine. */
static double measure_read_bandwidth(int threads) {
    size_t bytes = (size_t)1 << 30;
    uint64_t *buf = malloc(bytes);
    if (!buf) return -1;
    memset(buf, 1, bytes);
    ds4j_pool *pool = ds4j_pool_new(threads);
    struct membw_ctx c = {.buf = buf, .n = bytes / sizeof(uint64_t)};
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        ds4j_pool_run(pool, membw_worker, &c, 0);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    uint64_t sink = 0;
    for (int i = 0; i < 256; i++) sink ^= c.sums[i];
    if (sink == 42) fputc(' ', stderr); /* keep the reads alive */
    ds4j_pool_free(pool);
    free(buf);
    return bytes / best / 1e9;
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL, *opts = NULL;
    int n_gen = 32, n_prompt = 64, threads = 0, chunk = 64, repeat = 1, warmup = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "-n") && i + 1 < argc) n_gen = atoi(argv[++i]);
        else if (!strcmp(a, "--prompt") && i + 1 < argc) n_prompt = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--chunk") && i + 1 < argc) chunk = atoi(argv[++i]);
        else if (!strcmp(a, "--options") && i + 1 < argc) opts = argv[++i];
        else if (!strcmp(a, "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(a, "--no-warmup")) warmup = 0;
        else {
            fprintf(stderr, "usage: ds4j-tool bench --model M.gguf [-n 32] [--prompt 64] [--threads N] [--chunk N] "
                            "[--repeat R] [--no-warmup] [--options K=V;...]\n");
            return 2;
        }
    }
    if (repeat < 1) repeat = 1;
    if (!model || n_gen < 1 || n_prompt < 1) { fprintf(stderr, "ds4j-tool bench: --model is required\n"); return 2; }
    ds4j_engine *e = tool_open_engine(model, threads, chunk, opts);
    if (!e) return 1;
    if (ds4j_engine_rank(e) > 0) { /* comm=: rank 0 measures, the others follow it */
        int frc = tool_follow_engine(e, "bench", -1);
        ds4j_engine_close(e);
        return frc;
    }
    const char *js = ds4j_engine_describe(e);
    long long active = describe_int(js, "active_bytes_per_token"), total = describe_int(js, "weight_bytes");
    int V = ds4j_n_vocab(e);
    ds4j_session *s = NULL;
    int32_t *ids = malloc((size_t)(n_prompt + n_gen) * sizeof(int32_t));
    int rc = 1;
    if (!ids) goto done;
    uint64_t x = 12345;
    for (int i = 0; i < n_prompt + n_gen; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        ids[i] = (int32_t)((x >> 33) % (uint64_t)V);
    }
    /* Runs: the warm-up (unless --no-warmup) evaluates the same sequence
     * untimed so the weight pages it touches are mapped (steady state of a
     * running server, not the first request's page faults); then `repeat`
     * timed runs, each in a fresh session; best and median are reported
     * because a shared machine's timings vary. */
    double pps[64], tgs[64], cpu_tok = 1e30;
    int n_runs = repeat > 64 ? 64 : repeat;
    for (int run = -warmup; run < n_runs; run++) {
        s = ds4j_session_new(e, n_prompt + n_gen + 1);
        if (!s) { fprintf(stderr, "ds4j-tool bench: %s\n", ds4j_last_error()); goto done; }
        double t0 = now_s();
        if (ds4j_session_eval_batch(s, ids, n_prompt, chunk, NULL) < 0) { fprintf(stderr, "ds4j-tool bench: %s\n", ds4j_last_error()); goto done; }
        double t1 = now_s(), c1 = cpu_s();
        for (int i = 0; i < n_gen; i++)
            if (ds4j_session_eval(s, ids[n_prompt + i]) < 0) { fprintf(stderr, "ds4j-tool bench: %s\n", ds4j_last_error()); goto done; }
        double t2 = now_s(), c2 = cpu_s();
        ds4j_session_free(s);
        s = NULL;
        if (run >= 0) {
            pps[run] = n_prompt / (t1 - t0);
            tgs[run] = n_gen / (t2 - t1);
            if ((c2 - c1) / n_gen < cpu_tok) cpu_tok = (c2 - c1) / n_gen;
        }
    }
    double pp_best = 0, tg_best = 0;
    for (int r = 0; r < n_runs; r++) {
        if (pps[r] > pp_best) pp_best = pps[r];
        if (tgs[r] > tg_best) tg_best = tgs[r];
    }
    /* medians (insertion sort of at most 64 values) */
    for (int r = 1; r < n_runs; r++)
        for (int q = r; q > 0 && pps[q] < pps[q - 1]; q--) { double tmp = pps[q]; pps[q] = pps[q - 1]; pps[q - 1] = tmp; }
    for (int r = 1; r < n_runs; r++)
        for (int q = r; q > 0 && tgs[q] < tgs[q - 1]; q--) { double tmp = tgs[q]; tgs[q] = tgs[q - 1]; tgs[q - 1] = tmp; }
    double pp = pp_best, tg = tg_best;
    printf("model: %s\n", model);
    printf("weights: %.3f GB total, %.3f GB read per decode token\n", total / 1e9, active / 1e9);
    printf("runs: %d timed%s (best / median)\n", n_runs, warmup ? " after 1 warm-up" : ", no warm-up");
    printf("prefill: %d tokens: %.2f / %.2f tok/s (chunk %d)\n", n_prompt, pp, pps[n_runs / 2], chunk);
    printf("decode:  %d tokens: %.2f / %.2f tok/s, implied weight bandwidth %.2f GB/s (best)\n", n_gen, tg,
           tgs[n_runs / 2], tg * active / 1e9);
    /* CPU time of all threads (pool spinning included): on a machine shared
     * with other work this is steadier than wall time */
    printf("decode CPU time: %.1f ms per token (best run, all threads)\n", cpu_tok * 1e3);
    if (e->gpu) {
        /* the GPU's own roofline: a plain read kernel over 4 GiB, best of 10 */
        double bw = cuda_engine_read_bandwidth(e->gpu, (int64_t)4 << 30, 10) / 1e9;
        if (bw > 0)
            printf("device read bandwidth (4 GiB, read kernel): %.1f GB/s -> decode at %.0f%% of the HBM roofline "
                   "(roofline %.1f tok/s)\n", bw, 100.0 * tg * active / 1e9 / bw, bw * 1e9 / active);
    } else {
        double bw = measure_read_bandwidth(threads);
        if (bw > 0)
            printf("memory read bandwidth (same threads, 1 GiB): %.2f GB/s -> decode at %.0f%% of the roofline "
                   "(roofline %.2f tok/s)\n", bw, 100.0 * tg * active / 1e9 / bw, bw * 1e9 / active);
    }
    rc = 0;
done:
    free(ids);
    ds4j_session_free(s);
    ds4j_engine_close(e);
    return rc;
}
