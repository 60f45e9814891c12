/* nabla — saving and loading parameters and checkpoints.
 *
 * Files are in the safetensors format (https://github.com/huggingface/
 * safetensors): an 8-byte little-endian header length N, N bytes of JSON
 * mapping each tensor name to {"dtype", "shape", "data_offsets"} plus an
 * optional "__metadata__" object of string values, then the raw
 * little-endian data. Any reader of the format (Python with json and numpy
 * is enough) can open nabla's files, and nabla can open theirs.
 *
 * Saving is atomic: the file is written under a temporary name in the same
 * directory, flushed to disk, then renamed over the target, so a crash
 * never leaves a half-written file where a good one was. Loading treats
 * every byte as hostile: truncated files, bad JSON, absurd sizes, offsets
 * outside the file and dtype or shape mismatches with the graph are each
 * reported with the file name and the problem, and nothing in the graph is
 * changed unless the whole file checks out.
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

/* Saves the values of the given nodes (every parameter of the graph when n
 * is 0), each under its node name. F32 / F64 dtypes. Errors are recorded on
 * the graph. */
int nb_save_params(nb_graph *g, const char *path, int n,
                   nb_node *const *nodes);

/* Loads values into the given nodes (every parameter when n is 0), matched
 * by name. Every node must be present in the file with the node's shape;
 * f32 and f64 in the file are converted to the node's dtype. Tensors in
 * the file that match no node are ignored. */
int nb_load_params(nb_graph *g, const char *path, int n,
                   nb_node *const *nodes);

/* A checkpoint: the parameters (all of the graph's), the optimiser's state
 * and step count (opt may be NULL), the epoch and the graph's RNG state.
 * Resuming from it continues a single-threaded run bit for bit. */
int nb_checkpoint_save(nb_graph *g, nb_optimizer *opt, int64_t epoch,
                       const char *path);
/* Restores what nb_checkpoint_save wrote into a graph and optimiser built
 * the same way; *epoch receives the saved epoch. */
int nb_checkpoint_load(nb_graph *g, nb_optimizer *opt, int64_t *epoch,
                       const char *path);

/* ---- the format itself, for tools and tests ----
 * A loaded safetensors file: names, dtypes, shapes, data and metadata. */
typedef struct nb_st_file nb_st_file;

/* Parses and checks the whole file; NULL with a message in err (naming the
 * file and the problem) on failure. */
nb_st_file *nb_st_open(const char *path, char *err, size_t errlen);
void nb_st_close(nb_st_file *f);
int nb_st_count(const nb_st_file *f);
const char *nb_st_name(const nb_st_file *f, int i);
/* The index of the tensor called name, or -1. */
int nb_st_find(const nb_st_file *f, const char *name);
/* The safetensors dtype string ("F32", "F64", "F16", "I64", ...). */
const char *nb_st_dtype(const nb_st_file *f, int i);
int nb_st_rank(const nb_st_file *f, int i);
const int64_t *nb_st_shape(const nb_st_file *f, int i);
/* Copies tensor i into dst (same element count), converting F32/F64 (and
 * integer dtypes) to dst's dtype. */
int nb_st_read(const nb_st_file *f, int i, nb_tensor *dst, char *err,
               size_t errlen);
/* A "__metadata__" value, or NULL. */
const char *nb_st_metadata(const nb_st_file *f, const char *key);

#ifdef __cplusplus
}
#endif

#endif
