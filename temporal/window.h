/* temporal/window.h - context windows for clips longer than the model's frame count.
 *
 * The motion modules were trained on `context` frames; a longer clip is denoised in windows of
 * that length whose noise predictions are averaged where they overlap (AnimateDiff's
 * "context scheduling", uniform schedule). Windows start every stride = context - overlap
 * frames. Without loop the last window is moved back to end at the last frame, so every window
 * is full length; with loop, windows continue past the end and wrap to frame 0, so the end
 * blends into the start (a seamless loop).
 *
 * Weights: position j of a window of length len has raw weight min(j + 1, len - j) (a
 * pyramid: the middle of a window is trusted more than its edges, so overlaps cross-fade);
 * each frame's weights are then divided by their sum over the windows that hold it, so the
 * weights of every frame sum to 1 and averaging identical predictions returns them unchanged. */
#ifndef RL_TEMPORAL_WINDOW_H
#define RL_TEMPORAL_WINDOW_H

#include "core/err.h"

typedef struct {
    int F;              // frames of the clip
    int len;            // frames per window: min(context, F)
    int n;              // windows
    int *idx;           // (n, len) clip frame of each window position
    float *weight;      // (n, len) normalised weights
} rl_windows;

/* Plans the windows. Errors (RL_E_PARAM): F < 1, context < 1, overlap < 0 or >= context.
 * RL_E_NOMEM. Free with rl_windows_free (idempotent, safe on a zeroed struct). */
rl_status rl_windows_plan(rl_windows *w, int F, int context, int overlap, int loop, rl_err *err);
void rl_windows_free(rl_windows *w);

/* dst (C, len, S) = the frames of window k taken from src (C, F, S). */
void rl_windows_gather(float *restrict dst, const float *restrict src, const rl_windows *w, int k,
                       int C, int S);
/* dst (C, F, S) += weight * src (C, len, S) for window k. Zero dst, then add every window. */
void rl_windows_accum(float *restrict dst, const float *restrict src, const rl_windows *w, int k,
                      int C, int S);

#endif
