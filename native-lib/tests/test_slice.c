/*
 * test_slice.c — expert slices (`ds4j-tool slice`, expert_compact=1):
 * (a) a slice read back holds exactly the full file's bytes for its experts
 *     and every other tensor and key unchanged, for f32 (fixture) and q8_0
 *     (synth) experts; slicing a slice equals slicing the full file;
 * (b) the sliced model's partial routed sum is bit-identical to the full
 *     model restricted to the same expert range (engine expert_range=A:B),
 *     and a slice holding every expert serves like the full file;
 * (d) every malformed slice (metadata and tensors) and every misuse
 *     (single process, mismatched range, full file under expert_compact=1,
 *     bad slice ranges, missing tensors, unwritable output) is a clear
 *     error, never a crash. The multi-rank run is in test_dist_mpi.
 */
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ds4j.h"
#include "gguf.h"
#include "kv_state.h"
#include "model_dsv4.h"
#include "model_fixture.h"
#include "slice.h"

static char BUILD_FILE[1024];
static const char *bpath(const char *name) {
    snprintf(BUILD_FILE, sizeof BUILD_FILE, "%s/test-slice-%s", DS4J_BUILD_DIR, name);
    return BUILD_FILE;
}

static int sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ---- (a) read back ---- */
static void check_slice_bytes(const char *full_p, const char *part_p, int64_t lo, int64_t hi) {
    char err[512];
    gguf_file *full = NULL, *part = NULL;
    CHECK(gguf_open(&full, full_p, err, sizeof err) == 0);
    CHECK(gguf_open(&part, part_p, err, sizeof err) == 0);
    if (!full || !part) { gguf_close(full); gguf_close(part); return; }
    CHECK(gguf_tensor_count(full) == gguf_tensor_count(part));
    int n_exp = 0, n_other = 0;
    for (int64_t i = 0; i < gguf_tensor_count(full); i++) {
        const gguf_tensor *a = gguf_tensor_at(full, i), *b = gguf_tensor_at(part, i);
        CHECK(!strcmp(a->name, b->name) && a->type == b->type && a->n_dims == b->n_dims);
        if (ds4j_slice_is_expert_tensor(a->name, NULL)) {
            uint64_t per = a->nbytes / (uint64_t)a->ne[2];
            CHECK(a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1] && b->ne[2] == hi - lo);
            CHECK(b->nbytes == per * (uint64_t)(hi - lo));
            CHECK(memcmp(b->data, (const uint8_t *)a->data + per * (uint64_t)lo, b->nbytes) == 0);
            n_exp++;
        } else {
            CHECK(memcmp(a->ne, b->ne, sizeof a->ne) == 0 && a->nbytes == b->nbytes);
            CHECK(memcmp(a->data, b->data, a->nbytes) == 0);
            n_other++;
        }
    }
    CHECK(n_exp > 0 && n_exp % 3 == 0 && n_other > 0);
    /* every key of the full file, same type and bytes, plus the two slice keys */
    CHECK(gguf_kv_count(part) == gguf_kv_count(full) + 2);
    for (int64_t i = 0; i < gguf_kv_count(full); i++) {
        const gguf_kv *ka = gguf_kv_at(full, i), *kb = gguf_find_kv(part, gguf_kv_key(ka));
        CHECK(kb != NULL);
        if (!kb) continue;
        const void *da, *db;
        uint64_t la, lb;
        gguf_kv_raw(ka, &da, &la);
        gguf_kv_raw(kb, &db, &lb);
        CHECK(gguf_kv_type(ka) == gguf_kv_type(kb) && la == lb && memcmp(da, db, la) == 0);
    }
    const gguf_kv *ks = gguf_find_kv(part, DSV4_KEY_SLICE_START), *ke = gguf_find_kv(part, DSV4_KEY_SLICE_END);
    uint64_t s = 99, e = 99;
    CHECK(ks && ke && gguf_kv_type(ks) == GGUF_T_UINT32 && gguf_kv_type(ke) == GGUF_T_UINT32);
    CHECK(ks && ke && gguf_kv_get_uint(ks, &s) && gguf_kv_get_uint(ke, &e) && s == (uint64_t)lo && e == (uint64_t)hi);
    printf("slice %lld:%lld of %s: %d expert tensors sliced, %d tensors and %lld keys unchanged\n", (long long)lo,
           (long long)hi, full_p, n_exp, n_other, (long long)gguf_kv_count(full));
    gguf_close(full);
    gguf_close(part);
}

static int files_equal(const char *p, const char *q) {
    long n1 = 0, n2 = 0;
    char *a = fx_read_file(p, &n1), *b = fx_read_file(q, &n2);
    int eq = a && b && n1 == n2 && memcmp(a, b, (size_t)n1) == 0;
    free(a);
    free(b);
    return eq;
}

/* ---- (b) the model's forward pass on an owned expert range, through
 * the internal API (a partial slice cannot be opened in one process) ---- */
static float *forward_range(const char *path, int64_t lo, int64_t hi, const int32_t *tok, int n, int *V) {
    char err[512];
    gguf_file *f = NULL;
    dsv4_model *m = NULL;
    float *out = NULL;
    if (gguf_open(&f, path, err, sizeof err)) { fprintf(stderr, "%s\n", err); return NULL; }
    if (dsv4_model_load(&m, f) || dsv4_model_set_expert_range(m, lo, hi)) {
        fprintf(stderr, "%s\n", ds4j_last_error());
        dsv4_model_free(m);
        gguf_close(f);
        return NULL;
    }
    ds4j_pool *pool = ds4j_pool_new(1);
    dsv4_scratch *sc = dsv4_scratch_new(m, n, 1);
    kv_state *st = NULL;
    if (sc && !dsv4_scratch_reserve_ctx(m, sc, n, 0)) st = kv_state_new(m, n, 0);
    *V = (int)m->hp.n_vocab;
    out = malloc((size_t)n * *V * sizeof(float));
    if (!pool || !st || !out || dsv4_forward(m, st, sc, pool, tok, n, out, NULL)) {
        fprintf(stderr, "forward failed: %s\n", ds4j_last_error());
        free(out);
        out = NULL;
    }
    kv_state_free(st);
    dsv4_scratch_free(sc);
    ds4j_pool_free(pool);
    dsv4_model_free(m);
    gguf_close(f);
    return out;
}

static float *engine_logits(const char *path, const char *opts, const int32_t *tok, int n, int V) {
    ds4j_engine *e = ds4j_engine_open(path, opts);
    if (!e) { fprintf(stderr, "open %s: %s\n", opts, ds4j_last_error()); return NULL; }
    float *out = malloc((size_t)n * V * sizeof(float));
    ds4j_session *s = ds4j_session_new(e, n);
    if (!s || ds4j_session_eval_batch(s, tok, n, 0, out) != DS4J_OK) { free(out); out = NULL; }
    ds4j_session_free(s);
    ds4j_engine_close(e);
    return out;
}

/* ---- (d) crafted files: a copy of `src` with keys dropped/added and the
 * expert tensors' expert count or presence changed ---- */
typedef struct craft {
    const char *drop_key[2];
    const char *drop_tensor;
    int64_t exps_ne2;             /* > 0: stacked expert tensors get this many experts */
    void (*add)(gguf_writer *w);
} craft;

static int craft_fill(void *user, const char *name, void *dst, uint64_t nbytes, char *err, size_t cap) {
    const gguf_tensor *t = gguf_find_tensor((const gguf_file *)user, name);
    if (!t) { snprintf(err, cap, "%s: not found", name); return -1; }
    uint64_t k = nbytes < t->nbytes ? nbytes : t->nbytes;
    memcpy(dst, t->data, k);
    memset((uint8_t *)dst + k, 0, nbytes - k);
    return 0;
}

static int write_crafted(const char *src, const char *dst, const craft *c) {
    char err[512];
    gguf_file *f = NULL;
    if (gguf_open(&f, src, err, sizeof err)) { fprintf(stderr, "%s\n", err); return -1; }
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_kv_count(f); i++) {
        const char *k = gguf_kv_key(gguf_kv_at(f, i));
        if ((c->drop_key[0] && !strcmp(k, c->drop_key[0])) || (c->drop_key[1] && !strcmp(k, c->drop_key[1]))) continue;
        gguf_writer_set_kv(w, NULL, gguf_kv_at(f, i));
    }
    if (c->add) c->add(w);
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (c->drop_tensor && !strcmp(t->name, c->drop_tensor)) continue;
        int64_t ne[GGUF_MAX_DIMS];
        memcpy(ne, t->ne, sizeof ne);
        if (c->exps_ne2 > 0 && ds4j_slice_is_expert_tensor(t->name, NULL)) ne[2] = c->exps_ne2;
        gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, ne, craft_fill, f);
    }
    int rc = gguf_writer_write(w, dst, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    gguf_writer_free(w);
    gguf_close(f);
    return rc;
}

static int expect_open_error(const char *path, const char *opts, const char *needle) {
    ds4j_engine *e = ds4j_engine_open(path, opts);
    const char *msg = ds4j_last_error();
    int ok = e == NULL && strstr(msg, needle) != NULL;
    printf("open %s '%s': %s\n", strrchr(path, '/') + 1, opts ? opts : "", e ? "(opened)" : msg);
    ds4j_engine_close(e);
    return ok;
}

static int expect_slice_error(const char *in, int64_t lo, int64_t hi, const char *out, const char *needle) {
    char err[1024] = "";
    int rc = ds4j_slice_gguf(in, lo, hi, out, err, sizeof err);
    printf("slice %lld:%lld: %s\n", (long long)lo, (long long)hi, rc ? err : "(written)");
    return rc < 0 && strstr(err, needle) && strstr(ds4j_last_error(), needle);
}

static void add_start_only(gguf_writer *w) { gguf_writer_set_u32(w, DSV4_KEY_SLICE_START, 2); }
static void add_empty(gguf_writer *w) { gguf_writer_set_u32(w, DSV4_KEY_SLICE_START, 5); gguf_writer_set_u32(w, DSV4_KEY_SLICE_END, 5); }
static void add_past_end(gguf_writer *w) { gguf_writer_set_u32(w, DSV4_KEY_SLICE_START, 5); gguf_writer_set_u32(w, DSV4_KEY_SLICE_END, 9); }
static void add_string(gguf_writer *w) { gguf_writer_set_str(w, DSV4_KEY_SLICE_START, "2"); gguf_writer_set_u32(w, DSV4_KEY_SLICE_END, 5); }
static void add_negative(gguf_writer *w) { gguf_writer_set_i32(w, DSV4_KEY_SLICE_START, -1); gguf_writer_set_u32(w, DSV4_KEY_SLICE_END, 5); }
static void add_bool(gguf_writer *w) { gguf_writer_set_bool(w, DSV4_KEY_SLICE_START, true); gguf_writer_set_u32(w, DSV4_KEY_SLICE_END, 5); }
static void add_huge(gguf_writer *w) { gguf_writer_set_u64(w, DSV4_KEY_SLICE_START, 0); gguf_writer_set_u64(w, DSV4_KEY_SLICE_END, UINT64_MAX); }
static void add_2_6(gguf_writer *w) { gguf_writer_set_u32(w, DSV4_KEY_SLICE_START, 2); gguf_writer_set_u32(w, DSV4_KEY_SLICE_END, 6); }

int main(void) {
    char dir[1024], cmd[8192];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    fx_ref ref;
    if (fx_load_ref(dir, &ref)) return 1;
    char full[1024], part[1024], part2[1024], synth[1024];
    snprintf(full, sizeof full, "%s", bpath("full-f32.gguf"));
    snprintf(part, sizeof part, "%s", bpath("2-5.gguf"));
    snprintf(part2, sizeof part2, "%s", bpath("2-5-again.gguf"));
    snprintf(synth, sizeof synth, "%s", bpath("synth-q8.gguf"));
    snprintf(cmd, sizeof cmd, "'%s' convert --hf '%s' --out '%s' --type f32 > /dev/null 2>&1", DS4J_TOOL_PATH, dir, full);
    if (sh(cmd)) { fprintf(stderr, "conversion failed: %s\n", cmd); return 1; }
    snprintf(cmd, sizeof cmd, "'%s' synth --preset tiny --experts q8_0 --out '%s' > /dev/null 2>&1", DS4J_TOOL_PATH, synth);
    if (sh(cmd)) { fprintf(stderr, "synth failed: %s\n", cmd); return 1; }

    /* ---- (a) the tool's output read back ---- */
    snprintf(cmd, sizeof cmd, "'%s' slice --model '%s' --experts 2:5 --out '%s'", DS4J_TOOL_PATH, full, part);
    CHECK(sh(cmd) == 0);
    check_slice_bytes(full, part, 2, 5);
    char sq[1024];
    snprintf(sq, sizeof sq, "%s", bpath("synth-q8-5-8.gguf"));
    CHECK(ds4j_slice_gguf(synth, 5, 8, sq, NULL, 0) == 0);
    check_slice_bytes(synth, sq, 5, 8);
    /* a slice of a slice (range inside it) is the same file as the direct slice */
    char wide[1024];
    snprintf(wide, sizeof wide, "%s", bpath("1-7.gguf"));
    CHECK(ds4j_slice_gguf(full, 1, 7, wide, NULL, 0) == 0);
    CHECK(ds4j_slice_gguf(wide, 2, 5, part2, NULL, 0) == 0);
    CHECK(files_equal(part, part2));
    /* --rank/--world-size gives the engine's even split: rank 1 of 3 over 8 experts = 2:5 */
    snprintf(cmd, sizeof cmd, "'%s' slice --model '%s' --rank 1 --world-size 3 --out '%s' 2>/dev/null", DS4J_TOOL_PATH,
             full, part2);
    CHECK(sh(cmd) == 0 && files_equal(part, part2));
    snprintf(cmd, sizeof cmd, "'%s' slice --model '%s' --experts 2 --out '%s' 2>/dev/null", DS4J_TOOL_PATH, full, part2);
    CHECK(sh(cmd) == 2);
    snprintf(cmd, sizeof cmd, "'%s' slice --model '%s' --experts 1:2 --rank 0 --world-size 2 --out '%s' 2>/dev/null",
             DS4J_TOOL_PATH, full, part2);
    CHECK(sh(cmd) == 2);
    snprintf(cmd, sizeof cmd, "'%s' slice --model '%s' --rank 0 --world-size 9 --out '%s' 2>/dev/null", DS4J_TOOL_PATH,
             full, part2);
    CHECK(sh(cmd) == 1);

    /* ---- (b) partial sums: sliced model == full model on the same range ---- */
    int q = 0;
    for (int i = 1; i < ref.n_seq; i++) if (ref.n_tok[i] > ref.n_tok[q]) q = i;
    const int32_t *tok = ref.tok[q];
    int n = ref.n_tok[q], V = 0, V2 = 0;
    float *want = forward_range(full, 2, 5, tok, n, &V);
    float *got = forward_range(part, 2, 5, tok, n, &V2);
    float *all = forward_range(full, 0, 8, tok, n, &V2);
    CHECK(want && got && all && V > 0);
    if (want && got && all) {
        CHECK(memcmp(want, got, (size_t)n * V * sizeof(float)) == 0);
        /* the partial sum is really partial: it differs from all experts */
        double d = 0;
        for (long i = 0; i < (long)n * V; i++) d = fmax(d, fabs((double)want[i] - all[i]));
        printf("experts 2:5, %d tokens: sliced file == full file restricted to 2:5 bit for bit; "
               "max |d| vs all experts %.3g\n", n, d);
        CHECK(d > 1e-3);
        /* the engine's own expert_range on the full file computes the same numbers */
        float *eng = engine_logits(full, "threads=1;prefill_chunk=64;expert_range=2:5", tok, n, V);
        CHECK(eng && memcmp(eng, want, (size_t)n * V * sizeof(float)) == 0);
        free(eng);
        /* a slice holding every expert is a full file, also under expert_compact=1 */
        char whole[1024];
        snprintf(whole, sizeof whole, "%s", bpath("0-8.gguf"));
        CHECK(ds4j_slice_gguf(full, 0, 8, whole, NULL, 0) == 0);
        float *ef = engine_logits(full, "threads=1", tok, n, V);
        float *ew = engine_logits(whole, "threads=1;expert_compact=1", tok, n, V);
        CHECK(ef && ew && memcmp(ef, ew, (size_t)n * V * sizeof(float)) == 0);
        free(ef);
        free(ew);
        ds4j_engine *e = ds4j_engine_open(whole, "vocab_only=0;expert_compact=1");
        CHECK(e && strstr(ds4j_engine_describe(e), "\"expert_slice\":[0,8]") &&
              strstr(ds4j_engine_describe(e), "\"expert_compact\":true"));
        ds4j_engine_close(e);
        e = ds4j_engine_open(full, NULL);
        CHECK(e && strstr(ds4j_engine_describe(e), "\"expert_slice\":null") &&
              strstr(ds4j_engine_describe(e), "\"expert_compact\":false"));
        ds4j_engine_close(e);
    }
    free(want);
    free(got);
    free(all);

    /* ---- (d) misuse of a good slice ---- */
    CHECK(expect_open_error(part, "threads=1", "a single process (no comm=) cannot serve it"));
    CHECK(expect_open_error(part, "threads=1;expert_compact=1", "a single process (no comm=) cannot serve it"));
    CHECK(expect_open_error(part, "comm=local;expert_range=0:3", "expert_range 0:3 does not match the file's expert slice 2:5"));
    CHECK(expect_open_error(part, "comm=local", "do not partition")); /* default range = the slice */
    CHECK(expect_open_error(full, "expert_compact=1;expert_range=0:4", "ds4j-tool slice --model FULL.gguf --experts 0:4"));
    CHECK(expect_open_error(full, "expert_compact=1;vocab_only=1", "needs the weights"));

    /* ---- (d) malformed slices: clear errors, never a crash ---- */
    struct { const char *name, *src; craft c; const char *needle; } bad[] = {
        {"start-only", part, {{DSV4_KEY_SLICE_START, DSV4_KEY_SLICE_END}, NULL, 0, add_start_only}, "is present without"},
        {"end-only", part, {{DSV4_KEY_SLICE_START, NULL}, NULL, 0, NULL}, "'ds4j.expert_slice.end' is present without"},
        {"empty", part, {{DSV4_KEY_SLICE_START, DSV4_KEY_SLICE_END}, NULL, 0, add_empty}, "expert slice 5:5"},
        {"past-end", part, {{DSV4_KEY_SLICE_START, DSV4_KEY_SLICE_END}, NULL, 0, add_past_end}, "expert slice 5:9 (ds4j.expert_slice.start/end) is invalid for 8"},
        {"string", part, {{DSV4_KEY_SLICE_START, DSV4_KEY_SLICE_END}, NULL, 0, add_string}, "must be non-negative integers"},
        {"negative", part, {{DSV4_KEY_SLICE_START, DSV4_KEY_SLICE_END}, NULL, 0, add_negative}, "must be non-negative integers"},
        {"bool", part, {{DSV4_KEY_SLICE_START, DSV4_KEY_SLICE_END}, NULL, 0, add_bool}, "must be non-negative integers"},
        {"huge", part, {{DSV4_KEY_SLICE_START, DSV4_KEY_SLICE_END}, NULL, 0, add_huge}, "is invalid for 8"},
        {"ne2-vs-meta", part, {{DSV4_KEY_SLICE_START, DSV4_KEY_SLICE_END}, NULL, 0, add_2_6}, "holds 3 experts but the file's expert slice 2:6"},
        {"full-tensors", full, {{NULL, NULL}, NULL, 0, add_2_6}, "holds 8 experts but the file's expert slice 2:6"},
        {"no-meta", part, {{DSV4_KEY_SLICE_START, DSV4_KEY_SLICE_END}, NULL, 0, NULL}, "holds 3 experts but deepseek4.expert_count is 8"},
        {"missing-exps", part, {{NULL, NULL}, "blk.1.ffn_up_exps.weight", 0, NULL}, "missing tensor 'blk.1.ffn_up_exps.weight'"},
        {"short-ne2", part, {{NULL, NULL}, NULL, 2, NULL}, "holds 2 experts but the file's expert slice 2:5"},
    };
    char bp[1024];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "bad-%s.gguf", bad[i].name);
        snprintf(bp, sizeof bp, "%s", bpath(nm));
        CHECK(write_crafted(bad[i].src, bp, &bad[i].c) == 0);
        /* with comm=local the file gets past the single-process check to the loader */
        int ok = expect_open_error(bp, "comm=local", bad[i].needle);
        if (!ok) fprintf(stderr, "  crafted file '%s' did not fail with '%s'\n", bad[i].name, bad[i].needle);
        CHECK(ok);
        ok = expect_open_error(bp, NULL, bad[i].needle);
        CHECK(ok);
    }

    /* ---- (d) the slicer's own errors ---- */
    char out[1024];
    snprintf(out, sizeof out, "%s", bpath("out.gguf"));
    CHECK(expect_slice_error(full, 0, 9, out, "expert range 0:9 is invalid: the model has 8 routed experts"));
    CHECK(expect_slice_error(full, 3, 3, out, "expert range 3:3 is invalid"));
    CHECK(expect_slice_error(full, -1, 2, out, "is invalid"));
    CHECK(expect_slice_error(part, 1, 4, out, "is already an expert slice holding experts 2:5; 1:4 is not inside it"));
    CHECK(expect_slice_error(part, 2, 5, part, "is the input file"));
    snprintf(bp, sizeof bp, "%s", bpath("bad-missing-exps.gguf"));
    CHECK(expect_slice_error(bp, 2, 3, out, "missing tensor 'blk.1.ffn_up_exps.weight'"));
    snprintf(bp, sizeof bp, "%s", bpath("bad-past-end.gguf"));
    CHECK(expect_slice_error(bp, 5, 6, out, "is invalid for 8"));
    snprintf(bp, sizeof bp, "%s", bpath("bad-short-ne2.gguf"));
    CHECK(expect_slice_error(bp, 2, 3, out, "expected 3 dims and 3 experts"));
    CHECK(expect_slice_error(DS4J_TEST_DATA_DIR "/no-such-file.gguf", 0, 1, out, "no-such-file"));
    CHECK(access(out, F_OK) != 0); /* no failed attempt left a file */
    CHECK(expect_slice_error(full, 0, 2, "/nonexistent-dir/x.gguf", "cannot create temporary file"));
    struct stat stt;
    CHECK(stat(part, &stt) == 0 && stt.st_size > 0);

    fx_free_ref(&ref);
    return failures ? 1 : 0;
}
