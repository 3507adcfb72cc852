/* tools/cmd_generate.c - `reel generate`: a prompt (or prompts at keyframes) to a clip file.
 * Also the engine of `reel travel` (tools/cmd_travel.c), which differs only in where the
 * keyframes come from.
 *
 * Settings come from, in increasing priority: the preset (--preset, default "balanced", which
 * equals the built-in defaults), then each command-line option. Frames go from the VAE decoder
 * straight to the video writer (io/video.h), which writes "<out>.partial" and renames it when
 * the clip is complete: an error or Ctrl-C never leaves a file under the requested name.
 * Everything that can be checked before the model is loaded is checked first (options, output
 * type, output folder, model folder), so a typo costs no time. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/reel.h"
#include "io/presets.h"
#include "io/video.h"
#include "tools/bench.h"
#include "tools/cli.h"
#include "tools/datadir.h"
#include "tools/generate.h"
#include "tools/progress.h"

static void usage(FILE *f, const char *cmd)
{
    if (!strcmp(cmd, "travel"))
        fprintf(f,
            "usage: reel travel SCHEDULE.json [-o OUT] [options]\n"
            "       reel travel --prompt-at F:\"PROMPT\" --prompt-at F:\"PROMPT\" ... [-o OUT] [options]\n"
            "\n"
            "Prompt travel: the clip follows prompts given at keyframes; frames in between get\n"
            "text embeddings interpolated between their neighbouring keyframes (lerp or slerp).\n"
            "SCHEDULE.json is an object of frame numbers to prompts,\n"
            "  {\"0\": \"a red circle moving right\", \"15\": \"a blue circle moving right\"}\n"
            "or a list of {\"frame\": F, \"prompt\": \"...\"} objects. --frames defaults to the\n"
            "preset's, or to the last keyframe + 1 when that is larger.\n"
            "Every option of `reel generate` applies.\n");
    else
        fprintf(f,
            "usage: reel generate \"PROMPT\" [-o OUT] [options]\n"
            "       reel generate --prompt-at F:\"PROMPT\" --prompt-at F:\"PROMPT\" ... [-o OUT] [options]\n"
            "\n"
            "Generates a clip from a text prompt with a text-to-video diffusion model (CLIP text\n"
            "encoder, UNet with AnimateDiff motion modules, VAE) and writes it as a video file.\n"
            "The same seed and settings give the same file, byte for byte.\n");
    fprintf(f,
        "\n"
        "output:\n"
        "  -o, --output PATH      clip.mp4 (H.264), .webm (VP9), .gif, or DIR/ or frame%%04d.png for\n"
        "                         PNG frames (default: reel.mp4); written as PATH.partial and\n"
        "                         renamed when complete\n"
        "  --scale X              upscale on output, Lanczos filter (default: preset, 8)\n"
        "  --crf N                quality, lower is better: H.264 0..51, VP9 0..63 (default: preset, 18)\n"
        "  --fps N                frames per second (default: preset, 8)\n"
        "\n"
        "what to draw:\n"
        "  -n, --negative TEXT    negative prompt: what the clip should not show\n"
        "  --prompt-at F:TEXT     prompt travel: TEXT at frame F (repeat; frames in between get\n"
        "                         interpolated text embeddings)\n"
        "  --interp lerp|slerp    interpolation between keyframes (default: lerp)\n"
        "\n"
        "sampling:\n"
        "  -s, --seed N           random seed (default: 0); the initial noise equals PyTorch's\n"
        "                         torch.randn(..., generator=torch.Generator().manual_seed(N))\n"
        "  --steps N              denoising steps (default: preset, 25)\n"
        "  -g, --guidance G       classifier-free guidance scale 0..100; 1 or less disables it\n"
        "                         (default: preset, 3; SD-1.5 AnimateDiff checkpoints: 7.5)\n"
        "  --guidance-rescale X   0..1: pull the guided prediction back to the spread of the\n"
        "                         prompt's own (diffusers' guidance_rescale; against the\n"
        "                         over-saturation of strong guidance; default: preset, 0 = off)\n"
        "  --scheduler NAME       ddim (deterministic), ddpm (stochastic, seeded), euler, or\n"
        "                         default (the model's scheduler_config.json) (default: preset)\n"
        "  --frames N             clip length in frames (default: preset, 16)\n"
        "  -W, --width N          width in pixels, a multiple of 8 (default: preset, 64)\n"
        "  -H, --height N         height in pixels, a multiple of 8 (default: preset, 64)\n"
        "  --context N            frames per context window (default: 16, the clip length motion\n"
        "                         modules are trained on); longer clips are denoised in\n"
        "                         overlapping windows, noise predictions averaged where they meet\n"
        "  --overlap N            frames shared by neighbouring windows, less than the window\n"
        "                         (default: preset, 4; cut to half of a shorter --context)\n"
        "  --loop                 windows wrap around: the clip loops seamlessly\n"
        "  --freeinit N           FreeInit: N sampling passes in all, each after the first starting\n"
        "                         from the previous result's low frequencies (N times the work;\n"
        "                         default: preset, 0 = off)\n"
        "  --freeinit-filter gaussian|butterworth   (default: preset, butterworth)\n"
        "  --freeinit-cutoff X    normalised cut-off frequency in (0, 1] (default: preset, 0.25)\n"
        "\n"
        "model and machine:\n"
        "  -m, --model DIR        diffusers-layout model folder (default: $REEL_MODEL, else the\n"
        "                         shipped presets/models/shapes)\n"
        "  -p, --preset NAME|FILE fast, balanced, quality, long, or a JSON file (default: balanced)\n"
        "  -t, --threads N        threads (default: all cores); the output does not depend on it\n"
        "  -q, --quiet            no progress, only errors\n"
        "  --json                 print a JSON summary (file, seed, settings, timings) on stdout\n"
        "  -h, --help             this text\n"
        "\n"
        "examples:\n"
        "  reel generate \"a red circle moving right on a black background\" -o clip.mp4\n"
        "  reel generate \"a blue star spinning\" --negative \"white\" --seed 7 --scale 8 -o star.mp4\n"
        "  reel generate \"a green square\" --frames 48 --context 16 --overlap 4 -o long.mp4\n"
        "  reel travel --prompt-at 0:\"a red circle moving right\" \\\n"
        "              --prompt-at 15:\"a blue circle moving right\" -o travel.mp4\n"
        "\n"
        "exit status: 0 ok, 2 bad option, 3 file error, 4 bad model, 5 encoder error, 130 interrupted\n");
}

// ---- Ctrl-C -------------------------------------------------------------------------------

static volatile sig_atomic_t interrupted = 0;
static char partial_path[4200];   // the output's ".partial" file (one-file outputs); set before
                                  // the handler is installed, read only by it

static void on_signal(int sig)
{
    (void)sig;
    if (interrupted) {
        // a second Ctrl-C ends the process now, without waiting for the next step; the file
        // being written goes with it (unlink and _exit are async-signal-safe)
        static const char msg[] = "reel: interrupted again: stopped at once\n";
        if (partial_path[0]) unlink(partial_path);
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) _exit(RL_EXIT_INTERRUPTED);
        _exit(RL_EXIT_INTERRUPTED);
    }
    interrupted = 1;   // the next progress/frame callback cancels
}

// ---- callbacks ----------------------------------------------------------------------------

typedef struct {
    rl_video *video;
    rl_progress bar;
    rl_err err;                 // the writer's error, when a push failed
    int frames_written;
    double t_start[4], t_end[4];   // first and last callback time of each rl_phase
} gen_state;

static int on_progress(void *user, rl_phase phase, int i, int n)
{
    gen_state *s = user;
    // the frames are VAE-decoded and handed to the video encoder one by one: one phase
    static const char *const labels[] = { "text", "denoise", "decode+encode", "finish" };
    static const char *const units[] = { "prompts", "steps", "frames", "files" };
    const double now = rl_bench_now();
    if ((unsigned)phase > RL_PHASE_WRITE) return interrupted;
    if (!s->t_start[phase]) s->t_start[phase] = now;
    s->t_end[phase] = now;
    rl_progress_update(&s->bar, (int)phase, labels[phase], i, n, units[phase]);
    return interrupted;
}

static void warn_long_prompt(const rl_ctx *ctx, const char *what, const char *prompt)
{
    int n = 0, cap = 0;
    rl_err e = { 0 };
    if (!prompt || rl_prompt_tokens(ctx, prompt, &n, &cap, &e) != RL_OK || n <= cap) return;
    fprintf(stderr, "reel: warning: %s has %d tokens; the text encoder reads the first %d and "
            "ignores the rest\n", what, n, cap);
}

static int on_frame(void *user, int frame, const uint8_t *rgb, int width, int height)
{
    gen_state *s = user;
    (void)frame; (void)width; (void)height;
    if (rl_video_push(s->video, rgb, &s->err)) return 1;
    s->frames_written++;
    return interrupted;
}

// ---- files and folders --------------------------------------------------------------------

/* The folder the output goes into must exist and be writable (a DIR/ output: its parent). */
static int check_out_dir(const char *out, rl_video_kind kind)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    size_t n = strlen(dir);
    if (kind == RL_VIDEO_PNG)
        while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        fprintf(stderr, "reel: cannot write %s: folder %s: %s\n", out, dir, strerror(errno));
        return RL_EXIT_IO;
    }
    if (!S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "reel: cannot write %s: %s is not a folder\n", out, dir);
        return RL_EXIT_IO;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "reel: cannot write %s: folder %s is not writable (%s)\n", out, dir,
                strerror(errno));
        return RL_EXIT_IO;
    }
    return 0;
}

// ---- options ------------------------------------------------------------------------------

static int parse_keyframe(const char *arg, rl_keyframe *kf)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg || colon - arg > 10) {
        fprintf(stderr, "reel: --prompt-at takes FRAME:PROMPT, e.g. 0:\"a red circle\", not '%s'\n",
                arg);
        return 1;
    }
    char num[16];
    memcpy(num, arg, (size_t)(colon - arg));
    num[colon - arg] = 0;
    if (rl_cli_int(num, "--prompt-at frame", 0, 4095, &kf->frame)) return 1;
    kf->prompt = colon + 1;
    return 0;
}

static int pick(const char *s, const char *opt, const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    fprintf(stderr, "reel: %s must be one of", opt);
    for (int i = 0; names[i]; i++) fprintf(stderr, "%s %s", i ? "," : "", names[i]);
    fprintf(stderr, ", not '%s'\n", s);
    return 1;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static const char *const SCHEDULERS[] = { "default", "ddim", "ddpm", "euler", NULL };
static const char *const FILTERS[] = { "gaussian", "butterworth", NULL };
static const char *const INTERPS[] = { "lerp", "slerp", NULL };

static int kf_cmp(const void *a, const void *b)
{
    const rl_keyframe *x = a, *y = b;
    return (x->frame > y->frame) - (x->frame < y->frame);
}

// ---- the command --------------------------------------------------------------------------

int rl_gen_cli(int argc, char **argv, const char *cmd, rl_gen_schedule_fn load_schedule)
{
    const char *prompt = NULL, *out = "reel.mp4", *model = NULL, *preset_name = "balanced";
    const char *negative = NULL, *schedule = NULL;
    int threads = 0, quiet = 0, json = 0, frames_set = 0, overlap_set = 0, interp = 0;
    unsigned long long seed = 0;
    static rl_keyframe kfs[RL_GEN_MAX_KEYFRAMES];
    int n_kf = 0;
    char *sched_storage = NULL;
    rl_err err = { 0 };

    // first pass: help, and the preset (so options given before --preset still override it)
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-p") || !strcmp(argv[i], "--preset")) && i + 1 < argc)
            preset_name = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout, cmd);
            return RL_EXIT_OK;
        }
    }
    char presets_dir[4200];
    rl_preset ps;
    if (rl_preset_find(&ps, preset_name, rl_data_path("presets", presets_dir, sizeof presets_dir),
                       &err)) {
        fprintf(stderr, "reel: %s\n", err.msg);
        return err.code == RL_E_MISSING || err.code == RL_E_IO ? RL_EXIT_IO : RL_EXIT_USAGE;
    }
    if (ps.negative_prompt[0]) negative = ps.negative_prompt;
    int sched_i = 0, filter_i = 0;
    pick(ps.scheduler, "preset scheduler", SCHEDULERS, &sched_i);       // checked by the loader
    pick(ps.freeinit_filter, "preset freeinit_filter", FILTERS, &filter_i);

#define NEED_ARG()                                                                           \
    do {                                                                                     \
        if (i + 1 >= argc) {                                                                 \
            fprintf(stderr, "reel: %s needs a value (see reel %s --help)\n", a, cmd);        \
            return RL_EXIT_USAGE;                                                            \
        }                                                                                    \
    } while (0)
#define INT_OPT(name, lo, hi, dst)                                                           \
    do {                                                                                     \
        NEED_ARG();                                                                          \
        if (rl_cli_int(argv[++i], name, lo, hi, dst)) return RL_EXIT_USAGE;                 \
    } while (0)

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        double d;
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) { NEED_ARG(); out = argv[++i]; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--negative")) { NEED_ARG(); negative = argv[++i]; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_ARG(); model = argv[++i]; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--preset")) { NEED_ARG(); i++; }
        else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            NEED_ARG();
            if (rl_cli_u64(argv[++i], "--seed", &seed)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--steps")) INT_OPT("--steps", 1, 1000, &ps.steps);
        else if (!strcmp(a, "-g") || !strcmp(a, "--guidance")) {
            NEED_ARG();
            if (rl_cli_double(argv[++i], "--guidance", 0.0, 100.0, &d)) return RL_EXIT_USAGE;
            ps.guidance = (float)d;
        } else if (!strcmp(a, "--guidance-rescale")) {
            NEED_ARG();
            if (rl_cli_double(argv[++i], "--guidance-rescale", 0.0, 1.0, &d)) return RL_EXIT_USAGE;
            ps.guidance_rescale = (float)d;
        } else if (!strcmp(a, "--frames")) {
            INT_OPT("--frames", 1, 4096, &ps.frames);
            frames_set = 1;
        } else if (!strcmp(a, "--fps")) INT_OPT("--fps", 1, 240, &ps.fps);
        else if (!strcmp(a, "-W") || !strcmp(a, "--width")) INT_OPT("--width", 8, 4096, &ps.width);
        else if (!strcmp(a, "-H") || !strcmp(a, "--height")) INT_OPT("--height", 8, 4096, &ps.height);
        else if (!strcmp(a, "--scheduler")) {
            NEED_ARG();
            if (pick(argv[++i], "--scheduler", SCHEDULERS, &sched_i)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--prompt-at")) {
            NEED_ARG();
            if (n_kf == RL_GEN_MAX_KEYFRAMES) {
                fprintf(stderr, "reel: at most %d keyframes\n", RL_GEN_MAX_KEYFRAMES);
                return RL_EXIT_USAGE;
            }
            if (parse_keyframe(argv[++i], &kfs[n_kf++])) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--interp")) {
            NEED_ARG();
            const char *s = !strcmp(argv[i + 1], "linear") ? "lerp" : argv[i + 1];
            i++;
            if (pick(s, "--interp", INTERPS, &interp)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--context")) INT_OPT("--context", 2, 4096, &ps.context_frames);
        else if (!strcmp(a, "--overlap")) {
            INT_OPT("--overlap", 0, 4095, &ps.context_overlap);
            overlap_set = 1;
        }
        else if (!strcmp(a, "--loop")) ps.loop = 1;
        else if (!strcmp(a, "--freeinit")) INT_OPT("--freeinit", 0, 10, &ps.freeinit);
        else if (!strcmp(a, "--freeinit-filter")) {
            NEED_ARG();
            if (pick(argv[++i], "--freeinit-filter", FILTERS, &filter_i)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--freeinit-cutoff")) {
            NEED_ARG();
            if (rl_cli_double(argv[++i], "--freeinit-cutoff", 1e-3, 1.0, &d)) return RL_EXIT_USAGE;
            ps.freeinit_cutoff = (float)d;
        } else if (!strcmp(a, "--scale")) {
            NEED_ARG();
            if (rl_cli_double(argv[++i], "--scale", 0.125, 16.0, &d)) return RL_EXIT_USAGE;
            ps.scale = (float)d;
        } else if (!strcmp(a, "--crf")) INT_OPT("--crf", 0, 63, &ps.crf);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) INT_OPT("--threads", 1, 1024, &threads);
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "reel: unknown option '%s' (see reel %s --help)\n", a, cmd);
            return RL_EXIT_USAGE;
        } else if (load_schedule && !schedule && !n_kf) {
            schedule = a;
        } else if (!load_schedule && !prompt) {
            prompt = a;
        } else {
            fprintf(stderr, "reel: unexpected argument '%s' (one %s only; quote it: "
                            "reel %s \"a red circle\")\n", a,
                    load_schedule ? "schedule file" : "prompt", cmd);
            return RL_EXIT_USAGE;
        }
    }
#undef INT_OPT
#undef NEED_ARG

    // ---- checks that need no model
    if (schedule && n_kf) {
        fprintf(stderr, "reel: give either a schedule file or --prompt-at keyframes, not both\n");
        return RL_EXIT_USAGE;
    }
    if (schedule) {
        int rc = load_schedule(schedule, kfs, RL_GEN_MAX_KEYFRAMES, &n_kf, &sched_storage);
        if (rc) return rc;
    }
    if (!prompt && n_kf == 0) {
        fprintf(stderr, load_schedule ? "reel: no schedule given (reel travel SCHEDULE.json, or "
                                        "--prompt-at F:PROMPT ...; see reel travel --help)\n"
                                      : "reel: no prompt given (reel generate \"PROMPT\" [options]; "
                                        "see reel generate --help)\n");
        free(sched_storage);
        return RL_EXIT_USAGE;
    }
    int status = RL_EXIT_USAGE;
    rl_ctx *ctx = NULL;
    gen_state st = { 0 };
    if (prompt && n_kf) {
        fprintf(stderr, "reel: give either one PROMPT or --prompt-at keyframes, not both\n");
        goto done;
    }
    if (n_kf) {
        qsort(kfs, (size_t)n_kf, sizeof kfs[0], kf_cmp);
        for (int k = 1; k < n_kf; k++)
            if (kfs[k].frame == kfs[k - 1].frame) {
                fprintf(stderr, "reel: two keyframes at frame %d\n", kfs[k].frame);
                goto done;
            }
        const int last = kfs[n_kf - 1].frame;
        if (last >= ps.frames) {
            if (frames_set) {
                fprintf(stderr, "reel: keyframe at frame %d is past the clip's %d frames\n", last,
                        ps.frames);
                goto done;
            }
            ps.frames = last + 1;
        }
    }
    // a short --context with the preset's overlap: the overlap shrinks to half the window
    if (!overlap_set && ps.context_frames && ps.context_overlap > ps.context_frames / 2)
        ps.context_overlap = ps.context_frames / 2;
    if (ps.width % 8 || ps.height % 8) {
        fprintf(stderr, "reel: width and height must be multiples of 8, not %dx%d\n", ps.width,
                ps.height);
        goto done;
    }
    if (rl_preset_check(&ps, "settings", &err)) {
        fprintf(stderr, "reel: %s\n", err.msg);
        goto done;
    }
    const rl_video_kind kind = rl_video_kind_of(out);
    if (!kind) {
        fprintf(stderr, "reel: %s: unknown output type; use .mp4, .webm, .gif, a folder ending in "
                        "'/' or a pattern like frames/%%04d.png\n", out);
        goto done;
    }
    if (kind == RL_VIDEO_MP4 && ps.crf > 51) {   // x264's range; VP9's is the option's 0..63
        fprintf(stderr, "reel: --crf %d: H.264 (.mp4) takes 0..51\n", ps.crf);
        goto done;
    }
    if ((status = check_out_dir(out, kind))) goto done;
    char model_buf[4200];
    if (!model) {
        const char *env = getenv("REEL_MODEL");
        model = env && *env ? env : rl_data_path("presets/models/shapes", model_buf, sizeof model_buf);
    }
    if (!rl_is_dir(model)) {
        fprintf(stderr, "reel: model folder %s not found (use --model DIR or set REEL_MODEL)\n",
                model);
        status = RL_EXIT_IO;
        goto done;
    }

    // ---- the model
    struct sigaction sa = { 0 }, old_int, old_term;
    // rl_video writes one-file outputs to "<out>.partial"; PNG frames are written at the end,
    // each under its own partial name, and the writer removes them on an error
    partial_path[0] = '\0';
    if (rl_video_kind_of(out) != RL_VIDEO_PNG)
        snprintf(partial_path, sizeof partial_path, "%s.partial", out);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    rl_progress_init(&st.bar, quiet || json);
    const double t0 = rl_bench_now();
    if (rl_ctx_open(&ctx, model, threads, &err)) {
        status = rl_cli_fail(&err);
        if (status == RL_EXIT_USAGE) status = RL_EXIT_MODEL;   // the model's own sizes
        goto restore;
    }
    const double t_load = rl_bench_now() - t0;
    if (!quiet) {
        // CLIP reads max_length - 2 tokens; diffusers warns about the cut part, so do we
        warn_long_prompt(ctx, "the prompt", prompt);
        warn_long_prompt(ctx, "the negative prompt", negative);
        for (int k = 0; k < n_kf; k++) warn_long_prompt(ctx, "a keyframe's prompt", kfs[k].prompt);
    }

    rl_gen_params gp = rl_gen_default_params();
    gp.prompt = prompt;
    gp.negative_prompt = negative;
    gp.keyframes = n_kf ? kfs : NULL;
    gp.n_keyframes = n_kf;
    gp.interp = interp ? RL_INTERP_SLERP : RL_INTERP_LINEAR;
    gp.frames = ps.frames;
    gp.width = ps.width;
    gp.height = ps.height;
    gp.steps = ps.steps;
    gp.guidance = ps.guidance;
    gp.guidance_rescale = ps.guidance_rescale;
    gp.seed = seed;
    gp.scheduler = (rl_gen_sched)sched_i;      // SCHEDULERS is in rl_gen_sched order
    gp.context_frames = ps.context_frames;
    gp.context_overlap = ps.context_overlap;
    gp.loop = ps.loop;
    gp.freeinit_iters = ps.freeinit;
    gp.freeinit_butterworth = filter_i == 1;
    gp.freeinit_cutoff = ps.freeinit_cutoff;
    gp.progress = on_progress;
    gp.progress_user = &st;
    gp.on_frame = on_frame;
    gp.frame_user = &st;

    // what goes into the file's metadata, so the clip can be reproduced (no timings, no
    // machine facts: the same settings give the same bytes)
    char seed_s[32], steps_s[16], guid_s[64], frames_s[16], size_s[32], fps_s[16], win_s[64];
    char fi_s[64];
    snprintf(seed_s, sizeof seed_s, "%llu", seed);
    snprintf(steps_s, sizeof steps_s, "%d", gp.steps);
    if (gp.guidance_rescale > 0.0f)
        snprintf(guid_s, sizeof guid_s, "%g rescale %g", (double)gp.guidance,
                 (double)gp.guidance_rescale);
    else
        snprintf(guid_s, sizeof guid_s, "%g", (double)gp.guidance);
    snprintf(frames_s, sizeof frames_s, "%d", gp.frames);
    snprintf(size_s, sizeof size_s, "%dx%d", gp.width, gp.height);
    snprintf(fps_s, sizeof fps_s, "%d", ps.fps);
    snprintf(win_s, sizeof win_s, "%d/%d%s", gp.context_frames, gp.context_overlap,
             gp.loop ? " loop" : "");
    snprintf(fi_s, sizeof fi_s, "%d %s %g", gp.freeinit_iters, FILTERS[filter_i],
             (double)gp.freeinit_cutoff);
    char travel[4096] = "";
    for (int k = 0, o = 0; k < n_kf && o < (int)sizeof travel - 1; k++)
        o += snprintf(travel + o, sizeof travel - (size_t)o, "%s%d:%s", k ? " | " : "",
                      kfs[k].frame, kfs[k].prompt);
    rl_video_tag tags[16];
    int n_tags = 0;
    tags[n_tags++] = (rl_video_tag){ "prompt", prompt ? prompt : travel };
    tags[n_tags++] = (rl_video_tag){ "negative_prompt", negative ? negative : "" };
    tags[n_tags++] = (rl_video_tag){ "seed", seed_s };
    tags[n_tags++] = (rl_video_tag){ "steps", steps_s };
    tags[n_tags++] = (rl_video_tag){ "guidance", guid_s };
    tags[n_tags++] = (rl_video_tag){ "scheduler", SCHEDULERS[sched_i] };
    tags[n_tags++] = (rl_video_tag){ "frames", frames_s };
    tags[n_tags++] = (rl_video_tag){ "size", size_s };
    tags[n_tags++] = (rl_video_tag){ "fps", fps_s };
    if (n_kf) tags[n_tags++] = (rl_video_tag){ "interp", INTERPS[interp] };
    tags[n_tags++] = (rl_video_tag){ "context", win_s };
    if (gp.freeinit_iters) tags[n_tags++] = (rl_video_tag){ "freeinit", fi_s };
    tags[n_tags++] = (rl_video_tag){ "model", model };
    tags[n_tags++] = (rl_video_tag){ "software", "reel " RL_VERSION };

    rl_video_opts vo = rl_video_default_opts();
    vo.crf = ps.crf;
    vo.scale = ps.scale;
    vo.meta = tags;
    vo.n_meta = n_tags;
    if (interrupted) goto interrupt;
    if (rl_video_open(&st.video, out, gp.width, gp.height, ps.fps, &vo, &err)) {
        status = rl_cli_fail(&err);
        goto restore;
    }

    const double t1 = rl_bench_now();
    rl_status rc = rl_generate(ctx, &gp, &err);
    if (rc && st.err.code) err = st.err;   // the writer's message says more than "cancelled"
    if (!rc) {
        if (!quiet && !json) rl_progress_update(&st.bar, RL_PHASE_WRITE, "finish", 1, 1, "files");
        rc = rl_video_close(&st.video, &err);
    } else {
        rl_video_abort(&st.video);
    }
    const double t_gen = rl_bench_now() - t1;
    rl_progress_done(&st.bar);
    if (rc) {
        if (rc == RL_E_INTERRUPTED && interrupted) goto interrupt;
        status = rl_cli_fail(&err);
        goto restore;
    }

    if (json) {
        printf("{\"file\": ");
        json_str(stdout, out);
        printf(", \"prompt\": ");
        json_str(stdout, prompt ? prompt : travel);
        printf(", \"negative_prompt\": ");
        json_str(stdout, negative ? negative : "");
        printf(", \"seed\": %llu, \"steps\": %d, \"guidance\": %g, \"guidance_rescale\": %g, "
               "\"scheduler\": \"%s\", "
               "\"frames\": %d, \"width\": %d, \"height\": %d, \"fps\": %d, \"scale\": %g, "
               "\"context\": %d, \"overlap\": %d, \"loop\": %s, \"freeinit\": %d, \"model\": ",
               seed, gp.steps, (double)gp.guidance, (double)gp.guidance_rescale,
               SCHEDULERS[sched_i], gp.frames, gp.width,
               gp.height, ps.fps, (double)ps.scale, gp.context_frames, gp.context_overlap,
               gp.loop ? "true" : "false", gp.freeinit_iters);
        json_str(stdout, model);
        printf(", \"crf\": %d", ps.crf);
        if (gp.freeinit_iters)
            printf(", \"freeinit_filter\": \"%s\", \"freeinit_cutoff\": %g", FILTERS[filter_i],
                   (double)ps.freeinit_cutoff);
        if (n_kf) {
            printf(", \"interp\": \"%s\", \"keyframes\": [", INTERPS[interp]);
            for (int k = 0; k < n_kf; k++) {
                printf("%s{\"frame\": %d, \"prompt\": ", k ? ", " : "", kfs[k].frame);
                json_str(stdout, kfs[k].prompt);
                printf("}");
            }
            printf("]");
        }
        // encode + denoise from the first callback to the last step, then decode + encode
        const double t_den = st.t_end[RL_PHASE_DENOISE] - st.t_start[RL_PHASE_ENCODE];
        const double t_dec = t1 + t_gen - st.t_end[RL_PHASE_DENOISE];
        printf(", \"seconds\": {\"load\": %.3f, \"denoise\": %.3f, \"decode_write\": %.3f, "
               "\"total\": %.3f}}\n", t_load, t_den, t_dec, t_load + t_gen);
    } else if (!quiet && isatty(STDERR_FILENO)) {   // off a terminal: nothing but errors
        fprintf(stderr, "reel: wrote %s (%d frames, %dx%d, seed %llu) in %.1f s\n", out,
                st.frames_written, gp.width, gp.height, seed, t_load + t_gen);
    }
    status = RL_EXIT_OK;
    goto restore;

interrupt:
    rl_progress_done(&st.bar);
    fprintf(stderr, "reel: interrupted; %s was not written\n", out);
    status = RL_EXIT_INTERRUPTED;
restore:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
done:
    rl_ctx_close(&ctx);
    free(sched_storage);
    return status;
}

int rl_cmd_generate(int argc, char **argv)
{
    return rl_gen_cli(argc, argv, "generate", NULL);
}
