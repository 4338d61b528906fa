/*
 * ops.h — plain float32 kernels used by the model code: RMSNorm, softmax,
 * activations, RoPE frequency tables (plain and YaRN) and rotation, and
 * the hyper-connection Sinkhorn split. No allocation, no threads.
 */
#ifndef DS4J_OPS_H
#define DS4J_OPS_H

#include <stdint.h>

/* y = w * x / sqrt(mean(x^2) + eps); w may be NULL (unweighted). y may alias x. */
void ops_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
/* In-place max-subtracted softmax. */
void ops_softmax(float *x, int64_t n);
float ops_sigmoid(float z);
float ops_silu(float z);
/* sqrt(softplus(z)) with torch's threshold 20. */
float ops_sqrtsoftplus(float z);
float ops_dot(const float *a, const float *b, int64_t n);

#define OPS_ROPE_MAX_PAIRS 256

/* Inverse frequencies for `dr` rotary dims (dr/2 pairs). */
typedef struct ops_rope {
    int dr;
    float inv_freq[OPS_ROPE_MAX_PAIRS];
} ops_rope;

/* inv_freq[i] = theta^(-2i/dr). Returns 0 or -1 if dr is invalid. */
int ops_rope_init(ops_rope *r, int dr, double theta);
/* YaRN (transformers _compute_yarn_parameters, truncate=true, attention factor 1). */
int ops_rope_init_yarn(ops_rope *r, int dr, double theta, double factor, double orig_ctx,
                       double beta_fast, double beta_slow);
/* cos/sin of the dr/2 angles at position p (float32 angle, as transformers). */
void ops_rope_cs(const ops_rope *r, int64_t p, float *cs, float *sn);
/* Rotate the trailing dr channels of x[0..dx) by the angles (inverse: -angle). */
void ops_rope_apply(float *x, int64_t dx, int dr, const float *cs, const float *sn, int inverse);

/*
 * Hyper-connection split (spec section 4): from the mixer output mix
 * [(2+hc)*hc], scale[3], base[(2+hc)*hc] compute pre[hc], post[hc] and the
 * Sinkhorn-normalised comb[hc*hc] (row-major C[i][c]).
 */
void ops_hc_split(const float *mix, const float *scale, const float *base, int hc, int iters,
                  float hc_eps, float *pre, float *post, float *comb);

#endif
