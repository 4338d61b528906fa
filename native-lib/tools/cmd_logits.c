/*
 * cmd_logits.c — `ds4j-tool logits`: evaluate a token list and write one row
 * of n_vocab float32 logits per input position (row t = logits after token
 * t), for comparisons against reference logits. Under mpirun with
 * --options comm=mpi every rank evaluates in lockstep and rank 0 writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds4j.h"
#include "tool.h"
#include "tool_util.h"

int cmd_logits(int argc, char **argv) {
    const char *model = NULL, *tokens = NULL, *out = NULL, *opts = NULL, *kvp = NULL;
    int chunk = 1, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "--tokens") && i + 1 < argc) tokens = argv[++i];
        else if (!strcmp(a, "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(a, "--chunk") && i + 1 < argc) chunk = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--options") && i + 1 < argc) opts = argv[++i];
        else if (!strcmp(a, "--kv-precision") && i + 1 < argc) kvp = argv[++i];
        else {
            fprintf(stderr, "usage: ds4j-tool logits --model M.gguf --tokens 1,2,3 [--chunk N] [--out F.f32] [--threads N] [--kv-precision f32|fp8] [--options K=V;...]\n");
            return 2;
        }
    }
    if (!model || !tokens) {
        fprintf(stderr, "ds4j-tool logits: --model and --tokens are required\n");
        return 2;
    }
    int32_t *ids = NULL;
    int n = tool_parse_ids(tokens, &ids);
    if (n <= 0) { fprintf(stderr, "ds4j-tool logits: bad --tokens list\n"); return 2; }
    char optbuf[768];
    if (kvp) {
        /* shorthand for --options kv_precision=...; the engine validates the value */
        snprintf(optbuf, sizeof optbuf, "kv_precision=%s%s%s", kvp, opts ? ";" : "", opts ? opts : "");
        opts = optbuf;
    }
    ds4j_engine *e = tool_open_engine(model, threads, chunk, opts);
    if (!e) { free(ids); return 1; }
    int V = ds4j_n_vocab(e);
    ds4j_session *s = ds4j_session_new(e, n);
    float *lg = malloc((size_t)n * V * sizeof(float));
    int rc = 1;
    if (!s || !lg) { fprintf(stderr, "ds4j-tool logits: %s\n", ds4j_last_error()); goto done; }
    if (ds4j_session_eval_batch(s, ids, n, chunk, lg) < 0) { fprintf(stderr, "ds4j-tool logits: %s\n", ds4j_last_error()); goto done; }
    if (ds4j_engine_rank(e) != 0) { rc = 0; goto done; } /* followers only took part in the collectives */
    if (out) {
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(lg, sizeof(float), (size_t)n * V, f) != (size_t)n * V) {
            fprintf(stderr, "ds4j-tool logits: cannot write %s\n", out);
            if (f) fclose(f);
            goto done;
        }
        fclose(f);
    }
    for (int t = 0; t < n; t++) {
        int best = 0;
        for (int i = 1; i < V; i++) if (lg[(size_t)t * V + i] > lg[(size_t)t * V + best]) best = i;
        printf("pos %d token %d -> argmax %d (%.5f)\n", t, ids[t], best, lg[(size_t)t * V + best]);
    }
    rc = 0;
done:
    free(lg);
    free(ids);
    ds4j_session_free(s);
    ds4j_engine_close(e);
    return rc;
}
