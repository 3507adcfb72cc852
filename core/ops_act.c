/* core/ops_act.c - activations and row softmax, forward and backward.
 *
 * Matches torch.nn.functional: silu (x sigmoid x), gelu with approximate='none' (erf form)
 * and approximate='tanh', QuickGELU as in transformers' CLIP (x sigmoid(1.702 x)), diffusers'
 * GEGLU after its projection (hidden, gate = proj(x).chunk(2, dim=-1); hidden * gelu(gate)),
 * and softmax over the last dimension.
 *
 *   silu'(x)      = s (1 + x (1 - s)),                      s = sigmoid(x)
 *   gelu'(x)      = Phi(x) + x phi(x),                      Phi(x) = (1 + erf(x / sqrt2)) / 2
 *   gelu_tanh'(x) = (1 + t) / 2 + x (1 - t^2) k (1 + 3 a x^2) / 2,
 *                   t = tanh(k (x + a x^3)), k = sqrt(2 / pi), a = 0.044715
 *   quickgelu'(x) = s + 1.702 x s (1 - s),                  s = sigmoid(1.702 x)
 *   softmax: dx = y (dout - sum(dout y))
 *
 * Elementwise kernels split n into static blocks, each element owned by one thread; softmax
 * owns whole rows. No value depends on the thread count. */
// value-safe: lets gcc if-convert the float compares in rl_expf_fast's clamps and so
// vectorise every exp loop (floats are unchanged; only FP-exception flags would differ)
#pragma GCC optimize("no-trapping-math", "fp-contract=off")

#include <math.h>
#include <stddef.h>

#include "core/ops.h"
#include "core/ops_simd.h"

// below this many elements a parallel region costs more than it saves
#define PAR_MIN 16384

#define SQRT1_2   0.70710678118654752440f   // 1 / sqrt(2)
#define INV_SQRT2PI 0.39894228040143267794f // 1 / sqrt(2 pi)
#define K_TANH    0.79788456080286535588f   // sqrt(2 / pi)
#define A_TANH    0.044715f

static inline float sigmoidf(float x) { return 1.0f / (1.0f + rl_expf_fast(-x)); }

/* Elementwise kernels hand out blocks of BLK elements to the threads; each block runs a loop
 * compiled per ISA (RL_CLONES, ops_simd.h) that gcc vectorises. Elementwise, so neither the
 * blocks nor the vector width change a bit. */
#define BLK 4096
#define FOR_BLOCKS(n, body)                                                                 \
    _Pragma("omp parallel for schedule(static) if (n > PAR_MIN)")                           \
    for (size_t b0 = 0; b0 < (n); b0 += BLK) {                                              \
        const size_t bn = (n) - b0 < BLK ? (n) - b0 : BLK;                                  \
        body;                                                                               \
    }

// ---- silu ----------------------------------------------------------------------------

RL_CLONES static void silu_fwd_blk(float *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = x[i] * sigmoidf(x[i]);
}

RL_CLONES static void silu_bwd_blk(float *restrict dx, const float *restrict dout,
                                   const float *restrict x, size_t n)
{
    // out = x s  ->  dout/dx = s + x s (1 - s)
    for (size_t i = 0; i < n; i++) {
        const float s = sigmoidf(x[i]);
        dx[i] += dout[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void rl_silu_fwd(float *out, const float *x, size_t n)
{
    FOR_BLOCKS(n, silu_fwd_blk(out + b0, x + b0, bn))
}

void rl_silu_bwd(float *restrict dx, const float *restrict dout, const float *restrict x, size_t n)
{
    FOR_BLOCKS(n, silu_bwd_blk(dx + b0, dout + b0, x + b0, bn))
}

// ---- gelu (erf) ------------------------------------------------------------------------

/* erf(x) without libm, in operations gcc vectorises (no branches, no calls):
 *   |x| < 1.25:      erf = x + x P(x^2), P of degree 8 (x + ... keeps the leading term exact)
 *   1.25 <= |x| < 4: erf = 1 - exp(Q(|x| - 2.625)), Q of degree 10 fitted to log erfc
 *   |x| >= 4:        1 - exp(Q(1.375)) rounds to 1
 * coefficients fitted by tools/fixtures/fit_erf.py (least squares, reweighted towards
 * minimax, in float64). Max error 2.0 ulp against double erf, measured over every 7th float
 * in [0, 10] (worst at the 1.25 seam; below 1 ulp on [0, 0.9] and [2, inf)). NaN stays NaN. */
static inline float erf_fast(float x)
{
    const float a = fabsf(x), z = a * a;
    float p = 8.261619298e-07f;
    p = p * z + -1.279238420e-05f;
    p = p * z + 1.173582418e-04f;
    p = p * z + -8.519628226e-04f;
    p = p * z + 5.222438969e-03f;
    p = p * z + -2.686570210e-02f;
    p = p * z + 1.128378446e-01f;
    p = p * z + -3.761263847e-01f;
    p = p * z + 1.283791671e-01f;
    const float small = a + a * p;
    const float u = (a < 4.0f ? a : 4.0f) - 2.625f;
    float q = -1.824461327e-08f;
    q = q * u + -1.182639463e-07f;
    q = q * u + 1.630825343e-06f;
    q = q * u + -1.116993156e-05f;
    q = q * u + 6.656924319e-05f;
    q = q * u + -3.670762847e-04f;
    q = q * u + 1.919630126e-03f;
    q = q * u + -9.838229630e-03f;
    q = q * u + -9.477704492e-01f;
    q = q * u + -5.589146736e+00f;
    q = q * u + -8.490669397e+00f;
    const float big = 1.0f - rl_expf_fast(q);
    return copysignf(a < 1.25f ? small : big, x);
}

static inline float gelu(float x) { return 0.5f * x * (1.0f + erf_fast(x * SQRT1_2)); }
static inline float gelu_grad(float x)
{
    // d/dx [x Phi(x)] = Phi(x) + x phi(x)
    return 0.5f * (1.0f + erf_fast(x * SQRT1_2)) + x * INV_SQRT2PI * rl_expf_fast(-0.5f * x * x);
}

RL_CLONES static void gelu_fwd_blk(float *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = gelu(x[i]);
}

RL_CLONES static void gelu_bwd_blk(float *restrict dx, const float *restrict dout,
                                   const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * gelu_grad(x[i]);
}

void rl_gelu_fwd(float *out, const float *x, size_t n)
{
    FOR_BLOCKS(n, gelu_fwd_blk(out + b0, x + b0, bn))
}

void rl_gelu_bwd(float *restrict dx, const float *restrict dout, const float *restrict x, size_t n)
{
    FOR_BLOCKS(n, gelu_bwd_blk(dx + b0, dout + b0, x + b0, bn))
}

// ---- gelu (tanh approximation) ------------------------------------------------------------

void rl_gelu_tanh_fwd(float *out, const float *x, size_t n)
{
    // out = x (1 + tanh(k (x + a x^3))) / 2
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanhf(K_TANH * (v + A_TANH * v * v * v)));
    }
}

void rl_gelu_tanh_bwd(float *restrict dx, const float *restrict dout, const float *restrict x,
                      size_t n)
{
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        const float t = tanhf(K_TANH * (v + A_TANH * v * v * v));
        const float g = 0.5f * (1.0f + t)
                      + 0.5f * v * (1.0f - t * t) * K_TANH * (1.0f + 3.0f * A_TANH * v * v);
        dx[i] += dout[i] * g;
    }
}

// ---- quickgelu ----------------------------------------------------------------------------

RL_CLONES static void quickgelu_fwd_blk(float *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = x[i] * sigmoidf(1.702f * x[i]);
}

RL_CLONES static void quickgelu_bwd_blk(float *restrict dx, const float *restrict dout,
                                        const float *restrict x, size_t n)
{
    // out = x s(1.702 x)  ->  s + 1.702 x s (1 - s)
    for (size_t i = 0; i < n; i++) {
        const float s = sigmoidf(1.702f * x[i]);
        dx[i] += dout[i] * (s + 1.702f * x[i] * s * (1.0f - s));
    }
}

void rl_quickgelu_fwd(float *out, const float *x, size_t n)
{
    FOR_BLOCKS(n, quickgelu_fwd_blk(out + b0, x + b0, bn))
}

void rl_quickgelu_bwd(float *restrict dx, const float *restrict dout, const float *restrict x,
                      size_t n)
{
    FOR_BLOCKS(n, quickgelu_bwd_blk(dx + b0, dout + b0, x + b0, bn))
}

// ---- geglu --------------------------------------------------------------------------------

/* One row: o (C) = h (C) * gelu(g (C)). */
RL_CLONES static void geglu_fwd_row(float *restrict o, const float *restrict h,
                                    const float *restrict g, int C)
{
    for (int c = 0; c < C; c++) o[c] = h[c] * gelu(g[c]);
}

/* One row: dh (C) += d gelu(g), dg (C) += d h gelu'(g). */
RL_CLONES static void geglu_bwd_row(float *restrict dh, float *restrict dg, const float *restrict d,
                                    const float *restrict h, const float *restrict g, int C)
{
    for (int c = 0; c < C; c++) {
        dh[c] += d[c] * gelu(g[c]);
        dg[c] += d[c] * h[c] * gelu_grad(g[c]);
    }
}

void rl_geglu_fwd(float *restrict out, const float *restrict x, int T, int C)
{
    // x (T, 2C) = [hidden | gate], out (T, C) = hidden * gelu(gate)
    #pragma omp parallel for schedule(static) if ((size_t)T * C > PAR_MIN)
    for (int t = 0; t < T; t++) {
        const float *h = x + (size_t)t * 2 * C;   // (C), then the gate (C)
        geglu_fwd_row(out + (size_t)t * C, h, h + C, C);
    }
}

void rl_geglu_bwd(float *restrict dx, const float *restrict dout, const float *restrict x,
                  int T, int C)
{
    // out = h gelu(g): dh += dout gelu(g), dg += dout h gelu'(g)
    #pragma omp parallel for schedule(static) if ((size_t)T * C > PAR_MIN)
    for (int t = 0; t < T; t++) {
        const float *h = x + (size_t)t * 2 * C;   // (C), then the gate (C)
        float *dh = dx + (size_t)t * 2 * C;       // (C), then dgate (C)
        geglu_bwd_row(dh, dh + C, dout + (size_t)t * C, h, h + C, C);
    }
}

// ---- softmax ------------------------------------------------------------------------------

void rl_softmax_fwd(float *out, const float *x, int R, int C)
{
    // out[r] = exp(x[r] - max) / sum(exp(x[r] - max)), one row per iteration
    #pragma omp parallel for schedule(static) if ((size_t)R * C > PAR_MIN)
    for (int r = 0; r < R; r++) {
        float *o = out + (size_t)r * C;
        const float inv = 1.0f / rl_softmax_exp_row(o, x + (size_t)r * C, C);
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

void rl_softmax_bwd(float *restrict dx, const float *restrict dout, const float *restrict out,
                    int R, int C)
{
    // y = softmax(x): dx += y (dout - sum(dout y)); the sum in double, in row order
    #pragma omp parallel for schedule(static) if ((size_t)R * C > PAR_MIN)
    for (int r = 0; r < R; r++) {
        const float *y = out + (size_t)r * C, *d = dout + (size_t)r * C;   // (C)
        float *dxr = dx + (size_t)r * C;                                   // (C)
        double s = 0.0;
        for (int c = 0; c < C; c++) s += (double)d[c] * y[c];
        const float sf = (float)s;
        for (int c = 0; c < C; c++) dxr[c] += y[c] * (d[c] - sf);
    }
}
