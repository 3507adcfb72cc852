/* io/config_unet.c - unet/config.json and motion_adapter/config.json, see config_unet.h. */
#include "io/config_unet.h"

#include <string.h>

/* An int-or-list key broadcast to n entries; absent or null -> def. */
static rl_status opt_list(const rl_json *j, const char *key, int *out, int n, int def, rl_err *err)
{
    if (!rl_json_has(j, NULL, key)) {
        for (int i = 0; i < n; i++) out[i] = def;
        return RL_OK;
    }
    int got;
    return rl_json_int_list(j, NULL, key, out, RL_UNET_MAX_BLOCKS, &got, n, 1, err);
}

static rl_status check_pos(const rl_json *j, const char *key, const int *v, int n, int lo,
                           rl_err *err)
{
    for (int i = 0; i < n; i++)
        if (v[i] < lo || v[i] > (1 << 20))
            return rl_errf(err, RL_E_FORMAT, "%s: key '%s': entry %d is %d, expected %d..%d",
                           j->label, key, i, v[i], lo, 1 << 20);
    return RL_OK;
}

/* A string key that, when present, must have one of the allowed values (the ones reel runs). */
static rl_status only_str(const rl_json *j, const char *key, const char *const *allowed,
                          rl_err *err)
{
    const char *s;
    RL_TRY(rl_json_str(j, NULL, key, NULL, &s, err));
    if (!s) return RL_OK;
    for (int i = 0; allowed[i]; i++)
        if (!strcmp(s, allowed[i])) return RL_OK;
    return rl_errf(err, RL_E_FORMAT, "%s: key '%s': unsupported value '%s' (reel supports '%s')",
                   j->label, key, s, allowed[0]);
}

/* A key that must be absent or null (an option reel does not implement). */
static rl_status must_be_null(const rl_json *j, const char *key, rl_err *err)
{
    if (rl_json_has(j, NULL, key))
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': unsupported option (only null is "
                       "supported)", j->label, key);
    return RL_OK;
}

static rl_status must_be_false(const rl_json *j, const char *key, rl_err *err)
{
    int b;
    RL_TRY(rl_json_bool(j, NULL, key, 0, &b, err));
    if (b)
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': unsupported option (only false is "
                       "supported)", j->label, key);
    return RL_OK;
}

/* A key that is false, null, absent, or a list of falses (diffusers allows a bool per block). */
static rl_status all_false(const rl_json *j, const char *key, rl_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return RL_OK;
    if (cJSON_IsArray(v)) {
        int ok = 1;
        for (const cJSON *e = v->child; e; e = e->next) ok &= cJSON_IsFalse(e) || cJSON_IsNull(e);
        if (ok) return RL_OK;
    } else if (!cJSON_IsTrue(v)) {
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected a boolean or a list of booleans",
                       j->label, key);
    }
    return rl_errf(err, RL_E_FORMAT, "%s: key '%s': unsupported option (only false is supported)",
                   j->label, key);
}

/* A key that must be absent, null, or a string equal to want (a choice reel cannot vary). */
static rl_status only_str_or_null(const rl_json *j, const char *key, const char *want, rl_err *err)
{
    const char *s;
    RL_TRY(rl_json_str(j, NULL, key, NULL, &s, err));
    if (s && strcmp(s, want) != 0)
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': unsupported value '%s' (reel supports "
                       "'%s')", j->label, key, s, want);
    return RL_OK;
}

static void reverse(int *dst, const int *src, int n)
{
    for (int i = 0; i < n; i++) dst[i] = src[n - 1 - i];
}

rl_status rl_unet_cfg_parse(rl_unet_cfg *out, const rl_json *j, rl_err *err)
{
    rl_unet_cfg c = { 0 };
    const char *cls;
    RL_TRY(rl_json_str(j, NULL, "_class_name", "UNet2DConditionModel", &cls, err));
    if (!strcmp(cls, "UNetMotionModel")) c.motion_model = 1;
    else if (strcmp(cls, "UNet2DConditionModel") != 0)
        return rl_errf(err, RL_E_FORMAT, "%s: key '_class_name': unsupported model '%s' "
                       "(expected UNetMotionModel or UNet2DConditionModel)", j->label, cls);

    // sample_size: an int, or [height, width] (informational; any latent size runs)
    c.sample_size = 64;
    if (rl_json_has(j, NULL, "sample_size")) {
        int ss[2], nss;
        RL_TRY(rl_json_int_list(j, NULL, "sample_size", ss, 2, &nss, -1, 1, err));
        if (nss < 1) return rl_errf(err, RL_E_FORMAT, "%s: key 'sample_size': empty list",
                                    j->label);
        c.sample_size = ss[0];
    }
    RL_TRY(rl_json_int(j, NULL, "in_channels", 4, &c.in_channels, err));
    RL_TRY(rl_json_int(j, NULL, "out_channels", 4, &c.out_channels, err));
    RL_TRY(check_pos(j, "in_channels", &c.in_channels, 1, 1, err));
    RL_TRY(check_pos(j, "out_channels", &c.out_channels, 1, 1, err));

    // block types
    const char *down[RL_UNET_MAX_BLOCKS], *up[RL_UNET_MAX_BLOCKS];
    int nd, nu;
    RL_TRY(rl_json_str_list(j, NULL, "down_block_types", down, RL_UNET_MAX_BLOCKS, &nd, err));
    RL_TRY(rl_json_str_list(j, NULL, "up_block_types", up, RL_UNET_MAX_BLOCKS, &nu, err));
    if (nd < 1 || nd != nu)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'up_block_types': %d entries, expected as many "
                       "as down_block_types (%d, at least 1)", j->label, nu, nd);
    c.n_blocks = nd;
    const int n = nd;
    for (int i = 0; i < n; i++) {
        const char *d = down[i], *u = up[i];
        if (!strcmp(d, c.motion_model ? "CrossAttnDownBlockMotion" : "CrossAttnDownBlock2D"))
            c.down[i] = RL_UNET_CROSSATTN;
        else if (!strcmp(d, c.motion_model ? "DownBlockMotion" : "DownBlock2D"))
            c.down[i] = RL_UNET_PLAIN;
        else
            return rl_errf(err, RL_E_FORMAT, "%s: key 'down_block_types': entry %d: unsupported "
                           "block type '%s' (expected %s)", j->label, i, d,
                           c.motion_model ? "CrossAttnDownBlockMotion or DownBlockMotion"
                                          : "CrossAttnDownBlock2D or DownBlock2D");
        if (!strcmp(u, c.motion_model ? "CrossAttnUpBlockMotion" : "CrossAttnUpBlock2D"))
            c.up[i] = RL_UNET_CROSSATTN;
        else if (!strcmp(u, c.motion_model ? "UpBlockMotion" : "UpBlock2D"))
            c.up[i] = RL_UNET_PLAIN;
        else
            return rl_errf(err, RL_E_FORMAT, "%s: key 'up_block_types': entry %d: unsupported "
                           "block type '%s' (expected %s)", j->label, i, u,
                           c.motion_model ? "CrossAttnUpBlockMotion or UpBlockMotion"
                                          : "CrossAttnUpBlock2D or UpBlock2D");
    }
    if (!c.motion_model) {
        // null means "no mid block" to diffusers; absent means the default cross-attention one
        const cJSON *mb = cJSON_GetObjectItemCaseSensitive(j->root, "mid_block_type");
        if (mb && cJSON_IsNull(mb))
            return rl_errf(err, RL_E_FORMAT, "%s: key 'mid_block_type': null (a UNet without a mid "
                           "block) is not supported (reel supports 'UNetMidBlock2DCrossAttn')",
                           j->label);
        RL_TRY(only_str(j, "mid_block_type", (const char *const[]){ "UNetMidBlock2DCrossAttn",
                                                                   NULL },
                     err));
        RL_TRY(all_false(j, "mid_block_only_cross_attention", err));
    }

    int got;
    if (!rl_json_has(j, NULL, "block_out_channels"))
        return rl_errf(err, RL_E_MISSING, "%s: missing key 'block_out_channels'", j->label);
    RL_TRY(rl_json_int_list(j, NULL, "block_out_channels", c.channels, RL_UNET_MAX_BLOCKS, &got, n,
                            0, err));
    RL_TRY(check_pos(j, "block_out_channels", c.channels, n, 1, err));
    RL_TRY(opt_list(j, "layers_per_block", c.layers, n, 2, err));
    RL_TRY(check_pos(j, "layers_per_block", c.layers, n, 1, err));
    RL_TRY(rl_json_int(j, NULL, "downsample_padding", 1, &c.downsample_padding, err));
    if (c.downsample_padding < 0 || c.downsample_padding > 1)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'downsample_padding': %d, expected 0 or 1",
                       j->label, c.downsample_padding);
    double v;
    RL_TRY(rl_json_float(j, NULL, "mid_block_scale_factor", 1.0, &v, err));
    if (!(v > 0)) return rl_errf(err, RL_E_FORMAT, "%s: key 'mid_block_scale_factor': %g, "
                                 "expected > 0", j->label, v);
    c.mid_block_scale_factor = (float)v;
    RL_TRY(rl_json_int(j, NULL, "norm_num_groups", 32, &c.norm_num_groups, err));
    if (c.norm_num_groups < 1)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'norm_num_groups': %d (null norm groups are not "
                       "supported)", j->label, c.norm_num_groups);
    for (int i = 0; i < n; i++)
        if (c.channels[i] % c.norm_num_groups)
            return rl_errf(err, RL_E_FORMAT, "%s: block_out_channels[%d] = %d is not a multiple of "
                           "norm_num_groups %d", j->label, i, c.channels[i], c.norm_num_groups);
    RL_TRY(rl_json_float(j, NULL, "norm_eps", 1e-5, &v, err));
    if (!(v > 0 && v < 1))
        return rl_errf(err, RL_E_FORMAT, "%s: key 'norm_eps': %g, expected in (0, 1)", j->label, v);
    c.norm_eps = (float)v;
    RL_TRY(opt_list(j, "cross_attention_dim", c.cross_dim, n, 1280, err));
    RL_TRY(check_pos(j, "cross_attention_dim", c.cross_dim, n, 1, err));
    RL_TRY(rl_json_bool(j, NULL, "use_linear_projection", 0, &c.use_linear_projection, err));

    // heads: UNetMotionModel reads num_attention_heads; UNet2DConditionModel falls back to
    // attention_head_dim, which diffusers has always used as the number of heads here
    if (c.motion_model || rl_json_has(j, NULL, "num_attention_heads"))
        RL_TRY(opt_list(j, "num_attention_heads", c.heads, n, 8, err));
    else
        RL_TRY(opt_list(j, "attention_head_dim", c.heads, n, 8, err));
    RL_TRY(check_pos(j, "num_attention_heads", c.heads, n, 1, err));
    for (int i = 0; i < n; i++)
        if (c.channels[i] % c.heads[i])
            return rl_errf(err, RL_E_FORMAT, "%s: block_out_channels[%d] = %d is not a multiple of "
                           "the %d attention heads", j->label, i, c.channels[i], c.heads[i]);

    RL_TRY(opt_list(j, "transformer_layers_per_block", c.xf_layers, n, 1, err));
    RL_TRY(check_pos(j, "transformer_layers_per_block", c.xf_layers, n, 1, err));
    if (rl_json_has(j, NULL, "reverse_transformer_layers_per_block")) {
        RL_TRY(opt_list(j, "reverse_transformer_layers_per_block", c.xf_layers_up, n, 1, err));
        RL_TRY(check_pos(j, "reverse_transformer_layers_per_block", c.xf_layers_up, n, 1, err));
    } else {
        reverse(c.xf_layers_up, c.xf_layers, n);
    }
    c.mid_xf_layers = c.xf_layers[n - 1];
    if (rl_json_has(j, NULL, "transformer_layers_per_mid_block"))
        RL_TRY(rl_json_int(j, NULL, "transformer_layers_per_mid_block", 1, &c.mid_xf_layers, err));
    c.mid_layers = 1;   // UNet2DConditionModel's mid block always has one attention layer
    if (c.motion_model) RL_TRY(rl_json_int(j, NULL, "mid_block_layers", 1, &c.mid_layers, err));
    RL_TRY(check_pos(j, "mid_block_layers", &c.mid_layers, 1, 1, err));
    RL_TRY(check_pos(j, "transformer_layers_per_mid_block", &c.mid_xf_layers, 1, 1, err));

    // time embedding
    if (c.motion_model) {
        c.flip_sin_to_cos = 1;
        c.freq_shift = 0.0f;
        c.time_embed_dim = c.channels[0] * 4;
    } else {
        RL_TRY(rl_json_bool(j, NULL, "flip_sin_to_cos", 1, &c.flip_sin_to_cos, err));
        RL_TRY(rl_json_float(j, NULL, "freq_shift", 0.0, &v, err));
        c.freq_shift = (float)v;
        RL_TRY(rl_json_int(j, NULL, "time_embedding_dim", c.channels[0] * 4, &c.time_embed_dim,
                           err));
        RL_TRY(check_pos(j, "time_embedding_dim", &c.time_embed_dim, 1, 1, err));
        RL_TRY(only_str(j, "time_embedding_type", (const char *const[]){ "positional", NULL },
                        err));
        RL_TRY(only_str(j, "resnet_time_scale_shift", (const char *const[]){ "default", NULL },
                        err));
        RL_TRY(only_str(j, "attention_type", (const char *const[]){ "default", NULL }, err));
        RL_TRY(must_be_null(j, "class_embed_type", err));
        RL_TRY(must_be_null(j, "num_class_embeds", err));
        RL_TRY(must_be_null(j, "addition_embed_type", err));
        RL_TRY(must_be_null(j, "time_embedding_act_fn", err));
        RL_TRY(must_be_null(j, "timestep_post_act", err));
        RL_TRY(must_be_null(j, "cross_attention_norm", err));
        RL_TRY(must_be_false(j, "center_input_sample", err));
        RL_TRY(must_be_false(j, "dual_cross_attention", err));
        RL_TRY(must_be_false(j, "resnet_skip_time_act", err));
        RL_TRY(must_be_false(j, "class_embeddings_concat", err));
        RL_TRY(all_false(j, "only_cross_attention", err));   // a bool or a list per block
        RL_TRY(rl_json_float(j, NULL, "resnet_out_scale_factor", 1.0, &v, err));
        if (v != 1.0) return rl_errf(err, RL_E_FORMAT, "%s: key 'resnet_out_scale_factor': "
                                     "unsupported value %g (only 1.0)", j->label, v);
        int k;
        RL_TRY(rl_json_int(j, NULL, "conv_in_kernel", 3, &k, err));
        if (k != 3) return rl_errf(err, RL_E_FORMAT, "%s: key 'conv_in_kernel': unsupported "
                                   "value %d (only 3)", j->label, k);
        RL_TRY(rl_json_int(j, NULL, "conv_out_kernel", 3, &k, err));
        if (k != 3) return rl_errf(err, RL_E_FORMAT, "%s: key 'conv_out_kernel': unsupported "
                                   "value %d (only 3)", j->label, k);
    }
    RL_TRY(only_str(j, "act_fn", (const char *const[]){ "silu", "swish", NULL }, err));
    RL_TRY(must_be_null(j, "encoder_hid_dim", err));
    RL_TRY(must_be_null(j, "encoder_hid_dim_type", err));
    RL_TRY(must_be_null(j, "time_cond_proj_dim", err));

    // motion modules of a UNetMotionModel
    if (c.motion_model) {
        c.has_motion = 1;
        RL_TRY(opt_list(j, "motion_num_attention_heads", c.motion_heads, n, 8, err));
        RL_TRY(check_pos(j, "motion_num_attention_heads", c.motion_heads, n, 1, err));
        RL_TRY(rl_json_int(j, NULL, "motion_max_seq_length", 32, &c.motion_max_seq, err));
        RL_TRY(check_pos(j, "motion_max_seq_length", &c.motion_max_seq, 1, 1, err));
        RL_TRY(rl_json_bool(j, NULL, "use_motion_mid_block", 1, &c.motion_mid, err));
        RL_TRY(opt_list(j, "temporal_transformer_layers_per_block", c.motion_xf_layers, n, 1, err));
        RL_TRY(check_pos(j, "temporal_transformer_layers_per_block", c.motion_xf_layers, n, 1,
                         err));
        if (rl_json_has(j, NULL, "reverse_temporal_transformer_layers_per_block")) {
            RL_TRY(opt_list(j, "reverse_temporal_transformer_layers_per_block",
                            c.motion_xf_layers_up, n, 1, err));
            RL_TRY(check_pos(j, "reverse_temporal_transformer_layers_per_block",
                             c.motion_xf_layers_up, n, 1, err));
        } else {
            reverse(c.motion_xf_layers_up, c.motion_xf_layers, n);
        }
        RL_TRY(rl_json_int(j, NULL, "temporal_transformer_layers_per_mid_block", 1,
                           &c.motion_mid_xf_layers, err));
        RL_TRY(check_pos(j, "temporal_transformer_layers_per_mid_block", &c.motion_mid_xf_layers, 1,
                         1, err));
        for (int i = 0; i < n; i++)
            if (c.channels[i] % c.motion_heads[i])
                return rl_errf(err, RL_E_FORMAT, "%s: block_out_channels[%d] = %d is not a "
                               "multiple of motion_num_attention_heads %d", j->label, i,
                               c.channels[i], c.motion_heads[i]);
        RL_TRY(must_be_null(j, "addition_embed_type", err));
        // the up path uses the reversed motion heads; an explicit list must say the same
        if (rl_json_has(j, NULL, "reverse_motion_num_attention_heads")) {
            int rh[RL_UNET_MAX_BLOCKS];
            RL_TRY(opt_list(j, "reverse_motion_num_attention_heads", rh, n, 8, err));
            for (int i = 0; i < n; i++)
                if (rh[i] != c.motion_heads[n - 1 - i])
                    return rl_errf(err, RL_E_FORMAT, "%s: key 'reverse_motion_num_attention_heads': "
                                   "entry %d is %d; reel supports only the reverse of "
                                   "motion_num_attention_heads (%d)", j->label, i, rh[i],
                                   c.motion_heads[n - 1 - i]);
        }
    }
    *out = c;
    return RL_OK;
}

rl_status rl_unet_cfg_load(rl_unet_cfg *cfg, const char *path, rl_err *err)
{
    rl_json j = { 0 };
    rl_status rc = rl_json_load(&j, path, err);
    if (rc == RL_OK) rc = rl_unet_cfg_parse(cfg, &j, err);
    rl_json_free(&j);
    return rc;
}

rl_status rl_unet_cfg_add_adapter_json(rl_unet_cfg *c, const rl_json *j, rl_err *err)
{
    const int n = c->n_blocks;
    int got, ch[RL_UNET_MAX_BLOCKS], lay[RL_UNET_MAX_BLOCKS];
    if (c->motion_model)
        return rl_errf(err, RL_E_FORMAT, "%s: a MotionAdapter cannot be added to a UNetMotionModel "
                       "(its motion modules are inside)", j->label);
    RL_TRY(rl_json_int_list(j, NULL, "block_out_channels", ch, RL_UNET_MAX_BLOCKS, &got, -1, 0,
                            err));
    if (got != n)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'block_out_channels': %d blocks, the UNet has %d",
                       j->label, got, n);
    for (int i = 0; i < n; i++)
        if (ch[i] != c->channels[i])
            return rl_errf(err, RL_E_FORMAT, "%s: key 'block_out_channels': entry %d is %d, the "
                           "UNet has %d", j->label, i, ch[i], c->channels[i]);
    RL_TRY(opt_list(j, "motion_layers_per_block", lay, n, 2, err));
    for (int i = 0; i < n; i++)
        if (lay[i] != c->layers[i])
            return rl_errf(err, RL_E_FORMAT, "%s: key 'motion_layers_per_block': entry %d is %d, "
                           "the UNet's layers_per_block is %d", j->label, i, lay[i], c->layers[i]);
    RL_TRY(opt_list(j, "motion_num_attention_heads", c->motion_heads, n, 8, err));
    RL_TRY(check_pos(j, "motion_num_attention_heads", c->motion_heads, n, 1, err));
    for (int i = 0; i < n; i++)
        if (c->channels[i] % c->motion_heads[i])
            return rl_errf(err, RL_E_FORMAT, "%s: block_out_channels[%d] = %d is not a multiple of "
                           "motion_num_attention_heads %d", j->label, i, c->channels[i],
                           c->motion_heads[i]);
    RL_TRY(opt_list(j, "motion_transformer_layers_per_block", c->motion_xf_layers, n, 1, err));
    RL_TRY(check_pos(j, "motion_transformer_layers_per_block", c->motion_xf_layers, n, 1, err));
    reverse(c->motion_xf_layers_up, c->motion_xf_layers, n);
    int mid_layers;
    RL_TRY(rl_json_int(j, NULL, "motion_mid_block_layers_per_block", 1, &mid_layers, err));
    RL_TRY(rl_json_int(j, NULL, "motion_transformer_layers_per_mid_block", 1,
                       &c->motion_mid_xf_layers, err));
    RL_TRY(check_pos(j, "motion_transformer_layers_per_mid_block", &c->motion_mid_xf_layers, 1, 1,
                     err));
    RL_TRY(rl_json_int(j, NULL, "motion_max_seq_length", 32, &c->motion_max_seq, err));
    RL_TRY(check_pos(j, "motion_max_seq_length", &c->motion_max_seq, 1, 1, err));
    RL_TRY(rl_json_bool(j, NULL, "use_motion_mid_block", 1, &c->motion_mid, err));
    if (c->motion_mid && mid_layers != c->mid_layers)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'motion_mid_block_layers_per_block': %d, the "
                       "UNet's mid block has %d layers", j->label, mid_layers, c->mid_layers);
    RL_TRY(must_be_null(j, "conv_in_channels", err));
    // keys written by diffusers 0.22-0.24 (guoyww/animatediff-motion-adapter-v1-5-2 has them);
    // later diffusers fixed these choices, and so does reel
    RL_TRY(only_str_or_null(j, "motion_activation_fn", "geglu", err));
    RL_TRY(must_be_false(j, "motion_attention_bias", err));
    RL_TRY(must_be_null(j, "motion_cross_attention_dim", err));
    int g;   // motion_norm_num_groups: validated, but from_unet2d builds with the UNet's groups
    RL_TRY(rl_json_int(j, NULL, "motion_norm_num_groups", 32, &g, err));
    c->has_motion = 1;
    c->flip_sin_to_cos = 1;   // UNetMotionModel's Timesteps(C0, True, 0)
    c->freq_shift = 0.0f;
    return RL_OK;
}

rl_status rl_unet_cfg_add_adapter(rl_unet_cfg *cfg, const char *path, rl_err *err)
{
    rl_json j = { 0 };
    rl_status rc = rl_json_load(&j, path, err);
    if (rc == RL_OK) rc = rl_unet_cfg_add_adapter_json(cfg, &j, err);
    rl_json_free(&j);
    return rc;
}
