/* core/layers_plan.c - memory plans of the layers in core/layers.c (rl_plan, see layers.h):
 * ggml's measure-then-allocate. Each function mirrors the arena allocations of the call it is
 * named after, in the same order, with the same marks: keep them in step with layers.c
 * (tests/test_unet.c checks the UNet's plan against the arena's measured peak, to the byte). */
#include "core/layers.h"

#include "core/ops.h"

#define PLAN_ALIGN 64

void rl_plan_bytes(rl_plan *p, size_t n)
{
    size_t need = (n + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;   // as rl_arena_bytes
    p->used += need ? need : PLAN_ALIGN;
    if (p->used > p->peak) p->peak = p->used;
}

void rl_plan_floats(rl_plan *p, size_t n) { rl_plan_bytes(p, (n ? n : 1) * sizeof(float)); }

void rl_conv_plan(const rl_conv *l, rl_plan *p, int B, int H, int W)
{
    const size_t m = p->used;
    rl_plan_floats(p, rl_conv_scratch_floats(l, B, H, W, p->n_threads));
    p->used = m;
}

void rl_resnet_plan_fwd(const rl_resnet *r, rl_plan *p, int train, int B, int H, int W)
{
    const size_t m = p->used, ni = (size_t)B * r->C * H * W, no = (size_t)B * r->OC * H * W;
    rl_plan_floats(p, no);                                       // h1
    size_t mt = p->used;
    rl_plan_floats(p, ni);                                       // n1, mean1, rstd1
    rl_plan_floats(p, (size_t)B * r->norm1.G);
    rl_plan_floats(p, (size_t)B * r->norm1.G);
    if (train) rl_plan_floats(p, ni);                            // a1
    rl_conv_plan(&r->conv1, p, B, H, W);
    if (r->Ct > 0) {
        rl_plan_floats(p, (size_t)B * r->Ct);                    // ta, t
        rl_plan_floats(p, (size_t)B * r->OC);
    }
    if (!train) p->used = mt;
    rl_plan_floats(p, no);                                       // h2
    mt = p->used;
    rl_plan_floats(p, no);                                       // n2, mean2, rstd2
    rl_plan_floats(p, (size_t)B * r->norm2.G);
    rl_plan_floats(p, (size_t)B * r->norm2.G);
    if (train) rl_plan_floats(p, no);                            // a2
    rl_conv_plan(&r->conv2, p, B, H, W);
    if (!train) p->used = mt;
    if (r->has_shortcut) rl_conv_plan(&r->conv_shortcut, p, B, H, W);
    if (!train) p->used = m;
}

void rl_resnet_plan_bwd(const rl_resnet *r, rl_plan *p, int B, int H, int W)
{
    const size_t m = p->used, ni = (size_t)B * r->C * H * W, no = (size_t)B * r->OC * H * W;
    if (r->out_scale != 1.0f) rl_plan_floats(p, no);
    if (r->has_shortcut) rl_conv_plan(&r->conv_shortcut, p, B, H, W);
    for (int i = 0; i < 3; i++) rl_plan_floats(p, no);           // da2, dn2, dh1
    rl_conv_plan(&r->conv2, p, B, H, W);
    if (r->Ct > 0) {
        rl_plan_floats(p, (size_t)B * r->OC);                    // dt, dta
        rl_plan_floats(p, (size_t)B * r->Ct);
    }
    rl_plan_floats(p, ni);                                       // da1, dn1
    rl_plan_floats(p, ni);
    rl_conv_plan(&r->conv1, p, B, H, W);
    p->used = m;
}

// attn_core: self-attention when !cross (Tk = Tq, one batch per query batch)
static void attn_core_plan(const rl_attention *l, rl_plan *p, int train, int cross, int B, int Tq,
                           int Tk, int ctx_rep)
{
    const int inner = l->NH * l->HS;
    if (!cross) { Tk = Tq; ctx_rep = 1; }
    const int Bk = B / ctx_rep, Tqk = ctx_rep * Tq;
    rl_plan_floats(p, (size_t)B * Tq * inner);                   // q, k, v, o
    rl_plan_floats(p, (size_t)Bk * Tk * inner);
    rl_plan_floats(p, (size_t)Bk * Tk * inner);
    rl_plan_floats(p, (size_t)B * Tq * inner);
    if (train) {
        rl_plan_floats(p, (size_t)B * l->NH * Tq * Tk);          // att
    } else {
        const size_t m = p->used;
        rl_plan_floats(p, rl_attn_chunked_scratch_floats(Tqk, Tk, l->HS, RL_ATTN_CHUNK,
                                                          p->n_threads));
        p->used = m;
    }
}

// the plan assumes K and V need gradients (an upper bound when they do not)
static void attn_core_bwd_plan(const rl_attention *l, rl_plan *p, int cross, int B, int Tq, int Tk,
                               int ctx_rep)
{
    const int inner = l->NH * l->HS;
    if (!cross) { Tk = Tq; ctx_rep = 1; }
    const int Bk = B / ctx_rep, Tqk = ctx_rep * Tq;
    const size_t m = p->used;
    rl_plan_floats(p, (size_t)B * Tq * inner);                   // dO, dq, dk, dv
    rl_plan_floats(p, (size_t)B * Tq * inner);
    rl_plan_floats(p, (size_t)Bk * Tk * inner);
    rl_plan_floats(p, (size_t)Bk * Tk * inner);
    rl_plan_floats(p, rl_attn_bwd_scratch_floats(Tqk, Tk, p->n_threads));
    p->used = m;
}

void rl_tblock_plan_fwd(const rl_tblock *l, rl_plan *p, int train, int cross, int B, int T, int Tk,
                        int ctx_rep)
{
    const size_t m = p->used, n = (size_t)B * T * l->C;
    const int cross2 = cross && !l->attn2_self;
    if (l->pe_len > 0 && !l->pe) rl_plan_floats(p, (size_t)T * l->C);
    if (!train) {
        rl_plan_floats(p, n);                                    // nb, y, mean, rstd
        rl_plan_floats(p, n);
        rl_plan_floats(p, (size_t)B * T);
        rl_plan_floats(p, (size_t)B * T);
        size_t mt = p->used;
        attn_core_plan(&l->attn1, p, 0, 0, B, T, T, 1);
        p->used = mt;
        if (l->has_attn2) {
            attn_core_plan(&l->attn2, p, 0, cross2, B, T, Tk, ctx_rep);
            p->used = mt;
        }
        const int R = rl_ff_chunk_rows(&l->ff, B * T);              // ff: p, g chunks
        rl_plan_floats(p, (size_t)R * 2 * l->ff.I);
        rl_plan_floats(p, (size_t)R * l->ff.I);
        p->used = m;
        return;
    }
    rl_plan_floats(p, n);                                        // n1, mean1, rstd1
    rl_plan_floats(p, (size_t)B * T);
    rl_plan_floats(p, (size_t)B * T);
    rl_plan_floats(p, n);                                        // y
    attn_core_plan(&l->attn1, p, 1, 0, B, T, T, 1);
    rl_plan_floats(p, n);                                        // h1
    if (l->has_attn2) {
        rl_plan_floats(p, n);                                    // n2, mean2, rstd2
        rl_plan_floats(p, (size_t)B * T);
        rl_plan_floats(p, (size_t)B * T);
        attn_core_plan(&l->attn2, p, 1, cross2, B, T, Tk, ctx_rep);
        rl_plan_floats(p, n);                                    // h2
    }
    rl_plan_floats(p, n);                                        // n3, mean3, rstd3
    rl_plan_floats(p, (size_t)B * T);
    rl_plan_floats(p, (size_t)B * T);
    rl_plan_floats(p, (size_t)B * T * 2 * l->ff.I);              // ff: p, g
    rl_plan_floats(p, (size_t)B * T * l->ff.I);
}

void rl_tblock_plan_bwd(const rl_tblock *l, rl_plan *p, int cross, int B, int T, int Tk,
                        int ctx_rep)
{
    const size_t m = p->used, n = (size_t)B * T * l->C;
    rl_plan_floats(p, n);                                        // dh, dn
    rl_plan_floats(p, n);
    const size_t mf = p->used;                                   // ff: dg, dp
    rl_plan_floats(p, (size_t)B * T * l->ff.I);
    rl_plan_floats(p, (size_t)B * T * 2 * l->ff.I);
    p->used = mf;
    if (l->has_attn2)
        attn_core_bwd_plan(&l->attn2, p, cross && !l->attn2_self, B, T, Tk, ctx_rep);
    attn_core_bwd_plan(&l->attn1, p, 0, B, T, T, 1);
    p->used = m;
}

void rl_tblock_stack_plan_fwd(const rl_tblock *blocks, int n, rl_plan *p, int train, int cross,
                              int B, int T, int Tk, int ctx_rep)
{
    if (train) {
        rl_plan_bytes(p, (size_t)n * sizeof(float *));
        rl_plan_bytes(p, (size_t)n * sizeof(rl_tblock_acts));
    }
    for (int i = 0; i < n; i++) {
        if (train || i == 0) rl_plan_floats(p, (size_t)B * T * blocks[i].C);   // hb
        rl_tblock_plan_fwd(&blocks[i], p, train, cross, B, T, Tk, ctx_rep);
    }
}

void rl_tblock_stack_plan_bwd(const rl_tblock *blocks, int n, rl_plan *p, int cross, int B, int T,
                              int Tk, int ctx_rep)
{
    rl_plan_floats(p, (size_t)B * T * (n ? blocks->C : 0));     // din
    for (int i = n - 1; i >= 0; i--) rl_tblock_plan_bwd(&blocks[i], p, cross, B, T, Tk, ctx_rep);
}

void rl_xformer_plan_fwd(const rl_xformer *l, rl_plan *p, int train, int B, int H, int W, int Tk,
                         int ctx_rep)
{
    const int S = H * W;
    const size_t m = p->used, nc = (size_t)B * l->C * S, ni = (size_t)B * S * l->inner;
    rl_plan_floats(p, ni);                                       // seq
    const size_t mt = p->used;
    rl_plan_floats(p, nc);                                       // n, mean, rstd
    rl_plan_floats(p, (size_t)B * l->norm.G);
    rl_plan_floats(p, (size_t)B * l->norm.G);
    if (l->linear) {
        rl_plan_floats(p, nc);
    } else {
        rl_plan_floats(p, ni);
        rl_conv_plan(&l->proj_in_c, p, B, H, W);
    }
    if (!train) p->used = mt;
    rl_tblock_stack_plan_fwd(l->blocks, l->n_blocks, p, train, 1, B, S, Tk, ctx_rep);
    if (l->linear) {
        rl_plan_floats(p, nc);
    } else {
        rl_plan_floats(p, ni);
        rl_conv_plan(&l->proj_out_c, p, B, H, W);
    }
    if (!train) p->used = m;
}

void rl_xformer_plan_bwd(const rl_xformer *l, rl_plan *p, int B, int H, int W, int Tk, int ctx_rep)
{
    const int S = H * W;
    const size_t m = p->used, nc = (size_t)B * l->C * S, ni = (size_t)B * S * l->inner;
    rl_plan_floats(p, ni);                                       // dh
    if (l->linear) {
        rl_plan_floats(p, nc);
    } else {
        rl_plan_floats(p, ni);
        rl_plan_floats(p, ni);
        rl_conv_plan(&l->proj_out_c, p, B, H, W);
    }
    rl_tblock_stack_plan_bwd(l->blocks, l->n_blocks, p, 1, B, S, Tk, ctx_rep);
    rl_plan_floats(p, nc);                                       // dn
    if (l->linear) {
        rl_plan_floats(p, nc);
        rl_plan_floats(p, nc);
    } else {
        rl_plan_floats(p, ni);
        rl_conv_plan(&l->proj_in_c, p, B, H, W);
    }
    p->used = m;
}

void rl_upsample_plan_fwd(const rl_upsample *l, rl_plan *p, int train, int B, int Ho, int Wo)
{
    const size_t m = p->used;
    rl_plan_floats(p, (size_t)B * l->conv.C * Ho * Wo);          // up
    rl_conv_plan(&l->conv, p, B, Ho, Wo);
    if (!train) p->used = m;
}

void rl_upsample_plan_bwd(const rl_upsample *l, rl_plan *p, int B, int H, int W)
{
    const size_t m = p->used;
    rl_plan_floats(p, (size_t)B * l->conv.C * 4 * H * W);        // dup
    rl_conv_plan(&l->conv, p, B, 2 * H, 2 * W);
    p->used = m;
}
