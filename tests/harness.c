/* tests/harness.c - see harness.h. */
#include "tests/harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/par.h"

#ifndef RL_FIXTURE_DIR
#define RL_FIXTURE_DIR "tests/fixtures"
#endif

static void *track(rl_test *t, void *p)
{
    if (!p) { fprintf(stderr, "test: out of memory\n"); exit(2); }
    if (t->n_allocs == t->cap_allocs) {
        t->cap_allocs = t->cap_allocs ? 2 * t->cap_allocs : 64;
        t->allocs = realloc(t->allocs, (size_t)t->cap_allocs * sizeof *t->allocs);
        if (!t->allocs) { fprintf(stderr, "test: out of memory\n"); exit(2); }
    }
    t->allocs[t->n_allocs++] = p;
    return p;
}

void *rl_test_alloc(rl_test *t, size_t bytes) { return track(t, calloc(1, bytes ? bytes : 1)); }
float *rl_test_floats(rl_test *t, size_t n) { return rl_test_alloc(t, n * sizeof(float)); }

void rl_test_fail(rl_test *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  FAIL ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    t->checks++;
    t->failures++;
}

int rl_test_check(rl_test *t, int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %s ", cond ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    t->checks++;
    if (!cond) t->failures++;
    return cond;
}

const char *rl_test_fixture_path(rl_test *t, const char *rel)
{
    char *p = rl_test_alloc(t, strlen(RL_FIXTURE_DIR) + strlen(rel) + 2);
    sprintf(p, "%s/%s", RL_FIXTURE_DIR, rel);
    return p;
}

const char *rl_test_tmp_path(rl_test *t, const char *name)
{
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/reel-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(2); }
    }
    char *p = rl_test_alloc(t, strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

const char *rl_test_copy_fixture(rl_test *t, const char *rel, const char *tag)
{
    const char *dst = rl_test_tmp_path(t, tag);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dst, rl_test_fixture_path(t, rel),
             dst);
    if (system(cmd) != 0) { rl_test_fail(t, "%s failed", cmd); return NULL; }
    return dst;
}

char *rl_test_read_file(rl_test *t, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? rl_test_alloc(t, (size_t)n + 1) : NULL;   // zeroed: NUL-terminated
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) buf = NULL;
    fclose(f);
    if (buf) *len = (size_t)n;
    return buf;
}

int rl_check_close(rl_test *t, const char *name, const float *got, const float *want, size_t n,
                   double atol, double rtol)
{
    double max_abs = 0, max_rel = 0, se = 0, sw = 0;
    size_t worst = 0, bad = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], d = fabs(g - w);
        if (isnan(g) != isnan(w) || (!isnan(g) && d > atol + rtol * fabs(w))) bad++;
        if (isnan(d)) d = INFINITY;
        double excess = d - (atol + rtol * fabs(w));
        if (excess > worst_excess) { worst_excess = excess; worst = i; }
        if (d > max_abs) max_abs = d;
        double r = d / (fabs(w) > 1e-30 ? fabs(w) : 1e-30);
        if (fabs(w) > atol && r > max_rel) max_rel = r;
        se += d * d;
        sw += w * w;
    }
    double nmse = sw > 0 ? se / sw : se;
    int ok = bad == 0 && n > 0;
    printf("  %s %-28s n=%zu max_abs=%.3g max_rel=%.3g worst=[%zu] got=%.6g want=%.6g nmse=%.3g"
           " (atol %.0e rtol %.0e)\n",
           ok ? "ok  " : "FAIL", name, n, max_abs, max_rel, worst, n ? got[worst] : 0.0,
           n ? want[worst] : 0.0, nmse, atol, rtol);
    t->checks++;
    if (!ok) t->failures++;
    return ok;
}

int rl_check_bitwise(rl_test *t, const char *name, const float *a, const float *b, size_t n)
{
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof(float)) != 0) { if (!diff) first = i; diff++; }
    return rl_test_check(t, diff == 0, "%-28s bitwise equal over %zu values (%zu differ, first [%zu])",
                         name, n, diff, first);
}

// ---- fixtures ----------------------------------------------------------------------

int rl_fixture_open(rl_test *t, rl_fixture *fx, const char *rel)
{
    *fx = (rl_fixture){ .t = t };
    rl_err err = { 0 };
    const char *path = rl_test_fixture_path(t, rel);
    if (rl_st_open(&fx->st, path, &err) != RL_OK) {
        rl_test_fail(t, "fixture %s: %s", rel, err.msg);
        return 0;
    }
    fx->open = 1;
    return 1;
}

void rl_fixture_close(rl_fixture *fx)
{
    if (fx->open) rl_st_close(&fx->st);
    fx->open = 0;
}

const char *rl_fixture_str(rl_fixture *fx, const char *key)
{
    const char *v = fx->open ? rl_st_meta(&fx->st, key) : NULL;
    if (!v) { rl_test_fail(fx->t, "fixture metadata '%s' missing", key); return ""; }
    return v;
}

int rl_fixture_int(rl_fixture *fx, const char *key) { return atoi(rl_fixture_str(fx, key)); }
double rl_fixture_float(rl_fixture *fx, const char *key) { return atof(rl_fixture_str(fx, key)); }

int rl_fixture_has(rl_fixture *fx, const char *name)
{
    return fx->open && rl_st_find(&fx->st, name) != NULL;
}

size_t rl_fixture_numel(rl_fixture *fx, const char *name)
{
    const rl_st_tensor *te = fx->open ? rl_st_find(&fx->st, name) : NULL;
    if (!te) return 0;
    size_t n = 1;
    for (int i = 0; i < te->ndim; i++) n *= (size_t)te->shape[i];
    return n;
}

const float *rl_fixture_f32(rl_fixture *fx, const char *name, int ndim, const int *shape)
{
    const rl_st_tensor *te = fx->open ? rl_st_find(&fx->st, name) : NULL;
    if (!te) { rl_test_fail(fx->t, "fixture tensor '%s' missing", name); return NULL; }
    if (ndim > 0) {
        int ok = te->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++) ok = te->shape[i] == shape[i];
        if (!ok) {
            char a[128], b[128];
            int64_t s64[RL_MAX_DIMS];
            for (int i = 0; i < ndim && i < RL_MAX_DIMS; i++) s64[i] = shape[i];
            rl_test_fail(fx->t, "fixture tensor '%s' has shape %s, test expects %s", name,
                         rl_shape_str(a, sizeof a, te->ndim, te->shape),
                         rl_shape_str(b, sizeof b, ndim, s64));
            return NULL;
        }
    }
    size_t n = rl_fixture_numel(fx, name);
    float *out = rl_test_floats(fx->t, n);
    rl_convert_to_f32(out, te->data, te->dtype, n);
    return out;
}

const int64_t *rl_fixture_i64(rl_fixture *fx, const char *name, size_t *n)
{
    const rl_st_tensor *te = fx->open ? rl_st_find(&fx->st, name) : NULL;
    if (!te) { rl_test_fail(fx->t, "fixture tensor '%s' missing", name); return NULL; }
    size_t k = rl_fixture_numel(fx, name);
    int64_t *out = rl_test_alloc(fx->t, k * sizeof *out);
    const unsigned char *s = te->data;
    for (size_t i = 0; i < k; i++) {
        if (te->dtype == RL_I64) memcpy(&out[i], s + 8 * i, 8);
        else if (te->dtype == RL_I32) { int32_t v; memcpy(&v, s + 4 * i, 4); out[i] = v; }
        else { float f; rl_convert_to_f32(&f, s + rl_dtype_size(te->dtype) * i, te->dtype, 1); out[i] = (int64_t)f; }
    }
    if (n) *n = k;
    return out;
}

// ---- finite differences ---------------------------------------------------------------

int rl_check_grad_fd(rl_test *t, const char *name, double (*loss)(void *ctx), void *ctx,
                     float *param, const float *grad, size_t n, int n_samples, double h,
                     double atol, double rtol)
{
    if (n == 0) { rl_test_fail(t, "%s: empty parameter", name); return 0; }
    size_t step = n / (size_t)n_samples;
    if (step == 0) step = 1;
    double worst = 0, worst_fd = 0, worst_g = 0;
    size_t worst_i = 0, bad = 0, done = 0;
    for (size_t i = (step > 1 ? step / 3 : 0); i < n && done < (size_t)n_samples; i += step, done++) {
        float keep = param[i];
        param[i] = (float)(keep + h);
        double lp = loss(ctx);
        param[i] = (float)(keep - h);
        double lm = loss(ctx);
        param[i] = keep;
        // the perturbation actually applied, after float rounding
        double hp = (double)(float)(keep + h) - keep, hm = keep - (double)(float)(keep - h);
        double fd = (lp - lm) / (hp + hm);
        double d = fabs(fd - grad[i]);
        if (d > atol + rtol * fabs(fd)) bad++;
        if (d > worst) { worst = d; worst_fd = fd; worst_g = grad[i]; worst_i = i; }
    }
    return rl_test_check(t, bad == 0, "%-28s finite differences: %zu samples, max err %.3g at [%zu] "
                         "(fd %.6g, analytic %.6g; atol %.0e rtol %.0e)",
                         name, done, worst, worst_i, worst_fd, worst_g, atol, rtol);
}

// ---- thread invariance ------------------------------------------------------------------

int rl_check_threads_bitwise(rl_test *t, const char *name, void (*run)(void *ctx, float *out),
                             void *ctx, size_t n)
{
    int maxt = rl_par_threads();
    if (maxt < 2) maxt = 2;
    float *a = rl_test_floats(t, n), *b = rl_test_floats(t, n);
    rl_par_set_threads(1);
    run(ctx, a);
    rl_par_set_threads(maxt);
    run(ctx, b);
    char label[160];
    snprintf(label, sizeof label, "%s 1 vs %d threads", name, maxt);
    return rl_check_bitwise(t, label, a, b, n);
}

void rl_test_randu(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

// ---- runner ---------------------------------------------------------------------------------

int rl_test_run(int argc, char **argv, const rl_test_case *cases)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *exe = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (const rl_test_case *c = cases; c->name; c++) {
        if (filter && !strstr(c->name, filter)) continue;
        rl_test t = { .name = c->name };
        printf("[%s]\n", c->name);
        c->fn(&t, c->arg);
        if (t.checks == 0) rl_test_fail(&t, "%s made no checks", c->name);
        for (int i = 0; i < t.n_allocs; i++) free(t.allocs[i]);
        free(t.allocs);
        passed += t.checks - t.failures;
        failed += t.failures;
    }
    printf("%s: %d passed, %d failed\n", exe, passed, failed);
    return failed ? 1 : 0;
}
