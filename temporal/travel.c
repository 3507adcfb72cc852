/* temporal/travel.c - prompt travel (see travel.h). */
#include "temporal/travel.h"

#include <math.h>
#include <string.h>

/* One token row: out (D) between a and b at t. */
static void mix_row(float *out, const float *a, const float *b, int D, double t, rl_interp mode)
{
    if (mode == RL_INTERP_SLERP) {
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < D; i++) {
            ab += (double)a[i] * b[i];
            aa += (double)a[i] * a[i];
            bb += (double)b[i] * b[i];
        }
        if (aa > 0 && bb > 0) {
            double c = ab / sqrt(aa * bb);
            if (fabs(c) <= RL_TRAVEL_PARALLEL_COS) {
                double w = acos(c), s = sin(w);
                double wa = sin((1 - t) * w) / s, wb = sin(t * w) / s;
                for (int i = 0; i < D; i++) out[i] = (float)(wa * a[i] + wb * b[i]);
                return;
            }
        }
        // nearly parallel (sin w ~ 0: the slerp weights are 0/0) or a zero row: linear
    }
    for (int i = 0; i < D; i++) out[i] = (float)((1 - t) * a[i] + t * b[i]);
}

void rl_travel_mix(float *out, const float *a, const float *b, int L, int D, double t,
                   rl_interp mode)
{
    for (int l = 0; l < L; l++)
        mix_row(out + (size_t)l * D, a + (size_t)l * D, b + (size_t)l * D, D, t, mode);
}

rl_status rl_travel_embed(float *out, const rl_travel_key *keys, int n_keys, int F, int L, int D,
                          rl_interp mode, rl_err *err)
{
    if (n_keys < 1 || !keys)
        return rl_errf(err, RL_E_PARAM, "prompt travel: expected at least one keyframe");
    if (F < 1 || L < 1 || D < 1)
        return rl_errf(err, RL_E_PARAM, "prompt travel: frames %d, tokens %d, width %d: expected "
                       ">= 1 each", F, L, D);
    if (mode != RL_INTERP_LINEAR && mode != RL_INTERP_SLERP)
        return rl_errf(err, RL_E_PARAM, "prompt travel: unknown interpolation %d", (int)mode);
    for (int k = 0; k < n_keys; k++) {
        if (keys[k].frame < 0 || keys[k].frame >= F)
            return rl_errf(err, RL_E_PARAM, "prompt travel: keyframe %d at frame %d: expected "
                           "0..%d", k, keys[k].frame, F - 1);
        if (k > 0 && keys[k].frame <= keys[k - 1].frame)
            return rl_errf(err, RL_E_PARAM, "prompt travel: keyframe %d at frame %d after frame "
                           "%d: expected strictly increasing frames", k, keys[k].frame,
                           keys[k - 1].frame);
        if (!keys[k].emb)
            return rl_errf(err, RL_E_PARAM, "prompt travel: keyframe %d has no embedding", k);
    }
    const size_t n = (size_t)L * D;
    int k = 0;                        // keys[k] is the last keyframe at or before f
    for (int f = 0; f < F; f++) {
        float *o = out + (size_t)f * n;
        while (k + 1 < n_keys && keys[k + 1].frame <= f) k++;
        if (f <= keys[0].frame) { memcpy(o, keys[0].emb, n * sizeof *o); continue; }   // hold
        if (k == n_keys - 1) { memcpy(o, keys[k].emb, n * sizeof *o); continue; }      // hold
        if (f == keys[k].frame) { memcpy(o, keys[k].emb, n * sizeof *o); continue; }
        double t = (double)(f - keys[k].frame) / (keys[k + 1].frame - keys[k].frame);
        rl_travel_mix(o, keys[k].emb, keys[k + 1].emb, L, D, t, mode);
    }
    return RL_OK;
}
