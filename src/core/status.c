/* The status of calls that have no graph: one formatting routine for every
 * layer, so that a message is cut the same way everywhere. */
#include <stdarg.h>
#include <stdio.h>

#include "nabla/base.h"

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
