/* tools/bench.h - timing helpers shared by the benchmarks. */
#ifndef RL_TOOLS_BENCH_H
#define RL_TOOLS_BENCH_H

#include <stddef.h>

double rl_bench_now(void);   // monotonic seconds
/* Runs fn once to warm up, then until min_time has passed (at least 3 runs); returns the
 * median run's seconds. */
double rl_bench_median(void (*fn)(void *), void *ctx, double min_time);
/* malloc'd floats in [-1, 1) from a fixed seed; exits on out of memory (benchmarks only). */
float *rl_bench_floats(size_t n, unsigned seed);

/* Model benchmarks (tools/bench_models.c): argv[0] is "unet" or "clip". */
int rl_bench_unet(int argc, char **argv);
int rl_bench_clip(int argc, char **argv);

#endif
