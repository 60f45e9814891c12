/* Data-parallel training, run under mpirun by tests/dist/run_mpi.py.
 *
 *   test_dist equiv f32|f64  after a few epochs the weights of an R-rank
 *                            run (per-rank batch B) equal those of one
 *                            process with batch R B on the same shuffle,
 *                            within 1e-6 (f32) or 1e-12 (f64) relative, and
 *                            a second R-rank run gives the same bits
 *   test_dist resume PATH    a checkpoint that rank 0 writes at epoch 2 of
 *                            a 4-epoch run resumes, on every rank, to the
 *                            bits of the run that went on
 *   test_dist badfile PATH   the last rank reads a malformed CSV file: every
 *                            rank learns of it and exits 1
 *   test_dist badshape       the last rank's dataset has the wrong width:
 *                            nb_train fails on every rank
 *   test_dist overlap f32|f64  nb_train on the ring of messages with the
 *                            reduction overlapping backward (the default)
 *                            gives the same bits as with the overlap
 *                            turned off, and some buckets did start during
 *                            backward
 *   test_dist shmbits f32|f64  nb_train summing through the shared-memory
 *                            window (every rank here shares the node) gives
 *                            the same bits as on the ring of messages, and
 *                            each run took the path it was meant to
 *   test_dist failstep       a hand-written loop on nb_dist_begin_grads:
 *                            the last rank fails one step before its
 *                            backward while the others' buckets are in
 *                            flight; every rank reports it with its
 *                            gradients unchanged, and the steps after it
 *                            run on to the same weights on every rank
 *   test_dist failstep nobegin  the same loop without nb_dist_begin_grads:
 *                            every step agrees first, then sums
 *
 * With NABLA_DIST_REDUCE=ring in the environment (the TCP runs), equiv
 * also checks that no gradient went through shared memory.
 *
 * Each rank starts from a different seed, so equal weights show that rank
 * 0's were broadcast. Every rank prints "rank R: <outcome>" as its last
 * line, which the runner checks for each rank.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "nabla/dist.h"
#include "nabla/nabla.h"

#define ROWS 53 /* not a multiple of any R B: partial last batches */
#define VAL_ROWS 11
#define WIDTH 2
#define HIDDEN 8
#define CLASSES 3
#define BATCH 4 /* per rank */

static int rank_, size_;

/* Three noisy spirals' worth of points from a fixed LCG, the same on every
 * rank (the graph's RNG is not used, so that it stays the model's). */
static int make_data(nb_dataset *ds, int64_t rows, int64_t width, nb_dtype dt,
                     unsigned seed)
{
    int64_t xs[2] = {rows, width}, ys[1] = {rows};
    ds->x = nb_tensor_new(dt, 2, xs);
    ds->y = nb_tensor_new(dt, 1, ys);
    if (!ds->x || !ds->y)
        return NB_ERR_NOMEM;
    unsigned s = seed;
    for (int64_t i = 0; i < rows; i++) {
        int64_t c = i % CLASSES;
        for (int64_t j = 0; j < width; j++) {
            s = s * 1103515245u + 12345u;
            double noise = (double)((s >> 8) & 0xffff) / 65536.0 - 0.5;
            double base = j % 2 ? sin(2.0 * (double)c) : cos(2.0 * (double)c);
            nb_tensor_set(ds->x, i * width + j, base + 0.6 * noise);
        }
        nb_tensor_set(ds->y, i, (double)c);
    }
    return NB_OK;
}

typedef struct net {
    nb_graph *g;
    nb_model model;
    nb_optimizer *opt;
} net;

static int net_build(net *n, nb_dtype dt, uint64_t seed, nb_optim_kind kind,
                     double lr)
{
    n->g = nb_graph_new();
    if (!n->g)
        return NB_ERR_NOMEM;
    nb_graph_seed(n->g, seed);
    nb_graph *g = n->g;
    nb_node *x = nb_input(g, "x", dt, 2, (const int64_t[]){NB_DYNAMIC, WIDTH});
    nb_node *y = nb_input(g, "y", dt, 1, (const int64_t[]){NB_DYNAMIC});
    int64_t sizes[3] = {WIDTH, HIDDEN, CLASSES};
    nb_mlp_spec spec = {.n_layers = 2,
                        .sizes = sizes,
                        .hidden = NB_ACT_TANH,
                        .output = NB_ACT_SOFTMAX};
    nb_mlp mlp;
    if (nb_mlp_build(g, x, &spec, &mlp) != NB_OK)
        return nb_graph_status(g);
    n->model = (nb_model){.x = x,
                          .y = y,
                          .loss = nb_mlp_loss(g, &mlp, y),
                          .output = mlp.output};
    nb_optim_config c = {.kind = kind, .lr = lr, .momentum = 0.9};
    if (kind != NB_OPTIM_SGD)
        c.momentum = 0;
    n->opt = nb_optimizer_new(g, &c, 0, NULL);
    return n->opt ? NB_OK : nb_graph_status(g);
}

/* The training set (from data_seed) and two nets a, b of the same kind
 * from their own seeds. */
static int data_and_nets(nb_dataset *train, nb_dtype dt, unsigned data_seed,
                         net *a, uint64_t seed_a, net *b, uint64_t seed_b,
                         nb_optim_kind kind, double lr)
{
    int rc = make_data(train, ROWS, WIDTH, dt, data_seed);
    rc = rc ? rc : net_build(a, dt, seed_a, kind, lr);
    return rc ? rc : net_build(b, dt, seed_b, kind, lr);
}

static void net_free(net *n)
{
    nb_optimizer_free(n->opt);
    nb_graph_free(n->g);
}

/* max |a - b| / max |b| over every parameter, as one vector. */
static double rel_error(const net *a, const net *b)
{
    double diff = 0, scale = 0;
    for (int i = 0; i < nb_optimizer_param_count(a->opt); i++) {
        nb_tensor *ta = nb_node_value(nb_optimizer_param(a->opt, i));
        nb_tensor *tb = nb_node_value(nb_optimizer_param(b->opt, i));
        for (int64_t k = 0; k < nb_tensor_size(tb); k++) {
            double va = nb_tensor_get(ta, k), vb = nb_tensor_get(tb, k);
            diff = fmax(diff, fabs(va - vb));
            scale = fmax(scale, fabs(vb));
        }
    }
    return diff / scale;
}

static bool same_bits(const net *a, const net *b)
{
    for (int i = 0; i < nb_optimizer_param_count(a->opt); i++) {
        nb_tensor *ta = nb_node_value(nb_optimizer_param(a->opt, i));
        nb_tensor *tb = nb_node_value(nb_optimizer_param(b->opt, i));
        size_t bytes = (size_t)nb_tensor_size(ta) *
                       nb_dtype_size(nb_tensor_dtype(ta));
        if (memcmp(nb_tensor_cdata(ta), nb_tensor_cdata(tb), bytes) != 0)
            return false;
    }
    return true;
}

/* Ends the program the same way on every rank: the outcome is agreed on,
 * then printed. */
static int finish(nb_dist *d, int own, const char *what)
{
    nb_status st = {0};
    int rc = nb_dist_agree(d, own, &st);
    if (rc == NB_OK)
        printf("rank %d: ok: %s\n", rank_, what);
    else
        printf("rank %d: failed: %s (%s)\n", rank_, what,
               own ? "here" : st.message);
    fflush(stdout);
    nb_dist_free(d);
    MPI_Finalize();
    return rc == NB_OK ? 0 : 1;
}

/* Whether every rank holds the same weights as rank 0: a weighted sum of
 * them, summed over the ranks, is R times this rank's. */
static int same_as_all(nb_dist *d, const net *a, int rc)
{
    double sum[1] = {0};
    if (rc == NB_OK) {
        for (int i = 0; i < nb_optimizer_param_count(a->opt); i++) {
            nb_tensor *t = nb_node_value(nb_optimizer_param(a->opt, i));
            for (int64_t k = 0; k < nb_tensor_size(t); k++)
                sum[0] += nb_tensor_get(t, k) * (double)(k + 1 + i);
        }
    }
    double mine = sum[0];
    nb_status st;
    int arc = nb_dist_sum(d, sum, 1, rc, &st);
    if (arc == NB_OK && sum[0] != mine * size_) {
        fprintf(stderr, "rank %d: the ranks' weights differ\n", rank_);
        return NB_ERR_STATE;
    }
    return rc ? rc : arc;
}

static nb_train_config config(nb_dist *d, int64_t epochs, int64_t batch)
{
    return (nb_train_config){.epochs = epochs,
                             .batch_size = batch,
                             .progress = NB_PROGRESS_OFF,
                             .dist = d ? nb_dist_train(d) : NULL};
}

static int equiv(nb_dist *d, const char *dtype)
{
    nb_dtype dt = strcmp(dtype, "f64") == 0 ? NB_F64 : NB_F32;
    double tol = dt == NB_F64 ? 1e-12 : 1e-6;
    nb_dataset train = {0}, val = {0};
    int rc = make_data(&train, ROWS, WIDTH, dt, 7);
    rc = rc ? rc : make_data(&val, VAL_ROWS, WIDTH, dt, 8);
    net a = {0}, b = {0}, ref = {0};
    rc = rc ? rc
            : net_build(&a, dt, 1000 + (uint64_t)rank_, NB_OPTIM_SGD, 0.1);
    rc = rc ? rc
            : net_build(&b, dt, rank_ ? 2000 + (uint64_t)rank_ : 1000,
                        NB_OPTIM_SGD, 0.1);
    nb_train_config c = config(d, 3, BATCH);
    nb_train_result ra = {0}, rb = {0};
    nb_dist_stats ds = {0};
    nb_dist_reset_stats(d);
    if (rc == NB_OK)
        rc = nb_train(a.g, &a.model, a.opt, &train, &val, &c, &ra);
    nb_dist_get_stats(d, &ds);
    const char *env = getenv("NABLA_DIST_REDUCE");
    if (rc == NB_OK && env && strcmp(env, "ring") == 0 &&
        ds.bytes_shared != 0) {
        fprintf(stderr, "rank %d: NABLA_DIST_REDUCE=ring, yet %.0f bytes "
                        "went through shared memory\n",
                rank_, ds.bytes_shared);
        rc = NB_ERR_STATE;
    }
    if (rc == NB_OK)
        rc = nb_train(b.g, &b.model, b.opt, &train, &val, &c, &rb);
    if (rc != NB_OK)
        fprintf(stderr, "rank %d: %s\n", rank_,
                a.g ? nb_graph_error(a.g) : "no graph");
    if (rc == NB_OK && !same_bits(&a, &b)) {
        fprintf(stderr, "rank %d: two runs differ\n", rank_);
        rc = NB_ERR_STATE;
    }
    /* The reference: one process with rank 0's seed and the global batch. */
    if (rc == NB_OK && rank_ == 0) {
        nb_train_config one = config(NULL, 3, BATCH * (int64_t)size_);
        nb_train_result rr;
        rc = net_build(&ref, dt, 1000, NB_OPTIM_SGD, 0.1);
        rc = rc ? rc
                : nb_train(ref.g, &ref.model, ref.opt, &train, &val, &one, &rr);
        if (rc == NB_OK) {
            double e = rel_error(&a, &ref);
            double ev = fabs(ra.val.loss - rr.val.loss) / fabs(rr.val.loss);
            printf("rank 0: %s on %d ranks: weights' relative error %.3g "
                   "(limit %g), validation loss %.17g vs %.17g; %.0f of "
                   "%.0f gradient bytes summed through shared memory\n",
                   dtype, size_, e, tol, ra.val.loss, rr.val.loss,
                   ds.bytes_shared, ds.bytes);
            if (!(e <= tol) || !(ev <= 1e3 * tol) ||
                ra.val.count != VAL_ROWS || ra.train.count != ROWS ||
                ra.epochs_run != 3) {
                fprintf(stderr, "rank 0: not equivalent\n");
                rc = NB_ERR_STATE;
            }
        }
    }
    /* Every rank checks that it holds the same bits as rank 0. */
    rc = same_as_all(d, &a, rc);
    net_free(&a);
    net_free(&b);
    net_free(&ref);
    nb_dataset_free(&train);
    nb_dataset_free(&val);
    return finish(d, rc, "equivalence");
}

/* Two nb_train runs of nets from the same seeds, with change(d, true)
 * before the second and change(d, false) after it: each run's figures in
 * *first and *second, and an error if the weights differ in any bit. */
static int twice(nb_dist *d, nb_dtype dt, int (*change)(nb_dist *, bool),
                 net *a, net *b, nb_dataset *train, nb_dist_stats *first,
                 nb_dist_stats *second, int rc)
{
    rc = rc ? rc
            : data_and_nets(train, dt, 7, a, 1000 + (uint64_t)rank_, b,
                            1000 + (uint64_t)rank_, NB_OPTIM_SGD, 0.1);
    nb_train_config c = config(d, 3, BATCH);
    nb_dist_reset_stats(d);
    if (rc == NB_OK)
        rc = nb_train(a->g, &a->model, a->opt, train, NULL, &c, NULL);
    nb_dist_get_stats(d, first);
    nb_dist_reset_stats(d);
    if (rc == NB_OK)
        rc = change(d, true);
    if (rc == NB_OK)
        rc = nb_train(b->g, &b->model, b->opt, train, NULL, &c, NULL);
    nb_dist_get_stats(d, second);
    change(d, false);
    if (rc != NB_OK && a->g)
        fprintf(stderr, "rank %d: %s\n", rank_,
                nb_graph_error(nb_graph_status(a->g) || !b->g ? a->g : b->g));
    if (rc == NB_OK && !same_bits(a, b)) {
        fprintf(stderr, "rank %d: the two runs: other weights\n", rank_);
        rc = NB_ERR_STATE;
    }
    return rc;
}

static int overlap_off(nb_dist *d, bool on)
{
    return nb_dist_set_overlap(d, !on);
}

static int ring_on(nb_dist *d, bool on)
{
    return nb_dist_set_shared_memory(d, !on);
}

/* overlap (shm false): on the ring, with the overlap on then off;
 * shmbits (shm true): through the window, then on the ring. */
static int two_ways(nb_dist *d, const char *dtype, bool shm)
{
    nb_dtype dt = strcmp(dtype, "f64") == 0 ? NB_F64 : NB_F32;
    nb_dataset train = {0};
    net a = {0}, b = {0};
    nb_dist_stats x = {0}, y = {0};
    /* Only the ring has steps that can start during backward; the window
     * is asked for. */
    int rc = nb_dist_set_shared_memory(d, shm);
    rc = twice(d, dt, shm ? ring_on : overlap_off, &a, &b, &train, &x, &y,
               rc);
    bool fine;
    if (shm) {
        printf("rank %d: %s: %lld steps, %.0f of %.0f bytes summed through "
               "shared memory (ring forced: %.0f)\n",
               rank_, dtype, (long long)x.steps, x.bytes_shared, x.bytes,
               y.bytes_shared);
        /* The whole of the first run through the window (every rank of an
         * mpirun on this machine shares it), none of the second. */
        fine = x.bytes_shared == x.bytes && y.bytes_shared == 0;
    } else {
        printf("rank %d: %s: %lld steps, %.0f of %.0f bytes started during "
               "backward (overlap off: %.0f)\n",
               rank_, dtype, (long long)x.steps, x.bytes_early, x.bytes,
               y.bytes_early);
        fine = x.bytes_early > 0 && x.bytes_early < x.bytes &&
               y.bytes_early == 0;
    }
    /* One rank reduces nothing. */
    fine = size_ == 1 || (fine && x.steps > 0 && x.bytes > 0 &&
                          y.steps == x.steps && y.bytes == x.bytes);
    if (rc == NB_OK && !fine) {
        fprintf(stderr, "rank %d: %s\n", rank_,
                shm ? "the runs did not take the paths asked"
                    : "no bucket started during backward");
        rc = NB_ERR_STATE;
    }
    rc = same_as_all(d, &a, rc);
    net_free(&a);
    net_free(&b);
    nb_dataset_free(&train);
    return finish(d, rc, shm ? "shmbits" : "overlap");
}

static int failstep(nb_dist *d, bool begin)
{
    enum { STEPS = 7, FAIL = 3 };
    nb_dataset train = {0};
    int rc = make_data(&train, ROWS, WIDTH, NB_F32, 7);
    net a = {0};
    rc = rc ? rc
            : net_build(&a, NB_F32, 1000 + (uint64_t)rank_, NB_OPTIM_SGD,
                        0.1);
    rc = nb_dist_broadcast(d, a.g, a.opt, rc);
    nb_graph *g = a.g;
    double w = 1.0 / size_;
    for (int s = 0; s < STEPS && rc == NB_OK; s++) {
        int64_t idx[BATCH];
        for (int i = 0; i < BATCH; i++)
            idx[i] = ((s * size_ + rank_) * BATCH + i) % ROWS;
        int own = begin ? nb_dist_begin_grads(d, a.opt, w) : NB_OK;
        bool fails = s == FAIL && rank_ == size_ - 1;
        if (own == NB_OK && !fails) {
            own = nb_feed_rows(g, a.model.x, train.x, idx, BATCH);
            own = own ? own : nb_feed_rows(g, a.model.y, train.y, idx, BATCH);
            own = own ? own : nb_forward(g, a.model.loss);
            own = own ? own : nb_backward(g, a.model.loss);
        }
        if (fails)
            own = NB_ERR_ARG;
        nb_tensor *g0 = nb_node_grad(nb_optimizer_param(a.opt, 0));
        float before = g0 ? nb_tensor_f32(g0)[0] : 0;
        int got = nb_dist_average_grads(d, a.opt, w, own);
        if (s != FAIL) {
            rc = got ? got : nb_optimizer_step(a.opt);
            continue;
        }
        if (got == NB_OK || (g0 && nb_tensor_f32(g0)[0] != before)) {
            fprintf(stderr, "rank %d: the failed step %s\n", rank_,
                    got == NB_OK ? "passed" : "changed the gradients");
            rc = NB_ERR_STATE;
        }
        printf("rank %d: step %d failed as it should: %s\n", rank_, s,
               nb_graph_error(g));
        nb_graph_clear_error(g);
    }
    if (rc != NB_OK && nb_graph_error(g))
        fprintf(stderr, "rank %d: %s\n", rank_, nb_graph_error(g));
    rc = same_as_all(d, &a, rc);
    net_free(&a);
    nb_dataset_free(&train);
    return finish(d, rc, "failstep");
}

typedef struct saver {
    net *n;
    const char *path;
    int rc;
} saver;

static bool save_at_2(int64_t epoch, const nb_metrics *t, const nb_metrics *v,
                      void *user)
{
    (void)t;
    (void)v;
    saver *s = user;
    if (epoch == 2 && rank_ == 0)
        s->rc = nb_checkpoint_save(s->n->g, s->n->opt, epoch, s->path);
    return s->rc == NB_OK;
}

static int resume(nb_dist *d, const char *path)
{
    nb_dataset train = {0};
    net a = {0}, b = {0};
    int rc = data_and_nets(&train, NB_F32, 9, &a, 10 + (uint64_t)rank_, &b,
                           99 + (uint64_t)rank_, NB_OPTIM_ADAM, 0.01);
    saver s = {&a, path, NB_OK};
    nb_train_config c = config(d, 4, BATCH);
    c.on_epoch = save_at_2;
    c.user = &s;
    if (rc == NB_OK)
        rc = nb_train(a.g, &a.model, a.opt, &train, NULL, &c, NULL);
    /* Every rank reads the file rank 0 wrote: nb_train's last collective
     * came after the write. */
    int64_t epoch = 0;
    if (rc == NB_OK)
        rc = nb_checkpoint_load(b.g, b.opt, &epoch, path);
    if (rc != NB_OK)
        fprintf(stderr, "rank %d: %s\n", rank_,
                nb_graph_error(nb_graph_status(a.g) ? a.g : b.g));
    nb_train_config c2 = config(d, 4, BATCH);
    c2.first_epoch = epoch;
    /* Agreed first: a rank that failed to load must not leave the others
     * in nb_train. */
    nb_status st;
    rc = nb_dist_agree(d, rc, &st);
    if (rc == NB_OK)
        rc = nb_train(b.g, &b.model, b.opt, &train, NULL, &c2, NULL);
    if (rc == NB_OK && (epoch != 2 || !same_bits(&a, &b))) {
        fprintf(stderr, "rank %d: resumed at epoch %lld to other weights\n",
                rank_, (long long)epoch);
        rc = NB_ERR_STATE;
    }
    net_free(&a);
    net_free(&b);
    nb_dataset_free(&train);
    return finish(d, rc, "resume");
}

static int badfile(nb_dist *d, const char *path)
{
    nb_status st = {0};
    nb_tensor *t = NULL;
    int rc = NB_OK;
    if (rank_ == size_ - 1) {
        FILE *f = fopen(path, "w");
        if (f) {
            fputs("a,b\n1,2\n3,oops\n", f);
            fclose(f);
        }
        t = nb_csv_read(path, NULL, NULL, &st);
        rc = t ? NB_OK : st.code;
        if (!t)
            fprintf(stderr, "rank %d: %s\n", rank_, st.message);
    }
    nb_tensor_free(t);
    return finish(d, rc, "read");
}

static int badshape(nb_dist *d)
{
    nb_dataset train = {0};
    int rc = make_data(&train, ROWS, rank_ == size_ - 1 ? WIDTH + 1 : WIDTH,
                       NB_F32, 7);
    net a = {0};
    rc = rc ? rc : net_build(&a, NB_F32, 1, NB_OPTIM_SGD, 0.1);
    nb_train_config c = config(d, 3, BATCH);
    if (rc == NB_OK)
        rc = nb_train(a.g, &a.model, a.opt, &train, NULL, &c, NULL);
    if (rc != NB_OK)
        fprintf(stderr, "rank %d: %s\n", rank_, nb_graph_error(a.g));
    net_free(&a);
    nb_dataset_free(&train);
    /* nb_train itself returned the error on every rank; finish only
     * prints it. */
    return finish(d, rc, "train");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    nb_status st;
    /* A small bucket, so that the gradients take several. */
    nb_dist *d = nb_dist_new(MPI_COMM_WORLD, 64, &st);
    if (!d) {
        fprintf(stderr, "rank %d: %s\n", rank_, st.message);
        MPI_Finalize();
        return 1;
    }
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "equiv") == 0 && argc > 2)
        return equiv(d, argv[2]);
    if (strcmp(mode, "resume") == 0 && argc > 2)
        return resume(d, argv[2]);
    if (strcmp(mode, "badfile") == 0 && argc > 2)
        return badfile(d, argv[2]);
    if (strcmp(mode, "badshape") == 0)
        return badshape(d);
    if (strcmp(mode, "overlap") == 0 && argc > 2)
        return two_ways(d, argv[2], false);
    if (strcmp(mode, "shmbits") == 0 && argc > 2)
        return two_ways(d, argv[2], true);
    if (strcmp(mode, "failstep") == 0)
        return failstep(d, !(argc > 2 && strcmp(argv[2], "nobegin") == 0));
    fprintf(stderr, "usage: test_dist equiv f32|f64 | resume PATH | "
                    "badfile PATH | badshape | overlap f32|f64 | "
                    "shmbits f32|f64 | failstep [nobegin]\n");
    return finish(d, NB_ERR_ARG, "usage");
}
