/*
 * cuda_mm.cu — activation quantization and the matrix-product kernels of
 * the GPU backend (see cuda_mm.cuh). One warp computes one weight row for
 * up to NT activation rows at once, so a decode step (NT = 1) reads every
 * weight byte once and a prefill chunk reads it once per NT tokens. Block
 * sums are formed in integers exactly as quants.c's reference dots and
 * combined in the same float expression; only the order in which block
 * results are added differs from the CPU.
 */
#include "cuda_mm.cuh"

#include <cuda_fp16.h>
#include <string.h>

/* quants_impl.h pins its block sizes with C11 static asserts */
#define _Static_assert static_assert
extern "C" {
#include "quants.h"
#include "quants_impl.h"
#include "quants_iq_tables.h"
}

#define WARPS_PER_BLOCK 4

__device__ uint64_t d_iq2xxs_grid[256];

void cuda_mm_init_tables(void) { cudaMemcpyToSymbol(d_iq2xxs_grid, ds4j_iq2xxs_grid, sizeof ds4j_iq2xxs_grid); }

int cuda_act_kind(int type) {
    switch (type) {
    case DS4J_TYPE_F32: case DS4J_TYPE_F16: case DS4J_TYPE_BF16: return ACT_F32;
    case DS4J_TYPE_Q8_0: return ACT_Q8_0;
    default: return ACT_Q8_K;
    }
}

int cuda_type_supported(int type) {
    switch (type) {
    case DS4J_TYPE_F32: case DS4J_TYPE_F16: case DS4J_TYPE_BF16: case DS4J_TYPE_Q8_0:
    case DS4J_TYPE_Q2_K: case DS4J_TYPE_Q4_K: case DS4J_TYPE_IQ2_XXS:
        return 1;
    default:
        return 0;
    }
}

static int64_t align16(int64_t x) { return (x + 15) & ~(int64_t)15; }

int64_t cuda_act_row_bytes(int kind, int64_t n) {
    switch (kind) {
    case ACT_F32: return align16(n * 4);
    case ACT_Q8_0: return align16(n + (n / 32) * 4);
    default: return align16(n + (n / 256) * 4 + (n / 16) * 2);
    }
}

int64_t cuda_mat_bytes(int type, int64_t n_in, int64_t n_out) {
    if (type == DS4J_TYPE_Q8_0) return align16(n_out * n_in + n_out * (n_in / 32) * 2);
    return align16(ds4j_row_size(type, n_in) * n_out);
}

void cuda_pack_matrix(int type, const uint8_t *src, int64_t n_in, int64_t n_out, int64_t row_bytes, uint8_t *dst) {
    if (type != DS4J_TYPE_Q8_0) {
        int64_t rb = ds4j_row_size(type, n_in);
        for (int64_t r = 0; r < n_out; r++) memcpy(dst + r * rb, src + r * row_bytes, (size_t)rb);
        return;
    }
    int64_t nb = n_in / 32;
    int8_t *qs = (int8_t *)dst;
    uint16_t *sc = (uint16_t *)(dst + n_out * n_in);
    for (int64_t r = 0; r < n_out; r++) {
        const blk_q8_0 *b = (const blk_q8_0 *)(src + r * row_bytes);
        for (int64_t i = 0; i < nb; i++) {
            memcpy(qs + r * n_in + i * 32, b[i].qs, 32);
            sc[r * nb + i] = b[i].d;
        }
    }
}

/* ------------------------------------------------------ quantization */

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* quants.c q8_0_from_float: d = amax / 127 stored as f16, quants round(x / d) */
__global__ void k_quant_q8_0(const float *x, int64_t x_stride, int64_t n, int64_t groups, uint8_t *act,
                             int64_t row_bytes) {
    int64_t row = blockIdx.y; /* r * groups + g */
    int64_t r = row / groups, g = row % groups;
    const float *xr = x + r * x_stride + g * n;
    uint8_t *ar = act + row * row_bytes;
    int8_t *qs = (int8_t *)ar;
    float *ds = (float *)(ar + n);
    int lane = threadIdx.x & 31;
    int64_t nb = n / 32;
    for (int64_t b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; b < nb; b += gridDim.x * (blockDim.x / 32)) {
        float v = xr[b * 32 + lane];
        float amax = warp_max(fabsf(v));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        float q = roundf(v * id);
        qs[b * 32 + lane] = (int8_t)(q >= -128.0f && q <= 127.0f ? q : 0.0f);
        if (lane == 0) ds[b] = __half2float(__float2half_rn(d));
    }
}

/* quants.c q8_K_from_float: d = amax / 127, quants rint(x * 127 / amax),
 * bsums over 16; a zero or non-finite block is all zeros. */
__global__ void k_quant_q8_K(const float *x, int64_t x_stride, int64_t n, int64_t groups, uint8_t *act,
                             int64_t row_bytes) {
    int64_t row = blockIdx.y;
    int64_t r = row / groups, g = row % groups;
    const float *xr = x + r * x_stride + g * n;
    uint8_t *ar = act + row * row_bytes;
    int8_t *qs = (int8_t *)ar;
    int64_t nb = n / 256;
    float *ds = (float *)(ar + n);
    int16_t *bs = (int16_t *)(ar + n + nb * 4);
    int lane = threadIdx.x & 31;
    for (int64_t b = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; b < nb; b += gridDim.x * (blockDim.x / 32)) {
        float v[8];
        float amax = 0;
        for (int i = 0; i < 8; i++) {
            v[i] = xr[b * 256 + lane * 8 + i];
            amax = fmaxf(amax, fabsf(v[i]));
        }
        amax = warp_max(amax);
        int ok = amax > 0 && isfinite(amax);
        float id = ok ? 127.0f / amax : 0.0f;
        int s = 0;
        for (int i = 0; i < 8; i++) {
            int q = 0;
            if (ok) {
                float t = v[i] * id;
                q = (t > -1e9f && t < 1e9f) ? __float2int_rn(t) : (t >= 1e9f ? 127 : (t <= -1e9f ? -127 : 0));
                q = q > 127 ? 127 : q < -127 ? -127 : q;
            }
            qs[b * 256 + lane * 8 + i] = (int8_t)q;
            s += q;
        }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        if ((lane & 1) == 0) bs[b * 16 + lane / 2] = (int16_t)s;
        if (lane == 0) ds[b] = ok ? amax / 127.0f : 0.0f;
    }
}

__global__ void k_copy_act(const float *x, int64_t x_stride, int64_t n, int64_t groups, uint8_t *act,
                           int64_t row_bytes) {
    int64_t row = blockIdx.y;
    int64_t r = row / groups, g = row % groups;
    const float *xr = x + r * x_stride + g * n;
    float *ar = (float *)(act + row * row_bytes);
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) ar[i] = xr[i];
}

void cuda_quantize_act(int kind, const float *x, int64_t x_stride, int64_t n, int64_t rows, int64_t groups,
                       uint8_t *act, cudaStream_t st) {
    int64_t rb = cuda_act_row_bytes(kind, n);
    dim3 grid(1, (unsigned)(rows * groups));
    if (kind == ACT_F32) {
        grid.x = (unsigned)((n + 255) / 256 < 16 ? (n + 255) / 256 : 16);
        k_copy_act<<<grid, 256, 0, st>>>(x, x_stride, n, groups, act, rb);
    } else if (kind == ACT_Q8_0) {
        int64_t nb = n / 32;
        grid.x = (unsigned)((nb + 7) / 8 < 16 ? (nb + 7) / 8 : 16);
        k_quant_q8_0<<<grid, 256, 0, st>>>(x, x_stride, n, groups, act, rb);
    } else {
        int64_t nb = n / 256;
        grid.x = (unsigned)((nb + 7) / 8 < 16 ? (nb + 7) / 8 : 16);
        if (grid.x == 0) grid.x = 1;
        k_quant_q8_K<<<grid, 256, 0, st>>>(x, x_stride, n, groups, act, rb);
    }
}

/* ------------------------------------------------------ row dots */

__device__ __forceinline__ int ld_i32_2(const uint8_t *p) { /* 2-byte aligned */
    const uint16_t *h = (const uint16_t *)p;
    return (int)((uint32_t)h[0] | ((uint32_t)h[1] << 16));
}

/* Q8_0: lane c covers 16 weights; the two lanes of a 32-block add their
 * integer sums before the scale product, as the CPU's per-block dot. */
template <int NT>
__device__ __forceinline__ void dot_q8_0(const uint8_t *w, int64_t n_out, int64_t r, int64_t n_in,
                                         const uint8_t *const *a, float *acc, int c_start, int c_step) {
    const int lane = threadIdx.x & 31;
    const int8_t *wq = (const int8_t *)w + r * n_in;
    const __half *ws = (const __half *)(w + n_out * n_in) + r * (n_in / 32);
    int64_t nch = n_in / 16;
    for (int64_t c0 = c_start; c0 < nch; c0 += c_step) {
        int64_t c = c0 + lane;
        bool ok = c < nch;
        int4 wv = ok ? *(const int4 *)(wq + c * 16) : make_int4(0, 0, 0, 0);
        float dw = ok ? __half2float(ws[c / 2]) : 0.0f;
#pragma unroll
        for (int t = 0; t < NT; t++) {
            int s = 0;
            float da = 0;
            if (ok) {
                int4 av = *(const int4 *)(a[t] + c * 16);
                s = __dp4a(wv.x, av.x, s);
                s = __dp4a(wv.y, av.y, s);
                s = __dp4a(wv.z, av.z, s);
                s = __dp4a(wv.w, av.w, s);
                da = ((const float *)(a[t] + n_in))[c / 2];
            }
            s += __shfl_xor_sync(0xffffffffu, s, 1);
            if (ok && (lane & 1) == 0) acc[t] += (dw * da) * (float)s;
        }
    }
}

/* k- and i-quants: lane c covers one 32-element sub-block of a 256 block;
 * the 8 lanes of a block reduce their integer sums and lane j == 0 forms
 * the block's float term as the CPU reference does. */
template <int TYPE>
__device__ __forceinline__ void kq_sub(const uint8_t *blk, int j, const int8_t *aq, const int16_t *bsums, int &sumi,
                                       int &summ, const uint64_t *tab) {
    if (TYPE == DS4J_TYPE_Q2_K) {
        const uint8_t *scales = blk, *qs = blk + 16;
        int h = j / 4, sh = 2 * (j % 4);
        const uint32_t *q32 = (const uint32_t *)(qs + 32 * h);
        const int *a32 = (const int *)(aq + 32 * j);
        int acc0 = 0, acc1 = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) acc0 = __dp4a((int)((q32[k] >> sh) & 0x03030303u), a32[k], acc0);
#pragma unroll
        for (int k = 4; k < 8; k++) acc1 = __dp4a((int)((q32[k] >> sh) & 0x03030303u), a32[k], acc1);
        uint8_t s0 = scales[2 * j], s1 = scales[2 * j + 1];
        sumi = (s0 & 0x0F) * acc0 + (s1 & 0x0F) * acc1;
        summ = (s0 >> 4) * bsums[2 * j] + (s1 >> 4) * bsums[2 * j + 1];
    } else if (TYPE == DS4J_TYPE_Q4_K) {
        const uint8_t *sc12 = blk + 4, *qs = blk + 16;
        int sc, m;
        if (j < 4) {
            sc = sc12[j] & 63;
            m = sc12[j + 4] & 63;
        } else {
            sc = (sc12[j + 4] & 0x0F) | ((sc12[j - 4] >> 6) << 4);
            m = (sc12[j + 4] >> 4) | ((sc12[j] >> 6) << 4);
        }
        const uint32_t *q32 = (const uint32_t *)(qs + 32 * (j / 2));
        int sh = 4 * (j & 1);
        const int *a32 = (const int *)(aq + 32 * j);
        int acc = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) acc = __dp4a((int)((q32[k] >> sh) & 0x0F0F0F0Fu), a32[k], acc);
        sumi = sc * acc;
        summ = m * (bsums[2 * j] + bsums[2 * j + 1]);
    } else { /* IQ2_XXS */
        const uint8_t *qs = blk + 2 + 8 * j;
        uint32_t w0 = (uint32_t)ld_i32_2(qs), w1 = (uint32_t)ld_i32_2(qs + 4);
        const int *a32 = (const int *)(aq + 32 * j);
        int acc = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            uint64_t grid = tab[(w0 >> (8 * k)) & 0xFF];
            uint32_t s7 = (w1 >> (7 * k)) & 127;
            uint32_t signs = s7 | ((__popc(s7) & 1) << 7);
            uint32_t lo = (uint32_t)grid, hi = (uint32_t)(grid >> 32);
            uint32_t mlo = ((signs & 1) ? 0xFFu : 0) | ((signs & 2) ? 0xFF00u : 0) | ((signs & 4) ? 0xFF0000u : 0) |
                           ((signs & 8) ? 0xFF000000u : 0);
            uint32_t mhi = ((signs & 16) ? 0xFFu : 0) | ((signs & 32) ? 0xFF00u : 0) |
                           ((signs & 64) ? 0xFF0000u : 0) | ((signs & 128) ? 0xFF000000u : 0);
            int vlo = (int)__vsub4(lo ^ mlo, mlo), vhi = (int)__vsub4(hi ^ mhi, mhi);
            acc = __dp4a(vlo, a32[2 * k], acc);
            acc = __dp4a(vhi, a32[2 * k + 1], acc);
        }
        sumi = (int)(2 * (w1 >> 28) + 1) * acc;
        summ = 0;
    }
}

template <int TYPE, int NT>
__device__ __forceinline__ void dot_kq(const uint8_t *w, int64_t row_bytes, int64_t r, int64_t n_in,
                                       const uint8_t *const *a, float *acc, int c_start, int c_step,
                                       const uint64_t *tab) {
    const int lane = threadIdx.x & 31;
    const int bsz = TYPE == DS4J_TYPE_Q2_K ? 84 : TYPE == DS4J_TYPE_Q4_K ? 144 : 66;
    const uint8_t *wr = w + r * row_bytes;
    int64_t nsub = n_in / 32, nb = n_in / 256;
    for (int64_t c0 = c_start; c0 < nsub; c0 += c_step) {
        int64_t c = c0 + lane;
        bool ok = c < nsub; /* whole 8-lane groups are valid or not */
        int64_t b = c / 8;
        int j = (int)(c % 8);
        const uint8_t *blk = wr + b * bsz;
        float dw = 0, dmin = 0;
        if (ok && j == 0) {
            if (TYPE == DS4J_TYPE_Q2_K) {
                dw = __half2float(*(const __half *)(blk + 80));
                dmin = __half2float(*(const __half *)(blk + 82));
            } else if (TYPE == DS4J_TYPE_Q4_K) {
                dw = __half2float(*(const __half *)blk);
                dmin = __half2float(*(const __half *)(blk + 2));
            } else {
                dw = __half2float(*(const __half *)blk);
            }
        }
#pragma unroll
        for (int t = 0; t < NT; t++) {
            int sumi = 0, summ = 0;
            const int8_t *aq = (const int8_t *)a[t] + b * 256;
            const int16_t *bs = (const int16_t *)(a[t] + n_in + nb * 4) + b * 16;
            if (ok) kq_sub<TYPE>(blk, j, aq, bs, sumi, summ, tab);
            for (int o = 1; o < 8; o <<= 1) {
                sumi += __shfl_xor_sync(0xffffffffu, sumi, o);
                summ += __shfl_xor_sync(0xffffffffu, summ, o);
            }
            if (ok && j == 0) {
                float da = ((const float *)(a[t] + n_in))[b];
                if (TYPE == DS4J_TYPE_IQ2_XXS) acc[t] += da * dw * (float)sumi * 0.125f;
                else acc[t] += da * (dw * (float)sumi - dmin * (float)summ);
            }
        }
    }
}

template <int TYPE, int NT>
__device__ __forceinline__ void dot_float(const uint8_t *w, int64_t r, int64_t n_in, const uint8_t *const *a,
                                          float *acc, int c_start, int c_step, int vec) {
    const int lane = threadIdx.x & 31;
    if (vec) {
        /* 8 elements a lane per step: one 16-byte load of f16/bf16 weights
         * (two for f32) and two of activations */
        int64_t nch = n_in / 8;
        for (int64_t c = c_start + lane; c < nch; c += c_step) {
            float wv[8];
            if (TYPE == DS4J_TYPE_F32) {
                const float4 *p = (const float4 *)((const float *)w + r * n_in + c * 8);
                float4 x0 = p[0], x1 = p[1];
                wv[0] = x0.x; wv[1] = x0.y; wv[2] = x0.z; wv[3] = x0.w;
                wv[4] = x1.x; wv[5] = x1.y; wv[6] = x1.z; wv[7] = x1.w;
            } else {
                uint4 u = *(const uint4 *)((const uint16_t *)w + r * n_in + c * 8);
                uint32_t q[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    uint16_t lo = (uint16_t)(q[k] & 0xFFFF), hi = (uint16_t)(q[k] >> 16);
                    if (TYPE == DS4J_TYPE_F16) {
                        wv[2 * k] = __half2float(__ushort_as_half(lo));
                        wv[2 * k + 1] = __half2float(__ushort_as_half(hi));
                    } else {
                        wv[2 * k] = __uint_as_float((uint32_t)lo << 16);
                        wv[2 * k + 1] = __uint_as_float((uint32_t)hi << 16);
                    }
                }
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                const float4 *ap = (const float4 *)((const float *)a[t] + c * 8);
                float4 a0 = ap[0], a1 = ap[1];
                float s = acc[t];
                s = fmaf(wv[0], a0.x, s); s = fmaf(wv[1], a0.y, s); s = fmaf(wv[2], a0.z, s); s = fmaf(wv[3], a0.w, s);
                s = fmaf(wv[4], a1.x, s); s = fmaf(wv[5], a1.y, s); s = fmaf(wv[6], a1.z, s); s = fmaf(wv[7], a1.w, s);
                acc[t] = s;
            }
        }
        return;
    }
    for (int64_t i = c_start + lane; i < n_in; i += c_step) {
        float wv;
        if (TYPE == DS4J_TYPE_F32) wv = ((const float *)w)[r * n_in + i];
        else if (TYPE == DS4J_TYPE_F16) wv = __half2float(((const __half *)w)[r * n_in + i]);
        else wv = __uint_as_float((uint32_t)((const uint16_t *)w)[r * n_in + i] << 16);
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] = fmaf(wv, ((const float *)a[t])[i], acc[t]);
    }
}

struct mm_params {
    const uint8_t *w;
    int64_t mat_bytes, row_bytes, n_in, n_out, mat;
    const uint8_t *act;
    int64_t act_tok, act_grp, rows_per_group;
    float *y;
    int64_t y_stride, S;
    mm_groups g;
    int grouped;
    int vec; /* float weights: 8-element vector loads are aligned */
};

/* ROWBLOCK = 0: one warp per row, WARPS_PER_BLOCK rows per block (tall
 * matrices). ROWBLOCK = 1: one block of ROW_WARPS warps per row, each warp a
 * strided share of the row, partials added in warp order (short, wide
 * matrices such as the hyper-connection mixers, where one warp per row
 * would leave the GPU idle). */
#define ROW_WARPS 8
template <int TYPE, int NT, int ROWBLOCK>
__global__ void __launch_bounds__(ROWBLOCK ? ROW_WARPS * 32 : WARPS_PER_BLOCK * 32) k_matmul(mm_params p) {
    /* the IQ2_XXS lattice in shared memory: its lookups are data-dependent */
    __shared__ uint64_t tab[TYPE == DS4J_TYPE_IQ2_XXS ? 256 : 1];
    if (TYPE == DS4J_TYPE_IQ2_XXS) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) tab[i] = d_iq2xxs_grid[i];
        __syncthreads();
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
    int64_t r = ROWBLOCK ? (int64_t)blockIdx.x : (int64_t)blockIdx.x * WARPS_PER_BLOCK + warp;
    if (r >= p.n_out) return;
    const int nw = ROWBLOCK ? ROW_WARPS : 1;
    const int c_start = ROWBLOCK ? warp * 32 : 0, c_step = 32 * nw;
    __shared__ float part[ROWBLOCK ? ROW_WARPS * NT : 1];
    int64_t s_begin, s_end, mat = p.mat;
    if (p.grouped) {
        int gi = blockIdx.y;
        if (gi >= *p.g.n_groups) return;
        s_begin = p.g.first[gi];
        s_end = p.g.first[gi + 1];
        mat = p.g.expert[gi] - p.g.expert_base;
    } else {
        s_begin = (int64_t)blockIdx.y * NT;
        s_end = s_begin + NT < p.S ? s_begin + NT : p.S;
    }
    const uint8_t *w = p.w + mat * p.mat_bytes;
    int64_t grp = r / p.rows_per_group;
    for (int64_t s0 = s_begin; s0 < s_end; s0 += NT) {
        const uint8_t *a[NT];
        float acc[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) {
            int64_t s = s0 + t < s_end ? s0 + t : s_end - 1; /* duplicates are computed, not stored */
            int64_t arow = p.grouped && p.g.slot_tok ? p.g.slot_tok[s] : s;
            a[t] = p.act + arow * p.act_tok + grp * p.act_grp;
            acc[t] = 0.0f;
        }
        if (TYPE == DS4J_TYPE_Q8_0) dot_q8_0<NT>(w, p.n_out, r, p.n_in, a, acc, c_start, c_step);
        else if (TYPE == DS4J_TYPE_F32 || TYPE == DS4J_TYPE_F16 || TYPE == DS4J_TYPE_BF16)
            dot_float<TYPE, NT>(w, r, p.n_in, a, acc, c_start, c_step, p.vec);
        else dot_kq<TYPE, NT>(w, p.row_bytes, r, p.n_in, a, acc, c_start, c_step, tab);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float v = warp_sum(acc[t]);
            if (!ROWBLOCK) {
                if (lane == 0 && s0 + t < s_end) p.y[(s0 + t) * p.y_stride + r] = v;
            } else if (lane == 0) {
                part[warp * NT + t] = v;
            }
        }
        if (ROWBLOCK) {
            __syncthreads();
            if (threadIdx.x < NT && s0 + threadIdx.x < s_end) {
                float v = 0;
                for (int k = 0; k < ROW_WARPS; k++) v += part[k * NT + threadIdx.x];
                p.y[(s0 + threadIdx.x) * p.y_stride + r] = v;
            }
            __syncthreads();
        }
    }
}

template <int TYPE, int RB>
static void launch_nt(const mm_params &p, int nt, dim3 grid, cudaStream_t st) {
    const int th = RB ? ROW_WARPS * 32 : WARPS_PER_BLOCK * 32;
    switch (nt) {
    case 1: k_matmul<TYPE, 1, RB><<<grid, th, 0, st>>>(p); break;
    case 2: k_matmul<TYPE, 2, RB><<<grid, th, 0, st>>>(p); break;
    case 4: k_matmul<TYPE, 4, RB><<<grid, th, 0, st>>>(p); break;
    default: k_matmul<TYPE, 8, RB><<<grid, th, 0, st>>>(p); break;
    }
}

template <int TYPE>
static void launch_type(const mm_params &p, int nt, dim3 grid, int rowblock, cudaStream_t st) {
    if (rowblock) launch_nt<TYPE, 1>(p, nt, grid, st);
    else launch_nt<TYPE, 0>(p, nt, grid, st);
}

void cuda_matmul(const dmat &w, int64_t mat, const uint8_t *act, int64_t act_tok, int64_t act_grp,
                 int64_t rows_per_group, int64_t S, float *y, int64_t y_stride, const mm_groups *groups,
                 cudaStream_t st) {
    mm_params p;
    p.w = w.d;
    p.mat_bytes = w.mat_bytes;
    p.row_bytes = w.row_bytes;
    p.n_in = w.n_in;
    p.n_out = w.n_out;
    p.mat = mat;
    p.act = act;
    p.act_tok = act_tok;
    p.act_grp = act_grp;
    p.rows_per_group = rows_per_group > 0 ? rows_per_group : w.n_out;
    p.y = y;
    p.y_stride = y_stride;
    p.S = S;
    p.grouped = groups != nullptr;
    p.vec = w.n_in % 8 == 0 && act_tok % 16 == 0 && act_grp % 16 == 0 && ((uintptr_t)act & 15) == 0 &&
            (w.mat_bytes & 15) == 0 && ((uintptr_t)w.d & 15) == 0;
    if (groups) p.g = *groups;
    int nt = S <= 1 ? 1 : S <= 2 ? 2 : S <= 4 ? 4 : 8;
    /* slots per expert: about S / groups (one per expert in a decode step) */
    if (groups) nt = S <= 16 ? 1 : S <= 128 ? 2 : S <= 512 ? 4 : 8;
    /* fewer than ~1000 rows (and rows long enough to share): a block per row */
    int rowblock = !groups && w.n_out < 1024 && w.n_in >= 1024;
    dim3 grid((unsigned)(rowblock ? w.n_out : (w.n_out + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK),
              groups ? (unsigned)groups->max_groups : (unsigned)((S + nt - 1) / nt));
    switch (w.type) {
    case DS4J_TYPE_F32: launch_type<DS4J_TYPE_F32>(p, nt, grid, rowblock, st); break;
    case DS4J_TYPE_F16: launch_type<DS4J_TYPE_F16>(p, nt, grid, rowblock, st); break;
    case DS4J_TYPE_BF16: launch_type<DS4J_TYPE_BF16>(p, nt, grid, rowblock, st); break;
    case DS4J_TYPE_Q8_0: launch_type<DS4J_TYPE_Q8_0>(p, nt, grid, rowblock, st); break;
    case DS4J_TYPE_Q2_K: launch_type<DS4J_TYPE_Q2_K>(p, nt, grid, rowblock, st); break;
    case DS4J_TYPE_Q4_K: launch_type<DS4J_TYPE_Q4_K>(p, nt, grid, rowblock, st); break;
    case DS4J_TYPE_IQ2_XXS: launch_type<DS4J_TYPE_IQ2_XXS>(p, nt, grid, rowblock, st); break;
    default: break; /* refused at upload */
    }
}
