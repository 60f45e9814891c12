/* Activations by enum: names for command lines and logs, and nb_activate,
 * which maps each enum onto the op constructor that computes it. Every
 * activation but linear (x itself, no node) is the built-in op of the same
 * name, whose formula is in docs/ops.md.
 *
 * The parameter a of leaky_relu defaults to 0.01 and that of elu to 1 when
 * `param` is 0, so a spec that leaves it unset gets the usual unit.
 */
#include <string.h>

#include "nabla/nn.h"
#include "nabla/ops.h"

/* One row per activation: its name (the op's, for all but linear) and the
 * constructor that applies it, with param already defaulted. test_nn
 * checks each name against the op list, so the two cannot drift. */
static nb_node *act_linear(nb_graph *g, nb_node *x, double p)
{
    (void)p;
    /* No node is made, so no constructor checks that x is g's: the
     * identity must refuse a foreign node as every constructor does. */
    if (nb_node_graph(x) != g) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "activate linear: node '%s' belongs to another "
                           "graph", nb_node_name(x));
        return NULL;
    }
    return x;
}
#define PLAIN(op)                                                             \
    static nb_node *act_##op(nb_graph *g, nb_node *x, double p)               \
    {                                                                         \
        (void)p;                                                              \
        return nb_##op(g, x);                                                 \
    }
PLAIN(sigmoid) PLAIN(tanh) PLAIN(relu) PLAIN(selu) PLAIN(softplus)
PLAIN(gelu) PLAIN(silu) PLAIN(softmax)
static nb_node *act_leaky_relu(nb_graph *g, nb_node *x, double p)
{
    return nb_leaky_relu(g, x, p != 0 ? p : 0.01);
}
static nb_node *act_elu(nb_graph *g, nb_node *x, double p)
{
    return nb_elu(g, x, p != 0 ? p : 1.0);
}

static const struct {
    const char *name;
    nb_node *(*apply)(nb_graph *g, nb_node *x, double param);
} acts[] = {
    [NB_ACT_LINEAR] = {"linear", act_linear},
    [NB_ACT_SIGMOID] = {"sigmoid", act_sigmoid},
    [NB_ACT_TANH] = {"tanh", act_tanh},
    [NB_ACT_RELU] = {"relu", act_relu},
    [NB_ACT_LEAKY_RELU] = {"leaky_relu", act_leaky_relu},
    [NB_ACT_ELU] = {"elu", act_elu},
    [NB_ACT_SELU] = {"selu", act_selu},
    [NB_ACT_SOFTPLUS] = {"softplus", act_softplus},
    [NB_ACT_GELU] = {"gelu", act_gelu},
    [NB_ACT_SILU] = {"silu", act_silu},
    [NB_ACT_SOFTMAX] = {"softmax", act_softmax},
};
#define N_ACT ((int)(sizeof acts / sizeof *acts))

const char *nb_activation_name(nb_activation act)
{
    int i = (int)act;
    return i >= 0 && i < N_ACT ? acts[i].name : "unknown";
}

int nb_activation_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < N_ACT; i++)
        if (strcmp(name, acts[i].name) == 0)
            return i;
    /* The other names these units commonly go by. */
    if (strcmp(name, "identity") == 0)
        return NB_ACT_LINEAR;
    if (strcmp(name, "swish") == 0)
        return NB_ACT_SILU;
    return -1;
}

nb_node *nb_activate(nb_graph *g, nb_node *x, nb_activation act, double param)
{
    if (!g)
        return NULL;
    if (!x) {
        /* A failed constructor upstream has already said why. */
        if (nb_graph_status(g) == NB_OK)
            nb_graph_set_error(g, NB_ERR_ARG, "activate %s: x is NULL",
                               nb_activation_name(act));
        return NULL;
    }
    int i = (int)act;
    if (i >= 0 && i < N_ACT)
        return acts[i].apply(g, x, param);
    nb_graph_set_error(g, NB_ERR_ARG, "activate: unknown activation %d",
                       (int)act);
    return NULL;
}
