/* core/sched.h - diffusion schedulers as diffusers computes them: DDIMScheduler (eta = 0),
 * DDPMScheduler (variance_type fixed_small) and EulerDiscreteScheduler, plus add_noise and
 * get_velocity for training.
 *
 * rl_sched_init turns a config (io/config_sched.c reads scheduler_config.json) and a number of
 * inference steps into tables: alphas_cumprod (T), the timesteps (n_steps) and, for Euler, the
 * sigmas (n_steps + 1). Steps are then pure functions of (x, model output, step index i), with
 * t = timesteps[i]; the coefficients are computed in double, elements are float.
 * Supported: beta_schedule linear / scaled_linear / squaredcos_cap_v2; rescale_betas_zero_snr;
 * timestep_spacing leading / trailing / linspace; steps_offset; set_alpha_to_one; clip_sample
 * (+ clip_sample_range); prediction_type epsilon / v_prediction / sample. Not supported (the
 * config reader refuses them): thresholding, trained_betas, karras sigmas, learned variances. */
#ifndef RL_CORE_SCHED_H
#define RL_CORE_SCHED_H

#include <stddef.h>

#include "core/err.h"

typedef enum { RL_SCHED_DDIM = 0, RL_SCHED_DDPM, RL_SCHED_EULER } rl_sched_kind;
typedef enum { RL_BETA_LINEAR = 0, RL_BETA_SCALED_LINEAR, RL_BETA_SQUAREDCOS_CAP_V2 } rl_beta_schedule;
typedef enum { RL_SPACING_LEADING = 0, RL_SPACING_TRAILING, RL_SPACING_LINSPACE } rl_spacing;
typedef enum { RL_PRED_EPSILON = 0, RL_PRED_V, RL_PRED_SAMPLE } rl_pred_type;

typedef struct {
    rl_sched_kind kind;
    int num_train_timesteps;        // T
    double beta_start, beta_end;
    rl_beta_schedule beta_schedule;
    int rescale_betas_zero_snr;
    rl_spacing timestep_spacing;
    int steps_offset;
    int set_alpha_to_one;           // DDIM: alphas_cumprod of "t = -1" is 1 (else alphas_cumprod[0])
    int clip_sample;                // DDIM, DDPM: clamp the predicted x0 to +-clip_sample_range
    double clip_sample_range;
    rl_pred_type prediction_type;
} rl_sched_cfg;

/* diffusers' defaults for the class (DDIM/DDPM: linear 1e-4..0.02, clip_sample on, leading;
 * Euler: linspace). */
rl_sched_cfg rl_sched_cfg_default(rl_sched_kind kind);

typedef struct {
    rl_sched_cfg cfg;
    int T;
    double *alphas_cumprod;         // (T)
    double final_alpha_cumprod;     // DDIM's value for t < 0
    int n_steps;                    // length of timesteps (normally the requested count)
    double *timesteps;              // (n_steps) descending; integers except Euler + linspace
    double *sigmas;                 // (n_steps + 1) Euler, last 0; NULL otherwise
    double init_noise_sigma;        // scale of the initial noise (1 except Euler)
    int stride;                     // T / requested steps: DDIM's previous-timestep distance
} rl_sched;

/* Builds the tables for n_steps inference steps. Errors (RL_E_PARAM): T < 1, n_steps outside
 * [1, T], betas out of (0, 1], a config whose zero-SNR rescale is undefined; RL_E_NOMEM.
 * On failure s is left freed. */
rl_status rl_sched_init(rl_sched *s, const rl_sched_cfg *cfg, int n_steps, rl_err *err);
void rl_sched_free(rl_sched *s);    // idempotent, safe on a zeroed struct

/* out (n) = the UNet input at step i: x / sqrt(sigma_i^2 + 1) for Euler, x otherwise.
 * out may equal x. */
void rl_sched_scale_input(const rl_sched *s, float *out, const float *x, size_t n, int i);

/* 1 when step i of a DDPM scheduler adds noise (t > 0): the caller then draws noise (n) with
 * rl_rng_randn, which gives the numbers DDPMScheduler.step draws from a CPU generator. */
int rl_sched_needs_noise(const rl_sched *s, int i);

/* x_prev (n) = the sample after step i from x (n) and the model output eps (n).
 * noise (n): DDPM only, when rl_sched_needs_noise; else ignored (may be NULL).
 * x_prev may equal x. DDIM's previous timestep is t - T / n_steps (as DDIMScheduler.step);
 * DDPM's is the next entry of the list (-1 after the last). */
void rl_sched_step(const rl_sched *s, float *x_prev, const float *x, const float *eps,
                   const float *noise, size_t n, int i);

/* Training (DDPM/DDIM forms, any training timestep 0 <= t < T):
 * add_noise: out = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise;
 * velocity:  out = sqrt(abar_t) noise - sqrt(1 - abar_t) x0. out may alias an input. */
void rl_sched_add_noise(const rl_sched *s, float *out, const float *x0, const float *noise,
                        size_t n, int t);
void rl_sched_velocity(const rl_sched *s, float *out, const float *x0, const float *noise,
                       size_t n, int t);

#endif
