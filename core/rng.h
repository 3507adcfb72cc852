/* core/rng.h - torch-compatible CPU random numbers: torch.Generator().manual_seed(seed) and
 * torch.randn / torch.rand on CPU for float32, same bits.
 *
 * The engine is mt19937 seeded as torch's CPUGeneratorImpl seeds it (low 32 bits of the seed,
 * Knuth's initialisation). rl_rng_randn reproduces torch.randn(n, generator=g) for any n:
 *   n >= 16: normal_fill: n uniforms (24-bit), Box-Muller over blocks of 16 (first 8 with the
 *            last 8), the last partial block recomputed from 16 fresh uniforms; the math is
 *            torch's AVX2 kernel (cephes-style float log and sincos with the FMAs the compiled
 *            kernel has), which torch runs on any AVX2 CPU;
 *   n < 16:  one double Box-Muller pair per two values (53-bit uniforms, log1p), the second
 *            value cached in the generator for the next call, as torch does.
 * The state carries over between calls exactly as torch's generator does, so successive calls
 * match successive torch calls on the same generator. A generator is not thread-safe. */
#ifndef RL_CORE_RNG_H
#define RL_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t mt[624];       // mt19937 state
    int mti;                // next index into mt (624: regenerate)
    int has_next_normal;    // torch's next_double_normal_sample is set
    double next_normal;     // the cached second value of a double Box-Muller pair
} rl_rng;

/* torch.Generator().manual_seed(seed): only the low 32 bits reach mt19937; clears the cache. */
void rl_rng_seed(rl_rng *g, uint64_t seed);

/* Raw engine output (torch's random() and random64(): the first draw is the high half). */
uint32_t rl_rng_u32(rl_rng *g);
uint64_t rl_rng_u64(rl_rng *g);

/* out (n): torch.randn(n, generator=g) (any shape with n elements, CPU, float32). */
void rl_rng_randn(rl_rng *g, float *out, size_t n);

/* out (n): torch.rand(n, generator=g): (u32 & 0xFFFFFF) * 2^-24, in [0, 1). */
void rl_rng_rand(rl_rng *g, float *out, size_t n);

#endif
