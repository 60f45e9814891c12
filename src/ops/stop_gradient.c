/* stop_gradient: the identity forward, a wall backward.
 *
 *   y = x
 *   dx = 0   (no message is sent, whatever dy is)
 *
 * It marks a value as a constant for differentiation: truncated
 * backpropagation through time feeds the last hidden state of one window
 * into the next through it, so the next window's loss does not reach back
 * into the previous window's graph. The table has no backward, so the
 * executor sends nothing through the node; the nodes upstream of it still
 * get (zero) gradients when a parameter lies upstream, as for step or sign.
 *
 * Its gradient differs from its forward's derivative on purpose, so the
 * gradient check (which compares with finite differences) covers it where
 * the two agree: through a flat function such as step, and through the
 * value it passes on, which the gradient of a parameter it multiplies sees.
 * The unit tests check that no message passes.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   stop_gradient: y = x; dx = 0 (no message passes backward)
 */
#include "ops/op_util.h"

static int stop_gradient_infer(nb_op_call *c)
{
    nb_same_as_input(c, 0);
    return NB_OK;
}

static int stop_gradient_forward(nb_op_call *c)
{
    if (c->out->size > 0)
        memcpy(c->out->data, c->in[0]->data, nb_tensor_bytes(c->in[0]));
    return NB_OK;
}

const nb_op nb_op_stop_gradient = {
    .struct_size = sizeof(nb_op),
    .name = "stop_gradient",
    .min_inputs = 1,
    .max_inputs = 1,
    .doc = "y = x; dx = 0 (no message passes backward)",
    .infer = stop_gradient_infer,
    .forward = stop_gradient_forward,
    .backward = NULL,
};

nb_node *nb_stop_gradient(nb_graph *g, nb_node *x)
{
    return nb_apply(g, &nb_op_stop_gradient, 1, &x, NULL);
}
