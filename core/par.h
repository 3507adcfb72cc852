/* core/par.h - thread count for OpenMP and OpenBLAS, in one place (works with OpenMP off). */
#ifndef RL_CORE_PAR_H
#define RL_CORE_PAR_H

void rl_par_set_threads(int n);   // n <= 0: all available cores
int  rl_par_threads(void);        // threads a parallel region will use
int  rl_par_thread_id(void);      // 0 outside a parallel region
int  rl_par_max_threads(void);    // upper bound of rl_par_thread_id()+1, for per-thread scratch

#endif
