/* io/weights_io.c - safetensors <-> rl_weights, see weights_io.h. */
#include "io/weights_io.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

static void close_st(void *p)
{
    rl_st_close(p);
    free(p);
}

static int is_float(rl_dtype t) { return t == RL_F32 || t == RL_F16 || t == RL_BF16 || t == RL_F64; }

/* Index of the first non-finite value, or n. */
static size_t first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

rl_status rl_weights_load_st(rl_weights *ws, const char *path, const char *strip_prefix,
                             rl_err *err)
{
    rl_status rc;
    rl_st_file *f = malloc(sizeof *f);
    if (!f) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
    if ((rc = rl_st_open(f, path, err))) { free(f); return rc; }
    // from here the mapping belongs to ws: freed with it, whatever happens below
    if ((rc = rl_weights_keep(ws, f, close_st, err))) return rc;

    size_t pl = strip_prefix ? strlen(strip_prefix) : 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const rl_st_tensor *t = &f->tensors[i];
        if (!is_float(t->dtype)) continue;
        if (pl && strncmp(t->name, strip_prefix, pl) != 0) continue;
        const char *name = t->name + pl;
        size_t n = t->nbytes / rl_dtype_size(t->dtype);
        float *data;
        if (t->dtype == RL_F32 && ((uintptr_t)t->data & 3) == 0) {
            data = (float *)t->data;   // read-only mapping; models never write weights
            if ((rc = rl_weights_add(ws, name, t->ndim, t->shape, data, err))) return rc;
        } else {
            if ((rc = rl_weights_add_new(ws, name, t->ndim, t->shape, &data, err))) return rc;
            rl_convert_to_f32(data, t->data, t->dtype, n);
        }
        ws->w[ws->n - 1].src_dtype = t->dtype;
        size_t bad = first_nonfinite(data, n);
        if (bad < n)
            return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s' holds a non-finite value (%g) at "
                           "element %zu", path, t->name, (double)data[bad], bad);
    }
    return RL_OK;
}

rl_status rl_weights_save_st(const rl_weights *ws, const char *path, const char *prefix,
                             rl_dtype dtype, rl_err *err)
{
    rl_st_writer w;
    rl_st_writer_init(&w);
    rl_status rc = RL_OK;
    size_t pl = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < ws->n && !rc; i++) {
        const rl_weight *t = &ws->w[i];
        if (pl && strncmp(t->name, prefix, pl) != 0) continue;
        rc = rl_st_writer_add_f32(&w, t->name, dtype, t->ndim, t->shape, t->data, err);
    }
    if (!rc) rc = rl_st_writer_save(&w, path, err);
    rl_st_writer_free(&w);
    return rc;
}
