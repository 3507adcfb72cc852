/* tools/shapes/render.h - draws shapes-world clips (SHAPES_WORLD.md), anti-aliased by 4 x 4
 * supersampling.
 *
 * Each shape is a regular star polygon around its centre: n vertices at circumradius R and n
 * inner vertices at radius ri between them (circle: n = 0; square n = 4, ri = R cos 45 deg;
 * triangle n = 3, ri = R cos 60 deg; five-pointed star n = 5, ri = R cos 72 / cos 36). The
 * signed distance to it is exact and cheap: fold the point into the wedge of its nearest vertex
 * (n dot products), mirror, and measure to the one edge there. Pixels whose centre is more than
 * half a diagonal from the edge are fully in or out; the others get 16 samples. Only the
 * shape's bounding box is visited; the rest of the frame is background.
 *
 * Frames are drawn at any F, H, W (geometry scales from the 64 x 64 reference frame, see
 * world.h). All functions are pure: no allocation, thread-safe, deterministic. */
#ifndef RL_TOOLS_SHAPES_RENDER_H
#define RL_TOOLS_SHAPES_RENDER_H

#include <stdint.h>

#include "tools/shapes/world.h"

/* Coverage of the shape in frame f of F: cov (H, W), in [0, 1]. */
void rl_shapes_render_cov(float *cov, const rl_shapes_spec *s, int f, int F, int H, int W);

/* The clip as bytes: out (F, H, W, 3) RGB. */
void rl_shapes_render_u8(uint8_t *out, const rl_shapes_spec *s, int F, int H, int W);

/* The clip as floats for the trainer: out (3, F, H, W), value / 127.5 - 1 in [-1, 1], not
 * quantised to bytes. */
void rl_shapes_render_f32(float *out, const rl_shapes_spec *s, int F, int H, int W);

#endif
