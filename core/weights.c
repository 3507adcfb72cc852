/* core/weights.c - the name -> F32 tensor table models bind to, see weights.h. */
#include "core/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- hashing ------------------------------------------------------------------------

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;   // FNV-1a
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int *slot_of(const rl_weights *ws, const char *name)
{
    if (!ws->index_cap) return NULL;
    size_t mask = (size_t)ws->index_cap - 1;
    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        int *s = &ws->index[i];
        if (!*s || !strcmp(ws->w[*s - 1].name, name)) return s;
    }
}

static int rehash(rl_weights *ws, int cap)
{
    int *idx = calloc((size_t)cap, sizeof *idx);
    if (!idx) return 0;
    free(ws->index);
    ws->index = idx;
    ws->index_cap = cap;
    for (int i = 0; i < ws->n; i++) *slot_of(ws, ws->w[i].name) = i + 1;
    return 1;
}

// ---- table --------------------------------------------------------------------------

void rl_weights_init(rl_weights *ws, const char *label)
{
    *ws = (rl_weights){ 0 };
    ws->label = strdup(label ? label : "weights");
}

void rl_weights_free(rl_weights *ws)
{
    for (int i = 0; i < ws->n; i++) {
        free(ws->w[i].name);
        if (ws->w[i].owned) free(ws->w[i].data);
    }
    for (int i = 0; i < ws->n_keep; i++) ws->keep[i].free_fn(ws->keep[i].owner);
    free(ws->keep);
    free(ws->w);
    free(ws->index);
    free(ws->label);
    *ws = (rl_weights){ 0 };
}

static const char *label_of(const rl_weights *ws) { return ws->label ? ws->label : "weights"; }

static rl_status add_entry(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                           float *data, int owned, rl_err *err)
{
    if (ndim < 0 || ndim > RL_MAX_DIMS)
        return rl_errf(err, RL_E_SHAPE, "%s: tensor '%s' has rank %d", label_of(ws), name, ndim);
    if ((ws->n + 1) * 2 > ws->index_cap && !rehash(ws, ws->index_cap ? 2 * ws->index_cap : 256))
        return rl_errf(err, RL_E_NOMEM, "%s: out of memory", label_of(ws));
    int *s = slot_of(ws, name);
    if (*s)
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s' appears twice", label_of(ws), name);
    if (ws->n == ws->cap) {
        int cap = ws->cap ? 2 * ws->cap : 64;
        rl_weight *w = realloc(ws->w, (size_t)cap * sizeof *w);
        if (!w) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", label_of(ws));
        ws->w = w;
        ws->cap = cap;
    }
    rl_weight *w = &ws->w[ws->n];
    *w = (rl_weight){ .ndim = ndim, .data = data, .owned = owned, .src_dtype = RL_F32 };
    for (int i = 0; i < ndim; i++) w->shape[i] = shape[i];
    w->name = strdup(name);
    if (!w->name) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", label_of(ws));
    *s = ++ws->n;
    return RL_OK;
}

rl_status rl_weights_add(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                         float *data, rl_err *err)
{
    return add_entry(ws, name, ndim, shape, data, 0, err);
}

rl_status rl_weights_add_new(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                             float **data, rl_err *err)
{
    size_t n = 1;
    for (int i = 0; i < ndim && i < RL_MAX_DIMS; i++) n *= (size_t)shape[i];
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) return rl_errf(err, RL_E_NOMEM, "%s: out of memory for '%s'", label_of(ws), name);
    rl_status rc = add_entry(ws, name, ndim, shape, p, 1, err);
    if (rc) { free(p); return rc; }
    if (data) *data = p;
    return RL_OK;
}

rl_status rl_weights_keep(rl_weights *ws, void *owner, void (*free_fn)(void *), rl_err *err)
{
    void *k = realloc(ws->keep, (size_t)(ws->n_keep + 1) * sizeof *ws->keep);
    if (!k) {
        free_fn(owner);
        return rl_errf(err, RL_E_NOMEM, "%s: out of memory", label_of(ws));
    }
    ws->keep = k;
    ws->keep[ws->n_keep].owner = owner;
    ws->keep[ws->n_keep].free_fn = free_fn;
    ws->n_keep++;
    return RL_OK;
}

const rl_weight *rl_weights_find(const rl_weights *ws, const char *name)
{
    int *s = slot_of(ws, name);
    return s && *s ? &ws->w[*s - 1] : NULL;
}

size_t rl_weight_numel(const rl_weight *w)
{
    size_t n = 1;
    for (int d = 0; d < w->ndim; d++) n *= (size_t)w->shape[d];
    return n;
}

size_t rl_weights_numel(const rl_weights *ws)
{
    size_t total = 0;
    for (int i = 0; i < ws->n; i++) total += rl_weight_numel(&ws->w[i]);
    return total;
}

// ---- binding --------------------------------------------------------------------------

static rl_status get(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                     const float **data, int required, rl_err *err)
{
    char want[160], got[160];
    int *s = slot_of(ws, name);
    if (!s || !*s) {
        *data = NULL;
        if (!required) return RL_OK;
        return rl_errf(err, RL_E_MISSING, "%s: missing tensor '%s' (expected %s)", label_of(ws),
                       name, rl_shape_str(want, sizeof want, ndim, shape));
    }
    rl_weight *w = &ws->w[*s - 1];
    int same = w->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = w->shape[i] == shape[i];
    if (!same)
        return rl_errf(err, RL_E_SHAPE, "%s: tensor '%s' has shape %s, config implies %s",
                       label_of(ws), name, rl_shape_str(got, sizeof got, w->ndim, w->shape),
                       rl_shape_str(want, sizeof want, ndim, shape));
    w->used = 1;
    *data = w->data;
    return RL_OK;
}

rl_status rl_weights_get(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                         const float **data, rl_err *err)
{
    return get(ws, name, ndim, shape, data, 1, err);
}

rl_status rl_weights_get_opt(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                             const float **data, rl_err *err)
{
    return get(ws, name, ndim, shape, data, 0, err);
}

rl_status rl_weights_getf(rl_weights *ws, const float **data, rl_err *err, int ndim,
                          const int64_t *shape, const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name)
        return rl_errf(err, RL_E_INTERNAL, "%s: tensor name too long", label_of(ws));
    return get(ws, name, ndim, shape, data, 1, err);
}

const char *rl_weights_name(char *buf, size_t cap, const char *prefix, const char *fmt, ...)
{
    int k = (prefix && *prefix) ? snprintf(buf, cap, "%s.", prefix) : 0;
    if (k < 0 || (size_t)k >= cap) k = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + k, cap - (size_t)k, fmt, ap);
    va_end(ap);
    return buf;
}

rl_status rl_weights_check_all_used(const rl_weights *ws, const char *prefix, rl_err *err)
{
    size_t pl = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < ws->n; i++) {
        const rl_weight *w = &ws->w[i];
        if (w->used || (pl && strncmp(w->name, prefix, pl) != 0)) continue;
        char got[160];
        return rl_errf(err, RL_E_SHAPE, "%s: unexpected tensor '%s' %s: the config has no place "
                       "for it", label_of(ws), w->name,
                       rl_shape_str(got, sizeof got, w->ndim, w->shape));
    }
    return RL_OK;
}
