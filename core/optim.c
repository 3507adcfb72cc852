/* core/optim.c - AdamW, gradient-norm clipping and weight EMA (see optim.h).
 *
 * torch.optim.AdamW (_single_tensor_adamw in torch 1.13) and torch.nn.utils.clip_grad_norm_.
 * The per-step scalars (bias corrections, step size) are computed once in double and rounded
 * to float, as torch computes them in Python floats; the per-element update runs in float
 * like torch's float32 parameters. Every element is owned by one thread; the one reduction
 * (the gradient norm) sums fixed blocks whose boundaries depend only on n. */
#include "core/optim.h"

#include <math.h>

// below this many elements a parallel region costs more than it saves
#define PAR_MIN 16384
// the norm's blocks: at most SQ_MAX_BLOCKS partial sums, each of at least SQ_MIN_BLOCK values
#define SQ_MIN_BLOCK 16384
#define SQ_MAX_BLOCKS 256

// ---- AdamW ------------------------------------------------------------------------------

void rl_adamw_step(float *restrict param, float *restrict m, float *restrict v,
                   const float *restrict grad, size_t n, long t, const rl_adamw_cfg *cfg)
{
    // scalars as torch forms them: Python floats (double), rounded to float when applied
    const float b1 = (float)cfg->beta1, b2 = (float)cfg->beta2, eps = (float)cfg->eps;
    const float omb1 = (float)(1.0 - cfg->beta1), omb2 = (float)(1.0 - cfg->beta2);
    const float decay = (float)(1.0 - cfg->lr * cfg->weight_decay);
    const double bc1 = 1.0 - pow(cfg->beta1, (double)t);       // 1 - beta1^t
    const double bc2 = 1.0 - pow(cfg->beta2, (double)t);       // 1 - beta2^t
    const float step_size = (float)(cfg->lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);

    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float g = grad[i];
        // param.mul_(1 - lr * weight_decay)
        float p = param[i] * decay;
        // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        const float mi = m[i] * b1 + g * omb1;
        // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        const float vi = v[i] * b2 + g * g * omb2;
        // denom = exp_avg_sq.sqrt() / sqrt(bias_correction2) + eps  (eps outside the sqrt)
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        // param.addcdiv_(exp_avg, denom, value=-step_size)
        p += -step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
    }
}

// ---- gradient norm and clipping ------------------------------------------------------------

double rl_grad_sqsum(const float *g, size_t n)
{
    if (n == 0) return 0.0;
    // block length from n alone: the partials and their order never depend on threads
    size_t blk = (n + SQ_MAX_BLOCKS - 1) / SQ_MAX_BLOCKS;
    if (blk < SQ_MIN_BLOCK) blk = SQ_MIN_BLOCK;
    const int nb = (int)((n + blk - 1) / blk);
    double part[SQ_MAX_BLOCKS];

    #pragma omp parallel for schedule(static) if (nb > 1)
    for (int b = 0; b < nb; b++) {
        const size_t i0 = (size_t)b * blk, i1 = i0 + blk < n ? i0 + blk : n;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)g[i] * g[i];
        part[b] = s;
    }
    double s = 0.0;
    for (int b = 0; b < nb; b++) s += part[b];
    return s;
}

void rl_grad_scale(float *g, size_t n, float s)
{
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) g[i] *= s;
}

double rl_clip_grad_norm(float *const *grads, const size_t *ns, int n_tensors, float max_norm)
{
    // total_norm = ||(||g_0||, ||g_1||, ...)||_2 = sqrt(sum of every g^2)
    double sq = 0.0;
    for (int i = 0; i < n_tensors; i++) sq += rl_grad_sqsum(grads[i], ns[i]);
    const double total = sqrt(sq);
    // clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1; torch multiplies by
    // the clamped coefficient unconditionally, and x * 1 = x, so skipping it changes nothing
    const double coef = (double)max_norm / (total + 1e-6);
    if (coef < 1.0)
        for (int i = 0; i < n_tensors; i++) rl_grad_scale(grads[i], ns[i], (float)coef);
    return total;
}

// ---- EMA of weights ---------------------------------------------------------------------------

void rl_ema_update(float *restrict ema, const float *restrict w, size_t n, double decay)
{
    const float d = (float)decay, a = (float)(1.0 - decay);
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) ema[i] = d * ema[i] + a * w[i];
}
