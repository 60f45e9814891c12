/* Training curves from the per-epoch CSV log that nb_train writes
 * (nb_train_config.csv_path): loss and accuracy against the epoch, for the
 * training and the validation set, as a PNG and an SVG.
 *
 *   build/examples/plot_log LOG.csv OUT_PREFIX [TITLE]
 *
 * writes OUT_PREFIX.png and OUT_PREFIX.svg: a loss panel and, when the log
 * holds accuracies, an accuracy panel in percent. Empty fields (a run
 * without a validation set leaves val_loss and val_acc empty) are skipped.
 * The drawing is examples/plot.h's, which the playground example shares.
 * Exits 0 when both files were written and read back well-formed (a PNG
 * whose signature, IHDR size, chunk CRCs and image data check out, an SVG
 * from <svg to </svg>), 1 when the log cannot be read or a file is bad,
 * 2 on a usage error.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "plot.h"

int main(int argc, char **argv)
{
    bool help =
        argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    if (argc < 3 || argc > 4) {
        fprintf(help ? stdout : stderr,
                "usage: %s LOG.csv OUT_PREFIX [TITLE]\n"
                "Plots nb_train's CSV log (epoch,lr,train_loss,train_acc,"
                "val_loss,val_acc,seconds)\ninto OUT_PREFIX.png and "
                "OUT_PREFIX.svg.\n",
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
