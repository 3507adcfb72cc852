/* tests/fuzz/fuzz_bpe.c - the BPE tokenizer and its files: arbitrary bytes must give a clean
 * result or an error with a message, never a crash or a hang.
 *
 * The first byte picks what the rest is:
 *   0: a prompt, encoded (and tokenized) with a tokenizer learned from fixed captions;
 *   1: merges.txt text, read and built with a fixed vocab;
 *   2: vocab.json text, read and built with fixed merges;
 *   3: captions (one per line) to learn 50 merges from, then encode the last caption. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bpe.h"
#include "io/tokfiles.h"

static const char *CAPTIONS[] = {"a red circle moves left", "a blue square moves right",
                                 "it's a cafe \xe2\x98\x95 caf\xc3\xa9 \xe7\x8c\xab 123"};

#define VOCAB "{\"a\": 0, \"b\": 1, \"ab</w>\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}"
#define MERGES "#version: 0.2\na b</w>\n"

static void check(rl_status rc, const rl_err *err)
{
    if (rc != RL_OK && !err->msg[0]) __builtin_trap();   // every error carries a message
}

static void encode_all(const rl_bpe *bpe, const char *text)
{
    rl_err err = {0};
    int *ids = malloc(sizeof(int) * (size_t)bpe->max_length), n = 0, raw[64];
    if (!ids) return;
    rl_status rc = rl_bpe_encode(bpe, text, ids, &n, &err);
    check(rc, &err);
    if (rc == RL_OK) {
        if (n < 2 || n > bpe->max_length || ids[0] != bpe->bos_id) __builtin_trap();
        for (int i = 0; i < bpe->max_length; i++)
            if (ids[i] < 0) __builtin_trap();
    }
    err = (rl_err){0};
    check(rl_bpe_tokenize(bpe, text, raw, 64, &n, &err), &err);
    free(ids);
}

static void with_spec(rl_bpe_spec *spec, const char *prompt)
{
    rl_bpe bpe;
    rl_err err = {0};
    rl_status rc = rl_bpe_init(&bpe, spec, &err);
    check(rc, &err);
    if (rc == RL_OK) encode_all(&bpe, prompt);
    rl_bpe_free(&bpe);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) return 0;
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t len = size - 1;
    rl_err err = {0};
    rl_bpe_spec spec = {0};

    switch (data[0] % 4) {
    case 0: {
        static rl_bpe bpe;
        static int ready;
        if (!ready) {
            if (rl_bpe_learn(&spec, CAPTIONS, 3, 100, 77, &err) || rl_bpe_init(&bpe, &spec, &err))
                __builtin_trap();
            rl_bpe_spec_free(&spec);
            ready = 1;
        }
        encode_all(&bpe, text);
        break;
    }
    case 1:
        if (!rl_tokfiles_parse_vocab(&spec, VOCAB, strlen(VOCAB), "vocab.json", &err)) {
            rl_status rc = rl_tokfiles_parse_merges(&spec, text, len, "merges.txt", &err);
            check(rc, &err);
            spec.max_length = 8;
            if (rc == RL_OK) with_spec(&spec, "ab ba abab");
        }
        break;
    case 2: {
        rl_status rc = rl_tokfiles_parse_vocab(&spec, text, len, "vocab.json", &err);
        check(rc, &err);
        if (rc == RL_OK) {
            rc = rl_tokfiles_parse_merges(&spec, MERGES, strlen(MERGES), "merges.txt", &err);
            spec.max_length = 8;
            if (rc == RL_OK) with_spec(&spec, "ab <|endoftext|> x");
        }
        break;
    }
    case 3: {
        if (len > 4096) break;
        const char *caps[64];
        int n = 0;
        char *s = text;
        while (n < 64) {
            caps[n++] = s;
            char *nl = strchr(s, '\n');
            if (!nl) break;
            *nl = '\0';
            s = nl + 1;
        }
        rl_status rc = rl_bpe_learn(&spec, caps, n, 50, 16, &err);
        check(rc, &err);
        if (rc == RL_OK) with_spec(&spec, caps[n - 1]);
        break;
    }
    }
    rl_bpe_spec_free(&spec);
    free(text);
    return 0;
}
