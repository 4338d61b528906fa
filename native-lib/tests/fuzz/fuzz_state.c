/* fuzz_state.c — libFuzzer harness for reading session state files
 * (ds4j_state_file_tokens, ds4j_session_load) on a tiny synthetic model. The
 * harness recomputes the trailing checksum of every input before writing it,
 * so mutations get past the checksum to the checks behind it (sizes against
 * the model's layout, token ids) and into the state itself; a load may fail
 * (it must say why and leave the session empty), a state that loads must
 * evaluate a token. `fuzz_state --make-seed DIR` writes real state files of
 * that model (f32 and fp8 engines) as seeds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "ds4j.h"
#include "synth.h"

static char model[96], path[96];
static ds4j_engine *eng;
static ds4j_session *sess;

static void die(const char *what) {
    fprintf(stderr, "fuzz_state: %s: %s\n", what, ds4j_last_error());
    exit(1);
}

static ds4j_engine *open_model(const char *opts) {
    ds4j_engine *e = ds4j_engine_open(model, opts);
    if (!e) die("open");
    return e;
}

static void make_seeds(const char *dir) {
    const char *opts[2] = {"threads=1", "threads=1;kv_precision=fp8"};
    for (int k = 0; k < 2; k++) {
        ds4j_engine *e = open_model(opts[k]);
        ds4j_session *s = ds4j_session_new(e, 256);
        int32_t tok[130];
        for (int i = 0; i < 130; i++) tok[i] = (i * 37 + 11) % ds4j_n_vocab(e);
        const int lens[3] = {3, 70, 130};
        for (int j = 0; j < 3; j++) {
            char out[1024];
            snprintf(out, sizeof out, "%s/seed-%s-%d.state", dir, k ? "fp8" : "f32", lens[j]);
            if (ds4j_session_sync(s, tok, lens[j], NULL, NULL) < 0 || ds4j_session_save(s, out, lens[j]) <= 0) die("seed");
        }
        ds4j_session_free(s);
        ds4j_engine_close(e);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    snprintf(model, sizeof model, "/dev/shm/ds4j-fuzz-state-%d.gguf", (int)getpid());
    snprintf(path, sizeof path, "/dev/shm/ds4j-fuzz-state-%d.state", (int)getpid());
    ds4j_synth_opts o = {.preset = "tiny", .out_path = model, .seed = 1, .dense_type = -1, .expert_type = -1};
    char err[512];
    if (ds4j_synth(&o, err, sizeof err)) { fprintf(stderr, "fuzz_state: synth: %s\n", err); exit(1); }
    if (*argc == 3 && !strcmp((*argv)[1], "--make-seed")) {
        make_seeds((*argv)[2]);
        unlink(model);
        exit(0);
    }
    eng = open_model("threads=1");
    sess = ds4j_session_new(eng, 256);
    if (!sess) die("session");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size > 8) {
        ds4j_hash64 h;
        ds4j_hash64_init(&h, 1); /* the format version seeds the file checksum */
        ds4j_hash64_feed(&h, data, size - 8);
        uint64_t sum = ds4j_hash64_final(&h);
        if (fwrite(data, 1, size - 8, f) != size - 8 || fwrite(&sum, 1, 8, f) != 8) abort();
    } else if (fwrite(data, 1, size, f) != size) {
        abort();
    }
    if (fclose(f)) abort();
    int32_t tok[300];
    int n = ds4j_state_file_tokens(eng, path, tok, 300);
    if (n < 0 && !ds4j_last_error()[0]) abort();
    int pos = ds4j_session_load(sess, path);
    if (pos < 0) {
        if (!ds4j_last_error()[0] || ds4j_session_pos(sess) != 0 || ds4j_session_logits(sess)) abort();
        return 0;
    }
    if (pos != n || ds4j_session_pos(sess) != pos) abort();
    if (pos < 256 && ds4j_session_eval(sess, 0) != DS4J_OK) abort();
    return 0;
}
