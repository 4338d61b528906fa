/*
 * cmd_bench.c — `ds4j-tool bench`: prefill and decode throughput of a model
 * (synthetic token ids), and the implied weight bandwidth of decode from
 * the bytes of the weights one token reads (all dense tensors plus k of E
 * routed experts per layer, from ds4j_engine_describe). It also measures
 * this machine's memory read bandwidth with the same number of threads in
 * the same run, so decode can be reported as a fraction of the roofline.
 * --streams 1,4,16,64 measures concurrent decoding instead: S sessions,
 * each after a short prompt, decode together through ds4j_batch_eval (one
 * forward per step), giving aggregate tok/s per S next to the single-stream
 * figure (ds4j_session_eval) of the same run. --sampler "OPTS" times
 * ds4j_sampler_sample instead: one session's logits after a short prompt,
 * drawn from many times with the sampler options OPTS, without and with the
 * sampled token's log-probability (the server computes it only for
 * requests that ask for logprobs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_fail(void) {
    fprintf(stderr, "ds4j-tool bench: %s\n", ds4j_last_error());
    return 1;
}

/* Synthetic token ids: stream s, position i (a fixed LCG per stream). */
static int32_t stream_token(int s, int i, int V) {
    uint64_t x = 0x9E3779B97F4A7C15ULL * (uint64_t)(s + 1) + 1442695040888963407ULL * (uint64_t)(i + 1);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 32;
    return (int32_t)(x % (uint64_t)V);
}

/*
 * Concurrent decoding: for each S of the list, S fresh sessions prefill
 * n_prompt tokens each (one ds4j_batch_eval), make two untimed decode steps
 * (pages of the experts they route to get mapped; the GPU captures the
 * batch's decode graph at the second), then n_gen timed steps of
 * S decode rows each. Repeated `repeat` times; best and median aggregate
 * tok/s. The single-stream baseline is ds4j_session_eval in the same run.
 */
static int bench_streams(ds4j_engine *e, const int *streams, int n_streams, int n_prompt, int n_gen, int repeat) {
    int V = ds4j_n_vocab(e), maxS = 0;
    for (int i = 0; i < n_streams; i++) if (streams[i] > maxS) maxS = streams[i];
    ds4j_session **ss = calloc((size_t)maxS, sizeof *ss);
    ds4j_batch_entry *en = calloc((size_t)maxS, sizeof *en);
    int32_t *tok = malloc((size_t)maxS * (n_prompt + n_gen + 2) * sizeof(int32_t));
    double (*agg)[64] = calloc((size_t)n_streams, sizeof *agg), (*cpu)[64] = calloc((size_t)n_streams, sizeof *cpu);
    double (*ttft)[64] = calloc((size_t)n_streams, sizeof *ttft);
    double single[64], single_cpu[64];
    int rc = 1;
    if (!ss || !en || !tok || !agg || !cpu || !ttft) goto done;
    for (int s = 0; s < maxS; s++)
        for (int i = 0; i < n_prompt + n_gen + 2; i++) tok[(size_t)s * (n_prompt + n_gen + 2) + i] = stream_token(s, i, V);
    int runs = repeat > 64 ? 64 : repeat;
    for (int run = 0; run < runs; run++) {
        /* single stream through the plain decode call */
        ds4j_session *one = ds4j_session_new(e, n_prompt + n_gen + 2);
        if (!one || ds4j_session_eval_batch(one, tok, n_prompt, 0, NULL) < 0 || ds4j_session_eval(one, tok[n_prompt]) < 0) {
            ds4j_session_free(one);
            rc = bench_fail();
            goto done;
        }
        double t0 = now_s(), c0 = cpu_s();
        for (int i = 1; i <= n_gen; i++)
            if (ds4j_session_eval(one, tok[n_prompt + i]) < 0) { ds4j_session_free(one); rc = bench_fail(); goto done; }
        single[run] = n_gen / (now_s() - t0);
        single_cpu[run] = (cpu_s() - c0) / n_gen;
        ds4j_session_free(one);
        for (int k = 0; k < n_streams; k++) {
            int S = streams[k];
            for (int s = 0; s < S; s++) {
                ss[s] = ds4j_session_new(e, n_prompt + n_gen + 2);
                if (!ss[s]) { rc = bench_fail(); goto done; }
                en[s] = (ds4j_batch_entry){.session = ss[s], .tokens = tok + (size_t)s * (n_prompt + n_gen + 2),
                                           .n_tokens = n_prompt, .flags = 0};
            }
            double tp = now_s();
            if (ds4j_batch_eval(e, en, S) < 0) { rc = bench_fail(); goto done; }
            ttft[k][run] = now_s() - tp; /* every prompt evaluated: the first token of all S can be sampled */
            double ts = 0, cs = 0;
            for (int i = 0; i <= n_gen + 1; i++) {
                for (int s = 0; s < S; s++) {
                    en[s].tokens = tok + (size_t)s * (n_prompt + n_gen + 2) + n_prompt + i;
                    en[s].n_tokens = 1;
                }
                /* steps 0 and 1 are untimed (the GPU captures a batch's decode
                 * graph at its second step) */
                if (i == 2) { ts = now_s(); cs = cpu_s(); }
                if (ds4j_batch_eval(e, en, S) < 0) { rc = bench_fail(); goto done; }
            }
            agg[k][run] = (double)S * n_gen / (now_s() - ts);
            cpu[k][run] = (cpu_s() - cs) / ((double)S * n_gen);
            for (int s = 0; s < S; s++) { ds4j_session_free(ss[s]); ss[s] = NULL; }
        }
    }
    /* CPU time (all threads, pool spinning included) is steadier than wall
     * time on a machine shared with other work; both are printed */
    qsort(single, (size_t)runs, sizeof single[0], cmp_dbl);
    qsort(single_cpu, (size_t)runs, sizeof single_cpu[0], cmp_dbl);
    double base = single[runs / 2], base_cpu = single_cpu[runs / 2];
    printf("single stream (ds4j_session_eval): %.2f / %.2f tok/s (best / median of %d), %.1f ms CPU per token (median)\n",
           single[runs - 1], base, runs, base_cpu * 1e3);
    printf("concurrent decode (ds4j_batch_eval, one forward per step), %d-token prompts, %d timed steps each:\n",
           n_prompt, n_gen);
    printf("%8s %22s %18s %12s %18s %14s %14s\n", "streams", "aggregate tok/s", "per stream tok/s", "x single",
           "CPU ms per token", "x single CPU", "prompts ms");
    printf("%8s %22s %18s %12s %18s %14s %14s\n", "", "best / median", "(median)", "(median)", "(median)", "(median)",
           "(median)");
    for (int k = 0; k < n_streams; k++) {
        qsort(agg[k], (size_t)runs, sizeof agg[k][0], cmp_dbl);
        qsort(cpu[k], (size_t)runs, sizeof cpu[k][0], cmp_dbl);
        qsort(ttft[k], (size_t)runs, sizeof ttft[k][0], cmp_dbl);
        double med = agg[k][runs / 2], mc = cpu[k][runs / 2];
        printf("%8d %10.2f / %9.2f %18.2f %12.2f %18.1f %14.2f %14.1f\n", streams[k], agg[k][runs - 1], med,
               med / streams[k], med / base, mc * 1e3, base_cpu / mc, ttft[k][runs / 2] * 1e3);
    }
    rc = 0;
done:
    if (ss)
        for (int s = 0; s < maxS; s++) ds4j_session_free(ss[s]);
    free(ss);
    free(en);
    free(tok);
    free(agg);
    free(cpu);
    free(ttft);
    return rc;
}

/* --state-file: what loading a prompt's state from disk saves against
 * evaluating the prompt (the disk cache of the server). The load is timed
 * twice: right after the write (file in the page cache) and after asking the
 * kernel to drop the file's pages (posix_fadvise DONTNEED: a read from the
 * device, where the kernel honours it). */
static int bench_state_file(ds4j_engine *e, const char *dir, const int32_t *ids, int n_prompt, int chunk) {
    char path[4096];
    snprintf(path, sizeof path, "%s/ds4j-bench-%d.state", dir, (int)getpid());
    ds4j_session *a = ds4j_session_new(e, n_prompt + 1), *b = ds4j_session_new(e, n_prompt + 1);
    int rc = 1;
    if (!a || !b) { fprintf(stderr, "ds4j-tool bench: %s\n", ds4j_last_error()); goto out; }
    double t0 = now_s();
    if (ds4j_session_eval_batch(a, ids, n_prompt, chunk, NULL) < 0) { fprintf(stderr, "ds4j-tool bench: %s\n", ds4j_last_error()); goto out; }
    double t1 = now_s();
    if (ds4j_session_save(a, path, n_prompt) != n_prompt) { fprintf(stderr, "ds4j-tool bench: %s\n", ds4j_last_error()); goto out; }
    double t2 = now_s();
    if (ds4j_session_load(b, path) != n_prompt) { fprintf(stderr, "ds4j-tool bench: %s\n", ds4j_last_error()); goto out; }
    double t3 = now_s();
    int fd = open(path, O_RDONLY);
    struct stat sb;
    long long bytes = fd >= 0 && fstat(fd, &sb) == 0 ? (long long)sb.st_size : -1;
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    double t4 = now_s();
    if (ds4j_session_load(b, path) != n_prompt) { fprintf(stderr, "ds4j-tool bench: %s\n", ds4j_last_error()); goto out; }
    double t5 = now_s();
    double pre = t1 - t0, warm = t3 - t2, cold = t5 - t4;
    printf("state file: %d tokens, %.2f MiB: write %.1f ms (fsync'd), read %.1f ms from the page cache / %.1f ms "
           "after dropping it, vs evaluating the prompt %.1f ms -> loading is %.1fx / %.1fx faster\n",
           n_prompt, bytes / 1048576.0, (t2 - t1) * 1e3, warm * 1e3, cold * 1e3, pre * 1e3, pre / warm, pre / cold);
    rc = 0;
out:
    unlink(path);
    ds4j_session_free(a);
    ds4j_session_free(b);
    return rc;
}

/* Milliseconds per ds4j_sampler_sample over one session's logits, median
 * of `repeat` rounds of 200 draws, without and with the log-probability. */
static int bench_sampler(ds4j_engine *e, const char *sopts, int n_prompt, int repeat) {
    int V = ds4j_n_vocab(e);
    ds4j_session *s = ds4j_session_new(e, n_prompt + 1);
    if (!s) return bench_fail();
    for (int i = 0; i < n_prompt; i++)
        if (ds4j_session_eval(s, (int32_t)((i * 7919 + 1) % V)) < 0) {
            ds4j_session_free(s);
            return bench_fail();
        }
    printf("sampler \"%s\", vocabulary %d, 200 draws a round, median of %d rounds:\n", sopts, V, repeat);
    int rc = 0;
    for (int lp = 0; lp < 2 && !rc; lp++) {
        double ms[64];
        int runs = repeat > 64 ? 64 : repeat;
        for (int run = 0; run < runs && !rc; run++) {
            ds4j_sampler *sp = ds4j_sampler_new(sopts);
            if (!sp) { rc = bench_fail(); break; }
            float logprob;
            double t0 = now_s();
            for (int i = 0; i < 200; i++)
                if (ds4j_sampler_sample(sp, s, 0, NULL, NULL, lp ? &logprob : NULL) < 0) { rc = bench_fail(); break; }
            ms[run] = (now_s() - t0) / 200 * 1e3;
            ds4j_sampler_free(sp);
        }
        if (rc) break;
        qsort(ms, (size_t)runs, sizeof ms[0], cmp_dbl);
        printf("  %-28s %8.3f ms a draw\n", lp ? "with the log-probability:" : "token only:", ms[runs / 2]);
    }
    ds4j_session_free(s);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL, *opts = NULL, *state_dir = NULL, *sampler = NULL;
    int n_gen = 32, n_prompt = 64, threads = 0, chunk = 64, repeat = 1, warmup = 1;
    int streams[16], n_streams = 0;
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
        else if (!strcmp(a, "--state-file") && i + 1 < argc) state_dir = argv[++i];
        else if (!strcmp(a, "--sampler") && i + 1 < argc) sampler = argv[++i];
        else if (!strcmp(a, "--streams") && i + 1 < argc) {
            for (char *p = argv[++i]; *p && n_streams < 16;) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p || v < 1 || v > 4096) { n_streams = -1; break; }
                streams[n_streams++] = (int)v;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') { n_streams = -1; break; }
            }
            if (n_streams <= 0) { fprintf(stderr, "ds4j-tool bench: --streams wants a list like 1,4,16,64\n"); return 2; }
        }
        else {
            fprintf(stderr, "usage: ds4j-tool bench --model M.gguf [-n 32] [--prompt 64] [--threads N] [--chunk N] "
                            "[--repeat R] [--no-warmup] [--streams 1,4,16,64] [--sampler OPTS] [--state-file DIR] "
                            "[--options K=V;...]\n"
                            "  --streams: aggregate decode tok/s of S concurrent sessions (ds4j_batch_eval) for each\n"
                            "             S, with the single-stream figure of the same run (--prompt: each\n"
                            "             session's prompt; the engine's prefill_chunk is raised to max S)\n"
                            "  --sampler: ms per ds4j_sampler_sample draw with these sampler options (e.g.\n"
                            "             \"temperature=0.7;top_p=0.9\") over one session's logits after --prompt tokens\n"
                            "  --state-file: also write the prompt's state to DIR (ds4j_session_save) and read it\n"
                            "             back into a new session, timed against evaluating the prompt\n");
            return 2;
        }
    }
    if (repeat < 1) repeat = 1;
    if (!model || n_gen < 1 || n_prompt < 1) { fprintf(stderr, "ds4j-tool bench: --model is required\n"); return 2; }
    if (n_streams > 0)
        for (int k = 0; k < n_streams; k++)
            if (streams[k] > chunk) chunk = streams[k]; /* a decode step of S streams is one forward */
    ds4j_engine *e = tool_open_engine(model, threads, chunk, opts);
    if (!e) return 1;
    if (ds4j_engine_rank(e) > 0) { /* comm=: rank 0 measures, the others follow it */
        int frc = tool_follow_engine(e, "bench", -1);
        ds4j_engine_close(e);
        return frc;
    }
    if (sampler) {
        int src = bench_sampler(e, sampler, n_prompt < 1024 ? n_prompt : 1024, repeat);
        ds4j_engine_close(e);
        return src;
    }
    if (n_streams > 0) {
        printf("model: %s\n", model);
        printf("threads: %d, prefill_chunk (rows per forward): %d, %s\n", e->n_threads, (int)e->prefill_chunk,
               e->gpu ? "backend=cuda" : "backend=cpu");
        int src = bench_streams(e, streams, n_streams, n_prompt, n_gen, repeat);
        ds4j_engine_close(e);
        return src;
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
    rc = state_dir ? bench_state_file(e, state_dir, ids, n_prompt, chunk) : 0;
done:
    free(ids);
    ds4j_session_free(s);
    ds4j_engine_close(e);
    return rc;
}
