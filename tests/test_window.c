/* tests/test_window.c - temporal/window: window placement (plain and loop), coverage,
 * normalised weights, gather/accumulate round trip and parameter errors. */
#include <math.h>
#include <string.h>

#include "temporal/window.h"
#include "tests/harness.h"

/* Structural checks every plan must pass. */
static void check_plan(rl_test *t, const rl_windows *w, int F, int context, int overlap, int loop)
{
    char name[96];
    snprintf(name, sizeof name, "F=%d context=%d overlap=%d loop=%d", F, context, overlap, loop);
    double *sum = rl_test_alloc(t, sizeof(double) * F);
    int ok_contig = 1, ok_overlap = 1;
    for (int k = 0; k < w->n; k++) {
        const int *idx = w->idx + (size_t)k * w->len;
        for (int j = 0; j < w->len; j++) {
            sum[idx[j]] += w->weight[(size_t)k * w->len + j];
            if (j && idx[j] != (idx[j - 1] + 1) % F) ok_contig = 0;   // consecutive, wrapping
        }
        if (k) {   // consecutive windows share at least `overlap` frames
            int shared = 0;
            for (int a = 0; a < w->len; a++)
                for (int b = 0; b < w->len; b++)
                    shared += w->idx[(size_t)(k - 1) * w->len + a] == idx[b];
            if (shared < overlap) ok_overlap = 0;
        }
    }
    double worst = 0;
    for (int f = 0; f < F; f++) worst = fmax(worst, fabs(sum[f] - 1));
    rl_test_check(t, w->len == (context < F ? context : F), "%s: len %d", name, w->len);
    rl_test_check(t, worst < 1e-6, "%s: %d windows, every frame's weights sum to 1 (worst %.1e)",
                  name, w->n, worst);
    rl_test_check(t, ok_contig && ok_overlap, "%s: windows contiguous, overlaps >= %d", name, overlap);
}

static void test_plans(rl_test *t, const char *arg)
{
    rl_err err = { 0 };
    rl_windows w;
    // the clip fits: one window, identity
    RL_CHECK(t, rl_windows_plan(&w, 16, 16, 4, 0, &err) == RL_OK);
    RL_CHECK(t, w.n == 1 && w.len == 16 && w.idx[15] == 15 && w.weight[7] == 1.0f);
    check_plan(t, &w, 16, 16, 4, 0);
    rl_windows_free(&w);
    RL_CHECK(t, rl_windows_plan(&w, 10, 16, 4, 1, &err) == RL_OK && w.n == 1 && w.len == 10);
    rl_windows_free(&w);

    // 40 frames, 16 per window, 4 shared: starts 0, 12, 24 (24 + 16 = 40)
    RL_CHECK(t, rl_windows_plan(&w, 40, 16, 4, 0, &err) == RL_OK);
    RL_CHECK(t, w.n == 3 && w.idx[0] == 0 && w.idx[16] == 12 && w.idx[32] == 24);
    check_plan(t, &w, 40, 16, 4, 0);
    // frame 0 is only in window 0: weight 1; frame 13 is in windows 0 (j 13) and 1 (j 1):
    // raw pyramid weights 3 and 2 -> 0.6 and 0.4
    rl_test_check(t, w.weight[0] == 1.0f && fabsf(w.weight[13] - 0.6f) < 1e-7f &&
                  fabsf(w.weight[16 + 1] - 0.4f) < 1e-7f, "pyramid weights %g %g %g", w.weight[0],
                  w.weight[13], w.weight[17]);
    rl_windows_free(&w);

    // 41 frames: the last window is moved back to end at frame 40 (starts 0, 12, 24, 25)
    RL_CHECK(t, rl_windows_plan(&w, 41, 16, 4, 0, &err) == RL_OK);
    RL_CHECK(t, w.n == 4 && w.idx[3 * 16] == 25 && w.idx[4 * 16 - 1] == 40);
    check_plan(t, &w, 41, 16, 4, 0);
    rl_windows_free(&w);

    // loop: starts 0, 12, 24, 36; the last wraps 36..39, 0..11
    RL_CHECK(t, rl_windows_plan(&w, 40, 16, 4, 1, &err) == RL_OK);
    RL_CHECK(t, w.n == 4 && w.idx[3 * 16] == 36 && w.idx[3 * 16 + 4] == 0 && w.idx[4 * 16 - 1] == 11);
    check_plan(t, &w, 40, 16, 4, 1);
    // with the wrap, frame 0 is shared by the first and last windows: no weight-1 seam
    RL_CHECK(t, w.weight[0] < 1.0f);
    rl_windows_free(&w);

    // odd sizes, no overlap, overlap = context - 1
    int cases[][4] = { { 23, 7, 0, 0 }, { 23, 7, 6, 0 }, { 23, 7, 3, 1 }, { 5, 2, 1, 1 }, { 97, 16, 5, 0 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (rl_windows_plan(&w, cases[i][0], cases[i][1], cases[i][2], cases[i][3], &err) == RL_OK)
            check_plan(t, &w, cases[i][0], cases[i][1], cases[i][2], cases[i][3]);
        else
            rl_test_fail(t, "plan %d: %s", (int)i, err.msg);
        rl_windows_free(&w);
    }
}

/* Averaging identical per-window predictions gives them back; a frame-constant offset
 * per window blends smoothly. */
static void test_gather_accum(rl_test *t, const char *arg)
{
    const int F = 29, C = 3, S = 7, context = 8, overlap = 3;
    rl_err err = { 0 };
    rl_windows w;
    if (!rl_test_check(t, rl_windows_plan(&w, F, context, overlap, 1, &err) == RL_OK, "plan")) return;
    float *src = rl_test_floats(t, (size_t)C * F * S), *out = rl_test_floats(t, (size_t)C * F * S);
    float *win = rl_test_floats(t, (size_t)C * w.len * S);
    rl_test_randu(src, (size_t)C * F * S, 5);
    for (int k = 0; k < w.n; k++) {
        rl_windows_gather(win, src, &w, k, C, S);
        // window 1 position 2 is frame idx[1*len + 2] of channel 0
        if (k == 1) RL_CHECK(t, win[2 * S + 4] == src[(size_t)w.idx[w.len + 2] * S + 4]);
        rl_windows_accum(out, win, &w, k, C, S);
    }
    // sums of <= 3 terms with weights summing to 1: float rounding only
    rl_check_close(t, "gather/accum round trip", out, src, (size_t)C * F * S, 1e-6, 1e-6);
    rl_windows_free(&w);
}

static void test_errors(rl_test *t, const char *arg)
{
    rl_err err = { 0 };
    rl_windows w;
    int bad[][3] = { { 0, 16, 4 }, { 16, 0, 0 }, { 16, 8, 8 }, { 16, 8, -1 }, { 40, 16, 20 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_status rc = rl_windows_plan(&w, bad[i][0], bad[i][1], bad[i][2], 0, &err);
        rl_test_check(t, rc == RL_E_PARAM && w.idx == NULL, "F=%d context=%d overlap=%d -> %s: %s",
                      bad[i][0], bad[i][1], bad[i][2], rl_status_str(rc), err.msg);
    }
    rl_windows_free(&w);   // idempotent on a zeroed plan
    rl_windows_free(&w);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "plans", test_plans, NULL },
        { "gather_accum", test_gather_accum, NULL },
        { "errors", test_errors, NULL },
        { 0 },
    });
}
