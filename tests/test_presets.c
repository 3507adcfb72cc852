/* tests/test_presets.c - io/presets: the shipped the presets/ JSON files load and agree with the
 * built-in defaults; unknown keys, wrong types and bad values are refused with the file and
 * key named. */
#include <stdio.h>
#include <string.h>

#include "io/presets.h"
#include "tests/harness.h"

static const char *write_tmp(rl_test *t, const char *name, const char *text)
{
    const char *path = rl_test_tmp_path(t, name);
    FILE *f = fopen(path, "w");
    if (!f) { rl_test_fail(t, "cannot write %s", path); return path; }
    fputs(text, f);
    fclose(f);
    return path;
}

static int same_preset(const rl_preset *a, const rl_preset *b)
{
    return a->steps == b->steps && a->guidance == b->guidance &&
           a->guidance_rescale == b->guidance_rescale && a->frames == b->frames &&
           a->fps == b->fps && a->width == b->width && a->height == b->height &&
           strcmp(a->scheduler, b->scheduler) == 0 && a->freeinit == b->freeinit &&
           strcmp(a->freeinit_filter, b->freeinit_filter) == 0 &&
           a->freeinit_cutoff == b->freeinit_cutoff && a->crf == b->crf && a->scale == b->scale &&
           a->context_frames == b->context_frames && a->context_overlap == b->context_overlap &&
           a->loop == b->loop && strcmp(a->negative_prompt, b->negative_prompt) == 0;
}

static void test_shipped(rl_test *t, const char *arg)
{
    rl_err err = { 0 };
    rl_preset p[4];
    const char *names[4] = { "fast", "balanced", "quality", "long" };
    for (int i = 0; i < 4; i++) {
        rl_status rc = rl_preset_find(&p[i], names[i], "presets", &err);
        rl_test_check(t, rc == RL_OK, "preset %s: %s", names[i], rc ? err.msg : "ok");
        if (!rc) rl_test_check(t, rl_preset_check(&p[i], names[i], &err) == RL_OK, "%s in range", names[i]);
    }
    rl_preset def = rl_preset_default(), d2;
    RL_CHECK(t, same_preset(&p[1], &def));            // balanced.json == built-in defaults
    RL_CHECK(t, rl_preset_find(&d2, "default", "presets", &err) == RL_OK && same_preset(&d2, &def));
    RL_CHECK(t, rl_preset_find(&d2, "presets/fast.json", NULL, &err) == RL_OK && same_preset(&d2, &p[0]));
    RL_CHECK(t, p[0].steps < p[1].steps && p[1].steps < p[2].steps);
    RL_CHECK(t, p[2].freeinit > 0 && p[1].freeinit == 0);
    RL_CHECK(t, p[3].frames > p[3].context_frames && p[3].context_frames > p[3].context_overlap);
    RL_CHECK(t, p[1].width * p[1].scale == 512);      // 64x64 latents' frames -> 512x512 video

    // the command line overrides field by field; the check catches what it breaks
    rl_preset o = p[3];
    o.steps = 7;
    RL_CHECK(t, rl_preset_check(&o, "--steps", &err) == RL_OK);
    o.context_overlap = o.context_frames;
    rl_status rc = rl_preset_check(&o, "--context-overlap", &err);
    rl_test_check(t, rc == RL_E_PARAM && strstr(err.msg, "context_overlap"), "override check: %s", err.msg);

    rc = rl_preset_find(&o, "turbo", "presets", &err);
    rl_test_check(t, rc == RL_E_MISSING && strstr(err.msg, "turbo"), "missing preset: %s", err.msg);
}

/* Each bad file: expected status and a word the message must hold (besides the file name). */
static void test_bad(rl_test *t, const char *arg)
{
    struct { const char *text; rl_status want; const char *key; } cases[] = {
        { "{\"stepz\": 10}", RL_E_FORMAT, "stepz" },
        // the message lists every key, the last one too
        { "{\"stepz\": 10}", RL_E_FORMAT, "(known: steps, guidance, " },
        { "{\"stepz\": 10}", RL_E_FORMAT, "negative_prompt, description)" },
        { "{\"steps\": \"25\"}", RL_E_FORMAT, "steps" },
        { "{\"steps\": 2.5}", RL_E_FORMAT, "steps" },
        { "{\"loop\": 1}", RL_E_FORMAT, "loop" },
        { "{\"scale\": \"x2\"}", RL_E_FORMAT, "scale" },
        { "{\"scheduler\": 3}", RL_E_FORMAT, "scheduler" },
        { "{\"negative_prompt\": [\"a\"]}", RL_E_FORMAT, "negative_prompt" },
        { "{\"width\": 63}", RL_E_PARAM, "width" },
        { "{\"steps\": 0}", RL_E_PARAM, "steps" },
        { "{\"scheduler\": \"plms\"}", RL_E_PARAM, "scheduler" },
        { "{\"freeinit_filter\": \"box\"}", RL_E_PARAM, "freeinit_filter" },
        { "{\"freeinit_cutoff\": 0}", RL_E_PARAM, "freeinit_cutoff" },
        { "{\"crf\": 70}", RL_E_PARAM, "crf" },
        { "{\"guidance_rescale\": 1.5}", RL_E_PARAM, "guidance_rescale" },
        { "{\"guidance_rescale\": \"0.7\"}", RL_E_FORMAT, "guidance_rescale" },
        { "{\"context_frames\": 8, \"context_overlap\": 8}", RL_E_PARAM, "context_overlap" },
        { "{\"steps\": 10,", RL_E_FORMAT, "" },
        { "[1, 2]", RL_E_FORMAT, "object" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.json", i);
        const char *path = write_tmp(t, name, cases[i].text);
        rl_err err = { 0 };
        rl_preset p;
        rl_status rc = rl_preset_load(&p, path, &err);
        rl_preset def = rl_preset_default();
        rl_test_check(t, rc == cases[i].want && strstr(err.msg, name) && strstr(err.msg, cases[i].key) &&
                      same_preset(&p, &def),
                      "%s -> %s: %s", cases[i].text, rl_status_str(rc), err.msg);
    }
    // a partial file keeps the defaults for what it leaves out
    const char *path = write_tmp(t, "partial.json", "{\"steps\": 12, \"negative_prompt\": \"blurry\", \"loop\": true}");
    rl_err err = { 0 };
    rl_preset p, def = rl_preset_default();
    RL_CHECK(t, rl_preset_load(&p, path, &err) == RL_OK);
    RL_CHECK(t, p.steps == 12 && p.loop == 1 && strcmp(p.negative_prompt, "blurry") == 0);
    p.steps = def.steps; p.loop = def.loop; p.negative_prompt[0] = '\0';
    RL_CHECK(t, same_preset(&p, &def));
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "shipped", test_shipped, NULL },
        { "bad", test_bad, NULL },
        { 0 },
    });
}
