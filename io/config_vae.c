/* io/config_vae.c - vae/config.json (diffusers AutoencoderKL), see config_vae.h. */
#include "io/config_vae.h"

#include <string.h>

int rl_vae_cfg_scale(const rl_vae_cfg *cfg)
{
    return 1 << (cfg->n_blocks - 1);
}

/* Every entry of the string list key (when present) must equal want, and there must be
 * n of them. */
static rl_status check_types(const rl_json *j, const char *key, const char *want, int n,
                             rl_err *err)
{
    if (!rl_json_has(j, NULL, key)) return RL_OK;
    const char *types[RL_VAE_MAX_BLOCKS + 1];
    int got;
    rl_status rc = rl_json_str_list(j, NULL, key, types, RL_VAE_MAX_BLOCKS + 1, &got, err);
    if (rc) return rc;
    if (got != n)
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': %d entries, block_out_channels has %d",
                       j->label, key, got, n);
    for (int i = 0; i < got; i++)
        if (strcmp(types[i], want) != 0)
            return rl_errf(err, RL_E_FORMAT, "%s: key '%s[%d]': unsupported block '%s' "
                           "(expected %s)", j->label, key, i, types[i], want);
    return RL_OK;
}

rl_status rl_vae_cfg_parse(rl_vae_cfg *out, const rl_json *j, rl_err *err)
{
    rl_status rc;
    rl_vae_cfg c = { 0 };
    int b;

    if ((rc = rl_json_int(j, NULL, "in_channels", 3, &c.in_channels, err))) return rc;
    if ((rc = rl_json_int(j, NULL, "out_channels", 3, &c.out_channels, err))) return rc;
    if ((rc = rl_json_int_req(j, NULL, "latent_channels", &c.latent_channels, err))) return rc;
    if ((rc = rl_json_int_req(j, NULL, "layers_per_block", &c.layers_per_block, err))) return rc;
    if ((rc = rl_json_int(j, NULL, "norm_num_groups", 32, &c.norm_num_groups, err))) return rc;
    if ((rc = rl_json_int(j, NULL, "sample_size", 32, &c.sample_size, err))) return rc;
    if (!rl_json_has(j, NULL, "block_out_channels"))
        return rl_errf(err, RL_E_MISSING, "%s: missing required key 'block_out_channels' "
                       "(expected a list of integers)", j->label);
    if ((rc = rl_json_int_list(j, NULL, "block_out_channels", c.block_out_channels,
                               RL_VAE_MAX_BLOCKS, &c.n_blocks, -1, 0, err))) return rc;
    if ((rc = check_types(j, "down_block_types", "DownEncoderBlock2D", c.n_blocks, err)))
        return rc;
    if ((rc = check_types(j, "up_block_types", "UpDecoderBlock2D", c.n_blocks, err)))
        return rc;

    const char *act;
    if ((rc = rl_json_str(j, NULL, "act_fn", "silu", &act, err))) return rc;
    if (strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'act_fn': unsupported activation '%s' "
                       "(expected silu)", j->label, act);

    double sf, shift;
    if ((rc = rl_json_float(j, NULL, "scaling_factor", 0.18215, &sf, err))) return rc;
    if ((rc = rl_json_float(j, NULL, "shift_factor", 0.0, &shift, err))) return rc;
    if (!(sf > 0.0 && sf < 1e6))
        return rl_errf(err, RL_E_FORMAT, "%s: key 'scaling_factor': expected a positive number, "
                       "found %g", j->label, sf);
    c.scaling_factor = (float)sf;
    c.shift_factor = (float)shift;
    if ((rc = rl_json_bool(j, NULL, "use_quant_conv", 1, &c.use_quant_conv, err))) return rc;
    if ((rc = rl_json_bool(j, NULL, "use_post_quant_conv", 1, &c.use_post_quant_conv, err)))
        return rc;
    if ((rc = rl_json_bool(j, NULL, "mid_block_add_attention", 1, &c.mid_block_add_attention,
                           err))) return rc;

    // sizes: positive, divisible by the group count, small enough for int products
    if (c.n_blocks < 1)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'block_out_channels': expected at least one "
                       "entry", j->label);
    const struct { const char *key; int v, lo, hi; } lim[] = {
        { "in_channels", c.in_channels, 1, 64 },
        { "out_channels", c.out_channels, 1, 64 },
        { "latent_channels", c.latent_channels, 1, 1024 },
        { "layers_per_block", c.layers_per_block, 1, 64 },
        { "norm_num_groups", c.norm_num_groups, 1, 4096 },
        { "sample_size", c.sample_size, 1, 1 << 16 },
    };
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
        if (lim[i].v < lim[i].lo || lim[i].v > lim[i].hi)
            return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected an integer in [%d, %d], "
                           "found %d", j->label, lim[i].key, lim[i].lo, lim[i].hi, lim[i].v);
    for (b = 0; b < c.n_blocks; b++) {
        int ch = c.block_out_channels[b];
        if (ch < 1 || ch > 16384 || ch % c.norm_num_groups != 0)
            return rl_errf(err, RL_E_FORMAT, "%s: key 'block_out_channels[%d]': %d is not a "
                           "positive multiple of norm_num_groups %d (at most 16384)", j->label,
                           b, ch, c.norm_num_groups);
    }
    *out = c;
    return RL_OK;
}

rl_status rl_vae_cfg_load(rl_vae_cfg *cfg, const char *path, rl_err *err)
{
    rl_json j = { 0 };
    rl_status rc = rl_json_load(&j, path, err);
    if (rc == RL_OK) rc = rl_vae_cfg_parse(cfg, &j, err);
    rl_json_free(&j);
    return rc;
}
