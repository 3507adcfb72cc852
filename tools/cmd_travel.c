/* tools/cmd_travel.c - `reel travel`: prompt travel, prompts at keyframes with the text
 * embeddings interpolated per frame in between (temporal/travel.h, inside rl_generate).
 *
 * The keyframes come from a schedule file or from --prompt-at options; everything else is
 * `reel generate` (tools/cmd_generate.c). Schedule files are JSON, in either of the forms
 * prompt-travel tools use:
 *   {"0": "a red circle moving right", "15": "a blue circle moving right"}
 *   [{"frame": 0, "prompt": "a red circle moving right"}, {"frame": 15, "prompt": "..."}] */
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "tools/cli.h"
#include "tools/generate.h"

/* One keyframe: frame from text (object keys) or a number, prompt copied into storage. */
static int add_key(const char *path, rl_keyframe *kfs, int max, int *n, int frame,
                   const char *prompt, char **pos)
{
    if (*n == max) {
        fprintf(stderr, "reel: %s: more than %d keyframes\n", path, max);
        return RL_EXIT_USAGE;
    }
    if (frame < 0 || frame > 4095) {
        fprintf(stderr, "reel: %s: keyframe frame %d outside 0..4095\n", path, frame);
        return RL_EXIT_USAGE;
    }
    size_t len = strlen(prompt);
    memcpy(*pos, prompt, len + 1);
    kfs[*n] = (rl_keyframe){ .frame = frame, .prompt = *pos };
    *pos += len + 1;
    (*n)++;
    return 0;
}

/* A whole decimal number, nothing else. */
static int parse_frame(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 0 || v > 4095) return 1;
    *out = (int)v;
    return 0;
}

static int load_schedule(const char *path, rl_keyframe *kfs, int max, int *n, char **storage)
{
    rl_err err = { 0 };
    rl_json j;
    *n = 0;
    *storage = NULL;
    if (rl_json_load(&j, path, &err)) {
        fprintf(stderr, "reel: %s\n", err.msg);
        return err.code == RL_E_FORMAT ? RL_EXIT_USAGE : RL_EXIT_IO;
    }
    int rc = RL_EXIT_USAGE;
    // every prompt fits in a copy of the document's text size
    char *text = cJSON_PrintUnformatted(j.root);
    size_t cap = text ? strlen(text) + 1 : 1;
    free(text);
    char *pos = *storage = malloc(cap);
    if (!pos) {
        fprintf(stderr, "reel: out of memory\n");
        rc = RL_EXIT_ERROR;
        goto done;
    }
    const cJSON *it;
    if (cJSON_IsObject(j.root)) {
        cJSON_ArrayForEach(it, j.root) {
            int frame;
            if (parse_frame(it->string, &frame) || !cJSON_IsString(it)) {
                fprintf(stderr, "reel: %s: expected \"FRAME\": \"PROMPT\" entries, found key "
                        "'%.40s'\n", path, it->string);
                goto done;
            }
            if ((rc = add_key(path, kfs, max, n, frame, it->valuestring, &pos))) goto done;
            rc = RL_EXIT_USAGE;
        }
    } else if (cJSON_IsArray(j.root)) {
        int k = 0;
        cJSON_ArrayForEach(it, j.root) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "frame");
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(it, "prompt");
            const cJSON *x;
            cJSON_ArrayForEach(x, it) {
                if (x->string && strcmp(x->string, "frame") && strcmp(x->string, "prompt")) {
                    fprintf(stderr, "reel: %s: entry %d: unknown key '%.40s' (an entry holds "
                            "\"frame\" and \"prompt\")\n", path, k, x->string);
                    goto done;
                }
            }
            if (!cJSON_IsNumber(f) || !cJSON_IsString(p) || f->valuedouble != (int)f->valuedouble) {
                fprintf(stderr, "reel: %s: entry %d: expected {\"frame\": F, \"prompt\": "
                        "\"...\"} with a whole frame number\n", path, k);
                goto done;
            }
            if ((rc = add_key(path, kfs, max, n, (int)f->valuedouble, p->valuestring, &pos)))
                goto done;
            rc = RL_EXIT_USAGE;
            k++;
        }
    } else {
        fprintf(stderr, "reel: %s: expected an object {\"FRAME\": \"PROMPT\", ...} or a list of "
                "{\"frame\": F, \"prompt\": \"...\"}\n", path);
        goto done;
    }
    if (*n == 0) {
        fprintf(stderr, "reel: %s: no keyframes\n", path);
        goto done;
    }
    rc = 0;
done:
    rl_json_free(&j);
    if (rc) {
        free(*storage);
        *storage = NULL;
    }
    return rc;
}

int rl_cmd_travel(int argc, char **argv)
{
    return rl_gen_cli(argc, argv, "travel", load_schedule);
}
