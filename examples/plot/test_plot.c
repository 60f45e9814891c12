/* The plotting module: a figure written as PNG, SVG and PDF, the PNG read
 * back with cairo and its pixels checked where the data put them; the
 * training log read through nb_csv_read and plotted.
 *
 * The expected pixel positions come from the data (the data rectangle
 * pl_data_rect reports and the linear or logarithmic map written out here),
 * the expected colours from the series; neither is read from the picture.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

static int passed, failed;

/* Records one check; on failure prints where and why, and goes on. */
static void check(bool ok, int line, const char *cond, const char *fmt, ...)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL test_plot.c:%d: %s: ", line, cond);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}
#define CHECK(cond, ...) check((cond), __LINE__, #cond, __VA_ARGS__)

typedef struct png {
    cairo_surface_t *s;
    const unsigned char *data;
    int w, h, stride;
} png;

static bool png_open(const char *path, png *p)
{
    p->s = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(p->s) != CAIRO_STATUS_SUCCESS)
        return false;
    cairo_surface_flush(p->s);
    p->data = cairo_image_surface_get_data(p->s);
    p->w = cairo_image_surface_get_width(p->s);
    p->h = cairo_image_surface_get_height(p->s);
    p->stride = cairo_image_surface_get_stride(p->s);
    return true;
}

/* The pixel at (x, y) as 0xRRGGBB (the PNG is opaque: the figure paints
 * its background first). */
static uint32_t pixel(const png *p, int x, int y)
{
    if (x < 0 || y < 0 || x >= p->w || y >= p->h)
        return 0xff000000u;
    const uint32_t *row = (const uint32_t *)(const void *)(p->data +
                                                           (size_t)y * p->stride);
    return row[x] & 0xffffff;
}

static bool near_color(uint32_t got, uint32_t want, int tol)
{
    for (int shift = 0; shift < 24; shift += 8) {
        int a = (int)(got >> shift & 0xff), b = (int)(want >> shift & 0xff);
        if (abs(a - b) > tol)
            return false;
    }
    return true;
}

/* Whether any pixel of the rectangle is darker than mid grey (text). */
static bool any_dark(const png *p, int x0, int y0, int x1, int y1)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            uint32_t c = pixel(p, x, y);
            if ((c >> 16 & 0xff) + (c >> 8 & 0xff) + (c & 0xff) < 3 * 110)
                return true;
        }
    return false;
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    fclose(f);
    return n;
}

/* The whole file, NUL-terminated (the SVG and PDF are small). */
static char *slurp(const char *path)
{
    long n = file_size(path);
    FILE *f = fopen(path, "rb");
    char *buf = n >= 0 && f ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n)
        buf[n] = '\0';
    else {
        free(buf);
        buf = NULL;
    }
    if (f)
        fclose(f);
    return buf;
}

/* Whether buf[0..n) holds needle (a PDF has NUL bytes in its streams). */
static bool contains(const char *buf, long n, const char *needle)
{
    size_t m = strlen(needle);
    for (long i = 0; buf && i + (long)m <= n; i++)
        if (memcmp(buf + i, needle, m) == 0)
            return true;
    return false;
}

enum { W = 700, H = 400 };
#define LINE_COLOR 0xd62728
#define DOT_COLOR 0x0877bd

static void test_figure(void)
{
    /* Left: a linear panel with a horizontal line at y = 0.5 from x = 0.2
     * to 0.8 and one large marker at (0.25, 0.25). Right: a log panel with
     * a level line at 1e-2, half-way up [1e-4, 1]; below it a 2x2 image
     * of four colours enlarged as blocks. */
    const double lx[2] = {0.2, 0.8}, ly[2] = {0.5, 0.5};
    const double mx[1] = {0.25}, my[1] = {0.25};
    const double gx[2] = {0, 10}, gy[2] = {1e-2, 1e-2};
    pl_series left[2] = {
        {.label = "line", .color = pl_hex(LINE_COLOR), .n = 2, .x = lx,
         .y = ly, .style = PL_LINE, .width = 5},
        {.label = "dot", .color = pl_hex(DOT_COLOR), .n = 1, .x = mx, .y = my,
         .style = PL_MARKERS, .radius = 8},
    };
    pl_series right = {.color = pl_hex(LINE_COLOR), .n = 2, .x = gx, .y = gy,
                       .style = PL_LINE, .width = 5};
    static const unsigned char quad[12] = {255, 0,   0,   0,   255, 0,
                                           0,   0,   255, 255, 255, 0};
    pl_panel panels[3] = {
        {.x = 0, .y = 40, .w = 350, .h = 360, .title = "linear",
         .xlabel = "x", .ylabel = "y", .xmin = 0, .xmax = 1, .ymin = 0,
         .ymax = 1, .xstep = 0.2, .ystep = 0.2, .series = left, .nseries = 2,
         .legend = PL_LEGEND_TOP_RIGHT},
        {.x = 350, .y = 40, .w = 350, .h = 240, .title = "log", .ylog = true,
         .xmin = 0, .xmax = 10, .ymin = 1e-4, .ymax = 1, .series = &right,
         .nseries = 1},
        {.x = 450, .y = 276, .w = 100, .h = 100 + PL_TILE_TITLE_H,
         .title = "tile", .bare = true,
         .image = {.w = 2, .h = 2, .rgb = quad, .pixelated = true}},
    };
    pl_figure fig = {.w = W, .h = H, .title = "test figure",
                     .panels = panels, .npanels = 3};
    CHECK(pl_save(&fig, "plot_test") == 0, "pl_save failed");

    png p = {0};
    bool ok = png_open("plot_test.png", &p);
    CHECK(ok && p.w == W && p.h == H, "PNG read back as %dx%d", p.w, p.h);
    if (!ok) {
        cairo_surface_destroy(p.s);
        return;
    }
    double r[4];
    pl_data_rect(&panels[0], r);
    CHECK(r[0] > 20 && r[2] < 350 && r[1] > 40 && r[3] < 400 &&
              r[2] - r[0] > 200 && r[3] - r[1] > 200,
          "data rectangle [%g, %g) x [%g, %g)", r[0], r[2], r[1], r[3]);
    double sx = (r[2] - r[0]), sy = (r[3] - r[1]);
    int yl = (int)(r[3] - 0.5 * sy); /* the line's row */
    /* On the line, along its length, in the series colour. */
    for (double x = 0.25; x <= 0.751; x += 0.1) {
        int px = (int)(r[0] + x * sx);
        CHECK(near_color(pixel(&p, px, yl), LINE_COLOR, 24),
              "line at x = %.2f (%d, %d): %06x", x, px, yl,
              pixel(&p, px, yl));
    }
    /* Five pixels wide: a row above and below the centre are covered. */
    int mid = (int)(r[0] + 0.5 * sx);
    CHECK(near_color(pixel(&p, mid, yl - 1), LINE_COLOR, 24) &&
              near_color(pixel(&p, mid, yl + 1), LINE_COLOR, 24),
          "the line is thinner than 3 pixels: %06x / %06x",
          pixel(&p, mid, yl - 1), pixel(&p, mid, yl + 1));
    /* Not beyond its ends, and not far above or below it. */
    int before = (int)(r[0] + 0.1 * sx), after = (int)(r[0] + 0.9 * sx);
    CHECK(pixel(&p, before, yl) == 0xffffff, "left of the line: %06x",
          pixel(&p, before, yl));
    CHECK(pixel(&p, after, yl) == 0xffffff, "right of the line: %06x",
          pixel(&p, after, yl));
    CHECK(pixel(&p, mid, yl - 8) == 0xffffff && pixel(&p, mid, yl + 8) ==
              0xffffff,
          "the line is thicker than 5 pixels: %06x / %06x",
          pixel(&p, mid, yl - 8), pixel(&p, mid, yl + 8));
    /* The marker's centre. */
    int dx = (int)(r[0] + 0.25 * sx), dy = (int)(r[3] - 0.25 * sy);
    CHECK(near_color(pixel(&p, dx, dy), DOT_COLOR, 24), "marker: %06x",
          pixel(&p, dx, dy));
    /* Background where nothing is drawn (between grid lines). */
    int bx = (int)(r[0] + 0.5 * sx), by = (int)(r[3] - 0.9 * sy);
    CHECK(pixel(&p, bx, by) == 0xffffff, "empty data area: %06x",
          pixel(&p, bx, by));
    CHECK(pixel(&p, 5, 5) == 0xffffff, "figure corner: %06x",
          pixel(&p, 5, 5));
    /* The frame (axes): dark along the left and bottom edges. */
    int dark_left = 0, dark_bottom = 0;
    for (int k = 1; k < 10; k++) {
        uint32_t a = pixel(&p, (int)r[0] - 1, (int)(r[1] + k * sy / 10));
        uint32_t b = pixel(&p, (int)(r[0] + k * sx / 10), (int)r[3]);
        dark_left += near_color(a, 0x555555, 40);
        dark_bottom += near_color(b, 0x555555, 40);
    }
    CHECK(dark_left == 9 && dark_bottom == 9,
          "frame: %d of 9 left, %d of 9 bottom pixels dark", dark_left,
          dark_bottom);
    /* Tick labels left of the frame and under it, a title above. */
    CHECK(any_dark(&p, 0, (int)r[1], (int)r[0] - 6, (int)r[3]),
          "no y tick labels");
    CHECK(any_dark(&p, (int)r[0], (int)r[3] + 6, (int)r[2], (int)r[3] + 30),
          "no x tick labels");
    CHECK(any_dark(&p, 250, 5, 450, 35), "no figure title");

    /* The log panel: 1e-2 is half-way between 1e-4 and 1. */
    pl_data_rect(&panels[1], r);
    int gyy = (int)((r[1] + r[3]) / 2), gxx = (int)((r[0] + r[2]) / 2);
    CHECK(near_color(pixel(&p, gxx, gyy), LINE_COLOR, 24),
          "log line at (%d, %d): %06x", gxx, gyy, pixel(&p, gxx, gyy));
    CHECK(pixel(&p, gxx, (int)(r[1] + 0.2 * (r[3] - r[1]))) == 0xffffff,
          "above the log line: %06x",
          pixel(&p, gxx, (int)(r[1] + 0.2 * (r[3] - r[1]))));

    /* The tile: four blocks in the image's colours, rows from the top. */
    pl_data_rect(&panels[2], r);
    static const uint32_t want[4] = {0xff0000, 0x00ff00, 0x0000ff, 0xffff00};
    for (int k = 0; k < 4; k++) {
        int x = (int)(r[0] + (k % 2 ? 0.75 : 0.25) * (r[2] - r[0]));
        int y = (int)(r[1] + (k / 2 ? 0.75 : 0.25) * (r[3] - r[1]));
        CHECK(pixel(&p, x, y) == want[k], "tile block %d: %06x, want %06x", k,
              pixel(&p, x, y), want[k]);
    }
    cairo_surface_destroy(p.s);

    char *svg = slurp("plot_test.svg");
    CHECK(svg && strncmp(svg, "<?xml", 5) == 0 && strstr(svg, "<svg") &&
              strstr(svg, "</svg>") && strlen(svg) > 2000,
          "SVG: %.40s... (%ld bytes)", svg ? svg : "(none)",
          file_size("plot_test.svg"));
    CHECK(svg && strstr(svg, "width=\"700px\"") &&
              strstr(svg, "height=\"400px\""),
          "SVG size is not 700x400 px");
    free(svg);
    char *pdf = slurp("plot_test.pdf");
    long pdf_n = file_size("plot_test.pdf");
    CHECK(pdf && strncmp(pdf, "%PDF-", 5) == 0 && pdf_n > 2000,
          "PDF: %.8s (%ld bytes)", pdf ? pdf : "(none)", pdf_n);
    /* 700 x 400 pixels at 96 per inch are 525 x 300 points. */
    CHECK(contains(pdf, pdf_n, "/MediaBox [ 0 0 525 300 ]") &&
              contains(pdf, pdf_n, "%%EOF"),
          "PDF page is not 525x300 pt, or the file is cut short");
    free(pdf);
}

static void test_errors(void)
{
    pl_figure fig = {.w = 10, .h = 10};
    printf("(two error messages expected)\n");
    CHECK(pl_write(&fig, "plot_test.bmp") != 0, "a .bmp name was accepted");
    CHECK(pl_save(&fig, "no_such_dir/plot") != 0,
          "writing into a missing directory succeeded");
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_log(void)
{
    /* nb_train's header in another order, an unknown column, empty fields
     * for a validation set that appears at epoch 2. */
    write_text("plot_test_log.csv",
               "lr,epoch,extra,train_loss,val_loss,train_acc,val_acc,seconds\n"
               "0.1,1,7,0.9,,0.5,,0.25\n"
               "0.1,2,7,0.5,0.6,0.8,0.75,0.25\n"
               "\n"
               "0.05,3,7,0.25,0.3,0.95,0.9,0.5\n");
    pl_log log;
    CHECK(pl_log_read("plot_test_log.csv", &log) == 0, "log not read");
    CHECK(log.n == 3, "%d rows", log.n);
    if (log.n == 3) {
        CHECK(log.col[PL_EPOCH][2] == 3 && log.col[PL_LR][2] == 0.05 &&
                  log.col[PL_TRAIN_LOSS][1] == 0.5 &&
                  log.col[PL_VAL_ACC][2] == 0.9 &&
                  log.col[PL_SECONDS][0] == 0.25,
              "log values");
        CHECK(isnan(log.col[PL_VAL_LOSS][0]) && isnan(log.col[PL_VAL_ACC][0]),
              "empty fields are not NaN");
        CHECK(pl_plot_log(&log, "plot_test_log", "a log") == 0, "pl_plot_log failed");
    }
    pl_log_free(&log);

    printf("(three error messages expected)\n");
    write_text("plot_test_nolos.csv", "epoch,lr\n1,0.1\n");
    CHECK(pl_log_read("plot_test_nolos.csv", &log) != 0,
          "a log without train_loss was accepted");
    write_text("plot_test_bad.csv", "epoch,train_loss\n1,x\n");
    CHECK(pl_log_read("plot_test_bad.csv", &log) != 0,
          "a log with text for a number was accepted");
    CHECK(pl_log_read("plot_test_missing.csv", &log) != 0,
          "a missing log was accepted");
}

int main(void)
{
    test_figure();
    test_errors();
    test_log();
    printf("plot: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
