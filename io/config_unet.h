/* io/config_unet.h - unet/config.json (diffusers UNetMotionModel or UNet2DConditionModel) and
 * motion_adapter/config.json (MotionAdapter) -> rl_unet_cfg, with every list resolved per block
 * the way the diffusers constructors resolve them (ints broadcast, up-path lists reversed).
 *
 * UNetMotionModel: heads come from num_attention_heads; the time projection is fixed
 * (flip_sin_to_cos = true, freq_shift = 0); motion modules use the UNet's norm_num_groups.
 * UNet2DConditionModel: heads = num_attention_heads or else attention_head_dim (diffusers'
 * historical naming); flip_sin_to_cos / freq_shift from the config. Combined with a
 * MotionAdapter (rl_unet_cfg_add_adapter) it becomes what UNetMotionModel.from_unet2d builds,
 * which fixes the time projection to (true, 0) as that code does.
 *
 * Keys of real configs (save_pretrained writes every __init__ argument) are read as diffusers
 * reads them; keys that do not change what the network computes are ignored (_name_or_path,
 * _diffusers_version, dropout, sample_size beyond information, addition_embed_type_num_heads,
 * addition_time_embed_dim / projection_class_embeddings_input_dim while addition_embed_type is
 * null, and upcast_attention: reel computes attention in F32 anyway, which is what upcasting
 * asks for). Keys that select a network reel does not run are refused with RL_E_FORMAT naming
 * the key: a non-null addition_embed_type, class_embed_type, num_class_embeds, encoder_hid_dim(_type),
 * time_cond_proj_dim, time_embedding_act_fn, timestep_post_act, cross_attention_norm; a true
 * only_cross_attention / mid_block_only_cross_attention (bool or per-block list), dual_cross_attention,
 * center_input_sample, resnet_skip_time_act, class_embeddings_concat; mid_block_type null (no mid
 * block) or other than UNetMidBlock2DCrossAttn; attention_type other than "default"; a
 * reverse_motion_num_attention_heads that is not the reverse of motion_num_attention_heads.
 * MotionAdapter configs of diffusers 0.22-0.24 carry motion_activation_fn ("geglu" only),
 * motion_attention_bias (false only) and motion_cross_attention_dim (null only). */
#ifndef RL_IO_CONFIG_UNET_H
#define RL_IO_CONFIG_UNET_H

#include "core/err.h"
#include "io/json.h"

#define RL_UNET_MAX_BLOCKS 8

typedef enum { RL_UNET_PLAIN = 0, RL_UNET_CROSSATTN = 1 } rl_unet_block_kind;

typedef struct {
    int motion_model;                    // 1: config of a UNetMotionModel
    int sample_size;                     // latent size (informational)
    int in_channels, out_channels;
    int n_blocks;
    rl_unet_block_kind down[RL_UNET_MAX_BLOCKS];   // down_block_types
    rl_unet_block_kind up[RL_UNET_MAX_BLOCKS];     // up_block_types (up order)
    int channels[RL_UNET_MAX_BLOCKS];              // block_out_channels
    int layers[RL_UNET_MAX_BLOCKS];                // layers_per_block (down order; up has +1)
    int heads[RL_UNET_MAX_BLOCKS];                 // attention heads per down block
    int cross_dim[RL_UNET_MAX_BLOCKS];             // cross_attention_dim per down block
    int xf_layers[RL_UNET_MAX_BLOCKS];             // transformer_layers_per_block (down)
    int xf_layers_up[RL_UNET_MAX_BLOCKS];          // reverse_transformer_layers_per_block (up order)
    int mid_layers;                                // mid_block_layers (attention+resnet pairs)
    int mid_xf_layers;                             // transformer_layers_per_mid_block
    int downsample_padding;
    float mid_block_scale_factor;
    int norm_num_groups;
    float norm_eps;
    int use_linear_projection;
    int flip_sin_to_cos;
    float freq_shift;
    int time_embed_dim;                  // block_out_channels[0] * 4 unless time_embedding_dim

    // motion modules (has_motion = 0: a plain 2-D UNet)
    int has_motion;
    int motion_heads[RL_UNET_MAX_BLOCKS];          // down order (up uses the reverse)
    int motion_xf_layers[RL_UNET_MAX_BLOCKS];      // temporal_transformer_layers_per_block (down)
    int motion_xf_layers_up[RL_UNET_MAX_BLOCKS];   // (up order)
    int motion_max_seq;                  // motion_max_seq_length
    float pe_scale;                      // not a config key: the trainer's scale of the motion
                                         // modules' positional tables when a model stores none
                                         // (0: 1, diffusers' table)
    int motion_mid;                      // use_motion_mid_block
    int motion_mid_xf_layers;            // temporal_transformer_layers_per_mid_block
} rl_unet_cfg;

/* Reads and validates unet/config.json (or a parsed document j). Errors: as rl_json_load,
 * RL_E_MISSING (a required key), RL_E_FORMAT naming the key for a wrong type or an
 * unsupported block type or option. cfg is only written on success. */
rl_status rl_unet_cfg_load(rl_unet_cfg *cfg, const char *path, rl_err *err);
rl_status rl_unet_cfg_parse(rl_unet_cfg *cfg, const rl_json *j, rl_err *err);

/* Merges motion_adapter/config.json into a UNet2DConditionModel config (as
 * UNetMotionModel.from_unet2d does); checks that the adapter matches the UNet. Errors: as
 * rl_json_load, RL_E_FORMAT naming the key that does not match or is unsupported. */
rl_status rl_unet_cfg_add_adapter(rl_unet_cfg *cfg, const char *path, rl_err *err);
rl_status rl_unet_cfg_add_adapter_json(rl_unet_cfg *cfg, const rl_json *j, rl_err *err);

#endif
