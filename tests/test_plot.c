/* tests/test_plot.c - `reel train --plot`: the loss-log reader (columns found by name, bad
 * rows named by line), where the chart puts values (a known curve lands on its pixels), and the
 * PNG writer (decoded back by FFmpeg, byte for byte; nothing left behind on failure). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/png.h"
#include "io/video.h"
#include "tests/harness.h"
#include "tools/plot.h"

static const char *write_text(rl_test *t, const char *name, const char *text)
{
    const char *p = rl_test_tmp_path(t, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        rl_test_fail(t, "cannot write %s", p);
        return p;
    }
    fputs(text, f);
    fclose(f);
    return p;
}

static void read_ok(rl_test *t, const char *arg)
{
    (void)arg;
    // columns in another order, extra columns, CRLF, a blank line, a NaN and a zero loss
    const char *p = write_text(t, "log.csv",
                               "lr,loss,step,x\r\n0.1,0.5,1,9\r\n\r\n0.1,nan,2,9\r\n0.1,0,3,9\r\n"
                               "0.1,0.25,4,9\r\n0.1,1e-3,5,9");
    rl_loss_log log;
    rl_err err = {0};
    RL_CHECK(t, rl_loss_log_read(p, &log, &err) == RL_OK);
    RL_CHECK(t, log.n == 3 && log.skipped == 2);
    if (log.n == 3) {
        RL_CHECK(t, log.step[0] == 1 && log.loss[0] == 0.5);
        RL_CHECK(t, log.step[1] == 4 && log.loss[1] == 0.25);
        RL_CHECK(t, log.step[2] == 5 && log.loss[2] == 1e-3);
    }
    rl_loss_log_free(&log);
    rl_loss_log_free(&log);    // idempotent
}

static void expect_fail(rl_test *t, const char *name, const char *text, rl_status want,
                        const char *needle)
{
    const char *p = text ? write_text(t, name, text) : rl_test_tmp_path(t, name);
    rl_loss_log log;
    rl_err err = {0};
    rl_status rc = rl_loss_log_read(p, &log, &err);
    rl_test_check(t, rc == want && strstr(err.msg, needle) && strstr(err.msg, name) && !log.step,
                  "%s: status %d (want %d), message \"%s\" names the file and \"%s\"", name, rc,
                  want, err.msg, needle);
}

static void read_bad(rl_test *t, const char *arg)
{
    (void)arg;
    expect_fail(t, "missing.csv", NULL, RL_E_MISSING, "missing.csv");
    expect_fail(t, "empty.csv", "", RL_E_FORMAT, "empty");
    expect_fail(t, "header.csv", "a,b\n1,2\n", RL_E_FORMAT, ":1:");
    expect_fail(t, "word.csv", "step,loss\n1,0.5\n2,abc\n", RL_E_FORMAT, ":3:");
    expect_fail(t, "short.csv", "step,x,loss\n1,2\n", RL_E_FORMAT, ":2: fewer columns");
    expect_fail(t, "norows.csv", "step,loss\n1,-1\n2,inf\n", RL_E_FORMAT, "2 skipped");
    expect_fail(t, "huge.csv", "step,loss\n1,0.5\n1,123456789012345678901234567890123456789012345678"
                "901234567890123456789\n", RL_E_FORMAT, ":3:");
}

static int is_rgb(const uint8_t *img, int w, int x, int y, const uint8_t rgb[3])
{
    return !memcmp(img + ((size_t)y * (size_t)w + (size_t)x) * 3, rgb, 3);
}

/* A falling curve, drawn without smoothing: at each row's step, the line's colour sits at the
 * pixel row rl_plot_y_of gives for its loss (within the 2-pixel pen). */
static void curve_lands(rl_test *t, const char *arg)
{
    (void)arg;
    enum { N = 400 };
    double step[N], loss[N], flat[N];
    for (int i = 0; i < N; i++) {
        step[i] = i * 10;
        loss[i] = pow(10, -2.5 * i / (N - 1));     // 1 .. 0.00316
        flat[i] = 0.3;
    }
    rl_loss_log logs[2] = {{step, loss, N, 0}, {step, flat, N, 0}};
    const char *labels[2] = {"falling", "flat"};
    rl_plot_opts o = rl_plot_default_opts();
    o.smooth = 0;
    uint8_t *img = NULL;
    rl_err err = {0};
    RL_CHECK(t, rl_plot_losses(logs, labels, 2, &o, &img, &err) == RL_OK && img);
    if (!img) return;
    uint8_t c0[3], c1[3];
    rl_plot_series_rgb(0, c0);
    rl_plot_series_rgb(1, c1);
    RL_CHECK(t, memcmp(c0, c1, 3) != 0);
    int hits = 0, tried = 0, x, y, yf;
    RL_CHECK(t, rl_plot_point(logs, 2, &o, 0, 0.3, &x, &yf) == 0);
    for (int i = 3; i < N; i += 7) {
        RL_CHECK(t, rl_plot_point(logs, 2, &o, step[i], loss[i], &x, &y) == 0);
        if (abs(y - yf) < 4) continue;          // where the flat line crosses over it
        int found = 0;
        for (int dy = -1; dy <= 1; dy++) found |= is_rgb(img, o.width, x, y + dy, c0);
        tried++;
        hits += found;
    }
    rl_test_check(t, tried > 40 && hits == tried,
                  "falling curve: its colour at %d of %d sampled (step, loss) pixels", hits, tried);
    int run = 0;
    for (int x0 = 0; x0 < o.width; x0++)
        run += is_rgb(img, o.width, x0, yf, c1) || is_rgb(img, o.width, x0, yf + 1, c1);
    rl_test_check(t, run > o.width * 7 / 10, "flat line at 0.3: %d of %d columns at its row %d", run,
                  o.width, yf);
    // no other series' colour where nothing was drawn: the top-left corner of the plot area
    int x1, y1;
    RL_CHECK(t, rl_plot_point(logs, 2, &o, step[N - 1], 1.0, &x1, &y1) == 0);
    RL_CHECK(t, !is_rgb(img, o.width, x1 - 40, y1 + 40, c0) && !is_rgb(img, o.width, x1 - 40, y1 + 40, c1));
    // ordering: a lower loss sits lower on the image; outside the axis range -> -1
    int ya, yb;
    RL_CHECK(t, rl_plot_point(logs, 2, &o, 0, 0.01, &x, &ya) == 0 &&
                rl_plot_point(logs, 2, &o, 0, 0.1, &x, &yb) == 0 && ya > yb);
    RL_CHECK(t, rl_plot_point(logs, 2, &o, 0, 1e-6, &x, &y) == -1 && y == -1);
    RL_CHECK(t, rl_plot_point(logs, 2, &o, 0, 0, &x, &y) == -1);
    RL_CHECK(t, rl_plot_point(logs, 2, &o, 1e6, 0.1, &x, &y) == -1);
    free(img);
}

static void plot_params(rl_test *t, const char *arg)
{
    (void)arg;
    double s[1] = {1}, l[1] = {0.5};
    rl_loss_log log = {s, l, 1, 0}, none = {0};
    rl_plot_opts o = rl_plot_default_opts();
    uint8_t *img = (uint8_t *)1;
    rl_err err = {0};
    RL_CHECK(t, rl_plot_losses(&log, NULL, 0, &o, &img, &err) == RL_E_PARAM && !img);
    RL_CHECK(t, rl_plot_losses(&none, NULL, 1, &o, &img, &err) == RL_E_PARAM);
    o.width = 10;
    RL_CHECK(t, rl_plot_losses(&log, NULL, 1, &o, &img, &err) == RL_E_PARAM);
    o = rl_plot_default_opts();
    o.smooth = 2;
    RL_CHECK(t, rl_plot_losses(&log, NULL, 1, &o, &img, &err) == RL_E_PARAM);
    o = rl_plot_default_opts();   // one point: a chart all the same
    RL_CHECK(t, rl_plot_losses(&log, NULL, 1, &o, &img, &err) == RL_OK && img);
    free(img);
}

static void png_roundtrip(rl_test *t, const char *arg)
{
    (void)arg;
    enum { W = 37, H = 21 };
    uint8_t *img = rl_test_alloc(t, W * H * 3);
    for (int i = 0; i < W * H * 3; i++) img[i] = (uint8_t)(i * 7 + i / 97);
    const char *p = rl_test_tmp_path(t, "img.png");
    rl_err err = {0};
    RL_CHECK(t, rl_png_write(p, img, W, H, &err) == RL_OK);
    uint8_t *back = NULL;
    int n = 0, w = 0, h = 0;
    RL_CHECK(t, rl_video_read_frames(p, 0, &back, &n, &w, &h, &err) == RL_OK);
    rl_test_check(t, back && n == 1 && w == W && h == H && !memcmp(back, img, W * H * 3),
                  "PNG decoded back: %d frame(s) of %dx%d, same bytes", n, w, h);
    free(back);
    // failures leave nothing behind
    const char *q = rl_test_tmp_path(t, "no/such/dir/x.png");
    RL_CHECK(t, rl_png_write(q, img, W, H, &err) == RL_E_IO && strstr(err.msg, "x.png"));
    const char *r = rl_test_tmp_path(t, "zero.png");
    RL_CHECK(t, rl_png_write(r, img, 0, H, &err) == RL_E_PARAM && access(r, F_OK) != 0);
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.partial", p);
    RL_CHECK(t, access(partial, F_OK) != 0);
}

int main(int argc, char **argv)
{
    static const rl_test_case cases[] = {
        {"read_ok", read_ok, NULL},
        {"read_bad", read_bad, NULL},
        {"curve_lands", curve_lands, NULL},
        {"plot_params", plot_params, NULL},
        {"png_roundtrip", png_roundtrip, NULL},
        {0},
    };
    return rl_test_run(argc, argv, cases);
}
