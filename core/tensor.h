/* core/tensor.h - dtypes, shapes and exact F16/BF16 -> F32 conversion. */
#ifndef RL_CORE_TENSOR_H
#define RL_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define RL_MAX_DIMS 8

typedef enum {
    RL_F32 = 0, RL_F16, RL_BF16, RL_F64, RL_I64, RL_I32, RL_I16, RL_I8, RL_U8, RL_BOOL,
    RL_DTYPE_COUNT
} rl_dtype;

size_t      rl_dtype_size(rl_dtype t);
const char *rl_dtype_name(rl_dtype t);                 // safetensors spelling: "F32", "F16", ...
int         rl_dtype_parse(const char *s, rl_dtype *t); // 1 when known

/* A view of contiguous data with its shape. */
typedef struct {
    void *data;
    rl_dtype dtype;
    int ndim;
    int64_t shape[RL_MAX_DIMS];
} rl_view;

size_t rl_view_numel(const rl_view *v);

float    rl_f16_to_f32(uint16_t h);
uint16_t rl_f32_to_f16(float f);      // round to nearest even, overflow to inf
float    rl_bf16_to_f32(uint16_t h);
uint16_t rl_f32_to_bf16(float f);     // round to nearest even

/* Converts n elements of src (dtype t, little-endian, any alignment) to F32. */
void rl_convert_to_f32(float *dst, const void *src, rl_dtype t, size_t n);

/* Formats a shape as "[2, 3, 4]" into buf; returns buf. */
char *rl_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

#endif
