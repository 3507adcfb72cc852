/* tests/test_pipeline.c - the whole pipeline against a diffusers AnimateDiffPipeline run of the
 * same tiny model (tools/fixtures/make_pipeline.py: <model>_run.safetensors), step by step:
 * token ids, text embeddings, initial latents, timesteps, first guided noise prediction,
 * latents after step 1 and after every step, final latents, decoded frames; the same run at
 * guidance 1 (one UNet pass in reel, two in the reference). Also parameter errors, cancellation,
 * the guidance formula and guidance rescale (a whole run against tiny_a_ext's rescale_* case),
 * and 1 vs 2 threads. */
#include <math.h>
#include <string.h>

#include "core/guide.h"
#include "core/reel.h"
#include "temporal/window.h"
#include "tests/harness.h"

typedef struct {
    rl_test *t;
    rl_fixture *fx;
    int C, F, h, w, H, W;
    size_t n_lat;
    int steps_seen, frames_seen, cancel_at_step;
    const int64_t *timesteps;
    size_t n_timesteps;
    int t_ok;
    const float *lat_steps;     // (steps, 1, C, F, h, w) the reference after every step
    double worst_step;          // largest error after any step, over the step's largest value
    int worst_at;
} run_state;

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static int on_step(void *user, int step, int t, const float *eps, const float *lat)
{
    run_state *s = user;
    const int shape[5] = { 1, s->C, s->F, s->h, s->w };
    if (step == -1) {
        // torch.randn with the same generator: the same float32 values (core/rng is bit-exact);
        // times init_noise_sigma (1 for DDIM)
        const float *want = rl_fixture_f32(s->fx, "latents_init", 5, shape);
        if (want) rl_check_close(s->t, "latents_init", lat, want, s->n_lat, 1e-6, 1e-6);
        return 0;
    }
    if ((size_t)step < s->n_timesteps && s->timesteps[step] != t) s->t_ok = 0;
    s->steps_seen++;
    if (step == 0) {
        const float *e0 = rl_fixture_f32(s->fx, "eps_0", 5, shape);
        const float *l1 = rl_fixture_f32(s->fx, "latents_1", 5, shape);
        // two UNet passes in float32 and the guidance amplification (g = 7.5): within 1e-4 of
        // the largest value, the contract in MODELS.md
        if (e0) rl_check_close(s->t, "eps_0 (guided)", eps, e0, s->n_lat, 1e-4 * max_abs(e0, s->n_lat), 0);
        if (l1) rl_check_close(s->t, "latents_1", lat, l1, s->n_lat, 1e-4 * max_abs(l1, s->n_lat), 0);
    }
    if (s->lat_steps && (size_t)step < s->n_timesteps) {
        // every step, so a drift is pinned to the step where it starts (checked after the run)
        const float *want = s->lat_steps + (size_t)step * s->n_lat;
        double e = 0;
        for (size_t i = 0; i < s->n_lat; i++) e = fmax(e, fabs((double)lat[i] - want[i]));
        e /= max_abs(want, s->n_lat);
        if (e > s->worst_step) {
            s->worst_step = e;
            s->worst_at = step;
        }
    }
    return step == s->cancel_at_step;
}

static int on_frame(void *user, int frame, const uint8_t *rgb, int width, int height)
{
    run_state *s = user;
    if (frame == s->frames_seen && width == s->W && height == s->H) s->frames_seen++;
    (void)rgb;
    return 0;
}

static void test_run(rl_test *t, const char *model)
{
    char rel[256];
    snprintf(rel, sizeof rel, "pipeline/%s_run.safetensors", model);
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, rel)) return;
    rl_err err = { 0 };
    rl_ctx *ctx = NULL;
    if (!rl_test_check(t, rl_ctx_open(&ctx, rl_test_fixture_path(t, rl_fixture_str(&fx, "model_dir") +
                                                                      strlen("tests/fixtures/")),
                                      2, &err) == RL_OK, "open %s: %s", model, err.msg)) goto done;
    const rl_model_info info = rl_ctx_info(ctx);
    const int L = info.text_len, D = info.text_dim;

    // ---- token ids: exact
    const char *prompt = rl_fixture_str(&fx, "prompt"), *neg = rl_fixture_str(&fx, "negative_prompt");
    size_t n;
    const int64_t *ids_c = rl_fixture_i64(&fx, "ids_cond", &n);
    const int64_t *ids_u = rl_fixture_i64(&fx, "ids_uncond", &n);
    if (!ids_c || !ids_u || !RL_CHECK(t, n == (size_t)L)) goto done;
    int *ids = rl_test_alloc(t, (size_t)L * sizeof(int));
    int same_c = rl_tokenize(ctx, prompt, ids, &err) == RL_OK;
    for (int i = 0; i < L; i++) same_c &= ids[i] == ids_c[i];
    int same_u = rl_tokenize(ctx, neg, ids, &err) == RL_OK;
    for (int i = 0; i < L; i++) same_u &= ids[i] == ids_u[i];
    rl_test_check(t, same_c && same_u, "token ids exact (prompt %d, negative %d)", same_c, same_u);

    // ---- embeddings: within 1e-4 of the largest value
    float *emb = rl_test_floats(t, (size_t)L * D);
    const float *want_c = rl_fixture_f32(&fx, "emb_cond", 3, (int[]){ 1, L, D });
    const float *want_u = rl_fixture_f32(&fx, "emb_uncond", 3, (int[]){ 1, L, D });
    if (!want_c || !want_u) goto done;
    if (RL_CHECK(t, rl_encode_prompt(ctx, prompt, emb, &err) == RL_OK))
        rl_check_close(t, "emb_cond", emb, want_c, (size_t)L * D, 1e-4 * max_abs(want_c, (size_t)L * D), 0);
    if (RL_CHECK(t, rl_encode_prompt(ctx, neg, emb, &err) == RL_OK))
        rl_check_close(t, "emb_uncond", emb, want_u, (size_t)L * D, 1e-4 * max_abs(want_u, (size_t)L * D), 0);

    // ---- the run
    rl_gen_params p = rl_gen_default_params();
    p.prompt = prompt;
    p.negative_prompt = neg;
    p.seed = (uint64_t)rl_fixture_int(&fx, "seed");
    p.steps = rl_fixture_int(&fx, "steps");
    p.guidance = (float)rl_fixture_float(&fx, "guidance");
    p.frames = rl_fixture_int(&fx, "frames");
    p.height = rl_fixture_int(&fx, "height");
    p.width = rl_fixture_int(&fx, "width");
    run_state s = { .t = t, .fx = &fx, .C = info.latent_channels, .F = p.frames,
                    .h = p.height / info.vae_scale, .w = p.width / info.vae_scale,
                    .H = p.height, .W = p.width,
                    .cancel_at_step = -2, .t_ok = 1 };
    s.n_lat = (size_t)s.C * s.F * s.h * s.w;
    s.timesteps = rl_fixture_i64(&fx, "timesteps", &s.n_timesteps);
    s.lat_steps = rl_fixture_f32(&fx, "latents_steps", 6, (int[]){ p.steps, 1, s.C, s.F, s.h, s.w });
    s.worst_at = -1;
    p.on_step = on_step; p.step_user = &s;
    p.on_frame = on_frame; p.frame_user = &s;
    p.latents_out = rl_test_floats(t, s.n_lat);
    const size_t n_frames = (size_t)p.frames * p.height * p.width * 3;
    p.frames_out = rl_test_floats(t, n_frames);
    rl_status rc = rl_generate(ctx, &p, &err);
    if (!rl_test_check(t, rc == RL_OK, "generate: %s", err.msg)) goto done;
    rl_test_check(t, s.t_ok && s.steps_seen == p.steps && s.n_timesteps == (size_t)p.steps,
                  "timesteps as the reference (%d steps seen)", s.steps_seen);
    RL_CHECK(t, s.frames_seen == p.frames);
    const float *lf = rl_fixture_f32(&fx, "latents_final", 5, (int[]){ 1, s.C, s.F, s.h, s.w });
    const float *fr = rl_fixture_f32(&fx, "frames", 4, (int[]){ p.frames, p.height, p.width, 3 });
    // float32 error of every UNet call, amplified by guidance and carried through the steps
    if (lf) rl_check_close(t, "latents_final", p.latents_out, lf, s.n_lat, 1e-3 * max_abs(lf, s.n_lat), 0);
    if (fr) rl_check_close(t, "frames", p.frames_out, fr, n_frames, 1e-3, 0);
    // the error after every step stays inside the end-of-loop contract (1e-3 of the largest
    // value); the line names the worst step
    rl_test_check(t, s.lat_steps && s.worst_step <= 1e-3, "latents after each of %d steps: worst "
                  "%.3g of the largest value, at step %d", p.steps, s.worst_step, s.worst_at + 1);

    // ---- guidance 1: reel runs the conditional pass alone; the reference computes
    // e_u + 1 (e_c - e_u) from both. Same contract as the guided run.
    {
        rl_gen_params q = p;
        q.guidance = 1.0f;
        q.on_step = NULL; q.on_frame = NULL;
        q.latents_out = rl_test_floats(t, s.n_lat);
        q.frames_out = NULL;
        const float *g1 = rl_fixture_f32(&fx, "g1_latents_final", 5, (int[]){ 1, s.C, s.F, s.h, s.w });
        if (g1 && RL_CHECK(t, rl_generate(ctx, &q, &err) == RL_OK))
            rl_check_close(t, "latents_final at guidance 1", q.latents_out, g1, s.n_lat,
                           1e-3 * max_abs(g1, s.n_lat), 0);
    }

    // ---- same bytes with one thread
    {
        rl_ctx *one = NULL;
        if (RL_CHECK(t, rl_ctx_open(&one, rl_test_fixture_path(t, rl_fixture_str(&fx, "model_dir") +
                                                                    strlen("tests/fixtures/")),
                                    1, &err) == RL_OK)) {
            rl_gen_params q = p;
            q.on_step = NULL; q.on_frame = NULL;
            q.latents_out = rl_test_floats(t, s.n_lat);
            q.frames_out = rl_test_floats(t, n_frames);
            if (RL_CHECK(t, rl_generate(one, &q, &err) == RL_OK))
                rl_check_bitwise(t, "frames 1 vs 2 threads", q.frames_out, p.frames_out, n_frames);
            rl_ctx_close(&one);
        }
    }

    // ---- cancellation from the step callback
    s.cancel_at_step = 0;
    p.latents_out = NULL; p.frames_out = NULL; p.on_frame = NULL;
    rc = rl_generate(ctx, &p, &err);
    rl_test_check(t, rc == RL_E_INTERRUPTED, "cancel: %s", err.msg);

done:
    rl_ctx_close(&ctx);
    RL_CHECK(t, ctx == NULL);
    rl_fixture_close(&fx);
}

static void test_params(rl_test *t, const char *arg)
{
    (void)arg;
    rl_err err = { 0 };
    rl_ctx *ctx = (rl_ctx *)1;
    rl_status rc = rl_ctx_open(&ctx, "/nonexistent/model", 1, &err);
    rl_test_check(t, rc == RL_E_MISSING && ctx == NULL && strstr(err.msg, "/nonexistent/model"),
                  "missing folder: %s", err.msg);
    if (!RL_CHECK(t, rl_ctx_open(&ctx, rl_test_fixture_path(t, "models/tiny_a"), 1, &err) == RL_OK))
        return;
    const rl_gen_params base = rl_gen_default_params();
    struct { const char *what; rl_gen_params p; } bad[] = {
        { "frames 0", base }, { "width 12", base }, { "steps 0", base }, { "no prompt", base },
        { "guidance nan", base }, { "frames 5000", base }, { "overlap = context", base },
        { "freeinit cutoff 0", base }, { "scheduler 9", base }, { "eta 0.5", base },
        { "guidance rescale 1.5", base },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) bad[i].p.prompt = "x";
    bad[0].p.frames = 0;
    bad[1].p.width = 12;
    bad[2].p.steps = 0;
    bad[3].p.prompt = NULL;
    bad[4].p.guidance = NAN;
    bad[5].p.frames = 5000;
    bad[6].p.frames = 8; bad[6].p.context_frames = 4; bad[6].p.context_overlap = 4;
    bad[7].p.freeinit_iters = 2; bad[7].p.freeinit_cutoff = 0.0f;
    bad[8].p.scheduler = (rl_gen_sched)9;
    bad[9].p.eta = 0.5f;
    bad[10].p.guidance_rescale = 1.5f;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = rl_generate(ctx, &bad[i].p, &err);
        rl_test_check(t, rc == RL_E_PARAM, "%s -> %s: %s", bad[i].what, rl_status_str(rc), err.msg);
    }
    // guidance 1: one UNet pass (no unconditional prompt), still a valid clip
    rl_gen_params p = base;
    p.prompt = "a red circle";
    p.frames = 2; p.steps = 2; p.guidance = 1.0f;
    rc = rl_generate(ctx, &p, &err);
    rl_test_check(t, rc == RL_OK, "guidance 1: %s", rc == RL_OK ? "ok" : err.msg);
    rl_ctx_close(&ctx);
    rl_ctx_close(&ctx);   // safe on NULL
}

// ---- windows, FreeInit, DDPM, Euler, travel vs tools/fixtures/make_pipeline_ext.py -------

typedef struct {
    size_t n_lat;
    float *eps_0;            // (C, F, h, w) the first step's guided (window-averaged) eps
    float *reinit;           // (C, F, h, w) the latents FreeInit's second pass starts from
    int n_init, n_steps;     // step -1 calls, steps seen
} ext_state;

static int ext_step(void *user, int step, int t, const float *eps, const float *lat)
{
    ext_state *s = user;
    (void)t;
    if (step < 0) {
        if (s->n_init++ == 1 && s->reinit) memcpy(s->reinit, lat, s->n_lat * sizeof(float));
        return 0;
    }
    if (step == 0) memcpy(s->eps_0, eps, s->n_lat * sizeof(float));
    s->n_steps++;
    return 0;
}

/* The fixture's run settings, and the case's own (arg: win, loop, fi, ddpm, euler, travel). */
static rl_gen_params ext_params(rl_fixture *fx, const char *arg)
{
    rl_gen_params p = rl_gen_default_params();
    p.prompt = rl_fixture_str(fx, "prompt");
    p.negative_prompt = rl_fixture_str(fx, "negative_prompt");
    p.seed = (uint64_t)rl_fixture_int(fx, "seed");
    p.steps = rl_fixture_int(fx, "steps");
    p.guidance = (float)rl_fixture_float(fx, "guidance");
    p.height = rl_fixture_int(fx, "height");
    p.width = rl_fixture_int(fx, "width");
    p.frames = 4;
    if (!strcmp(arg, "win") || !strcmp(arg, "loop")) {
        p.frames = 7;
        p.context_frames = 4;
        p.context_overlap = 2;
        p.loop = !strcmp(arg, "loop");
    } else if (!strcmp(arg, "fi")) {
        p.freeinit_iters = 2;
        p.freeinit_butterworth = 1;
        p.freeinit_cutoff = 0.25f;
    } else if (!strcmp(arg, "ddpm")) {
        p.scheduler = RL_GEN_SCHED_DDPM;
    } else if (!strcmp(arg, "euler")) {
        p.scheduler = RL_GEN_SCHED_EULER;
    } else if (!strcmp(arg, "rescale")) {
        p.guidance_rescale = (float)rl_fixture_float(fx, "guidance_rescale");
    } else if (!strcmp(arg, "travel")) {
        // the prompt at frame 0, travel_to at frame 4, linear: each frame's cross-attention
        // reads its own interpolated text
        static rl_keyframe kf[2];
        kf[0] = (rl_keyframe){ 0, p.prompt };
        kf[1] = (rl_keyframe){ 4, rl_fixture_str(fx, "travel_to") };
        p.prompt = NULL;
        p.keyframes = kf;
        p.n_keyframes = 2;
        p.interp = RL_INTERP_LINEAR;
        p.frames = 5;
    }
    return p;
}

static void test_ext(rl_test *t, const char *arg)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, "pipeline/tiny_a_ext.safetensors")) return;
    rl_err err = { 0 };
    rl_ctx *ctx = NULL;
    if (!rl_test_check(t, rl_ctx_open(&ctx, rl_test_fixture_path(t, "models/tiny_a"), 2, &err) == RL_OK,
                       "open tiny_a: %s", err.msg)) goto done;
    const rl_model_info info = rl_ctx_info(ctx);
    rl_gen_params p = ext_params(&fx, arg);
    const int shape[5] = { 1, info.latent_channels, p.frames, p.height / info.vae_scale,
                           p.width / info.vae_scale };
    ext_state s = { .n_lat = (size_t)shape[1] * shape[2] * shape[3] * shape[4] };
    s.eps_0 = rl_test_floats(t, s.n_lat);
    if (!strcmp(arg, "fi")) s.reinit = rl_test_floats(t, s.n_lat);
    p.on_step = ext_step;
    p.step_user = &s;
    p.latents_out = rl_test_floats(t, s.n_lat);
    if (!rl_test_check(t, rl_generate(ctx, &p, &err) == RL_OK, "generate %s: %s", arg, err.msg))
        goto done;
    const int passes = p.freeinit_iters > 1 ? p.freeinit_iters : 1;
    rl_test_check(t, s.n_steps == passes * p.steps && s.n_init == passes,
                  "%d steps in %d passes (step -1 calls %d)", s.n_steps, passes, s.n_init);
    char name[64];
    snprintf(name, sizeof name, "%s_eps_0", arg);
    const float *e0 = rl_fixture_f32(&fx, name, 5, shape);
    // the first prediction: UNet passes in float32 (one per window), guidance 6 amplifies their
    // rounding: the pipeline contract, 1e-4 of the largest value
    if (e0) rl_check_close(t, name, s.eps_0, e0, s.n_lat, 1e-4 * max_abs(e0, s.n_lat), 0);
    if (s.reinit) {
        const float *ri = rl_fixture_f32(&fx, "fi_reinit", 5, shape);
        // carries the first pass's error (scaled down by sqrt(abar_T)) and float32 FFTs
        if (ri) rl_check_close(t, "fi_reinit", s.reinit, ri, s.n_lat, 1e-4 * max_abs(ri, s.n_lat), 0);
    }
    snprintf(name, sizeof name, "%s_latents_final", arg);
    const float *lf = rl_fixture_f32(&fx, name, 5, shape);
    // every step's float32 UNet error, amplified by guidance, carried through the loop
    if (lf) rl_check_close(t, name, p.latents_out, lf, s.n_lat, 1e-3 * max_abs(lf, s.n_lat), 0);

    // the same bytes again, and with one thread (DDPM's noise and FreeInit's fresh noise come
    // from the seeded generator, FFTW plans are FFTW_ESTIMATE)
    rl_gen_params q = p;
    q.on_step = NULL;
    q.latents_out = rl_test_floats(t, s.n_lat);
    if (RL_CHECK(t, rl_generate(ctx, &q, &err) == RL_OK))
        rl_check_bitwise(t, "rerun", q.latents_out, p.latents_out, s.n_lat);
    rl_ctx *one = NULL;
    if (RL_CHECK(t, rl_ctx_open(&one, rl_test_fixture_path(t, "models/tiny_a"), 1, &err) == RL_OK) &&
        RL_CHECK(t, rl_generate(one, &q, &err) == RL_OK))
        rl_check_bitwise(t, "1 vs 2 threads", q.latents_out, p.latents_out, s.n_lat);
    rl_ctx_close(&one);
done:
    rl_ctx_close(&ctx);
    rl_fixture_close(&fx);
}

/* Windows that cover the clip in one piece change nothing, bit for bit; so does FreeInit with
 * one pass. A clip of many windows: every frame's weights sum to 1, the clip has its frames,
 * and the seam is measured (mean |frame f+1 - frame f| where a window starts, against inside
 * windows), with overlap 0 (hard cuts) and overlap 2 (cross-fades). */
static void test_windows(rl_test *t, const char *arg)
{
    (void)arg;
    rl_err err = { 0 };
    rl_ctx *ctx = NULL;
    if (!RL_CHECK(t, rl_ctx_open(&ctx, rl_test_fixture_path(t, "models/tiny_a"), 2, &err) == RL_OK))
        return;
    const rl_model_info info = rl_ctx_info(ctx);
    rl_gen_params p = rl_gen_default_params();
    p.prompt = "a red circle moves left";
    p.steps = 3; p.width = 32; p.height = 32; p.frames = 5; p.seed = 5;
    const size_t n_lat = (size_t)info.latent_channels * p.frames * (32 / info.vae_scale) *
                         (32 / info.vae_scale);
    float *base = rl_test_floats(t, n_lat), *got = rl_test_floats(t, n_lat);
    p.latents_out = base;
    if (!RL_CHECK(t, rl_generate(ctx, &p, &err) == RL_OK)) goto done;
    struct { const char *what; int context, loop, fi; } same[] = {
        { "context = frames", 5, 0, 0 }, { "context > frames", 9, 0, 0 },
        { "context = frames, loop", 5, 1, 0 }, { "FreeInit 1 pass", 0, 0, 1 },
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        rl_gen_params q = p;
        q.context_frames = same[i].context;
        q.loop = same[i].loop;
        q.freeinit_iters = same[i].fi;
        q.latents_out = got;
        if (RL_CHECK(t, rl_generate(ctx, &q, &err) == RL_OK))
            rl_check_bitwise(t, same[i].what, got, base, n_lat);
    }

    // weights of every frame sum to 1 (the plan rl_generate uses)
    for (int loop = 0; loop < 2; loop++) {
        rl_windows w;
        if (!RL_CHECK(t, rl_windows_plan(&w, 12, 4, 2, loop, &err) == RL_OK)) continue;
        double worst = 0;
        for (int f = 0; f < 12; f++) {
            double sum = 0;
            for (size_t i = 0; i < (size_t)w.n * w.len; i++)
                if (w.idx[i] == f) sum += w.weight[i];
            worst = fmax(worst, fabs(sum - 1.0));
        }
        rl_test_check(t, worst < 1e-6, "F 12, context 4, overlap 2, loop %d: %d windows, weights "
                      "of every frame sum to 1 (worst |sum - 1| %.1e)", loop, w.n, worst);
        rl_windows_free(&w);
    }

    // the seam: 12 frames in windows of 4
    const int F = 12, H = 32, W = 32;
    const size_t fsz = (size_t)H * W * 3;
    float *fr = rl_test_floats(t, (size_t)F * fsz);
    double hard_ratio = INFINITY;
    for (int overlap = 0; overlap <= 2; overlap += 2) {
        rl_gen_params q = p;
        q.frames = F;
        q.context_frames = 4;
        q.context_overlap = overlap;
        q.latents_out = NULL;
        q.frames_out = fr;
        if (!RL_CHECK(t, rl_generate(ctx, &q, &err) == RL_OK)) continue;
        rl_windows w;
        if (!RL_CHECK(t, rl_windows_plan(&w, F, 4, overlap, 0, &err) == RL_OK)) continue;
        double border = 0, inside = 0;
        int nb = 0, ni = 0;
        for (int f = 0; f + 1 < F; f++) {
            int starts = 0;   // frame f + 1 begins a window
            for (int k = 1; k < w.n; k++) starts |= w.idx[(size_t)k * w.len] == f + 1;
            double d = 0;
            for (size_t i = 0; i < fsz; i++) d += fabs(fr[(f + 1) * fsz + i] - fr[f * fsz + i]);
            d /= (double)fsz;
            if (starts) { border += d; nb++; } else { inside += d; ni++; }
        }
        int finite = 1;
        for (size_t i = 0; i < (size_t)F * fsz; i++) finite &= isfinite(fr[i]) && fr[i] >= 0 && fr[i] <= 1;
        rl_test_check(t, finite && nb > 0 && ni > 0, "seam, overlap %d (%d windows): mean |frame "
                      "step| %.4f at %d window starts, %.4f at %d pairs inside", overlap, w.n,
                      border / nb, nb, inside / ni, ni);
        const double ratio = nb > 0 && ni > 0 && inside > 0 ? (border / nb) / (inside / ni) : INFINITY;
        if (overlap == 0) {
            hard_ratio = ratio;
        } else {
            // cross-faded windows: a frame step at a window start is no larger than inside a
            // window (within 10%), and smaller than at the hard cuts of overlap 0
            rl_test_check(t, ratio < 1.1 && ratio < hard_ratio, "no seam with overlap %d: border / "
                          "inside step %.3f < 1.1 and < %.3f (overlap 0)", overlap, ratio, hard_ratio);
        }
        rl_windows_free(&w);
    }
done:
    rl_ctx_close(&ctx);
}

static void test_guide(rl_test *t, const char *arg)
{
    (void)arg;
    float u[5] = { 0.5f, -1.0f, 2.0f, 0.0f, 1e-3f }, c[5] = { 1.0f, -1.5f, 2.0f, 3.0f, -1e-3f };
    float e[5];
    rl_guide_cfg(e, u, c, 7.5f, 5);
    float want[5];
    for (int i = 0; i < 5; i++) want[i] = u[i] + 7.5f * (c[i] - u[i]);
    rl_check_bitwise(t, "eps_u + g (eps_c - eps_u)", e, want, 5);
    RL_CHECK(t, rl_guide_active(7.5f) && !rl_guide_active(1.0f) && !rl_guide_active(0.5f));

    // rescale: phi 0 leaves the bits; phi 1 gives exactly the conditional spread; a constant
    // prediction (zero spread) is left alone, not divided by zero
    float r[5];
    memcpy(r, e, sizeof r);
    rl_guide_rescale(r, c, 0.0f, 5);
    rl_check_bitwise(t, "rescale 0", r, e, 5);
    rl_guide_rescale(r, c, 1.0f, 5);
    double mr = 0, mc = 0, vr = 0, vc = 0;
    for (int i = 0; i < 5; i++) { mr += r[i] / 5.0; mc += c[i] / 5.0; }
    for (int i = 0; i < 5; i++) { vr += (r[i] - mr) * (r[i] - mr); vc += (c[i] - mc) * (c[i] - mc); }
    rl_test_check(t, fabs(sqrt(vr) - sqrt(vc)) < 1e-5 * sqrt(vc), "rescale 1: std %.7g, want %.7g",
                  sqrt(vr / 4), sqrt(vc / 4));
    float k[5] = { 2, 2, 2, 2, 2 }, k0[5] = { 2, 2, 2, 2, 2 };
    rl_guide_rescale(k, c, 0.7f, 5);
    rl_check_bitwise(t, "rescale of a constant", k, k0, 5);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "tiny_a", test_run, "tiny_a" },
        { "tiny_b", test_run, "tiny_b" },
        { "windows", test_ext, "win" },
        { "windows_loop", test_ext, "loop" },
        { "freeinit", test_ext, "fi" },
        { "ddpm", test_ext, "ddpm" },
        { "euler", test_ext, "euler" },
        { "travel", test_ext, "travel" },
        { "guidance_rescale", test_ext, "rescale" },
        { "windows_same", test_windows, NULL },
        { "params", test_params, NULL },
        { "guide", test_guide, NULL },
        { 0 },
    });
}
