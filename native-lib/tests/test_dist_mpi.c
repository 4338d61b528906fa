/*
 * test_dist_mpi.c — expert parallelism across processes. In-process: the
 * comm= option errors (unknown backend, nccl/jaccl not built, missing
 * plugin, comm_options for mpi, expert_compact), the built-in one-rank "local" backend (identity
 * all_sum equal to the plain engine, per-layer all_sum statistics and the
 * bounded drain, the partition check). With MPI (DS4J_MPIEXEC from CMake):
 * `mpirun -np 2/3/4 ds4j-tool logits --options comm=mpi` over the fixture's
 * longest sequence, token by token and chunked, equals the single-process
 * run (<= 1e-5) and the reference logits (<= 5e-4); generate (leader samples
 * and broadcasts) reproduces the reference greedy continuation; overlapping
 * expert ranges are refused on every rank; expert_compact=1 with each rank
 * on its own `ds4j-tool slice` file gives the same logits (and the full
 * file or a shared slice is refused); a rank killed mid-run makes
 * mpirun fail within a bounded time instead of hanging.
 * Leader/follower: this program re-runs itself as the leader (`--leader`,
 * public API only: new/sync with prefix reuse/rewind/eval/eval_batch/a sync
 * cancelled by its progress callback/a second session/a copy of the first
 * session's prefix into a third/broadcast/barrier)
 * next to `ds4j-tool follow` ranks (MPMD mpirun) and must write the same
 * numbers as the same script in one process; generate as leader with
 * follow ranks reproduces the greedy reference; a follower killed
 * mid-generation fails the leader promptly; recovery (--recover): after a
 * follower's death under mpirun --enable-recovery the leader's
 * ds4j_engine_recover spawns new followers (2 and 3 ranks, uneven ranges)
 * and the greedy continuation equals the reference again.
 */
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include "ds4j.h"
#include "model_fixture.h"

static long json_int(const char *js, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    return p ? atol(p + strlen(pat)) : -1;
}

static int expect_open_error(const char *gguf, const char *opts, const char *needle) {
    ds4j_engine *e = ds4j_engine_open(gguf, opts);
    const char *msg = ds4j_last_error();
    int ok = e == NULL && strstr(msg, needle) != NULL;
    printf("open '%s': %s\n", opts, e ? "(opened)" : msg);
    ds4j_engine_close(e);
    return ok;
}

#ifdef DS4J_MPIEXEC
static float *read_f32(const char *path, long n) {
    long len = 0;
    char *b = fx_read_file(path, &len);
    if (!b || len != n * 4) { free(b); return NULL; }
    return (float *)b;
}
#endif

/* ---- the leader's script: only public API calls; every number it
 * produces goes to `out` so that runs can be compared exactly ---- */
static void put(FILE *out, const float *v, long n) { fwrite(v, sizeof(float), (size_t)n, out); }
static void put_i(FILE *out, long x) { float f = (float)x; put(out, &f, 1); }

static int cancel_at_20(void *user, int32_t done, int32_t total) {
    (void)total;
    ++*(int *)user;
    return done >= 20;
}

static void scripted(ds4j_engine *e, const int32_t *tok, int n, FILE *out) {
    int V = ds4j_n_vocab(e), k = n / 2;
    ds4j_session *s = ds4j_session_new(e, n + 16);
    CHECK(s != NULL);
    if (!s) return;
    CHECK(ds4j_session_sync(s, tok, k, NULL, NULL) == 0);
    put(out, ds4j_session_logits(s), V);
    CHECK(ds4j_session_sync(s, tok, n, NULL, NULL) == k); /* prefix reuse */
    put(out, ds4j_session_logits(s), V);
    CHECK(ds4j_session_rewind(s, k - 3) == DS4J_OK && ds4j_session_pos(s) == k - 3);
    put(out, ds4j_session_logits(s), V);
    CHECK(ds4j_session_eval(s, tok[k - 3]) == DS4J_OK);
    put(out, ds4j_session_logits(s), V);
    float *rows = malloc((size_t)6 * V * sizeof(float));
    CHECK(ds4j_session_eval_batch(s, tok + k - 2, 6, 2, rows) == DS4J_OK);
    put(out, rows, 6L * V);
    free(rows);
    CHECK(ds4j_session_sync(s, tok, n, NULL, NULL) == k + 4);
    put(out, ds4j_session_logits(s), V);
    /* a divergent suffix: reuse up to the first difference */
    int32_t *alt = malloc((size_t)n * sizeof(int32_t));
    memcpy(alt, tok, (size_t)n * sizeof(int32_t));
    for (int i = n - 20; i < n - 5; i++) alt[i] = (tok[i] + 7) % V;
    int r = ds4j_session_sync(s, alt, n - 5, NULL, NULL);
    CHECK(r >= 0 && r <= n - 20);
    put_i(out, r);
    put(out, ds4j_session_logits(s), V);
    /* cancelled by the leader's callback after 20 tokens: every rank stops there */
    int calls = 0;
    r = ds4j_session_sync(s, tok, n, cancel_at_20, &calls);
    put_i(out, r);
    put_i(out, ds4j_session_pos(s));
    CHECK(calls > 0 && r == DS4J_ERR_CANCELLED && ds4j_session_pos(s) >= 20 && ds4j_session_pos(s) < n);
    if (r == DS4J_ERR_CANCELLED) {
        int p = ds4j_session_pos(s);
        CHECK(ds4j_session_eval(s, tok[p]) == DS4J_OK);
        put(out, ds4j_session_logits(s), V);
    }
    CHECK(ds4j_session_sync(s, tok, n, NULL, NULL) >= 0);
    put(out, ds4j_session_logits(s), V);
    free(alt);
    /* a second session, created and freed while the first one lives */
    ds4j_session *s2 = ds4j_session_new(e, 16);
    CHECK(s2 != NULL);
    if (s2) {
        CHECK(ds4j_session_eval_batch(s2, tok + 3, 10, 0, NULL) == DS4J_OK);
        put(out, ds4j_session_logits(s2), V);
        ds4j_session_free(s2);
    }
    CHECK(ds4j_session_eval(s, tok[0]) == DS4J_OK); /* the first session is unaffected */
    put(out, ds4j_session_logits(s), V);
    /* a copy of the first session's prefix (ds4j_session_copy, no forward): every follower copies the same
     * state into its own copy of the new session, or the next forwards' sums (and the guard) tell */
    ds4j_session *s3 = ds4j_session_new(e, n + 16);
    CHECK(s3 != NULL);
    if (s3) {
        int c = ds4j_session_copy(s3, s, n - 1);
        CHECK(c > 0 && c <= n - 1);
        put_i(out, c);
        int32_t cont[5];
        for (int i = 0; i < 5; i++) cont[i] = tok[(c + i) % n];
        CHECK(ds4j_session_eval_batch(s3, cont, 5, 0, NULL) == DS4J_OK);
        put(out, ds4j_session_logits(s3), V);
        CHECK(ds4j_session_eval(s, tok[1]) == DS4J_OK); /* the source goes on from where it was */
        put(out, ds4j_session_logits(s), V);
        ds4j_session_free(s3);
    }
    int32_t bt[2] = {5, 6};
    CHECK(ds4j_engine_broadcast_tokens(e, bt, 2, 0) == 2 && ds4j_engine_barrier(e) == DS4J_OK);
    ds4j_session_free(s);
}

static int leader_main(const char *gguf, const char *out_path, const char *opts) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    fx_ref ref;
    if (fx_load_ref(dir, &ref)) return 1;
    int q = 0;
    for (int i = 1; i < ref.n_seq; i++) if (ref.n_tok[i] > ref.n_tok[q]) q = i;
    ds4j_engine *e = ds4j_engine_open(gguf, opts);
    if (!e) { fprintf(stderr, "leader: %s\n", ds4j_last_error()); return 1; }
    FILE *out = fopen(out_path, "wb");
    if (!out) return 1;
    scripted(e, ref.tok[q], ref.n_tok[q], out);
    fclose(out);
    ds4j_engine_close(e);
    fx_free_ref(&ref);
    return failures ? 1 : 0;
}

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (v[i] > v[b]) b = i;
    return b;
}

/* Greedy continuation of prompt in a fresh session: n tokens into out, or
 * the first error (the session is returned in *sp for the caller to free). */
static int greedy(ds4j_engine *e, const int32_t *prompt, int np, int n, int32_t *out, ds4j_session **sp) {
    ds4j_session *s = ds4j_session_new(e, np + n + 1);
    *sp = s;
    if (!s) return DS4J_ERR_COMM;
    int rc = ds4j_session_sync(s, prompt, np, NULL, NULL);
    if (rc < 0) return rc;
    int V = ds4j_n_vocab(e);
    for (int i = 0; i < n; i++) {
        out[i] = argmax(ds4j_session_logits(s), V);
        if (i + 1 < n && (rc = ds4j_session_eval(s, out[i])) != DS4J_OK) return rc;
    }
    return 0;
}

/* Recovery, as the leader of `mpirun --enable-recovery` next to a follower
 * that kills itself mid-generation: the generation fails with
 * DS4J_ERR_COMM, ds4j_engine_recover spawns a new follower, the old session
 * is refused, and a new one generates the greedy continuation again. Writes
 * "<recover seconds> s, <failed checks> failed checks\n<tokens>\n" to out_path
 * (mpirun --enable-recovery does not pass on the leader's exit status). */
static int recover_main(const char *gguf, const char *out_path, const char *opts) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    fx_ref ref;
    if (fx_load_ref(dir, &ref) || !ref.greedy) return 1;
    ds4j_engine *e = ds4j_engine_open(gguf, opts);
    if (!e) { fprintf(stderr, "recover leader: %s\n", ds4j_last_error()); return 1; }
    const int32_t *prompt = ref.tok[ref.greedy_seq];
    int np = ref.n_tok[ref.greedy_seq], n = ref.n_greedy;
    int32_t *got = calloc((size_t)n, sizeof(int32_t));
    ds4j_session *s = NULL;
    /* a healthy group is not replaced */
    CHECK(ds4j_engine_recover(e) == DS4J_ERR_STATE && strstr(ds4j_last_error(), "the cluster is healthy"));
    int rc = greedy(e, prompt, np, n, got, &s);
    fprintf(stderr, "recover leader: generation with the dying follower: %d (%s)\n", rc, ds4j_last_error());
    CHECK(rc == DS4J_ERR_COMM && strstr(ds4j_last_error(), " (pid ") &&
          (strstr(ds4j_last_error(), "is gone") || strstr(ds4j_last_error(), "is stopped")));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = ds4j_engine_recover(e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    fprintf(stderr, "recover leader: ds4j_engine_recover: %d %s after %.2f s\n", rc, rc ? ds4j_last_error() : "", secs);
    CHECK(rc == DS4J_OK);
    if (s) {
        /* the old session's follower copy died with the old group */
        CHECK(ds4j_session_eval(s, 1) == DS4J_ERR_STATE && strstr(ds4j_last_error(), "before the cluster was recovered"));
        ds4j_session_free(s); /* announces nothing: the new follower never knew it */
    }
    FILE *out = fopen(out_path, "w");
    if (rc == DS4J_OK && out) {
        memset(got, 0, (size_t)n * sizeof(int32_t));
        rc = greedy(e, prompt, np, n, got, &s);
        if (rc) fprintf(stderr, "recover leader: after recovery: %s\n", ds4j_last_error());
        CHECK(rc == 0);
        ds4j_session_free(s);
        fprintf(out, "%.3f s, %d failed checks\n", secs, failures);
        for (int i = 0; i < n; i++) fprintf(out, "%s%d", i ? "," : "", got[i]);
        fprintf(out, "\n");
        /* the rebuilt group keeps working for collectives too */
        CHECK(ds4j_engine_barrier(e) == DS4J_OK);
    }
    if (out) fclose(out);
    free(got);
    ds4j_engine_close(e);
    fx_free_ref(&ref);
    return failures ? 1 : 0;
}

/* Every rank runs this: rank 0 drives one session; a rank > 0 first tries
 * to drive itself (refused), then follows. */
static int refuse_main(const char *gguf, const char *opts) {
    ds4j_engine *e = ds4j_engine_open(gguf, opts);
    if (!e) { fprintf(stderr, "refuse: %s\n", ds4j_last_error()); return 1; }
    if (ds4j_engine_rank(e) == 0) {
        ds4j_session *s = ds4j_session_new(e, 8);
        CHECK(s && ds4j_session_eval(s, 3) == DS4J_OK && ds4j_session_logits(s) != NULL);
        ds4j_session_free(s);
    } else {
        CHECK(ds4j_session_new(e, 8) == NULL && strstr(ds4j_last_error(), "only the leader (rank 0) drives sessions"));
        int32_t t = 1;
        CHECK(ds4j_engine_broadcast_tokens(e, &t, 1, 0) == DS4J_ERR_STATE);
        CHECK(ds4j_engine_barrier(e) == DS4J_ERR_STATE);
        CHECK(ds4j_engine_follow(e) == 0);
    }
    ds4j_engine_close(e);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--leader")) return leader_main(argv[2], argv[3], argv[4]);
    if (argc == 4 && !strcmp(argv[1], "--refuse")) return refuse_main(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "--recover")) return recover_main(argv[2], argv[3], argv[4]);
    char gguf[1024], dir[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    fx_ref ref;
    if (fx_load_ref(dir, &ref)) return 1;
    /* a file of our own: other tests convert the same fixture concurrently under ctest -j */
    snprintf(gguf, sizeof gguf, "%s/test-dist-tiny-a-f32.gguf", DS4J_BUILD_DIR);
    char conv[4096];
    snprintf(conv, sizeof conv, "'%s' convert --hf '%s' --out '%s' --type f32 > /dev/null 2>&1", DS4J_TOOL_PATH, dir, gguf);
    if (system(conv) != 0) { fprintf(stderr, "conversion failed: %s\n", conv); return 1; }
    int q = 0;
    for (int i = 1; i < ref.n_seq; i++) if (ref.n_tok[i] > ref.n_tok[q]) q = i;
    const int32_t *tok = ref.tok[q];
    int n = ref.n_tok[q];

    /* ---- option errors ---- */
#ifndef DS4J_HAVE_NCCL_PLUGIN
    /* with the plugin built this would start NCCL in this process: test_dist_nccl covers it */
    CHECK(expect_open_error(gguf, "comm=nccl", "built without NCCL"));
#endif
#ifdef DS4J_MPIEXEC
    CHECK(expect_open_error(gguf, "comm=mpi;comm_options=device=0", "the options are timeout_ms=N"));
    CHECK(expect_open_error(gguf, "comm=mpi;comm_options=timeout_ms=-3", "the options are timeout_ms=N"));
#endif
    CHECK(expect_open_error(gguf, "comm=jaccl", "comm=jaccl: backend not built in this build"));
    CHECK(expect_open_error(gguf, "comm=carrier-pigeon", "unknown backend"));
    CHECK(expect_open_error(gguf, "comm=mpi;comm_plugin=/nonexistent/libds4j_comm_mpi.so", "cannot load backend plugin"));
    CHECK(expect_open_error(gguf, "comm=local;vocab_only=1", "needs the weights"));
    /* a full file is not compact for a rank that owns part of the experts */
    CHECK(expect_open_error(gguf, "expert_compact=1;expert_range=0:4", "ds4j-tool slice --model FULL.gguf --experts 0:4"));
    CHECK(expect_open_error(gguf, "comm=local;expert_range=0:4", "do not partition"));

    /* ---- single-process reference run and the one-rank local backend ---- */
    ds4j_engine *e = ds4j_engine_open(gguf, "threads=1;prefill_chunk=32");
    ds4j_engine *el = ds4j_engine_open(gguf, "threads=1;prefill_chunk=32;comm=local");
    if (!e || !el) { fprintf(stderr, "%s\n", ds4j_last_error()); return 1; }
    int V = ds4j_n_vocab(e);
    int L = (int)json_int(ds4j_engine_describe(e), "n_layer");
    /* recovery needs a group: refused (not a crash) for one process and for comm=local */
    CHECK(ds4j_engine_recover(NULL) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_engine_recover(e) == DS4J_ERR_STATE && strstr(ds4j_last_error(), "no distributed group"));
    CHECK(ds4j_engine_recover(el) == DS4J_ERR_STATE && strstr(ds4j_last_error(), "no distributed group"));
    CHECK(ds4j_engine_rank(e) == 0 && ds4j_engine_world_size(e) == 1);
    CHECK(ds4j_engine_rank(el) == 0 && ds4j_engine_world_size(el) == 1);
    CHECK(strstr(ds4j_engine_describe(el), "\"comm\":\"local\"") != NULL);
    float *full = malloc((size_t)n * V * sizeof(float)), *loc = malloc((size_t)n * V * sizeof(float));
    ds4j_session *s = ds4j_session_new(e, n), *sl = ds4j_session_new(el, n);
    CHECK(ds4j_session_eval_batch(s, tok, n, 1, full) == DS4J_OK);
    CHECK(ds4j_session_eval_batch(sl, tok, n, 1, loc) == DS4J_OK);
    CHECK(fx_maxdiff(full, loc, (long)n * V) == 0); /* identity all_sum */
    int64_t cnt = -1, tot = -1, mx = -1;
    CHECK(ds4j_engine_allsum_stats(e, -1, &cnt, &tot, &mx) == DS4J_OK && cnt == 0);
    CHECK(ds4j_engine_allsum_stats(el, -1, &cnt, &tot, &mx) == DS4J_OK);
    printf("local: %lld all_sum calls (%d tokens x %d layers)\n", (long long)cnt, n, L);
    CHECK(cnt == (int64_t)n * L && tot >= 0 && mx >= 0);
    CHECK(ds4j_engine_allsum_stats(el, 0, &cnt, NULL, NULL) == DS4J_OK && cnt == n);
    CHECK(ds4j_engine_allsum_stats(el, L, &cnt, NULL, NULL) == DS4J_ERR_INVALID_ARGUMENT);
    int32_t lay[64];
    int64_t ns[64], dropped = -1;
    int got = ds4j_engine_allsum_drain(el, lay, ns, 64, &dropped);
    CHECK(got == 64 && dropped == 0);
    CHECK(lay[0] == 0 && lay[1] == 1 && lay[L] == 0); /* oldest first, layer order per token */
    long total = got;
    while ((got = ds4j_engine_allsum_drain(el, lay, ns, 64, NULL)) > 0) total += got;
    CHECK(got == 0 && total == (long)n * L);
    /* allsum_overlap: the split all_sum is in effect only with a group
     * (local has one of one rank), and turning it off changes no bit */
    CHECK(expect_open_error(gguf, "comm=local;allsum_overlap=2", "allsum_overlap=2: expected 0 or 1"));
    CHECK(strstr(ds4j_engine_describe(el), "\"allsum_overlap\":true") != NULL);
    CHECK(strstr(ds4j_engine_describe(e), "\"allsum_overlap\":false") != NULL);
    {
        ds4j_engine *e0 = ds4j_engine_open(gguf, "threads=1;prefill_chunk=32;comm=local;allsum_overlap=0");
        CHECK(e0 && strstr(ds4j_engine_describe(e0), "\"allsum_overlap\":false"));
        ds4j_session *s0 = e0 ? ds4j_session_new(e0, n) : NULL;
        float *l0 = malloc((size_t)n * V * sizeof(float));
        CHECK(s0 && ds4j_session_eval_batch(s0, tok, n, 1, l0) == DS4J_OK);
        CHECK(s0 && memcmp(l0, loc, (size_t)n * V * sizeof(float)) == 0);
        CHECK(e0 && ds4j_engine_allsum_stats(e0, -1, &cnt, NULL, NULL) == DS4J_OK && cnt == (int64_t)n * L);
        free(l0);
        ds4j_session_free(s0);
        ds4j_engine_close(e0);
    }
    CHECK(ds4j_engine_follow(e) == DS4J_ERR_STATE);  /* no comm= */
    CHECK(ds4j_engine_follow(el) == DS4J_ERR_STATE); /* rank 0 */
    int32_t bt[2] = {7, 9};
    CHECK(ds4j_engine_broadcast_tokens(el, bt, 2, 0) == 2 && bt[0] == 7);
    CHECK(ds4j_engine_broadcast_tokens(el, bt, 2, 1) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_engine_barrier(el) == DS4J_OK && ds4j_engine_barrier(e) == DS4J_OK);
    ds4j_session_free(s);
    ds4j_session_free(sl);
    ds4j_engine_close(el);
    ds4j_engine_close(e);

#ifndef DS4J_MPIEXEC
    printf("MPI not found at build time: multi-process part skipped\n");
    return failures ? 1 : 77;
#else
    float *refl = fx_load_logits(dir, &ref, q, V);
    CHECK(refl != NULL);
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    char ids[8192];
    size_t o = 0;
    for (int i = 0; i < n; i++) o += (size_t)snprintf(ids + o, sizeof ids - o, "%s%d", i ? "," : "", tok[i]);
    char out[1024], logp[1024], cmd[40000];
    snprintf(out, sizeof out, "%s/test-dist-logits.f32", DS4J_BUILD_DIR);
    snprintf(logp, sizeof logp, "%s/test-dist.logp", DS4J_BUILD_DIR);
    const char *mpirun = DS4J_MPIEXEC " --oversubscribe";

    /* ---- logits across 2, 3 (uneven split) and 4 ranks ---- */
    const int cases[][2] = {{2, 1}, {2, 32}, {3, 7}, {4, 1}};
    for (int c = 0; c < 4; c++) {
        int np = cases[c][0], chunk = cases[c][1];
        remove(out);
        snprintf(cmd, sizeof cmd, "%s -np %d '%s' logits --model '%s' --tokens %s --chunk %d --threads 1 "
                 "--options comm=mpi --out '%s' > '%s' 2>&1", mpirun, np, DS4J_TOOL_PATH, gguf, ids, chunk, out, logp);
        int rc = fx_run(cmd);
        float *got_l = rc == 0 ? read_f32(out, (long)n * V) : NULL;
        if (!got_l) {
            char *l = fx_read_file(logp, NULL);
            fprintf(stderr, "mpirun -np %d exited %d:\n%s\n", np, rc, l ? l : "");
            free(l);
            CHECK(got_l != NULL);
            continue;
        }
        double d1 = fx_maxdiff(got_l, full, (long)n * V), dr = refl ? fx_maxdiff(got_l, refl, (long)n * V) : 1;
        printf("mpirun -np %d, chunk %d: max |d| vs one process %.3g, vs reference %.3g\n", np, chunk, d1, dr);
        CHECK(d1 <= 1e-5);
        CHECK(dr <= 5e-4);
        free(got_l);
    }

    /* ---- 16-bit all_sum payload (all_sum_dtype): its effect on the logits ---- */
    for (int bf = 0; bf < 2; bf++) {
        remove(out);
        snprintf(cmd, sizeof cmd, "%s -np 2 '%s' logits --model '%s' --tokens %s --chunk 32 --threads 1 "
                 "--options 'comm=mpi;all_sum_dtype=%s' --out '%s' > '%s' 2>&1", mpirun, DS4J_TOOL_PATH, gguf, ids,
                 bf ? "bf16" : "f16", out, logp);
        int rc = fx_run(cmd);
        float *got_l = rc == 0 ? read_f32(out, (long)n * V) : NULL;
        CHECK(got_l != NULL);
        if (!got_l) continue;
        double d1 = fx_maxdiff(got_l, full, (long)n * V), kl = 0;
        double *la = malloc((size_t)V * sizeof(double)), *lb = malloc((size_t)V * sizeof(double));
        int agree = 0;
        for (int t = 0; t < n; t++) {
            fx_log_softmax(full + (long)t * V, la, V);
            fx_log_softmax(got_l + (long)t * V, lb, V);
            for (int i = 0; i < V; i++) kl += exp(la[i]) * (la[i] - lb[i]) / n;
            agree += fx_argmax(full + (long)t * V, V) == fx_argmax(got_l + (long)t * V, V);
        }
        printf("all_sum_dtype=%s, 2 ranks: max |d| vs the f32 payload %.3g, mean KL %.3g, top-1 %d/%d\n",
               bf ? "bf16" : "f16", d1, kl, agree, n);
        CHECK(d1 > 0);              /* the payload really is rounded */
        CHECK(kl < (bf ? 1e-2 : 1e-3));
        free(la);
        free(lb);
        free(got_l);
    }

    /* ---- allsum_overlap: the routed all_sum travels while the shared
     * expert is computed; the same bits as the blocking sum, per payload.
     * Chunks of 32 rows make the shared expert's matmuls big enough to be
     * run in row blocks with polls between them (one thread: 2 blocks); one
     * row at a time (the cases above, overlap on by default) they are not. */
    for (int d = 0; d < 2; d++) {
        float *lo[2] = {NULL, NULL};
        for (int ov = 0; ov < 2; ov++) {
            remove(out);
            snprintf(cmd, sizeof cmd, "%s -np 2 '%s' logits --model '%s' --tokens %s --chunk %d --threads 1 "
                     "--options 'comm=mpi;all_sum_dtype=%s;allsum_overlap=%d' --out '%s' > '%s' 2>&1", mpirun,
                     DS4J_TOOL_PATH, gguf, ids, 32, d ? "bf16" : "f32", ov, out, logp);
            lo[ov] = fx_run(cmd) == 0 ? read_f32(out, (long)n * V) : NULL;
            CHECK(lo[ov] != NULL);
        }
        if (lo[0] && lo[1]) {
            int same = memcmp(lo[0], lo[1], (size_t)n * V * sizeof(float)) == 0;
            double d1 = fx_maxdiff(lo[1], full, (long)n * V);
            printf("allsum_overlap=1 vs 0, 2 ranks, all_sum_dtype=%s: %s; max |d| vs one process %.3g\n",
                   d ? "bf16" : "f32", same ? "bit-identical" : "DIFFERENT", d1);
            CHECK(same);
            if (!d) CHECK(d1 <= 1e-5);
        }
        free(lo[0]);
        free(lo[1]);
    }

    /* ---- expert_compact: each rank opens its own slice (ds4j-tool slice) ---- */
    {
        char parts[2][1024];
        for (int r = 0; r < 2; r++) {
            snprintf(parts[r], sizeof parts[r], "%s/test-dist-part%d-of-2.gguf", DS4J_BUILD_DIR, r);
            snprintf(cmd, sizeof cmd, "'%s' slice --model '%s' --rank %d --world-size 2 --out '%s' 2>/dev/null",
                     DS4J_TOOL_PATH, gguf, r, parts[r]);
            CHECK(fx_run(cmd) == 0);
        }
        for (int chunk = 1; chunk <= 32; chunk += 31) {
            remove(out);
            snprintf(cmd, sizeof cmd, "%s -np 1 '%s' logits --model '%s' --tokens %s --chunk %d --threads 1 "
                     "--options 'comm=mpi;expert_compact=1' --out '%s' : -np 1 '%s' logits --model '%s' --tokens %s "
                     "--chunk %d --threads 1 --options 'comm=mpi;expert_compact=1' > '%s' 2>&1", mpirun, DS4J_TOOL_PATH,
                     parts[0], ids, chunk, out, DS4J_TOOL_PATH, parts[1], ids, chunk, logp);
            int rc = fx_run(cmd);
            float *got_l = rc == 0 ? read_f32(out, (long)n * V) : NULL;
            if (!got_l) {
                char *l = fx_read_file(logp, NULL);
                fprintf(stderr, "expert_compact, 2 ranks: exit %d:\n%s\n", rc, l ? l : "");
                free(l);
                CHECK(got_l != NULL);
                continue;
            }
            double d1 = fx_maxdiff(got_l, full, (long)n * V), dr = refl ? fx_maxdiff(got_l, refl, (long)n * V) : 1;
            printf("expert_compact, 2 ranks on slices 0:4 and 4:8, chunk %d: max |d| vs one process %.3g, vs reference "
                   "%.3g\n", chunk, d1, dr);
            CHECK(d1 <= 1e-5);
            CHECK(dr <= 5e-4);
            free(got_l);
        }
        /* a slice next to a full file: the handshake compares everything but
         * the routed experts, and the full-file rank takes the other half */
        remove(out);
        snprintf(cmd, sizeof cmd, "%s -np 1 '%s' logits --model '%s' --tokens %s --chunk 32 --threads 1 "
                 "--options 'comm=mpi;expert_compact=1' --out '%s' : -np 1 '%s' logits --model '%s' --tokens %s "
                 "--chunk 32 --threads 1 --options comm=mpi > '%s' 2>&1", mpirun, DS4J_TOOL_PATH, parts[0], ids, out,
                 DS4J_TOOL_PATH, gguf, ids, logp);
        int mrc = fx_run(cmd);
        float *mixed = mrc == 0 ? read_f32(out, (long)n * V) : NULL;
        CHECK(mixed != NULL);
        if (mixed) {
            double d1 = fx_maxdiff(mixed, full, (long)n * V);
            printf("slice 0:4 (expert_compact) + full file (4:8): max |d| vs one process %.3g\n", d1);
            CHECK(d1 <= 1e-5);
        }
        free(mixed);
        /* the full file under expert_compact=1 is refused on every rank, with the fix in the message */
        snprintf(cmd, sizeof cmd, "%s -np 2 '%s' logits --model '%s' --tokens 1,2 --options 'comm=mpi;expert_compact=1' "
                 "> '%s' 2>&1", mpirun, DS4J_TOOL_PATH, gguf, logp);
        int rc = fx_run(cmd);
        char *txt = fx_read_file(logp, NULL);
        printf("expert_compact=1 on the full file, 2 ranks: exit %d\n", rc);
        CHECK(rc != 0 && rc != 124 && txt && strstr(txt, "ds4j-tool slice --model FULL.gguf --experts 0:4") &&
              strstr(txt, "ds4j-tool slice --model FULL.gguf --experts 4:8"));
        free(txt);
        /* both ranks on the same slice: the ranges do not partition the experts */
        snprintf(cmd, sizeof cmd, "%s -np 2 '%s' logits --model '%s' --tokens 1,2 --options 'comm=mpi;expert_compact=1' "
                 "> '%s' 2>&1", mpirun, DS4J_TOOL_PATH, parts[0], logp);
        rc = fx_run(cmd);
        txt = fx_read_file(logp, NULL);
        printf("both ranks on slice 0:4: exit %d\n", rc);
        CHECK(rc != 0 && rc != 124 && txt && strstr(txt, "do not partition"));
        free(txt);
    }

    /* ---- generate: leader samples and broadcasts ---- */
    if (ref.greedy && ref.greedy_seq < ref.n_seq) {
        char pids[4096], want[4096];
        fx_ids_csv(ref.tok[ref.greedy_seq], ref.n_tok[ref.greedy_seq], pids, sizeof pids);
        fx_ids_csv(ref.greedy, ref.n_greedy, want, sizeof want);
        snprintf(cmd, sizeof cmd, "%s -np 2 '%s' generate --model '%s' --tokens %s -n %d --threads 1 --options comm=mpi > '%s' 2>/dev/null",
                 mpirun, DS4J_TOOL_PATH, gguf, pids, ref.n_greedy, logp);
        int rc = fx_run(cmd);
        char *txt = fx_read_file(logp, NULL);
        printf("mpirun -np 2 generate: exit %d, %s", rc, txt ? txt : "(no output)\n");
        CHECK(rc == 0 && txt && !strncmp(txt, want, strlen(want)) && txt[strlen(want)] == '\n');
        free(txt);
    }

    /* ---- overlapping explicit ranges are refused on every rank ---- */
    snprintf(cmd, sizeof cmd, "%s -np 2 '%s' logits --model '%s' --tokens 1,2 --options 'comm=mpi;expert_range=0:5' > '%s' 2>&1",
             mpirun, DS4J_TOOL_PATH, gguf, logp);
    int rc = fx_run(cmd);
    char *txt = fx_read_file(logp, NULL);
    printf("overlapping ranges: exit %d\n", rc);
    CHECK(rc != 0 && rc != 124 && txt && strstr(txt, "do not partition"));
    free(txt);

    /* ---- a rank dies mid-generation: an error, not a hang ---- */
    snprintf(cmd, sizeof cmd, "%s -np 2 '%s' generate --model '%s' --tokens 1,2,3 -n 60 --threads 1 --options comm=mpi "
             "--die-rank 1 --die-after 5 > '%s' 2>&1", mpirun, DS4J_TOOL_PATH, gguf, logp);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = fx_run(cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    txt = fx_read_file(logp, NULL);
    int commas = 0;
    for (const char *c = txt; c && *c && *c != '-'; c++) commas += *c == ',';
    printf("rank 1 killed after 5 tokens: mpirun exit %d after %.1f s, %d tokens printed\n", rc, secs, commas + 1);
    /* the timeout (120 s) must not be what ended it: mpirun itself reports the dead rank */
    CHECK(rc != 0 && secs < 100);
    CHECK(commas < 59);
    CHECK(txt && strstr(txt, "rank 1"));
    free(txt);
    /* ---- leader/follower: a single-driver leader next to `ds4j-tool follow` ---- */
    {
        char self[1024], want_p[1024], got_p[1024];
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        CHECK(k > 0);
        self[k > 0 ? k : 0] = 0;
        snprintf(want_p, sizeof want_p, "%s/test-dist-script-1.f32", DS4J_BUILD_DIR);
        snprintf(got_p, sizeof got_p, "%s/test-dist-script-n.f32", DS4J_BUILD_DIR);
        ds4j_engine *e1 = ds4j_engine_open(gguf, "threads=1;prefill_chunk=4");
        FILE *f = fopen(want_p, "wb");
        CHECK(e1 && f);
        if (e1 && f) scripted(e1, tok, n, f);
        if (f) fclose(f);
        ds4j_engine_close(e1);
        long want_len = 0;
        float *want = (float *)fx_read_file(want_p, &want_len);
        CHECK(want && want_len > 0);
        for (int nf = 1; nf <= 2; nf++) {
            /* the followers open with the default prefill_chunk (64): they must adopt the leader's 4 */
            remove(got_p);
            snprintf(cmd, sizeof cmd, "%s -np 1 '%s' --leader '%s' '%s' "
                     "'threads=1;prefill_chunk=4;comm=mpi;comm_plugin=%s/libds4j_comm_mpi.so' : "
                     "-np %d '%s' follow --model '%s' --threads 1 --options comm=mpi > '%s' 2>&1",
                     mpirun, self, gguf, got_p, DS4J_BUILD_DIR, nf, DS4J_TOOL_PATH, gguf, logp);
            rc = fx_run(cmd);
            long got_len = 0;
            float *gotv = rc == 0 ? (float *)fx_read_file(got_p, &got_len) : NULL;
            if (!gotv || got_len != want_len || !want) {
                char *l = fx_read_file(logp, NULL);
                fprintf(stderr, "leader + %d follower(s): exit %d, %ld bytes (want %ld):\n%s\n", nf, rc, got_len,
                        want_len, l ? l : "");
                free(l);
                CHECK(0);
            } else {
                double d = fx_maxdiff(gotv, want, want_len / 4);
                printf("leader script + %d follower(s): %ld numbers, max |d| vs one process %.3g\n", nf, want_len / 4, d);
                CHECK(d <= 1e-5);
            }
            free(gotv);
        }
        free(want);

        /* ranks > 0 cannot drive sessions themselves outside ds4j_engine_follow */
        snprintf(cmd, sizeof cmd, "%s -np 2 '%s' --refuse '%s' 'threads=1;comm=mpi;comm_plugin=%s/libds4j_comm_mpi.so' > '%s' 2>&1",
                 mpirun, self, gguf, DS4J_BUILD_DIR, logp);
        rc = fx_run(cmd);
        printf("follower driving its own session: refused, then follows: exit %d\n", rc);
        if (rc) {
            char *l = fx_read_file(logp, NULL);
            fprintf(stderr, "%s\n", l ? l : "");
            free(l);
        }
        CHECK(rc == 0);

        /* generate as the only driver; ranks > 0 are plain followers */
        if (ref.greedy && ref.greedy_seq < ref.n_seq) {
            char pids[4096], wantg[4096];
            size_t po = 0, wo = 0;
            for (int i = 0; i < ref.n_tok[ref.greedy_seq]; i++)
                po += (size_t)snprintf(pids + po, sizeof pids - po, "%s%d", i ? "," : "", ref.tok[ref.greedy_seq][i]);
            for (int i = 0; i < ref.n_greedy; i++)
                wo += (size_t)snprintf(wantg + wo, sizeof wantg - wo, "%s%d", i ? "," : "", ref.greedy[i]);
            snprintf(cmd, sizeof cmd, "%s -np 1 '%s' generate --model '%s' --tokens %s -n %d --threads 1 --options comm=mpi : "
                     "-np 1 '%s' follow --model '%s' --threads 1 > '%s' 2>/dev/null",
                     mpirun, DS4J_TOOL_PATH, gguf, pids, ref.n_greedy, DS4J_TOOL_PATH, gguf, logp);
            rc = fx_run(cmd);
            txt = fx_read_file(logp, NULL);
            printf("generate + follow: exit %d, %s", rc, txt ? txt : "(no output)\n");
            CHECK(rc == 0 && txt && !strncmp(txt, wantg, strlen(wantg)) && txt[strlen(wantg)] == '\n');
            free(txt);
        }

        /* a follower dies mid-generation: the leader fails promptly, no hang */
        char errp[1024];
        snprintf(errp, sizeof errp, "%s/test-dist.err", DS4J_BUILD_DIR);
        snprintf(cmd, sizeof cmd, "%s -np 1 '%s' generate --model '%s' --tokens 1,2,3 -n 60 --threads 1 --options comm=mpi : "
                 "-np 1 '%s' follow --model '%s' --threads 1 --die-after 6 > '%s' 2> '%s'",
                 mpirun, DS4J_TOOL_PATH, gguf, DS4J_TOOL_PATH, gguf, logp, errp);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = fx_run(cmd);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        txt = fx_read_file(logp, NULL);
        int toks = 0;
        for (const char *c = txt; c && *c; c++) toks += *c == ',';
        printf("follower killed after 6 forwards: mpirun exit %d after %.1f s, %d tokens printed\n", rc, secs,
               txt && *txt ? toks + 1 : 0);
        CHECK(rc != 0 && rc != 124 && secs < 100);
        /* The follower dies synchronously at the start of its 7th forward
         * (prompt + 5 decode steps done), so the leader fails there: at most the
         * 6 tokens sampled from those logits, whatever the machine's load. */
        CHECK(toks <= 6);
        free(txt);

        /* a follower evaluates another token than the leader: the divergence
         * guard (every forward by default) fails both ranks at the next
         * forward, naming the rank and both hashes, instead of garbage. Both
         * ranks print the same message; whichever exits first makes mpirun end
         * the job, so the test accepts either rank's copy. */
        snprintf(cmd, sizeof cmd, "%s -np 1 '%s' generate --model '%s' --tokens 1,2,3 -n 40 --threads 1 "
                 "--options comm=mpi : -np 1 '%s' follow --model '%s' --threads 1 --diverge-after 3 > '%s' 2> '%s'",
                 mpirun, DS4J_TOOL_PATH, gguf, DS4J_TOOL_PATH, gguf, logp, errp);
        rc = fx_run(cmd);
        txt = fx_read_file(logp, NULL);
        char *err = fx_read_file(errp, NULL);
        toks = 0;
        for (const char *c = txt; c && *c; c++) toks += *c == ',';
        printf("follower diverges at its 4th decode step: exit %d, %d tokens printed\n", rc, txt && *txt ? toks + 1 : 0);
        CHECK(rc != 0 && rc != 124);
        /* rank 1 named, both hashes */
        const char *g = err ? strstr(err, "divergence guard") : NULL;
        CHECK(g && strstr(g, "rank 1 0x") && strstr(g, "leader (rank 0) token hash 0x"));
        if (!g) fprintf(stderr, "%s\n", err ? err : "(no stderr)");
        /* prompt + 3 good decode steps + the bad one sampled from good logits, then the check fails */
        CHECK(toks <= 5);
        /* off: the same run completes (the follower's garbage goes unnoticed; this is what the guard prevents) */
        snprintf(cmd, sizeof cmd, "%s -np 1 '%s' generate --model '%s' --tokens 1,2,3 -n 8 --threads 1 "
                 "--options 'comm=mpi;divergence_check=0' : -np 1 '%s' follow --model '%s' --threads 1 --diverge-after 3 "
                 "> '%s' 2> '%s'", mpirun, DS4J_TOOL_PATH, gguf, DS4J_TOOL_PATH, gguf, logp, errp);
        rc = fx_run(cmd);
        printf("the same with divergence_check=0: exit %d\n", rc);
        CHECK(rc == 0);
        free(err);
        free(txt);

        /* The leader survives a follower's death when the launcher lets it
         * (mpirun --enable-recovery: no kill-all): its all_sum notices that
         * the same-host peer's pid is gone and fails in well under a second,
         * with the rank named, and the leader's process ends on its own
         * terms (ds4j-tool prints the error and exits 1; mpirun then reports 0).
         * Both with the leader waiting in an overlapped all_sum (the
         * default: started, shared expert computed, then the wait finds the
         * peer gone) and in the blocking one (allsum_overlap=0). */
        for (int ov = 1; ov >= 0; ov--) {
            snprintf(cmd, sizeof cmd, "%s --enable-recovery -np 1 '%s' generate --model '%s' --tokens 1,2,3 -n 60 "
                     "--threads 1 --options 'comm=mpi;allsum_overlap=%d' : -np 1 '%s' follow --model '%s' --threads 1 "
                     "--die-after 6 > '%s' 2> '%s'", mpirun, DS4J_TOOL_PATH, gguf, ov, DS4J_TOOL_PATH, gguf, logp, errp);
            clock_gettime(CLOCK_MONOTONIC, &t0);
            rc = fx_run(cmd);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
            err = fx_read_file(errp, NULL);
            const char *gone = err ? strstr(err, "ds4j-tool generate: ") : NULL;
            printf("follower killed, mpirun --enable-recovery, allsum_overlap=%d: exit %d after %.1f s; leader: %.160s\n",
                   ov, rc, secs, gone ? gone : "(no leader error)");
            CHECK(rc != 124 && secs < 60);
            CHECK(gone && strstr(gone, "rank 1 (pid ") && strstr(gone, "is gone"));
            free(err);
        }

        /* Recovery: the leader of an --enable-recovery job loses a
         * follower mid-generation, calls ds4j_engine_recover and then
         * generates the same greedy continuation as one process (the
         * fixture's reference). 2 ranks: the new `ds4j-tool follow` takes the
         * dead rank's slot of a `localhost slots=2` hostfile. 3 ranks with
         * uneven explicit ranges (0:1, 1:3, 3:8), rank 2 dies: the surviving
         * rank 1 is killed by the leader, and the two new ranks must own
         * exactly 1:3 and 3:8 again or the handshake fails. 2 ranks, the
         * follower stopped (SIGSTOP) instead: after timeout_ms the leader
         * kills it (same host) and its slot is reused once mpirun has reaped it. */
        if (ref.greedy && ref.greedy_seq < ref.n_seq) {
            char hostf[1024], outp[1024], wantg[4096];
            snprintf(hostf, sizeof hostf, "%s/test-dist-hosts", DS4J_BUILD_DIR);
            snprintf(outp, sizeof outp, "%s/test-dist-recover.txt", DS4J_BUILD_DIR);
            FILE *hf = fopen(hostf, "w");
            if (hf) { fprintf(hf, "localhost slots=2\n"); fclose(hf); }
            char hostf3[1100];
            snprintf(hostf3, sizeof hostf3, "%s3", hostf);
            hf = fopen(hostf3, "w");
            if (hf) { fprintf(hf, "localhost slots=3\n"); fclose(hf); }
            size_t wo = 0;
            for (int i = 0; i < ref.n_greedy; i++)
                wo += (size_t)snprintf(wantg + wo, sizeof wantg - wo, "%s%d", i ? "," : "", ref.greedy[i]);
            for (int variant = 0; variant < 3; variant++) {
                int ranks = variant == 1 ? 3 : 2;
                remove(outp);
                if (ranks == 2)
                    snprintf(cmd, sizeof cmd, "%s --enable-recovery --hostfile '%s' -np 1 '%s' --recover '%s' '%s' "
                             "'threads=1;comm=mpi;comm_plugin=%s/libds4j_comm_mpi.so;respawn_tool=%s%s' : "
                             "-np 1 '%s' follow --model '%s' --threads 1 %s 6 > '%s' 2> '%s'",
                             mpirun, hostf, self, gguf, outp, DS4J_BUILD_DIR, DS4J_TOOL_PATH,
                             variant == 2 ? ";comm_options=timeout_ms=1500" : "", DS4J_TOOL_PATH, gguf,
                             variant == 2 ? "--stop-after" : "--die-after", logp, errp);
                else
                    snprintf(cmd, sizeof cmd, "%s --enable-recovery --hostfile '%s3' -np 1 '%s' --recover '%s' '%s' "
                             "'threads=1;comm=mpi;expert_range=0:1;comm_plugin=%s/libds4j_comm_mpi.so;respawn_tool=%s' : "
                             "-np 1 '%s' follow --model '%s' --threads 1 --options 'comm=mpi;expert_range=1:3' : "
                             "-np 1 '%s' follow --model '%s' --threads 1 --die-after 6 --options 'comm=mpi;expert_range=3:8' "
                             "> '%s' 2> '%s'", mpirun, hostf, self, gguf, outp, DS4J_BUILD_DIR, DS4J_TOOL_PATH,
                             DS4J_TOOL_PATH, gguf, DS4J_TOOL_PATH, gguf, logp, errp);
                clock_gettime(CLOCK_MONOTONIC, &t0);
                rc = fx_run(cmd);
                clock_gettime(CLOCK_MONOTONIC, &t1);
                secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
                char *res = fx_read_file(outp, NULL);
                char *line2 = res ? strchr(res, '\n') : NULL;
                if (line2) *line2++ = 0;
                printf("%d ranks, a follower %s, the leader recovers: exit %d after %.1f s; recover: %s; greedy "
                       "after: %.60s...\n", ranks, variant == 2 ? "stopped (SIGSTOP, timeout_ms=1500)" : "killed", rc,
                       secs, res ? res : "(no output)", line2 ? line2 : "(none)");
                CHECK(rc == 0 && res && strstr(res, " s, 0 failed checks"));
                CHECK(line2 && !strncmp(line2, wantg, strlen(wantg)) && line2[strlen(wantg)] == '\n');
                if (rc || !line2 || !strstr(res, " s, 0 failed checks")) {
                    char *l = fx_read_file(errp, NULL);
                    fprintf(stderr, "%s\n", l ? l : "(no stderr)");
                    free(l);
                }
                free(res);
            }
        }

        /* A stalled follower (SIGSTOP): nothing ends it but the leader's
         * bound, timeout_ms; the leader's error then makes plain mpirun end the
         * job, the stopped rank included. */
        snprintf(cmd, sizeof cmd, "%s -np 1 '%s' generate --model '%s' --tokens 1,2,3 -n 60 --threads 1 "
                 "--options 'comm=mpi;comm_options=timeout_ms=1500' : -np 1 '%s' follow --model '%s' --threads 1 "
                 "--stop-after 6 > '%s' 2> '%s'", mpirun, DS4J_TOOL_PATH, gguf, DS4J_TOOL_PATH, gguf, logp, errp);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = fx_run(cmd);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        err = fx_read_file(errp, NULL);
        const char *st = err ? strstr(err, "did not complete within 1500 ms") : NULL;
        printf("follower stopped (SIGSTOP), timeout_ms=1500: mpirun exit %d after %.1f s, %s\n", rc, secs,
               st ? "leader reported the timeout" : "no timeout message");
        CHECK(rc != 0 && rc != 124 && secs < 60 && st);
        /* on one host the stalled rank is named (its /proc state is T) */
        CHECK(st && strstr(st, "rank 1 (pid ") && strstr(st, "is stopped"));
        if (!st) fprintf(stderr, "%s\n", err ? err : "(no stderr)");
        free(err);
    }
    free(refl);
    free(full);
    free(loc);
    fx_free_ref(&ref);
    return failures ? 1 : 0;
#endif
}
