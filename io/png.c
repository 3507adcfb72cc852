/* io/png.c - see png.h: AVFrame (rgb24) -> avcodec_send_frame / avcodec_receive_packet ->
 * rl_atomic_write_file. */
#include "io/png.h"

#include <string.h>

#include <libavcodec/avcodec.h>

#include "io/atomic.h"
#include "io/video_av.h"

#define MAX_SIDE 16384

rl_status rl_png_write(const char *path, const uint8_t *rgb, int width, int height, rl_err *err)
{
    if (!path || !*path) return rl_errf(err, RL_E_PARAM, "PNG: no output path");
    if (!rgb || width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE)
        return rl_errf(err, RL_E_PARAM, "%s: image size %dx%d outside 1..%d", path, width,
                       height, MAX_SIDE);
    rl_video_log_install();
    rl_status rc = RL_OK;
    AVCodecContext *c = NULL;
    AVFrame *f = NULL;
    AVPacket *pkt = NULL;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    if (!codec) return rl_errf(err, RL_E_CODEC, "%s: this FFmpeg has no PNG encoder", path);
    c = avcodec_alloc_context3(codec);
    f = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!c || !f || !pkt) {
        rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    c->width = width;
    c->height = height;
    c->pix_fmt = AV_PIX_FMT_RGB24;
    c->time_base = (AVRational){1, 1};
    c->flags |= AV_CODEC_FLAG_BITEXACT;
    int r = avcodec_open2(c, codec, NULL);
    if (r < 0) {
        rc = rl_video_av_fail(err, path, "cannot open the PNG encoder", r);
        goto done;
    }
    f->format = AV_PIX_FMT_RGB24;
    f->width = width;
    f->height = height;
    if ((r = av_frame_get_buffer(f, 0)) < 0) {
        rc = rl_video_av_fail(err, path, "cannot allocate a frame", r);
        goto done;
    }
    for (int y = 0; y < height; y++)
        memcpy(f->data[0] + (size_t)y * (size_t)f->linesize[0], rgb + (size_t)y * (size_t)width * 3,
               (size_t)width * 3);
    if ((r = avcodec_send_frame(c, f)) < 0 || (r = avcodec_send_frame(c, NULL)) < 0) {
        rc = rl_video_av_fail(err, path, "the PNG encoder refused the image", r);
        goto done;
    }
    if ((r = avcodec_receive_packet(c, pkt)) < 0) {
        rc = rl_video_av_fail(err, path, "the PNG encoder gave no image", r);
        goto done;
    }
    rc = rl_atomic_write_file(path, pkt->data, (size_t)pkt->size, err);
done:
    av_packet_free(&pkt);
    av_frame_free(&f);
    avcodec_free_context(&c);
    return rc;
}
