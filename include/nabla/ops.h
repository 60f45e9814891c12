/** @file
 * Constructors of the built-in ops.
 *
 * Every constructor takes the graph and its input nodes, infers the output
 * shape and dtype at once, and returns the new node, or NULL with a message
 * on the graph (see graph.h for the error rules). Inputs of one op must
 * share a dtype. Binary elementwise ops broadcast numpy-style. Each op's
 * formula and derivative are in docs/ops.md and at the top of its source.
 * The constructors of the elementwise ops come first, generated from the
 * op list (src/ops/ops.def) with their doc strings as comments.
 *
 * Kink conventions, the same in every op: relu'(0) = 0, step'(x) = 0,
 * sign'(x) = 0, |x|' at 0 is 0, and a max/min tie sends the whole gradient
 * to the first winner (the first input of maximum/minimum, the lowest index
 * of a reduction or maxout group).
 */
#ifndef NABLA_OPS_H
#define NABLA_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- generated from src/ops/ops.def by tools/gen_ops_doc (ninja -C build ops-doc); do not edit by hand ---- */
/** @name Elementwise ops of the op list
 * Each comment is the op's formula and the derivative its backward
 * implements. The binary ones broadcast numpy-style and sum a
 * broadcast operand's gradient over the axes it was repeated along. */
/** @{ */
/** y = a + b; da = dy, db = dy (broadcast dims summed) */
NB_API nb_node *nb_add(nb_graph *g, nb_node *a, nb_node *b);
/** y = a - b; da = dy, db = -dy (broadcast dims summed) */
NB_API nb_node *nb_sub(nb_graph *g, nb_node *a, nb_node *b);
/** y = a * b; da = dy * b, db = dy * a (broadcast dims summed) */
NB_API nb_node *nb_mul(nb_graph *g, nb_node *a, nb_node *b);
/** y = a / b; da = dy / b, db = -dy * a / b^2 (broadcast dims summed) */
NB_API nb_node *nb_div(nb_graph *g, nb_node *a, nb_node *b);
/** y = max(a, b); da = dy [a >= b], db = dy [b > a] (tie: all to a) */
NB_API nb_node *nb_maximum(nb_graph *g, nb_node *a, nb_node *b);
/** y = min(a, b); da = dy [a <= b], db = dy [b < a] (tie: all to a) */
NB_API nb_node *nb_minimum(nb_graph *g, nb_node *a, nb_node *b);
/** y = -x; dx = -dy */
NB_API nb_node *nb_neg(nb_graph *g, nb_node *x);
/** y = exp(x); dx = dy * y */
NB_API nb_node *nb_exp(nb_graph *g, nb_node *x);
/** y = log(x); dx = dy / x */
NB_API nb_node *nb_log(nb_graph *g, nb_node *x);
/** y = sqrt(x); dx = dy / (2 y) */
NB_API nb_node *nb_sqrt(nb_graph *g, nb_node *x);
/** y = x^2; dx = dy * 2 x */
NB_API nb_node *nb_square(nb_graph *g, nb_node *x);
/** y = |x|; dx = dy * sign(x) (0 at x = 0) */
NB_API nb_node *nb_abs(nb_graph *g, nb_node *x);
/** y = c x; dx = dy * c */
NB_API nb_node *nb_scale(nb_graph *g, nb_node *x, double c);
/** y = x + c; dx = dy */
NB_API nb_node *nb_add_scalar(nb_graph *g, nb_node *x, double c);
/** y = sign(x) in {-1, 0, +1}; dx = 0 */
NB_API nb_node *nb_sign(nb_graph *g, nb_node *x);
/** y = 1 if x > 0 else 0; dx = 0 */
NB_API nb_node *nb_step(nb_graph *g, nb_node *x);
/** y = x; dx = dy */
NB_API nb_node *nb_identity(nb_graph *g, nb_node *x);
/** y = 1 / (1 + exp(-x)); dx = dy * y (1 - y) */
NB_API nb_node *nb_sigmoid(nb_graph *g, nb_node *x);
/** y = tanh(x); dx = dy * (1 - y^2) */
NB_API nb_node *nb_tanh(nb_graph *g, nb_node *x);
/** y = max(x, 0); dx = dy * [x > 0] (0 at x = 0) */
NB_API nb_node *nb_relu(nb_graph *g, nb_node *x);
/** y = x > 0 ? x : alpha x; dx = dy * (x > 0 ? 1 : alpha) */
NB_API nb_node *nb_leaky_relu(nb_graph *g, nb_node *x, double alpha);
/** y = x > 0 ? x : alpha (exp(x) - 1); dx = dy * (x > 0 ? 1 : y + alpha) */
NB_API nb_node *nb_elu(nb_graph *g, nb_node *x, double alpha);
/** y = lambda (x > 0 ? x : alpha (exp(x) - 1)), lambda =
 * 1.0507009873554805, alpha = 1.6732632423543772; dx = dy * (x > 0 ?
 * lambda : y + lambda alpha) */
NB_API nb_node *nb_selu(nb_graph *g, nb_node *x);
/** y = log(1 + exp(x)); dx = dy * sigmoid(x) */
NB_API nb_node *nb_softplus(nb_graph *g, nb_node *x);
/** y = x Phi(x) (exact, erf form); dx = dy * (Phi(x) + x phi(x)) */
NB_API nb_node *nb_gelu(nb_graph *g, nb_node *x);
/** y = x s, s = sigmoid(x); dx = dy * s (1 + x (1 - s)) */
NB_API nb_node *nb_silu(nb_graph *g, nb_node *x);
/** y = min(max(x, min_val), max_val); dx = dy * [min_val < x < max_val] (0
 * at the kinks) */
NB_API nb_node *nb_hardtanh(nb_graph *g, nb_node *x, double min_val, double max_val);
/** y = min(max(x + 3, 0), 6) / 6; dx = dy / 6 * [-3 < x < 3] (0 at the
 * kinks) */
NB_API nb_node *nb_hardsigmoid(nb_graph *g, nb_node *x);
/** @} */
/* ---- end of the generated declarations ---- */

/** @name Activations with their own signatures */
/** @{ */
/** Parametric ReLU: x for x > 0, alpha x otherwise, with a learnable slope.
 * alpha is a node (usually a parameter) that broadcasts to x. */
NB_API nb_node *nb_prelu(nb_graph *g, nb_node *x, nb_node *alpha);
/** Max over groups of k consecutive units of the last axis: [..., m*k] ->
 * [..., m]. */
NB_API nb_node *nb_maxout(nb_graph *g, nb_node *x, int k);
/** @} */

/** @name Softmax along the last axis */
/** @{ */
/** exp(x) / sum exp(x) over the last axis. */
NB_API nb_node *nb_softmax(nb_graph *g, nb_node *x);
/** x - log sum exp(x) over the last axis: log softmax(x), computed stably. */
NB_API nb_node *nb_log_softmax(nb_graph *g, nb_node *x);
/** @} */

/** @name Matrix product */
/** @{ */
/** Matrix product a b: [M,K] x [K,N] -> [M,N]; [B,M,K] x [B,K,N] -> [B,M,N];
 * [B,M,K] x [K,N] -> [B,M,N] (one matrix shared by the batch). */
NB_API nb_node *nb_matmul(nb_graph *g, nb_node *a, nb_node *b);
/** @} */

/** @name Reductions
 * The plain form reduces every element to a scalar; the _axis form reduces
 * one axis (negative counts from the end), keeping it as extent 1 when
 * keepdims is true. */
/** @{ */
/** Sum of all elements. */
NB_API nb_node *nb_sum(nb_graph *g, nb_node *x);
/** Sum along one axis. */
NB_API nb_node *nb_sum_axis(nb_graph *g, nb_node *x, int axis, bool keepdims);
/** Mean of all elements. */
NB_API nb_node *nb_mean(nb_graph *g, nb_node *x);
/** Mean along one axis. */
NB_API nb_node *nb_mean_axis(nb_graph *g, nb_node *x, int axis, bool keepdims);
/** Largest element; a tie sends the gradient to the first. */
NB_API nb_node *nb_max(nb_graph *g, nb_node *x);
/** Largest element along one axis; a tie sends the gradient to the first. */
NB_API nb_node *nb_max_axis(nb_graph *g, nb_node *x, int axis, bool keepdims);
/** Smallest element; a tie sends the gradient to the first. */
NB_API nb_node *nb_min(nb_graph *g, nb_node *x);
/** Smallest element along one axis; a tie sends the gradient to the first. */
NB_API nb_node *nb_min_axis(nb_graph *g, nb_node *x, int axis, bool keepdims);
/** log sum exp(x) over all elements, shifted by the maximum so that it
 * cannot overflow. */
NB_API nb_node *nb_logsumexp(nb_graph *g, nb_node *x);
/** log sum exp(x) along one axis, shifted by the maximum. */
NB_API nb_node *nb_logsumexp_axis(nb_graph *g, nb_node *x, int axis, bool keepdims);
/** @} */

/** @name Shape */
/** @{ */
/** x under a new shape of the same size. One extent may be -1 (inferred).
 * A dynamic batch flows through when the -1 stands for it. */
NB_API nb_node *nb_reshape(nb_graph *g, nb_node *x, int rank, const int64_t *shape);
/** Permutes the axes: y.shape[i] = x.shape[perm[i]]. perm holds `rank`
 * entries, which must be x's rank (a short or long array is an error,
 * named "permute"). */
NB_API nb_node *nb_permute(nb_graph *g, nb_node *x, int rank, const int64_t *perm);
/** Swaps the last two axes: a permute, and named so in errors and nodes. */
NB_API nb_node *nb_transpose(nb_graph *g, nb_node *x);
/** Joins n >= 1 nodes along `axis` (negative counts from the end); they
 * share rank, dtype and every extent but that axis's. */
NB_API nb_node *nb_concat(nb_graph *g, int n, nb_node *const *xs, int axis);
/** @} */
/** An `end` for nb_slice that runs to the end of the axis, which also
 * follows a dynamic batch. */
#define NB_SLICE_END INT64_MAX
/** @name Shape */
/** @{ */
/** Elements start <= i < end of one axis. A negative start or end counts
 * from the end of the axis (-1 is the last element); end = NB_SLICE_END
 * runs to the end, which also follows a dynamic batch. */
NB_API nb_node *nb_slice(nb_graph *g, nb_node *x, int axis, int64_t start,
                  int64_t end);
/** Every step-th element from start (included) towards end (excluded) of
 * one axis, bounds as in nb_slice; step >= 1. The axis keeps
 * ceil((end - start) / step) elements. */
NB_API nb_node *nb_slice_step(nb_graph *g, nb_node *x, int axis,
                              int64_t start, int64_t end, int64_t step);
/** x with before[k] zeros ahead of and after[k] zeros behind each axis k
 * (rank entries each, rank that of x, every entry >= 0). */
NB_API nb_node *nb_pad(nb_graph *g, nb_node *x, int rank,
                       const int64_t *before, const int64_t *after);
/** x repeated to `shape`, numpy-style: x's shape is aligned to the right of
 * it, and each of x's extents equals the target's or is 1. */
NB_API nb_node *nb_broadcast_to(nb_graph *g, nb_node *x, int rank,
                         const int64_t *shape);
/** @} */

/** @name Lookup and gradient control */
/** @{ */
/** Rows of `table` ([V, E]) picked by `ids` (any shape S, the table's
 * dtype): y is [S..., E] with y[s, :] = table[ids[s], :]. Backward adds
 * each position's message into the row it picked, so a repeated id gets
 * the sum; the ids get no gradient. Each id must be an integer in [0, V):
 * any other value (NaN included) fails forward with a message naming the
 * id, its position and V. Ids are carried as floats, like class labels:
 * f32 is exact for every id below 2^24, so an f32 table has at most 2^24
 * rows (f64: 2^53). */
NB_API nb_node *nb_embedding(nb_graph *g, nb_node *table, nb_node *ids);
/** y = x forward; backward sends no message to x (a detach): what flows
 * through it is a constant for differentiation, as the state carried from
 * one window of truncated backpropagation through time to the next. */
NB_API nb_node *nb_stop_gradient(nb_graph *g, nb_node *x);
/** @} */

/** @name Convolution
 * Layouts are PyTorch's: images [N, C, H, W], sequences [N, C, L],
 * conv2d weights [O, C/groups, KH, KW], conv1d weights [O, C/groups, K],
 * conv_transpose2d weights [C, O/groups, KH, KW] (C the input's channels).
 * Outside the input every element reads as zero (zero padding). */
/** @{ */
/** Geometry of a convolution. Build one with nb_conv_params_of and change
 * fields as needed; every field is checked by the op's shape rule. */
typedef struct nb_conv_params {
    int64_t stride[2];   /**< rows, columns; >= 1 */
    int64_t padding[4];  /**< zeros added top, bottom, left, right; >= 0 */
    int64_t dilation[2]; /**< rows, columns; >= 1 (1: adjacent taps) */
    int64_t groups;      /**< >= 1, dividing both channel counts */
    /** conv_transpose2d only: extra rows and columns at the bottom and
     * right of the output, each below max(stride, dilation) of its axis,
     * to pick one of the input sizes a strided conv2d maps to the same
     * output size. Must be 0 for conv2d. */
    int64_t output_padding[2];
} nb_conv_params;
/** Symmetric parameters: the same stride, padding on all four sides and
 * dilation on both axes; no output padding. */
NB_API nb_conv_params nb_conv_params_of(int64_t stride, int64_t padding,
                                        int64_t dilation, int64_t groups);
/** 2-D convolution (cross-correlation, as PyTorch's conv2d): x [N,C,H,W],
 * w [O,C/groups,KH,KW] -> [N,O,OH,OW] with
 * OH = (H + pad_top + pad_bottom - dilation (KH-1) - 1) / stride + 1
 * (rounded down; OW alike). p NULL: stride 1, no padding, dilation 1, one
 * group. Bias is a separate broadcasting nb_add of a [O,1,1] node, or
 * fused with a relu in nb_conv2d_bias_act. */
NB_API nb_node *nb_conv2d(nb_graph *g, nb_node *x, nb_node *w,
                          const nb_conv_params *p);
/** What nb_conv2d_bias_act applies after the bias. */
typedef enum nb_conv_act {
    NB_CONV_ACT_NONE = 0, /**< y = conv2d(x, w) + b */
    NB_CONV_ACT_RELU = 1  /**< y = relu(conv2d(x, w) + b), relu'(0) = 0 */
} nb_conv_act;
/** Fused convolution, one node (op "conv2d_bias_act"): y = act(conv2d(x,
 * w) + b) with b [O] broadcast over the positions (PyTorch's conv2d bias
 * shape), or no bias when b is NULL. The same values and gradients, bit for
 * bit, as nb_conv2d, a broadcast nb_add of b reshaped to [O,1,1] and
 * nb_relu, but the bias and relu are applied to each sample's output
 * while it is in cache, and the intermediate nodes do not exist: only y,
 * the relu's output, is a node's value. x, w and p as nb_conv2d. While the
 * graph holds an error a NULL b counts as a failed constructor's and the
 * call returns NULL. */
NB_API nb_node *nb_conv2d_bias_act(nb_graph *g, nb_node *x, nb_node *w,
                                   nb_node *b, const nb_conv_params *p,
                                   nb_conv_act act);
/** 1-D convolution: x [N,C,L], w [O,C/groups,K] -> [N,O,OL], zero padding
 * pad_left and pad_right, the rest as nb_conv2d. */
NB_API nb_node *nb_conv1d(nb_graph *g, nb_node *x, nb_node *w, int64_t stride,
                          int64_t pad_left, int64_t pad_right,
                          int64_t dilation, int64_t groups);
/** Transposed 2-D convolution (PyTorch's conv_transpose2d): the gradient of
 * nb_conv2d with respect to its input, as an op. x [N,C,H,W],
 * w [C,O/groups,KH,KW] -> [N,O,OH,OW] with
 * OH = (H-1) stride - pad_top - pad_bottom + dilation (KH-1)
 *      + output_padding + 1 (OW alike); p NULL as for nb_conv2d. */
NB_API nb_node *nb_conv_transpose2d(nb_graph *g, nb_node *x, nb_node *w,
                                    const nb_conv_params *p);
/** @} */
/** @name Losses (scalar outputs)
 * "Rows" are all axes but the last; row-wise losses average over rows. */
/** @{ */
/** 1/2 sum (y - t)^2 — the lecture form. */
NB_API nb_node *nb_sse_loss(nb_graph *g, nb_node *y, nb_node *t);
/** mean (y - t)^2 over all elements. */
NB_API nb_node *nb_mse_loss(nb_graph *g, nb_node *y, nb_node *t);
/** mean over elements of -[t log p + (1-t) log(1-p)], p a probability. */
NB_API nb_node *nb_bce_loss(nb_graph *g, nb_node *p, nb_node *t);
/** From logits z: mean of softplus(z) - t z, which for t in {0,1} is the
 * softplus form zeta((1-2t) z). Never saturates: gradient sigmoid(z) - t. */
NB_API nb_node *nb_bce_logits_loss(nb_graph *g, nb_node *z, nb_node *t);
/** mean over rows of -sum_k y_k log p_k, p probabilities. */
NB_API nb_node *nb_cce_loss(nb_graph *g, nb_node *p, nb_node *y);
/** Fused softmax + cross-entropy from logits and one-hot (or soft) targets:
 * mean over rows of -sum_k y_k log softmax(z)_k; gradient (p - y)/rows. */
NB_API nb_node *nb_softmax_ce_loss(nb_graph *g, nb_node *z, nb_node *y);
/** Fused softmax + cross-entropy as nb_softmax_ce_loss, with class indices:
 * labels has one entry per row, holding an integer in [0, K). */
NB_API nb_node *nb_softmax_ce_index_loss(nb_graph *g, nb_node *z, nb_node *labels);
/** Negative log-likelihood from log-probabilities and class indices: mean
 * over rows of -logp[row, label]. */
NB_API nb_node *nb_nll_loss(nb_graph *g, nb_node *logp, nb_node *labels);
/** sum |w| */
NB_API nb_node *nb_l1_penalty(nb_graph *g, nb_node *w);
/** 1/2 sum w^2 */
NB_API nb_node *nb_l2_penalty(nb_graph *g, nb_node *w);
/** @} */

/** @name Regularisation */
/** @{ */
/** Inverted dropout: in training mode each element is zeroed with
 * probability p and survivors are scaled by 1/(1-p); identity in inference
 * mode. 0 <= p < 1. */
NB_API nb_node *nb_dropout(nb_graph *g, nb_node *x, double p);
/** @} */

/** @name Pooling over [N, C, H, W]
 * PyTorch's layout and arguments; the output extent is
 * floor((H + 2 p - d (k - 1) - 1) / s) + 1 per axis (no ceil mode). The
 * shape rule rejects a rank other than 4, a stride below 1, negative
 * padding, padding above half the kernel and a (dilated) kernel larger
 * than the padded input. */
/** @{ */
/** The window of a pooling op, [height, width] pairs. Write it with
 * designated initialisers: a field left out is 0. */
typedef struct nb_pool2d_params {
    int64_t kernel[2];   /**< window extents, >= 1 */
    int64_t stride[2];   /**< >= 1; PyTorch's default is the kernel */
    int64_t padding[2];  /**< on each side, 0 <= padding <= kernel / 2 */
    int64_t dilation[2]; /**< max pooling only; 0 means 1 (none) */
    /** Average pooling only: divide by kh*kw including the padded zeros
     * (true, PyTorch's default) or by the number of input elements in the
     * window (false). */
    bool count_include_pad;
} nb_pool2d_params;
/** Max pooling: the maximum of each window, padding acting as -inf. The
 * gradient of a window goes to its first maximum in row-major window
 * order (the max node's tie rule). */
NB_API nb_node *nb_max_pool2d(nb_graph *g, nb_node *x,
                              const nb_pool2d_params *p);
/** conv2d_bias_act followed by max_pool2d, one node (op
 * "conv2d_bias_act_maxpool"): y = max_pool2d(act(conv2d(x, w) + b), pool).
 * The same values and gradients, bit for bit, as nb_conv2d_bias_act then
 * nb_max_pool2d, but each sample's convolution is pooled while in cache
 * and only the pooled output is a node's value (the activation before
 * pooling is not kept). Arguments as nb_conv2d_bias_act and
 * nb_max_pool2d. */
NB_API nb_node *nb_conv2d_bias_act_maxpool(nb_graph *g, nb_node *x,
                                           nb_node *w, nb_node *b,
                                           const nb_conv_params *p,
                                           nb_conv_act act,
                                           const nb_pool2d_params *pool);
/** Average pooling (no dilation); see count_include_pad. */
NB_API nb_node *nb_avg_pool2d(nb_graph *g, nb_node *x,
                              const nb_pool2d_params *p);
/** Global average pooling: [N, C, H, W] -> [N, C], the mean of each plane
 * (PyTorch's AdaptiveAvgPool2d(1) followed by a flatten). */
NB_API nb_node *nb_global_avg_pool2d(nb_graph *g, nb_node *x);
/** @} */

/** PyTorch's default batch-norm momentum. */
#define NB_BN_MOMENTUM 0.1
/** PyTorch's default eps for batch and layer norm. */
#define NB_NORM_EPS 1e-5

/** @name Normalisation */
/** @{ */
/** Batch normalisation of channel axis 1 of x ([N, F], [N, C, L] or
 * [N, C, H, W]). running_mean and running_var are state nodes of shape [C]
 * (nb_state; start them at 0 and 1 as PyTorch does, and name them
 * "<layer>.running_mean" and "<layer>.running_var" so files match
 * PyTorch's state_dict); weight (gamma) and bias (beta) are [C] parameters,
 * or both NULL for no affine part. In training mode (nb_graph_set_training)
 * x is normalised with the batch's mean and biased variance over every
 * axis but 1, the gradient flows through them, and each forward updates
 * running = (1 - momentum) running + momentum batch (the variance
 * unbiased); training needs at least two values per channel. In inference
 * mode the running statistics normalise and nothing is updated. PyTorch's
 * defaults: momentum NB_BN_MOMENTUM, eps NB_NORM_EPS. num_batches_tracked
 * is not kept (it matters only for PyTorch's momentum=None). */
NB_API nb_node *nb_batch_norm(nb_graph *g, nb_node *x, nb_node *running_mean,
                              nb_node *running_var, nb_node *weight,
                              nb_node *bias, double momentum, double eps);
/** Layer normalisation over the last `axes` axes of x (PyTorch's
 * normalized_shape is x's shape from there on): each such block is
 * normalised with its own mean and biased variance, then scaled by weight
 * and shifted by bias, both of the normalised shape, or both NULL
 * (elementwise_affine=False). Training and inference agree. */
NB_API nb_node *nb_layer_norm(nb_graph *g, nb_node *x, int axes,
                              nb_node *weight, nb_node *bias, double eps);
/** @} */

/** @name Recurrent layers over a sequence (fused)
 * Batch first: x is [N, T, E], the initial states h0 and c0 are [N, H]
 * (inputs, constants or parameters: zeros for PyTorch's default), or
 * [1, H] for one state shared by every sample (a zero state that need
 * not know the batch size; its gradient is the sum of the rows'). Weights
 * use PyTorch's layout and gate order, so a state_dict's
 * weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 load unchanged:
 * w_ih [G H, E], w_hh [G H, H], b_ih and b_hh [G H], the biases both
 * given or both NULL (bias=False). The output holds every hidden state,
 * [N, T, H]; the last one, h_T, is nb_slice(y, 1, T - 1, T). Each op
 * projects the inputs of all T steps with one matrix product, runs the
 * recurrent product and the gates step by step, and differentiates
 * through time in reverse (the weights' gradients sum every step's
 * message), the same function as the cell written from the elementwise
 * ops and matmul, in one node. */
/** @{ */
/** Elman recurrence h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
 * (PyTorch's nn.RNN, tanh): G = 1. */
NB_API nb_node *nb_elman_seq(nb_graph *g, nb_node *x, nb_node *h0,
                             nb_node *w_ih, nb_node *w_hh, nb_node *b_ih,
                             nb_node *b_hh);
/** LSTM (PyTorch's nn.LSTM): G = 4, gates i, f, g, o. With final_cell the
 * output is [N, T + 1, H] and its row T is the final cell state c_T
 * (nb_slice(y, 1, T, T + 1)), rows 0..T-1 the hidden states: what
 * truncated backpropagation through time carries to the next window as
 * h0 and c0. */
NB_API nb_node *nb_lstm_seq(nb_graph *g, nb_node *x, nb_node *h0,
                            nb_node *c0, nb_node *w_ih, nb_node *w_hh,
                            nb_node *b_ih, nb_node *b_hh, bool final_cell);
/** GRU (PyTorch's nn.GRU): G = 3, gates r, z, n with
 * n = tanh(W_in x_t + b_in + r (W_hn h_{t-1} + b_hn)) and
 * h_t = (1 - z) n + z h_{t-1}. */
NB_API nb_node *nb_gru_seq(nb_graph *g, nb_node *x, nb_node *h0,
                           nb_node *w_ih, nb_node *w_hh, nb_node *b_ih,
                           nb_node *b_hh);
/** @} */

#ifdef __cplusplus
}
#endif
#endif
