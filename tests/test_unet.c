/* tests/test_unet.c - the whole UNet against diffusers run in PyTorch (float64) on the fixture
 * models (tools/fixtures/make_pipeline.py): tiny_a (UNetMotionModel, F32, conv projections,
 * motion inside) and tiny_b (UNet2DConditionModel F16 + MotionAdapter, linear projections,
 * per-block heads, motion mid block), two frame counts each. Also: per-frame embeddings equal
 * to the broadcast ones give the same result (prompt travel path), 1 vs N threads bitwise,
 * the arena does not grow on a second call, and config errors name the key.
 * Tolerance: the brief's parity bar, max |err| <= 1e-4 * max |want| for one UNet call. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/par.h"
#include "core/unet.h"
#include "io/config_unet.h"
#include "io/weights_io.h"
#include "tests/harness.h"
#include "tests/layer_fixture.h"

#define TOL 1e-4

typedef struct {
    rl_unet u;
    rl_weights ws, wm;
    int has_wm;
} model;

static int model_open(rl_test *t, model *m, const char *name)
{
    char p[512];
    rl_err err = { 0 };
    rl_unet_cfg cfg;
    memset(m, 0, sizeof *m);
    rl_weights_init(&m->ws, "unet");
    rl_weights_init(&m->wm, "motion_adapter");
    snprintf(p, sizeof p, "models/%s/unet/config.json", name);
    if (!RL_CHECK(t, rl_unet_cfg_load(&cfg, rl_test_fixture_path(t, p), &err) == RL_OK)) goto fail;
    snprintf(p, sizeof p, "models/%s/motion_adapter/config.json", name);
    const char *ap = rl_test_fixture_path(t, p);
    FILE *f = fopen(ap, "r");
    if (f) {
        fclose(f);
        m->has_wm = 1;
        if (!RL_CHECK(t, rl_unet_cfg_add_adapter(&cfg, ap, &err) == RL_OK)) goto fail;
        snprintf(p, sizeof p, "models/%s/motion_adapter/diffusion_pytorch_model.safetensors", name);
        if (!RL_CHECK(t, rl_weights_load_st(&m->wm, rl_test_fixture_path(t, p), NULL, &err) == RL_OK))
            goto fail;
    }
    snprintf(p, sizeof p, "models/%s/unet/diffusion_pytorch_model.safetensors", name);
    if (!RL_CHECK(t, rl_weights_load_st(&m->ws, rl_test_fixture_path(t, p), NULL, &err) == RL_OK))
        goto fail;
    if (!RL_CHECK(t, rl_unet_bind(&m->u, &m->ws, m->has_wm ? &m->wm : NULL, &cfg, &err) == RL_OK))
        goto fail;
    return 1;
fail:
    rl_test_fail(t, "%s: %s", name, err.msg);
    return 0;
}

static void model_close(model *m)
{
    rl_unet_free(&m->u);
    rl_weights_free(&m->ws);
    rl_weights_free(&m->wm);
}

typedef struct {
    const rl_unet *u; rl_arena *arena;
    const float *x, *t, *emb; int tn, L, D, N, F, H, W;
} unet_run;

static void run_unet(void *ctx, float *out)
{
    unet_run *c = ctx;
    rl_unet_fwd(c->u, c->arena, out, c->x, c->t, c->tn, c->emb, 1, c->L, c->D, c->N, c->F, c->H,
                c->W, NULL);
}

static void test_call(rl_test *t, const char *file)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, file)) return;
    model m;
    rl_arena arena;
    rl_arena_init(&arena, 0);
    const int N = rl_fixture_int(&fx, "N"), F = rl_fixture_int(&fx, "F"), C = rl_fixture_int(&fx, "C"),
              H = rl_fixture_int(&fx, "h"), W = rl_fixture_int(&fx, "w"), L = rl_fixture_int(&fx, "L"),
              D = rl_fixture_int(&fx, "D");
    if (!model_open(t, &m, rl_fixture_str(&fx, "model"))) { rl_fixture_close(&fx); return; }
    const int shp[5] = { N, C, F, H, W };
    const float *x = rl_fixture_f32(&fx, "x", 5, shp), *want = rl_fixture_f32(&fx, "out", 5, shp);
    const float *emb = rl_fixture_f32(&fx, "emb", 3, (int[]){ N, L, D });
    const size_t tn = rl_fixture_numel(&fx, "t");
    const float *tv = rl_fixture_f32(&fx, "t", 0, NULL);
    if (!x || !want || !emb || !tv) goto done;
    const size_t n = (size_t)N * C * F * H * W;
    float *out = rl_test_floats(t, n);
    rl_err err = { 0 };
    if (!RL_CHECK(t, rl_unet_fwd(&m.u, &arena, out, x, tv, (int)tn, emb, 1, L, D, N, F, H, W,
                                 &err) == RL_OK)) {
        rl_test_fail(t, "fwd: %s", err.msg);
        goto done;
    }
    lf_check(t, "unet out", out, want, n, TOL);

    // a second call allocates nothing new
    size_t reserved = arena.reserved;
    rl_unet_fwd(&m.u, &arena, out, x, tv, (int)tn, emb, 1, L, D, N, F, H, W, &err);
    RL_CHECK(t, arena.reserved == reserved);
    RL_CHECK(t, arena.in_use == 0);

    // per-frame embeddings (N, F, L, D) that repeat the shared ones: same values
    float *embf = rl_test_floats(t, (size_t)N * F * L * D), *out2 = rl_test_floats(t, n);
    for (int i = 0; i < N; i++)
        for (int f = 0; f < F; f++)
            memcpy(embf + ((size_t)i * F + f) * L * D, emb + (size_t)i * L * D,
                   (size_t)L * D * sizeof(float));
    RL_CHECK(t, rl_unet_fwd(&m.u, &arena, out2, x, tv, (int)tn, embf, F, L, D, N, F, H, W,
                            &err) == RL_OK);
    lf_check(t, "unet out (per-frame emb)", out2, want, n, TOL);

    // impossible parameters are reported, not computed
    RL_CHECK(t, rl_unet_fwd(&m.u, &arena, out2, x, tv, (int)tn, emb, 1, L, D + 1, N, F, H, W,
                            &err) == RL_E_PARAM);
    RL_CHECK(t, rl_unet_fwd(&m.u, &arena, out2, x, tv, (int)tn, emb, 1, L, D, N, 1000, H, W,
                            &err) == RL_E_PARAM);
    printf("  message: %s\n", err.msg);

    // an arena that cannot grow: RL_E_NOMEM from the reservation, before any kernel runs
    rl_arena broken;
    rl_arena_init(&broken, 0);
    broken.failed = 1;                 // as after a failed malloc
    memset(out2, 0, n * sizeof(float));
    RL_CHECK(t, rl_unet_fwd(&m.u, &broken, out2, x, tv, (int)tn, emb, 1, L, D, N, F, H, W,
                            &err) == RL_E_NOMEM);
    rl_test_check(t, strstr(err.msg, "MiB") != NULL, "message: %s", err.msg);
    RL_CHECK(t, out2[0] == 0.0f && out2[n - 1] == 0.0f);
    rl_unet_acts *acts = rl_test_alloc(t, sizeof *acts);
    RL_CHECK(t, rl_unet_fwd_train(&m.u, acts, &broken, out2, x, tv, (int)tn, emb, 1, L, D, N, F,
                                  H, W, &err) == RL_E_NOMEM);
    rl_arena_free(&broken);

    unet_run run = { &m.u, &arena, x, tv, emb, (int)tn, L, D, N, F, H, W };
    // Needs rl_gemm to be thread-count invariant: OpenBLAS sgemm with K = 360 (3x3 conv over
    // 40 channels, up block 0 of tiny_a) differs between 1 and 2 threads (reported to the lead).
    rl_check_threads_bitwise(t, "unet threads", run_unet, &run, n);
done:
    rl_arena_free(&arena);
    model_close(&m);
    rl_fixture_close(&fx);
}

// ---- training: backward ----------------------------------------------------------------------

/* The model with its weights copied into one writable table (finite differences perturb them)
 * and a zeroed gradient mirror bound with the same names. */
typedef struct {
    model base;
    rl_unet_cfg cfg;
    rl_weights pw, gw;
    rl_unet u, g;
} trainable;

static int copy_table(rl_test *t, rl_weights *dst, rl_weights *gdst, const rl_weights *src)
{
    rl_err err = { 0 };
    for (int i = 0; i < src->n; i++) {
        const rl_weight *w = &src->w[i];
        float *d = NULL;
        size_t n = 1;
        for (int k = 0; k < w->ndim; k++) n *= (size_t)w->shape[k];
        if (rl_weights_add_new(dst, w->name, w->ndim, w->shape, &d, &err) ||
            rl_weights_add_new(gdst, w->name, w->ndim, w->shape, NULL, &err)) {
            rl_test_fail(t, "copy: %s", err.msg);
            return 0;
        }
        memcpy(d, w->data, n * sizeof(float));
    }
    return 1;
}

static int trainable_open(rl_test *t, trainable *m, const char *name)
{
    char p[512];
    rl_err err = { 0 };
    memset(m, 0, sizeof *m);
    rl_weights_init(&m->pw, "params");
    rl_weights_init(&m->gw, "grads");
    if (!model_open(t, &m->base, name)) return 0;
    m->cfg = m->base.u.cfg;
    if (!copy_table(t, &m->pw, &m->gw, &m->base.ws)) return 0;
    if (m->base.has_wm && !copy_table(t, &m->pw, &m->gw, &m->base.wm)) return 0;
    snprintf(p, sizeof p, "%s (copy)", name);
    if (!RL_CHECK(t, rl_unet_bind(&m->u, &m->pw, NULL, &m->cfg, &err) == RL_OK) ||
        !RL_CHECK(t, rl_unet_bind(&m->g, &m->gw, NULL, &m->cfg, &err) == RL_OK)) {
        rl_test_fail(t, "%s: %s", p, err.msg);
        return 0;
    }
    return 1;
}

static void trainable_close(trainable *m)
{
    rl_unet_free(&m->u);
    rl_unet_free(&m->g);
    rl_weights_free(&m->pw);
    rl_weights_free(&m->gw);
    model_close(&m->base);
}

static size_t numel(const rl_weight *w)
{
    size_t n = 1;
    for (int k = 0; k < w->ndim; k++) n *= (size_t)w->shape[k];
    return n;
}

static void zero_grads(rl_weights *gw)
{
    for (int i = 0; i < gw->n; i++) memset(gw->w[i].data, 0, numel(&gw->w[i]) * sizeof(float));
}

static int is_motion(const char *name) { return strstr(name, ".motion_modules.") != NULL; }

/* One training step's worth of inputs, read from a <model>_unet_grad fixture. */
typedef struct {
    trainable *m;
    rl_arena *arena;
    rl_unet_acts *acts;
    const float *x, *t, *emb, *dout;
    int tn, N, F, C, H, W, L, D;
    float *out, *dx, *demb;
    int which;
} step_ctx;

static size_t n_video(const step_ctx *c) { return (size_t)c->N * c->C * c->F * c->H * c->W; }

/* fwd_train + bwd from zeroed gradients; the arena is reset afterwards. */
static rl_status train_step(step_ctx *c, float *dx, float *demb)
{
    rl_err err = { 0 };
    zero_grads(&c->m->gw);
    if (dx) memset(dx, 0, n_video(c) * sizeof(float));
    if (demb) memset(demb, 0, (size_t)c->N * c->L * c->D * sizeof(float));
    rl_arena_mark mk = rl_arena_get_mark(c->arena);
    rl_status rc = rl_unet_fwd_train(&c->m->u, c->acts, c->arena, c->out, c->x, c->t, c->tn,
                                     c->emb, 1, c->L, c->D, c->N, c->F, c->H, c->W, &err);
    if (rc == RL_OK)
        rl_unet_bwd(&c->m->u, &c->m->g, c->which, c->acts, c->arena, dx, demb, c->dout);
    rl_arena_reset(c->arena, mk);
    return rc;
}

/* Threads check: every gradient, dx and demb packed into out. */
static size_t packed_size(const step_ctx *c)
{
    return rl_weights_numel(&c->m->gw) + n_video(c) + (size_t)c->N * c->L * c->D;
}

static void run_step_packed(void *ctx, float *out)
{
    step_ctx *c = ctx;
    train_step(c, c->dx, c->demb);
    size_t o = 0;
    for (int i = 0; i < c->m->gw.n; i++) {
        const size_t n = numel(&c->m->gw.w[i]);
        memcpy(out + o, c->m->gw.w[i].data, n * sizeof(float));
        o += n;
    }
    memcpy(out + o, c->dx, n_video(c) * sizeof(float));
    o += n_video(c);
    memcpy(out + o, c->demb, (size_t)c->N * c->L * c->D * sizeof(float));
}

/* sum(out * dout) by the inference forward, in double. */
static double fd_loss(void *ctx)
{
    step_ctx *c = ctx;
    rl_unet_fwd(&c->m->u, c->arena, c->out, c->x, c->t, c->tn, c->emb, 1, c->L, c->D, c->N,
                c->F, c->H, c->W, NULL);
    double s = 0;
    for (size_t i = 0; i < n_video(c); i++) s += (double)c->out[i] * c->dout[i];
    return s;
}

static int step_open(rl_test *t, rl_fixture *fx, trainable *m, step_ctx *c, rl_arena *arena,
                     const char *file)
{
    memset(c, 0, sizeof *c);
    if (!rl_fixture_open(t, fx, file)) return 0;
    c->N = rl_fixture_int(fx, "N"); c->F = rl_fixture_int(fx, "F"); c->C = rl_fixture_int(fx, "C");
    c->H = rl_fixture_int(fx, "h"); c->W = rl_fixture_int(fx, "w"); c->L = rl_fixture_int(fx, "L");
    c->D = rl_fixture_int(fx, "D");
    if (!trainable_open(t, m, rl_fixture_str(fx, "model"))) return 0;
    const int shp[5] = { c->N, c->C, c->F, c->H, c->W };
    c->x = rl_fixture_f32(fx, "x", 5, shp);
    c->dout = rl_fixture_f32(fx, "dout", 5, shp);
    c->emb = rl_fixture_f32(fx, "emb", 3, (int[]){ c->N, c->L, c->D });
    c->t = rl_fixture_f32(fx, "t", 0, NULL);
    c->tn = (int)rl_fixture_numel(fx, "t");
    if (!c->x || !c->dout || !c->emb || !c->t) return 0;
    c->m = m;
    c->arena = arena;
    c->acts = rl_test_alloc(t, sizeof *c->acts);
    c->out = rl_test_floats(t, n_video(c));
    c->dx = rl_test_floats(t, n_video(c));
    c->demb = rl_test_floats(t, (size_t)c->N * c->L * c->D);
    c->which = RL_UNET_GRAD_ALL;
    return 1;
}

/* Backward vs the float64 PyTorch gradients: out, dx, demb and the sampled gradient of every
 * parameter; then freezing, thread invariance and the memory plan.
 * Tolerance: 1e-3 of each tensor's largest |gradient|. The backward chains ~40 layers whose
 * float32 roundings (sums over up to 9*C0*S terms in the weight gradients) add up; the
 * measured errors are printed. */
static void test_grad(rl_test *t, const char *file)
{
    rl_fixture fx;
    trainable m;
    step_ctx c;
    rl_arena arena;
    rl_arena_init(&arena, 0);
    memset(&m, 0, sizeof m);
    if (!step_open(t, &fx, &m, &c, &arena, file)) goto done;
    const int shp[5] = { c.N, c.C, c.F, c.H, c.W };
    const size_t nv = n_video(&c), ne = (size_t)c.N * c.L * c.D;

    if (!RL_CHECK(t, train_step(&c, c.dx, c.demb) == RL_OK)) goto done;
    const size_t peak = arena.peak;
    lf_check(t, "out (training forward)", c.out, rl_fixture_f32(&fx, "out", 5, shp), nv, TOL);
    lf_check(t, "dx", c.dx, rl_fixture_f32(&fx, "dx", 5, shp), nv, 1e-3);
    lf_check(t, "demb", c.demb, rl_fixture_f32(&fx, "demb", 3, (int[]){ c.N, c.L, c.D }), ne, 1e-3);

    // every parameter: errors relative to the tensor's largest |gradient|, all in one check
    size_t total = 0, n_tensors = 0;
    for (int i = 0; i < fx.st.n_tensors; i++)
        if (!strncmp(fx.st.tensors[i].name, "gidx.", 5)) total += rl_fixture_numel(&fx, fx.st.tensors[i].name);
    float *got = rl_test_floats(t, total), *want = rl_test_floats(t, total);
    size_t o = 0;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < fx.st.n_tensors; i++) {
        const char *name = fx.st.tensors[i].name;
        if (strncmp(name, "gidx.", 5)) continue;
        char gname[300];
        snprintf(gname, sizeof gname, "grad.%s", name + 5);
        size_t k;
        const int64_t *idx = rl_fixture_i64(&fx, name, &k);
        const float *gw = rl_fixture_f32(&fx, gname, 0, NULL);
        const rl_weight *g = rl_weights_find(&m.gw, name + 5);
        if (!idx || !gw || !g) { rl_test_fail(t, "gradient '%s' missing", name + 5); continue; }
        n_tensors++;
        double mx = 1e-2;                      // floor as lf_check: exact zeros (key biases)
        for (size_t j = 0; j < k; j++) mx = fmax(mx, fabs(gw[j]));
        for (size_t j = 0; j < k; j++) {
            got[o] = (float)(g->data[idx[j]] / mx);
            want[o] = (float)(gw[j] / mx);
            const double e = fabs((double)got[o] - want[o]);
            if (e > worst) { worst = e; worst_name = name + 5; }
            o++;
        }
    }
    printf("  %zu parameter tensors compared; worst (relative to its max |grad|): %.3g in %s\n",
           n_tensors, worst, worst_name);
    RL_CHECK(t, n_tensors == (size_t)rl_fixture_int(&fx, "n_params"));
    rl_check_close(t, "param grads / max|grad| per tensor", got, want, o, 1e-3, 0);

    // freezing: one group trains, the other's gradients stay untouched; the trained group's
    // gradients are bitwise those of the full step (the same arithmetic reaches them)
    const size_t ng = rl_weights_numel(&m.gw);
    float *full = rl_test_floats(t, ng), *part = rl_test_floats(t, ng);
    o = 0;
    for (int i = 0; i < m.gw.n; i++) {
        memcpy(full + o, m.gw.w[i].data, numel(&m.gw.w[i]) * sizeof(float));
        o += numel(&m.gw.w[i]);
    }
    for (int pass = 0; pass < 2; pass++) {
        const int which = pass == 0 ? RL_UNET_GRAD_MOTION : RL_UNET_GRAD_IMAGE;
        if (which == RL_UNET_GRAD_MOTION && !m.cfg.has_motion) continue;
        c.which = which;
        // motion only, no input gradients: the backward stops at the first motion module
        RL_CHECK(t, train_step(&c, NULL, NULL) == RL_OK);
        c.which = RL_UNET_GRAD_ALL;
        // expected: the full run's gradients for the trained group, zeros for the frozen one
        float *ref = rl_test_floats(t, ng);
        o = 0;
        for (int i = 0; i < m.gw.n; i++) {
            const size_t n = numel(&m.gw.w[i]);
            if (is_motion(m.gw.w[i].name) == (which == RL_UNET_GRAD_MOTION))
                memcpy(ref + o, full + o, n * sizeof(float));
            memcpy(part + o, m.gw.w[i].data, n * sizeof(float));
            o += n;
        }
        rl_check_bitwise(t, which == RL_UNET_GRAD_MOTION ? "motion-only grads (frozen = 0)"
                                                         : "image-only grads (frozen = 0)",
                         part, ref, ng);
    }

    // per-frame embeddings repeating the shared ones: their gradients summed over frames are
    // the shared embeddings' gradient (a different summation order: close, not bitwise)
    {
        float *embf = rl_test_floats(t, (size_t)c.F * ne), *dembf = rl_test_floats(t, (size_t)c.F * ne);
        float *sum = rl_test_floats(t, ne);
        for (int i = 0; i < c.N; i++)
            for (int f = 0; f < c.F; f++)
                memcpy(embf + ((size_t)i * c.F + f) * c.L * c.D, c.emb + (size_t)i * c.L * c.D,
                       (size_t)c.L * c.D * sizeof(float));
        rl_err err = { 0 };
        rl_arena_mark mk = rl_arena_get_mark(&arena);
        zero_grads(&m.gw);
        RL_CHECK(t, rl_unet_fwd_train(&m.u, c.acts, &arena, c.out, c.x, c.t, c.tn, embf, c.F, c.L,
                                      c.D, c.N, c.F, c.H, c.W, &err) == RL_OK);
        rl_unet_bwd(&m.u, NULL, 0, c.acts, &arena, NULL, dembf, c.dout);
        rl_arena_reset(&arena, mk);
        for (int i = 0; i < c.N; i++)
            for (int f = 0; f < c.F; f++)
                for (size_t k = 0; k < (size_t)c.L * c.D; k++)
                    sum[(size_t)i * c.L * c.D + k] += dembf[((size_t)i * c.F + f) * c.L * c.D + k];
        lf_check(t, "demb (per-frame, summed)", sum, c.demb, ne, 1e-5);
    }

    // the plan counts what the calls take
    const size_t plan = rl_unet_plan_bytes(&m.u, 1, c.N, c.F, c.H, c.W, c.L, 1, rl_par_max_threads());
    rl_test_check(t, plan == peak, "training plan %zu bytes, measured peak %zu", plan, peak);
    rl_arena fresh;
    rl_arena_init(&fresh, 0);
    rl_unet_fwd(&m.u, &fresh, c.out, c.x, c.t, c.tn, c.emb, 1, c.L, c.D, c.N, c.F, c.H, c.W, NULL);
    const size_t iplan = rl_unet_plan_bytes(&m.u, 0, c.N, c.F, c.H, c.W, c.L, 1, rl_par_max_threads());
    rl_test_check(t, iplan == fresh.peak, "inference plan %zu bytes, measured peak %zu", iplan,
                  fresh.peak);
    rl_arena_free(&fresh);

    rl_check_threads_bitwise(t, "unet backward", run_step_packed, &c, packed_size(&c));
done:
    rl_arena_free(&arena);
    trainable_close(&m);
    rl_fixture_close(&fx);
}

/* Central finite differences of sum(out * dout) (inference forward, float32) against the
 * backward, on samples of parameters from every kind of layer and of the inputs.
 * Step 1e-2 (2e-2 already shows curvature: 2% off on a norm weight). The float32 loss (a sum
 * of ~2000 products of O(1) values) carries ~1e-5 of rounding, so the fd itself is noisy to a
 * few 1e-3: tolerance 4e-3 + 2e-2 |fd|. (The exact check is the float64 PyTorch fixture.) */
static void test_fd(rl_test *t, const char *file)
{
    static const char *names[] = {
        "conv_in.weight", "time_embedding.linear_1.weight",
        "down_blocks.0.resnets.0.norm2.weight", "down_blocks.0.attentions.0.proj_in.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
        "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
        "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_v.weight",
        "down_blocks.0.downsamplers.0.conv.weight", "down_blocks.1.resnets.0.conv_shortcut.weight",
        "mid_block.resnets.0.time_emb_proj.weight",
        "mid_block.motion_modules.0.transformer_blocks.0.attn2.to_out.0.weight",
        "up_blocks.0.upsamplers.0.conv.bias",
        "up_blocks.1.attentions.1.transformer_blocks.0.norm3.weight",
        "up_blocks.1.motion_modules.2.proj_out.bias", "conv_out.weight", NULL };
    rl_fixture fx;
    trainable m;
    step_ctx c;
    rl_arena arena;
    rl_arena_init(&arena, 0);
    memset(&m, 0, sizeof m);
    const int threads = rl_par_threads();
    if (!step_open(t, &fx, &m, &c, &arena, file)) goto done;
    // one thread: ~150 small forwards, which a loaded 2-core machine makes slow with two
    // (threading is checked bitwise in test_grad)
    rl_par_set_threads(1);
    if (!RL_CHECK(t, train_step(&c, c.dx, c.demb) == RL_OK)) goto done;
    const double h = 1e-2, atol = 4e-3, rtol = 2e-2;
    int n_done = 0;
    for (int i = 0; names[i]; i++) {
        const rl_weight *p = rl_weights_find(&m.pw, names[i]), *g = rl_weights_find(&m.gw, names[i]);
        if (!p || !g) continue;                 // layer absent in this model (mid motion)
        n_done++;
        rl_check_grad_fd(t, names[i], fd_loss, &c, p->data, g->data, numel(p), 2, h, atol, rtol);
    }
    RL_CHECK(t, n_done >= 13);
    float *x = rl_test_floats(t, n_video(&c)), *e = rl_test_floats(t, (size_t)c.N * c.L * c.D);
    memcpy(x, c.x, n_video(&c) * sizeof(float));
    memcpy(e, c.emb, (size_t)c.N * c.L * c.D * sizeof(float));
    c.x = x; c.emb = e;
    rl_check_grad_fd(t, "x", fd_loss, &c, x, c.dx, n_video(&c), 6, h, atol, rtol);
    rl_check_grad_fd(t, "emb", fd_loss, &c, e, c.demb, (size_t)c.N * c.L * c.D, 6, h, atol, rtol);
done:
    rl_par_set_threads(threads);
    rl_arena_free(&arena);
    trainable_close(&m);
    rl_fixture_close(&fx);
}

static void test_config_errors(rl_test *t, const char *arg)
{
    (void)arg;
    rl_unet_cfg c;
    rl_err err = { 0 };
    rl_json j = { 0 };
    static const struct { const char *json, *key; } bad[] = {
        { "{\"_class_name\":\"UNetMotionModel\",\"block_out_channels\":[32,64],"
          "\"down_block_types\":[\"CrossAttnDownBlockMotion\",\"SimpleDownBlock\"],"
          "\"up_block_types\":[\"UpBlockMotion\",\"CrossAttnUpBlockMotion\"]}", "down_block_types" },
        { "{\"_class_name\":\"UNet2DConditionModel\",\"block_out_channels\":[32,64],"
          "\"down_block_types\":[\"CrossAttnDownBlock2D\",\"DownBlock2D\"],"
          "\"up_block_types\":[\"UpBlock2D\",\"CrossAttnUpBlock2D\"],"
          "\"class_embed_type\":\"timestep\"}", "class_embed_type" },
        { "{\"_class_name\":\"UNet2DConditionModel\",\"block_out_channels\":[32,64],"
          "\"down_block_types\":[\"CrossAttnDownBlock2D\",\"DownBlock2D\"],"
          "\"up_block_types\":[\"UpBlock2D\",\"CrossAttnUpBlock2D\"],"
          "\"attention_head_dim\":[8,8,8]}", "attention_head_dim" },
        { "{\"_class_name\":\"UNetMotionModel\",\"block_out_channels\":[32,64],"
          "\"down_block_types\":[\"CrossAttnDownBlockMotion\",\"DownBlockMotion\"],"
          "\"up_block_types\":[\"UpBlockMotion\",\"CrossAttnUpBlockMotion\"],"
          "\"norm_num_groups\":12}", "norm_num_groups" },
        { "{\"_class_name\":\"UNetMotionModel\",\"block_out_channels\":[32,64],"
          "\"down_block_types\":[\"CrossAttnDownBlockMotion\",\"DownBlockMotion\"],"
          "\"up_block_types\":[\"UpBlockMotion\",\"CrossAttnUpBlockMotion\"],"
          "\"motion_num_attention_heads\":\"8\"}", "motion_num_attention_heads" },
        { "{\"_class_name\":\"UNetSpatioTemporalConditionModel\"}", "_class_name" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!RL_CHECK(t, rl_json_parse(&j, bad[i].json, strlen(bad[i].json), "config.json",
                                       &err) == RL_OK)) continue;
        rl_status rc = rl_unet_cfg_parse(&c, &j, &err);
        RL_CHECK(t, rc != RL_OK);
        rl_test_check(t, strstr(err.msg, bad[i].key) != NULL, "message names '%s': %s",
                      bad[i].key, err.msg);
        rl_json_free(&j);
    }
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "tiny_a_f4", test_call, "pipeline/tiny_a_unet_f4.safetensors" },
        { "tiny_a_f7", test_call, "pipeline/tiny_a_unet_f7.safetensors" },
        { "tiny_b_f4", test_call, "pipeline/tiny_b_unet_f4.safetensors" },
        { "tiny_b_f7", test_call, "pipeline/tiny_b_unet_f7.safetensors" },
        { "tiny_a_grad", test_grad, "pipeline/tiny_a_unet_grad.safetensors" },
        { "tiny_b_grad", test_grad, "pipeline/tiny_b_unet_grad.safetensors" },
        { "tiny_a_fd", test_fd, "pipeline/tiny_a_unet_grad.safetensors" },
        { "tiny_b_fd", test_fd, "pipeline/tiny_b_unet_grad.safetensors" },
        { "config_errors", test_config_errors, NULL },
        { 0 } });
}
