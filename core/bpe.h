/* core/bpe.h - CLIP's byte-level BPE tokenizer (transformers' CLIPTokenizer, slow version,
 * without ftfy), and a BPE learner that makes a vocab of the same layout.
 *
 * A tokenizer is described by an rl_bpe_spec (plain data: the vocab, the merges, the special
 * tokens and the maximum length), which io/tokfiles.c reads from and writes to a diffusers
 * tokenizer/ folder, and which rl_bpe_learn() produces from captions. rl_bpe_init() turns a
 * spec into the lookup tables used to encode prompts.
 *
 * Encoding, as CLIPTokenizer(prompt, padding="max_length", truncation=True) does:
 *   special-token strings are split out; control characters dropped, whitespace collapsed,
 *   spaces put around CJK ideographs, NFC, lower case; the pre-tokenisation regex
 *   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
 *   splits the text into pieces; each piece's UTF-8 bytes become byte symbols
 *   (bytes_to_unicode), the last one marked "</w>"; merges apply by rank; the resulting
 *   strings are looked up in the vocab (unknown -> unk). The ids are then
 *   [bos] + first (max_length - 2) ids + [eos], padded with pad to max_length.
 * Unicode tables come from utf8proc (its Unicode version, not Python's; they differ only on
 * characters assigned in the newest versions). Lower-casing is Python's str.lower() for
 * everything but rare context-dependent cases: U+0130 and the final sigma are handled. */
#ifndef RL_CORE_BPE_H
#define RL_CORE_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define RL_BPE_MAX_PROMPT 16384     // bytes; longer prompts are refused (RL_E_PARAM)
#define RL_BPE_MAX_LENGTH 65536     // largest model_max_length accepted
#define RL_BPE_MAX_MERGES 48894     // 49152 - 256 - 2: transformers reads no more merges

/* What a tokenizer folder holds. Every string is a heap copy owned by the spec. */
typedef struct {
    int n_vocab;
    char **tokens;          // (n_vocab) token strings (UTF-8)
    int *ids;               // (n_vocab) their ids
    int n_merges;
    char **merges;          // (n_merges, 2): merges[2 i] and merges[2 i + 1], rank i
    char *bos, *eos, *unk, *pad;   // special token strings
    int max_length;         // model_max_length (77 for CLIP)
} rl_bpe_spec;

/* Frees every string and array; idempotent, safe on a zeroed spec. */
void rl_bpe_spec_free(rl_bpe_spec *spec);

/* Interned strings: each distinct string gets a dense index. */
typedef struct {
    char *pool;             // (len) NUL-terminated strings back to back
    size_t len, cap;
    size_t *off;            // (n) offset of string i in pool
    int n, cap_n;
    int *tab;               // (tab_cap) open-addressing hash of string indices, -1 empty
    int tab_cap;
} rl_bpe_strtab;

/* The lookup tables built from a spec. Fields are read-only after init. */
typedef struct {
    int max_length;
    int bos_id, eos_id, pad_id, unk_id;
    int n_vocab;            // entries in the vocab
    char *bos, *eos, *unk;  // special strings split out of prompts before cleanup
    rl_bpe_strtab syms;     // vocab tokens, merge operands and results, byte symbols
    int *sym_id;            // (syms.n) vocab id of each symbol, -1 when not in the vocab
    uint64_t *pair_key;     // (pair_cap) (a << 32 | b) + 1 of a merge, 0 empty
    int *pair_rank;         // (pair_cap) merge rank
    int *pair_sym;          // (pair_cap) merged symbol
    int pair_cap, n_pairs;
    int byte_sym[256];      // symbol of each byte's bytes_to_unicode character
    int byte_sym_end[256];  // the same with "</w>"
} rl_bpe;

/* Builds the tables from spec (not retained; strings are copied). Errors (RL_E_FORMAT):
 * a duplicate token or id, a negative id, an empty token or merge symbol, a special token
 * missing from the vocab, max_length outside [2, RL_BPE_MAX_LENGTH]. Messages name the
 * offending token. On failure bpe is left freed. */
rl_status rl_bpe_init(rl_bpe *bpe, const rl_bpe_spec *spec, rl_err *err);
void rl_bpe_free(rl_bpe *bpe);   // idempotent, safe on a zeroed struct

/* Encodes prompt (UTF-8, NUL-terminated) to exactly bpe->max_length ids:
 * [bos] + ids (truncated) + [eos] + [pad ...]. ids: (max_length). *n_used (may be NULL)
 * receives the count before padding. Errors (RL_E_PARAM): invalid UTF-8, a prompt longer than
 * RL_BPE_MAX_PROMPT bytes; RL_E_NOMEM. Thread-safe for a shared bpe. */
rl_status rl_bpe_encode(const rl_bpe *bpe, const char *prompt, int *ids, int *n_used,
                        rl_err *err);

/* All ids of prompt without start/end tokens, no truncation. Writes min(*n, cap) ids to ids
 * (may be NULL when cap is 0) and the full count to *n. Errors as rl_bpe_encode. */
rl_status rl_bpe_tokenize(const rl_bpe *bpe, const char *prompt, int *ids, int cap, int *n,
                          rl_err *err);

/* Learns n_merges merges from n_texts captions and fills spec (which must be zeroed) in
 * CLIP's vocab layout: the 256 byte symbols in bytes_to_unicode order, their "</w>" forms,
 * one token per merge, then <|startoftext|> and <|endoftext|>; pad and unk <|endoftext|>.
 * Rule (tools/fixtures/clip_tokenizer.py make_vocab does the same): pieces are pre-tokenised
 * and counted; each round takes the adjacent pair with the highest count weighted by piece
 * frequency, skipping pairs whose concatenation is already a token, ties to the smallest
 * (first, second) in code-point order; it stops early when no pair is left.
 * Errors: RL_E_PARAM (invalid UTF-8 in a caption, n_merges outside [0, RL_BPE_MAX_MERGES],
 * max_length out of range), RL_E_NOMEM. */
rl_status rl_bpe_learn(rl_bpe_spec *spec, const char *const *texts, int n_texts, int n_merges,
                       int max_length, rl_err *err);

#endif
