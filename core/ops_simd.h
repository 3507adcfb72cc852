/* core/ops_simd.h - small inline helpers shared by kernels (internal, not installed).
 *
 * Written so that gcc vectorises them inside the callers' loops without -ffast-math: no libm
 * calls, no reassociation of float sums that the source does not spell out. Results depend
 * only on the values, never on the thread count.
 *
 * rl_expf_fast: exp(x) by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6
 * polynomial for exp(r) (the Cephes expf coefficients), then 2^n built in the exponent bits.
 * About 1-2 ulp over the normal range. Out of range: x < -87.3 gives 0 (softmax masks and
 * sigmoid tails need an exact 0, not a denormal), x > 88 gives exp(88) = 1.65e38 instead of
 * inf (callers subtract the row max first, or use it in 1 / (1 + e) where both round to the
 * same float), NaN stays NaN. */
#ifndef RL_CORE_OPS_SIMD_H
#define RL_CORE_OPS_SIMD_H

#include <stdint.h>
#include <string.h>

static inline float rl_expf_fast(float x)
{
    const float lo = -87.3f, hi = 88.0f;
    // written so that NaN takes the lo branch: converting NaN to int below would be undefined
    float xc = x > lo ? x : lo;
    xc = xc > hi ? hi : xc;
    // n = round(x / ln2) by the 1.5 * 2^23 trick (exact for |v| < 2^22, round-to-nearest)
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    // r = x - n ln2, ln2 split in a part exact in float and a correction
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // 2^n: n in [-126, 127] after the clamp, a normal float
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    y = x < lo ? 0.0f : y;
    return x != x ? x : y;
}

/* Sum of n floats in a fixed order: 8 interleaved partial sums, then combined pairwise. The
 * order depends only on n, so it is the same for any thread count. */
static inline float rl_sum_f32(const float *x, int n)
{
    float acc[8] = { 0 };
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[i + l];
    for (; i < n; i++) acc[0] += x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Dot product of n floats, same fixed order as rl_sum_f32. */
static inline float rl_dot_f32(const float *a, const float *b, int n)
{
    float acc[8] = { 0 };
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    for (; i < n; i++) acc[0] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Max of n >= 1 floats (NaN-propagating is not needed: callers' exp keeps NaN). */
static inline float rl_max_f32(const float *x, int n)
{
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* p[j] = exp(s[j] - max) for j < n; returns the sum of p in rl_sum_f32's order. p may equal
 * s. The max subtraction keeps every argument <= 0, so no overflow. */
static inline float rl_softmax_exp_row(float *p, const float *s, int n)
{
    const float m = rl_max_f32(s, n);
    for (int j = 0; j < n; j++) p[j] = rl_expf_fast(s[j] - m);
    return rl_sum_f32(p, n);
}

#endif
