/* tests/test_shapes.c - the shapes world (tools/shapes): sampler determinism and held-out pairs,
 * geometry, captions and their parser, the renderer's anti-aliased areas, and the analyzer's
 * accuracy per attribute on perfect and on degraded (blurred, noisy, colour-shifted) clips. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/reel.h"
#include "io/tokfiles.h"
#include "io/weights_io.h"
#include "tests/harness.h"
#include "tools/shapes/analyze.h"
#include "tools/shapes/clipscore.h"
#include "tools/shapes/eval.h"
#include "tools/shapes/render.h"
#include "tools/shapes/world.h"

enum { F = RL_SHAPES_FRAMES, H = 64, W = 64 };
#define CLIP_BYTES ((size_t)F * H * W * 3)

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

// ---- sampler ----------------------------------------------------------------------------------

static void test_determinism(rl_test *t, const char *arg)
{
    uint8_t *a = rl_test_alloc(t, CLIP_BYTES), *b = rl_test_alloc(t, CLIP_BYTES);
    int same = 1, differ = 0;
    for (int i = 0; i < 50; i++) {
        rl_shapes_spec s1, s2, s3;
        rl_shapes_sample(&s1, 42, (uint64_t)i, RL_SHAPES_TRAIN);
        rl_shapes_sample(&s2, 42, (uint64_t)i, RL_SHAPES_TRAIN);
        rl_shapes_sample(&s3, 43, (uint64_t)i, RL_SHAPES_TRAIN);
        rl_shapes_render_u8(a, &s1, F, H, W);
        rl_shapes_render_u8(b, &s2, F, H, W);
        same &= !memcmp(a, b, CLIP_BYTES) && !memcmp(&s1, &s2, sizeof s1);
        rl_shapes_render_u8(b, &s3, F, H, W);
        differ += memcmp(a, b, CLIP_BYTES) != 0;
    }
    RL_CHECK(t, same);
    rl_test_check(t, differ >= 49, "another seed gives other clips: %d of 50 differ", differ);
    rl_shapes_spec s;
    rl_shapes_sample(&s, 1, 0, RL_SHAPES_TRAIN);
    rl_shapes_render_u8(a, &s, F, H, W);
    printf("  info clip (seed 1, index 0) bytes fnv1a %016llx\n", (unsigned long long)fnv1a(a, CLIP_BYTES));
}

static void test_heldout(rl_test *t, const char *arg)
{
    const int n = 200000;
    int leaks = 0, invalid = 0, said = 0, seen[RL_N_COLOR][RL_N_SHAPE][RL_N_MOTION] = { { { 0 } } };
    int bgs[RL_N_BG] = { 0 };
    for (int i = 0; i < n; i++) {
        rl_shapes_spec s;
        rl_shapes_sample(&s, 7, (uint64_t)i, RL_SHAPES_TRAIN);
        leaks += rl_shapes_attr_heldout(&s.a) != 0;
        invalid += !rl_shapes_attr_valid(&s.a) || s.a.bg < 0;
        said += s.bg_said;
        bgs[s.a.bg]++;
        seen[s.a.color][s.a.shape][s.a.motion]++;
    }
    rl_test_check(t, leaks == 0, "held-out pairs in %d training samples: %d", n, leaks);
    rl_test_check(t, invalid == 0, "invalid combinations (spinning circles): %d", invalid);
    // every allowed combination shows up; 8*4*7 - 8 spinning circles - held-out ones
    int combos = 0, allowed = 0;
    for (int c = 0; c < RL_N_COLOR; c++)
        for (int sh = 0; sh < RL_N_SHAPE; sh++)
            for (int m = 0; m < RL_N_MOTION; m++) {
                const rl_shapes_attr a = { 0, c, sh, m };
                allowed += rl_shapes_attr_valid(&a) && !rl_shapes_attr_heldout(&a);
                combos += seen[c][sh][m] > 0;
            }
    rl_test_check(t, combos == allowed && allowed == 161, "combinations seen %d, allowed %d "
                  "(224 - 8 spinning circles - 55 with a held-out pair)", combos, allowed);
    // the short caption share is 20%: binomial sd at n = 2e5 is 0.09%, allow 0.5%
    const double short_share = 1.0 - (double)said / n;
    rl_test_check(t, fabs(short_share - RL_SHAPES_SHORT_SHARE) < 0.005,
                  "short captions %.4f (want %.2f)", short_share, RL_SHAPES_SHORT_SHARE);
    for (int b = 0; b < RL_N_BG; b++)
        rl_test_check(t, fabs(bgs[b] / (double)n - 1.0 / 3) < 0.005, "background %s %.4f",
                      rl_shapes_bg_name[b], bgs[b] / (double)n);

    // the evaluation split: every sample holds a held-out pair, all 8 pairs occur
    int without = 0, pairs_cs = 0, pairs_sm = 0, pair_seen[2][RL_N_SHAPE] = { { 0 } };
    for (int i = 0; i < 20000; i++) {
        rl_shapes_spec s;
        rl_shapes_sample(&s, 9, (uint64_t)i, RL_SHAPES_HELDOUT);
        without += !rl_shapes_attr_heldout(&s.a);
        invalid += !rl_shapes_attr_valid(&s.a);
        // each shape is in exactly one held-out pair of each kind: test the pairs one by one
        const rl_shapes_attr cs = { 0, s.a.color, s.a.shape, RL_MOTION_RIGHT };
        const rl_shapes_attr sm = { 0, RL_COLOR_RED, s.a.shape, s.a.motion };
        if (rl_shapes_attr_heldout(&cs)) pair_seen[0][s.a.shape] = 1, pairs_cs++;
        if (rl_shapes_attr_heldout(&sm)) pair_seen[1][s.a.shape] = 1, pairs_sm++;
    }
    int n_pairs = 0;
    for (int k = 0; k < 2; k++)
        for (int sh = 0; sh < RL_N_SHAPE; sh++) n_pairs += pair_seen[k][sh];
    rl_test_check(t, without == 0 && invalid == 0, "held-out split: %d samples without a pair, "
                  "%d invalid", without, invalid);
    rl_test_check(t, n_pairs == 8, "held-out pairs drawn by the evaluation split: %d of 8 "
                  "(colour-shape %d, shape-motion %d samples)", n_pairs, pairs_cs, pairs_sm);
}

// ---- geometry and rendering -----------------------------------------------------------------

static void test_geometry(rl_test *t, const char *arg)
{
    int outside = 0, bad_path = 0, bad_size = 0, bad_border = 0, spins = 0, n = 3000;
    uint8_t *clip = rl_test_alloc(t, CLIP_BYTES);
    for (int i = 0; i < n; i++) {
        rl_shapes_spec s;
        rl_shapes_sample(&s, 11, (uint64_t)i, RL_SHAPES_ANY);
        for (int f = 0; f < F; f++) {
            float cx, cy, r, ang;
            rl_shapes_spec_at(&s, f, F, &cx, &cy, &r, &ang);
            outside += cx - r < 1.0f || cx + r > 63.0f || cy - r < 1.0f || cy + r > 63.0f;
        }
        const float path = hypotf(s.dx, s.dy);
        const int moving = s.a.motion <= RL_MOTION_DOWN;
        bad_path += moving ? path < 24.0f || path > 32.0f : path != 0.0f;
        if (s.a.motion == RL_MOTION_GROWING) bad_size += s.r0 != 5.0f || s.r1 != 14.0f;
        else if (s.a.motion == RL_MOTION_SHRINKING) bad_size += s.r0 != 14.0f || s.r1 != 5.0f;
        else bad_size += s.r0 != s.r1 || s.r0 < 8.0f || s.r0 > 12.0f;
        spins += s.spin != 0;
        if (i < 300) {   // the outermost pixel ring stays background in every frame
            rl_shapes_render_u8(clip, &s, F, H, W);
            const uint8_t *bg = rl_shapes_bg_rgb[s.a.bg];
            for (int f = 0; f < F; f++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x += (y == 0 || y == H - 1) ? 1 : W - 1)
                        bad_border += memcmp(clip + (((size_t)f * H + y) * W + x) * 3, bg, 3) != 0;
        }
    }
    rl_test_check(t, outside == 0, "frames where the shape leaves the frame: %d", outside);
    rl_test_check(t, bad_path == 0, "paths outside 24..32 px (or moving when they should not): %d",
                  bad_path);
    rl_test_check(t, bad_size == 0, "sizes out of their range: %d", bad_size);
    rl_test_check(t, bad_border == 0, "border pixels that are not background: %d", bad_border);
    RL_CHECK(t, spins > 0);
}

// The anti-aliased area of each shape against its exact area, at 64 x 64 and at an odd size.
// 4 x 4 samples quantise the coverage of a pixel an edge crosses to 1/16; along a straight edge
// parallel to the sample rows the error does not cancel and reaches 1/8 px^2 per px of edge, so
// the bound is perimeter / 8 (plus 1 px^2 for the corners).
static void test_render_area(rl_test *t, const char *arg)
{
    const int sizes[2][2] = { { 64, 64 }, { 48, 80 } };
    for (int k = 0; k < 2; k++) {
        const int h = sizes[k][0], w = sizes[k][1];
        float *cov = rl_test_floats(t, (size_t)h * w);
        double worst = 0, worst_rel = 0;   // error / bound, error / area
        for (int sh = 0; sh < RL_N_SHAPE; sh++) {
            rl_shapes_attr a = { RL_BG_GRAY, RL_COLOR_RED, sh, sh ? RL_MOTION_SPINNING
                                                                   : RL_MOTION_GROWING };
            rl_shapes_spec s;
            rl_err e = { 0 };
            if (!RL_CHECK(t, rl_shapes_spec_from_attr(&s, &a, 5, &e) == RL_OK)) return;
            for (int f = 0; f < F; f += 3) {
                float cx, cy, r, ang;
                rl_shapes_spec_at(&s, f, F, &cx, &cy, &r, &ang);
                const double R = r * (h < w ? h : w) / 64.0, pi = M_PI;
                const double ri = R * cos(2 * pi / 5) / cos(pi / 5);     // pentagram inner radius
                const double exact[RL_N_SHAPE] = {
                    pi * R * R, 2 * R * R, 3 * sqrt(3) / 4 * R * R,
                    10 * 0.5 * R * ri * sin(pi / 5),   // 10 triangles centre-tip-inner vertex
                };
                const double perim[RL_N_SHAPE] = {
                    2 * pi * R, 4 * sqrt(2) * R, 3 * sqrt(3) * R,
                    10 * sqrt(R * R + ri * ri - 2 * R * ri * cos(pi / 5)),
                };
                rl_shapes_render_cov(cov, &s, f, F, h, w);
                double area = 0;
                for (size_t i = 0; i < (size_t)h * w; i++) area += cov[i];
                const double err = fabs(area - exact[sh]);
                if (err / (perim[sh] / 8 + 1) > worst) worst = err / (perim[sh] / 8 + 1);
                if (err / exact[sh] > worst_rel) worst_rel = err / exact[sh];
            }
        }
        rl_test_check(t, worst <= 1.0, "%dx%d: worst area error %.3f of the sampling bound "
                      "(%.4f of the area)", h, w, worst, worst_rel);
    }
    // the float render is the byte render before rounding
    rl_shapes_spec s;
    rl_shapes_sample(&s, 3, 17, RL_SHAPES_ANY);
    uint8_t *u = rl_test_alloc(t, CLIP_BYTES);
    float *x = rl_test_floats(t, CLIP_BYTES);
    rl_shapes_render_u8(u, &s, F, H, W);
    rl_shapes_render_f32(x, &s, F, H, W);
    double maxd = 0;
    for (int ch = 0; ch < 3; ch++)
        for (size_t i = 0; i < (size_t)F * H * W; i++) {
            const double v = (x[(size_t)ch * F * H * W + i] + 1.0) * 127.5;
            const double d = fabs(v - u[i * 3 + ch]);
            if (d > maxd) maxd = d;
        }
    rl_test_check(t, maxd <= 0.5 + 1e-3, "float render vs bytes: max %.4f levels (rounding: 0.5)",
                  maxd);
}

// ---- captions ---------------------------------------------------------------------------------

static void test_captions(rl_test *t, const char *arg)
{
    char buf[96];
    const rl_shapes_attr a = { RL_BG_BLACK, RL_COLOR_ORANGE, RL_SHAPE_STAR, RL_MOTION_LEFT };
    rl_shapes_caption(buf, sizeof buf, &a);
    rl_test_check(t, !strcmp(buf, "a orange star moving left on a black background"), "'%s'", buf);
    const rl_shapes_attr b = { -1, RL_COLOR_PINK, RL_SHAPE_CIRCLE, RL_MOTION_GROWING };
    rl_shapes_caption(buf, sizeof buf, &b);
    rl_test_check(t, !strcmp(buf, "a pink circle growing"), "'%s'", buf);
    const rl_shapes_attr spin_circle = { 0, 0, RL_SHAPE_CIRCLE, RL_MOTION_SPINNING };
    RL_CHECK(t, rl_shapes_caption(buf, sizeof buf, &spin_circle) < 0);

    // every valid caption parses back to its attributes
    int bad = 0, total = 0;
    for (int bg = -1; bg < RL_N_BG; bg++)
        for (int c = -1; c < RL_N_COLOR; c++)
            for (int sh = 0; sh < RL_N_SHAPE; sh++)
                for (int m = 0; m < RL_N_MOTION; m++) {
                    const rl_shapes_attr x = { bg, c, sh, m };
                    if (!rl_shapes_attr_valid(&x)) continue;
                    rl_shapes_attr y;
                    rl_err e = { 0 };
                    rl_shapes_caption(buf, sizeof buf, &x);
                    bad += rl_shapes_caption_parse(&y, buf, &e) != RL_OK || memcmp(&x, &y, sizeof x);
                    total++;
                }
    rl_test_check(t, bad == 0, "caption -> parse round trips: %d of %d wrong", bad, total);

    // sampled captions: lower case, the short form 20% of the time
    for (int i = 0; i < 5; i++) {
        rl_shapes_spec s;
        rl_shapes_sample(&s, 1, (uint64_t)i, RL_SHAPES_TRAIN);
        rl_shapes_spec_caption(buf, sizeof buf, &s);
        printf("  info %s\n", buf);
    }

    static const char *const wrong[] = {
        "a red circle spinning", "a red hexagon moving left", "A red circle moving left",
        "a red circle moving left ", "a red circle moving left on a blue background",
        "a red circle moving sideways", "an orange circle growing", "a red  circle growing",
        "a red circle growing on a white", "", "a", "a red circle growing on a white background x",
    };
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        rl_shapes_attr y;
        rl_err e = { 0 };
        const rl_status rc = rl_shapes_caption_parse(&y, wrong[i], &e);
        rl_test_check(t, rc == RL_E_PARAM && e.msg[0], "rejects '%s': %s", wrong[i], e.msg);
    }
}

// ---- analyzer ----------------------------------------------------------------------------------

typedef struct {
    float blur;        // Gaussian sigma, px (0: none)
    float noise;       // Gaussian sigma, levels
    float shift;       // per-clip uniform colour shift in [-shift, shift] per channel, levels
} degradation;

// Approximately normal, unit variance: the sum of 4 uniforms (Irwin-Hall), cheap enough to
// draw for every byte of hundreds of clips.
static float gauss(rl_shapes_rng *r)
{
    const uint64_t x = rl_shapes_rng_next(r);
    float s = 0.0f;
    for (int i = 0; i < 4; i++) s += (float)((x >> (16 * i)) & 0xffff) * (1.0f / 65536.0f);
    return (s - 2.0f) * 1.7320508f;   // sd of the sum is sqrt(4/12)
}

static void degrade(uint8_t *clip, const degradation *dg, uint64_t seed, float *scratch)
{
    rl_shapes_rng r;
    rl_shapes_rng_seed(&r, seed);
    const size_t n = CLIP_BYTES;
    for (size_t i = 0; i < n; i++) scratch[i] = clip[i];
    if (dg->blur > 0) {   // separable Gaussian, radius 3 sigma, edges clamped
        float k[16];
        const int rad = (int)ceilf(3 * dg->blur) < 7 ? (int)ceilf(3 * dg->blur) : 7;
        float sum = 0;
        for (int i = -rad; i <= rad; i++) sum += k[i + rad] = expf(-0.5f * i * i / (dg->blur * dg->blur));
        for (int i = 0; i <= 2 * rad; i++) k[i] /= sum;
        float *tmp = scratch + n;
        int idx[64][15];   // clamped neighbour of each coordinate (H = W = 64)
        for (int x = 0; x < W; x++)
            for (int j = -rad; j <= rad; j++)
                idx[x][j + rad] = x + j < 0 ? 0 : x + j >= W ? W - 1 : x + j;
        for (int pass = 0; pass < 2; pass++) {   // 0: along x, 1: along y
            const size_t step = pass ? (size_t)W * 3 : 3;
            for (int f = 0; f < F; f++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        const size_t o = (((size_t)f * H + y) * W + x) * 3;
                        const size_t base = o - (pass ? (size_t)y : (size_t)x) * step;
                        const int *id = idx[pass ? y : x];
                        float acc[3] = { 0, 0, 0 };
                        for (int j = 0; j <= 2 * rad; j++) {
                            const float *q = scratch + base + (size_t)id[j] * step;
                            acc[0] += k[j] * q[0]; acc[1] += k[j] * q[1]; acc[2] += k[j] * q[2];
                        }
                        tmp[o] = acc[0]; tmp[o + 1] = acc[1]; tmp[o + 2] = acc[2];
                    }
            memcpy(scratch, tmp, n * sizeof(float));
        }
    }
    float sh[3];
    for (int ch = 0; ch < 3; ch++) sh[ch] = rl_shapes_rng_unif(&r, -dg->shift, dg->shift);
    for (size_t i = 0; i < n; i++) {
        const float v = scratch[i] + sh[i % 3] + dg->noise * gauss(&r);
        clip[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
    }
}

// Accuracy per attribute over n clips of the whole world (held-out pairs included: the ANY
// split draws them about a quarter of the time) with the given degradation.
static void accuracy(rl_test *t, int n, const degradation *dg, double bar, const char *label)
{
    uint8_t *clip = rl_test_alloc(t, CLIP_BYTES);
    float *scratch = rl_test_floats(t, 2 * CLIP_BYTES);
    int right[5] = { 0 }, heldout = 0, by_shape_wrong[RL_N_SHAPE] = { 0 }, shown = 0;
    for (int i = 0; i < n; i++) {
        rl_shapes_spec s;
        rl_shapes_sample(&s, 2024, (uint64_t)i, RL_SHAPES_ANY);
        heldout += rl_shapes_attr_heldout(&s.a) != 0;
        rl_shapes_render_u8(clip, &s, F, H, W);
        if (dg) degrade(clip, dg, 77 + (uint64_t)i, scratch);
        rl_shapes_analysis a;
        rl_err e = { 0 };
        if (rl_shapes_analyze(&a, clip, F, H, W, NULL, &e) != RL_OK) {
            rl_test_fail(t, "clip %d: %s", i, e.msg);
            return;
        }
        const int ok[5] = { a.a.bg == s.a.bg, a.a.color == s.a.color, a.a.shape == s.a.shape,
                            a.a.motion == s.a.motion, a.persistent };
        for (int k = 0; k < 5; k++) right[k] += ok[k];
        by_shape_wrong[s.a.shape] += !ok[2];
        if ((!ok[1] || !ok[2] || !ok[3] || !ok[4]) && shown++ < 4) {
            char cap[96];
            rl_shapes_spec_caption(cap, sizeof cap, &s);
            printf("  miss '%s' r %.1f->%.1f: color %d shape %d (scores %.2f %.2f %.2f %.2f) "
                   "motion %d (move %.1f,%.1f log-area %.2f turn %.1f) persistent %d\n", cap,
                   s.r0, s.r1, a.a.color, a.a.shape, a.shape_score[0], a.shape_score[1],
                   a.shape_score[2], a.shape_score[3], a.a.motion, a.move_x, a.move_y,
                   a.log_area, a.turn_deg, a.persistent);
        }
    }
    static const char *const names[5] = { "background", "colour", "shape", "motion", "persistence" };
    printf("  info %s: %d clips (%d with a held-out pair); shape misses circle %d square %d "
           "triangle %d star %d\n", label, n, heldout, by_shape_wrong[0], by_shape_wrong[1],
           by_shape_wrong[2], by_shape_wrong[3]);
    for (int k = 0; k < 5; k++)
        rl_test_check(t, right[k] >= bar * n, "%s accuracy %-11s %6.2f%% (bar %.0f%%)", label,
                      names[k], 100.0 * right[k] / n, 100 * bar);
}

static void test_analyzer_clean(rl_test *t, const char *arg)
{
    accuracy(t, 2000, NULL, 0.99, "clean");
}

static void test_analyzer_degraded(rl_test *t, const char *arg)
{
    // a generated clip is blurrier, noisier and off in colour; these are well past what a VAE
    // round trip does to a clip (measured there: blur about 0.5 px, noise 2-3 levels)
    const degradation mild = { 0.7f, 4.0f, 8.0f }, hard = { 1.2f, 10.0f, 20.0f };
    accuracy(t, 300, &mild, 0.95, "degraded (blur 0.7 px, noise 4, shift 8)");
    accuracy(t, 300, &hard, 0.95, "degraded (blur 1.2 px, noise 10, shift 20)");
}

// Clips that must fail persistence: an empty clip, two shapes, a shape missing from frames.
static void test_analyzer_persistence(rl_test *t, const char *arg)
{
    uint8_t *clip = rl_test_alloc(t, CLIP_BYTES), *two = rl_test_alloc(t, CLIP_BYTES);
    uint8_t *mask = rl_test_alloc(t, (size_t)H * W);
    rl_shapes_analysis a;
    rl_err e = { 0 };
    rl_shapes_spec s1, s2;
    const rl_shapes_attr a1 = { RL_BG_WHITE, RL_COLOR_BLUE, RL_SHAPE_SQUARE, RL_MOTION_RIGHT };
    const rl_shapes_attr a2 = { RL_BG_WHITE, RL_COLOR_BLUE, RL_SHAPE_CIRCLE, RL_MOTION_DOWN };
    rl_shapes_spec_from_attr(&s1, &a1, 1, &e);
    rl_shapes_spec_from_attr(&s2, &a2, 2, &e);
    s1.cy = 14; s2.cx = 50; s2.cy = 30;   // apart: the square along the top, the circle right

    // one object: persistent, and the background mask excludes its path
    rl_shapes_render_u8(clip, &s1, F, H, W);
    RL_CHECK(t, rl_shapes_analyze(&a, clip, F, H, W, mask, &e) == RL_OK);
    RL_CHECK(t, a.persistent && a.bad_frames == 0);
    size_t n_bg = 0;
    for (size_t i = 0; i < (size_t)H * W; i++) n_bg += mask[i];
    RL_CHECK(t, !mask[14 * W + 32] && mask[60 * W + 32]);
    printf("  info background mask %zu of %d px\n", n_bg, H * W);

    // two objects in every frame
    rl_shapes_render_u8(two, &s2, F, H, W);
    for (size_t i = 0; i < CLIP_BYTES; i++)
        if (two[i] != rl_shapes_bg_rgb[RL_BG_WHITE][i % 3]) clip[i] = two[i];
    RL_CHECK(t, rl_shapes_analyze(&a, clip, F, H, W, NULL, &e) == RL_OK);
    rl_test_check(t, !a.persistent && a.bad_frames == F, "two shapes: persistent %d, bad frames %d",
                  a.persistent, a.bad_frames);

    // the shape vanishes for 3 frames
    rl_shapes_render_u8(clip, &s1, F, H, W);
    for (int f = 6; f < 9; f++)
        for (size_t i = 0; i < (size_t)H * W * 3; i++)
            clip[(size_t)f * H * W * 3 + i] = rl_shapes_bg_rgb[RL_BG_WHITE][i % 3];
    RL_CHECK(t, rl_shapes_analyze(&a, clip, F, H, W, NULL, &e) == RL_OK);
    rl_test_check(t, !a.persistent && a.bad_frames == 3, "vanishing: persistent %d, bad frames %d",
                  a.persistent, a.bad_frames);
    RL_CHECK(t, a.a.shape == RL_SHAPE_SQUARE && a.a.motion == RL_MOTION_RIGHT);

    // nothing but background
    for (size_t i = 0; i < CLIP_BYTES; i++) clip[i] = rl_shapes_bg_rgb[RL_BG_GRAY][i % 3];
    RL_CHECK(t, rl_shapes_analyze(&a, clip, F, H, W, NULL, &e) == RL_OK);
    RL_CHECK(t, !a.persistent && a.a.bg == RL_BG_GRAY && a.a.color == -1 && a.a.shape == -1);

    // bad sizes are refused with a message
    RL_CHECK(t, rl_shapes_analyze(&a, clip, 0, H, W, NULL, &e) == RL_E_PARAM && e.msg[0]);
    RL_CHECK(t, rl_shapes_analyze(&a, clip, F, 4, W, NULL, &e) == RL_E_PARAM);
}

// ---- eval --------------------------------------------------------------------------------------

// Ground truth scores 100% everywhere, flickers not at all, and its JSON parses and agrees.
static void test_eval_truth(rl_test *t, const char *arg)
{
    rl_eval_opts o = rl_eval_default_opts();   // the whole default prompt set
    rl_eval_source src = rl_eval_source_truth();
    rl_eval_result res;
    rl_err e = { 0 };
    if (!rl_test_check(t, rl_eval_run(&res, &src, &o, &e) == RL_OK, "eval runs: %s",
                       e.code ? e.msg : "ok"))
        return;
    int perfect = 1, heldout = 1;
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < RL_EVAL_N_ATTR; k++)
            perfect &= res.right[s][k] == res.scored[s][k] && res.persistent[s] == res.total[s];
    for (int i = 0; i < res.n_clips; i++)
        heldout &= (rl_shapes_attr_heldout(&res.clips[i].want) != 0) == res.clips[i].set;
    RL_CHECK(t, perfect && res.total[0] == 48 && res.total[1] == 48);
    rl_test_check(t, heldout, "held-out prompts are exactly those holding a held-out pair");
    rl_test_check(t, res.flicker == 0.0, "ground-truth flicker %.4f", res.flicker);
    char p0[96], p1[96];
    rl_shapes_attr w;
    uint64_t seed;
    rl_eval_prompt(0, 3, p0, &w, &seed);
    rl_eval_prompt(0, 3, p1, &w, &seed);
    rl_test_check(t, !strcmp(p0, res.clips[3].prompt) && !strcmp(p0, p1) && seed == 1003,
                  "prompt set fixed: '%s' seed %llu", p0, (unsigned long long)seed);

    char *json = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&json, &len);
    rl_eval_print_json(f, &res);
    fclose(f);
    cJSON *root = cJSON_Parse(json);
    RL_CHECK(t, root != NULL);
    const cJSON *clips = cJSON_GetObjectItem(root, "clips");
    const cJSON *rate = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
        cJSON_GetObjectItem(root, "adherence"), "held_out"), "shape"), "rate");
    RL_CHECK(t, cJSON_GetArraySize(clips) == 96 && cJSON_IsNumber(rate) && rate->valuedouble == 1.0);
    RL_CHECK(t, cJSON_IsNull(cJSON_GetObjectItem(root, "guidance")));
    cJSON_Delete(root);
    free(json);
    rl_eval_result_free(&res);
    rl_eval_result_free(&res);   // idempotent
}

// A source that adds +a, -a, +a, ... to every pixel: all of it at the Nyquist frequency, so the
// flicker (RMS of frequencies >= F/4) is a exactly. A ramp of r levels per frame is periodic to
// the DFT (a sawtooth): |X_k| = r F / (2 sin(pi k / F)), so its high band holds
// r/2 sqrt(sum_{k=F/4}^{3F/4} 1 / sin^2(pi k / F)) = 1.7547 r for F = 16: drifts count as well.
typedef struct { float a, ramp; } flicker_src;

static rl_status flicker_gen(void *user, const rl_eval_req *req, uint8_t *frames, rl_err *err)
{
    const flicker_src *fs = user;
    rl_eval_source truth = rl_eval_source_truth();
    rl_status rc = truth.gen(NULL, req, frames, err);
    const size_t fb = (size_t)req->H * req->W * 3;
    for (int f = 0; f < req->F; f++)
        for (size_t i = 0; i < fb; i++) {
            const float v = frames[f * fb + i] + (f % 2 ? -fs->a : fs->a) + fs->ramp * f;
            frames[f * fb + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
        }
    return rc;
}

static void test_eval_flicker(rl_test *t, const char *arg)
{
    rl_eval_opts o = rl_eval_default_opts();
    o.n_in = o.n_heldout = 4;
    flicker_src fs = { 3.0f, 0.0f };
    rl_eval_source src = { .name = "flicker", .gen = flicker_gen, .user = &fs, .na_reason = "test" };
    rl_eval_result res;
    rl_err e = { 0 };
    if (!rl_test_check(t, rl_eval_run(&res, &src, &o, &e) == RL_OK, "eval runs: %s",
                       e.code ? e.msg : "ok"))
        return;
    // exact in float: integer samples, power-of-two FFT of a +-3 square wave
    rl_test_check(t, fabs(res.flicker - 3.0) < 1e-4, "alternating +-3: flicker %.5f (want 3)",
                  res.flicker);
    rl_eval_result_free(&res);
    fs = (flicker_src){ 0.0f, 1.0f };   // 0 .. 15 levels over the clip (whole levels: exact)
    if (!RL_CHECK(t, rl_eval_run(&res, &src, &o, &e) == RL_OK)) return;
    double want = 0;
    for (int k = F / 4; k <= 3 * F / 4; k++) want += 1.0 / (sin(M_PI * k / F) * sin(M_PI * k / F));
    want = 0.5 * sqrt(want);
    // float sums of about 3000 series of 16 terms: 1e-4 relative is ample
    rl_test_check(t, fabs(res.flicker - want) < 1e-4 * want, "ramp of 1 level a frame: flicker "
                  "%.5f (want %.5f)", res.flicker, want);
    rl_eval_result_free(&res);
}

// A fake model: ignores negative prompts; at guidance 1 it draws the next colour of the palette
// (so only colour depends on guidance); travels by switching colour half-way.
static rl_status fake_model_gen(void *user, const rl_eval_req *req, uint8_t *frames, rl_err *err)
{
    rl_shapes_attr a, b;
    rl_shapes_spec s;
    rl_status rc = rl_shapes_caption_parse(&a, req->prompt, err);
    if (rc == RL_OK) rc = rl_shapes_spec_from_attr(&s, &a, req->seed, err);
    if (rc != RL_OK) return rc;
    if (req->guidance == 1.0f) s.a.color = (s.a.color + 1) % RL_N_COLOR;
    rl_shapes_render_u8(frames, &s, req->F, req->H, req->W);
    if (req->travel_to) {
        if ((rc = rl_shapes_caption_parse(&b, req->travel_to, err)) != RL_OK) return rc;
        uint8_t *tmp = malloc((size_t)req->F * req->H * req->W * 3);
        if (!tmp) return rl_errf(err, RL_E_NOMEM, "fake model");
        s.a.color = b.color;
        rl_shapes_render_u8(tmp, &s, req->F, req->H, req->W);
        const size_t half = (size_t)(req->F / 2) * req->H * req->W * 3;
        memcpy(frames + half, tmp + half, (size_t)req->F * req->H * req->W * 3 - half);
        free(tmp);
    }
    return RL_OK;
}

static void test_eval_model_rows(rl_test *t, const char *arg)
{
    rl_eval_opts o = rl_eval_default_opts();
    o.n_in = o.n_heldout = 8;
    o.n_guidance = 8;
    o.n_negative = 16;
    o.n_travel = 8;
    rl_eval_source src = { .name = "fake", .gen = fake_model_gen, .model = 1 };
    rl_eval_result res;
    rl_err e = { 0 };
    if (!rl_test_check(t, rl_eval_run(&res, &src, &o, &e) == RL_OK, "eval runs: %s",
                       e.code ? e.msg : "ok"))
        return;
    // colour (stated in every in-distribution prompt) is lost at guidance 1, the rest is kept
    const int right_at_1[RL_EVAL_N_ATTR] = { [RL_EVAL_COLOR] = 0, [RL_EVAL_SHAPE] = 8,
                                             [RL_EVAL_MOTION] = 8, [RL_EVAL_ALL] = 0 };
    for (int k = RL_EVAL_COLOR; k < RL_EVAL_N_ATTR; k++)
        rl_test_check(t, res.guid_scored[k] == 8 && res.guid_right_one[k] == right_at_1[k] &&
                             res.guid_right_default[k] == 8,
                      "guidance row, attribute %d: %d scored, %d right at 1 (want %d), %d at the "
                      "default (want 8)", k, res.guid_scored[k], res.guid_right_one[k],
                      right_at_1[k], res.guid_right_default[k]);
    rl_test_check(t, res.neg_x_with == res.neg_x_without, "negative ignored: X %d with, %d without",
                  res.neg_x_with, res.neg_x_without);
    RL_CHECK(t, res.travel_start_a == 8 && res.travel_end_b == 8);
    rl_test_check(t, fabs(res.travel_t[0]) < 0.05 && fabs(res.travel_t[F - 1] - 1) < 0.05,
                  "travel t from %.3f to %.3f", res.travel_t[0], res.travel_t[F - 1]);
    char *txt = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&txt, &len);
    rl_eval_print_table(f, &res);
    fclose(f);
    // the model rows are filled (only the CLIP score, without a CLIP pair, is n/a)
    const char *g = strstr(txt, "guidance effect");
    RL_CHECK(t, g && strncmp(g + 35, "n/a", 3) && strstr(txt, "n/a: no CLIP pair given"));
    RL_CHECK(t, g && strstr(g, "colour 0.0% vs 100.0%, shape 100.0% vs 100.0%"));
    free(txt);
    rl_eval_result_free(&res);

    o.n_guidance = 9;   // more than the in-distribution prompts
    RL_CHECK(t, rl_eval_run(&res, &src, &o, &e) == RL_E_PARAM && e.msg[0]);
}

// A broken model: travel clips are blank (background only: no object, so no colour), and every
// other clip is either a clean render or, for odd seeds, noise everywhere (objects all over, so
// no pixel stays background and its flicker is not measurable).
static rl_status broken_model_gen(void *user, const rl_eval_req *req, uint8_t *frames, rl_err *err)
{
    (void)user;
    const size_t n = (size_t)req->F * req->H * req->W * 3;
    if (req->travel_to) {
        memset(frames, 16, n);   // the black background, nothing on it
        return RL_OK;
    }
    rl_status rc = rl_eval_source_truth().gen(NULL, req, frames, err);
    if (rc != RL_OK || req->seed % 2 == 0) return rc;
    uint64_t x = req->seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        frames[i] = (uint8_t)(x >> 56);
    }
    return RL_OK;
}

static void test_eval_unmeasurable(rl_test *t, const char *arg)
{
    (void)arg;
    rl_eval_opts o = rl_eval_default_opts();
    o.n_in = o.n_heldout = 4;   // seeds 1000..1003 and 2000..2003: half of them noise
    o.n_guidance = o.n_negative = 0;
    o.n_travel = 4;
    rl_eval_source src = { .name = "broken", .gen = broken_model_gen, .model = 1 };
    rl_eval_result res;
    rl_err e = { 0 };
    if (!rl_test_check(t, rl_eval_run(&res, &src, &o, &e) == RL_OK, "eval runs: %s",
                       e.code ? e.msg : "ok"))
        return;
    int noise_nan = 1, clean_zero = 1;
    for (int i = 0; i < res.n_clips; i++) {
        if (res.clips[i].seed % 2) noise_nan &= isnan(res.clips[i].flicker);
        else clean_zero &= res.clips[i].flicker == 0.0f;
    }
    rl_test_check(t, noise_nan && clean_zero, "flicker: n/a on noise clips, 0 on clean renders");
    // the mean is over the measurable clips only: noise must not pull it to 0 or to NaN
    rl_test_check(t, res.n_flicker == res.n_clips / 2 && res.flicker == 0.0,
                  "flicker over %d of %d clips: %.3f", res.n_flicker, res.n_clips, res.flicker);
    // blank travel clips show no colour: neither A nor B, and no per-frame position
    rl_test_check(t, res.travel_start_a == 0 && res.travel_end_b == 0 && isnan(res.travel_t[0]) &&
                  res.travel_n[0] == 0, "blank travel: start A %d, end B %d, t[0] %g",
                  res.travel_start_a, res.travel_end_b, res.travel_t[0]);
    char *txt = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&txt, &len);
    rl_eval_print_table(f, &res);
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "%d of %d clips", res.n_clips / 2, res.n_clips);
    rl_test_check(t, txt && strstr(txt, want) && !strstr(txt, "nan"), "table: '%s', no nan", want);
    free(txt);
    txt = NULL;
    f = open_memstream(&txt, &len);
    rl_eval_print_json(f, &res);
    fclose(f);
    rl_test_check(t, txt && strstr(txt, "\"flicker\": null") && strstr(txt, "\"confidence\": {") &&
                  !strstr(txt, "nan"), "JSON: null flicker, confidences, no nan");
    free(txt);
    rl_eval_result_free(&res);
}

// The report: index.html with the table and one MP4 per clip; a missing parent is RL_E_IO.
static void test_eval_report(rl_test *t, const char *arg)
{
    rl_eval_opts o = rl_eval_default_opts();
    o.n_in = o.n_heldout = 2;
    o.keep_frames = 1;
    rl_eval_source src = rl_eval_source_truth();
    rl_eval_result res;
    rl_err e = { 0 };
    if (!RL_CHECK(t, rl_eval_run(&res, &src, &o, &e) == RL_OK)) return;
    const char *dir = rl_test_tmp_path(t, "report");
    rl_test_check(t, rl_eval_write_report(dir, &res, &e) == RL_OK, "report: %s",
                  e.code ? e.msg : "written");
    char path[512], buf[65536];
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "rb");
    const size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    int videos = 0;
    for (const char *p = buf; (p = strstr(p, "<video")); p++) videos++;
    RL_CHECK(t, strstr(buf, "all attributes") && strstr(buf, "held-out pairs") && videos == 4);
    snprintf(path, sizeof path, "%s/clips/003.mp4", dir);
    f = fopen(path, "rb");
    RL_CHECK(t, f != NULL);
    if (f) fclose(f);
    rl_test_check(t, rl_eval_write_report("/nonexistent-dir/x", &res, &e) == RL_E_IO,
                  "missing parent: %s", e.msg);
    rl_eval_result_free(&res);
}

// Seeds per prompt: clips ordered set, prompt, seed; seed k = the prompt's seed + k * stride.
static void test_eval_seeds(rl_test *t, const char *arg)
{
    (void)arg;
    rl_eval_opts o = rl_eval_default_opts();
    o.n_in = o.n_heldout = 2;
    o.n_seeds = 3;
    rl_eval_source src = rl_eval_source_truth();
    rl_eval_result res;
    rl_err e = { 0 };
    if (!RL_CHECK(t, rl_eval_run(&res, &src, &o, &e) == RL_OK)) return;
    int order = res.n_clips == 12 && res.total[0] == 6 && res.total[1] == 6;
    for (int i = 0; i < res.n_clips && order; i++) {
        const int set = i / 6, p = i % 6 / 3, k = i % 3;
        char prompt[96];
        rl_shapes_attr w;
        uint64_t seed;
        rl_eval_prompt(set, p, prompt, &w, &seed);
        order = res.clips[i].set == set && !strcmp(res.clips[i].prompt, prompt) &&
                res.clips[i].seed == seed + (uint64_t)k * RL_EVAL_SEED_STRIDE;
    }
    rl_test_check(t, order, "12 clips in order (set, prompt, seed)");
    RL_CHECK(t, res.right[0][RL_EVAL_ALL] == 6 && res.right[1][RL_EVAL_ALL] == 6);
    RL_CHECK(t, !res.has_clip && isnan(res.clips[0].clip_score));
    rl_eval_result_free(&res);
    o.n_seeds = 0;
    RL_CHECK(t, rl_eval_run(&res, &src, &o, &e) == RL_E_PARAM && strstr(e.msg, "seeds"));
}

// ---- the CLIP score ----------------------------------------------------------------------

enum { CS_P = 12 };   // projection width of the test pair (odd on purpose: no SIMD multiple)

static float cs_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0) * 2.0f - 1.0f;   // [-1, 1)
}

/* dir/clip_video/ with random weights (uniform, scaled by 1/sqrt(fan-in) so activations stay
 * O(1)) for a text encoder D wide; config.json from the text (NULL: the right one). */
static int cs_write_video(rl_test *t, const char *dir, int D, const char *config)
{
    char path[600];
    rl_err e = { 0 };
    rl_weights ws;
    rl_weights_init(&ws, "clip_video");
    uint64_t seed = 7;
    rl_status rc = RL_OK;
    snprintf(path, sizeof path, "%s/clip_video", dir);
    mkdir(path, 0777);
    for (int i = 0; i < RL_CLIPV_NCONV && !rc; i++) {
        float *w, *b;
        const int C = rl_clipv_ch[i], OC = rl_clipv_ch[i + 1];
        char name[64];
        snprintf(name, sizeof name, "visual.convs.%d.weight", i);
        rc = rl_weights_add_new(&ws, name, 4, (int64_t[]){ OC, C, 3, 3 }, &w, &e);
        snprintf(name, sizeof name, "visual.convs.%d.bias", i);
        if (!rc) rc = rl_weights_add_new(&ws, name, 1, (int64_t[]){ OC }, &b, &e);
        if (rc) break;
        const float sc = 1.7f / sqrtf(9.0f * C);
        for (int k = 0; k < OC * C * 9; k++) w[k] = sc * cs_rand(&seed);
        for (int k = 0; k < OC; k++) b[k] = 0.1f * cs_rand(&seed);
    }
    float *vp, *tp, *ls;
    const int CV = rl_clipv_ch[RL_CLIPV_NCONV];
    if (!rc) rc = rl_weights_add_new(&ws, "visual_projection.weight", 2, (int64_t[]){ CS_P, CV }, &vp, &e);
    if (!rc) rc = rl_weights_add_new(&ws, "text_projection.weight", 2, (int64_t[]){ CS_P, D }, &tp, &e);
    if (!rc) rc = rl_weights_add_new(&ws, "logit_scale", 1, (int64_t[]){ 1 }, &ls, &e);
    if (!rc) {
        for (int k = 0; k < CS_P * CV; k++) vp[k] = cs_rand(&seed) / sqrtf((float)CV);
        for (int k = 0; k < CS_P * D; k++) tp[k] = cs_rand(&seed) / sqrtf((float)D);
        ls[0] = 2.6593f;
        snprintf(path, sizeof path, "%s/clip_video/model.safetensors", dir);
        rc = rl_weights_save_st(&ws, path, NULL, RL_F32, &e);
    }
    rl_weights_free(&ws);
    if (!rl_test_check(t, rc == RL_OK, "clip_video written: %s", rc ? e.msg : "ok")) return 0;
    char def[256];
    snprintf(def, sizeof def, "{\"frames\": 4, \"channels\": [12, 32, 64, 64, 64], \"kernel\": 3, "
             "\"stride\": 2, \"projection_dim\": %d, \"sample_size\": 64}", CS_P);
    snprintf(path, sizeof path, "%s/clip_video/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!RL_CHECK(t, f != NULL)) return 0;
    fputs(config ? config : def, f);
    fclose(f);
    return 1;
}

/* The video encoder by hand, in double: keyframes k (F - 1) / 3 of frames (F, H, W, 3), conv
 * 3x3 stride 2 pad 1 + SiLU four times, spatial mean, projection, L2 norm. emb (CS_P). */
static void cs_video_ref(double *emb, const char *dir, const uint8_t *frames, int nf, int side)
{
    char path[600];
    rl_weights ws;
    rl_err e = { 0 };
    rl_weights_init(&ws, "ref");
    snprintf(path, sizeof path, "%s/clip_video/model.safetensors", dir);
    if (rl_weights_load_st(&ws, path, NULL, &e)) return;
    // (C, S, S) ping-pong buffers, as large as the widest layer at full size
    double *in = malloc(sizeof(double) * 64 * side * side);
    double *out = malloc(sizeof(double) * 64 * side * side);
    for (int k = 0; k < 4; k++)
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < side * side; p++)
                in[(k * 3 + ch) * side * side + p] =
                    frames[((size_t)(k * (nf - 1) / 3) * side * side + p) * 3 + ch] / 127.5 - 1.0;
    int S = side;
    for (int i = 0; i < RL_CLIPV_NCONV; i++) {
        char name[64];
        snprintf(name, sizeof name, "visual.convs.%d.weight", i);
        const float *w = rl_weights_find(&ws, name)->data;
        snprintf(name, sizeof name, "visual.convs.%d.bias", i);
        const float *b = rl_weights_find(&ws, name)->data;
        const int C = rl_clipv_ch[i], OC = rl_clipv_ch[i + 1], So = (S - 1) / 2 + 1;
        for (int oc = 0; oc < OC; oc++)
            for (int y = 0; y < So; y++)
                for (int x = 0; x < So; x++) {
                    double acc = b[oc];
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                const int iy = 2 * y + ky - 1, ix = 2 * x + kx - 1;
                                if (iy < 0 || ix < 0 || iy >= S || ix >= S) continue;
                                acc += (double)w[((oc * C + c) * 3 + ky) * 3 + kx] *
                                       in[((size_t)c * S + iy) * S + ix];
                            }
                    out[((size_t)oc * So + y) * So + x] = acc / (1.0 + exp(-acc));   // SiLU
                }
        S = So;
        double *tmp = in;
        in = out;
        out = tmp;
    }
    const int CV = rl_clipv_ch[RL_CLIPV_NCONV];
    const float *vp = rl_weights_find(&ws, "visual_projection.weight")->data;
    double n2 = 0;
    for (int p = 0; p < CS_P; p++) {
        emb[p] = 0;
        for (int c = 0; c < CV; c++) {
            double m = 0;
            for (int q = 0; q < S * S; q++) m += in[(size_t)c * S * S + q];
            emb[p] += vp[p * CV + c] * m / (S * S);
        }
        n2 += emb[p] * emb[p];
    }
    for (int p = 0; p < CS_P; p++) emb[p] /= sqrt(n2);
    free(in);
    free(out);
    rl_weights_free(&ws);
}

static double max_diff(const float *a, const double *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* The scorer against references: the text side against the public API's text encoder
 * (rl_encode_prompt, pooled at the first end token, projected by hand), the video side against
 * a double-precision conv stack; frames of another size are resampled (2x2 pixel copies come
 * back exactly); a folder without clip_video/ or with another encoder's config is refused. */
static void test_clipscore(rl_test *t, const char *arg)
{
    (void)arg;
    rl_err e = { 0 };
    rl_clipscore *cs = NULL;
    char tiny[4096], path[600], src[4200];
    if (!RL_CHECK(t, realpath(rl_test_fixture_path(t, "models/tiny_a"), tiny) != NULL)) return;
    rl_test_check(t, rl_clipscore_open(&cs, tiny, &e) == RL_E_MISSING && !cs &&
                  strstr(e.msg, "clip_video"), "no clip_video/: %s", e.msg);

    // a pair: tiny_a's tokenizer and text encoder (D = 32) with a random clip_video/
    const char *dir = rl_test_tmp_path(t, "pair");
    mkdir(dir, 0777);
    for (int i = 0; i < 2; i++) {
        const char *c = i ? "text_encoder" : "tokenizer";
        snprintf(src, sizeof src, "%s/%s", tiny, c);
        snprintf(path, sizeof path, "%s/%s", dir, c);
        if (!RL_CHECK(t, symlink(src, path) == 0)) return;
    }
    if (!cs_write_video(t, dir, 32, NULL)) return;
    e = (rl_err){ 0 };   // the message above is not this call's
    if (!rl_test_check(t, rl_clipscore_open(&cs, dir, &e) == RL_OK, "open: %s",
                       e.code ? e.msg : "ok"))
        return;
    RL_CHECK(t, rl_clipscore_dim(cs) == CS_P && rl_clipscore_size(cs) == 64);

    // text: the public API's last_hidden_state at the first end token, projected, normalised
    const char *prompt = "a blue star";   // short: the end token sits inside the sequence
    float temb[CS_P];
    RL_CHECK(t, rl_clipscore_text(cs, prompt, temb, &e) == RL_OK);
    rl_ctx *ctx = NULL;
    rl_bpe bpe = { 0 };
    if (RL_CHECK(t, rl_ctx_open(&ctx, tiny, 1, &e) == RL_OK) &&
        RL_CHECK(t, rl_tokfiles_open(&bpe, rl_test_fixture_path(t, "models/tiny_a/tokenizer"), &e) == RL_OK)) {
        const rl_model_info mi = rl_ctx_info(ctx);
        float *hid = rl_test_floats(t, (size_t)mi.text_len * mi.text_dim);
        int *ids = rl_test_alloc(t, sizeof(int) * (size_t)mi.text_len);
        RL_CHECK(t, rl_encode_prompt(ctx, prompt, hid, &e) == RL_OK &&
                    rl_tokenize(ctx, prompt, ids, &e) == RL_OK);
        const int eos = rl_clipt_first_eos(ids, mi.text_len, bpe.eos_id);
        rl_weights ws;
        rl_weights_init(&ws, "ref");
        snprintf(path, sizeof path, "%s/clip_video/model.safetensors", dir);
        if (RL_CHECK(t, rl_weights_load_st(&ws, path, NULL, &e) == RL_OK)) {
            const float *tp = rl_weights_find(&ws, "text_projection.weight")->data;
            double ref[CS_P], n2 = 0;
            for (int p = 0; p < CS_P; p++) {
                ref[p] = 0;
                for (int d = 0; d < mi.text_dim; d++)
                    ref[p] += (double)tp[p * mi.text_dim + d] * hid[(size_t)eos * mi.text_dim + d];
                n2 += ref[p] * ref[p];
            }
            for (int p = 0; p < CS_P; p++) ref[p] /= sqrt(n2);
            // the same float encoder on both sides (batch 1 vs 2 under CFG may round apart);
            // the projection sums 32 terms: 1e-5 of a unit vector
            const double d = max_diff(temb, ref, CS_P);
            rl_test_check(t, d < 1e-5, "text embedding vs rl_encode_prompt: max diff %.2e (eos at %d)",
                          d, eos);
        }
        rl_weights_free(&ws);
    }
    rl_bpe_free(&bpe);
    rl_ctx_close(&ctx);

    // video: a ground-truth clip against the double reference
    rl_shapes_attr a = { RL_BG_GRAY, RL_COLOR_BLUE, RL_SHAPE_STAR, RL_MOTION_SPINNING };
    rl_shapes_spec sp;
    RL_CHECK(t, rl_shapes_spec_from_attr(&sp, &a, 5, &e) == RL_OK);
    uint8_t *clip = rl_test_alloc(t, (size_t)F * 64 * 64 * 3);
    uint8_t *big = rl_test_alloc(t, (size_t)F * 128 * 128 * 3);
    rl_shapes_render_u8(clip, &sp, F, 64, 64);
    float vemb[CS_P], vbig[CS_P];
    double vref[CS_P];
    RL_CHECK(t, rl_clipscore_video(cs, clip, F, 64, 64, vemb, &e) == RL_OK);
    cs_video_ref(vref, dir, clip, F, 64);
    // float convs over at most 576 terms, then a mean and a 64-term projection: 2e-5
    const double dv = max_diff(vemb, vref, CS_P);
    rl_test_check(t, dv < 2e-5, "video embedding vs double reference: max diff %.2e", dv);
    double n2 = 0;
    for (int p = 0; p < CS_P; p++) n2 += (double)vemb[p] * vemb[p];
    const float cs_tv = rl_clipscore_cos(temb, vemb, CS_P);
    rl_test_check(t, fabs(n2 - 1) < 1e-5 && cs_tv >= -1 && cs_tv <= 1, "unit norm (%.7f), "
                  "cosine %.4f", n2, cs_tv);
    // the same clip at 128 x 128 in 2x2 pixel copies: bilinear at half-pixel centres gives
    // back exactly the 64 x 64 frames
    for (int f = 0; f < F; f++)
        for (int y = 0; y < 128; y++)
            for (int x = 0; x < 128; x++)
                memcpy(big + (((size_t)f * 128 + y) * 128 + x) * 3,
                       clip + (((size_t)f * 64 + y / 2) * 64 + x / 2) * 3, 3);
    RL_CHECK(t, rl_clipscore_video(cs, big, F, 128, 128, vbig, &e) == RL_OK);
    rl_test_check(t, !memcmp(vbig, vemb, sizeof vemb), "128 x 128 in 2x2 copies: the same "
                  "embedding bit for bit");
    RL_CHECK(t, rl_clipscore_video(cs, clip, 0, 64, 64, vbig, &e) == RL_E_PARAM);
    rl_clipscore_close(&cs);
    rl_clipscore_close(&cs);   // idempotent

    // another encoder's config is refused by name
    if (!cs_write_video(t, dir, 32, "{\"frames\": 8, \"projection_dim\": 12}")) return;
    rl_test_check(t, rl_clipscore_open(&cs, dir, &e) == RL_E_FORMAT && !cs &&
                  strstr(e.msg, "another clip encoder"), "frames 8: %s", e.msg);
    // a projection that does not fit the text encoder: RL_E_SHAPE naming the tensor
    if (!cs_write_video(t, dir, 24, NULL)) return;
    rl_test_check(t, rl_clipscore_open(&cs, dir, &e) == RL_E_SHAPE && !cs &&
                  strstr(e.msg, "text_projection"), "text_projection for D = 24: %s", e.msg);
}

/* The reversed clip renders as the clip played backwards, under the opposite motion word;
 * spinning and held-out results are refused. */
static void test_spec_reverse(rl_test *t, const char *arg)
{
    (void)arg;
    enum { F = 16, S = 64 };
    float *a = malloc(sizeof *a * 3 * F * S * S), *b = malloc(sizeof *b * 3 * F * S * S);
    int reversed = 0, refused_spin = 0, refused_heldout = 0, worst_motion = 1;
    double worst = 0;
    for (uint64_t i = 0; i < 400; i++) {
        rl_shapes_spec in, out = { .cx = -1 };
        rl_shapes_sample(&in, 5, i, RL_SHAPES_TRAIN);
        const rl_shapes_spec keep = out;
        if (!rl_shapes_spec_reverse(&out, &in)) {
            refused_spin += in.a.motion == RL_MOTION_SPINNING;
            rl_shapes_spec r = in;
            r.a.motion = in.a.motion ^ 1;   // left/right, up/down, growing/shrinking pairs
            refused_heldout += in.a.motion != RL_MOTION_SPINNING && rl_shapes_attr_heldout(&r.a);
            worst_motion &= memcmp(&out, &keep, sizeof out) == 0;   // left alone
            continue;
        }
        reversed++;
        worst_motion &= out.a.motion != in.a.motion && out.a.motion != RL_MOTION_SPINNING &&
                        !rl_shapes_attr_heldout(&out.a);
        if (reversed > 40) continue;   // rendering: a sample is enough
        rl_shapes_render_f32(a, &in, F, S, S);
        rl_shapes_render_f32(b, &out, F, S, S);
        for (int c = 0; c < 3; c++)
            for (int f = 0; f < F; f++)
                for (int k = 0; k < S * S; k++) {
                    const double d = fabs((double)a[((size_t)c * F + f) * S * S + k] -
                                          b[((size_t)c * F + (F - 1 - f)) * S * S + k]);
                    worst = d > worst ? d : worst;
                }
    }
    rl_test_check(t, reversed > 200 && refused_spin > 20 && refused_heldout > 0,
                  "400 clips: %d reversed, %d spinning and %d held-out results refused", reversed,
                  refused_spin, refused_heldout);
    rl_test_check(t, worst_motion, "reversed: the opposite motion word, never a held-out pair; "
                  "refused: output untouched");
    rl_test_check(t, worst < 1e-4, "frame f of the reversed clip is frame F-1-f (worst %.2g)", worst);
    free(a);
    free(b);
}

static void test_spec_swap_shape(rl_test *t, const char *arg)
{
    (void)arg;
    int swapped = 0, refused = 0, ok = 1, seen[RL_N_SHAPE][RL_N_SHAPE] = { { 0 } };
    for (uint64_t i = 0; i < 400; i++) {
        rl_shapes_spec in, out = { .cx = -1 };
        rl_shapes_sample(&in, 7, i, RL_SHAPES_TRAIN);
        const rl_shapes_spec keep = out;
        if (!rl_shapes_spec_swap_shape(&out, &in, (int)i)) {
            refused++;
            ok &= memcmp(&out, &keep, sizeof out) == 0;   // left alone
            continue;
        }
        swapped++;
        seen[in.a.shape][out.a.shape]++;
        rl_shapes_spec same = out;
        same.a.shape = in.a.shape;   // everything but the shape is the input's
        ok &= out.a.shape != in.a.shape && rl_shapes_attr_valid(&out.a) &&
              !rl_shapes_attr_heldout(&out.a) && memcmp(&same, &in, sizeof in) == 0;
    }
    int pairs = 0;
    for (int a = 0; a < RL_N_SHAPE; a++)
        for (int b = 0; b < RL_N_SHAPE; b++) pairs += seen[a][b] > 0;
    rl_test_check(t, swapped > 350 && pairs >= 10,
                  "400 clips: %d given another shape (%d of 12 ordered shape pairs), %d refused",
                  swapped, pairs, refused);
    rl_test_check(t, ok, "swapped: another shape, the rest of the clip unchanged, never a "
                  "held-out or impossible clip; refused: output untouched");
    rl_shapes_spec spin = { .a = { RL_BG_BLACK, RL_COLOR_RED, RL_SHAPE_SQUARE, RL_MOTION_SPINNING } }, o;
    int never_circle = 1;
    for (int k = 0; k < 6; k++)
        never_circle &= rl_shapes_spec_swap_shape(&o, &spin, k) && o.a.shape != RL_SHAPE_CIRCLE;
    rl_test_check(t, never_circle, "a spinning square never becomes a spinning circle");
}

static void test_spec_centre(rl_test *t, const char *arg)
{
    (void)arg;
    uint8_t *clip = rl_test_alloc(t, CLIP_BYTES);
    double worst_mid = 0.0, worst_inside = 1e9;
    int same = 1, seen = 0, analysed = 0;
    for (uint64_t i = 0; i < 300; i++) {
        rl_shapes_spec in, c;
        rl_shapes_sample(&in, 11, i, RL_SHAPES_ANY);
        c = in;
        rl_shapes_spec_centre(&c);
        rl_shapes_spec keep = c;   // all but the start position is the input's
        keep.cx = in.cx;
        keep.cy = in.cy;
        same &= memcmp(&keep, &in, sizeof in) == 0;
        const float mx = c.cx + 0.5f * c.dx, my = c.cy + 0.5f * c.dy;
        worst_mid = fmax(worst_mid, fmax(fabs(mx - 32.0), fabs(my - 32.0)));
        for (int f = 0; f < F; f++) {   // distance of the circumcircle to the nearest edge
            float x, y, r, ang;
            rl_shapes_spec_at(&c, f, F, &x, &y, &r, &ang);
            worst_inside = fmin(worst_inside, fmin(fmin(x - r, RL_SHAPES_REF - x - r),
                                                   fmin(y - r, RL_SHAPES_REF - y - r)));
        }
        if (i % 10) continue;   // the analyser reads the same attributes off the moved clip
        seen++;
        rl_shapes_render_u8(clip, &c, F, H, W);
        rl_shapes_analysis a;
        rl_err e = { 0 };
        if (rl_shapes_analyze(&a, clip, F, H, W, NULL, &e) != RL_OK) {
            rl_test_fail(t, "clip %d: %s", (int)i, e.msg);
            return;
        }
        analysed += a.a.motion == c.a.motion && a.a.color == c.a.color && a.a.bg == c.a.bg &&
                    a.persistent;
    }
    rl_test_check(t, same, "centred: only the start position changes");
    rl_test_check(t, worst_mid < 1e-4, "300 clips: the path's midpoint is the frame centre "
                  "(worst %.2g px off)", worst_mid);
    rl_test_check(t, worst_inside >= 1.0, "the shape stays inside the frame in every frame "
                  "(closest %.1f px from an edge)", worst_inside);
    rl_test_check(t, analysed >= seen - 1, "%d of %d centred clips analysed as their caption "
                  "says (background, colour, motion, one object)", analysed, seen);
}

/* A stand-in text encoder: each word of the prompt adds a fixed vector at its token position,
 * except that "right" is read as "left" (the collapse the shipped CLIP pair shows). */
static rl_status fake_encode(void *user, const char *prompt, float *out, rl_err *err)
{
    (void)err;
    const int *ld = user, L = ld[0], D = ld[1];
    memset(out, 0, sizeof *out * (size_t)L * D);
    char buf[160];
    snprintf(buf, sizeof buf, "%s", prompt);
    int t = 0;
    for (char *w = strtok(buf, " "); w && t < L; w = strtok(NULL, " "), t++) {
        if (!strcmp(w, "right")) w = "left";
        unsigned h = 2166136261u;
        for (const char *c = w; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
        for (int c = 0; c < D; c++) {
            h = h * 1103515245u + 12345u;
            out[(size_t)t * D + c] = (float)((h >> 8) & 0xffff) / 65536.0f - 0.5f;
        }
    }
    return RL_OK;
}

static void test_text_separation(rl_test *t, const char *arg)
{
    (void)arg;
    int ld[2] = { 12, 16 };
    rl_eval_result res = { 0 };
    rl_err err = { 0 };
    RL_CHECK(t, rl_eval_text_separation(&res, fake_encode, ld, ld[0], ld[1], &err) == RL_OK);
    RL_CHECK(t, res.has_textsep && res.text_norm > 0);
    const int m = RL_EVAL_MOTION;
    rl_test_check(t, res.textsep[m].min == 0 && res.textsep[m].median > 0,
                  "motion: the collapsed pair is the closest at 0 (%g), median %g",
                  res.textsep[m].min, res.textsep[m].median);
    rl_test_check(t, res.textsep[m].a == RL_MOTION_LEFT && res.textsep[m].b == RL_MOTION_RIGHT,
                  "motion: closest pair is left / right (%d / %d)", res.textsep[m].a, res.textsep[m].b);
    for (int k = 0; k < RL_EVAL_MOTION; k++)
        rl_test_check(t, res.textsep[k].min > 0 && res.textsep[k].min <= res.textsep[k].median,
                      "attribute %d: distinct words apart (closest %g, median %g)", k,
                      res.textsep[k].min, res.textsep[k].median);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "determinism", test_determinism, NULL },
        { "heldout", test_heldout, NULL },
        { "geometry", test_geometry, NULL },
        { "render_area", test_render_area, NULL },
        { "captions", test_captions, NULL },
        { "analyzer_clean", test_analyzer_clean, NULL },
        { "analyzer_degraded", test_analyzer_degraded, NULL },
        { "analyzer_persistence", test_analyzer_persistence, NULL },
        { "eval_truth", test_eval_truth, NULL },
        { "eval_flicker", test_eval_flicker, NULL },
        { "eval_unmeasurable", test_eval_unmeasurable, NULL },
        { "eval_model_rows", test_eval_model_rows, NULL },
        { "eval_report", test_eval_report, NULL },
        { "eval_seeds", test_eval_seeds, NULL },
        { "clipscore", test_clipscore, NULL },
        { "text_separation", test_text_separation, NULL },
        { "spec_reverse", test_spec_reverse, NULL },
        { "spec_swap_shape", test_spec_swap_shape, NULL },
        { "spec_centre", test_spec_centre, NULL },
        { 0 },
    });
}
