/* io/video.c - video writer over libavcodec/libavformat/libswscale (see video.h); the reader
 * is io/video_read.c.
 *
 * Writer: RGB frame -> (swscale: Lanczos resize, RGB -> YUV 4:2:0 BT.709 limited, or RGB ->
 * RGB for GIF/PNG) -> AVFrame -> avcodec_send_frame / avcodec_receive_packet -> muxer.
 * GIF frames are quantised here (median cut over the frame's distinct colours) into pal8.
 * Everything is written under a ".partial" name and renamed by rl_video_close. */
#include "io/video.h"
#include "io/video_av.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#define MAX_SIDE 16384          // larger than any encoder here accepts anyway
#define MAX_FPS 240
// writer: Lanczos resize; chroma computed from every input pixel then filtered (FULL_CHR_H_INP)
#define SWS_FLAGS (SWS_LANCZOS | SWS_ACCURATE_RND | SWS_BITEXACT | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP)

struct rl_video {
    rl_video_kind kind;
    char *path;                      // final name (PNG: the pattern, "%d" style)
    char *tmp;                       // "<path>.partial" (not PNG)
    int in_w, in_h;                  // pushed frames (height, width, 3)
    int out_w, out_h;                // after scale
    int enc_w, enc_h;                // stored: out padded to even for H.264
    int fps, n_frames, n_written, spoilt;
    AVFormatContext *fmt;
    AVCodecContext *enc;
    AVStream *st;
    AVFrame *frame;                  // what the encoder gets (yuv420p, pal8 or rgb24)
    AVPacket *pkt;
    struct SwsContext *sws;          // to the encoder's format (from rgb when pre is set)
    struct SwsContext *pre;          // GIF, odd H.264: resize into rgb first, or NULL
    uint8_t *rgb;                    // (enc_h, enc_w, 3) resized (and padded) frame
    char *gif_comment;               // GIF: "key=value\n" lines, or NULL
    char **png_tmp;                  // PNG: partial names of the frames written so far
    int png_cap;
    char *made_dir;                  // PNG: a folder open() created (removed on abort if empty)
};

// ---- log sink -------------------------------------------------------------------------------

static void (*g_log_fn)(void *user, const char *line);
static void *g_log_user;

static void log_sink(void *avcl, int level, const char *fmt, va_list vl)
{
    if (!g_log_fn || level > AV_LOG_WARNING) return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
    g_log_fn(g_log_user, line);
}

void rl_video_log_install(void)
{
    static int done;
    if (!done) { av_log_set_callback(log_sink); done = 1; }
}

void rl_video_set_log(void (*fn)(void *user, const char *line), void *user)
{
    g_log_fn = fn;
    g_log_user = user;
    rl_video_log_install();
}

// ---- small helpers ------------------------------------------------------------------------

rl_status rl_video_av_fail(rl_err *err, const char *path, const char *what, int code)
{
    char buf[AV_ERROR_MAX_STRING_SIZE] = { 0 };
    av_strerror(code, buf, sizeof buf);
    // FFmpeg passes the system's errors through as AVERROR(errno): a full disk or a file-size
    // limit met while muxing is a file problem (RL_E_IO), not the encoder refusing
    const int sys[] = { ENOSPC, EFBIG, EIO, EACCES, EPERM, EROFS, EDQUOT, EPIPE, ENOENT };
    rl_status st = RL_E_CODEC;
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++)
        if (code == AVERROR(sys[i])) st = RL_E_IO;
    return rl_errf(err, st, "%s: %s: %s", path, what, buf);
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* 1 when s holds exactly one conversion "%d" or "%0Nd" (N <= 9) and no other '%'. */
static int one_int_pattern(const char *s)
{
    int found = 0;
    for (const char *p = s; (p = strchr(p, '%')); ) {
        p++;
        if (*p == '0') p++;
        if (isdigit((unsigned char)*p)) p++;
        if (*p != 'd' || found) return 0;
        found = 1;
        p++;
    }
    return found;
}

rl_video_kind rl_video_kind_of(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0) return 0;
    if (path[n - 1] == '/') return RL_VIDEO_PNG;
    if (strchr(path, '%')) return (one_int_pattern(path) && ends_with_ci(path, ".png")) ? RL_VIDEO_PNG : 0;
    if (ends_with_ci(path, ".mp4")) return RL_VIDEO_MP4;
    if (ends_with_ci(path, ".webm")) return RL_VIDEO_WEBM;
    if (ends_with_ci(path, ".gif")) return RL_VIDEO_GIF;
    return 0;
}

static char *str_cat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (!s) return NULL;
    memcpy(s, a, na);
    memcpy(s + na, b, nb + 1);
    return s;
}

/* The folder part of path ("." when none); malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

/* Checks that dir is a writable folder; creates it (one level) when create and it is absent,
 * recording it in *made. */
static rl_status check_dir(const char *dir, const char *path, int create, char **made, rl_err *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno == ENOENT && create) {
            if (mkdir(dir, 0777) != 0)
                return rl_errf(err, RL_E_IO, "%s: cannot create folder '%s': %s", path, dir,
                               strerror(errno));
            *made = strdup(dir);
            return RL_OK;
        }
        return rl_errf(err, RL_E_IO, "%s: folder '%s' does not exist", path, dir);
    }
    if (!S_ISDIR(sb.st_mode))
        return rl_errf(err, RL_E_IO, "%s: '%s' is not a folder", path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return rl_errf(err, RL_E_IO, "%s: folder '%s' is not writable: %s", path, dir,
                       strerror(errno));
    return RL_OK;
}

rl_video_opts rl_video_default_opts(void)
{
    return (rl_video_opts){ .crf = -1, .scale = 1.0, .x264_preset = NULL };
}

void rl_video_size(const rl_video *v, int *width, int *height, int *n_frames)
{
    if (width) *width = v->enc_w;
    if (height) *height = v->enc_h;
    if (n_frames) *n_frames = v->n_frames;
}

// ---- GIF palette ------------------------------------------------------------------------

/* One distinct colour of a frame and its pixel count. */
typedef struct { uint32_t rgb; uint32_t count; int box; } colour;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int g_axis;   // sort key for cmp_axis (qsort has no context argument in C11)
static int cmp_axis(const void *a, const void *b)
{
    const colour *x = a, *y = b;
    int cx = (x->rgb >> (16 - 8 * g_axis)) & 255, cy = (y->rgb >> (16 - 8 * g_axis)) & 255;
    if (cx != cy) return cx - cy;
    return (x->rgb > y->rgb) - (x->rgb < y->rgb);     // total order: deterministic splits
}

typedef struct { int lo, hi; uint64_t weight; int axis, range; } pbox;   // colours [lo, hi)

static void box_stats(pbox *b, const colour *c)
{
    int mn[3] = { 255, 255, 255 }, mx[3] = { 0, 0, 0 };
    b->weight = 0;
    for (int i = b->lo; i < b->hi; i++) {
        for (int k = 0; k < 3; k++) {
            int ch = (c[i].rgb >> (16 - 8 * k)) & 255;
            if (ch < mn[k]) mn[k] = ch;
            if (ch > mx[k]) mx[k] = ch;
        }
        b->weight += c[i].count;
    }
    b->axis = 0; b->range = mx[0] - mn[0];
    for (int k = 1; k < 3; k++)
        if (mx[k] - mn[k] > b->range) { b->axis = k; b->range = mx[k] - mn[k]; }
}

/* Quantises rgb (n pixels) to idx with a palette of <= 256 entries (0xAARRGGBB, opaque).
 * Distinct colours are sorted; with more than 256, median cut: the box with the largest
 * range x pixel count is split at its weighted median along its longest axis; each box
 * becomes its count-weighted mean. Every colour maps to its own box's entry. */
static int quantise(uint8_t *idx, uint32_t *palette, const uint8_t *rgb, size_t n, int idx_stride,
                    int w, uint32_t *scratch, colour *cols)
{
    for (size_t i = 0; i < n; i++)
        scratch[i] = (uint32_t)rgb[3 * i] << 16 | (uint32_t)rgb[3 * i + 1] << 8 | rgb[3 * i + 2];
    qsort(scratch, n, sizeof *scratch, cmp_u32);
    int nc = 0;
    for (size_t i = 0; i < n; i++) {
        if (nc && cols[nc - 1].rgb == scratch[i]) { cols[nc - 1].count++; continue; }
        cols[nc++] = (colour){ scratch[i], 1, 0 };
    }

    pbox boxes[256];
    int nb = 1;
    boxes[0] = (pbox){ 0, nc, 0, 0, 0 };
    box_stats(&boxes[0], cols);
    while (nb < 256 && nb < nc) {
        int best = -1;
        double best_score = 0;
        for (int b = 0; b < nb; b++) {
            double s = (double)boxes[b].range * (double)boxes[b].weight;
            if (boxes[b].hi - boxes[b].lo > 1 && boxes[b].range > 0 && s > best_score) {
                best = b; best_score = s;
            }
        }
        if (best < 0) break;
        pbox *b = &boxes[best];
        g_axis = b->axis;
        qsort(cols + b->lo, (size_t)(b->hi - b->lo), sizeof *cols, cmp_axis);
        uint64_t half = b->weight / 2, acc = 0;
        int cut = b->lo + 1;
        for (int i = b->lo; i < b->hi - 1; i++) {
            acc += cols[i].count;
            cut = i + 1;
            if (acc >= half) break;
        }
        boxes[nb] = (pbox){ cut, b->hi, 0, 0, 0 };
        b->hi = cut;
        box_stats(b, cols);
        box_stats(&boxes[nb], cols);
        nb++;
    }
    for (int b = 0; b < 256; b++) palette[b] = 0xFF000000u;      // unused: opaque black
    for (int b = 0; b < nb; b++) {
        uint64_t s[3] = { 0, 0, 0 };
        for (int i = boxes[b].lo; i < boxes[b].hi; i++) {
            cols[i].box = b;
            for (int k = 0; k < 3; k++) s[k] += (uint64_t)((cols[i].rgb >> (16 - 8 * k)) & 255) * cols[i].count;
        }
        uint32_t m[3];
        for (int k = 0; k < 3; k++)
            m[k] = (uint32_t)((s[k] + boxes[b].weight / 2) / boxes[b].weight);
        palette[b] = 0xFF000000u | m[0] << 16 | m[1] << 8 | m[2];
    }
    // back to colour order for the lookups below
    qsort(cols, (size_t)nc, sizeof *cols, cmp_u32);   // rgb is the first member
    for (size_t i = 0; i < n; i++) {
        uint32_t key = (uint32_t)rgb[3 * i] << 16 | (uint32_t)rgb[3 * i + 1] << 8 | rgb[3 * i + 2];
        int lo = 0, hi = nc - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cols[mid].rgb < key) lo = mid + 1; else hi = mid;
        }
        idx[(i / (size_t)w) * (size_t)idx_stride + i % (size_t)w] = (uint8_t)cols[lo].box;
    }
    return nb;
}

// ---- writer ---------------------------------------------------------------------------------

static void free_writer(rl_video *v, int remove_files)
{
    if (v->fmt) {
        if (v->fmt->pb) avio_closep(&v->fmt->pb);
        avformat_free_context(v->fmt);
    }
    if (remove_files && v->tmp) unlink(v->tmp);
    for (int i = 0; i < v->n_written && v->png_tmp; i++) {
        if (remove_files) unlink(v->png_tmp[i]);
        free(v->png_tmp[i]);
    }
    if (remove_files && v->made_dir) rmdir(v->made_dir);   // only succeeds when empty
    avcodec_free_context(&v->enc);
    av_frame_free(&v->frame);
    av_packet_free(&v->pkt);
    sws_freeContext(v->sws);
    sws_freeContext(v->pre);
    free(v->png_tmp);
    free(v->made_dir);
    free(v->rgb);
    free(v->gif_comment);
    free(v->tmp);
    free(v->path);
    free(v);
}

void rl_video_abort(rl_video **pv)
{
    if (!pv || !*pv) return;
    free_writer(*pv, 1);
    *pv = NULL;
}

/* "key=value\n" lines for the GIF comment, with '\\' and newlines escaped. */
static char *gif_comment_of(const rl_video_opts *o)
{
    size_t n = 1;
    for (int i = 0; i < o->n_meta; i++)
        n += strlen(o->meta[i].key) + 2 * strlen(o->meta[i].value) + 2;
    char *s = malloc(n), *p = s;
    if (!s) return NULL;
    for (int i = 0; i < o->n_meta; i++) {
        p += sprintf(p, "%s=", o->meta[i].key);
        for (const char *c = o->meta[i].value; *c; c++) {
            if (*c == '\\') { *p++ = '\\'; *p++ = '\\'; }
            else if (*c == '\n') { *p++ = '\\'; *p++ = 'n'; }
            else *p++ = *c;
        }
        *p++ = '\n';
    }
    *p = '\0';
    return s;
}

static rl_status open_encoder(rl_video *v, const rl_video_opts *o, rl_err *err)
{
    const char *name = v->kind == RL_VIDEO_MP4 ? "libx264" : v->kind == RL_VIDEO_WEBM ? "libvpx-vp9"
                     : v->kind == RL_VIDEO_GIF ? "gif" : "png";
    const AVCodec *codec = avcodec_find_encoder_by_name(name);
    if (!codec)
        return rl_errf(err, RL_E_CODEC, "%s: this FFmpeg has no %s encoder", v->path, name);
    v->enc = avcodec_alloc_context3(codec);
    if (!v->enc) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", v->path);

    AVCodecContext *c = v->enc;
    c->width = v->enc_w;
    c->height = v->enc_h;
    c->time_base = (AVRational){ 1, v->fps };
    c->framerate = (AVRational){ v->fps, 1 };
    c->sample_aspect_ratio = (AVRational){ 1, 1 };
    c->thread_count = 1;                             // same bytes on every machine
    c->flags |= AV_CODEC_FLAG_BITEXACT;
    if (v->fmt && (v->fmt->oformat->flags & AVFMT_GLOBALHEADER))
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

    AVDictionary *eo = NULL;
    char crf[16];
    if (v->kind == RL_VIDEO_MP4 || v->kind == RL_VIDEO_WEBM) {
        c->pix_fmt = AV_PIX_FMT_YUV420P;
        c->color_range = AVCOL_RANGE_MPEG;
        c->color_primaries = AVCOL_PRI_BT709;
        c->color_trc = AVCOL_TRC_BT709;
        c->colorspace = AVCOL_SPC_BT709;
        if (v->kind == RL_VIDEO_MP4) {
            snprintf(crf, sizeof crf, "%d", o->crf < 0 ? 18 : o->crf);
            av_dict_set(&eo, "preset", o->x264_preset ? o->x264_preset : "medium", 0);
            av_dict_set(&eo, "profile", "high", 0);
        } else {
            snprintf(crf, sizeof crf, "%d", o->crf < 0 ? 31 : o->crf);
            c->bit_rate = 0;                         // constant quality: crf alone
            av_dict_set(&eo, "deadline", "good", 0);
            av_dict_set(&eo, "cpu-used", "2", 0);
            av_dict_set(&eo, "row-mt", "0", 0);
        }
        av_dict_set(&eo, "crf", crf, 0);
    } else if (v->kind == RL_VIDEO_GIF) {
        c->pix_fmt = AV_PIX_FMT_PAL8;
    } else {
        c->pix_fmt = AV_PIX_FMT_RGB24;
    }
    int r = avcodec_open2(c, codec, &eo);
    rl_status rc = RL_OK;
    if (r < 0) {
        rc = rl_video_av_fail(err, v->path, name, r);
    } else if (av_dict_count(eo) > 0) {
        rc = rl_errf(err, RL_E_CODEC, "%s: %s did not take option '%s'", v->path, name,
                     av_dict_get(eo, "", NULL, AV_DICT_IGNORE_SUFFIX)->key);
    }
    av_dict_free(&eo);
    return rc;
}

static rl_status open_muxer(rl_video *v, const rl_video_opts *o, rl_err *err)
{
    const char *fname = v->kind == RL_VIDEO_MP4 ? "mp4" : v->kind == RL_VIDEO_WEBM ? "webm" : "gif";
    const AVOutputFormat *ofmt = av_guess_format(fname, NULL, NULL);
    if (!ofmt) return rl_errf(err, RL_E_CODEC, "%s: this FFmpeg has no %s muxer", v->path, fname);
    // the muxer knows the partial name: faststart re-reads the file through it
    int r = avformat_alloc_output_context2(&v->fmt, ofmt, NULL, v->tmp);
    if (r < 0) return rl_video_av_fail(err, v->path, "cannot create the muxer", r);
    v->fmt->flags |= AVFMT_FLAG_BITEXACT;            // no version strings, no random UIDs
    if (v->kind != RL_VIDEO_GIF)
        for (int i = 0; i < o->n_meta; i++)
            av_dict_set(&v->fmt->metadata, o->meta[i].key, o->meta[i].value, 0);
    return RL_OK;
}

rl_status rl_video_open(rl_video **pv, const char *path, int width, int height, int fps,
                        const rl_video_opts *opts, rl_err *err)
{
    *pv = NULL;
    rl_video_log_install();
    rl_video_opts o = opts ? *opts : rl_video_default_opts();
    rl_status rc = RL_OK;
    char *dir = NULL;
    AVDictionary *mo = NULL;

    // ---- every parameter, before any work
    rl_video_kind kind = rl_video_kind_of(path);
    if (!kind)
        return rl_errf(err, RL_E_PARAM, "%s: unknown output format: expected a name ending in "
                       ".mp4, .webm or .gif, a folder ending in '/', or a pattern such as "
                       "frames/%%04d.png", path ? path : "(null)");
    if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE)
        return rl_errf(err, RL_E_PARAM, "%s: frame size %dx%d: expected 1..%d per side", path,
                       width, height, MAX_SIDE);
    if (fps < 1 || fps > MAX_FPS)
        return rl_errf(err, RL_E_PARAM, "%s: fps %d: expected 1..%d", path, fps, MAX_FPS);
    int crf_max = kind == RL_VIDEO_MP4 ? 51 : 63;
    if ((kind == RL_VIDEO_MP4 || kind == RL_VIDEO_WEBM) && o.crf > crf_max)
        return rl_errf(err, RL_E_PARAM, "%s: crf %d: expected 0..%d for %s", path, o.crf, crf_max,
                       kind == RL_VIDEO_MP4 ? "H.264" : "VP9");
    if (!(o.scale > 0) || !isfinite(o.scale))
        return rl_errf(err, RL_E_PARAM, "%s: scale %g: expected a number > 0", path, o.scale);
    long ow = lround(width * o.scale), oh = lround(height * o.scale);
    if (ow < 1 || oh < 1 || ow > MAX_SIDE || oh > MAX_SIDE)
        return rl_errf(err, RL_E_PARAM, "%s: scale %g turns %dx%d into %ldx%ld: expected 1..%d "
                       "per side", path, o.scale, width, height, ow, oh, MAX_SIDE);
    if (o.n_meta < 0 || (o.n_meta > 0 && !o.meta))
        return rl_errf(err, RL_E_PARAM, "%s: metadata list is missing", path);
    for (int i = 0; i < o.n_meta; i++) {
        const char *k = o.meta[i].key;
        if (!k || !*k || strpbrk(k, "=\n") || !o.meta[i].value)
            return rl_errf(err, RL_E_PARAM, "%s: metadata entry %d: expected a non-empty key "
                           "without '=' or newline and a value", path, i);
    }

    rl_video *v = calloc(1, sizeof *v);
    if (!v) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
    v->kind = kind;
    v->in_w = width; v->in_h = height; v->fps = fps;
    v->out_w = (int)ow; v->out_h = (int)oh;
    v->enc_w = v->out_w; v->enc_h = v->out_h;
    if (kind == RL_VIDEO_MP4) {      // x264 4:2:0 wants even sides
        v->enc_w += v->enc_w & 1;
        v->enc_h += v->enc_h & 1;
    }

    // ---- names and folders
    if (kind == RL_VIDEO_PNG) {
        size_t n = strlen(path);
        if (path[n - 1] == '/') {
            v->path = str_cat(path, "%04d.png");
            dir = strdup(path);
            if (dir && n > 1) dir[n - 1] = '\0';
        } else {
            v->path = strdup(path);
            dir = dir_of(path);
        }
        if (!v->path || !dir) { rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path); goto fail; }
        if ((rc = check_dir(dir, path, 1, &v->made_dir, err))) goto fail;
    } else {
        v->path = strdup(path);
        v->tmp = str_cat(path, ".partial");
        dir = dir_of(path);
        if (!v->path || !v->tmp || !dir) { rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path); goto fail; }
        if ((rc = check_dir(dir, path, 0, NULL, err))) goto fail;
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            rc = rl_errf(err, RL_E_IO, "%s: is a folder, expected a file name", path);
            goto fail;
        }
    }

    // ---- FFmpeg objects
    if (kind != RL_VIDEO_PNG && (rc = open_muxer(v, &o, err))) goto fail;
    if ((rc = open_encoder(v, &o, err))) goto fail;
    v->frame = av_frame_alloc();
    v->pkt = av_packet_alloc();
    if (!v->frame || !v->pkt) { rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path); goto fail; }
    v->frame->format = v->enc->pix_fmt;
    v->frame->width = v->enc_w;
    v->frame->height = v->enc_h;
    int r = av_frame_get_buffer(v->frame, 0);
    if (r < 0) { rc = rl_video_av_fail(err, path, "frame buffer", r); goto fail; }

    // GIF, and H.264 at an odd output size, resize into an RGB buffer first: GIF to quantise
    // it, H.264 to pad it to even sides there (swscale's 4:2:0 chroma for an odd size is
    // resampled by out/ceil(out/2), not 2:1, which drifts the chroma across the picture)
    int staged = kind == RL_VIDEO_GIF || v->enc_w != v->out_w || v->enc_h != v->out_h;
    if (staged) {
        v->pre = sws_getContext(width, height, AV_PIX_FMT_RGB24, v->out_w, v->out_h,
                                AV_PIX_FMT_RGB24, SWS_FLAGS, NULL, NULL, NULL);
        v->rgb = malloc((size_t)v->enc_w * v->enc_h * 3);
        if (!v->pre || !v->rgb) { rc = rl_errf(err, RL_E_CODEC, "%s: swscale refused %dx%d -> "
                                               "%dx%d", path, width, height, v->out_w, v->out_h);
                                  goto fail; }
    }
    if (kind != RL_VIDEO_GIF) {
        enum AVPixelFormat dst = kind == RL_VIDEO_PNG ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUV420P;
        int sw = staged ? v->enc_w : width, sh = staged ? v->enc_h : height;
        v->sws = sws_getContext(sw, sh, AV_PIX_FMT_RGB24, v->enc_w, v->enc_h, dst, SWS_FLAGS,
                                NULL, NULL, NULL);
        if (!v->sws) { rc = rl_errf(err, RL_E_CODEC, "%s: swscale refused %dx%d -> %dx%d", path,
                                    sw, sh, v->enc_w, v->enc_h); goto fail; }
        if (dst == AV_PIX_FMT_YUV420P) {
            // RGB (full range) -> YUV with the BT.709 matrix, limited range: what the tags say
            const int *m709 = sws_getCoefficients(SWS_CS_ITU709);
            sws_setColorspaceDetails(v->sws, m709, 1, m709, 0, 0, 1 << 16, 1 << 16);
        }
    }
    if (kind == RL_VIDEO_GIF && o.n_meta && !(v->gif_comment = gif_comment_of(&o))) {
        rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
        goto fail;
    }

    if (kind != RL_VIDEO_PNG) {
        v->st = avformat_new_stream(v->fmt, NULL);
        if (!v->st) { rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path); goto fail; }
        r = avcodec_parameters_from_context(v->st->codecpar, v->enc);
        if (r < 0) { rc = rl_video_av_fail(err, path, "stream parameters", r); goto fail; }
        v->st->time_base = v->enc->time_base;
        v->st->avg_frame_rate = v->st->r_frame_rate = (AVRational){ fps, 1 };
        r = avio_open(&v->fmt->pb, v->tmp, AVIO_FLAG_WRITE);
        if (r < 0) {
            rc = rl_errf(err, RL_E_IO, "%s: cannot create %s: %s", path, v->tmp, av_err2str(r));
            goto fail;
        }
        if (kind == RL_VIDEO_MP4)    // moov up front (browsers), custom keys kept verbatim
            av_dict_set(&mo, "movflags", "+faststart+use_metadata_tags", 0);
        r = avformat_write_header(v->fmt, &mo);
        if (r < 0) { rc = rl_video_av_fail(err, path, "cannot write the header", r); goto fail; }
    }
    av_dict_free(&mo);
    free(dir);
    *pv = v;
    return RL_OK;

fail:
    av_dict_free(&mo);
    free(dir);
    free_writer(v, 1);
    return rc;
}

/* Writes one encoded PNG frame to "<name>.partial". */
static rl_status write_png(rl_video *v, const AVPacket *pkt, rl_err *err)
{
    if (v->n_written == v->png_cap) {
        int cap = v->png_cap ? 2 * v->png_cap : 64;
        char **p = realloc(v->png_tmp, (size_t)cap * sizeof *p);
        if (!p) return rl_errf(err, RL_E_NOMEM, "%s: out of memory", v->path);
        v->png_tmp = p;
        v->png_cap = cap;
    }
    char name[PATH_MAX];
    int len = snprintf(name, sizeof name - 8, v->path, v->n_written);   // pattern checked at open
    if (len < 0 || (size_t)len >= sizeof name - 8)
        return rl_errf(err, RL_E_PARAM, "%s: frame name too long", v->path);
    strcat(name, ".partial");
    FILE *fp = fopen(name, "wb");
    if (!fp) return rl_errf(err, RL_E_IO, "%s: cannot create: %s", name, strerror(errno));
    v->png_tmp[v->n_written] = strdup(name);
    if (!v->png_tmp[v->n_written]) {
        fclose(fp);
        unlink(name);
        return rl_errf(err, RL_E_NOMEM, "%s: out of memory", v->path);
    }
    v->n_written++;
    int ok = fwrite(pkt->data, 1, (size_t)pkt->size, fp) == (size_t)pkt->size;
    if (fclose(fp) != 0) ok = 0;
    if (!ok) return rl_errf(err, RL_E_IO, "%s: write failed: %s", name, strerror(errno));
    return RL_OK;
}

/* Sends frame (NULL: flush) and writes every packet the encoder has ready. */
static rl_status encode(rl_video *v, AVFrame *frame, rl_err *err)
{
    int r = avcodec_send_frame(v->enc, frame);
    if (r < 0) return rl_video_av_fail(err, v->path, "encoder refused a frame", r);
    for (;;) {
        r = avcodec_receive_packet(v->enc, v->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return RL_OK;
        if (r < 0) return rl_video_av_fail(err, v->path, "encoding failed", r);
        if (v->kind == RL_VIDEO_PNG) {
            rl_status rc = write_png(v, v->pkt, err);
            av_packet_unref(v->pkt);
            if (rc) return rc;
            continue;
        }
        if (v->pkt->duration == 0) v->pkt->duration = 1;   // one frame, in encoder time base
        av_packet_rescale_ts(v->pkt, v->enc->time_base, v->st->time_base);
        v->pkt->stream_index = v->st->index;
        r = av_interleaved_write_frame(v->fmt, v->pkt);   // takes the packet's reference
        if (r < 0) {
            if (r == AVERROR(ENOSPC) || r == AVERROR(EIO))
                return rl_errf(err, RL_E_IO, "%s: write failed: %s", v->path, av_err2str(r));
            return rl_video_av_fail(err, v->path, "muxing failed", r);
        }
    }
}

rl_status rl_video_push(rl_video *v, const uint8_t *rgb, rl_err *err)
{
    if (v->spoilt) return rl_errf(err, RL_E_PARAM, "%s: writer failed earlier", v->path);
    rl_status rc;
    AVFrame *f = v->frame;
    int r = av_frame_make_writable(f);     // the encoder may still hold the last one
    if (r < 0) { rc = rl_video_av_fail(err, v->path, "frame buffer", r); goto fail; }

    const uint8_t *src[4] = { rgb, NULL, NULL, NULL };
    int src_stride[4] = { 3 * v->in_w, 0, 0, 0 }, src_h = v->in_h;
    if (v->pre) {
        // resize into rgb (enc_h, enc_w, 3), then repeat the last column / row into the
        // H.264 even padding (none for GIF: enc == out)
        const int ew = v->enc_w, ow = v->out_w, oh = v->out_h;
        uint8_t *dst[4] = { v->rgb, NULL, NULL, NULL };
        int dst_stride[4] = { 3 * ew, 0, 0, 0 };
        sws_scale(v->pre, src, src_stride, 0, v->in_h, dst, dst_stride);
        if (ew > ow)
            for (int y = 0; y < oh; y++)
                memcpy(v->rgb + ((size_t)y * ew + ow) * 3, v->rgb + ((size_t)y * ew + ow - 1) * 3, 3);
        if (v->enc_h > oh)
            memcpy(v->rgb + (size_t)oh * ew * 3, v->rgb + (size_t)(oh - 1) * ew * 3, (size_t)ew * 3);
        src[0] = v->rgb;
        src_stride[0] = 3 * ew;
        src_h = v->enc_h;
    }
    if (v->kind == RL_VIDEO_GIF) {
        size_t n = (size_t)v->out_w * v->out_h;
        uint32_t *scratch = malloc(n * sizeof *scratch);
        colour *cols = malloc(n * sizeof *cols);
        if (!scratch || !cols) {
            free(scratch); free(cols);
            rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", v->path);
            goto fail;
        }
        quantise(f->data[0], (uint32_t *)f->data[1], v->rgb, n, f->linesize[0], v->out_w,
                 scratch, cols);
        free(scratch);
        free(cols);
    } else {
        sws_scale(v->sws, src, src_stride, 0, src_h, f->data, f->linesize);
    }
    f->pts = v->n_frames;
    if ((rc = encode(v, f, err))) goto fail;
    v->n_frames++;
    return RL_OK;

fail:
    v->spoilt = 1;
    return rc;
}

/* Inserts the GIF comment extension before the trailer byte (0x3B) of the finished file. */
static rl_status gif_add_comment(const rl_video *v, rl_err *err)
{
    FILE *fp = fopen(v->tmp, "r+b");
    if (!fp) return rl_errf(err, RL_E_IO, "%s: cannot reopen: %s", v->tmp, strerror(errno));
    rl_status rc = RL_OK;
    int c = EOF;
    if (fseek(fp, -1, SEEK_END) == 0) c = fgetc(fp);
    if (c != 0x3B) {
        rc = rl_errf(err, RL_E_INTERNAL, "%s: GIF muxer output does not end in a trailer", v->path);
        goto done;
    }
    fseek(fp, -1, SEEK_END);
    fputc(0x21, fp);                    // extension introducer
    fputc(0xFE, fp);                    // comment label
    size_t n = strlen(v->gif_comment);
    for (size_t off = 0; off < n; off += 255) {    // data sub-blocks of <= 255 bytes
        size_t len = n - off < 255 ? n - off : 255;
        fputc((int)len, fp);
        fwrite(v->gif_comment + off, 1, len, fp);
    }
    fputc(0x00, fp);                    // block terminator
    fputc(0x3B, fp);                    // trailer
    if (ferror(fp)) rc = rl_errf(err, RL_E_IO, "%s: write failed: %s", v->tmp, strerror(errno));
done:
    if (fclose(fp) != 0 && !rc)
        rc = rl_errf(err, RL_E_IO, "%s: write failed: %s", v->tmp, strerror(errno));
    return rc;
}

rl_status rl_video_close(rl_video **pv, rl_err *err)
{
    if (!pv || !*pv) return RL_OK;
    rl_video *v = *pv;
    *pv = NULL;
    rl_status rc = RL_OK;
    if (v->spoilt) { rc = rl_errf(err, RL_E_PARAM, "%s: writer failed earlier", v->path); goto fail; }
    if (v->n_frames == 0) { rc = rl_errf(err, RL_E_PARAM, "%s: no frames were written", v->path); goto fail; }
    if ((rc = encode(v, NULL, err))) goto fail;      // flush delayed frames (B-frames, lookahead)

    if (v->kind == RL_VIDEO_PNG) {
        for (int i = 0; i < v->n_written; i++) {
            size_t n = strlen(v->png_tmp[i]) - strlen(".partial");
            char name[PATH_MAX];
            memcpy(name, v->png_tmp[i], n);
            name[n] = '\0';
            if (rename(v->png_tmp[i], name) != 0) {
                rc = rl_errf(err, RL_E_IO, "%s: cannot rename from %s: %s", name, v->png_tmp[i],
                             strerror(errno));
                // frames renamed already stay (complete files); the rest are removed
                for (int j = 0; j < i; j++) { free(v->png_tmp[j]); v->png_tmp[j] = strdup(""); }
                goto fail;
            }
        }
        free(v->made_dir);                          // keep the folder: it holds the frames
        v->made_dir = NULL;
        free_writer(v, 0);
        return RL_OK;
    }

    int r = av_write_trailer(v->fmt);                // faststart moves moov here (re-reads tmp)
    if (r < 0) { rc = rl_video_av_fail(err, v->path, "cannot finish the file", r); goto fail; }
    r = avio_closep(&v->fmt->pb);
    if (r < 0) { rc = rl_errf(err, RL_E_IO, "%s: write failed: %s", v->path, av_err2str(r)); goto fail; }
    if (v->kind == RL_VIDEO_GIF && v->gif_comment && (rc = gif_add_comment(v, err))) goto fail;
    if (rename(v->tmp, v->path) != 0) {
        rc = rl_errf(err, RL_E_IO, "%s: cannot rename from %s: %s", v->path, v->tmp, strerror(errno));
        goto fail;
    }
    free(v->tmp);
    v->tmp = NULL;
    free_writer(v, 0);
    return RL_OK;

fail:
    free_writer(v, 1);
    return rc;
}
