/* tools/shapes/analyze.c - the procedural analyzer of the shapes world. See analyze.h for the
 * method; the constants below are the nominal sizes of what it measures. */
#include "tools/shapes/analyze.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BORDER 2              // px of frame border that sample the background
#define PEAK_RANK 6           // the peak distance of a frame is its 6th largest (not one outlier)
#define MIN_PEAK 30.0f        // below this no pixel differs from the background: no object
#define MASK_FRAC 0.4f        // object threshold, share of the peak distance
#define MASK_MIN 25.0f        // ... and at least this many levels (noise stays below it)
#define CLIP_FRAC 0.3f        // ... and at least this share of the clip's (median) peak: a frame
                              // where the object is small and faint keeps noise out of its mask
#define CORE_FRAC 0.7f        // core pixels (for the colour), share of the peak distance
#define SPECK_FRAC 0.1f       // components under this share of the largest are specks
#define SPECK_MIN 3           // ... as are components under 3 px
#define MIN_OBJECT 4          // px an object needs in every frame to count as present

// Moment ratio rho_k of a perfect render (k = 4 square, 3 triangle, 5 star), measured on 3000
// 64 x 64 renders of every size and motion: square 0.412..0.435, triangle 0.644..0.658, star
// 0.850..0.877; the other two ratios of any shape, and all three of a circle, stay under 0.05.
static const float rho_ideal[RL_N_SHAPE] = { 1.0f, 0.42f, 0.65f, 0.86f };
static const int shape_k[RL_N_SHAPE] = { 0, 4, 3, 5 };
#define CIRCLE_BELOW 0.2f     // every score under this: a circle

// nominal sizes of the three kinds of motion (world.h): path, ln(area ratio), turn
#define MOVE_NOMINAL 28.0f
#define SIZE_NOMINAL 2.0592f  // ln(14^2 / 5^2)
#define TURN_NOMINAL 90.0f    // 6 degrees x 15 frame steps

// ---- helpers --------------------------------------------------------------------------------

// confidence from the best and the runner-up distance (smaller is better)
static float dist_conf(float d1, float d2)
{
    return d1 + d2 > 0.0f ? (d2 - d1) / (d2 + d1) : 0.0f;
}

static float dist3(const float a[3], const float b[3])
{
    const float x = a[0] - b[0], y = a[1] - b[1], z = a[2] - b[2];
    return sqrtf(x * x + y * y + z * z);
}

int rl_shapes_nearest_color(const float rgb[3], const float bg_rgb[3], float *conf)
{
    int best = 0;
    float d1 = INFINITY, d2 = INFINITY;
    for (int c = 0; c < RL_N_COLOR; c++) {
        // distance from rgb to the segment from p diluted halfway to the background, to p
        float p[3], e[3], w[3], ee = 0.0f, we = 0.0f;
        for (int ch = 0; ch < 3; ch++) {
            p[ch] = rl_shapes_color_rgb[c][ch];
            e[ch] = 0.5f * (bg_rgb[ch] - p[ch]);            // p -> halfway to the background
            w[ch] = rgb[ch] - p[ch];
            ee += e[ch] * e[ch];
            we += w[ch] * e[ch];
        }
        float t = ee > 0.0f ? we / ee : 0.0f;
        t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
        float q[3];
        for (int ch = 0; ch < 3; ch++) q[ch] = p[ch] + t * e[ch];
        const float d = dist3(rgb, q);
        if (d < d1) { d2 = d1; d1 = d; best = c; }
        else if (d < d2) d2 = d;
    }
    if (conf) *conf = dist_conf(d1, d2);
    return best;
}

// least-squares slope of y over x = 0..n-1 where w[i] > 0
static double trend(const double *y, const double *w, int n)
{
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        if (w[i] <= 0) continue;
        sw += 1; sx += i; sy += y[i]; sxx += (double)i * i; sxy += i * y[i];
    }
    const double den = sw * sxx - sx * sx;
    return sw >= 2 && den > 0 ? (sw * sxy - sx * sy) / den : 0.0;
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// Labels the 8-connected components of mask (H, W) into lab (0: none, 1..); returns how many.
// area[id] gets each size (area has room for H*W/2 + 2 entries: components are disjoint).
static int components(int *lab, int *area, int *stack, const uint8_t *mask, int H, int W)
{
    const size_t S = (size_t)H * W;
    memset(lab, 0, sizeof(int) * S);
    int n = 0;
    for (size_t i = 0; i < S; i++) {
        if (!mask[i] || lab[i]) continue;
        const int id = ++n;
        size_t top = 0;
        stack[top++] = (int)i;
        lab[i] = id;
        area[id] = 0;
        while (top) {
            const int p = stack[--top], py = p / W, px = p % W;
            area[id]++;
            for (int dy = -1; dy <= 1; dy++) {
                for (int dx = -1; dx <= 1; dx++) {
                    const int qy = py + dy, qx = px + dx;
                    if (qy < 0 || qy >= H || qx < 0 || qx >= W) continue;
                    const size_t q = (size_t)qy * W + qx;
                    if (mask[q] && !lab[q]) { lab[q] = id; stack[top++] = (int)q; }
                }
            }
        }
    }
    return n;
}

// out (H, W, 3): mean of the 3x3 neighbourhood of rgb (H, W, 3) inside the frame; tmp (H, W, 3)
static void box3(float *out, float *tmp, const uint8_t *rgb, int H, int W)
{
    for (int y = 0; y < H; y++)          // along x: sums of up to 3, divided by their count
        for (int x = 0; x < W; x++) {
            const int x0 = x > 0 ? x - 1 : 0, x1 = x < W - 1 ? x + 1 : W - 1;
            for (int ch = 0; ch < 3; ch++) {
                float acc = 0;
                for (int q = x0; q <= x1; q++) acc += rgb[((size_t)y * W + q) * 3 + ch];
                tmp[((size_t)y * W + x) * 3 + ch] = acc / (float)(x1 - x0 + 1);
            }
        }
    for (int y = 0; y < H; y++) {        // along y
        const int y0 = y > 0 ? y - 1 : 0, y1 = y < H - 1 ? y + 1 : H - 1;
        for (size_t i = 0; i < (size_t)W * 3; i++) {
            float acc = 0;
            for (int q = y0; q <= y1; q++) acc += tmp[(size_t)q * W * 3 + i];
            out[(size_t)y * W * 3 + i] = acc / (float)(y1 - y0 + 1);
        }
    }
}

// dst (H, W) |= obj (H, W) dilated by a (2r+1)^2 square
static void dilate_or(uint8_t *dst, const uint8_t *obj, int H, int W, int r)
{
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            if (!obj[(size_t)y * W + x]) continue;
            for (int qy = y - r; qy <= y + r; qy++)
                for (int qx = x - r; qx <= x + r; qx++)
                    if (qy >= 0 && qy < H && qx >= 0 && qx < W) dst[(size_t)qy * W + qx] = 1;
        }
    }
}

/* Soft coverage of pixel p (3 bytes) by the object: its colour projected on the background ->
 * object axis e (|e|^2 = ee), clamped to [0, 1]. */
static float coverage(const uint8_t *p, const float bg[3], const float e[3], float ee)
{
    float al = 0.0f;
    for (int ch = 0; ch < 3; ch++) al += ((float)p[ch] - bg[ch]) * e[ch];
    return fminf(fmaxf(al / ee, 0.0f), 1.0f);
}

// ---- the analyzer -----------------------------------------------------------------------------

rl_status rl_shapes_analyze(rl_shapes_analysis *out, const uint8_t *frames, int F, int H, int W,
                            uint8_t *bg_mask, rl_err *err)
{
    if (F < 1 || F > RL_SHAPES_MAX_FRAMES || H < 8 || W < 8)
        return rl_errf(err, RL_E_PARAM, "shapes analyzer: clip of %d x %d x %d frames; expected "
                       "1..%d frames of at least 8 x 8", F, H, W, RL_SHAPES_MAX_FRAMES);
    const size_t S = (size_t)H * W;
    rl_status rc = RL_OK;
    float *dist = malloc(sizeof(float) * S * F);       // (F, H, W) distance from the background
    uint8_t *obj = calloc(S * F, 1);                    // (F, H, W) the object, per frame
    uint8_t *tmp = malloc(S);                           // (H, W) mask, then dilation
    uint8_t *near = calloc(S, 1);                       // (H, W) near the object in some frame
    int *lab = malloc(sizeof(int) * S), *stack = malloc(sizeof(int) * S);
    int *area = malloc(sizeof(int) * (S / 2 + 2));
    float *box = malloc(sizeof(float) * S * 6);         // (2, H, W, 3) 3x3 means and scratch
    if (!dist || !obj || !tmp || !near || !lab || !stack || !area || !box) {
        rc = rl_errf(err, RL_E_NOMEM, "shapes analyzer: no memory for a %d x %d x %d clip",
                     F, H, W);
        goto fail;
    }
    *out = (rl_shapes_analysis){ .a = { -1, -1, -1, -1 }, .F = F };

    // -- background: median of the border, nearest of the three
    {
        int hist[3][256] = { { 0 } }, n = 0;
        for (int f = 0; f < F; f++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    if (x >= BORDER && x < W - BORDER && y >= BORDER && y < H - BORDER) continue;
                    const uint8_t *p = frames + (((size_t)f * H + y) * W + x) * 3;
                    for (int ch = 0; ch < 3; ch++) hist[ch][p[ch]]++;
                    n++;
                }
        for (int ch = 0; ch < 3; ch++) {
            int v = 0, acc = 0;
            while (v < 255 && (acc += hist[ch][v]) * 2 < n) v++;
            out->bg_rgb[ch] = (float)v;
        }
        float d1 = INFINITY, d2 = INFINITY;
        for (int b = 0; b < RL_N_BG; b++) {
            const float ref[3] = { rl_shapes_bg_rgb[b][0], rl_shapes_bg_rgb[b][1],
                                   rl_shapes_bg_rgb[b][2] };
            const float d = dist3(out->bg_rgb, ref);
            if (d < d1) { d2 = d1; d1 = d; out->a.bg = b; }
            else if (d < d2) d2 = d;
        }
        out->bg_conf = dist_conf(d1, d2);
    }

    // -- distance from the measured background; the clip's peak distance
    float peak, fpeak[RL_SHAPES_MAX_FRAMES];
    {
        float sorted[RL_SHAPES_MAX_FRAMES];
        for (int f = 0; f < F; f++) {
            float top[PEAK_RANK] = { 0 };   // descending
            // distance of the 3x3 mean colour: noise shrinks 3 times, edges stay put
            box3(box, box + S * 3, frames + (size_t)f * S * 3, H, W);
            for (size_t i = 0; i < S; i++) {
                const float d = dist3(box + i * 3, out->bg_rgb);
                dist[(size_t)f * S + i] = d;
                if (d > top[PEAK_RANK - 1]) {
                    int k = PEAK_RANK - 1;
                    while (k > 0 && top[k - 1] < d) { top[k] = top[k - 1]; k--; }
                    top[k] = d;
                }
            }
            fpeak[f] = top[PEAK_RANK - 1];
        }
        memcpy(sorted, fpeak, sizeof(float) * F);
        qsort(sorted, (size_t)F, sizeof(float), cmp_float);
        peak = sorted[F / 2];
    }
    for (int f = 0; f < F; f++)
        for (int ch = 0; ch < 3; ch++) out->frame_rgb[f][ch] = NAN;   // until measured
    if (peak < MIN_PEAK) {          // nothing but background: no object, no verdicts
        out->bad_frames = F;
        if (bg_mask) memset(bg_mask, 1, S);
        goto done;
    }

    // -- per frame: components, the object, core colour. Thresholds follow each frame's own
    // peak, so a clip whose colour changes (prompt travel) keeps its object in every frame
    // (palette colours differ from their background by 0.43x to 2.3x of one another).
    double fg_sum[3] = { 0 }, fg_n = 0;
    for (int f = 0; f < F; f++) {
        const float *d_f = dist + (size_t)f * S;
        const float thr = fmaxf(fmaxf(MASK_MIN, MASK_FRAC * fpeak[f]), CLIP_FRAC * peak);
        const float core = CORE_FRAC * fpeak[f];
        if (fpeak[f] < MIN_PEAK) {   // nothing in this frame
            out->bad_frames++;
            continue;
        }
        for (size_t i = 0; i < S; i++) tmp[i] = d_f[i] > thr;
        const int n = components(lab, area, stack, tmp, H, W);
        int best = 0;
        for (int id = 1; id <= n; id++)
            if (!best || area[id] > area[best]) best = id;
        int count = 0;
        for (int id = 1; id <= n; id++) {
            const float min_area = fmaxf((float)SPECK_MIN, SPECK_FRAC * (float)area[best]);
            count += (float)area[id] >= min_area;
        }
        if (count != 1 || !best || area[best] < MIN_OBJECT) out->bad_frames++;
        if (!best) continue;
        uint8_t *o_f = obj + (size_t)f * S;
        double s[3] = { 0 }, k = 0;
        for (size_t i = 0; i < S; i++) {
            if (lab[i] != best) continue;
            o_f[i] = 1;
            if (d_f[i] < core) continue;
            const uint8_t *p = frames + ((size_t)f * S + i) * 3;
            for (int ch = 0; ch < 3; ch++) s[ch] += p[ch];
            k++;
        }
        for (int ch = 0; ch < 3; ch++) {
            fg_sum[ch] += s[ch];
            if (k > 0) out->frame_rgb[f][ch] = (float)(s[ch] / k);
        }
        fg_n += k;
    }
    out->persistent = out->bad_frames == 0;
    out->persist_conf = 1.0f - (float)out->bad_frames / (float)F;
    if (fg_n == 0) goto done;
    for (int ch = 0; ch < 3; ch++) out->fg_rgb[ch] = (float)(fg_sum[ch] / fg_n);
    for (int f = 0; f < F; f++)
        if (isnan(out->frame_rgb[f][0])) memcpy(out->frame_rgb[f], out->fg_rgb, sizeof(float) * 3);
    out->a.color = rl_shapes_nearest_color(out->fg_rgb, out->bg_rgb, &out->color_conf);

    // -- per frame: soft coverage over the dilated object, centroid, area, moments
    double cxs[RL_SHAPES_MAX_FRAMES], cys[RL_SHAPES_MAX_FRAMES], lareas[RL_SHAPES_MAX_FRAMES];
    double wts[RL_SHAPES_MAX_FRAMES];
    double complex mom[RL_SHAPES_MAX_FRAMES][3];    // c_3, c_4, c_5
    double rho[RL_SHAPES_MAX_FRAMES][3];
    float e[3], ee = 0.0f;                          // background -> object colour
    for (int ch = 0; ch < 3; ch++) {
        e[ch] = out->fg_rgb[ch] - out->bg_rgb[ch];
        ee += e[ch] * e[ch];
    }
    for (int f = 0; f < F; f++) {
        const uint8_t *o_f = obj + (size_t)f * S;
        memset(tmp, 0, S);
        dilate_or(tmp, o_f, H, W, 2);
        dilate_or(near, o_f, H, W, 3);
        double A = 0, sx = 0, sy = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const size_t i = (size_t)y * W + x;
                if (!tmp[i]) continue;
                const float al = coverage(frames + ((size_t)f * S + i) * 3, out->bg_rgb, e, ee);
                A += al; sx += al * (x + 0.5); sy += al * (y + 0.5);
            }
        wts[f] = A;
        out->frame_area[f] = (float)A;
        mom[f][0] = mom[f][1] = mom[f][2] = 0;
        rho[f][0] = rho[f][1] = rho[f][2] = 0;
        if (A <= 0) { cxs[f] = cys[f] = lareas[f] = 0; continue; }
        const double cx = sx / A, cy = sy / A;
        cxs[f] = cx * RL_SHAPES_REF / W;
        cys[f] = cy * RL_SHAPES_REF / H;
        lareas[f] = log(A);
        double norm[3] = { 0 };
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const size_t i = (size_t)y * W + x;
                if (!tmp[i]) continue;
                const float al = coverage(frames + ((size_t)f * S + i) * 3, out->bg_rgb, e, ee);
                if (al <= 0.0f) continue;
                const double complex z = (x + 0.5 - cx) + I * (y + 0.5 - cy);
                const double r = cabs(z);
                double complex zk = z * z * z;
                double rk = r * r * r;
                for (int k = 0; k < 3; k++) {
                    mom[f][k] += al * zk;
                    norm[k] += al * rk;
                    zk *= z;
                    rk *= r;
                }
            }
        for (int k = 0; k < 3; k++) rho[f][k] = norm[k] > 0 ? cabs(mom[f][k]) / norm[k] : 0;
    }

    // -- shape: area-weighted moment ratios against a perfect render's
    {
        double wsum = 0, rk[3] = { 0 };
        for (int f = 0; f < F; f++) {
            wsum += wts[f];
            for (int k = 0; k < 3; k++) rk[k] += wts[f] * rho[f][k];
        }
        float best = 0.0f, second = 0.0f;
        int bs = RL_SHAPE_CIRCLE;
        for (int s = 1; s < RL_N_SHAPE; s++) {
            const float sc = (float)(rk[shape_k[s] - 3] / wsum) / rho_ideal[s];
            out->shape_score[s] = sc;
            if (sc > best) { second = best; best = sc; bs = s; }
            else if (sc > second) second = sc;
        }
        out->shape_score[RL_SHAPE_CIRCLE] = 1.0f - best;
        if (best < CIRCLE_BELOW) {
            out->a.shape = RL_SHAPE_CIRCLE;
            out->shape_conf = 1.0f - best / CIRCLE_BELOW;
        } else {
            out->a.shape = bs;
            out->shape_conf = fminf(1.0f, (best - fmaxf(second, CIRCLE_BELOW)) / best * 2.0f);
        }
    }

    // -- motion: centroid, size and orientation trends
    if (F >= 2) {
        const double steps = F - 1;
        out->move_x = (float)(trend(cxs, wts, F) * steps);
        out->move_y = (float)(trend(cys, wts, F) * steps);
        out->log_area = (float)(trend(lareas, wts, F) * steps);
        if (out->a.shape != RL_SHAPE_CIRCLE) {
            const int k = shape_k[out->a.shape], ki = k - 3;
            const double period = 2 * M_PI / k, reliable = 0.5 * CIRCLE_BELOW * rho_ideal[out->a.shape];
            double inc[RL_SHAPES_MAX_FRAMES];
            int n = 0;
            for (int f = 0; f + 1 < F; f++) {
                if (rho[f][ki] < reliable || rho[f + 1][ki] < reliable) continue;
                double d = (carg(mom[f + 1][ki]) - carg(mom[f][ki])) / k;
                d -= period * floor(d / period + 0.5);     // wrap to [-period/2, period/2)
                inc[n++] = d;
            }
            if (n > 0) {
                float incf[RL_SHAPES_MAX_FRAMES];
                for (int i = 0; i < n; i++) incf[i] = (float)inc[i];
                qsort(incf, (size_t)n, sizeof(float), cmp_float);
                const double med = n % 2 ? incf[n / 2] : 0.5 * (incf[n / 2 - 1] + incf[n / 2]);
                out->turn_deg = (float)(med * steps * 180.0 / M_PI);
            }
        }
        const float sm = hypotf(out->move_x, out->move_y) / MOVE_NOMINAL;
        const float sz = fabsf(out->log_area) / SIZE_NOMINAL;
        const float ss = fabsf(out->turn_deg) / TURN_NOMINAL;
        float best, second;
        if (sm >= sz && sm >= ss) {
            best = sm; second = fmaxf(sz, ss);
            if (fabsf(out->move_x) >= fabsf(out->move_y))
                out->a.motion = out->move_x < 0 ? RL_MOTION_LEFT : RL_MOTION_RIGHT;
            else
                out->a.motion = out->move_y < 0 ? RL_MOTION_UP : RL_MOTION_DOWN;
        } else if (sz >= ss) {
            best = sz; second = fmaxf(sm, ss);
            out->a.motion = out->log_area > 0 ? RL_MOTION_GROWING : RL_MOTION_SHRINKING;
        } else {
            best = ss; second = fmaxf(sm, sz);
            out->a.motion = RL_MOTION_SPINNING;
        }
        out->motion_conf = best > 0 ? 1.0f - second / best : 0.0f;
        if (out->motion_conf > best) out->motion_conf = best;   // barely moving: unsure
    }

done:
    if (bg_mask)
        for (size_t i = 0; i < S; i++) bg_mask[i] = !near[i];
fail:
    free(dist); free(obj); free(tmp); free(near); free(lab); free(stack); free(area); free(box);
    return rc;
}
