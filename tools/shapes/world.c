/* tools/shapes/world.c - the shapes world: vocabulary, held-out pairs, the sampler (splitmix64)
 * and captions. See world.h for the choices SHAPES_WORLD.md leaves open. */
#include "tools/shapes/world.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const rl_shapes_bg_name[RL_N_BG] = { "black", "gray", "white" };
const char *const rl_shapes_color_name[RL_N_COLOR] = {
    "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink",
};
const char *const rl_shapes_shape_name[RL_N_SHAPE] = { "circle", "square", "triangle", "star" };
const char *const rl_shapes_motion_name[RL_N_MOTION] = {
    "moving left", "moving right", "moving up", "moving down", "growing", "shrinking", "spinning",
};
const uint8_t rl_shapes_bg_rgb[RL_N_BG][3] = { { 16, 16, 16 }, { 128, 128, 128 }, { 235, 235, 235 } };
const uint8_t rl_shapes_color_rgb[RL_N_COLOR][3] = {
    { 220, 40, 40 },  { 245, 140, 30 }, { 240, 220, 40 }, { 50, 180, 70 },
    { 40, 200, 220 }, { 40, 80, 230 },  { 150, 60, 200 }, { 240, 120, 180 },
};

// held out from training (SHAPES_WORLD.md): colour with shape, shape with motion
static const int heldout_color_shape[][2] = {
    { RL_COLOR_YELLOW, RL_SHAPE_TRIANGLE }, { RL_COLOR_BLUE, RL_SHAPE_STAR },
    { RL_COLOR_GREEN, RL_SHAPE_SQUARE },    { RL_COLOR_PURPLE, RL_SHAPE_CIRCLE },
};
static const int heldout_shape_motion[][2] = {
    { RL_SHAPE_TRIANGLE, RL_MOTION_UP },   { RL_SHAPE_STAR, RL_MOTION_GROWING },
    { RL_SHAPE_SQUARE, RL_MOTION_LEFT },   { RL_SHAPE_CIRCLE, RL_MOTION_SHRINKING },
};

// ---- combinations ------------------------------------------------------------------------

int rl_shapes_attr_valid(const rl_shapes_attr *a)
{
    if (a->bg < -1 || a->bg >= RL_N_BG || a->color < -1 || a->color >= RL_N_COLOR) return 0;
    if (a->shape < 0 || a->shape >= RL_N_SHAPE || a->motion < 0 || a->motion >= RL_N_MOTION)
        return 0;
    return !(a->shape == RL_SHAPE_CIRCLE && a->motion == RL_MOTION_SPINNING);
}

int rl_shapes_attr_heldout(const rl_shapes_attr *a)
{
    int n = 0;
    for (int i = 0; i < 4; i++) {
        n += a->color == heldout_color_shape[i][0] && a->shape == heldout_color_shape[i][1];
        n += a->shape == heldout_shape_motion[i][0] && a->motion == heldout_shape_motion[i][1];
    }
    return n;
}

// ---- the sampler ----------------------------------------------------------------------------

void rl_shapes_rng_seed(rl_shapes_rng *r, uint64_t seed)
{
    r->s = seed;
}

// splitmix64 (Steele, Lea, Flood 2014): a full-period 64-bit generator, good enough for
// drawing clip parameters and tiny to carry.
uint64_t rl_shapes_rng_next(rl_shapes_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float rl_shapes_rng_unif(rl_shapes_rng *r, float lo, float hi)
{
    const float u = (float)(rl_shapes_rng_next(r) >> 40) * (1.0f / 16777216.0f);   // [0, 1)
    return lo + (hi - lo) * u;
}

int rl_shapes_rng_int(rl_shapes_rng *r, int n)
{
    return (int)((rl_shapes_rng_next(r) >> 33) % (uint64_t)n);   // bias < 2^-30 for n <= 8
}

// geometry for attributes that are all set (bg and color drawn already)
static void draw_geometry(rl_shapes_spec *s, rl_shapes_rng *r)
{
    const float L = RL_SHAPES_REF, m = 1.0f;   // 1 px margin keeps anti-aliasing inside
    s->dx = s->dy = 0.0f;
    s->angle0 = 0.0f;
    s->spin = 0;
    switch (s->a.motion) {
    case RL_MOTION_GROWING: case RL_MOTION_SHRINKING: {
        const float rmax = 14.0f;
        s->r0 = s->a.motion == RL_MOTION_GROWING ? 5.0f : 14.0f;
        s->r1 = s->a.motion == RL_MOTION_GROWING ? 14.0f : 5.0f;
        s->cx = rl_shapes_rng_unif(r, rmax + m, L - rmax - m);
        s->cy = rl_shapes_rng_unif(r, rmax + m, L - rmax - m);
        break;
    }
    case RL_MOTION_SPINNING:
        s->r0 = s->r1 = rl_shapes_rng_unif(r, 8.0f, 12.0f);
        s->cx = rl_shapes_rng_unif(r, s->r0 + m, L - s->r0 - m);
        s->cy = rl_shapes_rng_unif(r, s->r0 + m, L - s->r0 - m);
        s->spin = rl_shapes_rng_int(r, 2) ? 1 : -1;
        break;
    default: {   // moving: start where the whole path stays inside, random offset across
        const float rad = rl_shapes_rng_unif(r, 8.0f, 12.0f);
        const float d = rl_shapes_rng_unif(r, 24.0f, 32.0f);
        const float lo = rad + m, hi = L - rad - m;          // allowed centre range
        const float start = rl_shapes_rng_unif(r, lo, hi - d); // along, for + direction
        const float across = rl_shapes_rng_unif(r, lo, hi);
        s->r0 = s->r1 = rad;
        switch (s->a.motion) {
        case RL_MOTION_RIGHT: s->cx = start;     s->cy = across; s->dx = d;  break;
        case RL_MOTION_LEFT:  s->cx = L - start; s->cy = across; s->dx = -d; break;
        case RL_MOTION_DOWN:  s->cy = start;     s->cx = across; s->dy = d;  break;
        default:              s->cy = L - start; s->cx = across; s->dy = -d; break;   // up
        }
    }
    }
}

void rl_shapes_sample(rl_shapes_spec *s, uint64_t seed, uint64_t index, rl_shapes_split split)
{
    rl_shapes_rng r;
    rl_shapes_rng_seed(&r, seed);
    rl_shapes_rng_seed(&r, rl_shapes_rng_next(&r) ^ index);
    rl_shapes_rng_next(&r);
    *s = (rl_shapes_spec){ 0 };
    // rejection: at most about 1 in 4 draws is refused for either split
    for (;;) {
        s->a.color = rl_shapes_rng_int(&r, RL_N_COLOR);
        s->a.shape = rl_shapes_rng_int(&r, RL_N_SHAPE);
        s->a.motion = rl_shapes_rng_int(&r, RL_N_MOTION);
        s->a.bg = rl_shapes_rng_int(&r, RL_N_BG);
        if (!rl_shapes_attr_valid(&s->a)) continue;
        const int h = rl_shapes_attr_heldout(&s->a);
        if (split == RL_SHAPES_TRAIN && h) continue;
        if (split == RL_SHAPES_HELDOUT && !h) continue;
        break;
    }
    s->bg_said = rl_shapes_rng_unif(&r, 0.0f, 1.0f) >= (float)RL_SHAPES_SHORT_SHARE;
    draw_geometry(s, &r);
}

rl_status rl_shapes_spec_from_attr(rl_shapes_spec *s, const rl_shapes_attr *a, uint64_t seed,
                                   rl_err *err)
{
    if (!rl_shapes_attr_valid(a))
        return rl_errf(err, RL_E_PARAM,
                       "shapes: no such clip (bg %d, color %d, shape %d, motion %d): circles "
                       "never spin and every field must be in range", a->bg, a->color, a->shape,
                       a->motion);
    rl_shapes_rng r;
    rl_shapes_rng_seed(&r, seed ^ 0x5ba9e5c1d0f3a2b7ull);
    *s = (rl_shapes_spec){ .a = *a, .bg_said = a->bg >= 0 };
    if (s->a.bg < 0) s->a.bg = rl_shapes_rng_int(&r, RL_N_BG);
    if (s->a.color < 0) s->a.color = rl_shapes_rng_int(&r, RL_N_COLOR);
    draw_geometry(s, &r);
    return RL_OK;
}

void rl_shapes_spec_at(const rl_shapes_spec *s, int f, int F, float *cx, float *cy, float *r,
                       float *angle)
{
    const float t = F > 1 ? (float)f / (float)(F - 1) : 0.0f;
    *cx = s->cx + t * s->dx;
    *cy = s->cy + t * s->dy;
    *r = s->r0 + t * (s->r1 - s->r0);
    *angle = s->angle0 + (float)s->spin * (float)f * RL_SHAPES_SPIN_DEG * (float)(M_PI / 180.0);
}

int rl_shapes_spec_reverse(rl_shapes_spec *out, const rl_shapes_spec *in)
{
    static const int opposite[RL_N_MOTION] = {
        [RL_MOTION_LEFT] = RL_MOTION_RIGHT, [RL_MOTION_RIGHT] = RL_MOTION_LEFT,
        [RL_MOTION_UP] = RL_MOTION_DOWN, [RL_MOTION_DOWN] = RL_MOTION_UP,
        [RL_MOTION_GROWING] = RL_MOTION_SHRINKING, [RL_MOTION_SHRINKING] = RL_MOTION_GROWING,
        [RL_MOTION_SPINNING] = -1,
    };
    if (in->a.motion < 0 || in->a.motion >= RL_N_MOTION || opposite[in->a.motion] < 0) return 0;
    rl_shapes_spec r = *in;
    r.a.motion = opposite[in->a.motion];
    if (!rl_shapes_attr_valid(&r.a) || rl_shapes_attr_heldout(&r.a)) return 0;
    r.cx = in->cx + in->dx;
    r.cy = in->cy + in->dy;
    r.dx = -in->dx;
    r.dy = -in->dy;
    r.r0 = in->r1;
    r.r1 = in->r0;
    *out = r;
    return 1;
}

int rl_shapes_spec_swap_shape(rl_shapes_spec *out, const rl_shapes_spec *in, int k)
{
    if (in->a.shape < 0 || in->a.shape >= RL_N_SHAPE) return 0;
    // the other shapes in turn from the k-th: the first valid, trained combination
    for (int j = 0; j < RL_N_SHAPE - 1; j++) {
        rl_shapes_spec r = *in;
        const int step = 1 + (int)(((unsigned)k + (unsigned)j) % (RL_N_SHAPE - 1));
        r.a.shape = (in->a.shape + step) % RL_N_SHAPE;
        if (!rl_shapes_attr_valid(&r.a) || rl_shapes_attr_heldout(&r.a)) continue;
        *out = r;
        return 1;
    }
    return 0;
}

void rl_shapes_spec_centre(rl_shapes_spec *s)
{
    const float c = 0.5f * RL_SHAPES_REF;
    s->cx = c - 0.5f * s->dx;
    s->cy = c - 0.5f * s->dy;
}

// ---- captions ------------------------------------------------------------------------------

int rl_shapes_caption(char *buf, size_t n, const rl_shapes_attr *a)
{
    if (!rl_shapes_attr_valid(a)) return -1;
    int k = snprintf(buf, n, "a %s%s%s %s", a->color >= 0 ? rl_shapes_color_name[a->color] : "",
                     a->color >= 0 ? " " : "", rl_shapes_shape_name[a->shape],
                     rl_shapes_motion_name[a->motion]);
    if (k >= 0 && a->bg >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " on a %s background", rl_shapes_bg_name[a->bg]);
    return k;
}

int rl_shapes_spec_caption(char *buf, size_t n, const rl_shapes_spec *s)
{
    rl_shapes_attr a = s->a;
    if (!s->bg_said) a.bg = -1;
    return rl_shapes_caption(buf, n, &a);
}

// index of the word list entry that `p` starts with (followed by a space or the end), or -1
static int match_word(const char *const *names, int n, const char **p)
{
    int best = -1;
    size_t best_len = 0;
    for (int i = 0; i < n; i++) {
        const size_t len = strlen(names[i]);
        if (len > best_len && !strncmp(*p, names[i], len) && ((*p)[len] == ' ' || !(*p)[len])) {
            best = i;
            best_len = len;
        }
    }
    if (best >= 0) *p += best_len;
    return best;
}

static int match_lit(const char **p, const char *lit)
{
    const size_t len = strlen(lit);
    if (strncmp(*p, lit, len)) return 0;
    *p += len;
    return 1;
}

rl_status rl_shapes_caption_parse(rl_shapes_attr *a, const char *text, rl_err *err)
{
    const char *p = text;
    *a = (rl_shapes_attr){ -1, -1, -1, -1 };
    if (!match_lit(&p, "a ")) goto bad;
    a->color = match_word(rl_shapes_color_name, RL_N_COLOR, &p);
    if (a->color >= 0 && !match_lit(&p, " ")) goto bad;
    if ((a->shape = match_word(rl_shapes_shape_name, RL_N_SHAPE, &p)) < 0) goto bad;
    if (!match_lit(&p, " ")) goto bad;
    if ((a->motion = match_word(rl_shapes_motion_name, RL_N_MOTION, &p)) < 0) goto bad;
    if (*p) {
        if (!match_lit(&p, " on a ")) goto bad;
        if ((a->bg = match_word(rl_shapes_bg_name, RL_N_BG, &p)) < 0) goto bad;
        if (!match_lit(&p, " background") || *p) goto bad;
    }
    if (!rl_shapes_attr_valid(a))
        return rl_errf(err, RL_E_PARAM, "caption '%s': circles never spin", text);
    return RL_OK;
bad:
    return rl_errf(err, RL_E_PARAM,
                   "caption '%s': cannot read at '%s'; expected 'a [color] {shape} {motion} "
                   "[on a {black|gray|white} background]' with the shapes world's words",
                   text, p);
}
