/* Private to src/io: the strict JSON reader behind the safetensors header
 * and the safetensors writer shared by parameter files and checkpoints.
 * Only the public headers are included, as for every layer above core. */
#ifndef NABLA_IO_INTERNAL_H
#define NABLA_IO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nabla/graph.h"
#include "nabla/io.h"
#include "nabla/tensor.h"

/* ---- JSON (json.c) ---- */
typedef enum jv_kind {
    JV_NULL,
    JV_FALSE,
    JV_TRUE,
    JV_NUMBER,
    JV_STRING,
    JV_ARRAY,
    JV_OBJECT
} jv_kind;

typedef struct jv jv;
struct jv {
    jv_kind kind;
    size_t offset; /* where the value starts in the parsed text */
    union {
        struct {
            const char *s; /* decoded UTF-8, NUL-terminated, no NUL inside */
            size_t len;
        } str;
        struct {
            bool negative;
            bool integer;  /* no fraction and no exponent */
            bool overflow; /* |value| does not fit in uint64 */
            uint64_t magnitude;
        } num;
        struct {
            jv *items; /* objects: 2n items, key (a string) then value */
            size_t n;
        } list;
    } u;
};

typedef struct json_doc {
    jv root;
    char *strings; /* arena holding every decoded string */
} json_doc;

enum {
    JSON_MAX_DEPTH = 32,
    /* A bound on values (a tensor's entry takes about 12), so that a
     * hostile header cannot turn 100 MB of "[0,0,0,..." into gigabytes of
     * tree: at most ~64 MB of nodes, room for ~80,000 tensors. */
    JSON_MAX_VALUES = 1024 * 1024
};

/* Parses text[0..len) as exactly one JSON value surrounded by optional
 * whitespace. Strings must be valid UTF-8 and may not contain NUL; objects
 * may not repeat a key. On failure returns false with a message naming
 * the byte offset (plus base_offset) in err. */
bool json_parse(const char *text, size_t len, size_t base_offset, json_doc *doc,
                char *err, size_t errlen);
void json_free(json_doc *doc);
/* The value stored under key in an object, or NULL. */
const jv *json_get(const jv *object, const char *key);
/* Whether s[0..len) is well-formed UTF-8. */
bool json_utf8_valid(const unsigned char *s, size_t len);

/* ---- safetensors (safetensors.c) ---- */
/* Whether a tensor of this file dtype can be read into a float tensor. */
bool st_dtype_is_float(const char *dtype);

/* Formats into err (always terminated); returns code. */
int st_fail(char *err, size_t errlen, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* "[2,3]" for any rank (nb_shape_str stops at NB_MAX_RANK). */
char *io_shape_str(int rank, const int64_t *shape, char *buf, size_t len);

/* ---- shared by params.c and checkpoint.c (params.c) ---- */
/* The nodes to save or load: the n given (checked: not NULL, in g, holding
 * a value, and for loading a parameter or constant) or, when n is 0, every
 * parameter of g in creation order. *out is malloc'd (free it). Returns the
 * count, or a negative code with the error recorded on g, prefixed by
 * `what`. */
int io_collect_nodes(nb_graph *g, const char *what, int n,
                     nb_node *const *nodes, bool for_load, nb_node ***out);
/* The index in f of the tensor that can be loaded into t under name: it
 * exists, has t's shape and a floating dtype. Otherwise a negative code
 * with the reason, naming path, in err. */
int io_match(const nb_st_file *f, const char *path, const char *name,
             const nb_tensor *t, char *err, size_t errlen);

#endif
