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

/* Guidance rescale (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are
 * Flawed", section 3.4; diffusers' rescale_noise_cfg): a guided prediction's standard
 * deviation grows with g, which over-saturates samples of zero-terminal-SNR models. With
 * s = std(eps_c) / std(eps) over the n values of one clip,
 *   eps <- phi * (s * eps) + (1 - phi) * eps,
 * phi in [0, 1] (0: unchanged; the paper uses 0.7). eps is the guided prediction (in place). */
void rl_guide_rescale(float *eps, const float *eps_c, float phi, size_t n);

#endif
