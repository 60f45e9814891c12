/* The table of built-in ops, generated from ops.def. */
#include <string.h>

#include "core/internal.h"

static const nb_op *const builtin_ops[] = {
#define NB_OP(name) &nb_op_##name,
#include "ops/ops.def"
#undef NB_OP
};

int nb_builtin_op_count(void)
{
    return (int)(sizeof builtin_ops / sizeof builtin_ops[0]);
}

const nb_op *nb_builtin_op(int index)
{
    return index >= 0 && index < nb_builtin_op_count() ? builtin_ops[index]
                                                       : NULL;
}

const nb_op *nb_find_op(const char *name)
{
    for (int i = 0; name && i < nb_builtin_op_count(); i++)
        if (strcmp(builtin_ops[i]->name, name) == 0)
            return builtin_ops[i];
    return NULL;
}

bool nb_op_writes_fresh_grads(const nb_op *op)
{
    /* matmul alone for now: its gradients are the big ones (the weights of
     * a layer), and the GEMM writes them with beta 0 at no extra cost */
    return op == &nb_op_matmul;
}
