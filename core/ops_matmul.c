/* core/ops_matmul.c - sgemm through BLAS, and nn.Linear forward/backward on top of it.
 *
 * torch.nn.Linear: out = inp @ w^T + bias, weight stored (OC, C) as PyTorch and the
 * diffusers checkpoints store it. Backward (llm.c's matmul_backward):
 *   dinp += dout @ w,  dw += dout^T @ inp,  dbias += sum over rows of dout.
 *
 * Threading: see rl_gemm: BLAS is single-threaded, reel splits the output in fixed blocks, so
 * every output element is summed in the same order whatever the thread count (the tests
 * check 1 vs N threads bitwise). */
#include "core/ops.h"
#include "core/par.h"

#include <cblas.h>
#include <string.h>

// columns of dbias one thread sums at a time (contiguous in dout's rows)
#define DBIAS_BLOCK 64

// ---- gemm -----------------------------------------------------------------------------

/* BLAS runs single-threaded (every call is made inside an OpenMP parallel region) and reel
 * splits the output into blocks itself, so every output element is computed by one sgemm call whose
 * shape depends only on the problem, never on the thread count: results are bitwise the
 * same for any number of threads. (OpenBLAS's own threading is not: with 1 and 2 threads
 * its sgemm takes different kernels and K splits from K ~ 360 up, measured on 0.3.21.)
 * The blocks: split the longer of M and N into at most 16 pieces, each a multiple of 16
 * rows/columns; re-packing the other operand per block costs about 1/(2 * block) of the
 * FLOPs. */
#define GEMM_SPLIT 16
#define GEMM_ALIGN 16
#define GEMM_SERIAL_FLOPS (1 << 18)   // below this, one call on one thread

static void sgemm1(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Block b of rl_gemm's split: rows (by_rows) or columns i0 = b * blk .. of C, or all of C
 * when serial. */
static void gemm_block(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc,
                       int serial, int by_rows, int len, int blk, int b)
{
    if (serial) {
        sgemm1(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int i0 = b * blk, n = i0 + blk <= len ? blk : len - i0;
    if (by_rows) {
        // rows i0..i0+n of C = rows of op(A) times op(B)
        const float *Ab = transA ? A + i0 : A + (size_t)i0 * lda;
        sgemm1(transA, transB, n, N, K, alpha, Ab, lda, B, ldb, beta, C + (size_t)i0 * ldc, ldc);
    } else {
        // columns i0..i0+n of C = op(A) times columns of op(B)
        const float *Bb = transB ? B + (size_t)i0 * ldb : B + i0;
        sgemm1(transA, transB, M, n, K, alpha, A, lda, Bb, ldb, beta, C + i0, ldc);
    }
}

void rl_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        // BLAS leaves C untouched for K = 0 only when beta = 1; spell the math out
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    const int by_rows = M >= N;
    const int len = by_rows ? M : N;
    int blk = (len + GEMM_SPLIT - 1) / GEMM_SPLIT;
    blk = (blk + GEMM_ALIGN - 1) / GEMM_ALIGN * GEMM_ALIGN;
    const int nb = (len + blk - 1) / blk;
    const int serial = nb == 1 || 2.0 * M * N * K < GEMM_SERIAL_FLOPS;
    // Even a single block runs inside a parallel region: OpenBLAS's OpenMP build runs a call
    // made inside an active region on the calling thread alone, and outside one it would
    // use its own (thread-count dependent) split. dynamic: the last block is short; which
    // thread takes a block never changes its result.
    const int nblk = serial ? 1 : nb;
    if (rl_par_in_region()) {
        // Already inside a region (a task of rl_par_for, a head of attention): the same
        // blocks on this thread (one call for all of C gives other bits: OpenBLAS's kernels
        // depend on M and N), and no nested region, because OpenBLAS picks its work buffer by
        // omp_get_thread_num(), which is 0 on every thread of an inactive nested team (two
        // tasks would share it).
        for (int b = 0; b < nblk; b++)
            gemm_block(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, serial,
                       by_rows, len, blk, b);
        return;
    }
    #pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < nblk; b++)
        gemm_block(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, serial, by_rows,
                   len, blk, b);
}

// ---- forward --------------------------------------------------------------------------

void rl_linear_fwd(float *out, const float *inp, const float *w, const float *bias,
                   int T, int C, int OC)
{
    // out (T, OC), inp (T, C), w (OC, C), bias (OC) or NULL
    if (bias) {
        // start every row at the bias, then let sgemm accumulate into it (beta = 1):
        // one pass over out instead of a second bias pass
        #pragma omp parallel for schedule(static) if ((size_t)T * OC > 32768)
        for (int t = 0; t < T; t++)
            memcpy(out + (size_t)t * OC, bias, (size_t)OC * sizeof(float));
    }
    // out = inp (T, C) @ w^T (C, OC)
    rl_gemm(0, 1, T, OC, C, 1.0f, inp, C, w, C, bias ? 1.0f : 0.0f, out, OC);
}

// ---- backward -------------------------------------------------------------------------

void rl_linear_bwd(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                   const float *w, int T, int C, int OC)
{
    // dinp (T, C) += dout (T, OC) @ w (OC, C)
    if (dinp) rl_gemm(0, 0, T, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    // dw (OC, C) += dout^T (OC, T) @ inp (T, C)
    if (dw) rl_gemm(1, 0, OC, C, T, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (dbias) {
        // dbias[o] += sum_t dout[t, o]: each thread owns a block of columns and walks all rows
        // in order, so the sum order does not depend on the thread count
        const int nb = (OC + DBIAS_BLOCK - 1) / DBIAS_BLOCK;
        #pragma omp parallel for schedule(static) if ((size_t)T * OC > 32768)
        for (int ob = 0; ob < nb; ob++) {
            const int o0 = ob * DBIAS_BLOCK;
            const int o1 = o0 + DBIAS_BLOCK < OC ? o0 + DBIAS_BLOCK : OC;
            double acc[DBIAS_BLOCK] = { 0 };
            for (int t = 0; t < T; t++) {
                const float *dout_t = dout + (size_t)t * OC;
                for (int o = o0; o < o1; o++) acc[o - o0] += dout_t[o];
            }
            for (int o = o0; o < o1; o++) dbias[o] += (float)acc[o - o0];
        }
    }
}
