/** @file
 * Optimisers and learning-rate schedules.
 *
 * An optimiser updates parameters from the gradients of the latest
 * nb_backward. It holds a list of parameter nodes and, per parameter, the
 * state its rule needs (velocity, moment estimates). Parameters that are
 * frozen (nb_param_set_trainable false) or that received no gradient are
 * skipped, and their state is left as it was.
 *
 * One step, per element, with dL/dw the gradient of the latest backward, lr
 * the current learning rate and t the number of this update (1 for the
 * first):
 * ```text
 *   c = clip_norm / ||dL/dw|| if clip_norm > 0 and the global norm (over
 *       every updated parameter) exceeds it, else 1      (clipping)
 *   g = c dL/dw + weight_decay w + l1 sign(w)             (regularisation)
 * ```
 * so clipping acts on the loss gradient alone, as PyTorch's
 * clip_grad_norm_ before optimizer.step() does; the step applies c and the
 * regularisation on the fly and leaves the gradient buffers as they are
 * (nb_clip_grad_norm, by contrast, scales them in place). sign(0) = 0. Then
 * ```text
 *   SGD        w -= lr g
 *   momentum   v = mu v + g;            w -= lr v           (PyTorch's form)
 *   Nesterov   v = mu v + g;            w -= lr (g + mu v)
 *   RMSprop    s = rho s + (1-rho) g^2; w -= lr g / (sqrt(s) + eps)
 *   Adam       m = b1 m + (1-b1) g;     v = b2 v + (1-b2) g^2;
 *              w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *   AdamW      Adam without the weight_decay term in g, and instead the
 *              decoupled decay w -= lr weight_decay w (w before the step)
 * ```
 * Regularisation (weight_decay, l1, AdamW's decay) applies to every
 * parameter of rank >= 2 (weights) and not to rank 0 and 1 (biases),
 * unless decay_biases is set.
 *
 * The arithmetic runs in the parameter's dtype: the hyper-parameters of a
 * step are computed in double, then rounded to float for f32 parameters
 * (eps is at least FLT_MIN there, so a zero moment never gives 0/0).
 *
 * Defaults. A config is meant to be zero-initialised and filled in part,
 * e.g. (nb_optim_config){.kind = NB_OPTIM_ADAM, .lr = 1e-3}. A field left 0
 * takes its default:
 * ```text
 *   lr            0.01 for SGD, 0.001 for RMSprop, Adam and AdamW
 *   beta1, beta2  0.9 and 0.999          rho  0.99          eps  1e-8
 *   momentum, weight_decay, l1, clip_norm: 0 is the value itself (off).
 * ```
 * Hence lr, beta1, beta2, rho and eps cannot be set to exactly 0 in a
 * config. For a beta or rho of "0" pass 1e-300: 1 - 1e-300 rounds to 1 and
 * 1e-300 rounds to 0 in f32, so the rule is that of 0 to within rounding.
 * A learning rate of 0 can be set later with nb_optimizer_set_lr.
 * Validation (nb_optimizer_new fails with a message naming the field):
 * every value finite and not NaN; lr, weight_decay, l1, clip_norm >= 0;
 * momentum, beta1, beta2, rho in [0, 1); eps >= 0; nesterov needs
 * momentum > 0; and a field the kind does not use (momentum or nesterov
 * outside SGD, beta1/beta2 outside Adam(W), rho outside RMSprop, eps for
 * SGD) must be left 0, since setting it is most likely a mistake (e.g.
 * momentum given to Adam, which has beta1).
 *
 * Steps and state. nb_optimizer_steps counts the successful calls of
 * nb_optimizer_step (a call counts even if no parameter had a gradient);
 * Adam's t is that count, shared by all parameters. A step whose global
 * gradient norm is not finite (a NaN or infinity in some gradient), or
 * whose update would write a NaN or infinity into a parameter or its state
 * (finite gradients with a huge learning rate), is refused with
 * NB_ERR_NONFINITE: no parameter, state or count changes.
 *
 * Errors. Calls on an optimiser record their error on its graph (the
 * sticky error of graph.h) and return a negative code; a NULL optimiser
 * gives NB_ERR_ARG (or NULL, NaN, 0 for the getters, as documented) with
 * nothing recorded.
 * State tensors, allocated at creation (a step allocates nothing), in
 * parameter order and per parameter in this order:
 * ```text
 *   SGD with momentum   "momentum/<param>"
 *   RMSprop             "rmsprop.s/<param>"
 *   Adam, AdamW         "adam.m/<param>", "adam.v/<param>"
 * ```
 * (plain SGD has none). Names use the parameter's name at creation.
 *
 * An optimiser does not own its graph and may be freed before or after it,
 * but must not be used once the graph is freed. Parameters added to the
 * graph after nb_optimizer_new are not part of it.
 *
 * SGD with batch 1 is online (stochastic) learning, with a mini-batch it is
 * mini-batch gradient descent, with the whole set it is full-batch gradient
 * descent: the rule is the same, the batch is the caller's choice.
 */
#ifndef NABLA_OPTIM_H
#define NABLA_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The update rule (formulas at the top of optim.h). */
typedef enum nb_optim_kind {
    NB_OPTIM_SGD = 0, /**< with momentum > 0 it is momentum SGD */
    NB_OPTIM_RMSPROP, /**< RMSprop */
    NB_OPTIM_ADAM,    /**< Adam */
    NB_OPTIM_ADAMW    /**< AdamW: Adam with decoupled weight decay */
} nb_optim_kind;

/** An optimiser's rule and hyper-parameters; a field left 0 takes its
 * default (see the top of optim.h). */
typedef struct nb_optim_config {
    nb_optim_kind kind;  /**< the update rule */
    double lr;           /**< learning rate (eta); 0 means 0.01 for SGD,
                              0.001 for the others */
    double momentum;     /**< SGD: mu in [0, 1); 0 = plain SGD */
    bool nesterov;       /**< SGD: Nesterov's look-ahead form */
    /** Adam(W): 0 means 0.9... */
    double beta1, beta2; /**< ...and 0.999 */
    double rho;          /**< RMSprop decay: 0 means 0.99 */
    double eps;          /**< Adam(W), RMSprop: 0 means 1e-8 */
    double weight_decay; /**< L2 coefficient (AdamW: decoupled decay) */
    double l1;           /**< L1 coefficient */
    bool decay_biases;   /**< also regularise parameters of rank < 2 */
    double clip_norm;    /**< clip by global norm; 0 = no clipping */
} nb_optim_config;

/** An optimiser: its config, its parameters and their state (opaque). */
typedef struct nb_optimizer nb_optimizer;

/** An optimiser over the given parameters, or over every parameter of the
 * graph when n is 0 (params may then be NULL; frozen ones are included and
 * skipped while frozen). The list must hold parameters of g, each once.
 * NULL on error (recorded on the graph). */
NB_API nb_optimizer *nb_optimizer_new(nb_graph *g, const nb_optim_config *config,
                               int n, nb_node *const *params);
/** Frees the optimiser and its state; NULL is a no-op. */
NB_API void nb_optimizer_free(nb_optimizer *opt);

/** One update from the gradients of the latest backward. Returns NB_OK or a
 * negative code (error recorded on the graph): NB_ERR_NONFINITE for a
 * gradient holding NaN or infinity, or for an update that would make a
 * parameter or a state value NaN or infinite from finite inputs (e.g. a
 * learning rate of 1e30); NB_ERR_STATE for a gradient whose dtype or size
 * is not its parameter's, or when the step count would reach INT64_MAX.
 * On error nothing is changed: parameters, state and step count.
 * NB_ERR_ARG for a NULL opt (no graph to record it on). */
NB_API int nb_optimizer_step(nb_optimizer *opt);

/** The global L2 norm of the gradients seen by the latest step (the
 * trainable parameters that had one), before clipping; computed whether or
 * not clipping is on. 0 before the first step. It is a plain value, never
 * an error code: a step refused for a non-finite gradient leaves the NaN
 * or infinity it found here, and a NULL opt gives NaN. */
NB_API double nb_optimizer_grad_norm(const nb_optimizer *opt);

/** The current learning rate (NaN for a NULL opt). */
NB_API double nb_optimizer_lr(const nb_optimizer *opt);
/** Sets the learning rate. lr must be finite and >= 0 (0 is taken
 * literally here). Returns NB_OK, or NB_ERR_ARG with the error recorded on
 * the graph and the rate unchanged (NB_ERR_ARG alone for a NULL opt). */
NB_API int nb_optimizer_set_lr(nb_optimizer *opt, double lr);
/** Updates applied so far (Adam's t); NB_ERR_ARG for a NULL opt. */
NB_API int64_t nb_optimizer_steps(const nb_optimizer *opt);
/** The config in use: as given, with the defaults of the fields the kind
 * uses filled in and lr the current rate. */
NB_API const nb_optim_config *nb_optimizer_config(const nb_optimizer *opt);

/** The number of parameters the optimiser updates. */
NB_API int nb_optimizer_param_count(const nb_optimizer *opt);
/** Parameter i (0 <= i < nb_optimizer_param_count), or NULL with the
 * error recorded on the graph. */
NB_API nb_node *nb_optimizer_param(const nb_optimizer *opt, int i);

/** The number of state tensors, for checkpoints (see nb_optimizer_state). */
NB_API int nb_optimizer_state_count(const nb_optimizer *opt);
/** State tensor i, for checkpoints. There are `nb_optimizer_state_count`
 * tensors, each with a name such as `"momentum/<param name>"` or
 * `"adam.m/<param name>"` (stored in *name), of the
 * parameter's shape and dtype (order and names: see the top of
 * optim.h). They are live and owned by the optimiser: writing them, with
 * nb_optimizer_set_steps (and the lr if a schedule changed it), restores a
 * saved optimiser exactly, bit for bit. An index out of range gives NULL
 * (and *name NULL). */
NB_API nb_tensor *nb_optimizer_state(nb_optimizer *opt, int i, const char **name);
/** Sets the number of updates applied (Adam's t), to restore a saved
 * optimiser with its state tensors. steps must be in [0, INT64_MAX - 1]
 * (a step never leaves a larger count, see nb_optimizer_step). Returns
 * NB_OK, or NB_ERR_ARG with the error recorded on the graph and the count
 * unchanged (NB_ERR_ARG alone for a NULL opt). */
NB_API int nb_optimizer_set_steps(nb_optimizer *opt, int64_t steps);

/** Scales the gradients of params (all trainable parameters when n is 0) so
 * that their global L2 norm is at most max_norm, by max_norm / norm when
 * the norm exceeds it; frozen parameters and those without a gradient are
 * left out. Returns NB_OK or a negative code (error recorded on the
 * graph): NB_ERR_ARG for max_norm not > 0 or a bad list, NB_ERR_NONFINITE
 * (gradients left as they were) when the norm is NaN or infinite.
 * @param g        the graph of the parameters
 * @param n        entries of params; 0 for every trainable parameter
 * @param params   the parameters (may be NULL when n is 0)
 * @param max_norm the largest global norm allowed, > 0
 * @param norm if not NULL, receives the norm before scaling (also the NaN
 *             or infinity of NB_ERR_NONFINITE; NaN on any other error) */
NB_API int nb_clip_grad_norm(nb_graph *g, int n, nb_node *const *params,
                             double max_norm, double *norm);

/** The kinds of learning-rate schedule.
 * lr(t) for t = 0, 1, 2, ... (epochs or steps, as the caller counts):
 * ```text
 *   constant     lr0
 *   step         lr0 gamma^floor(t / step_size)
 *   exponential  lr0 gamma^t
 *   inverse time lr0 / (1 + decay t)                  (the 1/t schedule)
 *   cosine       min_lr + (lr0 - min_lr) (1 + cos(pi t / period)) / 2,
 *                held at min_lr for t >= period
 * ```
 * Bad fields give NaN: lr0 < 0; gamma <= 0 (step, exponential);
 * step_size <= 0 (step); decay < 0 (inverse time); period <= 0, min_lr < 0
 * or min_lr > lr0 (cosine); a NaN or infinity in a field the kind uses; an
 * unknown kind; t < 0; a NULL schedule. Fields the kind does not use are
 * ignored. gamma > 1 (a growing rate) is allowed.
 */
typedef enum nb_schedule_kind {
    NB_SCHEDULE_CONSTANT = 0, /**< lr0 */
    NB_SCHEDULE_STEP,         /**< lr0 gamma^floor(t / step_size) */
    NB_SCHEDULE_EXPONENTIAL,  /**< lr0 gamma^t */
    NB_SCHEDULE_INVERSE_TIME, /**< lr0 / (1 + decay t) */
    NB_SCHEDULE_COSINE        /**< cosine from lr0 down to min_lr over period */
} nb_schedule_kind;

/** A learning-rate schedule; fields the kind does not use are ignored. */
typedef struct nb_schedule {
    nb_schedule_kind kind; /**< the schedule's shape */
    double lr0;            /**< the rate at t = 0 */
    double gamma;      /**< step, exponential */
    int64_t step_size; /**< step */
    double decay;      /**< inverse time */
    int64_t period;    /**< cosine */
    double min_lr;     /**< cosine */
} nb_schedule;

/** The learning rate at t, or NaN for a schedule with bad fields. */
NB_API double nb_schedule_lr(const nb_schedule *s, int64_t t);

#ifdef __cplusplus
}
#endif

#endif
