/* core/pipeline.c - the public API of core/reel.h: open a model folder, encode prompts, run the
 * sampling loop with classifier-free guidance, decode frame by frame. The glue, nothing
 * clever: each step mirrors diffusers' AnimateDiffPipeline.__call__ (encode_prompt,
 * prepare_latents, the denoising loop, decode_latents, postprocess), with
 *   - context windows (temporal/window.h) when the clip is longer than the motion modules'
 *     frame count or than p->context_frames: each step runs the UNet on every window and
 *     averages the guided noise predictions with the windows' normalised weights;
 *   - FreeInit (temporal/freeinit.h; diffusers FreeInitMixin._apply_free_init): after a full
 *     sampling pass the final latents are diffused back to t = T - 1 with the initial noise
 *     (add_noise), their low spatio-temporal frequencies kept and the high ones replaced by
 *     fresh noise from the same generator, then sampled again;
 *   - DDIM, DDPM or Euler from core/sched.h, the model's scheduler_config.json read as that
 *     class (as XScheduler.from_config(pipe.scheduler.config) does). */
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
#include "io/json.h"
#include "temporal/freeinit.h"
#include "temporal/travel.h"
#include "temporal/window.h"

struct rl_ctx {
    rl_diffusers files;          // configs and weight tables (the models point into them)
    rl_bpe bpe;
    rl_clip clip;
    rl_unet unet;
    rl_vae vae;
    rl_json sched_json;          // scheduler_config.json, re-read as another class on request
    rl_sched_cfg sched_cfg;      // the model's own scheduler
    rl_arena arena;              // activations of every phase; reset between calls
    int n_threads;
    int L, D;                    // text tokens, text width
    int C, vae_scale;            // latent channels, pixels per latent
};

// ---- open / close ---------------------------------------------------------------------

rl_gen_params rl_gen_default_params(void)
{
    return (rl_gen_params){
        .frames = 16, .width = 0, .height = 0, .steps = 25, .guidance = 7.5f,
        .guidance_rescale = 0.0f, .seed = 0,
        .scheduler = RL_GEN_SCHED_DEFAULT, .eta = 0.0f, .interp = RL_INTERP_LINEAR,
        .context_frames = 0, .context_overlap = 4, .loop = 0,
        .freeinit_iters = 0, .freeinit_butterworth = 1, .freeinit_cutoff = 0.25f,
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
    if ((rc = rl_bpe_init(&c->bpe, &f->tok, err))) {
        rl_err_prefix(err, "%s/tokenizer", model_dir);
        goto fail;
    }

    // bind each model to its tensors: every shape checked, nothing left over
    // (CLIPTextModelWithProjection's text_projection is not part of the text encoder we run)
    if ((rc = rl_clip_bind(&c->clip, &f->text_w, "text_model", &f->text_cfg, err)) ||
        (rc = rl_weights_check_all_used(&f->text_w, "text_model.", err))) goto fail;
    if ((rc = rl_unet_bind(&c->unet, &f->unet_w, f->has_adapter ? &f->motion_w : NULL,
                           &f->unet_cfg, err))) goto fail;
    if ((rc = rl_vae_bind(&c->vae, &f->vae_w, "", &f->vae_cfg, err)) ||
        (rc = rl_weights_check_all_used(&f->vae_w, NULL, err))) goto fail;
    if ((rc = rl_json_load(&c->sched_json, f->sched_config, err)) ||
        (rc = rl_sched_cfg_parse(&c->sched_cfg, &c->sched_json, err))) goto fail;

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
    rl_json_free(&c->sched_json);
    rl_diffusers_close(&c->files);
    rl_arena_free(&c->arena);
    free(c);
    *ctx = NULL;
}


rl_model_info rl_ctx_info(const rl_ctx *c)
{
    const rl_unet_cfg *u = &c->unet.cfg;
    size_t n = rl_clip_n_params(&c->clip.cfg) + rl_vae_n_params(&c->vae) +
               rl_weights_numel(&c->files.unet_w) + rl_weights_numel(&c->files.motion_w);
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

rl_status rl_prompt_tokens(const rl_ctx *c, const char *prompt, int *n_tokens, int *n_read,
                           rl_err *err)
{
    *n_read = c->bpe.max_length - 2;
    return rl_bpe_tokenize(&c->bpe, prompt ? prompt : "", NULL, 0, n_tokens, err);
}

/* out (n, L, D): the embeddings of n prompts, one text-encoder call. */
static rl_status encode_prompts(rl_ctx *c, const char *const *prompts, int n, float *out,
                                rl_err *err)
{
    rl_status rc;
    rl_arena_mark m = rl_arena_get_mark(&c->arena);
    int *ids = rl_arena_bytes(&c->arena, (size_t)n * c->L * sizeof(int));   // (n, L)
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

// ---- parameters -------------------------------------------------------------------------

/* The window length: p->context_frames, else the trained clip length RL_GEN_TRAINED_FRAMES;
 * never more than the motion modules' position table holds (a model without motion modules
 * sees frames independently: one window of the whole clip). */
static int context_len(const rl_ctx *c, const rl_gen_params *p)
{
    const rl_unet_cfg *u = &c->unet.cfg;
    int len = p->context_frames > 0 ? p->context_frames
              : u->has_motion ? RL_GEN_TRAINED_FRAMES : p->frames;
    if (u->has_motion && len > u->motion_max_seq) len = u->motion_max_seq;
    return len;
}

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
    if (!isfinite(p->guidance_rescale) || p->guidance_rescale < 0.0f || p->guidance_rescale > 1.0f)
        return rl_errf(err, RL_E_PARAM, "guidance rescale %g: expected a number in [0, 1]",
                       (double)p->guidance_rescale);
    if ((int)p->scheduler < RL_GEN_SCHED_DEFAULT || (int)p->scheduler > RL_GEN_SCHED_EULER)
        return rl_errf(err, RL_E_PARAM, "scheduler %d: expected DEFAULT, DDIM, DDPM or EULER",
                       (int)p->scheduler);
    if (!isfinite(p->eta) || p->eta != 0.0f)
        return rl_errf(err, RL_E_PARAM, "eta %g: only deterministic DDIM (eta 0) is available",
                       (double)p->eta);
    if (p->context_frames < 0 || p->context_frames > 4096)
        return rl_errf(err, RL_E_PARAM, "context %d: expected 0 (the model's frame count) to "
                       "4096", p->context_frames);
    const int len = context_len(c, p);
    if (len < p->frames && (p->context_overlap < 0 || p->context_overlap >= len))
        return rl_errf(err, RL_E_PARAM, "overlap %d: expected 0 to %d (less than the context "
                       "window of %d frames)", p->context_overlap, len - 1, len);
    if (p->freeinit_iters < 0 || p->freeinit_iters > 100)
        return rl_errf(err, RL_E_PARAM, "FreeInit iterations %d: expected 0 (off) to 100",
                       p->freeinit_iters);
    if (p->freeinit_iters > 0 && (!isfinite(p->freeinit_cutoff) || p->freeinit_cutoff <= 0.0f ||
                                  p->freeinit_cutoff > 1.0f))
        return rl_errf(err, RL_E_PARAM, "FreeInit cut-off %g: expected a number in (0, 1]",
                       (double)p->freeinit_cutoff);
    if (p->keyframes && (p->n_keyframes < 1 || p->n_keyframes > 4096))
        return rl_errf(err, RL_E_PARAM, "%d keyframes: expected 1 to 4096", p->n_keyframes);
    for (int k = 0; p->keyframes && k < p->n_keyframes; k++)
        if (!p->keyframes[k].prompt)
            return rl_errf(err, RL_E_PARAM, "keyframe %d has no prompt", k);
    return RL_OK;
}

/* The scheduler config for p's choice: the model's, or its scheduler_config.json read as
 * another class (keys the file sets are kept, the others take that class's defaults). */
static rl_status sched_config(rl_ctx *c, rl_gen_sched which, rl_sched_cfg *cfg, rl_err *err)
{
    static const char *const classes[] = { NULL, "DDIMScheduler", "DDPMScheduler",
                                           "EulerDiscreteScheduler" };
    if (which == RL_GEN_SCHED_DEFAULT) {
        *cfg = c->sched_cfg;
        return RL_OK;
    }
    cJSON *root = c->sched_json.root;
    cJSON *cls = cJSON_CreateString(classes[which]);
    if (!cls) return rl_errf(err, RL_E_NOMEM, "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "_class_name");
    if (!cJSON_AddItemToObject(root, "_class_name", cls)) {
        cJSON_Delete(cls);
        return rl_errf(err, RL_E_NOMEM, "out of memory");
    }
    return rl_sched_cfg_parse(cfg, &c->sched_json, err);
}

// ---- sampling ---------------------------------------------------------------------------

/* Everything one sampling pass needs, carved from the arena once per rl_generate. */
typedef struct {
    const rl_gen_params *p;
    rl_sched sched;
    rl_windows win;
    rl_rng rng;
    int N, C, F, S, h, w, L, D, EF;   // EF: embeddings per video (1, or F under travel)
    size_t n_lat;                     // C * F * S
    const float *emb;                 // (N, EF, L, D)
    float *emb_w;                     // (N, len, L, D) one window's per-frame embeddings
    float *x_in;                      // (N, C, len, h, w) UNet input
    float *eps_n;                     // (N, C, len, h, w) UNet output
    float *eps_w;                     // (C, len, h, w) guided, one window
    float *eps;                       // (C, F, h, w) guided, all windows averaged
    float *noise;                     // (C, F, h, w) DDPM's per-step noise
    int step0, n_total;               // numbering of steps across FreeInit passes
} sampler;

/* One full pass over the scheduler's timesteps: lat (C, F, h, w) is denoised in place. */
static rl_status sample(rl_ctx *c, sampler *s, float *lat, rl_err *err)
{
    rl_status rc;
    const rl_gen_params *p = s->p;
    const rl_windows *win = &s->win;
    const int len = win->len, C = s->C, S = s->S, N = s->N;
    const size_t n_win = (size_t)C * len * S;
    const size_t LD = (size_t)s->L * s->D;
    const int cfg = N == 2;
    for (int i = 0; i < s->sched.n_steps; i++) {
        const double t = s->sched.timesteps[i];
        const float tf = (float)t;
        memset(s->eps, 0, s->n_lat * sizeof(float));
        for (int k = 0; k < win->n; k++) {
            // the window's frames, scaled for the model (Euler), copied for each CFG half
            rl_windows_gather(s->x_in, lat, win, k, C, S);
            rl_sched_scale_input(&s->sched, s->x_in, s->x_in, n_win, i);
            for (int n = 1; n < N; n++) memcpy(s->x_in + (size_t)n * n_win, s->x_in, n_win * sizeof(float));
            const float *emb = s->emb;
            if (s->EF > 1 && win->n > 1) {   // per-frame embeddings of the window's frames
                for (int n = 0; n < N; n++)
                    for (int j = 0; j < len; j++)
                        memcpy(s->emb_w + ((size_t)n * len + j) * LD,
                               s->emb + ((size_t)n * s->EF + win->idx[(size_t)k * len + j]) * LD,
                               LD * sizeof(float));
                emb = s->emb_w;
            }
            if ((rc = rl_unet_fwd(&c->unet, &c->arena, s->eps_n, s->x_in, &tf, 1, emb,
                                  s->EF > 1 ? len : 1, s->L, s->D, N, len, s->h, s->w, err)))
                return rc;
            if (cfg) {
                rl_guide_cfg(s->eps_w, s->eps_n, s->eps_n + n_win, p->guidance, n_win);
                // per window: each is the clip the UNet saw (one window: diffusers' whole clip)
                rl_guide_rescale(s->eps_w, s->eps_n + n_win, p->guidance_rescale, n_win);
            } else memcpy(s->eps_w, s->eps_n, n_win * sizeof(float));
            rl_windows_accum(s->eps, s->eps_w, win, k, C, S);
        }
        // DDPMScheduler.step draws its noise from the pipeline's generator when t > 0
        const int noisy = rl_sched_needs_noise(&s->sched, i);
        if (noisy) rl_rng_randn(&s->rng, s->noise, s->n_lat);
        rl_sched_step(&s->sched, lat, lat, s->eps, noisy ? s->noise : NULL, s->n_lat, i);
        const int step = s->step0 + i;
        if (p->on_step && p->on_step(p->step_user, step, (int)lrint(t), s->eps, lat))
            return RL_E_INTERRUPTED;
        if (p->progress && p->progress(p->progress_user, RL_PHASE_DENOISE, step + 1, s->n_total))
            return RL_E_INTERRUPTED;
    }
    s->step0 += s->sched.n_steps;
    return RL_OK;
}

/* FreeInit's re-initialisation (diffusers FreeInitMixin._apply_free_init, iteration > 0):
 *   z_t = add_noise(lat, initial noise, T - 1);  z_rand = randn (the same generator);
 *   lat = IFFT(FFT(z_t) LPF + FFT(z_rand) (1 - LPF)).
 * noise0 is the initial noise before any scaling. Both terms are in DDPM's x_t space; Euler
 * works on x_t / sqrt(abar_t) (= x0 + sigma_t eps), so its latents are divided by
 * sqrt(abar_{T-1}) after the (linear) mix: reel's choice, where diffusers would add Euler's
 * sigma-scaled initial latents to unscaled fresh noise. */
static void freeinit_reinit(sampler *s, rl_freeinit *fi, float *lat, const float *noise0,
                            float *fresh)
{
    rl_sched_add_noise(&s->sched, lat, lat, noise0, s->n_lat, s->sched.T - 1);
    rl_rng_randn(&s->rng, fresh, s->n_lat);
    rl_freeinit_mix(fi, lat, lat, fresh, s->C);
    if (s->sched.cfg.kind == RL_SCHED_EULER) {
        const float scale = (float)(1.0 / sqrt(s->sched.alphas_cumprod[s->sched.T - 1]));
        for (size_t i = 0; i < s->n_lat; i++) lat[i] *= scale;
    }
}

// ---- decoding ---------------------------------------------------------------------------

/* latents (C, F, h, w) * (1 / scaling_factor) (torch multiplies by the reciprocal), the VAE
 * decoder one frame at a time, (x / 2 + 0.5).clamp(0, 1). */
static rl_status decode(rl_ctx *c, const rl_gen_params *p, const float *lat, int F, int h, int w,
                        rl_err *err)
{
    rl_status rc;
    const int C = c->C, H = p->height, W = p->width, S = h * w;
    const float inv = (float)(1.0 / (double)c->vae.cfg.scaling_factor);
    float *z = rl_arena_floats(&c->arena, (size_t)C * S);               // (C, h, w)
    float *img = rl_arena_floats(&c->arena, (size_t)3 * H * W);         // (3, H, W)
    uint8_t *rgb = rl_arena_bytes(&c->arena, (size_t)H * W * 3);        // (H, W, 3)
    if ((rc = rl_arena_check(&c->arena, err))) return rc;
    for (int f = 0; f < F; f++) {
        for (int ch = 0; ch < C; ch++)      // (C, F, h, w)[:, f] -> (C, h, w)
            for (int i = 0; i < S; i++) z[(size_t)ch * S + i] = lat[((size_t)ch * F + f) * S + i] * inv;
        rl_vae_decode(&c->vae, &c->arena, img, z, 1, h, w);
        rl_vae_to_rgb(rgb, p->frames_out ? p->frames_out + (size_t)f * H * W * 3 : NULL, img, H, W);
        if (p->on_frame && p->on_frame(p->frame_user, f, rgb, W, H)) return RL_E_INTERRUPTED;
        if (p->progress && p->progress(p->progress_user, RL_PHASE_DECODE, f + 1, F))
            return RL_E_INTERRUPTED;
    }
    return RL_OK;
}

// ---- generation -------------------------------------------------------------------------

/* emb (N, EF, L, D): [negative (or empty), prompt] under CFG, the prompt alone otherwise;
 * under prompt travel the prompt half holds one interpolated embedding per frame and the
 * negative half repeats the negative prompt's. */
static rl_status encode(rl_ctx *c, const rl_gen_params *p, float *emb, int N, int F, rl_err *err)
{
    rl_status rc;
    const char *neg = p->negative_prompt ? p->negative_prompt : "";
    if (!p->keyframes) {
        if (N == 2) return encode_prompts(c, (const char *const[]){ neg, p->prompt }, 2, emb, err);
        return encode_prompts(c, (const char *const[]){ p->prompt }, 1, emb, err);
    }
    const size_t LD = (size_t)c->L * c->D;
    float *cond = emb + (size_t)(N - 1) * F * LD;                         // (F, L, D)
    rl_arena_mark mk = rl_arena_get_mark(&c->arena);
    float *kemb = rl_arena_floats(&c->arena, (size_t)p->n_keyframes * LD); // (K, L, D)
    rl_travel_key *keys = rl_arena_bytes(&c->arena, (size_t)p->n_keyframes * sizeof *keys);
    if ((rc = rl_arena_check(&c->arena, err))) goto done;
    for (int k = 0; k < p->n_keyframes; k++) {
        if ((rc = rl_encode_prompt(c, p->keyframes[k].prompt, kemb + (size_t)k * LD, err))) goto done;
        keys[k] = (rl_travel_key){ .frame = p->keyframes[k].frame, .emb = kemb + (size_t)k * LD };
    }
    if ((rc = rl_travel_embed(cond, keys, p->n_keyframes, F, c->L, c->D, p->interp, err))) goto done;
    if (N == 2) {
        if ((rc = rl_encode_prompt(c, neg, emb, err))) goto done;
        for (int f = 1; f < F; f++) memcpy(emb + (size_t)f * LD, emb, LD * sizeof(float));
    }
done:
    rl_arena_reset(&c->arena, mk);
    return rc;
}

rl_status rl_generate(rl_ctx *c, const rl_gen_params *params, rl_err *err)
{
    rl_status rc;
    if (!c || !params) return rl_errf(err, RL_E_PARAM, "no context or parameters");
    rl_gen_params p = *params;
    if ((rc = check_params(c, &p, err))) return rc;
    rl_par_set_threads(c->n_threads);

    sampler s = { .p = &p, .C = c->C, .F = p.frames, .L = c->L, .D = c->D };
    s.h = p.height / c->vae_scale;
    s.w = p.width / c->vae_scale;
    s.S = s.h * s.w;
    s.n_lat = (size_t)s.C * s.F * s.S;
    s.N = rl_guide_active(p.guidance) ? 2 : 1;    // CFG: [uncond, cond] in one UNet call
    s.EF = p.keyframes ? s.F : 1;
    const int iters = p.freeinit_iters > 1 ? p.freeinit_iters : 1;
    rl_freeinit fi = { 0 };
    rl_sched_cfg scfg;
    rl_arena_mark m0 = rl_arena_get_mark(&c->arena);

    if ((rc = sched_config(c, p.scheduler, &scfg, err)) ||
        (rc = rl_sched_init(&s.sched, &scfg, p.steps, err)))
        goto done;
    if ((rc = rl_windows_plan(&s.win, s.F, context_len(c, &p), p.context_overlap, p.loop, err)))
        goto done;
    if (iters > 1 &&
        (rc = rl_freeinit_init(&fi, s.F, s.h, s.w,
                               p.freeinit_butterworth ? RL_FREEINIT_BUTTERWORTH : RL_FREEINIT_GAUSSIAN,
                               4, p.freeinit_cutoff, p.freeinit_cutoff, err)))
        goto done;
    s.n_total = iters * s.sched.n_steps;

    const int len = s.win.len, N = s.N;
    const size_t n_win = (size_t)s.C * len * s.S, LD = (size_t)s.L * s.D;
    float *emb = rl_arena_floats(&c->arena, (size_t)N * s.EF * LD);        // (N, EF, L, D)
    s.emb = emb;
    s.emb_w = s.EF > 1 ? rl_arena_floats(&c->arena, (size_t)N * len * LD) : NULL;
    float *lat = rl_arena_floats(&c->arena, s.n_lat);                      // (C, F, h, w)
    s.x_in = rl_arena_floats(&c->arena, (size_t)N * n_win);
    s.eps_n = rl_arena_floats(&c->arena, (size_t)N * n_win);
    s.eps_w = rl_arena_floats(&c->arena, n_win);
    s.eps = rl_arena_floats(&c->arena, s.n_lat);
    s.noise = rl_arena_floats(&c->arena, s.n_lat);
    float *noise0 = iters > 1 ? rl_arena_floats(&c->arena, s.n_lat) : NULL; // (C, F, h, w)
    if ((rc = rl_arena_check(&c->arena, err))) goto done;

    // ---- encode: negative (or empty) prompt first, as torch.cat([negative, positive])
    if (p.progress && p.progress(p.progress_user, RL_PHASE_ENCODE, 1, 1)) goto cancelled;
    if ((rc = encode(c, &p, emb, N, s.F, err))) goto done;

    // ---- initial noise: torch.randn((1, C, F, h, w), generator=manual_seed(seed)) * sigma
    rl_rng_seed(&s.rng, p.seed);
    rl_rng_randn(&s.rng, lat, s.n_lat);
    if (noise0) memcpy(noise0, lat, s.n_lat * sizeof(float));
    const float sigma = (float)s.sched.init_noise_sigma;
    if (sigma != 1.0f)
        for (size_t i = 0; i < s.n_lat; i++) lat[i] *= sigma;
    if (p.on_step && p.on_step(p.step_user, -1, -1, NULL, lat)) goto cancelled;

    // ---- denoise, FreeInit's passes after the first starting from re-initialised noise
    for (int it = 0; it < iters; it++) {
        if (it > 0) {
            freeinit_reinit(&s, &fi, lat, noise0, s.noise);
            if (p.on_step && p.on_step(p.step_user, -1, -1, NULL, lat)) goto cancelled;
        }
        if ((rc = sample(c, &s, lat, err))) {
            if (rc == RL_E_INTERRUPTED) goto cancelled;
            goto done;
        }
    }
    if (p.latents_out) memcpy(p.latents_out, lat, s.n_lat * sizeof(float));

    // ---- decode frame by frame
    if ((rc = decode(c, &p, lat, s.F, s.h, s.w, err))) {
        if (rc == RL_E_INTERRUPTED) goto cancelled;
        goto done;
    }
    rc = RL_OK;
    goto done;

cancelled:
    rc = rl_errf(err, RL_E_INTERRUPTED, "generation cancelled");
done:
    rl_freeinit_free(&fi);
    rl_windows_free(&s.win);
    rl_sched_free(&s.sched);
    rl_arena_reset(&c->arena, m0);
    return rc;
}
