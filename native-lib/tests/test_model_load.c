/*
 * test_model_load.c — model loading on the fuzzer's seeds and regressions
 * (tests/data/model-seed: GGUF headers, completed with zero tensor data the
 * way fuzz_model does): the real headers load and evaluate, each regression
 * fails fast with its message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds4j.h"
#include "model_fixture.h"

#define PAD (1u << 20) /* as fuzz_model.c */

static int with_data(const char *hdr, const char *out) {
    long n = 0;
    char *h = fx_read_file(hdr, &n);
    FILE *f = fopen(out, "wb");
    char *z = calloc(PAD, 1);
    int rc = !h || !f || !z || fwrite(h, 1, (size_t)n, f) != (size_t)n || fwrite(z, 1, PAD, f) != PAD;
    if (f && fclose(f)) rc = 1;
    free(h);
    free(z);
    return rc;
}

int main(void) {
    static const struct { const char *file, *want; } cases[] = {
        {"tiny-q8_0.hdr", NULL}, /* loads */
        {"tiny-q8_0-slice2-5.hdr", "expert slice"},
        /* block_count 167772165: sized per-layer arrays (2 GB, 6 s) before failing */
        {"regress-block-count.hdr", "block_count = 167772165 is larger than the file's 150 tensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char hdr[1024], path[1024];
        snprintf(hdr, sizeof hdr, "%s/model-seed/%s", DS4J_TEST_DATA_DIR, cases[i].file);
        snprintf(path, sizeof path, "%s/model-load-%zu.gguf", DS4J_BUILD_DIR, i);
        CHECK(with_data(hdr, path) == 0);
        ds4j_engine *e = ds4j_engine_open(path, "threads=1");
        if (cases[i].want) {
            CHECK(e == NULL);
            CHECK(e || strstr(ds4j_last_error(), cases[i].want) != NULL);
            if (e || !strstr(ds4j_last_error(), cases[i].want))
                fprintf(stderr, "%s: expected an error with '%s', got '%s'\n", cases[i].file, cases[i].want,
                        e ? "(opened)" : ds4j_last_error());
        } else {
            CHECK(e != NULL);
            if (!e) { fprintf(stderr, "%s: %s\n", cases[i].file, ds4j_last_error()); continue; }
            ds4j_session *s = ds4j_session_new(e, 16);
            int32_t tok[3] = {1, 2, 3};
            CHECK(s && ds4j_session_eval_batch(s, tok, 3, 0, NULL) == DS4J_OK);
            ds4j_session_free(s);
        }
        ds4j_engine_close(e);
        remove(path);
    }
    if (failures) { fprintf(stderr, "test_model_load: %d failures\n", failures); return 1; }
    printf("test_model_load: ok (%zu files)\n", sizeof cases / sizeof cases[0]);
    return 0;
}
