/* core/guide.h - classifier-free guidance (Ho & Salimans 2022), as diffusers' pipelines do it:
 *   eps = eps_u + g * (eps_c - eps_u)
 * with eps_u the prediction for the unconditional (empty or negative) prompt and eps_c for the
 * prompt. diffusers runs guidance only when g > 1 (do_classifier_free_guidance); otherwise the
 * unconditional pass is skipped and eps = eps_c. */
#ifndef RL_CORE_GUIDE_H
#define RL_CORE_GUIDE_H

#include <stddef.h>

/* 1 when guidance g needs the unconditional pass (g > 1, as diffusers). */
int rl_guide_active(float g);

/* eps (n) = eps_u + g * (eps_c - eps_u), rounded in float32 in torch's order (difference,
 * product, sum) so it matches the Python pipeline bit for bit. eps may alias eps_u or eps_c. */
void rl_guide_cfg(float *eps, const float *eps_u, const float *eps_c, float g, size_t n);

#endif
