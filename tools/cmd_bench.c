/* tools/cmd_bench.c - `reel bench`: speed and memory, printed as figures.
 *
 *   reel bench ops     GFLOP/s of sgemm (the machine's measured matmul peak), linear, conv2d
 *                      3x3 and attention at the shapes the models use, each with its ratio to
 *                      the sgemm rate at the same FLOP count.
 *   reel bench unet    seconds per UNet step (CFG batch) and peak memory (see bench_unet.c).
 *   reel bench clip    a whole default clip: encode, denoise, decode, MP4.
 *   reel bench shapes  clips per second of the shapes-world generator (what feeds training).
 *
 * Timing: each case runs until at least --min-time seconds have passed (and at least 3
 * runs); the median run is reported. Run it on an otherwise idle machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#include "core/ops.h"
#include "core/par.h"
#include "tools/shapes/render.h"
#include "tools/shapes/world.h"
#include "tools/bench.h"
#include "tools/cli.h"

static const char usage_text[] =
    "usage: reel bench ops|unet|clip [options]\n"
    "\n"
    "  ops    GFLOP/s of matmul (BLAS sgemm: the measured peak), linear, conv2d 3x3 and\n"
    "         attention (spatial: long sequences; temporal: 16 frames) at model shapes, each\n"
    "         with its ratio to sgemm at the same FLOP count\n"
    "  unet   seconds per UNet step with classifier-free guidance, and peak memory\n"
    "  clip   one whole default clip: text encoding, DDIM loop, VAE decode, MP4\n"
    "  shapes clips per second of the shapes-world generator (sample + caption + render\n"
    "         16 frames of 64x64 as floats, as the trainer draws them)\n"
    "\n"
    "options:\n"
    "  --threads N     threads (default: all cores)\n"
    "  --min-time S    seconds per case, at least (default 0.5)\n"
    "  --quick         smaller shapes (a smoke run)\n"
    "  -h, --help      this text\n"
    "(reel bench unet --help lists the UNet options)\n"
    "\n"
    "example:\n"
    "  reel bench ops --threads 2\n";

double rl_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double rl_bench_median(void (*fn)(void *), void *ctx, double min_time)
{
    enum { MAX_RUNS = 1000 };
    double t[MAX_RUNS];
    int n = 0;
    fn(ctx);   // warm-up: page faults, BLAS buffers
    double start = rl_bench_now();
    while (n < MAX_RUNS && (n < 3 || rl_bench_now() - start < min_time)) {
        double t0 = rl_bench_now();
        fn(ctx);
        t[n++] = rl_bench_now() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return t[n / 2];
}

float *rl_bench_floats(size_t n, unsigned seed)
{
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "reel: bench: out of memory (%zu floats)\n", n);
        exit(RL_EXIT_ERROR);
    }
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return p;
}

// ---- cases ------------------------------------------------------------------------------

typedef struct {
    int M, N, K;
    float *A, *B, *C;
} gemm_case;

static void run_gemm(void *p)
{
    gemm_case *g = p;
    rl_gemm(0, 1, g->M, g->N, g->K, 1.0f, g->A, g->K, g->B, g->K, 0.0f, g->C, g->N);
}

static double gemm_rate(int M, int N, int K, double min_time)
{
    gemm_case g = { M, N, K, rl_bench_floats((size_t)M * K, 1), rl_bench_floats((size_t)N * K, 2),
                    rl_bench_floats((size_t)M * N, 3) };
    double t = rl_bench_median(run_gemm, &g, min_time);
    free(g.A);
    free(g.B);
    free(g.C);
    return 2.0 * M * N * K / t / 1e9;
}

typedef struct {
    rl_conv_shape s;
    float *x, *w, *b, *out, *scratch;
} conv_case;

static void run_conv(void *p)
{
    conv_case *c = p;
    rl_conv2d_fwd(c->out, c->scratch, c->x, c->w, c->b, &c->s);
}

typedef struct {
    int B, NH, T, HS, chunk;
    float *q, *k, *v, *out, *scratch;
} attn_case;

static void run_attn(void *p)
{
    attn_case *a = p;
    rl_attn_fwd_chunked(a->out, a->scratch, a->q, a->k, a->v, a->B, a->NH, a->T, a->T, a->HS,
                        1.0f / sqrtf((float)a->HS), 0, a->chunk);
}

static void row(const char *name, const char *shape, double flops, double secs, double peak)
{
    double rate = flops / secs / 1e9;
    printf("  %-22s %-34s %9.3f ms %8.1f GFLOP/s %6.0f%% of sgemm\n", name, shape, secs * 1e3,
           rate, 100.0 * rate / peak);
}

static int bench_ops(int quick, double min_time)
{
    int nt = rl_par_threads();
    printf("reel bench ops: %d thread%s\n\n", nt, nt == 1 ? "" : "s");

    // the machine's matmul peak: a large square sgemm
    int P = quick ? 512 : 1536;
    double peak = gemm_rate(P, P, P, min_time);
    printf("  %-22s %-34s %21.1f GFLOP/s   (the reference rate)\n", "sgemm (peak)",
           quick ? "512 x 512 x 512" : "1536 x 1536 x 1536", peak);

    // linear at the UNet's shapes: tokens x channels (SD 1.5 level 1 at 32x32 latents)
    {
        int T = quick ? 1024 : 2 * 16 * 1024, C = 320, OC = 320;
        double secs = 2.0 * T * C * OC / (gemm_rate(T, OC, C, min_time) * 1e9);
        char sh[64];
        snprintf(sh, sizeof sh, "T %d, C %d -> %d", T, C, OC);
        row("linear", sh, 2.0 * T * C * OC, secs, peak);
    }

    // conv2d 3x3 at the default model's and at SD 1.5's shapes
    static const int convs[][4] = { { 32, 64, 16, 16 }, { 32, 128, 8, 8 }, { 32, 320, 32, 32 } };
    for (int i = 0; i < 3; i++) {
        int N = convs[i][0], C = convs[i][1], H = convs[i][2], W = convs[i][3];
        if (quick && i == 2) continue;
        conv_case c;
        c.s = rl_conv_shape_make(N, C, H, W, C, 3, 3, 1, 1);
        c.x = rl_bench_floats((size_t)N * C * H * W, 4);
        c.w = rl_bench_floats((size_t)C * C * 9, 5);
        c.b = rl_bench_floats((size_t)C, 6);
        c.out = rl_bench_floats((size_t)N * C * H * W, 7);
        c.scratch = rl_bench_floats(rl_conv2d_scratch_floats(&c.s, rl_par_max_threads()) + 1, 8);
        double secs = rl_bench_median(run_conv, &c, min_time);
        double flops = 2.0 * N * C * H * W * C * 9;
        char sh[64];
        snprintf(sh, sizeof sh, "N %d, C %d -> %d, %dx%d", N, C, C, H, W);
        row("conv2d 3x3", sh, flops, secs, peak);
        free(c.x); free(c.w); free(c.b); free(c.out); free(c.scratch);
    }

    // attention: spatial (one frame's positions, long sequence) and temporal (16 frames at
    // every position: a huge batch of tiny sequences)
    static const int attns[][4] = {   // B, NH, T, HS
        { 32, 8, 256, 40 },     // SD 1.5 level 1 at 128x128 pixels: 16x16 latent tokens
        { 2, 8, 1024, 40 },     // 256x256 pixels: 32x32 latent tokens, one frame pair
        { 2 * 256, 8, 16, 40 }, // temporal: 2 x 16x16 positions, 16 frames
        { 2 * 256, 2, 16, 32 }, // temporal, the default model's width
    };
    for (int i = 0; i < 4; i++) {
        attn_case a = { .B = attns[i][0], .NH = attns[i][1], .T = attns[i][2], .HS = attns[i][3], .chunk = 256 };
        if (quick && i == 1) continue;
        size_t n = (size_t)a.B * a.T * a.NH * a.HS;
        a.q = rl_bench_floats(n, 9);
        a.k = rl_bench_floats(n, 10);
        a.v = rl_bench_floats(n, 11);
        a.out = rl_bench_floats(n, 12);
        a.scratch = rl_bench_floats(
            rl_attn_chunked_scratch_floats(a.T, a.T, a.HS, a.chunk, rl_par_max_threads()) + 1, 13);
        double secs = rl_bench_median(run_attn, &a, min_time);
        double flops = 4.0 * a.B * a.NH * a.T * a.T * a.HS;   // QK^T and PV
        char sh[64];
        snprintf(sh, sizeof sh, "B %d, heads %d, T %d, HS %d", a.B, a.NH, a.T, a.HS);
        row(a.T <= 32 ? "attention (temporal)" : "attention (spatial)", sh, flops, secs, peak);
        free(a.q); free(a.k); free(a.v); free(a.out); free(a.scratch);
    }
    printf("\n  FLOPs: matmul 2MNK; conv 2 N OC Ho Wo C KH KW; attention 4 B NH T^2 HS "
           "(softmax not counted).\n");
    return 0;
}

// ---- the shapes-world generator ---------------------------------------------------------------

enum { SHAPES_F = 16, SHAPES_SIDE = 64, SHAPES_BATCH = 256 };

typedef struct {
    float *buf;          // (threads, 3, F, H, W)
    uint64_t next;       // clip index of the batch's first clip
} shapes_job;

static void shapes_one(void *ctx, int i)
{
    shapes_job *j = ctx;
    rl_shapes_spec sp;
    char cap[256];
    rl_shapes_sample(&sp, 1, j->next + (uint64_t)i, RL_SHAPES_TRAIN);
    rl_shapes_spec_caption(cap, sizeof cap, &sp);
    float *out = j->buf + (size_t)rl_par_thread_id() * 3 * SHAPES_F * SHAPES_SIDE * SHAPES_SIDE;
    rl_shapes_render_f32(out, &sp, SHAPES_F, SHAPES_SIDE, SHAPES_SIDE);
}

static void shapes_batch(void *ctx)
{
    shapes_job *j = ctx;
    rl_par_for(SHAPES_BATCH, shapes_one, j);
    j->next += SHAPES_BATCH;
}

static int bench_shapes(int argc, char **argv)
{
    int threads = 0;
    double min_time = 0.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--threads", 1, 1024, &threads)) return RL_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            if (rl_cli_double(argv[++i], "--min-time", 0.0, 60.0, &min_time)) return RL_EXIT_USAGE;
        } else {
            fprintf(stderr, "reel bench shapes: unknown option '%s' (--threads N, --min-time S)\n",
                    argv[i]);
            return RL_EXIT_USAGE;
        }
    }
    rl_par_set_threads(threads);
    shapes_job j = {0};
    j.buf = rl_bench_floats((size_t)rl_par_max_threads() * 3 * SHAPES_F * SHAPES_SIDE * SHAPES_SIDE, 3);
    double secs = rl_bench_median(shapes_batch, &j, min_time);
    printf("reel bench shapes: %d threads\n\n", rl_par_threads());
    printf("  shapes world: batches of %d clips of %d frames, %dx%d, sampled, captioned, rendered as floats\n",
           SHAPES_BATCH, SHAPES_F, SHAPES_SIDE, SHAPES_SIDE);
    printf("  %.3f ms per batch   %.0f clips/s   %.0f frames/s\n", secs * 1e3, SHAPES_BATCH / secs,
           SHAPES_BATCH * SHAPES_F / secs);
    free(j.buf);
    return 0;
}

int rl_cmd_bench(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? RL_EXIT_USAGE : 0;
    }
    const char *what = argv[1];
#ifdef RL_HAVE_BENCH_MODELS
    if (!strcmp(what, "unet")) return rl_bench_unet(argc - 1, argv + 1);
    if (!strcmp(what, "clip")) return rl_bench_clip(argc - 1, argv + 1);
#endif
    if (!strcmp(what, "shapes")) return bench_shapes(argc - 1, argv + 1);
    if (strcmp(what, "ops") != 0) {
        fprintf(stderr, "reel bench: unknown benchmark '%s'\n\n%s", what, usage_text);
        return RL_EXIT_USAGE;
    }
    int threads = 0, quick = 0;
    double min_time = 0.5;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if (rl_cli_int(argv[++i], "--threads", 1, 1024, &threads)) return RL_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            if (rl_cli_double(argv[++i], "--min-time", 0.0, 60.0, &min_time)) return RL_EXIT_USAGE;
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "reel bench: unknown option '%s'\n\n%s", argv[i], usage_text);
            return RL_EXIT_USAGE;
        }
    }
    rl_par_set_threads(threads);
    return bench_ops(quick, min_time);
}
