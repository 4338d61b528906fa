/* fuzz_gguf.c — libFuzzer harness for the GGUF reader: parse arbitrary bytes
 * with gguf_open_memory, then touch every key, value, array element and the
 * first and last byte of every tensor through the public accessors, so any
 * out-of-bounds pointer the reader hands out is caught by ASan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

static volatile uint64_t sink;

static void walk_kv(const gguf_kv *kv) {
    int64_t iv;
    double dv;
    gguf_string s;
    const void *raw;
    uint64_t raw_len;
    sink += strlen(gguf_kv_key(kv)) + (uint64_t)gguf_kv_type(kv);
    gguf_kv_raw(kv, &raw, &raw_len);
    if (raw_len) sink += ((const uint8_t *)raw)[raw_len - 1];
    if (gguf_kv_get_int(kv, &iv)) sink += (uint64_t)iv;
    if (gguf_kv_get_float(kv, &dv)) sink += (uint64_t)(dv == dv);
    if (gguf_kv_get_str(kv, &s) && s.len) sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
    uint64_t n = gguf_kv_arr_len(kv);
    sink += (uint64_t)gguf_kv_arr_type(kv);
    for (uint64_t i = 0; i < n; i++) {
        if (gguf_kv_arr_int(kv, i, &iv)) sink += (uint64_t)iv;
        if (gguf_kv_arr_float(kv, i, &dv)) sink += (uint64_t)(dv == dv);
        if (gguf_kv_arr_str(kv, i, &s) && s.len) sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
        const gguf_kv *e = gguf_kv_arr_elem(kv, i);
        if (e) walk_kv(e);
    }
    if (gguf_kv_arr_elem(kv, n) || gguf_kv_arr_int(kv, n, &iv)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    char err[512];
    int rc = gguf_open_memory(&f, data, size, err, sizeof err);
    if (rc != 0) {
        if (f != NULL || rc >= 0 || !err[0]) abort(); /* failures must be clean and explained */
        return 0;
    }
    sink += gguf_version(f) + gguf_alignment(f) + gguf_data_offset(f);
    if (gguf_data_offset(f) % gguf_alignment(f)) abort();
    for (int64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        if (gguf_find_kv(f, gguf_kv_key(kv)) != kv) abort();
        walk_kv(kv);
    }
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) != t) abort();
        if (t->nbytes == 0 || t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) abort();
        if (t->offset % gguf_alignment(f)) abort();
        const uint8_t *d = t->data;
        if (d < data || d + t->nbytes > data + size) abort();
        sink += d[0] + d[t->nbytes - 1];
    }
    gguf_close(f);
    return 0;
}
