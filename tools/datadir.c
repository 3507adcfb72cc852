/* tools/datadir.c - reel's data folders (see datadir.h). */
#include "tools/datadir.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rl_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *rl_data_path(const char *rel, char *buf, size_t cap)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        static const char *const up[] = { "/../..", "/..", "/../share/reel" };
        for (size_t i = 0; i < sizeof up / sizeof up[0]; i++) {
            snprintf(buf, cap, "%s%s/%s", exe, up[i], rel);
            if (rl_is_dir(buf)) {
                char real[PATH_MAX];      // "/opt/reel/presets/..." rather than ".../bin/../.."
                if (realpath(buf, real) && strlen(real) < cap) memcpy(buf, real, strlen(real) + 1);
                return buf;
            }
        }
    }
    snprintf(buf, cap, "%s", rel);
    return buf;
}
