/* tools/shapes/analyze.h - the procedural analyzer of the shapes world (SHAPES_WORLD.md,
 * "Judging a clip"): reads the frames of a clip, real or generated, and reports what it shows.
 *
 * Method (all of it deliberately simple, and tolerant of blur, noise and colour shifts):
 *   background  per-channel median of the 2-px frame border over all frames, nearest of the 3;
 *   object      pixels far from that measured background (threshold 0.4 x the frame's peak
 *               distance, its 6th largest, at least 0.3 x the clip's median peak and at least
 *               25 levels; a frame peaking under 30 shows nothing), 8-connected components per
 *               frame; the object is the largest;
 *   persistence exactly one component per frame (components under 10% of the largest, or under
 *               3 px, are specks and ignored) and an object of at least 4 px in every frame;
 *   colour      mean of the object's core pixels (at least 0.7 x the frame's peak) over the
 *               clip; the nearest palette entry, where a palette colour may also be diluted
 *               towards the background by up to half (blur and anti-aliasing do that);
 *   shape       soft coverage alpha (projection onto background -> object colour) over the
 *               object dilated by 2 px; rotation-invariant complex moments
 *               rho_k = |sum alpha (z - c)^k| / sum alpha |z - c|^k, k = 3, 4, 5, which a k-fold
 *               symmetric shape alone makes large (triangle 3, square 4, star 5, circle none),
 *               each divided by its value for a perfect render;
 *   motion      least-squares trend over frames of the centroid (moving), of log area
 *               (growing/shrinking), and the median frame-to-frame turn of arg(c_k)/k
 *               (spinning), each divided by its nominal size (28 px, ln(14^2/5^2), 90 degrees);
 *               the largest wins.
 * Confidences are in [0, 1]: 0 is a tie with the runner-up, 1 an unambiguous answer. */
#ifndef RL_TOOLS_SHAPES_ANALYZE_H
#define RL_TOOLS_SHAPES_ANALYZE_H

#include <stdint.h>

#include "core/err.h"
#include "tools/shapes/world.h"

#define RL_SHAPES_MAX_FRAMES 256

typedef struct {
    rl_shapes_attr a;            // what the clip shows; a field is -1 when no object was found
    int persistent;              // 1: exactly one object in every frame
    float bg_conf, color_conf, shape_conf, motion_conf, persist_conf;

    // measurements behind the verdicts
    float bg_rgb[3], fg_rgb[3];  // measured background and object colour, 0..255
    float shape_score[RL_N_SHAPE];   // circle, square, triangle, star (1: like a perfect render)
    float move_x, move_y;        // centroid trend over the clip, reference px (y down)
    float log_area;              // ln(area last / area first), from the trend
    float turn_deg;              // rotation over the clip, degrees (+: clockwise on screen)
    int bad_frames;              // frames without exactly one object

    int F;
    float frame_rgb[RL_SHAPES_MAX_FRAMES][3];   // object colour per frame (travel trajectories)
    float frame_area[RL_SHAPES_MAX_FRAMES];     // soft area per frame, px
} rl_shapes_analysis;

/* Analyzes frames (F, H, W, 3) RGB. bg_mask, when not NULL, receives (H, W): 1 where a pixel
 * is background in every frame (3 px away from the object in every frame), else 0; eval
 * measures background flicker there. Returns RL_E_PARAM for F outside 1..RL_SHAPES_MAX_FRAMES or
 * a frame under 8 x 8, RL_E_NOMEM when scratch memory cannot be had. Thread-safe. */
rl_status rl_shapes_analyze(rl_shapes_analysis *out, const uint8_t *frames, int F, int H, int W,
                            uint8_t *bg_mask, rl_err *err);

/* Index of the palette colour nearest to rgb seen on background bg_rgb (dilution allowed as
 * above); *conf receives the confidence when not NULL. */
int rl_shapes_nearest_color(const float rgb[3], const float bg_rgb[3], float *conf);

#endif
