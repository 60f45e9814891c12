/* What the files of src/optim share: the optimiser object, a step's
 * hyper-parameters and items, and the gradient lists the norm walks.
 *
 *   config.c        validation of configs and parameter lists
 *   grad_norm.c     the global gradient norm (deterministic for any thread
 *                   count) and nb_clip_grad_norm
 *   step.c          nb_optimizer_step
 *   optimizer.c     creation, state tensors, accessors
 *   update_impl.h   the update rules' loops, per dtype (step.c)
 *   norm_impl.h     the norm's loops, per dtype (grad_norm.c)
 *
 * src/optim uses the public API only. */
#ifndef NABLA_OPTIM_INTERNAL_H
#define NABLA_OPTIM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla/graph.h"
#include "nabla/optim.h"
#include "nabla/tensor.h"

/* One parameter's part in a step, gathered by the step's checks so that
 * the passes need no lookups: its arrays, its size and its place in the
 * concatenation of the step's tensors. */
struct item {
    void *w, *dw;
    void *s0, *s1; /* the state arrays the rule uses, else NULL */
    int64_t n, off;
    bool f32;
    bool reg; /* a weight (regularised) rather than a bias */
};

struct nb_optimizer {
    nb_graph *g;
    nb_optim_config cfg; /* defaults resolved; cfg.lr is the current rate */
    int64_t steps;       /* < INT64_MAX: a step never makes it overflow */
    double grad_norm;
    int n_params;
    int per_param; /* state tensors per parameter: 0, 1 or 2 */
    nb_node **params;
    nb_tensor **state;  /* n_params * per_param, parameter-major */
    char **names;       /* the state tensors' names */
    struct item *items; /* n_params entries, filled by each step */
};

#if defined(__GNUC__)
#define OPT_INLINE inline __attribute__((always_inline))
#else
#define OPT_INLINE inline
#endif

/* The loops are built for the baseline x86-64 (SSE2) unless the whole
 * library is built for a newer CPU; GCC and Clang can add AVX2 and AVX-512
 * copies chosen when the library loads (an ifunc, hence glibc only): the
 * update loops are compute-bound with SSE2 and become memory-bound only
 * from AVX2 on. Every copy does the same operations
 * in the same order (the build passes -ffp-contract=off, so no compiler
 * contracts a * b + c into an FMA),
 * so they give the same bits. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute) &&   \
    !defined(__AVX512F__) && !defined(NB_OPTIM_NO_CLONES)
#if __has_attribute(target_clones)
#define OPT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef OPT_CLONES
#define OPT_CLONES
#endif

/* ---- config.c ---- */

/* Validates c for nb_optimizer_new (errors recorded on g) and writes it
 * with the defaults filled in to out. */
int nb_optim_resolve_config(nb_graph *g, const nb_optim_config *c,
                            nb_optim_config *out);
/* Checks an explicit parameter list: n >= 0, parameters of g, each once. */
int nb_optim_check_params(nb_graph *g, const char *fn, int n,
                          nb_node *const *params);
/* State tensors per parameter of a resolved config: 0, 1 or 2. */
int nb_optim_state_per_param(const nb_optim_config *c);
/* The name prefix of state tensor k of a parameter ("adam.m", ...). */
const char *nb_optim_state_prefix(const nb_optim_config *c, int k);

/* ---- grad_norm.c ---- */

/* A pass over many tensors runs over the concatenation of its tensors,
 * `total` elements, cut into NSLOT slots whose bounds depend on total
 * alone; a thread takes a run of whole slots. Slot bounds are multiples of
 * SLOT_ALIGN elements (whole cache lines when a tensor starts on one). */
#define NB_OPTIM_NSLOT 64
#define NB_OPTIM_SLOT_ALIGN 64

/* The first element of slot k (k = NSLOT: total). */
int64_t nb_optim_slot_bound(int64_t total, int k);

/* The gradient a pass uses: none for frozen parameters, none when the
 * latest backward gave the parameter none. */
nb_tensor *nb_optim_active_grad(nb_node *p);

/* part[k] = the sum of squares of slot k of the items' gradients, for
 * slots s0..s1-1. */
void nb_optim_norm_slots_items(const struct item *items, int n_items,
                               int64_t total, int s0, int s1, double *part);
/* ||dL/dw||_2 of items whose elements total less than NB_OPTIM_SLOT_ALIGN,
 * the same bits as the slot sums and their finish give, without them. */
double nb_optim_norm_small_items(const struct item *items, int n_items);
/* ||dL/dw||_2 from the slot sums of nb_optim_norm_slots_items: NaN if a
 * gradient holds a NaN, infinity if one holds an infinity. */
double nb_optim_finish_norm_items(const struct item *items, int n_items,
                                  const double *part);

#endif
