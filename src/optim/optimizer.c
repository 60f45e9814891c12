/* The optimiser object: creation (after config.c has validated the
 * config and the parameter list), its state tensors and their names, and
 * the accessors. The step is in step.c, the gradient norm in grad_norm.c.
 * Everything a step needs is allocated here, through nb_alloc, so that a
 * step allocates nothing. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "optim_internal.h"

#define FN_NEW "optimizer_new"

void nb_optimizer_free(nb_optimizer *opt)
{
    if (!opt)
        return;
    int n_state = opt->n_params * opt->per_param;
    for (int i = 0; opt->state && i < n_state; i++)
        nb_tensor_free(opt->state[i]);
    for (int i = 0; opt->names && i < n_state; i++)
        nb_free(opt->names[i]);
    nb_free(opt->state);
    nb_free(opt->names);
    nb_free(opt->params);
    nb_free(opt->items);
    nb_free(opt);
}

static char *state_name(const char *prefix, const char *param)
{
    size_t len = strlen(prefix) + 1 + strlen(param) + 1;
    char *s = nb_alloc(len);
    if (s)
        snprintf(s, len, "%s/%s", prefix, param);
    return s;
}

static int alloc_state(nb_optimizer *opt)
{
    int n_state = opt->n_params * opt->per_param;
    if (n_state == 0)
        return NB_OK;
    opt->state = nb_alloc_zeroed((size_t)n_state * sizeof *opt->state);
    opt->names = nb_alloc_zeroed((size_t)n_state * sizeof *opt->names);
    if (!opt->state || !opt->names)
        return NB_ERR_NOMEM;
    for (int i = 0; i < opt->n_params; i++) {
        const nb_tensor *w = nb_node_value(opt->params[i]);
        for (int k = 0; k < opt->per_param; k++) {
            int s = i * opt->per_param + k;
            opt->state[s] = nb_tensor_new(nb_tensor_dtype(w), nb_tensor_rank(w),
                                          nb_tensor_shape(w));
            opt->names[s] = state_name(nb_optim_state_prefix(&opt->cfg, k),
                                       nb_node_name(opt->params[i]));
            if (!opt->state[s] || !opt->names[s])
                return NB_ERR_NOMEM;
        }
    }
    return NB_OK;
}

nb_optimizer *nb_optimizer_new(nb_graph *g, const nb_optim_config *config,
                               int n, nb_node *const *params)
{
    if (!g)
        return NULL;
    if (!config) {
        nb_graph_set_error(g, NB_ERR_ARG, FN_NEW ": config is NULL");
        return NULL;
    }
    nb_optim_config cfg;
    if (nb_optim_resolve_config(g, config, &cfg) != NB_OK ||
        nb_optim_check_params(g, FN_NEW, n, params) != NB_OK)
        return NULL;

    int64_t count = n;
    if (n == 0) {
        count = 0;
        for (int64_t id = 0; id < nb_graph_node_count(g); id++)
            count += nb_node_get_kind(nb_graph_node(g, id)) == NB_NODE_PARAM;
        if (count == 0) {
            nb_graph_set_error(g, NB_ERR_ARG,
                               FN_NEW ": the graph has no parameters");
            return NULL;
        }
        if (count > INT_MAX / 2) {
            nb_graph_set_error(g, NB_ERR_ARG,
                               FN_NEW ": too many parameters (%lld)",
                               (long long)count);
            return NULL;
        }
    }

    nb_optimizer *opt = nb_alloc_zeroed(sizeof *opt);
    if (!opt) {
        nb_graph_set_error(g, NB_ERR_NOMEM, FN_NEW ": out of memory");
        return NULL;
    }
    opt->g = g;
    opt->cfg = cfg;
    opt->n_params = (int)count;
    opt->per_param = nb_optim_state_per_param(&cfg);
    opt->params = nb_alloc((size_t)count * sizeof *opt->params);
    opt->items = nb_alloc((size_t)count * sizeof *opt->items);
    if (!opt->params || !opt->items) {
        nb_optimizer_free(opt);
        nb_graph_set_error(g, NB_ERR_NOMEM, FN_NEW ": out of memory");
        return NULL;
    }
    if (n > 0) {
        memcpy(opt->params, params, (size_t)n * sizeof *params);
    } else {
        int k = 0;
        for (int64_t id = 0; id < nb_graph_node_count(g); id++) {
            nb_node *x = nb_graph_node(g, id);
            if (nb_node_get_kind(x) == NB_NODE_PARAM)
                opt->params[k++] = x;
        }
    }
    if (alloc_state(opt) != NB_OK) {
        nb_optimizer_free(opt);
        nb_graph_set_error(g, NB_ERR_NOMEM,
                           FN_NEW ": out of memory for the optimiser state");
        return NULL;
    }
    return opt;
}

/* ---- accessors ---- */

double nb_optimizer_grad_norm(const nb_optimizer *opt)
{
    return opt ? opt->grad_norm : NAN;
}

double nb_optimizer_lr(const nb_optimizer *opt)
{
    return opt ? opt->cfg.lr : NAN;
}

int nb_optimizer_set_lr(nb_optimizer *opt, double lr)
{
    if (!opt)
        return NB_ERR_ARG;
    if (!(lr >= 0) || isinf(lr))
        return nb_graph_set_error(opt->g, NB_ERR_ARG,
                                  "optimizer_set_lr: lr must be finite and "
                                  ">= 0 (got %g)",
                                  lr);
    opt->cfg.lr = lr;
    return NB_OK;
}

int64_t nb_optimizer_steps(const nb_optimizer *opt)
{
    return opt ? opt->steps : NB_ERR_ARG;
}

int nb_optimizer_set_steps(nb_optimizer *opt, int64_t steps)
{
    if (!opt)
        return NB_ERR_ARG;
    /* INT64_MAX - 1 is the last count a step may leave (see
     * nb_optimizer_step), so a larger one cannot come from a real run. */
    if (steps < 0 || steps > INT64_MAX - 1)
        return nb_graph_set_error(opt->g, NB_ERR_ARG,
                                  "optimizer_set_steps: steps must be in "
                                  "[0, %lld] (got %lld)",
                                  (long long)(INT64_MAX - 1),
                                  (long long)steps);
    opt->steps = steps;
    return NB_OK;
}

const nb_optim_config *nb_optimizer_config(const nb_optimizer *opt)
{
    return opt ? &opt->cfg : NULL;
}

int nb_optimizer_param_count(const nb_optimizer *opt)
{
    return opt ? opt->n_params : 0;
}

nb_node *nb_optimizer_param(const nb_optimizer *opt, int i)
{
    if (!opt)
        return NULL;
    if (i < 0 || i >= opt->n_params) {
        nb_graph_set_error(opt->g, NB_ERR_ARG,
                           "optimizer_param: index %d is out of range "
                           "[0, %d)",
                           i, opt->n_params);
        return NULL;
    }
    return opt->params[i];
}

int nb_optimizer_state_count(const nb_optimizer *opt)
{
    return opt ? opt->n_params * opt->per_param : 0;
}

nb_tensor *nb_optimizer_state(nb_optimizer *opt, int i, const char **name)
{
    if (name)
        *name = NULL;
    if (!opt)
        return NULL;
    int n_state = opt->n_params * opt->per_param;
    if (i < 0 || i >= n_state) {
        nb_graph_set_error(opt->g, NB_ERR_ARG,
                           "optimizer_state: index %d is out of range "
                           "[0, %d)",
                           i, n_state);
        return NULL;
    }
    if (name)
        *name = opt->names[i];
    return opt->state[i];
}
