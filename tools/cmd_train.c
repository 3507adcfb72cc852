/* tools/cmd_train.c - `reel train tokenizer|vae|clip|unet [options]`: trains reel's default
 * model, one component at a time, on the shapes world (see train_stages.h for what each stage
 * reads and writes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/par.h"
#include "io/png.h"
#include "tools/cli.h"
#include "tools/plot.h"
#include "tools/progress.h"
#include "tools/train_stages.h"

static void help(FILE *f)
{
    const rl_train_opts d = rl_train_opts_default();
    fprintf(f,
"usage: reel train STAGE --out DIR [options]\n"
"\n"
"Trains one part of reel's default model on the shapes world (clips of one coloured shape\n"
"moving on a plain background, drawn on the fly, with their captions) and writes it into the\n"
"model folder DIR in the diffusers layout, so `reel generate --model DIR` and diffusers'\n"
"AnimateDiffPipeline can both load the result. Run the stages in this order:\n"
"\n"
"  tokenizer  learn BPE merges from the world's captions        -> DIR/tokenizer/\n"
"  vae        autoencoder: 64x64 frames <-> 16x16x4 latents       -> DIR/vae/\n"
"  clip       text encoder, trained contrastively against a clip\n"
"             encoder that sees the frames (needs tokenizer/)    -> DIR/text_encoder/, DIR/clip_video/\n"
"  unet       the denoiser: predicts the noise added to the VAE latents, conditioned on\n"
"             the frozen text encoder (needs vae/, text_encoder/) -> DIR/unet/, DIR/scheduler/,\n"
"             DIR/model_index.json\n"
"\n"
"Training state goes to DIR/train/STAGE.ckpt.safetensors (weights, AdamW moments, EMA, step)\n"
"every --checkpoint-every seconds, written atomically: a killed run loses at most one\n"
"interval, and --resume continues it exactly (same data, same noise, same result as an\n"
"uninterrupted run). Ctrl-C writes a checkpoint before stopping. The loss log is\n"
"DIR/train/STAGE.csv (step,loss,lr,grad_norm,aux,elapsed_s).\n"
"\n"
"options:\n"
"  --out DIR              model folder (created when missing)                    [required]\n"
"  --steps N              optimizer steps; fixes the learning-rate schedule      [%ld]\n"
"  --batch N              clips (or frames, for vae) per step      [%d; clip 32]\n"
"  --lr X                 peak learning rate (AdamW)               [%g; unet 0.0005]\n"
"  --warmup N             linear warm-up steps, then cosine decay                [%ld]\n"
"  --min-lr-ratio X       the cosine ends at X times the peak                    [%g]\n"
"  --weight-decay X       AdamW decoupled weight decay                           [%g]\n"
"  --clip-norm X          clip the global gradient norm to X (0: off)            [%g]\n"
"  --ema X                EMA decay of the released weights (0: release raw)     [%g]\n"
"  --seed N               data, noise and initial weights all follow it          [%llu]\n"
"  --threads N            OpenMP threads (results do not depend on it)           [all]\n"
"  --checkpoint-every S   seconds between checkpoints                            [%g]\n"
"  --resume               continue the run from its checkpoint\n"
"  --resume-from DIR      start from the weights of the same component in DIR\n"
"                         (for unet --stage motion: the image stage's unet)\n"
"  --export               write the model folder from the run's checkpoint (its EMA weights)\n"
"                         and exit, without training: look at a run while it goes on (the\n"
"                         same options as the run; reads the checkpoint, writes no state)\n"
"  --stop-at N            stop after step N with a checkpoint and write the model folder\n"
"                         from the weights so far (split a long run across sittings)\n"
"  --checkpoint PATH      checkpoint file instead of DIR/train/STAGE.ckpt.safetensors\n"
"  --log CSV              loss log instead of DIR/train/STAGE.csv\n"
"  --config JSON          architecture: a config.json of the component (diffusers /\n"
"                         transformers keys) or the JSON text itself; default: the\n"
"                         default model's\n"
"  --overfit              reuse the first step's data and noise every step: the loss\n"
"                         must fall towards 0 (a check that the stage can learn)\n"
"  --size N               frame side in pixels                                  [%d]\n"
"  --frames N             frames per clip (unet motion/joint stages)            [%d]\n"
"vae:\n"
"  --kl-weight X          weight of the KL term (mean per latent value)         [%g]\n"
"unet:\n"
"  --stage image|motion|joint   AnimateDiff's recipe: image trains the spatial layers on\n"
"                         single frames (motion modules frozen, an identity at init);\n"
"                         motion trains only the motion modules on clips (use\n"
"                         --resume-from DIR to start from the image stage); joint trains all\n"
"                                                                                [joint]\n"
"  --prediction epsilon|v_prediction   what the UNet predicts                    [epsilon]\n"
"  --zero-snr             rescale the betas to zero terminal SNR (pair with v_prediction)\n"
"  --cond-drop X          share of captions replaced by \"\" (classifier-free guidance) [%g]\n"
"  --snr-gamma X          Min-SNR-gamma loss weights (Hang et al. 2023): each sample's\n"
"                         squared error times min(SNR_t, X) / SNR_t (epsilon) or\n"
"                         min(SNR_t, X) / (SNR_t + 1) (v); 0: uniform. The log's loss\n"
"                         column stays the unweighted mean squared error  [%g]\n"
"  --t-bias P             draw time steps as T-1-floor(T u^P), u uniform: 1 is uniform, 2 puts\n"
"                         half the samples in the noisiest quarter, where a clip's layout\n"
"                         and motion are decided                                 [%g]\n"
"  --centre-paths X       share of clips whose path is moved to the middle of the frame\n"
"                         (same caption): with random starts a motion word barely changes\n"
"                         the mean clip the UNet must predict from pure noise; centred, it\n"
"                         does                                                   [%g]\n"
"  --pe-scale X           the motion modules' sinusoidal position tables times X (stored in\n"
"                         the model, as diffusers keeps them; diffusers' own are 1x)\n"
"                                               [as the --resume-from model stores, else 1]\n"
"  --frame-heads X        at the start of a run, seed heads 0 and 1 of each motion module's\n"
"                         first attention to look one frame back and one ahead (X: the\n"
"                         strength; 0: off): they tell a clip from the clip played\n"
"                         backwards, which the trained attention barely does   [%g]\n"
"clip:\n"
"  --hard-negatives[=KINDS]  every other clip of a batch is the one before it changed in one\n"
"                         attribute, under its own caption. KINDS, comma-separated:\n"
"                           motion  played backwards (moving left <-> right, up <-> down,\n"
"                                   growing <-> shrinking); the default\n"
"                           shape   the same clip with another shape\n"
"                         with both, pairs alternate. Without such pairs InfoNCE rarely has to\n"
"                         tell the directions (or triangle and star) apart, and the text\n"
"                         encoder maps them together (reel eval's text-separation rows show it)\n"
"tokenizer:\n"
"  --merges N             BPE merges to learn                                   [%d]\n"
"  --max-length N         tokens per prompt, with start and end                 [%d]\n"
"\n"
"The default model, in order (presets/models/shapes/MODEL_CARD.md has the exact commands):\n"
"  reel train tokenizer --out M\n"
"  reel train vae  --out M --steps 4000\n"
"  reel train clip --out M --steps 3000\n"
"                  (add --hard-negatives=motion,shape for a new model: the shipped pair, made\n"
"                  without it, cannot tell left from right; see the model card)\n"
"  reel train unet --out M --stage image --steps 12000 --batch 16 --lr 1e-3 --warmup 500 \\\n"
"                  --prediction v_prediction --zero-snr\n"
"  cp -r M M_image\n"
"  reel train unet --out M --stage joint --resume-from M_image --steps 8000 --batch 2 \\\n"
"                  --prediction v_prediction --zero-snr\n"
"  reel train --plot M/train/unet-image.csv M/train/unet.csv -o loss.png\n"
"                         (loss curves as a PNG; see reel train --plot --help)\n"
"\n"
"exit status: 0 done, 1 error, 2 bad option, 3 file error, 4 model folder problem,\n"
"130 interrupted (a checkpoint was written; continue with --resume).\n",
            d.steps, d.batch, (double)d.lr, d.warmup, (double)d.min_lr_ratio,
            (double)d.weight_decay, (double)d.max_norm, (double)d.ema,
            (unsigned long long)d.seed, d.ckpt_every, d.size, d.frames, (double)d.kl_weight,
            (double)d.cond_drop, (double)d.snr_gamma, (double)d.t_bias, (double)d.centre_paths,
            (double)d.frame_heads, d.merges, d.max_length);
}

typedef struct {
    rl_progress pr;
    const char *stage;
} reporter;

static void report(void *ctx, long step, long total, double loss, float lr)
{
    reporter *r = ctx;
    char label[96];
    snprintf(label, sizeof label, "%s loss %.5f lr %.2e", r->stage, loss, (double)lr);
    rl_progress_update(&r->pr, 0, label, (int)step, (int)total, "step");
    if (!r->pr.enabled && (step % 100 == 0 || step == total))
        fprintf(stderr, "reel: %s step %ld/%ld loss %.6f lr %.3e\n", r->stage, step, total, loss,
                (double)lr);
}

static void note(void *ctx, const char *msg)
{
    reporter *r = ctx;
    rl_progress_done(&r->pr);
    fprintf(stderr, "reel: %s\n", msg);
}

/* "motion,shape" -> RL_NEG_* bits; 1 (after a message) on an unknown or empty list. */
static int parse_negatives(const char *list, int *bits)
{
    static const struct { const char *name; int bit; } kinds[] = {
        { "motion", RL_NEG_MOTION }, { "shape", RL_NEG_SHAPE },
    };
    int out = 0;
    for (const char *p = list; *p;) {
        const size_t n = strcspn(p, ",");
        int bit = 0;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            if (n == strlen(kinds[k].name) && !strncmp(p, kinds[k].name, n)) bit = kinds[k].bit;
        if (!bit) {
            fprintf(stderr, "reel: train: --hard-negatives: unknown kind '%.*s' (motion, shape)\n",
                    (int)n, p);
            return 1;
        }
        out |= bit;
        p += n + (p[n] == ',');
    }
    if (!out) {
        fprintf(stderr, "reel: train: --hard-negatives=: name at least one kind (motion, shape)\n");
        return 1;
    }
    *bits = out;
    return 0;
}

static void plot_help(FILE *f)
{
    fprintf(f,
"usage: reel train --plot CSV [CSV...] [-o PNG] [options]\n"
"\n"
"Draws loss logs of `reel train` (DIR/train/STAGE.csv) as a PNG: the loss against the step on\n"
"a log scale, the raw losses as faint points and their moving average (of log loss) as a\n"
"line, one colour per log, a legend with each log's name and last smoothed loss. Several\n"
"logs share the chart: the stages of one model, or the runs of an ablation.\n"
"\n"
"options:\n"
"  -o, --output PNG   the image                     [the first CSV with .png for .csv]\n"
"  --width N          pixels                                                  [960]\n"
"  --height N         pixels                                                  [540]\n"
"  --smooth X         moving-average window as a share of the longest log (0: none) [0.02]\n"
"  --title TEXT       the chart's title                              [training loss]\n"
"\n"
"example:\n"
"  reel train --plot M/train/unet-image.csv M/train/unet-joint.csv -o loss.png\n"
"\n"
"exit status: 0 written, 2 bad option, 3 a log cannot be read or is not a loss log, or the\n"
"image cannot be written.\n");
}

/* The file name of path without its folder and a ".csv" ending: the legend's label. */
static char *label_of(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char *s = strdup(b);
    size_t n = s ? strlen(s) : 0;
    if (n > 4 && !strcmp(s + n - 4, ".csv")) s[n - 4] = 0;
    return s;
}

static int cmd_plot(int argc, char **argv)
{
    rl_plot_opts po = rl_plot_default_opts();
    const char *out = NULL;
    const char **csv = calloc((size_t)argc, sizeof *csv);
    int n = 0, rc = RL_EXIT_OK;
    if (!csv) return RL_EXIT_ERROR;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        if (!strcmp(a, "--plot")) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            plot_help(stdout);
            free(csv);
            return RL_EXIT_OK;
        }
        if (a[0] != '-') { csv[n++] = a; continue; }
        if (!v) {
            fprintf(stderr, "reel: train --plot: %s needs a value (see reel train --plot --help)\n", a);
            free(csv);
            return RL_EXIT_USAGE;
        }
        i++;
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--title")) po.title = v;
        else if (!strcmp(a, "--width")) { if (rl_cli_int(v, a, 200, 8192, &po.width)) rc = RL_EXIT_USAGE; }
        else if (!strcmp(a, "--height")) { if (rl_cli_int(v, a, 150, 8192, &po.height)) rc = RL_EXIT_USAGE; }
        else if (!strcmp(a, "--smooth")) {
            if (rl_cli_double(v, a, 0.0, 1.0, &d)) rc = RL_EXIT_USAGE;
            po.smooth = d;
        } else {
            fprintf(stderr, "reel: train --plot: unknown option '%s' (see reel train --plot --help)\n", a);
            rc = RL_EXIT_USAGE;
        }
        if (rc) { free(csv); return rc; }
    }
    if (n == 0) {
        fprintf(stderr, "reel: train --plot: name at least one loss log (CSV)\n");
        free(csv);
        return RL_EXIT_USAGE;
    }
    char *def_out = NULL;
    if (!out) {
        size_t len = strlen(csv[0]);
        def_out = malloc(len + 5);
        if (!def_out) { free(csv); return RL_EXIT_ERROR; }
        memcpy(def_out, csv[0], len + 1);
        if (len > 4 && !strcmp(def_out + len - 4, ".csv")) def_out[len - 4] = 0;
        strcat(def_out, ".png");
        out = def_out;
    }
    rl_loss_log *logs = calloc((size_t)n, sizeof *logs);
    char **labels = calloc((size_t)n, sizeof *labels);
    uint8_t *rgb = NULL;
    rl_err err = {0};
    rl_status st = (logs && labels) ? RL_OK : RL_E_NOMEM;
    for (int i = 0; i < n && !st; i++) {
        st = rl_loss_log_read(csv[i], &logs[i], &err);
        if (!st && !(labels[i] = label_of(csv[i]))) st = RL_E_NOMEM;
        if (!st && logs[i].skipped)
            fprintf(stderr, "reel: %s: %ld rows with a loss that is not positive and finite left out\n",
                    csv[i], logs[i].skipped);
    }
    if (!st) st = rl_plot_losses(logs, (const char *const *)labels, n, &po, &rgb, &err);
    if (!st) st = rl_png_write(out, rgb, po.width, po.height, &err);
    if (!st) printf("%s\n", out);
    if (st == RL_E_NOMEM && !err.msg[0]) rl_errf(&err, st, "out of memory");
    rc = !st ? RL_EXIT_OK : st == RL_E_NOMEM ? rl_cli_fail(&err) : (rl_cli_fail(&err), RL_EXIT_IO);
    for (int i = 0; i < n && logs && labels; i++) {
        rl_loss_log_free(&logs[i]);
        free(labels[i]);
    }
    free(rgb);
    free(logs);
    free(labels);
    free(def_out);
    free(csv);
    return rc;
}

int rl_cmd_train(int argc, char **argv)
{
    rl_train_opts o = rl_train_opts_default();
    int have_warmup = 0, have_lr = 0, have_batch = 0, have_steps = 0;
    const char *stage = NULL;
    if (argc < 2) {
        help(stderr);
        return RL_EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--plot")) return cmd_plot(argc, argv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long ll;
        double d;
        int n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            return RL_EXIT_OK;
        }
        if (a[0] != '-') {
            if (stage) {
                fprintf(stderr, "reel: train: one stage at a time ('%s' and '%s')\n", stage, a);
                return RL_EXIT_USAGE;
            }
            stage = a;
            continue;
        }
        if (!strcmp(a, "--resume")) { o.resume = 1; continue; }
        if (!strcmp(a, "--export")) { o.export_only = 1; continue; }
        if (!strcmp(a, "--zero-snr")) { o.zero_snr = 1; continue; }
        if (!strcmp(a, "--hard-negatives")) { o.hard_negatives = RL_NEG_MOTION; continue; }
        if (!strncmp(a, "--hard-negatives=", 17)) {
            if (parse_negatives(a + 17, &o.hard_negatives)) return RL_EXIT_USAGE;
            continue;
        }
        if (!strcmp(a, "--overfit")) { o.overfit = 1; continue; }
        if (!v) {
            fprintf(stderr, "reel: train: %s needs a value (see reel train --help)\n", a);
            return RL_EXIT_USAGE;
        }
        i++;
        if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--config")) o.config = v;
        else if (!strcmp(a, "--resume-from")) o.resume_from = v;
        else if (!strcmp(a, "--checkpoint")) o.ckpt = v;
        else if (!strcmp(a, "--log")) o.log = v;
        else if (!strcmp(a, "--steps")) {
            if (rl_cli_int(v, a, 1, 1000000000, &n)) return RL_EXIT_USAGE;
            o.steps = n; have_steps = 1;
        } else if (!strcmp(a, "--stop-at")) {
            if (rl_cli_int(v, a, 1, 1000000000, &n)) return RL_EXIT_USAGE;
            o.stop_at = n;
        } else if (!strcmp(a, "--warmup")) {
            if (rl_cli_int(v, a, 0, 1000000000, &n)) return RL_EXIT_USAGE;
            o.warmup = n; have_warmup = 1;
        } else if (!strcmp(a, "--batch")) {
            if (rl_cli_int(v, a, 1, 4096, &o.batch)) return RL_EXIT_USAGE;
            have_batch = 1;
        } else if (!strcmp(a, "--threads")) {
            if (rl_cli_int(v, a, 1, 1024, &o.threads)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--size")) {
            if (rl_cli_int(v, a, 8, 1024, &o.size)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--frames")) {
            if (rl_cli_int(v, a, 1, 256, &o.frames)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--merges")) {
            if (rl_cli_int(v, a, 0, 48894, &o.merges)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--max-length")) {
            if (rl_cli_int(v, a, 4, 77, &o.max_length)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--seed")) {
            unsigned long long u;
            if (rl_cli_u64(v, a, &u)) return RL_EXIT_USAGE;
            o.seed = u;
        } else if (!strcmp(a, "--lr")) {
            if (rl_cli_double(v, a, 1e-9, 10.0, &d)) return RL_EXIT_USAGE;
            o.lr = (float)d; have_lr = 1;
        } else if (!strcmp(a, "--min-lr-ratio")) {
            if (rl_cli_double(v, a, 0.0, 1.0, &d)) return RL_EXIT_USAGE;
            o.min_lr_ratio = (float)d;
        } else if (!strcmp(a, "--weight-decay")) {
            if (rl_cli_double(v, a, 0.0, 10.0, &d)) return RL_EXIT_USAGE;
            o.weight_decay = (float)d;
        } else if (!strcmp(a, "--clip-norm")) {
            if (rl_cli_double(v, a, 0.0, 1e9, &d)) return RL_EXIT_USAGE;
            o.max_norm = (float)d;
        } else if (!strcmp(a, "--ema")) {
            if (rl_cli_double(v, a, 0.0, 0.999999, &d)) return RL_EXIT_USAGE;
            o.ema = (float)d;
        } else if (!strcmp(a, "--checkpoint-every")) {
            if (rl_cli_double(v, a, 0.0, 1e9, &o.ckpt_every)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--kl-weight")) {
            if (rl_cli_double(v, a, 0.0, 1e6, &d)) return RL_EXIT_USAGE;
            o.kl_weight = (float)d;
        } else if (!strcmp(a, "--cond-drop")) {
            if (rl_cli_double(v, a, 0.0, 1.0, &d)) return RL_EXIT_USAGE;
            o.cond_drop = (float)d;
        } else if (!strcmp(a, "--t-bias")) {
            if (rl_cli_double(v, a, 0.1, 10.0, &d)) return RL_EXIT_USAGE;
            o.t_bias = (float)d;
        } else if (!strcmp(a, "--centre-paths")) {
            if (rl_cli_double(v, a, 0.0, 1.0, &d)) return RL_EXIT_USAGE;
            o.centre_paths = (float)d;
        } else if (!strcmp(a, "--pe-scale")) {
            if (rl_cli_double(v, a, 0.1, 100.0, &d)) return RL_EXIT_USAGE;
            o.pe_scale = (float)d;
        } else if (!strcmp(a, "--frame-heads")) {
            if (rl_cli_double(v, a, 0.0, 10.0, &d)) return RL_EXIT_USAGE;
            o.frame_heads = (float)d;
        } else if (!strcmp(a, "--snr-gamma")) {
            if (rl_cli_double(v, a, 0.0, 1e6, &d)) return RL_EXIT_USAGE;
            o.snr_gamma = (float)d;
        } else if (!strcmp(a, "--prediction")) {
            if (!strcmp(v, "epsilon")) o.v_pred = 0;
            else if (!strcmp(v, "v_prediction")) o.v_pred = 1;
            else {
                fprintf(stderr, "reel: --prediction must be epsilon or v_prediction, not '%s'\n", v);
                return RL_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--stage")) {
            if (!strcmp(v, "image")) o.unet_stage = RL_UNET_STAGE_IMAGE;
            else if (!strcmp(v, "motion")) o.unet_stage = RL_UNET_STAGE_MOTION;
            else if (!strcmp(v, "joint")) o.unet_stage = RL_UNET_STAGE_JOINT;
            else {
                fprintf(stderr, "reel: --stage must be image, motion or joint, not '%s'\n", v);
                return RL_EXIT_USAGE;
            }
        } else {
            (void)ll;
            fprintf(stderr, "reel: train: unknown option '%s' (see reel train --help)\n", a);
            return RL_EXIT_USAGE;
        }
    }
    if (!stage) {
        fprintf(stderr, "reel: train: which stage? tokenizer, vae, clip or unet\n");
        return RL_EXIT_USAGE;
    }
    if (!o.out) {
        fprintf(stderr, "reel: train: --out DIR is required (the model folder)\n");
        return RL_EXIT_USAGE;
    }
    if (!strcmp(stage, "tokenizer") && (o.export_only || o.resume)) {
        fprintf(stderr, "reel: train tokenizer: %s does not apply (the tokenizer is made in one "
                "pass, without checkpoints)\n", o.export_only ? "--export" : "--resume");
        return RL_EXIT_USAGE;
    }
    if (have_warmup && o.warmup >= o.steps && o.steps > 1) {
        fprintf(stderr, "reel: --warmup (%ld) must be below --steps (%ld)\n", o.warmup, o.steps);
        return RL_EXIT_USAGE;
    }
    if (!have_warmup && o.warmup >= o.steps) o.warmup = o.steps / 10;
    // the stages' own defaults where they differ from the shared ones
    if (!strcmp(stage, "clip") && !have_batch) o.batch = 32;
    if (!strcmp(stage, "unet") && !have_lr) o.lr = 5e-4f;
    (void)have_steps;
    if (o.threads > 0) rl_par_set_threads(o.threads);

    reporter rep = { .stage = stage };
    rl_progress_init(&rep.pr, 0);
    o.report = report;
    o.report_ctx = &rep;
    o.note = note;
    o.note_ctx = &rep;

    rl_err err = { 0 };
    rl_status rc;
    if (!strcmp(stage, "tokenizer")) rc = rl_train_tokenizer(&o, &err);
    else if (!strcmp(stage, "vae")) rc = rl_train_vae(&o, &err);
    else if (!strcmp(stage, "clip")) rc = rl_train_clip(&o, &err);
    else if (!strcmp(stage, "unet")) rc = rl_train_unet(&o, &err);
    else {
        fprintf(stderr, "reel: train: unknown stage '%s' (tokenizer, vae, clip or unet)\n", stage);
        return RL_EXIT_USAGE;
    }
    rl_progress_done(&rep.pr);
    if (rc) return rl_cli_fail(&err);
    return RL_EXIT_OK;
}
