/*
 * safetensors.h — read-only access to HF safetensors checkpoints: one file,
 * a directory of *.safetensors, or a sharded model described by
 * model.safetensors.index.json. Files are mmap'd; every header entry is
 * validated (dtype, shape, byte range inside the file, no overlap with the
 * header) before any tensor is handed out.
 */
#ifndef DS4J_SAFETENSORS_H
#define DS4J_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

enum st_dtype {
    ST_F64, ST_F32, ST_F16, ST_BF16, ST_F8_E4M3, ST_F8_E5M2, ST_F8_E8M0,
    ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL, ST_DTYPE_COUNT
};

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    const char *name;
    int dtype;                  /* enum st_dtype */
    int n_dims;
    int64_t shape[ST_MAX_DIMS]; /* PyTorch order: shape[n_dims-1] is contiguous */
    int64_t numel;
    uint64_t nbytes;
    const uint8_t *data;        /* into the mapping */
    int file;                   /* index of the shard */
} st_tensor;

typedef struct st_model st_model;

/* path: a .safetensors file or a directory (index json, else every *.safetensors). */
int st_open(st_model **out, const char *path, char *err, size_t err_cap);
void st_close(st_model *m);
int64_t st_count(const st_model *m);
const st_tensor *st_at(const st_model *m, int64_t i);
const st_tensor *st_find(const st_model *m, const char *name); /* NULL if absent */

const char *st_dtype_name(int dtype);
int st_dtype_size(int dtype); /* bytes per element */

#endif /* DS4J_SAFETENSORS_H */
