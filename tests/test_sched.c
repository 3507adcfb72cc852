/* tests/test_sched.c - DDIM / DDPM / Euler schedulers (core/sched.c) and scheduler_config.json
 * (io/config_sched.c) against float64 references of diffusers' formulas
 * (tools/fixtures/make_sched.py). Each step is run from the reference input of that step, so
 * a failure points at the step that drifted; DDPM noise comes from rl_rng seeded as the
 * reference's torch.Generator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/sched.h"
#include "io/config_sched.h"
#include "tests/harness.h"

static void test_case(rl_test *t, const char *fixture)
{
    rl_fixture fx;
    rl_err err = {0};
    rl_sched s = {0};
    if (!rl_fixture_open(t, &fx, fixture)) return;
    const char *text = rl_fixture_str(&fx, "config");
    const int n_req = rl_fixture_int(&fx, "n_steps"), E = rl_fixture_int(&fx, "E");
    rl_json j;
    rl_sched_cfg cfg;
    if (!rl_test_check(t, rl_json_parse(&j, text, strlen(text), "scheduler_config.json", &err) ==
                              RL_OK, "parse: %s", err.msg))
        goto done;
    rl_status rc = rl_sched_cfg_parse(&cfg, &j, &err);
    rl_json_free(&j);
    if (!rl_test_check(t, rc == RL_OK, "config: %s", err.msg)) goto done;
    rc = rl_sched_init(&s, &cfg, n_req, &err);
    if (!rl_test_check(t, rc == RL_OK, "init: %s", err.msg)) goto done;

    // tables: double in C and in the reference, compared after rounding both to float
    const int T = s.T, n = s.n_steps;
    float *ac = rl_test_floats(t, (size_t)T), *ts = rl_test_floats(t, (size_t)n);
    for (int i = 0; i < T; i++) ac[i] = (float)s.alphas_cumprod[i];
    for (int i = 0; i < n; i++) ts[i] = (float)s.timesteps[i];
    RL_CHECK(t, (int)rl_fixture_numel(&fx, "timesteps") == n);
    rl_check_close(t, "alphas_cumprod", ac, rl_fixture_f32(&fx, "alphas_cumprod", 1, (int[]){T}),
                   T, 1e-9, 1e-6);   // same double formulas: only the final float rounding
    rl_check_close(t, "timesteps", ts, rl_fixture_f32(&fx, "timesteps", 1, (int[]){n}), n, 0, 0);
    if (cfg.kind == RL_SCHED_EULER) {
        float *sg = rl_test_floats(t, (size_t)n + 1);
        for (int i = 0; i <= n; i++) sg[i] = (float)s.sigmas[i];
        rl_check_close(t, "sigmas", sg, rl_fixture_f32(&fx, "sigmas", 1, (int[]){n + 1}), n + 1,
                       0, 1e-6);
    }
    float ins = (float)s.init_noise_sigma, want_ins = (float)rl_fixture_float(&fx, "init_noise_sigma");
    rl_check_close(t, "init_noise_sigma", &ins, &want_ins, 1, 0, 1e-6);

    // steps
    const float *x0 = rl_fixture_f32(&fx, "x0", 1, (int[]){E});
    const float *eps = rl_fixture_f32(&fx, "eps", 2, (int[]){n, E});
    const float *xs = rl_fixture_f32(&fx, "xs", 2, (int[]){n, E});
    const float *scaled = rl_fixture_f32(&fx, "scaled", 2, (int[]){n, E});
    if (!x0 || !eps || !xs || !scaled) goto done;
    float *out = rl_test_floats(t, (size_t)n * E), *sc = rl_test_floats(t, (size_t)n * E);
    float *noise = rl_test_floats(t, (size_t)E), *inplace = rl_test_floats(t, (size_t)E);
    rl_rng g;
    rl_rng_seed(&g, (uint64_t)rl_fixture_int(&fx, "seed"));
    for (int i = 0; i < n; i++) {
        const float *x = i ? xs + (size_t)(i - 1) * E : x0;
        rl_sched_scale_input(&s, sc + (size_t)i * E, x, E, i);
        const float *nz = NULL;
        if (rl_sched_needs_noise(&s, i)) {
            rl_rng_randn(&g, noise, E);
            nz = noise;
        }
        rl_sched_step(&s, out + (size_t)i * E, x, eps + (size_t)i * E, nz, E, i);
        if (i == 0) {   // in place gives the same bits
            memcpy(inplace, x, sizeof(float) * E);
            rl_sched_step(&s, inplace, inplace, eps, nz, E, 0);
            rl_check_bitwise(t, "step in place", inplace, out, E);
        }
    }
    // inputs are float-rounded references and 1/sqrt(abar) reaches ~15 at t = 999 (and
    // sigma 4096 for zero-SNR Euler): relative 2e-6 covers the amplified input rounding
    rl_check_close(t, "scaled inputs", sc, scaled, (size_t)n * E, 1e-6, 1e-6);
    rl_check_close(t, "steps", out, xs, (size_t)n * E, 2e-6, 2e-6);

    // training: add_noise and velocity
    const float *ax = rl_fixture_f32(&fx, "an_x0", 1, (int[]){E});
    const float *an = rl_fixture_f32(&fx, "an_noise", 1, (int[]){E});
    char *tl = strdup(rl_fixture_str(&fx, "noise_t"));
    int k = 0;
    for (char *p = tl, *save = NULL, *tok; ax && an && (tok = strtok_r(p, ",", &save)); p = NULL, k++) {
        int tt = atoi(tok);
        char name[64];
        snprintf(name, sizeof name, "an_noisy_%d", k);
        rl_sched_add_noise(&s, out, ax, an, E, tt);
        rl_check_close(t, name, out, rl_fixture_f32(&fx, name, 1, (int[]){E}), E, 1e-6, 1e-6);
        snprintf(name, sizeof name, "an_vel_%d", k);
        rl_sched_velocity(&s, out, ax, an, E, tt);
        rl_check_close(t, name, out, rl_fixture_f32(&fx, name, 1, (int[]){E}), E, 1e-6, 1e-6);
    }
    free(tl);
done:
    rl_sched_free(&s);
    rl_sched_free(&s);
    rl_fixture_close(&fx);
}

// ---- malformed configs and impossible parameters --------------------------------------------------

static const struct {
    const char *name, *json, *msg;
} BAD[] = {
    {"not_object", "[1]", "top level"},
    {"T_string", "{\"num_train_timesteps\": \"1000\"}", "num_train_timesteps"},
    {"T_zero", "{\"num_train_timesteps\": 0}", "num_train_timesteps"},
    {"beta_start_str", "{\"beta_start\": \"x\"}", "beta_start"},
    {"beta_neg", "{\"beta_end\": -0.1}", "beta_end"},
    {"beta_schedule", "{\"beta_schedule\": \"cosine\"}", "unknown value 'cosine'"},
    {"beta_schedule_num", "{\"beta_schedule\": 3}", "beta_schedule"},
    {"spacing", "{\"timestep_spacing\": \"middle\"}", "unknown value 'middle'"},
    {"prediction", "{\"prediction_type\": \"noise\"}", "unknown value 'noise'"},
    {"clip_sample_num", "{\"clip_sample\": 1}", "clip_sample"},
    {"clip_range", "{\"clip_sample\": true, \"clip_sample_range\": 0}", "clip_sample_range"},
    {"thresholding", "{\"thresholding\": true}", "thresholding"},
    {"trained_betas", "{\"trained_betas\": [0.1, 0.2]}", "trained_betas"},
    {"karras", "{\"_class_name\": \"EulerDiscreteScheduler\", \"use_karras_sigmas\": true}",
     "use_karras_sigmas"},
    {"variance", "{\"_class_name\": \"DDPMScheduler\", \"variance_type\": \"learned\"}",
     "variance_type"},
    {"interp", "{\"_class_name\": \"EulerDiscreteScheduler\", \"interpolation_type\": \"log_linear\"}",
     "interpolation_type"},
    {"offset_neg", "{\"steps_offset\": -1}", "steps_offset"},
    {"truncated", "{\"beta_start\": 0.1", "invalid JSON"},
    {0},
};

static void test_malformed(rl_test *t, const char *arg)
{
    for (int i = 0; BAD[i].name; i++) {
        const char *path = rl_test_tmp_path(t, BAD[i].name);
        FILE *f = fopen(path, "wb");
        if (!f) { rl_test_fail(t, "cannot write %s", path); continue; }
        fputs(BAD[i].json, f);
        fclose(f);
        rl_sched_cfg c;
        rl_err err = {0};
        rl_status rc = rl_sched_cfg_load(&c, path, &err);
        rl_test_check(t, rc == RL_E_FORMAT && strstr(err.msg, BAD[i].msg),
                      "%s: status %d: %s", BAD[i].name, rc, err.msg);
    }
    // defaults and other classes read as DDIM
    const char *pndm = "{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": true}";
    rl_json j;
    rl_sched_cfg c;
    rl_err err = {0};
    RL_CHECK(t, rl_json_parse(&j, pndm, strlen(pndm), "pndm.json", &err) == RL_OK &&
                    rl_sched_cfg_parse(&c, &j, &err) == RL_OK && c.kind == RL_SCHED_DDIM &&
                    c.num_train_timesteps == 1000 && c.clip_sample == 1);
    rl_json_free(&j);

    // impossible step counts and offsets
    rl_sched s;
    c = rl_sched_cfg_default(RL_SCHED_DDIM);
    c.num_train_timesteps = 10;
    rl_status rc = rl_sched_init(&s, &c, 11, &err);
    rl_test_check(t, rc == RL_E_PARAM, "11 steps of 10: %s", err.msg);
    rc = rl_sched_init(&s, &c, 0, &err);
    rl_test_check(t, rc == RL_E_PARAM, "0 steps: %s", err.msg);
    c.steps_offset = 1;
    rc = rl_sched_init(&s, &c, 10, &err);
    rl_test_check(t, rc == RL_E_PARAM, "leading + offset past T - 1: %s", err.msg);
    c.steps_offset = 0;
    rc = rl_sched_init(&s, &c, 10, &err);
    rl_test_check(t, rc == RL_OK && s.n_steps == 10 && s.timesteps[0] == 9 && s.timesteps[9] == 0,
                  "10 steps of 10: %s", err.msg);
    rl_sched_free(&s);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        {"ddim_sd15", test_case, "sched/ddim_sd15.safetensors"},
        {"ddim_trailing_v_zsnr", test_case, "sched/ddim_trailing_v_zsnr.safetensors"},
        {"ddim_cos_linspace_sample_clip", test_case, "sched/ddim_cos_linspace_sample_clip.safetensors"},
        {"ddim_linear_eps_clip_t50", test_case, "sched/ddim_linear_eps_clip_t50.safetensors"},
        {"ddpm_sd", test_case, "sched/ddpm_sd.safetensors"},
        {"ddpm_trailing_v_zsnr", test_case, "sched/ddpm_trailing_v_zsnr.safetensors"},
        {"ddpm_cos_linspace_sample", test_case, "sched/ddpm_cos_linspace_sample.safetensors"},
        {"euler_sd15", test_case, "sched/euler_sd15.safetensors"},
        {"euler_linspace_v", test_case, "sched/euler_linspace_v.safetensors"},
        {"euler_trailing_zsnr_cos", test_case, "sched/euler_trailing_zsnr_cos.safetensors"},
        {"euler_sample_t3", test_case, "sched/euler_sample_t3.safetensors"},
        {"malformed", test_malformed, NULL},
        {0},
    });
}
