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

const nb_op nb_op_slice = {"slice", 1, -1, 0, "pending", pending_infer, pending_forward, NULL};
