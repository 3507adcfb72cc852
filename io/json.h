/* io/json.h - cJSON behind typed getters that report the file, key path and expected type.
 *
 * Usage:  rl_json j; if (rl_json_load(&j, "unet/config.json", err)) goto fail;
 *         int ch; rl_json_int(&j, NULL, "in_channels", 4, &ch, err)     // default 4
 *         rl_json_int_req(&j, NULL, "cross_attention_dim", &ch, err)    // required
 * A NULL obj means the document root. Errors: RL_E_FORMAT for wrong type,
 * RL_E_MISSING for an absent required key; message "<file>: key 'name': expected an
 * integer, found a string". Integers must be integral numbers within int range. */
#ifndef RL_IO_JSON_H
#define RL_IO_JSON_H

#include <cjson/cJSON.h>

#include "core/err.h"

typedef struct {
    char *label;        // file path for messages
    cJSON *root;
} rl_json;

/* Reads and parses a file (size-limited to 64 MiB), or text[0..len) named label in messages
 * (label is copied). j owns the document until rl_json_free; on failure j is empty. Errors:
 * RL_E_MISSING (no such file), RL_E_IO (unreadable, not a regular file), RL_E_FORMAT (too
 * large, a NUL byte, malformed JSON), RL_E_NOMEM. */
rl_status rl_json_load(rl_json *j, const char *path, rl_err *err);
rl_status rl_json_parse(rl_json *j, const char *text, size_t len, const char *label, rl_err *err);
void rl_json_free(rl_json *j);   // idempotent

/* Optional keys: absent or null -> default. Present with the wrong type -> error. */
rl_status rl_json_int(const rl_json *j, const cJSON *obj, const char *key, int def, int *out,
                      rl_err *err);
rl_status rl_json_float(const rl_json *j, const cJSON *obj, const char *key, double def,
                        double *out, rl_err *err);
rl_status rl_json_bool(const rl_json *j, const cJSON *obj, const char *key, int def, int *out,
                       rl_err *err);
/* *out points into the document (valid until rl_json_free). */
rl_status rl_json_str(const rl_json *j, const cJSON *obj, const char *key, const char *def,
                      const char **out, rl_err *err);
/* Required variants: absent -> RL_E_MISSING. */
rl_status rl_json_int_req(const rl_json *j, const cJSON *obj, const char *key, int *out, rl_err *err);
rl_status rl_json_str_req(const rl_json *j, const cJSON *obj, const char *key, const char **out,
                          rl_err *err);
/* Arrays. An int or a single value where a list is expected is accepted when scalar_ok
 * (diffusers configs allow `attention_head_dim: 8` or `[5, 10, 20, 20]`): it is broadcast to
 * want_n entries. want_n < 0: any length; *n receives the count. max: capacity of out. */
rl_status rl_json_int_list(const rl_json *j, const cJSON *obj, const char *key, int *out, int max,
                           int *n, int want_n, int scalar_ok, rl_err *err);
rl_status rl_json_str_list(const rl_json *j, const cJSON *obj, const char *key, const char **out,
                           int max, int *n, rl_err *err);
/* The value at key when it is an object, else NULL (no error). */
const cJSON *rl_json_obj(const rl_json *j, const cJSON *obj, const char *key);
/* 1 when key is present and not null. */
int rl_json_has(const rl_json *j, const cJSON *obj, const char *key);

#endif
