/* core/clip.h - CLIP text encoder (transformers CLIPTextModel), forward and backward.
 *
 * ids (B, L) -> token_embedding + position_embedding -> num_hidden_layers pre-norm causal
 * transformer layers (layer_norm1, self_attn {q,k,v,out}_proj, residual; layer_norm2,
 * mlp fc1 -> hidden_act -> fc2, residual) -> final_layer_norm = last_hidden_state (B, L, D).
 * Attention is causal (key j > query i masked) with scale HS^-0.5; no padding mask, as
 * diffusers' pipelines call the encoder with attention_mask=None.
 * Tensor names are transformers' under a prefix (normally "text_model"):
 *   <p>.embeddings.token_embedding.weight (V, D), <p>.embeddings.position_embedding.weight (P, D),
 *   <p>.encoder.layers.i.{layer_norm1,layer_norm2}.{weight,bias} (D),
 *   <p>.encoder.layers.i.self_attn.{q,k,v,out}_proj.{weight (D, D), bias (D)},
 *   <p>.encoder.layers.i.mlp.fc1.{weight (I, D), bias (I)}, .mlp.fc2.{weight (D, I), bias (D)},
 *   <p>.final_layer_norm.{weight,bias} (D). */
#ifndef RL_CORE_CLIP_H
#define RL_CORE_CLIP_H

#include "core/arena.h"
#include "core/err.h"
#include "core/weights.h"
#include "io/config_clip.h"

typedef struct {
    const float *ln1_w, *ln1_b;              // (D), (D)
    const float *q_w, *q_b, *k_w, *k_b;      // (D, D), (D)
    const float *v_w, *v_b, *o_w, *o_b;      // (D, D), (D)
    const float *ln2_w, *ln2_b;              // (D), (D)
    const float *fc1_w, *fc1_b;              // (I, D), (I)
    const float *fc2_w, *fc2_b;              // (D, I), (D)
} rl_clip_layer;

/* Parameters (or, bound to a gradient table with the same names, their gradients). */
typedef struct {
    rl_clip_cfg cfg;
    const float *tok_emb;                    // (V, D)
    const float *pos_emb;                    // (P, D), P = max_position_embeddings
    rl_clip_layer *layers;                   // (num_hidden_layers), owned (rl_clip_free)
    const float *lnf_w, *lnf_b;              // (D), (D)
} rl_clip;

/* One layer's activations, T = B * L tokens. */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;        // (T, D), (T), (T)
    float *q, *k, *v;                        // (T, D) each, heads interleaved (h * HS + e)
    float *att;                              // (B, NH, L, L) softmax probabilities
    float *attn_y;                           // (T, D) attention output before out_proj
    float *res1;                             // (T, D) x + out_proj(attn_y)
    float *ln2, *ln2_mean, *ln2_rstd;        // (T, D), (T), (T)
    float *fc1;                              // (T, I) before the activation
    float *h;                                // (T, I) after it
    float *res2;                             // (T, D) layer output
} rl_clip_layer_acts;

typedef struct {
    int B, L, keep;
    float *emb;                              // (T, D) token + position embeddings
    rl_clip_layer_acts *layers;              // (num_hidden_layers); all alias one set unless keep
    float *lnf_mean, *lnf_rstd;              // (T), (T)
} rl_clip_acts;

/* Points m at the tensors under prefix ("text_model", or "" for none) and checks each shape
 * against cfg. Errors (RL_E_MISSING, RL_E_SHAPE, RL_E_NOMEM) name the tensor with expected
 * and found shapes. m->layers is allocated here; call rl_clip_free even on failure.
 * ws entries are marked used (see rl_weights_check_all_used). */
rl_status rl_clip_bind(rl_clip *m, rl_weights *ws, const char *prefix, const rl_clip_cfg *cfg,
                       rl_err *err);
void rl_clip_free(rl_clip *m);               // idempotent, safe on a zeroed struct
size_t rl_clip_n_params(const rl_clip_cfg *cfg);

/* Carves a's buffers for B sequences of L tokens from arena. keep = 1 keeps every layer's
 * activations (training, rl_clip_bwd); keep = 0 reuses one layer's set (inference).
 * The arena may fail (check it with rl_arena_check before rl_clip_fwd). */
void rl_clip_plan(const rl_clip *m, rl_clip_acts *a, rl_arena *arena, int B, int L, int keep);

/* RL_E_PARAM unless every id is in [0, V) and 1 <= L <= max_position_embeddings. */
rl_status rl_clip_check_ids(const rl_clip *m, const int *ids, int B, int L, rl_err *err);

/* out (B, L, D) = last_hidden_state for ids (B, L) (validated by rl_clip_check_ids); a was
 * planned for (B, L). out must not alias a's buffers. */
void rl_clip_fwd(const rl_clip *m, rl_clip_acts *a, float *out, const int *ids, int B, int L);

/* Backward of rl_clip_fwd from dout (B, L, D); a must come from a keep = 1 plan and hold the
 * forward of the same ids. Accumulates into every non-NULL pointer of g (same layout as m;
 * the const is cast away: g's buffers must be writable). Scratch comes from arena and is
 * released before return. */
void rl_clip_bwd(const rl_clip *m, rl_clip *g, const rl_clip_acts *a, rl_arena *arena,
                 const float *dout, const int *ids, int B, int L);

#endif
