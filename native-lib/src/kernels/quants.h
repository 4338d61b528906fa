/*
 * quants.h — tensor element types (ggml numbering) and the kernels that read
 * and write them: dequantize a row, dot a quantized row with an activation
 * row, quantize a float row. Model code only talks to this interface; SIMD
 * variants (quants_avx2.c) are chosen once at start-up by CPU detection.
 */
#ifndef DS4J_QUANTS_H
#define DS4J_QUANTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ggml type ids as stored in GGUF tensor-info records. */
enum ds4j_type {
    DS4J_TYPE_F32 = 0,
    DS4J_TYPE_F16 = 1,
    DS4J_TYPE_Q4_0 = 2,
    DS4J_TYPE_Q8_0 = 8,
    DS4J_TYPE_Q2_K = 10,
    DS4J_TYPE_Q3_K = 11,
    DS4J_TYPE_Q4_K = 12,
    DS4J_TYPE_Q5_K = 13,
    DS4J_TYPE_Q6_K = 14,
    DS4J_TYPE_Q8_K = 15,
    DS4J_TYPE_IQ2_XXS = 16,
    DS4J_TYPE_IQ2_XS = 17,
    DS4J_TYPE_IQ4_XS = 23,
    DS4J_TYPE_I8 = 24,
    DS4J_TYPE_I16 = 25,
    DS4J_TYPE_I32 = 26,
    DS4J_TYPE_I64 = 27,
    DS4J_TYPE_F64 = 28,
    DS4J_TYPE_BF16 = 30,
    DS4J_TYPE_COUNT = 40
};

/*
 * Row kernels. n is the number of elements and must be a multiple of the
 * type's block size. vec_dot computes sum_i w[i] * a[i] where `a` is the
 * activation row already converted by from_float_act into act_type (e.g.
 * Q8_K for k-quants, Q8_0 for Q8_0/Q4_0, F32 for float types).
 */
typedef void (*ds4j_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*ds4j_from_float_fn)(const float *src, void *dst, int64_t n);
typedef float (*ds4j_vec_dot_fn)(const void *w, const void *a, int64_t n);

typedef struct ds4j_type_traits {
    const char *name;        /* "Q8_0" etc. (ggml spelling) */
    int32_t block_size;      /* elements per block */
    int32_t type_size;       /* bytes per block */
    bool quantized;
    bool supported;          /* the engine can compute with it */
    ds4j_to_float_fn to_float;        /* dequantize; NULL if unsupported */
    ds4j_from_float_fn from_float;    /* quantize (reference); NULL if no quantizer */
    int32_t act_type;                 /* activation type for vec_dot */
    ds4j_vec_dot_fn vec_dot;          /* best kernel for this CPU */
    ds4j_vec_dot_fn vec_dot_ref;      /* scalar reference */
} ds4j_type_traits;

/* Initialise dispatch (idempotent, thread-safe). Called by engine open. */
void ds4j_quants_init(void);
/* Traits of a type, or NULL if the id is unknown. */
const ds4j_type_traits *ds4j_type_get(int32_t type);
/* Bytes of a row of n elements; -1 if n is not a multiple of the block size
 * or the type is unknown. Overflow-checked. */
int64_t ds4j_row_size(int32_t type, int64_t n);
/* "avx2" or "scalar": what ds4j_quants_init selected. */
const char *ds4j_quants_kernel_name(void);

/* Scalar conversions used everywhere. */
float ds4j_f16_to_f32(uint16_t h);
uint16_t ds4j_f32_to_f16(float f);   /* round to nearest even */
float ds4j_bf16_to_f32(uint16_t h);
uint16_t ds4j_f32_to_bf16(float f);  /* round to nearest even */

/*
 * Matrix drivers (decode and prefill). The activation is converted once per
 * matrix into the weight type's act_type with ds4j_quantize_act (a buffer of
 * ds4j_act_size bytes); every weight row is then dotted with it.
 * w points at row 0; rows are row_stride_bytes apart (>= the row size).
 * All return 0, or a negative DS4J_ERR_* code (bad type, length not a
 * multiple of the block size, too-small stride) with ds4j_last_error set.
 * They are single-threaded: callers parallelise by splitting rows.
 */
/* Bytes of one activation row for weights of this type; 0 if unsupported
 * or n_cols is not a multiple of the block size. */
size_t ds4j_act_size(int32_t weight_type, int64_t n_cols);
int ds4j_quantize_act(int32_t weight_type, const float *x, int64_t n, void *act_q);
/* out[r] = dot(row r, act) for r in [0, n_rows). */
int ds4j_matvec(int32_t type, const void *w, int64_t row_stride_bytes, int64_t n_rows, int64_t n_cols,
                const void *act_q, float *out);
/* out[t * out_stride_floats + r] = dot(row r, act row t); activation rows
 * are act_stride_bytes apart. Weight rows are visited in cache-sized tiles
 * and reused across all tokens. */
int ds4j_matmul(int32_t type, const void *w, int64_t row_stride_bytes, int64_t n_rows, int64_t n_cols,
                const void *act_q, int64_t act_stride_bytes, int64_t n_tokens, float *out,
                int64_t out_stride_floats);

#endif /* DS4J_QUANTS_H */
