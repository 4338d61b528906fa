/*
 * cuda_ops.cu — kernels for every step of the forward pass other than the
 * matrix products (see cuda_ops.cuh). Each mirrors the CPU function named
 * in its comment; reductions that the CPU does in double are done in
 * double here too. The indexer scores repeat the CPU's exact float
 * operation order (they decide a discrete top-k, where a last-bit
 * difference could pick another entry); elsewhere only summation order
 * differs.
 */
#include "cuda_ops.cuh"

#include <cuda_fp16.h>
#include <math.h>

#define OPS_ROPE_MAX_PAIRS_DEV 256 /* ops.h OPS_ROPE_MAX_PAIRS */

extern "C" {
#include "quants.h"
}

/* --------------------------------------------------------------- helpers */

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_sum_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the block (blockDim a multiple of 32, <= 1024); all threads get it. */
__device__ double block_sum_d(double v) {
    __shared__ double part[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) part[w] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < nw; i++) t += part[i];
    return t;
}

__device__ __forceinline__ void rope_cs(const rope_tab &r, int64_t p, int i, float *c, float *s) {
    float a = r.inv_freq[i] * (float)p; /* ops_rope_cs: float angle, double cos/sin */
    *c = (float)cos((double)a);
    *s = (float)sin((double)a);
}

/* ops_rope_apply on the trailing dr channels of x[0..dx) */
__device__ __forceinline__ void rope_pair(float *x, int64_t dx, int dr, int i, float c, float s) {
    float *t = x + (dx - dr);
    float a = t[2 * i], b = t[2 * i + 1];
    t[2 * i] = a * c - b * s;
    t[2 * i + 1] = b * c + a * s;
}

__device__ __forceinline__ float sigmoidf_(float z) { return 1.0f / (1.0f + expf(-z)); }

/* Row s of a step: its sequence k, that sequence's first position and its
 * row's position. */
struct row_at {
    int k;
    int64_t pos0, p, r0, n;
};
__device__ __forceinline__ row_at seg_row(const seg_tab &sg, int64_t s) {
    row_at r;
    r.k = sg.row_seg[s];
    r.pos0 = sg.pos0[r.k];
    r.r0 = sg.r0[r.k];
    r.n = sg.n[r.k];
    r.p = r.pos0 + (s - r.r0);
    return r;
}

/* ----------------------------------------------------------- embedding */

__global__ void k_embed(const int32_t *tok, int type, const uint8_t *w, int64_t n_vocab, int64_t H, int hc, float *X) {
    int64_t s = blockIdx.x;
    int64_t t = tok[s];
    float *dst = X + s * hc * H;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
        float v;
        if (type == DS4J_TYPE_F32) v = ((const float *)w)[t * H + i];
        else if (type == DS4J_TYPE_F16) v = __half2float(((const __half *)w)[t * H + i]);
        else if (type == DS4J_TYPE_BF16) v = __uint_as_float((uint32_t)((const uint16_t *)w)[t * H + i] << 16);
        else { /* Q8_0 as uploaded: quants then f16 scales */
            int8_t q = ((const int8_t *)w)[t * H + i];
            float d = __half2float(((const __half *)(w + n_vocab * H))[t * (H / 32) + i / 32]);
            v = q * d;
        }
        for (int j = 0; j < hc; j++) dst[j * H + i] = v;
    }
}

void op_embed(const int32_t *tok, int64_t S, int type, const uint8_t *w, int64_t n_vocab, int64_t H, int hc, float *X,
              cudaStream_t st) {
    k_embed<<<(unsigned)S, 256, 0, st>>>(tok, type, w, n_vocab, H, hc, X);
}

/* ------------------------------------------------------------- RMSNorm */

/* One block per row. Rows of up to 16 float4 per thread (every row the
 * forward normalises, 16384 values with 1024 threads) stay in registers
 * between the sum of squares and the scaling: one read of the row, and the
 * loads of a thread are independent, so their latencies overlap. */
__global__ void k_rmsnorm(const float *x, int64_t xs, float *y, int64_t ys, const float *w, int64_t n, float eps) {
    const float *xr = x + blockIdx.x * xs;
    float *yr = y + blockIdx.x * ys;
    int64_t n4 = n / 4;
    bool vec = (n & 3) == 0 && n4 <= 4 * (int64_t)blockDim.x &&
               (((uintptr_t)xr | (uintptr_t)yr | (uintptr_t)w) & 15) == 0;
    if (vec) {
        float4 r[4];
        double ss = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int64_t i = threadIdx.x + (int64_t)j * blockDim.x;
            if (i < n4) r[j] = ((const float4 *)xr)[i];
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int64_t i = threadIdx.x + (int64_t)j * blockDim.x;
            if (i < n4) ss += (double)r[j].x * r[j].x + (double)r[j].y * r[j].y + (double)r[j].z * r[j].z +
                              (double)r[j].w * r[j].w;
        }
        ss = block_sum_d(ss);
        float inv = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int64_t i = threadIdx.x + (int64_t)j * blockDim.x;
            if (i >= n4) continue;
            float4 v = r[j], o;
            if (w) {
                float4 g = ((const float4 *)w)[i];
                o = make_float4(g.x * (v.x * inv), g.y * (v.y * inv), g.z * (v.z * inv), g.w * (v.w * inv));
            } else {
                o = make_float4(v.x * inv, v.y * inv, v.z * inv, v.w * inv);
            }
            ((float4 *)yr)[i] = o;
        }
        return;
    }
    double ss = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += (double)xr[i] * xr[i];
    ss = block_sum_d(ss);
    float inv = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = w ? w[i] * (xr[i] * inv) : xr[i] * inv;
}

void op_rmsnorm(const float *x, int64_t x_stride, float *y, int64_t y_stride, const float *w, int64_t n, int64_t rows,
                float eps, cudaStream_t st) {
    int th = n >= 4096 ? 1024 : n >= 1024 ? 512 : n >= 256 ? 256 : 64;
    k_rmsnorm<<<(unsigned)rows, th, 0, st>>>(x, x_stride, y, y_stride, w, n, eps);
}

/* ops_hc_split, then x = sum_j pre[j] X[j] (hc_pre's combination). The
 * combination is spread over H/256 blocks per token (one block serialised
 * its loads: 28 us of a decode step); every block derives pre (hc sigmoids)
 * itself, and block 0 also writes pre, post and the Sinkhorn-normalised comb.
 * For the Sinkhorn one warp holds the hc x hc matrix (hc * hc <= 32, checked
 * at open), a lane an element, and every row / column sum is read from the
 * other lanes in the CPU's order (so the result is the CPU's to the last bit
 * where expf agrees). */
__global__ void k_hc_split(const float *mix, const float *scale, const float *base, int hc, int iters, float hc_eps,
                           float *pre_o, float *post_o, float *comb_o, const float *X, float *x, int64_t H) {
    __shared__ float pre[32];
    int64_t s = blockIdx.y;
    int mx = (2 + hc) * hc;
    const float *m = mix + s * mx;
    if (threadIdx.x < hc) pre[threadIdx.x] = sigmoidf_(m[threadIdx.x] * scale[0] + base[threadIdx.x]) + hc_eps;
    __syncthreads();
    const float *Xs = X + s * hc * H;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < H) {
        float acc = 0;
        for (int j = 0; j < hc; j++) acc += pre[j] * Xs[j * H + i];
        x[s * H + i] = acc;
    }
    if (blockIdx.x != 0 || threadIdx.x >= 32) return;
    const float *cm = m + 2 * hc, *cb = base + 2 * hc;
    int L = threadIdx.x, n = hc * hc, r = L / hc, c = L % hc;
    bool ok = L < n;
    if (L < hc) {
        pre_o[s * hc + L] = pre[L];
        post_o[s * hc + L] = 2.0f * sigmoidf_(m[hc + L] * scale[1] + base[hc + L]);
    }
    float v = ok ? cm[L] * scale[2] + cb[L] : 0.0f;
    /* softmax of row r (ops_softmax: max, expf, double sum in order) */
    float mxv = -INFINITY;
    for (int k = 0; k < hc; k++) mxv = fmaxf(mxv, __shfl_sync(0xffffffffu, v, (r * hc + k) & 31));
    float e = expf(v - mxv);
    double sum = 0;
    for (int k = 0; k < hc; k++) sum += __shfl_sync(0xffffffffu, e, (r * hc + k) & 31);
    v = e * (float)(1.0 / sum) + hc_eps;
    /* column normalisation, then (iters - 1) x (rows, columns) */
    for (int it = 0; it < iters; it++) {
        if (it > 0) {
            float t = 0;
            for (int k = 0; k < hc; k++) t += __shfl_sync(0xffffffffu, v, (r * hc + k) & 31);
            v /= t + hc_eps;
        }
        float t = 0;
        for (int k = 0; k < hc; k++) t += __shfl_sync(0xffffffffu, v, (k * hc + c) & 31);
        v /= t + hc_eps;
    }
    if (ok) comb_o[s * n + L] = v;
}

void op_hc_split(const float *mix, const float *scale, const float *base, int hc, int iters, float hc_eps,
                 float *pre, float *post, float *comb, const float *X, float *x, int64_t H, int64_t S,
                 cudaStream_t st) {
    dim3 grid((unsigned)((H + 255) / 256), (unsigned)S);
    k_hc_split<<<grid, 256, 0, st>>>(mix, scale, base, hc, iters, hc_eps, pre, post, comb, X, x, H);
}

/* hc_post: X'[c] = post[c] * out + sum_r comb[r][c] X[r], out = a (+ b). */
__global__ void k_hc_post(float *X, const float *post, const float *comb, const float *a, const float *b, int hc,
                          int64_t H) {
    int64_t s = blockIdx.y;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= H) return;
    float *Xs = X + s * hc * H;
    const float *P = post + s * hc, *C = comb + s * hc * hc;
    float out = a[s * H + i];
    if (b) out += b[s * H + i];
    float old[16], nw[16];
    for (int r = 0; r < hc; r++) old[r] = Xs[r * H + i];
    for (int c = 0; c < hc; c++) {
        float d = P[c] * out;
        for (int r = 0; r < hc; r++) d += C[r * hc + c] * old[r];
        nw[c] = d;
    }
    for (int c = 0; c < hc; c++) Xs[c * H + i] = nw[c];
}

void op_hc_post(float *X, const float *post, const float *comb, const float *a, const float *b, int hc, int64_t H,
                int64_t S, cudaStream_t st) {
    dim3 grid((unsigned)((H + 255) / 256), (unsigned)S);
    k_hc_post<<<grid, 256, 0, st>>>(X, post, comb, a, b, hc, H);
}

/* The head's mixing (dsv4_forward's tail): pre = sigmoid(mix*scale+base)+eps. */
__global__ void k_out_hc(const float *mix, const float *scale, const float *base, int hc, float hc_eps, const float *X,
                         float *x, int64_t H) {
    int64_t s = blockIdx.y;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= H) return;
    const float *m = mix + s * hc, *Xs = X + s * hc * H;
    float acc = 0;
    for (int j = 0; j < hc; j++) {
        float pre = sigmoidf_(m[j] * scale[0] + base[j]) + hc_eps;
        acc += pre * Xs[j * H + i];
    }
    x[s * H + i] = acc;
}

void op_out_hc(const float *mix, const float *scale, const float *base, int hc, float hc_eps, const float *X,
               float *x, int64_t H, int64_t S, cudaStream_t st) {
    dim3 grid((unsigned)((H + 255) / 256), (unsigned)S);
    k_out_hc<<<grid, 256, 0, st>>>(mix, scale, base, hc, hc_eps, X, x, H);
}

/* ---------------------------------------------------------------- RoPE */

__global__ void k_rope_qkv(seg_tab sg, float *q, int64_t nh, int64_t D, float *kv, float *qI, float *wI,
                           int64_t nI, int64_t DI, rope_tab rope) {
    __shared__ float cs[OPS_ROPE_MAX_PAIRS_DEV], sn[OPS_ROPE_MAX_PAIRS_DEV];
    int64_t s = blockIdx.x;
    int64_t p = seg_row(sg, s).p;
    int np = rope.dr / 2;
    for (int i = threadIdx.x; i < np; i += blockDim.x) rope_cs(rope, p, i, &cs[i], &sn[i]);
    __syncthreads();
    for (int64_t j = threadIdx.x; j < (nh + 1) * np; j += blockDim.x) {
        int64_t h = j / np;
        int i = (int)(j % np);
        float *x = h < nh ? q + (s * nh + h) * D : kv + s * D;
        rope_pair(x, D, rope.dr, i, cs[i], sn[i]);
    }
    if (qI) {
        for (int64_t j = threadIdx.x; j < nI * np; j += blockDim.x) {
            int64_t h = j / np;
            int i = (int)(j % np);
            rope_pair(qI + (s * nI + h) * DI, DI, rope.dr, i, cs[i], sn[i]);
        }
        float ws = (float)(1.0 / sqrt((double)nI));
        for (int64_t h = threadIdx.x; h < nI; h += blockDim.x) wI[s * nI + h] *= ws;
    }
}

void op_rope_qkv(const seg_tab &sg, int64_t S, float *q, int64_t nh, int64_t D, float *kv, float *qI, float *wI,
                 int64_t nI, int64_t DI, rope_tab rope, cudaStream_t st) {
    k_rope_qkv<<<(unsigned)S, 256, 0, st>>>(sg, q, nh, D, kv, qI, wI, nI, DI, rope);
}

/* ---------------------------------------------------------- compressor */

/* Projection c of position t of sequence k (first position pos0, first
 * row r0) as comp_push saw it: from this step's rows, from the pending
 * window (same window as pos0), or from the previous window's Ca half
 * (prev_*, c < dout). g includes ape. */
__device__ __forceinline__ void comp_val(const comp_args &a, int k, int64_t pos0, int64_t r0, int64_t t, int64_t c,
                                         float *kv, float *g) {
    if (t >= pos0) {
        int64_t s = r0 + t - pos0;
        *kv = a.ckv[s * a.cw + c];
        *g = a.cg[s * a.cw + c] + a.ape[(t % a.r) * a.cw + c];
    } else if (t / a.r == pos0 / a.r) {
        *kv = a.pend_kv[k][(t % a.r) * a.cw + c];
        *g = a.pend_g[k][(t % a.r) * a.cw + c];
    } else {
        *kv = a.prev_kv[k][(t % a.r) * a.dout + c];
        *g = a.prev_g[k][(t % a.r) * a.dout + c];
    }
}

/* comp_push's emission for every window that completes in the step:
 * block (x, k) is sequence k's x-th window from its first position. */
__global__ void k_comp_emit(seg_tab sg, comp_args a) {
    extern __shared__ float ent[]; /* [dout] */
    int k = blockIdx.y;
    int64_t pos0 = sg.pos0[k], r0 = sg.r0[k], S = sg.n[k];
    int64_t w = pos0 / a.r + blockIdx.x;
    if ((w + 1) * a.r > pos0 + S) return;
    int64_t off = a.overlap ? a.dout : 0;
    int has_prev = a.overlap && w > 0;
    for (int64_t ch = threadIdx.x; ch < a.dout; ch += blockDim.x) {
        float mxv = -INFINITY, kv, g;
        if (has_prev)
            for (int64_t s = 0; s < a.r; s++) { comp_val(a, k, pos0, r0, (w - 1) * a.r + s, ch, &kv, &g); mxv = fmaxf(mxv, g); }
        for (int64_t s = 0; s < a.r; s++) { comp_val(a, k, pos0, r0, w * a.r + s, off + ch, &kv, &g); mxv = fmaxf(mxv, g); }
        double den = 0, num = 0;
        if (has_prev)
            for (int64_t s = 0; s < a.r; s++) {
                comp_val(a, k, pos0, r0, (w - 1) * a.r + s, ch, &kv, &g);
                double e = exp((double)(g - mxv));
                den += e;
                num += e * kv;
            }
        for (int64_t s = 0; s < a.r; s++) {
            comp_val(a, k, pos0, r0, w * a.r + s, off + ch, &kv, &g);
            double e = exp((double)(g - mxv));
            den += e;
            num += e * kv;
        }
        ent[ch] = (float)(num / den);
    }
    __syncthreads();
    double ss = 0;
    for (int64_t ch = threadIdx.x; ch < a.dout; ch += blockDim.x) ss += (double)ent[ch] * ent[ch];
    ss = block_sum_d(ss);
    float inv = (float)(1.0 / sqrt(ss / (double)a.dout + (double)a.eps));
    for (int64_t ch = threadIdx.x; ch < a.dout; ch += blockDim.x) ent[ch] = a.norm[ch] * (ent[ch] * inv);
    __syncthreads();
    int np = a.rope.dr / 2;
    for (int i = threadIdx.x; i < np; i += blockDim.x) {
        float c, sn;
        rope_cs(a.rope, w * a.r, i, &c, &sn);
        rope_pair(ent, a.dout, a.rope.dr, i, c, sn);
    }
    __syncthreads();
    float *entries = a.entries[k];
    for (int64_t ch = threadIdx.x; ch < a.dout; ch += blockDim.x) entries[w * a.dout + ch] = ent[ch];
}

/* The Ca half of the last window completed in the step becomes prev
 * (blocks (x, k): sequence k). */
__global__ void k_comp_prev(seg_tab sg, comp_args a) {
    int k = blockIdx.y;
    int64_t pos0 = sg.pos0[k], r0 = sg.r0[k], S = sg.n[k];
    int64_t wl = (pos0 + S) / a.r - 1;
    if (wl < pos0 / a.r) return;
    float *pkv = a.prev_kv[k], *pg = a.prev_g[k];
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < a.r * a.dout; j += (int64_t)gridDim.x * blockDim.x) {
        int64_t s = j / a.dout, ch = j % a.dout;
        float kv, g;
        comp_val(a, k, pos0, r0, wl * a.r + s, ch, &kv, &g);
        pkv[s * a.dout + ch] = kv;
        pg[s * a.dout + ch] = g;
    }
}

/* Each pending slot keeps the step's last token of its residue (its own
 * sequence's). */
__global__ void k_comp_pend(seg_tab sg, comp_args a) {
    int64_t s = blockIdx.x;
    row_at ra = seg_row(sg, s);
    int64_t t = ra.p;
    if (t + a.r <= ra.pos0 + ra.n - 1) return;
    int64_t j = t % a.r;
    float *pkv = a.pend_kv[ra.k], *pg = a.pend_g[ra.k];
    for (int64_t c = threadIdx.x; c < a.cw; c += blockDim.x) {
        pkv[j * a.cw + c] = a.ckv[s * a.cw + c];
        pg[j * a.cw + c] = a.cg[s * a.cw + c] + a.ape[j * a.cw + c];
    }
}

void op_comp(const seg_tab &sg, int64_t S, const comp_args &c, cudaStream_t st) {
    unsigned n_emit = (unsigned)(sg.max_n / c.r + 1);
    k_comp_emit<<<dim3(n_emit, (unsigned)sg.nseg), 256, (size_t)c.dout * sizeof(float), st>>>(sg, c);
    if (c.overlap) {
        int64_t b = (c.r * c.dout + 255) / 256;
        k_comp_prev<<<dim3((unsigned)(b < 64 ? b : 64), (unsigned)sg.nseg), 256, 0, st>>>(sg, c);
    }
    k_comp_pend<<<(unsigned)S, 256, 0, st>>>(sg, c);
}

/* ------------------------------------------------------------- indexer */

/* ops_dot's order: four float partial sums, (s0 + s1) + (s2 + s3). */
__device__ __forceinline__ float dot_cpu_order(const float *a, const float *b, int64_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 = __fadd_rn(s0, __fmul_rn(a[i], b[i]));
        s1 = __fadd_rn(s1, __fmul_rn(a[i + 1], b[i + 1]));
        s2 = __fadd_rn(s2, __fmul_rn(a[i + 2], b[i + 2]));
        s3 = __fadd_rn(s3, __fmul_rn(a[i + 3], b[i + 3]));
    }
    for (; i < n; i++) s0 = __fadd_rn(s0, __fmul_rn(a[i], b[i]));
    return __fadd_rn(__fadd_rn(s0, s1), __fadd_rn(s2, s3));
}

/* idx_worker: score[t] = scale * sum_h w[h] relu(q_h . k_t), accumulated in
 * double over heads in order. A block takes IDX_TILE entries: their keys in
 * shared memory, one (entry, head) dot per thread in ops_dot's order, then
 * one thread per entry adds the heads in order. */
#define IDX_TILE 32
__global__ void k_idx_score(seg_tab sg, const float *qI, const float *wI, const float *const *keys_k, int64_t nI,
                            int64_t DI, int64_t r, int64_t topk, float *score, int64_t score_stride) {
    extern __shared__ float sm[]; /* keys [IDX_TILE][DI], dots [IDX_TILE][nI] */
    int64_t s = blockIdx.y;
    row_at ra = seg_row(sg, s);
    int64_t p = ra.p;
    const float *keys = keys_k[ra.k];
    int64_t T = (p + 1) / r;
    if (T <= topk) return;
    float *kt = sm, *dots = sm + IDX_TILE * DI;
    const float *q = qI + s * nI * DI, *w = wI + s * nI;
    float scale = (float)(1.0 / sqrt((double)DI));
    for (int64_t t0 = (int64_t)blockIdx.x * IDX_TILE; t0 < T; t0 += (int64_t)gridDim.x * IDX_TILE) {
        int cnt = (int)(T - t0 < IDX_TILE ? T - t0 : IDX_TILE);
        for (int64_t i = threadIdx.x; i < cnt * DI; i += blockDim.x) kt[i] = keys[t0 * DI + i];
        __syncthreads();
        for (int64_t j = threadIdx.x; j < cnt * nI; j += blockDim.x) {
            int64_t e = j / nI, h = j % nI;
            dots[e * nI + h] = dot_cpu_order(q + h * DI, kt + e * DI, DI);
        }
        __syncthreads();
        if (threadIdx.x < cnt) {
            double acc = 0;
            for (int64_t h = 0; h < nI; h++) {
                float d = dots[threadIdx.x * nI + h];
                if (d > 0) acc += (double)w[h] * d;
            }
            score[s * score_stride + t0 + threadIdx.x] = (float)(acc * scale);
        }
        __syncthreads();
    }
}

__device__ __forceinline__ uint32_t order_key(float f) {
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Exclusive scan of v over the block (blockDim <= 1024); returns the
 * prefix and writes the block total. */
__device__ int block_scan_excl(int v, int *total) {
    __shared__ int wsum[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    int x = v;
    for (int o = 1; o < 32; o <<= 1) {
        int y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    __syncthreads();
    if (lane == 31) wsum[w] = x;
    __syncthreads();
    int before = 0, tot = 0;
    for (int i = 0; i < nw; i++) {
        if (i < w) before += wsum[i];
        tot += wsum[i];
    }
    *total = tot;
    return before + x - v;
}

/* idx_select + sort: the topk highest scores (ties: lower index first),
 * emitted in ascending index order. Radix select over order-preserving
 * keys finds the threshold; one ordered pass compacts. */
__global__ void k_idx_topk(seg_tab sg, const float *score, int64_t score_stride, int64_t r, int64_t topk,
                           int32_t *sel, int32_t *nsel) {
    __shared__ int hist[256];
    __shared__ uint32_t s_prefix;
    __shared__ int s_need;
    int64_t s = blockIdx.x, p = seg_row(sg, s).p;
    int64_t T = (p + 1) / r;
    int32_t *out = sel + s * topk;
    if (T <= topk) {
        for (int64_t i = threadIdx.x; i < T; i += blockDim.x) out[i] = (int32_t)i;
        if (threadIdx.x == 0) nsel[s] = (int32_t)T;
        return;
    }
    const float *sc = score + s * score_stride;
    uint32_t prefix = 0, mask = 0;
    int need = (int)topk; /* how many of the remaining candidates to take */
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        for (int64_t t = threadIdx.x; t < T; t += blockDim.x) {
            uint32_t k = order_key(sc[t]);
            if ((k & mask) == prefix) atomicAdd(&hist[(k >> shift) & 255], 1);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int acc = 0, b = 255;
            for (; b > 0; b--) {
                if (acc + hist[b] >= need) break;
                acc += hist[b];
            }
            s_prefix = prefix | ((uint32_t)b << shift);
            s_need = need - acc;
        }
        __syncthreads();
        prefix = s_prefix;
        need = s_need;
        mask |= 255u << shift;
        __syncthreads();
    }
    /* prefix = the topk-th key; take every key above it and the first
     * `need` keys equal to it, in index order */
    int eq_before = 0, sel_before = 0;
    for (int64_t base = 0; base < T; base += blockDim.x) {
        int64_t t = base + threadIdx.x;
        uint32_t k = t < T ? order_key(sc[t]) : 0;
        int is_eq = t < T && k == prefix;
        int eq_tot;
        int eq_rank = block_scan_excl(is_eq, &eq_tot) + eq_before;
        int take = t < T && (k > prefix || (is_eq && eq_rank < need));
        int take_tot;
        int pos = block_scan_excl(take, &take_tot) + sel_before;
        if (take) out[pos] = (int32_t)t;
        eq_before += eq_tot;
        sel_before += take_tot;
    }
    if (threadIdx.x == 0) nsel[s] = (int32_t)topk;
}

void op_indexer(const seg_tab &sg, int64_t S, const float *qI, const float *wI, const float *const *keys, int64_t nI,
                int64_t DI, int64_t r, int64_t topk, float *score, int64_t score_stride, int32_t *sel, int32_t *nsel,
                cudaStream_t st) {
    size_t shm = (size_t)(IDX_TILE * DI + IDX_TILE * nI) * sizeof(float);
    unsigned bx = (unsigned)((score_stride + IDX_TILE - 1) / IDX_TILE);
    if (bx < 1) bx = 1;
    if (bx > 512) bx = 512;
    k_idx_score<<<dim3(bx, (unsigned)S), 256, shm, st>>>(sg, qI, wI, keys, nI, DI, r, topk, score, score_stride);
    k_idx_topk<<<(unsigned)S, 1024, 0, st>>>(sg, score, score_stride, r, topk, sel, nsel);
}

/* ----------------------------------------------------------- attention */

#define ATT_THREADS 256
#define ATT_TILE 32

/* att_worker for one (token, head): scores over the window rows and the
 * visible entries, softmax with the head's sink, weighted sum of the same
 * rows (keys are values), inverse RoPE of the output's tail. Single pass
 * with a running maximum (tiles of ATT_TILE rows). */
__global__ void __launch_bounds__(ATT_THREADS) k_attention(seg_tab sg, attn_args a) {
    extern __shared__ float smem[]; /* q[D], z[ATT_TILE] */
    float *qsh = smem, *z = smem + a.D;
    __shared__ const float *rows[ATT_TILE];
    int64_t h = blockIdx.x, s = blockIdx.y;
    row_at ra = seg_row(sg, s);
    int64_t pos0 = ra.pos0, p = ra.p, D = a.D;
    const float *win = a.win[ra.k], *ent = a.ent ? a.ent[ra.k] : nullptr;
    const float *q = a.q + (s * a.nh + h) * D;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) qsh[i] = q[i];
    int64_t lo = p - a.W + 1 < 0 ? 0 : p - a.W + 1;
    int64_t nw = p - lo + 1, ne = 0;
    if (a.sel) ne = a.nsel[s];
    else if (a.ratio) ne = (p + 1) / a.ratio;
    int64_t n = nw + ne;
    float scale = (float)(1.0 / sqrt((double)D));
    float m = a.sinks[h], l = 1.0f; /* the sink: exp(sink - m) */
    const int npair = (int)(D / 2);
    float o0[2] = {0, 0}, o1[2] = {0, 0}; /* up to two channel pairs per thread (D <= 1024) */
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
    __syncthreads();
    for (int64_t base = 0; base < n; base += ATT_TILE) {
        int cnt = (int)(n - base < ATT_TILE ? n - base : ATT_TILE);
        for (int i = threadIdx.x; i < cnt; i += blockDim.x) {
            int64_t idx = base + i;
            const float *row;
            if (idx < nw) {
                int64_t t = lo + idx;
                row = t >= pos0 ? a.kv + (ra.r0 + t - pos0) * D : win + (t % a.W) * D;
            } else {
                int64_t e = idx - nw;
                int64_t id = a.sel ? a.sel[s * a.sel_stride + e] : e;
                row = ent + id * D;
            }
            rows[i] = row;
        }
        __syncthreads();
        for (int i = warp; i < cnt; i += nwarp) {
            const float *row = rows[i];
            float d = 0;
            for (int64_t c = lane; c < D; c += 32) d += qsh[c] * row[c];
            d = warp_sum_f(d);
            if (lane == 0) z[i] = d * scale;
        }
        __syncthreads();
        float mt = m;
        for (int i = 0; i < cnt; i++) mt = fmaxf(mt, z[i]);
        float corr = expf(m - mt);
        l *= corr;
        for (int k = 0; k < 2; k++) { o0[k] *= corr; o1[k] *= corr; }
        for (int i = 0; i < cnt; i++) {
            float pw = expf(z[i] - mt);
            l += pw;
            const float *row = rows[i];
            for (int k = 0; k < 2; k++) {
                int pi = threadIdx.x + k * ATT_THREADS;
                if (pi < npair) {
                    o0[k] += pw * row[2 * pi];
                    o1[k] += pw * row[2 * pi + 1];
                }
            }
        }
        m = mt;
        __syncthreads();
    }
    float inv = 1.0f / l;
    float *out = a.o + (s * a.nh + h) * D;
    int tail = (int)((D - a.rope.dr) / 2);
    for (int k = 0; k < 2; k++) {
        int pi = threadIdx.x + k * ATT_THREADS;
        if (pi >= npair) continue;
        float x0 = o0[k] * inv, x1 = o1[k] * inv;
        if (pi >= tail) {
            float c, sn;
            rope_cs(a.rope, p, pi - tail, &c, &sn);
            sn = -sn; /* inverse rotation */
            float y0 = x0 * c - x1 * sn, y1 = x1 * c + x0 * sn;
            x0 = y0;
            x1 = y1;
        }
        out[2 * pi] = x0;
        out[2 * pi + 1] = x1;
    }
}

void op_attention(const seg_tab &sg, int64_t S, const attn_args &a, cudaStream_t st) {
    size_t shm = (size_t)(a.D + ATT_TILE) * sizeof(float);
    k_attention<<<dim3((unsigned)a.nh, (unsigned)S), ATT_THREADS, shm, st>>>(sg, a);
}

/* Each sequence's window ring keeps its last W rows of the step (after
 * attention read it). */
__global__ void k_win_write(seg_tab sg, const float *kv, float *const *win, int64_t W, int64_t D) {
    int64_t s = blockIdx.x;
    row_at ra = seg_row(sg, s);
    int64_t t = ra.p;
    if (t + W <= ra.pos0 + ra.n - 1) return;
    float *w = win[ra.k];
    for (int64_t c = threadIdx.x; c < D; c += blockDim.x) w[(t % W) * D + c] = kv[s * D + c];
}

void op_win_write(const seg_tab &sg, int64_t S, const float *kv, float *const *win, int64_t W, int64_t D, cudaStream_t st) {
    k_win_write<<<(unsigned)S, 256, 0, st>>>(sg, kv, win, W, D);
}

/* ------------------------------------------------------------- router */

/* moe_layer's routing: sqrt(softplus) scores, top-k of score + bias (first
 * maximum wins) or the hash table, weights normalised in double. One block
 * of 256 threads per token, an expert's values kept in shared memory; each
 * of the k rounds is a block-wide arg-max (ties to the lower index). */
#define ROUTER_THREADS 256
__global__ void k_router(const int32_t *tok, float *rl, const float *bias, const int32_t *tid2eid, int64_t E, int64_t k,
                         float rsf, int32_t *sel, float *wt) {
    extern __shared__ float sh[]; /* [E] scores, [E] score + bias, [E] taken flags */
    __shared__ int32_t se[64];    /* k <= 64, checked at open */
    __shared__ float wv[ROUTER_THREADS / 32];
    __shared__ int we[ROUTER_THREADS / 32];
    float *ssc = sh, *val = sh + E;
    unsigned char *taken = (unsigned char *)(sh + 2 * E);
    int64_t s = blockIdx.x;
    float *sc = rl + s * E;
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;
    for (int64_t e = tid; e < E; e += blockDim.x) {
        float z = sc[e];
        double sp = z > 20.0f ? (double)z : log1p(exp((double)z));
        float f = (float)sqrt(sp);
        sc[e] = f;
        ssc[e] = f;
        val[e] = f + (bias ? bias[e] : 0.0f);
        taken[e] = 0;
    }
    __syncthreads();
    if (tid2eid) {
        for (int64_t i = tid; i < k; i += blockDim.x) se[i] = tid2eid[(int64_t)tok[s] * k + i];
    } else {
        for (int64_t i = 0; i < k; i++) {
            float bv = -INFINITY;
            int be = -1;
            for (int64_t e = tid; e < E; e += blockDim.x) {
                if (taken[e]) continue;
                float v = val[e];
                if (be < 0 || v > bv) { bv = v; be = (int)e; }
            }
            for (int o = 16; o > 0; o >>= 1) {
                float ov = __shfl_xor_sync(0xffffffffu, bv, o);
                int oe = __shfl_xor_sync(0xffffffffu, be, o);
                if (oe >= 0 && (be < 0 || ov > bv || (ov == bv && oe < be))) { bv = ov; be = oe; }
            }
            if (lane == 0) { wv[warp] = bv; we[warp] = be; }
            __syncthreads();
            if (warp == 0) {
                bv = lane < nw ? wv[lane] : -INFINITY;
                be = lane < nw ? we[lane] : -1;
                for (int o = 16; o > 0; o >>= 1) {
                    float ov = __shfl_xor_sync(0xffffffffu, bv, o);
                    int oe = __shfl_xor_sync(0xffffffffu, be, o);
                    if (oe >= 0 && (be < 0 || ov > bv || (ov == bv && oe < be))) { bv = ov; be = oe; }
                }
                if (lane == 0) {
                    se[i] = be;
                    if (be >= 0) taken[be] = 1;
                }
            }
            __syncthreads();
        }
    }
    __syncthreads();
    for (int64_t i = tid; i < k; i += blockDim.x) sel[s * k + i] = se[i];
    if (tid == 0) {
        double sum = 0;
        for (int64_t i = 0; i < k; i++) sum += ssc[se[i]];
        for (int64_t i = 0; i < k; i++) wt[s * k + i] = (float)(ssc[se[i]] / (sum + 1e-20)) * rsf;
    }
}

void op_router(const int32_t *tok, int64_t S, float *rl, const float *bias, const int32_t *tid2eid, int64_t E,
               int64_t k, float rsf, int32_t *sel, float *wt, cudaStream_t st) {
    size_t shm = (size_t)E * (2 * sizeof(float) + 1);
    k_router<<<(unsigned)S, ROUTER_THREADS, shm, st>>>(tok, rl, bias, tid2eid, E, k, rsf, sel, wt);
}

/* Slot order of moe_layer: owned experts ascending, then tokens, then the
 * token's choice index. One block; counts per expert, a scan, ranks. */
__global__ void k_moe_group(const int32_t *sel, const float *wt, int64_t n, int64_t lo, int64_t hi, int32_t *n_groups,
                            int32_t *g_expert, int32_t *g_first, int32_t *slot_tok, float *slot_wt, int32_t *n_slots,
                            int64_t k) {
    extern __shared__ int cnt[]; /* [hi - lo] counts, then offsets */
    int64_t ne = hi - lo;
    for (int64_t e = threadIdx.x; e < ne; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        int e = sel[j];
        if (e >= lo && e < hi) atomicAdd(&cnt[e - lo], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int off = 0, g = 0;
        for (int64_t e = 0; e < ne; e++) {
            int c = cnt[e];
            cnt[e] = off;
            if (c) {
                g_expert[g] = (int32_t)(e + lo);
                g_first[g] = off;
                g++;
            }
            off += c;
        }
        g_first[g] = off;
        *n_groups = g;
        *n_slots = off;
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        int e = sel[j];
        if (e < lo || e >= hi) continue;
        int rank = 0; /* earlier slots (token-major) choosing the same expert */
        for (int64_t i = 0; i < j; i++) rank += sel[i] == e;
        int at = cnt[e - lo] + rank;
        slot_tok[at] = (int32_t)(j / k);
        slot_wt[at] = wt[j];
    }
}

void op_moe_group(const int32_t *sel, const float *wt, int64_t S, int64_t k, int64_t lo, int64_t hi,
                  int32_t *n_groups, int32_t *g_expert, int32_t *g_first, int32_t *slot_tok, float *slot_wt,
                  int32_t *n_slots, cudaStream_t st) {
    size_t shm = (size_t)(hi - lo) * sizeof(int);
    k_moe_group<<<1, 1024, shm, st>>>(sel, wt, S * k, lo, hi, n_groups, g_expert, g_first, slot_tok, slot_wt, n_slots, k);
}

__global__ void k_moe_combine(const float *dn, const int32_t *slot_tok, const float *slot_wt, const int32_t *n_slots,
                              float *routed, int64_t H) {
    int64_t s = blockIdx.y;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= H) return;
    int n = *n_slots;
    float acc = 0;
    for (int j = 0; j < n; j++)
        if (slot_tok[j] == s) acc += slot_wt[j] * dn[(int64_t)j * H + i];
    routed[s * H + i] = acc;
}

void op_moe_combine(const float *dn, const int32_t *slot_tok, const float *slot_wt, const int32_t *n_slots,
                    float *routed, int64_t S, int64_t H, cudaStream_t st) {
    dim3 grid((unsigned)((H + 255) / 256), (unsigned)S);
    k_moe_combine<<<grid, 256, 0, st>>>(dn, slot_tok, slot_wt, n_slots, routed, H);
}

/* swiglu: silu(min(g, lim)) * clamp(u, -lim, lim) */
__global__ void k_swiglu(float *g, const float *u, int64_t n, float lim) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float a = g[i] > lim ? lim : g[i];
        float b = u[i] > lim ? lim : (u[i] < -lim ? -lim : u[i]);
        g[i] = a / (1.0f + expf(-a)) * b;
    }
}

void op_swiglu(float *g, const float *u, int64_t n, float lim, cudaStream_t st) {
    int64_t b = (n + 255) / 256;
    k_swiglu<<<(unsigned)(b < 4096 ? b : 4096), 256, 0, st>>>(g, u, n, lim);
}
