/* tools/progress.c - see progress.h. */
#include "tools/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tools/bench.h"

void rl_progress_init(rl_progress *p, int quiet)
{
    *p = (rl_progress){ .enabled = !quiet && isatty(STDERR_FILENO), .phase = -1 };
}

void rl_progress_update(rl_progress *p, int phase, const char *label, int i, int n,
                        const char *unit)
{
    if (!p->enabled) return;
    double now = rl_bench_now();
    if (phase != p->phase) {
        if (p->phase >= 0) fputc('\n', stderr);
        p->phase = phase;
        p->t_phase = now;
        p->t_last = 0;
        p->width = 0;
    }
    if (i < n && now - p->t_last < 0.1) return;
    p->t_last = now;

    char bar[21];
    int fill = n > 0 ? (int)(20.0 * i / n) : 20;
    for (int k = 0; k < 20; k++) bar[k] = k < fill ? '#' : '.';
    bar[20] = 0;
    double el = now - p->t_phase, rate = el > 0 && i > 0 ? i / el : 0;
    char line[160];
    int w;
    if (i >= n)
        w = snprintf(line, sizeof line, "%-13s %3d/%-3d [%s] %6.2f %s/s  done in %.1f s", label, i,
                     n, bar, rate, unit, el);
    else if (i == 0 || rate <= 0)   // no rate before the first item is done
        w = snprintf(line, sizeof line, "%-13s %3d/%-3d [%s]", label, i, n, bar);
    else
        w = snprintf(line, sizeof line, "%-13s %3d/%-3d [%s] %6.2f %s/s  %.1f s left", label, i,
                     n, bar, rate, unit, (n - i) / rate);
    fprintf(stderr, "\r%s%*s", line, p->width > w ? p->width - w : 0, "");
    p->width = w;
    fflush(stderr);
}

void rl_progress_done(rl_progress *p)
{
    if (p->enabled && p->phase >= 0) fputc('\n', stderr);
    p->phase = -1;
}
