/* io/safetensors.h - safetensors files: validated mmap reader and atomic writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string", ...}}, then the data buffer; offsets are relative to it.
 * Files are untrusted: rl_st_open validates everything before any tensor is touched. */
#ifndef RL_IO_SAFETENSORS_H
#define RL_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/tensor.h"

typedef struct {
    char *name;
    rl_dtype dtype;
    int ndim;
    int64_t shape[RL_MAX_DIMS];
    size_t nbytes;
    const void *data;     // into the mapping; may be unaligned
} rl_st_tensor;

typedef struct {
    char *key, *value;
} rl_st_meta_kv;

typedef struct {
    char *path;
    int fd;
    void *map;            // MAP_FAILED when not mapped
    size_t size;
    rl_st_tensor *tensors; int n_tensors;   // in file order of data offsets
    rl_st_meta_kv *meta;   int n_meta;
} rl_st_file;

/* Opens and validates path. On failure f is closed and err names the file, tensor and problem. */
rl_status rl_st_open(rl_st_file *f, const char *path, rl_err *err);
/* Same checks on a buffer in memory (used by the fuzz target); the buffer must outlive f. */
rl_status rl_st_open_mem(rl_st_file *f, const void *buf, size_t size, const char *label, rl_err *err);
void rl_st_close(rl_st_file *f);       // idempotent, safe on a zeroed or half-opened file
const rl_st_tensor *rl_st_find(const rl_st_file *f, const char *name);  // NULL when absent
const char *rl_st_meta(const rl_st_file *f, const char *key);           // NULL when absent

/* ---- writer: collect tensors, then write <path>.partial and rename ---- */
typedef struct {
    char *name;
    rl_dtype dtype;
    int ndim;
    int64_t shape[RL_MAX_DIMS];
    void *data;            // owned copy, already in dtype
    size_t nbytes;
} rl_st_wtensor;

typedef struct {
    rl_st_wtensor *t; int n, cap;
    rl_st_meta_kv *meta; int n_meta, cap_meta;
} rl_st_writer;

void rl_st_writer_init(rl_st_writer *w);
void rl_st_writer_free(rl_st_writer *w);
/* Adds a tensor from F32 data, stored as dtype (F32, F16 or BF16). Copies the data. */
rl_status rl_st_writer_add_f32(rl_st_writer *w, const char *name, rl_dtype dtype, int ndim,
                               const int64_t *shape, const float *data, rl_err *err);
/* Adds raw bytes already in dtype. Copies the data. */
rl_status rl_st_writer_add_raw(rl_st_writer *w, const char *name, rl_dtype dtype, int ndim,
                               const int64_t *shape, const void *data, rl_err *err);
/* Sets a __metadata__ string (key and value copied; a second call for a key replaces its
 * value). RL_E_NOMEM only. */
rl_status rl_st_writer_meta(rl_st_writer *w, const char *key, const char *value, rl_err *err);
/* Writes tensors sorted by name (as the Python library does), atomically. */
rl_status rl_st_writer_save(const rl_st_writer *w, const char *path, rl_err *err);

#endif
