/* Helpers shared by the training examples: finding and loading
 * Fashion-MNIST, command-line flags, a wall clock and a confusion-matrix
 * printer. Pictures are drawn and written by the plotting module,
 * examples/plot/.
 *
 * Everything is static inline so that an example that uses only part of
 * this file compiles without unused-function warnings.
 */
#ifndef NABLA_EXAMPLE_UTIL_H
#define NABLA_EXAMPLE_UTIL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "nabla/nabla.h"

/* meson counts a test that exits with 77 as skipped. */
#define EX_SKIP 77

/* ---- Fashion-MNIST ---- */

/* Debian's dataset-fashion-mnist; NABLA_FASHION_MNIST points elsewhere. */
#define EX_FASHION_DIR "/usr/share/datasets/fashion-mnist"

static inline const char *ex_fashion_class(int64_t k)
{
    static const char *const names[10] = {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    return k >= 0 && k < 10 ? names[k] : "?";
}

static inline bool ex_file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* Loads up to train_limit training and test_limit test examples (0 = all)
 * as f32, pixels scaled to [0, 1], labels as class indices. Returns 0,
 * EX_SKIP when the files are not installed, or 1 on a loading error; the
 * message is printed either way. */
static inline int ex_load_fashion(const char *prog, nb_dataset *train,
                                  nb_dataset *test, int64_t train_limit,
                                  int64_t test_limit)
{
    const char *dir = getenv("NABLA_FASHION_MNIST");
    if (!dir || !*dir)
        dir = EX_FASHION_DIR;
    static const char *const files[4] = {
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    char path[4][1024];
    for (int i = 0; i < 4; i++) {
        snprintf(path[i], sizeof path[i], "%s/%s", dir, files[i]);
        if (!ex_file_exists(path[i])) {
            fprintf(stderr,
                    "%s: Fashion-MNIST not found: %s is missing.\n"
                    "  Install it with `apt-get install "
                    "dataset-fashion-mnist`, or set NABLA_FASHION_MNIST\n"
                    "  to a directory holding the four *-ubyte.gz files. "
                    "Skipping.\n",
                    prog, path[i]);
            return EX_SKIP;
        }
    }
    nb_status st;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (nb_dataset_load_idx(train, path[0], path[1], NB_F32, train_limit, &st) != NB_OK ||
        nb_dataset_load_idx(test, path[2], path[3], NB_F32, test_limit, &st) != NB_OK) {
        fprintf(stderr, "%s: %s\n", prog, st.message);
        nb_dataset_free(train);
        nb_dataset_free(test);
        return 1;
    }
    return 0;
}

/* ---- command-line flags ----
 * A table of "--name value" flags (booleans take no value). */
typedef enum ex_flag_type {
    EX_INT,    /* int64_t */
    EX_DOUBLE, /* double */
    EX_STRING, /* const char * */
    EX_BOOL    /* bool, set by the bare flag */
} ex_flag_type;

typedef struct ex_flag {
    const char *name; /* "--epochs" */
    ex_flag_type type;
    void *dest;
    const char *help;
} ex_flag;

static inline void ex_usage(FILE *out, const char *prog, const char *synopsis,
                            const ex_flag *flags, int n)
{
    fprintf(out, "usage: %s [options]\n%s\noptions:\n", prog, synopsis);
    for (int i = 0; i < n; i++) {
        char def[64] = "";
        switch (flags[i].type) {
        case EX_INT:
            snprintf(def, sizeof def, " (%lld)",
                     (long long)*(int64_t *)flags[i].dest);
            break;
        case EX_DOUBLE:
            snprintf(def, sizeof def, " (%g)", *(double *)flags[i].dest);
            break;
        case EX_STRING:
            if (*(const char **)flags[i].dest)
                snprintf(def, sizeof def, " (%s)",
                         *(const char **)flags[i].dest);
            break;
        case EX_BOOL:
            break;
        }
        fprintf(out, "  %-14s %s%s\n", flags[i].name, flags[i].help, def);
    }
}

/* Whether a bare flag is on the command line: lets a mode such as
 * --test-size change the defaults before the other flags are read. */
static inline bool ex_has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], flag))
            return true;
    return false;
}

/* Returns -1 to go on, or the exit status (0 after --help, 2 after a bad
 * flag). */
static inline int ex_parse_flags(int argc, char **argv, const char *synopsis,
                                 const ex_flag *flags, int n)
{
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            ex_usage(stdout, argv[0], synopsis, flags, n);
            return 0;
        }
        int f = 0;
        while (f < n && strcmp(argv[a], flags[f].name))
            f++;
        if (f == n) {
            fprintf(stderr, "%s: unknown option %s\n", argv[0], argv[a]);
            ex_usage(stderr, argv[0], synopsis, flags, n);
            return 2;
        }
        if (flags[f].type == EX_BOOL) {
            *(bool *)flags[f].dest = true;
            continue;
        }
        if (a + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", argv[0], argv[a]);
            return 2;
        }
        const char *v = argv[++a];
        char *end = NULL;
        switch (flags[f].type) {
        case EX_INT: {
            long long x = strtoll(v, &end, 10);
            if (end == v || *end || x < 0) {
                fprintf(stderr,
                        "%s: %s wants a non-negative integer, not "
                        "'%s'\n",
                        argv[0], flags[f].name, v);
                return 2;
            }
            *(int64_t *)flags[f].dest = x;
            break;
        }
        case EX_DOUBLE: {
            double x = strtod(v, &end);
            if (end == v || *end || !isfinite(x)) {
                fprintf(stderr, "%s: %s wants a number, not '%s'\n", argv[0],
                        flags[f].name, v);
                return 2;
            }
            *(double *)flags[f].dest = x;
            break;
        }
        case EX_STRING:
            *(const char **)flags[f].dest = v;
            break;
        case EX_BOOL:
            break;
        }
    }
    return -1;
}

/* ---- training settings shared by the Fashion-MNIST classifiers ---- */

/* The learning-rate schedule called `name`: "cosine" (to 0 over `epochs`),
 * "step" (divided by 10 for the last third) or "constant". Returns 0, or 2
 * with a message for an unknown name. */
static inline int ex_schedule(const char *prog, const char *name, double lr,
                              int64_t epochs, nb_schedule *out)
{
    memset(out, 0, sizeof *out);
    out->lr0 = lr;
    if (!strcmp(name, "cosine")) {
        out->kind = NB_SCHEDULE_COSINE;
        out->period = epochs;
        out->min_lr = 0;
    } else if (!strcmp(name, "step")) {
        out->kind = NB_SCHEDULE_STEP;
        out->gamma = 0.1;
        out->step_size = epochs - epochs / 3;
    } else if (!strcmp(name, "constant")) {
        out->kind = NB_SCHEDULE_CONSTANT;
    } else {
        fprintf(stderr, "%s: unknown schedule '%s'\n", prog, name);
        return 2;
    }
    return 0;
}

/* Moves `all` into *train and *val, the last val_count rows (none when 0)
 * held out for validation: the file's order is already mixed, so its tail
 * is a fair sample. `all` is emptied either way. Returns 0, 2 when nothing
 * would be left to train on, or 1 on an error; the message is printed. */
static inline int ex_hold_out(const char *prog, nb_dataset *all,
                              int64_t val_count, nb_dataset *train,
                              nb_dataset *val)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    int64_t total = nb_dataset_size(all);
    if (val_count >= total) {
        fprintf(stderr, "%s: --val %lld leaves nothing to train on\n", prog,
                (long long)val_count);
        nb_dataset_free(all);
        return 2;
    }
    if (val_count == 0) {
        *train = *all;
        memset(all, 0, sizeof *all);
        return 0;
    }
    nb_status st;
    int rc = 0;
    if (nb_dataset_split(all, (double)val_count / (double)total, train, val,
                         &st) != NB_OK) {
        fprintf(stderr, "%s: %s\n", prog, st.message);
        rc = 1;
    }
    nb_dataset_free(all);
    return rc;
}

/* ---- small utilities ---- */

/* The graph's error message, never NULL (for printing). */
static inline const char *ex_graph_error(const nb_graph *g)
{
    const char *e = g ? nb_graph_error(g) : NULL;
    return e ? e : "unknown error";
}

/* Seconds on a monotonic clock. */
static inline double ex_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A free-standing copy of t (NULL if out of memory). */
static inline nb_tensor *ex_tensor_clone(const nb_tensor *t)
{
    nb_tensor *c = nb_tensor_new(nb_tensor_dtype(t), nb_tensor_rank(t),
                                 nb_tensor_shape(t));
    if (c)
        memcpy(nb_tensor_data(c), nb_tensor_cdata(t),
               (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t)));
    return c;
}

/* True when a and b have the same shape, dtype and bytes. */
static inline bool ex_tensor_identical(const nb_tensor *a, const nb_tensor *b)
{
    if (nb_tensor_dtype(a) != nb_tensor_dtype(b) ||
        nb_tensor_rank(a) != nb_tensor_rank(b) ||
        nb_tensor_size(a) != nb_tensor_size(b))
        return false;
    for (int i = 0; i < nb_tensor_rank(a); i++)
        if (nb_tensor_dim(a, i) != nb_tensor_dim(b, i))
            return false;
    return memcmp(nb_tensor_cdata(a), nb_tensor_cdata(b),
                  (size_t)nb_tensor_size(a) *
                      nb_dtype_size(nb_tensor_dtype(a))) == 0;
}

/* The L2 norm of a tensor, accumulated in double. */
static inline double ex_tensor_norm(const nb_tensor *t)
{
    double s = 0;
    for (int64_t i = 0; i < nb_tensor_size(t); i++) {
        double v = nb_tensor_get(t, i);
        s += v * v;
    }
    return sqrt(s);
}

/* Correct predictions: the trace of a confusion matrix. */
static inline int64_t ex_confusion_correct(const int64_t *conf, int64_t classes)
{
    int64_t c = 0;
    for (int64_t k = 0; k < classes; k++)
        c += conf[k * classes + k];
    return c;
}

/* Rows are true classes, columns predictions; the last column is the
 * per-class accuracy (recall). */
static inline void ex_print_confusion(FILE *out, const int64_t *conf,
                                      int64_t classes,
                                      const char *(*name)(int64_t))
{
    fprintf(out, "%-13s", "true \\ pred");
    for (int64_t p = 0; p < classes; p++)
        fprintf(out, " %5lld", (long long)p);
    fprintf(out, "  recall\n");
    for (int64_t t = 0; t < classes; t++) {
        int64_t row = 0;
        fprintf(out, "%lld %-11s", (long long)t, name(t));
        for (int64_t p = 0; p < classes; p++) {
            fprintf(out, " %5lld", (long long)conf[t * classes + p]);
            row += conf[t * classes + p];
        }
        fprintf(out, "  %5.1f%%\n",
                row ? 100.0 * (double)conf[t * classes + t] / (double)row
                    : 0.0);
    }
}

#endif
