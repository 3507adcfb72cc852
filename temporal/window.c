/* temporal/window.c - context windows (see window.h). */
#include "temporal/window.h"

#include <stdlib.h>
#include <string.h>

void rl_windows_free(rl_windows *w)
{
    free(w->idx);
    free(w->weight);
    *w = (rl_windows){ 0 };
}

rl_status rl_windows_plan(rl_windows *w, int F, int context, int overlap, int loop, rl_err *err)
{
    *w = (rl_windows){ 0 };
    if (F < 1) return rl_errf(err, RL_E_PARAM, "context windows: %d frames: expected >= 1", F);
    if (context < 1)
        return rl_errf(err, RL_E_PARAM, "context windows: context %d: expected >= 1", context);
    if (overlap < 0 || overlap >= context)
        return rl_errf(err, RL_E_PARAM, "context windows: overlap %d: expected 0..%d (less than "
                       "the context of %d frames)", overlap, context - 1, context);
    const int len = context < F ? context : F, stride = context - overlap;
    int n;
    if (len == F) n = 1;                                   // the clip fits one window
    else if (loop) n = (F + stride - 1) / stride;          // starts 0, stride, ... < F
    else n = (F - len + stride - 1) / stride + 1;          // last start clamped to F - len

    w->F = F; w->len = len; w->n = n;
    w->idx = malloc((size_t)n * len * sizeof *w->idx);
    w->weight = malloc((size_t)n * len * sizeof *w->weight);
    double *sum = calloc((size_t)F, sizeof *sum);
    if (!w->idx || !w->weight || !sum) {
        free(sum);
        rl_windows_free(w);
        return rl_errf(err, RL_E_NOMEM, "context windows: out of memory for %d windows", n);
    }
    for (int k = 0; k < n; k++) {
        int start = k * stride;
        if (!loop && start > F - len) start = F - len;
        for (int j = 0; j < len; j++) {
            int f = (start + j) % F;
            int r = j + 1 < len - j ? j + 1 : len - j;     // pyramid
            w->idx[(size_t)k * len + j] = f;
            w->weight[(size_t)k * len + j] = (float)r;
            sum[f] += r;
        }
    }
    for (size_t i = 0; i < (size_t)n * len; i++)
        w->weight[i] = (float)(w->weight[i] / sum[w->idx[i]]);
    free(sum);
    return RL_OK;
}

void rl_windows_gather(float *restrict dst, const float *restrict src, const rl_windows *w, int k,
                       int C, int S)
{
    const int *idx = w->idx + (size_t)k * w->len;
    for (int c = 0; c < C; c++)
        for (int j = 0; j < w->len; j++)
            memcpy(dst + ((size_t)c * w->len + j) * S, src + ((size_t)c * w->F + idx[j]) * S,
                   (size_t)S * sizeof *dst);
}

void rl_windows_accum(float *restrict dst, const float *restrict src, const rl_windows *w, int k,
                      int C, int S)
{
    const int *idx = w->idx + (size_t)k * w->len;
    const float *wt = w->weight + (size_t)k * w->len;
    // a window holds each frame once (len <= F), so (c, j) pairs write disjoint rows
    #pragma omp parallel for collapse(2) schedule(static)
    for (int c = 0; c < C; c++)
        for (int j = 0; j < w->len; j++) {
            float *d = dst + ((size_t)c * w->F + idx[j]) * S;
            const float *s = src + ((size_t)c * w->len + j) * S;
            for (int i = 0; i < S; i++) d[i] += wt[j] * s[i];
        }
}
