/* Graphviz DOT export of a graph, or of a trace with its backward messages.
 *
 * Nodes are written as n<id>, so names never need to be DOT identifiers;
 * names go only into quoted labels, escaped: '"' and '\\' take a
 * backslash, a newline becomes the escape \n, and other control bytes a
 * space (DOT strings may not hold them raw, and a lone '\\' would start
 * one of Graphviz's escapes such as \N or \l).
 */
#include <string.h>

#include "core/internal.h"
#include "nabla/dot.h"

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c < 0x20 || c == 0x7f) {
            fputc(' ', f);
        } else {
            fputc(c, f);
        }
    }
}

/* A tensor in a label: short, with the norm of a summary on a line of its
 * own, so that nodes stay narrow. A node's label states its shape already,
 * so there a summary leaves out its "[shape]: " prefix. */
static void put_summary(FILE *f, const nb_tensor *t, bool with_shape)
{
    char buf[512];
    nb_tensor_summary_ex(t, NB_DOT_FULL_MAX, 3, 4, buf, sizeof buf);
    char *norm = strstr(buf, " (L2 norm");
    if (norm)
        *norm = '\0';
    char *start = buf;
    if (norm && !with_shape && (start = strstr(buf, "]: ")) != NULL)
        start += 3;
    else
        start = buf;
    put_escaped(f, start);
    if (norm) {
        fputs("\\n", f);
        put_escaped(f, norm + 1);
    }
}

static void put_tensor_line(FILE *f, const char *what, const nb_tensor *t)
{
    fputs("\\n", f);
    put_escaped(f, what);
    put_summary(f, t, false);
}

/* True for the "<op>#<id>" name an unnamed op node is given. */
static bool default_name(const nb_node *n)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s#%lld", nb_node_op_name(n), (long long)n->id);
    return strcmp(buf, nb_node_name(n)) == 0;
}

static const char *node_style(const nb_node *n)
{
    switch (n->kind) {
    case NB_NODE_INPUT:
        return "shape=box, style=filled, fillcolor=\"#cfe2f3\"";
    case NB_NODE_PARAM:
        return n->trainable
                   ? "shape=box, style=\"filled,bold\", fillcolor=\"#f9cb9c\""
                   : "shape=box, style=\"filled,dashed\", "
                     "fillcolor=\"#e0e0e0\"";
    case NB_NODE_CONSTANT:
        return "shape=box, style=\"filled,rounded\", fillcolor=\"#ffffff\"";
    case NB_NODE_STATE:
        return "shape=box, style=\"filled,dashed\", fillcolor=\"#d9ead3\"";
    default:
        return "shape=ellipse, style=filled, fillcolor=\"#fff2cc\"";
    }
}

static void put_node(FILE *f, const nb_node *n, const nb_tensor *value,
                     const nb_tensor *grad, bool target, unsigned flags)
{
    char shape[NB_MAX_RANK * 24 + 8];
    nb_shape_str(n->value.rank, n->value.shape, shape, sizeof shape);
    fprintf(f, "  n%lld [label=\"", (long long)n->id);
    if (n->kind == NB_NODE_OP && default_name(n)) {
        put_escaped(f, n->op->name);
        fprintf(f, " #%lld", (long long)n->id);
    } else {
        put_escaped(f, nb_node_name(n));
        fputs("\\n", f);
        if (n->kind == NB_NODE_PARAM && !n->trainable)
            fputs("frozen ", f);
        put_escaped(f, nb_node_op_name(n));
    }
    fprintf(f, "\\n%s %s", shape, nb_dtype_name(n->value.dtype));
    if ((flags & NB_DOT_VALUES) && value)
        put_tensor_line(f, "value ", value);
    if ((flags & NB_DOT_GRADS) && grad)
        put_tensor_line(f, "grad ", grad);
    fprintf(f, "\", %s", node_style(n));
    if (target)
        fputs(", peripheries=2", f);
    if (n->kind == NB_NODE_OP && n->op->doc) {
        fputs(", tooltip=\"", f);
        put_escaped(f, n->op->doc);
        fputc('"', f);
    }
    fputs("];\n", f);
}

/* One edge per input slot. With a trace, the label carries the message
 * sent back along the edge, or the edge is grey where none was. */
static void put_edges(FILE *f, const nb_node *n, const nb_trace *t,
                      int64_t entry)
{
    nb_node *const *in = nb_node_inputs(n);
    for (int i = 0; i < n->n_inputs; i++) {
        fprintf(f, "  n%lld -> n%lld", (long long)in[i]->id,
                (long long)n->id);
        const nb_tensor *msg = t ? nb_trace_out_message(t, entry, i) : NULL;
        bool slot = n->n_inputs > 1;
        if (!slot && !msg) {
            fputs(t && n->kind == NB_NODE_OP
                      ? " [style=dashed, color=\"#999999\"];\n"
                      : ";\n",
                  f);
            continue;
        }
        fputs(" [label=\"", f);
        if (slot)
            fprintf(f, "in %d", i);
        if (msg) {
            fputs(slot ? "\\nmsg " : "msg ", f);
            put_summary(f, msg, true);
        }
        fputc('"', f);
        if (msg)
            fputs(", fontcolor=\"#b22222\", color=\"#b22222\"", f);
        else if (t)
            fputs(", style=dashed, color=\"#999999\"", f);
        fputs("];\n", f);
    }
}

/* Every bit a flags argument may hold; any other is refused. */
#define DOT_KNOWN_FLAGS \
    ((unsigned)(NB_DOT_VALUES | NB_DOT_GRADS | NB_DOT_LEFT_RIGHT))

static void put_open(FILE *f, const char *title, const nb_node *target,
                     unsigned flags)
{
    fprintf(f, "digraph nabla {\n  rankdir=%s;\n",
            flags & NB_DOT_LEFT_RIGHT ? "LR" : "BT");
    fputs("  fontname=\"Helvetica\";\n"
          "  node [fontname=\"Helvetica\", fontsize=10];\n"
          "  edge [fontname=\"Helvetica\", fontsize=9];\n",
          f);
    if (title) {
        fprintf(f, "  labelloc=t;\n  label=\"%s", title);
        if (target) {
            fputs(" '", f);
            put_escaped(f, nb_node_name(target));
            fputc('\'', f);
        }
        fputs("\";\n", f);
    }
}

int nb_graph_write_dot(nb_graph *g, const nb_node *target, FILE *f,
                       unsigned flags)
{
    if (!g)
        return NB_ERR_ARG;
    if (!f)
        return nb_set_error(g, NB_ERR_ARG, "write_dot: file is NULL");
    if (flags & ~DOT_KNOWN_FLAGS)
        return nb_set_error(g, NB_ERR_ARG,
                            "write_dot: unknown flags 0x%x (known: "
                            "NB_DOT_VALUES, NB_DOT_GRADS, NB_DOT_LEFT_RIGHT)",
                            flags & ~DOT_KNOWN_FLAGS);
    if (target && nb_node_owner(target) != g)
        return nb_set_error(g, NB_ERR_ARG,
                            "write_dot: node '%s' belongs to another graph",
                            nb_node_name(target));
    int64_t count = target ? target->id + 1 : g->n_nodes;
    uint8_t *keep = nb_alloc_zeroed((size_t)(count ? count : 1));
    if (!keep)
        return nb_set_error(g, NB_ERR_NOMEM, "write_dot: out of memory");
    /* Ids are a topological order: walking down from the target marks
     * exactly its ancestors, without recursion. */
    for (int64_t id = 0; id < count; id++)
        keep[id] = target == NULL;
    if (target)
        keep[target->id] = 1;
    for (int64_t id = count - 1; target && id >= 0; id--) {
        if (!keep[id])
            continue;
        const nb_node *n = nb_graph_node_at(g, id);
        nb_node *const *in = nb_node_inputs(n);
        for (int i = 0; i < n->n_inputs; i++)
            keep[in[i]->id] = 1;
    }
    put_open(f, target ? "nodes needed by" : NULL, target, flags);
    for (int64_t id = 0; id < count; id++) {
        if (!keep[id])
            continue;
        nb_node *n = nb_graph_node_at(g, id);
        put_node(f, n, &n->value, nb_node_grad(n), n == target, flags);
    }
    for (int64_t id = 0; id < count; id++)
        if (keep[id])
            put_edges(f, nb_graph_node_at(g, id), NULL, -1);
    fputs("}\n", f);
    nb_free(keep);
    if (ferror(f))
        return nb_set_error(g, NB_ERR_STATE, "write_dot: writing failed");
    return NB_OK;
}

int nb_trace_write_dot(const nb_trace *t, FILE *f, unsigned flags)
{
    int64_t count = nb_trace_count(t);
    if (!t || !f || count == 0 || (flags & ~DOT_KNOWN_FLAGS))
        return NB_ERR_ARG;
    const nb_node *out = nb_trace_output(t);
    put_open(f, "backward messages of", out, flags);
    for (int64_t e = 0; e < count; e++) {
        const nb_node *n = nb_trace_node(t, e);
        put_node(f, n, nb_trace_value(t, e), nb_trace_grad(t, e), n == out,
                 flags);
    }
    for (int64_t e = 0; e < count; e++)
        put_edges(f, nb_trace_node(t, e), t, e);
    fputs("}\n", f);
    return ferror(f) ? NB_ERR_STATE : NB_OK;
}
