/*
 * ops.c — float32 kernels for the model code. Reductions accumulate in
 * double: the reference runs these steps in float32/float64 mixtures and
 * the extra precision only moves results closer to it.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

void ops_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    if (w)
        for (int64_t i = 0; i < n; i++) y[i] = w[i] * (x[i] * inv);
    else
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * inv;
}

void ops_softmax(float *x, int64_t n) {
    if (n <= 0) return;
    float mx = x[0];
    for (int64_t i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) { for (int64_t i = 0; i < n; i++) x[i] = 0.0f; return; }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) { float e = expf(x[i] - mx); x[i] = e; sum += e; }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

float ops_sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }
float ops_silu(float z) { return z / (1.0f + expf(-z)); }

float ops_sqrtsoftplus(float z) {
    double sp = z > 20.0f ? (double)z : log1p(exp((double)z));
    return (float)sqrt(sp);
}

float ops_dot(const float *a, const float *b, int64_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i]; s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2]; s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

int ops_rope_init(ops_rope *r, int dr, double theta) {
    if (dr <= 0 || dr % 2 || dr / 2 > OPS_ROPE_MAX_PAIRS || !(theta > 0)) return -1;
    memset(r, 0, sizeof *r);
    r->dr = dr;
    for (int i = 0; i < dr / 2; i++) {
        /* transformers: 1 / base^(arange(0, dim, 2) / dim), in float32 */
        float expo = (float)(2 * i) / (float)dr;
        r->inv_freq[i] = (float)(1.0 / pow(theta, (double)expo));
    }
    return 0;
}

int ops_rope_init_yarn(ops_rope *r, int dr, double theta, double factor, double orig_ctx,
                       double beta_fast, double beta_slow) {
    if (ops_rope_init(r, dr, theta) != 0) return -1;
    if (!(factor > 0) || !(orig_ctx > 0) || !(beta_fast > 0) || !(beta_slow > 0)) return -1;
    const double two_pi = 6.283185307179586;
    double lowc = (double)dr * log(orig_ctx / (beta_fast * two_pi)) / (2.0 * log(theta));
    double highc = (double)dr * log(orig_ctx / (beta_slow * two_pi)) / (2.0 * log(theta));
    double low = floor(lowc), high = ceil(highc);
    if (low < 0) low = 0;
    if (high > dr - 1) high = dr - 1;
    if (low == high) high += 0.001;
    for (int i = 0; i < dr / 2; i++) {
        double ramp = ((double)i - low) / (high - low);
        if (ramp < 0) ramp = 0;
        if (ramp > 1) ramp = 1;
        float ramp_f = (float)ramp;
        float ex = r->inv_freq[i];
        float in = ex / (float)factor;
        /* extrapolation factor = 1 - ramp */
        float exf = 1.0f - ramp_f;
        r->inv_freq[i] = in * (1.0f - exf) + ex * exf;
    }
    return 0;
}

void ops_rope_cs(const ops_rope *r, int64_t p, float *cs, float *sn) {
    float fp = (float)p;
    for (int i = 0; i < r->dr / 2; i++) {
        float a = r->inv_freq[i] * fp;
        cs[i] = (float)cos((double)a);
        sn[i] = (float)sin((double)a);
    }
}

void ops_rope_apply(float *x, int64_t dx, int dr, const float *cs, const float *sn, int inverse) {
    float *t = x + (dx - dr);
    for (int i = 0; i < dr / 2; i++) {
        float c = cs[i], s = inverse ? -sn[i] : sn[i];
        float a = t[2 * i], b = t[2 * i + 1];
        t[2 * i] = a * c - b * s;
        t[2 * i + 1] = b * c + a * s;
    }
}

void ops_hc_split(const float *mix, const float *scale, const float *base, int hc, int iters,
                  float hc_eps, float *pre, float *post, float *comb) {
    for (int j = 0; j < hc; j++) {
        pre[j] = ops_sigmoid(mix[j] * scale[0] + base[j]) + hc_eps;
        post[j] = 2.0f * ops_sigmoid(mix[hc + j] * scale[1] + base[hc + j]);
    }
    const float *cm = mix + 2 * hc;
    const float *cb = base + 2 * hc;
    for (int i = 0; i < hc; i++) {
        float *row = comb + i * hc;
        for (int c = 0; c < hc; c++) row[c] = cm[i * hc + c] * scale[2] + cb[i * hc + c];
        ops_softmax(row, hc);
        for (int c = 0; c < hc; c++) row[c] += hc_eps;
    }
    for (int c = 0; c < hc; c++) {
        float s = 0;
        for (int i = 0; i < hc; i++) s += comb[i * hc + c];
        float d = s + hc_eps;
        for (int i = 0; i < hc; i++) comb[i * hc + c] /= d;
    }
    for (int it = 1; it < iters; it++) {
        for (int i = 0; i < hc; i++) {
            float s = 0;
            for (int c = 0; c < hc; c++) s += comb[i * hc + c];
            float d = s + hc_eps;
            for (int c = 0; c < hc; c++) comb[i * hc + c] /= d;
        }
        for (int c = 0; c < hc; c++) {
            float s = 0;
            for (int i = 0; i < hc; i++) s += comb[i * hc + c];
            float d = s + hc_eps;
            for (int i = 0; i < hc; i++) comb[i * hc + c] /= d;
        }
    }
}
