/* The table of built-in ops and the constructors of the regular kinds,
 * generated from ops.def. */
#include <string.h>

#include "ops/op_util.h"

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

/* The ops with a one-element form, each defined beside its op. */
#define ONE_ELEMENT_OPS(X)                                                    \
    X(add) X(sub) X(mul) X(div) X(maximum) X(minimum) X(neg) X(exp) X(log)    \
    X(sqrt) X(square) X(abs) X(scale) X(add_scalar) X(sigmoid) X(tanh)       \
    X(relu)
#define DECLARE_ONE(name) extern const nb_one_element nb_one_##name;
ONE_ELEMENT_OPS(DECLARE_ONE)
#undef DECLARE_ONE

const nb_one_element *nb_one_element_of(const nb_op *op)
{
#define FIND_ONE(name)                                                        \
    if (op == &nb_op_##name)                                                  \
        return &nb_one_##name;
    ONE_ELEMENT_OPS(FIND_ONE)
#undef FIND_ONE
    return NULL;
}

/* The constructors whose signature the kind fixes (declared in ops.h, in
 * the part generated from the same list). */
#define NB_OP_BINARY(name, lo, hi)                                            \
    nb_node *nb_##name(nb_graph *g, nb_node *a, nb_node *b)                   \
    {                                                                         \
        nb_node *in[2] = {a, b};                                              \
        return nb_apply(g, &nb_op_##name, 2, in, NULL);                       \
    }
#define NB_OP_UNARY(name, lo, hi)                                             \
    nb_node *nb_##name(nb_graph *g, nb_node *x)                               \
    {                                                                         \
        return nb_apply(g, &nb_op_##name, 1, &x, NULL);                       \
    }
#define NB_OP_UNARY1(name, p, p_lo, p_hi, lo, hi)                             \
    nb_node *nb_##name(nb_graph *g, nb_node *x, double p)                     \
    {                                                                         \
        nb_param_attrs attrs = {{p, 0}};                                      \
        return nb_apply(g, &nb_op_##name, 1, &x, &attrs);                     \
    }
#define NB_OP_UNARY2(name, p, p_lo, p_hi, q, q_lo, q_hi, lo, hi)              \
    nb_node *nb_##name(nb_graph *g, nb_node *x, double p, double q)           \
    {                                                                         \
        nb_param_attrs attrs = {{p, q}};                                      \
        return nb_apply(g, &nb_op_##name, 1, &x, &attrs);                     \
    }
#define NB_OP_OTHER(name)
#include "ops/ops.def"
