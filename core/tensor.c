/* core/tensor.c - dtype table and exact half-precision conversion. */
#include "core/tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtypes[RL_DTYPE_COUNT] = {
    [RL_F32] = { "F32", 4 }, [RL_F16] = { "F16", 2 }, [RL_BF16] = { "BF16", 2 },
    [RL_F64] = { "F64", 8 }, [RL_I64] = { "I64", 8 }, [RL_I32] = { "I32", 4 },
    [RL_I16] = { "I16", 2 }, [RL_I8] = { "I8", 1 },   [RL_U8] = { "U8", 1 },
    [RL_BOOL] = { "BOOL", 1 },
};

size_t rl_dtype_size(rl_dtype t) { return (unsigned)t < RL_DTYPE_COUNT ? dtypes[t].size : 0; }
const char *rl_dtype_name(rl_dtype t) { return (unsigned)t < RL_DTYPE_COUNT ? dtypes[t].name : "?"; }

int rl_dtype_parse(const char *s, rl_dtype *t)
{
    for (int i = 0; i < RL_DTYPE_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) { *t = (rl_dtype)i; return 1; }
    return 0;
}

size_t rl_view_numel(const rl_view *v)
{
    size_t n = 1;
    for (int i = 0; i < v->ndim; i++) n *= (size_t)v->shape[i];
    return n;
}

float rl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { // subnormal: value = man * 2^-24, exact in float
            float f = (float)man * 0x1p-24f;
            return sign ? -f : f;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rl_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) // inf or nan
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00); // rounds to >= 65520: inf
    if (ax < 0x38800000) { // below the smallest normal half: subnormal or zero
        // value / 2^-24, rounded to nearest even by the float unit
        float a;
        memcpy(&a, &ax, 4);
        float q = a * 0x1p24f;
        float r = nearbyintf(q);
        return (uint16_t)(sign | (uint32_t)r);
    }
    uint32_t e = ((ax >> 23) - 112) << 10, man = ax & 0x7fffff;
    uint32_t h = e | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float rl_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rl_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); // quiet nan
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void rl_convert_to_f32(float *dst, const void *src, rl_dtype t, size_t n)
{
    const unsigned char *s = src;
    switch (t) {
    case RL_F32: memcpy(dst, src, n * 4); break;
    case RL_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(s[2 * i] | (s[2 * i + 1] << 8));
            dst[i] = rl_f16_to_f32(h);
        }
        break;
    case RL_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(s[2 * i] | (s[2 * i + 1] << 8));
            dst[i] = rl_bf16_to_f32(h);
        }
        break;
    case RL_F64:
        for (size_t i = 0; i < n; i++) { double d; memcpy(&d, s + 8 * i, 8); dst[i] = (float)d; }
        break;
    case RL_I64:
        for (size_t i = 0; i < n; i++) { int64_t d; memcpy(&d, s + 8 * i, 8); dst[i] = (float)d; }
        break;
    case RL_I32:
        for (size_t i = 0; i < n; i++) { int32_t d; memcpy(&d, s + 4 * i, 4); dst[i] = (float)d; }
        break;
    case RL_I16:
        for (size_t i = 0; i < n; i++) { int16_t d; memcpy(&d, s + 2 * i, 2); dst[i] = (float)d; }
        break;
    case RL_I8: for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)s[i]; break;
    case RL_U8: case RL_BOOL: for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; break;
    default: memset(dst, 0, n * 4); break;
    }
}

char *rl_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}
