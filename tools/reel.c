/* tools/reel.c - the reel command line: dispatches to the cmd_*.c subcommands.
 *
 * This is the only place in reel that exits: subcommands return an exit status, library
 * errors are printed as "reel: <message>" and mapped to a status by rl_exit_code(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
#ifdef RL_HAVE_CMD_GENERATE
    { "generate", rl_cmd_generate, "make a clip from a prompt (MP4, WebM, GIF or PNG frames)" },
#endif
#ifdef RL_HAVE_CMD_TRAVEL
    { "travel", rl_cmd_travel, "prompt travel: prompts at keyframes, interpolated per frame" },
#endif
#ifdef RL_HAVE_CMD_TRAIN
    { "train", rl_cmd_train, "train the default model's VAE, CLIP pair or UNet" },
#endif
#ifdef RL_HAVE_CMD_EVAL
    { "eval", rl_cmd_eval, "measure a model's prompt adherence on the shapes world" },
#endif
#ifdef RL_HAVE_CMD_BENCH
    { "bench", rl_cmd_bench, "benchmarks: ops GFLOP/s, UNet step time, whole clip" },
#endif
#ifdef RL_HAVE_CMD_INFO
    { "info", rl_cmd_info, "what a model folder, safetensors file or clip holds" },
#endif
#ifdef RL_HAVE_CMD_CONVERT
    { "convert", rl_cmd_convert, "rewrite a model folder's weights as F16, BF16 or F32" },
#endif
#ifdef RL_HAVE_CMD_SHAPES
    { "shapes", rl_cmd_shapes, "render sample clips of the shapes world" },
#endif
    { NULL, NULL, NULL },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: reel <command> [options]\n\n"
               "reel turns a text prompt into a short video clip with a text-to-video diffusion\n"
               "model (a CLIP text encoder, a spatio-temporal UNet with AnimateDiff motion\n"
               "modules, a VAE), in the diffusers folder layout.\n\ncommands:\n");
    for (const command *c = commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n'reel <command> --help' explains each command's options.\n");
}

/* OpenMP threads that spin while they wait make reel many times slower as soon as another
 * process wants the same cores (measured on 2 cores with one other busy process: a tiny UNet
 * step 3.9 s spinning vs 0.047 s passive; idle, passive costs about 10%). libgomp reads the
 * policy when it loads, before main, so the process re-executes itself once with it set.
 * A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone. */
static void passive_openmp(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv);
    // exec failed (no /proc): carry on with the default policy
}

int main(int argc, char **argv)
{
    passive_openmp(argv);
    if (argc < 2) {
        usage(stderr);
        return RL_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("reel %s\n", RL_VERSION);
        return 0;
    }
    for (const command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->run(argc - 1, argv + 1);
    fprintf(stderr, "reel: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return RL_EXIT_USAGE;
}
