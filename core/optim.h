/* core/optim.h - AdamW, global gradient-norm clipping and weight EMA on flat float arrays.
 *
 * Kernels in the ops.h style: outputs first, no allocation, cannot fail, parallel over
 * disjoint elements, bitwise identical for any thread count. A model's parameters are one or
 * more flat arrays; the caller walks them in a fixed order. */
#ifndef RL_CORE_OPTIM_H
#define RL_CORE_OPTIM_H

#include <stddef.h>

/* torch.optim.AdamW hyper-parameters (defaults there: lr 1e-3, betas (0.9, 0.999),
 * eps 1e-8, weight_decay 1e-2). Doubles, as torch's Python floats: derived constants such as
 * 1 - beta2 are formed in double and rounded to float once (1 - (float)0.999 would be off by
 * 1.3e-5 relative). */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} rl_adamw_cfg;

/* One AdamW step, exactly torch.optim.AdamW (amsgrad=False, maximize=False):
 *   param *= 1 - lr wd                          (decoupled weight decay)
 *   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2
 *   param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * param, m, v, grad (n); m and v start at 0; t is the step number, 1 for the first step. */
void rl_adamw_step(float *param, float *m, float *v, const float *grad, size_t n, long t,
                   const rl_adamw_cfg *cfg);

/* Sum of g^2 over n values in double. Fixed blocks summed in a fixed order, so the result
 * does not depend on the thread count. */
double rl_grad_sqsum(const float *g, size_t n);

/* torch.nn.utils.clip_grad_norm_ (norm_type 2) over n_tensors gradient arrays together:
 * total = sqrt(sum of every g^2) (in double), coef = min(1, max_norm / (total + 1e-6)), every
 * g *= coef. grads[i] has ns[i] values. Returns the total norm before clipping. */
double rl_clip_grad_norm(float *const *grads, const size_t *ns, int n_tensors, float max_norm);

/* y *= s over n values. */
void rl_grad_scale(float *g, size_t n, float s);

/* Exponential moving average of weights: ema = decay ema + (1 - decay) w, over n values
 * (decay and 1 - decay rounded to float from double). */
void rl_ema_update(float *ema, const float *w, size_t n, double decay);

#endif
