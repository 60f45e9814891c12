/* nabla — optimisers and learning-rate schedules.
 *
 * An optimiser updates parameters from the gradients of the latest
 * nb_backward. It holds a list of parameter nodes and, per parameter, the
 * state its rule needs (velocity, moment estimates). Parameters that are
 * frozen (nb_param_set_trainable false) or that received no gradient are
 * skipped, and their state is left as it was.
 *
 * Update rules, with g the gradient after regularisation and clipping, lr
 * the current learning rate, t the step count starting at 1:
 *   SGD        w -= lr g
 *   momentum   v = mu v + g;            w -= lr v           (PyTorch's form)
 *   Nesterov   v = mu v + g;            w -= lr (g + mu v)
 *   RMSprop    s = rho s + (1-rho) g^2; w -= lr g / (sqrt(s) + eps)
 *   Adam       m = b1 m + (1-b1) g;     v = b2 v + (1-b2) g^2;
 *              w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *   AdamW      Adam, with decoupled decay: w -= lr wd w before the step.
 * Regularisation enters g (for every kind but AdamW's decay):
 *   L2: g += weight_decay w      L1: g += l1 sign(w)
 * Clipping by global norm: when ||g||_2 over all parameters exceeds
 * clip_norm, every g is scaled by clip_norm / ||g||.
 * Regularisation applies to every parameter of rank >= 2 (weights) and not
 * to vectors (biases), unless decay_biases is set.
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

typedef enum nb_optim_kind {
    NB_OPTIM_SGD = 0, /* with momentum > 0 it is momentum SGD */
    NB_OPTIM_RMSPROP,
    NB_OPTIM_ADAM,
    NB_OPTIM_ADAMW
} nb_optim_kind;

typedef struct nb_optim_config {
    nb_optim_kind kind;
    double lr;           /* learning rate (eta) */
    double momentum;     /* SGD: mu; 0 = plain SGD */
    bool nesterov;       /* SGD: Nesterov's look-ahead form */
    double beta1, beta2; /* Adam(W): 0 means 0.9 and 0.999 */
    double rho;          /* RMSprop decay: 0 means 0.99 */
    double eps;          /* Adam(W), RMSprop: 0 means 1e-8 */
    double weight_decay; /* L2 coefficient (AdamW: decoupled decay) */
    double l1;           /* L1 coefficient */
    bool decay_biases;   /* also regularise parameters of rank < 2 */
    double clip_norm;    /* clip by global norm; 0 = no clipping */
} nb_optim_config;

typedef struct nb_optimizer nb_optimizer;

/* An optimiser over the given parameters, or over every parameter of the
 * graph when n is 0 (params may then be NULL). NULL on error (recorded on
 * the graph). */
nb_optimizer *nb_optimizer_new(nb_graph *g, const nb_optim_config *config,
                               int n, nb_node *const *params);
void nb_optimizer_free(nb_optimizer *opt);

/* One update from the gradients of the latest backward. Returns NB_OK or a
 * negative code (error recorded on the graph). */
int nb_optimizer_step(nb_optimizer *opt);

/* The global gradient norm seen by the latest step, before clipping. */
double nb_optimizer_grad_norm(const nb_optimizer *opt);

double nb_optimizer_lr(const nb_optimizer *opt);
void nb_optimizer_set_lr(nb_optimizer *opt, double lr);
/* Updates applied so far (Adam's t). */
int64_t nb_optimizer_steps(const nb_optimizer *opt);
const nb_optim_config *nb_optimizer_config(const nb_optimizer *opt);

/* The parameters the optimiser updates. */
int nb_optimizer_param_count(const nb_optimizer *opt);
nb_node *nb_optimizer_param(const nb_optimizer *opt, int i);

/* State, for checkpoints: `nb_optimizer_state_count` tensors, each with a
 * name such as "momentum/<param name>" or "adam.m/<param name>", of the
 * parameter's shape and dtype. They are live: writing them (with
 * nb_optimizer_set_steps) restores a saved optimiser exactly. */
int nb_optimizer_state_count(const nb_optimizer *opt);
nb_tensor *nb_optimizer_state(nb_optimizer *opt, int i, const char **name);
void nb_optimizer_set_steps(nb_optimizer *opt, int64_t steps);

/* Scales the gradients of params (all trainable parameters when n is 0) so
 * that their global L2 norm is at most max_norm; returns the norm before
 * scaling, or a negative code. */
double nb_clip_grad_norm(nb_graph *g, int n, nb_node *const *params,
                         double max_norm);

/* ---- learning-rate schedules ----
 * lr(t) for t = 0, 1, 2, ... (epochs or steps, as the caller counts):
 *   constant     lr0
 *   step         lr0 gamma^floor(t / step_size)
 *   exponential  lr0 gamma^t
 *   inverse time lr0 / (1 + decay t)                  (the 1/t schedule)
 *   cosine       min_lr + (lr0 - min_lr) (1 + cos(pi t / period)) / 2,
 *                held at min_lr after `period`
 */
typedef enum nb_schedule_kind {
    NB_SCHEDULE_CONSTANT = 0,
    NB_SCHEDULE_STEP,
    NB_SCHEDULE_EXPONENTIAL,
    NB_SCHEDULE_INVERSE_TIME,
    NB_SCHEDULE_COSINE
} nb_schedule_kind;

typedef struct nb_schedule {
    nb_schedule_kind kind;
    double lr0;
    double gamma;      /* step, exponential */
    int64_t step_size; /* step */
    double decay;      /* inverse time */
    int64_t period;    /* cosine */
    double min_lr;     /* cosine */
} nb_schedule;

/* The learning rate at t, or NaN for a schedule with bad fields. */
double nb_schedule_lr(const nb_schedule *s, int64_t t);

#ifdef __cplusplus
}
#endif

#endif
