/* Training curves from the per-epoch CSV log that nb_train writes
 * (nb_train_config.csv_path): loss and accuracy against the epoch, for the
 * training and the validation set, as a PNG, an SVG and a PDF.
 *
 *   build/examples/plot_log LOG.csv OUT_PREFIX [TITLE]
 *
 * writes OUT_PREFIX.png, .svg and .pdf: a loss panel and, when the log
 * holds accuracies, an accuracy panel in percent. The log is read by
 * nb_csv_read with missing_as_nan, since a run without a validation set
 * leaves val_loss and val_acc empty; a curve skips its empty fields. The
 * drawing is the plotting module's (examples/plot/), which the playground
 * example shares. Exits 0 when the three files were written and read back
 * well-formed (the PNG loads at its size, the SVG and PDF carry their
 * headers), 1 when the log cannot be read or a file is bad, 2 on a usage
 * error.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "plot/plot.h"

int main(int argc, char **argv)
{
    bool help =
        argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    if (argc < 3 || argc > 4) {
        fprintf(help ? stdout : stderr,
                "usage: %s LOG.csv OUT_PREFIX [TITLE]\n"
                "Plots nb_train's CSV log (epoch,lr,train_loss,train_acc,"
                "val_loss,val_acc,seconds)\ninto OUT_PREFIX.png, OUT_PREFIX.svg "
                "and OUT_PREFIX.pdf.\n",
                argv[0]);
        return help ? 0 : 2;
    }
    /* The log's file name (without directories) makes the default title. */
    const char *base = strrchr(argv[1], '/');
    base = base ? base + 1 : argv[1];
    char title[256];
    snprintf(title, sizeof title, "training curves: %s", base);
    pl_log log;
    if (pl_log_read(argv[1], &log) != 0)
        return 1;
    int val_rows = 0;
    for (int i = 0; i < log.n; i++)
        val_rows += isfinite(log.col[PL_VAL_LOSS][i]);
    printf("%s: %d rows, %d with a validation loss\n", argv[1], log.n,
           val_rows);
    int rc = pl_plot_log(&log, argv[2], argc == 4 ? argv[3] : title);
    pl_log_free(&log);
    return rc == 0 ? 0 : 1;
}
