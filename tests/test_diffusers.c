/* tests/test_diffusers.c - model folders: tiny_a (UNetMotionModel, F32) and tiny_b
 * (UNet2DConditionModel + MotionAdapter, F16) load and bind; broken copies of them (written to
 * a temp dir at test time) are refused with messages naming the file, tensor or key. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/clip.h"
#include "core/unet.h"
#include "core/vae.h"
#include "io/diffusers.h"
#include "io/safetensors.h"
#include "io/weights_io.h"
#include "tests/harness.h"

/* Binds the text encoder, the UNet (with the adapter when separate) and the VAE, and requires
 * every tensor to be used: what rl_ctx_open does. */
static rl_status bind_all(rl_diffusers *m, rl_err *err)
{
    rl_clip c = { 0 };
    rl_vae v = { 0 };
    rl_unet u = { 0 };
    rl_status rc = rl_clip_bind(&c, &m->text_w, "text_model", &m->text_cfg, err);
    if (!rc) rc = rl_weights_check_all_used(&m->text_w, NULL, err);
    if (!rc) rc = rl_unet_bind(&u, &m->unet_w, m->has_adapter ? &m->motion_w : NULL,
                               &m->unet_cfg, err);
    rl_unet_free(&u);
    if (!rc) rc = rl_vae_bind(&v, &m->vae_w, "", &m->vae_cfg, err);
    if (!rc) rc = rl_weights_check_all_used(&m->vae_w, NULL, err);
    rl_clip_free(&c);
    rl_vae_free(&v);
    return rc;
}

static void test_open(rl_test *t, const char *name)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", rl_test_fixture_path(t, name));
    rl_diffusers m;
    rl_err err = { 0 };
    rl_status rc = rl_diffusers_open(&m, dir, &err);
    if (!rl_test_check(t, rc == RL_OK, "open %s: %s", name, err.msg)) return;
    RL_CHECK(t, m.text_cfg.hidden_size > 0 && m.text_w.n > 0 && m.unet_w.n > 0 && m.vae_w.n > 0);
    RL_CHECK(t, m.tok.n_vocab == m.text_cfg.vocab_size);
    RL_CHECK(t, strcmp(m.sched_class, "DDIMScheduler") == 0);
    const int b = strcmp(name, "models/tiny_b") == 0;
    rl_test_check(t, m.has_adapter == b && m.unet_cfg.has_motion,
                  "%s: adapter %d, motion %d", m.unet_class, m.has_adapter, m.unet_cfg.has_motion);
    if (b) RL_CHECK(t, m.vae_w.w[0].src_dtype == RL_F16 && m.motion_w.n > 0);
    rc = bind_all(&m, &err);
    rl_test_check(t, rc == RL_OK, "bind text_encoder and vae: %s", err.msg);
    rl_diffusers_close(&m);
    rl_diffusers_close(&m);   // idempotent
}

// ---- broken copies ----------------------------------------------------------------------

/* Rewrites dir/rel (a safetensors file): drops tensor drop, adds tensor add (shape [2]),
 * reshapes tensor reshape to 1-D, stores everything as dtype. */
static int rewrite_st(rl_test *t, const char *dir, const char *rel, const char *drop,
                      const char *add, const char *reshape, rl_dtype dtype)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    rl_err err = { 0 };
    rl_weights ws;
    rl_weights_init(&ws, path);
    rl_st_writer w;
    rl_st_writer_init(&w);
    int ok = rl_weights_load_st(&ws, path, NULL, &err) == RL_OK;
    for (int i = 0; ok && i < ws.n; i++) {
        const rl_weight *e = &ws.w[i];
        if (drop && strcmp(e->name, drop) == 0) continue;
        int64_t shape[RL_MAX_DIMS];
        int ndim = e->ndim;
        memcpy(shape, e->shape, sizeof shape);
        if (reshape && strcmp(e->name, reshape) == 0) {
            int64_t n = 1;
            for (int d = 0; d < ndim; d++) n *= shape[d];
            ndim = 1; shape[0] = n;
        }
        ok = rl_st_writer_add_f32(&w, e->name, dtype, ndim, shape, e->data, &err) == RL_OK;
    }
    if (ok && add)
        ok = rl_st_writer_add_f32(&w, add, dtype, 1, (int64_t[]){ 2 }, (float[]){ 1, 2 }, &err) == RL_OK;
    if (ok) ok = rl_st_writer_save(&w, path, &err) == RL_OK;
    if (!ok) rl_test_fail(t, "rewrite %s: %s", path, err.msg);
    rl_st_writer_free(&w);
    rl_weights_free(&ws);
    return ok;
}

/* Edits dir/rel (JSON): deletes key, or sets it to the string value when value != NULL. */
static int edit_json(rl_test *t, const char *dir, const char *rel, const char *key,
                     const char *value)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    if (!f) { rl_test_fail(t, "open %s", path); return 0; }
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    if (!root) { rl_test_fail(t, "parse %s", path); return 0; }
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    if (value) cJSON_AddStringToObject(root, key, value);
    char *text = cJSON_Print(root);
    f = fopen(path, "wb");
    int ok = f && fputs(text, f) >= 0;
    if (f) fclose(f);
    cJSON_free(text);
    cJSON_Delete(root);
    return ok;
}

typedef enum {
    BR_MISSING_TENSOR, BR_EXTRA_TENSOR, BR_WRONG_SHAPE, BR_MISSING_KEY, BR_WRONG_TYPE,
    BR_MISSING_FILE, BR_NO_INDEX, BR_BAD_CLASS, BR_PICKLE, BR_MISSING_ADAPTER, BR_UNET_KEY,
    BR_MOTION_SHAPE, BR_UNET_EXTRA,
} breakage;

static void test_broken(rl_test *t, const char *arg)
{
    static const struct {
        const char *model; breakage how; rl_status code; const char *needle[2];
    } cases[] = {
        { "models/tiny_a", BR_MISSING_TENSOR, RL_E_MISSING,
          { "text_model.final_layer_norm.bias", "text_encoder/model.safetensors" } },
        { "models/tiny_a", BR_EXTRA_TENSOR, RL_E_SHAPE,
          { "decoder.extra.weight", "vae/diffusion_pytorch_model.safetensors" } },
        { "models/tiny_a", BR_WRONG_SHAPE, RL_E_SHAPE,
          { "decoder.conv_in.weight", "[" } },
        { "models/tiny_a", BR_MISSING_KEY, RL_E_MISSING,
          { "hidden_size", "text_encoder/config.json" } },
        { "models/tiny_a", BR_WRONG_TYPE, RL_E_FORMAT, { "latent_channels", "vae/config.json" } },
        { "models/tiny_a", BR_MISSING_FILE, RL_E_MISSING,
          { "vae/diffusion_pytorch_model.safetensors", "missing" } },
        { "models/tiny_a", BR_NO_INDEX, RL_E_MISSING, { "model_index.json", "" } },
        { "models/tiny_a", BR_BAD_CLASS, RL_E_FORMAT, { "UNet3DConditionModel", "unet" } },
        { "models/tiny_a", BR_PICKLE, RL_E_FORMAT, { "model.bin", "pickle" } },
        { "models/tiny_b", BR_MISSING_ADAPTER, RL_E_MISSING, { "motion_adapter/config.json", "" } },
        { "models/tiny_a", BR_UNET_KEY, RL_E_FORMAT, { "unet/config.json", "block_out_channels" } },
        { "models/tiny_b", BR_MOTION_SHAPE, RL_E_SHAPE,
          { "down_blocks.0.motion_modules.0.proj_in.weight", "motion_adapter" } },
        { "models/tiny_a", BR_UNET_EXTRA, RL_E_SHAPE, { "decoder.extra.weight", "unet/" } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "broken%zu", i);
        const char *dir = rl_test_copy_fixture(t, cases[i].model, tag);
        if (!dir) continue;
        char path[1024];
        int ok = 1;
        switch (cases[i].how) {
        case BR_MISSING_TENSOR:
            ok = rewrite_st(t, dir, "text_encoder/model.safetensors",
                            "text_model.final_layer_norm.bias", NULL, NULL, RL_F32);
            break;
        case BR_EXTRA_TENSOR:
            ok = rewrite_st(t, dir, "vae/diffusion_pytorch_model.safetensors", NULL,
                            "decoder.extra.weight", NULL, RL_F32);
            break;
        case BR_WRONG_SHAPE:
            ok = rewrite_st(t, dir, "vae/diffusion_pytorch_model.safetensors", NULL, NULL,
                            "decoder.conv_in.weight", RL_F16);
            break;
        case BR_MISSING_KEY: ok = edit_json(t, dir, "text_encoder/config.json", "hidden_size", NULL); break;
        case BR_WRONG_TYPE: ok = edit_json(t, dir, "vae/config.json", "latent_channels", "4"); break;
        case BR_MISSING_FILE:
            snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", dir);
            ok = remove(path) == 0;
            break;
        case BR_NO_INDEX:
            snprintf(path, sizeof path, "%s/model_index.json", dir);
            ok = remove(path) == 0;
            break;
        case BR_BAD_CLASS: {
            snprintf(path, sizeof path, "%s/model_index.json", dir);
            FILE *f = fopen(path, "w");
            ok = f && fputs("{\"_class_name\": \"AnimateDiffPipeline\", \"text_encoder\": "
                            "[\"transformers\", \"CLIPTextModel\"], \"tokenizer\": [\"transformers\", "
                            "\"CLIPTokenizer\"], \"unet\": [\"diffusers\", \"UNet3DConditionModel\"], "
                            "\"vae\": [\"diffusers\", \"AutoencoderKL\"], \"scheduler\": "
                            "[\"diffusers\", \"DDIMScheduler\"]}", f) >= 0;
            if (f) fclose(f);
            break;
        }
        case BR_PICKLE: {
            char to[1100];
            snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", dir);
            snprintf(to, sizeof to, "%s/text_encoder/model.bin", dir);
            ok = rename(path, to) == 0;
            break;
        }
        case BR_MISSING_ADAPTER: {
            char cmd[1200];
            snprintf(cmd, sizeof cmd, "rm -rf '%s/motion_adapter'", dir);
            ok = system(cmd) == 0;
            break;
        }
        case BR_MOTION_SHAPE:
            ok = rewrite_st(t, dir, "motion_adapter/diffusion_pytorch_model.safetensors", NULL, NULL,
                            "down_blocks.0.motion_modules.0.proj_in.weight", RL_F16);
            break;
        case BR_UNET_EXTRA:
            ok = rewrite_st(t, dir, "unet/diffusion_pytorch_model.safetensors", NULL,
                            "decoder.extra.weight", NULL, RL_F32);
            break;
        case BR_UNET_KEY: ok = edit_json(t, dir, "unet/config.json", "block_out_channels", "x"); break;
        }
        if (!ok) { rl_test_fail(t, "case %zu: could not break the copy", i); continue; }

        rl_diffusers m;
        rl_err err = { 0 };
        rl_status rc = rl_diffusers_open(&m, dir, &err);
        if (rc == RL_OK) {
            rc = bind_all(&m, &err);
            rl_diffusers_close(&m);
        }
        rl_test_check(t, rc == cases[i].code && strstr(err.msg, cases[i].needle[0]) &&
                      strstr(err.msg, cases[i].needle[1]),
                      "case %zu: want %s naming '%s': got %s: %s", i,
                      rl_status_str(cases[i].code), cases[i].needle[0], rl_status_str(rc), err.msg);
    }
}

/* BF16 weights on disk load as the exact BF16 values. */
static void test_bf16(rl_test *t, const char *arg)
{
    const char *dir = rl_test_copy_fixture(t, "models/tiny_a", "bf16");
    if (!dir || !rewrite_st(t, dir, "vae/diffusion_pytorch_model.safetensors", NULL, NULL, NULL,
                            RL_BF16)) return;
    rl_diffusers a, b;
    rl_err err = { 0 };
    if (!rl_test_check(t, rl_diffusers_open(&a, rl_test_fixture_path(t, "models/tiny_a"), &err) == RL_OK,
                       "open tiny_a: %s", err.msg)) return;
    if (!rl_test_check(t, rl_diffusers_open(&b, dir, &err) == RL_OK, "open bf16 copy: %s", err.msg)) {
        rl_diffusers_close(&a);
        return;
    }
    size_t bad = 0, n = 0;
    for (int i = 0; i < a.vae_w.n; i++) {
        const rl_weight *x = &a.vae_w.w[i], *y = rl_weights_find(&b.vae_w, x->name);
        if (!y || y->src_dtype != RL_BF16) { bad++; continue; }
        const size_t k = rl_weight_numel(x);
        for (size_t e = 0; e < k; e++, n++)
            if (y->data[e] != rl_bf16_to_f32(rl_f32_to_bf16(x->data[e]))) bad++;
    }
    rl_test_check(t, bad == 0 && n > 0, "bf16 vae: %zu values, %zu differ from bf16(f32)", n, bad);
    rl_test_check(t, bind_all(&b, &err) == RL_OK, "bind bf16 copy: %s", err.msg);
    rl_diffusers_close(&a);
    rl_diffusers_close(&b);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "tiny_a", test_open, "models/tiny_a" },
        { "tiny_b", test_open, "models/tiny_b" },
        { "broken", test_broken, NULL },
        { "bf16", test_bf16, NULL },
        { 0 },
    });
}
