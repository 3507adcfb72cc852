/* io/tokfiles.c - read and write a tokenizer/ folder (see io/tokfiles.h).
 *
 * Layout as transformers' CLIPTokenizer (tokenization_clip.py) reads and save_pretrained
 * writes it: vocab.json {token: id} (json.dumps(indent=2, sort_keys=True,
 * ensure_ascii=False)), merges.txt ("#version: 0.2" then one "a b" merge per line, rank =
 * line order), special_tokens_map.json and tokenizer_config.json. transformers reads at most
 * 49152 - 256 - 2 merges and ignores the rest; reel does the same. */
#include "io/tokfiles.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "io/file.h"
#include "io/json.h"

#define MERGES_MAX_BYTES (((size_t)64 << 20) - 1)   // vocab.json, merges.txt: under 64 MiB

// ---- helpers --------------------------------------------------------------------------------

/* 1 when s[0..n) is valid UTF-8 (no overlong forms, surrogates or values past U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        int len;
        unsigned v, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
        else goto bad;
        if ((size_t)len > n - i) goto bad;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto bad;
            v = (v << 6) | (s[i + k] & 0x3F);
        }
        if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) goto bad;
        i += (size_t)len;
    }
    return 1;
bad:
    if (bad) *bad = i;
    return 0;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

// ---- reading --------------------------------------------------------------------------------

rl_status rl_tokfiles_parse_vocab(rl_bpe_spec *spec, const char *text, size_t len,
                                  const char *label, rl_err *err)
{
    rl_json j = {0};
    rl_status rc = rl_json_parse(&j, text, len, label, err);
    if (rc) return rc;
    if (!cJSON_IsObject(j.root)) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: expected an object {token: id} at the top level",
                     label);
        goto fail;
    }
    int n = cJSON_GetArraySize(j.root);
    if (n <= 0) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: the vocab is empty", label);
        goto fail;
    }
    spec->tokens = calloc((size_t)n, sizeof *spec->tokens);
    spec->ids = malloc((size_t)n * sizeof *spec->ids);
    if (!spec->tokens || !spec->ids) goto nomem;
    spec->n_vocab = n;
    int i = 0;
    for (const cJSON *c = j.root->child; c && i < n; c = c->next, i++) {
        const char *tok = c->string ? c->string : "";
        size_t bad = 0;
        if (!tok[0]) {
            rc = rl_errf(err, RL_E_FORMAT, "%s: entry %d has an empty token", label, i);
            goto fail;
        }
        if (!utf8_valid((const unsigned char *)tok, strlen(tok), &bad)) {
            rc = rl_errf(err, RL_E_FORMAT, "%s: entry %d: token is not valid UTF-8 (byte %zu)",
                         label, i, bad);
            goto fail;
        }
        double d = cJSON_IsNumber(c) ? c->valuedouble : -1;
        if (!cJSON_IsNumber(c) || !isfinite(d) || d != floor(d) || d < 0 || d >= (1 << 24)) {
            rc = rl_errf(err, RL_E_FORMAT, "%s: key '%.64s': expected an integer id in [0, %d)",
                         label, tok, 1 << 24);
            goto fail;
        }
        spec->tokens[i] = strdup(tok);
        spec->ids[i] = (int)d;
        if (!spec->tokens[i]) goto nomem;
    }
    rl_json_free(&j);
    return RL_OK;

nomem:
    rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", label);
fail:
    rl_json_free(&j);
    return rc;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

rl_status rl_tokfiles_parse_merges(rl_bpe_spec *spec, const char *text, size_t len,
                                   const char *label, rl_err *err)
{
    size_t bad = 0;
    if (memchr(text, '\0', len))
        return rl_errf(err, RL_E_FORMAT, "%s: NUL byte in a text file", label);
    if (!utf8_valid((const unsigned char *)text, len, &bad))
        return rl_errf(err, RL_E_FORMAT, "%s: not valid UTF-8 (byte %zu)", label, bad);
    // read().strip().split("\n")
    size_t b = 0, e = len;
    while (b < e && (is_space(text[b]) || text[b] == '\n')) b++;
    while (e > b && (is_space(text[e - 1]) || text[e - 1] == '\n')) e--;
    if (e - b < 8 || memcmp(text + b, "#version", 8) != 0)
        return rl_errf(err, RL_E_FORMAT, "%s: line 1: expected '#version: 0.2'", label);

    size_t lines = 0;
    for (size_t i = b; i < e; i++) lines += text[i] == '\n';
    if (lines > RL_BPE_MAX_MERGES) lines = RL_BPE_MAX_MERGES;
    spec->merges = calloc(2 * lines + 1, sizeof *spec->merges);
    if (!spec->merges) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", label);

    const char *p = memchr(text + b, '\n', e - b);
    int line = 1;
    while (p && p < text + e && spec->n_merges < (int)lines) {
        const char *s = p + 1;
        const char *nl = memchr(s, '\n', (size_t)(text + e - s));
        const char *end = nl ? nl : text + e;
        line++;
        // split() into fields
        const char *f[3];
        size_t fl[3];
        int nf = 0;
        for (const char *q = s; q < end;) {
            while (q < end && is_space(*q)) q++;
            if (q == end) break;
            const char *st = q;
            while (q < end && !is_space(*q)) q++;
            if (nf < 3) { f[nf] = st; fl[nf] = (size_t)(q - st); }
            nf++;
        }
        if (nf != 2)
            return rl_errf(err, RL_E_FORMAT, "%s: line %d: expected two symbols separated by a "
                           "space, found %d", label, line, nf);
        int r = spec->n_merges;
        spec->merges[2 * r] = strndup(f[0], fl[0]);
        spec->merges[2 * r + 1] = strndup(f[1], fl[1]);
        spec->n_merges++;
        if (!spec->merges[2 * r] || !spec->merges[2 * r + 1])
            return rl_errf(err, RL_E_NOMEM, "%s: out of memory", label);
        p = nl;
    }
    return RL_OK;
}

/* A special token given as "str" or {"content": "str", ...}; absent keeps *dst. */
static rl_status special(const rl_json *j, const char *key, char **dst, rl_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    if (!v || cJSON_IsNull(v)) return RL_OK;
    const char *s = NULL;
    if (cJSON_IsString(v)) {
        s = v->valuestring;
    } else if (cJSON_IsObject(v)) {
        rl_status rc = rl_json_str_req(j, v, "content", &s, err);
        if (rc) return rc;
    } else {
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected a string or an object with "
                       "\"content\"", j->label, key);
    }
    if (!s[0])
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': empty token", j->label, key);
    char *c = strdup(s);
    if (!c) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", j->label);
    free(*dst);
    *dst = c;
    return RL_OK;
}

/* Reads the optional JSON file dir/name: special tokens, and model_max_length when want_len. */
static rl_status read_specials(rl_bpe_spec *spec, const char *dir, const char *name, int want_len,
                               rl_err *err)
{
    char *path = join(dir, name);
    if (!path) return rl_errf(err, RL_E_NOMEM, "tokenizer: out of memory");
    rl_json j = {0};
    rl_status rc = RL_OK;
    if (access(path, F_OK) != 0) goto done;     // optional file
    rc = rl_json_load(&j, path, err);
    if (rc) goto done;
    if (!cJSON_IsObject(j.root)) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: expected an object at the top level", path);
        goto done;
    }
    if ((rc = special(&j, "bos_token", &spec->bos, err)) ||
        (rc = special(&j, "eos_token", &spec->eos, err)) ||
        (rc = special(&j, "unk_token", &spec->unk, err)) ||
        (rc = special(&j, "pad_token", &spec->pad, err)))
        goto done;
    if (want_len) {
        rc = rl_json_int(&j, NULL, "model_max_length", spec->max_length, &spec->max_length, err);
        if (rc) goto done;
        if (spec->max_length < 2 || spec->max_length > RL_BPE_MAX_LENGTH)
            rc = rl_errf(err, RL_E_FORMAT, "%s: key 'model_max_length': %d is outside [2, %d]",
                         path, spec->max_length, RL_BPE_MAX_LENGTH);
    }
done:
    rl_json_free(&j);
    free(path);
    return rc;
}

rl_status rl_tokfiles_read(rl_bpe_spec *spec, const char *dir, rl_err *err)
{
    rl_status rc;
    char *path = NULL, *text = NULL;
    size_t len = 0;
    *spec = (rl_bpe_spec){0};
    spec->max_length = 77;
    spec->bos = strdup("<|startoftext|>");
    spec->eos = strdup("<|endoftext|>");
    spec->unk = strdup("<|endoftext|>");
    spec->pad = strdup("<|endoftext|>");
    if (!spec->bos || !spec->eos || !spec->unk || !spec->pad) goto nomem;

    if (!(path = join(dir, "vocab.json"))) goto nomem;
    if ((rc = rl_file_read(path, MERGES_MAX_BYTES, "tokenizer", &text, &len, err))) goto fail;
    if ((rc = rl_tokfiles_parse_vocab(spec, text, len, path, err))) goto fail;
    free(text);
    free(path);
    text = NULL;
    if (!(path = join(dir, "merges.txt"))) goto nomem;
    if ((rc = rl_file_read(path, MERGES_MAX_BYTES, "tokenizer", &text, &len, err))) goto fail;
    if ((rc = rl_tokfiles_parse_merges(spec, text, len, path, err))) goto fail;
    if ((rc = read_specials(spec, dir, "tokenizer_config.json", 1, err))) goto fail;
    if ((rc = read_specials(spec, dir, "special_tokens_map.json", 0, err))) goto fail;
    free(text);
    free(path);
    return RL_OK;

nomem:
    rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", dir);
fail:
    free(text);
    free(path);
    rl_bpe_spec_free(spec);
    return rc;
}

rl_status rl_tokfiles_open(rl_bpe *bpe, const char *dir, rl_err *err)
{
    rl_bpe_spec spec;
    *bpe = (rl_bpe){0};
    rl_status rc = rl_tokfiles_read(&spec, dir, err);
    if (rc) return rc;
    rc = rl_bpe_init(bpe, &spec, err);
    if (rc) rl_err_prefix(err, "%s", dir);
    rl_bpe_spec_free(&spec);
    return rc;
}

// ---- writing --------------------------------------------------------------------------------

typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (n > cap - b->n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->failed = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string as Python's json.dumps(ensure_ascii=False) writes it. */
static void put_jstr(sbuf *b, const char *s)
{
    put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        switch (c) {
        case '"': puts_(b, "\\\""); break;
        case '\\': puts_(b, "\\\\"); break;
        case '\n': puts_(b, "\\n"); break;
        case '\r': puts_(b, "\\r"); break;
        case '\t': puts_(b, "\\t"); break;
        case '\b': puts_(b, "\\b"); break;
        case '\f': puts_(b, "\\f"); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                puts_(b, esc);
            } else {
                put(b, (const char *)&c, 1);
            }
        }
    }
    put(b, "\"", 1);
}

/* An AddedToken object at the given indent (the opening brace follows a key on its line). */
static void put_added(sbuf *b, const char *content, const char *ind, int special)
{
    puts_(b, "{\n");
    puts_(b, ind); puts_(b, "  \"content\": "); put_jstr(b, content); puts_(b, ",\n");
    puts_(b, ind); puts_(b, "  \"lstrip\": false,\n");
    puts_(b, ind); puts_(b, "  \"normalized\": true,\n");
    puts_(b, ind); puts_(b, "  \"rstrip\": false,\n");
    puts_(b, ind); puts_(b, special ? "  \"single_word\": false,\n" : "  \"single_word\": false\n");
    if (special) { puts_(b, ind); puts_(b, "  \"special\": true\n"); }
    puts_(b, ind); puts_(b, "}");
}

static const rl_bpe_spec *g_sort_spec;   // qsort has no context argument; writing is serial

static int cmp_tok(const void *a, const void *b)
{
    return strcmp(g_sort_spec->tokens[*(const int *)a], g_sort_spec->tokens[*(const int *)b]);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int find_id(const rl_bpe_spec *spec, const char *tok)
{
    for (int i = 0; i < spec->n_vocab; i++)
        if (strcmp(spec->tokens[i], tok) == 0) return spec->ids[i];
    return -1;
}

static rl_status write_one(const char *dir, const char *name, sbuf *b, rl_err *err)
{
    if (b->failed) return rl_errf(err, RL_E_NOMEM, "%s/%s: out of memory", dir, name);
    char *path = join(dir, name);
    if (!path) return rl_errf(err, RL_E_NOMEM, "%s/%s: out of memory", dir, name);
    rl_status rc = rl_atomic_write_file(path, b->p, b->n, err);
    free(path);
    return rc;
}

rl_status rl_tokfiles_write(const char *dir, const rl_bpe_spec *spec, rl_err *err)
{
    rl_status rc = RL_OK;
    sbuf b = {0};
    int *order = NULL;
    const char *bos = spec->bos ? spec->bos : "<|startoftext|>";
    const char *eos = spec->eos ? spec->eos : "<|endoftext|>";
    const char *unk = spec->unk ? spec->unk : "<|endoftext|>";
    const char *pad = spec->pad ? spec->pad : "<|endoftext|>";
    const char *sp[4] = {bos, eos, unk, pad};
    int sp_id[4];
    for (int i = 0; i < 4; i++) {
        sp_id[i] = find_id(spec, sp[i]);
        if (sp_id[i] < 0)
            return rl_errf(err, RL_E_PARAM, "%s: special token '%s' is not in the vocab", dir,
                           sp[i]);
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return rl_errf(err, RL_E_IO, "%s: cannot create folder: %s", dir, strerror(errno));

    // vocab.json: keys sorted in code-point order (= UTF-8 byte order), indent 2
    order = malloc(((size_t)spec->n_vocab + 1) * sizeof *order);
    if (!order) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", dir);
    for (int i = 0; i < spec->n_vocab; i++) order[i] = i;
    g_sort_spec = spec;
    qsort(order, (size_t)spec->n_vocab, sizeof *order, cmp_tok);
    puts_(&b, "{\n");
    for (int k = 0; k < spec->n_vocab; k++) {
        char num[32];
        puts_(&b, "  ");
        put_jstr(&b, spec->tokens[order[k]]);
        snprintf(num, sizeof num, ": %d%s\n", spec->ids[order[k]], k + 1 < spec->n_vocab ? "," : "");
        puts_(&b, num);
    }
    puts_(&b, "}\n");
    if ((rc = write_one(dir, "vocab.json", &b, err))) goto done;

    b.n = 0;
    puts_(&b, "#version: 0.2\n");
    for (int r = 0; r < spec->n_merges; r++) {
        puts_(&b, spec->merges[2 * r]);
        puts_(&b, " ");
        puts_(&b, spec->merges[2 * r + 1]);
        puts_(&b, "\n");
    }
    if ((rc = write_one(dir, "merges.txt", &b, err))) goto done;

    b.n = 0;
    puts_(&b, "{\n  \"bos_token\": ");
    put_added(&b, bos, "  ", 0);
    puts_(&b, ",\n  \"eos_token\": ");
    put_added(&b, eos, "  ", 0);
    puts_(&b, ",\n  \"pad_token\": ");
    if (strcmp(pad, eos) == 0) put_added(&b, pad, "  ", 0); else put_jstr(&b, pad);
    puts_(&b, ",\n  \"unk_token\": ");
    put_added(&b, unk, "  ", 0);
    puts_(&b, "\n}\n");
    if ((rc = write_one(dir, "special_tokens_map.json", &b, err))) goto done;

    // added_tokens_decoder: bos, eos and pad, each id once, in id order
    int ids[3] = {sp_id[0], sp_id[1], sp_id[3]}, n_ids = 0, uniq[3];
    qsort(ids, 3, sizeof *ids, cmp_int);
    for (int i = 0; i < 3; i++)
        if (!n_ids || uniq[n_ids - 1] != ids[i]) uniq[n_ids++] = ids[i];
    b.n = 0;
    puts_(&b, "{\n  \"add_prefix_space\": false,\n  \"added_tokens_decoder\": {\n");
    for (int i = 0; i < n_ids; i++) {
        char key[32];
        snprintf(key, sizeof key, "    \"%d\": ", uniq[i]);
        puts_(&b, key);
        const char *content = uniq[i] == sp_id[0] ? bos : uniq[i] == sp_id[1] ? eos : pad;
        put_added(&b, content, "    ", 1);
        puts_(&b, i + 1 < n_ids ? ",\n" : "\n");
    }
    char num[64];
    snprintf(num, sizeof num, "  \"model_max_length\": %d,\n", spec->max_length);
    puts_(&b, "  },\n  \"bos_token\": "); put_jstr(&b, bos);
    puts_(&b, ",\n  \"clean_up_tokenization_spaces\": true,\n  \"do_lower_case\": true,\n");
    puts_(&b, "  \"eos_token\": "); put_jstr(&b, eos);
    puts_(&b, ",\n  \"errors\": \"replace\",\n");
    puts_(&b, num);
    puts_(&b, "  \"pad_token\": "); put_jstr(&b, pad);
    puts_(&b, ",\n  \"tokenizer_class\": \"CLIPTokenizer\",\n  \"unk_token\": "); put_jstr(&b, unk);
    puts_(&b, "\n}\n");
    rc = write_one(dir, "tokenizer_config.json", &b, err);

done:
    free(order);
    free(b.p);
    return rc;
}
