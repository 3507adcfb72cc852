/* tests/layer_fixture.h - shared by the layer and model tests (test_layers.c, test_motion.c,
 * test_unet.c, test_clip.c, test_vae.c): a weights table from a layer fixture's tensors, a
 * zeroed gradient mirror of it, binding a layer and its mirror, the parity check, and finite
 * differences on a named parameter. */
#ifndef RL_TESTS_LAYER_FIXTURE_H
#define RL_TESTS_LAYER_FIXTURE_H

#include <math.h>
#include <string.h>

#include "core/weights.h"
#include "tests/harness.h"

/* Binds layer l to the table ws and its gradient mirror g to gs with
 * bind(layer, table, prefix, cfg, err), and checks that l used every tensor of ws. Evaluates
 * to 1, or records the failure with err's message and evaluates to 0. */
#define LF_BIND(t, bind, l, g, ws, gs, prefix, cfg, err)                                     \
    ((RL_CHECK(t, bind(l, ws, prefix, cfg, err) == RL_OK) &&                                \
      RL_CHECK(t, rl_weights_check_all_used(ws, NULL, err) == RL_OK) &&                     \
      RL_CHECK(t, bind(g, gs, prefix, cfg, err) == RL_OK)) ||                               \
     (rl_test_fail(t, "bind: %s", (err)->msg), 0))

/* Tensors of a layer fixture that are inputs/outputs, not module weights. */
__attribute__((unused)) static int lf_is_io(const char *name)
{
    static const char *io[] = { "x", "temb", "emb", "out", "dout", "dx", "dtemb", "demb", "t", NULL };
    for (int i = 0; io[i]; i++)
        if (!strcmp(name, io[i])) return 1;
    return !strncmp(name, "grad.", 5);
}

/* ws <- every weight tensor of the fixture (as F32); gs <- zeroed buffers of the same names. */
__attribute__((unused)) static int lf_tables(rl_test *t, rl_fixture *fx, rl_weights *ws, rl_weights *gs)
{
    rl_err err = { 0 };
    rl_weights_init(ws, "fixture");
    if (gs) rl_weights_init(gs, "grads");
    for (int i = 0; i < fx->st.n_tensors; i++) {
        const rl_st_tensor *te = &fx->st.tensors[i];
        if (lf_is_io(te->name)) continue;
        float *d = (float *)rl_fixture_f32(fx, te->name, 0, NULL);
        if (!d || rl_weights_add(ws, te->name, te->ndim, te->shape, d, &err) ||
            (gs && rl_weights_add_new(gs, te->name, te->ndim, te->shape, NULL, &err))) {
            rl_test_fail(t, "table: %s", err.msg);
            return 0;
        }
    }
    return 1;
}

/* The parity bar of the brief: max |got - want| <= tol * max |want|. A reference that is zero
 * in exact arithmetic (the gradient of a key bias: softmax ignores a constant shift) has no
 * scale of its own; 1e-2 stands in for it, so float32 rounding (~1e-7 there) passes. */
__attribute__((unused)) static int lf_check(rl_test *t, const char *name, const float *got, const float *want, size_t n,
                    double tol)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    return rl_check_close(t, name, got, want, n, tol * fmax(mx, 1e-2), 0);
}

/* Compares every grad.<name> of the fixture with the mirror table gs. */
__attribute__((unused)) static void lf_check_grads(rl_test *t, rl_fixture *fx, const rl_weights *gs, double tol)
{
    for (int i = 0; i < fx->st.n_tensors; i++) {
        const rl_st_tensor *te = &fx->st.tensors[i];
        if (strncmp(te->name, "grad.", 5)) continue;
        const rl_weight *g = rl_weights_find(gs, te->name + 5);
        if (!g) { rl_test_fail(t, "no gradient for '%s'", te->name + 5); continue; }
        const float *want = rl_fixture_f32(fx, te->name, 0, NULL);
        if (want) lf_check(t, te->name, g->data, want, rl_weight_numel(g), tol);
    }
}

/* rl_check_grad_fd on the parameter `name` of ws (perturbed in place) against its gradient in
 * the mirror gs. Returns -1, checking nothing, when either table lacks the name. */
__attribute__((unused)) static int lf_check_grad_fd(rl_test *t, const rl_weights *ws,
                                                    const rl_weights *gs, const char *name,
                                                    double (*loss)(void *ctx), void *ctx,
                                                    int n_samples, double h, double atol,
                                                    double rtol)
{
    const rl_weight *p = rl_weights_find(ws, name), *q = rl_weights_find(gs, name);
    if (!p || !q) return -1;
    return rl_check_grad_fd(t, name, loss, ctx, p->data, q->data, rl_weight_numel(p), n_samples,
                            h, atol, rtol);
}

#endif
