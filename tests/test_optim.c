/* tests/test_optim.c - AdamW steps, gradient-norm clipping and weight EMA against
 * torch.optim.AdamW / clip_grad_norm_ fixtures (tools/fixtures/ops_optim.py), a plain double
 * re-statement of the update, and 1 vs N threads. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/optim.h"
#include "tests/harness.h"

static void test_adamw(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int n = rl_fixture_int(&fx, "n"), steps = rl_fixture_int(&fx, "steps");
    const rl_adamw_cfg cfg = {
        .lr = rl_fixture_float(&fx, "lr"), .beta1 = rl_fixture_float(&fx, "beta1"),
        .beta2 = rl_fixture_float(&fx, "beta2"), .eps = rl_fixture_float(&fx, "eps"),
        .weight_decay = rl_fixture_float(&fx, "weight_decay"),
    };
    const double decay = rl_fixture_float(&fx, "ema_decay");
    const float *p0 = rl_fixture_f32(&fx, "p0", 1, &n);
    if (!p0 || steps < 1) { rl_fixture_close(&fx); return; }

    float *p = rl_test_floats(t, n), *m = rl_test_floats(t, n), *v = rl_test_floats(t, n);
    float *ema = rl_test_floats(t, n);
    memcpy(p, p0, n * sizeof(float));
    memcpy(ema, p0, n * sizeof(float));
    for (int s = 1; s <= steps; s++) {
        char gname[16], pname[16], label[32];
        snprintf(gname, sizeof gname, "g%d", s);
        snprintf(pname, sizeof pname, "p%d", s);
        const float *g = rl_fixture_f32(&fx, gname, 1, &n), *want = rl_fixture_f32(&fx, pname, 1, &n);
        if (!g || !want) break;
        rl_adamw_step(p, m, v, g, n, s, &cfg);
        rl_ema_update(ema, p, n, decay);
        snprintf(label, sizeof label, "param after step %d", s);
        // float update of float params vs torch in float64: a few ulp of |p| ~ 1 per step
        rl_check_close(t, label, p, want, n, 2e-6, 2e-6);
    }
    const float *m3 = rl_fixture_f32(&fx, "m3", 1, &n), *v3 = rl_fixture_f32(&fx, "v3", 1, &n);
    const float *ema3 = rl_fixture_f32(&fx, "ema3", 1, &n);
    if (m3 && v3 && ema3 && steps == 3) {
        // moments: two float products and a sum per step; v's relative error is what matters
        rl_check_close(t, "exp_avg", m, m3, n, 1e-7, 1e-5);
        rl_check_close(t, "exp_avg_sq", v, v3, n, 1e-9, 1e-5);
        rl_check_close(t, "ema", ema, ema3, n, 2e-6, 2e-6);
    }
    rl_fixture_close(&fx);
}

/* The update restated in double from the formula in optim.h, one element. */
static void test_adamw_formula(rl_test *t, const char *arg)
{
    (void)arg;
    const rl_adamw_cfg cfg = { .lr = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-3,
                               .weight_decay = 0.1 };
    float p = 0.5f, m = 0.0f, v = 0.0f;
    double pd = 0.5, md = 0.0, vd = 0.0;
    const float gs[4] = { 0.3f, -1.0f, 0.0f, 2.0f };
    int ok = 1;
    for (int s = 1; s <= 4; s++) {
        rl_adamw_step(&p, &m, &v, &gs[s - 1], 1, s, &cfg);
        const double g = gs[s - 1];
        pd *= 1.0 - (double)cfg.lr * cfg.weight_decay;
        md = cfg.beta1 * md + (1.0 - cfg.beta1) * g;
        vd = cfg.beta2 * vd + (1.0 - cfg.beta2) * g * g;
        const double denom = sqrt(vd) / sqrt(1.0 - pow(cfg.beta2, s)) + cfg.eps;
        pd -= cfg.lr / (1.0 - pow(cfg.beta1, s)) * md / denom;
        ok &= fabs(p - pd) < 1e-6;
    }
    rl_test_check(t, ok, "4 steps match the double formula (p %.8f, want %.8f)", p, pd);
}

static void test_clip(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int na = rl_fixture_int(&fx, "na"), nb = rl_fixture_int(&fx, "nb");
    const float max_norm = (float)rl_fixture_float(&fx, "max_norm");
    const double want_total = rl_fixture_float(&fx, "total_norm");
    const float *a = rl_fixture_f32(&fx, "a", 1, &na), *b = rl_fixture_f32(&fx, "b", 1, &nb);
    const float *wa = rl_fixture_f32(&fx, "a_clipped", 1, &na), *wb = rl_fixture_f32(&fx, "b_clipped", 1, &nb);
    if (!a || !b || !wa || !wb) { rl_fixture_close(&fx); return; }
    float *ga = rl_test_floats(t, na), *gb = rl_test_floats(t, nb);
    memcpy(ga, a, na * sizeof(float));
    memcpy(gb, b, nb * sizeof(float));
    float *grads[2] = { ga, gb };
    const size_t ns[2] = { (size_t)na, (size_t)nb };
    const double total = rl_clip_grad_norm(grads, ns, 2, max_norm);
    // the norm in double from float inputs: only the final rounding of the fixture's repr
    rl_test_check(t, fabs(total - want_total) <= 1e-12 * want_total + 1e-15,
                  "total norm %.17g, want %.17g", total, want_total);
    // one float product per element by a coefficient rounded to float
    rl_check_close(t, "a clipped", ga, wa, na, 1e-8, 2e-7);
    rl_check_close(t, "b clipped", gb, wb, nb, 1e-8, 2e-7);
    rl_fixture_close(&fx);
}

// ---- thread invariance on large arrays ---------------------------------------------------------

typedef struct { size_t n; const float *p0, *g; } big_ctx;

static void run_adamw(void *ctx, float *res)
{
    // res = [param | m | v | ema] after two steps
    const big_ctx *c = ctx;
    const rl_adamw_cfg cfg = { 1e-3, 0.9, 0.999, 1e-8, 1e-2 };
    float *p = res, *m = res + c->n, *v = res + 2 * c->n, *ema = res + 3 * c->n;
    memcpy(p, c->p0, c->n * sizeof(float));
    memcpy(ema, c->p0, c->n * sizeof(float));
    memset(m, 0, 2 * c->n * sizeof(float));
    for (int s = 1; s <= 2; s++) {
        rl_adamw_step(p, m, v, c->g, c->n, s, &cfg);
        rl_ema_update(ema, p, c->n, 0.999);
    }
}

static void run_clip(void *ctx, float *res)
{
    // res = [g clipped | total norm as two floats (hi, lo)]
    const big_ctx *c = ctx;
    memcpy(res, c->g, c->n * sizeof(float));
    float *grads[1] = { res };
    const size_t ns[1] = { c->n };
    const double total = rl_clip_grad_norm(grads, ns, 1, 1.0f);
    res[c->n] = (float)total;
    res[c->n + 1] = (float)(total - (double)(float)total);
}

static void test_threads(rl_test *t, const char *arg)
{
    (void)arg;
    // past the parallel threshold and over several norm blocks (16384 values each)
    const size_t n = 300007;
    float *p0 = rl_test_floats(t, n), *g = rl_test_floats(t, n);
    rl_test_randu(p0, n, 21);
    rl_test_randu(g, n, 22);
    big_ctx c = { n, p0, g };
    rl_check_threads_bitwise(t, "adamw + ema", run_adamw, &c, 4 * n);
    rl_check_threads_bitwise(t, "clip_grad_norm", run_clip, &c, n + 2);
    // the blocked norm against a plain double sum (both in double; only association differs)
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    const double got = rl_grad_sqsum(g, n);
    rl_test_check(t, fabs(got - s) <= 1e-12 * s, "sqsum %.17g vs serial %.17g", got, s);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "adamw/n131", test_adamw, "ops/adamw_n131.safetensors" },
        { "adamw/n37_wd0", test_adamw, "ops/adamw_n37_wd0.safetensors" },
        { "adamw/formula", test_adamw_formula, NULL },
        { "clip/a97b41", test_clip, "ops/clipnorm_a97b41.safetensors" },
        { "clip/a13b5_noclip", test_clip, "ops/clipnorm_a13b5_noclip.safetensors" },
        { "optim/threads", test_threads, NULL },
        { 0 },
    });
}
