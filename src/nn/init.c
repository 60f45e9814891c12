/* Weight initialisers. Every draw comes from the graph's RNG, so a seed
 * fixes every initial weight; each writes the parameter's value in place,
 * in its own dtype (f32 or f64).
 *
 *   uniform(lo, hi)             w ~ U[lo, hi)
 *   normal(mean, std)           w ~ N(mean, std^2)
 *   xavier_uniform(fi, fo, g)   w ~ U(-a, a),  a = g sqrt(6 / (fi + fo))
 *   xavier_normal(fi, fo, g)    w ~ N(0, s^2), s = g sqrt(2 / (fi + fo))
 *   he_uniform(fi)              w ~ U(-a, a),  a = sqrt(6 / fi)
 *   he_normal(fi)               w ~ N(0, s^2), s = sqrt(2 / fi)
 *   constant(v)                 w = v
 *
 * U(-a, a) has variance a^2 / 3, so the uniform and normal forms of each
 * scheme give the same variance: 2 / (fi + fo) (Glorot & Bengio 2010,
 * keeping forward and backward signal variance equal) and 2 / fi (He et al.
 * 2015, making up for ReLU zeroing half its inputs).
 */
#include <math.h>

#include "nabla/nn.h"

/* Records an error unless `p` is a parameter of g. */
static int check_param(nb_graph *g, nb_node *p, const char *what)
{
    if (!g)
        return NB_ERR_ARG;
    if (!p)
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: param is NULL", what);
    if (nb_node_graph(p) != g)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: '%s' belongs to another graph", what,
                                  nb_node_name(p));
    if (nb_node_get_kind(p) != NB_NODE_PARAM)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: '%s' is not a parameter (it is a %s "
                                  "node)",
                                  what, nb_node_name(p), nb_node_op_name(p));
    return NB_OK;
}

static int check_fan(nb_graph *g, const char *what, const char *which,
                     double fan)
{
    if (!(isfinite(fan) && fan > 0))
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: %s = %g must be positive",
                                  what, which, fan);
    return NB_OK;
}

/* One draw of U[lo, hi) in the parameter's precision. lo + (hi - lo) u can
 * round up to hi (in double for u near 1, and more often when narrowed to
 * f32), which the half-open interval excludes: such a draw is pulled down
 * to the largest representable value below hi. */
static double uniform_draw(nb_graph *g, double lo, double hi, nb_dtype dtype)
{
    double v = lo + (hi - lo) * nb_rng_uniform(g);
    if (dtype == NB_F32) {
        float f = (float)v;
        if ((double)f >= hi) {
            f = nextafterf((float)hi, -INFINITY);
            if ((double)f < lo)
                f = (float)lo;
        }
        return f;
    }
    return v < hi ? v : nextafter(hi, -INFINITY);
}

static void fill_uniform(nb_graph *g, nb_node *p, double lo, double hi)
{
    nb_tensor *t = nb_node_value(p);
    int64_t n = nb_tensor_size(t);
    if (nb_tensor_dtype(t) == NB_F64) {
        double *d = nb_tensor_f64(t);
        for (int64_t i = 0; i < n; i++)
            d[i] = uniform_draw(g, lo, hi, NB_F64);
    } else {
        float *f = nb_tensor_f32(t);
        for (int64_t i = 0; i < n; i++)
            f[i] = (float)uniform_draw(g, lo, hi, NB_F32);
    }
}

static void fill_normal(nb_graph *g, nb_node *p, double mean, double std)
{
    nb_tensor *t = nb_node_value(p);
    int64_t n = nb_tensor_size(t);
    if (nb_tensor_dtype(t) == NB_F64) {
        double *d = nb_tensor_f64(t);
        for (int64_t i = 0; i < n; i++)
            d[i] = mean + std * nb_rng_normal(g);
    } else {
        float *f = nb_tensor_f32(t);
        for (int64_t i = 0; i < n; i++)
            f[i] = (float)(mean + std * nb_rng_normal(g));
    }
}

/* The checked bodies shared by the public entry points, which differ only
 * in the name their messages carry. */
static int init_uniform(nb_graph *g, nb_node *p, double lo, double hi,
                        const char *what)
{
    int rc = check_param(g, p, what);
    if (rc != NB_OK)
        return rc;
    if (!(isfinite(lo) && isfinite(hi) && lo < hi))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s '%s': the interval [%g, %g) is empty or "
                                  "not finite (need lo < hi)",
                                  what, nb_node_name(p), lo, hi);
    fill_uniform(g, p, lo, hi);
    return NB_OK;
}

static int init_normal(nb_graph *g, nb_node *p, double mean, double std,
                       const char *what)
{
    int rc = check_param(g, p, what);
    if (rc != NB_OK)
        return rc;
    if (!isfinite(mean))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s '%s': mean = %g is not finite", what,
                                  nb_node_name(p), mean);
    if (!(isfinite(std) && std >= 0))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s '%s': std = %g must be finite and >= 0",
                                  what, nb_node_name(p), std);
    fill_normal(g, p, mean, std);
    return NB_OK;
}

static int check_gain(nb_graph *g, const char *what, double gain)
{
    if (!(isfinite(gain) && gain > 0))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: gain = %g must be positive", what, gain);
    return NB_OK;
}

int nb_init_uniform(nb_graph *g, nb_node *param, double lo, double hi)
{
    return init_uniform(g, param, lo, hi, "init_uniform");
}

int nb_init_normal(nb_graph *g, nb_node *param, double mean, double std)
{
    return init_normal(g, param, mean, std, "init_normal");
}

/* The arguments both Glorot initialisers take. */
static int check_xavier(nb_graph *g, nb_node *param, const char *what,
                        double fan_in, double fan_out, double gain)
{
    int rc = check_param(g, param, what);
    if (rc == NB_OK)
        rc = check_fan(g, what, "fan_in", fan_in);
    if (rc == NB_OK)
        rc = check_fan(g, what, "fan_out", fan_out);
    if (rc == NB_OK)
        rc = check_gain(g, what, gain);
    return rc;
}

int nb_init_xavier_uniform(nb_graph *g, nb_node *param, double fan_in,
                           double fan_out, double gain)
{
    const char *what = "init_xavier_uniform";
    int rc = check_xavier(g, param, what, fan_in, fan_out, gain);
    if (rc != NB_OK)
        return rc;
    double a = gain * sqrt(6.0 / (fan_in + fan_out));
    return init_uniform(g, param, -a, a, what);
}

int nb_init_xavier_normal(nb_graph *g, nb_node *param, double fan_in,
                          double fan_out, double gain)
{
    const char *what = "init_xavier_normal";
    int rc = check_xavier(g, param, what, fan_in, fan_out, gain);
    if (rc != NB_OK)
        return rc;
    return init_normal(g, param, 0, gain * sqrt(2.0 / (fan_in + fan_out)),
                       what);
}

int nb_init_he_uniform(nb_graph *g, nb_node *param, double fan_in)
{
    const char *what = "init_he_uniform";
    int rc = check_param(g, param, what);
    if (rc == NB_OK)
        rc = check_fan(g, what, "fan_in", fan_in);
    if (rc != NB_OK)
        return rc;
    double a = sqrt(6.0 / fan_in);
    return init_uniform(g, param, -a, a, what);
}

int nb_init_he_normal(nb_graph *g, nb_node *param, double fan_in)
{
    const char *what = "init_he_normal";
    int rc = check_param(g, param, what);
    if (rc == NB_OK)
        rc = check_fan(g, what, "fan_in", fan_in);
    if (rc != NB_OK)
        return rc;
    return init_normal(g, param, 0, sqrt(2.0 / fan_in), what);
}

int nb_init_constant(nb_graph *g, nb_node *param, double value)
{
    const char *what = "init_constant";
    int rc = check_param(g, param, what);
    if (rc != NB_OK)
        return rc;
    if (!isfinite(value))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s '%s': value = %g is not finite", what,
                                  nb_node_name(param), value);
    nb_tensor_fill(nb_node_value(param), value);
    return NB_OK;
}
