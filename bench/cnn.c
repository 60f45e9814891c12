/* End-to-end benchmark: the Fashion-MNIST CNN of the PyTorch peer
 * shared/peers/torch/cnn.py, trained by the loop of train_loop.h (which
 * says what each figure means) with SGD lr 0.05 momentum 0.9:
 *
 *   conv3x3(1->32, pad 1) relu maxpool2, conv3x3(32->64, pad 1) relu
 *   maxpool2, linear 3136->128 relu, linear 128->10, softmax cross-entropy
 *
 * composed from the ops a user has in nabla/ops.h (conv2d_bias_act_maxpool:
 * the convolution with its bias, relu and max pooling fused; matmul, a
 * broadcast add of the linear layers' biases, relu), with PyTorch's default
 * initialisation: weights and biases uniform in +-1/sqrt(fan_in) (its
 * kaiming_uniform with a = sqrt(5), and the bias rule of Conv2d and
 * Linear).
 *
 *   cnn [--batch B] [--epochs E] [--seed S] [--lr LR] [--data DIR]
 *       [--limit N]
 */
#include "train_loop.h"

/* A parameter initialised as PyTorch initialises layer weights and
 * biases of this fan-in. */
static nb_node *torch_param(nb_graph *g, const char *name, int rank,
                            const int64_t *shape, double fan_in)
{
    nb_node *p = nb_param(g, name, NB_F32, rank, shape);
    double bound = 1 / sqrt(fan_in);
    if (p && nb_init_uniform(g, p, -bound, bound) != NB_OK)
        return NULL;
    return p;
}

/* conv3x3 (pad 1) with a bias, relu, 2x2 max pooling. */
static nb_node *conv_block(nb_graph *g, nb_node *x, int64_t cin, int64_t cout,
                           const char *wname, const char *bname)
{
    nb_node *w =
        torch_param(g, wname, 4, (int64_t[]){cout, cin, 3, 3}, 9.0 * cin);
    nb_node *b = torch_param(g, bname, 1, (int64_t[]){cout}, 9.0 * cin);
    nb_conv_params same = nb_conv_params_of(1, 1, 1, 1);
    return nb_conv2d_bias_act_maxpool(
        g, x, w, b, &same, NB_CONV_ACT_RELU,
        &(nb_pool2d_params){.kernel = {2, 2}, .stride = {2, 2}});
}

static nb_node *linear(nb_graph *g, nb_node *x, int64_t in, int64_t out,
                       const char *wname, const char *bname)
{
    nb_node *w = torch_param(g, wname, 2, (int64_t[]){in, out}, (double)in);
    nb_node *b = torch_param(g, bname, 1, (int64_t[]){out}, (double)in);
    return nb_add(g, nb_matmul(g, x, w), b);
}

static int build(nb_graph *g, bench_model *m)
{
    nb_node *h = nb_reshape(g, m->x, 4, (int64_t[]){-1, 1, 28, 28});
    h = conv_block(g, h, 1, 32, "conv1.weight", "conv1.bias");
    h = conv_block(g, h, 32, 64, "conv2.weight", "conv2.bias");
    h = nb_reshape(g, h, 2, (int64_t[]){-1, 64 * 7 * 7});
    h = nb_relu(g, linear(g, h, 64 * 7 * 7, 128, "fc1.weight", "fc1.bias"));
    m->logits = linear(g, h, 128, 10, "fc2.weight", "fc2.bias");
    m->loss = nb_softmax_ce_index_loss(g, m->logits, m->labels);
    return m->loss ? NB_OK : NB_ERR_ARG;
}

int main(int argc, char **argv)
{
    return bench_train_main(argc, argv, "cnn", 1, build);
}
