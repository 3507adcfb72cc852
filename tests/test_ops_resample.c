/* tests/test_ops_resample.c - nearest 2x upsample and 2x2 average pool against PyTorch
 * fixtures (tools/fixtures/ops_resample.py), finite differences, 1 vs N threads bitwise. */
#include <string.h>

#include "core/ops.h"
#include "tests/harness.h"

typedef struct {
    int up;                 // 1: upsample2x, 0: avgpool2x
    int NC, H, W;
    float *x;               // (NC, H, W)
    const float *r, *dout;  // (NC, Ho, Wo)
    float *out;             // (NC, Ho, Wo)
    size_t nx, no;
} rs_ctx;

static void rs_fwd(rs_ctx *c, float *out)
{
    if (c->up) rl_upsample2x_fwd(out, c->x, c->NC, c->H, c->W);
    else rl_avgpool2x_fwd(out, c->x, c->NC, c->H, c->W);
}

static void rs_bwd(rs_ctx *c, float *dx, const float *dout)
{
    if (c->up) rl_upsample2x_bwd(dx, dout, c->NC, c->H, c->W);
    else rl_avgpool2x_bwd(dx, dout, c->NC, c->H, c->W);
}

static double rs_loss(void *p)
{
    rs_ctx *c = p;
    rs_fwd(c, c->out);
    double l = 0.0;
    for (size_t i = 0; i < c->no; i++) l += (double)c->out[i] * c->r[i];
    return l;
}

// [out | dx]
static void rs_run(void *p, float *res)
{
    rs_ctx *c = p;
    rs_fwd(c, res);
    rs_bwd(c, res + c->no, c->dout);
}

static void test_resample(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int N = rl_fixture_int(&fx, "N"), C = rl_fixture_int(&fx, "C");
    const int H = rl_fixture_int(&fx, "H"), W = rl_fixture_int(&fx, "W");
    rs_ctx c = { .up = strstr(fixture, "upsample") != NULL, .NC = N * C, .H = H, .W = W };
    const int Ho = c.up ? 2 * H : H / 2, Wo = c.up ? 2 * W : W / 2;
    const float *x = rl_fixture_f32(&fx, "x", 4, (int[]){ N, C, H, W });
    const float *want = rl_fixture_f32(&fx, "out", 4, (int[]){ N, C, Ho, Wo });
    const float *dout = rl_fixture_f32(&fx, "dout", 4, (int[]){ N, C, Ho, Wo });
    const float *want_dx = rl_fixture_f32(&fx, "dx", 4, (int[]){ N, C, H, W });
    if (!x || !want || !dout || !want_dx) { rl_fixture_close(&fx); return; }
    c.nx = (size_t)c.NC * H * W;
    c.no = (size_t)c.NC * Ho * Wo;
    c.x = rl_test_floats(t, c.nx);
    memcpy(c.x, x, c.nx * sizeof(float));
    c.out = rl_test_floats(t, c.no);
    c.dout = dout;

    // upsample copies, so it is exact; avgpool adds four floats (two roundings beyond the
    // float64 reference) and scales by 1/4 exactly: within a few ulp of values ~1
    const double atol = c.up ? 0.0 : 1e-6, rtol = c.up ? 0.0 : 1e-6;
    float *out = rl_test_floats(t, c.no);
    rs_fwd(&c, out);
    rl_check_close(t, "out", out, want, c.no, atol, rtol);

    // backward accumulates: start at 1, subtract it afterwards (one more rounding, ~1e-7)
    float *dx = rl_test_floats(t, c.nx);
    for (size_t i = 0; i < c.nx; i++) dx[i] = 1.0f;
    rs_bwd(&c, dx, dout);
    for (size_t i = 0; i < c.nx; i++) dx[i] -= 1.0f;
    rl_check_close(t, "dx", dx, want_dx, c.nx, 1e-6, 1e-6);

    // finite differences of sum(out * r): the ops are linear, so only rounding remains
    float *r = rl_test_floats(t, c.no);
    rl_test_randu(r, c.no, 5);
    c.r = r;
    float *g = rl_test_floats(t, c.nx);
    rs_bwd(&c, g, r);
    rl_check_grad_fd(t, "dx", rs_loss, &c, c.x, g, c.nx, 300, 1e-2, 1e-4, 1e-3);

    rl_check_threads_bitwise(t, "fwd+bwd", rs_run, &c, c.no + c.nx);
    rl_fixture_close(&fx);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "upsample2x/n2c3h5w7", test_resample, "ops/upsample2x_n2c3h5w7.safetensors" },
        { "upsample2x/n1c1h1w1", test_resample, "ops/upsample2x_n1c1h1w1.safetensors" },
        { "upsample2x/n3c5h4w9", test_resample, "ops/upsample2x_n3c5h4w9.safetensors" },
        { "avgpool2x/n2c3h6w10", test_resample, "ops/avgpool2x_n2c3h6w10.safetensors" },
        { "avgpool2x/n1c7h2w2", test_resample, "ops/avgpool2x_n1c7h2w2.safetensors" },
        { "avgpool2x/n3c5h8w14", test_resample, "ops/avgpool2x_n3c5h8w14.safetensors" },
        { 0 },
    });
}
