/* core/err.c - rl_errf and status names. */
#include "core/err.h"

#include <stdarg.h>
#include <string.h>

rl_status rl_errf(rl_err *err, rl_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

rl_status rl_err_prefix(rl_err *err, const char *fmt, ...)
{
    if (!err) return RL_E_INTERNAL;
    char pre[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    // a message too long for msg loses its tail, never its head
    snprintf(err->msg, sizeof err->msg, "%.255s: %.*s", pre, (int)(sizeof err->msg - 258), old);
    return err->code;
}

const char *rl_status_str(rl_status s)
{
    switch (s) {
    case RL_OK: return "ok";
    case RL_E_IO: return "i/o error";
    case RL_E_FORMAT: return "malformed file";
    case RL_E_MISSING: return "missing";
    case RL_E_SHAPE: return "wrong shape or dtype";
    case RL_E_PARAM: return "invalid parameter";
    case RL_E_NOMEM: return "out of memory";
    case RL_E_CODEC: return "codec error";
    case RL_E_INTERRUPTED: return "interrupted";
    case RL_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}
