/* core/reel.h - the public API of libreel: text-to-video diffusion.
 *
 * Opens a diffusers-layout model folder (tokenizer, text_encoder, unet with motion modules or
 * a motion_adapter, vae, scheduler) and generates clips. No global state: several contexts
 * may live in one process. A context is not thread-safe; different contexts may be used from
 * different threads. The library never prints and never exits: errors come back as rl_status
 * plus a message in rl_err; diagnostics and progress go through callbacks. */
#ifndef RL_CORE_REEL_H
#define RL_CORE_REEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rl_ctx rl_ctx;    // opaque

/* Sampler choice for rl_generate (named apart from core/sched.h's rl_sched_kind, which has no
 * DEFAULT). */
typedef enum {
    RL_GEN_SCHED_DEFAULT = 0,   // the model's scheduler/scheduler_config.json
    RL_GEN_SCHED_DDIM,          // DDIMScheduler (deterministic with eta 0)
    RL_GEN_SCHED_DDPM,          // DDPMScheduler (stochastic: draws noise every step from the seed)
    RL_GEN_SCHED_EULER,         // EulerDiscreteScheduler
} rl_gen_sched;
typedef enum { RL_INTERP_LINEAR = 0, RL_INTERP_SLERP } rl_interp;

/* A prompt at a keyframe, for prompt travel. */
typedef struct {
    int frame;
    const char *prompt;
} rl_keyframe;

typedef enum { RL_PHASE_ENCODE = 0, RL_PHASE_DENOISE, RL_PHASE_DECODE, RL_PHASE_WRITE } rl_phase;

/* Progress: phase, step i of n (1-based). Return non-zero to cancel (RL_E_INTERRUPTED). */
typedef int (*rl_progress_fn)(void *user, rl_phase phase, int i, int n);
/* Called once per decoded frame: rgb (height, width, 3) bytes, valid during the call.
 * Return non-zero to cancel. */
typedef int (*rl_frame_fn)(void *user, int frame, const uint8_t *rgb, int width, int height);
/* Called with the initial latents (step -1, t -1, eps NULL), then after each denoising step
 * with its index (0-based, counted on across FreeInit passes), its timestep t (rounded for
 * Euler's fractional ones), the guided noise prediction eps (averaged over context windows) and
 * the updated latents, both (C, F, h, w), valid during the call. Each FreeInit pass after the
 * first starts with another step -1 call holding its re-initialised latents. For tests and
 * inspection. Return non-zero to cancel. */
typedef int (*rl_step_fn)(void *user, int step, int t, const float *eps, const float *latents);

/* The clip length motion modules are trained on (AnimateDiff v1-v3 and reel's shapes model:
 * 16 frames), and so the default context window: a longer clip is denoised in overlapping
 * windows of this many frames, even when the modules' position table (max_seq_length, often
 * 32) would take more in one pass, since frames past the trained length drift. */
#define RL_GEN_TRAINED_FRAMES 16

typedef struct {
    const char *prompt;              // required unless keyframes are given; borrowed (read
                                     // during rl_generate only), as every pointer here
    const char *negative_prompt;     // NULL or "": the empty prompt is the unconditional one
    const rl_keyframe *keyframes;    // prompt travel (n_keyframes, frames strictly increasing,
                                     // each < frames); NULL for one prompt
    int n_keyframes;
    rl_interp interp;                // between keyframes: linear or per-token slerp
    int frames;                      // 1..4096; more than the motion modules take (max_frames)
                                     // are denoised in context windows
    int width, height;               // pixels; 0: the model's sample size. Multiples of
                                     // vae_scale * 2^(down blocks - 1)
    int steps;                       // 1..num_train_timesteps
    float guidance;                  // 0..100; <= 1: no classifier-free guidance (one UNet pass)
    float guidance_rescale;          // 0..1: guided prediction pulled back to the conditional
                                     // one's standard deviation (diffusers' guidance_rescale;
                                     // core/guide.h); 0: off
    uint64_t seed;                   // torch.Generator().manual_seed(seed) noise
    rl_gen_sched scheduler;          // DEFAULT: the model's scheduler_config.json
    float eta;                       // DDIM eta: only 0 (deterministic) is supported
    int context_frames;              // window length; 0: RL_GEN_TRAINED_FRAMES, or the
                                     // motion modules' max_seq_length when that is shorter
    int context_overlap;             // frames shared by neighbouring windows, < the window
    int loop;                        // windows wrap around for a seamless loop
    int freeinit_iters;              // FreeInit sampling passes in all (as diffusers'
                                     // num_iters); 0 or 1: off. Each pass costs a full run
    int freeinit_butterworth;        // 1: Butterworth order 4 (diffusers' default); 0: Gaussian
    float freeinit_cutoff;           // spatial and temporal stop frequency, (0, 1]
    rl_progress_fn progress; void *progress_user;
    rl_frame_fn on_frame;    void *frame_user;
    rl_step_fn on_step;      void *step_user;
    float *latents_out;              // optional (C, F, h, w) final latents (before decoding,
                                     // still scaled), caller-owned
    float *frames_out;               // optional (F, height, width, 3) decoded frames in [0, 1]
                                     // before quantisation, caller-owned
} rl_gen_params;

/* Defaults: 16 frames at the model's size, 25 steps, guidance 7.5 (diffusers' default, what
 * SD-1.5 AnimateDiff checkpoints are tuned for; the shipped shapes model does best near 3, the
 * value of reel's presets), seed 0, the model's scheduler, windows of the model's max_frames
 * overlapping by 4, FreeInit off (Butterworth, cut-off 0.25 when turned on), no callbacks, no
 * outputs. */
rl_gen_params rl_gen_default_params(void);

/* Opens a model folder (io/diffusers.h layout): reads every config, maps the weights and binds
 * them to the models, checking every shape and that the components agree (text width vs
 * cross-attention, latent channels, vocabulary). n_threads <= 0: all cores. *ctx is owned by
 * the caller until rl_ctx_close. On failure *ctx is NULL and err names the file and what is
 * wrong: RL_E_MISSING (folder, file, tensor or key absent), RL_E_FORMAT (malformed JSON,
 * safetensors or tokenizer files), RL_E_SHAPE (a tensor or component that does not fit),
 * RL_E_IO, RL_E_NOMEM. Thread-safe (several contexts may be opened concurrently), but the
 * thread count is process-wide (OpenMP): the last rl_ctx_open / rl_generate sets it. */
rl_status rl_ctx_open(rl_ctx **ctx, const char *model_dir, int n_threads, rl_err *err);
void rl_ctx_close(rl_ctx **ctx);     // sets *ctx to NULL; safe on NULL

/* Facts about the loaded model. */
typedef struct {
    int latent_channels, vae_scale;  // latents are (C, F, H/vae_scale, W/vae_scale)
    int max_frames;                  // frames the motion modules were trained on (pe length)
    int sample_size;                 // the UNet's native latent size
    int text_len, text_dim;
    size_t n_params;
} rl_model_info;
rl_model_info rl_ctx_info(const rl_ctx *ctx);

/* Generates one clip; frames are delivered through p->on_frame as they are decoded, in order.
 * The result depends only on the parameters, not on the thread count: the same parameters give
 * the same bytes. p and everything it points to are only read, during the call.
 * Errors: RL_E_PARAM (a parameter outside the ranges above, naming it; keyframes out of order;
 * RL_E_FORMAT (the model's scheduler_config.json cannot be read as the chosen scheduler),
 * RL_E_NOMEM,
 * RL_E_INTERRUPTED (a callback returned non-zero; what was delivered so far is all there is).
 * Not thread-safe for the same context. */
rl_status rl_generate(rl_ctx *ctx, const rl_gen_params *p, rl_err *err);

/* Text embeddings for one prompt: out (text_len, text_dim), caller-owned. Errors: RL_E_PARAM
 * (invalid UTF-8, prompt too long in bytes; longer token sequences are truncated), RL_E_NOMEM.
 * Not thread-safe for the same context. */
rl_status rl_encode_prompt(rl_ctx *ctx, const char *prompt, float *out, rl_err *err);

/* Token ids of prompt as the text encoder sees them: ids (text_len), caller-owned:
 * [bos] + tokens (truncated) + [eos] + padding. Errors as rl_encode_prompt. Thread-safe. */
rl_status rl_tokenize(const rl_ctx *ctx, const char *prompt, int *ids, rl_err *err);

/* How many tokens prompt has (without the start and end tokens) and how many of them the text
 * encoder reads: *n_tokens and *n_read (max_length - 2; the rest is cut, as CLIPTokenizer's
 * truncation does), so a caller can warn about a prompt that is too long. Errors as
 * rl_encode_prompt. Thread-safe. */
rl_status rl_prompt_tokens(const rl_ctx *ctx, const char *prompt, int *n_tokens, int *n_read,
                           rl_err *err);

#ifdef __cplusplus
}
#endif
#endif
