/* Private to src/io: the strict JSON reader behind the safetensors header,
 * the loaded file, its dtypes, and the atomic writer shared by parameter
 * files and checkpoints.
 * Only the public headers are included, as for every layer above core. */
#ifndef NABLA_IO_INTERNAL_H
#define NABLA_IO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
 * may not repeat a key. Returns NB_OK, NB_ERR_IO with a message naming the
 * byte offset (plus base_offset), or NB_ERR_NOMEM. */
int json_parse(const char *text, size_t len, size_t base_offset, json_doc *doc,
               nb_status *status);
void json_free(json_doc *doc);
/* The value stored under key in an object, or NULL. */
const jv *json_get(const jv *object, const char *key);
/* Whether s[0..len) is well-formed UTF-8. */
bool json_utf8_valid(const unsigned char *s, size_t len);

/* ---- safetensors dtypes (safetensors_dtypes.c) ---- */
/* The dtypes of the format, by index into one table. */
int st_dtype_find(const char *name); /* -1 if unknown */
const char *st_dtype_name(int dtype);
unsigned st_dtype_size(int dtype);
/* Whether a tensor of this file dtype can be read into a float tensor. */
bool st_dtype_is_float(const char *dtype);
/* The little-endian unsigned integer of `size` bytes at p. */
uint64_t st_load_le(const unsigned char *p, unsigned size);
void st_store_le(unsigned char *p, uint64_t v, unsigned size);

/* ---- the loaded file (safetensors_reader.c) ---- */
typedef struct st_tensor {
    const char *name; /* in the JSON document's string arena */
    int dtype;        /* index into the dtype table */
    int rank;
    const int64_t *shape;
    uint64_t begin, end;
    int64_t count;
} st_tensor;

struct nb_st_file {
    char *path;
    json_doc doc;
    int n;
    st_tensor *t;
    int64_t *shapes;
    int *by_name; /* tensor indices sorted by name, for nb_st_find */
    int nmeta;
    const char **meta_key, **meta_value;
    unsigned char *data;
    uint64_t data_len;
};

/* Tensor i of f, or NULL when out of range. */
static inline const st_tensor *st_tensor_at(const nb_st_file *f, int i)
{
    return f && i >= 0 && i < f->n ? &f->t[i] : NULL;
}

/* "[2,3]" for any rank (nb_shape_str stops at NB_MAX_RANK). */
char *io_shape_str(int rank, const int64_t *shape, char *buf, size_t len);

/* ---- atomic replacement of a file (atomic_write.c) ---- */
/* A file being written as "<path>.tmp.<pid>" beside its target. */
typedef struct atomic_file {
    const char *path;
    char *tmp; /* the temporary name */
    char *dir; /* the directory to sync after the rename */
    FILE *fp;  /* open for writing */
} atomic_file;
/* Removes stale temporary files of path left by dead processes, then
 * creates the temporary file. NB_OK or a negative code (status set). */
int atomic_open(atomic_file *a, const char *path, nb_status *status);
/* ok: flush, fsync, close, rename over path, fsync the directory. Not ok
 * (the caller's write failed): close and remove. Either way the temporary
 * file is gone afterwards and a is released. `written` says whether the
 * caller's writes succeeded; errno_write is their errno. */
int atomic_commit(atomic_file *a, bool written, int errno_write,
                  nb_status *status);

/* ---- shared by params.c and checkpoint.c (params.c) ---- */
/* The nodes to save or load: the n given (checked: not NULL, in g, holding
 * a value, and for loading a parameter or constant) or, when n is 0, every
 * parameter of g in creation order. *out is from nb_alloc (nb_free it).
 * Returns the count, or a negative code with the error recorded on g,
 * prefixed by `what`. */
int io_collect_nodes(nb_graph *g, const char *what, int n,
                     nb_node *const *nodes, bool for_load, nb_node ***out);
/* The index in f of the tensor that can be loaded into t under name: it
 * exists, has t's shape, a floating dtype, and values that fit t's dtype.
 * Otherwise a negative code with the reason, naming path. */
int io_match(const nb_st_file *f, const char *path, const char *name,
             const nb_tensor *t, nb_status *status);
/* NB_OK when every value of tensor i fits dtype (an F64 value beyond the
 * f32 range does not fit f32); otherwise NB_ERR_IO naming the tensor and
 * the index. */
int st_check_range(const nb_st_file *f, int i, nb_dtype dtype,
                   nb_status *status);

#endif
