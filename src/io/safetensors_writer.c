/* Writing a safetensors file (the layout is described in
 * safetensors_reader.c).
 *
 * The writer emits the tensors in the order it is given, data packed in
 * that order, "__metadata__" first in the header, and pads the header with
 * spaces so that the data starts at a multiple of 8 bytes. Bytes are taken
 * apart with shifts, so the file is little-endian on any host. The file
 * itself is replaced atomically (atomic_write.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

#define METADATA_KEY "__metadata__"

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
        char *p = nb_realloc(b->s, b->cap, cap);
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
    const char **s = nb_alloc((size_t)n * sizeof *s);
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
    nb_free(s);
    return dup;
}

static int check_save_args(const char *path, int n, const char *const *names,
                           const nb_tensor *const *tensors, int nmeta,
                           const char *const *keys, const char *const *values,
                           nb_status *status)
{
    if (n < 0 || nmeta < 0 || (n > 0 && (!names || !tensors)) ||
        (nmeta > 0 && (!keys || !values)))
        return nb_status_set(status, NB_ERR_ARG,
                             "%s: save: bad counts or NULL arrays", path);
    for (int i = 0; i < n; i++) {
        if (!valid_text(names[i]))
            return nb_status_set(status, NB_ERR_ARG,
                                 "%s: save: name %d is NULL or not valid UTF-8",
                                 path, i);
        if (strcmp(names[i], METADATA_KEY) == 0)
            return nb_status_set(status, NB_ERR_ARG,
                                 "%s: save: a tensor may not be called "
                                 "'" METADATA_KEY "'",
                                 path);
        if (!tensors[i])
            return nb_status_set(status, NB_ERR_ARG,
                                 "%s: save: tensor '%.80s' is NULL", path,
                                 names[i]);
        nb_dtype dt = nb_tensor_dtype(tensors[i]);
        if (dt != NB_F32 && dt != NB_F64)
            return nb_status_set(
                status, NB_ERR_ARG,
                "%s: save: tensor '%.80s' has unknown dtype %d", path, names[i],
                (int)dt);
    }
    for (int i = 0; i < nmeta; i++)
        if (!valid_text(keys[i]) || !valid_text(values[i]))
            return nb_status_set(
                status, NB_ERR_ARG,
                "%s: save: metadata pair %d is NULL or not valid "
                "UTF-8",
                path, i);
    int rc;
    const char *dup = first_duplicate(n, names, &rc);
    if (!dup && rc == NB_OK)
        dup = first_duplicate(nmeta, keys, &rc);
    if (rc)
        return nb_status_set(status, rc, "%s: out of memory", path);
    if (dup)
        return nb_status_set(status, NB_ERR_ARG,
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
            st_store_le(buf + (size_t)j * size, bits, size);
        }
        if (fwrite(buf, size, (size_t)m, fp) != (size_t)m)
            return false;
    }
    return true;
}

int nb_st_save(const char *path, int n, const char *const *names,
               const nb_tensor *const *tensors, int nmeta,
               const char *const *meta_keys, const char *const *meta_values,
               nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    if (!path || !*path)
        return nb_status_set(status, NB_ERR_ARG, "st_save: path is empty");
    int rc = check_save_args(path, n, names, tensors, nmeta, meta_keys,
                             meta_values, status);
    if (rc)
        return rc;
    sbuf h = {0};
    if (build_header(&h, n, names, tensors, nmeta, meta_keys, meta_values)) {
        nb_free(h.s);
        return nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
    }
    atomic_file a;
    rc = atomic_open(&a, path, status);
    if (rc == NB_OK) {
        unsigned char size_field[8];
        st_store_le(size_field, (uint64_t)h.len, 8);
        bool ok = fwrite(size_field, 1, 8, a.fp) == 8 &&
                  fwrite(h.s, 1, h.len, a.fp) == h.len;
        for (int i = 0; ok && i < n; i++)
            ok = write_tensor(a.fp, tensors[i]);
        rc = atomic_commit(&a, ok, errno, status);
    }
    nb_free(h.s);
    return rc;
}
