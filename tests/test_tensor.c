/* tests/test_tensor.c - dtype table and the exact F16/BF16 conversions, checked exhaustively:
 * every one of the 65536 half-precision values against an independent formula, and F32 -> F16
 * rounding (nearest even) against the F16 -> F32 direction. */
#include <math.h>
#include <string.h>

#include "core/tensor.h"
#include "tests/harness.h"

/* Independent decoding of IEEE binary16 by its definition. */
static double f16_by_definition(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp(m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_f16_all(rl_test *t, const char *arg)
{
    int bad = 0, bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rl_f16_to_f32((uint16_t)h);
        double want = f16_by_definition((uint16_t)h);
        if (isnan(want) ? !isnan(f) : (double)f != want || !signbit(f) != !signbit(want)) bad++;
        // every finite or infinite half converts back to itself; NaN stays NaN
        uint16_t back = rl_f32_to_f16(f);
        if (isnan(want) ? ((back & 0x7c00) != 0x7c00 || !(back & 0x3ff)) : back != h) bad_rt++;
    }
    rl_test_check(t, bad == 0, "f16 -> f32 exact for all 65536 values (%d wrong)", bad);
    rl_test_check(t, bad_rt == 0, "f32 -> f16 -> f32 identity (%d wrong)", bad_rt);

    // rounding: halfway between 1 and the next half (1 + 2^-10) ties to even (1.0);
    // just above halfway rounds up; 65520 overflows to inf; tiny values flush to subnormals
    RL_CHECK(t, rl_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);
    RL_CHECK(t, rl_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01);
    RL_CHECK(t, rl_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);
    RL_CHECK(t, rl_f32_to_f16(65520.0f) == 0x7c00 && rl_f32_to_f16(65519.0f) == 0x7bff);
    RL_CHECK(t, rl_f32_to_f16(0x1p-24f) == 0x0001 && rl_f32_to_f16(0x1p-26f) == 0x0000);
    RL_CHECK(t, rl_f32_to_f16(-0.0f) == 0x8000);
    (void)arg;
}

static void test_bf16(rl_test *t, const char *arg)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rl_bf16_to_f32((uint16_t)h);
        uint32_t bits;
        memcpy(&bits, &f, 4);
        if (bits != h << 16) bad++;
        if (!isnan(f) && rl_f32_to_bf16(f) != h) bad++;
    }
    rl_test_check(t, bad == 0, "bf16 <-> f32 exact (%d wrong)", bad);
    RL_CHECK(t, rl_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);            // tie to even
    RL_CHECK(t, rl_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-16f) == 0x3f81);
    (void)arg;
}

static void test_dtypes(rl_test *t, const char *arg)
{
    rl_dtype d;
    RL_CHECK(t, rl_dtype_parse("BF16", &d) && d == RL_BF16 && rl_dtype_size(d) == 2);
    RL_CHECK(t, rl_dtype_parse("F64", &d) && rl_dtype_size(d) == 8);
    RL_CHECK(t, !rl_dtype_parse("f32", &d) && !rl_dtype_parse("", &d));
    char buf[64];
    RL_CHECK(t, !strcmp(rl_shape_str(buf, sizeof buf, 3, (int64_t[]){ 2, 0, 7 }), "[2, 0, 7]"));
    RL_CHECK(t, !strcmp(rl_shape_str(buf, sizeof buf, 0, NULL), "[]"));
    (void)arg;
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "f16_exhaustive", test_f16_all, NULL },
        { "bf16_exhaustive", test_bf16, NULL },
        { "dtypes", test_dtypes, NULL },
        { 0 },
    });
}
