/** @file
 * What every other header builds on: the export macro, the error codes and
 * the status of calls that have no graph, and the library's allocator.
 *
 * Errors have two shapes, one per kind of call:
 * - a call on a graph (constructors, forward, backward, the optimiser of a
 *   graph) records a sticky message on the graph (nb_graph_error) and
 *   returns NULL or a negative NB_ERR_* code;
 * - a call with no graph (loaders, savers, dataset helpers) takes an
 *   `nb_status *` as its last argument, returns NULL or a negative code,
 *   and fills the status with the same code and a message. The status may
 *   be NULL when the caller wants only the code.
 *
 * NULL is never a crash: every public function takes NULL for any pointer
 * argument. A call that does something returns NULL or a negative code
 * (with a message on the graph or status when it was given one); a getter
 * returns an empty value (0, false, NaN, NULL: each header says which); a
 * function that returns nothing does nothing. tests/test_api_null.c checks
 * this for every exported function.
 */
#ifndef NABLA_BASE_H
#define NABLA_BASE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a function of the public API. The library is built with hidden
 * visibility, so nothing else it defines is exported. */
#if defined(_WIN32)
#  if defined(NB_BUILDING_LIBRARY)
#    define NB_API __declspec(dllexport)
#  else
#    define NB_API
#  endif
#elif defined(__GNUC__)
#  define NB_API __attribute__((visibility("default")))
#else
#  define NB_API
#endif

/** Error codes returned by functions that return int. */
enum {
    NB_OK = 0,            /**< success */
    NB_ERR_ARG = -1,      /**< bad argument: NULL, wrong shape, wrong dtype */
    NB_ERR_NOMEM = -2,    /**< an allocation failed */
    NB_ERR_STATE = -3,    /**< the call does not fit the graph's state */
    NB_ERR_NONFINITE = -4,/**< checking mode found a NaN or infinity */
    NB_ERR_IO = -5        /**< a file could not be read, written or parsed */
};

/** The outcome of a call that has no graph to record its error on. */
typedef struct nb_status {
    int code;           /**< NB_OK or a negative NB_ERR_* code */
    char message[256];  /**< NUL-terminated; empty when code is NB_OK */
} nb_status;

/** Fills status (when not NULL) with code and a printf-style message (fmt
 * NULL: an empty one) and returns code, so that a failing call can end with
 * `return nb_status_set(status, NB_ERR_IO, "%s: ...", path);`. Code built
 * on nabla may use it for its own calls without a graph. */
NB_API int nb_status_set(nb_status *status, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** @name Memory
 * Every allocation of the library goes through these, and so through the
 * allocator set with nb_set_allocator; code built on nabla may use them too
 * so that one hook sees everything. */
/** @{ */
/** A replacement for the library's aligned allocator. */
typedef struct nb_allocator {
    /** Returns size bytes aligned to `align` (a power of two >= 64), or NULL. */
    void *(*alloc)(size_t size, size_t align, void *user);
    /** Releases memory from alloc (never called with NULL). */
    void (*free)(void *ptr, void *user);
    /** Passed to alloc and free. */
    void *user;
} nb_allocator;
/** Replaces the allocator every later allocation of the library uses; NULL
 * restores the default. Call before creating graphs or tensors. */
NB_API void nb_set_allocator(const nb_allocator *allocator);
/** size bytes, 64-byte aligned, from the current allocator; NULL on failure
 * (a size of 0 returns a valid pointer that must be freed). */
NB_API void *nb_alloc(size_t size);
/** As nb_alloc, zero-filled. */
NB_API void *nb_alloc_zeroed(size_t size);
/** Releases memory from nb_alloc / nb_alloc_zeroed / nb_realloc; NULL does
 * nothing. */
NB_API void nb_free(void *ptr);
/** Resizes a block from nb_alloc to new_size bytes, keeping the first
 * min(old_size, new_size) bytes: old_size is the size it was allocated
 * with, since the allocator hook does not record sizes. ptr NULL acts as
 * nb_alloc. On failure returns NULL and ptr is left as it was (still to be
 * freed). Always a fresh block and a copy: the hook has no resize. */
NB_API void *nb_realloc(void *ptr, size_t old_size, size_t new_size);
/** @} */

#ifdef __cplusplus
}
#endif
#endif
