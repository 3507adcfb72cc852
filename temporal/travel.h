/* temporal/travel.h - prompt travel: text embeddings given at keyframes, interpolated to one
 * embedding per frame (linear, or spherical per token vector).
 *
 * Frames before the first keyframe hold the first keyframe's embedding, frames after the last
 * hold the last one's. Between keyframes a (frame, emb_a) and b (frame_b, emb_b), frame f uses
 * t = (f - frame_a) / (frame_b - frame_a):
 *   linear:     (1 - t) a + t b
 *   spherical:  for each token row l (a vector of D values), slerp
 *               sin((1-t) w) / sin w * a_l + sin(t w) / sin w * b_l,  w = angle(a_l, b_l),
 *               which follows the great circle between the directions (and for equal norms
 *               keeps the norm); when a_l and b_l are nearly parallel or opposite
 *               (|cos w| > RL_TRAVEL_PARALLEL_COS) or one is zero it falls back to linear.
 * Computed in double, stored as float. */
#ifndef RL_TEMPORAL_TRAVEL_H
#define RL_TEMPORAL_TRAVEL_H

#include "core/err.h"
#include "core/reel.h"     // rl_interp

#define RL_TRAVEL_PARALLEL_COS 0.9995

typedef struct {
    int frame;              // 0 .. F-1, strictly increasing across the list
    const float *emb;       // (L, D), read only
} rl_travel_key;

/* out (F, L, D). Errors (RL_E_PARAM): no keys, a frame outside 0..F-1, frames not strictly
 * increasing, an unknown mode, a NULL embedding. Thread-safe (no shared state). */
rl_status rl_travel_embed(float *out, const rl_travel_key *keys, int n_keys, int F, int L, int D,
                          rl_interp mode, rl_err *err);

/* One pair: out (L, D) = interpolation of a and b at t in [0, 1]. Cannot fail. */
void rl_travel_mix(float *out, const float *a, const float *b, int L, int D, double t,
                   rl_interp mode);

#endif
