/* tests/test_clip.c - CLIP text encoder against tools/fixtures/make_clip.py (float64 torch
 * reference of transformers' CLIPTextModel): last_hidden_state, every parameter gradient,
 * finite differences, thread invariance; config.json parsing and its errors. */
#include <math.h>
#include <string.h>

#include "core/clip.h"
#include "core/par.h"
#include "io/config_clip.h"
#include "io/weights_io.h"
#include "tests/harness.h"
#include "tests/layer_fixture.h"

typedef struct {
    rl_clip m;
    rl_clip_acts a;
    rl_arena arena;
    const int *ids;
    const float *dout;
    float *out;
    int B, L, D;
} clip_run;

static void run_fwd(void *ctx, float *out)
{
    clip_run *r = ctx;
    rl_clip_fwd(&r->m, &r->a, out, r->ids, r->B, r->L);
}

/* sum(out * dout) in double: the scalar whose gradients the fixture holds. */
static double loss(void *ctx)
{
    clip_run *r = ctx;
    rl_clip_fwd(&r->m, &r->a, r->out, r->ids, r->B, r->L);
    double s = 0;
    for (size_t i = 0; i < (size_t)r->B * r->L * r->D; i++) s += (double)r->out[i] * r->dout[i];
    return s;
}

/* Copies every tensor of src under prefix into fresh owned buffers of dst (writable, for
 * finite differences) or zeroed ones (zero = 1, gradient mirror). */
static int copy_table(rl_test *t, rl_weights *dst, const rl_weights *src, const char *prefix,
                      int zero)
{
    rl_err err = { 0 };
    for (int i = 0; i < src->n; i++) {
        const rl_weight *w = &src->w[i];
        if (strncmp(w->name, prefix, strlen(prefix)) != 0) continue;
        float *data;
        if (rl_weights_add_new(dst, w->name, w->ndim, w->shape, &data, &err)) {
            rl_test_fail(t, "copy %s: %s", w->name, err.msg);
            return 0;
        }
        if (!zero) memcpy(data, w->data, rl_weight_numel(w) * sizeof(float));
    }
    return 1;
}

static void test_fixture(rl_test *t, const char *rel)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, rel)) return;
    rl_err err = { 0 };
    rl_weights file, ws, gs;
    rl_weights_init(&file, rel);
    rl_weights_init(&ws, "params");
    rl_weights_init(&gs, "grads");
    clip_run r = { 0 };
    rl_clip g = { 0 };
    rl_arena_init(&r.arena, 0);

    // config from the metadata string, exactly as text_encoder/config.json would hold it
    const char *cfg_text = rl_fixture_str(&fx, "config");
    rl_json j = { 0 };
    rl_clip_cfg cfg;
    if (!RL_CHECK(t, rl_json_parse(&j, cfg_text, strlen(cfg_text), "config", &err) == RL_OK &&
                     rl_clip_cfg_parse(&cfg, &j, &err) == RL_OK)) {
        rl_test_fail(t, "%s", err.msg);
        goto done;
    }
    const int B = rl_fixture_int(&fx, "B"), L = rl_fixture_int(&fx, "L");
    const int D = cfg.hidden_size;
    r.B = B; r.L = L; r.D = D;

    if (rl_weights_load_st(&file, rl_test_fixture_path(t, rel), NULL, &err) ||
        !copy_table(t, &ws, &file, "text_model.", 0) || !copy_table(t, &gs, &file, "text_model.", 1)) {
        rl_test_fail(t, "load: %s", err.msg);
        goto done;
    }
    if (!LF_BIND(t, rl_clip_bind, &r.m, &g, &ws, &gs, "text_model", &cfg, &err)) goto done;

    size_t n_ids;
    const int64_t *ids64 = rl_fixture_i64(&fx, "ids", &n_ids);
    if (!ids64 || !RL_CHECK(t, n_ids == (size_t)B * L)) goto done;
    int *ids = rl_test_alloc(t, n_ids * sizeof(int));
    for (size_t i = 0; i < n_ids; i++) ids[i] = (int)ids64[i];
    r.ids = ids;
    RL_CHECK(t, rl_clip_check_ids(&r.m, ids, B, L, &err) == RL_OK);

    const size_t n = (size_t)B * L * D;
    const float *want = rl_fixture_f32(&fx, "out", 3, (int[]){ B, L, D });
    r.dout = rl_fixture_f32(&fx, "dout", 3, (int[]){ B, L, D });
    if (!want || !r.dout) goto done;
    r.out = rl_test_floats(t, n);

    // inference plan (one shared set of layer buffers) and training plan must agree bitwise
    rl_clip_plan(&r.m, &r.a, &r.arena, B, L, 0);
    if (!RL_CHECK(t, rl_arena_check(&r.arena, &err) == RL_OK)) goto done;
    float *out_inf = rl_test_floats(t, n);
    rl_clip_fwd(&r.m, &r.a, out_inf, ids, B, L);
    rl_clip_plan(&r.m, &r.a, &r.arena, B, L, 1);
    rl_clip_fwd(&r.m, &r.a, r.out, ids, B, L);
    // float32 through layer norms and a softmax over <= 11 keys; outputs are O(1) after the
    // final layer norm
    rl_check_close(t, "last_hidden_state", r.out, want, n, 2e-5, 2e-5);
    rl_check_bitwise(t, "keep=0 vs keep=1", out_inf, r.out, n);

    // backward: every parameter gradient against autograd in float64
    rl_clip_bwd(&r.m, &g, &r.a, &r.arena, r.dout, ids, B, L);
    for (int i = 0; i < gs.n; i++) {
        char name[300];
        snprintf(name, sizeof name, "grad.%s", gs.w[i].name);
        const rl_weight *e = rl_weights_find(&file, name);
        if (!e) { rl_test_fail(t, "fixture lacks %s", name); continue; }
        // gradients sum over B*L tokens in float32
        rl_check_close(t, gs.w[i].name + strlen("text_model."), gs.w[i].data, e->data,
                       rl_weight_numel(e), 1e-4, 1e-4);
    }

    // finite differences on a few tensors (float32 forward: h = 1e-2 keeps truncation and
    // rounding both near 1e-4 of an O(1) loss)
    const char *fd_names[] = { "text_model.embeddings.token_embedding.weight",
                               "text_model.encoder.layers.0.self_attn.q_proj.weight",
                               "text_model.encoder.layers.0.mlp.fc1.bias",
                               "text_model.final_layer_norm.weight" };
    for (size_t i = 0; i < sizeof fd_names / sizeof fd_names[0]; i++)
        if (lf_check_grad_fd(t, &ws, &gs, fd_names[i], loss, &r, 24, 1e-2, 2e-3, 2e-2) < 0)
            rl_test_fail(t, "no tensor %s", fd_names[i]);

    rl_check_threads_bitwise(t, "clip fwd", run_fwd, &r, n);

done:
    rl_json_free(&j);
    rl_clip_free(&r.m);
    rl_clip_free(&g);
    rl_arena_free(&r.arena);
    rl_weights_free(&gs);
    rl_weights_free(&ws);
    rl_weights_free(&file);
    rl_fixture_close(&fx);
}

/* config.json errors: each must fail with the right code and name the key. */
static void test_config_errors(rl_test *t, const char *arg)
{
    static const struct { const char *json; rl_status code; const char *needle; } cases[] = {
        { "{\"vocab_size\": 10, \"intermediate_size\": 8, \"num_hidden_layers\": 1, "
          "\"num_attention_heads\": 2, \"max_position_embeddings\": 5}",
          RL_E_MISSING, "hidden_size" },
        { "{\"vocab_size\": 10, \"hidden_size\": \"8\", \"intermediate_size\": 8, "
          "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"max_position_embeddings\": 5}",
          RL_E_FORMAT, "hidden_size" },
        { "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, "
          "\"num_hidden_layers\": 1, \"num_attention_heads\": 3, \"max_position_embeddings\": 5}",
          RL_E_FORMAT, "num_attention_heads" },
        { "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, "
          "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"max_position_embeddings\": 5, "
          "\"hidden_act\": \"mish\"}", RL_E_FORMAT, "hidden_act" },
        { "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, "
          "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"max_position_embeddings\": 0}",
          RL_E_FORMAT, "max_position_embeddings" },
        { "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, "
          "\"num_hidden_layers\": 1.5, \"num_attention_heads\": 2, \"max_position_embeddings\": 5}",
          RL_E_FORMAT, "num_hidden_layers" },
        { "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, "
          "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"max_position_embeddings\": 5, "
          "\"layer_norm_eps\": -1}", RL_E_FORMAT, "layer_norm_eps" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rl_err err = { 0 };
        rl_json j = { 0 };
        rl_clip_cfg cfg;
        rl_status rc = rl_json_parse(&j, cases[i].json, strlen(cases[i].json), "config.json", &err);
        if (rc == RL_OK) rc = rl_clip_cfg_parse(&cfg, &j, &err);
        rl_test_check(t, rc == cases[i].code && strstr(err.msg, cases[i].needle) &&
                      strstr(err.msg, "config.json"),
                      "case %zu: %s (%s) -> %s: %s", i, rl_status_str(cases[i].code),
                      cases[i].needle, rl_status_str(rc), err.msg);
        rl_json_free(&j);
    }

    // defaults and the nested CLIPConfig form
    const char *ok = "{\"text_config\": {\"vocab_size\": 10, \"hidden_size\": 8, "
                     "\"intermediate_size\": 8, \"num_hidden_layers\": 1, "
                     "\"num_attention_heads\": 2, \"max_position_embeddings\": 5}}";
    rl_err err = { 0 };
    rl_json j = { 0 };
    rl_clip_cfg cfg = { 0 };
    rl_status rc = rl_json_parse(&j, ok, strlen(ok), "config.json", &err);
    if (rc == RL_OK) rc = rl_clip_cfg_parse(&cfg, &j, &err);
    rl_test_check(t, rc == RL_OK && cfg.hidden_size == 8 &&
                  cfg.hidden_act == RL_CLIP_ACT_QUICK_GELU && cfg.layer_norm_eps == 1e-5f &&
                  cfg.eos_token_id == 49407, "nested text_config with defaults: %s", err.msg);
    rl_json_free(&j);
}

/* Ids outside the vocabulary and sequences longer than the position table are refused. */
static void test_bad_ids(rl_test *t, const char *arg)
{
    rl_clip m = { .cfg = { .vocab_size = 10, .max_position_embeddings = 4 } };
    rl_err err = { 0 };
    int ids[5] = { 1, 2, 3, 10, 0 };
    rl_test_check(t, rl_clip_check_ids(&m, ids, 1, 4, &err) == RL_E_PARAM, "id 10: %s", err.msg);
    ids[3] = -1;
    rl_test_check(t, rl_clip_check_ids(&m, ids, 1, 4, &err) == RL_E_PARAM, "id -1: %s", err.msg);
    ids[3] = 9;
    rl_test_check(t, rl_clip_check_ids(&m, ids, 1, 5, &err) == RL_E_PARAM, "L 5: %s", err.msg);
    RL_CHECK(t, rl_clip_check_ids(&m, ids, 1, 4, &err) == RL_OK);
}

/* The text encoder of a model folder against the pyref's transformers run
 * (tools/fixtures/make_pipeline.py): ids (B, L) -> last_hidden_state. */
static void test_model(rl_test *t, const char *model)
{
    char rel[256], path[600];
    snprintf(rel, sizeof rel, "pipeline/%s_clip.safetensors", model);
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, rel)) return;
    rl_err err = { 0 };
    rl_weights ws;
    snprintf(path, sizeof path, "%s/%s/text_encoder/model.safetensors",
             rl_test_fixture_path(t, "models"), model);
    rl_weights_init(&ws, path);
    rl_clip m = { 0 };
    rl_clip_acts a;
    rl_clip_cfg cfg;
    rl_arena arena;
    rl_arena_init(&arena, 0);
    snprintf(path, sizeof path, "%s/%s/text_encoder/config.json",
             rl_test_fixture_path(t, "models"), model);
    if (rl_clip_cfg_load(&cfg, path, &err) || rl_weights_load_st(&ws, ws.label, NULL, &err) ||
        rl_clip_bind(&m, &ws, "text_model", &cfg, &err) ||
        rl_weights_check_all_used(&ws, NULL, &err)) {
        rl_test_fail(t, "%s", err.msg);
        goto done;
    }
    const int B = rl_fixture_int(&fx, "B"), L = rl_fixture_int(&fx, "L"), D = rl_fixture_int(&fx, "D");
    size_t n_ids;
    const int64_t *ids64 = rl_fixture_i64(&fx, "ids", &n_ids);
    const float *want = rl_fixture_f32(&fx, "hidden", 3, (int[]){ B, L, D });
    if (!ids64 || !want || !RL_CHECK(t, n_ids == (size_t)B * L && D == cfg.hidden_size)) goto done;
    int *ids = rl_test_alloc(t, n_ids * sizeof(int));
    for (size_t i = 0; i < n_ids; i++) ids[i] = (int)ids64[i];
    if (!RL_CHECK(t, rl_clip_check_ids(&m, ids, B, L, &err) == RL_OK)) goto done;
    float *out = rl_test_floats(t, n_ids * D);
    rl_clip_plan(&m, &a, &arena, B, L, 0);
    rl_clip_fwd(&m, &a, out, ids, B, L);
    // the pipeline contract: within 1e-4 of the largest |value| (O(1) after the final norm)
    double mx = 0;
    for (size_t i = 0; i < n_ids * D; i++) mx = fmax(mx, fabs(want[i]));
    rl_check_close(t, "last_hidden_state", out, want, n_ids * D, 1e-4 * mx, 0);
done:
    rl_clip_free(&m);
    rl_arena_free(&arena);
    rl_weights_free(&ws);
    rl_fixture_close(&fx);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "quickgelu", test_fixture, "clip/clip_quickgelu.safetensors" },
        { "gelu", test_fixture, "clip/clip_gelu.safetensors" },
        { "gelunew", test_fixture, "clip/clip_gelunew.safetensors" },
        { "tiny_a", test_model, "tiny_a" },
        { "tiny_b", test_model, "tiny_b" },
        { "config_errors", test_config_errors, NULL },
        { "bad_ids", test_bad_ids, NULL },
        { 0 },
    });
}
