/* io/file.h - whole-file reads with a size limit, for the text files reel parses (JSON configs,
 * vocab.json, merges.txt). */
#ifndef RL_IO_FILE_H
#define RL_IO_FILE_H

#include <stddef.h>

#include "core/err.h"

/* Reads the regular file path into *text: malloc'd, owned by the caller (free), with a NUL
 * after its *len bytes. On failure *text is NULL. Errors: RL_E_MISSING (no such file),
 * RL_E_IO (cannot open, not a regular file, read failed; strerror in the message),
 * RL_E_FORMAT (more than limit bytes; `what` names the kind of file: "JSON"), RL_E_NOMEM.
 * Thread-safe. */
rl_status rl_file_read(const char *path, size_t limit, const char *what, char **text,
                       size_t *len, rl_err *err);

#endif
