/* core/ops_misc.c - elementwise arithmetic, layout (bias broadcast, channel concat, 4-D
 * permute), embeddings (sinusoidal timestep embedding, table lookup) and the MSE loss.
 *
 * rl_timestep_embed follows diffusers' get_timestep_embedding (models/embeddings.py), which
 * computes in float32: exponent_i = -ln(max_period) * i / (half - downscale_freq_shift),
 * freq_i = exp(exponent_i), arg = t * freq_i, emb = [sin(arg), cos(arg)] ([cos, sin] when
 * flip_sin_to_cos), one zero column appended when dim is odd. Every step is rounded to float as
 * torch rounds it, so a UNet fed by reel sees the same embedding as one fed by diffusers.
 *
 * Threading: every loop writes disjoint outputs; sums (add_bias_nc_bwd, embed_bwd, mse) are
 * taken in a fixed order by one owner, so results do not depend on the thread count. */
#include "core/ops.h"

#include <math.h>
#include <string.h>

// below this many elements a parallel region costs more than the loop
#define PAR_MIN 32768

// ---- elementwise --------------------------------------------------------------------------

void rl_add_fwd(float *out, const float *a, const float *b, size_t n)
{
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void rl_add_inplace(float *restrict y, const float *restrict x, size_t n)
{
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void rl_scale_fwd(float *out, const float *x, float s, size_t n)
{
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = x[i] * s;
}

void rl_axpy(float *restrict y, float a, const float *restrict x, size_t n)
{
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

// ---- bias over (n, c) ---------------------------------------------------------------------

void rl_add_bias_nc(float *restrict out, const float *restrict bias, int N, int C, int S)
{
    // out (N, C, S) += bias (N, C)
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)N * C * S > PAR_MIN)
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++) {
            float *o = out + ((size_t)n * C + c) * S;   // (S)
            const float bv = bias[(size_t)n * C + c];
            for (int s = 0; s < S; s++) o[s] += bv;
        }
    }
}

void rl_add_bias_nc_bwd(float *restrict dbias, const float *restrict dout, int N, int C, int S)
{
    // dbias[n, c] += sum_s dout[n, c, s], in double, one (n, c) per iteration
    #pragma omp parallel for collapse(2) schedule(static) if ((size_t)N * C * S > PAR_MIN)
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++) {
            const float *d = dout + ((size_t)n * C + c) * S;   // (S)
            double acc = 0.0;
            for (int s = 0; s < S; s++) acc += d[s];
            dbias[(size_t)n * C + c] += (float)acc;
        }
    }
}

// ---- channel concat -----------------------------------------------------------------------

void rl_concat_fwd(float *restrict out, const float *restrict a, const float *restrict b,
                   int N, int Ca, int Cb, int S)
{
    // out (N, Ca+Cb, S) = [a (N, Ca, S) | b (N, Cb, S)] along channels: two copies per image
    const size_t na = (size_t)Ca * S, nbb = (size_t)Cb * S;
    #pragma omp parallel for schedule(static) if ((size_t)N * (na + nbb) > PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * (na + nbb);
        memcpy(o, a + (size_t)n * na, na * sizeof(float));
        memcpy(o + na, b + (size_t)n * nbb, nbb * sizeof(float));
    }
}

void rl_concat_bwd(float *restrict da, float *restrict db, const float *restrict dout,
                   int N, int Ca, int Cb, int S)
{
    // da += dout[:, :Ca], db += dout[:, Ca:]
    const size_t na = (size_t)Ca * S, nbb = (size_t)Cb * S;
    #pragma omp parallel for schedule(static) if ((size_t)N * (na + nbb) > PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * (na + nbb);
        if (da) { float *t = da + (size_t)n * na;  for (size_t i = 0; i < na; i++) t[i] += d[i]; }
        if (db) { float *t = db + (size_t)n * nbb; for (size_t i = 0; i < nbb; i++) t[i] += d[na + i]; }
    }
}

// ---- permute ------------------------------------------------------------------------------

void rl_permute4(float *restrict out, const float *restrict x, const int d[4], const int p[4])
{
    // x strides (row-major over d), then the stride in x of each output dimension k = d[p[k]]
    const size_t xs[4] = { (size_t)d[1] * d[2] * d[3], (size_t)d[2] * d[3], (size_t)d[3], 1 };
    const int e0 = d[p[0]], e1 = d[p[1]], e2 = d[p[2]], e3 = d[p[3]];   // out dims
    const size_t s0 = xs[p[0]], s1 = xs[p[1]], s2 = xs[p[2]], s3 = xs[p[3]];

    // out is written contiguously; one (j0, j1) slab of e2*e3 values per iteration
    #pragma omp parallel for collapse(2) schedule(static) \
        if ((size_t)e0 * e1 * e2 * e3 > PAR_MIN)
    for (int j0 = 0; j0 < e0; j0++) {
        for (int j1 = 0; j1 < e1; j1++) {
            float *o = out + ((size_t)j0 * e1 + j1) * e2 * e3;   // (e2, e3)
            const float *xb = x + j0 * s0 + j1 * s1;
            for (int j2 = 0; j2 < e2; j2++) {
                const float *xr = xb + j2 * s2;
                float *orow = o + (size_t)j2 * e3;
                if (s3 == 1) memcpy(orow, xr, (size_t)e3 * sizeof(float));
                else for (int j3 = 0; j3 < e3; j3++) orow[j3] = xr[j3 * s3];
            }
        }
    }
}

void rl_permute_inverse(int inv[4], const int p[4])
{
    // y = x.permute(p) has dim k = x's dim p[k]; y.permute(inv) restores x when inv[p[k]] = k
    for (int k = 0; k < 4; k++) inv[p[k]] = k;
}

// ---- embeddings ---------------------------------------------------------------------------

void rl_timestep_embed(float *restrict out, const float *restrict t, int N, int dim,
                       int flip_sin_to_cos, float freq_shift, float max_period)
{
    // out (N, dim), t (N)
    const int half = dim / 2;
    // each step rounded to float as torch does it (float32 arange times a double scalar,
    // divided by a double scalar, then exp, product, sin/cos all in float32)
    const float neg_log = (float)-log((double)max_period);
    const float denom = (float)((double)half - (double)freq_shift);

    #pragma omp parallel for schedule(static) if ((size_t)N * dim > PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * dim;   // (dim)
        const int sin_off = flip_sin_to_cos ? half : 0, cos_off = flip_sin_to_cos ? 0 : half;
        for (int i = 0; i < half; i++) {
            const float e = (neg_log * (float)i) / denom;
            const float f = expf(e);
            const float arg = t[n] * f;
            o[sin_off + i] = (float)sin((double)arg);   // correctly rounded sin of the float arg
            o[cos_off + i] = (float)cos((double)arg);
        }
        if (dim % 2) o[dim - 1] = 0.0f;   // F.pad(emb, (0, 1, 0, 0))
    }
}

// columns of dtable one thread owns in rl_embed_bwd
#define EMBED_COLS 64

void rl_embed_fwd(float *restrict out, const int *restrict ids, const float *restrict table,
                  int T, int D)
{
    // out (T, D) = table (V, D) rows ids (T)
    #pragma omp parallel for schedule(static) if ((size_t)T * D > PAR_MIN)
    for (int t = 0; t < T; t++)
        memcpy(out + (size_t)t * D, table + (size_t)ids[t] * D, (size_t)D * sizeof(float));
}

void rl_embed_bwd(float *restrict dtable, const float *restrict dout, const int *restrict ids,
                  int T, int D, int V)
{
    (void)V;   // dtable is (V, D); ids were validated against V by the caller
    // dtable[ids[t]] += dout[t]: an id may repeat, so threads split the columns instead of
    // the rows, and each column sums its tokens in t order
    const int nblk = (D + EMBED_COLS - 1) / EMBED_COLS;
    #pragma omp parallel for schedule(static) if ((size_t)T * D > PAR_MIN)
    for (int blk = 0; blk < nblk; blk++) {
        const int d0 = blk * EMBED_COLS, d1 = d0 + EMBED_COLS < D ? d0 + EMBED_COLS : D;
        for (int t = 0; t < T; t++) {
            float *row = dtable + (size_t)ids[t] * D;
            const float *g = dout + (size_t)t * D;
            for (int d = d0; d < d1; d++) row[d] += g[d];
        }
    }
}

// ---- loss ---------------------------------------------------------------------------------

// fixed number of partial sums, so the order of the double sum does not depend on threads
#define MSE_BLOCKS 64

double rl_mse_fwd(const float *restrict a, const float *restrict b, size_t n)
{
    // sum_i (a_i - b_i)^2: MSE_BLOCKS contiguous partial sums in double, added in order
    double part[MSE_BLOCKS];
    const size_t bs = (n + MSE_BLOCKS - 1) / MSE_BLOCKS;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int k = 0; k < MSE_BLOCKS; k++) {
        const size_t i0 = (size_t)k * bs < n ? (size_t)k * bs : n;
        const size_t i1 = i0 + bs < n ? i0 + bs : n;
        double acc = 0.0;
        for (size_t i = i0; i < i1; i++) {
            const double d = (double)a[i] - b[i];
            acc += d * d;
        }
        part[k] = acc;
    }
    double sum = 0.0;
    for (int k = 0; k < MSE_BLOCKS; k++) sum += part[k];
    return sum;
}

void rl_mse_bwd(float *restrict da, const float *restrict a, const float *restrict b, float scale,
                size_t n)
{
    // loss = scale * sum (a - b)^2  =>  da += scale * 2 (a - b)
    const float s2 = 2.0f * scale;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) da[i] += s2 * (a[i] - b[i]);
}
