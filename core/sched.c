/* core/sched.c - DDIM (eta = 0), DDPM and Euler schedulers as diffusers computes them (see
 * core/sched.h). Formulas: diffusers' DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler
 * (set_timesteps, step, scale_model_input, add_noise, get_velocity); DDIM: Song et al. 2020,
 * eq. 12 with sigma = 0; zero-SNR rescale: Lin et al. 2023, algorithm 1.
 * Tables and per-step coefficients are double; each element is computed in double and rounded
 * once to float. */
#include "core/sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rl_sched_cfg rl_sched_cfg_default(rl_sched_kind kind)
{
    return (rl_sched_cfg){
        .kind = kind,
        .num_train_timesteps = 1000,
        .beta_start = 0.0001,
        .beta_end = 0.02,
        .beta_schedule = RL_BETA_LINEAR,
        .rescale_betas_zero_snr = 0,
        .timestep_spacing = kind == RL_SCHED_EULER ? RL_SPACING_LINSPACE : RL_SPACING_LEADING,
        .steps_offset = 0,
        .set_alpha_to_one = 1,
        .clip_sample = kind != RL_SCHED_EULER,
        .clip_sample_range = 1.0,
        .prediction_type = RL_PRED_EPSILON,
    };
}

void rl_sched_free(rl_sched *s)
{
    if (!s) return;
    free(s->alphas_cumprod);
    free(s->timesteps);
    free(s->sigmas);
    *s = (rl_sched){0};
}

// ---- tables ---------------------------------------------------------------------------------

/* alpha_bar of the cosine schedule (Nichol & Dhariwal), squaredcos_cap_v2. */
static double cos_alpha_bar(double t) { return pow(cos((t + 0.008) / 1.008 * M_PI / 2), 2); }

/* betas (T) as diffusers builds them; the linspace is numpy's (start + i * step, last = stop). */
static void make_betas(double *b, const rl_sched_cfg *c)
{
    const int T = c->num_train_timesteps;
    if (c->beta_schedule == RL_BETA_SQUAREDCOS_CAP_V2) {
        for (int i = 0; i < T; i++) {
            double v = 1.0 - cos_alpha_bar((double)(i + 1) / T) / cos_alpha_bar((double)i / T);
            b[i] = v < 0.999 ? v : 0.999;
        }
        return;
    }
    int sq = c->beta_schedule == RL_BETA_SCALED_LINEAR;
    double lo = sq ? sqrt(c->beta_start) : c->beta_start, hi = sq ? sqrt(c->beta_end) : c->beta_end;
    double step = T > 1 ? (hi - lo) / (T - 1) : 0.0;
    for (int i = 0; i < T; i++) {
        double v = i == T - 1 && T > 1 ? hi : lo + i * step;
        b[i] = sq ? v * v : v;
    }
}

/* Lin et al. 2023: shift and scale sqrt(alpha_bar) so the last is 0 and the first unchanged. */
static int rescale_zero_snr(double *b, int T)
{
    double *a = malloc((size_t)T * sizeof *a);
    if (!a) return 0;
    double prod = 1.0;
    for (int i = 0; i < T; i++) {
        prod *= 1.0 - b[i];
        a[i] = sqrt(prod);
    }
    double a0 = a[0], aT = a[T - 1];
    for (int i = 0; i < T; i++) {
        a[i] = (a[i] - aT) * (a0 / (a0 - aT));
        a[i] = a[i] * a[i];
    }
    b[0] = 1.0 - a[0];
    for (int i = 1; i < T; i++) b[i] = 1.0 - a[i] / a[i - 1];
    free(a);
    return 1;
}

/* The inference timesteps of set_timesteps (numpy's linspace/arange/round semantics:
 * round half to even). Returns the count written (at most cap), or -1 when numpy's arange
 * would give more than cap. */
static int make_timesteps(double *ts, int cap, const rl_sched_cfg *c, int n, int integer)
{
    const int T = c->num_train_timesteps;
    switch (c->timestep_spacing) {
    case RL_SPACING_LINSPACE: {
        double step = n > 1 ? (double)(T - 1) / (n - 1) : 0.0;
        for (int k = 0; k < n; k++) {
            double v = (k == n - 1 && n > 1) ? (double)(T - 1) : k * step;
            ts[n - 1 - k] = integer ? nearbyint(v) : v;
        }
        return n;
    }
    case RL_SPACING_LEADING: {
        int r = T / n;
        for (int k = 0; k < n; k++) ts[n - 1 - k] = (double)k * r + c->steps_offset;
        return n;
    }
    case RL_SPACING_TRAILING: {
        double step = -(double)T / n;
        double len = ceil((0.0 - T) / step);
        if (len > cap) return -1;
        double delta = (T + step) - (double)T;          // numpy fills start + i * (v1 - v0)
        for (int k = 0; k < (int)len; k++) ts[k] = nearbyint(T + k * delta) - 1.0;
        return (int)len;
    }
    }
    return 0;
}

rl_status rl_sched_init(rl_sched *s, const rl_sched_cfg *cfg, int n_steps, rl_err *err)
{
    rl_status rc;
    double *b = NULL;
    *s = (rl_sched){0};
    s->cfg = *cfg;
    const int T = cfg->num_train_timesteps;
    if (T < 1 || T > 1000000)
        return rl_errf(err, RL_E_PARAM, "scheduler: num_train_timesteps %d is outside [1, 1000000]",
                       T);
    if (n_steps < 1 || n_steps > T)
        return rl_errf(err, RL_E_PARAM, "scheduler: %d inference steps requested, expected "
                       "[1, num_train_timesteps = %d]", n_steps, T);
    if (cfg->beta_schedule != RL_BETA_SQUAREDCOS_CAP_V2 &&
        !(cfg->beta_start > 0 && cfg->beta_start <= 1 && cfg->beta_end > 0 && cfg->beta_end <= 1))
        return rl_errf(err, RL_E_PARAM, "scheduler: beta_start %g and beta_end %g must lie in "
                       "(0, 1]", cfg->beta_start, cfg->beta_end);
    if (cfg->clip_sample && !(cfg->clip_sample_range > 0))
        return rl_errf(err, RL_E_PARAM, "scheduler: clip_sample_range %g must be positive",
                       cfg->clip_sample_range);
    if (cfg->steps_offset < 0 || cfg->steps_offset >= T)
        return rl_errf(err, RL_E_PARAM, "scheduler: steps_offset %d is outside [0, %d)",
                       cfg->steps_offset, T);

    s->T = T;
    b = malloc((size_t)T * sizeof *b);
    s->alphas_cumprod = malloc((size_t)T * sizeof *s->alphas_cumprod);
    s->timesteps = malloc(((size_t)n_steps + 1) * sizeof *s->timesteps);
    if (!b || !s->alphas_cumprod || !s->timesteps) goto nomem;

    make_betas(b, cfg);
    if (cfg->rescale_betas_zero_snr) {
        if (T < 2 || !(b[0] < 1)) {
            rc = rl_errf(err, RL_E_PARAM, "scheduler: rescale_betas_zero_snr needs at least 2 "
                         "timesteps and beta_0 < 1");
            goto fail;
        }
        if (!rescale_zero_snr(b, T)) goto nomem;
    }
    double prod = 1.0;
    for (int i = 0; i < T; i++) {
        prod *= 1.0 - b[i];
        s->alphas_cumprod[i] = prod;
    }
    s->final_alpha_cumprod = cfg->set_alpha_to_one ? 1.0 : s->alphas_cumprod[0];
    s->stride = T / n_steps;
    s->init_noise_sigma = 1.0;

    int integer = cfg->kind != RL_SCHED_EULER;
    s->n_steps = make_timesteps(s->timesteps, n_steps + 1, cfg, n_steps, integer);
    if (s->n_steps < 1) {
        rc = rl_errf(err, RL_E_PARAM, "scheduler: no timesteps for %d steps", n_steps);
        goto fail;
    }
    for (int i = 0; i < s->n_steps; i++) {
        if (!(s->timesteps[i] >= 0 && s->timesteps[i] <= T - 1)) {
            rc = rl_errf(err, RL_E_PARAM, "scheduler: timestep %g (step %d of %d, steps_offset "
                         "%d) is outside [0, %d]", s->timesteps[i], i, n_steps,
                         cfg->steps_offset, T - 1);
            goto fail;
        }
    }

    if (cfg->kind == RL_SCHED_EULER) {
        // sigma(t) = sqrt((1 - abar) / abar), linearly interpolated at the timesteps, then 0
        if (cfg->rescale_betas_zero_snr) s->alphas_cumprod[T - 1] = 0x1p-24;   // sigma finite
        s->sigmas = malloc(((size_t)s->n_steps + 1) * sizeof *s->sigmas);
        if (!s->sigmas) goto nomem;
        const double *ac = s->alphas_cumprod;
        double smax = 0;
        for (int i = 0; i < s->n_steps; i++) {
            double t = s->timesteps[i];
            int j = (int)floor(t);
            double sj = sqrt((1 - ac[j]) / ac[j]);
            double v = sj;
            if (j + 1 < T && t > j) {
                double sk = sqrt((1 - ac[j + 1]) / ac[j + 1]);
                v = (sk - sj) * (t - j) + sj;
            }
            s->sigmas[i] = v;
            if (v > smax) smax = v;
        }
        s->sigmas[s->n_steps] = 0.0;
        s->init_noise_sigma = cfg->timestep_spacing == RL_SPACING_LEADING ? sqrt(smax * smax + 1)
                                                                         : smax;
    }
    free(b);
    return RL_OK;

nomem:
    rc = rl_errf(err, RL_E_NOMEM, "scheduler: out of memory");
fail:
    free(b);
    rl_sched_free(s);
    return rc;
}

// ---- steps ----------------------------------------------------------------------------------

void rl_sched_scale_input(const rl_sched *s, float *out, const float *x, size_t n, int i)
{
    if (s->cfg.kind != RL_SCHED_EULER) {
        if (out != x) memcpy(out, x, n * sizeof *out);
        return;
    }
    double sg = s->sigmas[i], k = 1.0 / sqrt(sg * sg + 1);
    for (size_t e = 0; e < n; e++) out[e] = (float)(x[e] * k);
}

int rl_sched_needs_noise(const rl_sched *s, int i)
{
    return s->cfg.kind == RL_SCHED_DDPM && s->timesteps[i] > 0;
}

/* Predicted x0 and epsilon from the model output (the three prediction types). */
static inline void predict(const rl_sched_cfg *c, double sa, double sb, double x, double mo,
                           double *x0, double *ep)
{
    switch (c->prediction_type) {
    case RL_PRED_SAMPLE:  *x0 = mo; *ep = (x - sa * mo) / sb; break;
    case RL_PRED_V:       *x0 = sa * x - sb * mo; *ep = sa * mo + sb * x; break;
    default:              *x0 = (x - sb * mo) / sa; *ep = mo; break;     // epsilon
    }
}

static inline double clip(const rl_sched_cfg *c, double v)
{
    if (!c->clip_sample) return v;
    double r = c->clip_sample_range;
    return v < -r ? -r : v > r ? r : v;
}

void rl_sched_step(const rl_sched *s, float *x_prev, const float *x, const float *eps,
                   const float *noise, size_t n, int i)
{
    const rl_sched_cfg *c = &s->cfg;
    const double *ac = s->alphas_cumprod;
    const double t = s->timesteps[i];

    if (c->kind == RL_SCHED_EULER) {
        double sg = s->sigmas[i], dt = s->sigmas[i + 1] - sg, q = sg * sg + 1;
        for (size_t e = 0; e < n; e++) {
            double xv = x[e], mo = eps[e], x0;
            switch (c->prediction_type) {
            case RL_PRED_EPSILON: x0 = xv - sg * mo; break;
            case RL_PRED_V:       x0 = mo * (-sg / sqrt(q)) + xv / q; break;
            default:              x0 = mo; break;
            }
            double d = (xv - x0) / sg;                  // dx/dsigma
            x_prev[e] = (float)(xv + d * dt);
        }
        return;
    }

    const int ti = (int)t;
    const double a_t = ac[ti], sa = sqrt(a_t), sb = sqrt(1 - a_t);
    if (c->kind == RL_SCHED_DDIM) {
        // x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps
        int prev = ti - s->stride;
        double a_p = prev >= 0 ? ac[prev] : s->final_alpha_cumprod;
        double ka = sqrt(a_p), kb = sqrt(1 - a_p);
        for (size_t e = 0; e < n; e++) {
            double x0, ep;
            predict(c, sa, sb, x[e], eps[e], &x0, &ep);
            x_prev[e] = (float)(ka * clip(c, x0) + kb * ep);
        }
        return;
    }

    // DDPM: posterior mean (Ho et al. eq. 7) plus sqrt(posterior variance) * noise
    int prev = i + 1 < s->n_steps ? (int)s->timesteps[i + 1] : -1;
    double a_p = prev >= 0 ? ac[prev] : 1.0;
    double b_t = 1 - a_t, b_p = 1 - a_p, cur_a = a_t / a_p, cur_b = 1 - cur_a;
    double k0 = sqrt(a_p) * cur_b / b_t, kx = sqrt(cur_a) * b_p / b_t;
    double var = b_p / b_t * cur_b;
    double sd = sqrt(var > 1e-20 ? var : 1e-20);
    int add = t > 0;
    for (size_t e = 0; e < n; e++) {
        double x0, ep;
        predict(c, sa, sb, x[e], eps[e], &x0, &ep);
        double v = k0 * clip(c, x0) + kx * x[e];
        if (add) v += sd * noise[e];
        x_prev[e] = (float)v;
    }
}

void rl_sched_add_noise(const rl_sched *s, float *out, const float *x0, const float *noise,
                        size_t n, int t)
{
    double a = s->alphas_cumprod[t], ka = sqrt(a), kb = sqrt(1 - a);
    for (size_t e = 0; e < n; e++) out[e] = (float)(ka * x0[e] + kb * noise[e]);
}

void rl_sched_velocity(const rl_sched *s, float *out, const float *x0, const float *noise,
                       size_t n, int t)
{
    double a = s->alphas_cumprod[t], ka = sqrt(a), kb = sqrt(1 - a);
    for (size_t e = 0; e < n; e++) out[e] = (float)(ka * noise[e] - kb * x0[e]);
}
