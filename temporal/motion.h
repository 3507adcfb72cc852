/* temporal/motion.h - one AnimateDiff motion module (diffusers AnimateDiffTransformer3D /
 * TransformerTemporalModel as placed in UNetMotionModel):
 *   GroupNorm(G, C, eps 1e-6) over (C, F, H, W) per video, proj_in (Linear C -> inner),
 *   transformer_blocks.i (BasicTransformerBlock: self-attention across the F frames at every
 *   spatial position, a second self-attention (double_self_attention), GEGLU feed-forward; a
 *   sinusoidal position encoding over the frame index added after norm1 and norm2),
 *   proj_out (Linear inner -> C), residual.
 * Tensor names under the module prefix ("down_blocks.0.motion_modules.1"): norm, proj_in,
 * transformer_blocks.i.{norm1,attn1,norm2,attn2,norm3,ff.net.0.proj,ff.net.2,pos_embed.pe},
 * proj_out. */
#ifndef RL_TEMPORAL_MOTION_H
#define RL_TEMPORAL_MOTION_H

#include "core/arena.h"
#include "core/err.h"
#include "core/layers.h"
#include "core/weights.h"

typedef struct {
    int C;              // in_channels
    int NH;             // num_attention_heads (head dim = C / NH)
    int G;              // norm_num_groups (UNetMotionModel passes the UNet's norm_num_groups)
    int n_layers;       // transformer blocks
    int max_seq;        // num_positional_embeddings (motion_max_seq_length); frames <= max_seq
    int Ckv;            // temporal cross-attention dim (0: none, the AnimateDiff default)
    int double_self;    // attn2 is a self-attention (1 in every released motion module)
    float pe_scale;     // positional table scale when none is stored (0: 1)
} rl_motion_cfg;

typedef struct {
    int C, inner, NH, HS, max_seq;
    rl_gnorm norm;
    rl_fc proj_in, proj_out;
    rl_tblock *blocks; int n_blocks;     // owned (rl_motion_free)
} rl_motion;

/* What forward keeps for backward (training). Pointers into an arena. */
typedef struct {
    float *xp;                           // (N, C, F, S) permuted input
    float *gn, *gn_mean, *gn_rstd;       // (N, C, F, S), (N, G)
    float *gs;                           // (N, S, F, C) normed, permuted
    float *seq;                          // (N*S, F, inner) after proj_in
    float **h;                           // block outputs (N*S, F, inner)
    rl_tblock_acts *blocks;
} rl_motion_acts;

/* Points m at the tensors under `prefix` and checks every shape against cfg. */
rl_status rl_motion_bind(rl_motion *m, rl_weights *ws, const char *prefix,
                         const rl_motion_cfg *cfg, rl_err *err);
void rl_motion_free(rl_motion *m);       // idempotent

/* out, x: (N*F, C, H, W), frames folded into the batch as the UNet holds them (video n,
 * frame f at batch index n*F + f). out may equal x. acts NULL: inference (see layers.h). */
void rl_motion_fwd(const rl_motion *m, rl_motion_acts *a, rl_arena *arena, float *out,
                   const float *x, int N, int F, int H, int W);
/* Accumulates into dx (N*F, C, H, W) and the gradient mirror g (NULL: no weight gradients);
 * a from a training forward (acts != NULL). */
void rl_motion_bwd(const rl_motion *m, const rl_motion *g, const rl_motion_acts *a,
                   rl_arena *arena, float *dx, const float *dout, const float *x, int N, int F,
                   int H, int W);

/* Memory plans: mirrors of the arena allocations of rl_motion_fwd / rl_motion_bwd (rl_plan,
 * core/layers.h); the backward plan assumes dx is asked for. */
void rl_motion_plan_fwd(const rl_motion *m, rl_plan *p, int train, int N, int F, int H, int W);
void rl_motion_plan_bwd(const rl_motion *m, rl_plan *p, int N, int F, int H, int W);

#endif
