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
 * Activations come from arena (reset to its entry mark on return). The call first reserves
 * rl_unet_plan_bytes(inference) in the arena, so after the first call with a given shape no
 * memory is allocated, and a reservation that fails is RL_E_NOMEM (nothing computed).
 * Errors: RL_E_PARAM for shapes the model cannot take (F above motion_max_seq_length,
 * emb_frames not 1 or F, ...), RL_E_NOMEM. */
rl_status rl_unet_fwd(const rl_unet *u, rl_arena *arena, float *out, const float *x,
                      const float *t, int t_n, const float *emb, int emb_frames, int L, int D,
                      int N, int F, int H, int W, rl_err *err);

// ---- training -------------------------------------------------------------------------------

#define RL_UNET_MAX_SKIPS (RL_UNET_MAX_BLOCKS * (RL_UNET_MAX_LAYERS + 1) + 1)

/* Which parameters receive gradients in rl_unet_bwd (the others are frozen: their weight
 * gradients are neither computed nor written). */
enum {
    RL_UNET_GRAD_IMAGE = 1,      // everything that is not a motion module (the image UNet)
    RL_UNET_GRAD_MOTION = 2,     // the motion modules (*.motion_modules.*)
    RL_UNET_GRAD_ALL = 3,
};

/* What the training forward keeps for one block. Pointers into the arena. */
typedef struct {
    int H, W;                                      // resolution of the block's layers
    const float *res_in[RL_UNET_MAX_LAYERS];       // resnet inputs (up blocks: the concat)
    rl_resnet_acts res[RL_UNET_MAX_LAYERS];
    const float *xf_in[RL_UNET_MAX_LAYERS];        // attention inputs (B, C, H, W)
    rl_xformer_acts xf[RL_UNET_MAX_LAYERS];
    const float *mot_in[RL_UNET_MAX_LAYERS];       // motion-module inputs (B, C, H, W)
    rl_motion_acts mot[RL_UNET_MAX_LAYERS];
    const float *samp_in;                          // down/upsampler input
    rl_upsample_acts up;
} rl_unet_block_acts;

/* Everything rl_unet_bwd needs from rl_unet_fwd_train. B = N * F images. */
typedef struct {
    int N, F, H, W, L, D, emb_frames, ctx_rep;
    const float *emb;                              // the caller's embeddings (kept alive by it)
    float *tp;                                     // (N, C0) sinusoidal time projection
    float *t1, *t1a;                               // (N, Ct) linear_1 out, its SiLU
    float *temb;                                   // (B, Ct) linear_2 out repeated over frames
    float *xin;                                    // (B, Cin, H, W) permuted input
    int n_skips;
    float *skip[RL_UNET_MAX_SKIPS];                // skip tensors (B, C, h, w)
    int skip_c[RL_UNET_MAX_SKIPS], skip_h[RL_UNET_MAX_SKIPS], skip_w[RL_UNET_MAX_SKIPS];
    rl_unet_block_acts down[RL_UNET_MAX_BLOCKS], up[RL_UNET_MAX_BLOCKS];
    const float *mid_res_in[RL_UNET_MAX_LAYERS + 1];
    rl_resnet_acts mid_res[RL_UNET_MAX_LAYERS + 1];
    const float *mid_xf_in[RL_UNET_MAX_LAYERS], *mid_mot_in[RL_UNET_MAX_LAYERS];
    rl_xformer_acts mid_xf[RL_UNET_MAX_LAYERS];
    rl_motion_acts mid_mot[RL_UNET_MAX_LAYERS];
    const float *pre_out;                          // (B, C0, H, W) conv_norm_out input
    float *gn, *gn_mean, *gn_rstd, *act;           // its output, stats (B, G), SiLU
} rl_unet_acts;

/* As rl_unet_fwd, keeping in *a (the caller's struct) and in arena everything rl_unet_bwd
 * needs; the arena is NOT reset (the caller resets it to its own mark after the backward).
 * emb must stay valid until the backward. Reserves rl_unet_plan_bytes(training) first.
 * Errors: those of rl_unet_fwd, and RL_E_PARAM when H or W is not a multiple of
 * 2^(blocks - 1) (the upsamplers' backward is the 2x one). */
rl_status rl_unet_fwd_train(const rl_unet *u, rl_unet_acts *a, rl_arena *arena, float *out,
                            const float *x, const float *t, int t_n, const float *emb,
                            int emb_frames, int L, int D, int N, int F, int H, int W,
                            rl_err *err);

/* Backward of the training forward a, from dout (N, Cout, F, H, W). Accumulates (+=) into
 *   g     the gradient mirror (an rl_unet bound to gradient buffers of the same names), only
 *         for the parameter groups in `which` (RL_UNET_GRAD_*); g may be NULL
 *   dx    (N, Cin, F, H, W) or NULL
 *   demb  shaped as the emb given to the forward, or NULL.
 * Work that feeds nothing asked for is skipped (motion-only training does not walk back
 * through the layers below the first motion module). Temporaries come from arena and are
 * released. Cannot fail once the forward succeeded (the plan covers it). Not thread-safe for
 * the same g. */
void rl_unet_bwd(const rl_unet *u, const rl_unet *g, int which, const rl_unet_acts *a,
                 rl_arena *arena, float *dx, float *demb, const float *dout);

// ---- memory plan --------------------------------------------------------------------------------

/* Arena bytes (high-water mark above the entry mark) of one rl_unet_fwd (train = 0) or of
 * rl_unet_fwd_train followed by rl_unet_bwd (train = 1) at this shape, counted without
 * computing by walking the same allocations the calls make (the rl_*_plan_* mirrors of
 * core/layers.h), with n_threads worth of per-thread scratch (rl_par_max_threads() at the
 * call). Exact for inference and for a backward that computes every gradient (dx, demb, all
 * groups); an upper bound for backwards that compute less. The calls reserve it themselves;
 * callers use it to report or to check a budget up front (SD 1.5 + AnimateDiff at 512x512,
 * 16 frames, N = 2: 3.14 GiB). */
size_t rl_unet_plan_bytes(const rl_unet *u, int train, int N, int F, int H, int W, int L,
                          int emb_frames, int n_threads);

#endif
