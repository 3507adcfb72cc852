/* core/ops_conv.c - 2-D convolution (torch.nn.Conv2d, groups = 1, dilation 1), forward and
 * backward, as im2col + sgemm (Caffe's and llm.c-style lowering).
 *
 *   out[n, o, oh, ow] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] * x[n, c, ih, iw],
 *   ih = oh * stride - pad_t + kh,  iw = ow * stride - pad_l + kw  (zero outside the image).
 *
 * Padding may be asymmetric: pad_t/pad_l zeros before, and whatever Ho/Wo imply after, which
 * covers diffusers' VAE Downsample2D (F.pad(x, (0, 1, 0, 1)) then a stride-2, padding-0 conv).
 *
 * Lowering: a tile of nb whole images becomes col (C*KH*KW, nb*P), P = Ho*Wo, one column per
 * output pixel. Then
 *   forward:   out_tile (OC, nb*P)  = w (OC, C*KH*KW) @ col
 *   backward:  dw (OC, C*KH*KW)    += dout_tile (OC, nb*P) @ col^T
 *              dcol (C*KH*KW, nb*P) = w^T @ dout_tile,   dx += col2im(dcol)
 *              db[o]               += sum_{n, p} dout[n, o, p]
 * Images are grouped until a tile has at least TILE_COLS columns, so the small late-level maps
 * (8x8) still hand BLAS one wide matrix instead of many thin ones. When a tile holds more than
 * one image, its output rows are interleaved (OC, nb, P) and are scattered to (nb, OC, P)
 * (and dout gathered the other way); a copy of OC*nb*P floats next to 2*C*KH*KW flops per
 * element. A 1x1 stride-1 unpadded conv with one image per tile uses x itself as col.
 *
 * Threading: rl_gemm (ops_matmul.c) parallelises each sgemm itself, with a result that does
 * not depend on the thread count, and is always called here outside our parallel regions.
 * im2col, col2im, scatter and gather are parallel over (image, channel) planes, each owned by
 * one thread; col2im sums a dx element's contributions in a fixed (kh, kw, oh, ow) order, and
 * the tiling depends on the shape only, never on the thread count, so results are bitwise
 * equal for any thread count. dw is summed over tiles in order by sgemm's beta = 1. */
#include "core/ops.h"

#include <string.h>

// output pixels (columns) per tile. Measured on the 2-core box (N*F = 32 images, 3x3, C = OC =
// 64 at 8x8 and 16x16): 1024 columns ran at 1/1.7 of plain sgemm's GFLOP/s, 2048 at 1/1.5
// (wider B panels per w packing); 4096 gained little more and doubles the scratch.
#define TILE_COLS 2048

// ---- geometry -----------------------------------------------------------------------------

rl_conv_shape rl_conv_shape_make(int N, int C, int H, int W, int OC, int KH, int KW,
                                 int stride, int pad)
{
    return (rl_conv_shape){
        .N = N, .C = C, .H = H, .W = W, .OC = OC, .KH = KH, .KW = KW,
        .stride = stride, .pad_t = pad, .pad_l = pad,
        .Ho = (H + 2 * pad - KH) / stride + 1,
        .Wo = (W + 2 * pad - KW) / stride + 1,
    };
}

// images per tile: a function of the shape only, so the summation order of dw (and with it
// every bit of the result) does not depend on the thread count
static int tile_images(const rl_conv_shape *s)
{
    const int P = s->Ho * s->Wo;
    int nb = P >= TILE_COLS ? 1 : (TILE_COLS + P - 1) / P;
    return nb < s->N ? nb : s->N;
}

// 1x1, stride 1, no padding: x (C, H*W) already is the column matrix of one image
static int is_pointwise(const rl_conv_shape *s)
{
    return s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad_t == 0 && s->pad_l == 0 &&
           s->Ho == s->H && s->Wo == s->W;
}

size_t rl_conv2d_scratch_floats(const rl_conv_shape *s, int n_threads)
{
    (void)n_threads;   // the tile buffers are shared by the team, not per thread
    const int nb = tile_images(s);
    const size_t cols = (size_t)nb * s->Ho * s->Wo;
    const size_t K = (size_t)s->C * s->KH * s->KW;
    if (nb == 1) return is_pointwise(s) ? 0 : K * cols;   // col (K, P)
    return K * cols + (size_t)s->OC * cols;               // col (K, nb*P) + out/dout tile
}

// Range [ow0, ow1) of output columns whose input column ow*stride - pad_l + kw lies in [0, W).
static void valid_cols(int *ow0, int *ow1, int kw, const rl_conv_shape *s)
{
    const int lo = s->pad_l - kw;              // need ow*stride >= lo
    const int hi = s->W - 1 + s->pad_l - kw;   // need ow*stride <= hi
    int a = lo > 0 ? (lo + s->stride - 1) / s->stride : 0;
    int e = hi >= 0 ? hi / s->stride + 1 : 0;
    if (e > s->Wo) e = s->Wo;
    if (a > e) a = e;
    *ow0 = a;
    *ow1 = e;
}

// ---- im2col / col2im ----------------------------------------------------------------------

// One im2col row (c, kh, kw) of one image when stride = 1 and Wo = W (the "same" 3x3 convs
// that dominate the UNet): output pixel p = oh*W + ow reads x at p + shift, so the valid rows
// are one contiguous copy; the entries that wrapped around a row edge are zeroed afterwards.
// row (Ho*Wo), x_ic (H, W).
static void im2col_row_s1(float *restrict row, const float *restrict x_ic, int kh, int kw,
                          int ow0, int ow1, const rl_conv_shape *s)
{
    const int W = s->W, Ho = s->Ho;
    const size_t P = (size_t)Ho * W;
    // output rows whose input row oh - pad_t + kh lies in [0, H)
    int oh0 = s->pad_t - kh > 0 ? s->pad_t - kh : 0;
    int oh1 = s->H + s->pad_t - kh < Ho ? s->H + s->pad_t - kh : Ho;
    if (oh1 <= oh0 || ow1 <= ow0) {
        for (size_t p = 0; p < P; p++) row[p] = 0.0f;
        return;
    }
    const ptrdiff_t shift = (ptrdiff_t)(kh - s->pad_t) * W + (kw - s->pad_l);
    // [p0, p1): first valid pixel of the first valid row to the last of the last row; every
    // x index p + shift in it lies inside the plane
    const size_t p0 = (size_t)oh0 * W + ow0, p1 = (size_t)(oh1 - 1) * W + ow1;
    for (size_t p = 0; p < p0; p++) row[p] = 0.0f;
    const float *src = x_ic + ((ptrdiff_t)p0 + shift);   // x at pixel p0, inside the plane
    for (size_t p = p0; p < p1; p++) row[p] = src[p - p0];
    for (size_t p = p1; p < P; p++) row[p] = 0.0f;
    // columns outside [ow0, ow1) of the valid rows read across a row edge: zero them
    if (ow0 > 0 || ow1 < W) {
        for (int oh = oh0; oh < oh1; oh++) {
            float *r = row + (size_t)oh * W;
            for (int ow = 0; ow < ow0; ow++) r[ow] = 0.0f;
            for (int ow = ow1; ow < W; ow++) r[ow] = 0.0f;
        }
    }
}

// col (C*KH*KW, ldc): column i*P + oh*Wo + ow of row (c*KH + kh)*KW + kw holds
// x[i, c, oh*stride - pad_t + kh, ow*stride - pad_l + kw], or 0 in the padding.
// x (nb, C, H, W).
static void im2col(float *restrict col, const float *restrict x, int nb, const rl_conv_shape *s,
                   size_t ldc)
{
    const int C = s->C, H = s->H, W = s->W, KH = s->KH, KW = s->KW, st = s->stride;
    const int Ho = s->Ho, Wo = s->Wo;
    const size_t P = (size_t)Ho * Wo;

    // one (image, channel) plane per iteration: it writes KH*KW rows of its own image's columns
    #pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < nb; i++) {
        for (int c = 0; c < C; c++) {
            const float *x_ic = x + ((size_t)i * C + c) * H * W;   // (H, W)
            for (int kh = 0; kh < KH; kh++) {
                for (int kw = 0; kw < KW; kw++) {
                    float *row = col + ((size_t)(c * KH + kh) * KW + kw) * ldc + i * P;   // (P)
                    int ow0, ow1;
                    valid_cols(&ow0, &ow1, kw, s);
                    if (st == 1 && Wo == W) {
                        im2col_row_s1(row, x_ic, kh, kw, ow0, ow1, s);
                        continue;
                    }
                    for (int oh = 0; oh < Ho; oh++) {
                        float *r = row + (size_t)oh * Wo;   // (Wo)
                        const int ih = oh * st - s->pad_t + kh;
                        if (ih < 0 || ih >= H) {
                            for (int ow = 0; ow < Wo; ow++) r[ow] = 0.0f;
                            continue;
                        }
                        const float *x_row = x_ic + (size_t)ih * W - s->pad_l + kw;   // at ow=0
                        for (int ow = 0; ow < ow0; ow++) r[ow] = 0.0f;
                        if (st == 1) {
                            for (int ow = ow0; ow < ow1; ow++) r[ow] = x_row[ow];
                        } else {
                            for (int ow = ow0; ow < ow1; ow++) r[ow] = x_row[(size_t)ow * st];
                        }
                        for (int ow = ow1; ow < Wo; ow++) r[ow] = 0.0f;
                    }
                }
            }
        }
    }
}

// Adjoint of im2col: dx (nb, C, H, W) += scatter-add of dcol (C*KH*KW, ldc). Each (image,
// channel) plane of dx is owned by one thread and sums its terms in (kh, kw, oh, ow) order.
static void col2im(float *restrict dx, const float *restrict dcol, int nb, const rl_conv_shape *s,
                   size_t ldc)
{
    const int C = s->C, H = s->H, W = s->W, KH = s->KH, KW = s->KW, st = s->stride;
    const int Ho = s->Ho, Wo = s->Wo;
    const size_t P = (size_t)Ho * Wo;

    #pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < nb; i++) {
        for (int c = 0; c < C; c++) {
            float *dx_ic = dx + ((size_t)i * C + c) * H * W;   // (H, W)
            for (int kh = 0; kh < KH; kh++) {
                for (int kw = 0; kw < KW; kw++) {
                    const float *row = dcol + ((size_t)(c * KH + kh) * KW + kw) * ldc + i * P;
                    int ow0, ow1;
                    valid_cols(&ow0, &ow1, kw, s);
                    for (int oh = 0; oh < Ho; oh++) {
                        const int ih = oh * st - s->pad_t + kh;
                        if (ih < 0 || ih >= H) continue;   // padding: no input to credit
                        const float *r = row + (size_t)oh * Wo;
                        float *dx_row = dx_ic + (size_t)ih * W - s->pad_l + kw;   // at ow=0
                        if (st == 1) {
                            for (int ow = ow0; ow < ow1; ow++) dx_row[ow] += r[ow];
                        } else {
                            for (int ow = ow0; ow < ow1; ow++) dx_row[(size_t)ow * st] += r[ow];
                        }
                    }
                }
            }
        }
    }
}

// ---- forward ------------------------------------------------------------------------------

void rl_conv2d_fwd(float *restrict out, float *restrict scratch, const float *restrict x,
                   const float *restrict w, const float *restrict b, const rl_conv_shape *s)
{
    const int C = s->C, OC = s->OC;
    const size_t K = (size_t)C * s->KH * s->KW;   // reduction length
    const size_t P = (size_t)s->Ho * s->Wo;       // output pixels per image
    const size_t xs = (size_t)C * s->H * s->W;    // floats per input image
    const int nb = tile_images(s), pw = is_pointwise(s);

    for (int n0 = 0; n0 < s->N; n0 += nb) {
        const int nt = s->N - n0 < nb ? s->N - n0 : nb;   // images in this tile
        const size_t cols = (size_t)nt * P;
        const float *x_t = x + (size_t)n0 * xs;           // (nt, C, H, W)
        float *out_t = out + (size_t)n0 * OC * P;         // (nt, OC, P)

        const float *col = x_t;                           // (K, cols)
        if (!(pw && nb == 1)) {
            im2col(scratch, x_t, nt, s, cols);
            col = scratch;
        }

        if (nb == 1) {
            // one image: sgemm straight into out (OC, P), starting from the bias
            if (b) {
                #pragma omp parallel for schedule(static)
                for (int o = 0; o < OC; o++)
                    for (size_t p = 0; p < P; p++) out_t[o * P + p] = b[o];
            }
            rl_gemm(0, 0, OC, (int)P, (int)K, 1.0f, w, (int)K, col, (int)P, b ? 1.0f : 0.0f,
                    out_t, (int)P);
            continue;
        }

        // several images: tile (OC, nt*P), then scatter rows to (nt, OC, P) adding the bias
        float *tile = scratch + K * cols;
        rl_gemm(0, 0, OC, (int)cols, (int)K, 1.0f, w, (int)K, col, (int)cols, 0.0f, tile,
                (int)cols);
        #pragma omp parallel for collapse(2) schedule(static)
        for (int i = 0; i < nt; i++) {
            for (int o = 0; o < OC; o++) {
                const float *src = tile + (size_t)o * cols + i * P;   // (P)
                float *dst = out_t + ((size_t)i * OC + o) * P;       // (P)
                const float bo = b ? b[o] : 0.0f;
                for (size_t p = 0; p < P; p++) dst[p] = src[p] + bo;
            }
        }
    }
}

void rl_conv2d_fwd_ref(float *restrict out, const float *restrict x, const float *restrict w,
                       const float *restrict b, const rl_conv_shape *s)
{
    const int C = s->C, H = s->H, W = s->W, KH = s->KH, KW = s->KW;
    const int OC = s->OC, Ho = s->Ho, Wo = s->Wo;

    // the definition, one output element at a time, summed in double
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < s->N; n++) {
        for (int o = 0; o < OC; o++) {
            for (int oh = 0; oh < Ho; oh++) {
                for (int ow = 0; ow < Wo; ow++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < C; c++) {
                        for (int kh = 0; kh < KH; kh++) {
                            const int ih = oh * s->stride - s->pad_t + kh;
                            if (ih < 0 || ih >= H) continue;
                            for (int kw = 0; kw < KW; kw++) {
                                const int iw = ow * s->stride - s->pad_l + kw;
                                if (iw < 0 || iw >= W) continue;
                                acc += (double)x[(((size_t)n * C + c) * H + ih) * W + iw] *
                                       w[(((size_t)o * C + c) * KH + kh) * KW + kw];
                            }
                        }
                    }
                    out[(((size_t)n * OC + o) * Ho + oh) * Wo + ow] = (float)acc;
                }
            }
        }
    }
}

// ---- backward -----------------------------------------------------------------------------

void rl_conv2d_bwd(float *restrict dx, float *restrict dw, float *restrict db,
                   float *restrict scratch, const float *restrict dout, const float *restrict x,
                   const float *restrict w, const rl_conv_shape *s)
{
    const int C = s->C, OC = s->OC;
    const size_t K = (size_t)C * s->KH * s->KW;
    const size_t P = (size_t)s->Ho * s->Wo;
    const size_t xs = (size_t)C * s->H * s->W;
    const int nb = tile_images(s), pw = is_pointwise(s);

    // db[o] += sum_{n, p} dout[n, o, p]: one channel per thread, n then p in order, in double
    if (db) {
        #pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++) {
            double acc = 0.0;
            for (int n = 0; n < s->N; n++) {
                const float *d = dout + ((size_t)n * OC + o) * P;
                for (size_t p = 0; p < P; p++) acc += d[p];
            }
            db[o] += (float)acc;
        }
    }
    if (!dx && !dw) return;

    for (int n0 = 0; n0 < s->N; n0 += nb) {
        const int nt = s->N - n0 < nb ? s->N - n0 : nb;
        const size_t cols = (size_t)nt * P;
        const float *x_t = x + (size_t)n0 * xs;              // (nt, C, H, W)
        float *dx_t = dx ? dx + (size_t)n0 * xs : NULL;      // (nt, C, H, W)

        // dout of the tile as one (OC, cols) matrix: the image's own rows, or gathered
        const float *dout_t = dout + (size_t)n0 * OC * P;
        if (nb > 1) {
            float *g = scratch + K * cols;
            #pragma omp parallel for collapse(2) schedule(static)
            for (int i = 0; i < nt; i++)
                for (int o = 0; o < OC; o++)
                    memcpy(g + (size_t)o * cols + i * P, dout_t + ((size_t)i * OC + o) * P,
                           P * sizeof(float));
            dout_t = g;
        }

        if (pw && nb == 1) {
            // out = w @ x: dw += dout @ x^T, dx += w^T @ dout, no column matrix at all
            if (dw) rl_gemm(0, 1, OC, C, (int)P, 1.0f, dout_t, (int)P, x_t, (int)P, 1.0f, dw, C);
            if (dx) rl_gemm(1, 0, C, (int)P, OC, 1.0f, w, C, dout_t, (int)P, 1.0f, dx_t, (int)P);
            continue;
        }

        // forward: out_tile = w @ col  =>  dw += dout_tile @ col^T  (tiles in order)
        if (dw) {
            im2col(scratch, x_t, nt, s, cols);
            rl_gemm(0, 1, OC, (int)K, (int)cols, 1.0f, dout_t, (int)cols, scratch, (int)cols,
                    1.0f, dw, (int)K);
        }
        // dcol = w^T @ dout_tile (reusing the col buffer), then dx += col2im(dcol)
        if (dx) {
            rl_gemm(1, 0, (int)K, (int)cols, OC, 1.0f, w, (int)K, dout_t, (int)cols, 0.0f,
                    scratch, (int)cols);
            col2im(dx_t, scratch, nt, s, cols);
        }
    }
}
