/** @file
 * Data-parallel training over MPI: the separate library nabla_dist, built
 * when Meson finds MPI (feature option `mpi`), on top of the public API.
 * libnabla itself never links MPI; link this one with pkg-config's
 * `nabla-dist`, which brings nabla and MPI.
 *
 * The caller owns MPI: it calls MPI_Init and MPI_Finalize, and nabla never
 * calls MPI_Init, MPI_Finalize or MPI_Abort. nb_dist_new duplicates the
 * communicator it is given, so nabla's messages never meet the caller's,
 * and makes MPI errors on it return (they become NB_ERR_IO) instead of
 * ending the process.
 *
 * Every call below except nb_dist_rank, nb_dist_size and nb_dist_train is
 * collective: every rank of the communicator makes it, in the same order.
 * Each one that can fail first agrees on every rank's status (its `own`
 * argument), so that a rank that failed (a bad file, a shape error) makes
 * every rank return an error rather than leave them waiting. See
 * docs/distributed.md.
 */
#ifndef NABLA_DIST_H
#define NABLA_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "base.h"
#include "graph.h"
#include "optim.h"
#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A data-parallel context on a duplicate of a caller's communicator
 * (opaque). */
typedef struct nb_dist nb_dist;

/** The bucket size nb_dist_new uses for bucket_bytes 0. */
#define NB_DIST_BUCKET_BYTES ((size_t)4 << 20)

/** Collective: a context on a duplicate of comm. Gradients are reduced in
 * buckets of at most bucket_bytes (0: NB_DIST_BUCKET_BYTES). NULL with a
 * message in status when MPI is not initialised or an MPI call fails. */
NB_API nb_dist *nb_dist_new(MPI_Comm comm, size_t bucket_bytes,
                            nb_status *status);
/** Collective: frees the context and its communicator (call it before
 * MPI_Finalize). NULL is a no-op, and then not collective. */
NB_API void nb_dist_free(nb_dist *d);
/** This process's rank, from 0; -1 for NULL. */
NB_API int nb_dist_rank(const nb_dist *d);
/** The number of ranks; 0 for NULL. */
NB_API int nb_dist_size(const nb_dist *d);

/** Collective agreement: every rank passes its own status (NB_OK or a
 * negative code). Returns NB_OK when all passed NB_OK; otherwise this
 * rank's own code if it failed, else the code of the first rank that did,
 * with a message naming it in `status`. Call it after every step that may
 * fail on one rank only (reading a file) and before the next collective. */
NB_API int nb_dist_agree(nb_dist *d, int own, nb_status *status);

/** Collective: v[0..n) becomes the sum over ranks of every rank's v, added
 * in an order that depends on the number of ranks only, never on timing,
 * so every rank gets the same bits and a rerun gets them again. `own` is
 * agreed on first, as by nb_dist_agree; on failure v is unchanged. */
NB_API int nb_dist_sum(nb_dist *d, double *v, int n, int own,
                       nb_status *status);

/** Collective: every parameter and state tensor of g (all of the graph's,
 * in node order), the graph's RNG state and, with an optimiser, its state
 * tensors, step count and learning rate become rank 0's; then every rank
 * but 0 reseeds the graph's RNG from rank 0's state and its rank (dropout
 * masks differ between ranks). Ranks whose models differ in size are an
 * NB_ERR_ARG on every rank. `own` is agreed on first. Errors go to the
 * graph. */
NB_API int nb_dist_broadcast(nb_dist *d, nb_graph *g, nb_optimizer *opt,
                             int own);

/** Collective: the gradient of each of opt's parameters becomes the sum
 * over ranks of weight times that rank's gradient (a parameter without a
 * gradient counts as zeros and is left without one), reduced in the fixed
 * order of nb_dist_sum, the gradients packed into buckets of at most the
 * context's bucket size. For the mean over a global batch of which this
 * rank holds `rows` of `total`, weight is rows / total. `own` is agreed on
 * first; on failure the gradients are unchanged. Errors go to the graph. */
NB_API int nb_dist_average_grads(nb_dist *d, nb_optimizer *opt, double weight,
                                 int own);

/** Not collective: the gradients of the next backward on opt's graph may
 * be reduced while that backward runs. Call it on every rank before the
 * step's backward (before its forward is as good), with the weight the
 * step's nb_dist_average_grads will pass, and follow that backward with
 * nb_dist_average_grads, whose result it does not change: the same bits
 * with or without it, whatever the timing. It sets the graph's
 * gradient-ready hook (nb_graph_set_grad_ready) until
 * nb_dist_average_grads, which removes it. From the second such step on,
 * the buckets are laid out in the order backward finishes the gradients,
 * each parameter is packed when backward reports it final, and a bucket
 * whose parameters are all packed starts its non-blocking ring at once
 * (unless nb_dist_set_overlap turned that off). Only one backward may run
 * between the two calls (for gradient accumulation, begin before the last
 * one). NB_OK, or a negative code with the error on the graph, which the
 * caller passes as `own` to nb_dist_average_grads. */
NB_API int nb_dist_begin_grads(nb_dist *d, nb_optimizer *opt, double weight);

/** Whether nb_dist_begin_grads starts buckets during backward (the
 * default) or leaves every ring to nb_dist_average_grads, with the same
 * layout and so the same bits: for measuring what overlap gains. Call it
 * with the same value on every rank. NB_ERR_ARG for NULL. */
NB_API int nb_dist_set_overlap(nb_dist *d, bool overlap);

/** Collective: whether the gradients may be summed through an MPI-3
 * shared-memory window when every rank of the communicator shares one
 * node (on; also when the environment variable NABLA_DIST_REDUCE is
 * `window` on every rank when nb_dist_new runs) or always by the ring of
 * messages (off: the default), as across nodes. Both add the same
 * operands in the same order, so the bits are the same either way; the
 * window saves the copies through MPI's transport, but on the 2-core
 * machines it was measured on the packing into memory the other rank
 * reads cost more than that (docs/distributed.md). Off wins if any rank
 * passes it. Takes effect from the next step (its layout is agreed anew);
 * NB_ERR_STATE between nb_dist_begin_grads and nb_dist_average_grads,
 * NB_ERR_ARG for NULL, NB_ERR_IO when MPI fails. */
NB_API int nb_dist_set_shared_memory(nb_dist *d, bool on);

/** What the gradient reductions of a context did, since it was made or
 * last reset (this rank's view). */
typedef struct nb_dist_stats {
    int64_t steps;      /**< successful gradient averages */
    double bytes;       /**< bytes of packed gradients they reduced */
    double bytes_early; /**< of which in buckets whose ring started during
                             backward, before its last gradient was
                             reported (so with backward work left to
                             overlap) */
    double bytes_done_early; /**< of which in buckets whose ring had ended
                                  when nb_dist_average_grads was called */
    double bytes_shared; /**< of which summed through shared memory (every
                              rank on one node) rather than by the ring */
} nb_dist_stats;

/** Copies the context's figures into *stats: NB_OK, or NB_ERR_ARG for a
 * NULL argument. */
NB_API int nb_dist_get_stats(const nb_dist *d, nb_dist_stats *stats);
/** Sets the figures to zero; NULL is a no-op. */
NB_API void nb_dist_reset_stats(nb_dist *d);

/** The hooks that make nb_train data parallel: set nb_train_config.dist to
 * this (valid while d lives); NULL for NULL. */
NB_API const nb_train_dist *nb_dist_train(nb_dist *d);

#ifdef __cplusplus
}
#endif

#endif
