/** @file
 * A training loop a user may use or skip.
 *
 * It does what the hand-written loop in examples/xor.c does — feed a batch,
 * forward, backward, optimiser step — plus the bookkeeping around it:
 * epochs, seeded shuffling (with the graph's RNG), mini-batches, evaluation
 * on a validation set, early stopping with patience that restores the best
 * weights, learning-rate schedules, metrics (loss, accuracy, confusion
 * matrix), a progress bar on a terminal (plain lines otherwise) and a
 * per-epoch CSV log. Nothing in it reaches below the public API.
 */
#ifndef NABLA_TRAIN_H
#define NABLA_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "data.h"
#include "graph.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The most extra inputs of a model (nb_model.n_extra). */
#define NB_MODEL_MAX_EXTRA 16

/** The model the loop drives: inputs to feed, the loss to minimise and the
 * prediction to score.
 *
 * x and y are fed from a dataset's x and y; a model with more inputs or
 * more targets (a sequence model's ids, targets and mask; a two-headed
 * model's second target) lists the others in `extra`, fed from the
 * dataset's `extra` tensors in the same order, row for row. The loop
 * treats an extra input or target alike: it only feeds it; the loss says
 * what it means. Accuracy is scored against y. A model written before
 * `extra` existed (n_extra 0) trains as it did: its source compiles
 * unchanged, though a positional initialiser {x, y, loss, output} makes
 * gcc's -Wmissing-field-initializers (part of -Wextra) name the new
 * fields; designated initialisers ({.x = x, ...}) do not. The same holds
 * for nb_dataset. */
typedef struct nb_model {
    nb_node *x;      /**< input, shape [NB_DYNAMIC, ...] */
    nb_node *y;      /**< target input: class indices [NB_DYNAMIC] or target
                          rows [NB_DYNAMIC, k] (any shape [NB_DYNAMIC, ...]
                          when output is NULL) */
    nb_node *loss;   /**< scalar: the mean loss of a batch, plus any penalty */
    nb_node *output; /**< prediction [batch, k], for accuracy; may be NULL */
    /** Number of extra inputs, 0 to NB_MODEL_MAX_EXTRA. */
    int n_extra;
    /** n_extra further inputs, each [NB_DYNAMIC, ...], fed from the
     * dataset's extra[i]. */
    nb_node *const *extra;
} nb_model;

/** Metrics over a dataset. Accuracy: with class-index targets, the argmax of
 * the output against the label; with one-hot rows, against the target's
 * argmax; with one output column, output >= 0.5 against target >= 0.5
 * (use sigmoid outputs). argmax takes the first of equal entries; a label
 * that is not an integer in [0, columns) counts as wrong. When the output
 * is softmax, log_softmax or sigmoid of a node that the loss's forward pass
 * computes anyway (nb_mlp's output and loss are), that node is scored
 * instead: the same answer (argmax is unchanged, sigmoid(z) >= 0.5 iff
 * z >= 0) without a second forward pass. */
typedef struct nb_metrics {
    double loss;     /**< mean of the batch losses, weighted by batch size */
    double accuracy; /**< fraction in [0, 1]; NaN without an output */
    int64_t count;   /**< examples scored */
    /** The confusion matrix given to nb_evaluate_confusion, filled as
     * confusion[true * classes + predicted]; NULL otherwise. */
    int64_t *confusion;
    /** The confusion matrix's side; without a matrix, the output's class
     * count (2 for a single sigmoid column), 0 without an output. */
    int64_t classes;
} nb_metrics;

/** Forward over ds in batches of batch_size (0 = the whole set) in
 * inference mode (dropout off), restoring the graph's training flag
 * afterwards. The rows of ds->x and ds->y must match model->x and model->y
 * in shape (after the batch dimension) and dtype, and ds->extra[i] those
 * of model->extra[i] (as many of them as the model has). Consecutive rows are fed
 * straight from ds: nothing is allocated but the check of which node to
 * score. Returns NB_OK or a negative code, with the error on the graph:
 * NB_ERR_NONFINITE when a batch's loss is NaN or infinite (the message
 * names the rows of the batch; out then holds NaN and count 0). */
NB_API int nb_evaluate(nb_graph *g, const nb_model *model, const nb_dataset *ds,
                int64_t batch_size, nb_metrics *out);

/** nb_evaluate that also fills a confusion matrix: `confusion` holds
 * classes^2 entries (classes at least the output's class count, 2 for a
 * single sigmoid column); it is zeroed, then entry [true * classes +
 * predicted] counts the rows of that kind. */
NB_API int nb_evaluate_confusion(nb_graph *g, const nb_model *model,
                          const nb_dataset *ds, int64_t batch_size,
                          nb_metrics *out, int64_t *confusion,
                          int64_t classes);

/** How nb_train reports progress. */
typedef enum nb_progress_mode {
    NB_PROGRESS_AUTO = 0, /**< a bar when the stream is a terminal, lines
                               otherwise */
    NB_PROGRESS_BAR,   /**< a progress bar, redrawn in place */
    NB_PROGRESS_LINES, /**< one line per epoch */
    NB_PROGRESS_OFF    /**< nothing */
} nb_progress_mode;

/** Data-parallel training, for nb_train_config.dist. The core library knows
 * nothing of the transport: include/nabla/dist.h (the separate library
 * nabla_dist, built when MPI is found) fills this from an MPI communicator
 * with nb_dist_train. Every hook is a collective call: all ranks call it
 * in the same order. */
typedef struct nb_train_dist {
    int rank;  /**< this process, 0 <= rank < size; rank 0 alone prints
                    progress and writes the CSV log */
    int size;  /**< processes taking part */
    void *ctx; /**< passed to the hooks */
    /** Makes every rank's parameters, state tensors, optimiser state, step
     * count and learning rate equal to rank 0's (ranks but 0 then reseed
     * the graph's RNG apart); a failed `status` on any rank makes every
     * rank return an error. */
    int (*start)(void *ctx, nb_graph *g, nb_optimizer *opt, int status);
    /** After each epoch's shuffle: order[0..n) becomes rank 0's, so that
     * every rank shards the same permutation. */
    int (*epoch)(void *ctx, nb_graph *g, int64_t *order, int64_t n);
    /** Agreement and reduction: sums[0..n) are added across ranks in an
     * order fixed by the rank count (every rank gets the same bits); when
     * opt is not NULL and every rank passed status NB_OK, the gradient of
     * each of opt's parameters becomes the sum over ranks of weight times
     * that rank's gradient. Returns NB_OK when every rank passed NB_OK,
     * otherwise a negative code with the error on the graph (this rank's
     * own, or one that names the first failing rank). */
    int (*reduce)(void *ctx, nb_graph *g, nb_optimizer *opt, double weight,
                  int status, double *sums, int n);
    /** Optional (NULL: none), not collective: called on every rank before
     * each step's forward and backward with the weight that step's reduce
     * will pass, so that the reduction of the gradients can start while
     * backward still runs (nabla_dist sets the graph's gradient-ready
     * hook). A negative return is that rank's failure of the step. */
    int (*begin)(void *ctx, nb_graph *g, nb_optimizer *opt, double weight);
} nb_train_dist;

/** How nb_train trains. Epochs are numbered from 1 everywhere the loop
 * reports them: progress, CSV rows, on_epoch, best_epoch and error
 * messages. */
typedef struct nb_train_config {
    int64_t epochs;     /**< the last epoch to run (at most) */
    /** Epochs already done, when resuming from a checkpoint
     * (nb_checkpoint_load's epoch): the run goes on with epoch
     * first_epoch + 1, so that schedules, progress and the CSV log (which
     * is then appended to) carry on where the stopped run left off. */
    int64_t first_epoch;
    int64_t batch_size; /**< 0 means the whole set (full batch) */
    bool no_shuffle;    /**< keep the data order (shuffled by default) */
    bool drop_last;     /**< skip a final partial batch */
    /** Early stopping on validation loss (needs a validation set): stop
     * after `patience` epochs without improvement by more than min_delta
     * (epoch e improves when val_loss < best - min_delta), and restore the
     * best epoch's parameters. 0 = off. With patience on, the parameters of
     * every optimised node (nb_optimizer_param) are copied at each new best
     * and written back at the end whenever the last epoch run was not the
     * best one: after an early stop, after on_epoch stopped the run, or
     * when the epochs ran out soon after the best. The optimiser's state
     * (steps, moments) is not rewound. */
    int64_t patience;
    double min_delta; /**< the improvement patience asks for (see patience) */
    /** Learning rate per epoch (t = epoch index from 0); NULL keeps the
     * optimiser's rate. */
    const nb_schedule *schedule;
    nb_progress_mode progress; /**< bar, lines or nothing */
    FILE *stream; /**< progress output; NULL means stderr */
    /** A CSV log, created (truncated) at the start, with the header
     * "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds" and one row
     * per epoch, flushed after each; a value without a source (no output,
     * no validation set) or that is NaN or infinite is an empty field, which
     * nb_csv_read reads back as NaN with missing_as_nan. NULL = no log. */
    const char *csv_path;
    /** Called after every epoch (after the validation score, the early
     * stopping bookkeeping and the epoch's progress line and CSV row);
     * returning false stops training. */
    bool (*on_epoch)(int64_t epoch, const nb_metrics *train,
                     const nb_metrics *val, void *user);
    void *user; /**< passed to on_epoch */
    /** Data-parallel training (NULL: this process alone). batch_size is
     * then per rank: each global batch of size * batch_size rows of the
     * shared shuffle is split into contiguous shards, one per rank, and
     * the gradients are averaged weighted by shard rows, so the run equals
     * one process with batch size * batch_size up to rounding. Train and
     * validation metrics are reduced across ranks; only rank 0 prints and
     * logs; on_epoch runs on every rank and any rank returning false stops
     * them all; an error on any rank is returned by every rank. */
    const nb_train_dist *dist;
} nb_train_config;

/** What nb_train did. */
typedef struct nb_train_result {
    int64_t epochs_run; /**< epochs completed */
    int64_t best_epoch; /**< with a validation set: the last epoch that
                             improved (lowest val loss); 0 without */
    bool stopped_early; /**< by patience or by on_epoch, before the
                             last epoch */
    bool restored;      /**< the best epoch's parameters were written
                             back */
    nb_metrics train;   /**< of the last epoch (running averages) */
    nb_metrics val;     /**< of the last epoch; of the best when
                             restored; NaN without a validation set */
    double seconds;     /**< wall-clock time of the whole run */
} nb_train_result;

/** Trains model's trainable parameters with opt on `train`, scoring `val`
 * (may be NULL) after every epoch. result may be NULL.
 *
 * Each epoch: the schedule's rate for t = epoch - 1 is set, the row order
 * is shuffled with the graph's RNG (nb_shuffle of 0..n-1, so a seed fixes
 * it), and each batch is fed (nb_feed_rows), run forward and backward in
 * training mode and stepped. The train metrics are running averages over
 * the epoch's batches, taken before each step. `val` is then scored with
 * nb_evaluate's rules in batches of batch_size (the whole set when 0).
 * Datasets must match the model's inputs in row shape and dtype.
 *
 * Every buffer is allocated before the first step: once the first epoch
 * has planned the graph's buffers, later epochs make no allocation.
 *
 * Returns NB_OK, or a negative code with the error on the graph: NB_ERR_ARG
 * for a bad argument, NB_ERR_NONFINITE when a batch's loss is not finite
 * (the message names the epoch and batch; the parameters are left as they
 * were before that batch, nothing is restored) or when the validation loss
 * is (as nb_evaluate). The graph's training flag
 * is restored in every case. */
NB_API int nb_train(nb_graph *g, const nb_model *model, nb_optimizer *opt,
             const nb_dataset *train, const nb_dataset *val,
             const nb_train_config *config, nb_train_result *result);

#ifdef __cplusplus
}
#endif

#endif
