/* The gradient-check table: every registered op has at least one case.
 * A case builds a small f64 graph around its op from random shapes and
 * random values in a domain that suits the op, and returns the node to
 * check. The runner (test_gradcheck.c) checks each case several times with
 * different draws and fails when a registered op has no case; and the
 * check itself fails when a whole analytic gradient is zero where the
 * numeric one is not (a backward that does nothing). */
#ifndef NABLA_GRADCHECK_CASES_H
#define NABLA_GRADCHECK_CASES_H

#include <stdint.h>

#include "nabla/nabla.h"

typedef struct gc_ctx {
    uint64_t rng;   /* the case's own generator: shapes and values */
    const char *op; /* the op of the case being built (gc_case.op) */
} gc_ctx;

typedef struct gc_case {
    const char *op;    /* the registered op name the case covers */
    const char *what;  /* a few words: which form or shape */
    nb_node *(*build)(nb_graph *g, gc_ctx *c);
} gc_case;

/* Uniform integer in [lo, hi]. */
int64_t gc_dim(gc_ctx *c, int64_t lo, int64_t hi);
/* Uniform double in [lo, hi). */
double gc_uniform(gc_ctx *c, double lo, double hi);
/* An f64 input that asks for its gradient, filled uniformly in [lo, hi).
 * If margin > 0, values closer than margin to `kink` are pushed away, for
 * ops with a corner there (relu at 0). */
nb_node *gc_input(nb_graph *g, gc_ctx *c, int rank, const int64_t *shape,
                  double lo, double hi);
nb_node *gc_input_away(nb_graph *g, gc_ctx *c, int rank, const int64_t *shape,
                       double lo, double hi, double kink, double margin);
/* A trainable f64 parameter filled uniformly in [lo, hi). */
nb_node *gc_param(nb_graph *g, gc_ctx *c, int rank, const int64_t *shape,
                  double lo, double hi);
/* An f64 input with no gradient (targets, labels), filled by the caller
 * through the returned pointer before return... see gc_labels. */
nb_node *gc_const_input(nb_graph *g, gc_ctx *c, int rank, const int64_t *shape,
                        double lo, double hi);
/* Class-index labels in [0, k) for `rows` rows (an f64 input, no grad). */
nb_node *gc_labels(nb_graph *g, gc_ctx *c, int64_t rows, int64_t k);
/* One-hot rows: [rows, k], no grad. */
nb_node *gc_one_hot(nb_graph *g, gc_ctx *c, int64_t rows, int64_t k);
/* Probability rows (positive, summing to 1): [rows, k], no grad. */
nb_node *gc_prob_rows(nb_graph *g, gc_ctx *c, int64_t rows, int64_t k,
                      bool requires_grad);

/* A batch shape: [B,N] (form 0) or [B,C,N] (form 1); returns the rank. */
int gc_batch_shape(gc_ctx *c, int form, int64_t *shape);

/* Each op family's cases, each list ending with {NULL, NULL, NULL}. The
 * elementwise ops' cases are generated from the op list (gc_elementwise.c);
 * the others are written by hand, one file per family. */
extern const gc_case gc_cases_elementwise[];
extern const gc_case gc_cases_activation[];
extern const gc_case gc_cases_softmax[];
extern const gc_case gc_cases_matmul[];
extern const gc_case gc_cases_reduce[];
extern const gc_case gc_cases_shape[];
extern const gc_case gc_cases_loss[];
extern const gc_case gc_cases_conv[];
extern const gc_case gc_cases_norm[];
extern const gc_case gc_cases_sequence[];
extern const gc_case gc_cases_rnn[];

#endif
