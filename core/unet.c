/* core/unet.c - UNetMotionModel / UNet2DConditionModel assembly, see unet.h. */
#include "core/unet.h"

#include <stdio.h>
#include <string.h>

#include "core/ops.h"

#define TRY(x)                                  \
    do {                                        \
        rl_status rc_ = (x);                    \
        if (rc_ != RL_OK) return rc_;           \
    } while (0)

static float *take(rl_arena *a, size_t n)
{
    float *p = rl_arena_floats(a, n ? n : 1);
    RL_ASSERT(p != NULL);
    return p;
}

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
                         .max_seq = c->motion_max_seq, .Ckv = 0, .double_self = 1 };
    return rl_motion_bind(m, ws, prefix, &mc, err);
}

static rl_status bind_all(rl_unet *u, rl_weights *ws, rl_weights *wm, const rl_unet_cfg *c,
                          rl_err *err)
{
    char p[256];
    const int n = c->n_blocks;
    u->C0 = c->channels[0];
    u->Ct = c->time_embed_dim;
    TRY(rl_fc_bind(&u->t_lin1, ws, "time_embedding.linear_1", u->C0, u->Ct, 1, err));
    TRY(rl_fc_bind(&u->t_lin2, ws, "time_embedding.linear_2", u->Ct, u->Ct, 1, err));
    TRY(rl_conv_bind(&u->conv_in, ws, "conv_in", c->in_channels, u->C0, 3, 1, 1, 1, err));

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
        for (int j = 0; j < b->n_layers; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            rl_resnet_cfg rc = res_cfg(c, j == 0 ? in_ch : out_ch, out_ch, 1.0f);
            TRY(rl_resnet_bind(&b->resnets[j], ws, p, &rc, err));
            if (b->cross) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
                TRY(bind_xformer(&b->attns[j], ws, p, c, out_ch, c->heads[i], c->cross_dim[i],
                                 c->xf_layers[i], err));
            }
            if (b->has_motion) {
                snprintf(p, sizeof p, "down_blocks.%d.motion_modules.%d", i, j);
                TRY(bind_motion(&b->motions[j], wm, p, c, out_ch, c->motion_heads[i],
                                c->motion_xf_layers[i], err));
            }
        }
        if (i < n - 1) {
            b->has_sampler = 1;
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0", i);
            TRY(rl_downsample_bind(&b->down, ws, p, out_ch, out_ch, c->downsample_padding, err));
        }
    }

    // mid
    const int Cm = c->channels[n - 1];
    if (c->mid_layers > RL_UNET_MAX_LAYERS)
        return rl_errf(err, RL_E_PARAM, "mid_block_layers = %d exceeds %d", c->mid_layers,
                       RL_UNET_MAX_LAYERS);
    u->has_mid_motion = c->has_motion && c->motion_mid;
    rl_resnet_cfg mrc = res_cfg(c, Cm, Cm, c->mid_block_scale_factor);
    TRY(rl_resnet_bind(&u->mid_res[0], ws, "mid_block.resnets.0", &mrc, err));
    for (int k = 0; k < c->mid_layers; k++) {
        snprintf(p, sizeof p, "mid_block.attentions.%d", k);
        TRY(bind_xformer(&u->mid_attn[k], ws, p, c, Cm, c->heads[n - 1], c->cross_dim[n - 1],
                         c->mid_xf_layers, err));
        if (u->has_mid_motion) {
            snprintf(p, sizeof p, "mid_block.motion_modules.%d", k);
            TRY(bind_motion(&u->mid_motion[k], wm, p, c, Cm, c->motion_heads[n - 1],
                            c->motion_mid_xf_layers, err));
        }
        snprintf(p, sizeof p, "mid_block.resnets.%d", k + 1);
        TRY(rl_resnet_bind(&u->mid_res[k + 1], ws, p, &mrc, err));
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
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            rl_resnet_cfg rc = res_cfg(c, res_in + skip, out_ch, 1.0f);
            TRY(rl_resnet_bind(&b->resnets[j], ws, p, &rc, err));
            if (b->cross) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                TRY(bind_xformer(&b->attns[j], ws, p, c, out_ch, c->heads[r], c->cross_dim[r],
                                 c->xf_layers_up[i], err));
            }
            if (b->has_motion) {
                snprintf(p, sizeof p, "up_blocks.%d.motion_modules.%d", i, j);
                TRY(bind_motion(&b->motions[j], wm, p, c, out_ch, c->motion_heads[r],
                                c->motion_xf_layers_up[i], err));
            }
        }
        if (i < n - 1) {
            b->has_sampler = 1;
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0", i);
            TRY(rl_upsample_bind(&b->up, ws, p, out_ch, out_ch, err));
        }
    }

    TRY(rl_gnorm_bind(&u->norm_out, ws, "conv_norm_out", u->C0, c->norm_num_groups, c->norm_eps,
                      err));
    TRY(rl_conv_bind(&u->conv_out, ws, "conv_out", u->C0, c->out_channels, 3, 1, 1, 1, err));
    TRY(rl_weights_check_all_used(ws, NULL, err));
    if (wm != ws) TRY(rl_weights_check_all_used(wm, NULL, err));
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

#define MAX_SKIPS (RL_UNET_MAX_BLOCKS * (RL_UNET_MAX_LAYERS + 1) + 1)

typedef struct { int C, H, W; } dims;

/* Walks the architecture for the skip shapes and the largest activation (channels x pixels). */
static size_t walk(const rl_unet *u, int H, int W, dims *skips, int *n_skips)
{
    const rl_unet_cfg *c = &u->cfg;
    const int n = c->n_blocks;
    size_t mx = (size_t)c->in_channels * H * W;
    int ns = 0, C = u->C0;
#define SEE(ch, h, w) do { size_t e_ = (size_t)(ch) * (h) * (w); if (e_ > mx) mx = e_; } while (0)
    SEE(C, H, W);
    skips[ns++] = (dims){ C, H, W };
    for (int i = 0; i < n; i++) {
        C = c->channels[i];
        for (int j = 0; j < u->down[i].n_layers; j++) { SEE(C, H, W); skips[ns++] = (dims){ C, H, W }; }
        if (u->down[i].has_sampler) {
            int Ho, Wo;
            rl_conv_out_hw(&u->down[i].down.conv, H, W, &Ho, &Wo);
            H = Ho; W = Wo;
            SEE(C, H, W);
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
            SEE(C + s.C, H, W);
            C = b->resnets[j].OC;
            SEE(C, H, W);
        }
        if (b->has_sampler && top > 0) {
            H = skips[top - 1].H; W = skips[top - 1].W;
            SEE(C, H, W);
        }
    }
#undef SEE
    return mx;
}

rl_status rl_unet_fwd(const rl_unet *u, rl_arena *arena, float *out, const float *x,
                      const float *t, int t_n, const float *emb, int emb_frames, int L, int D,
                      int N, int F, int H, int W, rl_err *err)
{
    const rl_unet_cfg *c = &u->cfg;
    const int n = c->n_blocks;
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
    for (int i = 0; i < n; i++)
        if ((c->down[i] == RL_UNET_CROSSATTN || c->up[i] == RL_UNET_CROSSATTN || i == n - 1) &&
            c->cross_dim[i] != D)
            return rl_errf(err, RL_E_PARAM, "unet: text embeddings of width %d, block %d expects "
                           "cross_attention_dim %d", D, i, c->cross_dim[i]);

    rl_arena_mark m0 = rl_arena_get_mark(arena);
    const int B = N * F, C0 = u->C0, Ct = u->Ct;
    const int ctx_rep = emb_frames == 1 ? F : 1;

    // time embedding (N, Ct), repeated over frames (B, Ct)
    float *tv = take(arena, (size_t)N), *tp = take(arena, (size_t)N * C0);
    for (int i = 0; i < N; i++) tv[i] = t[t_n == 1 ? 0 : i];
    rl_timestep_embed(tp, tv, N, C0, c->flip_sin_to_cos, c->freq_shift, 10000.0f);
    float *e1 = take(arena, (size_t)N * Ct), *e2 = take(arena, (size_t)N * Ct);
    rl_fc_fwd(&u->t_lin1, e1, tp, N);
    rl_silu_fwd(e1, e1, (size_t)N * Ct);
    rl_fc_fwd(&u->t_lin2, e2, e1, N);
    float *temb = take(arena, (size_t)B * Ct);
    for (int b = 0; b < B; b++)
        memcpy(temb + (size_t)b * Ct, e2 + (size_t)(b / F) * Ct, (size_t)Ct * sizeof(float));

    // buffers: skips, two working buffers and a concat buffer, all of the largest size
    dims sk[MAX_SKIPS];
    int ns;
    const size_t mx = (size_t)B * walk(u, H, W, sk, &ns);
    float *skip[MAX_SKIPS];
    for (int i = 0; i < ns; i++) skip[i] = take(arena, (size_t)B * sk[i].C * sk[i].H * sk[i].W);
    float *cur = take(arena, mx), *nxt = take(arena, mx), *cat = take(arena, mx), *tmp;
#define SWAP() (tmp = cur, cur = nxt, nxt = tmp)

    // (N, Cin, F, S) -> (N, F, Cin, S) = (B, Cin, H, W), conv_in
    rl_permute4(nxt, x, (int[]){ N, c->in_channels, F, H * W }, (int[]){ 0, 2, 1, 3 });
    rl_conv_fwd(&u->conv_in, arena, cur, nxt, B, H, W);
    int C = C0, top = 0;
    memcpy(skip[top++], cur, (size_t)B * C * H * W * sizeof(float));

    for (int i = 0; i < n; i++) {
        const rl_unet_block *b = &u->down[i];
        for (int j = 0; j < b->n_layers; j++) {
            rl_resnet_fwd(&b->resnets[j], NULL, arena, nxt, cur, temb, B, H, W);
            SWAP();
            C = b->resnets[j].OC;
            if (b->cross) {
                rl_xformer_fwd(&b->attns[j], NULL, arena, nxt, cur, emb, B, H, W, L, ctx_rep);
                SWAP();
            }
            if (b->has_motion) {
                rl_motion_fwd(&b->motions[j], NULL, arena, nxt, cur, N, F, H, W);
                SWAP();
            }
            memcpy(skip[top++], cur, (size_t)B * C * H * W * sizeof(float));
        }
        if (b->has_sampler) {
            int Ho, Wo;
            rl_conv_out_hw(&b->down.conv, H, W, &Ho, &Wo);
            rl_downsample_fwd(&b->down, arena, nxt, cur, B, H, W);
            SWAP();
            H = Ho; W = Wo;
            memcpy(skip[top++], cur, (size_t)B * C * H * W * sizeof(float));
        }
    }

    // mid
    rl_resnet_fwd(&u->mid_res[0], NULL, arena, nxt, cur, temb, B, H, W);
    SWAP();
    for (int k = 0; k < c->mid_layers; k++) {
        rl_xformer_fwd(&u->mid_attn[k], NULL, arena, nxt, cur, emb, B, H, W, L, ctx_rep);
        SWAP();
        if (u->has_mid_motion) {
            rl_motion_fwd(&u->mid_motion[k], NULL, arena, nxt, cur, N, F, H, W);
            SWAP();
        }
        rl_resnet_fwd(&u->mid_res[k + 1], NULL, arena, nxt, cur, temb, B, H, W);
        SWAP();
    }

    // up
    for (int i = 0; i < n; i++) {
        const rl_unet_block *b = &u->up[i];
        for (int j = 0; j < b->n_layers; j++) {
            const dims s = sk[--top];
            rl_concat_fwd(cat, cur, skip[top], B, C, s.C, H * W);
            rl_resnet_fwd(&b->resnets[j], NULL, arena, nxt, cat, temb, B, H, W);
            SWAP();
            C = b->resnets[j].OC;
            if (b->cross) {
                rl_xformer_fwd(&b->attns[j], NULL, arena, nxt, cur, emb, B, H, W, L, ctx_rep);
                SWAP();
            }
            if (b->has_motion) {
                rl_motion_fwd(&b->motions[j], NULL, arena, nxt, cur, N, F, H, W);
                SWAP();
            }
        }
        if (b->has_sampler) {
            // upsample to the size of the next skip (2x unless the input was not a multiple)
            const int Ho = sk[top - 1].H, Wo = sk[top - 1].W;
            rl_upsample_fwd_to(&b->up, NULL, arena, nxt, cur, B, H, W, Ho, Wo);
            SWAP();
            H = Ho; W = Wo;
        }
    }

    // conv_norm_out -> silu -> conv_out, (B, Cout, S) -> (N, Cout, F, S)
    const int G = u->norm_out.G, S = H * W;
    float *mean = take(arena, (size_t)B * G), *rstd = take(arena, (size_t)B * G);
    rl_groupnorm_fwd(nxt, mean, rstd, cur, u->norm_out.w, u->norm_out.b, B, C, S, G,
                     u->norm_out.eps);
    rl_silu_fwd(nxt, nxt, (size_t)B * C * S);
    rl_conv_fwd(&u->conv_out, arena, cur, nxt, B, H, W);
    rl_permute4(out, cur, (int[]){ N, F, c->out_channels, S }, (int[]){ 0, 2, 1, 3 });
#undef SWAP
    rl_arena_reset(arena, m0);
    return RL_OK;
}
