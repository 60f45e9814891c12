/* An autoencoder on Fashion-MNIST: 784 -> 32 -> 784.
 *
 * The network is trained to reproduce its input through a 32-unit
 * bottleneck, h = act(x W1 + b1), x' = sigmoid(h W2 + b2), minimising the
 * binary cross-entropy between x and x' (pixels in [0, 1] read as
 * probabilities), computed from the logits in its softplus form
 * mean(softplus(z) - x z), which never saturates. It is the classic
 * nonlinear cousin of PCA (Hinton & Salakhutdinov, 2006): 32 numbers per
 * image instead of 784, learned without labels.
 *
 * With --conv the encoder is convolutional and the decoder is made of
 * transposed convolutions (build_conv): the same 32-number code, reached
 * through layers that share their weights over the image's positions.
 *
 * It reports the test set's reconstruction error, mean (x - x')^2 per
 * pixel, beside a trivial baseline that "reconstructs" every image as the
 * mean training image, and draws one test image of each class (top row)
 * above its reconstruction (bottom row) into autoencoder.png, .svg and
 * .pdf.
 *
 *   build/examples/autoencoder [--epochs N] [--out autoencoder]
 *   build/examples/autoencoder --conv           the convolutional variant
 *   build/examples/autoencoder --test-size      seconds-long self-check
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"
#include "nabla/nabla.h"
#include "plot/plot.h"

#define PIX 784
#define SIDE 28

/* Mean over examples and pixels of (x - mean image)^2. */
static double mean_image_mse(const nb_tensor *x, const double *mean)
{
    const float *p = nb_tensor_cdata(x);
    int64_t n = nb_tensor_dim(x, 0);
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < PIX; j++) {
            double d = p[i * PIX + j] - mean[j];
            s += d * d;
        }
    return s / ((double)n * PIX);
}

/* One tile per class: the test image (top row) above its reconstruction
 * (bottom row), each 28x28 image enlarged as blocks to TILE pixels. */
static int draw_pairs(const char *prefix, const float *top,
                      const float *bottom, int64_t code)
{
    char title[96];
    snprintf(title, sizeof title,
             "one test image per class, through the %lld-unit bottleneck "
             "and back",
             (long long)code);
    enum { TILE = 84, GAP = 12, LEFT = 150, TOP = 44 };
    static unsigned char rgb[20][3 * PIX];
    pl_panel panel[20];
    pl_label rows[2];
    for (int t = 0; t < 20; t++) {
        const float *src = (t < 10 ? top : bottom) + (t % 10) * PIX;
        for (int i = 0; i < PIX; i++) {
            float v = src[i] < 0 ? 0 : src[i] > 1 ? 1 : src[i];
            rgb[t][3 * i] = rgb[t][3 * i + 1] = rgb[t][3 * i + 2] =
                (unsigned char)(255 * v + 0.5f);
        }
        /* The class names title the top row; the bottom row sits right
         * under it. */
        int c = t % 10, r = t / 10;
        panel[t] = (pl_panel){
            .x = LEFT + c * (TILE + GAP),
            .y = r ? TOP + PL_TILE_TITLE_H + TILE + GAP : TOP,
            .w = TILE,
            .h = r ? TILE : TILE + PL_TILE_TITLE_H,
            .title = r ? NULL : ex_fashion_class(c),
            .bare = true,
            .image = {SIDE, SIDE, rgb[t], .pixelated = true}};
    }
    for (int r = 0; r < 2; r++)
        rows[r] = (pl_label){
            .x = 20,
            .y = TOP + PL_TILE_TITLE_H + TILE / 2.0 + r * (TILE + GAP),
            .text = r ? "reconstruction" : "test image",
            .bold = true};
    pl_figure fig = {.w = LEFT + 10 * (TILE + GAP) + 8,
                     .h = TOP + PL_TILE_TITLE_H + 2 * TILE + GAP + 14,
                     .title = title,
                     .panels = panel,
                     .npanels = 20,
                     .labels = rows,
                     .nlabels = 2};
    return pl_save(&fig, prefix);
}

/* The MLP's logits: x W1 + b1, the code's activation, then W2, b2. */
static nb_node *build_mlp(nb_graph *g, nb_node *x, int64_t code,
                          nb_activation hidden)
{
    const int64_t sizes[] = {PIX, code, PIX};
    nb_mlp_spec spec = {.n_layers = 2,
                        .sizes = sizes,
                        .hidden = hidden,
                        .output = NB_ACT_SIGMOID,
                        .name = "ae"};
    nb_mlp mlp;
    return nb_mlp_build(g, x, &spec, &mlp) == NB_OK ? mlp.logits : NULL;
}

/* The convolutional autoencoder's logits. Two stride-2 convolutions halve
 * the image twice (28 -> 14 -> 7) while widening the channels, a linear
 * layer squeezes the 32x7x7 maps into the code and another spreads it back,
 * and two stride-2 transposed convolutions undo the halvings: with kernel
 * 3, padding 1 and output padding 1, (H - 1) 2 - 2 + 3 + 1 = 2 H. Each
 * transposed convolution is the gradient of a convolution with respect to
 * its input, so the decoder mirrors the encoder's geometry exactly. */
static nb_node *build_conv(nb_graph *g, nb_node *x, int64_t code,
                           nb_activation hidden)
{
    nb_conv_params down = nb_conv_params_of(2, 1, 1, 1);
    nb_conv_params up = down;
    up.output_padding[0] = up.output_padding[1] = 1;
    nb_node *h = nb_reshape(g, x, 4, (int64_t[]){-1, 1, SIDE, SIDE});
    h = nb_relu(g, nb_conv2d_layer(g, h, 16, 3, 3, &down, true, "enc1",
                                   NB_INIT_DEFAULT, NB_ACT_RELU, NULL));
    h = nb_relu(g, nb_conv2d_layer(g, h, 32, 3, 3, &down, true, "enc2",
                                   NB_INIT_DEFAULT, NB_ACT_RELU, NULL));
    h = nb_reshape(g, h, 2, (int64_t[]){-1, 32 * 7 * 7});
    h = nb_activate(g, nb_linear_layer(g, h, code, true, "code",
                                       NB_INIT_DEFAULT, hidden, NULL),
                    hidden, 0);
    h = nb_relu(g, nb_linear_layer(g, h, 32 * 7 * 7, true, "dec0",
                                   NB_INIT_DEFAULT, NB_ACT_RELU, NULL));
    h = nb_reshape(g, h, 4, (int64_t[]){-1, 32, 7, 7});
    h = nb_relu(g, nb_conv_transpose2d_layer(g, h, 16, 3, 3, &up, true,
                                             "dec1", NB_INIT_DEFAULT,
                                             NB_ACT_RELU, NULL));
    h = nb_conv_transpose2d_layer(g, h, 1, 3, 3, &up, true, "dec2",
                                  NB_INIT_DEFAULT, NB_ACT_SIGMOID, NULL);
    return nb_reshape(g, h, 2, (int64_t[]){-1, PIX});
}

int main(int argc, char **argv)
{
    bool test_size = ex_has_flag(argc, argv, "--test-size");
    bool conv = false;
    int64_t epochs = test_size ? 4 : 20, batch = 64, seed = 1;
    int64_t limit = test_size ? 5000 : 0, bottleneck = 32;
    double lr = 0.002;
    const char *out = "autoencoder", *hidden_name = "relu";
    const ex_flag flags[] = {
        {"--epochs", EX_INT, &epochs, "training epochs"},
        {"--batch", EX_INT, &batch, "mini-batch size"},
        {"--lr", EX_DOUBLE, &lr, "Adam learning rate"},
        {"--code", EX_INT, &bottleneck, "bottleneck width"},
        {"--hidden", EX_STRING, &hidden_name,
         "bottleneck activation (relu, sigmoid, tanh, ...)"},
        {"--conv", EX_BOOL, &conv,
         "convolutional encoder and transposed-convolution decoder"},
        {"--seed", EX_INT, &seed, "seed"},
        {"--limit", EX_INT, &limit, "training images to read, 0 = all"},
        {"--out", EX_STRING, &out, "prefix of the PNG, SVG and PDF of originals and reconstructions"},
        {"--test-size", EX_BOOL, &test_size,
         "small, fast run that checks itself"},
    };
    int rc = ex_parse_flags(argc, argv,
                            "Trains a 784-32-784 autoencoder on "
                            "Fashion-MNIST.",
                            flags, (int)(sizeof flags / sizeof flags[0]));
    if (rc >= 0)
        return rc;
    int hidden = nb_activation_from_name(hidden_name);
    if (epochs < 1 || batch < 1 || bottleneck < 1 || !(lr > 0) || hidden < 0 ||
        hidden == NB_ACT_SOFTMAX) {
        fprintf(stderr, "autoencoder: bad option value (see --help)\n");
        return 2;
    }

    nb_dataset train, test;
    rc = ex_load_fashion("autoencoder", &train, &test, limit, 0);
    if (rc)
        return rc;
    /* The target of every example is the example itself; the test labels
     * are kept to pick one image of each class for the picture. */
    nb_tensor *test_labels = test.y;
    nb_tensor_free(train.y);
    train.y = ex_tensor_clone(train.x);
    test.y = ex_tensor_clone(test.x);
    double *mean = malloc(PIX * sizeof *mean), *sd = malloc(PIX * sizeof *sd);
    nb_graph *g = nb_graph_new();
    nb_optimizer *opt = NULL;
    nb_node *x = NULL, *t = NULL, *bce = NULL, *mse = NULL, *output = NULL;
    if (!train.y || !test.y || !mean || !sd || !g) {
        fprintf(stderr, "autoencoder: out of memory\n");
        rc = 1;
        goto done;
    }

    nb_graph_seed(g, (uint64_t)seed);
    x = nb_input(g, "x", NB_F32, 2, (int64_t[]){NB_DYNAMIC, PIX});
    t = nb_input(g, "target", NB_F32, 2, (int64_t[]){NB_DYNAMIC, PIX});
    nb_node *z = conv ? build_conv(g, x, bottleneck, (nb_activation)hidden)
                      : build_mlp(g, x, bottleneck, (nb_activation)hidden);
    output = nb_sigmoid(g, z);
    bce = nb_bce_logits_loss(g, z, t);
    mse = nb_mse_loss(g, output, t);
    nb_optim_config oc = {.kind = NB_OPTIM_ADAM, .lr = lr};
    opt = mse ? nb_optimizer_new(g, &oc, 0, NULL) : NULL;
    if (!opt) {
        fprintf(stderr, "autoencoder: %s\n", ex_graph_error(g));
        rc = 1;
        goto done;
    }
    if (conv)
        printf("convolutional autoencoder 1x28x28 -conv-> 16x14x14 -conv-> "
               "32x7x7 -fc-> %lld -fc-> 32x7x7 -convT-> 16x14x14 -convT-> "
               "1x28x28, %s code, sigmoid output, binary cross-entropy\n",
               (long long)bottleneck, hidden_name);
    else
        printf("autoencoder %d-%lld-%d, %s code, sigmoid output, binary "
               "cross-entropy\n",
               PIX, (long long)bottleneck, PIX, hidden_name);
    printf("train %lld images, Adam lr %g, batch %lld, %lld epochs\n\n",
           (long long)nb_dataset_size(&train), lr, (long long)batch,
           (long long)epochs);
    fflush(stdout);

    /* No output node: accuracy means nothing here, only the loss. */
    nb_model model = {.x = x, .y = t, .loss = bce};
    nb_train_config tc = {.epochs = epochs,
                          .batch_size = batch,
                          .progress = NB_PROGRESS_AUTO,
                          .stream = stdout};
    double t0 = ex_now();
    if (nb_train(g, &model, opt, &train, NULL, &tc, NULL) != NB_OK) {
        fprintf(stderr, "autoencoder: training failed: %s\n",
                ex_graph_error(g));
        rc = 1;
        goto done;
    }
    printf("\ntrained in %.1f s\n", ex_now() - t0);

    nb_model scored = {.x = x, .y = t, .loss = mse};
    nb_metrics m_mse = {0}, m_bce = {0};
    if (nb_evaluate(g, &scored, &test, 1000, &m_mse) != NB_OK ||
        nb_evaluate(g, &model, &test, 1000, &m_bce) != NB_OK) {
        fprintf(stderr, "autoencoder: %s\n", ex_graph_error(g));
        rc = 1;
        goto done;
    }
    nb_status st;
    if (nb_data_column_stats(train.x, mean, sd, &st) != NB_OK) {
        fprintf(stderr, "autoencoder: %s\n", st.message);
        rc = 1;
        goto done;
    }
    double base = mean_image_mse(test.x, mean);
    printf("test set (%lld images): reconstruction MSE %.5f per pixel, "
           "BCE %.4f\n",
           (long long)m_mse.count, m_mse.loss, m_bce.loss);
    printf("baseline, the mean training image:  MSE %.5f per pixel "
           "(%.1fx the autoencoder's)\n",
           base, base / m_mse.loss);

    /* The first test image of each class, and what the network makes of
     * it. */
    static float originals[10 * PIX];
    const float *tx = nb_tensor_cdata(test.x);
    int64_t ntest = nb_dataset_size(&test);
    int have = 0;
    for (int k = 0; k < 10; k++)
        for (int64_t i = 0; i < ntest; i++)
            if ((int)nb_tensor_get(test_labels, i) == k) {
                memcpy(originals + have * PIX, tx + i * PIX,
                       PIX * sizeof(float));
                have++;
                break;
            }
    if (have != 10) {
        fprintf(stderr, "autoencoder: the test set lacks a class\n");
        rc = 1;
        goto done;
    }
    nb_graph_set_training(g, false);
    if (nb_feed(g, x, 2, (int64_t[]){10, PIX}, originals) != NB_OK ||
        nb_forward(g, output) != NB_OK) {
        fprintf(stderr, "autoencoder: %s\n", ex_graph_error(g));
        rc = 1;
        goto done;
    }
    if (draw_pairs(out, originals, nb_tensor_cdata(nb_node_value(output)),
                   bottleneck) != 0) {
        rc = 1;
        goto done;
    }
    printf("%s: one test image per class (top) and its reconstruction "
           "(bottom)\n",
           out);

    if (test_size) {
        /* A few epochs on 5000 images already beat the mean image by far. */
        if (!(m_mse.loss < 0.5 * base)) {
            printf("FAIL: reconstruction MSE %.5f is not below half the "
                   "baseline's %.5f\n",
                   m_mse.loss, base);
            rc = 1;
        } else {
            printf("test-size run: OK\n");
        }
    }

done:
    nb_tensor_free(test_labels);
    nb_optimizer_free(opt);
    nb_graph_free(g);
    free(mean);
    free(sd);
    nb_dataset_free(&train);
    nb_dataset_free(&test);
    return rc;
}
