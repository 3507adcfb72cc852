/* core/weights.h - a name -> F32 tensor table that models bind to.
 *
 * io/ fills it from safetensors files (F32 mapped in place when aligned, F16/BF16 converted
 * once, exactly); the trainer fills it from its own parameter and gradient buffers, so one
 * bind function serves weights and their gradient mirror. Models never see files. */
#ifndef RL_CORE_WEIGHTS_H
#define RL_CORE_WEIGHTS_H

#include <stdint.h>

#include "core/err.h"
#include "core/tensor.h"

typedef struct {
    char *name;
    int ndim;
    int64_t shape[RL_MAX_DIMS];
    float *data;           // F32, contiguous
    int owned;             // data was allocated by the table
    int used;              // set by rl_weights_get
    rl_dtype src_dtype;    // dtype on disk
} rl_weight;

typedef struct {
    char *label;           // for messages: the file or component it came from
    rl_weight *w; int n, cap;
    int *index; int index_cap;   // private: open-addressing hash of names, slots hold i + 1
    struct { void *owner; void (*free_fn)(void *); } *keep; int n_keep;  // mappings to release
} rl_weights;

void rl_weights_init(rl_weights *ws, const char *label);
void rl_weights_free(rl_weights *ws);    // idempotent; frees owned data
/* Adds an entry pointing at data (not copied, not owned). Names must be unique. */
rl_status rl_weights_add(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                         float *data, rl_err *err);
/* Adds an entry that owns a fresh zeroed buffer; *data (optional) receives it. */
rl_status rl_weights_add_new(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                             float **data, rl_err *err);
const rl_weight *rl_weights_find(const rl_weights *ws, const char *name);
/* Keeps owner alive until rl_weights_free, which calls free_fn(owner) (e.g. a mapped file whose
 * bytes entries point into). On failure free_fn(owner) is called at once. */
rl_status rl_weights_keep(rl_weights *ws, void *owner, void (*free_fn)(void *), rl_err *err);
/* Number of parameters (elements) in the table, and in one entry. */
size_t rl_weights_numel(const rl_weights *ws);
size_t rl_weight_numel(const rl_weight *w);

/* Looks up name, checks ndim and shape, marks it used, returns its data. Errors:
 * RL_E_MISSING "<label>: missing tensor 'name' (expected [..])",
 * RL_E_SHAPE   "<label>: tensor 'name' has shape [..], config implies [..]". */
rl_status rl_weights_get(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                         const float **data, rl_err *err);
/* Like rl_weights_get, but absent is not an error: *data = NULL. */
rl_status rl_weights_get_opt(rl_weights *ws, const char *name, int ndim, const int64_t *shape,
                             const float **data, rl_err *err);
/* Printf-style name helpers: rl_weights_getf(ws, &p, err, ndim, shape, "%s.conv1.weight", pfx) */
rl_status rl_weights_getf(rl_weights *ws, const float **data, rl_err *err, int ndim,
                          const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* "<prefix>.<child>" into buf (cap bytes), child printf-style, or just "<child>" when prefix
 * is NULL or empty (a module bound at the root): how a layer names what it owns. Truncates
 * to fit (a truncated name then fails the lookup as missing); returns buf. */
const char *rl_weights_name(char *buf, size_t cap, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* RL_E_SHAPE naming the first tensor under prefix (NULL/"" = all) that no bind used. */
rl_status rl_weights_check_all_used(const rl_weights *ws, const char *prefix, rl_err *err);

#endif
