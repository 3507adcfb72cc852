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
 *  - direct: a loop nest parallel over (b, head) with collapse(2). This is the motion
 *    module's regime: B = batch * H * W positions, T = F frames, so millions of tiny problems
 *    that a BLAS call per problem would drown in call overhead. Blocks of 16 queries sit one
 *    per vector lane: scores s^T (Tk, 16) = k q^T and p v in register tiles, the softmax
 *    down the lanes (no cross-lane sums), compiled for AVX-512 / AVX2 / baseline and picked
 *    at load time (RL_CLONES, ops_simd.h; every clone gives the same bits). Heads with
 *    Tk > 256 or HS > 256 take a dot-product loop, one query row at a time.
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
#pragma GCC optimize("no-trapping-math", "fp-contract=off")

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

// ---- one (b, head) in register tiles (direct path) ------------------------------------------

/* The tiled direct path works on blocks of QL queries, one per vector lane (QL = 16, 8 or
 * 4 by the ISA), and keeps per block q^T (HS, QL) and the scores s^T (Tk, QL) on the stack
 * (Tk = F = 16 under AVX-512: one block of 16 x 16). Heads larger than HS_MAX or TK_MAX use
 * the dot-product loop instead. */
#define MR 4        // TILE_COLS spells out MR accumulators per column block
#define HS_MAX 256
#define TK_MAX 256

static int head_is_tiled(int Tk, int HS) { return HS <= HS_MAX && Tk <= TK_MAX; }

/* One column block of W lanes (vector type VT, or float with W = 1) of tile_mm: MR (or 1)
 * accumulators, k walked in increasing order, then one scaled store or add per row. */
#define TILE_COLS(VT, W, LD, ST)                                                             \
    for (; j + (W) <= N; j += (W)) {                                                        \
        const float *bj = b + j;                                                            \
        VT c0 = { 0 }, c1 = { 0 }, c2 = { 0 }, c3 = { 0 };                                  \
        if (mr == MR) {                                                                     \
            for (int k = 0; k < K; k++) {                                                   \
                const VT bk = LD(bj + (size_t)k * ldb);                                     \
                const float *ak = a + (size_t)k * aks;                                      \
                c0 += ak[0] * bk;                                                           \
                c1 += ak[ars] * bk;                                                         \
                c2 += ak[2 * ars] * bk;                                                     \
                c3 += ak[3 * ars] * bk;                                                     \
            }                                                                               \
        } else {                                                                            \
            for (int k = 0; k < K; k++) c0 += a[(size_t)k * aks] * LD(bj + (size_t)k * ldb);\
        }                                                                                   \
        const VT cr[MR] = { c0, c1, c2, c3 };                                               \
        for (int r = 0; r < mr; r++) {                                                      \
            float *crj = c + (size_t)r * ldc + j;                                           \
            ST(crj, acc ? LD(crj) + alpha * cr[r] : alpha * cr[r]);                         \
        }                                                                                   \
    }
#define LD1(p) (*(p))
#define ST1(p, x) (*(p) = (x))

/* t (cols, ldt) = x^T for x (rows, cols) with rows ldx apart: t[c * ldt + r] = x[r * ldx + c].
 * 4 x 4 blocks through vector shuffles, scalar edges (moves only: no rounding). */
static inline __attribute__((always_inline)) void
transpose(float *restrict t, size_t ldt, const float *restrict x, size_t ldx, int rows, int cols)
{
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *x0 = x + (size_t)r * ldx;
        int c = 0;
        for (; c + 4 <= cols; c += 4) {
            const rl_v4 a = RL_LD4(x0 + c), b = RL_LD4(x0 + ldx + c);
            const rl_v4 e = RL_LD4(x0 + 2 * ldx + c), f = RL_LD4(x0 + 3 * ldx + c);
            const rl_v4 ab0 = RL_SHUF4(a, b, 0, 4, 1, 5);   // a0 b0 a1 b1
            const rl_v4 ab1 = RL_SHUF4(a, b, 2, 6, 3, 7);   // a2 b2 a3 b3
            const rl_v4 ef0 = RL_SHUF4(e, f, 0, 4, 1, 5);
            const rl_v4 ef1 = RL_SHUF4(e, f, 2, 6, 3, 7);
            float *tc = t + (size_t)c * ldt + r;
            RL_ST4(tc, RL_SHUF4(ab0, ef0, 0, 1, 4, 5));
            RL_ST4(tc + ldt, RL_SHUF4(ab0, ef0, 2, 3, 6, 7));
            RL_ST4(tc + 2 * ldt, RL_SHUF4(ab1, ef1, 0, 1, 4, 5));
            RL_ST4(tc + 3 * ldt, RL_SHUF4(ab1, ef1, 2, 3, 6, 7));
        }
        for (; c < cols; c++)
            for (int k = 0; k < 4; k++) t[(size_t)c * ldt + r + k] = x0[(size_t)k * ldx + c];
    }
    for (; r < rows; r++)
        for (int c = 0; c < cols; c++) t[(size_t)c * ldt + r] = x[(size_t)r * ldx + c];
}

/* Prefetch of the next head's rows: x (T, HS), rows ld apart. The direct path streams
 * B * NH tiny heads whose HS-float row pieces lie ld apart; the hardware prefetchers do not
 * follow that, and one head computes in about a DRAM latency, so each head asks for the
 * lines of the next one (measured at B 512, NH 8, T 16, HS 40: x1.7). Written buffers are
 * prefetched for write. Prefetches past the end of an array do not fault. */
static inline void prefetch_rows(const float *x, int T, int HS, size_t ld, int write)
{
    for (int r = 0; r < T; r++) {
        const float *xr = x + (size_t)r * ld;
        for (int d = 0; d < HS; d += 16) {
            if (write) __builtin_prefetch(xr + d, 1);
            else __builtin_prefetch(xr + d, 0);
        }
        if (write) __builtin_prefetch(xr + HS - 1, 1);
        else __builtin_prefetch(xr + HS - 1, 0);
    }
}

/* Offset in floats from head (b, h)'s slice of a (B, T, NH*HS) tensor to the next head's. */
static inline size_t next_head(int h, int NH, int T, int HS)
{
    return h + 1 < NH ? (size_t)HS : (size_t)T * NH * HS - (size_t)(NH - 1) * HS;
}

/* The tiled kernels at each width (ops_attn_tiles.h), and the widest the CPU runs. */
#define QL 16
#define FN(name) name##_w16
#define TARGET RL_TARGET_AVX512
#include "core/ops_attn_tiles.h"
#undef QL
#undef FN
#undef TARGET
#define QL 8
#define FN(name) name##_w8
#define TARGET RL_TARGET_AVX2
#include "core/ops_attn_tiles.h"
#undef QL
#undef FN
#undef TARGET
#define QL 4
#define FN(name) name##_w4
#define TARGET
#include "core/ops_attn_tiles.h"
#undef QL
#undef FN
#undef TARGET

typedef void head_fwd_fn(float *out_h, float *att_h, const float *q_h, const float *k_h,
                         const float *v_h, int Tq, int Tk, int HS, size_t ld, float scale,
                         int causal, int keep, size_t nq, size_t nk);
typedef void head_bwd_fn(float *dq_h, float *dk_h, float *dv_h, float *ds_h,
                         const float *dout_h, const float *p_h, const float *q_h, const float *k_h, const float *v_h,
                         int Tq, int Tk, int HS, size_t ld, float scale, int causal, size_t nq,
                         size_t nk);

static int forced_lanes;   // rl_attn_force_lanes (tests); 0: the CPU's widest

void rl_attn_force_lanes(int lanes) { forced_lanes = lanes; }

int rl_attn_lanes(void)
{
    int best = 4;
#if RL_HAVE_CPU_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) best = 16;
    else if (__builtin_cpu_supports("avx2")) best = 8;
#endif
    return forced_lanes > 0 && forced_lanes < best ? forced_lanes : best;
}

static head_fwd_fn *pick_fwd(void)
{
    const int w = rl_attn_lanes();
    return w == 16 ? attn_head_tiled_w16 : w == 8 ? attn_head_tiled_w8 : attn_head_tiled_w4;
}

static head_bwd_fn *pick_bwd(void)
{
    const int w = rl_attn_lanes();
    return w == 16 ? attn_head_bwd_tiled_w16 : w == 8 ? attn_head_bwd_tiled_w8
                                                      : attn_head_bwd_tiled_w4;
}

/* For one (b, head): q_h (Tq, HS), k_h, v_h (Tk, HS), out_h (Tq, HS), all rows ld apart.
 * att_h (Tq, Tk): if keep, it receives the probabilities (masked entries 0); otherwise it is
 * per-thread scratch of Tk floats. */
static void attn_head_direct(head_fwd_fn *tiled, float *out_h, float *att_h, const float *q_h,
                             const float *k_h, const float *v_h, int Tq, int Tk, int HS,
                             size_t ld, float scale, int causal, int keep, size_t nq, size_t nk)
{
    if (head_is_tiled(Tk, HS)) {
        tiled(out_h, att_h, q_h, k_h, v_h, Tq, Tk, HS, ld, scale, causal, keep, nq, nk);
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

/* The softmax of long score rows is the one loop the gemm path runs outside BLAS; it is
 * multi-versioned like the tiles (RL_CLONES, ops_simd.h). */
RL_CLONES static void softmax_row_masked(float *s, int jn, int Tk)
{
    const float inv = 1.0f / rl_softmax_exp_row(s, s, jn);
    for (int j = 0; j < jn; j++) s[j] *= inv;
    for (int j = jn; j < Tk; j++) s[j] = 0.0f;
}

/* Rows [0, R) of a score block s (R, Tk): softmax of the visible keys in place, masked
 * entries set to 0. Row r is query i0 + r. One row per iteration, parallel. */
static void softmax_rows(float *s, int R, int Tk, int i0, int causal)
{
    if (rl_par_in_region()) {   // a head task of for_heads: this thread does all rows
        for (int r = 0; r < R; r++)
            softmax_row_masked(s + (size_t)r * Tk, visible_keys(i0 + r, Tk, causal), Tk);
        return;
    }
    #pragma omp parallel for schedule(static) if ((size_t)R * Tk > PAR_MIN_WORK)
    for (int r = 0; r < R; r++)
        softmax_row_masked(s + (size_t)r * Tk, visible_keys(i0 + r, Tk, causal), Tk);
}

/* The gemm path runs whole heads as parallel tasks (BLAS and the softmax on the task's thread)
 * when there are enough of them to keep every thread busy: one parallel region per call
 * instead of three per head. Each head is computed exactly as when it runs alone with its
 * products split over the threads (rl_gemm keeps its blocks), so the bits do not change. */
typedef struct {
    float *out, *att, *scratch, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *p;
    int B, NH, Tq, Tk, HS, causal, chunk;
    size_t ld;
    float scale;
} gemm_job;

typedef void head_job_fn(const gemm_job *j, int b, int h, float *scr);

/* Runs head(j, b, h, scr) for every (b, head): on this thread in order, or as parallel tasks,
 * each thread with its own scr_floats of j->scratch. */
static void for_heads(const gemm_job *j, head_job_fn *head, size_t scr_floats)
{
    const int T = rl_par_threads();
    if (T <= 1 || j->B * j->NH < T || rl_par_in_region()) {
        for (int b = 0; b < j->B; b++)
            for (int h = 0; h < j->NH; h++) head(j, b, h, j->scratch);
        return;
    }
    #pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < j->B; b++)
        for (int h = 0; h < j->NH; h++)
            head(j, b, h, j->scratch ? j->scratch + (size_t)rl_par_thread_id() * scr_floats : NULL);
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

/* One head of rl_attn_fwd's gemm path: all queries, probabilities kept in att. */
static void fwd_head(const gemm_job *j, int b, int h, float *scr)
{
    (void)scr;
    const size_t ld = j->ld, oq = (size_t)b * j->Tq * ld + (size_t)h * j->HS;
    const size_t ok = (size_t)b * j->Tk * ld + (size_t)h * j->HS;
    attn_head_gemm(j->out + oq, j->att + ((size_t)b * j->NH + h) * j->Tq * j->Tk, j->q + oq,
                   j->k + ok, j->v + ok, 0, j->Tq, j->Tk, j->HS, (int)ld, j->scale, j->causal);
}

/* One head of rl_attn_fwd_chunked's gemm path: chunks of queries, scores in scr (chunk, Tk). */
static void fwd_chunked_head(const gemm_job *j, int b, int h, float *scr)
{
    const size_t ld = j->ld, oq = (size_t)b * j->Tq * ld + (size_t)h * j->HS;
    const size_t ok = (size_t)b * j->Tk * ld + (size_t)h * j->HS;
    for (int i0 = 0; i0 < j->Tq; i0 += j->chunk) {
        const int R = j->Tq - i0 < j->chunk ? j->Tq - i0 : j->chunk;
        attn_head_gemm(j->out + oq, scr, j->q + oq, j->k + ok, j->v + ok, i0, R, j->Tk, j->HS,
                       (int)ld, j->scale, j->causal);
    }
}

// ---- forward: training path ----------------------------------------------------------------

void rl_attn_fwd(float *out, float *att, const float *q, const float *k, const float *v,
                 int B, int NH, int Tq, int Tk, int HS, float scale, int causal)
{
    // out (B, Tq, NH*HS), att (B, NH, Tq, Tk), q (B, Tq, NH*HS), k, v (B, Tk, NH*HS)
    const size_t ld = (size_t)NH * HS;
    const size_t work = (size_t)B * NH * Tq * Tk * HS;   // multiply-adds of q k^T
    if (!rl_attn_uses_gemm(Tq, Tk, HS)) {
        head_fwd_fn *tiled = pick_fwd();
        #pragma omp parallel for collapse(2) schedule(static) if (work > PAR_MIN_WORK)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                attn_head_direct(tiled, out + (size_t)b * Tq * ld + (size_t)h * HS,
                                 att + ((size_t)b * NH + h) * Tq * Tk,
                                 q + (size_t)b * Tq * ld + (size_t)h * HS,
                                 k + (size_t)b * Tk * ld + (size_t)h * HS,
                                 v + (size_t)b * Tk * ld + (size_t)h * HS,
                                 Tq, Tk, HS, ld, scale, causal, 1, next_head(h, NH, Tq, HS),
                                 next_head(h, NH, Tk, HS));
            }
        }
        return;
    }
    const gemm_job j = { .out = out, .att = att, .q = q, .k = k, .v = v, .B = B, .NH = NH,
                         .Tq = Tq, .Tk = Tk, .HS = HS, .ld = ld, .scale = scale,
                         .causal = causal };
    for_heads(&j, fwd_head, 0);
}

// ---- forward: inference path (chunks of queries) -------------------------------------------

size_t rl_attn_chunked_scratch_floats(int Tq, int Tk, int HS, int chunk, int n_threads)
{
    (void)HS;
    // direct path: one score row per thread; gemm path: one chunk of scores per thread
    // (heads run as tasks, for_heads)
    const int R = chunk < Tq ? chunk : Tq;
    const size_t nt = (size_t)(n_threads > 0 ? n_threads : 1);
    const size_t direct = nt * Tk;
    const size_t gemm = nt * (R > 0 ? R : 1) * Tk;
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
        head_fwd_fn *tiled = pick_fwd();
        #pragma omp parallel for collapse(2) schedule(static) if (work > PAR_MIN_WORK)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                float *p = scratch + (size_t)rl_par_thread_id() * Tk;   // (Tk)
                attn_head_direct(tiled, out + (size_t)b * Tq * ld + (size_t)h * HS, p,
                                 q + (size_t)b * Tq * ld + (size_t)h * HS,
                                 k + (size_t)b * Tk * ld + (size_t)h * HS,
                                 v + (size_t)b * Tk * ld + (size_t)h * HS,
                                 Tq, Tk, HS, ld, scale, causal, 0, next_head(h, NH, Tq, HS),
                                 next_head(h, NH, Tk, HS));
            }
        }
        return;
    }
    const gemm_job j = { .out = out, .scratch = scratch, .q = q, .k = k, .v = v, .B = B,
                         .NH = NH, .Tq = Tq, .Tk = Tk, .HS = HS, .ld = ld, .scale = scale,
                         .causal = causal, .chunk = chunk };
    for_heads(&j, fwd_chunked_head, (size_t)(chunk < Tq ? chunk : Tq) * Tk);
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

/* ds = p (dp - sum(p dp)) for one row of Tk (ds holds dp on entry). */
static inline void softmax_bwd_row(float *dsr, const float *pr, int Tk)
{
    const float c = rl_dot_f32(pr, dsr, Tk);
    for (int j = 0; j < Tk; j++) dsr[j] = pr[j] * (dsr[j] - c);
}

/* Rows of ds (R, Tk) hold dp on entry; ds = p (dp - sum(p dp)) on exit. Parallel over rows
 * (on this thread alone inside a head task). */
static void softmax_bwd_rows(float *ds, const float *p, int R, int Tk)
{
    if (rl_par_in_region()) {
        for (int r = 0; r < R; r++) softmax_bwd_row(ds + (size_t)r * Tk, p + (size_t)r * Tk, Tk);
        return;
    }
    #pragma omp parallel for schedule(static) if ((size_t)R * Tk > PAR_MIN_WORK)
    for (int r = 0; r < R; r++) softmax_bwd_row(ds + (size_t)r * Tk, p + (size_t)r * Tk, Tk);
}

/* One head of rl_attn_bwd's gemm path; scr (Tq, Tk) holds ds. */
static void bwd_head(const gemm_job *j, int b, int h, float *ds)
{
    const int Tq = j->Tq, Tk = j->Tk, HS = j->HS;
    const size_t ld = j->ld, oq = (size_t)b * Tq * ld + (size_t)h * HS;
    const size_t ok = (size_t)b * Tk * ld + (size_t)h * HS;
    const float *p = j->p + ((size_t)b * j->NH + h) * Tq * Tk;   // (Tq, Tk)
    // dv (Tk, HS) += p^T (Tk, Tq) @ dout (Tq, HS)
    if (j->dv) rl_gemm(1, 0, Tk, HS, Tq, 1.0f, p, Tk, j->dout + oq, ld, 1.0f, j->dv + ok, ld);
    if (!j->dq && !j->dk) return;
    // dp (Tq, Tk) = dout (Tq, HS) @ v^T (HS, Tk); then ds = p (dp - sum(p dp))
    rl_gemm(0, 1, Tq, Tk, HS, 1.0f, j->dout + oq, ld, j->v + ok, ld, 0.0f, ds, Tk);
    softmax_bwd_rows(ds, p, Tq, Tk);
    // dq (Tq, HS) += scale ds @ k;  dk (Tk, HS) += scale ds^T @ q
    if (j->dq) rl_gemm(0, 0, Tq, HS, Tk, j->scale, ds, Tk, j->k + ok, ld, 1.0f, j->dq + oq, ld);
    if (j->dk) rl_gemm(1, 0, Tk, HS, Tq, j->scale, ds, Tk, j->q + oq, ld, 1.0f, j->dk + ok, ld);
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
        head_bwd_fn *tiled = pick_bwd();
        // each (b, head) owns its slices of dq, dk, dv: disjoint writes
        #pragma omp parallel for collapse(2) schedule(static) if (work > PAR_MIN_WORK)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                const size_t oq = (size_t)b * Tq * ld + (size_t)h * HS;
                const size_t ok = (size_t)b * Tk * ld + (size_t)h * HS;
                if (head_is_tiled(Tk, HS)) {
                    tiled(dq ? dq + oq : NULL, dk ? dk + ok : NULL, dv ? dv + ok : NULL,
                          scratch + (size_t)rl_par_thread_id() * Tq * Tk, dout + oq, att + ((size_t)b * NH + h) * Tq * Tk, q + oq, k + ok, v + ok,
                          Tq, Tk, HS, ld, scale, causal, next_head(h, NH, Tq, HS),
                          next_head(h, NH, Tk, HS));
                    continue;
                }
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
    const gemm_job j = { .scratch = scratch, .dq = dq, .dk = dk, .dv = dv, .dout = dout,
                         .p = att, .q = q, .k = k, .v = v, .B = B, .NH = NH, .Tq = Tq,
                         .Tk = Tk, .HS = HS, .ld = ld, .scale = scale, .causal = causal };
    for_heads(&j, bwd_head, (size_t)Tq * Tk);
}
