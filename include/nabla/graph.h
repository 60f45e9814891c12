/** @file
 * Graphs, nodes, running forward and backward.
 *
 * Threading contract: a graph (with every node and tensor in it) is used by
 * one thread at a time. Independent graphs may be used concurrently from
 * different threads. nb_set_allocator must be called, if at all, before any
 * graph exists.
 *
 * Errors are sticky, in the manner of cairo's status: the first failing call
 * records a message on the graph and returns NULL or a negative code. A
 * constructor given a NULL input returns NULL without recording a second
 * message, so a chain of constructor calls needs one check at the end.
 * nb_graph_error reads the message, nb_graph_clear_error forgets it; the
 * graph stays usable either way. The library never aborts, exits or prints.
 */
#ifndef NABLA_GRAPH_H
#define NABLA_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A graph: owns every node, tensor buffer and the RNG; freeing it frees
 * everything (opaque). */
typedef struct nb_graph nb_graph;
/** A node of a graph: an input, parameter, constant or op application
 * (opaque; owned by its graph). */
typedef struct nb_node nb_node;


/** Marks an extent of an input as dynamic: it is set by each nb_feed. Most
 * often the batch (dimension 0); any other axis may be too, such as the
 * sequence length T of [N, T] token ids. */
#define NB_DYNAMIC (-1)

/** @name Graph */
/** @{ */
/** A new, empty graph in training mode with a fixed default seed, or NULL
 * if memory runs out. */
NB_API nb_graph *nb_graph_new(void);
/** Frees the graph with every node and tensor in it; NULL is a no-op. */
NB_API void nb_graph_free(nb_graph *g);

/** The first recorded error message, or NULL if there is none. */
NB_API const char *nb_graph_error(const nb_graph *g);
/** The code of the first recorded error, NB_OK if none. */
NB_API int nb_graph_status(const nb_graph *g);
/** Forgets the recorded error, so that the next failure is recorded. */
NB_API void nb_graph_clear_error(nb_graph *g);

/** Records an error on the graph, printf-style, unless one is already held
 * (the first error wins). For code layered on the public API — layers,
 * optimisers, loaders, custom helpers — so its failures read like the
 * library's own. Returns code, which should be negative. */
NB_API int nb_graph_set_error(nb_graph *g, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** Training mode (dropout active) vs inference mode. New graphs train.
 * This and nb_graph_set_checking do nothing on a NULL graph. */
NB_API void nb_graph_set_training(nb_graph *g, bool training);
/** Whether the graph is in training mode (false for NULL). */
NB_API bool nb_graph_training(const nb_graph *g);

/** Checking mode: forward reports the first node, in forward order, whose
 * value holds a NaN or infinity (leaves included: a NaN fed in an input or
 * held by a parameter is reported there), and backward the first node, in
 * backward order, whose gradient does (NB_ERR_NONFINITE), with its op and
 * its inputs' names. */
NB_API void nb_graph_set_checking(nb_graph *g, bool checking);

/** Seeds the graph's random number generator (xoshiro256**), used by dropout
 * and by initialisers. Seeding makes every random draw reproducible. The
 * RNG calls given a NULL graph do nothing and draw NaN (uniform, normal)
 * or 0 (u64, below). */
NB_API void nb_graph_seed(nb_graph *g, uint64_t seed);
/** Uniform in [0, 1). */
NB_API double nb_rng_uniform(nb_graph *g);
/** Standard normal. */
NB_API double nb_rng_normal(nb_graph *g);

/** 64 uniformly random bits. */
NB_API uint64_t nb_rng_u64(nb_graph *g);

/** Uniform integer in [0, n), without modulo bias; 0 if n <= 0. */
NB_API int64_t nb_rng_below(nb_graph *g, int64_t n);
/** The generator's state as 4 words, to save and restore a run exactly
 * (zeros for a NULL graph; nothing for a NULL state). */
NB_API void nb_rng_get_state(const nb_graph *g, uint64_t state[4]);
/** Restores a state read with nb_rng_get_state. Returns NB_OK, or NB_ERR_ARG
 * (recorded on the graph, the state unchanged) for a NULL state or the
 * all-zero state, which is no state of the generator: it would draw 0
 * forever. */
NB_API int nb_rng_set_state(nb_graph *g, const uint64_t state[4]);

/** Number of nodes in the graph (0 for NULL). */
NB_API int64_t nb_graph_node_count(const nb_graph *g);

/** The node with id `id` (0 <= id < nb_graph_node_count), or NULL. Ids are
 * given in creation order, which is a topological order; walking them is
 * how layered code finds, say, every parameter. */
NB_API nb_node *nb_graph_node(const nb_graph *g, int64_t id);

/** The first node whose name is `name`, or NULL. */
NB_API nb_node *nb_graph_find(const nb_graph *g, const char *name);

/** Takes back every node created since the graph held `count` nodes (a
 * count read earlier with nb_graph_node_count), newest first: their values,
 * gradients and scratch are freed, their names free again, and their ids
 * go to the next nodes made. It is how a builder that fails halfway, such
 * as a layer whose op rejects its arguments after the layer made its
 * parameters, leaves the graph as it found it; the error already recorded
 * stays. Pointers to the nodes taken back become invalid: nothing may
 * still hold them (an optimizer made since, a grad-ready hook's own list,
 * the caller's variables). Returns NB_OK, or NB_ERR_ARG for a count
 * outside [0, nb_graph_node_count], or NB_ERR_STATE while a trace is
 * recording (it may hold the nodes), recorded on the graph unless it
 * already holds an error. */
NB_API int nb_graph_rollback(nb_graph *g, int64_t count);
/** @} */

/** @name Leaf nodes */
/** @{ */
/** An input, fed before each run with nb_feed. Any extent may be
 * NB_DYNAMIC: shape rules then see the extent last fed (1 before the first
 * feed), and every node is re-sized when a feed changes it. An op whose
 * attributes fix an extent (a reshape to explicit sizes, a slice counted
 * from the start) fails at the forward whose feed it cannot follow, with
 * a message naming it and both shapes. */
NB_API nb_node *nb_input(nb_graph *g, const char *name, nb_dtype dtype, int rank,
                  const int64_t *shape);
/** A trainable parameter, zero-filled; write its value with nb_node_value. */
NB_API nb_node *nb_param(nb_graph *g, const char *name, nb_dtype dtype, int rank,
                  const int64_t *shape);
/** A constant, zero-filled; write its value with nb_node_value. */
NB_API nb_node *nb_constant(nb_graph *g, const char *name, nb_dtype dtype, int rank,
                     const int64_t *shape);
/** A state tensor, zero-filled: a value that ops update as a side effect
 * of forward (batch norm's running statistics) and that is never trained.
 * It gets no gradient, optimisers given "every parameter" skip it, and
 * nb_save_params / nb_load_params and checkpoints save and load it with
 * the parameters under its name (PyTorch's "<layer>.running_mean" and
 * "<layer>.running_var" for batch norm). Write its initial value with
 * nb_node_value. nb_gradcheck restores every state tensor before each of
 * its evaluations, so checking a graph leaves its state as one forward
 * would. */
NB_API nb_node *nb_state(nb_graph *g, const char *name, nb_dtype dtype,
                         int rank, const int64_t *shape);
/** A rank-0 constant holding value; name may be NULL, as for any node
 * (it then reads "constant#<id>"). */
NB_API nb_node *nb_scalar(nb_graph *g, const char *name, nb_dtype dtype,
                          double value);

/** Freezes (false) or unfreezes (true) a parameter. A frozen parameter gets
 * no gradient and is not touched by backward. Changing it changes the plan,
 * so run forward again before the next backward. Returns NB_OK or an
 * error. */
NB_API int nb_param_set_trainable(nb_graph *g, nb_node *param, bool trainable);
/** Asks for the gradient of an input (used by nb_gradcheck and by users who
 * want d loss / d input). */
NB_API int nb_input_set_requires_grad(nb_graph *g, nb_node *input, bool requires);

/** Copies `data` (of the input's dtype, row-major, with the given shape)
 * into the input. The shape must match the declared one, except that
 * dynamic extents (NB_DYNAMIC) take the fed ones. */
NB_API int nb_feed(nb_graph *g, nb_node *input, int rank, const int64_t *shape,
            const void *data);
/** nb_feed for an input of fixed shape: `data` (of the input's dtype)
 * holds the declared shape. An input with a dynamic extent needs nb_feed,
 * which says the shape. */
NB_API int nb_feed_data(nb_graph *g, nb_node *input, const void *data);
/** nb_feed from doubles whatever the input's dtype: each element is
 * converted (rounded to nearest for an f32 input). */
NB_API int nb_feed_f64(nb_graph *g, nb_node *input, int rank,
                       const int64_t *shape, const double *data);
/** nb_feed from floats whatever the input's dtype (an f64 input gets them
 * exactly). */
NB_API int nb_feed_f32(nb_graph *g, nb_node *input, int rank,
                       const int64_t *shape, const float *data);
/** nb_feed without the copy: checks the shape as nb_feed does, sizes the
 * input for it and returns the input's data buffer (of the input's dtype,
 * row-major), which the caller fills before the next forward. For filling
 * an input in place, say gathering a shuffled batch straight into it. NULL
 * on error (recorded on the graph), with the input as it was. */
NB_API void *nb_feed_buffer(nb_graph *g, nb_node *input, int rank,
                     const int64_t *shape);
/** @} */

/** What a node is. */
typedef enum nb_node_kind {
    NB_NODE_INPUT,    /**< fed per run (nb_input) */
    NB_NODE_PARAM,    /**< a parameter, trainable or frozen (nb_param) */
    NB_NODE_CONSTANT, /**< a constant (nb_constant, nb_scalar) */
    NB_NODE_OP,       /**< the result of an op */
    NB_NODE_STATE     /**< state kept between runs but never trained
                           (nb_state): batch norm's running statistics */
} nb_node_kind;

/** @name Node inspection
 * Given a NULL node these answer with an empty value instead of crashing:
 * NB_NODE_OP, NULL graph, id -1, NULL names, no inputs, not trainable, NULL
 * value and gradient; nb_node_set_name does nothing. */
/** @{ */
/** The node's kind. */
NB_API nb_node_kind nb_node_get_kind(const nb_node *n);
/** The graph the node belongs to. */
NB_API nb_graph *nb_node_graph(const nb_node *n);
/** The node's id: its position in creation order (see nb_graph_node). */
NB_API int64_t nb_node_id(const nb_node *n);
/** Name given at creation or with nb_node_set_name; op nodes default to
 * `"<op>#<id>"`. */
NB_API const char *nb_node_name(const nb_node *n);
/** Renames the node (the name is copied). */
NB_API void nb_node_set_name(nb_node *n, const char *name);
/** The op's name ("input", "param", "constant" for leaves). */
NB_API const char *nb_node_op_name(const nb_node *n);
/** Number of inputs (0 for leaves). */
NB_API int nb_node_input_count(const nb_node *n);
/** Input `i` of the node, or NULL if i is out of range. */
NB_API nb_node *nb_node_input(const nb_node *n, int i);
/** True for a parameter that is not frozen. */
NB_API bool nb_node_is_trainable(const nb_node *n);
/** The node's value: after forward for op nodes; writable for parameters
 * and constants. Its shape is known from construction (batch 1 stands in
 * for a dynamic batch until the first feed). The tensor and its data
 * pointer stay valid until the graph is freed, except that feeding a larger
 * batch than ever before moves the data of the nodes it reaches. */
NB_API nb_tensor *nb_node_value(nb_node *n);
/** The node's gradient from the latest backward, or NULL if that backward
 * gave it none (not on a path from a trainable parameter or grad-requiring
 * input to the output). Its shape is the one it was computed at. */
NB_API nb_tensor *nb_node_grad(nb_node *n);

/** A trainable parameter's value and current gradient in one look-up, for
 * loops that visit every parameter at every step (an optimiser): what
 * nb_node_value, nb_node_grad and the tensor accessors would answer. */
typedef struct nb_param_view {
    void *value;         /**< the value's data */
    void *grad;          /**< the gradient's data */
    int64_t size;        /**< the value's element count */
    int64_t grad_size;   /**< the gradient's element count */
    nb_dtype dtype;      /**< the value's element type */
    nb_dtype grad_dtype; /**< the gradient's element type */
    int rank;            /**< the value's rank */
} nb_param_view;

/** Fills *v and returns true when n is a trainable parameter that the
 * latest backward gave a gradient (nb_node_is_trainable(n) and
 * nb_node_grad(n) != NULL); returns false, leaving *v alone, otherwise. */
NB_API bool nb_node_param_view(nb_node *n, nb_param_view *v);
/** @} */

/** @name Running */
/** @{ */
/** Evaluates exactly the nodes `target` depends on, in topological order. */
NB_API int nb_forward(nb_graph *g, nb_node *target);
/** @} */

/** Backward options. */
enum {
    /** Add this call's gradients to those already held instead of zeroing
     * them first (gradient accumulation over micro-batches). */
    NB_BACKWARD_ACCUMULATE = 1
};

/** @name Running */
/** @{ */
/** Backward from a scalar loss (seed d loss / d loss = 1). Call nb_forward
 * on the same node first. */
NB_API int nb_backward(nb_graph *g, nb_node *loss);
/** Backward from any node with a seed gradient of the node's shape and
 * dtype; flags is 0 or NB_BACKWARD_ACCUMULATE (any other bit is an
 * NB_ERR_ARG error). A NULL seed means 1. */
NB_API int nb_backward_ex(nb_graph *g, nb_node *output, const nb_tensor *seed,
                   unsigned flags);
/** @} */

/** A gradient-ready hook (see nb_graph_set_grad_ready): `leaf` is a
 * trainable parameter or an input that asks for a gradient, whose gradient
 * (nb_node_grad) backward has just finished. */
typedef void (*nb_grad_ready_fn)(void *user, nb_node *leaf);

/** @name Running */
/** @{ */
/** Sets the graph's gradient-ready hook, or removes it (fn NULL). While it
 * is set, every backward calls fn(user, leaf) once for each leaf of the
 * pass that gets a gradient (trainable parameters, grad-requiring inputs),
 * as soon as the leaf's gradient is final: right after the backward of its
 * last consumer in backward order, when every message to it has been added
 * (with NB_BACKWARD_ACCUMULATE, the sum including this pass's). The calls
 * come in an order fixed by the graph: the reverse of the forward order of
 * those last consumers, the leaves of one consumer in its input order; a
 * leaf that is the output itself comes last. So a reducer may start
 * sending a parameter's gradient while backward goes on with the rest.
 *
 * The hook runs on the thread that called backward, between two ops'
 * backward calls. It may read any node's value and the gradients it has
 * been handed, but must not change the graph or any gradient (no new
 * nodes, feeds, forward or backward; no writes to a gradient before
 * backward returns). A pass that fails (an op error, checking mode's
 * report of a non-finite gradient, which checks leaves after the pass)
 * stops calling it: the leaves not yet reported get no call for that pass.
 * The list of calls is worked out once per order, so the hook adds no
 * allocation to a steady training step. Returns NB_OK, or NB_ERR_ARG for a
 * NULL graph. */
NB_API int nb_graph_set_grad_ready(nb_graph *g, nb_grad_ready_fn fn,
                                   void *user);
/** @} */


#ifdef __cplusplus
}
#endif
#endif
