/* The graph and its nodes: creation, leaves, feeding, errors, accessors. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

/* ---- errors (the public setter; the internal ones are in core/status.c) ---- */

int nb_graph_set_error(nb_graph *g, int code, const char *fmt, ...)
{
    if (!g)
        return code;
    va_list ap;
    va_start(ap, fmt);
    nb_set_error_v(g, code < 0 ? code : NB_ERR_ARG, fmt ? fmt : "error", ap);
    va_end(ap);
    return code;
}

const char *nb_graph_error(const nb_graph *g)
{
    return g && g->status != NB_OK ? g->error : NULL;
}

int nb_graph_status(const nb_graph *g)
{
    return g ? g->status : NB_ERR_ARG;
}

void nb_graph_clear_error(nb_graph *g)
{
    if (g) {
        g->status = NB_OK;
        g->error[0] = '\0';
    }
}

/* ---- graph ---- */

nb_graph *nb_graph_new(void)
{
    nb_graph *g = nb_alloc_zeroed(sizeof *g);
    if (!g)
        return NULL;
    g->training = true;
    g->version = 1;
    g->shape_epoch = 1;
    g->value_epoch = 1;
    g->grad_epoch = 1;
    nb_graph_seed(g, 0x6e61626c61ull); /* "nabla": reproducible by default */
    return g;
}

void nb_graph_free(nb_graph *g)
{
    if (!g)
        return;
    nb_parallel_cycle_end(&g->cycle);
    if (g->recorder)
        g->recorder->detach(g->recorder);
    for (int64_t id = 0; id < g->n_nodes; id++) {
        nb_node *n = nb_graph_node_at(g, id);
        nb_tensor_release(&n->value);
        nb_tensor_release(&n->grad);
        struct nb_node_cold *cold = nb_node_cold_get(n);
        if (cold)
            nb_free(cold->scratch);
    }
    for (int64_t b = 0; b < g->n_blocks; b++) {
        nb_free(g->blocks[b]->cold);
        if (!g->blocks[b]->in_slab)
            nb_free(g->blocks[b]);
    }
    nb_free(g->blocks);
    for (int64_t s = 0; s < g->n_slabs; s++)
        nb_free(g->slabs[s]);
    nb_free(g->slabs);
    nb_free(g->views);
    nb_free(g->order);
    nb_free(g->marks);
    nb_free(g->fast.steps);
    nb_free(g->fast.in);
    nb_free(g->fast.grad);
    nb_free(g->fast.fresh);
    nb_free(g->fast.leaves);
    nb_free(g->fast.sends);
    nb_free(g->fast.clear);
    nb_free(g->fast.stamp);
    nb_free(g->ready.leaf);
    nb_free(g->ready.after);
    nb_free(g->grad_args);
    nb_free(g->value_args);
    nb_free(g->workspace);
    nb_arena_free_all(g);
    nb_free(g);
}

void nb_graph_set_training(nb_graph *g, bool training)
{
    if (g)
        g->training = training;
}
bool nb_graph_training(const nb_graph *g) { return g && g->training; }
void nb_graph_set_checking(nb_graph *g, bool checking)
{
    if (g)
        g->checking = checking;
}
int64_t nb_graph_node_count(const nb_graph *g) { return g ? g->n_nodes : 0; }

nb_node *nb_graph_node(const nb_graph *g, int64_t id)
{
    if (!g || id < 0 || id >= g->n_nodes)
        return NULL;
    return nb_graph_node_at(g, id);
}

/* Whether `name` is the node's name. An unnamed node's "<op>#<id>" is
 * matched piecewise rather than made: nb_node_name would store it, and a
 * lookup that walks a million unnamed nodes must not allocate a million
 * names. */
static bool name_is(const nb_node *n, const char *name)
{
    struct nb_node_cold *cold = nb_node_cold_get(n);
    if (cold && cold->name)
        return strcmp(cold->name, name) == 0;
    const char *op = nb_node_op_name(n);
    size_t len = strlen(op);
    if (strncmp(name, op, len) != 0 || name[len] != '#')
        return false;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)n->id);
    return strcmp(name + len + 1, id) == 0;
}

nb_node *nb_graph_find(const nb_graph *g, const char *name)
{
    if (!g || !name)
        return NULL;
    for (int64_t id = 0; id < g->n_nodes; id++) {
        nb_node *n = nb_graph_node_at(g, id);
        if (name_is(n, name))
            return n;
    }
    return NULL;
}

int nb_grow_array(void **array, int64_t *capacity, int64_t need, size_t elem)
{
    if (need <= *capacity)
        return NB_OK;
    int64_t cap = *capacity ? *capacity : 64;
    while (cap < need)
        cap *= 2;
    void *fresh = nb_alloc_zeroed((size_t)cap * elem);
    if (!fresh)
        return NB_ERR_NOMEM;
    if (*array)
        memcpy(fresh, *array, (size_t)*capacity * elem);
    nb_free(*array);
    *array = fresh;
    *capacity = cap;
    return NB_OK;
}

nb_epoch nb_epoch_next(nb_graph *g, nb_epoch *counter)
{
    if (*counter == NB_EPOCH_MAX) {
        /* Every stamp of this kind is forgotten: the nodes look stale (or
         * gradient-less) until they are computed again. */
        for (int64_t id = 0; id < g->n_nodes; id++) {
            nb_node *n = nb_graph_node_at(g, id);
            if (counter == &g->shape_epoch)
                n->shape_epoch = 0;
            else if (counter == &g->value_epoch)
                n->evaluated = 0;
            else
                n->grad_epoch = 0;
        }
        *counter = 0;
        if (counter == &g->shape_epoch) {
            /* an old epoch value may come back */
            g->grads_sized = NULL;
            g->fast.ready = false;
        }
    }
    return ++*counter;
}

void nb_values_stale(nb_graph *g)
{
    /* While no node holds the current value epoch, every node is already
     * stale: the counter need not move. Otherwise building a graph node by
     * node (each node a plan change) would wrap it, and sweep every node,
     * once per 65535 nodes. */
    if (g->value_epoch_held) {
        nb_epoch_next(g, &g->value_epoch);
        g->value_epoch_held = false;
    }
}

/* Something changed the plan: cached orders and computed values are stale. */
static void plan_changed(nb_graph *g)
{
    g->version++;
    nb_values_stale(g);
}

struct nb_node_cold *nb_node_cold(nb_node *n)
{
    struct nb_node_cold *cold = nb_node_cold_get(n);
    if (cold)
        return cold;
    struct nb_node_block *b = nb_node_block_of(n);
    if (!b->cold &&
        !(b->cold = nb_alloc_zeroed(NB_NODES_PER_BLOCK * sizeof *b->cold)))
        return NULL;
    cold = nb_arena_alloc_aligned(b->graph, sizeof *cold, 8);
    if (cold) {
        memset(cold, 0, sizeof *cold);
        b->cold[n->id % NB_NODES_PER_BLOCK] = cold;
        n->has_cold = true;
    }
    return cold;
}

/* The zeroed slot of the next node, or NULL (error recorded). The node
 * counts as part of the graph only once commit_node is called, so a
 * constructor that fails after this leaves no node behind: the next one
 * takes the slot over. */
/* Room for node block number g->n_blocks: its own allocation while the
 * graph is small, then the next block of a slab (NB_SLAB_BLOCKS). */
static struct nb_node_block *new_block(nb_graph *g)
{
    const size_t bytes =
        sizeof(struct nb_node_block) + NB_NODES_PER_BLOCK * sizeof(nb_node);
    const size_t stride = (bytes + NB_ALIGN - 1) & ~(size_t)(NB_ALIGN - 1);
    struct nb_node_block *block;
    if (g->n_blocks < NB_SLAB_AFTER) {
        block = nb_alloc(bytes);
        if (block) {
            nb_prefault(block, bytes);
            block->in_slab = false;
        }
        return block;
    }
    if (g->slab_left == 0) {
        if (nb_grow_array((void **)&g->slabs, &g->cap_slabs, g->n_slabs + 1,
                          sizeof *g->slabs) != NB_OK)
            return NULL;
        void *slab = nb_alloc_aligned(NB_SLAB_BLOCKS * stride, NB_HUGE_PAGE);
        if (!slab)
            return NULL;
        nb_advise_huge(slab, NB_SLAB_BLOCKS * stride);
        g->slabs[g->n_slabs++] = slab;
        g->slab_left = NB_SLAB_BLOCKS;
    }
    char *slab = g->slabs[g->n_slabs - 1];
    block = (struct nb_node_block *)(slab + (size_t)(NB_SLAB_BLOCKS -
                                                     g->slab_left) *
                                                stride);
    g->slab_left--;
    nb_prefault(block, bytes);
    block->in_slab = true;
    return block;
}

static nb_node *next_slot(nb_graph *g, const char *what)
{
    int64_t id = g->n_nodes;
    if (id >= NB_MAX_NODES) {
        nb_set_error(g, NB_ERR_NOMEM, "%s: the graph holds the most nodes it "
                                      "can (%d)",
                     what, NB_MAX_NODES);
        return NULL;
    }
    if (id % NB_NODES_PER_BLOCK == 0 && id / NB_NODES_PER_BLOCK == g->n_blocks) {
        if (nb_grow_array((void **)&g->blocks, &g->cap_blocks, g->n_blocks + 1,
                 sizeof *g->blocks) != NB_OK)
            goto nomem;
        struct nb_node_block *block = new_block(g);
        if (!block)
            goto nomem;
        block->graph = g;
        block->cold = NULL;
        g->blocks[g->n_blocks++] = block;
    }
    /* The planner's marks and order are sized with the graph, so that
     * planning never allocates. */
    if (nb_grow_array((void **)&g->marks, &g->marks_capacity, id + 1, 1) != NB_OK ||
        nb_grow_array((void **)&g->order, &g->order_capacity, id + 1,
             sizeof(nb_node *)) != NB_OK)
        goto nomem;
    nb_node *n = nb_graph_node_at(g, id);
    memset(n, 0, sizeof *n);
    nb_tensor_init(&n->value);
    nb_tensor_init(&n->grad);
    n->id = (int32_t)id; /* and has_cold is clear: a cold part that a
                            failed constructor left here is forgotten */
    return n;
nomem:
    nb_set_error(g, NB_ERR_NOMEM, "%s: out of memory", what);
    return NULL;
}

static void commit_node(nb_graph *g)
{
    g->n_nodes++;
    plan_changed(g);
}

int nb_graph_rollback(nb_graph *g, int64_t count)
{
    if (!g)
        return NB_ERR_ARG;
    if (count < 0 || count > g->n_nodes)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "rollback: count %lld is outside [0, %lld], "
                                  "the nodes the graph holds",
                                  (long long)count, (long long)g->n_nodes);
    if (count == g->n_nodes)
        return NB_OK;
    if (g->recorder)
        return nb_graph_set_error(g, NB_ERR_STATE,
                                  "rollback: a trace is recording this graph "
                                  "and may hold the nodes; detach it first");
    for (int64_t id = g->n_nodes - 1; id >= count; id--) {
        nb_node *n = nb_graph_node_at(g, id);
        nb_tensor_release(&n->value); /* a view owns nothing: forgets */
        nb_tensor_release(&n->grad);
        struct nb_node_cold *cold = nb_node_cold_get(n);
        if (cold) {
            nb_free(cold->scratch);
            cold->scratch = NULL;
            cold->scratch_capacity = 0;
            cold->name = NULL; /* the name's bytes stay in the arena */
        }
    }
    while (g->n_views > 0 && g->views[g->n_views - 1]->id >= count)
        g->n_views--;
    /* Caches that may name a node taken back: the version below makes the
     * cached order, the compiled lists and the grad-ready plan stale; these
     * pointers are compared before the version is. */
    if (g->order_target && g->order_target->id >= count)
        g->order_target = NULL;
    if (g->fast.target && g->fast.target->id >= count)
        g->fast.target = NULL;
    if (g->ready.target && g->ready.target->id >= count)
        g->ready.target = NULL;
    g->grads_sized = NULL;
    g->n_nodes = count;
    plan_changed(g);
    return NB_OK;
}

static nb_node *new_leaf(nb_graph *g, nb_node_kind kind, const char *what,
                         const char *name, nb_dtype dtype, int rank,
                         const int64_t *shape, bool allow_dynamic)
{
    if (!g)
        return NULL;
    if (dtype != NB_F32 && dtype != NB_F64) {
        nb_set_error(g, NB_ERR_ARG, "%s '%s': unknown dtype %d", what,
                     name ? name : "?", (int)dtype);
        return NULL;
    }
    int64_t concrete[NB_MAX_RANK] = {0};
    unsigned dynamic = 0; /* bit i: axis i is NB_DYNAMIC */
    if (rank < 0 || rank > NB_MAX_RANK) {
        nb_set_error(g, NB_ERR_ARG, "%s '%s': rank %d is outside 0..%d", what,
                     name ? name : "?", rank, NB_MAX_RANK);
        return NULL;
    }
    if (rank > 0 && !shape) {
        nb_set_error(g, NB_ERR_ARG, "%s '%s': shape is NULL for rank %d", what,
                     name ? name : "?", rank);
        return NULL;
    }
    for (int i = 0; i < rank; i++) {
        concrete[i] = shape[i];
        if (shape[i] == NB_DYNAMIC && allow_dynamic) {
            dynamic |= 1u << i;
            concrete[i] = 1; /* stands in until the first feed */
        }
    }
    if (!nb_shape_valid(rank, concrete)) {
        char buf[128];
        nb_set_error(g, NB_ERR_ARG, "%s '%s': invalid shape %s%s", what,
                     name ? name : "?", nb_shape_str(rank, shape, buf, sizeof buf),
                     allow_dynamic ? " (NB_DYNAMIC marks an extent set by each "
                                     "feed)"
                                   : "");
        return NULL;
    }
    nb_node *n = next_slot(g, what);
    if (!n)
        return NULL;
    n->kind = (uint8_t)kind;
    n->dynamic_batch = dynamic != 0;
    n->shape_epoch = g->shape_epoch;
    /* Leaves always hold a value (an input once fed); the gradient's shape
     * is set by the backward that first needs it. */
    n->holds_value = kind != NB_NODE_INPUT;
    struct nb_node_cold *cold = name || dynamic ? nb_node_cold(n) : NULL;
    if (cold)
        cold->dynamic_axes = (uint8_t)dynamic;
    if (((name || dynamic) && !cold) ||
        (name && !(cold->name = nb_arena_strdup(g, name))) ||
        nb_tensor_set_shape(&n->value, g, dtype, rank, concrete) != NB_OK) {
        nb_set_error(g, NB_ERR_NOMEM, "%s: out of memory", what);
        return NULL;
    }
    if (kind != NB_NODE_INPUT) {
        if (nb_tensor_reserve(&n->value, g) != NB_OK) {
            nb_set_error(g, NB_ERR_NOMEM, "%s: out of memory", what);
            return NULL;
        }
        memset(n->value.data, 0, nb_tensor_bytes(&n->value));
    }
    n->trainable = kind == NB_NODE_PARAM;
    commit_node(g);
    return n;
}

nb_node *nb_input(nb_graph *g, const char *name, nb_dtype dtype, int rank,
                  const int64_t *shape)
{
    return new_leaf(g, NB_NODE_INPUT, "input", name, dtype, rank, shape, true);
}

nb_node *nb_param(nb_graph *g, const char *name, nb_dtype dtype, int rank,
                  const int64_t *shape)
{
    return new_leaf(g, NB_NODE_PARAM, "param", name, dtype, rank, shape, false);
}

nb_node *nb_constant(nb_graph *g, const char *name, nb_dtype dtype, int rank,
                     const int64_t *shape)
{
    return new_leaf(g, NB_NODE_CONSTANT, "constant", name, dtype, rank, shape,
                    false);
}

nb_node *nb_state(nb_graph *g, const char *name, nb_dtype dtype, int rank,
                  const int64_t *shape)
{
    return new_leaf(g, NB_NODE_STATE, "state", name, dtype, rank, shape,
                    false);
}

nb_node *nb_scalar(nb_graph *g, const char *name, nb_dtype dtype, double value)
{
    nb_node *n = new_leaf(g, NB_NODE_CONSTANT, "scalar", name, dtype, 0, NULL,
                          false);
    if (n)
        nb_tensor_set(&n->value, 0, value);
    return n;
}

/* Checks that n is a node of g; records an error naming `what` if not. */
static bool owned(nb_graph *g, const nb_node *n, const char *what)
{
    if (!g)
        return false;
    if (!n) {
        nb_set_error(g, NB_ERR_ARG, "%s: node is NULL", what);
        return false;
    }
    if (nb_node_owner(n) != g) {
        nb_set_error(g, NB_ERR_ARG, "%s: node '%s' belongs to another graph",
                     what, nb_node_name(n));
        return false;
    }
    return true;
}

int nb_param_set_trainable(nb_graph *g, nb_node *param, bool trainable)
{
    if (!owned(g, param, "param_set_trainable"))
        return NB_ERR_ARG;
    if (param->kind != NB_NODE_PARAM)
        return nb_set_error(g, NB_ERR_ARG,
                            "param_set_trainable: '%s' is not a parameter",
                            nb_node_name(param));
    if (param->trainable != trainable) {
        param->trainable = trainable;
        plan_changed(g);
    }
    return NB_OK;
}

int nb_input_set_requires_grad(nb_graph *g, nb_node *input, bool requires)
{
    if (!owned(g, input, "input_set_requires_grad"))
        return NB_ERR_ARG;
    if (input->kind != NB_NODE_INPUT)
        return nb_set_error(g, NB_ERR_ARG,
                            "input_set_requires_grad: '%s' is not an input",
                            nb_node_name(input));
    if (input->requires_grad != requires) {
        input->requires_grad = requires;
        plan_changed(g);
    }
    return NB_OK;
}

/* The axes of an input that each feed sets, as a bit mask. */
static unsigned dynamic_axes(const nb_node *input)
{
    const struct nb_node_cold *cold =
        input->dynamic_batch ? nb_node_cold_get(input) : NULL;
    return cold ? cold->dynamic_axes : 0;
}

/* nb_feed_buffer for an input already known to be owned by g; inlined
 * into the feeds, which check that themselves. */
static inline void *feed_buffer(nb_graph *g, nb_node *input, int rank,
                                const int64_t *shape)
{
    if (input->kind != NB_NODE_INPUT) {
        nb_set_error(g, NB_ERR_ARG, "feed: '%s' is not an input",
                     nb_node_name(input));
        return NULL;
    }
    if (rank > 0 && !shape) {
        nb_set_error(g, NB_ERR_ARG, "feed '%s': shape is NULL",
                     nb_node_name(input));
        return NULL;
    }
    const char *name = "";
    nb_tensor *v = &input->value;
    /* The steady case, the rank and every extent as held (held extents
     * are valid) with room for them: nothing to check, resize or reserve. */
    bool same = rank == v->rank && v->data &&
                nb_tensor_bytes(v) <= nb_tensor_capacity(v);
    for (int i = 0; same && i < rank; i++)
        same = shape[i] == v->shape[i];
    if (same)
        goto fed;
    name = nb_node_name(input);
    unsigned dynamic = dynamic_axes(input);
    bool ok = rank == v->rank && nb_shape_valid(rank, shape), resized = false;
    for (int i = 0; ok && i < rank; i++)
        if (shape[i] != v->shape[i]) {
            ok = dynamic >> i & 1u;
            resized = true;
        }
    if (!ok) {
        char want[128], got[128];
        int64_t declared[NB_MAX_RANK];
        memcpy(declared, v->shape, sizeof declared); /* a full row */
        for (int i = 0; i < v->rank; i++)
            if (dynamic >> i & 1u)
                declared[i] = NB_DYNAMIC;
        nb_set_error(g, NB_ERR_ARG,
                     "feed '%s': shape %s does not match the declared %s "
                     "(-1 marks an extent each feed sets)",
                     name, nb_shape_str(rank, shape, got, sizeof got),
                     nb_shape_str(v->rank, declared, want, sizeof want));
        return NULL;
    }
    if (resized) {
        /* The gradient keeps its shape until backward sizes it anew. */
        if (nb_tensor_set_shape(v, g, (nb_dtype)v->dtype, rank, shape) !=
            NB_OK) {
            nb_set_error(g, NB_ERR_NOMEM, "feed '%s': out of memory", name);
            return NULL;
        }
        input->shape_epoch = nb_epoch_next(g, &g->shape_epoch);
    }
    void *before = v->data;
    if (nb_tensor_reserve(v, g) != NB_OK) {
        nb_set_error(g, NB_ERR_NOMEM, "feed '%s': out of memory", name);
        return NULL;
    }
    if (v->data != before)
        nb_views_follow(g);
fed:
    input->fed = true;
    input->holds_value = true;
    nb_values_stale(g);
    return v->data;
}

void *nb_feed_buffer(nb_graph *g, nb_node *input, int rank,
                     const int64_t *shape)
{
    return owned(g, input, "feed") ? feed_buffer(g, input, rank, shape) : NULL;
}

/* nb_feed of data in `from`, converted element by element to the input's
 * dtype, into an input owned by g. */
static int feed_converted(nb_graph *g, nb_node *input, int rank,
                          const int64_t *shape, const void *data, nb_dtype from)
{
    if (!data)
        return nb_set_error(g, NB_ERR_ARG, "feed '%s': data is NULL",
                            nb_node_name(input));
    void *buffer = feed_buffer(g, input, rank, shape);
    if (!buffer)
        return nb_graph_status(g) != NB_OK ? nb_graph_status(g) : NB_ERR_ARG;
    int64_t n = input->value.size;
    if ((nb_dtype)input->value.dtype == from) {
        memcpy(buffer, data, nb_tensor_bytes(&input->value));
    } else if (from == NB_F64) {
        const double *src = data;
        float *dst = buffer;
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)src[i];
    } else {
        const float *src = data;
        double *dst = buffer;
        for (int64_t i = 0; i < n; i++)
            dst[i] = src[i];
    }
    return NB_OK;
}

int nb_feed(nb_graph *g, nb_node *input, int rank, const int64_t *shape,
            const void *data)
{
    if (!owned(g, input, "feed"))
        return NB_ERR_ARG;
    return feed_converted(g, input, rank, shape, data,
                          (nb_dtype)input->value.dtype);
}

int nb_feed_data(nb_graph *g, nb_node *input, const void *data)
{
    if (!owned(g, input, "feed"))
        return NB_ERR_ARG;
    if (input->dynamic_batch)
        return nb_set_error(g, NB_ERR_ARG,
                            "feed '%s': an extent is dynamic (NB_DYNAMIC), "
                            "so the shape must be given (nb_feed)",
                            nb_node_name(input));
    int64_t shape[NB_MAX_RANK];
    memcpy(shape, input->value.shape, sizeof shape);
    return nb_feed(g, input, input->value.rank, shape, data);
}

int nb_feed_f64(nb_graph *g, nb_node *input, int rank, const int64_t *shape,
                const double *data)
{
    if (!owned(g, input, "feed"))
        return NB_ERR_ARG;
    return feed_converted(g, input, rank, shape, data, NB_F64);
}

int nb_feed_f32(nb_graph *g, nb_node *input, int rank, const int64_t *shape,
                const float *data)
{
    if (!owned(g, input, "feed"))
        return NB_ERR_ARG;
    return feed_converted(g, input, rank, shape, data, NB_F32);
}

/* ---- op nodes ---- */

void nb_make_call(nb_graph *g, nb_node *n, nb_op_call *call)
{
    call->graph = g;
    call->op = n->op;
    call->n_inputs = n->n_inputs;
    const nb_tensor **args = g->value_args;
    nb_node *const *inputs = nb_node_inputs(n);
    for (int i = 0; i < n->n_inputs; i++)
        args[i] = &inputs[i]->value;
    call->in = args;
    call->attrs = nb_node_attrs(n);
}

static int aim_view(nb_graph *g, nb_node *n);

int nb_infer_node(nb_graph *g, nb_node *n)
{
    nb_op_call call;
    memset(&call, 0, sizeof call);
    nb_make_call(g, n, &call);
    /* Not a dtype: a shape rule that forgets to set it is caught. */
    call.out_dtype = (nb_dtype)-1;
    int rc = n->op->infer(&call);
    if (rc != NB_OK)
        /* A custom op may fail without calling nb_op_fail: still say which
         * op it was, so the message does not blame a later call. */
        return nb_set_error(g, rc < 0 ? rc : NB_ERR_ARG,
                            "%s: the shape rule failed (returned %d)",
                            n->op->name, rc);
    if (call.out_dtype != NB_F32 && call.out_dtype != NB_F64)
        return nb_set_error(g, NB_ERR_ARG,
                            "%s: the shape rule gave an unknown dtype %d",
                            n->op->name, (int)call.out_dtype);
    if (!nb_shape_valid(call.out_rank, call.out_shape)) {
        char buf[160];
        return nb_set_error(
            g, NB_ERR_ARG, "%s: the shape rule gave an invalid shape %s",
            n->op->name,
            nb_shape_str(call.out_rank < 0 || call.out_rank > NB_MAX_RANK
                             ? 0
                             : call.out_rank,
                         call.out_shape, buf, sizeof buf));
    }
    struct nb_node_cold *cold = call.scratch_bytes || call.workspace_bytes
                                    ? nb_node_cold(n)
                                    : nb_node_cold_get(n);
    if ((call.scratch_bytes || call.workspace_bytes) && !cold)
        return nb_set_error(g, NB_ERR_NOMEM, "%s: out of memory", n->op->name);
    if (nb_tensor_set_shape(&n->value, g, call.out_dtype, call.out_rank,
                            call.out_shape) != NB_OK)
        return nb_set_error(g, NB_ERR_NOMEM, "%s: out of memory", n->op->name);
    if (cold) {
        cold->scratch_bytes = call.scratch_bytes;
        cold->workspace_bytes = call.workspace_bytes;
    }
    if ((n->op->flags & NB_OP_VIEW) && (rc = aim_view(g, n)) != NB_OK)
        return rc;
    n->shape_epoch = g->shape_epoch;
    return NB_OK;
}

/* A view's value is its input's buffer under the view's own shape, so the
 * two must hold the same bytes: checked here, at each shape rule, because
 * a new batch could break a custom op's rule where the build did not. */
static int aim_view(nb_graph *g, nb_node *n)
{
    const nb_tensor *src = &nb_node_inputs(n)[0]->value;
    nb_tensor *v = &n->value;
    if (v->dtype != src->dtype || v->size != src->size) {
        char sv[128], ss[128];
        return nb_set_error(
            g, NB_ERR_ARG,
            "%s: a view (NB_OP_VIEW) keeps its input's dtype and element "
            "count, but input '%s' is %s %s and the shape rule gave %s %s",
            n->op->name, nb_node_name(nb_node_inputs(n)[0]),
            nb_dtype_name((nb_dtype)src->dtype),
            nb_shape_str(src->rank, src->shape, ss, sizeof ss),
            nb_dtype_name((nb_dtype)v->dtype),
            nb_shape_str(v->rank, v->shape, sv, sizeof sv));
    }
    nb_tensor_release(v); /* owns nothing: release only forgets */
    v->data = src->data;
    return NB_OK;
}

void nb_views_follow(nb_graph *g)
{
    for (int64_t i = 0; i < g->n_views; i++) {
        nb_node *n = g->views[i];
        n->value.data = nb_node_inputs(n)[0]->value.data;
    }
}

int nb_op_fail(nb_op_call *call, const char *fmt, ...)
{
    char msg[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "failed", ap);
    va_end(ap);
    if (!call)
        return NB_ERR_ARG;
    const char *op = call->op && call->op->name ? call->op->name : "op";
    return nb_set_error(call->graph, NB_ERR_ARG, "%s: %s", op, msg);
}

bool nb_op_training(const nb_op_call *call)
{
    return call && call->graph && call->graph->training;
}

/* Re-runs the shape rule of every op node that the inputs depend on and
 * that was inferred before the latest change of a fed batch size. Only
 * shapes change here; buffers grow at the next forward. */
static int refresh_stale_inputs(nb_graph *g, int n_inputs,
                                nb_node *const *inputs)
{
    int64_t top = -1;
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i]->kind == NB_NODE_OP &&
            inputs[i]->shape_epoch != g->shape_epoch && inputs[i]->id > top)
            top = inputs[i]->id;
    if (top < 0)
        return NB_OK;
    /* Mark the ancestors as the planner does (ids are a topological order);
     * the cached order lives elsewhere, so reusing the marks is safe. */
    memset(g->marks, 0, (size_t)top + 1);
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i]->id <= top)
            g->marks[inputs[i]->id] = 1;
    for (int64_t id = top; id >= 0; id--) {
        if (!g->marks[id])
            continue;
        nb_node *n = nb_graph_node_at(g, id);
        nb_node *const *in = nb_node_inputs(n);
        for (int i = 0; i < n->n_inputs; i++)
            g->marks[in[i]->id] = 1;
    }
    for (int64_t id = 0; id <= top; id++) {
        nb_node *n = nb_graph_node_at(g, id);
        if (g->marks[id] && n->kind == NB_NODE_OP &&
            n->shape_epoch != g->shape_epoch) {
            int rc = nb_infer_node(g, n);
            if (rc != NB_OK)
                return rc;
        }
    }
    return NB_OK;
}

/* Lists a new view node, so that it follows its input's buffer. */
static int add_view(nb_graph *g, nb_node *n)
{
    if (g->n_views == g->views_capacity) {
        int64_t cap = g->views_capacity ? 2 * g->views_capacity : 8;
        nb_node **grown =
            nb_realloc(g->views, (size_t)g->views_capacity * sizeof *grown,
                       (size_t)cap * sizeof *grown);
        if (!grown)
            return nb_set_error(g, NB_ERR_NOMEM, "%s: out of memory",
                                n->op->name);
        g->views = grown;
        g->views_capacity = cap;
    }
    g->views[g->n_views++] = n;
    return NB_OK;
}

nb_node *nb_apply(nb_graph *g, const nb_op *op, int n_inputs,
                  nb_node *const *inputs, const void *attrs)
{
    if (!g)
        return NULL;
    if (!op || !op->name || !op->infer || !op->forward)
        return nb_set_error(g, NB_ERR_ARG,
                            "apply: op table is NULL or lacks name/infer/forward"),
               NULL;
    if (op->struct_size < NB_OP_MIN_SIZE || op->struct_size > sizeof(nb_op)) {
        nb_set_error(g, NB_ERR_ARG,
                     "%s: the op table's struct_size is %zu; set it to "
                     "sizeof(nb_op) (this library accepts %zu to %zu: a "
                     "larger table was compiled against a newer nabla)",
                     op->name, op->struct_size, (size_t)NB_OP_MIN_SIZE,
                     sizeof(nb_op));
        return NULL;
    }
    if (n_inputs > 0 && !inputs) {
        nb_set_error(g, NB_ERR_ARG, "%s: the list of %d inputs is NULL",
                     op->name, n_inputs);
        return NULL;
    }
    if (n_inputs < 0 || n_inputs < op->min_inputs ||
        (op->max_inputs >= 0 && n_inputs > op->max_inputs)) {
        char range[64];
        if (op->max_inputs < 0)
            snprintf(range, sizeof range, "%d or more", op->min_inputs);
        else if (op->max_inputs != op->min_inputs)
            snprintf(range, sizeof range, "%d to %d", op->min_inputs,
                     op->max_inputs);
        else
            snprintf(range, sizeof range, "%d", op->min_inputs);
        nb_set_error(g, NB_ERR_ARG, "%s: takes %s inputs, given %d", op->name,
                     range, n_inputs);
        return NULL;
    }
    if (op->attr_size > NB_MAX_ATTR_BYTES) {
        nb_set_error(g, NB_ERR_ARG,
                     "%s: attr_size %zu is larger than the %d bytes an op's "
                     "attributes may take",
                     op->name, op->attr_size, NB_MAX_ATTR_BYTES);
        return NULL;
    }
    for (int i = 0; i < n_inputs; i++) {
        if (!inputs[i]) {
            /* An earlier constructor failed and said why; do not bury its
             * message under a second one. */
            if (g->status == NB_OK)
                nb_set_error(g, NB_ERR_ARG, "%s: input %d is NULL", op->name, i);
            return NULL;
        }
        if (nb_node_owner(inputs[i]) != g) {
            nb_set_error(g, NB_ERR_ARG,
                         "%s: input %d ('%s') belongs to another graph",
                         op->name, i, nb_node_name(inputs[i]));
            return NULL;
        }
    }
    /* Past this point the executor reads every field of the table: a table
     * from an older header is completed with zeros, once per node (only
     * such old custom ops pay for it). */
    if (op->struct_size < sizeof(nb_op)) {
        nb_op *whole = nb_arena_alloc(g, sizeof *whole, false);
        if (!whole) {
            nb_set_error(g, NB_ERR_NOMEM, "%s: out of memory", op->name);
            return NULL;
        }
        memset(whole, 0, sizeof *whole);
        memcpy(whole, op, op->struct_size);
        whole->struct_size = sizeof *whole;
        op = whole;
    }
    if ((op->flags & NB_OP_VIEW) && n_inputs < 1) {
        nb_set_error(g, NB_ERR_ARG,
                     "%s: a view (NB_OP_VIEW) needs an input to view", op->name);
        return NULL;
    }
    if (!(op->flags & NB_OP_MIXED_DTYPES))
        for (int i = 1; i < n_inputs; i++)
            if (inputs[i]->value.dtype != inputs[0]->value.dtype) {
                const nb_tensor *a = &inputs[i]->value, *b = &inputs[0]->value;
                char sa[128], sb[128];
                nb_set_error(g, NB_ERR_ARG,
                             "%s: input %d ('%s') is %s %s but input 0 ('%s') "
                             "is %s %s (an op takes one dtype unless it sets "
                             "NB_OP_MIXED_DTYPES)",
                             op->name, i, nb_node_name(inputs[i]),
                             nb_dtype_name((nb_dtype)a->dtype),
                             nb_shape_str(a->rank, a->shape, sa, sizeof sa),
                             nb_node_name(inputs[0]),
                             nb_dtype_name((nb_dtype)b->dtype),
                             nb_shape_str(b->rank, b->shape, sb, sizeof sb));
                return NULL;
            }
    if (n_inputs > g->args_capacity) {
        int cap = n_inputs < 8 ? 8 : n_inputs;
        /* the fresh flags of the gradient slots follow the slots */
        nb_tensor **ga =
            nb_alloc_zeroed((size_t)cap * (sizeof *ga + sizeof(bool)));
        const nb_tensor **va = nb_alloc_zeroed((size_t)cap * sizeof *va);
        if (!ga || !va) {
            nb_free(ga);
            nb_free(va);
            nb_set_error(g, NB_ERR_NOMEM, "%s: out of memory", op->name);
            return NULL;
        }
        nb_free(g->grad_args);
        nb_free(g->value_args);
        g->grad_args = ga;
        g->grad_fresh = (bool *)(ga + cap);
        g->value_args = va;
        g->args_capacity = cap;
    }
    /* A feed may have changed a dynamic batch since the inputs' shapes were
     * last inferred: bring them up to date, or the new node would be sized
     * for the old batch. */
    bool clean = g->status == NB_OK;
    if (refresh_stale_inputs(g, n_inputs, inputs) != NB_OK) {
        if (clean) {
            /* The message names the older node that no longer fits; say
             * also which call ran into it. */
            char inner[sizeof g->error];
            memcpy(inner, g->error, sizeof inner);
            snprintf(g->error, sizeof g->error,
                     "%.40s: an input no longer fits the batch last fed: %.400s",
                     op->name, inner);
        }
        return NULL;
    }

    nb_node *n = next_slot(g, op->name);
    if (!n)
        return NULL;
    n->kind = NB_NODE_OP;
    n->op = op;
    n->n_inputs = n_inputs;
    if (n_inputs == 1 && !op->attr_size) {
        n->in.one = inputs[0];
        n->input_inline = true;
    } else if (n_inputs || op->attr_size) {
        /* The node keeps its own copy of the input list and, right after
         * it, a zero-filled copy of the attributes; the shape rule sees
         * that same copy, so infer and forward agree. One block saves the
         * node a pointer. */
        size_t list = op->attr_size ? nb_attrs_offset(n_inputs)
                                    : (size_t)n_inputs * sizeof(nb_node *);
        nb_node **copy = nb_arena_alloc_aligned(
            g, list + op->attr_size, op->attr_size ? 16 : sizeof(nb_node *));
        if (!copy) {
            nb_set_error(g, NB_ERR_NOMEM, "%s: out of memory", op->name);
            return NULL;
        }
        for (int i = 0; i < n_inputs; i++)
            copy[i] = inputs[i];
        if (op->attr_size && attrs)
            memcpy((char *)copy + list, attrs, op->attr_size);
        else if (op->attr_size)
            memset((char *)copy + list, 0, op->attr_size);
        n->in.list = copy;
    }
    /* The shape rule runs before the node is committed, so a rejected op
     * leaves no node in the graph. */
    if (nb_infer_node(g, n) != NB_OK)
        return NULL;
    if ((op->flags & NB_OP_VIEW) && add_view(g, n) != NB_OK)
        return NULL;
    commit_node(g);
    return n;
}

/* ---- accessors ---- */

nb_node_kind nb_node_get_kind(const nb_node *n)
{
    return n ? (nb_node_kind)n->kind : NB_NODE_OP;
}
nb_graph *nb_node_graph(const nb_node *n) { return n ? nb_node_owner(n) : NULL; }
int64_t nb_node_id(const nb_node *n) { return n ? n->id : -1; }
int nb_node_input_count(const nb_node *n) { return n ? n->n_inputs : 0; }
bool nb_node_is_trainable(const nb_node *n)
{
    return n && n->kind == NB_NODE_PARAM && n->trainable;
}

nb_node *nb_node_input(const nb_node *n, int i)
{
    return n && i >= 0 && i < n->n_inputs ? nb_node_inputs(n)[i] : NULL;
}

const char *nb_node_op_name(const nb_node *n)
{
    if (!n)
        return NULL;
    switch (n->kind) {
    case NB_NODE_INPUT: return "input";
    case NB_NODE_PARAM: return "param";
    case NB_NODE_CONSTANT: return "constant";
    case NB_NODE_STATE: return "state";
    default: return n->op->name;
    }
}

const char *nb_node_name(const nb_node *n)
{
    if (!n)
        return NULL;
    struct nb_node_cold *cold = nb_node_cold_get(n);
    if (cold && cold->name)
        return cold->name;
    /* Unnamed nodes get "<op>#<id>", made on demand in the node's graph. */
    char buf[96];
    snprintf(buf, sizeof buf, "%s#%lld", nb_node_op_name(n), (long long)n->id);
    if (!(cold = nb_node_cold((nb_node *)n)))
        return "?";
    cold->name = nb_arena_strdup(nb_node_owner(n), buf);
    return cold->name ? cold->name : "?";
}

void nb_node_set_name(nb_node *n, const char *name)
{
    struct nb_node_cold *cold = n && name ? nb_node_cold(n) : NULL;
    if (cold)
        cold->name = nb_arena_strdup(nb_node_owner(n), name);
}

nb_tensor *nb_node_value(nb_node *n)
{
    return n ? &n->value : NULL;
}

nb_tensor *nb_node_grad(nb_node *n)
{
    /* Only a gradient the latest backward computed (or accumulated into):
     * a node off that backward's path has none, whatever it held before. */
    return n && n->grad.data && n->grad_epoch == nb_node_owner(n)->grad_epoch
               ? &n->grad
               : NULL;
}

bool nb_node_param_view(nb_node *n, nb_param_view *v)
{
    /* nb_node_is_trainable and nb_node_grad, read in place. */
    if (!v || !n || n->kind != NB_NODE_PARAM || !n->trainable ||
        !n->grad.data || n->grad_epoch != nb_node_owner(n)->grad_epoch)
        return false;
    v->value = n->value.data;
    v->grad = n->grad.data;
    v->size = n->value.size;
    v->grad_size = n->grad.size;
    v->dtype = (nb_dtype)n->value.dtype;
    v->grad_dtype = (nb_dtype)n->grad.dtype;
    v->rank = n->value.rank;
    return true;
}
