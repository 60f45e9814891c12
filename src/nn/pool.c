/* Pooling layers: nb_max_pool2d and nb_avg_pool2d with PyTorch's
 * nn.MaxPool2d / nn.AvgPool2d defaults (square window, stride = kernel
 * when not given, padded zeros counted by the average). No parameters. */
#include <stdio.h>

#include "nabla/nn.h"
#include "nabla/ops.h"

#include "layer_util.h"

static nb_node *pool_layer(nb_graph *g, nb_node *x, int64_t kernel,
                           int64_t stride, int64_t padding, const char *name,
                           bool max)
{
    if (!g)
        return NULL;
    const char *kind = max ? "max_pool2d" : "avg_pool2d";
    if (!name)
        name = kind;
    if (!x) {
        if (nb_graph_status(g) == NB_OK)
            nb_graph_set_error(g, NB_ERR_ARG, "%s '%s': x is NULL", kind,
                               name);
        return NULL;
    }
    bool clean = nb_graph_status(g) == NB_OK;
    if (kernel < 1 || stride < 0) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "%s '%s': kernel = %lld must be >= 1 and stride "
                           "= %lld >= 0 (0: the kernel)",
                           kind, name, (long long)kernel, (long long)stride);
        return NULL;
    }
    if (stride == 0)
        stride = kernel;
    nb_pool2d_params p = {.kernel = {kernel, kernel},
                          .stride = {stride, stride},
                          .padding = {padding, padding},
                          .count_include_pad = true};
    nb_node *y = max ? nb_max_pool2d(g, x, &p) : nb_avg_pool2d(g, x, &p);
    if (!y && clean) {
        nb_layer_blame(g, kind, name);
    }
    return y;
}

nb_node *nb_max_pool2d_layer(nb_graph *g, nb_node *x, int64_t kernel,
                             int64_t stride, int64_t padding,
                             const char *name)
{
    return pool_layer(g, x, kernel, stride, padding, name, true);
}

nb_node *nb_avg_pool2d_layer(nb_graph *g, nb_node *x, int64_t kernel,
                             int64_t stride, int64_t padding,
                             const char *name)
{
    return pool_layer(g, x, kernel, stride, padding, name, false);
}
