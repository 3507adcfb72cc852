/* io/config_sched.h - scheduler/scheduler_config.json -> rl_sched_cfg (diffusers
 * DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler configs).
 *
 * "_class_name" picks the kind and its defaults; other diffusers schedulers (PNDMScheduler,
 * LMSDiscreteScheduler, ...) share the same beta/timestep keys and are read as DDIM, the way
 * DDIMScheduler.from_config(other.config) reads them. Keys reel cannot honour are refused with
 * a clear message: thresholding true, trained_betas, use_karras_sigmas true, a variance_type
 * other than fixed_small, an interpolation_type other than linear; for Euler also
 * use_exponential_sigmas / use_beta_sigmas true, timestep_type other than "discrete",
 * final_sigmas_type other than "zero". Keys that change nothing reel computes are ignored
 * (skip_prk_steps, sample_max_value, dynamic_thresholding_ratio while thresholding is false,
 * sigma_min / sigma_max without Karras/exponential sigmas, _diffusers_version, ...). */
#ifndef RL_IO_CONFIG_SCHED_H
#define RL_IO_CONFIG_SCHED_H

#include "core/err.h"
#include "core/sched.h"
#include "io/json.h"

/* Errors: RL_E_IO (unreadable), RL_E_FORMAT (JSON, a wrong type, an unknown beta_schedule /
 * timestep_spacing / prediction_type / unsupported option), naming file and key.
 * cfg is only written on success. */
rl_status rl_sched_cfg_load(rl_sched_cfg *cfg, const char *path, rl_err *err);
rl_status rl_sched_cfg_parse(rl_sched_cfg *cfg, const rl_json *j, rl_err *err);

#endif
