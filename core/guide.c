/* core/guide.c - classifier-free guidance, see guide.h. */
#include "core/guide.h"

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
