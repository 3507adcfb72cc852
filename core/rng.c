/* core/rng.c - torch-compatible mt19937 and normal/uniform sampling (see core/rng.h).
 *
 * Matches PyTorch's CPUGeneratorImpl (mt19937, random(), random64()), uniform_real_distribution
 * and normal_distribution<double> (aten/src/ATen/core/DistributionsHelper.h,
 * TransformationHelper.h), and normal_fill / normal_fill_AVX2 (aten/src/ATen/native/cpu/
 * DistributionTemplates.h). The AVX2 kernel's log and sincos are the cephes single-precision
 * polynomials (as in avx_mathfun.h); their multiply-adds are fused exactly where torch's compiled
 * kernel fuses them (measured: with these FMAs the output equals torch.randn bit for bit, without
 * them a few values in 10^4 differ by 1-2 ulp), so the FMAs are written out as fmaf() and every
 * other operation is a separate IEEE float operation. */
#include "core/rng.h"

#include <math.h>
#include <string.h>

// No silent contraction of a*b+c into an FMA: the order of roundings is the contract here.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define F(x) ((float)(x))     // constants as torch writes them: a double rounded to float

// ---- mt19937 --------------------------------------------------------------------------------

void rl_rng_seed(rl_rng *g, uint64_t seed)
{
    g->mt[0] = (uint32_t)seed;          // torch's mt19937 keeps seed & 0xffffffff
    for (int i = 1; i < 624; i++)
        g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
    g->mti = 624;
    g->has_next_normal = 0;
    g->next_normal = 0.0;
}

static void mt_twist(rl_rng *g)
{
    for (int k = 0; k < 624; k++) {
        uint32_t y = (g->mt[k] & 0x80000000u) | (g->mt[(k + 1) % 624] & 0x7fffffffu);
        g->mt[k] = g->mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    g->mti = 0;
}

uint32_t rl_rng_u32(rl_rng *g)
{
    if (g->mti >= 624) mt_twist(g);
    uint32_t y = g->mt[g->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t rl_rng_u64(rl_rng *g)
{
    uint64_t hi = rl_rng_u32(g);
    uint64_t lo = rl_rng_u32(g);
    return hi << 32 | lo;
}

/* uniform_real_distribution<float>(0, 1): 24 random bits. */
static float uniform_f32(rl_rng *g) { return (float)(rl_rng_u32(g) & 0xFFFFFFu) * 0x1p-24f; }

/* uniform_real_distribution<double>(0, 1): 53 random bits. */
static double uniform_f64(rl_rng *g)
{
    return (double)(rl_rng_u64(g) & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
}

// ---- the AVX2 kernel's float math, one lane at a time ----------------------------------------

/* Natural log of x > 0 (cephes logf: x = m 2^e, m in [sqrt(1/2), sqrt(2)), a degree-8
 * polynomial in m - 1, e ln 2 added in two parts). */
static float log_f32(float x)
{
    if (!(x >= 0x1p-126f)) x = 0x1p-126f;             // max(x, smallest normal)
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    int32_t e_i = (int32_t)(b >> 23) - 0x7f;
    b = (b & ~0x7f800000u) | 0x3f000000u;               // mantissa with the exponent of 0.5
    float m;
    memcpy(&m, &b, sizeof m);
    float e = (float)e_i + 1.0f;
    int small = m < F(0.707106781186547524);
    float tmp = small ? m : 0.0f;
    m = m - 1.0f;
    e = e - (small ? 1.0f : 0.0f);
    m = m + tmp;
    float z = m * m;
    float y = F(7.0376836292E-2);
    y = fmaf(y, m, F(-1.1514610310E-1));
    y = fmaf(y, m, F(1.1676998740E-1));
    y = fmaf(y, m, F(-1.2420140846E-1));
    y = fmaf(y, m, F(1.4249322787E-1));
    y = fmaf(y, m, F(-1.6668057665E-1));
    y = fmaf(y, m, F(2.0000714765E-1));
    y = fmaf(y, m, F(-2.4999993993E-1));
    y = fmaf(y, m, F(3.3333331174E-1));
    y = y * m;
    y = fmaf(y, z, e * F(-2.12194440e-4));              // y z + e q1
    y = fmaf(z, -0.5f, y);                              // - z / 2
    m = m + y;
    return fmaf(e, F(0.693359375), m);                  // + e q2
}

/* sin and cos of x (cephes sinf/cosf: reduction by multiples of pi/4 in three parts, then the
 * sine or cosine polynomial on [-pi/4, pi/4] depending on the octant). */
static void sincos_f32(float x, float *s, float *c)
{
    uint32_t xb;
    memcpy(&xb, &x, sizeof xb);
    uint32_t sign_sin = xb & 0x80000000u;
    x = fabsf(x);
    float y = x * F(1.27323954473516);                  // 4 / pi
    int32_t j = (int32_t)y;                             // truncation, as cvttps
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
    int poly = (j & 2) == 0;                            // which polynomial gives the sine
    x = fmaf(y, F(-0.78515625), x);
    x = fmaf(y, F(-2.4187564849853515625e-4), x);
    x = fmaf(y, F(-3.77489497744594108e-8), x);
    uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
    sign_sin ^= swap_sin;

    float z = x * x;
    float yc = F(2.443315711809948E-005);               // cosine polynomial
    yc = fmaf(yc, z, F(-1.388731625493765E-003));
    yc = fmaf(yc, z, F(4.166664568298827E-002));
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = F(-1.9515295891E-4);                     // sine polynomial
    ys = fmaf(ys, z, F(8.3321608736E-3));
    ys = fmaf(ys, z, F(-1.6666654611E-1));
    ys = ys * z;
    ys = fmaf(ys, x, x);

    float ysin2 = poly ? ys : 0.0f, ysin1 = poly ? 0.0f : yc;   // the kernel's masked select
    ys = ys - ysin2;
    yc = yc - ysin1;
    float sv = ysin1 + ysin2, cv = yc + ys;
    uint32_t b;
    memcpy(&b, &sv, sizeof b);
    b ^= sign_sin;
    memcpy(s, &b, sizeof b);
    memcpy(&b, &cv, sizeof b);
    b ^= sign_cos;
    memcpy(c, &b, sizeof b);
}

/* Box-Muller on 16 uniforms: d[j] and d[j + 8] become the pair made from (d[j], d[j + 8]). */
static void normal_fill_16(float *d)
{
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];                         // [0, 1) -> (0, 1] for the log
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * log_f32(u1));
        float theta = F(2.0 * 3.14159265358979323846) * u2;
        float sn, cs;
        sincos_f32(theta, &sn, &cs);
        d[j] = fmaf(radius * cs, 1.0f, 0.0f);           // fmadd(n, std, mean)
        d[j + 8] = fmaf(radius * sn, 1.0f, 0.0f);
    }
}

// ---- sampling -------------------------------------------------------------------------------

/* normal_distribution<double>(0, 1): one pair per two calls, the sine half cached. */
static double normal_f64(rl_rng *g)
{
    if (g->has_next_normal) {
        g->has_next_normal = 0;
        return g->next_normal * 1.0 + 0.0;
    }
    double u1 = uniform_f64(g);
    double u2 = uniform_f64(g);
    double r = sqrt(-2.0 * log1p(-u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    g->next_normal = r * sin(theta);
    g->has_next_normal = 1;
    return r * cos(theta) * 1.0 + 0.0;
}

void rl_rng_randn(rl_rng *g, float *out, size_t n)
{
    if (n < 16) {
        for (size_t i = 0; i < n; i++) out[i] = (float)normal_f64(g);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = uniform_f32(g);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
    if (n % 16 != 0) {                                  // recompute the last 16 values
        float *d = out + n - 16;
        for (int i = 0; i < 16; i++) d[i] = uniform_f32(g);
        normal_fill_16(d);
    }
}

void rl_rng_rand(rl_rng *g, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = uniform_f32(g);
}
