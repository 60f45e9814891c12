/* nabla — a training loop a user may use or skip.
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

/* The model the loop drives: inputs to feed, the loss to minimise and the
 * prediction to score. */
typedef struct nb_model {
    nb_node *x;      /* input, shape [NB_DYNAMIC, ...] */
    nb_node *y;      /* target input: class indices [NB_DYNAMIC] or target
                        rows [NB_DYNAMIC, k] */
    nb_node *loss;   /* scalar: the mean loss of a batch, plus any penalty */
    nb_node *output; /* prediction [batch, k], for accuracy; may be NULL */
} nb_model;

/* Metrics over a dataset. Accuracy: with class-index targets, the argmax of
 * the output against the label; with one-hot rows, against the target's
 * argmax; with one output column, output >= 0.5 against target >= 0.5
 * (use sigmoid outputs). */
typedef struct nb_metrics {
    double loss;     /* mean of the batch losses, weighted by batch size */
    double accuracy; /* fraction in [0, 1]; NaN without an output */
    int64_t count;   /* examples scored */
    /* confusion[true * classes + predicted], when the caller provides
     * a buffer of classes^2 entries; may be NULL. */
    int64_t *confusion;
    int64_t classes;
} nb_metrics;

/* Forward over ds in batches of batch_size in inference mode (dropout
 * off), restoring the graph's training flag afterwards. */
int nb_evaluate(nb_graph *g, const nb_model *model, const nb_dataset *ds,
                int64_t batch_size, nb_metrics *out);

typedef enum nb_progress_mode {
    NB_PROGRESS_AUTO = 0, /* a bar when the stream is a terminal, lines
                             otherwise */
    NB_PROGRESS_BAR,
    NB_PROGRESS_LINES,    /* one line per epoch */
    NB_PROGRESS_OFF
} nb_progress_mode;

typedef struct nb_train_config {
    int64_t epochs;
    int64_t batch_size;  /* 0 means the whole set (full batch) */
    bool no_shuffle;     /* keep the data order (shuffled by default) */
    bool drop_last;      /* skip a final partial batch */
    /* Early stopping on validation loss (needs a validation set): stop
     * after `patience` epochs without improvement by more than min_delta,
     * and restore the best epoch's parameters. 0 = off. */
    int64_t patience;
    double min_delta;
    /* Learning rate per epoch (t = epoch index from 0); NULL keeps the
     * optimiser's rate. */
    const nb_schedule *schedule;
    nb_progress_mode progress;
    FILE *stream;        /* progress output; NULL means stderr */
    /* Appends one row per epoch: epoch, lr, train_loss, train_acc,
     * val_loss, val_acc, seconds. NULL = no log. */
    const char *csv_path;
    /* Called after every epoch; returning false stops training. */
    bool (*on_epoch)(int64_t epoch, const nb_metrics *train,
                     const nb_metrics *val, void *user);
    void *user;
} nb_train_config;

typedef struct nb_train_result {
    int64_t epochs_run;
    int64_t best_epoch;       /* with a validation set: lowest val loss */
    bool stopped_early;
    nb_metrics train;         /* of the last epoch (running averages) */
    nb_metrics val;           /* of the best epoch when restored */
    double seconds;
} nb_train_result;

/* Trains model's trainable parameters with opt on `train`, scoring `val`
 * (may be NULL) after every epoch. result may be NULL. */
int nb_train(nb_graph *g, const nb_model *model, nb_optimizer *opt,
             const nb_dataset *train, const nb_dataset *val,
             const nb_train_config *config, nb_train_result *result);

#ifdef __cplusplus
}
#endif

#endif
