/* Internal definitions shared by the library's layers. Never installed. */
#ifndef NABLA_INTERNAL_H
#define NABLA_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parallel_internal.h"
#include "nabla/graph.h"
#include "nabla/op.h"
#include "nabla/ops.h"
#include "nabla/tensor.h"

#define NB_ALIGN 64
/* The most bytes of attributes an op may ask nb_apply to copy. */
#define NB_MAX_ATTR_BYTES 65536

/* A tensor header is kept small because every node holds two (value and
 * gradient) and a graph may hold millions of scalar nodes. The shape lives
 * outside the header: a rank-0 tensor points at a shared row of zeros, any
 * other at a row of NB_MAX_RANK extents (zero past the rank), so code that
 * copies a whole row of extents stays within bounds. Most tensors of a
 * graph have one of a few shapes, so a graph's tensors first share rows
 * (nb_graph.shape_rows, read-only while shared); a tensor whose shape later
 * changes takes a row of its own, once, and rewrites it in place from then
 * on, so alternating batch sizes never grow the arena. */
struct nb_tensor {
    void *data;
    int64_t *shape;   /* NB_MAX_RANK readable extents; see above */
    int64_t size;
    /* Room at data, read through nb_tensor_capacity: bytes for an arena
     * buffer (at most NB_ALIGN), 64-byte units for a heap one, so 32 bits
     * reach 256 GiB. */
    uint32_t capacity;
    uint8_t dtype;          /* an nb_dtype */
    uint8_t rank;
    bool heap_owned : 1;    /* data came from nb_alloc (else a graph arena) */
    bool shape_heap : 1;    /* the shape row came from nb_alloc (free-standing) */
    bool shape_shared : 1;  /* the row is one of the graph's shared rows */
};

/* What only some nodes need (a name, an op's scratch), kept out of the node
 * in a side table of its block (nb_node_block.cold) and made on first use,
 * so that the common node does not pay for it. */
struct nb_node_cold {
    const char *name;
    /* Inputs: bit i set when axis i was declared NB_DYNAMIC (its extent
     * set by each feed); nb_node.dynamic_batch says whether any is. */
    uint8_t dynamic_axes;
    void *scratch;
    size_t scratch_bytes, scratch_capacity;
    size_t workspace_bytes; /* transient need, from infer */
};

/* Epoch stamps are 16 bits wide to keep nodes small. When a graph counter
 * would wrap, every node's stamps of that kind are reset (nb_epoch_next),
 * so an old stamp can never be mistaken for a current one; that sweep
 * comes once in 65535 bumps, and the value epoch only moves when some node
 * holds it (nb_values_stale), so building nodes does not move it. */
typedef uint16_t nb_epoch;
#define NB_EPOCH_MAX UINT16_MAX

/* A graph may hold millions of scalar nodes, so every field here is paid
 * per node (96 bytes in all; see "Node memory" in docs/design.md): what a
 * node can find elsewhere (its graph, its cold part) is found through its
 * block, and a single input needs no list of its own. */
struct nb_node {
    const nb_op *op; /* NULL for leaves */
    /* The inputs, read through nb_node_inputs. The one input of an op
     * without attributes (activations, most unary ops) is kept in the
     * node; any other list lives in the arena with the op's attributes
     * after it (see nb_node_attrs). */
    union {
        nb_node *one;   /* when input_inline */
        nb_node **list; /* otherwise; NULL without inputs or attributes */
    } in;
    nb_tensor value;
    nb_tensor grad;
    int32_t id;              /* a graph holds fewer than NB_MAX_NODES nodes */
    int n_inputs;
    nb_epoch shape_epoch;    /* graph shape epoch this node was inferred at */
    nb_epoch evaluated;      /* graph value epoch at the last forward; 0 never */
    nb_epoch grad_epoch;     /* graph grad epoch of the gradient held */
    uint8_t kind;            /* an nb_node_kind */
    bool trainable : 1;      /* parameters */
    bool requires_grad : 1;  /* inputs */
    bool needs_grad : 1;     /* set by the planner for nodes of the cached order */
    bool fed : 1;            /* inputs: fed at least once */
    bool dynamic_batch : 1;  /* inputs: some axis is set by each feed (the
                                batch, or any declared NB_DYNAMIC: the cold
                                part's dynamic_axes says which) */
    bool holds_value : 1;    /* leaves: the value is always usable */
    bool input_inline : 1;   /* in.one holds the only input */
    bool has_cold : 1;       /* nb_node_cold_get finds a cold part */
};

/* A field more per node is a choice, not an accident (on 64-bit targets). */
_Static_assert(sizeof(void *) != 8 || sizeof(struct nb_node) == 96,
               "struct nb_node grew: update docs/design.md and test_chain");

/* Node ids fit 32 bits: the nodes would take 192 GiB before the limit. */
#define NB_MAX_NODES INT32_MAX

/* Nodes live in blocks that never move, so a node pointer stays valid as
 * the graph grows. The block starts with what its nodes share, found from
 * any node by its id: node n is nodes[n->id % NB_NODES_PER_BLOCK]. */
#define NB_NODES_PER_BLOCK 4096

struct nb_node_block {
    nb_graph *graph;
    /* NB_NODES_PER_BLOCK cold parts, indexed like nodes; NULL until a node
     * of the block needs one (most blocks of a big graph never do). */
    struct nb_node_cold **cold;
    bool in_slab; /* part of one of g->slabs, freed with it */
    nb_node nodes[];
};

/* A big graph's node blocks come NB_SLAB_BLOCKS at a time from one
 * allocation (a slab, 6 MiB, aligned to 2 MiB where the allocator allows),
 * whose whole 2 MiB pages the kernel is asked to back with huge pages: a
 * million-node graph then faults in 2 MiB at a time instead of 4 KiB (on
 * a virtual machine each fault costs microseconds), and its forward and
 * backward miss the TLB less. A block is faulted in when it is handed out,
 * so the slab's unused blocks cost address space, not memory (up to one
 * huge page). The first NB_SLAB_AFTER blocks (131,072 nodes) are
 * allocated one by one, so a small graph reserves nothing ahead. */
#define NB_SLAB_AFTER 32
#define NB_SLAB_BLOCKS 16
#define NB_HUGE_PAGE ((size_t)2 << 20)

/* The block holding n (a node of a block, not a copy). */
static inline struct nb_node_block *nb_node_block_of(const nb_node *n)
{
    const nb_node *first = n - (uint32_t)n->id % NB_NODES_PER_BLOCK;
    return (struct nb_node_block *)((char *)first -
                                    offsetof(struct nb_node_block, nodes));
}

/* The graph that owns n. */
static inline nb_graph *nb_node_owner(const nb_node *n)
{
    return nb_node_block_of(n)->graph;
}

/* The node's cold part, or NULL when it has none. The flag spares the
 * executor a look-up per node (most have none). */
static inline struct nb_node_cold *nb_node_cold_get(const nb_node *n)
{
    return n->has_cold
               ? nb_node_block_of(n)->cold[(uint32_t)n->id % NB_NODES_PER_BLOCK]
               : NULL;
}

/* The input list: n->n_inputs entries. */
static inline nb_node *const *nb_node_inputs(const nb_node *n)
{
    return n->input_inline ? &n->in.one : n->in.list;
}

/* Where the attributes start after an input list of n entries: aligned as
 * the arena aligns any block. */
static inline size_t nb_attrs_offset(int n_inputs)
{
    return ((size_t)n_inputs * sizeof(nb_node *) + 15) & ~(size_t)15;
}

/* The op's attribute block, or NULL when the op takes none. An op with
 * attributes always keeps its inputs in the arena block before them. */
static inline void *nb_node_attrs(const nb_node *n)
{
    return n->op && n->op->attr_size
               ? (char *)n->in.list + nb_attrs_offset(n->n_inputs)
               : NULL;
}

typedef struct nb_arena_chunk nb_arena_chunk;

/* The fields of nb_op_call from graph to attrs, in its layout, so that a
 * compiled step's are copied into the call record as one block instead of
 * field by field (see struct nb_fast_step). */
struct nb_call_head {
    nb_graph *graph;
    const struct nb_op *op;
    int n_inputs;
    const nb_tensor *const *in;
    nb_tensor *out;
    const nb_tensor *out_grad;
    nb_tensor *const *in_grad;
    const void *attrs;
};
#define NB_CALL_HEAD_SAME(f)                                                   \
    _Static_assert(offsetof(struct nb_call_head, f) == offsetof(nb_op_call, f), \
                   "nb_call_head must match nb_op_call: " #f)
NB_CALL_HEAD_SAME(graph);
NB_CALL_HEAD_SAME(op);
NB_CALL_HEAD_SAME(n_inputs);
NB_CALL_HEAD_SAME(in);
NB_CALL_HEAD_SAME(out);
NB_CALL_HEAD_SAME(out_grad);
NB_CALL_HEAD_SAME(in_grad);
NB_CALL_HEAD_SAME(attrs);
_Static_assert(offsetof(nb_op_call, attrs) + sizeof(void *) ==
                   sizeof(struct nb_call_head),
               "nb_call_head must end at nb_op_call.attrs");

/* One op node of a compiled order (see struct nb_fast). Its pointers lead
 * to tensor headers, which live in their nodes and never move, and into
 * nb_fast's flat arrays, so no reallocation of a buffer invalidates them. */
struct nb_fast_step {
    /* Backward's call record from graph to attrs: the inputs' values and
     * gradients (NULL where none is needed) point into nb_fast's arrays.
     * Forward copies it too, and clears the two gradient fields. */
    struct nb_call_head head;
    /* Where the node's scratch pointer is kept (its cold part, which never
     * moves, or a NULL of the executor's): read at each call, because the
     * buffer moves when a new shape needs a bigger one. */
    void *const *scratch;
    /* The call's in_grad_fresh (true for the inputs written fresh), NULL
     * for an op without NB_OP_FRESH_GRADS. */
    bool *fresh;
    /* The op's forward and backward, or its one-element form's where every
     * tensor of the call holds one element (see fast_plan_messages). */
    int (*forward)(nb_op_call *call);
    int (*backward)(nb_op_call *call);
    nb_node *node;
    /* The gradients this call writes fresh are nb_fast.stamp[stamp_from]
     * up to the next sending step's stamp_from (see fast_plan_messages). */
    int32_t stamp_from;
    bool runs; /* its value is not empty: forward calls the op */
};

/* The steady-state form of one cached order, for graphs of at most
 * NB_FAST_MAX_OPS op nodes (see "Small graphs" in docs/design.md): what
 * nb_make_call, prepare and give_grad work out for every node at every
 * step, worked out once. Compiled for (target, version); runnable while
 * `ready` and the shape epoch is the one a full forward prepared every
 * buffer at. The lists of the plan (fast_plan_messages in exec.c) are
 * filled at that epoch: `sends`, the steps whose backward runs, in the
 * pass's order; `clear`, the gradients a pass zeroes before its first
 * call (the first message into them is added, or none reaches them);
 * `stamp`, the gradients that some call writes fresh, by the order of
 * those calls. */
struct nb_fast {
    nb_node *target;
    uint64_t version;
    bool ready;
    nb_epoch shape_epoch;
    struct nb_fast_step *steps;
    int64_t n_steps, cap_steps;
    const nb_tensor **in;
    nb_tensor **grad;
    bool *fresh;
    int64_t cap_in, cap_grad, cap_fresh;
    nb_node **leaves; /* the order's leaves that need a gradient */
    int64_t n_leaves, cap_leaves;
    const struct nb_fast_step **sends;
    nb_node **clear, **stamp;
    int64_t n_sends, n_clear, n_stamp, cap_sends, cap_clear, cap_stamp;
};
#define NB_FAST_MAX_OPS 4096

/* The gradient-ready hook and its calls for one order: leaf[j] is reported
 * right after the backward of after[j] (NULL: after the whole pass), and a
 * pass walks j from n - 1 down to 0 (see ready_compile in exec.c). */
struct nb_ready {
    nb_grad_ready_fn fn;
    void *user;
    nb_node *target; /* compiled for (target, version); NULL: not compiled */
    uint64_t version;
    nb_node **leaf, **after;
    int64_t n, cap_leaf, cap_after;
};

struct nb_graph {
    struct nb_node_block **blocks;
    int64_t n_blocks, cap_blocks;
    void **slabs; /* see NB_SLAB_BLOCKS */
    int64_t n_slabs, cap_slabs;
    int slab_left; /* blocks of the newest slab not handed out yet */
    int64_t n_nodes;
    nb_arena_chunk *arena;  /* names, attributes, input lists, tiny buffers */

    int status;
    char error[512];
    bool training, checking;
    uint64_t rng[4];

    uint64_t version;     /* bumped by anything that changes the plan */
    nb_epoch shape_epoch; /* bumped when an input is fed a new shape */
    nb_epoch value_epoch; /* bumped by feeds and plan changes: values
                             computed before are stale (nb_values_stale) */
    nb_epoch grad_epoch;  /* bumped by every non-accumulating backward */
    bool value_epoch_held; /* some node was evaluated at value_epoch */

    /* The cached topological order for order_target. */
    nb_node *order_target;
    uint64_t order_version;
    nb_node **order;
    int64_t order_len, order_capacity;
    uint8_t *marks; /* one per node id, for the planner */
    /* The node whose order's gradients backward last sized and reserved at
     * shape epoch grads_shape_epoch, or NULL: while both still hold, a
     * non-accumulating backward skips that pass over the order (see
     * "Backward" in docs/design.md). Cleared by a new order and by the
     * shape epoch's wrap-around. */
    nb_node *grads_sized;
    nb_epoch grads_shape_epoch;
    int64_t marks_capacity;

    /* The transient workspace shared by all nodes (nb_op_call.workspace). */
    void *workspace;
    size_t workspace_capacity;

    /* Gradient pointers handed to backward, sized to the largest arity. */
    nb_tensor **grad_args;
    /* Beside grad_args, in the same block: during an op's backward call,
     * grad_fresh[i] says in_grad[i] holds no message yet (and undefined
     * contents), so the op writes its message instead of adding it. Only
     * ops flagged NB_OP_FRESH_GRADS are ever told so (through
     * nb_op_call.in_grad_fresh). */
    bool *grad_fresh;
    const nb_tensor **value_args;
    int args_capacity;

    struct nb_recorder *recorder; /* recording backward passes, or NULL */

    /* The nodes of NB_OP_VIEW ops, in creation (so topological) order: their
     * values point into their input's buffer and follow it when it moves. */
    nb_node **views;
    int64_t n_views, views_capacity;

    struct nb_fast fast; /* the cached order compiled for steady steps */
    struct nb_ready ready; /* nb_graph_set_grad_ready */
    nb_parallel_cycle cycle; /* its steps, one thread against the team */

    /* Shared shape rows, looked up by a hash of the shape (see nb_tensor). */
    int64_t *shape_rows[16];
};

/* ---- memory (alloc.c) ---- */
/* nb_alloc, nb_alloc_zeroed and nb_free are public: nabla/base.h. */
/* Memory about to be written in full: faults its pages in with one system
 * call (Linux's MADV_POPULATE_WRITE) instead of one trap per 4 KiB page,
 * which costs microseconds each on a virtual machine (a million-node graph
 * took 30,000 such traps while it was built). Below 64 KiB, on other
 * systems and on kernels before 5.14, it does nothing. nb_alloc_zeroed,
 * nb_realloc and the arena's big chunks call it. */
void nb_prefault(void *p, size_t bytes);
/* Asks the kernel to back the whole 2 MiB pages of [p, p + bytes) with
 * huge pages as they fault in (Linux's MADV_HUGEPAGE; advice only). */
void nb_advise_huge(void *p, size_t bytes);
/* nb_alloc aligned to `align` (a power of two, at least NB_ALIGN) by the
 * default allocator; an allocator hook (nb_set_allocator) is asked for
 * NB_ALIGN as by every other call, so the result may be aligned less. */
void *nb_alloc_aligned(size_t size, size_t align);
/* Bump allocation that lives as long as the graph, 16-byte aligned (or 64
 * when align64). */
void *nb_arena_alloc(nb_graph *g, size_t size, bool align64);
/* Arena block aligned to `align` (a power of two up to 64). */
void *nb_arena_alloc_aligned(nb_graph *g, size_t size, size_t align);
char *nb_arena_strdup(nb_graph *g, const char *s);
void nb_arena_free_all(nb_graph *g);

/* ---- tensors (tensor.c) ---- */
bool nb_shape_valid(int rank, const int64_t *shape);
int64_t nb_shape_size(int rank, const int64_t *shape);
/* Sets dtype and shape. A tensor of rank > 0 gets a shape row of its own
 * the first time, from g's arena (or the heap when g is NULL). Returns 0 or
 * NB_ERR_NOMEM (the tensor is then unchanged). */
int nb_tensor_set_shape(nb_tensor *t, nb_graph *g, nb_dtype dtype, int rank,
                        const int64_t *shape);
/* The header of a tensor with no shape row yet: rank 0, no data. */
void nb_tensor_init(nb_tensor *t);
/* Makes room for t->size elements, keeping no old contents. A graph (may be
 * NULL) lends its arena for tiny buffers. Returns 0 or NB_ERR_NOMEM. */
int nb_tensor_reserve(nb_tensor *t, nb_graph *g);
void nb_tensor_release(nb_tensor *t);
bool nb_same_shape(const nb_tensor *a, const nb_tensor *b);
static inline size_t nb_tensor_bytes(const nb_tensor *t)
{
    return (size_t)t->size * (t->dtype == NB_F64 ? 8u : 4u); /* inlined */
}
static inline size_t nb_tensor_capacity(const nb_tensor *t)
{
    return t->heap_owned ? (size_t)t->capacity * NB_ALIGN : t->capacity;
}

/* ---- errors (status.c) ---- */
int nb_set_error(nb_graph *g, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int nb_set_error_v(nb_graph *g, int code, const char *fmt, va_list ap);

/* ---- graph internals ---- */
/* The node of an id below g->n_nodes (or of the slot next_slot handed out). */
static inline nb_node *nb_graph_node_at(const nb_graph *g, int64_t id)
{
    uint64_t i = (uint64_t)id; /* not negative: a shift and a mask */
    return &g->blocks[i / NB_NODES_PER_BLOCK]->nodes[i % NB_NODES_PER_BLOCK];
}

/* Grows an array of `elem`-byte entries to hold at least `need`, keeping
 * its contents (zeros after them); unchanged on NB_ERR_NOMEM. */
int nb_grow_array(void **array, int64_t *capacity, int64_t need, size_t elem);
/* Runs an op node's shape rule on its current input shapes and updates its
 * value tensor's shape and scratch size (no data allocation). */
int nb_infer_node(nb_graph *g, nb_node *n);
/* Points every view's value at its input's buffer again: called after a
 * buffer moved, so that no view is left pointing at freed memory. */
void nb_views_follow(nb_graph *g);
/* Fills the fields of `call` shared by infer, forward and backward. */
void nb_make_call(nb_graph *g, nb_node *n, nb_op_call *call);
/* A call record of graph g with every other field 0 (NULL), as a memset
 * of the whole record would leave it. Field by field because gcc makes
 * that memset (168 bytes) a rep stos, whose start-up alone costs more than
 * a tiny op's arithmetic, where these stores are a dozen vector moves; a
 * forward or backward pass starts from one. The assertion fails when the
 * record grows, so that a new field is cleared here too. */
static inline void nb_call_blank(nb_op_call *c, nb_graph *g)
{
    _Static_assert(sizeof(nb_op_call) ==
                       offsetof(nb_op_call, in_grad_fresh) + sizeof(void *),
                   "nb_call_blank must clear every field of nb_op_call");
    c->graph = g;
    c->op = NULL;
    c->n_inputs = 0;
    c->in = NULL;
    c->out = NULL;
    c->out_grad = NULL;
    c->in_grad = NULL;
    c->attrs = NULL;
    c->scratch = NULL;
    c->workspace = NULL;
    c->out_dtype = (nb_dtype)0;
    c->out_rank = 0;
    for (int i = 0; i < NB_MAX_RANK; i++)
        c->out_shape[i] = 0;
    c->scratch_bytes = 0;
    c->workspace_bytes = 0;
    c->in_grad_fresh = NULL;
}
/* Bumps one of the graph's epoch counters; on wrap-around resets the stamps
 * of every node so none matches a reused value. */
nb_epoch nb_epoch_next(nb_graph *g, nb_epoch *counter);
/* Makes every computed value stale (a feed, a plan change). */
void nb_values_stale(nb_graph *g);
/* The node's cold part, created on first use; NULL when out of memory. */
struct nb_node_cold *nb_node_cold(nb_node *n);
/* Computes (or reuses) the topological order of the nodes `target` needs,
 * in g->order[0..order_len), and each one's needs_grad flag. */
int nb_plan(nb_graph *g, nb_node *target);

/* ---- recording backward passes ----
 * A recorder (diag/trace.c's trace is the one there is) installs itself
 * as g->recorder; while it is there the executor hands it every op node's
 * backward call instead of making the call, and the graph tells it when
 * the graph goes away. The engine knows a recorder by these two entries
 * alone, so it links nothing of the diagnostics above it. */
struct nb_recorder {
    /* Runs n's backward as the executor would have (the same call record)
     * and keeps what it wants of the messages; returns the op's code. */
    int (*backward_node)(struct nb_recorder *r, nb_graph *g, nb_node *n,
                         nb_op_call *call);
    /* The graph is being freed: stop recording, keep what was recorded. */
    void (*detach)(struct nb_recorder *r);
};

/* The built-in op table (ops/registry.c). */
#define NB_OP(name) extern const nb_op nb_op_##name;
#include "ops/ops.def"
#undef NB_OP

/* The one-element form of an elementwise op: its own formula on tensors
 * of a single element, without the general forward's and backward's
 * loops, broadcasting plan and dtype switch, and with the same bits. The
 * compiled lists of small graphs call it where every tensor of a call
 * holds one element (scalar graphs), where the general functions cost
 * several times the arithmetic. Index 0 is f32, 1 f64; a NULL backward
 * stands for an op without one. */
typedef struct nb_one_element {
    const nb_op *op;
    int (*forward[2])(nb_op_call *call);
    int (*backward[2])(nb_op_call *call);
} nb_one_element;
/* op's one-element form, or NULL (ops/registry.c). */
const nb_one_element *nb_one_element_of(const nb_op *op);

#endif
