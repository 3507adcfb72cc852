/* tests/harness.h - a tiny test runner: checks that print their numbers, fixtures read
 * through io/safetensors, finite differences and thread-invariance helpers. */
#ifndef RL_TESTS_HARNESS_H
#define RL_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"

typedef struct rl_test {
    const char *name;
    int checks, failures;
    void **allocs; int n_allocs, cap_allocs;   // freed after each case
} rl_test;

typedef void (*rl_test_fn)(rl_test *t, const char *arg);
typedef struct { const char *name; rl_test_fn fn; const char *arg; } rl_test_case;

/* Runs every case (up to a zeroed entry), prints a line per check, then
 * "<exe>: N passed, N failed"; returns 0 when nothing failed. A first command-line argument
 * filters cases by substring. */
int rl_test_run(int argc, char **argv, const rl_test_case *cases);

/* Records a failure with a message (printed). */
void rl_test_fail(rl_test *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a passing or failing boolean check; returns cond. */
int rl_test_check(rl_test *t, int cond, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define RL_CHECK(t, cond) rl_test_check((t), (cond), "%s:%d: %s", __FILE__, __LINE__, #cond)

/* Zeroed buffers freed automatically at the end of the case. */
float *rl_test_floats(rl_test *t, size_t n);
void  *rl_test_alloc(rl_test *t, size_t bytes);
/* A path under the fixture directory (tests/fixtures), or a fresh temp path (the case's own). */
const char *rl_test_fixture_path(rl_test *t, const char *rel);
const char *rl_test_tmp_path(rl_test *t, const char *name);
/* A fresh copy (cp -r) of the fixture folder rel at the temp path tag; NULL, with a recorded
 * failure, when the copy fails. */
const char *rl_test_copy_fixture(rl_test *t, const char *rel, const char *tag);
/* The whole file at path, NUL-terminated after its *len bytes, owned by the case; NULL (and no
 * failure recorded: the caller decides) when it cannot be read. */
char *rl_test_read_file(rl_test *t, const char *path, size_t *len);

/* Passes when |got - want| <= atol + rtol |want| for every element. Always prints:
 * name, max abs err, max rel err, worst index, NMSE. Returns 1 on pass. */
int rl_check_close(rl_test *t, const char *name, const float *got, const float *want, size_t n,
                   double atol, double rtol);
/* Bitwise equality (thread invariance, determinism). */
int rl_check_bitwise(rl_test *t, const char *name, const float *a, const float *b, size_t n);

// ---- fixtures ------------------------------------------------------------------
typedef struct {
    rl_test *t;
    rl_st_file st;
    int open;
} rl_fixture;

/* Opens tests/fixtures/<rel>. Records a failure and returns 0 when it cannot. */
int rl_fixture_open(rl_test *t, rl_fixture *fx, const char *rel);
void rl_fixture_close(rl_fixture *fx);
/* Metadata values; a missing key records a failure and returns 0 / 0.0 / "". */
int rl_fixture_int(rl_fixture *fx, const char *key);
double rl_fixture_float(rl_fixture *fx, const char *key);
const char *rl_fixture_str(rl_fixture *fx, const char *key);
int rl_fixture_has(rl_fixture *fx, const char *name);
/* Tensor as F32 (converted from any dtype, owned by the case). When ndim > 0 the shape is
 * checked against shape[0..ndim-1]; mismatch or absence records a failure and returns NULL. */
const float *rl_fixture_f32(rl_fixture *fx, const char *name, int ndim, const int *shape);
/* Tensor as int64 values (I64/I32 tensors, e.g. token ids); NULL + failure when absent. */
const int64_t *rl_fixture_i64(rl_fixture *fx, const char *name, size_t *n);
size_t rl_fixture_numel(rl_fixture *fx, const char *name);

// ---- finite differences -----------------------------------------------------------
/* loss(ctx) must recompute a scalar from the current contents of param. For n_samples
 * indices of param (spread deterministically), the central difference in double with step
 * h is compared to grad: |fd - g| <= atol + rtol |fd|. Prints the worst error. */
int rl_check_grad_fd(rl_test *t, const char *name, double (*loss)(void *ctx), void *ctx,
                     float *param, const float *grad, size_t n, int n_samples, double h,
                     double atol, double rtol);

// ---- thread invariance -------------------------------------------------------------
/* Calls run(ctx, out) with 1 thread and with the maximum thread count (at least 2) into two
 * buffers of n floats and requires bitwise equality. */
int rl_check_threads_bitwise(rl_test *t, const char *name, void (*run)(void *ctx, float *out),
                             void *ctx, size_t n);

/* Deterministic uniform floats in [-1, 1) (xorshift), for tests that build their own data. */
void rl_test_randu(float *x, size_t n, uint64_t seed);

#endif
