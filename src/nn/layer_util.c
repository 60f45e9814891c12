/* Shared by the layers of src/nn: initialisation by nb_init_kind, the
 * checks of a layer's input and enums, and parameter names. */
#include <math.h>
#include <stdio.h>

#include "layer_util.h"

static bool relu_family(nb_activation act)
{
    return act == NB_ACT_RELU || act == NB_ACT_LEAKY_RELU ||
           act == NB_ACT_ELU || act == NB_ACT_GELU || act == NB_ACT_SILU;
}

int nb_layer_init(nb_graph *g, nb_node *W, nb_node *b, double fan_in,
                  double fan_out, nb_init_kind init, nb_activation act)
{
    switch (init) {
    case NB_INIT_DEFAULT:
        return relu_family(act)
                   ? nb_init_he_uniform(g, W, fan_in)
                   : nb_init_xavier_uniform(g, W, fan_in, fan_out, 1.0);
    case NB_INIT_XAVIER_UNIFORM:
        return nb_init_xavier_uniform(g, W, fan_in, fan_out, 1.0);
    case NB_INIT_XAVIER_NORMAL:
        return nb_init_xavier_normal(g, W, fan_in, fan_out, 1.0);
    case NB_INIT_HE_UNIFORM:
        return nb_init_he_uniform(g, W, fan_in);
    case NB_INIT_HE_NORMAL:
        return nb_init_he_normal(g, W, fan_in);
    case NB_INIT_TORCH: {
        /* kaiming_uniform(a = sqrt(5)) gives gain sqrt(2 / (1 + 5)) and
         * bound gain sqrt(3 / fan_in) = 1 / sqrt(fan_in); the bias draws
         * from the same interval. */
        double k = 1.0 / sqrt(fan_in);
        int rc = nb_init_uniform(g, W, -k, k);
        if (rc == NB_OK && b)
            rc = nb_init_uniform(g, b, -k, k);
        return rc;
    }
    case NB_INIT_ZEROS:
        return NB_OK; /* parameters are born zero-filled */
    }
    return NB_ERR_ARG; /* unreachable: the kind was checked by the caller */
}

int nb_layer_check(nb_graph *g, nb_node *x, const char *kind,
                   const char *name, nb_init_kind init, nb_activation act)
{
    if (!x) {
        /* A NULL input after an earlier failure is the chained-construction
         * case: the first message stays. */
        if (nb_graph_status(g) == NB_OK)
            nb_graph_set_error(g, NB_ERR_ARG, "%s '%s': x is NULL", kind,
                               name);
        return nb_graph_status(g) < 0 ? nb_graph_status(g) : NB_ERR_ARG;
    }
    if (nb_node_graph(x) != g)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s '%s': x ('%s') belongs to another graph",
                                  kind, name, nb_node_name(x));
    if ((int)init < NB_INIT_DEFAULT || (int)init > NB_INIT_ZEROS)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s '%s': unknown init kind %d", kind, name,
                                  (int)init);
    if ((int)act < NB_ACT_LINEAR || (int)act > NB_ACT_SOFTMAX)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s '%s': unknown activation %d", kind, name,
                                  (int)act);
    return NB_OK;
}

bool nb_layer_name(nb_graph *g, char *buf, const char *kind, const char *name,
                   const char *suffix)
{
    int n = snprintf(buf, NB_LAYER_NAME_CAP, "%s.%s", name, suffix);
    if (n < 0 || n >= NB_LAYER_NAME_CAP) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "%s: name '%.40s...' is longer than %d bytes", kind,
                           name, NB_LAYER_NAME_CAP - 16);
        return false;
    }
    return true;
}

void nb_layer_blame(nb_graph *g, const char *kind, const char *name)
{
    char msg[256];
    const char *e = nb_graph_error(g);
    snprintf(msg, sizeof msg, "%s", e ? e : "failed");
    int code = nb_graph_status(g);
    nb_graph_clear_error(g);
    nb_graph_set_error(g, code < 0 ? code : NB_ERR_ARG, "%s '%s': %s", kind,
                       name, msg);
}

nb_node *nb_layer_undo(nb_graph *g, int64_t mark)
{
    nb_graph_rollback(g, mark);
    return NULL;
}
