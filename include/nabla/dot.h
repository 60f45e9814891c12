/** @file
 * Drawing graphs: Graphviz DOT export.
 *
 * nb_graph_write_dot writes a graph, or only the nodes a target depends
 * on, as a DOT digraph: one box or ellipse per node, labelled with its name,
 * op, shape and dtype, one edge per input slot (x * x has two edges from x).
 * Render it with Graphviz, e.g. `dot -Tsvg graph.dot -o graph.svg`.
 *
 * Node kinds are told apart by shape and colour:
 * ```text
 *   input                 blue box
 *   trainable parameter   orange box, bold outline
 *   frozen parameter      grey box, dashed outline
 *   constant              white rounded box
 *   op                    yellow ellipse (its doc line is the tooltip)
 * ```
 * The target (or a trace's output) has a double outline. Edges carry the
 * input slot ("in 0", "in 1") where an op has several inputs. The layout
 * runs bottom to top (inputs below, the loss on top) unless
 * NB_DOT_LEFT_RIGHT is given.
 *
 * nb_trace_write_dot draws the nodes of a trace and writes on each edge the
 * backward message that travelled along it (red), so fan-out shows as two
 * labelled edges into one node whose gradient is their sum. Values and
 * gradients then come from the trace's snapshot.
 *
 * Names are escaped for DOT (double quotes, backslashes, newlines), so any
 * name is safe.
 */
#ifndef NABLA_DOT_H
#define NABLA_DOT_H

#include <stdio.h>

#include "graph.h"
#include "trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Flags of nb_graph_write_dot and nb_trace_write_dot, or-ed together. */
enum {
    NB_DOT_VALUES = 1u << 0,    /**< each node's value, summarised */
    NB_DOT_GRADS = 1u << 1,     /**< each node's gradient, summarised */
    NB_DOT_LEFT_RIGHT = 1u << 2 /**< lay out left to right */
};

/** Tensors with at most this many elements are written in full; larger ones
 * as shape, first three entries and L2 norm (see nb_tensor_summary_ex).
 * Labels print numbers with 4 significant digits. */
#define NB_DOT_FULL_MAX 4

/** Writes the nodes `target` depends on (every node of g if target is
 * NULL) to f. Gradients (NB_DOT_GRADS) are those of the latest backward
 * (nb_node_grad). Returns NB_OK, or NB_ERR_ARG (NULL graph or file, a node
 * of another graph, a flag bit not listed above), NB_ERR_NOMEM, NB_ERR_STATE (writing failed), with the
 * message on the graph. */
NB_API int nb_graph_write_dot(nb_graph *g, const nb_node *target, FILE *f,
                       unsigned flags);

/** Writes the traced nodes with the backward messages on the edges; flags
 * as for nb_graph_write_dot, values and gradients from the trace. Returns NB_OK,
 * NB_ERR_ARG (NULL argument, an empty trace or an unknown flag bit), or NB_ERR_STATE (writing
 * failed). */
NB_API int nb_trace_write_dot(const nb_trace *t, FILE *f, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif
