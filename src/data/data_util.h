/* Helpers private to src/data: error text for loaders that have no graph
 * to record an error on. Built only on the C library. */
#ifndef NABLA_DATA_UTIL_H
#define NABLA_DATA_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Writes a printf-style message into err, when the caller gave one. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* strerror_r (the POSIX form) because strerror may share one buffer
 * between threads, and independent graphs may load data concurrently. */
static inline const char *errno_text(int code, char *buf, size_t len)
{
    if (strerror_r(code, buf, len) != 0)
        snprintf(buf, len, "error %d", code);
    return buf;
}

#endif
