/* tools/shapes/eval.c - the shapes-world evaluation: prompt set, scoring, flicker (FFTW),
 * model rows, text/JSON table and the HTML report. See eval.h. */
#include "tools/shapes/eval.h"

#include <errno.h>
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "io/atomic.h"
#include "io/video.h"
#include "tools/shapes/render.h"

static const char *const attr_name[RL_EVAL_N_ATTR] = {
    "background", "colour", "shape", "motion", "all attributes",
};
static const char *const set_name[2] = { "in-distribution", "held-out pairs" };

// JSON keys and labels of the attributes RL_EVAL_BG .. RL_EVAL_ALL
static const char *const attr_key[RL_EVAL_N_ATTR] = { "background", "colour", "shape", "motion",
                                                      "all" };

// The field of a that holds attribute k (RL_EVAL_BG .. RL_EVAL_MOTION).
static int *attr_field(rl_shapes_attr *a, int k)
{
    return k == RL_EVAL_BG ? &a->bg : k == RL_EVAL_COLOR ? &a->color
         : k == RL_EVAL_SHAPE ? &a->shape : &a->motion;
}

// The words of attribute k (RL_EVAL_BG .. RL_EVAL_MOTION) and how many there are.
static const struct {
    const char *const *name;
    int n;
} attr_values[RL_EVAL_ALL] = {
    [RL_EVAL_BG] = { rl_shapes_bg_name, RL_N_BG },
    [RL_EVAL_COLOR] = { rl_shapes_color_name, RL_N_COLOR },
    [RL_EVAL_SHAPE] = { rl_shapes_shape_name, RL_N_SHAPE },
    [RL_EVAL_MOTION] = { rl_shapes_motion_name, RL_N_MOTION },
};

// The word for value v of attribute k.
static const char *attr_value_name(int k, int v)
{
    return attr_values[k].name[v];
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- the ground-truth source -----------------------------------------------------------------

static rl_status truth_gen(void *user, const rl_eval_req *req, uint8_t *frames, rl_err *err)
{
    (void)user;
    rl_shapes_attr a;
    rl_shapes_spec s;
    rl_status rc = rl_shapes_caption_parse(&a, req->prompt, err);
    if (rc == RL_OK) rc = rl_shapes_spec_from_attr(&s, &a, req->seed, err);
    if (rc != RL_OK) return rc;
    rl_shapes_render_u8(frames, &s, req->F, req->H, req->W);
    return RL_OK;
}

rl_eval_source rl_eval_source_truth(void)
{
    return (rl_eval_source){
        .name = "ground truth (the prompts rendered: the ceiling)",
        .gen = truth_gen,
        .model = 0,
        .na_reason = "ground-truth renders have no guidance, negative prompt or travel",
    };
}

// ---- the prompt set -------------------------------------------------------------------------

rl_eval_opts rl_eval_default_opts(void)
{
    return (rl_eval_opts){ .F = RL_SHAPES_FRAMES, .H = 64, .W = 64, .n_in = 48, .n_heldout = 48,
                           .n_seeds = 1, .n_guidance = 48, .n_negative = 16, .n_travel = 8,
                           .clip_na = "no CLIP pair given" };
}

void rl_eval_prompt(int set, int i, char prompt[96], rl_shapes_attr *want, uint64_t *seed)
{
    rl_shapes_spec s;
    rl_shapes_sample(&s, RL_EVAL_PROMPT_SEED, (uint64_t)i, set ? RL_SHAPES_HELDOUT : RL_SHAPES_TRAIN);
    rl_shapes_spec_caption(prompt, 96, &s);
    *want = s.a;
    if (!s.bg_said) want->bg = -1;
    *seed = (uint64_t)(set ? 2000 : 1000) + (uint64_t)i;
}

// ---- measurements ---------------------------------------------------------------------------

// RMS (levels) of the temporal frequencies k >= F/4 over the pixels marked in bg_mask (H, W);
// NAN (not measurable) when no pixel stays background throughout (objects everywhere, as in a
// clip that is noise) or the clip has under 4 frames: such clips are left out of the mean.
static rl_status flicker(float *out, const uint8_t *frames, const uint8_t *bg_mask, int F, int H,
                         int W, rl_err *err)
{
    const size_t S = (size_t)H * W;
    size_t n = 0;
    for (size_t i = 0; i < S; i++) n += bg_mask[i];
    *out = NAN;
    const int K = F / 2 + 1, kmin = (F + 3) / 4 > 1 ? (F + 3) / 4 : 1;
    if (F < 4 || n == 0) return RL_OK;
    const int nser = (int)(n * 3);
    float *in = fftwf_malloc(sizeof(float) * (size_t)nser * F);        // (nser, F)
    fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * (size_t)nser * K);   // (nser, K)
    if (!in || !spec) {
        fftwf_free(in);
        fftwf_free(spec);
        return rl_errf(err, RL_E_NOMEM, "eval: no memory for the flicker spectrum");
    }
    size_t j = 0;
    for (size_t i = 0; i < S; i++) {
        if (!bg_mask[i]) continue;
        for (int ch = 0; ch < 3; ch++, j++)
            for (int f = 0; f < F; f++) in[j * F + f] = frames[((size_t)f * S + i) * 3 + ch];
    }
    fftwf_plan p = fftwf_plan_many_dft_r2c(1, &F, nser, in, NULL, 1, F, spec, NULL, 1, K,
                                           FFTW_ESTIMATE);
    if (!p) {
        fftwf_free(in);
        fftwf_free(spec);
        return rl_errf(err, RL_E_INTERNAL, "eval: FFTW refused a %d-point r2c plan", F);
    }
    fftwf_execute(p);
    // Parseval: mean square of a band = sum over its bins of the full spectrum |X_k|^2 / F^2;
    // r2c holds each bin 0 < k < F/2 once for two (k and F - k)
    double e = 0;
    for (int s = 0; s < nser; s++)
        for (int k = kmin; k < K; k++) {
            const double re = spec[(size_t)s * K + k][0], im = spec[(size_t)s * K + k][1];
            e += (k == 0 || 2 * k == F ? 1.0 : 2.0) * (re * re + im * im);
        }
    *out = (float)sqrt(e / ((double)F * F * nser));
    fftwf_destroy_plan(p);
    fftwf_free(in);
    fftwf_free(spec);
    return RL_OK;
}

// hits for what was asked against what the analyzer saw
static void score(rl_eval_clip *c)
{
    const rl_shapes_attr *w = &c->want, *g = &c->got.a;
    c->hit[RL_EVAL_BG] = w->bg < 0 ? -1 : g->bg == w->bg;
    c->hit[RL_EVAL_COLOR] = w->color < 0 ? -1 : g->color == w->color;
    c->hit[RL_EVAL_SHAPE] = g->shape == w->shape;
    c->hit[RL_EVAL_MOTION] = g->motion == w->motion;
    int all = 1;
    for (int k = 0; k < RL_EVAL_ALL; k++) all &= c->hit[k] != 0;
    c->hit[RL_EVAL_ALL] = all;
}

typedef struct {
    const rl_eval_source *src;
    const rl_eval_opts *o;
    uint8_t *frames;        // (F, H, W, 3) scratch
    uint8_t *mask;          // (H, W) scratch
    int done, total;        // progress
} runner;

// makes and analyses one clip
static rl_status one(runner *r, const rl_eval_req *req, rl_shapes_analysis *got, double *sec,
                     rl_err *err)
{
    const double t0 = now();
    rl_status rc = r->src->gen(r->src->user, req, r->frames, err);
    if (rc != RL_OK) return rl_err_prefix(err, "eval: prompt '%s' (seed %llu)", req->prompt,
                                          (unsigned long long)req->seed);
    if (sec) *sec = now() - t0;
    rc = rl_shapes_analyze(got, r->frames, req->F, req->H, req->W, r->mask, err);
    if (r->o->progress) r->o->progress(r->o->progress_user, ++r->done, r->total);
    return rc;
}

/* Per set: mean CLIP score of the clips and of the ground truth, and the mean over mismatched
 * pairs (clip i against the prompt of clip j of the same set, a different prompt): the score
 * that a clip unrelated to its prompt gets. temb, vemb (n_clips, P). */
static void clip_means(rl_eval_result *res, const float *temb, const float *vemb, int P)
{
    for (int s = 0; s < 2; s++) {
        double gen = 0, truth = 0, mis = 0;
        long n = 0, n_mis = 0;
        for (int i = 0; i < res->n_clips; i++) {
            const rl_eval_clip *c = &res->clips[i];
            if (c->set != s) continue;
            gen += c->clip_score;
            truth += c->clip_truth;     // NAN for a source without a model: stays NAN
            n++;
            for (int j = 0; j < res->n_clips; j++) {
                if (res->clips[j].set != s || !strcmp(res->clips[j].prompt, c->prompt)) continue;
                mis += rl_clipscore_cos(temb + (size_t)j * P, vemb + (size_t)i * P, P);
                n_mis++;
            }
        }
        res->clip_gen[s] = n ? gen / n : NAN;
        res->clip_truth[s] = n ? truth / n : NAN;
        res->clip_mismatch[s] = n_mis ? mis / n_mis : NAN;
    }
}

// ---- the run --------------------------------------------------------------------------------

void rl_eval_result_free(rl_eval_result *res)
{
    if (res->clips)
        for (int i = 0; i < res->n_clips; i++) free(res->clips[i].frames);
    free(res->clips);
    *res = (rl_eval_result){ 0 };
}

rl_status rl_eval_run(rl_eval_result *res, const rl_eval_source *src, const rl_eval_opts *o,
                      rl_err *err)
{
    *res = (rl_eval_result){ 0 };
    if (o->F < 1 || o->F > RL_SHAPES_MAX_FRAMES || o->H < 8 || o->W < 8 || o->H > 4096 ||
        o->W > 4096 || o->n_in < 0 || o->n_heldout < 0 || o->n_in > RL_EVAL_MAX_SET ||
        o->n_heldout > RL_EVAL_MAX_SET || o->n_in + o->n_heldout == 0 || o->n_guidance < 0 ||
        (src->model && o->n_guidance > o->n_in) || o->n_negative < 0 || o->n_travel < 0 ||
        o->n_negative > RL_EVAL_MAX_SET || o->n_travel > RL_EVAL_MAX_SET || o->n_seeds < 1 ||
        o->n_seeds > RL_EVAL_MAX_SEEDS)
        return rl_errf(err, RL_E_PARAM, "eval: %d frames of %d x %d, %d + %d prompts x %d seeds "
                       "(guidance %d, negative %d, travel %d): expected 1..%d frames of 8..4096 px, "
                       "0..%d prompts per set (at least one), 1..%d seeds, guidance prompts <= "
                       "in-distribution prompts (for a model)", o->F, o->H, o->W, o->n_in,
                       o->n_heldout, o->n_seeds, o->n_guidance, o->n_negative, o->n_travel,
                       RL_SHAPES_MAX_FRAMES, RL_EVAL_MAX_SET, RL_EVAL_MAX_SEEDS);
    const size_t clip_bytes = (size_t)o->F * o->H * o->W * 3;
    const int NS = o->n_seeds, P = o->clip ? rl_clipscore_dim(o->clip) : 0;
    runner r = { .src = src, .o = o };
    rl_status rc = RL_OK;
    float *temb = NULL, *vemb = NULL, *gemb = NULL;   // (n_clips, P) text, clip, ground truth
    r.frames = malloc(clip_bytes);
    r.mask = malloc((size_t)o->H * o->W);
    res->n_clips = (o->n_in + o->n_heldout) * NS;
    res->clips = calloc((size_t)res->n_clips, sizeof *res->clips);
    if (o->clip) {
        temb = malloc((size_t)res->n_clips * P * sizeof(float));
        vemb = malloc((size_t)res->n_clips * P * sizeof(float));
        gemb = malloc((size_t)res->n_clips * P * sizeof(float));
    }
    if (!r.frames || !r.mask || !res->clips || (o->clip && (!temb || !vemb || !gemb))) {
        rc = rl_errf(err, RL_E_NOMEM, "eval: no memory for %d clips", res->n_clips);
        goto fail;
    }
    snprintf(res->source, sizeof res->source, "%s", src->name);
    res->F = o->F; res->H = o->H; res->W = o->W;
    res->model = src->model;
    res->n_seeds = NS;
    res->guidance = src->guidance;
    snprintf(res->na_reason, sizeof res->na_reason, "%s", src->model ? "" : src->na_reason);
    res->has_clip = o->clip != NULL;
    snprintf(res->clip_na, sizeof res->clip_na, "%s", o->clip ? "" : o->clip_na ? o->clip_na : "");
    r.total = res->n_clips + (src->model ? o->n_guidance + 2 * o->n_negative + o->n_travel : 0);

    // -- adherence, persistence, flicker, time
    double flick = 0, secs = 0;
    for (int i = 0; i < res->n_clips; i++) {
        rl_eval_clip *c = &res->clips[i];
        // clips in order: set, prompt, seed
        c->set = i >= o->n_in * NS;
        const int j = c->set ? i - o->n_in * NS : i;
        rl_eval_prompt(c->set, j / NS, c->prompt, &c->want, &c->seed);
        c->seed += (uint64_t)(j % NS) * RL_EVAL_SEED_STRIDE;
        c->clip_score = c->clip_truth = NAN;
        const rl_eval_req req = { .prompt = c->prompt, .seed = c->seed, .F = o->F, .H = o->H,
                                  .W = o->W };
        if ((rc = one(&r, &req, &c->got, &c->seconds, err)) != RL_OK) goto fail;
        if ((rc = flicker(&c->flicker, r.frames, r.mask, o->F, o->H, o->W, err)) != RL_OK)
            goto fail;
        score(c);
        for (int k = 0; k < RL_EVAL_N_ATTR; k++) {
            if (c->hit[k] < 0) continue;
            res->scored[c->set][k]++;
            res->right[c->set][k] += c->hit[k];
        }
        res->persistent[c->set] += c->got.persistent;
        res->total[c->set]++;
        if (isfinite(c->flicker)) {
            flick += c->flicker;
            res->n_flicker++;
        }
        secs += c->seconds;
        if (o->keep_frames) {
            if (!(c->frames = malloc(clip_bytes))) {
                rc = rl_errf(err, RL_E_NOMEM, "eval: no memory to keep clip %d", i);
                goto fail;
            }
            memcpy(c->frames, r.frames, clip_bytes);
        }
        if (o->clip) {
            // the clip, then (for a model) the ground truth of the same prompt and seed
            float *t = temb + (size_t)i * P, *v = vemb + (size_t)i * P, *g = gemb + (size_t)i * P;
            if ((rc = rl_clipscore_text(o->clip, c->prompt, t, err)) != RL_OK ||
                (rc = rl_clipscore_video(o->clip, r.frames, o->F, o->H, o->W, v, err)) != RL_OK)
                goto fail;
            c->clip_score = rl_clipscore_cos(t, v, P);
            if (src->model) {
                if ((rc = truth_gen(NULL, &req, r.frames, err)) != RL_OK ||
                    (rc = rl_clipscore_video(o->clip, r.frames, o->F, o->H, o->W, g, err)) != RL_OK)
                    goto fail;
                c->clip_truth = rl_clipscore_cos(t, g, P);
            }
        }
    }
    if (o->clip) clip_means(res, temb, vemb, P);
    res->flicker = res->n_flicker ? flick / res->n_flicker : NAN;
    res->sec_per_clip = secs / res->n_clips;
    if (!src->model) goto done;

    // -- guidance: the first prompts again at guidance 1
    rl_shapes_analysis got;
    res->n_guidance = o->n_guidance;
    for (int i = 0; i < o->n_guidance; i++) {
        rl_eval_clip c = res->clips[i];
        const rl_eval_req req = { .prompt = c.prompt, .seed = c.seed, .guidance = 1.0f,
                                  .F = o->F, .H = o->H, .W = o->W };
        if ((rc = one(&r, &req, &c.got, NULL, err)) != RL_OK) goto fail;
        score(&c);
        for (int k = 0; k < RL_EVAL_N_ATTR; k++) {
            if (c.hit[k] < 0) continue;
            res->guid_scored[k]++;
            res->guid_right_default[k] += res->clips[i].hit[k];
            res->guid_right_one[k] += c.hit[k];
        }
    }

    // -- negative prompts: colour-free prompts, colour X negated or not
    res->n_negative = o->n_negative;
    for (int i = 0; i < o->n_negative; i++) {
        rl_shapes_spec s;
        rl_shapes_sample(&s, RL_EVAL_PROMPT_SEED ^ 0x6e6567ull, (uint64_t)i, RL_SHAPES_TRAIN);
        rl_shapes_attr a = s.a;
        const int x = i % RL_N_COLOR;
        char prompt[96], neg[96];
        a.color = -1;
        rl_shapes_caption(prompt, sizeof prompt, &a);
        a.color = x;
        rl_shapes_caption(neg, sizeof neg, &a);
        rl_eval_req req = { .prompt = prompt, .seed = 3000 + (uint64_t)i, .F = o->F, .H = o->H,
                            .W = o->W };
        if ((rc = one(&r, &req, &got, NULL, err)) != RL_OK) goto fail;
        res->neg_x_without += got.a.color == x;
        req.negative = neg;
        if ((rc = one(&r, &req, &got, NULL, err)) != RL_OK) goto fail;
        res->neg_x_with += got.a.color == x;
    }

    // -- prompt travel: colour A -> B
    res->n_travel = o->n_travel;
    for (int i = 0; i < o->n_travel; i++) {
        rl_shapes_spec s;
        rl_shapes_sample(&s, RL_EVAL_PROMPT_SEED ^ 0x74726176ull, (uint64_t)i, RL_SHAPES_ANY);
        rl_shapes_attr a = s.a;
        const int ca = i % RL_N_COLOR, cb = (i + 3) % RL_N_COLOR;
        char pa[96], pb[96];
        a.color = ca;
        rl_shapes_caption(pa, sizeof pa, &a);
        a.color = cb;
        rl_shapes_caption(pb, sizeof pb, &a);
        const rl_eval_req req = { .prompt = pa, .travel_to = pb, .seed = 4000 + (uint64_t)i,
                                  .F = o->F, .H = o->H, .W = o->W };
        if ((rc = one(&r, &req, &got, NULL, err)) != RL_OK) goto fail;
        float A[3], B[3], e2 = 0;
        for (int ch = 0; ch < 3; ch++) {
            A[ch] = rl_shapes_color_rgb[ca][ch];
            B[ch] = rl_shapes_color_rgb[cb][ch];
            e2 += (B[ch] - A[ch]) * (B[ch] - A[ch]);
        }
        // a frame without an object has no colour (NAN): it is left out of that frame's mean
        // and counts as neither A nor B
        for (int f = 0; f < o->F; f++) {
            float t = 0;
            for (int ch = 0; ch < 3; ch++) t += (got.frame_rgb[f][ch] - A[ch]) * (B[ch] - A[ch]);
            if (isfinite(t)) {
                res->travel_t[f] += t / e2;
                res->travel_n[f]++;
            }
        }
        const float *c0 = got.frame_rgb[0], *c1 = got.frame_rgb[o->F - 1];
        res->travel_start_a += isfinite(c0[0]) && rl_shapes_nearest_color(c0, got.bg_rgb, NULL) == ca;
        res->travel_end_b += isfinite(c1[0]) && rl_shapes_nearest_color(c1, got.bg_rgb, NULL) == cb;
    }
    for (int f = 0; f < o->F; f++)
        res->travel_t[f] = res->travel_n[f] ? res->travel_t[f] / res->travel_n[f] : NAN;

done:
    free(r.frames);
    free(r.mask);
    free(temb);
    free(vemb);
    free(gemb);
    return RL_OK;
fail:
    free(r.frames);
    free(r.mask);
    free(temb);
    free(vemb);
    free(gemb);
    rl_eval_result_free(res);
    return rc;
}

// ---- text and JSON --------------------------------------------------------------------------

static double pct(int a, int n)
{
    return n ? 100.0 * a / n : 0.0;
}

void rl_eval_print_table(FILE *f, const rl_eval_result *res)
{
    fprintf(f, "source: %s\nclips: %d (%d in-distribution, %d with a held-out pair", res->source,
            res->n_clips, res->total[0], res->total[1]);
    if (res->n_seeds > 1) fprintf(f, "; %d seeds per prompt", res->n_seeds);
    fprintf(f, "), %d frames of %dx%d", res->F, res->H, res->W);
    if (res->guidance > 0) fprintf(f, ", guidance %g", (double)res->guidance);
    fprintf(f, "\n\n");
    fprintf(f, "%-34s %-20s %-20s\n", "adherence", set_name[0], set_name[1]);
    for (int k = 0; k < RL_EVAL_N_ATTR; k++) {
        fprintf(f, "  %-32s", k == RL_EVAL_BG ? "background (when stated)" : attr_name[k]);
        for (int s = 0; s < 2; s++) {
            char cell[32];
            if (res->scored[s][k])
                snprintf(cell, sizeof cell, "%6.1f%% (%d/%d)", pct(res->right[s][k], res->scored[s][k]),
                         res->right[s][k], res->scored[s][k]);
            else
                snprintf(cell, sizeof cell, "     -");
            fprintf(f, " %-20s", cell);
        }
        fprintf(f, "\n");
    }
    fprintf(f, "  %-32s", "persistence (one object)");
    for (int s = 0; s < 2; s++) {
        char cell[32];
        snprintf(cell, sizeof cell, "%6.1f%% (%d/%d)", pct(res->persistent[s], res->total[s]),
                 res->persistent[s], res->total[s]);
        fprintf(f, " %-20s", cell);
    }
    fprintf(f, "\n");
    if (!res->has_clip) {
        fprintf(f, "  %-32s n/a: %s\n", "CLIP score (prompt vs clip)", res->clip_na);
    } else {
        const char *rows[3] = { res->model ? "CLIP score (prompt vs clip)"
                                           : "CLIP score (prompt vs truth)",
                                "  same on ground-truth clips", "  mismatched prompts (chance)" };
        for (int k = 0; k < 3; k++) {
            if (k == 1 && !res->model) continue;   // the source is the ground truth
            fprintf(f, "  %-32s", rows[k]);
            for (int s = 0; s < 2; s++) {
                const double v = k == 0 ? res->clip_gen[s] : k == 1 ? res->clip_truth[s]
                                                                    : res->clip_mismatch[s];
                char cell[32];
                if (res->total[s] && isfinite(v)) snprintf(cell, sizeof cell, "%7.3f", v);
                else snprintf(cell, sizeof cell, "     -");
                fprintf(f, " %-20s", cell);
            }
            fprintf(f, "\n");
        }
    }
    if (res->n_flicker)
        fprintf(f, "\n%-34s %.3f levels RMS (temporal frequencies >= F/4, background pixels; "
                "%d of %d clips have such pixels)\n", "background flicker", res->flicker,
                res->n_flicker, res->n_clips);
    else
        fprintf(f, "\n%-34s n/a: no clip has pixels that stay background in every frame\n",
                "background flicker");
    if (!res->model) {
        fprintf(f, "%-34s n/a: %s\n", "guidance effect", res->na_reason);
        fprintf(f, "%-34s n/a: %s\n", "negative-prompt effect", res->na_reason);
        fprintf(f, "%-34s n/a: %s\n", "prompt travel colour", res->na_reason);
    } else {
        char gs[32] = "the default";
        if (res->guidance > 0) snprintf(gs, sizeof gs, "%g", (double)res->guidance);
        fprintf(f, "%-34s at guidance 1 vs %s (%d clips):", "guidance effect", gs,
                res->n_guidance);
        for (int k = RL_EVAL_COLOR; k < RL_EVAL_N_ATTR; k++)
            fprintf(f, "%s %s %.1f%% vs %.1f%%", k == RL_EVAL_COLOR ? "" : ",",
                    attr_name[k],
                    pct(res->guid_right_one[k], res->guid_scored[k]),
                    pct(res->guid_right_default[k], res->guid_scored[k]));
        fprintf(f, "\n");
        fprintf(f, "%-34s clips showing colour X: %.1f%% with X as negative prompt vs %.1f%% "
                "without (%d prompts)\n", "negative-prompt effect",
                pct(res->neg_x_with, res->n_negative), pct(res->neg_x_without, res->n_negative),
                res->n_negative);
        fprintf(f, "%-34s start at A %.1f%%, end at B %.1f%% (%d prompts); t per frame:",
                "prompt travel colour A -> B", pct(res->travel_start_a, res->n_travel),
                pct(res->travel_end_b, res->n_travel), res->n_travel);
        for (int i = 0; i < res->F && res->n_travel; i++) {
            if (isfinite(res->travel_t[i])) fprintf(f, " %.2f", res->travel_t[i]);
            else fprintf(f, " -");   // no clip shows an object in this frame
        }
        fprintf(f, "\n");
    }
    fprintf(f, "%-34s %.4f\n", "seconds per clip", res->sec_per_clip);
    if (res->has_textsep) {
        fprintf(f, "\ntext separation: captions differing in one attribute, mean L2 distance of "
                "the text\nencoder's last hidden states per token (|h| %.2f); a pair near 0 is "
                "one the UNet cannot tell apart\n", res->text_norm);
        for (int k = 0; k < RL_EVAL_ALL; k++) {
            char pair[64];
            snprintf(pair, sizeof pair, "%s / %s", attr_value_name(k, res->textsep[k].a),
                     attr_value_name(k, res->textsep[k].b));
            fprintf(f, "  %-12s closest %-28s %6.3f   median pair %6.3f\n", attr_key[k], pair,
                    res->textsep[k].min, res->textsep[k].median);
        }
    }
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

// a number, or null when it is not finite (JSON has no NaN)
static void json_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.6f", v);
    else fprintf(f, "null");
}

// The word for attribute k (RL_EVAL_BG .. RL_EVAL_MOTION) of a; NULL when unset.
static const char *attr_word(int k, const rl_shapes_attr *a)
{
    const int v = *attr_field((rl_shapes_attr *)a, k);
    return v < 0 ? NULL : attr_value_name(k, v);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Mean over the L token positions of |a_t - b_t| (b NULL: |a_t|); a, b (L, D). */
static double token_l2(const float *a, const float *b, int L, int D)
{
    double sum = 0;
    for (int t = 0; t < L; t++) {
        double s2 = 0;
        for (int c = 0; c < D; c++) {
            const double x = (double)a[(size_t)t * D + c] - (b ? b[(size_t)t * D + c] : 0.0f);
            s2 += x * x;
        }
        sum += sqrt(s2);
    }
    return sum / L;
}

rl_status rl_eval_text_separation(rl_eval_result *res, rl_eval_encode_fn enc, void *user, int L,
                                  int D, rl_err *err)
{
    enum { MAXV = 16 };
    const rl_shapes_attr base = { .bg = RL_BG_BLACK, .color = RL_COLOR_RED,
                                  .shape = RL_SHAPE_SQUARE, .motion = RL_MOTION_UP };
    const size_t per = (size_t)L * D;
    float *h = malloc(sizeof *h * MAXV * per);
    if (!h) return rl_errf(err, RL_E_NOMEM, "eval: out of memory for text embeddings");
    rl_status rc = RL_OK;
    double norm = 0;
    for (int k = 0; k < RL_EVAL_ALL && rc == RL_OK; k++) {
        const int n = attr_values[k].n;
        for (int v = 0; v < n && rc == RL_OK; v++) {
            rl_shapes_attr a = base;
            *attr_field(&a, k) = v;
            char text[96];
            rl_shapes_caption(text, sizeof text, &a);
            rc = enc(user, text, h + (size_t)v * per, err);
        }
        if (rc) break;
        if (k == 0)
            for (int i = 0; i < n; i++) norm += token_l2(h + (size_t)i * per, NULL, L, D) / n;
        double pairs[MAXV * MAXV];
        int np = 0;
        res->textsep[k].min = INFINITY;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) {
                const double d = token_l2(h + (size_t)i * per, h + (size_t)j * per, L, D);
                pairs[np++] = d;
                if (d < res->textsep[k].min) {
                    res->textsep[k].min = d;
                    res->textsep[k].a = i;
                    res->textsep[k].b = j;
                }
            }
        qsort(pairs, (size_t)np, sizeof *pairs, cmp_double);
        res->textsep[k].median = np % 2 ? pairs[np / 2] : 0.5 * (pairs[np / 2 - 1] + pairs[np / 2]);
    }
    free(h);
    if (rc == RL_OK) {
        res->text_norm = norm;
        res->has_textsep = 1;
    }
    return rc;
}

static void json_attr(FILE *f, const rl_shapes_attr *a)
{
    for (int k = 0; k < RL_EVAL_ALL; k++) {
        fprintf(f, "%s\"%s\": ", k ? ", " : "{", attr_key[k]);
        if (attr_word(k, a)) json_str(f, attr_word(k, a));
        else fprintf(f, "null");
    }
    fprintf(f, "}");
}

// ", got: {...}, confidence: {...}, persistent, flicker" of one clip
static void json_verdict(FILE *f, const rl_eval_clip *c)
{
    fprintf(f, ", \"got\": ");
    json_attr(f, &c->got.a);
    fprintf(f, ", \"confidence\": {\"background\": %.4f, \"colour\": %.4f, \"shape\": %.4f, "
            "\"motion\": %.4f, \"persistence\": %.4f}", c->got.bg_conf, c->got.color_conf,
            c->got.shape_conf, c->got.motion_conf, c->got.persist_conf);
    fprintf(f, ", \"persistent\": %s, \"flicker\": ", c->got.persistent ? "true" : "false");
    json_num(f, c->flicker);
}

void rl_eval_print_json(FILE *f, const rl_eval_result *res)
{
    static const char *const set_key[2] = { "in_distribution", "held_out" };
    fprintf(f, "{\n  \"source\": ");
    json_str(f, res->source);
    fprintf(f, ",\n  \"frames\": %d, \"height\": %d, \"width\": %d,\n  \"adherence\": {", res->F,
            res->H, res->W);
    for (int s = 0; s < 2; s++) {
        fprintf(f, "%s\n    \"%s\": {", s ? "," : "", set_key[s]);
        for (int k = 0; k < RL_EVAL_N_ATTR; k++) {
            fprintf(f, "%s\"%s\": {\"rate\": ", k ? ", " : "", attr_key[k]);
            if (res->scored[s][k]) fprintf(f, "%.6f", (double)res->right[s][k] / res->scored[s][k]);
            else fprintf(f, "null");
            fprintf(f, ", \"n\": %d}", res->scored[s][k]);
        }
        fprintf(f, ", \"persistence\": {\"rate\": %.6f, \"n\": %d}}",
                res->total[s] ? (double)res->persistent[s] / res->total[s] : 0.0, res->total[s]);
    }
    fprintf(f, "\n  },\n  \"seeds_per_prompt\": %d, \"guidance_scale\": ", res->n_seeds);
    json_num(f, res->guidance > 0 ? res->guidance : NAN);
    fprintf(f, ",\n  \"clip_score\": ");
    if (!res->has_clip) {
        fprintf(f, "null, \"clip_score_na\": ");
        json_str(f, res->clip_na);
    } else {
        static const char *const ck[3] = { "clips", "ground_truth", "mismatched" };
        for (int k = 0; k < 3; k++) {
            fprintf(f, "%s\"%s\": {", k ? ", " : "{", ck[k]);
            for (int s = 0; s < 2; s++) {
                fprintf(f, "%s\"%s\": ", s ? ", " : "", set_key[s]);
                const double v = k == 0 ? res->clip_gen[s] : k == 1 ? res->clip_truth[s]
                                                                    : res->clip_mismatch[s];
                json_num(f, k == 1 && !res->model ? res->clip_gen[s] : v);
            }
            fprintf(f, "}");
        }
        fprintf(f, "}");
    }
    fprintf(f, ",\n  \"background_flicker\": ");
    json_num(f, res->flicker);
    fprintf(f, ", \"flicker_clips\": %d,\n  \"seconds_per_clip\": %.6f,\n", res->n_flicker,
            res->sec_per_clip);
    if (!res->model) {
        fprintf(f, "  \"guidance\": null, \"negative\": null, \"travel\": null, \"na_reason\": ");
        json_str(f, res->na_reason);
        fprintf(f, ",\n");
    } else {
        fprintf(f, "  \"guidance\": {\"n\": %d", res->n_guidance);
        for (int w = 0; w < 2; w++) {
            const int *right = w ? res->guid_right_default : res->guid_right_one;
            fprintf(f, ", \"%s\": %.6f", w ? "all_at_default" : "all_at_1",
                    pct(right[RL_EVAL_ALL], res->guid_scored[RL_EVAL_ALL]) / 100);
            fprintf(f, ", \"%s\": {", w ? "at_default" : "at_1");
            for (int k = 0; k < RL_EVAL_N_ATTR; k++) {
                fprintf(f, "%s\"%s\": ", k ? ", " : "", attr_key[k]);
                json_num(f, res->guid_scored[k] ? pct(right[k], res->guid_scored[k]) / 100 : NAN);
            }
            fprintf(f, "}");
        }
        fprintf(f, "},\n");
        fprintf(f, "  \"negative\": {\"n\": %d, \"x_without\": %.6f, \"x_with\": %.6f},\n",
                res->n_negative,
                res->n_negative ? (double)res->neg_x_without / res->n_negative : 0,
                res->n_negative ? (double)res->neg_x_with / res->n_negative : 0);
        fprintf(f, "  \"travel\": {\"n\": %d, \"start_a\": %.6f, \"end_b\": %.6f, \"t\": [",
                res->n_travel, res->n_travel ? (double)res->travel_start_a / res->n_travel : 0,
                res->n_travel ? (double)res->travel_end_b / res->n_travel : 0);
        for (int i = 0; i < res->F; i++) {
            fprintf(f, "%s", i ? ", " : "");
            json_num(f, res->travel_t[i]);
        }
        fprintf(f, "]},\n");
    }
    if (res->has_textsep) {
        fprintf(f, "  \"text_separation\": {\"norm\": %.6f", res->text_norm);
        for (int k = 0; k < RL_EVAL_ALL; k++) {
            fprintf(f, ", \"%s\": {\"closest\": [", attr_key[k]);
            json_str(f, attr_value_name(k, res->textsep[k].a));
            fprintf(f, ", ");
            json_str(f, attr_value_name(k, res->textsep[k].b));
            fprintf(f, "], \"min\": %.6f, \"median\": %.6f}", res->textsep[k].min,
                    res->textsep[k].median);
        }
        fprintf(f, "},\n");
    } else {
        fprintf(f, "  \"text_separation\": null,\n");
    }
    fprintf(f, "  \"clips\": [");
    for (int i = 0; i < res->n_clips; i++) {
        const rl_eval_clip *c = &res->clips[i];
        fprintf(f, "%s\n    {\"prompt\": ", i ? "," : "");
        json_str(f, c->prompt);
        fprintf(f, ", \"seed\": %llu, \"set\": \"%s\", \"want\": ", (unsigned long long)c->seed,
                set_key[c->set]);
        json_attr(f, &c->want);
        json_verdict(f, c);
        fprintf(f, ", \"clip_score\": ");
        json_num(f, c->clip_score);
        fprintf(f, ", \"clip_score_truth\": ");
        json_num(f, c->clip_truth);
        fprintf(f, ", \"seconds\": %.6f}", c->seconds);
    }
    fprintf(f, "\n  ]\n}\n");
}

// ---- the HTML report ------------------------------------------------------------------------

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static rl_status make_dir(const char *path, rl_err *err)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return RL_OK;
    }
    return rl_errf(err, RL_E_IO, "%s: cannot create the report folder: %s", path,
                   errno == EEXIST ? "a file of that name exists" : strerror(errno));
}

rl_status rl_eval_write_report(const char *dir, const rl_eval_result *res, rl_err *err)
{
    char path[4096];
    rl_status rc = make_dir(dir, err);
    if (rc != RL_OK) return rc;
    snprintf(path, sizeof path, "%s/clips", dir);
    if ((rc = make_dir(path, err)) != RL_OK) return rc;

    char *html = NULL;
    size_t html_len = 0;
    FILE *f = open_memstream(&html, &html_len);
    if (!f) return rl_errf(err, RL_E_NOMEM, "eval report: no memory for the page");
    fprintf(f, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>reel eval</title>\n"
            "<style>body{font-family:sans-serif;background:#fafafa;margin:1.5em}"
            "pre{background:#fff;border:1px solid #ccc;padding:1em;font-size:13px}"
            ".clips{display:flex;flex-wrap:wrap;gap:10px}"
            ".clip{background:#fff;border:2px solid #ccc;padding:6px;width:256px;font-size:12px}"
            ".clip.miss{border-color:#d22;background:#fff0f0}.bad{color:#d22;font-weight:bold}"
            "video,img{width:256px;height:256px;image-rendering:pixelated;display:block}"
            "</style></head><body>\n<h1>reel eval</h1>\n<pre>");
    {
        char *table = NULL;
        size_t table_len = 0;
        FILE *t = open_memstream(&table, &table_len);
        if (t) {
            rl_eval_print_table(t, res);
            fclose(t);
            html_text(f, table);
        }
        free(table);
    }
    fprintf(f, "</pre>\n<p>Each clip with its prompt and the analyzer's verdict; a red frame "
            "marks a miss (a stated attribute not shown, or more or less than one object).</p>\n");
    for (int set = 0; set < 2; set++) {
        fprintf(f, "<h2>%s</h2>\n<div class=\"clips\">\n", set_name[set]);
        for (int i = 0; i < res->n_clips; i++) {
            const rl_eval_clip *c = &res->clips[i];
            if (c->set != set) continue;
            const int miss = !c->hit[RL_EVAL_ALL] || !c->got.persistent;
            fprintf(f, "<div class=\"clip%s\">", miss ? " miss" : "");
            if (c->frames) {
                snprintf(path, sizeof path, "%s/clips/%03d.mp4", dir, i);
                rl_video_opts vo = rl_video_default_opts();
                vo.scale = 4;
                rl_video *v = NULL;
                rc = rl_video_open(&v, path, res->W, res->H, 8, &vo, err);
                const size_t fb = (size_t)res->H * res->W * 3;
                for (int fr = 0; rc == RL_OK && fr < res->F; fr++)
                    rc = rl_video_push(v, c->frames + fr * fb, err);
                if (rc == RL_OK) rc = rl_video_close(&v, err);
                else rl_video_abort(&v);
                if (rc != RL_OK) goto fail;
                fprintf(f, "<video src=\"clips/%03d.mp4\" autoplay loop muted playsinline>"
                        "</video>", i);
            } else {
                fprintf(f, "<p>(frames not kept)</p>");
            }
            fprintf(f, "<b>");
            html_text(f, c->prompt);
            fprintf(f, "</b><br>seed %llu<br>", (unsigned long long)c->seed);
            for (int k = 0; k < RL_EVAL_ALL; k++) {
                if (c->hit[k] < 0) continue;
                fprintf(f, "%s: <span class=\"%s\">%s</span> (%.2f)", attr_name[k],
                        c->hit[k] ? "ok" : "bad",
                        attr_word(k, &c->got.a) ? attr_word(k, &c->got.a) : "none",
                        k == RL_EVAL_BG ? c->got.bg_conf : k == RL_EVAL_COLOR ? c->got.color_conf
                        : k == RL_EVAL_SHAPE ? c->got.shape_conf : c->got.motion_conf);
                if (!c->hit[k]) fprintf(f, ", wanted %s", attr_word(k, &c->want));
                fprintf(f, "<br>");
            }
            fprintf(f, "objects: <span class=\"%s\">%s</span> (%.2f); ",
                    c->got.persistent ? "ok" : "bad",
                    c->got.persistent ? "one in every frame" : "not one in every frame",
                    c->got.persist_conf);
            if (isfinite(c->flicker)) fprintf(f, "flicker %.2f", c->flicker);
            else fprintf(f, "flicker n/a (no pixel stays background)");
            if (isfinite(c->clip_score)) {
                fprintf(f, "<br>CLIP score %.3f", c->clip_score);
                if (isfinite(c->clip_truth)) fprintf(f, " (ground truth %.3f)", c->clip_truth);
            }
            fprintf(f, "</div>\n");
        }
        fprintf(f, "</div>\n");
    }
    fprintf(f, "</body></html>\n");
    fclose(f);
    f = NULL;
    snprintf(path, sizeof path, "%s/index.html", dir);
    rc = rl_atomic_write_file(path, html, html_len, err);
    free(html);
    return rc;
fail:
    fclose(f);
    free(html);
    return rc;
}

// ---- clips read from files ------------------------------------------------------------------

/* Area average of frames (F, SH, SW, 3) onto (F, DH, DW, 3): each output pixel is the mean of
 * the source rectangle it covers, partial pixels weighted by their overlap (separable: rows,
 * then columns). tmp holds (SH, DW, 3) floats. */
static void resample_area(uint8_t *dst, int DH, int DW, const uint8_t *src, int F, int SH, int SW,
                          float *tmp)
{
    for (int f = 0; f < F; f++) {
        const uint8_t *s_f = src + (size_t)f * SH * SW * 3;
        for (int y = 0; y < SH; y++)
            for (int x = 0; x < DW; x++) {
                const double a = (double)x * SW / DW, b = (double)(x + 1) * SW / DW;
                double acc[3] = { 0 };
                for (int k = (int)a; k < SW && k < b; k++) {
                    const double w = fmin(b, k + 1) - fmax(a, k);
                    for (int ch = 0; ch < 3; ch++) acc[ch] += w * s_f[((size_t)y * SW + k) * 3 + ch];
                }
                for (int ch = 0; ch < 3; ch++)
                    tmp[((size_t)y * DW + x) * 3 + ch] = (float)(acc[ch] / (b - a));
            }
        uint8_t *d_f = dst + (size_t)f * DH * DW * 3;
        for (int y = 0; y < DH; y++) {
            const double a = (double)y * SH / DH, b = (double)(y + 1) * SH / DH;
            for (int x = 0; x < DW; x++)
                for (int ch = 0; ch < 3; ch++) {
                    double acc = 0;
                    for (int k = (int)a; k < SH && k < b; k++)
                        acc += (fmin(b, k + 1) - fmax(a, k)) * tmp[((size_t)k * DW + x) * 3 + ch];
                    d_f[((size_t)y * DW + x) * 3 + ch] = (uint8_t)lrint(fmin(255.0, acc / (b - a)));
                }
        }
    }
}

rl_status rl_eval_analyze_frames(rl_eval_clip *c, const uint8_t *frames, int F, int H, int W,
                                 const char *prompt, rl_err *err)
{
    *c = (rl_eval_clip){ .want = { -1, -1, -1, -1 }, .flicker = NAN, .clip_score = NAN,
                         .clip_truth = NAN };
    for (int k = 0; k < RL_EVAL_N_ATTR; k++) c->hit[k] = -1;
    if (F < 1 || F > RL_SHAPES_MAX_FRAMES || H < 8 || W < 8)
        return rl_errf(err, RL_E_PARAM, "clip of %d frames of %dx%d; the analyzer takes 1..%d "
                       "frames of at least 8x8", F, W, H, RL_SHAPES_MAX_FRAMES);
    const int N = RL_EVAL_FILE_SIDE;
    rl_status rc = RL_OK;
    uint8_t *small = NULL, *mask = malloc((size_t)N * N);
    float *tmp = NULL;
    if (!mask) goto nomem;
    if (H != N || W != N) {
        small = malloc((size_t)F * N * N * 3);
        tmp = malloc(sizeof(float) * (size_t)H * N * 3);
        if (!small || !tmp) goto nomem;
        resample_area(small, N, N, frames, F, H, W, tmp);
        frames = small;
    }
    if ((rc = rl_shapes_analyze(&c->got, frames, F, N, N, mask, err)) != RL_OK) goto done;
    if ((rc = flicker(&c->flicker, frames, mask, F, N, N, err)) != RL_OK) goto done;
    if (prompt) {
        snprintf(c->prompt, sizeof c->prompt, "%s", prompt);
        rl_shapes_attr a;
        if (rl_shapes_caption_parse(&a, prompt, NULL) == RL_OK) {
            c->want = a;
            score(c);
        }
    }
    goto done;
nomem:
    rc = rl_errf(err, RL_E_NOMEM, "no memory to analyze a clip of %d frames of %dx%d", F, W, H);
done:
    free(small);
    free(tmp);
    free(mask);
    return rc;
}

void rl_eval_print_files(FILE *f, const rl_eval_clip *clips, const char *const *names, int n,
                         int json)
{
    int right[RL_EVAL_N_ATTR] = { 0 }, scored[RL_EVAL_N_ATTR] = { 0 }, persistent = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < RL_EVAL_N_ATTR; k++)
            if (clips[i].hit[k] >= 0) {
                scored[k]++;
                right[k] += clips[i].hit[k];
            }
        persistent += clips[i].got.persistent;
    }
    if (json) {
        fprintf(f, "{\n  \"clips\": [");
        for (int i = 0; i < n; i++) {
            const rl_eval_clip *c = &clips[i];
            fprintf(f, "%s\n    {\"file\": ", i ? "," : "");
            json_str(f, names[i]);
            fprintf(f, ", \"prompt\": ");
            if (c->prompt[0]) json_str(f, c->prompt);
            else fprintf(f, "null");
            fprintf(f, ", \"want\": ");
            json_attr(f, &c->want);
            json_verdict(f, c);
            fprintf(f, "}");
        }
        fprintf(f, "\n  ],\n  \"adherence\": {");
        for (int k = 0; k < RL_EVAL_N_ATTR; k++) {
            fprintf(f, "%s\"%s\": ", k ? ", " : "", attr_key[k]);
            json_num(f, scored[k] ? (double)right[k] / scored[k] : NAN);
        }
        fprintf(f, "},\n  \"persistence\": ");
        json_num(f, n ? (double)persistent / n : NAN);
        fprintf(f, "\n}\n");
        return;
    }
    for (int i = 0; i < n; i++) {
        const rl_eval_clip *c = &clips[i];
        fprintf(f, "%s\n", names[i]);
        if (c->prompt[0]) fprintf(f, "  prompt      %s%s\n", c->prompt,
                                  c->want.shape < 0 ? " (not a shapes-world caption: not scored)" : "");
        const float conf[RL_EVAL_ALL] = { c->got.bg_conf, c->got.color_conf, c->got.shape_conf,
                                          c->got.motion_conf };
        for (int k = 0; k < RL_EVAL_ALL; k++) {
            const char *w = attr_word(k, &c->got.a);
            fprintf(f, "  %-11s %-14s", attr_name[k], w ? w : "none");
            if (w) fprintf(f, " (confidence %.2f)", conf[k]);
            if (c->hit[k] == 1) fprintf(f, "  ok");
            else if (c->hit[k] == 0) fprintf(f, "  MISS: asked for %s", attr_word(k, &c->want));
            fprintf(f, "\n");
        }
        fprintf(f, "  %-11s %s (confidence %.2f)\n", "objects",
                c->got.persistent ? "one in every frame" : "not one in every frame",
                c->got.persist_conf);
        if (isfinite(c->flicker)) fprintf(f, "  %-11s %.3f levels RMS\n", "flicker", c->flicker);
    }
    if (scored[RL_EVAL_SHAPE] > 0) {
        fprintf(f, "\nadherence over %d clip%s with a shapes-world prompt:", scored[RL_EVAL_SHAPE],
                scored[RL_EVAL_SHAPE] == 1 ? "" : "s");
        for (int k = 0; k < RL_EVAL_N_ATTR; k++)
            if (scored[k]) fprintf(f, " %s %.1f%%", attr_name[k], 100.0 * right[k] / scored[k]);
        fprintf(f, "\n");
    }
}
