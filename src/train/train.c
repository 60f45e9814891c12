/* The training loop: epochs of shuffled mini-batches, each one
 *
 *   feed x, y (and the extra inputs) -> forward(loss) -> backward(loss)
 *   -> optimiser step,
 *
 * with the validation set scored after every epoch, early stopping on the
 * validation loss, a learning-rate schedule per epoch, progress output and
 * a CSV log.
 *
 * Batching: n rows in batches of B give ceil(n / B) steps per epoch (the
 * last one partial) or floor(n / B) with drop_last. B = n is full-batch
 * gradient descent, B = 1 online learning.
 *
 * Early stopping: epoch e improves when val_loss_e < best - min_delta; the
 * run stops after `patience` epochs in a row without improvement. The
 * parameters of the best epoch are copied when it ends and written back at
 * the end of the run whenever the last epoch run was not the best.
 *
 * Every buffer (permutation, best-parameter copies) is
 * allocated before the first step, so that once the graph's own buffers
 * have been planned by the first epoch, later epochs allocate nothing.
 *
 * Data parallel (config->dist): with R ranks of per-rank batch B, global
 * batch b is rows [b RB, (b + 1) RB) of rank 0's shuffle (rank 0 draws it
 * as one process would, and sends it to the others); rank r takes the
 * contiguous shard [c r / R, c (r + 1) / R) of its c rows. The loss being a mean, the global batch's gradient is
 * sum_r (c_r / c) grad_r, which the reduce hook forms; the step, the
 * schedule and early stopping then see what one process with batch RB
 * would see. Every collective (start, each step's reduce, the
 * validation sums, the epoch's stop vote) carries each rank's status, so
 * an error on one rank is returned by all instead of leaving the others
 * waiting.
 */
#include <math.h>
#include <string.h>

#include "train_internal.h"

static const char who[] = "train";

static bool dist_ok(const nb_train_dist *d)
{
    return d->size >= 1 && d->rank >= 0 && d->rank < d->size && d->start &&
           d->epoch && d->reduce;
}

static int check_config(nb_graph *g, const nb_train_config *c,
                        const nb_optimizer *opt, const nb_dataset *val,
                        int64_t rows)
{
    int64_t ranks = c && c->dist ? c->dist->size : 1;
    if (c && c->dist && !dist_ok(c->dist))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: dist has rank %d of size %d or a NULL "
                                  "hook; fill it with nb_dist_train",
                                  who, c->dist->rank, c->dist->size);
    if (!c)
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: config is NULL", who);
    if (!opt)
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: optimiser is NULL", who);
    if (nb_optimizer_param_count(opt) < 1)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: the optimiser has no parameters", who);
    if (nb_node_graph(nb_optimizer_param(opt, 0)) != g)
        return nb_graph_set_error(
            g, NB_ERR_ARG, "%s: the optimiser belongs to another graph", who);
    if (c->epochs <= 0)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: epochs is %lld; it must be >= 1", who,
                                  (long long)c->epochs);
    if (c->first_epoch < 0 || c->first_epoch >= c->epochs)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: first_epoch is %lld; it must be in "
                                  "[0, epochs) = [0, %lld)",
                                  who, (long long)c->first_epoch,
                                  (long long)c->epochs);
    if (c->batch_size < 0)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: batch_size is %lld; it must be >= 0 "
                                  "(0 means the whole set)",
                                  who, (long long)c->batch_size);
    if (c->drop_last && c->batch_size * ranks > rows)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: drop_last with batch_size %lld on %lld "
                                  "ranks and %lld training rows leaves no "
                                  "batch",
                                  who, (long long)c->batch_size,
                                  (long long)ranks, (long long)rows);
    if (rows < ranks)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: %lld training rows for %lld ranks; "
                                  "every rank needs a row",
                                  who, (long long)rows, (long long)ranks);
    if (c->patience < 0)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: patience is %lld; it must be >= 0 "
                                  "(0 turns early stopping off)",
                                  who, (long long)c->patience);
    if (c->patience > 0 && !val)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: early stopping (patience %lld) needs a "
                                  "validation set",
                                  who, (long long)c->patience);
    if (!(c->min_delta >= 0) || isinf(c->min_delta))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: min_delta is %g; it must be finite and "
                                  ">= 0",
                                  who, c->min_delta);
    if ((unsigned)c->progress > (unsigned)NB_PROGRESS_OFF)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: progress mode %d is not one of "
                                  "NB_PROGRESS_*",
                                  who, (int)c->progress);
    return NB_OK;
}

/* The rate for epoch `epoch` (from 1), checked. */
static int set_rate(nb_graph *g, nb_optimizer *opt, const nb_schedule *s,
                    int64_t epoch)
{
    if (!s)
        return NB_OK;
    double lr = nb_schedule_lr(s, epoch - 1);
    if (!(lr >= 0) || isinf(lr))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: the schedule gives learning rate %g at "
                                  "epoch %lld",
                                  who, lr, (long long)epoch);
    nb_optimizer_set_lr(opt, lr);
    return NB_OK;
}

/* Copies of the optimiser's parameters, for keeping the best epoch's. */
typedef struct snapshot {
    int n;
    nb_tensor **copy;
} snapshot;

static int snapshot_alloc(snapshot *s, const nb_optimizer *opt)
{
    s->n = nb_optimizer_param_count(opt);
    s->copy = nb_alloc_zeroed((size_t)s->n * sizeof *s->copy);
    if (!s->copy)
        return NB_ERR_NOMEM;
    for (int i = 0; i < s->n; i++) {
        const nb_tensor *v = nb_node_value(nb_optimizer_param(opt, i));
        s->copy[i] = nb_tensor_new(nb_tensor_dtype(v), nb_tensor_rank(v),
                                   nb_tensor_shape(v));
        if (!s->copy[i])
            return NB_ERR_NOMEM;
    }
    return NB_OK;
}

static void snapshot_free(snapshot *s)
{
    for (int i = 0; s->copy && i < s->n; i++)
        nb_tensor_free(s->copy[i]);
    nb_free(s->copy);
}

static size_t tensor_bytes(const nb_tensor *t)
{
    return (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
}

static void snapshot_take(snapshot *s, const nb_optimizer *opt)
{
    for (int i = 0; i < s->n; i++) {
        nb_tensor *v = nb_node_value(nb_optimizer_param(opt, i));
        memcpy(nb_tensor_data(s->copy[i]), nb_tensor_cdata(v), tensor_bytes(v));
    }
}

static void snapshot_restore(const snapshot *s, const nb_optimizer *opt)
{
    for (int i = 0; i < s->n; i++) {
        nb_tensor *v = nb_node_value(nb_optimizer_param(opt, i));
        memcpy(nb_tensor_data(v), nb_tensor_cdata(s->copy[i]), tensor_bytes(v));
    }
}

static nb_metrics no_metrics(void)
{
    return (nb_metrics){.loss = NAN, .accuracy = NAN};
}

/* Everything the loop owns, so that one exit path frees it. */
typedef struct loop {
    nb_graph *g;
    const nb_model *m;
    nb_optimizer *opt;
    const nb_dataset *train, *val;
    const nb_train_config *c;
    nb_scorer scorer;
    int64_t rows, batch, batches;
    int64_t *idx;
    const nb_train_dist *dist; /* NULL: this process alone */
    nb_train_config quiet;     /* config without output, for ranks > 0 */
    nb_dataset val_shard;      /* this rank's validation rows */
    snapshot best;
    nb_progress progress;
} loop;

static int not_finite(loop *L, double loss, int64_t epoch, int64_t batch)
{
    return nb_graph_set_error(
        L->g, NB_ERR_NONFINITE,
        "%s: the loss is %s at epoch %lld, batch %lld (learning rate %g); "
        "lower the rate, or turn on nb_graph_set_checking to find the "
        "first node that is not finite",
        who,
        isnan(loss) ? "NaN"
        : loss > 0  ? "+inf"
                    : "-inf",
        (long long)epoch, (long long)batch, nb_optimizer_lr(L->opt));
}

/* Feed, forward, score and backward on rows idx[0..count); adds
 * loss * count to *loss_sum. A loss that is not finite is an error before
 * backward, or with `defer` (data parallel, where the reduced loss
 * decides) skips backward. */
static int forward_backward(loop *L, int64_t epoch, int64_t batch,
                            const int64_t *idx, int64_t count, bool defer,
                            double *loss_sum, int64_t *right)
{
    nb_graph *g = L->g;
    const nb_model *m = L->m;
    int rc = nb_feed_rows(g, m->x, L->train->x, idx, count);
    rc = rc ? rc : nb_feed_rows(g, m->y, L->train->y, idx, count);
    for (int i = 0; i < m->n_extra && rc == NB_OK; i++)
        rc = nb_feed_rows(g, m->extra[i], L->train->extra[i], idx, count);
    rc = rc ? rc : nb_forward(g, m->loss);
    if (rc != NB_OK)
        return rc;
    double loss = nb_tensor_get(nb_node_value(m->loss), 0);
    *loss_sum += loss * (double)count;
    if (!isfinite(loss))
        return defer ? NB_OK : not_finite(L, loss, epoch, batch);
    if (L->scorer.node && !L->scorer.forward)
        *right += nb_train_score(&L->scorer, m, count, NULL, 0);
    if ((rc = nb_backward(g, m->loss)) != NB_OK)
        return rc;
    /* After backward, so that a second pass through dropout cannot change
     * the masks the gradients were computed with. */
    if (L->scorer.node && L->scorer.forward) {
        if ((rc = nb_forward(g, L->scorer.node)) != NB_OK)
            return rc;
        *right += nb_train_score(&L->scorer, m, count, NULL, 0);
    }
    return NB_OK;
}

/* One step on rows idx[0..count); adds to the running sums. */
static int step(loop *L, int64_t epoch, int64_t batch, const int64_t *idx,
                int64_t count, double *loss_sum, int64_t *right)
{
    int rc = forward_backward(L, epoch, batch, idx, count, false, loss_sum,
                              right);
    return rc ? rc : nb_optimizer_step(L->opt);
}

/* One data-parallel step: global batch rows idx[0..count), of which this
 * rank runs its shard; the sums and gradients are reduced across ranks. */
static int dist_step(loop *L, int64_t epoch, int64_t batch,
                     const int64_t *idx, int64_t count, double *loss_sum,
                     int64_t *right)
{
    const nb_train_dist *D = L->dist;
    int64_t lo = count * D->rank / D->size;
    int64_t hi = count * (D->rank + 1) / D->size;
    double sums[2] = {0, 0};
    int64_t r = 0;
    double weight = (double)(hi - lo) / (double)count;
    int rc = D->begin ? D->begin(D->ctx, L->g, L->opt, weight) : NB_OK;
    if (rc == NB_OK && hi > lo)
        rc = forward_backward(L, epoch, batch, idx + lo, hi - lo, true,
                              &sums[0], &r);
    sums[1] = (double)r;
    rc = D->reduce(D->ctx, L->g, L->opt, weight, rc, sums, 2);
    if (rc != NB_OK)
        return rc;
    if (!isfinite(sums[0]))
        return not_finite(L, sums[0], epoch, batch);
    *loss_sum += sums[0];
    *right += (int64_t)sums[1];
    return nb_optimizer_step(L->opt);
}

static int run_epoch(loop *L, int64_t epoch, nb_metrics *out)
{
    nb_graph *g = L->g;
    nb_iota(L->idx, L->rows);
    if (!L->c->no_shuffle)
        nb_shuffle(g, L->idx, L->rows);
    int rc = L->dist ? L->dist->epoch(L->dist->ctx, g, L->idx, L->rows)
                     : NB_OK;
    if (rc != NB_OK)
        return rc;
    nb_graph_set_training(g, true);
    double loss_sum = 0;
    int64_t right = 0, seen = 0;
    for (int64_t b = 0; b < L->batches; b++) {
        int64_t first = b * L->batch;
        int64_t count = L->rows - first < L->batch ? L->rows - first : L->batch;
        rc = (L->dist ? dist_step : step)(L, epoch, b + 1, L->idx + first,
                                          count, &loss_sum, &right);
        if (rc != NB_OK)
            return rc;
        seen += count;
        nb_progress_batch(&L->progress, epoch, b + 1, seen,
                          loss_sum / (double)seen,
                          L->scorer.node ? (double)right / (double)seen : NAN);
    }
    *out = (nb_metrics){
        .loss = loss_sum / (double)seen,
        .accuracy = L->scorer.node ? (double)right / (double)seen : NAN,
        .count = seen,
        .classes = L->scorer.node ? L->scorer.classes : 0,
    };
    return NB_OK;
}

/* Scores the validation set: this rank's shard, summed across ranks, when
 * data parallel. */
static int validate(loop *L, nb_metrics *out)
{
    const nb_train_dist *D = L->dist;
    if (!D)
        return nb_train_evaluate_run(L->g, L->m, &L->scorer, L->val,
                                     L->c->batch_size, out, who);
    double sums[3] = {0, 0, 0};
    int rc = NB_OK;
    if (L->val->n_extra > 0) {
        /* nb_dataset_slice leaves borrowed extras behind, so every rank
         * scores the whole set (the same bits on each), and only the
         * statuses are agreed on. */
        rc = nb_train_evaluate_run(L->g, L->m, &L->scorer, L->val,
                                   L->c->batch_size, out, who);
        return D->reduce(D->ctx, L->g, NULL, 0, rc, NULL, 0);
    }
    if (nb_dataset_size(&L->val_shard) > 0) {
        nb_metrics m = {0};
        rc = nb_train_evaluate_run(L->g, L->m, &L->scorer, &L->val_shard,
                                   L->c->batch_size, &m, who);
        if (rc == NB_OK) {
            sums[0] = m.loss * (double)m.count;
            sums[1] = L->scorer.node ? round(m.accuracy * (double)m.count) : 0;
            sums[2] = (double)m.count;
        }
    }
    if ((rc = D->reduce(D->ctx, L->g, NULL, 0, rc, sums, 3)) != NB_OK)
        return rc;
    *out = (nb_metrics){
        .loss = sums[0] / sums[2],
        .accuracy = L->scorer.node ? sums[1] / sums[2] : NAN,
        .count = (int64_t)sums[2],
        .classes = L->scorer.node ? L->scorer.classes : 0,
    };
    return NB_OK;
}

static int setup(loop *L)
{
    nb_graph *g = L->g;
    const nb_train_config *c = L->c;
    int rc = nb_train_check_model(g, L->m, who, &L->scorer);
    rc = rc ? rc : nb_train_check_dataset(g, L->m, L->train, who, "training");
    if (rc == NB_OK && L->val)
        rc = nb_train_check_dataset(g, L->m, L->val, who, "validation");
    if (rc != NB_OK)
        return rc;
    L->rows = nb_tensor_dim(L->train->x, 0);
    if ((rc = check_config(g, c, L->opt, L->val, L->rows)) != NB_OK)
        return rc;
    /* Data parallel: the global batch, of batch_size rows per rank. */
    int64_t ranks = L->dist ? L->dist->size : 1;
    L->batch = c->batch_size == 0 || c->batch_size * ranks > L->rows
                   ? L->rows
                   : c->batch_size * ranks;
    L->batches =
        c->drop_last ? L->rows / L->batch : (L->rows + L->batch - 1) / L->batch;
    L->idx = nb_alloc((size_t)L->rows * sizeof *L->idx);
    if (!L->idx ||
        (c->patience > 0 && snapshot_alloc(&L->best, L->opt) != NB_OK))
        return nb_graph_set_error(g, NB_ERR_NOMEM, "%s: out of memory", who);
    if (L->dist && L->val && L->val->n_extra == 0) {
        int64_t n = nb_dataset_size(L->val);
        int64_t lo = n * L->dist->rank / L->dist->size;
        int64_t hi = n * (L->dist->rank + 1) / L->dist->size;
        nb_status st;
        if (hi > lo &&
            nb_dataset_slice(&L->val_shard, L->val, lo, hi - lo, &st) != NB_OK)
            return nb_graph_set_error(g, st.code, "%s: %s", who, st.message);
    }
    if (L->dist && L->dist->rank != 0) {
        L->quiet = *c;
        L->quiet.progress = NB_PROGRESS_OFF;
        L->quiet.csv_path = NULL;
        c = &L->quiet;
    }
    return nb_progress_begin(g, &L->progress, c, L->batches,
                             c->drop_last ? L->batches * L->batch : L->rows,
                             L->scorer.node != NULL, L->val != NULL);
}

static void teardown(loop *L)
{
    nb_progress_finish(&L->progress);
    snapshot_free(&L->best);
    nb_free(L->idx);
    nb_dataset_free(&L->val_shard);
}

int nb_train(nb_graph *g, const nb_model *model, nb_optimizer *opt,
             const nb_dataset *train, const nb_dataset *val,
             const nb_train_config *config, nb_train_result *result)
{
    if (!g)
        return NB_ERR_ARG;
    double start = nb_train_now();
    bool was_training = nb_graph_training(g);
    loop L = {.g = g,
              .m = model,
              .opt = opt,
              .train = train,
              .val = val,
              .c = config};
    nb_train_result r = {.train = no_metrics(), .val = no_metrics()};
    nb_metrics best_val = no_metrics();
    double best_loss = INFINITY;
    int64_t since_best = 0;
    /* Without valid hooks no collective can be made; check_config says so
     * on every rank, since all were handed the same setting. */
    L.dist = config && config->dist && dist_ok(config->dist) ? config->dist
                                                             : NULL;
    int rc = setup(&L);
    if (L.dist)
        rc = L.dist->start(L.dist->ctx, g, opt, rc);
    /* config may be NULL when setup failed. */
    int64_t first = rc == NB_OK ? config->first_epoch + 1 : 0;
    for (int64_t epoch = first; rc == NB_OK && epoch <= config->epochs;
         epoch++) {
        double t0 = nb_train_now();
        nb_progress_epoch_start(&L.progress);
        if ((rc = set_rate(g, opt, config->schedule, epoch)) != NB_OK ||
            (rc = run_epoch(&L, epoch, &r.train)) != NB_OK)
            break;
        if (val && (rc = validate(&L, &r.val)) != NB_OK)
            break;
        r.epochs_run = epoch;
        if (val) {
            if (isfinite(r.val.loss) &&
                (r.best_epoch == 0 ||
                 r.val.loss < best_loss - config->min_delta)) {
                best_loss = r.val.loss;
                best_val = r.val;
                r.best_epoch = epoch;
                since_best = 0;
                if (config->patience > 0)
                    snapshot_take(&L.best, opt);
            } else {
                since_best++;
            }
        }
        rc = nb_progress_epoch_end(g, &L.progress, epoch, nb_optimizer_lr(opt),
                                   &r.train, val ? &r.val : NULL,
                                   nb_train_now() - t0);
        bool stop = rc == NB_OK && config->on_epoch &&
                    !config->on_epoch(epoch, &r.train, val ? &r.val : NULL,
                                      config->user);
        if (L.dist) {
            /* Any rank's stop stops them all. */
            double vote = stop;
            rc = L.dist->reduce(L.dist->ctx, g, NULL, 0, rc, &vote, 1);
            stop = vote > 0;
        }
        if (rc != NB_OK)
            break;
        if (stop) {
            r.stopped_early = epoch < config->epochs;
            break;
        }
        if (config->patience > 0 && since_best >= config->patience) {
            r.stopped_early = epoch < config->epochs;
            break;
        }
    }
    if (rc == NB_OK && config->patience > 0 && r.best_epoch > 0 &&
        r.best_epoch != r.epochs_run) {
        snapshot_restore(&L.best, opt);
        r.val = best_val;
        r.restored = true;
        nb_progress_restored(&L.progress, r.best_epoch, best_loss);
    }
    if (L.c)
        teardown(&L);
    nb_graph_set_training(g, was_training);
    r.seconds = nb_train_now() - start;
    if (result)
        *result = r;
    return rc;
}
