/*
 * gguf.c — the GGUF (v2/v3) reader and streaming writer declared in gguf.h.
 *
 * Reader: the file is mapped read-only and parsed in one pass with a bounds
 * check before every read; counts and lengths are checked against the bytes
 * that remain before anything is allocated, so memory stays proportional to
 * the input size whatever the input says. Every tensor's byte range is then
 * checked (alignment, inside the file, no overlap). Keys and tensor names are
 * copied to NUL-terminated strings and indexed in hash tables.
 *
 * Writer: metadata values are kept pre-encoded in insertion order; tensors
 * are declared with a fill callback and written one at a time through one
 * reusable buffer, into a temporary file renamed over the target at the end.
 */
#include "gguf.h"

#include "common.h"
#include "quants.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Nesting of arrays of arrays; real files use at most one level, and the
 * parser recurses, so the depth is bounded to keep the stack small. */
#define GGUF_MAX_NESTING 8
/* Longest tensor name the writer accepts (ggml's GGML_MAX_NAME - 1). */
#define GGUF_WRITER_MAX_NAME 63

/* ------------------------------------------------------------------------ */
/* Tensor type sizes come from quants.c (ds4j_type_get). The reader also
 * knows the (block elements, block bytes) of the other ggml types so it can
 * validate and list files the engine cannot compute with; test_gguf checks
 * both tables agree wherever both know a type. */
static const struct { const char *name; int32_t block_size, type_size; } GGML_TYPES[DS4J_TYPE_COUNT] = {
    [0] = {"F32", 1, 4},          [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},       [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},       [9] = {"Q8_1", 32, 36},      [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},    [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},    [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},   [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},    [21] = {"IQ3_S", 256, 110},  [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136},  [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},         [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},    [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},    [39] = {"MXFP4", 32, 17},
};

bool gguf_ggml_type_info(int32_t type, const char **name, int32_t *block_size, int32_t *type_size) {
    const ds4j_type_traits *t = ds4j_type_get(type);
    if (t) {
        if (name) *name = t->name;
        if (block_size) *block_size = t->block_size;
        if (type_size) *type_size = t->type_size;
        return true;
    }
    if (type < 0 || type >= DS4J_TYPE_COUNT || !GGML_TYPES[type].block_size) return false;
    if (name) *name = GGML_TYPES[type].name;
    if (block_size) *block_size = GGML_TYPES[type].block_size;
    if (type_size) *type_size = GGML_TYPES[type].type_size;
    return true;
}

bool gguf_ggml_type_builtin(int32_t type, int32_t *block_size, int32_t *type_size) {
    if (type < 0 || type >= DS4J_TYPE_COUNT || !GGML_TYPES[type].block_size) return false;
    *block_size = GGML_TYPES[type].block_size;
    *type_size = GGML_TYPES[type].type_size;
    return true;
}

const char *gguf_ggml_type_name(int32_t type) {
    const char *n = NULL;
    return gguf_ggml_type_info(type, &n, NULL, NULL) ? n : NULL;
}

static bool type_sizes(int32_t type, int64_t *block, int64_t *size) {
    int32_t b, s;
    if (!gguf_ggml_type_info(type, NULL, &b, &s) || b <= 0 || s <= 0) return false;
    *block = b;
    *size = s;
    return true;
}

/* Bytes of a tensor: 0 with a reason in why[] on any problem. */
static uint64_t tensor_nbytes(int32_t type, uint32_t n_dims, const int64_t *ne, char *why, size_t why_cap) {
    int64_t block, size;
    if (!type_sizes(type, &block, &size)) {
        snprintf(why, why_cap, "unknown tensor type %d", (int)type);
        return 0;
    }
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) {
        snprintf(why, why_cap, "n_dims %u is not in 1..%d", n_dims, GGUF_MAX_DIMS);
        return 0;
    }
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0) {
            snprintf(why, why_cap, "dimension ne[%u] = %lld is not positive", d, (long long)ne[d]);
            return 0;
        }
    }
    if (ne[0] % block != 0) {
        snprintf(why, why_cap, "ne[0] = %lld is not a multiple of the %s block size %lld", (long long)ne[0],
                 gguf_ggml_type_name(type), (long long)block);
        return 0;
    }
    int64_t total = (ne[0] / block), elems = ne[0];
    bool ok = ds4j_mul_ok(total, size, &total);
    for (uint32_t d = 1; d < n_dims && ok; d++) ok = ds4j_mul_ok(total, ne[d], &total) && ds4j_mul_ok(elems, ne[d], &elems);
    if (!ok) {
        snprintf(why, why_cap, "size of shape overflows 63 bits");
        return 0;
    }
    return (uint64_t)total;
}

static const char *VALUE_TYPE_NAMES[GGUF_T_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

const char *gguf_value_type_name(int32_t type) {
    if (type < 0 || type >= GGUF_T_COUNT) return "unknown";
    return VALUE_TYPE_NAMES[type];
}

/* Encoded size of a fixed-size scalar; 0 for string/array/unknown. */
static uint64_t scalar_size(int32_t type) {
    switch (type) {
    case GGUF_T_UINT8: case GGUF_T_INT8: case GGUF_T_BOOL: return 1;
    case GGUF_T_UINT16: case GGUF_T_INT16: return 2;
    case GGUF_T_UINT32: case GGUF_T_INT32: case GGUF_T_FLOAT32: return 4;
    case GGUF_T_UINT64: case GGUF_T_INT64: case GGUF_T_FLOAT64: return 8;
    default: return 0;
    }
}

/* Smallest possible encoding of one value of a type (for count bounds). */
static uint64_t min_value_size(int32_t type) {
    if (type == GGUF_T_STRING) return 8;
    if (type == GGUF_T_ARRAY) return 12;
    return scalar_size(type);
}

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void wr_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------------------ */
/* reader */

struct gguf_kv {
    char *key;              /* NULL for elements of a nested array */
    int32_t type;
    int32_t arr_type;       /* -1 unless type == ARRAY */
    uint64_t arr_len;
    const uint8_t *raw;     /* encoded value (after the type tag) */
    uint64_t raw_len;
    const uint8_t *arr_data; /* first element of an array */
    uint64_t *str_offs;     /* arrays of strings: element offsets from arr_data */
    gguf_kv *elems;         /* arrays of arrays */
};

typedef struct {
    int64_t *slots;   /* index + 1, 0 = empty */
    uint64_t mask;
} name_index;

struct gguf_file {
    const uint8_t *base;
    uint64_t size;
    void *map;
    size_t map_len;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    gguf_kv *kvs;
    int64_t n_tensors;
    gguf_tensor *tensors;
    name_index kv_index, tensor_index;
};

typedef struct {
    const uint8_t *p;
    uint64_t size, pos;
    char *err;
    size_t err_cap;
    char where[160]; /* what is being parsed, for messages */
} parser;

static int perr(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(parser *ps, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ps->err && ps->err_cap) snprintf(ps->err, ps->err_cap, "%s", msg);
    return ds4j_fail(DS4J_ERR_FORMAT, "%s", msg);
}

static int need(parser *ps, uint64_t n, const char *what) {
    if (ps->size - ps->pos < n)
        return perr(ps, "GGUF truncated: %s%s needs %llu bytes at offset %llu, only %llu left", ps->where, what,
                    (unsigned long long)n, (unsigned long long)ps->pos, (unsigned long long)(ps->size - ps->pos));
    return 0;
}

static int rd_u32(parser *ps, uint32_t *v, const char *what) {
    int rc = need(ps, 4, what);
    if (rc) return rc;
    *v = (uint32_t)rd_le(ps->p + ps->pos, 4);
    ps->pos += 4;
    return 0;
}

static int rd_u64(parser *ps, uint64_t *v, const char *what) {
    int rc = need(ps, 8, what);
    if (rc) return rc;
    *v = rd_le(ps->p + ps->pos, 8);
    ps->pos += 8;
    return 0;
}

/* A string: length prefix then bytes (not NUL-terminated). */
static int rd_str(parser *ps, gguf_string *s, const char *what) {
    uint64_t len;
    int rc = rd_u64(ps, &len, what);
    if (rc) return rc;
    if (len > ps->size - ps->pos)
        return perr(ps, "GGUF truncated: %s%s has length %llu at offset %llu but only %llu bytes are left", ps->where,
                    what, (unsigned long long)len, (unsigned long long)(ps->pos - 8),
                    (unsigned long long)(ps->size - ps->pos));
    s->ptr = (const char *)ps->p + ps->pos;
    s->len = len;
    ps->pos += len;
    return 0;
}

static void kv_free_contents(gguf_kv *kv) {
    if (!kv) return;
    if (kv->elems) {
        for (uint64_t i = 0; i < kv->arr_len; i++) kv_free_contents(&kv->elems[i]);
        free(kv->elems);
    }
    free(kv->str_offs);
    free(kv->key);
}

/* Parse one value of `type` (the type tag already consumed). */
static int parse_value(parser *ps, gguf_kv *kv, int32_t type, int depth) {
    int rc;
    kv->type = type;
    kv->arr_type = -1;
    kv->raw = ps->p + ps->pos;
    uint64_t start = ps->pos;
    if (type < 0 || type >= GGUF_T_COUNT) return perr(ps, "%sunknown value type %d", ps->where, (int)type);
    if (type == GGUF_T_STRING) {
        gguf_string s;
        if ((rc = rd_str(ps, &s, "string value"))) return rc;
    } else if (type == GGUF_T_ARRAY) {
        if (depth >= GGUF_MAX_NESTING)
            return perr(ps, "%sarrays nested more than %d deep", ps->where, GGUF_MAX_NESTING);
        uint32_t et;
        uint64_t n;
        if ((rc = rd_u32(ps, &et, "array element type"))) return rc;
        if (et >= GGUF_T_COUNT) return perr(ps, "%sunknown array element type %u", ps->where, et);
        if ((rc = rd_u64(ps, &n, "array length"))) return rc;
        uint64_t left = ps->size - ps->pos, min = min_value_size((int32_t)et);
        if (n > left / min)
            return perr(ps, "%sarray of %llu %s elements needs at least %llu bytes per element but only %llu bytes are left",
                        ps->where, (unsigned long long)n, gguf_value_type_name((int32_t)et), (unsigned long long)min,
                        (unsigned long long)left);
        kv->arr_type = (int32_t)et;
        kv->arr_data = ps->p + ps->pos;
        if (et == GGUF_T_STRING) {
            kv->str_offs = malloc((n ? n : 1) * sizeof(uint64_t));
            if (!kv->str_offs) return perr(ps, "%sout of memory for %llu strings", ps->where, (unsigned long long)n);
            kv->arr_len = n;
            for (uint64_t i = 0; i < n; i++) {
                kv->str_offs[i] = (uint64_t)(ps->p + ps->pos - kv->arr_data);
                gguf_string s;
                char what[64];
                snprintf(what, sizeof what, "string element %llu of %llu", (unsigned long long)i, (unsigned long long)n);
                if ((rc = rd_str(ps, &s, what))) return rc;
            }
        } else if (et == GGUF_T_ARRAY) {
            kv->elems = calloc(n ? n : 1, sizeof(gguf_kv));
            if (!kv->elems) return perr(ps, "%sout of memory for %llu arrays", ps->where, (unsigned long long)n);
            kv->arr_len = n;
            for (uint64_t i = 0; i < n; i++) {
                kv->elems[i].arr_type = -1;
                if ((rc = parse_value(ps, &kv->elems[i], GGUF_T_ARRAY, depth + 1))) {
                    size_t l = ps->err ? strlen(ps->err) : 0;
                    if (ps->err && l + 1 < ps->err_cap)
                        snprintf(ps->err + l, ps->err_cap - l, " (in element %llu of %llu of a nested array)",
                                 (unsigned long long)i, (unsigned long long)n);
                    if (ps->err) ds4j_set_error_str(ps->err);
                    return rc;
                }
            }
        } else {
            uint64_t sz = scalar_size((int32_t)et);
            kv->arr_len = n;
            if (et == GGUF_T_BOOL) {
                for (uint64_t i = 0; i < n; i++)
                    if (ps->p[ps->pos + i] > 1)
                        return perr(ps, "%sbool array element %llu has value %u (expected 0 or 1)", ps->where,
                                    (unsigned long long)i, ps->p[ps->pos + i]);
            }
            ps->pos += n * sz;
        }
    } else {
        uint64_t sz = scalar_size(type);
        if ((rc = need(ps, sz, gguf_value_type_name(type)))) return rc;
        if (type == GGUF_T_BOOL && ps->p[ps->pos] > 1)
            return perr(ps, "%sbool value is %u (expected 0 or 1)", ps->where, ps->p[ps->pos]);
        ps->pos += sz;
    }
    kv->raw_len = ps->pos - start;
    return 0;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static bool index_init(name_index *ix, int64_t n) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) cap <<= 1;
    ix->slots = calloc(cap, sizeof(int64_t));
    ix->mask = cap - 1;
    return ix->slots != NULL;
}

/* Insert name with index i; returns the existing index if the name is
 * already present, else -1. name_of(k) gives the name of entry k. */
static int64_t index_insert(name_index *ix, const char *name, int64_t i, const char *(*name_of)(const void *, int64_t),
                            const void *ctx) {
    uint64_t h = hash_str(name) & ix->mask;
    for (;;) {
        int64_t s = ix->slots[h];
        if (!s) {
            ix->slots[h] = i + 1;
            return -1;
        }
        if (!strcmp(name_of(ctx, s - 1), name)) return s - 1;
        h = (h + 1) & ix->mask;
    }
}

static int64_t index_find(const name_index *ix, const char *name, const char *(*name_of)(const void *, int64_t),
                          const void *ctx) {
    if (!ix->slots || !name) return -1;
    uint64_t h = hash_str(name) & ix->mask;
    for (;;) {
        int64_t s = ix->slots[h];
        if (!s) return -1;
        if (!strcmp(name_of(ctx, s - 1), name)) return s - 1;
        h = (h + 1) & ix->mask;
    }
}

static const char *kv_name_of(const void *ctx, int64_t i) { return ((const gguf_file *)ctx)->kvs[i].key; }
static const char *tensor_name_of(const void *ctx, int64_t i) { return ((const gguf_file *)ctx)->tensors[i].name; }

/* Copy a length-prefixed name, rejecting empty names and embedded NULs
 * (a NUL would make two different names compare equal once copied). */
static int copy_name(parser *ps, const gguf_string *s, char **out, const char *what) {
    if (s->len == 0) return perr(ps, "%s%s is empty", ps->where, what);
    if (memchr(s->ptr, 0, s->len)) return perr(ps, "%s%s contains a NUL byte", ps->where, what);
    *out = malloc(s->len + 1);
    if (!*out) return perr(ps, "out of memory copying %s of %llu bytes", what, (unsigned long long)s->len);
    memcpy(*out, s->ptr, s->len);
    (*out)[s->len] = 0;
    return 0;
}

static void where_name(parser *ps, const char *kind, const char *name) {
    snprintf(ps->where, sizeof ps->where, "%s '%.100s': ", kind, name);
}

static int cmp_by_offset(const void *a, const void *b, void *ctx) {
    const gguf_tensor *t = ctx;
    uint64_t oa = t[*(const int64_t *)a].offset, ob = t[*(const int64_t *)b].offset;
    return oa < ob ? -1 : oa > ob;
}

static int parse_file(gguf_file *f, parser *ps) {
    int rc;
    ps->where[0] = 0;
    if (ps->size < 4 || memcmp(ps->p, "GGUF", 4) != 0) {
        if (ps->size < 4) return perr(ps, "not a GGUF file: only %llu bytes (bad magic)", (unsigned long long)ps->size);
        return perr(ps, "not a GGUF file (bad magic %02x %02x %02x %02x, expected \"GGUF\")", ps->p[0], ps->p[1],
                    ps->p[2], ps->p[3]);
    }
    ps->pos = 4;
    snprintf(ps->where, sizeof ps->where, "header: ");
    uint32_t version;
    if ((rc = rd_u32(ps, &version, "version"))) return rc;
    if (version == 1) return perr(ps, "GGUF version 1 is not supported (only versions 2 and 3)");
    if (version != 2 && version != 3) {
        if ((version & 0xffff) == 0 && (version >> 16))
            return perr(ps, "unsupported GGUF version 0x%08x (a big-endian file? only little-endian v2/v3 are supported)",
                        version);
        return perr(ps, "unsupported GGUF version %u (only versions 2 and 3)", version);
    }
    f->version = version;
    uint64_t n_tensors, n_kv;
    if ((rc = rd_u64(ps, &n_tensors, "tensor count"))) return rc;
    if ((rc = rd_u64(ps, &n_kv, "metadata count"))) return rc;
    /* Each kv takes at least 14 bytes (key length, 1-byte key, type, 1-byte
     * value), each tensor info at least 33. */
    uint64_t left = ps->size - ps->pos;
    if (n_kv > left / 14)
        return perr(ps, "metadata count %llu is impossible: only %llu bytes follow the header", (unsigned long long)n_kv,
                    (unsigned long long)left);
    if (n_tensors > left / 33)
        return perr(ps, "tensor count %llu is impossible: only %llu bytes follow the header",
                    (unsigned long long)n_tensors, (unsigned long long)left);

    f->kvs = calloc(n_kv ? n_kv : 1, sizeof(gguf_kv));
    if (!f->kvs || !index_init(&f->kv_index, (int64_t)n_kv)) return perr(ps, "out of memory for %llu keys", (unsigned long long)n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &f->kvs[i];
        kv->arr_type = -1;
        snprintf(ps->where, sizeof ps->where, "metadata entry %llu of %llu: ", (unsigned long long)i, (unsigned long long)n_kv);
        gguf_string key;
        if ((rc = rd_str(ps, &key, "key"))) return rc;
        if ((rc = copy_name(ps, &key, &kv->key, "key"))) return rc;
        f->n_kv = (int64_t)i + 1;
        where_name(ps, "key", kv->key);
        int64_t dup = index_insert(&f->kv_index, kv->key, (int64_t)i, kv_name_of, f);
        if (dup >= 0)
            return perr(ps, "duplicate metadata key '%.200s' (entries %lld and %llu)", kv->key, (long long)dup,
                        (unsigned long long)i);
        uint32_t type;
        if ((rc = rd_u32(ps, &type, "value type"))) return rc;
        if (type >= GGUF_T_COUNT) return perr(ps, "%sunknown value type %u", ps->where, type);
        if ((rc = parse_value(ps, kv, (int32_t)type, 0))) return rc;
    }

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find_kv(f, "general.alignment");
    if (al) {
        ps->where[0] = 0;
        if (al->type != GGUF_T_UINT32)
            return perr(ps, "key 'general.alignment' must be uint32, found %s", gguf_value_type_name(al->type));
        uint64_t a = rd_le(al->raw, 4);
        if (a == 0 || (a & (a - 1)))
            return perr(ps, "key 'general.alignment' = %llu is not a power of two", (unsigned long long)a);
        f->alignment = a;
    }

    left = ps->size - ps->pos;
    if (n_tensors > left / 33)
        return perr(ps, "tensor count %llu is impossible: only %llu bytes follow the metadata",
                    (unsigned long long)n_tensors, (unsigned long long)left);
    f->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(gguf_tensor));
    if (!f->tensors || !index_init(&f->tensor_index, (int64_t)n_tensors))
        return perr(ps, "out of memory for %llu tensors", (unsigned long long)n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        snprintf(ps->where, sizeof ps->where, "tensor info %llu of %llu: ", (unsigned long long)i,
                 (unsigned long long)n_tensors);
        gguf_string name;
        char *copy = NULL;
        if ((rc = rd_str(ps, &name, "name"))) return rc;
        if ((rc = copy_name(ps, &name, &copy, "tensor name"))) return rc;
        t->name = copy;
        f->n_tensors = (int64_t)i + 1;
        where_name(ps, "tensor", t->name);
        int64_t dup = index_insert(&f->tensor_index, t->name, (int64_t)i, tensor_name_of, f);
        if (dup >= 0)
            return perr(ps, "duplicate tensor name '%.200s' (tensors %lld and %llu)", t->name, (long long)dup,
                        (unsigned long long)i);
        if ((rc = rd_u32(ps, &t->n_dims, "n_dims"))) return rc;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return perr(ps, "%sn_dims is %u, expected 1..%d", ps->where, t->n_dims, GGUF_MAX_DIMS);
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t v;
            char what[16];
            snprintf(what, sizeof what, "ne[%u]", d);
            if ((rc = rd_u64(ps, &v, what))) return rc;
            if (v == 0 || v > (uint64_t)INT64_MAX)
                return perr(ps, "%sne[%u] = %lld, expected a positive dimension", ps->where, d, (long long)v);
            t->ne[d] = (int64_t)v;
        }
        uint32_t type;
        if ((rc = rd_u32(ps, &type, "type"))) return rc;
        int64_t blk, tsz;
        if (!type_sizes((int32_t)type, &blk, &tsz)) return perr(ps, "%sunknown tensor type %u", ps->where, type);
        t->type = (int32_t)type;
        if ((rc = rd_u64(ps, &t->offset, "offset"))) return rc;
        char why[160];
        t->nbytes = tensor_nbytes(t->type, t->n_dims, t->ne, why, sizeof why);
        if (!t->nbytes) return perr(ps, "%s%s", ps->where, why);
        if (t->offset % f->alignment)
            return perr(ps, "%sdata offset %llu is not a multiple of the alignment %llu", ps->where,
                        (unsigned long long)t->offset, (unsigned long long)f->alignment);
    }

    ps->where[0] = 0;
    uint64_t data = ps->pos + (f->alignment - ps->pos % f->alignment) % f->alignment;
    if (data < ps->pos) return perr(ps, "data section offset overflows");
    f->data_offset = data;
    if (n_tensors > 0 && data > ps->size)
        return perr(ps, "GGUF truncated: the data section starts at offset %llu but the file has %llu bytes",
                    (unsigned long long)data, (unsigned long long)ps->size);
    uint64_t data_size = n_tensors > 0 ? ps->size - data : 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return perr(ps, "tensor '%.200s': data [%llu, +%llu) extends beyond the end of the file (data section holds %llu bytes)",
                        t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                        (unsigned long long)data_size);
        t->data = ps->p + data + t->offset;
    }
    if (n_tensors > 1) {
        int64_t *order = malloc(n_tensors * sizeof(int64_t));
        if (!order) return perr(ps, "out of memory sorting %llu tensors", (unsigned long long)n_tensors);
        for (uint64_t i = 0; i < n_tensors; i++) order[i] = (int64_t)i;
        qsort_r(order, n_tensors, sizeof(int64_t), cmp_by_offset, f->tensors);
        for (uint64_t i = 1; i < n_tensors; i++) {
            const gguf_tensor *a = &f->tensors[order[i - 1]], *b = &f->tensors[order[i]];
            if (a->offset + a->nbytes > b->offset) {
                rc = perr(ps, "tensor '%.200s' data [%llu, %llu) overlaps tensor '%.200s' at offset %llu", a->name,
                          (unsigned long long)a->offset, (unsigned long long)(a->offset + a->nbytes), b->name,
                          (unsigned long long)b->offset);
                free(order);
                return rc;
            }
        }
        free(order);
    }
    return 0;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->kvs)
        for (int64_t i = 0; i < f->n_kv; i++) kv_free_contents(&f->kvs[i]);
    free(f->kvs);
    if (f->tensors)
        for (int64_t i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->kv_index.slots);
    free(f->tensor_index.slots);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}

static int open_buffer(gguf_file **out, const void *buf, size_t size, void *map, size_t map_len, char *err,
                       size_t err_cap) {
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        if (map) munmap(map, map_len);
        if (err && err_cap) snprintf(err, err_cap, "out of memory");
        return ds4j_fail(DS4J_ERR_NO_MEMORY, "out of memory");
    }
    f->base = buf;
    f->size = size;
    f->map = map;
    f->map_len = map_len;
    parser ps = {.p = buf, .size = size, .err = err, .err_cap = err_cap};
    int rc = parse_file(f, &ps);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    if (err && err_cap) err[0] = 0;
    *out = f;
    return 0;
}

int gguf_open_memory(gguf_file **out, const void *buf, size_t size, char *err, size_t err_cap) {
    if (!out) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "gguf_open_memory: out is NULL");
    *out = NULL;
    if (!buf && size) {
        if (err && err_cap) snprintf(err, err_cap, "gguf_open_memory: NULL buffer");
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "gguf_open_memory: NULL buffer");
    }
    static const uint8_t empty[1];
    return open_buffer(out, buf ? buf : empty, size, NULL, 0, err, err_cap);
}

static int io_err(char *err, size_t err_cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int io_err(char *err, size_t err_cap, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err && err_cap) snprintf(err, err_cap, "%s", msg);
    return ds4j_fail(DS4J_ERR_IO, "%s", msg);
}

int gguf_open(gguf_file **out, const char *path, char *err, size_t err_cap) {
    if (!out) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "gguf_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return io_err(err, err_cap, "cannot open GGUF file: empty path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_err(err, err_cap, "cannot open GGUF file '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return io_err(err, err_cap, "cannot stat GGUF file '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return io_err(err, err_cap, "cannot open GGUF file '%s': not a regular file", path);
    }
    void *map = NULL;
    size_t len = (size_t)st.st_size;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return io_err(err, err_cap, "cannot mmap GGUF file '%s' (%zu bytes): %s", path, len, strerror(e));
        }
    }
    close(fd);
    char msg[768];
    static const uint8_t empty[1];
    int rc = open_buffer(out, map ? map : empty, len, map, len, msg, sizeof msg);
    if (rc) {
        /* Name the file in content errors too. */
        if (err && err_cap) snprintf(err, err_cap, "%s: %s", path, msg);
        return ds4j_fail(rc, "%s: %s", path, msg);
    }
    if (err && err_cap) err[0] = 0;
    return 0;
}

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint64_t gguf_alignment(const gguf_file *f) { return f->alignment; }
uint64_t gguf_file_size(const gguf_file *f) { return f->size; }
uint64_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }

void gguf_fingerprint(const gguf_file *f, uint64_t out[2]) {
    for (int k = 0; k < 2; k++) {
        ds4j_hash64 h;
        ds4j_hash64_init(&h, 0x6767756600000000ull + (uint64_t)k);
        ds4j_hash64_feed(&h, &f->size, sizeof f->size);
        uint64_t head = f->data_offset < f->size ? f->data_offset : f->size;
        ds4j_hash64_feed(&h, f->base, (size_t)head);
        uint64_t span = f->size - head, sample = 4096;
        for (uint64_t i = 0; i < 16 && span > 0; i++) {
            uint64_t at = head + span / 16 * i, n = f->size - at < sample ? f->size - at : sample;
            ds4j_hash64_feed(&h, f->base + at, (size_t)n);
        }
        out[k] = ds4j_hash64_final(&h);
    }
}

int64_t gguf_kv_count(const gguf_file *f) { return f->n_kv; }
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_kv) ? &f->kvs[i] : NULL;
}
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    int64_t i = gguf_find_kv_index(f, key);
    return i >= 0 ? &f->kvs[i] : NULL;
}
int64_t gguf_find_kv_index(const gguf_file *f, const char *key) {
    return f && key ? index_find(&f->kv_index, key, kv_name_of, f) : -1;
}
const char *gguf_kv_key(const gguf_kv *kv) { return kv && kv->key ? kv->key : ""; }
int32_t gguf_kv_type(const gguf_kv *kv) { return kv ? kv->type : -1; }
int32_t gguf_kv_arr_type(const gguf_kv *kv) { return kv && kv->type == GGUF_T_ARRAY ? kv->arr_type : -1; }
uint64_t gguf_kv_arr_len(const gguf_kv *kv) { return kv && kv->type == GGUF_T_ARRAY ? kv->arr_len : 0; }
void gguf_kv_raw(const gguf_kv *kv, const void **data, uint64_t *len) {
    *data = kv ? kv->raw : NULL;
    *len = kv ? kv->raw_len : 0;
}

static bool scalar_int(int32_t type, const uint8_t *p, int64_t *out) {
    switch (type) {
    case GGUF_T_UINT8: case GGUF_T_BOOL: *out = p[0]; return true;
    case GGUF_T_INT8: *out = (int8_t)p[0]; return true;
    case GGUF_T_UINT16: *out = (uint16_t)rd_le(p, 2); return true;
    case GGUF_T_INT16: *out = (int16_t)(uint16_t)rd_le(p, 2); return true;
    case GGUF_T_UINT32: *out = (uint32_t)rd_le(p, 4); return true;
    case GGUF_T_INT32: *out = (int32_t)(uint32_t)rd_le(p, 4); return true;
    case GGUF_T_INT64: *out = (int64_t)rd_le(p, 8); return true;
    case GGUF_T_UINT64: {
        uint64_t v = rd_le(p, 8);
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    default: return false;
    }
}

static bool scalar_float(int32_t type, const uint8_t *p, double *out) {
    if (type == GGUF_T_FLOAT32) {
        uint32_t u = (uint32_t)rd_le(p, 4);
        float x;
        memcpy(&x, &u, 4);
        *out = x;
        return true;
    }
    if (type == GGUF_T_FLOAT64) {
        uint64_t u = rd_le(p, 8);
        memcpy(out, &u, 8);
        return true;
    }
    if (type == GGUF_T_BOOL) return false;
    if (type == GGUF_T_UINT64) {
        *out = (double)rd_le(p, 8);
        return true;
    }
    int64_t v;
    if (!scalar_int(type, p, &v)) return false;
    *out = (double)v;
    return true;
}

static void read_str_at(const uint8_t *p, gguf_string *out) {
    out->len = rd_le(p, 8);
    out->ptr = (const char *)p + 8;
}

bool gguf_kv_get_int(const gguf_kv *kv, int64_t *out) {
    int64_t v;
    if (!kv || !scalar_int(kv->type, kv->raw, &v)) return false;
    *out = v;
    return true;
}
static bool scalar_uint(int32_t type, const uint8_t *p, uint64_t *out) {
    if (type == GGUF_T_UINT64) {
        *out = rd_le(p, 8);
        return true;
    }
    int64_t v;
    if (!scalar_int(type, p, &v) || v < 0) return false;
    *out = (uint64_t)v;
    return true;
}
bool gguf_kv_get_uint(const gguf_kv *kv, uint64_t *out) {
    uint64_t v;
    if (!kv || !scalar_uint(kv->type, kv->raw, &v)) return false;
    *out = v;
    return true;
}
bool gguf_kv_arr_uint(const gguf_kv *kv, uint64_t i, uint64_t *out) {
    if (!kv || kv->type != GGUF_T_ARRAY || i >= kv->arr_len || !scalar_size(kv->arr_type)) return false;
    uint64_t v;
    if (!scalar_uint(kv->arr_type, kv->arr_data + i * scalar_size(kv->arr_type), &v)) return false;
    *out = v;
    return true;
}
bool gguf_kv_get_float(const gguf_kv *kv, double *out) {
    double v;
    if (!kv || !scalar_float(kv->type, kv->raw, &v)) return false;
    *out = v;
    return true;
}
bool gguf_kv_get_str(const gguf_kv *kv, gguf_string *out) {
    if (!kv || kv->type != GGUF_T_STRING) return false;
    read_str_at(kv->raw, out);
    return true;
}
bool gguf_kv_arr_int(const gguf_kv *kv, uint64_t i, int64_t *out) {
    if (!kv || kv->type != GGUF_T_ARRAY || i >= kv->arr_len || !scalar_size(kv->arr_type)) return false;
    int64_t v;
    if (!scalar_int(kv->arr_type, kv->arr_data + i * scalar_size(kv->arr_type), &v)) return false;
    *out = v;
    return true;
}
bool gguf_kv_arr_float(const gguf_kv *kv, uint64_t i, double *out) {
    if (!kv || kv->type != GGUF_T_ARRAY || i >= kv->arr_len || !scalar_size(kv->arr_type)) return false;
    double v;
    if (!scalar_float(kv->arr_type, kv->arr_data + i * scalar_size(kv->arr_type), &v)) return false;
    *out = v;
    return true;
}
bool gguf_kv_arr_str(const gguf_kv *kv, uint64_t i, gguf_string *out) {
    if (!kv || kv->type != GGUF_T_ARRAY || kv->arr_type != GGUF_T_STRING || i >= kv->arr_len) return false;
    read_str_at(kv->arr_data + kv->str_offs[i], out);
    return true;
}
const gguf_kv *gguf_kv_arr_elem(const gguf_kv *kv, uint64_t i) {
    if (!kv || kv->type != GGUF_T_ARRAY || kv->arr_type != GGUF_T_ARRAY || i >= kv->arr_len) return NULL;
    return &kv->elems[i];
}
const void *gguf_kv_arr_data(const gguf_kv *kv) {
    if (!kv || kv->type != GGUF_T_ARRAY || !scalar_size(kv->arr_type)) return NULL;
    return kv->arr_data;
}

int64_t gguf_tensor_count(const gguf_file *f) { return f->n_tensors; }
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_tensors) ? &f->tensors[i] : NULL;
}
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    int64_t i = index_find(&f->tensor_index, name, tensor_name_of, f);
    return i >= 0 ? &f->tensors[i] : NULL;
}

/* ------------------------------------------------------------------------ */
/* writer */

typedef struct {
    char *key;
    int32_t type;
    uint8_t *val; /* encoded value after the type tag */
    size_t len;
} wkv;

typedef struct {
    char *name;
    int32_t type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
    gguf_tensor_fill_fn fill;
    void *user;
} wtensor;

struct gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *ts;
    size_t n_t, cap_t;
    int err_code; /* first error from a setter, reported by write */
    char err[512];
};

static void wfail(gguf_writer *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void wfail(gguf_writer *w, int code, const char *fmt, ...) {
    if (w->err_code) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    w->err_code = code;
    ds4j_fail(code, "%s", w->err);
}

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    free(w->kvs);
    for (size_t i = 0; i < w->n_t; i++) free(w->ts[i].name);
    free(w->ts);
    free(w);
}

/* Store a value; takes ownership of val. */
static void set_encoded(gguf_writer *w, const char *key, int32_t type, uint8_t *val, size_t len) {
    if (!w) {
        free(val);
        return;
    }
    if (!val) {
        wfail(w, DS4J_ERR_NO_MEMORY, "out of memory encoding metadata key '%.200s'", key ? key : "");
        return;
    }
    if (!key || !*key) {
        free(val);
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "metadata key is empty");
        return;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kvs[i].key, key)) {
            free(w->kvs[i].val);
            w->kvs[i].type = type;
            w->kvs[i].val = val;
            w->kvs[i].len = len;
            return;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *n = realloc(w->kvs, cap * sizeof *n);
        if (!n) {
            free(val);
            wfail(w, DS4J_ERR_NO_MEMORY, "out of memory adding metadata key '%.200s'", key);
            return;
        }
        w->kvs = n;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(val);
        wfail(w, DS4J_ERR_NO_MEMORY, "out of memory adding metadata key '%.200s'", key);
        return;
    }
    w->kvs[w->n_kv++] = (wkv){k, type, val, len};
}

static void set_scalar_bits(gguf_writer *w, const char *key, int32_t type, uint64_t bits) {
    size_t n = (size_t)scalar_size(type);
    uint8_t *v = malloc(n);
    if (v) wr_le(v, bits, (int)n);
    set_encoded(w, key, type, v, n);
}

void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { set_scalar_bits(w, key, GGUF_T_UINT32, v); }
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { set_scalar_bits(w, key, GGUF_T_INT32, (uint32_t)v); }
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) { set_scalar_bits(w, key, GGUF_T_UINT64, v); }
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    set_scalar_bits(w, key, GGUF_T_FLOAT32, u);
}
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) { set_scalar_bits(w, key, GGUF_T_BOOL, v ? 1 : 0); }

void gguf_writer_set_scalar(gguf_writer *w, const char *key, int32_t type, const void *v) {
    uint64_t n = scalar_size(type);
    if (!w) return;
    if (!n || !v) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "metadata key '%.200s': %s is not a scalar type", key ? key : "",
              gguf_value_type_name(type));
        return;
    }
    if (type == GGUF_T_BOOL && *(const uint8_t *)v > 1) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "metadata key '%.200s': bool value must be 0 or 1", key ? key : "");
        return;
    }
    uint8_t *b = malloc(n);
    if (b) memcpy(b, v, n);
    set_encoded(w, key, type, b, n);
}

void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    if (!w) return;
    if (!v) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "metadata key '%.200s': NULL string", key ? key : "");
        return;
    }
    size_t len = strlen(v);
    uint8_t *b = malloc(8 + len);
    if (b) {
        wr_le(b, len, 8);
        memcpy(b + 8, v, len);
    }
    set_encoded(w, key, GGUF_T_STRING, b, 8 + len);
}

void gguf_writer_set_arr(gguf_writer *w, const char *key, int32_t elem_type, const void *data, uint64_t n) {
    if (!w) return;
    uint64_t es = scalar_size(elem_type);
    if (!es) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "metadata key '%.200s': array element type %s is not a scalar type",
              key ? key : "", gguf_value_type_name(elem_type));
        return;
    }
    if ((n && !data) || n > (SIZE_MAX - 12) / es) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "metadata key '%.200s': bad array data", key ? key : "");
        return;
    }
    if (elem_type == GGUF_T_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1) {
                wfail(w, DS4J_ERR_INVALID_ARGUMENT, "metadata key '%.200s': bool element %llu is not 0 or 1",
                      key ? key : "", (unsigned long long)i);
                return;
            }
    size_t len = 12 + (size_t)(n * es);
    uint8_t *b = malloc(len);
    if (b) {
        wr_le(b, (uint32_t)elem_type, 4);
        wr_le(b + 4, n, 8);
        if (n) memcpy(b + 12, data, (size_t)(n * es));
    }
    set_encoded(w, key, GGUF_T_ARRAY, b, len);
}

void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
    if (!w) return;
    if (n && !v) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "metadata key '%.200s': NULL string array", key ? key : "");
        return;
    }
    size_t len = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (!v[i]) {
            wfail(w, DS4J_ERR_INVALID_ARGUMENT, "metadata key '%.200s': string element %llu is NULL", key ? key : "",
                  (unsigned long long)i);
            return;
        }
        len += 8 + strlen(v[i]);
    }
    uint8_t *b = malloc(len);
    if (b) {
        wr_le(b, GGUF_T_STRING, 4);
        wr_le(b + 4, n, 8);
        size_t p = 12;
        for (uint64_t i = 0; i < n; i++) {
            size_t l = strlen(v[i]);
            wr_le(b + p, l, 8);
            memcpy(b + p + 8, v[i], l);
            p += 8 + l;
        }
    }
    set_encoded(w, key, GGUF_T_ARRAY, b, len);
}

int gguf_writer_set_raw(gguf_writer *w, const char *key, int32_t type, const void *value, uint64_t len) {
    if (!w) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "gguf_writer_set_raw: NULL writer");
    /* Validate the encoding with the reader's own parser. */
    char err[512];
    parser ps = {.p = value ? value : (const uint8_t *)"", .size = value ? len : 0, .err = err, .err_cap = sizeof err};
    snprintf(ps.where, sizeof ps.where, "key '%.100s': ", key ? key : "");
    gguf_kv tmp = {0};
    int rc = parse_value(&ps, &tmp, type, 0);
    kv_free_contents(&tmp);
    if (!rc && ps.pos != len) {
        snprintf(err, sizeof err, "key '%.100s': encoded %s value has %llu trailing bytes", key ? key : "",
                 gguf_value_type_name(type), (unsigned long long)(len - ps.pos));
        rc = DS4J_ERR_FORMAT;
    }
    if (rc) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "%s", err);
        return DS4J_ERR_INVALID_ARGUMENT;
    }
    uint8_t *b = malloc(len ? len : 1);
    if (b && len) memcpy(b, value, len);
    set_encoded(w, key, type, b, (size_t)len);
    return w->err_code;
}

int gguf_writer_set_kv(gguf_writer *w, const char *key, const gguf_kv *kv) {
    if (!kv) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "gguf_writer_set_kv: NULL kv");
    return gguf_writer_set_raw(w, key ? key : kv->key, kv->type, kv->raw, kv->raw_len);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int32_t type, uint32_t n_dims, const int64_t *ne,
                           gguf_tensor_fill_fn fill, void *user) {
    if (!w) return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "gguf_writer_add_tensor: NULL writer");
    int64_t dims[GGUF_MAX_DIMS] = {1, 1, 1, 1};
    char why[160];
    if (!name || !*name) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "tensor name is empty");
        return DS4J_ERR_INVALID_ARGUMENT;
    }
    if (strlen(name) > GGUF_WRITER_MAX_NAME) {
        /* ggml keeps names in char[64]; longer ones make files llama.cpp rejects */
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "tensor name '%.200s' is longer than %d bytes", name, GGUF_WRITER_MAX_NAME);
        return DS4J_ERR_INVALID_ARGUMENT;
    }
    if (!ne || !fill) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "tensor '%.200s': NULL shape or fill callback", name);
        return DS4J_ERR_INVALID_ARGUMENT;
    }
    if (n_dims >= 1 && n_dims <= GGUF_MAX_DIMS) memcpy(dims, ne, n_dims * sizeof(int64_t));
    uint64_t nbytes = tensor_nbytes(type, n_dims, dims, why, sizeof why);
    if (!nbytes) {
        wfail(w, DS4J_ERR_INVALID_ARGUMENT, "tensor '%.200s': %s", name, why);
        return DS4J_ERR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->ts[i].name, name)) {
            wfail(w, DS4J_ERR_INVALID_ARGUMENT, "duplicate tensor name '%.200s'", name);
            return DS4J_ERR_INVALID_ARGUMENT;
        }
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *n = realloc(w->ts, cap * sizeof *n);
        if (!n) {
            wfail(w, DS4J_ERR_NO_MEMORY, "out of memory adding tensor '%.200s'", name);
            return DS4J_ERR_NO_MEMORY;
        }
        w->ts = n;
        w->cap_t = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        wfail(w, DS4J_ERR_NO_MEMORY, "out of memory adding tensor '%.200s'", name);
        return DS4J_ERR_NO_MEMORY;
    }
    wtensor *t = &w->ts[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = copy;
    t->type = type;
    t->n_dims = n_dims;
    memcpy(t->ne, dims, sizeof dims);
    t->nbytes = nbytes;
    t->fill = fill;
    t->user = user;
    return 0;
}

typedef struct {
    FILE *fp;
    const char *path;
    uint64_t pos;
    int rc;
    char *err;
    size_t err_cap;
} wstream;

static int ws_write(wstream *s, const void *p, size_t n) {
    if (s->rc) return s->rc;
    if (n && fwrite(p, 1, n, s->fp) != n) {
        int e = errno;
        s->rc = DS4J_ERR_IO;
        snprintf(s->err, s->err_cap, "writing '%s' failed at offset %llu: %s", s->path, (unsigned long long)s->pos,
                 strerror(e));
        return s->rc;
    }
    s->pos += n;
    return 0;
}

static int ws_u32(wstream *s, uint32_t v) { uint8_t b[4]; wr_le(b, v, 4); return ws_write(s, b, 4); }
static int ws_u64(wstream *s, uint64_t v) { uint8_t b[8]; wr_le(b, v, 8); return ws_write(s, b, 8); }
static int ws_str(wstream *s, const char *str) {
    size_t l = strlen(str);
    ws_u64(s, l);
    return ws_write(s, str, l);
}
static int ws_pad(wstream *s, uint64_t align) {
    static const uint8_t zeros[256];
    uint64_t pad = (align - s->pos % align) % align;
    while (pad && !s->rc) {
        size_t n = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        ws_write(s, zeros, n);
        pad -= n;
    }
    return s->rc;
}

int gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t err_cap) {
    char ebuf[768];
    if (!err || !err_cap) {
        err = ebuf;
        err_cap = sizeof ebuf;
    }
    err[0] = 0;
    if (!w || !path || !*path) {
        snprintf(err, err_cap, "gguf_writer_write: NULL writer or empty path");
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "%s", err);
    }
    if (w->err_code) {
        snprintf(err, err_cap, "%s", w->err);
        return ds4j_fail(w->err_code, "%s", err);
    }
    uint64_t align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment")) continue;
        uint64_t a = w->kvs[i].type == GGUF_T_UINT32 ? rd_le(w->kvs[i].val, 4) : 0;
        if (a == 0 || (a & (a - 1))) {
            snprintf(err, err_cap, "general.alignment must be a uint32 power of two");
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "%s", err);
        }
        align = a;
    }
    uint64_t off = 0, max_bytes = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->ts[i];
        off += (align - off % align) % align;
        t->offset = off;
        if (off + t->nbytes < off) {
            snprintf(err, err_cap, "total tensor data size overflows");
            return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "%s", err);
        }
        off += t->nbytes;
        if (t->nbytes > max_bytes) max_bytes = t->nbytes;
    }
    if (max_bytes > SIZE_MAX) {
        snprintf(err, err_cap, "tensor too large for this machine");
        return ds4j_fail(DS4J_ERR_NO_MEMORY, "%s", err);
    }

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        snprintf(err, err_cap, "out of memory");
        return ds4j_fail(DS4J_ERR_NO_MEMORY, "%s", err);
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, err_cap, "cannot create temporary file '%s': %s", tmp, strerror(errno));
        free(tmp);
        return ds4j_fail(DS4J_ERR_IO, "%s", err);
    }
    (void)fchmod(fd, 0644);
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        snprintf(err, err_cap, "cannot open temporary file '%s': %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return ds4j_fail(DS4J_ERR_IO, "%s", err);
    }
    setvbuf(fp, NULL, _IOFBF, 1 << 20);
    wstream s = {.fp = fp, .path = tmp, .err = err, .err_cap = err_cap};

    ws_write(&s, "GGUF", 4);
    ws_u32(&s, 3);
    ws_u64(&s, w->n_t);
    ws_u64(&s, w->n_kv);
    for (size_t i = 0; i < w->n_kv && !s.rc; i++) {
        ws_str(&s, w->kvs[i].key);
        ws_u32(&s, (uint32_t)w->kvs[i].type);
        ws_write(&s, w->kvs[i].val, w->kvs[i].len);
    }
    for (size_t i = 0; i < w->n_t && !s.rc; i++) {
        const wtensor *t = &w->ts[i];
        ws_str(&s, t->name);
        ws_u32(&s, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) ws_u64(&s, (uint64_t)t->ne[d]);
        ws_u32(&s, (uint32_t)t->type);
        ws_u64(&s, t->offset);
    }
    ws_pad(&s, align);
    uint64_t data_start = s.pos;
    void *buf = NULL;
    if (!s.rc && w->n_t) {
        buf = malloc((size_t)max_bytes);
        if (!buf) {
            s.rc = DS4J_ERR_NO_MEMORY;
            snprintf(err, err_cap, "out of memory for a %llu-byte tensor buffer", (unsigned long long)max_bytes);
        }
    }
    for (size_t i = 0; i < w->n_t && !s.rc; i++) {
        const wtensor *t = &w->ts[i];
        char ferr[512] = "";
        int rc = t->fill(t->user, t->name, buf, t->nbytes, ferr, sizeof ferr);
        if (rc) {
            s.rc = rc < 0 ? rc : DS4J_ERR_INVALID_ARGUMENT;
            snprintf(err, err_cap, "tensor '%.200s': %s", t->name, ferr[0] ? ferr : "fill callback failed");
            break;
        }
        ws_pad(&s, align);
        if (!s.rc && s.pos - data_start != t->offset) {
            s.rc = DS4J_ERR_STATE;
            snprintf(err, err_cap, "internal error: tensor '%.200s' lands at the wrong offset", t->name);
        }
        ws_write(&s, buf, (size_t)t->nbytes);
    }
    free(buf);
    if (!s.rc && fflush(fp) != 0) {
        s.rc = DS4J_ERR_IO;
        snprintf(err, err_cap, "writing '%s' failed: %s", tmp, strerror(errno));
    }
    if (!s.rc && fsync(fileno(fp)) != 0) {
        s.rc = DS4J_ERR_IO;
        snprintf(err, err_cap, "fsync of '%s' failed: %s", tmp, strerror(errno));
    }
    if (fclose(fp) != 0 && !s.rc) {
        s.rc = DS4J_ERR_IO;
        snprintf(err, err_cap, "closing '%s' failed: %s", tmp, strerror(errno));
    }
    if (!s.rc && rename(tmp, path) != 0) {
        s.rc = DS4J_ERR_IO;
        snprintf(err, err_cap, "renaming '%s' to '%s' failed: %s", tmp, path, strerror(errno));
    }
    if (s.rc) unlink(tmp);
    free(tmp);
    if (s.rc) return ds4j_fail(s.rc, "%s", err);
    return 0;
}
