/* core/guide.c - classifier-free guidance, see guide.h. */
#include "core/guide.h"

#include <math.h>

int rl_guide_active(float g)
{
    return g > 1.0f;
}

void rl_guide_cfg(float *eps, const float *eps_u, const float *eps_c, float g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        // torch: noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond),
        // each op one float32 rounding (-std=c11 implies -ffp-contract=off: no fused FMA)
        float d = eps_c[i] - eps_u[i];
        float s = g * d;
        eps[i] = eps_u[i] + s;
    }
}

// unbiased standard deviation, as torch.std (the n - 1 cancels in the ratio; kept for clarity)
static double std_of(const float *x, size_t n)
{
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++) m += x[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
    return n > 1 ? sqrt(v / (double)(n - 1)) : 0.0;
}

void rl_guide_rescale(float *eps, const float *eps_c, float phi, size_t n)
{
    if (!(phi > 0.0f) || n < 2) return;
    const double sd = std_of(eps, n);
    if (!(sd > 0.0)) return;   // a constant prediction has nothing to rescale
    const float s = (float)(std_of(eps_c, n) / sd);
    for (size_t i = 0; i < n; i++) {
        const float r = eps[i] * s;
        eps[i] = phi * r + (1.0f - phi) * eps[i];
    }
}
