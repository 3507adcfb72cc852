/* io/video.h - video out (and back in) through FFmpeg's libraries: libavcodec, libavformat,
 * libswscale (FFmpeg 5.1, the send/receive API).
 *
 * The container and codec follow the output name:
 *   *.mp4                 H.264 (libx264), yuv420p, profile high, CRF, movflags +faststart
 *                         (moov before mdat, so a browser starts playing before the end)
 *   *.webm                VP9 (libvpx-vp9), yuv420p, constant quality (CRF, b=0)
 *   *.gif                 GIF with a palette of up to 256 colours computed per frame (median
 *                         cut over the frame's exact colours, no dithering: exact when a frame
 *                         has <= 256 colours, as synthetic clips do), local palettes
 *   dir/  or  name%04d.png  numbered PNG frames (rgb24), numbered from 0
 *
 * Frames are pushed one at a time and go straight to the encoder; nothing holds the clip.
 * Colour: RGB -> YUV by libswscale with the BT.709 matrix, limited range, and the stream is
 * tagged bt709 (primaries, transfer, matrix) so players convert back with the same matrix.
 * Size: `scale` multiplies width and height (rounded); resampling is Lanczos (swscale
 * SWS_LANCZOS, accurate rounding). H.264 4:2:0 needs even sizes: an odd output width/height
 * is padded by one column/row that repeats the last one (no black line, no resampling; the
 * stored size is then the next even number). VP9, GIF and PNG keep odd sizes.
 * Metadata (generic key/values):
 *   mp4   written with movflags use_metadata_tags (keys kept verbatim in an mdta box; ffprobe
 *         shows them as format tags; standard 'udta' tags would drop unknown keys)
 *   webm  Matroska SimpleTags (ffprobe shows them upper-cased: keys compare case-insensitively)
 *   gif   one GIF comment extension before the trailer, holding "key=value" lines
 *   png   not stored
 * Atomic: everything is written to "<path>.partial" (PNG: "<frame>.partial") in the target
 * folder and renamed when rl_video_close succeeds; on failure or rl_video_abort the partial
 * files are removed. Deterministic: one encoder thread, bitexact flags on the muxer and the
 * encoder, so the same frames give the same bytes (for one build of FFmpeg/x264/libvpx).
 *
 * Thread-safety: a writer or reader object is used by one thread at a time; different objects
 * are independent. */
#ifndef RL_IO_VIDEO_H
#define RL_IO_VIDEO_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
    RL_VIDEO_MP4 = 1,
    RL_VIDEO_WEBM,
    RL_VIDEO_GIF,
    RL_VIDEO_PNG,
} rl_video_kind;

typedef struct {
    const char *key, *value;
} rl_video_tag;

typedef struct {
    int crf;                    // < 0: codec default (H.264 18, VP9 31); H.264 0..51, VP9 0..63
    double scale;               // output size factor, > 0 (1: as pushed; 8: 64x64 -> 512x512)
    const char *x264_preset;    // NULL: "medium"
    const rl_video_tag *meta;   // key/values written into the container (copied at open)
    int n_meta;
} rl_video_opts;

typedef struct rl_video rl_video;    // opaque writer

/* FFmpeg's own messages (warnings and errors) go to fn, one line at a time; NULL (the default)
 * drops them, so the library never prints. FFmpeg's log is process-wide, so this is too: the
 * first rl_video call installs the sink with av_log_set_callback. Not thread-safe: call it
 * before opening writers or readers. */
void rl_video_set_log(void (*fn)(void *user, const char *line), void *user);

/* Defaults: crf -1, scale 1, preset medium, no metadata. */
rl_video_opts rl_video_default_opts(void);

/* The format a path selects (".mp4", ".webm", ".gif", a trailing '/', or a printf-style
 * %d / %0Nd pattern ending in .png). 0 when it selects none. */
rl_video_kind rl_video_kind_of(const char *path);

/* Opens a writer for frames of (height, width, 3) RGB bytes at fps frames per second.
 * opts may be NULL (defaults). Checks everything before any work: unknown extension or bad
 * size/fps/crf/scale -> RL_E_PARAM; missing or unwritable folder -> RL_E_IO; FFmpeg refusing
 * -> RL_E_CODEC. A directory path ("frames/") is created when its parent exists.
 * On failure *v is NULL and nothing is left on disk. */
rl_status rl_video_open(rl_video **v, const char *path, int width, int height, int fps,
                        const rl_video_opts *opts, rl_err *err);

/* Encodes one frame: rgb (height, width, 3), row-major, read during the call only.
 * On failure the writer is spoilt: rl_video_close then fails too (and removes the output). */
rl_status rl_video_push(rl_video *v, const uint8_t *rgb, rl_err *err);

/* Flushes the encoder, finishes the container and renames it into place. Zero frames pushed
 * -> RL_E_PARAM. On any failure the partial output is removed. Frees *v and sets it to NULL
 * (also on failure); safe on NULL. */
rl_status rl_video_close(rl_video **v, rl_err *err);

/* Stops without producing output: removes the partial files, frees *v, sets it NULL. */
void rl_video_abort(rl_video **v);

/* Size of the frames as stored (after scale and even padding), and frames pushed so far. */
void rl_video_size(const rl_video *v, int *width, int *height, int *n_frames);

// ---- reading ------------------------------------------------------------------------------

typedef struct {
    char format[32];            // demuxer name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "gif")
    char codec[32];             // "h264", "vp9", "gif"
    char pix_fmt[32];           // "yuv420p", "bgra", ...
    int width, height;
    int n_frames;               // packets of the video stream (counted, not estimated)
    double fps;                 // average frame rate
    double duration;            // seconds, 0 when unknown
    int n_meta;
    rl_video_tag *meta;         // owned (keys and values too); freed by rl_video_info_free
} rl_video_info;

/* Reads the container's facts and metadata (for `reel info clip.mp4`). Demuxes only.
 * Errors: RL_E_IO (cannot open), RL_E_FORMAT (not a video FFmpeg can read). */
rl_status rl_video_read_meta(const char *path, rl_video_info *info, rl_err *err);
void rl_video_info_free(rl_video_info *info);                // idempotent
/* The value for key, compared case-insensitively (Matroska upper-cases keys); NULL if absent. */
const char *rl_video_info_get(const rl_video_info *info, const char *key);

/* Decodes an MP4/WebM/GIF (anything FFmpeg reads) to RGB bytes.
 * *rgb receives a malloc'd (n_frames, height, width, 3) buffer the caller frees; at most
 * max_frames frames are decoded (<= 0: all, up to a limit of 4 GiB of pixels).
 * Errors: RL_E_IO, RL_E_FORMAT, RL_E_CODEC, RL_E_NOMEM. On failure *rgb is NULL. */
rl_status rl_video_read_frames(const char *path, int max_frames, uint8_t **rgb, int *n_frames,
                               int *width, int *height, rl_err *err);

#endif
