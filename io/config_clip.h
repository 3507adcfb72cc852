/* io/config_clip.h - text_encoder/config.json -> rl_clip_cfg (transformers CLIPTextConfig).
 *
 * Keys and defaults follow transformers' CLIPTextConfig. The keys that fix tensor shapes
 * (vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
 * max_position_embeddings) are required: save_pretrained always writes them, and a config
 * without them cannot describe the weights beside it. A full CLIPConfig (text settings
 * nested under "text_config") is accepted too. */
#ifndef RL_IO_CONFIG_CLIP_H
#define RL_IO_CONFIG_CLIP_H

#include "core/err.h"
#include "io/json.h"

/* transformers ACT2FN names the text encoder may use. */
typedef enum {
    RL_CLIP_ACT_QUICK_GELU = 0,  // "quick_gelu": x * sigmoid(1.702 x)
    RL_CLIP_ACT_GELU,            // "gelu": erf form
    RL_CLIP_ACT_GELU_TANH,       // "gelu_new", "gelu_fast", "gelu_pytorch_tanh": tanh form
    RL_CLIP_ACT_RELU,            // "relu"
    RL_CLIP_ACT_SILU,            // "silu", "swish"
} rl_clip_act;

typedef struct {
    int vocab_size;              // V
    int hidden_size;             // D
    int intermediate_size;       // MLP width
    int num_hidden_layers;
    int num_attention_heads;     // NH; D % NH == 0
    int max_position_embeddings; // rows of the position table, the longest L
    int projection_dim;          // unused by CLIPTextModel, kept for writers
    rl_clip_act hidden_act;
    float layer_norm_eps;
    int pad_token_id, bos_token_id, eos_token_id;
} rl_clip_cfg;

/* Reads and validates path. Errors: RL_E_IO/RL_E_FORMAT (file, JSON, wrong type, unknown
 * hidden_act, impossible sizes), RL_E_MISSING (a required key); messages name the file
 * and the key. cfg is only written on success. */
rl_status rl_clip_cfg_load(rl_clip_cfg *cfg, const char *path, rl_err *err);
/* Same, from a parsed document. */
rl_status rl_clip_cfg_parse(rl_clip_cfg *cfg, const rl_json *j, rl_err *err);

/* The config.json spelling of an activation ("quick_gelu", ...). */
const char *rl_clip_act_name(rl_clip_act a);

#endif
