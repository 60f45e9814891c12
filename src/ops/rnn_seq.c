/* Fused recurrent layers over a whole sequence, batch first, with
 * PyTorch's weight layout and gate order (so weights load from a
 * state_dict unchanged). x is [N, T, E], h0 (and c0) [N, H], or [1, H]
 * for one state shared by the batch (a zero state that need not know the
 * batch size; its gradient sums the rows'); weights are
 * w_ih [G H, E], w_hh [G H, H], optional biases b_ih, b_hh [G H]; row
 * blocks of G H are the gates in the order below. With
 * a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh split into the gates:
 *
 *   elman_seq:  h_t = tanh(a_t)
 *   lstm_seq:   i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g),
 *               c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)
 *   gru_seq:    r, z = sigmoid(a_r, a_z),
 *               n = tanh(W_in x_t + b_in + r (W_hn h_{t-1} + b_hn)),
 *               h_t = (1 - z) n + z h_{t-1}
 *
 * The output is every hidden state, [N, T, H]. Backward runs through time
 * in reverse: with dh_t = dy_t + (message from step t+1),
 *   elman: da = dh_t (1 - h_t^2)
 *   lstm:  dc = dc_{t+1} f_{t+1} + dh_t o (1 - tanh^2 c_t),
 *          da_i = dc g i(1-i), da_f = dc c_{t-1} f(1-f),
 *          da_g = dc i (1-g^2), da_o = dh_t tanh(c_t) o(1-o)
 *   gru:   da_n = dh_t (1-z)(1-n^2), da_z = dh_t (h_{t-1} - n) z(1-z),
 *          da_r = da_n (W_hn h + b_hn) r(1-r); the recurrent part of n's
 *          message is da_n r, and h_{t-1} also gets dh_t z directly;
 * the message to h_{t-1} is W_hh^T da_t, and the weights' gradients sum
 * every step's: dW_ih = sum_t da_t x_t^T, dW_hh = sum_t da_t h_{t-1}^T,
 * db = sum_t da_t, dx_t = W_ih^T da_t (the shared-weight fan-out of the
 * unrolled graph, done as one GEMM over all steps).
 *
 * The final state. The engine's ops have one output each, and the final
 * hidden state is already in it: h_T = slice(y, axis 1, T-1, T), whose
 * gradient reaches the op through the slice like any other step's. LSTM's
 * final cell state is not a hidden state, so with final_cell the output
 * is [N, T+1, H] and row T holds c_T (its gradient seeds dc). A separate
 * op for c_T would see neither this node's saved gates nor a way to send
 * its gradient back into this backward, so it would have to run the whole
 * recurrence again; a row more of output costs N H. Truncated BPTT reads
 * the two rows after a window and feeds them as the next h0 and c0.
 *
 * Memory: the activated gates (and LSTM's cell states) are the node's
 * scratch, kept from forward to backward; the GEMM's packing space and
 * the per-step buffers are the graph's shared workspace. Kernel:
 * src/kernels/rnn.h.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   elman_seq: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) over
 *       x [N,T,E], y = h [N,T,H]; backward through time, dW = sum_t of
 *       every step's message
 *   lstm_seq: PyTorch LSTM (gates i,f,g,o), c_t = f c_{t-1} + i g,
 *       h_t = o tanh(c_t), y = h [N,T,H] (+ row c_T with final_cell);
 *       backward through time, dW = sum_t of every step's message
 *   gru_seq: PyTorch GRU (gates r,z,n), n = tanh(W_in x + b_in +
 *       r (W_hn h + b_hn)), h_t = (1-z) n + z h_{t-1}, y = h [N,T,H];
 *       backward through time, dW = sum_t of every step's message
 */
#include "kernels/rnn.h"
#include "ops/op_util.h"

typedef struct rnn_attrs {
    bool final_cell;
} rnn_attrs;

/* The cell of an op of this file, from its name (a table copied into the
 * graph keeps its name). */
static int cell_of(const nb_op_call *c)
{
    const char *name = c->op->name;
    if (strcmp(name, "lstm_seq") == 0)
        return NB_SEQ_LSTM;
    if (strcmp(name, "gru_seq") == 0)
        return NB_SEQ_GRU;
    return NB_SEQ_ELMAN;
}

static nb_rnn_dims dims_of(const nb_op_call *c)
{
    const rnn_attrs *at = c->attrs;
    nb_rnn_dims d;
    d.cell = cell_of(c);
    d.n = c->in[0]->shape[0];
    d.t = c->in[0]->shape[1];
    d.e = c->in[0]->shape[2];
    int w = d.cell == NB_SEQ_LSTM ? 4 : 3; /* index of w_hh */
    d.h = c->in[w]->shape[1];
    d.final_cell = d.cell == NB_SEQ_LSTM && at && at->final_cell;
    d.h0_rows = c->in[1]->shape[0] == d.n;
    d.c0_rows = d.cell == NB_SEQ_LSTM && c->in[2]->shape[0] == d.n;
    return d;
}

static int rnn_infer(nb_op_call *c)
{
    const rnn_attrs *at = c->attrs;
    int cell = cell_of(c);
    bool lstm = cell == NB_SEQ_LSTM;
    int states = lstm ? 2 : 1, w = 1 + states;
    char xs[128], s1[128], s2[128];
    if (c->n_inputs != w + 2 && c->n_inputs != w + 4)
        return nb_op_fail(c, "takes x, %s, w_ih, w_hh and optionally b_ih "
                             "and b_hh (%d or %d inputs), got %d",
                          lstm ? "h0, c0" : "h0", w + 2, w + 4, c->n_inputs);
    if (at && at->final_cell && !lstm)
        return nb_op_fail(c, "final_cell is for lstm_seq only");
    const nb_tensor *x = c->in[0], *w_ih = c->in[w], *w_hh = c->in[w + 1];
    NB_SHAPE(x, xs);
    if (x->rank != 3)
        return nb_op_fail(c, "x is %s: expected [N, T, E] (batch first)",
                          xs);
    if (w_ih->rank != 2 || w_ih->shape[0] % cell != 0 ||
        w_ih->shape[1] != x->shape[2])
        return nb_op_fail(c,
                          "w_ih is %s, x is %s: expected w_ih [%d H, E] "
                          "with E = %lld",
                          NB_SHAPE(w_ih, s1), xs, cell,
                          (long long)x->shape[2]);
    int64_t gh = w_ih->shape[0], h = gh / cell;
    if (w_hh->rank != 2 || w_hh->shape[0] != gh || w_hh->shape[1] != h)
        return nb_op_fail(c,
                          "w_hh is %s, w_ih is %s: expected w_hh [%lld, "
                          "%lld] ([%d H, H] with H = %lld)",
                          NB_SHAPE(w_hh, s1), NB_SHAPE(w_ih, s2),
                          (long long)gh, (long long)h, cell, (long long)h);
    for (int i = 1; i <= states; i++) {
        const nb_tensor *s = c->in[i];
        if (s->rank != 2 ||
            (s->shape[0] != x->shape[0] && s->shape[0] != 1) ||
            s->shape[1] != h)
            return nb_op_fail(c,
                              "%s is %s, x is %s: expected [%lld, %lld] "
                              "or [1, %lld] ([N, H] or one state for the "
                              "batch, with H = %lld from w_hh %s)",
                              i == 1 ? "h0" : "c0", NB_SHAPE(s, s1), xs,
                              (long long)x->shape[0], (long long)h,
                              (long long)h, (long long)h, NB_SHAPE(w_hh, s2));
    }
    for (int i = w + 2; i < c->n_inputs; i++) {
        const nb_tensor *b = c->in[i];
        if (b->rank != 1 || b->shape[0] != gh)
            return nb_op_fail(c, "%s is %s, w_ih is %s: expected [%lld]",
                              i == w + 2 ? "b_ih" : "b_hh", NB_SHAPE(b, s1),
                              NB_SHAPE(w_ih, s2), (long long)gh);
    }
    nb_rnn_dims d = {.cell = cell, .n = x->shape[0], .t = x->shape[1],
                     .e = x->shape[2], .h = h,
                     .final_cell = lstm && at && at->final_cell,
                     .h0_rows = c->in[1]->shape[0] == x->shape[0],
                     .c0_rows = lstm && c->in[2]->shape[0] == x->shape[0]};
    c->out_dtype = x->dtype;
    c->out_rank = 3;
    c->out_shape[0] = d.n;
    c->out_shape[1] = d.t + (d.final_cell ? 1 : 0);
    c->out_shape[2] = h;
    c->scratch_bytes = nb_rnn_scratch_bytes(&d, nb_dtype_size(x->dtype));
    c->workspace_bytes = x->dtype == NB_F64 ? nb_rnn_workspace_f64(&d)
                                            : nb_rnn_workspace_f32(&d);
    return NB_OK;
}

/* The inputs by role, wherever the op's list puts them. */
typedef struct roles {
    int h0, c0, w_ih, w_hh, b_ih, b_hh; /* -1: absent */
} roles;

static roles roles_of(const nb_op_call *c)
{
    bool lstm = cell_of(c) == NB_SEQ_LSTM;
    int w = lstm ? 3 : 2;
    bool bias = c->n_inputs == w + 4;
    roles r = {1, lstm ? 2 : -1, w, w + 1, bias ? w + 2 : -1,
               bias ? w + 3 : -1};
    return r;
}

#define IN(i) ((i) >= 0 ? (const T *)c->in[i]->data : NULL)
#define GRAD(i) ((i) >= 0 && c->in_grad[i] ? (T *)c->in_grad[i]->data : NULL)

static int rnn_forward(nb_op_call *c)
{
    nb_rnn_dims d = dims_of(c);
    roles r = roles_of(c);
    NB_TYPED(c->out->dtype, {
        NB_KERNEL(nb_rnn_forward, T)(&d, IN(0), IN(r.h0), IN(r.c0),
                                     IN(r.w_ih), IN(r.w_hh), IN(r.b_ih),
                                     IN(r.b_hh), c->out->data, c->scratch,
                                     c->workspace);
    });
    return NB_OK;
}

static int rnn_backward(nb_op_call *c)
{
    nb_rnn_dims d = dims_of(c);
    roles r = roles_of(c);
    if (c->out->dtype == NB_F64) {
        typedef double T;
        nb_rnn_grads_f64 gr = {GRAD(0),      GRAD(r.h0),   GRAD(r.c0),
                               GRAD(r.w_ih), GRAD(r.w_hh), GRAD(r.b_ih),
                               GRAD(r.b_hh)};
        nb_rnn_backward_f64(&d, IN(0), IN(r.h0), IN(r.c0), IN(r.w_ih),
                            IN(r.w_hh), c->out->data, c->out_grad->data,
                            c->scratch, c->workspace, &gr);
    } else {
        typedef float T;
        nb_rnn_grads_f32 gr = {GRAD(0),      GRAD(r.h0),   GRAD(r.c0),
                               GRAD(r.w_ih), GRAD(r.w_hh), GRAD(r.b_ih),
                               GRAD(r.b_hh)};
        nb_rnn_backward_f32(&d, IN(0), IN(r.h0), IN(r.c0), IN(r.w_ih),
                            IN(r.w_hh), c->out->data, c->out_grad->data,
                            c->scratch, c->workspace, &gr);
    }
    return NB_OK;
}

const nb_op nb_op_elman_seq = {
    .struct_size = sizeof(nb_op),
    .name = "elman_seq",
    .min_inputs = 4,
    .max_inputs = 6,
    .attr_size = sizeof(rnn_attrs),
    .doc = "h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) over x "
           "[N,T,E], y = h [N,T,H]; backward through time, dW = sum_t of "
           "every step's message",
    .infer = rnn_infer,
    .forward = rnn_forward,
    .backward = rnn_backward,
};

const nb_op nb_op_lstm_seq = {
    .struct_size = sizeof(nb_op),
    .name = "lstm_seq",
    .min_inputs = 5,
    .max_inputs = 7,
    .attr_size = sizeof(rnn_attrs),
    .doc = "PyTorch LSTM (gates i,f,g,o), c_t = f c_{t-1} + i g, h_t = o "
           "tanh(c_t), y = h [N,T,H] (+ row c_T with final_cell); backward "
           "through time, dW = sum_t of every step's message",
    .infer = rnn_infer,
    .forward = rnn_forward,
    .backward = rnn_backward,
};

const nb_op nb_op_gru_seq = {
    .struct_size = sizeof(nb_op),
    .name = "gru_seq",
    .min_inputs = 4,
    .max_inputs = 6,
    .attr_size = sizeof(rnn_attrs),
    .doc = "PyTorch GRU (gates r,z,n), n = tanh(W_in x + b_in + r (W_hn h + "
           "b_hn)), h_t = (1-z) n + z h_{t-1}, y = h [N,T,H]; backward "
           "through time, dW = sum_t of every step's message",
    .infer = rnn_infer,
    .forward = rnn_forward,
    .backward = rnn_backward,
};

/* Biases come as a pair or not at all, as in PyTorch's bias=False. */
static nb_node *apply_rnn(nb_graph *g, const nb_op *op, int states,
                          nb_node *const *head, nb_node *b_ih, nb_node *b_hh,
                          bool final_cell)
{
    if (!g)
        return NULL;
    if ((b_ih == NULL) != (b_hh == NULL)) {
        nb_set_error(g, NB_ERR_ARG,
                     "%s: b_ih and b_hh are given together or not at all "
                     "(b_ih %s, b_hh %s)",
                     op->name, b_ih ? "given" : "NULL",
                     b_hh ? "given" : "NULL");
        return NULL;
    }
    nb_node *in[7];
    int n = 0;
    for (int i = 0; i < states + 3; i++)
        in[n++] = head[i];
    if (b_ih) {
        in[n++] = b_ih;
        in[n++] = b_hh;
    }
    rnn_attrs at = {final_cell};
    return nb_apply(g, op, n, in, &at);
}

nb_node *nb_elman_seq(nb_graph *g, nb_node *x, nb_node *h0, nb_node *w_ih,
                      nb_node *w_hh, nb_node *b_ih, nb_node *b_hh)
{
    nb_node *head[4] = {x, h0, w_ih, w_hh};
    return apply_rnn(g, &nb_op_elman_seq, 1, head, b_ih, b_hh, false);
}

nb_node *nb_lstm_seq(nb_graph *g, nb_node *x, nb_node *h0, nb_node *c0,
                     nb_node *w_ih, nb_node *w_hh, nb_node *b_ih,
                     nb_node *b_hh, bool final_cell)
{
    nb_node *head[5] = {x, h0, c0, w_ih, w_hh};
    return apply_rnn(g, &nb_op_lstm_seq, 2, head, b_ih, b_hh, final_cell);
}

nb_node *nb_gru_seq(nb_graph *g, nb_node *x, nb_node *h0, nb_node *w_ih,
                    nb_node *w_hh, nb_node *b_ih, nb_node *b_hh)
{
    nb_node *head[4] = {x, h0, w_ih, w_hh};
    return apply_rnn(g, &nb_op_gru_seq, 1, head, b_ih, b_hh, false);
}
