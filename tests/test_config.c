/* tests/test_config.c - io/json's typed getters on their own: defaults for absent and null keys,
 * required keys, every wrong type named with file, key and what was expected, integer range and
 * integrality, lists with scalar broadcast and length checks, nested objects, and the loader's
 * file errors (missing, a folder, a NUL byte, malformed text). The config parsers above it
 * (io/config_*.c) are tested through real and tiny configs in test_configs_real and
 * test_diffusers. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json.h"
#include "tests/harness.h"

static const char doc[] =
    "{\"i\": 7, \"neg\": -3, \"f\": 0.5, \"big\": 3e10, \"frac\": 2.5, \"s\": \"silu\","
    " \"b\": true, \"nul\": null, \"l\": [1, 2, 3], \"one\": 8, \"sl\": [\"a\", \"b\"],"
    " \"mixed\": [1, \"x\"], \"obj\": {\"k\": 4}, \"e\": 1e-5}";

static int parse(rl_test *t, rl_json *j)
{
    rl_err e = { 0 };
    return rl_test_check(t, rl_json_parse(j, doc, strlen(doc), "cfg.json", &e) == RL_OK,
                         "parse: %s", e.code ? e.msg : "ok");
}

// the message names the file, the key and what was expected
static void check_msg(rl_test *t, const rl_err *e, rl_status want, const char *key,
                      const char *expected)
{
    char k[64];
    snprintf(k, sizeof k, "'%s'", key);
    rl_test_check(t, e->code == want && strstr(e->msg, "cfg.json") && strstr(e->msg, k) &&
                  strstr(e->msg, expected), "%s -> %s: %s", key, rl_status_str(e->code), e->msg);
}

static void test_scalars(rl_test *t, const char *arg)
{
    (void)arg;
    rl_json j;
    if (!parse(t, &j)) return;
    rl_err e = { 0 };
    int i = 0, b = 0;
    double f = 0;
    const char *s = NULL;
    RL_CHECK(t, rl_json_int(&j, NULL, "i", 1, &i, &e) == RL_OK && i == 7);
    RL_CHECK(t, rl_json_int(&j, NULL, "neg", 1, &i, &e) == RL_OK && i == -3);
    RL_CHECK(t, rl_json_int(&j, NULL, "absent", 42, &i, &e) == RL_OK && i == 42);
    RL_CHECK(t, rl_json_int(&j, NULL, "nul", 43, &i, &e) == RL_OK && i == 43);   // null: default
    RL_CHECK(t, rl_json_float(&j, NULL, "f", 1, &f, &e) == RL_OK && f == 0.5);
    RL_CHECK(t, rl_json_float(&j, NULL, "i", 1, &f, &e) == RL_OK && f == 7.0);   // int is a number
    RL_CHECK(t, rl_json_float(&j, NULL, "e", 1, &f, &e) == RL_OK && f == 1e-5);
    RL_CHECK(t, rl_json_float(&j, NULL, "absent", 0.25, &f, &e) == RL_OK && f == 0.25);
    RL_CHECK(t, rl_json_bool(&j, NULL, "b", 0, &b, &e) == RL_OK && b == 1);
    RL_CHECK(t, rl_json_bool(&j, NULL, "absent", 1, &b, &e) == RL_OK && b == 1);
    RL_CHECK(t, rl_json_str(&j, NULL, "s", "x", &s, &e) == RL_OK && !strcmp(s, "silu"));
    RL_CHECK(t, rl_json_str(&j, NULL, "absent", "gelu", &s, &e) == RL_OK && !strcmp(s, "gelu"));
    RL_CHECK(t, rl_json_has(&j, NULL, "i") && !rl_json_has(&j, NULL, "nul") &&
                !rl_json_has(&j, NULL, "absent"));

    // wrong types, each named
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_int(&j, NULL, "s", 1, &i, &e) == RL_E_FORMAT);
    check_msg(t, &e, RL_E_FORMAT, "s", "integer");
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_int(&j, NULL, "frac", 1, &i, &e) == RL_E_FORMAT);   // 2.5 is no int
    check_msg(t, &e, RL_E_FORMAT, "frac", "integer");
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_int(&j, NULL, "big", 1, &i, &e) == RL_E_FORMAT);    // past INT_MAX
    check_msg(t, &e, RL_E_FORMAT, "big", "integer");
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_float(&j, NULL, "s", 1, &f, &e) == RL_E_FORMAT);
    check_msg(t, &e, RL_E_FORMAT, "s", "number");
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_bool(&j, NULL, "i", 0, &b, &e) == RL_E_FORMAT);
    check_msg(t, &e, RL_E_FORMAT, "i", "bool");
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_str(&j, NULL, "l", "x", &s, &e) == RL_E_FORMAT);
    check_msg(t, &e, RL_E_FORMAT, "l", "string");

    // required keys
    RL_CHECK(t, rl_json_int_req(&j, NULL, "i", &i, &e) == RL_OK && i == 7);
    RL_CHECK(t, rl_json_str_req(&j, NULL, "s", &s, &e) == RL_OK && !strcmp(s, "silu"));
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_int_req(&j, NULL, "absent", &i, &e) == RL_E_MISSING);
    check_msg(t, &e, RL_E_MISSING, "absent", "");
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_str_req(&j, NULL, "nul", &s, &e) == RL_E_MISSING);   // null is absent
    check_msg(t, &e, RL_E_MISSING, "nul", "");

    // nested objects: the getters take the object; a non-object is NULL, no error
    const cJSON *o = rl_json_obj(&j, NULL, "obj");
    RL_CHECK(t, o && rl_json_int(&j, o, "k", 0, &i, &e) == RL_OK && i == 4);
    RL_CHECK(t, rl_json_obj(&j, NULL, "i") == NULL && rl_json_obj(&j, NULL, "absent") == NULL);
    rl_json_free(&j);
    rl_json_free(&j);   // idempotent
    RL_CHECK(t, j.root == NULL);
}

static void test_lists(rl_test *t, const char *arg)
{
    (void)arg;
    rl_json j;
    if (!parse(t, &j)) return;
    rl_err e = { 0 };
    int v[8] = { 0 }, n = 0;
    const char *sv[4] = { 0 };
    RL_CHECK(t, rl_json_int_list(&j, NULL, "l", v, 8, &n, -1, 0, &e) == RL_OK && n == 3 &&
                v[0] == 1 && v[2] == 3);
    RL_CHECK(t, rl_json_int_list(&j, NULL, "l", v, 8, &n, 3, 0, &e) == RL_OK && n == 3);
    // a scalar where a list may be (attention_head_dim: 8): broadcast to want_n
    RL_CHECK(t, rl_json_int_list(&j, NULL, "one", v, 8, &n, 4, 1, &e) == RL_OK && n == 4 &&
                v[0] == 8 && v[3] == 8);
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_int_list(&j, NULL, "one", v, 8, &n, 4, 0, &e) == RL_E_FORMAT);
    check_msg(t, &e, RL_E_FORMAT, "one", "list");
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_int_list(&j, NULL, "l", v, 8, &n, 4, 0, &e) != RL_OK);   // wrong length
    check_msg(t, &e, e.code, "l", "4");
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_int_list(&j, NULL, "l", v, 2, &n, -1, 0, &e) != RL_OK);  // over capacity
    RL_CHECK(t, e.code != RL_OK && strstr(e.msg, "'l'"));
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_int_list(&j, NULL, "mixed", v, 8, &n, -1, 0, &e) == RL_E_FORMAT);
    check_msg(t, &e, RL_E_FORMAT, "mixed", "integer");
    RL_CHECK(t, rl_json_str_list(&j, NULL, "sl", sv, 4, &n, &e) == RL_OK && n == 2 &&
                !strcmp(sv[1], "b"));
    e = (rl_err){ 0 };
    RL_CHECK(t, rl_json_str_list(&j, NULL, "l", sv, 4, &n, &e) == RL_E_FORMAT);
    check_msg(t, &e, RL_E_FORMAT, "l", "string");
    rl_json_free(&j);
}

static void test_load(rl_test *t, const char *arg)
{
    (void)arg;
    rl_json j;
    rl_err e = { 0 };
    const char *missing = rl_test_tmp_path(t, "nope.json");
    rl_test_check(t, rl_json_load(&j, missing, &e) == RL_E_MISSING && strstr(e.msg, "nope.json") &&
                  j.root == NULL, "missing file: %s", e.msg);
    const char *dir = rl_test_tmp_path(t, "adir.json");
    mkdir(dir, 0777);
    e = (rl_err){ 0 };
    rl_test_check(t, rl_json_load(&j, dir, &e) == RL_E_IO && strstr(e.msg, "adir.json"),
                  "a folder: %s", e.msg);
    const char *bad = rl_test_tmp_path(t, "bad.json");
    FILE *f = fopen(bad, "wb");
    if (!RL_CHECK(t, f != NULL)) return;
    fputs("{\"a\": [1, 2,}", f);
    fclose(f);
    e = (rl_err){ 0 };
    rl_test_check(t, rl_json_load(&j, bad, &e) == RL_E_FORMAT && strstr(e.msg, "bad.json"),
                  "malformed: %s", e.msg);
    static const char nul[] = "{\"a\": 1}\0{\"b\": 2}";
    e = (rl_err){ 0 };
    rl_test_check(t, rl_json_parse(&j, nul, sizeof nul - 1, "nul.json", &e) == RL_E_FORMAT &&
                  strstr(e.msg, "nul.json"), "NUL byte: %s", e.msg);
    // a document that is not an object: parsed, but every lookup says what the top level is
    e = (rl_err){ 0 };
    if (!RL_CHECK(t, rl_json_parse(&j, "[1, 2]", 6, "arr.json", &e) == RL_OK)) return;
    int i = 0;
    rl_test_check(t, rl_json_int(&j, NULL, "k", 5, &i, &e) == RL_E_FORMAT &&
                  strstr(e.msg, "arr.json") && strstr(e.msg, "object at the top level"),
                  "array document: %s", e.msg);
    rl_json_free(&j);
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "scalars", test_scalars, NULL },
        { "lists", test_lists, NULL },
        { "load", test_load, NULL },
        { 0 },
    });
}
