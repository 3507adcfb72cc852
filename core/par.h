/* core/par.h - thread count for OpenMP and OpenBLAS, in one place (works with OpenMP off). */
#ifndef RL_CORE_PAR_H
#define RL_CORE_PAR_H

void rl_par_set_threads(int n);   // n <= 0: all available cores
int  rl_par_threads(void);        // threads a parallel region will use
int  rl_par_thread_id(void);      // 0 outside a parallel region
int  rl_par_in_region(void);      // 1 inside an active parallel region (a task of rl_par_for)
int  rl_par_max_threads(void);    // upper bound of rl_par_thread_id()+1, for per-thread scratch

/* Runs fn(ctx, i) for i = 0..n-1 as parallel tasks (dynamic schedule: which thread takes a
 * task is not fixed, so tasks must write disjoint outputs and may use per-thread state only
 * through rl_par_thread_id()). Kernels called from a task run on that thread alone (nested
 * regions are inactive; OpenBLAS's OpenMP build runs a call made inside a region serially).
 * For coarse work such as one training sample; kernels parallelise their own loops. */
void rl_par_for(int n, void (*fn)(void *ctx, int i), void *ctx);

#endif
