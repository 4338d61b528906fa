/*
 * test_cuda.c — the GPU backend (backend=cuda) against the references:
 *  - both tiny fixtures converted to f32: every row within 1e-3 of the
 *    transformers logits, token by token and in chunks of 16 and 64, and
 *    the greedy continuation reproduced;
 *  - decode through the captured graph equals decode without it;
 *  - sessions: prefix reuse, rewind and re-evaluation give the logits of a
 *    fresh evaluation;
 *  - every weight type the GPU multiplies (synth preset `small` with
 *    q8_0/f16/bf16 dense and iq2_xxs/q2_k/q4_k/q8_0/f32 experts): the GPU no
 *    further from an f32-activation evaluation of the same weights than the
 *    CPU engine, float-only files equal to rounding;
 *  - ds4j_batch_eval (one GPU step over all sessions): three sessions joining
 *    at different steps, a prefill chunk among decode rows, bit-identical to
 *    each sequence alone in the same pieces, within 1e-4 token by token;
 *  - expert parallelism: 2 MPI ranks sharing the GPU = one GPU process;
 *  - clear errors: no device, a device index out of range, fp8 KV.
 * Without a visible GPU (CI) it checks that backend=cuda fails with a
 * clear message and exits 77 (skipped).
 *
 *   test_cuda --compare MODEL.gguf [--rows N]   GPU vs CPU on any model
 *   (e.g. synth --preset flash2), the figures of docs/benchmarks.md.
 */
#include <math.h>

#include "ds4j.h"
#include "model_fixture.h"
#include "cuda_backend.h"

static ds4j_engine *open_or_die(const char *path, const char *opts) {
    ds4j_engine *e = ds4j_engine_open(path, opts);
    if (!e) fprintf(stderr, "open %s [%s]: %s\n", path, opts, ds4j_last_error());
    return e;
}

/* Logits of toks[0..n) evaluated in chunks of `chunk` (n rows of V). */
static float *eval_rows(ds4j_engine *e, const int32_t *toks, int n, int chunk) {
    int V = ds4j_n_vocab(e);
    float *out = malloc((size_t)n * V * sizeof(float));
    ds4j_session *s = ds4j_session_new(e, n + 8);
    if (!s || !out || ds4j_session_eval_batch(s, toks, n, chunk, out) < 0) {
        fprintf(stderr, "eval_rows: %s\n", ds4j_last_error());
        free(out);
        out = NULL;
    }
    ds4j_session_free(s);
    return out;
}

typedef struct agreement { double mean_kl, max_kl, top1, maxdiff; } agreement;

/* KL(a || b) per row (double log-softmax), top-1 agreement, max |a - b|. */
static agreement agree(const float *a, const float *b, int rows, int V) {
    agreement r = {0, 0, 0, 0};
    int same = 0; /* top-1 as a count: 160 additions of 1/160 need not reach exactly 1.0 */
    double *la = malloc((size_t)V * sizeof(double)), *lb = malloc((size_t)V * sizeof(double));
    for (int t = 0; t < rows; t++) {
        const float *x = a + (int64_t)t * V, *y = b + (int64_t)t * V;
        fx_log_softmax(x, la, V);
        fx_log_softmax(y, lb, V);
        double kl = 0;
        for (int i = 0; i < V; i++) kl += exp(la[i]) * (la[i] - lb[i]);
        r.mean_kl += kl / rows;
        if (kl > r.max_kl) r.max_kl = kl;
        same += fx_argmax(x, V) == fx_argmax(y, V);
        double d = fx_maxdiff(x, y, V);
        if (!(d <= r.maxdiff)) r.maxdiff = d;
    }
    r.top1 = (double)same / rows;
    free(la);
    free(lb);
    return r;
}

static void random_tokens(int32_t *t, int n, int V, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        t[i] = (int32_t)((seed >> 33) % (uint64_t)V);
    }
}

/* ---------------------------------------------------------- fixtures */

static const int batch_first[3] = {20, 3, 1};
static double batch_vs_alone(ds4j_engine *e, const int32_t *tok, int n, const float *const *alone);
static float *pieces_alone(ds4j_engine *e, const int32_t *tok, int n, int first);

static void fixture(const char *name) {
    char gguf[2048], dir[2048];
    snprintf(dir, sizeof dir, "%s/fixtures/%s", DS4J_SHARED_DIR, name);
    if (fx_convert(name, "f32", gguf, sizeof gguf)) { failures++; return; }
    fx_ref ref;
    if (fx_load_ref(dir, &ref)) { failures++; return; }
    ds4j_engine *g = open_or_die(gguf, "backend=cuda");
    ds4j_engine *c = open_or_die(gguf, "threads=2");
    CHECK(g && c);
    if (!g || !c) { ds4j_engine_close(g); ds4j_engine_close(c); fx_free_ref(&ref); return; }
    int V = ds4j_n_vocab(g);
    const int chunks[3] = {1, 16, 64};
    for (int sq = 0; sq < ref.n_seq; sq++) {
        float *want = fx_load_logits(dir, &ref, sq, V);
        CHECK(want != NULL);
        if (!want) continue;
        int n = ref.n_tok[sq];
        float *cpu = eval_rows(c, ref.tok[sq], n, 64);
        for (int k = 0; k < 3; k++) {
            float *got = eval_rows(g, ref.tok[sq], n, chunks[k]);
            CHECK(got != NULL);
            if (!got) continue;
            double d = fx_maxdiff(got, want, (int64_t)n * V), dc = cpu ? fx_maxdiff(cpu, want, (int64_t)n * V) : NAN;
            printf("%s seq%d chunk %2d: GPU max|d| vs reference %.3g (CPU engine %.3g), %d rows\n", name, sq, chunks[k],
                   d, dc, n);
            CHECK(d <= 1e-3);
            free(got);
        }
        free(cpu);
        free(want);
    }
    /* greedy continuation of the reference's prompt, and decode through the
     * captured graph (session_eval) against the same steps without it */
    if (ref.n_greedy > 0) {
        int sq = ref.greedy_seq, n = ref.n_tok[sq];
        ds4j_session *s = ds4j_session_new(g, n + ref.n_greedy + 8);
        ds4j_sampler *smp = ds4j_sampler_new("temperature=0");
        int ok = s && smp && ds4j_session_sync(s, ref.tok[sq], n, NULL, NULL) >= 0, same = 1;
        int32_t *gen = calloc((size_t)ref.n_greedy, sizeof(int32_t));
        float *step_logits = malloc((size_t)ref.n_greedy * V * sizeof(float));
        for (int i = 0; ok && i < ref.n_greedy; i++) {
            int tk = ds4j_sampler_sample(smp, s, 0, NULL, NULL, NULL);
            gen[i] = tk;
            if (tk != ref.greedy[i]) same = 0;
            memcpy(step_logits + (int64_t)i * V, ds4j_session_logits(s), (size_t)V * sizeof(float));
            ok = ds4j_session_eval(s, tk) >= 0;
        }
        CHECK(ok);
        CHECK(same);
        printf("%s greedy: %d tokens %s the reference\n", name, ref.n_greedy, same ? "equal" : "DIFFER FROM");
        /* the same steps without graphs: prompt + generated[0..n-1) */
        int total = n + ref.n_greedy - 1;
        int32_t *all = malloc((size_t)total * sizeof(int32_t));
        memcpy(all, ref.tok[sq], (size_t)n * sizeof(int32_t));
        memcpy(all + n, gen, (size_t)(ref.n_greedy - 1) * sizeof(int32_t));
        float *rows = eval_rows(g, all, total, 1);
        CHECK(rows != NULL);
        if (rows && ok) {
            double d = fx_maxdiff(rows + (int64_t)(n - 1) * V, step_logits, (int64_t)ref.n_greedy * V);
            printf("%s decode graph vs direct launches: max|d| %.3g over %d steps\n", name, d, ref.n_greedy);
            CHECK(d <= 1e-6);
        }
        free(rows);
        free(all);
        free(gen);
        free(step_logits);
        ds4j_sampler_free(smp);
        ds4j_session_free(s);
    }
    /* sessions: sync a prefix, then the whole sequence (prefix reuse); rewind
     * into the middle and re-evaluate; both against a fresh evaluation */
    {
        int sq = ref.n_seq - 1, n = ref.n_tok[sq];
        float *fresh = eval_rows(g, ref.tok[sq], n, 64);
        ds4j_session *s = ds4j_session_new(g, n + 8);
        CHECK(fresh && s);
        if (fresh && s) {
            int half = n / 2;
            int r1 = ds4j_session_sync(s, ref.tok[sq], half, NULL, NULL);
            int r2 = ds4j_session_sync(s, ref.tok[sq], n, NULL, NULL);
            CHECK(r1 == 0 && r2 == half);
            double d1 = fx_maxdiff(ds4j_session_logits(s), fresh + (int64_t)(n - 1) * V, V);
            int back = n / 3 + 1;
            CHECK(ds4j_session_rewind(s, back) == 0);
            CHECK(ds4j_session_pos(s) == back);
            double d2 = fx_maxdiff(ds4j_session_logits(s), fresh + (int64_t)(back - 1) * V, V);
            CHECK(ds4j_session_eval_batch(s, ref.tok[sq] + back, n - back, 0, NULL) == 0);
            double d3 = fx_maxdiff(ds4j_session_logits(s), fresh + (int64_t)(n - 1) * V, V);
            printf("%s sessions: prefix reuse %.3g, rewind to %d %.3g, re-evaluated %.3g (vs fresh)\n", name, d1, back,
                   d2, d3);
            CHECK(d1 <= 1e-5 && d2 <= 1e-5 && d3 <= 1e-5);
        }
        ds4j_session_free(s);
        free(fresh);
    }
    /* ds4j_batch_eval: one GPU step over all sessions' rows; against each
     * sequence evaluated alone in the same pieces it must be bit-identical,
     * against token-by-token and the reference within rounding */
    {
        int sq = ref.n_seq - 1, n = ref.n_tok[sq];
        float *alone = eval_rows(g, ref.tok[sq], n, 1), *want = fx_load_logits(dir, &ref, sq, V);
        const float *same[3];
        float *own[3];
        for (int j = 0; j < 3; j++) same[j] = own[j] = pieces_alone(g, ref.tok[sq], n, batch_first[j]);
        const float *tbt[3] = {alone, alone, alone}, *refs[3] = {want, want, want};
        double d0 = batch_vs_alone(g, ref.tok[sq], n, same);
        double d = batch_vs_alone(g, ref.tok[sq], n, tbt);
        double dr = want ? batch_vs_alone(g, ref.tok[sq], n, refs) : NAN;
        printf("%s batch_eval on the GPU (3 sessions, staggered): max|d| vs the same pieces alone %.3g, vs token by "
               "token %.3g, vs reference %.3g\n", name, d0, d, dr);
        CHECK(d0 == 0 && d <= 1e-4 && dr <= 1e-3);
        for (int j = 0; j < 3; j++) free(own[j]);
        free(alone);
        free(want);
    }
    ds4j_engine_close(g);
    ds4j_engine_close(c);
    fx_free_ref(&ref);
}

/* Three sessions on tokens[0..n) through ds4j_batch_eval, joining at steps
 * 0, 5 and 11, each prefilling a chunk (batch_first: 20, 3, 1 tokens) and
 * then decoding one token per step; every step's logits of session j
 * against alone[j] (n rows, row t = after token t). Returns the largest
 * difference (NAN on failure). */
static double batch_vs_alone(ds4j_engine *e, const int32_t *tok, int n, const float *const *alone) {
    int V = ds4j_n_vocab(e), join[3] = {0, 5, 11}, done[3] = {0, 0, 0};
    ds4j_session *s[3];
    int ok = alone[0] && alone[1] && alone[2];
    for (int j = 0; j < 3; j++) {
        s[j] = ds4j_session_new(e, n + 8);
        ok = ok && s[j];
    }
    double worst = 0;
    for (int step = 0; ok; step++) {
        ds4j_batch_entry en[3];
        int idx[3], k = 0, left = 0;
        for (int j = 0; j < 3; j++) {
            if (done[j] >= n) continue;
            left++;
            if (step < join[j]) continue;
            int take = done[j] == 0 ? batch_first[j] : 1;
            if (take > n - done[j]) take = n - done[j];
            en[k] = (ds4j_batch_entry){.session = s[j], .tokens = tok + done[j], .n_tokens = take, .flags = 0};
            idx[k++] = j;
        }
        if (!left) break;
        if (!k) continue;
        ok = ds4j_batch_eval(e, en, k) == DS4J_OK;
        if (!ok) fprintf(stderr, "batch_eval: %s\n", ds4j_last_error());
        for (int i = 0; ok && i < k; i++) {
            int j = idx[i];
            done[j] += en[i].n_tokens;
            const float *l = ds4j_session_logits(s[j]);
            ok = l && ds4j_session_pos(s[j]) == done[j];
            if (ok) worst = fmax(worst, fx_maxdiff(l, alone[j] + (int64_t)(done[j] - 1) * V, V));
        }
    }
    for (int j = 0; j < 3; j++) ds4j_session_free(s[j]);
    return ok ? worst : NAN;
}

/* One session alone in batch_vs_alone's pieces: `first` tokens, then one
 * at a time; row t = the logits after token t (rows inside the first piece
 * other than its last are left zero). */
static float *pieces_alone(ds4j_engine *e, const int32_t *tok, int n, int first) {
    int V = ds4j_n_vocab(e);
    float *out = calloc((size_t)n * V, sizeof(float));
    ds4j_session *s = ds4j_session_new(e, n + 8);
    int ok = out && s && ds4j_session_eval_batch(s, tok, first, first, NULL) == 0;
    if (ok) memcpy(out + (int64_t)(first - 1) * V, ds4j_session_logits(s), (size_t)V * sizeof(float));
    for (int t = first; ok && t < n; t++) {
        ok = ds4j_session_eval(s, tok[t]) >= 0;
        if (ok) memcpy(out + (int64_t)t * V, ds4j_session_logits(s), (size_t)V * sizeof(float));
    }
    if (!ok) {
        fprintf(stderr, "pieces_alone: %s\n", ds4j_last_error());
        free(out);
        out = NULL;
    }
    ds4j_session_free(s);
    return out;
}

/* -------------------------------------------------------------- types */

static agreement gpu_vs_cpu(const char *path, int rows, int chunk, int *ok) {
    agreement a = {NAN, NAN, NAN, NAN};
    *ok = 0;
    ds4j_engine *g = open_or_die(path, "backend=cuda");
    ds4j_engine *c = open_or_die(path, "threads=0");
    if (g && c) {
        int V = ds4j_n_vocab(g);
        int32_t *t = malloc((size_t)rows * sizeof(int32_t));
        random_tokens(t, rows, V, 7);
        float *lg = eval_rows(g, t, rows, chunk), *lc = eval_rows(c, t, rows, chunk);
        if (lg && lc) {
            a = agree(lc, lg, rows, V);
            *ok = 1;
        }
        free(lg);
        free(lc);
        free(t);
    }
    ds4j_engine_close(g);
    ds4j_engine_close(c);
    return a;
}

/* Every weight type: the GPU and the CPU engine quantize activations the
 * same way but add block results in another order, and a quantized
 * activation is a step function of its input, so on random-weight models a
 * last-bit difference upstream can move a quantized value by one step and,
 * through the routers' near-ties, a token's experts. Measured against the
 * floor (f32 activations, the same rounded weights), the GPU must be no
 * further from it than the CPU engine is (within 2x of its KL, 3 points of
 * its top-1); float-only files must agree to rounding. */
static void types(void) {
    static const char *mix[][2] = {{"q8_0", "iq2_xxs"}, {"f16", "q2_k"}, {"bf16", "q4_k"}, {"q8_0", "q8_0"}, {"f32", "f32"}};
    const int rows = 160;
    for (size_t i = 0; i < sizeof mix / sizeof mix[0]; i++) {
        char path[1024], wide[1100], cmd[4096];
        snprintf(path, sizeof path, "%s/test-cuda-small-%s-%s.gguf", DS4J_BUILD_DIR, mix[i][0], mix[i][1]);
        snprintf(wide, sizeof wide, "%s.f32.gguf", path);
        snprintf(cmd, sizeof cmd, "'%s' synth --preset small --type %s --experts %s --out '%s' >/dev/null 2>&1",
                 DS4J_TOOL_PATH, mix[i][0], mix[i][1], path);
        CHECK(fx_run(cmd) == 0);
        CHECK(fx_widen_to_f32(path, wide) == 0);
        ds4j_engine *g = open_or_die(path, "backend=cuda"), *c = open_or_die(path, "threads=0"),
                    *w = open_or_die(wide, "threads=0");
        CHECK(g && c && w);
        if (g && c && w) {
            int V = ds4j_n_vocab(g);
            int32_t *t = malloc((size_t)rows * sizeof(int32_t));
            random_tokens(t, rows, V, 7);
            float *lg = eval_rows(g, t, rows, 64), *lc = eval_rows(c, t, rows, 64), *lw = eval_rows(w, t, rows, 64);
            CHECK(lg && lc && lw);
            if (lg && lc && lw) {
                agreement cg = agree(lc, lg, rows, V), fc = agree(lw, lc, rows, V), fg = agree(lw, lg, rows, V);
                printf("small dense %-4s experts %-7s, %d rows: GPU vs CPU mean KL %.3g, top-1 %.1f%%, max|d| %.3g; "
                       "vs f32-activation floor: CPU KL %.3g top-1 %.1f%%, GPU KL %.3g top-1 %.1f%%\n",
                       mix[i][0], mix[i][1], rows, cg.mean_kl, 100 * cg.top1, cg.maxdiff, fc.mean_kl, 100 * fc.top1,
                       fg.mean_kl, 100 * fg.top1);
                CHECK(fg.mean_kl <= 2 * fc.mean_kl + 1e-9);
                CHECK(fg.top1 >= fc.top1 - 0.03);
                if (!strcmp(mix[i][1], "f32")) CHECK(cg.mean_kl <= 1e-9 && cg.top1 == 1.0);
            }
            free(lg);
            free(lc);
            free(lw);
            free(t);
        }
        ds4j_engine_close(g);
        ds4j_engine_close(c);
        ds4j_engine_close(w);
        remove(path);
        remove(wide);
    }
}

/* Expert parallelism on the GPU: two MPI ranks sharing this GPU, each
 * owning half of the routed experts (all_sum staged through host memory),
 * against the one-process GPU run of the same tokens. */
static void expert_parallel(const char *gguf) {
#ifdef DS4J_MPIEXEC
    const char *mpirun = getenv("DS4J_MPIRUN") ? getenv("DS4J_MPIRUN") : DS4J_MPIEXEC;
    char plugin[1024];
    snprintf(plugin, sizeof plugin, "%s/libds4j_comm_mpi.so", DS4J_BUILD_DIR);
    FILE *pf = fopen(plugin, "rb");
    if (!pf) { printf("expert parallelism: skipped (no MPI plugin)\n"); return; }
    fclose(pf);
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    int n = 48, V = 0;
    ds4j_engine *g = open_or_die(gguf, "backend=cuda");
    CHECK(g != NULL);
    if (!g) return;
    V = ds4j_n_vocab(g);
    int32_t tok[48];
    random_tokens(tok, n, V, 11);
    float *one = eval_rows(g, tok, n, 16);
    ds4j_engine_close(g);
    char ids[1024], out[1024], logp[1024], cmd[8192];
    fx_ids_csv(tok, n, ids, sizeof ids);
    snprintf(out, sizeof out, "%s/test-cuda-ep.f32", DS4J_BUILD_DIR);
    snprintf(logp, sizeof logp, "%s/test-cuda-ep.log", DS4J_BUILD_DIR);
    for (int chunk = 1; chunk <= 16; chunk += 15) {
        remove(out);
        snprintf(cmd, sizeof cmd, "%s --oversubscribe -np 2 '%s' logits --model '%s' --tokens %s --chunk %d "
                 "--options 'comm=mpi;backend=cuda' --out '%s' > '%s' 2>&1", mpirun, DS4J_TOOL_PATH, gguf, ids, chunk,
                 out, logp);
        int rc = fx_run(cmd);
        long len = 0;
        float *got = rc == 0 ? (float *)fx_read_file(out, &len) : NULL;
        if (!got || len != (long)n * V * 4 || !one) {
            char *l = fx_read_file(logp, NULL);
            fprintf(stderr, "2 ranks on one GPU: exit %d\n%s\n", rc, l ? l : "");
            free(l);
            CHECK(0);
            free(got);
            continue;
        }
        double d = fx_maxdiff(got, one, (int64_t)n * V);
        printf("expert parallelism, 2 MPI ranks on one GPU, chunk %d: max|d| vs one process %.3g\n", chunk, d);
        CHECK(d <= 1e-4);
        free(got);
    }
    free(one);
#else
    (void)gguf;
    printf("expert parallelism: skipped (built without MPI)\n");
#endif
}

/* Session state on disk from device memory and back (ds4j_session_save /
 * _load through the backend's host copies): a loaded state continues exactly
 * as the session it came from. */
static void state_file(const char *gguf) {
    ds4j_engine *g = open_or_die(gguf, "backend=cuda");
    if (!g) { failures++; return; }
    int V = ds4j_n_vocab(g), n = 96;
    int32_t tok[96];
    random_tokens(tok, n, V, 77);
    char path[] = "/tmp/ds4j-cuda-state-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    ds4j_session *a = ds4j_session_new(g, 128), *b = ds4j_session_new(g, 128);
    float *ref = malloc((size_t)(n - 74) * V * 4), *got = malloc((size_t)(n - 74) * V * 4);
    CHECK(a && b && ref && got);
    if (a && b && ref && got) {
        CHECK(ds4j_session_sync(a, tok, 75, NULL, NULL) >= 0);
        CHECK(ds4j_session_save(a, path, 74) == 74);
        CHECK(ds4j_session_rewind(a, 74) == DS4J_OK);
        CHECK(ds4j_session_eval_batch(a, tok + 74, n - 74, 0, ref) == DS4J_OK);
        CHECK(ds4j_session_load(b, path) == 74);
        CHECK(ds4j_session_eval_batch(b, tok + 74, n - 74, 0, got) == DS4J_OK);
        double d = fx_maxdiff(got, ref, (int64_t)(n - 74) * V);
        printf("state file on the GPU: loaded state + %d tokens vs the session it came from: max|d| %.3g\n", n - 74, d);
        CHECK(d <= 1e-6);
    }
    unlink(path);
    free(ref);
    free(got);
    ds4j_session_free(a);
    ds4j_session_free(b);
    ds4j_engine_close(g);
}

static void errors(const char *gguf) {
    ds4j_engine *e = ds4j_engine_open(gguf, "backend=cuda;device=999");
    CHECK(e == NULL && strstr(ds4j_last_error(), "device=999"));
    printf("device out of range: %s\n", ds4j_last_error());
    e = ds4j_engine_open(gguf, "backend=cuda;kv_precision=fp8");
    CHECK(e == NULL && strstr(ds4j_last_error(), "kv_precision=fp8"));
    e = ds4j_engine_open(gguf, "backend=gpu");
    CHECK(e == NULL && strstr(ds4j_last_error(), "expected cpu or cuda"));
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--compare")) {
        int rows = argc >= 5 && !strcmp(argv[3], "--rows") ? atoi(argv[4]) : 256, ok;
        agreement a = gpu_vs_cpu(argv[2], rows, 64, &ok);
        if (!ok) return 1;
        printf("%s: GPU vs CPU engine over %d rows (chunked prefill of 64): mean KL %.3g (max %.3g), top-1 %.2f%%, "
               "max|d| %.3g\n", argv[2], rows, a.mean_kl, a.max_kl, 100 * a.top1, a.maxdiff);
        return 0;
    }
    char gguf[2048];
    if (fx_convert("dsv4-tiny-a", "f32", gguf, sizeof gguf)) return 1;
    if (cuda_device_count() == 0) {
        ds4j_engine *e = ds4j_engine_open(gguf, "backend=cuda");
        const char *why = ds4j_last_error();
        CHECK(e == NULL);
        CHECK(strstr(why, "no CUDA device") || strstr(why, "built without CUDA"));
        printf("no GPU here: backend=cuda says \"%s\"\n", why);
        ds4j_engine_close(e);
        if (failures) return 1;
        printf("test_cuda: skipped (needs a CUDA device)\n");
        return 77;
    }
    errors(gguf);
    state_file(gguf);
    fixture("dsv4-tiny-a");
    fixture("dsv4-tiny-b");
    expert_parallel(gguf);
    types();
    printf("test_cuda: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
