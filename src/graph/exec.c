/* The executor: topological order, forward evaluation, backward message
 * passing.
 *
 * A node can only refer to nodes created before it, so node ids are already
 * a topological order of the whole graph. The order for one target is the
 * subset of ids the target depends on: mark the target, then walk ids
 * downwards marking the inputs of every marked node. That is iterative by
 * construction (a chain of a million nodes needs no stack) and O(target id).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

int nb_plan(nb_graph *g, nb_node *target)
{
    if (g->order_target == target && g->order_version == g->version)
        return NB_OK;
    int64_t top = target->id;
    uint8_t *marks = g->marks;
    memset(marks, 0, (size_t)top + 1);
    marks[top] = 1;
    for (int64_t id = top; id >= 0; id--) {
        if (!marks[id])
            continue;
        nb_node *n = nb_graph_node_at(g, id);
        nb_node *const *in = nb_node_inputs(n);
        for (int i = 0; i < n->n_inputs; i++)
            marks[in[i]->id] = 1;
    }
    int64_t len = 0;
    for (int64_t id = 0; id <= top; id++) {
        if (!marks[id])
            continue;
        nb_node *n = nb_graph_node_at(g, id);
        /* A node needs a gradient when a trainable parameter or a
         * grad-requiring input lies upstream of it. */
        bool needs = (n->kind == NB_NODE_PARAM && n->trainable) ||
                     (n->kind == NB_NODE_INPUT && n->requires_grad);
        nb_node *const *in = nb_node_inputs(n);
        for (int i = 0; i < n->n_inputs && !needs; i++)
            needs = in[i]->needs_grad;
        n->needs_grad = needs;
        g->order[len++] = n;
    }
    g->order_len = len;
    g->grads_sized = NULL;
    g->order_target = target;
    g->order_version = g->version;
    return NB_OK;
}

static bool all_finite(const nb_tensor *t)
{
    if (t->dtype == NB_F64) {
        const double *p = t->data;
        for (int64_t i = 0; i < t->size; i++)
            if (!isfinite(p[i]))
                return false;
    } else {
        const float *p = t->data;
        for (int64_t i = 0; i < t->size; i++)
            if (!isfinite(p[i]))
                return false;
    }
    return true;
}

static int report_nonfinite(nb_graph *g, nb_node *n, const char *what)
{
    char buf[384];
    size_t used = 0;
    buf[0] = '\0';
    nb_node *const *in = nb_node_inputs(n);
    for (int i = 0; i < n->n_inputs && used < sizeof buf; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s'",
                                 i ? ", '" : "'", nb_node_name(in[i]));
    return nb_set_error(g, NB_ERR_NONFINITE,
                        "check: %s of node '%s' (op %s, inputs: %s) is not "
                        "finite",
                        what, nb_node_name(n), nb_node_op_name(n),
                        n->n_inputs ? buf : "none");
}

static int check_target(nb_graph *g, nb_node *target, const char *what)
{
    if (!g)
        return NB_ERR_ARG;
    if (!target)
        return g->status != NB_OK
                   ? g->status /* the constructor that failed said why */
                   : nb_set_error(g, NB_ERR_ARG, "%s: node is NULL", what);
    if (nb_node_owner(target) != g)
        return nb_set_error(g, NB_ERR_ARG,
                            "%s: node '%s' belongs to another graph", what,
                            nb_node_name(target));
    return NB_OK;
}

/* Brings an op node's shape up to date with its inputs and makes room for
 * its value and scratch. Allocates only when a shape grows. */
static int prepare(nb_graph *g, nb_node *n)
{
    if (n->shape_epoch != g->shape_epoch) {
        int rc = nb_infer_node(g, n);
        if (rc != NB_OK)
            return rc;
    }
    nb_tensor *v = &n->value;
    if (n->op->flags & NB_OP_VIEW) {
        v->data = nb_node_inputs(n)[0]->value.data; /* the input's, current */
    } else if (!v->data || nb_tensor_bytes(v) > nb_tensor_capacity(v)) {
        void *before = v->data;
        if (nb_tensor_reserve(v, g) != NB_OK)
            return nb_set_error(g, NB_ERR_NOMEM,
                                "forward: out of memory at '%s'",
                                nb_node_name(n));
        /* a view of n off this order must not keep the freed buffer */
        if (before && g->n_views)
            nb_views_follow(g);
    }
    struct nb_node_cold *c = nb_node_cold_get(n);
    if (!c)
        return NB_OK;
    if (c->workspace_bytes > g->workspace_capacity) {
        nb_free(g->workspace);
        g->workspace = nb_alloc(c->workspace_bytes);
        g->workspace_capacity = g->workspace ? c->workspace_bytes : 0;
        if (!g->workspace)
            return nb_set_error(g, NB_ERR_NOMEM,
                                "forward: out of memory at '%s'",
                                nb_node_name(n));
    }
    if (c->scratch_bytes > c->scratch_capacity) {
        nb_free(c->scratch);
        c->scratch = nb_alloc(c->scratch_bytes);
        c->scratch_capacity = c->scratch ? c->scratch_bytes : 0;
        if (!c->scratch)
            return nb_set_error(g, NB_ERR_NOMEM,
                                "forward: out of memory at '%s'",
                                nb_node_name(n));
    }
    return NB_OK;
}

/* An op's forward or backward failed: make sure a message says which,
 * even from a custom op that returned an error without nb_op_fail. */
static int op_failed(nb_graph *g, nb_node *n, const char *phase, int rc)
{
    int code = rc < 0 ? rc : NB_ERR_ARG;
    if (g->status == NB_OK)
        nb_set_error(g, code, "%s: %s failed at node '%s' (returned %d)",
                     n->op->name, phase, nb_node_name(n), rc);
    return code;
}

/* A forward that stops at order position k leaves the nodes from k on
 * without a value for this run: backward must not use what an earlier run
 * left there (its shapes may no longer match). */
static int forward_failed(nb_graph *g, int64_t k, int rc)
{
    for (; k < g->order_len; k++)
        if (g->order[k]->kind == NB_NODE_OP)
            g->order[k]->evaluated = 0;
    return rc;
}

/* The op's scratch space, kept from forward to backward. */
static void *scratch_of(const nb_node *n)
{
    struct nb_node_cold *c = nb_node_cold_get(n);
    return c ? c->scratch : NULL;
}

/* ---- the steady-state lists of small graphs ----
 *
 * A training step repeats the same order at the same shapes, so what the
 * general passes work out per node per step (the call record's inputs,
 * whether shapes and buffers are current, which gradients are written
 * fresh) is worked out once per order and kept in g->fast. The lists hold
 * node and tensor-header pointers only (headers live in their nodes, which
 * never move); buffers, scratch and workspace are read at each call, so a
 * buffer that grows does not invalidate them. Everything that can change
 * what they say either moves the graph's version (a node added, a
 * parameter frozen or thawed, a gradient required of an input), moves the
 * shape epoch (a new batch size, and its wrap clears `ready`), or is
 * checked at each call (checking mode, a trace, accumulation, the target). */

/* Compiles g->order, the order of target, into g->fast. Without memory
 * (or for a large order) it compiles nothing: the general passes serve. */
static void fast_compile(nb_graph *g, nb_node *target)
{
    struct nb_fast *f = &g->fast;
    f->target = NULL;
    f->ready = false;
    int64_t n_ops = 0, n_args = 0, n_leaves = 0;
    for (int64_t k = 0; k < g->order_len; k++) {
        nb_node *n = g->order[k];
        if (n->kind == NB_NODE_OP) {
            n_ops++;
            n_args += n->n_inputs;
        } else if (n->needs_grad) {
            n_leaves++;
        }
    }
    if (n_ops > NB_FAST_MAX_OPS)
        return;
    /* Each gradient gets its first message from one call at most, so the
     * plan's clearing and stamping lists hold each node once at most. */
    bool ok =
        nb_grow_array((void **)&f->steps, &f->cap_steps, n_ops,
                      sizeof *f->steps) == NB_OK &&
        nb_grow_array((void **)&f->in, &f->cap_in, n_args, sizeof *f->in) ==
            NB_OK &&
        nb_grow_array((void **)&f->grad, &f->cap_grad, n_args,
                      sizeof *f->grad) == NB_OK &&
        nb_grow_array((void **)&f->fresh, &f->cap_fresh, n_args,
                      sizeof *f->fresh) == NB_OK &&
        nb_grow_array((void **)&f->leaves, &f->cap_leaves, n_leaves,
                      sizeof *f->leaves) == NB_OK &&
        nb_grow_array((void **)&f->sends, &f->cap_sends, n_ops,
                      sizeof *f->sends) == NB_OK &&
        nb_grow_array((void **)&f->clear, &f->cap_clear, g->order_len,
                      sizeof *f->clear) == NB_OK &&
        nb_grow_array((void **)&f->stamp, &f->cap_stamp, g->order_len,
                      sizeof *f->stamp) == NB_OK;
    if (!ok)
        return;
    int64_t s = 0, a = 0, l = 0;
    for (int64_t k = 0; k < g->order_len; k++) {
        nb_node *n = g->order[k];
        if (n->kind != NB_NODE_OP) {
            if (n->needs_grad)
                f->leaves[l++] = n;
            continue;
        }
        struct nb_fast_step *st = &f->steps[s++];
        nb_node *const *inputs = nb_node_inputs(n);
        st->head = (struct nb_call_head){
            .graph = g,
            .op = n->op,
            .n_inputs = n->n_inputs,
            .in = f->in + a,
            .out = &n->value,
            .out_grad = &n->grad,
            .in_grad = f->grad + a,
            .attrs = nb_node_attrs(n),
        };
        st->node = n;
        st->fresh = n->op->flags & NB_OP_FRESH_GRADS ? f->fresh + a : NULL;
        st->forward = n->op->forward; /* fast_plan_messages sets the rest */
        st->backward = n->op->backward;
        for (int i = 0; i < n->n_inputs; i++, a++) {
            nb_node *in = inputs[i];
            f->in[a] = &in->value;
            f->grad[a] = in->needs_grad ? &in->grad : NULL;
            f->fresh[a] = false;
        }
    }
    f->n_steps = s;
    f->n_leaves = l;
    f->n_sends = f->n_clear = f->n_stamp = 0;
    f->target = target;
    f->version = g->version;
}

/* Copies a compiled step's call head into the call record: as four
 * 16-byte moves where the compiler has vectors, because gcc may make the
 * memcpy a rep movs, whose start-up costs more than a tiny op (and it
 * splits wider vectors through the stack where the target lacks them). */
static inline void call_head_copy(nb_op_call *call,
                                  const struct nb_call_head *h)
{
    _Static_assert(sizeof *h == 64, "call_head_copy moves 64 bytes");
#if defined(__GNUC__)
    typedef uint64_t nb_v16
        __attribute__((vector_size(16), aligned(8), may_alias));
    const nb_v16 *from = (const nb_v16 *)(const void *)h;
    nb_v16 *to = (nb_v16 *)(void *)call;
    nb_v16 a = from[0], b = from[1], c = from[2], d = from[3];
    to[0] = a;
    to[1] = b;
    to[2] = c;
    to[3] = d;
#else
    memcpy(call, h, sizeof *h);
#endif
}

/* The one-element form that can run n's calls at the current shapes:
 * its op has one, and n and each input hold one element (so no operand is
 * broadcast and every gradient of the call is one element too). */
static const nb_one_element *one_element_call(const nb_node *n)
{
    if (n->value.size != 1)
        return NULL;
    nb_node *const *inputs = nb_node_inputs(n);
    for (int i = 0; i < n->n_inputs; i++)
        if (inputs[i]->value.size != 1)
            return NULL;
    return nb_one_element_of(n->op);
}

/* Works out, for the shapes a full forward has just prepared, what a
 * backward pass does besides its calls. A call sends nothing when its node
 * needs no gradient, its op has no backward or its value is empty (which
 * only a new shape epoch, and so a new plan, changes); `sends` lists the
 * others in the pass's order. Walking them so, the first call that sends
 * an input a message either writes it fresh (the op honours
 * NB_OP_FRESH_GRADS and the input holds no other slot of the call: the
 * gradient goes on `stamp`, after the stamps of earlier calls) or adds to
 * it (it goes on `clear`); every later call adds. A gradient no call
 * reaches goes on `clear` too. The pass then zeroes and stamps `clear` and
 * stamps `stamp` before its first call, which is the same as doing so at
 * each gradient's first message: no call reads a gradient before that
 * message (a node's own backward, the only reader, comes after every
 * call into it). So the calls test no gradient's stamp, and every
 * gradient of the pass is stamped and defined. */
static void fast_plan_messages(nb_graph *g, nb_node *target)
{
    static void *const no_scratch = NULL;
    struct nb_fast *f = &g->fast;
    uint8_t *reached = g->marks; /* the planner's, free outside nb_plan */
    memset(reached, 0, (size_t)target->id + 1);
    reached[target->id] = 1; /* the seed writes the output's */
    f->n_sends = f->n_clear = f->n_stamp = 0;
    for (int64_t k = f->n_steps - 1; k >= 0; k--) {
        struct nb_fast_step *st = &f->steps[k];
        nb_node *n = st->node;
        if (n->needs_grad && !reached[n->id])
            f->clear[f->n_clear++] = n; /* no message reaches it */
        st->runs = n->value.size != 0;
        bool sends = n->needs_grad && n->op->backward && st->runs;
        const nb_one_element *one = one_element_call(n);
        int t = n->value.dtype == NB_F64;
        st->forward = one ? one->forward[t] : n->op->forward;
        st->backward = one ? one->backward[t] : n->op->backward;
        struct nb_node_cold *c = nb_node_cold_get(n);
        st->scratch = c ? &c->scratch : &no_scratch;
        st->stamp_from = (int32_t)f->n_stamp;
        if (sends)
            f->sends[f->n_sends++] = st;
        nb_node *const *inputs = nb_node_inputs(n);
        for (int i = 0; i < n->n_inputs; i++) {
            nb_node *in = inputs[i];
            bool repeated = false;
            for (int j = 0; j < n->n_inputs; j++)
                repeated |= j != i && inputs[j] == in;
            bool overwrite =
                (n->op->flags & NB_OP_FRESH_GRADS) && !repeated;
            bool first = sends && in->needs_grad && !reached[in->id];
            if (first && overwrite)
                f->stamp[f->n_stamp++] = in;
            else if (first)
                f->clear[f->n_clear++] = in;
            reached[in->id] |= sends && in->needs_grad;
            if (st->fresh)
                st->fresh[i] = first && overwrite;
        }
    }
    for (int64_t l = 0; l < f->n_leaves; l++)
        if (!reached[f->leaves[l]->id])
            f->clear[f->n_clear++] = f->leaves[l];
}

/* The compiled lists serve target now: compiled for its order, and every
 * shape and buffer prepared at the current shape epoch. */
static bool fast_runnable(const nb_graph *g, const nb_node *target)
{
    const struct nb_fast *f = &g->fast;
    return f->target == target && f->version == g->version && f->ready &&
           f->shape_epoch == g->shape_epoch && !g->checking;
}

/* Forward over the compiled list: the general pass minus the leaves (fed,
 * as the full forward that made the list ready saw, and an input stays
 * fed), the shape and buffer checks and the call's assembly. */
static int forward_fast(nb_graph *g)
{
    const struct nb_fast *f = &g->fast;
    nb_op_call call;
    nb_call_blank(&call, g);
    const nb_epoch stamp = g->value_epoch;
    g->value_epoch_held = true;
    for (int64_t k = 0; k < f->n_steps; k++) {
        const struct nb_fast_step *st = &f->steps[k];
        if (st->runs) {
            call_head_copy(&call, &st->head);
            call.out_grad = NULL; /* backward's: forward gets none */
            call.in_grad = NULL;
            call.scratch = *st->scratch;
            call.workspace = g->workspace;
            int rc = st->forward(&call);
            if (rc != NB_OK) {
                for (int64_t j = k; j < f->n_steps; j++)
                    f->steps[j].node->evaluated = 0;
                return op_failed(g, st->node, "forward", rc);
            }
        }
        st->node->evaluated = stamp;
    }
    return NB_OK;
}

int nb_forward(nb_graph *g, nb_node *target)
{
    int rc = check_target(g, target, "forward");
    if (rc != NB_OK)
        return rc;
    if (fast_runnable(g, target))
        return forward_fast(g);
    nb_plan(g, target);
    /* One call record serves every node: only the per-node fields change. */
    nb_op_call call;
    nb_call_blank(&call, g);
    const nb_epoch stamp = g->value_epoch;
    g->value_epoch_held = true; /* the next feed or plan change must move it */
    nb_node *const *order = g->order;
    for (int64_t k = 0; k < g->order_len; k++) {
        nb_node *n = order[k];
        if (n->kind == NB_NODE_INPUT && !n->fed)
            return nb_set_error(g, NB_ERR_STATE,
                                "forward: input '%s' was never fed "
                                "(call nb_feed before nb_forward)",
                                nb_node_name(n));
        if (n->kind != NB_NODE_OP) {
            /* A NaN fed in, or held by a parameter, starts here: naming the
             * first op that reads it would send the search the wrong way. */
            if (g->checking && !all_finite(&n->value))
                return forward_failed(g, k, report_nonfinite(g, n, "value"));
            continue;
        }
        if ((rc = prepare(g, n)) != NB_OK)
            return forward_failed(g, k, rc);
        /* An empty output has nothing to compute, and no gradient to send
         * back (its messages are sums over no elements). */
        if (n->value.size == 0) {
            n->evaluated = stamp;
            continue;
        }
        nb_make_call(g, n, &call);
        call.out = &n->value;
        call.scratch = scratch_of(n);
        call.workspace = g->workspace;
        if ((rc = n->op->forward(&call)) != NB_OK)
            return forward_failed(g, k, op_failed(g, n, "forward", rc));
        n->evaluated = stamp;
        if (g->checking && !all_finite(&n->value))
            return forward_failed(g, k + 1, report_nonfinite(g, n, "value"));
    }
    /* Every shape and buffer of the order is now current: later steps at
     * this shape epoch may take the compiled list. */
    if (g->fast.target != target || g->fast.version != g->version)
        fast_compile(g, target);
    if (g->fast.target == target) {
        g->fast.ready = true;
        g->fast.shape_epoch = g->shape_epoch;
        fast_plan_messages(g, target);
    }
    return NB_OK;
}

/* Leaves always hold their value; an op node holds a usable one if forward
 * computed it since the graph last changed and since the last feed (new
 * data or a new shape would make the values and the gradients disagree). */
static bool evaluated(const nb_graph *g, const nb_node *n)
{
    /* Every feed and plan change makes the stamps taken so far stale
     * (nb_values_stale), so a stamp equal to the epoch also means the
     * shapes are current. */
    return n->holds_value || n->evaluated == g->value_epoch;
}

/* Gives a node's gradient its zeros if no message has reached it in this
 * pass (its stamp is older than the pass's epoch). */
static void settle_grad(nb_node *n, nb_epoch epoch)
{
    if (n->grad_epoch != epoch) {
        memset(n->grad.data, 0, nb_tensor_bytes(&n->grad));
        n->grad_epoch = epoch;
    }
}

/* The gradient slot of input i of n for its backward call, or NULL when the
 * input needs none. An unwritten gradient is handed over as fresh (the op
 * writes its message instead of adding it) when the op can do that and the
 * input does not sit in another slot of the same call (x * x: the second
 * message must add to the first); otherwise it is zeroed first. */
static nb_tensor *give_grad(nb_node *n, int i, bool overwrite, nb_epoch epoch,
                            bool *fresh)
{
    nb_node *const *inputs = nb_node_inputs(n);
    nb_node *in = inputs[i];
    *fresh = false;
    if (!in->needs_grad)
        return NULL;
    if (in->grad_epoch != epoch) {
        bool repeated = false;
        for (int j = 0; j < n->n_inputs && overwrite; j++)
            repeated |= j != i && inputs[j] == in;
        if (overwrite && !repeated) {
            *fresh = true;
            in->grad_epoch = epoch;
        } else {
            settle_grad(in, epoch);
        }
    }
    return &in->grad;
}

/* Adds the seed (1 without one) into the output's gradient, or, when
 * fresh, writes it there: 0 + s, the bits of clearing and then adding,
 * without the clearing. */
static void put_seed(nb_tensor *og, const nb_tensor *seed, bool fresh)
{
    if (!seed && og->dtype == NB_F32) {
        /* the common case: a scalar f32 loss */
        float *d = og->data;
        *d = (fresh ? 0.0f : *d) + 1.0f;
        return;
    }
    for (int64_t i = 0; i < og->size; i++) {
        double s = seed ? nb_tensor_get(seed, i) : 1.0;
        nb_tensor_set(og, i, (fresh ? 0.0 : nb_tensor_get(og, i)) + s);
    }
}


/* ---- the gradient-ready hook ----
 *
 * A leaf's gradient is final once its last consumer in backward order has
 * sent its message: the first op node of the forward order that takes it
 * as an input (every consumer of a leaf that needs a gradient needs one
 * too, so that node runs in the pass). The calls are worked out once per
 * order, in g->ready: walking the forward order, each op node appends the
 * leaves it is the first to consume, its inputs last to first, so that a
 * pass walking the list from the end reports them after that node in
 * input order. */

int nb_graph_set_grad_ready(nb_graph *g, nb_grad_ready_fn fn, void *user)
{
    if (!g)
        return NB_ERR_ARG;
    g->ready.fn = fn;
    g->ready.user = fn ? user : NULL;
    return NB_OK;
}

/* Compiles g->ready for the order of output (planning it if another is
 * cached). Allocates only when the order has more leaves than any before. */
static int ready_compile(nb_graph *g, nb_node *output)
{
    struct nb_ready *r = &g->ready;
    if (r->target == output && r->version == g->version)
        return NB_OK;
    r->target = NULL;
    nb_plan(g, output);
    int64_t leaves = 0;
    for (int64_t k = 0; k < g->order_len; k++)
        leaves += g->order[k]->needs_grad && g->order[k]->kind != NB_NODE_OP;
    if (nb_grow_array((void **)&r->leaf, &r->cap_leaf, leaves,
                      sizeof *r->leaf) != NB_OK ||
        nb_grow_array((void **)&r->after, &r->cap_after, leaves,
                      sizeof *r->after) != NB_OK)
        return nb_set_error(g, NB_ERR_NOMEM,
                            "backward: out of memory for the gradient-ready "
                            "list of '%s'",
                            nb_node_name(output));
    uint8_t *seen = g->marks; /* free between plans */
    memset(seen, 0, (size_t)output->id + 1);
    int64_t j = 0;
    if (output->kind != NB_NODE_OP && output->needs_grad) {
        r->leaf[j] = output;
        r->after[j++] = NULL;
        seen[output->id] = 1;
    }
    for (int64_t k = 0; k < g->order_len; k++) {
        nb_node *n = g->order[k];
        if (n->kind != NB_NODE_OP || !n->needs_grad)
            continue;
        nb_node *const *in = nb_node_inputs(n);
        for (int i = n->n_inputs - 1; i >= 0; i--) {
            nb_node *l = in[i];
            if (l->kind == NB_NODE_OP || !l->needs_grad || seen[l->id])
                continue;
            seen[l->id] = 1;
            r->leaf[j] = l;
            r->after[j++] = n;
        }
    }
    r->n = j;
    r->target = output;
    r->version = g->version;
    return NB_OK;
}

/* Reports the leaves whose last consumer is n (NULL: the end of the pass),
 * from the list's position *j down. */
static void ready_fire(nb_graph *g, const nb_node *n, int64_t *j,
                       nb_epoch epoch)
{
    const struct nb_ready *r = &g->ready;
    while (*j >= 0 && r->after[*j] == n) {
        nb_node *l = r->leaf[(*j)--];
        settle_grad(l, epoch); /* a leaf no message reached: zero */
        r->fn(r->user, l);
    }
}

/* Reports the leaves whose last consumer has an id of at least `lowest`
 * (every op node of the order from there on has had its turn), from the
 * list's position *j down; the leaves reported at the end of the pass
 * (after NULL) stay. */
static void ready_fire_down(nb_graph *g, int64_t lowest, int64_t *j,
                            nb_epoch epoch)
{
    const struct nb_ready *r = &g->ready;
    while (*j >= 0 && r->after[*j] && r->after[*j]->id >= lowest) {
        nb_node *l = r->leaf[(*j)--];
        settle_grad(l, epoch);
        r->fn(r->user, l);
    }
}

/* The calls of backward_fast. With the hook, the leaves of the op nodes
 * that send nothing are reported when the pass passes them: before the
 * next sending call, as the general pass does at their turn. Inlined
 * twice, so that the loop without the hook tests nothing for it. */
static inline int fast_calls(nb_graph *g, const struct nb_fast *f,
                             bool hook, int64_t *rj, nb_epoch epoch)
{
    nb_op_call call;
    nb_call_blank(&call, g);
    const struct nb_fast_step *const *sends = f->sends;
    if (hook && f->n_sends)
        ready_fire_down(g, sends[0]->node->id + 1, rj, epoch);
    for (int64_t i = 0; i < f->n_sends; i++) {
        const struct nb_fast_step *st = sends[i];
        call_head_copy(&call, &st->head);
        call.scratch = *st->scratch;
        call.workspace = g->workspace;
        call.in_grad_fresh = st->fresh;
        int rc = st->backward(&call);
        if (rc != NB_OK) {
            /* The gradients this call and the later ones were to write
             * fresh hold no message: zeros, like any gradient no message
             * reached. */
            for (int64_t j = st->stamp_from; j < f->n_stamp; j++)
                memset(f->stamp[j]->grad.data, 0,
                       nb_tensor_bytes(&f->stamp[j]->grad));
            return op_failed(g, st->node, "backward", rc);
        }
        if (hook)
            ready_fire_down(g,
                            i + 1 < f->n_sends ? sends[i + 1]->node->id + 1
                                               : 0,
                            rj, epoch);
    }
    if (hook && !f->n_sends)
        ready_fire_down(g, 0, rj, epoch);
    return NB_OK;
}

/* A plain backward over the compiled list, at the order, output and
 * shapes whose gradients the last general pass sized: the lazy pass of
 * nb_backward_ex with the call's assembly and each gradient's first
 * message read from the plan. */
static int backward_fast(nb_graph *g, nb_node *output, const nb_tensor *seed)
{
    const struct nb_fast *f = &g->fast;
    const nb_epoch epoch = nb_epoch_next(g, &g->grad_epoch);
    put_seed(&output->grad, seed, true);
    output->grad_epoch = epoch;
    for (int64_t j = 0; j < f->n_clear; j++) {
        nb_node *n = f->clear[j];
        memset(n->grad.data, 0, nb_tensor_bytes(&n->grad));
        n->grad_epoch = epoch;
    }
    for (int64_t j = 0; j < f->n_stamp; j++)
        f->stamp[j]->grad_epoch = epoch;
    int rc;
    if (g->ready.fn) {
        /* The next leaf to report. */
        int64_t rj = g->ready.n - 1;
        rc = fast_calls(g, f, true, &rj, epoch);
        if (rc == NB_OK)
            ready_fire(g, NULL, &rj, epoch);
    } else {
        rc = fast_calls(g, f, false, NULL, epoch);
    }
    return rc;
}

int nb_backward_ex(nb_graph *g, nb_node *output, const nb_tensor *seed,
                   unsigned flags)
{
    int rc = check_target(g, output, "backward");
    if (rc != NB_OK)
        return rc;
    /* A bit this version does not know is a caller's mistake or a newer
     * caller's request: either way, ignoring it would run something else. */
    if (flags & ~(unsigned)NB_BACKWARD_ACCUMULATE)
        return nb_set_error(g, NB_ERR_ARG,
                            "backward: unknown flags 0x%x (known: "
                            "NB_BACKWARD_ACCUMULATE)",
                            flags & ~(unsigned)NB_BACKWARD_ACCUMULATE);
    char a[128], b[128];
    if (seed == NULL && output->value.size != 1)
        return nb_set_error(g, NB_ERR_ARG,
                            "backward: '%s' has shape %s, not a scalar; pass a "
                            "seed gradient of that shape to nb_backward_ex",
                            nb_node_name(output),
                            nb_shape_str(output->value.rank, output->value.shape,
                                         a, sizeof a));
    if (seed && (!nb_same_shape(seed, &output->value) ||
                 seed->dtype != output->value.dtype))
        return nb_set_error(g, NB_ERR_ARG,
                            "backward: seed is %s %s but '%s' is %s %s",
                            nb_dtype_name(seed->dtype),
                            nb_shape_str(seed->rank, seed->shape, a, sizeof a),
                            nb_node_name(output),
                            nb_dtype_name(output->value.dtype),
                            nb_shape_str(output->value.rank, output->value.shape,
                                         b, sizeof b));
    if (!evaluated(g, output))
        return nb_set_error(g, NB_ERR_STATE,
                            "backward: '%s' has not been evaluated since the "
                            "graph last changed; call nb_forward on it first",
                            nb_node_name(output));
    /* A backward starts a training step: the thread policy times whole
     * steps, one thread against the team (core/parallel_internal.h). */
    nb_parallel_cycle_mark(&g->cycle);
    bool accumulate = flags & NB_BACKWARD_ACCUMULATE;
    if (!accumulate && !g->recorder && output->needs_grad &&
        g->grads_sized == output && g->grads_shape_epoch == g->shape_epoch &&
        fast_runnable(g, output) &&
        (!g->ready.fn || (rc = ready_compile(g, output)) == NB_OK))
        return backward_fast(g, output, seed);
    if (rc != NB_OK)
        return rc;
    nb_plan(g, output);
    if (!output->needs_grad) {
        /* Nothing trainable upstream: no gradient to compute, and none
         * from an earlier backward may pass for this one's. */
        if (!accumulate)
            nb_epoch_next(g, &g->grad_epoch);
        return NB_OK;
    }

    if (accumulate) {
        /* Sums over micro-batches only make sense between equal shapes. */
        for (int64_t k = 0; k < g->order_len; k++) {
            nb_node *n = g->order[k];
            if (n->needs_grad && n->kind != NB_NODE_OP &&
                n->grad_epoch == g->grad_epoch && n->grad.data &&
                !nb_same_shape(&n->grad, &n->value)) {
                char was[128], now[128];
                return nb_set_error(
                    g, NB_ERR_STATE,
                    "backward: cannot accumulate the gradient of '%s' across "
                    "shapes (it holds %s, the value is now %s)",
                    nb_node_name(n),
                    nb_shape_str(n->grad.rank, n->grad.shape, was, sizeof was),
                    nb_shape_str(n->value.rank, n->value.shape, now,
                                 sizeof now));
            }
        }
    } else {
        nb_epoch_next(g, &g->grad_epoch);
    }
    const nb_epoch epoch = g->grad_epoch;
    nb_node *const *order = g->order;
    /* Without accumulation every gradient starts this pass unwritten (its
     * stamp is older than the fresh epoch): the first message into it may
     * overwrite instead of adding to zeros (see give_grad), so it is not
     * cleared here. Accumulation and tracing clear everything up front. */
    const bool lazy = !accumulate && !g->recorder;
    /* Every gradient of the order already has its value's shape and room
     * for it when the order and the shapes are those of the last pass that
     * sized them; a lazy pass then only clears the output's. */
    const bool ready = g->grads_sized == output &&
                       g->grads_shape_epoch == g->shape_epoch;
    for (int64_t k = 0; k < g->order_len && !(ready && lazy); k++) {
        nb_node *n = order[k];
        if (!n->needs_grad)
            continue;
        /* Accumulation keeps only the leaves' sums of this grad epoch;
         * intermediate nodes always start from zero, or old messages would
         * flow again. */
        nb_tensor *gr = &n->grad;
        bool keep = accumulate && n->kind != NB_NODE_OP &&
                    n->grad_epoch == epoch && gr->data;
        /* A gradient that shares its value's shape row has that shape. */
        bool sized = gr->shape == n->value.shape && gr->rank == n->value.rank &&
                     gr->size == n->value.size && gr->dtype == n->value.dtype;
        if (!sized &&
            (gr->dtype != n->value.dtype || gr->size != n->value.size ||
             !nb_same_shape(gr, &n->value)) &&
            nb_tensor_set_shape(gr, g, (nb_dtype)n->value.dtype,
                                n->value.rank, n->value.shape) != NB_OK)
            return nb_set_error(g, NB_ERR_NOMEM,
                                "backward: out of memory at '%s'",
                                nb_node_name(n));
        if ((!gr->data || nb_tensor_bytes(gr) > nb_tensor_capacity(gr)) &&
            nb_tensor_reserve(gr, g) != NB_OK)
            return nb_set_error(g, NB_ERR_NOMEM,
                                "backward: out of memory at '%s'",
                                nb_node_name(n));
        if (lazy && n != output)
            continue;
        if (!keep)
            memset(gr->data, 0, nb_tensor_bytes(gr));
        n->grad_epoch = epoch;
    }
    if (ready && lazy) {
        memset(output->grad.data, 0, nb_tensor_bytes(&output->grad));
        output->grad_epoch = epoch;
    }
    g->grads_sized = output;
    g->grads_shape_epoch = g->shape_epoch;
    /* The seed is added, like every other message, so accumulation works
     * for the output too. */
    put_seed(&output->grad, seed, false);

    nb_op_call call;
    nb_call_blank(&call, g);
    nb_tensor **grad_args = g->grad_args;
    bool *fresh = g->grad_fresh;
    call.in_grad = grad_args;
    const bool checking = g->checking;
    rc = g->ready.fn ? ready_compile(g, output) : NB_OK;
    /* The next leaf to report, or -1 (none, or no hook). */
    int64_t rj = g->ready.fn && rc == NB_OK ? g->ready.n - 1 : -1;
    for (int64_t k = g->order_len - 1; k >= 0 && rc == NB_OK; k--) {
        nb_node *n = order[k];
        if (!n->needs_grad || n->kind != NB_NODE_OP)
            continue;
        settle_grad(n, epoch); /* no message reached it: zero */
        if (checking && !all_finite(&n->grad)) {
            rc = report_nonfinite(g, n, "gradient");
            break;
        }
        if (!n->op->backward || n->value.size == 0) {
            /* zero gradient everywhere (step, sign), or none */
            if (rj >= 0)
                ready_fire(g, n, &rj, epoch);
            continue;
        }
        nb_make_call(g, n, &call);
        bool overwrite = n->op->flags & NB_OP_FRESH_GRADS;
        for (int i = 0; i < n->n_inputs; i++)
            grad_args[i] = give_grad(n, i, overwrite, epoch, &fresh[i]);
        call.in_grad_fresh = overwrite ? fresh : NULL;
        call.out = &n->value;
        call.out_grad = &n->grad;
        call.scratch = scratch_of(n);
        call.workspace = g->workspace;
        rc = g->recorder
                 ? g->recorder->backward_node(g->recorder, g, n, &call)
                 : n->op->backward(&call);
        if (rc != NB_OK)
            rc = op_failed(g, n, "backward", rc);
        else if (rj >= 0)
            ready_fire(g, n, &rj, epoch);
    }
    if (rc == NB_OK && rj >= 0)
        ready_fire(g, NULL, &rj, epoch);
    /* Gradients no message reached (or all of them, after a failure) are
     * zero, so that every gradient of the pass is defined. */
    for (int64_t k = 0; k < g->order_len && lazy; k++)
        if (order[k]->needs_grad)
            settle_grad(order[k], epoch);
    if (rc != NB_OK)
        return rc;
    if (g->checking) {
        for (int64_t k = 0; k < g->order_len; k++) {
            nb_node *n = g->order[k];
            if (n->needs_grad && n->kind != NB_NODE_OP && !all_finite(&n->grad))
                return report_nonfinite(g, n, "gradient");
        }
    }
    return NB_OK;
}

int nb_backward(nb_graph *g, nb_node *loss)
{
    return nb_backward_ex(g, loss, NULL, 0);
}
