/*
 * cuda_mm.cuh — matrix products of the GPU backend: weights as uploaded
 * (GGUF blocks, Q8_0 repacked into aligned quants + scales), activations
 * quantized on the device exactly as quants.c quantizes them on the CPU
 * (Q8_0 for Q8_0 weights, Q8_K for the k- and i-quants, f32 for float
 * weights), integer dot products per block (dp4a) and the same float
 * combination of block sums as the CPU reference kernels.
 */
#ifndef DS4J_CUDA_MM_CUH
#define DS4J_CUDA_MM_CUH

#include <cuda_runtime.h>
#include <stdint.h>

/* A weight tensor in device memory: n_mat stacked matrices of n_out rows
 * of n_in elements. Q8_0 matrices are stored as [n_out][n_in] int8 quants
 * followed by [n_out][n_in/32] f16 scales (aligned 16-byte loads); other
 * types keep their GGUF rows. */
struct dmat {
    int type = -1;
    int64_t n_in = 0, n_out = 0, n_mat = 0;
    uint8_t *d = nullptr;
    int64_t mat_bytes = 0; /* bytes of one matrix */
    int64_t row_bytes = 0; /* GGUF row bytes (not Q8_0) */
};

/* Which activation format a weight type multiplies with. */
enum { ACT_F32 = 0, ACT_Q8_0 = 1, ACT_Q8_K = 2 };
int cuda_act_kind(int type);
/* Bytes of one quantized activation row of n elements (16-aligned). */
int64_t cuda_act_row_bytes(int kind, int64_t n);
/* 1 if the GPU backend multiplies this weight type. */
int cuda_type_supported(int type);
/* Device bytes of a matrix of this type (as uploaded). */
int64_t cuda_mat_bytes(int type, int64_t n_in, int64_t n_out);
/* Convert host GGUF rows of one matrix into the device layout (dst is a
 * host staging buffer of cuda_mat_bytes). */
void cuda_pack_matrix(int type, const uint8_t *src, int64_t n_in, int64_t n_out, int64_t row_bytes, uint8_t *dst);

/* Quantize rows of x (rows of n floats, x_stride floats apart; `groups`
 * consecutive slices of n per row, each its own activation row) into act
 * (row r * groups + g at act + (r * groups + g) * row_bytes). For ACT_F32
 * the floats are copied. */
void cuda_quantize_act(int kind, const float *x, int64_t x_stride, int64_t n, int64_t rows, int64_t groups,
                       uint8_t *act, cudaStream_t st);

/* Expert grouping of the routed MoE products: block y handles group y
 * (one expert's slots [first[y], first[y] + count[y])). */
struct mm_groups {
    const int32_t *n_groups = nullptr; /* device scalar */
    const int32_t *expert = nullptr;   /* [groups] global expert id */
    const int32_t *first = nullptr;    /* [groups + 1] */
    const int32_t *slot_tok = nullptr; /* [slots] activation row of a slot (NULL: the slot itself) */
    int64_t expert_base = 0;          /* device matrix = expert - expert_base */
    int max_groups = 0;
};

/*
 * y[t * y_stride + r] = W_mat[r] . act_row(t, g(r)) for t < S, where the
 * activation row is act + t * act_tok + g * act_grp with g = r / rows_per_group
 * (grouped output projection; rows_per_group = n_out for a plain product).
 * With groups, t runs over slots and the matrix is the group's expert.
 */
void cuda_matmul(const dmat &w, int64_t mat, const uint8_t *act, int64_t act_tok, int64_t act_grp,
                 int64_t rows_per_group, int64_t S, float *y, int64_t y_stride, const mm_groups *groups,
                 cudaStream_t st);

void cuda_mm_init_tables(void);

#endif
