/* tests/test_freeinit.c - temporal/freeinit: filter values and the full frequency mix against
 * a numpy float64 reference of diffusers' FreeInitMixin (tools/fixtures/make_freeinit.py),
 * plus known spectra: DC passes, a Nyquist checkerboard is removed (and comes back from the
 * noise side), single frequencies are scaled by the filter, Parseval's identity. */
#include <math.h>
#include <string.h>

#include "temporal/freeinit.h"
#include "tests/harness.h"

static void test_fixture(rl_test *t, const char *rel)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, rel)) return;
    const int C = rl_fixture_int(&fx, "C"), F = rl_fixture_int(&fx, "F");
    const int H = rl_fixture_int(&fx, "H"), W = rl_fixture_int(&fx, "W");
    const int order = rl_fixture_int(&fx, "order");
    const double d_s = rl_fixture_float(&fx, "d_s"), d_t = rl_fixture_float(&fx, "d_t");
    const rl_freeinit_filter kind = strcmp(rl_fixture_str(&fx, "filter"), "gaussian") == 0
                                        ? RL_FREEINIT_GAUSSIAN : RL_FREEINIT_BUTTERWORTH;
    const size_t n = (size_t)C * F * H * W;
    const float *z = rl_fixture_f32(&fx, "z", 4, (int[]){ C, F, H, W });
    const float *noise = rl_fixture_f32(&fx, "noise", 4, (int[]){ C, F, H, W });
    const float *mask = rl_fixture_f32(&fx, "mask", 3, (int[]){ F, H, W });
    const float *want = rl_fixture_f32(&fx, "out", 4, (int[]){ C, F, H, W });
    if (!z || !noise || !mask || !want) { rl_fixture_close(&fx); return; }

    // filter values at every centred index: a formula in double vs numpy's, stored as float32
    float *m = rl_test_floats(t, (size_t)F * H * W);
    for (int i = 0; i < F; i++)
        for (int j = 0; j < H; j++)
            for (int k = 0; k < W; k++)
                m[((size_t)i * H + j) * W + k] =
                    (float)rl_freeinit_filter_at(kind, order, d_s, d_t, i, j, k, F, H, W);
    rl_check_close(t, "filter values", m, mask, (size_t)F * H * W, 1e-7, 1e-6);

    rl_freeinit fi;
    rl_err err = { 0 };
    if (!rl_test_check(t, rl_freeinit_init(&fi, F, H, W, kind, order, d_s, d_t, &err) == RL_OK,
                       "init: %s", err.msg)) { rl_fixture_close(&fx); return; }
    float *out = rl_test_floats(t, n);
    rl_freeinit_mix(&fi, out, z, noise, C);
    // float32 FFTs of O(1) values over <= 1584 points: errors ~1e-6; 1e-5 leaves room
    rl_check_close(t, "mix vs diffusers (complex FFT, real part)", out, want, n, 1e-5, 1e-5);
    // in place (out == z)
    float *zz = rl_test_floats(t, n);
    memcpy(zz, z, n * sizeof *zz);
    rl_freeinit_mix(&fi, zz, zz, noise, C);
    rl_check_bitwise(t, "in place", zz, out, n);
    rl_freeinit_free(&fi);
    rl_freeinit_free(&fi);    // idempotent
    rl_fixture_close(&fx);
}

/* Output for z = x, noise = 0 or swapped, on a (F, H, W) grid, Butterworth 4, d_s = d_t = 0.25. */
static void mix1(rl_test *t, float *out, const float *z, const float *noise, int F, int H, int W)
{
    rl_freeinit fi;
    rl_err err = { 0 };
    if (rl_freeinit_init(&fi, F, H, W, RL_FREEINIT_BUTTERWORTH, 4, 0.25, 0.25, &err)) {
        rl_test_fail(t, "init: %s", err.msg);
        return;
    }
    rl_freeinit_mix(&fi, out, z, noise, 1);
    rl_freeinit_free(&fi);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (b ? b[i] : 0)));
    return m;
}

static void test_spectra(rl_test *t, const char *arg)
{
    enum { F = 8, H = 8, W = 16 };
    const size_t n = (size_t)F * H * W;
    float *z = rl_test_floats(t, n), *zero = rl_test_floats(t, n), *out = rl_test_floats(t, n);
    float *want = rl_test_floats(t, n);

    // DC (even sizes: the filter is exactly 1 there) passes unchanged
    for (size_t i = 0; i < n; i++) z[i] = 0.7f;
    mix1(t, out, z, zero, F, H, W);
    double e = max_abs_diff(out, z, n);
    rl_test_check(t, e < 1e-6, "constant field passes: max err %.2e < 1e-6", e);

    // Nyquist checkerboard on every axis: filter ~1e-6 there -> removed from z ...
    for (int i = 0; i < F; i++)
        for (int j = 0; j < H; j++)
            for (int k = 0; k < W; k++) z[((size_t)i * H + j) * W + k] = ((i + j + k) & 1) ? -1.0f : 1.0f;
    mix1(t, out, z, zero, F, H, W);
    e = max_abs_diff(out, NULL, n);
    rl_test_check(t, e < 1e-5, "high-frequency checkerboard removed: max |out| %.2e < 1e-5", e);
    // ... and kept from the noise side
    mix1(t, out, zero, z, F, H, W);
    e = max_abs_diff(out, z, n);
    rl_test_check(t, e < 1e-5, "checkerboard from the noise kept: max err %.2e < 1e-5", e);

    // a cosine at a single frequency is an eigenfunction: scaled by the (symmetric, even
    // sizes) filter value at its centred index
    const int freqs[][3] = { { 0, 0, 1 }, { 1, 1, 0 }, { 0, 3, 5 }, { 2, 0, 7 } };
    for (size_t q = 0; q < sizeof freqs / sizeof freqs[0]; q++) {
        const int ft = freqs[q][0], fh = freqs[q][1], fw = freqs[q][2];
        for (int i = 0; i < F; i++)
            for (int j = 0; j < H; j++)
                for (int k = 0; k < W; k++)
                    z[((size_t)i * H + j) * W + k] =
                        (float)cos(2 * M_PI * ((double)ft * i / F + (double)fh * j / H + (double)fw * k / W));
        double g = rl_freeinit_filter_at(RL_FREEINIT_BUTTERWORTH, 4, 0.25, 0.25, ft + F / 2,
                                         fh + H / 2, fw + W / 2, F, H, W);
        for (size_t i = 0; i < n; i++) want[i] = (float)(g * z[i]);
        mix1(t, out, z, zero, F, H, W);
        char name[96];
        snprintf(name, sizeof name, "cos (%d,%d,%d) scaled by filter %.6f", ft, fh, fw, g);
        rl_check_close(t, name, out, want, n, 2e-6, 0);
    }
}

/* Sum of squares of the output equals (1/N) sum_k |Z_k|^2 LPF_k^2 (noise 0): a naive DFT in
 * double on an odd-sized grid, with the symmetrised filter (LPF(k) + LPF(-k)) / 2. */
static void test_parseval(rl_test *t, const char *arg)
{
    enum { F = 5, H = 4, W = 7 };
    const int N = F * H * W;
    const double d_s = 0.3, d_t = 0.6;
    float *z = rl_test_floats(t, N), *zero = rl_test_floats(t, N), *out = rl_test_floats(t, N);
    rl_test_randu(z, N, 11);
    rl_freeinit fi;
    rl_err err = { 0 };
    if (!rl_test_check(t, rl_freeinit_init(&fi, F, H, W, RL_FREEINIT_GAUSSIAN, 0, d_s, d_t, &err) == RL_OK,
                       "init: %s", err.msg)) return;
    rl_freeinit_mix(&fi, out, z, zero, 1);
    rl_freeinit_free(&fi);
    double e_out = 0, e_in = 0, e_spec = 0;
    for (int i = 0; i < N; i++) { e_out += (double)out[i] * out[i]; e_in += (double)z[i] * z[i]; }
    for (int a = 0; a < F; a++)
        for (int b = 0; b < H; b++)
            for (int c = 0; c < W; c++) {
                double re = 0, im = 0;
                for (int i = 0; i < F; i++)
                    for (int j = 0; j < H; j++)
                        for (int k = 0; k < W; k++) {
                            double ph = -2 * M_PI * ((double)a * i / F + (double)b * j / H + (double)c * k / W);
                            double v = z[(i * H + j) * W + k];
                            re += v * cos(ph);
                            im += v * sin(ph);
                        }
                double g1 = rl_freeinit_filter_at(RL_FREEINIT_GAUSSIAN, 0, d_s, d_t, (a + F / 2) % F,
                                                  (b + H / 2) % H, (c + W / 2) % W, F, H, W);
                double g2 = rl_freeinit_filter_at(RL_FREEINIT_GAUSSIAN, 0, d_s, d_t,
                                                  ((F - a) % F + F / 2) % F, ((H - b) % H + H / 2) % H,
                                                  ((W - c) % W + W / 2) % W, F, H, W);
                double g = 0.5 * (g1 + g2);
                e_spec += (re * re + im * im) * g * g;
            }
    e_spec /= N;
    // float32 FFT: relative error of a sum of squares ~1e-6
    rl_test_check(t, fabs(e_out - e_spec) <= 1e-5 * e_spec,
                  "Parseval: sum out^2 %.8g vs spectrum %.8g (input energy %.4g), rel err %.1e <= 1e-5",
                  e_out, e_spec, e_in, fabs(e_out - e_spec) / e_spec);
}

typedef struct { rl_freeinit fi; const float *z, *noise; int C; } thr_ctx;
static void thr_run(void *p, float *out)
{
    thr_ctx *c = p;
    rl_freeinit_mix(&c->fi, out, c->z, c->noise, c->C);
}

static void test_threads(rl_test *t, const char *arg)
{
    thr_ctx c = { .C = 3 };
    const int F = 8, H = 12, W = 10;
    const size_t n = (size_t)c.C * F * H * W;
    float *z = rl_test_floats(t, n), *noise = rl_test_floats(t, n);
    rl_test_randu(z, n, 1);
    rl_test_randu(noise, n, 2);
    c.z = z; c.noise = noise;
    rl_err err = { 0 };
    if (rl_freeinit_init(&c.fi, F, H, W, RL_FREEINIT_BUTTERWORTH, 4, 0.25, 0.25, &err)) {
        rl_test_fail(t, "init: %s", err.msg);
        return;
    }
    rl_check_threads_bitwise(t, "freeinit mix", thr_run, &c, n);
    rl_freeinit_free(&c.fi);
}

static void test_errors(rl_test *t, const char *arg)
{
    struct { int F, H, W, kind, order; double d_s, d_t; } bad[] = {
        { 0, 8, 8, 1, 4, 0.25, 0.25 }, { 8, 8, 8, 1, 4, 0.0, 0.25 }, { 8, 8, 8, 1, 4, 0.25, 1.5 },
        { 8, 8, 8, 1, 0, 0.25, 0.25 }, { 8, 8, 8, 5, 4, 0.25, 0.25 }, { 8, 8, 8, 0, 4, NAN, 0.25 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_freeinit fi;
        rl_err err = { 0 };
        rl_status rc = rl_freeinit_init(&fi, bad[i].F, bad[i].H, bad[i].W, (rl_freeinit_filter)bad[i].kind,
                                        bad[i].order, bad[i].d_s, bad[i].d_t, &err);
        rl_test_check(t, rc == RL_E_PARAM && fi.lpf == NULL, "case %zu -> %s: %s", i, rl_status_str(rc), err.msg);
        rl_freeinit_free(&fi);
    }
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "fixture/butterworth_f7h6w5", test_fixture, "freeinit/butterworth_f7h6w5.safetensors" },
        { "fixture/gaussian_f4h8w8", test_fixture, "freeinit/gaussian_f4h8w8.safetensors" },
        { "fixture/butterworth_f16h9w11", test_fixture, "freeinit/butterworth_f16h9w11.safetensors" },
        { "spectra", test_spectra, NULL },
        { "parseval", test_parseval, NULL },
        { "threads", test_threads, NULL },
        { "errors", test_errors, NULL },
        { 0 },
    });
}
