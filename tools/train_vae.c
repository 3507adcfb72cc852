/* tools/train_vae.c - `reel train vae`: the AutoencoderKL on single frames of the shapes world.
 *
 * Loss per step, over a batch of B frames x (one random frame of each of B clips):
 *   mean, logvar = encode(x);  z = mean + exp(logvar / 2) * eps,  eps ~ N(0, 1)
 *   rec  = mean over pixels of (decode(z) - x)^2
 *   kl   = mean over latent values of 0.5 (mean^2 + exp(logvar) - 1 - logvar)
 *   loss = rec + kl_weight * kl
 * (the KL term of Kingma & Welling's VAE, weighted lightly as latent-diffusion autoencoders
 * are; no perceptual or adversarial terms: the world is flat colours and sharp edges).
 * At the end the release weights (EMA) encode a fixed set of frames and scaling_factor is
 * set to 1 / std of their latents, as Stable Diffusion's factor was measured, so the UNet
 * sees latents of unit variance. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/vae.h"
#include "io/json.h"
#include "io/weights_io.h"
#include "tools/shapes/render.h"
#include "tools/shapes/world.h"
#include "tools/train.h"
#include "tools/train_cfg.h"
#include "tools/train_stages.h"

/* The default model's autoencoder: 64x64 frames -> 16x16x4 latents (factor 4). */
static const char default_vae_config[] =
    "{\"block_out_channels\": [16, 32, 64], \"latent_channels\": 4, \"layers_per_block\": 1,"
    " \"norm_num_groups\": 8, \"sample_size\": 64, \"in_channels\": 3, \"out_channels\": 3}";

typedef struct {
    const rl_train_opts *o;
    rl_vae_cfg cfg;
    rl_vae v, g;
    rl_arena arena;
    int B, H, W, h, w, lc;
    float *clip;                // (3, F, H, W) one rendered clip
    float *x, *img, *dimg;      // (B, 3, H, W)
    float *mean, *lv, *eps, *z, *dz, *dmean, *dlv;   // (B, lc, h, w)
} vae_run;

static rl_status bind_probe(void *ctx, rl_weights *ws, rl_err *err)
{
    rl_vae v = { 0 };
    rl_status rc = rl_vae_bind(&v, ws, "", ctx, err);
    rl_vae_free(&v);
    return rc;
}

/* x (B, 3, H, W): frame f_b of clip b of step `step` (frame drawn per item). */
static void vae_batch(vae_run *r, uint64_t seed, long step)
{
    const int F = RL_SHAPES_FRAMES;
    const size_t S = (size_t)r->H * r->W;
    rl_shapes_spec *sp = malloc((size_t)r->B * sizeof *sp);
    if (!sp) return;   // (the caller's buffers stay as they were; sizes here are tiny)
    rl_train_specs(sp, NULL, seed, step, r->B);
    for (int b = 0; b < r->B; b++) {
        rl_trng q = rl_trng_make(seed, RL_TRNG_FRAME, (uint64_t)step, (uint64_t)b);
        const int f = (int)(rl_trng_u64(&q) % (uint64_t)F);
        rl_shapes_render_f32(r->clip, &sp[b], F, r->H, r->W);
        for (int c = 0; c < 3; c++)
            memcpy(r->x + ((size_t)b * 3 + c) * S, r->clip + ((size_t)c * F + f) * S,
                   S * sizeof(float));
    }
    free(sp);
}

static rl_status vae_step(void *ctx, rl_ptable *pt, long step, double *loss, double *aux,
                          rl_err *err)
{
    vae_run *r = ctx;
    const rl_train_opts *o = r->o;
    const size_t nx = (size_t)r->B * 3 * r->H * r->W, nz = (size_t)r->B * r->lc * r->h * r->w;
    const size_t nz1 = nz / (size_t)r->B;
    step = rl_train_data_step(o, step);
    vae_batch(r, o->seed, step);
    rl_arena_mark mk = rl_arena_get_mark(&r->arena);
    rl_vae_acts ae, ad;
    rl_vae_encode_train(&r->v, &ae, &r->arena, r->mean, r->lv, r->x, r->B, r->H, r->W);
    for (int b = 0; b < r->B; b++) {
        rl_trng q = rl_trng_make(o->seed, RL_TRNG_NOISE, (uint64_t)step, (uint64_t)b);
        rl_trng_normals(&q, r->eps + (size_t)b * nz1, nz1);
    }
    for (size_t i = 0; i < nz; i++) r->z[i] = r->mean[i] + expf(0.5f * r->lv[i]) * r->eps[i];
    rl_vae_decode_train(&r->v, &ad, &r->arena, r->img, r->z, r->B, r->h, r->w);
    rl_status rc = rl_arena_check(&r->arena, err);
    if (rc) return rc;

    double rec = 0.0, kl = 0.0;
    for (size_t i = 0; i < nx; i++) {
        const double d = (double)r->img[i] - r->x[i];
        rec += d * d;
        r->dimg[i] = (float)(2.0 * d / (double)nx);
    }
    for (size_t i = 0; i < nz; i++)
        kl += 0.5 * ((double)r->mean[i] * r->mean[i] + exp((double)r->lv[i]) - 1.0 - r->lv[i]);
    rec /= (double)nx;
    kl /= (double)nz;

    memset(r->dz, 0, nz * sizeof(float));
    rl_vae_decode_bwd(&r->v, &r->g, &ad, &r->arena, r->dz, r->dimg);
    const float kw = o->kl_weight / (float)nz;
    for (size_t i = 0; i < nz; i++) {
        const float sd = expf(0.5f * r->lv[i]);
        // z = mean + sd eps: dz/dmean = 1, dz/dlogvar = 0.5 sd eps
        r->dmean[i] = r->dz[i] + kw * r->mean[i];
        r->dlv[i] = r->dz[i] * 0.5f * sd * r->eps[i] + kw * 0.5f * (sd * sd - 1.0f);
    }
    rl_vae_encode_bwd(&r->v, &r->g, &ae, &r->arena, NULL, r->dmean, r->dlv);
    rl_arena_reset(&r->arena, mk);
    *loss = rec + (double)o->kl_weight * kl;
    *aux = kl;
    (void)pt;
    return RL_OK;
}

/* scaling_factor = 1 / std of posterior samples of 4 batches of a stream the run never saw. */
static rl_status measure_scale(vae_run *r, const rl_vae *rel, float *scale, rl_err *err)
{
    const size_t nz = (size_t)r->B * r->lc * r->h * r->w, nz1 = nz / (size_t)r->B;
    const uint64_t seed = r->o->seed ^ 0x5ca1ef5ca1efull;
    double s1 = 0.0, s2 = 0.0, n = 0.0;
    for (long k = 1; k <= 4; k++) {
        vae_batch(r, seed, k);
        rl_vae_encode(rel, &r->arena, r->mean, r->lv, r->x, r->B, r->H, r->W);
        rl_status rc = rl_arena_check(&r->arena, err);
        if (rc) return rc;
        for (int b = 0; b < r->B; b++) {
            rl_trng q = rl_trng_make(seed, RL_TRNG_POST, (uint64_t)k, (uint64_t)b);
            for (size_t i = 0; i < nz1; i++) {
                const size_t j = (size_t)b * nz1 + i;
                const double zv = r->mean[j] + exp(0.5 * r->lv[j]) * rl_trng_normal(&q);
                s1 += zv;
                s2 += zv * zv;
                n += 1.0;
            }
        }
    }
    const double var = s2 / n - (s1 / n) * (s1 / n);
    *scale = var > 1e-12 ? (float)(1.0 / sqrt(var)) : 1.0f;
    return RL_OK;
}

static rl_status vae_finish(void *ctx, rl_ptable *pt, rl_err *err)
{
    vae_run *r = ctx;
    char dir[4096], path[4200];
    rl_weights rel;
    rl_vae v = { 0 };
    rl_weights_init(&rel, "vae (release)");
    rl_train_join(dir, sizeof dir, r->o->out, "vae");
    rl_status rc = rl_train_mkdir(dir, err);
    if (!rc) rc = rl_ptable_release_table(pt, &rel, err);
    if (!rc) rc = rl_vae_bind(&v, &rel, "", &r->cfg, err);
    rl_vae_cfg cfg = r->cfg;
    if (!rc) rc = measure_scale(r, &v, &cfg.scaling_factor, err);
    if (!rc) rc = rl_weights_save_st(&rel, rl_train_join(path, sizeof path, dir,
                                     "diffusion_pytorch_model.safetensors"), NULL, RL_F32, err);
    if (!rc) rc = rl_train_write_vae_config(rl_train_join(path, sizeof path, dir, "config.json"),
                                            &cfg, err);
    if (!rc && r->o->note) {
        char msg[4400];
        snprintf(msg, sizeof msg, "vae: wrote %s (scaling_factor %.6g)", dir, cfg.scaling_factor);
        r->o->note(r->o->note_ctx, msg);
    }
    rl_vae_free(&v);
    rl_weights_free(&rel);
    return rc;
}

rl_status rl_train_vae(const rl_train_opts *o, rl_err *err)
{
    vae_run r = { .o = o };
    rl_ptable pt;
    rl_json j = { 0 };
    rl_ptable_init(&pt, "vae");
    rl_arena_init(&r.arena, 0);
    char *cfg_text = NULL;
    char ckpt[4200], logp[4200], path[4200];
    rl_status rc = rl_train_load_config(&j, o->config, default_vae_config, err);
    if (!rc) rc = rl_vae_cfg_parse(&r.cfg, &j, err);
    if (rc) goto done;
    r.cfg.sample_size = o->size;
    const int s = rl_vae_cfg_scale(&r.cfg);
    if (o->size % s || r.cfg.in_channels != 3 || r.cfg.out_channels != 3) {
        rc = rl_errf(err, RL_E_PARAM, "vae: frames of %d px need a factor dividing them and 3 "
                     "channels in and out (factor %d, %d in, %d out)", o->size, s,
                     r.cfg.in_channels, r.cfg.out_channels);
        goto done;
    }
    r.B = o->batch; r.H = r.W = o->size; r.h = r.w = o->size / s; r.lc = r.cfg.latent_channels;

    rc = rl_ptable_discover(&pt, bind_probe, &r.cfg, err);
    if (rc) goto done;
    rl_ptable_init_params(&pt, o->seed, NULL);
    if (o->resume_from) {
        rl_train_join(ckpt, sizeof ckpt, o->resume_from, "vae");
        rc = rl_ptable_load(&pt, rl_train_join(path, sizeof path, ckpt,
                            "diffusion_pytorch_model.safetensors"), NULL, 0, err);
        if (rc) goto done;
    }
    rc = rl_ptable_alloc_state(&pt, o->ema > 0, err);
    if (!rc) rc = rl_vae_bind(&r.v, &pt.p, "", &r.cfg, err);
    if (!rc) rc = rl_vae_bind(&r.g, &pt.g, "", &r.cfg, err);
    if (rc) goto done;

    const size_t nx = (size_t)r.B * 3 * r.H * r.W, nz = (size_t)r.B * r.lc * r.h * r.w;
    r.clip = rl_arena_floats(&r.arena, (size_t)3 * RL_SHAPES_FRAMES * r.H * r.W);
    r.x = rl_arena_floats(&r.arena, nx);
    r.img = rl_arena_floats(&r.arena, nx);
    r.dimg = rl_arena_floats(&r.arena, nx);
    float **zs[] = { &r.mean, &r.lv, &r.eps, &r.z, &r.dz, &r.dmean, &r.dlv };
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) *zs[i] = rl_arena_floats(&r.arena, nz);
    rc = rl_arena_check(&r.arena, err);
    if (rc) goto done;
    if (o->note) {
        char msg[200];
        snprintf(msg, sizeof msg, "vae: %zu parameters, frames %dx%d -> latents %dx%dx%d",
                 rl_ptable_numel(&pt, 0), r.H, r.W, r.lc, r.h, r.w);
        o->note(o->note_ctx, msg);
    }

    cfg_text = rl_train_vae_config_json(&r.cfg);
    if (!cfg_text) {
        rc = rl_errf(err, RL_E_NOMEM, "vae: out of memory");
        goto done;
    }
    char extra[200];
    snprintf(extra, sizeof extra, "{\"kl_weight\": %.9g, \"size\": %d, \"overfit\": %d}",
             (double)o->kl_weight, o->size, o->overfit);
    rl_kv meta[RL_TRAIN_MAX_META];
    char opts[1024];
    int n_meta = rl_train_common_meta(meta, opts, sizeof opts, o, cfg_text, extra);
    rl_train_loop_cfg lc;
    rc = rl_train_loop_cfg_init(&lc, o, "vae", ckpt, logp, sizeof ckpt, err);
    if (rc) goto done;
    lc.ctx = &r;
    lc.step = vae_step;
    lc.finish = vae_finish;
    lc.meta = meta;
    lc.n_meta = n_meta;
    rc = rl_train_loop(&lc, &pt, err);

done:
    free(cfg_text);
    rl_json_free(&j);
    rl_vae_free(&r.v);
    rl_vae_free(&r.g);
    rl_arena_free(&r.arena);
    rl_ptable_free(&pt);
    return rc;
}
