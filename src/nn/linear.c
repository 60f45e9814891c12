/* The fully connected layer, y = x W + b, with W [in, out] and b [out]
 * created as parameters named "<name>.W" and "<name>.b".
 *
 * x may have any rank >= 1; its last axis holds the `in` features and every
 * other axis counts rows. Ranks 2 and 3 go straight to nb_matmul (the rank-3
 * form shares W over the leading axis); rank 1 and ranks above 3 are
 * reshaped to rows of `in` and back, so the graph is still made of ordinary
 * ops and backward needs nothing special.
 *
 * Initialisation (fan_in = in, fan_out = out):
 *   default  He uniform when a ReLU-family unit follows (relu, leaky_relu,
 *            elu, gelu, silu: units that zero or shrink half their input),
 *            Xavier uniform with gain 1 otherwise; b = 0
 *   torch    W, b ~ U(-1/sqrt(in), 1/sqrt(in)), PyTorch's nn.Linear
 *   zeros    W = 0, b = 0
 *   others   the named scheme for W; b = 0
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nn.h"
#include "nabla/ops.h"

#include "layer_util.h"

/* x W for x of any rank >= 1 (see the top of the file). */
static nb_node *product(nb_graph *g, nb_node *x, nb_node *W, int rank,
                        const int64_t *xshape, int64_t in, int64_t out)
{
    if (rank == 2 || rank == 3)
        return nb_matmul(g, x, W);
    if (rank == 1) {
        nb_node *row = nb_reshape(g, x, 2, (const int64_t[]){1, in});
        return nb_reshape(g, nb_matmul(g, row, W), 1, (const int64_t[]){out});
    }
    int64_t back[NB_MAX_RANK];
    back[0] = -1; /* stands for the leading axis, dynamic batch or not */
    for (int i = 1; i < rank - 1; i++)
        back[i] = xshape[i];
    back[rank - 1] = out;
    nb_node *rows = nb_reshape(g, x, 2, (const int64_t[]){-1, in});
    return nb_reshape(g, nb_matmul(g, rows, W), rank, back);
}

nb_node *nb_linear_layer(nb_graph *g, nb_node *x, int64_t out_features,
                         bool bias, const char *name, nb_init_kind init,
                         nb_activation act, nb_linear *layer)
{
    if (layer)
        memset(layer, 0, sizeof *layer);
    if (!g)
        return NULL;
    if (!name)
        name = "linear";
    if (!x) {
        if (nb_graph_status(g) == NB_OK)
            nb_graph_set_error(g, NB_ERR_ARG, "linear '%s': x is NULL", name);
        return NULL;
    }
    if (nb_node_graph(x) != g) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "linear '%s': x ('%s') belongs to another graph",
                           name, nb_node_name(x));
        return NULL;
    }
    if (out_features <= 0) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "linear '%s': out_features = %lld must be positive",
                           name, (long long)out_features);
        return NULL;
    }
    if ((int)init < NB_INIT_DEFAULT || (int)init > NB_INIT_ZEROS) {
        nb_graph_set_error(g, NB_ERR_ARG, "linear '%s': unknown init kind %d",
                           name, (int)init);
        return NULL;
    }
    if ((int)act < NB_ACT_LINEAR || (int)act > NB_ACT_SOFTMAX) {
        nb_graph_set_error(g, NB_ERR_ARG, "linear '%s': unknown activation %d",
                           name, (int)act);
        return NULL;
    }
    const nb_tensor *xv = nb_node_value(x);
    int rank = nb_tensor_rank(xv);
    if (rank == 0) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "linear '%s': x ('%s') is a scalar; it needs a "
                           "feature axis (the last)",
                           name, nb_node_name(x));
        return NULL;
    }
    int64_t in = nb_tensor_dim(xv, -1);
    nb_dtype dtype = nb_tensor_dtype(xv);

    char wname[NB_LAYER_NAME_CAP], bname[NB_LAYER_NAME_CAP];
    if (snprintf(wname, sizeof wname, "%s.W", name) >= (int)sizeof wname ||
        snprintf(bname, sizeof bname, "%s.b", name) >= (int)sizeof bname) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "linear: name '%.40s...' is longer than %d bytes",
                           name, NB_LAYER_NAME_CAP - 3);
        return NULL;
    }
    int64_t mark = nb_graph_node_count(g);
    nb_node *W =
        nb_param(g, wname, dtype, 2, (const int64_t[]){in, out_features});
    nb_node *b =
        bias ? nb_param(g, bname, dtype, 1, (const int64_t[]){out_features})
             : NULL;
    if (!W || (bias && !b))
        return nb_layer_undo(g, mark);
    if (nb_layer_init(g, W, b, (double)in, (double)out_features, init, act) !=
        NB_OK)
        return nb_layer_undo(g, mark);

    nb_node *y = product(g, x, W, rank, nb_tensor_shape(xv), in, out_features);
    if (bias)
        y = nb_add(g, y, b);
    if (!y)
        return nb_layer_undo(g, mark);
    if (layer) {
        layer->W = W;
        layer->b = b;
        layer->out = y;
    }
    return y;
}
