/* What the libFuzzer harnesses share: a private temporary file that each
 * input is written to (the loaders read paths), and a check that aborts,
 * so that libFuzzer keeps the input that broke a promise, not only one
 * that crashed. */
#ifndef NABLA_FUZZ_UTIL_H
#define NABLA_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nabla/nabla.h"

#define FUZZ_CHECK(cond, ...)                                                 \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: broken promise: %s: ", __FILE__,          \
                    __LINE__, #cond);                                         \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* One path per process (libFuzzer's -jobs and -fork run several). */
static inline const char *fuzz_path(const char *suffix)
{
    static char path[512];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/nabla-fuzz-%ld%s",
                 dir && *dir ? dir : "/tmp", (long)getpid(), suffix);
    }
    return path;
}

static inline void fuzz_write(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL, "cannot write %s", path);
    FUZZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size, "short write");
    FUZZ_CHECK(fclose(f) == 0, "close");
}

/* Splits an input into its first byte, which a harness reads as options,
 * and the file, which it writes to a fresh path with the given suffix.
 * Returns the path, or NULL for an empty input. */
static inline const char *fuzz_mode_and_file(const uint8_t *data, size_t size,
                                             const char *suffix, int *mode,
                                             const uint8_t **file, size_t *file_size)
{
    if (size == 0)
        return NULL;
    *mode = data[0];
    *file = data + 1;
    *file_size = size - 1;
    return fuzz_path(suffix);
}

/* Bitwise equality of two tensors (NaN payloads included). */
static inline int fuzz_same_bits(const nb_tensor *a, const nb_tensor *b)
{
    if (nb_tensor_dtype(a) != nb_tensor_dtype(b) ||
        nb_tensor_size(a) != nb_tensor_size(b))
        return 0;
    size_t bytes = (size_t)nb_tensor_size(a) * nb_dtype_size(nb_tensor_dtype(a));
    return bytes == 0 || memcmp(nb_tensor_cdata(a), nb_tensor_cdata(b), bytes) == 0;
}

/* A free-standing copy of t, to compare against after a failed load. */
static inline nb_tensor *fuzz_copy(const nb_tensor *t)
{
    nb_tensor *c = nb_tensor_new(nb_tensor_dtype(t), nb_tensor_rank(t),
                                 nb_tensor_shape(t));
    FUZZ_CHECK(c != NULL, "out of memory");
    size_t bytes = (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
    if (bytes)
        memcpy(nb_tensor_data(c), nb_tensor_cdata(t), bytes);
    return c;
}

#endif
