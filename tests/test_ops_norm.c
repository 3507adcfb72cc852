/* tests/test_ops_norm.c - group norm and layer norm against PyTorch fixtures
 * (tools/fixtures/ops_norm.py), central finite differences, 1 vs N threads. */
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "tests/harness.h"

typedef struct {
    int layer;                 // 0 group norm (N, C, S, G), 1 layer norm (T = N, C)
    int N, C, S, G;
    float eps;
    float *x, *w, *b;          // mutable copies the FD perturbs; w, b NULL without affine
    const float *r;            // loss = sum(out * r)
    float *out, *mean, *rstd;
    const float *dout;         // thread runs: backward seed
} norm_ctx;

static size_t numel(const norm_ctx *c) { return (size_t)c->N * c->C * (c->layer ? 1 : c->S); }
static size_t nsets(const norm_ctx *c) { return (size_t)c->N * (c->layer ? 1 : c->G); }

static void norm_fwd(norm_ctx *c, float *out, float *mean, float *rstd)
{
    if (c->layer) rl_layernorm_fwd(out, mean, rstd, c->x, c->w, c->b, c->N, c->C, c->eps);
    else rl_groupnorm_fwd(out, mean, rstd, c->x, c->w, c->b, c->N, c->C, c->S, c->G, c->eps);
}

static void norm_bwd(norm_ctx *c, float *dx, float *dw, float *db, const float *dout,
                     const float *mean, const float *rstd)
{
    if (c->layer) rl_layernorm_bwd(dx, dw, db, dout, c->x, mean, rstd, c->w, c->N, c->C);
    else rl_groupnorm_bwd(dx, dw, db, dout, c->x, mean, rstd, c->w, c->N, c->C, c->S, c->G);
}

static double norm_loss(void *ctx)
{
    norm_ctx *c = ctx;
    norm_fwd(c, c->out, c->mean, c->rstd);
    double s = 0.0;
    for (size_t i = 0; i < numel(c); i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void run_fwd(void *ctx, float *res)
{
    // res = [out | mean | rstd]
    norm_ctx *c = ctx;
    norm_fwd(c, res, res + numel(c), res + numel(c) + nsets(c));
}

static void run_bwd(void *ctx, float *res)
{
    // res = [dx | dw | db]
    norm_ctx *c = ctx;
    float *tmp = malloc((numel(c) + 2 * nsets(c)) * sizeof(float));
    float *mean = tmp + numel(c), *rstd = mean + nsets(c);
    norm_fwd(c, tmp, mean, rstd);
    norm_bwd(c, res, res + numel(c), res + numel(c) + c->C, c->dout, mean, rstd);
    free(tmp);
}

static void test_fixture(rl_test *t, const char *arg)
{
    const int layer = arg[0] == 'L';
    const char *fixture = arg + 2;
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    norm_ctx c = { .layer = layer, .eps = (float)rl_fixture_float(&fx, "eps") };
    const int affine = rl_fixture_int(&fx, "affine");
    int shp[3], nd, sshp[2], snd;
    if (layer) {
        c.N = rl_fixture_int(&fx, "T"); c.C = rl_fixture_int(&fx, "C"); c.S = 1; c.G = 1;
        shp[0] = c.N; shp[1] = c.C; nd = 2; sshp[0] = c.N; snd = 1;
    } else {
        c.N = rl_fixture_int(&fx, "N"); c.C = rl_fixture_int(&fx, "C");
        c.S = rl_fixture_int(&fx, "S"); c.G = rl_fixture_int(&fx, "G");
        shp[0] = c.N; shp[1] = c.C; shp[2] = c.S; nd = 3; sshp[0] = c.N; sshp[1] = c.G; snd = 2;
    }
    const size_t n = numel(&c), ns = nsets(&c);
    const float *x = rl_fixture_f32(&fx, "x", nd, shp);
    const float *want = rl_fixture_f32(&fx, "out", nd, shp);
    const float *want_mean = rl_fixture_f32(&fx, "mean", snd, sshp);
    const float *want_rstd = rl_fixture_f32(&fx, "rstd", snd, sshp);
    const float *dout = rl_fixture_f32(&fx, "dout", nd, shp);
    const float *want_dx = rl_fixture_f32(&fx, "dx", nd, shp);
    const float *w = affine ? rl_fixture_f32(&fx, "w", 1, &c.C) : NULL;
    const float *b = affine ? rl_fixture_f32(&fx, "b", 1, &c.C) : NULL;
    const float *want_dw = affine ? rl_fixture_f32(&fx, "dw", 1, &c.C) : NULL;
    const float *want_db = affine ? rl_fixture_f32(&fx, "db", 1, &c.C) : NULL;
    if (!x || !want || !want_mean || !want_rstd || !dout || !want_dx ||
        (affine && (!w || !b || !want_dw || !want_db))) {
        rl_fixture_close(&fx);
        return;
    }
    c.x = rl_test_floats(t, n); memcpy(c.x, x, n * sizeof(float));
    if (affine) {
        c.w = rl_test_floats(t, c.C); memcpy(c.w, w, c.C * sizeof(float));
        c.b = rl_test_floats(t, c.C); memcpy(c.b, b, c.C * sizeof(float));
    }
    float *out = rl_test_floats(t, n), *mean = rl_test_floats(t, ns), *rstd = rl_test_floats(t, ns);
    norm_fwd(&c, out, mean, rstd);
    // statistics in double, one rounding each; out = (x - mean) rstd w + b in float
    // (values up to ~10 after w): a few ulp
    rl_check_close(t, "out", out, want, n, 1e-6, 1e-5);
    rl_check_close(t, "mean", mean, want_mean, ns, 1e-7, 1e-6);
    rl_check_close(t, "rstd", rstd, want_rstd, ns, 1e-7, 1e-6);

    float *dx = rl_test_floats(t, n), *dw = rl_test_floats(t, c.C), *db = rl_test_floats(t, c.C);
    for (size_t i = 0; i < n; i++) dx[i] = 1.0f;
    for (int i = 0; i < c.C; i++) dw[i] = db[i] = 1.0f;
    norm_bwd(&c, dx, affine ? dw : NULL, affine ? db : NULL, dout, mean, rstd);
    for (size_t i = 0; i < n; i++) dx[i] -= 1.0f;
    for (int i = 0; i < c.C; i++) { dw[i] -= 1.0f; db[i] -= 1.0f; }
    // dx: two means over the set in double, the rest in float, plus the +-1 (1e-7 absolute)
    rl_check_close(t, "dx (+= onto 1)", dx, want_dx, n, 2e-6, 1e-5);
    if (affine) {
        // sums over N*S (or T) terms in double
        rl_check_close(t, "dw (+= onto 1)", dw, want_dw, c.C, 2e-6, 1e-5);
        rl_check_close(t, "db (+= onto 1)", db, want_db, c.C, 2e-6, 1e-5);
    } else {
        RL_CHECK(t, dw[0] == 0.0f && db[0] == 0.0f);   // NULL grads untouched
    }

    // finite differences of sum(out * dout); x perturbs a whole set's statistics
    c.r = dout;
    c.out = rl_test_floats(t, n); c.mean = rl_test_floats(t, ns); c.rstd = rl_test_floats(t, ns);
    rl_check_grad_fd(t, "dx", norm_loss, &c, c.x, dx, n, 150, 1e-2, 2e-3, 1e-2);
    if (affine) {
        rl_check_grad_fd(t, "dw", norm_loss, &c, c.w, dw, c.C, 40, 1e-2, 2e-3, 1e-2);
        rl_check_grad_fd(t, "db", norm_loss, &c, c.b, db, c.C, 40, 1e-2, 2e-3, 1e-2);
    }
    rl_fixture_close(&fx);
}

/* 1 vs N threads on sizes with many sets and channel blocks (past LN_COLS = 64). */
static void test_threads(rl_test *t, const char *arg)
{
    const int layer = arg[0] == 'L';
    norm_ctx c = { .layer = layer, .eps = 1e-5f };
    if (layer) { c.N = 301; c.C = 131; c.S = 1; c.G = 1; }
    else { c.N = 3; c.C = 96; c.S = 257; c.G = 32; }
    const size_t n = numel(&c);
    c.x = rl_test_floats(t, n); rl_test_randu(c.x, n, 1);
    c.w = rl_test_floats(t, c.C); rl_test_randu(c.w, c.C, 2);
    c.b = rl_test_floats(t, c.C); rl_test_randu(c.b, c.C, 3);
    float *dout = rl_test_floats(t, n); rl_test_randu(dout, n, 4);
    c.dout = dout;
    rl_check_threads_bitwise(t, "fwd out+mean+rstd", run_fwd, &c, n + 2 * nsets(&c));
    rl_check_threads_bitwise(t, "bwd dx+dw+db", run_bwd, &c, n + 2 * (size_t)c.C);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "groupnorm/n2c12s35g4", test_fixture, "G ops/groupnorm_n2c12s35g4.safetensors" },
        { "groupnorm/n1c32s9g32", test_fixture, "G ops/groupnorm_n1c32s9g32.safetensors" },
        { "groupnorm/n3c6s7g2_noaffine", test_fixture, "G ops/groupnorm_n3c6s7g2_noaffine.safetensors" },
        { "groupnorm/threads", test_threads, "G" },
        { "layernorm/t7c13", test_fixture, "L ops/layernorm_t7c13.safetensors" },
        { "layernorm/t5c67", test_fixture, "L ops/layernorm_t5c67.safetensors" },
        { "layernorm/t3c13_noaffine", test_fixture, "L ops/layernorm_t3c13_noaffine.safetensors" },
        { "layernorm/threads", test_threads, "L" },
        { 0 },
    });
}
