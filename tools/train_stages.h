/* tools/train_stages.h - the `reel train` stages: tokenizer, vae, clip, unet.
 *
 * Each stage reads what earlier stages wrote into the model folder `out` (diffusers layout),
 * trains its component with rl_train_loop (train.h) on shapes-world data made on the fly, and
 * writes its component folder there:
 *   tokenizer  out/tokenizer/            BPE learned from the world's training captions
 *   vae        out/vae/                  AutoencoderKL (KL-regularised), scaling_factor measured
 *   clip       out/text_encoder/         CLIPTextModel, trained contrastively against a clip
 *              out/clip_video/           encoder that sees the frames (reel's own, for eval)
 *   unet       out/unet/, out/scheduler/, out/model_index.json
 *              UNetMotionModel predicting the noise (or v) of the VAE latents, conditioned on
 *              the frozen text encoder, caption dropped for classifier-free guidance.
 * Checkpoints and logs go to out/train/<stage>.ckpt.safetensors and out/train/<stage>.csv
 * unless given. */
#ifndef RL_TOOLS_TRAIN_STAGES_H
#define RL_TOOLS_TRAIN_STAGES_H

#include <stdint.h>

#include "core/err.h"

typedef enum { RL_UNET_STAGE_IMAGE, RL_UNET_STAGE_MOTION, RL_UNET_STAGE_JOINT } rl_unet_stage;
/* Kinds of hard negatives for the CLIP stage (bits of rl_train_opts.hard_negatives). */
enum { RL_NEG_MOTION = 1, RL_NEG_SHAPE = 2 };

typedef struct {
    const char *out;            // model folder (created when missing)
    const char *config;         // architecture: a diffusers/transformers config.json, or NULL
    const char *resume_from;    // model folder whose component initialises the weights, or NULL
    const char *ckpt;           // checkpoint path, NULL: out/train/<stage>.ckpt.safetensors
    const char *log;            // CSV path, NULL: out/train/<stage>.csv
    long steps, warmup, stop_at;
    int batch;
    uint64_t seed;
    float lr, min_lr_ratio, weight_decay, max_norm;
    float ema;                  // EMA decay (0: off; release = raw weights)
    double ckpt_every;          // seconds
    int resume, catch_signals, threads;
    int export_only;            // --export: the model folder from the checkpoint, no training
    int overfit;                // every step reuses step 1's data and noise (a sanity check)

    int size;                   // frame side in pixels (64)
    int frames;                 // frames per clip (16)
    float kl_weight;            // vae: weight of the mean per-latent KL
    int v_pred, zero_snr;       // unet: prediction_type, rescale_betas_zero_snr
    rl_unet_stage unet_stage;   // unet: image / motion / joint
    float cond_drop;            // unet: share of captions replaced by ""
    float snr_gamma;            // unet: Min-SNR-gamma loss weights (0: uniform)
    float t_bias;               // unet: time steps drawn as T-1-floor(T u^P) (1: uniform)
    float centre_paths;         // unet: share of clips with their path centred in the frame
    float pe_scale;             // unet: scale of the motion modules' positional tables (0: as
                                // the --resume-from model stores them, else 1)
    float frame_heads;          // unet: seed heads 0, 1 of each motion attn1 to look one frame
                                // back and one ahead (0: off)
    int hard_negatives;         // clip: RL_NEG_* bits: odd clips of a batch are the even ones
                                // reversed (motion) or with another shape (shape)
    int merges, max_length;     // tokenizer

    void (*report)(void *ctx, long step, long total, double loss, float lr);
    void *report_ctx;
    void (*note)(void *ctx, const char *msg);    // one-line messages (parameter counts, ...)
    void *note_ctx;
} rl_train_opts;

/* Defaults of every option (those the default model was specified with). */
rl_train_opts rl_train_opts_default(void);

// ---- plumbing the stages share (train_lib.c) --------------------------------------------

#include "io/json.h"
#include "tools/train.h"

#define RL_TRAIN_MAX_META 4

/* The step whose data and noise step `step` uses (1 under --overfit). */
static inline long rl_train_data_step(const rl_train_opts *o, long step)
{
    return o->overfit ? 1 : step;
}

/* Parses the architecture: spec is a path to a JSON file, JSON text itself (starting with
 * '{'), or NULL for def (JSON text). */
rl_status rl_train_load_config(rl_json *j, const char *spec, const char *def, rl_err *err);
/* Checkpoint metadata every stage stores and checks on resume: "config" (the architecture,
 * cfg_text), "options" (the settings that change the numbers: seed, batch, steps, schedule,
 * optimizer, EMA; formatted into opts_buf) and "stage_options" (extra, the stage's own).
 * Returns the count. */
int rl_train_common_meta(rl_kv *meta, char *opts_buf, size_t cap, const rl_train_opts *o,
                         const char *cfg_text, const char *extra);
/* Loop settings from the options; ckpt and log receive the default paths under
 * out/train/ when o gives none (cap bytes each). The caller sets ctx, step, finish, meta. */
rl_status rl_train_loop_cfg_init(rl_train_loop_cfg *c, const rl_train_opts *o, const char *stage,
                                 char *ckpt, char *log, size_t cap, rl_err *err);

rl_status rl_train_tokenizer(const rl_train_opts *o, rl_err *err);
rl_status rl_train_vae(const rl_train_opts *o, rl_err *err);
rl_status rl_train_clip(const rl_train_opts *o, rl_err *err);
rl_status rl_train_unet(const rl_train_opts *o, rl_err *err);

#endif
