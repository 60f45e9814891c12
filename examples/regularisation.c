/* Overfitting and three cures, on 500 Fashion-MNIST images.
 *
 * A wide MLP (784-512-512-10, ReLU, softmax cross-entropy) has far more
 * weights (about 670 000) than a 500-image training set has constraints:
 * it learns the training set by heart. The same network, data, optimiser
 * and seed are trained five ways:
 *
 *   plain           nothing against overfitting, a fixed number of epochs;
 *   early stopping  stop when the validation loss has not improved for
 *                   `patience` epochs and restore the best epoch's weights
 *                   (nb_train_config.patience);
 *   dropout         during training each pixel is zeroed with probability
 *                   0.2 and each hidden unit with probability 0.5, the
 *                   survivors scaled by 1/(1-p) (Srivastava et al., 2014);
 *   L2              weight decay: the optimiser adds lambda W to each
 *                   weight's gradient, the gradient of lambda/2 ||W||^2;
 *   all three       dropout + L2 + early stopping.
 *
 * 1000 other training images form the validation set that early stopping
 * watches; the 10000-image test set is only looked at at the end. For each
 * variant the program prints accuracy and cross-entropy on all three sets.
 *
 * What to expect: with so few images every variant still fits most of its
 * training set and test accuracy moves by a point or two, but the plain
 * net becomes confidently wrong on unseen images: its test loss is far
 * above its training loss. Each cure narrows that loss gap, and all three
 * together narrow the accuracy gap as well.
 *
 *   build/examples/regularisation [--epochs 100] [--train 500]
 *   build/examples/regularisation --test-size      seconds-long self-check
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"
#include "nabla/nabla.h"

typedef struct variant {
    const char *name;
    double input_dropout, dropout;
    double weight_decay;
    bool early_stopping;
} variant;

typedef struct outcome {
    nb_metrics train, val, test;
    int64_t epochs_run, best_epoch;
    bool stopped_early;
} outcome;

typedef struct setup {
    int64_t width, epochs, batch, patience, seed;
    double lr, input_dropout, dropout, l2;
} setup;

static int run(const variant *v, const setup *s, const nb_dataset *train,
               const nb_dataset *val, const nb_dataset *test, outcome *out)
{
    int rc = 1;
    nb_optimizer *opt = NULL;
    nb_graph *g = nb_graph_new();
    if (!g) {
        fprintf(stderr, "regularisation: out of memory\n");
        return 1;
    }
    nb_graph_seed(g, (uint64_t)s->seed);
    nb_node *x = nb_input(g, "x", NB_F32, 2, (int64_t[]){NB_DYNAMIC, 784});
    nb_node *y = nb_input(g, "label", NB_F32, 1, (int64_t[]){NB_DYNAMIC});
    const int64_t sizes[] = {784, s->width, s->width, 10};
    nb_mlp_spec spec = {.n_layers = 3,
                        .sizes = sizes,
                        .hidden = NB_ACT_RELU,
                        .output = NB_ACT_SOFTMAX,
                        .dropout = v->dropout,
                        .name = "mlp"};
    nb_mlp mlp;
    nb_model model = {.x = x, .y = y};
    /* The MLP builder drops hidden units; dropping pixels comes first. */
    nb_node *in = v->input_dropout > 0 ? nb_dropout(g, x, v->input_dropout) : x;
    if (in && nb_mlp_build(g, in, &spec, &mlp) == NB_OK) {
        model.loss = nb_mlp_loss(g, &mlp, y);
        model.output = mlp.logits;
    }
    nb_optim_config oc = {.kind = NB_OPTIM_SGD,
                          .lr = s->lr,
                          .momentum = 0.9,
                          .weight_decay = v->weight_decay};
    if (model.loss)
        opt = nb_optimizer_new(g, &oc, 0, NULL);
    nb_train_config tc = {.epochs = s->epochs,
                          .batch_size = s->batch,
                          .patience = v->early_stopping ? s->patience : 0,
                          .progress = NB_PROGRESS_OFF};
    nb_train_result res;
    if (opt && nb_train(g, &model, opt, train, val, &tc, &res) == NB_OK &&
        nb_evaluate(g, &model, train, 1000, &out->train) == NB_OK &&
        nb_evaluate(g, &model, val, 1000, &out->val) == NB_OK &&
        nb_evaluate(g, &model, test, 1000, &out->test) == NB_OK) {
        out->epochs_run = res.epochs_run;
        out->best_epoch = res.best_epoch;
        out->stopped_early = res.stopped_early;
        rc = 0;
    } else {
        fprintf(stderr, "regularisation: %s: %s\n", v->name, ex_graph_error(g));
    }
    nb_optimizer_free(opt);
    nb_graph_free(g);
    return rc;
}

int main(int argc, char **argv)
{
    bool test_size = ex_has_flag(argc, argv, "--test-size");
    setup s = {.width = test_size ? 256 : 512,
               .epochs = test_size ? 40 : 100,
               .batch = 32,
               .patience = 10,
               .seed = 1,
               .lr = 0.01,
               .input_dropout = 0.2,
               .dropout = 0.5,
               .l2 = 0.02};
    int64_t n_train = 500, n_val = 1000;
    const ex_flag flags[] = {
        {"--train", EX_INT, &n_train, "training images"},
        {"--val", EX_INT, &n_val, "validation images"},
        {"--width", EX_INT, &s.width, "units in each hidden layer"},
        {"--epochs", EX_INT, &s.epochs, "epochs (most, with early stopping)"},
        {"--patience", EX_INT, &s.patience,
         "early stopping: epochs without improvement"},
        {"--batch", EX_INT, &s.batch, "mini-batch size"},
        {"--lr", EX_DOUBLE, &s.lr, "SGD learning rate (momentum 0.9)"},
        {"--dropout", EX_DOUBLE, &s.dropout, "hidden units' drop probability"},
        {"--input-dropout", EX_DOUBLE, &s.input_dropout,
         "pixels' drop probability"},
        {"--l2", EX_DOUBLE, &s.l2, "weight decay lambda"},
        {"--seed", EX_INT, &s.seed, "seed"},
        {"--test-size", EX_BOOL, &test_size,
         "small, fast run that checks itself"},
    };
    int rc = ex_parse_flags(argc, argv,
                            "Compares plain training, early stopping, "
                            "dropout and L2 on a tiny training set.",
                            flags, (int)(sizeof flags / sizeof flags[0]));
    if (rc >= 0)
        return rc;
    if (n_train < 1 || n_val < 1 || s.width < 1 || s.epochs < 1 ||
        s.batch < 1 || s.patience < 1 || !(s.lr > 0) ||
        !(s.dropout >= 0 && s.dropout < 1) ||
        !(s.input_dropout >= 0 && s.input_dropout < 1) || !(s.l2 >= 0)) {
        fprintf(stderr, "regularisation: bad option value (see --help)\n");
        return 2;
    }

    nb_dataset all, test, train = {0}, val = {0};
    rc = ex_load_fashion("regularisation", &all, &test, n_train + n_val, 0);
    if (rc)
        return rc;
    nb_status st;
    if (nb_dataset_size(&all) < n_train + n_val ||
        nb_dataset_slice(&train, &all, 0, n_train, &st) ||
        nb_dataset_slice(&val, &all, n_train, n_val, &st)) {
        fprintf(stderr,
                "regularisation: cannot take %lld + %lld images "
                "from the training file\n",
                (long long)n_train, (long long)n_val);
        rc = 1;
        goto done;
    }

    const variant variants[] = {
        {"plain", 0, 0, 0, false},
        {"early stopping", 0, 0, 0, true},
        {"dropout", s.input_dropout, s.dropout, 0, false},
        {"L2 weight decay", 0, 0, s.l2, false},
        {"all three", s.input_dropout, s.dropout, s.l2, true},
    };
    enum { NV = sizeof variants / sizeof variants[0] };
    outcome out[NV];
    memset(out, 0, sizeof out);

    printf("MLP 784-%lld-%lld-10 (ReLU), %lld training, %lld validation, "
           "%lld test images\n",
           (long long)s.width, (long long)s.width, (long long)n_train,
           (long long)n_val, (long long)nb_dataset_size(&test));
    printf("SGD lr %g momentum 0.9, batch %lld, up to %lld epochs; dropout "
           "p = %g (pixels %g), L2 lambda = %g, patience %lld\n\n",
           s.lr, (long long)s.batch, (long long)s.epochs, s.dropout,
           s.input_dropout, s.l2, (long long)s.patience);
    double t0 = ex_now();
    for (int k = 0; k < NV; k++) {
        printf("training: %s...\n", variants[k].name);
        fflush(stdout);
        if ((rc = run(&variants[k], &s, &train, &val, &test, &out[k])))
            goto done;
    }
    printf("%.1f s in all\n\n", ex_now() - t0);

    printf("accuracy          epochs   best    train      val     test  "
           "train-test\n");
    for (int k = 0; k < NV; k++) {
        const outcome *o = &out[k];
        printf("%-16s %7lld %6lld %7.1f%% %7.1f%% %7.1f%% %9.1f%%\n",
               variants[k].name, (long long)o->epochs_run,
               (long long)o->best_epoch, 100 * o->train.accuracy,
               100 * o->val.accuracy, 100 * o->test.accuracy,
               100 * (o->train.accuracy - o->test.accuracy));
    }
    printf("\ncross-entropy                    train      val     test  "
           "test-train\n");
    for (int k = 0; k < NV; k++) {
        const outcome *o = &out[k];
        printf("%-16s %15s %8.3f %8.3f %8.3f %10.3f\n", variants[k].name, "",
               o->train.loss, o->val.loss, o->test.loss,
               o->test.loss - o->train.loss);
    }
    printf("\n(epochs: epochs run; best: the epoch of lowest validation "
           "loss, restored by early stopping)\n");

    /* What holds, for this seed and in theory: the plain net memorises its
     * 500 images; each cure narrows the gap between test and training
     * loss and lowers the test loss, and all three together also narrow
     * the accuracy gap. Accuracy alone moves little here: under every
     * treatment the net still fits nearly all of its training images. */
    int fails = 0;
    double lgap0 = out[0].test.loss - out[0].train.loss;
    double agap0 = out[0].train.accuracy - out[0].test.accuracy;
    if (out[0].train.accuracy < 0.99) {
        printf("FAIL: plain training reached only %.1f%% on its training "
               "set: it did not memorise it\n",
               100 * out[0].train.accuracy);
        fails++;
    }
    for (int k = 1; k < NV; k++) {
        const outcome *o = &out[k];
        if (!(o->test.loss - o->train.loss < lgap0)) {
            printf("FAIL: %s: test-train loss gap %.3f is not below plain "
                   "training's %.3f\n",
                   variants[k].name, o->test.loss - o->train.loss, lgap0);
            fails++;
        }
        if (!(o->test.loss < out[0].test.loss)) {
            printf("FAIL: %s: test loss %.3f is not below plain training's "
                   "%.3f\n",
                   variants[k].name, o->test.loss, out[0].test.loss);
            fails++;
        }
    }
    if (!out[1].stopped_early) {
        printf("FAIL: early stopping ran all %lld epochs\n",
               (long long)s.epochs);
        fails++;
    }
    double agap_all = out[NV - 1].train.accuracy - out[NV - 1].test.accuracy;
    if (!(agap_all < agap0)) {
        printf("FAIL: all three: accuracy gap %.1f%% is not below plain "
               "training's %.1f%%\n",
               100 * agap_all, 100 * agap0);
        fails++;
    }
    if (fails)
        rc = 1;
    else
        printf("checks: every cure narrows the loss gap and lowers the test "
               "loss; all three narrow the accuracy gap: OK\n");

done:
    nb_dataset_free(&all);
    nb_dataset_free(&train);
    nb_dataset_free(&val);
    nb_dataset_free(&test);
    return rc;
}
