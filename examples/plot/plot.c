/* Layout and drawing of pl_figure with cairo (see plot.h).
 *
 * One drawing routine serves every surface: pl_write makes a PNG, SVG or
 * PDF surface and hands its context to pl_draw. Text is measured with the
 * same context it is drawn with, and metric hinting is switched off, so
 * the layout (where each tick, label and legend lands) is the same on all
 * three surfaces.
 */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo-pdf.h>
#include <cairo-svg.h>

#define PI 3.14159265358979323846
#define FONT_FACE "DejaVu Sans"
#define TITLE_FONT 15.0
#define FIG_TITLE_FONT 16.0
#define SUP_SCALE 0.72 /* exponent size relative to its base */
#define MAX_TICKS 24
#define TICK_LEN 5
#define GRID_COLOR 0xe6e6e6
#define AXIS_COLOR 0x555555
#define LEGEND_EDGE 0xc8c8c8

/* ---- colours ---- */

pl_rgb pl_hex(uint32_t v)
{
    return (pl_rgb){(unsigned char)(v >> 16), (unsigned char)(v >> 8),
                    (unsigned char)v};
}

static unsigned char lerp8(unsigned char a, unsigned char b, double t)
{
    return (unsigned char)lround(a + (b - a) * t);
}

pl_rgb pl_mix(pl_rgb a, pl_rgb b, double t)
{
    t = t > 0 ? (t < 1 ? t : 1) : 0; /* also maps NaN to 0 */
    return (pl_rgb){lerp8(a.r, b.r, t), lerp8(a.g, b.g, t),
                    lerp8(a.b, b.b, t)};
}

pl_rgb pl_palette(int k)
{
    static const uint32_t c[6] = {PL_ORANGE, PL_BLUE, PL_GREEN,
                                  PL_PURPLE, PL_RED,  PL_TEAL};
    return pl_hex(c[((k % 6) + 6) % 6]);
}

pl_rgb pl_diverging(double v)
{
    if (isnan(v))
        return pl_hex(0xcccccc);
    return v < 0 ? pl_mix(pl_hex(PL_WHITE), pl_hex(PL_ORANGE), -v)
                 : pl_mix(pl_hex(PL_WHITE), pl_hex(PL_BLUE), v);
}

static void set_rgb(cairo_t *cr, pl_rgb c)
{
    cairo_set_source_rgb(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0);
}

/* ---- text ---- */

static void set_font(cairo_t *cr, double size, bool bold)
{
    cairo_select_font_face(cr, FONT_FACE, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD
                                : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double advance(cairo_t *cr, const char *s, double size, bool bold)
{
    cairo_text_extents_t e;
    set_font(cr, size, bold);
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Capital height, the reference for centring text on a line. */
static double cap_height(cairo_t *cr, double size, bool bold)
{
    cairo_text_extents_t e;
    set_font(cr, size, bold);
    cairo_text_extents(cr, "H", &e);
    return e.height;
}

/* A text with an optional exponent raised after it ("10" and "-4"). */
typedef struct rich {
    char base[32];
    char sup[16];
} rich;

static double rich_width(cairo_t *cr, const rich *t, double size)
{
    double w = advance(cr, t->base, size, false);
    if (t->sup[0])
        w += advance(cr, t->sup, size * SUP_SCALE, false) + 1;
    return w;
}

/* Draws t with its capitals centred on y, aligned on x. */
static void draw_rich(cairo_t *cr, double x, double y, const rich *t,
                      double size, int align, pl_rgb color)
{
    double w = rich_width(cr, t, size), cap = cap_height(cr, size, false);
    x -= align == PL_CENTER ? w / 2 : align == PL_RIGHT ? w : 0;
    set_rgb(cr, color);
    set_font(cr, size, false);
    cairo_move_to(cr, x, y + cap / 2);
    cairo_show_text(cr, t->base);
    if (t->sup[0]) {
        double bw = advance(cr, t->base, size, false);
        set_font(cr, size * SUP_SCALE, false);
        cairo_move_to(cr, x + bw + 1, y + cap / 2 - 0.55 * cap);
        cairo_show_text(cr, t->sup);
    }
}

static void draw_text(cairo_t *cr, double x, double y, const char *s,
                      double size, int align, bool bold, bool vertical,
                      pl_rgb color)
{
    double w = advance(cr, s, size, bold), cap = cap_height(cr, size, bold);
    double dx = align == PL_CENTER ? -w / 2 : align == PL_RIGHT ? -w : 0;
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (vertical)
        cairo_rotate(cr, -PI / 2);
    set_rgb(cr, color);
    set_font(cr, size, bold);
    cairo_move_to(cr, dx, cap / 2);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

/* ---- ticks ---- */

typedef struct ticks {
    int n;
    double v[MAX_TICKS];
    rich label[MAX_TICKS];
} ticks;

double pl_nice_step(double range, int count)
{
    double raw = range / count;
    if (!(raw > 0) || !isfinite(raw))
        return 1;
    double mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
}

/* Decimals needed to print multiples of step exactly. */
static int decimals(double step)
{
    for (int d = 0; d < 9; d++) {
        double s = step * pow(10, d);
        if (fabs(s - round(s)) < 1e-6 * s)
            return d;
    }
    return 9;
}

/* The typographic minus sign in place of a leading hyphen. */
static void set_label(char *dst, size_t size, const char *text)
{
    if (text[0] == '-')
        snprintf(dst, size, "\xe2\x88\x92%s", text + 1);
    else
        snprintf(dst, size, "%s", text);
}

static void linear_ticks(double lo, double hi, double step, ticks *t)
{
    t->n = 0;
    if (!(hi > lo))
        return;
    if (!(step > 0))
        step = pl_nice_step(hi - lo, 5);
    while ((hi - lo) / step > MAX_TICKS - 1)
        step *= 2;
    int d = decimals(step);
    for (double k = ceil(lo / step - 1e-9);
         k * step <= hi + 1e-9 * (hi - lo) && t->n < MAX_TICKS; k++) {
        double v = k * step;
        if (fabs(v) < 1e-9 * step)
            v = 0; /* no "-0" */
        char num[24];
        if (fabs(v) >= 1e6)
            snprintf(num, sizeof num, "%g", v);
        else
            snprintf(num, sizeof num, "%.*f", d, v);
        t->v[t->n] = v;
        set_label(t->label[t->n].base, sizeof t->label[0].base, num);
        t->label[t->n].sup[0] = '\0';
        t->n++;
    }
}

/* Labels at the powers of ten in [lo, hi], written 10^k (every other or
 * every third power when more than nine would be labelled). */
static void log_ticks(double lo, double hi, ticks *t)
{
    t->n = 0;
    if (!(lo > 0) || !(hi > lo))
        return;
    int e0 = (int)ceil(log10(lo) - 1e-9), e1 = (int)floor(log10(hi) + 1e-9);
    int stride = 1;
    while ((e1 - e0) / stride + 1 > 9)
        stride++;
    int first = (int)ceil((double)e0 / stride) * stride;
    for (int e = first; e <= e1 && t->n < MAX_TICKS; e += stride) {
        char num[12];
        t->v[t->n] = pow(10, e);
        snprintf(t->label[t->n].base, sizeof t->label[0].base, "10");
        snprintf(num, sizeof num, "%d", e);
        set_label(t->label[t->n].sup, sizeof t->label[0].sup, num);
        t->n++;
    }
}

/* ---- layout ---- */

typedef struct layout {
    double x0, y0, x1, y1; /* the data rectangle, whole pixels */
    ticks xt, yt;
    double legend[4]; /* its box; legend[2] == 0 when there is none */
} layout;

static int legend_rows(const pl_panel *p)
{
    int n = 0;
    for (int i = 0; i < p->nseries; i++)
        n += p->series[i].label != NULL;
    return p->legend == PL_LEGEND_NONE ? 0 : n;
}

enum { LEGEND_PAD = 9, LEGEND_ROW = 22, LEGEND_SAMPLE = 28 };

static void legend_size(cairo_t *cr, const pl_panel *p, double *w, double *h)
{
    double wmax = 0;
    for (int i = 0; i < p->nseries; i++)
        if (p->series[i].label)
            wmax = fmax(wmax, advance(cr, p->series[i].label, PL_FONT, false));
    *w = 2 * LEGEND_PAD + LEGEND_SAMPLE + 8 + wmax;
    *h = 2 * LEGEND_PAD - 4 + legend_rows(p) * LEGEND_ROW;
}

static void layout_panel(cairo_t *cr, const pl_panel *p, layout *L)
{
    L->xt.n = L->yt.n = 0;
    L->legend[2] = 0;
    if (p->bare) {
        L->x0 = p->x;
        L->x1 = p->x + p->w;
        L->y0 = p->y + (p->title ? PL_TILE_TITLE_H : 0);
        L->y1 = p->y + p->h;
        return;
    }
    if (p->ylog)
        log_ticks(p->ymin, p->ymax, &L->yt);
    else
        linear_ticks(p->ymin, p->ymax, p->ystep, &L->yt);
    double tick_w = 0;
    for (int i = 0; i < L->yt.n; i++)
        tick_w = fmax(tick_w, rich_width(cr, &L->yt.label[i], PL_FONT));
    double left = 8 + (p->ylabel ? PL_FONT + 14 : 0) + tick_w + TICK_LEN + 6;
    double bottom = TICK_LEN + 8 + PL_FONT + (p->xlabel ? PL_FONT + 14 : 0) + 6;
    double top = p->title ? 36 : 14, right = 22, lw = 0, lh = 0;
    if (p->legend == PL_LEGEND_OUTSIDE && legend_rows(p)) {
        legend_size(cr, p, &lw, &lh);
        right += 14 + lw;
    }
    L->x0 = round(p->x + left);
    L->x1 = round(p->x + p->w - right);
    L->y0 = round(p->y + top);
    L->y1 = round(p->y + p->h - bottom);
    /* Widen the x step until neighbouring labels keep 14 pixels apart. */
    double step = p->xstep > 0 ? p->xstep : pl_nice_step(p->xmax - p->xmin, 5);
    for (int tries = 0; tries < 20; tries++, step *= 2) {
        linear_ticks(p->xmin, p->xmax, step, &L->xt);
        double wmax = 0;
        for (int i = 0; i < L->xt.n; i++)
            wmax = fmax(wmax, rich_width(cr, &L->xt.label[i], PL_FONT));
        double gap = step / (p->xmax - p->xmin) * (L->x1 - L->x0);
        if (L->xt.n < 2 || gap >= wmax + 14)
            break;
    }
    if (!legend_rows(p))
        return;
    legend_size(cr, p, &lw, &lh);
    bool right_side =
        p->legend == PL_LEGEND_TOP_RIGHT || p->legend == PL_LEGEND_BOTTOM_RIGHT;
    bool top_side =
        p->legend == PL_LEGEND_TOP_RIGHT || p->legend == PL_LEGEND_TOP_LEFT;
    double bx = right_side ? L->x1 - 10 - lw : L->x0 + 10;
    double by = top_side ? L->y0 + 10 : L->y1 - 10 - lh;
    if (p->legend == PL_LEGEND_OUTSIDE) {
        bx = L->x1 + 14;
        by = L->y0;
    }
    L->legend[0] = round(bx);
    L->legend[1] = round(by);
    L->legend[2] = L->legend[0] + ceil(lw);
    L->legend[3] = L->legend[1] + ceil(lh);
}

/* Text is measured on this context when no drawing is under way. */
static cairo_t *measuring_context(cairo_surface_t **s)
{
    *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    cairo_t *cr = cairo_create(*s);
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
    return cr;
}

double pl_text_width(const char *s, double size)
{
    cairo_surface_t *surf;
    cairo_t *cr = measuring_context(&surf);
    double w = advance(cr, s, size, false);
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return w;
}

void pl_data_rect(const pl_panel *p, double rect[4])
{
    cairo_surface_t *surf;
    cairo_t *cr = measuring_context(&surf);
    layout L;
    layout_panel(cr, p, &L);
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    rect[0] = L.x0;
    rect[1] = L.y0;
    rect[2] = L.x1;
    rect[3] = L.y1;
}

void pl_fit_data_rect(pl_panel *p, int w, int h)
{
    double r[4];
    pl_data_rect(p, r);
    p->w += w - (int)(r[2] - r[0]);
    p->h += h - (int)(r[3] - r[1]);
}

double pl_auto_range(double lo, double hi, bool zero, double *out_lo,
                     double *out_hi)
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

void pl_minmax(const double *v, int n, double *lo, double *hi)
{
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            *lo = fmin(*lo, v[i]);
            *hi = fmax(*hi, v[i]);
        }
}

/* ---- drawing ---- */

static double px_of(const pl_panel *p, const layout *L, double x)
{
    return L->x0 + (x - p->xmin) / (p->xmax - p->xmin) * (L->x1 - L->x0);
}

/* NaN outside a log axis's domain. */
static double py_of(const pl_panel *p, const layout *L, double y)
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

/* Lines of one pixel width fall on pixel centres, so they stay sharp. */
static double crisp(double v)
{
    return floor(v) + 0.5;
}

static int draw_image(cairo_t *cr, const pl_image *im, const layout *L)
{
    /* SVG and PDF viewers smooth an enlarged image whatever the filter
     * says, so a pixelated one is enlarged here, by whole pixels, to at
     * least the size it is shown at. */
    double dw = L->x1 - L->x0, dh = L->y1 - L->y0;
    int k = im->pixelated ? (int)ceil(fmax(dw / im->w, dh / im->h)) : 1;
    k = k < 1 ? 1 : k > 64 ? 64 : k;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24,
                                                    k * im->w, k * im->h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return -1;
    }
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < k * im->h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        const unsigned char *src = im->rgb + 3 * (size_t)(y / k) * im->w;
        for (int x = 0; x < k * im->w; x++) {
            const unsigned char *c = src + 3 * (x / k);
            row[x] = (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
        }
    }
    cairo_surface_mark_dirty(s);
    cairo_pattern_t *pat = cairo_pattern_create_for_surface(s);
    cairo_matrix_t m;
    cairo_matrix_init_scale(&m, k * im->w / dw, k * im->h / dh);
    cairo_matrix_translate(&m, -L->x0, -L->y0);
    cairo_pattern_set_matrix(pat, &m);
    cairo_pattern_set_filter(pat, im->pixelated ? CAIRO_FILTER_NEAREST
                                                : CAIRO_FILTER_BILINEAR);
    /* Repeat the border pixels rather than fade into the background. */
    cairo_pattern_set_extend(pat, CAIRO_EXTEND_PAD);
    cairo_set_source(cr, pat);
    cairo_rectangle(cr, L->x0, L->y0, L->x1 - L->x0, L->y1 - L->y0);
    cairo_fill(cr);
    cairo_pattern_destroy(pat);
    cairo_surface_destroy(s);
    return 0;
}

static void draw_grid(cairo_t *cr, const pl_panel *p, const layout *L)
{
    set_rgb(cr, pl_hex(GRID_COLOR));
    cairo_set_line_width(cr, 1);
    for (int i = 0; i < L->xt.n; i++) {
        double x = crisp(px_of(p, L, L->xt.v[i]));
        if (x > L->x0 + 1 && x < L->x1 - 1) {
            cairo_move_to(cr, x, L->y0);
            cairo_line_to(cr, x, L->y1);
        }
    }
    /* On a log axis every power of ten gets a line, labelled or not. */
    ticks g = L->yt;
    if (p->ylog) {
        g.n = 0;
        for (int e = (int)ceil(log10(p->ymin) - 1e-9);
             e <= (int)floor(log10(p->ymax) + 1e-9) && g.n < MAX_TICKS; e++)
            g.v[g.n++] = pow(10, e);
    }
    for (int i = 0; i < g.n; i++) {
        double y = crisp(py_of(p, L, g.v[i]));
        if (y > L->y0 + 1 && y < L->y1 - 1) {
            cairo_move_to(cr, L->x0, y);
            cairo_line_to(cr, L->x1, y);
        }
    }
    cairo_stroke(cr);
}

static void marker(cairo_t *cr, const pl_series *s, double x, double y,
                   pl_rgb fill)
{
    double r = s->radius > 0 ? s->radius : 4;
    cairo_new_path(cr);
    cairo_arc(cr, x, y, r, 0, 2 * PI);
    set_rgb(cr, fill);
    if (s->outline > 0) {
        cairo_fill_preserve(cr);
        cairo_set_line_width(cr, s->outline);
        set_rgb(cr, s->outline_color);
        cairo_stroke(cr);
    } else {
        cairo_fill(cr);
    }
}

static void line_style(cairo_t *cr, const pl_series *s)
{
    cairo_set_line_width(cr, s->width > 0 ? s->width : 2.5);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    set_rgb(cr, s->color);
}

static void draw_series(cairo_t *cr, const pl_panel *p, const layout *L,
                        const pl_series *s)
{
    if (s->style & PL_LINE) {
        cairo_save(cr);
        cairo_rectangle(cr, L->x0, L->y0, L->x1 - L->x0, L->y1 - L->y0);
        cairo_clip(cr);
        cairo_new_path(cr);
        bool pen_down = false;
        for (int i = 0; i < s->n; i++) {
            double x = px_of(p, L, s->x[i]), y = py_of(p, L, s->y[i]);
            if (!isfinite(x) || !isfinite(y)) {
                pen_down = false;
                continue;
            }
            if (pen_down)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
            pen_down = true;
        }
        line_style(cr, s);
        cairo_stroke(cr);
        cairo_restore(cr);
    }
    if (!(s->style & PL_MARKERS))
        return;
    /* A marker whose centre is in the data rectangle shows whole, also
     * on the frame. */
    for (int i = 0; i < s->n; i++) {
        double x = px_of(p, L, s->x[i]), y = py_of(p, L, s->y[i]);
        if (x >= L->x0 - 0.5 && x <= L->x1 + 0.5 && y >= L->y0 - 0.5 &&
            y <= L->y1 + 0.5)
            marker(cr, s, x, y, s->colors ? s->colors[i] : s->color);
    }
}

static void draw_legend(cairo_t *cr, const pl_panel *p, const layout *L)
{
    if (L->legend[2] == 0)
        return;
    const double *b = L->legend;
    double r = 4, w = b[2] - b[0], h = b[3] - b[1];
    cairo_new_path(cr);
    cairo_arc(cr, b[0] + 0.5 + r, b[1] + 0.5 + r, r, PI, 1.5 * PI);
    cairo_arc(cr, b[0] + 0.5 + w - r, b[1] + 0.5 + r, r, 1.5 * PI, 2 * PI);
    cairo_arc(cr, b[0] + 0.5 + w - r, b[1] + 0.5 + h - r, r, 0, 0.5 * PI);
    cairo_arc(cr, b[0] + 0.5 + r, b[1] + 0.5 + h - r, r, 0.5 * PI, PI);
    cairo_close_path(cr);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.92);
    cairo_fill_preserve(cr);
    set_rgb(cr, pl_hex(LEGEND_EDGE));
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    int k = 0;
    for (int i = 0; i < p->nseries; i++) {
        const pl_series *s = &p->series[i];
        if (!s->label)
            continue;
        double y = b[1] + LEGEND_PAD - 2 + LEGEND_ROW * (k++ + 0.5);
        double x = b[0] + LEGEND_PAD;
        if (s->style & PL_LINE) {
            cairo_new_path(cr);
            cairo_move_to(cr, x, y);
            cairo_line_to(cr, x + LEGEND_SAMPLE, y);
            line_style(cr, s);
            cairo_stroke(cr);
        }
        if (s->style & PL_MARKERS)
            marker(cr, s, x + LEGEND_SAMPLE / 2.0, y, s->color);
        draw_text(cr, x + LEGEND_SAMPLE + 8, y, s->label, PL_FONT, PL_LEFT,
                  false, false, pl_hex(PL_TEXT));
    }
}

static int draw_panel(cairo_t *cr, const pl_panel *p)
{
    layout L;
    layout_panel(cr, p, &L);
    const pl_rgb text = pl_hex(PL_TEXT), axis = pl_hex(AXIS_COLOR);
    if (p->image.rgb) {
        if (draw_image(cr, &p->image, &L) != 0)
            return -1;
    } else if (!p->bare) {
        draw_grid(cr, p, &L);
    }
    for (int i = 0; i < p->nseries; i++)
        draw_series(cr, p, &L, &p->series[i]);
    /* The frame, just outside the data rectangle. */
    cairo_new_path(cr);
    cairo_rectangle(cr, L.x0 - 0.5, L.y0 - 0.5, L.x1 - L.x0 + 1,
                    L.y1 - L.y0 + 1);
    set_rgb(cr, p->bare ? pl_hex(0x999999) : axis);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    if (p->title) {
        double y = p->bare ? p->y + PL_TILE_TITLE_H / 2.0 - 1 : p->y + 15;
        draw_text(cr, (L.x0 + L.x1) / 2, y, p->title,
                  p->bare ? PL_FONT : TITLE_FONT, PL_CENTER, !p->bare, false,
                  text);
    }
    if (p->bare)
        return 0;
    double cap = cap_height(cr, PL_FONT, false);
    for (int i = 0; i < L.xt.n; i++) {
        double x = crisp(px_of(p, &L, L.xt.v[i]));
        cairo_move_to(cr, x, L.y1 + 0.5);
        cairo_line_to(cr, x, L.y1 + 0.5 + TICK_LEN);
        set_rgb(cr, axis);
        cairo_stroke(cr);
        draw_rich(cr, x, L.y1 + TICK_LEN + 8 + cap / 2, &L.xt.label[i],
                  PL_FONT, PL_CENTER, text);
    }
    for (int i = 0; i < L.yt.n; i++) {
        double y = crisp(py_of(p, &L, L.yt.v[i]));
        cairo_move_to(cr, L.x0 - 0.5, y);
        cairo_line_to(cr, L.x0 - 0.5 - TICK_LEN, y);
        set_rgb(cr, axis);
        cairo_stroke(cr);
        draw_rich(cr, L.x0 - TICK_LEN - 6, y, &L.yt.label[i], PL_FONT,
                  PL_RIGHT, text);
    }
    if (p->xlabel)
        draw_text(cr, (L.x0 + L.x1) / 2,
                  L.y1 + TICK_LEN + 8 + PL_FONT + 14 + cap / 2, p->xlabel,
                  PL_FONT, PL_CENTER, false, false, text);
    if (p->ylabel)
        draw_text(cr, p->x + 8 + PL_FONT / 2, (L.y0 + L.y1) / 2, p->ylabel,
                  PL_FONT, PL_CENTER, false, true, text);
    draw_legend(cr, p, &L);
    return 0;
}

/* The figure title is centred on the figure, or over the data rectangle
 * of a figure of one chart, where it lines up with the panel's title. */
static double title_x(cairo_t *cr, const pl_figure *f)
{
    if (f->npanels != 1 || f->panels[0].bare)
        return f->w / 2.0;
    layout L;
    layout_panel(cr, &f->panels[0], &L);
    return (L.x0 + L.x1) / 2;
}

int pl_draw(cairo_t *cr, const pl_figure *f)
{
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    int rc = 0;
    for (int i = 0; i < f->npanels && rc == 0; i++)
        rc = draw_panel(cr, &f->panels[i]);
    for (int i = 0; i < f->nlabels; i++) {
        const pl_label *l = &f->labels[i];
        draw_text(cr, l->x, l->y, l->text, l->size > 0 ? l->size : PL_FONT,
                  l->align, l->bold, l->vertical,
                  pl_hex(l->color ? l->color : PL_TEXT));
    }
    if (f->title)
        draw_text(cr, title_x(cr, f), 22, f->title, FIG_TITLE_FONT, PL_CENTER,
                  true, false, pl_hex(PL_TEXT));
    if (rc == 0 && cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        rc = -1;
    return rc;
}

/* ---- files ---- */

static bool ends_with(const char *s, const char *end)
{
    size_t n = strlen(s), m = strlen(end);
    return n >= m && strcmp(s + n - m, end) == 0;
}

int pl_write(const pl_figure *f, const char *path)
{
    cairo_surface_t *s;
    /* PDF is measured in points: 72 of them per inch against the
     * screen's 96 pixels. */
    double scale = 1;
    if (ends_with(path, ".png")) {
        s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, f->w, f->h);
    } else if (ends_with(path, ".svg")) {
        s = cairo_svg_surface_create(path, f->w, f->h);
        cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PX);
    } else if (ends_with(path, ".pdf")) {
        scale = 0.75;
        s = cairo_pdf_surface_create(path, f->w * scale, f->h * scale);
    } else {
        fprintf(stderr, "%s: not a .png, .svg or .pdf name\n", path);
        return -1;
    }
    cairo_t *cr = cairo_create(s);
    cairo_scale(cr, scale, scale);
    int rc = pl_draw(cr, f);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS && ends_with(path, ".png"))
        st = cairo_surface_write_to_png(s, path);
    /* A vector surface writes its file as it finishes. */
    cairo_surface_finish(s);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (rc != 0 || st != CAIRO_STATUS_SUCCESS) {
        fprintf(stderr, "%s: drawing the figure failed: %s\n", path,
                cairo_status_to_string(st != CAIRO_STATUS_SUCCESS
                                           ? st
                                           : CAIRO_STATUS_NO_MEMORY));
        return -1;
    }
    return 0;
}

/* Whether the file starts with `head` and is larger than `min` bytes. */
static bool file_starts_with(const char *path, const char *head, long min)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false;
    char buf[16] = {0};
    size_t n = strlen(head), got = fread(buf, 1, n, fp);
    bool ok = got == n && memcmp(buf, head, n) == 0 &&
              fseek(fp, 0, SEEK_END) == 0 && ftell(fp) > min;
    fclose(fp);
    return ok;
}

int pl_save(const pl_figure *f, const char *prefix)
{
    static const char *const ext[3] = {".png", ".svg", ".pdf"};
    size_t n = strlen(prefix) + 5;
    char *path = malloc(3 * n);
    if (!path) {
        fprintf(stderr, "%s: out of memory\n", prefix);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(path + i * n, n, "%s%s", prefix, ext[i]);
        if (pl_write(f, path + i * n) != 0) {
            free(path);
            return -1;
        }
    }
    cairo_surface_t *png = cairo_image_surface_create_from_png(path);
    bool ok = cairo_surface_status(png) == CAIRO_STATUS_SUCCESS &&
              cairo_image_surface_get_width(png) == f->w &&
              cairo_image_surface_get_height(png) == f->h;
    cairo_surface_destroy(png);
    if (!ok)
        fprintf(stderr, "%s: does not read back as a %dx%d PNG\n", path,
                f->w, f->h);
    if (ok && !(ok = file_starts_with(path + n, "<?xml", 200)))
        fprintf(stderr, "%s: not an SVG document\n", path + n);
    if (ok && !(ok = file_starts_with(path + 2 * n, "%PDF-", 200)))
        fprintf(stderr, "%s: not a PDF document\n", path + 2 * n);
    if (ok)
        printf("wrote %s, %s and %s (%dx%d)\n", path, path + n, path + 2 * n,
               f->w, f->h);
    free(path);
    return ok ? 0 : -1;
}
