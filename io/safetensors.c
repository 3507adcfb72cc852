/* io/safetensors.c - validated safetensors reader (mmap) and atomic writer.
 *
 * Format (huggingface/safetensors): u64 little-endian header length N; N bytes of UTF-8 JSON,
 * an object mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]} plus an
 * optional "__metadata__" object of string -> string; then the data buffer, to which the
 * offsets are relative.
 *
 * Files are untrusted input. Before any tensor byte is touched, rl_st_open checks: the length
 * prefix against the file size (by subtraction, never addition), a header size limit, that the
 * header is one JSON object, every entry's keys and types, dtype among the known ones, rank
 * <= RL_MAX_DIMS, every dimension a non-negative integer, the element count times the dtype
 * size without overflow and equal to end - begin, offsets within the data buffer, no two
 * tensors overlapping, names unique (cJSON keeps duplicate keys, so they are checked here).
 * Gaps between tensors are allowed (harmless; the reference writer never leaves any). */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"

// the reference implementation refuses headers over 100 MB; so do we
#define HEADER_MAX ((uint64_t)100 << 20)

// ---- reading ------------------------------------------------------------------------

static int cmp_offset(const void *a, const void *b)
{
    const rl_st_tensor *x = a, *y = b;
    const uint8_t *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}

static int cmp_name_ptr(const void *a, const void *b)
{
    const rl_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* A JSON number that is a non-negative integer below 2^53 (exactly representable). */
static int as_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static rl_status parse_entry(rl_st_file *f, const char *label, const cJSON *e, rl_st_tensor *t,
                             const uint8_t *data, uint64_t data_size, rl_err *err)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': entry is not a JSON object", label, name);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': 'dtype' missing or not a string", label,
                       name);
    if (!rl_dtype_parse(dt->valuestring, &t->dtype))
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", label, name,
                       dt->valuestring);
    if (!cJSON_IsArray(sh))
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': 'shape' missing or not an array", label,
                       name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > RL_MAX_DIMS)
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': rank %d exceeds the maximum %d", label,
                       name, nd, RL_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int overflow = 0, i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (!as_u64(d, &v) || v > INT64_MAX)
            return rl_errf(err, RL_E_FORMAT,
                           "%s: tensor '%s': shape[%d] is not a non-negative integer", label, name, i);
        t->shape[i++] = (int64_t)v;
        if (v != 0 && numel > UINT64_MAX / v) overflow = 1;
        else numel *= v;
    }
    size_t es = rl_dtype_size(t->dtype);
    if (overflow || numel > UINT64_MAX / es || numel * es > SIZE_MAX)
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': shape element count overflows", label,
                       name);
    uint64_t nbytes = numel * es;

    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': 'data_offsets' must be [begin, end]",
                       label, name);
    uint64_t b, en;
    if (!as_u64(cJSON_GetArrayItem(off, 0), &b) || !as_u64(cJSON_GetArrayItem(off, 1), &en))
        return rl_errf(err, RL_E_FORMAT,
                       "%s: tensor '%s': data_offsets are not non-negative integers", label, name);
    if (en < b)
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': data_offsets end %" PRIu64
                       " is before begin %" PRIu64, label, name, en, b);
    if (en > data_size)
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                       "] extend past the data buffer of %" PRIu64 " bytes (file truncated?)",
                       label, name, b, en, data_size);
    if (en - b != nbytes) {
        char s[128];
        return rl_errf(err, RL_E_FORMAT, "%s: tensor '%s': %s %s needs %" PRIu64
                       " bytes, data_offsets give %" PRIu64, label, name,
                       rl_dtype_name(t->dtype), rl_shape_str(s, sizeof s, t->ndim, t->shape),
                       nbytes, en - b);
    }
    t->nbytes = (size_t)nbytes;
    t->data = data + b;
    t->name = strdup(name);
    if (!t->name) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", label);
    (void)f;
    return RL_OK;
}

static rl_status parse_meta(rl_st_file *f, const char *label, const cJSON *m, rl_err *err)
{
    if (!cJSON_IsObject(m))
        return rl_errf(err, RL_E_FORMAT, "%s: '__metadata__' is not a JSON object", label);
    int n = cJSON_GetArraySize(m);
    f->meta = calloc((size_t)n + 1, sizeof *f->meta);
    if (!f->meta) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", label);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, m) {
        if (!cJSON_IsString(kv))
            return rl_errf(err, RL_E_FORMAT, "%s: __metadata__ value '%s' is not a string", label,
                           kv->string);
        for (int i = 0; i < f->n_meta; i++)
            if (!strcmp(f->meta[i].key, kv->string))
                return rl_errf(err, RL_E_FORMAT, "%s: __metadata__ key '%s' appears twice", label,
                               kv->string);
        rl_st_meta_kv *e = &f->meta[f->n_meta];
        e->key = strdup(kv->string);
        e->value = strdup(kv->valuestring);
        f->n_meta++;   // counted before the check so close frees a half-made entry
        if (!e->key || !e->value) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", label);
    }
    return RL_OK;
}

/* Validates buf[0..size) (the whole file image) and fills f's tables. */
static rl_status parse(rl_st_file *f, const uint8_t *buf, size_t size, const char *label,
                       rl_err *err)
{
    if (size < 8)
        return rl_errf(err, RL_E_FORMAT, "%s: %zu bytes is too short for a safetensors file "
                       "(8-byte header length missing)", label, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > size - 8)
        return rl_errf(err, RL_E_FORMAT, "%s: header length %" PRIu64
                       " exceeds the %zu bytes after the length prefix (truncated or not "
                       "safetensors)", label, hlen, size - 8);
    if (hlen > HEADER_MAX)
        return rl_errf(err, RL_E_FORMAT, "%s: header length %" PRIu64 " exceeds the %" PRIu64
                       "-byte limit", label, hlen, HEADER_MAX);
    if (hlen < 2 || buf[8] != '{')
        return rl_errf(err, RL_E_FORMAT, "%s: header is not a JSON object", label);
    if (memchr(buf + 8, '\0', (size_t)hlen))
        return rl_errf(err, RL_E_FORMAT, "%s: header contains a NUL byte", label);

    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;

    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rl_errf(err, RL_E_FORMAT, "%s: header is not valid JSON", label);
    }
    rl_status rc = RL_OK;
    int n = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    if (!f->tensors) { rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", label); goto done; }
    int n_meta_seen = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) {
            if (n_meta_seen++) {
                rc = rl_errf(err, RL_E_FORMAT, "%s: '__metadata__' appears twice", label);
                goto done;
            }
            if ((rc = parse_meta(f, label, e, err))) goto done;
            continue;
        }
        if (!e->string[0]) {
            rc = rl_errf(err, RL_E_FORMAT, "%s: a tensor has an empty name", label);
            goto done;
        }
        rc = parse_entry(f, label, e, &f->tensors[f->n_tensors], data, data_size, err);
        if (rc) goto done;
        f->n_tensors++;
    }

    // unique names: sort pointers by name and compare neighbours
    if (f->n_tensors > 1) {
        const rl_st_tensor **p = malloc((size_t)f->n_tensors * sizeof *p);
        if (!p) { rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", label); goto done; }
        for (int i = 0; i < f->n_tensors; i++) p[i] = &f->tensors[i];
        qsort(p, (size_t)f->n_tensors, sizeof *p, cmp_name_ptr);
        for (int i = 1; i < f->n_tensors; i++)
            if (!strcmp(p[i]->name, p[i - 1]->name)) {
                rc = rl_errf(err, RL_E_FORMAT, "%s: tensor '%s' appears twice in the header",
                             label, p[i]->name);
                break;
            }
        free(p);
        if (rc) goto done;
    }

    // no overlaps: in offset order each tensor starts at or after the previous one's end
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_offset);
    for (int i = 1; i < f->n_tensors; i++) {
        const rl_st_tensor *a = &f->tensors[i - 1], *b = &f->tensors[i];
        if ((const uint8_t *)b->data < (const uint8_t *)a->data + a->nbytes && b->nbytes && a->nbytes) {
            rc = rl_errf(err, RL_E_FORMAT, "%s: tensors '%s' and '%s' overlap in the data buffer",
                         label, a->name, b->name);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return rc;
}

rl_status rl_st_open(rl_st_file *f, const char *path, rl_err *err)
{
    rl_status rc;
    *f = (rl_st_file){ .fd = -1, .map = MAP_FAILED };
    f->path = strdup(path);
    if (!f->path) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);

    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        rc = rl_errf(err, errno == ENOENT ? RL_E_MISSING : RL_E_IO, "%s: cannot open: %s", path,
                     strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        rc = rl_errf(err, RL_E_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = rl_errf(err, RL_E_IO, "%s: not a regular file", path);
        goto fail;
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: %zu bytes is too short for a safetensors file", path,
                     f->size);
        goto fail;
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (f->map == MAP_FAILED) {
        rc = rl_errf(err, RL_E_IO, "%s: cannot map %zu bytes: %s", path, f->size, strerror(errno));
        goto fail;
    }
    if ((rc = parse(f, f->map, f->size, path, err))) goto fail;
    return RL_OK;

fail:
    rl_st_close(f);
    return rc;
}

rl_status rl_st_open_mem(rl_st_file *f, const void *buf, size_t size, const char *label, rl_err *err)
{
    *f = (rl_st_file){ .fd = -1, .map = MAP_FAILED };
    f->path = strdup(label ? label : "<memory>");
    if (!f->path) return rl_errf(err, RL_E_NOMEM, "out of memory");
    rl_status rc = parse(f, buf, size, f->path, err);
    if (rc) rl_st_close(f);
    else f->size = size;
    return rc;
}

void rl_st_close(rl_st_file *f)
{
    if (f->tensors)
        for (int i = 0; i < f->n_tensors + 1; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->meta)
        for (int i = 0; i < f->n_meta; i++) { free(f->meta[i].key); free(f->meta[i].value); }
    free(f->meta);
    if (f->map != MAP_FAILED && f->map) munmap(f->map, f->size);
    if (f->fd >= 0) close(f->fd);
    free(f->path);
    *f = (rl_st_file){ .fd = -1, .map = MAP_FAILED };
}

const rl_st_tensor *rl_st_find(const rl_st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *rl_st_meta(const rl_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
    return NULL;
}

// ---- writing ------------------------------------------------------------------------

void rl_st_writer_init(rl_st_writer *w) { *w = (rl_st_writer){ 0 }; }

void rl_st_writer_free(rl_st_writer *w)
{
    for (int i = 0; i < w->n; i++) { free(w->t[i].name); free(w->t[i].data); }
    free(w->t);
    for (int i = 0; i < w->n_meta; i++) { free(w->meta[i].key); free(w->meta[i].value); }
    free(w->meta);
    *w = (rl_st_writer){ 0 };
}

static rl_status add_entry(rl_st_writer *w, const char *name, rl_dtype dtype, int ndim,
                           const int64_t *shape, rl_st_wtensor **out, rl_err *err)
{
    if (ndim < 0 || ndim > RL_MAX_DIMS)
        return rl_errf(err, RL_E_PARAM, "safetensors writer: tensor '%s': rank %d", name, ndim);
    if (!strcmp(name, "__metadata__") || !name[0])
        return rl_errf(err, RL_E_PARAM, "safetensors writer: invalid tensor name '%s'", name);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return rl_errf(err, RL_E_PARAM, "safetensors writer: tensor '%s' added twice", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        rl_st_wtensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return rl_errf(err, RL_E_NOMEM, "safetensors writer: out of memory");
        w->t = t;
        w->cap = cap;
    }
    rl_st_wtensor *t = &w->t[w->n];
    *t = (rl_st_wtensor){ .dtype = dtype, .ndim = ndim };
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return rl_errf(err, RL_E_PARAM, "safetensors writer: tensor '%s': negative dim", name);
        t->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    t->nbytes = numel * rl_dtype_size(dtype);
    t->name = strdup(name);
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return rl_errf(err, RL_E_NOMEM, "safetensors writer: out of memory for '%s'", name);
    }
    w->n++;
    *out = t;
    return RL_OK;
}

rl_status rl_st_writer_add_f32(rl_st_writer *w, const char *name, rl_dtype dtype, int ndim,
                               const int64_t *shape, const float *data, rl_err *err)
{
    if (dtype != RL_F32 && dtype != RL_F16 && dtype != RL_BF16)
        return rl_errf(err, RL_E_PARAM, "safetensors writer: '%s': dtype %s is not a float type",
                       name, rl_dtype_name(dtype));
    rl_st_wtensor *t;
    rl_status rc = add_entry(w, name, dtype, ndim, shape, &t, err);
    if (rc) return rc;
    size_t n = t->nbytes / rl_dtype_size(dtype);
    unsigned char *o = t->data;
    for (size_t i = 0; i < n; i++) {
        if (dtype == RL_F32) {
            memcpy(o + 4 * i, &data[i], 4);   // little-endian hosts only (x86-64, arm64)
        } else {
            uint16_t h = dtype == RL_F16 ? rl_f32_to_f16(data[i]) : rl_f32_to_bf16(data[i]);
            o[2 * i] = (unsigned char)(h & 0xff);
            o[2 * i + 1] = (unsigned char)(h >> 8);
        }
    }
    return RL_OK;
}

rl_status rl_st_writer_add_raw(rl_st_writer *w, const char *name, rl_dtype dtype, int ndim,
                               const int64_t *shape, const void *data, rl_err *err)
{
    rl_st_wtensor *t;
    rl_status rc = add_entry(w, name, dtype, ndim, shape, &t, err);
    if (rc) return rc;
    if (t->nbytes) memcpy(t->data, data, t->nbytes);
    return RL_OK;
}

rl_status rl_st_writer_meta(rl_st_writer *w, const char *key, const char *value, rl_err *err)
{
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[i].key, key)) {
            char *v = strdup(value);
            if (!v) return rl_errf(err, RL_E_NOMEM, "safetensors writer: out of memory");
            free(w->meta[i].value);
            w->meta[i].value = v;
            return RL_OK;
        }
    if (w->n_meta == w->cap_meta) {
        int cap = w->cap_meta ? 2 * w->cap_meta : 16;
        rl_st_meta_kv *m = realloc(w->meta, (size_t)cap * sizeof *m);
        if (!m) return rl_errf(err, RL_E_NOMEM, "safetensors writer: out of memory");
        w->meta = m;
        w->cap_meta = cap;
    }
    rl_st_meta_kv *e = &w->meta[w->n_meta];
    e->key = strdup(key);
    e->value = strdup(value);
    if (!e->key || !e->value) {
        free(e->key);
        free(e->value);
        return rl_errf(err, RL_E_NOMEM, "safetensors writer: out of memory");
    }
    w->n_meta++;
    return RL_OK;
}

static int cmp_wname(const void *a, const void *b)
{
    const rl_st_wtensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

rl_status rl_st_writer_save(const rl_st_writer *w, const char *path, rl_err *err)
{
    rl_status rc = RL_OK;
    const rl_st_wtensor **order = NULL;
    cJSON *root = NULL;
    char *hdr = NULL;
    rl_atomic_file af = { 0 };

    order = malloc(((size_t)w->n + 1) * sizeof *order);
    root = cJSON_CreateObject();
    if (!order || !root) { rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path); goto fail; }
    for (int i = 0; i < w->n; i++) order[i] = &w->t[i];
    qsort(order, (size_t)w->n, sizeof *order, cmp_wname);   // sorted by name, as the library does

    if (w->n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        if (!m) { rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path); goto fail; }
        for (int i = 0; i < w->n_meta; i++)
            if (!cJSON_AddStringToObject(m, w->meta[i].key, w->meta[i].value)) {
                rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
                goto fail;
            }
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const rl_st_wtensor *t = order[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *sh = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *of = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        if (!e || !sh || !of || !cJSON_AddStringToObject(e, "dtype", rl_dtype_name(t->dtype))) {
            rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + t->nbytes)));
        off += t->nbytes;
    }
    hdr = cJSON_PrintUnformatted(root);
    if (!hdr) { rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path); goto fail; }
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) / 8 * 8;   // data starts 8-aligned, padded with spaces

    if ((rc = rl_atomic_open(&af, path, err))) goto fail;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    if ((rc = rl_atomic_write(&af, len8, 8, err)) || (rc = rl_atomic_write(&af, hdr, hlen, err)) ||
        (rc = rl_atomic_write(&af, spaces, padded - hlen, err)))
        goto fail;
    for (int i = 0; i < w->n; i++)
        if ((rc = rl_atomic_write(&af, order[i]->data, order[i]->nbytes, err))) goto fail;
    rc = rl_atomic_commit(&af, err);

fail:
    rl_atomic_abort(&af);   // no-op after a commit
    free(hdr);
    cJSON_Delete(root);
    free(order);
    return rc;
}
