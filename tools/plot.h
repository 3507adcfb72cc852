/* tools/plot.h - training curves: a loss log (the CSV `reel train` writes) to an RGB image of
 * the loss against the step, log-scaled, for `reel train --plot`. Several logs share one chart
 * (stages, or the runs of an ablation), each in its own colour: the raw losses as faint points,
 * their exponential moving average as a line, a legend with the last smoothed value. */
#ifndef RL_TOOLS_PLOT_H
#define RL_TOOLS_PLOT_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    double *step, *loss;    // (n) each; rows whose loss is not finite and > 0 are dropped
    long n;
    long skipped;           // rows dropped for a loss that cannot go on a log scale
} rl_loss_log;

/* Reads a CSV whose header names a "step" and a "loss" column (any order, other columns
 * ignored). Errors name the file and line: RL_E_MISSING / RL_E_IO (cannot read),
 * RL_E_FORMAT (no header with step and loss, a field that is not a number, no rows).
 * On failure *log is zeroed. */
rl_status rl_loss_log_read(const char *path, rl_loss_log *log, rl_err *err);
void rl_loss_log_free(rl_loss_log *log);    // idempotent

typedef struct {
    int width, height;      // pixels, 200..8192 x 150..8192
    double smooth;          // EMA window as a share of the longest log's rows (0..1; 0: none)
    const char *title;      // NULL: "training loss"
} rl_plot_opts;

rl_plot_opts rl_plot_default_opts(void);   // 960 x 540, smooth 0.02

/* Draws n logs (labels[i] names logs[i] in the legend) into *rgb: malloc'd (height, width, 3)
 * bytes the caller frees. Errors: RL_E_PARAM (bad size, no logs, a log with no rows),
 * RL_E_NOMEM. */
rl_status rl_plot_losses(const rl_loss_log *logs, const char *const *labels, int n,
                         const rl_plot_opts *opts, uint8_t **rgb, rl_err *err);

/* The colour of series i (RGB), as drawn: the smoothed line. */
void rl_plot_series_rgb(int i, uint8_t rgb[3]);

/* The pixel (column *x, row *y) where (step, loss) sits on the chart rl_plot_losses would draw
 * for these logs and options; returns 0 when it falls inside the axes, -1 outside (or for bad
 * arguments). For tests and for marking values. */
int rl_plot_point(const rl_loss_log *logs, int n, const rl_plot_opts *opts, double step,
                  double loss, int *x, int *y);

#endif
