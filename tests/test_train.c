/* The training loop and the metrics: a 3-class problem learnt to high
 * accuracy, nb_evaluate against hand-computed losses, accuracies and
 * confusion matrices, bitwise determinism under a seed, early stopping that
 * restores the best epoch exactly, the CSV log and the progress output,
 * full-batch and online batching checked against hand-written steps,
 * argument errors, and no allocation in a steady-state epoch. */
#include <stdint.h>

#include "test_util.h"

/* Every allocation the library makes passes through here. */
static long allocations;

static void *counting_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *p = NULL;
    allocations++;
    return posix_memalign(&p, align, size ? size : align) == 0 ? p : NULL;
}

static void counting_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

/* ---- data: Gaussian blobs around the corners of a triangle ---- */

static void free_set(nb_dataset *ds)
{
    nb_tensor_free(ds->x);
    nb_tensor_free(ds->y);
    ds->x = ds->y = NULL;
}

/* n points, class i % 3, centred at radius 2 on angles 0, 120, 240 degrees
 * with standard deviation sigma; a fraction `noise` of the labels is
 * replaced by a uniformly random class. Drawn from a graph of its own so
 * that the model graph's RNG is left alone. */
static nb_dataset blobs(uint64_t seed, int64_t n, double sigma, double noise,
                        nb_dtype dtype)
{
    nb_graph *rng = nb_graph_new();
    nb_graph_seed(rng, seed);
    nb_dataset ds = {.x = nb_tensor_new(dtype, 2, SHAPE(n, 2)),
                     .y = nb_tensor_new(dtype, 1, SHAPE(n))};
    const double pi = 3.14159265358979323846;
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % 3);
        double a = 2 * pi * c / 3;
        nb_tensor_set(ds.x, 2 * i, 2 * cos(a) + sigma * nb_rng_normal(rng));
        nb_tensor_set(ds.x, 2 * i + 1, 2 * sin(a) + sigma * nb_rng_normal(rng));
        if (nb_rng_uniform(rng) < noise)
            c = (int)nb_rng_below(rng, 3);
        nb_tensor_set(ds.y, i, c);
    }
    nb_graph_free(rng);
    return ds;
}

/* Three concentric rings (radius 0.5, 1.5, 2.5 for classes 0, 1, 2, radial
 * noise sigma, uniform angle): no line separates them, a hidden layer
 * must bend the boundary. */
static nb_dataset rings(uint64_t seed, int64_t n, double sigma)
{
    nb_graph *rng = nb_graph_new();
    nb_graph_seed(rng, seed);
    nb_dataset ds = {.x = nb_tensor_new(NB_F32, 2, SHAPE(n, 2)),
                     .y = nb_tensor_new(NB_F32, 1, SHAPE(n))};
    const double pi = 3.14159265358979323846;
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % 3);
        double a = 2 * pi * nb_rng_uniform(rng);
        double r = 0.5 + c + sigma * nb_rng_normal(rng);
        nb_tensor_set(ds.x, 2 * i, r * cos(a));
        nb_tensor_set(ds.x, 2 * i + 1, r * sin(a));
        nb_tensor_set(ds.y, i, c);
    }
    nb_graph_free(rng);
    return ds;
}

/* ---- the model: an MLP of tanh layers with a softmax output ---- */

enum { OUT_SOFTMAX, OUT_LOGITS, OUT_IDENTITY_SOFTMAX };

typedef struct net {
    nb_model model;
    nb_node *logits;
} net;

/* 2 -> width (x layers) -> 3, weights N(0, 1/fan_in) from the graph's RNG,
 * loss fused softmax cross-entropy on class indices. */
static net build_net(nb_graph *g, nb_dtype dt, int layers, int64_t width,
                     double dropout, int out_kind)
{
    net n = {{0}, NULL};
    nb_node *x = nb_input(g, "x", dt, 2, SHAPE(NB_DYNAMIC, 2));
    nb_node *y = nb_input(g, "y", dt, 1, SHAPE(NB_DYNAMIC));
    nb_node *h = x;
    int64_t in = 2;
    for (int l = 0; l <= layers; l++) {
        int64_t out = l == layers ? 3 : width;
        char name[16];
        snprintf(name, sizeof name, "W%d", l + 1);
        nb_node *W = nb_param(g, name, dt, 2, SHAPE(in, out));
        snprintf(name, sizeof name, "b%d", l + 1);
        nb_node *b = nb_param(g, name, dt, 1, SHAPE(out));
        if (!W || !b)
            return n;
        nb_tensor *w = nb_node_value(W);
        for (int64_t i = 0; i < nb_tensor_size(w); i++)
            nb_tensor_set(w, i, nb_rng_normal(g) / sqrt((double)in));
        h = nb_add(g, nb_matmul(g, h, W), b);
        if (l < layers) {
            h = nb_tanh(g, h);
            if (dropout > 0)
                h = nb_dropout(g, h, dropout);
        }
        in = out;
    }
    n.logits = h;
    n.model.x = x;
    n.model.y = y;
    n.model.loss = nb_softmax_ce_index_loss(g, h, y);
    n.model.output = out_kind == OUT_LOGITS ? h
                     : out_kind == OUT_SOFTMAX
                         ? nb_softmax(g, h)
                         : nb_identity(g, nb_softmax(g, h));
    return n;
}

static nb_optimizer *make_opt(nb_graph *g, nb_optim_kind kind, double lr)
{
    nb_optim_config c = {0};
    c.kind = kind;
    c.lr = lr;
    return nb_optimizer_new(g, &c, 0, NULL);
}

static nb_train_config quiet(int64_t epochs, int64_t batch)
{
    nb_train_config c = {0};
    c.epochs = epochs;
    c.batch_size = batch;
    c.progress = NB_PROGRESS_OFF;
    return c;
}

/* The optimiser's parameters, concatenated, as raw bytes. */
static size_t params_size(const nb_optimizer *opt)
{
    size_t s = 0;
    for (int i = 0; i < nb_optimizer_param_count(opt); i++) {
        nb_tensor *v = nb_node_value(nb_optimizer_param(opt, i));
        s += (size_t)nb_tensor_size(v) * nb_dtype_size(nb_tensor_dtype(v));
    }
    return s;
}

static void params_copy(const nb_optimizer *opt, unsigned char *dst)
{
    for (int i = 0; i < nb_optimizer_param_count(opt); i++) {
        nb_tensor *v = nb_node_value(nb_optimizer_param(opt, i));
        size_t b =
            (size_t)nb_tensor_size(v) * nb_dtype_size(nb_tensor_dtype(v));
        memcpy(dst, nb_tensor_cdata(v), b);
        dst += b;
    }
}

/* Accuracy and mean cross-entropy of the logits on ds, by hand: one forward
 * of the whole set, then softmax and argmax written out here. */
static void score_by_hand(nb_graph *g, const net *n, const nb_dataset *ds,
                          double *acc, double *loss)
{
    int64_t rows = nb_tensor_dim(ds->x, 0);
    nb_graph_set_training(g, false);
    nb_feed(g, n->model.x, 2, SHAPE(rows, 2), nb_tensor_cdata(ds->x));
    nb_forward(g, n->logits);
    const nb_tensor *z = nb_node_value(n->logits);
    int64_t right = 0;
    double total = 0;
    for (int64_t i = 0; i < rows; i++) {
        double v[3], top = -INFINITY, sum = 0;
        int best = 0;
        for (int k = 0; k < 3; k++) {
            v[k] = nb_tensor_get(z, 3 * i + k);
            if (v[k] > top) {
                top = v[k];
                best = k;
            }
        }
        for (int k = 0; k < 3; k++)
            sum += exp(v[k] - top);
        int label = (int)nb_tensor_get(ds->y, i);
        total += log(sum) + top - v[label];
        right += best == label;
    }
    *acc = (double)right / (double)rows;
    *loss = total / (double)rows;
}

/* ---- learning ---- */

static void test_learns_rings(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 1);
    net n = build_net(g, NB_F32, 1, 16, 0, OUT_SOFTMAX);
    nb_optimizer *opt = make_opt(g, NB_OPTIM_ADAM, 0.05);
    CHECK(n.model.loss && n.model.output && opt, "build: %s",
          nb_graph_error(g));
    if (!opt) {
        nb_graph_free(g);
        return;
    }
    nb_dataset tr = rings(11, 300, 0.15);
    nb_dataset va = rings(12, 150, 0.15);
    nb_train_config c = quiet(20, 32);
    nb_train_result r;
    int rc = nb_train(g, &n.model, opt, &tr, &va, &c, &r);
    CHECK(rc == NB_OK, "%s", nb_graph_error(g));
    CHECK(r.epochs_run == 20 && !r.stopped_early && !r.restored,
          "epochs_run %lld", (long long)r.epochs_run);
    CHECK(r.best_epoch >= 1 && r.best_epoch <= 20, "best %lld",
          (long long)r.best_epoch);
    CHECK(r.train.count == 300 && r.val.count == 150, "counts %lld %lld",
          (long long)r.train.count, (long long)r.val.count);
    printf("rings: val accuracy %.4f, val loss %.4f after 20 epochs\n",
           r.val.accuracy, r.val.loss);
    CHECK(r.val.accuracy >= 0.95, "val accuracy %g", r.val.accuracy);
    CHECK(r.train.accuracy >= 0.9, "train accuracy %g", r.train.accuracy);
    CHECK(r.seconds >= 0, "seconds %g", r.seconds);
    CHECK(nb_optimizer_steps(opt) == 20 * 10, "steps %lld",
          (long long)nb_optimizer_steps(opt));

    /* The loop's last validation score against one written out here. */
    double acc, loss;
    score_by_hand(g, &n, &va, &acc, &loss);
    CHECK(acc == r.val.accuracy, "by hand %g, loop %g", acc, r.val.accuracy);
    CHECK_NEAR(loss, r.val.loss, 1e-5);

    /* The three ways of finding the scored node agree: the logits
     * themselves (computed by the loss), softmax of them (substituted by
     * its input), and an output the loss does not compute (forward run). */
    nb_model by_logits = n.model, by_forward = n.model;
    by_logits.output = n.logits;
    by_forward.output = nb_identity(g, n.model.output);
    nb_metrics m1 = {0}, m2 = {0}, m3 = {0};
    CHECK(nb_evaluate(g, &n.model, &va, 64, &m1) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(nb_evaluate(g, &by_logits, &va, 64, &m2) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(nb_evaluate(g, &by_forward, &va, 64, &m3) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(m1.accuracy == acc && m2.accuracy == acc && m3.accuracy == acc,
          "%g %g %g vs %g", m1.accuracy, m2.accuracy, m3.accuracy, acc);
    CHECK(m1.classes == 3, "classes %lld", (long long)m1.classes);

    free_set(&tr);
    free_set(&va);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* ---- nb_evaluate on hand-set models ---- */

static void test_evaluate_by_hand(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 3);
    /* logits = dropout(x) I + 0: the rows of x are the logits. */
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *labels = nb_input(g, "labels", NB_F64, 1, SHAPE(NB_DYNAMIC));
    nb_node *onehot = nb_input(g, "onehot", NB_F64, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *W = nb_param(g, "W", NB_F64, 2, SHAPE(3, 3));
    nb_node *b = nb_param(g, "b", NB_F64, 1, SHAPE(3));
    SET(W, 1, 0, 0, 0, 1, 0, 0, 0, 1);
    nb_node *z = nb_add(g, nb_matmul(g, nb_dropout(g, x, 0.5), W), b);
    nb_model idx_model = {.x = x, .y = labels,
                          .loss = nb_softmax_ce_index_loss(g, z, labels),
                          .output = z};
    nb_model hot_model = {.x = x, .y = onehot,
                          .loss = nb_softmax_ce_loss(g, z, onehot),
                          .output = nb_softmax(g, z)};
    CHECK(idx_model.loss && hot_model.loss && hot_model.output, "build: %s",
          nb_graph_error(g));

    /* Rows (2,0,0) (0,1,0) (0,0,3) (1,1,0), labels 0 1 0 1. Predicted:
     * 0, 1, 2 and 0 (the tie of row 4 goes to the first), so rows 1 and 2
     * are right: accuracy 1/2. Cross-entropy logsumexp(z) - z_label:
     *   log(e^2 + 2) - 2,  log(e + 2) - 1,  log(e^3 + 2),  log(2e + 1) - 1. */
    const double e = exp(1.0);
    const double want_loss = (log(e * e + 2) - 2 + log(e + 2) - 1 +
                              log(e * e * e + 2) + log(2 * e + 1) - 1) /
                             4;
    nb_dataset ds = {.x = nb_tensor_new(NB_F64, 2, SHAPE(4, 3)),
                     .y = nb_tensor_new(NB_F64, 1, SHAPE(4))};
    nb_dataset hot = {.x = nb_tensor_new(NB_F64, 2, SHAPE(4, 3)),
                      .y = nb_tensor_new(NB_F64, 2, SHAPE(4, 3))};
    const double xs[12] = {2, 0, 0, 0, 1, 0, 0, 0, 3, 1, 1, 0};
    const double ys[4] = {0, 1, 0, 1};
    const double hs[12] = {1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0};
    nb_tensor_copy_from_f64(ds.x, xs, 12);
    nb_tensor_copy_from_f64(ds.y, ys, 4);
    nb_tensor_copy_from_f64(hot.x, xs, 12);
    nb_tensor_copy_from_f64(hot.y, hs, 12);
    /* confusion[true][predicted]: (0,0) (1,1) (0,2) (1,0). */
    const int64_t want_conf[9] = {1, 0, 1, 1, 1, 0, 0, 0, 0};

    const int64_t batches[] = {0, 1, 3, 4, 10};
    for (size_t i = 0; i < sizeof batches / sizeof *batches; i++) {
        for (int which = 0; which < 2; which++) {
            /* Dropout would change the loss: the flag must be off inside
             * and back to what it was afterwards. */
            bool training = (i + (size_t)which) % 2 == 0;
            nb_graph_set_training(g, training);
            int64_t conf[9];
            memset(conf, 0x55, sizeof conf);
            /* Garbage in the struct must not matter: it is only written. */
            nb_metrics m;
            memset(&m, 0x77, sizeof m);
            int rc = nb_evaluate_confusion(g, which ? &hot_model : &idx_model,
                                           which ? &hot : &ds, batches[i], &m,
                                           conf, 3);
            CHECK(rc == NB_OK, "%s", nb_graph_error(g));
            CHECK_NEAR(m.loss, want_loss, 1e-12);
            CHECK(m.accuracy == 0.5 && m.count == 4,
                  "batch %lld %s: accuracy %g count %lld",
                  (long long)batches[i], which ? "one-hot" : "index",
                  m.accuracy, (long long)m.count);
            CHECK(memcmp(conf, want_conf, sizeof conf) == 0,
                  "batch %lld %s: confusion %lld %lld %lld / %lld %lld %lld / "
                  "%lld %lld %lld",
                  (long long)batches[i], which ? "one-hot" : "index",
                  (long long)conf[0], (long long)conf[1], (long long)conf[2],
                  (long long)conf[3], (long long)conf[4], (long long)conf[5],
                  (long long)conf[6], (long long)conf[7], (long long)conf[8]);
            CHECK(nb_graph_training(g) == training, "flag not restored");
        }
    }

    /* A confusion matrix too small for the output. */
    int64_t small[4];
    nb_metrics m;
    CHECK(nb_evaluate_confusion(g, &idx_model, &ds, 0, &m, small, 2) ==
              NB_ERR_ARG,
          "accepted");
    CHECK_ERROR(g, "evaluate", "confusion", "2 classes", "3");
    CHECK(nb_evaluate(g, &idx_model, &ds, -1, &(nb_metrics){0}) == NB_ERR_ARG,
          "negative batch accepted");
    CHECK_ERROR(g, "evaluate", "batch_size");
    CHECK(nb_evaluate(g, &idx_model, &ds, 2, NULL) == NB_ERR_ARG, "NULL out");
    CHECK_ERROR(g, "evaluate", "out");

    /* One sigmoid column, on probabilities (p = sigmoid(v x) is computed by
     * the loss) and from logits (output sigmoid(s) is not: s is scored
     * against 0). x = -2, -0.5, 0.25, 3 with v = 1, targets 0 1 1 1:
     * predicted 0 0 1 1, so 3 of 4 right; confusion [[1,0],[1,2]].
     * Loss -log(1 - sigmoid(-2)), -log sigmoid(-0.5), -log sigmoid(0.25),
     * -log sigmoid(3), i.e. log(1 + e^-2), log(1 + e^0.5), log(1 + e^-0.25),
     * log(1 + e^-3). */
    nb_node *x1 = nb_input(g, "x1", NB_F64, 2, SHAPE(NB_DYNAMIC, 1));
    nb_node *t1 = nb_input(g, "t1", NB_F64, 2, SHAPE(NB_DYNAMIC, 1));
    nb_node *v = nb_param(g, "v", NB_F64, 2, SHAPE(1, 1));
    SET(v, 1);
    nb_node *s = nb_matmul(g, x1, v);
    nb_node *p = nb_sigmoid(g, s);
    nb_model prob = {.x = x1, .y = t1, .loss = nb_bce_loss(g, p, t1), .output = p};
    nb_model logit = {.x = x1, .y = t1, .loss = nb_bce_logits_loss(g, s, t1),
                      .output = nb_sigmoid(g, s)};
    CHECK(prob.loss && logit.loss && logit.output, "build: %s",
          nb_graph_error(g));
    nb_dataset bin = {.x = nb_tensor_new(NB_F64, 2, SHAPE(4, 1)),
                      .y = nb_tensor_new(NB_F64, 2, SHAPE(4, 1))};
    nb_tensor_copy_from_f64(bin.x, (const double[]){-2, -0.5, 0.25, 3}, 4);
    nb_tensor_copy_from_f64(bin.y, (const double[]){0, 1, 1, 1}, 4);
    const double want_bce = (log(1 + exp(-2.0)) + log(1 + exp(0.5)) +
                             log(1 + exp(-0.25)) + log(1 + exp(-3.0))) /
                            4;
    const int64_t want_bin[4] = {1, 0, 1, 2};
    for (int which = 0; which < 2; which++) {
        int64_t conf[4];
        nb_metrics mb;
        CHECK(nb_evaluate_confusion(g, which ? &logit : &prob, &bin, 3, &mb,
                                    conf, 2) == NB_OK,
              "%s", nb_graph_error(g));
        CHECK_NEAR(mb.loss, want_bce, 1e-12);
        CHECK(mb.accuracy == 0.75, "%s: accuracy %g",
              which ? "logits" : "probabilities", mb.accuracy);
        CHECK(memcmp(conf, want_bin, sizeof conf) == 0,
              "%s: confusion %lld %lld / %lld %lld",
              which ? "logits" : "probabilities", (long long)conf[0],
              (long long)conf[1], (long long)conf[2], (long long)conf[3]);
    }

    /* No output: no accuracy. */
    nb_model bare = idx_model;
    bare.output = NULL;
    nb_metrics mn = {0};
    CHECK(nb_evaluate(g, &bare, &ds, 0, &mn) == NB_OK, "%s", nb_graph_error(g));
    CHECK(isnan(mn.accuracy) && mn.count == 4, "accuracy %g", mn.accuracy);
    CHECK_NEAR(mn.loss, want_loss, 1e-12);

    /* A NaN in the data makes the loss of its batch NaN: an error naming
     * the batch's rows, not a metric of NaN. */
    double keep = nb_tensor_get(ds.x, 7);
    nb_tensor_set(ds.x, 7, NAN);
    CHECK(nb_evaluate(g, &bare, &ds, 2, &mn) == NB_ERR_NONFINITE,
          "NaN loss accepted");
    CHECK_ERROR(g, "evaluate", "loss is nan", "rows [2, 4)");
    CHECK(isnan(mn.loss) && mn.count == 0, "loss %g count %lld", mn.loss,
          (long long)mn.count);
    nb_tensor_set(ds.x, 7, keep);
    CHECK(nb_evaluate(g, &bare, &ds, 2, &mn) == NB_OK, "%s", nb_graph_error(g));

    free_set(&ds);
    free_set(&hot);
    free_set(&bin);
    nb_graph_free(g);
}

/* ---- determinism ---- */

/* Weights after 3 epochs of Adam with init seed `init` and the RNG then
 * reseeded to `shuffle` (shuffling and dropout draw from it). */
static unsigned char *run_seeded(uint64_t init, uint64_t shuffle,
                                 bool no_shuffle, double dropout, size_t *len,
                                 bool start_training)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, init);
    net n = build_net(g, NB_F32, 2, 12, dropout, OUT_SOFTMAX);
    nb_optimizer *opt = make_opt(g, NB_OPTIM_ADAM, 0.01);
    nb_dataset tr = blobs(21, 90, 0.8, 0.1, NB_F32);
    nb_graph_seed(g, shuffle);
    nb_train_config c = quiet(3, 16);
    c.no_shuffle = no_shuffle;
    nb_graph_set_training(g, start_training);
    int rc = nb_train(g, &n.model, opt, &tr, NULL, &c, NULL);
    CHECK(rc == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_graph_training(g) == start_training, "flag not restored");
    *len = opt ? params_size(opt) : 0;
    unsigned char *w = malloc(*len ? *len : 1);
    if (opt)
        params_copy(opt, w);
    free_set(&tr);
    nb_optimizer_free(opt);
    nb_graph_free(g);
    return w;
}

static void test_determinism(void)
{
    size_t la, lb, lc, ld, le, lf, lh;
    unsigned char *a = run_seeded(1, 7, false, 0.2, &la, true);
    unsigned char *b = run_seeded(1, 7, false, 0.2, &lb, true);
    unsigned char *d = run_seeded(2, 7, false, 0.2, &ld, true);
    CHECK(la > 0 && la == lb && la == ld, "sizes %zu %zu %zu", la, lb, ld);
    CHECK(memcmp(a, b, la) == 0, "same seeds, different weights");
    CHECK(memcmp(a, d, la) != 0, "another init seed, same weights");
    /* Dropout trains in training mode whatever the flag was before. */
    size_t li;
    unsigned char *i = run_seeded(1, 7, false, 0.2, &li, false);
    CHECK(li == la && memcmp(a, i, la) == 0, "training mode not switched on");
    free(i);
    /* Without dropout only the shuffle draws: its seed must matter when
     * shuffling and must not when not. */
    unsigned char *c = run_seeded(1, 7, false, 0, &lc, true);
    unsigned char *h = run_seeded(1, 8, false, 0, &lh, true);
    unsigned char *e = run_seeded(1, 7, true, 0, &le, true);
    unsigned char *f = run_seeded(1, 8, true, 0, &lf, true);
    CHECK(lc == lh && memcmp(c, h, lc) != 0,
          "another shuffle seed, same weights");
    CHECK(le == lf && memcmp(e, f, le) == 0, "no_shuffle still shuffled");
    CHECK(lc == le && memcmp(c, e, lc) != 0, "shuffling changed nothing");
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
    free(h);
}

/* A run stopped after `stop` epochs and checkpointed, then resumed in a
 * fresh graph from the checkpoint with first_epoch, must end with exactly
 * the weights of an uninterrupted run: the checkpoint carries the
 * parameters, Adam's moments and step count and the RNG that drives both
 * the shuffle and dropout, and the loop carries the epoch (the schedule's
 * t). Returns the final weights; stop = 0 runs straight through. */
static unsigned char *run_resumable(int64_t stop, bool forget_epoch,
                                    const char *ckpt, size_t *len)
{
    const int64_t epochs = 5;
    nb_schedule sched = {.kind = NB_SCHEDULE_STEP, .lr0 = 0.02, .gamma = 0.5,
                         .step_size = 2};
    nb_dataset tr = blobs(33, 80, 0.8, 0.1, NB_F64);
    unsigned char *w = NULL;
    *len = 0;
    for (int part = 0; part < (stop ? 2 : 1); part++) {
        /* The resumed half starts from another seed: whatever it draws
         * must come from the checkpoint. */
        nb_graph *g = nb_graph_new();
        nb_graph_seed(g, part ? 99 : 5);
        net n = build_net(g, NB_F64, 2, 10, 0.2, OUT_SOFTMAX);
        nb_optimizer *opt = make_opt(g, NB_OPTIM_ADAM, 0.02);
        nb_train_config c = quiet(epochs, 16);
        c.schedule = &sched;
        if (stop && part == 0)
            c.epochs = stop;
        if (part == 1) {
            int64_t epoch = -1;
            CHECK(nb_checkpoint_load(g, opt, &epoch, ckpt) == NB_OK, "%s",
                  nb_graph_error(g));
            CHECK(epoch == stop, "checkpoint epoch %lld", (long long)epoch);
            if (forget_epoch)
                c.epochs = epochs - epoch; /* same count, schedule restarts */
            else
                c.first_epoch = epoch;
        }
        nb_train_result r;
        CHECK(nb_train(g, &n.model, opt, &tr, NULL, &c, &r) == NB_OK, "%s",
              nb_graph_error(g));
        CHECK(r.epochs_run == c.epochs, "ran to epoch %lld",
              (long long)r.epochs_run);
        if (stop && part == 0)
            CHECK(nb_checkpoint_save(g, opt, c.epochs, ckpt) == NB_OK, "%s",
                  nb_graph_error(g));
        if (!stop || part == 1) {
            *len = params_size(opt);
            w = malloc(*len ? *len : 1);
            params_copy(opt, w);
        }
        nb_optimizer_free(opt);
        nb_graph_free(g);
    }
    free_set(&tr);
    return w;
}

static void test_resume_from_checkpoint(void)
{
    const char *ckpt = "test_train_resume.safetensors";
    size_t la, lb;
    unsigned char *a = run_resumable(0, false, ckpt, &la);
    unsigned char *b = run_resumable(2, false, ckpt, &lb);
    CHECK(a && b && la == lb && la > 0 && memcmp(a, b, la) == 0,
          "resumed run differs from the uninterrupted one");
    /* The check has teeth: resuming without the epoch replays the
     * schedule from the start and ends elsewhere. */
    size_t lc;
    unsigned char *c = run_resumable(2, true, ckpt, &lc);
    CHECK(c && lc == la && memcmp(a, c, la) != 0,
          "forgetting the epoch changed nothing");
    remove(ckpt);
    free(a);
    free(b);
    free(c);

    nb_graph *g = nb_graph_new();
    net n = build_net(g, NB_F64, 1, 4, 0, OUT_SOFTMAX);
    nb_optimizer *opt = make_opt(g, NB_OPTIM_SGD, 0.1);
    nb_dataset tr = blobs(3, 20, 0.8, 0.1, NB_F64);
    nb_train_config cfg = quiet(3, 4);
    cfg.first_epoch = 3;
    CHECK(nb_train(g, &n.model, opt, &tr, NULL, &cfg, NULL) == NB_ERR_ARG,
          "first_epoch == epochs accepted");
    CHECK_ERROR(g, "first_epoch is 3", "[0, 3)");
    cfg.first_epoch = -1;
    CHECK(nb_train(g, &n.model, opt, &tr, NULL, &cfg, NULL) == NB_ERR_ARG,
          "negative first_epoch accepted");
    CHECK_ERROR(g, "first_epoch is -1");
    free_set(&tr);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* ---- early stopping ---- */

typedef struct history {
    double val_loss[512];
    double train_loss[512];
    int64_t epochs;
    const nb_optimizer *opt;
    unsigned char *best_weights; /* at the lowest val loss so far */
    double best;
    unsigned char *first_weights; /* after epoch 1 */
    long allocs[512];
    int64_t stop_after; /* on_epoch returns false after this epoch */
} history;

static bool record(int64_t epoch, const nb_metrics *train,
                   const nb_metrics *val, void *user)
{
    history *h = user;
    h->allocs[epoch] = allocations;
    h->epochs = epoch;
    h->train_loss[epoch] = train->loss;
    h->val_loss[epoch] = val ? val->loss : NAN;
    if (h->best_weights && val && (epoch == 1 || val->loss < h->best)) {
        h->best = val->loss;
        params_copy(h->opt, h->best_weights);
    }
    if (h->first_weights && epoch == 1)
        params_copy(h->opt, h->first_weights);
    return h->stop_after == 0 || epoch < h->stop_after;
}

static void test_early_stopping(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 5);
    net n = build_net(g, NB_F32, 2, 64, 0, OUT_SOFTMAX);
    nb_optimizer *opt = make_opt(g, NB_OPTIM_ADAM, 0.001);
    CHECK(n.model.loss && opt, "build: %s", nb_graph_error(g));
    if (!opt) {
        nb_graph_free(g);
        return;
    }
    /* Few points with 40% of their labels random: the big net learns the
     * noise and the clean validation loss turns up. */
    nb_dataset tr = blobs(31, 90, 1.0, 0.4, NB_F32);
    nb_dataset va = blobs(32, 300, 1.0, 0, NB_F32);
    size_t len = params_size(opt);
    history *h = calloc(1, sizeof *h);
    h->opt = opt;
    h->best_weights = malloc(len);
    nb_train_config c = quiet(300, 8);
    c.patience = 5;
    c.on_epoch = record;
    c.user = h;
    nb_train_result r;
    int rc = nb_train(g, &n.model, opt, &tr, &va, &c, &r);
    CHECK(rc == NB_OK, "%s", nb_graph_error(g));
    printf("early stopping: best epoch %lld (val loss %.4f), stopped after "
           "%lld\n",
           (long long)r.best_epoch, r.val.loss, (long long)r.epochs_run);
    CHECK(r.stopped_early && r.restored && r.epochs_run < 300,
          "stopped %d restored %d after %lld epochs", r.stopped_early,
          r.restored, (long long)r.epochs_run);
    CHECK(r.epochs_run == r.best_epoch + 5 && h->epochs == r.epochs_run,
          "best %lld, run %lld, seen %lld", (long long)r.best_epoch,
          (long long)r.epochs_run, (long long)h->epochs);
    double lowest = INFINITY;
    for (int64_t e = 1; e <= h->epochs; e++)
        lowest = fmin(lowest, h->val_loss[e]);
    if (r.best_epoch >= 1 && r.best_epoch <= h->epochs) {
        CHECK(h->val_loss[r.best_epoch] == lowest, "best %g, lowest %g",
              h->val_loss[r.best_epoch], lowest);
        CHECK(r.val.loss == h->val_loss[r.best_epoch], "result %g, epoch %g",
              r.val.loss, h->val_loss[r.best_epoch]);
    }
    /* The weights are those of the best epoch, bit for bit, and score the
     * recorded best loss again exactly. */
    unsigned char *now = malloc(len);
    params_copy(opt, now);
    CHECK(memcmp(now, h->best_weights, len) == 0, "weights not restored");
    nb_metrics m = {0};
    CHECK(nb_evaluate(g, &n.model, &va, 8, &m) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(m.loss == r.val.loss, "after restore %.17g, best %.17g", m.loss,
          r.val.loss);
    CHECK(nb_graph_training(g), "training flag not restored");

    /* A min_delta nothing can beat: epoch 1 stays the best; the epochs run
     * out before the patience, and epoch 1 is still restored. */
    h->first_weights = malloc(len);
    free(h->best_weights);
    h->best_weights = NULL;
    c.epochs = 3;
    c.min_delta = 1e9;
    rc = nb_train(g, &n.model, opt, &tr, &va, &c, &r);
    CHECK(rc == NB_OK, "%s", nb_graph_error(g));
    CHECK(!r.stopped_early && r.restored && r.best_epoch == 1 &&
              r.epochs_run == 3,
          "stopped %d restored %d best %lld run %lld", r.stopped_early,
          r.restored, (long long)r.best_epoch, (long long)r.epochs_run);
    params_copy(opt, now);
    CHECK(memcmp(now, h->first_weights, len) == 0, "epoch 1 not restored");
    CHECK(r.val.loss == h->val_loss[1], "val of the best epoch");

    /* on_epoch stops the run; without patience nothing is restored. */
    h->stop_after = 2;
    c.patience = 0;
    c.min_delta = 0;
    c.epochs = 10;
    rc = nb_train(g, &n.model, opt, &tr, &va, &c, &r);
    CHECK(rc == NB_OK && r.epochs_run == 2 && r.stopped_early && !r.restored,
          "run %lld stopped %d restored %d", (long long)r.epochs_run,
          r.stopped_early, r.restored);
    CHECK(r.val.loss == h->val_loss[2], "val of the last epoch");

    free(now);
    free(h->first_weights);
    free(h);
    free_set(&tr);
    free_set(&va);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* ---- CSV log and progress output ---- */

static char *slurp(FILE *f)
{
    long len = ftell(f);
    char *s = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
    rewind(f);
    if (len > 0 && fread(s, 1, (size_t)len, f) != (size_t)len)
        s[0] = '\0';
    return s;
}

static int count_char(const char *s, char c)
{
    int k = 0;
    for (; *s; s++)
        k += *s == c;
    return k;
}

static void test_csv_and_progress(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 9);
    net n = build_net(g, NB_F32, 1, 8, 0, OUT_SOFTMAX);
    nb_optimizer *opt = make_opt(g, NB_OPTIM_SGD, 1.0);
    CHECK(n.model.loss && opt, "build: %s", nb_graph_error(g));
    if (!opt) {
        nb_graph_free(g);
        return;
    }
    nb_dataset tr = blobs(41, 60, 0.7, 0, NB_F32);
    nb_dataset va = blobs(42, 30, 0.7, 0, NB_F32);
    const nb_schedule sched = {
        .kind = NB_SCHEDULE_STEP, .lr0 = 0.1, .gamma = 0.5, .step_size = 1};
    history *h = calloc(1, sizeof *h);
    FILE *out = tmpfile();
    nb_train_config c = quiet(3, 16);
    c.schedule = &sched;
    c.csv_path = "test_train_log.csv";
    c.progress = NB_PROGRESS_LINES;
    c.stream = out;
    c.on_epoch = record;
    c.user = h;
    CHECK(nb_train(g, &n.model, opt, &tr, &va, &c, NULL) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK_NEAR(nb_optimizer_lr(opt), 0.025, 1e-15);

    FILE *f = fopen("test_train_log.csv", "r");
    CHECK(f != NULL, "no CSV log");
    char line[512];
    if (f) {
        CHECK(fgets(line, sizeof line, f) &&
                  strcmp(line, "epoch,lr,train_loss,train_acc,val_loss,"
                               "val_acc,seconds\n") == 0,
              "header '%s'", line);
        int rows = 0;
        while (fgets(line, sizeof line, f)) {
            rows++;
            char *p = line, *end;
            double v[7];
            int fields = 0;
            for (; fields < 7; fields++) {
                v[fields] = strtod(p, &end);
                if (end == p)
                    break;
                p = end + (*end == ',');
            }
            CHECK(fields == 7 && strcmp(p, "\n") == 0, "row %d: '%s'", rows,
                  line);
            if (fields < 7 || rows > 3)
                continue;
            CHECK(v[0] == rows, "epoch %g in row %d", v[0], rows);
            CHECK_NEAR(v[1], 0.1 * pow(0.5, rows - 1), 1e-12);
            CHECK_NEAR(v[2], h->train_loss[rows], 1e-7 * h->train_loss[rows]);
            CHECK_NEAR(v[4], h->val_loss[rows], 1e-7 * h->val_loss[rows]);
            CHECK(v[3] >= 0 && v[3] <= 1 && v[5] >= 0 && v[5] <= 1 && v[6] >= 0,
                  "row %d: '%s'", rows, line);
        }
        CHECK(rows == 3, "%d rows", rows);
        fclose(f);
    }
    char *text = slurp(out);
    CHECK(count_char(text, '\n') == 3 && !strchr(text, '\r'), "lines: '%s'",
          text);
    for (int e = 1; e <= 3; e++) {
        char head[32];
        snprintf(head, sizeof head, "epoch %d/3: loss ", e);
        char *at = strstr(text, head);
        CHECK(at != NULL, "no '%s' in '%s'", head, text);
        char *eol = at ? strchr(at, '\n') : NULL;
        if (eol) {
            *eol = '\0';
            CHECK(strstr(at, ", acc ") && strstr(at, "%, val_loss ") &&
                      strstr(at, ", val_acc ") && strstr(at, " s"),
                  "line '%s'", at);
            *eol = '\n';
        }
    }
    free(text);
    fclose(out);

    /* Without a validation set or an output, those fields stay empty. */
    nb_model bare = n.model;
    bare.output = NULL;
    c.progress = NB_PROGRESS_OFF;
    c.stream = NULL;
    c.epochs = 1;
    CHECK(nb_train(g, &bare, opt, &tr, NULL, &c, NULL) == NB_OK, "%s",
          nb_graph_error(g));
    f = fopen("test_train_log.csv", "r");
    if (f) {
        CHECK(fgets(line, sizeof line, f) && fgets(line, sizeof line, f),
              "short log");
        /* After epoch, lr and train_loss: four commas in a row. */
        char *p = strchr(line, ',');
        p = p ? strchr(p + 1, ',') : NULL;
        p = p ? strchr(p + 1, ',') : NULL;
        CHECK(strncmp(line, "1,0.1,", 6) == 0 && p &&
                  strncmp(p, ",,,,", 4) == 0,
              "row '%s'", line);
        CHECK(!fgets(line, sizeof line, f), "extra row '%s'", line);
        fclose(f);
    }
    /* The library reads its own log back: the empty fields become NaN. */
    const nb_csv_options csv_opt = {.header = true, .label_column = -1,
                                    .dtype = NB_F64, .missing_as_nan = true};
    nb_status st = {0};
    nb_tensor *logged = nb_csv_read("test_train_log.csv", &csv_opt, NULL, &st);
    CHECK(logged != NULL, "reading the log back: %s", st.message);
    if (logged) {
        const double *row = nb_tensor_f64(logged);
        CHECK(nb_tensor_size(logged) == 7 && row[0] == 1 &&
                  isfinite(row[2]) && isnan(row[3]) && isnan(row[4]) &&
                  isnan(row[5]) && row[6] >= 0,
              "log read back as %g %g %g %g %g", row[0], row[2], row[3],
              row[4], row[5]);
        nb_tensor_free(logged);
    }

    /* The bar: drawn at the first step of the run, then the summary. */
    out = tmpfile();
    c.progress = NB_PROGRESS_BAR;
    c.stream = out;
    c.epochs = 2;
    c.csv_path = NULL;
    CHECK(nb_train(g, &n.model, opt, &tr, &va, &c, NULL) == NB_OK, "%s",
          nb_graph_error(g));
    text = slurp(out);
    CHECK(strstr(text, "\repoch 1/2 [") && strstr(text, "] 1/4 loss ") &&
              strstr(text, " samples/s ETA ") && strstr(text, " acc "),
          "bar: '%s'", text);
    CHECK(strstr(text, "epoch 1/2: loss ") && strstr(text, "epoch 2/2: loss "),
          "summaries: '%s'", text);
    free(text);
    fclose(out);

    /* Auto on a file means lines; off means nothing. */
    out = tmpfile();
    c.progress = NB_PROGRESS_AUTO;
    c.stream = out;
    CHECK(nb_train(g, &n.model, opt, &tr, &va, &c, NULL) == NB_OK, "%s",
          nb_graph_error(g));
    text = slurp(out);
    CHECK(count_char(text, '\n') == 2 && !strchr(text, '\r') &&
              strncmp(text, "epoch 1/2: loss ", 16) == 0,
          "auto: '%s'", text);
    free(text);
    fclose(out);
    out = tmpfile();
    c.progress = NB_PROGRESS_OFF;
    c.stream = out;
    CHECK(nb_train(g, &n.model, opt, &tr, &va, &c, NULL) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(ftell(out) == 0, "off wrote %ld bytes", ftell(out));
    fclose(out);

    /* A restore is announced. */
    out = tmpfile();
    c.progress = NB_PROGRESS_LINES;
    c.stream = out;
    c.epochs = 3;
    c.patience = 5;
    c.min_delta = 1e9;
    CHECK(nb_train(g, &n.model, opt, &tr, &va, &c, NULL) == NB_OK, "%s",
          nb_graph_error(g));
    text = slurp(out);
    CHECK(strstr(text, "restored the parameters of epoch 1 (val_loss "),
          "restore: '%s'", text);
    free(text);
    fclose(out);

    remove("test_train_log.csv");
    free(h);
    free_set(&tr);
    free_set(&va);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* ---- batching ---- */

static int64_t steps_for(nb_graph *g, const net *n, const nb_dataset *tr,
                         int64_t batch, bool drop_last, int64_t *count)
{
    nb_optimizer *opt = make_opt(g, NB_OPTIM_SGD, 0.01);
    nb_train_config c = quiet(3, batch);
    c.drop_last = drop_last;
    nb_train_result r;
    int rc = nb_train(g, &n->model, opt, tr, NULL, &c, &r);
    CHECK(rc == NB_OK, "batch %lld: %s", (long long)batch, nb_graph_error(g));
    int64_t steps = opt ? nb_optimizer_steps(opt) : -1;
    *count = r.train.count;
    nb_optimizer_free(opt);
    return steps;
}

/* One epoch of plain SGD without shuffling, in batches of `batch`, by
 * hand: feed, forward, backward, w -= lr dL/dw. */
static void sgd_by_hand(nb_graph *g, const net *n, const nb_dataset *tr,
                        int64_t batch, double lr)
{
    int64_t rows = nb_tensor_dim(tr->x, 0);
    nb_graph_set_training(g, true);
    for (int64_t first = 0; first < rows; first += batch) {
        int64_t k = rows - first < batch ? rows - first : batch;
        nb_feed(g, n->model.x, 2, SHAPE(k, 2),
                nb_tensor_f64(tr->x) + 2 * first);
        nb_feed(g, n->model.y, 1, SHAPE(k), nb_tensor_f64(tr->y) + first);
        nb_forward(g, n->model.loss);
        nb_backward(g, n->model.loss);
        for (int64_t id = 0; id < nb_graph_node_count(g); id++) {
            nb_node *p = nb_graph_node(g, id);
            if (nb_node_get_kind(p) != NB_NODE_PARAM)
                continue;
            nb_tensor *w = nb_node_value(p);
            const nb_tensor *dw = nb_node_grad(p);
            for (int64_t i = 0; i < nb_tensor_size(w); i++)
                nb_tensor_f64(w)[i] -= lr * nb_tensor_get(dw, i);
        }
    }
}

static void test_batching(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 13);
    net n = build_net(g, NB_F32, 1, 6, 0, OUT_LOGITS);
    nb_dataset tr = blobs(51, 30, 0.7, 0, NB_F32);
    int64_t count;
    CHECK(steps_for(g, &n, &tr, 0, false, &count) == 3 && count == 30,
          "full batch");
    CHECK(steps_for(g, &n, &tr, 100, false, &count) == 3 && count == 30,
          "batch larger than the set");
    CHECK(steps_for(g, &n, &tr, 1, false, &count) == 90 && count == 30,
          "online");
    CHECK(steps_for(g, &n, &tr, 7, false, &count) == 15 && count == 30,
          "batch 7: 5 per epoch, the last of 2 rows");
    CHECK(steps_for(g, &n, &tr, 7, true, &count) == 12 && count == 28,
          "batch 7, drop_last: 4 per epoch");
    free_set(&tr);
    nb_graph_free(g);

    /* The loop's full-batch and online epochs against hand-written ones on
     * twin f64 graphs. */
    const int64_t sizes[] = {0, 1, 4};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        nb_graph *ga = nb_graph_new(), *gb = nb_graph_new();
        nb_graph_seed(ga, 17);
        nb_graph_seed(gb, 17);
        net a = build_net(ga, NB_F64, 1, 5, 0, OUT_SOFTMAX);
        net b = build_net(gb, NB_F64, 1, 5, 0, OUT_SOFTMAX);
        nb_dataset d = blobs(52, 21, 0.7, 0, NB_F64);
        nb_optimizer *opt = make_opt(ga, NB_OPTIM_SGD, 0.3);
        nb_train_config c = quiet(1, sizes[s]);
        c.no_shuffle = true;
        CHECK(nb_train(ga, &a.model, opt, &d, NULL, &c, NULL) == NB_OK, "%s",
              nb_graph_error(ga));
        sgd_by_hand(gb, &b, &d, sizes[s] ? sizes[s] : 21, 0.3);
        double worst = 0;
        for (int64_t id = 0; id < nb_graph_node_count(ga); id++) {
            nb_node *p = nb_graph_node(ga, id), *q = nb_graph_node(gb, id);
            if (nb_node_get_kind(p) != NB_NODE_PARAM)
                continue;
            for (int64_t i = 0; i < nb_tensor_size(nb_node_value(p)); i++)
                worst = fmax(worst, fabs(nb_tensor_get(nb_node_value(p), i) -
                                         nb_tensor_get(nb_node_value(q), i)));
        }
        CHECK(worst < 1e-12, "batch %lld: loop and hand differ by %g",
              (long long)sizes[s], worst);
        free_set(&d);
        nb_optimizer_free(opt);
        nb_graph_free(ga);
        nb_graph_free(gb);
    }
}

/* ---- errors ---- */

static void test_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 19);
    net n = build_net(g, NB_F32, 1, 4, 0, OUT_SOFTMAX);
    nb_optimizer *opt = make_opt(g, NB_OPTIM_SGD, 0.1);
    CHECK(n.model.loss && opt, "build: %s", nb_graph_error(g));
    if (!opt) {
        nb_graph_free(g);
        return;
    }
    nb_dataset tr = blobs(61, 30, 0.7, 0, NB_F32);
    nb_dataset va = blobs(62, 12, 0.7, 0, NB_F32);
    nb_train_config c = quiet(2, 10);

    c.epochs = 0;
    CHECK(nb_train(g, &n.model, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "0");
    CHECK_ERROR(g, "train", "epochs is 0");
    c.epochs = 2;
    c.patience = 3;
    CHECK(nb_train(g, &n.model, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "pat");
    CHECK_ERROR(g, "train", "patience 3", "validation set");
    c.patience = 0;
    c.batch_size = -1;
    CHECK(nb_train(g, &n.model, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "-1");
    CHECK_ERROR(g, "train", "batch_size is -1");
    c.batch_size = 50;
    c.drop_last = true;
    CHECK(nb_train(g, &n.model, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "dl");
    CHECK_ERROR(g, "train", "drop_last", "50", "30 training rows");
    c.batch_size = 10;
    c.drop_last = false;
    c.min_delta = -1;
    CHECK(nb_train(g, &n.model, opt, &tr, &va, &c, NULL) == NB_ERR_ARG, "md");
    CHECK_ERROR(g, "train", "min_delta");
    c.min_delta = 0;
    CHECK(nb_train(g, &n.model, opt, &tr, NULL, NULL, NULL) == NB_ERR_ARG,
          "NULL config");
    CHECK_ERROR(g, "train", "config is NULL");
    CHECK(nb_train(g, &n.model, NULL, &tr, NULL, &c, NULL) == NB_ERR_ARG,
          "NULL optimiser");
    CHECK_ERROR(g, "train", "optimiser is NULL");
    CHECK(nb_train(g, NULL, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "model");
    CHECK_ERROR(g, "train", "model is NULL");
    CHECK(nb_train(g, &n.model, opt, NULL, NULL, &c, NULL) == NB_ERR_ARG, "ds");
    CHECK_ERROR(g, "train", "training set is NULL");
    CHECK(nb_train(NULL, &n.model, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG,
          "NULL graph");

    nb_model broken = n.model;
    broken.loss = NULL;
    CHECK(nb_train(g, &broken, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "loss");
    CHECK_ERROR(g, "train", "model->loss is NULL");
    broken = n.model;
    broken.x = n.model.loss;
    CHECK(nb_train(g, &broken, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "x");
    CHECK_ERROR(g, "train", "model->x", "not an input");
    /* A loss that failed to build: the constructor's message stands. */
    nb_node *P = nb_param(g, "P", NB_F32, 2, SHAPE(5, 5));
    nb_node *bad = nb_matmul(g, n.model.x, P);
    broken = n.model;
    broken.loss = nb_mean(g, bad);
    CHECK(nb_train(g, &broken, opt, &tr, NULL, &c, NULL) < 0, "bad loss");
    CHECK_ERROR(g, "matmul");
    broken = n.model;
    broken.loss = n.logits;
    CHECK(nb_train(g, &broken, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "sc");
    CHECK_ERROR(g, "train", "not a scalar");

    /* Datasets that do not fit. */
    nb_dataset odd = {.x = tr.x, .y = nb_tensor_new(NB_F32, 1, SHAPE(29))};
    CHECK(nb_train(g, &n.model, opt, &odd, NULL, &c, NULL) == NB_ERR_ARG, "r");
    CHECK_ERROR(g, "train", "training set has 30 rows in x but 29 in y");
    nb_tensor_free(odd.y);
    odd = (nb_dataset){.x = nb_tensor_new(NB_F32, 2, SHAPE(30, 3)), .y = tr.y};
    CHECK(nb_train(g, &n.model, opt, &odd, NULL, &c, NULL) == NB_ERR_ARG, "s");
    CHECK_ERROR(g, "train", "training set x has shape [30,3]", "[-1,2]");
    nb_tensor_free(odd.x);
    odd = (nb_dataset){.x = nb_tensor_new(NB_F64, 2, SHAPE(30, 2)), .y = tr.y};
    CHECK(nb_train(g, &n.model, opt, &odd, NULL, &c, NULL) == NB_ERR_ARG, "t");
    CHECK_ERROR(g, "train", "training set x is f64", "'x' is f32");
    nb_tensor_free(odd.x);
    odd = (nb_dataset){.x = va.x, .y = nb_tensor_new(NB_F32, 2, SHAPE(12, 3))};
    CHECK(nb_train(g, &n.model, opt, &tr, &odd, &c, NULL) == NB_ERR_ARG, "v");
    CHECK_ERROR(g, "train", "validation set y has shape [12,3]");
    nb_tensor_free(odd.y);
    odd = (nb_dataset){.x = nb_tensor_new(NB_F32, 2, SHAPE(0, 2)),
                       .y = nb_tensor_new(NB_F32, 1, SHAPE(0))};
    CHECK(nb_train(g, &n.model, opt, &odd, NULL, &c, NULL) == NB_ERR_ARG, "0");
    CHECK_ERROR(g, "train", "training set has no rows");
    free_set(&odd);

    /* Targets that do not fit the output's columns. */
    nb_node *rows4 = nb_input(g, "rows4", NB_F32, 2, SHAPE(NB_DYNAMIC, 4));
    broken = n.model;
    broken.y = rows4;
    CHECK(nb_train(g, &broken, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "k");
    CHECK_ERROR(g, "train", "3 columns", "[-1,4]");

    /* A schedule with bad fields gives NaN. */
    const nb_schedule bad_sched = {
        .kind = NB_SCHEDULE_STEP, .lr0 = 0.1, .gamma = 0.5, .step_size = 0};
    c.schedule = &bad_sched;
    CHECK(nb_train(g, &n.model, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "sch");
    CHECK_ERROR(g, "train", "schedule", "epoch 1");
    c.schedule = NULL;

    c.csv_path = "no/such/directory/log.csv";
    CHECK(nb_train(g, &n.model, opt, &tr, NULL, &c, NULL) == NB_ERR_ARG, "csv");
    CHECK_ERROR(g, "train", "CSV log", "no/such/directory/log.csv");
    c.csv_path = NULL;

    /* A NaN in row 15 spoils the second batch of the first epoch. */
    nb_dataset nan_set = blobs(61, 30, 0.7, 0, NB_F32);
    nb_tensor_set(nan_set.x, 2 * 15, NAN);
    c.no_shuffle = true;
    nb_graph_set_training(g, false);
    nb_train_result r;
    CHECK(nb_train(g, &n.model, opt, &nan_set, NULL, &c, &r) ==
              NB_ERR_NONFINITE,
          "NaN loss accepted");
    CHECK_ERROR(g, "train", "loss is NaN", "epoch 1, batch 2");
    CHECK(!nb_graph_training(g), "training flag not restored after an error");
    CHECK(r.epochs_run == 0, "epochs_run %lld", (long long)r.epochs_run);
    free_set(&nan_set);

    /* The graph still trains. */
    nb_graph_set_training(g, true);
    CHECK(nb_train(g, &n.model, opt, &tr, &va, &c, &r) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(r.epochs_run == 2 && nb_graph_error(g) == NULL, "after errors");

    free_set(&tr);
    free_set(&va);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* ---- allocations ---- */

static void test_no_allocation_per_epoch(void)
{
    for (int kind = 0; kind < 2; kind++) {
        nb_graph *g = nb_graph_new();
        nb_graph_seed(g, 23);
        /* Dropout, a partial last batch, a validation set larger than a
         * batch, a schedule, early stopping copies, lines and a CSV log;
         * the second model's output needs a forward pass of its own. */
        net n = build_net(g, NB_F32, 2, 16, 0.1,
                          kind ? OUT_IDENTITY_SOFTMAX : OUT_SOFTMAX);
        nb_optimizer *opt = make_opt(g, NB_OPTIM_ADAM, 0.01);
        nb_dataset tr = blobs(71, 75, 0.7, 0.1, NB_F32);
        nb_dataset va = blobs(72, 40, 0.7, 0, NB_F32);
        const nb_schedule sched = {.kind = NB_SCHEDULE_COSINE,
                                   .lr0 = 0.01,
                                   .period = 5,
                                   .min_lr = 0.001};
        history *h = calloc(1, sizeof *h);
        FILE *out = tmpfile();
        nb_train_config c = quiet(5, 16);
        c.schedule = &sched;
        c.patience = 100;
        c.progress = NB_PROGRESS_LINES;
        c.stream = out;
        c.csv_path = "test_train_alloc.csv";
        c.on_epoch = record;
        c.user = h;
        h->allocs[0] = allocations;
        CHECK(nb_train(g, &n.model, opt, &tr, &va, &c, NULL) == NB_OK, "%s",
              nb_graph_error(g));
        for (int e = 2; e <= 5; e++)
            CHECK(h->allocs[e] == h->allocs[e - 1],
                  "model %d: epoch %d made %ld allocations", kind, e,
                  h->allocs[e] - h->allocs[e - 1]);
        printf("model %d: %ld allocations in epoch 1, %ld in epochs 2-5\n",
               kind, h->allocs[1] - h->allocs[0], h->allocs[5] - h->allocs[1]);
        fclose(out);
        remove("test_train_alloc.csv");
        free(h);
        free_set(&tr);
        free_set(&va);
        nb_optimizer_free(opt);
        nb_graph_free(g);
    }
}

/* A two-headed model with a per-row weight: x feeds both heads, y is the
 * first head's target, extra[0] the second's and extra[1] a 0/1 weight of
 * each row in the second loss. nb_train must give the parameters a
 * hand-written loop gives over the same batches (no shuffling), bit for
 * bit, and nb_evaluate the loss of a forward over the whole set; a
 * mismatched dataset is refused naming the extra tensor. */
static nb_tensor *filled_rows(int rank, const int64_t *shape, uint64_t *state)
{
    nb_tensor *t = nb_tensor_new(NB_F64, rank, shape);
    for (int64_t i = 0; i < nb_tensor_size(t); i++) {
        *state = *state * 6364136223846793005u + 1442695040888963407u;
        nb_tensor_set(t, i, (double)(*state >> 11) / 9007199254740992.0 - 0.5);
    }
    return t;
}

typedef struct two_heads {
    nb_graph *g;
    nb_node *x, *y1, *y2, *w, *loss, *extra[2];
    nb_optimizer *opt;
} two_heads;

static void two_heads_build(two_heads *m)
{
    nb_graph *g = m->g = nb_graph_new();
    nb_graph_seed(g, 3);
    m->x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 3));
    m->y1 = nb_input(g, "y1", NB_F64, 2, SHAPE(NB_DYNAMIC, 1));
    m->y2 = nb_input(g, "y2", NB_F64, 2, SHAPE(NB_DYNAMIC, 2));
    m->w = nb_input(g, "w", NB_F64, 2, SHAPE(NB_DYNAMIC, 1));
    nb_node *h = nb_tanh(g, nb_linear_layer(g, m->x, 4, true, "body",
                                            NB_INIT_DEFAULT, NB_ACT_TANH,
                                            NULL));
    nb_node *a = nb_linear_layer(g, h, 1, true, "head1", NB_INIT_DEFAULT,
                                 NB_ACT_LINEAR, NULL);
    nb_node *b = nb_linear_layer(g, h, 2, true, "head2", NB_INIT_DEFAULT,
                                 NB_ACT_LINEAR, NULL);
    nb_node *second = nb_mean(g, nb_mul(g, nb_square(g, nb_sub(g, b, m->y2)),
                                        m->w));
    m->loss = nb_add(g, nb_mse_loss(g, a, m->y1), second);
    m->extra[0] = m->y2;
    m->extra[1] = m->w;
    nb_optim_config c = {.kind = NB_OPTIM_SGD, .lr = 0.1};
    m->opt = nb_optimizer_new(g, &c, 0, NULL);
}

static void test_extra_inputs(void)
{
    const int64_t n = 10, batch = 4;
    uint64_t state = 77;
    nb_tensor *x = filled_rows(2, SHAPE(n, 3), &state);
    nb_tensor *y1 = filled_rows(2, SHAPE(n, 1), &state);
    nb_tensor *y2 = filled_rows(2, SHAPE(n, 2), &state);
    nb_tensor *w = nb_tensor_new(NB_F64, 2, SHAPE(n, 1));
    for (int64_t i = 0; i < n; i++)
        nb_tensor_set(w, i, i % 3 ? 1 : 0);
    nb_tensor *extra[2] = {y2, w};
    nb_dataset ds = {.x = x, .y = y1, .n_extra = 2, .extra = extra};

    two_heads a, b;
    two_heads_build(&a);
    two_heads_build(&b);
    CHECK(a.loss && a.opt && b.opt, "two heads: %s", nb_graph_error(a.g));
    nb_model model = {.x = a.x, .y = a.y1, .loss = a.loss, .n_extra = 2,
                      .extra = a.extra};
    nb_train_config cfg = {.epochs = 3, .batch_size = batch,
                           .no_shuffle = true, .progress = NB_PROGRESS_OFF};
    nb_train_result r;
    int rc = nb_train(a.g, &model, a.opt, &ds, &ds, &cfg, &r);
    CHECK(rc == NB_OK, "train with extras: %s", nb_graph_error(a.g));

    /* The same three epochs by hand on graph b. */
    for (int e = 0; e < 3; e++)
        for (int64_t first = 0; first < n; first += batch) {
            int64_t count = n - first < batch ? n - first : batch;
            int64_t idx[4];
            for (int64_t k = 0; k < count; k++)
                idx[k] = first + k;
            nb_feed_rows(b.g, b.x, x, idx, count);
            nb_feed_rows(b.g, b.y1, y1, idx, count);
            nb_feed_rows(b.g, b.y2, y2, idx, count);
            nb_feed_rows(b.g, b.w, w, idx, count);
            nb_forward(b.g, b.loss);
            nb_backward(b.g, b.loss);
            nb_optimizer_step(b.opt);
        }
    bool same = nb_optimizer_param_count(a.opt) ==
                nb_optimizer_param_count(b.opt);
    for (int i = 0; same && i < nb_optimizer_param_count(a.opt); i++) {
        const nb_tensor *pa = nb_node_value(nb_optimizer_param(a.opt, i));
        const nb_tensor *pb = nb_node_value(nb_optimizer_param(b.opt, i));
        for (int64_t k = 0; k < nb_tensor_size(pa); k++)
            same &= nb_tensor_get(pa, k) == nb_tensor_get(pb, k);
    }
    CHECK(same, "nb_train with extras differs from the hand-written loop");

    /* nb_evaluate feeds the extras too: its loss is one full forward's. */
    nb_metrics mt;
    rc = nb_evaluate(a.g, &model, &ds, 0, &mt);
    nb_feed_rows(b.g, b.x, x, NULL, n);
    nb_feed_rows(b.g, b.y1, y1, NULL, n);
    nb_feed_rows(b.g, b.y2, y2, NULL, n);
    nb_feed_rows(b.g, b.w, w, NULL, n);
    nb_forward(b.g, b.loss);
    CHECK(rc == NB_OK && mt.loss == nb_tensor_get(nb_node_value(b.loss), 0),
          "evaluate with extras: %.17g vs %.17g (%s)", mt.loss,
          nb_tensor_get(nb_node_value(b.loss), 0), nb_graph_error(a.g));
    CHECK(fabs(r.val.loss - mt.loss) < 1e-15,
          "the loop's validation loss %.17g, evaluate's %.17g", r.val.loss,
          mt.loss);

    /* Mismatches are named. */
    nb_dataset short_ds = {.x = x, .y = y1, .n_extra = 1, .extra = extra};
    CHECK(nb_train(a.g, &model, a.opt, &short_ds, NULL, &cfg, NULL) != NB_OK,
          "one extra tensor for two extra inputs accepted");
    CHECK_ERROR(a.g, "train", "1 extra tensors", "2 extra inputs");
    nb_tensor *w_short = nb_tensor_new(NB_F64, 2, SHAPE(n - 1, 1));
    nb_tensor *bad[2] = {y2, w_short};
    nb_dataset rows_ds = {.x = x, .y = y1, .n_extra = 2, .extra = bad};
    CHECK(nb_evaluate(a.g, &model, &rows_ds, 0, &mt) != NB_OK,
          "an extra tensor with too few rows accepted");
    CHECK_ERROR(a.g, "evaluate", "extra[1]");
    nb_tensor *wide = nb_tensor_new(NB_F64, 2, SHAPE(n, 3));
    nb_tensor *bad2[2] = {wide, w};
    rows_ds.extra = bad2;
    CHECK(nb_evaluate(a.g, &model, &rows_ds, 0, &mt) != NB_OK,
          "an extra tensor of the wrong shape accepted");
    CHECK_ERROR(a.g, "extra[0]", "y2");
    nb_node *not_input[2] = {a.y2, a.loss};
    nb_model bad_model = model;
    bad_model.extra = not_input;
    CHECK(nb_evaluate(a.g, &bad_model, &ds, 0, &mt) != NB_OK,
          "an op node as an extra input accepted");
    CHECK_ERROR(a.g, "extra[1]", "not an input");
    nb_tensor_free(w_short);
    nb_tensor_free(wide);

    nb_optimizer_free(a.opt);
    nb_optimizer_free(b.opt);
    nb_graph_free(a.g);
    nb_graph_free(b.g);
    nb_dataset_free(&ds); /* x and y; the extras are borrowed */
    nb_tensor_free(y2);
    nb_tensor_free(w);
}

/* ---- the data-parallel hooks (nb_train_config.dist) ----
 *
 * Without MPI: a hook table of one process that counts its calls, or that
 * plays a rank of a larger job whose other ranks are absent, or whose
 * reduce reports another rank's failure. The MPI side is tests/dist. */

typedef struct fake_dist {
    int starts, epochs, reduces, grad_reduces;
    int fail_at;    /* reduce call that reports a failed rank; 0 = none */
    double weight;  /* the last weight given with gradients */
} fake_dist;

static int fake_start(void *ctx, nb_graph *g, nb_optimizer *opt, int status)
{
    (void)g;
    (void)opt;
    ((fake_dist *)ctx)->starts++;
    return status;
}

static int fake_epoch(void *ctx, nb_graph *g, int64_t *order, int64_t n)
{
    (void)g;
    (void)order;
    (void)n;
    ((fake_dist *)ctx)->epochs++;
    return NB_OK;
}

static int fake_reduce(void *ctx, nb_graph *g, nb_optimizer *opt,
                       double weight, int status, double *sums, int n)
{
    (void)sums;
    (void)n;
    fake_dist *f = ctx;
    f->reduces++;
    if (opt) {
        f->grad_reduces++;
        f->weight = weight;
    }
    if (status == NB_OK && f->reduces == f->fail_at)
        return nb_graph_set_error(g, NB_ERR_IO, "fake: rank 1 failed");
    return status;
}

static void test_dist_hooks(void)
{
    nb_dataset tr = blobs(21, 90, 0.8, 0.1, NB_F32);
    nb_dataset va = blobs(22, 30, 0.8, 0.1, NB_F32);
    unsigned char *w[2] = {NULL, NULL};
    size_t len = 0;
    fake_dist f = {0};
    /* One rank through the hooks trains to the bits of no hooks: 90 rows
     * in batches of 16 are 6 steps an epoch, each with one reduce, plus
     * the validation sums and the epoch's stop vote. */
    for (int k = 0; k < 2; k++) {
        nb_graph *g = nb_graph_new();
        nb_graph_seed(g, 3);
        net n = build_net(g, NB_F32, 1, 8, 0, OUT_SOFTMAX);
        nb_optimizer *opt = make_opt(g, NB_OPTIM_SGD, 0.1);
        nb_train_dist d = {.rank = 0, .size = 1, .ctx = &f,
                           .start = fake_start, .epoch = fake_epoch,
                           .reduce = fake_reduce};
        nb_train_config c = quiet(3, 16);
        c.dist = k ? &d : NULL;
        nb_train_result r;
        int rc = nb_train(g, &n.model, opt, &tr, &va, &c, &r);
        CHECK(rc == NB_OK, "%s", nb_graph_error(g));
        CHECK(r.train.count == 90 && r.val.count == 30,
              "counts %lld %lld", (long long)r.train.count,
              (long long)r.val.count);
        len = params_size(opt);
        w[k] = malloc(len);
        params_copy(opt, w[k]);
        nb_optimizer_free(opt);
        nb_graph_free(g);
    }
    CHECK(memcmp(w[0], w[1], len) == 0, "one rank differs from no hooks");
    CHECK(f.starts == 1 && f.epochs == 3 && f.grad_reduces == 18 &&
              f.reduces == 18 + 3 + 3 && f.weight == 1,
          "hooks called: start %d, epoch %d, reduce %d (%d with gradients), "
          "weight %g",
          f.starts, f.epochs, f.reduces, f.grad_reduces, f.weight);
    free(w[0]);
    free(w[1]);

    /* Rank 1 of 2: its shard is half of each global batch of 32, and it
     * neither prints nor writes the log. */
    const char *csv = "test_train_dist_rank1.csv";
    remove(csv);
    char out[64] = "";
    FILE *stream = fmemopen(out, sizeof out, "w");
    nb_graph *g = nb_graph_new();
    net n = build_net(g, NB_F32, 1, 8, 0, OUT_SOFTMAX);
    nb_optimizer *opt = make_opt(g, NB_OPTIM_SGD, 0.1);
    f = (fake_dist){0};
    nb_train_dist d = {.rank = 1, .size = 2, .ctx = &f, .start = fake_start,
                       .epoch = fake_epoch, .reduce = fake_reduce};
    nb_train_config c = quiet(1, 16);
    c.dist = &d;
    c.progress = NB_PROGRESS_LINES;
    c.stream = stream;
    c.csv_path = csv;
    int rc = nb_train(g, &n.model, opt, &tr, NULL, &c, NULL);
    if (stream)
        fclose(stream);
    CHECK(rc == NB_OK, "%s", nb_graph_error(g));
    /* ceil(90 / 32) = 3 global batches; the last has 26 rows, 13 here. */
    CHECK(f.grad_reduces == 3 && f.weight == 0.5,
          "%d reduces, last weight %g", f.grad_reduces, f.weight);
    CHECK(out[0] == '\0', "rank 1 printed '%s'", out);
    FILE *log = fopen(csv, "r");
    CHECK(!log, "rank 1 wrote the CSV log");
    if (log)
        fclose(log);

    /* Another rank's failure at the second step: nb_train returns it,
     * after one step. */
    f = (fake_dist){.fail_at = 2};
    c = quiet(2, 16);
    c.dist = &d;
    rc = nb_train(g, &n.model, opt, &tr, NULL, &c, NULL);
    CHECK(rc == NB_ERR_IO && strstr(nb_graph_error(g), "rank 1 failed"),
          "rc %d: %s", rc, nb_graph_error(g));
    CHECK(f.reduces == 2 && nb_optimizer_steps(opt) == 3 + 1,
          "%d reduces, %lld steps", f.reduces,
          (long long)nb_optimizer_steps(opt));
    nb_graph_clear_error(g);

    /* A table nb_dist_train would never make is refused before any hook
     * runs (a collective on it could not be matched). */
    f = (fake_dist){0};
    nb_train_dist bad = d;
    bad.rank = 2;
    c.dist = &bad;
    rc = nb_train(g, &n.model, opt, &tr, NULL, &c, NULL);
    CHECK(rc == NB_ERR_ARG && f.starts == 0, "rc %d, %d starts", rc,
          f.starts);
    nb_graph_clear_error(g);
    bad = d;
    bad.reduce = NULL;
    c.dist = &bad;
    rc = nb_train(g, &n.model, opt, &tr, NULL, &c, NULL);
    CHECK(rc == NB_ERR_ARG && f.starts == 0, "rc %d, %d starts", rc,
          f.starts);
    nb_graph_clear_error(g);
    /* Every rank needs a row. */
    nb_dataset one = blobs(23, 1, 0.8, 0.1, NB_F32);
    c.dist = &d;
    rc = nb_train(g, &n.model, opt, &one, NULL, &c, NULL);
    CHECK(rc == NB_ERR_ARG && f.starts == 1 &&
              strstr(nb_graph_error(g), "every rank needs a row"),
          "rc %d: %s", rc, nb_graph_error(g));
    free_set(&one);
    nb_optimizer_free(opt);
    nb_graph_free(g);
    free_set(&tr);
    free_set(&va);
}

int main(void)
{
    nb_set_allocator(&(nb_allocator){counting_alloc, counting_free, NULL});
    test_learns_rings();
    test_evaluate_by_hand();
    test_determinism();
    test_resume_from_checkpoint();
    test_early_stopping();
    test_csv_and_progress();
    test_batching();
    test_errors();
    test_no_allocation_per_epoch();
    test_extra_inputs();
    test_dist_hooks();
    nb_set_allocator(NULL);
    return tu_finish("train");
}
