/* core/err.h - status codes and readable error messages (SQLite/redis style).
 * Every fallible function returns rl_status and takes rl_err *err last; err may be NULL. */
#ifndef RL_CORE_ERR_H
#define RL_CORE_ERR_H

#include <stdio.h>
#include <stdlib.h>

typedef enum {
    RL_OK = 0,
    RL_E_IO,        // open/read/write/rename failed; message carries strerror(errno)
    RL_E_FORMAT,    // malformed file: safetensors header, JSON, vocab, merges
    RL_E_MISSING,   // a required tensor, file or config key is absent
    RL_E_SHAPE,     // present but wrong dtype or shape
    RL_E_PARAM,     // impossible parameter: frames = 0, size not a multiple of 8, ...
    RL_E_NOMEM,
    RL_E_CODEC,     // FFmpeg said no; message carries av_err2str()
    RL_E_INTERRUPTED, // cancelled by the caller (progress callback, Ctrl-C)
    RL_E_INTERNAL,  // a broken invariant: a bug in reel
} rl_status;

typedef struct {
    rl_status code;
    char msg[512];
} rl_err;

/* Formats msg, sets code, returns code. err may be NULL. */
rl_status rl_errf(rl_err *err, rl_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with "<prefix>: " (context added while an error passes up). Returns code. */
rl_status rl_err_prefix(rl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *rl_status_str(rl_status s);

/* Returns from the enclosing function with x's status unless it is RL_OK (bind chains). */
#define RL_TRY(x)                                                                        \
    do {                                                                                 \
        rl_status rl_try_rc_ = (x);                                                      \
        if (rl_try_rc_ != RL_OK) return rl_try_rc_;                                      \
    } while (0)

/* Invariants no input can break. Prints file, line, condition, then aborts. */
#define RL_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "reel: internal error %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#endif
