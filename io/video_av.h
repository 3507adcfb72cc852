/* io/video_av.h - what io/video.c (writer) and io/video_read.c (reader) share; not part of
 * the API. */
#ifndef RL_IO_VIDEO_AV_H
#define RL_IO_VIDEO_AV_H

#include "core/err.h"

/* Installs the FFmpeg log sink of rl_video_set_log once (idempotent; not thread-safe). */
void rl_video_log_install(void);
/* RL_E_CODEC "<path>: <what>: <av_strerror(code)>". */
rl_status rl_video_av_fail(rl_err *err, const char *path, const char *what, int code);

#endif
