/* tools/generate.h - what `reel generate` and `reel travel` share: one option parser and run
 * loop (tools/cmd_generate.c); travel adds a schedule file of keyframes (tools/cmd_travel.c). */
#ifndef RL_TOOLS_GENERATE_H
#define RL_TOOLS_GENERATE_H

#include "core/reel.h"

#define RL_GEN_MAX_KEYFRAMES 256

/* Reads a prompt-travel schedule file into kfs (at most max entries, sorted by frame); the
 * prompts point into *storage, which the caller frees. Prints one "reel: ..." line and returns
 * an exit status (tools/cli.h) on failure, 0 on success. */
typedef int (*rl_gen_schedule_fn)(const char *path, rl_keyframe *kfs, int max, int *n,
                                  char **storage);

/* Runs `reel <cmd> ...`: argv[0] is the command name. With load_schedule (travel), the one
 * positional argument is a schedule file instead of a prompt. Returns the exit status. */
int rl_gen_cli(int argc, char **argv, const char *cmd, rl_gen_schedule_fn load_schedule);

#endif
