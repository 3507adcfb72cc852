/* core/par.c - the one file that calls omp_* and the BLAS thread setter. */
#include "core/par.h"

#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void openblas_set_num_threads(int num_threads);

void rl_par_set_threads(int n)
{
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    // no OpenMP of our own: keep BLAS on one thread too, so results match the OpenMP build's
    // (in the OpenMP build rl_gemm calls BLAS inside parallel regions, where OpenBLAS runs
    // single-threaded; openblas_set_num_threads would also reset OpenMP's own count)
    openblas_set_num_threads(1);
#endif
}

int rl_par_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int rl_par_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int rl_par_in_region(void)
{
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return 0;
#endif
}

int rl_par_max_threads(void) { return rl_par_threads(); }

void rl_par_for(int n, void (*fn)(void *ctx, int i), void *ctx)
{
    // one task, or one thread: no region at all, so the kernels inside keep their own
    // parallel loops (a region inside even an inactive one gets a fresh, uncached team)
    if (n == 1 || rl_par_threads() == 1) {
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    #pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) fn(ctx, i);
}
