/* Normalisation layers: batch norm and layer norm with their gain, shift
 * and (batch norm) running statistics created as PyTorch names and starts
 * them:
 *
 *   weight = 1, bias = 0                 (the affine part, trained)
 *   running_mean = 0, running_var = 1    (state: saved, not trained)
 *
 * so that at the first step the layer is the plain normalisation, and in
 * inference mode before any training it is x / sqrt(1 + eps).
 */
#include <math.h>
#include <string.h>

#include "nabla/nn.h"
#include "nabla/ops.h"

#include "layer_util.h"

/* The start both layers share: clears *layer, then checks g, x and eps.
 * *clean tells whether the graph held no error before the call (only then
 * is an op's message given the layer's name). */
static bool begin(nb_graph *g, nb_node *x, const char *kind, const char *name,
                  double eps, nb_norm *layer, bool *clean)
{
    if (layer)
        memset(layer, 0, sizeof *layer);
    if (!g)
        return false;
    *clean = nb_graph_status(g) == NB_OK;
    if (nb_layer_check(g, x, kind, name, NB_INIT_DEFAULT, NB_ACT_LINEAR) !=
        NB_OK)
        return false;
    if (!(isfinite(eps) && eps > 0)) {
        nb_graph_set_error(g, NB_ERR_ARG, "%s '%s': eps = %g must be positive",
                           kind, name, eps);
        return false;
    }
    return true;
}

/* The end both layers share: names the layer in an op's error, or hands
 * the nodes made to *layer. */
static nb_node *finish(nb_graph *g, const char *kind, const char *name,
                       bool clean, nb_norm made, nb_norm *layer)
{
    if (!made.out) {
        if (clean)
            nb_layer_blame(g, kind, name);
        return NULL;
    }
    if (layer)
        *layer = made;
    return made.out;
}

/* Creates the affine parameters "<name>.weight" = 1 and "<name>.bias" = 0
 * of the given shape. */
static bool make_affine(nb_graph *g, const char *kind, const char *name,
                        nb_dtype dtype, int rank, const int64_t *shape,
                        nb_node **w, nb_node **b)
{
    char wname[NB_LAYER_NAME_CAP], bname[NB_LAYER_NAME_CAP];
    if (!nb_layer_name(g, wname, kind, name, "weight") ||
        !nb_layer_name(g, bname, kind, name, "bias"))
        return false;
    *w = nb_param(g, wname, dtype, rank, shape);
    *b = nb_param(g, bname, dtype, rank, shape);
    return *w && *b && nb_init_constant(g, *w, 1.0) == NB_OK;
}

nb_node *nb_batch_norm_layer(nb_graph *g, nb_node *x, bool affine,
                             double momentum, double eps, const char *name,
                             nb_norm *layer)
{
    const char *kind = "batch_norm";
    bool clean;
    if (!name)
        name = "bn";
    if (!begin(g, x, kind, name, eps, layer, &clean))
        return NULL;
    if (!(momentum >= 0 && momentum <= 1)) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "%s '%s': momentum = %g is not in [0, 1]", kind,
                           name, momentum);
        return NULL;
    }
    const nb_tensor *xv = nb_node_value(x);
    int rank = nb_tensor_rank(xv);
    if (rank < 2 || rank > 4) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "%s '%s': x ('%s') has rank %d; it needs [N, F], "
                           "[N, C, L] or [N, C, H, W]",
                           kind, name, nb_node_name(x), rank);
        return NULL;
    }
    nb_dtype dtype = nb_tensor_dtype(xv);
    int64_t c = nb_tensor_dim(xv, 1);
    char mname[NB_LAYER_NAME_CAP], vname[NB_LAYER_NAME_CAP];
    if (!nb_layer_name(g, mname, kind, name, "running_mean") ||
        !nb_layer_name(g, vname, kind, name, "running_var"))
        return NULL;
    int64_t mark = nb_graph_node_count(g);
    nb_node *w = NULL, *b = NULL;
    if (affine && !make_affine(g, kind, name, dtype, 1, &c, &w, &b))
        return nb_layer_undo(g, mark);
    nb_node *rm = nb_state(g, mname, dtype, 1, &c);
    nb_node *rv = nb_state(g, vname, dtype, 1, &c);
    if (!rm || !rv)
        return nb_layer_undo(g, mark);
    nb_tensor_fill(nb_node_value(rv), 1.0);
    nb_node *y = nb_batch_norm(g, x, rm, rv, w, b, momentum, eps);
    y = finish(g, kind, name, clean, (nb_norm){w, b, rm, rv, y}, layer);
    return y ? y : nb_layer_undo(g, mark);
}

nb_node *nb_layer_norm_layer(nb_graph *g, nb_node *x, int axes, bool affine,
                             double eps, const char *name, nb_norm *layer)
{
    const char *kind = "layer_norm";
    bool clean;
    if (!name)
        name = "ln";
    if (!begin(g, x, kind, name, eps, layer, &clean))
        return NULL;
    const nb_tensor *xv = nb_node_value(x);
    int rank = nb_tensor_rank(xv);
    if (axes < 1 || axes > rank) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "%s '%s': axes = %d is outside 1..%d, the rank of "
                           "x ('%s')",
                           kind, name, axes, rank, nb_node_name(x));
        return NULL;
    }
    int64_t mark = nb_graph_node_count(g);
    nb_node *w = NULL, *b = NULL;
    if (affine && !make_affine(g, kind, name, nb_tensor_dtype(xv), axes,
                               nb_tensor_shape(xv) + (rank - axes), &w, &b))
        return nb_layer_undo(g, mark);
    nb_node *y = nb_layer_norm(g, x, axes, w, b, eps);
    y = finish(g, kind, name, clean, (nb_norm){w, b, NULL, NULL, y}, layer);
    return y ? y : nb_layer_undo(g, mark);
}
