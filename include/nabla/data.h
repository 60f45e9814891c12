/** @file
 * Datasets: IDX (MNIST-style) and CSV loaders, normalisation,
 * one-hot encoding, shuffling and batching.
 *
 * Loaders treat every byte as hostile: sizes are checked before anything is
 * allocated, and a truncated or malformed file gives an error naming the
 * file and the byte offset (or line) of the problem, never a crash or a
 * silently wrong result. Functions that have no graph to record an error on
 * take an `nb_status *` as their last argument (base.h; it may be NULL): on
 * failure they return NULL or a negative code and fill the status with the
 * same code and a message. Codes: NB_ERR_IO for a file that cannot be read
 * or does not hold what its format promises (including a value out of the
 * requested dtype's range), NB_ERR_ARG for a bad argument, NB_ERR_NOMEM
 * when memory runs out, NB_ERR_NONFINITE for a NaN or infinity where
 * statistics need finite data.
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

/** The most elements an IDX file may hold (2^31). */
#define NB_IDX_MAX_ELEMENTS (INT64_C(1) << 31)

/** @name IDX files */
/** @{ */
/** Reads an IDX file, gzipped or not, into a free-standing tensor.
 *
 * The format of LeCun's MNIST files: two zero bytes, a type code (0x08
 * ubyte, 0x09 sbyte, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64), the rank,
 * rank big-endian u32 extents, then the data big-endian. A file starting
 * with the gzip magic (1f 8b), whatever its name, is decompressed with
 * zlib; byte offsets in messages then count bytes of the decompressed IDX
 * stream, except for damage to the gzip layer itself, which is reported at
 * its compressed offset. Rejected: a bad magic or type code, a rank outside
 * 1..8, a zero extent, more than NB_IDX_MAX_ELEMENTS elements, a file
 * shorter than its header promises, and any byte after the data (also
 * after the gzip stream). i32 and f64 values converted to f32 round to
 * the nearest float; NaN and infinities in float data are kept as data.
 * Returns a free-standing tensor of the file's shape, converted to dtype;
 * the caller frees it with nb_tensor_free. */
NB_API nb_tensor *nb_idx_read(const char *path, nb_dtype dtype, nb_status *status);
/** @} */

/** How nb_csv_read reads a file. */
typedef struct nb_csv_options {
    char delimiter;           /**< 0 means ',' */
    bool header;              /**< the first line names the columns */
    /** The column holding the label or target, by name (needs a header)
     * or, when label_name is NULL, by index (label_column). */
    const char *label_name;
    int label_column;         /**< the label column's index when label_name
                                   is NULL; -1 = no label column */
    nb_dtype dtype;           /**< dtype of the tensors made */
    /** An empty field reads as NaN instead of being an error (nb_train's
     * log leaves a value without a source empty). */
    bool missing_as_nan;
} nb_csv_options;

/** The largest file nb_csv_read accepts (1 GiB). */
#define NB_CSV_MAX_BYTES (INT64_C(1) << 30)

/** @name CSV files */
/** @{ */
/** Reads every numeric field into features [rows, columns] (the label
 * column excluded) and, when a label column is chosen, *labels [rows]
 * (*labels is set to NULL otherwise; labels may be NULL to drop the label
 * column). options NULL means ',' with no header and no label column; note
 * that a zeroed struct has label_column 0, so set -1 for "none".
 *
 * The dialect, kept deliberately small:
 * - one record per line; "\n" or "\r\n" endings, a last line without a
 *   newline is accepted; empty (or blank) lines are skipped anywhere;
 * - the delimiter is one character and each one separates two fields
 *   (runs are not merged); spaces and tabs around a field are ignored;
 * - no quoting: a field is a plain decimal number, [+-]digits[.digits]
 *   [e[+-]digits] as strtod reads it in the "C" locale. Rejected, with the
 *   line and the (1-based) column: an empty field, a partial parse such as
 *   "1.5x", "nan"/"inf" text, hex floats, a value that overflows double
 *   (or, read as f32, a value beyond the f32 range such as 1e300; an
 *   empty field reads as NaN instead when missing_as_nan is set);
 * - header names are trimmed and may be wrapped in double quotes, which
 *   are removed (the name itself must not contain the delimiter);
 * - every row has the first row's number of fields; a short or long row is
 *   an error naming the line and the first missing or extra column.
 * Limits: files up to NB_CSV_MAX_BYTES, at most 2^31 values in all. The
 * tensors are sized by the rows the file actually holds, so memory stays a
 * small multiple of the file's size whatever its first line claims. Line
 * numbers count every physical line, blank ones and the header included. */
NB_API nb_tensor *nb_csv_read(const char *path, const nb_csv_options *options,
                       nb_tensor **labels, nb_status *status);
/** @} */

/** @name Transforms (in place unless noted) */
/** @{ */
/** x *= scale (for example 1/255 for bytes to [0, 1]). */
NB_API void nb_data_scale(nb_tensor *x, double scale);
/** Per column of x viewed as [rows, rest]: mean and standard deviation into
 * mean / std (each `rest` entries, caller-owned); std 0 is reported as 1 so
 * that standardising a constant column gives zeros. The deviation is the
 * population one, sqrt(sum (x - mean)^2 / rows), computed in double in two
 * passes. NB_ERR_ARG for a NULL argument or a tensor without rows;
 * NB_ERR_NONFINITE when the data hold a NaN or an infinity (the message
 * names the column and the row of the first one) or a column's sums
 * overflow; mean and std are then unspecified. */
NB_API int nb_data_column_stats(const nb_tensor *x, double *mean, double *std,
                                nb_status *status);
/** x = (x - mean) / std per column: apply a training set's statistics to any
 * set. NB_ERR_ARG (x untouched) if a std is not finite and positive. */
NB_API int nb_data_standardize(nb_tensor *x, const double *mean,
                               const double *std, nb_status *status);
/** Rows [n, classes] with a 1 in column labels[i]; NULL if a label is not
 * an integer in [0, classes) (the message names the row, from 0). labels
 * is [n] or [n, 1]. New tensor of dtype. */
NB_API nb_tensor *nb_one_hot(const nb_tensor *labels, int64_t classes,
                      nb_dtype dtype, nb_status *status);
/** The index of the largest entry of each row of x [rows, k] into out
 * (rows entries); the first wins a tie. A NaN never wins unless it is the
 * first entry of its row; a row of k = 0 entries gives -1. */
NB_API void nb_argmax_rows(const nb_tensor *x, int64_t *out);
/** @} */

/** @name Datasets
 * x holds one example per row of dimension 0; y one target per row: a class
 * index (rank 1) or a target vector (rank 2). The dataset owns both; y may
 * be NULL for unlabelled data (except where a function needs classes).
 * Functions that fill a dataset (`ds`, `dst`, `train`, `val`) overwrite its
 * fields without freeing them, and leave them NULL on failure; free an old
 * dataset first. Passing src itself as the output replaces it (the old
 * tensors are freed). */
/** @{ */
/** Examples and their targets, one per row. */
typedef struct nb_dataset {
    nb_tensor *x; /**< examples, one per row of dimension 0 */
    nb_tensor *y; /**< class indices [n] or target rows [n, k]; may be NULL */
    /** Further per-row tensors for models with more inputs or targets (a
     * mask, a second head's target): nb_train and nb_evaluate feed
     * extra[i]'s rows to nb_model.extra[i]. Each has n rows. Borrowed, not
     * owned: nb_dataset_free leaves them to the caller, and the helpers
     * that make datasets (slice, split, filter, load) neither read nor
     * set them. Zero-initialised (n_extra 0) means none. */
    int n_extra;
    nb_tensor *const *extra; /**< n_extra tensors */
} nb_dataset;

/** Frees x and y and sets them to NULL; safe on a zeroed or half-filled
 * struct and on NULL. */
NB_API void nb_dataset_free(nb_dataset *ds);
/** Rows of x (0 for NULL or an empty dataset). */
NB_API int64_t nb_dataset_size(const nb_dataset *ds);
/** Loads an IDX image file and its IDX label file (MNIST layout): x becomes
 * [n, pixels] (pixels = the product of the extents after the first),
 * ubyte images divided by 255 into [0, 1] (other types as stored), y the
 * labels [n], which must be an integer type of rank 1 with the same n.
 * limit > 0 keeps only the first `limit` examples (both files are still
 * checked whole: their lengths, and a gzip file's CRC). */
NB_API int nb_dataset_load_idx(nb_dataset *ds, const char *images,
                        const char *labels, nb_dtype dtype, int64_t limit,
                        nb_status *status);
/** Rows [first, first + count) of src as a new dataset (copies). */
NB_API int nb_dataset_slice(nb_dataset *dst, const nb_dataset *src, int64_t first,
                     int64_t count, nb_status *status);
/** The examples whose class index is in [lo, hi), with labels shifted by
 * -lo (for transfer-learning splits). */
NB_API int nb_dataset_filter_classes(nb_dataset *dst, const nb_dataset *src,
                              int64_t lo, int64_t hi, nb_status *status);
/** Splits src into its last `fraction` of rows (validation,
 * round(fraction * n) rows) and the rest (training), after no shuffling:
 * shuffle first if the order matters. fraction in [0, 1]. */
NB_API int nb_dataset_split(const nb_dataset *src, double fraction,
                     nb_dataset *train, nb_dataset *val, nb_status *status);
/** @} */

/** @name Shuffling and batching */
/** @{ */
/** idx = 0, 1, ..., n-1. */
NB_API void nb_iota(int64_t *idx, int64_t n);
/** Fisher-Yates shuffle of idx with the graph's RNG: a seed fixes the
 * order, and a checkpoint of the RNG state fixes it across a resume. */
NB_API void nb_shuffle(nb_graph *g, int64_t *idx, int64_t n);
/** Copies rows idx[0..count) of src into dst, whose dimension 0 must be at
 * least count and whose other extents match src's; converts between f32
 * and f64. idx NULL means rows 0..count-1. Every index is checked against
 * src's rows before anything is copied. Returns NB_OK or NB_ERR_ARG. */
NB_API int nb_gather_rows(nb_tensor *dst, const nb_tensor *src, const int64_t *idx,
                   int64_t count, nb_status *status);
/** Feeds rows idx[0..count) of src to input, with shape [count, src's
 * other extents], gathering them straight into the input's buffer
 * (nb_feed_buffer) and converting between f32 and f64. idx NULL means rows
 * 0..count-1. Makes no heap allocation of its own once the input has held
 * a batch this large (it runs every training step). Errors go to the
 * graph, with the input as it was. */
NB_API int nb_feed_rows(nb_graph *g, nb_node *input, const nb_tensor *src,
                 const int64_t *idx, int64_t count);
/** @} */

#ifdef __cplusplus
}
#endif

#endif
