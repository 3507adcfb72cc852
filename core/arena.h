/* core/arena.h - bump allocator that owns activations.
 *
 * Allocation follows the same sequence every step (models allocate in the same order each
 * call), so an arena grows during the first forward pass and is then reused: mark before a
 * step, reset to the mark after it, and no step after the first calls malloc. Memory comes in
 * blocks; a block is never moved, so pointers stay valid until reset below them.
 * All returned buffers are 64-byte aligned and uninitialised (rl_arena_zeros zeroes). */
#ifndef RL_CORE_ARENA_H
#define RL_CORE_ARENA_H

#include <stddef.h>

#include "core/err.h"

typedef struct rl_arena_block {
    struct rl_arena_block *next;
    size_t cap, used;
    char *data;
} rl_arena_block;

typedef struct {
    rl_arena_block *head, *cur;
    size_t block_size;   // minimum size of a new block
    size_t in_use;       // bytes handed out now
    size_t peak;         // high-water mark of in_use
    size_t reserved;     // bytes obtained from malloc
    int failed;          // a malloc failed: every later alloc returns NULL
} rl_arena;

typedef struct {
    rl_arena_block *blk;
    size_t used, in_use;
} rl_arena_mark;

void  rl_arena_init(rl_arena *a, size_t block_size);   // block_size 0: 64 MiB
void  rl_arena_free(rl_arena *a);                       // idempotent, safe on a zeroed arena
/* NULL only when malloc failed (a->failed set); callers check once with rl_arena_check. */
float *rl_arena_floats(rl_arena *a, size_t n);
float *rl_arena_zeros(rl_arena *a, size_t n);
void  *rl_arena_bytes(rl_arena *a, size_t n);
/* For layer and model forward/backward passes, which cannot fail: as rl_arena_floats and
 * rl_arena_zeros, but n 0 gives one float, and a failed malloc is a broken invariant
 * (RL_ASSERT), like an arena overflow after measurement. */
float *rl_arena_take(rl_arena *a, size_t n);
float *rl_arena_take_zeros(rl_arena *a, size_t n);
rl_arena_mark rl_arena_get_mark(const rl_arena *a);
void  rl_arena_reset(rl_arena *a, rl_arena_mark m);
/* RL_E_NOMEM with the byte counts if any allocation failed since init. */
rl_status rl_arena_check(const rl_arena *a, rl_err *err);

#endif
