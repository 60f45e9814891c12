/* Vanishing gradients in a deep sigmoid network, and the two classic
 * shortcuts around them: residual and dense connections.
 *
 * Backpropagation multiplies the error signal, layer by layer, by
 * diag(act'(s_l)) W_l^T. The logistic sigmoid's derivative is at most 1/4,
 * so through a stack of sigmoid layers with weights of order one the
 * signal shrinks geometrically and the first layers hardly learn (Hochreiter
 * 1991; Glorot & Bengio 2010). Three networks of the same depth (default
 * 10 hidden layers of 64 sigmoid units, Glorot-initialised) are built from
 * plain nabla ops:
 *
 *   plain     h_{l+1} = f(h_l W_l + b_l)
 *   residual  h_{l+1} = h_l + f(h_l W_l + b_l)        (He et al., 2016):
 *             d h_{l+1} / d h_l = I + ..., an identity path for the error
 *   dense     h_{l+1} = f([h_1 | h_2 | ... | h_l] W_l + b_l), and the
 *             output reads [h_1 | ... | h_L]           (Huang et al., 2017):
 *             every layer is one step from the loss
 *
 * The program prints the norm of d loss / d W for every layer at the
 * initial weights (one forward and one backward on the same batch for each
 * network), then trains all three on a small synthetic task with the same
 * plain SGD and prints their losses per epoch. The task is XOR lifted to
 * 16 dimensions: x ~ N(0, I), label = [x_0 > 0] xor [x_1 > 0], the other 14
 * coordinates noise; no linear classifier beats chance on it.
 *
 * Expect the plain net's first-layer gradient to be about a millionth of
 * the others' and its loss to stay at chance, while both shortcut nets
 * learn. (Each sigmoid branch adds about 1/2 to every unit of the residual
 * stream, so the residual net starts with large logits and a high loss,
 * which it sheds within a few epochs.)
 *
 *   build/examples/residual [--depth 10] [--act sigmoid|tanh] [--epochs 20]
 *   build/examples/residual --test-size      seconds-long self-check
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"
#include "nabla/nabla.h"

#define IN 16
#define MAX_DEPTH 32

typedef enum arch { PLAIN, RESIDUAL, DENSE, N_ARCH } arch;
static const char *const arch_name[N_ARCH] = {"plain", "residual", "dense"};

typedef struct deepnet {
    nb_graph *g;
    int depth;
    nb_node *W[MAX_DEPTH]; /* the hidden layers' weights, first to last */
    nb_model model;
} deepnet;

static int build(deepnet *d, arch a, int depth, int64_t width,
                 nb_activation act, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->depth = depth;
    nb_graph *g = d->g = nb_graph_new();
    if (!g)
        return NB_ERR_NOMEM;
    nb_graph_seed(g, seed);
    nb_node *x = nb_input(g, "x", NB_F32, 2, (int64_t[]){NB_DYNAMIC, IN});
    nb_node *y = nb_input(g, "label", NB_F32, 1, (int64_t[]){NB_DYNAMIC});
    nb_node *outs[MAX_DEPTH]; /* h_1 ... h_l */
    nb_node *h = x;
    for (int l = 0; l < depth; l++) {
        char name[32];
        snprintf(name, sizeof name, "%s.%d", arch_name[a], l + 1);
        /* The first layer maps the input to the width; after it the three
         * networks differ only in what each layer reads and adds. */
        nb_node *in = h;
        if (a == DENSE && l > 0)
            in = nb_concat(g, l, outs, 1);
        nb_linear lin = {0};
        nb_node *s = nb_linear_layer(g, in, width, true, name,
                                     NB_INIT_XAVIER_UNIFORM, act, &lin);
        nb_node *f = nb_activate(g, s, act, 0);
        h = (a == RESIDUAL && l > 0) ? nb_add(g, h, f) : f;
        d->W[l] = lin.W;
        outs[l] = h;
    }
    nb_node *top = a == DENSE ? nb_concat(g, depth, outs, 1) : h;
    nb_node *logits = nb_linear_layer(
        g, top, 2, true, "out", NB_INIT_XAVIER_UNIFORM, NB_ACT_LINEAR, NULL);
    d->model = (nb_model){.x = x,
                          .y = y,
                          .loss = nb_softmax_ce_index_loss(g, logits, y),
                          .output = logits};
    if (!d->model.loss) {
        fprintf(stderr, "residual: building the %s net: %s\n", arch_name[a],
                ex_graph_error(g));
        return NB_ERR_ARG;
    }
    return NB_OK;
}

/* n examples of XOR in IN dimensions, drawn with g's RNG. */
static int make_xor(nb_graph *g, int64_t n, nb_dataset *ds)
{
    ds->x = nb_tensor_new(NB_F32, 2, (int64_t[]){n, IN});
    ds->y = nb_tensor_new(NB_F32, 1, (int64_t[]){n});
    if (!ds->x || !ds->y)
        return NB_ERR_NOMEM;
    float *x = nb_tensor_f32(ds->x), *y = nb_tensor_f32(ds->y);
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < IN; j++)
            x[i * IN + j] = (float)nb_rng_normal(g);
        y[i] = (float)((x[i * IN] > 0) != (x[i * IN + 1] > 0));
    }
    return NB_OK;
}

typedef struct history {
    double loss[1000];
    int64_t n;
} history;

static bool record(int64_t epoch, const nb_metrics *train,
                   const nb_metrics *val, void *user)
{
    (void)epoch;
    (void)val;
    history *h = user;
    if (h->n < 1000)
        h->loss[h->n++] = train->loss;
    return true;
}

int main(int argc, char **argv)
{
    bool test_size = ex_has_flag(argc, argv, "--test-size");
    int64_t depth = 10, width = 64, epochs = test_size ? 20 : 30;
    int64_t n_train = 2000, batch = 32, seed = 1;
    double lr = 0.1;
    const char *act_name = "sigmoid";
    const ex_flag flags[] = {
        {"--depth", EX_INT, &depth, "hidden layers"},
        {"--width", EX_INT, &width, "units per hidden layer"},
        {"--act", EX_STRING, &act_name,
         "hidden activation (sigmoid, tanh, relu, ...)"},
        {"--epochs", EX_INT, &epochs, "training epochs (0: gradients only)"},
        {"--train", EX_INT, &n_train, "training examples"},
        {"--batch", EX_INT, &batch, "mini-batch size"},
        {"--lr", EX_DOUBLE, &lr, "SGD learning rate (momentum 0.9)"},
        {"--seed", EX_INT, &seed, "seed"},
        {"--test-size", EX_BOOL, &test_size,
         "small, fast run that checks itself"},
    };
    int rc = ex_parse_flags(argc, argv,
                            "Gradient norms and training of plain, residual "
                            "and dense deep nets.",
                            flags, (int)(sizeof flags / sizeof flags[0]));
    if (rc >= 0)
        return rc;
    rc = 0;
    int act = nb_activation_from_name(act_name);
    if (depth < 2 || depth > MAX_DEPTH || width < 1 || n_train < 1 ||
        batch < 1 || epochs > 1000 || !(lr > 0) || act < 0 ||
        act == NB_ACT_SOFTMAX) {
        fprintf(stderr, "residual: bad option value (see --help)\n");
        return 2;
    }

    nb_dataset train = {0}, test = {0};
    deepnet net[N_ARCH] = {{0}};
    nb_graph *rng = nb_graph_new();
    if (rng)
        nb_graph_seed(rng, (uint64_t)seed);
    if (!rng || make_xor(rng, n_train, &train) || make_xor(rng, 1000, &test)) {
        fprintf(stderr, "residual: out of memory\n");
        rc = 1;
        goto done;
    }
    for (int a = 0; a < N_ARCH; a++)
        if (build(&net[a], (arch)a, (int)depth, width, (nb_activation)act,
                  (uint64_t)seed)) {
            rc = 1;
            goto done;
        }

    /* ---- gradients at the initial weights, on one shared batch ---- */
    int64_t nb = n_train < 256 ? n_train : 256;
    double norm[N_ARCH][MAX_DEPTH], loss0[N_ARCH];
    for (int a = 0; a < N_ARCH; a++) {
        deepnet *d = &net[a];
        if (nb_feed(d->g, d->model.x, 2, (int64_t[]){nb, IN},
                    nb_tensor_cdata(train.x)) ||
            nb_feed(d->g, d->model.y, 1, (int64_t[]){nb},
                    nb_tensor_cdata(train.y)) ||
            nb_forward(d->g, d->model.loss) ||
            nb_backward(d->g, d->model.loss)) {
            fprintf(stderr, "residual: %s\n", ex_graph_error(d->g));
            rc = 1;
            goto done;
        }
        loss0[a] = nb_tensor_get(nb_node_value(d->model.loss), 0);
        for (int l = 0; l < depth; l++)
            norm[a][l] = ex_tensor_norm(nb_node_grad(d->W[l]));
    }
    printf("%lld hidden layers of %lld %s units, Glorot-uniform weights\n",
           (long long)depth, (long long)width, act_name);
    printf("||d loss / d W_l|| at initialisation (batch of %lld):\n\n",
           (long long)nb);
    printf("layer %12s %12s %12s\n", arch_name[0], arch_name[1], arch_name[2]);
    for (int l = 0; l < depth; l++)
        printf("%5d %12.3e %12.3e %12.3e\n", l + 1, norm[PLAIN][l],
               norm[RESIDUAL][l], norm[DENSE][l]);
    double ratio_res = norm[RESIDUAL][0] / norm[PLAIN][0];
    double ratio_dense = norm[DENSE][0] / norm[PLAIN][0];
    printf("\nfirst layer vs last layer: plain %.1e, residual %.1e, dense "
           "%.1e\n",
           norm[PLAIN][0] / norm[PLAIN][depth - 1],
           norm[RESIDUAL][0] / norm[RESIDUAL][depth - 1],
           norm[DENSE][0] / norm[DENSE][depth - 1]);
    printf("first layer, against plain: residual %.0fx, dense %.0fx\n",
           ratio_res, ratio_dense);
    /* Each sigmoid branch adds about 1/2 to every unit of the residual
     * stream, so its top layer, and the logits, start large. */
    printf("loss at initialisation: plain %.3f, residual %.3f, dense %.3f\n",
           loss0[PLAIN], loss0[RESIDUAL], loss0[DENSE]);

    /* ---- training ---- */
    history hist[N_ARCH] = {{{0}, 0}};
    double acc[N_ARCH] = {0};
    if (epochs > 0) {
        printf("\nXOR in %d dimensions: %lld training, %lld test examples; "
               "SGD lr %g momentum 0.9, batch %lld\n",
               IN, (long long)n_train, (long long)nb_dataset_size(&test), lr,
               (long long)batch);
        for (int a = 0; a < N_ARCH; a++) {
            deepnet *d = &net[a];
            nb_optim_config oc = {
                .kind = NB_OPTIM_SGD, .lr = lr, .momentum = 0.9};
            nb_optimizer *opt = nb_optimizer_new(d->g, &oc, 0, NULL);
            nb_train_config tc = {.epochs = epochs,
                                  .batch_size = batch,
                                  .progress = NB_PROGRESS_OFF,
                                  .on_epoch = record,
                                  .user = &hist[a]};
            nb_metrics m = {0};
            if (!opt ||
                nb_train(d->g, &d->model, opt, &train, NULL, &tc, NULL) ||
                nb_evaluate(d->g, &d->model, &test, 1000, &m)) {
                fprintf(stderr, "residual: %s\n", ex_graph_error(d->g));
                nb_optimizer_free(opt);
                rc = 1;
                goto done;
            }
            acc[a] = m.accuracy;
            nb_optimizer_free(opt);
        }
        printf("\nmean training loss per epoch (chance: ln 2 = 0.693)\n");
        printf("epoch %10s %10s %10s\n", arch_name[0], arch_name[1],
               arch_name[2]);
        for (int64_t e = 0; e < hist[0].n; e++)
            if (e < 5 || e % 5 == 4 || e == hist[0].n - 1)
                printf("%5lld %10.4f %10.4f %10.4f\n", (long long)e + 1,
                       hist[PLAIN].loss[e], hist[RESIDUAL].loss[e],
                       hist[DENSE].loss[e]);
        printf("test accuracy: plain %.1f%%, residual %.1f%%, dense %.1f%%\n",
               100 * acc[PLAIN], 100 * acc[RESIDUAL], 100 * acc[DENSE]);
    }

    /* The shortcut networks keep the first layer's gradient orders of
     * magnitude above the plain one's. */
    if (!(ratio_res >= 100) || !(ratio_dense >= 100)) {
        printf("FAIL: the first layer's gradient is not 100x the plain "
               "net's (residual %.1fx, dense %.1fx)\n",
               ratio_res, ratio_dense);
        rc = 1;
    }
    if (epochs > 0 && test_size &&
        !(acc[RESIDUAL] > acc[PLAIN] + 0.2 && acc[DENSE] > acc[PLAIN] + 0.2)) {
        printf("FAIL: a shortcut net does not beat the plain one by 20 "
               "points (residual %.1f%%, dense %.1f%%, plain %.1f%%)\n",
               100 * acc[RESIDUAL], 100 * acc[DENSE], 100 * acc[PLAIN]);
        rc = 1;
    }
    if (!rc && test_size)
        printf("test-size run: OK\n");

done:
    for (int a = 0; a < N_ARCH; a++)
        nb_graph_free(net[a].g);
    nb_graph_free(rng);
    nb_dataset_free(&train);
    nb_dataset_free(&test);
    return rc;
}
