/* core/bpe.c - CLIP byte-level BPE tokenizer and BPE learner (see core/bpe.h).
 *
 * Matches transformers' CLIPTokenizer (tokenization_clip.py, slow version, without ftfy):
 * BasicTokenizer(strip_accents=False, do_split_on_punc=False) cleanup, the pre-tokenisation
 * regex, bytes_to_unicode, "</w>" end-of-word marker, merges by rank ("merge every occurrence
 * of the lowest-ranked pair, left to right, then look again"). The Python reference used for
 * the fixtures is tools/fixtures/clip_tokenizer.py.
 *
 * Order in this file: string table, UTF-8 and Unicode helpers, text cleanup and
 * pre-tokenisation, the tokenizer, the learner. */
#include "core/bpe.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#define BPE_MAX_ID (1 << 24)    // ids above this are refused: no CLIP vocab comes near

static const char BOS_STR[] = "<|startoftext|>";
static const char EOS_STR[] = "<|endoftext|>";
static const char EOW[] = "</w>";

// ---- string table ---------------------------------------------------------------------------

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;        // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void strtab_free(rl_bpe_strtab *t)
{
    free(t->pool);
    free(t->off);
    free(t->tab);
    *t = (rl_bpe_strtab){0};
}

static const char *strtab_get(const rl_bpe_strtab *t, int i) { return t->pool + t->off[i]; }

/* Index of s[0..n) or -1. */
static int strtab_find(const rl_bpe_strtab *t, const char *s, size_t n)
{
    if (!t->tab_cap) return -1;
    size_t mask = (size_t)t->tab_cap - 1;
    for (size_t h = hash_str(s, n) & mask;; h = (h + 1) & mask) {
        int i = t->tab[h];
        if (i < 0) return -1;
        const char *c = strtab_get(t, i);
        if (strncmp(c, s, n) == 0 && c[n] == '\0') return i;
    }
}

static int strtab_grow_tab(rl_bpe_strtab *t)
{
    int cap = t->tab_cap ? t->tab_cap * 2 : 1024;
    int *tab = malloc((size_t)cap * sizeof *tab);
    if (!tab) return 0;
    for (int i = 0; i < cap; i++) tab[i] = -1;
    size_t mask = (size_t)cap - 1;
    for (int i = 0; i < t->n; i++) {
        const char *s = strtab_get(t, i);
        size_t h = hash_str(s, strlen(s)) & mask;
        while (tab[h] >= 0) h = (h + 1) & mask;
        tab[h] = i;
    }
    free(t->tab);
    t->tab = tab;
    t->tab_cap = cap;
    return 1;
}

/* Index of s[0..n), added when absent; -1 when out of memory. s has no NUL inside. */
static int strtab_intern(rl_bpe_strtab *t, const char *s, size_t n)
{
    int i = strtab_find(t, s, n);
    if (i >= 0) return i;
    if (t->n >= INT_MAX / 4) return -1;
    if ((size_t)(t->n + 1) * 2 > (size_t)t->tab_cap && !strtab_grow_tab(t)) return -1;
    if (t->n == t->cap_n) {
        int cap = t->cap_n ? t->cap_n * 2 : 1024;
        size_t *off = realloc(t->off, (size_t)cap * sizeof *off);
        if (!off) return -1;
        t->off = off;
        t->cap_n = cap;
    }
    if (n + 1 > t->cap - t->len) {
        size_t cap = t->cap ? t->cap * 2 : 16384;
        while (n + 1 > cap - t->len) cap *= 2;
        char *pool = realloc(t->pool, cap);
        if (!pool) return -1;
        t->pool = pool;
        t->cap = cap;
    }
    memcpy(t->pool + t->len, s, n);
    t->pool[t->len + n] = '\0';
    t->off[t->n] = t->len;
    t->len += n + 1;
    size_t mask = (size_t)t->tab_cap - 1, h = hash_str(s, n) & mask;
    while (t->tab[h] >= 0) h = (h + 1) & mask;
    t->tab[h] = t->n;
    return t->n++;
}

// ---- UTF-8 and Unicode ----------------------------------------------------------------------

/* Decodes one strictly valid UTF-8 sequence (no overlong forms, surrogates or values past
 * U+10FFFF) at s[0..n); returns its length, 0 when invalid. */
static int utf8_dec(const unsigned char *s, size_t n, int32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) { *cp = (int32_t)c; return 1; }
    int len;
    int32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static int utf8_enc(int32_t cp, char *out)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Byte offset of the first invalid sequence, or n when s[0..n) is valid UTF-8. */
static size_t utf8_check(const char *s, size_t n)
{
    size_t i = 0;
    int32_t cp;
    while (i < n) {
        int k = utf8_dec((const unsigned char *)s + i, n - i, &cp);
        if (!k) return i;
        i += (size_t)k;
    }
    return n;
}

static int is_letter(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int is_number(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

/* transformers' _is_control: category C* except tab, newline, carriage return. */
static int is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_CN || k >= UTF8PROC_CATEGORY_CC;
}

/* transformers' _is_whitespace. */
static int is_ws(int32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
           utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

/* The CJK ideograph blocks BasicTokenizer surrounds with spaces. */
static int is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Separators str.split() still sees after the cleanup turned the rest into spaces. */
static int is_split(int32_t c) { return c == ' ' || c == 0x2028 || c == 0x2029; }

/* Python's cased / case-ignorable, as used by str.lower() for the final sigma (approximated
 * by categories plus the Word_Break MidLetter/MidNumLet/Single_Quote characters). */
static int is_cased(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

static int is_case_ignorable(int32_t c)
{
    switch (c) {
    case '\'': case '.': case ':': case 0xB7: case 0x387: case 0x5F4: case 0x2018: case 0x2019:
    case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E:
    case 0xFF1A:
        return 1;
    }
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

// ---- growable buffers -----------------------------------------------------------------------

typedef struct {
    int32_t *v;
    size_t n, cap;
} cpbuf;

static int cp_push(cpbuf *b, int32_t c)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        int32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) return 0;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = c;
    return 1;
}

typedef struct {
    int *v;
    size_t n, cap;
} intbuf;

static int int_push(intbuf *b, int x)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int *v = realloc(b->v, cap * sizeof *v);
        if (!v) return 0;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = x;
    return 1;
}

// ---- cleanup and pre-tokenisation -----------------------------------------------------------

/* A pre-tokenised piece: UTF-8 bytes, or a special-token string. Returns 0 to stop early
 * (enough ids), -1 on out of memory, 1 to continue. */
typedef int (*piece_fn)(void *ctx, const char *s, size_t n, int special);

/* BasicTokenizer cleanup of chunk[0..n) (valid UTF-8) into out: control characters dropped,
 * whitespace to spaces, spaces around CJK, NFC, split on whitespace, words lower-cased and
 * joined by one space. Returns 0 on out of memory. */
static int clean_chunk(const char *chunk, size_t n, cpbuf *out)
{
    char *tmp = malloc(n * 3 + 1);          // each character grows to at most " c " (3 bytes/byte)
    if (!tmp) return 0;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int32_t c;
        i += (size_t)utf8_dec((const unsigned char *)chunk + i, n - i, &c);
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (is_ws(c)) {
            tmp[k++] = ' ';
        } else if (is_cjk(c)) {
            tmp[k++] = ' ';
            k += (size_t)utf8_enc(c, tmp + k);
            tmp[k++] = ' ';
        } else {
            k += (size_t)utf8_enc(c, tmp + k);
        }
    }
    tmp[k] = '\0';
    unsigned char *nfc = utf8proc_NFC((const unsigned char *)tmp);
    free(tmp);
    if (!nfc) return 0;

    cpbuf cps = {0};
    int ok = 1;
    size_t len = strlen((const char *)nfc);
    for (size_t i = 0; i < len && ok;) {
        int32_t c;
        int d = utf8_dec(nfc + i, len - i, &c);
        if (!d) break;                      // utf8proc only emits valid UTF-8
        i += (size_t)d;
        ok = cp_push(&cps, c);
    }
    free(nfc);

    out->n = 0;
    for (size_t i = 0; i < cps.n && ok;) {
        if (is_split(cps.v[i])) { i++; continue; }
        size_t e = i;
        while (e < cps.n && !is_split(cps.v[e])) e++;
        if (out->n) ok = cp_push(out, ' ');
        for (size_t j = i; j < e && ok; j++) {       // str.lower() of the word [i, e)
            int32_t c = cps.v[j];
            if (c == 0x130) {                        // İ -> i + combining dot above
                ok = cp_push(out, 'i') && cp_push(out, 0x307);
                continue;
            }
            if (c == 0x3A3) {                        // Σ: final form at the end of a word
                ptrdiff_t b = (ptrdiff_t)j - 1;
                while (b >= (ptrdiff_t)i && is_case_ignorable(cps.v[b])) b--;
                int fin = b >= (ptrdiff_t)i && is_cased(cps.v[b]);
                if (fin) {
                    size_t a = j + 1;
                    while (a < e && is_case_ignorable(cps.v[a])) a++;
                    fin = a == e || !is_cased(cps.v[a]);
                }
                ok = cp_push(out, fin ? 0x3C2 : 0x3C3);
                continue;
            }
            ok = cp_push(out, utf8proc_tolower(c));
        }
        i = e;
    }
    free(cps.v);
    return ok;
}

/* Length of the regex alternative '(s|t|re|ve|m|ll|d) at c[0..n) (c[0] == '\''), or 0.
 * IGNORECASE: U+017F (long s) folds to s; text is lower-cased so nothing else is upper. */
static size_t match_contraction(const int32_t *c, size_t n)
{
    if (n < 2) return 0;
    int32_t a = c[1];
    if (a == 's' || a == 0x17F || a == 't' || a == 'm' || a == 'd') return 2;
    if (n < 3) return 0;
    int32_t b = c[2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

static int match_lit(const int32_t *c, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (k > n) return 0;
    for (size_t i = 0; i < k; i++)
        if (c[i] != (unsigned char)lit[i]) return 0;
    return 1;
}

/* Splits cleaned text into pieces with CLIP's regex, leftmost alternative first:
 * <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d | \p{L}+ | \p{N} | [^\s\p{L}\p{N}]+ */
static int split_pieces(const cpbuf *t, piece_fn fn, void *ctx)
{
    char *buf = malloc(t->n * 4 + 1);
    if (!buf) return -1;
    int rc = 1;
    const int32_t *c = t->v;
    for (size_t i = 0; i < t->n && rc > 0;) {
        size_t n = t->n - i, len;
        int special = 0;
        if (is_split(c[i])) { i++; continue; }
        if (match_lit(c + i, n, BOS_STR)) { len = strlen(BOS_STR); special = 1; }
        else if (match_lit(c + i, n, EOS_STR)) { len = strlen(EOS_STR); special = 1; }
        else if (c[i] == '\'' && (len = match_contraction(c + i, n))) { }
        else if (is_letter(c[i])) {
            len = 1;
            while (len < n && is_letter(c[i + len])) len++;
        } else if (is_number(c[i])) {
            len = 1;
        } else {
            len = 1;
            while (len < n && !is_split(c[i + len]) && !is_letter(c[i + len]) &&
                   !is_number(c[i + len]))
                len++;
        }
        size_t k = 0;
        for (size_t j = 0; j < len; j++) k += (size_t)utf8_enc(c[i + j], buf + k);
        rc = fn(ctx, buf, k, special);
        i += len;
    }
    free(buf);
    return rc;
}

/* The whole front end: split out the special strings (specials[0..n_specials)), clean each
 * other chunk and pre-tokenise it. Returns 1 done, 0 stopped early, -1 out of memory. */
static int pretokenize(const char *text, size_t n, const char *const *specials, int n_specials,
                       piece_fn fn, void *ctx)
{
    cpbuf clean = {0};
    int rc = 1;
    size_t i = 0;
    while (i < n && rc > 0) {
        size_t at = n, slen = 0;
        for (int s = 0; s < n_specials; s++) {        // earliest, then longest special
            size_t k = strlen(specials[s]);
            if (!k) continue;
            const char *p = NULL;
            for (size_t j = i; j + k <= n && j < at; j++)
                if (memcmp(text + j, specials[s], k) == 0) { p = text + j; break; }
            if (p && ((size_t)(p - text) < at || ((size_t)(p - text) == at && k > slen))) {
                at = (size_t)(p - text);
                slen = k;
            }
        }
        if (at > i) {
            if (!clean_chunk(text + i, at - i, &clean)) { rc = -1; break; }
            rc = split_pieces(&clean, fn, ctx);
        }
        if (rc > 0 && slen) rc = fn(ctx, text + at, slen, 1);
        i = at + slen;
    }
    free(clean.v);
    return rc;
}

// ---- bytes_to_unicode -----------------------------------------------------------------------

/* order[i]: the byte listed i-th in CLIP's vocab; cp[b]: the character byte b maps to. */
static void byte_table(int order[256], int32_t cp[256])
{
    int k = 0, extra = 0;
    char kept[256] = {0};
    for (int b = 0; b < 256; b++) {
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            kept[b] = 1;
            order[k++] = b;
            cp[b] = b;
        }
    }
    for (int b = 0; b < 256; b++) {
        if (!kept[b]) {
            order[k++] = b;
            cp[b] = 256 + extra++;
        }
    }
}

// ---- the tokenizer --------------------------------------------------------------------------

void rl_bpe_spec_free(rl_bpe_spec *spec)
{
    if (!spec) return;
    if (spec->tokens)
        for (int i = 0; i < spec->n_vocab; i++) free(spec->tokens[i]);
    if (spec->merges)
        for (int i = 0; i < 2 * spec->n_merges; i++) free(spec->merges[i]);
    free(spec->tokens);
    free(spec->ids);
    free(spec->merges);
    free(spec->bos);
    free(spec->eos);
    free(spec->unk);
    free(spec->pad);
    *spec = (rl_bpe_spec){0};
}

void rl_bpe_free(rl_bpe *bpe)
{
    if (!bpe) return;
    strtab_free(&bpe->syms);
    free(bpe->sym_id);
    free(bpe->pair_key);
    free(bpe->pair_rank);
    free(bpe->pair_sym);
    free(bpe->bos);
    free(bpe->eos);
    free(bpe->unk);
    *bpe = (rl_bpe){0};
}

static uint64_t pair_hash(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return key;
}

/* Slot of pair (a, b) in the merge table: its own slot or the empty one it would take. */
static size_t pair_slot(const rl_bpe *bpe, int a, int b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t mask = (size_t)bpe->pair_cap - 1;
    size_t h = pair_hash(key) & mask;
    while (bpe->pair_key[h] && bpe->pair_key[h] != key) h = (h + 1) & mask;
    return h;
}

/* Symbol id of the concatenation a + b (interned). -1 on out of memory. */
static int intern_concat(rl_bpe_strtab *t, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (!s) return -1;
    memcpy(s, a, na);
    memcpy(s + na, b, nb + 1);
    int r = strtab_intern(t, s, na + nb);
    free(s);
    return r;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

rl_status rl_bpe_init(rl_bpe *bpe, const rl_bpe_spec *spec, rl_err *err)
{
    rl_status rc;
    *bpe = (rl_bpe){0};
    uint32_t *seen_id = NULL;   // (BPE_MAX_ID / 32) bit set of ids already given

    if (spec->max_length < 2 || spec->max_length > RL_BPE_MAX_LENGTH)
        return rl_errf(err, RL_E_FORMAT, "tokenizer: model_max_length %d is outside [2, %d]",
                       spec->max_length, RL_BPE_MAX_LENGTH);
    if (spec->n_vocab <= 0 || spec->n_merges < 0)
        return rl_errf(err, RL_E_FORMAT, "tokenizer: the vocab is empty");
    bpe->max_length = spec->max_length;
    bpe->n_vocab = spec->n_vocab;

    // vocab tokens get the first symbols, so symbol i < n_vocab is token i of the spec
    seen_id = calloc(BPE_MAX_ID / 32, sizeof *seen_id);
    if (!seen_id) goto nomem;
    for (int i = 0; i < spec->n_vocab; i++) {
        const char *tok = spec->tokens[i];
        int id = spec->ids[i];
        if (!tok || !tok[0]) {
            rc = rl_errf(err, RL_E_FORMAT, "vocab: entry %d has an empty token", i);
            goto fail;
        }
        if (id < 0 || id >= BPE_MAX_ID) {
            rc = rl_errf(err, RL_E_FORMAT, "vocab: token '%.64s' has id %d, expected [0, %d)",
                         tok, id, BPE_MAX_ID);
            goto fail;
        }
        if (seen_id[id / 32] & (1u << (id % 32))) {
            rc = rl_errf(err, RL_E_FORMAT, "vocab: id %d is given to more than one token (again "
                         "to '%.64s')", id, tok);
            goto fail;
        }
        seen_id[id / 32] |= 1u << (id % 32);
        int before = bpe->syms.n;
        int s = strtab_intern(&bpe->syms, tok, strlen(tok));
        if (s < 0) goto nomem;
        if (s != before) {
            rc = rl_errf(err, RL_E_FORMAT, "vocab: token '%.64s' appears twice", tok);
            goto fail;
        }
    }

    // merges: operands and results interned after the vocab
    bpe->pair_cap = 1024;
    while (bpe->pair_cap < 2 * spec->n_merges + 2) bpe->pair_cap *= 2;
    bpe->pair_key = calloc((size_t)bpe->pair_cap, sizeof *bpe->pair_key);
    bpe->pair_rank = malloc((size_t)bpe->pair_cap * sizeof *bpe->pair_rank);
    bpe->pair_sym = malloc((size_t)bpe->pair_cap * sizeof *bpe->pair_sym);
    if (!bpe->pair_key || !bpe->pair_rank || !bpe->pair_sym) goto nomem;
    for (int r = 0; r < spec->n_merges; r++) {
        const char *a = spec->merges[2 * r], *b = spec->merges[2 * r + 1];
        if (!a || !b || !a[0] || !b[0]) {
            rc = rl_errf(err, RL_E_FORMAT, "merges: merge %d has an empty symbol", r + 1);
            goto fail;
        }
        int sa = strtab_intern(&bpe->syms, a, strlen(a));
        int sb = strtab_intern(&bpe->syms, b, strlen(b));
        int sm = sa < 0 || sb < 0 ? -1 : intern_concat(&bpe->syms, a, b);
        if (sm < 0) goto nomem;
        size_t h = pair_slot(bpe, sa, sb);
        if (!bpe->pair_key[h]) bpe->n_pairs++;
        // a repeated merge keeps its last rank, as dict(zip(merges, range(...))) does
        bpe->pair_key[h] = ((uint64_t)(uint32_t)sa << 32 | (uint32_t)sb) + 1;
        bpe->pair_rank[h] = r;
        bpe->pair_sym[h] = sm;
    }

    // byte symbols
    int order[256];
    int32_t cp[256];
    byte_table(order, cp);
    for (int b = 0; b < 256; b++) {
        char s[16];
        int k = utf8_enc(cp[b], s);
        memcpy(s + k, EOW, sizeof EOW);
        bpe->byte_sym[b] = strtab_intern(&bpe->syms, s, (size_t)k);
        bpe->byte_sym_end[b] = strtab_intern(&bpe->syms, s, (size_t)k + strlen(EOW));
        if (bpe->byte_sym[b] < 0 || bpe->byte_sym_end[b] < 0) goto nomem;
    }

    bpe->sym_id = malloc((size_t)bpe->syms.n * sizeof *bpe->sym_id);
    if (!bpe->sym_id) goto nomem;
    for (int s = 0; s < bpe->syms.n; s++) bpe->sym_id[s] = s < spec->n_vocab ? spec->ids[s] : -1;

    // special tokens must be in the vocab
    const char *names[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    const char *strs[4] = {spec->bos ? spec->bos : BOS_STR, spec->eos ? spec->eos : EOS_STR,
                           spec->unk ? spec->unk : EOS_STR, spec->pad ? spec->pad : EOS_STR};
    int *dst[4] = {&bpe->bos_id, &bpe->eos_id, &bpe->unk_id, &bpe->pad_id};
    for (int i = 0; i < 4; i++) {
        int s = strtab_find(&bpe->syms, strs[i], strlen(strs[i]));
        if (s < 0 || bpe->sym_id[s] < 0) {
            rc = rl_errf(err, RL_E_FORMAT, "tokenizer: %s '%.64s' is not in the vocab", names[i],
                         strs[i]);
            goto fail;
        }
        *dst[i] = bpe->sym_id[s];
    }
    bpe->bos = dup_or_null(strs[0]);
    bpe->eos = dup_or_null(strs[1]);
    bpe->unk = dup_or_null(strs[2]);
    if (!bpe->bos || !bpe->eos || !bpe->unk) goto nomem;
    free(seen_id);
    return RL_OK;

nomem:
    rc = rl_errf(err, RL_E_NOMEM, "tokenizer: out of memory");
fail:
    free(seen_id);
    rl_bpe_free(bpe);
    return rc;
}

/* Applies the merges to word[0..*n) in place: while some adjacent pair has a rank, merge every
 * occurrence of the lowest-ranked one, left to right. */
static void bpe_word(const rl_bpe *bpe, int *word, size_t *n)
{
    while (*n > 1) {
        int best = INT_MAX, a = -1, b = -1, m = -1;
        for (size_t i = 0; i + 1 < *n; i++) {
            size_t h = pair_slot(bpe, word[i], word[i + 1]);
            if (bpe->pair_key[h] && bpe->pair_rank[h] < best) {
                best = bpe->pair_rank[h];
                a = word[i];
                b = word[i + 1];
                m = bpe->pair_sym[h];
            }
        }
        if (best == INT_MAX) break;
        size_t j = 0;
        for (size_t i = 0; i < *n;) {
            if (i + 1 < *n && word[i] == a && word[i + 1] == b) {
                word[j++] = m;
                i += 2;
            } else {
                word[j++] = word[i++];
            }
        }
        *n = j;
    }
}

typedef struct {
    const rl_bpe *bpe;
    intbuf ids;
    size_t limit;       // stop once this many ids are collected (SIZE_MAX: never)
    int *word;          // (word_cap) scratch
    size_t word_cap;
} enc_ctx;

static int enc_piece(void *vctx, const char *s, size_t n, int special)
{
    enc_ctx *c = vctx;
    const rl_bpe *bpe = c->bpe;
    if (special) {
        int sym = strtab_find(&bpe->syms, s, n);
        int id = sym >= 0 && bpe->sym_id[sym] >= 0 ? bpe->sym_id[sym] : bpe->unk_id;
        if (!int_push(&c->ids, id)) return -1;
        return c->ids.n >= c->limit ? 0 : 1;
    }
    if (n > c->word_cap) {
        int *w = realloc(c->word, n * sizeof *w);
        if (!w) return -1;
        c->word = w;
        c->word_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        c->word[i] = i + 1 < n ? bpe->byte_sym[b] : bpe->byte_sym_end[b];
    }
    size_t len = n;
    bpe_word(bpe, c->word, &len);
    for (size_t i = 0; i < len; i++) {
        int id = bpe->sym_id[c->word[i]];
        if (!int_push(&c->ids, id >= 0 ? id : bpe->unk_id)) return -1;
    }
    return c->ids.n >= c->limit ? 0 : 1;
}

static rl_status run_encoder(const rl_bpe *bpe, const char *prompt, size_t limit, enc_ctx *c,
                             rl_err *err)
{
    size_t n = strlen(prompt);
    if (n > RL_BPE_MAX_PROMPT)
        return rl_errf(err, RL_E_PARAM, "prompt is %zu bytes long; at most %d are accepted", n,
                       RL_BPE_MAX_PROMPT);
    size_t bad = utf8_check(prompt, n);
    if (bad != n)
        return rl_errf(err, RL_E_PARAM, "prompt is not valid UTF-8 (byte %zu, 0x%02x)", bad,
                       (unsigned char)prompt[bad]);
    *c = (enc_ctx){.bpe = bpe, .limit = limit};
    const char *specials[3] = {bpe->bos, bpe->eos, bpe->unk};
    if (limit > 0 && pretokenize(prompt, n, specials, 3, enc_piece, c) < 0) {
        free(c->ids.v);
        free(c->word);
        return rl_errf(err, RL_E_NOMEM, "tokenizer: out of memory");
    }
    free(c->word);
    return RL_OK;
}

rl_status rl_bpe_tokenize(const rl_bpe *bpe, const char *prompt, int *ids, int cap, int *n,
                          rl_err *err)
{
    enc_ctx c;
    rl_status rc = run_encoder(bpe, prompt, (size_t)-1, &c, err);
    if (rc) return rc;
    for (size_t i = 0; i < c.ids.n && i < (size_t)(cap > 0 ? cap : 0); i++) ids[i] = c.ids.v[i];
    *n = c.ids.n > INT_MAX ? INT_MAX : (int)c.ids.n;
    free(c.ids.v);
    return RL_OK;
}

rl_status rl_bpe_encode(const rl_bpe *bpe, const char *prompt, int *ids, int *n_used,
                        rl_err *err)
{
    enc_ctx c;
    size_t body = (size_t)bpe->max_length - 2;
    rl_status rc = run_encoder(bpe, prompt, body, &c, err);
    if (rc) return rc;
    int k = 0;
    ids[k++] = bpe->bos_id;
    for (size_t i = 0; i < c.ids.n && i < body; i++) ids[k++] = c.ids.v[i];
    ids[k++] = bpe->eos_id;
    if (n_used) *n_used = k;
    while (k < bpe->max_length) ids[k++] = bpe->pad_id;
    free(c.ids.v);
    return RL_OK;
}

// ---- the learner ----------------------------------------------------------------------------

typedef struct {
    rl_bpe_strtab pieces;
    intbuf counts;      // (pieces.n) occurrences of each piece
} learn_ctx;

static int learn_piece(void *vctx, const char *s, size_t n, int special)
{
    learn_ctx *c = vctx;
    if (special) return 1;
    int before = c->pieces.n;
    int p = strtab_intern(&c->pieces, s, n);
    if (p < 0) return -1;
    if (p == before && !int_push(&c->counts, 0)) return -1;
    c->counts.v[p]++;
    return 1;
}

/* Pair-count map of one round: open addressing over (a << 32 | b) + 1. */
typedef struct {
    uint64_t *key;
    long long *count;
    size_t cap;
} pairmap;

static long long *pairmap_at(pairmap *m, int a, int b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t mask = m->cap - 1, h = pair_hash(key) & mask;
    while (m->key[h] && m->key[h] != key) h = (h + 1) & mask;
    if (!m->key[h]) {
        m->key[h] = key;
        m->count[h] = 0;
    }
    return &m->count[h];
}

rl_status rl_bpe_learn(rl_bpe_spec *spec, const char *const *texts, int n_texts, int n_merges,
                       int max_length, rl_err *err)
{
    rl_status rc;
    learn_ctx lc = {0};
    rl_bpe_strtab syms = {0};
    int *words = NULL;          // (total) symbols of every distinct piece, back to back
    size_t *wstart = NULL, *wlen = NULL;   // (pieces.n)
    pairmap pm = {0};
    *spec = (rl_bpe_spec){0};

    if (n_merges < 0 || n_merges > RL_BPE_MAX_MERGES)
        return rl_errf(err, RL_E_PARAM, "bpe learn: %d merges requested, expected [0, %d]",
                       n_merges, RL_BPE_MAX_MERGES);
    if (max_length < 2 || max_length > RL_BPE_MAX_LENGTH)
        return rl_errf(err, RL_E_PARAM, "bpe learn: max_length %d is outside [2, %d]",
                       max_length, RL_BPE_MAX_LENGTH);

    // count the pieces
    const char *specials[2] = {BOS_STR, EOS_STR};
    for (int t = 0; t < n_texts; t++) {
        size_t n = strlen(texts[t]), bad = utf8_check(texts[t], n);
        if (bad != n) {
            rc = rl_errf(err, RL_E_PARAM, "bpe learn: caption %d is not valid UTF-8 (byte %zu)",
                         t, bad);
            goto fail;
        }
        if (pretokenize(texts[t], n, specials, 2, learn_piece, &lc) < 0) goto nomem;
    }

    // the 512 base tokens, in vocab order
    int order[256];
    int32_t cp[256];
    byte_table(order, cp);
    int bsym[256], bsym_end[256];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 256; i++) {
            char s[16];
            int k = utf8_enc(cp[order[i]], s);
            if (pass) {
                memcpy(s + k, EOW, strlen(EOW));
                k += (int)strlen(EOW);
            }
            int sym = strtab_intern(&syms, s, (size_t)k);
            if (sym < 0) goto nomem;
            (pass ? bsym_end : bsym)[order[i]] = sym;
        }
    }

    // every piece as symbols
    size_t total = 0;
    for (int p = 0; p < lc.pieces.n; p++) total += strlen(strtab_get(&lc.pieces, p));
    words = malloc((total + 1) * sizeof *words);
    wstart = malloc(((size_t)lc.pieces.n + 1) * sizeof *wstart);
    wlen = malloc(((size_t)lc.pieces.n + 1) * sizeof *wlen);
    if (!words || !wstart || !wlen) goto nomem;
    size_t at = 0;
    for (int p = 0; p < lc.pieces.n; p++) {
        const unsigned char *s = (const unsigned char *)strtab_get(&lc.pieces, p);
        size_t n = strlen((const char *)s);
        wstart[p] = at;
        wlen[p] = n;
        for (size_t i = 0; i < n; i++) words[at++] = i + 1 < n ? bsym[s[i]] : bsym_end[s[i]];
    }

    spec->merges = malloc(((size_t)n_merges * 2 + 1) * sizeof *spec->merges);
    if (!spec->merges) goto nomem;
    pm.cap = 1024;
    while (pm.cap < 2 * total + 2) pm.cap *= 2;
    pm.key = malloc(pm.cap * sizeof *pm.key);
    pm.count = malloc(pm.cap * sizeof *pm.count);
    if (!pm.key || !pm.count) goto nomem;

    for (int r = 0; r < n_merges; r++) {
        memset(pm.key, 0, pm.cap * sizeof *pm.key);
        for (int p = 0; p < lc.pieces.n; p++) {
            const int *w = words + wstart[p];
            for (size_t i = 0; i + 1 < wlen[p]; i++) *pairmap_at(&pm, w[i], w[i + 1]) +=
                lc.counts.v[p];
        }
        int ba = -1, bb = -1;
        long long bc = 0;
        for (size_t h = 0; h < pm.cap; h++) {
            if (!pm.key[h]) continue;
            int a = (int)((pm.key[h] - 1) >> 32), b = (int)((pm.key[h] - 1) & 0xffffffffu);
            long long c = pm.count[h];
            if (c < bc) continue;
            if (c == bc) {
                int d = strcmp(strtab_get(&syms, a), strtab_get(&syms, ba));
                if (d > 0 || (d == 0 && strcmp(strtab_get(&syms, b), strtab_get(&syms, bb)) >= 0))
                    continue;
            }
            // skip pairs whose concatenation is already a token
            const char *sa = strtab_get(&syms, a), *sb = strtab_get(&syms, b);
            size_t na = strlen(sa), nb = strlen(sb);
            char *cat = malloc(na + nb + 1);
            if (!cat) goto nomem;
            memcpy(cat, sa, na);
            memcpy(cat + na, sb, nb + 1);
            int known = strtab_find(&syms, cat, na + nb) >= 0;
            free(cat);
            if (known) continue;
            ba = a;
            bb = b;
            bc = c;
        }
        if (ba < 0) break;
        spec->merges[2 * r] = strdup(strtab_get(&syms, ba));
        spec->merges[2 * r + 1] = strdup(strtab_get(&syms, bb));
        spec->n_merges = r + 1;
        if (!spec->merges[2 * r] || !spec->merges[2 * r + 1]) goto nomem;
        int m = intern_concat(&syms, spec->merges[2 * r], spec->merges[2 * r + 1]);
        if (m < 0) goto nomem;
        for (int p = 0; p < lc.pieces.n; p++) {
            int *w = words + wstart[p];
            size_t j = 0;
            for (size_t i = 0; i < wlen[p];) {
                if (i + 1 < wlen[p] && w[i] == ba && w[i + 1] == bb) {
                    w[j++] = m;
                    i += 2;
                } else {
                    w[j++] = w[i++];
                }
            }
            wlen[p] = j;
        }
    }

    // the vocab: every interned symbol in order (bases, then one per merge), then specials
    spec->n_vocab = syms.n + 2;
    spec->tokens = calloc((size_t)spec->n_vocab, sizeof *spec->tokens);
    spec->ids = malloc((size_t)spec->n_vocab * sizeof *spec->ids);
    if (!spec->tokens || !spec->ids) goto nomem;
    for (int i = 0; i < spec->n_vocab; i++) {
        spec->tokens[i] = strdup(i < syms.n ? strtab_get(&syms, i) :
                                 i == syms.n ? BOS_STR : EOS_STR);
        spec->ids[i] = i;
        if (!spec->tokens[i]) goto nomem;
    }
    spec->bos = strdup(BOS_STR);
    spec->eos = strdup(EOS_STR);
    spec->unk = strdup(EOS_STR);
    spec->pad = strdup(EOS_STR);
    if (!spec->bos || !spec->eos || !spec->unk || !spec->pad) goto nomem;
    spec->max_length = max_length;
    rc = RL_OK;
    goto done;

nomem:
    rc = rl_errf(err, RL_E_NOMEM, "bpe learn: out of memory");
fail:
    rl_bpe_spec_free(spec);
done:
    strtab_free(&lc.pieces);
    free(lc.counts.v);
    strtab_free(&syms);
    free(words);
    free(wstart);
    free(wlen);
    free(pm.key);
    free(pm.count);
    return rc;
}
