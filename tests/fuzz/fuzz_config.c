/* tests/fuzz/fuzz_config.c - config.json text through the JSON layer and the typed getters
 * (and, as they exist, the component config parsers): arbitrary bytes must give a clean
 * result or an error with a message, never a crash. */
#include <stdint.h>
#include <string.h>

#include "io/json.h"

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
    rl_json_free(&j);
    return 0;
}
