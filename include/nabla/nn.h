/** @file
 * Layers (linear, convolution, pooling, normalisation), initialisers and
 * the multilayer perceptron builder.
 *
 * Everything here is built from the public op constructors (ops.h): an MLP
 * is an ordinary graph a user could have written by hand, and its nodes are
 * returned so that a user can inspect, freeze, reuse or extend any of them.
 * Errors follow the graph's sticky rule: a failure records a message on the
 * graph and returns NULL or a negative code.
 */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"
#include "ops.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @name Initialisers
 * All draw from the graph's seeded RNG (nb_graph_seed), so a seed fixes
 * every initial weight. fan_in / fan_out are the layer's input and output
 * widths; for a weight of shape [in, out] they are its two extents. */
/** @{ */

/** Uniform in [lo, hi). */
NB_API int nb_init_uniform(nb_graph *g, nb_node *param, double lo, double hi);
/** Normal with the given mean and standard deviation. */
NB_API int nb_init_normal(nb_graph *g, nb_node *param, double mean, double std);
/** Glorot & Bengio (2010): U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)). */
NB_API int nb_init_xavier_uniform(nb_graph *g, nb_node *param, double fan_in,
                           double fan_out, double gain);
/** Glorot normal: N(0, gain^2 2 / (fan_in + fan_out)). */
NB_API int nb_init_xavier_normal(nb_graph *g, nb_node *param, double fan_in,
                          double fan_out, double gain);
/** He, Zhang, Ren & Sun (2015), for ReLU units: U(-a, a), a = sqrt(6 / fan_in). */
NB_API int nb_init_he_uniform(nb_graph *g, nb_node *param, double fan_in);
/** He normal: N(0, 2 / fan_in). */
NB_API int nb_init_he_normal(nb_graph *g, nb_node *param, double fan_in);
/** Sets every element to value (zeros for biases, say). */
NB_API int nb_init_constant(nb_graph *g, nb_node *param, double value);
/** @} */

/** How nb_linear and nb_mlp initialise weights. Biases start at zero,
 * except under NB_INIT_TORCH, which draws them too. */
typedef enum nb_init_kind {
    NB_INIT_DEFAULT = 0,   /**< He uniform for ReLU-family layers (relu,
                                leaky_relu, elu, gelu, silu), Xavier
                                uniform (gain 1) otherwise */
    NB_INIT_XAVIER_UNIFORM, /**< nb_init_xavier_uniform, gain 1 */
    NB_INIT_XAVIER_NORMAL,  /**< nb_init_xavier_normal, gain 1 */
    NB_INIT_HE_UNIFORM,     /**< nb_init_he_uniform */
    NB_INIT_HE_NORMAL,      /**< nb_init_he_normal */
    NB_INIT_TORCH,         /**< PyTorch's nn.Linear default: W and b both
                                U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    NB_INIT_ZEROS          /**< everything zero: for tests and hand-set
                                weights */
} nb_init_kind;

/** The activation units of layers and MLPs, applied by nb_activate. */
typedef enum nb_activation {
    NB_ACT_LINEAR = 0, /**< identity: no node is added */
    NB_ACT_SIGMOID,    /**< nb_sigmoid */
    NB_ACT_TANH,       /**< nb_tanh */
    NB_ACT_RELU,       /**< nb_relu */
    NB_ACT_LEAKY_RELU, /**< slope `param` for x < 0 (0.01 if param is 0) */
    NB_ACT_ELU,        /**< alpha `param` (1 if param is 0) */
    NB_ACT_SELU,       /**< nb_selu */
    NB_ACT_SOFTPLUS,   /**< nb_softplus */
    NB_ACT_GELU,       /**< nb_gelu */
    NB_ACT_SILU,       /**< nb_silu */
    NB_ACT_SOFTMAX     /**< over the last axis; output layers only */
} nb_activation;

/** @name Activations */
/** @{ */
/** "relu", "sigmoid", ...; "unknown" for a value outside the enum. */
NB_API const char *nb_activation_name(nb_activation act);
/** The activation named `name` (also "identity" for linear and "swish" for
 * silu), or -1. */
NB_API int nb_activation_from_name(const char *name);
/** act(x); for NB_ACT_LINEAR returns x itself. */
NB_API nb_node *nb_activate(nb_graph *g, nb_node *x, nb_activation act,
                     double param);
/** @} */

/** @name The linear (fully connected) layer: y = x W + b */
/** @{ */
/** The nodes nb_linear_layer made. */
typedef struct nb_linear {
    nb_node *W;   /**< parameter [in, out], named `"<name>.W"` */
    nb_node *b;   /**< parameter [out], named `"<name>.b"`; NULL without bias */
    nb_node *out; /**< x W + b, shape [..., out] */
} nb_linear;

/** Makes W and b (dtype of x), initialises them, and returns x W + b.
 * `act` only guides NB_INIT_DEFAULT's choice; no activation is applied.
 * `layer`, if not NULL, receives the nodes made.
 * @param g            the graph
 * @param x            the input, [..., in]: its last axis holds the
 *                     features, every other axis counts rows
 * @param out_features the output width, out > 0
 * @param bias         whether to add b
 * @param name         prefix of the parameters' names; NULL means "linear"
 * @param init         how W (and, for NB_INIT_TORCH, b) is initialised
 * @param act          the unit that will follow, for NB_INIT_DEFAULT
 * @param layer        receives W, b and the output; may be NULL */
NB_API nb_node *nb_linear_layer(nb_graph *g, nb_node *x, int64_t out_features,
                         bool bias, const char *name, nb_init_kind init,
                         nb_activation act, nb_linear *layer);
/** @} */

/** @name Convolution layers
 * Layouts are PyTorch's (ops.h, "Convolution"), and so are the parameters'
 * names and shapes: `"<name>.weight"` [O, C/groups, KH, KW] (conv1d
 * [O, C/groups, K]; conv_transpose2d [C, O/groups, KH, KW]) and
 * `"<name>.bias"` [O], so a PyTorch state_dict's tensors load unchanged.
 * The bias is added through a free reshape to [O, 1, 1] ([O, 1]).
 *
 * Initialisation, with the receptive field r = KH KW (K) and fan_in =
 * weight.shape[1] r, fan_out = weight.shape[0] r as PyTorch computes them:
 * NB_INIT_TORCH is PyTorch's default for nn.Conv1d/2d/ConvTranspose2d
 * (kaiming_uniform with a = sqrt(5): weight and bias U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in))); the other kinds act on the weight as in
 * nb_linear_layer (NB_INIT_DEFAULT: He uniform before a ReLU-family unit,
 * Xavier uniform otherwise) and leave the bias 0.
 *
 * Errors name the layer ("conv2d 'conv1': ..."). The layer checks its own
 * arguments (input rank, positive channel counts and kernel, groups that
 * divide both channel counts) before creating anything; stride, padding,
 * dilation and a kernel larger than the padded input are the op's checks,
 * made after the parameters exist: on such an error they stay in the graph,
 * unused, and the graph stays usable. */
/** @{ */
/** The nodes a convolution layer made. */
typedef struct nb_conv {
    nb_node *weight; /**< parameter `"<name>.weight"` */
    nb_node *bias;   /**< parameter `"<name>.bias"` [O]; NULL without bias */
    nb_node *out;    /**< the layer's output, bias added (and relu
                          applied, for nb_conv2d_relu_layer) */
} nb_conv;

/** conv2d(x, weight) + bias for x [N, C, H, W]: PyTorch's nn.Conv2d(C,
 * out_channels, (kernel_h, kernel_w), ...) with the geometry of p (NULL:
 * stride 1, no padding, dilation 1, one group; see nb_conv_params_of).
 * `name` NULL means "conv2d"; `act` only guides NB_INIT_DEFAULT; `layer`,
 * if not NULL, receives the nodes made. */
NB_API nb_node *nb_conv2d_layer(nb_graph *g, nb_node *x, int64_t out_channels,
                                int64_t kernel_h, int64_t kernel_w,
                                const nb_conv_params *p, bool bias,
                                const char *name, nb_init_kind init,
                                nb_activation act, nb_conv *layer);
/** relu(conv2d(x, weight) + bias) as one node (nb_conv2d_bias_act): the
 * parameters, their names, their initialisation (for a relu unit) and the
 * values of nb_conv2d_layer followed by nb_relu, bit for bit, in a
 * quicker node; layer->out is that node, the relu's output. The other
 * arguments as nb_conv2d_layer. */
NB_API nb_node *nb_conv2d_relu_layer(nb_graph *g, nb_node *x,
                                     int64_t out_channels, int64_t kernel_h,
                                     int64_t kernel_w,
                                     const nb_conv_params *p, bool bias,
                                     const char *name, nb_init_kind init,
                                     nb_conv *layer);
/** conv1d(x, weight) + bias for x [N, C, L]: PyTorch's nn.Conv1d(C,
 * out_channels, kernel, stride, padding, dilation, groups) with `padding`
 * zeros on both ends. `name` NULL means "conv1d"; the rest as for
 * nb_conv2d_layer. */
NB_API nb_node *nb_conv1d_layer(nb_graph *g, nb_node *x, int64_t out_channels,
                                int64_t kernel, int64_t stride,
                                int64_t padding, int64_t dilation,
                                int64_t groups, bool bias, const char *name,
                                nb_init_kind init, nb_activation act,
                                nb_conv *layer);
/** conv_transpose2d(x, weight) + bias for x [N, C, H, W]: PyTorch's
 * nn.ConvTranspose2d(C, out_channels, (kernel_h, kernel_w), ...), the
 * geometry (output_padding included) in p as for nb_conv2d_layer. The
 * weight is [C, O/groups, KH, KW], so PyTorch's fan_in is O/groups KH KW.
 * `name` NULL means "conv_transpose2d". */
NB_API nb_node *nb_conv_transpose2d_layer(nb_graph *g, nb_node *x,
                                          int64_t out_channels,
                                          int64_t kernel_h, int64_t kernel_w,
                                          const nb_conv_params *p, bool bias,
                                          const char *name, nb_init_kind init,
                                          nb_activation act, nb_conv *layer);
/** @} */

/** @name Pooling layers
 * The pooling ops with PyTorch's nn.MaxPool2d / nn.AvgPool2d defaults
 * filled in: a square window, stride = kernel when `stride` is 0, and
 * (average pooling) padded zeros counted. They make no parameters; the
 * ops' own checks (ops.h, "Pooling") apply, and errors name the layer. */
/** @{ */
/** max_pool2d of x [N, C, H, W] with a kernel x kernel window. */
NB_API nb_node *nb_max_pool2d_layer(nb_graph *g, nb_node *x, int64_t kernel,
                                    int64_t stride, int64_t padding,
                                    const char *name);
/** avg_pool2d of x [N, C, H, W] with a kernel x kernel window. */
NB_API nb_node *nb_avg_pool2d_layer(nb_graph *g, nb_node *x, int64_t kernel,
                                    int64_t stride, int64_t padding,
                                    const char *name);
/** @} */

/** @name Normalisation layers
 * Parameters and state named as PyTorch's nn.BatchNorm1d/2d and
 * nn.LayerNorm name them: `"<name>.weight"` (gain, starts at 1),
 * `"<name>.bias"` (starts at 0), and for batch norm the state tensors
 * `"<name>.running_mean"` (starts at 0) and `"<name>.running_var"` (starts
 * at 1), which are saved and loaded with the parameters but not trained.
 * PyTorch's defaults are momentum NB_BN_MOMENTUM and eps NB_NORM_EPS. */
/** @{ */
/** The nodes a normalisation layer made. */
typedef struct nb_norm {
    nb_node *weight;       /**< gain; NULL when not affine */
    nb_node *bias;         /**< shift; NULL when not affine */
    nb_node *running_mean; /**< batch norm only: state [C] */
    nb_node *running_var;  /**< batch norm only: state [C] */
    nb_node *out;          /**< the normalised output */
} nb_norm;

/** Batch normalisation over channel axis 1 of x ([N, F], [N, C, L] or
 * [N, C, H, W]; nb_batch_norm says how training and inference differ),
 * with a [C] gain and shift when `affine`. 0 <= momentum <= 1, eps > 0.
 * `name` NULL means "bn". */
NB_API nb_node *nb_batch_norm_layer(nb_graph *g, nb_node *x, bool affine,
                                    double momentum, double eps,
                                    const char *name, nb_norm *layer);
/** Layer normalisation over the last `axes` axes of x (1 <= axes <= rank),
 * with gain and shift of that trailing shape when `affine`. eps > 0.
 * `name` NULL means "ln". */
NB_API nb_node *nb_layer_norm_layer(nb_graph *g, nb_node *x, int axes,
                                    bool affine, double eps, const char *name,
                                    nb_norm *layer);
/** @} */

/** The most weight layers an MLP may have. */
#define NB_MLP_MAX_LAYERS 64

/** @name The multilayer perceptron */
/** @{ */
/** What nb_mlp_build builds. */
typedef struct nb_mlp_spec {
    /** Number of weight layers, n_layers >= 1. */
    int n_layers;
    /** Layer widths: sizes[0] is the input width, sizes[n_layers] the
     * output width. */
    const int64_t *sizes;
    /** Activation of every hidden layer... */
    nb_activation hidden;
    /** The hidden activations' `param` (see nb_activation). */
    double hidden_param;
    /** ...unless this array (n_layers - 1 entries) gives one per layer. */
    const nb_activation *hidden_per_layer;
    /** Output unit: NB_ACT_LINEAR, NB_ACT_SIGMOID or NB_ACT_SOFTMAX. */
    nb_activation output;
    /** Inverted dropout after each hidden activation (0 = none). */
    double dropout;
    /** How the layers' weights are initialised. */
    nb_init_kind init;
    /** Parameter names are `"<name>.<layer>.W"` / `".b"` (layers from 1);
     * NULL means "mlp". */
    const char *name;
} nb_mlp_spec;

/** Every node nb_mlp_build made. */
typedef struct nb_mlp {
    int n_layers;    /**< number of weight layers */
    nb_node *input;  /**< the x the network was built on */
    nb_linear layer[NB_MLP_MAX_LAYERS]; /**< layer[i].out: pre-activation s */
    nb_node *hidden[NB_MLP_MAX_LAYERS]; /**< hidden[i]: after activation (and
                                             dropout), i < n_layers - 1 */
    nb_node *logits; /**< the last layer's pre-activation */
    nb_node *output; /**< output unit applied to logits */
    nb_activation output_act; /**< spec->output: picks nb_mlp_loss's loss */
} nb_mlp;

/** Builds the network on top of `x` (shape [batch, sizes[0]]) and fills
 * `mlp` with every node it made. Returns NB_OK or a negative code with the
 * error recorded on the graph. */
NB_API int nb_mlp_build(nb_graph *g, nb_node *x, const nb_mlp_spec *spec,
                 nb_mlp *mlp);

/** The loss that matches the output unit, built on the logits so that it is
 * the fused, non-saturating form: softmax -> softmax cross-entropy (targets
 * are class indices when `targets` has rank 1, one-hot rows otherwise);
 * sigmoid -> binary cross-entropy in the softplus form; linear -> mean
 * squared error. */
NB_API nb_node *nb_mlp_loss(nb_graph *g, const nb_mlp *mlp, nb_node *targets);

/** Sum of lambda * penalty over the weights (not the biases) of an MLP:
 * L2 gives lambda/2 sum W^2, L1 lambda sum |W|. Add it to a loss. */
NB_API nb_node *nb_mlp_weight_penalty(nb_graph *g, const nb_mlp *mlp, double l2,
                               double l1);

/** Freezes (false) or unfreezes (true) the W and b of layers
 * [first, last) of an MLP, counted as in mlp->layer[] (from 0, so the
 * parameters `"<name>.1.W"` belong to layer 0 and [0, n_layers) is all). */
NB_API int nb_mlp_set_trainable(nb_graph *g, const nb_mlp *mlp, int first, int last,
                         bool trainable);
/** @} */


/** @name Recurrent networks
 * Cells and a sequence layer built from the public ops (src/nn/rnn.c has
 * the equations). Weights follow PyTorch's layout and gate order, so a
 * PyTorch state_dict carries over: w_ih [G H, E], w_hh [G H, H], b_ih and
 * b_hh [G H], G = 1 (Elman), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n). All
 * start as PyTorch's: U(-1/sqrt(H), 1/sqrt(H)). */
/** @{ */
/** The cell kinds. */
typedef enum nb_rnn_cell {
    NB_RNN_ELMAN = 0, /**< h' = tanh(x w_ih^T + b_ih + h w_hh^T + b_hh) */
    NB_RNN_LSTM,      /**< PyTorch's nn.LSTM cell (i, f, g, o) */
    NB_RNN_GRU        /**< PyTorch's nn.GRU cell (r, z, n) */
} nb_rnn_cell;

/** "elman", "lstm", "gru"; "unknown" outside the enum. */
NB_API const char *nb_rnn_cell_name(nb_rnn_cell cell);

/** One layer's parameters, and the nodes derived from them that every
 * step shares. */
typedef struct nb_rnn_params {
    nb_rnn_cell cell;  /**< the kind */
    int64_t in;        /**< E, the input width */
    int64_t hidden;    /**< H */
    nb_node *w_ih;     /**< [G H, E], "<name>.weight_ih[_l<k>]" */
    nb_node *w_hh;     /**< [G H, H], "<name>.weight_hh[_l<k>]" */
    nb_node *b_ih;     /**< [G H], "<name>.bias_ih[_l<k>]"; NULL without bias */
    nb_node *b_hh;     /**< [G H], "<name>.bias_hh[_l<k>]"; NULL without bias */
    nb_node *w_ih_t;   /**< derived: w_ih^T [E, G H] */
    nb_node *w_hh_t;   /**< derived: w_hh^T [H, G H] */
    nb_node *b_x;      /**< derived: the bias added to the input projection
                            (b_ih + b_hh; b_ih alone for GRU, whose b_hh is
                            added per step); NULL without bias */
} nb_rnn_params;

/** Makes one layer's parameters (dtype `dtype`), initialised as PyTorch
 * does, named "<name>.weight_ih_l<layer>" and so on (without the "_l<k>"
 * suffix when layer < 0, as PyTorch's LSTMCell names them). For an LSTM,
 * `forget_bias` is added to the forget block [H, 2H) of b_ih after the
 * draw: 0 keeps PyTorch's init, 1 is the common advice (Gers et al. 2000,
 * Jozefowicz et al. 2015) for a cell that starts out remembering. `name`
 * NULL means the cell's name. Returns NB_OK or a negative code. */
NB_API int nb_rnn_params_make(nb_graph *g, nb_rnn_cell cell, nb_dtype dtype,
                              int64_t in, int64_t hidden, bool bias,
                              double forget_bias, const char *name, int layer,
                              nb_rnn_params *p);

/** One step of the cell: x [N, E], h [N, H] (or [1, H], broadcast), and
 * for an LSTM c [N, H] with the new cell state in *c_out (c and c_out are
 * ignored by the other cells; c_out may then be NULL). Returns the new h.
 * Steps that share `p` share its parameter nodes. */
NB_API nb_node *nb_rnn_cell_step(nb_graph *g, const nb_rnn_params *p,
                                 nb_node *x, nb_node *h, nb_node *c,
                                 nb_node **c_out);

/** The most stacked layers of nb_rnn_build. */
#define NB_RNN_MAX_LAYERS 16
/** The most time steps nb_rnn_build unrolls. */
#define NB_RNN_MAX_STEPS (1 << 20)

/** What nb_rnn_build builds. Zero-initialised fields give one forward
 * layer returning every step. */
typedef struct nb_rnn_spec {
    nb_rnn_cell cell;   /**< the cell of every layer */
    int64_t hidden;     /**< H > 0 */
    int n_layers;       /**< stacked layers (0 means 1): layer k reads the
                             outputs of layer k - 1 */
    bool reverse;       /**< walk time from T - 1 down to 0 */
    bool last_only;     /**< `output` is the top layer's final h [N, H]
                             instead of every step [N, T, H] */
    bool no_bias;       /**< leave b_ih and b_hh out */
    double forget_bias; /**< see nb_rnn_params_make (LSTM only) */
    const char *name;   /**< parameter prefix; NULL means the cell's name */
    bool composite;     /**< build every layer from the public ops, one
                             cell per step, even where the fused op
                             (nb_elman_seq, nb_lstm_seq, nb_gru_seq)
                             applies: without a mask and forward in time */
} nb_rnn_spec;

/** Every node nb_rnn_build made. */
typedef struct nb_rnn {
    int n_layers;                            /**< layers built */
    nb_rnn_params layer[NB_RNN_MAX_LAYERS];  /**< each layer's parameters */
    nb_node *outputs; /**< the top layer's h at every step [N, T, H] (zero
                           where the mask is 0) */
    nb_node *output;  /**< outputs, or with last_only the top final h */
    /** The final h of each layer [N, H]: with a mask, the state after each
     * row's last real step. Feed its value as the next window's h0 for
     * truncated backpropagation through time (or, in one graph, pass it
     * through nb_stop_gradient). */
    nb_node *h_n[NB_RNN_MAX_LAYERS];
    nb_node *c_n[NB_RNN_MAX_LAYERS]; /**< the final c of each LSTM layer */
    /** Each layer's fused op node, or NULL where the layer was unrolled
     * from the public ops. Its value holds h_t of row n at [n, t, :] and,
     * for an LSTM, c_T at [n, T, :] ([N, T+1, H]); a forward of anything
     * built on `outputs` computes it. h_n and c_n are then slices of it,
     * nodes that a forward computes only when its target needs them: to
     * carry the state after a forward of the loss alone, read it here. */
    nb_node *seq[NB_RNN_MAX_LAYERS];
} nb_rnn;

/** Unrolls the layers over x [N, T, E] (batch first). N may be dynamic; so
 * may T on the fused path (below): ids declared [NB_DYNAMIC, NB_DYNAMIC]
 * take a new window length at each feed. The composite path builds one
 * node per step, so its T is the one x has here; a feed of another T then
 * fails at the first op that cannot follow it. Every step of a layer uses the same parameter
 * nodes, so a weight's gradient sums the messages of all T steps. Without
 * a mask, forward in time and unless spec->composite is set, each layer is
 * one fused sequence op (the same values to rounding, and faster); the
 * parameters are the same nodes either way.
 * @param g     the graph
 * @param x     the sequence [N, T, E]
 * @param mask  [N, T], 1 for a real step and 0 for padding, or NULL: a
 *              padded step keeps the state and outputs zeros, so padding
 *              sends nothing back (pad at the end of a row)
 * @param h0    n_layers initial h nodes [N, H] (entries may be NULL), or
 *              NULL: zeros
 * @param c0    the same for an LSTM's c
 * @param spec  what to build
 * @param rnn   receives every node made
 * @return NB_OK or a negative code, with the error on the graph */
NB_API int nb_rnn_build(nb_graph *g, nb_node *x, nb_node *mask,
                        nb_node *const *h0, nb_node *const *c0,
                        const nb_rnn_spec *spec, nb_rnn *rnn);

/** Softmax cross-entropy over the last axis of logits [..., K] against
 * class indices `labels` [...] (carried as floats), averaged over the
 * positions where mask [...] is 1: padding (mask 0) adds nothing to the
 * loss or the gradients. Every label must still be a class index, padding
 * included (0 will do). A mask of zeros gives loss 0. With mask NULL it is
 * nb_softmax_ce_index_loss. */
NB_API nb_node *nb_masked_ce_index_loss(nb_graph *g, nb_node *logits,
                                        nb_node *labels, nb_node *mask);
/** @} */

#ifdef __cplusplus
}
#endif

#endif
