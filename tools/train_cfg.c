/* tools/train_cfg.c - config.json writers (see train_cfg.h).
 *
 * The text is laid out as Python's json.dumps(obj, indent=2, sort_keys=True) does: keys
 * sorted by code point, two spaces per level, lists one item per line, floats in repr()
 * form ("1.0" rather than "1"), with the shortest digits that read back to the same float32. */
#include "tools/train_cfg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic.h"

// ---- a small writer for flat JSON objects ---------------------------------------------------

typedef struct {
    char *key, *val;            // val is rendered at depth 1
} jentry;

typedef struct {
    jentry e[64];
    int n, oom;
} jw;

static void jw_put(jw *j, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void jw_put(jw *j, const char *key, const char *fmt, ...)
{
    if (j->n == 64) {
        j->oom = 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *v = malloc((size_t)n + 1), *k = strdup(key);
    if (!v || !k) {
        free(v);
        free(k);
        j->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(v, (size_t)n + 1, fmt, ap);
    va_end(ap);
    j->e[j->n++] = (jentry){ k, v };
}

/* The shortest decimal that reads back to the same float32 (configs hold float32 values;
 * 1e-5f is written "1e-05", as Python would write the number it came from), in repr() form. */
static void float_repr(char *buf, size_t cap, double f)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, f);
        if ((float)strtod(buf, NULL) == (float)f) break;
    }
    if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", cap - strlen(buf) - 1);
}

static void jw_int(jw *j, const char *k, int v) { jw_put(j, k, "%d", v); }
static void jw_null(jw *j, const char *k) { jw_put(j, k, "null"); }
static void jw_bool(jw *j, const char *k, int v) { jw_put(j, k, "%s", v ? "true" : "false"); }
static void jw_str(jw *j, const char *k, const char *v) { jw_put(j, k, "\"%s\"", v); }
static void jw_float(jw *j, const char *k, double v)
{
    char b[40];
    float_repr(b, sizeof b, v);
    jw_put(j, k, "%s", b);
}

static void jw_list(jw *j, const char *k, const int *iv, const char *const *sv, int n)
{
    char buf[2048];
    size_t o = 0;
    if (n == 0) {
        jw_put(j, k, "[]");
        return;
    }
    o += (size_t)snprintf(buf + o, sizeof buf - o, "[\n");
    for (int i = 0; i < n && o < sizeof buf; i++) {
        if (iv) o += (size_t)snprintf(buf + o, sizeof buf - o, "    %d", iv[i]);
        else o += (size_t)snprintf(buf + o, sizeof buf - o, "    \"%s\"", sv[i]);
        if (o < sizeof buf) o += (size_t)snprintf(buf + o, sizeof buf - o, i + 1 < n ? ",\n" : "\n");
    }
    if (o < sizeof buf) snprintf(buf + o, sizeof buf - o, "  ]");
    jw_put(j, k, "%s", buf);
}

/* An int when every entry is the same (diffusers broadcasts it back), else a list. */
static void jw_int_or_list(jw *j, const char *k, const int *v, int n)
{
    int same = 1;
    for (int i = 1; i < n; i++) same &= v[i] == v[0];
    if (same && n > 0) jw_int(j, k, v[0]);
    else jw_list(j, k, v, NULL, n);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const jentry *)a)->key, ((const jentry *)b)->key);
}

/* Renders and frees the entries; NULL when out of memory. */
static char *jw_finish(jw *j)
{
    char *out = NULL;
    size_t len = 3;
    if (j->oom) goto done;
    qsort(j->e, (size_t)j->n, sizeof j->e[0], cmp_entry);
    for (int i = 0; i < j->n; i++) len += strlen(j->e[i].key) + strlen(j->e[i].val) + 8;
    out = malloc(len);
    if (!out) goto done;
    size_t o = (size_t)snprintf(out, len, "{\n");
    for (int i = 0; i < j->n; i++)
        o += (size_t)snprintf(out + o, len - o, "  \"%s\": %s%s\n", j->e[i].key, j->e[i].val,
                              i + 1 < j->n ? "," : "");
    snprintf(out + o, len - o, "}\n");
done:
    for (int i = 0; i < j->n; i++) {
        free(j->e[i].key);
        free(j->e[i].val);
    }
    j->n = 0;
    return out;
}

static rl_status write_text(const char *path, char *text, rl_err *err)
{
    if (!text) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
    rl_status rc = rl_atomic_write_file(path, text, strlen(text), err);
    free(text);
    return rc;
}

#define DIFFUSERS_VERSION "0.30.0"

// ---- AutoencoderKL ----------------------------------------------------------------------

char *rl_train_vae_config_json(const rl_vae_cfg *c)
{
    jw j = { 0 };
    const char *down[RL_VAE_MAX_BLOCKS], *up[RL_VAE_MAX_BLOCKS];
    for (int i = 0; i < c->n_blocks; i++) {
        down[i] = "DownEncoderBlock2D";
        up[i] = "UpDecoderBlock2D";
    }
    jw_str(&j, "_class_name", "AutoencoderKL");
    jw_str(&j, "_diffusers_version", DIFFUSERS_VERSION);
    jw_str(&j, "act_fn", "silu");
    jw_list(&j, "block_out_channels", c->block_out_channels, NULL, c->n_blocks);
    jw_list(&j, "down_block_types", NULL, down, c->n_blocks);
    jw_bool(&j, "force_upcast", 1);
    jw_int(&j, "in_channels", c->in_channels);
    jw_int(&j, "latent_channels", c->latent_channels);
    jw_null(&j, "latents_mean");
    jw_null(&j, "latents_std");
    jw_int(&j, "layers_per_block", c->layers_per_block);
    jw_bool(&j, "mid_block_add_attention", c->mid_block_add_attention);
    jw_int(&j, "norm_num_groups", c->norm_num_groups);
    jw_int(&j, "out_channels", c->out_channels);
    jw_int(&j, "sample_size", c->sample_size);
    jw_float(&j, "scaling_factor", c->scaling_factor);
    if (c->shift_factor != 0.0f) jw_float(&j, "shift_factor", c->shift_factor);
    else jw_null(&j, "shift_factor");
    jw_list(&j, "up_block_types", NULL, up, c->n_blocks);
    jw_bool(&j, "use_post_quant_conv", c->use_post_quant_conv);
    jw_bool(&j, "use_quant_conv", c->use_quant_conv);
    return jw_finish(&j);
}

rl_status rl_train_write_vae_config(const char *path, const rl_vae_cfg *cfg, rl_err *err)
{
    return write_text(path, rl_train_vae_config_json(cfg), err);
}

// ---- CLIPTextModel ----------------------------------------------------------------------

char *rl_train_clip_config_json(const rl_clip_cfg *c)
{
    jw j = { 0 };
    const char *arch[1] = { "CLIPTextModel" };
    jw_list(&j, "architectures", NULL, arch, 1);
    jw_float(&j, "attention_dropout", 0.0);
    jw_int(&j, "bos_token_id", c->bos_token_id);
    jw_float(&j, "dropout", 0.0);
    jw_int(&j, "eos_token_id", c->eos_token_id);
    jw_str(&j, "hidden_act", rl_clip_act_name(c->hidden_act));
    jw_int(&j, "hidden_size", c->hidden_size);
    jw_float(&j, "initializer_factor", 1.0);
    jw_float(&j, "initializer_range", 0.02);
    jw_int(&j, "intermediate_size", c->intermediate_size);
    jw_float(&j, "layer_norm_eps", c->layer_norm_eps);
    jw_int(&j, "max_position_embeddings", c->max_position_embeddings);
    jw_str(&j, "model_type", "clip_text_model");
    jw_int(&j, "num_attention_heads", c->num_attention_heads);
    jw_int(&j, "num_hidden_layers", c->num_hidden_layers);
    jw_int(&j, "pad_token_id", c->pad_token_id);
    jw_int(&j, "projection_dim", c->projection_dim);
    jw_str(&j, "torch_dtype", "float32");
    jw_str(&j, "transformers_version", "4.44.0");
    jw_int(&j, "vocab_size", c->vocab_size);
    return jw_finish(&j);
}

rl_status rl_train_write_clip_config(const char *path, const rl_clip_cfg *cfg, rl_err *err)
{
    return write_text(path, rl_train_clip_config_json(cfg), err);
}

// ---- UNetMotionModel --------------------------------------------------------------------

char *rl_train_unet_config_json(const rl_unet_cfg *c)
{
    jw j = { 0 };
    const int nb = c->n_blocks;
    const char *down[RL_UNET_MAX_BLOCKS], *up[RL_UNET_MAX_BLOCKS];
    for (int i = 0; i < nb; i++) {
        down[i] = c->down[i] == RL_UNET_CROSSATTN ? "CrossAttnDownBlockMotion" : "DownBlockMotion";
        up[i] = c->up[i] == RL_UNET_CROSSATTN ? "CrossAttnUpBlockMotion" : "UpBlockMotion";
    }
    jw_str(&j, "_class_name", "UNetMotionModel");
    jw_str(&j, "_diffusers_version", DIFFUSERS_VERSION);
    jw_str(&j, "act_fn", "silu");
    jw_null(&j, "addition_embed_type");
    jw_null(&j, "addition_time_embed_dim");
    jw_list(&j, "block_out_channels", c->channels, NULL, nb);
    jw_int(&j, "cross_attention_dim", c->cross_dim[0]);
    jw_list(&j, "down_block_types", NULL, down, nb);
    jw_int(&j, "downsample_padding", c->downsample_padding);
    jw_null(&j, "encoder_hid_dim");
    jw_null(&j, "encoder_hid_dim_type");
    jw_int(&j, "in_channels", c->in_channels);
    jw_int_or_list(&j, "layers_per_block", c->layers, nb);
    jw_int(&j, "mid_block_layers", c->mid_layers);
    jw_float(&j, "mid_block_scale_factor", c->mid_block_scale_factor);
    jw_int(&j, "motion_max_seq_length", c->motion_max_seq);
    jw_int_or_list(&j, "motion_num_attention_heads", c->motion_heads, nb);
    jw_float(&j, "norm_eps", c->norm_eps);
    jw_int(&j, "norm_num_groups", c->norm_num_groups);
    jw_int_or_list(&j, "num_attention_heads", c->heads, nb);
    jw_int(&j, "out_channels", c->out_channels);
    jw_null(&j, "projection_class_embeddings_input_dim");
    jw_null(&j, "reverse_motion_num_attention_heads");
    jw_null(&j, "reverse_temporal_transformer_layers_per_block");
    jw_null(&j, "reverse_transformer_layers_per_block");
    jw_int(&j, "sample_size", c->sample_size);
    jw_int_or_list(&j, "temporal_transformer_layers_per_block", c->motion_xf_layers, nb);
    jw_int(&j, "temporal_transformer_layers_per_mid_block", c->motion_mid_xf_layers);
    jw_null(&j, "time_cond_proj_dim");
    jw_int_or_list(&j, "transformer_layers_per_block", c->xf_layers, nb);
    if (c->mid_xf_layers != c->xf_layers[nb - 1]) jw_int(&j, "transformer_layers_per_mid_block", c->mid_xf_layers);
    else jw_null(&j, "transformer_layers_per_mid_block");
    jw_list(&j, "up_block_types", NULL, up, nb);
    jw_bool(&j, "use_linear_projection", c->use_linear_projection);
    jw_bool(&j, "use_motion_mid_block", c->motion_mid);
    return jw_finish(&j);
}

rl_status rl_train_write_unet_config(const char *path, const rl_unet_cfg *c, rl_err *err)
{
    if (!c->has_motion)
        return rl_errf(err, RL_E_PARAM, "%s: the UNet has no motion modules; reel ships a "
                       "UNetMotionModel", path);
    for (int i = 1; i < c->n_blocks; i++)
        if (c->cross_dim[i] != c->cross_dim[0])
            return rl_errf(err, RL_E_PARAM, "%s: UNetMotionModel takes one cross_attention_dim, "
                           "the config has %d and %d", path, c->cross_dim[0], c->cross_dim[i]);
    if (!c->flip_sin_to_cos || c->freq_shift != 0.0f)
        return rl_errf(err, RL_E_PARAM, "%s: UNetMotionModel's time projection is fixed "
                       "(flip_sin_to_cos true, freq_shift 0)", path);
    if (c->time_embed_dim != 4 * c->channels[0])
        return rl_errf(err, RL_E_PARAM, "%s: UNetMotionModel's time embedding is 4 x "
                       "block_out_channels[0] = %d, not %d", path, 4 * c->channels[0],
                       c->time_embed_dim);
    return write_text(path, rl_train_unet_config_json(c), err);
}

// ---- scheduler and pipeline --------------------------------------------------------------

rl_status rl_train_write_sched_config(const char *path, const rl_train_sched_cfg *s, rl_err *err)
{
    jw j = { 0 };
    jw_str(&j, "_class_name", "DDIMScheduler");
    jw_str(&j, "_diffusers_version", DIFFUSERS_VERSION);
    jw_float(&j, "beta_end", s->beta_end);
    jw_str(&j, "beta_schedule", s->scaled_linear ? "scaled_linear" : "linear");
    jw_float(&j, "beta_start", s->beta_start);
    jw_bool(&j, "clip_sample", 0);
    jw_float(&j, "clip_sample_range", 1.0);
    jw_float(&j, "dynamic_thresholding_ratio", 0.995);
    jw_int(&j, "num_train_timesteps", 1000);
    jw_str(&j, "prediction_type", s->v_pred ? "v_prediction" : "epsilon");
    jw_bool(&j, "rescale_betas_zero_snr", s->zero_snr);
    jw_float(&j, "sample_max_value", 1.0);
    jw_bool(&j, "set_alpha_to_one", 0);
    jw_int(&j, "steps_offset", 1);
    jw_bool(&j, "thresholding", 0);
    // zero terminal SNR wants the last training step sampled first (Lin et al. 2023, 3.3)
    jw_str(&j, "timestep_spacing", s->zero_snr ? "trailing" : "linspace");
    jw_null(&j, "trained_betas");
    return write_text(path, jw_finish(&j), err);
}

rl_status rl_train_write_model_index(const char *path, rl_err *err)
{
    const char *text =
        "{\n"
        "  \"_class_name\": \"AnimateDiffPipeline\",\n"
        "  \"_diffusers_version\": \"" DIFFUSERS_VERSION "\",\n"
        "  \"feature_extractor\": [\n    null,\n    null\n  ],\n"
        "  \"image_encoder\": [\n    null,\n    null\n  ],\n"
        "  \"motion_adapter\": [\n    null,\n    null\n  ],\n"
        "  \"scheduler\": [\n    \"diffusers\",\n    \"DDIMScheduler\"\n  ],\n"
        "  \"text_encoder\": [\n    \"transformers\",\n    \"CLIPTextModel\"\n  ],\n"
        "  \"tokenizer\": [\n    \"transformers\",\n    \"CLIPTokenizer\"\n  ],\n"
        "  \"unet\": [\n    \"diffusers\",\n    \"UNetMotionModel\"\n  ],\n"
        "  \"vae\": [\n    \"diffusers\",\n    \"AutoencoderKL\"\n  ]\n"
        "}\n";
    return rl_atomic_write_file(path, text, strlen(text), err);
}
