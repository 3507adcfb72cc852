/* io/presets.h - generation presets: presets/<name>.json read into a struct that the command
 * line then overrides field by field.
 *
 * A preset file is one JSON object; every key is optional (absent keys keep the built-in
 * default, which equals presets/balanced.json). Keys and types:
 *   steps int, guidance number, guidance_rescale number in [0, 1], frames int, fps int,
 *   width int, height int,
 *   scheduler "default" | "ddim" | "ddpm" | "euler",
 *   freeinit int (FreeInit iterations, 0: off), freeinit_filter "gaussian" | "butterworth",
 *   freeinit_cutoff number in (0, 1], crf int, scale number,
 *   context_frames int (0: the model's frame count), context_overlap int, loop bool,
 *   negative_prompt string, description string (ignored).
 * An unknown key or a wrong type is an error naming the file and the key (RL_E_FORMAT); a
 * value out of range is RL_E_PARAM, also naming file and key. */
#ifndef RL_IO_PRESETS_H
#define RL_IO_PRESETS_H

#include "core/err.h"

#define RL_PRESET_TEXT_MAX 1024   // bytes for negative_prompt, NUL included

typedef struct {
    int steps;
    float guidance;
    float guidance_rescale;                // 0..1, 0: off (core/guide.h)
    int frames, fps, width, height;
    char scheduler[16];                    // "default", "ddim", "ddpm", "euler"
    int freeinit;                          // FreeInit iterations, 0: off
    char freeinit_filter[16];              // "gaussian", "butterworth"
    float freeinit_cutoff;                 // normalised stop frequency, (0, 1]
    int crf;                               // video quality (H.264 0..51, VP9 0..63)
    float scale;                           // output upscale factor, (0, 16]
    int context_frames, context_overlap;   // windows for long clips; 0: the model's frames
    int loop;                              // windows wrap around (seamless loop)
    char negative_prompt[RL_PRESET_TEXT_MAX];
} rl_preset;

/* The built-in defaults: the values of presets/balanced.json. */
rl_preset rl_preset_default(void);

/* Starts from rl_preset_default() and applies the keys of the JSON file at path. On failure *p
 * holds the defaults. */
rl_status rl_preset_load(rl_preset *p, const char *path, rl_err *err);

/* A preset by name ("fast", "balanced", "quality", "long"; "default" means "balanced") from
 * the folder dir, or by path when name contains '/' or ends in ".json". RL_E_MISSING when
 * there is no such preset (the message lists the folder searched). */
rl_status rl_preset_find(rl_preset *p, const char *name, const char *dir, rl_err *err);

/* Checks every field's range (after command-line overrides). label names the source in
 * messages ("--steps", a file name). */
rl_status rl_preset_check(const rl_preset *p, const char *label, rl_err *err);

#endif
