/* Fashion-MNIST with a convolutional network, composed layer by layer:
 *
 *   image [N, 1, 28, 28]
 *   conv1  3x3, 1 -> 32 channels, padding 1    [N, 32, 28, 28]
 *          bn1 (batch norm)              relu  max-pool 2x2  [N, 32, 14, 14]
 *   conv2  3x3, 32 -> 64 channels, padding 1   [N, 64, 14, 14]
 *          bn2                           relu  max-pool 2x2  [N, 64, 7, 7]
 *   flatten to 3136, fc1 3136 -> 128, relu, dropout, fc2 128 -> 10
 *   loss: softmax cross-entropy of the logits against the class index
 *
 * Every line of that list is one call of nn.h (nb_conv2d_layer,
 * nb_batch_norm_layer, nb_max_pool2d_layer, nb_linear_layer) or ops.h
 * (nb_relu, nb_reshape, nb_dropout): see net_build. Without batch norm a
 * conv and its relu are one call, nb_conv2d_relu_layer (one fused node,
 * the same values). The layers are
 * composed by hand rather than from a spec, because a CNN's shape is a
 * list of different layers (where a norm goes, whether a conv keeps its
 * bias, where the flatten happens) that a spec would have to re-encode
 * field by field, while the calls read as the list above and return the
 * nodes that the pictures, the freezing of a layer or a residual branch
 * need. The parameters carry PyTorch's names (conv1.weight, conv1.bias,
 * bn1.running_mean, ...; the linear layers are fc1.W [in, out] and fc1.b)
 * and, with NB_INIT_TORCH, PyTorch's initialisation.
 *
 * The plain network trained as PyTorch's reference loop trains it
 * (constant learning rate, no regularisation) peaks near 90.5% on the test
 * set and then overfits. The defaults add the lectures' remedies: batch
 * norm after each convolution (--no-bn leaves it out), dropout before the
 * last layer, weight decay, a cosine decay of the learning rate to zero,
 * and every training image mirrored left-right at random, redrawn each
 * epoch (--shift N also moves it by up to N pixels each way; --no-flip
 * turns the mirroring off). 5000 training images are held out to watch
 * the validation loss, and --patience stops early on it. The commit that
 * set the defaults records which mattered and the accuracy reached.
 *
 *   build/examples/fashion_cnn                 train, test, save, draw
 *   build/examples/fashion_cnn --no-bn         the same without batch norm
 *   build/examples/fashion_cnn --evaluate      load the saved model, test
 *   build/examples/fashion_cnn --test-size     a seconds-long self-check
 *   build/examples/fashion_cnn --help          every option
 *
 * The model goes to fashion_cnn.safetensors (batch norm's
 * running statistics included); --evaluate rebuilds the network, loads the
 * file and prints the same test figures the training run printed. The
 * picture fashion_cnn.png (with .svg and .pdf) shows conv1's 32 learned
 * 3x3 filters and what conv1 and conv2 make of one test image.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_util.h"
#include "nabla/nabla.h"
#include "plot/plot.h"

#define CLASSES 10
#define SIDE 28
#define PIX (SIDE * SIDE)
#define C1 32
#define C2 64

typedef struct net {
    nb_graph *g;
    nb_model model;
    nb_conv conv1, conv2;
    nb_node *act1, *act2; /* after relu, before pooling: the feature maps */
} net;

static void net_free(net *n)
{
    nb_graph_free(n->g);
    n->g = NULL;
}

/* conv (3x3, padding 1), optional batch norm, relu: one block's layers
 * before its pooling. A conv followed by batch norm keeps no bias, since
 * the norm's shift takes its place (PyTorch users write bias=False). */
static nb_node *conv_block(nb_graph *g, nb_node *x, int64_t channels, int k,
                           bool bn, nb_conv *conv, nb_node **act)
{
    char cname[16], bname[16];
    snprintf(cname, sizeof cname, "conv%d", k);
    snprintf(bname, sizeof bname, "bn%d", k);
    nb_conv_params same = nb_conv_params_of(1, 1, 1, 1);
    if (bn) {
        nb_node *h = nb_conv2d_layer(g, x, channels, 3, 3, &same, false,
                                     cname, NB_INIT_TORCH, NB_ACT_RELU, conv);
        h = nb_batch_norm_layer(g, h, true, NB_BN_MOMENTUM, NB_NORM_EPS,
                                bname, NULL);
        *act = nb_relu(g, h);
    } else {
        /* conv, bias and relu in one node: the same values, quicker */
        *act = nb_conv2d_relu_layer(g, x, channels, 3, 3, &same, true, cname,
                                    NB_INIT_TORCH, conv);
    }
    return nb_max_pool2d_layer(g, *act, 2, 0, 0, NULL);
}

static int net_build(net *n, uint64_t seed, bool bn, double dropout)
{
    memset(n, 0, sizeof *n);
    n->g = nb_graph_new();
    if (!n->g) {
        fprintf(stderr, "fashion_cnn: out of memory\n");
        return 1;
    }
    nb_graph *g = n->g;
    nb_graph_seed(g, seed);
    /* The dataset holds rows of 784 pixels; the reshape to images copies
     * nothing. */
    nb_node *x = nb_input(g, "x", NB_F32, 2, (int64_t[]){NB_DYNAMIC, PIX});
    nb_node *y = nb_input(g, "label", NB_F32, 1, (int64_t[]){NB_DYNAMIC});
    nb_node *h = nb_reshape(g, x, 4, (int64_t[]){-1, 1, SIDE, SIDE});
    h = conv_block(g, h, C1, 1, bn, &n->conv1, &n->act1);
    h = conv_block(g, h, C2, 2, bn, &n->conv2, &n->act2);
    h = nb_reshape(g, h, 2, (int64_t[]){-1, C2 * 7 * 7});
    h = nb_relu(g, nb_linear_layer(g, h, 128, true, "fc1", NB_INIT_TORCH,
                                   NB_ACT_RELU, NULL));
    if (dropout > 0)
        h = nb_dropout(g, h, dropout);
    nb_node *logits = nb_linear_layer(g, h, CLASSES, true, "fc2",
                                      NB_INIT_TORCH, NB_ACT_SOFTMAX, NULL);
    n->model = (nb_model){.x = x,
                          .y = y,
                          .loss = nb_softmax_ce_index_loss(g, logits, y),
                          .output = logits};
    if (!n->model.loss) {
        fprintf(stderr, "fashion_cnn: building the network: %s\n",
                ex_graph_error(g));
        net_free(n);
        return 1;
    }
    return 0;
}

/* ---- data augmentation ----
 * dst[i] is src[i] mirrored left-right with probability 1/2 (when `flip`)
 * and shifted by (dy, dx), each uniform in [-shift, shift], the pixels
 * moved in from outside black (0, the background). Clothes are left-right
 * symmetric in kind (a mirrored shoe is still a shoe), and the dataset's
 * items are centred only to within a pixel or two. */
typedef struct augment {
    nb_graph *g;
    const nb_tensor *src; /* the untouched training images */
    nb_tensor *dst;       /* the training set's x, rewritten each epoch */
    int64_t shift;
    bool flip;
} augment;

static void augment_run(const augment *a)
{
    const float *src = nb_tensor_cdata(a->src);
    float *dst = nb_tensor_data(a->dst);
    int64_t n = nb_tensor_dim(a->src, 0), span = 2 * a->shift + 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t dy = nb_rng_below(a->g, span) - a->shift;
        int64_t dx = nb_rng_below(a->g, span) - a->shift;
        bool mirror = a->flip && nb_rng_below(a->g, 2);
        const float *s = src + i * PIX;
        float *d = dst + i * PIX;
        for (int64_t r = 0; r < SIDE; r++)
            for (int64_t c = 0; c < SIDE; c++) {
                int64_t sr = r - dy, sc = c - dx;
                if (mirror)
                    sc = SIDE - 1 - sc;
                bool in = sr >= 0 && sr < SIDE && sc >= 0 && sc < SIDE;
                d[r * SIDE + c] = in ? s[sr * SIDE + sc] : 0.0f;
            }
    }
}

/* What the per-epoch callback needs. */
typedef struct epoch_hook {
    const augment *aug; /* NULL: no augmentation */
    double first_loss;  /* the first epoch's training loss */
} epoch_hook;

static bool on_epoch(int64_t epoch, const nb_metrics *train,
                     const nb_metrics *val, void *user)
{
    (void)val;
    epoch_hook *h = user;
    if (epoch == 1)
        h->first_loss = train->loss;
    if (h->aug)
        augment_run(h->aug);
    return true;
}

/* ---- testing ---- */

/* Scores the test set and prints the result line (and the confusion
 * matrix when asked). Returns 0 or 1. */
static int test_report(net *n, const nb_dataset *test, bool confusion,
                       nb_metrics *m)
{
    int64_t conf[CLASSES * CLASSES] = {0};
    if (nb_evaluate_confusion(n->g, &n->model, test, 1000, m, conf,
                              CLASSES) != NB_OK) {
        fprintf(stderr, "fashion_cnn: evaluation failed: %s\n",
                ex_graph_error(n->g));
        return 1;
    }
    int64_t right = ex_confusion_correct(conf, CLASSES);
    printf("test accuracy %.2f%% (%lld of %lld right), test loss %.6f\n",
           100.0 * m->accuracy, (long long)right, (long long)m->count,
           m->loss);
    if (confusion) {
        printf("\nconfusion matrix on the test set:\n");
        ex_print_confusion(stdout, conf, CLASSES, ex_fashion_class);
    }
    return 0;
}

/* Rebuilds the network, loads `path` into it and scores the test set:
 * what --evaluate does, and what the self-check compares. */
static int evaluate_file(const char *path, bool bn, double dropout,
                         const nb_dataset *test, bool confusion,
                         nb_metrics *m)
{
    net n;
    /* A seed other than training's: every weight must come from the
     * file. */
    int rc = net_build(&n, 12345, bn, dropout);
    if (rc)
        return rc;
    if (nb_load_params(n.g, path, 0, NULL) != NB_OK) {
        fprintf(stderr, "fashion_cnn: %s\n", ex_graph_error(n.g));
        rc = 1;
    } else {
        printf("loaded %s\n", path);
        rc = test_report(&n, test, confusion, m);
    }
    net_free(&n);
    return rc;
}

/* ---- the picture ---- */

enum { TILE = 44, GAP = 6, PER_ROW = 16, LEFT = 190, TOP = 50 };

/* One tile per map: `count` maps of side x side floats, coloured by
 * colour(value / scale), where scale is the largest |value| of the map
 * (per_map) or of all the maps. Adds the tiles and a row label to the
 * figure's lists; returns the y below them. */
typedef struct canvas {
    pl_panel *panel;
    int npanels;
    pl_label *label;
    int nlabels;
    unsigned char *rgb; /* pixel store of every tile */
    size_t used;
} canvas;

static int add_maps(canvas *cv, int y, const char *title, const char *note,
                    const float *v, int count, int side, bool per_map,
                    bool diverging)
{
    double all = 0;
    for (int i = 0; i < count * side * side; i++)
        all = fmax(all, fabs(v[i]));
    int rows = (count + PER_ROW - 1) / PER_ROW;
    for (int k = 0; k < count; k++) {
        const float *m = v + (size_t)k * side * side;
        double scale = 0;
        for (int i = 0; per_map && i < side * side; i++)
            scale = fmax(scale, fabs(m[i]));
        scale = per_map ? scale : all;
        scale = scale > 0 ? scale : 1;
        unsigned char *px = cv->rgb + cv->used;
        cv->used += 3 * (size_t)side * side;
        for (int i = 0; i < side * side; i++) {
            double t = m[i] / scale;
            pl_rgb c = diverging ? pl_diverging(t)
                                 : pl_mix(pl_hex(PL_WHITE), pl_hex(PL_TEXT), t);
            px[3 * i] = c.r;
            px[3 * i + 1] = c.g;
            px[3 * i + 2] = c.b;
        }
        cv->panel[cv->npanels++] = (pl_panel){
            .x = LEFT + (k % PER_ROW) * (TILE + GAP),
            .y = y + (k / PER_ROW) * (TILE + GAP),
            .w = TILE,
            .h = TILE,
            .bare = true,
            .image = {side, side, px, .pixelated = true}};
    }
    double mid = y + (rows * (TILE + GAP) - GAP) / 2.0;
    cv->label[cv->nlabels++] =
        (pl_label){.x = 16, .y = mid - 10, .text = title, .bold = true};
    cv->label[cv->nlabels++] = (pl_label){
        .x = 16, .y = mid + 12, .text = note, .color = PL_MUTED};
    return y + rows * (TILE + GAP) + 16;
}

/* conv1's filters, then one test image and its feature maps after conv1
 * and conv2 (after relu, before pooling), into <prefix>.png/.svg/.pdf. */
static int draw(net *n, const nb_dataset *test, int64_t index,
                const char *prefix)
{
    nb_graph *g = n->g;
    const float *img = (const float *)nb_tensor_cdata(test->x) + index * PIX;
    int label = (int)nb_tensor_get(test->y, index);
    nb_graph_set_training(g, false);
    if (nb_feed(g, n->model.x, 2, (int64_t[]){1, PIX}, img) != NB_OK ||
        nb_forward(g, n->act2) != NB_OK) {
        fprintf(stderr, "fashion_cnn: %s\n", ex_graph_error(g));
        return 1;
    }
    pl_panel panel[1 + 2 * C1 + C2];
    pl_label label_list[8];
    static unsigned char rgb[3 * (PIX + C1 * 9 + C1 * PIX + C2 * 14 * 14)];
    canvas cv = {panel, 0, label_list, 0, rgb, 0};
    char caption[64];
    snprintf(caption, sizeof caption, "test image %lld: %s",
             (long long)index, ex_fashion_class(label));
    int y = add_maps(&cv, TOP, "input", caption, img, 1, SIDE, true, false);
    /* The image tile is shown three tiles wide. */
    cv.panel[0].w = cv.panel[0].h = 3 * TILE + 2 * GAP;
    cv.label[0].y = cv.label[1].y - 10 + (3 * TILE + 2 * GAP) / 2.0 - 12;
    cv.label[1].y = cv.label[0].y + 22;
    y = TOP + 3 * TILE + 2 * GAP + 16;
    y = add_maps(&cv, y, "conv1 filters", "orange < 0 < blue",
                 nb_tensor_cdata(nb_node_value(n->conv1.weight)), C1, 3,
                 false, true);
    y = add_maps(&cv, y, "conv1 maps", "relu, each / its max",
                 nb_tensor_cdata(nb_node_value(n->act1)), C1, SIDE, true,
                 false);
    y = add_maps(&cv, y, "conv2 maps", "relu, each / its max",
                 nb_tensor_cdata(nb_node_value(n->act2)), C2, 14, true,
                 false);
    pl_figure fig = {.w = LEFT + PER_ROW * (TILE + GAP) + 10,
                     .h = y,
                     .title = "what the first layers learned and see",
                     .panels = panel,
                     .npanels = cv.npanels,
                     .labels = label_list,
                     .nlabels = cv.nlabels};
    if (pl_save(&fig, prefix) != 0)
        return 1;
    printf("%s.png: conv1's filters and the feature maps of test image "
           "%lld\n",
           prefix, (long long)index);
    return 0;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    bool test_size = ex_has_flag(argc, argv, "--test-size");
    int64_t epochs = test_size ? 4 : 20, batch = 64, seed = 1;
    int64_t limit = test_size ? 700 : 0, val_count = test_size ? 100 : 5000;
    int64_t test_limit = test_size ? 500 : 0, shift = 0, patience = 0;
    double lr = 0.05, momentum = 0.9, wd = 5e-4, dropout = 0.2;
    const char *save = "fashion_cnn.safetensors", *log = NULL;
    const char *picture = "fashion_cnn", *schedule_name = "cosine";
    bool evaluate = false, quiet = false, bn = true, no_bn = false;
    bool no_flip = false;
    const ex_flag flags[] = {
        {"--bn", EX_BOOL, &bn,
         "batch norm after each convolution (the default)"},
        {"--no-bn", EX_BOOL, &no_bn, "the plain network, without batch norm"},
        {"--epochs", EX_INT, &epochs, "training epochs"},
        {"--batch", EX_INT, &batch, "mini-batch size"},
        {"--lr", EX_DOUBLE, &lr, "initial learning rate"},
        {"--momentum", EX_DOUBLE, &momentum, "SGD momentum"},
        {"--wd", EX_DOUBLE, &wd, "L2 weight decay of the weights"},
        {"--dropout", EX_DOUBLE, &dropout, "dropout before fc2"},
        {"--shift", EX_INT, &shift,
         "augmentation: random shifts up to this many pixels (0: none)"},
        {"--no-flip", EX_BOOL, &no_flip, "augmentation: no mirroring"},
        {"--schedule", EX_STRING, &schedule_name,
         "learning-rate schedule: constant, step or cosine"},
        {"--patience", EX_INT, &patience,
         "early stopping after this many epochs without a better "
         "validation loss (0: off)"},
        {"--seed", EX_INT, &seed, "seed of initialisation and shuffling"},
        {"--limit", EX_INT, &limit, "training images to read, 0 = all"},
        {"--test-limit", EX_INT, &test_limit, "test images, 0 = all"},
        {"--val", EX_INT, &val_count, "hold out this many for validation"},
        {"--save", EX_STRING, &save, "where the trained model goes"},
        {"--picture", EX_STRING, &picture,
         "prefix of the filters and feature maps picture"},
        {"--log", EX_STRING, &log, "append a per-epoch CSV log here"},
        {"--evaluate", EX_BOOL, &evaluate, "load --save's file and test it"},
        {"--quiet", EX_BOOL, &quiet, "no progress bar"},
        {"--test-size", EX_BOOL, &test_size,
         "small, fast run that checks itself"},
    };
    int rc = ex_parse_flags(argc, argv,
                            "Trains a small CNN on Fashion-MNIST.", flags,
                            (int)(sizeof flags / sizeof flags[0]));
    if (rc >= 0)
        return rc;
    bn = !no_bn;
    if (epochs < 1 || batch < 1 || !(lr > 0) || !(wd >= 0) ||
        !(dropout >= 0 && dropout < 1) || shift > 8) {
        fprintf(stderr, "fashion_cnn: bad option value (see --help)\n");
        return 2;
    }
    nb_schedule schedule;
    if (ex_schedule("fashion_cnn", schedule_name, lr, epochs, &schedule))
        return 2;

    nb_dataset all, test;
    rc = ex_load_fashion("fashion_cnn", &all, &test, evaluate ? 1 : limit,
                         test_limit);
    if (rc)
        return rc;
    if (evaluate) {
        nb_metrics m;
        rc = evaluate_file(save, bn, dropout, &test, true, &m);
        nb_dataset_free(&all);
        nb_dataset_free(&test);
        return rc;
    }

    nb_dataset train, val;
    rc = ex_hold_out("fashion_cnn", &all, val_count, &train, &val);

    net n = {0};
    nb_optimizer *opt = NULL;
    nb_tensor *pristine = NULL;
    augment aug = {0};
    epoch_hook hook = {0};
    if (!rc)
        rc = net_build(&n, (uint64_t)seed, bn, dropout);
    if (!rc) {
        nb_optim_config oc = {.kind = NB_OPTIM_SGD,
                              .lr = lr,
                              .momentum = momentum,
                              .weight_decay = wd};
        opt = nb_optimizer_new(n.g, &oc, 0, NULL);
        if (!opt) {
            fprintf(stderr, "fashion_cnn: %s\n", ex_graph_error(n.g));
            rc = 1;
        }
    }
    if (!rc && (shift > 0 || !no_flip)) {
        pristine = ex_tensor_clone(train.x);
        if (!pristine) {
            fprintf(stderr, "fashion_cnn: out of memory\n");
            rc = 1;
        } else {
            aug = (augment){n.g, pristine, train.x, shift, !no_flip};
            hook.aug = &aug;
            augment_run(&aug);
        }
    }
    nb_metrics before = {0};
    double last_loss = NAN;
    if (!rc && nb_evaluate(n.g, &n.model, &test, 1000, &before) != NB_OK) {
        fprintf(stderr, "fashion_cnn: %s\n", ex_graph_error(n.g));
        rc = 1;
    }
    if (!rc) {
        printf("Fashion-MNIST CNN: conv3x3 %d%s relu maxpool, conv3x3 %d%s "
               "relu maxpool, fc 128 relu dropout %g, fc 10\n",
               C1, bn ? " bn" : "", C2, bn ? " bn" : "", dropout);
        printf("train %lld, validation %lld, test %lld images; augmentation: "
               "shifts up to %lld px%s\n",
               (long long)nb_dataset_size(&train),
               (long long)(val.x ? nb_dataset_size(&val) : 0),
               (long long)nb_dataset_size(&test), (long long)shift,
               no_flip ? "" : ", left-right mirroring");
        printf("SGD lr %g momentum %g weight decay %g, batch %lld, %lld "
               "epochs, %s schedule, patience %lld, seed %lld\n",
               lr, momentum, wd, (long long)batch, (long long)epochs,
               schedule_name, (long long)patience, (long long)seed);
        printf("before training: test loss %.4f, accuracy %.2f%%\n\n",
               before.loss, 100 * before.accuracy);
        fflush(stdout);
        nb_train_config tc = {
            .epochs = epochs,
            .batch_size = batch,
            .schedule = &schedule,
            .patience = val.x ? patience : 0,
            .progress = quiet ? NB_PROGRESS_OFF : NB_PROGRESS_AUTO,
            .stream = stdout,
            .csv_path = log,
            .on_epoch = on_epoch,
            .user = &hook,
        };
        nb_train_result res = {0};
        double t0 = ex_now();
        if (nb_train(n.g, &n.model, opt, &train, val.x ? &val : NULL, &tc,
                     &res) != NB_OK) {
            fprintf(stderr, "fashion_cnn: training failed: %s\n",
                    ex_graph_error(n.g));
            rc = 1;
        } else {
            printf("\ntrained %lld epochs in %.1f s%s (last epoch: train "
                   "loss %.4f, train accuracy %.2f%%)\n",
                   (long long)res.epochs_run, ex_now() - t0,
                   res.restored ? ", best validation epoch restored" : "",
                   res.train.loss, 100 * res.train.accuracy);
            last_loss = res.train.loss;
        }
    }
    nb_metrics after = {0};
    if (!rc)
        rc = test_report(&n, &test, !test_size, &after);
    if (!rc) {
        if (nb_save_params(n.g, save, 0, NULL) != NB_OK) {
            fprintf(stderr, "fashion_cnn: saving: %s\n", ex_graph_error(n.g));
            rc = 1;
        } else {
            printf("\nsaved the model to %s (re-test it with --evaluate%s)\n",
                   save, bn ? "" : " --no-bn");
        }
    }
    if (!rc)
        rc = draw(&n, &test, 0, picture);

    if (!rc && test_size) {
        /* The loss must fall well below its start (ln 10 = 2.30 for a
         * uniform guess), on the training batches and on the test set, and
         * the file must give back the very figures. */
        nb_metrics again = {0};
        if (!(after.loss < 0.75 * before.loss) ||
            !(last_loss < hook.first_loss) || !(after.accuracy > 0.4)) {
            printf("FAIL: test loss %.4f -> %.4f, accuracy %.2f%%; "
                   "training loss %.4f -> %.4f\n",
                   before.loss, after.loss, 100 * after.accuracy,
                   hook.first_loss, last_loss);
            rc = 1;
        } else if ((rc = evaluate_file(save, bn, dropout, &test, false,
                                       &again)) == 0 &&
                   (again.loss != after.loss ||
                    again.accuracy != after.accuracy ||
                    again.count != after.count)) {
            printf("FAIL: the reloaded model scores loss %.9g, accuracy "
                   "%.9g; the trained one %.9g, %.9g\n",
                   again.loss, again.accuracy, after.loss, after.accuracy);
            rc = 1;
        }
        if (!rc)
            printf("test-size run: OK\n");
    }
    nb_tensor_free(pristine);
    nb_optimizer_free(opt);
    net_free(&n);
    nb_dataset_free(&train);
    nb_dataset_free(&val);
    nb_dataset_free(&test);
    return rc;
}
