/* tests/test_travel.c - temporal/travel: keyframe holds, linear and spherical interpolation
 * per token vector, the near-parallel fallback, and parameter errors.
 * Reference values are closed forms (computed here in double), so tolerances are float
 * rounding of values of magnitude ~1: 1e-6 absolute. */
#include <math.h>
#include <string.h>

#include "temporal/travel.h"
#include "tests/harness.h"

enum { L = 3, D = 5, F = 11 };

static double dot(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void test_hold_and_linear(rl_test *t, const char *arg)
{
    float *a = rl_test_floats(t, L * D), *b = rl_test_floats(t, L * D), *c = rl_test_floats(t, L * D);
    rl_test_randu(a, L * D, 1);
    rl_test_randu(b, L * D, 2);
    rl_test_randu(c, L * D, 3);
    rl_travel_key keys[3] = { { 2, a }, { 6, b }, { 9, c } };
    float *out = rl_test_floats(t, (size_t)F * L * D), *want = rl_test_floats(t, (size_t)F * L * D);
    rl_err err = { 0 };
    RL_CHECK(t, rl_travel_embed(out, keys, 3, F, L, D, RL_INTERP_LINEAR, &err) == RL_OK);
    for (int f = 0; f < F; f++)
        for (int i = 0; i < L * D; i++) {
            double v;
            if (f <= 2) v = a[i];                                   // hold before the first
            else if (f <= 6) v = a[i] + (b[i] - a[i]) * (f - 2) / 4.0;
            else if (f <= 9) v = b[i] + (c[i] - b[i]) * (f - 6) / 3.0;
            else v = c[i];                                          // hold after the last
            want[(size_t)f * L * D + i] = (float)v;
        }
    rl_check_close(t, "linear", out, want, (size_t)F * L * D, 1e-6, 0);
    // keyframes exactly
    RL_CHECK(t, memcmp(out + 6 * L * D, b, sizeof(float) * L * D) == 0);

    // one keyframe: every frame is it
    RL_CHECK(t, rl_travel_embed(out, keys + 1, 1, F, L, D, RL_INTERP_SLERP, &err) == RL_OK);
    int all = 1;
    for (int f = 0; f < F; f++) all &= memcmp(out + (size_t)f * L * D, b, sizeof(float) * L * D) == 0;
    RL_CHECK(t, all);
}

static void test_slerp(rl_test *t, const char *arg)
{
    // token 0: orthogonal unit vectors -> great circle; token 1: norms 2 and 2 at 60 degrees;
    // token 2: nearly parallel (cos > 0.9995) -> linear fallback
    float a[L * D] = { 1, 0, 0, 0, 0,   2, 0, 0, 0, 0,   1, 0, 0, 0, 0 };
    float b[L * D] = { 0, 1, 0, 0, 0,   1, 1.7320508f, 0, 0, 0,   1, 0.01f, 0, 0, 0 };
    float out[L * D], want[L * D];
    for (int k = 0; k <= 8; k++) {
        double s = k / 8.0;
        rl_travel_mix(out, a, b, L, D, s, RL_INTERP_SLERP);
        memset(want, 0, sizeof want);
        double w0 = M_PI / 2, w1 = M_PI / 3;
        want[0] = (float)cos(s * w0);            want[1] = (float)sin(s * w0);
        want[5] = (float)(2 * cos(s * w1));      want[6] = (float)(2 * sin(s * w1));
        want[10] = 1;                             want[11] = (float)(0.01 * s);
        char name[32];
        snprintf(name, sizeof name, "slerp t=%.3f", s);
        rl_check_close(t, name, out, want, L * D, 2e-6, 0);
        // equal norms stay on the sphere
        rl_test_check(t, fabs(sqrt(dot(out, out, D)) - 1) < 1e-6 &&
                      fabs(sqrt(dot(out + D, out + D, D)) - 2) < 2e-6, "norms kept at t=%.3f", s);
    }
    // random rows: endpoints exact, midpoint direction bisects the angle
    float *ra = rl_test_floats(t, 64), *rb = rl_test_floats(t, 64), *rm = rl_test_floats(t, 64);
    rl_test_randu(ra, 64, 7);
    rl_test_randu(rb, 64, 8);
    double sc = sqrt(dot(ra, ra, 64) / dot(rb, rb, 64));     // equal norms: midpoint bisects
    for (int i = 0; i < 64; i++) rb[i] = (float)(rb[i] * sc);
    rl_travel_mix(rm, ra, rb, 1, 64, 0.0, RL_INTERP_SLERP);
    rl_check_close(t, "slerp t=0", rm, ra, 64, 1e-6, 0);
    rl_travel_mix(rm, ra, rb, 1, 64, 1.0, RL_INTERP_SLERP);
    rl_check_close(t, "slerp t=1", rm, rb, 64, 1e-6, 0);
    rl_travel_mix(rm, ra, rb, 1, 64, 0.5, RL_INTERP_SLERP);
    double ca = dot(rm, ra, 64) / sqrt(dot(rm, rm, 64) * dot(ra, ra, 64));
    double cb = dot(rm, rb, 64) / sqrt(dot(rm, rm, 64) * dot(rb, rb, 64));
    rl_test_check(t, fabs(ca - cb) < 1e-6, "midpoint bisects: cos %.8f vs %.8f", ca, cb);
    // zero row falls back to linear
    float z[D] = { 0 }, u[D] = { 0, 0, 3, 0, 0 }, m[D];
    rl_travel_mix(m, z, u, 1, D, 0.25, RL_INTERP_SLERP);
    RL_CHECK(t, m[2] == 0.75f && m[0] == 0);
}

static void test_errors(rl_test *t, const char *arg)
{
    float e[L * D] = { 0 }, out[F * L * D];
    rl_err err = { 0 };
    rl_travel_key unsorted[2] = { { 5, e }, { 3, e } }, dup[2] = { { 3, e }, { 3, e } };
    rl_travel_key outside[1] = { { F, e } }, neg[1] = { { -1, e } }, null[1] = { { 0, NULL } };
    struct { const rl_travel_key *k; int n; const char *what; } c[] = {
        { unsorted, 2, "unsorted" }, { dup, 2, "duplicate frame" }, { outside, 1, "frame F" },
        { neg, 1, "frame -1" }, { null, 1, "no embedding" }, { NULL, 0, "no keys" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        rl_status rc = rl_travel_embed(out, c[i].k, c[i].n, F, L, D, RL_INTERP_LINEAR, &err);
        rl_test_check(t, rc == RL_E_PARAM, "%s -> %s: %s", c[i].what, rl_status_str(rc), err.msg);
    }
    rl_travel_key ok[1] = { { 0, e } };
    RL_CHECK(t, rl_travel_embed(out, ok, 1, F, L, D, (rl_interp)7, &err) == RL_E_PARAM);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "hold_linear", test_hold_and_linear, NULL },
        { "slerp", test_slerp, NULL },
        { "errors", test_errors, NULL },
        { 0 },
    });
}
