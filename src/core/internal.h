/* Internal definitions shared by the library's layers. Never installed. */
#ifndef NABLA_INTERNAL_H
#define NABLA_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nabla/graph.h"
#include "nabla/op.h"
#include "nabla/tensor.h"

#define NB_ALIGN 64
/* The most bytes of attributes an op may ask nb_apply to copy. */
#define NB_MAX_ATTR_BYTES 65536

struct nb_tensor {
    nb_dtype dtype;
    int rank;
    int64_t shape[NB_MAX_RANK];
    int64_t size;
    void *data;
    size_t capacity;  /* bytes available at data */
    bool heap_owned;  /* data came from nb_alloc (else from a graph arena) */
};

struct nb_node {
    nb_graph *graph;
    const nb_op *op; /* NULL for leaves */
    nb_node_kind kind;
    int64_t id;
    int n_inputs;
    nb_node **inputs;
    void *attrs;
    const char *name;
    nb_tensor value;
    nb_tensor grad;
    void *scratch;
    size_t scratch_bytes, scratch_capacity;
    size_t workspace_bytes; /* transient need, from infer */
    uint64_t shape_epoch;     /* graph shape epoch this node was inferred at */
    uint64_t evaluated_version; /* graph version at the last forward; 0 never */
    uint64_t evaluated_feed;    /* graph feed epoch at the last forward */
    uint64_t grad_epoch;        /* graph grad epoch of the gradient held */
    bool trainable;     /* parameters */
    bool requires_grad; /* inputs */
    bool needs_grad;    /* set by the planner for nodes of the cached order */
    bool fed;           /* inputs: fed at least once */
    bool dynamic_batch; /* inputs: shape[0] set by each feed */
};

typedef struct nb_arena_chunk nb_arena_chunk;

struct nb_graph {
    nb_node **node_blocks;  /* nodes live in blocks that never move */
    int64_t n_blocks, cap_blocks;
    int64_t n_nodes;
    nb_arena_chunk *arena;  /* names, attributes, input lists, tiny buffers */

    int status;
    char error[512];
    bool training, checking;
    uint64_t rng[4];

    uint64_t version;     /* bumped by anything that changes the plan */
    uint64_t shape_epoch; /* bumped when an input is fed a new shape */
    uint64_t feed_epoch;  /* bumped by every feed: values are stale */
    uint64_t grad_epoch;  /* bumped by every non-accumulating backward */

    /* The cached topological order for order_target. */
    nb_node *order_target;
    uint64_t order_version;
    nb_node **order;
    int64_t order_len, order_capacity;
    uint8_t *marks; /* one per node id, for the planner */
    int64_t marks_capacity;

    /* The transient workspace shared by all nodes (nb_op_call.workspace). */
    void *workspace;
    size_t workspace_capacity;

    /* Gradient pointers handed to backward, sized to the largest arity. */
    nb_tensor **grad_args;
    const nb_tensor **value_args;
    int args_capacity;

    struct nb_trace *trace; /* recording backward messages, or NULL */
};

/* ---- memory (alloc.c) ---- */
void *nb_alloc(size_t size);          /* 64-byte aligned, NULL on failure */
void *nb_alloc_zeroed(size_t size);
void nb_free(void *ptr);
/* Bump allocation that lives as long as the graph, 16-byte aligned (or 64
 * when align64). */
void *nb_arena_alloc(nb_graph *g, size_t size, bool align64);
char *nb_arena_strdup(nb_graph *g, const char *s);
void nb_arena_free_all(nb_graph *g);

/* ---- tensors (tensor.c) ---- */
bool nb_shape_valid(int rank, const int64_t *shape);
int64_t nb_shape_size(int rank, const int64_t *shape);
void nb_tensor_set_shape(nb_tensor *t, nb_dtype dtype, int rank,
                         const int64_t *shape);
/* Makes room for t->size elements, keeping no old contents. A graph (may be
 * NULL) lends its arena for tiny buffers. Returns 0 or NB_ERR_NOMEM. */
int nb_tensor_reserve(nb_tensor *t, nb_graph *g);
void nb_tensor_release(nb_tensor *t);
bool nb_same_shape(const nb_tensor *a, const nb_tensor *b);
static inline size_t nb_tensor_bytes(const nb_tensor *t)
{
    return (size_t)t->size * nb_dtype_size(t->dtype);
}

/* ---- errors (graph.c) ---- */
int nb_set_error(nb_graph *g, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int nb_set_error_v(nb_graph *g, int code, const char *fmt, va_list ap);

/* ---- graph internals ---- */
nb_node *nb_graph_node_at(const nb_graph *g, int64_t id);
/* Runs an op node's shape rule on its current input shapes and updates its
 * value tensor's shape and scratch size (no data allocation). */
int nb_infer_node(nb_graph *g, nb_node *n);
nb_op_call nb_make_call(nb_graph *g, nb_node *n);
/* Computes (or reuses) the topological order of the nodes `target` needs,
 * in g->order[0..order_len), and each one's needs_grad flag. */
int nb_plan(nb_graph *g, nb_node *target);

/* ---- tracing (graph/trace.c) ---- */
/* Runs an op node's backward while g->trace records: each message goes to
 * a fresh buffer that the trace keeps, then into the input's gradient. */
int nb_trace_backward_node(nb_graph *g, nb_node *n, nb_op_call *call);
/* Stops a trace recording on its graph (the graph is being freed). */
void nb_trace_detach(struct nb_trace *t);

/* The built-in op table (ops/registry.c). */
#define NB_OP(name) extern const nb_op nb_op_##name;
#include "ops/ops.def"
#undef NB_OP

#endif
