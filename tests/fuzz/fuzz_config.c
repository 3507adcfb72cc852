/* tests/fuzz/fuzz_config.c - config.json text through the JSON layer and the typed getters
 * and the component config parsers (unet, MotionAdapter merged into a small UNet, CLIP text,
 * VAE, scheduler + its tables): arbitrary bytes must give a clean result or an error with a
 * message, never a crash. */
#include <stdint.h>
#include <string.h>

#include "core/sched.h"
#include "io/config_clip.h"
#include "io/config_sched.h"
#include "io/config_unet.h"
#include "io/config_vae.h"
#include "io/json.h"

/* A failing parser must say why. */
static void check_err(rl_status rc, const rl_err *err)
{
    if (rc != RL_OK && !err->msg[0]) __builtin_trap();
}

/* Every component parser on the same document (each must give a config or a message), and
 * the configs they accept must be usable: a scheduler builds its tables, a MotionAdapter merges
 * into a small UNet2DConditionModel or says why not. */
static void component_parsers(const rl_json *j)
{
    rl_err err = { 0 };
    rl_unet_cfg u;
    rl_status rc = rl_unet_cfg_parse(&u, j, &err);
    check_err(rc, &err);
    if (rc == RL_OK && (u.n_blocks < 1 || u.n_blocks > RL_UNET_MAX_BLOCKS || u.heads[0] < 1 ||
                        u.channels[0] % u.heads[0] != 0))
        __builtin_trap();

    static const char base_unet[] =
        "{\"_class_name\": \"UNet2DConditionModel\", \"block_out_channels\": [32, 64], "
        "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
        "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], "
        "\"layers_per_block\": 2, \"norm_num_groups\": 8, \"cross_attention_dim\": 32, "
        "\"attention_head_dim\": 8}";
    rl_json b;
    err = (rl_err){ 0 };
    if (rl_json_parse(&b, base_unet, sizeof base_unet - 1, "base.json", &err) != RL_OK)
        __builtin_trap();
    if (rl_unet_cfg_parse(&u, &b, &err) != RL_OK) __builtin_trap();
    rl_json_free(&b);
    rc = rl_unet_cfg_add_adapter_json(&u, j, &err);
    check_err(rc, &err);

    rl_clip_cfg c;
    err = (rl_err){ 0 };
    check_err(rl_clip_cfg_parse(&c, j, &err), &err);
    rl_vae_cfg v;
    err = (rl_err){ 0 };
    check_err(rl_vae_cfg_parse(&v, j, &err), &err);

    rl_sched_cfg s;
    err = (rl_err){ 0 };
    rc = rl_sched_cfg_parse(&s, j, &err);
    check_err(rc, &err);
    if (rc == RL_OK) {
        rl_sched sc = { 0 };
        err = (rl_err){ 0 };
        rc = rl_sched_init(&sc, &s, s.num_train_timesteps < 25 ? s.num_train_timesteps : 25, &err);
        check_err(rc, &err);
        rl_sched_free(&sc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_json j;
    rl_err err = { 0 };
    if (rl_json_parse(&j, (const char *)data, size, "fuzz.json", &err) != RL_OK) {
        if (!err.msg[0]) __builtin_trap();
        return 0;
    }
    // the keys the component parsers read, with every getter kind
    static const char *keys[] = { "in_channels", "block_out_channels", "attention_head_dim",
                                  "down_block_types", "beta_schedule", "scaling_factor",
                                  "use_linear_projection", "hidden_size", "_class_name" };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int i, n, list[16];
        double d;
        const char *s, *sl[16];
        rl_json_int(&j, NULL, keys[k], 0, &i, &err);
        rl_json_float(&j, NULL, keys[k], 0.0, &d, &err);
        rl_json_bool(&j, NULL, keys[k], 0, &i, &err);
        rl_json_str(&j, NULL, keys[k], "", &s, &err);
        rl_json_int_list(&j, NULL, keys[k], list, 16, &n, -1, 1, &err);
        rl_json_int_list(&j, NULL, keys[k], list, 16, &n, 4, 1, &err);
        rl_json_str_list(&j, NULL, keys[k], sl, 16, &n, &err);
        rl_json_obj(&j, NULL, keys[k]);
        rl_json_has(&j, NULL, keys[k]);
    }
    component_parsers(&j);
    rl_json_free(&j);
    return 0;
}
