/* tools/cli.c - exit codes and error printing shared by the subcommands. */
#include "tools/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int rl_exit_code(rl_status s)
{
    switch (s) {
    case RL_OK: return RL_EXIT_OK;
    case RL_E_PARAM: return RL_EXIT_USAGE;
    case RL_E_IO: return RL_EXIT_IO;
    case RL_E_FORMAT: case RL_E_MISSING: case RL_E_SHAPE: return RL_EXIT_MODEL;
    case RL_E_CODEC: return RL_EXIT_CODEC;
    case RL_E_INTERRUPTED: return RL_EXIT_INTERRUPTED;
    case RL_E_NOMEM: case RL_E_INTERNAL: break;
    }
    return RL_EXIT_ERROR;
}

int rl_cli_fail(const rl_err *err)
{
    fprintf(stderr, "reel: %s\n", err->msg[0] ? err->msg : rl_status_str(err->code));
    return rl_exit_code(err->code);
}

int rl_cli_int(const char *s, const char *opt, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "reel: %s must be a whole number from %d to %d, not '%s'\n", opt, lo, hi, s);
        return 1;
    }
    *out = (int)v;
    return 0;
}

int rl_cli_double(const char *s, const char *opt, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "reel: %s must be a number from %g to %g, not '%s'\n", opt, lo, hi, s);
        return 1;
    }
    *out = v;
    return 0;
}

int rl_cli_u64(const char *s, const char *opt, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '+') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "reel: %s must be a whole number from 0 to 18446744073709551615, not '%s'\n",
            opt, s);
    return 1;
}
