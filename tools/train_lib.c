/* tools/train_lib.c - the parts every `reel train` stage shares (see train.h): parameter table,
 * optimizer step, checkpoints, learning-rate schedule, CSV log, counter-based random numbers,
 * the diffusion noise schedule, shapes-world batches and the training loop. */
#include "tools/train.h"
#include "tools/train_stages.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "io/atomic.h"
#include "io/weights_io.h"
#include "io/safetensors.h"
#include "tools/shapes/world.h"

// ---- parameter table ---------------------------------------------------------------------

void rl_ptable_init(rl_ptable *pt, const char *label)
{
    *pt = (rl_ptable){ 0 };
    char buf[128];
    rl_weights_init(&pt->p, label);
    snprintf(buf, sizeof buf, "%s (gradients)", label);
    rl_weights_init(&pt->g, buf);
}

void rl_ptable_free(rl_ptable *pt)
{
    for (int i = 0; i < pt->n; i++) {
        if (pt->m) free(pt->m[i]);
        if (pt->v) free(pt->v[i]);
        if (pt->ema) free(pt->ema[i]);
    }
    free(pt->m);
    free(pt->v);
    free(pt->ema);
    free(pt->frozen);
    rl_weights_free(&pt->p);
    rl_weights_free(&pt->g);
    *pt = (rl_ptable){ 0 };
}

rl_status rl_ptable_add(rl_ptable *pt, const char *name, int ndim, const int64_t *shape,
                        float **data, rl_err *err)
{
    if (pt->m)
        return rl_errf(err, RL_E_INTERNAL, "%s: '%s' added after the optimizer state",
                       pt->p.label, name);
    unsigned char *fr = realloc(pt->frozen, (size_t)pt->n + 1);
    if (!fr) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", pt->p.label);
    pt->frozen = fr;
    pt->frozen[pt->n] = 0;
    rl_status rc = rl_weights_add_new(&pt->p, name, ndim, shape, data, err);
    if (rc) return rc;
    rc = rl_weights_add_new(&pt->g, name, ndim, shape, NULL, err);
    if (rc) return rc;   // the tables stay consistent enough to free
    pt->n++;
    return RL_OK;
}

/* Parses "... missing tensor 'NAME' (expected [a, b, c])" into name and shape. */
static int parse_missing(const char *msg, char *name, size_t cap, int *ndim, int64_t *shape)
{
    const char *key = "missing tensor '", *p = NULL;
    for (const char *q = strstr(msg, key); q; q = strstr(q + 1, key)) p = q;
    if (!p) return 0;
    p += strlen(key);
    const char *e = strstr(p, "' (expected [");
    if (!e || (size_t)(e - p) >= cap) return 0;
    memcpy(name, p, (size_t)(e - p));
    name[e - p] = 0;
    p = e + strlen("' (expected [");
    *ndim = 0;
    while (*p && *p != ']') {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || *ndim >= RL_MAX_DIMS) return 0;
        shape[(*ndim)++] = v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return *p == ']';
}

rl_status rl_ptable_discover(rl_ptable *pt, rl_bind_fn bind, void *ctx, rl_err *err)
{
    for (int guard = 0; guard < 1000000; guard++) {
        rl_err e = { 0 };
        rl_status rc = bind(ctx, &pt->p, &e);
        if (rc == RL_OK) return RL_OK;
        if (rc != RL_E_MISSING) {
            if (err) *err = e;
            return rc;
        }
        char name[512];
        int ndim;
        int64_t shape[RL_MAX_DIMS];
        if (!parse_missing(e.msg, name, sizeof name, &ndim, shape))
            return rl_errf(err, RL_E_INTERNAL, "cannot read the missing tensor from: %s", e.msg);
        if (rl_weights_find(&pt->p, name))
            return rl_errf(err, RL_E_INTERNAL, "bind asks twice for '%s'", name);
        rc = rl_ptable_add(pt, name, ndim, shape, NULL, err);
        if (rc) return rc;
    }
    return rl_errf(err, RL_E_INTERNAL, "parameter discovery did not converge");
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int rl_train_ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

void rl_ptable_init_params(rl_ptable *pt, uint64_t seed, const char *const *zero_suffixes)
{
    for (int i = 0; i < pt->n; i++) {
        rl_weight *w = &pt->p.w[i];
        const size_t n = rl_weight_numel(w);
        // keyed by the name, so adding a tensor does not change the others' initial values
        rl_trng r = rl_trng_make(seed, RL_TRNG_INIT, fnv1a(w->name), 0);
        int zero = 0;
        for (const char *const *z = zero_suffixes; z && *z; z++)
            zero |= rl_train_ends_with(w->name, *z);
        if (zero || rl_train_ends_with(w->name, ".bias")) {
            memset(w->data, 0, n * sizeof(float));
        } else if (strstr(w->name, "position_embedding")) {
            for (size_t k = 0; k < n; k++) w->data[k] = 0.01f * rl_trng_normal(&r);
        } else if (strstr(w->name, "embedding.weight")) {
            for (size_t k = 0; k < n; k++) w->data[k] = 0.02f * rl_trng_normal(&r);
        } else if (w->ndim == 1) {
            for (size_t k = 0; k < n; k++) w->data[k] = 1.0f;
        } else {
            const double bound = 1.0 / sqrt((double)(n / (size_t)w->shape[0]));
            for (size_t k = 0; k < n; k++)
                w->data[k] = (float)((2.0 * rl_trng_unif(&r) - 1.0) * bound);
        }
    }
}

rl_status rl_ptable_alloc_state(rl_ptable *pt, int ema, rl_err *err)
{
    pt->m = calloc((size_t)pt->n ? (size_t)pt->n : 1, sizeof *pt->m);
    pt->v = calloc((size_t)pt->n ? (size_t)pt->n : 1, sizeof *pt->v);
    if (ema) pt->ema = calloc((size_t)pt->n ? (size_t)pt->n : 1, sizeof *pt->ema);
    if (!pt->m || !pt->v || (ema && !pt->ema)) goto nomem;
    for (int i = 0; i < pt->n; i++) {
        const size_t n = rl_weight_numel(&pt->p.w[i]);
        pt->m[i] = calloc(n ? n : 1, sizeof(float));
        pt->v[i] = calloc(n ? n : 1, sizeof(float));
        if (!pt->m[i] || !pt->v[i]) goto nomem;
        if (ema) {
            pt->ema[i] = malloc((n ? n : 1) * sizeof(float));
            if (!pt->ema[i]) goto nomem;
            memcpy(pt->ema[i], pt->p.w[i].data, n * sizeof(float));
        }
    }
    return RL_OK;
nomem:
    return rl_errf(err, RL_E_NOMEM, "%s: out of memory for the optimizer state", pt->p.label);
}

int rl_ptable_freeze(rl_ptable *pt, const char *sub, int frozen)
{
    int k = 0;
    for (int i = 0; i < pt->n; i++)
        if (strstr(pt->p.w[i].name, sub)) {
            pt->frozen[i] = (unsigned char)frozen;
            k++;
        }
    return k;
}

void rl_ptable_zero_grad(rl_ptable *pt)
{
    for (int i = 0; i < pt->n; i++)
        memset(pt->g.w[i].data, 0, rl_weight_numel(&pt->g.w[i]) * sizeof(float));
}

size_t rl_ptable_numel(const rl_ptable *pt, int trainable_only)
{
    size_t n = 0;
    for (int i = 0; i < pt->n; i++)
        if (!trainable_only || !pt->frozen[i]) n += rl_weight_numel(&pt->p.w[i]);
    return n;
}

double rl_ptable_step(rl_ptable *pt, long t, float lr, const rl_adamw_cfg *adam,
                      float max_norm, float ema_decay)
{
    float *grads[4096];
    size_t ns[4096];
    double sq = 0.0;
    int k = 0;
    // the norm over every trainable gradient, clipped together (clip_grad_norm_ on the list)
    for (int i = 0; i < pt->n; i++) {
        if (pt->frozen[i]) continue;
        if (k == 4096) {   // more tensors than one call takes: clip by hand below
            k = -1;
            break;
        }
        grads[k] = pt->g.w[i].data;
        ns[k++] = rl_weight_numel(&pt->g.w[i]);
    }
    double norm;
    if (k >= 0 && max_norm > 0) {
        norm = rl_clip_grad_norm(grads, ns, k, max_norm);
    } else {
        for (int i = 0; i < pt->n; i++)
            if (!pt->frozen[i]) sq += rl_grad_sqsum(pt->g.w[i].data, rl_weight_numel(&pt->g.w[i]));
        norm = sqrt(sq);
        if (max_norm > 0) {
            const double coef = (double)max_norm / (norm + 1e-6);
            if (coef < 1.0)
                for (int i = 0; i < pt->n; i++)
                    if (!pt->frozen[i])
                        rl_grad_scale(pt->g.w[i].data, rl_weight_numel(&pt->g.w[i]), (float)coef);
        }
    }
    rl_adamw_cfg c = *adam;
    c.lr = lr;
    for (int i = 0; i < pt->n; i++) {
        if (pt->frozen[i]) continue;
        rl_adamw_step(pt->p.w[i].data, pt->m[i], pt->v[i], pt->g.w[i].data,
                      rl_weight_numel(&pt->p.w[i]), t, &c);
    }
    if (pt->ema) {
        const float warm = (float)((1.0 + (double)t) / (10.0 + (double)t));
        const float d = ema_decay < warm ? ema_decay : warm;
        for (int i = 0; i < pt->n; i++)
            if (!pt->frozen[i]) rl_ema_update(pt->ema[i], pt->p.w[i].data, rl_weight_numel(&pt->p.w[i]), d);
    }
    return norm;
}

const float *rl_ptable_release(const rl_ptable *pt, int i)
{
    return pt->ema ? pt->ema[i] : pt->p.w[i].data;
}

// ---- checkpoints -------------------------------------------------------------------------

rl_status rl_ckpt_save(const rl_ptable *pt, const char *path, const char *stage, long step,
                       const rl_kv *meta, int n_meta, rl_err *err)
{
    rl_st_writer w;
    rl_st_writer_init(&w);
    rl_status rc = RL_OK;
    char name[600], buf[32];
    for (int i = 0; i < pt->n && !rc; i++) {
        const rl_weight *p = &pt->p.w[i];
        const struct { const char *pfx; const float *data; } parts[4] = {
            { "param.", p->data }, { "adam_m.", pt->m ? pt->m[i] : NULL },
            { "adam_v.", pt->v ? pt->v[i] : NULL }, { "ema.", pt->ema ? pt->ema[i] : NULL },
        };
        for (int k = 0; k < 4 && !rc; k++) {
            if (!parts[k].data) continue;
            snprintf(name, sizeof name, "%s%s", parts[k].pfx, p->name);
            rc = rl_st_writer_add_f32(&w, name, RL_F32, p->ndim, p->shape, parts[k].data, err);
        }
    }
    snprintf(buf, sizeof buf, "%ld", step);
    if (!rc) rc = rl_st_writer_meta(&w, "reel_checkpoint", "1", err);
    if (!rc) rc = rl_st_writer_meta(&w, "stage", stage, err);
    if (!rc) rc = rl_st_writer_meta(&w, "step", buf, err);
    for (int i = 0; i < n_meta && !rc; i++)
        rc = rl_st_writer_meta(&w, meta[i].key, meta[i].value, err);
    if (!rc) rc = rl_st_writer_save(&w, path, err);
    rl_st_writer_free(&w);
    return rc;
}

rl_status rl_ckpt_open(rl_ckpt *c, const char *path, rl_err *err)
{
    *c = (rl_ckpt){ 0 };
    rl_st_file *f = calloc(1, sizeof *f);
    if (!f) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
    rl_status rc = rl_st_open(f, path, err);
    if (rc) {
        free(f);
        return rc;
    }
    c->st = f;
    const char *tag = rl_st_meta(f, "reel_checkpoint"), *step = rl_st_meta(f, "step");
    c->stage = rl_st_meta(f, "stage");
    char *end = NULL;
    if (!tag || !c->stage || !step) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: not a reel training checkpoint (no reel_checkpoint, "
                     "stage and step metadata)", path);
        goto fail;
    }
    errno = 0;
    c->step = strtol(step, &end, 10);
    if (errno || !*step || *end || c->step < 0) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: metadata step '%s' is not a step number", path, step);
        goto fail;
    }
    return RL_OK;
fail:
    rl_ckpt_close(c);
    return rc;
}

const char *rl_ckpt_meta(const rl_ckpt *c, const char *key)
{
    return c->st ? rl_st_meta(c->st, key) : NULL;
}

static rl_status restore_one(const rl_st_file *f, const char *pfx, const rl_weight *p, float *dst,
                             rl_err *err)
{
    char name[600];
    snprintf(name, sizeof name, "%s%s", pfx, p->name);
    const rl_st_tensor *t = rl_st_find(f, name);
    if (!t) return rl_errf(err, RL_E_MISSING, "%s: missing tensor '%s'", f->path, name);
    int same = t->dtype == RL_F32 && t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
    if (!same) {
        char a[160], b[160];
        return rl_errf(err, RL_E_SHAPE, "%s: tensor '%s' is %s %s, this run needs F32 %s",
                       f->path, name, rl_dtype_name(t->dtype), rl_shape_str(a, sizeof a, t->ndim, t->shape),
                       rl_shape_str(b, sizeof b, p->ndim, p->shape));
    }
    memcpy(dst, t->data, t->nbytes);   // the mapping may be unaligned: copy bytes
    return RL_OK;
}

rl_status rl_ckpt_restore(const rl_ckpt *c, rl_ptable *pt, rl_err *err)
{
    const rl_st_file *f = c->st;
    rl_status rc = RL_OK;
    int expect = 0;
    for (int i = 0; i < pt->n && !rc; i++) {
        const rl_weight *p = &pt->p.w[i];
        rc = restore_one(f, "param.", p, p->data, err);
        if (!rc && pt->m) rc = restore_one(f, "adam_m.", p, pt->m[i], err);
        if (!rc && pt->v) rc = restore_one(f, "adam_v.", p, pt->v[i], err);
        if (!rc && pt->ema) rc = restore_one(f, "ema.", p, pt->ema[i], err);
        expect += 1 + (pt->m != NULL) + (pt->v != NULL) + (pt->ema != NULL);
    }
    if (!rc && f->n_tensors != expect)
        rc = rl_errf(err, RL_E_SHAPE, "%s: holds %d tensors, this run has %d (a different model "
                     "or EMA setting)", f->path, f->n_tensors, expect);
    return rc;
}

void rl_ckpt_close(rl_ckpt *c)
{
    if (c->st) {
        rl_st_close(c->st);
        free(c->st);
    }
    *c = (rl_ckpt){ 0 };
}

// ---- learning rate ----------------------------------------------------------------------

float rl_lr_at(long step, long total, long warmup, float base, float min_ratio)
{
    if (step < warmup) return (float)((double)base * (double)step / (double)warmup);
    if (total <= warmup) return base;
    double p = (double)(step - warmup) / (double)(total - warmup);
    if (p > 1.0) p = 1.0;
    const double c = 0.5 * (1.0 + cos(M_PI * p));
    return (float)((double)base * (min_ratio + (1.0 - min_ratio) * c));
}

// ---- CSV log ------------------------------------------------------------------------------

rl_status rl_csvlog_open(rl_csvlog *log, const char *path, const char *header, long keep_upto,
                         rl_err *err)
{
    *log = (rl_csvlog){ 0 };
    rl_status rc = RL_OK;
    char *kept = NULL;
    size_t len = 0, cap = 0;
    FILE *in = keep_upto >= 0 ? fopen(path, "r") : NULL;
    // rows are kept only up to the checkpoint's step; the header is rewritten
    cap = strlen(header) + 2;
    kept = malloc(cap);
    if (!kept) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
    len = (size_t)snprintf(kept, cap, "%s\n", header);
    if (in) {
        char line[4096];
        int first = 1;
        while (fgets(line, sizeof line, in)) {
            if (first) {   // the old header
                first = 0;
                continue;
            }
            char *end;
            long s = strtol(line, &end, 10);
            if (end == line || *end != ',' || s > keep_upto) continue;
            size_t l = strlen(line);
            if (l == 0 || line[l - 1] != '\n') continue;   // a torn last line
            if (len + l + 1 > cap) {
                size_t nc = (cap + l + 1) * 2;
                char *k = realloc(kept, nc);
                if (!k) {
                    rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
                    goto done;
                }
                kept = k;
                cap = nc;
            }
            memcpy(kept + len, line, l + 1);
            len += l;
        }
    }
    rc = rl_atomic_write_file(path, kept, len, err);
    if (rc) goto done;
    log->f = fopen(path, "a");
    if (!log->f) {
        rc = rl_errf(err, RL_E_IO, "%s: cannot open for appending: %s", path, strerror(errno));
        goto done;
    }
    log->path = strdup(path);
done:
    if (in) fclose(in);
    free(kept);
    return rc;
}

void rl_csvlog_row(rl_csvlog *log, const char *fmt, ...)
{
    if (!log->f) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(log->f, fmt, ap);
    va_end(ap);
    fputc('\n', log->f);
    fflush(log->f);
}

void rl_csvlog_close(rl_csvlog *log)
{
    if (log->f) fclose(log->f);
    free(log->path);
    *log = (rl_csvlog){ 0 };
}

// ---- random numbers ---------------------------------------------------------------------

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

rl_trng rl_trng_make(uint64_t seed, uint64_t stream, uint64_t step, uint64_t item)
{
    // each field goes through a full mix before the next is folded in
    uint64_t s = seed;
    uint64_t h = splitmix(&s);
    s = h ^ stream;
    h = splitmix(&s);
    s = h ^ step;
    h = splitmix(&s);
    s = h ^ item;
    h = splitmix(&s);
    return (rl_trng){ h };
}

uint64_t rl_trng_u64(rl_trng *r)
{
    return splitmix(&r->s);
}

double rl_trng_unif(rl_trng *r)
{
    return (double)(rl_trng_u64(r) >> 11) * 0x1.0p-53;
}

int rl_noise_draw_t(rl_trng *r, float bias)
{
    if (bias == 1.0f) return (int)(rl_trng_u64(r) % RL_NOISE_T);
    const int back = (int)(RL_NOISE_T * pow(rl_trng_unif(r), (double)bias));
    return RL_NOISE_T - 1 - (back < RL_NOISE_T ? back : RL_NOISE_T - 1);
}

float rl_trng_normal(rl_trng *r)
{
    const double u1 = 1.0 - rl_trng_unif(r);   // (0, 1]
    const double u2 = rl_trng_unif(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void rl_trng_normals(rl_trng *r, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = rl_trng_normal(r);
}

// ---- noise schedule ---------------------------------------------------------------------

void rl_noise_sched_init(rl_noise_sched *s, int scaled_linear, float beta_start, float beta_end,
                         int zero_snr, int v_pred)
{
    *s = (rl_noise_sched){ .scaled_linear = scaled_linear, .beta_start = beta_start,
                           .beta_end = beta_end, .zero_snr = zero_snr, .v_pred = v_pred };
    double betas[RL_NOISE_T], abar[RL_NOISE_T];
    for (int i = 0; i < RL_NOISE_T; i++) {
        const double f = (double)i / (RL_NOISE_T - 1);
        if (scaled_linear) {
            const double b = sqrt(beta_start) + f * (sqrt(beta_end) - sqrt(beta_start));
            betas[i] = b * b;
        } else {
            betas[i] = beta_start + f * (beta_end - beta_start);
        }
    }
    double p = 1.0;
    for (int i = 0; i < RL_NOISE_T; i++) abar[i] = p *= 1.0 - betas[i];
    if (zero_snr) {
        // rescale_zero_terminal_snr (Lin et al. 2023, Algorithm 1): shift and scale
        // sqrt(abar) so the last step has zero SNR and the first keeps its value
        const double a0 = sqrt(abar[0]), aT = sqrt(abar[RL_NOISE_T - 1]);
        for (int i = 0; i < RL_NOISE_T; i++) {
            const double a = (sqrt(abar[i]) - aT) * a0 / (a0 - aT);
            abar[i] = a * a;
        }
    }
    for (int i = 0; i < RL_NOISE_T; i++) s->alphas_cumprod[i] = (float)abar[i];
}

float rl_min_snr_weight(double abar, float gamma, int v_pred)
{
    if (gamma <= 0) return 1.0f;
    const double snr = abar >= 1.0 ? 1e30 : abar / (1.0 - abar);
    const double m = snr < gamma ? snr : gamma;
    if (v_pred) return (float)(m / (snr + 1.0));
    return snr > 0 ? (float)(m / snr) : 1.0f;
}

void rl_noise_add(const rl_noise_sched *s, float *xt, float *target, const float *x0,
                  const float *eps, int t, size_t n)
{
    const float a = sqrtf(s->alphas_cumprod[t]), b = sqrtf(1.0f - s->alphas_cumprod[t]);
    for (size_t i = 0; i < n; i++) {
        xt[i] = a * x0[i] + b * eps[i];
        target[i] = s->v_pred ? a * eps[i] - b * x0[i] : eps[i];
    }
}

// ---- shapes batches -------------------------------------------------------------------------

void rl_train_specs(void *specs, char (*captions)[96], uint64_t seed, long step, int B)
{
    rl_shapes_spec *sp = specs;
    for (int b = 0; b < B; b++) {
        rl_shapes_sample(&sp[b], seed, (uint64_t)(step - 1) * (uint64_t)B + (uint64_t)b,
                         RL_SHAPES_TRAIN);
        if (captions) rl_shapes_spec_caption(captions[b], 96, &sp[b]);
    }
}

// ---- the loop -------------------------------------------------------------------------------

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void rl_train_request_stop(void)
{
    stop_requested = 1;
}

rl_status rl_train_loop(const rl_train_loop_cfg *c, rl_ptable *pt, rl_err *err)
{
    rl_status rc = RL_OK;
    rl_csvlog log = { 0 };
    rl_ckpt ck = { 0 };
    long start = 0;
    struct sigaction sa = { 0 }, old_int, old_term;
    int handlers = 0;

    if (c->resume) {
        rc = rl_ckpt_open(&ck, c->ckpt_path, err);
        if (rc && access(c->ckpt_path, F_OK) != 0 && errno == ENOENT)
            rc = c->export_only
                 ? rl_errf(err, RL_E_MISSING, "--export: no checkpoint at %s", c->ckpt_path)
                 : rl_errf(err, RL_E_MISSING, "--resume: no checkpoint at %s (run without "
                           "--resume to start a new run)", c->ckpt_path);
        if (rc) goto done;
        if (strcmp(ck.stage, c->stage)) {
            rc = rl_errf(err, RL_E_PARAM, "%s: a checkpoint of stage '%s', this is stage '%s'",
                         c->ckpt_path, ck.stage, c->stage);
            goto done;
        }
        for (int i = 0; i < c->n_meta; i++) {
            const char *old = rl_ckpt_meta(&ck, c->meta[i].key);
            if (!old || strcmp(old, c->meta[i].value)) {
                rc = rl_errf(err, RL_E_PARAM, "%s: %s was '%s' in the stopped run, now '%s'; "
                             "resume with the same settings", c->ckpt_path, c->meta[i].key,
                             old ? old : "(absent)", c->meta[i].value);
                goto done;
            }
        }
        rc = rl_ckpt_restore(&ck, pt, err);
        if (rc) goto done;
        start = ck.step;
        rl_ckpt_close(&ck);
    }
    if (c->export_only) {   // reads the checkpoint only: safe beside the run that writes it
        rc = c->finish ? c->finish(c->ctx, pt, err) : RL_OK;
        goto done;
    }
    if (c->log_path) {
        rc = rl_csvlog_open(&log, c->log_path, "step,loss,lr,grad_norm,aux,elapsed_s",
                            c->resume ? start : -1, err);
        if (rc) goto done;
    }

    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    stop_requested = 0;
    if (c->catch_signals) {
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        handlers = 1;
    }

    const double t0 = now_s();
    double t_ckpt = t0;
    const long last = c->stop_at > 0 && c->stop_at < c->steps ? c->stop_at : c->steps;
    for (long s = start + 1; s <= last; s++) {
        double loss = 0.0, aux = 0.0;
        rl_ptable_zero_grad(pt);
        rc = c->step(c->ctx, pt, s, &loss, &aux, err);
        if (rc) goto done;
        const float lr = rl_lr_at(s, c->steps, c->warmup, c->lr, c->min_lr_ratio);
        const double gn = rl_ptable_step(pt, s, lr, &c->adam, c->max_norm, c->ema_decay);
        if (!isfinite(loss) || !isfinite(gn)) {
            rc = rl_errf(err, RL_E_INTERNAL, "%s: loss %g, gradient norm %g at step %ld: training "
                         "diverged (lower --lr; the last checkpoint is %s)", c->stage, loss, gn, s,
                         c->ckpt_path);
            goto done;
        }
        const double t = now_s();
        rl_csvlog_row(&log, "%ld,%.8g,%.6g,%.6g,%.6g,%.3f", s, loss, (double)lr, gn, aux, t - t0);
        if (c->report) c->report(c->report_ctx, s, c->steps, loss, lr);
        const int stop = stop_requested;
        if (s == last || stop || (c->ckpt_every > 0 && t - t_ckpt >= c->ckpt_every)) {
            rc = rl_ckpt_save(pt, c->ckpt_path, c->stage, s, c->meta, c->n_meta, err);
            if (rc) goto done;
            t_ckpt = now_s();
        }
        if (stop) {
            rc = rl_errf(err, RL_E_INTERRUPTED, "%s: stopped at step %ld; checkpoint %s (continue "
                         "with --resume)", c->stage, s, c->ckpt_path);
            goto done;
        }
    }
    // the model folder is written at the end and also at --stop-at, so a run split across
    // sittings always leaves usable (EMA) weights behind; a later --resume overwrites them
    if (c->finish) rc = c->finish(c->ctx, pt, err);

done:
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    rl_ckpt_close(&ck);
    rl_csvlog_close(&log);
    return rc;
}

rl_status rl_train_mkdir(const char *path, rl_err *err)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return rl_errf(err, RL_E_IO, "%s: cannot create folder: %s", path, strerror(errno));
    return RL_OK;
}

char *rl_train_join(char *buf, size_t cap, const char *dir, const char *name)
{
    if (snprintf(buf, cap, "%s/%s", dir, name) >= (int)cap) buf[cap - 1] = 0;   // truncated: fails later, named
    return buf;
}

rl_status rl_ptable_release_table(const rl_ptable *pt, rl_weights *ws, rl_err *err)
{
    for (int i = 0; i < pt->n; i++) {
        const rl_weight *p = &pt->p.w[i];
        rl_status rc = rl_weights_add(ws, p->name, p->ndim, p->shape,
                                      (float *)rl_ptable_release(pt, i), err);
        if (rc) return rc;
    }
    return RL_OK;
}

rl_status rl_ptable_copy(rl_ptable *pt, rl_weights *file, int allow_missing, rl_err *err)
{
    rl_status rc = RL_OK;
    for (int i = 0; i < pt->n && !rc; i++) {
        rl_weight *p = &pt->p.w[i];
        if (!rl_weights_find(file, p->name)) {
            if (!allow_missing)
                rc = rl_errf(err, RL_E_MISSING, "%s: missing tensor '%s'", file->label, p->name);
            continue;
        }
        const float *src;
        rc = rl_weights_get(file, p->name, p->ndim, p->shape, &src, err);
        if (!rc) memcpy(p->data, src, rl_weight_numel(p) * sizeof(float));
    }
    return rc;
}

rl_status rl_ptable_load(rl_ptable *pt, const char *path, const char *prefix, int allow_missing,
                         rl_err *err)
{
    rl_weights file;
    rl_weights_init(&file, path);
    rl_status rc = rl_weights_load_st(&file, path, prefix, err);
    if (!rc) rc = rl_ptable_copy(pt, &file, allow_missing, err);
    rl_weights_free(&file);
    return rc;
}

// ---- stage plumbing -------------------------------------------------------------------------

rl_train_opts rl_train_opts_default(void)
{
    return (rl_train_opts){
        .steps = 4000, .warmup = 200, .batch = 8, .seed = 1,
        .lr = 1e-3f, .min_lr_ratio = 0.1f, .weight_decay = 1e-2f, .max_norm = 1.0f,
        .ema = 0.999f, .ckpt_every = 300.0, .catch_signals = 1,
        .size = 64, .frames = 16, .kl_weight = 1e-4f,
        .unet_stage = RL_UNET_STAGE_JOINT, .cond_drop = 0.1f, .snr_gamma = 0.0f, .t_bias = 1.0f,
        .pe_scale = 0.0f,   // as the --resume-from model stores, else 1
        .merges = 200, .max_length = 24,
    };
}

rl_status rl_train_load_config(rl_json *j, const char *spec, const char *def, rl_err *err)
{
    if (!spec) return rl_json_parse(j, def, strlen(def), "default config", err);
    if (spec[0] == '{') return rl_json_parse(j, spec, strlen(spec), "--config", err);
    return rl_json_load(j, spec, err);
}

int rl_train_common_meta(rl_kv *meta, char *opts_buf, size_t cap, const rl_train_opts *o,
                         const char *cfg_text, const char *extra)
{
    snprintf(opts_buf, cap, "{\"seed\": %llu, \"batch\": %d, \"steps\": %ld, \"warmup\": %ld, "
             "\"lr\": %.9g, \"min_lr_ratio\": %.9g, \"weight_decay\": %.9g, \"max_norm\": %.9g, "
             "\"ema\": %.9g}", (unsigned long long)o->seed, o->batch, o->steps, o->warmup,
             (double)o->lr, (double)o->min_lr_ratio, (double)o->weight_decay,
             (double)o->max_norm, (double)o->ema);
    int n = 0;
    meta[n++] = (rl_kv){ "config", cfg_text };
    meta[n++] = (rl_kv){ "options", opts_buf };
    if (extra) meta[n++] = (rl_kv){ "stage_options", extra };
    return n;
}

rl_status rl_train_loop_cfg_init(rl_train_loop_cfg *c, const rl_train_opts *o, const char *stage,
                                 char *ckpt, char *log, size_t cap, rl_err *err)
{
    char dir[4096], name[128];
    *c = (rl_train_loop_cfg){
        .stage = stage, .report = o->report, .report_ctx = o->report_ctx,
        .steps = o->steps, .warmup = o->warmup, .stop_at = o->stop_at,
        .lr = o->lr, .min_lr_ratio = o->min_lr_ratio,
        .adam = { .lr = o->lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                  .weight_decay = o->weight_decay },
        .max_norm = o->max_norm, .ema_decay = o->ema, .ckpt_every = o->ckpt_every,
        .resume = o->resume || o->export_only, .export_only = o->export_only,
        .catch_signals = o->catch_signals,
    };
    rl_status rc = rl_train_mkdir(o->out, err);
    if (rc) return rc;
    if (!o->ckpt || !o->log) {
        rl_train_join(dir, sizeof dir, o->out, "train");
        rc = rl_train_mkdir(dir, err);
        if (rc) return rc;
    }
    snprintf(name, sizeof name, "%s.ckpt.safetensors", stage);
    if (o->ckpt) snprintf(ckpt, cap, "%s", o->ckpt);
    else rl_train_join(ckpt, cap, dir, name);
    snprintf(name, sizeof name, "%s.csv", stage);
    if (o->log) snprintf(log, cap, "%s", o->log);
    else rl_train_join(log, cap, dir, name);
    c->ckpt_path = ckpt;
    c->log_path = log;
    return RL_OK;
}
