/** @file
 * Seeing backprop: a trace of one forward and backward pass.
 *
 * Backward is message passing. Every node v receives one message from each
 * consumer c that uses it (one per input slot: x*x sends two), sums them
 * into its delta (error signal)
 *
 *     delta_v = d loss / d v = sum over consumers c of  m(c -> v),
 *
 * and sends one message m(v -> u) = delta_v * d v / d u (the op's
 * vector-Jacobian product) to each input u that needs a gradient. The
 * output receives the seed, d loss / d loss = 1. A trace records all of it
 * for one pass: each node's forward value, every message it received (and
 * from whom), their sum, and every message it sent.
 *
 *     nb_trace *t = nb_trace_run(g, loss);    // forward + backward, traced
 *     nb_trace_print(t, stdout, 0);
 *     nb_trace_free(t);
 *
 * Tracing costs nothing while off. While on, backward runs each op's
 * backward into a zeroed buffer per input slot (the message), then adds
 * that buffer into the input's gradient: the gradients a traced pass
 * gives are the sums of the recorded messages and agree with an untraced
 * pass up to rounding (an op that fuses its accumulation, such as a GEMM
 * with beta = 1, rounds once where the traced pass rounds twice).
 *
 * A trace refers to its graph's nodes: read and free it before freeing the
 * graph. Tensors a trace returns are its own copies and stay valid until
 * nb_trace_free. One graph holds at most one recording trace at a time.
 */
#ifndef NABLA_TRACE_H
#define NABLA_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "graph.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A recorded forward and backward pass (opaque). */
typedef struct nb_trace nb_trace;

/** @name Recording */
/** @{ */

/** Runs nb_forward and nb_backward on a scalar `loss` with tracing on, and
 * returns the finished trace, or NULL on error (message on the graph). */
NB_API nb_trace *nb_trace_run(nb_graph *g, nb_node *loss);

/** Starts recording: the backward passes that run until nb_trace_end (any
 * nb_backward or nb_backward_ex) are traced, and the trace keeps the last
 * one. Returns NULL on error (another trace is recording, no memory). */
NB_API nb_trace *nb_trace_begin(nb_graph *g);
/** Stops recording and snapshots the values and gradients of the nodes the
 * traced backward's output depends on. Call it right after the backward.
 * Returns NB_OK, or NB_ERR_STATE if t is not recording (its graph was
 * freed, or it was ended already), NB_ERR_NOMEM. With
 * NB_BACKWARD_ACCUMULATE, leaves' gradients include earlier passes and so
 * exceed the sum of this pass's messages. */
NB_API int nb_trace_end(nb_trace *t);
/** Frees the trace; one still recording stops (without a snapshot). NULL is
 * a no-op. */
NB_API void nb_trace_free(nb_trace *t);
/** @} */

/** @name Reading
 * Entries are the nodes the output depends on, in forward (topological)
 * order, indexed from 0 to nb_trace_count - 1. Out-of-range arguments give
 * NULL, 0 or -1. */
/** @{ */

/** The node backward started from (the loss). */
NB_API nb_node *nb_trace_output(const nb_trace *t);
/** Number of entries. */
NB_API int64_t nb_trace_count(const nb_trace *t);
/** The node of an entry. */
NB_API nb_node *nb_trace_node(const nb_trace *t, int64_t entry);
/** The entry of node n, or -1 if n is not in the trace. */
NB_API int64_t nb_trace_find(const nb_trace *t, const nb_node *n);
/** The node's forward value. */
NB_API const nb_tensor *nb_trace_value(const nb_trace *t, int64_t entry);
/** The node's gradient (its delta, the sum of the messages it received), or
 * NULL if backward gave it none (nothing trainable upstream). */
NB_API const nb_tensor *nb_trace_grad(const nb_trace *t, int64_t entry);

/** Number of messages the node received. Messages received are ordered by
 * sender (forward order), then input slot. The output's first message is
 * the seed, whose sender is NULL. */
NB_API int nb_trace_in_count(const nb_trace *t, int64_t entry);
/** The node that sent received message k (NULL for the seed). */
NB_API nb_node *nb_trace_in_sender(const nb_trace *t, int64_t entry, int k);
/** The sender's input slot this node fills (-1 for the seed). */
NB_API int nb_trace_in_slot(const nb_trace *t, int64_t entry, int k);
/** Received message k, shaped like the node's gradient. */
NB_API const nb_tensor *nb_trace_in_message(const nb_trace *t, int64_t entry, int k);

/** The message the node sent to its input `slot` (0 <= slot <
 * nb_node_input_count), or NULL if it sent none: that input needs no
 * gradient, or the op has no backward (its gradient is zero everywhere). */
NB_API const nb_tensor *nb_trace_out_message(const nb_trace *t, int64_t entry,
                                      int slot);
/** @} */

/** The default `full_max`: tensors of up to 16 elements are printed whole. */
#define NB_TRACE_FULL_MAX 16

/** @name Printing
 * Tensors with at most `full_max` elements are printed in full (0 means
 * NB_TRACE_FULL_MAX); larger ones as their shape, first entries and L2
 * norm. The text has one block per entry in forward order: a header
 * (id, name, op and inputs, shape, dtype), the op's rule (its doc line),
 * the value, each message received, the delta (with "sum of N messages"
 * when there are several) and each message sent:
 *
 * ```text
 *   backward trace of 'Lreg': 11 nodes, forward order
 *   #0 x: input [] f64
 *     value = 1.5
 *   #2 w: param [] f64, trainable
 *     value = -0.8
 *     message from 'mul#4' (input 0) = -0.219151
 *     message from 'R' (input 0) = -0.08
 *     delta = sum of 2 messages = -0.299151
 *   #4 mul#4 = mul(w, x): [] f64
 *     rule: y = a * b; da = dy * b, db = dy * a (broadcast dims summed)
 *     value = -1.2
 *     message from 'z' (input 0) = -0.1461
 *     delta = -0.1461
 *     message to 'w' (input 0) = -0.219151
 *     message to 'x' (input 1): none (needs no gradient)
 *   ...
 *   #10 Lreg = add(L, scale#9): [] f64
 *     rule: y = a + b; da = dy, db = dy (broadcast dims summed)
 *     value = 0.284725
 *     seed = 1
 *     delta = 1
 *     ...
 * ```
 *
 * A message that could not be sent although the input needs a gradient
 * reads "none (zero gradient)" (ops such as step have no backward).
 * Numbers are printed with 6 significant digits (%.6g). */
/** @{ */
/** Writes the text to f; NB_OK, NB_ERR_ARG, or NB_ERR_STATE if writing
 * failed. */
NB_API int nb_trace_print(const nb_trace *t, FILE *f, int full_max);
/** Writes the text into buf (always terminated when buflen > 0) and returns
 * the length of the whole text, like snprintf: a result >= buflen means
 * it was cut short. A NULL buf only measures; a NULL trace gives 0. */
NB_API size_t nb_trace_format(const nb_trace *t, int full_max, char *buf,
                       size_t buflen);
/** The text in a string from nb_alloc (release it with nb_free, so the
 * allocator hook sees both), or NULL. */
NB_API char *nb_trace_to_string(const nb_trace *t, int full_max);

/** One tensor as the printer renders it: "1.5", "[1, 2]", "[[1, 2], [3,
 * 4]]", or for more than full_max elements
 * "[1000,1000]: 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, ... (L2 norm 577.4)".
 * Same buffer contract as nb_trace_format. */
NB_API size_t nb_tensor_summary(const nb_tensor *t, int full_max, char *buf,
                         size_t buflen);
/** nb_tensor_summary with `head` leading entries in a summary (0 means 6)
 * and `digits` significant digits (0 means 6): nb_tensor_summary is
 * nb_tensor_summary_ex(t, full_max, 6, 6, buf, buflen). */
NB_API size_t nb_tensor_summary_ex(const nb_tensor *t, int full_max, int head,
                            int digits, char *buf, size_t buflen);
/** @} */

#ifdef __cplusplus
}
#endif
#endif
