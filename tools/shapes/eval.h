/* tools/shapes/eval.h - `reel eval`: how well a clip source follows shapes-world prompts.
 *
 * A fixed prompt set with fixed seeds (so two runs, or two models, see the same prompts):
 * in-distribution prompts are captions the training sampler can draw; held-out prompts each
 * hold at least one held-out pair (SHAPES_WORLD.md). Every clip goes through the procedural
 * analyzer (analyze.h) and is scored per attribute. Besides adherence the table holds:
 *   persistence          share of clips with exactly one object in every frame;
 *   background flicker   RMS (0..255 levels) of the temporal frequencies k >= F/4 of pixels that
 *                        are background in every frame (FFTW r2c over time), averaged over the
 *                        clips that have such pixels (their count is reported with it);
 *   guidance effect      adherence per attribute (colour, shape, motion, all) at guidance 1 vs
 *                        the default, on the first n_guidance in-distribution prompts (all of
 *                        them by default: 16 clips could not tell 19% from 25%);
 *   negative prompt      colour-free prompts "a {shape} {motion} on a {bg} background"; colour X
 *                        cycles through the palette; share of clips analysed as X without a
 *                        negative prompt vs with "a {X} {shape} {motion} on a {bg} background";
 *   prompt travel        colour A at the first frame travelling to B at the last: per frame, the
 *                        object colour's position t on the line A -> B (0 at A, 1 at B), mean
 *                        over the travel prompts, and the shares that start at A and end at B;
 *   CLIP score           cosine between the prompt's and the clip's embeddings under the model
 *                        folder's CLIP pair (clipscore.h: text encoder pooled at the end token
 *                        -> text_projection; clip_video/ frame encoder -> visual_projection),
 *                        per set; for a model source also on the ground-truth render of each
 *                        prompt and seed, and for both the mean over mismatched pairs (clip i
 *                        against the other clips' prompts of its set: the chance level);
 *   seconds per clip     wall time of the source per clip.
 * Guidance, negative prompt and travel need a model; for a source without one they are n/a
 * with the reason. The CLIP score is n/a without a CLIP pair (opts.clip NULL, opts.clip_na).
 *
 * The clip source is a function pointer, so ground-truth renders (the ceiling) and a model
 * (through core/reel.h, set up by tools/cmd_eval.c) run through the same code. */
#ifndef RL_TOOLS_SHAPES_EVAL_H
#define RL_TOOLS_SHAPES_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "tools/shapes/analyze.h"
#include "tools/shapes/clipscore.h"
#include "tools/shapes/world.h"

#define RL_EVAL_PROMPT_SEED 0x5eed0e7a11ull   // the fixed prompt set
#define RL_EVAL_MAX_SET 512
#define RL_EVAL_MAX_SEEDS 64
#define RL_EVAL_SEED_STRIDE 100000ull   // seed k of a prompt: its base seed + k * this

/* One clip to make. */
typedef struct {
    const char *prompt;
    const char *negative;      // NULL: none
    const char *travel_to;     // NULL: one prompt; else the prompt at the last frame
    float guidance;            // <= 0: the source's default
    uint64_t seed;
    int F, H, W;
} rl_eval_req;

/* Makes the clip req asks for into frames (F, H, W, 3) RGB. */
typedef rl_status (*rl_eval_gen_fn)(void *user, const rl_eval_req *req, uint8_t *frames,
                                    rl_err *err);

typedef struct {
    const char *name;          // shown in the table ("ground truth", a model folder)
    rl_eval_gen_fn gen;
    void *user;
    int model;                 // 1: follows guidance, negative prompts and travel
    const char *na_reason;     // why the model rows are n/a when !model
    float guidance;            // guidance of the adherence clips (shown; 0: not applicable)
} rl_eval_source;

/* The ground-truth source: parses the prompt and renders it (unstated background and colour
 * drawn from the seed). Ignores guidance, negative prompts and travel. */
rl_eval_source rl_eval_source_truth(void);

typedef struct {
    int F, H, W;                              // clip size (16, 64, 64)
    int n_in, n_heldout;                      // prompts per set (48, 48), <= RL_EVAL_MAX_SET
    int n_seeds;                              // seeds per prompt (1), 1..RL_EVAL_MAX_SEEDS
    int n_guidance, n_negative, n_travel;     // prompts for the model rows (48, 16, 8)
    int keep_frames;                          // keep every clip's frames (for the report)
    rl_clipscore *clip;                       // CLIP pair for the CLIP score; NULL: n/a
    const char *clip_na;                      // why, when clip is NULL
    void (*progress)(void *user, int i, int n);   // optional: clip i (1-based) of n
    void *progress_user;
} rl_eval_opts;

rl_eval_opts rl_eval_default_opts(void);

/* The prompt set: prompt i of a set (0: in-distribution, 1: held-out), its attributes (bg -1
 * when unstated) and seed. A pure function: the same for any set size. */
void rl_eval_prompt(int set, int i, char prompt[96], rl_shapes_attr *want, uint64_t *seed);

enum { RL_EVAL_BG, RL_EVAL_COLOR, RL_EVAL_SHAPE, RL_EVAL_MOTION, RL_EVAL_ALL, RL_EVAL_N_ATTR };

typedef struct {
    char prompt[96];
    rl_shapes_attr want;       // bg -1: not stated (not scored)
    int set;                   // 0 in-distribution, 1 held-out
    uint64_t seed;
    rl_shapes_analysis got;
    int hit[RL_EVAL_N_ATTR];   // 1 right, 0 wrong, -1 not scored (unstated background)
    float flicker;             // RMS levels; NAN when no pixel stays background (or F < 4)
    float clip_score;          // cosine of prompt and clip embeddings; NAN when n/a
    float clip_truth;          // the same for the ground-truth render (model sources); NAN
    double seconds;
    uint8_t *frames;           // (F, H, W, 3) when keep_frames, else NULL; owned
} rl_eval_clip;

typedef struct {
    char source[160];
    int F, H, W;
    int n_clips;
    rl_eval_clip *clips;                       // owned
    int right[2][RL_EVAL_N_ATTR], scored[2][RL_EVAL_N_ATTR];   // [set][attribute]
    int persistent[2], total[2];
    double flicker;                            // mean over the n_flicker clips that have
                                               // background pixels, RMS levels; NAN if none
    int n_flicker;
    double sec_per_clip;
    int n_seeds;
    float guidance;                            // of the adherence clips (0: n/a)
    int has_clip;                              // the CLIP rows below are filled
    char clip_na[200];                         // why not, when !has_clip
    double clip_gen[2], clip_truth[2];         // [set] mean CLIP score, source and ground truth
    double clip_mismatch[2];                   // [set] mean over mismatched (prompt, clip) pairs
    int model;                                 // the model rows below are filled
    char na_reason[160];
    int n_guidance;                            // clips of the guidance row, and per attribute
    int guid_right_default[RL_EVAL_N_ATTR];    // those right at the default guidance,
    int guid_right_one[RL_EVAL_N_ATTR];        // at guidance 1,
    int guid_scored[RL_EVAL_N_ATTR];           // and those scored (an unstated background is not)
    int n_negative, neg_x_without, neg_x_with;
    int n_travel, travel_start_a, travel_end_b;
    double travel_t[RL_SHAPES_MAX_FRAMES];     // (F) mean position on A -> B per frame over
                                               // the clips with an object there; NAN if none
    int travel_n[RL_SHAPES_MAX_FRAMES];        // (F) those clips
    int has_textsep;                           // the text-separation rows below are filled
    double text_norm;                          // mean |last hidden state| per token
    struct {
        int a, b;                              // the closest pair of values of the attribute
        double min, median;                    // its distance; the median over all pairs
    } textsep[RL_EVAL_ALL];                    // [background, colour, shape, motion]
} rl_eval_result;

/* Text embeddings of one prompt, (L, D): what the UNet's cross-attention reads. */
typedef rl_status (*rl_eval_encode_fn)(void *user, const char *prompt, float *out, rl_err *err);

/* How far apart the text encoder puts captions that differ in one attribute only: for each
 * attribute, "a {colour} {shape} {motion} on a {background} background" with that attribute
 * run over its values (the others fixed: red, square, moving up, black); a pair's distance is
 * the mean over the L token positions of the L2 distance of the two embeddings. Fills
 * res->textsep (closest pair, its distance, median pair distance) and res->text_norm. A pair
 * the encoder maps together is a pair the UNet cannot tell apart, however long it trains.
 * Errors: RL_E_NOMEM and those of enc. */
rl_status rl_eval_text_separation(rl_eval_result *res, rl_eval_encode_fn enc, void *user, int L,
                                  int D, rl_err *err);

/* Runs the whole evaluation. On failure the result is freed and err says which clip failed.
 * Errors: RL_E_PARAM (bad options), RL_E_NOMEM, and whatever the source returns. */
rl_status rl_eval_run(rl_eval_result *res, const rl_eval_source *src, const rl_eval_opts *opts,
                      rl_err *err);
void rl_eval_result_free(rl_eval_result *res);   // idempotent

/* The table as text, and everything (table and clips) as JSON. */
void rl_eval_print_table(FILE *f, const rl_eval_result *res);
void rl_eval_print_json(FILE *f, const rl_eval_result *res);

/* Writes dir/index.html (the table on top, then every clip beside its prompt and verdict,
 * misses highlighted) and dir/clips/NNN.mp4 (clips need keep_frames). The page opens from the
 * file system, no server. Errors: RL_E_IO (dir missing or unwritable), RL_E_CODEC. */
rl_status rl_eval_write_report(const char *dir, const rl_eval_result *res, rl_err *err);

/* Clips from files (`reel eval FILE...`): frames (F, H, W, 3) of any size, area-averaged to
 * RL_EVAL_FILE_SIDE square first when they have another size (the analyzer's thresholds are set in
 * pixels of 64 x 64 frames, and reel writes clips upscaled), are analysed into c; when prompt
 * parses as a shapes-world caption the verdict is scored against it (c->want, c->hit), otherwise
 * every hit is -1. prompt may be NULL. Errors: RL_E_PARAM (F outside 1..RL_SHAPES_MAX_FRAMES,
 * frames under 8 x 8), RL_E_NOMEM. */
#define RL_EVAL_FILE_SIDE 64
rl_status rl_eval_analyze_frames(rl_eval_clip *c, const uint8_t *frames, int F, int H, int W,
                                 const char *prompt, rl_err *err);

/* The verdicts of n clips read from files names[i], and the adherence over those with a
 * shapes-world prompt: as text, or as JSON when json is set. */
void rl_eval_print_files(FILE *f, const rl_eval_clip *clips, const char *const *names, int n,
                         int json);

#endif
