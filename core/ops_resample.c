/* core/ops_resample.c - nearest 2x upsampling and 2x2 average pooling, forward and backward.
 *
 * Upsample: F.interpolate(x, scale_factor=2.0, mode="nearest") as diffusers' Upsample2D does
 * before its conv:  out[nc, y, x] = x[nc, y / 2, x / 2].
 * Avgpool: F.avg_pool2d(x, kernel_size=2, stride=2) as Downsample2D with use_conv=False:
 *   out[nc, i, j] = (x[2i, 2j] + x[2i, 2j+1] + x[2i+1, 2j] + x[2i+1, 2j+1]) / 4.
 *
 * Every loop is parallel over (n, c) planes, each owned by one thread; backward sums a dx
 * element's terms in a fixed order, so results do not depend on the thread count. */
#include "core/ops.h"

#include <stddef.h>

// ---- nearest 2x upsample ------------------------------------------------------------------

void rl_upsample2x_fwd(float *restrict out, const float *restrict x, int NC, int H, int W)
{
    // x (NC, H, W) -> out (NC, 2H, 2W)
    const int W2 = 2 * W;
    #pragma omp parallel for schedule(static)
    for (int nc = 0; nc < NC; nc++) {
        const float *x_nc = x + (size_t)nc * H * W;          // (H, W)
        float *o_nc = out + (size_t)nc * 4 * H * W;          // (2H, 2W)
        for (int i = 0; i < H; i++) {
            float *r0 = o_nc + (size_t)(2 * i) * W2, *r1 = r0 + W2;   // output rows 2i, 2i+1
            for (int j = 0; j < W; j++) {
                const float v = x_nc[(size_t)i * W + j];
                r0[2 * j] = v; r0[2 * j + 1] = v;
                r1[2 * j] = v; r1[2 * j + 1] = v;
            }
        }
    }
}

void rl_upsample2x_bwd(float *restrict dx, const float *restrict dout, int NC, int H, int W)
{
    // out[2i+a, 2j+b] = x[i, j]  =>  dx[i, j] += sum over the 2x2 block of dout
    const int W2 = 2 * W;
    #pragma omp parallel for schedule(static)
    for (int nc = 0; nc < NC; nc++) {
        float *dx_nc = dx + (size_t)nc * H * W;                   // (H, W)
        const float *d_nc = dout + (size_t)nc * 4 * H * W;        // (2H, 2W)
        for (int i = 0; i < H; i++) {
            const float *r0 = d_nc + (size_t)(2 * i) * W2, *r1 = r0 + W2;
            for (int j = 0; j < W; j++)
                dx_nc[(size_t)i * W + j] += (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
        }
    }
}

// ---- 2x2 average pool ---------------------------------------------------------------------

void rl_avgpool2x_fwd(float *restrict out, const float *restrict x, int NC, int H, int W)
{
    // x (NC, H, W), H and W even -> out (NC, H/2, W/2)
    const int Ho = H / 2, Wo = W / 2;
    #pragma omp parallel for schedule(static)
    for (int nc = 0; nc < NC; nc++) {
        const float *x_nc = x + (size_t)nc * H * W;
        float *o_nc = out + (size_t)nc * Ho * Wo;
        for (int i = 0; i < Ho; i++) {
            const float *r0 = x_nc + (size_t)(2 * i) * W, *r1 = r0 + W;
            for (int j = 0; j < Wo; j++)
                o_nc[(size_t)i * Wo + j] =
                    ((r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1])) * 0.25f;
        }
    }
}

void rl_avgpool2x_bwd(float *restrict dx, const float *restrict dout, int NC, int H, int W)
{
    // out[i, j] = mean of x's 2x2 block  =>  each of the four dx += dout[i, j] / 4
    const int Ho = H / 2, Wo = W / 2;
    #pragma omp parallel for schedule(static)
    for (int nc = 0; nc < NC; nc++) {
        float *dx_nc = dx + (size_t)nc * H * W;
        const float *d_nc = dout + (size_t)nc * Ho * Wo;
        for (int i = 0; i < Ho; i++) {
            float *r0 = dx_nc + (size_t)(2 * i) * W, *r1 = r0 + W;
            for (int j = 0; j < Wo; j++) {
                const float g = d_nc[(size_t)i * Wo + j] * 0.25f;
                r0[2 * j] += g; r0[2 * j + 1] += g;
                r1[2 * j] += g; r1[2 * j + 1] += g;
            }
        }
    }
}
