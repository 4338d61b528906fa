/*
 * common.c — the per-thread error message and aligned allocation.
 */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_error[1024];
static _Thread_local int32_t g_code;

int ds4j_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
    g_code = code;
    return code;
}

int ds4j_errf(char *err, size_t cap, int code, const char *fmt, ...) {
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return code;
}

void ds4j_clear_error(void) {
    g_error[0] = '\0';
    g_code = 0;
}

void ds4j_set_error_str(const char *msg) {
    snprintf(g_error, sizeof g_error, "%s", msg ? msg : "");
    if (!g_code) g_code = DS4J_ERR_INVALID_ARGUMENT;
}

DS4J_API const char *ds4j_last_error(void) { return g_error; }

DS4J_API int32_t ds4j_last_error_code(void) { return g_code; }

void *ds4j_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || posix_memalign(&p, 64, rounded) != 0) return NULL;
    memset(p, 0, rounded);
    return p;
}

void ds4j_free(void *p) { free(p); }

/* ds4j_hash64: four independent multiply-rotate lanes over 32-byte blocks
 * (so the multiplies overlap: several GB/s, far above disk speed), folded
 * with the length through a final avalanche. */
static const uint64_t H_K1 = 0x9E3779B97F4A7C15ull, H_K2 = 0xC2B2AE3D27D4EB4Full;

static inline uint64_t h_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t h_lane(uint64_t h, uint64_t w) { return h_rotl(h ^ (w * H_K2), 31) * H_K1; }
static inline uint64_t h_load(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}
static inline uint64_t h_avalanche(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void ds4j_hash64_init(ds4j_hash64 *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 4; i++) s->lane[i] = h_avalanche(seed + (uint64_t)(i + 1) * H_K1);
}

static void h_block(ds4j_hash64 *s, const uint8_t *p) {
    for (int i = 0; i < 4; i++) s->lane[i] = h_lane(s->lane[i], h_load(p + 8 * i));
}

void ds4j_hash64_feed(ds4j_hash64 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->len += n;
    if (s->nb) {
        size_t take = 32 - (size_t)s->nb < n ? 32 - (size_t)s->nb : n;
        memcpy(s->buf + s->nb, p, take);
        s->nb += (int)take;
        p += take;
        n -= take;
        if (s->nb < 32) return;
        h_block(s, s->buf);
        s->nb = 0;
    }
    for (; n >= 32; p += 32, n -= 32) h_block(s, p);
    memcpy(s->buf, p, n);
    s->nb = (int)n;
}

uint64_t ds4j_hash64_final(const ds4j_hash64 *s) {
    uint64_t h = s->len * H_K1;
    for (int i = 0; i < 4; i++) h = h_lane(h, s->lane[i]);
    uint8_t tail[32] = {0};
    memcpy(tail, s->buf, (size_t)s->nb);
    for (int i = 0; i < (s->nb + 7) / 8; i++) h = h_lane(h, h_load(tail + 8 * i));
    return h_avalanche(h);
}
