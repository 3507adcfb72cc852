/* tools/cmd_eval.c - `reel eval`: prompt adherence of a model (or of the ground truth) on the
 * shapes world, through tools/shapes/eval.h. The model path goes through the public API
 * (core/reel.h) only; it is compiled once the generation pipeline is in the build (the same
 * condition that builds `reel generate`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/datadir.h"
#include "tools/progress.h"
#include "tools/shapes/clipscore.h"
#include "io/video.h"
#include "tools/shapes/eval.h"
#include "core/arena.h"
#include "core/vae.h"
#include "io/diffusers.h"
#include "io/presets.h"
#include "io/weights_io.h"
#ifdef RL_HAVE_CMD_GENERATE
#include "core/reel.h"
#endif

static const char usage_text[] =
    "usage: reel eval [--real | --model DIR] [options]\n"
    "       reel eval FILE... [--prompt TEXT] [--json]\n"
    "\n"
    "Measures how well clips follow shapes-world prompts (SHAPES_WORLD.md): a fixed set of\n"
    "prompts with fixed seeds is generated, and a procedural analyzer reads every clip back:\n"
    "background, colour, shape, motion, and whether it shows exactly one object throughout.\n"
    "Prompts come in two sets: in-distribution (captions the training data holds) and\n"
    "held-out (each holds a colour-shape or shape-motion pair never trained on, e.g. 'a yellow\n"
    "triangle' or 'a star growing'), so the second column tells whether the model composes.\n"
    "\n"
    "The table:\n"
    "  adherence        share of clips showing each stated attribute, per set\n"
    "  persistence      share of clips with one object in every frame\n"
    "  flicker          RMS of fast (>= F/4) temporal change of background pixels, 0..255 levels\n"
    "  guidance effect  adherence per attribute at guidance 1 vs the default (does CFG help?)\n"
    "  negative prompt  share of clips in colour X with X as negative prompt vs without\n"
    "  prompt travel    colour A -> B over the clip: per-frame position on the line A..B\n"
    "  CLIP score       cosine of the prompt's and the clip's embeddings under the model\n"
    "                   folder's CLIP pair (text_encoder/ + clip_video/, as `reel train clip`\n"
    "                   writes them), per set, beside the same score on the ground-truth clips\n"
    "                   and on mismatched prompts (the chance level); n/a without clip_video/\n"
    "  seconds per clip\n"
    "  text separation  (model runs) per attribute, the closest pair of captions differing in\n"
    "                   it alone, as the text encoder sees them (mean L2 distance of the last\n"
    "                   hidden states per token): near 0, the UNet cannot tell the pair apart\n"
    "\n"
    "sources:\n"
    "  --real          the prompts rendered exactly (the ceiling: what a perfect model scores);\n"
    "                  guidance, negative prompt and travel are n/a; the CLIP score uses the\n"
    "                  CLIP pair of --model DIR when given (or of the default model)\n"
    "  --real --vae    the renders encoded and decoded by the model's VAE (--model DIR or the\n"
    "                  default): the ceiling a UNet can reach through that VAE\n"
    "  --model DIR     a model folder in diffusers layout (default: $REEL_MODEL, else\n"
    "                  presets/models/shapes)\n"
    "  FILE...         clips already made (MP4, WebM, GIF: anything FFmpeg reads, by reel or\n"
    "                  not): each is read back, scaled to 64x64, and the analyzer's verdict\n"
    "                  printed; when the file's metadata holds the prompt it was made from (reel\n"
    "                  writes it) or --prompt TEXT gives one, it is scored against that prompt\n"
    "\n"
    "options:\n"
    "  --prompts N, -n N   prompts per set (default 48; the set is fixed, N takes the first N);\n"
    "                  also caps the guidance (48), negative (16) and travel (8) prompts\n"
    "  --seeds K       seeds per prompt (default 1): K clips of every prompt\n"
    "  --frames N      frames per clip (default 16)\n"
    "  --size N        frame side in pixels, a multiple of 8 (default 64)\n"
    "  --steps N       denoising steps (default 25)\n"
    "  --guidance G    guidance scale for the adherence rows (default: the default preset's, 3);\n"
    "                  the guidance row compares it with 1\n"
    "  --guidance-rescale X   guidance rescale 0..1 of every guided clip (default 0: off;\n"
    "                  see reel generate --help)\n"
    "  --threads N     CPU threads for the model (default: all)\n"
    "  --json          print everything (table and per-clip verdicts) as JSON instead\n"
    "  --report DIR    also write DIR/index.html: the table, then every clip (MP4) beside its\n"
    "                  prompt and verdict, misses in red; opens from disk, no server needed\n"
    "  -q, --quiet     no progress line\n"
    "  -h, --help      this text\n"
    "\n"
    "examples:\n"
    "  reel eval --real                      the analyzer's ceiling, in a second\n"
    "  reel eval --real --vae --model M      the ceiling through M's VAE\n"
    "  reel eval --model presets/models/shapes --report out/eval\n"
    "  reel eval --prompts 8 --steps 10 --json > quick.json\n"
    "  reel eval --model M -n 2 --steps 2 --frames 8 --size 32   a smoke run in seconds\n"
    "  reel eval clip.mp4 other.webm           what these clips show, scored against their prompts\n"
    "  reel eval old.gif --prompt \"a red star spinning\"\n"
    "\n"
    "exit status: 0 done, 2 bad option, 3 file error, 4 bad model, 1 other failure\n";

#ifdef RL_HAVE_CMD_GENERATE
// ---- the model source, through core/reel.h ---------------------------------------------------

typedef struct {
    rl_ctx *ctx;
    int steps;                 // <= 0: the preset's
    float guidance;            // <= 0: the preset's
    float guidance_rescale;    // 0: off
    uint8_t *dst;              // (F, H, W, 3) of the clip being made
    int F, H, W, got;
} model_src;

static int model_frame(void *user, int frame, const uint8_t *rgb, int width, int height)
{
    model_src *m = user;
    if (width != m->W || height != m->H || frame < 0 || frame >= m->F) return 1;   // cancel
    memcpy(m->dst + (size_t)frame * m->H * m->W * 3, rgb, (size_t)m->H * m->W * 3);
    m->got++;
    return 0;
}

static rl_status model_gen(void *user, const rl_eval_req *req, uint8_t *frames, rl_err *err)
{
    model_src *m = user;
    rl_gen_params p = rl_gen_default_params();
    rl_keyframe kf[2] = { { 0, req->prompt }, { req->F - 1, req->travel_to } };
    p.prompt = req->prompt;
    p.negative_prompt = req->negative;
    if (req->travel_to) {
        p.keyframes = kf;
        p.n_keyframes = 2;
    }
    p.frames = req->F;
    p.width = req->W;
    p.height = req->H;
    p.seed = req->seed;
    if (m->steps > 0) p.steps = m->steps;
    if (req->guidance > 0) p.guidance = req->guidance;
    else if (m->guidance > 0) p.guidance = m->guidance;
    p.guidance_rescale = m->guidance_rescale;
    p.on_frame = model_frame;
    p.frame_user = m;
    m->dst = frames;
    m->F = req->F; m->H = req->H; m->W = req->W;
    m->got = 0;
    rl_status rc = rl_generate(m->ctx, &p, err);
    if (rc == RL_OK && m->got != req->F)
        rc = rl_errf(err, RL_E_INTERNAL, "the model delivered %d of %d frames of %dx%d", m->got,
                     req->F, req->W, req->H);
    return rc;
}
#endif

#ifdef RL_HAVE_CMD_GENERATE
/* The model's text embeddings (rl_eval_text_separation's encoder). */
static rl_status encode_text(void *user, const char *prompt, float *out, rl_err *err)
{
    return rl_encode_prompt((rl_ctx *)user, prompt, out, err);
}
#endif

/* `reel eval FILE...`: each clip decoded (any video FFmpeg reads), analysed and, when its
 * metadata (or --prompt) holds a shapes-world caption, scored against it. */
static int eval_files(const char *const *files, int n, const char *prompt, int json)
{
    rl_eval_clip *clips = calloc((size_t)n, sizeof *clips);
    if (!clips) {
        fprintf(stderr, "reel: out of memory\n");
        return RL_EXIT_ERROR;
    }
    int status = RL_EXIT_OK;
    for (int i = 0; i < n && status == RL_EXIT_OK; i++) {
        rl_err err = { 0 };
        rl_video_info info = { 0 };
        uint8_t *rgb = NULL;
        int F = 0, W = 0, H = 0;
        rl_status rc = rl_video_read_frames(files[i], RL_SHAPES_MAX_FRAMES, &rgb, &F, &W, &H, &err);
        if (rc == RL_OK && !prompt) rc = rl_video_read_meta(files[i], &info, &err);
        if (rc == RL_OK)
            rc = rl_eval_analyze_frames(&clips[i], rgb, F, H, W,
                                        prompt ? prompt : rl_video_info_get(&info, "prompt"), &err);
        if (rc != RL_OK) {
            rl_err_prefix(&err, "%s", files[i]);
            status = rl_cli_fail(&err);
        }
        rl_video_info_free(&info);
        free(rgb);
    }
    if (status == RL_EXIT_OK) rl_eval_print_files(stdout, clips, files, n, json);
    free(clips);
    return status;
}

/* --real --vae: the prompts rendered, then encoded (posterior mean) and decoded by a model
 * folder's VAE, so the table gives the ceiling a UNet can reach through that VAE. */
typedef struct {
    rl_vae_cfg cfg;
    rl_weights ws;
    rl_vae vae;
    rl_arena arena;
} vae_src;

static rl_status vae_open(vae_src *v, const char *model_dir, rl_err *err)
{
    rl_weights_init(&v->ws, "vae");
    rl_arena_init(&v->arena, 0);
    rl_status rc = rl_diffusers_load_vae(&v->cfg, &v->ws, model_dir, err);
    if (!rc) rc = rl_vae_bind(&v->vae, &v->ws, "", &v->cfg, err);
    if (!rc && (v->cfg.in_channels != 3 || v->cfg.out_channels != 3))
        rc = rl_errf(err, RL_E_SHAPE, "%s/vae: %d input and %d output channels; RGB frames need 3",
                     model_dir, v->cfg.in_channels, v->cfg.out_channels);
    return rc;
}

static void vae_close(vae_src *v)
{
    rl_vae_free(&v->vae);
    rl_weights_free(&v->ws);
    rl_arena_free(&v->arena);
}

static rl_status vae_gen(void *user, const rl_eval_req *req, uint8_t *frames, rl_err *err)
{
    vae_src *v = user;
    const int F = req->F, H = req->H, W = req->W, s = rl_vae_cfg_scale(&v->cfg);
    if (H % s || W % s)
        return rl_errf(err, RL_E_SHAPE, "frames of %dx%d do not divide by the VAE's factor %d",
                       W, H, s);
    rl_status rc = rl_eval_source_truth().gen(NULL, req, frames, err);
    if (rc) return rc;
    const rl_arena_mark mk = rl_arena_get_mark(&v->arena);
    const size_t px = (size_t)H * W, nl = (size_t)F * v->cfg.latent_channels * (px / s / s);
    float *x = rl_arena_floats(&v->arena, (size_t)F * 3 * px);
    float *mean = rl_arena_floats(&v->arena, nl), *lv = rl_arena_floats(&v->arena, nl);
    if ((rc = rl_arena_check(&v->arena, err)) != RL_OK) {
        rl_arena_reset(&v->arena, mk);
        return rc;
    }
    for (int f = 0; f < F; f++)
        for (size_t i = 0; i < px; i++)
            for (int c = 0; c < 3; c++)
                x[((size_t)f * 3 + c) * px + i] =
                    frames[((size_t)f * px + i) * 3 + c] / 127.5f - 1.0f;
    rl_vae_encode(&v->vae, &v->arena, mean, lv, x, F, H, W);
    rl_vae_decode(&v->vae, &v->arena, x, mean, F, H / s, W / s);
    rc = rl_arena_check(&v->arena, err);
    for (int f = 0; rc == RL_OK && f < F; f++)
        rl_vae_to_rgb(frames + (size_t)f * px * 3, NULL, x + (size_t)f * 3 * px, H, W);
    rl_arena_reset(&v->arena, mk);
    return rc;
}

static void show_progress(void *user, int i, int n)
{
    rl_progress_update(user, 0, "eval", i, n, "clips");
}

int rl_cmd_eval(int argc, char **argv)
{
    const char *model_dir = NULL, *report = NULL, *prompt = NULL;
    int n_files = 0;    // clip files, gathered at argv[1 ..] (argument i >= 1 + n_files is read)
    int real = 0, through_vae = 0, json = 0, quiet = 0, threads = 0, steps = 0, prompts = -1, seeds = 1;
    int frames = RL_SHAPES_FRAMES, size = 64;
    double guidance = 0, guidance_rescale = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage_text, stdout); return 0; }
        else if (!strcmp(a, "--real")) real = 1;
        else if (!strcmp(a, "--vae")) through_vae = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--model") && has_val) model_dir = argv[++i];
        else if (!strcmp(a, "--report") && has_val) report = argv[++i];
        else if ((!strcmp(a, "--prompts") || !strcmp(a, "-n") || !strcmp(a, "--n")) && has_val) {
            if (rl_cli_int(argv[++i], "--prompts", 1, RL_EVAL_MAX_SET, &prompts)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--seeds") && has_val) {
            if (rl_cli_int(argv[++i], "--seeds", 1, RL_EVAL_MAX_SEEDS, &seeds)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--frames") && has_val) {
            if (rl_cli_int(argv[++i], "--frames", 1, RL_SHAPES_MAX_FRAMES, &frames))
                return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--size") && has_val) {
            if (rl_cli_int(argv[++i], "--size", 8, 4096, &size)) return RL_EXIT_USAGE;
            if (size % 8) {
                fprintf(stderr, "reel: --size must be a multiple of 8, not %d\n", size);
                return RL_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--steps") && has_val) {
            if (rl_cli_int(argv[++i], "--steps", 1, 1000, &steps)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--threads") && has_val) {
            if (rl_cli_int(argv[++i], "--threads", 1, 1024, &threads)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--guidance") && has_val) {
            if (rl_cli_double(argv[++i], "--guidance", 0.0, 100.0, &guidance)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--guidance-rescale") && has_val) {
            if (rl_cli_double(argv[++i], "--guidance-rescale", 0.0, 1.0, &guidance_rescale))
                return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--prompt") && has_val) {
            prompt = argv[++i];
        } else if (a[0] != '-' || !strcmp(a, "-")) {
            argv[1 + n_files++] = argv[i];
        } else {
            fprintf(stderr, "reel eval: %s '%s' (see 'reel eval --help')\n", a[0] == '-' && !has_val &&
                    (!strcmp(a, "--model") || !strcmp(a, "--report") || !strcmp(a, "--prompts") ||
                     !strcmp(a, "-n") || !strcmp(a, "--n") || !strcmp(a, "--seeds") ||
                     !strcmp(a, "--frames") || !strcmp(a, "--size") ||
                     !strcmp(a, "--steps") || !strcmp(a, "--threads") || !strcmp(a, "--guidance") ||
                     !strcmp(a, "--guidance-rescale") ||
                     !strcmp(a, "--prompt"))
                    ? "missing value after" : "unknown option", a);
            return RL_EXIT_USAGE;
        }
    }

    if (n_files > 0) {
        if (real || model_dir || report) {
            fprintf(stderr, "reel eval: clip files are analysed on their own; --real, --model and "
                    "--report do not apply to them\n");
            return RL_EXIT_USAGE;
        }
        return eval_files((const char *const *)argv + 1, n_files, prompt, json);
    }
    if (through_vae && !real) {
        fprintf(stderr, "reel eval: --vae goes with --real (the renders through the model's VAE)\n");
        return RL_EXIT_USAGE;
    }
    if (prompt) {
        fprintf(stderr, "reel eval: --prompt scores clip files (reel eval FILE... --prompt TEXT)\n");
        return RL_EXIT_USAGE;
    }

    rl_eval_opts o = rl_eval_default_opts();
    if (prompts > 0) {
        o.n_in = o.n_heldout = prompts;
        if (o.n_guidance > prompts) o.n_guidance = prompts;
        if (o.n_negative > prompts) o.n_negative = prompts;
        if (o.n_travel > prompts) o.n_travel = prompts;
    }
    o.keep_frames = report != NULL;
    o.n_seeds = seeds;
    o.F = frames;
    o.H = o.W = size;
    if (o.n_guidance > o.n_in * seeds) o.n_guidance = o.n_in * seeds;

    // the model folder: --model, $REEL_MODEL, or the default model beside the executable
    const int model_given = model_dir != NULL;
    char model_buf[4200];
    if (!model_dir) {
        const char *env = getenv("REEL_MODEL");
        model_dir = env && *env ? env : rl_data_path("presets/models/shapes", model_buf,
                                                  sizeof model_buf);
    }
    if ((!real || through_vae) && !rl_is_dir(model_dir)) {
        fprintf(stderr, "reel: model folder %s not found (use --model DIR or set REEL_MODEL)\n",
                model_dir);
        return RL_EXIT_IO;
    }
    if (report) {
        // fail before the clips are made, not after
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", report);
        char *slash = strrchr(parent, '/');
        while (slash && slash > parent && slash[1] == 0) {
            *slash = 0;
            slash = strrchr(parent, '/');
        }
        if (!slash) snprintf(parent, sizeof parent, ".");
        else if (slash == parent) parent[1] = 0;
        else *slash = 0;
        if (!rl_is_dir(parent) || access(parent, W_OK | X_OK) != 0) {
            fprintf(stderr, "reel: cannot write the report %s: folder %s is missing or not "
                    "writable\n", report, parent);
            return RL_EXIT_IO;
        }
    }

    // the CLIP pair for the CLIP score: n/a (with the reason) when the folder has none
    rl_err err = { 0 };
    rl_clipscore *clip = NULL;
    char clip_na[4400] = "";
    char cv[4300];
    snprintf(cv, sizeof cv, "%s/clip_video", model_dir);
    if (!rl_is_dir(cv)) {
        snprintf(clip_na, sizeof clip_na, "%s has no clip_video/ (a CLIP pair from `reel train "
                 "clip`)", model_dir);
    } else if (rl_clipscore_open(&clip, model_dir, &err) != RL_OK) {
        if (real && !model_given) {
            snprintf(clip_na, sizeof clip_na, "%s", err.msg);
        } else {
            fprintf(stderr, "reel: CLIP pair: %s\n", err.msg);
            return RL_EXIT_MODEL;
        }
    }
    o.clip = clip;
    o.clip_na = clip_na;
    rl_progress prog;
    rl_progress_init(&prog, quiet);
    o.progress = show_progress;
    o.progress_user = &prog;

    rl_eval_source src = rl_eval_source_truth();
    rl_status rc = RL_OK;
    vae_src vs = { 0 };
    char vname[4300];
    if (through_vae) {
        if ((rc = vae_open(&vs, model_dir, &err)) != RL_OK) {
            vae_close(&vs);
            rl_clipscore_close(&clip);
            const int status = rl_cli_fail(&err);
            return status == RL_EXIT_USAGE ? RL_EXIT_MODEL : status;
        }
        snprintf(vname, sizeof vname, "ground truth through the VAE of %s (the ceiling with it)",
                 model_dir);
        src.name = vname;
        src.gen = vae_gen;
        src.user = &vs;
    }
#ifdef RL_HAVE_CMD_GENERATE
    // unset: the default preset's (presets/balanced.json), as `reel generate` without --preset
    const rl_preset dp = rl_preset_default();
    if (guidance <= 0) guidance = dp.guidance;
    model_src m = { .steps = steps > 0 ? steps : dp.steps, .guidance = (float)guidance,
                    .guidance_rescale = (float)guidance_rescale };
    char name[4300];
    if (!real) {
        if ((rc = rl_ctx_open(&m.ctx, model_dir, threads, &err)) != RL_OK) {
            rl_clipscore_close(&clip);
            const int status = rl_cli_fail(&err);
            return status == RL_EXIT_USAGE ? RL_EXIT_MODEL : status;
        }
        snprintf(name, sizeof name, "model %s", model_dir);
        src = (rl_eval_source){ .name = name, .gen = model_gen, .user = &m, .model = 1,
                                .guidance = (float)guidance };
    }
#else
    if (!real) {
        fprintf(stderr, "reel eval: this build has no generation pipeline yet, so it cannot run "
                "the model in %s; 'reel eval --real' measures the ground truth\n", model_dir);
        rl_clipscore_close(&clip);
        return RL_EXIT_USAGE;
    }
    (void)steps; (void)threads; (void)guidance; (void)guidance_rescale;
#endif

    rl_eval_result res;
    rc = rl_eval_run(&res, &src, &o, &err);
    rl_progress_done(&prog);
    vae_close(&vs);
#ifdef RL_HAVE_CMD_GENERATE
    if (rc == RL_OK && m.ctx) {
        const rl_model_info mi = rl_ctx_info(m.ctx);
        rc = rl_eval_text_separation(&res, encode_text, m.ctx, mi.text_len, mi.text_dim, &err);
        if (rc) rl_eval_result_free(&res);
    }
    rl_ctx_close(&m.ctx);
#endif
    rl_clipscore_close(&clip);
    if (rc != RL_OK) return rl_cli_fail(&err);
    if (json) rl_eval_print_json(stdout, &res);
    else rl_eval_print_table(stdout, &res);
    if (report) {
        rc = rl_eval_write_report(report, &res, &err);
        if (rc == RL_OK && !quiet) fprintf(stderr, "reel eval: report in %s/index.html\n", report);
    }
    rl_eval_result_free(&res);
    return rc == RL_OK ? RL_EXIT_OK : rl_cli_fail(&err);
}
