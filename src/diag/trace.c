/* Tracing backward message passing, and the text printer.
 *
 * Backward walks the order in reverse; each op node adds its messages
 *     m(v -> u_i) = delta_v * d v / d u_i
 * into its inputs' gradient buffers, so that afterwards
 *     delta_u = sum over consumers v of m(v -> u).
 * While a trace records, it is the graph's recorder (core/internal.h), so
 * the executor hands each op node to record_backward instead of calling
 * its backward directly: the op
 * then writes into one zeroed buffer per input slot, which is the message
 * itself (exactly, with no subtraction of before/after snapshots), and the
 * buffer is added into the input's gradient as the op would have done. Two
 * slots holding the same node (x * x) get two buffers, hence two messages.
 *
 * nb_trace_end snapshots values and gradients in forward order and indexes
 * the messages by receiver (sorted by sender id and slot) and by sender
 * (one per input slot).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "nabla/trace.h"

typedef struct trace_msg {
    nb_node *from; /* NULL for the seed */
    nb_node *to;
    int slot;
    nb_tensor *tensor;
} trace_msg;

typedef struct trace_entry {
    nb_node *node;
    nb_tensor *value;
    nb_tensor *grad;
    int n_in;
    int64_t first_in;  /* into in_index */
    int64_t first_out; /* into out_index; node->n_inputs slots */
} trace_entry;

struct nb_trace {
    struct nb_recorder recorder; /* first: the graph holds &t->recorder */
    nb_graph *graph;             /* while recording; NULL once ended */
    /* What identifies the pass being recorded: a backward that differs in
     * any of these, or that revisits a node id not below the last one
     * traced (ids fall strictly within one pass), is a new pass. */
    nb_node *output;
    uint64_t order_version, grad_epoch;
    int64_t last_id;
    uint64_t epoch_at_begin;

    trace_msg *msgs;
    int64_t n_msgs, cap_msgs;
    nb_tensor **slots; /* the in_grad array handed to an op's backward */
    int cap_slots;

    trace_entry *entries;
    int64_t n_entries;
    int64_t *in_index;  /* message indices, grouped by receiver */
    int64_t *out_index; /* message index per (sender, slot), or -1 */
};

/* ---- recording ---- */

static void drop_messages(nb_trace *t)
{
    for (int64_t i = 0; i < t->n_msgs; i++)
        nb_tensor_free(t->msgs[i].tensor);
    t->n_msgs = 0;
}

static void drop_entries(nb_trace *t)
{
    for (int64_t i = 0; i < t->n_entries; i++) {
        nb_tensor_free(t->entries[i].value);
        nb_tensor_free(t->entries[i].grad);
    }
    nb_free(t->entries);
    nb_free(t->in_index);
    nb_free(t->out_index);
    t->entries = NULL;
    t->in_index = t->out_index = NULL;
    t->n_entries = 0;
}

static int reserve_msgs(nb_trace *t, int64_t need)
{
    if (need <= t->cap_msgs)
        return NB_OK;
    int64_t cap = t->cap_msgs ? t->cap_msgs * 2 : 64;
    while (cap < need)
        cap *= 2;
    trace_msg *fresh = nb_alloc((size_t)cap * sizeof *fresh);
    if (!fresh)
        return NB_ERR_NOMEM;
    if (t->n_msgs)
        memcpy(fresh, t->msgs, (size_t)t->n_msgs * sizeof *fresh);
    nb_free(t->msgs);
    t->msgs = fresh;
    t->cap_msgs = cap;
    return NB_OK;
}

static int reserve_slots(nb_trace *t, int need)
{
    if (need <= t->cap_slots)
        return NB_OK;
    nb_tensor **fresh = nb_alloc((size_t)need * sizeof *fresh);
    if (!fresh)
        return NB_ERR_NOMEM;
    nb_free(t->slots);
    t->slots = fresh;
    t->cap_slots = need;
    return NB_OK;
}

static void add_into(nb_tensor *dst, const nb_tensor *src)
{
    if (dst->dtype == NB_F64) {
        double *d = dst->data;
        const double *s = src->data;
        for (int64_t i = 0; i < dst->size; i++)
            d[i] += s[i];
    } else {
        float *d = dst->data;
        const float *s = src->data;
        for (int64_t i = 0; i < dst->size; i++)
            d[i] += s[i];
    }
}

/* Stops recording on the graph (ended, freed, or the graph goes away). */
static void stop_recording(struct nb_recorder *r)
{
    nb_trace *t = (nb_trace *)r;
    if (t->graph)
        t->graph->recorder = NULL;
    t->graph = NULL;
}

/* The recorder's entries: `r` is the first member of its trace. */
static int record_backward(struct nb_recorder *r, nb_graph *g, nb_node *n,
                           nb_op_call *call)
{
    nb_trace *t = (nb_trace *)r;
    if (n->id >= t->last_id || g->order_target != t->output ||
        g->order_version != t->order_version ||
        g->grad_epoch != t->grad_epoch) {
        drop_messages(t);
        t->output = g->order_target;
        t->order_version = g->order_version;
        t->grad_epoch = g->grad_epoch;
    }
    t->last_id = n->id;
    if (reserve_slots(t, n->n_inputs) != NB_OK ||
        reserve_msgs(t, t->n_msgs + n->n_inputs) != NB_OK)
        return nb_set_error(g, NB_ERR_NOMEM, "trace: out of memory at '%s'",
                            nb_node_name(n));
    nb_node *const *in = nb_node_inputs(n);
    for (int i = 0; i < n->n_inputs; i++) {
        const nb_tensor *gi = &in[i]->grad;
        t->slots[i] = NULL;
        if (!in[i]->needs_grad)
            continue;
        t->slots[i] = nb_tensor_new(gi->dtype, gi->rank, gi->shape);
        if (!t->slots[i]) {
            for (int j = 0; j < i; j++)
                nb_tensor_free(t->slots[j]);
            return nb_set_error(g, NB_ERR_NOMEM, "trace: out of memory at '%s'",
                                nb_node_name(n));
        }
    }
    call->in_grad = t->slots;
    int rc = n->op->backward(call);
    for (int i = 0; i < n->n_inputs; i++) {
        if (!t->slots[i])
            continue;
        if (rc != NB_OK) {
            nb_tensor_free(t->slots[i]);
            continue;
        }
        add_into(&in[i]->grad, t->slots[i]);
        t->msgs[t->n_msgs++] = (trace_msg){n, in[i], i, t->slots[i]};
    }
    return rc;
}

nb_trace *nb_trace_begin(nb_graph *g)
{
    if (!g)
        return NULL;
    if (g->recorder) {
        nb_set_error(g, NB_ERR_STATE,
                     "trace_begin: a trace is already recording on this "
                     "graph (end it first)");
        return NULL;
    }
    nb_trace *t = nb_alloc_zeroed(sizeof *t);
    if (!t) {
        nb_set_error(g, NB_ERR_NOMEM, "trace_begin: out of memory");
        return NULL;
    }
    t->graph = g;
    t->last_id = -1;
    t->epoch_at_begin = g->grad_epoch;
    t->recorder.backward_node = record_backward;
    t->recorder.detach = stop_recording;
    g->recorder = &t->recorder;
    return t;
}

static nb_tensor *copy_tensor(const nb_tensor *src)
{
    nb_tensor *t = nb_tensor_new(src->dtype, src->rank, src->shape);
    if (t && src->data)
        memcpy(t->data, src->data, nb_tensor_bytes(src));
    return t;
}

/* Entries are sorted by node id (the order is). */
static int64_t entry_of(const nb_trace *t, const nb_node *n)
{
    int64_t lo = 0, hi = t->n_entries - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int64_t id = t->entries[mid].node->id;
        if (id == n->id)
            return t->entries[mid].node == n ? mid : -1;
        if (id < n->id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static bool msg_before(const trace_msg *a, const trace_msg *b)
{
    int64_t ia = a->from ? a->from->id : -1, ib = b->from ? b->from->id : -1;
    return ia < ib || (ia == ib && a->slot < b->slot);
}

static int build_index(nb_trace *t)
{
    int64_t n_out = 0;
    for (int64_t e = 0; e < t->n_entries; e++) {
        t->entries[e].first_out = n_out;
        n_out += t->entries[e].node->n_inputs;
    }
    t->in_index =
        nb_alloc((size_t)(t->n_msgs ? t->n_msgs : 1) * sizeof *t->in_index);
    t->out_index = nb_alloc((size_t)(n_out ? n_out : 1) * sizeof *t->out_index);
    if (!t->in_index || !t->out_index)
        return NB_ERR_NOMEM;
    for (int64_t k = 0; k < n_out; k++)
        t->out_index[k] = -1;

    for (int64_t m = 0; m < t->n_msgs; m++) {
        int64_t e = entry_of(t, t->msgs[m].to);
        if (e >= 0)
            t->entries[e].n_in++;
        if (t->msgs[m].from && (e = entry_of(t, t->msgs[m].from)) >= 0)
            t->out_index[t->entries[e].first_out + t->msgs[m].slot] = m;
    }
    int64_t pos = 0;
    for (int64_t e = 0; e < t->n_entries; e++) {
        t->entries[e].first_in = pos;
        pos += t->entries[e].n_in;
        t->entries[e].n_in = 0; /* refilled below */
    }
    for (int64_t m = 0; m < t->n_msgs; m++) {
        int64_t e = entry_of(t, t->msgs[m].to);
        if (e < 0)
            continue;
        /* Insertion keeps each receiver's list sorted; lists are short. */
        int64_t *list = t->in_index + t->entries[e].first_in;
        int k = t->entries[e].n_in++;
        while (k > 0 && msg_before(&t->msgs[m], &t->msgs[list[k - 1]])) {
            list[k] = list[k - 1];
            k--;
        }
        list[k] = m;
    }
    return NB_OK;
}

static int snapshot(nb_trace *t, nb_graph *g)
{
    nb_node *target = t->output ? t->output : g->order_target;
    if (!target)
        return NB_OK; /* nothing ran: an empty trace */
    t->output = target;
    nb_plan(g, target);
    /* Gradients count only if a backward ran while recording; those of an
     * older pass would pass for this one's. */
    bool grads = t->last_id >= 0 || g->grad_epoch != t->epoch_at_begin;
    t->entries = nb_alloc_zeroed((size_t)(g->order_len ? g->order_len : 1) *
                                 sizeof *t->entries);
    if (!t->entries)
        return NB_ERR_NOMEM;
    t->n_entries = g->order_len;
    for (int64_t k = 0; k < g->order_len; k++) {
        nb_node *n = g->order[k];
        trace_entry *e = &t->entries[k];
        e->node = n;
        if (!(e->value = copy_tensor(&n->value)))
            return NB_ERR_NOMEM;
        if (grads && n->needs_grad && nb_node_grad(n) &&
            !(e->grad = copy_tensor(&n->grad)))
            return NB_ERR_NOMEM;
    }
    trace_entry *out = &t->entries[t->n_entries - 1];
    if (out->grad) {
        /* Nothing in the order consumes the output, so its gradient is the
         * seed alone. */
        if (reserve_msgs(t, t->n_msgs + 1) != NB_OK)
            return NB_ERR_NOMEM;
        nb_tensor *seed = copy_tensor(out->grad);
        if (!seed)
            return NB_ERR_NOMEM;
        t->msgs[t->n_msgs++] = (trace_msg){NULL, out->node, -1, seed};
    }
    return build_index(t);
}

int nb_trace_end(nb_trace *t)
{
    if (!t)
        return NB_ERR_ARG;
    nb_graph *g = t->graph;
    if (!g)
        return NB_ERR_STATE;
    stop_recording(&t->recorder);
    int rc = snapshot(t, g);
    if (rc != NB_OK) {
        drop_entries(t);
        drop_messages(t);
        return nb_set_error(g, rc, "trace_end: out of memory");
    }
    return NB_OK;
}

nb_trace *nb_trace_run(nb_graph *g, nb_node *loss)
{
    nb_trace *t = nb_trace_begin(g);
    if (!t)
        return NULL;
    int rc = nb_forward(g, loss);
    if (rc == NB_OK)
        rc = nb_backward(g, loss);
    int end = nb_trace_end(t);
    if (rc != NB_OK || end != NB_OK) {
        nb_trace_free(t);
        return NULL;
    }
    return t;
}

void nb_trace_free(nb_trace *t)
{
    if (!t)
        return;
    stop_recording(&t->recorder);
    drop_entries(t);
    drop_messages(t);
    nb_free(t->msgs);
    nb_free(t->slots);
    nb_free(t);
}

/* ---- reading ---- */

static const trace_entry *entry(const nb_trace *t, int64_t i)
{
    return t && i >= 0 && i < t->n_entries ? &t->entries[i] : NULL;
}

static const trace_msg *in_msg(const nb_trace *t, int64_t i, int k)
{
    const trace_entry *e = entry(t, i);
    if (!e || k < 0 || k >= e->n_in)
        return NULL;
    return &t->msgs[t->in_index[e->first_in + k]];
}

nb_node *nb_trace_output(const nb_trace *t)
{
    return t ? t->output : NULL;
}

int64_t nb_trace_count(const nb_trace *t)
{
    return t ? t->n_entries : 0;
}

nb_node *nb_trace_node(const nb_trace *t, int64_t i)
{
    const trace_entry *e = entry(t, i);
    return e ? e->node : NULL;
}

int64_t nb_trace_find(const nb_trace *t, const nb_node *n)
{
    return t && n ? entry_of(t, n) : -1;
}

const nb_tensor *nb_trace_value(const nb_trace *t, int64_t i)
{
    const trace_entry *e = entry(t, i);
    return e ? e->value : NULL;
}

const nb_tensor *nb_trace_grad(const nb_trace *t, int64_t i)
{
    const trace_entry *e = entry(t, i);
    return e ? e->grad : NULL;
}

int nb_trace_in_count(const nb_trace *t, int64_t i)
{
    const trace_entry *e = entry(t, i);
    return e ? e->n_in : 0;
}

nb_node *nb_trace_in_sender(const nb_trace *t, int64_t i, int k)
{
    const trace_msg *m = in_msg(t, i, k);
    return m ? m->from : NULL;
}

int nb_trace_in_slot(const nb_trace *t, int64_t i, int k)
{
    const trace_msg *m = in_msg(t, i, k);
    return m ? m->slot : -1;
}

const nb_tensor *nb_trace_in_message(const nb_trace *t, int64_t i, int k)
{
    const trace_msg *m = in_msg(t, i, k);
    return m ? m->tensor : NULL;
}

const nb_tensor *nb_trace_out_message(const nb_trace *t, int64_t i, int slot)
{
    const trace_entry *e = entry(t, i);
    if (!e || slot < 0 || slot >= e->node->n_inputs)
        return NULL;
    int64_t m = t->out_index[e->first_out + slot];
    return m >= 0 ? t->msgs[m].tensor : NULL;
}

/* ---- printing ---- */

/* Text goes either to a FILE or into a buffer that counts what it could
 * not hold, so one printer serves nb_trace_print and nb_trace_format. */
typedef struct sink {
    FILE *file;
    char *buf;
    size_t cap, len;
    bool failed;
} sink;

static void put(sink *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void put(sink *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (s->file) {
        if (vfprintf(s->file, fmt, ap) < 0)
            s->failed = true;
    } else {
        char *at = s->len < s->cap ? s->buf + s->len : NULL;
        size_t room = s->len < s->cap ? s->cap - s->len : 0;
        int n = vsnprintf(at, room, fmt, ap);
        if (n < 0)
            s->failed = true;
        else
            s->len += (size_t)n;
    }
    va_end(ap);
}

/* sqrt(sum x^2), scaled by the largest magnitude so that it neither
 * overflows nor underflows where the norm itself is representable. */
static double l2_norm(const nb_tensor *t)
{
    double big = 0.0;
    for (int64_t i = 0; i < t->size; i++) {
        double a = fabs(nb_tensor_get(t, i));
        if (isnan(a))
            return a;
        if (a > big)
            big = a;
    }
    if (big == 0.0 || isinf(big))
        return big;
    double sum = 0.0;
    for (int64_t i = 0; i < t->size; i++) {
        double r = nb_tensor_get(t, i) / big;
        sum += r * r;
    }
    return big * sqrt(sum);
}

static void put_shape(sink *s, const nb_tensor *t)
{
    char buf[NB_MAX_RANK * 24 + 8];
    put(s, "%s", nb_shape_str(t->rank, t->shape, buf, sizeof buf));
}

static void put_tensor(sink *s, const nb_tensor *t, int full_max, int head,
                       int digits)
{
    if (full_max <= 0)
        full_max = NB_TRACE_FULL_MAX;
    if (head <= 0)
        head = 6;
    if (digits <= 0 || digits > 17)
        digits = 6;
    if (!t->data || t->size == 0) {
        put_shape(s, t);
        put(s, t->data ? " (empty)" : " (no value)");
        return;
    }
    if (t->rank == 0) {
        put(s, "%.*g", digits, nb_tensor_get(t, 0));
        return;
    }
    if (t->size > full_max) {
        put_shape(s, t);
        put(s, ":");
        for (int64_t i = 0; i < head && i < t->size; i++)
            put(s, "%s %.*g", i ? "," : "", digits, nb_tensor_get(t, i));
        put(s, "%s (L2 norm %.*g)", t->size > head ? ", ..." : "", digits,
            l2_norm(t));
        return;
    }
    /* Nested brackets: before element i open one per trailing block that
     * starts at i, after it close one per block that ends there. */
    for (int64_t i = 0; i < t->size; i++) {
        int open = 0, close = 0;
        int64_t block = 1;
        for (int d = t->rank - 1; d >= 0; d--) {
            block *= t->shape[d];
            if (i % block != 0)
                break;
            open++;
        }
        block = 1;
        for (int d = t->rank - 1; d >= 0; d--) {
            block *= t->shape[d];
            if ((i + 1) % block != 0)
                break;
            close++;
        }
        put(s, "%s%.*s%.*g%.*s", i ? ", " : "", open, "[[[[[[[[", digits,
            nb_tensor_get(t, i), close, "]]]]]]]]");
    }
}

size_t nb_tensor_summary_ex(const nb_tensor *t, int full_max, int head,
                            int digits, char *buf, size_t buflen)
{
    /* No buffer means measuring only, whatever buflen says. */
    sink s = {NULL, buf, buf ? buflen : 0, 0, false};
    if (buf && buflen)
        buf[0] = '\0';
    if (t)
        put_tensor(&s, t, full_max, head, digits);
    return s.len;
}

size_t nb_tensor_summary(const nb_tensor *t, int full_max, char *buf,
                         size_t buflen)
{
    return nb_tensor_summary_ex(t, full_max, 6, 6, buf, buflen);
}

static void put_header(sink *s, const nb_node *n)
{
    put(s, "#%lld %s", (long long)n->id, nb_node_name(n));
    if (n->kind == NB_NODE_OP) {
        put(s, " = %s(", n->op->name);
        for (int i = 0; i < n->n_inputs; i++)
            put(s, "%s%s", i ? ", " : "", nb_node_name(nb_node_inputs(n)[i]));
        put(s, "):");
    } else {
        put(s, ": %s", nb_node_op_name(n));
    }
    put(s, " ");
    put_shape(s, &n->value);
    put(s, " %s", nb_dtype_name(n->value.dtype));
    if (n->kind == NB_NODE_PARAM)
        put(s, n->trainable ? ", trainable" : ", frozen");
    if (n->kind == NB_NODE_INPUT && n->requires_grad)
        put(s, ", requires grad");
    put(s, "\n");
}

static void put_entry(sink *s, const nb_trace *t, int64_t i, int full_max)
{
    const trace_entry *e = &t->entries[i];
    const nb_node *n = e->node;
    put_header(s, n);
    if (n->kind == NB_NODE_OP && n->op->doc)
        put(s, "  rule: %s\n", n->op->doc);
    put(s, "  value = ");
    put_tensor(s, e->value, full_max, 6, 6);
    put(s, "\n");
    for (int k = 0; k < e->n_in; k++) {
        const trace_msg *m = in_msg(t, i, k);
        if (m->from)
            put(s, "  message from '%s' (input %d) = ", nb_node_name(m->from),
                m->slot);
        else
            put(s, "  seed = ");
        put_tensor(s, m->tensor, full_max, 6, 6);
        put(s, "\n");
    }
    if (!e->grad)
        return;
    put(s, "  delta = ");
    if (e->n_in > 1)
        put(s, "sum of %d messages = ", e->n_in);
    put_tensor(s, e->grad, full_max, 6, 6);
    put(s, "\n");
    for (int slot = 0; slot < n->n_inputs; slot++) {
        const nb_node *u = nb_node_inputs(n)[slot];
        const nb_tensor *m = nb_trace_out_message(t, i, slot);
        put(s, "  message to '%s' (input %d)", nb_node_name(u), slot);
        if (m) {
            put(s, " = ");
            put_tensor(s, m, full_max, 6, 6);
            put(s, "\n");
        } else {
            put(s, ": none (%s)\n",
                u->needs_grad ? "zero gradient" : "needs no gradient");
        }
    }
}

static void put_trace(sink *s, const nb_trace *t, int full_max)
{
    if (!t->output) {
        put(s, "backward trace: empty (no pass was recorded)\n");
        return;
    }
    put(s, "backward trace of '%s': %lld nodes, forward order\n",
        nb_node_name(t->output), (long long)t->n_entries);
    for (int64_t i = 0; i < t->n_entries; i++)
        put_entry(s, t, i, full_max);
}

int nb_trace_print(const nb_trace *t, FILE *f, int full_max)
{
    if (!t || !f)
        return NB_ERR_ARG;
    sink s = {f, NULL, 0, 0, false};
    put_trace(&s, t, full_max);
    return s.failed || ferror(f) ? NB_ERR_STATE : NB_OK;
}

size_t nb_trace_format(const nb_trace *t, int full_max, char *buf,
                       size_t buflen)
{
    sink s = {NULL, buf, buf ? buflen : 0, 0, false};
    if (buf && buflen)
        buf[0] = '\0';
    if (t)
        put_trace(&s, t, full_max);
    return s.len;
}

char *nb_trace_to_string(const nb_trace *t, int full_max)
{
    if (!t)
        return NULL;
    size_t len = nb_trace_format(t, full_max, NULL, 0);
    char *text = nb_alloc(len + 1);
    if (text)
        nb_trace_format(t, full_max, text, len + 1);
    return text;
}
