/* tests/test_safetensors.c - the safetensors reader against an independent Python writer,
 * writer round trips, atomic writes, and hostile files: each must be refused with its own
 * message (and, under the sanitizer build, without a sanitizer report). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/weights.h"
#include "io/safetensors.h"
#include "io/weights_io.h"
#include "tests/harness.h"

// ---- helpers ----------------------------------------------------------------------------

/* Writes a file made of the 8-byte length of hdr (or hlen_override when >= 0), hdr, and
 * n_data bytes of data (0x3f pattern). */
static const char *write_raw(rl_test *t, const char *name, const char *hdr, long long hlen_override,
                             size_t n_data)
{
    const char *path = rl_test_tmp_path(t, name);
    FILE *f = fopen(path, "wb");
    if (!f) { rl_test_fail(t, "cannot create %s", path); return path; }
    unsigned long long hlen = hlen_override >= 0 ? (unsigned long long)hlen_override : strlen(hdr);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    for (size_t i = 0; i < n_data; i++) fputc(0x3f, f);
    fclose(f);
    return path;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Opens path, expects code and a message containing want. */
static void expect_refused(rl_test *t, const char *path, rl_status code, const char *want)
{
    rl_st_file f;
    rl_err err = { 0 };
    rl_status rc = rl_st_open(&f, path, &err);
    rl_test_check(t, rc == code && strstr(err.msg, want) != NULL,
                  "refused with %s: got %s '%s' (want '%s')", rl_status_str(code),
                  rl_status_str(rc), err.msg, want);
    if (rc == RL_OK) rl_st_close(&f);
}

// ---- reading a file written by tools/fixtures/st.py ------------------------------------

static void test_read_python(rl_test *t, const char *arg)
{
    rl_st_file f;
    rl_err err = { 0 };
    const char *path = rl_test_fixture_path(t, "io/st_py.safetensors");
    if (!rl_test_check(t, rl_st_open(&f, path, &err) == RL_OK, "open: %s", err.msg)) return;

    RL_CHECK(t, f.n_tensors == 12);
    const char *note = rl_st_meta(&f, "note");
    rl_test_check(t, note && !strcmp(note, "h\xc3\xa9llo \xe2\x9c\x93"), "utf-8 metadata: %s",
                  note ? note : "(null)");
    const rl_st_tensor *a = rl_st_find(&f, "a.f32");
    RL_CHECK(t, a && a->dtype == RL_F32 && a->ndim == 2 && a->shape[0] == 3 && a->shape[1] == 5);
    const rl_st_tensor *s = rl_st_find(&f, "f.scalar");
    RL_CHECK(t, s && s->ndim == 0 && s->nbytes == 4);
    const rl_st_tensor *e = rl_st_find(&f, "g.empty");
    RL_CHECK(t, e && e->ndim == 2 && e->shape[0] == 0 && e->nbytes == 0);
    RL_CHECK(t, rl_st_find(&f, "missing") == NULL);

    // every conversion is exact: compare with the float32 values torch computed
    static const char *pairs[][2] = { { "b.f16", "b.f16_want" }, { "c.bf16", "c.bf16_want" },
                                      { "d.f64", "d.f64_want" },
                                      { "h.f16special", "h.f16special_want" } };
    for (int i = 0; i < 4; i++) {
        const rl_st_tensor *x = rl_st_find(&f, pairs[i][0]), *w = rl_st_find(&f, pairs[i][1]);
        if (!RL_CHECK(t, x && w)) continue;
        size_t n = w->nbytes / 4;
        float *got = rl_test_floats(t, n), *want = rl_test_floats(t, n);
        rl_convert_to_f32(got, x->data, x->dtype, n);
        memcpy(want, w->data, n * 4);
        rl_check_bitwise(t, pairs[i][0], got, want, n);
    }
    const rl_st_tensor *ii = rl_st_find(&f, "e.i64");
    if (RL_CHECK(t, ii && ii->dtype == RL_I64 && ii->shape[0] == 7)) {
        float v[7];
        rl_convert_to_f32(v, ii->data, RL_I64, 7);
        RL_CHECK(t, v[0] == -3.0f && v[6] == 3.0f);
    }
    rl_st_close(&f);
    rl_st_close(&f);   // idempotent
    (void)arg;
}

// ---- writer round trip and F16 rounding ------------------------------------------------

static void test_roundtrip(rl_test *t, const char *arg)
{
    rl_st_writer w;
    rl_err err = { 0 };
    rl_st_writer_init(&w);
    float x[6] = { 1.0f, -2.5f, 3.14159265f, 1e-3f, 65519.0f, 70000.0f };
    int64_t sh[2] = { 2, 3 };
    RL_CHECK(t, rl_st_writer_add_f32(&w, "zeta", RL_F32, 2, sh, x, &err) == RL_OK);
    RL_CHECK(t, rl_st_writer_add_f32(&w, "alpha.half", RL_F16, 2, sh, x, &err) == RL_OK);
    RL_CHECK(t, rl_st_writer_add_f32(&w, "beta.bf16", RL_BF16, 2, sh, x, &err) == RL_OK);
    RL_CHECK(t, rl_st_writer_add_f32(&w, "zeta", RL_F32, 2, sh, x, &err) == RL_E_PARAM);
    RL_CHECK(t, rl_st_writer_meta(&w, "k", "v", &err) == RL_OK);
    const char *path = rl_test_tmp_path(t, "rt.safetensors");
    rl_test_check(t, rl_st_writer_save(&w, path, &err) == RL_OK, "save: %s", err.msg);
    rl_st_writer_free(&w);
    RL_CHECK(t, !file_exists(rl_test_tmp_path(t, "rt.safetensors.partial")));

    rl_st_file f;
    if (!rl_test_check(t, rl_st_open(&f, path, &err) == RL_OK, "reopen: %s", err.msg)) return;
    // sorted by name in the data buffer, as the Python library writes
    RL_CHECK(t, f.n_tensors == 3 && !strcmp(f.tensors[0].name, "alpha.half") &&
                !strcmp(f.tensors[2].name, "zeta"));
    RL_CHECK(t, !strcmp(rl_st_meta(&f, "k"), "v"));
    // data starts 8-aligned, so F32 tensors can be used in place
    RL_CHECK(t, ((const unsigned char *)f.tensors[0].data - (const unsigned char *)f.map) % 8 == 0);
    float got[6];
    rl_convert_to_f32(got, rl_st_find(&f, "zeta")->data, RL_F32, 6);
    rl_check_bitwise(t, "f32 round trip", got, x, 6);
    rl_convert_to_f32(got, rl_st_find(&f, "alpha.half")->data, RL_F16, 6);
    // F16: nearest-even rounding; 65519 rounds down to 65504, 70000 overflows to inf
    RL_CHECK(t, got[0] == 1.0f && got[1] == -2.5f && fabsf(got[2] - 3.140625f) == 0.0f);
    RL_CHECK(t, got[4] == 65504.0f && isinf(got[5]));
    rl_convert_to_f32(got, rl_st_find(&f, "beta.bf16")->data, RL_BF16, 6);
    RL_CHECK(t, got[0] == 1.0f && got[1] == -2.5f && got[2] == 3.140625f);
    rl_st_close(&f);
    (void)arg;
}

static void test_atomic_unwritable(rl_test *t, const char *arg)
{
    rl_st_writer w;
    rl_err err = { 0 };
    rl_st_writer_init(&w);
    float x = 1.0f;
    int64_t one = 1;
    rl_st_writer_add_f32(&w, "x", RL_F32, 1, &one, &x, &err);
    const char *path = "/nonexistent-dir-reel/out.safetensors";
    rl_status rc = rl_st_writer_save(&w, path, &err);
    rl_test_check(t, rc == RL_E_IO && strstr(err.msg, "/nonexistent-dir-reel/out.safetensors"),
                  "unwritable folder: %s", err.msg);
    RL_CHECK(t, !file_exists("/nonexistent-dir-reel/out.safetensors.partial"));
    rl_st_writer_free(&w);
    (void)arg;
}

// ---- hostile files ------------------------------------------------------------------------

static void test_hostile(rl_test *t, const char *arg)
{
    // each case: header text, header length override (-1: real), data bytes, code, message
    static const struct {
        const char *name, *hdr;
        long long hlen;
        size_t data;
        rl_status code;
        const char *msg;
    } cases[] = {
        { "len_past_end", "{}", 1000, 0, RL_E_FORMAT, "exceeds the" },
        { "len_huge", "{}", 0x7fffffffffffffffLL, 0, RL_E_FORMAT, "exceeds the" },
        { "not_object", "[1, 2]", -1, 0, RL_E_FORMAT, "not a JSON object" },
        { "bad_json", "{\"a\": {\"dtype\": \"F32\", ", -1, 0, RL_E_FORMAT, "not valid JSON" },
        { "unknown_dtype", "{\"w\":{\"dtype\":\"F8_E9\",\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 1,
          RL_E_FORMAT, "unknown dtype 'F8_E9'" },
        { "shape_overflow",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", -1,
          4, RL_E_FORMAT, "overflows" },
        { "negative_dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", -1, 4,
          RL_E_FORMAT, "shape[0] is not a non-negative integer" },
        { "fractional_dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", -1, 4,
          RL_E_FORMAT, "shape[0]" },
        { "rank_9", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
          -1, 4, RL_E_FORMAT, "rank 9" },
        { "out_of_bounds", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, 8,
          RL_E_FORMAT, "past the data buffer" },
        { "end_before_begin", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", -1, 8,
          RL_E_FORMAT, "is before begin" },
        { "size_mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, 8,
          RL_E_FORMAT, "needs 12 bytes, data_offsets give 8" },
        { "overlap",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12,
          RL_E_FORMAT, "overlap" },
        { "duplicate",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8,
          RL_E_FORMAT, "'a' appears twice" },
        { "offsets_arity", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", -1, 4,
          RL_E_FORMAT, "[begin, end]" },
        { "offsets_negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", -1, 4,
          RL_E_FORMAT, "not non-negative integers" },
        { "no_dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, RL_E_FORMAT,
          "'dtype' missing" },
        { "entry_not_object", "{\"w\":[1,2,3]}", -1, 0, RL_E_FORMAT, "not a JSON object" },
        { "meta_not_string", "{\"__metadata__\":{\"k\":3}}", -1, 0, RL_E_FORMAT,
          "value 'k' is not a string" },
        { "empty_name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4,
          RL_E_FORMAT, "empty name" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        printf("  case %s\n", cases[i].name);
        const char *p = write_raw(t, cases[i].name, cases[i].hdr, cases[i].hlen, cases[i].data);
        expect_refused(t, p, cases[i].code, cases[i].msg);
    }

    // a file shorter than the length prefix, an empty file, a missing file, a directory
    const char *p = rl_test_tmp_path(t, "short");
    FILE *f = fopen(p, "wb");
    fwrite("\x02\x00\x00", 1, 3, f);
    fclose(f);
    expect_refused(t, p, RL_E_FORMAT, "too short");
    p = rl_test_tmp_path(t, "empty");
    fclose(fopen(p, "wb"));
    expect_refused(t, p, RL_E_FORMAT, "too short");
    expect_refused(t, rl_test_tmp_path(t, "does-not-exist"), RL_E_MISSING, "cannot open");
    expect_refused(t, "/tmp", RL_E_IO, "not a regular file");

    // the same bytes from memory (the fuzz target's entry point) give the same verdicts
    rl_st_file mf;
    rl_err err = { 0 };
    const char bad[] = "\x05\x00\x00\x00\x00\x00\x00\x00{\"a\":";
    RL_CHECK(t, rl_st_open_mem(&mf, bad, sizeof bad - 1, "mem", &err) == RL_E_FORMAT);
    (void)arg;
}

// ---- weights loader ---------------------------------------------------------------------

static void test_weights_load(rl_test *t, const char *arg)
{
    rl_weights ws;
    rl_err err = { 0 };
    rl_weights_init(&ws, "st_py");
    rl_status rc = rl_weights_load_st(&ws, rl_test_fixture_path(t, "io/st_py.safetensors"), NULL, &err);
    rl_test_check(t, rc == RL_OK, "load: %s", err.msg);
    // the I64 tensor is skipped, the 11 float ones are in
    RL_CHECK(t, ws.n == 11 && rl_weights_find(&ws, "e.i64") == NULL);
    const float *p;
    RL_CHECK(t, rl_weights_get(&ws, "b.f16", 2, (int64_t[]){ 3, 5 }, &p, &err) == RL_OK);
    const rl_weight *want = rl_weights_find(&ws, "b.f16_want");
    if (want) rl_check_bitwise(t, "f16 -> f32 via loader", p, want->data, 15);
    rc = rl_weights_get(&ws, "b.f16", 2, (int64_t[]){ 5, 3 }, &p, &err);
    rl_test_check(t, rc == RL_E_SHAPE && strstr(err.msg, "has shape [3, 5], config implies [5, 3]"),
                  "wrong shape: %s", err.msg);
    rc = rl_weights_get(&ws, "nope", 1, (int64_t[]){ 4 }, &p, &err);
    rl_test_check(t, rc == RL_E_MISSING && strstr(err.msg, "missing tensor 'nope' (expected [4])"),
                  "missing: %s", err.msg);
    rc = rl_weights_check_all_used(&ws, NULL, &err);
    rl_test_check(t, rc == RL_E_SHAPE && strstr(err.msg, "unexpected tensor"), "unused: %s", err.msg);
    rl_weights_free(&ws);
    rl_weights_free(&ws);

    // prefix stripping
    rl_weights_init(&ws, "prefixed");
    rc = rl_weights_load_st(&ws, rl_test_fixture_path(t, "io/st_py.safetensors"), "h.", &err);
    RL_CHECK(t, rc == RL_OK && ws.n == 2 && rl_weights_find(&ws, "f16special") != NULL);
    rl_weights_free(&ws);

    // a NaN in a weight is refused, naming the tensor
    rl_st_writer w;
    rl_st_writer_init(&w);
    float x[3] = { 1.0f, NAN, 2.0f };
    rl_st_writer_add_f32(&w, "layer.weight", RL_F16, 1, (int64_t[]){ 3 }, x, &err);
    const char *path = rl_test_tmp_path(t, "nan.safetensors");
    rl_st_writer_save(&w, path, &err);
    rl_st_writer_free(&w);
    rl_weights_init(&ws, "nan");
    rc = rl_weights_load_st(&ws, path, NULL, &err);
    rl_test_check(t, rc == RL_E_FORMAT && strstr(err.msg, "'layer.weight' holds a non-finite"),
                  "nan weight: %s", err.msg);
    rl_weights_free(&ws);
    (void)arg;
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "read_python_writer", test_read_python, NULL },
        { "writer_roundtrip", test_roundtrip, NULL },
        { "atomic_unwritable", test_atomic_unwritable, NULL },
        { "hostile_files", test_hostile, NULL },
        { "weights_load", test_weights_load, NULL },
        { 0 },
    });
}
