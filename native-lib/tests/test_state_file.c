/*
 * test_state_file.c — session state on disk (ds4j_session_save / _load) on
 * the tiny fixture, f32 and fp8 state: a state written at a chat's mark and
 * read back by a freshly opened engine continues exactly as the session it
 * came from (bit for bit) and as a fresh evaluation (within 1e-5); files of
 * another precision are refused; truncated, bit-flipped and foreign files
 * are detected, leave the session empty and never crash; the checksum does
 * not depend on how the bytes were split.
 */
#include <math.h>
#include <unistd.h>

#include "common.h"
#include "ds4j.h"
#include "model_fixture.h"

static long file_size(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static unsigned char *slurp(const char *p, long *n) {
    *n = file_size(p);
    FILE *f = fopen(p, "rb");
    unsigned char *b = malloc((size_t)*n);
    if (!f || !b || fread(b, 1, (size_t)*n, f) != (size_t)*n) exit(1);
    fclose(f);
    return b;
}

static void spit(const char *p, const unsigned char *b, long n) {
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(b, 1, (size_t)n, f) != (size_t)n) exit(1);
    fclose(f);
}

/* loading must fail with `code` (and a message containing `what`), leaving the session empty */
static void expect_refused(ds4j_session *s, const char *path, int code, const char *what) {
    int rc = ds4j_session_load(s, path);
    if (rc != code || (what && !strstr(ds4j_last_error(), what))) {
        fprintf(stderr, "load of %s: rc %d (%s), expected %d with '%s'\n", path, rc, ds4j_last_error(), code,
                what ? what : "");
        failures++;
    }
    CHECK(ds4j_session_pos(s) == 0 && ds4j_session_logits(s) == NULL);
}

static void hash_splits(void) {
    unsigned char buf[300];
    for (int i = 0; i < 300; i++) buf[i] = (unsigned char)(i * 37 + 11);
    ds4j_hash64 a;
    ds4j_hash64_init(&a, 7);
    ds4j_hash64_feed(&a, buf, sizeof buf);
    uint64_t whole = ds4j_hash64_final(&a);
    for (int cut = 0; cut <= 300; cut += 13) {
        ds4j_hash64 b;
        ds4j_hash64_init(&b, 7);
        ds4j_hash64_feed(&b, buf, (size_t)cut);
        for (int i = cut; i < 300; i++) ds4j_hash64_feed(&b, buf + i, 1);
        CHECK(ds4j_hash64_final(&b) == whole);
    }
    buf[150] ^= 1;
    ds4j_hash64_init(&a, 7);
    ds4j_hash64_feed(&a, buf, sizeof buf);
    CHECK(ds4j_hash64_final(&a) != whole);
    ds4j_hash64_init(&a, 7);
    ds4j_hash64_feed(&a, buf, 299);
    CHECK(ds4j_hash64_final(&a) != whole);
}

static void run(const char *gguf, const char *opts, const char *other_opts, const int32_t *tok, int n,
                const char *dir) {
    char file[1200], bad[1200];
    snprintf(file, sizeof file, "%s/a.state", dir);
    snprintf(bad, sizeof bad, "%s/bad.state", dir);
    ds4j_engine *e = ds4j_engine_open(gguf, opts);
    if (!e) { fprintf(stderr, "%s\n", ds4j_last_error()); failures++; return; }
    int V = ds4j_n_vocab(e);
    char fp[40] = "";
    const char *fp0 = ds4j_engine_fingerprint(e);
    CHECK(fp0 && strlen(fp0) == 32);
    if (fp0) snprintf(fp, sizeof fp, "%s", fp0);

    /* a chat turn: a 75-token prompt, then 5 decoded tokens; the file holds the state before the prompt's last token */
    ds4j_session *a = ds4j_session_new(e, 200);
    CHECK(ds4j_session_sync(a, tok, 75, NULL, NULL) >= 0);
    for (int i = 0; i < 5; i++) CHECK(ds4j_session_eval(a, tok[80 + i]) == DS4J_OK);
    CHECK(ds4j_session_save(a, file, 74) == 74);
    CHECK(ds4j_session_pos(a) == 80); /* unchanged */
    CHECK(ds4j_session_save(a, file, 0) == DS4J_ERR_STATE);
    CHECK(ds4j_session_save(a, "/nonexistent-dir/x.state", 80) == DS4J_ERR_IO);
    int32_t head[128];
    CHECK(ds4j_state_file_tokens(e, file, head, 128) == 74 && memcmp(head, tok, 74 * 4) == 0);
    printf("[%s] state file at 74 tokens: %ld bytes\n", opts, file_size(file));

    /* the reference continuation: the original session back at 74, then tokens 74..n */
    float *ref = malloc((size_t)(n - 74) * V * sizeof(float)), *got = malloc((size_t)(n - 74) * V * sizeof(float));
    float *fresh = malloc((size_t)n * V * sizeof(float));
    CHECK(ds4j_session_rewind(a, 74) == DS4J_OK);
    CHECK(ds4j_session_eval_batch(a, tok + 74, n - 74, 0, ref) == DS4J_OK);
    ds4j_session *f = ds4j_session_new(e, 200);
    CHECK(ds4j_session_eval_batch(f, tok, n, 0, fresh) == DS4J_OK);
    ds4j_session_free(f);
    ds4j_session_free(a);
    ds4j_engine_close(e);

    /* a restart: another engine reads the file */
    e = ds4j_engine_open(gguf, opts);
    CHECK(e && !strcmp(ds4j_engine_fingerprint(e), fp));
    ds4j_session *b = ds4j_session_new(e, 200);
    CHECK(ds4j_session_load(b, file) == 74);
    CHECK(ds4j_session_pos(b) == 74 && ds4j_session_logits(b) == NULL);
    CHECK(ds4j_session_tokens(b, head, 128) == 74 && memcmp(head, tok, 74 * 4) == 0);
    CHECK(ds4j_session_eval_batch(b, tok + 74, n - 74, 0, got) == DS4J_OK);
    double same = fx_maxdiff(got, ref, (n - 74) * V), vs_fresh = fx_maxdiff(got, fresh + (size_t)74 * V, (n - 74) * V);
    printf("[%s] loaded state + %d tokens vs the session it came from: max |d| = %.3g; vs fresh: %.3g\n", opts, n - 74,
           same, vs_fresh);
    CHECK(same == 0);
    CHECK(vs_fresh <= 1e-5);
    /* the loaded position is a checkpoint: a sync of a longer prompt sharing 74 tokens reuses all of them */
    int32_t alt[96];
    memcpy(alt, tok, sizeof alt);
    for (int i = 74; i < n; i++) alt[i] = (tok[i] * 7 + 3) % V;
    CHECK(ds4j_session_sync(b, alt, n, NULL, NULL) == 74);
    CHECK(ds4j_session_load(b, file) == 74);
    CHECK(ds4j_session_sync(b, tok, 90, NULL, NULL) == 74);
    CHECK(fx_maxdiff(ds4j_session_logits(b), fresh + (size_t)89 * V, V) <= 1e-5);

    /* too small a context for the file */
    ds4j_session *small = ds4j_session_new(e, 50);
    expect_refused(small, file, DS4J_ERR_CONTEXT_FULL, "n_ctx");
    ds4j_session_free(small);

    /* damaged files: every one refused, the session left empty */
    long size;
    unsigned char *img = slurp(file, &size);
    expect_refused(b, "/nonexistent-dir/x.state", DS4J_ERR_IO, "cannot open");
    spit(bad, (const unsigned char *)"not a state file at all, just some text that is long enough to fill a header"
              "...............................................................................", 150);
    expect_refused(b, bad, DS4J_ERR_FORMAT, "not a ds4j state file");
    CHECK(ds4j_state_file_tokens(e, bad, head, 128) == DS4J_ERR_FORMAT);
    spit(bad, img, size - 1);
    expect_refused(b, bad, DS4J_ERR_FORMAT, "truncated or damaged");
    CHECK(ds4j_state_file_tokens(e, bad, head, 128) == DS4J_ERR_FORMAT);
    spit(bad, img, 100);
    expect_refused(b, bad, DS4J_ERR_FORMAT, NULL);
    unsigned char *mut = malloc((size_t)size + 8);
    memcpy(mut, img, (size_t)size);
    memset(mut + size, 0, 8);
    spit(bad, mut, size + 8);
    expect_refused(b, bad, DS4J_ERR_FORMAT, "truncated or damaged");
    /* one flipped bit anywhere in the payload or trailer: the checksum */
    uint64_t rng = 0x1234567;
    int flips = 0;
    for (int i = 0; i < 60; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        long at = 128 + (long)((rng >> 33) % (uint64_t)(size - 128));
        memcpy(mut, img, (size_t)size);
        mut[at] ^= (unsigned char)(1u << ((rng >> 20) & 7));
        spit(bad, mut, size);
        int rc = ds4j_session_load(b, bad);
        CHECK(rc == DS4J_ERR_FORMAT && ds4j_session_pos(b) == 0);
        flips += rc == DS4J_ERR_FORMAT;
    }
    printf("[%s] 60 single-bit flips in the payload: %d refused\n", opts, flips);
    /* header fields: position, sizes, version, fingerprint */
    const long fields[] = {8, 48, 56, 64, 72, 80, 88, 20};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy(mut, img, (size_t)size);
        mut[fields[i]] ^= 0x01;
        spit(bad, mut, size);
        int rc = ds4j_session_load(b, bad);
        CHECK((rc == DS4J_ERR_FORMAT || rc == DS4J_ERR_STATE) && ds4j_session_pos(b) == 0);
    }
    free(mut);
    free(img);
    /* still usable after all that */
    CHECK(ds4j_session_load(b, file) == 74);
    ds4j_session_free(b);
    ds4j_engine_close(e);

    /* another precision is another fingerprint: refused as foreign */
    ds4j_engine *o = ds4j_engine_open(gguf, other_opts);
    CHECK(o && strcmp(ds4j_engine_fingerprint(o), fp) != 0);
    if (o) {
        ds4j_session *c = ds4j_session_new(o, 200);
        expect_refused(c, file, DS4J_ERR_STATE, "another model");
        CHECK(ds4j_state_file_tokens(o, file, head, 128) == DS4J_ERR_STATE);
        ds4j_session_free(c);
        ds4j_engine_close(o);
    }
    unlink(file);
    unlink(bad);
    free(ref);
    free(got);
    free(fresh);
}

int main(void) {
    char gguf[1024], dir[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    fx_ref ref;
    if (fx_load_ref(dir, &ref) || fx_convert("dsv4-tiny-a", "f32", gguf, sizeof gguf)) return 1;
    hash_splits();
    char tmp[] = "/tmp/ds4j-state-XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    run(gguf, "threads=2;prefill_chunk=32", "threads=2;prefill_chunk=32;kv_precision=fp8", ref.tok[3], ref.n_tok[3], tmp);
    run(gguf, "threads=2;prefill_chunk=32;kv_precision=fp8", "threads=2;prefill_chunk=32", ref.tok[3], ref.n_tok[3], tmp);
    rmdir(tmp);
    fx_free_ref(&ref);
    if (failures) { fprintf(stderr, "test_state_file: %d failures\n", failures); return 1; }
    printf("test_state_file: ok\n");
    return 0;
}
