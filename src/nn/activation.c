/* Activations by enum: names for command lines and logs, and nb_activate,
 * which maps each enum onto the op constructor that computes it:
 *
 *   linear      x (no node)           sigmoid   1 / (1 + e^-x)
 *   tanh        tanh x                relu      max(0, x)
 *   leaky_relu  x > 0 ? x : a x       elu       x > 0 ? x : a (e^x - 1)
 *   selu        lambda elu_alpha(x)   softplus  log(1 + e^x)
 *   gelu        x Phi(x)              silu      x sigmoid(x)
 *   softmax     e^x_k / sum_j e^x_j over the last axis
 *
 * The parameter a of leaky_relu defaults to 0.01 and that of elu to 1 when
 * `param` is 0, so a spec that leaves it unset gets the usual unit.
 */
#include <string.h>

#include "nabla/nn.h"
#include "nabla/ops.h"

static const char *const names[] = {
    [NB_ACT_LINEAR] = "linear",
    [NB_ACT_SIGMOID] = "sigmoid",
    [NB_ACT_TANH] = "tanh",
    [NB_ACT_RELU] = "relu",
    [NB_ACT_LEAKY_RELU] = "leaky_relu",
    [NB_ACT_ELU] = "elu",
    [NB_ACT_SELU] = "selu",
    [NB_ACT_SOFTPLUS] = "softplus",
    [NB_ACT_GELU] = "gelu",
    [NB_ACT_SILU] = "silu",
    [NB_ACT_SOFTMAX] = "softmax",
};
#define N_ACT ((int)(sizeof names / sizeof *names))

const char *nb_activation_name(nb_activation act)
{
    int i = (int)act;
    return i >= 0 && i < N_ACT ? names[i] : "unknown";
}

int nb_activation_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < N_ACT; i++)
        if (strcmp(name, names[i]) == 0)
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
    switch (act) {
    case NB_ACT_LINEAR:
        return x;
    case NB_ACT_SIGMOID:
        return nb_sigmoid(g, x);
    case NB_ACT_TANH:
        return nb_tanh(g, x);
    case NB_ACT_RELU:
        return nb_relu(g, x);
    case NB_ACT_LEAKY_RELU:
        return nb_leaky_relu(g, x, param != 0 ? param : 0.01);
    case NB_ACT_ELU:
        return nb_elu(g, x, param != 0 ? param : 1.0);
    case NB_ACT_SELU:
        return nb_selu(g, x);
    case NB_ACT_SOFTPLUS:
        return nb_softplus(g, x);
    case NB_ACT_GELU:
        return nb_gelu(g, x);
    case NB_ACT_SILU:
        return nb_silu(g, x);
    case NB_ACT_SOFTMAX:
        return nb_softmax(g, x);
    }
    nb_graph_set_error(g, NB_ERR_ARG, "activate: unknown activation %d",
                       (int)act);
    return NULL;
}
