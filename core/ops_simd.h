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

// ---- function multi-versioning and fixed-width vectors ----------------------------------

/* RL_CLONES on a hot function compiles it for AVX-512, AVX2+FMA and the baseline ISA and
 * picks one at load time (ifunc), so the default portable build runs wide code where the
 * CPU has it. Every clone gives the same bits: the kernels use only elementwise IEEE
 * operations written out in the source (mul then add, never fmaf; -std=c11 keeps gcc from
 * contracting them, and the files say fp-contract=off too) and sums in an order fixed by
 * the source, never by the vector width. OpenMP regions are outlined before cloning, so the
 * clones go on the per-tile or per-block functions that the parallel loops call.
 * -DRL_NO_CLONES compiles one version for whatever -m flags are given (tools/check_clones.sh
 * builds each ISA that way and compares the bits). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(RL_NO_CLONES)
#define RL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RL_CLONES
#endif

/* For kernels written once per vector width (ops_attn_tiles.h) and picked by hand from
 * __builtin_cpu_supports: the ISA of each width. (FMA is left out on purpose: no kernel
 * uses it, and "avx2,fma" in target_clones would make two clones, not one.) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(RL_NO_CLONES)
#define RL_HAVE_CPU_DISPATCH 1
#define RL_TARGET_AVX512 __attribute__((target("avx512f")))
#define RL_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define RL_HAVE_CPU_DISPATCH 0
#define RL_TARGET_AVX512
#define RL_TARGET_AVX2
#endif

/* Vectors here never cross a non-inlined call boundary in a way other code sees (all helpers
 * are static inline), so gcc's note that 64-byte vector arguments change the ABI without
 * AVX-512 does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* 16, 8 and 4 floats as one value (GCC/clang vector extensions), with int lanes of the same
 * width for masks: one zmm, ymm or xmm register where the ISA has it. aligned(4): loads from
 * any float address. A kernel meant for every ISA is written once per width (see
 * ops_attn_tiles.h): gcc lowers a vector wider than the ISA's registers through memory. */
typedef float rl_v16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t rl_v16i __attribute__((vector_size(64), aligned(4)));
typedef float rl_v8 __attribute__((vector_size(32), aligned(4)));
typedef int32_t rl_v8i __attribute__((vector_size(32), aligned(4)));
typedef float rl_v4 __attribute__((vector_size(16), aligned(4)));
typedef int32_t rl_v4i __attribute__((vector_size(16), aligned(4)));
/* Two-source lane shuffle: lanes i0..i3 of the concatenation (a, b). gcc and clang spell the
 * builtin differently (the fuzz build uses clang). */
#if defined(__clang__)
#define RL_SHUF4(a, b, i0, i1, i2, i3) __builtin_shufflevector((a), (b), i0, i1, i2, i3)
#else
#define RL_SHUF4(a, b, i0, i1, i2, i3) __builtin_shuffle((a), (b), (rl_v4i){ i0, i1, i2, i3 })
#endif
#define RL_LD16(p) (*(const rl_v16 *)(const void *)(p))
#define RL_ST16(p, x) (*(rl_v16 *)(void *)(p) = (x))
#define RL_LD8(p) (*(const rl_v8 *)(const void *)(p))
#define RL_ST8(p, x) (*(rl_v8 *)(void *)(p) = (x))
#define RL_LD4(p) (*(const rl_v4 *)(const void *)(p))
#define RL_ST4(p, x) (*(rl_v4 *)(void *)(p) = (x))

/* m ? a : b per lane for float vectors of type VT with int lanes VTI, m from a vector
 * compare (all ones or zero). */
#define RL_SEL(VT, VTI, m, a, b) ((VT)(((VTI)(a) & (m)) | ((VTI)(b) & ~(m))))
#define RL_SEL16(m, a, b) RL_SEL(rl_v16, rl_v16i, m, a, b)

/* rl_expf_vN(px): *px = rl_expf_fast of each lane, the same operations in the same order, so
 * each lane gets the bits rl_expf_fast gives for it. (Vectors go by pointer: gcc notes an
 * ABI change for 64-byte vector parameters without AVX-512, even for inlined functions.) */
#define RL_DEFINE_EXPF(N)                                                                   \
    static inline __attribute__((always_inline)) void rl_expf_v##N(rl_v##N *px)             \
    {                                                                                       \
        const rl_v##N x = *px, zero = { 0 };                                                \
        const rl_v##N lo = zero - 87.3f, hi = zero + 88.0f, shifter = zero + 12582912.0f;   \
        rl_v##N xc = RL_SEL(rl_v##N, rl_v##N##i, x > lo, x, lo);   /* NaN takes lo */      \
        xc = RL_SEL(rl_v##N, rl_v##N##i, xc > hi, hi, xc);                                  \
        const rl_v##N n = (xc * 1.44269504088896341f + shifter) - shifter;                  \
        rl_v##N r = xc - n * 0.693359375f;                                                  \
        r = r + n * 2.12194440e-4f;                                                         \
        rl_v##N p = zero + 1.9875691500e-4f;                                                \
        p = p * r + 1.3981999507e-3f;                                                       \
        p = p * r + 8.3334519073e-3f;                                                       \
        p = p * r + 4.1665795894e-2f;                                                       \
        p = p * r + 1.6666665459e-1f;                                                       \
        p = p * r + 5.0000001201e-1f;                                                       \
        p = p * r * r + r + 1.0f;                                                           \
        const rl_v##N##i bits = (__builtin_convertvector(n, rl_v##N##i) + 127) << 23;       \
        rl_v##N y = p * (rl_v##N)bits;                                                      \
        y = RL_SEL(rl_v##N, rl_v##N##i, x < lo, zero, y);                                   \
        *px = RL_SEL(rl_v##N, rl_v##N##i, x != x, x, y);                                    \
    }
RL_DEFINE_EXPF(16)
RL_DEFINE_EXPF(8)
RL_DEFINE_EXPF(4)

#endif
