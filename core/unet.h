/* core/unet.h - the spatio-temporal UNet: diffusers UNetMotionModel (UNet2DConditionModel with
 * AnimateDiff motion modules), or a plain UNet2DConditionModel when the config has no motion.
 *
 * Structure (tensor names verbatim from diffusers):
 *   time_proj (sinusoidal) -> time_embedding.linear_1 -> silu -> time_embedding.linear_2
 *   conv_in
 *   down_blocks.i: resnets.j [-> attentions.j] [-> motion_modules.j], downsamplers.0.conv
 *   mid_block: resnets.0, then per layer: attentions.k [-> motion_modules.k] -> resnets.k+1
 *   up_blocks.i: per layer: concat skip -> resnets.j [-> attentions.j] [-> motion_modules.j],
 *                upsamplers.0.conv
 *   conv_norm_out -> silu -> conv_out
 * Frames are folded into the batch (B = N*F images), as diffusers does; motion modules unfold
 * them. */
#ifndef RL_CORE_UNET_H
#define RL_CORE_UNET_H

#include "core/arena.h"
#include "core/err.h"
#include "core/layers.h"
#include "core/weights.h"
#include "io/config_unet.h"
#include "temporal/motion.h"

#define RL_UNET_MAX_LAYERS 8

typedef struct {
    int n_layers;                                  // resnets (up blocks: layers + 1)
    int cross;                                     // has attentions
    rl_resnet resnets[RL_UNET_MAX_LAYERS];
    rl_xformer attns[RL_UNET_MAX_LAYERS];
    int has_motion;
    rl_motion motions[RL_UNET_MAX_LAYERS];
    int has_sampler;
    rl_downsample down;                            // down blocks
    rl_upsample up;                                // up blocks
} rl_unet_block;

typedef struct {
    rl_unet_cfg cfg;
    int C0, Ct;                                    // block_out_channels[0], time embed dim
    rl_fc t_lin1, t_lin2;                          // time_embedding.linear_1/2
    rl_conv conv_in, conv_out;
    rl_gnorm norm_out;                             // conv_norm_out
    rl_unet_block down[RL_UNET_MAX_BLOCKS], up[RL_UNET_MAX_BLOCKS];
    rl_resnet mid_res[RL_UNET_MAX_LAYERS + 1];
    rl_xformer mid_attn[RL_UNET_MAX_LAYERS];
    rl_motion mid_motion[RL_UNET_MAX_LAYERS];
    int has_mid_motion;
} rl_unet;

/* Binds every tensor named by cfg. Spatial weights come from ws; motion-module weights from
 * ws_motion when given (a separate MotionAdapter file, same names), else from ws (a
 * UNetMotionModel file). Afterwards every tensor in ws (and ws_motion) must have been used:
 * an extra tensor is RL_E_SHAPE naming it. On failure u is freed. */
rl_status rl_unet_bind(rl_unet *u, rl_weights *ws, rl_weights *ws_motion, const rl_unet_cfg *cfg,
                       rl_err *err);
void rl_unet_free(rl_unet *u);                     // idempotent, safe on a zeroed struct

/* One denoiser call.
 *   x    (N, Cin, F, H, W) latents; out (N, Cout, F, H, W)
 *   t    timesteps, t_n = N values (one per video) or 1 (broadcast)
 *   emb  text embeddings: emb_frames = 1: (N, L, D), shared by the F frames of each video;
 *        emb_frames = F: (N, F, L, D), one per frame (prompt travel). D = cross_attention_dim.
 * Activations come from arena (reset to its entry mark on return), so after the first call
 * with a given shape no memory is allocated. Errors: RL_E_PARAM for shapes the model cannot
 * take (F above motion_max_seq_length, emb_frames not 1 or F, ...). */
rl_status rl_unet_fwd(const rl_unet *u, rl_arena *arena, float *out, const float *x,
                      const float *t, int t_n, const float *emb, int emb_frames, int L, int D,
                      int N, int F, int H, int W, rl_err *err);

#endif
