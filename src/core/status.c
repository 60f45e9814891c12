/* Errors, in the two shapes the library has: the status of calls that have
 * no graph, and the graph's sticky error. One formatting routine for each,
 * here in core, so that every layer (the RNG included) reports the same way
 * and a message is cut the same way everywhere. */
#include <stdarg.h>
#include <stdio.h>

#include "core/internal.h"

int nb_status_set(nb_status *status, int code, const char *fmt, ...)
{
    if (!status)
        return code;
    status->code = code;
    status->message[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(status->message, sizeof status->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* The graph's sticky error: the first failure is kept, later ones are
 * dropped, so the message names the cause rather than a consequence. */
int nb_set_error_v(nb_graph *g, int code, const char *fmt, va_list ap)
{
    if (g && g->status == NB_OK) {
        g->status = code;
        vsnprintf(g->error, sizeof g->error, fmt, ap);
    }
    return code;
}

int nb_set_error(nb_graph *g, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nb_set_error_v(g, code, fmt, ap);
    va_end(ap);
    return code;
}
