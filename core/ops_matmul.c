/* core/ops_matmul.c - sgemm through BLAS, and nn.Linear forward/backward on top of it.
 *
 * torch.nn.Linear: out = inp @ w^T + bias, weight stored (OC, C) as PyTorch and the
 * diffusers checkpoints store it. Backward (llm.c's matmul_backward):
 *   dinp += dout @ w,  dw += dout^T @ inp,  dbias += sum over rows of dout.
 *
 * Threading: BLAS runs its own OpenMP team (OpenBLAS built with OpenMP), so it is never called
 * inside one of ours. OpenBLAS splits sgemm over M and N only, never over K, so every output
 * element is summed in the same order whatever the thread count (checked by the tests). */
#include "core/ops.h"

#include <cblas.h>
#include <string.h>

// columns of dbias one thread sums at a time (contiguous in dout's rows)
#define DBIAS_BLOCK 64

// ---- gemm -----------------------------------------------------------------------------

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
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
