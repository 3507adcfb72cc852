/* tools/cli.c - exit codes and error printing shared by the subcommands. */
#include "tools/cli.h"

#include <stdio.h>

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
