/* core/arena.c - block bump allocator, see arena.h. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64

void rl_arena_init(rl_arena *a, size_t block_size)
{
    *a = (rl_arena){ .block_size = block_size ? block_size : ((size_t)64 << 20) };
}

void rl_arena_free(rl_arena *a)
{
    rl_arena_block *b = a->head;
    while (b) {
        rl_arena_block *n = b->next;
        free(b->data);
        free(b);
        b = n;
    }
    size_t bs = a->block_size;
    *a = (rl_arena){ .block_size = bs };
}

static rl_arena_block *new_block(rl_arena *a, size_t need)
{
    size_t cap = need > a->block_size ? need : a->block_size;
    rl_arena_block *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->data = aligned_alloc(ALIGN, (cap + ALIGN - 1) / ALIGN * ALIGN);
    if (!b->data) { free(b); return NULL; }
    b->cap = cap;
    a->reserved += cap;
    return b;
}

void *rl_arena_bytes(rl_arena *a, size_t n)
{
    if (a->failed) return NULL;
    size_t need = (n + ALIGN - 1) / ALIGN * ALIGN;
    if (need == 0) need = ALIGN;
    if (!a->cur) {
        if (!a->head) {
            a->head = new_block(a, need);
            if (!a->head) { a->failed = 1; return NULL; }
        }
        a->cur = a->head;
        a->cur->used = 0;
    }
    // walk forward to a block with room; blocks after cur are empty (reset semantics)
    while (a->cur->cap - a->cur->used < need) {
        if (!a->cur->next) {
            a->cur->next = new_block(a, need);
            if (!a->cur->next) { a->failed = 1; return NULL; }
        }
        a->cur = a->cur->next;
        a->cur->used = 0;
    }
    void *p = a->cur->data + a->cur->used;
    a->cur->used += need;
    a->in_use += need;
    if (a->in_use > a->peak) a->peak = a->in_use;
    return p;
}

float *rl_arena_floats(rl_arena *a, size_t n) { return rl_arena_bytes(a, n * sizeof(float)); }

float *rl_arena_zeros(rl_arena *a, size_t n)
{
    float *p = rl_arena_floats(a, n);
    if (p) memset(p, 0, n * sizeof(float));
    return p;
}

float *rl_arena_take(rl_arena *a, size_t n)
{
    float *p = rl_arena_floats(a, n ? n : 1);
    RL_ASSERT(p != NULL);
    return p;
}

float *rl_arena_take_zeros(rl_arena *a, size_t n)
{
    float *p = rl_arena_zeros(a, n ? n : 1);
    RL_ASSERT(p != NULL);
    return p;
}

rl_arena_mark rl_arena_get_mark(const rl_arena *a)
{
    return (rl_arena_mark){ .blk = a->cur, .used = a->cur ? a->cur->used : 0, .in_use = a->in_use };
}

void rl_arena_reset(rl_arena *a, rl_arena_mark m)
{
    a->cur = m.blk;
    if (a->cur) a->cur->used = m.used;
    a->in_use = m.in_use;
}

rl_status rl_arena_check(const rl_arena *a, rl_err *err)
{
    if (a->failed)
        return rl_errf(err, RL_E_NOMEM, "out of memory: activation arena could not grow past %zu bytes",
                       a->reserved);
    return RL_OK;
}
