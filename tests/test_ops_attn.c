/* tests/test_ops_attn.c - multi-head attention against PyTorch fixtures
 * (tools/fixtures/ops_attn.py), the plain reference, finite differences, chunked vs
 * unchunked, and 1 vs N threads, on both implementations (direct loop nest, BLAS). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/par.h"
#include "tests/harness.h"

typedef struct {
    int B, NH, Tq, Tk, HS, causal;
    float scale;
    const float *q, *k, *v, *dout;
} attn_case;

static size_t nq(const attn_case *a) { return (size_t)a->B * a->Tq * a->NH * a->HS; }
static size_t nk(const attn_case *a) { return (size_t)a->B * a->Tk * a->NH * a->HS; }
static size_t natt(const attn_case *a) { return (size_t)a->B * a->NH * a->Tq * a->Tk; }

/* Plain backward in double from the forward's probabilities att. */
static void attn_bwd_ref(float *dq, float *dk, float *dv, const float *dout, const float *att,
                         const attn_case *a)
{
    const int NH = a->NH, HS = a->HS, Tq = a->Tq, Tk = a->Tk;
    const size_t ld = (size_t)NH * HS;
    for (int b = 0; b < a->B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *p = att + ((size_t)b * NH + h) * Tq * Tk;
#define Q(i, d) a->q[((size_t)b * Tq + (i)) * ld + (size_t)h * HS + (d)]
#define K(j, d) a->k[((size_t)b * Tk + (j)) * ld + (size_t)h * HS + (d)]
#define V(j, d) a->v[((size_t)b * Tk + (j)) * ld + (size_t)h * HS + (d)]
#define DO(i, d) dout[((size_t)b * Tq + (i)) * ld + (size_t)h * HS + (d)]
            for (int i = 0; i < Tq; i++) {
                double dp[512], c = 0.0;
                for (int j = 0; j < Tk; j++) {
                    double s = 0.0;
                    for (int d = 0; d < HS; d++) s += (double)DO(i, d) * V(j, d);
                    dp[j] = s;
                    c += s * p[(size_t)i * Tk + j];
                }
                for (int j = 0; j < Tk; j++) {
                    const double pij = p[(size_t)i * Tk + j], ds = pij * (dp[j] - c);
                    for (int d = 0; d < HS; d++) {
                        dq[((size_t)b * Tq + i) * ld + (size_t)h * HS + d] += (float)(a->scale * ds * K(j, d));
                        dk[((size_t)b * Tk + j) * ld + (size_t)h * HS + d] += (float)(a->scale * ds * Q(i, d));
                        dv[((size_t)b * Tk + j) * ld + (size_t)h * HS + d] += (float)(pij * DO(i, d));
                    }
                }
            }
#undef Q
#undef K
#undef V
#undef DO
        }
    }
}

// ---- finite differences and thread-invariance runners ---------------------------------------

typedef struct {
    attn_case a;
    float *q, *k, *v;          // mutable copies the FD perturbs
    float *out, *att;
} fd_ctx;

static double attn_loss(void *ctx)
{
    fd_ctx *c = ctx;
    rl_attn_fwd(c->out, c->att, c->q, c->k, c->v, c->a.B, c->a.NH, c->a.Tq, c->a.Tk, c->a.HS,
                c->a.scale, c->a.causal);
    double s = 0.0;
    for (size_t i = 0; i < nq(&c->a); i++) s += (double)c->out[i] * c->a.dout[i];
    return s;
}

static void run_fwd(void *ctx, float *res)
{
    // res = [out | att]
    const attn_case *a = ctx;
    rl_attn_fwd(res, res + nq(a), a->q, a->k, a->v, a->B, a->NH, a->Tq, a->Tk, a->HS, a->scale,
                a->causal);
}

static void run_chunked(void *ctx, float *res)
{
    const attn_case *a = ctx;
    static float scratch[1 << 18];   // ample for the sizes below at up to 64 threads
    rl_attn_fwd_chunked(res, scratch, a->q, a->k, a->v, a->B, a->NH, a->Tq, a->Tk, a->HS,
                        a->scale, a->causal, 13);
}

static void run_bwd(void *ctx, float *res)
{
    // res = [dq | dk | dv], from the forward's att
    const attn_case *a = ctx;
    float *out = malloc(nq(a) * sizeof(float)), *att = malloc(natt(a) * sizeof(float));
    const size_t ns = rl_attn_bwd_scratch_floats(a->Tq, a->Tk, rl_par_max_threads());
    float *scratch = malloc(ns * sizeof(float));
    rl_attn_fwd(out, att, a->q, a->k, a->v, a->B, a->NH, a->Tq, a->Tk, a->HS, a->scale, a->causal);
    rl_attn_bwd(res, res + nq(a), res + nq(a) + nk(a), scratch, a->dout, att, a->q, a->k, a->v,
                a->B, a->NH, a->Tq, a->Tk, a->HS, a->scale, a->causal);
    free(out); free(att); free(scratch);
}

/* Forward (training and chunked), backward, finite differences and thread invariance for one
 * case; want_* may be NULL (then the plain reference is the expectation). */
static void check_case(rl_test *t, const attn_case *a, const float *want_out,
                       const float *want_att, const float *want_dq, const float *want_dk,
                       const float *want_dv)
{
    const size_t n_q = nq(a), n_k = nk(a), n_att = natt(a);
    float *out = rl_test_floats(t, n_q), *att = rl_test_floats(t, n_att);
    float *ref_out = rl_test_floats(t, n_q), *ref_att = rl_test_floats(t, n_att);
    rl_attn_fwd_ref(ref_out, ref_att, a->q, a->k, a->v, a->B, a->NH, a->Tq, a->Tk, a->HS,
                    a->scale, a->causal);
    if (!want_out) { want_out = ref_out; want_att = ref_att; }
    printf("  (%s path)\n", rl_attn_uses_gemm(a->Tq, a->Tk, a->HS) ? "BLAS" : "direct");

    // float sums over HS (scores) and Tk (outputs) terms with |values| ~ 1-4; the exp is 1-2
    // ulp: a few 1e-7 relative, allowed 1e-5 + 1e-4 rel for up to 67 terms in any order
    rl_attn_fwd(out, att, a->q, a->k, a->v, a->B, a->NH, a->Tq, a->Tk, a->HS, a->scale, a->causal);
    rl_check_close(t, "out", out, want_out, n_q, 1e-5, 1e-4);
    rl_check_close(t, "att", att, want_att, n_att, 1e-6, 1e-4);
    if (want_out != ref_out) rl_check_close(t, "out (plain reference)", ref_out, want_out, n_q, 1e-5, 1e-4);
    if (want_out != ref_out) rl_check_close(t, "att (plain reference)", ref_att, want_att, n_att, 1e-6, 1e-4);

    // chunked inference path: odd chunk sizes and one chunk for everything
    for (int chunk = 1; chunk <= a->Tq; chunk = chunk == 1 ? 5 : a->Tq) {
        const size_t ns = rl_attn_chunked_scratch_floats(a->Tq, a->Tk, a->HS, chunk,
                                                         rl_par_max_threads());
        float *scratch = rl_test_floats(t, ns), *co = rl_test_floats(t, n_q);
        rl_attn_fwd_chunked(co, scratch, a->q, a->k, a->v, a->B, a->NH, a->Tq, a->Tk, a->HS,
                            a->scale, a->causal, chunk);
        char name[64];
        snprintf(name, sizeof name, "out chunked (chunk %d)", chunk);
        rl_check_close(t, name, co, want_out, n_q, 1e-5, 1e-4);
        if (chunk == a->Tq) break;
    }

    // backward: accumulate onto 0.5 and take it off again
    float *dq = rl_test_floats(t, n_q), *dk = rl_test_floats(t, n_k), *dv = rl_test_floats(t, n_k);
    for (size_t i = 0; i < n_q; i++) dq[i] = 0.5f;
    for (size_t i = 0; i < n_k; i++) dk[i] = dv[i] = 0.5f;
    const size_t ns = rl_attn_bwd_scratch_floats(a->Tq, a->Tk, rl_par_max_threads());
    rl_attn_bwd(dq, dk, dv, rl_test_floats(t, ns), a->dout, att, a->q, a->k, a->v, a->B, a->NH,
                a->Tq, a->Tk, a->HS, a->scale, a->causal);
    for (size_t i = 0; i < n_q; i++) dq[i] -= 0.5f;
    for (size_t i = 0; i < n_k; i++) { dk[i] -= 0.5f; dv[i] -= 0.5f; }
    float *rq = rl_test_floats(t, n_q), *rk = rl_test_floats(t, n_k), *rv = rl_test_floats(t, n_k);
    if (!want_dq) {
        attn_bwd_ref(rq, rk, rv, a->dout, ref_att, a);
        want_dq = rq; want_dk = rk; want_dv = rv;
    }
    // two chained float products (dp over HS, then over Tk or Tq), plus the +-0.5 (6e-8)
    rl_check_close(t, "dq", dq, want_dq, n_q, 2e-5, 1e-4);
    rl_check_close(t, "dk", dk, want_dk, n_k, 2e-5, 1e-4);
    rl_check_close(t, "dv", dv, want_dv, n_k, 2e-5, 1e-4);

    // finite differences of sum(out * dout) in q, k and v: the loss sums Tq*NH*HS float
    // outputs; perturbations of h = 1e-2 on values ~1 keep the rounding noise (~1e-6 / h)
    // well under the tolerance
    fd_ctx c = { .a = *a, .out = rl_test_floats(t, n_q), .att = rl_test_floats(t, n_att) };
    c.q = rl_test_floats(t, n_q); memcpy(c.q, a->q, n_q * sizeof(float));
    c.k = rl_test_floats(t, n_k); memcpy(c.k, a->k, n_k * sizeof(float));
    c.v = rl_test_floats(t, n_k); memcpy(c.v, a->v, n_k * sizeof(float));
    rl_check_grad_fd(t, "dq", attn_loss, &c, c.q, dq, n_q, 60, 1e-2, 2e-3, 1e-2);
    rl_check_grad_fd(t, "dk", attn_loss, &c, c.k, dk, n_k, 60, 1e-2, 2e-3, 1e-2);
    rl_check_grad_fd(t, "dv", attn_loss, &c, c.v, dv, n_k, 60, 1e-2, 2e-3, 1e-2);

    rl_check_threads_bitwise(t, "fwd out+att", run_fwd, (void *)a, n_q + n_att);
    rl_check_threads_bitwise(t, "fwd chunked", run_chunked, (void *)a, n_q);
    rl_check_threads_bitwise(t, "bwd dq+dk+dv", run_bwd, (void *)a, n_q + 2 * n_k);
}

// ---- fixtures ------------------------------------------------------------------------------------

static void test_fixture(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    attn_case a = { .B = rl_fixture_int(&fx, "B"), .NH = rl_fixture_int(&fx, "NH"),
                    .Tq = rl_fixture_int(&fx, "Tq"), .Tk = rl_fixture_int(&fx, "Tk"),
                    .HS = rl_fixture_int(&fx, "HS"), .causal = rl_fixture_int(&fx, "causal"),
                    .scale = (float)rl_fixture_float(&fx, "scale") };
    const int C = a.NH * a.HS;
    a.q = rl_fixture_f32(&fx, "q", 3, (int[]){ a.B, a.Tq, C });
    a.k = rl_fixture_f32(&fx, "k", 3, (int[]){ a.B, a.Tk, C });
    a.v = rl_fixture_f32(&fx, "v", 3, (int[]){ a.B, a.Tk, C });
    a.dout = rl_fixture_f32(&fx, "dout", 3, (int[]){ a.B, a.Tq, C });
    const float *out = rl_fixture_f32(&fx, "out", 3, (int[]){ a.B, a.Tq, C });
    const float *att = rl_fixture_f32(&fx, "att", 4, (int[]){ a.B, a.NH, a.Tq, a.Tk });
    const float *dq = rl_fixture_f32(&fx, "dq", 3, (int[]){ a.B, a.Tq, C });
    const float *dk = rl_fixture_f32(&fx, "dk", 3, (int[]){ a.B, a.Tk, C });
    const float *dv = rl_fixture_f32(&fx, "dv", 3, (int[]){ a.B, a.Tk, C });
    if (a.q && a.k && a.v && a.dout && out && att && dq && dk && dv)
        check_case(t, &a, out, att, dq, dk, dv);
    rl_fixture_close(&fx);
}

// ---- random shapes for every implementation, against the plain reference ---------------------

/* a from arg "B NH Tq Tk HS causal", with uniform random q, k, v, dout (seeds seed .. seed + 3)
 * and q scaled by q_scale (scores of a few units: peaked rows). Records a failure and returns 0
 * when arg is malformed. */
static int random_case(rl_test *t, attn_case *a, const char *arg, uint64_t seed, float q_scale)
{
    *a = (attn_case){ 0 };
    if (sscanf(arg, "%d %d %d %d %d %d", &a->B, &a->NH, &a->Tq, &a->Tk, &a->HS, &a->causal) != 6) {
        rl_test_fail(t, "bad case '%s'", arg);
        return 0;
    }
    a->scale = 1.0f / sqrtf((float)a->HS);
    float *q = rl_test_floats(t, nq(a)), *k = rl_test_floats(t, nk(a));
    float *v = rl_test_floats(t, nk(a)), *dout = rl_test_floats(t, nq(a));
    rl_test_randu(q, nq(a), seed);
    rl_test_randu(k, nk(a), seed + 1);
    rl_test_randu(v, nk(a), seed + 2);
    rl_test_randu(dout, nq(a), seed + 3);
    for (size_t i = 0; i < nq(a); i++) q[i] *= q_scale;
    a->q = q; a->k = k; a->v = v; a->dout = dout;
    return 1;
}

static void test_shape(rl_test *t, const char *arg)
{
    attn_case a;
    if (!random_case(t, &a, arg, 11, 2.0f)) return;
    check_case(t, &a, NULL, NULL, NULL, NULL, NULL);
}

// ---- vector widths of the direct path: every width the CPU runs gives the same bits --------

static void test_widths(rl_test *t, const char *arg)
{
    attn_case a;
    if (!random_case(t, &a, arg, 21, 3.0f)) return;
    RL_CHECK(t, !rl_attn_uses_gemm(a.Tq, a.Tk, a.HS));

    // [out | att | chunked out | dq | dk | dv] at the CPU's widest, then at each narrower one
    const size_t n = 2 * nq(&a) + natt(&a) + nq(&a) + 2 * nk(&a);
    const int widest = rl_attn_lanes();
    printf("  (widest: %d lanes)\n", widest);
    float *want = NULL;
    for (int lanes = widest; lanes >= 4; lanes /= 2) {
        rl_attn_force_lanes(lanes);
        RL_CHECK(t, rl_attn_lanes() == lanes);
        float *res = rl_test_floats(t, n);
        run_fwd(&a, res);
        run_chunked(&a, res + nq(&a) + natt(&a));
        run_bwd(&a, res + 2 * nq(&a) + natt(&a));
        if (!want) {
            want = res;
            // the widest against the plain reference, so the comparison is not vacuous
            float *ro = rl_test_floats(t, nq(&a)), *ra = rl_test_floats(t, natt(&a));
            rl_attn_fwd_ref(ro, ra, a.q, a.k, a.v, a.B, a.NH, a.Tq, a.Tk, a.HS, a.scale,
                            a.causal);
            rl_check_close(t, "out (widest)", res, ro, nq(&a), 1e-5, 1e-4);
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "%d lanes vs %d", lanes, widest);
        rl_check_bitwise(t, name, res, want, n);
    }
    rl_attn_force_lanes(0);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "attn/b2h3t7d5", test_fixture, "ops/attn_b2h3t7d5.safetensors" },
        { "attn/b2h3t7d5_causal", test_fixture, "ops/attn_b2h3t7d5_causal.safetensors" },
        { "attn/cross_b2h3q7k11d5", test_fixture, "ops/attn_cross_b2h3q7k11d5.safetensors" },
        { "attn/gemm_b1h1q67k61d33", test_fixture, "ops/attn_gemm_b1h1q67k61d33.safetensors" },
        // B NH Tq Tk HS causal; B*NH*Tq*Tk*HS > 32768 (ops_attn.c's PAR_MIN_WORK) for the
        // direct shapes, so their 1 vs N thread checks run the parallel loops
        { "attn/direct_tiled_temporal", test_shape, "9 3 16 16 40 0" },
        { "attn/direct_tiled_rowtail_causal", test_shape, "3 4 15 15 13 1" },
        { "attn/direct_tiled_cross", test_shape, "2 3 9 5 8 0" },
        // several 16-query blocks (tails of 5 and 4 rows) and Tk up to 256 in the tiles
        { "attn/direct_tiled_blocks_causal", test_shape, "2 3 37 9 24 1" },
        { "attn/direct_tiled_blocks_cross", test_shape, "3 2 20 200 23 0" },
        { "attn/direct_dot_longkeys", test_shape, "2 2 3 300 40 0" },
        { "attn/direct_dot_longkeys_causal", test_shape, "1 2 5 290 40 1" },
        { "attn/widths_temporal", test_widths, "5 3 16 16 40 0" },
        { "attn/widths_blocks_causal", test_widths, "2 3 37 9 13 1" },
        { "attn/widths_cross", test_widths, "2 2 20 150 24 0" },
        { "attn/gemm_self_causal", test_shape, "2 2 70 70 32 1" },
        { "attn/gemm_cross", test_shape, "1 3 77 41 72 0" },
        // past the parallel thresholds of the row passes (Tq * Tk > 32768)
        { "attn/gemm_long_causal", test_shape, "1 2 190 190 16 1" },
        { 0 },
    });
}
