/* tests/test_ops_misc.c - elementwise ops, bias over (n, c), concat, permute, timestep
 * embedding, embedding lookup and the MSE loss against fixtures (tools/fixtures/ops_misc.py),
 * finite differences for every backward, and 1 vs N threads bitwise on sizes large enough to
 * take the parallel branches. */
#include <string.h>

#include "core/ops.h"
#include "tests/harness.h"

// sum(out * r) in double: the scalar loss every finite-difference check differentiates
static double dot(const float *a, const float *r, size_t n)
{
    double l = 0.0;
    for (size_t i = 0; i < n; i++) l += (double)a[i] * r[i];
    return l;
}

static float *copy_of(rl_test *t, const float *x, size_t n)
{
    float *p = rl_test_floats(t, n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

// ---- elementwise --------------------------------------------------------------------------

static void test_elementwise(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int n = rl_fixture_int(&fx, "n");
    const float s = (float)rl_fixture_float(&fx, "s");
    const float *a = rl_fixture_f32(&fx, "a", 1, &n), *b = rl_fixture_f32(&fx, "b", 1, &n);
    const float *y = rl_fixture_f32(&fx, "y", 1, &n);
    const float *w_add = rl_fixture_f32(&fx, "add", 1, &n);
    const float *w_scale = rl_fixture_f32(&fx, "scale", 1, &n);
    const float *w_axpy = rl_fixture_f32(&fx, "axpy", 1, &n);
    if (!a || !b || !y || !w_add || !w_scale || !w_axpy) { rl_fixture_close(&fx); return; }

    // a + b and a * s are single IEEE operations: correctly rounded, equal to the float64
    // reference rounded to float32, bit for bit
    float *out = rl_test_floats(t, n);
    rl_add_fwd(out, a, b, n);
    rl_check_close(t, "add", out, w_add, n, 0, 0);
    float *acc = copy_of(t, a, n);
    rl_add_fwd(acc, acc, b, n);                      // out aliasing a
    rl_check_close(t, "add (out = a)", acc, w_add, n, 0, 0);
    acc = copy_of(t, a, n);
    rl_add_inplace(acc, b, n);
    rl_check_close(t, "add_inplace", acc, w_add, n, 0, 0);
    rl_scale_fwd(out, a, s, n);
    rl_check_close(t, "scale", out, w_scale, n, 0, 0);
    acc = copy_of(t, a, n);
    rl_scale_fwd(acc, acc, s, n);
    rl_check_close(t, "scale (out = x)", acc, w_scale, n, 0, 0);
    // y + s a rounds twice (product, then sum) against once in the reference: <= 1 ulp of ~3
    acc = copy_of(t, y, n);
    rl_axpy(acc, s, a, n);
    rl_check_close(t, "axpy", acc, w_axpy, n, 5e-7, 2e-7);
    rl_fixture_close(&fx);
}

// ---- add_bias_nc ----------------------------------------------------------------------------

typedef struct { const float *x, *r; float *bias, *out; int N, C, S; } bias_ctx;

static double bias_loss(void *p)
{
    bias_ctx *c = p;
    const size_t n = (size_t)c->N * c->C * c->S;
    memcpy(c->out, c->x, n * sizeof(float));
    rl_add_bias_nc(c->out, c->bias, c->N, c->C, c->S);
    return dot(c->out, c->r, n);
}

static void test_add_bias_nc(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int N = rl_fixture_int(&fx, "N"), C = rl_fixture_int(&fx, "C"), S = rl_fixture_int(&fx, "S");
    const int sh[3] = { N, C, S };
    const float *x = rl_fixture_f32(&fx, "x", 3, sh), *bias = rl_fixture_f32(&fx, "bias", 2, sh);
    const float *want = rl_fixture_f32(&fx, "out", 3, sh), *dout = rl_fixture_f32(&fx, "dout", 3, sh);
    const float *want_db = rl_fixture_f32(&fx, "dbias", 2, sh);
    if (!x || !bias || !want || !dout || !want_db) { rl_fixture_close(&fx); return; }
    const size_t n = (size_t)N * C * S, nb = (size_t)N * C;

    float *out = copy_of(t, x, n);
    rl_add_bias_nc(out, bias, N, C, S);
    rl_check_close(t, "out", out, want, n, 0, 0);   // one float add: correctly rounded

    // dbias = sum over S in double, one rounding; then the +1/-1 accumulate round trip
    float *db = rl_test_floats(t, nb);
    for (size_t i = 0; i < nb; i++) db[i] = 1.0f;
    rl_add_bias_nc_bwd(db, dout, N, C, S);
    for (size_t i = 0; i < nb; i++) db[i] -= 1.0f;
    rl_check_close(t, "dbias", db, want_db, nb, 1e-6, 1e-6);

    float *r = rl_test_floats(t, n);
    rl_test_randu(r, n, 3);
    bias_ctx c = { .x = x, .r = r, .bias = copy_of(t, bias, nb), .out = rl_test_floats(t, n),
                   .N = N, .C = C, .S = S };
    float *g = rl_test_floats(t, nb);
    rl_add_bias_nc_bwd(g, r, N, C, S);
    // linear in bias: the difference is exact up to rounding of S outputs (~1e-6 / 2h)
    rl_check_grad_fd(t, "dbias", bias_loss, &c, c.bias, g, nb, 300, 1e-2, 1e-4, 1e-3);
    rl_fixture_close(&fx);
}

// ---- concat ---------------------------------------------------------------------------------

typedef struct { float *a, *b, *out; const float *r; int N, Ca, Cb, S; } cat_ctx;

static double cat_loss(void *p)
{
    cat_ctx *c = p;
    rl_concat_fwd(c->out, c->a, c->b, c->N, c->Ca, c->Cb, c->S);
    return dot(c->out, c->r, (size_t)c->N * (c->Ca + c->Cb) * c->S);
}

static void test_concat(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int N = rl_fixture_int(&fx, "N"), Ca = rl_fixture_int(&fx, "Ca");
    const int Cb = rl_fixture_int(&fx, "Cb"), S = rl_fixture_int(&fx, "S");
    const float *a = rl_fixture_f32(&fx, "a", 3, (int[]){ N, Ca, S });
    const float *b = rl_fixture_f32(&fx, "b", 3, (int[]){ N, Cb, S });
    const float *want = rl_fixture_f32(&fx, "out", 3, (int[]){ N, Ca + Cb, S });
    const float *dout = rl_fixture_f32(&fx, "dout", 3, (int[]){ N, Ca + Cb, S });
    const float *want_da = rl_fixture_f32(&fx, "da", 3, (int[]){ N, Ca, S });
    const float *want_db = rl_fixture_f32(&fx, "db", 3, (int[]){ N, Cb, S });
    if (!a || !b || !want || !dout || !want_da || !want_db) { rl_fixture_close(&fx); return; }
    const size_t na = (size_t)N * Ca * S, nb = (size_t)N * Cb * S, no = na + nb;

    float *out = rl_test_floats(t, no);
    rl_concat_fwd(out, a, b, N, Ca, Cb, S);
    rl_check_close(t, "out", out, want, no, 0, 0);   // a copy

    // accumulate onto 1 and subtract it: one rounding each way on values ~1
    float *da = rl_test_floats(t, na), *db = rl_test_floats(t, nb);
    for (size_t i = 0; i < na; i++) da[i] = 1.0f;
    for (size_t i = 0; i < nb; i++) db[i] = 1.0f;
    rl_concat_bwd(da, db, dout, N, Ca, Cb, S);
    for (size_t i = 0; i < na; i++) da[i] -= 1.0f;
    for (size_t i = 0; i < nb; i++) db[i] -= 1.0f;
    rl_check_close(t, "da", da, want_da, na, 3e-7, 0);
    rl_check_close(t, "db", db, want_db, nb, 3e-7, 0);

    float *r = rl_test_floats(t, no);
    rl_test_randu(r, no, 4);
    cat_ctx c = { .a = copy_of(t, a, na), .b = copy_of(t, b, nb), .out = rl_test_floats(t, no),
                  .r = r, .N = N, .Ca = Ca, .Cb = Cb, .S = S };
    float *ga = rl_test_floats(t, na), *gb = rl_test_floats(t, nb);
    rl_concat_bwd(ga, gb, r, N, Ca, Cb, S);
    rl_check_grad_fd(t, "da", cat_loss, &c, c.a, ga, na, 300, 1e-2, 1e-4, 1e-3);
    rl_check_grad_fd(t, "db", cat_loss, &c, c.b, gb, nb, 300, 1e-2, 1e-4, 1e-3);
    rl_fixture_close(&fx);
}

// ---- permute --------------------------------------------------------------------------------

static void test_permute(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    int d[4], p[4], e[4];
    for (int k = 0; k < 4; k++) {
        char key[4] = { 'd', (char)('0' + k), 0 };
        d[k] = rl_fixture_int(&fx, key);
        key[0] = 'p';
        p[k] = rl_fixture_int(&fx, key);
    }
    for (int k = 0; k < 4; k++) e[k] = d[p[k]];
    const float *x = rl_fixture_f32(&fx, "x", 4, d), *want = rl_fixture_f32(&fx, "out", 4, e);
    if (!x || !want) { rl_fixture_close(&fx); return; }
    const size_t n = (size_t)d[0] * d[1] * d[2] * d[3];

    float *out = rl_test_floats(t, n), *back = rl_test_floats(t, n);
    rl_permute4(out, x, d, p);
    rl_check_bitwise(t, "out", out, want, n);
    // backward of a permute: the inverse permute of dout, here applied to out itself
    int inv[4];
    rl_permute_inverse(inv, p);
    rl_permute4(back, out, e, inv);
    rl_check_bitwise(t, "inverse permute restores x", back, x, n);
    rl_fixture_close(&fx);
}

// ---- timestep embedding -----------------------------------------------------------------------

static void test_timestep(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int N = rl_fixture_int(&fx, "N"), dim = rl_fixture_int(&fx, "dim");
    const int flip = rl_fixture_int(&fx, "flip_sin_to_cos");
    const float shift = (float)rl_fixture_float(&fx, "freq_shift");
    const float maxp = (float)rl_fixture_float(&fx, "max_period");
    const float *ts = rl_fixture_f32(&fx, "t", 1, &N);
    const float *want = rl_fixture_f32(&fx, "out", 2, (int[]){ N, dim });
    const float *want64 = rl_fixture_f32(&fx, "out64", 2, (int[]){ N, dim });
    if (!ts || !want || !want64) { rl_fixture_close(&fx); return; }
    const size_t n = (size_t)N * dim;

    float *out = rl_test_floats(t, n);
    rl_timestep_embed(out, ts, N, dim, flip, shift, maxp);
    // against diffusers' float32 result: torch's vectorised expf may differ from glibc's by 1
    // ulp, which moves the argument t*freq (t up to 999) by up to ~1.2e-4 after rounding, and
    // sin/cos with it; everything else is the same float32 steps
    rl_check_close(t, "out vs diffusers float32", out, want, n, 2e-4, 0);
    // against exact math: the float32 argument t*freq itself is off by up to ~1e-4 at t=999
    rl_check_close(t, "out vs float64", out, want64, n, 2e-4, 0);
    // small t keep the argument small, so there the match is tight
    RL_CHECK(t, out[0 * dim + (flip ? 0 : dim / 2)] == 1.0f);   // cos(0) = 1 at t = 0
    rl_check_close(t, "out vs diffusers at t<=1", out, want, 2 * (size_t)dim, 1e-6, 0);
    rl_fixture_close(&fx);
}

// ---- embedding lookup -------------------------------------------------------------------------

typedef struct { float *table, *out; const int *ids; const float *r; int T, D; } emb_ctx;

static double emb_loss(void *p)
{
    emb_ctx *c = p;
    rl_embed_fwd(c->out, c->ids, c->table, c->T, c->D);
    return dot(c->out, c->r, (size_t)c->T * c->D);
}

static void test_embed(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int V = rl_fixture_int(&fx, "V"), D = rl_fixture_int(&fx, "D"), T = rl_fixture_int(&fx, "T");
    size_t nid = 0;
    const int64_t *ids64 = rl_fixture_i64(&fx, "ids", &nid);
    const float *table = rl_fixture_f32(&fx, "table", 2, (int[]){ V, D });
    const float *want = rl_fixture_f32(&fx, "out", 2, (int[]){ T, D });
    const float *dout = rl_fixture_f32(&fx, "dout", 2, (int[]){ T, D });
    const float *want_dt = rl_fixture_f32(&fx, "dtable", 2, (int[]){ V, D });
    if (!ids64 || !table || !want || !dout || !want_dt || !RL_CHECK(t, nid == (size_t)T)) {
        rl_fixture_close(&fx);
        return;
    }
    int *ids = rl_test_alloc(t, (size_t)T * sizeof(int));
    for (int i = 0; i < T; i++) ids[i] = (int)ids64[i];
    const size_t no = (size_t)T * D, nt = (size_t)V * D;

    float *out = rl_test_floats(t, no);
    rl_embed_fwd(out, ids, table, T, D);
    rl_check_close(t, "out", out, want, no, 0, 0);   // a copy

    // repeated ids sum up to 3 rows in float (2 roundings), plus the +1/-1 round trip
    float *dt = rl_test_floats(t, nt);
    for (size_t i = 0; i < nt; i++) dt[i] = 1.0f;
    rl_embed_bwd(dt, dout, ids, T, D, V);
    for (size_t i = 0; i < nt; i++) dt[i] -= 1.0f;
    rl_check_close(t, "dtable", dt, want_dt, nt, 1e-6, 1e-6);

    float *r = rl_test_floats(t, no);
    rl_test_randu(r, no, 9);
    emb_ctx c = { .table = copy_of(t, table, nt), .out = rl_test_floats(t, no), .ids = ids,
                  .r = r, .T = T, .D = D };
    float *g = rl_test_floats(t, nt);
    rl_embed_bwd(g, r, ids, T, D, V);
    rl_check_grad_fd(t, "dtable", emb_loss, &c, c.table, g, nt, 300, 1e-2, 1e-4, 1e-3);
    rl_fixture_close(&fx);
}

// ---- mse ------------------------------------------------------------------------------------

typedef struct { float *a; const float *b; float scale; size_t n; } mse_ctx;

static double mse_loss(void *p)
{
    mse_ctx *c = p;
    return c->scale * rl_mse_fwd(c->a, c->b, c->n);
}

static void test_mse(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const int n = rl_fixture_int(&fx, "n");
    const float scale = (float)rl_fixture_float(&fx, "scale");
    const float *a = rl_fixture_f32(&fx, "a", 1, &n), *b = rl_fixture_f32(&fx, "b", 1, &n);
    const float *want = rl_fixture_f32(&fx, "loss", 1, (int[]){ 1 });
    const float *want_da = rl_fixture_f32(&fx, "da", 1, &n);
    if (!a || !b || !want || !want_da) { rl_fixture_close(&fx); return; }

    // the sum runs in double over float32 inputs, exactly the reference's inputs; the fixture
    // stores the loss as float32, so one float rounding (6e-8 relative) remains
    const float loss = (float)rl_mse_fwd(a, b, n);
    rl_check_close(t, "loss", &loss, want, 1, 0, 1e-7);

    // da += 2 scale (a - b): the difference rounds once more than the reference
    float *da = rl_test_floats(t, n);
    for (int i = 0; i < n; i++) da[i] = 1.0f;
    rl_mse_bwd(da, a, b, scale, n);
    for (int i = 0; i < n; i++) da[i] -= 1.0f;
    rl_check_close(t, "da", da, want_da, n, 5e-7, 1e-6);

    // the loss is quadratic, so the central difference is exact up to rounding
    mse_ctx c = { .a = copy_of(t, a, n), .b = b, .scale = scale, .n = n };
    float *g = rl_test_floats(t, n);
    rl_mse_bwd(g, a, b, scale, n);
    rl_check_grad_fd(t, "da", mse_loss, &c, c.a, g, n, 300, 1e-2, 1e-4, 1e-3);
    rl_fixture_close(&fx);
}

// ---- thread invariance on large inputs --------------------------------------------------------

// sizes above the kernels' parallel thresholds, so the OpenMP branches actually run
enum { BN = 2, BC = 40, BS = 1009, BT = 97, BD = 769, BV = 50, TN = 203, TDIM = 321 };

typedef struct { const float *a, *b, *bias, *ts; const int *ids; size_t n; } big_ctx;

static size_t big_size(void)
{
    const size_t n = (size_t)BN * BC * BS;
    return 4 * n                       // add, add_inplace, scale, axpy
           + n + (size_t)BN * BC       // add_bias_nc, its backward
           + 2 * n + 2 * n             // concat, its backward
           + n                         // permute
           + (size_t)TN * TDIM         // timestep
           + (size_t)BT * BD + (size_t)BV * BD   // embed, its backward
           + 2 + n;                    // mse (a double) and its backward
}

static void big_run(void *p, float *o)
{
    const big_ctx *c = p;
    const size_t n = c->n;
    rl_add_fwd(o, c->a, c->b, n); o += n;
    memcpy(o, c->a, n * sizeof(float)); rl_add_inplace(o, c->b, n); o += n;
    rl_scale_fwd(o, c->a, 0.37f, n); o += n;
    memcpy(o, c->b, n * sizeof(float)); rl_axpy(o, -1.3f, c->a, n); o += n;
    memcpy(o, c->a, n * sizeof(float)); rl_add_bias_nc(o, c->bias, BN, BC, BS); o += n;
    rl_add_bias_nc_bwd(o, c->a, BN, BC, BS); o += (size_t)BN * BC;
    rl_concat_fwd(o, c->a, c->b, BN, BC, BC, BS); o += 2 * n;
    rl_concat_bwd(o, o + n, c->a, BN, BC, BC, BS); o += 2 * n;   // dout: 2n floats of a
    rl_permute4(o, c->a, (int[]){ BN, BC, 1, BS }, (int[]){ 0, 3, 2, 1 }); o += n;
    rl_timestep_embed(o, c->ts, TN, TDIM, 1, 0.0f, 10000.0f); o += (size_t)TN * TDIM;
    rl_embed_fwd(o, c->ids, c->a, BT, BD); o += (size_t)BT * BD;
    rl_embed_bwd(o, c->b, c->ids, BT, BD, BV); o += (size_t)BV * BD;
    const double l = rl_mse_fwd(c->a, c->b, n);
    memcpy(o, &l, sizeof l); o += 2;
    rl_mse_bwd(o, c->a, c->b, 0.5f, n);
}

static void test_threads(rl_test *t, const char *arg)
{
    (void)arg;
    const size_t n = (size_t)BN * BC * BS;
    float *a = rl_test_floats(t, 2 * n), *b = rl_test_floats(t, 2 * n);
    float *bias = rl_test_floats(t, (size_t)BN * BC), *ts = rl_test_floats(t, TN);
    rl_test_randu(a, 2 * n, 1);
    rl_test_randu(b, 2 * n, 2);
    rl_test_randu(bias, (size_t)BN * BC, 3);
    for (int i = 0; i < TN; i++) ts[i] = (float)(i * 5);
    int *ids = rl_test_alloc(t, BT * sizeof(int));
    for (int i = 0; i < BT; i++) ids[i] = (i * 7) % BV;   // repeats: several tokens per row
    big_ctx c = { .a = a, .b = b, .bias = bias, .ts = ts, .ids = ids, .n = n };
    rl_check_threads_bitwise(t, "all misc ops", big_run, &c, big_size());
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "elementwise", test_elementwise, "ops/elementwise_n1001.safetensors" },
        { "add_bias_nc/n2c5s13", test_add_bias_nc, "ops/addbiasnc_n2c5s13.safetensors" },
        { "add_bias_nc/n3c7s1", test_add_bias_nc, "ops/addbiasnc_n3c7s1.safetensors" },
        { "concat/n2ca3cb4s7", test_concat, "ops/concat_n2ca3cb4s7.safetensors" },
        { "concat/n1ca5cb1s9", test_concat, "ops/concat_n1ca5cb1s9.safetensors" },
        { "permute4/0321", test_permute, "ops/permute4_0321_d2x3x5x7.safetensors" },
        { "permute4/0213", test_permute, "ops/permute4_0213_d2x3x5x7.safetensors" },
        { "permute4/3102", test_permute, "ops/permute4_3102_d3x2x5x4.safetensors" },
        { "permute4/0123", test_permute, "ops/permute4_0123_d2x3x5x7.safetensors" },
        { "timestep/dim32_flip1_shift0", test_timestep, "ops/timestep_dim32_flip1_shift0.safetensors" },
        { "timestep/dim33_flip0_shift1", test_timestep, "ops/timestep_dim33_flip0_shift1.safetensors" },
        { "timestep/dim320_flip1_shift0", test_timestep, "ops/timestep_dim320_flip1_shift0.safetensors" },
        { "timestep/dim16_flip0_shift0p5", test_timestep, "ops/timestep_dim16_flip0_shift0p5.safetensors" },
        { "embed/v11d7t9", test_embed, "ops/embed_v11d7t9.safetensors" },
        { "mse/n1001", test_mse, "ops/mse_n1001.safetensors" },
        { "threads", test_threads, NULL },
        { 0 },
    });
}
