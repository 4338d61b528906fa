/*
 * tool_util.h — small helpers shared by the model subcommands of ds4j-tool
 * (logits, generate, bench): token-list parsing and engine opening.
 */
#ifndef DS4J_TOOL_UTIL_H
#define DS4J_TOOL_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds4j.h"

/* Parse "1,2,3" into a malloc'd array; returns the count or -1. */
static inline int tool_parse_ids(const char *s, int32_t **out) {
    int cap = 16, n = 0;
    int32_t *v = malloc((size_t)cap * sizeof(int32_t));
    if (!v) return -1;
    while (*s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 0 || x > INT32_MAX) { free(v); return -1; }
        if (n == cap) {
            cap *= 2;
            int32_t *nv = realloc(v, (size_t)cap * sizeof(int32_t));
            if (!nv) { free(v); return -1; }
            v = nv;
        }
        v[n++] = (int32_t)x;
        s = end;
        if (*s == ',') s++;
        else if (*s) { free(v); return -1; }
    }
    *out = v;
    return n;
}

static inline ds4j_engine *tool_open_engine(const char *model, int threads, int chunk, const char *extra) {
    char opts[1024];
    snprintf(opts, sizeof opts, "threads=%d;prefill_chunk=%d%s%s", threads > 0 ? threads : 0, chunk > 64 ? chunk : 64,
             extra ? ";" : "", extra ? extra : "");
    ds4j_engine *e = ds4j_engine_open(model, opts);
    if (!e) fprintf(stderr, "ds4j-tool: %s\n", ds4j_last_error());
    return e;
}

#endif
