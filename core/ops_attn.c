/* core/ops_attn.c - multi-head scaled dot-product attention, forward and backward.
 *
 * What diffusers' Attention (AttnProcessor) and transformers' CLIPAttention compute after
 * their q/k/v projections, with the heads still interleaved in the channel dim:
 *   q (B, Tq, NH*HS), k, v (B, Tk, NH*HS); for every (b, h) and query i
 *   s_ij = scale q_i . k_j  (j > i masked when causal),  p_i = softmax_j(s_i),
 *   out_i = sum_j p_ij v_j.
 * Backward (y = softmax(s) differentiated row by row):
 *   dp_ij = dout_i . v_j,   ds_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij')
 *   dq_i += scale sum_j ds_ij k_j,  dk_j += scale sum_i ds_ij q_i,  dv_j += sum_i p_ij dout_i
 *
 * Two implementations of the same math, chosen by size:
 *  - direct: a loop nest parallel over (b, head) with collapse(2), one query row at a time.
 *    This is the motion module's regime: B = batch * H * W positions, T = F frames, so
 *    millions of tiny problems that a BLAS call per problem would drown in call overhead.
 *  - gemm: long sequences (spatial self- and cross-attention, CLIP). Per (b, head), rl_gemm
 *    on the strided head slices (lda = NH*HS) for q k^T and p v, and a parallel pass over
 *    rows for the softmax. BLAS is never called inside our parallel regions; OpenBLAS splits
 *    sgemm over M and N only, so each output is summed in one order whatever the thread count.
 * The inference path (rl_attn_fwd_chunked) runs the same two shapes over chunks of queries
 * and never holds more than a chunk of scores. The plain reference rl_attn_fwd_ref is what
 * the tests compare both against.
 *
 * Every output element is owned by one thread; sums run in a fixed order (ops_simd.h), so
 * results are bitwise identical for any thread count. */

// value-safe: lets gcc vectorise the exp loops (see ops_simd.h and ops_act.c)
#pragma GCC optimize("no-trapping-math")

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/ops.h"
#include "core/ops_simd.h"
#include "core/par.h"

/* The gemm path pays a few BLAS calls and a parallel region per (b, head), and rl_gemm runs
 * products below 2^18 FLOPs on one thread; below this many multiply-adds per (b, head) in
 * q k^T the direct loop nest, parallel over (b, head), is the one that scales with threads.
 * (Measured on one thread, HS = 40: T = 16 direct 12.1 vs BLAS 11.4 GFLOP/s; T = 48 BLAS
 * 30.5 vs 19.0; T = 64 BLAS 25 vs 15.) */
#define GEMM_MIN_WORK (64 * 64 * 32)

int rl_attn_uses_gemm(int Tq, int Tk, int HS)
{
    return (size_t)Tq * Tk * HS >= GEMM_MIN_WORK && Tq >= 16 && Tk >= 16;
}

/* Below this many multiply-adds in all, or score entries in a softmax pass, a parallel region
 * costs more than it saves (and on a busy machine much more): run on the calling thread. */
#define PAR_MIN_WORK 32768

static inline int visible_keys(int i, int Tk, int causal)
{
    // causal: keys j <= i are visible
    return causal && i + 1 < Tk ? i + 1 : Tk;
}

// ---- one (b, head), one query row at a time (direct path) -------------------------------

/* Register tiles of the direct path: MR query rows by NR columns held in registers while the
 * shared dimension is walked in order. */
#define MR 4   // tile() spells out its 4 x 8 accumulators
#define NR 8
/* Stack buffers of the tiled direct path: k^T (HS, TKP) and the scores of one row block
 * (MR, TKP), TKP = Tk rounded up to NR. Larger heads use the dot-product loop instead. */
#define KT_MAX_FLOATS 8192
#define TKP_MAX 512

/* 4 floats as one value: GCC/clang vector extension, one SSE register at the x86-64 baseline
 * (wider types would be lowered through memory there). Elementwise IEEE operations, so a tile
 * gives the same bits as scalar code. aligned(4): loads from any float address. */
typedef float v4 __attribute__((vector_size(16), aligned(4)));
#define LD4(p) (*(const v4 *)(p))
#define ST4(p, x) (*(v4 *)(p) = (x))

/* c (mr, NR) = alpha * a (mr, K) @ b (K, NR), rows lda / ldb / ldc apart, mr = MR or 1, each
 * element summed over k in increasing order from 0 (exactly the naive loop's order, so tiling
 * never changes a bit). The accumulators are named so that they stay in registers. */
static inline __attribute__((always_inline)) void
tile(float *restrict c, size_t ldc, const float *restrict a, size_t lda, const float *restrict b,
     size_t ldb, int K, int mr, float alpha)
{
    v4 c00 = { 0 }, c01 = { 0 }, c10 = { 0 }, c11 = { 0 };
    v4 c20 = { 0 }, c21 = { 0 }, c30 = { 0 }, c31 = { 0 };
    if (mr == MR) {
        for (int k = 0; k < K; k++) {
            const float *bk = b + (size_t)k * ldb;
            const v4 b0 = LD4(bk), b1 = LD4(bk + 4);
            const float a0 = a[k], a1 = a[lda + k], a2 = a[2 * lda + k], a3 = a[3 * lda + k];
            c00 += a0 * b0; c01 += a0 * b1;
            c10 += a1 * b0; c11 += a1 * b1;
            c20 += a2 * b0; c21 += a2 * b1;
            c30 += a3 * b0; c31 += a3 * b1;
        }
        ST4(c + ldc, alpha * c10);     ST4(c + ldc + 4, alpha * c11);
        ST4(c + 2 * ldc, alpha * c20); ST4(c + 2 * ldc + 4, alpha * c21);
        ST4(c + 3 * ldc, alpha * c30); ST4(c + 3 * ldc + 4, alpha * c31);
    } else {
        for (int k = 0; k < K; k++) {
            const float *bk = b + (size_t)k * ldb;
            c00 += a[k] * LD4(bk);
            c01 += a[k] * LD4(bk + 4);
        }
    }
    ST4(c, alpha * c00); ST4(c + 4, alpha * c01);
}

/* The same for nc < NR columns (a tail), scalar. */
static void tile_narrow(float *restrict c, size_t ldc, const float *restrict a, size_t lda,
                        const float *restrict b, size_t ldb, int K, int mr, int nc)
{
    for (int r = 0; r < mr; r++) {
        for (int x = 0; x < nc; x++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc += a[(size_t)r * lda + k] * b[(size_t)k * ldb + x];
            c[(size_t)r * ldc + x] = acc;
        }
    }
}

/* Scores and probabilities of query rows [i, i + mr) into sb (mr, TKP); masked and padding
 * entries end as exactly 0. Returns the number of keys the rows' products must cover. */
static inline __attribute__((always_inline)) int
tile_rows_softmax(float *sb, const float *q_i, const float *kt, int i, int mr, int Tk, int TKP,
                  int HS, size_t ld, float scale, int causal)
{
    // s = scale q k^T over every (padded) key; kt's padding columns are 0
    for (int j0 = 0; j0 < TKP; j0 += NR)
        tile(sb + j0, TKP, q_i, ld, kt + j0, TKP, HS, mr, scale);
    for (int r = 0; r < mr; r++) {
        float *p = sb + (size_t)r * TKP;
        const int jn = visible_keys(i + r, Tk, causal);
        const float inv = 1.0f / rl_softmax_exp_row(p, p, jn);
        for (int j = 0; j < jn; j++) p[j] *= inv;
        for (int j = jn; j < TKP; j++) p[j] = 0.0f;
    }
    return visible_keys(i + mr - 1, Tk, causal);
}

/* out rows [i, i + mr) (ld apart) = p (mr, jn; rows TKP apart) @ v (jn, HS). */
static inline __attribute__((always_inline)) void
tile_rows_pv(float *out_i, const float *sb, const float *v_h, int mr, int jn, int HS, int TKP,
             size_t ld)
{
    int d0 = 0;
    for (; d0 + NR <= HS; d0 += NR) tile(out_i + d0, ld, sb, TKP, v_h + d0, ld, jn, mr, 1.0f);
    if (d0 < HS) tile_narrow(out_i + d0, ld, sb, TKP, v_h + d0, ld, jn, mr, HS - d0);
}

/* For one (b, head): q_h (Tq, HS), k_h, v_h (Tk, HS), out_h (Tq, HS), all rows ld apart.
 * att_h (Tq, Tk): if keep, it receives the probabilities (masked entries 0); otherwise it is
 * per-thread scratch of Tk floats. */
static void attn_head_direct(float *out_h, float *att_h, const float *q_h, const float *k_h,
                             const float *v_h, int Tq, int Tk, int HS, size_t ld, float scale,
                             int causal, int keep)
{
    const int TKP = (Tk + NR - 1) / NR * NR;
    if ((size_t)HS * TKP <= KT_MAX_FLOATS && TKP <= TKP_MAX) {
        // tiled: k^T (HS, TKP) on the stack, zero-padded, so the scores of MR queries are
        // register tiles over d (the temporal regime: Tk = F = 16, HS = 8..40)
        float kt[KT_MAX_FLOATS], sb[MR * TKP_MAX];
        for (int d = 0; d < HS; d++) {
            for (int j = 0; j < Tk; j++) kt[(size_t)d * TKP + j] = k_h[(size_t)j * ld + d];
            for (int j = Tk; j < TKP; j++) kt[(size_t)d * TKP + j] = 0.0f;
        }
        int i = 0;
        for (; i + MR <= Tq; i += MR) {
            const int jn = tile_rows_softmax(sb, q_h + (size_t)i * ld, kt, i, MR, Tk, TKP, HS,
                                             ld, scale, causal);
            tile_rows_pv(out_h + (size_t)i * ld, sb, v_h, MR, jn, HS, TKP, ld);
            if (keep)
                for (int r = 0; r < MR; r++)
                    memcpy(att_h + (size_t)(i + r) * Tk, sb + (size_t)r * TKP, Tk * sizeof(float));
        }
        for (; i < Tq; i++) {
            const int jn = tile_rows_softmax(sb, q_h + (size_t)i * ld, kt, i, 1, Tk, TKP, HS,
                                             ld, scale, causal);
            tile_rows_pv(out_h + (size_t)i * ld, sb, v_h, 1, jn, HS, TKP, ld);
            if (keep) memcpy(att_h + (size_t)i * Tk, sb, Tk * sizeof(float));
        }
        return;
    }

    // long key rows: one query at a time, scores as dot products from k's rows
    for (int i = 0; i < Tq; i++) {
        const float *qi = q_h + (size_t)i * ld;     // (HS)
        float *oi = out_h + (size_t)i * ld;         // (HS)
        float *p = keep ? att_h + (size_t)i * Tk : att_h;   // (Tk)
        const int jn = visible_keys(i, Tk, causal);

        // s_ij = scale q_i . k_j
        for (int j = 0; j < jn; j++) p[j] = scale * rl_dot_f32(qi, k_h + (size_t)j * ld, HS);
        // p_i = softmax(s_i): exp(s - max) then one division per row
        const float inv = 1.0f / rl_softmax_exp_row(p, p, jn);
        for (int j = 0; j < jn; j++) p[j] *= inv;
        if (keep) for (int j = jn; j < Tk; j++) p[j] = 0.0f;

        // out_i = sum_j p_ij v_j
        for (int d = 0; d < HS; d++) oi[d] = 0.0f;
        for (int j = 0; j < jn; j++) {
            const float pj = p[j], *vj = v_h + (size_t)j * ld;
            for (int d = 0; d < HS; d++) oi[d] += pj * vj[d];
        }
    }
}

/* The softmax of long score rows is the one loop the gemm path runs outside BLAS; these are
 * compiled for AVX-512 and AVX2 too and picked at load time (ifunc). The same elementwise IEEE
 * operations in the same order at every width (no FMA contraction under -std=c11), so each
 * clone gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE_CLONES
#endif

/* s (Tk): softmax of the first jn entries in place, the rest set to 0. */
WIDE_CLONES static void softmax_row_masked(float *s, int jn, int Tk)
{
    const float inv = 1.0f / rl_softmax_exp_row(s, s, jn);
    for (int j = 0; j < jn; j++) s[j] *= inv;
    for (int j = jn; j < Tk; j++) s[j] = 0.0f;
}

/* Rows [0, R) of a score block s (R, Tk): softmax of the visible keys in place, masked
 * entries set to 0. Row r is query i0 + r. One row per iteration, parallel. */
static void softmax_rows(float *s, int R, int Tk, int i0, int causal)
{
    #pragma omp parallel for schedule(static) if ((size_t)R * Tk > PAR_MIN_WORK)
    for (int r = 0; r < R; r++)
        softmax_row_masked(s + (size_t)r * Tk, visible_keys(i0 + r, Tk, causal), Tk);
}

/* One (b, head) through BLAS, queries [i0, i0 + R): s (R, Tk) receives the probabilities.
 * Keys past the last visible one (causal) are skipped in both products. */
static void attn_head_gemm(float *out_h, float *s, const float *q_h, const float *k_h,
                           const float *v_h, int i0, int R, int Tk, int HS, int ld,
                           float scale, int causal)
{
    const int jn = visible_keys(i0 + R - 1, Tk, causal);
    // s (R, jn) = scale q (R, HS) @ k^T (HS, jn), rows Tk apart
    rl_gemm(0, 1, R, jn, HS, scale, q_h + (size_t)i0 * ld, ld, k_h, ld, 0.0f, s, Tk);
    // columns >= jn were not written; softmax_rows zeroes every masked entry of each row
    softmax_rows(s, R, Tk, i0, causal);
    // out (R, HS) = p (R, jn) @ v (jn, HS)
    rl_gemm(0, 0, R, HS, jn, 1.0f, s, Tk, v_h, ld, 0.0f, out_h + (size_t)i0 * ld, ld);
}

// ---- forward: training path ----------------------------------------------------------------

void rl_attn_fwd(float *out, float *att, const float *q, const float *k, const float *v,
                 int B, int NH, int Tq, int Tk, int HS, float scale, int causal)
{
    // out (B, Tq, NH*HS), att (B, NH, Tq, Tk), q (B, Tq, NH*HS), k, v (B, Tk, NH*HS)
    const size_t ld = (size_t)NH * HS;
    const size_t work = (size_t)B * NH * Tq * Tk * HS;   // multiply-adds of q k^T
    if (!rl_attn_uses_gemm(Tq, Tk, HS)) {
        #pragma omp parallel for collapse(2) schedule(static) if (work > PAR_MIN_WORK)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                attn_head_direct(out + (size_t)b * Tq * ld + (size_t)h * HS,
                                 att + ((size_t)b * NH + h) * Tq * Tk,
                                 q + (size_t)b * Tq * ld + (size_t)h * HS,
                                 k + (size_t)b * Tk * ld + (size_t)h * HS,
                                 v + (size_t)b * Tk * ld + (size_t)h * HS,
                                 Tq, Tk, HS, ld, scale, causal, 1);
            }
        }
        return;
    }
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            attn_head_gemm(out + (size_t)b * Tq * ld + (size_t)h * HS,
                           att + ((size_t)b * NH + h) * Tq * Tk,
                           q + (size_t)b * Tq * ld + (size_t)h * HS,
                           k + (size_t)b * Tk * ld + (size_t)h * HS,
                           v + (size_t)b * Tk * ld + (size_t)h * HS,
                           0, Tq, Tk, HS, (int)ld, scale, causal);
        }
    }
}

// ---- forward: inference path (chunks of queries) -------------------------------------------

size_t rl_attn_chunked_scratch_floats(int Tq, int Tk, int HS, int chunk, int n_threads)
{
    (void)HS;
    // direct path: one score row per thread; gemm path: one chunk of scores at a time
    const int R = chunk < Tq ? chunk : Tq;
    const size_t direct = (size_t)(n_threads > 0 ? n_threads : 1) * Tk;
    const size_t gemm = (size_t)(R > 0 ? R : 1) * Tk;
    return direct > gemm ? direct : gemm;
}

void rl_attn_fwd_chunked(float *out, float *scratch, const float *q, const float *k,
                         const float *v, int B, int NH, int Tq, int Tk, int HS, float scale,
                         int causal, int chunk)
{
    // out (B, Tq, NH*HS); scratch: rl_attn_chunked_scratch_floats(..., n_threads) floats with
    // n_threads >= the threads a parallel region here will use
    const size_t ld = (size_t)NH * HS;
    const size_t work = (size_t)B * NH * Tq * Tk * HS;   // multiply-adds of q k^T
    if (chunk < 1) chunk = 1;
    if (!rl_attn_uses_gemm(Tq, Tk, HS)) {
        // each thread forms one query's scores at a time in its own Tk floats
        #pragma omp parallel for collapse(2) schedule(static) if (work > PAR_MIN_WORK)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                float *p = scratch + (size_t)rl_par_thread_id() * Tk;   // (Tk)
                attn_head_direct(out + (size_t)b * Tq * ld + (size_t)h * HS, p,
                                 q + (size_t)b * Tq * ld + (size_t)h * HS,
                                 k + (size_t)b * Tk * ld + (size_t)h * HS,
                                 v + (size_t)b * Tk * ld + (size_t)h * HS,
                                 Tq, Tk, HS, ld, scale, causal, 0);
            }
        }
        return;
    }
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int i0 = 0; i0 < Tq; i0 += chunk) {
                const int R = Tq - i0 < chunk ? Tq - i0 : chunk;
                // scratch holds this chunk's scores (R, Tk)
                attn_head_gemm(out + (size_t)b * Tq * ld + (size_t)h * HS, scratch,
                               q + (size_t)b * Tq * ld + (size_t)h * HS,
                               k + (size_t)b * Tk * ld + (size_t)h * HS,
                               v + (size_t)b * Tk * ld + (size_t)h * HS,
                               i0, R, Tk, HS, (int)ld, scale, causal);
            }
        }
    }
}

// ---- forward: plain reference ---------------------------------------------------------------

void rl_attn_fwd_ref(float *out, float *att, const float *q, const float *k, const float *v,
                     int B, int NH, int Tq, int Tk, int HS, float scale, int causal)
{
    // the formula as written, serial, sums in double; att (B, NH, Tq, Tk) gets p
    const size_t ld = (size_t)NH * HS;
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *p_bh = att + ((size_t)b * NH + h) * Tq * Tk;
            for (int i = 0; i < Tq; i++) {
                const float *qi = q + ((size_t)b * Tq + i) * ld + (size_t)h * HS;
                float *p = p_bh + (size_t)i * Tk;
                double m = -1e300, sum = 0.0;
                for (int j = 0; j < Tk; j++) {
                    const float *kj = k + ((size_t)b * Tk + j) * ld + (size_t)h * HS;
                    double s = 0.0;
                    for (int d = 0; d < HS; d++) s += (double)qi[d] * kj[d];
                    p[j] = (float)(s * scale);
                    if (!(causal && j > i) && p[j] > m) m = p[j];
                }
                for (int j = 0; j < Tk; j++) {
                    const double e = causal && j > i ? 0.0 : exp((double)p[j] - m);
                    p[j] = (float)e;
                    sum += e;
                }
                for (int j = 0; j < Tk; j++) p[j] = (float)(p[j] / sum);
                float *oi = out + ((size_t)b * Tq + i) * ld + (size_t)h * HS;
                for (int d = 0; d < HS; d++) {
                    double o = 0.0;
                    for (int j = 0; j < Tk; j++)
                        o += (double)p[j] * v[((size_t)b * Tk + j) * ld + (size_t)h * HS + d];
                    oi[d] = (float)o;
                }
            }
        }
    }
}

// ---- backward ---------------------------------------------------------------------------------

size_t rl_attn_bwd_scratch_floats(int Tq, int Tk, int n_threads)
{
    return (size_t)(n_threads > 0 ? n_threads : 1) * Tq * Tk;
}

/* One (b, head) by loops. ds (Tq, Tk) is this thread's scratch; p_h (Tq, Tk) = att. */
static void attn_head_bwd_direct(float *dq_h, float *dk_h, float *dv_h, float *ds,
                                 const float *dout_h, const float *p_h, const float *q_h,
                                 const float *k_h, const float *v_h, int Tq, int Tk, int HS,
                                 size_t ld, float scale, int causal)
{
    for (int i = 0; i < Tq; i++) {
        const float *doi = dout_h + (size_t)i * ld;      // (HS)
        const float *pi = p_h + (size_t)i * Tk;          // (Tk)
        float *dsi = ds + (size_t)i * Tk;                // (Tk)
        const int jn = visible_keys(i, Tk, causal);
        // dp_ij = dout_i . v_j
        for (int j = 0; j < jn; j++) dsi[j] = rl_dot_f32(doi, v_h + (size_t)j * ld, HS);
        // ds_ij = p_ij (dp_ij - sum_j p_ij dp_ij)
        const float c = rl_dot_f32(pi, dsi, jn);
        for (int j = 0; j < jn; j++) dsi[j] = pi[j] * (dsi[j] - c);
        for (int j = jn; j < Tk; j++) dsi[j] = 0.0f;
        // dq_i += scale sum_j ds_ij k_j
        if (dq_h) {
            float *dqi = dq_h + (size_t)i * ld;
            for (int j = 0; j < jn; j++) {
                const float a = scale * dsi[j], *kj = k_h + (size_t)j * ld;
                for (int d = 0; d < HS; d++) dqi[d] += a * kj[d];
            }
        }
    }
    // dk_j += scale sum_i ds_ij q_i;  dv_j += sum_i p_ij dout_i  (causal: only i >= j)
    for (int j = 0; j < Tk; j++) {
        const int i0 = causal ? j : 0;
        float *dkj = dk_h ? dk_h + (size_t)j * ld : NULL, *dvj = dv_h ? dv_h + (size_t)j * ld : NULL;
        for (int i = i0; i < Tq; i++) {
            const float a = scale * ds[(size_t)i * Tk + j], pij = p_h[(size_t)i * Tk + j];
            const float *qi = q_h + (size_t)i * ld, *doi = dout_h + (size_t)i * ld;
            if (dkj) for (int d = 0; d < HS; d++) dkj[d] += a * qi[d];
            if (dvj) for (int d = 0; d < HS; d++) dvj[d] += pij * doi[d];
        }
    }
}

/* Rows of ds (R, Tk) hold dp on entry; ds = p (dp - sum(p dp)) on exit. Parallel over rows. */
static void softmax_bwd_rows(float *ds, const float *p, int R, int Tk)
{
    #pragma omp parallel for schedule(static) if ((size_t)R * Tk > PAR_MIN_WORK)
    for (int r = 0; r < R; r++) {
        float *dsr = ds + (size_t)r * Tk;
        const float *pr = p + (size_t)r * Tk;
        const float c = rl_dot_f32(pr, dsr, Tk);
        for (int j = 0; j < Tk; j++) dsr[j] = pr[j] * (dsr[j] - c);
    }
}

void rl_attn_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                 const float *att, const float *q, const float *k, const float *v,
                 int B, int NH, int Tq, int Tk, int HS, float scale, int causal)
{
    // dq, dout (B, Tq, NH*HS); dk, dv (B, Tk, NH*HS); att (B, NH, Tq, Tk) from rl_attn_fwd;
    // scratch: rl_attn_bwd_scratch_floats(Tq, Tk, n_threads) floats (see the chunked fwd)
    const size_t ld = (size_t)NH * HS;
    const size_t work = (size_t)B * NH * Tq * Tk * HS;   // multiply-adds of q k^T
    if (!rl_attn_uses_gemm(Tq, Tk, HS)) {
        // each (b, head) owns its slices of dq, dk, dv: disjoint writes
        #pragma omp parallel for collapse(2) schedule(static) if (work > PAR_MIN_WORK)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                const size_t oq = (size_t)b * Tq * ld + (size_t)h * HS;
                const size_t ok = (size_t)b * Tk * ld + (size_t)h * HS;
                attn_head_bwd_direct(dq ? dq + oq : NULL, dk ? dk + ok : NULL,
                                     dv ? dv + ok : NULL,
                                     scratch + (size_t)rl_par_thread_id() * Tq * Tk,
                                     dout + oq, att + ((size_t)b * NH + h) * Tq * Tk,
                                     q + oq, k + ok, v + ok, Tq, Tk, HS, ld, scale, causal);
            }
        }
        return;
    }
    // masked p are exactly 0, so the full products need no masking (ds is 0 there too)
    float *ds = scratch;   // (Tq, Tk)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const size_t oq = (size_t)b * Tq * ld + (size_t)h * HS;
            const size_t ok = (size_t)b * Tk * ld + (size_t)h * HS;
            const float *p = att + ((size_t)b * NH + h) * Tq * Tk;   // (Tq, Tk)
            // dv (Tk, HS) += p^T (Tk, Tq) @ dout (Tq, HS)
            if (dv) rl_gemm(1, 0, Tk, HS, Tq, 1.0f, p, Tk, dout + oq, ld, 1.0f, dv + ok, ld);
            if (!dq && !dk) continue;
            // dp (Tq, Tk) = dout (Tq, HS) @ v^T (HS, Tk); then ds = p (dp - sum(p dp))
            rl_gemm(0, 1, Tq, Tk, HS, 1.0f, dout + oq, ld, v + ok, ld, 0.0f, ds, Tk);
            softmax_bwd_rows(ds, p, Tq, Tk);
            // dq (Tq, HS) += scale ds @ k;  dk (Tk, HS) += scale ds^T @ q
            if (dq) rl_gemm(0, 0, Tq, HS, Tk, scale, ds, Tk, k + ok, ld, 1.0f, dq + oq, ld);
            if (dk) rl_gemm(1, 0, Tk, HS, Tq, scale, ds, Tk, q + oq, ld, 1.0f, dk + ok, ld);
        }
    }
}
