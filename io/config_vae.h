/* io/config_vae.h - vae/config.json -> rl_vae_cfg (diffusers AutoencoderKL).
 *
 * Keys and defaults are diffusers' AutoencoderKL.__init__: in_channels 3, out_channels 3,
 * down_block_types ("DownEncoderBlock2D", ...), up_block_types ("UpDecoderBlock2D", ...),
 * block_out_channels (64,), layers_per_block 1, act_fn "silu", latent_channels 4,
 * norm_num_groups 32, sample_size 32, scaling_factor 0.18215, shift_factor null,
 * use_quant_conv true, use_post_quant_conv true, mid_block_add_attention true.
 * block_out_channels, latent_channels and layers_per_block are required (save_config always
 * writes them, and they fix every tensor shape). */
#ifndef RL_IO_CONFIG_VAE_H
#define RL_IO_CONFIG_VAE_H

#include "core/err.h"
#include "io/json.h"

#define RL_VAE_MAX_BLOCKS 8

typedef struct {
    int in_channels, out_channels;          // image channels (3)
    int latent_channels;                    // C of the latents
    int n_blocks;                           // len(block_out_channels)
    int block_out_channels[RL_VAE_MAX_BLOCKS];
    int layers_per_block;                   // encoder resnets per block; decoder has one more
    int norm_num_groups;                    // G, divides every block_out_channels entry
    int sample_size;                        // image size the model was trained at
    float scaling_factor;                   // latents = mean * scaling_factor (+ shift)
    float shift_factor;                     // 0 when null
    int use_quant_conv, use_post_quant_conv;
    int mid_block_add_attention;
} rl_vae_cfg;

/* Reads and validates path. Errors: RL_E_IO/RL_E_FORMAT (file, JSON, wrong type, a block
 * type other than DownEncoderBlock2D/UpDecoderBlock2D, act_fn other than silu, channels
 * not divisible by norm_num_groups), RL_E_MISSING (a required key). cfg is only written on
 * success. */
rl_status rl_vae_cfg_load(rl_vae_cfg *cfg, const char *path, rl_err *err);
rl_status rl_vae_cfg_parse(rl_vae_cfg *cfg, const rl_json *j, rl_err *err);

/* 2^(n_blocks - 1): pixels per latent along each axis. */
int rl_vae_cfg_scale(const rl_vae_cfg *cfg);

#endif
