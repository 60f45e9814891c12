/* DOT export: node lines with names, ops, shapes and kind styles, one edge
 * per input slot, the part a target needs, values and gradients, the
 * backward messages of a trace on the edges, escaping of awkward names,
 * errors, and (when Graphviz is installed) that `dot` accepts the files. */
#include <unistd.h>

#include "test_util.h"

/* Everything a FILE received, in a malloc'd string. */
static char *slurp(FILE *f)
{
    long len = ftell(f);
    char *text = len >= 0 ? calloc((size_t)len + 1, 1) : NULL;
    rewind(f);
    if (text && fread(text, 1, (size_t)len, f) != (size_t)len) {
        free(text);
        text = NULL;
    }
    return text;
}

static char *graph_dot(nb_graph *g, const nb_node *target, unsigned flags)
{
    FILE *f = tmpfile();
    if (!f)
        return NULL;
    int rc = nb_graph_write_dot(g, target, f, flags);
    CHECK(rc == NB_OK, "write_dot: %d %s", rc, nb_graph_error(g));
    char *text = slurp(f);
    fclose(f);
    return text;
}

static char *trace_dot(const nb_trace *t, unsigned flags)
{
    FILE *f = tmpfile();
    if (!f)
        return NULL;
    CHECK(nb_trace_write_dot(t, f, flags) == NB_OK, "trace_write_dot");
    char *text = slurp(f);
    fclose(f);
    return text;
}

static void check_has(const char *text, const char *want)
{
    CHECK(text && strstr(text, want) != NULL, "text lacks:\n%s\n--- text:\n%s",
          want, text ? text : "(null)");
}

static void check_lacks(const char *text, const char *unwanted)
{
    CHECK(text && strstr(text, unwanted) == NULL, "text has '%s'", unwanted);
}

#define AWKWARD "say \"hi\"\nback\\slash\ta"

/* x (2x3) -> h = relu(x W1 + b1) -> L = sum((h + F) * c), with F frozen, c
 * constant, an unused branch and a constant with an awkward name. Every
 * entry of x, W1, b1 is positive, so relu passes everything and
 * dL/db1 = 2 c (two rows). */
static nb_graph *mlp_like(nb_node **L_out)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *W1 = nb_param(g, "W1", NB_F32, 2, SHAPE(3, 4));
    nb_node *b1 = nb_param(g, "b1", NB_F32, 1, SHAPE(4));
    nb_node *F = nb_param(g, "F", NB_F32, 1, SHAPE(4));
    nb_node *c = nb_constant(g, "c", NB_F32, 1, SHAPE(4));
    nb_param_set_trainable(g, F, false);
    nb_tensor_fill(nb_node_value(W1), 0.5);
    nb_tensor_fill(nb_node_value(b1), 0.25);
    SET(c, 1, 2, 3, 4);
    nb_feed(g, x, 2, SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    nb_node *h = nb_relu(g, nb_add(g, nb_matmul(g, x, W1), b1));
    nb_node_set_name(h, "h");
    nb_node *L = nb_sum(g, nb_mul(g, nb_add(g, h, F), c));
    nb_node_set_name(L, "L");
    nb_node_set_name(nb_exp(g, x), "unused");
    nb_scalar(g, NULL, NB_F32, 1.0);
    nb_node_set_name(nb_graph_node(g, 12), AWKWARD);
    *L_out = L;
    return g;
}

static void test_graph_dot(void)
{
    nb_node *L;
    nb_graph *g = mlp_like(&L);
    CHECK(L != NULL && nb_graph_node_count(g) == 13, "build: %s",
          nb_graph_error(g));

    char *all = graph_dot(g, NULL, 0);
    check_has(all, "digraph nabla {\n  rankdir=BT;\n");
    check_has(all, "  n0 [label=\"x\\ninput\\n[2,3] f32\", shape=box, "
                   "style=filled, fillcolor=\"#cfe2f3\"];\n");
    check_has(all, "  n1 [label=\"W1\\nparam\\n[3,4] f32\", shape=box, "
                   "style=\"filled,bold\", fillcolor=\"#f9cb9c\"];\n");
    check_has(all, "  n3 [label=\"F\\nfrozen param\\n[4] f32\", shape=box, "
                   "style=\"filled,dashed\", fillcolor=\"#e0e0e0\"];\n");
    check_has(all, "  n4 [label=\"c\\nconstant\\n[4] f32\", shape=box, "
                   "style=\"filled,rounded\", fillcolor=\"#ffffff\"];\n");
    check_has(all, "  n5 [label=\"matmul #5\\n[2,4] f32\", shape=ellipse, "
                   "style=filled, fillcolor=\"#fff2cc\", tooltip=\"");
    check_has(all, "  n7 [label=\"h\\nrelu\\n[2,4] f32\", shape=ellipse");
    check_has(all, "  n10 [label=\"L\\nsum\\n[] f32\", shape=ellipse");
    check_has(all, "  n11 [label=\"unused\\nexp\\n[2,3] f32\"");
    /* One edge per slot, labelled where the op has several. */
    check_has(all, "  n0 -> n5 [label=\"in 0\"];\n");
    check_has(all, "  n1 -> n5 [label=\"in 1\"];\n");
    check_has(all, "  n6 -> n7;\n");
    check_has(all, "  n9 -> n10;\n");
    check_has(all, "  n0 -> n11;\n");
    /* The awkward name: quote and backslash escaped, newline as \n, the
     * tab as a space. */
    check_has(all, "  n12 [label=\"say \\\"hi\\\"\\nback\\\\slash a"
                   "\\nconstant\\n[] f32\"");
    check_lacks(all, "peripheries");
    check_lacks(all, "value ");
    CHECK(all && strcmp(all + strlen(all) - 2, "}\n") == 0, "closing brace");
    free(all);

    /* Only what L needs, L outlined twice. */
    char *part = graph_dot(g, L, NB_DOT_LEFT_RIGHT);
    check_has(part, "  rankdir=LR;\n");
    check_has(part, "  label=\"nodes needed by 'L'\";\n");
    check_has(part, "  n10 [label=\"L\\nsum\\n[] f32\", shape=ellipse, "
                    "style=filled, fillcolor=\"#fff2cc\", peripheries=2");
    check_has(part, "  n0 [label=\"x");
    check_lacks(part, "n11");
    check_lacks(part, "n12");
    free(part);

    /* Values and gradients, summarised past four entries. */
    CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
          nb_graph_error(g));
    char *vals = graph_dot(g, L, NB_DOT_VALUES | NB_DOT_GRADS);
    check_has(vals, "  n4 [label=\"c\\nconstant\\n[4] f32\\nvalue [1, 2, 3, "
                    "4]\", shape=box");
    check_has(vals, "  n2 [label=\"b1\\nparam\\n[4] f32\\nvalue [0.25, 0.25, "
                    "0.25, 0.25]\\ngrad [2, 4, 6, 8]\"");
    /* x = [[1,2,3],[4,5,6]]: L2 norm sqrt(91). */
    char want[160];
    snprintf(want, sizeof want,
             "  n0 [label=\"x\\ninput\\n[2,3] f32\\nvalue 1, 2, 3, ...\\n"
             "(L2 norm %.4g)\"",
             sqrt(91.0));
    check_has(vals, want);
    /* dL/dW1[i][j] = (x[0][i] + x[1][i]) c[j]: rows 5c, 7c, 9c. */
    snprintf(want, sizeof want, "\\ngrad 5, 10, 15, ...\\n(L2 norm %.4g)\"",
             sqrt(155.0 * 30.0));
    check_has(vals, want);
    /* h + F + c... reach L: sum of 2 rows of (h + F) c. h = x W1 + b1 has
     * rows 3.25 and 7.75 everywhere; L = (3.25 + 7.75) (1+2+3+4). */
    check_has(vals, "  n10 [label=\"L\\nsum\\n[] f32\\nvalue 110\\ngrad 1\"");
    check_has(vals, "  n3 [label=\"F\\nfrozen param\\n[4] f32\\nvalue [0, 0, "
                    "0, 0]\", shape=box");
    free(vals);
    nb_graph_free(g);
}

/* The fan-out graph: s = x + y feeds p = 3 s and q = s^2. With x = y = 1
 * the edges into p and q carry 3 and 4 back to s; x * x carries two
 * messages on two edges; an input needing no gradient gets a grey edge. */
static void test_trace_dot(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 0, NULL);
    nb_node *y = nb_param(g, "y", NB_F64, 0, NULL);
    nb_node *k = nb_input(g, "k", NB_F64, 0, NULL);
    SET(x, 1);
    SET(y, 1);
    nb_feed(g, k, 0, NULL, (double[]){5});
    nb_node *s = nb_add(g, x, y);
    nb_node_set_name(s, "s");
    /* One call per statement: C leaves the order of argument evaluation,
     * and so the node ids, open. */
    nb_node *p = nb_scale(g, s, 3.0);
    nb_node *q = nb_square(g, s);
    nb_node *pq = nb_add(g, p, q);
    nb_node *xx = nb_mul(g, x, x);
    nb_node *L = nb_add(g, pq, nb_mul(g, xx, k));
    nb_trace *t = nb_trace_run(g, L);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    char *text = trace_dot(t, NB_DOT_GRADS);
    check_has(text, "  label=\"backward messages of 'add#9'\";\n");
    check_has(text, "  n3 [label=\"s\\nadd\\n[] f64\\ngrad 7\"");
    check_has(text, "  n3 -> n4 [label=\"msg 3\", fontcolor=\"#b22222\", "
                    "color=\"#b22222\"];\n");
    check_has(text, "  n3 -> n5 [label=\"msg 4\", fontcolor=\"#b22222\", "
                    "color=\"#b22222\"];\n");
    check_has(text, "  n0 -> n3 [label=\"in 0\\nmsg 7\"");
    /* x * x inside (x * x) k: each slot carries dz * x = k x = 5. */
    check_has(text, "  n0 -> n7 [label=\"in 0\\nmsg 5\"");
    check_has(text, "  n0 -> n7 [label=\"in 1\\nmsg 5\"");
    check_has(text, "  n2 -> n8 [label=\"in 1\", style=dashed, "
                    "color=\"#999999\"];\n");
    /* x: 7 from s plus 10 from x * x. */
    check_has(text, "  n0 [label=\"x\\nparam\\n[] f64\\ngrad 17\"");
    check_has(text, "peripheries=2");
    free(text);
    nb_trace_free(t);
    nb_graph_free(g);

    /* A summarised message keeps its shape on the edge: L = sum(v * v)
     * sends v back on each slot. */
    g = nb_graph_new();
    nb_node *v = nb_param(g, "v", NB_F64, 1, SHAPE(5));
    SET(v, 1, 2, 3, 4, 5);
    t = nb_trace_run(g, nb_sum(g, nb_mul(g, v, v)));
    CHECK(t != NULL, "%s", nb_graph_error(g));
    text = trace_dot(t, 0);
    char want[160];
    snprintf(want, sizeof want,
             "  n0 -> n1 [label=\"in 1\\nmsg [5]: 1, 2, 3, ...\\n(L2 norm "
             "%.4g)\"",
             sqrt(55.0));
    check_has(text, want);
    free(text);
    nb_trace_free(t);
    nb_graph_free(g);
}

static void test_errors(void)
{
    nb_graph *g = nb_graph_new(), *h = nb_graph_new();
    nb_node *a = nb_param(g, "a", NB_F32, 0, NULL);
    nb_node *b = nb_param(h, "b", NB_F32, 0, NULL);
    FILE *f = tmpfile();
    CHECK(nb_graph_write_dot(NULL, a, f, 0) == NB_ERR_ARG, "NULL graph");
    CHECK(nb_graph_write_dot(g, a, NULL, 0) == NB_ERR_ARG, "NULL file");
    CHECK_ERROR(g, "write_dot", "file");
    CHECK(nb_graph_write_dot(g, b, f, 0) == NB_ERR_ARG, "foreign node");
    CHECK_ERROR(g, "write_dot", "'b'", "another graph");
    FILE *ro = fopen("/dev/null", "r");
    if (ro) {
        CHECK(nb_graph_write_dot(g, NULL, ro, 0) == NB_ERR_STATE,
              "read-only stream");
        CHECK_ERROR(g, "write_dot", "writing failed");
        fclose(ro);
    }
    CHECK(nb_trace_write_dot(NULL, f, 0) == NB_ERR_ARG, "NULL trace");
    nb_trace *t = nb_trace_begin(g);
    nb_trace_end(t);
    CHECK(nb_trace_write_dot(t, f, 0) == NB_ERR_ARG, "empty trace");
    nb_trace_free(t);
    /* An empty graph is still a valid digraph. */
    nb_graph *e = nb_graph_new();
    char *text = graph_dot(e, NULL, 0);
    CHECK(text && strcmp(text, "digraph nabla {\n  rankdir=BT;\n"
                               "  fontname=\"Helvetica\";\n"
                               "  node [fontname=\"Helvetica\", fontsize=10];\n"
                               "  edge [fontname=\"Helvetica\", fontsize=9];\n"
                               "}\n") == 0,
          "empty graph:\n%s", text ? text : "(null)");
    free(text);
    if (f)
        fclose(f);
    nb_graph_free(e);
    nb_graph_free(g);
    nb_graph_free(h);
}

/* Runs `dot -Tsvg` on a file and checks it produced an SVG. */
static void render(const char *dir, const char *name)
{
    char cmd[1024], svg[512];
    snprintf(svg, sizeof svg, "%s/%s.svg", dir, name);
    snprintf(cmd, sizeof cmd, "dot -Tsvg '%s/%s.dot' -o '%s' 2>&1", dir, name,
             svg);
    CHECK(system(cmd) == 0, "%s failed", cmd);
    FILE *f = fopen(svg, "r");
    char head[4096] = {0};
    size_t got = f ? fread(head, 1, sizeof head - 1, f) : 0;
    CHECK(got > 0 && strstr(head, "<svg") != NULL, "%s is not an SVG", svg);
    if (f)
        fclose(f);
    remove(svg);
}

static void test_render(void)
{
    if (system("dot -V > /dev/null 2>&1") != 0) {
        printf("note: Graphviz 'dot' is not on PATH; rendering not tested\n");
        return;
    }
    char dir[] = "/tmp/nabla-dot-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    char path[512];
    nb_node *L;
    nb_graph *g = mlp_like(&L);
    nb_forward(g, L);
    nb_backward(g, L);
    snprintf(path, sizeof path, "%s/graph.dot", dir);
    FILE *f = fopen(path, "w");
    CHECK(f && nb_graph_write_dot(g, NULL, f, NB_DOT_VALUES | NB_DOT_GRADS) ==
                   NB_OK,
          "write %s", path);
    if (f)
        fclose(f);
    render(dir, "graph");
    remove(path);

    nb_trace *t = nb_trace_run(g, L);
    snprintf(path, sizeof path, "%s/trace.dot", dir);
    f = fopen(path, "w");
    CHECK(f && t && nb_trace_write_dot(t, f, NB_DOT_VALUES) == NB_OK,
          "write %s", path);
    if (f)
        fclose(f);
    render(dir, "trace");
    remove(path);
    nb_trace_free(t);
    nb_graph_free(g);
    rmdir(dir);
}

/* A state node (batch norm's running statistics) has a style of its own
 * and says what it is. */
static void test_state_dot(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(4, 2));
    nb_node *rm = nb_state(g, "bn.running_mean", NB_F32, 1, SHAPE(2));
    nb_node *rv = nb_state(g, "bn.running_var", NB_F32, 1, SHAPE(2));
    nb_node *y = nb_batch_norm(g, x, rm, rv, NULL, NULL, 0.1, 1e-5);
    CHECK(y != NULL, "%s", nb_graph_error(g));
    char *all = graph_dot(g, NULL, 0);
    check_has(all, "  n1 [label=\"bn.running_mean\\nstate\\n[2] f32\", "
                   "shape=box, style=\"filled,dashed\", "
                   "fillcolor=\"#d9ead3\"];\n");
    check_has(all, "  n3 [label=\"batch_norm #3\\n[4,2] f32\"");
    check_has(all, "  n2 -> n3 [label=\"in 2\"];\n");
    free(all);
    nb_graph_free(g);
}

int main(void)
{
    test_graph_dot();
    test_state_dot();
    test_trace_dot();
    test_errors();
    test_render();
    return tu_finish("dot");
}
