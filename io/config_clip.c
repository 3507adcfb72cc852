/* io/config_clip.c - text_encoder/config.json (transformers CLIPTextConfig), see config_clip.h. */
#include "io/config_clip.h"

#include <string.h>

static const struct { const char *name; rl_clip_act act; } ACTS[] = {
    { "quick_gelu", RL_CLIP_ACT_QUICK_GELU },
    { "gelu", RL_CLIP_ACT_GELU },
    { "gelu_new", RL_CLIP_ACT_GELU_TANH },
    { "gelu_fast", RL_CLIP_ACT_GELU_TANH },
    { "gelu_pytorch_tanh", RL_CLIP_ACT_GELU_TANH },
    { "relu", RL_CLIP_ACT_RELU },
    { "silu", RL_CLIP_ACT_SILU },
    { "swish", RL_CLIP_ACT_SILU },
};

const char *rl_clip_act_name(rl_clip_act a)
{
    for (size_t i = 0; i < sizeof ACTS / sizeof ACTS[0]; i++)
        if (ACTS[i].act == a) return ACTS[i].name;
    return "?";
}

/* A size key that must be present and at least lo. */
static rl_status req_pos(const rl_json *j, const cJSON *o, const char *key, int lo, int *out,
                         rl_err *err)
{
    rl_status rc = rl_json_int_req(j, o, key, out, err);
    if (rc) return rc;
    if (*out < lo)
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected an integer >= %d, found %d",
                       j->label, key, lo, *out);
    return RL_OK;
}

rl_status rl_clip_cfg_parse(rl_clip_cfg *out, const rl_json *j, rl_err *err)
{
    rl_status rc;
    rl_clip_cfg c = { 0 };

    // a CLIPConfig nests the text settings; a CLIPTextConfig has them at the root
    const cJSON *o = NULL;
    if (!rl_json_has(j, NULL, "hidden_size") && rl_json_obj(j, NULL, "text_config"))
        o = rl_json_obj(j, NULL, "text_config");

    if ((rc = req_pos(j, o, "vocab_size", 1, &c.vocab_size, err))) return rc;
    if ((rc = req_pos(j, o, "hidden_size", 1, &c.hidden_size, err))) return rc;
    if ((rc = req_pos(j, o, "intermediate_size", 1, &c.intermediate_size, err))) return rc;
    if ((rc = req_pos(j, o, "num_hidden_layers", 0, &c.num_hidden_layers, err))) return rc;
    if ((rc = req_pos(j, o, "num_attention_heads", 1, &c.num_attention_heads, err))) return rc;
    if ((rc = req_pos(j, o, "max_position_embeddings", 1, &c.max_position_embeddings, err)))
        return rc;
    if ((rc = rl_json_int(j, o, "projection_dim", 512, &c.projection_dim, err))) return rc;
    if ((rc = rl_json_int(j, o, "pad_token_id", 1, &c.pad_token_id, err))) return rc;
    if ((rc = rl_json_int(j, o, "bos_token_id", 49406, &c.bos_token_id, err))) return rc;
    if ((rc = rl_json_int(j, o, "eos_token_id", 49407, &c.eos_token_id, err))) return rc;

    double eps;
    if ((rc = rl_json_float(j, o, "layer_norm_eps", 1e-5, &eps, err))) return rc;
    if (!(eps > 0.0 && eps < 1.0))
        return rl_errf(err, RL_E_FORMAT, "%s: key 'layer_norm_eps': expected a value in (0, 1), "
                       "found %g", j->label, eps);
    c.layer_norm_eps = (float)eps;

    const char *act;
    if ((rc = rl_json_str(j, o, "hidden_act", "quick_gelu", &act, err))) return rc;
    size_t k = 0, n_acts = sizeof ACTS / sizeof ACTS[0];
    while (k < n_acts && strcmp(ACTS[k].name, act) != 0) k++;
    if (k == n_acts)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'hidden_act': unsupported activation '%s' "
                       "(expected quick_gelu, gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, "
                       "relu, silu or swish)", j->label, act);
    c.hidden_act = ACTS[k].act;

    if (c.hidden_size % c.num_attention_heads != 0)
        return rl_errf(err, RL_E_FORMAT, "%s: hidden_size %d is not a multiple of "
                       "num_attention_heads %d", j->label, c.hidden_size, c.num_attention_heads);
    // keep every table size well inside int and size_t products
    if (c.hidden_size > 65536 || c.intermediate_size > 262144 || c.vocab_size > (1 << 24) ||
        c.max_position_embeddings > 65536 || c.num_hidden_layers > 1024)
        return rl_errf(err, RL_E_FORMAT, "%s: implausible sizes (hidden_size %d, "
                       "intermediate_size %d, vocab_size %d, max_position_embeddings %d, "
                       "num_hidden_layers %d)", j->label, c.hidden_size, c.intermediate_size,
                       c.vocab_size, c.max_position_embeddings, c.num_hidden_layers);
    *out = c;
    return RL_OK;
}

rl_status rl_clip_cfg_load(rl_clip_cfg *cfg, const char *path, rl_err *err)
{
    rl_json j = { 0 };
    rl_status rc = rl_json_load(&j, path, err);
    if (rc == RL_OK) rc = rl_clip_cfg_parse(cfg, &j, err);
    rl_json_free(&j);
    return rc;
}
