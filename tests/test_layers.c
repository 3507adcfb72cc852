/* tests/test_layers.c - ResnetBlock2D, Attention (VAE image form), Transformer2DModel (conv and
 * linear projection) against float64 PyTorch references (tools/fixtures/make_pipeline.py layers):
 * forward (inference and training paths), backward (dx, dtemb/demb, every weight gradient),
 * and 1 vs N threads bitwise.
 * Tolerance: the brief's parity bar, max |err| <= 1e-4 * max |want| (float32 arithmetic against
 * a float64 reference through a few chained matmuls/convs: ~1e-6 expected). */
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/layers.h"
#include "tests/harness.h"
#include "tests/layer_fixture.h"

#define TOL 1e-4

// ---- ResnetBlock2D --------------------------------------------------------------------------

typedef struct {
    const rl_resnet *r; rl_arena *arena;
    const float *x, *temb; int B, H, W;
} resnet_run;

static void run_resnet(void *ctx, float *out)
{
    resnet_run *c = ctx;
    rl_resnet_fwd(c->r, NULL, c->arena, out, c->x, c->temb, c->B, c->H, c->W);
}

static void test_resnet(rl_test *t, const char *file)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, file)) return;
    const int B = rl_fixture_int(&fx, "B"), C = rl_fixture_int(&fx, "C"),
              OC = rl_fixture_int(&fx, "OC"), Ct = rl_fixture_int(&fx, "Ct"),
              G = rl_fixture_int(&fx, "G"), H = rl_fixture_int(&fx, "H"), W = rl_fixture_int(&fx, "W");
    rl_resnet_cfg cfg = { .C = C, .OC = OC, .Ct = Ct, .G = G, .G_out = G,
                          .eps = (float)rl_fixture_float(&fx, "eps"),
                          .out_scale = (float)rl_fixture_float(&fx, "output_scale_factor"),
                          .use_in_shortcut = -1 };
    rl_weights ws, gs;
    rl_resnet r, g;
    rl_err err = { 0 };
    rl_arena arena;
    rl_arena_init(&arena, 0);
    if (!lf_tables(t, &fx, &ws, &gs)) goto done;
    if (!LF_BIND(t, rl_resnet_bind, &r, &g, &ws, &gs, "", &cfg, &err)) goto done;
    RL_CHECK(t, r.has_shortcut == rl_fixture_int(&fx, "conv_shortcut"));
    const float *x = rl_fixture_f32(&fx, "x", 4, (int[]){ B, C, H, W });
    const float *temb = Ct ? rl_fixture_f32(&fx, "temb", 2, (int[]){ B, Ct }) : NULL;
    const float *want = rl_fixture_f32(&fx, "out", 4, (int[]){ B, OC, H, W });
    const float *dout = rl_fixture_f32(&fx, "dout", 4, (int[]){ B, OC, H, W });
    const float *dx_want = rl_fixture_f32(&fx, "dx", 4, (int[]){ B, C, H, W });
    if (!x || !want || !dout || !dx_want || (Ct && !temb)) goto done;
    const size_t no = (size_t)B * OC * H * W, ni = (size_t)B * C * H * W;

    float *out = rl_test_floats(t, no);
    rl_resnet_fwd(&r, NULL, &arena, out, x, temb, B, H, W);
    lf_check(t, "resnet out (inference)", out, want, no, TOL);

    rl_arena_mark m = rl_arena_get_mark(&arena);
    rl_resnet_acts a;
    rl_resnet_fwd(&r, &a, &arena, out, x, temb, B, H, W);
    lf_check(t, "resnet out (training)", out, want, no, TOL);
    float *dx = rl_test_floats(t, ni), *dtemb = Ct ? rl_test_floats(t, (size_t)B * Ct) : NULL;
    rl_resnet_bwd(&r, &g, &a, &arena, dx, dtemb, dout, x, temb, B, H, W);
    rl_arena_reset(&arena, m);
    lf_check(t, "resnet dx", dx, dx_want, ni, TOL);
    if (Ct) lf_check(t, "resnet dtemb", dtemb, rl_fixture_f32(&fx, "dtemb", 2, (int[]){ B, Ct }),
                     (size_t)B * Ct, TOL);
    lf_check_grads(t, &fx, &gs, TOL);

    resnet_run run = { &r, &arena, x, temb, B, H, W };
    rl_check_threads_bitwise(t, "resnet threads", run_resnet, &run, no);
done:
    rl_arena_free(&arena);
    rl_weights_free(&ws);
    rl_weights_free(&gs);
    rl_fixture_close(&fx);
}

// ---- Attention, image form (VAE mid block) ----------------------------------------------------

typedef struct {
    const rl_attention *l; rl_arena *arena; const float *x; int B, H, W;
} attn_run;

static void run_attn(void *ctx, float *out)
{
    attn_run *c = ctx;
    rl_attention_fwd_image(c->l, NULL, c->arena, out, c->x, c->B, c->H, c->W);
}

static void test_vae_attn(rl_test *t, const char *file)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, file)) return;
    const int B = rl_fixture_int(&fx, "B"), C = rl_fixture_int(&fx, "C"),
              NH = rl_fixture_int(&fx, "heads"), HS = rl_fixture_int(&fx, "head_dim"),
              G = rl_fixture_int(&fx, "G"), H = rl_fixture_int(&fx, "H"), W = rl_fixture_int(&fx, "W");
    rl_attention_cfg cfg = { .Cq = C, .Ckv = C, .NH = NH, .HS = HS, .qkv_bias = 1, .out_bias = 1,
                             .norm_groups = G, .norm_eps = (float)rl_fixture_float(&fx, "eps"),
                             .residual = rl_fixture_int(&fx, "residual_connection"),
                             .rescale = (float)rl_fixture_float(&fx, "rescale_output_factor") };
    rl_weights ws, gs;
    rl_attention l, g;
    rl_err err = { 0 };
    rl_arena arena;
    rl_arena_init(&arena, 0);
    if (!lf_tables(t, &fx, &ws, &gs)) goto done;
    if (!LF_BIND(t, rl_attention_bind, &l, &g, &ws, &gs, "", &cfg, &err)) goto done;
    const size_t n = (size_t)B * C * H * W;
    const float *x = rl_fixture_f32(&fx, "x", 4, (int[]){ B, C, H, W });
    const float *want = rl_fixture_f32(&fx, "out", 4, (int[]){ B, C, H, W });
    const float *dout = rl_fixture_f32(&fx, "dout", 4, (int[]){ B, C, H, W });
    const float *dx_want = rl_fixture_f32(&fx, "dx", 4, (int[]){ B, C, H, W });
    if (!x || !want || !dout || !dx_want) goto done;
    float *out = rl_test_floats(t, n), *dx = rl_test_floats(t, n);
    rl_attention_fwd_image(&l, NULL, &arena, out, x, B, H, W);
    lf_check(t, "vae attn out (inference)", out, want, n, TOL);
    rl_attention_acts a;
    rl_attention_fwd_image(&l, &a, &arena, out, x, B, H, W);
    lf_check(t, "vae attn out (training)", out, want, n, TOL);
    rl_attention_bwd_image(&l, &g, &a, &arena, dx, dout, x, B, H, W);
    lf_check(t, "vae attn dx", dx, dx_want, n, TOL);
    lf_check_grads(t, &fx, &gs, TOL);
    attn_run run = { &l, &arena, x, B, H, W };
    rl_check_threads_bitwise(t, "vae attn threads", run_attn, &run, n);
done:
    rl_arena_free(&arena);
    rl_weights_free(&ws);
    rl_weights_free(&gs);
    rl_fixture_close(&fx);
}

// ---- Transformer2DModel ---------------------------------------------------------------------

typedef struct {
    const rl_xformer *l; rl_arena *arena; const float *x, *emb; int B, H, W, L, rep;
} xf_run;

static void run_xf(void *ctx, float *out)
{
    xf_run *c = ctx;
    rl_xformer_fwd(c->l, NULL, c->arena, out, c->x, c->emb, c->B, c->H, c->W, c->L, c->rep);
}

static void test_xformer(rl_test *t, const char *file)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, file)) return;
    const int B = rl_fixture_int(&fx, "B"), C = rl_fixture_int(&fx, "C"),
              NH = rl_fixture_int(&fx, "heads"), HS = rl_fixture_int(&fx, "head_dim"),
              G = rl_fixture_int(&fx, "G"), H = rl_fixture_int(&fx, "H"), W = rl_fixture_int(&fx, "W"),
              L = rl_fixture_int(&fx, "L"), D = rl_fixture_int(&fx, "D"),
              rep = rl_fixture_int(&fx, "ctx_rep");
    rl_xformer_cfg cfg = { .C = C, .G = G, .NH = NH, .HS = HS, .Ckv = D,
                           .n_layers = rl_fixture_int(&fx, "num_layers"),
                           .linear = rl_fixture_int(&fx, "use_linear_projection"),
                           .norm_eps = (float)rl_fixture_float(&fx, "norm_eps") };
    rl_weights ws, gs;
    rl_xformer l = { 0 }, g = { 0 };
    rl_err err = { 0 };
    rl_arena arena;
    rl_arena_init(&arena, 0);
    if (!lf_tables(t, &fx, &ws, &gs)) goto done;
    if (!LF_BIND(t, rl_xformer_bind, &l, &g, &ws, &gs, "", &cfg, &err)) goto done;
    const size_t n = (size_t)B * C * H * W, ne = (size_t)(B / rep) * L * D;
    const float *x = rl_fixture_f32(&fx, "x", 4, (int[]){ B, C, H, W });
    const float *emb = rl_fixture_f32(&fx, "emb", 3, (int[]){ B / rep, L, D });
    const float *want = rl_fixture_f32(&fx, "out", 4, (int[]){ B, C, H, W });
    const float *dout = rl_fixture_f32(&fx, "dout", 4, (int[]){ B, C, H, W });
    const float *dx_want = rl_fixture_f32(&fx, "dx", 4, (int[]){ B, C, H, W });
    const float *de_want = rl_fixture_f32(&fx, "demb", 3, (int[]){ B / rep, L, D });
    if (!x || !emb || !want || !dout || !dx_want || !de_want) goto done;
    float *out = rl_test_floats(t, n), *dx = rl_test_floats(t, n), *de = rl_test_floats(t, ne);
    rl_xformer_fwd(&l, NULL, &arena, out, x, emb, B, H, W, L, rep);
    lf_check(t, "xformer out (inference)", out, want, n, TOL);
    rl_xformer_acts a;
    rl_xformer_fwd(&l, &a, &arena, out, x, emb, B, H, W, L, rep);
    lf_check(t, "xformer out (training)", out, want, n, TOL);
    rl_xformer_bwd(&l, &g, &a, &arena, dx, de, dout, x, emb, B, H, W, L, rep);
    lf_check(t, "xformer dx", dx, dx_want, n, TOL);
    lf_check(t, "xformer demb", de, de_want, ne, TOL);
    lf_check_grads(t, &fx, &gs, TOL);
    xf_run run = { &l, &arena, x, emb, B, H, W, L, rep };
    rl_check_threads_bitwise(t, "xformer threads", run_xf, &run, n);
done:
    rl_xformer_free(&l);
    rl_xformer_free(&g);
    rl_arena_free(&arena);
    rl_weights_free(&ws);
    rl_weights_free(&gs);
    rl_fixture_close(&fx);
}

// ---- bind errors ----------------------------------------------------------------------------

static void test_bind_errors(rl_test *t, const char *arg)
{
    (void)arg;
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, "layers/resnet_c12_oc20_t16.safetensors")) return;
    rl_weights ws;
    rl_resnet r;
    rl_err err = { 0 };
    if (!lf_tables(t, &fx, &ws, NULL)) goto done;
    // a config that disagrees with the tensors: named, with both shapes
    rl_resnet_cfg cfg = { .C = 12, .OC = 24, .Ct = 16, .G = 4, .eps = 1e-5f, .out_scale = 1,
                          .use_in_shortcut = -1 };
    RL_CHECK(t, rl_resnet_bind(&r, &ws, "", &cfg, &err) == RL_E_SHAPE);
    RL_CHECK(t, strstr(err.msg, "conv1.weight") != NULL);
    // groups that do not divide the channels
    cfg = (rl_resnet_cfg){ .C = 12, .OC = 20, .Ct = 16, .G = 5, .eps = 1e-5f, .out_scale = 1,
                           .use_in_shortcut = -1 };
    RL_CHECK(t, rl_resnet_bind(&r, &ws, "", &cfg, &err) == RL_E_PARAM);
    // no time embedding in the config: time_emb_proj is left unused and reported
    rl_weights_free(&ws);
    if (!lf_tables(t, &fx, &ws, NULL)) goto done;
    cfg = (rl_resnet_cfg){ .C = 12, .OC = 20, .Ct = 0, .G = 4, .eps = 1e-5f, .out_scale = 1,
                           .use_in_shortcut = -1 };
    RL_CHECK(t, rl_resnet_bind(&r, &ws, "", &cfg, &err) == RL_OK);
    RL_CHECK(t, rl_weights_check_all_used(&ws, NULL, &err) == RL_E_SHAPE);
    RL_CHECK(t, strstr(err.msg, "time_emb_proj") != NULL);
    printf("  message: %s\n", err.msg);
done:
    rl_weights_free(&ws);
    rl_fixture_close(&fx);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "resnet_shortcut_temb", test_resnet, "layers/resnet_c12_oc20_t16.safetensors" },
        { "resnet_identity_notemb", test_resnet, "layers/resnet_c16_oc16_t0.safetensors" },
        { "vae_attn", test_vae_attn, "layers/vae_attn_c16.safetensors" },
        { "xformer_conv", test_xformer, "layers/xformer_conv_c12_h3.safetensors" },
        { "xformer_linear_rep", test_xformer, "layers/xformer_linear_c16_h4.safetensors" },
        { "bind_errors", test_bind_errors, NULL },
        { 0 } });
}
