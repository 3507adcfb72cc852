/* tools/check_clones.c - prints a hash of the output bits of every multi-versioned kernel
 * (core/ops_act.c, ops_attn.c, ops_norm.c) on fixed inputs, one line per kernel.
 *
 * tools/check_clones.sh links it against those kernels compiled for one ISA at a time
 * (-DRL_NO_CLONES with -march=x86-64 / -mavx2 / -mavx512f / -march=native) and against the
 * default build (ifunc picks the CPU's clone), and requires the same lines from all: the
 * clones are then bitwise interchangeable. Not part of the build. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/par.h"

static float *rnd(size_t n, unsigned s, float scale)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = scale * ((float)((s >> 8) & 0xffff) / 32768.0f - 1.0f);
    }
    return p;
}

static void put(const char *name, const float *x, size_t n)
{
    uint64_t h = 1469598103934665603ull;   // FNV-1a over the bytes
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ b[i]) * 1099511628211ull;
    printf("%-28s %016llx\n", name, (unsigned long long)h);
}

int main(int argc, char **argv)
{
    rl_par_set_threads(argc > 1 ? atoi(argv[1]) : 1);
    const size_t n = 40009;   // not a multiple of any vector width
    float *x = rnd(n, 1, 9.0f), *d = rnd(n, 2, 1.0f), *o = calloc(n, 4), *g = calloc(n, 4);
    x[7] = NAN; x[8] = INFINITY; x[9] = -INFINITY; x[10] = -0.0f; x[11] = 1e-30f;
    x[12] = -100.0f; x[13] = 100.0f; x[14] = 1.25f * 1.41421356f;
    struct { const char *name; void (*fwd)(float *, const float *, size_t);
             void (*bwd)(float *, const float *, const float *, size_t); } acts[] = {
        { "silu", rl_silu_fwd, rl_silu_bwd }, { "gelu", rl_gelu_fwd, rl_gelu_bwd },
        { "quickgelu", rl_quickgelu_fwd, rl_quickgelu_bwd },
    };
    char name[64];
    for (int k = 0; k < 3; k++) {
        acts[k].fwd(o, x, n);
        snprintf(name, sizeof name, "%s fwd", acts[k].name);
        put(name, o, n);
        memset(g, 0, n * 4);
        acts[k].bwd(g, d, x, n);
        snprintf(name, sizeof name, "%s bwd", acts[k].name);
        put(name, g, n);
    }
    rl_geglu_fwd(o, x, 101, 198);
    put("geglu fwd", o, 101 * 198);
    memset(g, 0, n * 4);
    rl_geglu_bwd(g, d, x, 101, 198);
    put("geglu bwd", g, 2 * 101 * 198);

    // attention, direct path: temporal, causal with query blocks, long keys
    static const int shapes[][6] = { { 7, 3, 16, 16, 40, 0 }, { 2, 3, 37, 9, 13, 1 },
                                     { 2, 2, 20, 150, 24, 0 }, { 3, 2, 16, 16, 8, 0 } };
    for (int s = 0; s < 4; s++) {
        const int B = shapes[s][0], NH = shapes[s][1], Tq = shapes[s][2], Tk = shapes[s][3];
        const int HS = shapes[s][4], causal = shapes[s][5];
        const size_t nq = (size_t)B * Tq * NH * HS, nk = (size_t)B * Tk * NH * HS;
        const size_t na = (size_t)B * NH * Tq * Tk;
        float *q = rnd(nq, 3, 2.0f), *k = rnd(nk, 4, 1.0f), *v = rnd(nk, 5, 1.0f);
        float *dout = rnd(nq, 6, 1.0f), *out = calloc(nq, 4), *att = calloc(na, 4);
        float *dq = calloc(nq, 4), *dk = calloc(nk, 4), *dv = calloc(nk, 4);
        float *scr = calloc(rl_attn_bwd_scratch_floats(Tq, Tk, 64) + 
                            rl_attn_chunked_scratch_floats(Tq, Tk, HS, 5, 64), 4);
        const float scale = 1.0f / sqrtf((float)HS);
        rl_attn_fwd(out, att, q, k, v, B, NH, Tq, Tk, HS, scale, causal);
        snprintf(name, sizeof name, "attn%d out", s);
        put(name, out, nq);
        snprintf(name, sizeof name, "attn%d att", s);
        put(name, att, na);
        rl_attn_bwd(dq, dk, dv, scr, dout, att, q, k, v, B, NH, Tq, Tk, HS, scale, causal);
        snprintf(name, sizeof name, "attn%d dq dk dv", s);
        put(name, dq, nq);
        put(name, dk, nk);
        put(name, dv, nk);
        rl_attn_fwd_chunked(out, scr, q, k, v, B, NH, Tq, Tk, HS, scale, causal, 5);
        snprintf(name, sizeof name, "attn%d chunked", s);
        put(name, out, nq);
        free(q); free(k); free(v); free(dout); free(out); free(att); free(dq); free(dk);
        free(dv); free(scr);
    }

    // group norm and layer norm, forward and backward
    {
        const int N = 2, C = 24, S = 517, G = 4;
        const size_t m = (size_t)N * C * S;
        float *w = rnd(C, 7, 1.0f), *b = rnd(C, 8, 1.0f), *mean = calloc(N * G, 4);
        float *rstd = calloc(N * G, 4), *dw = calloc(C, 4), *db = calloc(C, 4);
        float *xx = rnd(m, 9, 3.0f), *dd = rnd(m, 10, 1.0f), *oo = calloc(m, 4), *gg = calloc(m, 4);
        rl_groupnorm_fwd(oo, mean, rstd, xx, w, b, N, C, S, G, 1e-5f);
        put("groupnorm fwd", oo, m);
        put("groupnorm stats", rstd, (size_t)N * G);
        rl_groupnorm_bwd(gg, dw, db, dd, xx, mean, rstd, w, N, C, S, G);
        put("groupnorm bwd dx", gg, m);
        put("groupnorm bwd dw db", dw, C);
        put("groupnorm bwd db", db, C);
        const int T = 203, Cl = 77;
        float *lm = calloc(T, 4), *lr = calloc(T, 4);
        memset(gg, 0, m * 4); memset(dw, 0, C * 4); memset(db, 0, C * 4);
        float *lw = rnd(Cl, 11, 1.0f), *lb = rnd(Cl, 12, 1.0f), *ldw = calloc(Cl, 4), *ldb = calloc(Cl, 4);
        rl_layernorm_fwd(oo, lm, lr, xx, lw, lb, T, Cl, 1e-5f);
        put("layernorm fwd", oo, (size_t)T * Cl);
        rl_layernorm_bwd(gg, ldw, ldb, dd, xx, lm, lr, lw, T, Cl);
        put("layernorm bwd dx", gg, (size_t)T * Cl);
        put("layernorm bwd dw", ldw, Cl);
        put("layernorm bwd db", ldb, Cl);
    }
    return 0;
}
