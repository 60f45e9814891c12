/* A small test harness: CHECK records a failure and goes on; each test
 * program ends with "N passed, N failed" and a non-zero exit on failure. */
#ifndef NABLA_TEST_UTIL_H
#define NABLA_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

static int tu_passed, tu_failed;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (cond) {                                                           \
            tu_passed++;                                                      \
        } else {                                                              \
            tu_failed++;                                                      \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
        }                                                                     \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                 \
    CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.17g, %s = %.17g", \
          #a, (double)(a), #b, (double)(b))

/* Checks that g holds an error whose message contains every given
 * fragment, then clears it. */
#define CHECK_ERROR(g, ...)                                                   \
    do {                                                                      \
        const char *tu_frag[] = {__VA_ARGS__};                                \
        const char *tu_msg = nb_graph_error(g);                               \
        CHECK(tu_msg != NULL, "expected an error containing '%s'",           \
              tu_frag[0]);                                                    \
        for (size_t tu_i = 0; tu_msg && tu_i < sizeof tu_frag / sizeof *tu_frag; \
             tu_i++)                                                          \
            CHECK(strstr(tu_msg, tu_frag[tu_i]) != NULL,                      \
                  "message '%s' lacks '%s'", tu_msg, tu_frag[tu_i]);          \
        nb_graph_clear_error(g);                                              \
    } while (0)

static inline int tu_finish(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, tu_passed, tu_failed);
    return tu_failed ? 1 : 0;
}

/* Shape literals: SHAPE(2, 3) -> (const int64_t[]){2, 3}. */
#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

/* Sets a node's value from a list of doubles. */
static inline void tu_set(nb_node *n, int count, const double *v)
{
    nb_tensor_copy_from_f64(nb_node_value(n), v, count);
}
#define SET(n, ...)                                                           \
    tu_set((n), (int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)),    \
           (double[]){__VA_ARGS__})

#endif
