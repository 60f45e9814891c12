/* Helpers private to src/data (errors themselves go through nb_status_set
 * of nabla/base.h). Built only on the C library. */
#ifndef NABLA_DATA_UTIL_H
#define NABLA_DATA_UTIL_H

#include <stdio.h>
#include <string.h>

/* strerror_r (the POSIX form) because strerror may share one buffer
 * between threads, and independent graphs may load data concurrently. */
static inline const char *errno_text(int code, char *buf, size_t len)
{
    if (strerror_r(code, buf, len) != 0)
        snprintf(buf, len, "error %d", code);
    return buf;
}

#endif
