/* tools/bench_models.c - `reel bench unet` and `reel bench clip`: model-level speed and memory.
 *
 *   reel bench unet   one denoiser call with the classifier-free-guidance batch (N = 2 videos:
 *                     unconditional + conditional), timed over --steps calls after one warm-up
 *                     call; prints seconds per step, the step's GFLOP (convolutions, linears,
 *                     attention: the FLOPs of the math reel runs, see count_* below), the
 *                     achieved GFLOP/s, and memory: the activation arena's peak plus the
 *                     weights, and the process's max RSS (getrusage). --vs-torch also runs
 *                     tools/fixtures/bench_torch.py (the same UNet in plain PyTorch, the
 *                     diffusers-exact reference modules of tools/fixtures/refmodels.py) on the
 *                     same config, shapes and thread count, and prints the ratio.
 *   reel bench clip   one whole default clip through the public API (core/reel.h): text
 *                     encoding, the DDIM loop, VAE decode and MP4 writing, each phase timed.
 *
 * Full-size models need no weight files: --random-weights --config DIR builds the UNet of
 * DIR/unet/config.json (+ DIR/motion_adapter/config.json) with random, well-scaled weights
 * (see build_random). presets/bench/sd15_animatediff holds the SD 1.5 + AnimateDiff v1-5-2
 * configs. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/par.h"
#include "core/unet.h"
#include "core/weights.h"
#include "io/config_clip.h"
#include "io/config_unet.h"
#include "io/config_vae.h"
#include "io/diffusers.h"
#include "io/presets.h"
#include "tools/bench.h"
#include "tools/cli.h"

#define DEFAULT_MODEL "presets/models/shapes"
#define DEFAULT_BENCH_CONFIG "presets/bench/sd15_animatediff"
#define TORCH_SCRIPT "tools/fixtures/bench_torch.py"

static const char unet_usage[] =
    "usage: reel bench unet [--model DIR | --random-weights [--config DIR]] [options]\n"
    "\n"
    "Times one UNet denoising step with classifier-free guidance (a batch of 2 videos) and\n"
    "prints seconds per step, GFLOP per step (convolutions, linears, attention), the achieved\n"
    "GFLOP/s, and peak memory (activation arena + weights; the process's max RSS).\n"
    "\n"
    "model:\n"
    "  --model DIR       a model folder in diffusers layout (default " DEFAULT_MODEL ")\n"
    "  --random-weights  no weight files: build the UNet of the config folder with random\n"
    "                    weights (full-size models without downloading them)\n"
    "  --config DIR      config folder for --random-weights: DIR/unet/config.json and, when\n"
    "                    present, DIR/motion_adapter/config.json, DIR/text_encoder/config.json,\n"
    "                    DIR/vae/config.json (default " DEFAULT_BENCH_CONFIG ")\n"
    "\n"
    "options:\n"
    "  --size PIXELS     frame width and height in pixels (default: the model's native size);\n"
    "                    a multiple of the VAE's scale (8 for SD)\n"
    "  --frames N        frames per video (default 16)\n"
    "  --steps N         timed calls after the warm-up call, at least (default 3); the median\n"
    "                    is shown. 0: no warm-up, the first call is the step (huge shapes)\n"
    "  --min-time S      keep calling until S seconds have passed, too (default 1)\n"
    "  --threads N       threads (default: all cores)\n"
    "  --vs-torch        also time the same UNet in PyTorch (/usr/bin/python3 " TORCH_SCRIPT ")\n"
    "                    with the same config, size, frames and threads, and print the ratio\n"
    "  --dry-run         no calls: print the shapes, the work per step and the planned memory\n"
    "                    (with --random-weights the weights are not even filled)\n"
    "  -h, --help        this text\n"
    "\n"
    "examples:\n"
    "  reel bench unet --model tests/fixtures/models/tiny_a --vs-torch\n"
    "  reel bench unet --random-weights --config " DEFAULT_BENCH_CONFIG " --size 256 --threads 2\n"
    "\n"
    "exit status: 0 done, 2 bad option, 3 file error, 4 bad model, 1 other failure\n";

// ---- small helpers ------------------------------------------------------------------------

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static double gb(double bytes) { return bytes / 1e9; }

/* One-minute load average: timings assume an idle machine, so the report states it. */
static double load1(void)
{
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

static double max_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_maxrss * 1024.0;   // Linux reports KiB
}

// ---- the UNet and its weights -------------------------------------------------------------

/* splitmix64 of the tensor's name seeds its stream, so the values do not depend on the order
 * in which bind asks for names. */
static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;   // FNV-1a
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Random weights with the scale of a trained network's, so activations stay O(1) through
 * the whole UNet (no overflow, no denormals that would distort the timing):
 *   matrices and kernels (ndim >= 2): uniform with variance 1 / fan_in, fan_in = numel / OC;
 *   1-D '.weight' (group/layer norm scales): 1;  biases: uniform in [-0.02, 0.02].
 * tools/fixtures/bench_torch.py initialises its torch modules by the same rules. */
static void fill_random(float *p, const char *name, int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    size_t len = strlen(name);
    if (ndim == 1 && len > 7 && !strcmp(name + len - 7, ".weight")) {
        for (size_t i = 0; i < n; i++) p[i] = 1.0f;
        return;
    }
    float a = 0.02f;
    if (ndim >= 2) a = sqrtf(3.0f / (float)(n / (size_t)shape[0]));
    // a 64-bit LCG (Knuth's MMIX constants) seeded per tensor: one multiply-add per value,
    // since SD 1.5 + AnimateDiff needs 1.3 G of them; the top 24 bits are well mixed
    uint64_t s = hash_name(name), z = mix64(&s);
    for (size_t i = 0; i < n; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        float u = (float)(z >> 40) * (1.0f / 16777216.0f);   // [0, 1)
        p[i] = (2.0f * u - 1.0f) * a;
    }
}

/* Parses "... missing tensor 'NAME' (expected [d0, d1, ...])", the message of
 * rl_weights_get (core/weights.c) for an absent tensor. Returns 0 on success. */
static int parse_missing(const char *msg, char *name, size_t cap, int *ndim, int64_t *shape)
{
    const char *p = strstr(msg, "missing tensor '");
    if (!p) return -1;
    p += strlen("missing tensor '");
    const char *q = strstr(p, "' (expected [");
    if (!q || (size_t)(q - p) >= cap) return -1;
    memcpy(name, p, (size_t)(q - p));
    name[q - p] = '\0';
    p = q + strlen("' (expected [");
    int nd = 0;
    while (*p && *p != ']') {
        if (nd == RL_MAX_DIMS) return -1;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 1) return -1;
        shape[nd++] = v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    *ndim = nd;
    return *p == ']' ? 0 : -1;
}

/* Builds u from cfg alone: binds against ws, and each time the bind names a tensor it misses
 * (rl_weights_get reports its name and the shape the config implies), adds that tensor with
 * random values and binds again. The bind is the single source of names and shapes, so the
 * weights are exactly those a checkpoint of this config holds (the optional stored pe tables
 * of the motion modules aside: reel computes them when absent). Each bind is cheap (name
 * lookups), so the O(n^2) lookups over ~1,700 tensors of SD 1.5 + AnimateDiff take well under
 * a second; the weights' values dominate (about 5 GB of floats). */
static rl_status build_random(rl_unet *u, rl_weights *ws, const rl_unet_cfg *cfg, int fill,
                              rl_err *err)
{
    for (;;) {
        rl_err e = { 0 };
        rl_status rc = rl_unet_bind(u, ws, NULL, cfg, &e);
        if (rc == RL_OK) return RL_OK;
        char name[512];
        int ndim;
        int64_t shape[RL_MAX_DIMS];
        if (rc != RL_E_MISSING || parse_missing(e.msg, name, sizeof name, &ndim, shape) != 0) {
            if (err) *err = e;
            return rl_err_prefix(err, "random weights");
        }
        float *p;
        if (rl_weights_add_new(ws, name, ndim, shape, &p, err) != RL_OK) return err->code;
        if (fill) fill_random(p, name, ndim, shape);   // else zeros, pages never touched
    }
}

typedef struct {
    char label[256];          // what was loaded, for the report
    rl_unet_cfg cfg;
    rl_weights ws, wm;        // UNet weights; motion-adapter weights when separate
    int has_wm;
    rl_unet u;
    int L, D;                 // text tokens and width (text_encoder/config.json, else 77 x cross dim)
    int scale;                // VAE scale (vae/config.json, else 8)
} bench_model;

static void model_free(bench_model *m)
{
    rl_unet_free(&m->u);
    rl_weights_free(&m->ws);
    rl_weights_free(&m->wm);
}

/* Configs of folder dir: the UNet's (merged with a motion adapter's when one is there), the
 * text length and width, the VAE scale. */
static rl_status load_configs(bench_model *m, const char *dir, rl_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    RL_TRY(rl_unet_cfg_load(&m->cfg, path, err));
    snprintf(path, sizeof path, "%s/motion_adapter/config.json", dir);
    if (!m->cfg.motion_model && file_exists(path)) {
        RL_TRY(rl_unet_cfg_add_adapter(&m->cfg, path, err));
        m->has_wm = 1;
    }
    m->L = 77;
    m->D = m->cfg.cross_dim[m->cfg.n_blocks - 1];
    snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    if (file_exists(path)) {
        rl_clip_cfg tc;
        RL_TRY(rl_clip_cfg_load(&tc, path, err));
        m->L = tc.max_position_embeddings;
        m->D = tc.hidden_size;
    }
    m->scale = 8;
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    if (file_exists(path)) {
        rl_vae_cfg vc;
        RL_TRY(rl_vae_cfg_load(&vc, path, err));
        m->scale = rl_vae_cfg_scale(&vc);
    }
    return RL_OK;
}

/* random: 0 weights from the folder's files, 1 random weights, 2 zero weights (calloc'd,
 * never touched: a dry run that only needs the bound shapes). */
static rl_status model_open(bench_model *m, const char *dir, int random, rl_err *err)
{
    memset(m, 0, sizeof *m);
    rl_weights_init(&m->ws, "unet");
    rl_weights_init(&m->wm, "motion_adapter");
    RL_TRY(load_configs(m, dir, err));
    snprintf(m->label, sizeof m->label, "%s%s", dir, random ? " (random weights)" : "");
    if (random) return build_random(&m->u, &m->ws, &m->cfg, random == 1, err);
    RL_TRY(rl_diffusers_load_weights(&m->ws, dir, "unet", "diffusion_pytorch_model", err));
    if (m->has_wm)
        RL_TRY(rl_diffusers_load_weights(&m->wm, dir, "motion_adapter", "diffusion_pytorch_model",
                                         err));
    return rl_unet_bind(&m->u, &m->ws, m->has_wm ? &m->wm : NULL, &m->cfg, err);
}

// ---- FLOP count -----------------------------------------------------------------------------

/* The multiply-adds (x 2) of what rl_unet_fwd computes, walked over the bound model the way
 * rl_unet_fwd walks it: convolutions 2 B OC Ho Wo C K K, linears 2 T C OC, attention
 * 4 B NH Tq Tk HS (QK^T and PV). Norms, activations, softmax and copies are not counted
 * (they are memory-bound and a few percent of the time). Text keys/values are projected once
 * per video (as reel does), not once per frame (as diffusers does). */
typedef struct { double conv, fc, attn; } flops;

static void count_fc(flops *f, const rl_fc *l, double T) { f->fc += 2.0 * T * l->C * l->OC; }

static void count_conv(flops *f, const rl_conv *l, int B, int H, int W)
{
    int Ho, Wo;
    rl_conv_out_hw(l, H, W, &Ho, &Wo);
    f->conv += 2.0 * B * l->OC * Ho * Wo * (double)l->C * l->K * l->K;
}

/* x (B, Tq, Cq); keys/values from Bk sequences of Tk. */
static void count_attention(flops *f, const rl_attention *a, int B, int Tq, int Bk, int Tk)
{
    count_fc(f, &a->to_q, (double)B * Tq);
    count_fc(f, &a->to_k, (double)Bk * Tk);
    count_fc(f, &a->to_v, (double)Bk * Tk);
    f->attn += 4.0 * B * a->NH * (double)Tq * Tk * a->HS;
    count_fc(f, &a->to_out, (double)B * Tq);
}

/* One BasicTransformerBlock over (B, T, C); cross-attention to N = B / ctx_rep texts of L. */
static void count_tblock(flops *f, const rl_tblock *l, int B, int T, int L, int ctx_rep)
{
    count_attention(f, &l->attn1, B, T, B, T);
    if (l->has_attn2) {
        if (l->attn2_self) count_attention(f, &l->attn2, B, T, B, T);
        else count_attention(f, &l->attn2, B, T, B / ctx_rep, L);
    }
    count_fc(f, &l->ff.proj, (double)B * T);
    count_fc(f, &l->ff.out, (double)B * T);
}

static void count_resnet(flops *f, const rl_resnet *r, int B, int H, int W)
{
    count_conv(f, &r->conv1, B, H, W);
    count_conv(f, &r->conv2, B, H, W);
    if (r->Ct > 0) count_fc(f, &r->time_emb_proj, B);
    if (r->has_shortcut) count_conv(f, &r->conv_shortcut, B, H, W);
}

static void count_xformer(flops *f, const rl_xformer *x, int B, int H, int W, int L, int ctx_rep)
{
    const int S = H * W;
    if (x->linear) {
        count_fc(f, &x->proj_in_l, (double)B * S);
        count_fc(f, &x->proj_out_l, (double)B * S);
    } else {
        count_conv(f, &x->proj_in_c, B, H, W);
        count_conv(f, &x->proj_out_c, B, H, W);
    }
    for (int i = 0; i < x->n_blocks; i++) count_tblock(f, &x->blocks[i], B, S, L, ctx_rep);
}

/* Temporal attention: N*S sequences of F frames. */
static void count_motion(flops *f, const rl_motion *m, int N, int F, int H, int W)
{
    const double T = (double)N * F * H * W;
    count_fc(f, &m->proj_in, T);
    count_fc(f, &m->proj_out, T);
    for (int i = 0; i < m->n_blocks; i++) count_tblock(f, &m->blocks[i], N * H * W, F, 0, 1);
}

static flops count_unet(const rl_unet *u, int N, int F, int H, int W, int L)
{
    const rl_unet_cfg *c = &u->cfg;
    const int B = N * F, ctx_rep = F;
    flops f = { 0, 0, 0 };
    enum { MAX_SKIPS = RL_UNET_MAX_BLOCKS * (RL_UNET_MAX_LAYERS + 1) + 1 };
    int hs[MAX_SKIPS], ws[MAX_SKIPS];   // skip sizes, as rl_unet_fwd keeps them
    int top = 0;

    count_fc(&f, &u->t_lin1, N);
    count_fc(&f, &u->t_lin2, N);
    count_conv(&f, &u->conv_in, B, H, W);
    hs[top] = H; ws[top++] = W;
    for (int i = 0; i < c->n_blocks; i++) {
        const rl_unet_block *b = &u->down[i];
        for (int j = 0; j < b->n_layers; j++) {
            count_resnet(&f, &b->resnets[j], B, H, W);
            if (b->cross) count_xformer(&f, &b->attns[j], B, H, W, L, ctx_rep);
            if (b->has_motion) count_motion(&f, &b->motions[j], N, F, H, W);
            hs[top] = H; ws[top++] = W;
        }
        if (b->has_sampler) {
            count_conv(&f, &b->down.conv, B, H, W);
            rl_conv_out_hw(&b->down.conv, H, W, &H, &W);
            hs[top] = H; ws[top++] = W;
        }
    }
    count_resnet(&f, &u->mid_res[0], B, H, W);
    for (int k = 0; k < c->mid_layers; k++) {
        count_xformer(&f, &u->mid_attn[k], B, H, W, L, ctx_rep);
        if (u->has_mid_motion) count_motion(&f, &u->mid_motion[k], N, F, H, W);
        count_resnet(&f, &u->mid_res[k + 1], B, H, W);
    }
    for (int i = 0; i < c->n_blocks; i++) {
        const rl_unet_block *b = &u->up[i];
        for (int j = 0; j < b->n_layers; j++) {
            --top;
            count_resnet(&f, &b->resnets[j], B, H, W);
            if (b->cross) count_xformer(&f, &b->attns[j], B, H, W, L, ctx_rep);
            if (b->has_motion) count_motion(&f, &b->motions[j], N, F, H, W);
        }
        if (b->has_sampler && top > 0) {
            H = hs[top - 1]; W = ws[top - 1];
            count_conv(&f, &b->up.conv, B, H, W);
        }
    }
    count_conv(&f, &u->conv_out, B, H, W);
    return f;
}

// ---- the torch side -------------------------------------------------------------------------

/* Path of bench_torch.py: relative to the working directory (the repository root), else
 * next to the executable's source tree (<build>/tools/reel -> <root>/tools/fixtures). */
static int find_torch_script(char *out, size_t cap)
{
    if (file_exists(TORCH_SCRIPT)) {
        snprintf(out, cap, "%s", TORCH_SCRIPT);
        return 0;
    }
    char exe[3072];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = '\0';
    for (int up = 0; up < 3; up++) {   // strip "reel", "tools", "<build>"
        char *s = strrchr(exe, '/');
        if (!s) return -1;
        *s = '\0';
    }
    snprintf(out, cap, "%s/" TORCH_SCRIPT, exe);
    return file_exists(out) ? 0 : -1;
}

/* Runs bench_torch.py; returns its seconds per step, or <= 0 with a note printed. */
static double run_torch(const char *dir, int size, int frames, int steps, int threads,
                        double gflop)
{
    char script[4096], cmd[8192];
    if (!file_exists("/usr/bin/python3")) {
        printf("  torch         not run: /usr/bin/python3 is missing\n");
        return 0.0;
    }
    if (find_torch_script(script, sizeof script) != 0) {
        printf("  torch         not run: " TORCH_SCRIPT " not found (run from the repository root)\n");
        return 0.0;
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --model '%s' --size %d --frames %d "
             "--steps %d --threads %d 2>&1", script, dir, size, frames, steps, threads);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("  torch         not run: popen failed (%s)\n", strerror(errno));
        return 0.0;
    }
    char line[4096], last[4096] = "";
    double sps = 0.0, first = 0.0, tg = 0.0;
    while (fgets(line, sizeof line, p)) {
        const char *k = strstr(line, "\"seconds_per_step\":");
        if (k) sps = strtod(k + strlen("\"seconds_per_step\":"), NULL);
        k = strstr(line, "\"first_call\":");
        if (k) first = strtod(k + strlen("\"first_call\":"), NULL);
        k = strstr(line, "\"gflop\":");
        if (k) tg = strtod(k + strlen("\"gflop\":"), NULL);
        if (line[0] != '\n') snprintf(last, sizeof last, "%s", line);
    }
    int st = pclose(p);
    if (sps <= 0.0) {
        size_t n = strlen(last);
        if (n && last[n - 1] == '\n') last[n - 1] = '\0';
        printf("  torch         not run: %s (exit status %d)\n", last[0] ? last : "no output",
               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return 0.0;
    }
    printf("  torch         first call %.3f s, step %.4f s (PyTorch, the reference modules of "
           "tools/fixtures/refmodels.py, float32)\n", first, sps);
    if (tg > 0.0)
        printf("                its FLOP count (hooks on every conv/linear + attention): %.5g "
               "GFLOP, %s reel's\n", tg, fabs(tg - gflop) <= 1e-6 * gflop ? "equal to" : "DIFFERS from");
    return sps;
}

// ---- reel bench unet --------------------------------------------------------------------------

typedef struct {
    const bench_model *m;
    rl_arena *arena;
    float *out, *x, *emb;
    float t[2];
    int N, F, H, W;
    rl_status rc;
    rl_err err;
} unet_call;

static void run_unet(unet_call *c)
{
    c->rc = rl_unet_fwd(&c->m->u, c->arena, c->out, c->x, c->t, c->N, c->emb, 1, c->m->L,
                        c->m->D, c->N, c->F, c->H, c->W, &c->err);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int rl_bench_unet(int argc, char **argv)
{
    const char *model_dir = NULL, *config_dir = NULL;
    int random = 0, size = 0, frames = 16, steps = 3, threads = 0, vs_torch = 0, dry = 0;
    double min_time = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") && i + 1 < argc) {
            model_dir = argv[++i];
        } else if (!strcmp(a, "--config") && i + 1 < argc) {
            config_dir = argv[++i];
        } else if (!strcmp(a, "--random-weights")) {
            random = 1;
        } else if (!strcmp(a, "--size") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--size", 8, 8192, &size)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--frames") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--frames", 1, 1024, &frames)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--steps") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--steps", 0, 1000, &steps)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--threads", 1, 1024, &threads)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--min-time") && i + 1 < argc) {
            if (rl_cli_double(argv[++i], "--min-time", 0.0, 3600.0, &min_time))
                return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--dry-run")) {
            dry = 1;
        } else if (!strcmp(a, "--vs-torch")) {
            vs_torch = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(unet_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "reel bench unet: unknown option '%s'\n\n%s", a, unet_usage);
            return RL_EXIT_USAGE;
        }
    }
    if (config_dir && !random) {
        fprintf(stderr, "reel bench unet: --config goes with --random-weights (for a model with "
                "weights, use --model DIR)\n");
        return RL_EXIT_USAGE;
    }
    const char *dir = random ? (config_dir ? config_dir : model_dir ? model_dir
                                                                    : DEFAULT_BENCH_CONFIG)
                             : (model_dir ? model_dir : DEFAULT_MODEL);
    if (!file_exists(dir)) {
        if (!random && !model_dir)
            fprintf(stderr, "reel: bench unet: the default model %s is not there; give --model "
                    "DIR, or --random-weights --config %s\n", DEFAULT_MODEL, DEFAULT_BENCH_CONFIG);
        else
            fprintf(stderr, "reel: bench unet: %s: no such folder\n", dir);
        return RL_EXIT_IO;
    }
    rl_par_set_threads(threads);
    const int nt = rl_par_threads();

    rl_err err = { 0 };
    bench_model m;
    double t0 = rl_bench_now();
    if (model_open(&m, dir, random && dry ? 2 : random, &err) != RL_OK) {
        model_free(&m);
        return rl_cli_fail(&err);
    }
    const double t_load = rl_bench_now() - t0;
    const rl_unet_cfg *c = &m.cfg;
    if (!size) size = c->sample_size * m.scale;
    if (size % m.scale) {
        fprintf(stderr, "reel: bench unet: --size %d is not a multiple of the VAE scale %d\n", size,
                m.scale);
        model_free(&m);
        return RL_EXIT_USAGE;
    }
    const int N = 2, F = frames, H = size / m.scale, W = H, Cin = c->in_channels;
    const size_t n_params = rl_weights_numel(&m.ws) + rl_weights_numel(&m.wm);
    const double w_bytes = 4.0 * (double)n_params;

    printf("reel bench unet: %d thread%s (load average %.1f on %ld cores at the start)\n", nt,
           nt == 1 ? "" : "s", load1(), sysconf(_SC_NPROCESSORS_ONLN));
    printf("  model         %s\n", m.label);
    printf("                %s, %.1f M parameters (%.2f GB as F32), loaded in %.1f s\n",
           c->has_motion ? "UNet + motion modules" : "UNet (no motion modules)", n_params / 1e6,
           gb(w_bytes), t_load);
    printf("  shapes        %dx%d pixels = %dx%d latents x %d channels, %d frames, batch %d "
           "(CFG), text %d x %d\n", size, size, H, W, Cin, F, N, m.L, m.D);
    const flops f = count_unet(&m.u, N, F, H, W, m.L);
    const double total = f.conv + f.fc + f.attn;
    printf("  work          %.5g GFLOP per step: convolutions %.4g (%.1f%%), linears %.4g (%.1f%%), "
           "attention %.4g (%.1f%%)\n", total / 1e9, f.conv / 1e9, 100.0 * f.conv / total,
           f.fc / 1e9, 100.0 * f.fc / total, f.attn / 1e9, 100.0 * f.attn / total);
    fflush(stdout);
    // the UNet's own plan: the arena bytes rl_unet_fwd reserves before it computes anything
    const double plan = (double)rl_unet_plan_bytes(&m.u, 0, N, F, H, W, m.L, 1,
                                                   rl_par_max_threads());
    if (dry) {
        printf("  memory        arena %.3f GB (the UNet's plan) + weights %.3f GB = %.3f GB\n",
               gb(plan), gb(w_bytes), gb(plan + w_bytes));
        model_free(&m);
        return 0;
    }

    unet_call call = { .m = &m, .N = N, .F = F, .H = H, .W = W, .t = { 500.0f, 500.0f } };
    rl_arena arena;
    rl_arena_init(&arena, 0);
    call.arena = &arena;
    const size_t nx = (size_t)N * Cin * F * H * W;
    call.x = rl_bench_floats(nx, 1);
    call.out = rl_bench_floats((size_t)N * c->out_channels * F * H * W, 2);
    call.emb = rl_bench_floats((size_t)N * m.L * m.D, 3);

    // warm-up: the arena grows to its peak, pages are touched, BLAS sets up its buffers
    t0 = rl_bench_now();
    run_unet(&call);
    const double t_first = rl_bench_now() - t0;
    if (call.rc == RL_OK && rl_arena_check(&arena, &call.err) != RL_OK) call.rc = call.err.code;
    int rc = 0;
    if (call.rc != RL_OK) {
        rc = rl_cli_fail(&call.err);
        goto done;
    }
    printf("  first call    %.3f s (the arena grows to its peak)\n", t_first);
    fflush(stdout);

    enum { MAX_CALLS = 1000 };
    double *ts = malloc((size_t)(steps > MAX_CALLS ? steps : MAX_CALLS) * sizeof *ts);
    if (!ts) {
        fprintf(stderr, "reel: bench unet: out of memory\n");
        rc = RL_EXIT_ERROR;
        goto done;
    }
    // at least `steps` calls and at least min_time seconds (small models: many calls);
    // --steps 0: the first call is the only one (huge shapes), reported as the step
    int n_ts = 0;
    const double start = rl_bench_now();
    if (steps == 0) ts[n_ts++] = t_first;
    while (n_ts < steps || (steps > 0 && n_ts < MAX_CALLS && rl_bench_now() - start < min_time)) {
        t0 = rl_bench_now();
        run_unet(&call);
        ts[n_ts++] = rl_bench_now() - t0;
    }
    qsort(ts, (size_t)n_ts, sizeof *ts, cmp_double);
    const double step = ts[n_ts / 2], best = ts[0];
    free(ts);
    double finite = 0.0;
    for (size_t i = 0; i < (size_t)N * c->out_channels * F * H * W; i++) finite += call.out[i];
    if (!isfinite(finite)) fprintf(stderr, "reel: bench unet: warning: the output is not finite\n");

    if (steps == 0) printf("  step          %.4f s (the first call: --steps 0)\n", step);
    else printf("  step          %.4f s (median of %d; fastest %.4f s)\n", step, n_ts, best);
    printf("  rate          %.1f GFLOP/s (%.1f per thread)\n", total / step / 1e9,
           total / step / 1e9 / nt);
    printf("  memory        arena peak %.3f GB (planned %.3f GB) + weights %.3f GB = %.3f GB; "
           "process max RSS %.3f GB\n", gb((double)arena.peak), gb(plan), gb(w_bytes),
           gb((double)arena.peak + w_bytes), gb(max_rss_bytes()));
    fflush(stdout);

    if (vs_torch) {
        // free reel's copy first: both full-size models at once would double the memory
        rl_arena_free(&arena);
        model_free(&m);
        double tt = run_torch(dir, size, F, steps == 0 ? 0 : n_ts, nt, total / 1e9);
        if (tt > 0.0)
            printf("  ratio         torch / reel = %.2f (reel is %.2fx %s)\n", tt / step,
                   tt > step ? tt / step : step / tt, tt > step ? "faster" : "slower");
    }

done:
    free(call.x);
    free(call.out);
    free(call.emb);
    rl_arena_free(&arena);
    model_free(&m);
    return rc;
}

// ---- reel bench clip --------------------------------------------------------------------------

/* The public API's pipeline is in libreel when core/pipeline.c is (core/meson.build compiles
 * it once it exists). */
#if defined(RL_HAVE_CMD_GENERATE) || __has_include("core/pipeline.c")
#define HAVE_PIPELINE 1
#include "core/reel.h"
#include "io/video.h"
#endif

static const char clip_usage[] =
    "usage: reel bench clip [--model DIR] [options]\n"
    "\n"
    "Times one whole clip through the public API (core/reel.h): text encoding, the denoising\n"
    "loop with classifier-free guidance, VAE decode frame by frame, and H.264 MP4 writing, each\n"
    "phase on its own line; the MP4 goes to a temporary file that is removed afterwards.\n"
    "\n"
    "options:\n"
    "  --model DIR     a model folder in diffusers layout (default " DEFAULT_MODEL ")\n"
    "  --prompt TEXT   (default \"a red circle moving right\")\n"
    "  --frames N      (default 16)\n"
    "  --steps N       denoising steps (default 25)\n"
    "  --guidance G    classifier-free guidance scale (default: the default preset's, 3)\n"
    "  --size PIXELS   width and height (default: the model's native size)\n"
    "  --seed N        (default 0)\n"
    "  --fps N         frames per second of the MP4 (default 8)\n"
    "  --threads N     threads (default: all cores)\n"
    "  --out FILE.mp4  keep the clip there instead of a temporary file\n"
    "  -h, --help      this text\n"
    "\n"
    "example:\n"
    "  reel bench clip --model tests/fixtures/models/tiny_a --threads 2\n"
    "\n"
    "exit status: 0 done, 2 bad option, 3 file error, 4 bad model, 5 codec, 1 other failure\n";

#ifdef HAVE_PIPELINE
/* Phase boundaries, taken from the pipeline's callbacks. */
typedef struct {
    double t_encode;          // ENCODE progress: text encoding starts
    double t_noise;           // on_step(-1): initial latents drawn, denoising starts
    double t_denoised;        // on_step of the last step
    double t_write;           // seconds inside on_frame (MP4 encoding)
    int n_steps;
    const char *path;
    int fps;
    rl_video *video;
    rl_status vrc;
    rl_err verr;
} clip_timer;

static int clip_progress(void *user, rl_phase phase, int i, int n)
{
    clip_timer *c = user;
    if (phase == RL_PHASE_ENCODE && c->t_encode == 0.0) c->t_encode = rl_bench_now();
    return 0;
}

static int clip_step(void *user, int step, int t, const float *eps, const float *latents)
{
    clip_timer *c = user;
    if (step < 0) c->t_noise = rl_bench_now();
    else {
        c->t_denoised = rl_bench_now();
        c->n_steps = step + 1;
    }
    return 0;
}

static int clip_frame(void *user, int frame, const uint8_t *rgb, int width, int height)
{
    clip_timer *c = user;
    double t0 = rl_bench_now();
    if (!c->video) {
        rl_video_opts o = rl_video_default_opts();
        c->vrc = rl_video_open(&c->video, c->path, width, height, c->fps, &o, &c->verr);
    }
    if (c->vrc == RL_OK) c->vrc = rl_video_push(c->video, rgb, &c->verr);
    c->t_write += rl_bench_now() - t0;
    return c->vrc != RL_OK;   // cancels the clip when the writer failed
}
#endif

int rl_bench_clip(int argc, char **argv)
{
    const char *model_dir = DEFAULT_MODEL, *prompt = "a red circle moving right", *out = NULL;
    int frames = 16, steps = 25, size = 0, fps = 8, threads = 0;
    unsigned long long seed = 0;
    double guidance = rl_preset_default().guidance;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") && i + 1 < argc) {
            model_dir = argv[++i];
        } else if (!strcmp(a, "--prompt") && i + 1 < argc) {
            prompt = argv[++i];
        } else if (!strcmp(a, "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(a, "--frames") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--frames", 1, 1024, &frames)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--steps") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--steps", 1, 1000, &steps)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--size") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--size", 8, 8192, &size)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--fps") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--fps", 1, 240, &fps)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--threads", 1, 1024, &threads)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--guidance") && i + 1 < argc) {
            if (rl_cli_double(argv[++i], "--guidance", 1.0, 100.0, &guidance)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            if (rl_cli_u64(argv[++i], "--seed", &seed)) return RL_EXIT_USAGE;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(clip_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "reel bench clip: unknown option '%s'\n\n%s", a, clip_usage);
            return RL_EXIT_USAGE;
        }
    }
#ifndef HAVE_PIPELINE
    (void)model_dir; (void)prompt; (void)out; (void)frames; (void)steps; (void)size; (void)fps;
    (void)threads; (void)seed; (void)guidance;
    fprintf(stderr, "reel: bench clip: the generation pipeline (core/pipeline.c) is not in this "
            "build\n");
    return RL_EXIT_ERROR;
#else
    if (out && rl_video_kind_of(out) != RL_VIDEO_MP4) {
        fprintf(stderr, "reel: bench clip: --out %s: expected a .mp4 file name\n", out);
        return RL_EXIT_USAGE;
    }
    char tmpdir[] = "/tmp/reel-bench-XXXXXX", tmppath[64];
    if (!out) {
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "reel: bench clip: cannot make a temporary folder: %s\n",
                    strerror(errno));
            return RL_EXIT_IO;
        }
        snprintf(tmppath, sizeof tmppath, "%s/clip.mp4", tmpdir);
    }
    rl_par_set_threads(threads);
    const int nt = rl_par_threads();
    rl_err err = { 0 };
    rl_ctx *ctx = NULL;
    int rc = 0;
    double t0 = rl_bench_now();
    if (rl_ctx_open(&ctx, model_dir, nt, &err) != RL_OK) {
        rc = rl_cli_fail(&err);
        goto done;
    }
    const double t_open = rl_bench_now() - t0;
    const rl_model_info info = rl_ctx_info(ctx);
    if (!size) size = info.sample_size * info.vae_scale;

    clip_timer ct = { .path = out ? out : tmppath, .fps = fps };
    rl_gen_params p = rl_gen_default_params();
    p.prompt = prompt;
    p.frames = frames;
    p.steps = steps;
    p.width = p.height = size;
    p.guidance = (float)guidance;
    p.seed = seed;
    p.progress = clip_progress;
    p.progress_user = &ct;
    p.on_step = clip_step;
    p.step_user = &ct;
    p.on_frame = clip_frame;
    p.frame_user = &ct;

    printf("reel bench clip: %s, %d thread%s (load average %.1f on %ld cores at the start)\n",
           model_dir, nt, nt == 1 ? "" : "s", load1(), sysconf(_SC_NPROCESSORS_ONLN));
    printf("  clip          \"%s\": %d frames %dx%d, %d steps, guidance %.1f%s, seed %llu\n",
           prompt, frames, size, size, steps, guidance, guidance > 1.0 ? " (CFG: batch 2)" : "",
           seed);
    printf("  open          %.3f s (model load, not part of the clip)\n", t_open);
    fflush(stdout);

    t0 = rl_bench_now();
    rl_status grc = rl_generate(ctx, &p, &err);
    const double t_gen = rl_bench_now() - t0;
    if (grc != RL_OK) {
        if (ct.vrc != RL_OK) err = ct.verr;   // cancelled because the writer failed
        rl_video_abort(&ct.video);
        rc = rl_cli_fail(&err);
        goto done;
    }
    double tc = rl_bench_now();
    if (rl_video_close(&ct.video, &err) != RL_OK) {
        rc = rl_cli_fail(&err);
        goto done;
    }
    const double t_close = rl_bench_now() - tc, t_end = t0 + t_gen;
    struct stat st;
    const long long bytes = stat(ct.path, &st) == 0 ? (long long)st.st_size : -1;

    const double setup = ct.t_encode - t0, encode = ct.t_noise - ct.t_encode;
    const double denoise = ct.t_denoised - ct.t_noise;
    const double decode = t_end - ct.t_denoised - ct.t_write, write = ct.t_write + t_close;
    const double total = t_gen + t_close, video_s = (double)frames / fps;
    printf("  setup         %.3f s (arena, scheduler)\n", setup);
    printf("  encode        %.3f s (text encoder: prompt and negative prompt)\n", encode);
    printf("  denoise       %.3f s (%d steps, %.3f s per step)\n", denoise, ct.n_steps,
           ct.n_steps ? denoise / ct.n_steps : 0.0);
    printf("  decode        %.3f s (VAE, %d frames, %.1f ms per frame)\n", decode, frames,
           1e3 * decode / frames);
    printf("  write         %.3f s (H.264 MP4, %lld bytes%s%s)\n", write, bytes,
           out ? ": " : ", removed", out ? out : "");
    printf("  total         %.3f s for %.2f s of video at %d fps: %.2fx real time\n", total,
           video_s, fps, video_s / total);
    printf("  memory        process max RSS %.3f GB\n", gb(max_rss_bytes()));

done:
    rl_ctx_close(&ctx);
    if (!out) {
        unlink(tmppath);
        rmdir(tmpdir);
    }
    return rc;
#endif
}
