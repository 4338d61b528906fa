/* fuzz_model.c — libFuzzer harness for model loading above the GGUF container:
 * hyper-parameters from metadata, tensor binding (names, shapes, types), the
 * expert slice keys and the first forward steps. The input is only the GGUF
 * header (metadata and tensor infos); the harness appends PAD zero bytes of
 * tensor data, writes the file to /dev/shm and opens it with the public API,
 * so mutations land on structure instead of weights. A load may fail (it must
 * then say why); a model that loads must evaluate a few tokens and close
 * without any memory error. `fuzz_model --make-seed IN.gguf OUT` writes the
 * header of a real model as a seed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ds4j.h"
#include "gguf.h"

#define PAD (1u << 20) /* tensor bytes appended: a q8_0 tiny synth model needs ~0.7 MB */

static char path[96];
static uint8_t *zeros;

static int make_seed(const char *in, const char *out) {
    char err[512];
    gguf_file *f = NULL;
    if (gguf_open(&f, in, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    uint64_t n = gguf_data_offset(f);
    FILE *src = fopen(in, "rb"), *dst = fopen(out, "wb");
    uint8_t *buf = malloc(n);
    int rc = !src || !dst || !buf || fread(buf, 1, n, src) != n || fwrite(buf, 1, n, dst) != n;
    if (gguf_file_size(f) - n > PAD) { fprintf(stderr, "%s: tensor data exceeds PAD\n", in); rc = 1; }
    if (src) fclose(src);
    if (dst && fclose(dst)) rc = 1;
    free(buf);
    gguf_close(f);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    if (*argc == 4 && !strcmp((*argv)[1], "--make-seed")) exit(make_seed((*argv)[2], (*argv)[3]));
    snprintf(path, sizeof path, "/dev/shm/ds4j-fuzz-model-%d.gguf", (int)getpid());
    zeros = calloc(PAD, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (fwrite(data, 1, size, f) != size || fwrite(zeros, 1, PAD, f) != PAD) abort();
    if (fclose(f)) abort();
    ds4j_engine *e = ds4j_engine_open(path, "threads=1");
    if (!e) {
        if (!ds4j_last_error()[0]) abort(); /* failures must be explained */
        return 0;
    }
    int32_t V = ds4j_n_vocab(e);
    ds4j_session *s = ds4j_session_new(e, 16);
    if (s && V > 0) {
        int32_t tok[3] = {0, (V - 1) / 2, V - 1};
        ds4j_session_eval_batch(s, tok, 3, 0, NULL);
        ds4j_session_eval(s, 1 % V);
        ds4j_session_rewind(s, 1);
    }
    ds4j_session_free(s);
    ds4j_engine_close(e);
    return 0;
}
