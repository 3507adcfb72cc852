/* core/clip.c - CLIP text encoder (transformers CLIPTextModel), see clip.h.
 *
 * The layer is the pre-norm transformer of CLIPEncoderLayer:
 *   res1 = x + out_proj(attn(q_proj(ln1(x)), k_proj(.), v_proj(.)))   causal, scale HS^-0.5
 *   res2 = res1 + fc2(act(fc1(ln2(res1))))
 * and last_hidden_state = final_layer_norm(res2 of the last layer). */
#include "core/clip.h"

#include <math.h>
#include <string.h>

#include "core/ops.h"
#include "core/par.h"

// ---- binding ------------------------------------------------------------------------

/* Looks up "<prefix>.<name>" (or "<name>" with an empty prefix) with the given shape. */
static rl_status get(rl_weights *ws, const char *prefix, const char *name, const float **out,
                     rl_err *err, int ndim, int64_t d0, int64_t d1)
{
    const int64_t shape[2] = { d0, d1 };
    if (prefix && prefix[0])
        return rl_weights_getf(ws, out, err, ndim, shape, "%s.%s", prefix, name);
    return rl_weights_getf(ws, out, err, ndim, shape, "%s", name);
}

rl_status rl_clip_bind(rl_clip *m, rl_weights *ws, const char *prefix, const rl_clip_cfg *cfg,
                       rl_err *err)
{
    rl_status rc;
    const int D = cfg->hidden_size, I = cfg->intermediate_size;
    *m = (rl_clip){ .cfg = *cfg };

    if ((rc = get(ws, prefix, "embeddings.token_embedding.weight", &m->tok_emb, err, 2,
                  cfg->vocab_size, D))) return rc;
    if ((rc = get(ws, prefix, "embeddings.position_embedding.weight", &m->pos_emb, err, 2,
                  cfg->max_position_embeddings, D))) return rc;

    if (cfg->num_hidden_layers > 0) {
        m->layers = calloc((size_t)cfg->num_hidden_layers, sizeof *m->layers);
        if (!m->layers)
            return rl_errf(err, RL_E_NOMEM, "clip: cannot allocate %d layers",
                           cfg->num_hidden_layers);
    }
    for (int i = 0; i < cfg->num_hidden_layers; i++) {
        rl_clip_layer *l = &m->layers[i];
        char p[256];
        rl_weights_name(p, sizeof p, prefix, "encoder.layers.%d", i);
        struct { const char *name; const float **dst; int ndim; int64_t d0, d1; } t[] = {
            { "layer_norm1.weight", &l->ln1_w, 1, D, 0 },
            { "layer_norm1.bias", &l->ln1_b, 1, D, 0 },
            { "self_attn.q_proj.weight", &l->q_w, 2, D, D },
            { "self_attn.q_proj.bias", &l->q_b, 1, D, 0 },
            { "self_attn.k_proj.weight", &l->k_w, 2, D, D },
            { "self_attn.k_proj.bias", &l->k_b, 1, D, 0 },
            { "self_attn.v_proj.weight", &l->v_w, 2, D, D },
            { "self_attn.v_proj.bias", &l->v_b, 1, D, 0 },
            { "self_attn.out_proj.weight", &l->o_w, 2, D, D },
            { "self_attn.out_proj.bias", &l->o_b, 1, D, 0 },
            { "layer_norm2.weight", &l->ln2_w, 1, D, 0 },
            { "layer_norm2.bias", &l->ln2_b, 1, D, 0 },
            { "mlp.fc1.weight", &l->fc1_w, 2, I, D },
            { "mlp.fc1.bias", &l->fc1_b, 1, I, 0 },
            { "mlp.fc2.weight", &l->fc2_w, 2, D, I },
            { "mlp.fc2.bias", &l->fc2_b, 1, D, 0 },
        };
        for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
            if ((rc = get(ws, p, t[k].name, t[k].dst, err, t[k].ndim, t[k].d0, t[k].d1)))
                return rc;
    }
    if ((rc = get(ws, prefix, "final_layer_norm.weight", &m->lnf_w, err, 1, D, 0))) return rc;
    if ((rc = get(ws, prefix, "final_layer_norm.bias", &m->lnf_b, err, 1, D, 0))) return rc;
    return RL_OK;
}

void rl_clip_free(rl_clip *m)
{
    free(m->layers);
    m->layers = NULL;
}

size_t rl_clip_n_params(const rl_clip_cfg *c)
{
    const size_t D = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    const size_t layer = 4 * D + 4 * (D * D + D) + (I * D + I) + (D * I + D);
    return ((size_t)c->vocab_size + (size_t)c->max_position_embeddings) * D +
           (size_t)c->num_hidden_layers * layer + 2 * D;
}

// ---- planning -----------------------------------------------------------------------

static void plan_layer(rl_clip_layer_acts *la, rl_arena *arena, int B, int L, int D, int I,
                       int NH)
{
    const size_t T = (size_t)B * L;
    la->ln1 = rl_arena_floats(arena, T * D);
    la->ln1_mean = rl_arena_floats(arena, T);
    la->ln1_rstd = rl_arena_floats(arena, T);
    la->q = rl_arena_floats(arena, T * D);
    la->k = rl_arena_floats(arena, T * D);
    la->v = rl_arena_floats(arena, T * D);
    la->att = rl_arena_floats(arena, (size_t)B * NH * L * L);
    la->attn_y = rl_arena_floats(arena, T * D);
    la->res1 = rl_arena_floats(arena, T * D);
    la->ln2 = rl_arena_floats(arena, T * D);
    la->ln2_mean = rl_arena_floats(arena, T);
    la->ln2_rstd = rl_arena_floats(arena, T);
    la->fc1 = rl_arena_floats(arena, T * I);
    la->h = rl_arena_floats(arena, T * I);
    la->res2 = rl_arena_floats(arena, T * D);
}

void rl_clip_plan(const rl_clip *m, rl_clip_acts *a, rl_arena *arena, int B, int L, int keep)
{
    const rl_clip_cfg *c = &m->cfg;
    const int D = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads;
    const int n = c->num_hidden_layers;
    const size_t T = (size_t)B * L;

    *a = (rl_clip_acts){ .B = B, .L = L, .keep = keep };
    a->emb = rl_arena_floats(arena, T * D);
    a->lnf_mean = rl_arena_floats(arena, T);
    a->lnf_rstd = rl_arena_floats(arena, T);
    a->layers = rl_arena_bytes(arena, (size_t)(n > 0 ? n : 1) * sizeof *a->layers);
    if (!a->layers) return;    // the arena failed; rl_arena_check reports it
    for (int i = 0; i < n; i++) {
        if (keep || i == 0) plan_layer(&a->layers[i], arena, B, L, D, I, NH);
        else a->layers[i] = a->layers[0];
    }
}

rl_status rl_clip_check_ids(const rl_clip *m, const int *ids, int B, int L, rl_err *err)
{
    if (B < 1 || L < 1 || L > m->cfg.max_position_embeddings)
        return rl_errf(err, RL_E_PARAM, "clip: %d sequences of %d tokens; the text encoder "
                       "takes 1 to %d tokens", B, L, m->cfg.max_position_embeddings);
    for (size_t i = 0; i < (size_t)B * L; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return rl_errf(err, RL_E_PARAM, "clip: token id %d at position %zu is outside "
                           "the vocabulary [0, %d)", ids[i], i, m->cfg.vocab_size);
    return RL_OK;
}

// ---- forward ------------------------------------------------------------------------

static void act_fwd(rl_clip_act act, float *out, const float *x, size_t n)
{
    switch (act) {
    case RL_CLIP_ACT_QUICK_GELU: rl_quickgelu_fwd(out, x, n); break;
    case RL_CLIP_ACT_GELU: rl_gelu_fwd(out, x, n); break;
    case RL_CLIP_ACT_GELU_TANH: rl_gelu_tanh_fwd(out, x, n); break;
    case RL_CLIP_ACT_SILU: rl_silu_fwd(out, x, n); break;
    case RL_CLIP_ACT_RELU:
        for (size_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    }
}

static void act_bwd(rl_clip_act act, float *dx, const float *dout, const float *x, size_t n)
{
    switch (act) {
    case RL_CLIP_ACT_QUICK_GELU: rl_quickgelu_bwd(dx, dout, x, n); break;
    case RL_CLIP_ACT_GELU: rl_gelu_bwd(dx, dout, x, n); break;
    case RL_CLIP_ACT_GELU_TANH: rl_gelu_tanh_bwd(dx, dout, x, n); break;
    case RL_CLIP_ACT_SILU: rl_silu_bwd(dx, dout, x, n); break;
    case RL_CLIP_ACT_RELU:   // out = max(x, 0)
        for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dout[i] : 0.0f;
        break;
    }
}

void rl_clip_fwd(const rl_clip *m, rl_clip_acts *a, float *out, const int *ids, int B, int L)
{
    const rl_clip_cfg *c = &m->cfg;
    const int D = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads;
    const int HS = D / NH, T = B * L;
    const float eps = c->layer_norm_eps, scale = 1.0f / sqrtf((float)HS);
    RL_ASSERT(a->B == B && a->L == L);

    // embeddings: token rows plus position rows 0..L-1
    rl_embed_fwd(a->emb, ids, m->tok_emb, T, D);
    for (int b = 0; b < B; b++)
        rl_add_inplace(a->emb + (size_t)b * L * D, m->pos_emb, (size_t)L * D);

    const float *x = a->emb;                 // (T, D) residual stream
    for (int i = 0; i < c->num_hidden_layers; i++) {
        const rl_clip_layer *l = &m->layers[i];
        rl_clip_layer_acts *la = &a->layers[i];

        // res1 = x + out_proj(attn(ln1(x)))
        rl_layernorm_fwd(la->ln1, la->ln1_mean, la->ln1_rstd, x, l->ln1_w, l->ln1_b, T, D, eps);
        rl_linear_fwd(la->q, la->ln1, l->q_w, l->q_b, T, D, D);
        rl_linear_fwd(la->k, la->ln1, l->k_w, l->k_b, T, D, D);
        rl_linear_fwd(la->v, la->ln1, l->v_w, l->v_b, T, D, D);
        rl_attn_fwd(la->attn_y, la->att, la->q, la->k, la->v, B, NH, L, L, HS, scale, 1);
        rl_linear_fwd(la->res1, la->attn_y, l->o_w, l->o_b, T, D, D);
        rl_add_inplace(la->res1, x, (size_t)T * D);

        // res2 = res1 + fc2(act(fc1(ln2(res1)))); with keep = 0, res2 may be x's buffer:
        // x is dead once res1 exists
        rl_layernorm_fwd(la->ln2, la->ln2_mean, la->ln2_rstd, la->res1, l->ln2_w, l->ln2_b,
                         T, D, eps);
        rl_linear_fwd(la->fc1, la->ln2, l->fc1_w, l->fc1_b, T, D, I);
        act_fwd(c->hidden_act, la->h, la->fc1, (size_t)T * I);
        rl_linear_fwd(la->res2, la->h, l->fc2_w, l->fc2_b, T, I, D);
        rl_add_inplace(la->res2, la->res1, (size_t)T * D);
        x = la->res2;
    }
    rl_layernorm_fwd(out, a->lnf_mean, a->lnf_rstd, x, m->lnf_w, m->lnf_b, T, D, eps);
}

// ---- backward -----------------------------------------------------------------------

#define W(p) ((float *)(p))    // gradient mirror: g's pointers are writable buffers

void rl_clip_bwd(const rl_clip *m, rl_clip *g, const rl_clip_acts *a, rl_arena *arena,
                 const float *dout, const int *ids, int B, int L)
{
    const rl_clip_cfg *c = &m->cfg;
    const int D = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads;
    const int HS = D / NH, T = B * L, n = c->num_hidden_layers;
    const float scale = 1.0f / sqrtf((float)HS);
    const size_t TD = (size_t)T * D, TI = (size_t)T * I;
    RL_ASSERT(a->keep && a->B == B && a->L == L);

    rl_arena_mark mark = rl_arena_get_mark(arena);
    float *dres = rl_arena_zeros(arena, TD);     // gradient of the residual stream
    float *dres1 = rl_arena_floats(arena, TD);
    float *dln = rl_arena_floats(arena, TD);
    float *dy = rl_arena_floats(arena, TD);
    float *dq = rl_arena_floats(arena, TD), *dk = rl_arena_floats(arena, TD);
    float *dv = rl_arena_floats(arena, TD);
    float *dh = rl_arena_floats(arena, TI), *dfc1 = rl_arena_floats(arena, TI);
    float *att_scratch = rl_arena_floats(arena, rl_attn_bwd_scratch_floats(L, L,
                                                                          rl_par_max_threads()));
    RL_ASSERT(dres && dres1 && dln && dy && dq && dk && dv && dh && dfc1 && att_scratch);

    // out = final_layer_norm(x_last)
    const float *x_last = n > 0 ? a->layers[n - 1].res2 : a->emb;
    rl_layernorm_bwd(dres, W(g->lnf_w), W(g->lnf_b), dout, x_last, a->lnf_mean, a->lnf_rstd,
                     m->lnf_w, T, D);

    for (int i = n - 1; i >= 0; i--) {
        const rl_clip_layer *l = &m->layers[i];
        rl_clip_layer *gl = &g->layers[i];
        const rl_clip_layer_acts *la = &a->layers[i];
        const float *x = i > 0 ? a->layers[i - 1].res2 : a->emb;

        // res2 = res1 + fc2(h), h = act(fc1), fc1 = fc1(ln2), ln2 = ln2(res1)
        memcpy(dres1, dres, TD * sizeof(float));
        memset(dh, 0, TI * sizeof(float));
        rl_linear_bwd(dh, W(gl->fc2_w), W(gl->fc2_b), dres, la->h, l->fc2_w, T, I, D);
        memset(dfc1, 0, TI * sizeof(float));
        act_bwd(c->hidden_act, dfc1, dh, la->fc1, TI);
        memset(dln, 0, TD * sizeof(float));
        rl_linear_bwd(dln, W(gl->fc1_w), W(gl->fc1_b), dfc1, la->ln2, l->fc1_w, T, D, I);
        rl_layernorm_bwd(dres1, W(gl->ln2_w), W(gl->ln2_b), dln, la->res1, la->ln2_mean,
                         la->ln2_rstd, l->ln2_w, T, D);

        // res1 = x + out_proj(y), y = attn(q, k, v), q/k/v = proj(ln1(x))
        memcpy(dres, dres1, TD * sizeof(float));
        memset(dy, 0, TD * sizeof(float));
        rl_linear_bwd(dy, W(gl->o_w), W(gl->o_b), dres1, la->attn_y, l->o_w, T, D, D);
        memset(dq, 0, TD * sizeof(float));
        memset(dk, 0, TD * sizeof(float));
        memset(dv, 0, TD * sizeof(float));
        rl_attn_bwd(dq, dk, dv, att_scratch, dy, la->att, la->q, la->k, la->v, B, NH, L, L, HS,
                    scale, 1);
        memset(dln, 0, TD * sizeof(float));
        rl_linear_bwd(dln, W(gl->q_w), W(gl->q_b), dq, la->ln1, l->q_w, T, D, D);
        rl_linear_bwd(dln, W(gl->k_w), W(gl->k_b), dk, la->ln1, l->k_w, T, D, D);
        rl_linear_bwd(dln, W(gl->v_w), W(gl->v_b), dv, la->ln1, l->v_w, T, D, D);
        rl_layernorm_bwd(dres, W(gl->ln1_w), W(gl->ln1_b), dln, x, la->ln1_mean, la->ln1_rstd,
                         l->ln1_w, T, D);
    }

    // emb = tok_emb[ids] + pos_emb[0..L-1]
    if (g->tok_emb) rl_embed_bwd(W(g->tok_emb), dres, ids, T, D, c->vocab_size);
    if (g->pos_emb)
        for (int b = 0; b < B; b++)
            rl_add_inplace(W(g->pos_emb), dres + (size_t)b * L * D, (size_t)L * D);
    rl_arena_reset(arena, mark);
}
