/* What the loop tells the user: a progress bar on a terminal, one line per
 * epoch elsewhere, and a CSV log with a row per epoch.
 *
 * The bar is redrawn in place ('\r') at most ten times a second:
 *   epoch 3/20 [#########.....] 512/938 loss 0.3121 acc 88.4% 61234 samples/s
 * ETA 0:42 with the time left for the whole run estimated from the mean time
 * per step so far: ETA = elapsed / steps_done * (steps_total - steps_done).
 * Each epoch ends with a summary line (the only output in lines mode):
 *   epoch  3/20: loss 0.3121, acc 88.40%, val_loss 0.3300, val_acc 87.90%, 2.10
 * s
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "train_internal.h"

enum { BAR_WIDTH = 24 };
static const double redraw_interval = 0.1; /* seconds */

double nb_train_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int digits(int64_t v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

int nb_progress_begin(nb_graph *g, nb_progress *p, const nb_train_config *c,
                      int64_t batches, int64_t samples, bool has_acc,
                      bool has_val)
{
    memset(p, 0, sizeof *p);
    p->stream = c->stream ? c->stream : stderr;
    p->mode = c->progress;
    if (p->mode == NB_PROGRESS_AUTO)
        p->mode =
            isatty(fileno(p->stream)) ? NB_PROGRESS_BAR : NB_PROGRESS_LINES;
    p->epochs = c->epochs;
    p->first_epoch = c->first_epoch;
    p->batches = batches;
    p->samples = samples;
    p->has_acc = has_acc;
    p->has_val = has_val;
    p->run_start = nb_train_now();
    p->last_draw = -INFINITY;
    if (!c->csv_path)
        return NB_OK;
    /* A resumed run appends to the stopped run's log. */
    bool resuming = c->first_epoch > 0;
    p->csv = fopen(c->csv_path, resuming ? "a" : "w");
    if (!p->csv)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "train: cannot open the CSV log '%s': %s",
                                  c->csv_path, strerror(errno));
    p->csv_path = c->csv_path;
    if (!resuming)
        fputs("epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds\n",
              p->csv);
    return NB_OK;
}

void nb_progress_epoch_start(nb_progress *p)
{
    p->epoch_start = nb_train_now();
}

/* "0:42", or "1:02:03" past an hour. */
static void clock_text(char *buf, size_t len, double seconds)
{
    long long s =
        isfinite(seconds) && seconds > 0 ? (long long)(seconds + 0.5) : 0;
    if (s >= 3600)
        snprintf(buf, len, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, len, "%lld:%02lld", s / 60, s % 60);
}

void nb_progress_batch(nb_progress *p, int64_t epoch, int64_t batch,
                       int64_t seen, double loss, double acc)
{
    if (p->mode != NB_PROGRESS_BAR)
        return;
    double now = nb_train_now();
    if (now - p->last_draw < redraw_interval)
        return;
    p->last_draw = now;

    char bar[BAR_WIDTH + 1];
    int64_t filled = batch * BAR_WIDTH / (p->batches > 0 ? p->batches : 1);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';

    double in_epoch = now - p->epoch_start;
    double rate = in_epoch > 0 ? (double)seen / in_epoch : 0;
    double done = (double)((epoch - 1 - p->first_epoch) * p->batches + batch);
    double total = (double)((p->epochs - p->first_epoch) * p->batches);
    char eta[32];
    clock_text(eta, sizeof eta, (now - p->run_start) / done * (total - done));

    char line[256], accs[32] = "";
    if (p->has_acc)
        snprintf(accs, sizeof accs, " acc %.1f%%", 100 * acc);
    int len =
        snprintf(line, sizeof line,
                 "epoch %lld/%lld [%s] %lld/%lld loss %.4f%s %.0f "
                 "samples/s ETA %s",
                 (long long)epoch, (long long)p->epochs, bar, (long long)batch,
                 (long long)p->batches, loss, accs, rate, eta);
    if (len < 0)
        return;
    if (len >= (int)sizeof line)
        len = (int)sizeof line - 1;
    /* Blank what a longer previous bar leaves behind. */
    int pad = p->drawn > len ? p->drawn - len : 0;
    fprintf(p->stream, "\r%s%*s", line, pad, "");
    fflush(p->stream);
    p->drawn = len;
}

static void clear_bar(nb_progress *p)
{
    if (p->drawn > 0) {
        fprintf(p->stream, "\r%*s\r", p->drawn, "");
        p->drawn = 0;
    }
}

/* An absent value is an empty CSV field. */
/* A NaN or infinite value is written as an empty field, like a missing one:
 * nb_csv_read accepts only plain decimal numbers, and reads an empty field
 * back as NaN when asked to, so the log stays readable by the library. */
static void csv_field(FILE *f, bool present, double v)
{
    if (present && isfinite(v))
        fprintf(f, ",%.9g", v);
    else
        fputc(',', f);
}

int nb_progress_epoch_end(nb_graph *g, nb_progress *p, int64_t epoch, double lr,
                          const nb_metrics *train, const nb_metrics *val,
                          double seconds)
{
    if (p->mode == NB_PROGRESS_BAR || p->mode == NB_PROGRESS_LINES) {
        clear_bar(p);
        fprintf(p->stream, "epoch %*lld/%lld: loss %.4f", digits(p->epochs),
                (long long)epoch, (long long)p->epochs, train->loss);
        if (p->has_acc)
            fprintf(p->stream, ", acc %.2f%%", 100 * train->accuracy);
        if (val) {
            fprintf(p->stream, ", val_loss %.4f", val->loss);
            if (p->has_acc)
                fprintf(p->stream, ", val_acc %.2f%%", 100 * val->accuracy);
        }
        fprintf(p->stream, ", %.2f s\n", seconds);
        fflush(p->stream);
    }
    if (!p->csv)
        return NB_OK;
    fprintf(p->csv, "%lld,%.9g", (long long)epoch, lr);
    csv_field(p->csv, true, train->loss);
    csv_field(p->csv, p->has_acc, train->accuracy);
    csv_field(p->csv, val != NULL, val ? val->loss : 0);
    csv_field(p->csv, val && p->has_acc, val ? val->accuracy : 0);
    fprintf(p->csv, ",%.6f\n", seconds);
    if (fflush(p->csv) != 0 || ferror(p->csv))
        return nb_graph_set_error(g, NB_ERR_STATE,
                                  "train: writing the CSV log '%s' failed: %s",
                                  p->csv_path, strerror(errno));
    return NB_OK;
}

void nb_progress_restored(nb_progress *p, int64_t epoch, double val_loss)
{
    if (p->mode != NB_PROGRESS_BAR && p->mode != NB_PROGRESS_LINES)
        return;
    clear_bar(p);
    fprintf(p->stream,
            "restored the parameters of epoch %lld (val_loss %.4f)\n",
            (long long)epoch, val_loss);
    fflush(p->stream);
}

void nb_progress_finish(nb_progress *p)
{
    /* A run that failed mid-epoch leaves a bar without its line end. */
    if (p->drawn > 0) {
        fputc('\n', p->stream);
        fflush(p->stream);
        p->drawn = 0;
    }
    if (p->csv)
        fclose(p->csv);
    p->csv = NULL;
}
