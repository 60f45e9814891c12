/* Charts for the examples and the tutorial, drawn with cairo.
 *
 * A figure (pl_figure) is a set of panels (pl_panel) and free labels. A
 * panel is a data rectangle [xmin, xmax] x [ymin, ymax] with a frame,
 * ticks, tick labels, axis labels, a title and a legend, holding line and
 * marker series (pl_series) and optionally an RGB image stretched over the
 * data rectangle (decision regions, activation tiles, digit images). A
 * "bare" panel is a tile: image and title only.
 *
 * Coordinates of the figure are pixels of the PNG, origin at the top left.
 * pl_save draws the figure once per surface, with the same calls, onto a
 * PNG (w x h pixels), an SVG (w x h px) and a PDF (the same size at 96
 * pixels per inch), so the three files show one picture.
 *
 * This module sits above nabla's public API and is not part of the library:
 * it is built as a static library for the examples, and only they link
 * cairo.
 */
#ifndef NABLA_PLOT_H
#define NABLA_PLOT_H

#include <stdbool.h>
#include <stdint.h>

#include <cairo.h>

/* ---- colours ---- */

typedef struct pl_rgb {
    unsigned char r, g, b;
} pl_rgb;

/* The house palette: TensorFlow Playground's orange and blue for the two
 * signs / classes, then distinct hues for more classes and series. */
#define PL_WHITE 0xffffff
#define PL_TEXT 0x222222
#define PL_MUTED 0x555555
#define PL_ORANGE 0xf59322
#define PL_BLUE 0x0877bd
#define PL_GREEN 0x2ca02c
#define PL_PURPLE 0x8e44ad
#define PL_RED 0xd62728
#define PL_TEAL 0x17becf

pl_rgb pl_hex(uint32_t rgb);
/* a (1 - t) + b t, t clamped to [0, 1] (NaN reads as 0). */
pl_rgb pl_mix(pl_rgb a, pl_rgb b, double t);
/* Colour k of the palette (orange, blue, green, purple, red, teal, ...). */
pl_rgb pl_palette(int k);
/* A diverging map for v in [-1, 1]: orange, white at 0, blue; grey for NaN. */
pl_rgb pl_diverging(double v);

/* ---- figures ---- */

enum { PL_LINE = 1, PL_MARKERS = 2 };
enum { PL_LEFT, PL_CENTER, PL_RIGHT };

typedef struct pl_series {
    const char *label; /* legend entry; NULL = not in the legend */
    pl_rgb color;
    int n;
    const double *x, *y;  /* data coordinates; a NaN y breaks a line */
    int style;            /* PL_LINE, PL_MARKERS or both */
    double width;         /* line width in pixels; 0 = 2.5 */
    double radius;        /* marker radius in pixels; 0 = 4 */
    const pl_rgb *colors; /* per-point marker fill; NULL = color */
    double outline;       /* marker ring width; 0 = none */
    pl_rgb outline_color;
} pl_series;

/* An RGB image, 3 bytes per pixel, rows from the top. */
typedef struct pl_image {
    int w, h;
    const unsigned char *rgb;
    bool pixelated; /* enlarge as blocks (nearest), not smoothly */
} pl_image;

enum {
    PL_LEGEND_NONE = 0,
    PL_LEGEND_TOP_RIGHT,
    PL_LEGEND_BOTTOM_RIGHT,
    PL_LEGEND_TOP_LEFT,
    PL_LEGEND_BOTTOM_LEFT,
    PL_LEGEND_OUTSIDE /* right of the data rectangle, at its top */
};

typedef struct pl_panel {
    int x, y, w, h; /* the panel's box in the figure, pixels */
    const char *title, *xlabel, *ylabel;
    double xmin, xmax, ymin, ymax;
    bool ylog;           /* logarithmic y axis (needs ymin > 0) */
    bool bare;           /* a tile: no frame ticks, tick labels or axes */
    double xstep, ystep; /* tick spacing; 0 = chosen from the range */
    pl_image image;      /* stretched over the data rectangle if rgb */
    const pl_series *series;
    int nseries;
    int legend; /* PL_LEGEND_* */
} pl_panel;

/* Free text on a figure, its capitals centred on y. */
typedef struct pl_label {
    double x, y;
    const char *text;
    double size; /* font size in pixels; 0 = PL_FONT */
    int align;   /* PL_LEFT, PL_CENTER, PL_RIGHT on x */
    bool bold, vertical;
    uint32_t color; /* 0 = PL_TEXT */
} pl_label;

typedef struct pl_figure {
    int w, h;
    const char *title; /* centred at the top; NULL = none */
    const pl_panel *panels;
    int npanels;
    const pl_label *labels;
    int nlabels;
} pl_figure;

/* Font size of tick labels, axis labels, legends and labels; titles are a
 * little larger and bold. */
#define PL_FONT 14.0
/* Height of the title band above a bare panel's (a tile's) image. */
#define PL_TILE_TITLE_H 22

/* Width in pixels of s at font size `size` (regular weight). */
double pl_text_width(const char *s, double size);

/* The data rectangle of p as laid out in the figure: [x0, x1) x [y0, y1)
 * in rect[0..3]. */
void pl_data_rect(const pl_panel *p, double rect[4]);

/* Widens the panel's box so that its data rectangle is w x h pixels. */
void pl_fit_data_rect(pl_panel *p, int w, int h);

/* A data range widened to multiples of a nice tick step (and to 0 when
 * zero is set and the data are positive); returns the step. */
double pl_auto_range(double lo, double hi, bool zero, double *out_lo,
                     double *out_hi);

/* 1, 2, 2.5 or 5 times a power of ten, near range / count. */
double pl_nice_step(double range, int count);

/* Lowers *lo and raises *hi to the finite values among v[0..n). */
void pl_minmax(const double *v, int n, double *lo, double *hi);

/* Draws f on cr, whose user space is the figure's pixels. Returns 0, or
 * -1 when cairo reports an error. */
int pl_draw(cairo_t *cr, const pl_figure *f);

/* Writes f to one file; the format follows the name's ending (.png, .svg
 * or .pdf). Returns 0, or -1 with a message on stderr. */
int pl_write(const pl_figure *f, const char *path);

/* Writes <prefix>.png, <prefix>.svg and <prefix>.pdf and reads them back:
 * the PNG must load with f's size, the SVG and the PDF must carry their
 * headers. Returns 0, or -1 with a message on stderr. */
int pl_save(const pl_figure *f, const char *prefix);

/* ---- the training log ---- */

/* Columns of nb_train's CSV log, by name. */
enum {
    PL_EPOCH,
    PL_LR,
    PL_TRAIN_LOSS,
    PL_TRAIN_ACC,
    PL_VAL_LOSS,
    PL_VAL_ACC,
    PL_SECONDS,
    PL_NCOLS
};

typedef struct pl_log {
    int n;                 /* rows */
    double *col[PL_NCOLS]; /* n values each; NaN for an empty field or a
                              column the file does not have */
} pl_log;

/* Reads nb_train's CSV log: a header naming the columns (any order; epoch
 * and train_loss are required, unknown ones are ignored), one row per
 * epoch, empty fields for values without a source. Returns 0, or -1 with
 * a message on stderr. */
int pl_log_read(const char *path, pl_log *log);
void pl_log_free(pl_log *log);

/* Training curves: a loss panel (train and validation) and, when the log
 * has accuracies, an accuracy panel in percent; written by pl_save.
 * Returns 0 or -1. */
int pl_plot_log(const pl_log *log, const char *prefix, const char *title);

#endif
