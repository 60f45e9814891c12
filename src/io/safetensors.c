/* The safetensors format: reading with every byte treated as hostile, and
 * atomic writing.
 *
 * Layout: bytes [0, 8) hold N, the header length, as a little-endian u64;
 * bytes [8, 8 + N) hold a JSON object mapping each tensor name to
 * {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]},
 * plus an optional "__metadata__" object of string values; the rest of the
 * file is the data section, and [begin, end) is relative to its start. A
 * tensor's data is row-major and little-endian, and
 *     end - begin = (d0 d1 ... dk) * sizeof(dtype),
 * with the empty product 1 for a scalar of shape []. The tensors' ranges,
 * sorted, must tile the data section exactly: no overlap, no hole, nothing
 * left over at the end.
 *
 * The reader checks, in this order, before trusting anything: the file is
 * long enough for N; N is at most 100 MB (the reference implementation's
 * limit) and fits in the file; the header is strict JSON (json.c); each
 * entry has exactly the three keys with a known dtype, non-negative integer
 * extents whose product and byte size do not overflow, and offsets that
 * match that byte size and lie inside the file; the tiling above. Only then
 * is the data section read (one allocation of its exact size).
 *
 * The writer emits the tensors in the order it is given, data packed in
 * that order, "__metadata__" first in the header, and pads the header with
 * spaces so that the data starts at a multiple of 8 bytes. It writes
 * "<path>.tmp.<pid>" in the same directory, then fflush, fsync, fclose and
 * rename over path (and an fsync of the directory, best effort); on any
 * failure the temporary file is removed and path is untouched.
 *
 * Bytes are assembled and taken apart with shifts, so the code is the same
 * on a big-endian host and the file is little-endian either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"
#include "nabla/graph.h"

#define ST_MAX_HEADER (100u * 1000u * 1000u)
#define ST_MAX_RANK 64
#define METADATA_KEY "__metadata__"

/* How the bits of each dtype become a number. */
typedef enum { K_F32, K_F64, K_F16, K_BF16, K_BOOL, K_UINT, K_INT, K_F8 } kind;

static const struct {
    const char *name;
    unsigned size;
    kind kind;
} dtypes[] = {
    {"BOOL", 1, K_BOOL},  {"U8", 1, K_UINT},    {"I8", 1, K_INT},
    {"F8_E5M2", 1, K_F8}, {"F8_E4M3", 1, K_F8}, {"I16", 2, K_INT},
    {"U16", 2, K_UINT},   {"F16", 2, K_F16},    {"BF16", 2, K_BF16},
    {"I32", 4, K_INT},    {"U32", 4, K_UINT},   {"F32", 4, K_F32},
    {"I64", 8, K_INT},    {"U64", 8, K_UINT},   {"F64", 8, K_F64},
};
enum { N_DTYPES = sizeof dtypes / sizeof dtypes[0] };

typedef struct st_tensor {
    const char *name; /* in the JSON document's string arena */
    int dtype;        /* index into dtypes */
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

int st_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int find_dtype(const char *name)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return i;
    return -1;
}

bool st_dtype_is_float(const char *dtype)
{
    return dtype && (strcmp(dtype, "F32") == 0 || strcmp(dtype, "F64") == 0 ||
                     strcmp(dtype, "F16") == 0 || strcmp(dtype, "BF16") == 0);
}

static uint64_t load_le(const unsigned char *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = size; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static void store_le(unsigned char *p, uint64_t v, unsigned size)
{
    for (unsigned i = 0; i < size; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

/* ---- reading ---- */

void nb_st_close(nb_st_file *f)
{
    if (!f)
        return;
    json_free(&f->doc);
    free(f->path);
    free(f->t);
    free(f->shapes);
    free(f->by_name);
    free(f->meta_key);
    free(f->meta_value);
    free(f->data);
    free(f);
}

/* Reads a non-negative integer that fits in int64 (what both extents and
 * offsets must be). Returns NULL or the reason it is not one. */
static const char *as_count(const jv *v, uint64_t *out)
{
    if (v->kind != JV_NUMBER)
        return "is not a number";
    if (!v->u.num.integer)
        return "is not an integer";
    if (v->u.num.negative && v->u.num.magnitude != 0)
        return "is negative";
    if (v->u.num.overflow || v->u.num.magnitude > (uint64_t)INT64_MAX)
        return "overflows";
    *out = v->u.num.magnitude;
    return NULL;
}

char *io_shape_str(int rank, const int64_t *shape, char *buf, size_t len)
{
    if (!buf || len == 0)
        return buf;
    size_t used = 0;
    for (int i = 0; i <= rank && used < len; i++) {
        int k = i == rank
                    ? snprintf(buf + used, len - used, "%s]", rank ? "" : "[")
                    : snprintf(buf + used, len - used, "%s%lld", i ? "," : "[",
                               (long long)shape[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }
    return buf;
}

/* Fills t from the header entry `v` named name; shapes has room for
 * ST_MAX_RANK extents. */
static int parse_entry(const char *path, const char *name, const jv *v,
                       st_tensor *t, int64_t *shapes, uint64_t data_len,
                       char *err, size_t errlen)
{
    if (v->kind != JV_OBJECT)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': entry is not an object", path,
                       name);
    for (size_t i = 0; i < v->u.list.n; i++) {
        const char *k = v->u.list.items[2 * i].u.str.s;
        if (strcmp(k, "dtype") && strcmp(k, "shape") &&
            strcmp(k, "data_offsets"))
            return st_fail(err, errlen, NB_ERR_ARG,
                           "%s: tensor '%.80s': unexpected key '%.40s'", path,
                           name, k);
    }
    const jv *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"),
             *off = json_get(v, "data_offsets");
    if (!dt || !sh || !off)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': missing %s", path, name,
                       !dt   ? "\"dtype\""
                       : !sh ? "\"shape\""
                             : "\"data_offsets\"");
    if (dt->kind != JV_STRING)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': dtype is not a string", path, name);
    t->name = name;
    t->dtype = find_dtype(dt->u.str.s);
    if (t->dtype < 0)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': unknown dtype '%.20s'", path, name,
                       dt->u.str.s);
    if (sh->kind != JV_ARRAY)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': shape is not an array", path, name);
    if (sh->u.list.n > ST_MAX_RANK)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': rank %zu exceeds the limit %d",
                       path, name, sh->u.list.n, ST_MAX_RANK);
    t->rank = (int)sh->u.list.n;
    t->shape = shapes;
    /* The count saturates instead of wrapping, so an overflow is caught
     * whichever extent causes it. */
    uint64_t count = 1;
    bool overflow = false;
    for (int i = 0; i < t->rank; i++) {
        uint64_t d;
        const char *why = as_count(&sh->u.list.items[i], &d);
        if (why)
            return st_fail(err, errlen, NB_ERR_ARG,
                           "%s: tensor '%.80s': shape extent %d %s", path, name,
                           i, why);
        shapes[i] = (int64_t)d;
        if (d != 0 && count > (uint64_t)INT64_MAX / d)
            overflow = true;
        else
            count *= d;
    }
    unsigned size = dtypes[t->dtype].size;
    bool zero = false;
    for (int i = 0; i < t->rank; i++)
        zero = zero || shapes[i] == 0;
    if (zero)
        count = 0, overflow = false;
    if (overflow || count > (uint64_t)INT64_MAX / size)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': element count of the shape "
                       "overflows",
                       path, name);
    t->count = (int64_t)count;
    uint64_t bytes = count * size;
    if (off->kind != JV_ARRAY || off->u.list.n != 2)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': data_offsets is not a pair", path,
                       name);
    const char *why = as_count(&off->u.list.items[0], &t->begin);
    if (!why)
        why = as_count(&off->u.list.items[1], &t->end);
    if (why)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': a data_offsets value %s", path,
                       name, why);
    if (t->end < t->begin)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': data_offsets [%llu, %llu] end "
                       "before they begin",
                       path, name, (unsigned long long)t->begin,
                       (unsigned long long)t->end);
    if (t->end - t->begin != bytes) {
        char sbuf[96];
        io_shape_str(t->rank, t->shape, sbuf, sizeof sbuf);
        return st_fail(
            err, errlen, NB_ERR_ARG,
            "%s: tensor '%.80s': data_offsets [%llu, %llu] span %llu "
            "bytes, but %s %s needs %llu",
            path, name, (unsigned long long)t->begin,
            (unsigned long long)t->end, (unsigned long long)(t->end - t->begin),
            dtypes[t->dtype].name, sbuf, (unsigned long long)bytes);
    }
    if (t->end > data_len)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': data_offsets end %llu is beyond "
                       "the end of the file (data section of %llu bytes; "
                       "truncated?)",
                       path, name, (unsigned long long)t->end,
                       (unsigned long long)data_len);
    return NB_OK;
}

/* Sort records: qsort has no context argument, so each carries its key. */
typedef struct keyed {
    uint64_t a, b;
    const char *name;
    int index;
} keyed;

static int cmp_keyed_range(const void *p, const void *q)
{
    const keyed *x = p, *y = q;
    if (x->a != y->a)
        return x->a < y->a ? -1 : 1;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    return x->index - y->index;
}

static int cmp_keyed_name(const void *p, const void *q)
{
    const keyed *x = p, *y = q;
    return strcmp(x->name, y->name);
}

/* The sorted ranges must tile [0, data_len). */
static int check_tiling(const char *path, const nb_st_file *f, char *err,
                        size_t errlen)
{
    if (f->n == 0) {
        if (f->data_len)
            return st_fail(err, errlen, NB_ERR_ARG,
                           "%s: data section of %llu bytes but no tensors",
                           path, (unsigned long long)f->data_len);
        return NB_OK;
    }
    keyed *k = malloc((size_t)f->n * sizeof *k);
    if (!k)
        return st_fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < f->n; i++)
        k[i] = (keyed){f->t[i].begin, f->t[i].end, f->t[i].name, i};
    qsort(k, (size_t)f->n, sizeof *k, cmp_keyed_range);
    uint64_t pos = 0;
    const char *last = NULL;
    int rc = NB_OK;
    for (int i = 0; i < f->n && rc == NB_OK; i++) {
        if (k[i].a < pos)
            rc = st_fail(err, errlen, NB_ERR_ARG,
                         "%s: tensors '%.80s' and '%.80s' overlap in the data "
                         "section",
                         path, last, k[i].name);
        else if (k[i].a > pos)
            rc = st_fail(err, errlen, NB_ERR_ARG,
                         "%s: hole in the data section: bytes [%llu, %llu) "
                         "belong to no tensor",
                         path, (unsigned long long)pos,
                         (unsigned long long)k[i].a);
        if (k[i].b > pos || !last) {
            pos = k[i].b;
            last = k[i].name;
        }
    }
    if (rc == NB_OK && pos != f->data_len)
        rc = st_fail(err, errlen, NB_ERR_ARG,
                     "%s: bytes [%llu, %llu) of the data section are not "
                     "covered by any tensor",
                     path, (unsigned long long)pos,
                     (unsigned long long)f->data_len);
    free(k);
    return rc;
}

static int build_name_index(nb_st_file *f, const char *path, char *err,
                            size_t errlen)
{
    f->by_name = malloc(((size_t)f->n + 1) * sizeof *f->by_name);
    keyed *k = malloc(((size_t)f->n + 1) * sizeof *k);
    if (!f->by_name || !k) {
        free(k);
        return st_fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < f->n; i++)
        k[i] = (keyed){0, 0, f->t[i].name, i};
    qsort(k, (size_t)f->n, sizeof *k, cmp_keyed_name);
    for (int i = 0; i < f->n; i++)
        f->by_name[i] = k[i].index;
    free(k);
    return NB_OK;
}

static int parse_metadata(nb_st_file *f, const char *path, const jv *v,
                          char *err, size_t errlen)
{
    if (v->kind != JV_OBJECT)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: " METADATA_KEY " is not an object", path);
    size_t n = v->u.list.n;
    f->meta_key = malloc((n + 1) * sizeof *f->meta_key);
    f->meta_value = malloc((n + 1) * sizeof *f->meta_value);
    if (!f->meta_key || !f->meta_value)
        return st_fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        const jv *key = &v->u.list.items[2 * i], *val = key + 1;
        if (val->kind != JV_STRING)
            return st_fail(err, errlen, NB_ERR_ARG,
                           "%s: " METADATA_KEY " value of '%.80s' is not a "
                           "string",
                           path, key->u.str.s);
        f->meta_key[i] = key->u.str.s;
        f->meta_value[i] = val->u.str.s;
    }
    f->nmeta = (int)n;
    return NB_OK;
}

/* Reads exactly len bytes; distinguishes a short file from an I/O error. */
static int read_exact(FILE *fp, void *buf, size_t len, const char *path,
                      const char *what, char *err, size_t errlen)
{
    if (len == 0 || fread(buf, 1, len, fp) == len)
        return NB_OK;
    if (ferror(fp))
        return st_fail(err, errlen, NB_ERR_ARG, "%s: read error in the %s: %s",
                       path, what, strerror(errno));
    return st_fail(err, errlen, NB_ERR_ARG,
                   "%s: file is truncated in the %s (it shrank while read)",
                   path, what);
}

static int open_checked(nb_st_file *f, const char *path, FILE *fp, char *err,
                        size_t errlen)
{
    struct stat st;
    if (fstat(fileno(fp), &st) != 0)
        return st_fail(err, errlen, NB_ERR_ARG, "%s: cannot stat: %s", path,
                       strerror(errno));
    if (!S_ISREG(st.st_mode))
        return st_fail(err, errlen, NB_ERR_ARG, "%s: not a regular file", path);
    uint64_t size = (uint64_t)st.st_size;
    if (size < 8)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: file of %llu bytes is too short for the 8-byte "
                       "header size (truncated?)",
                       path, (unsigned long long)size);
    unsigned char head[8];
    int rc = read_exact(fp, head, 8, path, "header size", err, errlen);
    if (rc)
        return rc;
    uint64_t n = load_le(head, 8);
    if (n > ST_MAX_HEADER)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: header size %llu is absurd (limit %u bytes)", path,
                       (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: header size %llu exceeds the file (%llu bytes "
                       "after the size field; truncated?)",
                       path, (unsigned long long)n,
                       (unsigned long long)(size - 8));
    f->data_len = size - 8 - n;

    char *text = malloc((size_t)n + 1);
    if (!text)
        return st_fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    rc = read_exact(fp, text, (size_t)n, path, "header", err, errlen);
    char jerr[256];
    if (rc == NB_OK &&
        !json_parse(text, (size_t)n, 8, &f->doc, jerr, sizeof jerr))
        rc = st_fail(err, errlen, NB_ERR_ARG, "%s: header: %s", path, jerr);
    free(text);
    if (rc)
        return rc;

    const jv *root = &f->doc.root;
    if (root->kind != JV_OBJECT)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: header is not a JSON object", path);
    size_t members = root->u.list.n;
    f->t = calloc(members + 1, sizeof *f->t);
    if (!f->t)
        return st_fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    /* Extents are stored in one array; rank is bounded per tensor but the
     * total is bounded by the number of JSON values, so count first. */
    size_t total_rank = 0;
    for (size_t i = 0; i < members; i++) {
        const jv *v = &root->u.list.items[2 * i + 1];
        const jv *sh = json_get(v, "shape");
        if (sh && sh->kind == JV_ARRAY)
            total_rank += sh->u.list.n;
    }
    f->shapes = malloc((total_rank + 1) * sizeof *f->shapes);
    if (!f->shapes)
        return st_fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    size_t used = 0;
    for (size_t i = 0; i < members; i++) {
        const char *name = root->u.list.items[2 * i].u.str.s;
        const jv *v = &root->u.list.items[2 * i + 1];
        if (strcmp(name, METADATA_KEY) == 0) {
            rc = parse_metadata(f, path, v, err, errlen);
        } else {
            st_tensor *t = &f->t[f->n];
            rc = parse_entry(path, name, v, t, f->shapes + used, f->data_len,
                             err, errlen);
            if (rc == NB_OK) {
                used += (size_t)t->rank;
                f->n++;
            }
        }
        if (rc)
            return rc;
    }
    rc = check_tiling(path, f, err, errlen);
    if (rc == NB_OK)
        rc = build_name_index(f, path, err, errlen);
    if (rc)
        return rc;

    if (f->data_len > SIZE_MAX - 1 ||
        !(f->data = malloc((size_t)f->data_len + 1)))
        return st_fail(err, errlen, NB_ERR_NOMEM,
                       "%s: out of memory for %llu bytes of data", path,
                       (unsigned long long)f->data_len);
    return read_exact(fp, f->data, (size_t)f->data_len, path, "data section",
                      err, errlen);
}

nb_st_file *nb_st_open(const char *path, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!path) {
        st_fail(err, errlen, NB_ERR_ARG, "st_open: path is NULL");
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        st_fail(err, errlen, NB_ERR_ARG, "%s: cannot open: %s", path,
                strerror(errno));
        return NULL;
    }
    nb_st_file *f = calloc(1, sizeof *f);
    int rc = NB_ERR_NOMEM;
    if (f && (f->path = malloc(strlen(path) + 1))) {
        strcpy(f->path, path);
        rc = open_checked(f, path, fp, err, errlen);
    } else {
        st_fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    }
    fclose(fp);
    if (rc != NB_OK) {
        nb_st_close(f);
        return NULL;
    }
    return f;
}

int nb_st_count(const nb_st_file *f)
{
    return f ? f->n : 0;
}

static const st_tensor *tensor_at(const nb_st_file *f, int i)
{
    return f && i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const char *nb_st_name(const nb_st_file *f, int i)
{
    const st_tensor *t = tensor_at(f, i);
    return t ? t->name : NULL;
}

int nb_st_find(const nb_st_file *f, const char *name)
{
    if (!f || !name)
        return -1;
    int lo = 0, hi = f->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t[f->by_name[mid]].name, name);
        if (c == 0)
            return f->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

const char *nb_st_dtype(const nb_st_file *f, int i)
{
    const st_tensor *t = tensor_at(f, i);
    return t ? dtypes[t->dtype].name : NULL;
}

int nb_st_rank(const nb_st_file *f, int i)
{
    const st_tensor *t = tensor_at(f, i);
    return t ? t->rank : -1;
}

const int64_t *nb_st_shape(const nb_st_file *f, int i)
{
    const st_tensor *t = tensor_at(f, i);
    return t ? t->shape : NULL;
}

const char *nb_st_metadata(const nb_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_key[i], key) == 0)
            return f->meta_value[i];
    return NULL;
}

int nb_st_metadata_count(const nb_st_file *f)
{
    return f ? f->nmeta : 0;
}

const char *nb_st_metadata_key(const nb_st_file *f, int i)
{
    return f && i >= 0 && i < f->nmeta ? f->meta_key[i] : NULL;
}

/* IEEE binary16 to binary32: exact, since every half is a float. */
static float half_to_float(unsigned h)
{
    unsigned sign = (h >> 15) & 1, exp = (h >> 10) & 0x1F, frac = h & 0x3FF;
    float v;
    if (exp == 0)
        v = (float)frac * 0x1p-24f; /* zero and subnormals: frac 2^-24 */
    else if (exp == 31)
        v = frac ? NAN : INFINITY;
    else
        v = (float)(frac | 0x400) * (float)(1 << exp) * 0x1p-25f;
    return sign ? -v : v;
}

static double element(const unsigned char *p, int dtype)
{
    unsigned size = dtypes[dtype].size;
    uint64_t bits = load_le(p, size);
    switch (dtypes[dtype].kind) {
    case K_F32: {
        uint32_t b = (uint32_t)bits;
        float v;
        memcpy(&v, &b, sizeof v);
        return v;
    }
    case K_F64: {
        double v;
        memcpy(&v, &bits, sizeof v);
        return v;
    }
    case K_F16:
        return half_to_float((unsigned)bits);
    case K_BF16: {
        uint32_t b = (uint32_t)bits << 16; /* the high half of an f32 */
        float v;
        memcpy(&v, &b, sizeof v);
        return v;
    }
    case K_BOOL:
        return bits != 0;
    case K_UINT:
        return (double)bits;
    case K_INT: {
        /* Sign-extend from `size` bytes. */
        if (size < 8 && (bits >> (8 * size - 1)) & 1)
            bits |= ~UINT64_C(0) << (8 * size);
        int64_t v;
        memcpy(&v, &bits, sizeof v);
        return (double)v;
    }
    case K_F8:
        break; /* refused by nb_st_read */
    }
    return NAN;
}

int nb_st_read(const nb_st_file *f, int i, nb_tensor *dst, char *err,
               size_t errlen)
{
    const st_tensor *t = tensor_at(f, i);
    if (!t)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "st_read: tensor index %d is out of range", i);
    if (!dst)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': destination is NULL", f->path,
                       t->name);
    if (nb_tensor_size(dst) != t->count)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s' has %lld elements, the destination "
                       "%lld",
                       f->path, t->name, (long long)t->count,
                       (long long)nb_tensor_size(dst));
    const char *dn = dtypes[t->dtype].name;
    kind k = dtypes[t->dtype].kind;
    if (k == K_F8)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: tensor '%.80s': cannot convert dtype %s", f->path,
                       t->name, dn);
    const unsigned char *src = f->data + t->begin;
    unsigned size = dtypes[t->dtype].size;
    nb_dtype out = nb_tensor_dtype(dst);
    void *data = nb_tensor_data(dst);
    /* Same dtype: copy the bits, so that NaN payloads survive too. */
    if ((out == NB_F32 && k == K_F32) || (out == NB_F64 && k == K_F64)) {
        unsigned char *d = data;
        for (int64_t e = 0; e < t->count; e++) {
            uint64_t bits = load_le(src + (size_t)e * size, size);
            if (size == 4) {
                uint32_t b = (uint32_t)bits;
                memcpy(d + (size_t)e * 4, &b, 4);
            } else {
                memcpy(d + (size_t)e * 8, &bits, 8);
            }
        }
        return NB_OK;
    }
    for (int64_t e = 0; e < t->count; e++) {
        double v = element(src + (size_t)e * size, t->dtype);
        if (out == NB_F32)
            ((float *)data)[e] = (float)v;
        else
            ((double *)data)[e] = v;
    }
    return NB_OK;
}

/* ---- writing ---- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void puts_(sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_u64(sbuf *b, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    puts_(b, tmp);
}

/* A JSON string literal; s is valid UTF-8, which passes through. */
static void put_json_string(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[7] = {'\\', 0, 0, 0, 0, 0, 0};
        switch (*p) {
        case '"':
            e[1] = '"';
            put(b, e, 2);
            break;
        case '\\':
            e[1] = '\\';
            put(b, e, 2);
            break;
        case '\b':
            e[1] = 'b';
            put(b, e, 2);
            break;
        case '\f':
            e[1] = 'f';
            put(b, e, 2);
            break;
        case '\n':
            e[1] = 'n';
            put(b, e, 2);
            break;
        case '\r':
            e[1] = 'r';
            put(b, e, 2);
            break;
        case '\t':
            e[1] = 't';
            put(b, e, 2);
            break;
        default:
            if (*p < 0x20) {
                memcpy(e + 1, "u00", 3);
                e[4] = hex[*p >> 4];
                e[5] = hex[*p & 15];
                put(b, e, 6);
            } else {
                put(b, (const char *)p, 1);
            }
        }
    }
    put(b, "\"", 1);
}

static bool valid_text(const char *s)
{
    return s && json_utf8_valid((const unsigned char *)s, strlen(s));
}

static int cmp_strptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first string that occurs twice in list, or NULL. */
static const char *first_duplicate(int n, const char *const *list, int *rc)
{
    *rc = NB_OK;
    if (n < 2)
        return NULL;
    const char **s = malloc((size_t)n * sizeof *s);
    if (!s) {
        *rc = NB_ERR_NOMEM;
        return NULL;
    }
    memcpy(s, list, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_strptr);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0)
            dup = s[i];
    free(s);
    return dup;
}

static int check_save_args(const char *path, int n, const char *const *names,
                           const nb_tensor *const *tensors, int nmeta,
                           const char *const *keys, const char *const *values,
                           char *err, size_t errlen)
{
    if (n < 0 || nmeta < 0 || (n > 0 && (!names || !tensors)) ||
        (nmeta > 0 && (!keys || !values)))
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: save: bad counts or NULL arrays", path);
    for (int i = 0; i < n; i++) {
        if (!valid_text(names[i]))
            return st_fail(err, errlen, NB_ERR_ARG,
                           "%s: save: name %d is NULL or not valid UTF-8", path,
                           i);
        if (strcmp(names[i], METADATA_KEY) == 0)
            return st_fail(err, errlen, NB_ERR_ARG,
                           "%s: save: a tensor may not be called "
                           "'" METADATA_KEY "'",
                           path);
        if (!tensors[i])
            return st_fail(err, errlen, NB_ERR_ARG,
                           "%s: save: tensor '%.80s' is NULL", path, names[i]);
        nb_dtype dt = nb_tensor_dtype(tensors[i]);
        if (dt != NB_F32 && dt != NB_F64)
            return st_fail(err, errlen, NB_ERR_ARG,
                           "%s: save: tensor '%.80s' has unknown dtype %d",
                           path, names[i], (int)dt);
    }
    for (int i = 0; i < nmeta; i++)
        if (!valid_text(keys[i]) || !valid_text(values[i]))
            return st_fail(err, errlen, NB_ERR_ARG,
                           "%s: save: metadata pair %d is NULL or not valid "
                           "UTF-8",
                           path, i);
    int rc;
    const char *dup = first_duplicate(n, names, &rc);
    if (!dup && rc == NB_OK)
        dup = first_duplicate(nmeta, keys, &rc);
    if (rc)
        return st_fail(err, errlen, rc, "%s: out of memory", path);
    if (dup)
        return st_fail(err, errlen, NB_ERR_ARG,
                       "%s: save: duplicate name '%.80s'", path, dup);
    return NB_OK;
}

static int build_header(sbuf *b, int n, const char *const *names,
                        const nb_tensor *const *tensors, int nmeta,
                        const char *const *keys, const char *const *values)
{
    put(b, "{", 1);
    if (nmeta > 0) {
        puts_(b, "\"" METADATA_KEY "\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i)
                put(b, ",", 1);
            put_json_string(b, keys[i]);
            put(b, ":", 1);
            put_json_string(b, values[i]);
        }
        put(b, "}", 1);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = tensors[i];
        if (i || nmeta > 0)
            put(b, ",", 1);
        put_json_string(b, names[i]);
        puts_(b, nb_tensor_dtype(t) == NB_F32
                     ? ":{\"dtype\":\"F32\",\"shape\":["
                     : ":{\"dtype\":\"F64\",\"shape\":[");
        for (int d = 0; d < nb_tensor_rank(t); d++) {
            if (d)
                put(b, ",", 1);
            put_u64(b, (uint64_t)nb_tensor_shape(t)[d]);
        }
        uint64_t bytes =
            (uint64_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
        puts_(b, "],\"data_offsets\":[");
        put_u64(b, offset);
        put(b, ",", 1);
        put_u64(b, offset + bytes);
        puts_(b, "]}");
        offset += bytes;
    }
    put(b, "}", 1);
    /* Spaces, which JSON allows after the value, align the data to 8. */
    while (!b->oom && (8 + b->len) % 8 != 0)
        put(b, " ", 1);
    return b->oom ? NB_ERR_NOMEM : NB_OK;
}

/* Writes one tensor's elements little-endian through a staging buffer. */
static bool write_tensor(FILE *fp, const nb_tensor *t)
{
    unsigned char buf[1 << 14];
    unsigned size = (unsigned)nb_dtype_size(nb_tensor_dtype(t));
    const unsigned char *src = nb_tensor_cdata(t);
    int64_t count = nb_tensor_size(t), per = (int64_t)(sizeof buf / size);
    for (int64_t k = 0; k < count; k += per) {
        int64_t m = count - k < per ? count - k : per;
        for (int64_t j = 0; j < m; j++) {
            const unsigned char *e = src + (size_t)(k + j) * size;
            uint64_t bits;
            if (size == 4) {
                uint32_t b;
                memcpy(&b, e, 4);
                bits = b;
            } else {
                memcpy(&bits, e, 8);
            }
            store_le(buf + (size_t)j * size, bits, size);
        }
        if (fwrite(buf, size, (size_t)m, fp) != (size_t)m)
            return false;
    }
    return true;
}

/* Flushes the directory entry made by rename; not every file system
 * supports it, so failure is not an error (the data itself is synced). */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = malloc(2);
        if (dir)
            strcpy(dir, ".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(len + 1);
        if (dir) {
            memcpy(dir, path, len);
            dir[len] = '\0';
        }
    }
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int nb_st_save(const char *path, int n, const char *const *names,
               const nb_tensor *const *tensors, int nmeta,
               const char *const *meta_keys, const char *const *meta_values,
               char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!path || !*path)
        return st_fail(err, errlen, NB_ERR_ARG, "st_save: path is empty");
    int rc = check_save_args(path, n, names, tensors, nmeta, meta_keys,
                             meta_values, err, errlen);
    if (rc)
        return rc;
    sbuf h = {0};
    if (build_header(&h, n, names, tensors, nmeta, meta_keys, meta_values)) {
        free(h.s);
        return st_fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    }

    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(h.s);
        return st_fail(err, errlen, NB_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        rc = st_fail(err, errlen, NB_ERR_ARG,
                     "%s: cannot create the temporary file '%s': %s", path, tmp,
                     strerror(errno));
        free(h.s);
        free(tmp);
        return rc;
    }
    unsigned char size_field[8];
    store_le(size_field, (uint64_t)h.len, 8);
    const char *stage = "write";
    bool ok =
        fwrite(size_field, 1, 8, fp) == 8 && fwrite(h.s, 1, h.len, fp) == h.len;
    for (int i = 0; ok && i < n; i++)
        ok = write_tensor(fp, tensors[i]);
    if (ok && fflush(fp) != 0)
        ok = false;
    if (ok && fsync(fileno(fp)) != 0)
        ok = false, stage = "fsync";
    int saved = errno;
    if (fclose(fp) != 0 && ok) {
        ok = false;
        stage = "close";
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        stage = "rename";
        saved = errno;
    }
    if (!ok) {
        remove(tmp);
        rc = st_fail(err, errlen, NB_ERR_ARG,
                     "%s: saving failed at %s of '%s': %s; the previous file, "
                     "if any, is unchanged",
                     path, stage, tmp, strerror(saved));
    } else {
        sync_parent_dir(path);
    }
    free(h.s);
    free(tmp);
    return rc;
}
