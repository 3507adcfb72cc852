/* tools/shapes/clipscore.h - the CLIP pair of the default model: its forward, shared by the
 * trainer (`reel train clip`, tools/train_clip.c) and the CLIP score of `reel eval`.
 *
 * The pair (Radford et al. 2021, trained contrastively on shapes-world captions and clips):
 *   text:  ids (L) -> CLIPTextModel (text_model.*, core/clip.h) -> last_hidden_state at the
 *          first end token (transformers' pooled output) -> text_projection (Linear, no bias)
 *   video: RL_CLIPV_FRAMES frames of the clip, evenly spaced (frame k (F - 1) / (KF - 1)),
 *          stacked on channels (3 KF, H, W), values byte / 127.5 - 1 -> RL_CLIPV_NCONV x
 *          [conv 3x3 stride 2 pad 1 + SiLU] -> mean over space -> visual_projection (Linear,
 *          no bias)
 *   score: cosine of the two projections (the logits the trainer's InfoNCE sees, before the
 *          learned scale exp(logit_scale)).
 * On disk (written by the trainer): text_encoder/{config.json, model.safetensors} (transformers
 * layout) and clip_video/model.safetensors holding visual.convs.i.{weight, bias},
 * visual_projection.weight (P, C), text_projection.weight (P, D), logit_scale (1), beside
 * clip_video/config.json ({"frames": 4, "channels": [12, 32, 64, 64, 64], "kernel": 3,
 * "stride": 2, "activation": "silu", "pool": "mean", "projection_dim": P, "sample_size": 64,
 * "text_pooling": "first_eos"}). The scorer resizes frames of another size to sample_size
 * (bilinear, half-pixel centres) so that the encoder sees the scale it was trained at. */
#ifndef RL_TOOLS_SHAPES_CLIPSCORE_H
#define RL_TOOLS_SHAPES_CLIPSCORE_H

#include <stdint.h>

#include "core/arena.h"
#include "core/clip.h"
#include "core/err.h"
#include "core/layers.h"
#include "core/weights.h"

#define RL_CLIPV_FRAMES 4         // frames the video encoder sees
#define RL_CLIPV_NCONV 4          // conv layers of the video encoder

/* Channels into and out of each conv: { 3 RL_CLIPV_FRAMES, 32, 64, 64, 64 }. */
extern const int rl_clipv_ch[RL_CLIPV_NCONV + 1];

// ---- the pair's parameters and forward (the trainer binds them to gradients too) ---------

/* Parameters (or, bound to a gradient table with the same names, their gradients). */
typedef struct {
    rl_clip text;
    rl_conv conv[RL_CLIPV_NCONV];
    rl_fc tproj;                  // text_projection: (P, D)
    rl_fc vproj;                  // visual_projection: (P, C) with C = rl_clipv_ch[NCONV]
    const float *logit_scale;     // (1)
} rl_clippair;

/* Binds every tensor of the pair (names above, text under "text_model") with projection width
 * P. Errors as rl_clip_bind (RL_E_MISSING, RL_E_SHAPE, RL_E_NOMEM). Call rl_clippair_free even
 * on failure. */
rl_status rl_clippair_bind(rl_clippair *m, rl_weights *ws, const rl_clip_cfg *cfg, int P,
                           rl_err *err);
void rl_clippair_free(rl_clippair *m);        // idempotent

/* Frame of F the video encoder takes as its k-th input (k < RL_CLIPV_FRAMES). */
int rl_clipv_keyframe(int k, int F);

/* Side after each conv: hs[0] = H, hs[i + 1] = (hs[i] - 1) / 2 + 1 (3x3, stride 2, pad 1). */
void rl_clipv_sides(int hs[RL_CLIPV_NCONV + 1], int H);

/* Video forward for B inputs x (B, 3 KF, H, W): c[i] and a[i] (B, C_{i+1}, H_{i+1}, W_{i+1})
 * receive every conv output and its SiLU (the trainer's backward reads them), pool (B, C) the
 * spatial mean of the last, vu (B, P) its projection. Scratch from arena, released. */
void rl_clipv_fwd(const rl_clippair *m, rl_arena *arena, float *const *c, float *const *a,
                  float *pool, float *vu, const float *x, int B, int H, int W);

/* Text head: tp (B, D) the hidden state hid (B, L, D) at token eos[b], tu (B, P) its
 * projection. */
void rl_clipt_head(const rl_clippair *m, float *tp, float *tu, const float *hid, const int *eos,
                   int B, int L);

/* Position of the first end token in ids (L); L - 1 when there is none. */
int rl_clipt_first_eos(const int *ids, int L, int eos_id);

/* n (B, P) = u / |u| per row (n may alias u). */
void rl_clip_l2norm(float *n, const float *u, int B, int P);

// ---- the scorer: a model folder's pair, for `reel eval` -----------------------------------

typedef struct rl_clipscore rl_clipscore;    // opaque

/* Opens model_dir/{tokenizer, text_encoder, clip_video}. *cs is owned by the caller until
 * rl_clipscore_close; NULL on failure. Errors: RL_E_MISSING (no clip_video/ or another file
 * absent: the message names it), RL_E_FORMAT (malformed files, or a clip_video/config.json
 * describing another architecture than this file's), RL_E_SHAPE, RL_E_IO, RL_E_NOMEM.
 * Not thread-safe for one scorer; separate scorers are independent. */
rl_status rl_clipscore_open(rl_clipscore **cs, const char *model_dir, rl_err *err);
void rl_clipscore_close(rl_clipscore **cs);   // sets *cs to NULL; safe on NULL

int rl_clipscore_dim(const rl_clipscore *cs);      // P
int rl_clipscore_size(const rl_clipscore *cs);     // the encoder's frame side (sample_size)

/* emb (P): the prompt's L2-normalised projection. Errors: RL_E_PARAM (invalid UTF-8, a prompt
 * too long), RL_E_NOMEM. */
rl_status rl_clipscore_text(rl_clipscore *cs, const char *prompt, float *emb, rl_err *err);

/* emb (P): the clip's L2-normalised projection, from frames (F, H, W, 3) RGB bytes.
 * Errors: RL_E_PARAM (F < 1, a side under 8), RL_E_NOMEM. */
rl_status rl_clipscore_video(rl_clipscore *cs, const uint8_t *frames, int F, int H, int W,
                             float *emb, rl_err *err);

/* The cosine of two normalised embeddings (P). */
float rl_clipscore_cos(const float *a, const float *b, int P);

#endif
