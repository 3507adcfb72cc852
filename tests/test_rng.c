/* tests/test_rng.c - core/rng.c against torch.randn / torch.rand on CPU
 * (tools/fixtures/make_rng.py). Sequences of successive calls on one generator, so the state
 * carried between calls (mt19937 position, torch's cached Box-Muller value) is checked too.
 * Every comparison is bitwise: the sampler reproduces torch's float operations one by one
 * (see core/rng.c), so any difference is a bug, not rounding. The fixture was made on a CPU
 * where torch runs its AVX2 kernel (metadata cpu_capability). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "tests/harness.h"

static void test_sequences(rl_test *t, const char *arg)
{
    rl_fixture fx;
    if (!rl_fixture_open(t, &fx, "rng/rng.safetensors")) return;
    const int n_seq = rl_fixture_int(&fx, "n_seq");
    RL_CHECK(t, n_seq > 0);
    for (int i = 0; i < n_seq; i++) {
        char key[64];
        snprintf(key, sizeof key, "seed_%d", i);
        uint64_t seed = strtoull(rl_fixture_str(&fx, key), NULL, 10);
        snprintf(key, sizeof key, "seq_%d", i);
        char *seq = strdup(rl_fixture_str(&fx, key));
        rl_rng g;
        rl_rng_seed(&g, seed);
        int k = 0;
        for (char *s = seq, *save = NULL, *call; (call = strtok_r(s, ",", &save)); s = NULL, k++) {
            char *colon = strchr(call, ':');
            if (!rl_test_check(t, colon != NULL, "seq %d: call '%s'", i, call)) break;
            *colon = '\0';
            size_t n = strtoull(colon + 1, NULL, 10);
            float *got = rl_test_floats(t, n);
            if (strcmp(call, "randn") == 0) rl_rng_randn(&g, got, n);
            else rl_rng_rand(&g, got, n);
            char name[96];
            snprintf(name, sizeof name, "s%d_%d", i, k);
            const float *want = rl_fixture_f32(&fx, name, 1, (int[]){(int)n});
            if (!want) continue;
            snprintf(name, sizeof name, "seed %llu call %d %s(%zu)", (unsigned long long)seed, k,
                     call, n);
            rl_check_bitwise(t, name, got, want, n);
        }
        free(seq);
    }
    rl_fixture_close(&fx);
}

static void test_engine(rl_test *t, const char *arg)
{
    // std::mt19937 with the default seed 5489: the 10000th output is 4123659995 (C++11 26.5.5)
    rl_rng g;
    rl_rng_seed(&g, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = rl_rng_u32(&g);
    rl_test_check(t, v == 4123659995u, "mt19937 10000th output %u (want 4123659995)", v);
    // only the low 32 bits of the seed matter; reseeding restarts the stream and the cache
    float a[5], b[5];
    rl_rng_seed(&g, 7);
    rl_rng_randn(&g, a, 5);
    rl_rng_seed(&g, 7 + (UINT64_C(1) << 32));
    rl_rng_randn(&g, b, 5);
    rl_check_bitwise(t, "seed 7 == seed 2^32 + 7", a, b, 5);
    rl_rng_seed(&g, 7);
    rl_rng_randn(&g, b, 5);
    rl_check_bitwise(t, "reseed restarts", a, b, 5);
    // uniforms lie in [0, 1)
    float u[4096];
    rl_rng_rand(&g, u, 4096);
    int ok = 1;
    for (int i = 0; i < 4096; i++) ok &= u[i] >= 0.0f && u[i] < 1.0f;
    rl_test_check(t, ok, "rand in [0, 1)");
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        {"torch_sequences", test_sequences, NULL},
        {"engine", test_engine, NULL},
        {0},
    });
}
