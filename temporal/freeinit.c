/* temporal/freeinit.c - FreeInit frequency mixing with FFTW (see freeinit.h). */
#include "temporal/freeinit.h"

#include <math.h>
#include <string.h>

#include <fftw3.h>

double rl_freeinit_filter_at(rl_freeinit_filter kind, int order, double d_s, double d_t, int t,
                             int h, int w, int F, int H, int W)
{
    const double ct = (d_s / d_t) * (2.0 * t / F - 1), ch = 2.0 * h / H - 1, cw = 2.0 * w / W - 1;
    const double d2 = ct * ct + ch * ch + cw * cw;
    if (kind == RL_FREEINIT_GAUSSIAN) return exp(-d2 / (2 * d_s * d_s));
    return 1.0 / (1.0 + pow(d2 / (d_s * d_s), order));
}

/* Centred (fftshift) position of unshifted frequency index k on an axis of n points. */
static int centred(int k, int n) { return (k + n / 2) % n; }

void rl_freeinit_free(rl_freeinit *fi)
{
    if (fi->plan_fwd) fftwf_destroy_plan(fi->plan_fwd);
    if (fi->plan_inv) fftwf_destroy_plan(fi->plan_inv);
    fftwf_free(fi->lpf);
    fftwf_free(fi->real);
    fftwf_free(fi->spec_a);
    fftwf_free(fi->spec_b);
    *fi = (rl_freeinit){ 0 };
}

rl_status rl_freeinit_init(rl_freeinit *fi, int F, int H, int W, rl_freeinit_filter kind,
                           int order, double d_s, double d_t, rl_err *err)
{
    *fi = (rl_freeinit){ 0 };
    if (F < 1 || H < 1 || W < 1)
        return rl_errf(err, RL_E_PARAM, "FreeInit: latent size (%d, %d, %d): expected >= 1 each",
                       F, H, W);
    if (!(d_s > 0 && d_s <= 1) || !(d_t > 0 && d_t <= 1))
        return rl_errf(err, RL_E_PARAM, "FreeInit: stop frequencies d_s %g, d_t %g: expected "
                       "each in (0, 1]", d_s, d_t);
    if (kind != RL_FREEINIT_GAUSSIAN && kind != RL_FREEINIT_BUTTERWORTH)
        return rl_errf(err, RL_E_PARAM, "FreeInit: unknown filter %d", (int)kind);
    if (kind == RL_FREEINIT_BUTTERWORTH && (order < 1 || order > 64))
        return rl_errf(err, RL_E_PARAM, "FreeInit: Butterworth order %d: expected 1..64", order);

    const int Wh = W / 2 + 1;
    const size_t nr = (size_t)F * H * W, nc = (size_t)F * H * Wh;
    fi->F = F; fi->H = H; fi->W = W; fi->Wh = Wh;
    fi->lpf = fftwf_malloc(nc * sizeof(float));
    fi->real = fftwf_malloc(nr * sizeof(float));
    fi->spec_a = fftwf_malloc(nc * sizeof(fftwf_complex));
    fi->spec_b = fftwf_malloc(nc * sizeof(fftwf_complex));
    if (!fi->lpf || !fi->real || !fi->spec_a || !fi->spec_b) {
        rl_freeinit_free(fi);
        return rl_errf(err, RL_E_NOMEM, "FreeInit: out of memory for a (%d, %d, %d) spectrum", F, H, W);
    }
    // ESTIMATE: the same plan (and so the same rounding) on every run
    fi->plan_fwd = fftwf_plan_dft_r2c_3d(F, H, W, fi->real, fi->spec_a, FFTW_ESTIMATE);
    fi->plan_inv = fftwf_plan_dft_c2r_3d(F, H, W, fi->spec_a, fi->real, FFTW_ESTIMATE);
    if (!fi->plan_fwd || !fi->plan_inv) {
        rl_freeinit_free(fi);
        return rl_errf(err, RL_E_INTERNAL, "FreeInit: FFTW could not plan (%d, %d, %d)", F, H, W);
    }
    // the filter at frequency k and at -k, averaged (see the header), on the half spectrum
    for (int kt = 0; kt < F; kt++)
        for (int kh = 0; kh < H; kh++)
            for (int kw = 0; kw < Wh; kw++) {
                double a = rl_freeinit_filter_at(kind, order, d_s, d_t, centred(kt, F),
                                                 centred(kh, H), centred(kw, W), F, H, W);
                double b = rl_freeinit_filter_at(kind, order, d_s, d_t, centred((F - kt) % F, F),
                                                 centred((H - kh) % H, H),
                                                 centred((W - kw) % W, W), F, H, W);
                fi->lpf[((size_t)kt * H + kh) * Wh + kw] = (float)(0.5 * (a + b));
            }
    return RL_OK;
}

void rl_freeinit_mix(rl_freeinit *fi, float *out, const float *z, const float *noise, int C)
{
    const size_t nr = (size_t)fi->F * fi->H * fi->W, nc = (size_t)fi->F * fi->H * fi->Wh;
    fftwf_complex *A = fi->spec_a, *B = fi->spec_b;
    const float *lpf = fi->lpf;
    const float inv_n = 1.0f / (float)nr;      // FFTW's inverse is unnormalised
    for (int c = 0; c < C; c++) {
        // spectra of the noise (into B) and of z (into A); out may alias either input
        memcpy(fi->real, noise + (size_t)c * nr, nr * sizeof(float));
        fftwf_execute_dft_r2c(fi->plan_fwd, fi->real, B);
        memcpy(fi->real, z + (size_t)c * nr, nr * sizeof(float));
        fftwf_execute(fi->plan_fwd);
        // low frequencies from z, high from the noise
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nc; i++) {
            const float l = lpf[i], hp = 1.0f - l;
            A[i][0] = A[i][0] * l + B[i][0] * hp;
            A[i][1] = A[i][1] * l + B[i][1] * hp;
        }
        fftwf_execute(fi->plan_inv);
        float *o = out + (size_t)c * nr;
        for (size_t i = 0; i < nr; i++) o[i] = fi->real[i] * inv_n;
    }
}
