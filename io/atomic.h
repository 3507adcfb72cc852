/* io/atomic.h - "nothing half-written": output files are written to "<path>.partial" in the
 * target folder and renamed over <path> only when complete; on any failure the partial file is
 * removed. Every writer in reel (safetensors, configs, checkpoints) goes through this helper. */
#ifndef RL_IO_ATOMIC_H
#define RL_IO_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

typedef struct {
    FILE *fp;
    char *path;      // final name
    char *tmp;       // <path>.partial
} rl_atomic_file;

/* Creates <path>.partial for writing. Errors: RL_E_IO naming the folder (missing, unwritable). */
rl_status rl_atomic_open(rl_atomic_file *f, const char *path, rl_err *err);
rl_status rl_atomic_write(rl_atomic_file *f, const void *buf, size_t n, rl_err *err);
/* Flushes, fsyncs, closes and renames over path. After it, rl_atomic_abort is a no-op. */
rl_status rl_atomic_commit(rl_atomic_file *f, rl_err *err);
/* Closes and removes the partial file; idempotent, safe on a zeroed struct. */
void rl_atomic_abort(rl_atomic_file *f);

/* Writes a whole buffer to path atomically (config.json and other small files). */
rl_status rl_atomic_write_file(const char *path, const void *buf, size_t n, rl_err *err);

#endif
