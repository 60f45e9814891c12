/* A training step in steady state makes no heap allocation: buffers are
 * planned when shapes change and reused after that. Counted through the
 * library's allocator hook, which every allocation of the library goes
 * through. */
#include "test_util.h"

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

static void fill(nb_graph *g, nb_node *n, double scale)
{
    nb_tensor *t = nb_node_value(n);
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        nb_tensor_set(t, i, scale * nb_rng_normal(g));
}

static void normal_floats(nb_graph *g, float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)nb_rng_normal(g);
}

/* w -= lr dw for every parameter. */
static void sgd(nb_node *const *params, int n_params, float lr)
{
    for (int p = 0; p < n_params; p++) {
        float *w = nb_tensor_f32(nb_node_value(params[p]));
        const float *dw = nb_tensor_f32(nb_node_grad(params[p]));
        for (int64_t i = 0; i < nb_tensor_size(nb_node_value(params[p])); i++)
            w[i] -= lr * dw[i];
    }
}

/* One step of plain SGD: forward, backward, update. */
static int step(nb_graph *g, nb_node *x, nb_node *labels, nb_node *loss,
                nb_node *const *params, int n_params, int64_t batch,
                const float *xs, const float *ys)
{
    int rc = nb_feed(g, x, 2, SHAPE(batch, 20), xs);
    rc = rc ? rc : nb_feed(g, labels, 1, SHAPE(batch), ys);
    rc = rc ? rc : nb_forward(g, loss);
    rc = rc ? rc : nb_backward(g, loss);
    if (rc == NB_OK)
        sgd(params, n_params, 0.01f);
    return rc;
}

/* Looking a name up reads the nodes' names and writes nothing: an unnamed
 * node's "<op>#<id>" is compared, not made and kept. */
static void lookup_allocates_nothing(void)
{
    enum { CHAIN = 1000000 };
    nb_graph *g = nb_graph_new();
    nb_node *y = nb_input(g, "x", NB_F32, 1, SHAPE(4));
    for (int i = 0; i < CHAIN && y; i++)
        y = nb_tanh(g, y);
    CHECK(y != NULL, "build: %s", nb_graph_error(g));
    long before = allocations;
    CHECK(nb_graph_find(g, "absent") == NULL, "a missing name is not found");
    CHECK(nb_graph_find(g, "tanh#") == NULL, "an id is required");
    CHECK(nb_graph_find(g, "tanh#01") == NULL, "the id is written plainly");
    CHECK(nb_graph_find(g, "tanh#0") == NULL, "node 0 is the input");
    nb_node *mid = nb_graph_find(g, "tanh#500000");
    CHECK(mid && nb_node_id(mid) == 500000, "an unnamed node by its name");
    CHECK(nb_graph_find(g, "x") == nb_graph_node(g, 0), "a named node");
    CHECK(allocations == before, "%ld allocations in six lookups",
          allocations - before);
    nb_graph_free(g);
}

/* Pooling and normalisation: batch norm (training, with its running
 * statistics), max and average pooling, global pooling and layer norm, fed
 * a dynamic batch, forward, backward and an update in steady state. */
static void cnn_parts_steady(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 4, SHAPE(NB_DYNAMIC, 3, 8, 8));
    nb_node *rm = nb_state(g, "bn.running_mean", NB_F32, 1, SHAPE(3));
    nb_node *rv = nb_state(g, "bn.running_var", NB_F32, 1, SHAPE(3));
    nb_node *gam = nb_param(g, "bn.weight", NB_F32, 1, SHAPE(3));
    nb_node *bet = nb_param(g, "bn.bias", NB_F32, 1, SHAPE(3));
    nb_node *lw = nb_param(g, "ln.weight", NB_F32, 1, SHAPE(3));
    nb_node *lb = nb_param(g, "ln.bias", NB_F32, 1, SHAPE(3));
    nb_node *h = nb_relu(g, nb_batch_norm(g, x, rm, rv, gam, bet,
                                          NB_BN_MOMENTUM, NB_NORM_EPS));
    h = nb_max_pool2d(g, h, &(nb_pool2d_params){.kernel = {2, 2},
                                                 .stride = {2, 2}});
    h = nb_avg_pool2d(g, h, &(nb_pool2d_params){.kernel = {3, 3},
                                                 .stride = {1, 1},
                                                 .padding = {1, 1}});
    h = nb_layer_norm(g, nb_global_avg_pool2d(g, h), 1, lw, lb, NB_NORM_EPS);
    nb_node *loss = nb_sum(g, nb_square(g, nb_add_scalar(g, h, -0.5)));
    CHECK(loss != NULL, "build: %s", nb_graph_error(g));
    if (!loss) {
        nb_graph_free(g);
        return;
    }
    nb_tensor_fill(nb_node_value(rv), 1);
    nb_tensor_fill(nb_node_value(gam), 1);
    nb_tensor_fill(nb_node_value(lw), 1);
    nb_node *params[] = {gam, bet, lw, lb};
    enum { B = 16 };
    static float xs[B * 3 * 8 * 8];
    normal_floats(g, xs, sizeof xs / sizeof *xs);
    long before = 0;
    for (int i = 0; i < 12; i++) {
        if (i == 2)
            before = allocations;
        int rc = nb_feed(g, x, 4, SHAPE(B, 3, 8, 8), xs);
        rc = rc ? rc : nb_forward(g, loss);
        rc = rc ? rc : nb_backward(g, loss);
        CHECK(rc == NB_OK, "%s", nb_graph_error(g));
        for (int p = 0; p < 4 && rc == NB_OK; p++) {
            float *w = nb_tensor_f32(nb_node_value(params[p]));
            const float *dw = nb_tensor_f32(nb_node_grad(params[p]));
            for (int64_t k = 0; k < nb_tensor_size(nb_node_value(params[p]));
                 k++)
                w[k] -= 0.01f * dw[k];
        }
    }
    CHECK(allocations == before,
          "%ld allocations in 10 steady-state pooling/normalisation steps",
          allocations - before);
    nb_graph_free(g);
}

/* A small convolutional step: conv2d with a bias, relu, pad and a strided
 * slice, a transposed convolution, conv1d, reshape and a linear layer. */
static void check_conv_step(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 4, SHAPE(NB_DYNAMIC, 1, 8, 8));
    nb_node *labels = nb_input(g, "labels", NB_F32, 1, SHAPE(NB_DYNAMIC));
    nb_node *K1 = nb_param(g, "K1", NB_F32, 4, SHAPE(4, 1, 3, 3));
    nb_node *c1 = nb_param(g, "c1", NB_F32, 3, SHAPE(4, 1, 1));
    nb_node *K2 = nb_param(g, "K2", NB_F32, 4, SHAPE(4, 2, 2, 2));
    nb_node *K3 = nb_param(g, "K3", NB_F32, 3, SHAPE(3, 2, 3));
    nb_node *W = nb_param(g, "W", NB_F32, 2, SHAPE(3 * 8, 10));
    nb_conv_params same = nb_conv_params_of(1, 1, 1, 1);
    nb_conv_params up = nb_conv_params_of(2, 0, 1, 2);
    nb_node *h = nb_relu(g, nb_add(g, nb_conv2d(g, x, K1, &same), c1));
    h = nb_pad(g, h, 4, SHAPE(0, 0, 1, 1), SHAPE(0, 0, 0, 0));
    h = nb_slice_step(g, nb_slice_step(g, h, 2, 0, NB_SLICE_END, 2), 3, 0,
                      NB_SLICE_END, 2);                     /* [B,4,5,5] */
    h = nb_conv_transpose2d(g, h, K2, &up);                 /* [B,4,10,10] */
    h = nb_reshape(g, nb_slice(g, h, 2, 2, 4), 3, SHAPE(-1, 2, 40));
    h = nb_conv1d(g, h, K3, 5, 0, 0, 1, 1);                 /* [B,3,8] */
    nb_node *logits = nb_matmul(g, nb_reshape(g, h, 2, SHAPE(-1, 24)), W);
    nb_node *loss = nb_softmax_ce_index_loss(g, logits, labels);
    CHECK(loss != NULL, "build: %s", nb_graph_error(g));
    if (!loss) {
        nb_graph_free(g);
        return;
    }
    nb_node *params[] = {K1, c1, K2, K3, W};
    for (int p = 0; p < 5; p++)
        fill(g, params[p], 0.3);
    enum { B = 16 };
    static float xs[B * 64], ys[B];
    for (int i = 0; i < B * 64; i++)
        xs[i] = (float)nb_rng_normal(g);
    for (int i = 0; i < B; i++)
        ys[i] = (float)(i % 10);
    long before = 0;
    double first = 0, last = 0;
    for (int i = 0; i < 32; i++) {
        if (i == 2)
            before = allocations;
        int rc = nb_feed(g, x, 4, SHAPE(B, 1, 8, 8), xs);
        rc = rc ? rc : nb_feed(g, labels, 1, SHAPE(B), ys);
        rc = rc ? rc : nb_forward(g, loss);
        rc = rc ? rc : nb_backward(g, loss);
        CHECK(rc == NB_OK, "conv step: %s", nb_graph_error(g));
        if (rc != NB_OK)
            break;
        sgd(params, 5, 0.05f);
        double l = nb_tensor_get(nb_node_value(loss), 0);
        first = i == 0 ? l : first;
        last = l;
    }
    CHECK(allocations == before, "%ld allocations in 30 steady conv steps",
          allocations - before);
    CHECK(last < first, "conv training lowers the loss: %g -> %g", first,
          last);
    nb_graph_free(g);
}

/* The fused recurrent ops: an LSTM (with its final cell row), a GRU and
 * an Elman layer stacked on a dynamic batch with fed initial states,
 * forward, backward and an update in steady state. Their saved gates are
 * node scratch and their step buffers the graph's workspace, so only the
 * first steps plan memory. */
static void recurrent_steady(void)
{
    enum { B = 4, T = 6, E = 5, H = 7 };
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 3, SHAPE(NB_DYNAMIC, T, E));
    nb_node *h0 = nb_input(g, "h0", NB_F32, 2, SHAPE(NB_DYNAMIC, H));
    nb_node *w[6], *b[6];
    const int64_t rows[3] = {4 * H, 3 * H, H}, cols[3] = {E, H, H};
    for (int i = 0; i < 6; i++) {
        int layer = i / 2;
        w[i] = nb_param(g, NULL, NB_F32, 2,
                        SHAPE(rows[layer], i % 2 ? H : cols[layer]));
        b[i] = nb_param(g, NULL, NB_F32, 1, SHAPE(rows[layer]));
        fill(g, w[i], 0.3);
    }
    nb_node *y = nb_lstm_seq(g, x, h0, h0, w[0], w[1], b[0], b[1], true);
    y = nb_slice(g, y, 1, 0, T);
    y = nb_gru_seq(g, y, h0, w[2], w[3], b[2], b[3]);
    y = nb_elman_seq(g, y, h0, w[4], w[5], b[4], b[5]);
    nb_node *loss = nb_sum(g, nb_square(g, y));
    CHECK(loss != NULL, "build: %s", nb_graph_error(g));
    if (!loss) {
        nb_graph_free(g);
        return;
    }
    nb_node *params[12];
    for (int i = 0; i < 6; i++) {
        params[i] = w[i];
        params[6 + i] = b[i];
    }
    static float xs[B * T * E], hs[B * H];
    normal_floats(g, xs, sizeof xs / sizeof *xs);
    normal_floats(g, hs, sizeof hs / sizeof *hs);
    long before = 0;
    for (int i = 0; i < 12; i++) {
        if (i == 2)
            before = allocations;
        int rc = nb_feed(g, x, 3, SHAPE(B, T, E), xs);
        rc = rc ? rc : nb_feed(g, h0, 2, SHAPE(B, H), hs);
        rc = rc ? rc : nb_forward(g, loss);
        rc = rc ? rc : nb_backward(g, loss);
        CHECK(rc == NB_OK, "%s", nb_graph_error(g));
        if (rc == NB_OK)
            sgd(params, 12, 0.01f);
    }
    CHECK(allocations == before,
          "%ld allocations in 10 steady-state recurrent steps",
          allocations - before);
    nb_graph_free(g);
}

/* A window length set by each feed (x [NB_DYNAMIC, NB_DYNAMIC, E]): once
 * the longest window has run, shorter and longer ones up to it allocate
 * nothing, whatever their order. */
static void recurrent_lengths(void)
{
    enum { B = 3, T = 8, E = 4, H = 5 };
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 3, SHAPE(NB_DYNAMIC, NB_DYNAMIC, E));
    nb_node *h0 = nb_input(g, "h0", NB_F32, 2, SHAPE(NB_DYNAMIC, H));
    nb_node *w_ih = nb_param(g, NULL, NB_F32, 2, SHAPE(4 * H, E));
    nb_node *w_hh = nb_param(g, NULL, NB_F32, 2, SHAPE(4 * H, H));
    nb_node *b = nb_param(g, NULL, NB_F32, 1, SHAPE(4 * H));
    fill(g, w_ih, 0.3);
    fill(g, w_hh, 0.3);
    nb_node *y = nb_lstm_seq(g, x, h0, h0, w_ih, w_hh, b, b, false);
    nb_node *loss = nb_sum(g, nb_square(g, y));
    CHECK(loss != NULL, "build: %s", nb_graph_error(g));
    static float xs[B * T * E], hs[B * H];
    normal_floats(g, xs, sizeof xs / sizeof *xs);
    normal_floats(g, hs, sizeof hs / sizeof *hs);
    const int64_t lengths[12] = {T, T, 3, T, 1, 5, T, 2, 7, 4, T, 6};
    long before = 0;
    for (int i = 0; i < 12 && loss; i++) {
        if (i == 2)
            before = allocations;
        int rc = nb_feed(g, x, 3, SHAPE(B, lengths[i], E), xs);
        rc = rc ? rc : nb_feed(g, h0, 2, SHAPE(B, H), hs);
        rc = rc ? rc : nb_forward(g, loss);
        rc = rc ? rc : nb_backward(g, loss);
        CHECK(rc == NB_OK, "T %lld: %s", (long long)lengths[i],
              nb_graph_error(g));
    }
    CHECK(allocations == before,
          "%ld allocations over 10 windows of lengths up to the longest",
          allocations - before);
    nb_graph_free(g);
}

/* The CNN of bench/cnn.c and the Fashion-MNIST example, at its real sizes
 * (28x28 images, 32 and 64 channels, 3136 -> 128 -> 10) and a small batch:
 * two conv3x3 + bias + relu + 2x2 max-pool blocks on a reshaped row input,
 * two linear layers, softmax cross-entropy, and the library's momentum
 * SGD, fed rows with nb_feed_rows as a training loop does. The blocks are
 * composed (fused 0: conv2d, add, relu, max_pool2d), fused but for the
 * pooling (1: conv2d_bias_act, max_pool2d) or, as bench/cnn.c builds them,
 * one node (2: conv2d_bias_act_maxpool). */
static void check_cnn_model_step(int fused)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 784));
    nb_node *labels = nb_input(g, "labels", NB_F32, 1, SHAPE(NB_DYNAMIC));
    nb_node *h = nb_reshape(g, x, 4, SHAPE(-1, 1, 28, 28));
    nb_conv_params same = nb_conv_params_of(1, 1, 1, 1);
    nb_pool2d_params pool = {.kernel = {2, 2}, .stride = {2, 2}};
    const int64_t chans[3] = {1, 32, 64};
    for (int b = 0; b < 2; b++) {
        nb_node *w = nb_param(g, b ? "K2" : "K1", NB_F32, 4,
                              SHAPE(chans[b + 1], chans[b], 3, 3));
        nb_node *bias = nb_param(g, b ? "c2" : "c1", NB_F32, fused ? 1 : 3,
                                 SHAPE(chans[b + 1], 1, 1));
        if (w)
            fill(g, w, 0.3);
        if (fused == 2) {
            h = nb_conv2d_bias_act_maxpool(g, h, w, bias, &same,
                                           NB_CONV_ACT_RELU, &pool);
            continue;
        }
        if (fused)
            h = nb_conv2d_bias_act(g, h, w, bias, &same, NB_CONV_ACT_RELU);
        else
            h = nb_relu(g, nb_add(g, nb_conv2d(g, h, w, &same), bias));
        h = nb_max_pool2d(g, h, &pool);
    }
    h = nb_reshape(g, h, 2, SHAPE(-1, 3136));
    nb_node *W1 = nb_param(g, "W1", NB_F32, 2, SHAPE(3136, 128));
    nb_node *b1 = nb_param(g, "b1", NB_F32, 1, SHAPE(128));
    nb_node *W2 = nb_param(g, "W2", NB_F32, 2, SHAPE(128, 10));
    nb_node *b2 = nb_param(g, "b2", NB_F32, 1, SHAPE(10));
    h = nb_relu(g, nb_add(g, nb_matmul(g, h, W1), b1));
    nb_node *loss = nb_softmax_ce_index_loss(
        g, nb_add(g, nb_matmul(g, h, W2), b2), labels);
    nb_optimizer *opt =
        loss ? nb_optimizer_new(g,
                                &(nb_optim_config){.kind = NB_OPTIM_SGD,
                                                   .lr = 0.01,
                                                   .momentum = 0.9},
                                0, NULL)
             : NULL;
    CHECK(opt != NULL, "build: %s", nb_graph_error(g));
    if (!opt) {
        nb_graph_free(g);
        return;
    }
    fill(g, W1, 0.02);
    fill(g, W2, 0.1);
    enum { N = 8, B = 4 };
    nb_tensor *xs = nb_tensor_new(NB_F32, 2, SHAPE(N, 784));
    nb_tensor *ys = nb_tensor_new(NB_F32, 1, SHAPE(N));
    for (int64_t i = 0; i < N * 784; i++)
        nb_tensor_set(xs, i, nb_rng_uniform(g));
    for (int64_t i = 0; i < N; i++)
        nb_tensor_set(ys, i, (double)(i % 10));
    const int64_t rows[2][B] = {{0, 5, 2, 7}, {4, 1, 6, 3}};
    long before = 0;
    for (int i = 0; i < 10; i++) {
        if (i == 2)
            before = allocations;
        int rc = nb_feed_rows(g, x, xs, rows[i % 2], B);
        rc = rc ? rc : nb_feed_rows(g, labels, ys, rows[i % 2], B);
        rc = rc ? rc : nb_forward(g, loss);
        rc = rc ? rc : nb_backward(g, loss);
        rc = rc ? rc : nb_optimizer_step(opt);
        CHECK(rc == NB_OK, "CNN step %d: %s", i, nb_graph_error(g));
        if (rc != NB_OK)
            break;
    }
    CHECK(allocations == before,
          "%ld allocations in 8 steady-state steps of the CNN (%s)",
          allocations - before,
          (const char *[]){"composed", "fused", "fused with pooling"}[fused]);
    nb_tensor_free(xs);
    nb_tensor_free(ys);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

int main(void)
{
    nb_set_allocator(&(nb_allocator){counting_alloc, counting_free, NULL});
    check_conv_step();
    for (int fused = 0; fused < 3; fused++)
        check_cnn_model_step(fused);
    cnn_parts_steady();
    recurrent_steady();
    recurrent_lengths();
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 20));
    nb_node *labels = nb_input(g, "labels", NB_F32, 1, SHAPE(NB_DYNAMIC));
    nb_node *W1 = nb_param(g, "W1", NB_F32, 2, SHAPE(20, 16));
    nb_node *b1 = nb_param(g, "b1", NB_F32, 1, SHAPE(16));
    nb_node *W2 = nb_param(g, "W2", NB_F32, 2, SHAPE(16, 10));
    nb_node *b2 = nb_param(g, "b2", NB_F32, 1, SHAPE(10));
    nb_node *h = nb_relu(g, nb_add(g, nb_matmul(g, x, W1), b1));
    h = nb_dropout(g, nb_tanh(g, h), 0.1);
    nb_node *logits = nb_add(g, nb_matmul(g, h, W2), b2);
    nb_node *loss = nb_add(g, nb_softmax_ce_index_loss(g, logits, labels),
                           nb_scale(g, nb_l2_penalty(g, W1), 1e-4));
    CHECK(loss != NULL, "build: %s", nb_graph_error(g));
    if (!loss)
        return tu_finish("alloc");
    fill(g, W1, 0.3);
    fill(g, W2, 0.3);
    nb_node *params[] = {W1, b1, W2, b2};

    enum { MAXB = 128 };
    static float xs[MAXB * 20], ys[MAXB];
    for (int i = 0; i < MAXB * 20; i++)
        xs[i] = (float)nb_rng_normal(g);
    for (int i = 0; i < MAXB; i++)
        ys[i] = (float)(i % 10);

    /* Warm-up plans the buffers for batch 64. */
    for (int i = 0; i < 2; i++)
        CHECK(step(g, x, labels, loss, params, 4, 64, xs, ys) == NB_OK, "%s",
              nb_graph_error(g));
    long before = allocations;
    double first = 0, last = 0;
    for (int i = 0; i < 50; i++) {
        CHECK(step(g, x, labels, loss, params, 4, 64, xs, ys) == NB_OK, "%s",
              nb_graph_error(g));
        double l = nb_tensor_get(nb_node_value(loss), 0);
        if (i == 0)
            first = l;
        last = l;
    }
    CHECK(allocations == before, "%ld allocations in 50 steady-state steps",
          allocations - before);
    CHECK(last < first, "training lowers the loss: %g -> %g", first, last);

    /* A smaller batch reuses the buffers; only a larger one allocates. */
    before = allocations;
    CHECK(step(g, x, labels, loss, params, 4, 32, xs, ys) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(allocations == before, "shrinking the batch allocated %ld times",
          allocations - before);
    CHECK(step(g, x, labels, loss, params, 4, 128, xs, ys) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(allocations > before, "growing the batch must plan larger buffers");
    before = allocations;
    for (int i = 0; i < 5; i++)
        CHECK(step(g, x, labels, loss, params, 4, 128, xs, ys) == NB_OK, "%s",
              nb_graph_error(g));
    CHECK(allocations == before, "%ld allocations after re-planning",
          allocations - before);
    printf("steady state: 0 allocations per step expected, %ld seen\n",
           allocations - before);
    nb_graph_free(g);
    lookup_allocates_nothing();
    nb_set_allocator(NULL);
    return tu_finish("alloc");
}
