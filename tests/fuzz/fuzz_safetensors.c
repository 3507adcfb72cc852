/* tests/fuzz/fuzz_safetensors.c - the safetensors header validator on arbitrary bytes.
 * Every input must be either refused with a message or accepted with every tensor's bytes
 * inside the buffer; the sanitizers catch any read outside it. */
#include <stdint.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rl_st_file f;
    rl_err err = { 0 };
    if (rl_st_open_mem(&f, data, size, "fuzz", &err) != RL_OK) {
        if (!err.msg[0]) __builtin_trap();   // a refusal always says why
        return 0;
    }
    volatile uint8_t sink = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const rl_st_tensor *t = &f.tensors[i];
        const uint8_t *p = t->data;
        if (p < data || t->nbytes > size || p + t->nbytes > data + size) __builtin_trap();
        if (t->nbytes) sink ^= p[0] ^ p[t->nbytes - 1];
        if (rl_st_find(&f, t->name) == NULL) __builtin_trap();
    }
    (void)sink;
    rl_st_close(&f);
    return 0;
}
