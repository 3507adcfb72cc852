/* tests/test_arena.c - the activation arena: alignment, marks, reuse without new blocks,
 * peak accounting, and failure reporting. */
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "tests/harness.h"

static void test_marks(rl_test *t, const char *arg)
{
    rl_arena a;
    rl_arena_init(&a, 1 << 16);
    float *x = rl_arena_floats(&a, 10);
    RL_CHECK(t, x && ((uintptr_t)x % 64) == 0);
    rl_arena_mark m = rl_arena_get_mark(&a);
    size_t reserved = 0;
    for (int step = 0; step < 3; step++) {
        // the same sequence of allocations each step, bigger than one block in total
        float *p = rl_arena_zeros(&a, 5000), *q = rl_arena_floats(&a, 20000);
        RL_CHECK(t, p && q && ((uintptr_t)q % 64) == 0 && p[4999] == 0.0f);
        memset(q, 1, 20000 * sizeof(float));
        if (step == 0) reserved = a.reserved;
        else RL_CHECK(t, a.reserved == reserved);   // no new block after the first step
        rl_arena_reset(&a, m);
    }
    RL_CHECK(t, a.in_use == 64);                    // only x (rounded to 64 bytes) remains
    RL_CHECK(t, a.peak >= 64 + 5000 * 4 + 20000 * 4);
    rl_err err = { 0 };
    RL_CHECK(t, rl_arena_check(&a, &err) == RL_OK);
    rl_arena_free(&a);
    rl_arena_free(&a);
    (void)arg;
}

static void test_failure(rl_test *t, const char *arg)
{
    rl_arena a;
    rl_arena_init(&a, 1 << 12);
    void *p = rl_arena_bytes(&a, SIZE_MAX / 2);   // cannot be had
    RL_CHECK(t, p == NULL);
    RL_CHECK(t, rl_arena_floats(&a, 1) == NULL);  // sticky: every later allocation fails too
    rl_err err = { 0 };
    rl_status rc = rl_arena_check(&a, &err);
    rl_test_check(t, rc == RL_E_NOMEM && strstr(err.msg, "out of memory"), "%s", err.msg);
    rl_arena_free(&a);
    (void)arg;
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "marks", test_marks, NULL },
        { "failure", test_failure, NULL },
        { 0 },
    });
}
