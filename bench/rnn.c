/* The character-level language model of ../shared/peers/torch/charlm.py,
 * built from nabla's ops with the fused recurrent op: tokens per second of
 * training, the recurrent layer's GFLOP/s beside the FMA peak, and the
 * heap calls of steady-state steps.
 *
 *   bench/rnn [--cell lstm|gru|rnn] [--hidden H] [--emb E] [--batch B]
 *             [--seq T] [--steps N] [--threads N] [--text FILE]
 *
 * The model and the step are the peer's: embedding V -> E, one recurrent
 * layer E -> H (lstm_seq, gru_seq or elman_seq, zero initial state),
 * linear H -> V, softmax cross-entropy at every step (mean), Adam lr 2e-3
 * with global-norm clipping at 5, windows of T + 1 characters drawn at
 * random from the first 95% of the fortunes text; the embedding is the
 * embedding op (a row lookup, as nn.Embedding). Timing starts after 10
 * warm-up steps, as the peer's does.
 *
 * Figures (one JSON object per line on stdout):
 *   tokens_per_s       B T per step over the timed steps
 *   rnn_gflops         the recurrent op alone, forward and backward (3x
 *                      the forward's 2 B T G H (E + H) flops), best of
 *                      several passes, beside fma_peak of the same run
 *   rnn_forward_gflops the same op's forward alone
 *   steady_allocs, steady_libc_calls   heap calls (nb_set_allocator's and
 *                      libc's, through --wrap) over the timed steps
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"
#include "nabla/nabla.h"

typedef struct text {
    unsigned char *bytes;
    int64_t len;
} text;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int append_file(text *t, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        unsigned char *grown = realloc(t->bytes, (size_t)t->len + n);
        if (!grown) {
            fclose(f);
            return -1;
        }
        t->bytes = grown;
        memcpy(t->bytes + t->len, buf, n);
        t->len += (int64_t)n;
    }
    fclose(f);
    return 0;
}

/* The peer's default text: the fortune files without a dot in their name,
 * in sorted order. */
static int read_fortunes(text *t)
{
    const char *dir = "/usr/share/games/fortunes";
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char *names[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024)
        if (e->d_name[0] != '.' && !strchr(e->d_name, '.'))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        DIR *sub = opendir(path); /* directories are skipped, as isfile */
        if (sub)
            closedir(sub);
        else if (append_file(t, path) != 0)
            rc = -1;
        free(names[i]);
    }
    return rc;
}

static uint64_t rng = 1;
static int64_t rand_below(int64_t n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (int64_t)((rng >> 33) % (uint64_t)n);
}

static void fill_uniform(nb_node *n, double bound)
{
    nb_tensor *t = nb_node_value(n);
    float *p = nb_tensor_f32(t);
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        p[i] = (float)(bound * (2.0 * (double)rand_below(1 << 24) / (1 << 24) - 1));
}

int main(int argc, char **argv)
{
    const char *cell = "lstm", *text_path = NULL;
    int64_t H = 256, E = 64, B = 32, T = 64, steps = 110;
    int threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--cell"))
            cell = v;
        else if (!strcmp(k, "--hidden"))
            H = atoll(v);
        else if (!strcmp(k, "--emb"))
            E = atoll(v);
        else if (!strcmp(k, "--batch"))
            B = atoll(v);
        else if (!strcmp(k, "--seq"))
            T = atoll(v);
        else if (!strcmp(k, "--steps"))
            steps = atoll(v);
        else if (!strcmp(k, "--threads"))
            threads = atoi(v);
        else if (!strcmp(k, "--text"))
            text_path = v;
        else {
            fprintf(stderr, "usage: rnn [--cell lstm|gru|rnn] [--hidden H] "
                            "[--emb E] [--batch B] [--seq T] [--steps N] "
                            "[--threads N] [--text FILE]\n");
            return 2;
        }
    }
    int gates = !strcmp(cell, "lstm") ? 4 : !strcmp(cell, "gru") ? 3 : 1;
    if (steps <= 10 || H < 1 || E < 1 || B < 1 || T < 1) {
        fprintf(stderr, "rnn: steps must exceed the 10 warm-up steps and "
                        "sizes be positive\n");
        return 2;
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    nb_set_allocator(&(nb_allocator){bench_counting_alloc, bench_counting_free,
                                     NULL});
    double peak = bench_fma_peak(200);

    text tx = {NULL, 0};
    if ((text_path ? append_file(&tx, text_path) : read_fortunes(&tx)) != 0 ||
        tx.len < 2 * (T + 1)) {
        fprintf(stderr, "rnn: cannot read the text (apt-get install "
                        "fortunes, or --text FILE)\n");
        return 1;
    }
    int lut[256], V = 0;
    bool seen[256] = {false};
    for (int64_t i = 0; i < tx.len; i++)
        seen[tx.bytes[i]] = true;
    for (int c = 0; c < 256; c++)
        lut[c] = seen[c] ? V++ : -1;
    int64_t train_len = tx.len * 95 / 100;

    nb_graph *g = nb_graph_new();
    nb_node *ids = nb_input(g, "ids", NB_F32, 2, (int64_t[]){B, T});
    nb_node *labels = nb_input(g, "labels", NB_F32, 1, (int64_t[]){B * T});
    nb_node *emb = nb_param(g, "emb.weight", NB_F32, 2, (int64_t[]){V, E});
    nb_node *w_ih = nb_param(g, "rnn.weight_ih_l0", NB_F32, 2,
                             (int64_t[]){gates * H, E});
    nb_node *w_hh = nb_param(g, "rnn.weight_hh_l0", NB_F32, 2,
                             (int64_t[]){gates * H, H});
    nb_node *b_ih = nb_param(g, "rnn.bias_ih_l0", NB_F32, 1,
                             (int64_t[]){gates * H});
    nb_node *b_hh = nb_param(g, "rnn.bias_hh_l0", NB_F32, 1,
                             (int64_t[]){gates * H});
    nb_node *w_out = nb_param(g, "out.weight_t", NB_F32, 2, (int64_t[]){H, V});
    nb_node *b_out = nb_param(g, "out.bias", NB_F32, 1, (int64_t[]){V});
    nb_node *h0 = nb_constant(g, "h0", NB_F32, 2, (int64_t[]){B, H});
    nb_node *c0 = nb_constant(g, "c0", NB_F32, 2, (int64_t[]){B, H});
    /* PyTorch's initialisation: U(-1/sqrt(H), 1/sqrt(H)) for the recurrent
     * layer and the output, N(0, 1)-sized rows for the embedding. */
    double k = 1.0 / sqrt((double)H);
    fill_uniform(emb, 1.7);
    fill_uniform(w_ih, k);
    fill_uniform(w_hh, k);
    fill_uniform(b_ih, k);
    fill_uniform(b_hh, k);
    fill_uniform(w_out, k);
    fill_uniform(b_out, k);
    nb_node *x = nb_embedding(g, emb, ids);
    nb_node *hs = gates == 4   ? nb_lstm_seq(g, x, h0, c0, w_ih, w_hh, b_ih,
                                             b_hh, false)
                  : gates == 3 ? nb_gru_seq(g, x, h0, w_ih, w_hh, b_ih, b_hh)
                               : nb_elman_seq(g, x, h0, w_ih, w_hh, b_ih, b_hh);
    nb_node *logits = nb_add(g, nb_matmul(g, hs, w_out), b_out);
    nb_node *loss = nb_softmax_ce_index_loss(
        g, nb_reshape(g, logits, 2, (int64_t[]){B * T, V}), labels);
    nb_optimizer *opt =
        loss ? nb_optimizer_new(g,
                                &(nb_optim_config){.kind = NB_OPTIM_ADAM,
                                                   .lr = 2e-3,
                                                   .clip_norm = 5.0},
                                0, NULL)
             : NULL;
    if (!opt) {
        fprintf(stderr, "rnn: building the model: %s\n", nb_graph_error(g));
        return 1;
    }

    double t0 = 0, last_loss = NAN;
    int64_t allocs0 = 0, libc0 = 0;
    for (int64_t s = 0; s < steps; s++) {
        if (s == 10) {
            t0 = bench_now();
            allocs0 = bench_alloc_counts.allocs;
            libc0 = bench_libc_calls();
        }
        float *id = nb_feed_buffer(g, ids, 2, (int64_t[]){B, T});
        float *lb = nb_feed_buffer(g, labels, 1, (int64_t[]){B * T});
        if (!id || !lb) {
            fprintf(stderr, "rnn: feed: %s\n", nb_graph_error(g));
            return 1;
        }
        for (int64_t b = 0; b < B; b++) {
            const unsigned char *w = tx.bytes + rand_below(train_len - T - 1);
            for (int64_t t = 0; t < T; t++) {
                id[b * T + t] = (float)lut[w[t]];
                lb[b * T + t] = (float)lut[w[t + 1]];
            }
        }
        if (nb_forward(g, loss) != NB_OK || nb_backward(g, loss) != NB_OK ||
            nb_optimizer_step(opt) != NB_OK) {
            fprintf(stderr, "rnn: step %lld: %s\n", (long long)s,
                    nb_graph_error(g));
            return 1;
        }
        if (s == steps - 1)
            last_loss = nb_tensor_get(nb_node_value(loss), 0);
    }
    double dt = bench_now() - t0;
    int64_t timed = steps - 10;
    int64_t steady_allocs = bench_alloc_counts.allocs - allocs0;
    int64_t steady_libc = bench_libc_calls() < 0 ? -1 : bench_libc_calls() - libc0;

    /* The recurrent op alone: forward and backward on the model's shapes,
     * the message to x included (as in the model), best of a few passes. */
    nb_graph *r = nb_graph_new();
    nb_node *rx = nb_input(r, "x", NB_F32, 3, (int64_t[]){B, T, E});
    nb_input_set_requires_grad(r, rx, true);
    nb_node *rw_ih = nb_param(r, "w_ih", NB_F32, 2, (int64_t[]){gates * H, E});
    nb_node *rw_hh = nb_param(r, "w_hh", NB_F32, 2, (int64_t[]){gates * H, H});
    nb_node *rb_ih = nb_param(r, "b_ih", NB_F32, 1, (int64_t[]){gates * H});
    nb_node *rb_hh = nb_param(r, "b_hh", NB_F32, 1, (int64_t[]){gates * H});
    nb_node *rh0 = nb_constant(r, "h0", NB_F32, 2, (int64_t[]){B, H});
    nb_node *rc0 = nb_constant(r, "c0", NB_F32, 2, (int64_t[]){B, H});
    fill_uniform(rw_ih, k);
    fill_uniform(rw_hh, k);
    float *xv = nb_feed_buffer(r, rx, 3, (int64_t[]){B, T, E});
    for (int64_t i = 0; xv && i < B * T * E; i++)
        xv[i] = (float)(2.0 * (double)rand_below(1 << 20) / (1 << 20) - 1);
    nb_node *ry = gates == 4   ? nb_lstm_seq(r, rx, rh0, rc0, rw_ih, rw_hh,
                                             rb_ih, rb_hh, false)
                  : gates == 3 ? nb_gru_seq(r, rx, rh0, rw_ih, rw_hh, rb_ih,
                                            rb_hh)
                               : nb_elman_seq(r, rx, rh0, rw_ih, rw_hh, rb_ih,
                                              rb_hh);
    nb_tensor *seed = nb_tensor_new(NB_F32, 3, (int64_t[]){B, T, H});
    nb_tensor_fill(seed, 1e-3);
    double best = 1e30, best_fwd = 1e30;
    for (int pass = 0; pass < 8; pass++) {
        double a = bench_now();
        int rc = nb_forward(r, ry);
        double b = bench_now();
        if (rc != NB_OK || nb_backward_ex(r, ry, seed, 0) != NB_OK) {
            fprintf(stderr, "rnn: op alone: %s\n", nb_graph_error(r));
            return 1;
        }
        double t = bench_now() - a;
        best = pass > 0 && t < best ? t : best;
        best_fwd = pass > 0 && b - a < best_fwd ? b - a : best_fwd;
        /* a new value of x, so the next forward runs again */
        xv = nb_feed_buffer(r, rx, 3, (int64_t[]){B, T, E});
        for (int64_t i = 0; xv && i < B * T * E; i++)
            xv[i] = (float)(2.0 * (double)rand_below(1 << 20) / (1 << 20) - 1);
    }
    double rnn_flops = 3.0 * 2.0 * (double)(B * T) * (double)(gates * H) *
                       (double)(E + H);

    bench_json j;
    bench_json_begin(&j, "rnn");
    bench_json_str(&j, "cell", cell);
    bench_json_num(&j, "vocab", V);
    bench_json_num(&j, "emb", (double)E);
    bench_json_num(&j, "hidden", (double)H);
    bench_json_num(&j, "batch", (double)B);
    bench_json_num(&j, "seq", (double)T);
    bench_json_num(&j, "threads", threads);
    bench_json_num(&j, "timed_steps", (double)timed);
    bench_json_num(&j, "tokens_per_s", (double)(timed * B * T) / dt);
    bench_json_num(&j, "ms_per_step", 1e3 * dt / (double)timed);
    bench_json_num(&j, "loss", last_loss);
    bench_json_num(&j, "rnn_gflops", rnn_flops / best * 1e-9);
    bench_json_num(&j, "rnn_forward_gflops", rnn_flops / 3 / best_fwd * 1e-9);
    bench_json_num(&j, "fma_peak_gflops", peak);
    bench_json_num(&j, "steady_allocs", (double)steady_allocs);
    bench_json_num(&j, "steady_libc_calls", (double)steady_libc);
    bench_json_end(&j);
    bench_log("rnn %s E %lld H %lld B %lld T %lld: %.0f tokens/s, "
              "recurrent op %.1f GFLOP/s (FMA peak %.1f), %lld heap calls "
              "in %lld steady steps\n",
              cell, (long long)E, (long long)H, (long long)B, (long long)T,
              (double)(timed * B * T) / dt, rnn_flops / best * 1e-9, peak,
              (long long)steady_allocs, (long long)timed);
    nb_tensor_free(seed);
    nb_graph_free(r);
    nb_optimizer_free(opt);
    nb_graph_free(g);
    free(tx.bytes);
    return 0;
}
