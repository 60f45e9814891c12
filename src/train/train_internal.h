/* Shared by the files of src/train (the loop, the metrics, the progress
 * output); not installed. Everything here is built on the public API. */
#ifndef NABLA_TRAIN_INTERNAL_H
#define NABLA_TRAIN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "nabla/nabla.h"

/* Which node's rows accuracy is read from, and by which rule. */
typedef struct nb_scorer {
    nb_node *node; /* NULL: no accuracy (the model has no output) */
    bool forward;  /* node is not computed by the loss's forward pass, so
                      it needs a forward pass of its own */
    bool single;   /* one column: positive when value >= threshold */
    double threshold;
    int64_t classes;    /* columns of node, or 2 for the single-column rule */
    bool index_targets; /* y holds class indices (rank 1) */
} nb_scorer;

/* Checks the model's nodes and works out the scorer. `who` prefixes
 * error messages ("train", "evaluate"). */
int nb_train_check_model(nb_graph *g, const nb_model *model, const char *who,
                         nb_scorer *scorer);

/* Checks that ds has rows, that x and y agree on them, and that their
 * shapes and dtypes fit the model's inputs. `which` names the set. */
int nb_train_check_dataset(nb_graph *g, const nb_model *model,
                           const nb_dataset *ds, const char *who,
                           const char *which);

/* Scores the first `count` rows of the scorer's node against the targets
 * fed to model->y: returns how many are right and adds to confusion (when
 * not NULL, `classes` wide). */
int64_t nb_train_score(const nb_scorer *scorer, const nb_model *model,
                       int64_t count, int64_t *confusion, int64_t classes);

/* nb_evaluate without its checks and without allocating: the loop calls it
 * once per epoch. Sets the graph to inference mode and leaves it there. */
int nb_train_evaluate_run(nb_graph *g, const nb_model *model,
                          const nb_scorer *scorer, const nb_dataset *ds,
                          int64_t batch_size, nb_metrics *out, const char *who);

/* Seconds on CLOCK_MONOTONIC (progress.c: the clock of the progress
 * output, which the loop also reads for its own timings). */
double nb_train_now(void);

/* ---- progress output and CSV log (progress.c) ---- */
typedef struct nb_progress {
    FILE *stream;
    nb_progress_mode mode; /* resolved: BAR, LINES or OFF */
    int64_t epochs, first_epoch, batches,
        samples; /* per epoch: batches, samples */
    bool has_acc, has_val;
    double run_start, epoch_start, last_draw;
    int drawn; /* width of the bar on the line, 0 if none */
    FILE *csv;
    const char *csv_path;
} nb_progress;

/* Opens the CSV log (truncating it) and writes its header. */
int nb_progress_begin(nb_graph *g, nb_progress *p, const nb_train_config *c,
                      int64_t batches, int64_t samples, bool has_acc,
                      bool has_val);
void nb_progress_epoch_start(nb_progress *p);
/* After batch `batch` (from 1) of epoch `epoch` (from 1); `seen` samples of
 * this epoch so far with running loss and accuracy. */
void nb_progress_batch(nb_progress *p, int64_t epoch, int64_t batch,
                       int64_t seen, double loss, double acc);
/* The epoch's summary line and CSV row. */
int nb_progress_epoch_end(nb_graph *g, nb_progress *p, int64_t epoch, double lr,
                          const nb_metrics *train, const nb_metrics *val,
                          double seconds);
/* Says which epoch's parameters were restored (lines and bar modes). */
void nb_progress_restored(nb_progress *p, int64_t epoch, double val_loss);
void nb_progress_finish(nb_progress *p);

#endif
