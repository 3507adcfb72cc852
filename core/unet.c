/* core/unet.c - UNetMotionModel / UNet2DConditionModel assembly, see unet.h. */
#include "core/unet.h"

#include <stdio.h>
#include <string.h>

#include "core/ops.h"
#include "core/par.h"

// ---- bind ---------------------------------------------------------------------------------

static rl_resnet_cfg res_cfg(const rl_unet_cfg *c, int C, int OC, float out_scale)
{
    return (rl_resnet_cfg){ .C = C, .OC = OC, .Ct = c->time_embed_dim, .G = c->norm_num_groups,
                            .G_out = c->norm_num_groups, .eps = c->norm_eps,
                            .out_scale = out_scale, .use_in_shortcut = -1 };
}

static rl_status bind_xformer(rl_xformer *x, rl_weights *ws, const char *prefix,
                              const rl_unet_cfg *c, int C, int heads, int cross, int layers,
                              rl_err *err)
{
    rl_xformer_cfg xc = { .C = C, .G = c->norm_num_groups, .NH = heads, .HS = C / heads,
                          .Ckv = cross, .n_layers = layers, .linear = c->use_linear_projection,
                          .attn_bias = 0, .norm_eps = 1e-6f };
    return rl_xformer_bind(x, ws, prefix, &xc, err);
}

static rl_status bind_motion(rl_motion *m, rl_weights *ws, const char *prefix,
                             const rl_unet_cfg *c, int C, int heads, int layers, rl_err *err)
{
    rl_motion_cfg mc = { .C = C, .NH = heads, .G = c->norm_num_groups, .n_layers = layers,
                         .max_seq = c->motion_max_seq, .Ckv = 0, .double_self = 1,
                         .pe_scale = c->pe_scale };
    return rl_motion_bind(m, ws, prefix, &mc, err);
}

/* Layer j of down/up block i ("<kind>.<i>."): resnets.j from C to OC channels, then
 * attentions.j (cross-attention blocks) and motion_modules.j (motion UNets) at OC. r: the
 * index into the per-level config lists (heads, cross_dim, motion_heads). */
static rl_status bind_layer(rl_unet_block *b, int j, rl_weights *ws, rl_weights *wm,
                            const rl_unet_cfg *c, const char *kind, int i, int r, int C, int OC,
                            int xf_layers, int motion_xf_layers, rl_err *err)
{
    char p[256];
    snprintf(p, sizeof p, "%s.%d.resnets.%d", kind, i, j);
    rl_resnet_cfg rc = res_cfg(c, C, OC, 1.0f);
    RL_TRY(rl_resnet_bind(&b->resnets[j], ws, p, &rc, err));
    if (b->cross) {
        snprintf(p, sizeof p, "%s.%d.attentions.%d", kind, i, j);
        RL_TRY(bind_xformer(&b->attns[j], ws, p, c, OC, c->heads[r], c->cross_dim[r], xf_layers,
                            err));
    }
    if (b->has_motion) {
        snprintf(p, sizeof p, "%s.%d.motion_modules.%d", kind, i, j);
        RL_TRY(bind_motion(&b->motions[j], wm, p, c, OC, c->motion_heads[r], motion_xf_layers,
                           err));
    }
    return RL_OK;
}

static rl_status bind_all(rl_unet *u, rl_weights *ws, rl_weights *wm, const rl_unet_cfg *c,
                          rl_err *err)
{
    char p[256];
    const int n = c->n_blocks;
    u->C0 = c->channels[0];
    u->Ct = c->time_embed_dim;
    RL_TRY(rl_fc_bind(&u->t_lin1, ws, "time_embedding.linear_1", u->C0, u->Ct, 1, err));
    RL_TRY(rl_fc_bind(&u->t_lin2, ws, "time_embedding.linear_2", u->Ct, u->Ct, 1, err));
    RL_TRY(rl_conv_bind(&u->conv_in, ws, "conv_in", c->in_channels, u->C0, 3, 1, 1, 1, err));

    int out_ch = c->channels[0];
    for (int i = 0; i < n; i++) {
        rl_unet_block *b = &u->down[i];
        const int in_ch = out_ch;
        out_ch = c->channels[i];
        if (c->layers[i] > RL_UNET_MAX_LAYERS)
            return rl_errf(err, RL_E_PARAM, "layers_per_block[%d] = %d exceeds %d", i,
                           c->layers[i], RL_UNET_MAX_LAYERS);
        b->n_layers = c->layers[i];
        b->cross = c->down[i] == RL_UNET_CROSSATTN;
        b->has_motion = c->has_motion;
        for (int j = 0; j < b->n_layers; j++)
            RL_TRY(bind_layer(b, j, ws, wm, c, "down_blocks", i, i, j == 0 ? in_ch : out_ch,
                              out_ch, c->xf_layers[i], c->motion_xf_layers[i], err));
        if (i < n - 1) {
            b->has_sampler = 1;
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0", i);
            RL_TRY(rl_downsample_bind(&b->down, ws, p, out_ch, out_ch, c->downsample_padding, err));
        }
    }

    // mid
    const int Cm = c->channels[n - 1];
    if (c->mid_layers > RL_UNET_MAX_LAYERS)
        return rl_errf(err, RL_E_PARAM, "mid_block_layers = %d exceeds %d", c->mid_layers,
                       RL_UNET_MAX_LAYERS);
    u->has_mid_motion = c->has_motion && c->motion_mid;
    rl_resnet_cfg mrc = res_cfg(c, Cm, Cm, c->mid_block_scale_factor);
    RL_TRY(rl_resnet_bind(&u->mid_res[0], ws, "mid_block.resnets.0", &mrc, err));
    for (int k = 0; k < c->mid_layers; k++) {
        snprintf(p, sizeof p, "mid_block.attentions.%d", k);
        RL_TRY(bind_xformer(&u->mid_attn[k], ws, p, c, Cm, c->heads[n - 1], c->cross_dim[n - 1],
                            c->mid_xf_layers, err));
        if (u->has_mid_motion) {
            snprintf(p, sizeof p, "mid_block.motion_modules.%d", k);
            RL_TRY(bind_motion(&u->mid_motion[k], wm, p, c, Cm, c->motion_heads[n - 1],
                               c->motion_mid_xf_layers, err));
        }
        snprintf(p, sizeof p, "mid_block.resnets.%d", k + 1);
        RL_TRY(rl_resnet_bind(&u->mid_res[k + 1], ws, p, &mrc, err));
    }

    // up
    out_ch = c->channels[n - 1];
    for (int i = 0; i < n; i++) {
        rl_unet_block *b = &u->up[i];
        const int r = n - 1 - i;                          // the matching down block
        const int prev = out_ch;
        out_ch = c->channels[r];
        const int in_ch = c->channels[r > 0 ? r - 1 : 0];
        b->n_layers = c->layers[r] + 1;
        if (b->n_layers > RL_UNET_MAX_LAYERS)
            return rl_errf(err, RL_E_PARAM, "layers_per_block[%d] + 1 = %d exceeds %d", r,
                           b->n_layers, RL_UNET_MAX_LAYERS);
        b->cross = c->up[i] == RL_UNET_CROSSATTN;
        b->has_motion = c->has_motion;
        for (int j = 0; j < b->n_layers; j++) {
            const int skip = j == b->n_layers - 1 ? in_ch : out_ch;
            const int res_in = j == 0 ? prev : out_ch;
            RL_TRY(bind_layer(b, j, ws, wm, c, "up_blocks", i, r, res_in + skip, out_ch,
                              c->xf_layers_up[i], c->motion_xf_layers_up[i], err));
        }
        if (i < n - 1) {
            b->has_sampler = 1;
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0", i);
            RL_TRY(rl_upsample_bind(&b->up, ws, p, out_ch, out_ch, err));
        }
    }

    RL_TRY(rl_gnorm_bind(&u->norm_out, ws, "conv_norm_out", u->C0, c->norm_num_groups, c->norm_eps,
                         err));
    RL_TRY(rl_conv_bind(&u->conv_out, ws, "conv_out", u->C0, c->out_channels, 3, 1, 1, 1, err));
    RL_TRY(rl_weights_check_all_used(ws, NULL, err));
    if (wm != ws) RL_TRY(rl_weights_check_all_used(wm, NULL, err));
    return RL_OK;
}

rl_status rl_unet_bind(rl_unet *u, rl_weights *ws, rl_weights *ws_motion, const rl_unet_cfg *cfg,
                       rl_err *err)
{
    memset(u, 0, sizeof *u);
    u->cfg = *cfg;
    if (cfg->n_blocks < 1 || cfg->n_blocks > RL_UNET_MAX_BLOCKS)
        return rl_errf(err, RL_E_PARAM, "unet: %d blocks (1..%d supported)", cfg->n_blocks,
                       RL_UNET_MAX_BLOCKS);
    rl_status rc = bind_all(u, ws, ws_motion ? ws_motion : ws, cfg, err);
    if (rc) rl_unet_free(u);
    return rc;
}

void rl_unet_free(rl_unet *u)
{
    for (int i = 0; i < RL_UNET_MAX_BLOCKS; i++) {
        for (int j = 0; j < RL_UNET_MAX_LAYERS; j++) {
            rl_xformer_free(&u->down[i].attns[j]);
            rl_xformer_free(&u->up[i].attns[j]);
            rl_motion_free(&u->down[i].motions[j]);
            rl_motion_free(&u->up[i].motions[j]);
        }
    }
    for (int k = 0; k < RL_UNET_MAX_LAYERS; k++) {
        rl_xformer_free(&u->mid_attn[k]);
        rl_motion_free(&u->mid_motion[k]);
    }
}

// ---- forward ------------------------------------------------------------------------------

typedef struct { int C, H, W; } dims;

/* Walks the architecture for the skip shapes, the largest stage input or output (channels x
 * pixels, *max_out) and the largest skip concatenation (*max_cat). */
static void walk(const rl_unet *u, int H, int W, dims *skips, int *n_skips, size_t *max_out,
                 size_t *max_cat)
{
    const rl_unet_cfg *c = &u->cfg;
    const int n = c->n_blocks;
    size_t mo = (size_t)c->in_channels * H * W, mc = 0;
    int ns = 0, C = u->C0;
#define SEE(m, ch, h, w) do { size_t e_ = (size_t)(ch) * (h) * (w); if (e_ > (m)) (m) = e_; } while (0)
    SEE(mo, C, H, W);
    skips[ns++] = (dims){ C, H, W };
    for (int i = 0; i < n; i++) {
        C = c->channels[i];
        for (int j = 0; j < u->down[i].n_layers; j++) {
            SEE(mo, C, H, W);
            skips[ns++] = (dims){ C, H, W };
        }
        if (u->down[i].has_sampler) {
            int Ho, Wo;
            rl_conv_out_hw(&u->down[i].down.conv, H, W, &Ho, &Wo);
            H = Ho; W = Wo;
            SEE(mo, C, H, W);
            skips[ns++] = (dims){ C, H, W };
        }
    }
    *n_skips = ns;
    // up path: concat of h and a skip, then the upsampled output
    int top = ns;
    for (int i = 0; i < n; i++) {
        const rl_unet_block *b = &u->up[i];
        for (int j = 0; j < b->n_layers; j++) {
            const dims s = skips[--top];
            SEE(mc, C + s.C, H, W);
            C = b->resnets[j].OC;
            SEE(mo, C, H, W);
        }
        if (b->has_sampler && top > 0) {
            H = skips[top - 1].H; W = skips[top - 1].W;
            SEE(mo, C, H, W);
        }
    }
#undef SEE
    *max_out = mo;
    *max_cat = mc;
}

static rl_status check_call(const rl_unet *u, int t_n, int emb_frames, int L, int D, int N,
                            int F, int H, int W, rl_err *err)
{
    const rl_unet_cfg *c = &u->cfg;
    if (N < 1 || F < 1 || H < 1 || W < 1 || L < 1)
        return rl_errf(err, RL_E_PARAM, "unet: impossible input N=%d F=%d H=%d W=%d L=%d", N, F,
                       H, W, L);
    if (t_n != 1 && t_n != N)
        return rl_errf(err, RL_E_PARAM, "unet: %d timesteps for a batch of %d", t_n, N);
    if (emb_frames != 1 && emb_frames != F)
        return rl_errf(err, RL_E_PARAM, "unet: text embeddings for %d frames, expected 1 or %d",
                       emb_frames, F);
    if (c->has_motion && F > c->motion_max_seq)
        return rl_errf(err, RL_E_PARAM, "unet: %d frames exceed motion_max_seq_length %d (use "
                       "context windows)", F, c->motion_max_seq);
    for (int i = 0; i < c->n_blocks; i++)
        if ((c->down[i] == RL_UNET_CROSSATTN || c->up[i] == RL_UNET_CROSSATTN ||
             i == c->n_blocks - 1) && c->cross_dim[i] != D)
            return rl_errf(err, RL_E_PARAM, "unet: text embeddings of width %d, block %d expects "
                           "cross_attention_dim %d", D, i, c->cross_dim[i]);
    return RL_OK;
}

/* Makes sure the arena can hand out `bytes` above its current mark without growing later:
 * one allocation of that size, released at once. */
static rl_status reserve(rl_arena *arena, size_t bytes, const char *what, int N, int F, int H,
                         int W, rl_err *err)
{
    rl_arena_mark m = rl_arena_get_mark(arena);
    const size_t peak = arena->peak;
    void *p = rl_arena_bytes(arena, bytes);
    rl_arena_reset(arena, m);
    arena->peak = peak;                  // a probe, not a use: peak keeps measuring the calls
    if (!p)
        return rl_errf(err, RL_E_NOMEM, "unet: cannot allocate %.1f MiB of %s activations for "
                       "N=%d F=%d %dx%d latents", (double)bytes / 1048576.0, what, N, F, H, W);
    return RL_OK;
}

/* The forward, once, for both modes. A == NULL: inference (two ping-pong buffers, a concat
 * buffer and copies of the skips; layers release their temporaries). A != NULL: training
 * (every stage output is a fresh arena buffer, kept with the layers' activations). */
static void forward(const rl_unet *u, rl_unet_acts *A, rl_arena *arena, float *out,
                    const float *x, const float *t, int t_n, const float *emb, int emb_frames,
                    int L, int N, int F, int H, int W)
{
    const rl_unet_cfg *c = &u->cfg;
    const int n = c->n_blocks, train = A != NULL;
    const int B = N * F, C0 = u->C0, Ct = u->Ct, Cin = c->in_channels;
    const int ctx_rep = emb_frames == 1 ? F : 1;

    // time embedding: linear_2(silu(linear_1(proj(t)))) (N, Ct), repeated over frames (B, Ct)
    float *tv = rl_arena_take(arena, (size_t)N), *tp = rl_arena_take(arena, (size_t)N * C0);
    for (int i = 0; i < N; i++) tv[i] = t[t_n == 1 ? 0 : i];
    rl_timestep_embed(tp, tv, N, C0, c->flip_sin_to_cos, c->freq_shift, 10000.0f);
    float *t1 = rl_arena_take(arena, (size_t)N * Ct);
    float *t1a = train ? rl_arena_take(arena, (size_t)N * Ct) : t1;
    float *e2 = rl_arena_take(arena, (size_t)N * Ct);
    rl_fc_fwd(&u->t_lin1, t1, tp, N);
    rl_silu_fwd(t1a, t1, (size_t)N * Ct);
    rl_fc_fwd(&u->t_lin2, e2, t1a, N);
    float *temb = rl_arena_take(arena, (size_t)B * Ct);
    for (int b = 0; b < B; b++)
        memcpy(temb + (size_t)b * Ct, e2 + (size_t)(b / F) * Ct, (size_t)Ct * sizeof(float));

    dims sk[RL_UNET_MAX_SKIPS];
    int ns;
    size_t mo, mc;
    walk(u, H, W, sk, &ns, &mo, &mc);
    float *skip[RL_UNET_MAX_SKIPS];
    float *pp[3] = { NULL, NULL, NULL };                // inference: ping, pong, concat
    if (!train) {
        for (int i = 0; i < ns; i++)
            skip[i] = rl_arena_take(arena, (size_t)B * sk[i].C * sk[i].H * sk[i].W);
        pp[0] = rl_arena_take(arena, (size_t)B * mo);
        pp[1] = rl_arena_take(arena, (size_t)B * mo);
        pp[2] = rl_arena_take(arena, (size_t)B * mc);
    }
    // the buffer for the next stage's output: fresh when training, else the one h is not in
#define NEXT(h, nf) (train ? rl_arena_take(arena, (nf)) : ((h) == pp[0] ? pp[1] : pp[0]))
    // ... and for a stage whose output is a skip connection: inference writes it in place
#define NEXT_SKIP(h, nf) (train ? rl_arena_take(arena, (nf)) : skip[top])
    // training keeps the stage output itself as the skip
#define PUSH(h)                                                                 \
    do {                                                                        \
        if (train) skip[top] = (h);                                             \
        top++;                                                                  \
    } while (0)

    // (N, Cin, F, S) -> (N, F, Cin, S) = (B, Cin, H, W), conv_in
    int C = C0, top = 0;
    float *xin = train ? rl_arena_take(arena, (size_t)B * Cin * H * W) : pp[1];
    rl_permute4(xin, x, (int[]){ N, Cin, F, H * W }, (int[]){ 0, 2, 1, 3 });
    float *h = NEXT_SKIP(xin, (size_t)B * C0 * H * W), *o;
    rl_conv_fwd(&u->conv_in, arena, h, xin, B, H, W);
    PUSH(h);

    for (int i = 0; i < n; i++) {
        const rl_unet_block *b = &u->down[i];
        rl_unet_block_acts *ba = train ? &A->down[i] : NULL;
        if (ba) { ba->H = H; ba->W = W; }
        for (int j = 0; j < b->n_layers; j++) {
            C = b->resnets[j].OC;
            const size_t nf = (size_t)B * C * H * W;
            const int last = b->has_motion ? 2 : b->cross ? 1 : 0;   // the stage that is the skip
            o = last == 0 ? NEXT_SKIP(h, nf) : NEXT(h, nf);
            rl_resnet_fwd(&b->resnets[j], ba ? &ba->res[j] : NULL, arena, o, h, temb, B, H, W);
            if (ba) ba->res_in[j] = h;
            h = o;
            if (b->cross) {
                o = last == 1 ? NEXT_SKIP(h, nf) : NEXT(h, nf);
                rl_xformer_fwd(&b->attns[j], ba ? &ba->xf[j] : NULL, arena, o, h, emb, B, H, W,
                               L, ctx_rep);
                if (ba) ba->xf_in[j] = h;
                h = o;
            }
            if (b->has_motion) {
                o = NEXT_SKIP(h, nf);
                rl_motion_fwd(&b->motions[j], ba ? &ba->mot[j] : NULL, arena, o, h, N, F, H, W);
                if (ba) ba->mot_in[j] = h;
                h = o;
            }
            PUSH(h);
        }
        if (b->has_sampler) {
            int Ho, Wo;
            rl_conv_out_hw(&b->down.conv, H, W, &Ho, &Wo);
            o = NEXT_SKIP(h, (size_t)B * C * Ho * Wo);
            rl_downsample_fwd(&b->down, arena, o, h, B, H, W);
            if (ba) ba->samp_in = h;
            h = o;
            H = Ho; W = Wo;
            PUSH(h);
        }
    }

    // mid: resnets.0, then (attentions.k [motion_modules.k] resnets.k+1)
    {
        const size_t nf = (size_t)B * C * H * W;
        o = NEXT(h, nf);
        rl_resnet_fwd(&u->mid_res[0], train ? &A->mid_res[0] : NULL, arena, o, h, temb, B, H, W);
        if (train) A->mid_res_in[0] = h;
        h = o;
        for (int k = 0; k < c->mid_layers; k++) {
            o = NEXT(h, nf);
            rl_xformer_fwd(&u->mid_attn[k], train ? &A->mid_xf[k] : NULL, arena, o, h, emb, B, H,
                           W, L, ctx_rep);
            if (train) A->mid_xf_in[k] = h;
            h = o;
            if (u->has_mid_motion) {
                o = NEXT(h, nf);
                rl_motion_fwd(&u->mid_motion[k], train ? &A->mid_mot[k] : NULL, arena, o, h, N, F,
                              H, W);
                if (train) A->mid_mot_in[k] = h;
                h = o;
            }
            o = NEXT(h, nf);
            rl_resnet_fwd(&u->mid_res[k + 1], train ? &A->mid_res[k + 1] : NULL, arena, o, h,
                          temb, B, H, W);
            if (train) A->mid_res_in[k + 1] = h;
            h = o;
        }
    }

    // up: (concat skip, resnets.j [attentions.j] [motion_modules.j]), upsamplers.0
    for (int i = 0; i < n; i++) {
        const rl_unet_block *b = &u->up[i];
        rl_unet_block_acts *ba = train ? &A->up[i] : NULL;
        if (ba) { ba->H = H; ba->W = W; }
        for (int j = 0; j < b->n_layers; j++) {
            const dims s = sk[--top];
            float *cat = train ? rl_arena_take(arena, (size_t)B * (C + s.C) * H * W) : pp[2];
            rl_concat_fwd(cat, h, skip[top], B, C, s.C, H * W);
            C = b->resnets[j].OC;
            const size_t nf = (size_t)B * C * H * W;
            o = NEXT(h, nf);
            rl_resnet_fwd(&b->resnets[j], ba ? &ba->res[j] : NULL, arena, o, cat, temb, B, H, W);
            if (ba) ba->res_in[j] = cat;
            h = o;
            if (b->cross) {
                o = NEXT(h, nf);
                rl_xformer_fwd(&b->attns[j], ba ? &ba->xf[j] : NULL, arena, o, h, emb, B, H, W,
                               L, ctx_rep);
                if (ba) ba->xf_in[j] = h;
                h = o;
            }
            if (b->has_motion) {
                o = NEXT(h, nf);
                rl_motion_fwd(&b->motions[j], ba ? &ba->mot[j] : NULL, arena, o, h, N, F, H, W);
                if (ba) ba->mot_in[j] = h;
                h = o;
            }
        }
        if (b->has_sampler) {
            // upsample to the size of the next skip (2x unless the input was not a multiple)
            const int Ho = sk[top - 1].H, Wo = sk[top - 1].W;
            o = NEXT(h, (size_t)B * C * Ho * Wo);
            rl_upsample_fwd_to(&b->up, ba ? &ba->up : NULL, arena, o, h, B, H, W, Ho, Wo);
            if (ba) ba->samp_in = h;
            h = o;
            H = Ho; W = Wo;
        }
    }

    // conv_norm_out -> silu -> conv_out, (B, Cout, S) -> (N, Cout, F, S)
    const int G = u->norm_out.G, S = H * W, Cout = c->out_channels;
    float *mean = rl_arena_take(arena, (size_t)B * G), *rstd = rl_arena_take(arena, (size_t)B * G);
    float *gn = NEXT(h, (size_t)B * C * S);
    rl_groupnorm_fwd(gn, mean, rstd, h, u->norm_out.w, u->norm_out.b, B, C, S, G,
                     u->norm_out.eps);
    float *act = train ? rl_arena_take(arena, (size_t)B * C * S) : gn;
    rl_silu_fwd(act, gn, (size_t)B * C * S);
    float *y = train ? rl_arena_take(arena, (size_t)B * Cout * S) : h;   // inference: h is free now
    rl_conv_fwd(&u->conv_out, arena, y, act, B, H, W);
    rl_permute4(out, y, (int[]){ N, F, Cout, S }, (int[]){ 0, 2, 1, 3 });
#undef NEXT
#undef NEXT_SKIP
#undef PUSH

    if (train) {
        A->tp = tp; A->t1 = t1; A->t1a = t1a; A->temb = temb; A->xin = xin;
        A->n_skips = ns;
        for (int i = 0; i < ns; i++) {
            A->skip[i] = skip[i];
            A->skip_c[i] = sk[i].C; A->skip_h[i] = sk[i].H; A->skip_w[i] = sk[i].W;
        }
        A->pre_out = h; A->gn = gn; A->gn_mean = mean; A->gn_rstd = rstd; A->act = act;
    }
}

rl_status rl_unet_fwd(const rl_unet *u, rl_arena *arena, float *out, const float *x,
                      const float *t, int t_n, const float *emb, int emb_frames, int L, int D,
                      int N, int F, int H, int W, rl_err *err)
{
    RL_TRY(check_call(u, t_n, emb_frames, L, D, N, F, H, W, err));
    RL_TRY(reserve(arena, rl_unet_plan_bytes(u, 0, N, F, H, W, L, emb_frames, rl_par_max_threads()),
                   "inference", N, F, H, W, err));
    rl_arena_mark m0 = rl_arena_get_mark(arena);
    forward(u, NULL, arena, out, x, t, t_n, emb, emb_frames, L, N, F, H, W);
    rl_arena_reset(arena, m0);
    return RL_OK;
}

rl_status rl_unet_fwd_train(const rl_unet *u, rl_unet_acts *a, rl_arena *arena, float *out,
                            const float *x, const float *t, int t_n, const float *emb,
                            int emb_frames, int L, int D, int N, int F, int H, int W,
                            rl_err *err)
{
    RL_TRY(check_call(u, t_n, emb_frames, L, D, N, F, H, W, err));
    const int f = 1 << (u->cfg.n_blocks - 1);
    if (H % f || W % f)
        return rl_errf(err, RL_E_PARAM, "unet: training needs latents whose sides are multiples "
                       "of %d, got %dx%d", f, H, W);
    RL_TRY(reserve(arena, rl_unet_plan_bytes(u, 1, N, F, H, W, L, emb_frames, rl_par_max_threads()),
                   "training", N, F, H, W, err));
    memset(a, 0, sizeof *a);
    *a = (rl_unet_acts){ .N = N, .F = F, .H = H, .W = W, .L = L, .D = D,
                         .emb_frames = emb_frames, .ctx_rep = emb_frames == 1 ? F : 1,
                         .emb = emb };
    forward(u, a, arena, out, x, t, t_n, emb, emb_frames, L, N, F, H, W);
    return RL_OK;
}

// ---- backward -----------------------------------------------------------------------------

/* The gradient of the stage being walked back lives in one of two buffers; a stage's backward
 * accumulates its input gradient into the other one, zeroed first. */
typedef struct { float *buf[2]; float *dh; } dstream;

static float *dnext(dstream *d, size_t n)
{
    float *o = d->dh == d->buf[0] ? d->buf[1] : d->buf[0];
    memset(o, 0, n * sizeof(float));
    return o;
}

void rl_unet_bwd(const rl_unet *u, const rl_unet *g, int which, const rl_unet_acts *A,
                 rl_arena *arena, float *dx, float *demb, const float *dout)
{
    const rl_unet_cfg *c = &u->cfg;
    const int n = c->n_blocks, N = A->N, F = A->F, B = N * F, L = A->L;
    const int C0 = u->C0, Ct = u->Ct, Cin = c->in_channels, Cout = c->out_channels;
    const int ctx_rep = A->ctx_rep;
    const float *emb = A->emb;
    // mirrors of the groups that train; NULL mirrors skip the weight gradients
    const rl_unet *gi = g && (which & RL_UNET_GRAD_IMAGE) ? g : NULL;
    const rl_unet *gm = g && (which & RL_UNET_GRAD_MOTION) ? g : NULL;
    // nothing below the first motion module wants a gradient: stop there
    const int stop_at_motion = !gi && !dx && !demb;
    if (!gi && !gm && !dx && !demb) return;
    rl_arena_mark m0 = rl_arena_get_mark(arena);

    const int H = A->up[n - 1].H, W = A->up[n - 1].W;          // the output resolution
    dims sk[RL_UNET_MAX_SKIPS];
    int ns;
    size_t mo, mc;
    walk(u, A->H, A->W, sk, &ns, &mo, &mc);
    dstream d = { { rl_arena_take(arena, (size_t)B * mo), rl_arena_take(arena, (size_t)B * mo) },
                 NULL };
    float *dcat = rl_arena_take(arena, (size_t)B * mc);
    float *dskip[RL_UNET_MAX_SKIPS];
    for (int i = 0; i < ns; i++) dskip[i] = rl_arena_take_zeros(arena,
                                                                (size_t)B * sk[i].C * sk[i].H * sk[i].W);
    // d(temb) is needed only for the time-embedding MLP, an image-layer weight
    float *dtemb = gi ? rl_arena_take_zeros(arena, (size_t)B * Ct) : NULL;
    float *o;
#define STEP(nf) (o = dnext(&d, (nf)))
#define DONE() (d.dh = o)

    // out = permute(conv_out(silu(conv_norm_out(h))))
    {
        const int S = H * W, G = u->norm_out.G;
        const size_t nf = (size_t)B * C0 * S;
        float *dy = rl_arena_take(arena, (size_t)B * Cout * S);          // (B, Cout, S)
        rl_permute4(dy, dout, (int[]){ N, Cout, F, S }, (int[]){ 0, 2, 1, 3 });
        float *dact = dnext(&d, nf);
        d.dh = dact;
        rl_conv_bwd(&u->conv_out, gi ? &gi->conv_out : NULL, arena, dact, dy, A->act, B, H, W);
        float *dgn = dcat;
        memset(dgn, 0, nf * sizeof(float));
        rl_silu_bwd(dgn, dact, A->gn, nf);
        STEP(nf);
        rl_groupnorm_bwd(o, gi ? (float *)gi->norm_out.w : NULL, gi ? (float *)gi->norm_out.b : NULL,
                         dgn, A->pre_out, A->gn_mean, A->gn_rstd, u->norm_out.w, B, C0, S, G);
        DONE();
    }

    // up blocks, last first: the forward popped the skips from ns - 1 down to 0, so walking
    // back takes them from 0 up
    int top = 0;
    for (int i = n - 1; i >= 0; i--) {
        const rl_unet_block *b = &u->up[i];
        const rl_unet_block_acts *ba = &A->up[i];
        const rl_unet_block *gb = gi ? &gi->up[i] : NULL, *gmb = gm ? &gm->up[i] : NULL;
        const int Hb = ba->H, Wb = ba->W, S = Hb * Wb;
        const int C = b->resnets[b->n_layers - 1].OC;
        if (b->has_sampler) {
            STEP((size_t)B * C * S);
            rl_upsample_bwd(&b->up, gb ? &gb->up : NULL, &ba->up, arena, o, d.dh, B, Hb, Wb);
            DONE();
        }
        for (int j = b->n_layers - 1; j >= 0; j--) {
            const rl_resnet *r = &b->resnets[j];
            const size_t nf = (size_t)B * r->OC * S;
            if (b->has_motion) {
                STEP(nf);
                rl_motion_bwd(&b->motions[j], gmb ? &gmb->motions[j] : NULL, &ba->mot[j], arena, o,
                              d.dh, ba->mot_in[j], N, F, Hb, Wb);
                DONE();
            }
            if (b->cross) {
                STEP(nf);
                rl_xformer_bwd(&b->attns[j], gb ? &gb->attns[j] : NULL, &ba->xf[j], arena, o, demb,
                               d.dh, ba->xf_in[j], emb, B, Hb, Wb, L, ctx_rep);
                DONE();
            }
            // resnet on concat(h, skip): split its input gradient
            const int Cs = sk[top].C, Ch = r->C - Cs;
            memset(dcat, 0, (size_t)B * r->C * S * sizeof(float));
            rl_resnet_bwd(r, gb ? &gb->resnets[j] : NULL, &ba->res[j], arena, dcat, dtemb, d.dh,
                          ba->res_in[j], A->temb, B, Hb, Wb);
            STEP((size_t)B * Ch * S);
            rl_concat_bwd(o, dskip[top++], dcat, B, Ch, Cs, S);
            DONE();
        }
    }
    RL_ASSERT(top == ns);

    // mid block, last first
    {
        const int Cm = c->channels[n - 1];
        const int Hm = A->down[n - 1].H, Wm = A->down[n - 1].W;   // no sampler after the last
        const size_t nf = (size_t)B * Cm * Hm * Wm;
        for (int k = c->mid_layers - 1; k >= 0; k--) {
            STEP(nf);
            rl_resnet_bwd(&u->mid_res[k + 1], gi ? &gi->mid_res[k + 1] : NULL, &A->mid_res[k + 1],
                          arena, o, dtemb, d.dh, A->mid_res_in[k + 1], A->temb, B, Hm, Wm);
            DONE();
            if (u->has_mid_motion) {
                STEP(nf);
                rl_motion_bwd(&u->mid_motion[k], gm ? &gm->mid_motion[k] : NULL, &A->mid_mot[k],
                              arena, o, d.dh, A->mid_mot_in[k], N, F, Hm, Wm);
                DONE();
            }
            STEP(nf);
            rl_xformer_bwd(&u->mid_attn[k], gi ? &gi->mid_attn[k] : NULL, &A->mid_xf[k], arena, o,
                           demb, d.dh, A->mid_xf_in[k], emb, B, Hm, Wm, L, ctx_rep);
            DONE();
        }
        STEP(nf);
        rl_resnet_bwd(&u->mid_res[0], gi ? &gi->mid_res[0] : NULL, &A->mid_res[0], arena, o, dtemb,
                      d.dh, A->mid_res_in[0], A->temb, B, Hm, Wm);
        DONE();
    }

    // down blocks, last first; each skip's gradient joins the stream where it was taken
    top = ns;
    for (int i = n - 1; i >= 0; i--) {
        const rl_unet_block *b = &u->down[i];
        const rl_unet_block_acts *ba = &A->down[i];
        const rl_unet_block *gb = gi ? &gi->down[i] : NULL, *gmb = gm ? &gm->down[i] : NULL;
        const int Hb = ba->H, Wb = ba->W, S = Hb * Wb;
        const int C = b->resnets[b->n_layers - 1].OC;
        if (b->has_sampler) {
            --top;
            rl_add_inplace(d.dh, dskip[top], (size_t)B * sk[top].C * sk[top].H * sk[top].W);
            STEP((size_t)B * C * S);
            rl_downsample_bwd(&b->down, gb ? &gb->down : NULL, arena, o, d.dh, ba->samp_in, B, Hb,
                              Wb);
            DONE();
        }
        for (int j = b->n_layers - 1; j >= 0; j--) {
            const rl_resnet *r = &b->resnets[j];
            const size_t nf = (size_t)B * r->OC * S;
            --top;
            rl_add_inplace(d.dh, dskip[top], nf);
            if (b->has_motion) {
                STEP(nf);
                rl_motion_bwd(&b->motions[j], gmb ? &gmb->motions[j] : NULL, &ba->mot[j], arena, o,
                              d.dh, ba->mot_in[j], N, F, Hb, Wb);
                DONE();
                if (stop_at_motion && i == 0 && j == 0) goto done;
            }
            if (b->cross) {
                STEP(nf);
                rl_xformer_bwd(&b->attns[j], gb ? &gb->attns[j] : NULL, &ba->xf[j], arena, o, demb,
                               d.dh, ba->xf_in[j], emb, B, Hb, Wb, L, ctx_rep);
                DONE();
            }
            STEP((size_t)B * r->C * S);
            rl_resnet_bwd(r, gb ? &gb->resnets[j] : NULL, &ba->res[j], arena, o, dtemb, d.dh,
                          ba->res_in[j], A->temb, B, Hb, Wb);
            DONE();
        }
    }
    RL_ASSERT(top == 1);

    // conv_in on the permuted input; its output was skip 0
    {
        const int S = A->H * A->W;
        rl_add_inplace(d.dh, dskip[0], (size_t)B * C0 * S);
        float *dxin = dx ? rl_arena_take_zeros(arena, (size_t)B * Cin * S) : NULL;
        if (dx || gi)
            rl_conv_bwd(&u->conv_in, gi ? &gi->conv_in : NULL, arena, dxin, d.dh, A->xin, B, A->H,
                        A->W);
        if (dx) {
            // (N, F, Cin, S) -> (N, Cin, F, S), accumulated
            float *t = rl_arena_take(arena, (size_t)B * Cin * S);
            rl_permute4(t, dxin, (int[]){ N, F, Cin, S }, (int[]){ 0, 2, 1, 3 });
            rl_add_inplace(dx, t, (size_t)B * Cin * S);
        }
    }

    // time embedding: temb[b] = e2[b / F]; e2 = linear_2(silu(linear_1(tp)))
    if (gi) {
        float *de2 = rl_arena_take_zeros(arena, (size_t)N * Ct);
        float *dt1a = rl_arena_take_zeros(arena, (size_t)N * Ct);
        float *dt1 = rl_arena_take_zeros(arena, (size_t)N * Ct);
        for (int b = 0; b < B; b++)                              // frames in order: fixed sums
            rl_add_inplace(de2 + (size_t)(b / F) * Ct, dtemb + (size_t)b * Ct, (size_t)Ct);
        rl_fc_bwd(&u->t_lin2, &gi->t_lin2, dt1a, de2, A->t1a, N);
        rl_silu_bwd(dt1, dt1a, A->t1, (size_t)N * Ct);
        rl_fc_bwd(&u->t_lin1, &gi->t_lin1, NULL, dt1, A->tp, N);
    }
done:
#undef STEP
#undef DONE
    rl_arena_reset(arena, m0);
}

// ---- memory plan -------------------------------------------------------------------------------
/* Mirrors of forward() and rl_unet_bwd(): the same allocations in the same order (keep in
 * step; tests/test_unet.c compares the plan with the arena's measured peak to the byte). */

static void plan_forward(const rl_unet *u, rl_plan *p, int train, int N, int F, int H, int W,
                         int L, int ctx_rep)
{
    const rl_unet_cfg *c = &u->cfg;
    const int n = c->n_blocks, B = N * F, C0 = u->C0, Ct = u->Ct;
#define KEEP(nf) do { if (train) rl_plan_floats(p, (nf)); } while (0)
    rl_plan_floats(p, (size_t)N);                                // tv, tp, t1, t1a, e2, temb
    rl_plan_floats(p, (size_t)N * C0);
    rl_plan_floats(p, (size_t)N * Ct);
    KEEP((size_t)N * Ct);
    rl_plan_floats(p, (size_t)N * Ct);
    rl_plan_floats(p, (size_t)B * Ct);
    dims sk[RL_UNET_MAX_SKIPS];
    int ns;
    size_t mo, mc;
    walk(u, H, W, sk, &ns, &mo, &mc);
    if (!train) {
        for (int i = 0; i < ns; i++) rl_plan_floats(p, (size_t)B * sk[i].C * sk[i].H * sk[i].W);
        rl_plan_floats(p, (size_t)B * mo);
        rl_plan_floats(p, (size_t)B * mo);
        rl_plan_floats(p, (size_t)B * mc);
    }
    KEEP((size_t)B * c->in_channels * H * W);                    // xin, conv_in out
    KEEP((size_t)B * C0 * H * W);
    rl_conv_plan(&u->conv_in, p, B, H, W);
    int C = C0, top = ns;
    for (int i = 0; i < n; i++) {
        const rl_unet_block *b = &u->down[i];
        for (int j = 0; j < b->n_layers; j++) {
            C = b->resnets[j].OC;
            const size_t nf = (size_t)B * C * H * W;
            KEEP(nf);
            rl_resnet_plan_fwd(&b->resnets[j], p, train, B, H, W);
            if (b->cross) { KEEP(nf); rl_xformer_plan_fwd(&b->attns[j], p, train, B, H, W, L, ctx_rep); }
            if (b->has_motion) { KEEP(nf); rl_motion_plan_fwd(&b->motions[j], p, train, N, F, H, W); }
        }
        if (b->has_sampler) {
            int Ho, Wo;
            rl_conv_out_hw(&b->down.conv, H, W, &Ho, &Wo);
            KEEP((size_t)B * C * Ho * Wo);
            rl_conv_plan(&b->down.conv, p, B, H, W);
            H = Ho; W = Wo;
        }
    }
    const size_t nm = (size_t)B * C * H * W;
    KEEP(nm);
    rl_resnet_plan_fwd(&u->mid_res[0], p, train, B, H, W);
    for (int k = 0; k < c->mid_layers; k++) {
        KEEP(nm);
        rl_xformer_plan_fwd(&u->mid_attn[k], p, train, B, H, W, L, ctx_rep);
        if (u->has_mid_motion) { KEEP(nm); rl_motion_plan_fwd(&u->mid_motion[k], p, train, N, F, H, W); }
        KEEP(nm);
        rl_resnet_plan_fwd(&u->mid_res[k + 1], p, train, B, H, W);
    }
    for (int i = 0; i < n; i++) {
        const rl_unet_block *b = &u->up[i];
        for (int j = 0; j < b->n_layers; j++) {
            const dims s = sk[--top];
            KEEP((size_t)B * (C + s.C) * H * W);                 // cat
            C = b->resnets[j].OC;
            const size_t nf = (size_t)B * C * H * W;
            KEEP(nf);
            rl_resnet_plan_fwd(&b->resnets[j], p, train, B, H, W);
            if (b->cross) { KEEP(nf); rl_xformer_plan_fwd(&b->attns[j], p, train, B, H, W, L, ctx_rep); }
            if (b->has_motion) { KEEP(nf); rl_motion_plan_fwd(&b->motions[j], p, train, N, F, H, W); }
        }
        if (b->has_sampler) {
            const int Ho = sk[top - 1].H, Wo = sk[top - 1].W;
            KEEP((size_t)B * C * Ho * Wo);
            rl_upsample_plan_fwd(&b->up, p, train, B, Ho, Wo);
            H = Ho; W = Wo;
        }
    }
    rl_plan_floats(p, (size_t)B * u->norm_out.G);                // mean, rstd, gn, act, y
    rl_plan_floats(p, (size_t)B * u->norm_out.G);
    KEEP((size_t)B * C * H * W);
    KEEP((size_t)B * C * H * W);
    KEEP((size_t)B * c->out_channels * H * W);
    rl_conv_plan(&u->conv_out, p, B, H, W);
#undef KEEP
}

static void plan_backward(const rl_unet *u, rl_plan *p, int N, int F, int H0, int W0, int L,
                          int ctx_rep)
{
    const rl_unet_cfg *c = &u->cfg;
    const int n = c->n_blocks, B = N * F;
    const size_t m0 = p->used;
    dims sk[RL_UNET_MAX_SKIPS];
    int ns;
    size_t mo, mc;
    walk(u, H0, W0, sk, &ns, &mo, &mc);
    rl_plan_floats(p, (size_t)B * mo);                           // two streams, dcat
    rl_plan_floats(p, (size_t)B * mo);
    rl_plan_floats(p, (size_t)B * mc);
    for (int i = 0; i < ns; i++) rl_plan_floats(p, (size_t)B * sk[i].C * sk[i].H * sk[i].W);
    rl_plan_floats(p, (size_t)B * u->Ct);                        // dtemb
    rl_plan_floats(p, (size_t)B * c->out_channels * H0 * W0);   // dy
    rl_conv_plan(&u->conv_out, p, B, H0, W0);
    // block resolutions: skip k of a down block's layers has the block's resolution
    int Hd[RL_UNET_MAX_BLOCKS] = { 0 }, Wd[RL_UNET_MAX_BLOCKS] = { 0 }, H = H0, W = W0;
    for (int i = 0; i < n; i++) {
        Hd[i] = H; Wd[i] = W;
        if (u->down[i].has_sampler) {
            int Ho, Wo;
            rl_conv_out_hw(&u->down[i].down.conv, H, W, &Ho, &Wo);
            H = Ho; W = Wo;
        }
    }
    for (int i = n - 1; i >= 0; i--) {                           // up block i has down n-1-i's size
        const rl_unet_block *b = &u->up[i];
        const int Hb = Hd[n - 1 - i], Wb = Wd[n - 1 - i];
        if (b->has_sampler) rl_upsample_plan_bwd(&b->up, p, B, Hb, Wb);
        for (int j = b->n_layers - 1; j >= 0; j--) {
            if (b->has_motion) rl_motion_plan_bwd(&b->motions[j], p, N, F, Hb, Wb);
            if (b->cross) rl_xformer_plan_bwd(&b->attns[j], p, B, Hb, Wb, L, ctx_rep);
            rl_resnet_plan_bwd(&b->resnets[j], p, B, Hb, Wb);
        }
    }
    const int Hm = Hd[n - 1], Wm = Wd[n - 1];
    for (int k = c->mid_layers - 1; k >= 0; k--) {
        rl_resnet_plan_bwd(&u->mid_res[k + 1], p, B, Hm, Wm);
        if (u->has_mid_motion) rl_motion_plan_bwd(&u->mid_motion[k], p, N, F, Hm, Wm);
        rl_xformer_plan_bwd(&u->mid_attn[k], p, B, Hm, Wm, L, ctx_rep);
    }
    rl_resnet_plan_bwd(&u->mid_res[0], p, B, Hm, Wm);
    for (int i = n - 1; i >= 0; i--) {
        const rl_unet_block *b = &u->down[i];
        if (b->has_sampler) rl_conv_plan(&b->down.conv, p, B, Hd[i], Wd[i]);
        for (int j = b->n_layers - 1; j >= 0; j--) {
            if (b->has_motion) rl_motion_plan_bwd(&b->motions[j], p, N, F, Hd[i], Wd[i]);
            if (b->cross) rl_xformer_plan_bwd(&b->attns[j], p, B, Hd[i], Wd[i], L, ctx_rep);
            rl_resnet_plan_bwd(&b->resnets[j], p, B, Hd[i], Wd[i]);
        }
    }
    rl_plan_floats(p, (size_t)B * c->in_channels * H0 * W0);    // dxin
    rl_conv_plan(&u->conv_in, p, B, H0, W0);
    rl_plan_floats(p, (size_t)B * c->in_channels * H0 * W0);    // permuted dx
    for (int i = 0; i < 3; i++) rl_plan_floats(p, (size_t)N * u->Ct);   // de2, dt1a, dt1
    p->used = m0;
}

size_t rl_unet_plan_bytes(const rl_unet *u, int train, int N, int F, int H, int W, int L,
                          int emb_frames, int n_threads)
{
    rl_plan p = { .n_threads = n_threads > 0 ? n_threads : 1 };
    const int ctx_rep = emb_frames == 1 ? F : 1;
    plan_forward(u, &p, train, N, F, H, W, L, ctx_rep);
    if (train) plan_backward(u, &p, N, F, H, W, L, ctx_rep);
    return p.peak;
}
