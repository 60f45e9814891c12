/* nb_train's CSV log, read with nb_csv_read and drawn as training curves.
 *
 * The numbers are read by nb_csv_read with missing_as_nan (a run without a
 * validation set leaves val_loss and val_acc empty). nb_csv_read does not
 * hand back the header, so the header line is read here only to map the
 * column names to PL_EPOCH ... PL_SECONDS.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"
#include "plot.h"

static const char *const column_name[PL_NCOLS] = {
    "epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"};

void pl_log_free(pl_log *log)
{
    for (int k = 0; k < PL_NCOLS; k++) {
        free(log->col[k]);
        log->col[k] = NULL;
    }
    log->n = 0;
}

/* which[c] = the PL_* column of field c of the header, or -1. Returns the
 * number of fields, or -1 with a message. */
static int read_header(const char *path, int *which, int max)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    if (!f) {
        perror(path);
        return -1;
    }
    /* nb_csv_read skips blank lines before the header as well. */
    bool got = false;
    while (!got && fgets(line, sizeof line, f))
        got = strspn(line, " \t\r\n") < strlen(line);
    fclose(f);
    if (!got) {
        fprintf(stderr, "%s: empty: no header line\n", path);
        return -1;
    }
    int n = 0;
    for (char *s = line, *end; s; s = end ? end + 1 : NULL, n++) {
        end = strchr(s, ',');
        if (n == max) {
            fprintf(stderr, "%s: more than %d columns\n", path, max);
            return -1;
        }
        size_t len = end ? (size_t)(end - s) : strcspn(s, "\r\n");
        while (len > 0 && strchr(" \t\r\n", s[len - 1]))
            len--;
        while (len > 0 && strchr(" \t", *s)) {
            s++;
            len--;
        }
        which[n] = -1;
        for (int k = 0; k < PL_NCOLS; k++)
            if (strlen(column_name[k]) == len &&
                memcmp(s, column_name[k], len) == 0)
                which[n] = k;
    }
    return n;
}

int pl_log_read(const char *path, pl_log *log)
{
    enum { MAX_COLS = 64 };
    int which[MAX_COLS];
    memset(log, 0, sizeof *log);
    int ncols = read_header(path, which, MAX_COLS);
    if (ncols < 0)
        return -1;
    bool seen[PL_NCOLS] = {false};
    for (int c = 0; c < ncols; c++)
        if (which[c] >= 0)
            seen[which[c]] = true;
    if (!seen[PL_EPOCH] || !seen[PL_TRAIN_LOSS]) {
        fprintf(stderr, "%s: the header names no epoch or no train_loss "
                        "column\n",
                path);
        return -1;
    }
    nb_status st = {0};
    nb_csv_options o = {.delimiter = ',',
                        .header = true,
                        .label_column = -1,
                        .dtype = NB_F64,
                        .missing_as_nan = true};
    nb_tensor *t = nb_csv_read(path, &o, NULL, &st);
    if (!t) {
        fprintf(stderr, "%s\n", st.message);
        return -1;
    }
    int rows = (int)nb_tensor_dim(t, 0);
    if (nb_tensor_dim(t, 1) != ncols) {
        fprintf(stderr, "%s: the header has %d names for %lld columns\n", path,
                ncols, (long long)nb_tensor_dim(t, 1));
        nb_tensor_free(t);
        return -1;
    }
    const double *v = nb_tensor_cdata(t);
    for (int k = 0; k < PL_NCOLS; k++) {
        log->col[k] = malloc((size_t)rows * sizeof(double));
        if (!log->col[k]) {
            fprintf(stderr, "%s: out of memory\n", path);
            nb_tensor_free(t);
            pl_log_free(log);
            return -1;
        }
        for (int i = 0; i < rows; i++)
            log->col[k][i] = NAN;
    }
    /* A name given twice: the first column of that name counts. */
    for (int c = ncols - 1; c >= 0; c--)
        for (int i = 0; i < rows && which[c] >= 0; i++)
            log->col[which[c]][i] = v[(size_t)i * ncols + c];
    log->n = rows;
    nb_tensor_free(t);
    return 0;
}

static bool any_finite(const double *v, int n)
{
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]))
            return true;
    return false;
}

int pl_plot_log(const pl_log *log, const char *prefix, const char *title)
{
    if (log->n < 1 || !any_finite(log->col[PL_TRAIN_LOSS], log->n)) {
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
                           .width = 2.25,
                           .radius = 3.25};
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
    double ymin, ymax;
    double ystep = pl_auto_range(lo, hi, lo >= 0 && lo < 0.6 * hi, &ymin, &ymax);
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
                           .ymin = ymin,
                           .ymax = ymax,
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
        panels[1] = panels[0];
        panels[1].x = pw;
        panels[1].title = "accuracy";
        panels[1].ylabel = "accuracy (%)";
        panels[1].ymin = alo < 0 ? 0 : alo;
        panels[1].ymax = ahi > 100 ? 100 : ahi;
        panels[1].ystep = astep;
        panels[1].series = s + 2;
        panels[1].legend = PL_LEGEND_BOTTOM_RIGHT;
    }
    /* A margin inside the frame keeps curves at 0 or 100% off it; the
     * ticks stay where they were. */
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
