/* nabla — datasets: IDX (MNIST-style) and CSV loaders, normalisation,
 * one-hot encoding, shuffling and batching.
 *
 * Loaders treat every byte as hostile: sizes are checked before anything is
 * allocated, and a truncated or malformed file gives an error naming the
 * file and the byte offset (or line) of the problem, never a crash or a
 * silently wrong result. Functions that have no graph to record an error on
 * take `err` / `errlen`: on failure they return NULL or a negative code and
 * write a terminated message there (when err is not NULL).
 */
#ifndef NABLA_DATA_H
#define NABLA_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- IDX files ----
 * The format of LeCun's MNIST files: two zero bytes, a type code (0x08
 * ubyte, 0x09 sbyte, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64), the rank,
 * rank big-endian u32 extents, then the data big-endian. A file ending in
 * ".gz" (or starting with the gzip magic) is decompressed with zlib.
 * Returns a free-standing tensor of the file's shape, converted to dtype;
 * the caller frees it with nb_tensor_free. */
nb_tensor *nb_idx_read(const char *path, nb_dtype dtype, char *err,
                       size_t errlen);

/* ---- CSV files ---- */
typedef struct nb_csv_options {
    char delimiter;           /* 0 means ',' */
    bool header;              /* the first line names the columns */
    /* The column holding the label or target, by name (needs a header)
     * or, when label_name is NULL, by index; -1 = no label column. */
    const char *label_name;
    int label_column;
    nb_dtype dtype;
} nb_csv_options;

/* Reads every numeric field into features [rows, columns] (the label
 * column excluded) and, when a label column is chosen, *labels [rows].
 * Empty lines are skipped; a non-numeric field or a row of the wrong length
 * is an error naming the line and column. */
nb_tensor *nb_csv_read(const char *path, const nb_csv_options *options,
                       nb_tensor **labels, char *err, size_t errlen);

/* ---- transforms (in place unless noted) ---- */
/* x *= scale (e.g. 1/255 for bytes to [0, 1]). */
void nb_data_scale(nb_tensor *x, double scale);
/* Per column of x viewed as [rows, rest]: mean and standard deviation into
 * mean / std (each `rest` entries, caller-owned); std 0 is reported as 1 so
 * that standardising a constant column gives zeros. */
int nb_data_column_stats(const nb_tensor *x, double *mean, double *std);
/* x = (x - mean) / std per column: apply a training set's statistics to any
 * set. */
int nb_data_standardize(nb_tensor *x, const double *mean, const double *std);
/* Rows [n, classes] with a 1 in column labels[i]; NULL if a label is not
 * an integer in [0, classes). New tensor of dtype. */
nb_tensor *nb_one_hot(const nb_tensor *labels, int64_t classes,
                      nb_dtype dtype, char *err, size_t errlen);
/* The index of the largest entry of each row of x [rows, k] into out
 * (rows entries); the first wins a tie. */
void nb_argmax_rows(const nb_tensor *x, int64_t *out);

/* ---- datasets ----
 * x holds one example per row of dimension 0; y one target per row: a class
 * index (rank 1) or a target vector (rank 2). The dataset owns both. */
typedef struct nb_dataset {
    nb_tensor *x;
    nb_tensor *y;
} nb_dataset;

void nb_dataset_free(nb_dataset *ds);
int64_t nb_dataset_size(const nb_dataset *ds);
/* Loads an IDX image file and its IDX label file (MNIST layout): x becomes
 * [n, pixels] scaled to [0, 1], y the labels [n]. limit > 0 keeps only the
 * first `limit` examples. */
int nb_dataset_load_idx(nb_dataset *ds, const char *images,
                        const char *labels, nb_dtype dtype, int64_t limit,
                        char *err, size_t errlen);
/* Rows [first, first + count) of src as a new dataset (copies). */
int nb_dataset_slice(nb_dataset *dst, const nb_dataset *src, int64_t first,
                     int64_t count, char *err, size_t errlen);
/* The examples whose class index is in [lo, hi), with labels shifted by
 * -lo (for transfer-learning splits). */
int nb_dataset_filter_classes(nb_dataset *dst, const nb_dataset *src,
                              int64_t lo, int64_t hi, char *err,
                              size_t errlen);
/* Splits src into its last `fraction` of rows (validation) and the rest
 * (training), after no shuffling: shuffle first if the order matters. */
int nb_dataset_split(const nb_dataset *src, double fraction,
                     nb_dataset *train, nb_dataset *val, char *err,
                     size_t errlen);

/* ---- shuffling and batching ---- */
/* idx = 0, 1, ..., n-1. */
void nb_iota(int64_t *idx, int64_t n);
/* Fisher-Yates shuffle of idx with the graph's RNG: a seed fixes the
 * order, and a checkpoint of the RNG state fixes it across a resume. */
void nb_shuffle(nb_graph *g, int64_t *idx, int64_t n);
/* Copies rows idx[0..count) of src into dst, whose dimension 0 must be at
 * least count and whose other extents match src's; converts between f32
 * and f64. Returns NB_OK or NB_ERR_ARG. */
int nb_gather_rows(nb_tensor *dst, const nb_tensor *src, const int64_t *idx,
                   int64_t count);
/* Gathers rows idx[0..count) of src into the scratch tensor (sized for the
 * largest batch) and feeds them to input. Errors go to the graph. */
int nb_feed_rows(nb_graph *g, nb_node *input, const nb_tensor *src,
                 const int64_t *idx, int64_t count, nb_tensor *scratch);

#ifdef __cplusplus
}
#endif

#endif
