/* Validation of an optimiser's configuration and parameter list, and what
 * a resolved configuration implies (its state tensors). Every check runs
 * before anything is allocated or changed, and each message names the
 * field or the list entry at fault. */
#include <math.h>
#include <stddef.h>

#include "optim_internal.h"

static const char *kind_name(nb_optim_kind kind)
{
    switch (kind) {
    case NB_OPTIM_SGD:
        return "SGD";
    case NB_OPTIM_RMSPROP:
        return "RMSprop";
    case NB_OPTIM_ADAM:
        return "Adam";
    case NB_OPTIM_ADAMW:
        return "AdamW";
    }
    return "?";
}

static const char *node_kind_name(const nb_node *n)
{
    switch (nb_node_get_kind(n)) {
    case NB_NODE_INPUT:
        return "an input";
    case NB_NODE_PARAM:
        return "a parameter";
    case NB_NODE_CONSTANT:
        return "a constant";
    case NB_NODE_STATE:
        return "a state tensor (never trained)";
    case NB_NODE_OP:
        return "an op node";
    }
    return "?";
}

int nb_optim_check_params(nb_graph *g, const char *fn, int n,
                          nb_node *const *params)
{
    if (n < 0)
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: n must be >= 0 (got %d)",
                                  fn, n);
    if (n > 0 && !params)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: params is NULL with n = %d", fn, n);
    for (int i = 0; i < n; i++) {
        nb_node *p = params[i];
        if (!p)
            return nb_graph_set_error(g, NB_ERR_ARG, "%s: params[%d] is NULL",
                                      fn, i);
        if (nb_node_graph(p) != g)
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "%s: params[%d] ('%s') belongs to "
                                      "another graph",
                                      fn, i, nb_node_name(p));
        if (nb_node_get_kind(p) != NB_NODE_PARAM)
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "%s: params[%d] ('%s') is not a "
                                      "parameter but %s",
                                      fn, i, nb_node_name(p),
                                      node_kind_name(p));
        /* A parameter listed twice would be updated (or scaled) twice. */
        for (int j = 0; j < i; j++)
            if (params[j] == p)
                return nb_graph_set_error(g, NB_ERR_ARG,
                                          "%s: params[%d] and params[%d] "
                                          "are the same parameter ('%s')",
                                          fn, j, i, nb_node_name(p));
    }
    return NB_OK;
}

#define FN_NEW "optimizer_new"

static int check_finite(nb_graph *g, const char *field, double v)
{
    if (isnan(v))
        return nb_graph_set_error(g, NB_ERR_ARG, FN_NEW ": %s is NaN", field);
    if (isinf(v))
        return nb_graph_set_error(g, NB_ERR_ARG, FN_NEW ": %s is infinite",
                                  field);
    return NB_OK;
}

static int check_unused(nb_graph *g, nb_optim_kind kind, const char *field,
                        bool set, const char *hint)
{
    if (!set)
        return NB_OK;
    return nb_graph_set_error(g, NB_ERR_ARG,
                              FN_NEW ": %s is not used by %s; leave it 0%s",
                              field, kind_name(kind), hint);
}

static int check_unit(nb_graph *g, const char *field, double v)
{
    if (v < 0 || v >= 1)
        return nb_graph_set_error(
            g, NB_ERR_ARG, FN_NEW ": %s must be in [0, 1) (got %g)", field, v);
    return NB_OK;
}

static int check_nonneg(nb_graph *g, const char *field, double v)
{
    if (v < 0)
        return nb_graph_set_error(
            g, NB_ERR_ARG, FN_NEW ": %s must be >= 0 (got %g)", field, v);
    return NB_OK;
}

int nb_optim_resolve_config(nb_graph *g, const nb_optim_config *c,
                            nb_optim_config *out)
{
    if (c->kind != NB_OPTIM_SGD && c->kind != NB_OPTIM_RMSPROP &&
        c->kind != NB_OPTIM_ADAM && c->kind != NB_OPTIM_ADAMW)
        return nb_graph_set_error(
            g, NB_ERR_ARG, FN_NEW ": unknown optimiser kind %d", (int)c->kind);
    const struct {
        const char *name;
        double v;
    } fields[] = {
        {"lr", c->lr},
        {"momentum", c->momentum},
        {"beta1", c->beta1},
        {"beta2", c->beta2},
        {"rho", c->rho},
        {"eps", c->eps},
        {"weight_decay", c->weight_decay},
        {"l1", c->l1},
        {"clip_norm", c->clip_norm},
    };
    int rc;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if ((rc = check_finite(g, fields[i].name, fields[i].v)) != NB_OK)
            return rc;

    nb_optim_kind k = c->kind;
    bool sgd = k == NB_OPTIM_SGD, rms = k == NB_OPTIM_RMSPROP;
    bool adam = k == NB_OPTIM_ADAM || k == NB_OPTIM_ADAMW;
    if ((rc = check_unused(g, k, "momentum", !sgd && c->momentum != 0,
                           adam ? " (Adam's averaging is set by beta1)"
                                : "")) != NB_OK ||
        (rc = check_unused(g, k, "nesterov", !sgd && c->nesterov, "")) !=
            NB_OK ||
        (rc = check_unused(g, k, "beta1", !adam && c->beta1 != 0, "")) !=
            NB_OK ||
        (rc = check_unused(g, k, "beta2", !adam && c->beta2 != 0,
                           rms ? " (RMSprop's decay is rho)" : "")) != NB_OK ||
        (rc = check_unused(g, k, "rho", !rms && c->rho != 0,
                           adam ? " (Adam's decay is beta2)" : "")) != NB_OK ||
        (rc = check_unused(g, k, "eps", sgd && c->eps != 0, "")) != NB_OK)
        return rc;

    if ((rc = check_nonneg(g, "lr", c->lr)) != NB_OK ||
        (rc = check_unit(g, "momentum", c->momentum)) != NB_OK ||
        (rc = check_unit(g, "beta1", c->beta1)) != NB_OK ||
        (rc = check_unit(g, "beta2", c->beta2)) != NB_OK ||
        (rc = check_unit(g, "rho", c->rho)) != NB_OK ||
        (rc = check_nonneg(g, "eps", c->eps)) != NB_OK ||
        (rc = check_nonneg(g, "weight_decay", c->weight_decay)) != NB_OK ||
        (rc = check_nonneg(g, "l1", c->l1)) != NB_OK ||
        (rc = check_nonneg(g, "clip_norm", c->clip_norm)) != NB_OK)
        return rc;
    if (c->nesterov && c->momentum == 0)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  FN_NEW ": nesterov needs momentum > 0");

    *out = *c;
    if (out->lr == 0)
        out->lr = sgd ? 0.01 : 0.001;
    if (adam) {
        if (out->beta1 == 0)
            out->beta1 = 0.9;
        if (out->beta2 == 0)
            out->beta2 = 0.999;
    }
    if (rms && out->rho == 0)
        out->rho = 0.99;
    if (!sgd && out->eps == 0)
        out->eps = 1e-8;
    return NB_OK;
}

int nb_optim_state_per_param(const nb_optim_config *c)
{
    switch (c->kind) {
    case NB_OPTIM_SGD:
        return c->momentum > 0 ? 1 : 0;
    case NB_OPTIM_RMSPROP:
        return 1;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        return 2;
    }
    return 0;
}

const char *nb_optim_state_prefix(const nb_optim_config *c, int k)
{
    switch (c->kind) {
    case NB_OPTIM_SGD:
        return "momentum";
    case NB_OPTIM_RMSPROP:
        return "rmsprop.s";
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        return k == 0 ? "adam.m" : "adam.v";
    }
    return "?";
}
