/* io/file.c - whole-file reads with a size limit (see file.h). */
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

rl_status rl_file_read(const char *path, size_t limit, const char *what, char **text,
                       size_t *len, rl_err *err)
{
    rl_status rc;
    char *buf = NULL;
    int fd = -1;
    *text = NULL;
    *len = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = rl_errf(err, errno == ENOENT ? RL_E_MISSING : RL_E_IO, "%s: cannot open: %s", path,
                     strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = rl_errf(err, RL_E_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = rl_errf(err, RL_E_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > limit) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: %lld bytes exceeds the %zu-byte limit for %s files",
                     path, (long long)st.st_size, limit, what);
        goto fail;
    }
    size_t size = (size_t)st.st_size, got = 0;
    buf = malloc(size + 1);
    if (!buf) {
        rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory for %zu bytes", path, size);
        goto fail;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = rl_errf(err, RL_E_IO, "%s: read failed: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0) break;     // file shrank while reading: what is there
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return RL_OK;

fail:
    if (fd >= 0) close(fd);
    free(buf);
    return rc;
}
