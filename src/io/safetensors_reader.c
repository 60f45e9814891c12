/* Reading a safetensors file with every byte treated as hostile.
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
 * is the data section read (one allocation of its exact size). A file that
 * breaks any of these is NB_ERR_IO; running out of memory is NB_ERR_NOMEM.
 * Converting the data to a tensor is safetensors_dtypes.c's job.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io_internal.h"

#define ST_MAX_HEADER (100u * 1000u * 1000u)
#define ST_MAX_RANK 64
#define METADATA_KEY "__metadata__"

void nb_st_close(nb_st_file *f)
{
    if (!f)
        return;
    json_free(&f->doc);
    nb_free(f->path);
    nb_free(f->t);
    nb_free(f->shapes);
    nb_free(f->by_name);
    nb_free(f->meta_key);
    nb_free(f->meta_value);
    nb_free(f->data);
    nb_free(f);
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
                       nb_status *status)
{
    if (v->kind != JV_OBJECT)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: tensor '%.80s': entry is not an object", path,
                             name);
    for (size_t i = 0; i < v->u.list.n; i++) {
        const char *k = v->u.list.items[2 * i].u.str.s;
        if (strcmp(k, "dtype") && strcmp(k, "shape") &&
            strcmp(k, "data_offsets"))
            return nb_status_set(status, NB_ERR_IO,
                                 "%s: tensor '%.80s': unexpected key '%.40s'",
                                 path, name, k);
    }
    const jv *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"),
             *off = json_get(v, "data_offsets");
    if (!dt || !sh || !off)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: tensor '%.80s': missing %s", path, name,
                             !dt   ? "\"dtype\""
                             : !sh ? "\"shape\""
                                   : "\"data_offsets\"");
    if (dt->kind != JV_STRING)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: tensor '%.80s': dtype is not a string", path,
                             name);
    t->name = name;
    t->dtype = st_dtype_find(dt->u.str.s);
    if (t->dtype < 0)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: tensor '%.80s': unknown dtype '%.20s'", path,
                             name, dt->u.str.s);
    if (sh->kind != JV_ARRAY)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: tensor '%.80s': shape is not an array", path,
                             name);
    if (sh->u.list.n > ST_MAX_RANK)
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: tensor '%.80s': rank %zu exceeds the limit %d", path, name,
            sh->u.list.n, ST_MAX_RANK);
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
            return nb_status_set(status, NB_ERR_IO,
                                 "%s: tensor '%.80s': shape extent %d %s", path,
                                 name, i, why);
        shapes[i] = (int64_t)d;
        if (d != 0 && count > (uint64_t)INT64_MAX / d)
            overflow = true;
        else
            count *= d;
    }
    unsigned size = st_dtype_size(t->dtype);
    bool zero = false;
    for (int i = 0; i < t->rank; i++)
        zero = zero || shapes[i] == 0;
    if (zero)
        count = 0, overflow = false;
    if (overflow || count > (uint64_t)INT64_MAX / size)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: tensor '%.80s': element count of the shape "
                             "overflows",
                             path, name);
    t->count = (int64_t)count;
    uint64_t bytes = count * size;
    if (off->kind != JV_ARRAY || off->u.list.n != 2)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: tensor '%.80s': data_offsets is not a pair",
                             path, name);
    const char *why = as_count(&off->u.list.items[0], &t->begin);
    if (!why)
        why = as_count(&off->u.list.items[1], &t->end);
    if (why)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: tensor '%.80s': a data_offsets value %s",
                             path, name, why);
    if (t->end < t->begin)
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: tensor '%.80s': data_offsets [%llu, %llu] end "
            "before they begin",
            path, name, (unsigned long long)t->begin,
            (unsigned long long)t->end);
    if (t->end - t->begin != bytes) {
        char sbuf[96];
        io_shape_str(t->rank, t->shape, sbuf, sizeof sbuf);
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: tensor '%.80s': data_offsets [%llu, %llu] span %llu "
            "bytes, but %s %s needs %llu",
            path, name, (unsigned long long)t->begin,
            (unsigned long long)t->end, (unsigned long long)(t->end - t->begin),
            st_dtype_name(t->dtype), sbuf, (unsigned long long)bytes);
    }
    if (t->end > data_len)
        return nb_status_set(
            status, NB_ERR_IO,
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
static int check_tiling(const char *path, const nb_st_file *f,
                        nb_status *status)
{
    if (f->n == 0) {
        if (f->data_len)
            return nb_status_set(
                status, NB_ERR_IO,
                "%s: data section of %llu bytes but no tensors", path,
                (unsigned long long)f->data_len);
        return NB_OK;
    }
    keyed *k = nb_alloc((size_t)f->n * sizeof *k);
    if (!k)
        return nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < f->n; i++)
        k[i] = (keyed){f->t[i].begin, f->t[i].end, f->t[i].name, i};
    qsort(k, (size_t)f->n, sizeof *k, cmp_keyed_range);
    uint64_t pos = 0;
    const char *last = NULL;
    int rc = NB_OK;
    for (int i = 0; i < f->n && rc == NB_OK; i++) {
        if (k[i].a < pos)
            rc = nb_status_set(
                status, NB_ERR_IO,
                "%s: tensors '%.80s' and '%.80s' overlap in the data "
                "section",
                path, last, k[i].name);
        else if (k[i].a > pos)
            rc = nb_status_set(
                status, NB_ERR_IO,
                "%s: hole in the data section: bytes [%llu, %llu) "
                "belong to no tensor",
                path, (unsigned long long)pos, (unsigned long long)k[i].a);
        if (k[i].b > pos || !last) {
            pos = k[i].b;
            last = k[i].name;
        }
    }
    if (rc == NB_OK && pos != f->data_len)
        rc = nb_status_set(status, NB_ERR_IO,
                           "%s: bytes [%llu, %llu) of the data section are not "
                           "covered by any tensor",
                           path, (unsigned long long)pos,
                           (unsigned long long)f->data_len);
    nb_free(k);
    return rc;
}

static int build_name_index(nb_st_file *f, const char *path, nb_status *status)
{
    f->by_name = nb_alloc(((size_t)f->n + 1) * sizeof *f->by_name);
    keyed *k = nb_alloc(((size_t)f->n + 1) * sizeof *k);
    if (!f->by_name || !k) {
        nb_free(k);
        return nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < f->n; i++)
        k[i] = (keyed){0, 0, f->t[i].name, i};
    qsort(k, (size_t)f->n, sizeof *k, cmp_keyed_name);
    for (int i = 0; i < f->n; i++)
        f->by_name[i] = k[i].index;
    nb_free(k);
    return NB_OK;
}

static int parse_metadata(nb_st_file *f, const char *path, const jv *v,
                          nb_status *status)
{
    if (v->kind != JV_OBJECT)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: " METADATA_KEY " is not an object", path);
    size_t n = v->u.list.n;
    f->meta_key = nb_alloc((n + 1) * sizeof *f->meta_key);
    f->meta_value = nb_alloc((n + 1) * sizeof *f->meta_value);
    if (!f->meta_key || !f->meta_value)
        return nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        const jv *key = &v->u.list.items[2 * i], *val = key + 1;
        if (val->kind != JV_STRING)
            return nb_status_set(status, NB_ERR_IO,
                                 "%s: " METADATA_KEY
                                 " value of '%.80s' is not a "
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
                      const char *what, nb_status *status)
{
    if (len == 0 || fread(buf, 1, len, fp) == len)
        return NB_OK;
    if (ferror(fp))
        return nb_status_set(status, NB_ERR_IO, "%s: read error in the %s: %s",
                             path, what, strerror(errno));
    return nb_status_set(
        status, NB_ERR_IO,
        "%s: file is truncated in the %s (it shrank while read)", path, what);
}

static int open_checked(nb_st_file *f, const char *path, FILE *fp,
                        nb_status *status)
{
    struct stat st;
    if (fstat(fileno(fp), &st) != 0)
        return nb_status_set(status, NB_ERR_IO, "%s: cannot stat: %s", path,
                             strerror(errno));
    if (!S_ISREG(st.st_mode))
        return nb_status_set(status, NB_ERR_IO, "%s: not a regular file", path);
    uint64_t size = (uint64_t)st.st_size;
    if (size < 8)
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: file of %llu bytes is too short for the 8-byte "
            "header size (truncated?)",
            path, (unsigned long long)size);
    unsigned char head[8];
    int rc = read_exact(fp, head, 8, path, "header size", status);
    if (rc)
        return rc;
    uint64_t n = st_load_le(head, 8);
    if (n > ST_MAX_HEADER)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: header size %llu is absurd (limit %u bytes)",
                             path, (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: header size %llu exceeds the file (%llu bytes "
            "after the size field; truncated?)",
            path, (unsigned long long)n, (unsigned long long)(size - 8));
    f->data_len = size - 8 - n;

    char *text = nb_alloc((size_t)n + 1);
    if (!text)
        return nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
    rc = read_exact(fp, text, (size_t)n, path, "header", status);
    nb_status js;
    if (rc == NB_OK && (rc = json_parse(text, (size_t)n, 8, &f->doc, &js)))
        rc = nb_status_set(status, rc, "%s: header: %s", path, js.message);
    nb_free(text);
    if (rc)
        return rc;

    const jv *root = &f->doc.root;
    if (root->kind != JV_OBJECT)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: header is not a JSON object", path);
    size_t members = root->u.list.n;
    f->t = nb_alloc_zeroed((members + 1) * sizeof *f->t);
    if (!f->t)
        return nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
    /* Extents are stored in one array; rank is bounded per tensor but the
     * total is bounded by the number of JSON values, so count first. */
    size_t total_rank = 0;
    for (size_t i = 0; i < members; i++) {
        const jv *v = &root->u.list.items[2 * i + 1];
        const jv *sh = json_get(v, "shape");
        if (sh && sh->kind == JV_ARRAY)
            total_rank += sh->u.list.n;
    }
    f->shapes = nb_alloc((total_rank + 1) * sizeof *f->shapes);
    if (!f->shapes)
        return nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
    size_t used = 0;
    for (size_t i = 0; i < members; i++) {
        const char *name = root->u.list.items[2 * i].u.str.s;
        const jv *v = &root->u.list.items[2 * i + 1];
        if (strcmp(name, METADATA_KEY) == 0) {
            rc = parse_metadata(f, path, v, status);
        } else {
            st_tensor *t = &f->t[f->n];
            rc = parse_entry(path, name, v, t, f->shapes + used, f->data_len,
                             status);
            if (rc == NB_OK) {
                used += (size_t)t->rank;
                f->n++;
            }
        }
        if (rc)
            return rc;
    }
    rc = check_tiling(path, f, status);
    if (rc == NB_OK)
        rc = build_name_index(f, path, status);
    if (rc)
        return rc;

    if (f->data_len > SIZE_MAX - 1 ||
        !(f->data = nb_alloc((size_t)f->data_len + 1)))
        return nb_status_set(status, NB_ERR_NOMEM,
                             "%s: out of memory for %llu bytes of data", path,
                             (unsigned long long)f->data_len);
    return read_exact(fp, f->data, (size_t)f->data_len, path, "data section",
                      status);
}

nb_st_file *nb_st_open(const char *path, nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    if (!path) {
        nb_status_set(status, NB_ERR_ARG, "st_open: path is NULL");
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        nb_status_set(status, NB_ERR_IO, "%s: cannot open: %s", path,
                      strerror(errno));
        return NULL;
    }
    nb_st_file *f = nb_alloc_zeroed(sizeof *f);
    int rc = NB_ERR_NOMEM;
    if (f && (f->path = nb_alloc(strlen(path) + 1))) {
        strcpy(f->path, path);
        rc = open_checked(f, path, fp, status);
    } else {
        nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
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

const char *nb_st_name(const nb_st_file *f, int i)
{
    const st_tensor *t = st_tensor_at(f, i);
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
    const st_tensor *t = st_tensor_at(f, i);
    return t ? st_dtype_name(t->dtype) : NULL;
}

int nb_st_rank(const nb_st_file *f, int i)
{
    const st_tensor *t = st_tensor_at(f, i);
    return t ? t->rank : -1;
}

const int64_t *nb_st_shape(const nb_st_file *f, int i)
{
    const st_tensor *t = st_tensor_at(f, i);
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
