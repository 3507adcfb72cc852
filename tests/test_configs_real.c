/* tests/test_configs_real.c - config files and folder layouts as they exist in the wild.
 *
 * Configs: tests/fixtures/configs/ holds the config.json / scheduler_config.json /
 * tokenizer files of Stable Diffusion 1.5 and 2.1, the AnimateDiff motion adapters (v1, v2
 * = v1-5-2, v3 = v1-5-3, AnimateLCM), a saved AnimateDiffPipeline and the schedulers used with
 * AnimateDiff (provenance in its README.md). Each is parsed by reel's parsers and the values
 * that decide the computation are checked against what diffusers derives from the same file.
 * Edited copies check that keys changing the network are refused by name and that keys that
 * change nothing are ignored.
 *
 * Layouts: copies of tests/fixtures/models/tiny_a and tiny_b rearranged at test time the way
 * hub folders are: sharded weights with an index (full and fp16 variant), fp16 variant files,
 * pickle-only folders (refused, never opened), model_index.json with components reel does not
 * use, a MotionAdapter found beside the unet or added separately, and text encoders with or
 * without transformers' position_ids buffer. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/bpe.h"
#include "core/clip.h"
#include "core/sched.h"
#include "core/unet.h"
#include "core/vae.h"
#include "io/config_clip.h"
#include "io/config_sched.h"
#include "io/config_unet.h"
#include "io/config_vae.h"
#include "io/diffusers.h"
#include "io/safetensors.h"
#include "io/tokfiles.h"
#include "io/weights_io.h"
#include "tests/harness.h"

// ---- helpers ------------------------------------------------------------------------------

static int write_text(rl_test *t, const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fputs(text, f) >= 0;
    if (f) ok &= fclose(f) == 0;
    if (!ok) rl_test_fail(t, "cannot write %s", path);
    return ok;
}

/* Parses fixture configs/<rel> into j; when key is given, first sets key to the JSON text value
 * (the edit a test makes). Records a failure and returns 0 when the file cannot be read. */
static int load_cfg(rl_test *t, rl_json *j, const char *rel, const char *key, const char *value)
{
    char r[256];
    snprintf(r, sizeof r, "configs/%s", rel);
    size_t len = 0;
    char *text = rl_test_read_file(t, rl_test_fixture_path(t, r), &len);
    if (!text) { rl_test_fail(t, "cannot read fixture %s", r); return 0; }
    rl_err err = { 0 };
    rl_status rc;
    if (!key) {
        rc = rl_json_parse(j, text, len, rel, &err);
    } else {
        cJSON *root = cJSON_Parse(text), *v = cJSON_Parse(value);
        if (!root || !v) { rl_test_fail(t, "edit %s: bad JSON", rel); return 0; }
        cJSON_DeleteItemFromObjectCaseSensitive(root, key);
        cJSON_AddItemToObject(root, key, v);
        char *out = cJSON_PrintUnformatted(root);
        rc = rl_json_parse(j, out, strlen(out), rel, &err);
        cJSON_free(out);
        cJSON_Delete(root);
    }
    if (rc) rl_test_fail(t, "%s: %s", rel, err.msg);
    return rc == RL_OK;
}

static int sh(rl_test *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int ints_eq(const int *a, const int *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

// ---- SD 1.5 ------------------------------------------------------------------------------

static void test_sd15(rl_test *t, const char *arg)
{
    (void)arg;
    rl_json j;
    rl_err err = { 0 };

    // unet: attention_head_dim 8 is the number of heads (diffusers' historical naming), so the
    // head size is channels / 8 = 40, 80, 160, 160
    rl_unet_cfg u;
    if (load_cfg(t, &j, "sd15/unet/config.json", NULL, NULL)) {
        rl_status rc = rl_unet_cfg_parse(&u, &j, &err);
        rl_json_free(&j);
        if (rl_test_check(t, rc == RL_OK, "sd15 unet parses: %s", err.msg)) {
            const int ch[4] = { 320, 640, 1280, 1280 }, hs[4] = { 40, 80, 160, 160 };
            int ok = u.n_blocks == 4 && ints_eq(u.channels, ch, 4);
            for (int i = 0; i < 4; i++)
                ok &= u.heads[i] == 8 && u.channels[i] / u.heads[i] == hs[i] &&
                      u.cross_dim[i] == 768 && u.layers[i] == 2 && u.xf_layers[i] == 1;
            rl_test_check(t, ok, "sd15 unet: 8 heads of 40/80/160/160, cross 768, 2 layers");
            rl_test_check(t, u.down[0] == RL_UNET_CROSSATTN && u.down[3] == RL_UNET_PLAIN &&
                          u.up[0] == RL_UNET_PLAIN && u.up[3] == RL_UNET_CROSSATTN,
                          "sd15 unet: block types (down XXX-, up -XXX)");
            rl_test_check(t, !u.use_linear_projection && u.flip_sin_to_cos && u.freq_shift == 0.0f &&
                          u.time_embed_dim == 1280 && u.norm_num_groups == 32 &&
                          u.norm_eps == 1e-5f && !u.has_motion && !u.motion_model &&
                          u.mid_xf_layers == 1 && u.sample_size == 64,
                          "sd15 unet: conv projection, time embedding (true, 0, 1280), no motion");
        }
    }

    // text encoder: CLIP ViT-L/14 text tower; the file's bos/eos ids (0, 2) are a known quirk
    // of these configs, read but never used by reel
    rl_clip_cfg c;
    if (load_cfg(t, &j, "sd15/text_encoder/config.json", NULL, NULL)) {
        rl_status rc = rl_clip_cfg_parse(&c, &j, &err);
        rl_json_free(&j);
        rl_test_check(t, rc == RL_OK && c.hidden_size == 768 && c.num_hidden_layers == 12 &&
                      c.num_attention_heads == 12 && c.intermediate_size == 3072 &&
                      c.hidden_act == RL_CLIP_ACT_QUICK_GELU && c.max_position_embeddings == 77 &&
                      c.vocab_size == 49408 && c.layer_norm_eps == 1e-5f && c.eos_token_id == 2,
                      "sd15 text encoder: 768 x 12 layers, 12 heads, quick_gelu, 77 positions: %s",
                      err.msg);
    }

    // vae: the 0.6.0 file has no scaling_factor: diffusers' default 0.18215
    rl_vae_cfg v;
    if (load_cfg(t, &j, "sd15/vae/config.json", NULL, NULL)) {
        rl_status rc = rl_vae_cfg_parse(&v, &j, &err);
        rl_json_free(&j);
        const int bo[4] = { 128, 256, 512, 512 };
        rl_test_check(t, rc == RL_OK && v.scaling_factor == 0.18215f && v.n_blocks == 4 &&
                      ints_eq(v.block_out_channels, bo, 4) && v.latent_channels == 4 &&
                      v.layers_per_block == 2 && rl_vae_cfg_scale(&v) == 8 &&
                      v.shift_factor == 0.0f && v.use_quant_conv && v.use_post_quant_conv &&
                      v.mid_block_add_attention,
                      "sd15 vae: 0.18215, [128, 256, 512, 512], 8x: %s", err.msg);
    }
}

// ---- SD 2.1 ------------------------------------------------------------------------------

static void check_sd21_unet(rl_test *t, const char *rel)
{
    rl_json j;
    rl_err err = { 0 };
    rl_unet_cfg u;
    if (!load_cfg(t, &j, rel, NULL, NULL)) return;
    rl_status rc = rl_unet_cfg_parse(&u, &j, &err);
    rl_json_free(&j);
    if (!rl_test_check(t, rc == RL_OK, "%s parses: %s", rel, err.msg)) return;
    // attention_head_dim [5, 10, 20, 20] is, again, the number of heads per block
    // (num_attention_heads = num_attention_heads or attention_head_dim): 64-wide heads
    const int heads[4] = { 5, 10, 20, 20 };
    int ok = ints_eq(u.heads, heads, 4);
    for (int i = 0; i < 4; i++) ok &= u.channels[i] / u.heads[i] == 64 && u.cross_dim[i] == 1024;
    rl_test_check(t, ok && u.use_linear_projection && u.sample_size == 96 && !u.has_motion,
                  "%s: heads 5/10/20/20 of 64, cross 1024, linear projection (upcast_attention "
                  "accepted: reel's attention is F32)", rel);
}

static void test_sd21(rl_test *t, const char *arg)
{
    (void)arg;
    check_sd21_unet(t, "sd21/unet/config.json");
    check_sd21_unet(t, "sd21/unet_resaved_0.25/config.json");

    rl_json j;
    rl_err err = { 0 };
    rl_clip_cfg c;
    if (load_cfg(t, &j, "sd21/text_encoder/config.json", NULL, NULL)) {
        rl_status rc = rl_clip_cfg_parse(&c, &j, &err);
        rl_json_free(&j);
        rl_test_check(t, rc == RL_OK && c.hidden_size == 1024 && c.num_hidden_layers == 23 &&
                      c.num_attention_heads == 16 && c.intermediate_size == 4096 &&
                      c.hidden_act == RL_CLIP_ACT_GELU && c.max_position_embeddings == 77,
                      "sd21 text encoder: 1024 x 23 layers, 16 heads, gelu (erf): %s", err.msg);
    }
    rl_vae_cfg v;
    if (load_cfg(t, &j, "sd21/vae/config.json", NULL, NULL)) {
        rl_status rc = rl_vae_cfg_parse(&v, &j, &err);
        rl_json_free(&j);
        rl_test_check(t, rc == RL_OK && v.scaling_factor == 0.18215f && v.sample_size == 768 &&
                      rl_vae_cfg_scale(&v) == 8, "sd21 vae: 0.18215, 768: %s", err.msg);
    }
}

// ---- motion adapters ---------------------------------------------------------------------

/* SD 1.5's unet config merged with configs/<rel> (UNetMotionModel.from_unet2d). */
static rl_status merge_sd15(rl_test *t, rl_unet_cfg *u, const char *rel, const char *key,
                            const char *value, rl_err *err)
{
    rl_json j;
    if (!load_cfg(t, &j, "sd15/unet/config.json", NULL, NULL)) return RL_E_IO;
    rl_status rc = rl_unet_cfg_parse(u, &j, err);
    rl_json_free(&j);
    if (rc) return rc;
    if (!load_cfg(t, &j, rel, key, value)) return RL_E_IO;
    rc = rl_unet_cfg_add_adapter_json(u, &j, err);
    rl_json_free(&j);
    return rc;
}

static void test_adapters(rl_test *t, const char *arg)
{
    (void)arg;
    // v1 (mm_sd_v15): 24 frames, no mid block; v2 (v1-5-2): 32, mid block; v3 (v1-5-3): 32,
    // no mid block (the v3 checkpoint has none); AnimateLCM: 32, mid block
    static const struct { const char *rel; int max_seq, mid; } cases[] = {
        { "motion_adapter_v1_5/config.json", 24, 0 },
        { "motion_adapter_v1_5_2/config.json", 32, 1 },
        { "motion_adapter_v1_5_3/config.json", 32, 0 },
        { "motion_adapter_animatelcm/config.json", 32, 1 },
        { "animatediff_pipeline/motion_adapter/config.json", 32, 1 },
    };
    rl_unet_cfg v2 = { 0 };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rl_unet_cfg u;
        rl_err err = { 0 };
        rl_status rc = merge_sd15(t, &u, cases[k].rel, NULL, NULL, &err);
        if (!rl_test_check(t, rc == RL_OK, "%s merges into SD 1.5: %s", cases[k].rel, err.msg))
            continue;
        int ok = u.has_motion && !u.motion_model && u.motion_max_seq == cases[k].max_seq &&
                 u.motion_mid == cases[k].mid && u.motion_mid_xf_layers == 1 &&
                 u.flip_sin_to_cos == 1 && u.freq_shift == 0.0f;
        for (int i = 0; i < 4; i++)
            ok &= u.motion_heads[i] == 8 && u.motion_xf_layers[i] == 1 && u.heads[i] == 8 &&
                  u.channels[i] / u.motion_heads[i] == (i == 0 ? 40 : i == 1 ? 80 : 160);
        rl_test_check(t, ok, "%s: motion heads 8, max seq %d (want %d), mid block %d (want %d)",
                      cases[k].rel, u.motion_max_seq, cases[k].max_seq, u.motion_mid,
                      cases[k].mid);
        if (k == 1) v2 = u;
    }

    // the UNetMotionModel that AnimateDiffPipeline.save_pretrained writes for SD 1.5 + v1-5-2
    // must describe the same network as the merge above
    rl_json j;
    rl_err err = { 0 };
    rl_unet_cfg m;
    if (!load_cfg(t, &j, "animatediff_pipeline/unet/config.json", NULL, NULL)) return;
    rl_status rc = rl_unet_cfg_parse(&m, &j, &err);
    rl_json_free(&j);
    if (!rl_test_check(t, rc == RL_OK, "saved UNetMotionModel parses: %s", err.msg)) return;
    const int n = 4;
    rl_test_check(t, m.motion_model && m.has_motion && m.n_blocks == n &&
                  ints_eq(m.channels, v2.channels, n) && ints_eq(m.heads, v2.heads, n) &&
                  ints_eq(m.cross_dim, v2.cross_dim, n) && ints_eq(m.layers, v2.layers, n) &&
                  ints_eq((const int *)m.down, (const int *)v2.down, n) &&
                  ints_eq((const int *)m.up, (const int *)v2.up, n) &&
                  ints_eq(m.xf_layers, v2.xf_layers, n) &&
                  ints_eq(m.xf_layers_up, v2.xf_layers_up, n) &&
                  ints_eq(m.motion_heads, v2.motion_heads, n) &&
                  ints_eq(m.motion_xf_layers, v2.motion_xf_layers, n) &&
                  ints_eq(m.motion_xf_layers_up, v2.motion_xf_layers_up, n) &&
                  m.motion_max_seq == v2.motion_max_seq && m.motion_mid == v2.motion_mid &&
                  m.mid_layers == v2.mid_layers && m.mid_xf_layers == v2.mid_xf_layers &&
                  m.motion_mid_xf_layers == v2.motion_mid_xf_layers &&
                  m.time_embed_dim == v2.time_embed_dim &&
                  m.flip_sin_to_cos == v2.flip_sin_to_cos && m.freq_shift == v2.freq_shift &&
                  m.use_linear_projection == v2.use_linear_projection &&
                  m.norm_num_groups == v2.norm_num_groups && m.norm_eps == v2.norm_eps,
                  "saved UNetMotionModel == SD 1.5 unet + v1-5-2 adapter, field by field");
}

// ---- schedulers --------------------------------------------------------------------------

/* Expected timesteps for 25 inference steps over 1000 training steps, from diffusers'
 * set_timesteps formulas, worked out by hand:
 *  - "linspace" (DDIM/DDPM): np.linspace(0, 999, 25).round()[::-1]: the points are k * 41.625
 *    (exact in binary); np.round rounds halves to even, so 166.5 -> 166, 499.5 -> 500 and
 *    832.5 -> 832. steps_offset is not added for linspace.
 *  - "linspace" (Euler): the same points, not rounded: 999 - 41.625 k.
 *  - "leading" with steps_offset 1 (SD 1.5's PNDM file read as DDIM, SD 2.1's DDIM):
 *    step_ratio = 1000 // 25 = 40, arange(25) * 40 reversed, + 1: 961, 921, ..., 1. */
static const double LINSPACE25[25] = {
    999, 957, 916, 874, 832, 791, 749, 708, 666, 624, 583, 541, 500,
    458, 416, 375, 333, 291, 250, 208, 166, 125, 83, 42, 0,
};

static void check_timesteps(rl_test *t, const char *rel, rl_sched_kind kind, int spacing,
                            int pred, int beta)
{
    rl_json j;
    rl_err err = { 0 };
    rl_sched_cfg c;
    if (!load_cfg(t, &j, rel, NULL, NULL)) return;
    rl_status rc = rl_sched_cfg_parse(&c, &j, &err);
    rl_json_free(&j);
    if (!rl_test_check(t, rc == RL_OK, "%s parses: %s", rel, err.msg)) return;
    rl_test_check(t, c.kind == kind && (int)c.timestep_spacing == spacing &&
                  (int)c.prediction_type == pred && (int)c.beta_schedule == beta &&
                  c.steps_offset == 1 && !c.clip_sample && !c.set_alpha_to_one &&
                  c.num_train_timesteps == 1000 && c.beta_start == 0.00085 && c.beta_end == 0.012,
                  "%s: kind %d spacing %d prediction %d betas %d, steps_offset 1, no clipping",
                  rel, (int)c.kind, (int)c.timestep_spacing, (int)c.prediction_type,
                  (int)c.beta_schedule);
    rl_sched s = { 0 };
    if (!rl_test_check(t, rl_sched_init(&s, &c, 25, &err) == RL_OK && s.n_steps == 25,
                       "%s: 25 steps: %s", rel, err.msg)) return;
    int bad = -1;
    for (int i = 0; i < 25 && bad < 0; i++) {
        double want = spacing == RL_SPACING_LEADING ? 961.0 - 40.0 * i
                      : kind == RL_SCHED_EULER      ? 999.0 - 41.625 * i
                                                    : LINSPACE25[i];
        if (s.timesteps[i] != want) bad = i;
    }
    rl_test_check(t, bad < 0, "%s: timesteps equal diffusers' for 25 steps (first %g, last %g%s)",
                  rel, s.timesteps[0], s.timesteps[24], bad < 0 ? "" : ", MISMATCH");
    if (kind == RL_SCHED_EULER) {
        // init_noise_sigma for linspace spacing is sigma_max = sqrt((1 - abar) / abar) at
        // t = 999 with linear betas beta_i = 0.00085 + i (0.012 - 0.00085) / 999. diffusers
        // builds the betas and the cumulative product in float32, reel in double: 1e-4
        // relative covers the float32 product over 1000 factors (measured ~1e-6 here).
        double abar = 1.0;
        for (int i = 0; i < 1000; i++) abar *= 1.0 - (0.00085 + i * (0.012 - 0.00085) / 999.0);
        double want = sqrt((1.0 - abar) / abar);
        rl_test_check(t, fabs(s.init_noise_sigma - want) <= 1e-4 * want,
                      "%s: init_noise_sigma %.8g, sigma_max %.8g", rel, s.init_noise_sigma, want);
    }
    rl_sched_free(&s);
}

static void test_schedulers(rl_test *t, const char *arg)
{
    (void)arg;
    check_timesteps(t, "schedulers/ddim_animatediff.json", RL_SCHED_DDIM, RL_SPACING_LINSPACE,
                    RL_PRED_EPSILON, RL_BETA_LINEAR);
    check_timesteps(t, "animatediff_pipeline/scheduler/scheduler_config.json", RL_SCHED_DDIM,
                    RL_SPACING_LINSPACE, RL_PRED_EPSILON, RL_BETA_LINEAR);
    check_timesteps(t, "schedulers/ddpm_animatediff.json", RL_SCHED_DDPM, RL_SPACING_LINSPACE,
                    RL_PRED_EPSILON, RL_BETA_LINEAR);
    check_timesteps(t, "schedulers/euler_animatediff.json", RL_SCHED_EULER, RL_SPACING_LINSPACE,
                    RL_PRED_EPSILON, RL_BETA_LINEAR);
    // PNDMScheduler (skip_prk_steps) is read as DDIM, as DDIMScheduler.from_config reads it
    check_timesteps(t, "sd15/scheduler/scheduler_config.json", RL_SCHED_DDIM, RL_SPACING_LEADING,
                    RL_PRED_EPSILON, RL_BETA_SCALED_LINEAR);
    check_timesteps(t, "sd21/scheduler/scheduler_config.json", RL_SCHED_DDIM, RL_SPACING_LEADING,
                    RL_PRED_V, RL_BETA_SCALED_LINEAR);
}

// ---- tokenizer files ---------------------------------------------------------------------

/* The real tokenizer_config.json / special_tokens_map.json beside tiny_a's vocab and merges. */
static void test_tokenizer(rl_test *t, const char *arg)
{
    (void)arg;
    static const char *const models[] = { "sd15", "sd21" };
    for (int k = 0; k < 2; k++) {
        const char *dir = rl_test_tmp_path(t, models[k]);
        const char *src_tok = rl_test_fixture_path(t, "models/tiny_a/tokenizer");
        const char *src_cfg =
            rl_test_fixture_path(t, k ? "configs/sd21/tokenizer" : "configs/sd15/tokenizer");
        if (!sh(t, "mkdir -p '%s' && cp '%s/vocab.json' '%s/merges.txt' '%s/' && "
                "cp '%s/tokenizer_config.json' '%s/special_tokens_map.json' '%s/'", dir, src_tok,
                src_tok, dir, src_cfg, src_cfg, dir)) continue;
        rl_bpe_spec spec;
        rl_err err = { 0 };
        rl_status rc = rl_tokfiles_read(&spec, dir, &err);
        if (!rl_test_check(t, rc == RL_OK, "%s tokenizer files read: %s", models[k], err.msg))
            continue;
        rl_test_check(t, spec.max_length == 77 && !strcmp(spec.bos, "<|startoftext|>") &&
                      !strcmp(spec.eos, "<|endoftext|>") && !strcmp(spec.unk, "<|endoftext|>") &&
                      !strcmp(spec.pad, k ? "!" : "<|endoftext|>"),
                      "%s tokenizer: 77 tokens, AddedToken objects read, pad '%s'", models[k],
                      spec.pad);
        rl_bpe bpe;
        rc = rl_bpe_init(&bpe, &spec, &err);
        rl_test_check(t, rc == RL_OK, "%s tokenizer initialises: %s", models[k], err.msg);
        if (rc == RL_OK) rl_bpe_free(&bpe);
        rl_bpe_spec_free(&spec);
    }
}

// ---- refused and ignored keys ------------------------------------------------------------

typedef enum { P_UNET, P_ADAPTER, P_CLIP, P_VAE, P_SCHED } parser;

static rl_status run_parser(rl_test *t, parser p, const char *rel, const char *key,
                            const char *value, rl_err *err)
{
    if (p == P_ADAPTER) {
        rl_unet_cfg u;
        return merge_sd15(t, &u, rel, key, value, err);
    }
    rl_json j;
    if (!load_cfg(t, &j, rel, key, value)) return RL_E_IO;
    rl_status rc;
    rl_unet_cfg u;
    rl_clip_cfg c;
    rl_vae_cfg v;
    rl_sched_cfg s;
    switch (p) {
    case P_UNET: rc = rl_unet_cfg_parse(&u, &j, err); break;
    case P_CLIP: rc = rl_clip_cfg_parse(&c, &j, err); break;
    case P_VAE: rc = rl_vae_cfg_parse(&v, &j, err); break;
    default: rc = rl_sched_cfg_parse(&s, &j, err); break;
    }
    rl_json_free(&j);
    return rc;
}

static void test_keys(rl_test *t, const char *arg)
{
    (void)arg;
    static const char *const SD15U = "sd15/unet/config.json", *const SD21U =
        "sd21/unet_resaved_0.25/config.json", *const MOT = "animatediff_pipeline/unet/config.json",
        *const V2 = "motion_adapter_v1_5_2/config.json", *const EUL =
        "schedulers/euler_animatediff.json", *const DDIM = "schedulers/ddim_animatediff.json";
    static const struct { parser p; const char *rel, *key, *value; int refused; } cases[] = {
        // options that select another network: refused, naming the key
        { P_UNET, SD15U, "addition_embed_type", "\"text_time\"", 1 },
        { P_UNET, SD15U, "class_embed_type", "\"timestep\"", 1 },
        { P_UNET, SD15U, "num_class_embeds", "10", 1 },
        { P_UNET, SD15U, "encoder_hid_dim", "1024", 1 },
        { P_UNET, SD15U, "encoder_hid_dim_type", "\"ip_image_proj\"", 1 },
        { P_UNET, SD15U, "time_cond_proj_dim", "256", 1 },
        { P_UNET, SD15U, "mid_block_type", "null", 1 },
        { P_UNET, SD15U, "mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\"", 1 },
        { P_UNET, SD15U, "only_cross_attention", "[true, false, false, false]", 1 },
        { P_UNET, SD15U, "only_cross_attention", "true", 1 },
        { P_UNET, SD15U, "dual_cross_attention", "true", 1 },
        { P_UNET, SD15U, "time_embedding_type", "\"fourier\"", 1 },
        { P_UNET, SD15U, "resnet_time_scale_shift", "\"scale_shift\"", 1 },
        { P_UNET, SD15U, "attention_type", "\"gated\"", 1 },
        { P_UNET, SD15U, "conv_in_kernel", "7", 1 },
        { P_UNET, SD15U, "down_block_types", "[\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
                                              " \"CrossAttnDownBlock2D\", \"AttnDownBlock2D\"]", 1 },
        { P_UNET, SD21U, "mid_block_only_cross_attention", "true", 1 },
        { P_UNET, MOT, "reverse_motion_num_attention_heads", "[8, 8, 8, 4]", 1 },
        { P_UNET, MOT, "addition_embed_type", "\"text_time\"", 1 },
        { P_UNET, MOT, "encoder_hid_dim_type", "\"ip_image_proj\"", 1 },
        { P_ADAPTER, V2, "motion_activation_fn", "\"gelu\"", 1 },
        { P_ADAPTER, V2, "motion_attention_bias", "true", 1 },
        { P_ADAPTER, V2, "motion_cross_attention_dim", "768", 1 },
        { P_ADAPTER, V2, "conv_in_channels", "9", 1 },
        { P_ADAPTER, V2, "motion_layers_per_block", "1", 1 },
        { P_CLIP, "sd15/text_encoder/config.json", "hidden_act", "\"gelu_10\"", 1 },
        { P_VAE, "sd15/vae/config.json", "act_fn", "\"relu\"", 1 },
        { P_SCHED, EUL, "use_karras_sigmas", "true", 1 },
        { P_SCHED, EUL, "use_exponential_sigmas", "true", 1 },
        { P_SCHED, EUL, "use_beta_sigmas", "true", 1 },
        { P_SCHED, EUL, "timestep_type", "\"continuous\"", 1 },
        { P_SCHED, EUL, "final_sigmas_type", "\"sigma_min\"", 1 },
        { P_SCHED, EUL, "interpolation_type", "\"log_linear\"", 1 },
        { P_SCHED, DDIM, "thresholding", "true", 1 },
        { P_SCHED, DDIM, "trained_betas", "[0.1, 0.2]", 1 },
        { P_SCHED, DDIM, "timestep_spacing", "\"karras\"", 1 },
        // keys real files carry that change nothing reel computes: accepted
        { P_UNET, SD15U, "upcast_attention", "true", 0 },
        { P_UNET, SD15U, "only_cross_attention", "[false, false, false, false]", 0 },
        { P_UNET, SD15U, "addition_embed_type_num_heads", "64", 0 },
        { P_UNET, SD15U, "dropout", "0.1", 0 },
        { P_UNET, SD15U, "_name_or_path", "\"/home/user/unet\"", 0 },
        { P_UNET, SD15U, "some_future_key", "{\"a\": [1, 2]}", 0 },
        { P_UNET, MOT, "reverse_motion_num_attention_heads", "[8, 8, 8, 8]", 0 },
        { P_UNET, MOT, "sample_size", "null", 0 },
        { P_ADAPTER, V2, "motion_activation_fn", "\"geglu\"", 0 },
        { P_ADAPTER, V2, "motion_norm_num_groups", "32", 0 },
        { P_VAE, "sd15/vae/config.json", "force_upcast", "true", 0 },
        { P_VAE, "sd15/vae/config.json", "latents_mean", "null", 0 },
        { P_VAE, "sd15/vae/config.json", "latents_std", "null", 0 },
        { P_VAE, "sd15/vae/config.json", "shift_factor", "null", 0 },
        { P_CLIP, "sd15/text_encoder/config.json", "architectures", "[\"CLIPTextModelWithProjection\"]", 0 },
        { P_CLIP, "sd15/text_encoder/config.json", "torch_dtype", "\"float16\"", 0 },
        { P_SCHED, EUL, "sigma_min", "0.03", 0 },
        { P_SCHED, DDIM, "dynamic_thresholding_ratio", "0.9", 0 },
        { P_SCHED, DDIM, "skip_prk_steps", "false", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rl_err err = { 0 };
        rl_status rc = run_parser(t, cases[i].p, cases[i].rel, cases[i].key, cases[i].value, &err);
        if (rc == RL_E_IO) continue;   // fixture unreadable: already a failure
        if (cases[i].refused)
            rl_test_check(t, rc == RL_E_FORMAT && strstr(err.msg, cases[i].key) != NULL,
                          "%s with %s = %s: refused naming the key: %s", cases[i].rel,
                          cases[i].key, cases[i].value, err.msg);
        else
            rl_test_check(t, rc == RL_OK, "%s with %s = %s: accepted: %s", cases[i].rel,
                          cases[i].key, cases[i].value, err.msg);
    }
}

// ---- folder layouts ----------------------------------------------------------------------

/* Binds every model to its tensors and requires nothing left over (what rl_ctx_open does). */
static rl_status bind_all(rl_diffusers *m, rl_err *err)
{
    rl_clip c = { 0 };
    rl_vae v = { 0 };
    rl_unet u = { 0 };
    rl_status rc = rl_clip_bind(&c, &m->text_w, "text_model", &m->text_cfg, err);
    if (!rc) rc = rl_weights_check_all_used(&m->text_w, "text_model.", err);
    if (!rc) rc = rl_unet_bind(&u, &m->unet_w, m->has_adapter ? &m->motion_w : NULL,
                               &m->unet_cfg, err);
    if (!rc) rc = rl_vae_bind(&v, &m->vae_w, "", &m->vae_cfg, err);
    if (!rc) rc = rl_weights_check_all_used(&m->vae_w, NULL, err);
    rl_unet_free(&u);
    rl_clip_free(&c);
    rl_vae_free(&v);
    return rc;
}

/* Runs a shell command built from fmt; records a failure and returns 0 when it fails. */
static int sh(rl_test *t, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) { rl_test_fail(t, "%s failed", cmd); return 0; }
    return 1;
}

/* Splits dir/sub/<base>.safetensors into n shards named as save_pretrained names them
 * ("<stem>-0000k-of-0000n.safetensors", stem = base or base.fp16), stored as dtype, with the
 * index <index_name> mapping every tensor to its shard; removes the original file. */
static int shard(rl_test *t, const char *dir, const char *sub, const char *base, const char *stem,
                 const char *index_name, int n, rl_dtype dtype)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s.safetensors", dir, sub, base);
    rl_weights ws;
    rl_weights_init(&ws, path);
    rl_err err = { 0 };
    int ok = rl_weights_load_st(&ws, path, NULL, &err) == RL_OK;
    cJSON *idx = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(idx, "weight_map");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(idx, "metadata"), "total_size", 1234);
    for (int s = 0; ok && s < n; s++) {
        rl_st_writer w;
        rl_st_writer_init(&w);
        char file[256], out[1280];
        snprintf(file, sizeof file, "%s-%05d-of-%05d.safetensors", stem, s + 1, n);
        for (int i = s; ok && i < ws.n; i += n) {
            ok = rl_st_writer_add_f32(&w, ws.w[i].name, dtype, ws.w[i].ndim, ws.w[i].shape,
                                      ws.w[i].data, &err) == RL_OK;
            cJSON_AddStringToObject(map, ws.w[i].name, file);
        }
        snprintf(out, sizeof out, "%s/%s/%s", dir, sub, file);
        if (ok) ok = rl_st_writer_save(&w, out, &err) == RL_OK;
        rl_st_writer_free(&w);
    }
    rl_weights_free(&ws);
    if (ok) ok = remove(path) == 0;
    char *text = cJSON_Print(idx);
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, index_name);
    if (ok) ok = write_text(t, path, text);
    cJSON_free(text);
    cJSON_Delete(idx);
    if (!ok) rl_test_fail(t, "shard %s/%s: %s", sub, base, err.msg);
    return ok;
}

/* Rewrites dir/rel as dtype into dir/rel_out (removing dir/rel), adding extra (when given). */
static int rewrite(rl_test *t, const char *dir, const char *rel, const char *rel_out, rl_dtype dtype,
                   const char *extra, rl_dtype extra_dtype, int extra_len)
{
    char path[1024], out[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(out, sizeof out, "%s/%s", dir, rel_out);
    rl_weights ws;
    rl_weights_init(&ws, path);
    rl_st_writer w;
    rl_st_writer_init(&w);
    rl_err err = { 0 };
    int ok = rl_weights_load_st(&ws, path, NULL, &err) == RL_OK;
    for (int i = 0; ok && i < ws.n; i++)
        ok = rl_st_writer_add_f32(&w, ws.w[i].name, dtype, ws.w[i].ndim, ws.w[i].shape,
                                  ws.w[i].data, &err) == RL_OK;
    if (ok && extra) {
        int64_t ids[64];
        float fids[64];
        for (int i = 0; i < extra_len && i < 64; i++) ids[i] = i, fids[i] = (float)i;
        const int64_t shape[2] = { 1, extra_len };
        ok = (extra_dtype == RL_I64
                  ? rl_st_writer_add_raw(&w, extra, RL_I64, 2, shape, ids, &err)
                  : rl_st_writer_add_f32(&w, extra, extra_dtype, 2, shape, fids, &err)) == RL_OK;
    }
    if (ok && strcmp(path, out) != 0) ok = remove(path) == 0;
    if (ok) ok = rl_st_writer_save(&w, out, &err) == RL_OK;
    if (!ok) rl_test_fail(t, "rewrite %s: %s", path, err.msg);
    rl_st_writer_free(&w);
    rl_weights_free(&ws);
    return ok;
}

/* Opens dir and binds everything; checks the outcome (and, on failure, the message). */
static void expect_open(rl_test *t, const char *what, const char *dir, rl_status want,
                        const char *needle1, const char *needle2, rl_diffusers *keep)
{
    rl_diffusers m;
    rl_err err = { 0 };
    rl_status rc = rl_diffusers_open(&m, dir, &err);
    if (rc == RL_OK) {
        rc = bind_all(&m, &err);
        if (keep && rc == RL_OK) { *keep = m; return; }
        rl_diffusers_close(&m);
    }
    if (want == RL_OK)
        rl_test_check(t, rc == RL_OK, "%s: opens and binds: %s", what, err.msg);
    else
        rl_test_check(t, rc == want && (!needle1 || strstr(err.msg, needle1)) &&
                      (!needle2 || strstr(err.msg, needle2)),
                      "%s: %s naming '%s' / '%s': got %s: %s", what, rl_status_str(want),
                      needle1 ? needle1 : "", needle2 ? needle2 : "", rl_status_str(rc), err.msg);
}

static void test_layouts(rl_test *t, const char *arg)
{
    (void)arg;
    const char *d;
    rl_diffusers m;

    // sharded unet (full precision) and sharded fp16 variant of the vae
    if ((d = rl_test_copy_fixture(t, "models/tiny_a", "sharded")) &&
        shard(t, d, "unet", "diffusion_pytorch_model", "diffusion_pytorch_model",
              "diffusion_pytorch_model.safetensors.index.json", 3, RL_F32) &&
        shard(t, d, "vae", "diffusion_pytorch_model", "diffusion_pytorch_model.fp16",
              "diffusion_pytorch_model.safetensors.index.fp16.json", 2, RL_F16) &&
        shard(t, d, "text_encoder", "model", "model", "model.safetensors.index.json", 2, RL_F32)) {
        expect_open(t, "sharded unet/text_encoder, sharded fp16 vae", d, RL_OK, NULL, NULL, &m);
        if (m.dir) {
            rl_test_check(t, m.vae_w.w[0].src_dtype == RL_F16 && m.unet_w.w[0].src_dtype == RL_F32,
                          "sharded: the fp16 index's shards are F16 on disk");
            rl_diffusers_close(&m);
        }
        // a shard named in weight_map that is not there
        sh(t, "rm '%s/unet/diffusion_pytorch_model-00002-of-00003.safetensors'", d);
        expect_open(t, "missing shard", d, RL_E_MISSING, "diffusion_pytorch_model-00002-of-00003", NULL,
                    NULL);
    }

    // variant files only: model.fp16.safetensors, diffusion_pytorch_model.fp16.safetensors
    if ((d = rl_test_copy_fixture(t, "models/tiny_a", "fp16")) &&
        rewrite(t, d, "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
                RL_F16, NULL, RL_F32, 0) &&
        rewrite(t, d, "unet/diffusion_pytorch_model.safetensors",
                "unet/diffusion_pytorch_model.fp16.safetensors", RL_F16, NULL, RL_F32, 0)) {
        expect_open(t, "fp16 variant files only", d, RL_OK, NULL, NULL, &m);
        if (m.dir) {
            rl_test_check(t, m.text_w.w[0].src_dtype == RL_F16 && m.unet_w.w[0].src_dtype == RL_F16,
                          "fp16 variants loaded");
            rl_diffusers_close(&m);
        }
    }

    // both a full file and an fp16 variant: the full one wins
    if ((d = rl_test_copy_fixture(t, "models/tiny_a", "both")) &&
        sh(t, "cp '%s/vae/diffusion_pytorch_model.safetensors' '%s/vae/x.st'", d, d) &&
        rewrite(t, d, "vae/x.st", "vae/diffusion_pytorch_model.fp16.safetensors", RL_BF16, NULL,
                RL_F32, 0)) {
        expect_open(t, "full and fp16 files", d, RL_OK, NULL, NULL, &m);
        if (m.dir) {
            rl_test_check(t, m.vae_w.w[0].src_dtype == RL_F32, "the full-precision file is used");
            rl_diffusers_close(&m);
        }
    }

    // pickle-only folders: refused by name, never opened (the files hold garbage here; a
    // loader that opened them would fail differently)
    static const struct { const char *sub, *safet, *pickle; } pk[] = {
        { "text_encoder", "model.safetensors", "pytorch_model.bin" },
        { "unet", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin" },
        { "vae", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.bin" },
        { "unet", "diffusion_pytorch_model.safetensors", "model.ckpt" },
    };
    for (size_t i = 0; i < sizeof pk / sizeof pk[0]; i++) {
        char tag[32], what[128];
        snprintf(tag, sizeof tag, "pickle%zu", i);
        snprintf(what, sizeof what, "pickle-only %s/%s", pk[i].sub, pk[i].pickle);
        if ((d = rl_test_copy_fixture(t, "models/tiny_a", tag)) &&
            sh(t, "cd '%s/%s' && rm '%s' && printf 'not a pickle' > '%s'", d, pk[i].sub,
               pk[i].safet, pk[i].pickle))
            expect_open(t, what, d, RL_E_FORMAT, pk[i].pickle, "convert", NULL);
    }
    // pickle beside safetensors (hub repos ship both): the safetensors file is used
    if ((d = rl_test_copy_fixture(t, "models/tiny_a", "pickle_beside")) &&
        sh(t, "printf 'garbage' > '%s/text_encoder/pytorch_model.bin' && printf 'garbage' > "
           "'%s/unet/diffusion_pytorch_model.bin'", d, d))
        expect_open(t, "pickle beside safetensors", d, RL_OK, NULL, NULL, NULL);

    // the real SD 1.5 model_index.json (safety_checker, feature_extractor, PNDMScheduler,
    // UNet2DConditionModel, no motion_adapter entry) over tiny_b: the motion_adapter/ folder
    // beside it is found and merged
    char idx[1024];
    snprintf(idx, sizeof idx, "%s", rl_test_fixture_path(t, "configs/sd15/model_index.json"));
    if ((d = rl_test_copy_fixture(t, "models/tiny_b", "sd15_index")) &&
        sh(t, "cp '%s' '%s/model_index.json'", idx, d)) {
        expect_open(t, "SD 1.5 model_index + adapter folder", d, RL_OK, NULL, NULL, &m);
        if (m.dir) {
            rl_test_check(t, m.has_adapter && m.unet_cfg.has_motion &&
                          !strcmp(m.sched_class, "PNDMScheduler"),
                          "unlisted motion_adapter/ is used; scheduler class %s", m.sched_class);
            rl_diffusers_close(&m);
        }
        // without the folder: a plain image UNet, then the adapter given separately
        // (reel --motion-adapter DIR)
        const char *ad = rl_test_tmp_path(t, "adapter_alone");
        if (sh(t, "rm -rf '%s' && mv '%s/motion_adapter' '%s'", ad, d, ad)) {
            expect_open(t, "SD 1.5 layout without adapter", d, RL_OK, NULL, NULL, &m);
            if (m.dir) {
                rl_err err = { 0 };
                rl_test_check(t, !m.has_adapter && !m.unet_cfg.has_motion, "no motion modules");
                rl_status rc = rl_diffusers_add_adapter(&m, ad, &err);
                rl_test_check(t, rc == RL_OK && m.has_adapter && m.unet_cfg.has_motion,
                              "separate adapter added: %s", err.msg);
                if (rc == RL_OK) {
                    rc = bind_all(&m, &err);
                    rl_test_check(t, rc == RL_OK, "binds with the separate adapter: %s", err.msg);
                }
                rc = rl_diffusers_add_adapter(&m, ad, &err);
                rl_test_check(t, rc == RL_E_PARAM && strstr(err.msg, "already"),
                              "a second adapter is refused: %s", err.msg);
                rl_diffusers_close(&m);
            }
            // an adapter whose blocks do not match the unet (the real v1-5-2 config, SD 1.5
            // sized, beside tiny weights): refused naming the key, m unchanged
            const char *bad = rl_test_tmp_path(t, "adapter_sd15");
            char v2[1024];
            snprintf(v2, sizeof v2, "%s",
                     rl_test_fixture_path(t, "configs/motion_adapter_v1_5_2/config.json"));
            if (sh(t, "rm -rf '%s' && cp -r '%s' '%s' && cp '%s' '%s/config.json'", bad, ad, bad,
                   v2, bad) &&
                rl_diffusers_open(&m, d, &(rl_err){ 0 }) == RL_OK) {
                rl_err err = { 0 };
                rl_status rc = rl_diffusers_add_adapter(&m, bad, &err);
                rl_test_check(t, rc == RL_E_FORMAT && strstr(err.msg, "block_out_channels") &&
                              !m.has_adapter && !m.unet_cfg.has_motion,
                              "mismatched adapter refused, model unchanged: %s", err.msg);
                rl_diffusers_close(&m);
            }
        }
    }

    // a UNetMotionModel cannot take a separate adapter; the real AnimateDiffPipeline
    // model_index.json (motion_adapter listed beside a UNetMotionModel) is read
    snprintf(idx, sizeof idx, "%s", rl_test_fixture_path(t, "configs/animatediff_pipeline/model_index.json"));
    if ((d = rl_test_copy_fixture(t, "models/tiny_a", "animatediff_index")) &&
        sh(t, "cp '%s' '%s/model_index.json'", idx, d)) {
        expect_open(t, "AnimateDiffPipeline model_index", d, RL_OK, NULL, NULL, &m);
        if (m.dir) {
            rl_err err = { 0 };
            rl_test_check(t, rl_diffusers_add_adapter(&m, d, &err) == RL_E_PARAM &&
                          strstr(err.msg, "UNetMotionModel"),
                          "adapter on a UNetMotionModel refused: %s", err.msg);
            rl_diffusers_close(&m);
        }
    }

    // a component reel needs given as [null, null]
    if ((d = rl_test_copy_fixture(t, "models/tiny_a", "null_unet"))) {
        char p[1024];
        snprintf(p, sizeof p, "%s/model_index.json", d);
        cJSON *root = NULL;
        size_t len;
        char *text = rl_test_read_file(t, p, &len);
        if (text && (root = cJSON_Parse(text))) {
            cJSON_ReplaceItemInObjectCaseSensitive(root, "unet", cJSON_Parse("[null, null]"));
            char *out = cJSON_Print(root);
            write_text(t, p, out);
            cJSON_free(out);
            expect_open(t, "unet [null, null]", d, RL_E_MISSING, "unet", NULL, NULL);
        }
        cJSON_Delete(root);
    }

    // text_model.embeddings.position_ids: I64 (transformers < 4.31) skipped; a float copy
    // (converted checkpoints) accepted and marked used; a float copy of the wrong shape refused
    static const struct { rl_dtype dt; int len; rl_status want; const char *tag; } pos[] = {
        { RL_I64, 16, RL_OK, "pos_i64" },
        { RL_F32, 16, RL_OK, "pos_f32" },
        { RL_F16, 16, RL_OK, "pos_f16" },
        { RL_F32, 15, RL_E_SHAPE, "pos_bad" },
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "position_ids %s [1, %d]", rl_dtype_name(pos[i].dt), pos[i].len);
        if ((d = rl_test_copy_fixture(t, "models/tiny_a", pos[i].tag)) &&
            rewrite(t, d, "text_encoder/model.safetensors", "text_encoder/model.safetensors",
                    RL_F32, "text_model.embeddings.position_ids", pos[i].dt, pos[i].len))
            expect_open(t, what, d, pos[i].want, "position_ids", NULL, NULL);
    }
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "sd15", test_sd15, NULL },
        { "sd21", test_sd21, NULL },
        { "adapters", test_adapters, NULL },
        { "schedulers", test_schedulers, NULL },
        { "tokenizer", test_tokenizer, NULL },
        { "keys", test_keys, NULL },
        { "layouts", test_layouts, NULL },
        { 0 },
    });
}
