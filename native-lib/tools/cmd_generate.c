/*
 * cmd_generate.c — `ds4j-tool generate`: evaluate prompt token ids, then
 * sample n tokens with the C sampler and print them comma-separated.
 * Under mpirun with --options comm=mpi rank 0 drives the engine like a
 * single process and prints; the other ranks follow it (ds4j_engine_follow
 * replays its session calls). --stats reports decode speed and per-layer
 * all_sum latency on stderr; --die-rank R --die-after N kill rank R with
 * SIGKILL after N generated tokens (a test hook that simulates a crashed
 * peer; on a follower: after the prompt's forward passes plus N).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ds4j.h"
#include "tool.h"
#include "tool_util.h"

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *tokens = NULL, *opts = NULL;
    int n_gen = 16, threads = 0, chunk = 0, stats = 0, die_rank = -1, die_after = 0;
    char sopts[1024] = "";
    size_t so = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *skey = NULL;
        if (!strcmp(a, "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "--tokens") && i + 1 < argc) tokens = argv[++i];
        else if (!strcmp(a, "-n") && i + 1 < argc) n_gen = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--chunk") && i + 1 < argc) chunk = atoi(argv[++i]);
        else if (!strcmp(a, "--options") && i + 1 < argc) opts = argv[++i];
        else if (!strcmp(a, "--stats")) stats = 1;
        else if (!strcmp(a, "--die-rank") && i + 1 < argc) die_rank = atoi(argv[++i]);
        else if (!strcmp(a, "--die-after") && i + 1 < argc) die_after = atoi(argv[++i]);
        else if (!strcmp(a, "--temperature")) skey = "temperature";
        else if (!strcmp(a, "--seed")) skey = "seed";
        else if (!strcmp(a, "--top-k")) skey = "top_k";
        else if (!strcmp(a, "--top-p")) skey = "top_p";
        else if (!strcmp(a, "--min-p")) skey = "min_p";
        else if (!strcmp(a, "--repeat-penalty")) skey = "repeat_penalty";
        else if (!strcmp(a, "--presence-penalty")) skey = "presence_penalty";
        else if (!strcmp(a, "--frequency-penalty")) skey = "frequency_penalty";
        else {
            fprintf(stderr, "usage: ds4j-tool generate --model M.gguf --tokens 1,2,3 [-n N] [--temperature T] [--seed S]\n"
                            "       [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--presence-penalty X]\n"
                            "       [--frequency-penalty X] [--threads N] [--chunk N] [--options K=V;...] [--stats]\n");
            return 2;
        }
        if (skey) {
            if (i + 1 >= argc) { fprintf(stderr, "ds4j-tool generate: %s needs a value\n", a); return 2; }
            so += (size_t)snprintf(sopts + so, sizeof sopts - so, "%s=%s;", skey, argv[++i]);
            if (so >= sizeof sopts) return 2;
        }
    }
    if (!model || !tokens || n_gen < 0) {
        fprintf(stderr, "ds4j-tool generate: --model and --tokens are required\n");
        return 2;
    }
    if (!strstr(sopts, "temperature=")) so += (size_t)snprintf(sopts + so, sizeof sopts - so, "temperature=0;");
    int32_t *ids = NULL;
    int n = tool_parse_ids(tokens, &ids);
    if (n <= 0) { fprintf(stderr, "ds4j-tool generate: bad --tokens list\n"); return 2; }
    ds4j_engine *e = tool_open_engine(model, threads, chunk, opts);
    if (!e) { free(ids); return 1; }
    if (ds4j_engine_rank(e) > 0) {
        free(ids);
        int frc = tool_follow_engine(e, "generate", ds4j_engine_rank(e) == die_rank ? 1 + die_after : -1);
        ds4j_engine_close(e);
        return frc;
    }
    ds4j_sampler *sp = ds4j_sampler_new(sopts);
    ds4j_session *s = sp ? ds4j_session_new(e, n + n_gen) : NULL;
    int rc = 1;
    if (!s) { fprintf(stderr, "ds4j-tool generate: %s\n", ds4j_last_error()); goto done; }
    if (ds4j_session_sync(s, ids, n, NULL, NULL) < 0) { fprintf(stderr, "ds4j-tool generate: %s\n", ds4j_last_error()); goto done; }
    for (int i = 0; i < n; i++) ds4j_sampler_accept(sp, ids[i]);
    int rank = ds4j_engine_rank(e);
    struct timespec t0, t1;
    int64_t cnt0 = 0, tot0 = 0;
    ds4j_engine_allsum_stats(e, -1, &cnt0, &tot0, NULL); /* prefill calls, excluded below */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n_gen; i++) {
        if (rank == die_rank && i == die_after) raise(SIGKILL);
        int32_t t = ds4j_sampler_sample(sp, s, 0, NULL, NULL, NULL);
        if (t < 0) { fprintf(stderr, "ds4j-tool generate: %s\n", ds4j_last_error()); goto done; }
        printf("%s%d", i ? "," : "", t);
        fflush(stdout);
        ds4j_sampler_accept(sp, t);
        if (i + 1 < n_gen && ds4j_session_eval(s, t) < 0) { fprintf(stderr, "\nds4j-tool generate: %s\n", ds4j_last_error()); goto done; }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("\n");
    if (stats && n_gen > 1) {
        double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        int64_t cnt = 0, tot = 0, mx = 0;
        ds4j_engine_allsum_stats(e, -1, &cnt, &tot, &mx);
        const char *js = ds4j_engine_describe(e), *nl = js ? strstr(js, "\"n_layer\":") : NULL;
        long n_layer = nl ? strtol(nl + 10, NULL, 10) : 0;
        fprintf(stderr, "decode: %d tokens in %.3f s = %.2f tok/s (world size %d), %.1f us per layer\n", n_gen - 1, dt,
                (n_gen - 1) / dt, ds4j_engine_world_size(e), n_layer > 0 ? dt * 1e6 / (n_gen - 1) / n_layer : 0.0);
        /* with allsum_overlap the samples are the time left exposed after the shared expert */
        int overlap = js && strstr(js, "\"allsum_overlap\":true");
        if (cnt > cnt0)
            fprintf(stderr, "all_sum during decode (rank 0, overlap %s): %lld layer calls, mean %.1f us, max %.1f us "
                    "(incl. prefill)\n", overlap ? "on" : "off", (long long)(cnt - cnt0), (tot - tot0) / 1e3 / (cnt - cnt0),
                    mx / 1e3);
    }
    rc = 0;
done:
    ds4j_session_free(s);
    ds4j_sampler_free(sp);
    ds4j_engine_close(e);
    free(ids);
    return rc;
}
