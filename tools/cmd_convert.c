/* tools/cmd_convert.c - `reel convert SRC DST --dtype f16|bf16|f32`: rewrites every safetensors
 * file of a model folder (or one file) in another float dtype, copying the other files of the
 * folder (config.json, tokenizer files, model cards) unchanged. Used to ship the default model
 * as F16; reel computes in F32 whatever is on disk. Each file is written atomically. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/weights.h"
#include "io/atomic.h"
#include "io/weights_io.h"
#include "tools/cli.h"

static const char usage_text[] =
    "usage: reel convert SRC DST [--dtype f16|bf16|f32]\n"
    "\n"
    "Rewrites the safetensors weights of a model folder (diffusers layout, one level of\n"
    "component folders) or of one .safetensors file in another float type; other files\n"
    "(config.json, tokenizer files) are copied as they are. Integer tensors are dropped\n"
    "(reel does not use them). Values are rounded to nearest even; a value too large for F16\n"
    "is an error, not an infinity.\n"
    "\n"
    "options:\n"
    "  --dtype T   f16 (default), bf16 or f32\n"
    "  -h, --help  this text\n"
    "\n"
    "example:\n"
    "  reel convert out/model presets/models/shapes --dtype f16\n";

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static rl_status convert_file(const char *src, const char *dst, rl_dtype dt, rl_err *err)
{
    rl_weights ws;
    rl_weights_init(&ws, src);
    rl_status rc = rl_weights_load_st(&ws, src, NULL, err);
    for (int i = 0; !rc && dt == RL_F16 && i < ws.n; i++) {
        const size_t n = rl_weight_numel(&ws.w[i]);
        for (size_t k = 0; k < n; k++)
            if (ws.w[i].data[k] > 65504.0f || ws.w[i].data[k] < -65504.0f) {
                rc = rl_errf(err, RL_E_PARAM, "%s: tensor '%s' holds %g, beyond F16's range",
                             src, ws.w[i].name, (double)ws.w[i].data[k]);
                break;
            }
    }
    if (!rc) rc = rl_weights_save_st(&ws, dst, NULL, dt, err);
    rl_weights_free(&ws);
    return rc;
}

static rl_status copy_file(const char *src, const char *dst, rl_err *err)
{
    FILE *f = fopen(src, "rb");
    if (!f) return rl_errf(err, RL_E_IO, "%s: cannot open: %s", src, strerror(errno));
    rl_atomic_file af;
    rl_status rc = rl_atomic_open(&af, dst, err);
    char buf[65536];
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, f)) > 0) rc = rl_atomic_write(&af, buf, n, err);
    if (!rc && ferror(f)) rc = rl_errf(err, RL_E_IO, "%s: read failed", src);
    fclose(f);
    if (rc) {
        rl_atomic_abort(&af);
        return rc;
    }
    return rl_atomic_commit(&af, err);
}

/* Converts or copies every regular file of src into dst (created), one folder level deep
 * below the top (the components). */
static rl_status convert_dir(const char *src, const char *dst, rl_dtype dt, int depth, rl_err *err)
{
    if (mkdir(dst, 0777) != 0 && errno != EEXIST)
        return rl_errf(err, RL_E_IO, "%s: cannot create folder: %s", dst, strerror(errno));
    DIR *d = opendir(src);
    if (!d) return rl_errf(err, RL_E_IO, "%s: cannot open folder: %s", src, strerror(errno));
    rl_status rc = RL_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char s[4096], t[4096];
        snprintf(s, sizeof s, "%s/%s", src, e->d_name);
        snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
        struct stat st;
        if (stat(s, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            // components only: not the trainer's state folder (checkpoints with moments)
            if (depth == 0 && strcmp(e->d_name, "train") != 0) rc = convert_dir(s, t, dt, 1, err);
        } else if (has_suffix(e->d_name, ".safetensors")) {
            rc = convert_file(s, t, dt, err);
        } else if (S_ISREG(st.st_mode) && !has_suffix(e->d_name, ".partial")) {
            rc = copy_file(s, t, err);
        }
    }
    closedir(d);
    return rc;
}

int rl_cmd_convert(int argc, char **argv)
{
    const char *src = NULL, *dst = NULL;
    rl_dtype dt = RL_F16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *t = argv[++i];
            if (!strcmp(t, "f16")) dt = RL_F16;
            else if (!strcmp(t, "bf16")) dt = RL_BF16;
            else if (!strcmp(t, "f32")) dt = RL_F32;
            else {
                fprintf(stderr, "reel: --dtype must be f16, bf16 or f32, not '%s'\n", t);
                return RL_EXIT_USAGE;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "reel convert: unknown option '%s'\n\n%s", argv[i], usage_text);
            return RL_EXIT_USAGE;
        } else if (!src) {
            src = argv[i];
        } else if (!dst) {
            dst = argv[i];
        } else {
            fprintf(stderr, "reel convert: SRC and DST only\n");
            return RL_EXIT_USAGE;
        }
    }
    if (!src || !dst) {
        fputs(usage_text, stderr);
        return RL_EXIT_USAGE;
    }
    struct stat st;
    if (stat(src, &st) != 0) {
        fprintf(stderr, "reel: %s: no such file or folder\n", src);
        return RL_EXIT_IO;
    }
    rl_err err = { 0 };
    rl_status rc = S_ISDIR(st.st_mode) ? convert_dir(src, dst, dt, 0, &err)
                                       : convert_file(src, dst, dt, &err);
    if (rc) return rl_cli_fail(&err);
    return 0;
}
