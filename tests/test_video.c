/* tests/test_video.c - io/video: MP4/WebM/GIF/PNG out, checked with Debian's ffprobe/ffmpeg
 * (through popen) and with our own reader/decoder.
 *
 * Frames are synthetic: an RGB gradient that drifts with time plus a moving coloured box
 * (sharp colour edges: the hard case for 4:2:0 chroma). Quality is PSNR over all RGB bytes
 * of decoded vs pushed frames. Thresholds (measured values are printed by each check):
 *   H.264 CRF 18  > 38 dB decoded by ffmpeg, > 34 dB by our decoder
 *   VP9 CRF 20    > 37 dB decoded by ffmpeg, > 34 dB by our decoder
 *   (ffmpeg's unscaled yuv420p -> rgb24 path repeats each chroma sample, which reproduces the
 *   test box exactly because its edges sit on chroma-sample boundaries; our decoder
 *   interpolates chroma (bicubic), which is 4 dB worse on that box and 4.5 dB better on
 *   smooth gradients, see the odd-size cases: > 38 dB)
 *   GIF, PNG      exact      (<= 256 colours per frame: the palette is exact; PNG is lossless) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/video.h"
#include "tests/harness.h"

// ---- helpers ------------------------------------------------------------------------------

/* Frame k of a w x h clip: (h, w, 3). */
static void make_frame(uint8_t *rgb, int w, int h, int k, int with_box)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(40 + 160 * x / (w > 1 ? w - 1 : 1));
            p[1] = (uint8_t)(40 + 160 * y / (h > 1 ? h - 1 : 1));
            p[2] = (uint8_t)(60 + 8 * k);
        }
    if (!with_box) return;
    // at even coordinates with even sides: the box edges fall between 4:2:0 chroma samples, so
    // the PSNR measures the codec, not chroma subsampling of a saturated edge (which alone
    // caps a box at an odd column near 34 dB)
    int bx = (4 * k) % (w - 10) & ~1, by = h / 3 & ~1;
    for (int y = by; y < by + 10 && y < h; y++)
        for (int x = bx; x < bx + 10; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = 230; p[1] = 200; p[2] = 30;
        }
}

static uint8_t *make_clip(rl_test *t, int w, int h, int n, int with_box)
{
    uint8_t *clip = rl_test_alloc(t, (size_t)n * w * h * 3);
    for (int k = 0; k < n; k++) make_frame(clip + (size_t)k * w * h * 3, w, h, k, with_box);
    return clip;
}

/* PSNR of a (n, h, w, 3) vs b (n, hb, wb, 3) over a's area (b may be padded larger). */
static double psnr(const uint8_t *a, const uint8_t *b, int n, int w, int h, int wb, int hb)
{
    double se = 0;
    for (int k = 0; k < n; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    double d = (double)a[(((size_t)k * h + y) * w + x) * 3 + c] -
                               b[(((size_t)k * hb + y) * wb + x) * 3 + c];
                    se += d * d;
                }
    double mse = se / ((double)n * w * h * 3);
    return mse == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / mse);
}

static rl_status write_clip(const char *path, const uint8_t *clip, int w, int h, int n, int fps,
                            const rl_video_opts *o, rl_err *err)
{
    rl_video *v;
    rl_status rc = rl_video_open(&v, path, w, h, fps, o, err);
    if (rc) return rc;
    for (int k = 0; k < n; k++)
        if ((rc = rl_video_push(v, clip + (size_t)k * w * h * 3, err))) {
            rl_video_abort(&v);
            return rc;
        }
    return rl_video_close(&v, err);
}

/* Runs cmd, returns its whole stdout (owned by the case) and its size. */
static char *run(rl_test *t, const char *cmd, size_t *size)
{
    FILE *p = popen(cmd, "r");
    if (!p) { rl_test_fail(t, "popen %s", cmd); return NULL; }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, p)) > 0; ) {
        n += r;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    int status = pclose(p);
    if (!buf) { rl_test_fail(t, "out of memory"); return NULL; }
    buf[n] = '\0';
    if (size) *size = n;
    if (status != 0) rl_test_fail(t, "'%s' exited with %d", cmd, status);
    char *out = rl_test_alloc(t, n + 1);
    memcpy(out, buf, n + 1);
    free(buf);
    return out;
}

/* Value of "key=value" line in ffprobe's default output, or "" (owned by the case). */
static const char *field(rl_test *t, const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *s = text; s && *s; ) {
        const char *eol = strchr(s, '\n');
        if (!eol) eol = s + strlen(s);
        if ((size_t)(eol - s) > kl && strncmp(s, key, kl) == 0 && s[kl] == '=') {
            size_t n = (size_t)(eol - s) - kl - 1;
            char *v = rl_test_alloc(t, n + 1);
            memcpy(v, s + kl + 1, n);
            return v;
        }
        s = *eol ? eol + 1 : eol;
    }
    return "";
}

static const char *ffprobe(rl_test *t, const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
             "stream=codec_name,profile,pix_fmt,width,height,r_frame_rate,avg_frame_rate,"
             "nb_read_frames,color_space:format_tags -of default=nw=1 '%s'", path);
    return run(t, cmd, NULL);
}

/* ffmpeg's own decode to rgb24: (n, h, w, 3), n from the byte count. */
static uint8_t *ffmpeg_decode(rl_test *t, const char *path, int w, int h, int *n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -i '%s' -f rawvideo -pix_fmt rgb24 -", path);
    size_t size = 0;
    uint8_t *out = (uint8_t *)run(t, cmd, &size);
    *n = (int)(size / ((size_t)w * h * 3));
    return out;
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static int same_bytes(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* Offset of the first top-level MP4 box of the given type, -1 if none. */
static long mp4_box(const char *path, const char *type)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long off = 0, found = -1;
    unsigned char h[16];
    while (fseek(f, off, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8) {
        uint64_t size = (uint64_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
        if (size == 1 && fread(h + 8, 1, 8, f) == 8) {
            size = 0;
            for (int i = 8; i < 16; i++) size = size << 8 | h[i];
        }
        if (memcmp(h + 4, type, 4) == 0) { found = off; break; }
        if (size < 8) break;
        off += (long)size;
    }
    fclose(f);
    return found;
}

static const rl_video_tag META[] = {
    { "prompt", "a red circle moves left, then a blue square" },
    { "negative_prompt", "blurry, low quality" },
    { "seed", "1234567890123" },
    { "steps", "25" }, { "guidance", "7.5" }, { "scheduler", "ddim" },
    { "model", "presets/models/shapes" },
};
#define N_META ((int)(sizeof META / sizeof META[0]))

static void check_meta_roundtrip(rl_test *t, const rl_video_info *info, const char *what)
{
    for (int i = 0; i < N_META; i++) {
        const char *got = rl_video_info_get(info, META[i].key);
        rl_test_check(t, got && strcmp(got, META[i].value) == 0, "%s: metadata %s = '%s' (want '%s')",
                      what, META[i].key, got ? got : "(absent)", META[i].value);
    }
}

// ---- cases ---------------------------------------------------------------------------------

/* One lossy container end to end: arg "mp4" or "webm". */
static void test_lossy(rl_test *t, const char *ext)
{
    const int W = 64, H = 48, N = 12, FPS = 8;
    const int is_mp4 = strcmp(ext, "mp4") == 0;
    const double min_psnr = 34.0, min_psnr_ff = is_mp4 ? 38.0 : 37.0;
    uint8_t *clip = make_clip(t, W, H, N, 1);
    char name[32];
    snprintf(name, sizeof name, "clip.%s", ext);
    const char *path = rl_test_tmp_path(t, name);
    rl_video_opts o = rl_video_default_opts();
    o.crf = is_mp4 ? 18 : 20;
    o.meta = META;
    o.n_meta = N_META;
    rl_err err = { 0 };
    rl_status rc = write_clip(path, clip, W, H, N, FPS, &o, &err);
    if (!rl_test_check(t, rc == RL_OK, "write %s: %s", path, rc ? err.msg : "ok")) return;
    printf("  %s: %ld bytes\n", name, file_size(path));
    char partial[512];
    snprintf(partial, sizeof partial, "%s.partial", path);
    RL_CHECK(t, !exists(partial));

    // ffprobe
    const char *pr = ffprobe(t, path);
    RL_CHECK(t, strcmp(field(t, pr, "codec_name"), is_mp4 ? "h264" : "vp9") == 0);
    RL_CHECK(t, strcmp(field(t, pr, "pix_fmt"), "yuv420p") == 0);
    if (is_mp4) RL_CHECK(t, strcmp(field(t, pr, "profile"), "High") == 0);
    RL_CHECK(t, atoi(field(t, pr, "width")) == W && atoi(field(t, pr, "height")) == H);
    RL_CHECK(t, strcmp(field(t, pr, "r_frame_rate"), "8/1") == 0);
    rl_test_check(t, atoi(field(t, pr, "nb_read_frames")) == N, "ffprobe frames %s (want %d)",
                  field(t, pr, "nb_read_frames"), N);
    RL_CHECK(t, strcmp(field(t, pr, "color_space"), "bt709") == 0);
    for (int i = 0; i < N_META; i++) {
        char key[64], up[64];
        snprintf(key, sizeof key, "TAG:%s", META[i].key);
        snprintf(up, sizeof up, "TAG:%s", META[i].key);
        for (char *c = up + 4; *c; c++) *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        const char *got = field(t, pr, is_mp4 ? key : up);     // Matroska upper-cases keys
        rl_test_check(t, strcmp(got, META[i].value) == 0, "ffprobe %s = '%s'", is_mp4 ? key : up, got);
    }
    if (is_mp4) {
        long moov = mp4_box(path, "moov"), mdat = mp4_box(path, "mdat");
        rl_test_check(t, moov >= 0 && mdat > moov, "faststart: moov at %ld before mdat at %ld", moov, mdat);
    }

    // our reader
    rl_video_info info;
    rc = rl_video_read_meta(path, &info, &err);
    if (rl_test_check(t, rc == RL_OK, "read_meta: %s", rc ? err.msg : "ok")) {
        RL_CHECK(t, strcmp(info.codec, is_mp4 ? "h264" : "vp9") == 0);
        RL_CHECK(t, strcmp(info.pix_fmt, "yuv420p") == 0);
        RL_CHECK(t, info.width == W && info.height == H && info.n_frames == N);
        rl_test_check(t, fabs(info.fps - FPS) < 1e-9, "fps %g", info.fps);
        check_meta_roundtrip(t, &info, ext);
        rl_video_info_free(&info);
    }

    // quality: our decoder and ffmpeg's
    uint8_t *dec = NULL;
    int n, w, h;
    rc = rl_video_read_frames(path, 0, &dec, &n, &w, &h, &err);
    if (rl_test_check(t, rc == RL_OK && n == N && w == W && h == H, "read_frames: %d frames %dx%d %s",
                      n, w, h, rc ? err.msg : "")) {
        double p = psnr(clip, dec, N, W, H, w, h);
        rl_test_check(t, p > min_psnr, "PSNR (our decoder) %.2f dB > %.0f", p, min_psnr);
    }
    free(dec);
    uint8_t *ff = ffmpeg_decode(t, path, W, H, &n);
    if (rl_test_check(t, n == N, "ffmpeg decoded %d frames", n)) {
        double p = psnr(clip, ff, N, W, H, W, H);
        rl_test_check(t, p > min_psnr_ff, "PSNR (ffmpeg) %.2f dB > %.0f", p, min_psnr_ff);
    }

    // deterministic: a second run gives the same bytes
    snprintf(name, sizeof name, "clip2.%s", ext);
    const char *path2 = rl_test_tmp_path(t, name);
    rc = write_clip(path2, clip, W, H, N, FPS, &o, &err);
    rl_test_check(t, rc == RL_OK && same_bytes(path, path2), "two runs byte-identical (%ld, %ld bytes)",
                  file_size(path), file_size(path2));
}

/* Odd sizes: H.264 pads to even (repeating the edge), VP9 keeps them. */
static void test_odd(rl_test *t, const char *ext)
{
    const int W = 37, H = 23, N = 5;
    const int is_mp4 = strcmp(ext, "mp4") == 0;
    uint8_t *clip = make_clip(t, W, H, N, 0);
    char name[32];
    snprintf(name, sizeof name, "odd.%s", ext);
    const char *path = rl_test_tmp_path(t, name);
    rl_err err = { 0 };
    rl_status rc = write_clip(path, clip, W, H, N, 10, NULL, &err);
    if (!rl_test_check(t, rc == RL_OK, "write odd %s: %s", ext, rc ? err.msg : "ok")) return;
    const char *pr = ffprobe(t, path);
    int pw = atoi(field(t, pr, "width")), ph = atoi(field(t, pr, "height"));
    int ew = is_mp4 ? W + 1 : W, eh = is_mp4 ? H + 1 : H;
    rl_test_check(t, pw == ew && ph == eh, "%s stored size %dx%d (want %dx%d)", ext, pw, ph, ew, eh);
    rl_test_check(t, atoi(field(t, pr, "nb_read_frames")) == N, "frames %s", field(t, pr, "nb_read_frames"));
    uint8_t *dec = NULL;
    int n, w, h;
    rc = rl_video_read_frames(path, 0, &dec, &n, &w, &h, &err);
    if (rl_test_check(t, rc == RL_OK && n == N && w == ew && h == eh, "decode odd %s", ext)) {
        double p = psnr(clip, dec, N, W, H, w, h);       // over the source area
        // smooth gradient at the default CRF: well above the box clip's threshold
        rl_test_check(t, p > 38, "odd %s PSNR %.2f dB > 38", ext, p);
        if (is_mp4) {   // the padded column repeats the last one: close to it after coding
            double d = 0;
            for (int y = 0; y < H; y++)
                for (int c = 0; c < 3; c++)
                    d = fmax(d, fabs((double)dec[((size_t)y * w + W) * 3 + c] - dec[((size_t)y * w + W - 1) * 3 + c]));
            rl_test_check(t, d <= 12, "pad column differs from the last by at most %.0f (<= 12)", d);
        }
    }
    free(dec);
}

/* --scale: 16x16 -> 64x64 (x4) for mp4; smooth content, so the Lanczos upsample of the
 * source sampled at pixel centres is close to the continuous gradient. */
static void test_scale(rl_test *t, const char *ext)
{
    const int W = 16, H = 12, N = 4, S = 4;
    uint8_t *clip = make_clip(t, W, H, N, 0);
    char name[32];
    snprintf(name, sizeof name, "scaled.%s", ext);
    const char *path = rl_test_tmp_path(t, name);
    rl_video_opts o = rl_video_default_opts();
    o.scale = S;
    rl_err err = { 0 };
    rl_status rc = write_clip(path, clip, W, H, N, 8, &o, &err);
    if (!rl_test_check(t, rc == RL_OK, "write scaled: %s", rc ? err.msg : "ok")) return;
    const char *pr = ffprobe(t, path);
    RL_CHECK(t, atoi(field(t, pr, "width")) == W * S && atoi(field(t, pr, "height")) == H * S);
    uint8_t *dec = NULL;
    int n, w, h;
    rc = rl_video_read_frames(path, 0, &dec, &n, &w, &h, &err);
    if (rl_test_check(t, rc == RL_OK && n == N && w == W * S && h == H * S, "decode scaled")) {
        // box-average each S x S block back to the source grid: ~ the source pixel
        uint8_t *down = rl_test_alloc(t, (size_t)N * W * H * 3);
        for (int k = 0; k < N; k++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int c = 0; c < 3; c++) {
                        int s = 0;
                        for (int dy = 0; dy < S; dy++)
                            for (int dx = 0; dx < S; dx++)
                                s += dec[(((size_t)k * h + y * S + dy) * w + x * S + dx) * 3 + c];
                        down[(((size_t)k * H + y) * W + x) * 3 + c] = (uint8_t)((s + S * S / 2) / (S * S));
                    }
        double p = psnr(clip, down, N, W, H, W, H);
        rl_test_check(t, p > 35, "scaled %s: block means vs source PSNR %.2f dB > 35", ext, p);
    }
    free(dec);
}

/* The default preset's case: 64x64 frames upscaled x8 to a 512x512 H.264 clip. */
static void test_scale512(rl_test *t, const char *arg)
{
    uint8_t *clip = make_clip(t, 64, 64, 4, 1);
    const char *path = rl_test_tmp_path(t, "x8.mp4");
    rl_video_opts o = rl_video_default_opts();
    o.scale = 8;
    rl_err err = { 0 };
    rl_status rc = write_clip(path, clip, 64, 64, 4, 8, &o, &err);
    if (!rl_test_check(t, rc == RL_OK, "write x8: %s", rc ? err.msg : "ok")) return;
    printf("  x8.mp4: %ld bytes\n", file_size(path));
    const char *pr = ffprobe(t, path);
    rl_test_check(t, atoi(field(t, pr, "width")) == 512 && atoi(field(t, pr, "height")) == 512 &&
                  atoi(field(t, pr, "nb_read_frames")) == 4 && strcmp(field(t, pr, "profile"), "High") == 0,
                  "ffprobe: %sx%s, %s frames, profile %s", field(t, pr, "width"), field(t, pr, "height"),
                  field(t, pr, "nb_read_frames"), field(t, pr, "profile"));
}

static void test_gif(rl_test *t, const char *arg)
{
    const int W = 40, H = 30, N = 6;
    uint8_t *clip = make_clip(t, W, H, N, 1);     // 40 distinct reds x 30 greens > 256 colours
    // keep <= 256 colours per frame so the palette is exact: quantise the gradient to 16 steps
    for (size_t i = 0; i < (size_t)N * W * H * 3; i++) clip[i] = (uint8_t)(clip[i] & 0xF0);
    const char *path = rl_test_tmp_path(t, "clip.gif");
    rl_video_opts o = rl_video_default_opts();
    o.meta = META;
    o.n_meta = N_META;
    rl_err err = { 0 };
    rl_status rc = write_clip(path, clip, W, H, N, 10, &o, &err);
    if (!rl_test_check(t, rc == RL_OK, "write gif: %s", rc ? err.msg : "ok")) return;
    printf("  clip.gif: %ld bytes\n", file_size(path));
    const char *pr = ffprobe(t, path);
    RL_CHECK(t, strcmp(field(t, pr, "codec_name"), "gif") == 0);
    RL_CHECK(t, atoi(field(t, pr, "width")) == W && atoi(field(t, pr, "height")) == H);
    rl_test_check(t, atoi(field(t, pr, "nb_read_frames")) == N, "gif frames %s", field(t, pr, "nb_read_frames"));
    rl_video_info info;
    rc = rl_video_read_meta(path, &info, &err);
    if (rl_test_check(t, rc == RL_OK, "gif read_meta: %s", rc ? err.msg : "ok")) {
        RL_CHECK(t, info.n_frames == N && strcmp(info.codec, "gif") == 0);
        rl_test_check(t, fabs(info.fps - 10) < 0.5, "gif fps %g (centisecond delays)", info.fps);
        check_meta_roundtrip(t, &info, "gif");
        rl_video_info_free(&info);
    }
    uint8_t *dec = NULL;
    int n, w, h;
    rc = rl_video_read_frames(path, 0, &dec, &n, &w, &h, &err);
    if (rl_test_check(t, rc == RL_OK && n == N && w == W && h == H, "gif decode %d frames", n)) {
        double p = psnr(clip, dec, N, W, H, W, H);
        rl_test_check(t, isinf(p), "gif exact (<= 256 colours per frame): PSNR %.2f", p);
    }
    free(dec);
    uint8_t *ff = ffmpeg_decode(t, path, W, H, &n);
    if (rl_test_check(t, n == N, "ffmpeg decoded %d gif frames", n))
        rl_test_check(t, isinf(psnr(clip, ff, N, W, H, W, H)), "gif exact through ffmpeg");

    // many colours: median cut, lossy but close
    uint8_t *rich = make_clip(t, 64, 64, 2, 1);
    const char *path2 = rl_test_tmp_path(t, "rich.gif");
    rc = write_clip(path2, rich, 64, 64, 2, 10, NULL, &err);
    if (rl_test_check(t, rc == RL_OK, "write rich gif") &&
        rl_video_read_frames(path2, 0, &dec, &n, &w, &h, &err) == RL_OK) {
        double p = psnr(rich, dec, 2, 64, 64, 64, 64);
        // 64 x 64 gradient values in 256 boxes: ~4 levels per channel per box -> ~40 dB
        rl_test_check(t, p > 35, "gif median cut on 4096 colours: PSNR %.2f dB > 35", p);
        free(dec);
    }
    const char *path3 = rl_test_tmp_path(t, "clip2.gif");
    rc = write_clip(path3, clip, W, H, N, 10, &o, &err);
    rl_test_check(t, rc == RL_OK && same_bytes(path, path3), "gif two runs byte-identical");
}

static void test_png(rl_test *t, const char *arg)
{
    const int W = 21, H = 13, N = 3;
    uint8_t *clip = make_clip(t, W, H, N, 1);
    rl_err err = { 0 };
    // a pattern in an existing folder, and a folder that does not exist yet
    const char *dir = rl_test_tmp_path(t, "pngs");
    mkdir(dir, 0777);
    char pat[512], dir2[512], f[600];
    snprintf(pat, sizeof pat, "%s/f%%03d.png", dir);
    snprintf(dir2, sizeof dir2, "%s/", rl_test_tmp_path(t, "pngdir"));
    for (int which = 0; which < 2; which++) {
        rl_status rc = write_clip(which ? dir2 : pat, clip, W, H, N, 8, NULL, &err);
        if (!rl_test_check(t, rc == RL_OK, "write png %s: %s", which ? dir2 : pat, rc ? err.msg : "ok"))
            continue;
        for (int k = 0; k < N + 1; k++) {
            if (which) snprintf(f, sizeof f, "%s%04d.png", dir2, k);
            else snprintf(f, sizeof f, "%s/f%03d.png", dir, k);
            if (k == N) { rl_test_check(t, !exists(f), "no frame %d", k); break; }
            uint8_t *dec = NULL;
            int n, w, h;
            rc = rl_video_read_frames(f, 0, &dec, &n, &w, &h, &err);
            if (rl_test_check(t, rc == RL_OK && n == 1 && w == W && h == H, "png %s: %s", f, rc ? err.msg : "ok"))
                rl_test_check(t, memcmp(dec, clip + (size_t)k * W * H * 3, (size_t)W * H * 3) == 0,
                              "png frame %d lossless", k);
            free(dec);
        }
    }
    // --scale on PNG
    rl_video_opts o = rl_video_default_opts();
    o.scale = 2.5;
    snprintf(pat, sizeof pat, "%s/s%%d.png", dir);
    if (rl_test_check(t, write_clip(pat, clip, W, H, 1, 8, &o, &err) == RL_OK, "png scale 2.5")) {
        snprintf(f, sizeof f, "%s/s0.png", dir);
        rl_video_info info;
        if (rl_video_read_meta(f, &info, &err) == RL_OK) {
            rl_test_check(t, info.width == 53 && info.height == 33, "png scaled %dx%d (want 53x33 = round(2.5 x))",
                          info.width, info.height);
            rl_video_info_free(&info);
        }
    }
}

/* Nothing is left behind: abort, zero frames, bad parameters, unwritable places. */
static void test_errors(rl_test *t, const char *arg)
{
    rl_err err = { 0 };
    rl_video *v = NULL;
    uint8_t frame[16 * 16 * 3] = { 0 };
    const char *path = rl_test_tmp_path(t, "aborted.mp4");
    char partial[512];
    snprintf(partial, sizeof partial, "%s.partial", path);

    RL_CHECK(t, rl_video_open(&v, path, 16, 16, 8, NULL, &err) == RL_OK);
    RL_CHECK(t, v && exists(partial));
    for (int k = 0; k < 3 && v; k++) rl_video_push(v, frame, &err);
    rl_video_abort(&v);
    RL_CHECK(t, v == NULL && !exists(path) && !exists(partial));

    RL_CHECK(t, rl_video_open(&v, path, 16, 16, 8, NULL, &err) == RL_OK);
    rl_status rc = rl_video_close(&v, &err);
    rl_test_check(t, rc == RL_E_PARAM && !exists(path) && !exists(partial), "zero frames: %s", err.msg);

    const char *dirp = rl_test_tmp_path(t, "never/");
    RL_CHECK(t, rl_video_open(&v, dirp, 16, 16, 8, NULL, &err) == RL_OK);
    rl_video_push(v, frame, &err);
    rl_video_abort(&v);
    rl_test_check(t, !exists(dirp), "aborted PNG folder removed");

    struct { const char *path; int w, h, fps, crf; double scale; rl_status want; } bad[] = {
        { "clip.avi", 16, 16, 8, -1, 1, RL_E_PARAM },
        { "clip", 16, 16, 8, -1, 1, RL_E_PARAM },
        { "frames/%d%d.png", 16, 16, 8, -1, 1, RL_E_PARAM },
        { "frames/%s.png", 16, 16, 8, -1, 1, RL_E_PARAM },
        { "clip.mp4", 0, 16, 8, -1, 1, RL_E_PARAM },
        { "clip.mp4", 16, 16, 0, -1, 1, RL_E_PARAM },
        { "clip.mp4", 16, 16, 8, 52, 1, RL_E_PARAM },
        { "clip.webm", 16, 16, 8, 64, 1, RL_E_PARAM },
        { "clip.mp4", 16, 16, 8, -1, 0, RL_E_PARAM },
        { "/nonexistent-reel-dir/clip.mp4", 16, 16, 8, -1, 1, RL_E_IO },
        { "/etc/hostname/clip.mp4", 16, 16, 8, -1, 1, RL_E_IO },      // a file as folder
        { "/proc/reel-clip.mp4", 16, 16, 8, -1, 1, RL_E_IO },         // not creatable, even as root
        { "/nonexistent-reel-dir/x/", 16, 16, 8, -1, 1, RL_E_IO },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_video_opts o = rl_video_default_opts();
        o.crf = bad[i].crf;
        o.scale = bad[i].scale;
        err = (rl_err){ 0 };
        rc = rl_video_open(&v, bad[i].path, bad[i].w, bad[i].h, bad[i].fps, &o, &err);
        rl_test_check(t, rc == bad[i].want && v == NULL, "open %s %dx%d fps %d crf %d scale %g -> %s: %s",
                      bad[i].path, bad[i].w, bad[i].h, bad[i].fps, bad[i].crf, bad[i].scale,
                      rl_status_str(rc), err.msg);
        if (v) rl_video_abort(&v);
    }
    RL_CHECK(t, !exists("clip.mp4.partial") && !exists("/proc/reel-clip.mp4.partial"));

    rl_video_info info;
    rc = rl_video_read_meta("/nonexistent-reel.mp4", &info, &err);
    rl_test_check(t, rc == RL_E_IO, "read_meta missing -> %s: %s", rl_status_str(rc), err.msg);
    const char *junk = rl_test_tmp_path(t, "junk.mp4");
    FILE *f = fopen(junk, "wb");
    if (f) { fputs("this is not a video", f); fclose(f); }
    rc = rl_video_read_meta(junk, &info, &err);
    rl_test_check(t, rc == RL_E_FORMAT, "read_meta junk -> %s: %s", rl_status_str(rc), err.msg);
    uint8_t *rgb = NULL;
    int n, w, h;
    rc = rl_video_read_frames(junk, 0, &rgb, &n, &w, &h, &err);
    rl_test_check(t, rc == RL_E_FORMAT && rgb == NULL, "read_frames junk -> %s", rl_status_str(rc));
}

int main(int argc, char **argv)
{
    return rl_test_run(argc, argv, (rl_test_case[]){
        { "mp4", test_lossy, "mp4" },
        { "webm", test_lossy, "webm" },
        { "odd/mp4", test_odd, "mp4" },
        { "odd/webm", test_odd, "webm" },
        { "scale/mp4", test_scale, "mp4" },
        { "scale/512", test_scale512, NULL },
        { "gif", test_gif, NULL },
        { "png", test_png, NULL },
        { "errors", test_errors, NULL },
        { 0 },
    });
}
