/* io/png.h - one RGB image to a PNG file, through libavcodec's PNG encoder (rgb24, no
 * metadata, bitexact), written atomically: "<path>.partial" renamed over path when complete. */
#ifndef RL_IO_PNG_H
#define RL_IO_PNG_H

#include <stdint.h>

#include "core/err.h"

/* rgb: (height, width, 3) bytes, row-major. Errors: RL_E_PARAM (size outside 1..16384),
 * RL_E_IO (missing or unwritable folder), RL_E_CODEC (the encoder refused), RL_E_NOMEM.
 * On failure nothing is left at path. */
rl_status rl_png_write(const char *path, const uint8_t *rgb, int width, int height, rl_err *err);

#endif
