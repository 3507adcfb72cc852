/* tools/cmd_shapes.c - `reel shapes`: writes sample clips of the shapes world (the training data
 * the default model sees) with their captions, to look at them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic.h"
#include "io/video.h"
#include "tools/cli.h"
#include "tools/shapes/render.h"
#include "tools/shapes/world.h"

static const char usage_text[] =
    "usage: reel shapes -o DIR [--n N] [--seed S] [--split train|heldout|any] [--format F]\n"
    "\n"
    "Renders N sample clips of the shapes world (SHAPES_WORLD.md: 16 frames of 64x64, one\n"
    "coloured shape moving, growing, shrinking or spinning on a plain background) exactly as\n"
    "the trainer draws them, and writes DIR/captions.txt with one 'NNNN<TAB>caption' line per\n"
    "clip. Clip i of a seed is always the same clip.\n"
    "\n"
    "options:\n"
    "  -o, --out DIR   output folder (created when its parent exists)\n"
    "  --n N           number of clips (default 16)\n"
    "  --seed S        sampler seed (default 1)\n"
    "  --split X       train: no held-out pair (default); heldout: every clip holds one of the\n"
    "                  pairs kept out of training; any: both\n"
    "  --format F      png: DIR/NNNN/ holding PNG frames (default); mp4; gif\n"
    "  --scale K       enlarge the written frames K times (default 1; 4 is easier to look at)\n"
    "  -h, --help      this text\n"
    "\n"
    "example:\n"
    "  reel shapes --n 16 --seed 1 -o out/shapes --format mp4 --scale 4\n";

int rl_cmd_shapes(int argc, char **argv)
{
    const char *out = NULL, *format = "png";
    int n = 16, scale = 1;
    unsigned long long seed = 1;
    rl_shapes_split split = RL_SHAPES_TRAIN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage_text, stdout); return 0; }
        else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && has_val) out = argv[++i];
        else if (!strcmp(a, "--n") && has_val) {
            if (rl_cli_int(argv[++i], "--n", 1, 100000, &n)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--scale") && has_val) {
            if (rl_cli_int(argv[++i], "--scale", 1, 16, &scale)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--seed") && has_val) {
            if (rl_cli_u64(argv[++i], "--seed", &seed)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--split") && has_val) {
            const char *v = argv[++i];
            if (!strcmp(v, "train")) split = RL_SHAPES_TRAIN;
            else if (!strcmp(v, "heldout")) split = RL_SHAPES_HELDOUT;
            else if (!strcmp(v, "any")) split = RL_SHAPES_ANY;
            else {
                fprintf(stderr, "reel shapes: --split '%s': expected train, heldout or any\n", v);
                return RL_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--format") && has_val) {
            format = argv[++i];
            if (strcmp(format, "png") && strcmp(format, "mp4") && strcmp(format, "gif")) {
                fprintf(stderr, "reel shapes: --format '%s': expected png, mp4 or gif\n", format);
                return RL_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "reel shapes: %s '%s' (see 'reel shapes --help')\n",
                    has_val || a[0] != '-' ? "unknown option" : "unknown option or missing value", a);
            return RL_EXIT_USAGE;
        }
    }
    if (!out) {
        fprintf(stderr, "reel shapes: no output folder; give one with -o DIR\n");
        return RL_EXIT_USAGE;
    }
    rl_err err = { 0 };
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        rl_errf(&err, RL_E_IO, "%s: cannot create the output folder: %s", out, strerror(errno));
        return rl_cli_fail(&err);
    }

    const int F = RL_SHAPES_FRAMES, H = 64, W = 64;
    uint8_t *clip = malloc((size_t)F * H * W * 3);
    char *captions = NULL;
    size_t cap_len = 0;
    FILE *cf = open_memstream(&captions, &cap_len);
    rl_status rc = RL_OK;
    if (!clip || !cf) {
        rc = rl_errf(&err, RL_E_NOMEM, "reel shapes: no memory");
        goto done;
    }
    rl_video_opts vo = rl_video_default_opts();
    vo.scale = scale;
    for (int i = 0; i < n && rc == RL_OK; i++) {
        rl_shapes_spec s;
        char cap[96], path[4096];
        rl_shapes_sample(&s, seed, (uint64_t)i, split);
        rl_shapes_spec_caption(cap, sizeof cap, &s);
        fprintf(cf, "%04d\t%s\n", i, cap);
        rl_shapes_render_u8(clip, &s, F, H, W);
        if (!strcmp(format, "png")) snprintf(path, sizeof path, "%s/%04d/", out, i);
        else snprintf(path, sizeof path, "%s/%04d.%s", out, i, format);
        rl_video *v = NULL;
        rc = rl_video_open(&v, path, W, H, 8, &vo, &err);
        for (int f = 0; rc == RL_OK && f < F; f++)
            rc = rl_video_push(v, clip + (size_t)f * H * W * 3, &err);
        if (rc == RL_OK) rc = rl_video_close(&v, &err);
        else rl_video_abort(&v);
    }
    fclose(cf);
    cf = NULL;
    if (rc == RL_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/captions.txt", out);
        rc = rl_atomic_write_file(path, captions, cap_len, &err);
    }
    if (rc == RL_OK) printf("%d clips and captions.txt in %s\n", n, out);
done:
    if (cf) fclose(cf);
    free(captions);
    free(clip);
    return rc == RL_OK ? RL_EXIT_OK : rl_cli_fail(&err);
}
