/* tests/test_vae.c - AutoencoderKL against tools/fixtures/make_vae.py (float64 torch reference
 * of diffusers' AutoencoderKL): decode, encode (posterior mean/logvar), every parameter
 * gradient of both halves, input gradients, finite differences, thread invariance;
 * vae/config.json parsing and its errors. */
#include <math.h>
#include <string.h>

#include "core/par.h"
#include "core/vae.h"
#include "io/config_vae.h"
#include "io/weights_io.h"
#include "tests/harness.h"
#include "tests/layer_fixture.h"

typedef struct {
    rl_vae v;
    rl_arena arena;
    const float *z, *dimg;
    float *img;
    int B, h, w, H, W, OC;
} vae_run;

static void run_decode(void *ctx, float *out)
{
    vae_run *r = ctx;
    rl_vae_decode(&r->v, &r->arena, out, r->z, r->B, r->h, r->w);
}

static double dec_loss(void *ctx)
{
    vae_run *r = ctx;
    rl_vae_decode(&r->v, &r->arena, r->img, r->z, r->B, r->h, r->w);
    double s = 0;
    for (size_t i = 0; i < (size_t)r->B * r->OC * r->H * r->W; i++)
        s += (double)r->img[i] * r->dimg[i];
    return s;
}

/* Parameters are the names with a "grad.dec." entry: copied writable into ws, zeroed in gs. */
static int split_tables(rl_test *t, const rl_weights *file, rl_weights *ws, rl_weights *gs)
{
    rl_err err = { 0 };
    const char *tag = "grad.dec.";
    for (int i = 0; i < file->n; i++) {
        if (strncmp(file->w[i].name, tag, strlen(tag)) != 0) continue;
        const char *name = file->w[i].name + strlen(tag);
        const rl_weight *p = rl_weights_find(file, name);
        float *a, *b;
        if (!p || rl_weights_add_new(ws, name, p->ndim, p->shape, &a, &err) ||
            rl_weights_add_new(gs, name, p->ndim, p->shape, &b, &err)) {
            rl_test_fail(t, "param %s: %s", name, err.msg);
            return 0;
        }
        memcpy(a, p->data, rl_weight_numel(p) * sizeof(float));
    }
    return 1;
}

static void check_grads(rl_test *t, const rl_weights *file, rl_weights *gs, const char *tag)
{
    double worst = 0;
    int n_bad = 0;
    for (int i = 0; i < gs->n; i++) {
        char name[300];
        snprintf(name, sizeof name, "grad.%s.%s", tag, gs->w[i].name);
        const rl_weight *e = rl_weights_find(file, name);
        if (!e) { rl_test_fail(t, "fixture lacks %s", name); continue; }
        // only print the tensors of interest; all are checked
        const size_t n = rl_weight_numel(e);
        double scale = 0;
        for (size_t k = 0; k < n; k++) scale = fmax(scale, fabs(e->data[k]));
        for (size_t k = 0; k < n; k++) {
            double d = fabs(gs->w[i].data[k] - e->data[k]);
            // float32 sums over B * H * W * 9 * C terms: relative to the tensor's largest value
            const double tol = 1e-4 * scale + 1e-5;
            if (d > tol) n_bad++;
            worst = fmax(worst, d / tol);
        }
    }
    rl_test_check(t, n_bad == 0, "grad.%s: %d parameter tensors, worst |err| / tol = %.3g, "
                  "tol = 1e-4 max|want| + 1e-5 (%d elements over)", tag, gs->n, worst, n_bad);
}

static void test_fixture(rl_test *t, const char *rel)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, rel)) return;
    rl_err err = { 0 };
    rl_weights file, ws, gs;
    rl_weights_init(&file, rel);
    rl_weights_init(&ws, "params");
    rl_weights_init(&gs, "grads");
    vae_run r = { 0 };
    rl_vae g = { 0 };
    rl_json j = { 0 };
    rl_arena_init(&r.arena, 0);

    const char *cfg_text = rl_fixture_str(&fx, "config");
    rl_vae_cfg cfg;
    if (rl_json_parse(&j, cfg_text, strlen(cfg_text), "config", &err) ||
        rl_vae_cfg_parse(&cfg, &j, &err)) {
        rl_test_fail(t, "config: %s", err.msg);
        goto done;
    }
    const int B = rl_fixture_int(&fx, "B"), h = rl_fixture_int(&fx, "h"), w = rl_fixture_int(&fx, "w");
    const int s = rl_vae_cfg_scale(&cfg), lc = cfg.latent_channels;
    r.B = B; r.h = h; r.w = w; r.H = h * s; r.W = w * s; r.OC = cfg.out_channels;

    if (rl_weights_load_st(&file, rl_test_fixture_path(t, rel), NULL, &err) ||
        !split_tables(t, &file, &ws, &gs)) {
        rl_test_fail(t, "load: %s", err.msg);
        goto done;
    }
    if (!LF_BIND(t, rl_vae_bind, &r.v, &g, &ws, &gs, "", &cfg, &err)) goto done;
    size_t n_params = 0;
    for (int i = 0; i < ws.n; i++) n_params += rl_weight_numel(&ws.w[i]);
    RL_CHECK(t, rl_vae_n_params(&r.v) == n_params);

    // ---- decoder
    const size_t n_img = (size_t)B * r.OC * r.H * r.W, n_z = (size_t)B * lc * h * w;
    r.z = rl_fixture_f32(&fx, "z", 4, (int[]){ B, lc, h, w });
    r.dimg = rl_fixture_f32(&fx, "dimg", 4, (int[]){ B, r.OC, r.H, r.W });
    const float *want_img = rl_fixture_f32(&fx, "img", 4, (int[]){ B, r.OC, r.H, r.W });
    if (!r.z || !r.dimg || !want_img) goto done;
    r.img = rl_test_floats(t, n_img);
    rl_vae_decode(&r.v, &r.arena, r.img, r.z, B, h, w);
    // float32 through ~10 convolutions, group norms and a softmax; outputs are O(1)
    rl_check_close(t, "decode", r.img, want_img, n_img, 1e-5, 1e-4);

    float *img2 = rl_test_floats(t, n_img), *dz = rl_test_floats(t, n_z);
    rl_vae_acts a;
    rl_arena_mark m = rl_arena_get_mark(&r.arena);
    rl_vae_decode_train(&r.v, &a, &r.arena, img2, r.z, B, h, w);
    rl_check_bitwise(t, "decode_train vs decode", img2, r.img, n_img);
    rl_vae_decode_bwd(&r.v, &g, &a, &r.arena, dz, r.dimg);
    rl_arena_reset(&r.arena, m);
    rl_check_close(t, "dz", dz, rl_fixture_f32(&fx, "dz", 4, (int[]){ B, lc, h, w }), n_z,
                   1e-4, 1e-4);
    check_grads(t, &file, &gs, "dec");

    const char *fd_names[] = { "decoder.conv_in.weight", "decoder.mid_block.attentions.0.to_q.weight",
                               "decoder.up_blocks.0.resnets.0.conv_shortcut.weight",
                               "post_quant_conv.bias", "decoder.conv_norm_out.weight" };
    // float32 forward: h = 1e-2 balances truncation and rounding of an O(10) loss; a name
    // that is absent is skipped (conv_shortcut exists only when channels change)
    for (size_t i = 0; i < sizeof fd_names / sizeof fd_names[0]; i++)
        lf_check_grad_fd(t, &ws, &gs, fd_names[i], dec_loss, &r, 12, 1e-2, 5e-3, 2e-2);
    rl_check_threads_bitwise(t, "decode", run_decode, &r, n_img);

    // ---- encoder
    for (int i = 0; i < gs.n; i++) memset(gs.w[i].data, 0, rl_weight_numel(&gs.w[i]) * sizeof(float));
    const size_t n_x = (size_t)B * cfg.in_channels * r.H * r.W;
    const float *x = rl_fixture_f32(&fx, "enc_x", 4, (int[]){ B, cfg.in_channels, r.H, r.W });
    const float *want_mean = rl_fixture_f32(&fx, "enc_mean", 4, (int[]){ B, lc, h, w });
    const float *want_lv = rl_fixture_f32(&fx, "enc_logvar", 4, (int[]){ B, lc, h, w });
    const float *dmean = rl_fixture_f32(&fx, "dmean", 4, (int[]){ B, lc, h, w });
    const float *dlv = rl_fixture_f32(&fx, "dlogvar", 4, (int[]){ B, lc, h, w });
    if (!x || !want_mean || !want_lv || !dmean || !dlv) goto done;
    float *mean = rl_test_floats(t, n_z), *lv = rl_test_floats(t, n_z);
    rl_vae_encode(&r.v, &r.arena, mean, lv, x, B, r.H, r.W);
    rl_check_close(t, "encode mean", mean, want_mean, n_z, 1e-5, 1e-4);
    rl_check_close(t, "encode logvar", lv, want_lv, n_z, 1e-5, 1e-4);

    float *mean2 = rl_test_floats(t, n_z), *lv2 = rl_test_floats(t, n_z);
    float *dx = rl_test_floats(t, n_x);
    m = rl_arena_get_mark(&r.arena);
    rl_vae_encode_train(&r.v, &a, &r.arena, mean2, lv2, x, B, r.H, r.W);
    rl_check_bitwise(t, "encode_train vs encode", mean2, mean, n_z);
    rl_vae_encode_bwd(&r.v, &g, &a, &r.arena, dx, dmean, dlv);
    rl_arena_reset(&r.arena, m);
    rl_check_close(t, "dx", dx, rl_fixture_f32(&fx, "dx", 4, (int[]){ B, cfg.in_channels, r.H, r.W }),
                   n_x, 1e-4, 1e-4);
    check_grads(t, &file, &gs, "enc");

done:
    rl_json_free(&j);
    rl_vae_free(&r.v);
    rl_vae_free(&g);
    rl_arena_free(&r.arena);
    rl_weights_free(&gs);
    rl_weights_free(&ws);
    rl_weights_free(&file);
    rl_fixture_close(&fx);
}

/* A missing or misshapen tensor is refused with its name and both shapes. */
static void test_bind_errors(rl_test *t, const char *rel)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, rel)) return;
    rl_err err = { 0 };
    rl_weights file;
    rl_weights_init(&file, "vae/diffusion_pytorch_model.safetensors");
    rl_json j = { 0 };
    rl_vae v = { 0 };
    rl_vae_cfg cfg;
    const char *cfg_text = rl_fixture_str(&fx, "config");
    if (rl_json_parse(&j, cfg_text, strlen(cfg_text), "config", &err) ||
        rl_vae_cfg_parse(&cfg, &j, &err) ||
        rl_weights_load_st(&file, rl_test_fixture_path(t, rel), NULL, &err)) {
        rl_test_fail(t, "%s", err.msg);
        goto done;
    }
    // one more latent channel than the weights hold: conv shapes disagree
    rl_vae_cfg bad = cfg;
    bad.latent_channels++;
    rl_status rc = rl_vae_bind(&v, &file, "", &bad, &err);
    rl_test_check(t, rc == RL_E_SHAPE && strstr(err.msg, "conv_out.weight") && strstr(err.msg, "[8, 4, 3, 3]"),
                  "latent_channels + 1 -> %s: %s", rl_status_str(rc), err.msg);
    rl_vae_free(&v);
    // a prefix under which nothing exists
    rc = rl_vae_bind(&v, &file, "vae", &cfg, &err);
    rl_test_check(t, rc == RL_E_MISSING && strstr(err.msg, "vae.encoder.conv_in.weight"),
                  "prefix vae -> %s: %s", rl_status_str(rc), err.msg);
    rl_vae_free(&v);
    rl_vae_free(&v);   // idempotent
done:
    rl_json_free(&j);
    rl_weights_free(&file);
    rl_fixture_close(&fx);
}

static void test_config_errors(rl_test *t, const char *arg)
{
    static const struct { const char *json; rl_status code; const char *needle; } cases[] = {
        { "{\"latent_channels\": 4, \"layers_per_block\": 1}", RL_E_MISSING, "block_out_channels" },
        { "{\"block_out_channels\": [8], \"layers_per_block\": 1}", RL_E_MISSING, "latent_channels" },
        { "{\"block_out_channels\": [8, 12], \"latent_channels\": 4, \"layers_per_block\": 1, "
          "\"norm_num_groups\": 8}", RL_E_FORMAT, "block_out_channels[1]" },
        { "{\"block_out_channels\": [8], \"latent_channels\": 4, \"layers_per_block\": 1, "
          "\"norm_num_groups\": 4, \"down_block_types\": [\"DownBlock2D\"]}", RL_E_FORMAT,
          "down_block_types" },
        { "{\"block_out_channels\": [8], \"latent_channels\": 4, \"layers_per_block\": 1, "
          "\"norm_num_groups\": 4, \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}",
          RL_E_FORMAT, "up_block_types" },
        { "{\"block_out_channels\": [8], \"latent_channels\": 4, \"layers_per_block\": 1, "
          "\"norm_num_groups\": 4, \"act_fn\": \"relu\"}", RL_E_FORMAT, "act_fn" },
        { "{\"block_out_channels\": [8], \"latent_channels\": \"4\", \"layers_per_block\": 1}",
          RL_E_FORMAT, "latent_channels" },
        { "{\"block_out_channels\": [8], \"latent_channels\": 4, \"layers_per_block\": 1, "
          "\"norm_num_groups\": 4, \"scaling_factor\": 0}", RL_E_FORMAT, "scaling_factor" },
        { "{\"block_out_channels\": [], \"latent_channels\": 4, \"layers_per_block\": 1}",
          RL_E_FORMAT, "block_out_channels" },
        { "{\"block_out_channels\": [8,8,8,8,8,8,8,8,8], \"latent_channels\": 4, "
          "\"layers_per_block\": 1, \"norm_num_groups\": 4}", RL_E_FORMAT, "block_out_channels" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rl_err err = { 0 };
        rl_json j = { 0 };
        rl_vae_cfg cfg;
        rl_status rc = rl_json_parse(&j, cases[i].json, strlen(cases[i].json), "config.json", &err);
        if (rc == RL_OK) rc = rl_vae_cfg_parse(&cfg, &j, &err);
        rl_test_check(t, rc == cases[i].code && strstr(err.msg, cases[i].needle) &&
                      strstr(err.msg, "config.json"), "case %zu: %s (%s) -> %s: %s", i,
                      rl_status_str(cases[i].code), cases[i].needle, rl_status_str(rc), err.msg);
        rl_json_free(&j);
    }
    const char *ok = "{\"block_out_channels\": [32, 64], \"latent_channels\": 4, "
                     "\"layers_per_block\": 2, \"shift_factor\": null}";
    rl_err err = { 0 };
    rl_json j = { 0 };
    rl_vae_cfg cfg = { 0 };
    rl_status rc = rl_json_parse(&j, ok, strlen(ok), "config.json", &err);
    if (rc == RL_OK) rc = rl_vae_cfg_parse(&cfg, &j, &err);
    rl_test_check(t, rc == RL_OK && cfg.norm_num_groups == 32 && cfg.scaling_factor == 0.18215f &&
                  cfg.shift_factor == 0.0f && cfg.use_quant_conv && rl_vae_cfg_scale(&cfg) == 2 &&
                  cfg.in_channels == 3, "defaults: %s", err.msg);
    rl_json_free(&j);
}

// Planar [-1, 1] to interleaved bytes: clamped, channel order kept, round half to even
// (x = 0 gives v = 0.5 and 127.5 -> 128; x = -1/255 gives 127.0 exactly).
static void test_to_rgb(rl_test *t, const char *arg)
{
    (void)arg;
    const float img[3 * 2] = { -3.0f, 0.0f,              // R: below the range, the middle
                               1.0f, -1.0f / 255.0f,     // G: the top, one step below middle
                               5.0f, -1.0f };            // B: above the range, the bottom
    uint8_t rgb[6];
    float frame[6];
    rl_vae_to_rgb(rgb, frame, img, 1, 2);
    const uint8_t want[6] = { 0, 255, 255, 128, 127, 0 };
    rl_test_check(t, !memcmp(rgb, want, 6), "bytes %u %u %u | %u %u %u", rgb[0], rgb[1], rgb[2],
                  rgb[3], rgb[4], rgb[5]);
    RL_CHECK(t, frame[0] == 0.0f && frame[1] == 1.0f && frame[2] == 1.0f && frame[3] == 0.5f &&
                frame[5] == 0.0f);
    uint8_t again[6];
    rl_vae_to_rgb(again, NULL, img, 1, 2);   // no float frame wanted
    RL_CHECK(t, !memcmp(again, want, 6));
}

/* The decoder and encoder of a model folder (tools/fixtures/make_pipeline.py, the pyref's
 * reference of diffusers' AutoencoderKL on tiny_a / tiny_b, F16 weights for tiny_b). */
static void test_model(rl_test *t, const char *model)
{
    char rel[256], dir[512], path[600];
    snprintf(rel, sizeof rel, "pipeline/%s_vae.safetensors", model);
    snprintf(dir, sizeof dir, "%s", rl_test_fixture_path(t, "models"));
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, rel)) return;
    rl_err err = { 0 };
    rl_weights ws;
    snprintf(path, sizeof path, "%s/%s/vae/diffusion_pytorch_model.safetensors", dir, model);
    rl_weights_init(&ws, path);
    rl_vae v = { 0 };
    rl_vae_cfg cfg;
    rl_arena arena;
    rl_arena_init(&arena, 0);
    snprintf(path, sizeof path, "%s/%s/vae/config.json", dir, model);
    if (rl_vae_cfg_load(&cfg, path, &err) || rl_weights_load_st(&ws, ws.label, NULL, &err) ||
        rl_vae_bind(&v, &ws, "", &cfg, &err) || rl_weights_check_all_used(&ws, NULL, &err)) {
        rl_test_fail(t, "%s", err.msg);
        goto done;
    }
    const int B = rl_fixture_int(&fx, "B"), C = rl_fixture_int(&fx, "C");
    const int h = rl_fixture_int(&fx, "h"), w = rl_fixture_int(&fx, "w");
    const int H = rl_fixture_int(&fx, "H"), W = rl_fixture_int(&fx, "W");
    RL_CHECK(t, H == h * rl_vae_cfg_scale(&cfg) && C == cfg.latent_channels);
    const float *z = rl_fixture_f32(&fx, "z", 4, (int[]){ B, C, h, w });
    const float *img = rl_fixture_f32(&fx, "image", 4, (int[]){ B, cfg.out_channels, H, W });
    const float *x = rl_fixture_f32(&fx, "enc_x", 4, (int[]){ B, cfg.in_channels, H, W });
    const float *mean = rl_fixture_f32(&fx, "enc_mean", 4, (int[]){ B, C, h, w });
    const float *lv = rl_fixture_f32(&fx, "enc_logvar", 4, (int[]){ B, C, h, w });
    if (!z || !img || !x || !mean || !lv) goto done;
    const size_t n_img = (size_t)B * cfg.out_channels * H * W, n_z = (size_t)B * C * h * w;
    float *got = rl_test_floats(t, n_img);
    rl_vae_decode(&v, &arena, got, z, B, h, w);
    // float32 through the whole decoder (~20 convolutions); images are O(1)
    rl_check_close(t, "decode", got, img, n_img, 1e-4, 1e-4);
    // frame by frame (B = 1 at a time) is what the pipeline does; sgemm blocking depends on
    // the batch, so only float32 rounding may differ
    float *one = rl_test_floats(t, n_img);
    for (int b = 0; b < B; b++)
        rl_vae_decode(&v, &arena, one + (size_t)b * n_img / B, z + (size_t)b * n_z / B, 1, h, w);
    rl_check_close(t, "decode one image at a time", one, got, n_img, 1e-5, 1e-5);
    float *gm = rl_test_floats(t, n_z), *gl = rl_test_floats(t, n_z);
    rl_vae_encode(&v, &arena, gm, gl, x, B, H, W);
    rl_check_close(t, "encode mean", gm, mean, n_z, 1e-4, 1e-4);
    rl_check_close(t, "encode logvar", gl, lv, n_z, 1e-4, 1e-4);
done:
    rl_vae_free(&v);
    rl_arena_free(&arena);
    rl_weights_free(&ws);
    rl_fixture_close(&fx);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "b2", test_fixture, "vae/vae_b2.safetensors" },
        { "b3", test_fixture, "vae/vae_b3.safetensors" },
        { "tiny_a", test_model, "tiny_a" },
        { "tiny_b", test_model, "tiny_b" },
        { "bind_errors", test_bind_errors, "vae/vae_b2.safetensors" },
        { "config_errors", test_config_errors, NULL },
        { "to_rgb", test_to_rgb, NULL },
        { 0 },
    });
}
