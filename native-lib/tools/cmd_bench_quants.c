/*
 * cmd_bench_quants.c — `ds4j-tool bench-quants`: single-thread throughput
 * of ds4j_matvec (GB/s of weight bytes streamed) and ds4j_matmul for the
 * weight types that decide decode speed. Reports numbers only; nothing is
 * asserted. "matmul GB/s-eq" is weight bytes x tokens / time: the rate a
 * token-by-token matvec would need to match the batched kernel.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "quants.h"
#include "tool.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_u64(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}
static float gauss(void) {
    double u1 = ((next_u64() >> 11) + 0.5) / 9007199254740992.0, u2 = ((next_u64() >> 11) + 0.5) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Fill a rows x cols matrix: 64 distinct rows, quantized when the type has a
 * quantizer (otherwise random bytes with a small f16 scale at offset 0),
 * repeated to the full height. */
static uint8_t *make_matrix(int32_t type, int64_t rows, int64_t cols, int64_t *row_bytes) {
    const ds4j_type_traits *t = ds4j_type_get(type);
    int64_t rb = ds4j_row_size(type, cols);
    uint8_t *w = ds4j_alloc((size_t)(rb * rows));
    if (!w) return NULL;
    int64_t distinct = rows < 64 ? rows : 64;
    float *x = malloc((size_t)cols * 4);
    for (int64_t r = 0; r < distinct; r++) {
        uint8_t *row = w + r * rb;
        if (t->from_float) {
            for (int64_t i = 0; i < cols; i++) x[i] = gauss() * 0.02f;
            t->from_float(x, row, cols);
        } else {
            for (int64_t i = 0; i < rb; i++) row[i] = (uint8_t)next_u64();
            for (int64_t b = 0; b < rb; b += t->type_size) {
                uint16_t d = ds4j_f32_to_f16(1e-3f);
                memcpy(row + b, &d, 2);
            }
        }
    }
    free(x);
    for (int64_t r = distinct; r < rows; r++) memcpy(w + r * rb, w + (r % distinct) * rb, (size_t)rb);
    *row_bytes = rb;
    return w;
}

int cmd_bench_quants(int argc, char **argv) {
    int64_t rows = 4096, cols = 4096, tokens = 16;
    int iters = 20;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--cols") && i + 1 < argc) cols = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--type") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: ds4j-tool bench-quants [--rows N] [--cols N (multiple of 256)] [--iters N] [--tokens N] [--type NAME]\n");
            return 2;
        }
    }
    if (rows < 1 || cols < 256 || cols % 256 || iters < 1 || tokens < 1) {
        fprintf(stderr, "bench-quants: bad sizes\n");
        return 2;
    }
    ds4j_quants_init();
    printf("kernels: %s, matrix %lld x %lld, %d iterations, single thread\n", ds4j_quants_kernel_name(),
           (long long)rows, (long long)cols, iters);
    printf("%-8s %9s %12s %12s %14s %16s\n", "type", "MiB", "matvec GB/s", "scalar GB/s", "matvec ms", "matmul GB/s-eq");
    static const int32_t TYPES[] = {DS4J_TYPE_F32, DS4J_TYPE_F16, DS4J_TYPE_BF16, DS4J_TYPE_Q8_0, DS4J_TYPE_Q4_0,
                                    DS4J_TYPE_Q6_K, DS4J_TYPE_Q4_K, DS4J_TYPE_Q2_K, DS4J_TYPE_IQ2_XXS,
                                    DS4J_TYPE_IQ2_XS, DS4J_TYPE_Q5_K, DS4J_TYPE_Q3_K, DS4J_TYPE_IQ4_XS};
    float *x = malloc((size_t)(cols * tokens) * 4);
    float *out = malloc((size_t)(rows * tokens) * 4);
    for (int64_t i = 0; i < cols * tokens; i++) x[i] = gauss();
    for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++) {
        int32_t ty = TYPES[k];
        const ds4j_type_traits *t = ds4j_type_get(ty);
        if (only && strcmp(only, t->name) != 0) continue;
        int64_t rb = 0;
        uint8_t *w = make_matrix(ty, rows, cols, &rb);
        size_t asz = ds4j_act_size(ty, cols);
        uint8_t *act = ds4j_alloc(asz * (size_t)tokens);
        if (!w || !act) {
            fprintf(stderr, "bench-quants: out of memory\n");
            return 1;
        }
        for (int64_t j = 0; j < tokens; j++) ds4j_quantize_act(ty, x + j * cols, cols, act + j * asz);
        double bytes = (double)rb * rows;
        ds4j_matvec(ty, w, rb, rows, cols, act, out); /* warm-up */
        double best = 1e30;
        for (int it = 0; it < iters; it++) {
            double t0 = now_s();
            ds4j_matvec(ty, w, rb, rows, cols, act, out);
            double dt = now_s() - t0;
            if (dt < best) best = dt;
        }
        /* the scalar reference, for comparison (fewer iterations: slow) */
        double best_ref = 1e30;
        for (int it = 0; it < 3; it++) {
            double t0 = now_s();
            for (int64_t r = 0; r < rows; r++) out[r] = t->vec_dot_ref(w + r * rb, act, cols);
            double dt = now_s() - t0;
            if (dt < best_ref) best_ref = dt;
        }
        double mm = 1e30;
        for (int it = 0; it < 3; it++) {
            double t0 = now_s();
            ds4j_matmul(ty, w, rb, rows, cols, act, (int64_t)asz, tokens, out, rows);
            double dt = now_s() - t0;
            if (dt < mm) mm = dt;
        }
        printf("%-8s %9.1f %12.2f %12.2f %14.3f %16.3g\n", t->name, bytes / 1048576.0, bytes / best * 1e-9,
               bytes / best_ref * 1e-9, best * 1e3, bytes * tokens / mm * 1e-9);
        ds4j_free(w);
        ds4j_free(act);
    }
    free(x);
    free(out);
    return 0;
}
