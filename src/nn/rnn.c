/* Recurrent cells and the sequence layer, built from the public ops as the
 * MLP is: an unrolled sequence is an ordinary graph, one set of parameter
 * nodes consumed by every step, so each weight's gradient is the sum of
 * the messages of all T steps (backpropagation through time is backward
 * message passing on that graph, nothing more).
 *
 * Weights follow PyTorch's layout and gate order, so a state_dict carries
 * over: w_ih [G H, E], w_hh [G H, H], b_ih and b_hh [G H], with G = 1
 * (Elman), 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n). With x [N, E] and
 * h, c [N, H]:
 *
 *   Elman  h' = tanh(x w_ih^T + b_ih + h w_hh^T + b_hh)
 *   LSTM   [i f g o] = x w_ih^T + b_ih + h w_hh^T + b_hh
 *          i, f, o = sigmoid(.), g = tanh(.)
 *          c' = f * c + i * g,   h' = o * tanh(c')
 *   GRU    r = sigmoid(x w_ir^T + b_ir + h w_hr^T + b_hr)
 *          z = sigmoid(x w_iz^T + b_iz + h w_hz^T + b_hz)
 *          n = tanh(x w_in^T + b_in + r * (h w_hn^T + b_hn))
 *          h' = (1 - z) * n + z * h  =  n + z * (h - n)
 *
 * Every weight, bias included, starts as PyTorch's does: U(-k, k) with
 * k = 1/sqrt(H). An LSTM's forget block of b_ih then gets `forget_bias`
 * added (0 keeps PyTorch's init; 1 is the usual advice of Gers et al. and
 * Jozefowicz et al., so that a fresh cell remembers rather than forgets).
 *
 * What the graph computes once per sequence rather than per step: the
 * transposed weights (one permute node each, shared by the steps), and the
 * input projection of all T steps as one matmul of [N, T, E] by
 * [E, G H] with the biases added: b_ih + b_hh is one bias of the sum for
 * Elman and LSTM, while GRU's b_hn sits inside r * (.), so GRU projects
 * with b_ih alone and adds b_hh per step. A step is
 * then the recurrent product, the gates and the state update.
 *
 * A zero initial state is a constant [1, H] of zeros that broadcasts
 * against the batch, so it needs no batch size and the first step's
 * products are one row. A mask [N, T] (1 for a real step, 0 for padding)
 * makes a padded step keep the state, s_t = s_{t-1} + m_t (s'_t - s_{t-1}),
 * and zeroes its output, so padding at the end of a row leaves the final
 * state at that row's last real step and sends nothing back through the
 * padded positions; reversed, the padded steps come first and carry the
 * initial state to the real ones.
 *
 * The sequence layer keeps the per-layer unrolling in one function
 * (unroll_layer) whose contract is the fused sequence op's: [N, T, E] in,
 * [N, T, H] out and the final states, for the weights of nb_rnn_params.
 * Where a fused op computes the same layer (no mask, forward in time) the
 * layer is that op instead (fused_layer), unless the spec asks for the
 * composite. The fused ops walk time forward only and know no mask; a
 * reversed layer would need x flipped along T and the outputs flipped
 * back, and the slices take no negative step, so reverse and mask keep
 * the unrolled graph.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nn.h"
#include "nabla/ops.h"

#define NAME_CAP 512

static int gates_of(nb_rnn_cell cell)
{
    return cell == NB_RNN_LSTM ? 4 : cell == NB_RNN_GRU ? 3 : 1;
}

const char *nb_rnn_cell_name(nb_rnn_cell cell)
{
    switch (cell) {
    case NB_RNN_ELMAN:
        return "elman";
    case NB_RNN_LSTM:
        return "lstm";
    case NB_RNN_GRU:
        return "gru";
    }
    return "unknown";
}

static nb_node *make_param(nb_graph *g, const char *prefix, const char *what,
                           int layer, nb_dtype dtype, int rank,
                           const int64_t *shape, double k)
{
    char name[NAME_CAP];
    int len = layer >= 0 ? snprintf(name, sizeof name, "%s.%s_l%d", prefix,
                                    what, layer)
                         : snprintf(name, sizeof name, "%s.%s", prefix, what);
    if (len >= (int)sizeof name) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "rnn: name '%.40s...' is longer than %d bytes",
                           prefix, NAME_CAP - 20);
        return NULL;
    }
    nb_node *p = nb_param(g, name, dtype, rank, shape);
    if (p && nb_init_uniform(g, p, -k, k) != NB_OK)
        return NULL;
    return p;
}

static void add_forget_bias(nb_node *b, int64_t hidden, double forget_bias)
{
    nb_tensor *t = nb_node_value(b);
    for (int64_t j = hidden; j < 2 * hidden; j++)
        nb_tensor_set(t, j, nb_tensor_get(t, j) + forget_bias);
}

int nb_rnn_params_make(nb_graph *g, nb_rnn_cell cell, nb_dtype dtype,
                       int64_t in, int64_t hidden, bool bias,
                       double forget_bias, const char *name, int layer,
                       nb_rnn_params *p)
{
    if (p)
        memset(p, 0, sizeof *p);
    if (!g)
        return NB_ERR_ARG;
    if (!name)
        name = nb_rnn_cell_name(cell);
    if (!p)
        return nb_graph_set_error(g, NB_ERR_ARG, "rnn '%s': params is NULL",
                                  name);
    if ((int)cell < NB_RNN_ELMAN || (int)cell > NB_RNN_GRU)
        return nb_graph_set_error(g, NB_ERR_ARG, "rnn '%s': unknown cell %d",
                                  name, (int)cell);
    if (in <= 0 || hidden <= 0)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "rnn '%s': input size %lld and hidden size "
                                  "%lld must be positive",
                                  name, (long long)in, (long long)hidden);
    if (!isfinite(forget_bias))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "rnn '%s': forget_bias %g is not finite",
                                  name, forget_bias);
    int64_t gh = gates_of(cell) * hidden;
    double k = 1.0 / sqrt((double)hidden);
    p->cell = cell;
    p->in = in;
    p->hidden = hidden;
    p->w_ih = make_param(g, name, "weight_ih", layer, dtype, 2,
                         (const int64_t[]){gh, in}, k);
    p->w_hh = make_param(g, name, "weight_hh", layer, dtype, 2,
                         (const int64_t[]){gh, hidden}, k);
    if (bias) {
        p->b_ih = make_param(g, name, "bias_ih", layer, dtype, 1, &gh, k);
        p->b_hh = make_param(g, name, "bias_hh", layer, dtype, 1, &gh, k);
        if (p->b_ih && cell == NB_RNN_LSTM && forget_bias != 0)
            add_forget_bias(p->b_ih, hidden, forget_bias);
    }
    p->w_ih_t = nb_transpose(g, p->w_ih);
    p->w_hh_t = nb_transpose(g, p->w_hh);
    if (bias)
        p->b_x = cell == NB_RNN_GRU ? p->b_ih : nb_add(g, p->b_ih, p->b_hh);
    if (!p->w_ih_t || !p->w_hh_t || (bias && !p->b_x)) {
        memset(p, 0, sizeof *p);
        return nb_graph_status(g) != NB_OK ? nb_graph_status(g) : NB_ERR_ARG;
    }
    return NB_OK;
}

/* Columns [k h, (k + 1) h) of a [N, G h] node: gate block k. */
static nb_node *block(nb_graph *g, nb_node *x, int64_t k, int64_t h,
                      int64_t blocks)
{
    return nb_slice(g, x, -1, k * h, (k + blocks) * h);
}

/* One step from the input projection xp = x w_ih^T + b_x ([N, G H]). */
static nb_node *step(nb_graph *g, const nb_rnn_params *p, nb_node *xp,
                     nb_node *h, nb_node *c, nb_node **c_out)
{
    int64_t H = p->hidden;
    nb_node *hp = nb_matmul(g, h, p->w_hh_t);
    switch (p->cell) {
    case NB_RNN_ELMAN:
        return nb_tanh(g, nb_add(g, xp, hp));
    case NB_RNN_LSTM: {
        nb_node *gates = nb_add(g, xp, hp);
        nb_node *i = nb_sigmoid(g, block(g, gates, 0, H, 1));
        nb_node *f = nb_sigmoid(g, block(g, gates, 1, H, 1));
        nb_node *gg = nb_tanh(g, block(g, gates, 2, H, 1));
        nb_node *o = nb_sigmoid(g, block(g, gates, 3, H, 1));
        nb_node *cn = nb_add(g, nb_mul(g, f, c), nb_mul(g, i, gg));
        *c_out = cn;
        return nb_mul(g, o, nb_tanh(g, cn));
    }
    case NB_RNN_GRU: {
        if (p->b_hh)
            hp = nb_add(g, hp, p->b_hh);
        nb_node *rz = nb_sigmoid(g, nb_add(g, block(g, xp, 0, H, 2),
                                           block(g, hp, 0, H, 2)));
        nb_node *r = block(g, rz, 0, H, 1), *z = block(g, rz, 1, H, 1);
        nb_node *n = nb_tanh(g, nb_add(g, block(g, xp, 2, H, 1),
                                       nb_mul(g, r, block(g, hp, 2, H, 1))));
        return nb_add(g, n, nb_mul(g, z, nb_sub(g, h, n)));
    }
    }
    return NULL;
}

/* x w_ih^T (+ b_x) for x of rank 2 or 3. */
static nb_node *project(nb_graph *g, const nb_rnn_params *p, nb_node *x)
{
    nb_node *xp = nb_matmul(g, x, p->w_ih_t);
    return p->b_x ? nb_add(g, xp, p->b_x) : xp;
}

static int check_params(nb_graph *g, const char *what, const nb_rnn_params *p)
{
    if (!p || !p->w_ih_t || !p->w_hh_t)
        return nb_graph_status(g) != NB_OK
                   ? nb_graph_status(g)
                   : nb_graph_set_error(g, NB_ERR_ARG,
                                        "%s: the parameters are missing (make "
                                        "them with nb_rnn_params_make)",
                                        what);
    return NB_OK;
}

nb_node *nb_rnn_cell_step(nb_graph *g, const nb_rnn_params *p, nb_node *x,
                          nb_node *h, nb_node *c, nb_node **c_out)
{
    if (c_out)
        *c_out = NULL;
    if (!g || check_params(g, "rnn cell", p) != NB_OK)
        return NULL;
    if (!x || !h || (p->cell == NB_RNN_LSTM && (!c || !c_out))) {
        if (nb_graph_status(g) == NB_OK)
            nb_graph_set_error(g, NB_ERR_ARG,
                               "rnn cell (%s): x, h%s are required",
                               nb_rnn_cell_name(p->cell),
                               p->cell == NB_RNN_LSTM ? ", c and c_out" : "");
        return NULL;
    }
    nb_node *cn = NULL;
    nb_node *hn = step(g, p, project(g, p, x), h, c, &cn);
    if (c_out)
        *c_out = cn;
    return hn;
}

/* The state after a step under mask column m ([N, 1]): s + m (s' - s). */
static nb_node *carry(nb_graph *g, nb_node *m, nb_node *prev, nb_node *next)
{
    return m ? nb_add(g, prev, nb_mul(g, m, nb_sub(g, next, prev))) : next;
}

/* A [1, H] zero state that broadcasts against any batch. */
static nb_node *zero_state(nb_graph *g, nb_dtype dtype, int64_t hidden)
{
    return nb_constant(g, NULL, dtype, 2, (const int64_t[]){1, hidden});
}

/* One layer over x [N, T, E]: [N, T, H] of outputs (zero at padding), and
 * the final h (and c) in *h_n, *c_n. */
static nb_node *unroll_layer(nb_graph *g, const nb_rnn_params *p, nb_node *x,
                             int64_t T, nb_node *mask, bool reverse,
                             nb_node *h0, nb_node *c0, nb_node **h_n,
                             nb_node **c_n, nb_node **outs)
{
    int64_t G = gates_of(p->cell) * p->hidden, H = p->hidden;
    nb_dtype dtype = nb_tensor_dtype(nb_node_value(x));
    nb_node *xp = project(g, p, x);
    nb_node *h = h0 ? h0 : zero_state(g, dtype, H);
    nb_node *c = p->cell != NB_RNN_LSTM ? NULL
                 : c0                   ? c0
                                        : zero_state(g, dtype, H);
    for (int64_t k = 0; k < T; k++) {
        int64_t t = reverse ? T - 1 - k : k;
        nb_node *xt = nb_reshape(g, nb_slice(g, xp, 1, t, t + 1), 2,
                                 (const int64_t[]){-1, G});
        nb_node *m = mask ? nb_slice(g, mask, 1, t, t + 1) : NULL;
        nb_node *cn = NULL;
        nb_node *hn = step(g, p, xt, h, c, &cn);
        h = carry(g, m, h, hn);
        if (c)
            c = carry(g, m, c, cn);
        nb_node *y = m ? nb_mul(g, m, h) : h;
        outs[t] = nb_reshape(g, y, 3, (const int64_t[]){-1, 1, H});
    }
    *h_n = h;
    *c_n = c;
    return nb_concat(g, (int)T, outs, 1);
}

/* The same layer as one fused op (no mask, forward direction). The op's
 * output holds every h_t, and for an LSTM c_T as row T, so the final
 * states are slices of it; *seq receives the op's node. */
static nb_node *fused_layer(nb_graph *g, const nb_rnn_params *p, nb_node *x,
                            nb_node *h0, nb_node *c0,
                            nb_node **h_n, nb_node **c_n, nb_node **seq)
{
    int64_t H = p->hidden;
    nb_dtype dtype = nb_tensor_dtype(nb_node_value(x));
    nb_node *h = h0 ? h0 : zero_state(g, dtype, H);
    nb_node *y;
    switch (p->cell) {
    case NB_RNN_LSTM:
        y = nb_lstm_seq(g, x, h, c0 ? c0 : zero_state(g, dtype, H), p->w_ih,
                        p->w_hh, p->b_ih, p->b_hh, true);
        break;
    case NB_RNN_GRU:
        y = nb_gru_seq(g, x, h, p->w_ih, p->w_hh, p->b_ih, p->b_hh);
        break;
    default:
        y = nb_elman_seq(g, x, h, p->w_ih, p->w_hh, p->b_ih, p->b_hh);
        break;
    }
    *seq = y;
    /* Bounds counted from the end, so the slices need not know T. */
    const int64_t row[2] = {-1, H};
    bool lstm = p->cell == NB_RNN_LSTM;
    *h_n = nb_reshape(g,
                      nb_slice(g, y, 1, lstm ? -2 : -1,
                               lstm ? -1 : NB_SLICE_END),
                      2, row);
    *c_n = lstm ? nb_reshape(g, nb_slice(g, y, 1, -1, NB_SLICE_END), 2, row)
                : NULL;
    return lstm ? nb_slice(g, y, 1, 0, -1) : y;
}

static int spec_error(nb_graph *g, const char *name, const char *fmt,
                      long long a, long long b)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a, b);
    return nb_graph_set_error(g, NB_ERR_ARG, "rnn '%s': %s", name, msg);
}

static int check_sequence(nb_graph *g, const char *name, nb_node *x,
                          nb_node *mask, int64_t *T)
{
    if (!x)
        return nb_graph_status(g) != NB_OK
                   ? nb_graph_status(g)
                   : nb_graph_set_error(g, NB_ERR_ARG, "rnn '%s': x is NULL",
                                        name);
    const nb_tensor *xv = nb_node_value(x);
    if (nb_node_graph(x) != g || (mask && nb_node_graph(mask) != g))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "rnn '%s': x or mask belongs to another "
                                  "graph",
                                  name);
    if (nb_tensor_rank(xv) != 3 || nb_tensor_dim(xv, 1) < 1)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "rnn '%s': x ('%s') must be [N, T, E] with "
                                  "T >= 1 (batch first)",
                                  name, nb_node_name(x));
    *T = nb_tensor_dim(xv, 1);
    if (mask) {
        const nb_tensor *mv = nb_node_value(mask);
        if (nb_tensor_rank(mv) != 2 || nb_tensor_dim(mv, 1) != *T)
            return spec_error(g, name,
                              "the mask must be [N, T] with T = %lld (rank "
                              "%lld given)",
                              (long long)*T, (long long)nb_tensor_rank(mv));
    }
    return NB_OK;
}

int nb_rnn_build(nb_graph *g, nb_node *x, nb_node *mask, nb_node *const *h0,
                 nb_node *const *c0, const nb_rnn_spec *spec, nb_rnn *rnn)
{
    if (rnn)
        memset(rnn, 0, sizeof *rnn);
    if (!g)
        return NB_ERR_ARG;
    if (!spec || !rnn)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "rnn: spec and rnn must not be NULL");
    const char *name = spec->name ? spec->name : nb_rnn_cell_name(spec->cell);
    int layers = spec->n_layers ? spec->n_layers : 1;
    if (layers < 1 || layers > NB_RNN_MAX_LAYERS)
        return spec_error(g, name, "n_layers = %lld is not in [1, %lld]",
                          layers, NB_RNN_MAX_LAYERS);
    if (spec->hidden <= 0)
        return spec_error(g, name, "hidden = %lld must be positive",
                          (long long)spec->hidden, 0);
    int64_t T = 0;
    int rc = check_sequence(g, name, x, mask, &T);
    if (rc != NB_OK)
        return rc;
    if (T > NB_RNN_MAX_STEPS)
        return spec_error(g, name,
                          "T = %lld steps is more than the %lld an unrolled "
                          "layer takes",
                          (long long)T, NB_RNN_MAX_STEPS);
    nb_node **outs = nb_alloc((size_t)T * sizeof *outs);
    if (!outs)
        return nb_graph_set_error(g, NB_ERR_NOMEM, "rnn '%s': out of memory",
                                  name);
    nb_dtype dtype = nb_tensor_dtype(nb_node_value(x));
    /* The fused ops run forward over every step: a mask or the reverse
     * direction takes the composite path (see "Recurrent networks" in
     * docs/design.md). */
    bool fused = !spec->composite && !mask && !spec->reverse;
    nb_node *in = x;
    int64_t mark = nb_graph_node_count(g);
    for (int l = 0; l < layers && rc == NB_OK; l++) {
        nb_rnn_params *p = &rnn->layer[l];
        int64_t width = nb_tensor_dim(nb_node_value(in), 2);
        rc = nb_rnn_params_make(g, spec->cell, dtype, width, spec->hidden,
                                !spec->no_bias, spec->forget_bias, name, l, p);
        if (rc != NB_OK)
            break;
        nb_node *h0l = h0 ? h0[l] : NULL, *c0l = c0 ? c0[l] : NULL;
        if (fused)
            in = fused_layer(g, p, in, h0l, c0l, &rnn->h_n[l],
                             &rnn->c_n[l], &rnn->seq[l]);
        else
            in = unroll_layer(g, p, in, T, mask, spec->reverse, h0l, c0l,
                              &rnn->h_n[l], &rnn->c_n[l], outs);
        if (!in)
            rc = nb_graph_status(g) != NB_OK ? nb_graph_status(g) : NB_ERR_ARG;
    }
    nb_free(outs);
    if (rc != NB_OK) {
        nb_graph_rollback(g, mark); /* no layer of a failed build stays */
        memset(rnn, 0, sizeof *rnn);
        return rc;
    }
    rnn->n_layers = layers;
    rnn->outputs = in;
    rnn->output = spec->last_only ? rnn->h_n[layers - 1] : in;
    return NB_OK;
}

nb_node *nb_masked_ce_index_loss(nb_graph *g, nb_node *logits, nb_node *labels,
                                 nb_node *mask)
{
    if (!g)
        return NULL;
    if (!mask)
        return nb_softmax_ce_index_loss(g, logits, labels);
    if (!logits) {
        if (nb_graph_status(g) == NB_OK)
            nb_graph_set_error(g, NB_ERR_ARG,
                               "masked_ce_index_loss: logits are NULL");
        return NULL;
    }
    const nb_tensor *zv = nb_node_value(logits);
    int rank = nb_tensor_rank(zv);
    if (rank < 1) {
        nb_graph_set_error(g, NB_ERR_ARG,
                           "masked_ce_index_loss: logits are a scalar; they "
                           "need a class axis (the last)");
        return NULL;
    }
    int64_t K = nb_tensor_dim(zv, -1);
    /* The one-hot rows of the labels are the rows of the identity that the
     * labels pick: an embedding of a constant, so bad labels are named. */
    nb_node *eye = nb_constant(g, NULL, nb_tensor_dtype(zv), 2,
                               (const int64_t[]){K, K});
    if (!eye)
        return NULL;
    nb_tensor *ev = nb_node_value(eye);
    for (int64_t k = 0; k < K; k++)
        nb_tensor_set(ev, k * K + k, 1.0);
    nb_node *picked = nb_mul(g, nb_log_softmax(g, logits),
                             nb_embedding(g, eye, labels));
    nb_node *per = nb_sum_axis(g, picked, -1, false);
    nb_node *total = nb_neg(g, nb_sum(g, nb_mul(g, per, mask)));
    /* At least one: a batch of padding only has loss 0, not 0/0. */
    nb_node *one = nb_constant(g, NULL, nb_tensor_dtype(zv), 0, NULL);
    if (one)
        nb_tensor_set(nb_node_value(one), 0, 1.0);
    return nb_div(g, total, nb_maximum(g, nb_sum(g, mask), one));
}
