/* Charts for the examples, drawn twice from one description: as an RGB PNG
 * on a small raster canvas, and as an SVG with real <text> labels.
 *
 * A figure (pl_figure) is a set of panels (pl_panel), each a data rectangle
 * [xmin, xmax] x [ymin, ymax] with ticks, labels, a legend, line and marker
 * series (pl_series) and optionally an RGB image stretched over the data
 * rectangle (decision regions, hidden-unit tiles). One layout function
 * places every tick and label for both renderers, so the two files agree.
 *
 * Raster drawing. Lines and discs are anti-aliased by coverage: a pixel
 * whose centre lies at distance d from a segment (from a centre) is covered
 * by a = clamp(w/2 + 1/2 - d, 0, 1) for a line of width w (by
 * clamp(r + 1/2 - d, 0, 1) for a disc of radius r), and blended as
 * c = c + a (colour - c). A polyline takes the largest coverage of its
 * segments per pixel before blending once, so its joints do not darken.
 * Text uses the 5x7 bitmap font below (with two rows for descenders),
 * scaled by an integer factor. Images are resampled bilinearly.
 *
 * PNG (specification sections 5, 9, 11): the signature, IHDR (8-bit RGB,
 * colour type 2), one IDAT holding the zlib stream of the rows, IEND; every
 * chunk carries the CRC-32 of its type and data. Each row is prefixed by
 * the filter (none, Sub or Up) that minimises the sum of |bytes| taken as
 * signed, the spec's suggested heuristic: flat chart areas then compress
 * to almost nothing.
 *
 * The training log read by pl_log_read is nb_train's CSV: a header naming
 * the columns (epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds, in
 * any order; only epoch and train_loss are required), one row per epoch,
 * and empty fields for values without a source, which are skipped.
 *
 * Everything is static inline so that an example that uses only part of
 * this file compiles without unused-function warnings.
 */
#ifndef NABLA_EXAMPLES_PLOT_H
#define NABLA_EXAMPLES_PLOT_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* ---- colours ---- */

typedef struct pl_rgb {
    unsigned char r, g, b;
} pl_rgb;

static inline pl_rgb pl_hex(uint32_t v)
{
    return (pl_rgb){(unsigned char)(v >> 16), (unsigned char)(v >> 8),
                    (unsigned char)v};
}

static inline unsigned char pl_lerp8(unsigned char a, unsigned char b, double t)
{
    return (unsigned char)lround(a + (b - a) * t);
}

/* a (1 - t) + b t, t clamped to [0, 1]. */
static inline pl_rgb pl_mix(pl_rgb a, pl_rgb b, double t)
{
    t = t > 0 ? (t < 1 ? t : 1) : 0; /* also maps NaN to 0 */
    return (pl_rgb){pl_lerp8(a.r, b.r, t), pl_lerp8(a.g, b.g, t),
                    pl_lerp8(a.b, b.b, t)};
}

/* The house palette: TensorFlow Playground's orange and blue for the two
 * signs / classes, then distinct hues for more classes and series. */
#define PL_WHITE 0xffffff
#define PL_TEXT 0x222222
#define PL_AXIS 0x555555
#define PL_GRID 0xe6e6e6
#define PL_ORANGE 0xf59322
#define PL_BLUE 0x0877bd
#define PL_GREEN 0x2ca02c
#define PL_PURPLE 0x8e44ad
#define PL_RED 0xd62728
#define PL_TEAL 0x17becf

static inline pl_rgb pl_palette(int k)
{
    static const uint32_t c[6] = {PL_ORANGE, PL_BLUE, PL_GREEN,
                                  PL_PURPLE, PL_RED,  PL_TEAL};
    return pl_hex(c[((k % 6) + 6) % 6]);
}

/* A diverging map for values in [-1, 1]: orange, white at 0, blue. */
static inline pl_rgb pl_diverging(double v)
{
    if (!(v == v))
        return pl_hex(0xcccccc);
    return v < 0 ? pl_mix(pl_hex(PL_WHITE), pl_hex(PL_ORANGE), -v)
                 : pl_mix(pl_hex(PL_WHITE), pl_hex(PL_BLUE), v);
}

/* ---- the bitmap font ----
 * ASCII 32..126 in a cell of 5 columns and 9 rows: rows 0-6 stand on the
 * baseline under row 6 (capitals and digits fill them), rows 7-8 hold the
 * descenders of g, j, p, q, y, the comma and the underscore. Bit 4 is the
 * leftmost column. Glyphs advance by 6 columns. */
enum { PL_GLYPH_W = 5, PL_GLYPH_ROWS = 9, PL_ADVANCE = 6, PL_CAP = 7 };

static inline const unsigned char *pl_glyph(int c)
{
    static const unsigned char font[95][PL_GLYPH_ROWS] = {
        {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /*   */
        {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00}, /* ! */
        {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* " */
        {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00, 0x00}, /* # */
        {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00, 0x00}, /* $ */
        {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00}, /* % */
        {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* & */
        {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' */
        {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00}, /* ( */
        {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00}, /* ) */
        {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00, 0x00}, /* * */
        {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00, 0x00}, /* + */
        {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08, 0x00}, /* , */
        {0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00}, /* - */
        {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00, 0x00}, /* . */
        {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00}, /* / */
        {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 0 */
        {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* 1 */
        {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* 2 */
        {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* 3 */
        {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00, 0x00}, /* 4 */
        {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* 5 */
        {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 6 */
        {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00}, /* 7 */
        {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 8 */
        {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00, 0x00}, /* 9 */
        {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00, 0x00}, /* : */
        {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08, 0x00, 0x00}, /* ; */
        {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00}, /* < */
        {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00}, /* = */
        {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00}, /* > */
        {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00}, /* ? */
        {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e, 0x00, 0x00}, /* @ */
        {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00}, /* A */
        {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* B */
        {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00}, /* C */
        {0x1e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* D */
        {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* E */
        {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* F */
        {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* G */
        {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00}, /* H */
        {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* I */
        {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00, 0x00}, /* J */
        {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00}, /* K */
        {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* L */
        {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00}, /* M */
        {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00}, /* N */
        {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* O */
        {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* P */
        {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* Q */
        {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00, 0x00}, /* R */
        {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00, 0x00}, /* S */
        {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* T */
        {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* U */
        {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* V */
        {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* W */
        {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00, 0x00}, /* X */
        {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* Y */
        {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00, 0x00}, /* Z */
        {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00, 0x00}, /* [ */
        {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00}, /* \ */
        {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00, 0x00}, /* ] */
        {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ^ */
        {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00}, /* _ */
        {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ` */
        {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00, 0x00}, /* a */
        {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* b */
        {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00}, /* c */
        {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* d */
        {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00, 0x00}, /* e */
        {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00, 0x00}, /* f */
        {0x00, 0x00, 0x0f, 0x11, 0x11, 0x13, 0x0d, 0x01, 0x0e}, /* g */
        {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* h */
        {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* i */
        {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* j */
        {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00}, /* k */
        {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* l */
        {0x00, 0x00, 0x1a, 0x15, 0x15, 0x15, 0x15, 0x00, 0x00}, /* m */
        {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, /* n */
        {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* o */
        {0x00, 0x00, 0x1e, 0x11, 0x11, 0x19, 0x16, 0x10, 0x10}, /* p */
        {0x00, 0x00, 0x0f, 0x11, 0x11, 0x13, 0x0d, 0x01, 0x01}, /* q */
        {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00}, /* r */
        {0x00, 0x00, 0x0f, 0x10, 0x0e, 0x01, 0x1e, 0x00, 0x00}, /* s */
        {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00}, /* t */
        {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00, 0x00}, /* u */
        {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* v */
        {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* w */
        {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00, 0x00}, /* x */
        {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x01, 0x0e}, /* y */
        {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* z */
        {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00, 0x00}, /* { */
        {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* | */
        {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00, 0x00}, /* } */
        {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00}, /* ~ */
    };
    /* An outlined box for anything outside the table. */
    static const unsigned char box[PL_GLYPH_ROWS] = {
        0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f, 0, 0};
    return c >= 32 && c < 127 ? font[c - 32] : box;
}

/* Width in pixels of s drawn at `scale`. */
static inline int pl_text_width(const char *s, int scale)
{
    size_t n = strlen(s);
    return n ? ((int)n * PL_ADVANCE - 1) * scale : 0;
}

/* SVG font size whose capital height matches the raster font's 7 rows
 * (capitals are about 0.72 em tall in common sans-serif faces). */
static inline double pl_font_px(int scale)
{
    return PL_CAP * scale / 0.72;
}

/* ---- the raster canvas ---- */

typedef struct pl_canvas {
    int w, h;
    unsigned char *px;      /* RGB, rows from the top */
    int cx0, cy0, cx1, cy1; /* drawing is clipped to [cx0,cx1) x [cy0,cy1) */
} pl_canvas;

static inline int pl_canvas_init(pl_canvas *c, int w, int h, pl_rgb bg)
{
    c->w = w;
    c->h = h;
    c->px = malloc((size_t)w * (size_t)h * 3);
    if (!c->px)
        return -1;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) {
        c->px[3 * i] = bg.r;
        c->px[3 * i + 1] = bg.g;
        c->px[3 * i + 2] = bg.b;
    }
    c->cx0 = c->cy0 = 0;
    c->cx1 = w;
    c->cy1 = h;
    return 0;
}

static inline void pl_canvas_free(pl_canvas *c)
{
    free(c->px);
    c->px = NULL;
}

static inline void pl_clip(pl_canvas *c, int x0, int y0, int x1, int y1)
{
    c->cx0 = x0 > 0 ? x0 : 0;
    c->cy0 = y0 > 0 ? y0 : 0;
    c->cx1 = x1 < c->w ? x1 : c->w;
    c->cy1 = y1 < c->h ? y1 : c->h;
}

static inline void pl_unclip(pl_canvas *c)
{
    pl_clip(c, 0, 0, c->w, c->h);
}

static inline void pl_blend(pl_canvas *c, int x, int y, pl_rgb col, double a)
{
    if (x < c->cx0 || x >= c->cx1 || y < c->cy0 || y >= c->cy1 || !(a > 0))
        return;
    if (a > 1)
        a = 1;
    unsigned char *p = c->px + 3 * ((size_t)y * (size_t)c->w + (size_t)x);
    p[0] = pl_lerp8(p[0], col.r, a);
    p[1] = pl_lerp8(p[1], col.g, a);
    p[2] = pl_lerp8(p[2], col.b, a);
}

/* [x0, x1) x [y0, y1) with opacity a. */
static inline void pl_fill_rect(pl_canvas *c, int x0, int y0, int x1, int y1,
                                pl_rgb col, double a)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            pl_blend(c, x, y, col, a);
}

/* Distance from (px, py) to the segment a-b. */
static inline double pl_seg_dist(double px, double py, double ax, double ay,
                                 double bx, double by)
{
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double ex = px - (ax + t * dx), ey = py - (ay + t * dy);
    return sqrt(ex * ex + ey * ey);
}

static inline bool pl_finite2(double x, double y)
{
    return isfinite(x) && isfinite(y);
}

/* A polyline through n points (pixel coordinates); a non-finite point
 * breaks it, and a point alone between breaks becomes a dot. */
static inline void pl_polyline(pl_canvas *c, int n, const double *xs,
                               const double *ys, double width, pl_rgb col)
{
    double r = width / 2, bx0 = INFINITY, by0 = INFINITY, bx1 = -INFINITY,
           by1 = -INFINITY;
    for (int i = 0; i < n; i++)
        if (pl_finite2(xs[i], ys[i])) {
            bx0 = fmin(bx0, xs[i]);
            by0 = fmin(by0, ys[i]);
            bx1 = fmax(bx1, xs[i]);
            by1 = fmax(by1, ys[i]);
        }
    int x0 = (int)floor(fmax(bx0 - r - 1, c->cx0));
    int y0 = (int)floor(fmax(by0 - r - 1, c->cy0));
    int x1 = (int)ceil(fmin(bx1 + r + 1, c->cx1));
    int y1 = (int)ceil(fmin(by1 + r + 1, c->cy1));
    if (!(bx0 <= bx1) || x1 <= x0 || y1 <= y0)
        return;
    int bw = x1 - x0, bh = y1 - y0;
    float *cov = calloc((size_t)bw * (size_t)bh, sizeof *cov);
    if (!cov)
        return;
    for (int i = 0; i < n; i++) {
        if (!pl_finite2(xs[i], ys[i]))
            continue;
        /* The segment to the next point, or a dot for a lone point. */
        int j = i + 1 < n && pl_finite2(xs[i + 1], ys[i + 1]) ? i + 1 : i;
        if (j == i && i > 0 && pl_finite2(xs[i - 1], ys[i - 1]))
            continue;
        int sx0 = (int)floor(fmin(xs[i], xs[j]) - r - 1);
        int sy0 = (int)floor(fmin(ys[i], ys[j]) - r - 1);
        int sx1 = (int)ceil(fmax(xs[i], xs[j]) + r + 1);
        int sy1 = (int)ceil(fmax(ys[i], ys[j]) + r + 1);
        sx0 = sx0 > x0 ? sx0 : x0;
        sy0 = sy0 > y0 ? sy0 : y0;
        sx1 = sx1 < x1 ? sx1 : x1;
        sy1 = sy1 < y1 ? sy1 : y1;
        for (int y = sy0; y < sy1; y++)
            for (int x = sx0; x < sx1; x++) {
                double d =
                    pl_seg_dist(x + 0.5, y + 0.5, xs[i], ys[i], xs[j], ys[j]);
                float a = (float)(r + 0.5 - d);
                float *p =
                    &cov[(size_t)(y - y0) * (size_t)bw + (size_t)(x - x0)];
                if (a > *p)
                    *p = a;
            }
    }
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            pl_blend(c, x, y, col,
                     cov[(size_t)(y - y0) * (size_t)bw + (size_t)(x - x0)]);
    free(cov);
}

/* A disc of radius r filled with `fill`, with a ring of width lw (0 for
 * none) in `line` inside its edge. */
static inline void pl_disc(pl_canvas *c, double cx, double cy, double r,
                           pl_rgb fill, pl_rgb line, double lw)
{
    if (!pl_finite2(cx, cy))
        return;
    for (int y = (int)floor(cy - r - 1); y <= (int)ceil(cy + r + 1); y++)
        for (int x = (int)floor(cx - r - 1); x <= (int)ceil(cx + r + 1); x++) {
            double d = hypot(x + 0.5 - cx, y + 0.5 - cy);
            if (lw > 0) {
                pl_blend(c, x, y, line, r + 0.5 - d);
                pl_blend(c, x, y, fill, r - lw + 0.5 - d);
            } else {
                pl_blend(c, x, y, fill, r + 0.5 - d);
            }
        }
}

enum { PL_LEFT = 0, PL_CENTER = 1, PL_RIGHT = 2 };

/* Text whose capitals are vertically centred on y, aligned at x (PL_LEFT,
 * PL_CENTER, PL_RIGHT); vertical text reads upwards and is centred on x. */
static inline void pl_text(pl_canvas *c, double x, double y, const char *s,
                           int scale, pl_rgb ink, int align, bool bold,
                           bool vertical)
{
    int w = pl_text_width(s, scale);
    int u0 = align == PL_CENTER ? -w / 2 : align == PL_RIGHT ? -w : 0;
    int v0 = -(int)lround(PL_CAP * scale / 2.0);
    int ax = (int)lround(x), ay = (int)lround(y);
    for (int k = 0; s[k]; k++) {
        const unsigned char *g = pl_glyph((unsigned char)s[k]);
        for (int row = 0; row < PL_GLYPH_ROWS; row++)
            for (int col = 0; col < PL_GLYPH_W; col++) {
                if (!(g[row] & (0x10 >> col)))
                    continue;
                /* The glyph pixel as a block [u, u+du) x [v, v+scale) in
                 * text coordinates (u along the text, v down). */
                int u = u0 + (k * PL_ADVANCE + col) * scale;
                int du = scale + (bold ? 1 : 0);
                int v = v0 + row * scale;
                if (!vertical)
                    pl_fill_rect(c, ax + u, ay + v, ax + u + du, ay + v + scale,
                                 ink, 1);
                else
                    pl_fill_rect(c, ax + v, ay - u - du + 1, ax + v + scale,
                                 ay - u + 1, ink, 1);
            }
    }
}

/* An RGB image, rows from the top. */
typedef struct pl_image {
    int w, h;
    const unsigned char *rgb;
} pl_image;

/* Stretches img over [x0, x1) x [y0, y1), sampling it bilinearly at each
 * pixel centre (so an image of exactly the rectangle's size is copied). */
static inline void pl_blit(pl_canvas *c, int x0, int y0, int x1, int y1,
                           const pl_image *img)
{
    if (!img->rgb || img->w < 1 || img->h < 1 || x1 <= x0 || y1 <= y0)
        return;
    for (int y = y0; y < y1; y++) {
        double fy = (y + 0.5 - y0) * img->h / (y1 - y0) - 0.5;
        fy = fy < 0 ? 0 : fy > img->h - 1 ? img->h - 1 : fy;
        int iy = (int)fy, jy = iy + 1 < img->h ? iy + 1 : iy;
        double ty = fy - iy;
        for (int x = x0; x < x1; x++) {
            double fx = (x + 0.5 - x0) * img->w / (x1 - x0) - 0.5;
            fx = fx < 0 ? 0 : fx > img->w - 1 ? img->w - 1 : fx;
            int ix = (int)fx, jx = ix + 1 < img->w ? ix + 1 : ix;
            double tx = fx - ix;
            unsigned char out[3];
            for (int k = 0; k < 3; k++) {
                double a = img->rgb[3 * ((size_t)iy * img->w + ix) + k];
                double b = img->rgb[3 * ((size_t)iy * img->w + jx) + k];
                double d = img->rgb[3 * ((size_t)jy * img->w + ix) + k];
                double e = img->rgb[3 * ((size_t)jy * img->w + jx) + k];
                double top = a + (b - a) * tx, bot = d + (e - d) * tx;
                out[k] = (unsigned char)lround(top + (bot - top) * ty);
            }
            pl_blend(c, x, y, (pl_rgb){out[0], out[1], out[2]}, 1);
        }
    }
}

/* ---- PNG ---- */

static inline void pl_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline uint32_t pl_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Appends a chunk at p (length, type, data, CRC); returns the end. */
static inline unsigned char *pl_png_chunk(unsigned char *p, const char *type,
                                          const unsigned char *data,
                                          uint32_t len)
{
    pl_put32(p, len);
    memcpy(p + 4, type, 4);
    if (len)
        memcpy(p + 8, data, len);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, p + 4, (uInt)len + 4);
    pl_put32(p + 8 + len, (uint32_t)crc);
    return p + 12 + len;
}

/* The PNG file of a w x h RGB image, in a malloc'd buffer of *len bytes;
 * NULL when out of memory. */
static inline unsigned char *
pl_png_encode(int w, int h, const unsigned char *rgb, size_t *len)
{
    size_t rowlen = 3 * (size_t)w, rawlen = (rowlen + 1) * (size_t)h;
    unsigned char *raw = malloc(rawlen), *out = NULL;
    uLongf zlen = compressBound((uLong)rawlen);
    unsigned char *z = malloc(zlen);
    if (!raw || !z)
        goto done;
    for (int y = 0; y < h; y++) {
        const unsigned char *row = rgb + (size_t)y * rowlen;
        const unsigned char *up = y ? row - rowlen : NULL;
        unsigned char *dst = raw + (size_t)y * (rowlen + 1);
        /* Filters 0 (none), 1 (Sub: minus the byte 3 to the left) and 2
         * (Up: minus the byte above); the smallest sum of |signed byte|
         * wins. */
        uint64_t best_cost = UINT64_MAX;
        int best = 0;
        for (int f = 0; f < 3; f++) {
            uint64_t cost = 0;
            for (size_t i = 0; i < rowlen; i++) {
                int pred = f == 1   ? (i >= 3 ? row[i - 3] : 0)
                           : f == 2 ? (up ? up[i] : 0)
                                    : 0;
                int d = (row[i] - pred) & 0xff; /* the filtered byte */
                cost += (uint64_t)(d < 128 ? d : 256 - d);
            }
            if (cost < best_cost) {
                best_cost = cost;
                best = f;
            }
        }
        dst[0] = (unsigned char)best;
        for (size_t i = 0; i < rowlen; i++) {
            int pred = best == 1   ? (i >= 3 ? row[i - 3] : 0)
                       : best == 2 ? (up ? up[i] : 0)
                                   : 0;
            dst[1 + i] = (unsigned char)(row[i] - pred);
        }
    }
    if (compress2(z, &zlen, raw, (uLong)rawlen, 9) != Z_OK)
        goto done;
    out = malloc(8 + 25 + 12 + (size_t)zlen + 12);
    if (!out)
        goto done;
    static const unsigned char signature[8] = {0x89, 'P',  'N',  'G',
                                               '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13];
    pl_put32(ihdr, (uint32_t)w);
    pl_put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bits per sample */
    ihdr[9] = 2;  /* colour type: RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    memcpy(out, signature, 8);
    unsigned char *p = pl_png_chunk(out + 8, "IHDR", ihdr, 13);
    p = pl_png_chunk(p, "IDAT", z, (uint32_t)zlen);
    p = pl_png_chunk(p, "IEND", NULL, 0);
    *len = (size_t)(p - out);
done:
    free(raw);
    free(z);
    return out;
}

static inline int pl_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    bool ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "%s: write failed\n", path);
    return ok ? 0 : -1;
}

static inline int pl_write_png(const char *path, int w, int h,
                               const unsigned char *rgb)
{
    size_t len = 0;
    unsigned char *png = pl_png_encode(w, h, rgb, &len);
    if (!png) {
        fprintf(stderr, "%s: out of memory encoding the PNG\n", path);
        return -1;
    }
    int rc = pl_write_file(path, png, len);
    free(png);
    return rc;
}

/* The whole file in a malloc'd, NUL-terminated buffer (at most max bytes);
 * NULL with a message on stderr. */
static inline char *pl_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        if (cap >= max) {
            fprintf(stderr, "%s: larger than %zu bytes\n", path, max);
            free(buf);
            buf = NULL;
            break;
        }
        cap = cap * 2 < max ? cap * 2 : max;
        char *grown = realloc(buf, cap + 1);
        if (!grown)
            free(buf);
        buf = grown;
    }
    if (buf && ferror(f)) {
        perror(path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Checks that path is a well-formed 8-bit RGB PNG of w x h: signature,
 * IHDR first, every chunk's CRC, IEND last, and IDAT data that inflates to
 * exactly h rows of 1 + 3w bytes with valid filter types. Prints what is
 * wrong on stderr. */
static inline bool pl_check_png(const char *path, int w, int h)
{
    size_t len = 0;
    unsigned char *buf = (unsigned char *)pl_read_file(path, 1u << 28, &len);
    if (!buf)
        return false;
    const char *why = NULL;
    unsigned char *idat = NULL, *raw = NULL;
    size_t idat_len = 0, rawlen = (3 * (size_t)w + 1) * (size_t)h;
    static const unsigned char signature[8] = {0x89, 'P',  'N',  'G',
                                               '\r', '\n', 0x1a, '\n'};
    if (len < 8 + 25 + 12 || memcmp(buf, signature, 8) != 0) {
        why = "no PNG signature";
        goto done;
    }
    if (pl_get32(buf + 8) != 13 || memcmp(buf + 12, "IHDR", 4) != 0) {
        why = "the first chunk is not IHDR";
        goto done;
    }
    if (pl_get32(buf + 16) != (uint32_t)w ||
        pl_get32(buf + 20) != (uint32_t)h || buf[24] != 8 || buf[25] != 2) {
        why = "IHDR does not give the expected size and 8-bit RGB";
        goto done;
    }
    idat = malloc(len);
    if (!idat) {
        why = "out of memory";
        goto done;
    }
    bool end = false;
    for (size_t p = 8; !end;) {
        if (len - p < 12) {
            why = "truncated chunk";
            goto done;
        }
        uint32_t n = pl_get32(buf + p);
        if (n > len - p - 12) {
            why = "chunk longer than the file";
            goto done;
        }
        uLong crc = crc32(crc32(0L, Z_NULL, 0), buf + p + 4, n + 4);
        if ((uint32_t)crc != pl_get32(buf + p + 8 + n)) {
            why = "bad chunk CRC";
            goto done;
        }
        if (!memcmp(buf + p + 4, "IDAT", 4)) {
            memcpy(idat + idat_len, buf + p + 8, n);
            idat_len += n;
        }
        end = !memcmp(buf + p + 4, "IEND", 4);
        p += 12 + n;
        if (end && p != len) {
            why = "bytes after IEND";
            goto done;
        }
    }
    raw = malloc(rawlen + 1);
    uLongf got = (uLongf)rawlen + 1;
    if (!raw || uncompress(raw, &got, idat, (uLong)idat_len) != Z_OK ||
        got != rawlen) {
        why = "IDAT does not inflate to the image's size";
        goto done;
    }
    for (int y = 0; y < h; y++)
        if (raw[(size_t)y * (3 * (size_t)w + 1)] > 4) {
            why = "bad row filter type";
            goto done;
        }
done:
    if (why)
        fprintf(stderr, "%s: not a valid %dx%d RGB PNG: %s\n", path, w, h, why);
    free(buf);
    free(idat);
    free(raw);
    return why == NULL;
}

/* Checks that path holds an SVG document: it starts with "<svg" and ends
 * with "</svg>" (surrounding white space aside). */
static inline bool pl_check_svg(const char *path)
{
    size_t len = 0;
    char *buf = pl_read_file(path, 1u << 28, &len);
    if (!buf)
        return false;
    const char *s = buf;
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    size_t n = len;
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\n' ||
                     buf[n - 1] == '\r' || buf[n - 1] == '\t'))
        n--;
    bool ok =
        !strncmp(s, "<svg", 4) && n >= 6 && !memcmp(buf + n - 6, "</svg>", 6);
    if (!ok)
        fprintf(stderr, "%s: not an SVG document (<svg ... </svg>)\n", path);
    free(buf);
    return ok;
}

/* ---- figures ---- */

enum { PL_LINE = 1, PL_MARKERS = 2 };

typedef struct pl_series {
    const char *label; /* legend entry; NULL = not in the legend */
    pl_rgb color;
    int n;
    const double *x, *y;  /* data coordinates; a NaN y breaks a line */
    int style;            /* PL_LINE, PL_MARKERS or both */
    double width;         /* line width in pixels; 0 = 2.5 */
    double radius;        /* marker radius in pixels; 0 = 4 */
    const pl_rgb *colors; /* per-point marker fill; NULL = color */
    double outline;       /* marker outline width; 0 = none */
    pl_rgb outline_color;
} pl_series;

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
    bool ylog;           /* logarithmic y axis (ymin > 0) */
    bool bare;           /* no ticks, tick labels or axis labels: a tile */
    double xstep, ystep; /* tick spacing; 0 = chosen from the range */
    pl_image image;      /* stretched over the data rectangle if rgb */
    const pl_series *series;
    int nseries;
    int legend; /* PL_LEGEND_* */
} pl_panel;

/* Free text on a figure. */
typedef struct pl_label {
    double x, y;
    const char *text;
    int scale; /* 0 = 2 */
    int align;
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

/* ---- layout: ticks and the data rectangle ---- */

#define PL_MAX_TICKS 24
#define PL_SCALE 2 /* text scale of labels and titles */

typedef struct pl_ticks {
    int n;
    double v[PL_MAX_TICKS];
    char label[PL_MAX_TICKS][24];
} pl_ticks;

typedef struct pl_layout {
    int x0, y0, x1, y1; /* data rectangle [x0,x1) x [y0,y1), pixels */
    pl_ticks xt, yt;
} pl_layout;

/* 1, 2, 2.5 or 5 times a power of ten, near range / count. */
static inline double pl_nice_step(double range, int count)
{
    double raw = range / count;
    if (!(raw > 0) || !isfinite(raw))
        return 1;
    double mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
}

/* Decimals needed to print multiples of step exactly. */
static inline int pl_decimals(double step)
{
    for (int d = 0; d < 9; d++) {
        double s = step * pow(10, d);
        if (fabs(s - round(s)) < 1e-6 * s)
            return d;
    }
    return 9;
}

static inline void pl_linear_ticks(double lo, double hi, double step,
                                   pl_ticks *t)
{
    t->n = 0;
    if (!(hi > lo))
        return;
    if (!(step > 0))
        step = pl_nice_step(hi - lo, 5);
    while ((hi - lo) / step > PL_MAX_TICKS - 1)
        step *= 2;
    int d = pl_decimals(step);
    for (double k = ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * (hi - lo);
         k++) {
        double v = k * step;
        if (fabs(v) < 1e-9 * step)
            v = 0; /* no "-0" */
        t->v[t->n] = v;
        if (fabs(v) >= 1e6)
            snprintf(t->label[t->n], sizeof t->label[0], "%g", v);
        else
            snprintf(t->label[t->n], sizeof t->label[0], "%.*f", d, v);
        if (++t->n == PL_MAX_TICKS)
            break;
    }
}

/* Ticks at the powers of ten in [lo, hi] (every other one when there are
 * too many), labelled "0.01" ... "1000", or "1e-5" beyond that. */
static inline void pl_log_ticks(double lo, double hi, pl_ticks *t)
{
    t->n = 0;
    if (!(lo > 0) || !(hi > lo))
        return;
    int e0 = (int)ceil(log10(lo) - 1e-9), e1 = (int)floor(log10(hi) + 1e-9);
    int stride = 1;
    while ((e1 - e0) / stride + 1 > 9)
        stride++;
    /* Labelled powers are multiples of the stride: 1e-8, 1e-6, ... */
    int first = (int)ceil((double)e0 / stride) * stride;
    for (int e = first; e <= e1 && t->n < PL_MAX_TICKS; e += stride) {
        t->v[t->n] = pow(10, e);
        if (e >= -2 && e <= 3)
            snprintf(t->label[t->n], sizeof t->label[0], "%.*f", e < 0 ? -e : 0,
                     pow(10, e));
        else
            snprintf(t->label[t->n], sizeof t->label[0], "1e%d", e);
        t->n++;
    }
}

/* The legend's size: rows of cap + 12 pixels, each a 30-pixel sample and
 * the label. Returns the number of entries. */
static inline int pl_legend_size(const pl_panel *p, int *w, int *h)
{
    int n = 0, wmax = 0;
    for (int i = 0; i < p->nseries; i++)
        if (p->series[i].label) {
            int tw = pl_text_width(p->series[i].label, PL_SCALE);
            wmax = tw > wmax ? tw : wmax;
            n++;
        }
    *w = 12 + 30 + 10 + wmax + 12;
    *h = 8 + n * (PL_CAP * PL_SCALE + 12);
    return p->legend == PL_LEGEND_NONE ? 0 : n;
}

static inline void pl_layout_panel(const pl_panel *p, pl_layout *L)
{
    const int s = PL_SCALE, cap = PL_CAP * PL_SCALE;
    L->xt.n = L->yt.n = 0;
    int top = p->title ? (p->bare ? cap + 12 : cap + 22) : (p->bare ? 0 : 12);
    if (p->bare) {
        L->x0 = p->x;
        L->x1 = p->x + p->w;
        L->y0 = p->y + top;
        L->y1 = p->y + p->h;
        return;
    }
    if (p->ylog)
        pl_log_ticks(p->ymin, p->ymax, &L->yt);
    else
        pl_linear_ticks(p->ymin, p->ymax, p->ystep, &L->yt);
    int tick_w = 0;
    for (int i = 0; i < L->yt.n; i++) {
        int w = pl_text_width(L->yt.label[i], s);
        tick_w = w > tick_w ? w : tick_w;
    }
    int left = 14 + tick_w + (p->ylabel ? cap + 18 : 0);
    int bottom = 12 + cap + (p->xlabel ? cap + 18 : 0) + 6;
    int lw, lh, right = 24;
    if (p->legend == PL_LEGEND_OUTSIDE && pl_legend_size(p, &lw, &lh))
        right += 16 + lw;
    L->x0 = p->x + left;
    L->x1 = p->x + p->w - right;
    L->y0 = p->y + top;
    L->y1 = p->y + p->h - bottom;
    /* Widen the x step until neighbouring labels keep 12 pixels apart. */
    double step = p->xstep > 0 ? p->xstep : pl_nice_step(p->xmax - p->xmin, 5);
    for (int tries = 0; tries < 20; tries++, step *= 2) {
        pl_linear_ticks(p->xmin, p->xmax, step, &L->xt);
        int wmax = 0;
        for (int i = 0; i < L->xt.n; i++) {
            int w = pl_text_width(L->xt.label[i], s);
            wmax = w > wmax ? w : wmax;
        }
        double gap = step / (p->xmax - p->xmin) * (L->x1 - L->x0);
        if (L->xt.n < 2 || gap >= wmax + 12)
            break;
    }
}

/* Where horizontal grid lines go: at the y ticks, and on a log axis at
 * every power of ten even when only every other one is labelled. */
static inline void pl_grid_y(const pl_panel *p, const pl_layout *L, pl_ticks *g)
{
    *g = L->yt;
    if (!p->ylog || !(p->ymin > 0) || !(p->ymax > p->ymin))
        return;
    g->n = 0;
    for (int e = (int)ceil(log10(p->ymin) - 1e-9);
         e <= (int)floor(log10(p->ymax) + 1e-9) && g->n < PL_MAX_TICKS; e++)
        g->v[g->n++] = pow(10, e);
}

/* Data to pixel coordinates (NaN outside a log axis's domain). */
static inline double pl_px(const pl_panel *p, const pl_layout *L, double x)
{
    return L->x0 + (x - p->xmin) / (p->xmax - p->xmin) * (L->x1 - L->x0);
}

static inline double pl_py(const pl_panel *p, const pl_layout *L, double y)
{
    double f;
    if (p->ylog)
        f = y > 0 ? (log10(y) - log10(p->ymin)) /
                        (log10(p->ymax) - log10(p->ymin))
                  : NAN;
    else
        f = (y - p->ymin) / (p->ymax - p->ymin);
    return L->y1 - f * (L->y1 - L->y0);
}

static inline int pl_legend_box(const pl_panel *p, const pl_layout *L,
                                int box[4])
{
    int bw, bh, n = pl_legend_size(p, &bw, &bh);
    if (!n)
        return 0;
    bool right =
        p->legend == PL_LEGEND_TOP_RIGHT || p->legend == PL_LEGEND_BOTTOM_RIGHT;
    bool top =
        p->legend == PL_LEGEND_TOP_RIGHT || p->legend == PL_LEGEND_TOP_LEFT;
    box[0] = right ? L->x1 - 10 - bw : L->x0 + 10;
    box[1] = top ? L->y0 + 10 : L->y1 - 10 - bh;
    if (p->legend == PL_LEGEND_OUTSIDE) {
        box[0] = L->x1 + 16;
        box[1] = L->y0;
    }
    box[2] = box[0] + bw;
    box[3] = box[1] + bh;
    return n;
}

/* Markers are drawn unclipped when their centre lies in the data
 * rectangle, so that a point on the frame shows whole; lines are
 * clipped. */
static inline bool pl_inside(const pl_layout *L, double x, double y)
{
    return x >= L->x0 - 0.5 && x <= L->x1 + 0.5 && y >= L->y0 - 0.5 &&
           y <= L->y1 + 0.5;
}

static inline double pl_series_width(const pl_series *s)
{
    return s->width > 0 ? s->width : 2.5;
}

static inline double pl_series_radius(const pl_series *s)
{
    return s->radius > 0 ? s->radius : 4;
}

/* ---- raster rendering ---- */

static inline void pl_raster_series(pl_canvas *c, const pl_panel *p,
                                    const pl_layout *L, const pl_series *s)
{
    if (s->n < 1)
        return;
    double *px = malloc(2 * (size_t)s->n * sizeof *px);
    if (!px)
        return;
    double *py = px + s->n;
    for (int i = 0; i < s->n; i++) {
        px[i] = pl_px(p, L, s->x[i]);
        py[i] = pl_py(p, L, s->y[i]);
    }
    if (s->style & PL_LINE) {
        pl_clip(c, L->x0, L->y0, L->x1, L->y1);
        pl_polyline(c, s->n, px, py, pl_series_width(s), s->color);
        pl_unclip(c);
    }
    if (s->style & PL_MARKERS)
        for (int i = 0; i < s->n; i++)
            if (pl_inside(L, px[i], py[i]))
                pl_disc(c, px[i], py[i], pl_series_radius(s),
                        s->colors ? s->colors[i] : s->color, s->outline_color,
                        s->outline);
    free(px);
}

static inline void pl_raster_legend(pl_canvas *c, const pl_panel *p,
                                    const pl_layout *L)
{
    int box[4];
    if (!pl_legend_box(p, L, box))
        return;
    const int row = PL_CAP * PL_SCALE + 12;
    pl_fill_rect(c, box[0], box[1], box[2], box[3], pl_hex(PL_WHITE), 0.9);
    pl_rgb edge = pl_hex(0xbbbbbb);
    pl_fill_rect(c, box[0], box[1], box[2], box[1] + 1, edge, 1);
    pl_fill_rect(c, box[0], box[3] - 1, box[2], box[3], edge, 1);
    pl_fill_rect(c, box[0], box[1], box[0] + 1, box[3], edge, 1);
    pl_fill_rect(c, box[2] - 1, box[1], box[2], box[3], edge, 1);
    int k = 0;
    for (int i = 0; i < p->nseries; i++) {
        const pl_series *s = &p->series[i];
        if (!s->label)
            continue;
        double y = box[1] + 4 + row * k++ + row / 2.0;
        double xs[2] = {box[0] + 12.0, box[0] + 42.0}, ys[2] = {y, y};
        if (s->style & PL_LINE)
            pl_polyline(c, 2, xs, ys, pl_series_width(s), s->color);
        if (s->style & PL_MARKERS)
            pl_disc(c, box[0] + 27.0, y, pl_series_radius(s), s->color,
                    s->outline_color, s->outline);
        pl_text(c, box[0] + 52, y, s->label, PL_SCALE, pl_hex(PL_TEXT), PL_LEFT,
                false, false);
    }
}

static inline void pl_raster_panel(pl_canvas *c, const pl_panel *p)
{
    pl_layout L;
    pl_layout_panel(p, &L);
    const int cap = PL_CAP * PL_SCALE;
    pl_rgb text = pl_hex(PL_TEXT), axis = pl_hex(PL_AXIS),
           grid = pl_hex(PL_GRID);
    if (p->image.rgb) {
        pl_blit(c, L.x0, L.y0, L.x1, L.y1, &p->image);
    } else {
        for (int i = 0; i < L.xt.n; i++) {
            int x = (int)lround(pl_px(p, &L, L.xt.v[i]));
            if (x > L.x0 && x < L.x1 - 1)
                pl_fill_rect(c, x, L.y0, x + 1, L.y1, grid, 1);
        }
        pl_ticks gy;
        pl_grid_y(p, &L, &gy);
        for (int i = 0; i < gy.n; i++) {
            int y = (int)lround(pl_py(p, &L, gy.v[i]));
            if (y > L.y0 && y < L.y1 - 1)
                pl_fill_rect(c, L.x0, y, L.x1, y + 1, grid, 1);
        }
    }
    for (int i = 0; i < p->nseries; i++)
        pl_raster_series(c, p, &L, &p->series[i]);
    /* The frame, just outside the data rectangle. */
    pl_fill_rect(c, L.x0 - 1, L.y0 - 1, L.x1 + 1, L.y0, axis, 1);
    pl_fill_rect(c, L.x0 - 1, L.y1, L.x1 + 1, L.y1 + 1, axis, 1);
    pl_fill_rect(c, L.x0 - 1, L.y0, L.x0, L.y1, axis, 1);
    pl_fill_rect(c, L.x1, L.y0, L.x1 + 1, L.y1, axis, 1);
    for (int i = 0; i < L.xt.n; i++) {
        int x = (int)lround(pl_px(p, &L, L.xt.v[i]));
        pl_fill_rect(c, x, L.y1 + 1, x + 1, L.y1 + 6, axis, 1);
        pl_text(c, x, L.y1 + 10 + cap / 2.0, L.xt.label[i], PL_SCALE, text,
                PL_CENTER, false, false);
    }
    for (int i = 0; i < L.yt.n; i++) {
        int y = (int)lround(pl_py(p, &L, L.yt.v[i]));
        pl_fill_rect(c, L.x0 - 6, y, L.x0 - 1, y + 1, axis, 1);
        pl_text(c, L.x0 - 10, y, L.yt.label[i], PL_SCALE, text, PL_RIGHT, false,
                false);
    }
    if (p->xlabel && !p->bare)
        pl_text(c, (L.x0 + L.x1) / 2.0, L.y1 + 12 + cap + 14 + cap / 2.0,
                p->xlabel, PL_SCALE, text, PL_CENTER, false, false);
    if (p->ylabel && !p->bare)
        pl_text(c, p->x + 4 + cap / 2.0, (L.y0 + L.y1) / 2.0, p->ylabel,
                PL_SCALE, text, PL_CENTER, false, true);
    if (p->title)
        pl_text(c, (L.x0 + L.x1) / 2.0,
                p->bare ? p->y + 3 + cap / 2.0 : p->y + 9 + cap / 2.0, p->title,
                PL_SCALE, text, PL_CENTER, !p->bare, false);
    pl_raster_legend(c, p, &L);
}

static inline pl_rgb pl_label_color(const pl_label *l)
{
    return pl_hex(l->color ? l->color : PL_TEXT);
}

static inline int pl_label_scale(const pl_label *l)
{
    return l->scale > 0 ? l->scale : PL_SCALE;
}

/* The figure title is centred on the figure, or over the data rectangle
 * of a figure of one chart, where it lines up with the panel's title. */
static inline double pl_title_x(const pl_figure *f)
{
    if (f->npanels != 1 || f->panels[0].bare)
        return f->w / 2.0;
    pl_layout L;
    pl_layout_panel(&f->panels[0], &L);
    return (L.x0 + L.x1) / 2.0;
}

/* Draws f on a new canvas (free it with pl_canvas_free). */
static inline int pl_render(const pl_figure *f, pl_canvas *c)
{
    if (pl_canvas_init(c, f->w, f->h, pl_hex(PL_WHITE)) != 0)
        return -1;
    for (int i = 0; i < f->npanels; i++)
        pl_raster_panel(c, &f->panels[i]);
    for (int i = 0; i < f->nlabels; i++) {
        const pl_label *l = &f->labels[i];
        pl_text(c, l->x, l->y, l->text, pl_label_scale(l), pl_label_color(l),
                l->align, l->bold, l->vertical);
    }
    if (f->title)
        pl_text(c, pl_title_x(f), 24, f->title, PL_SCALE, pl_hex(PL_TEXT),
                PL_CENTER, true, false);
    return 0;
}

/* ---- SVG rendering ---- */

typedef struct pl_hexstr {
    char s[8];
} pl_hexstr;

static inline pl_hexstr pl_css(pl_rgb c)
{
    pl_hexstr h;
    snprintf(h.s, sizeof h.s, "#%02x%02x%02x", c.r, c.g, c.b);
    return h;
}

static inline void pl_svg_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

/* The same placement as pl_text: capitals centred on y (on x when
 * vertical), the baseline 0.36 em below the centre line. */
static inline void pl_svg_text(FILE *f, double x, double y, const char *s,
                               int scale, pl_rgb col, int align, bool bold,
                               bool vertical)
{
    double fs = pl_font_px(scale);
    const char *anchor = align == PL_CENTER  ? "middle"
                         : align == PL_RIGHT ? "end"
                                             : "start";
    if (vertical)
        fprintf(f,
                "<text transform=\"translate(%.1f %.1f) rotate(-90)\" "
                "y=\"%.1f\"",
                x, y, 0.36 * fs);
    else
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\"", x, y + 0.36 * fs);
    fprintf(f, " font-size=\"%.1f\" text-anchor=\"%s\" fill=\"%s\"%s>", fs,
            anchor, pl_css(col).s, bold ? " font-weight=\"bold\"" : "");
    pl_svg_escape(f, s);
    fputs("</text>\n", f);
}

static inline void pl_base64(FILE *f, const unsigned char *d, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < n)
            v |= d[i + 2];
        fputc(tab[v >> 18 & 63], f);
        fputc(tab[v >> 12 & 63], f);
        fputc(i + 1 < n ? tab[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? tab[v & 63] : '=', f);
    }
}

static inline void pl_svg_marker(FILE *f, const pl_series *s, double x,
                                 double y, pl_rgb fill)
{
    double r = pl_series_radius(s);
    if (s->outline > 0)
        /* The stroke is centred on the path: shrink the circle by half
         * the width so that the ring lies inside the raster's radius. */
        fprintf(f,
                "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\" fill=\"%s\" "
                "stroke=\"%s\" stroke-width=\"%.2f\"/>\n",
                x, y, r - s->outline / 2, pl_css(fill).s,
                pl_css(s->outline_color).s, s->outline);
    else
        fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\" fill=\"%s\"/>\n",
                x, y, r, pl_css(fill).s);
}

/* The lines of a series (its markers: pl_svg_markers). */
static inline void pl_svg_series(FILE *f, const pl_panel *p, const pl_layout *L,
                                 const pl_series *s)
{
    if (s->style & PL_LINE) {
        bool open = false;
        for (int i = 0; i < s->n; i++) {
            double x = pl_px(p, L, s->x[i]), y = pl_py(p, L, s->y[i]);
            if (!pl_finite2(x, y)) {
                if (open)
                    fputs("\"/>\n", f);
                open = false;
                continue;
            }
            if (!open)
                fprintf(f,
                        "<polyline fill=\"none\" stroke=\"%s\" "
                        "stroke-width=\"%.2f\" stroke-linejoin=\"round\" "
                        "stroke-linecap=\"round\" points=\"",
                        pl_css(s->color).s, pl_series_width(s));
            fprintf(f, "%s%.2f,%.2f", open ? " " : "", x, y);
            open = true;
        }
        if (open)
            fputs("\"/>\n", f);
    }
}

static inline void pl_svg_markers(FILE *f, const pl_panel *p,
                                  const pl_layout *L, const pl_series *s)
{
    if (s->style & PL_MARKERS)
        for (int i = 0; i < s->n; i++) {
            double x = pl_px(p, L, s->x[i]), y = pl_py(p, L, s->y[i]);
            if (pl_finite2(x, y) && pl_inside(L, x, y))
                pl_svg_marker(f, s, x, y, s->colors ? s->colors[i] : s->color);
        }
}

static inline int pl_svg_image(FILE *f, int x, int y, int w, int h,
                               const pl_image *img)
{
    size_t len = 0;
    unsigned char *png = pl_png_encode(img->w, img->h, img->rgb, &len);
    if (!png)
        return -1;
    fprintf(f,
            "<image x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
            "preserveAspectRatio=\"none\" xlink:href=\"data:image/png;base64,",
            x, y, w, h);
    pl_base64(f, png, len);
    fputs("\"/>\n", f);
    free(png);
    return 0;
}

static inline int pl_svg_panel(FILE *f, const pl_panel *p, int id)
{
    pl_layout L;
    pl_layout_panel(p, &L);
    const int cap = PL_CAP * PL_SCALE;
    pl_rgb text = pl_hex(PL_TEXT), axis = pl_hex(PL_AXIS);
    if (p->image.rgb) {
        if (pl_svg_image(f, L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0, &p->image))
            return -1;
    } else if (L.xt.n + L.yt.n > 0) {
        fprintf(f, "<path stroke=\"%s\" stroke-width=\"1\" d=\"",
                pl_css(pl_hex(PL_GRID)).s);
        for (int i = 0; i < L.xt.n; i++) {
            int x = (int)lround(pl_px(p, &L, L.xt.v[i]));
            if (x > L.x0 && x < L.x1 - 1)
                fprintf(f, "M%.1f %dV%d", x + 0.5, L.y0, L.y1);
        }
        pl_ticks gy;
        pl_grid_y(p, &L, &gy);
        for (int i = 0; i < gy.n; i++) {
            int y = (int)lround(pl_py(p, &L, gy.v[i]));
            if (y > L.y0 && y < L.y1 - 1)
                fprintf(f, "M%d %.1fH%d", L.x0, y + 0.5, L.x1);
        }
        fputs("\"/>\n", f);
    }
    if (p->nseries > 0) {
        fprintf(f,
                "<clipPath id=\"clip%d\"><rect x=\"%d\" y=\"%d\" width=\"%d\" "
                "height=\"%d\"/></clipPath>\n<g clip-path=\"url(#clip%d)\">\n",
                id, L.x0, L.y0, L.x1 - L.x0, L.y1 - L.y0, id);
        for (int i = 0; i < p->nseries; i++)
            pl_svg_series(f, p, &L, &p->series[i]);
        fputs("</g>\n", f);
        for (int i = 0; i < p->nseries; i++)
            pl_svg_markers(f, p, &L, &p->series[i]);
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" "
            "fill=\"none\" stroke=\"%s\" stroke-width=\"1\"/>\n",
            L.x0 - 0.5, L.y0 - 0.5, L.x1 - L.x0 + 1, L.y1 - L.y0 + 1,
            pl_css(axis).s);
    if (L.xt.n + L.yt.n > 0) {
        fprintf(f, "<path stroke=\"%s\" stroke-width=\"1\" d=\"",
                pl_css(axis).s);
        for (int i = 0; i < L.xt.n; i++)
            fprintf(f, "M%.1f %dV%d",
                    (double)lround(pl_px(p, &L, L.xt.v[i])) + 0.5, L.y1 + 1,
                    L.y1 + 6);
        for (int i = 0; i < L.yt.n; i++)
            fprintf(f, "M%d %.1fH%d", L.x0 - 6,
                    (double)lround(pl_py(p, &L, L.yt.v[i])) + 0.5, L.x0 - 1);
        fputs("\"/>\n", f);
    }
    for (int i = 0; i < L.xt.n; i++)
        pl_svg_text(f, (double)lround(pl_px(p, &L, L.xt.v[i])) + 0.5,
                    L.y1 + 10 + cap / 2.0, L.xt.label[i], PL_SCALE, text,
                    PL_CENTER, false, false);
    for (int i = 0; i < L.yt.n; i++)
        pl_svg_text(f, L.x0 - 10, (double)lround(pl_py(p, &L, L.yt.v[i])) + 0.5,
                    L.yt.label[i], PL_SCALE, text, PL_RIGHT, false, false);
    if (p->xlabel && !p->bare)
        pl_svg_text(f, (L.x0 + L.x1) / 2.0, L.y1 + 12 + cap + 14 + cap / 2.0,
                    p->xlabel, PL_SCALE, text, PL_CENTER, false, false);
    if (p->ylabel && !p->bare)
        pl_svg_text(f, p->x + 4 + cap / 2.0, (L.y0 + L.y1) / 2.0, p->ylabel,
                    PL_SCALE, text, PL_CENTER, false, true);
    if (p->title)
        pl_svg_text(f, (L.x0 + L.x1) / 2.0,
                    p->bare ? p->y + 3 + cap / 2.0 : p->y + 9 + cap / 2.0,
                    p->title, PL_SCALE, text, PL_CENTER, !p->bare, false);
    int box[4];
    if (pl_legend_box(p, &L, box)) {
        const int row = PL_CAP * PL_SCALE + 12;
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" "
                "fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#bbbbbb\"/>\n",
                box[0] + 0.5, box[1] + 0.5, box[2] - box[0] - 1,
                box[3] - box[1] - 1);
        int k = 0;
        for (int i = 0; i < p->nseries; i++) {
            const pl_series *s = &p->series[i];
            if (!s->label)
                continue;
            double y = box[1] + 4 + row * k++ + row / 2.0;
            if (s->style & PL_LINE)
                fprintf(f,
                        "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                        "stroke=\"%s\" stroke-width=\"%.2f\" "
                        "stroke-linecap=\"round\"/>\n",
                        box[0] + 12, y, box[0] + 42, y, pl_css(s->color).s,
                        pl_series_width(s));
            if (s->style & PL_MARKERS)
                pl_svg_marker(f, s, box[0] + 27.0, y, s->color);
            pl_svg_text(f, box[0] + 52, y, s->label, PL_SCALE, text, PL_LEFT,
                        false, false);
        }
    }
    return 0;
}

static inline int pl_write_svg(const pl_figure *fig, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" "
            "xmlns:xlink=\"http://www.w3.org/1999/xlink\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
            fig->w, fig->h, fig->w, fig->h, fig->w, fig->h);
    int rc = 0;
    for (int i = 0; i < fig->npanels && rc == 0; i++)
        rc = pl_svg_panel(f, &fig->panels[i], i);
    for (int i = 0; i < fig->nlabels; i++) {
        const pl_label *l = &fig->labels[i];
        pl_svg_text(f, l->x, l->y, l->text, pl_label_scale(l),
                    pl_label_color(l), l->align, l->bold, l->vertical);
    }
    if (fig->title)
        pl_svg_text(f, pl_title_x(fig), 24, fig->title, PL_SCALE,
                    pl_hex(PL_TEXT), PL_CENTER, true, false);
    fputs("</svg>\n", f);
    if (ferror(f))
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc)
        fprintf(stderr, "%s: writing the SVG failed\n", path);
    return rc;
}

/* Writes <prefix>.png and <prefix>.svg and checks that both came out
 * well-formed. Returns 0, or -1 with a message on stderr. */
static inline int pl_save(const pl_figure *fig, const char *prefix)
{
    size_t n = strlen(prefix) + 8;
    char *png = malloc(n), *svg = malloc(n);
    pl_canvas c = {0};
    int rc = -1;
    if (!png || !svg || pl_render(fig, &c) != 0) {
        fprintf(stderr, "%s: out of memory drawing the figure\n", prefix);
        goto done;
    }
    snprintf(png, n, "%s.png", prefix);
    snprintf(svg, n, "%s.svg", prefix);
    if (pl_write_png(png, c.w, c.h, c.px) != 0 || pl_write_svg(fig, svg) != 0 ||
        !pl_check_png(png, fig->w, fig->h) || !pl_check_svg(svg))
        goto done;
    printf("wrote %s and %s (%dx%d)\n", png, svg, fig->w, fig->h);
    rc = 0;
done:
    pl_canvas_free(&c);
    free(png);
    free(svg);
    return rc;
}

/* A data range widened to multiples of a nice tick step (and to 0 when
 * zero is set and the data are positive); returns the step. */
static inline double pl_auto_range(double lo, double hi, bool zero,
                                   double *out_lo, double *out_hi)
{
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    if (zero && lo > 0)
        lo = 0;
    if (zero && hi < 0)
        hi = 0;
    if (hi - lo <= 1e-12 * fmax(fabs(lo), fabs(hi))) {
        double pad = lo != 0 ? fabs(lo) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    double step = pl_nice_step(hi - lo, 5);
    *out_lo = floor(lo / step + 1e-9) * step;
    *out_hi = ceil(hi / step - 1e-9) * step;
    return step;
}

/* ---- the training log ---- */

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

static inline void pl_log_free(pl_log *log)
{
    for (int k = 0; k < PL_NCOLS; k++) {
        free(log->col[k]);
        log->col[k] = NULL;
    }
    log->n = 0;
}

/* The next field of a line (fields end at ',' or at the line's end), with
 * blanks around it trimmed; *s moves past the comma. */
static inline void pl_field(char **s, char **start, size_t *len)
{
    char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    char *e = p;
    while (*e && *e != ',')
        e++;
    char *t = e;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
        t--;
    *start = p;
    *len = (size_t)(t - p);
    *s = *e ? e + 1 : e;
}

static inline int pl_count_fields(const char *line)
{
    int n = 1;
    for (; *line; line++)
        n += *line == ',';
    return n;
}

/* Reads nb_train's CSV log (see the top of this file). Returns 0, or -1
 * with a message naming the line on stderr. */
static inline int pl_log_read(const char *path, pl_log *log)
{
    static const char *const names[PL_NCOLS] = {
        "epoch",    "lr",      "train_loss", "train_acc",
        "val_loss", "val_acc", "seconds"};
    enum { MAX_COLS = 64 };
    memset(log, 0, sizeof *log);
    size_t len = 0;
    char *buf = pl_read_file(path, (size_t)64 << 20, &len);
    if (!buf)
        return -1;
    if (strlen(buf) != len) {
        fprintf(stderr, "%s: holds a NUL byte: not a CSV file\n", path);
        free(buf);
        return -1;
    }
    int which[MAX_COLS]; /* file column -> PL_* or -1 */
    int ncols = 0, cap = 0, line_no = 0, rc = -1;
    bool header = true;
    char *next = buf;
    while (*next) {
        char *line = next;
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : line + strlen(line);
        if (nl)
            *nl = 0;
        line_no++;
        char *s = line;
        while (*s == ' ' || *s == '\t' || *s == '\r')
            s++;
        if (!*s)
            continue; /* blank line */
        char *f;
        size_t flen;
        if (header) {
            bool seen[PL_NCOLS] = {false};
            ncols = pl_count_fields(line);
            if (ncols > MAX_COLS) {
                fprintf(stderr, "%s:%d: more than %d columns\n", path, line_no,
                        MAX_COLS);
                goto done;
            }
            s = line;
            for (int c = 0; c < ncols; c++) {
                pl_field(&s, &f, &flen);
                which[c] = -1;
                for (int k = 0; k < PL_NCOLS; k++)
                    if (strlen(names[k]) == flen &&
                        !memcmp(f, names[k], flen) && !seen[k]) {
                        which[c] = k;
                        seen[k] = true;
                    }
            }
            if (!seen[PL_EPOCH] || !seen[PL_TRAIN_LOSS]) {
                fprintf(stderr,
                        "%s:%d: the header names no epoch or no train_loss "
                        "column\n",
                        path, line_no);
                goto done;
            }
            header = false;
            continue;
        }
        if (log->n == cap) {
            cap = cap ? 2 * cap : 64;
            for (int k = 0; k < PL_NCOLS; k++) {
                double *grown =
                    realloc(log->col[k], (size_t)cap * sizeof(double));
                if (!grown) {
                    fprintf(stderr, "%s: out of memory\n", path);
                    goto done;
                }
                log->col[k] = grown;
            }
        }
        for (int k = 0; k < PL_NCOLS; k++)
            log->col[k][log->n] = NAN;
        int nf = pl_count_fields(line);
        if (nf != ncols) {
            fprintf(stderr, "%s:%d: %d fields where the header has %d\n", path,
                    line_no, nf, ncols);
            goto done;
        }
        s = line;
        for (int c = 0; c < ncols; c++) {
            pl_field(&s, &f, &flen);
            if (which[c] < 0 || flen == 0)
                continue; /* an unknown column or an empty field */
            char tmp[64], *end = NULL;
            if (flen >= sizeof tmp) {
                fprintf(stderr, "%s:%d: field %d is too long\n", path, line_no,
                        c + 1);
                goto done;
            }
            memcpy(tmp, f, flen);
            tmp[flen] = 0;
            double v = strtod(tmp, &end);
            if (end == tmp || *end) {
                fprintf(stderr, "%s:%d: field %d ('%s') is not a number\n",
                        path, line_no, c + 1, tmp);
                goto done;
            }
            log->col[which[c]][log->n] = v;
        }
        log->n++;
    }
    if (header) {
        fprintf(stderr, "%s: empty: no header line\n", path);
        goto done;
    }
    rc = 0;
done:
    free(buf);
    if (rc)
        pl_log_free(log);
    return rc;
}

static inline bool pl_any_finite(const double *v, int n)
{
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]))
            return true;
    return false;
}

static inline void pl_minmax(const double *v, int n, double *lo, double *hi)
{
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            *lo = fmin(*lo, v[i]);
            *hi = fmax(*hi, v[i]);
        }
}

/* Training curves from a log: a loss panel (train and validation) and,
 * when the log has accuracies, an accuracy panel in percent. Writes
 * <prefix>.png and <prefix>.svg. Returns 0 or -1. */
static inline int pl_plot_log(const pl_log *log, const char *prefix,
                              const char *title)
{
    if (log->n < 1 || !pl_any_finite(log->col[PL_TRAIN_LOSS], log->n)) {
        fprintf(stderr, "%s: the log has no rows with a training loss\n",
                prefix);
        return -1;
    }
    const int n = log->n;
    const double *ep = log->col[PL_EPOCH];
    /* Each curve keeps only its rows with a value: an empty field is
     * skipped (the line joins its neighbours), and a curve without a
     * single value stays out of the legend. Accuracies in percent. */
    static const int column[4] = {PL_TRAIN_LOSS, PL_VAL_LOSS, PL_TRAIN_ACC,
                                  PL_VAL_ACC};
    double *xy = malloc(8 * (size_t)n * sizeof *xy);
    if (!xy) {
        fprintf(stderr, "%s: out of memory\n", prefix);
        return -1;
    }
    /* Markers while the epochs are few enough to tell apart. */
    int style = n <= 40 ? PL_LINE | PL_MARKERS : PL_LINE;
    pl_series s[4];
    for (int k = 0; k < 4; k++) {
        double *x = xy + 2 * (size_t)k * n, *y = x + n;
        int m = 0;
        for (int i = 0; i < n; i++)
            if (isfinite(ep[i]) && isfinite(log->col[column[k]][i])) {
                x[m] = ep[i];
                y[m++] = log->col[column[k]][i] * (k >= 2 ? 100 : 1);
            }
        s[k] = (pl_series){.label = m ? (k % 2 ? "validation" : "train") : NULL,
                           .color = pl_hex(k % 2 ? PL_ORANGE : PL_BLUE),
                           .n = m,
                           .x = x,
                           .y = y,
                           .style = style,
                           .radius = 3.5};
    }
    bool has_acc = s[2].n + s[3].n > 0;

    double e_lo = INFINITY, e_hi = -INFINITY;
    pl_minmax(ep, n, &e_lo, &e_hi);
    double xmin = e_lo <= 1 && e_lo >= 0 ? 0 : e_lo, xmax = e_hi;
    if (!(xmax > xmin))
        xmax = xmin + 1;
    double xstep = pl_nice_step(xmax - xmin, 5);
    xstep = xstep < 1 ? 1 : xstep;
    xmax = ceil(xmax / xstep - 1e-9) * xstep;

    double lo = INFINITY, hi = -INFINITY;
    pl_minmax(s[0].y, s[0].n, &lo, &hi);
    pl_minmax(s[1].y, s[1].n, &lo, &hi);
    /* Start the loss axis at 0 unless the losses sit far above it. */
    pl_panel panels[2] = {{0}};
    double ystep = pl_auto_range(lo, hi, lo >= 0 && lo < 0.6 * hi,
                                 &panels[0].ymin, &panels[0].ymax);
    const int top = title ? 40 : 0, pw = 520, ph = 420;
    panels[0] = (pl_panel){.x = 0,
                           .y = top,
                           .w = pw,
                           .h = ph,
                           .title = "loss",
                           .xlabel = "epoch",
                           .ylabel = "loss",
                           .xmin = xmin,
                           .xmax = xmax,
                           .ymin = panels[0].ymin,
                           .ymax = panels[0].ymax,
                           .xstep = xstep,
                           .ystep = ystep,
                           .series = s,
                           .nseries = 2,
                           .legend = PL_LEGEND_TOP_RIGHT};
    if (has_acc) {
        lo = INFINITY, hi = -INFINITY;
        pl_minmax(s[2].y, s[2].n, &lo, &hi);
        pl_minmax(s[3].y, s[3].n, &lo, &hi);
        double alo, ahi, astep = pl_auto_range(lo, hi, false, &alo, &ahi);
        if (ahi > 100)
            ahi = 100;
        if (alo < 0)
            alo = 0;
        panels[1] = (pl_panel){.x = pw,
                               .y = top,
                               .w = pw,
                               .h = ph,
                               .title = "accuracy",
                               .xlabel = "epoch",
                               .ylabel = "accuracy (%)",
                               .xmin = xmin,
                               .xmax = xmax,
                               .ymin = alo,
                               .ymax = ahi,
                               .xstep = xstep,
                               .ystep = astep,
                               .series = s + 2,
                               .nseries = 2,
                               .legend = PL_LEGEND_BOTTOM_RIGHT};
    }
    /* A margin of 3% inside the frame keeps curves at 0 or 100% off it;
     * the ticks stay where they were. */
    for (int k = 0; k < 2; k++) {
        double ypad = 0.03 * (panels[k].ymax - panels[k].ymin);
        double xpad = 0.02 * (panels[k].xmax - panels[k].xmin);
        panels[k].ymin -= ypad;
        panels[k].ymax += ypad;
        panels[k].xmin -= xpad;
        panels[k].xmax += xpad;
    }
    pl_figure fig = {.w = has_acc ? 2 * pw : pw,
                     .h = top + ph,
                     .title = title,
                     .panels = panels,
                     .npanels = has_acc ? 2 : 1};
    int rc = pl_save(&fig, prefix);
    free(xy);
    return rc;
}

/* Reads the log at csv_path and plots it (pl_plot_log). */
static inline int pl_plot_log_file(const char *csv_path, const char *prefix,
                                   const char *title)
{
    pl_log log;
    if (pl_log_read(csv_path, &log) != 0)
        return -1;
    int rc = pl_plot_log(&log, prefix, title);
    pl_log_free(&log);
    return rc;
}

#endif
