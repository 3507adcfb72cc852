/* io/config_sched.c - scheduler_config.json reader (see io/config_sched.h). Keys and defaults
 * follow diffusers' DDIMScheduler / DDPMScheduler / EulerDiscreteScheduler __init__. */
#include "io/config_sched.h"

#include <string.h>

/* Maps the string at key to one of names[] (index), default def when absent. */
static rl_status enum_key(const rl_json *j, const char *key, const char *const *names, int n,
                          int def, int *out, rl_err *err)
{
    const char *s = NULL;
    rl_status rc = rl_json_str(j, NULL, key, NULL, &s, err);
    if (rc) return rc;
    if (!s) { *out = def; return RL_OK; }
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) { *out = i; return RL_OK; }
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    return rl_errf(err, RL_E_FORMAT, "%s: key '%s': unknown value '%.64s', expected one of: %s",
                   j->label, key, s, list);
}

rl_status rl_sched_cfg_parse(rl_sched_cfg *out, const rl_json *j, rl_err *err)
{
    rl_status rc;
    if (!cJSON_IsObject(j->root))
        return rl_errf(err, RL_E_FORMAT, "%s: expected an object at the top level", j->label);

    const char *cls = NULL;
    if ((rc = rl_json_str(j, NULL, "_class_name", "DDIMScheduler", &cls, err))) return rc;
    rl_sched_kind kind = strcmp(cls, "DDPMScheduler") == 0          ? RL_SCHED_DDPM
                         : strcmp(cls, "EulerDiscreteScheduler") == 0 ? RL_SCHED_EULER
                                                                      : RL_SCHED_DDIM;
    rl_sched_cfg c = rl_sched_cfg_default(kind);

    static const char *const betas[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
    static const char *const spacings[] = {"leading", "trailing", "linspace"};
    static const char *const preds[] = {"epsilon", "v_prediction", "sample"};
    int bs = c.beta_schedule, sp = c.timestep_spacing, pt = c.prediction_type;
    int thresholding = 0, karras = 0;
    if ((rc = rl_json_int(j, NULL, "num_train_timesteps", c.num_train_timesteps,
                          &c.num_train_timesteps, err)) ||
        (rc = rl_json_float(j, NULL, "beta_start", c.beta_start, &c.beta_start, err)) ||
        (rc = rl_json_float(j, NULL, "beta_end", c.beta_end, &c.beta_end, err)) ||
        (rc = enum_key(j, "beta_schedule", betas, 3, bs, &bs, err)) ||
        (rc = enum_key(j, "timestep_spacing", spacings, 3, sp, &sp, err)) ||
        (rc = enum_key(j, "prediction_type", preds, 3, pt, &pt, err)) ||
        (rc = rl_json_bool(j, NULL, "rescale_betas_zero_snr", 0, &c.rescale_betas_zero_snr,
                           err)) ||
        (rc = rl_json_int(j, NULL, "steps_offset", 0, &c.steps_offset, err)) ||
        (rc = rl_json_bool(j, NULL, "set_alpha_to_one", c.set_alpha_to_one,
                           &c.set_alpha_to_one, err)) ||
        (rc = rl_json_bool(j, NULL, "clip_sample", c.clip_sample, &c.clip_sample, err)) ||
        (rc = rl_json_float(j, NULL, "clip_sample_range", 1.0, &c.clip_sample_range, err)) ||
        (rc = rl_json_bool(j, NULL, "thresholding", 0, &thresholding, err)) ||
        (rc = rl_json_bool(j, NULL, "use_karras_sigmas", 0, &karras, err)))
        return rc;
    if (kind == RL_SCHED_EULER) c.clip_sample = 0;      // Euler has no clipping
    c.beta_schedule = (rl_beta_schedule)bs;
    c.timestep_spacing = (rl_spacing)sp;
    c.prediction_type = (rl_pred_type)pt;

    if (thresholding)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'thresholding': dynamic thresholding is not "
                       "supported (expected false)", j->label);
    if (karras)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'use_karras_sigmas': Karras sigmas are not "
                       "supported (expected false)", j->label);
    if (rl_json_has(j, NULL, "trained_betas"))
        return rl_errf(err, RL_E_FORMAT, "%s: key 'trained_betas': explicit betas are not "
                       "supported (expected null)", j->label);
    const char *s = NULL;
    if ((rc = rl_json_str(j, NULL, "variance_type", "fixed_small", &s, err))) return rc;
    if (kind == RL_SCHED_DDPM && strcmp(s, "fixed_small") != 0)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'variance_type': '%.64s' is not supported "
                       "(expected fixed_small)", j->label, s);
    if ((rc = rl_json_str(j, NULL, "interpolation_type", "linear", &s, err))) return rc;
    if (kind == RL_SCHED_EULER && strcmp(s, "linear") != 0)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'interpolation_type': '%.64s' is not "
                       "supported (expected linear)", j->label, s);
    if (kind == RL_SCHED_EULER) {
        // newer EulerDiscreteScheduler options that change the sigmas or the timesteps
        static const struct { const char *key, *want; } euler_str[] = {
            { "timestep_type", "discrete" }, { "final_sigmas_type", "zero" },
        };
        for (size_t k = 0; k < sizeof euler_str / sizeof euler_str[0]; k++) {
            if ((rc = rl_json_str(j, NULL, euler_str[k].key, euler_str[k].want, &s, err))) return rc;
            if (strcmp(s, euler_str[k].want) != 0)
                return rl_errf(err, RL_E_FORMAT, "%s: key '%s': '%.64s' is not supported "
                               "(expected %s)", j->label, euler_str[k].key, s, euler_str[k].want);
        }
        static const char *const euler_off[] = { "use_exponential_sigmas", "use_beta_sigmas" };
        for (size_t k = 0; k < sizeof euler_off / sizeof euler_off[0]; k++) {
            int on = 0;
            if ((rc = rl_json_bool(j, NULL, euler_off[k], 0, &on, err))) return rc;
            if (on)
                return rl_errf(err, RL_E_FORMAT, "%s: key '%s': not supported (expected false)",
                               j->label, euler_off[k]);
        }
    }

    if (c.num_train_timesteps < 1 || c.num_train_timesteps > 1000000)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'num_train_timesteps': %d is outside "
                       "[1, 1000000]", j->label, c.num_train_timesteps);
    if (!(c.beta_start > 0 && c.beta_start <= 1) || !(c.beta_end > 0 && c.beta_end <= 1))
        return rl_errf(err, RL_E_FORMAT, "%s: keys 'beta_start' %g and 'beta_end' %g must lie "
                       "in (0, 1]", j->label, c.beta_start, c.beta_end);
    if (c.steps_offset < 0 || c.steps_offset >= c.num_train_timesteps)
        return rl_errf(err, RL_E_FORMAT, "%s: key 'steps_offset': %d is outside [0, %d)",
                       j->label, c.steps_offset, c.num_train_timesteps);
    if (c.clip_sample && !(c.clip_sample_range > 0))
        return rl_errf(err, RL_E_FORMAT, "%s: key 'clip_sample_range': %g must be positive",
                       j->label, c.clip_sample_range);
    *out = c;
    return RL_OK;
}

rl_status rl_sched_cfg_load(rl_sched_cfg *cfg, const char *path, rl_err *err)
{
    rl_json j;
    rl_status rc = rl_json_load(&j, path, err);
    if (rc) return rc;
    rc = rl_sched_cfg_parse(cfg, &j, err);
    rl_json_free(&j);
    return rc;
}
