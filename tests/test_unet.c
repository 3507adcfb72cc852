/* tests/test_unet.c - the whole UNet against diffusers run in PyTorch (float64) on the fixture
 * models (tools/fixtures/make_pipeline.py): tiny_a (UNetMotionModel, F32, conv projections,
 * motion inside) and tiny_b (UNet2DConditionModel F16 + MotionAdapter, linear projections,
 * per-block heads, motion mid block), two frame counts each. Also: per-frame embeddings equal
 * to the broadcast ones give the same result (prompt travel path), 1 vs N threads bitwise,
 * the arena does not grow on a second call, and config errors name the key.
 * Tolerance: the brief's parity bar, max |err| <= 1e-4 * max |want| for one UNet call. */
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
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

    unet_run run = { &m.u, &arena, x, tv, emb, (int)tn, L, D, N, F, H, W };
    // Needs rl_gemm to be thread-count invariant: OpenBLAS sgemm with K = 360 (3x3 conv over
    // 40 channels, up block 0 of tiny_a) differs between 1 and 2 threads (reported to the lead).
    rl_check_threads_bitwise(t, "unet threads", run_unet, &run, n);
done:
    rl_arena_free(&arena);
    model_close(&m);
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
        { "config_errors", test_config_errors, NULL },
        { 0 } });
}
