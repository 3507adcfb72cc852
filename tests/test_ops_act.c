/* tests/test_ops_act.c - silu, gelu, gelu_tanh, quickgelu, geglu, softmax against PyTorch
 * fixtures (tools/fixtures/ops_act.py), central finite differences, thread invariance. */
#include <math.h>
#include <string.h>

#include "core/ops.h"
#include "tests/harness.h"

typedef void (*act_fwd_fn)(float *out, const float *x, size_t n);
typedef void (*act_bwd_fn)(float *dx, const float *dout, const float *x, size_t n);

static const struct {
    const char *fixture;
    act_fwd_fn fwd;
    act_bwd_fn bwd;
} ACTS[] = {
    { "ops/act_silu_n1031.safetensors", rl_silu_fwd, rl_silu_bwd },
    { "ops/act_gelu_n1031.safetensors", rl_gelu_fwd, rl_gelu_bwd },
    { "ops/act_gelu_tanh_n1031.safetensors", rl_gelu_tanh_fwd, rl_gelu_tanh_bwd },
    { "ops/act_quickgelu_n1031.safetensors", rl_quickgelu_fwd, rl_quickgelu_bwd },
};

// ---- finite-difference and thread-invariance contexts ---------------------------------------

/* loss = sum(fwd(x) * r) recomputed from the current x. */
typedef struct {
    int kind;                 // 0 elementwise, 1 geglu, 2 softmax
    act_fwd_fn fwd;
    float *x, *out;
    const float *r;
    size_t n_in, n_out;
    int T, C;                 // geglu (T, C) / softmax (R, C)
} act_ctx;

static void act_forward(act_ctx *c, float *out)
{
    if (c->kind == 0) c->fwd(out, c->x, c->n_in);
    else if (c->kind == 1) rl_geglu_fwd(out, c->x, c->T, c->C);
    else rl_softmax_fwd(out, c->x, c->T, c->C);
}

static double act_loss(void *ctx)
{
    act_ctx *c = ctx;
    act_forward(c, c->out);
    double s = 0.0;
    for (size_t i = 0; i < c->n_out; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void act_run_fwd(void *ctx, float *out) { act_forward(ctx, out); }

/* large random input (past every parallel threshold) for the thread checks */
static float *big_input(rl_test *t, size_t n, float span)
{
    float *x = rl_test_floats(t, n);
    rl_test_randu(x, n, 7);
    for (size_t i = 0; i < n; i++) x[i] *= span;
    return x;
}

typedef struct { act_bwd_fn bwd; const float *dout, *x; size_t n; int kind, T, C; } bwd_ctx;
static void act_run_bwd(void *ctx, float *dx)
{
    bwd_ctx *c = ctx;
    if (c->kind == 0) c->bwd(dx, c->dout, c->x, c->n);
    else if (c->kind == 1) rl_geglu_bwd(dx, c->dout, c->x, c->T, c->C);
    else rl_softmax_bwd(dx, c->dout, c->x, c->T, c->C);   // x plays the saved softmax output
}

// ---- elementwise activations -----------------------------------------------------------------

static void test_elementwise(rl_test *t, const char *arg)
{
    const int k = arg[0] - '0';
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, ACTS[k].fixture)) return;
    const int n = rl_fixture_int(&fx, "n");
    const float *x = rl_fixture_f32(&fx, "x", 1, (int[]){ n });
    const float *want = rl_fixture_f32(&fx, "out", 1, (int[]){ n });
    const float *dout = rl_fixture_f32(&fx, "dout", 1, (int[]){ n });
    const float *dx_want = rl_fixture_f32(&fx, "dx", 1, (int[]){ n });
    if (!x || !want || !dout || !dx_want) { rl_fixture_close(&fx); return; }

    float *out = rl_test_floats(t, n), *dx = rl_test_floats(t, n);
    ACTS[k].fwd(out, x, n);
    // one function evaluation (exp/erf/tanh, a few ulp) per element: near float epsilon
    rl_check_close(t, "out", out, want, n, 1e-6, 1e-5);

    // in place (out may equal x)
    float *io = rl_test_floats(t, n);
    memcpy(io, x, n * sizeof(float));
    ACTS[k].fwd(io, io, n);
    rl_check_bitwise(t, "out in place", io, out, n);

    // backward accumulates: start from 1 and subtract it back
    for (int i = 0; i < n; i++) dx[i] = 1.0f;
    ACTS[k].bwd(dx, dout, x, n);
    for (int i = 0; i < n; i++) dx[i] -= 1.0f;
    // derivative formulas in float, times dout, then +1 -1 (absolute 1e-7 from the +=)
    rl_check_close(t, "dx (+= onto 1)", dx, dx_want, n, 1e-6, 1e-5);

    // finite differences on loss = sum(out * dout); elementwise, so only the perturbed
    // element's rounding enters: error ~ 1e-7 |out| / h
    float *xp = rl_test_floats(t, n), *g = rl_test_floats(t, n);
    memcpy(xp, x, n * sizeof(float));
    ACTS[k].bwd(g, dout, xp, n);
    act_ctx c = { .kind = 0, .fwd = ACTS[k].fwd, .x = xp, .out = rl_test_floats(t, n),
                  .r = dout, .n_in = n, .n_out = n };
    rl_check_grad_fd(t, "dx", act_loss, &c, xp, g, n, 200, 1e-3, 1e-3, 1e-2);

    // thread invariance on a large input (past the parallel threshold)
    const size_t nb = 100003;
    act_ctx cb = { .kind = 0, .fwd = ACTS[k].fwd, .x = big_input(t, nb, 8.0f), .n_in = nb };
    rl_check_threads_bitwise(t, "fwd", act_run_fwd, &cb, nb);
    bwd_ctx bb = { .bwd = ACTS[k].bwd, .dout = big_input(t, nb, 1.0f), .x = cb.x, .n = nb };
    rl_check_threads_bitwise(t, "bwd", act_run_bwd, &bb, nb);
    rl_fixture_close(&fx);
}

// ---- tails of the fast exp ------------------------------------------------------------------

static void test_extremes(rl_test *t, const char *arg)
{
    (void)arg;
    // silu/quickgelu at huge |x|: exp saturates, results must be exact limits, never NaN
    const float x[] = { -1000.0f, -100.0f, -88.5f, -87.0f, 0.0f, -0.0f, 87.0f, 89.0f, 100.0f, 1e30f };
    const int n = (int)(sizeof x / sizeof x[0]);
    float o[10], d[10] = { 0 }, ones[10];
    for (int i = 0; i < n; i++) ones[i] = 1.0f;
    rl_silu_fwd(o, x, n);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        const double want = x[i] / (1.0 + exp(-(double)x[i]));
        if (!(fabs(o[i] - want) <= 1e-6 * fabs(want) + 1e-30)) ok = 0;
    }
    RL_CHECK(t, ok);
    rl_silu_bwd(d, ones, x, n);
    ok = 1;
    for (int i = 0; i < n; i++) ok &= !isnan(d[i]) && d[i] > -0.2f && d[i] < 1.2f;
    RL_CHECK(t, ok);
    // softmax of a row with one huge gap: the small entries underflow to exactly 0
    const float row[] = { 0.0f, -200.0f, 5.0f };
    float p[3];
    rl_softmax_fwd(p, row, 1, 3);
    RL_CHECK(t, p[1] == 0.0f && fabsf(p[0] + p[2] - 1.0f) < 1e-6f);
    // NaN propagates
    const float nanx = NAN;
    rl_silu_fwd(o, &nanx, 1);
    RL_CHECK(t, isnan(o[0]));
}

// ---- geglu -------------------------------------------------------------------------------------

static void test_geglu(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int T = rl_fixture_int(&fx, "T"), C = rl_fixture_int(&fx, "C");
    const size_t ni = (size_t)T * 2 * C, no = (size_t)T * C;
    const float *x = rl_fixture_f32(&fx, "x", 2, (int[]){ T, 2 * C });
    const float *want = rl_fixture_f32(&fx, "out", 2, (int[]){ T, C });
    const float *dout = rl_fixture_f32(&fx, "dout", 2, (int[]){ T, C });
    const float *dx_want = rl_fixture_f32(&fx, "dx", 2, (int[]){ T, 2 * C });
    if (!x || !want || !dout || !dx_want) { rl_fixture_close(&fx); return; }

    float *out = rl_test_floats(t, no), *dx = rl_test_floats(t, ni);
    rl_geglu_fwd(out, x, T, C);
    // one erf and two products per element
    rl_check_close(t, "out", out, want, no, 1e-6, 1e-5);
    rl_geglu_bwd(dx, dout, x, T, C);
    rl_check_close(t, "dx", dx, dx_want, ni, 1e-6, 1e-5);

    float *xp = rl_test_floats(t, ni);
    memcpy(xp, x, ni * sizeof(float));
    act_ctx c = { .kind = 1, .x = xp, .out = rl_test_floats(t, no), .r = dout, .n_in = ni,
                  .n_out = no, .T = T, .C = C };
    // loss sums T*C products: perturbing one input changes one term, error ~ 1e-7 / h
    rl_check_grad_fd(t, "dx", act_loss, &c, xp, dx, ni, 200, 1e-3, 1e-3, 1e-2);

    const int Tb = 1001, Cb = 37;
    act_ctx cb = { .kind = 1, .x = big_input(t, (size_t)Tb * 2 * Cb, 4.0f), .T = Tb, .C = Cb };
    rl_check_threads_bitwise(t, "fwd", act_run_fwd, &cb, (size_t)Tb * Cb);
    bwd_ctx bb = { .kind = 1, .dout = big_input(t, (size_t)Tb * Cb, 1.0f), .x = cb.x, .T = Tb,
                   .C = Cb };
    rl_check_threads_bitwise(t, "bwd", act_run_bwd, &bb, (size_t)Tb * 2 * Cb);
    rl_fixture_close(&fx);
}

// ---- softmax -------------------------------------------------------------------------------------

static void test_softmax(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int R = rl_fixture_int(&fx, "R"), C = rl_fixture_int(&fx, "C");
    const size_t n = (size_t)R * C;
    const float *x = rl_fixture_f32(&fx, "x", 2, (int[]){ R, C });
    const float *want = rl_fixture_f32(&fx, "out", 2, (int[]){ R, C });
    const float *dout = rl_fixture_f32(&fx, "dout", 2, (int[]){ R, C });
    const float *dx_want = rl_fixture_f32(&fx, "dx", 2, (int[]){ R, C });
    if (!x || !want || !dout || !dx_want) { rl_fixture_close(&fx); return; }

    float *out = rl_test_floats(t, n), *dx = rl_test_floats(t, n);
    rl_softmax_fwd(out, x, R, C);
    // exp (1-2 ulp) then a float sum over C terms and one division
    rl_check_close(t, "out", out, want, n, 1e-7, 1e-5);
    float *io = rl_test_floats(t, n);
    memcpy(io, x, n * sizeof(float));
    rl_softmax_fwd(io, io, R, C);
    rl_check_bitwise(t, "out in place", io, out, n);

    // backward from the fixture's (exact) probabilities, so only the bwd's error shows
    rl_softmax_bwd(dx, dout, want, R, C);
    rl_check_close(t, "dx", dx, dx_want, n, 1e-6, 1e-5);

    float *xp = rl_test_floats(t, n), *g = rl_test_floats(t, n);
    memcpy(xp, x, n * sizeof(float));
    rl_softmax_bwd(g, dout, out, R, C);
    act_ctx c = { .kind = 2, .x = xp, .out = rl_test_floats(t, n), .r = dout, .n_in = n,
                  .n_out = n, .T = R, .C = C };
    // one row's C outputs move per perturbation; their float rounding (1e-7) over h = 1e-3
    rl_check_grad_fd(t, "dx", act_loss, &c, xp, g, n, 200, 1e-3, 2e-4, 1e-2);

    const int Rb = 503, Cb = 77;
    act_ctx cb = { .kind = 2, .x = big_input(t, (size_t)Rb * Cb, 10.0f), .T = Rb, .C = Cb };
    rl_check_threads_bitwise(t, "fwd", act_run_fwd, &cb, (size_t)Rb * Cb);
    bwd_ctx bb = { .kind = 2, .dout = big_input(t, (size_t)Rb * Cb, 1.0f), .x = cb.x, .T = Rb,
                   .C = Cb };
    rl_check_threads_bitwise(t, "bwd", act_run_bwd, &bb, (size_t)Rb * Cb);
    rl_fixture_close(&fx);
}

// ---- gelu's erf over a dense sweep, against double --------------------------------------------

static void test_gelu_sweep(rl_test *t, const char *arg)
{
    (void)arg;
    // x in [-12, 12] every 2^-9 (12289 values: the erf seam at |x / sqrt2| = 1.25, its
    // saturation at 4 and both tails), plus NaN and infinities
    const int n = 12289 + 3;
    float *x = rl_test_floats(t, n), *out = rl_test_floats(t, n), *want = rl_test_floats(t, n);
    float *dx = rl_test_floats(t, n), *dwant = rl_test_floats(t, n), *ones = rl_test_floats(t, n);
    for (int i = 0; i < n - 3; i++) x[i] = -12.0f + (float)i / 512.0f;
    x[n - 3] = NAN; x[n - 2] = INFINITY; x[n - 1] = -INFINITY;
    for (int i = 0; i < n - 3; i++) {
        const double v = x[i], cdf = 0.5 * erfc(-v / sqrt(2.0));
        want[i] = (float)(v * cdf);
        dwant[i] = (float)(cdf + v * exp(-0.5 * v * v) / sqrt(2.0 * M_PI));
        ones[i] = 1.0f;
    }
    rl_gelu_fwd(out, x, (size_t)n);
    rl_gelu_bwd(dx, ones, x, (size_t)n);
    // erf within 2 ulp (ops_act.c), then 0.5 x (1 + erf) in float: 1 + erf cancels for
    // x << 0, where the absolute error is ~|x| 2^-24 (as torch's own float gelu)
    rl_check_close(t, "gelu sweep", out, want, (size_t)n - 3, 1e-6, 4e-7);
    rl_check_close(t, "gelu' sweep", dx, dwant, (size_t)n - 3, 1e-6, 1e-6);
    RL_CHECK(t, isnan(out[n - 3]) && out[n - 2] == INFINITY && isnan(out[n - 1]));
    // exact limits: gelu(x) = x for x >= 5.66 (erf(4) rounds to 1), 0 derivative far left
    RL_CHECK(t, out[n - 4] == 12.0f && dx[n - 4] == 1.0f);
    RL_CHECK(t, dx[0] == 0.0f || fabsf(dx[0]) < 1e-30f);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "silu/n1031", test_elementwise, "0" },
        { "gelu/n1031", test_elementwise, "1" },
        { "gelu_tanh/n1031", test_elementwise, "2" },
        { "quickgelu/n1031", test_elementwise, "3" },
        { "act/extremes", test_extremes, NULL },
        { "gelu/sweep", test_gelu_sweep, NULL },
        { "geglu/t7c13", test_geglu, "ops/act_geglu_t7c13.safetensors" },
        { "geglu/t5c40", test_geglu, "ops/act_geglu_t5c40.safetensors" },
        { "softmax/r7c13", test_softmax, "ops/act_softmax_r7c13.safetensors" },
        { "softmax/r3c67", test_softmax, "ops/act_softmax_r3c67.safetensors" },
        { "softmax/r1c1", test_softmax, "ops/act_softmax_r1c1.safetensors" },
        { 0 },
    });
}
