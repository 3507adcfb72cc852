/* tools/train_clip.c - `reel train tokenizer` and `reel train clip`.
 *
 * tokenizer: BPE merges learned (core/bpe.h rl_bpe_learn) from every training caption of the
 *   shapes world (each valid attribute combination free of held-out pairs, with and without
 *   the background), written as a CLIPTokenizer folder.
 * clip: see the block above rl_train_clip. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/bpe.h"
#include "core/clip.h"
#include "core/layers.h"
#include "core/ops.h"
#include "io/config_clip.h"
#include "io/tokfiles.h"
#include "io/weights_io.h"
#include "io/atomic.h"
#include "tools/shapes/clipscore.h"
#include "tools/shapes/render.h"
#include "tools/train_cfg.h"
#include "tools/shapes/world.h"
#include "tools/train.h"
#include "tools/train_stages.h"

// ---- tokenizer ------------------------------------------------------------------------------

/* Every training caption: (RL_N_BG + 1) x colours x shapes x motions, filtered. */
static int world_captions(char (*caps)[96], int cap)
{
    int n = 0;
    for (int bg = -1; bg < RL_N_BG; bg++)
        for (int c = 0; c < RL_N_COLOR; c++)
            for (int s = 0; s < RL_N_SHAPE; s++)
                for (int m = 0; m < RL_N_MOTION; m++) {
                    rl_shapes_attr a = { bg, c, s, m };
                    if (!rl_shapes_attr_valid(&a) || rl_shapes_attr_heldout(&a)) continue;
                    if (n < cap && rl_shapes_caption(caps[n], 96, &a) > 0) n++;
                }
    return n;
}

rl_status rl_train_tokenizer(const rl_train_opts *o, rl_err *err)
{
    enum { MAX_CAPS = (RL_N_BG + 1) * RL_N_COLOR * RL_N_SHAPE * RL_N_MOTION };
    char (*caps)[96] = malloc(sizeof(char[96]) * MAX_CAPS);
    const char **texts = malloc(sizeof *texts * MAX_CAPS);
    rl_bpe_spec spec = { 0 };
    rl_bpe bpe = { 0 };
    char dir[4096];
    rl_status rc = RL_OK;
    if (!caps || !texts) {
        rc = rl_errf(err, RL_E_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    const int n = world_captions(caps, MAX_CAPS);
    for (int i = 0; i < n; i++) texts[i] = caps[i];
    rc = rl_bpe_learn(&spec, texts, n, o->merges, o->max_length, err);
    if (rc) goto done;
    // every caption must fit: [bos] + tokens + [eos] <= max_length
    rc = rl_bpe_init(&bpe, &spec, err);
    int longest = 0, words_split = 0;
    for (int i = 0; i < n && !rc; i++) {
        int k = 0, nw = 1;
        rc = rl_bpe_tokenize(&bpe, texts[i], NULL, 0, &k, err);
        for (const char *p = texts[i]; *p; p++) nw += *p == ' ';
        if (k > longest) longest = k;
        if (k > nw) words_split = 1;
    }
    if (rc) goto done;
    if (longest + 2 > o->max_length) {
        rc = rl_errf(err, RL_E_PARAM, "tokenizer: the longest caption takes %d tokens with start "
                     "and end, more than --max-length %d (learn more --merges)", longest + 2,
                     o->max_length);
        goto done;
    }
    rc = rl_train_mkdir(o->out, err);
    if (!rc) rc = rl_tokfiles_write(rl_train_join(dir, sizeof dir, o->out, "tokenizer"), &spec, err);
    if (!rc && o->note) {
        char msg[4500];
        snprintf(msg, sizeof msg, "tokenizer: %d captions, %d merges, vocab %d, longest caption "
                 "%d tokens%s; wrote %s", n, spec.n_merges, spec.n_vocab, longest + 2,
                 words_split ? " (some words split: more --merges would make one token a word)" : "",
                 dir);
        o->note(o->note_ctx, msg);
    }
done:
    rl_bpe_free(&bpe);
    rl_bpe_spec_free(&spec);
    free(texts);
    free(caps);
    return rc;
}


// ---- clip ---------------------------------------------------------------------------------
/* A CLIP pair trained contrastively (Radford et al. 2021) on (caption, clip) batches; the pair
 * and its forward are tools/shapes/clipscore.h's (shared with the CLIP score of `reel eval`):
 *   text:  ids -> CLIPTextModel (text_model.*) -> last_hidden_state at the first end token
 *          (transformers' pooled output) -> text_projection (Linear, no bias)
 *   video: RL_CLIP_KF frames of the clip, evenly spaced, stacked on channels
 *          (3 * RL_CLIP_KF, H, W) -> 4 x [conv 3x3 stride 2 + SiLU] -> mean over space
 *          -> visual_projection (Linear, no bias); the frames side by side let it see motion
 *   logits = exp(logit_scale) * t_i . v_j with t, v L2-normalised; logit_scale learned
 *   (init ln(1/0.07), clamped at ln 100 as CLIP does);
 *   loss = (CE over rows + CE over columns) / 2, the symmetric InfoNCE.
 * The text encoder goes to out/text_encoder (transformers layout); the video encoder, both
 * projections and the scale to out/clip_video (reel's own, read by eval). */

#define RL_CLIP_KF RL_CLIPV_FRAMES       // frames the video encoder sees
#define RL_CLIP_NCONV RL_CLIPV_NCONV

static const char default_clip_config[] =
    "{\"vocab_size\": 1, \"hidden_size\": 64, \"intermediate_size\": 256, \"num_hidden_layers\": 3,"
    " \"num_attention_heads\": 4, \"max_position_embeddings\": 24, \"projection_dim\": 64,"
    " \"hidden_act\": \"quick_gelu\", \"layer_norm_eps\": 1e-05}";

static const int *const vid_ch = rl_clipv_ch;

typedef rl_clippair clip_pair;

typedef struct {
    const rl_clip_cfg *cfg;
    int P;
} clip_probe_ctx;

static rl_status clip_probe(void *ctx, rl_weights *ws, rl_err *err)
{
    const clip_probe_ctx *c = ctx;
    clip_pair m;
    rl_status rc = rl_clippair_bind(&m, ws, c->cfg, c->P, err);
    rl_clippair_free(&m);
    return rc;
}

typedef struct {
    const rl_train_opts *o;
    rl_clip_cfg cfg;
    int P, B, L, H, W;
    rl_bpe bpe;
    clip_pair m, g;
    rl_arena arena;
    int *ids;                         // (B, L)
    int *eos;                         // (B) position of the first end token
    float *clipbuf;                   // (3, F, H, W)
    float *x;                         // (B, 3 KF, H, W)
    float *c[RL_CLIP_NCONV], *a[RL_CLIP_NCONV];   // conv outputs and their SiLU, (B, C_i, H_i, W_i)
    float *da, *dc;                   // scratch for the video backward (largest layer)
    float *pool, *dpool;              // (B, C)
    float *hid, *dhid;                // (B, L, D)
    float *tp, *dtp, *vp, *dvp;       // (B, D) pooled text and its grad; (B, P) raw projections
    float *tu, *vu, *tn, *vn;         // (B, P) projections and normalised
    float *dtn, *dvn, *dtu, *dvu;     // (B, P)
    float *logits, *dlogits;          // (B, B)
    int hs[RL_CLIP_NCONV + 1];        // spatial side after each conv
} clip_run;

/* Captions and video frames of step `step`. */
static rl_status clip_batch(clip_run *r, long step, rl_err *err)
{
    const int F = RL_SHAPES_FRAMES;
    const size_t S = (size_t)r->H * r->W;
    rl_shapes_spec *sp = malloc((size_t)r->B * sizeof *sp);
    char (*caps)[96] = malloc((size_t)r->B * 96);
    rl_status rc = RL_OK;
    if (!sp || !caps) {
        rc = rl_errf(err, RL_E_NOMEM, "clip: out of memory");
        goto done;
    }
    rl_train_specs(sp, caps, r->o->seed, step, r->B);
    // hard negatives: every odd clip is the even one before it changed in one attribute, under
    // its own caption. A random batch of 32 almost never holds two clips that differ in the
    // direction of time alone (or the shape alone), so without them InfoNCE never has to tell
    // left from right, up from down, a triangle from a star. With both kinds, pairs alternate.
    int kinds[2], nk = 0;
    if (r->o->hard_negatives & RL_NEG_MOTION) kinds[nk++] = RL_NEG_MOTION;
    if (r->o->hard_negatives & RL_NEG_SHAPE) kinds[nk++] = RL_NEG_SHAPE;
    for (int b = 1; nk && b < r->B; b += 2) {
        int done = 0;
        for (int j = 0; j < nk && !done; j++) {
            const int kind = kinds[((b / 2) + j) % nk];
            done = kind == RL_NEG_MOTION
                       ? rl_shapes_spec_reverse(&sp[b], &sp[b - 1])
                       : rl_shapes_spec_swap_shape(&sp[b], &sp[b - 1],
                                                   (int)((step + b / 2) % (RL_N_SHAPE - 1)));
        }
        if (done) rl_shapes_spec_caption(caps[b], 96, &sp[b]);
    }
    for (int b = 0; b < r->B && !rc; b++) {
        rc = rl_bpe_encode(&r->bpe, caps[b], r->ids + (size_t)b * r->L, NULL, err);
        r->eos[b] = rl_clipt_first_eos(r->ids + (size_t)b * r->L, r->L, r->bpe.eos_id);
        rl_shapes_render_f32(r->clipbuf, &sp[b], F, r->H, r->W);
        for (int k = 0; k < RL_CLIP_KF; k++) {
            const int f = rl_clipv_keyframe(k, F);
            for (int ch = 0; ch < 3; ch++)
                memcpy(r->x + (((size_t)b * RL_CLIP_KF + k) * 3 + ch) * S,
                       r->clipbuf + ((size_t)ch * F + f) * S, S * sizeof(float));
        }
    }
done:
    free(sp);
    free(caps);
    return rc;
}

/* du = (dn - n (n . dn)) / |u| */
static void l2norm_bwd(float *du, const float *dn, const float *n, const float *u, int B, int P)
{
    for (int b = 0; b < B; b++) {
        double s = 0, d = 0;
        for (int p = 0; p < P; p++) {
            s += (double)u[b * P + p] * u[b * P + p];
            d += (double)n[b * P + p] * dn[b * P + p];
        }
        const double inv = 1.0 / sqrt(s + 1e-12);
        for (int p = 0; p < P; p++)
            du[b * P + p] = (float)((dn[b * P + p] - n[b * P + p] * d) * inv);
    }
}

static rl_status clip_step(void *ctx, rl_ptable *pt, long step, double *loss, double *aux,
                           rl_err *err)
{
    clip_run *r = ctx;
    const int B = r->B, L = r->L, D = r->cfg.hidden_size, P = r->P;
    const int CV = vid_ch[RL_CLIP_NCONV];
    (void)pt;
    rl_status rc = clip_batch(r, rl_train_data_step(r->o, step), err);
    if (rc) return rc;
    rl_arena_mark mk = rl_arena_get_mark(&r->arena);

    // ---- text: hidden states, pooled at the end token, projected
    rl_clip_acts ta;
    rl_clip_plan(&r->m.text, &ta, &r->arena, B, L, 1);
    rc = rl_arena_check(&r->arena, err);
    if (rc) return rc;
    rl_clip_fwd(&r->m.text, &ta, r->hid, r->ids, B, L);
    rl_clipt_head(&r->m, r->tp, r->tu, r->hid, r->eos, B, L);
    rl_clip_l2norm(r->tn, r->tu, B, P);

    // ---- video: conv stack, mean over space, projected
    rl_clipv_fwd(&r->m, &r->arena, r->c, r->a, r->pool, r->vu, r->x, B, r->H, r->W);
    rl_clip_l2norm(r->vn, r->vu, B, P);

    // ---- symmetric cross-entropy over the B x B similarity matrix
    float ls = r->m.logit_scale[0];
    const int clamped = ls > logf(100.0f);
    if (clamped) ls = logf(100.0f);
    const float scale = expf(ls);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            double s = 0;
            for (int p = 0; p < P; p++) s += (double)r->tn[i * P + p] * r->vn[j * P + p];
            r->logits[i * B + j] = scale * (float)s;
        }
    double total = 0;
    int correct = 0;
    memset(r->dlogits, 0, (size_t)B * B * sizeof(float));
    for (int dir = 0; dir < 2; dir++) {
        // dir 0: rows (text -> video), dir 1: columns (video -> text)
        for (int i = 0; i < B; i++) {
            double mx = -1e30, se = 0;
            int arg = 0;
            for (int j = 0; j < B; j++) {
                const double v = dir ? r->logits[j * B + i] : r->logits[i * B + j];
                if (v > mx) { mx = v; arg = j; }
            }
            for (int j = 0; j < B; j++) se += exp((dir ? r->logits[j * B + i] : r->logits[i * B + j]) - mx);
            total += -((double)(dir ? r->logits[i * B + i] : r->logits[i * B + i]) - mx - log(se));
            if (!dir) correct += arg == i;
            for (int j = 0; j < B; j++) {
                const double pj = exp((dir ? r->logits[j * B + i] : r->logits[i * B + j]) - mx) / se;
                const float d = (float)((pj - (i == j)) / (2.0 * B));
                if (dir) r->dlogits[j * B + i] += d;
                else r->dlogits[i * B + j] += d;
            }
        }
    }
    *loss = total / (2.0 * B);
    *aux = (double)correct / B;   // text -> video top-1 accuracy within the batch

    // ---- backward: logits = scale * tn vn^T
    double dscale = 0;
    memset(r->dtn, 0, (size_t)B * P * sizeof(float));
    memset(r->dvn, 0, (size_t)B * P * sizeof(float));
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            const float d = r->dlogits[i * B + j];
            dscale += (double)d * r->logits[i * B + j] / scale;
            for (int p = 0; p < P; p++) {
                r->dtn[i * P + p] += scale * d * r->vn[j * P + p];
                r->dvn[j * P + p] += scale * d * r->tn[i * P + p];
            }
        }
    // d exp(ls) / d ls = exp(ls); no gradient through the clamp
    if (!clamped) ((float *)r->g.logit_scale)[0] += (float)(dscale * scale);
    l2norm_bwd(r->dtu, r->dtn, r->tn, r->tu, B, P);
    l2norm_bwd(r->dvu, r->dvn, r->vn, r->vu, B, P);

    // text
    memset(r->dtp, 0, (size_t)B * D * sizeof(float));
    rl_fc_bwd(&r->m.tproj, &r->g.tproj, r->dtp, r->dtu, r->tp, B);
    memset(r->dhid, 0, (size_t)B * L * D * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(r->dhid + ((size_t)b * L + r->eos[b]) * D, r->dtp + (size_t)b * D, (size_t)D * sizeof(float));
    rl_clip_bwd(&r->m.text, &r->g.text, &ta, &r->arena, r->dhid, r->ids, B, L);

    // video
    const int S4 = r->hs[RL_CLIP_NCONV] * r->hs[RL_CLIP_NCONV];
    memset(r->dpool, 0, (size_t)B * CV * sizeof(float));
    rl_fc_bwd(&r->m.vproj, &r->g.vproj, r->dpool, r->dvu, r->pool, B);
    float *da = r->da, *dc = r->dc;
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < CV; ch++)
            for (int k = 0; k < S4; k++) da[((size_t)b * CV + ch) * S4 + k] = r->dpool[b * CV + ch] / S4;
    for (int i = RL_CLIP_NCONV - 1; i >= 0; i--) {
        const size_t n = (size_t)B * vid_ch[i + 1] * r->hs[i + 1] * r->hs[i + 1];
        memset(dc, 0, n * sizeof(float));
        rl_silu_bwd(dc, da, r->c[i], n);
        const size_t nin = (size_t)B * vid_ch[i] * r->hs[i] * r->hs[i];
        if (i > 0) memset(da, 0, nin * sizeof(float));
        rl_conv_bwd(&r->m.conv[i], &r->g.conv[i], &r->arena, i > 0 ? da : NULL, dc,
                    i > 0 ? r->a[i - 1] : r->x, B, r->hs[i], r->hs[i]);
    }
    rl_arena_reset(&r->arena, mk);
    return RL_OK;
}

static rl_status clip_finish(void *ctx, rl_ptable *pt, rl_err *err)
{
    clip_run *r = ctx;
    char dir[4096], path[4200];
    rl_weights rel, vid;
    rl_weights_init(&rel, "clip (release)");
    rl_weights_init(&vid, "clip_video (release)");
    rl_status rc = rl_ptable_release_table(pt, &rel, err);
    for (int i = 0; i < rel.n && !rc; i++)
        if (strncmp(rel.w[i].name, "text_model.", 11))
            rc = rl_weights_add(&vid, rel.w[i].name, rel.w[i].ndim, rel.w[i].shape, rel.w[i].data, err);
    rl_train_join(dir, sizeof dir, r->o->out, "text_encoder");
    if (!rc) rc = rl_train_mkdir(dir, err);
    if (!rc) rc = rl_weights_save_st(&rel, rl_train_join(path, sizeof path, dir, "model.safetensors"),
                                     "text_model.", RL_F32, err);
    if (!rc) rc = rl_train_write_clip_config(rl_train_join(path, sizeof path, dir, "config.json"),
                                             &r->cfg, err);
    rl_train_join(dir, sizeof dir, r->o->out, "clip_video");
    if (!rc) rc = rl_train_mkdir(dir, err);
    if (!rc) rc = rl_weights_save_st(&vid, rl_train_join(path, sizeof path, dir, "model.safetensors"),
                                     NULL, RL_F32, err);
    if (!rc) {
        char text[512];
        snprintf(text, sizeof text,
                 "{\n  \"_class_name\": \"ReelClipVideoEncoder\",\n  \"frames\": %d,\n"
                 "  \"channels\": [%d, %d, %d, %d, %d],\n  \"kernel\": 3,\n  \"stride\": 2,\n"
                 "  \"activation\": \"silu\",\n  \"pool\": \"mean\",\n  \"projection_dim\": %d,\n"
                 "  \"sample_size\": %d,\n  \"text_pooling\": \"first_eos\"\n}\n",
                 RL_CLIP_KF, vid_ch[0], vid_ch[1], vid_ch[2], vid_ch[3], vid_ch[4], r->P, r->H);
        rc = rl_atomic_write_file(rl_train_join(path, sizeof path, dir, "config.json"), text,
                                  strlen(text), err);
    }
    if (!rc && r->o->note) {
        char msg[4400];
        snprintf(msg, sizeof msg, "clip: wrote %s/text_encoder and %s", r->o->out, dir);
        r->o->note(r->o->note_ctx, msg);
    }
    rl_weights_free(&vid);
    rl_weights_free(&rel);
    return rc;
}

static void clip_run_free(clip_run *r)
{
    free(r->ids);
    free(r->eos);
    rl_clippair_free(&r->m);
    rl_clippair_free(&r->g);
    rl_bpe_free(&r->bpe);
    rl_arena_free(&r->arena);
}

/* Everything before the loop: tokenizer, config, parameters (initialised or loaded, optimizer
 * state), bound models and buffers. r->o must be set; free with clip_run_free. */
static rl_status clip_setup(clip_run *r, rl_ptable *pt, rl_err *err)
{
    const rl_train_opts *o = r->o;
    rl_json j = { 0 };
    char path[4200];
    rl_arena_init(&r->arena, 0);
    rl_status rc = rl_tokfiles_open(&r->bpe, rl_train_join(path, sizeof path, o->out, "tokenizer"), err);
    if (rc) {
        rl_err_prefix(err, "clip needs the tokenizer (reel train tokenizer --out %s first)", o->out);
        goto done;
    }
    rc = rl_train_load_config(&j, o->config, default_clip_config, err);
    if (!rc) rc = rl_clip_cfg_parse(&r->cfg, &j, err);
    if (rc) goto done;
    // the tokenizer fixes the vocabulary, the special ids and the sequence length
    r->cfg.vocab_size = r->bpe.n_vocab;
    r->cfg.bos_token_id = r->bpe.bos_id;
    r->cfg.eos_token_id = r->bpe.eos_id;
    r->cfg.pad_token_id = r->bpe.pad_id;
    r->cfg.max_position_embeddings = r->bpe.max_length;
    if (r->cfg.projection_dim <= 0) r->cfg.projection_dim = r->cfg.hidden_size;
    r->P = r->cfg.projection_dim;
    r->B = o->batch; r->L = r->bpe.max_length; r->H = r->W = o->size;
    if (r->B < 2) {
        rc = rl_errf(err, RL_E_PARAM, "clip: a contrastive batch needs at least 2 clips, not %d", r->B);
        goto done;
    }
    r->hs[0] = o->size;
    for (int i = 0; i < RL_CLIP_NCONV; i++) r->hs[i + 1] = (r->hs[i] - 1) / 2 + 1;   // 3x3, stride 2, pad 1

    clip_probe_ctx pc = { &r->cfg, r->P };
    rc = rl_ptable_discover(pt, clip_probe, &pc, err);
    if (rc) goto done;
    rl_ptable_init_params(pt, o->seed, NULL);
    float *ls = (float *)rl_weights_find(&pt->p, "logit_scale")->data;
    ls[0] = logf(1.0f / 0.07f);
    if (o->resume_from) {
        rc = rl_ptable_load(pt, rl_train_join(path, sizeof path, o->resume_from,
                            "text_encoder/model.safetensors"), NULL, 1, err);
        if (!rc) rc = rl_ptable_load(pt, rl_train_join(path, sizeof path, o->resume_from,
                                     "clip_video/model.safetensors"), NULL, 1, err);
        if (rc) goto done;
    }
    rc = rl_ptable_alloc_state(pt, o->ema > 0, err);
    if (!rc) rc = rl_clippair_bind(&r->m, &pt->p, &r->cfg, r->P, err);
    if (!rc) rc = rl_clippair_bind(&r->g, &pt->g, &r->cfg, r->P, err);
    if (rc) goto done;
    // (AdamW's weight decay applies to logit_scale too: at lr * wd ~ 1e-5 a step it is
    // negligible next to its gradient)

    const int B = r->B, L = r->L, D = r->cfg.hidden_size, P = r->P, CV = vid_ch[RL_CLIP_NCONV];
    r->ids = calloc((size_t)B * L, sizeof(int));
    r->eos = calloc((size_t)B, sizeof(int));
    r->clipbuf = rl_arena_floats(&r->arena, (size_t)3 * RL_SHAPES_FRAMES * r->H * r->W);
    r->x = rl_arena_floats(&r->arena, (size_t)B * vid_ch[0] * r->H * r->W);
    size_t big = 0;
    for (int i = 0; i < RL_CLIP_NCONV; i++) {
        const size_t n = (size_t)B * vid_ch[i + 1] * r->hs[i + 1] * r->hs[i + 1];
        r->c[i] = rl_arena_floats(&r->arena, n);
        r->a[i] = rl_arena_floats(&r->arena, n);
        if (n > big) big = n;
        const size_t nin = (size_t)B * vid_ch[i] * r->hs[i] * r->hs[i];
        if (nin > big) big = nin;
    }
    r->da = rl_arena_floats(&r->arena, big);
    r->dc = rl_arena_floats(&r->arena, big);
    r->pool = rl_arena_floats(&r->arena, (size_t)B * CV);
    r->dpool = rl_arena_floats(&r->arena, (size_t)B * CV);
    r->hid = rl_arena_floats(&r->arena, (size_t)B * L * D);
    r->dhid = rl_arena_floats(&r->arena, (size_t)B * L * D);
    r->tp = rl_arena_floats(&r->arena, (size_t)B * D);
    r->dtp = rl_arena_floats(&r->arena, (size_t)B * D);
    float **bp[] = { &r->tu, &r->vu, &r->tn, &r->vn, &r->dtn, &r->dvn, &r->dtu, &r->dvu, &r->vp, &r->dvp };
    for (size_t i = 0; i < sizeof bp / sizeof bp[0]; i++) *bp[i] = rl_arena_floats(&r->arena, (size_t)B * P);
    r->logits = rl_arena_floats(&r->arena, (size_t)B * B);
    r->dlogits = rl_arena_floats(&r->arena, (size_t)B * B);
    rc = rl_arena_check(&r->arena, err);
    if (!rc && (!r->ids || !r->eos)) rc = rl_errf(err, RL_E_NOMEM, "clip: out of memory");
    if (rc) goto done;
    if (o->note) {
        char msg[256];
        snprintf(msg, sizeof msg, "clip: %zu parameters (text encoder %zu), %d tokens, hidden %d",
                 rl_ptable_numel(pt, 0), rl_clip_n_params(&r->cfg), L, D);
        o->note(o->note_ctx, msg);
    }
done:
    rl_json_free(&j);
    return rc;
}

rl_status rl_train_clip(const rl_train_opts *o, rl_err *err)
{
    clip_run r = { .o = o };
    rl_ptable pt;
    char *cfg_text = NULL;
    char ckpt[4200], logp[4200];
    rl_ptable_init(&pt, "clip");
    rl_status rc = clip_setup(&r, &pt, err);
    if (rc) goto done;

    cfg_text = rl_train_clip_config_json(&r.cfg);
    if (!cfg_text) {
        rc = rl_errf(err, RL_E_NOMEM, "clip: out of memory");
        goto done;
    }
    char extra[200], opts[1024];
    snprintf(extra, sizeof extra, "{\"size\": %d, \"frames_seen\": %d, \"hard_negatives\": %d, "
             "\"overfit\": %d}", o->size, RL_CLIP_KF, o->hard_negatives, o->overfit);
    rl_kv meta[RL_TRAIN_MAX_META];
    int n_meta = rl_train_common_meta(meta, opts, sizeof opts, o, cfg_text, extra);
    rl_train_loop_cfg lc;
    rc = rl_train_loop_cfg_init(&lc, o, "clip", ckpt, logp, sizeof ckpt, err);
    if (rc) goto done;
    lc.ctx = &r;
    lc.step = clip_step;
    lc.finish = clip_finish;
    lc.meta = meta;
    lc.n_meta = n_meta;
    rc = rl_train_loop(&lc, &pt, err);

done:
    free(cfg_text);
    clip_run_free(&r);
    rl_ptable_free(&pt);
    return rc;
}
