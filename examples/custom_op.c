/* A custom op defined outside the library, proven with the gradient check
 * and timed against the built-in op it copies.
 *
 * The op is SiLU, y = x s with s = sigmoid(x), whose derivative is
 * dy/dx = s (1 + x (1 - s)). It is written the way a user writes any op:
 * with the op table the built-in ops use and the helpers of nabla/op.h,
 * NB_TYPED for one loop that serves f32 and f64, typed views of the
 * tensors, and the library's vectorised sigmoid (nb_vmath_sigmoid_*). It
 * keeps s in its scratch space from forward to backward, so backward needs
 * no second exponential.
 *
 *   custom_op            gradient check of a small model using the op,
 *                        then a paired timing of forward + backward on
 *                        [256, 1024] f32 against the built-in nb_silu
 *   custom_op --no-time  the gradient check only
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nabla/nabla.h"

/* Shape rule: output shaped and typed like the input; scratch holds s. */
static int silu_infer(nb_op_call *c)
{
    const nb_tensor *x = c->in[0];
    c->out_dtype = nb_tensor_dtype(x);
    c->out_rank = nb_tensor_rank(x);
    memcpy(c->out_shape, nb_tensor_shape(x),
           (size_t)c->out_rank * sizeof c->out_shape[0]);
    c->scratch_bytes =
        (size_t)nb_tensor_size(x) * nb_dtype_size(nb_tensor_dtype(x));
    return 0;
}

static int silu_forward(nb_op_call *c)
{
    int64_t n = nb_tensor_size(c->out);
    NB_TYPED(nb_tensor_dtype(c->out), {
        const T *x = nb_tensor_cview(c->in[0]);
        T *y = nb_tensor_view(c->out), *s = c->scratch;
        NB_KERNEL(nb_vmath_sigmoid, T)(n, x, s);
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * s[i];
    });
    return 0;
}

/* Backward adds its message dy * s (1 + x (1 - s)) into the input's
 * gradient. */
static int silu_backward(nb_op_call *c)
{
    nb_tensor *gx = c->in_grad[0];
    if (!gx)
        return 0;
    int64_t n = nb_tensor_size(c->out);
    NB_TYPED(nb_tensor_dtype(c->out), {
        const T *x = nb_tensor_cview(c->in[0]), *s = c->scratch;
        const T *dy = nb_tensor_cview(c->out_grad);
        T *dx = nb_tensor_view(gx);
        for (int64_t i = 0; i < n; i++)
            dx[i] += dy[i] * s[i] * (1 + x[i] * (1 - s[i]));
    });
    return 0;
}

static const nb_op my_silu_op = {
    .struct_size = sizeof(nb_op),
    .name = "my_silu",
    .min_inputs = 1,
    .max_inputs = 1,
    .doc = "y = x s, s = sigmoid(x); dx = dy * s (1 + x (1 - s))",
    .infer = silu_infer,
    .forward = silu_forward,
    .backward = silu_backward,
};

static nb_node *my_silu(nb_graph *g, nb_node *x)
{
    return nb_apply(g, &my_silu_op, 1, &x, NULL);
}

/* L = 1/2 sum (my_silu(x W) - t)^2, checked against central differences
 * for W and for x. */
static int check(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 7);
    nb_node *x = nb_input(g, "x", NB_F64, 2, (int64_t[]){3, 4});
    nb_node *w = nb_param(g, "W", NB_F64, 2, (int64_t[]){4, 2});
    nb_node *t = nb_input(g, "t", NB_F64, 2, (int64_t[]){3, 2});
    nb_node *y = my_silu(g, nb_matmul(g, x, w));
    nb_node *loss = nb_sse_loss(g, y, t);
    if (!loss) {
        fprintf(stderr, "custom_op: %s\n", nb_graph_error(g));
        nb_graph_free(g);
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
    int rc = nb_gradcheck(g, loss, NULL, &r);
    if (rc != NB_OK)
        fprintf(stderr, "custom_op: %s\n", nb_graph_error(g));
    else
        printf("custom op '%s' (%s)\nloss = %.6f\n%s\n", my_silu_op.name,
               my_silu_op.doc, nb_tensor_get(nb_node_value(loss), 0),
               r.message);
    nb_graph_free(g);
    return rc == NB_OK && r.passed ? 0 : 1;
}

static double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Forward + backward of sum(f(x)) on [256, 1024] f32, for the custom op
 * and the built-in one in alternating rounds (so both see the same
 * machine load); the median round of each. */
static void time_against_builtin(void)
{
    enum { ROUNDS = 15, REPS = 20 };
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F32, 2, (int64_t[]){256, 1024});
    nb_tensor *xv = nb_node_value(x);
    for (int64_t i = 0; i < nb_tensor_size(xv); i++)
        nb_tensor_set(xv, i, 8 * nb_rng_uniform(g) - 4);
    nb_node *loss[2] = {nb_sum(g, my_silu(g, x)), nb_sum(g, nb_silu(g, x))};
    double best[2][ROUNDS];
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < 2; k++) {
            double t0 = now();
            for (int rep = 0; rep < REPS; rep++) {
                nb_forward(g, loss[k]);
                nb_backward(g, loss[k]);
            }
            best[k][round] = (now() - t0) / REPS;
        }
    double median[2];
    for (int k = 0; k < 2; k++) {
        for (int i = 1; i < ROUNDS; i++) /* insertion sort of 15 */
            for (int j = i; j > 0 && best[k][j] < best[k][j - 1]; j--) {
                double tmp = best[k][j];
                best[k][j] = best[k][j - 1];
                best[k][j - 1] = tmp;
            }
        median[k] = best[k][ROUNDS / 2];
    }
    printf("forward + backward of [256, 1024] f32: custom %.3f ms, built-in "
           "nb_silu %.3f ms (custom / built-in %.2f)\n",
           1e3 * median[0], 1e3 * median[1], median[0] / median[1]);
    nb_graph_free(g);
}

int main(int argc, char **argv)
{
    int rc = check();
    if (rc == 0 && !(argc > 1 && strcmp(argv[1], "--no-time") == 0))
        time_against_builtin();
    return rc;
}
