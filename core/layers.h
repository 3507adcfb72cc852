/* core/layers.h - the building blocks of the UNet and the VAE, mirroring diffusers modules.
 *
 * Pattern (llm.c, see STYLE.md): a params struct of `const float *` into an rl_weights table,
 * filled by `bind(prefix)` which checks every shape against the sizes given (from config.json),
 * and a forward that takes its activations from an rl_arena.
 *
 * Forward calling convention, shared by every layer below:
 *     rl_<layer>_fwd(layer, acts, arena, out, inputs..., sizes)
 *   - acts == NULL: inference. Temporaries come from `arena` inside a mark that the layer
 *     resets before returning, so only `out` (caller-owned) survives. Attention uses the
 *     chunked kernel (bounded memory).
 *   - acts != NULL: training. Every value the backward needs is carved from `arena` into
 *     *acts and kept (the caller resets the arena after the backward).
 *   - out never aliases an input unless the comment says so.
 * Backward: rl_<layer>_bwd(layer, grads, acts, dx..., dout, inputs..., sizes) accumulates (+=)
 *   into dx and into the gradient mirror `grads` (the same struct type, bound with bind() to a
 *   table of gradient buffers; its pointers are written through). Any dx may be NULL.
 *
 * Binding: rl_<layer>_bind(layer, ws, prefix, cfg..., err) points the layer at tensors of ws
 *   (not copied: ws must outlive the layer) and returns RL_E_MISSING / RL_E_SHAPE naming the
 *   tensor (rl_weights_get), RL_E_PARAM for sizes that cannot be split (groups, heads), or
 *   RL_E_NOMEM; layers with a block array own it and have a _free (idempotent).
 * Thread-safety: a bound layer is read-only; calls on one arena are not thread-safe.
 *
 * Layouts: images are (B, C, H, W) with B = N*F for video (frames folded into the batch, as
 * diffusers does); sequences are (B, T, C). S = H*W. */
#ifndef RL_CORE_LAYERS_H
#define RL_CORE_LAYERS_H

#include "core/arena.h"
#include "core/err.h"
#include "core/weights.h"

// ---- leaf layers -----------------------------------------------------------------------

/* nn.Linear: w (OC, C), b (OC) or NULL. */
typedef struct { int C, OC; const float *w, *b; } rl_fc;
/* bias: 1 = '<prefix>.bias' required, 0 = must be absent (not bound, so an unexpected bias
 * is reported by rl_weights_check_all_used). */
rl_status rl_fc_bind(rl_fc *l, rl_weights *ws, const char *prefix, int C, int OC, int bias,
                     rl_err *err);
/* out (T, OC) = x (T, C) w^T + b. */
void rl_fc_fwd(const rl_fc *l, float *out, const float *x, int T);
void rl_fc_bwd(const rl_fc *l, const rl_fc *g, float *dx, const float *dout, const float *x, int T);

/* nn.Conv2d (groups 1, dilation 1) with asymmetric zero padding: the input is padded by
 * pad_t/pad_b rows and pad_l/pad_r columns (Downsample2D of the VAE: (0, 1, 0, 1)).
 * w (OC, C, K, K), b (OC) or NULL. */
typedef struct {
    int C, OC, K, stride;
    int pad_t, pad_b, pad_l, pad_r;
    const float *w, *b;
} rl_conv;
rl_status rl_conv_bind(rl_conv *l, rl_weights *ws, const char *prefix, int C, int OC, int K,
                       int stride, int pad, int bias, rl_err *err);
void rl_conv_out_hw(const rl_conv *l, int H, int W, int *Ho, int *Wo);
/* Floats of im2col scratch rl_conv_fwd/bwd take from the arena (released on return). */
size_t rl_conv_scratch_floats(const rl_conv *l, int B, int H, int W, int n_threads);
/* out (B, OC, Ho, Wo) = conv(x (B, C, H, W)). Scratch (im2col) from arena, released. */
void rl_conv_fwd(const rl_conv *l, rl_arena *arena, float *out, const float *x, int B, int H, int W);
void rl_conv_bwd(const rl_conv *l, const rl_conv *g, rl_arena *arena, float *dx,
                 const float *dout, const float *x, int B, int H, int W);

/* nn.GroupNorm(G, C, eps, affine): w, b (C). */
typedef struct { int C, G; float eps; const float *w, *b; } rl_gnorm;
rl_status rl_gnorm_bind(rl_gnorm *l, rl_weights *ws, const char *prefix, int C, int G, float eps,
                        rl_err *err);

/* nn.LayerNorm(C, eps) with elementwise affine: w, b (C). */
typedef struct { int C; float eps; const float *w, *b; } rl_lnorm;
rl_status rl_lnorm_bind(rl_lnorm *l, rl_weights *ws, const char *prefix, int C, float eps,
                        rl_err *err);

// ---- ResnetBlock2D ------------------------------------------------------------------------

/* diffusers ResnetBlock2D (time_embedding_norm "default", non-linearity silu, no up/down):
 *   h = conv1(silu(norm1(x))); h += time_emb_proj(silu(temb))[:, :, None, None] (if Ct > 0)
 *   h = conv2(silu(norm2(h)))   (dropout: identity at inference)
 *   out = (shortcut(x) + h) / output_scale_factor, shortcut = conv_shortcut (1x1) when
 *   C != OC (or use_in_shortcut), identity otherwise.
 * Ct = temb_channels (0: no time embedding, the VAE). */
typedef struct {
    int C, OC, Ct;
    float out_scale;            // output_scale_factor
    rl_gnorm norm1, norm2;
    rl_conv conv1, conv2;
    rl_fc time_emb_proj;        // (OC, Ct) when Ct > 0
    int has_shortcut;
    rl_conv conv_shortcut;      // 1x1, (OC, C)
} rl_resnet;

typedef struct {
    int C, OC, Ct;              // temb_channels; 0 = none
    int G, G_out;               // groups of norm1 and norm2 (groups_out defaults to groups)
    float eps;                  // both norms
    float out_scale;            // output_scale_factor (1.0 in the UNet and VAE)
    int use_in_shortcut;        // -1: C != OC (the default), 0/1: forced
} rl_resnet_cfg;

typedef struct {
    float *n1, *mean1, *rstd1;  // norm1 out (B, C, S), (B, G)
    float *a1;                  // silu(n1) (B, C, S)
    float *t;                   // time_emb_proj out (B, OC) (silu(temb) in ta)
    float *ta;                  // silu(temb) (B, Ct)
    float *h1;                  // conv1 out + temb (B, OC, S)
    float *n2, *mean2, *rstd2;  // norm2 out
    float *a2;                  // silu(n2)
} rl_resnet_acts;

rl_status rl_resnet_bind(rl_resnet *r, rl_weights *ws, const char *prefix, const rl_resnet_cfg *cfg,
                         rl_err *err);
/* x (B, C, H, W), temb (B, Ct) or NULL when Ct == 0; out (B, OC, H, W). */
void rl_resnet_fwd(const rl_resnet *r, rl_resnet_acts *a, rl_arena *arena, float *out,
                   const float *x, const float *temb, int B, int H, int W);
void rl_resnet_bwd(const rl_resnet *r, const rl_resnet *g, const rl_resnet_acts *a,
                   rl_arena *arena, float *dx, float *dtemb, const float *dout, const float *x,
                   const float *temb, int B, int H, int W);

// ---- Attention (diffusers Attention, AttnProcessor semantics) -------------------------------

/* to_q (inner, Cq), to_k/to_v (inner, Ckv), to_out.0 (Cq, inner) + bias; inner = NH * HS;
 * scale = HS^-0.5. Optional group_norm over the (B, Cq, S) input of the image form and a
 * residual connection, output divided by rescale_output_factor (the VAE mid-block form). */
typedef struct {
    int Cq, Ckv, NH, HS;
    rl_fc to_q, to_k, to_v, to_out;
    int has_norm; rl_gnorm group_norm;
    int residual;
    float rescale;              // rescale_output_factor
} rl_attention;

typedef struct {
    int Cq, Ckv;                // query_dim, cross_attention_dim (0 = Cq, self-attention)
    int NH, HS;                 // heads, dim_head
    int qkv_bias;               // bias of to_q/to_k/to_v (diffusers `bias`)
    int out_bias;               // bias of to_out.0 (diffusers `out_bias`, default 1)
    int norm_groups;            // > 0: group_norm with this many groups (eps norm_eps)
    float norm_eps;
    int residual;               // residual_connection
    float rescale;              // rescale_output_factor (1.0)
} rl_attention_cfg;

typedef struct {
    float *xn, *mean, *rstd;    // image form: group-normed input (B, Cq, S)
    float *xs;                  // image form: (B, S, Cq) sequence
    float *q, *k, *v;           // (B, Tq, inner), (B, Tk, inner)
    float *att;                 // (B, NH, Tq, Tk) probabilities
    float *o;                   // (B, Tq, inner) before to_out
} rl_attention_acts;

/* Query rows per chunk of the inference attention kernel (rl_attn_fwd_chunked). */
#define RL_ATTN_CHUNK 256

rl_status rl_attention_bind(rl_attention *l, rl_weights *ws, const char *prefix,
                            const rl_attention_cfg *cfg, rl_err *err);
/* Sequence form: x (B, Tq, Cq), ctx (B / ctx_rep, Tk, Ckv) or NULL for self-attention
 * (then Tk = Tq). Batch b attends to ctx[b / ctx_rep] (one text embedding shared by the
 * frames of a video: ctx_rep = F; per-frame embeddings: ctx_rep = 1).
 * out (B, Tq, Cq); with residual, out = (attn + x) / rescale. out may equal x. */
void rl_attention_fwd(const rl_attention *l, rl_attention_acts *a, rl_arena *arena, float *out,
                      const float *x, const float *ctx, int B, int Tq, int Tk, int ctx_rep);
void rl_attention_bwd(const rl_attention *l, const rl_attention *g, const rl_attention_acts *a,
                      rl_arena *arena, float *dx, float *dctx, const float *dout, const float *x,
                      const float *ctx, int B, int Tq, int Tk, int ctx_rep);
/* Image form (VAE): x (B, Cq, H, W) -> group_norm -> (B, S, Cq) -> self-attention ->
 * (B, Cq, H, W), then residual and rescale as configured. out may equal x. */
void rl_attention_fwd_image(const rl_attention *l, rl_attention_acts *a, rl_arena *arena,
                            float *out, const float *x, int B, int H, int W);
void rl_attention_bwd_image(const rl_attention *l, const rl_attention *g,
                            const rl_attention_acts *a, rl_arena *arena, float *dx,
                            const float *dout, const float *x, int B, int H, int W);

// ---- FeedForward (GEGLU) --------------------------------------------------------------------

/* diffusers FeedForward(dim, mult=4, activation_fn="geglu"): net.0.proj (2 I, C),
 * GEGLU (hidden * gelu(gate)), net.2 (C, I). I = inner dim (C * mult). */
typedef struct { int C, I; rl_fc proj, out; } rl_ff;
typedef struct { float *p, *g; } rl_ff_acts;   // proj out (T, 2I), geglu out (T, I)
rl_status rl_ff_bind(rl_ff *l, rl_weights *ws, const char *prefix, int C, int I, rl_err *err);
void rl_ff_fwd(const rl_ff *l, rl_ff_acts *a, rl_arena *arena, float *out, const float *x, int T);
void rl_ff_bwd(const rl_ff *l, const rl_ff *g, const rl_ff_acts *a, rl_arena *arena, float *dx,
               const float *dout, const float *x, int T);
/* Rows per chunk of the inference forward over T rows (at most 4 Mi floats of projection). */
int rl_ff_chunk_rows(const rl_ff *l, int T);

// ---- BasicTransformerBlock -----------------------------------------------------------------

/* diffusers BasicTransformerBlock, norm_type "layer_norm":
 *   h = x + attn1(pe(norm1(x)))                         self-attention
 *   h = h + attn2(pe(norm2(h)), ctx)                    cross-attention (self when Ckv == 0:
 *                                                       double_self_attention, motion modules)
 *   out = h + ff(norm3(h))
 * pe: sinusoidal positional embedding over the sequence axis (positional_embeddings=
 * "sinusoidal", motion modules), added after the norm; absent when pe_len == 0. */
typedef struct {
    int C;
    rl_lnorm norm1, norm2, norm3;
    rl_attention attn1, attn2;
    int has_attn2, attn2_self;
    rl_ff ff;
    int pe_len;                 // num_positional_embeddings (0 = none)
    const float *pe;            // (1, pe_len, C) '<prefix>.pos_embed.pe' when stored, else NULL
                                // (then computed: diffusers' buffer holds the same values)
    float pe_scale;             // scale of the computed table (1 but in training)
} rl_tblock;

typedef struct {
    int C;                      // dim
    int NH, HS;                 // heads, head dim
    int Ckv;                    // cross_attention_dim (0: no cross-attention)
    int double_self;            // attn2 is a second self-attention
    int attn_bias;              // attention_bias (to_q/k/v bias)
    int ff_inner;               // 0: 4 * C
    int pe_len;                 // sinusoidal positional embedding length (0: none)
    float pe_scale;             // the computed table's scale (0: 1) when none is stored
    float ln_eps;               // 1e-5
} rl_tblock_cfg;

typedef struct {
    float *n1, *mean1, *rstd1, *h1;   // norm1 (+pe), its stats, residual stream after attn1
    float *n2, *mean2, *rstd2, *h2;
    float *n3, *mean3, *rstd3;
    rl_attention_acts attn1, attn2;
    rl_ff_acts ff;
} rl_tblock_acts;

rl_status rl_tblock_bind(rl_tblock *l, rl_weights *ws, const char *prefix, const rl_tblock_cfg *cfg,
                         rl_err *err);
/* x, out (B, T, C); ctx as rl_attention_fwd. out may equal x. */
void rl_tblock_fwd(const rl_tblock *l, rl_tblock_acts *a, rl_arena *arena, float *out,
                   const float *x, const float *ctx, int B, int T, int Tk, int ctx_rep);
void rl_tblock_bwd(const rl_tblock *l, const rl_tblock *g, const rl_tblock_acts *a,
                   rl_arena *arena, float *dx, float *dctx, const float *dout, const float *x,
                   const float *ctx, int B, int T, int Tk, int ctx_rep);
/* transformer_blocks.0 .. n-1, as Transformer2DModel and the motion module hold them. */
/* Binds '<prefix>.transformer_blocks.<i>' into a fresh array *blocks of n (the caller owns it:
 * free(); on failure it is freed here and *blocks is NULL). RL_E_NOMEM, or the block's error. */
rl_status rl_tblock_stack_bind(rl_tblock **blocks, rl_weights *ws, const char *prefix, int n,
                               const rl_tblock_cfg *cfg, rl_err *err);
/* Applies the n blocks in turn to x (B, T, C); ctx as rl_tblock_fwd. Returns the output
 * (B, T, C) from the arena (x itself when n == 0). Training (h, acts non-NULL): *h and *acts
 * receive arrays of the n block outputs and activations, from the arena; inference: one
 * buffer serves every block. */
const float *rl_tblock_stack_fwd(const rl_tblock *blocks, int n, float ***h,
                                 rl_tblock_acts **acts, rl_arena *arena, const float *x,
                                 const float *ctx, int B, int T, int Tk, int ctx_rep);
/* Backward of rl_tblock_stack_fwd (training): dh (B, T, C), the gradient of its output, is
 * used as scratch; returns the gradient of x (B, T, C): dh or a buffer from the arena. g: the
 * gradient mirror of blocks or NULL; dctx accumulates as in rl_tblock_bwd. */
float *rl_tblock_stack_bwd(const rl_tblock *blocks, const rl_tblock *g, int n, float *const *h,
                           const rl_tblock_acts *acts, rl_arena *arena, float *dctx, float *dh,
                           const float *x, const float *ctx, int B, int T, int Tk, int ctx_rep);
/* diffusers SinusoidalPositionalEmbedding table pe (T, C) times scale: pe[t, 2i] =
 * scale sin(t w_i), pe[t, 2i+1] = scale cos(t w_i), w_i = exp(2i * -ln(10000) / C), in float32
 * as torch builds it (scale 1: diffusers' table; see rl_unet_cfg.pe_scale). */
void rl_sinusoidal_pe_table(float *pe, int T, int C, float scale);

// ---- Transformer2DModel ------------------------------------------------------------------

/* diffusers Transformer2DModel (continuous input): GroupNorm(G, C, eps 1e-6), proj_in
 * (1x1 conv, or Linear when use_linear_projection), transformer_blocks, proj_out, residual. */
typedef struct {
    int C, inner, linear;
    rl_gnorm norm;
    rl_conv proj_in_c, proj_out_c;
    rl_fc proj_in_l, proj_out_l;
    rl_tblock *blocks; int n_blocks;   // owned array (rl_xformer_free)
} rl_xformer;

typedef struct {
    int C, G, NH, HS, Ckv, n_layers;
    int linear;                 // use_linear_projection
    int attn_bias;
    float norm_eps;             // 1e-6
} rl_xformer_cfg;

typedef struct {
    float *n, *mean, *rstd;     // (B, C, S)
    float *seq;                 // (B, S, inner) after proj_in
    float **h;                  // block outputs (B, S, inner), n_blocks of them
    rl_tblock_acts *blocks;
} rl_xformer_acts;

rl_status rl_xformer_bind(rl_xformer *l, rl_weights *ws, const char *prefix,
                          const rl_xformer_cfg *cfg, rl_err *err);
void rl_xformer_free(rl_xformer *l);
/* x, out (B, C, H, W), out not aliasing x; ctx (B / ctx_rep, Tk, Ckv). */
void rl_xformer_fwd(const rl_xformer *l, rl_xformer_acts *a, rl_arena *arena, float *out,
                    const float *x, const float *ctx, int B, int H, int W, int Tk, int ctx_rep);
void rl_xformer_bwd(const rl_xformer *l, const rl_xformer *g, const rl_xformer_acts *a,
                    rl_arena *arena, float *dx, float *dctx, const float *dout, const float *x,
                    const float *ctx, int B, int H, int W, int Tk, int ctx_rep);

// ---- Downsample2D / Upsample2D ------------------------------------------------------------

/* Downsample2D(use_conv=True): conv 3x3 stride 2, padding 1 (UNet) or padding 0 after
 * F.pad(x, (0, 1, 0, 1)) (VAE encoder, pad = 0 in diffusers). '<prefix>.conv'. */
typedef struct { rl_conv conv; } rl_downsample;
/* pad: 1 for the UNet, 0 for the VAE's asymmetric (0, 1, 0, 1) form. */
rl_status rl_downsample_bind(rl_downsample *l, rl_weights *ws, const char *prefix, int C, int OC,
                             int pad, rl_err *err);
/* x (B, C, H, W) -> out (B, OC, Ho, Wo) (rl_conv_out_hw). */
void rl_downsample_fwd(const rl_downsample *l, rl_arena *arena, float *out, const float *x,
                       int B, int H, int W);
void rl_downsample_bwd(const rl_downsample *l, const rl_downsample *g, rl_arena *arena, float *dx,
                       const float *dout, const float *x, int B, int H, int W);

/* Upsample2D(use_conv=True): nearest 2x, then conv 3x3 padding 1. '<prefix>.conv'. */
typedef struct { rl_conv conv; } rl_upsample;
typedef struct { float *up; } rl_upsample_acts;   // (B, C, 2H, 2W)
rl_status rl_upsample_bind(rl_upsample *l, rl_weights *ws, const char *prefix, int C, int OC,
                           rl_err *err);
/* x (B, C, H, W) -> out (B, OC, 2H, 2W). */
void rl_upsample_fwd(const rl_upsample *l, rl_upsample_acts *a, rl_arena *arena, float *out,
                     const float *x, int B, int H, int W);
/* Nearest resize to (Ho, Wo) (diffusers' upsample_size when the latent is not a multiple of
 * the UNet's overall factor), then the conv. */
void rl_upsample_fwd_to(const rl_upsample *l, rl_upsample_acts *a, rl_arena *arena, float *out,
                        const float *x, int B, int H, int W, int Ho, int Wo);
void rl_upsample_bwd(const rl_upsample *l, const rl_upsample *g, const rl_upsample_acts *a,
                     rl_arena *arena, float *dx, const float *dout, int B, int H, int W);

// ---- memory plans ----------------------------------------------------------------------------

/* Measuring before allocating (ggml): each rl_<layer>_plan_* advances p->used exactly as the
 * call it mirrors advances the arena (same allocations, order, 64-byte rounding and marks) and
 * tracks the high-water mark in p->peak. n_threads sizes per-thread scratch as
 * rl_par_max_threads() does at run time. Backward plans assume every gradient is asked for
 * (an upper bound otherwise). */
typedef struct { size_t used, peak; int n_threads; } rl_plan;
void rl_plan_bytes(rl_plan *p, size_t n);
void rl_plan_floats(rl_plan *p, size_t n);
void rl_conv_plan(const rl_conv *l, rl_plan *p, int B, int H, int W);        // fwd and bwd
void rl_resnet_plan_fwd(const rl_resnet *r, rl_plan *p, int train, int B, int H, int W);
void rl_resnet_plan_bwd(const rl_resnet *r, rl_plan *p, int B, int H, int W);
/* cross: ctx given to the forward (the attn2 of a Transformer2DModel block). */
void rl_tblock_plan_fwd(const rl_tblock *l, rl_plan *p, int train, int cross, int B, int T, int Tk,
                        int ctx_rep);
void rl_tblock_plan_bwd(const rl_tblock *l, rl_plan *p, int cross, int B, int T, int Tk,
                        int ctx_rep);
void rl_tblock_stack_plan_fwd(const rl_tblock *blocks, int n, rl_plan *p, int train, int cross,
                              int B, int T, int Tk, int ctx_rep);
void rl_tblock_stack_plan_bwd(const rl_tblock *blocks, int n, rl_plan *p, int cross, int B, int T,
                              int Tk, int ctx_rep);
void rl_xformer_plan_fwd(const rl_xformer *l, rl_plan *p, int train, int B, int H, int W, int Tk,
                         int ctx_rep);
void rl_xformer_plan_bwd(const rl_xformer *l, rl_plan *p, int B, int H, int W, int Tk, int ctx_rep);
/* Upsample to (Ho, Wo); the backward is the 2x one from (H, W). */
void rl_upsample_plan_fwd(const rl_upsample *l, rl_plan *p, int train, int B, int Ho, int Wo);
void rl_upsample_plan_bwd(const rl_upsample *l, rl_plan *p, int B, int H, int W);

#endif
