/* tools/cli.h - what the reel subcommands share: exit codes, error printing, entry points. */
#ifndef RL_TOOLS_CLI_H
#define RL_TOOLS_CLI_H

#include "core/err.h"

#ifndef RL_VERSION
#define RL_VERSION "0.1.0"
#endif

/* Exit statuses (documented in README.md and every --help). */
enum {
    RL_EXIT_OK = 0,
    RL_EXIT_ERROR = 1,      // generic failure (internal, out of memory)
    RL_EXIT_USAGE = 2,      // bad command line: unknown option, impossible value
    RL_EXIT_IO = 3,         // a file could not be read or written
    RL_EXIT_MODEL = 4,      // a model file or folder is malformed, incomplete or mismatched
    RL_EXIT_CODEC = 5,      // the video encoder refused
    RL_EXIT_INTERRUPTED = 130,
};

/* Maps a library status to an exit status. */
int rl_exit_code(rl_status s);
/* Prints "reel: <msg>" to stderr and returns rl_exit_code(err->code). */
int rl_cli_fail(const rl_err *err);

/* Parses a whole decimal number in [lo, hi] for option opt; prints "reel: <opt> ..." and
 * returns non-zero when it is not one. */
int rl_cli_int(const char *s, const char *opt, int lo, int hi, int *out);
int rl_cli_double(const char *s, const char *opt, double lo, double hi, double *out);
int rl_cli_u64(const char *s, const char *opt, unsigned long long *out);

int rl_cmd_generate(int argc, char **argv);
int rl_cmd_travel(int argc, char **argv);
int rl_cmd_train(int argc, char **argv);
int rl_cmd_eval(int argc, char **argv);
int rl_cmd_bench(int argc, char **argv);
int rl_cmd_info(int argc, char **argv);
int rl_cmd_shapes(int argc, char **argv);
int rl_cmd_convert(int argc, char **argv);

#endif
