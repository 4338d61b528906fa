/*
 * test_dist_nccl.c — the NCCL backend (comm=nccl, libds4j_comm_nccl.so).
 * Without the plugin (a build with no CUDA/NCCL, e.g. CI) it checks only
 * that comm=nccl fails with "built without NCCL", then exits 77 (skip).
 * With it, and a GPU: under mpirun, the collectives on known inputs (exact
 * sums on every rank, bit-identical across ranks, staging buffers that
 * grow, broadcast from any root, barrier); clear errors for a bad device
 * index and bad options on every rank (no hang); a peer that never joins
 * an all_sum makes it fail after comm_options=timeout_ms instead of
 * blocking forever; `mpirun -np 2 ds4j-tool logits --options comm=nccl`
 * over the tiny-a fixture equals the single-process run (<= 1e-5) and the
 * reference (<= 5e-4); generate reproduces the greedy reference, also as
 * the only driver next to a `ds4j-tool follow` rank; a rank killed
 * mid-generation ends the job promptly. No GPU: exit 77.
 *
 * The program re-runs itself as the ranks (--ranks, --open-error,
 * --timeout, --probe); --bench BACKEND PLUGIN ITERS [OPTIONS] prints all_sum
 * latencies for docs/benchmarks.md (never asserted). The rank modes take
 * the backend name so that they also run over comm=mpi.
 */
#include <math.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "common.h"
#include "ds4j.h"
#include "model_fixture.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int open_comm(ds4j_comm **c, const char *backend, const char *plugin, const char *opts) {
    if (ds4j_comm_open_opts(c, backend, plugin, opts)) {
        fprintf(stderr, "open comm=%s (%s): %s\n", backend, opts, ds4j_last_error());
        return 1;
    }
    return 0;
}

/* Inputs whose sum over two ranks must be rounded: each rank computes every
 * rank's value, so it knows the single correctly rounded f32 addition. */
static float wavy(int64_t i, int r) { return (float)(sin(0.37 * (double)i + r) * 1000.0); }

static uint32_t fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

/* ---- rank modes ---- */

static int ranks_main(const char *backend, const char *plugin) {
    ds4j_comm *c;
    if (open_comm(&c, backend, plugin, "")) return 1;
    int r = ds4j_comm_rank(c), W = ds4j_comm_size(c);
    CHECK(W >= 2);
    const int64_t sizes[] = {1, 7, 4096, 300000, 4096, 0, 1 << 20};
    float *buf = malloc(sizeof(float) << 20);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int64_t n = sizes[s];
        for (int64_t i = 0; i < n; i++) buf[i] = (float)(i % 251 + 1000 * r);
        CHECK(ds4j_comm_all_sum_f32(c, buf, n) == 0);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += buf[i] != (float)(W * (i % 251) + 1000 * W * (W - 1) / 2);
        if (bad) fprintf(stderr, "rank %d: all_sum of %lld integers: %lld wrong\n", r, (long long)n, (long long)bad);
        CHECK(bad == 0);
    }
    /* rounding-sensitive values: the same bits on every rank */
    int64_t n = 4096 * 3 + 5;
    for (int64_t i = 0; i < n; i++) buf[i] = wavy(i, r);
    CHECK(ds4j_comm_all_sum_f32(c, buf, n) == 0);
    if (W == 2) {
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += buf[i] != wavy(i, 0) + wavy(i, 1);
        CHECK(bad == 0);
    }
    uint32_t h = fnv(buf, (size_t)n * sizeof(float));
    int32_t hv[2] = {(int32_t)(h & 0xffff), (int32_t)(h >> 16)};
    CHECK(ds4j_comm_broadcast_i32(c, hv, 2, 0) == 0);
    uint32_t h0 = (uint32_t)hv[0] | (uint32_t)hv[1] << 16;
    if (h0 != h) fprintf(stderr, "rank %d: all_sum result differs from rank 0's (hash %08x vs %08x)\n", r, h, h0);
    CHECK(h0 == h);
    /* broadcast from the last rank, then from 0 */
    int32_t iv[1000];
    for (int root = W - 1; root >= 0; root -= W - 1) {
        for (int k = 0; k < 1000; k++) iv[k] = r == root ? 12345 + k * (root + 1) : -1;
        CHECK(ds4j_comm_broadcast_i32(c, iv, 1000, root) == 0);
        int bad = 0;
        for (int k = 0; k < 1000; k++) bad += iv[k] != 12345 + k * (root + 1);
        CHECK(bad == 0);
        if (root == 0) break;
    }
    CHECK(ds4j_comm_barrier(c) == 0);
    CHECK(!ds4j_comm_broken(c));
    printf("rank %d of %d (%s): all_sum (exact, bit-identical, growing buffers), broadcast, barrier: %s\n", r, W,
           backend, failures ? "FAILED" : "ok");
    ds4j_comm_close(c);
    free(buf);
    return failures ? 1 : 0;
}

/* Opening must fail on this rank with `needle` in the message. */
static int open_error_main(const char *backend, const char *plugin, const char *opts, const char *needle) {
    ds4j_comm *c = NULL;
    int rc = ds4j_comm_open_opts(&c, backend, plugin, opts);
    const char *msg = ds4j_last_error();
    printf("open comm=%s with '%s': %s\n", backend, opts, rc ? msg : "(opened)");
    if (!rc) {
        ds4j_comm_close(c);
        return 1;
    }
    return strstr(msg, needle) ? 0 : 1;
}

/* Rank 0 all_sums; rank 1 never does. Rank 0 must get an error after about
 * timeout_ms, and fail fast afterwards. */
static int timeout_main(const char *plugin) {
    ds4j_comm *c;
    if (open_comm(&c, "nccl", plugin, "timeout_ms=2000")) return 1;
    if (ds4j_comm_rank(c) != 0) {
        sleep(8);
        /* no close: the communicator's peer aborted, so this rank leaves it */
        return 0;
    }
    float v[4096] = {0};
    double t0 = now_s();
    int rc = ds4j_comm_all_sum_f32(c, v, 4096);
    double dt = now_s() - t0;
    printf("all_sum with a silent peer: rc %d after %.2f s: %s\n", rc, dt, rc ? ds4j_last_error() : "(succeeded)");
    CHECK(rc == DS4J_ERR_COMM && strstr(ds4j_last_error(), "timed out") && dt > 1.5 && dt < 60);
    rc = ds4j_comm_all_sum_f32(c, v, 4096);
    CHECK(rc == DS4J_ERR_COMM && strstr(ds4j_last_error(), "unusable"));
    ds4j_comm_close(c);
    return failures ? 1 : 0;
}

/* One rank alone: 0 when a GPU answers, 77 when there is none. */
static int probe_main(const char *plugin) {
    ds4j_comm *c = NULL;
    if (ds4j_comm_open_opts(&c, "nccl", plugin, "")) {
        const char *msg = ds4j_last_error();
        printf("probe: %s\n", msg);
        return strstr(msg, "no usable CUDA device") ? 77 : 1;
    }
    float v[3] = {1, 2, 3};
    int ok = ds4j_comm_all_sum_f32(c, v, 3) == 0 && v[0] == 1 && v[2] == 3 && ds4j_comm_barrier(c) == 0;
    printf("probe: one rank on a GPU: %s\n", ok ? "ok" : ds4j_last_error());
    ds4j_comm_close(c);
    return ok ? 0 : 1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int bench_main(const char *backend, const char *plugin, int iters, const char *opts) {
    ds4j_comm *c;
    if (iters < 1) return 1;
    if (open_comm(&c, backend, plugin, opts)) return 1;
    const int64_t sizes[] = {1, 4096, 64 * 4096};
    float *buf = calloc((size_t)64 * 4096, sizeof(float));
    int64_t *ns = malloc((size_t)iters * sizeof(int64_t));
    for (size_t s = 0; s < 3; s++) {
        int64_t n = sizes[s];
        for (int i = 0; i < 100; i++) ds4j_comm_all_sum_f32(c, buf, n);
        for (int i = 0; i < iters; i++) {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            if (ds4j_comm_all_sum_f32(c, buf, n)) {
                fprintf(stderr, "%s\n", ds4j_last_error());
                return 1;
            }
            clock_gettime(CLOCK_MONOTONIC, &b);
            ns[i] = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
        }
        double sum = 0;
        for (int i = 0; i < iters; i++) sum += (double)ns[i];
        qsort(ns, (size_t)iters, sizeof *ns, cmp_i64);
        if (ds4j_comm_rank(c) == 0)
            printf("bench comm=%s%s%s ranks=%d floats=%lld: mean %.1f us, p50 %.1f us, p99 %.1f us (%d calls)\n", backend,
                   *opts ? " " : "", opts, ds4j_comm_size(c), (long long)n, sum / iters / 1e3, ns[iters / 2] / 1e3, ns[iters * 99 / 100] / 1e3,
                   iters);
    }
    free(ns);
    free(buf);
    ds4j_comm_close(c);
    return 0;
}

#ifdef DS4J_NCCL_PLUGIN
static void show(const char *path) {
    char *l = fx_read_file(path, NULL);
    fprintf(stderr, "%s\n", l ? l : "(no output)");
    free(l);
}

#endif

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--ranks")) return ranks_main(argv[2], argv[3]);
    if (argc == 6 && !strcmp(argv[1], "--open-error")) return open_error_main(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 3 && !strcmp(argv[1], "--timeout")) return timeout_main(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--probe")) return probe_main(argv[2]);
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "--bench"))
        return bench_main(argv[2], argv[3], atoi(argv[4]), argc == 6 ? argv[5] : "");

#ifndef DS4J_NCCL_PLUGIN
    /* comm= is opened before the model file is read: any path shows the error */
    ds4j_engine *e = ds4j_engine_open("/nonexistent/model.gguf", "comm=nccl");
    const char *msg = ds4j_last_error();
    printf("open 'comm=nccl': %s\n", e ? "(opened)" : msg);
    CHECK(e == NULL && strstr(msg, "comm=nccl") && strstr(msg, "built without NCCL"));
    ds4j_engine_close(e);
    ds4j_comm *c = NULL;
    CHECK(ds4j_comm_open_opts(&c, "nccl", "/nonexistent/libds4j_comm_nccl.so", "") == DS4J_ERR_COMM &&
          strstr(ds4j_last_error(), "cannot load backend plugin"));
    (void)fx_load_ref; /* model_fixture.h helpers used only with the plugin */
    printf("NCCL backend not built: multi-rank part skipped\n");
    return failures ? 1 : 77;
#else
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    char self[1024], cmd[16384], logp[1024];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return 1;
    self[k] = 0;
    snprintf(logp, sizeof logp, "%s/test-nccl.log", DS4J_BUILD_DIR);
    const char *mpirun = DS4J_MPIEXEC " --oversubscribe --bind-to none";
    const char *plugin = DS4J_NCCL_PLUGIN;

    /* ---- is there a GPU? ---- */
    snprintf(cmd, sizeof cmd, "%s -np 1 '%s' --probe '%s' > '%s' 2>&1", mpirun, self, plugin, logp);
    int rc = fx_run(cmd);
    show(logp);
    if (rc == 77) {
        printf("no CUDA device: NCCL tests skipped\n");
        return 77;
    }
    CHECK(rc == 0);
    if (rc) return 1;
    int ngpu = 0;
    FILE *p = popen("nvidia-smi -L 2>/dev/null | grep -c '^GPU'", "r");
    if (p) {
        if (fscanf(p, "%d", &ngpu) != 1) ngpu = 0;
        pclose(p);
    }
    if (ngpu == 1) {
        printf("one GPU: the 2-rank NCCL tests need two (one per rank); skipped\n");
        return failures ? 1 : 77;
    }

    /* ---- collectives on known inputs ---- */
    snprintf(cmd, sizeof cmd, "%s -np 2 '%s' --ranks nccl '%s' > '%s' 2>&1", mpirun, self, plugin, logp);
    rc = fx_run(cmd);
    show(logp);
    CHECK(rc == 0);

    /* ---- clear errors on every rank, no hang ---- */
    struct { const char *opts, *needle; } errs[] = {
        {"device=99", "device=99 out of range"},
        {"bogus=1", "unknown option"},
        {"timeout_ms=-5", "timeout_ms=-5"},
    };
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s -np 2 '%s' --open-error nccl '%s' '%s' '%s' > '%s' 2>&1", mpirun, self, plugin,
                 errs[i].opts, errs[i].needle, logp);
        rc = fx_run(cmd);
        show(logp);
        CHECK(rc == 0);
    }
    /* only rank 1 asks for a GPU that does not exist: rank 0 must hear of it */
    snprintf(cmd, sizeof cmd, "%s -np 1 '%s' --open-error nccl '%s' timeout_ms=600000 'other rank(s) could not set up a GPU' : "
             "-np 1 '%s' --open-error nccl '%s' device=99 'out of range' > '%s' 2>&1", mpirun, self, plugin, self, plugin, logp);
    rc = fx_run(cmd);
    show(logp);
    CHECK(rc == 0);

    /* ---- a peer that never joins: bounded wait ---- */
    snprintf(cmd, sizeof cmd, "%s -np 2 '%s' --timeout '%s' > '%s' 2>&1", mpirun, self, plugin, logp);
    double t0 = now_s();
    rc = fx_run(cmd);
    printf("silent peer: exit %d after %.1f s\n", rc, now_s() - t0);
    show(logp);
    CHECK(rc == 0);

    /* ---- the engine over NCCL equals one process ---- */
    char gguf[1024], dir[1024], out[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    fx_ref ref;
    if (fx_load_ref(dir, &ref)) return 1;
    snprintf(gguf, sizeof gguf, "%s/test-nccl-tiny-a-f32.gguf", DS4J_BUILD_DIR);
    snprintf(cmd, sizeof cmd, "'%s' convert --hf '%s' --out '%s' --type f32 > /dev/null 2>&1", DS4J_TOOL_PATH, dir, gguf);
    if (system(cmd) != 0) { fprintf(stderr, "conversion failed: %s\n", cmd); return 1; }
    int q = 0;
    for (int i = 1; i < ref.n_seq; i++) if (ref.n_tok[i] > ref.n_tok[q]) q = i;
    const int32_t *tok = ref.tok[q];
    int n = ref.n_tok[q];
    ds4j_engine *e = ds4j_engine_open(gguf, "threads=1;prefill_chunk=32");
    if (!e) { fprintf(stderr, "%s\n", ds4j_last_error()); return 1; }
    int V = ds4j_n_vocab(e);
    float *full = malloc((size_t)n * V * sizeof(float));
    ds4j_session *s = ds4j_session_new(e, n);
    CHECK(ds4j_session_eval_batch(s, tok, n, 1, full) == DS4J_OK);
    ds4j_session_free(s);
    ds4j_engine_close(e);
    float *refl = fx_load_logits(dir, &ref, q, V);
    CHECK(refl != NULL);
    char ids[8192];
    size_t o = 0;
    for (int i = 0; i < n; i++) o += (size_t)snprintf(ids + o, sizeof ids - o, "%s%d", i ? "," : "", tok[i]);
    snprintf(out, sizeof out, "%s/test-nccl-logits.f32", DS4J_BUILD_DIR);
    const int chunks[] = {1, 32};
    for (int ci = 0; ci < 2; ci++) {
        remove(out);
        snprintf(cmd, sizeof cmd, "%s -np 2 '%s' logits --model '%s' --tokens %s --chunk %d --threads 1 "
                 "--options comm=nccl --out '%s' > '%s' 2>&1", mpirun, DS4J_TOOL_PATH, gguf, ids, chunks[ci], out, logp);
        rc = fx_run(cmd);
        long len = 0;
        float *got = rc == 0 ? (float *)fx_read_file(out, &len) : NULL;
        if (!got || len != (long)n * V * 4) {
            fprintf(stderr, "mpirun -np 2 logits comm=nccl exited %d:\n", rc);
            show(logp);
            CHECK(0);
            free(got);
            continue;
        }
        double d1 = fx_maxdiff(got, full, (long)n * V), dr = refl ? fx_maxdiff(got, refl, (long)n * V) : 1;
        printf("comm=nccl, 2 ranks, chunk %d: max |d| vs one process %.3g, vs reference %.3g\n", chunks[ci], d1, dr);
        CHECK(d1 <= 1e-5);
        CHECK(dr <= 5e-4);
        free(got);
    }

    /* ---- generate: the leader samples and broadcasts ---- */
    if (ref.greedy && ref.greedy_seq < ref.n_seq) {
        char pids[4096], want[4096];
        fx_ids_csv(ref.tok[ref.greedy_seq], ref.n_tok[ref.greedy_seq], pids, sizeof pids);
        fx_ids_csv(ref.greedy, ref.n_greedy, want, sizeof want);
        snprintf(cmd, sizeof cmd, "%s -np 2 '%s' generate --model '%s' --tokens %s -n %d --threads 1 --options comm=nccl "
                 "> '%s' 2>/dev/null", mpirun, DS4J_TOOL_PATH, gguf, pids, ref.n_greedy, logp);
        rc = fx_run(cmd);
        char *txt = fx_read_file(logp, NULL);
        printf("comm=nccl generate: exit %d, %s", rc, txt ? txt : "(no output)\n");
        CHECK(rc == 0 && txt && !strncmp(txt, want, strlen(want)) && txt[strlen(want)] == '\n');
        free(txt);
        /* the server's layout: one driver, the other rank a plain `ds4j-tool follow` */
        snprintf(cmd, sizeof cmd, "%s -np 1 '%s' generate --model '%s' --tokens %s -n %d --threads 1 --options comm=nccl : "
                 "-np 1 '%s' follow --model '%s' --threads 1 --options comm=nccl > '%s' 2>/dev/null",
                 mpirun, DS4J_TOOL_PATH, gguf, pids, ref.n_greedy, DS4J_TOOL_PATH, gguf, logp);
        rc = fx_run(cmd);
        txt = fx_read_file(logp, NULL);
        printf("comm=nccl generate + follow: exit %d, %s", rc, txt ? txt : "(no output)\n");
        CHECK(rc == 0 && txt && !strncmp(txt, want, strlen(want)) && txt[strlen(want)] == '\n');
        free(txt);
    }

    /* ---- a rank dies mid-generation: an error, not a hang ---- */
    snprintf(cmd, sizeof cmd, "%s -np 2 '%s' generate --model '%s' --tokens 1,2,3 -n 60 --threads 1 --options comm=nccl "
             "--die-rank 1 --die-after 5 > '%s' 2>&1", mpirun, DS4J_TOOL_PATH, gguf, logp);
    t0 = now_s();
    rc = fx_run(cmd);
    double secs = now_s() - t0;
    char *txt = fx_read_file(logp, NULL);
    int commas = 0;
    for (const char *ch = txt; ch && *ch && *ch != '-'; ch++) commas += *ch == ',';
    printf("comm=nccl, rank 1 killed after 5 tokens: mpirun exit %d after %.1f s, %d tokens printed\n", rc, secs, commas + 1);
    CHECK(rc != 0 && rc != 124 && secs < 100);
    CHECK(commas < 59);
    free(txt);
    free(refl);
    free(full);
    fx_free_ref(&ref);
    return failures ? 1 : 0;
#endif
}
