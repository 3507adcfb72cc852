/* temporal/freeinit.h - FreeInit noise re-initialisation (Wu et al. 2023, "FreeInit: Bridging
 * Initialization Gap in Video Diffusion Models"; diffusers FreeInitMixin).
 *
 * After a denoising pass, the clean latents are diffused back to the last timestep (z_t, by
 * the scheduler, outside this file) and re-mixed with fresh Gaussian noise in the 3-D
 * frequency domain over (F, H, W):
 *     out = IFFT( FFT(z_t) * LPF  +  FFT(noise) * (1 - LPF) ),
 * keeping the low spatio-temporal frequencies of z_t (the layout the first pass found) and the
 * high ones of fresh noise. The low-pass filter is defined on the centred (fftshift-ed)
 * spectrum at index (t, h, w) through
 *     d^2 = ((d_s / d_t) (2t/F - 1))^2 + (2h/H - 1)^2 + (2w/W - 1)^2
 *     Gaussian:       exp(-d^2 / (2 d_s^2))
 *     Butterworth n:  1 / (1 + (d^2 / d_s^2)^n)
 * exactly as diffusers' _get_free_init_freq_filter. diffusers takes the real part of a
 * complex IFFT; for odd sizes its filter is not symmetric in k <-> -k, and the real part
 * equals using the symmetrised filter (LPF(k) + LPF(-k)) / 2 with real-to-complex FFTs, which
 * is what this file does (FFTW single precision, r2c/c2r, plans made once in init).
 * Deterministic: FFTW_ESTIMATE plans (no timing-dependent algorithm choice), single-threaded
 * FFTW, and a mixing loop whose iterations write disjoint outputs. */
#ifndef RL_TEMPORAL_FREEINIT_H
#define RL_TEMPORAL_FREEINIT_H

#include "core/err.h"

typedef enum { RL_FREEINIT_GAUSSIAN = 0, RL_FREEINIT_BUTTERWORTH } rl_freeinit_filter;

typedef struct {
    int F, H, W, Wh;          // latent frames, height, width; Wh = W/2 + 1 (r2c half spectrum)
    float *lpf;               // (F, H, Wh) symmetrised low-pass filter, unshifted order
    float *real;              // (F, H, W) FFT work buffer
    void *spec_a, *spec_b;    // (F, H, Wh) complex spectra (fftwf_complex)
    void *plan_fwd, *plan_inv;  // fftwf_plan r2c / c2r on real <-> spec_a
} rl_freeinit;

/* diffusers' filter value at centred spectrum index (t, h, w) of an (F, H, W) grid. */
double rl_freeinit_filter_at(rl_freeinit_filter kind, int order, double d_s, double d_t, int t,
                             int h, int w, int F, int H, int W);

/* Builds the filter and the FFTW plans. Errors: RL_E_PARAM (sizes < 1, d_s or d_t outside
 * (0, 1], order < 1, unknown kind), RL_E_NOMEM. Not thread-safe (the FFTW planner is global).
 * Free with rl_freeinit_free (idempotent, safe on a zeroed struct). */
rl_status rl_freeinit_init(rl_freeinit *fi, int F, int H, int W, rl_freeinit_filter kind,
                           int order, double d_s, double d_t, rl_err *err);
void rl_freeinit_free(rl_freeinit *fi);

/* out, z, noise: (C, F, H, W); each channel is mixed on its own. out may equal z or noise.
 * Uses fi's buffers: one call at a time per fi. */
void rl_freeinit_mix(rl_freeinit *fi, float *out, const float *z, const float *noise, int C);

#endif
