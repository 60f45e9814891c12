/* A custom op defined outside the library, proven with the gradient check.
 *
 * The op is the "sinc" unit, y = sin(x) / x (with y = 1 at x = 0), whose
 * derivative is dy/dx = (cos(x) - sin(x)/x) / x, tending to 0 at x = 0
 * (a series expansion, -x/3, is used near 0 where the quotient loses
 * precision). It uses exactly the op table the built-in ops use
 * (nabla/op.h), so forward, backward, gradient checks and graph tools treat
 * it as their own.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nabla.h"

static double sinc(double x)
{
    return fabs(x) < 1e-4 ? 1.0 - x * x / 6.0 : sin(x) / x;
}

static double sinc_derivative(double x)
{
    return fabs(x) < 1e-4 ? -x / 3.0 : (cos(x) - sin(x) / x) / x;
}

/* Shape rule: one input, output shaped and typed like it. */
static int sinc_infer(nb_op_call *c)
{
    c->out_dtype = nb_tensor_dtype(c->in[0]);
    c->out_rank = nb_tensor_rank(c->in[0]);
    memcpy(c->out_shape, nb_tensor_shape(c->in[0]),
           (size_t)c->out_rank * sizeof c->out_shape[0]);
    return 0;
}

static int sinc_forward(nb_op_call *c)
{
    for (int64_t i = 0; i < nb_tensor_size(c->out); i++)
        nb_tensor_set(c->out, i, sinc(nb_tensor_get(c->in[0], i)));
    return 0;
}

/* Backward adds its message dy * sinc'(x) into the input's gradient. */
static int sinc_backward(nb_op_call *c)
{
    nb_tensor *dx = c->in_grad[0];
    if (!dx)
        return 0;
    for (int64_t i = 0; i < nb_tensor_size(dx); i++) {
        double x = nb_tensor_get(c->in[0], i);
        double dy = nb_tensor_get(c->out_grad, i);
        nb_tensor_set(dx, i, nb_tensor_get(dx, i) + dy * sinc_derivative(x));
    }
    return 0;
}

static const nb_op sinc_op = {
    .struct_size = sizeof(nb_op),
    .name = "sinc",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = 0,
    .doc = "y = sin(x)/x; dx = dy (cos x - sin x / x) / x",
    .infer = sinc_infer,
    .forward = sinc_forward,
    .backward = sinc_backward,
};

static nb_node *my_sinc(nb_graph *g, nb_node *x)
{
    return nb_apply(g, &sinc_op, 1, &x, NULL);
}

int main(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 7);
    /* A small model using the custom op between built-in ones:
     * L = 1/2 sum (sinc(x W) - t)^2 */
    nb_node *x = nb_input(g, "x", NB_F64, 2, (int64_t[]){3, 4});
    nb_node *w = nb_param(g, "W", NB_F64, 2, (int64_t[]){4, 2});
    nb_node *t = nb_input(g, "t", NB_F64, 2, (int64_t[]){3, 2});
    nb_node *y = my_sinc(g, nb_matmul(g, x, w));
    nb_node *loss = nb_sse_loss(g, y, t);
    if (!loss) {
        fprintf(stderr, "custom_op: %s\n", nb_graph_error(g));
        return 1;
    }
    double xs[12], ts[6];
    for (int i = 0; i < 12; i++)
        xs[i] = 4 * nb_rng_uniform(g) - 2;
    for (int i = 0; i < 6; i++)
        ts[i] = nb_rng_uniform(g);
    for (int i = 0; i < 8; i++)
        nb_tensor_set(nb_node_value(w), i, nb_rng_normal(g));
    nb_feed_data(g, x, xs);
    nb_feed_data(g, t, ts);
    /* Ask for d loss / d x too, so the check covers the custom op's
     * message to a non-parameter input. */
    nb_input_set_requires_grad(g, x, true);

    nb_gradcheck_result r;
    if (nb_gradcheck(g, loss, NULL, &r) != NB_OK) {
        fprintf(stderr, "custom_op: %s\n", nb_graph_error(g));
        return 1;
    }
    printf("custom op '%s' (%s)\n", sinc_op.name, sinc_op.doc);
    printf("loss = %.6f\n", nb_tensor_get(nb_node_value(loss), 0));
    printf("%s\n", r.message);
    nb_graph_free(g);
    return r.passed ? 0 : 1;
}
