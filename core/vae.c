/* core/vae.c - AutoencoderKL (diffusers), see vae.h.
 *
 * Both halves are built at bind time as a flat list of stages in execution order, named
 * exactly as diffusers names the modules, so forward, backward, parameter counting and the
 * error messages all walk one list. */
#include "core/vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/ops.h"

#define VAE_EPS 1e-6f           // every GroupNorm of AutoencoderKL

// ---- binding ------------------------------------------------------------------------

static rl_vae_stage *push(rl_vae_path *p, int cap, rl_vae_kind kind, int C, int OC)
{
    RL_ASSERT(p->n < cap);
    rl_vae_stage *s = &p->st[p->n++];
    *s = (rl_vae_stage){ .kind = kind, .C = C, .OC = OC };
    return s;
}

static rl_status bind_resnet(rl_vae_path *p, int cap, rl_weights *ws, const char *name, int C,
                             int OC, int G, rl_err *err)
{
    rl_vae_stage *s = push(p, cap, RL_VAE_RESNET, C, OC);
    rl_resnet_cfg rc = { .C = C, .OC = OC, .Ct = 0, .G = G, .G_out = G, .eps = VAE_EPS,
                         .out_scale = 1.0f, .use_in_shortcut = -1 };
    return rl_resnet_bind(&s->resnet, ws, name, &rc, err);
}

/* UNetMidBlock2D as the VAE builds it: resnet, single-head attention with group_norm, resnet. */
static rl_status bind_mid(rl_vae_path *p, int cap, rl_weights *ws, const char *prefix,
                          const char *half, const rl_vae_cfg *c, rl_err *err)
{
    rl_status rc;
    char n[256];
    const int C = c->block_out_channels[c->n_blocks - 1], G = c->norm_num_groups;
    rl_weights_name(n, sizeof n, prefix, "%s.mid_block.resnets.0", half);
    if ((rc = bind_resnet(p, cap, ws, n, C, C, G, err))) return rc;
    if (c->mid_block_add_attention) {
        // attention_head_dim = C: one head of size C
        rl_vae_stage *s = push(p, cap, RL_VAE_ATTN, C, C);
        rl_attention_cfg ac = { .Cq = C, .Ckv = 0, .NH = 1, .HS = C, .qkv_bias = 1,
                                .out_bias = 1, .norm_groups = G, .norm_eps = VAE_EPS,
                                .residual = 1, .rescale = 1.0f };
        rl_weights_name(n, sizeof n, prefix, "%s.mid_block.attentions.0", half);
        if ((rc = rl_attention_bind(&s->attn, ws, n, &ac, err))) return rc;
    }
    rl_weights_name(n, sizeof n, prefix, "%s.mid_block.resnets.1", half);
    return bind_resnet(p, cap, ws, n, C, C, G, err);
}

static rl_status bind_conv(rl_vae_path *p, int cap, rl_weights *ws, const char *name, int C,
                           int OC, int K, rl_err *err)
{
    rl_vae_stage *s = push(p, cap, RL_VAE_CONV, C, OC);
    return rl_conv_bind(&s->conv, ws, name, C, OC, K, 1, K / 2, 1, err);
}

static rl_status bind_gnsilu(rl_vae_path *p, int cap, rl_weights *ws, const char *name, int C,
                             int G, rl_err *err)
{
    rl_vae_stage *s = push(p, cap, RL_VAE_GNSILU, C, C);
    return rl_gnorm_bind(&s->gn, ws, name, C, G, VAE_EPS, err);
}

static rl_status bind_encoder(rl_vae_path *p, rl_weights *ws, const char *prefix,
                              const rl_vae_cfg *c, rl_err *err)
{
    rl_status rc;
    char n[256];
    const int nb = c->n_blocks, G = c->norm_num_groups, L = c->layers_per_block;
    const int cap = 1 + nb * (L + 1) + 3 + 3;
    if (!(p->st = calloc((size_t)cap, sizeof *p->st)))
        return rl_errf(err, RL_E_NOMEM, "vae: cannot allocate %d encoder stages", cap);

    rl_weights_name(n, sizeof n, prefix, "encoder.conv_in");
    if ((rc = bind_conv(p, cap, ws, n, c->in_channels, c->block_out_channels[0], 3, err)))
        return rc;
    int ch = c->block_out_channels[0];
    for (int i = 0; i < nb; i++) {
        const int out = c->block_out_channels[i];
        for (int j = 0; j < L; j++) {
            rl_weights_name(n, sizeof n, prefix, "encoder.down_blocks.%d.resnets.%d", i, j);
            if ((rc = bind_resnet(p, cap, ws, n, j == 0 ? ch : out, out, G, err))) return rc;
        }
        ch = out;
        if (i < nb - 1) {    // Downsample2D(padding=0): F.pad (0, 1, 0, 1), 3x3 stride 2
            rl_vae_stage *s = push(p, cap, RL_VAE_DOWN, out, out);
            rl_weights_name(n, sizeof n, prefix, "encoder.down_blocks.%d.downsamplers.0", i);
            if ((rc = rl_downsample_bind(&s->down, ws, n, out, out, 0, err))) return rc;
        }
    }
    if ((rc = bind_mid(p, cap, ws, prefix, "encoder", c, err))) return rc;
    rl_weights_name(n, sizeof n, prefix, "encoder.conv_norm_out");
    if ((rc = bind_gnsilu(p, cap, ws, n, ch, G, err))) return rc;
    rl_weights_name(n, sizeof n, prefix, "encoder.conv_out");
    if ((rc = bind_conv(p, cap, ws, n, ch, 2 * c->latent_channels, 3, err))) return rc;
    if (c->use_quant_conv) {
        rl_weights_name(n, sizeof n, prefix, "quant_conv");
        if ((rc = bind_conv(p, cap, ws, n, 2 * c->latent_channels, 2 * c->latent_channels, 1,
                            err))) return rc;
    }
    return RL_OK;
}

static rl_status bind_decoder(rl_vae_path *p, rl_weights *ws, const char *prefix,
                              const rl_vae_cfg *c, rl_err *err)
{
    rl_status rc;
    char n[256];
    const int nb = c->n_blocks, G = c->norm_num_groups, L = c->layers_per_block + 1;
    const int cap = 2 + 3 + nb * (L + 1) + 2;
    if (!(p->st = calloc((size_t)cap, sizeof *p->st)))
        return rl_errf(err, RL_E_NOMEM, "vae: cannot allocate %d decoder stages", cap);

    if (c->use_post_quant_conv) {
        rl_weights_name(n, sizeof n, prefix, "post_quant_conv");
        if ((rc = bind_conv(p, cap, ws, n, c->latent_channels, c->latent_channels, 1, err)))
            return rc;
    }
    int ch = c->block_out_channels[nb - 1];
    rl_weights_name(n, sizeof n, prefix, "decoder.conv_in");
    if ((rc = bind_conv(p, cap, ws, n, c->latent_channels, ch, 3, err))) return rc;
    if ((rc = bind_mid(p, cap, ws, prefix, "decoder", c, err))) return rc;
    for (int i = 0; i < nb; i++) {
        const int out = c->block_out_channels[nb - 1 - i];   // reversed block_out_channels
        for (int j = 0; j < L; j++) {
            rl_weights_name(n, sizeof n, prefix, "decoder.up_blocks.%d.resnets.%d", i, j);
            if ((rc = bind_resnet(p, cap, ws, n, j == 0 ? ch : out, out, G, err))) return rc;
        }
        ch = out;
        if (i < nb - 1) {    // Upsample2D(use_conv=True): nearest 2x, 3x3 conv
            rl_vae_stage *s = push(p, cap, RL_VAE_UP, out, out);
            rl_weights_name(n, sizeof n, prefix, "decoder.up_blocks.%d.upsamplers.0", i);
            if ((rc = rl_upsample_bind(&s->up, ws, n, out, out, err))) return rc;
        }
    }
    rl_weights_name(n, sizeof n, prefix, "decoder.conv_norm_out");
    if ((rc = bind_gnsilu(p, cap, ws, n, ch, G, err))) return rc;
    rl_weights_name(n, sizeof n, prefix, "decoder.conv_out");
    return bind_conv(p, cap, ws, n, ch, c->out_channels, 3, err);
}

rl_status rl_vae_bind(rl_vae *v, rl_weights *ws, const char *prefix, const rl_vae_cfg *cfg,
                      rl_err *err)
{
    rl_status rc;
    *v = (rl_vae){ .cfg = *cfg };
    if ((rc = bind_encoder(&v->enc, ws, prefix, cfg, err))) return rc;
    return bind_decoder(&v->dec, ws, prefix, cfg, err);
}

void rl_vae_free(rl_vae *v)
{
    free(v->enc.st);
    free(v->dec.st);
    v->enc = (rl_vae_path){ 0 };
    v->dec = (rl_vae_path){ 0 };
}

static size_t conv_params(const rl_conv *c)
{
    return (size_t)c->OC * c->C * c->K * c->K + (c->b ? (size_t)c->OC : 0);
}

static size_t path_params(const rl_vae_path *p)
{
    size_t n = 0;
    for (int i = 0; i < p->n; i++) {
        const rl_vae_stage *s = &p->st[i];
        const size_t C = (size_t)s->C;
        switch (s->kind) {
        case RL_VAE_CONV: n += conv_params(&s->conv); break;
        case RL_VAE_DOWN: n += conv_params(&s->down.conv); break;
        case RL_VAE_UP: n += conv_params(&s->up.conv); break;
        case RL_VAE_GNSILU: n += 2 * C; break;
        case RL_VAE_ATTN: n += 2 * C + 4 * (C * C + C); break;
        case RL_VAE_RESNET:
            n += 2 * C + conv_params(&s->resnet.conv1) + 2 * (size_t)s->OC +
                 conv_params(&s->resnet.conv2);
            if (s->resnet.has_shortcut) n += conv_params(&s->resnet.conv_shortcut);
            break;
        }
    }
    return n;
}

size_t rl_vae_n_params(const rl_vae *v)
{
    return path_params(&v->enc) + path_params(&v->dec);
}

// ---- forward ------------------------------------------------------------------------

/* Output spatial size of stage s for an (H, W) input. */
static void stage_hw(const rl_vae_stage *s, int H, int W, int *Ho, int *Wo)
{
    *Ho = H; *Wo = W;
    if (s->kind == RL_VAE_DOWN) rl_conv_out_hw(&s->down.conv, H, W, Ho, Wo);
    if (s->kind == RL_VAE_UP) { *Ho = 2 * H; *Wo = 2 * W; }
}

/* GroupNorm then SiLU; n keeps the normalised values (before SiLU) when non-NULL. */
static void gnsilu_fwd(const rl_gnorm *gn, rl_arena *arena, float *out, float *n_keep,
                       float *mean, float *rstd, const float *x, int B, int S)
{
    rl_arena_mark m = rl_arena_get_mark(arena);
    if (!mean) mean = rl_arena_floats(arena, (size_t)B * gn->G);
    if (!rstd) rstd = rl_arena_floats(arena, (size_t)B * gn->G);
    float *nrm = n_keep ? n_keep : out;
    rl_groupnorm_fwd(nrm, mean, rstd, x, gn->w, gn->b, B, gn->C, S, gn->G, gn->eps);
    rl_silu_fwd(out, nrm, (size_t)B * gn->C * S);
    rl_arena_reset(arena, m);
}

/* Runs stage i from x (B, C, H, W) into out; a (may be NULL) receives what backward needs. */
static void stage_fwd(const rl_vae_stage *s, rl_vae_acts *a, int i, rl_arena *arena, float *out,
                      const float *x, int B, int H, int W)
{
    switch (s->kind) {
    case RL_VAE_CONV: rl_conv_fwd(&s->conv, arena, out, x, B, H, W); break;
    case RL_VAE_DOWN: rl_downsample_fwd(&s->down, arena, out, x, B, H, W); break;
    case RL_VAE_UP: rl_upsample_fwd(&s->up, a ? &a->up[i] : NULL, arena, out, x, B, H, W); break;
    case RL_VAE_RESNET:
        rl_resnet_fwd(&s->resnet, a ? &a->res[i] : NULL, arena, out, x, NULL, B, H, W);
        break;
    case RL_VAE_ATTN:
        rl_attention_fwd_image(&s->attn, a ? &a->att[i] : NULL, arena, out, x, B, H, W);
        break;
    case RL_VAE_GNSILU:
        if (a) {
            const size_t nG = (size_t)B * s->gn.G, n = (size_t)B * s->C * H * W;
            a->gn_mean[i] = rl_arena_floats(arena, nG);
            a->gn_rstd[i] = rl_arena_floats(arena, nG);
            a->gn_out[i] = rl_arena_floats(arena, n);
            gnsilu_fwd(&s->gn, arena, out, a->gn_out[i], a->gn_mean[i], a->gn_rstd[i], x, B,
                       H * W);
        } else {
            gnsilu_fwd(&s->gn, arena, out, NULL, NULL, NULL, x, B, H * W);
        }
        break;
    }
}

/* Inference over a path: two ping-pong buffers sized for the largest stage output; the last
 * stage writes to out. *Ho, *Wo receive the output size. */
static void path_fwd(const rl_vae_path *p, rl_arena *arena, float *out, const float *x, int B,
                     int H, int W)
{
    rl_arena_mark m = rl_arena_get_mark(arena);
    size_t biggest = 0;
    int h = H, w = W;
    for (int i = 0; i < p->n; i++) {
        stage_hw(&p->st[i], h, w, &h, &w);
        size_t n = (size_t)B * p->st[i].OC * h * w;
        if (i < p->n - 1 && n > biggest) biggest = n;
    }
    float *buf[2] = { rl_arena_floats(arena, biggest), rl_arena_floats(arena, biggest) };
    const float *cur = x;
    h = H; w = W;
    for (int i = 0; i < p->n; i++) {
        float *dst = i == p->n - 1 ? out : buf[i & 1];
        int ho, wo;
        stage_hw(&p->st[i], h, w, &ho, &wo);
        stage_fwd(&p->st[i], NULL, i, arena, dst, cur, B, h, w);
        cur = dst; h = ho; w = wo;
    }
    rl_arena_reset(arena, m);
}

/* Training forward over a path: every stage input and acts kept in a (from arena). */
static void path_fwd_train(const rl_vae_path *p, rl_vae_acts *a, rl_arena *arena,
                           const float *x, int B, int H, int W)
{
    const int n = p->n;
    *a = (rl_vae_acts){ .B = B, .H = H, .W = W };
    a->x = rl_arena_bytes(arena, (size_t)(n + 1) * sizeof *a->x);
    a->Hs = rl_arena_bytes(arena, (size_t)(n + 1) * sizeof *a->Hs);
    a->Ws = rl_arena_bytes(arena, (size_t)(n + 1) * sizeof *a->Ws);
    a->res = rl_arena_bytes(arena, (size_t)n * sizeof *a->res);
    a->att = rl_arena_bytes(arena, (size_t)n * sizeof *a->att);
    a->up = rl_arena_bytes(arena, (size_t)n * sizeof *a->up);
    a->gn_mean = rl_arena_bytes(arena, (size_t)n * sizeof *a->gn_mean);
    a->gn_rstd = rl_arena_bytes(arena, (size_t)n * sizeof *a->gn_rstd);
    a->gn_out = rl_arena_bytes(arena, (size_t)n * sizeof *a->gn_out);
    RL_ASSERT(a->x && a->Hs && a->Ws && a->res && a->att && a->up && a->gn_mean &&
              a->gn_rstd && a->gn_out);
    a->x[0] = (float *)x;   // read only: backward never writes stage inputs
    a->Hs[0] = H; a->Ws[0] = W;
    for (int i = 0; i < n; i++) {
        int ho, wo;
        stage_hw(&p->st[i], a->Hs[i], a->Ws[i], &ho, &wo);
        a->x[i + 1] = rl_arena_floats(arena, (size_t)B * p->st[i].OC * ho * wo);
        RL_ASSERT(a->x[i + 1]);
        stage_fwd(&p->st[i], a, i, arena, a->x[i + 1], a->x[i], B, a->Hs[i], a->Ws[i]);
        a->Hs[i + 1] = ho; a->Ws[i + 1] = wo;
    }
}

void rl_vae_decode(const rl_vae *v, rl_arena *arena, float *img, const float *z, int B, int h,
                   int w)
{
    path_fwd(&v->dec, arena, img, z, B, h, w);
}

/* moments (B, 2 lc, S) -> mean, logvar (B, lc, S); logvar = clamp(., -30, 20). */
static void split_moments(float *mean, float *logvar, const float *mom, int B, int lc, int S)
{
    const size_t half = (size_t)lc * S;
    for (int b = 0; b < B; b++) {
        const float *mb = mom + (size_t)b * 2 * half;
        memcpy(mean + (size_t)b * half, mb, half * sizeof(float));
        for (size_t i = 0; i < half; i++) {
            float lv = mb[half + i];
            logvar[(size_t)b * half + i] = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
        }
    }
}

void rl_vae_encode(const rl_vae *v, rl_arena *arena, float *mean, float *logvar, const float *x,
                   int B, int H, int W)
{
    const int s = rl_vae_cfg_scale(&v->cfg), lc = v->cfg.latent_channels;
    const int S = (H / s) * (W / s);
    rl_arena_mark m = rl_arena_get_mark(arena);
    float *mom = rl_arena_floats(arena, (size_t)B * 2 * lc * S);
    path_fwd(&v->enc, arena, mom, x, B, H, W);
    split_moments(mean, logvar, mom, B, lc, S);
    rl_arena_reset(arena, m);
}

void rl_vae_decode_train(const rl_vae *v, rl_vae_acts *a, rl_arena *arena, float *img,
                         const float *z, int B, int h, int w)
{
    path_fwd_train(&v->dec, a, arena, z, B, h, w);
    const int n = v->dec.n;
    memcpy(img, a->x[n], (size_t)B * v->cfg.out_channels * a->Hs[n] * a->Ws[n] * sizeof(float));
}

void rl_vae_encode_train(const rl_vae *v, rl_vae_acts *a, rl_arena *arena, float *mean,
                         float *logvar, const float *x, int B, int H, int W)
{
    path_fwd_train(&v->enc, a, arena, x, B, H, W);
    const int n = v->enc.n;
    split_moments(mean, logvar, a->x[n], B, v->cfg.latent_channels, a->Hs[n] * a->Ws[n]);
}

// ---- backward -----------------------------------------------------------------------

static void stage_bwd(const rl_vae_stage *s, const rl_vae_stage *gs, const rl_vae_acts *a, int i,
                      rl_arena *arena, float *dx, const float *dout, const float *x, int B, int H,
                      int W)
{
    switch (s->kind) {
    case RL_VAE_CONV: rl_conv_bwd(&s->conv, &gs->conv, arena, dx, dout, x, B, H, W); break;
    case RL_VAE_DOWN: rl_downsample_bwd(&s->down, &gs->down, arena, dx, dout, x, B, H, W); break;
    case RL_VAE_UP: rl_upsample_bwd(&s->up, &gs->up, &a->up[i], arena, dx, dout, B, H, W); break;
    case RL_VAE_RESNET:
        rl_resnet_bwd(&s->resnet, &gs->resnet, &a->res[i], arena, dx, NULL, dout, x, NULL, B, H,
                      W);
        break;
    case RL_VAE_ATTN:
        rl_attention_bwd_image(&s->attn, &gs->attn, &a->att[i], arena, dx, dout, x, B, H, W);
        break;
    case RL_VAE_GNSILU: {
        // out = silu(n), n = groupnorm(x)
        const size_t n = (size_t)B * s->C * H * W;
        rl_arena_mark m = rl_arena_get_mark(arena);
        float *dn = rl_arena_zeros(arena, n);
        RL_ASSERT(dn);
        rl_silu_bwd(dn, dout, a->gn_out[i], n);
        rl_groupnorm_bwd(dx, (float *)gs->gn.w, (float *)gs->gn.b, dn, x, a->gn_mean[i],
                         a->gn_rstd[i], s->gn.w, B, s->C, H * W, s->gn.G);
        rl_arena_reset(arena, m);
        break;
    }
    }
}

/* dout: gradient of the path output; dx (may be NULL) += gradient of the path input. */
static void path_bwd(const rl_vae_path *p, const rl_vae_path *g, const rl_vae_acts *a,
                     rl_arena *arena, float *dx, const float *dout)
{
    rl_arena_mark m = rl_arena_get_mark(arena);
    const int B = a->B;
    const float *dcur = dout;
    for (int i = p->n - 1; i >= 0; i--) {
        const rl_vae_stage *s = &p->st[i];
        float *din = dx;
        if (i > 0) {
            din = rl_arena_zeros(arena, (size_t)B * s->C * a->Hs[i] * a->Ws[i]);
            RL_ASSERT(din);
        }
        stage_bwd(s, &g->st[i], a, i, arena, din, dcur, a->x[i], B, a->Hs[i], a->Ws[i]);
        dcur = din;
    }
    rl_arena_reset(arena, m);
}

void rl_vae_decode_bwd(const rl_vae *v, const rl_vae *g, const rl_vae_acts *a, rl_arena *arena,
                       float *dz, const float *dimg)
{
    path_bwd(&v->dec, &g->dec, a, arena, dz, dimg);
}

void rl_vae_encode_bwd(const rl_vae *v, const rl_vae *g, const rl_vae_acts *a, rl_arena *arena,
                       float *dx, const float *dmean, const float *dlogvar)
{
    const int n = v->enc.n, lc = v->cfg.latent_channels, B = a->B;
    const size_t half = (size_t)lc * a->Hs[n] * a->Ws[n];
    rl_arena_mark m = rl_arena_get_mark(arena);
    float *dmom = rl_arena_floats(arena, (size_t)B * 2 * half);
    RL_ASSERT(dmom);
    for (int b = 0; b < B; b++) {
        const float *mom = a->x[n] + (size_t)b * 2 * half;
        float *d = dmom + (size_t)b * 2 * half;
        memcpy(d, dmean + (size_t)b * half, half * sizeof(float));
        // logvar = clamp(raw, -30, 20): gradient passes where -30 <= raw <= 20 (torch)
        for (size_t i = 0; i < half; i++) {
            float raw = mom[half + i];
            d[half + i] = raw >= -30.0f && raw <= 20.0f ? dlogvar[(size_t)b * half + i] : 0.0f;
        }
    }
    path_bwd(&v->enc, &g->enc, a, arena, dx, dmom);
    rl_arena_reset(arena, m);
}

void rl_vae_to_rgb(uint8_t *rgb, float *frame, const float *img, int H, int W)
{
    const size_t S = (size_t)H * W;
    for (size_t i = 0; i < S; i++)
        for (int ch = 0; ch < 3; ch++) {
            float v = img[(size_t)ch * S + i] / 2.0f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            if (frame) frame[i * 3 + ch] = v;
            rgb[i * 3 + ch] = (uint8_t)lrintf(v * 255.0f);   // round half to even, as numpy
        }
}
