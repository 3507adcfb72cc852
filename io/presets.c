/* io/presets.c - generation presets (see presets.h), read with io/json's typed getters. */
#include "io/presets.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"

static const char *const KEYS[] = {
    "steps", "guidance", "guidance_rescale", "frames", "fps", "width", "height", "scheduler",
    "freeinit", "freeinit_filter", "freeinit_cutoff", "crf", "scale", "context_frames",
    "context_overlap", "loop", "negative_prompt", "description",
};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

rl_preset rl_preset_default(void)
{
    // keep equal to presets/balanced.json (tests/test_presets.c checks it)
    return (rl_preset){
        .steps = 25, .guidance = 3.0f, .guidance_rescale = 0.0f, .frames = 16, .fps = 8,
        .width = 64, .height = 64,
        .scheduler = "ddim", .freeinit = 0, .freeinit_filter = "butterworth",
        .freeinit_cutoff = 0.25f, .crf = 18, .scale = 8.0f, .context_frames = 0,
        .context_overlap = 4, .loop = 0, .negative_prompt = "",
    };
}

static int one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return 1;
    return 0;
}

static const char *const SCHEDULERS[] = { "default", "ddim", "ddpm", "euler", NULL };
static const char *const FILTERS[] = { "gaussian", "butterworth", NULL };

#define RANGE(cond, key, fmt, val, want)                                                    \
    do {                                                                                   \
        if (!(cond))                                                                       \
            return rl_errf(err, RL_E_PARAM, "%s: key '%s': expected %s, found " fmt, label, \
                           key, want, val);                                                \
    } while (0)

rl_status rl_preset_check(const rl_preset *p, const char *label, rl_err *err)
{
    RANGE(p->steps >= 1 && p->steps <= 1000, "steps", "%d", p->steps, "1..1000");
    RANGE(isfinite(p->guidance) && p->guidance >= 0 && p->guidance <= 100, "guidance", "%g",
          p->guidance, "0..100");
    RANGE(isfinite(p->guidance_rescale) && p->guidance_rescale >= 0 && p->guidance_rescale <= 1,
          "guidance_rescale", "%g", p->guidance_rescale, "a number in [0, 1]");
    RANGE(p->frames >= 1 && p->frames <= 4096, "frames", "%d", p->frames, "1..4096");
    RANGE(p->fps >= 1 && p->fps <= 240, "fps", "%d", p->fps, "1..240");
    RANGE(p->width >= 8 && p->width <= 4096 && p->width % 8 == 0, "width", "%d", p->width,
          "a multiple of 8 in 8..4096");
    RANGE(p->height >= 8 && p->height <= 4096 && p->height % 8 == 0, "height", "%d", p->height,
          "a multiple of 8 in 8..4096");
    RANGE(one_of(p->scheduler, SCHEDULERS), "scheduler", "'%s'", p->scheduler,
          "one of default, ddim, ddpm, euler");
    RANGE(p->freeinit >= 0 && p->freeinit <= 10, "freeinit", "%d", p->freeinit,
          "0..10 iterations");
    RANGE(one_of(p->freeinit_filter, FILTERS), "freeinit_filter", "'%s'", p->freeinit_filter,
          "gaussian or butterworth");
    RANGE(p->freeinit_cutoff > 0 && p->freeinit_cutoff <= 1, "freeinit_cutoff", "%g",
          p->freeinit_cutoff, "a number in (0, 1]");
    RANGE(p->crf >= 0 && p->crf <= 63, "crf", "%d", p->crf, "0..63");
    RANGE(p->scale > 0 && p->scale <= 16, "scale", "%g", p->scale, "a number in (0, 16]");
    RANGE(p->context_frames == 0 || (p->context_frames >= 2 && p->context_frames <= 4096),
          "context_frames", "%d", p->context_frames, "0 (the model's frames) or 2..4096");
    RANGE(p->context_overlap >= 0 && (p->context_frames == 0 || p->context_overlap < p->context_frames),
          "context_overlap", "%d", p->context_overlap, "0 .. context_frames - 1");
    return RL_OK;
}

/* Copies a string value into a fixed field; too long -> RL_E_PARAM. */
static rl_status copy_str(char *dst, size_t cap, const char *src, const char *label,
                          const char *key, rl_err *err)
{
    size_t n = strlen(src);
    if (n >= cap)
        return rl_errf(err, RL_E_PARAM, "%s: key '%s': expected at most %zu bytes, found %zu",
                       label, key, cap - 1, n);
    memcpy(dst, src, n + 1);
    return RL_OK;
}

static rl_status apply(rl_preset *p, const rl_json *j, rl_err *err)
{
    const char *label = j->label;
    if (!cJSON_IsObject(j->root))
        return rl_errf(err, RL_E_FORMAT, "%s: expected a JSON object of preset keys", label);
    for (const cJSON *c = j->root->child; c; c = c->next) {
        int known = 0;
        for (int i = 0; i < N_KEYS && !known; i++) known = strcmp(c->string, KEYS[i]) == 0;
        if (!known) {
            char list[400];   // KEYS, comma-separated
            size_t n = 0;
            for (int i = 0; i < N_KEYS && n < sizeof list; i++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", KEYS[i]);
            return rl_errf(err, RL_E_FORMAT, "%s: unknown key '%s' (known: %s)", label, c->string,
                           list);
        }
    }
    rl_status rc;
    double g, gr, cut, scale;
    const char *sched, *filter, *neg, *desc;
    if ((rc = rl_json_int(j, NULL, "steps", p->steps, &p->steps, err)) ||
        (rc = rl_json_float(j, NULL, "guidance", p->guidance, &g, err)) ||
        (rc = rl_json_float(j, NULL, "guidance_rescale", p->guidance_rescale, &gr, err)) ||
        (rc = rl_json_int(j, NULL, "frames", p->frames, &p->frames, err)) ||
        (rc = rl_json_int(j, NULL, "fps", p->fps, &p->fps, err)) ||
        (rc = rl_json_int(j, NULL, "width", p->width, &p->width, err)) ||
        (rc = rl_json_int(j, NULL, "height", p->height, &p->height, err)) ||
        (rc = rl_json_str(j, NULL, "scheduler", p->scheduler, &sched, err)) ||
        (rc = rl_json_int(j, NULL, "freeinit", p->freeinit, &p->freeinit, err)) ||
        (rc = rl_json_str(j, NULL, "freeinit_filter", p->freeinit_filter, &filter, err)) ||
        (rc = rl_json_float(j, NULL, "freeinit_cutoff", p->freeinit_cutoff, &cut, err)) ||
        (rc = rl_json_int(j, NULL, "crf", p->crf, &p->crf, err)) ||
        (rc = rl_json_float(j, NULL, "scale", p->scale, &scale, err)) ||
        (rc = rl_json_int(j, NULL, "context_frames", p->context_frames, &p->context_frames, err)) ||
        (rc = rl_json_int(j, NULL, "context_overlap", p->context_overlap, &p->context_overlap, err)) ||
        (rc = rl_json_bool(j, NULL, "loop", p->loop, &p->loop, err)) ||
        (rc = rl_json_str(j, NULL, "negative_prompt", p->negative_prompt, &neg, err)) ||
        (rc = rl_json_str(j, NULL, "description", "", &desc, err)))
        return rc;
    p->guidance = (float)g;
    p->guidance_rescale = (float)gr;
    p->freeinit_cutoff = (float)cut;
    p->scale = (float)scale;
    // the fields are their own defaults: copy through temporaries (they may alias)
    char tmp[RL_PRESET_TEXT_MAX];
    if ((rc = copy_str(tmp, sizeof p->scheduler, sched, label, "scheduler", err))) return rc;
    memcpy(p->scheduler, tmp, strlen(tmp) + 1);
    if ((rc = copy_str(tmp, sizeof p->freeinit_filter, filter, label, "freeinit_filter", err))) return rc;
    memcpy(p->freeinit_filter, tmp, strlen(tmp) + 1);
    if ((rc = copy_str(tmp, sizeof tmp, neg, label, "negative_prompt", err))) return rc;
    memcpy(p->negative_prompt, tmp, strlen(tmp) + 1);
    return rl_preset_check(p, label, err);
}

rl_status rl_preset_load(rl_preset *p, const char *path, rl_err *err)
{
    *p = rl_preset_default();
    rl_json j = { 0 };
    rl_status rc = rl_json_load(&j, path, err);
    if (!rc) rc = apply(p, &j, err);
    rl_json_free(&j);
    if (rc) *p = rl_preset_default();
    return rc;
}

rl_status rl_preset_find(rl_preset *p, const char *name, const char *dir, rl_err *err)
{
    size_t n = strlen(name);
    if (strchr(name, '/') || (n > 5 && strcmp(name + n - 5, ".json") == 0))
        return rl_preset_load(p, name, err);
    if (strcmp(name, "default") == 0) name = "balanced";
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s.json", dir ? dir : "presets", name) >= (int)sizeof path)
        return rl_errf(err, RL_E_PARAM, "preset '%s': path too long", name);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        *p = rl_preset_default();
        return rl_errf(err, RL_E_MISSING, "preset '%s': no file %s (presets: fast, balanced, "
                       "quality, long, or a path to a .json file)", name, path);
    }
    return rl_preset_load(p, path, err);
}
