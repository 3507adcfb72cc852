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
 * Sums are taken in double, in a fixed order inside one thread (8 interleaved partial sums
 * that gcc vectorises; the loops are compiled per ISA, RL_CLONES); each thread owns whole
 * normalisation sets (for x, dx) or whole channels (for dw, db), so results are bitwise
 * identical for any thread count. NaN in a set propagates to that whole set (as in torch);
 * -0 inputs behave as +0. w and b may be NULL (elementwise_affine=False: w = 1, b = 0). */
// sums in double below are written out in a fixed order; nothing here may be contracted
#pragma GCC optimize("fp-contract=off")

#include <math.h>
#include <stddef.h>

#include "core/ops.h"
#include "core/ops_simd.h"

// ---- vectorised helpers (compiled per ISA, RL_CLONES: same bits from every clone) ---------

/* The sums of a set: 8 interleaved double partial sums (lane l takes elements l, l + 8, ...),
 * combined as ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)). The order depends on n
 * only, so gcc vectorises the lanes at any width without changing a bit. */
#define SUM8(acc) (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])))

/* sum x (n) */
RL_CLONES static double sum_f64(const float *x, size_t n)
{
    double acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += x[i];
    return SUM8(acc);
}

/* sum (x - m)^2 over x (n) */
RL_CLONES static double sumsq_f64(const float *x, size_t n, double m)
{
    double acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) { const double d = x[i + l] - m; acc[l] += d * d; }
    for (int l = 0; i < n; i++, l++) { const double d = x[i] - m; acc[l] += d * d; }
    return SUM8(acc);
}

/* *a = sum g (w), *ax = sum g w xhat, xhat = (x - m) s in float, g (n), x (n); w (n) may be
 * NULL (1). */
RL_CLONES static void sums_bwd_f64(double *a, double *ax, const float *g, const float *x,
                                   const float *w, size_t n, float m, float s)
{
    double acc[8] = { 0 }, accx[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int l = 0; l < 8; l++) {
            const double dh = (double)g[i + l] * (w ? w[i + l] : 1.0f);
            acc[l] += dh;
            accx[l] += dh * ((x[i + l] - m) * s);
        }
    }
    for (int l = 0; i < n; i++, l++) {
        const double dh = (double)g[i] * (w ? w[i] : 1.0f);
        acc[l] += dh;
        accx[l] += dh * ((x[i] - m) * s);
    }
    *a = SUM8(acc);
    *ax = SUM8(accx);
}

/* o (n) = (x - m) s w + b, w and b (n) per element (NULL: 1, 0) or, when wv/bv, scalars. */
RL_CLONES static void affine(float *restrict o, const float *restrict x, size_t n, float m,
                             float s, const float *w, const float *b, float wv, float bv)
{
    if (w || b) {
        for (size_t i = 0; i < n; i++) o[i] = (x[i] - m) * s * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
    } else {
        for (size_t i = 0; i < n; i++) o[i] = (x[i] - m) * s * wv + bv;
    }
}

/* dx (n) += s (g w - md - xhat mdx), xhat = (x - m) s; w per element (NULL: the scalar wv). */
RL_CLONES static void dx_update(float *restrict dx, const float *restrict g,
                                const float *restrict x, const float *w, float wv, size_t n,
                                float m, float s, float md, float mdx)
{
    for (size_t i = 0; i < n; i++) {
        const float xhat = (x[i] - m) * s;
        dx[i] += s * (g[i] * (w ? w[i] : wv) - md - xhat * mdx);
    }
}

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
            const double m = sum_f64(xg, ng) / (double)ng;
            const double v = sumsq_f64(xg, ng, m) / (double)ng;
            const float s = (float)(1.0 / sqrt(v + eps));

            // out = (x - mean) rstd w + b, per channel
            for (int c = 0; c < Cg; c++) {
                const float wc = w ? w[g * Cg + c] : 1.0f, bc = b ? b[g * Cg + c] : 0.0f;
                affine(og + (size_t)c * S, xg + (size_t)c * S, (size_t)S, (float)m, s, NULL,
                       NULL, wc, bc);
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
                    double a, ax;
                    sums_bwd_f64(&a, &ax, dg + (size_t)c * S, xg + (size_t)c * S, NULL,
                                 (size_t)S, m, s);
                    sd += a * wc;
                    sdx += ax * wc;
                }
                const float md = (float)(sd / (double)ng), mdx = (float)(sdx / (double)ng);

                // dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
                for (int c = 0; c < Cg; c++) {
                    const float wc = w ? w[g * Cg + c] : 1.0f;
                    dx_update(dxg + (size_t)c * S, dg + (size_t)c * S, xg + (size_t)c * S, NULL,
                              wc, (size_t)S, m, s, md, mdx);
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
                double a, ax;
                sums_bwd_f64(&a, &ax, dout + off, x + off, NULL, (size_t)S,
                             mean[(size_t)n * G + g], rstd[(size_t)n * G + g]);
                ab += a;
                aw += ax;
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
        const double m = sum_f64(xt, (size_t)C) / C;
        const double v = sumsq_f64(xt, (size_t)C, m) / C;
        const float s = (float)(1.0 / sqrt(v + eps));

        affine(ot, xt, (size_t)C, (float)m, s, w, b, 1.0f, 0.0f);
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
            double sd, sdx;
            sums_bwd_f64(&sd, &sdx, dt, xt, w, (size_t)C, m, s);
            const float md = (float)(sd / C), mdx = (float)(sdx / C);

            // dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
            dx_update(dxt, dt, xt, w, 1.0f, (size_t)C, m, s, md, mdx);
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
