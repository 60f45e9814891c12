/** @file
 * Saving and loading parameters and checkpoints.
 *
 * Files are in the safetensors format
 * (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes of JSON
 * mapping each tensor name to {"dtype", "shape", "data_offsets"} plus an
 * optional "__metadata__" object of string values, then the raw
 * little-endian data. Any reader of the format (Python with json and numpy
 * is enough) can open nabla's files, and nabla can open theirs.
 *
 * Writing: tensors appear in the header and in the data in the order given
 * (for "every parameter", the graph's creation order), "__metadata__"
 * first, and the header is padded with spaces so that the data starts at a
 * multiple of 8 bytes. Bytes are assembled with shifts, so the files are
 * little-endian on any host.
 *
 * Saving is atomic: the file is written as `"<path>.tmp.<pid>"` in the same
 * directory, flushed and fsync'ed, then renamed over the target, and the
 * directory is fsync'ed, so a crash never leaves a half-written file where
 * a good one was; after a failure the temporary file is removed and the
 * old file is untouched. On power loss, with a file system that honours
 * fsync, a save that returned NB_OK survives, and one cut short leaves the
 * old file. A process killed mid-save leaves its temporary file; the next
 * save to the same path removes those whose process no longer exists.
 *
 * Loading treats every byte as hostile: a header over 100 MB or beyond the
 * file, malformed JSON (strict RFC 8259, valid UTF-8, no repeated keys,
 * nesting <= 32, <= 2^20 values), unknown dtypes, negative or overflowing
 * extents, data_offsets that disagree with dtype size x element count or
 * reach past the file, and tensors that overlap or leave holes in the data
 * section are each reported with the file name and the problem, and
 * nothing in the graph is changed unless the whole file checks out. A file
 * is read into memory whole. An F64 value beyond the f32 range loaded into
 * an f32 tensor is an error naming the tensor and the element (NaN and
 * infinities are data and load as they are).
 *
 * Errors: the calls on a graph record them there; the nb_st_* calls take an
 * nb_status (base.h). Codes: NB_ERR_IO for a file that cannot be opened,
 * read, written or parsed, or whose values do not fit; NB_ERR_ARG for a bad
 * argument or a well-formed file that does not match the graph or
 * optimiser (a missing tensor, another shape, another configuration);
 * NB_ERR_NOMEM when memory runs out.
 */
#ifndef NABLA_IO_H
#define NABLA_IO_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Saves the values of the given nodes (when n is 0: every parameter of
 * the graph, trainable or frozen, and every state tensor, see nb_state),
 * each under its node name, which must be unique. F32 / F64 dtypes. Errors are recorded on the graph. */
NB_API int nb_save_params(nb_graph *g, const char *path, int n,
                   nb_node *const *nodes);

/** Loads values into the given nodes (parameters, state tensors or
 * constants; every parameter and state tensor when n is 0), matched by
 * name. Every node must be present in the file with the node's shape; F32, F64, F16 and BF16 in the file are
 * converted to the node's dtype (same dtype: bit for bit). Tensors in the
 * file that match no node are ignored. Everything is checked before any
 * node is written. */
NB_API int nb_load_params(nb_graph *g, const char *path, int n,
                   nb_node *const *nodes);

/** Saves a checkpoint: the parameters and state tensors (all of the
 * graph's), the optimiser's state tensors, step count, kind, learning rate
 * and every other hyper-parameter of nb_optimizer_config (opt may be NULL), the epoch and the graph's RNG
 * state, the scalars as "__metadata__" strings (format "nabla.checkpoint",
 * format_version "2", epoch, rng_state, optimizer, optimizer.steps,
 * optimizer.lr, optimizer.lr_bits, optimizer.state_count, and
 * optimizer.momentum, .nesterov, .beta1, .beta2, .rho, .eps, .weight_decay,
 * .l1, .decay_biases, .clip_norm: doubles as 16 hex digits of their bits,
 * flags "0" or "1"). Resuming from it continues a single-threaded run bit
 * for bit. */
NB_API int nb_checkpoint_save(nb_graph *g, nb_optimizer *opt, int64_t epoch,
                       const char *path);
/** Restores what nb_checkpoint_save wrote into a graph and optimiser built
 * the same way; *epoch (if not NULL) receives the saved epoch. A different
 * optimiser kind or any other hyper-parameter (the message names the field
 * and both values; the learning rate is restored, not compared), a missing
 * or differently shaped parameter, or a different number of tensors is an
 * error, and then nothing is changed. With opt NULL the saved optimiser state is skipped;
 * with an opt, the file must hold matching state. */
NB_API int nb_checkpoint_load(nb_graph *g, nb_optimizer *opt, int64_t *epoch,
                       const char *path);

/** A loaded safetensors file: names, dtypes, shapes, data and metadata
 * (opaque). */
typedef struct nb_st_file nb_st_file;

/** @name The format itself, for tools and tests */
/** @{ */
/** Parses and checks the whole file; NULL with a message in status (naming
 * the file and the problem) on failure. Names and metadata strings stay
 * valid until nb_st_close. */
NB_API nb_st_file *nb_st_open(const char *path, nb_status *status);
/** Frees the loaded file; NULL is a no-op. */
NB_API void nb_st_close(nb_st_file *f);
/** Number of tensors in the file. */
NB_API int nb_st_count(const nb_st_file *f);
/** The name of tensor i (0 <= i < nb_st_count), or NULL if out of range. */
NB_API const char *nb_st_name(const nb_st_file *f, int i);
/** The index of the tensor called name, or -1. */
NB_API int nb_st_find(const nb_st_file *f, const char *name);
/** The safetensors dtype string ("F32", "F64", "F16", "I64", ...). */
NB_API const char *nb_st_dtype(const nb_st_file *f, int i);
/** The rank of tensor i, or -1 if out of range. */
NB_API int nb_st_rank(const nb_st_file *f, int i);
/** The extents of tensor i (rank of them), or NULL if out of range. */
NB_API const int64_t *nb_st_shape(const nb_st_file *f, int i);
/** Copies tensor i into dst (same element count; the shape may differ),
 * converting F32, F64, F16, BF16, BOOL and the integer dtypes to dst's
 * dtype (same dtype: bit for bit; integers beyond 2^53 round). F8 dtypes
 * are refused, and so is an F64 value beyond the f32 range read into an
 * f32 tensor (NB_ERR_IO naming the element; dst is then untouched). */
NB_API int nb_st_read(const nb_st_file *f, int i, nb_tensor *dst,
                      nb_status *status);
/** A "__metadata__" value, or NULL. */
NB_API const char *nb_st_metadata(const nb_st_file *f, const char *key);
/** The number of metadata keys. */
NB_API int nb_st_metadata_count(const nb_st_file *f);
/** The metadata keys, in file order: nb_st_metadata_key(f, i) for
 * 0 <= i < nb_st_metadata_count(f). */
NB_API const char *nb_st_metadata_key(const nb_st_file *f, int i);

/** Writes n tensors under the given names (valid UTF-8, unique, not
 * "__metadata__"), in the order given, plus nmeta metadata key/value
 * string pairs, atomically as above. Returns NB_OK or a negative code with
 * a message naming the file in status. */
NB_API int nb_st_save(const char *path, int n, const char *const *names,
               const nb_tensor *const *tensors, int nmeta,
               const char *const *meta_keys, const char *const *meta_values,
               nb_status *status);
/** @} */

#ifdef __cplusplus
}
#endif

#endif
