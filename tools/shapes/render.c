/* tools/shapes/render.c - shapes-world clips: exact signed distance to a regular star polygon,
 * 4 x 4 supersampling near the edge only. See render.h. */
#include "tools/shapes/render.h"

#include <math.h>
#include <string.h>

#define SS 4                   // samples per pixel side
#define HALF_DIAG 0.7072f      // a pixel centre farther than this from the edge is pure

// One frame's shape in pixel coordinates.
typedef struct {
    float cx, cy;              // centre, px (pixel centres at i + 0.5)
    float R;                   // circumradius, px
    int n;                     // vertices (0: circle)
    float ux[5], uy[5];        // unit vectors from the centre to each vertex
    float ix, iy;              // inner vertex in the folded frame (tip at (R, 0))
} geom;

static void geom_init(geom *g, const rl_shapes_spec *s, int f, int F, int H, int W)
{
    float cx, cy, r, ang;
    rl_shapes_spec_at(s, f, F, &cx, &cy, &r, &ang);
    g->cx = cx * (float)W / RL_SHAPES_REF;
    g->cy = cy * (float)H / RL_SHAPES_REF;
    g->R = r * (float)(H < W ? H : W) / RL_SHAPES_REF;
    static const int nv[RL_N_SHAPE] = { 0, 4, 3, 5 };
    g->n = nv[s->a.shape];
    if (!g->n) return;
    const double pi = M_PI, half = pi / g->n;     // half the angle between vertices
    // inner radius: the edge midpoint for a polygon, the pentagram's crossing for the star
    const double ri = s->a.shape == RL_SHAPE_STAR ? g->R * cos(2 * half) / cos(half)
                                                  : g->R * cos(half);
    g->ix = (float)(ri * cos(half));
    g->iy = (float)(ri * sin(half));
    // angle 0 is upright: a vertex up (x right, y down), except the square, which sits flat
    const double a0 = ang + (s->a.shape == RL_SHAPE_SQUARE ? pi / 4 : 0.0);
    for (int k = 0; k < g->n; k++) {
        const double a = a0 + 2 * pi * k / g->n;
        g->ux[k] = (float)sin(a);
        g->uy[k] = (float)-cos(a);
    }
}

// The point (px, py) folded into the half-wedge of its nearest vertex: (a, b), b >= 0.
static inline void fold(const geom *g, float px, float py, float *a, float *b)
{
    const float x = px - g->cx, y = py - g->cy;
    int best = 0;
    float bd = x * g->ux[0] + y * g->uy[0];
    for (int k = 1; k < g->n; k++) {
        const float d = x * g->ux[k] + y * g->uy[k];
        if (d > bd) { bd = d; best = k; }
    }
    *a = bd;
    *b = fabsf(-x * g->uy[best] + y * g->ux[best]);   // across the vertex axis, mirrored
}

// Signed distance, negative inside. In the folded half-wedge the boundary is the one segment
// from the tip T = (R, 0) to the inner vertex I; every other edge is a mirror image of it and
// so no closer to a point inside the wedge.
static float sdist(const geom *g, float px, float py)
{
    if (!g->n) return hypotf(px - g->cx, py - g->cy) - g->R;
    float a, b;
    fold(g, px, py, &a, &b);
    const float ex = g->ix - g->R, ey = g->iy;              // T -> I
    const float wx = a - g->R, wy = b;                       // T -> q
    float t = (wx * ex + wy * ey) / (ex * ex + ey * ey);
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    const float d = hypotf(wx - t * ex, wy - t * ey);
    return ex * wy - ey * wx > 0.0f ? -d : d;               // the centre's side is inside
}

static inline int inside(const geom *g, float px, float py)
{
    if (!g->n) {
        const float x = px - g->cx, y = py - g->cy;
        return x * x + y * y < g->R * g->R;
    }
    float a, b;
    fold(g, px, py, &a, &b);
    return (g->ix - g->R) * b - g->iy * (a - g->R) > 0.0f;
}

// Coverage of pixel (x, y): exact 0 or 1 away from the edge, 16 samples near it.
static float pixel_cov(const geom *g, int x, int y)
{
    const float px = (float)x + 0.5f, py = (float)y + 0.5f;
    const float d = sdist(g, px, py);
    if (d <= -HALF_DIAG) return 1.0f;
    if (d >= HALF_DIAG) return 0.0f;
    int hits = 0;
    for (int j = 0; j < SS; j++)
        for (int i = 0; i < SS; i++)
            hits += inside(g, (float)x + ((float)i + 0.5f) / SS, (float)y + ((float)j + 0.5f) / SS);
    return (float)hits * (1.0f / (SS * SS));
}

// Bounding box of the shape, clipped to the frame: [x0, x1) x [y0, y1).
static void geom_box(const geom *g, int H, int W, int *x0, int *x1, int *y0, int *y1)
{
    const float m = g->R + 1.0f;
    *x0 = (int)floorf(g->cx - m); *x1 = (int)ceilf(g->cx + m) + 1;
    *y0 = (int)floorf(g->cy - m); *y1 = (int)ceilf(g->cy + m) + 1;
    if (*x0 < 0) *x0 = 0;
    if (*y0 < 0) *y0 = 0;
    if (*x1 > W) *x1 = W;
    if (*y1 > H) *y1 = H;
    if (*x1 < *x0) *x1 = *x0;
    if (*y1 < *y0) *y1 = *y0;
}

// ---- public ---------------------------------------------------------------------------------

void rl_shapes_render_cov(float *cov, const rl_shapes_spec *s, int f, int F, int H, int W)
{
    geom g;
    geom_init(&g, s, f, F, H, W);
    memset(cov, 0, sizeof(float) * (size_t)H * W);
    int x0, x1, y0, y1;
    geom_box(&g, H, W, &x0, &x1, &y0, &y1);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) cov[(size_t)y * W + x] = pixel_cov(&g, x, y);
}

void rl_shapes_render_u8(uint8_t *out, const rl_shapes_spec *s, int F, int H, int W)
{
    const uint8_t *bg = rl_shapes_bg_rgb[s->a.bg], *fg = rl_shapes_color_rgb[s->a.color];
    const size_t S = (size_t)H * W;
    for (int f = 0; f < F; f++) {
        uint8_t *o_f = out + (size_t)f * S * 3;   // (H, W, 3)
        for (size_t i = 0; i < S; i++) memcpy(o_f + 3 * i, bg, 3);
        geom g;
        geom_init(&g, s, f, F, H, W);
        int x0, x1, y0, y1;
        geom_box(&g, H, W, &x0, &x1, &y0, &y1);
        for (int y = y0; y < y1; y++) {
            for (int x = x0; x < x1; x++) {
                const float c = pixel_cov(&g, x, y);
                if (c == 0.0f) continue;
                uint8_t *p = o_f + 3 * ((size_t)y * W + x);
                for (int ch = 0; ch < 3; ch++)
                    p[ch] = (uint8_t)lrintf((float)bg[ch] + c * (float)(fg[ch] - bg[ch]));
            }
        }
    }
}

void rl_shapes_render_f32(float *out, const rl_shapes_spec *s, int F, int H, int W)
{
    const uint8_t *bg = rl_shapes_bg_rgb[s->a.bg], *fg = rl_shapes_color_rgb[s->a.color];
    const size_t S = (size_t)H * W, FS = (size_t)F * S;
    float vb[3], vd[3];   // background and foreground - background, in [-1, 1] units
    for (int ch = 0; ch < 3; ch++) {
        vb[ch] = (float)bg[ch] / 127.5f - 1.0f;
        vd[ch] = (float)(fg[ch] - bg[ch]) / 127.5f;
    }
    for (int f = 0; f < F; f++) {
        for (int ch = 0; ch < 3; ch++) {
            float *o_cf = out + ch * FS + (size_t)f * S;   // (H, W)
            for (size_t i = 0; i < S; i++) o_cf[i] = vb[ch];
        }
        geom g;
        geom_init(&g, s, f, F, H, W);
        int x0, x1, y0, y1;
        geom_box(&g, H, W, &x0, &x1, &y0, &y1);
        for (int y = y0; y < y1; y++) {
            for (int x = x0; x < x1; x++) {
                const float c = pixel_cov(&g, x, y);
                if (c == 0.0f) continue;
                const size_t i = (size_t)f * S + (size_t)y * W + x;
                for (int ch = 0; ch < 3; ch++) out[ch * FS + i] = vb[ch] + c * vd[ch];
            }
        }
    }
}
