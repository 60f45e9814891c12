/* Optimisers (SGD, momentum, Nesterov, RMSprop, Adam, AdamW) and clipping
 * by global gradient norm, on the public API only.
 *
 * A step, per element, with dL/dw the latest backward's gradient:
 *   c = clip_norm / ||dL/dw||_2 when clipping is on and the norm exceeds
 *       it, else 1; the norm runs over every trainable parameter of the
 *       optimiser that has a gradient
 *   g = c dL/dw + weight_decay w + l1 sign(w)   (weights only, see below)
 *   then the rule of the kind (include/nabla/optim.h, update_impl.h), e.g.
 *   Adam: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
 *         w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *   AdamW drops weight_decay from g and multiplies w by 1 - lr weight_decay.
 *
 * Everything a step needs is allocated by nb_optimizer_new; a step only
 * validates, takes the norm (one pass over the gradients) and runs one
 * fused loop per parameter.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/graph.h"
#include "nabla/optim.h"
#include "nabla/tensor.h"

/* The hyper-parameters of one step for one parameter, in double. */
struct hyper {
    double cs;     /* clipping factor */
    double l2, l1; /* 0 for parameters that are not regularised */
    double lr;
    double mu, kg, kv;     /* momentum; step = kg g + kv v */
    double rho, crho;      /* RMSprop: rho and 1 - rho */
    double b1, c1, b2, c2; /* Adam: beta and 1 - beta */
    double a, ic2;         /* Adam: lr / (1 - b1^t), 1 / sqrt(1 - b2^t) */
    double eps;
    double decay; /* AdamW: 1 - lr weight_decay; otherwise 1 */
};

/* The form of g = cs dw + l2 w + l1 sign(w) a loop computes. */
enum { REG_NONE, REG_L2, REG_L1L2 };

/* Runs `call` with REG a compile-time constant matching h's terms, so each
 * always-inlined loop body is compiled once per form. */
#define OPT_REG_CASES(h, call)                                                 \
    do {                                                                       \
        if ((h)->l1 != 0) {                                                    \
            enum { REG = REG_L1L2 };                                           \
            call;                                                              \
        } else if ((h)->l2 != 0) {                                             \
            enum { REG = REG_L2 };                                             \
            call;                                                              \
        } else {                                                               \
            enum { REG = REG_NONE };                                           \
            call;                                                              \
        }                                                                      \
    } while (0)

#if defined(__GNUC__)
#define OPT_INLINE inline __attribute__((always_inline))
#else
#define OPT_INLINE inline
#endif

#define REAL float
#define SFX f32
#define SQRT sqrtf
#include "update_impl.h"
#undef REAL
#undef SFX
#undef SQRT

#define REAL double
#define SFX f64
#define SQRT sqrt
#include "update_impl.h"
#undef REAL
#undef SFX
#undef SQRT

struct nb_optimizer {
    nb_graph *g;
    nb_optim_config cfg; /* defaults resolved; cfg.lr is the current rate */
    int64_t steps;
    double grad_norm;
    int n_params;
    int per_param; /* state tensors per parameter: 0, 1 or 2 */
    nb_node **params;
    nb_tensor **state; /* n_params * per_param, parameter-major */
    char **names;      /* the state tensors' names */
};

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
    case NB_NODE_OP:
        return "an op node";
    }
    return "?";
}

/* ---- parameter lists ---- */

/* Either an explicit list or, when params is NULL, the graph's nodes
 * 0..n-1 of which only the parameters count. Walking the graph in place
 * lets nb_clip_grad_norm cover "every parameter" without allocating. */
struct plist {
    nb_graph *g;
    nb_node *const *params;
    int64_t n;
};

static struct plist plist_make(nb_graph *g, int n, nb_node *const *params)
{
    struct plist l = {g, params, n};
    if (n == 0) {
        l.params = NULL;
        l.n = nb_graph_node_count(g);
    }
    return l;
}

static nb_node *plist_get(const struct plist *l, int64_t i)
{
    if (l->params)
        return l->params[i];
    nb_node *x = nb_graph_node(l->g, i);
    return x && nb_node_get_kind(x) == NB_NODE_PARAM ? x : NULL;
}

/* The gradient a step uses: none for frozen parameters, none when the
 * latest backward gave the parameter none. */
static nb_tensor *active_grad(nb_node *p)
{
    if (!p || !nb_node_is_trainable(p))
        return NULL;
    return nb_node_grad(p);
}

static int check_param_list(nb_graph *g, const char *fn, int n,
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

/* ---- gradient norm ---- */

static double tensor_sum_squares(const nb_tensor *t)
{
    int64_t n = nb_tensor_size(t);
    if (nb_tensor_dtype(t) == NB_F32)
        return sum_squares_f32(n, nb_tensor_cdata(t));
    return sum_squares_f64(n, nb_tensor_cdata(t));
}

static double tensor_max_abs(const nb_tensor *t)
{
    int64_t n = nb_tensor_size(t);
    if (nb_tensor_dtype(t) == NB_F32)
        return max_abs_f32(n, nb_tensor_cdata(t));
    return max_abs_f64(n, nb_tensor_cdata(t));
}

static double tensor_sum_squares_scaled(const nb_tensor *t, double inv)
{
    int64_t n = nb_tensor_size(t);
    if (nb_tensor_dtype(t) == NB_F32)
        return sum_squares_scaled_f32(n, nb_tensor_cdata(t), inv);
    return sum_squares_scaled_f64(n, nb_tensor_cdata(t), inv);
}

static void tensor_scale(nb_tensor *t, double c)
{
    int64_t n = nb_tensor_size(t);
    if (nb_tensor_dtype(t) == NB_F32)
        scale_f32(n, nb_tensor_data(t), c);
    else
        scale_f64(n, nb_tensor_data(t), c);
}

/* ||dL/dw||_2 over the active gradients of the list: NaN if one holds a
 * NaN, infinity if one holds an infinity. Squares of finite f64 values can
 * overflow a plain sum (|g| > 1e154), so that case is redone scaled by the
 * largest magnitude. */
static double global_norm(const struct plist *l)
{
    double s = 0;
    for (int64_t i = 0; i < l->n; i++) {
        nb_tensor *dw = active_grad(plist_get(l, i));
        if (dw)
            s += tensor_sum_squares(dw);
    }
    if (!isinf(s))
        return sqrt(s);
    double mx = 0;
    for (int64_t i = 0; i < l->n; i++) {
        nb_tensor *dw = active_grad(plist_get(l, i));
        if (dw) {
            double m = tensor_max_abs(dw);
            mx = m > mx ? m : mx;
        }
    }
    if (!isfinite(mx))
        return mx;
    double r = 0;
    for (int64_t i = 0; i < l->n; i++) {
        nb_tensor *dw = active_grad(plist_get(l, i));
        if (dw)
            r += tensor_sum_squares_scaled(dw, 1.0 / mx);
    }
    return mx * sqrt(r);
}

double nb_clip_grad_norm(nb_graph *g, int n, nb_node *const *params,
                         double max_norm)
{
    if (!g)
        return NB_ERR_ARG;
    if (!(max_norm > 0))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "clip_grad_norm: max_norm must be > 0 "
                                  "(got %g)",
                                  max_norm);
    int rc = check_param_list(g, "clip_grad_norm", n, params);
    if (rc != NB_OK)
        return rc;
    struct plist l = plist_make(g, n, params);
    double norm = global_norm(&l);
    if (!isfinite(norm))
        return nb_graph_set_error(g, NB_ERR_NONFINITE,
                                  "clip_grad_norm: the gradient norm is %g "
                                  "(a gradient holds NaN or infinity); "
                                  "nothing was scaled",
                                  norm);
    if (norm > max_norm) {
        double c = max_norm / norm;
        for (int64_t i = 0; i < l.n; i++) {
            nb_tensor *dw = active_grad(plist_get(&l, i));
            if (dw)
                tensor_scale(dw, c);
        }
    }
    return norm;
}

/* ---- configuration ---- */

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

/* Validates c and writes it with the defaults filled in to out. */
static int resolve_config(nb_graph *g, const nb_optim_config *c,
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

/* ---- creation ---- */

static int state_per_param(const nb_optim_config *c)
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

static const char *state_prefix(const nb_optim_config *c, int k)
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

void nb_optimizer_free(nb_optimizer *opt)
{
    if (!opt)
        return;
    int n_state = opt->n_params * opt->per_param;
    for (int i = 0; opt->state && i < n_state; i++)
        nb_tensor_free(opt->state[i]);
    for (int i = 0; opt->names && i < n_state; i++)
        free(opt->names[i]);
    free(opt->state);
    free(opt->names);
    free(opt->params);
    free(opt);
}

static char *state_name(const char *prefix, const char *param)
{
    size_t len = strlen(prefix) + 1 + strlen(param) + 1;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s/%s", prefix, param);
    return s;
}

static int alloc_state(nb_optimizer *opt)
{
    int n_state = opt->n_params * opt->per_param;
    if (n_state == 0)
        return NB_OK;
    opt->state = calloc((size_t)n_state, sizeof *opt->state);
    opt->names = calloc((size_t)n_state, sizeof *opt->names);
    if (!opt->state || !opt->names)
        return NB_ERR_NOMEM;
    for (int i = 0; i < opt->n_params; i++) {
        const nb_tensor *w = nb_node_value(opt->params[i]);
        for (int k = 0; k < opt->per_param; k++) {
            int s = i * opt->per_param + k;
            opt->state[s] = nb_tensor_new(nb_tensor_dtype(w), nb_tensor_rank(w),
                                          nb_tensor_shape(w));
            opt->names[s] = state_name(state_prefix(&opt->cfg, k),
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
    if (resolve_config(g, config, &cfg) != NB_OK ||
        check_param_list(g, FN_NEW, n, params) != NB_OK)
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

    nb_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt) {
        nb_graph_set_error(g, NB_ERR_NOMEM, FN_NEW ": out of memory");
        return NULL;
    }
    opt->g = g;
    opt->cfg = cfg;
    opt->n_params = (int)count;
    opt->per_param = state_per_param(&cfg);
    opt->params = malloc((size_t)count * sizeof *opt->params);
    if (!opt->params) {
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

/* ---- the step ---- */

/* Checks everything the update loops rely on before any of them runs, so
 * a failing step changes nothing. */
static int check_step(nb_optimizer *opt)
{
    for (int i = 0; i < opt->n_params; i++) {
        nb_node *p = opt->params[i];
        nb_tensor *dw = active_grad(p);
        if (!dw)
            continue;
        const nb_tensor *w = nb_node_value(p);
        if (nb_tensor_dtype(dw) != nb_tensor_dtype(w) ||
            nb_tensor_size(dw) != nb_tensor_size(w))
            return nb_graph_set_error(
                opt->g, NB_ERR_STATE,
                "optimizer_step: the gradient of '%s' (%s, %lld elements) "
                "does not match the parameter (%s, %lld elements)",
                nb_node_name(p), nb_dtype_name(nb_tensor_dtype(dw)),
                (long long)nb_tensor_size(dw),
                nb_dtype_name(nb_tensor_dtype(w)),
                (long long)nb_tensor_size(w));
        for (int k = 0; k < opt->per_param; k++) {
            const nb_tensor *s = opt->state[i * opt->per_param + k];
            if (nb_tensor_dtype(s) != nb_tensor_dtype(w) ||
                nb_tensor_size(s) != nb_tensor_size(w))
                return nb_graph_set_error(
                    opt->g, NB_ERR_STATE,
                    "optimizer_step: the state '%s' no longer matches its "
                    "parameter",
                    opt->names[i * opt->per_param + k]);
        }
    }
    return NB_OK;
}

/* The parts of a step's hyper-parameters that all parameters share. */
static struct hyper step_hyper(const nb_optimizer *opt, double cs)
{
    const nb_optim_config *c = &opt->cfg;
    double t = (double)(opt->steps + 1);
    struct hyper h = {0};
    h.cs = cs;
    h.lr = c->lr;
    h.decay = 1;
    switch (c->kind) {
    case NB_OPTIM_SGD:
        h.mu = c->momentum;
        h.kg = c->nesterov ? 1 : 0;
        h.kv = c->nesterov ? c->momentum : 1;
        break;
    case NB_OPTIM_RMSPROP:
        h.rho = c->rho;
        h.crho = 1 - c->rho;
        h.eps = c->eps;
        break;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        h.b1 = c->beta1;
        h.c1 = 1 - c->beta1;
        h.b2 = c->beta2;
        h.c2 = 1 - c->beta2;
        h.a = c->lr / (1 - pow(c->beta1, t));
        h.ic2 = 1 / sqrt(1 - pow(c->beta2, t));
        h.eps = c->eps;
        break;
    }
    return h;
}

static void update_f32(const nb_optimizer *opt, nb_tensor *w,
                       const nb_tensor *dw, nb_tensor *const *st,
                       const struct hyper *h)
{
    int64_t n = nb_tensor_size(w);
    float *pw = nb_tensor_f32(w);
    const float *pg = nb_tensor_cdata(dw);
    switch (opt->cfg.kind) {
    case NB_OPTIM_SGD:
        if (opt->per_param == 0)
            sgd_f32(n, pw, pg, h);
        else
            momentum_f32(n, pw, pg, nb_tensor_f32(st[0]), h);
        break;
    case NB_OPTIM_RMSPROP:
        rmsprop_f32(n, pw, pg, nb_tensor_f32(st[0]), h);
        break;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        adam_f32(n, pw, pg, nb_tensor_f32(st[0]), nb_tensor_f32(st[1]), h);
        break;
    }
}

static void update_f64(const nb_optimizer *opt, nb_tensor *w,
                       const nb_tensor *dw, nb_tensor *const *st,
                       const struct hyper *h)
{
    int64_t n = nb_tensor_size(w);
    double *pw = nb_tensor_f64(w);
    const double *pg = nb_tensor_cdata(dw);
    switch (opt->cfg.kind) {
    case NB_OPTIM_SGD:
        if (opt->per_param == 0)
            sgd_f64(n, pw, pg, h);
        else
            momentum_f64(n, pw, pg, nb_tensor_f64(st[0]), h);
        break;
    case NB_OPTIM_RMSPROP:
        rmsprop_f64(n, pw, pg, nb_tensor_f64(st[0]), h);
        break;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        adam_f64(n, pw, pg, nb_tensor_f64(st[0]), nb_tensor_f64(st[1]), h);
        break;
    }
}

int nb_optimizer_step(nb_optimizer *opt)
{
    if (!opt)
        return NB_ERR_ARG;
    int rc = check_step(opt);
    if (rc != NB_OK)
        return rc;
    struct plist l = {opt->g, opt->params, opt->n_params};
    double norm = global_norm(&l);
    opt->grad_norm = norm;
    if (!isfinite(norm))
        return nb_graph_set_error(opt->g, NB_ERR_NONFINITE,
                                  "optimizer_step: the gradient norm is %g "
                                  "(a gradient holds NaN or infinity); no "
                                  "parameter was updated",
                                  norm);
    const nb_optim_config *c = &opt->cfg;
    double cs =
        c->clip_norm > 0 && norm > c->clip_norm ? c->clip_norm / norm : 1;
    struct hyper plain = step_hyper(opt, cs);
    /* Weights: L2 enters g, except for AdamW, whose decay is decoupled. */
    struct hyper reg = plain;
    reg.l1 = c->l1;
    if (c->kind == NB_OPTIM_ADAMW)
        reg.decay = 1 - c->lr * c->weight_decay;
    else
        reg.l2 = c->weight_decay;

    for (int i = 0; i < opt->n_params; i++) {
        nb_node *p = opt->params[i];
        nb_tensor *dw = active_grad(p);
        if (!dw)
            continue;
        nb_tensor *w = nb_node_value(p);
        nb_tensor *const *st = opt->state + i * opt->per_param;
        const struct hyper *h =
            c->decay_biases || nb_tensor_rank(w) >= 2 ? &reg : &plain;
        if (nb_tensor_dtype(w) == NB_F32) {
            struct hyper hf = *h;
            /* An eps that rounds to 0 in float would turn 0/0 into NaN. */
            hf.eps = hf.eps > FLT_MIN ? hf.eps : FLT_MIN;
            update_f32(opt, w, dw, st, &hf);
        } else {
            update_f64(opt, w, dw, st, h);
        }
    }
    opt->steps++;
    return NB_OK;
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

void nb_optimizer_set_lr(nb_optimizer *opt, double lr)
{
    if (!opt)
        return;
    if (!(lr >= 0) || isinf(lr)) {
        nb_graph_set_error(opt->g, NB_ERR_ARG,
                           "optimizer_set_lr: lr must be finite and >= 0 "
                           "(got %g)",
                           lr);
        return;
    }
    opt->cfg.lr = lr;
}

int64_t nb_optimizer_steps(const nb_optimizer *opt)
{
    return opt ? opt->steps : NB_ERR_ARG;
}

void nb_optimizer_set_steps(nb_optimizer *opt, int64_t steps)
{
    if (!opt)
        return;
    if (steps < 0) {
        nb_graph_set_error(opt->g, NB_ERR_ARG,
                           "optimizer_set_steps: steps must be >= 0 (got "
                           "%lld)",
                           (long long)steps);
        return;
    }
    opt->steps = steps;
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
