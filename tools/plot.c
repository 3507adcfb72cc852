/* tools/plot.c - see plot.h. A small raster: axes, grid, text in a built-in 3x5 pixel font
 * drawn at twice its size, points and lines; no font files, no plotting library. */
#include "tools/plot.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"

#define CSV_LIMIT ((size_t)1 << 30)
#define TEXT_SCALE 2
#define GLYPH_ADV (4 * TEXT_SCALE)      // 3 columns and a gap
#define GLYPH_H (5 * TEXT_SCALE)

// ---- reading --------------------------------------------------------------------------------

void rl_loss_log_free(rl_loss_log *log)
{
    if (!log) return;
    free(log->step);
    free(log->loss);
    memset(log, 0, sizeof *log);
}

/* Field k (0-based) of a comma-separated line [s, e), as [*fs, *fe). 0 when absent. */
static int field(const char *s, const char *e, int k, const char **fs, const char **fe)
{
    for (int i = 0; i < k; i++) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        if (!c) return 0;
        s = c + 1;
    }
    const char *c = memchr(s, ',', (size_t)(e - s));
    *fs = s;
    *fe = c ? c : e;
    while (*fs < *fe && isspace((unsigned char)**fs)) (*fs)++;
    while (*fe > *fs && isspace((unsigned char)(*fe)[-1])) (*fe)--;
    return 1;
}

static int field_is(const char *s, const char *e, const char *name)
{
    size_t n = strlen(name);
    return (size_t)(e - s) == n && !memcmp(s, name, n);
}

static int parse_num(const char *s, const char *e, double *v)
{
    char buf[64];
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    *v = strtod(buf, &end);
    return *end == 0;      // "nan" and "inf" parse; the caller decides
}

rl_status rl_loss_log_read(const char *path, rl_loss_log *log, rl_err *err)
{
    memset(log, 0, sizeof *log);
    char *text = NULL;
    size_t len = 0;
    rl_status rc = rl_file_read(path, CSV_LIMIT, "loss log", &text, &len, err);
    if (rc) return rc;
    int c_step = -1, c_loss = -1;
    long line = 0, cap = 0;
    const char *p = text, *end = text + len;
    while (p < end && !rc) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e--;
        line++;
        if (e == p) {               // blank line
            p = nl ? nl + 1 : end;
            continue;
        }
        if (c_step < 0) {           // the header
            const char *fs, *fe;
            for (int k = 0; field(p, e, k, &fs, &fe); k++) {
                if (field_is(fs, fe, "step") && c_step < 0) c_step = k;
                if (field_is(fs, fe, "loss") && c_loss < 0) c_loss = k;
            }
            if (c_step < 0 || c_loss < 0) {
                rc = rl_errf(err, RL_E_FORMAT,
                             "%s:%ld: the header names no 'step' and 'loss' columns "
                             "(a loss log of `reel train` starts \"step,loss,...\")", path, line);
                break;
            }
        } else {
            const char *ss, *se, *ls, *le;
            double step, loss;
            if (!field(p, e, c_step, &ss, &se) || !field(p, e, c_loss, &ls, &le)) {
                rc = rl_errf(err, RL_E_FORMAT, "%s:%ld: fewer columns than the header", path, line);
                break;
            }
            if (!parse_num(ss, se, &step) || !isfinite(step) || !parse_num(ls, le, &loss)) {
                rc = rl_errf(err, RL_E_FORMAT, "%s:%ld: step or loss is not a number: \"%.*s\"",
                             path, line, (int)(e - p > 80 ? 80 : e - p), p);
                break;
            }
            if (!(isfinite(loss) && loss > 0)) {
                log->skipped++;
            } else {
                if (log->n == cap) {
                    long nc = cap ? 2 * cap : 1024;
                    double *a = realloc(log->step, (size_t)nc * sizeof *a);
                    if (a) log->step = a;
                    double *b = a ? realloc(log->loss, (size_t)nc * sizeof *b) : NULL;
                    if (b) log->loss = b;
                    if (!a || !b) {
                        rc = rl_errf(err, RL_E_NOMEM, "%s: out of memory at line %ld", path, line);
                        break;
                    }
                    cap = nc;
                }
                log->step[log->n] = step;
                log->loss[log->n] = loss;
                log->n++;
            }
        }
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (!rc && c_step < 0) rc = rl_errf(err, RL_E_FORMAT, "%s: empty loss log", path);
    if (!rc && log->n == 0)
        rc = rl_errf(err, RL_E_FORMAT, "%s: no rows with a positive finite loss (%ld skipped)",
                     path, log->skipped);
    if (rc) rl_loss_log_free(log);
    return rc;
}

// ---- the frame: where data values land in pixels ---------------------------------------------

typedef struct {
    int x0, x1, y0, y1;         // plot area, pixels (y0 top)
    double xmin, xmax;          // steps
    double lmin, lmax;          // log10 loss
    int minor;                  // ticks at 2 and 5 within each decade
} frame;

rl_plot_opts rl_plot_default_opts(void)
{
    return (rl_plot_opts){.width = 960, .height = 540, .smooth = 0.02, .title = NULL};
}

static void make_frame(const rl_loss_log *logs, int n, const rl_plot_opts *o, frame *f)
{
    double lo = INFINITY, hi = -INFINITY, smax = 0, smin = INFINITY;
    for (int i = 0; i < n; i++)
        for (long k = 0; k < logs[i].n; k++) {
            lo = fmin(lo, logs[i].loss[k]);
            hi = fmax(hi, logs[i].loss[k]);
            smax = fmax(smax, logs[i].step[k]);
            smin = fmin(smin, logs[i].step[k]);
        }
    f->lmin = floor(log10(lo));
    f->lmax = ceil(log10(hi));
    if (f->lmax <= f->lmin) f->lmax = f->lmin + 1;
    f->minor = f->lmax - f->lmin <= 3;
    f->xmin = smin < 0 ? smin : 0;
    f->xmax = smax > f->xmin ? smax : f->xmin + 1;
    f->x0 = 11 * GLYPH_ADV;
    f->x1 = o->width - 3 * GLYPH_ADV;
    f->y0 = 3 * GLYPH_H + 8;
    f->y1 = o->height - 3 * GLYPH_H - 12;
}

static double px_x(const frame *f, double step)
{
    return f->x0 + (step - f->xmin) / (f->xmax - f->xmin) * (f->x1 - f->x0);
}

static double px_y(const frame *f, double loss)
{
    return f->y1 - (log10(loss) - f->lmin) / (f->lmax - f->lmin) * (f->y1 - f->y0);
}

static rl_status check_args(const rl_loss_log *logs, int n, const rl_plot_opts *o, rl_err *err)
{
    if (o->width < 200 || o->width > 8192 || o->height < 150 || o->height > 8192)
        return rl_errf(err, RL_E_PARAM, "plot size %dx%d outside 200..8192 x 150..8192",
                       o->width, o->height);
    if (!(o->smooth >= 0 && o->smooth <= 1))
        return rl_errf(err, RL_E_PARAM, "plot smoothing %g outside 0..1", o->smooth);
    if (!logs || n < 1) return rl_errf(err, RL_E_PARAM, "plot: no loss logs");
    for (int i = 0; i < n; i++)
        if (logs[i].n < 1) return rl_errf(err, RL_E_PARAM, "plot: loss log %d has no rows", i + 1);
    return RL_OK;
}

int rl_plot_point(const rl_loss_log *logs, int n, const rl_plot_opts *opts, double step,
                  double loss, int *x, int *y)
{
    rl_plot_opts o = opts ? *opts : rl_plot_default_opts();
    *x = *y = -1;
    if (check_args(logs, n, &o, NULL) || !(loss > 0) || !isfinite(step)) return -1;
    frame f;
    make_frame(logs, n, &o, &f);
    double px = px_x(&f, step), py = px_y(&f, loss);
    if (px < f.x0 - 0.5 || px > f.x1 + 0.5 || py < f.y0 - 0.5 || py > f.y1 + 0.5) return -1;
    *x = (int)lround(px);
    *y = (int)lround(py);
    return 0;
}

// ---- raster ---------------------------------------------------------------------------------

typedef struct {
    uint8_t *px;
    int w, h;
} canvas;

static void put(canvas *c, int x, int y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3, rgb, 3);
}

static void rect(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3])
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(c, x, y, rgb);
}

/* A line of the given thickness (square pen), Bresenham's walk. */
static void line(canvas *c, int xa, int ya, int xb, int yb, int thick, const uint8_t rgb[3])
{
    int dx = abs(xb - xa), sx = xa < xb ? 1 : -1;
    int dy = -abs(yb - ya), sy = ya < yb ? 1 : -1;
    int e = dx + dy, lo = -(thick - 1) / 2, hi = thick / 2;
    for (;;) {
        rect(c, xa + lo, ya + lo, xa + hi, ya + hi, rgb);
        if (xa == xb && ya == yb) break;
        int e2 = 2 * e;
        if (e2 >= dy) { e += dy; xa += sx; }
        if (e2 <= dx) { e += dx; ya += sy; }
    }
}

/* 3x5 glyphs, five rows of three pixels each, top row first ('#' lit). Letters have one
 * (capital) form. */
static const struct { char c; const char *rows; } FONT[] = {
    {'0', "###" "#.#" "#.#" "#.#" "###"}, {'1', ".#." "##." ".#." ".#." "###"},
    {'2', "###" "..#" "###" "#.." "###"}, {'3', "###" "..#" "###" "..#" "###"},
    {'4', "#.#" "#.#" "###" "..#" "..#"}, {'5', "###" "#.." "###" "..#" "###"},
    {'6', "###" "#.." "###" "#.#" "###"}, {'7', "###" "..#" "..#" "..#" "..#"},
    {'8', "###" "#.#" "###" "#.#" "###"}, {'9', "###" "#.#" "###" "..#" "###"},
    {'a', ".#." "#.#" "###" "#.#" "#.#"}, {'b', "##." "#.#" "##." "#.#" "##."},
    {'c', ".##" "#.." "#.." "#.." ".##"}, {'d', "##." "#.#" "#.#" "#.#" "##."},
    {'e', "###" "#.." "##." "#.." "###"}, {'f', "###" "#.." "##." "#.." "#.."},
    {'g', ".##" "#.." "#.#" "#.#" ".##"}, {'h', "#.#" "#.#" "###" "#.#" "#.#"},
    {'i', "###" ".#." ".#." ".#." "###"}, {'j', "..#" "..#" "..#" "#.#" ".#."},
    {'k', "#.#" "#.#" "##." "#.#" "#.#"}, {'l', "#.." "#.." "#.." "#.." "###"},
    {'m', "#.#" "###" "###" "#.#" "#.#"}, {'n', "##." "#.#" "#.#" "#.#" "#.#"},
    {'o', ".#." "#.#" "#.#" "#.#" ".#."}, {'p', "##." "#.#" "##." "#.." "#.."},
    {'q', ".#." "#.#" "#.#" "##." ".##"}, {'r', "##." "#.#" "##." "#.#" "#.#"},
    {'s', ".##" "#.." ".#." "..#" "##."}, {'t', "###" ".#." ".#." ".#." ".#."},
    {'u', "#.#" "#.#" "#.#" "#.#" "###"}, {'v', "#.#" "#.#" "#.#" "#.#" ".#."},
    {'w', "#.#" "#.#" "###" "###" "#.#"}, {'x', "#.#" "#.#" ".#." "#.#" "#.#"},
    {'y', "#.#" "#.#" ".#." ".#." ".#."}, {'z', "###" "..#" ".#." "#.." "###"},
    {'.', "..." "..." "..." "..." ".#."}, {',', "..." "..." "..." ".#." "#.."},
    {'-', "..." "..." "###" "..." "..."}, {'+', "..." ".#." "###" ".#." "..."},
    {':', "..." ".#." "..." ".#." "..."}, {'=', "..." "###" "..." "###" "..."},
    {'/', "..#" "..#" ".#." "#.." "#.."}, {'_', "..." "..." "..." "..." "###"},
    {'(', "..#" ".#." ".#." ".#." "..#"}, {')', "#.." ".#." ".#." ".#." "#.."},
    {'%', "#.#" "..#" ".#." "#.." "#.#"}, {'?', "###" "..#" ".#." "..." ".#."},
};

static const char *glyph(char ch)
{
    char c = (char)tolower((unsigned char)ch);
    if (c == ' ') return "...............";
    for (size_t i = 0; i < sizeof FONT / sizeof FONT[0]; i++)
        if (FONT[i].c == c) return FONT[i].rows;
    return glyph('?');
}

static int text_w(const char *s) { return (int)strlen(s) * GLYPH_ADV - TEXT_SCALE; }

static void text(canvas *c, int x, int y, const char *s, const uint8_t rgb[3])
{
    for (; *s; s++, x += GLYPH_ADV) {
        const char *g = glyph(*s);
        for (int r = 0; r < 5; r++)
            for (int k = 0; k < 3; k++)
                if (g[r * 3 + k] == '#')
                    rect(c, x + k * TEXT_SCALE, y + r * TEXT_SCALE, x + k * TEXT_SCALE + TEXT_SCALE - 1,
                         y + r * TEXT_SCALE + TEXT_SCALE - 1, rgb);
    }
}

static const uint8_t PALETTE[][3] = {
    {31, 94, 180}, {222, 110, 20}, {40, 150, 60}, {200, 40, 40},
    {130, 80, 180}, {120, 80, 60}, {210, 80, 160}, {90, 90, 90},
};
#define N_PALETTE ((int)(sizeof PALETTE / sizeof PALETTE[0]))

void rl_plot_series_rgb(int i, uint8_t rgb[3])
{
    memcpy(rgb, PALETTE[((i % N_PALETTE) + N_PALETTE) % N_PALETTE], 3);
}

/* A round step for about `want` ticks across span: 1, 2 or 5 times a power of ten. */
static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

rl_status rl_plot_losses(const rl_loss_log *logs, const char *const *labels, int n,
                         const rl_plot_opts *opts, uint8_t **rgb, rl_err *err)
{
    *rgb = NULL;
    rl_plot_opts o = opts ? *opts : rl_plot_default_opts();
    rl_status rc = check_args(logs, n, &o, err);
    if (rc) return rc;
    canvas c = {malloc((size_t)o.width * (size_t)o.height * 3), o.width, o.height};
    if (!c.px) return rl_errf(err, RL_E_NOMEM, "plot: out of memory");
    memset(c.px, 255, (size_t)o.width * (size_t)o.height * 3);
    frame f;
    make_frame(logs, n, &o, &f);
    static const uint8_t ink[3] = {40, 40, 40}, grid[3] = {225, 225, 225}, axis[3] = {120, 120, 120};

    // grid and tick labels: y at each decade (and 2, 5 within it when few decades)
    char buf[64];
    for (int d = (int)f.lmin; d <= (int)f.lmax; d++)
        for (int m = 1; m <= 5; m += m == 1 ? 1 : 3) {     // 1, 2, 5
            if (m > 1 && (!f.minor || d == (int)f.lmax)) continue;
            double v = m * pow(10, d);
            int y = (int)lround(px_y(&f, v));
            line(&c, f.x0, y, f.x1, y, 1, grid);
            snprintf(buf, sizeof buf, "%g", v);
            text(&c, f.x0 - text_w(buf) - 8, y - GLYPH_H / 2, buf, ink);
        }
    double xs = nice_step(f.xmax - f.xmin, 6);
    for (double s = ceil(f.xmin / xs) * xs; s <= f.xmax + 1e-9 * xs; s += xs) {
        int x = (int)lround(px_x(&f, s));
        line(&c, x, f.y0, x, f.y1, 1, grid);
        snprintf(buf, sizeof buf, "%.10g", s);
        text(&c, x - text_w(buf) / 2, f.y1 + 8, buf, ink);
    }
    line(&c, f.x0, f.y1, f.x1, f.y1, 1, axis);
    line(&c, f.x0, f.y0, f.x0, f.y1, 1, axis);
    const char *title = o.title ? o.title : "training loss";
    text(&c, (o.width - text_w(title)) / 2, 8, title, ink);
    text(&c, (f.x0 + f.x1 - text_w("step")) / 2, f.y1 + 16 + GLYPH_H, "step", ink);
    text(&c, 8, f.y0 - GLYPH_H - 8, "loss (log)", ink);

    long longest = 0;
    for (int i = 0; i < n; i++) longest = logs[i].n > longest ? logs[i].n : longest;
    double window = o.smooth * (double)longest;
    double alpha = window > 1 ? 2 / (window + 1) : 1;

    // raw points first (faint), then every smoothed line over them
    for (int i = 0; i < n; i++) {
        uint8_t col[3], faint[3];
        rl_plot_series_rgb(i, col);
        for (int k = 0; k < 3; k++) faint[k] = (uint8_t)(255 - (255 - col[k]) * 30 / 100);
        for (long k = 0; k < logs[i].n; k++)
            put(&c, (int)lround(px_x(&f, logs[i].step[k])), (int)lround(px_y(&f, logs[i].loss[k])),
                faint);
    }
    int ly = f.y0 + 8;
    for (int i = 0; i < n; i++) {
        uint8_t col[3];
        rl_plot_series_rgb(i, col);
        // EMA of log10(loss), debiased at the start (its weights sum to one from the first row)
        double acc = 0, wsum = 0, last = 0;
        int px = 0, py = 0;
        for (long k = 0; k < logs[i].n; k++) {
            acc = (1 - alpha) * acc + alpha * log10(logs[i].loss[k]);
            wsum = (1 - alpha) * wsum + alpha;
            last = pow(10, acc / wsum);
            int x = (int)lround(px_x(&f, logs[i].step[k])), y = (int)lround(px_y(&f, last));
            if (k == 0) put(&c, x, y, col);
            else line(&c, px, py, x, y, 2, col);
            px = x;
            py = y;
        }
        snprintf(buf, sizeof buf, "%s  %.4g", labels && labels[i] ? labels[i] : "loss", last);
        int tx = f.x1 - text_w(buf) - 12;
        rect(&c, tx - 30, ly + 3, tx - 10, ly + GLYPH_H - 4, col);
        text(&c, tx, ly, buf, ink);
        ly += GLYPH_H + 8;
    }
    *rgb = c.px;
    return RL_OK;
}
