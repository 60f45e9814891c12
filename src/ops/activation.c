/* PLACEHOLDER: not implemented yet; replaced by the real op file. */
#include "ops/op_util.h"

static int pending_infer(nb_op_call *c)
{
    return nb_op_fail(c, "not implemented yet");
}

static int pending_forward(nb_op_call *c)
{
    (void)c;
    return NB_ERR_STATE;
}

const nb_op nb_op_identity = {"identity", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_sigmoid = {"sigmoid", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_tanh = {"tanh", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_relu = {"relu", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_leaky_relu = {"leaky_relu", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_elu = {"elu", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_selu = {"selu", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_softplus = {"softplus", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_gelu = {"gelu", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_silu = {"silu", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
