/* The graph and optimiser that the parameter and checkpoint fuzzers load
 * into, and a snapshot of every piece of state a load may change: each
 * parameter's value, each optimiser state tensor, the step count, the
 * learning rate and the RNG. A failed load must leave all of it as it was. */
#ifndef NABLA_FUZZ_STATE_H
#define NABLA_FUZZ_STATE_H

#include "fuzz_util.h"

#define FUZZ_MAX_TENSORS 64

struct fuzz_model {
    nb_graph *g;
    nb_optimizer *opt;
};

struct fuzz_snapshot {
    int n_params, n_states;
    nb_tensor *params[FUZZ_MAX_TENSORS];
    nb_tensor *states[FUZZ_MAX_TENSORS];
    int64_t steps;
    double lr;
    uint64_t rng[4];
};

/* Parameters of two dtypes and ranks 0 to 2, one frozen, trained by Adam
 * for two steps so that every state tensor holds something non-zero. */
static inline struct fuzz_model fuzz_model_new(void)
{
    struct fuzz_model m;
    m.g = nb_graph_new();
    nb_graph *g = m.g;
    nb_node *w = nb_param(g, "layer.W", NB_F32, 2, (const int64_t[]){3, 2});
    nb_node *b = nb_param(g, "layer.b", NB_F32, 1, (const int64_t[]){2});
    nb_node *s = nb_param(g, "scale", NB_F64, 0, NULL);
    nb_node *f = nb_param(g, "frozen", NB_F32, 1, (const int64_t[]){2});
    nb_param_set_trainable(g, f, false);
    nb_node *x = nb_input(g, "x", NB_F32, 2, (const int64_t[]){1, 3});
    nb_node *y = nb_add(g, nb_add(g, nb_matmul(g, x, w), b), f);
    /* "scale" (f64) stays out of the loss: no gradient, state still saved. */
    nb_node *loss = nb_sum(g, nb_tanh(g, y));
    nb_tensor_set(nb_node_value(s), 0, 2.5);
    FUZZ_CHECK(loss != NULL, "%s", nb_graph_error(g));
    for (int64_t i = 0; i < 6; i++)
        nb_tensor_set(nb_node_value(w), i, 0.1 * (double)(i + 1));
    nb_tensor_fill(nb_node_value(f), 0.25);
    nb_feed(g, x, 2, (const int64_t[]){1, 3}, (const float[]){1, -2, 3});
    m.opt = nb_optimizer_new(g, &(nb_optim_config){.kind = NB_OPTIM_ADAM}, 0,
                             NULL);
    FUZZ_CHECK(m.opt != NULL, "%s", nb_graph_error(g));
    for (int step = 0; step < 2; step++)
        FUZZ_CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK &&
                       nb_optimizer_step(m.opt) == NB_OK,
                   "%s", nb_graph_error(g));
    nb_graph_seed(g, 1234);
    return m;
}

static inline void fuzz_snapshot_take(const struct fuzz_model *m, struct fuzz_snapshot *s)
{
    memset(s, 0, sizeof *s);
    for (int64_t id = 0; id < nb_graph_node_count(m->g); id++) {
        nb_node *n = nb_graph_node(m->g, id);
        if (nb_node_get_kind(n) == NB_NODE_PARAM && s->n_params < FUZZ_MAX_TENSORS)
            s->params[s->n_params++] = fuzz_copy(nb_node_value(n));
    }
    if (m->opt) {
        s->n_states = nb_optimizer_state_count(m->opt);
        for (int i = 0; i < s->n_states && i < FUZZ_MAX_TENSORS; i++)
            s->states[i] = fuzz_copy(nb_optimizer_state(m->opt, i, NULL));
        s->steps = nb_optimizer_steps(m->opt);
        s->lr = nb_optimizer_lr(m->opt);
    }
    nb_rng_get_state(m->g, s->rng);
}

/* Aborts naming the first piece of state that differs from the snapshot. */
static inline void fuzz_snapshot_check(const struct fuzz_model *m,
                                const struct fuzz_snapshot *s)
{
    int k = 0;
    for (int64_t id = 0; id < nb_graph_node_count(m->g); id++) {
        nb_node *n = nb_graph_node(m->g, id);
        if (nb_node_get_kind(n) != NB_NODE_PARAM || k >= FUZZ_MAX_TENSORS)
            continue;
        FUZZ_CHECK(fuzz_same_bits(nb_node_value(n), s->params[k]),
                   "a failed load changed parameter '%s'", nb_node_name(n));
        k++;
    }
    if (m->opt) {
        FUZZ_CHECK(nb_optimizer_state_count(m->opt) == s->n_states, "state count");
        for (int i = 0; i < s->n_states && i < FUZZ_MAX_TENSORS; i++) {
            const char *name = NULL;
            nb_tensor *t = nb_optimizer_state(m->opt, i, &name);
            FUZZ_CHECK(fuzz_same_bits(t, s->states[i]),
                       "a failed load changed optimiser state '%s'", name);
        }
        FUZZ_CHECK(nb_optimizer_steps(m->opt) == s->steps,
                   "a failed load changed the step count");
        double lr = nb_optimizer_lr(m->opt);
        FUZZ_CHECK(memcmp(&lr, &s->lr, sizeof lr) == 0,
                   "a failed load changed the learning rate");
    }
    uint64_t rng[4];
    nb_rng_get_state(m->g, rng);
    FUZZ_CHECK(memcmp(rng, s->rng, sizeof rng) == 0,
               "a failed load changed the RNG state");
}

static inline void fuzz_snapshot_free(struct fuzz_snapshot *s)
{
    for (int i = 0; i < s->n_params; i++)
        nb_tensor_free(s->params[i]);
    for (int i = 0; i < s->n_states && i < FUZZ_MAX_TENSORS; i++)
        nb_tensor_free(s->states[i]);
}

/* A failed load: a negative code, and a message on the graph naming the
 * file. */
static inline void fuzz_check_failure(nb_graph *g, int rc, const char *path)
{
    const char *msg = nb_graph_error(g);
    FUZZ_CHECK(rc < 0, "rc %d", rc);
    FUZZ_CHECK(msg != NULL, "failed load (%d) left no message", rc);
    FUZZ_CHECK(strstr(msg, path) != NULL, "message '%s' does not name %s", msg,
               path);
}

#endif
