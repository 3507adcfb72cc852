/* core/pipeline.c (draft: rename to core/pipeline.c once core/sched.h and io/config_sched.h exist;
 * assumed scheduler API: rl_sched_cfg_load, rl_sched_cfg.num_train_timesteps, rl_sched_init(s, cfg,
 * steps, err), rl_sched_init_sigma, rl_sched_timestep(s, i), rl_sched_step(s, x, eps, i, n),
 * rl_sched_free) - the public API of core/reel.h: open a model folder, encode prompts, run the
 * DDIM loop with classifier-free guidance, decode frame by frame. The glue, nothing clever:
 * each step mirrors diffusers' AnimateDiffPipeline.__call__ (encode_prompt, prepare_latents,
 * the denoising loop, decode_latents, postprocess). */
#include "core/reel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/bpe.h"
#include "core/clip.h"
#include "core/guide.h"
#include "core/par.h"
#include "core/rng.h"
#include "core/sched.h"
#include "core/unet.h"
#include "core/vae.h"
#include "io/config_sched.h"
#include "io/diffusers.h"
#include "temporal/travel.h"

struct rl_ctx {
    rl_diffusers files;          // configs and weight tables (the models point into them)
    rl_bpe bpe;
    rl_clip clip;
    rl_unet unet;
    rl_vae vae;
    rl_sched_cfg sched_cfg;
    rl_arena arena;              // activations of every phase; reset between calls
    int n_threads;
    int L, D;                    // text tokens, text width
    int C, vae_scale;            // latent channels, pixels per latent
};

// ---- open / close ---------------------------------------------------------------------

rl_gen_params rl_gen_default_params(void)
{
    return (rl_gen_params){
        .frames = 16, .width = 0, .height = 0, .steps = 25, .guidance = 7.5f, .seed = 0,
        .scheduler = RL_SCHED_DEFAULT, .eta = 0.0f, .interp = RL_INTERP_LINEAR,
        .freeinit_cutoff = 0.25f,
    };
}

/* The components must agree with each other, not only with their own configs. */
static rl_status check_consistency(rl_ctx *c, rl_err *err)
{
    const rl_unet_cfg *u = &c->unet.cfg;
    for (int i = 0; i < u->n_blocks; i++)
        if (u->cross_dim[i] != c->D)
            return rl_errf(err, RL_E_SHAPE, "%s: unet cross_attention_dim %d (block %d) differs "
                           "from the text encoder's hidden_size %d", c->files.dir, u->cross_dim[i],
                           i, c->D);
    if (u->in_channels != c->C || u->out_channels != c->C)
        return rl_errf(err, RL_E_SHAPE, "%s: unet in/out_channels %d/%d differ from the vae's "
                       "latent_channels %d", c->files.dir, u->in_channels, u->out_channels, c->C);
    if (c->bpe.max_length > c->clip.cfg.max_position_embeddings)
        return rl_errf(err, RL_E_SHAPE, "%s: tokenizer model_max_length %d exceeds the text "
                       "encoder's max_position_embeddings %d", c->files.dir, c->bpe.max_length,
                       c->clip.cfg.max_position_embeddings);
    if (c->bpe.n_vocab > c->clip.cfg.vocab_size)
        return rl_errf(err, RL_E_SHAPE, "%s: tokenizer has %d tokens, the text encoder's "
                       "vocab_size is %d", c->files.dir, c->bpe.n_vocab, c->clip.cfg.vocab_size);
    return RL_OK;
}

rl_status rl_ctx_open(rl_ctx **out, const char *model_dir, int n_threads, rl_err *err)
{
    rl_status rc;
    *out = NULL;
    if (!model_dir) return rl_errf(err, RL_E_PARAM, "no model folder given");
    rl_ctx *c = calloc(1, sizeof *c);
    if (!c) return rl_errf(err, RL_E_NOMEM, "out of memory");
    rl_arena_init(&c->arena, 0);
    c->n_threads = n_threads;
    rl_par_set_threads(n_threads);

    if ((rc = rl_diffusers_open(&c->files, model_dir, err))) goto fail;
    rl_diffusers *f = &c->files;
    if ((rc = rl_bpe_init(&c->bpe, &f->tok, err))) { rl_err_prefix(err, "%s/tokenizer", model_dir); goto fail; }

    // bind each model to its tensors: every shape checked, nothing left over
    // (CLIPTextModelWithProjection's text_projection is not part of the text encoder we run)
    if ((rc = rl_clip_bind(&c->clip, &f->text_w, "text_model", &f->text_cfg, err)) ||
        (rc = rl_weights_check_all_used(&f->text_w, "text_model.", err))) goto fail;
    if ((rc = rl_unet_bind(&c->unet, &f->unet_w, f->has_adapter ? &f->motion_w : NULL,
                           &f->unet_cfg, err))) goto fail;
    if ((rc = rl_vae_bind(&c->vae, &f->vae_w, "", &f->vae_cfg, err)) ||
        (rc = rl_weights_check_all_used(&f->vae_w, NULL, err))) goto fail;
    if ((rc = rl_sched_cfg_load(&c->sched_cfg, f->sched_config, err))) goto fail;

    c->L = c->bpe.max_length;
    c->D = f->text_cfg.hidden_size;
    c->C = f->vae_cfg.latent_channels;
    c->vae_scale = rl_vae_cfg_scale(&f->vae_cfg);
    if ((rc = check_consistency(c, err))) goto fail;
    *out = c;
    return RL_OK;

fail:
    rl_ctx_close(&c);
    return rc;
}

void rl_ctx_close(rl_ctx **ctx)
{
    if (!ctx || !*ctx) return;
    rl_ctx *c = *ctx;
    rl_vae_free(&c->vae);
    rl_unet_free(&c->unet);
    rl_clip_free(&c->clip);
    rl_bpe_free(&c->bpe);
    rl_diffusers_close(&c->files);
    rl_arena_free(&c->arena);
    free(c);
    *ctx = NULL;
}

rl_model_info rl_ctx_info(const rl_ctx *c)
{
    const rl_unet_cfg *u = &c->unet.cfg;
    size_t n = rl_clip_n_params(&c->clip.cfg) + rl_vae_n_params(&c->vae);
    for (int k = 0; k < c->files.unet_w.n; k++) {
        size_t e = 1;
        for (int d = 0; d < c->files.unet_w.w[k].ndim; d++) e *= (size_t)c->files.unet_w.w[k].shape[d];
        n += e;
    }
    for (int k = 0; k < c->files.motion_w.n; k++) {
        size_t e = 1;
        for (int d = 0; d < c->files.motion_w.w[k].ndim; d++) e *= (size_t)c->files.motion_w.w[k].shape[d];
        n += e;
    }
    return (rl_model_info){
        .latent_channels = c->C, .vae_scale = c->vae_scale,
        .max_frames = u->has_motion ? u->motion_max_seq : 0,
        .sample_size = u->sample_size, .text_len = c->L, .text_dim = c->D, .n_params = n,
    };
}

// ---- text -------------------------------------------------------------------------------

rl_status rl_tokenize(const rl_ctx *c, const char *prompt, int *ids, rl_err *err)
{
    // CLIPTokenizer(prompt, padding="max_length", max_length=model_max_length, truncation=True)
    return rl_bpe_encode(&c->bpe, prompt ? prompt : "", ids, NULL, err);
}

/* out (n, L, D): the embeddings of n prompts, one text-encoder call. */
static rl_status encode_prompts(rl_ctx *c, const char *const *prompts, int n, float *out,
                                rl_err *err)
{
    rl_status rc;
    rl_arena_mark m = rl_arena_get_mark(&c->arena);
    int *ids = rl_arena_bytes(&c->arena, (size_t)n * c->L * sizeof(int));
    rl_clip_acts a;
    if (ids) rl_clip_plan(&c->clip, &a, &c->arena, n, c->L, 0);
    if ((rc = rl_arena_check(&c->arena, err))) goto done;
    for (int i = 0; i < n; i++)
        if ((rc = rl_tokenize(c, prompts[i], ids + (size_t)i * c->L, err))) goto done;
    if ((rc = rl_clip_check_ids(&c->clip, ids, n, c->L, err))) goto done;
    rl_clip_fwd(&c->clip, &a, out, ids, n, c->L);
done:
    rl_arena_reset(&c->arena, m);
    return rc;
}

rl_status rl_encode_prompt(rl_ctx *c, const char *prompt, float *out, rl_err *err)
{
    return encode_prompts(c, (const char *const[]){ prompt ? prompt : "" }, 1, out, err);
}

// ---- generation -------------------------------------------------------------------------

/* Fills unset sizes from the model and checks what the model can take. */
static rl_status check_params(const rl_ctx *c, rl_gen_params *p, rl_err *err)
{
    const rl_unet_cfg *u = &c->unet.cfg;
    if (p->width == 0) p->width = u->sample_size * c->vae_scale;
    if (p->height == 0) p->height = u->sample_size * c->vae_scale;
    if (!p->keyframes && !p->prompt)
        return rl_errf(err, RL_E_PARAM, "no prompt given");
    if (p->frames < 1 || p->frames > 4096)
        return rl_errf(err, RL_E_PARAM, "frames %d: expected 1 to 4096", p->frames);
    if (u->has_motion && p->frames > u->motion_max_seq)
        // TODO(window): context windows (temporal/window.h) lift this limit
        return rl_errf(err, RL_E_PARAM, "frames %d: this model's motion modules take at most %d "
                       "frames (context windows are not available yet)", p->frames,
                       u->motion_max_seq);
    // the latent must survive every 2x downsampling of the UNet and come back the same size
    const int mult = c->vae_scale << (u->n_blocks - 1);
    if (p->width < mult || p->height < mult || p->width % mult || p->height % mult ||
        p->width > 16384 || p->height > 16384)
        return rl_errf(err, RL_E_PARAM, "size %dx%d: width and height must be positive "
                       "multiples of %d (at most 16384) for this model", p->width, p->height, mult);
    if (p->steps < 1 || p->steps > c->sched_cfg.num_train_timesteps)
        return rl_errf(err, RL_E_PARAM, "steps %d: expected 1 to %d", p->steps,
                       c->sched_cfg.num_train_timesteps);
    if (!isfinite(p->guidance) || p->guidance < 0.0f || p->guidance > 100.0f)
        return rl_errf(err, RL_E_PARAM, "guidance %g: expected a number in [0, 100]",
                       (double)p->guidance);
    if (p->scheduler != RL_SCHED_DEFAULT && p->scheduler != RL_SCHED_DDIM)
        return rl_errf(err, RL_E_PARAM, "only the DDIM scheduler is available");
    if (!isfinite(p->eta) || p->eta != 0.0f)
        return rl_errf(err, RL_E_PARAM, "eta %g: only deterministic DDIM (eta 0) is available",
                       (double)p->eta);
    if (p->freeinit_iters != 0)
        // TODO(freeinit): temporal/freeinit.h re-initialises the noise here
        return rl_errf(err, RL_E_PARAM, "FreeInit is not available yet");
    if (p->keyframes && (p->n_keyframes < 1 || p->n_keyframes > 4096))
        return rl_errf(err, RL_E_PARAM, "%d keyframes: expected 1 to 4096", p->n_keyframes);
    for (int k = 0; p->keyframes && k < p->n_keyframes; k++)
        if (!p->keyframes[k].prompt)
            return rl_errf(err, RL_E_PARAM, "keyframe %d has no prompt", k);
    return RL_OK;
}

/* RGB8 of one decoded frame: img (3, H, W) in about [-1, 1] -> frame (H, W, 3) floats in [0, 1]
 * ((x / 2 + 0.5).clamp(0, 1), diffusers' postprocess) and bytes round(255 v) as
 * numpy_to_pil does. */
static void to_rgb(float *frame, uint8_t *rgb, const float *img, int H, int W)
{
    const size_t S = (size_t)H * W;
    for (size_t i = 0; i < S; i++)
        for (int ch = 0; ch < 3; ch++) {
            float v = img[(size_t)ch * S + i] / 2.0f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            frame[i * 3 + ch] = v;
            rgb[i * 3 + ch] = (uint8_t)lrintf(v * 255.0f);   // round half to even, as numpy
        }
}

rl_status rl_generate(rl_ctx *c, const rl_gen_params *params, rl_err *err)
{
    rl_status rc;
    if (!c || !params) return rl_errf(err, RL_E_PARAM, "no context or parameters");
    rl_gen_params p = *params;
    if ((rc = check_params(c, &p, err))) return rc;
    rl_par_set_threads(c->n_threads);

    const int F = p.frames, C = c->C, L = c->L, D = c->D;
    const int h = p.height / c->vae_scale, w = p.width / c->vae_scale;
    const size_t n_lat = (size_t)C * F * h * w;
    const int cfg = rl_guide_active(p.guidance);
    const int N = cfg ? 2 : 1;             // CFG: [uncond, cond] in one UNet call
    rl_arena_mark m0 = rl_arena_get_mark(&c->arena);
    rl_sched sched = { 0 };

    const int EF = p.keyframes ? F : 1;     // embeddings per video: per frame under travel
    float *emb = rl_arena_floats(&c->arena, (size_t)N * EF * L * D); // (N, EF, L, D)
    float *lat = rl_arena_floats(&c->arena, n_lat);                  // (1, C, F, h, w)
    float *x_in = rl_arena_floats(&c->arena, (size_t)N * n_lat);     // (N, C, F, h, w)
    float *eps_n = rl_arena_floats(&c->arena, (size_t)N * n_lat);    // (N, C, F, h, w)
    float *eps = rl_arena_floats(&c->arena, n_lat);                  // (C, F, h, w)
    if ((rc = rl_arena_check(&c->arena, err))) goto done;

    // ---- encode: negative (or empty) prompt first, as torch.cat([negative, positive])
    if (p.progress && p.progress(p.progress_user, RL_PHASE_ENCODE, 1, 1)) goto cancelled;
    const char *neg = p.negative_prompt ? p.negative_prompt : "";
    if (p.keyframes) {
        // prompt travel: each keyframe prompt encoded, interpolated to one embedding per frame
        // (temporal/travel.h) for the conditional half; the negative prompt is shared by all
        // frames of the unconditional half
        const size_t LD = (size_t)L * D;
        float *cond = emb + (size_t)(N - 1) * F * LD;
        rl_arena_mark mk = rl_arena_get_mark(&c->arena);
        float *kemb = rl_arena_floats(&c->arena, (size_t)p.n_keyframes * LD);
        rl_travel_key *keys = rl_arena_bytes(&c->arena, (size_t)p.n_keyframes * sizeof *keys);
        if ((rc = rl_arena_check(&c->arena, err))) goto done;
        for (int k = 0; k < p.n_keyframes && !rc; k++) {
            rc = rl_encode_prompt(c, p.keyframes[k].prompt, kemb + (size_t)k * LD, err);
            keys[k] = (rl_travel_key){ .frame = p.keyframes[k].frame, .emb = kemb + (size_t)k * LD };
        }
        if (!rc) rc = rl_travel_embed(cond, keys, p.n_keyframes, F, L, D, p.interp, err);
        if (!rc && cfg) {
            rc = rl_encode_prompt(c, neg, emb, err);
            for (int f = 1; f < F && !rc; f++) memcpy(emb + (size_t)f * LD, emb, LD * sizeof(float));
        }
        rl_arena_reset(&c->arena, mk);
    } else if (cfg) {
        rc = encode_prompts(c, (const char *const[]){ neg, p.prompt }, 2, emb, err);
    } else {
        rc = encode_prompts(c, (const char *const[]){ p.prompt }, 1, emb, err);
    }
    if (rc) goto done;

    // ---- initial noise: torch.randn((1, C, F, h, w), generator=manual_seed(seed)) * sigma
    if ((rc = rl_sched_init(&sched, &c->sched_cfg, p.steps, err))) goto done;
    rl_rng rng;
    rl_rng_seed(&rng, p.seed);
    rl_rng_randn(&rng, lat, n_lat);
    const float sigma = rl_sched_init_sigma(&sched);
    for (size_t i = 0; i < n_lat; i++) lat[i] *= sigma;
    if (p.on_step && p.on_step(p.step_user, -1, -1, NULL, lat)) goto cancelled;

    // ---- denoise
    for (int i = 0; i < p.steps; i++) {
        const int t = rl_sched_timestep(&sched, i);
        const float tf = (float)t;
        for (int n = 0; n < N; n++) memcpy(x_in + (size_t)n * n_lat, lat, n_lat * sizeof(float));
        if ((rc = rl_unet_fwd(&c->unet, &c->arena, eps_n, x_in, &tf, 1, emb, EF, L, D, N, F, h, w,
                              err))) goto done;
        if (cfg) rl_guide_cfg(eps, eps_n, eps_n + n_lat, p.guidance, n_lat);
        else memcpy(eps, eps_n, n_lat * sizeof(float));
        rl_sched_step(&sched, lat, eps, i, n_lat);
        if (p.on_step && p.on_step(p.step_user, i, t, eps, lat)) goto cancelled;
        if (p.progress && p.progress(p.progress_user, RL_PHASE_DENOISE, i + 1, p.steps))
            goto cancelled;
    }
    if (p.latents_out) memcpy(p.latents_out, lat, n_lat * sizeof(float));

    // ---- decode frame by frame: latents * (1 / scaling_factor) (torch multiplies by the
    // reciprocal), VAE decoder, (x / 2 + 0.5).clamp(0, 1)
    {
        const int H = p.height, W = p.width, S = h * w;
        const float inv = (float)(1.0 / (double)c->vae.cfg.scaling_factor);
        float *z = rl_arena_floats(&c->arena, (size_t)C * S);
        float *img = rl_arena_floats(&c->arena, (size_t)3 * H * W);
        float *frame = rl_arena_floats(&c->arena, (size_t)H * W * 3);
        uint8_t *rgb = rl_arena_bytes(&c->arena, (size_t)H * W * 3);
        if ((rc = rl_arena_check(&c->arena, err))) goto done;
        for (int f = 0; f < F; f++) {
            for (int ch = 0; ch < C; ch++)      // (C, F, h, w)[:, f] -> (C, h, w)
                for (int s = 0; s < S; s++)
                    z[(size_t)ch * S + s] = lat[((size_t)ch * F + f) * S + s] * inv;
            rl_vae_decode(&c->vae, &c->arena, img, z, 1, h, w);
            to_rgb(p.frames_out ? p.frames_out + (size_t)f * H * W * 3 : frame, rgb, img, H, W);
            if (p.on_frame && p.on_frame(p.frame_user, f, rgb, W, H)) goto cancelled;
            if (p.progress && p.progress(p.progress_user, RL_PHASE_DECODE, f + 1, F))
                goto cancelled;
        }
    }
    rc = RL_OK;
    goto done;

cancelled:
    rc = rl_errf(err, RL_E_INTERRUPTED, "generation cancelled");
done:
    rl_sched_free(&sched);
    rl_arena_reset(&c->arena, m0);
    return rc;
}
