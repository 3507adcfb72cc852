/* io/diffusers.h - a diffusers-layout model folder (AnimateDiffPipeline save_pretrained):
 *
 *   model_index.json                 {"_class_name": ..., "<component>": [library, class], ...}
 *   tokenizer/                       vocab.json, merges.txt, (special_tokens_map.json, tokenizer_config.json)
 *   text_encoder/config.json + model.safetensors              transformers CLIPTextModel
 *   unet/config.json + diffusion_pytorch_model.safetensors    UNetMotionModel (motion modules
 *                                                             inside) or UNet2DConditionModel
 *   motion_adapter/config.json + diffusion_pytorch_model.safetensors   MotionAdapter; merged
 *                                                             only into a UNet2DConditionModel
 *   vae/config.json + diffusion_pytorch_model.safetensors     AutoencoderKL
 *   scheduler/scheduler_config.json
 *
 * Weight files, in this order: "<base>.safetensors", a sharded "<base>.safetensors.index.json"
 * (its weight_map's files), the fp16 variants "<base>.fp16.safetensors" and
 * "<base>.safetensors.index.fp16.json"; F32/F16/BF16 on disk, held as F32 (io/weights_io).
 * Pickle files (.bin, .ckpt, .pt, .pth, .pkl, pytorch_model.bin...) are never opened: a folder
 * with only those is refused with a message naming the file and saying to convert it.
 * model_index.json entries reel does not use (safety_checker, feature_extractor, image_encoder,
 * requires_safety_checker, [null, null] entries) are ignored. text_encoder weights may hold
 * transformers' text_model.embeddings.position_ids buffer (I64: skipped; float: shape-checked and
 * marked used) or not.
 * This layer reads files and configs only; binding the tensors to the models (which checks
 * every shape against the config and that no tensor is left over) is rl_ctx_open's job. */
#ifndef RL_IO_DIFFUSERS_H
#define RL_IO_DIFFUSERS_H

#include "core/bpe.h"
#include "core/err.h"
#include "core/weights.h"
#include "io/config_clip.h"
#include "io/config_unet.h"
#include "io/config_vae.h"

typedef struct {
    char *dir;                       // the folder, as given
    char *sched_config;              // <dir>/scheduler/scheduler_config.json (exists)
    char sched_class[64];            // model_index's scheduler class, e.g. "DDIMScheduler"
    char unet_class[64];             // "UNetMotionModel" or "UNet2DConditionModel"
    rl_bpe_spec tok;                 // tokenizer/
    rl_clip_cfg text_cfg;
    rl_weights text_w;               // text_encoder weights (names "text_model.*")
    rl_unet_cfg unet_cfg;            // with the adapter merged when one is used
    rl_weights unet_w;
    int has_adapter;                 // motion weights are in motion_w (a separate MotionAdapter)
    rl_weights motion_w;
    rl_vae_cfg vae_cfg;
    rl_weights vae_w;
} rl_diffusers;

/* Reads every component of the folder at dir. Errors: RL_E_MISSING naming the absent file
 * (model_index.json, a config.json, a weights file) or component; RL_E_FORMAT for malformed
 * JSON/config values (naming file and key), an unsupported pipeline component class, a
 * pickle-only weights file; errors of io/safetensors and io/weights_io (naming file and
 * tensor); RL_E_NOMEM. On failure m is closed. Thread-safe (touches nothing global). */
rl_status rl_diffusers_open(rl_diffusers *m, const char *dir, rl_err *err);
void rl_diffusers_close(rl_diffusers *m);    // idempotent, safe on a zeroed struct

/* Adds the MotionAdapter folder adapter_dir (config.json + diffusion_pytorch_model[.fp16]
 * .safetensors or a sharded index) to an opened model whose unet is a UNet2DConditionModel,
 * as UNetMotionModel.from_unet2d(unet, adapter) does (`reel --motion-adapter DIR`). rl_diffusers_open
 * calls it for <dir>/motion_adapter when model_index.json lists a MotionAdapter or the folder is
 * there. Errors: RL_E_PARAM (the unet already has motion modules, or an adapter was added),
 * RL_E_MISSING (no config.json / weights), RL_E_FORMAT (the adapter does not match the unet, or
 * a key reel does not support, named), pickle-only weights, errors of io/safetensors. On failure
 * m is unchanged. */
rl_status rl_diffusers_add_adapter(rl_diffusers *m, const char *adapter_dir, rl_err *err);

/* Fills ws from the weights of component dir/<sub> with file base name base
 * ("diffusion_pytorch_model" or "model"), trying the variants listed above. */
rl_status rl_diffusers_load_weights(rl_weights *ws, const char *dir, const char *sub,
                                    const char *base, rl_err *err);

/* One component of the folder at dir, config and weights (any variant above): text_encoder/
 * (a float position_ids buffer is checked and marked used) and vae/. For tools that need one
 * part of a model (the trainer's frozen parts, `reel eval --real --vae`). Errors as
 * rl_diffusers_open's. ws must have been initialised (rl_weights_init); the caller frees it. */
rl_status rl_diffusers_load_text(rl_clip_cfg *cfg, rl_weights *ws, const char *dir, rl_err *err);
rl_status rl_diffusers_load_vae(rl_vae_cfg *cfg, rl_weights *ws, const char *dir, rl_err *err);

#endif
