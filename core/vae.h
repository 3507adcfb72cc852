/* core/vae.h - AutoencoderKL (diffusers): encoder to a diagonal Gaussian posterior, decoder
 * back to pixels. Forward and backward.
 *
 * Encoder: conv_in; down_blocks.i (DownEncoderBlock2D: layers_per_block ResnetBlock2D, then
 *   downsamplers.0 = Downsample2D with F.pad (0, 1, 0, 1) and a stride-2 3x3 conv, except the
 *   last block); mid_block (resnets.0, attentions.0 = Attention with group_norm, 1 head,
 *   residual, resnets.1); conv_norm_out (GroupNorm, eps 1e-6) + SiLU; conv_out to
 *   2 * latent_channels; quant_conv (1x1). mean, logvar = chunk(2); logvar clamped to
 *   [-30, 20].
 * Decoder: post_quant_conv (1x1); conv_in; mid_block; up_blocks.i (UpDecoderBlock2D over
 *   reversed block_out_channels: layers_per_block + 1 resnets, then upsamplers.0 = nearest 2x +
 *   3x3 conv, except the last block); conv_norm_out + SiLU; conv_out.
 * All resnets: no time embedding, GroupNorm(norm_num_groups, eps 1e-6), output scale 1.
 * Latents given to the decoder are already divided by scaling_factor (as diffusers'
 * pipelines do before vae.decode). Images are (B, C, H, W); for video, frames are decoded one
 * at a time by the caller (B = 1) so memory does not grow with the clip length.
 *
 * Internally each half is a flat list of stages (conv, resnet, attention, down/upsample,
 * group norm + SiLU), each taking the previous stage's output: forward walks it in order,
 * backward in reverse, and the training forward keeps each stage's input. */
#ifndef RL_CORE_VAE_H
#define RL_CORE_VAE_H

#include "core/arena.h"
#include "core/err.h"
#include "core/layers.h"
#include "core/weights.h"
#include "io/config_vae.h"

typedef enum { RL_VAE_CONV, RL_VAE_RESNET, RL_VAE_ATTN, RL_VAE_DOWN, RL_VAE_UP, RL_VAE_GNSILU }
    rl_vae_kind;

/* One stage: a layer and the channel counts around it. */
typedef struct {
    rl_vae_kind kind;
    int C, OC;                   // input and output channels
    rl_conv conv;                // RL_VAE_CONV
    rl_resnet resnet;            // RL_VAE_RESNET
    rl_attention attn;           // RL_VAE_ATTN (image form)
    rl_downsample down;          // RL_VAE_DOWN
    rl_upsample up;              // RL_VAE_UP
    rl_gnorm gn;                 // RL_VAE_GNSILU
} rl_vae_stage;

typedef struct {
    rl_vae_stage *st; int n;     // owned (rl_vae_free)
} rl_vae_path;

/* Parameters (or, bound to a gradient table with the same names, their gradients). */
typedef struct {
    rl_vae_cfg cfg;
    rl_vae_path enc;             // conv_in ... quant_conv: (B, in_channels, H, W) -> (B, 2 lc, H/s, W/s)
    rl_vae_path dec;             // post_quant_conv ... conv_out: (B, lc, h, w) -> (B, out_channels, h s, w s)
} rl_vae;

/* What the training forward keeps for one path. */
typedef struct {
    int B, H, W;                 // input geometry
    float **x;                   // (n + 1) stage inputs; x[n] is the path's output
    int *Hs, *Ws;                // (n + 1) their spatial sizes
    rl_resnet_acts *res;         // (n) used by resnet stages
    rl_attention_acts *att;      // (n) used by attention stages
    rl_upsample_acts *up;        // (n) used by upsample stages
    float **gn_mean, **gn_rstd;  // (n) GroupNorm stats of GNSILU stages (B, G)
    float **gn_out;              // (n) normalised values of GNSILU stages, before SiLU
} rl_vae_acts;

/* Binds every tensor of an AutoencoderKL under prefix ("" for a vae/ folder of its own) and
 * checks its shape against cfg. Errors (RL_E_MISSING, RL_E_SHAPE, RL_E_NOMEM) name the
 * tensor with expected and found shapes. Call rl_vae_free even on failure. */
rl_status rl_vae_bind(rl_vae *v, rl_weights *ws, const char *prefix, const rl_vae_cfg *cfg,
                      rl_err *err);
void rl_vae_free(rl_vae *v);     // idempotent, safe on a zeroed struct
size_t rl_vae_n_params(const rl_vae *v);

/* ---- inference: temporaries from arena, released before return ---- */

/* z (B, latent_channels, h, w) already divided by scaling_factor ->
 * img (B, out_channels, h s, w s), s = 2^(n_blocks - 1), roughly in [-1, 1]. */
void rl_vae_decode(const rl_vae *v, rl_arena *arena, float *img, const float *z, int B, int h,
                   int w);
/* x (B, in_channels, H, W), H and W multiples of s -> mean, logvar (B, latent_channels,
 * H/s, W/s) of the posterior (logvar clamped to [-30, 20]). */
void rl_vae_encode(const rl_vae *v, rl_arena *arena, float *mean, float *logvar, const float *x,
                   int B, int H, int W);

/* A decoded image (3, H, W) in [-1, 1] to interleaved RGB: (x / 2 + 0.5).clamp(0, 1), as
 * diffusers' postprocess, into frame (H, W, 3) floats when not NULL, and bytes round(255 v)
 * (half to even, as numpy_to_pil) into rgb (H, W, 3). */
void rl_vae_to_rgb(uint8_t *rgb, float *frame, const float *img, int H, int W);

/* ---- training: the forward keeps acts (in arena), the backward accumulates ---- */

/* As rl_vae_decode, keeping what rl_vae_decode_bwd needs in *a (carved from arena; the
 * caller resets the arena after the backward). */
void rl_vae_decode_train(const rl_vae *v, rl_vae_acts *a, rl_arena *arena, float *img,
                         const float *z, int B, int h, int w);
/* dz (B, lc, h, w) += d/dz, and g (bound like v to gradient buffers) += d/dparams, from
 * dimg (B, out_channels, h s, w s). dz may be NULL. */
void rl_vae_decode_bwd(const rl_vae *v, const rl_vae *g, const rl_vae_acts *a, rl_arena *arena,
                       float *dz, const float *dimg);
/* As rl_vae_encode, keeping acts. */
void rl_vae_encode_train(const rl_vae *v, rl_vae_acts *a, rl_arena *arena, float *mean,
                         float *logvar, const float *x, int B, int H, int W);
/* dx may be NULL; dmean/dlogvar (B, lc, H/s, W/s); the clamp of logvar passes no gradient
 * where it was active. */
void rl_vae_encode_bwd(const rl_vae *v, const rl_vae *g, const rl_vae_acts *a, rl_arena *arena,
                       float *dx, const float *dmean, const float *dlogvar);

#endif
