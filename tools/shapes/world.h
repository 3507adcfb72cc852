/* tools/shapes/world.h - the shapes world (SHAPES_WORLD.md): vocabulary, clip specs, captions,
 * held-out pairs and a deterministic sampler.
 *
 * Geometry lives in a 64 x 64 reference frame (x right, y down, pixel centres at i + 0.5);
 * the renderer scales it to any H x W (x by W/64, y by H/64, sizes by min(H, W)/64), so a clip
 * spec does not depend on the resolution it is drawn at. Choices the page leaves open:
 *   - a share RL_SHAPES_SHORT_SHARE (20%) of sampled captions leave the background unsaid;
 *   - shapes start upright (square axis-aligned, triangle and star with a vertex up); only
 *     spinning turns them;
 *   - motion is linear in frame index: centre and circumradius move evenly from the first
 *     frame to the last, spinning turns 6 degrees per frame;
 *   - shapes keep 1 px of margin to the frame edge (anti-aliasing stays inside);
 *   - captions use "a" before every colour ("a orange circle"), as the page's template says.
 * Everything here is pure computation: no allocation, no I/O, thread-safe. */
#ifndef RL_TOOLS_SHAPES_WORLD_H
#define RL_TOOLS_SHAPES_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum { RL_BG_BLACK, RL_BG_GRAY, RL_BG_WHITE, RL_N_BG };
enum {
    RL_COLOR_RED, RL_COLOR_ORANGE, RL_COLOR_YELLOW, RL_COLOR_GREEN,
    RL_COLOR_CYAN, RL_COLOR_BLUE, RL_COLOR_PURPLE, RL_COLOR_PINK, RL_N_COLOR
};
enum { RL_SHAPE_CIRCLE, RL_SHAPE_SQUARE, RL_SHAPE_TRIANGLE, RL_SHAPE_STAR, RL_N_SHAPE };
enum {
    RL_MOTION_LEFT, RL_MOTION_RIGHT, RL_MOTION_UP, RL_MOTION_DOWN,
    RL_MOTION_GROWING, RL_MOTION_SHRINKING, RL_MOTION_SPINNING, RL_N_MOTION
};

#define RL_SHAPES_REF 64.0f          // side of the reference frame, px
#define RL_SHAPES_FRAMES 16
#define RL_SHAPES_SHORT_SHARE 0.2    // share of sampled captions without the background
#define RL_SHAPES_SPIN_DEG 6.0f      // degrees per frame

extern const char *const rl_shapes_bg_name[RL_N_BG];
extern const char *const rl_shapes_color_name[RL_N_COLOR];
extern const char *const rl_shapes_shape_name[RL_N_SHAPE];
extern const char *const rl_shapes_motion_name[RL_N_MOTION];
extern const uint8_t rl_shapes_bg_rgb[RL_N_BG][3];
extern const uint8_t rl_shapes_color_rgb[RL_N_COLOR][3];

/* The attributes a caption names. -1 in a field: not stated (only bg, in short captions,
 * and color, in the colour-free prompts eval builds for negative prompts). */
typedef struct {
    int bg, color, shape, motion;
} rl_shapes_attr;

/* One clip: attributes plus geometry in the 64 x 64 reference frame. */
typedef struct {
    rl_shapes_attr a;      // a.bg and a.color always set here (the drawn background and colour)
    int bg_said;           // 1: the caption states the background
    float cx, cy;          // centre at the first frame, reference px
    float dx, dy;          // displacement of the centre from the first frame to the last
    float r0, r1;          // circumradius at the first and last frame
    float angle0;          // orientation at the first frame, radians (0: upright)
    int spin;              // +1 clockwise on screen, -1 counter-clockwise, 0 none
} rl_shapes_spec;

/* Which combinations a sampler may return. */
typedef enum {
    RL_SHAPES_TRAIN = 0,   // valid and free of held-out pairs
    RL_SHAPES_HELDOUT,     // valid and holding at least one held-out pair
    RL_SHAPES_ANY,         // any valid combination
} rl_shapes_split;

// ---- combinations ------------------------------------------------------------------------

/* 1 when the combination exists: circles never spin. */
int rl_shapes_attr_valid(const rl_shapes_attr *a);
/* Number of held-out pairs (colour-shape, shape-motion) in a: 0, 1 or 2. */
int rl_shapes_attr_heldout(const rl_shapes_attr *a);

// ---- the deterministic sampler (splitmix64) -------------------------------------------------

typedef struct {
    uint64_t s;
} rl_shapes_rng;

void     rl_shapes_rng_seed(rl_shapes_rng *r, uint64_t seed);
uint64_t rl_shapes_rng_next(rl_shapes_rng *r);
float    rl_shapes_rng_unif(rl_shapes_rng *r, float lo, float hi);   // [lo, hi)
int      rl_shapes_rng_int(rl_shapes_rng *r, int n);                 // [0, n)

/* Clip number `index` of the stream `seed` in `split`: attributes, whether the caption states
 * the background, and geometry. A pure function of (seed, index, split), so clips can be made
 * in any order or in parallel. */
void rl_shapes_sample(rl_shapes_spec *s, uint64_t seed, uint64_t index, rl_shapes_split split);

/* Geometry for given attributes (bg -1: drawn at random; color -1: drawn at random), from
 * seed. bg_said is set to (a->bg >= 0). Used by eval to draw a ground-truth clip for a prompt.
 * Returns RL_E_PARAM when the combination does not exist or a field is out of range. */
rl_status rl_shapes_spec_from_attr(rl_shapes_spec *s, const rl_shapes_attr *a, uint64_t seed,
                                   rl_err *err);

/* Centre (reference px), circumradius and orientation (radians) at frame f of F. */
void rl_shapes_spec_at(const rl_shapes_spec *s, int f, int F, float *cx, float *cy, float *r,
                       float *angle);

/* The clip played backwards, as a clip of the world: moving left <-> right, up <-> down,
 * growing <-> shrinking (start and end swapped, so frame f of *out is frame F - 1 - f of *in).
 * Returns 0 (and leaves *out alone) when that clip has the same caption (spinning) or is a
 * held-out combination: the trainer's hard negatives (`reel train clip --hard-negatives`). */
int rl_shapes_spec_reverse(rl_shapes_spec *out, const rl_shapes_spec *in);

/* The same clip (geometry, colour, background, motion) with another shape: the k-th of the
 * other shapes in turn (k any int), skipping combinations that do not exist or are held out.
 * Returns 0 (and leaves *out alone) when no shape qualifies. The trainer's shape negatives
 * (`reel train clip --hard-negatives=shape`): pairs that differ in shape alone. */
int rl_shapes_spec_swap_shape(rl_shapes_spec *out, const rl_shapes_spec *in, int k);

/* The same clip with its path moved so that its midpoint (the centre halfway through the
 * clip) is the centre of the frame, on both axes; motion, size, angle, colours unchanged. The
 * whole path stays inside the frame (a path is at most 32 px, a shape at most 14 px
 * circumradius). The trainer's centred paths (`reel train unet --centre-paths`). */
void rl_shapes_spec_centre(rl_shapes_spec *s);

// ---- captions ------------------------------------------------------------------------------

/* Writes "a {color} {shape} {motion} on a {background} background" (or without the
 * background when a->bg < 0, without the colour when a->color < 0) into buf (n bytes, 96
 * always suffice). Returns the length, or -1 when an attribute is out of range. */
int rl_shapes_caption(char *buf, size_t n, const rl_shapes_attr *a);
/* The caption of a spec: its background is stated only when s->bg_said. */
int rl_shapes_spec_caption(char *buf, size_t n, const rl_shapes_spec *s);

/* Parses a caption of the form above (lower case, single spaces; the colour and the
 * "on a ... background" tail are optional). Unstated fields come back as -1. Returns
 * RL_E_PARAM with the offending word when the text does not follow the form. */
rl_status rl_shapes_caption_parse(rl_shapes_attr *a, const char *text, rl_err *err);

#endif
