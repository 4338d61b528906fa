/*
 * gguf.h — reading and writing GGUF files (v2/v3).
 *
 * The reader maps the file read-only and validates the header, metadata and
 * tensor directory completely before returning; tensor data is never copied
 * (gguf_tensor.data points into the mapping). Any malformed input yields an
 * error message naming the key/tensor and what was expected, never a crash.
 *
 * The writer streams: metadata and the tensor directory are declared first,
 * then tensor data is produced one tensor at a time by a callback, so a
 * converter never holds the whole model in memory.
 */
#ifndef DS4J_GGUF_H
#define DS4J_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum gguf_value_type {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3,
    GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10, GGUF_T_INT64 = 11,
    GGUF_T_FLOAT64 = 12, GGUF_T_COUNT = 13
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_string {
    const char *ptr;  /* into the mapping; not NUL-terminated */
    uint64_t len;
} gguf_string;

typedef struct gguf_kv gguf_kv;          /* opaque: use the accessors below */
typedef struct gguf_file gguf_file;

typedef struct gguf_tensor {
    const char *name;        /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* unused dims are 1; ne[0] is contiguous */
    int32_t type;            /* enum ds4j_type */
    uint64_t offset;         /* relative to the data section */
    uint64_t nbytes;
    const void *data;        /* into the mapping */
} gguf_tensor;

/* ---- reading ---- */
/* Returns 0 or a negative DS4J_ERR_* code with a message in err. */
int gguf_open(gguf_file **out, const char *path, char *err, size_t err_cap);
/* Parse a buffer the caller keeps alive (tests and fuzzing). */
int gguf_open_memory(gguf_file **out, const void *buf, size_t size, char *err, size_t err_cap);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);

int64_t gguf_kv_count(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i);
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key); /* NULL if absent */
int64_t gguf_find_kv_index(const gguf_file *f, const char *key);   /* -1 if absent (hash lookup) */
const char *gguf_kv_key(const gguf_kv *kv);          /* NUL-terminated */
int32_t gguf_kv_type(const gguf_kv *kv);
int32_t gguf_kv_arr_type(const gguf_kv *kv);         /* -1 if not an array */
uint64_t gguf_kv_arr_len(const gguf_kv *kv);         /* 0 if not an array */
/* Typed getters with conversion; return false (and leave *out) on type
 * mismatch: get_int accepts any integer type or bool, get_float any numeric. */
bool gguf_kv_get_int(const gguf_kv *kv, int64_t *out);
bool gguf_kv_get_float(const gguf_kv *kv, double *out);
bool gguf_kv_get_str(const gguf_kv *kv, gguf_string *out);
bool gguf_kv_arr_int(const gguf_kv *kv, uint64_t i, int64_t *out);
bool gguf_kv_arr_float(const gguf_kv *kv, uint64_t i, double *out);
bool gguf_kv_arr_str(const gguf_kv *kv, uint64_t i, gguf_string *out);
/* Nested arrays: the element kv (type of element i of an array of arrays). */
const gguf_kv *gguf_kv_arr_elem(const gguf_kv *kv, uint64_t i);

int64_t gguf_tensor_count(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Additions (gguf engineer): */
/* Absolute file offset of the (aligned) tensor data section. */
uint64_t gguf_data_offset(const gguf_file *f);
/* Identity of the file's content without reading all of it (for caches of
 * state computed from it): 128 bits over the header (metadata and tensor
 * table), the file size and 16 samples of 4 KiB spread over the data
 * section. Files differing only outside those samples collide. */
void gguf_fingerprint(const gguf_file *f, uint64_t out[2]);
/* The encoded value bytes of a kv (after its type tag), e.g. to copy it. */
void gguf_kv_raw(const gguf_kv *kv, const void **data, uint64_t *len);
/* Packed little-endian elements of an array of a fixed-size scalar type
 * (NULL for strings, arrays of arrays and non-arrays); unaligned. */
const void *gguf_kv_arr_data(const gguf_kv *kv);
/* Unsigned view of any integer type or bool; false if negative or not an
 * integer (covers uint64 values above INT64_MAX, which get_int rejects). */
bool gguf_kv_get_uint(const gguf_kv *kv, uint64_t *out);
bool gguf_kv_arr_uint(const gguf_kv *kv, uint64_t i, uint64_t *out);
/* "uint32", "string", ... ("unknown" for bad ids). */
const char *gguf_value_type_name(int32_t type);
/* Tensor types the reader accepts: those of ds4j_type_get() (quants.c) plus
 * the other ggml types, which files may hold even if the engine cannot
 * compute with them. Returns false for unknown ids; any out pointer may be
 * NULL. gguf_ggml_type_name is the name or NULL. */
bool gguf_ggml_type_info(int32_t type, const char **name, int32_t *block_size, int32_t *type_size);
const char *gguf_ggml_type_name(int32_t type);
/* The reader's own table only (for the test that it agrees with quants.c). */
bool gguf_ggml_type_builtin(int32_t type, int32_t *block_size, int32_t *type_size);

/* ---- writing ---- */
typedef struct gguf_writer gguf_writer;
/* Produces the bytes of one tensor into dst (exactly nbytes). Return 0 or a
 * negative error (with a message written to err). */
typedef int (*gguf_tensor_fill_fn)(void *user, const char *name, void *dst, uint64_t nbytes,
                                   char *err, size_t err_cap);

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
/* Metadata, in insertion order (setting an existing key replaces it). */
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Arrays of a scalar type: `data` holds n packed little-endian elements. */
void gguf_writer_set_arr(gguf_writer *w, const char *key, int32_t elem_type, const void *data, uint64_t n);
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
/* Additions (gguf engineer): any fixed-size scalar type, v = its LE bytes. */
void gguf_writer_set_scalar(gguf_writer *w, const char *key, int32_t type, const void *v);
/* Any value already encoded as in a GGUF file (after the type tag), incl.
 * nested arrays; validated with the reader's parser. Returns 0 or < 0. */
int gguf_writer_set_raw(gguf_writer *w, const char *key, int32_t type, const void *value, uint64_t len);
/* Copy a kv from an open file (key NULL = same key). Returns 0 or < 0. */
int gguf_writer_set_kv(gguf_writer *w, const char *key, const gguf_kv *kv);
/* Errors from setters and add_tensor are sticky: gguf_writer_write reports
 * the first one and writes nothing. */
/* Declare a tensor; its bytes come from fill(user, name, ...) during write. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int32_t type, uint32_t n_dims,
                           const int64_t *ne, gguf_tensor_fill_fn fill, void *user);
/* Write the whole file (version 3). Returns 0 or a negative error. */
int gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t err_cap);

#endif /* DS4J_GGUF_H */
