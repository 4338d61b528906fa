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
