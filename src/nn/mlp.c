/* The multilayer perceptron, assembled from nb_linear_layer, nb_activate
 * and nb_dropout: for layers l = 1..L, with h_0 = x,
 *
 *   s_l = h_{l-1} W_l + b_l                     (pre-activation)
 *   h_l = dropout(act_l(s_l))                   l < L (hidden layers)
 *   y   = out(s_L)                              out: identity, sigmoid or
 *                                               softmax over the last axis
 *
 * The loss is built on the logits s_L, not on y, so that each output unit
 * meets the loss whose gradient with respect to the logits is the plain
 * error y - t and never saturates:
 *
 *   softmax + cross-entropy          dL/ds = (softmax(s) - t) / rows
 *   sigmoid + binary cross-entropy   dL/ds = (sigmoid(s) - t) / elements,
 *                                    L = mean softplus(s) - t s
 *   identity + mean squared error    dL/ds = 2 (s - t) / elements
 *
 * The weight penalty is l2/2 sum W^2 + l1 sum |W| over the weights only:
 * biases set offsets, not the function's complexity, and are not decayed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nn.h"
#include "nabla/ops.h"

/* The failure code to return once an error is on the graph. */
static int failed(const nb_graph *g)
{
    int rc = nb_graph_status(g);
    return rc < 0 ? rc : NB_ERR_ARG;
}

static bool valid_act(nb_activation act)
{
    return (int)act >= NB_ACT_LINEAR && (int)act <= NB_ACT_SOFTMAX;
}

/* Records an error unless the spec describes a network that x can feed. */
static int check_spec(nb_graph *g, nb_node *x, const nb_mlp_spec *s,
                      const char *name)
{
    if (s->n_layers < 1 || s->n_layers > NB_MLP_MAX_LAYERS)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "mlp '%s': n_layers = %d is outside 1..%d",
                                  name, s->n_layers, NB_MLP_MAX_LAYERS);
    if (!s->sizes)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "mlp '%s': sizes is NULL (it needs "
                                  "n_layers + 1 = %d widths)",
                                  name, s->n_layers + 1);
    for (int i = 0; i <= s->n_layers; i++)
        if (s->sizes[i] <= 0)
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "mlp '%s': sizes[%d] = %lld must be "
                                      "positive",
                                      name, i, (long long)s->sizes[i]);
    const nb_tensor *xv = nb_node_value(x);
    if (nb_tensor_rank(xv) < 1 || nb_tensor_dim(xv, -1) != s->sizes[0]) {
        char sx[128];
        nb_shape_str(nb_tensor_rank(xv), nb_tensor_shape(xv), sx, sizeof sx);
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "mlp '%s': x ('%s') is %s but sizes[0] = "
                                  "%lld: x's last axis must hold the input "
                                  "width",
                                  name, nb_node_name(x), sx,
                                  (long long)s->sizes[0]);
    }
    for (int i = 0; i < s->n_layers - 1; i++) {
        nb_activation a =
            s->hidden_per_layer ? s->hidden_per_layer[i] : s->hidden;
        if (!valid_act(a))
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "mlp '%s': hidden layer %d has unknown "
                                      "activation %d",
                                      name, i + 1, (int)a);
        if (a == NB_ACT_SOFTMAX)
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "mlp '%s': hidden layer %d: softmax is "
                                      "for the output layer only",
                                      name, i + 1);
    }
    if (s->output != NB_ACT_LINEAR && s->output != NB_ACT_SIGMOID &&
        s->output != NB_ACT_SOFTMAX)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "mlp '%s': output must be linear, sigmoid "
                                  "or softmax, not %s",
                                  name, nb_activation_name(s->output));
    if (!(s->dropout >= 0 && s->dropout < 1))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "mlp '%s': dropout = %g is not in [0, 1)",
                                  name, s->dropout);
    if ((int)s->init < NB_INIT_DEFAULT || (int)s->init > NB_INIT_ZEROS)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "mlp '%s': unknown init kind %d", name,
                                  (int)s->init);
    return NB_OK;
}

static int build_layers(nb_graph *g, nb_node *x, const nb_mlp_spec *spec,
                        const char *name, nb_mlp *mlp);

int nb_mlp_build(nb_graph *g, nb_node *x, const nb_mlp_spec *spec, nb_mlp *mlp)
{
    if (mlp)
        memset(mlp, 0, sizeof *mlp);
    if (!g)
        return NB_ERR_ARG;
    if (!spec || !mlp)
        return nb_graph_set_error(g, NB_ERR_ARG, "mlp: %s is NULL",
                                  !spec ? "spec" : "the nb_mlp to fill");
    const char *name = spec->name ? spec->name : "mlp";
    if (!x) {
        if (nb_graph_status(g) == NB_OK)
            nb_graph_set_error(g, NB_ERR_ARG, "mlp '%s': x is NULL", name);
        return failed(g);
    }
    if (nb_node_graph(x) != g)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "mlp '%s': x ('%s') belongs to another "
                                  "graph",
                                  name, nb_node_name(x));
    int rc = check_spec(g, x, spec, name);
    if (rc != NB_OK)
        return rc;

    int64_t mark = nb_graph_node_count(g);
    rc = build_layers(g, x, spec, name, mlp);
    if (rc != NB_OK) {
        /* no layer of a failed build stays behind */
        nb_graph_rollback(g, mark);
        memset(mlp, 0, sizeof *mlp);
    }
    return rc;
}

/* The layers of nb_mlp_build, once spec and x are checked. */
static int build_layers(nb_graph *g, nb_node *x, const nb_mlp_spec *spec,
                        const char *name, nb_mlp *mlp)
{
    int n = spec->n_layers;
    mlp->n_layers = n;
    mlp->input = x;
    mlp->output_act = spec->output;
    nb_node *h = x;
    for (int l = 0; l < n; l++) {
        bool last = l == n - 1;
        nb_activation act = last                     ? spec->output
                            : spec->hidden_per_layer ? spec->hidden_per_layer[l]
                                                     : spec->hidden;
        char lname[512];
        if (snprintf(lname, sizeof lname, "%s.%d", name, l + 1) >=
            (int)sizeof lname)
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "mlp: name '%.40s...' is too long", name);
        nb_node *s = nb_linear_layer(g, h, spec->sizes[l + 1], true, lname,
                                     spec->init, act, &mlp->layer[l]);
        if (!s)
            return failed(g);
        if (last) {
            mlp->logits = s;
            mlp->output = nb_activate(g, s, act, 0);
            if (!mlp->output)
                return failed(g);
        } else {
            h = nb_activate(g, s, act, spec->hidden_param);
            if (h && spec->dropout > 0)
                h = nb_dropout(g, h, spec->dropout);
            if (!h)
                return failed(g);
            mlp->hidden[l] = h;
        }
    }
    return NB_OK;
}

/* Records an error unless mlp looks like a network nb_mlp_build made. */
static bool check_mlp(nb_graph *g, const nb_mlp *mlp, const char *what)
{
    if (!mlp || mlp->n_layers < 1 || mlp->n_layers > NB_MLP_MAX_LAYERS ||
        !mlp->logits || !mlp->layer[0].W) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "%s: the MLP is NULL or was not built", what);
        return false;
    }
    if (nb_node_graph(mlp->logits) != g) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "%s: the MLP belongs to another graph", what);
        return false;
    }
    return true;
}

nb_node *nb_mlp_loss(nb_graph *g, const nb_mlp *mlp, nb_node *targets)
{
    if (!g || !check_mlp(g, mlp, "mlp_loss"))
        return NULL;
    if (!targets) {
        if (nb_graph_status(g) == NB_OK)
            nb_graph_set_error(g, NB_ERR_ARG, "mlp_loss: targets is NULL");
        return NULL;
    }
    switch (mlp->output_act) {
    case NB_ACT_SOFTMAX:
        if (nb_tensor_rank(nb_node_value(targets)) == 1)
            return nb_softmax_ce_index_loss(g, mlp->logits, targets);
        return nb_softmax_ce_loss(g, mlp->logits, targets);
    case NB_ACT_SIGMOID:
        return nb_bce_logits_loss(g, mlp->logits, targets);
    case NB_ACT_LINEAR:
        return nb_mse_loss(g, mlp->logits, targets);
    default:
        nb_graph_set_error(g, NB_ERR_ARG,
                           "mlp_loss: output unit %s has no matching loss",
                           nb_activation_name(mlp->output_act));
        return NULL;
    }
}

/* total + c * term, or c * term when there is no total yet. */
static nb_node *add_term(nb_graph *g, nb_node *total, nb_node *term, double c)
{
    nb_node *scaled = c == 1 ? term : nb_scale(g, term, c);
    return total ? nb_add(g, total, scaled) : scaled;
}

nb_node *nb_mlp_weight_penalty(nb_graph *g, const nb_mlp *mlp, double l2,
                               double l1)
{
    if (!g || !check_mlp(g, mlp, "mlp_weight_penalty"))
        return NULL;
    if (!(isfinite(l2) && l2 >= 0 && isfinite(l1) && l1 >= 0)) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "mlp_weight_penalty: l2 = %g and l1 = %g must be "
                           "finite and >= 0",
                           l2, l1);
        return NULL;
    }
    nb_node *total = NULL;
    for (int l = 0; l < mlp->n_layers; l++) {
        nb_node *W = mlp->layer[l].W;
        if (l2 > 0)
            total = add_term(g, total, nb_l2_penalty(g, W), l2);
        if (l1 > 0)
            total = add_term(g, total, nb_l1_penalty(g, W), l1);
        if ((l2 > 0 || l1 > 0) && !total)
            return NULL;
    }
    /* No penalty asked for: a zero that adds to any loss of the dtype. */
    if (!total)
        total = nb_scalar(g, "no_penalty",
                          nb_tensor_dtype(nb_node_value(mlp->layer[0].W)), 0.0);
    return total;
}

int nb_mlp_set_trainable(nb_graph *g, const nb_mlp *mlp, int first, int last,
                         bool trainable)
{
    if (!g)
        return NB_ERR_ARG;
    if (!check_mlp(g, mlp, "mlp_set_trainable"))
        return failed(g);
    if (first < 0 || first > last || last > mlp->n_layers)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "mlp_set_trainable: layers [%d, %d) are not "
                                  "a range inside [0, %d)",
                                  first, last, mlp->n_layers);
    for (int l = first; l < last; l++) {
        int rc = nb_param_set_trainable(g, mlp->layer[l].W, trainable);
        if (rc == NB_OK && mlp->layer[l].b)
            rc = nb_param_set_trainable(g, mlp->layer[l].b, trainable);
        if (rc != NB_OK)
            return rc;
    }
    return NB_OK;
}
