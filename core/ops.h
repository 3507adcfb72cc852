/* core/ops.h - every kernel, grouped by family.
 *
 * Kernels are plain functions over contiguous row-major float. Signature order (llm.c):
 * outputs, saved-for-backward, inputs, weights, sizes, scalars; they return void, never
 * allocate (scratch comes from the caller) and cannot fail. Backward takes input gradients,
 * then weight gradients, then dout, then what forward saved, and ACCUMULATES (+=) into every
 * gradient. A NULL gradient pointer means "not needed" and is skipped.
 * Results are bitwise identical for any thread count (no float reductions across threads).
 *
 * Dimension glossary (project-wide):
 *   N batch (2 under CFG; UNet 2-D layers see N*F images), F frames, C channels,
 *   H, W height/width, S spatial size H*W, L text tokens, D text width, NH heads,
 *   HS head size, G norm groups, V vocab, T sequence length, OC output channels.
 *   Video tensors are (N, C, F, H, W), the diffusers layout. */
#ifndef RL_CORE_OPS_H
#define RL_CORE_OPS_H

#include <stddef.h>

// ---- matmul (ops_matmul.c) ------------------------------------------------------

/* Raw row-major sgemm: C(M,N) = alpha * op(A) op(B) + beta * C, op = transpose if trans.
 * A is (M,K) or (K,M) when transA; B is (K,N) or (N,K) when transB. Through BLAS. */
void rl_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* nn.Linear: out (T, OC) = inp (T, C) @ w (OC, C)^T + bias (OC); bias may be NULL. */
void rl_linear_fwd(float *out, const float *inp, const float *w, const float *bias,
                   int T, int C, int OC);
/* dinp (T, C) += dout @ w; dw (OC, C) += dout^T @ inp; dbias (OC) += sum_t dout. */
void rl_linear_bwd(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                   const float *w, int T, int C, int OC);

// ---- conv2d (ops_conv.c) --------------------------------------------------------

/* Geometry of a 2-D convolution (groups = 1, dilation 1). Padding may be asymmetric:
 * pad_t/pad_l before, and whatever Ho/Wo imply after (zeros). */
typedef struct {
    int N, C, H, W;       // input (N, C, H, W)
    int OC, KH, KW;       // weight (OC, C, KH, KW)
    int stride;
    int pad_t, pad_l;
    int Ho, Wo;           // output (N, OC, Ho, Wo)
} rl_conv_shape;

/* Symmetric padding pad on all sides: Ho = (H + 2 pad - KH) / stride + 1. */
rl_conv_shape rl_conv_shape_make(int N, int C, int H, int W, int OC, int KH, int KW,
                                 int stride, int pad);
/* Floats of scratch rl_conv2d_fwd/bwd need (im2col buffers for all threads). */
size_t rl_conv2d_scratch_floats(const rl_conv_shape *s, int n_threads);

/* out (N, OC, Ho, Wo) = conv2d(x (N, C, H, W), w (OC, C, KH, KW)) + b (OC); b may be NULL.
 * 1x1 stride-1 convolutions skip im2col. */
void rl_conv2d_fwd(float *out, float *scratch, const float *x, const float *w, const float *b,
                   const rl_conv_shape *s);
/* dx (N, C, H, W) += ..., dw (OC, C, KH, KW) += ..., db (OC) += ...; any may be NULL. */
void rl_conv2d_bwd(float *dx, float *dw, float *db, float *scratch, const float *dout,
                   const float *x, const float *w, const rl_conv_shape *s);
/* Plain loop-nest reference (slow), tested against the fast path. */
void rl_conv2d_fwd_ref(float *out, const float *x, const float *w, const float *b,
                       const rl_conv_shape *s);

// ---- normalisation (ops_norm.c) ---------------------------------------------------

/* torch.nn.GroupNorm over x (N, C, S) in G groups; out (N, C, S); mean, rstd (N, G). */
void rl_groupnorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w,
                      const float *b, int N, int C, int S, int G, float eps);
void rl_groupnorm_bwd(float *dx, float *dw, float *db, const float *dout, const float *x,
                      const float *mean, const float *rstd, const float *w,
                      int N, int C, int S, int G);

/* torch.nn.LayerNorm over the last dim: x (T, C); out (T, C); mean, rstd (T). */
void rl_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w,
                      const float *b, int T, int C, float eps);
void rl_layernorm_bwd(float *dx, float *dw, float *db, const float *dout, const float *x,
                      const float *mean, const float *rstd, const float *w, int T, int C);

// ---- activations (ops_act.c) -------------------------------------------------------
/* Elementwise over n values; out may equal x in forward. */
void rl_silu_fwd(float *out, const float *x, size_t n);
void rl_silu_bwd(float *dx, const float *dout, const float *x, size_t n);
void rl_gelu_fwd(float *out, const float *x, size_t n);        // erf form (approximate='none')
void rl_gelu_bwd(float *dx, const float *dout, const float *x, size_t n);
void rl_gelu_tanh_fwd(float *out, const float *x, size_t n);   // approximate='tanh'
void rl_gelu_tanh_bwd(float *dx, const float *dout, const float *x, size_t n);
void rl_quickgelu_fwd(float *out, const float *x, size_t n);   // x * sigmoid(1.702 x)
void rl_quickgelu_bwd(float *dx, const float *dout, const float *x, size_t n);
/* diffusers GEGLU after its projection: x (T, 2C) = [hidden | gate];
 * out (T, C) = hidden * gelu(gate) (erf gelu). */
void rl_geglu_fwd(float *out, const float *x, int T, int C);
void rl_geglu_bwd(float *dx, const float *dout, const float *x, int T, int C);

/* Row softmax: x, out (R, C); out may equal x. */
void rl_softmax_fwd(float *out, const float *x, int R, int C);
/* dx (R, C) += out * (dout - sum(dout * out)). */
void rl_softmax_bwd(float *dx, const float *dout, const float *out, int R, int C);

// ---- attention (ops_attn.c) --------------------------------------------------------
/* Multi-head scaled dot-product attention, heads interleaved in the channel dim as nn.Linear
 * projections produce them:
 *   q (B, Tq, NH*HS), k, v (B, Tk, NH*HS), out (B, Tq, NH*HS),
 *   out[b, i, h*HS:(h+1)*HS] = sum_j softmax_j(scale * q_i . k_j (+ causal mask)) v_j.
 * causal: key j > query i is masked (CLIP's text encoder). */

/* Training path: keeps the probabilities att (B, NH, Tq, Tk) for backward. */
void rl_attn_fwd(float *out, float *att, const float *q, const float *k, const float *v,
                 int B, int NH, int Tq, int Tk, int HS, float scale, int causal);
/* Scratch floats for rl_attn_bwd (a Tq x Tk buffer per thread). */
size_t rl_attn_bwd_scratch_floats(int Tq, int Tk, int n_threads);
void rl_attn_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                 const float *att, const float *q, const float *k, const float *v,
                 int B, int NH, int Tq, int Tk, int HS, float scale, int causal);

/* Inference path: queries processed in chunks of at most `chunk` rows per (b, head), so
 * memory is O(threads * chunk * (Tk + HS)), not O(Tq * Tk). */
size_t rl_attn_chunked_scratch_floats(int Tq, int Tk, int HS, int chunk, int n_threads);
void rl_attn_fwd_chunked(float *out, float *scratch, const float *q, const float *k,
                         const float *v, int B, int NH, int Tq, int Tk, int HS, float scale,
                         int causal, int chunk);
/* Scratch sized for n_threads must cover the threads the call will use (rl_par_threads()).
 * Sizes choose the implementation: a loop nest parallel over (b, head) for short sequences
 * (temporal attention), BLAS on per-head slices for long ones; 1 when the latter is used. */
int rl_attn_uses_gemm(int Tq, int Tk, int HS);
/* Vector lanes of the direct path's tiles: 16 (AVX-512), 8 (AVX2) or 4, the widest the CPU
 * runs unless a test forced fewer (rl_attn_force_lanes(4 or 8); 0 restores). Every width
 * gives the same bits. Not thread-safe: call between kernels. */
int  rl_attn_lanes(void);
void rl_attn_force_lanes(int lanes);
/* Plain serial reference of rl_attn_fwd (sums in double), for the tests. */
void rl_attn_fwd_ref(float *out, float *att, const float *q, const float *k, const float *v,
                     int B, int NH, int Tq, int Tk, int HS, float scale, int causal);

// ---- resampling (ops_resample.c) ---------------------------------------------------
/* Nearest 2x upsample: x (NC, H, W) -> out (NC, 2H, 2W) (F.interpolate nearest). */
void rl_upsample2x_fwd(float *out, const float *x, int NC, int H, int W);
void rl_upsample2x_bwd(float *dx, const float *dout, int NC, int H, int W);
/* 2x2 average pool, stride 2 (Downsample2D with use_conv=False): x (NC, H, W), H, W even. */
void rl_avgpool2x_fwd(float *out, const float *x, int NC, int H, int W);
void rl_avgpool2x_bwd(float *dx, const float *dout, int NC, int H, int W);
/* (Strided stride-2 downsampling with a 3x3 kernel is rl_conv2d with stride 2.) */

// ---- elementwise, layout, embeddings (ops_misc.c) -----------------------------------
void rl_add_fwd(float *out, const float *a, const float *b, size_t n);        // out may alias
void rl_add_inplace(float *y, const float *x, size_t n);                      // y += x
void rl_scale_fwd(float *out, const float *x, float s, size_t n);              // out may alias
void rl_axpy(float *y, float a, const float *x, size_t n);                     // y += a x
/* out (N, C, S) += bias (N, C) broadcast over S (time-embedding add in ResNet blocks). */
void rl_add_bias_nc(float *out, const float *bias, int N, int C, int S);
void rl_add_bias_nc_bwd(float *dbias, const float *dout, int N, int C, int S);
/* Channel concat: a (N, Ca, S), b (N, Cb, S) -> out (N, Ca+Cb, S). */
void rl_concat_fwd(float *out, const float *a, const float *b, int N, int Ca, int Cb, int S);
void rl_concat_bwd(float *da, float *db, const float *dout, int N, int Ca, int Cb, int S);
/* 4-D permute: x has dims d[0..3]; out[i_p0, i_p1, i_p2, i_p3] = x[i0, i1, i2, i3], i.e.
 * out dims are (d[p[0]], d[p[1]], d[p[2]], d[p[3]]) as torch's x.permute(p). The backward
 * of a permute is the inverse permute (rl_permute_inverse). */
void rl_permute4(float *out, const float *x, const int d[4], const int p[4]);
void rl_permute_inverse(int inv[4], const int p[4]);
/* diffusers get_timestep_embedding: t (N) -> out (N, dim); half = dim/2,
 * freq_i = exp(-ln(max_period) * i / (half - freq_shift)), emb = [sin(t f), cos(t f)],
 * swapped to [cos, sin] when flip_sin_to_cos; zero-padded last column when dim is odd. */
void rl_timestep_embed(float *out, const float *t, int N, int dim, int flip_sin_to_cos,
                       float freq_shift, float max_period);
/* Embedding lookup: out (T, D) = table[ids[t]]; ids validated by the caller. */
void rl_embed_fwd(float *out, const int *ids, const float *table, int T, int D);
void rl_embed_bwd(float *dtable, const float *dout, const int *ids, int T, int D, int V);
/* Sum of squares of (a - b) over n, in double; and its gradient scale * 2 (a - b). */
double rl_mse_fwd(const float *a, const float *b, size_t n);
void rl_mse_bwd(float *da, const float *a, const float *b, float scale, size_t n);

#endif
