/* Metrics over a dataset: mean loss, accuracy and a confusion matrix, and
 * the checks a model and a dataset must pass before the loop uses them.
 *
 *   loss     = sum_b n_b L_b / sum_b n_b   (L_b the mean loss of batch b of
 *                                          n_b rows: the loss node's value)
 *   accuracy = #{i : predicted_i = true_i} / n
 *
 * Predicted and true classes, per row of the scored node [n, k] and of the
 * targets y:
 *   k = 1 (one sigmoid column): predicted = [out >= 0.5], true = [y >= 0.5]
 *   k > 1, y class indices [n]: predicted = argmax out, true = y
 *   k > 1, y rows [n, k]:       predicted = argmax out, true = argmax y
 * argmax takes the first of equal entries. A class index that is not an
 * integer in [0, k) never counts as right.
 *
 * When the output is softmax, log-softmax or sigmoid of a node that the
 * loss's forward pass already computes, that node is scored instead:
 * argmax is unchanged by those maps and sigmoid(z) >= 1/2 exactly when
 * z >= 0, so the answer is the same and a second forward pass is saved.
 */
#include <math.h>
#include <string.h>

#include "train_internal.h"

static int null_node(nb_graph *g, const char *who, const char *field)
{
    /* A NULL left by a failed constructor: its message is already held. */
    if (nb_graph_status(g) != NB_OK)
        return nb_graph_status(g);
    return nb_graph_set_error(g, NB_ERR_ARG, "%s: model->%s is NULL", who,
                              field);
}

static int foreign(nb_graph *g, const char *who, const char *field, nb_node *n)
{
    return nb_graph_set_error(g, NB_ERR_ARG,
                              "%s: model->%s ('%s') belongs to another graph",
                              who, field, nb_node_name(n));
}

/* Product of the extents after the first: the width of one row. */
static int64_t row_width(const nb_tensor *t)
{
    int64_t w = 1;
    for (int i = 1; i < nb_tensor_rank(t); i++)
        w *= nb_tensor_dim(t, i);
    return w;
}

/* Whether `target` lies upstream of (or is) `top`. Node ids are a
 * topological order, so one downward sweep over ids marks every ancestor. */
static int is_ancestor(nb_graph *g, nb_node *target, nb_node *top, bool *answer)
{
    int64_t want = nb_node_id(target), hi = nb_node_id(top);
    *answer = want == hi;
    if (want >= hi)
        return NB_OK;
    unsigned char *mark = nb_alloc_zeroed((size_t)hi + 1);
    if (!mark)
        return nb_graph_set_error(g, NB_ERR_NOMEM, "out of memory");
    mark[hi] = 1;
    for (int64_t id = hi; id > want; id--) {
        if (!mark[id])
            continue;
        nb_node *n = nb_graph_node(g, id);
        for (int i = 0; i < nb_node_input_count(n); i++)
            mark[nb_node_id(nb_node_input(n, i))] = 1;
    }
    *answer = mark[want] != 0;
    nb_free(mark);
    return NB_OK;
}

/* The declared shape of an input, batch shown as -1. */
static const char *declared(nb_node *input, char *buf, size_t len)
{
    const nb_tensor *v = nb_node_value(input);
    int64_t shape[NB_MAX_RANK];
    int rank = nb_tensor_rank(v);
    memcpy(shape, nb_tensor_shape(v), (size_t)rank * sizeof *shape);
    if (rank > 0)
        shape[0] = NB_DYNAMIC;
    return nb_shape_str(rank, shape, buf, len);
}

/* Picks the node to score, preferring one the loss's forward computes. */
static int choose_scored_node(nb_graph *g, const nb_model *m, nb_scorer *s)
{
    bool computed;
    int rc = is_ancestor(g, m->output, m->loss, &computed);
    if (rc != NB_OK)
        return rc;
    s->node = m->output;
    s->forward = !computed;
    s->threshold = 0.5;
    if (computed || nb_node_get_kind(m->output) != NB_NODE_OP)
        return NB_OK;
    const char *op = nb_node_op_name(m->output);
    bool sigmoid = strcmp(op, "sigmoid") == 0;
    bool softmax = strcmp(op, "softmax") == 0 || strcmp(op, "log_softmax") == 0;
    /* Softmax of a single column is constantly 1: nothing to substitute. */
    if (!sigmoid && !(softmax && !s->single))
        return NB_OK;
    nb_node *z = nb_node_input(m->output, 0);
    if ((rc = is_ancestor(g, z, m->loss, &computed)) != NB_OK)
        return rc;
    if (computed) {
        s->node = z;
        s->forward = false;
        s->threshold = 0.0;
    }
    return NB_OK;
}

int nb_train_check_model(nb_graph *g, const nb_model *m, const char *who,
                         nb_scorer *s)
{
    memset(s, 0, sizeof *s);
    if (!m)
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: model is NULL", who);
    if (!m->x)
        return null_node(g, who, "x");
    if (!m->y)
        return null_node(g, who, "y");
    if (!m->loss)
        return null_node(g, who, "loss");
    if (nb_node_graph(m->x) != g)
        return foreign(g, who, "x", m->x);
    if (nb_node_graph(m->y) != g)
        return foreign(g, who, "y", m->y);
    if (nb_node_graph(m->loss) != g)
        return foreign(g, who, "loss", m->loss);
    if (m->output && nb_node_graph(m->output) != g)
        return foreign(g, who, "output", m->output);
    if (nb_node_get_kind(m->x) != NB_NODE_INPUT ||
        nb_node_get_kind(m->y) != NB_NODE_INPUT)
        return nb_graph_set_error(
            g, NB_ERR_ARG, "%s: model->%s ('%s') is a %s node, not an input",
            who, nb_node_get_kind(m->x) != NB_NODE_INPUT ? "x" : "y",
            nb_node_name(nb_node_get_kind(m->x) != NB_NODE_INPUT ? m->x : m->y),
            nb_node_op_name(nb_node_get_kind(m->x) != NB_NODE_INPUT ? m->x
                                                                    : m->y));
    if (m->n_extra < 0 || m->n_extra > NB_MODEL_MAX_EXTRA ||
        (m->n_extra > 0 && !m->extra))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: model->n_extra is %d; it must be in "
                                  "[0, %d] with as many nodes in extra",
                                  who, m->n_extra, NB_MODEL_MAX_EXTRA);
    for (int i = 0; i < m->n_extra; i++) {
        char part[32];
        snprintf(part, sizeof part, "extra[%d]", i);
        nb_node *e = m->extra[i];
        if (!e)
            return null_node(g, who, part);
        if (nb_node_graph(e) != g)
            return foreign(g, who, part, e);
        if (nb_node_get_kind(e) != NB_NODE_INPUT)
            return nb_graph_set_error(
                g, NB_ERR_ARG, "%s: model->%s ('%s') is a %s node, not an input",
                who, part, nb_node_name(e), nb_node_op_name(e));
    }
    char buf[128];
    const nb_tensor *lv = nb_node_value(m->loss);
    if (nb_tensor_size(lv) != 1)
        return nb_graph_set_error(
            g, NB_ERR_ARG, "%s: model->loss ('%s') has shape %s, not a scalar",
            who, nb_node_name(m->loss),
            nb_shape_str(nb_tensor_rank(lv), nb_tensor_shape(lv), buf,
                         sizeof buf));
    if (!m->output)
        return NB_OK;

    const nb_tensor *ov = nb_node_value(m->output);
    const nb_tensor *yv = nb_node_value(m->y);
    if (nb_tensor_rank(ov) < 1)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: model->output ('%s') is a scalar; it "
                                  "must have a row per example",
                                  who, nb_node_name(m->output));
    int64_t k = row_width(ov);
    int yrank = nb_tensor_rank(yv);
    int64_t ky = yrank == 2 ? nb_tensor_dim(yv, 1) : 1;
    s->index_targets = yrank == 1;
    s->single = k == 1;
    s->classes = k == 1 ? 2 : k;
    bool fits = (yrank == 1 || yrank == 2) &&
                (k == 1 ? ky == 1 : (yrank == 1 || ky == k));
    if (!fits)
        return nb_graph_set_error(
            g, NB_ERR_ARG,
            "%s: model->output ('%s') has %lld column%s but the targets "
            "model->y ('%s') have shape %s; accuracy needs class indices "
            "[batch] or rows [batch, %lld]",
            who, nb_node_name(m->output), (long long)k, k == 1 ? "" : "s",
            nb_node_name(m->y), declared(m->y, buf, sizeof buf), (long long)k);
    return choose_scored_node(g, m, s);
}

static int check_part(nb_graph *g, const nb_tensor *t, nb_node *input,
                      const char *who, const char *which, const char *part)
{
    const nb_tensor *v = nb_node_value(input);
    char a[128], b[128];
    bool fits = nb_tensor_rank(t) == nb_tensor_rank(v) && nb_tensor_rank(t) > 0;
    for (int i = 1; fits && i < nb_tensor_rank(t); i++)
        fits = nb_tensor_dim(t, i) == nb_tensor_dim(v, i);
    if (!fits)
        return nb_graph_set_error(
            g, NB_ERR_ARG, "%s: %s set %s has shape %s but input '%s' takes %s",
            who, which, part,
            nb_shape_str(nb_tensor_rank(t), nb_tensor_shape(t), a, sizeof a),
            nb_node_name(input), declared(input, b, sizeof b));
    if (nb_tensor_dtype(t) != nb_tensor_dtype(v))
        return nb_graph_set_error(
            g, NB_ERR_ARG, "%s: %s set %s is %s but input '%s' is %s", who,
            which, part, nb_dtype_name(nb_tensor_dtype(t)), nb_node_name(input),
            nb_dtype_name(nb_tensor_dtype(v)));
    return NB_OK;
}

int nb_train_check_dataset(nb_graph *g, const nb_model *m, const nb_dataset *ds,
                           const char *who, const char *which)
{
    if (!ds || !ds->x || !ds->y)
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: %s set%s is NULL", who,
                                  which,
                                  !ds      ? ""
                                  : !ds->x ? " x"
                                           : " y");
    int64_t rows = nb_tensor_rank(ds->x) > 0 ? nb_tensor_dim(ds->x, 0) : 0;
    int64_t yrows = nb_tensor_rank(ds->y) > 0 ? nb_tensor_dim(ds->y, 0) : 0;
    if (rows != yrows)
        return nb_graph_set_error(
            g, NB_ERR_ARG, "%s: %s set has %lld rows in x but %lld in y", who,
            which, (long long)rows, (long long)yrows);
    if (rows == 0)
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: %s set has no rows", who,
                                  which);
    int rc = check_part(g, ds->x, m->x, who, which, "x");
    rc = rc != NB_OK ? rc : check_part(g, ds->y, m->y, who, which, "y");
    if (rc != NB_OK)
        return rc;
    if (ds->n_extra != m->n_extra || (ds->n_extra > 0 && !ds->extra))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: %s set has %d extra tensors but the "
                                  "model has %d extra inputs",
                                  who, which, ds->extra ? ds->n_extra : 0,
                                  m->n_extra);
    for (int i = 0; i < m->n_extra && rc == NB_OK; i++) {
        char part[32];
        snprintf(part, sizeof part, "extra[%d]", i);
        const nb_tensor *t = ds->extra[i];
        int64_t erows = t && nb_tensor_rank(t) > 0 ? nb_tensor_dim(t, 0) : -1;
        if (erows != rows)
            return nb_graph_set_error(
                g, NB_ERR_ARG, "%s: %s set has %lld rows in x but %s in %s",
                who, which, (long long)rows, t ? "another count" : "none",
                part);
        rc = check_part(g, t, m->extra[i], who, which, part);
    }
    return rc;
}

static inline double elem(const void *p, bool f64, int64_t i)
{
    return f64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

static int64_t argmax(const void *p, bool f64, int64_t first, int64_t k)
{
    int64_t best = 0;
    double top = elem(p, f64, first);
    for (int64_t j = 1; j < k; j++) {
        double v = elem(p, f64, first + j);
        if (v > top) {
            top = v;
            best = j;
        }
    }
    return best;
}

int64_t nb_train_score(const nb_scorer *s, const nb_model *m, int64_t count,
                       int64_t *confusion, int64_t classes)
{
    const nb_tensor *out = nb_node_value(s->node);
    const nb_tensor *y = nb_node_value(m->y);
    const void *po = nb_tensor_cdata(out), *py = nb_tensor_cdata(y);
    bool fo = nb_tensor_dtype(out) == NB_F64, fy = nb_tensor_dtype(y) == NB_F64;
    int64_t k = s->single ? 1 : s->classes;
    int64_t right = 0;
    for (int64_t i = 0; i < count; i++) {
        int64_t predicted, truth;
        if (s->single) {
            predicted = elem(po, fo, i) >= s->threshold;
            truth = elem(py, fy, i) >= 0.5;
        } else {
            predicted = argmax(po, fo, i * k, k);
            if (s->index_targets) {
                double t = elem(py, fy, i);
                truth =
                    t >= 0 && t < (double)k && t == floor(t) ? (int64_t)t : -1;
            } else {
                truth = argmax(py, fy, i * k, k);
            }
        }
        right += predicted == truth;
        if (confusion && truth >= 0 && truth < classes && predicted < classes)
            confusion[truth * classes + predicted]++;
    }
    return right;
}

/* Feeds rows [first, first + count) of t to input without copying them
 * anywhere else first: consecutive rows are one contiguous block. */
static int feed_block(nb_graph *g, nb_node *input, const nb_tensor *t,
                      int64_t first, int64_t count)
{
    int64_t shape[NB_MAX_RANK];
    int rank = nb_tensor_rank(t);
    memcpy(shape, nb_tensor_shape(t), (size_t)rank * sizeof *shape);
    shape[0] = count;
    size_t row = (size_t)row_width(t) * nb_dtype_size(nb_tensor_dtype(t));
    const char *base = nb_tensor_cdata(t);
    return nb_feed(g, input, rank, shape, base + (size_t)first * row);
}

int nb_train_evaluate_run(nb_graph *g, const nb_model *m, const nb_scorer *s,
                          const nb_dataset *ds, int64_t batch_size,
                          nb_metrics *out, const char *who)
{
    int64_t n = nb_tensor_dim(ds->x, 0);
    int64_t b = batch_size <= 0 || batch_size > n ? n : batch_size;
    if (out->confusion)
        memset(out->confusion, 0,
               (size_t)(out->classes * out->classes) * sizeof *out->confusion);
    nb_graph_set_training(g, false);
    double total = 0;
    int64_t right = 0;
    for (int64_t first = 0; first < n; first += b) {
        int64_t count = n - first < b ? n - first : b;
        int rc = feed_block(g, m->x, ds->x, first, count);
        rc = rc ? rc : feed_block(g, m->y, ds->y, first, count);
        for (int i = 0; i < m->n_extra && rc == NB_OK; i++)
            rc = feed_block(g, m->extra[i], ds->extra[i], first, count);
        rc = rc ? rc : nb_forward(g, m->loss);
        if (rc == NB_OK && s->node && s->forward)
            rc = nb_forward(g, s->node);
        if (rc != NB_OK) {
            out->loss = out->accuracy = NAN;
            out->count = 0;
            /* The engine's message says what failed; this says where. */
            if (nb_graph_status(g) == NB_OK)
                nb_graph_set_error(g, rc, "%s: batch at row %lld failed", who,
                                   (long long)first);
            return rc;
        }
        double loss = nb_tensor_get(nb_node_value(m->loss), 0);
        if (!isfinite(loss)) {
            out->loss = out->accuracy = NAN;
            out->count = 0;
            return nb_graph_set_error(g, NB_ERR_NONFINITE,
                                      "%s: the loss is %g on the batch of "
                                      "rows [%lld, %lld)",
                                      who, loss, (long long)first,
                                      (long long)(first + count));
        }
        total += loss * (double)count;
        if (s->node)
            right += nb_train_score(s, m, count, out->confusion, out->classes);
    }
    out->loss = total / (double)n;
    out->accuracy = s->node ? (double)right / (double)n : NAN;
    out->count = n;
    return NB_OK;
}

int nb_evaluate(nb_graph *g, const nb_model *model, const nb_dataset *ds,
                int64_t batch_size, nb_metrics *out)
{
    return nb_evaluate_confusion(g, model, ds, batch_size, out, NULL, 0);
}

int nb_evaluate_confusion(nb_graph *g, const nb_model *model,
                          const nb_dataset *ds, int64_t batch_size,
                          nb_metrics *out, int64_t *confusion,
                          int64_t classes)
{
    static const char who[] = "evaluate";
    if (!g)
        return NB_ERR_ARG;
    nb_scorer s;
    int rc = nb_train_check_model(g, model, who, &s);
    if (rc != NB_OK)
        return rc;
    if ((rc = nb_train_check_dataset(g, model, ds, who, "evaluation")) != NB_OK)
        return rc;
    if (!out)
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: out is NULL", who);
    /* out is written, never read: whatever the caller's struct held. */
    out->confusion = confusion;
    out->classes = classes;
    if (batch_size < 0)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: batch_size is %lld; it must be >= 0 "
                                  "(0 means the whole set)",
                                  who, (long long)batch_size);
    if (out->confusion) {
        if (!s.node)
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "%s: a confusion matrix needs "
                                      "model->output",
                                      who);
        /* Bounded so that classes^2 entries cannot overflow a size_t. */
        if (out->classes < s.classes || out->classes > (INT64_C(1) << 24))
            return nb_graph_set_error(
                g, NB_ERR_ARG,
                "%s: the confusion matrix has %lld classes but the output "
                "needs %lld",
                who, (long long)out->classes, (long long)s.classes);
    } else {
        out->classes = s.node ? s.classes : 0;
    }
    bool training = nb_graph_training(g);
    rc = nb_train_evaluate_run(g, model, &s, ds, batch_size, out, who);
    nb_graph_set_training(g, training);
    return rc;
}
