/* tools/train_unet.c - `reel train unet`: the UNetMotionModel as a noise (or v) predictor on
 * VAE latents of shapes-world clips, conditioned on the frozen text encoder.
 *
 * Per step (DDPM training, Ho et al. 2020; v-prediction, Salimans & Ho 2022):
 *   frames -> frozen VAE encoder -> z = (mean + std * e) * scaling_factor      (N, C, F, h, w)
 *   caption, or "" for a share cond_drop of the samples (classifier-free guidance, Ho &
 *   Salimans 2022) -> frozen CLIPTextModel -> last_hidden_state emb            (N, L, D)
 *   t ~ U{0..999} per sample, eps ~ N(0, I), x_t = sqrt(abar_t) z + sqrt(1 - abar_t) eps
 *   loss = mean (UNet(x_t, t, emb) - target)^2, target eps or v; with --snr-gamma the
 *   gradient is that of the Min-SNR-gamma weighted loss (Hang et al. 2023): sample n's
 *   squared error times min(SNR_t, gamma) / SNR_t (eps) or / (SNR_t + 1) (v), where
 *   SNR_t = abar_t / (1 - abar_t).
 * Stages (AnimateDiff's recipe, Guo et al. 2023): image = single frames (F = 1), motion
 * modules frozen and, zero-initialised at their proj_out as AnimateDiff does, an identity;
 * motion = clips of `frames` frames, only the motion modules train; joint = everything on
 * clips. The release (EMA) weights go to out/unet with the motion modules' positional tables
 * (pos_embed.pe, persistent buffers in diffusers), plus out/scheduler and out/model_index.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bpe.h"
#include "core/clip.h"
#include "core/layers.h"
#include "core/ops.h"
#include "core/par.h"
#include "core/unet.h"
#include "core/vae.h"
#include "io/config_clip.h"
#include "io/config_unet.h"
#include "io/config_vae.h"
#include "io/diffusers.h"
#include "io/tokfiles.h"
#include "io/weights_io.h"
#include "tools/shapes/render.h"
#include "tools/shapes/world.h"
#include "tools/train.h"
#include "tools/train_cfg.h"
#include "tools/train_stages.h"

/* The default model's UNet: 16x16x4 latents, three levels (16x16, 8x8, 4x4) of 32, 64, 128
 * channels; cross-attention at 8x8, 4x4 and in the mid block (not at 16x16, where spatial
 * attention over 256 positions would cost most and the text matters least), motion modules at
 * every level; about 5.9 M parameters at the inference cost of the earlier 1.5 M two-level UNet
 * (12.2 vs 10.0 GFLOP per CFG step of 16 frames). */
static const char default_unet_config[] =
    "{\"_class_name\": \"UNetMotionModel\", \"block_out_channels\": [32, 64, 128],"
    " \"down_block_types\": [\"DownBlockMotion\", \"CrossAttnDownBlockMotion\","
    " \"CrossAttnDownBlockMotion\"],"
    " \"up_block_types\": [\"CrossAttnUpBlockMotion\", \"CrossAttnUpBlockMotion\", \"UpBlockMotion\"],"
    " \"layers_per_block\": 1, \"norm_num_groups\": 8, \"num_attention_heads\": 4,"
    " \"cross_attention_dim\": 64, \"motion_num_attention_heads\": 4,"
    " \"motion_max_seq_length\": 32, \"use_motion_mid_block\": true, \"in_channels\": 4,"
    " \"out_channels\": 4, \"sample_size\": 16}";

#define BETA_START 0.00085f
#define BETA_END 0.012f

static rl_status unet_probe(void *ctx, rl_weights *ws, rl_err *err)
{
    rl_unet u = { 0 };
    rl_status rc = rl_unet_bind(&u, ws, NULL, ctx, err);
    rl_unet_free(&u);
    return rc;
}

typedef struct {
    const rl_train_opts *o;
    rl_unet_cfg cfg;
    rl_unet u, g;
    rl_weights img_p, img_g;    // image stage: views of the non-motion entries of pt
    int which;                  // RL_UNET_GRAD_*
    int F;                      // frames per sample this stage
    int N, L, D, lc, h, w, H, W;
    rl_noise_sched ns;
    // frozen parts
    rl_vae_cfg vcfg;
    rl_weights vws, tws;
    rl_vae vae;
    rl_clip_cfg tcfg;
    rl_clip text;
    rl_bpe bpe;
    rl_arena arena;
    // buffers
    int *ids;                   // (N, L)
    float *clipbuf;             // (3, 16, H, W)
    float *frames;              // (N * F, 3, H, W)
    float *mean, *lv;           // (N * F, lc, h, w)
    float *z0, *eps, *xt, *target, *out, *dout;   // (N, lc, F, h, w)
    float *emb;                 // (N, L, D)
    float *tval;                // (N)
    float *lw;                  // (N) loss weight of each sample
    // data parallelism over the batch: one sample per task, each with its own gradient mirror
    rl_weights *gtab;           // the gradient table r->g is bound to
    int per_shard, n_shards;    // samples per task (fixed by the shapes), tasks
    rl_weights *gx;             // (n_shards) gradient tables of shards 1.. (gx[0] unused)
    rl_unet *gu;                // (n_shards) mirrors bound to gx (gu[0] unused: shard 0 uses g)
    rl_arena *arenas;           // (n_arenas) one per thread
    int n_arenas;
    double *sl;                 // (n_shards) each shard's squared-error sum
    rl_status *src;             // (n_shards) each shard's status
    rl_err *serr;               // (n_shards) and message
} unet_run;

static rl_status unet_batch(unet_run *r, long step, rl_err *err)
{
    const rl_train_opts *o = r->o;
    const int N = r->N, F = r->F, FS = RL_SHAPES_FRAMES, lc = r->lc;
    const size_t S = (size_t)r->H * r->W, s = (size_t)r->h * r->w;
    rl_shapes_spec *sp = malloc((size_t)N * sizeof *sp);
    char (*caps)[96] = malloc((size_t)N * 96);
    rl_status rc = RL_OK;
    if (!sp || !caps) {
        rc = rl_errf(err, RL_E_NOMEM, "unet: out of memory");
        goto done;
    }
    rl_train_specs(sp, caps, o->seed, step, N);
    for (int n = 0; n < N && !rc; n++) {
        if (o->centre_paths > 0.0f) {   // the caption does not name a position: it stays
            rl_trng qc = rl_trng_make(o->seed, RL_TRNG_CENTRE, (uint64_t)step, (uint64_t)n);
            if (rl_trng_unif(&qc) < (double)o->centre_paths) rl_shapes_spec_centre(&sp[n]);
        }
        // frames: F evenly spaced of the clip's 16 (F = 1: one at random)
        rl_shapes_render_f32(r->clipbuf, &sp[n], FS, r->H, r->W);
        rl_trng q = rl_trng_make(o->seed, RL_TRNG_FRAME, (uint64_t)step, (uint64_t)n);
        const int f0 = F == 1 ? (int)(rl_trng_u64(&q) % FS) : 0;
        for (int f = 0; f < F; f++) {
            const int fs = F == 1 ? f0 : (F == FS ? f : f * (FS - 1) / (F - 1));
            for (int c = 0; c < 3; c++)
                memcpy(r->frames + (((size_t)n * F + f) * 3 + c) * S,
                       r->clipbuf + ((size_t)c * FS + fs) * S, S * sizeof(float));
        }
        // caption, dropped to "" for classifier-free guidance
        rl_trng d = rl_trng_make(o->seed, RL_TRNG_DROP, (uint64_t)step, (uint64_t)n);
        const char *text = rl_trng_unif(&d) < (double)o->cond_drop ? "" : caps[n];
        rc = rl_bpe_encode(&r->bpe, text, r->ids + (size_t)n * r->L, NULL, err);
    }
    if (rc) goto done;

    // latents of the frames: posterior sample times the scaling factor, (N, lc, F, h, w)
    rl_vae_encode(&r->vae, &r->arena, r->mean, r->lv, r->frames, N * F, r->H, r->W);
    rl_clip_acts ta;
    rl_arena_mark mk = rl_arena_get_mark(&r->arena);
    rl_clip_plan(&r->text, &ta, &r->arena, N, r->L, 0);
    rc = rl_arena_check(&r->arena, err);
    if (rc) goto done;
    rl_clip_fwd(&r->text, &ta, r->emb, r->ids, N, r->L);
    rl_arena_reset(&r->arena, mk);

    const float sf = r->vcfg.scaling_factor, sh = r->vcfg.shift_factor;
    const size_t per = (size_t)lc * F * s;
    for (int n = 0; n < N; n++) {
        rl_trng qp = rl_trng_make(o->seed, RL_TRNG_POST, (uint64_t)step, (uint64_t)n);
        for (int f = 0; f < F; f++)
            for (int c = 0; c < lc; c++)
                for (size_t k = 0; k < s; k++) {
                    const size_t src = (((size_t)n * F + f) * lc + c) * s + k;
                    const float zv = r->mean[src] + expf(0.5f * r->lv[src]) * rl_trng_normal(&qp);
                    r->z0[(((size_t)n * lc + c) * F + f) * s + k] = (zv - sh) * sf;
                }
        rl_trng qt = rl_trng_make(o->seed, RL_TRNG_TIME, (uint64_t)step, (uint64_t)n);
        const int t = rl_noise_draw_t(&qt, o->t_bias);
        r->tval[n] = (float)t;
        r->lw[n] = rl_min_snr_weight(r->ns.alphas_cumprod[t], o->snr_gamma, o->v_pred);
        rl_trng qn = rl_trng_make(o->seed, RL_TRNG_NOISE, (uint64_t)step, (uint64_t)n);
        rl_trng_normals(&qn, r->eps + (size_t)n * per, per);
        rl_noise_add(&r->ns, r->xt + (size_t)n * per, r->target + (size_t)n * per,
                     r->z0 + (size_t)n * per, r->eps + (size_t)n * per, t, per);
    }
done:
    free(sp);
    free(caps);
    return rc;
}

/* Sets up the data-parallel training pass (unet_loss_grad): the batch r->N is cut into shards
 * of consecutive samples, each at least min_tokens latent positions (SHARD_TOKENS: the GEMMs
 * inside keep a useful size), one task per shard with its own gradient mirror of gtab and one arena per
 * thread. The shards depend on the shapes alone and their gradients are summed in shard order,
 * so which thread takes which never changes a number: the same bits at any thread count. */
#define SHARD_TOKENS 1024
static rl_status unet_shards_init(unet_run *r, rl_weights *gtab, const rl_unet_cfg *cfg,
                                  int min_tokens, rl_err *err)
{
    const int N = r->N, tokens = r->F * r->h * r->w;
    r->per_shard = (min_tokens + tokens - 1) / tokens;
    if (r->per_shard > N) r->per_shard = N;
    r->n_shards = (N + r->per_shard - 1) / r->per_shard;
    const int S = r->n_shards;
    r->gtab = gtab;
    r->gx = calloc((size_t)S, sizeof *r->gx);
    r->gu = calloc((size_t)S, sizeof *r->gu);
    r->sl = calloc((size_t)S, sizeof *r->sl);
    r->src = calloc((size_t)S, sizeof *r->src);
    r->serr = calloc((size_t)S, sizeof *r->serr);
    if (!r->gx || !r->gu || !r->sl || !r->src || !r->serr)
        return rl_errf(err, RL_E_NOMEM, "unet: out of memory");
    for (int n = 1; n < S; n++) {
        rl_weights_init(&r->gx[n], "unet (shard gradients)");
        for (int k = 0; k < gtab->n; k++) {
            const rl_weight *w = &gtab->w[k];
            RL_TRY(rl_weights_add_new(&r->gx[n], w->name, w->ndim, w->shape, NULL, err));
        }
        RL_TRY(rl_unet_bind(&r->gu[n], &r->gx[n], NULL, cfg, err));
    }
    return RL_OK;
}

static void unet_shards_free(unet_run *r)
{
    for (int n = 1; r->gu && n < r->n_shards; n++) rl_unet_free(&r->gu[n]);
    for (int n = 1; r->gx && n < r->n_shards; n++) rl_weights_free(&r->gx[n]);
    for (int i = 0; r->arenas && i < r->n_arenas; i++) rl_arena_free(&r->arenas[i]);
    free(r->gx);
    free(r->gu);
    free(r->arenas);
    free(r->sl);
    free(r->src);
    free(r->serr);
    r->gx = NULL;
    r->gu = NULL;
    r->arenas = NULL;
    r->sl = NULL;
    r->src = NULL;
    r->serr = NULL;
}

/* One arena per thread the next parallel region can have (the count may change between
 * calls: rl_par_set_threads). */
static rl_status ensure_arenas(unet_run *r, rl_err *err)
{
    const int T = rl_par_max_threads();
    if (T <= r->n_arenas) return RL_OK;
    rl_arena *a = realloc(r->arenas, (size_t)T * sizeof *a);
    if (!a) return rl_errf(err, RL_E_NOMEM, "unet: out of memory");
    for (int i = r->n_arenas; i < T; i++) rl_arena_init(&a[i], 0);
    r->arenas = a;
    r->n_arenas = T;
    return RL_OK;
}

/* One shard's forward, squared error and backward (a task of rl_par_for; the kernels inside
 * run on the calling thread alone, BLAS included). */
static void shard_loss_grad(void *ctx, int k)
{
    unet_run *r = ctx;
    const size_t per = (size_t)r->lc * r->F * r->h * r->w, total = per * (size_t)r->N;
    const int n0 = k * r->per_shard, nn = n0 + r->per_shard <= r->N ? r->per_shard : r->N - n0;
    rl_arena *ar = &r->arenas[rl_par_thread_id()];
    rl_arena_mark mk = rl_arena_get_mark(ar);
    rl_unet_acts a;
    float *out = r->out + n0 * per, *dout = r->dout + n0 * per;
    const float *target = r->target + n0 * per;
    r->src[k] = rl_unet_fwd_train(&r->u, &a, ar, out, r->xt + n0 * per, r->tval + n0, nn,
                                  r->emb + (size_t)n0 * r->L * r->D, 1, r->L, r->D, nn, r->F,
                                  r->h, r->w, &r->serr[k]);
    if (r->src[k] == RL_OK) {
        double l = 0.0;
        for (size_t i = 0; i < per * (size_t)nn; i++) {
            const double d = (double)out[i] - target[i];
            l += d * d;
            dout[i] = (float)(2.0 * d * r->lw[n0 + (int)(i / per)] / (double)total);
        }
        r->sl[k] = l;
        rl_unet_bwd(&r->u, k == 0 ? &r->g : &r->gu[k], r->which, &a, ar, NULL, NULL, dout);
    }
    rl_arena_reset(ar, mk);
}

/* Forward and backward of the batch in r->xt, r->tval, r->emb against r->target: the mean
 * squared error into *loss, the gradient of the (Min-SNR weighted) loss accumulated into r->g
 * (parameter groups r->which). Needs unet_shards_init. */
static rl_status unet_loss_grad(unet_run *r, double *loss, rl_err *err)
{
    const size_t n = (size_t)r->N * r->lc * r->F * r->h * r->w;
    RL_TRY(ensure_arenas(r, err));
    const int S = r->n_shards;
    for (int k = 1; k < S; k++)
        for (int j = 0; j < r->gx[k].n; j++)
            memset(r->gx[k].w[j].data, 0, rl_weight_numel(&r->gx[k].w[j]) * sizeof(float));
    rl_par_for(S, shard_loss_grad, r);
    double l = 0.0;
    for (int k = 0; k < S; k++) {
        if (r->src[k]) {
            *err = r->serr[k];
            return r->src[k];
        }
        l += r->sl[k];
    }
    // shard order, element by element: the same sum at any thread count
    for (int k = 1; k < S; k++)
        for (int j = 0; j < r->gtab->n; j++)
            rl_add_inplace(r->gtab->w[j].data, r->gx[k].w[j].data,
                           rl_weight_numel(&r->gtab->w[j]));
    *loss = l / (double)n;
    return RL_OK;
}

static rl_status unet_step(void *ctx, rl_ptable *pt, long step, double *loss, double *aux,
                           rl_err *err)
{
    unet_run *r = ctx;
    (void)pt;
    rl_status rc = unet_batch(r, rl_train_data_step(r->o, step), err);
    if (!rc) rc = unet_loss_grad(r, loss, err);
    if (rc) return rc;
    double tm = 0;
    for (int i = 0; i < r->N; i++) tm += r->tval[i];
    *aux = tm / r->N;           // mean time step of the batch (to read the loss against)
    return RL_OK;
}

/* Adds diffusers' persistent positional tables of every motion-module block to ws
 * (pos_embed.pe (1, max_seq, C)), in buffers owned by ws. */
static rl_status add_pe_buffers(unet_run *r, const rl_ptable *pt, rl_weights *ws, rl_err *err)
{
    const char *mark = ".norm1.weight";
    for (int i = 0; i < pt->n; i++) {
        const rl_weight *w = &pt->p.w[i];
        const size_t ln = strlen(w->name), lm = strlen(mark);
        if (!strstr(w->name, "motion_modules.") || ln < lm || strcmp(w->name + ln - lm, mark))
            continue;
        char name[600];
        snprintf(name, sizeof name, "%.*s.pos_embed.pe", (int)(ln - lm), w->name);
        const int C = (int)w->shape[0];
        float *pe;
        rl_status rc = rl_weights_add_new(ws, name, 3, (int64_t[]){ 1, r->cfg.motion_max_seq, C },
                                          &pe, err);
        if (rc) return rc;
        rl_sinusoidal_pe_table(pe, r->cfg.motion_max_seq, C, r->cfg.pe_scale);
    }
    return RL_OK;
}

/* The scale of the positional tables a UNet's weights store (least squares against the
 * sinusoid); 1 when they store none. Reads the first table found: every module's is made the
 * same way. */
static rl_status stored_pe_scale(const rl_weights *ws, float *scale, rl_err *err)
{
    *scale = 1.0f;
    for (int i = 0; i < ws->n; i++) {
        const rl_weight *w = &ws->w[i];
        if (!rl_train_ends_with(w->name, "pos_embed.pe") || w->ndim != 3) continue;
        const int T = (int)w->shape[1], C = (int)w->shape[2];
        float *ref = malloc((size_t)T * C * sizeof *ref);
        if (!ref) return rl_errf(err, RL_E_NOMEM, "unet: out of memory");
        rl_sinusoidal_pe_table(ref, T, C, 1.0f);
        double num = 0.0, den = 0.0;
        for (size_t k = 0; k < (size_t)T * C; k++) {
            num += (double)w->data[k] * ref[k];
            den += (double)ref[k] * ref[k];
        }
        free(ref);
        if (den > 0.0 && num > 0.0) *scale = (float)(num / den);
        break;
    }
    return RL_OK;
}

// Motion heads of the module a tensor name belongs to (down order per level; up reversed).
static int motion_heads_of(const rl_unet_cfg *c, const char *name)
{
    const int nb = c->n_blocks;
    int i = 0;
    if (sscanf(name, "down_blocks.%d.", &i) == 1 && i >= 0 && i < nb) return c->motion_heads[i];
    if (sscanf(name, "up_blocks.%d.", &i) == 1 && i >= 0 && i < nb)
        return c->motion_heads[nb - 1 - i];
    return c->motion_heads[nb - 1];   // mid_block
}

/* --frame-heads X: seeds two heads of every motion module's attn1 to look one frame back
 * (head 0) and one frame ahead (head 1). On the head's first d input dimensions (the fastest
 * sinusoidal position pairs, angle w_i per frame) the query map gains X * I and the key map
 * X * R^T, R the block-diagonal rotation by +-w_i: then q_f . k_g holds X^2 sum_i cos(w_i
 * (f - g +- 1)), largest at g = f -+ 1. Such heads break the symmetry between a clip and the
 * clip played backwards, which a motion word needs (left vs right, growing vs shrinking);
 * the trained attention does not find them on its own (measured: near-uniform position
 * attention after 73 min of joint training). */
static void seed_frame_heads(rl_ptable *pt, const rl_unet_cfg *cfg, float x)
{
    for (int i = 0; i < pt->n; i++) {
        rl_weight *w = &pt->p.w[i];
        const int key = rl_train_ends_with(w->name, "attn1.to_k.weight");
        if (!strstr(w->name, "motion_modules.") || w->ndim != 2 || w->shape[0] != w->shape[1] ||
            (!key && !rl_train_ends_with(w->name, "attn1.to_q.weight")))
            continue;
        const int heads = motion_heads_of(cfg, w->name);
        const int C = (int)w->shape[1], d = heads >= 2 ? C / heads : 0;
        for (int h = 0; h < 2 && d >= 2; h++) {
            float *rows = w->data + (size_t)h * d * C;    // head h's output rows, input dims 0..d-1
            for (int k = 0; k + 1 < d; k += 2) {
                const double wk = (h ? -1.0 : 1.0) * pow(10000.0, -(double)k / C);
                const float c = (float)cos(wk), s = (float)sin(wk);
                float *r0 = rows + (size_t)k * C + k, *r1 = r0 + C;   // the 2x2 block at (k, k)
                if (!key) {
                    r0[0] += x;
                    r1[1] += x;
                } else {   // R^T, R = [[c, -s], [s, c]]
                    r0[0] += x * c;
                    r0[1] += x * s;
                    r1[0] -= x * s;
                    r1[1] += x * c;
                }
            }
        }
    }
}

static rl_status unet_finish(void *ctx, rl_ptable *pt, rl_err *err)
{
    unet_run *r = ctx;
    const rl_train_opts *o = r->o;
    char dir[4096], path[4200];
    rl_weights rel;
    rl_weights_init(&rel, "unet (release)");
    rl_status rc = rl_ptable_release_table(pt, &rel, err);
    if (!rc) rc = add_pe_buffers(r, pt, &rel, err);
    rl_train_join(dir, sizeof dir, o->out, "unet");
    if (!rc) rc = rl_train_mkdir(dir, err);
    if (!rc) rc = rl_weights_save_st(&rel, rl_train_join(path, sizeof path, dir,
                                     "diffusion_pytorch_model.safetensors"), NULL, RL_F32, err);
    if (!rc) rc = rl_train_write_unet_config(rl_train_join(path, sizeof path, dir, "config.json"),
                                             &r->cfg, err);
    rl_train_join(dir, sizeof dir, o->out, "scheduler");
    if (!rc) rc = rl_train_mkdir(dir, err);
    rl_train_sched_cfg sc = { .scaled_linear = 1, .beta_start = BETA_START, .beta_end = BETA_END,
                              .v_pred = o->v_pred, .zero_snr = o->zero_snr };
    if (!rc) rc = rl_train_write_sched_config(rl_train_join(path, sizeof path, dir,
                                              "scheduler_config.json"), &sc, err);
    if (!rc) rc = rl_train_write_model_index(rl_train_join(path, sizeof path, o->out,
                                             "model_index.json"), err);
    if (!rc && o->note) {
        char msg[4400];
        snprintf(msg, sizeof msg, "unet: wrote %s/unet, %s/scheduler, %s/model_index.json",
                 o->out, o->out, o->out);
        o->note(o->note_ctx, msg);
    }
    rl_weights_free(&rel);
    return rc;
}

/* The frozen VAE, text encoder and tokenizer from out/. */
static rl_status load_frozen(unet_run *r, rl_err *err)
{
    const char *out = r->o->out;
    char path[4200];
    rl_status rc = rl_tokfiles_open(&r->bpe, rl_train_join(path, sizeof path, out, "tokenizer"), err);
    if (!rc) rc = rl_diffusers_load_vae(&r->vcfg, &r->vws, out, err);
    if (!rc) rc = rl_vae_bind(&r->vae, &r->vws, "", &r->vcfg, err);
    if (!rc) rc = rl_diffusers_load_text(&r->tcfg, &r->tws, out, err);
    if (!rc) rc = rl_clip_bind(&r->text, &r->tws, "text_model", &r->tcfg, err);
    if (rc)
        rl_err_prefix(err, "unet needs the tokenizer, vae and clip stages in %s first", out);
    return rc;
}

rl_status rl_train_unet(const rl_train_opts *o, rl_err *err)
{
    unet_run r = { .o = o };
    rl_ptable pt;
    rl_json j = { 0 };
    char *cfg_text = NULL;
    char ckpt[4200], logp[4200];
    rl_ptable_init(&pt, "unet");
    rl_weights_init(&r.vws, "vae");
    rl_weights_init(&r.img_p, "unet (image layers)");
    rl_weights_init(&r.img_g, "unet (image layer gradients)");
    rl_weights_init(&r.tws, "text_encoder");
    rl_arena_init(&r.arena, 0);
    rl_status rc = load_frozen(&r, err);
    if (rc) goto done;
    rc = rl_train_load_config(&j, o->config, default_unet_config, err);
    if (!rc) rc = rl_unet_cfg_parse(&r.cfg, &j, err);
    if (rc) goto done;
    const int vs = rl_vae_cfg_scale(&r.vcfg);
    r.H = r.W = o->size;
    r.h = r.w = o->size / vs;
    r.lc = r.vcfg.latent_channels;
    r.L = r.bpe.max_length;
    r.D = r.tcfg.hidden_size;
    r.N = o->batch;
    r.F = o->unet_stage == RL_UNET_STAGE_IMAGE ? 1 : o->frames;
    r.cfg.sample_size = r.h;
    r.cfg.pe_scale = o->pe_scale > 0.0f ? o->pe_scale : 1.0f;   // (or as stored: below)
    if (!r.cfg.has_motion || r.cfg.in_channels != r.lc || r.cfg.out_channels != r.lc ||
        r.cfg.cross_dim[0] != r.D || o->size % vs) {
        rc = rl_errf(err, RL_E_PARAM, "unet: the config must be a UNetMotionModel with %d latent "
                     "channels in and out and cross_attention_dim %d (the text encoder's "
                     "hidden size), on frames a multiple of %d px", r.lc, r.D, vs);
        goto done;
    }
    if (r.F > r.cfg.motion_max_seq || r.F > RL_SHAPES_FRAMES) {
        rc = rl_errf(err, RL_E_PARAM, "unet: --frames %d is above motion_max_seq_length %d or "
                     "the world's %d frames", r.F, r.cfg.motion_max_seq, RL_SHAPES_FRAMES);
        goto done;
    }
    rl_noise_sched_init(&r.ns, 1, BETA_START, BETA_END, o->zero_snr, o->v_pred);

    rc = rl_ptable_discover(&pt, unet_probe, &r.cfg, err);
    if (rc) goto done;
    rl_ptable_init_params(&pt, o->seed, NULL);
    // AnimateDiff zero-initialises each motion module's proj_out: the module starts as an
    // identity, so the image UNet is unchanged until the motion stage trains it
    for (int i = 0; i < pt.n; i++) {
        rl_weight *w = &pt.p.w[i];
        const char *mm = strstr(w->name, "motion_modules.");
        if (mm && (strstr(mm, ".proj_out.weight") || strstr(mm, ".proj_out.bias")) &&
            !strstr(mm, "transformer_blocks"))
            memset(w->data, 0, (size_t)w->shape[0] * (w->ndim > 1 ? (size_t)w->shape[1] : 1) *
                                   sizeof(float));   // (C, inner) or (C)
    }
    if (o->resume_from) {
        rl_weights from;
        rl_weights_init(&from, "unet");
        float stored;
        rc = rl_diffusers_load_weights(&from, o->resume_from, "unet", "diffusion_pytorch_model",
                                       err);
        if (!rc) rc = rl_ptable_copy(&pt, &from, 1, err);
        // --pe-scale left out: train on the tables the model stores (a model made with
        // --pe-scale 4 goes on at 4); given: the run switches to it (a note says so)
        if (!rc) rc = stored_pe_scale(&from, &stored, err);
        rl_weights_free(&from);
        if (rc) goto done;
        if (o->pe_scale <= 0.0f) {
            r.cfg.pe_scale = stored;
        } else if (fabsf(stored - o->pe_scale) > 1e-3f * fmaxf(1.0f, o->pe_scale) && o->note) {
            char msg[4400];
            snprintf(msg, sizeof msg, "unet: %s/unet stores positional tables at %.3g x the "
                     "sinusoid; this run trains and stores them at %.3g (--pe-scale)",
                     o->resume_from, (double)stored, (double)o->pe_scale);
            o->note(o->note_ctx, msg);
        }
    }
    // (--resume then loads the checkpoint over these weights: the seed is not applied twice)
    if (o->frame_heads > 0.0f) seed_frame_heads(&pt, &r.cfg, o->frame_heads);
    const char *stage_name = "unet";
    switch (o->unet_stage) {
    case RL_UNET_STAGE_IMAGE:
        rl_ptable_freeze(&pt, "motion_modules.", 1);
        r.which = RL_UNET_GRAD_IMAGE;
        stage_name = "unet-image";
        break;
    case RL_UNET_STAGE_MOTION:
        rl_ptable_freeze(&pt, "", 1);
        rl_ptable_freeze(&pt, "motion_modules.", 0);
        r.which = RL_UNET_GRAD_MOTION;
        stage_name = "unet-motion";
        break;
    case RL_UNET_STAGE_JOINT:
        r.which = RL_UNET_GRAD_ALL;
        break;
    }
    rc = rl_ptable_alloc_state(&pt, o->ema > 0, err);
    if (!rc && o->unet_stage == RL_UNET_STAGE_IMAGE) {
        // The motion modules are frozen identities here (zero proj_out), so the image stage
        // runs the plain 2-D UNet bound to the same buffers: the same numbers, without the
        // motion modules' work (AnimateDiff trains its image model without them too)
        rl_unet_cfg icfg = r.cfg;
        icfg.has_motion = 0;
        icfg.motion_mid = 0;
        for (int i = 0; i < pt.n && !rc; i++) {
            const rl_weight *w = &pt.p.w[i], *gw = &pt.g.w[i];
            if (strstr(w->name, "motion_modules.")) continue;
            rc = rl_weights_add(&r.img_p, w->name, w->ndim, w->shape, w->data, err);
            if (!rc) rc = rl_weights_add(&r.img_g, gw->name, gw->ndim, gw->shape, gw->data, err);
        }
        if (!rc) rc = rl_unet_bind(&r.u, &r.img_p, NULL, &icfg, err);
        if (!rc) rc = rl_unet_bind(&r.g, &r.img_g, NULL, &icfg, err);
        if (!rc) rc = unet_shards_init(&r, &r.img_g, &icfg, SHARD_TOKENS, err);
    } else if (!rc) {
        rc = rl_unet_bind(&r.u, &pt.p, NULL, &r.cfg, err);
        if (!rc) rc = rl_unet_bind(&r.g, &pt.g, NULL, &r.cfg, err);
        if (!rc) rc = unet_shards_init(&r, &pt.g, &r.cfg, SHARD_TOKENS, err);
    }
    if (rc) goto done;

    const int N = r.N, F = r.F, lc = r.lc;
    const size_t nlat = (size_t)N * lc * F * r.h * r.w;
    r.ids = calloc((size_t)N * r.L, sizeof(int));
    r.clipbuf = rl_arena_floats(&r.arena, (size_t)3 * RL_SHAPES_FRAMES * r.H * r.W);
    r.frames = rl_arena_floats(&r.arena, (size_t)N * F * 3 * r.H * r.W);
    r.mean = rl_arena_floats(&r.arena, nlat);
    r.lv = rl_arena_floats(&r.arena, nlat);
    float **bl[] = { &r.z0, &r.eps, &r.xt, &r.target, &r.out, &r.dout };
    for (size_t i = 0; i < sizeof bl / sizeof bl[0]; i++) *bl[i] = rl_arena_floats(&r.arena, nlat);
    r.emb = rl_arena_floats(&r.arena, (size_t)N * r.L * r.D);
    r.tval = rl_arena_floats(&r.arena, (size_t)N);
    r.lw = rl_arena_floats(&r.arena, (size_t)N);
    rc = rl_arena_check(&r.arena, err);
    if (!rc && !r.ids) rc = rl_errf(err, RL_E_NOMEM, "unet: out of memory");
    if (rc) goto done;
    if (o->note) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %zu parameters, %zu trained; batch %d x %d frames of "
                 "%dx%dx%d latents; %s%s", stage_name, rl_ptable_numel(&pt, 0),
                 rl_ptable_numel(&pt, 1), N, F, lc, r.h, r.w,
                 o->v_pred ? "v_prediction" : "epsilon", o->zero_snr ? ", zero terminal SNR" : "");
        o->note(o->note_ctx, msg);
    }

    cfg_text = rl_train_unet_config_json(&r.cfg);
    if (!cfg_text) {
        rc = rl_errf(err, RL_E_NOMEM, "unet: out of memory");
        goto done;
    }
    char extra[300], opts[1024];
    snprintf(extra, sizeof extra, "{\"size\": %d, \"frames\": %d, \"prediction\": \"%s\", "
             "\"zero_snr\": %d, \"cond_drop\": %.9g, \"snr_gamma\": %.9g, \"t_bias\": %.9g, "
             "\"centre_paths\": %.9g, \"pe_scale\": %.9g, \"frame_heads\": %.9g, "
             "\"overfit\": %d}", o->size, F, o->v_pred ? "v_prediction" : "epsilon",
             o->zero_snr, (double)o->cond_drop, (double)o->snr_gamma, (double)o->t_bias,
             (double)o->centre_paths, (double)r.cfg.pe_scale, (double)o->frame_heads, o->overfit);
    rl_kv meta[RL_TRAIN_MAX_META];
    int n_meta = rl_train_common_meta(meta, opts, sizeof opts, o, cfg_text, extra);
    rl_train_loop_cfg lc_;
    rc = rl_train_loop_cfg_init(&lc_, o, stage_name, ckpt, logp, sizeof ckpt, err);
    if (rc) goto done;
    lc_.ctx = &r;
    lc_.step = unet_step;
    lc_.finish = unet_finish;
    lc_.meta = meta;
    lc_.n_meta = n_meta;
    rc = rl_train_loop(&lc_, &pt, err);

done:
    free(cfg_text);
    free(r.ids);
    rl_json_free(&j);
    rl_unet_free(&r.u);
    rl_unet_free(&r.g);
    unet_shards_free(&r);
    rl_weights_free(&r.img_p);
    rl_weights_free(&r.img_g);
    rl_vae_free(&r.vae);
    rl_clip_free(&r.text);
    rl_bpe_free(&r.bpe);
    rl_weights_free(&r.vws);
    rl_weights_free(&r.tws);
    rl_arena_free(&r.arena);
    rl_ptable_free(&pt);
    return rc;
}
