/* io/weights_io.h - fills an rl_weights table from safetensors files, and writes one back. */
#ifndef RL_IO_WEIGHTS_IO_H
#define RL_IO_WEIGHTS_IO_H

#include "core/err.h"
#include "core/tensor.h"
#include "core/weights.h"

/* Adds every floating-point tensor of the safetensors file at path to ws. F32 tensors whose
 * bytes are 4-aligned stay in the read-only mapping (kept alive by ws); F16, BF16, F64 and
 * unaligned F32 are converted once, exactly, into buffers ws owns. Integer tensors (such as
 * transformers' position_ids buffer) are skipped. When strip_prefix is non-NULL and non-empty,
 * only names that begin with it are added, without it. Every value is checked to be finite:
 * a NaN or Inf is RL_E_FORMAT naming the tensor. Other errors: those of rl_st_open, duplicate
 * names (RL_E_FORMAT), RL_E_NOMEM. */
rl_status rl_weights_load_st(rl_weights *ws, const char *path, const char *strip_prefix,
                             rl_err *err);

/* Writes the tensors of ws whose names begin with prefix (NULL: all) to path as dtype (F32,
 * F16 or BF16), sorted by name, atomically. */
rl_status rl_weights_save_st(const rl_weights *ws, const char *path, const char *prefix,
                             rl_dtype dtype, rl_err *err);

#endif
