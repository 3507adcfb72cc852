/* tools/train.h - what every `reel train` stage shares: the parameter table (parameters,
 * gradients, AdamW moments, EMA), checkpoints, the learning-rate schedule, the loss log, a
 * counter-based random stream, the diffusion noise schedule, shapes-world batches and the
 * training loop itself.
 *
 * Exact resume by construction: every random number a step draws is a pure function of
 * (seed, stream, step, item) (rl_trng), and the data of step s are clips s*batch .. s*batch +
 * batch - 1 of the shapes stream `seed`. A checkpoint therefore needs only the parameters, the
 * optimizer moments, the EMA and the step number to continue a run bit for bit.
 *
 * Checkpoint file (safetensors, written to <path>.partial and renamed, so a run killed while
 * writing leaves the previous checkpoint intact):
 *   param.<name>, adam_m.<name>, adam_v.<name>, ema.<name> (when EMA is on), all F32;
 *   metadata: reel_checkpoint "1", stage, step, and the stage's own keys (architecture
 *   config and the options that must not change on resume). */
#ifndef RL_TOOLS_TRAIN_H
#define RL_TOOLS_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/optim.h"
#include "core/weights.h"

// ---- parameter table -----------------------------------------------------------------------

/* Parameters and their training state, entry i of every array belongs to entry i of p. */
typedef struct {
    rl_weights p;           // parameters (owned buffers), under their diffusers names
    rl_weights g;           // gradients, same names and order
    float **m, **v;         // (n) AdamW first and second moments, owned
    float **ema;            // (n) EMA of the parameters, owned; NULL when EMA is off
    unsigned char *frozen;  // (n) 1: not updated (and its gradient ignored)
    int n;
} rl_ptable;

void rl_ptable_init(rl_ptable *pt, const char *label);
void rl_ptable_free(rl_ptable *pt);       // idempotent, safe on a zeroed table

/* Binds a model's parameters to ws; returns the bind status (any rl_status). */
typedef rl_status (*rl_bind_fn)(void *ctx, rl_weights *ws, rl_err *err);

/* Fills pt->p with zeroed tensors of exactly the names and shapes the model's bind function
 * asks for, by binding repeatedly and adding each tensor a bind reports missing (the message
 * format of rl_weights_get: "missing tensor 'name' (expected [..])"). Optional tensors
 * (buffers such as pos_embed.pe) are not added. The gradient table gets the same entries.
 * Errors: whatever bind fails with other than RL_E_MISSING, RL_E_NOMEM. */
rl_status rl_ptable_discover(rl_ptable *pt, rl_bind_fn bind, void *ctx, rl_err *err);

/* Adds one tensor by hand (stage-specific parameters such as a logit scale). */
rl_status rl_ptable_add(rl_ptable *pt, const char *name, int ndim, const int64_t *shape,
                        float **data, rl_err *err);

/* Initialises every parameter from seed, by name and shape, as PyTorch's defaults do:
 * weights with fan_in = prod(shape[1:]) ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform
 * with a = sqrt(5)); biases 0; 1-D *.weight (norms) 1; embedding tables N(0, 0.02) (CLIP);
 * names matching any of zero_suffixes (NULL-terminated; e.g. motion modules' proj_out, as
 * AnimateDiff zero-initialises them) all 0. */
void rl_ptable_init_params(rl_ptable *pt, uint64_t seed, const char *const *zero_suffixes);

// 1 when s ends with suf (tensor-name suffixes such as ".bias").
int rl_train_ends_with(const char *s, const char *suf);

/* Allocates the moments (zeroed) and, when ema is set, the EMA (a copy of the parameters). */
rl_status rl_ptable_alloc_state(rl_ptable *pt, int ema, rl_err *err);

/* Marks entries whose name contains `sub` as frozen (frozen = 1) or trainable (0). Returns how
 * many matched. */
int rl_ptable_freeze(rl_ptable *pt, const char *sub, int frozen);
void rl_ptable_zero_grad(rl_ptable *pt);
size_t rl_ptable_numel(const rl_ptable *pt, int trainable_only);

/* One optimizer step on the trainable entries: global-norm clipping (max_norm <= 0: off),
 * AdamW step t (1-based) at learning rate lr, then EMA with decay
 * min(ema_decay, (1 + t) / (10 + t)) (diffusers EMAModel's warm-up). Returns the gradient norm
 * before clipping. */
double rl_ptable_step(rl_ptable *pt, long t, float lr, const rl_adamw_cfg *adam,
                      float max_norm, float ema_decay);

/* The release weights: the EMA when it is on, else the parameters. */
const float *rl_ptable_release(const rl_ptable *pt, int i);
/* Fills ws (initialised by the caller) with entries pointing at the release weights (not
 * owned), to bind a model to them or save them with rl_weights_save_st. */
rl_status rl_ptable_release_table(const rl_ptable *pt, rl_weights *ws, rl_err *err);
/* Copies every parameter of pt from the safetensors file at path (names under prefix, NULL:
 * none). allow_missing: entries the file lacks keep their values (a UNet with motion modules
 * started from an image-only one). RL_E_MISSING / RL_E_SHAPE name the tensor. */
rl_status rl_ptable_load(rl_ptable *pt, const char *path, const char *prefix, int allow_missing,
                         rl_err *err);
/* As rl_ptable_load, from weights already loaded (errors name file->label). */
rl_status rl_ptable_copy(rl_ptable *pt, rl_weights *file, int allow_missing, rl_err *err);

// ---- checkpoints ---------------------------------------------------------------------------

typedef struct { const char *key, *value; } rl_kv;

/* Writes pt and meta (n_meta pairs, plus reel_checkpoint, stage and step) to path
 * atomically. */
rl_status rl_ckpt_save(const rl_ptable *pt, const char *path, const char *stage, long step,
                       const rl_kv *meta, int n_meta, rl_err *err);

/* An opened checkpoint: its metadata can be checked before rl_ckpt_restore. */
typedef struct {
    void *st;               // rl_st_file *
    long step;
    const char *stage;
} rl_ckpt;

rl_status rl_ckpt_open(rl_ckpt *c, const char *path, rl_err *err);
const char *rl_ckpt_meta(const rl_ckpt *c, const char *key);    // NULL when absent
/* Copies every tensor of pt (params, moments, EMA when pt has one) from the checkpoint.
 * RL_E_MISSING / RL_E_SHAPE name the tensor when the checkpoint does not match pt. */
rl_status rl_ckpt_restore(const rl_ckpt *c, rl_ptable *pt, rl_err *err);
void rl_ckpt_close(rl_ckpt *c);   // idempotent

// ---- schedule, log, random numbers -----------------------------------------------------------

/* Linear warm-up from 0 over `warmup` steps, then cosine decay to min_ratio * base at `total`
 * (diffusers' get_cosine_schedule_with_warmup when min_ratio = 0). step is 1-based. */
float rl_lr_at(long step, long total, long warmup, float base, float min_ratio);

/* CSV loss log. On resume (keep_upto >= 0) the rows of steps <= keep_upto are kept and later
 * ones dropped, so a resumed run writes the same file as an uninterrupted one. */
typedef struct {
    FILE *f;
    char *path;
} rl_csvlog;

rl_status rl_csvlog_open(rl_csvlog *log, const char *path, const char *header, long keep_upto,
                         rl_err *err);
/* Writes one line (the caller formats it without the newline) and flushes. */
void rl_csvlog_row(rl_csvlog *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rl_csvlog_close(rl_csvlog *log);

/* Counter-based random numbers: the stream (seed, stream, step, item) is a pure function of
 * those four numbers (splitmix64 of a hash of them), so any sample of any step can be redrawn
 * in any order. */
typedef struct { uint64_t s; } rl_trng;

enum {   // stream ids
    RL_TRNG_INIT = 1, RL_TRNG_NOISE, RL_TRNG_TIME, RL_TRNG_DROP, RL_TRNG_FRAME, RL_TRNG_POST,
    RL_TRNG_CENTRE,
};

rl_trng rl_trng_make(uint64_t seed, uint64_t stream, uint64_t step, uint64_t item);
uint64_t rl_trng_u64(rl_trng *r);
double rl_trng_unif(rl_trng *r);                 // [0, 1)
float rl_trng_normal(rl_trng *r);                // N(0, 1), Box-Muller in double
void rl_trng_normals(rl_trng *r, float *out, size_t n);

// ---- diffusion noise schedule ------------------------------------------------------------

#define RL_NOISE_T 1000

/* A training time step in [0, RL_NOISE_T): uniform for bias 1 (the draw of the first models,
 * kept bit for bit), else T-1-floor(T u^bias), which for bias > 1 leans towards high noise
 * (bias 2: half the draws in the noisiest quarter), where a clip's layout and motion are
 * decided. */
int rl_noise_draw_t(rl_trng *r, float bias);

/* What DDPMScheduler / DDIMScheduler build from their config (num_train_timesteps 1000):
 * betas "scaled_linear" (linspace of sqrt(beta) squared) or "linear" from beta_start to
 * beta_end, optionally rescaled to zero terminal SNR (rescale_betas_zero_snr), and
 * alphas_cumprod. The prediction type is epsilon or v_prediction. */
typedef struct {
    int scaled_linear;
    float beta_start, beta_end;
    int zero_snr;
    int v_pred;
    float alphas_cumprod[RL_NOISE_T];   // float32 as torch stores it
} rl_noise_sched;

void rl_noise_sched_init(rl_noise_sched *s, int scaled_linear, float beta_start, float beta_end,
                         int zero_snr, int v_pred);
/* x_t = sqrt(ac_t) x0 + sqrt(1 - ac_t) eps, and the training target (eps, or
 * v = sqrt(ac_t) eps - sqrt(1 - ac_t) x0), over n values of one sample at time step t. */
void rl_noise_add(const rl_noise_sched *s, float *xt, float *target, const float *x0,
                  const float *eps, int t, size_t n);

/* Min-SNR-gamma loss weight (Hang et al. 2023) of a sample at a time step with alphas_cumprod
 * abar, SNR = abar / (1 - abar): min(SNR, gamma) / SNR for epsilon prediction, min(SNR, gamma)
 * / (SNR + 1) for v-prediction; 1 when gamma <= 0 (uniform). At SNR 0 (zero terminal SNR's
 * last step) the epsilon weight is 1, the v weight 0. */
float rl_min_snr_weight(double abar, float gamma, int v_pred);

// ---- shapes-world batches --------------------------------------------------------------------

/* Clip specs of step `step` (1-based): clips (step - 1) * B + b of the training stream `seed`
 * (held-out pairs excluded). Captions (96 bytes each) are optional. */
void rl_train_specs(void *specs /* rl_shapes_spec (B) */, char (*captions)[96], uint64_t seed,
                    long step, int B);

// ---- the training loop -------------------------------------------------------------------

/* One stage's step: forward and backward of step `step` (1-based), accumulating into pt->g
 * (zeroed by the loop); *loss is the value logged, *aux an extra logged number. */
typedef rl_status (*rl_train_step_fn)(void *ctx, rl_ptable *pt, long step, double *loss,
                                      double *aux, rl_err *err);

typedef struct {
    const char *stage;          // "vae", "clip", "unet-image", ...: checked on resume
    void *ctx;
    rl_train_step_fn step;
    /* Called once after the last step (not when stopped early): write the release folder. */
    rl_status (*finish)(void *ctx, rl_ptable *pt, rl_err *err);
    void (*report)(void *report_ctx, long step, long total, double loss, float lr);
    void *report_ctx;

    long steps, warmup;         // total steps (fixes the schedule) and warm-up steps
    long stop_at;               // > 0: stop after this step with a checkpoint (split a run)
    float lr, min_lr_ratio;     // peak learning rate, floor of the cosine as a share of it
    rl_adamw_cfg adam;          // betas, eps, weight decay (lr is set per step)
    float max_norm;             // gradient clipping (<= 0: off)
    float ema_decay;            // used when pt has an EMA
    double ckpt_every;          // seconds between checkpoints (<= 0: only at the end)
    const char *ckpt_path;
    const char *log_path;       // CSV (NULL: none)
    int resume;                 // continue from ckpt_path
    int export_only;            // with resume: write the release folder from the checkpoint's
                                // weights (finish) and return; no step, log or checkpoint write
    int catch_signals;          // SIGINT/SIGTERM: checkpoint, then RL_E_INTERRUPTED
    const rl_kv *meta; int n_meta;   // stored in checkpoints; must match on resume
} rl_train_loop_cfg;

/* Runs steps (resumed step + 1) .. steps (none with export_only): zero grads, stage step,
 * schedule, optimizer step, log; a checkpoint every ckpt_every seconds, at the end and when
 * stopped. Errors: the stage's, checkpoint I/O, RL_E_PARAM (resume with other settings),
 * RL_E_INTERNAL (a non-finite loss), RL_E_INTERRUPTED (a signal; a checkpoint was written). */
rl_status rl_train_loop(const rl_train_loop_cfg *c, rl_ptable *pt, rl_err *err);
/* Asks the running loop to stop after the current step (as SIGINT does). */
void rl_train_request_stop(void);
/* mkdir that accepts an existing folder. */
rl_status rl_train_mkdir(const char *path, rl_err *err);
/* "<dir>/<name>" in buf (cap bytes); returns buf. */
char *rl_train_join(char *buf, size_t cap, const char *dir, const char *name);

#endif
