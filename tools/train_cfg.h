/* tools/train_cfg.h - config.json writers for the components `reel train` ships, in the exact
 * format diffusers' save_config / transformers' save_pretrained write (json.dumps with
 * indent=2 and sorted keys, a trailing newline), with the key sets of diffusers 0.30 /
 * transformers 4.44, so the folders load in AnimateDiffPipeline.from_pretrained. Only options
 * those classes have are written. Every file is written atomically. */
#ifndef RL_TOOLS_TRAIN_CFG_H
#define RL_TOOLS_TRAIN_CFG_H

#include "core/err.h"
#include "io/config_clip.h"
#include "io/config_unet.h"
#include "io/config_vae.h"

/* vae/config.json (AutoencoderKL). */
rl_status rl_train_write_vae_config(const char *path, const rl_vae_cfg *cfg, rl_err *err);
/* text_encoder/config.json (CLIPTextModel). */
rl_status rl_train_write_clip_config(const char *path, const rl_clip_cfg *cfg, rl_err *err);
/* unet/config.json (UNetMotionModel; cfg->has_motion must be set). RL_E_PARAM for settings
 * UNetMotionModel's config cannot express. */
rl_status rl_train_write_unet_config(const char *path, const rl_unet_cfg *cfg, rl_err *err);

/* scheduler/scheduler_config.json (DDIMScheduler) for the training noise schedule. */
typedef struct {
    int scaled_linear;          // beta_schedule "scaled_linear" (else "linear")
    float beta_start, beta_end;
    int v_pred;                 // prediction_type "v_prediction" (else "epsilon")
    int zero_snr;               // rescale_betas_zero_snr (and timestep_spacing "trailing")
} rl_train_sched_cfg;
rl_status rl_train_write_sched_config(const char *path, const rl_train_sched_cfg *s, rl_err *err);
/* model_index.json of an AnimateDiffPipeline with the unet as UNetMotionModel. */
rl_status rl_train_write_model_index(const char *path, rl_err *err);

/* A diffusers-format JSON text for a config (for checkpoint metadata); caller frees. */
char *rl_train_vae_config_json(const rl_vae_cfg *cfg);
char *rl_train_clip_config_json(const rl_clip_cfg *cfg);
char *rl_train_unet_config_json(const rl_unet_cfg *cfg);

#endif
