/* tests/test_ops_matmul.c - rl_gemm (all transposes, strided operands, K = 0) against a plain
 * loop in double, nn.Linear forward/backward against PyTorch fixtures
 * (tools/fixtures/ops_matmul.py), finite differences, 1 vs N threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/par.h"
#include "tests/harness.h"

// ---- rl_gemm ---------------------------------------------------------------------------------

/* C = alpha op(A) op(B) + beta C in double, the definition. */
static void gemm_ref(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                const double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                const double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            const double c0 = beta == 0.0f ? 0.0 : (double)beta * C[(size_t)i * ldc + j];
            C[(size_t)i * ldc + j] = (float)(alpha * s + c0);
        }
    }
}

static void test_gemm(rl_test *t, const char *arg)
{
    int M, N, K;
    if (sscanf(arg, "%d %d %d", &M, &N, &K) != 3) { rl_test_fail(t, "bad case '%s'", arg); return; }
    // strided operands: leading dimensions larger than the rows (as attention's head slices)
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
            const int lda = ac + 3, ldb = bc + 5, ldc = N + 2;
            float *A = rl_test_floats(t, (size_t)ar * lda + 1), *B = rl_test_floats(t, (size_t)br * ldb + 1);
            float *C = rl_test_floats(t, (size_t)M * ldc), *R = rl_test_floats(t, (size_t)M * ldc);
            rl_test_randu(A, (size_t)ar * lda, 1);
            rl_test_randu(B, (size_t)br * ldb, 2);
            rl_test_randu(C, (size_t)M * ldc, 3);
            memcpy(R, C, (size_t)M * ldc * sizeof(float));
            for (int beta = 0; beta < 2; beta++) {
                rl_gemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, (float)beta, C, ldc);
                gemm_ref(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, (float)beta, R, ldc);
                char name[64];
                snprintf(name, sizeof name, "C trans %d%d beta %d", ta, tb, beta);
                // K products of values in [-1, 1), float accumulation: ~K * 6e-8 worst case
                rl_check_close(t, name, C, R, (size_t)M * ldc, 1e-6 * (K + 1), 1e-5);
            }
        }
    }
}

static void test_gemm_k0(rl_test *t, const char *arg)
{
    (void)arg;
    // K = 0: C = beta C (BLAS may skip the call); beta = 0 must clear NaN garbage
    float C[6] = { 1, 2, 3, NAN, 5, 6 }, want0[6] = { 0 }, want2[6] = { 2, 4, 6, 0, 10, 12 };
    rl_gemm(0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 1, 0.0f, C, 3);
    rl_check_bitwise(t, "K=0 beta=0", C, want0, 6);
    float D[6] = { 1, 2, 3, 0, 5, 6 };
    rl_gemm(0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 1, 2.0f, D, 3);
    rl_check_bitwise(t, "K=0 beta=2", D, want2, 6);
}

// ---- linear ------------------------------------------------------------------------------------

typedef struct {
    int T, C, OC;
    float *inp, *w, *bias;     // mutable (FD)
    const float *r;            // loss = sum(out * r); thread runs: backward seed
    float *out;
} lin_ctx;

static double lin_loss(void *ctx)
{
    lin_ctx *c = ctx;
    rl_linear_fwd(c->out, c->inp, c->w, c->bias, c->T, c->C, c->OC);
    double s = 0.0;
    for (size_t i = 0; i < (size_t)c->T * c->OC; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void lin_run_fwd(void *ctx, float *res)
{
    lin_ctx *c = ctx;
    rl_linear_fwd(res, c->inp, c->w, c->bias, c->T, c->C, c->OC);
}

static void lin_run_bwd(void *ctx, float *res)
{
    // res = [dinp | dw | dbias]
    lin_ctx *c = ctx;
    float *dinp = res, *dw = res + (size_t)c->T * c->C, *db = dw + (size_t)c->OC * c->C;
    rl_linear_bwd(dinp, dw, db, c->r, c->inp, c->w, c->T, c->C, c->OC);
}

static float *copy(rl_test *t, const float *x, size_t n)
{
    float *y = rl_test_floats(t, n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

static void test_linear(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int T = rl_fixture_int(&fx, "T"), C = rl_fixture_int(&fx, "C"), OC = rl_fixture_int(&fx, "OC");
    const int has_bias = rl_fixture_int(&fx, "bias");
    const float *inp = rl_fixture_f32(&fx, "inp", 2, (int[]){ T, C });
    const float *w = rl_fixture_f32(&fx, "w", 2, (int[]){ OC, C });
    const float *want = rl_fixture_f32(&fx, "out", 2, (int[]){ T, OC });
    const float *dout = rl_fixture_f32(&fx, "dout", 2, (int[]){ T, OC });
    const float *want_dinp = rl_fixture_f32(&fx, "dinp", 2, (int[]){ T, C });
    const float *want_dw = rl_fixture_f32(&fx, "dw", 2, (int[]){ OC, C });
    const float *bias = has_bias ? rl_fixture_f32(&fx, "bias", 1, &OC) : NULL;
    const float *want_db = has_bias ? rl_fixture_f32(&fx, "dbias", 1, &OC) : NULL;
    if (!inp || !w || !want || !dout || !want_dinp || !want_dw || (has_bias && (!bias || !want_db))) {
        rl_fixture_close(&fx);
        return;
    }
    const size_t no = (size_t)T * OC, ni = (size_t)T * C, nw = (size_t)OC * C;
    float *out = rl_test_floats(t, no);
    rl_linear_fwd(out, inp, w, bias, T, C, OC);
    // C products (|inp| ~ 1, |w| ~ C^-1/2) summed in float by BLAS
    rl_check_close(t, "out", out, want, no, 1e-6, 1e-5);

    float *dinp = rl_test_floats(t, ni), *dw = rl_test_floats(t, nw), *db = rl_test_floats(t, OC);
    for (size_t i = 0; i < ni; i++) dinp[i] = 1.0f;
    for (size_t i = 0; i < nw; i++) dw[i] = 1.0f;
    for (int i = 0; i < OC; i++) db[i] = 1.0f;
    rl_linear_bwd(dinp, dw, has_bias ? db : NULL, dout, inp, w, T, C, OC);
    for (size_t i = 0; i < ni; i++) dinp[i] -= 1.0f;
    for (size_t i = 0; i < nw; i++) dw[i] -= 1.0f;
    for (int i = 0; i < OC; i++) db[i] -= 1.0f;
    // float sums over OC (dinp) and T (dw) terms, double over T (dbias), plus the +-1
    rl_check_close(t, "dinp (+= onto 1)", dinp, want_dinp, ni, 2e-6, 1e-5);
    rl_check_close(t, "dw (+= onto 1)", dw, want_dw, nw, 2e-6, 1e-5);
    if (has_bias) rl_check_close(t, "dbias (+= onto 1)", db, want_db, OC, 2e-6, 1e-5);
    else RL_CHECK(t, db[0] == 0.0f);   // NULL dbias untouched

    lin_ctx c = { .T = T, .C = C, .OC = OC, .inp = copy(t, inp, ni), .w = copy(t, w, nw),
                  .bias = bias ? copy(t, bias, OC) : NULL, .r = dout,
                  .out = rl_test_floats(t, no) };
    // linear in each parameter: the difference is exact up to the loss's float rounding
    rl_check_grad_fd(t, "dinp", lin_loss, &c, c.inp, dinp, ni, 100, 1e-2, 1e-3, 1e-2);
    rl_check_grad_fd(t, "dw", lin_loss, &c, c.w, dw, nw, 100, 1e-2, 1e-3, 1e-2);
    if (bias) rl_check_grad_fd(t, "dbias", lin_loss, &c, c.bias, db, OC, 50, 1e-2, 1e-3, 1e-2);
    rl_fixture_close(&fx);
}

typedef struct { int ta, tb, M, N, K; const float *A, *B; } gemm_ctx;

static void gemm_run(void *ctx, float *C)
{
    const gemm_ctx *g = ctx;
    rl_gemm(g->ta, g->tb, g->M, g->N, g->K, 1.0f, g->A, g->ta ? g->M : g->K, g->B,
            g->tb ? g->K : g->N, 0.0f, C, g->N);
}

static void test_gemm_threads(rl_test *t, const char *arg)
{
    (void)arg;
    // K = 1000 spans several of OpenBLAS's internal K blocks
    const int M = 263, N = 129, K = 1000;
    float *A = rl_test_floats(t, (size_t)M * K), *B = rl_test_floats(t, (size_t)K * N);
    rl_test_randu(A, (size_t)M * K, 9);
    rl_test_randu(B, (size_t)K * N, 10);
    for (int tr = 0; tr < 4; tr++) {
        gemm_ctx g = { tr & 1, tr >> 1, M, N, K, A, B };
        char name[32];
        snprintf(name, sizeof name, "gemm trans %d%d", g.ta, g.tb);
        rl_check_threads_bitwise(t, name, gemm_run, &g, (size_t)M * N);
    }
}

/* rl_gemm called from tasks of rl_par_for (one product per task, BLAS on the task's thread)
 * gives the bits of the same product called outside any region. */
typedef struct { gemm_ctx g[4]; float *C[4]; } gemm_tasks;

static void gemm_task(void *ctx, int i)
{
    gemm_tasks *gt = ctx;
    gemm_run(&gt->g[i], gt->C[i]);
}

static void test_gemm_in_task(rl_test *t, const char *arg)
{
    (void)arg;
    const int M = 263, N = 129, K = 1000;
    float *A = rl_test_floats(t, (size_t)M * K), *B = rl_test_floats(t, (size_t)K * N);
    rl_test_randu(A, (size_t)M * K, 11);
    rl_test_randu(B, (size_t)K * N, 12);
    gemm_tasks gt;
    float *want = rl_test_floats(t, (size_t)4 * M * N);
    for (int tr = 0; tr < 4; tr++) {
        gt.g[tr] = (gemm_ctx){ tr & 1, tr >> 1, M, N, K, A, B };
        gt.C[tr] = rl_test_floats(t, (size_t)M * N);
        gemm_run(&gt.g[tr], want + (size_t)tr * M * N);
    }
    rl_par_set_threads(2);
    rl_par_for(4, gemm_task, &gt);
    rl_par_set_threads(0);
    for (int tr = 0; tr < 4; tr++)
        rl_test_check(t, !memcmp(gt.C[tr], want + (size_t)tr * M * N, (size_t)M * N * sizeof(float)),
                      "gemm trans %d%d in a task of rl_par_for equals the call outside, bit for bit",
                      tr & 1, tr >> 1);
}

static void test_linear_threads(rl_test *t, const char *arg)
{
    (void)arg;
    // big enough for BLAS to split and for the dbias column blocks to run in parallel
    const int T = 517, C = 129, OC = 263;
    lin_ctx c = { .T = T, .C = C, .OC = OC };
    c.inp = rl_test_floats(t, (size_t)T * C); rl_test_randu(c.inp, (size_t)T * C, 5);
    c.w = rl_test_floats(t, (size_t)OC * C); rl_test_randu(c.w, (size_t)OC * C, 6);
    c.bias = rl_test_floats(t, OC); rl_test_randu(c.bias, OC, 7);
    float *r = rl_test_floats(t, (size_t)T * OC); rl_test_randu(r, (size_t)T * OC, 8);
    c.r = r;
    rl_check_threads_bitwise(t, "fwd", lin_run_fwd, &c, (size_t)T * OC);
    rl_check_threads_bitwise(t, "bwd dinp+dw+dbias", lin_run_bwd, &c,
                             (size_t)T * C + (size_t)OC * C + OC);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "gemm/m7n5k13", test_gemm, "7 5 13" },
        { "gemm/m67n33k129", test_gemm, "67 33 129" },
        { "gemm/m9n7k600", test_gemm, "9 7 600" },     // K over one GEMM_KB block
        { "gemm/k0", test_gemm_k0, NULL },
        { "gemm/threads", test_gemm_threads, NULL },
        { "gemm/in_task", test_gemm_in_task, NULL },
        { "linear/t7c13o11", test_linear, "ops/linear_t7c13o11.safetensors" },
        { "linear/t5c67o70", test_linear, "ops/linear_t5c67o70.safetensors" },
        { "linear/t3c5o7_nobias", test_linear, "ops/linear_t3c5o7_nobias.safetensors" },
        { "linear/threads", test_linear_threads, NULL },
        { 0 },
    });
}
