/* A 2-D playground in the spirit of TensorFlow Playground: a small MLP
 * learns to classify points of the plane, and the program draws what it
 * learned.
 *
 *   build/examples/playground [--data xor|circles|spirals|blobs]
 *       [--hidden 8,8] [--act tanh|relu|sigmoid] [--noise 0.05] ...
 *
 * Data. Points (x1, x2) around the square [-1, 1]^2, drawn with the graph's
 * seeded RNG, class k of K:
 *   xor      x1, x2 uniform on [-1, -0.1] u [0.1, 1]; class 1 iff x1 x2 > 0
 *   circles  class 1: radius U(0, 0.5); class 0: radius U(0.7, 1); angle
 *            U(0, 2 pi)
 *   spirals  K arms: t ~ U(0, 1), radius 0.05 + 0.95 t, angle
 *            2 pi k / K + 3.5 pi t (1.75 turns)
 *   blobs    K Gaussian clusters, centres at radius 0.55, std 0.18
 * then Gaussian noise of std --noise is added to both coordinates (after
 * the label is fixed). The points are shuffled and the last --val of them
 * kept for validation.
 *
 * Model. nb_mlp_build makes 2-h1-h2-...-out with the chosen hidden unit;
 * two classes get one sigmoid output p = P(class 1) with binary
 * cross-entropy, more classes a softmax with cross-entropy (nb_mlp_loss).
 * nb_train runs Adam on mini-batches and writes the per-epoch CSV log.
 *
 * Pictures (PNG, SVG and PDF each; prefix from --out, default
 * playground_<data> in the current directory):
 *   <prefix>_regions   the plane coloured by the prediction, evaluated at
 *                      every pixel: for two classes the colour is
 *                      white -> orange (class 0) or blue (class 1) with
 *                      strength |2p - 1|; for K classes the winning
 *                      class's colour with strength (p_max - 1/K) /
 *                      (1 - 1/K). Training points are drawn on top with a
 *                      white ring, validation points with a dark one.
 *   <prefix>_units     one tile per hidden unit of every hidden layer (and
 *                      the outputs): the unit's activation over the same
 *                      plane. A value v is coloured orange (v = -1),
 *                      white (0), blue (+1): tanh and sigmoid units as
 *                      they are, unbounded ones (relu, ...) divided by
 *                      their own largest |v| over the plane, the
 *                      two-class output as 2p - 1; softmax outputs p_k go
 *                      from white (0) to the class's colour (1).
 *   <prefix>_curves    loss and accuracy per epoch (the shared plot of
 *                      examples/plot_log.c), from <prefix>_log.csv.
 * Exits 1 if a file is missing or malformed (each PNG is read back with
 * cairo at its size; the SVG and PDF must carry their headers), or if
 * training failed to lower the loss; with
 * --test-size also if validation accuracy ends below 85%.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"
#include "nabla/nabla.h"
#include "plot/plot.h"

enum {
    MAX_HIDDEN = 6,
    MAX_CLASSES = 6,
    TILE = 88,
    TILE_GAP = 10,
    TILES_PER_ROW = 8
};

static const double VIEW = 1.25; /* the plane shown: [-VIEW, VIEW]^2 */

typedef struct options {
    const char *data, *hidden, *act, *out;
    int64_t points, classes, epochs, batch, seed;
    double noise, lr, val;
    bool test_size;
} options;

/* ---- data ---- */

static void make_point(nb_graph *g, const options *o, int64_t i, double *x,
                       double *y, int *label)
{
    const double two_pi = 6.283185307179586;
    int K = (int)o->classes, k = (int)(i % K);
    if (!strcmp(o->data, "xor")) {
        /* Kept off the axes, where the class flips. */
        double u = 0.1 + 0.9 * nb_rng_uniform(g),
               v = 0.1 + 0.9 * nb_rng_uniform(g);
        *x = nb_rng_uniform(g) < 0.5 ? -u : u;
        *y = nb_rng_uniform(g) < 0.5 ? -v : v;
        *label = *x * *y > 0;
    } else if (!strcmp(o->data, "circles")) {
        double r = k ? 0.5 * nb_rng_uniform(g) : 0.7 + 0.3 * nb_rng_uniform(g);
        double a = two_pi * nb_rng_uniform(g);
        *x = r * cos(a);
        *y = r * sin(a);
        *label = k;
    } else if (!strcmp(o->data, "spirals")) {
        double t = nb_rng_uniform(g), r = 0.05 + 0.95 * t;
        double a = two_pi * k / K + 1.75 * two_pi * t;
        *x = r * cos(a);
        *y = r * sin(a);
        *label = k;
    } else { /* blobs */
        double a = two_pi * k / K + two_pi / 4;
        *x = 0.55 * cos(a) + 0.18 * nb_rng_normal(g);
        *y = 0.55 * sin(a) + 0.18 * nb_rng_normal(g);
        *label = k;
    }
    *x += o->noise * nb_rng_normal(g);
    *y += o->noise * nb_rng_normal(g);
}

/* The whole set, shuffled: x [n, 2], labels [n] as doubles. */
static void make_data(nb_graph *g, const options *o, double *x, double *lab)
{
    int64_t n = o->points;
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    double *tx = malloc(3 * (size_t)n * sizeof *tx);
    if (!idx || !tx) {
        fprintf(stderr, "playground: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) {
        int label;
        make_point(g, o, i, &tx[2 * i], &tx[2 * i + 1], &label);
        tx[2 * n + i] = label;
    }
    nb_iota(idx, n);
    nb_shuffle(g, idx, n);
    for (int64_t i = 0; i < n; i++) {
        x[2 * i] = tx[2 * idx[i]];
        x[2 * i + 1] = tx[2 * idx[i] + 1];
        lab[i] = tx[2 * n + idx[i]];
    }
    free(idx);
    free(tx);
}

/* ---- evaluating the net over the plane ---- */

/* Feeds the res x res pixel centres of the view (row 0 at the top) and
 * runs the net forward; the caller reads the nodes' values. */
static int eval_grid(nb_graph *g, const nb_mlp *net, int res)
{
    float *grid = malloc(2 * (size_t)res * (size_t)res * sizeof *grid);
    if (!grid)
        return -1;
    for (int r = 0; r < res; r++)
        for (int c = 0; c < res; c++) {
            size_t i = (size_t)r * res + c;
            grid[2 * i] = (float)(-VIEW + (c + 0.5) * 2 * VIEW / res);
            grid[2 * i + 1] = (float)(VIEW - (r + 0.5) * 2 * VIEW / res);
        }
    int rc =
        nb_feed(g, net->input, 2, (int64_t[]){(int64_t)res * res, 2}, grid);
    if (rc == NB_OK)
        rc = nb_forward(g, net->output);
    free(grid);
    if (rc != NB_OK)
        fprintf(stderr, "playground: %s\n", nb_graph_error(g));
    return rc == NB_OK ? 0 : -1;
}

/* The region colour of one prediction (probabilities p[0..K) of the K
 * classes; for two classes p[0] is P(class 1) from the sigmoid). */
static pl_rgb region_color(const float *p, int K)
{
    const pl_rgb white = pl_hex(PL_WHITE);
    if (K == 2) {
        double v = 2 * p[0] - 1;
        return pl_mix(white, pl_palette(v > 0), 0.5 * fabs(v));
    }
    int best = 0;
    for (int k = 1; k < K; k++)
        if (p[k] > p[best])
            best = k;
    double conf = (p[best] - 1.0 / K) / (1 - 1.0 / K);
    return pl_mix(white, pl_palette(best), 0.5 * conf);
}

/* ---- pictures ---- */

static int draw_regions(nb_graph *g, const nb_mlp *net, const options *o,
                        const char *prefix, const nb_dataset *train,
                        const nb_dataset *val, double train_acc, double val_acc,
                        const char *arch)
{
    int K = (int)o->classes;
    /* Size the panel so that its data rectangle is square and evaluate
     * the net at each of its pixels. */
    char title[160];
    snprintf(title, sizeof title, "accuracy: train %.1f%%, validation %.1f%%",
             100 * train_acc, 100 * val_acc);
    char class_name[MAX_CLASSES][24];
    pl_series s[MAX_CLASSES + 4];
    int ns = 0;
    for (int k = 0; k < K; k++) {
        snprintf(class_name[k], sizeof class_name[k], "class %d", k);
        s[ns++] = (pl_series){.label = class_name[k],
                              .color = pl_palette(k),
                              .style = PL_MARKERS,
                              .radius = 5};
    }
    /* Legend-only entries for the rings, then the points themselves. */
    s[ns++] = (pl_series){.label = "train",
                          .color = pl_hex(0x999999),
                          .style = PL_MARKERS,
                          .radius = 5,
                          .outline = 1.5,
                          .outline_color = pl_hex(PL_WHITE)};
    s[ns++] = (pl_series){.label = "validation",
                          .color = pl_hex(0x999999),
                          .style = PL_MARKERS,
                          .radius = 5,
                          .outline = 1.5,
                          .outline_color = pl_hex(0x222222)};
    const nb_dataset *sets[2] = {train, val};
    double *xy[2] = {NULL, NULL};
    pl_rgb *col[2] = {NULL, NULL};
    int rc = -1;
    for (int d = 0; d < 2; d++) {
        int64_t n = nb_dataset_size(sets[d]);
        xy[d] = malloc(2 * (size_t)(n ? n : 1) * sizeof *xy[d]);
        col[d] = malloc((size_t)(n ? n : 1) * sizeof *col[d]);
        if (!xy[d] || !col[d])
            goto done;
        for (int64_t i = 0; i < n; i++) {
            xy[d][i] = nb_tensor_get(sets[d]->x, 2 * i);
            xy[d][n + i] = nb_tensor_get(sets[d]->x, 2 * i + 1);
            col[d][i] = pl_palette((int)nb_tensor_get(sets[d]->y, i));
        }
        s[ns++] = (pl_series){.color = pl_hex(0x999999),
                              .n = (int)n,
                              .x = xy[d],
                              .y = xy[d] + n,
                              .style = PL_MARKERS,
                              .radius = 5,
                              .colors = col[d],
                              .outline = 1.5,
                              .outline_color = pl_hex(d ? 0x222222 : PL_WHITE)};
    }
    pl_panel panel = {.x = 0,
                      .y = 40,
                      .w = 600,
                      .h = 600,
                      .title = title,
                      .xlabel = "x1",
                      .ylabel = "x2",
                      .xmin = -VIEW,
                      .xmax = VIEW,
                      .ymin = -VIEW,
                      .ymax = VIEW,
                      .xstep = 0.5,
                      .ystep = 0.5,
                      .series = s,
                      .nseries = ns,
                      .legend = PL_LEGEND_OUTSIDE};
    const int size = 480;
    pl_fit_data_rect(&panel, size, size);
    unsigned char *img = malloc(3 * (size_t)size * size);
    if (!img || eval_grid(g, net, size) != 0)
        goto done_img;
    const float *out = nb_tensor_cdata(nb_node_value(net->output));
    int cols = K == 2 ? 1 : K;
    for (size_t i = 0; i < (size_t)size * size; i++) {
        pl_rgb c = region_color(out + i * cols, K);
        img[3 * i] = c.r;
        img[3 * i + 1] = c.g;
        img[3 * i + 2] = c.b;
    }
    panel.image = (pl_image){.w = size, .h = size, .rgb = img};
    char fig_title[256], path[1024];
    snprintf(fig_title, sizeof fig_title, "%s (noise %g): %s", o->data,
             o->noise, arch);
    pl_figure fig = {.w = panel.w,
                     .h = panel.y + panel.h,
                     .title = fig_title,
                     .panels = &panel,
                     .npanels = 1};
    snprintf(path, sizeof path, "%s_regions", prefix);
    rc = pl_save(&fig, path);
done_img:
    free(img);
done:
    for (int d = 0; d < 2; d++) {
        free(xy[d]);
        free(col[d]);
    }
    return rc;
}

/* Tiles of every hidden unit and output over the plane. */
static int draw_units(nb_graph *g, const nb_mlp *net, const options *o,
                      const char *prefix, nb_activation act, const char *arch)
{
    const int res = 64;
    const int K = (int)o->classes;
    const int layers = net->n_layers; /* hidden layers + the output row */
    if (eval_grid(g, net, res) != 0)
        return -1;
    int tiles = 0;
    for (int l = 0; l < layers; l++)
        tiles += (int)nb_tensor_dim(
            nb_node_value(l < layers - 1 ? net->hidden[l] : net->output), 1);
    pl_panel *panel = calloc((size_t)tiles + 1, sizeof *panel);
    unsigned char *img =
        malloc(3 * (size_t)res * res * (size_t)tiles + 3 * 256);
    char(*names)[16] = calloc((size_t)tiles, sizeof *names);
    char(*row_text)[2][48] = calloc((size_t)layers, sizeof *row_text);
    pl_label *labels = calloc(2 * (size_t)layers + 4, sizeof *labels);
    int rc = -1;
    if (!panel || !img || !names || !row_text || !labels) {
        fprintf(stderr, "playground: out of memory\n");
        goto done;
    }
    const int top = 50, row_h = TILE + PL_TILE_TITLE_H + 8;
    int t = 0, nl = 0, y = top;
    for (int l = 0; l < layers; l++) {
        bool output = l == layers - 1;
        nb_tensor *v = nb_node_value(output ? net->output : net->hidden[l]);
        int w = (int)nb_tensor_dim(v, 1);
        const float *a = nb_tensor_cdata(v);
        /* The colour scale of the row: see the top of the file. */
        /* Units that are not bounded (relu and kin) are each scaled by
         * their own largest |value| over the plane. */
        bool scaled = !output && act != NB_ACT_TANH && act != NB_ACT_SIGMOID;
        if (output)
            snprintf(row_text[l][0], sizeof row_text[l][0], "output");
        else
            snprintf(row_text[l][0], sizeof row_text[l][0], "layer %d", l + 1);
        if (output && K == 2)
            snprintf(row_text[l][1], sizeof row_text[l][1], "2p - 1");
        else if (output)
            snprintf(row_text[l][1], sizeof row_text[l][1], "P(class k)");
        else if (act == NB_ACT_TANH || act == NB_ACT_SIGMOID)
            snprintf(row_text[l][1], sizeof row_text[l][1], "%s",
                     nb_activation_name(act));
        else
            snprintf(row_text[l][1], sizeof row_text[l][1], "%s / max",
                     nb_activation_name(act));
        int nrows = (w + TILES_PER_ROW - 1) / TILES_PER_ROW;
        double mid = y + (nrows * row_h) / 2.0;
        labels[nl++] = (pl_label){
            .x = 20, .y = mid - 12, .text = row_text[l][0], .bold = true};
        labels[nl++] = (pl_label){
            .x = 20, .y = mid + 14, .text = row_text[l][1], .color = PL_MUTED};
        for (int u = 0; u < w; u++, t++) {
            unsigned char *px = img + 3 * (size_t)res * res * t;
            double hi = 0;
            for (size_t i = 0; scaled && i < (size_t)res * res; i++)
                hi = fmax(hi, fabs(a[i * w + u]));
            hi = hi > 0 ? hi : 1;
            for (size_t i = 0; i < (size_t)res * res; i++) {
                double z = a[i * w + u];
                pl_rgb c;
                if (output && K == 2)
                    c = pl_diverging(2 * z - 1);
                else if (output)
                    c = pl_mix(pl_hex(PL_WHITE), pl_palette(u), z);
                else
                    c = pl_diverging(z / hi);
                px[3 * i] = c.r;
                px[3 * i + 1] = c.g;
                px[3 * i + 2] = c.b;
            }
            if (output)
                snprintf(names[t], sizeof names[t], K == 2 ? "p" : "p%d", u);
            else
                snprintf(names[t], sizeof names[t], "%d", u + 1);
            int r = u / TILES_PER_ROW, c = u % TILES_PER_ROW;
            panel[t] = (pl_panel){.x = c * (TILE + TILE_GAP),
                                  .y = y + r * row_h,
                                  .w = TILE,
                                  .h = TILE + PL_TILE_TITLE_H,
                                  .title = names[t],
                                  .bare = true,
                                  .image = {.w = res, .h = res, .rgb = px}};
        }
        y += nrows * row_h;
    }
    /* The tiles start right of the widest row label. */
    double widest = pl_text_width("colour scale", PL_FONT);
    for (int i = 0; i < nl; i++)
        widest = fmax(widest, pl_text_width(labels[i].text, PL_FONT));
    int left = (int)ceil(widest) + 20 + 30;
    for (int i = 0; i < t; i++)
        panel[i].x += left;
    /* A colour bar for the diverging scale. */
    unsigned char *bar = img + 3 * (size_t)res * res * tiles;
    for (int i = 0; i < 256; i++) {
        pl_rgb c = pl_diverging(i / 127.5 - 1);
        bar[3 * i] = c.r;
        bar[3 * i + 1] = c.g;
        bar[3 * i + 2] = c.b;
    }
    const int bar_w = 300, bar_x = left, bar_y = y + 10;
    panel[t] = (pl_panel){.x = bar_x,
                          .y = bar_y,
                          .w = bar_w,
                          .h = 16,
                          .bare = true,
                          .image = {.w = 256, .h = 1, .rgb = bar}};
    labels[nl++] = (pl_label){.x = 20, .y = bar_y + 8, .text = "colour scale"};
    labels[nl++] = (pl_label){
        .x = bar_x, .y = bar_y + 36, .text = "-1", .align = PL_CENTER};
    labels[nl++] = (pl_label){.x = bar_x + bar_w / 2.0,
                              .y = bar_y + 36,
                              .text = "0",
                              .align = PL_CENTER};
    labels[nl++] = (pl_label){
        .x = bar_x + bar_w, .y = bar_y + 36, .text = "+1", .align = PL_CENTER};
    char title[160], path[1024];
    snprintf(title, sizeof title, "what each unit computes: %s on %s", arch,
             o->data);
    int fig_w = left + TILES_PER_ROW * (TILE + TILE_GAP) + 10;
    pl_figure fig = {.w = fig_w,
                     .h = bar_y + 60,
                     .title = title,
                     .panels = panel,
                     .npanels = t + 1,
                     .labels = labels,
                     .nlabels = nl};
    snprintf(path, sizeof path, "%s_units", prefix);
    rc = pl_save(&fig, path);
done:
    free(panel);
    free(img);
    free(names);
    free(row_text);
    free(labels);
    return rc;
}

/* ---- training ---- */

static bool report_epoch(int64_t epoch, const nb_metrics *train,
                         const nb_metrics *val, void *user)
{
    int64_t every = *(const int64_t *)user;
    if (epoch == 1 || epoch % every == 0)
        printf("epoch %4lld  loss %.4f  acc %5.1f%%  val_loss %.4f  val_acc "
               "%5.1f%%\n",
               (long long)epoch, train->loss, 100 * train->accuracy, val->loss,
               100 * val->accuracy);
    return true;
}

static int parse_hidden(const char *s, int64_t *sizes)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 256 || n == MAX_HIDDEN)
            return -1;
        sizes[n++] = v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    options o = {.data = "circles",
                 .hidden = "8,8",
                 .act = "tanh",
                 .points = 0,
                 .classes = 0,
                 .epochs = 0,
                 .batch = 16,
                 .seed = 1,
                 .noise = -1,
                 .lr = 0.02,
                 .val = 0.3};
    ex_flag flags[] = {
        {"--data", EX_STRING, &o.data, "xor, circles, spirals or blobs"},
        {"--points", EX_INT, &o.points, "number of points (0: 400)"},
        {"--noise", EX_DOUBLE, &o.noise,
         "std of the Gaussian noise (-1: the set's default)"},
        {"--classes", EX_INT, &o.classes,
         "classes of spirals and blobs (0: 2 and 3)"},
        {"--hidden", EX_STRING, &o.hidden, "hidden layer widths"},
        {"--act", EX_STRING, &o.act, "hidden unit: tanh, relu, sigmoid, ..."},
        {"--epochs", EX_INT, &o.epochs, "epochs (0: the set's default)"},
        {"--batch", EX_INT, &o.batch, "mini-batch size"},
        {"--lr", EX_DOUBLE, &o.lr, "Adam's learning rate"},
        {"--val", EX_DOUBLE, &o.val, "fraction kept for validation"},
        {"--seed", EX_INT, &o.seed, "seed of the data and the weights"},
        {"--out", EX_STRING, &o.out,
         "prefix of the output files (default playground_<data>)"},
        {"--test-size", EX_BOOL, &o.test_size,
         "few points and epochs, small pictures (for the test suite)"},
    };
    int status = ex_parse_flags(argc, argv,
                                "Trains a small MLP on a 2-D data set and "
                                "draws its decision regions, hidden units "
                                "and training curves.",
                                flags, (int)(sizeof flags / sizeof flags[0]));
    if (status >= 0)
        return status;

    bool xor_set = !strcmp(o.data, "xor"), circles = !strcmp(o.data, "circles");
    bool spirals = !strcmp(o.data, "spirals"), blobs = !strcmp(o.data, "blobs");
    int64_t hidden[MAX_HIDDEN + 2];
    int n_hidden = parse_hidden(o.hidden, hidden + 1);
    int act = nb_activation_from_name(o.act);
    if (!xor_set && !circles && !spirals && !blobs) {
        fprintf(stderr, "playground: --data must be xor, circles, spirals "
                        "or blobs\n");
        return 2;
    }
    if (n_hidden < 1) {
        fprintf(stderr,
                "playground: --hidden wants 1 to %d widths in 1..256 "
                "separated by commas, e.g. 8,8\n",
                MAX_HIDDEN);
        return 2;
    }
    if (act < 0 || act == NB_ACT_LINEAR || act == NB_ACT_SOFTMAX) {
        fprintf(stderr, "playground: --act %s is not a hidden unit\n", o.act);
        return 2;
    }
    if (xor_set || circles)
        o.classes = 2;
    else if (o.classes == 0)
        o.classes = spirals ? 2 : 3;
    if (o.classes < 2 || o.classes > MAX_CLASSES) {
        fprintf(stderr, "playground: --classes must be 2..%d\n", MAX_CLASSES);
        return 2;
    }
    if (o.noise < 0)
        o.noise = spirals ? 0.03 : blobs ? 0.0 : 0.05;
    if (o.points == 0)
        o.points = o.test_size ? 200 : 400;
    if (o.epochs == 0)
        o.epochs = o.test_size ? 40 : spirals ? 300 : 100;
    if (o.points < 10 || !(o.val > 0 && o.val < 1) || o.batch < 1 ||
        !(o.lr > 0)) {
        fprintf(stderr, "playground: need --points >= 10, 0 < --val < 1, "
                        "--batch >= 1 and --lr > 0\n");
        return 2;
    }
    char prefix[900], csv[1024], curves[1024], arch[128];
    snprintf(prefix, sizeof prefix, "%s", o.out ? o.out : "playground_");
    if (!o.out)
        snprintf(prefix, sizeof prefix, "playground_%s", o.data);
    snprintf(csv, sizeof csv, "%s_log.csv", prefix);
    snprintf(curves, sizeof curves, "%s_curves", prefix);

    hidden[0] = 2;
    int out_width = o.classes == 2 ? 1 : (int)o.classes;
    hidden[n_hidden + 1] = out_width;
    int len = snprintf(arch, sizeof arch, "%s 2", o.act);
    for (int l = 1; l <= n_hidden + 1 && len < (int)sizeof arch; l++)
        len += snprintf(arch + len, sizeof arch - (size_t)len, "-%lld",
                        (long long)hidden[l]);

    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, (uint64_t)o.seed);
    int64_t n = o.points;
    double *xd = malloc(2 * (size_t)n * sizeof *xd);
    double *labd = malloc((size_t)n * sizeof *labd);
    nb_dataset all = {0}, train = {0}, val = {0};
    int rc = 1;
    nb_status st;
    if (!g || !xd || !labd) {
        fprintf(stderr, "playground: out of memory\n");
        goto done;
    }
    make_data(g, &o, xd, labd);
    all.x = nb_tensor_new(NB_F32, 2, (int64_t[]){n, 2});
    all.y = o.classes == 2 ? nb_tensor_new(NB_F32, 2, (int64_t[]){n, 1})
                           : nb_tensor_new(NB_F32, 1, (int64_t[]){n});
    if (!all.x || !all.y) {
        fprintf(stderr, "playground: out of memory\n");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        nb_tensor_set(all.x, 2 * i, xd[2 * i]);
        nb_tensor_set(all.x, 2 * i + 1, xd[2 * i + 1]);
        nb_tensor_set(all.y, i, labd[i]);
    }
    if (nb_dataset_split(&all, o.val, &train, &val, &st) != NB_OK) {
        fprintf(stderr, "playground: %s\n", st.message);
        goto done;
    }

    nb_node *x = nb_input(g, "x", NB_F32, 2, (int64_t[]){NB_DYNAMIC, 2});
    nb_node *y = o.classes == 2
                     ? nb_input(g, "y", NB_F32, 2, (int64_t[]){NB_DYNAMIC, 1})
                     : nb_input(g, "y", NB_F32, 1, (int64_t[]){NB_DYNAMIC});
    nb_mlp net;
    nb_mlp_spec spec = {.n_layers = n_hidden + 1,
                        .sizes = hidden,
                        .hidden = (nb_activation)act,
                        .output =
                            o.classes == 2 ? NB_ACT_SIGMOID : NB_ACT_SOFTMAX,
                        .init = NB_INIT_DEFAULT};
    nb_node *loss = NULL;
    if (nb_mlp_build(g, x, &spec, &net) == NB_OK)
        loss = nb_mlp_loss(g, &net, y);
    nb_optimizer *opt =
        loss ? nb_optimizer_new(
                   g, &(nb_optim_config){.kind = NB_OPTIM_ADAM, .lr = o.lr}, 0,
                   NULL)
             : NULL;
    if (!opt) {
        fprintf(stderr, "playground: %s\n", nb_graph_error(g));
        goto done;
    }
    printf("%s: %lld points (%lld for validation), %lld classes, noise %g; "
           "net %s, Adam lr %g, batch %lld, %lld epochs\n",
           o.data, (long long)n, (long long)nb_dataset_size(&val),
           (long long)o.classes, o.noise, arch, o.lr, (long long)o.batch,
           (long long)o.epochs);
    int64_t every = o.epochs >= 10 ? o.epochs / 10 : 1;
    nb_model model = {.x = x, .y = y, .loss = loss, .output = net.output};
    nb_train_config tc = {.epochs = o.epochs,
                          .batch_size = o.batch,
                          .progress = NB_PROGRESS_OFF,
                          .csv_path = csv,
                          .on_epoch = report_epoch,
                          .user = &every};
    nb_train_result res;
    int trc = nb_train(g, &model, opt, &train, &val, &tc, &res);
    nb_optimizer_free(opt);
    if (trc != NB_OK) {
        fprintf(stderr, "playground: training failed: %s\n", nb_graph_error(g));
        goto done;
    }
    /* Accuracies of the final weights (the log's are running averages). */
    nb_metrics mt = {0}, mv = {0};
    if (nb_evaluate(g, &model, &train, 0, &mt) != NB_OK ||
        nb_evaluate(g, &model, &val, 0, &mv) != NB_OK) {
        fprintf(stderr, "playground: %s\n", nb_graph_error(g));
        goto done;
    }
    printf("final: train loss %.4f acc %.1f%%, validation loss %.4f acc "
           "%.1f%%\n",
           mt.loss, 100 * mt.accuracy, mv.loss, 100 * mv.accuracy);

    nb_graph_set_training(g, false);
    pl_log log;
    bool ok = draw_regions(g, &net, &o, prefix, &train, &val, mt.accuracy,
                           mv.accuracy, arch) == 0 &&
              draw_units(g, &net, &o, prefix, (nb_activation)act, arch) == 0;
    if (ok && pl_log_read(csv, &log) == 0) {
        char title[160];
        snprintf(title, sizeof title, "training curves: %s on %s", arch,
                 o.data);
        ok = log.n == o.epochs && pl_plot_log(&log, curves, title) == 0;
        if (log.n != o.epochs)
            fprintf(stderr, "playground: %s has %d rows, not %lld\n", csv,
                    log.n, (long long)o.epochs);
        /* Training must have lowered the loss. */
        if (ok &&
            !(log.col[PL_TRAIN_LOSS][log.n - 1] < log.col[PL_TRAIN_LOSS][0])) {
            fprintf(stderr,
                    "playground: the training loss did not fall "
                    "(%g -> %g)\n",
                    log.col[PL_TRAIN_LOSS][0],
                    log.col[PL_TRAIN_LOSS][log.n - 1]);
            ok = false;
        }
        pl_log_free(&log);
    } else {
        ok = false;
    }
    if (ok && o.test_size && !(mv.accuracy >= 0.85)) {
        fprintf(stderr, "playground: validation accuracy %.1f%% < 85%%\n",
                100 * mv.accuracy);
        ok = false;
    }
    if (ok)
        printf("wrote %s\n", csv);
    rc = ok ? 0 : 1;
done:
    nb_dataset_free(&all);
    nb_dataset_free(&train);
    nb_dataset_free(&val);
    free(xd);
    free(labd);
    nb_graph_free(g);
    return rc;
}
