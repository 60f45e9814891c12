/* Convolution layers: conv2d, conv1d and conv_transpose2d with their
 * weight and bias created as parameters named as PyTorch names them,
 *
 *   y = conv(x, weight) + bias        bias [O] broadcast over the positions
 *
 * (the bias is reshaped to [O, 1, 1] or [O, 1], which copies nothing, so
 * that the parameter keeps PyTorch's [O] shape and a state_dict's tensors
 * load unchanged), and relu(conv2d(x, weight) + bias) as one
 * conv2d_bias_act node, which takes the bias [O] as it is.
 *
 * Fans follow PyTorch's _calculate_fan_in_and_fan_out: with r the
 * receptive field (the product of the kernel's extents),
 *   fan_in = weight.shape[1] r,  fan_out = weight.shape[0] r,
 * so for conv (C/groups) r and O r; for the transposed convolution, whose
 * weight is [C, O/groups, ...], (O/groups) r and C r.
 */
#include <stdio.h>
#include <string.h>

#include "nabla/nn.h"
#include "nabla/ops.h"

#include "layer_util.h"

typedef enum conv_kind { CONV2D, CONV1D, CONV_T2D } conv_kind;

static const char *const kind_name[] = {"conv2d", "conv1d",
                                        "conv_transpose2d"};

/* Everything one layer call carries. */
typedef struct conv_args {
    conv_kind kind;
    int64_t out_channels;
    int64_t kernel[2]; /* conv1d: kernel[1] only, kernel[0] = 1 */
    int64_t groups;
    bool bias;
    const char *name;
    nb_init_kind init;
    nb_activation act;
    bool relu; /* conv2d only: relu(conv + bias) as one conv2d_bias_act */
} conv_args;

/* The layer's own checks, made before any parameter exists. */
static int check_args(nb_graph *g, nb_node *x, const conv_args *a)
{
    const char *kind = kind_name[a->kind];
    int rc = nb_layer_check(g, x, kind, a->name, a->init, a->act);
    if (rc != NB_OK)
        return rc;
    const nb_tensor *xv = nb_node_value(x);
    int want = a->kind == CONV1D ? 3 : 4;
    if (nb_tensor_rank(xv) != want)
        return nb_graph_set_error(
            g, NB_ERR_ARG, "%s '%s': x ('%s') has rank %d; it needs %s",
            kind, a->name, nb_node_name(x), nb_tensor_rank(xv),
            want == 3 ? "[N, C, L]" : "[N, C, H, W]");
    if (a->out_channels <= 0)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s '%s': out_channels = %lld must be "
                                  "positive",
                                  kind, a->name, (long long)a->out_channels);
    for (int i = a->kind == CONV1D; i < 2; i++)
        if (a->kernel[i] <= 0)
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "%s '%s': kernel size %lld must be "
                                      "positive",
                                      kind, a->name, (long long)a->kernel[i]);
    int64_t c = nb_tensor_dim(xv, 1);
    if (a->groups < 1 || c % a->groups || a->out_channels % a->groups)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s '%s': groups = %lld must be >= 1 and "
                                  "divide both the %lld input and the %lld "
                                  "output channels",
                                  kind, a->name, (long long)a->groups,
                                  (long long)c, (long long)a->out_channels);
    return NB_OK;
}

/* Creates and initialises weight and bias, runs the op and adds the bias. */
static nb_node *conv_layer(nb_graph *g, nb_node *x, const conv_args *a,
                           const nb_conv_params *p, int64_t stride1,
                           int64_t pad1, int64_t dil1, nb_conv *layer)
{
    if (layer)
        memset(layer, 0, sizeof *layer);
    if (!g)
        return NULL;
    bool clean = nb_graph_status(g) == NB_OK;
    if (check_args(g, x, a) != NB_OK)
        return NULL;
    const char *kind = kind_name[a->kind];
    char wname[NB_LAYER_NAME_CAP], bname[NB_LAYER_NAME_CAP];
    if (!nb_layer_name(g, wname, kind, a->name, "weight") ||
        !nb_layer_name(g, bname, kind, a->name, "bias"))
        return NULL;

    const nb_tensor *xv = nb_node_value(x);
    nb_dtype dtype = nb_tensor_dtype(xv);
    int64_t c = nb_tensor_dim(xv, 1), o = a->out_channels;
    int64_t rows = a->kind == CONV_T2D ? c : o;
    int64_t cols = a->kind == CONV_T2D ? o / a->groups : c / a->groups;
    int64_t field = a->kernel[0] * a->kernel[1];
    int wrank = a->kind == CONV1D ? 3 : 4;
    int64_t wshape[4] = {rows, cols, a->kernel[0], a->kernel[1]};
    if (a->kind == CONV1D)
        wshape[2] = a->kernel[1];
    int64_t mark = nb_graph_node_count(g);
    nb_node *w = nb_param(g, wname, dtype, wrank, wshape);
    nb_node *b = a->bias ? nb_param(g, bname, dtype, 1, (int64_t[]){o}) : NULL;
    if (!w || (a->bias && !b))
        return nb_layer_undo(g, mark);
    if (nb_layer_init(g, w, b, (double)(cols * field), (double)(rows * field),
                      a->init, a->act) != NB_OK)
        return nb_layer_undo(g, mark);

    nb_node *y;
    switch (a->kind) {
    case CONV2D:
        y = a->relu ? nb_conv2d_bias_act(g, x, w, b, p, NB_CONV_ACT_RELU)
                    : nb_conv2d(g, x, w, p);
        break;
    case CONV1D:
        y = nb_conv1d(g, x, w, stride1, pad1, pad1, dil1, a->groups);
        break;
    default:
        y = nb_conv_transpose2d(g, x, w, p);
        break;
    }
    if (!y && clean) {
        nb_layer_blame(g, kind, a->name);
        return nb_layer_undo(g, mark);
    }
    if (!y)
        return nb_layer_undo(g, mark);
    if (b && !a->relu) {
        int64_t shape[3] = {o, 1, 1};
        y = nb_add(g, y, nb_reshape(g, b, wrank - 1, shape));
        if (!y)
            return nb_layer_undo(g, mark);
    }
    if (layer) {
        layer->weight = w;
        layer->bias = b;
        layer->out = y;
    }
    return y;
}

nb_node *nb_conv2d_layer(nb_graph *g, nb_node *x, int64_t out_channels,
                         int64_t kernel_h, int64_t kernel_w,
                         const nb_conv_params *p, bool bias, const char *name,
                         nb_init_kind init, nb_activation act, nb_conv *layer)
{
    conv_args a = {CONV2D, out_channels, {kernel_h, kernel_w},
                   p ? p->groups : 1, bias, name ? name : "conv2d",
                   init, act, false};
    return conv_layer(g, x, &a, p, 0, 0, 0, layer);
}

nb_node *nb_conv2d_relu_layer(nb_graph *g, nb_node *x, int64_t out_channels,
                              int64_t kernel_h, int64_t kernel_w,
                              const nb_conv_params *p, bool bias,
                              const char *name, nb_init_kind init,
                              nb_conv *layer)
{
    conv_args a = {CONV2D, out_channels, {kernel_h, kernel_w},
                   p ? p->groups : 1, bias, name ? name : "conv2d",
                   init, NB_ACT_RELU, true};
    return conv_layer(g, x, &a, p, 0, 0, 0, layer);
}

nb_node *nb_conv1d_layer(nb_graph *g, nb_node *x, int64_t out_channels,
                         int64_t kernel, int64_t stride, int64_t padding,
                         int64_t dilation, int64_t groups, bool bias,
                         const char *name, nb_init_kind init,
                         nb_activation act, nb_conv *layer)
{
    conv_args a = {CONV1D, out_channels, {1, kernel}, groups, bias,
                   name ? name : "conv1d", init, act, false};
    return conv_layer(g, x, &a, NULL, stride, padding, dilation, layer);
}

nb_node *nb_conv_transpose2d_layer(nb_graph *g, nb_node *x,
                                   int64_t out_channels, int64_t kernel_h,
                                   int64_t kernel_w, const nb_conv_params *p,
                                   bool bias, const char *name,
                                   nb_init_kind init, nb_activation act,
                                   nb_conv *layer)
{
    conv_args a = {CONV_T2D, out_channels, {kernel_h, kernel_w},
                   p ? p->groups : 1, bias,
                   name ? name : "conv_transpose2d", init, act, false};
    return conv_layer(g, x, &a, p, 0, 0, 0, layer);
}
