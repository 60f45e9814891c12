/* Backward traces against the lecture derivations: the multiplication node
 * (messages dz*y and dz*x), the summation node whose output fans out (two
 * messages summed), the max node (everything to the winner), x*x (two
 * messages to one node), the regularised logistic unit (w hears from the
 * unit and from the penalty), the printer's text, summaries of large
 * tensors, and that ending a trace leaves normal runs as they were. Every
 * expected number is computed here from the formulas, not read back. */
#include "test_util.h"

static double sigmoid(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

static nb_node *param_vec(nb_graph *g, const char *name, int n, const double *v)
{
    nb_node *p = nb_param(g, name, NB_F64, 1, SHAPE(n));
    if (p)
        nb_tensor_copy_from_f64(nb_node_value(p), v, n);
    return p;
}

static nb_node *param_scalar(nb_graph *g, const char *name, double v)
{
    nb_node *p = nb_param(g, name, NB_F64, 0, NULL);
    if (p)
        nb_tensor_set(nb_node_value(p), 0, v);
    return p;
}

/* Checks a tensor's elements against want[0..n). */
static void check_tensor(const nb_tensor *t, int n, const double *want,
                         double tol, const char *what)
{
    CHECK(t != NULL, "%s: no tensor", what);
    if (!t)
        return;
    CHECK(nb_tensor_size(t) == n, "%s: %lld elements, want %d", what,
          (long long)nb_tensor_size(t), n);
    for (int i = 0; i < n && i < nb_tensor_size(t); i++)
        CHECK(fabs(nb_tensor_get(t, i) - want[i]) <= tol,
              "%s[%d] = %.17g, want %.17g", what, i, nb_tensor_get(t, i),
              want[i]);
}
#define CHECK_T(t, tol, what, ...)                                             \
    check_tensor((t), (int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)), \
                 (double[]){__VA_ARGS__}, (tol), (what))

static char *fmt6(char *buf, double v)
{
    snprintf(buf, 32, "%.6g", v);
    return buf;
}

static void check_has(const char *text, const char *want)
{
    CHECK(text && strstr(text, want) != NULL, "text lacks:\n%s\n--- text:\n%s",
          want, text ? text : "(null)");
}

/* The multiplication node z = x * y, reached with an upstream gradient dz
 * (a seed): it sends dz * y to x and dz * x to y. Uses begin/end and a
 * non-scalar output. */
static void test_mul_node(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = param_vec(g, "x", 3, (double[]){1, 2, 3});
    nb_node *y = param_vec(g, "y", 3, (double[]){4, 5, 6});
    nb_node *z = nb_mul(g, x, y);
    nb_tensor *dz = nb_tensor_new(NB_F64, 1, SHAPE(3));
    nb_tensor_copy_from_f64(dz, (double[]){1, -1, 2}, 3);
    CHECK(z != NULL, "%s", nb_graph_error(g));

    nb_trace *t = nb_trace_begin(g);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    CHECK(nb_forward(g, z) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward_ex(g, z, dz, 0) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_trace_end(t) == NB_OK, "%s", nb_graph_error(g));

    CHECK(nb_trace_output(t) == z, "output");
    CHECK(nb_trace_count(t) == 3, "%lld entries", (long long)nb_trace_count(t));
    CHECK(nb_trace_node(t, 0) == x && nb_trace_node(t, 1) == y &&
              nb_trace_node(t, 2) == z,
          "forward order");
    int64_t ix = nb_trace_find(t, x), iy = nb_trace_find(t, y),
            iz = nb_trace_find(t, z);
    CHECK(ix == 0 && iy == 1 && iz == 2, "find");
    CHECK_T(nb_trace_value(t, iz), 0, "z value", 4, 10, 18);

    /* z hears only the seed. */
    CHECK(nb_trace_in_count(t, iz) == 1, "z messages");
    CHECK(nb_trace_in_sender(t, iz, 0) == NULL, "seed sender");
    CHECK(nb_trace_in_slot(t, iz, 0) == -1, "seed slot");
    CHECK_T(nb_trace_in_message(t, iz, 0), 0, "seed", 1, -1, 2);
    CHECK_T(nb_trace_grad(t, iz), 0, "delta z", 1, -1, 2);

    /* dz * y to x, dz * x to y. */
    CHECK_T(nb_trace_out_message(t, iz, 0), 0, "z -> x", 4, -5, 12);
    CHECK_T(nb_trace_out_message(t, iz, 1), 0, "z -> y", 1, -2, 6);
    CHECK(nb_trace_out_message(t, iz, 2) == NULL, "no slot 2");
    CHECK(nb_trace_in_count(t, ix) == 1 && nb_trace_in_sender(t, ix, 0) == z &&
              nb_trace_in_slot(t, ix, 0) == 0,
          "x hears z on slot 0");
    CHECK_T(nb_trace_in_message(t, ix, 0), 0, "x message", 4, -5, 12);
    CHECK_T(nb_trace_grad(t, ix), 0, "delta x", 4, -5, 12);
    CHECK(nb_trace_in_count(t, iy) == 1 && nb_trace_in_slot(t, iy, 0) == 1,
          "y hears z on slot 1");
    CHECK_T(nb_trace_grad(t, iy), 0, "delta y", 1, -2, 6);
    /* Leaves send nothing. */
    CHECK(nb_trace_out_message(t, ix, 0) == NULL, "leaf sends nothing");

    nb_trace_free(t);
    nb_tensor_free(dz);
    nb_graph_free(g);
}

/* s = x + y fans out to p = 3 s and q = s^2; L = p + q. The summation
 * node s hears 3 from p and 2 s from q, and its delta 3 + 2 s is what it
 * sends, unchanged, to both x and y. With x = 1, y = 1: s = 2, L = 10,
 * messages 3 and 4, delta 7. */
static nb_graph *fanout_graph(nb_node **s_out, nb_node **L_out)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = param_scalar(g, "x", 1.0);
    nb_node *y = param_scalar(g, "y", 1.0);
    nb_node *s = nb_add(g, x, y);
    nb_node_set_name(s, "s");
    nb_node *p = nb_scale(g, s, 3.0);
    nb_node *q = nb_square(g, s);
    *L_out = nb_add(g, p, q);
    *s_out = s;
    return g;
}

static void check_fanout(const nb_trace *t, nb_node *s, nb_node *L)
{
    int64_t is = nb_trace_find(t, s);
    CHECK(is >= 0, "s traced");
    nb_node *p = nb_node_input(L, 0), *q = nb_node_input(L, 1);
    CHECK_T(nb_trace_value(t, nb_trace_find(t, L)), 0, "L", 10);
    CHECK_T(nb_trace_value(t, is), 0, "s", 2);
    CHECK(nb_trace_in_count(t, is) == 2, "s hears %d messages",
          nb_trace_in_count(t, is));
    CHECK(nb_trace_in_sender(t, is, 0) == p &&
              nb_trace_in_sender(t, is, 1) == q,
          "senders in forward order");
    CHECK_T(nb_trace_in_message(t, is, 0), 0, "p -> s", 3);
    CHECK_T(nb_trace_in_message(t, is, 1), 0, "q -> s", 4);
    CHECK_T(nb_trace_grad(t, is), 0, "delta s", 7);
    const nb_tensor *m0 = nb_trace_in_message(t, is, 0),
                    *m1 = nb_trace_in_message(t, is, 1);
    if (m0 && m1 && nb_trace_grad(t, is))
        CHECK(nb_tensor_get(m0, 0) + nb_tensor_get(m1, 0) ==
                  nb_tensor_get(nb_trace_grad(t, is), 0),
              "delta is the sum of the messages");
    CHECK_T(nb_trace_out_message(t, is, 0), 0, "s -> x", 7);
    CHECK_T(nb_trace_out_message(t, is, 1), 0, "s -> y", 7);
    CHECK_T(nb_trace_grad(t, nb_trace_find(t, nb_node_input(s, 0))), 0,
            "delta x", 7);
}

static void test_fanout(void)
{
    nb_node *s, *L;
    nb_graph *g = fanout_graph(&s, &L);
    CHECK(L != NULL, "%s", nb_graph_error(g));
    nb_trace *t = nb_trace_run(g, L);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    check_fanout(t, s, L);
    char *text = nb_trace_to_string(t, 0);
    check_has(text, "#2 s = add(x, y): [] f64\n"
                    "  rule: y = a + b");
    check_has(text, "  value = 2\n"
                    "  message from 'scale#3' (input 0) = 3\n"
                    "  message from 'square#4' (input 0) = 4\n"
                    "  delta = sum of 2 messages = 7\n"
                    "  message to 'x' (input 0) = 7\n"
                    "  message to 'y' (input 1) = 7\n");
    nb_free(text);
    nb_trace_free(t);

    /* Two backward passes inside one recording: the trace keeps the last,
     * so s still shows two messages, not four. */
    t = nb_trace_begin(g);
    nb_forward(g, L);
    nb_backward(g, L);
    nb_backward(g, L);
    CHECK(nb_trace_end(t) == NB_OK, "%s", nb_graph_error(g));
    check_fanout(t, s, L);
    nb_trace_free(t);
    nb_graph_free(g);
}

/* The max node routes the whole upstream gradient to its winner; a tie
 * goes to the first input. */
static void test_max_node(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *a = param_scalar(g, "a", 2.0);
    nb_node *b = param_scalar(g, "b", 5.0);
    nb_node *m = nb_maximum(g, a, b);
    nb_node *L = nb_scale(g, m, 3.0);
    nb_trace *t = nb_trace_run(g, L);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    int64_t im = nb_trace_find(t, m);
    CHECK_T(nb_trace_value(t, im), 0, "max", 5);
    CHECK_T(nb_trace_grad(t, im), 0, "delta max", 3);
    CHECK_T(nb_trace_out_message(t, im, 0), 0, "max -> a (loser)", 0);
    CHECK_T(nb_trace_out_message(t, im, 1), 0, "max -> b (winner)", 3);
    CHECK_T(nb_trace_grad(t, nb_trace_find(t, b)), 0, "delta b", 3);
    nb_trace_free(t);
    nb_graph_free(g);

    g = nb_graph_new();
    nb_node *v = param_vec(g, "v", 3, (double[]){1, 7, 3});
    L = nb_scale(g, nb_max(g, v), 2.0);
    t = nb_trace_run(g, L);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    int64_t iv = nb_trace_find(t, v);
    CHECK(nb_trace_in_count(t, iv) == 1, "v messages");
    CHECK_T(nb_trace_in_message(t, iv, 0), 0, "max over v -> v", 0, 2, 0);
    nb_trace_free(t);
    nb_graph_free(g);

    g = nb_graph_new();
    a = param_scalar(g, "a", 4.0);
    b = param_scalar(g, "b", 4.0);
    m = nb_maximum(g, a, b);
    t = nb_trace_run(g, m);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    im = nb_trace_find(t, m);
    CHECK_T(nb_trace_out_message(t, im, 0), 0, "tie -> a", 1);
    CHECK_T(nb_trace_out_message(t, im, 1), 0, "tie -> b", 0);
    nb_trace_free(t);
    nb_graph_free(g);
}

/* z = x * x: x fills both slots of one node and hears two messages,
 * dz * x each; its delta is 2 x. */
static void test_square_by_mul(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = param_scalar(g, "x", 3.0);
    nb_node *z = nb_mul(g, x, x);
    nb_trace *t = nb_trace_run(g, z);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    int64_t ix = nb_trace_find(t, x), iz = nb_trace_find(t, z);
    CHECK(nb_trace_in_count(t, ix) == 2, "x hears %d messages",
          nb_trace_in_count(t, ix));
    CHECK(nb_trace_in_sender(t, ix, 0) == z &&
              nb_trace_in_sender(t, ix, 1) == z,
          "both from z");
    CHECK(nb_trace_in_slot(t, ix, 0) == 0 && nb_trace_in_slot(t, ix, 1) == 1,
          "slots 0 then 1");
    CHECK_T(nb_trace_in_message(t, ix, 0), 0, "slot 0 message", 3);
    CHECK_T(nb_trace_in_message(t, ix, 1), 0, "slot 1 message", 3);
    CHECK_T(nb_trace_out_message(t, iz, 0), 0, "z -> slot 0", 3);
    CHECK_T(nb_trace_out_message(t, iz, 1), 0, "z -> slot 1", 3);
    CHECK_T(nb_trace_grad(t, ix), 0, "delta x", 6);
    CHECK_T(nb_node_grad(x), 0, "x grad after the traced run", 6);
    char *text = nb_trace_to_string(t, 0);
    check_has(text, "  message from 'mul#1' (input 0) = 3\n"
                    "  message from 'mul#1' (input 1) = 3\n"
                    "  delta = sum of 2 messages = 6\n");
    nb_free(text);
    nb_trace_free(t);
    nb_graph_free(g);
}

/* z = w x + b, y = sigmoid(z), L = 1/2 (y - t)^2, R = 1/2 w^2,
 * Lreg = L + lambda R. w hears (y - t) y (1 - y) x from the unit and
 * lambda w from the penalty. */
static void test_logistic_l2(nb_dtype dtype, double tol)
{
    const double xv = 1.5, wv = -0.8, bv = 0.3, tv = 1.0, lambda = 0.1;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", dtype, 0, NULL);
    nb_node *tn = nb_input(g, "t", dtype, 0, NULL);
    nb_node *w = nb_param(g, "w", dtype, 0, NULL);
    nb_node *b = nb_param(g, "b", dtype, 0, NULL);
    nb_tensor_set(nb_node_value(w), 0, wv);
    nb_tensor_set(nb_node_value(b), 0, bv);
    nb_node *wx = nb_mul(g, w, x);
    nb_node *z = nb_add(g, wx, b);
    nb_node *y = nb_sigmoid(g, z);
    nb_node *L = nb_sse_loss(g, y, tn);
    nb_node *R = nb_l2_penalty(g, w);
    nb_node *Lreg = nb_add(g, L, nb_scale(g, R, lambda));
    CHECK(Lreg != NULL, "build: %s", nb_graph_error(g));
    if (!Lreg) {
        nb_graph_free(g);
        return;
    }
    nb_node_set_name(z, "z");
    nb_node_set_name(y, "y");
    nb_node_set_name(L, "L");
    nb_node_set_name(R, "R");
    nb_node_set_name(Lreg, "Lreg");
    if (dtype == NB_F64) {
        nb_feed(g, x, 0, NULL, (double[]){xv});
        nb_feed(g, tn, 0, NULL, (double[]){tv});
    } else {
        nb_feed(g, x, 0, NULL, (float[]){(float)xv});
        nb_feed(g, tn, 0, NULL, (float[]){(float)tv});
    }
    nb_trace *t = nb_trace_run(g, Lreg);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    if (!t) {
        nb_graph_free(g);
        return;
    }

    double zv = wv * xv + bv, yv = sigmoid(zv);
    double delta = (yv - tv) * yv * (1 - yv); /* dL/dz */
    double Lv = 0.5 * (yv - tv) * (yv - tv) + lambda * 0.5 * wv * wv;
    int64_t iw = nb_trace_find(t, w);
    CHECK_T(nb_trace_value(t, nb_trace_find(t, z)), tol, "z", zv);
    CHECK_T(nb_trace_value(t, nb_trace_find(t, y)), tol, "y", yv);
    CHECK_T(nb_trace_value(t, nb_trace_find(t, Lreg)), tol, "Lreg", Lv);
    CHECK_T(nb_trace_grad(t, nb_trace_find(t, y)), tol, "delta y", yv - tv);
    CHECK_T(nb_trace_grad(t, nb_trace_find(t, z)), tol, "delta z", delta);
    CHECK_T(nb_trace_grad(t, nb_trace_find(t, R)), tol, "delta R", lambda);

    CHECK(nb_trace_in_count(t, iw) == 2, "w hears %d messages",
          nb_trace_in_count(t, iw));
    CHECK(nb_trace_in_sender(t, iw, 0) == wx &&
              nb_trace_in_sender(t, iw, 1) == R,
          "w hears the unit, then the penalty");
    CHECK_T(nb_trace_in_message(t, iw, 0), tol, "unit -> w", delta * xv);
    CHECK_T(nb_trace_in_message(t, iw, 1), tol, "penalty -> w", lambda * wv);
    CHECK_T(nb_trace_grad(t, iw), tol, "delta w", delta * xv + lambda * wv);
    CHECK_T(nb_trace_grad(t, nb_trace_find(t, b)), tol, "delta b", delta);
    /* The inputs need no gradient: the unit sends x nothing. */
    CHECK(nb_trace_out_message(t, nb_trace_find(t, wx), 1) == NULL,
          "nothing to x");
    CHECK(nb_trace_grad(t, nb_trace_find(t, x)) == NULL, "x has no delta");

    if (dtype == NB_F64) {
        char *text = nb_trace_to_string(t, 0);
        char line[512], a[32], c[32], d[32];
        check_has(text, "backward trace of 'Lreg': 11 nodes, forward order\n");
        check_has(text, "#0 x: input [] f64\n"
                        "  value = 1.5\n"
                        "#1 t: input [] f64\n");
        snprintf(line, sizeof line,
                 "#2 w: param [] f64, trainable\n"
                 "  value = -0.8\n"
                 "  message from 'mul#4' (input 0) = %s\n"
                 "  message from 'R' (input 0) = %s\n"
                 "  delta = sum of 2 messages = %s\n",
                 fmt6(a, delta * xv), fmt6(c, lambda * wv),
                 fmt6(d, delta * xv + lambda * wv));
        check_has(text, line);
        snprintf(line, sizeof line,
                 "#4 mul#4 = mul(w, x): [] f64\n"
                 "  rule: y = a * b; da = dy * b, db = dy * a");
        check_has(text, line);
        snprintf(line, sizeof line,
                 "  message from 'z' (input 0) = %s\n"
                 "  delta = %s\n"
                 "  message to 'w' (input 0) = %s\n"
                 "  message to 'x' (input 1): none (needs no gradient)\n",
                 fmt6(a, delta), fmt6(c, delta), fmt6(d, delta * xv));
        check_has(text, line);
        snprintf(line, sizeof line,
                 "#10 Lreg = add(L, scale#9): [] f64\n"
                 "  rule: y = a + b");
        check_has(text, line);
        snprintf(line, sizeof line,
                 "  value = %s\n"
                 "  seed = 1\n"
                 "  delta = 1\n"
                 "  message to 'L' (input 0) = 1\n"
                 "  message to 'scale#9' (input 1) = 1\n",
                 fmt6(a, Lv));
        check_has(text, line);

        /* Buffer, string and FILE give the same text; a short buffer is
         * cut, terminated, and told the full length. */
        size_t len = nb_trace_format(t, 0, NULL, 0);
        CHECK(text && len == strlen(text), "format length %zu", len);
        char small[20];
        CHECK(nb_trace_format(t, 0, small, sizeof small) == len, "short");
        CHECK(strlen(small) == sizeof small - 1 && text &&
                  strncmp(small, text, sizeof small - 1) == 0,
              "cut text '%s'", small);
        FILE *f = tmpfile();
        CHECK(f != NULL, "tmpfile");
        if (f && text) {
            CHECK(nb_trace_print(t, f, 0) == NB_OK, "print");
            rewind(f);
            char *back = calloc(len + 2, 1);
            size_t got = back ? fread(back, 1, len + 1, f) : 0;
            CHECK(got == len && strcmp(back, text) == 0, "FILE text differs");
            free(back);
            fclose(f);
        }
        nb_free(text);
    }
    nb_trace_free(t);
    nb_graph_free(g);
}

/* Large tensors are summarised: shape, first six entries, L2 norm. */
static void test_summary(void)
{
    char buf[256], want[256];
    nb_tensor *big = nb_tensor_new(NB_F64, 2, SHAPE(50, 40));
    for (int i = 0; i < 2000; i++)
        nb_tensor_set(big, i, 0.001 * i);
    /* sum_{i<n} i^2 = (n-1) n (2n-1) / 6 */
    double norm = 0.001 * sqrt(1999.0 * 2000.0 * 3999.0 / 6.0);
    snprintf(want, sizeof want,
             "[50,40]: 0, 0.001, 0.002, 0.003, 0.004, 0.005, ... (L2 norm "
             "%.6g)",
             norm);
    nb_tensor_summary(big, 0, buf, sizeof buf);
    CHECK(strcmp(buf, want) == 0, "'%s' vs '%s'", buf, want);
    nb_tensor_free(big);

    nb_tensor *m = nb_tensor_new(NB_F32, 2, SHAPE(2, 2));
    nb_tensor_copy_from_f64(m, (double[]){1, 2, 3, 4.5}, 4);
    nb_tensor_summary(m, 0, buf, sizeof buf);
    CHECK(strcmp(buf, "[[1, 2], [3, 4.5]]") == 0, "'%s'", buf);
    /* Over full_max but within the head: every entry, then the norm. */
    nb_tensor_summary(m, 3, buf, sizeof buf);
    CHECK(strcmp(buf, "[2,2]: 1, 2, 3, 4.5 (L2 norm 5.85235)") == 0, "'%s'",
          buf);
    CHECK(nb_tensor_summary(m, 0, buf, 5) == strlen("[[1, 2], [3, 4.5]]") &&
              strcmp(buf, "[[1,") == 0,
          "cut '%s'", buf);
    nb_tensor_free(m);

    nb_tensor *r3 = nb_tensor_new(NB_F64, 3, SHAPE(2, 1, 2));
    nb_tensor_copy_from_f64(r3, (double[]){1, 2, 3, -4}, 4);
    nb_tensor_summary(r3, 0, buf, sizeof buf);
    CHECK(strcmp(buf, "[[[1, 2]], [[3, -4]]]") == 0, "'%s'", buf);
    nb_tensor_free(r3);
    nb_tensor *s = nb_tensor_new(NB_F64, 0, NULL);
    nb_tensor_set(s, 0, 2.5);
    nb_tensor_summary(s, 0, buf, sizeof buf);
    CHECK(strcmp(buf, "2.5") == 0, "'%s'", buf);
    nb_tensor_free(s);
    nb_tensor *e = nb_tensor_new(NB_F64, 2, SHAPE(0, 3));
    nb_tensor_summary(e, 0, buf, sizeof buf);
    CHECK(strcmp(buf, "[0,3] (empty)") == 0, "'%s'", buf);
    nb_tensor_free(e);

    /* In a trace: L = sum W^2 over 2000 entries, delta W = 2 W. */
    nb_graph *g = nb_graph_new();
    nb_node *W = nb_param(g, "W", NB_F64, 2, SHAPE(50, 40));
    for (int i = 0; i < 2000; i++)
        nb_tensor_set(nb_node_value(W), i, 0.001 * i);
    nb_trace *t = nb_trace_run(g, nb_sum(g, nb_square(g, W)));
    CHECK(t != NULL, "%s", nb_graph_error(g));
    char *text = nb_trace_to_string(t, 0);
    snprintf(want, sizeof want,
             "  value = [50,40]: 0, 0.001, 0.002, 0.003, 0.004, 0.005, ... "
             "(L2 norm %.6g)\n",
             norm);
    check_has(text, want);
    snprintf(want, sizeof want,
             "  delta = [50,40]: 0, 0.002, 0.004, 0.006, 0.008, 0.01, ... "
             "(L2 norm %.6g)\n",
             2 * norm);
    check_has(text, want);
    CHECK(text && strlen(text) < 1500, "text of %zu bytes for 3 nodes",
          text ? strlen(text) : 0);
    nb_free(text);
    nb_trace_free(t);
    nb_graph_free(g);
}

/* A node with no backward (step) sends nothing; a node fed by it still
 * sends it a message. */
static void test_zero_gradient_op(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = param_vec(g, "w", 2, (double[]){1, -2});
    nb_node *st = nb_step(g, w);
    nb_node *L = nb_add(g, nb_sum(g, st), nb_sum(g, w));
    nb_trace *t = nb_trace_run(g, L);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    int64_t iw = nb_trace_find(t, w), ist = nb_trace_find(t, st);
    CHECK(nb_trace_out_message(t, ist, 0) == NULL, "step sends nothing");
    CHECK_T(nb_trace_grad(t, ist), 0, "delta step", 1, 1);
    CHECK(nb_trace_in_count(t, iw) == 1, "w hears %d",
          nb_trace_in_count(t, iw));
    CHECK_T(nb_trace_grad(t, iw), 0, "delta w", 1, 1);
    char *text = nb_trace_to_string(t, 0);
    check_has(text, "  message to 'w' (input 0): none (zero gradient)\n");
    nb_free(text);
    nb_trace_free(t);
    nb_graph_free(g);
}

/* A small f32 MLP: gradients of normal runs before and after tracing are
 * bit for bit the same, and the traced ones agree up to rounding. */
static void test_normal_runs_unchanged(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 11);
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *tg = nb_input(g, "t", NB_F32, 2, SHAPE(NB_DYNAMIC, 2));
    nb_node *W1 = nb_param(g, "W1", NB_F32, 2, SHAPE(3, 5));
    nb_node *b1 = nb_param(g, "b1", NB_F32, 1, SHAPE(5));
    nb_node *W2 = nb_param(g, "W2", NB_F32, 2, SHAPE(5, 2));
    nb_node *params[] = {W1, b1, W2};
    for (int p = 0; p < 3; p++)
        for (int64_t i = 0; i < nb_tensor_size(nb_node_value(params[p])); i++)
            nb_tensor_set(nb_node_value(params[p]), i, nb_rng_normal(g));
    nb_node *h = nb_tanh(g, nb_add(g, nb_matmul(g, x, W1), b1));
    nb_node *L = nb_mse_loss(g, nb_matmul(g, h, W2), tg);
    CHECK(L != NULL, "%s", nb_graph_error(g));
    float xs[12], ts[8];
    for (int i = 0; i < 12; i++)
        xs[i] = (float)nb_rng_normal(g);
    for (int i = 0; i < 8; i++)
        ts[i] = (float)nb_rng_normal(g);
    nb_feed(g, x, 2, SHAPE(4, 3), xs);
    nb_feed(g, tg, 2, SHAPE(4, 2), ts);

    float before[3][15], after[3][15];
    nb_forward(g, L);
    nb_backward(g, L);
    for (int p = 0; p < 3; p++)
        memcpy(before[p], nb_tensor_f32(nb_node_grad(params[p])),
               sizeof(float) *
                   (size_t)nb_tensor_size(nb_node_value(params[p])));

    nb_trace *t = nb_trace_run(g, L);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    for (int p = 0; p < 3; p++) {
        const nb_tensor *tgr = nb_trace_grad(t, nb_trace_find(t, params[p]));
        for (int64_t i = 0; tgr && i < nb_tensor_size(tgr); i++)
            CHECK(fabs(nb_tensor_get(tgr, i) - before[p][i]) <=
                      1e-5 * (1 + fabs(before[p][i])),
                  "traced grad %d[%lld]", p, (long long)i);
    }
    nb_trace_free(t);

    nb_forward(g, L);
    nb_backward(g, L);
    for (int p = 0; p < 3; p++) {
        memcpy(after[p], nb_tensor_f32(nb_node_grad(params[p])),
               sizeof(float) *
                   (size_t)nb_tensor_size(nb_node_value(params[p])));
        CHECK(memcmp(before[p], after[p],
                     sizeof(float) *
                         (size_t)nb_tensor_size(nb_node_value(params[p]))) == 0,
              "param %d: gradient changed after tracing", p);
    }
    /* The graph holds no trace any more: a new one may begin. */
    t = nb_trace_begin(g);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    nb_trace_free(t);
    nb_graph_free(g);
}

static void test_errors(void)
{
    CHECK(nb_trace_begin(NULL) == NULL, "NULL graph");
    CHECK(nb_trace_end(NULL) == NB_ERR_ARG, "end NULL");
    nb_trace_free(NULL);
    CHECK(nb_trace_count(NULL) == 0 && nb_trace_find(NULL, NULL) == -1 &&
              nb_trace_value(NULL, 0) == NULL && nb_trace_output(NULL) == NULL,
          "NULL trace accessors");
    CHECK(nb_trace_format(NULL, 0, NULL, 0) == 0, "format NULL");
    CHECK(nb_trace_to_string(NULL, 0) == NULL, "string NULL");

    nb_graph *g = nb_graph_new();
    nb_node *x = param_scalar(g, "x", 2.0);
    nb_node *z = nb_square(g, x);
    nb_trace *t = nb_trace_begin(g);
    CHECK(t != NULL, "begin");
    CHECK(nb_trace_begin(g) == NULL, "second begin");
    CHECK_ERROR(g, "trace_begin", "already recording");
    nb_forward(g, z);
    nb_backward(g, z);
    CHECK(nb_trace_end(t) == NB_OK, "end");
    CHECK(nb_trace_end(t) == NB_ERR_STATE, "end twice");
    int64_t iz = nb_trace_find(t, z);
    CHECK(nb_trace_node(t, -1) == NULL && nb_trace_node(t, 2) == NULL,
          "entry out of range");
    CHECK(nb_trace_in_sender(t, iz, 1) == NULL &&
              nb_trace_in_slot(t, iz, 5) == -1 &&
              nb_trace_in_message(t, iz, -1) == NULL &&
              nb_trace_out_message(t, iz, 1) == NULL &&
              nb_trace_out_message(t, iz, -1) == NULL,
          "message out of range");
    CHECK(nb_trace_print(t, NULL, 0) == NB_ERR_ARG, "print to NULL");
    nb_trace_free(t);

    /* A failed run gives no trace and leaves no recording behind. */
    CHECK(nb_trace_run(g, NULL) == NULL, "run NULL loss");
    CHECK_ERROR(g, "forward", "NULL");
    nb_node *in = nb_input(g, "in", NB_F64, 0, NULL);
    CHECK(nb_trace_run(g, nb_square(g, in)) == NULL, "unfed input");
    CHECK_ERROR(g, "never fed");
    t = nb_trace_begin(g);
    CHECK(t != NULL, "begin after failures: %s", nb_graph_error(g));

    /* Ending before any backward: values, no gradients. */
    nb_forward(g, z);
    CHECK(nb_trace_end(t) == NB_OK, "end without backward");
    CHECK(nb_trace_count(t) == 2 && nb_trace_grad(t, 1) == NULL &&
              nb_trace_in_count(t, 1) == 0,
          "no gradients recorded");
    CHECK_T(nb_trace_value(t, 1), 0, "z value", 4);
    nb_trace_free(t);

    /* The graph may go first: the trace stops recording. */
    t = nb_trace_begin(g);
    nb_graph_free(g);
    CHECK(nb_trace_end(t) == NB_ERR_STATE, "end after graph freed");
    nb_trace_free(t);
}

/* Max pooling routes like the max node: each window sends its whole
 * message to its first winner, and a winner of two windows hears both.
 * x = [[1,4,4],[2,0,3]], 2x2 windows at stride 1: both windows' maximum is
 * 4, the first 4 (x[0,1]) wins both, the tied x[0,2] gets nothing. Batch
 * norm in the same trace: its running statistics are state, sent no
 * message, and shown as such. */
static void test_pool_and_norm(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 4, SHAPE(1, 1, 2, 3));
    SET(x, 1, 4, 4, 2, 0, 3);
    nb_node *p = nb_max_pool2d(g, x, &(nb_pool2d_params){.kernel = {2, 2},
                                                          .stride = {1, 1}});
    nb_node *rm = nb_state(g, "bn.running_mean", NB_F64, 1, SHAPE(1));
    nb_node *rv = nb_state(g, "bn.running_var", NB_F64, 1, SHAPE(1));
    nb_node *b = nb_param(g, "bn.bias", NB_F64, 1, SHAPE(1));
    nb_node *w = nb_param(g, "bn.weight", NB_F64, 1, SHAPE(1));
    nb_tensor_fill(nb_node_value(w), 1);
    nb_tensor_fill(nb_node_value(rv), 1);
    nb_node *bn = nb_batch_norm(g, x, rm, rv, w, b, 0.1, 1e-5);
    nb_node *L = nb_scale(g, nb_add(g, nb_sum(g, p), nb_sum(g, bn)), 3.0);
    nb_trace *t = nb_trace_run(g, L);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    int64_t ip = nb_trace_find(t, p);
    CHECK_T(nb_trace_value(t, ip), 0, "pool", 4, 4);
    CHECK_T(nb_trace_out_message(t, ip, 0), 0, "pool -> x", 0, 6, 0, 0, 0,
            0);
    /* sum of a normalised channel: its gradient through mu and var
     * cancels, so x hears only the pooling's message; the bias hears the
     * six elements' 3 each */
    CHECK_T(nb_trace_grad(t, nb_trace_find(t, x)), 1e-12, "delta x", 0, 6,
            0, 0, 0, 0);
    CHECK_T(nb_trace_grad(t, nb_trace_find(t, b)), 1e-12, "delta bias", 18);
    char *text = nb_trace_to_string(t, 8);
    check_has(text, "max_pool2d");
    check_has(text, "bn.running_mean");
    check_has(text, "state");
    nb_free(text);
    nb_trace_free(t);
    nb_graph_free(g);
}

int main(void)
{
    test_mul_node();
    test_fanout();
    test_max_node();
    test_square_by_mul();
    test_logistic_l2(NB_F64, 1e-12);
    test_logistic_l2(NB_F32, 1e-6);
    test_summary();
    test_zero_gradient_op();
    test_normal_runs_unchanged();
    test_errors();
    test_pool_and_norm();
    return tu_finish("trace");
}
