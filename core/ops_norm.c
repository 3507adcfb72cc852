/* core/ops_norm.c - group normalisation and layer normalisation, forward and backward.
 *
 * torch.nn.GroupNorm (x (N, C, S) split into G groups of C/G channels) and torch.nn.LayerNorm
 * over the last dimension (x (T, C)). Both normalise with the biased variance:
 *   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps),  out = xhat * w + b.
 * Backward (llm.c's layernorm_backward, per normalisation set of M elements):
 *   dxhat = dout * w
 *   dx   += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 *   dw   += sum dout * xhat,   db += sum dout   (over every element that used w[c])
 *
 * Sums are taken in double, in a fixed order inside one thread; each thread owns whole
 * normalisation sets (for x, dx) or whole channels (for dw, db), so results are bitwise
 * identical for any thread count. NaN in a set propagates to that whole set (as in torch);
 * -0 inputs behave as +0. w and b may be NULL (elementwise_affine=False: w = 1, b = 0). */
#include <math.h>
#include <stddef.h>

#include "core/ops.h"

// ---- group norm: forward ------------------------------------------------------------

void rl_groupnorm_fwd(float *restrict out, float *restrict mean, float *restrict rstd,
                      const float *restrict x, const float *w, const float *b,
                      int N, int C, int S, int G, float eps)
{
    const int    Cg = C / G;               // channels per group
    const size_t ng = (size_t)Cg * S;      // elements per group

    // one (n, g) per iteration: each thread owns whole groups, so no shared sums
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++) {
        for (int g = 0; g < G; g++) {
            const size_t off = ((size_t)n * C + (size_t)g * Cg) * S;
            const float *xg = x + off;     // (Cg, S)
            float *og = out + off;         // (Cg, S)

            // two passes in double: mean, then variance of shifted values (torch uses
            // the biased variance here)
            double m = 0.0, v = 0.0;
            for (size_t i = 0; i < ng; i++) m += xg[i];
            m /= (double)ng;
            for (size_t i = 0; i < ng; i++) { double d = xg[i] - m; v += d * d; }
            v /= (double)ng;
            const float s = (float)(1.0 / sqrt(v + eps));

            for (int c = 0; c < Cg; c++) {
                const float wc = w ? w[g * Cg + c] : 1.0f, bc = b ? b[g * Cg + c] : 0.0f;
                const float *xc = xg + (size_t)c * S;
                float *oc = og + (size_t)c * S;
                for (int i = 0; i < S; i++)
                    oc[i] = (xc[i] - (float)m) * s * wc + bc;
            }
            mean[(size_t)n * G + g] = (float)m;
            rstd[(size_t)n * G + g] = s;
        }
    }
}

// ---- group norm: backward -----------------------------------------------------------

void rl_groupnorm_bwd(float *restrict dx, float *restrict dw, float *restrict db,
                      const float *restrict dout, const float *restrict x,
                      const float *mean, const float *rstd, const float *w,
                      int N, int C, int S, int G)
{
    const int    Cg = C / G;
    const size_t ng = (size_t)Cg * S;

    // dx: one (n, g) per iteration (the two means couple every element of a group)
    if (dx) {
        #pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n < N; n++) {
            for (int g = 0; g < G; g++) {
                const size_t off = ((size_t)n * C + (size_t)g * Cg) * S;
                const float m = mean[(size_t)n * G + g], s = rstd[(size_t)n * G + g];
                const float *xg = x + off, *dg = dout + off;   // (Cg, S)
                float *dxg = dx + off;                          // (Cg, S)

                // mean(dxhat) and mean(dxhat * xhat), dxhat = dout * w
                double sd = 0.0, sdx = 0.0;
                for (int c = 0; c < Cg; c++) {
                    const double wc = w ? w[g * Cg + c] : 1.0;
                    const float *xc = xg + (size_t)c * S, *dc = dg + (size_t)c * S;
                    double a = 0.0, ax = 0.0;
                    for (int i = 0; i < S; i++) {
                        a += dc[i];
                        ax += (double)dc[i] * ((xc[i] - m) * s);
                    }
                    sd += a * wc;
                    sdx += ax * wc;
                }
                const float md = (float)(sd / (double)ng), mdx = (float)(sdx / (double)ng);

                // dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
                for (int c = 0; c < Cg; c++) {
                    const float wc = w ? w[g * Cg + c] : 1.0f;
                    const float *xc = xg + (size_t)c * S, *dc = dg + (size_t)c * S;
                    float *dxc = dxg + (size_t)c * S;
                    for (int i = 0; i < S; i++) {
                        const float xhat = (xc[i] - m) * s;
                        dxc[i] += s * (dc[i] * wc - md - xhat * mdx);
                    }
                }
            }
        }
    }

    // dw, db: one channel per iteration, summing over n then s in a fixed order
    if (dw || db) {
        #pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            const int g = c / Cg;
            double aw = 0.0, ab = 0.0;
            for (int n = 0; n < N; n++) {
                const size_t off = ((size_t)n * C + c) * S;
                const float m = mean[(size_t)n * G + g], s = rstd[(size_t)n * G + g];
                for (int i = 0; i < S; i++) {
                    ab += dout[off + i];
                    aw += (double)dout[off + i] * ((x[off + i] - m) * s);
                }
            }
            if (dw) dw[c] += (float)aw;
            if (db) db[c] += (float)ab;
        }
    }
}

// ---- layer norm: forward ------------------------------------------------------------

void rl_layernorm_fwd(float *restrict out, float *restrict mean, float *restrict rstd,
                      const float *restrict x, const float *w, const float *b,
                      int T, int C, float eps)
{
    // one row per iteration
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * C;   // (C)
        float *ot = out + (size_t)t * C;       // (C)

        // two passes in double, biased variance (torch.nn.LayerNorm)
        double m = 0.0, v = 0.0;
        for (int i = 0; i < C; i++) m += xt[i];
        m /= C;
        for (int i = 0; i < C; i++) { double d = xt[i] - m; v += d * d; }
        v /= C;
        const float s = (float)(1.0 / sqrt(v + eps));

        for (int i = 0; i < C; i++)
            ot[i] = (xt[i] - (float)m) * s * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
        mean[t] = (float)m;
        rstd[t] = s;
    }
}

// ---- layer norm: backward -----------------------------------------------------------

// channels per dw/db task: each thread owns a block of columns and walks all rows, so the
// rows are read contiguously and every column sums its rows in the same order
#define LN_COLS 64

void rl_layernorm_bwd(float *restrict dx, float *restrict dw, float *restrict db,
                      const float *restrict dout, const float *restrict x,
                      const float *mean, const float *rstd, const float *w, int T, int C)
{
    if (dx) {
        #pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++) {
            const float *xt = x + (size_t)t * C, *dt = dout + (size_t)t * C;   // (C)
            float *dxt = dx + (size_t)t * C;                                    // (C)
            const float m = mean[t], s = rstd[t];

            // mean(dxhat) and mean(dxhat * xhat), dxhat = dout * w
            double sd = 0.0, sdx = 0.0;
            for (int i = 0; i < C; i++) {
                const double dh = (double)dt[i] * (w ? w[i] : 1.0f);
                sd += dh;
                sdx += dh * ((xt[i] - m) * s);
            }
            const float md = (float)(sd / C), mdx = (float)(sdx / C);

            // dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
            for (int i = 0; i < C; i++) {
                const float xhat = (xt[i] - m) * s;
                dxt[i] += s * (dt[i] * (w ? w[i] : 1.0f) - md - xhat * mdx);
            }
        }
    }

    if (dw || db) {
        const int nblk = (C + LN_COLS - 1) / LN_COLS;
        #pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            const int c0 = blk * LN_COLS;
            const int nc = C - c0 < LN_COLS ? C - c0 : LN_COLS;
            double aw[LN_COLS] = { 0 }, ab[LN_COLS] = { 0 };
            for (int t = 0; t < T; t++) {
                const float *xt = x + (size_t)t * C + c0, *dt = dout + (size_t)t * C + c0;
                const float m = mean[t], s = rstd[t];
                for (int i = 0; i < nc; i++) {
                    ab[i] += dt[i];
                    aw[i] += (double)dt[i] * ((xt[i] - m) * s);
                }
            }
            for (int i = 0; i < nc; i++) {
                if (dw) dw[c0 + i] += (float)aw[i];
                if (db) db[c0 + i] += (float)ab[i];
            }
        }
    }
}
