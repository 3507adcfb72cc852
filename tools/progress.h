/* tools/progress.h - one-line progress on a terminal: phase, step i of n, rate, time left.
 * Silent when stderr is not a terminal or when quiet. */
#ifndef RL_TOOLS_PROGRESS_H
#define RL_TOOLS_PROGRESS_H

typedef struct {
    int enabled;          // stderr is a terminal and not --quiet
    int phase;            // current phase (caller's numbering), -1 before the first
    double t_phase;       // start of the current phase (monotonic seconds)
    double t_last;        // last redraw
    int width;            // characters drawn last time (to blank the rest of the line)
} rl_progress;

void rl_progress_init(rl_progress *p, int quiet);
/* Shows "label  i/n  [bar]  rate unit/s  ETA"; redraws at most 10 times a second and always
 * on the last step. A new phase number ends the previous line. */
void rl_progress_update(rl_progress *p, int phase, const char *label, int i, int n,
                        const char *unit);
/* Ends the current line (with a newline) if anything was drawn. */
void rl_progress_done(rl_progress *p);

#endif
