/* tests/test_ops_conv.c - conv2d forward/backward against PyTorch fixtures
 * (tools/fixtures/ops_conv.py), finite differences, the fast path against the plain reference
 * on shapes that hit every tiling branch, and 1 vs N threads bitwise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "tests/harness.h"

// ---- helpers ------------------------------------------------------------------------------

static size_t x_size(const rl_conv_shape *s) { return (size_t)s->N * s->C * s->H * s->W; }
static size_t w_size(const rl_conv_shape *s) { return (size_t)s->OC * s->C * s->KH * s->KW; }
static size_t o_size(const rl_conv_shape *s) { return (size_t)s->N * s->OC * s->Ho * s->Wo; }

// Plain loop-nest backward in double (test-only reference for shapes without a fixture):
// out[n,o,oh,ow] = b[o] + sum x[n,c,ih,iw] w[o,c,kh,kw] differentiated term by term.
static void conv_bwd_ref(float *dx, float *dw, float *db, const float *dout, const float *x,
                         const float *w, const rl_conv_shape *s)
{
    const size_t nx = x_size(s), nw = w_size(s);
    double *ax = calloc(nx, sizeof *ax), *aw = calloc(nw, sizeof *aw);
    double *ab = calloc((size_t)s->OC, sizeof *ab);
    for (int n = 0; n < s->N; n++)
        for (int o = 0; o < s->OC; o++)
            for (int oh = 0; oh < s->Ho; oh++)
                for (int ow = 0; ow < s->Wo; ow++) {
                    const double g = dout[(((size_t)n * s->OC + o) * s->Ho + oh) * s->Wo + ow];
                    ab[o] += g;
                    for (int c = 0; c < s->C; c++)
                        for (int kh = 0; kh < s->KH; kh++)
                            for (int kw = 0; kw < s->KW; kw++) {
                                const int ih = oh * s->stride - s->pad_t + kh;
                                const int iw = ow * s->stride - s->pad_l + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                const size_t xi = (((size_t)n * s->C + c) * s->H + ih) * s->W + iw;
                                const size_t wi = (((size_t)o * s->C + c) * s->KH + kh) * s->KW + kw;
                                ax[xi] += g * w[wi];
                                aw[wi] += g * x[xi];
                            }
                }
    for (size_t i = 0; i < nx; i++) dx[i] = (float)ax[i];
    for (size_t i = 0; i < nw; i++) dw[i] = (float)aw[i];
    for (int o = 0; o < s->OC; o++) db[o] = (float)ab[o];
    free(ax); free(aw); free(ab);
}

// state shared by the finite-difference loss and the thread-invariance run
typedef struct {
    rl_conv_shape s;
    float *x, *w, *b;        // inputs (x, w perturbed by the FD check)
    const float *r;          // loss weights (N, OC, Ho, Wo)
    const float *dout;       // (N, OC, Ho, Wo)
    float *out, *scratch;
} conv_ctx;

// loss = sum(out * r) with out from the fast forward; accumulated in double
static double conv_loss(void *p)
{
    conv_ctx *c = p;
    rl_conv2d_fwd(c->out, c->scratch, c->x, c->w, c->b, &c->s);
    double l = 0.0;
    for (size_t i = 0; i < o_size(&c->s); i++) l += (double)c->out[i] * c->r[i];
    return l;
}

// forward then backward into one buffer: [out | dx | dw | db]
static void conv_run(void *p, float *res)
{
    conv_ctx *c = p;
    const rl_conv_shape *s = &c->s;
    float *out = res, *dx = out + o_size(s), *dw = dx + x_size(s), *db = dw + w_size(s);
    rl_conv2d_fwd(out, c->scratch, c->x, c->w, c->b, s);
    rl_conv2d_bwd(dx, dw, db, c->scratch, c->dout, c->x, c->w, s);
}

static size_t run_size(const rl_conv_shape *s) { return o_size(s) + x_size(s) + w_size(s) + s->OC; }

// ---- fixture cases ------------------------------------------------------------------------

static void test_conv_fixture(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;

    rl_conv_shape s = {
        .N = rl_fixture_int(&fx, "N"), .C = rl_fixture_int(&fx, "C"),
        .H = rl_fixture_int(&fx, "H"), .W = rl_fixture_int(&fx, "W"),
        .OC = rl_fixture_int(&fx, "OC"), .KH = rl_fixture_int(&fx, "KH"),
        .KW = rl_fixture_int(&fx, "KW"), .stride = rl_fixture_int(&fx, "stride"),
        .pad_t = rl_fixture_int(&fx, "pad_t"), .pad_l = rl_fixture_int(&fx, "pad_l"),
        .Ho = rl_fixture_int(&fx, "Ho"), .Wo = rl_fixture_int(&fx, "Wo"),
    };
    const int has_b = rl_fixture_int(&fx, "bias");
    const int xs[4] = { s.N, s.C, s.H, s.W }, ws[4] = { s.OC, s.C, s.KH, s.KW };
    const int os[4] = { s.N, s.OC, s.Ho, s.Wo };
    const float *x0 = rl_fixture_f32(&fx, "x", 4, xs), *w0 = rl_fixture_f32(&fx, "w", 4, ws);
    const float *b0 = has_b ? rl_fixture_f32(&fx, "b", 1, &s.OC) : NULL;
    const float *want = rl_fixture_f32(&fx, "out", 4, os);
    const float *dout = rl_fixture_f32(&fx, "dout", 4, os);
    const float *want_dx = rl_fixture_f32(&fx, "dx", 4, xs), *want_dw = rl_fixture_f32(&fx, "dw", 4, ws);
    const float *want_db = has_b ? rl_fixture_f32(&fx, "db", 1, &s.OC) : NULL;
    if (!x0 || !w0 || !want || !dout || !want_dx || !want_dw || (has_b && (!b0 || !want_db))) {
        rl_fixture_close(&fx);
        return;
    }
    // the symmetric constructor agrees with the fixture's geometry when the padding is symmetric
    if (rl_fixture_int(&fx, "pad_b") == s.pad_t && rl_fixture_int(&fx, "pad_r") == s.pad_l &&
        s.pad_t == s.pad_l) {
        rl_conv_shape m = rl_conv_shape_make(s.N, s.C, s.H, s.W, s.OC, s.KH, s.KW, s.stride, s.pad_t);
        RL_CHECK(t, m.Ho == s.Ho && m.Wo == s.Wo && m.pad_t == s.pad_t && m.pad_l == s.pad_l);
    }

    const size_t nx = x_size(&s), nw = w_size(&s), no = o_size(&s);
    conv_ctx c = { .s = s };
    c.x = rl_test_floats(t, nx); memcpy(c.x, x0, nx * sizeof(float));
    c.w = rl_test_floats(t, nw); memcpy(c.w, w0, nw * sizeof(float));
    if (has_b) { c.b = rl_test_floats(t, s.OC); memcpy(c.b, b0, s.OC * sizeof(float)); }
    c.out = rl_test_floats(t, no);
    c.scratch = rl_test_floats(t, rl_conv2d_scratch_floats(&s, 8) + 1);
    c.dout = dout;

    // forward: each output is a dot product of C*KH*KW <= 80 float terms of size ~1, summed by
    // sgemm in float32 against a float64 reference: a few 1e-7 of error, 2e-5 leaves margin
    float *out = rl_test_floats(t, no), *out_ref = rl_test_floats(t, no);
    rl_conv2d_fwd(out, c.scratch, c.x, c.w, c.b, &s);
    rl_check_close(t, "out", out, want, no, 2e-5, 1e-5);
    rl_conv2d_fwd_ref(out_ref, c.x, c.w, c.b, &s);
    // the reference sums in double: one float rounding from the fixture
    rl_check_close(t, "out (reference path)", out_ref, want, no, 1e-6, 1e-6);
    rl_check_close(t, "out fast vs reference", out, out_ref, no, 2e-5, 1e-5);

    // backward accumulates: start every gradient at 1 and subtract it afterwards
    float *dx = rl_test_floats(t, nx), *dw = rl_test_floats(t, nw), *db = rl_test_floats(t, s.OC);
    for (size_t i = 0; i < nx; i++) dx[i] = 1.0f;
    for (size_t i = 0; i < nw; i++) dw[i] = 1.0f;
    for (int i = 0; i < s.OC; i++) db[i] = 1.0f;
    rl_conv2d_bwd(dx, dw, db, c.scratch, dout, c.x, c.w, &s);
    for (size_t i = 0; i < nx; i++) dx[i] -= 1.0f;
    for (size_t i = 0; i < nw; i++) dw[i] -= 1.0f;
    for (int i = 0; i < s.OC; i++) db[i] -= 1.0f;
    // dx sums OC*KH*KW <= 80 terms (2e-5 as the forward); dw and db sum N*Ho*Wo <= 2048 terms
    // of size ~1 (sums ~45): float32 accumulation plus the +1/-1 round trip, ~1e-5 absolute
    rl_check_close(t, "dx", dx, want_dx, nx, 2e-5, 1e-5);
    rl_check_close(t, "dw", dw, want_dw, nw, 1e-4, 1e-5);
    if (has_b) rl_check_close(t, "db", db, want_db, s.OC, 1e-4, 1e-5);

    // a NULL gradient is skipped and does not disturb the others
    float *dx2 = rl_test_floats(t, nx);
    rl_conv2d_bwd(dx2, NULL, NULL, c.scratch, dout, c.x, c.w, &s);
    rl_check_close(t, "dx alone", dx2, want_dx, nx, 2e-5, 1e-5);

    // finite differences of sum(out * r) (linear in x, w, b, so the central difference is exact
    // up to float rounding of the outputs it touches: ~1e-6 / 2h)
    float *r = rl_test_floats(t, no);
    rl_test_randu(r, no, 7);
    c.r = r;
    float *gx = rl_test_floats(t, nx), *gw = rl_test_floats(t, nw), *gb = rl_test_floats(t, s.OC);
    rl_conv2d_bwd(gx, gw, has_b ? gb : NULL, c.scratch, r, c.x, c.w, &s);
    rl_check_grad_fd(t, "dx", conv_loss, &c, c.x, gx, nx, 300, 1e-2, 1e-3, 1e-3);
    rl_check_grad_fd(t, "dw", conv_loss, &c, c.w, gw, nw, 200, 1e-2, 1e-3, 1e-3);
    if (has_b) rl_check_grad_fd(t, "db", conv_loss, &c, c.b, gb, s.OC, s.OC, 1e-2, 1e-3, 1e-3);

    rl_check_threads_bitwise(t, "fwd+bwd", conv_run, &c, run_size(&s));
    rl_fixture_close(&fx);
}

// ---- fast path vs reference on every tiling branch -----------------------------------------

static void test_conv_paths(rl_test *t, const char *arg)
{
    (void)arg;
    // N, C, OC, H, W, KH, KW, stride, pad_t, pad_l, pad_b, pad_r. Chosen for ops_conv.c's
    // tiles of >= 2048 columns (whole images): several tiles and a partial last one per branch.
    static const int shapes[][12] = {
        { 23, 5, 7, 9, 11, 3, 3, 1, 1, 1, 1, 1 },   // 99 px: 21 images per tile, tiles 21 + 2
        { 3, 3, 4, 33, 33, 3, 3, 1, 1, 1, 1, 1 },   // 1089 px: 2 images per tile, tiles 2 + 1
        { 3, 2, 3, 46, 47, 3, 3, 1, 1, 1, 1, 1 },   // 2162 px: one image per tile, into out
        { 3, 6, 5, 46, 46, 1, 1, 1, 0, 0, 0, 0 },   // 1x1, 2116 px: x is the column matrix
        { 7, 6, 5, 5, 7, 1, 1, 1, 0, 0, 0, 0 },     // 1x1 small: gathered tile
        { 5, 4, 3, 17, 15, 3, 3, 2, 0, 0, 1, 1 },   // VAE downsample: pad (0, 1, 0, 1), stride 2
        { 2, 3, 2, 6, 5, 5, 5, 1, 0, 0, 0, 0 },     // kernel nearly the image size
        { 2, 2, 3, 3, 2, 4, 4, 1, 1, 1, 1, 1 },     // kernel wider than the unpadded input
        { 3, 2, 3, 9, 8, 3, 3, 3, 2, 1, 2, 1 },     // stride 3, uneven pads
        { 2, 3, 2, 7, 6, 3, 3, 1, 2, 0, 0, 2 },     // stride 1, Wo = W, Ho != H (row-copy path)
    };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int *q = shapes[k];
        rl_conv_shape s = { .N = q[0], .C = q[1], .OC = q[2], .H = q[3], .W = q[4],
                            .KH = q[5], .KW = q[6], .stride = q[7], .pad_t = q[8], .pad_l = q[9] };
        s.Ho = (s.H + q[8] + q[10] - s.KH) / s.stride + 1;
        s.Wo = (s.W + q[9] + q[11] - s.KW) / s.stride + 1;
        const size_t nx = x_size(&s), nw = w_size(&s), no = o_size(&s);
        conv_ctx c = { .s = s };
        c.x = rl_test_floats(t, nx); rl_test_randu(c.x, nx, 11 + k);
        c.w = rl_test_floats(t, nw); rl_test_randu(c.w, nw, 23 + k);
        c.b = rl_test_floats(t, s.OC); rl_test_randu(c.b, s.OC, 37 + k);
        float *dout = rl_test_floats(t, no); rl_test_randu(dout, no, 41 + k);
        c.dout = dout;
        c.scratch = rl_test_floats(t, rl_conv2d_scratch_floats(&s, 8) + 1);

        char name[96];
        float *out = rl_test_floats(t, no), *ref = rl_test_floats(t, no);
        rl_conv2d_fwd(out, c.scratch, c.x, c.w, c.b, &s);
        rl_conv2d_fwd_ref(ref, c.x, c.w, c.b, &s);
        // uniform [-1, 1) data, up to C*KH*KW = 75 terms: float32 sgemm vs double sums
        snprintf(name, sizeof name, "shape %zu out fast vs ref", k);
        rl_check_close(t, name, out, ref, no, 2e-5, 1e-5);

        float *dx = rl_test_floats(t, nx), *dw = rl_test_floats(t, nw), *db = rl_test_floats(t, s.OC);
        float *rx = rl_test_floats(t, nx), *rw = rl_test_floats(t, nw), *rb = rl_test_floats(t, s.OC);
        rl_conv2d_bwd(dx, dw, db, c.scratch, dout, c.x, c.w, &s);
        conv_bwd_ref(rx, rw, rb, dout, c.x, c.w, &s);
        // dw and db sum up to N*Ho*Wo = 6486 terms of size ~0.3 in float32 (in double for db)
        snprintf(name, sizeof name, "shape %zu dx fast vs ref", k);
        rl_check_close(t, name, dx, rx, nx, 2e-5, 1e-5);
        snprintf(name, sizeof name, "shape %zu dw fast vs ref", k);
        rl_check_close(t, name, dw, rw, nw, 2e-4, 1e-5);
        snprintf(name, sizeof name, "shape %zu db fast vs ref", k);
        rl_check_close(t, name, db, rb, s.OC, 1e-5, 1e-6);

        snprintf(name, sizeof name, "shape %zu fwd+bwd", k);
        rl_check_threads_bitwise(t, name, conv_run, &c, run_size(&s));
    }
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "conv/k3s1p1", test_conv_fixture, "ops/conv_k3s1p1_n2c5oc7h9w11.safetensors" },
        { "conv/k3s2p1", test_conv_fixture, "ops/conv_k3s2p1_n2c5oc7h9w11.safetensors" },
        { "conv/k3s1p0", test_conv_fixture, "ops/conv_k3s1p0_n1c3oc5h7w13.safetensors" },
        { "conv/k3s2p0_nobias", test_conv_fixture, "ops/conv_k3s2p0_n3c4oc6h10w9.safetensors" },
        { "conv/k3s2asym", test_conv_fixture, "ops/conv_k3s2asym_n2c5oc7h9w11.safetensors" },
        { "conv/k1s1p0", test_conv_fixture, "ops/conv_k1s1p0_n3c5oc7h9w11.safetensors" },
        { "conv/k1s1p0_direct", test_conv_fixture, "ops/conv_k1s1p0_n1c3oc4h32w32.safetensors" },
        { "conv/k4s2p1", test_conv_fixture, "ops/conv_k4s2p1_n2c3oc5h9w11.safetensors" },
        { "conv/k4s1p2_nobias", test_conv_fixture, "ops/conv_k4s1p2_n1c2oc3h5w7.safetensors" },
        { "conv/paths", test_conv_paths, NULL },
        { 0 },
    });
}
