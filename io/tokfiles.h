/* io/tokfiles.h - a diffusers tokenizer/ folder (transformers' CLIPTokenizer files):
 * vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json.
 *
 * Reading validates every file as untrusted input; the result is an rl_bpe_spec (core/bpe.h)
 * that rl_bpe_init() turns into a tokenizer. Writing lays the files out byte for byte as
 * CLIPTokenizer.save_pretrained does (transformers >= 4.34), each written atomically. */
#ifndef RL_IO_TOKFILES_H
#define RL_IO_TOKFILES_H

#include "core/bpe.h"
#include "core/err.h"

/* Reads dir/{vocab.json, merges.txt} (required) and dir/{tokenizer_config.json,
 * special_tokens_map.json} (optional: defaults are CLIP's, model_max_length 77). Special
 * tokens may be strings or {"content": ...} objects; special_tokens_map.json overrides
 * tokenizer_config.json, as transformers does. spec is filled (caller frees with
 * rl_bpe_spec_free). Errors: RL_E_IO (unreadable), RL_E_MISSING (no vocab.json/merges.txt),
 * RL_E_FORMAT (malformed: "<file>: line N: ..." or "<file>: key '...': expected ..."),
 * RL_E_NOMEM. On failure spec is left empty. */
rl_status rl_tokfiles_read(rl_bpe_spec *spec, const char *dir, rl_err *err);

/* The parts of rl_tokfiles_read, on text in memory (label names it in messages): fill
 * spec->tokens/ids/n_vocab, and spec->merges/n_merges. Used by the fuzz target. */
rl_status rl_tokfiles_parse_vocab(rl_bpe_spec *spec, const char *text, size_t len,
                                  const char *label, rl_err *err);
rl_status rl_tokfiles_parse_merges(rl_bpe_spec *spec, const char *text, size_t len,
                                   const char *label, rl_err *err);

/* rl_tokfiles_read + rl_bpe_init. */
rl_status rl_tokfiles_open(rl_bpe *bpe, const char *dir, rl_err *err);

/* Writes the four files into dir (created when missing; its parent must exist). Errors:
 * RL_E_IO, RL_E_PARAM (a special token absent from the vocab), RL_E_NOMEM. A failed write
 * leaves no partial file behind. */
rl_status rl_tokfiles_write(const char *dir, const rl_bpe_spec *spec, rl_err *err);

#endif
