/* io/atomic.c - write-to-partial-then-rename, see atomic.h. */
#include "io/atomic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

rl_status rl_atomic_open(rl_atomic_file *f, const char *path, rl_err *err)
{
    *f = (rl_atomic_file){ 0 };
    size_t n = strlen(path);
    f->path = strdup(path);
    f->tmp = malloc(n + sizeof ".partial");
    if (!f->path || !f->tmp) {
        rl_atomic_abort(f);
        return rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
    }
    memcpy(f->tmp, path, n);
    memcpy(f->tmp + n, ".partial", sizeof ".partial");
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) {
        rl_status rc = rl_errf(err, RL_E_IO, "%s: cannot create: %s", path, strerror(errno));
        free(f->tmp);   // nothing was created: do not unlink someone else's file
        f->tmp = NULL;
        rl_atomic_abort(f);
        return rc;
    }
    return RL_OK;
}

rl_status rl_atomic_write(rl_atomic_file *f, const void *buf, size_t n, rl_err *err)
{
    if (n && fwrite(buf, 1, n, f->fp) != n)
        return rl_errf(err, RL_E_IO, "%s: write failed: %s", f->path, strerror(errno));
    return RL_OK;
}

rl_status rl_atomic_commit(rl_atomic_file *f, rl_err *err)
{
    rl_status rc = RL_OK;
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)
        rc = rl_errf(err, RL_E_IO, "%s: write failed: %s", f->path, strerror(errno));
    if (fclose(f->fp) != 0 && !rc)
        rc = rl_errf(err, RL_E_IO, "%s: write failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (!rc && rename(f->tmp, f->path) != 0)
        rc = rl_errf(err, RL_E_IO, "%s: cannot rename from %s: %s", f->path, f->tmp,
                     strerror(errno));
    if (rc) {
        rl_atomic_abort(f);
        return rc;
    }
    free(f->tmp);
    free(f->path);
    *f = (rl_atomic_file){ 0 };
    return RL_OK;
}

void rl_atomic_abort(rl_atomic_file *f)
{
    if (f->fp) fclose(f->fp);
    if (f->tmp) unlink(f->tmp);
    free(f->tmp);
    free(f->path);
    *f = (rl_atomic_file){ 0 };
}

rl_status rl_atomic_write_file(const char *path, const void *buf, size_t n, rl_err *err)
{
    rl_atomic_file f;
    rl_status rc = rl_atomic_open(&f, path, err);
    if (rc) return rc;
    if ((rc = rl_atomic_write(&f, buf, n, err))) {
        rl_atomic_abort(&f);
        return rc;
    }
    return rl_atomic_commit(&f, err);
}
