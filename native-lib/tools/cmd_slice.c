/*
 * cmd_slice.c — `ds4j-tool slice`: write the part of a deepseek4 GGUF that
 * one expert-parallel rank needs (its routed experts plus every shared
 * tensor), for engines opened with expert_compact=1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds4j.h"
#include "gguf.h"
#include "slice.h"
#include "tool.h"

static int usage(void) {
    fprintf(stderr,
            "usage: ds4j-tool slice --model FULL.gguf --out PART.gguf (--experts A:B | --rank R --world-size N)\n"
            "  keeps routed experts [A, B) (global ids) in every layer's stacked expert tensors and copies\n"
            "  everything else; --rank/--world-size picks the engine's default even split (experts\n"
            "  E*R/N .. E*(R+1)/N). The input may be a slice itself if the new range lies inside it.\n"
            "  Open the result with comm=...;expert_compact=1 on the rank that owns exactly [A, B).\n");
    return 2;
}

static int parse_nonneg(const char *s, long long *out) {
    char *end;
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    long long x = strtoll(s, &end, 10);
    if (*end || x < 0) return -1;
    *out = x;
    return 0;
}

int cmd_slice(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *experts = NULL, *rank_s = NULL, *world_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "slice: %s needs a value\n", a); return usage(); }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--experts")) experts = v;
        else if (!strcmp(a, "--rank")) rank_s = v;
        else if (!strcmp(a, "--world-size")) world_s = v;
        else { fprintf(stderr, "slice: unknown option '%s'\n", a); return usage(); }
    }
    if (!model || !out || (!experts == !(rank_s || world_s)) || (!rank_s != !world_s)) return usage();
    long long lo = -1, hi = -1;
    if (experts) {
        const char *c = strchr(experts, ':');
        char a[32];
        if (!c || (size_t)(c - experts) >= sizeof a) { fprintf(stderr, "slice: --experts %s: expected A:B\n", experts); return 2; }
        memcpy(a, experts, (size_t)(c - experts));
        a[c - experts] = 0;
        if (parse_nonneg(a, &lo) || parse_nonneg(c + 1, &hi) || hi <= lo) {
            fprintf(stderr, "slice: --experts %s: expected A:B with 0 <= A < B\n", experts);
            return 2;
        }
    } else {
        long long r, n;
        if (parse_nonneg(rank_s, &r) || parse_nonneg(world_s, &n) || n < 1 || r >= n) {
            fprintf(stderr, "slice: --rank %s --world-size %s: expected 0 <= R < N\n", rank_s, world_s);
            return 2;
        }
        /* the expert count, to compute the same split as the engine */
        char err[512];
        gguf_file *f = NULL;
        if (gguf_open(&f, model, err, sizeof err)) { fprintf(stderr, "slice: error: %s\n", err); return 1; }
        const gguf_kv *kv = gguf_find_kv(f, "deepseek4.expert_count");
        int64_t E = 0;
        if (!kv || !gguf_kv_get_int(kv, &E) || E < 1) {
            gguf_close(f);
            fprintf(stderr, "slice: error: '%s' has no valid deepseek4.expert_count\n", model);
            return 1;
        }
        gguf_close(f);
        if (n > E) {
            fprintf(stderr, "slice: error: %lld ranks but only %lld routed experts\n", n, (long long)E);
            return 1;
        }
        lo = E * r / n;
        hi = E * (r + 1) / n;
    }
    char err[1024] = "";
    if (ds4j_slice_gguf(model, lo, hi, out, err, sizeof err)) {
        fprintf(stderr, "slice: error: %s\n", err[0] ? err : ds4j_last_error());
        return 1;
    }
    fprintf(stderr, "slice: wrote %s (experts %lld:%lld)\n", out, lo, hi);
    return 0;
}
