/*
 * common.h — small things every engine file needs: the thread-local error
 * message behind ds4j_last_error(), checked arithmetic, aligned allocation.
 */
#ifndef DS4J_COMMON_H
#define DS4J_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds4j.h"

#define DS4J_VERSION_STRING "0.1.0"

/* Record a printf-style message as this thread's last error; returns code
 * so callers can write `return ds4j_fail(DS4J_ERR_IO, "...", ...)`. */
int ds4j_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ds4j_clear_error(void);
/* Copy the last error into a caller buffer (used by internal APIs that
 * report through err/err_cap pairs). */
void ds4j_set_error_str(const char *msg);

/* Write a printf-style message into a caller's (err, cap) buffer (either may
 * be NULL/0) and return code: the reporting style of the internal APIs that
 * take an error buffer (converter, synth, GGUF). */
int ds4j_errf(char *err, size_t cap, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Overflow-checked arithmetic on non-negative int64 sizes. */
static inline bool ds4j_mul_ok(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_mul_overflow(a, b, out) && *out >= 0;
}
static inline bool ds4j_add_ok(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_add_overflow(a, b, out) && *out >= 0;
}

/* A streaming 64-bit checksum for files this engine writes (session state
 * on disk): detects truncation and corruption, not tampering. The result
 * depends only on the bytes fed, not on how they were split into calls. */
typedef struct ds4j_hash64 {
    uint64_t lane[4], len;
    uint8_t buf[32];
    int nb;
} ds4j_hash64;
void ds4j_hash64_init(ds4j_hash64 *s, uint64_t seed);
void ds4j_hash64_feed(ds4j_hash64 *s, const void *data, size_t n);
uint64_t ds4j_hash64_final(const ds4j_hash64 *s);

/* 64-byte aligned allocation (zeroed); free with ds4j_free. */
void *ds4j_alloc(size_t bytes);
void ds4j_free(void *p);

#endif
