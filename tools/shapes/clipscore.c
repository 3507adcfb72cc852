/* tools/shapes/clipscore.c - the CLIP pair's forward (shared with tools/train_clip.c) and the
 * CLIP score of `reel eval`. See clipscore.h. */
#include "tools/shapes/clipscore.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bpe.h"
#include "core/ops.h"
#include "io/config_clip.h"
#include "io/diffusers.h"
#include "io/json.h"
#include "io/tokfiles.h"
#include "io/weights_io.h"

const int rl_clipv_ch[RL_CLIPV_NCONV + 1] = { 3 * RL_CLIPV_FRAMES, 32, 64, 64, 64 };

// ---- the pair -------------------------------------------------------------------------------

void rl_clippair_free(rl_clippair *m)
{
    rl_clip_free(&m->text);
}

rl_status rl_clippair_bind(rl_clippair *m, rl_weights *ws, const rl_clip_cfg *cfg, int P,
                           rl_err *err)
{
    char name[64];
    *m = (rl_clippair){ 0 };
    rl_status rc = rl_clip_bind(&m->text, ws, "text_model", cfg, err);
    for (int i = 0; i < RL_CLIPV_NCONV && !rc; i++) {
        snprintf(name, sizeof name, "visual.convs.%d", i);
        rc = rl_conv_bind(&m->conv[i], ws, name, rl_clipv_ch[i], rl_clipv_ch[i + 1], 3, 2, 1, 1,
                          err);
    }
    if (!rc) rc = rl_fc_bind(&m->tproj, ws, "text_projection", cfg->hidden_size, P, 0, err);
    if (!rc) rc = rl_fc_bind(&m->vproj, ws, "visual_projection", rl_clipv_ch[RL_CLIPV_NCONV], P,
                             0, err);
    if (!rc) rc = rl_weights_get(ws, "logit_scale", 1, (int64_t[]){ 1 }, &m->logit_scale, err);
    return rc;
}

int rl_clipv_keyframe(int k, int F)
{
    return k * (F - 1) / (RL_CLIPV_FRAMES - 1);
}

void rl_clipv_sides(int hs[RL_CLIPV_NCONV + 1], int H)
{
    hs[0] = H;
    for (int i = 0; i < RL_CLIPV_NCONV; i++) hs[i + 1] = (hs[i] - 1) / 2 + 1;
}

void rl_clipv_fwd(const rl_clippair *m, rl_arena *arena, float *const *c, float *const *a,
                  float *pool, float *vu, const float *x, int B, int H, int W)
{
    int hs[RL_CLIPV_NCONV + 1], ws[RL_CLIPV_NCONV + 1];
    rl_clipv_sides(hs, H);
    rl_clipv_sides(ws, W);
    // conv stack: c[i] = conv_i(a[i - 1]), a[i] = silu(c[i])
    const float *in = x;
    for (int i = 0; i < RL_CLIPV_NCONV; i++) {
        const size_t n = (size_t)B * rl_clipv_ch[i + 1] * hs[i + 1] * ws[i + 1];
        rl_conv_fwd(&m->conv[i], arena, c[i], in, B, hs[i], ws[i]);
        rl_silu_fwd(a[i], c[i], n);
        in = a[i];
    }
    // mean over space (in double, one rounding), then the projection
    const int CV = rl_clipv_ch[RL_CLIPV_NCONV];
    const int S = hs[RL_CLIPV_NCONV] * ws[RL_CLIPV_NCONV];
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < CV; ch++) {
            double s = 0;
            for (int k = 0; k < S; k++) s += in[((size_t)b * CV + ch) * S + k];
            pool[(size_t)b * CV + ch] = (float)(s / S);
        }
    rl_fc_fwd(&m->vproj, vu, pool, B);
}

void rl_clipt_head(const rl_clippair *m, float *tp, float *tu, const float *hid, const int *eos,
                   int B, int L)
{
    const int D = m->text.cfg.hidden_size;
    for (int b = 0; b < B; b++)
        memcpy(tp + (size_t)b * D, hid + ((size_t)b * L + eos[b]) * D, (size_t)D * sizeof(float));
    rl_fc_fwd(&m->tproj, tu, tp, B);
}

int rl_clipt_first_eos(const int *ids, int L, int eos_id)
{
    for (int l = 0; l < L; l++)
        if (ids[l] == eos_id) return l;
    return L - 1;
}

void rl_clip_l2norm(float *n, const float *u, int B, int P)
{
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int p = 0; p < P; p++) s += (double)u[b * P + p] * u[b * P + p];
        const float inv = (float)(1.0 / sqrt(s + 1e-12));
        for (int p = 0; p < P; p++) n[b * P + p] = u[b * P + p] * inv;
    }
}

float rl_clipscore_cos(const float *a, const float *b, int P)
{
    double s = 0;
    for (int p = 0; p < P; p++) s += (double)a[p] * b[p];
    return (float)s;
}

// ---- the scorer -----------------------------------------------------------------------------

struct rl_clipscore {
    rl_bpe bpe;
    rl_clip_cfg cfg;
    rl_weights ws;              // text_model.* and the clip_video tensors
    rl_clippair m;
    int P, size;                // projection width; frame side the encoder was trained at
    rl_arena arena;
};

void rl_clipscore_close(rl_clipscore **cs)
{
    if (!cs || !*cs) return;
    rl_clipscore *s = *cs;
    rl_clippair_free(&s->m);
    rl_weights_free(&s->ws);
    rl_bpe_free(&s->bpe);
    rl_arena_free(&s->arena);
    free(s);
    *cs = NULL;
}

// clip_video/config.json must describe the encoder this file implements
static rl_status read_video_config(rl_clipscore *s, const char *path, rl_err *err)
{
    rl_json j = { 0 };
    int frames = 0, kernel = 0, stride = 0, ch[RL_CLIPV_NCONV + 2], n_ch = 0;
    const char *act = NULL, *pool = NULL, *pooling = NULL;
    rl_status rc = rl_json_load(&j, path, err);
    if (!rc) rc = rl_json_int_req(&j, NULL, "projection_dim", &s->P, err);
    if (!rc) rc = rl_json_int(&j, NULL, "sample_size", 64, &s->size, err);
    if (!rc) rc = rl_json_int(&j, NULL, "frames", RL_CLIPV_FRAMES, &frames, err);
    if (!rc) rc = rl_json_int(&j, NULL, "kernel", 3, &kernel, err);
    if (!rc) rc = rl_json_int(&j, NULL, "stride", 2, &stride, err);
    if (!rc) rc = rl_json_str(&j, NULL, "activation", "silu", &act, err);
    if (!rc) rc = rl_json_str(&j, NULL, "pool", "mean", &pool, err);
    if (!rc) rc = rl_json_str(&j, NULL, "text_pooling", "first_eos", &pooling, err);
    if (!rc && rl_json_has(&j, NULL, "channels"))
        rc = rl_json_int_list(&j, NULL, "channels", ch, RL_CLIPV_NCONV + 2, &n_ch, -1, 0, err);
    if (rc) goto done;
    int same = frames == RL_CLIPV_FRAMES && kernel == 3 && stride == 2 && !strcmp(act, "silu") &&
               !strcmp(pool, "mean") && !strcmp(pooling, "first_eos") &&
               (n_ch == 0 || n_ch == RL_CLIPV_NCONV + 1);
    for (int i = 0; i < n_ch && same; i++) same = ch[i] == rl_clipv_ch[i];
    if (!same)
        rc = rl_errf(err, RL_E_FORMAT, "%s: describes another clip encoder than reel's (expected "
                     "frames %d, channels [%d, %d, %d, %d, %d], kernel 3, stride 2, silu, mean "
                     "pool, first_eos text pooling)", path, RL_CLIPV_FRAMES, rl_clipv_ch[0],
                     rl_clipv_ch[1], rl_clipv_ch[2], rl_clipv_ch[3], rl_clipv_ch[4]);
    else if (s->P < 1 || s->P > 65536 || s->size < 8 || s->size > 4096)
        rc = rl_errf(err, RL_E_FORMAT, "%s: projection_dim %d, sample_size %d: expected 1..65536 "
                     "and 8..4096", path, s->P, s->size);
done:
    rl_json_free(&j);
    return rc;
}

rl_status rl_clipscore_open(rl_clipscore **cs, const char *model_dir, rl_err *err)
{
    char path[4200];
    rl_status rc;
    *cs = NULL;
    rl_clipscore *s = calloc(1, sizeof *s);
    if (!s) return rl_errf(err, RL_E_NOMEM, "clip score: out of memory");
    rl_weights_init(&s->ws, "clip score");
    rl_arena_init(&s->arena, 4u << 20);

    snprintf(path, sizeof path, "%s/clip_video/config.json", model_dir);
    if ((rc = read_video_config(s, path, err))) goto fail;
    snprintf(path, sizeof path, "%s/tokenizer", model_dir);
    if ((rc = rl_tokfiles_open(&s->bpe, path, err))) goto fail;
    if ((rc = rl_diffusers_load_text(&s->cfg, &s->ws, model_dir, err))) goto fail;
    snprintf(path, sizeof path, "%s/clip_video/model.safetensors", model_dir);
    if ((rc = rl_weights_load_st(&s->ws, path, NULL, err))) goto fail;
    if ((rc = rl_clippair_bind(&s->m, &s->ws, &s->cfg, s->P, err)) ||
        (rc = rl_weights_check_all_used(&s->ws, NULL, err))) {
        rl_err_prefix(err, "%s/{text_encoder,clip_video}", model_dir);
        goto fail;
    }
    if (s->bpe.max_length > s->cfg.max_position_embeddings) {
        rc = rl_errf(err, RL_E_SHAPE, "%s: the tokenizer makes %d tokens, the text encoder takes "
                     "at most %d", model_dir, s->bpe.max_length, s->cfg.max_position_embeddings);
        goto fail;
    }
    *cs = s;
    return RL_OK;
fail:
    rl_clipscore_close(&s);
    return rc;
}

int rl_clipscore_dim(const rl_clipscore *cs)
{
    return cs->P;
}

int rl_clipscore_size(const rl_clipscore *cs)
{
    return cs->size;
}

rl_status rl_clipscore_text(rl_clipscore *cs, const char *prompt, float *emb, rl_err *err)
{
    const int L = cs->bpe.max_length, D = cs->cfg.hidden_size;
    rl_arena_mark mk = rl_arena_get_mark(&cs->arena);
    int *ids = rl_arena_bytes(&cs->arena, (size_t)L * sizeof(int));   // (L)
    float *hid = rl_arena_floats(&cs->arena, (size_t)L * D);          // (1, L, D)
    float *tp = rl_arena_floats(&cs->arena, (size_t)D);               // (1, D)
    rl_clip_acts ta;
    rl_clip_plan(&cs->m.text, &ta, &cs->arena, 1, L, 0);
    rl_status rc = rl_arena_check(&cs->arena, err);
    if (!rc) rc = rl_bpe_encode(&cs->bpe, prompt, ids, NULL, err);
    if (!rc) rc = rl_clip_check_ids(&cs->m.text, ids, 1, L, err);
    if (!rc) {
        const int eos = rl_clipt_first_eos(ids, L, cs->bpe.eos_id);
        rl_clip_fwd(&cs->m.text, &ta, hid, ids, 1, L);
        rl_clipt_head(&cs->m, tp, emb, hid, &eos, 1, L);
        rl_clip_l2norm(emb, emb, 1, cs->P);
    }
    rl_arena_reset(&cs->arena, mk);
    return rc;
}

/* dst (S, S) channel ch of frame src (H, W, 3) resampled bilinearly (half-pixel centres, edge
 * clamped), as byte / 127.5 - 1. */
static void resample(float *dst, int S, const uint8_t *src, int H, int W, int ch)
{
    for (int y = 0; y < S; y++) {
        const float fy = ((float)y + 0.5f) * (float)H / (float)S - 0.5f;
        int y0 = (int)floorf(fy);
        const float wy = fy - (float)y0;
        const int y1 = y0 + 1 < H ? y0 + 1 : H - 1;
        if (y0 < 0) y0 = 0;
        for (int x = 0; x < S; x++) {
            const float fx = ((float)x + 0.5f) * (float)W / (float)S - 0.5f;
            int x0 = (int)floorf(fx);
            const float wx = fx - (float)x0;
            const int x1 = x0 + 1 < W ? x0 + 1 : W - 1;
            if (x0 < 0) x0 = 0;
            const float v00 = src[((size_t)y0 * W + x0) * 3 + ch];
            const float v01 = src[((size_t)y0 * W + x1) * 3 + ch];
            const float v10 = src[((size_t)y1 * W + x0) * 3 + ch];
            const float v11 = src[((size_t)y1 * W + x1) * 3 + ch];
            const float v = (1 - wy) * ((1 - wx) * v00 + wx * v01) + wy * ((1 - wx) * v10 + wx * v11);
            dst[(size_t)y * S + x] = v / 127.5f - 1.0f;
        }
    }
}

rl_status rl_clipscore_video(rl_clipscore *cs, const uint8_t *frames, int F, int H, int W,
                             float *emb, rl_err *err)
{
    if (F < 1 || H < 8 || W < 8)
        return rl_errf(err, RL_E_PARAM, "clip score: %d frames of %dx%d: expected at least one "
                       "frame of 8x8 or more", F, W, H);
    const int S = cs->size, CV = rl_clipv_ch[RL_CLIPV_NCONV];
    int hs[RL_CLIPV_NCONV + 1];
    rl_clipv_sides(hs, S);
    rl_arena_mark mk = rl_arena_get_mark(&cs->arena);
    float *x = rl_arena_floats(&cs->arena, (size_t)rl_clipv_ch[0] * S * S);   // (3 KF, S, S)
    float *c[RL_CLIPV_NCONV], *a[RL_CLIPV_NCONV];
    for (int i = 0; i < RL_CLIPV_NCONV; i++) {
        const size_t n = (size_t)rl_clipv_ch[i + 1] * hs[i + 1] * hs[i + 1];
        c[i] = rl_arena_floats(&cs->arena, n);
        a[i] = rl_arena_floats(&cs->arena, n);
    }
    float *pool = rl_arena_floats(&cs->arena, (size_t)CV);
    rl_status rc = rl_arena_check(&cs->arena, err);
    if (rc == RL_OK) {
        const size_t fb = (size_t)H * W * 3;
        for (int k = 0; k < RL_CLIPV_FRAMES; k++)
            for (int ch = 0; ch < 3; ch++)
                resample(x + ((size_t)k * 3 + ch) * S * S, S,
                         frames + (size_t)rl_clipv_keyframe(k, F) * fb, H, W, ch);
        rl_clipv_fwd(&cs->m, &cs->arena, c, a, pool, emb, x, 1, S, S);
        rl_clip_l2norm(emb, emb, 1, cs->P);
    }
    rl_arena_reset(&cs->arena, mk);
    return rc;
}
