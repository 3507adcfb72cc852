/* io/json.c - cJSON behind typed getters (see io/json.h).
 *
 * Config files are untrusted input: every getter checks the JSON type of what it finds and
 * reports "<file>: key 'path.to.key': expected <what>, found <what>". The key path is
 * recovered by searching the document for the object the caller passed (cJSON keeps no
 * parent pointers); documents are small, and this only runs on the error path. */
#include "io/json.h"
#include "io/file.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define JSON_MAX_BYTES ((size_t)64 << 20)   // 64 MiB: far above any config or vocab file

// ---- messages -----------------------------------------------------------------------

/* "a string", "an integer" ... for the JSON value v (what was found). */
static const char *found_str(const cJSON *v, char *buf, size_t cap)
{
    if (!v) return "nothing";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "a list";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d)) return "a number out of range";
        if (d == floor(d) && fabs(d) < 1e18) return "an integer";
        snprintf(buf, cap, "%.17g", d);     // show the value: "expected an integer, found 1.5"
        return buf;
    }
    return "an unknown value";
}

/* Appends the path of target below node to buf (dotted keys, [i] for list entries).
 * Returns 1 when found. Depth is bounded by cJSON's nesting limit. */
static int find_path(const cJSON *node, const cJSON *target, char *buf, size_t cap)
{
    if (node == target) return 1;
    size_t len = strlen(buf);
    int i = 0;
    for (const cJSON *c = node->child; c; c = c->next, i++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c)) continue;
        if (cJSON_IsArray(node))
            snprintf(buf + len, cap - len, "[%d]", i);
        else
            snprintf(buf + len, cap - len, "%s%s", len ? "." : "", c->string ? c->string : "?");
        if (find_path(c, target, buf, cap)) return 1;
        buf[len] = '\0';
    }
    return 0;
}

/* The full key path of key inside obj, for messages. */
static const char *key_path(const rl_json *j, const cJSON *obj, const char *key, char *buf,
                            size_t cap)
{
    buf[0] = '\0';
    if (obj && j->root && obj != j->root && find_path(j->root, obj, buf, cap)) {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, ".%s", key);
    } else {
        snprintf(buf, cap, "%s", key);
    }
    return buf;
}

static rl_status type_err(const rl_json *j, const cJSON *obj, const char *key,
                          const char *expected, const cJSON *v, rl_err *err)
{
    char path[256], num[32];
    return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected %s, found %s", j->label,
                   key_path(j, obj, key, path, sizeof path), expected,
                   found_str(v, num, sizeof num));
}

static rl_status missing_err(const rl_json *j, const cJSON *obj, const char *key,
                             const char *expected, rl_err *err)
{
    char path[256];
    return rl_errf(err, RL_E_MISSING, "%s: missing required key '%s' (expected %s)", j->label,
                   key_path(j, obj, key, path, sizeof path), expected);
}

/* The container to look in (NULL = root); RL_E_FORMAT when it is not an object. */
static rl_status container(const rl_json *j, const cJSON *obj, const cJSON **out, rl_err *err)
{
    const cJSON *o = obj ? obj : j->root;
    if (!o) return rl_errf(err, RL_E_INTERNAL, "%s: no JSON document loaded", j->label);
    if (!cJSON_IsObject(o)) {
        char num[32];
        if (o == j->root)
            return rl_errf(err, RL_E_FORMAT, "%s: expected an object at the top level, found %s",
                           j->label, found_str(o, num, sizeof num));
        return rl_errf(err, RL_E_FORMAT, "%s: expected an object, found %s", j->label,
                       found_str(o, num, sizeof num));
    }
    *out = o;
    return RL_OK;
}

/* Looks key up (case-sensitively: cJSON_GetObjectItem ignores case). *v is NULL when the key
 * is absent or null. */
static rl_status lookup(const rl_json *j, const cJSON *obj, const char *key, const cJSON **v,
                        rl_err *err)
{
    const cJSON *o = NULL;
    rl_status rc = container(j, obj, &o, err);
    if (rc) return rc;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    *v = (it && !cJSON_IsNull(it)) ? it : NULL;
    return RL_OK;
}

/* Converts a JSON number to int: integral and within int range. */
static int as_int(const cJSON *v, int *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < (double)INT_MIN || d > (double)INT_MAX) return 0;
    *out = (int)d;
    return 1;
}

static rl_status int_err(const rl_json *j, const cJSON *obj, const char *key, const cJSON *v,
                         rl_err *err)
{
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble)) {
        char path[256];
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': integer %.17g is out of range [%d, %d]",
                       j->label, key_path(j, obj, key, path, sizeof path), v->valuedouble,
                       INT_MIN, INT_MAX);
    }
    return type_err(j, obj, key, "an integer", v, err);
}

// ---- documents ----------------------------------------------------------------------

rl_status rl_json_parse(rl_json *j, const char *text, size_t len, const char *label, rl_err *err)
{
    rl_status rc;
    char *buf = NULL;
    *j = (rl_json){ 0 };
    j->label = strdup(label ? label : "<json>");
    if (!j->label) return rl_errf(err, RL_E_NOMEM, "json: out of memory");

    if (len > JSON_MAX_BYTES) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: %zu bytes exceeds the %zu-byte limit for JSON files",
                     j->label, len, JSON_MAX_BYTES);
        goto fail;
    }
    // cJSON reads strings up to a NUL; an embedded NUL would silently truncate the document
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) {
        rc = rl_errf(err, RL_E_FORMAT, "%s: NUL byte at offset %zu in JSON text", j->label,
                     (size_t)(nul - text));
        goto fail;
    }
    buf = malloc(len + 1);
    if (!buf) {
        rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory for %zu bytes of JSON", j->label, len);
        goto fail;
    }
    if (len) memcpy(buf, text, len);
    buf[len] = '\0';

    const char *end = NULL;
    j->root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 0);
    if (!j->root) {
        // report line and column of where the parser stopped
        size_t off = (end && end >= buf && end <= buf + len) ? (size_t)(end - buf) : len;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (buf[i] == '\n') { line++; col = 1; } else col++;
        }
        rc = rl_errf(err, RL_E_FORMAT, "%s: invalid JSON at line %d, column %d%s", j->label,
                     line, col, len == 0 ? " (empty file)" : "");
        goto fail;
    }
    // trailing bytes after the value (only whitespace allowed)
    for (const char *p = end; p && p < buf + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = rl_errf(err, RL_E_FORMAT, "%s: unexpected data after the JSON value at offset %zu",
                         j->label, (size_t)(p - buf));
            goto fail;
        }
    }
    free(buf);
    return RL_OK;

fail:
    free(buf);
    rl_json_free(j);
    return rc;
}

rl_status rl_json_load(rl_json *j, const char *path, rl_err *err)
{
    char *text;
    size_t len;
    *j = (rl_json){ 0 };
    rl_status rc = rl_file_read(path, JSON_MAX_BYTES, "JSON", &text, &len, err);
    if (rc) return rc;
    rc = rl_json_parse(j, text, len, path, err);
    free(text);
    return rc;
}

void rl_json_free(rl_json *j)
{
    if (!j) return;
    cJSON_Delete(j->root);
    free(j->label);
    j->root = NULL;
    j->label = NULL;
}

// ---- scalar getters -------------------------------------------------------------------

rl_status rl_json_int(const rl_json *j, const cJSON *obj, const char *key, int def, int *out,
                      rl_err *err)
{
    const cJSON *v;
    rl_status rc = lookup(j, obj, key, &v, err);
    if (rc) return rc;
    if (!v) { *out = def; return RL_OK; }
    if (!as_int(v, out)) return int_err(j, obj, key, v, err);
    return RL_OK;
}

rl_status rl_json_int_req(const rl_json *j, const cJSON *obj, const char *key, int *out, rl_err *err)
{
    const cJSON *v;
    rl_status rc = lookup(j, obj, key, &v, err);
    if (rc) return rc;
    if (!v) return missing_err(j, obj, key, "an integer", err);
    if (!as_int(v, out)) return int_err(j, obj, key, v, err);
    return RL_OK;
}

rl_status rl_json_float(const rl_json *j, const cJSON *obj, const char *key, double def,
                        double *out, rl_err *err)
{
    const cJSON *v;
    rl_status rc = lookup(j, obj, key, &v, err);
    if (rc) return rc;
    if (!v) { *out = def; return RL_OK; }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return type_err(j, obj, key, "a number", v, err);
    *out = v->valuedouble;
    return RL_OK;
}

rl_status rl_json_bool(const rl_json *j, const cJSON *obj, const char *key, int def, int *out,
                       rl_err *err)
{
    const cJSON *v;
    rl_status rc = lookup(j, obj, key, &v, err);
    if (rc) return rc;
    if (!v) { *out = def; return RL_OK; }
    if (!cJSON_IsBool(v)) return type_err(j, obj, key, "a boolean", v, err);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return RL_OK;
}

rl_status rl_json_str(const rl_json *j, const cJSON *obj, const char *key, const char *def,
                      const char **out, rl_err *err)
{
    const cJSON *v;
    rl_status rc = lookup(j, obj, key, &v, err);
    if (rc) return rc;
    if (!v) { *out = def; return RL_OK; }
    if (!cJSON_IsString(v) || !v->valuestring) return type_err(j, obj, key, "a string", v, err);
    *out = v->valuestring;
    return RL_OK;
}

rl_status rl_json_str_req(const rl_json *j, const cJSON *obj, const char *key, const char **out,
                          rl_err *err)
{
    const cJSON *v;
    rl_status rc = lookup(j, obj, key, &v, err);
    if (rc) return rc;
    if (!v) return missing_err(j, obj, key, "a string", err);
    if (!cJSON_IsString(v) || !v->valuestring) return type_err(j, obj, key, "a string", v, err);
    *out = v->valuestring;
    return RL_OK;
}

// ---- lists ------------------------------------------------------------------------------

/* Lists have no default: an absent or null key is RL_E_MISSING (check rl_json_has first for
 * optional lists). */
rl_status rl_json_int_list(const rl_json *j, const cJSON *obj, const char *key, int *out, int max,
                           int *n, int want_n, int scalar_ok, rl_err *err)
{
    const cJSON *v;
    char path[256];
    rl_status rc = lookup(j, obj, key, &v, err);
    if (rc) return rc;
    if (!v) return missing_err(j, obj, key, "a list of integers", err);
    if (max < 0) max = 0;

    if (!cJSON_IsArray(v)) {
        if (!scalar_ok || !cJSON_IsNumber(v))
            return type_err(j, obj, key, scalar_ok ? "an integer or a list of integers"
                                                   : "a list of integers", v, err);
        int x;
        if (!as_int(v, &x)) return int_err(j, obj, key, v, err);
        int cnt = want_n >= 0 ? want_n : 1;      // broadcast `8` to want_n entries
        if (cnt > max)
            return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected at most %d entries, found %d",
                           j->label, key_path(j, obj, key, path, sizeof path), max, cnt);
        for (int i = 0; i < cnt; i++) out[i] = x;
        *n = cnt;
        return RL_OK;
    }

    int cnt = cJSON_GetArraySize(v);
    if (want_n >= 0 && cnt != want_n)
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected a list of %d integers, found %d",
                       j->label, key_path(j, obj, key, path, sizeof path), want_n, cnt);
    if (cnt > max)
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected at most %d entries, found %d",
                       j->label, key_path(j, obj, key, path, sizeof path), max, cnt);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!as_int(e, &out[i])) {
            char num[32], what[64];
            snprintf(what, sizeof what, "%s",
                     cJSON_IsNumber(e) && isfinite(e->valuedouble) &&
                             e->valuedouble == floor(e->valuedouble)
                         ? "an integer out of int range" : found_str(e, num, sizeof num));
            return rl_errf(err, RL_E_FORMAT, "%s: key '%s': entry %d: expected an integer, found %s",
                           j->label, key_path(j, obj, key, path, sizeof path), i, what);
        }
    }
    *n = cnt;
    return RL_OK;
}

rl_status rl_json_str_list(const rl_json *j, const cJSON *obj, const char *key, const char **out,
                           int max, int *n, rl_err *err)
{
    const cJSON *v;
    char path[256];
    rl_status rc = lookup(j, obj, key, &v, err);
    if (rc) return rc;
    if (!v) return missing_err(j, obj, key, "a list of strings", err);
    if (!cJSON_IsArray(v)) return type_err(j, obj, key, "a list of strings", v, err);
    int cnt = cJSON_GetArraySize(v);
    if (cnt > max)
        return rl_errf(err, RL_E_FORMAT, "%s: key '%s': expected at most %d entries, found %d",
                       j->label, key_path(j, obj, key, path, sizeof path), max < 0 ? 0 : max, cnt);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) || !e->valuestring) {
            char num[32];
            return rl_errf(err, RL_E_FORMAT, "%s: key '%s': entry %d: expected a string, found %s",
                           j->label, key_path(j, obj, key, path, sizeof path), i,
                           found_str(e, num, sizeof num));
        }
        out[i] = e->valuestring;
    }
    *n = cnt;
    return RL_OK;
}

// ---- structure ----------------------------------------------------------------------------

const cJSON *rl_json_obj(const rl_json *j, const cJSON *obj, const char *key)
{
    const cJSON *o = obj ? obj : j->root;
    if (!cJSON_IsObject(o)) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsObject(v) ? v : NULL;
}

int rl_json_has(const rl_json *j, const cJSON *obj, const char *key)
{
    const cJSON *o = obj ? obj : j->root;
    if (!cJSON_IsObject(o)) return 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v);
}
