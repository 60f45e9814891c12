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

const nb_op nb_op_neg = {"neg", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_exp = {"exp", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_log = {"log", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_sqrt = {"sqrt", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_square = {"square", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_abs = {"abs", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_scale = {"scale", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_add_scalar = {"add_scalar", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_sign = {"sign", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
const nb_op nb_op_step = {"step", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
