/* core/layers.c - diffusers building blocks as plain sequences of kernel calls, see layers.h.
 * No OpenMP here: every loop that matters is a kernel from core/ops.h. */
#include "core/layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/par.h"

static void add3(float *out, const float *a, const float *b, size_t n) { rl_add_fwd(out, a, b, n); }

// ---- fc ---------------------------------------------------------------------------------

rl_status rl_fc_bind(rl_fc *l, rl_weights *ws, const char *prefix, int C, int OC, int bias,
                     rl_err *err)
{
    *l = (rl_fc){ .C = C, .OC = OC };
    RL_TRY(rl_weights_getf(ws, &l->w, err, 2, (int64_t[]){ OC, C }, "%s.weight", prefix));
    if (bias) RL_TRY(rl_weights_getf(ws, &l->b, err, 1, (int64_t[]){ OC }, "%s.bias", prefix));
    return RL_OK;
}

void rl_fc_fwd(const rl_fc *l, float *out, const float *x, int T)
{
    rl_linear_fwd(out, x, l->w, l->b, T, l->C, l->OC);
}

void rl_fc_bwd(const rl_fc *l, const rl_fc *g, float *dx, const float *dout, const float *x, int T)
{
    rl_linear_bwd(dx, g ? (float *)g->w : NULL, g && l->b ? (float *)g->b : NULL, dout, x, l->w,
                  T, l->C, l->OC);
}

// ---- conv -------------------------------------------------------------------------------

rl_status rl_conv_bind(rl_conv *l, rl_weights *ws, const char *prefix, int C, int OC, int K,
                       int stride, int pad, int bias, rl_err *err)
{
    *l = (rl_conv){ .C = C, .OC = OC, .K = K, .stride = stride,
                    .pad_t = pad, .pad_b = pad, .pad_l = pad, .pad_r = pad };
    RL_TRY(rl_weights_getf(ws, &l->w, err, 4, (int64_t[]){ OC, C, K, K }, "%s.weight", prefix));
    if (bias) RL_TRY(rl_weights_getf(ws, &l->b, err, 1, (int64_t[]){ OC }, "%s.bias", prefix));
    return RL_OK;
}

void rl_conv_out_hw(const rl_conv *l, int H, int W, int *Ho, int *Wo)
{
    *Ho = (H + l->pad_t + l->pad_b - l->K) / l->stride + 1;
    *Wo = (W + l->pad_l + l->pad_r - l->K) / l->stride + 1;
}

static rl_conv_shape conv_shape(const rl_conv *l, int B, int H, int W)
{
    rl_conv_shape s = { .N = B, .C = l->C, .H = H, .W = W, .OC = l->OC, .KH = l->K, .KW = l->K,
                        .stride = l->stride, .pad_t = l->pad_t, .pad_l = l->pad_l };
    rl_conv_out_hw(l, H, W, &s.Ho, &s.Wo);
    return s;
}

size_t rl_conv_scratch_floats(const rl_conv *l, int B, int H, int W, int n_threads)
{
    rl_conv_shape s = conv_shape(l, B, H, W);
    return rl_conv2d_scratch_floats(&s, n_threads);
}

void rl_conv_fwd(const rl_conv *l, rl_arena *arena, float *out, const float *x, int B, int H, int W)
{
    rl_conv_shape s = conv_shape(l, B, H, W);
    rl_arena_mark m = rl_arena_get_mark(arena);
    float *scratch = rl_arena_take(arena, rl_conv2d_scratch_floats(&s, rl_par_max_threads()));
    rl_conv2d_fwd(out, scratch, x, l->w, l->b, &s);
    rl_arena_reset(arena, m);
}

void rl_conv_bwd(const rl_conv *l, const rl_conv *g, rl_arena *arena, float *dx,
                 const float *dout, const float *x, int B, int H, int W)
{
    rl_conv_shape s = conv_shape(l, B, H, W);
    rl_arena_mark m = rl_arena_get_mark(arena);
    float *scratch = rl_arena_take(arena, rl_conv2d_scratch_floats(&s, rl_par_max_threads()));
    rl_conv2d_bwd(dx, g ? (float *)g->w : NULL, g && l->b ? (float *)g->b : NULL, scratch, dout,
                  x, l->w, &s);
    rl_arena_reset(arena, m);
}

// ---- norms ------------------------------------------------------------------------------

rl_status rl_gnorm_bind(rl_gnorm *l, rl_weights *ws, const char *prefix, int C, int G, float eps,
                        rl_err *err)
{
    *l = (rl_gnorm){ .C = C, .G = G, .eps = eps };
    if (G <= 0 || C % G != 0)
        return rl_errf(err, RL_E_PARAM, "%s: %d channels cannot be split into %d norm groups",
                       prefix, C, G);
    RL_TRY(rl_weights_getf(ws, &l->w, err, 1, (int64_t[]){ C }, "%s.weight", prefix));
    RL_TRY(rl_weights_getf(ws, &l->b, err, 1, (int64_t[]){ C }, "%s.bias", prefix));
    return RL_OK;
}

rl_status rl_lnorm_bind(rl_lnorm *l, rl_weights *ws, const char *prefix, int C, float eps,
                        rl_err *err)
{
    *l = (rl_lnorm){ .C = C, .eps = eps };
    RL_TRY(rl_weights_getf(ws, &l->w, err, 1, (int64_t[]){ C }, "%s.weight", prefix));
    RL_TRY(rl_weights_getf(ws, &l->b, err, 1, (int64_t[]){ C }, "%s.bias", prefix));
    return RL_OK;
}

// ---- ResnetBlock2D ----------------------------------------------------------------------

rl_status rl_resnet_bind(rl_resnet *r, rl_weights *ws, const char *prefix, const rl_resnet_cfg *cfg,
                         rl_err *err)
{
    char p[256];
    *r = (rl_resnet){ .C = cfg->C, .OC = cfg->OC, .Ct = cfg->Ct,
                      .out_scale = cfg->out_scale > 0 ? cfg->out_scale : 1.0f };
    int G_out = cfg->G_out > 0 ? cfg->G_out : cfg->G;
    rl_weights_name(p, sizeof p, prefix, "norm1");
    RL_TRY(rl_gnorm_bind(&r->norm1, ws, p, cfg->C, cfg->G, cfg->eps, err));
    rl_weights_name(p, sizeof p, prefix, "conv1");
    RL_TRY(rl_conv_bind(&r->conv1, ws, p, cfg->C, cfg->OC, 3, 1, 1, 1, err));
    if (cfg->Ct > 0) {
        rl_weights_name(p, sizeof p, prefix, "time_emb_proj");
        RL_TRY(rl_fc_bind(&r->time_emb_proj, ws, p, cfg->Ct, cfg->OC, 1, err));
    }
    rl_weights_name(p, sizeof p, prefix, "norm2");
    RL_TRY(rl_gnorm_bind(&r->norm2, ws, p, cfg->OC, G_out, cfg->eps, err));
    rl_weights_name(p, sizeof p, prefix, "conv2");
    RL_TRY(rl_conv_bind(&r->conv2, ws, p, cfg->OC, cfg->OC, 3, 1, 1, 1, err));
    r->has_shortcut = cfg->use_in_shortcut < 0 ? cfg->C != cfg->OC : cfg->use_in_shortcut;
    if (r->has_shortcut) {
        rl_weights_name(p, sizeof p, prefix, "conv_shortcut");
        RL_TRY(rl_conv_bind(&r->conv_shortcut, ws, p, cfg->C, cfg->OC, 1, 1, 0, 1, err));
    }
    return RL_OK;
}

void rl_resnet_fwd(const rl_resnet *r, rl_resnet_acts *a, rl_arena *arena, float *out,
                   const float *x, const float *temb, int B, int H, int W)
{
    const int C = r->C, OC = r->OC, S = H * W;
    const int train = a != NULL;
    rl_resnet_acts local;
    rl_arena_mark m = rl_arena_get_mark(arena), mt;
    if (!train) a = &local;

    // h = conv1(silu(norm1(x)))                                   h1 (B, OC, S)
    // (inference: the norm's buffers are released as soon as the conv has read them)
    a->h1 = rl_arena_take(arena, (size_t)B * OC * S);
    mt = rl_arena_get_mark(arena);
    a->n1 = rl_arena_take(arena, (size_t)B * C * S);              // n1, a1 (B, C, S)
    a->mean1 = rl_arena_take(arena, (size_t)B * r->norm1.G);
    a->rstd1 = rl_arena_take(arena, (size_t)B * r->norm1.G);
    rl_groupnorm_fwd(a->n1, a->mean1, a->rstd1, x, r->norm1.w, r->norm1.b, B, C, S, r->norm1.G,
                     r->norm1.eps);
    a->a1 = train ? rl_arena_take(arena, (size_t)B * C * S) : a->n1;
    rl_silu_fwd(a->a1, a->n1, (size_t)B * C * S);
    rl_conv_fwd(&r->conv1, arena, a->h1, a->a1, B, H, W);

    // h += time_emb_proj(silu(temb))[:, :, None, None]
    a->ta = a->t = NULL;
    if (r->Ct > 0) {
        a->ta = rl_arena_take(arena, (size_t)B * r->Ct);
        rl_silu_fwd(a->ta, temb, (size_t)B * r->Ct);
        a->t = rl_arena_take(arena, (size_t)B * OC);
        rl_fc_fwd(&r->time_emb_proj, a->t, a->ta, B);
        rl_add_bias_nc(a->h1, a->t, B, OC, S);
    }
    if (!train) rl_arena_reset(arena, mt);

    // h = conv2(silu(norm2(h)))                                   h2 (B, OC, S)
    float *h2 = rl_arena_take(arena, (size_t)B * OC * S);
    mt = rl_arena_get_mark(arena);
    a->n2 = rl_arena_take(arena, (size_t)B * OC * S);
    a->mean2 = rl_arena_take(arena, (size_t)B * r->norm2.G);
    a->rstd2 = rl_arena_take(arena, (size_t)B * r->norm2.G);
    rl_groupnorm_fwd(a->n2, a->mean2, a->rstd2, a->h1, r->norm2.w, r->norm2.b, B, OC, S,
                     r->norm2.G, r->norm2.eps);
    a->a2 = train ? rl_arena_take(arena, (size_t)B * OC * S) : a->n2;
    rl_silu_fwd(a->a2, a->n2, (size_t)B * OC * S);
    rl_conv_fwd(&r->conv2, arena, h2, a->a2, B, H, W);
    if (!train) rl_arena_reset(arena, mt);

    // out = (shortcut(x) + h) / output_scale_factor
    const size_t n = (size_t)B * OC * S;
    if (r->has_shortcut) {
        rl_conv_fwd(&r->conv_shortcut, arena, out, x, B, H, W);
        rl_add_inplace(out, h2, n);
    } else {
        add3(out, x, h2, n);
    }
    if (r->out_scale != 1.0f) rl_scale_fwd(out, out, 1.0f / r->out_scale, n);
    if (!train) rl_arena_reset(arena, m);
}

// ---- Attention --------------------------------------------------------------------------

rl_status rl_attention_bind(rl_attention *l, rl_weights *ws, const char *prefix,
                            const rl_attention_cfg *cfg, rl_err *err)
{
    char p[256];
    const int Ckv = cfg->Ckv > 0 ? cfg->Ckv : cfg->Cq, inner = cfg->NH * cfg->HS;
    *l = (rl_attention){ .Cq = cfg->Cq, .Ckv = Ckv, .NH = cfg->NH, .HS = cfg->HS,
                         .residual = cfg->residual,
                         .rescale = cfg->rescale > 0 ? cfg->rescale : 1.0f };
    if (cfg->NH <= 0 || cfg->HS <= 0)
        return rl_errf(err, RL_E_PARAM, "%s: %d heads of size %d", prefix, cfg->NH, cfg->HS);
    if (cfg->norm_groups > 0) {
        l->has_norm = 1;
        rl_weights_name(p, sizeof p, prefix, "group_norm");
        RL_TRY(rl_gnorm_bind(&l->group_norm, ws, p, cfg->Cq, cfg->norm_groups, cfg->norm_eps, err));
    }
    rl_weights_name(p, sizeof p, prefix, "to_q");
    RL_TRY(rl_fc_bind(&l->to_q, ws, p, cfg->Cq, inner, cfg->qkv_bias, err));
    rl_weights_name(p, sizeof p, prefix, "to_k");
    RL_TRY(rl_fc_bind(&l->to_k, ws, p, Ckv, inner, cfg->qkv_bias, err));
    rl_weights_name(p, sizeof p, prefix, "to_v");
    RL_TRY(rl_fc_bind(&l->to_v, ws, p, Ckv, inner, cfg->qkv_bias, err));
    rl_weights_name(p, sizeof p, prefix, "to_out.0");
    RL_TRY(rl_fc_bind(&l->to_out, ws, p, inner, cfg->Cq, cfg->out_bias, err));
    return RL_OK;
}

/* y (B, Tq, Cq) = to_out(softmax(q k^T * scale) v), no residual. xs (B, Tq, Cq) queries,
 * ctx (B / ctx_rep, Tk, Ckv) or NULL (self). Buffers stay in the arena (caller's mark).
 * With a shared context (ctx_rep > 1: the F frames of a video see one text embedding) K and V
 * are projected once per context, and the ctx_rep consecutive query batches that share them
 * are handed to the kernel as one batch of ctx_rep * Tq queries: the same memory, since q is
 * (B, Tq, inner) = (B / ctx_rep, ctx_rep * Tq, inner), and every query row is independent. */
static void attn_core(const rl_attention *l, rl_attention_acts *a, int train, rl_arena *arena,
                      float *y, const float *xs, const float *ctx, int B, int Tq, int Tk,
                      int ctx_rep)
{
    const int inner = l->NH * l->HS;
    const float scale = 1.0f / sqrtf((float)l->HS);
    if (!ctx) { Tk = Tq; ctx_rep = 1; }
    const float *src = ctx ? ctx : xs;
    const int Bk = B / ctx_rep, Tqk = ctx_rep * Tq;          // kernel batch and query rows

    a->q = rl_arena_take(arena, (size_t)B * Tq * inner);
    rl_fc_fwd(&l->to_q, a->q, xs, B * Tq);
    a->k = rl_arena_take(arena, (size_t)Bk * Tk * inner);     // (Bk, Tk, inner)
    a->v = rl_arena_take(arena, (size_t)Bk * Tk * inner);
    rl_fc_fwd(&l->to_k, a->k, src, Bk * Tk);
    rl_fc_fwd(&l->to_v, a->v, src, Bk * Tk);
    a->o = rl_arena_take(arena, (size_t)B * Tq * inner);
    if (train) {
        a->att = rl_arena_take(arena, (size_t)B * l->NH * Tq * Tk);   // (Bk, NH, Tqk, Tk)
        rl_attn_fwd(a->o, a->att, a->q, a->k, a->v, Bk, l->NH, Tqk, Tk, l->HS, scale, 0);
    } else {
        a->att = NULL;
        rl_arena_mark m = rl_arena_get_mark(arena);
        float *scratch = rl_arena_take(arena,
                                       rl_attn_chunked_scratch_floats(Tqk, Tk, l->HS, RL_ATTN_CHUNK,
                                                                   rl_par_max_threads()));
        rl_attn_fwd_chunked(a->o, scratch, a->q, a->k, a->v, Bk, l->NH, Tqk, Tk, l->HS, scale, 0,
                            RL_ATTN_CHUNK);
        rl_arena_reset(arena, m);
    }
    rl_fc_fwd(&l->to_out, y, a->o, B * Tq);
}

void rl_attention_fwd(const rl_attention *l, rl_attention_acts *a, rl_arena *arena, float *out,
                      const float *x, const float *ctx, int B, int Tq, int Tk, int ctx_rep)
{
    const int train = a != NULL;
    rl_attention_acts local;
    rl_arena_mark m = rl_arena_get_mark(arena);
    if (!train) a = &local;
    a->xn = a->mean = a->rstd = a->xs = NULL;
    const size_t n = (size_t)B * Tq * l->Cq;
    if (l->residual) {
        float *y = rl_arena_take(arena, n);
        attn_core(l, a, train, arena, y, x, ctx, B, Tq, Tk, ctx_rep);
        add3(out, y, x, n);
    } else {
        attn_core(l, a, train, arena, out, x, ctx, B, Tq, Tk, ctx_rep);
    }
    if (l->rescale != 1.0f) rl_scale_fwd(out, out, 1.0f / l->rescale, n);
    if (!train) rl_arena_reset(arena, m);
}

void rl_attention_fwd_image(const rl_attention *l, rl_attention_acts *a, rl_arena *arena,
                            float *out, const float *x, int B, int H, int W)
{
    const int train = a != NULL, C = l->Cq, S = H * W;
    const size_t n = (size_t)B * C * S;
    rl_attention_acts local;
    rl_arena_mark m = rl_arena_get_mark(arena);
    if (!train) a = &local;

    const float *xn = x;                                  // (B, C, S)
    a->xn = a->mean = a->rstd = NULL;
    if (l->has_norm) {
        const int G = l->group_norm.G;
        a->xn = rl_arena_take(arena, n);
        a->mean = rl_arena_take(arena, (size_t)B * G);
        a->rstd = rl_arena_take(arena, (size_t)B * G);
        rl_groupnorm_fwd(a->xn, a->mean, a->rstd, x, l->group_norm.w, l->group_norm.b, B, C, S,
                         G, l->group_norm.eps);
        xn = a->xn;
    }
    a->xs = rl_arena_take(arena, n);                      // (B, S, C)
    rl_permute4(a->xs, xn, (int[]){ B, C, S, 1 }, (int[]){ 0, 2, 1, 3 });
    float *ys = rl_arena_take(arena, n);                  // (B, S, C)
    attn_core(l, a, train, arena, ys, a->xs, NULL, B, S, S, 1);
    if (l->residual) {
        float *y = rl_arena_take(arena, n);               // (B, C, S)
        rl_permute4(y, ys, (int[]){ B, S, C, 1 }, (int[]){ 0, 2, 1, 3 });
        add3(out, y, x, n);
    } else {
        rl_permute4(out, ys, (int[]){ B, S, C, 1 }, (int[]){ 0, 2, 1, 3 });
    }
    if (l->rescale != 1.0f) rl_scale_fwd(out, out, 1.0f / l->rescale, n);
    if (!train) rl_arena_reset(arena, m);
}

// ---- FeedForward --------------------------------------------------------------------------

rl_status rl_ff_bind(rl_ff *l, rl_weights *ws, const char *prefix, int C, int I, rl_err *err)
{
    char p[256];
    *l = (rl_ff){ .C = C, .I = I };
    rl_weights_name(p, sizeof p, prefix, "net.0.proj");
    RL_TRY(rl_fc_bind(&l->proj, ws, p, C, 2 * I, 1, err));
    rl_weights_name(p, sizeof p, prefix, "net.2");
    RL_TRY(rl_fc_bind(&l->out, ws, p, I, C, 1, err));
    return RL_OK;
}

/* Inference runs the feed-forward over chunks of rows (it is row-wise), so its (T, 3 I)
 * hidden values never exist at once: at most FF_CHUNK_FLOATS floats of projection. */
#define FF_CHUNK_FLOATS ((size_t)1 << 22)

int rl_ff_chunk_rows(const rl_ff *l, int T)
{
    size_t r = FF_CHUNK_FLOATS / (2 * (size_t)l->I);
    if (r < 64) r = 64;
    return r < (size_t)T ? (int)r : T;
}

void rl_ff_fwd(const rl_ff *l, rl_ff_acts *a, rl_arena *arena, float *out, const float *x, int T)
{
    if (a) {
        a->p = rl_arena_take(arena, (size_t)T * 2 * l->I);          // (T, 2I)
        rl_fc_fwd(&l->proj, a->p, x, T);
        a->g = rl_arena_take(arena, (size_t)T * l->I);              // (T, I)
        rl_geglu_fwd(a->g, a->p, T, l->I);
        rl_fc_fwd(&l->out, out, a->g, T);
        return;
    }
    rl_arena_mark m = rl_arena_get_mark(arena);
    const int R = rl_ff_chunk_rows(l, T);
    float *p = rl_arena_take(arena, (size_t)R * 2 * l->I);
    float *g = rl_arena_take(arena, (size_t)R * l->I);
    for (int t0 = 0; t0 < T; t0 += R) {
        const int r = T - t0 < R ? T - t0 : R;
        rl_fc_fwd(&l->proj, p, x + (size_t)t0 * l->C, r);
        rl_geglu_fwd(g, p, r, l->I);
        rl_fc_fwd(&l->out, out + (size_t)t0 * l->C, g, r);
    }
    rl_arena_reset(arena, m);
}

// ---- BasicTransformerBlock ----------------------------------------------------------------

void rl_sinusoidal_pe_table(float *pe, int T, int C, float scale)
{
    // as torch builds it in float32: div_i = exp(2i * (-ln(10000) / C)), pe = sin/cos(t * div_i)
    const float k = (float)(-log(10000.0) / C);
    for (int t = 0; t < T; t++) {
        for (int i = 0; 2 * i < C; i++) {
            const float div = expf((float)(2 * i) * k), arg = (float)t * div;
            pe[(size_t)t * C + 2 * i] = scale * sinf(arg);
            if (2 * i + 1 < C) pe[(size_t)t * C + 2 * i + 1] = scale * cosf(arg);
        }
    }
}

// x (B, T, C) += pe (T, C)
static void pe_add(float *x, const float *pe, int B, int T, int C)
{
    for (int b = 0; b < B; b++) rl_add_inplace(x + (size_t)b * T * C, pe, (size_t)T * C);
}

rl_status rl_tblock_bind(rl_tblock *l, rl_weights *ws, const char *prefix, const rl_tblock_cfg *cfg,
                         rl_err *err)
{
    char p[256];
    const int C = cfg->C;
    const float eps = cfg->ln_eps > 0 ? cfg->ln_eps : 1e-5f;
    *l = (rl_tblock){ .C = C, .pe_len = cfg->pe_len,
                      .pe_scale = cfg->pe_scale > 0.0f ? cfg->pe_scale : 1.0f };
    if (cfg->NH * cfg->HS != C)
        return rl_errf(err, RL_E_PARAM, "%s: %d heads x %d != dim %d", prefix, cfg->NH, cfg->HS, C);
    rl_weights_name(p, sizeof p, prefix, "norm1");
    RL_TRY(rl_lnorm_bind(&l->norm1, ws, p, C, eps, err));
    rl_attention_cfg ac = { .Cq = C, .Ckv = C, .NH = cfg->NH, .HS = cfg->HS,
                            .qkv_bias = cfg->attn_bias, .out_bias = 1, .rescale = 1.0f };
    rl_weights_name(p, sizeof p, prefix, "attn1");
    RL_TRY(rl_attention_bind(&l->attn1, ws, p, &ac, err));
    if (cfg->Ckv > 0 || cfg->double_self) {
        l->has_attn2 = 1;
        l->attn2_self = cfg->Ckv <= 0 || cfg->double_self;
        ac.Ckv = l->attn2_self ? C : cfg->Ckv;
        rl_weights_name(p, sizeof p, prefix, "norm2");
        RL_TRY(rl_lnorm_bind(&l->norm2, ws, p, C, eps, err));
        rl_weights_name(p, sizeof p, prefix, "attn2");
        RL_TRY(rl_attention_bind(&l->attn2, ws, p, &ac, err));
    }
    rl_weights_name(p, sizeof p, prefix, "norm3");
    RL_TRY(rl_lnorm_bind(&l->norm3, ws, p, C, eps, err));
    rl_weights_name(p, sizeof p, prefix, "ff");
    RL_TRY(rl_ff_bind(&l->ff, ws, p, C, cfg->ff_inner > 0 ? cfg->ff_inner : 4 * C, err));
    if (cfg->pe_len > 0) {
        // diffusers keeps the table as a (persistent) buffer: use the stored one when present
        rl_weights_name(p, sizeof p, prefix, "pos_embed.pe");
        RL_TRY(rl_weights_get_opt(ws, p, 3, (int64_t[]){ 1, cfg->pe_len, C }, &l->pe, err));
    }
    return RL_OK;
}

/* Inference: attn_core with its q, k, v, o released on return. */
static void attn_infer(const rl_attention *l, rl_arena *arena, float *y, const float *xs,
                       const float *ctx, int B, int Tq, int Tk, int ctx_rep)
{
    rl_attention_acts tmp;
    rl_arena_mark m = rl_arena_get_mark(arena);
    attn_core(l, &tmp, 0, arena, y, xs, ctx, B, Tq, Tk, ctx_rep);
    rl_arena_reset(arena, m);
}

void rl_tblock_fwd(const rl_tblock *l, rl_tblock_acts *a, rl_arena *arena, float *out,
                   const float *x, const float *ctx, int B, int T, int Tk, int ctx_rep)
{
    const int train = a != NULL, C = l->C;
    const size_t n = (size_t)B * T * C;
    rl_arena_mark m = rl_arena_get_mark(arena);

    const float *pe = NULL;                               // (T, C)
    if (l->pe_len > 0) {
        RL_ASSERT(T <= l->pe_len);
        if (l->pe) {
            pe = l->pe;
        } else {
            float *t = rl_arena_take(arena, (size_t)T * C);
            rl_sinusoidal_pe_table(t, T, C, l->pe_scale);
            pe = t;
        }
    }

    if (!train) {
        // the residual stream lives in out; one normed buffer, one branch output, reused
        float *nb = rl_arena_take(arena, n), *y = rl_arena_take(arena, n);   // (B, T, C)
        float *mean = rl_arena_take(arena, (size_t)B * T);
        float *rstd = rl_arena_take(arena, (size_t)B * T);
        rl_layernorm_fwd(nb, mean, rstd, x, l->norm1.w, l->norm1.b, B * T, C, l->norm1.eps);
        if (pe) pe_add(nb, pe, B, T, C);
        attn_infer(&l->attn1, arena, y, nb, NULL, B, T, T, 1);
        add3(out, x, y, n);                               // h1 (out may equal x)
        if (l->has_attn2) {
            rl_layernorm_fwd(nb, mean, rstd, out, l->norm2.w, l->norm2.b, B * T, C,
                             l->norm2.eps);
            if (pe) pe_add(nb, pe, B, T, C);
            attn_infer(&l->attn2, arena, y, nb, l->attn2_self ? NULL : ctx, B, T, Tk, ctx_rep);
            rl_add_inplace(out, y, n);                    // h2
        }
        rl_layernorm_fwd(nb, mean, rstd, out, l->norm3.w, l->norm3.b, B * T, C, l->norm3.eps);
        rl_ff_fwd(&l->ff, NULL, arena, y, nb, B * T);
        rl_add_inplace(out, y, n);
        rl_arena_reset(arena, m);
        return;
    }

    // h1 = x + attn1(pe(norm1(x)))
    a->n1 = rl_arena_take(arena, n);
    a->mean1 = rl_arena_take(arena, (size_t)B * T);
    a->rstd1 = rl_arena_take(arena, (size_t)B * T);
    rl_layernorm_fwd(a->n1, a->mean1, a->rstd1, x, l->norm1.w, l->norm1.b, B * T, C, l->norm1.eps);
    if (pe) pe_add(a->n1, pe, B, T, C);
    float *y = rl_arena_take(arena, n);
    attn_core(&l->attn1, &a->attn1, 1, arena, y, a->n1, NULL, B, T, T, 1);
    a->h1 = rl_arena_take(arena, n);
    add3(a->h1, x, y, n);

    // h2 = h1 + attn2(pe(norm2(h1)), ctx)
    const float *h = a->h1;
    a->n2 = a->mean2 = a->rstd2 = a->h2 = NULL;
    if (l->has_attn2) {
        a->n2 = rl_arena_take(arena, n);
        a->mean2 = rl_arena_take(arena, (size_t)B * T);
        a->rstd2 = rl_arena_take(arena, (size_t)B * T);
        rl_layernorm_fwd(a->n2, a->mean2, a->rstd2, a->h1, l->norm2.w, l->norm2.b, B * T, C,
                         l->norm2.eps);
        if (pe) pe_add(a->n2, pe, B, T, C);
        attn_core(&l->attn2, &a->attn2, 1, arena, y, a->n2, l->attn2_self ? NULL : ctx, B, T, Tk,
                  ctx_rep);
        a->h2 = rl_arena_take(arena, n);
        add3(a->h2, a->h1, y, n);
        h = a->h2;
    }

    // out = h + ff(norm3(h))
    a->n3 = rl_arena_take(arena, n);
    a->mean3 = rl_arena_take(arena, (size_t)B * T);
    a->rstd3 = rl_arena_take(arena, (size_t)B * T);
    rl_layernorm_fwd(a->n3, a->mean3, a->rstd3, h, l->norm3.w, l->norm3.b, B * T, C, l->norm3.eps);
    rl_ff_fwd(&l->ff, &a->ff, arena, y, a->n3, B * T);
    add3(out, h, y, n);
}

rl_status rl_tblock_stack_bind(rl_tblock **blocks, rl_weights *ws, const char *prefix, int n,
                               const rl_tblock_cfg *cfg, rl_err *err)
{
    char p[256];
    *blocks = calloc((size_t)n, sizeof **blocks);
    if (!*blocks) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", prefix);
    for (int i = 0; i < n; i++) {
        rl_weights_name(p, sizeof p, prefix, "transformer_blocks.%d", i);
        rl_status rc = rl_tblock_bind(&(*blocks)[i], ws, p, cfg, err);
        if (rc) {
            free(*blocks);
            *blocks = NULL;
            return rc;
        }
    }
    return RL_OK;
}

const float *rl_tblock_stack_fwd(const rl_tblock *blocks, int n, float ***h,
                                 rl_tblock_acts **acts, rl_arena *arena, const float *x,
                                 const float *ctx, int B, int T, int Tk, int ctx_rep)
{
    const int train = h != NULL;
    if (train) {
        *h = rl_arena_bytes(arena, (size_t)n * sizeof **h);
        *acts = rl_arena_bytes(arena, (size_t)n * sizeof **acts);
        RL_ASSERT(*h && *acts);
    }
    const float *in = x;
    float *hb = NULL;
    for (int i = 0; i < n; i++) {
        if (train || !hb) hb = rl_arena_take(arena, (size_t)B * T * blocks[i].C);
        rl_tblock_fwd(&blocks[i], train ? &(*acts)[i] : NULL, arena, hb, in, ctx, B, T, Tk,
                      ctx_rep);
        if (train) (*h)[i] = hb;
        in = hb;
    }
    return in;
}

// ---- Transformer2DModel -----------------------------------------------------------------

rl_status rl_xformer_bind(rl_xformer *l, rl_weights *ws, const char *prefix,
                          const rl_xformer_cfg *cfg, rl_err *err)
{
    char p[256];
    const int C = cfg->C, inner = cfg->NH * cfg->HS;
    *l = (rl_xformer){ .C = C, .inner = inner, .linear = cfg->linear };
    rl_weights_name(p, sizeof p, prefix, "norm");
    RL_TRY(rl_gnorm_bind(&l->norm, ws, p, C, cfg->G, cfg->norm_eps > 0 ? cfg->norm_eps : 1e-6f,
                         err));
    if (cfg->linear) {
        rl_weights_name(p, sizeof p, prefix, "proj_in");
        RL_TRY(rl_fc_bind(&l->proj_in_l, ws, p, C, inner, 1, err));
        rl_weights_name(p, sizeof p, prefix, "proj_out");
        RL_TRY(rl_fc_bind(&l->proj_out_l, ws, p, inner, C, 1, err));
    } else {
        rl_weights_name(p, sizeof p, prefix, "proj_in");
        RL_TRY(rl_conv_bind(&l->proj_in_c, ws, p, C, inner, 1, 1, 0, 1, err));
        rl_weights_name(p, sizeof p, prefix, "proj_out");
        RL_TRY(rl_conv_bind(&l->proj_out_c, ws, p, inner, C, 1, 1, 0, 1, err));
    }
    if (cfg->n_layers <= 0)
        return rl_errf(err, RL_E_PARAM, "%s: %d transformer layers", prefix, cfg->n_layers);
    rl_tblock_cfg bc = { .C = inner, .NH = cfg->NH, .HS = cfg->HS, .Ckv = cfg->Ckv,
                         .attn_bias = cfg->attn_bias, .ln_eps = 1e-5f };
    RL_TRY(rl_tblock_stack_bind(&l->blocks, ws, prefix, cfg->n_layers, &bc, err));
    l->n_blocks = cfg->n_layers;
    return RL_OK;
}

void rl_xformer_free(rl_xformer *l)
{
    free(l->blocks);
    l->blocks = NULL;
    l->n_blocks = 0;
}

void rl_xformer_fwd(const rl_xformer *l, rl_xformer_acts *a, rl_arena *arena, float *out,
                    const float *x, const float *ctx, int B, int H, int W, int Tk, int ctx_rep)
{
    const int train = a != NULL, C = l->C, I = l->inner, S = H * W, G = l->norm.G;
    rl_xformer_acts local;
    rl_arena_mark m = rl_arena_get_mark(arena);
    if (!train) a = &local;

    // seq (B, S, I) = proj_in(norm(x)) in sequence layout (inference: the normed image and the
    // layout temporary are released once seq exists)
    a->seq = rl_arena_take(arena, (size_t)B * S * I);
    rl_arena_mark mt = rl_arena_get_mark(arena);
    a->n = rl_arena_take(arena, (size_t)B * C * S);             // (B, C, S)
    a->mean = rl_arena_take(arena, (size_t)B * G);
    a->rstd = rl_arena_take(arena, (size_t)B * G);
    rl_groupnorm_fwd(a->n, a->mean, a->rstd, x, l->norm.w, l->norm.b, B, C, S, G, l->norm.eps);
    if (l->linear) {
        float *t = rl_arena_take(arena, (size_t)B * S * C);
        rl_permute4(t, a->n, (int[]){ B, C, S, 1 }, (int[]){ 0, 2, 1, 3 });
        rl_fc_fwd(&l->proj_in_l, a->seq, t, B * S);
    } else {
        float *t = rl_arena_take(arena, (size_t)B * I * S);
        rl_conv_fwd(&l->proj_in_c, arena, t, a->n, B, H, W);
        rl_permute4(a->seq, t, (int[]){ B, I, S, 1 }, (int[]){ 0, 2, 1, 3 });
    }
    if (!train) rl_arena_reset(arena, mt);

    const float *h = rl_tblock_stack_fwd(l->blocks, l->n_blocks, train ? &a->h : NULL,
                                         train ? &a->blocks : NULL, arena, a->seq, ctx, B, S, Tk,
                                         ctx_rep);

    // out (B, C, S) = proj_out(h) in image layout, + x
    if (l->linear) {
        float *t = rl_arena_take(arena, (size_t)B * S * C);
        rl_fc_fwd(&l->proj_out_l, t, h, B * S);
        rl_permute4(out, t, (int[]){ B, S, C, 1 }, (int[]){ 0, 2, 1, 3 });
    } else {
        float *t = rl_arena_take(arena, (size_t)B * I * S);
        rl_permute4(t, h, (int[]){ B, S, I, 1 }, (int[]){ 0, 2, 1, 3 });
        rl_conv_fwd(&l->proj_out_c, arena, out, t, B, H, W);
    }
    rl_add_inplace(out, x, (size_t)B * C * S);
    if (!train) rl_arena_reset(arena, m);
}

// ---- Downsample2D / Upsample2D ------------------------------------------------------------

rl_status rl_downsample_bind(rl_downsample *l, rl_weights *ws, const char *prefix, int C, int OC,
                             int pad, rl_err *err)
{
    char p[256];
    rl_weights_name(p, sizeof p, prefix, "conv");
    RL_TRY(rl_conv_bind(&l->conv, ws, p, C, OC, 3, 2, pad, 1, err));
    if (pad == 0) {   // diffusers pads (0, 1, 0, 1) itself when padding == 0
        l->conv.pad_b = 1;
        l->conv.pad_r = 1;
    }
    return RL_OK;
}

void rl_downsample_fwd(const rl_downsample *l, rl_arena *arena, float *out, const float *x,
                       int B, int H, int W)
{
    rl_conv_fwd(&l->conv, arena, out, x, B, H, W);
}

rl_status rl_upsample_bind(rl_upsample *l, rl_weights *ws, const char *prefix, int C, int OC,
                           rl_err *err)
{
    char p[256];
    rl_weights_name(p, sizeof p, prefix, "conv");
    return rl_conv_bind(&l->conv, ws, p, C, OC, 3, 1, 1, 1, err);
}

void rl_upsample_fwd_to(const rl_upsample *l, rl_upsample_acts *a, rl_arena *arena, float *out,
                        const float *x, int B, int H, int W, int Ho, int Wo)
{
    const int train = a != NULL, C = l->conv.C;
    rl_upsample_acts local;
    rl_arena_mark m = rl_arena_get_mark(arena);
    if (!train) a = &local;
    a->up = rl_arena_take(arena, (size_t)B * C * Ho * Wo);
    if (Ho == 2 * H && Wo == 2 * W) {
        rl_upsample2x_fwd(a->up, x, B * C, H, W);
    } else {
        // F.interpolate(mode="nearest", size=(Ho, Wo)): src = floor(dst * in / out)
        for (size_t bc = 0; bc < (size_t)B * C; bc++) {
            const float *xc = x + bc * H * W;
            float *uc = a->up + bc * Ho * Wo;
            for (int i = 0; i < Ho; i++) {
                const int si = (int)((long)i * H / Ho);
                for (int j = 0; j < Wo; j++) uc[(size_t)i * Wo + j] = xc[(size_t)si * W + (long)j * W / Wo];
            }
        }
    }
    rl_conv_fwd(&l->conv, arena, out, a->up, B, Ho, Wo);
    if (!train) rl_arena_reset(arena, m);
}

void rl_upsample_fwd(const rl_upsample *l, rl_upsample_acts *a, rl_arena *arena, float *out,
                     const float *x, int B, int H, int W)
{
    rl_upsample_fwd_to(l, a, arena, out, x, B, H, W, 2 * H, 2 * W);
}

// ---- backward -----------------------------------------------------------------------------
/* Every backward accumulates into dx / dctx / dtemb and into the gradient mirror g (NULL: no
 * weight gradients). Temporaries come from the arena inside a mark released on return. */

#define GW(g, f) ((g) ? (float *)(g)->f : NULL)

void rl_downsample_bwd(const rl_downsample *l, const rl_downsample *g, rl_arena *arena, float *dx,
                       const float *dout, const float *x, int B, int H, int W)
{
    rl_conv_bwd(&l->conv, g ? &g->conv : NULL, arena, dx, dout, x, B, H, W);
}

void rl_upsample_bwd(const rl_upsample *l, const rl_upsample *g, const rl_upsample_acts *a,
                     rl_arena *arena, float *dx, const float *dout, int B, int H, int W)
{
    rl_arena_mark m = rl_arena_get_mark(arena);
    const int C = l->conv.C;
    float *dup = rl_arena_take_zeros(arena, (size_t)B * C * 4 * H * W);
    rl_conv_bwd(&l->conv, g ? &g->conv : NULL, arena, dup, dout, a->up, B, 2 * H, 2 * W);
    if (dx) rl_upsample2x_bwd(dx, dup, B * C, H, W);
    rl_arena_reset(arena, m);
}

void rl_resnet_bwd(const rl_resnet *r, const rl_resnet *g, const rl_resnet_acts *a,
                   rl_arena *arena, float *dx, float *dtemb, const float *dout, const float *x,
                   const float *temb, int B, int H, int W)
{
    const int C = r->C, OC = r->OC, S = H * W;
    const size_t no = (size_t)B * OC * S, ni = (size_t)B * C * S;
    rl_arena_mark m = rl_arena_get_mark(arena);

    const float *ds = dout;                                  // d(shortcut + h)
    if (r->out_scale != 1.0f) {
        float *t = rl_arena_take(arena, no);
        rl_scale_fwd(t, dout, 1.0f / r->out_scale, no);
        ds = t;
    }
    if (r->has_shortcut)
        rl_conv_bwd(&r->conv_shortcut, g ? &g->conv_shortcut : NULL, arena, dx, ds, x, B, H, W);
    else if (dx)
        rl_add_inplace(dx, ds, no);

    float *da2 = rl_arena_take_zeros(arena, no), *dn2 = rl_arena_take_zeros(arena, no);
    float *dh1 = rl_arena_take_zeros(arena, no);
    rl_conv_bwd(&r->conv2, g ? &g->conv2 : NULL, arena, da2, ds, a->a2, B, H, W);
    rl_silu_bwd(dn2, da2, a->n2, no);
    rl_groupnorm_bwd(dh1, GW(g, norm2.w), GW(g, norm2.b), dn2, a->h1, a->mean2, a->rstd2,
                     r->norm2.w, B, OC, S, r->norm2.G);
    if (r->Ct > 0) {
        float *dt = rl_arena_take_zeros(arena, (size_t)B * OC);
        float *dta = rl_arena_take_zeros(arena, (size_t)B * r->Ct);
        rl_add_bias_nc_bwd(dt, dh1, B, OC, S);
        rl_fc_bwd(&r->time_emb_proj, g ? &g->time_emb_proj : NULL, dta, dt, a->ta, B);
        if (dtemb) rl_silu_bwd(dtemb, dta, temb, (size_t)B * r->Ct);
    }
    float *da1 = rl_arena_take_zeros(arena, ni), *dn1 = rl_arena_take_zeros(arena, ni);
    rl_conv_bwd(&r->conv1, g ? &g->conv1 : NULL, arena, da1, dh1, a->a1, B, H, W);
    rl_silu_bwd(dn1, da1, a->n1, ni);
    rl_groupnorm_bwd(dx, GW(g, norm1.w), GW(g, norm1.b), dn1, x, a->mean1, a->rstd1, r->norm1.w,
                     B, C, S, r->norm1.G);
    rl_arena_reset(arena, m);
}

/* Backward of attn_core: dy (B, Tq, Cq) -> dxs (B, Tq, Cq), dctx (B / ctx_rep, Tk, Ckv) (or
 * into dxs for self-attention). The kernel sees the folded batches of the forward, so dK and
 * dV of a shared context are summed by rl_attn_bwd itself, in its fixed order. */
static void attn_core_bwd(const rl_attention *l, const rl_attention *g, const rl_attention_acts *a,
                          rl_arena *arena, float *dxs, float *dctx, const float *dy,
                          const float *xs, const float *ctx, int B, int Tq, int Tk, int ctx_rep)
{
    const int inner = l->NH * l->HS;
    const float scale = 1.0f / sqrtf((float)l->HS);
    if (!ctx) { Tk = Tq; ctx_rep = 1; }
    const int Bk = B / ctx_rep, Tqk = ctx_rep * Tq;
    const float *src = ctx ? ctx : xs;
    float *dsrc = ctx ? dctx : dxs;
    const int need_kv = dsrc || g;                       // anything upstream of K and V
    rl_arena_mark m = rl_arena_get_mark(arena);

    float *dO = rl_arena_take_zeros(arena, (size_t)B * Tq * inner);
    rl_fc_bwd(&l->to_out, g ? &g->to_out : NULL, dO, dy, a->o, B * Tq);
    float *dq = rl_arena_take_zeros(arena, (size_t)B * Tq * inner);
    float *dk = need_kv ? rl_arena_take_zeros(arena, (size_t)Bk * Tk * inner) : NULL;
    float *dv = need_kv ? rl_arena_take_zeros(arena, (size_t)Bk * Tk * inner) : NULL;
    float *scratch = rl_arena_take(arena, rl_attn_bwd_scratch_floats(Tqk, Tk,
                                                                     rl_par_max_threads()));
    rl_attn_bwd(dq, dk, dv, scratch, dO, a->att, a->q, a->k, a->v, Bk, l->NH, Tqk, Tk, l->HS,
                scale, 0);
    rl_fc_bwd(&l->to_q, g ? &g->to_q : NULL, dxs, dq, xs, B * Tq);
    if (need_kv) {
        rl_fc_bwd(&l->to_k, g ? &g->to_k : NULL, dsrc, dk, src, Bk * Tk);
        rl_fc_bwd(&l->to_v, g ? &g->to_v : NULL, dsrc, dv, src, Bk * Tk);
    }
    rl_arena_reset(arena, m);
}

void rl_attention_bwd(const rl_attention *l, const rl_attention *g, const rl_attention_acts *a,
                      rl_arena *arena, float *dx, float *dctx, const float *dout, const float *x,
                      const float *ctx, int B, int Tq, int Tk, int ctx_rep)
{
    const size_t n = (size_t)B * Tq * l->Cq;
    rl_arena_mark m = rl_arena_get_mark(arena);
    const float *dy = dout;
    if (l->rescale != 1.0f) {
        float *t = rl_arena_take(arena, n);
        rl_scale_fwd(t, dout, 1.0f / l->rescale, n);
        dy = t;
    }
    if (l->residual && dx) rl_add_inplace(dx, dy, n);
    float *dxs = dx ? dx : rl_arena_take_zeros(arena, n);
    attn_core_bwd(l, g, a, arena, dxs, dctx, dy, x, ctx, B, Tq, Tk, ctx_rep);
    rl_arena_reset(arena, m);
}

void rl_attention_bwd_image(const rl_attention *l, const rl_attention *g,
                            const rl_attention_acts *a, rl_arena *arena, float *dx,
                            const float *dout, const float *x, int B, int H, int W)
{
    const int C = l->Cq, S = H * W;
    const size_t n = (size_t)B * C * S;
    rl_arena_mark m = rl_arena_get_mark(arena);
    const float *dy = dout;                                   // (B, C, S)
    if (l->rescale != 1.0f) {
        float *t = rl_arena_take(arena, n);
        rl_scale_fwd(t, dout, 1.0f / l->rescale, n);
        dy = t;
    }
    if (l->residual && dx) rl_add_inplace(dx, dy, n);
    float *dys = rl_arena_take(arena, n), *dxs = rl_arena_take_zeros(arena, n);
    float *dxn = rl_arena_take(arena, n);
    rl_permute4(dys, dy, (int[]){ B, C, S, 1 }, (int[]){ 0, 2, 1, 3 });
    attn_core_bwd(l, g, a, arena, dxs, NULL, dys, a->xs, NULL, B, S, S, 1);
    rl_permute4(dxn, dxs, (int[]){ B, S, C, 1 }, (int[]){ 0, 2, 1, 3 });
    if (l->has_norm)
        rl_groupnorm_bwd(dx, GW(g, group_norm.w), GW(g, group_norm.b), dxn, x, a->mean, a->rstd,
                         l->group_norm.w, B, C, S, l->group_norm.G);
    else if (dx)
        rl_add_inplace(dx, dxn, n);
    rl_arena_reset(arena, m);
}

void rl_ff_bwd(const rl_ff *l, const rl_ff *g, const rl_ff_acts *a, rl_arena *arena, float *dx,
               const float *dout, const float *x, int T)
{
    rl_arena_mark m = rl_arena_get_mark(arena);
    float *dg = rl_arena_take_zeros(arena, (size_t)T * l->I);
    float *dp = rl_arena_take_zeros(arena, (size_t)T * 2 * l->I);
    rl_fc_bwd(&l->out, g ? &g->out : NULL, dg, dout, a->g, T);
    rl_geglu_bwd(dp, dg, a->p, T, l->I);
    rl_fc_bwd(&l->proj, g ? &g->proj : NULL, dx, dp, x, T);
    rl_arena_reset(arena, m);
}

void rl_tblock_bwd(const rl_tblock *l, const rl_tblock *g, const rl_tblock_acts *a,
                   rl_arena *arena, float *dx, float *dctx, const float *dout, const float *x,
                   const float *ctx, int B, int T, int Tk, int ctx_rep)
{
    const int C = l->C;
    const size_t n = (size_t)B * T * C;
    rl_arena_mark m = rl_arena_get_mark(arena);

    // dh: gradient of the residual stream, walked back from out to x
    float *dh = rl_arena_take(arena, n);
    memcpy(dh, dout, n * sizeof(float));
    float *dn = rl_arena_take_zeros(arena, n);
    rl_ff_bwd(&l->ff, g ? &g->ff : NULL, &a->ff, arena, dn, dout, a->n3, B * T);
    const float *h3in = l->has_attn2 ? a->h2 : a->h1;
    rl_layernorm_bwd(dh, GW(g, norm3.w), GW(g, norm3.b), dn, h3in, a->mean3, a->rstd3, l->norm3.w,
                     B * T, C);
    if (l->has_attn2) {
        memset(dn, 0, n * sizeof(float));
        attn_core_bwd(&l->attn2, g ? &g->attn2 : NULL, &a->attn2, arena, dn, dctx, dh, a->n2,
                      l->attn2_self ? NULL : ctx, B, T, Tk, ctx_rep);
        rl_layernorm_bwd(dh, GW(g, norm2.w), GW(g, norm2.b), dn, a->h1, a->mean2, a->rstd2,
                         l->norm2.w, B * T, C);
    }
    memset(dn, 0, n * sizeof(float));
    attn_core_bwd(&l->attn1, g ? &g->attn1 : NULL, &a->attn1, arena, dn, NULL, dh, a->n1, NULL, B,
                  T, T, 1);
    if (dx) rl_add_inplace(dx, dh, n);
    rl_layernorm_bwd(dx, GW(g, norm1.w), GW(g, norm1.b), dn, x, a->mean1, a->rstd1, l->norm1.w,
                     B * T, C);
    rl_arena_reset(arena, m);
}

float *rl_tblock_stack_bwd(const rl_tblock *blocks, const rl_tblock *g, int n, float *const *h,
                           const rl_tblock_acts *acts, rl_arena *arena, float *dctx, float *dh,
                           const float *x, const float *ctx, int B, int T, int Tk, int ctx_rep)
{
    const size_t nt = (size_t)B * T * (n ? blocks->C : 0);
    float *din = rl_arena_take(arena, nt);
    for (int i = n - 1; i >= 0; i--) {
        const float *in = i ? h[i - 1] : x;
        memset(din, 0, nt * sizeof(float));
        rl_tblock_bwd(&blocks[i], g ? &g[i] : NULL, &acts[i], arena, din, dctx, dh, in, ctx, B, T,
                      Tk, ctx_rep);
        float *t = dh; dh = din; din = t;
    }
    return dh;
}

void rl_xformer_bwd(const rl_xformer *l, const rl_xformer *g, const rl_xformer_acts *a,
                    rl_arena *arena, float *dx, float *dctx, const float *dout, const float *x,
                    const float *ctx, int B, int H, int W, int Tk, int ctx_rep)
{
    const int C = l->C, I = l->inner, S = H * W;
    const size_t nc = (size_t)B * C * S, ni = (size_t)B * S * I;
    rl_arena_mark m = rl_arena_get_mark(arena);
    if (dx) rl_add_inplace(dx, dout, nc);

    const float *hl = l->n_blocks ? a->h[l->n_blocks - 1] : a->seq;   // (B, S, I)
    float *dh = rl_arena_take_zeros(arena, ni);
    if (l->linear) {
        float *dt = rl_arena_take(arena, nc);
        rl_permute4(dt, dout, (int[]){ B, C, S, 1 }, (int[]){ 0, 2, 1, 3 });
        rl_fc_bwd(&l->proj_out_l, g ? &g->proj_out_l : NULL, dh, dt, hl, B * S);
    } else {
        float *t = rl_arena_take(arena, ni), *dt = rl_arena_take_zeros(arena, ni);
        rl_permute4(t, hl, (int[]){ B, S, I, 1 }, (int[]){ 0, 2, 1, 3 });
        rl_conv_bwd(&l->proj_out_c, g ? &g->proj_out_c : NULL, arena, dt, dout, t, B, H, W);
        rl_permute4(dh, dt, (int[]){ B, I, S, 1 }, (int[]){ 0, 2, 1, 3 });
    }
    dh = rl_tblock_stack_bwd(l->blocks, g ? g->blocks : NULL, l->n_blocks, a->h, a->blocks, arena,
                             dctx, dh, a->seq, ctx, B, S, Tk, ctx_rep);
    float *dn = rl_arena_take_zeros(arena, nc);                        // (B, C, S)
    if (l->linear) {
        float *tn = rl_arena_take(arena, nc), *dtn = rl_arena_take_zeros(arena, nc);
        rl_permute4(tn, a->n, (int[]){ B, C, S, 1 }, (int[]){ 0, 2, 1, 3 });
        rl_fc_bwd(&l->proj_in_l, g ? &g->proj_in_l : NULL, dtn, dh, tn, B * S);
        rl_permute4(dn, dtn, (int[]){ B, S, C, 1 }, (int[]){ 0, 2, 1, 3 });
    } else {
        float *ds = rl_arena_take(arena, ni);
        rl_permute4(ds, dh, (int[]){ B, S, I, 1 }, (int[]){ 0, 2, 1, 3 });
        rl_conv_bwd(&l->proj_in_c, g ? &g->proj_in_c : NULL, arena, dn, ds, a->n, B, H, W);
    }
    rl_groupnorm_bwd(dx, GW(g, norm.w), GW(g, norm.b), dn, x, a->mean, a->rstd, l->norm.w, B, C,
                     S, l->norm.G);
    rl_arena_reset(arena, m);
}
