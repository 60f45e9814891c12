/* Gradient-check cases: rnn_seq.c (elman_seq, lstm_seq, gru_seq). Random
 * batch, length, input and hidden sizes (batch 1 and a single step
 * among them), x, h0 and c0 asking for their gradients and every weight
 * and bias a parameter, so each of the op's messages is checked through
 * several steps of shared weights. Weights are kept small enough that the
 * gates stay off their flat tails, where central differences lose their
 * digits. */
#include "gradcheck_cases.h"

typedef enum { ELMAN, LSTM, GRU } cell;

static nb_node *seq_ex(nb_graph *g, gc_ctx *c, cell k, int64_t n, bool bias,
                       bool final_cell, bool shared_state)
{
    int gates = k == LSTM ? 4 : k == GRU ? 3 : 1;
    int64_t t = gc_dim(c, 1, 4), e = gc_dim(c, 1, 3), h = gc_dim(c, 1, 3);
    int64_t rows = shared_state ? 1 : n;
    nb_node *x = gc_input(g, c, 3, (int64_t[]){n, t, e}, -1, 1);
    nb_node *h0 = gc_input(g, c, 2, (int64_t[]){rows, h}, -1, 1);
    nb_node *c0 = k == LSTM ? gc_input(g, c, 2, (int64_t[]){rows, h}, -1, 1)
                            : NULL;
    nb_node *w_ih = gc_param(g, c, 2, (int64_t[]){gates * h, e}, -0.8, 0.8);
    nb_node *w_hh = gc_param(g, c, 2, (int64_t[]){gates * h, h}, -0.8, 0.8);
    nb_node *b_ih = bias ? gc_param(g, c, 1, (int64_t[]){gates * h}, -0.5,
                                    0.5)
                         : NULL;
    nb_node *b_hh = bias ? gc_param(g, c, 1, (int64_t[]){gates * h}, -0.5,
                                    0.5)
                         : NULL;
    if (k == LSTM)
        return nb_lstm_seq(g, x, h0, c0, w_ih, w_hh, b_ih, b_hh, final_cell);
    if (k == GRU)
        return nb_gru_seq(g, x, h0, w_ih, w_hh, b_ih, b_hh);
    return nb_elman_seq(g, x, h0, w_ih, w_hh, b_ih, b_hh);
}

static nb_node *seq(nb_graph *g, gc_ctx *c, cell k, int64_t n, bool bias,
                    bool final_cell)
{
    return seq_ex(g, c, k, n, bias, final_cell, false);
}

static nb_node *elman(nb_graph *g, gc_ctx *c)
{
    return seq(g, c, ELMAN, gc_dim(c, 2, 3), true, false);
}
static nb_node *elman_b1(nb_graph *g, gc_ctx *c)
{
    return seq(g, c, ELMAN, 1, gc_dim(c, 0, 1), false);
}
static nb_node *lstm(nb_graph *g, gc_ctx *c)
{
    return seq(g, c, LSTM, gc_dim(c, 2, 3), true, false);
}
static nb_node *lstm_b1(nb_graph *g, gc_ctx *c)
{
    return seq(g, c, LSTM, 1, gc_dim(c, 0, 1), false);
}
static nb_node *lstm_cell(nb_graph *g, gc_ctx *c)
{
    return seq(g, c, LSTM, gc_dim(c, 1, 3), true, true);
}
static nb_node *gru(nb_graph *g, gc_ctx *c)
{
    return seq(g, c, GRU, gc_dim(c, 2, 3), true, false);
}
static nb_node *gru_b1(nb_graph *g, gc_ctx *c)
{
    return seq(g, c, GRU, 1, gc_dim(c, 0, 1), false);
}

/* h0 (and c0) [1, H], shared by a batch of 2 or 3 */
static nb_node *elman_shared(nb_graph *g, gc_ctx *c)
{
    return seq_ex(g, c, ELMAN, gc_dim(c, 2, 3), true, false, true);
}
static nb_node *lstm_shared(nb_graph *g, gc_ctx *c)
{
    return seq_ex(g, c, LSTM, gc_dim(c, 2, 3), true, true, true);
}
static nb_node *gru_shared(nb_graph *g, gc_ctx *c)
{
    return seq_ex(g, c, GRU, gc_dim(c, 2, 3), true, false, true);
}

const gc_case gc_cases_rnn[] = {
    {"elman_seq", "random N, T, E, H, biases", elman},
    {"elman_seq", "batch 1, with or without biases", elman_b1},
    {"lstm_seq", "random N, T, E, H, biases", lstm},
    {"lstm_seq", "batch 1, with or without biases", lstm_b1},
    {"lstm_seq", "final_cell: c_T as row T", lstm_cell},
    {"gru_seq", "random N, T, E, H, biases", gru},
    {"gru_seq", "batch 1, with or without biases", gru_b1},
    {"elman_seq", "h0 [1, H] shared by the batch", elman_shared},
    {"lstm_seq", "h0, c0 [1, H] shared by the batch", lstm_shared},
    {"gru_seq", "h0 [1, H] shared by the batch", gru_shared},
    {NULL, NULL, NULL},
};
