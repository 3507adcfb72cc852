/* tests/test_motion.c - one AnimateDiff motion module (AnimateDiffTransformer3D as placed in
 * UNetMotionModel: GroupNorm over (C, F, H, W), proj_in, a BasicTransformerBlock with two
 * temporal self-attentions and the sinusoidal frame encoding, proj_out, residual) against the
 * float64 reference of tools/fixtures/make_pipeline.py layers: forward, backward (dx and every
 * weight gradient), 1 vs N threads bitwise, and the stored pos_embed.pe against the computed
 * table. Tolerance: the brief's parity bar 1e-4 relative to max |want|. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/layers.h"
#include "temporal/motion.h"
#include "tests/harness.h"
#include "tests/layer_fixture.h"

#define TOL 1e-4

typedef struct {
    const rl_motion *m; rl_arena *arena; const float *x; int N, F, H, W;
} motion_run;

static void run_motion(void *ctx, float *out)
{
    motion_run *c = ctx;
    rl_motion_fwd(c->m, NULL, c->arena, out, c->x, c->N, c->F, c->H, c->W);
}

static void test_module(rl_test *t, const char *file)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, file)) return;
    const int N = rl_fixture_int(&fx, "B"), F = rl_fixture_int(&fx, "F"),
              C = rl_fixture_int(&fx, "C"), H = rl_fixture_int(&fx, "H"), W = rl_fixture_int(&fx, "W"),
              max_seq = rl_fixture_int(&fx, "max_seq_length");
    rl_motion_cfg cfg = { .C = C, .NH = rl_fixture_int(&fx, "heads"), .G = rl_fixture_int(&fx, "G"),
                          .n_layers = rl_fixture_int(&fx, "num_layers"), .max_seq = max_seq,
                          .double_self = rl_fixture_int(&fx, "double_self_attention") };
    rl_weights ws, gs;
    rl_motion m = { 0 }, g = { 0 };
    rl_err err = { 0 };
    rl_arena arena;
    rl_arena_init(&arena, 0);
    if (!lf_tables(t, &fx, &ws, &gs)) goto done;
    if (!LF_BIND(t, rl_motion_bind, &m, &g, &ws, &gs, "", &cfg, &err)) goto done;
    const size_t n = (size_t)N * F * C * H * W;
    const int shp[4] = { N * F, C, H, W };
    const float *x = rl_fixture_f32(&fx, "x", 4, shp), *want = rl_fixture_f32(&fx, "out", 4, shp);
    const float *dout = rl_fixture_f32(&fx, "dout", 4, shp), *dx_want = rl_fixture_f32(&fx, "dx", 4, shp);
    if (!x || !want || !dout || !dx_want) goto done;

    // the stored table is the one diffusers builds; ours must agree (used when it is absent)
    RL_CHECK(t, m.blocks[0].pe != NULL);
    float *pe = rl_test_floats(t, (size_t)max_seq * C);
    rl_sinusoidal_pe_table(pe, max_seq, C, 1.0f);
    rl_check_close(t, "pos_embed.pe vs computed", pe, m.blocks[0].pe, (size_t)max_seq * C, 1e-6, 0);

    float *out = rl_test_floats(t, n), *dx = rl_test_floats(t, n);
    rl_motion_fwd(&m, NULL, &arena, out, x, N, F, H, W);
    lf_check(t, "motion out (inference)", out, want, n, TOL);

    // computed table instead of the stored one
    rl_motion mc = m;
    rl_tblock blocks[8];
    for (int i = 0; i < m.n_blocks && i < 8; i++) { blocks[i] = m.blocks[i]; blocks[i].pe = NULL; }
    mc.blocks = blocks;
    float *out2 = rl_test_floats(t, n);
    rl_motion_fwd(&mc, NULL, &arena, out2, x, N, F, H, W);
    lf_check(t, "motion out (computed pe)", out2, want, n, TOL);

    rl_motion_acts a;
    rl_motion_fwd(&m, &a, &arena, out, x, N, F, H, W);
    lf_check(t, "motion out (training)", out, want, n, TOL);
    rl_motion_bwd(&m, &g, &a, &arena, dx, dout, x, N, F, H, W);
    lf_check(t, "motion dx", dx, dx_want, n, TOL);
    lf_check_grads(t, &fx, &gs, TOL);

    // in place (the UNet may pass out == x)
    float *xin = rl_test_floats(t, n);
    memcpy(xin, x, n * sizeof(float));
    rl_motion_fwd(&m, NULL, &arena, xin, xin, N, F, H, W);
    lf_check(t, "motion out (in place)", xin, want, n, TOL);

    motion_run run = { &m, &arena, x, N, F, H, W };
    rl_check_threads_bitwise(t, "motion threads", run_motion, &run, n);
done:
    rl_motion_free(&m);
    rl_motion_free(&g);
    rl_arena_free(&arena);
    rl_weights_free(&ws);
    rl_weights_free(&gs);
    rl_fixture_close(&fx);
}

static void test_bind_errors(rl_test *t, const char *arg)
{
    (void)arg;
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, "layers/motion_c12_f5_h2.safetensors")) return;
    rl_weights ws;
    rl_motion m = { 0 };
    rl_err err = { 0 };
    if (!lf_tables(t, &fx, &ws, NULL)) goto done;
    rl_motion_cfg cfg = { .C = 12, .NH = 5, .G = 4, .n_layers = 1, .max_seq = 32, .double_self = 1 };
    RL_CHECK(t, rl_motion_bind(&m, &ws, "", &cfg, &err) == RL_E_PARAM);      // 12 % 5 heads
    cfg.NH = 2; cfg.max_seq = 16;                                            // pe is [1, 32, 12]
    RL_CHECK(t, rl_motion_bind(&m, &ws, "", &cfg, &err) == RL_E_SHAPE);
    RL_CHECK(t, strstr(err.msg, "pos_embed.pe") != NULL);
    cfg.max_seq = 32; cfg.n_layers = 2;                                      // no block 1
    RL_CHECK(t, rl_motion_bind(&m, &ws, "", &cfg, &err) == RL_E_MISSING);
    RL_CHECK(t, strstr(err.msg, "transformer_blocks.1") != NULL);
    printf("  message: %s\n", err.msg);
done:
    rl_motion_free(&m);
    rl_weights_free(&ws);
    rl_fixture_close(&fx);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "motion_c12_f5", test_module, "layers/motion_c12_f5_h2.safetensors" },
        { "motion_c16_f7", test_module, "layers/motion_c16_f7_h4.safetensors" },
        { "bind_errors", test_bind_errors, NULL },
        { 0 } });
}
