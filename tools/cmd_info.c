/* tools/cmd_info.c - `reel info PATH`: what a model folder, a safetensors file or a clip holds.
 *
 * A folder: model_index.json's pipeline class, then each component folder (a config.json and
 * its safetensors files): class, tensor count, parameter count, dtypes, and a few config keys.
 * A .safetensors file: tensors, parameters, dtypes, metadata (and every tensor with --tensors).
 * A video: the generation settings reel wrote into its metadata. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "tools/cli.h"
#include "io/video.h"

static const char usage_text[] =
    "usage: reel info [--tensors] PATH\n"
    "\n"
    "Prints what PATH holds:\n"
    "  a model folder (diffusers layout)  its pipeline class and, per component, the class,\n"
    "                                     tensor and parameter counts, dtypes, main config keys\n"
    "  a .safetensors file                tensor and parameter counts, dtypes, metadata\n"
    "  a clip (.mp4, .webm, .gif)         the prompt, seed and settings reel wrote into it\n"
    "\n"
    "options:\n"
    "  --tensors   also list every tensor with its dtype and shape\n"
    "  -h, --help  this text\n"
    "\n"
    "examples:\n"
    "  reel info presets/models/shapes\n"
    "  reel info presets/models/shapes/unet/diffusion_pytorch_model.safetensors --tensors\n"
    "  reel info clip.mp4\n";

typedef struct {
    int n_tensors;
    size_t n_params;
    int dtype_count[RL_DTYPE_COUNT];
} st_summary;

static void summarize(const rl_st_file *f, st_summary *s)
{
    for (int i = 0; i < f->n_tensors; i++) {
        const rl_st_tensor *t = &f->tensors[i];
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
        s->n_tensors++;
        s->n_params += n;
        s->dtype_count[t->dtype]++;
    }
}

static void print_dtypes(const st_summary *s)
{
    int first = 1;
    for (int d = 0; d < RL_DTYPE_COUNT; d++)
        if (s->dtype_count[d]) {
            printf("%s%s x%d", first ? "" : ", ", rl_dtype_name((rl_dtype)d), s->dtype_count[d]);
            first = 0;
        }
    if (first) printf("none");
}

static void print_count(size_t n)
{
    if (n >= 1000000) printf("%.2f M", n / 1e6);
    else if (n >= 1000) printf("%.1f k", n / 1e3);
    else printf("%zu", n);
}

static int info_safetensors(const char *path, int list)
{
    rl_st_file f;
    rl_err err = { 0 };
    if (rl_st_open(&f, path, &err)) return rl_cli_fail(&err);
    st_summary s = { 0 };
    summarize(&f, &s);
    printf("%s\n  tensors     %d\n  parameters  ", path, s.n_tensors);
    print_count(s.n_params);
    printf(" (%zu)\n  dtypes      ", s.n_params);
    print_dtypes(&s);
    printf("\n  size        %.1f MB\n", f.size / 1e6);
    for (int i = 0; i < f.n_meta; i++)
        printf("  meta        %s = %.200s\n", f.meta[i].key, f.meta[i].value);
    if (list) {
        for (int i = 0; i < f.n_tensors; i++) {
            char sh[160];
            const rl_st_tensor *t = &f.tensors[i];
            printf("  %-5s %-20s %s\n", rl_dtype_name(t->dtype),
                   rl_shape_str(sh, sizeof sh, t->ndim, t->shape), t->name);
        }
    }
    rl_st_close(&f);
    return 0;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

/* 1 when the file begins as safetensors does: an 8-byte little-endian header length, then '{'
 * (so a file is told by its content, whatever its name). */
static int looks_safetensors(const char *path)
{
    unsigned char b[9];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    const size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    return n == sizeof b && b[8] == '{';
}

/* One component folder: its config class and its safetensors files. Returns an exit status. */
static int info_component(const char *dir, const char *name, int list)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    DIR *d = opendir(path);
    if (!d) return 0;

    rl_err err = { 0 };
    rl_json cfg = { 0 };
    const char *cls = "?";
    const char *cfgname = !strcmp(name, "scheduler")   ? "scheduler_config.json"
                          : !strcmp(name, "tokenizer") ? "tokenizer_config.json"
                                                       : "config.json";
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/%s", path, cfgname);
    int have_cfg = 0;
    struct stat st;
    if (stat(cpath, &st) == 0) {
        if (rl_json_load(&cfg, cpath, &err)) {
            closedir(d);
            return rl_cli_fail(&err);
        }
        have_cfg = 1;
        rl_json_str(&cfg, NULL, "_class_name", "?", &cls, &err);
        if (!strcmp(cls, "?")) rl_json_str(&cfg, NULL, "model_type", "?", &cls, &err);
        if (!strcmp(cls, "?")) rl_json_str(&cfg, NULL, "tokenizer_class", "?", &cls, &err);
    }
    printf("  %-15s %s", name, cls);

    st_summary s = { 0 };
    int n_files = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!has_suffix(e->d_name, ".safetensors")) continue;
        char fpath[4400];
        snprintf(fpath, sizeof fpath, "%s/%s", path, e->d_name);
        rl_st_file f;
        if (rl_st_open(&f, fpath, &err)) {
            printf("\n");
            rc = rl_cli_fail(&err);
            break;
        }
        summarize(&f, &s);
        rl_st_close(&f);
        n_files++;
    }
    closedir(d);
    if (!rc && n_files) {
        printf(", %d tensors, ", s.n_tensors);
        print_count(s.n_params);
        printf(" parameters, ");
        print_dtypes(&s);
    }
    if (!rc) printf("\n");
    if (!rc && have_cfg) {
        // a few keys that say how big the component is
        static const char *keys[] = { "block_out_channels", "hidden_size", "num_hidden_layers",
                                      "cross_attention_dim", "latent_channels", "sample_size",
                                      "motion_max_seq_length", "num_train_timesteps",
                                      "beta_schedule", "prediction_type", "timestep_spacing" };
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg.root, keys[k]);
            if (!v) continue;
            char *txt = cJSON_PrintUnformatted(v);
            if (txt) printf("  %-15s   %s = %s\n", "", keys[k], txt);
            free(txt);
        }
    }
    rl_json_free(&cfg);
    (void)list;
    return rc;
}

static int info_folder(const char *dir, int list)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    rl_err err = { 0 };
    rl_json idx = { 0 };
    struct stat st;
    printf("%s\n", dir);
    if (stat(path, &st) == 0) {
        if (rl_json_load(&idx, path, &err)) return rl_cli_fail(&err);
        const char *cls = "?";
        rl_json_str(&idx, NULL, "_class_name", "?", &cls, &err);
        printf("  pipeline        %s\n", cls);
    } else {
        printf("  (no model_index.json: not a diffusers pipeline folder)\n");
    }
    static const char *components[] = { "tokenizer", "text_encoder", "unet", "motion_adapter",
                                        "vae", "scheduler" };
    int rc = 0;
    for (size_t i = 0; i < sizeof components / sizeof components[0] && !rc; i++)
        rc = info_component(dir, components[i], list);
    rl_json_free(&idx);
    return rc;
}

/* A clip: container, codec, size, frames, and the tags reel wrote (prompt, seed, settings). */
static int info_video(const char *path)
{
    rl_err err = { 0 };
    rl_video_info vi;
    if (rl_video_read_meta(path, &vi, &err)) {
        if (err.code == RL_E_FORMAT)   // the name may have promised nothing: say what was tried
            rl_errf(&err, RL_E_FORMAT, "%s: neither safetensors nor a video or image FFmpeg can "
                    "read", path);
        return rl_cli_fail(&err);
    }
    printf("%s: %s video, %s %s, %dx%d, %d frames at %g fps (%.2f s)\n", path, vi.format,
           vi.codec, vi.pix_fmt, vi.width, vi.height, vi.n_frames, vi.fps, vi.duration);
    for (int i = 0; i < vi.n_meta; i++) printf("  %-18s %s\n", vi.meta[i].key, vi.meta[i].value);
    rl_video_info_free(&vi);
    return RL_EXIT_OK;
}

int rl_cmd_info(int argc, char **argv)
{
    int list = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--tensors")) {
            list = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "reel info: unknown option '%s'\n\n%s", argv[i], usage_text);
            return RL_EXIT_USAGE;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "reel info: one PATH only\n");
            return RL_EXIT_USAGE;
        }
    }
    if (!path) {
        fputs(usage_text, stderr);
        return RL_EXIT_USAGE;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "reel: %s: no such file or folder\n", path);
        return RL_EXIT_IO;
    }
    if (S_ISDIR(st.st_mode)) return info_folder(path, list);
    // safetensors by name or content; anything else is a clip or image for FFmpeg to read
    if (has_suffix(path, ".safetensors") || looks_safetensors(path))
        return info_safetensors(path, list);
    return info_video(path);
}
