/* End-to-end benchmark: the Fashion-MNIST MLP 784-256-128-10 (ReLU hidden
 * units, softmax cross-entropy on the logits, SGD lr 0.05 momentum 0.9,
 * PyTorch's default initialisation), built with nb_mlp_build and trained
 * by the loop of train_loop.h (which says what each figure means). It is
 * the same workload as the PyTorch peer shared/peers/torch/mlp.py.
 *
 *   mlp [--batch B] [--epochs E] [--seed S] [--lr LR] [--data DIR]
 *       [--limit N]
 */
#include "train_loop.h"

static int build(nb_graph *g, bench_model *m)
{
    nb_mlp mlp;
    nb_mlp_spec spec = {.n_layers = 3,
                        .sizes = (const int64_t[]){784, 256, 128, 10},
                        .hidden = NB_ACT_RELU,
                        .output = NB_ACT_SOFTMAX,
                        .init = NB_INIT_TORCH};
    int rc = nb_mlp_build(g, m->x, &spec, &mlp);
    if (rc != NB_OK)
        return rc;
    m->logits = mlp.logits;
    m->loss = nb_mlp_loss(g, &mlp, m->labels);
    return m->loss ? NB_OK : NB_ERR_ARG;
}

int main(int argc, char **argv)
{
    return bench_train_main(argc, argv, "mlp", 3, build);
}
