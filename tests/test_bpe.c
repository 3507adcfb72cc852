/* tests/test_bpe.c - the CLIP BPE tokenizer (core/bpe.c) and tokenizer files (io/tokfiles.c)
 * against tools/fixtures/make_bpe.py, which uses the Python reference
 * tools/fixtures/clip_tokenizer.py (transformers' CLIPTokenizer semantics without ftfy).
 * Token ids are integers: every check is exact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/bpe.h"
#include "io/tokfiles.h"
#include "tests/harness.h"

#define TOK_DIR "bpe/tok"
#define CASES "bpe/cases.safetensors"

static int same_ids(rl_test *t, const char *what, const int *got, int n_got, const int64_t *want,
                    size_t n_want)
{
    int ok = (size_t)n_got == n_want;
    for (size_t i = 0; ok && i < n_want; i++) ok = got[i] == want[i];
    if (!ok) {
        fprintf(stderr, "  %s: got %d ids [", what, n_got);
        for (int i = 0; i < n_got && i < 40; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, " ], want %zu [", n_want);
        for (size_t i = 0; i < n_want && i < 40; i++) fprintf(stderr, " %lld", (long long)want[i]);
        fprintf(stderr, " ]\n");
    }
    return rl_test_check(t, ok, "%s: %zu ids identical", what, n_want);
}

// ---- encoding against the Python reference ---------------------------------------------------

static void test_encode(rl_test *t, const char *arg)
{
    rl_fixture fx;
    rl_bpe bpe = {0};
    rl_err err = {0};
    if (!rl_fixture_open(t, &fx, CASES)) return;
    if (!rl_test_check(t, rl_tokfiles_open(&bpe, rl_test_fixture_path(t, TOK_DIR), &err) == RL_OK,
                       "open %s: %s", TOK_DIR, err.msg))
        goto done;
    RL_CHECK(t, bpe.max_length == rl_fixture_int(&fx, "max_length"));
    RL_CHECK(t, bpe.n_vocab == rl_fixture_int(&fx, "n_vocab"));
    const int n_cases = rl_fixture_int(&fx, "n_cases");
    int *ids = rl_test_alloc(t, sizeof(int) * (size_t)bpe.max_length);
    int *raw = rl_test_alloc(t, sizeof(int) * 4096);
    for (int i = 0; i < n_cases; i++) {
        char key[32], what[64];
        snprintf(key, sizeof key, "prompt_%d", i);
        const char *prompt = rl_fixture_str(&fx, key);
        size_t n_want = 0, n_raw = 0;
        snprintf(key, sizeof key, "ids_%d", i);
        const int64_t *want = rl_fixture_i64(&fx, key, &n_want);
        snprintf(key, sizeof key, "raw_%d", i);
        const int64_t *want_raw = rl_fixture_i64(&fx, key, &n_raw);
        if (!want || !want_raw) continue;

        int n_used = 0;
        rl_status rc = rl_bpe_encode(&bpe, prompt, ids, &n_used, &err);
        snprintf(what, sizeof what, "case %d encode", i);
        if (!rl_test_check(t, rc == RL_OK, "%s: %s", what, err.msg)) continue;
        same_ids(t, what, ids, bpe.max_length, want, n_want);
        RL_CHECK(t, n_used == (int)(n_raw < n_want ? n_raw : n_want));

        // untruncated: raw = [bos] + tokens + [eos]
        int n = 0;
        raw[0] = bpe.bos_id;
        rc = rl_bpe_tokenize(&bpe, prompt, raw + 1, 4000, &n, &err);
        snprintf(what, sizeof what, "case %d tokenize", i);
        if (!rl_test_check(t, rc == RL_OK, "%s: %s", what, err.msg)) continue;
        raw[n + 1] = bpe.eos_id;
        same_ids(t, what, raw, n + 2, want_raw, n_raw);
    }
    // the over-long case really is truncated, and the empty prompt is [bos, eos, pad ...]
    RL_CHECK(t, rl_fixture_numel(&fx, "raw_10") > (size_t)bpe.max_length);
    int n_used = 0;
    RL_CHECK(t, rl_bpe_encode(&bpe, "", ids, &n_used, &err) == RL_OK && n_used == 2 &&
                    ids[0] == bpe.bos_id && ids[1] == bpe.eos_id &&
                    ids[bpe.max_length - 1] == bpe.pad_id);
    // tokenize with a small cap still reports the full count
    int few[2], n_all = 0;
    RL_CHECK(t, rl_bpe_tokenize(&bpe, "red circle red circle", few, 2, &n_all, &err) == RL_OK &&
                    n_all == 4);
done:
    rl_bpe_free(&bpe);
    rl_bpe_free(&bpe);      // idempotent
    rl_fixture_close(&fx);
}

static void test_bad_prompt(rl_test *t, const char *arg)
{
    rl_bpe bpe = {0};
    rl_err err = {0};
    if (!rl_test_check(t, rl_tokfiles_open(&bpe, rl_test_fixture_path(t, TOK_DIR), &err) == RL_OK,
                       "open: %s", err.msg))
        return;
    int ids[64];
    const char *bad[] = {"abc\xff", "\xc0\xaf overlong", "\xed\xa0\x80 surrogate", "cut \xe2\x82",
                         "\xf4\x90\x80\x80 past U+10FFFF"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rl_status rc = rl_bpe_encode(&bpe, bad[i], ids, NULL, &err);
        rl_test_check(t, rc == RL_E_PARAM && strstr(err.msg, "UTF-8"),
                      "invalid UTF-8 %zu refused: %s", i, err.msg);
    }
    char *big = malloc(RL_BPE_MAX_PROMPT + 2);
    memset(big, 'a', RL_BPE_MAX_PROMPT + 1);
    big[RL_BPE_MAX_PROMPT + 1] = '\0';
    rl_status rc = rl_bpe_encode(&bpe, big, ids, NULL, &err);
    rl_test_check(t, rc == RL_E_PARAM, "over-long prompt refused: %s", err.msg);
    // the longest accepted prompt, one piece of 16384 letters, still encodes
    big[RL_BPE_MAX_PROMPT] = '\0';
    rc = rl_bpe_encode(&bpe, big, ids, NULL, &err);
    rl_test_check(t, rc == RL_OK, "16384-letter prompt: %s", err.msg);
    free(big);
    rl_bpe_free(&bpe);
}

// ---- learning and writing ----------------------------------------------------------------------

static void test_learn(rl_test *t, const char *arg)
{
    rl_fixture fx;
    rl_err err = {0};
    rl_bpe_spec spec = {0};
    if (!rl_fixture_open(t, &fx, CASES)) return;
    char *caps = strdup(rl_fixture_str(&fx, "captions"));
    const char *texts[64];
    int n_texts = 0;
    for (char *s = caps, *save = NULL, *tok; (tok = strtok_r(s, "\n", &save)); s = NULL)
        if (n_texts < 64) texts[n_texts++] = tok;
    rl_status rc = rl_bpe_learn(&spec, texts, n_texts, rl_fixture_int(&fx, "n_merges"),
                                rl_fixture_int(&fx, "max_length"), &err);
    if (!rl_test_check(t, rc == RL_OK, "learn: %s", err.msg)) goto done;
    RL_CHECK(t, spec.n_vocab == rl_fixture_int(&fx, "n_vocab"));
    const char *dir = rl_test_tmp_path(t, "learned_tok");
    rc = rl_tokfiles_write(dir, &spec, &err);
    if (!rl_test_check(t, rc == RL_OK, "write: %s", err.msg)) goto done;

    // the four files are byte-identical to the ones the Python writer made
    const char *files[] = {"vocab.json", "merges.txt", "special_tokens_map.json",
                           "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        char a[512], b[512];
        snprintf(a, sizeof a, "%s/%s", dir, files[i]);
        snprintf(b, sizeof b, "%s/%s", rl_test_fixture_path(t, TOK_DIR), files[i]);
        size_t na = 0, nb = 0;
        char *ta = rl_test_read_file(t, a, &na), *tb = rl_test_read_file(t, b, &nb);
        rl_test_check(t, ta && tb && na == nb && memcmp(ta, tb, na) == 0,
                      "%s byte-identical to the Python writer's (%zu vs %zu bytes)", files[i],
                      na, nb);
    }
    // and the written folder reads back into a working tokenizer
    rl_bpe bpe = {0};
    rc = rl_tokfiles_open(&bpe, dir, &err);
    rl_test_check(t, rc == RL_OK, "reopen: %s", err.msg);
    rl_bpe_free(&bpe);
    // bad parameters
    rl_bpe_spec s2;
    RL_CHECK(t, rl_bpe_learn(&s2, texts, n_texts, -1, 77, &err) == RL_E_PARAM);
    RL_CHECK(t, rl_bpe_learn(&s2, texts, n_texts, 10, 1, &err) == RL_E_PARAM);
    const char *bad[] = {"ok", "bad \xff"};
    RL_CHECK(t, rl_bpe_learn(&s2, bad, 2, 10, 77, &err) == RL_E_PARAM);
    // no captions: only the base vocab and the specials
    RL_CHECK(t, rl_bpe_learn(&s2, texts, 0, 10, 77, &err) == RL_OK && s2.n_vocab == 514 &&
                    s2.n_merges == 0);
    rl_bpe_spec_free(&s2);
    rl_bpe_spec_free(&s2);
done:
    rl_bpe_spec_free(&spec);
    free(caps);
    rl_fixture_close(&fx);
}

// ---- malformed tokenizer folders -----------------------------------------------------------------

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

#define GOOD_VOCAB "{\"a\": 0, \"b\": 1, \"ab</w>\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}"
#define GOOD_MERGES "#version: 0.2\na b</w>\n"

typedef struct {
    const char *name;
    const char *vocab, *merges, *config, *stm;  // NULL: absent file
    rl_status want;
    const char *msg;                            // expected substring of the message
} bad_case;

static const bad_case BAD[] = {
    {"good", GOOD_VOCAB, GOOD_MERGES, NULL, NULL, RL_OK, ""},
    {"good_crlf", GOOD_VOCAB, "#version: 0.2\r\na b</w>\r\n", "{\"model_max_length\": 8}",
     "{\"pad_token\": {\"content\": \"a\"}}", RL_OK, ""},
    {"no_vocab", NULL, GOOD_MERGES, NULL, NULL, RL_E_MISSING, "vocab.json"},
    {"no_merges", GOOD_VOCAB, NULL, NULL, NULL, RL_E_MISSING, "merges.txt"},
    {"vocab_truncated", "{\"a\": 0, \"b\"", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "invalid JSON"},
    {"vocab_list", "[1, 2]", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "top level"},
    {"vocab_empty", "{}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "empty"},
    {"vocab_str_id", "{\"a\": \"0\"}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "integer id"},
    {"vocab_neg_id", "{\"a\": -1}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "integer id"},
    {"vocab_frac_id", "{\"a\": 0.5}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "integer id"},
    {"vocab_huge_id", "{\"a\": 1e30}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "integer id"},
    {"vocab_dup_id", "{\"a\": 0, \"b\": 0}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "more than one"},
    {"vocab_dup_tok", "{\"a\": 0, \"a\": 1}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "twice"},
    {"vocab_bad_utf8", "{\"a\xff\": 0}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "UTF-8"},
    {"vocab_empty_tok", "{\"\": 0}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "empty token"},
    {"no_specials", "{\"a\": 0, \"b\": 1}", GOOD_MERGES, NULL, NULL, RL_E_FORMAT, "not in the vocab"},
    {"merges_no_version", GOOD_VOCAB, "a b</w>\n", NULL, NULL, RL_E_FORMAT, "#version"},
    {"merges_three", GOOD_VOCAB, "#version: 0.2\na b c\n", NULL, NULL, RL_E_FORMAT, "line 2"},
    {"merges_blank_line", GOOD_VOCAB, "#version: 0.2\na b\n\nb a\n", NULL, NULL, RL_E_FORMAT,
     "line 3"},
    {"merges_bad_utf8", GOOD_VOCAB, "#version: 0.2\na\xc3 b\n", NULL, NULL, RL_E_FORMAT, "UTF-8"},
    {"config_len_small", GOOD_VOCAB, GOOD_MERGES, "{\"model_max_length\": 1}", NULL, RL_E_FORMAT,
     "model_max_length"},
    {"config_len_huge", GOOD_VOCAB, GOOD_MERGES, "{\"model_max_length\": 1e30}", NULL,
     RL_E_FORMAT, "model_max_length"},
    {"config_len_str", GOOD_VOCAB, GOOD_MERGES, "{\"model_max_length\": \"77\"}", NULL,
     RL_E_FORMAT, "model_max_length"},
    {"config_pad_num", GOOD_VOCAB, GOOD_MERGES, "{\"pad_token\": 3}", NULL, RL_E_FORMAT,
     "pad_token"},
    {"config_pad_unknown", GOOD_VOCAB, GOOD_MERGES, "{\"pad_token\": \"zz\"}", NULL, RL_E_FORMAT,
     "pad_token 'zz'"},
    {"stm_obj_no_content", GOOD_VOCAB, GOOD_MERGES, NULL, "{\"bos_token\": {\"lstrip\": false}}",
     RL_E_MISSING, "content"},
    {"stm_not_object", GOOD_VOCAB, GOOD_MERGES, NULL, "[]", RL_E_FORMAT, "top level"},
    {0},
};

static void test_malformed(rl_test *t, const char *arg)
{
    for (const bad_case *c = BAD; c->name; c++) {
        const char *dir = rl_test_tmp_path(t, c->name);
        mkdir(dir, 0777);
        if (c->vocab) write_file(dir, "vocab.json", c->vocab);
        if (c->merges) write_file(dir, "merges.txt", c->merges);
        if (c->config) write_file(dir, "tokenizer_config.json", c->config);
        if (c->stm) write_file(dir, "special_tokens_map.json", c->stm);
        rl_bpe bpe;
        rl_err err = {0};
        rl_status rc = rl_tokfiles_open(&bpe, dir, &err);
        rl_test_check(t, rc == c->want && strstr(err.msg, c->msg) != NULL,
                      "%s: status %d (want %d): %s", c->name, rc, c->want, err.msg);
        if (rc == RL_OK && strcmp(c->name, "good_crlf") == 0) {
            int ids[8], n = 0;
            rl_test_check(t, bpe.max_length == 8 && bpe.pad_id == 0 &&
                                 rl_bpe_encode(&bpe, "ab b", ids, &n, &err) == RL_OK && n == 4 &&
                                 ids[1] == 2 && ids[2] == 4 && ids[3] == 4 && ids[4] == 0,
                          "CRLF merges, config and map overrides applied");
        }
        rl_bpe_free(&bpe);
    }
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        {"encode", test_encode, NULL},
        {"bad_prompt", test_bad_prompt, NULL},
        {"learn_write", test_learn, NULL},
        {"malformed", test_malformed, NULL},
        {0},
    });
}
