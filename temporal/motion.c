/* temporal/motion.c - AnimateDiff motion module, see motion.h. */
#include "temporal/motion.h"

#include <stdlib.h>
#include <string.h>

#include "core/ops.h"

rl_status rl_motion_bind(rl_motion *m, rl_weights *ws, const char *prefix,
                         const rl_motion_cfg *cfg, rl_err *err)
{
    char p[256];
    *m = (rl_motion){ .C = cfg->C, .NH = cfg->NH, .max_seq = cfg->max_seq };
    if (cfg->NH <= 0 || cfg->C % cfg->NH != 0)
        return rl_errf(err, RL_E_PARAM, "%s: %d channels cannot be split into %d motion heads",
                       prefix, cfg->C, cfg->NH);
    if (cfg->n_layers <= 0 || cfg->max_seq <= 0)
        return rl_errf(err, RL_E_PARAM, "%s: %d transformer layers, max sequence %d", prefix,
                       cfg->n_layers, cfg->max_seq);
    m->HS = cfg->C / cfg->NH;
    m->inner = m->NH * m->HS;
    rl_weights_name(p, sizeof p, prefix, "norm");
    RL_TRY(rl_gnorm_bind(&m->norm, ws, p, cfg->C, cfg->G, 1e-6f, err));
    rl_weights_name(p, sizeof p, prefix, "proj_in");
    RL_TRY(rl_fc_bind(&m->proj_in, ws, p, cfg->C, m->inner, 1, err));
    rl_weights_name(p, sizeof p, prefix, "proj_out");
    RL_TRY(rl_fc_bind(&m->proj_out, ws, p, m->inner, cfg->C, 1, err));
    rl_tblock_cfg bc = { .C = m->inner, .NH = m->NH, .HS = m->HS, .Ckv = cfg->Ckv,
                         .double_self = cfg->double_self, .attn_bias = 0,
                         .pe_len = cfg->max_seq, .ln_eps = 1e-5f,
                         .pe_scale = cfg->pe_scale };
    RL_TRY(rl_tblock_stack_bind(&m->blocks, ws, prefix, cfg->n_layers, &bc, err));
    m->n_blocks = cfg->n_layers;
    return RL_OK;
}

void rl_motion_free(rl_motion *m)
{
    free(m->blocks);
    m->blocks = NULL;
    m->n_blocks = 0;
}

void rl_motion_fwd(const rl_motion *m, rl_motion_acts *a, rl_arena *arena, float *out,
                   const float *x, int N, int F, int H, int W)
{
    const int train = a != NULL, C = m->C, I = m->inner, S = H * W, G = m->norm.G;
    const size_t n = (size_t)N * F * C * S;
    rl_motion_acts local;
    rl_arena_mark mk = rl_arena_get_mark(arena);
    if (!train) a = &local;
    RL_ASSERT(F <= m->max_seq);

    // seq (N*S, F, I) = proj_in(norm(x)) as sequences (inference: the permuted and normed
    // copies are released once seq exists)
    a->seq = rl_arena_take(arena, (size_t)N * S * F * I);
    rl_arena_mark mt = rl_arena_get_mark(arena);
    // (N, F, C, S) -> (N, C, F, S), GroupNorm over (C/G, F, S) per video
    a->xp = rl_arena_take(arena, n);
    rl_permute4(a->xp, x, (int[]){ N, F, C, S }, (int[]){ 0, 2, 1, 3 });
    a->gn = rl_arena_take(arena, n);
    a->gn_mean = rl_arena_take(arena, (size_t)N * G);
    a->gn_rstd = rl_arena_take(arena, (size_t)N * G);
    rl_groupnorm_fwd(a->gn, a->gn_mean, a->gn_rstd, a->xp, m->norm.w, m->norm.b, N, C, F * S, G,
                     m->norm.eps);
    // (N, C, F, S) -> (N, S, F, C): one sequence of F frames per (video, position)
    a->gs = rl_arena_take(arena, n);
    rl_permute4(a->gs, a->gn, (int[]){ N, C, F, S }, (int[]){ 0, 3, 2, 1 });
    rl_fc_fwd(&m->proj_in, a->seq, a->gs, N * S * F);
    if (!train) rl_arena_reset(arena, mt);

    const float *h = rl_tblock_stack_fwd(m->blocks, m->n_blocks, train ? &a->h : NULL,
                                         train ? &a->blocks : NULL, arena, a->seq, NULL, N * S,
                                         F, F, 1);

    // proj_out, (N, S, F, C) -> (N, F, C, S), residual
    float *y = rl_arena_take(arena, n), *yp = rl_arena_take(arena, n);
    rl_fc_fwd(&m->proj_out, y, h, N * S * F);
    rl_permute4(yp, y, (int[]){ N, S, F, C }, (int[]){ 0, 2, 3, 1 });
    rl_add_fwd(out, yp, x, n);
    if (!train) rl_arena_reset(arena, mk);
}

void rl_motion_bwd(const rl_motion *m, const rl_motion *g, const rl_motion_acts *a,
                   rl_arena *arena, float *dx, const float *dout, const float *x, int N, int F,
                   int H, int W)
{
    const int C = m->C, I = m->inner, S = H * W, G = m->norm.G;
    const size_t n = (size_t)N * F * C * S, ni = (size_t)N * S * F * I;
    (void)x;                                   // the forward kept its permuted copy (a->xp)
    rl_arena_mark mk = rl_arena_get_mark(arena);
    if (dx) rl_add_inplace(dx, dout, n);

    // (N, F, C, S) -> (N, S, F, C), proj_out
    float *dy = rl_arena_take(arena, n);
    rl_permute4(dy, dout, (int[]){ N, F, C, S }, (int[]){ 0, 3, 1, 2 });
    const float *hl = a->h[m->n_blocks - 1];
    float *dh = rl_arena_take_zeros(arena, ni);
    rl_fc_bwd(&m->proj_out, g ? &g->proj_out : NULL, dh, dy, hl, N * S * F);
    dh = rl_tblock_stack_bwd(m->blocks, g ? g->blocks : NULL, m->n_blocks, a->h, a->blocks, arena,
                             NULL, dh, a->seq, NULL, N * S, F, F, 1);
    float *dgs = rl_arena_take_zeros(arena, n), *dgn = rl_arena_take(arena, n);
    float *dxp = rl_arena_take_zeros(arena, n);
    rl_fc_bwd(&m->proj_in, g ? &g->proj_in : NULL, dgs, dh, a->gs, N * S * F);
    rl_permute4(dgn, dgs, (int[]){ N, S, F, C }, (int[]){ 0, 3, 2, 1 });
    rl_groupnorm_bwd(dxp, g ? (float *)g->norm.w : NULL, g ? (float *)g->norm.b : NULL, dgn, a->xp,
                     a->gn_mean, a->gn_rstd, m->norm.w, N, C, F * S, G);
    if (dx) {
        float *t = rl_arena_take(arena, n);
        rl_permute4(t, dxp, (int[]){ N, C, F, S }, (int[]){ 0, 2, 1, 3 });
        rl_add_inplace(dx, t, n);
    }
    rl_arena_reset(arena, mk);
}

// ---- memory plans (mirrors of the allocations above; see rl_plan in core/layers.h) ---------

void rl_motion_plan_fwd(const rl_motion *m, rl_plan *p, int train, int N, int F, int H, int W)
{
    const size_t mk = p->used, n = (size_t)N * F * m->C * H * W;
    const size_t ni = (size_t)N * H * W * F * m->inner;
    rl_plan_floats(p, ni);                                       // seq
    const size_t mt = p->used;
    rl_plan_floats(p, n);                                        // xp, gn, mean, rstd, gs
    rl_plan_floats(p, n);
    rl_plan_floats(p, (size_t)N * m->norm.G);
    rl_plan_floats(p, (size_t)N * m->norm.G);
    rl_plan_floats(p, n);
    if (!train) p->used = mt;
    rl_tblock_stack_plan_fwd(m->blocks, m->n_blocks, p, train, 0, N * H * W, F, F, 1);
    rl_plan_floats(p, n);                                        // y, yp
    rl_plan_floats(p, n);
    if (!train) p->used = mk;
}

void rl_motion_plan_bwd(const rl_motion *m, rl_plan *p, int N, int F, int H, int W)
{
    const size_t mk = p->used, n = (size_t)N * F * m->C * H * W;
    const size_t ni = (size_t)N * H * W * F * m->inner;
    rl_plan_floats(p, n);                                        // dy, dh
    rl_plan_floats(p, ni);
    rl_tblock_stack_plan_bwd(m->blocks, m->n_blocks, p, 0, N * H * W, F, F, 1);
    rl_plan_floats(p, n);                                        // dgs, dgn, dxp, t
    rl_plan_floats(p, n);
    rl_plan_floats(p, n);
    rl_plan_floats(p, n);
    p->used = mk;
}
