/* IDX reader (LeCun's MNIST format), raw or gzip-compressed, and the
 * MNIST-layout dataset loader built on it.
 *
 * Layout: bytes 0-1 are zero, byte 2 the type code, byte 3 the rank r, then
 * r big-endian u32 extents, then prod(extents) big-endian elements. The
 * header is checked field by field, and the element count against
 * NB_IDX_MAX_ELEMENTS, before any allocation. The data is then read into a
 * byte buffer that grows only as bytes actually arrive (so a gzip file whose
 * header promises gigabytes costs no more memory than the bytes it really
 * holds), checked for truncation and trailing bytes, and only then converted
 * into a tensor; a hostile file can therefore never make us allocate much
 * more than twice its real content.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "nabla/data.h"

#include "data_util.h"

enum {
    IDX_U8 = 0x08,
    IDX_I8 = 0x09,
    IDX_I16 = 0x0B,
    IDX_I32 = 0x0C,
    IDX_F32 = 0x0D,
    IDX_F64 = 0x0E
};

/* Bytes per element of a type code, 0 for an unknown code. */
static size_t idx_type_size(int type)
{
    switch (type) {
    case IDX_U8:
    case IDX_I8:
        return 1;
    case IDX_I16:
        return 2;
    case IDX_I32:
    case IDX_F32:
        return 4;
    case IDX_F64:
        return 8;
    default:
        return 0;
    }
}

static const char *idx_type_name(int type)
{
    switch (type) {
    case IDX_U8:
        return "ubyte";
    case IDX_I8:
        return "sbyte";
    case IDX_I16:
        return "i16";
    case IDX_I32:
        return "i32";
    case IDX_F32:
        return "f32";
    default:
        return "f64";
    }
}

/* ---- byte source: a raw file or a gzip stream, read sequentially ---- */

#define IN_CHUNK (256u * 1024u)

typedef struct source {
    FILE *f;
    const char *path;
    nb_status *status;
    bool gz;
    /* Raw files: the first bytes, read to sniff the gzip magic. */
    unsigned char peek[2];
    size_t npeek, peek_used;
    /* gzip: inflate state, the compressed input buffer, how many
     * compressed bytes were read from the file, and whether the current
     * gzip member has ended (the next input must start a new member). */
    z_stream zs;
    bool zs_ready;
    unsigned char *in;
    uint64_t comp_read;
    bool file_eof, member_done;
    /* IDX bytes delivered so far: the offset of the next byte. */
    uint64_t pos;
} source;

/* zlib's own allocations go through the library's allocator too. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size && items > SIZE_MAX / size)
        return Z_NULL;
    return nb_alloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    nb_free(p);
}

static void source_close(source *s)
{
    if (s->zs_ready)
        inflateEnd(&s->zs);
    nb_free(s->in);
    if (s->f)
        fclose(s->f);
}

static int source_open(source *s, const char *path, nb_status *status)
{
    char ebuf[128];
    memset(s, 0, sizeof *s);
    s->path = path;
    s->status = status;
    s->f = fopen(path, "rb");
    if (!s->f) {
        nb_status_set(status, NB_ERR_IO, "%s: cannot open: %s", path,
                      errno_text(errno, ebuf, sizeof ebuf));
        return -1;
    }
    s->npeek = fread(s->peek, 1, 2, s->f);
    if (s->npeek < 2 && ferror(s->f)) {
        nb_status_set(status, NB_ERR_IO, "%s: read error at byte 0: %s", path,
                      errno_text(errno, ebuf, sizeof ebuf));
        return -1;
    }
    if (s->npeek == 2 && s->peek[0] == 0x1f && s->peek[1] == 0x8b) {
        s->gz = true;
        s->in = nb_alloc(IN_CHUNK);
        if (!s->in) {
            nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
            return -1;
        }
        /* 16 + MAX_WBITS: gzip wrapper only, so a zlib or raw deflate
         * stream is corrupt data, not a silent alternative. */
        s->zs.zalloc = z_alloc;
        s->zs.zfree = z_free;
        if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK) {
            nb_status_set(status, NB_ERR_IO, "%s: cannot initialise zlib",
                          path);
            return -1;
        }
        s->zs_ready = true;
        memcpy(s->in, s->peek, 2);
        s->zs.next_in = s->in;
        s->zs.avail_in = 2;
        s->comp_read = 2;
    }
    return 0;
}

/* The size of a raw regular file, or -1 when it cannot be known up front
 * (gzip, pipes). */
static int64_t source_raw_size(const source *s)
{
    struct stat st;
    if (s->gz || fstat(fileno(s->f), &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    return (int64_t)st.st_size;
}

static int64_t raw_read(source *s, unsigned char *buf, size_t n)
{
    char ebuf[128];
    size_t got = 0;
    while (got < n && s->peek_used < s->npeek)
        buf[got++] = s->peek[s->peek_used++];
    if (got < n) {
        got += fread(buf + got, 1, n - got, s->f);
        if (got < n && ferror(s->f)) {
            nb_status_set(s->status, NB_ERR_IO,
                          "%s: read error at byte %llu: %s", s->path,
                          (unsigned long long)(s->pos + got),
                          errno_text(errno, ebuf, sizeof ebuf));
            return -1;
        }
    }
    return (int64_t)got;
}

static int64_t gz_read(source *s, unsigned char *buf, size_t n)
{
    char ebuf[128];
    size_t got = 0;
    while (got < n) {
        if (s->zs.avail_in == 0 && !s->file_eof) {
            size_t r = fread(s->in, 1, IN_CHUNK, s->f);
            if (r == 0) {
                if (ferror(s->f)) {
                    nb_status_set(s->status, NB_ERR_IO,
                                  "%s: read error at compressed byte %llu: %s",
                                  s->path, (unsigned long long)s->comp_read,
                                  errno_text(errno, ebuf, sizeof ebuf));
                    return -1;
                }
                s->file_eof = true;
            }
            s->zs.next_in = s->in;
            s->zs.avail_in = (uInt)r;
            s->comp_read += r;
        }
        uint64_t comp_pos = s->comp_read - s->zs.avail_in;
        if (s->member_done) {
            if (s->zs.avail_in == 0) {
                if (s->file_eof)
                    break;
                continue;
            }
            /* More input after a member: it must be another member;
             * anything else fails inflate's header check below. */
            inflateReset(&s->zs);
            s->member_done = false;
        }
        if (s->zs.avail_in == 0 && s->file_eof) {
            nb_status_set(
                s->status, NB_ERR_IO,
                "%s: truncated gzip stream: the compressed data ends at "
                "byte %llu (decompressed byte %llu)",
                s->path, (unsigned long long)comp_pos,
                (unsigned long long)(s->pos + got));
            return -1;
        }
        size_t want = n - got;
        if (want > (1u << 30))
            want = 1u << 30;
        s->zs.next_out = buf + got;
        s->zs.avail_out = (uInt)want;
        int rc = inflate(&s->zs, Z_NO_FLUSH);
        got += want - s->zs.avail_out;
        if (rc == Z_STREAM_END) {
            s->member_done = true;
        } else if (rc == Z_BUF_ERROR && s->zs.avail_in == 0) {
            /* Needs more input: the next iteration reads it. */
        } else if (rc != Z_OK) {
            nb_status_set(s->status, NB_ERR_IO,
                          "%s: corrupt gzip data at compressed byte %llu: %s",
                          s->path,
                          (unsigned long long)(s->comp_read - s->zs.avail_in),
                          s->zs.msg ? s->zs.msg : "inflate failed");
            return -1;
        }
    }
    return (int64_t)got;
}

/* Reads up to n bytes; fewer only at the end of the data; -1 on error. */
static int64_t source_read(source *s, unsigned char *buf, size_t n)
{
    int64_t got = s->gz ? gz_read(s, buf, n) : raw_read(s, buf, n);
    if (got > 0)
        s->pos += (uint64_t)got;
    return got;
}

/* Reads exactly n bytes or reports the truncation, counting `what`. */
static int source_need(source *s, unsigned char *buf, size_t n,
                       uint64_t expected, const char *what)
{
    int64_t got = source_read(s, buf, n);
    if (got < 0)
        return -1;
    if ((size_t)got < n) {
        nb_status_set(s->status, NB_ERR_IO,
                      "%s: truncated at byte %llu: expected %llu bytes of %s",
                      s->path, (unsigned long long)s->pos,
                      (unsigned long long)expected, what);
        return -1;
    }
    return 0;
}

/* ---- header ---- */

typedef struct idx_header {
    int type;
    int rank;
    int64_t shape[NB_MAX_RANK];
    int64_t count;  /* elements */
    size_t elem;    /* bytes per element */
    uint64_t bytes; /* header bytes */
} idx_header;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static int read_header(source *s, idx_header *h)
{
    unsigned char b[4 * NB_MAX_RANK];
    if (source_need(s, b, 4, 4, "header") != 0)
        return -1;
    if (b[0] != 0 || b[1] != 0) {
        nb_status_set(
            s->status, NB_ERR_IO,
            "%s: bad magic at byte 0: expected 00 00, found %02x %02x "
            "(not an IDX file)",
            s->path, b[0], b[1]);
        return -1;
    }
    h->type = b[2];
    h->elem = idx_type_size(h->type);
    if (h->elem == 0) {
        nb_status_set(
            s->status, NB_ERR_IO,
            "%s: unknown type code 0x%02x at byte 2 (expected 08, 09, "
            "0b, 0c, 0d or 0e)",
            s->path, b[2]);
        return -1;
    }
    h->rank = b[3];
    if (h->rank < 1 || h->rank > NB_MAX_RANK) {
        nb_status_set(s->status, NB_ERR_IO,
                      "%s: rank %d at byte 3 is not in 1..%d", s->path, h->rank,
                      NB_MAX_RANK);
        return -1;
    }
    h->bytes = 4 + 4 * (uint64_t)h->rank;
    size_t ext_bytes = 4 * (size_t)h->rank;
    if (source_need(s, b, ext_bytes, h->bytes, "header") != 0)
        return -1;
    int64_t count = 1;
    for (int i = 0; i < h->rank; i++) {
        uint32_t e = be32(b + 4 * i);
        if (e == 0) {
            nb_status_set(s->status, NB_ERR_IO,
                          "%s: extent %d at byte %d is zero (an empty IDX file "
                          "holds nothing to learn from)",
                          s->path, i, 4 + 4 * i);
            return -1;
        }
        h->shape[i] = (int64_t)e;
        /* Checked before the multiplication: the product never overflows
         * and never exceeds the cap. */
        if (count > NB_IDX_MAX_ELEMENTS / (int64_t)e) {
            /* Only the extents read so far are known. */
            char buf[160];
            nb_status_set(s->status, NB_ERR_IO,
                          "%s: shape %s%s holds too many elements (more than "
                          "the limit of %lld)",
                          s->path,
                          nb_shape_str(i + 1, h->shape, buf, sizeof buf),
                          i + 1 < h->rank ? " and more" : "",
                          (long long)NB_IDX_MAX_ELEMENTS);
            return -1;
        }
        count *= (int64_t)e;
    }
    h->count = count;
    return 0;
}

/* ---- conversion from big-endian file types to f32 / f64 ---- */

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* One body per destination type, so the f32 and f64 paths cannot drift
 * apart. Bytes go through a 256-entry table: the scale is applied in
 * double once per byte value, so v * scale rounds exactly once. */
#define DEFINE_CONVERT(NAME, T)                                                \
    static void NAME(T *dst, const unsigned char *src, int type, size_t n,     \
                     double scale)                                             \
    {                                                                          \
        if (type == IDX_U8 || type == IDX_I8) {                                \
            T table[256];                                                      \
            for (int v = 0; v < 256; v++) {                                    \
                int x = (type == IDX_I8 && v > 127) ? v - 256 : v;             \
                table[v] = (T)(x * scale);                                     \
            }                                                                  \
            for (size_t i = 0; i < n; i++)                                     \
                dst[i] = table[src[i]];                                        \
            return;                                                            \
        }                                                                      \
        for (size_t i = 0; i < n; i++) {                                       \
            double v;                                                          \
            if (type == IDX_I16) {                                             \
                const unsigned char *p = src + 2 * i;                          \
                uint16_t u = (uint16_t)(p[0] << 8 | p[1]);                     \
                v = u > 32767 ? (double)u - 65536.0 : (double)u;               \
            } else if (type == IDX_I32) {                                      \
                uint32_t u = be32(src + 4 * i);                                \
                v = u > INT32_MAX ? (double)u - 4294967296.0 : (double)u;      \
            } else if (type == IDX_F32) {                                      \
                uint32_t u = be32(src + 4 * i);                                \
                float f;                                                       \
                memcpy(&f, &u, sizeof f);                                      \
                v = f;                                                         \
            } else {                                                           \
                uint64_t u = be64(src + 8 * i);                                \
                memcpy(&v, &u, sizeof v);                                      \
            }                                                                  \
            dst[i] = (T)(scale == 1.0 ? v : v * scale);                        \
        }                                                                      \
    }

DEFINE_CONVERT(convert_f32, float)
DEFINE_CONVERT(convert_f64, double)

/* ---- loading ---- */

typedef struct idx_request {
    nb_dtype dtype;
    int64_t keep;     /* rows of dimension 0 to keep; 0 = all */
    bool flatten;     /* [n, product of the rest] instead of the file shape */
    bool scale_bytes; /* ubyte data divided by 255 */
} idx_request;

static int read_data(source *s, const idx_header *h, uint64_t keep_bytes,
                     uint64_t total_bytes, bool size_checked,
                     unsigned char **out)
{
    const uint64_t first_chunk = 1u << 20;
    uint64_t cap =
        size_checked || keep_bytes < first_chunk ? keep_bytes : first_chunk;
    unsigned char *buf = nb_alloc(cap ? (size_t)cap : 1);
    if (!buf) {
        nb_status_set(s->status, NB_ERR_NOMEM,
                      "%s: out of memory for %llu bytes", s->path,
                      (unsigned long long)cap);
        return -1;
    }
    uint64_t filled = 0;
    while (filled < keep_bytes) {
        if (filled == cap) {
            uint64_t next = cap * 2 < keep_bytes ? cap * 2 : keep_bytes;
            unsigned char *grown = nb_realloc(buf, (size_t)cap, (size_t)next);
            if (!grown) {
                nb_free(buf);
                nb_status_set(s->status, NB_ERR_NOMEM,
                              "%s: out of memory for %llu bytes", s->path,
                              (unsigned long long)next);
                return -1;
            }
            buf = grown;
            cap = next;
        }
        int64_t got = source_read(s, buf + filled, (size_t)(cap - filled));
        if (got < 0)
            goto fail;
        filled += (uint64_t)got;
        if (filled < cap)
            goto truncated;
    }
    if (!size_checked) {
        /* Rows beyond `keep` and the end of the stream are still read: a
         * truncation, trailing bytes or a bad gzip CRC there is damage to
         * the file even when the caller wanted only its first rows. */
        unsigned char scratch[4096];
        while (filled < total_bytes) {
            uint64_t want = total_bytes - filled;
            if (want > sizeof scratch)
                want = sizeof scratch;
            int64_t got = source_read(s, scratch, (size_t)want);
            if (got < 0)
                goto fail;
            filled += (uint64_t)got;
            if ((uint64_t)got < want)
                goto truncated;
        }
        int64_t extra = source_read(s, scratch, 1);
        if (extra < 0)
            goto fail;
        if (extra > 0) {
            nb_status_set(
                s->status, NB_ERR_IO,
                "%s: trailing bytes at byte %llu: the data should end "
                "after %llu bytes",
                s->path, (unsigned long long)(s->pos - 1),
                (unsigned long long)(h->bytes + total_bytes));
            goto fail;
        }
    }
    *out = buf;
    return 0;
truncated:
    nb_status_set(s->status, NB_ERR_IO,
                  "%s: truncated at byte %llu: expected %llu bytes of data",
                  s->path, (unsigned long long)s->pos,
                  (unsigned long long)total_bytes);
fail:
    nb_free(buf);
    return -1;
}

/* Reads a whole IDX file, keeping the first req->keep rows. *header (when
 * not NULL) receives the file's header. */
static nb_tensor *idx_load(const char *path, const idx_request *req,
                           idx_header *header, nb_status *status)
{
    if (!path) {
        nb_status_set(status, NB_ERR_ARG, "idx: path is NULL");
        return NULL;
    }
    if (req->dtype != NB_F32 && req->dtype != NB_F64) {
        nb_status_set(status, NB_ERR_ARG, "%s: bad dtype %d", path,
                      (int)req->dtype);
        return NULL;
    }
    source s;
    nb_tensor *t = NULL;
    unsigned char *data = NULL;
    if (source_open(&s, path, status) != 0)
        goto done;
    idx_header h;
    if (read_header(&s, &h) != 0)
        goto done;
    if (header)
        *header = h;

    int64_t rows = h.shape[0];
    int64_t keep = req->keep > 0 && req->keep < rows ? req->keep : rows;
    int64_t row_elems = h.count / rows;
    uint64_t total_bytes = (uint64_t)h.count * h.elem;
    uint64_t keep_bytes = (uint64_t)(keep * row_elems) * h.elem;
    if (total_bytes > SIZE_MAX / 2) {
        nb_status_set(status, NB_ERR_NOMEM,
                      "%s: %llu bytes of data do not fit in memory", path,
                      (unsigned long long)total_bytes);
        goto done;
    }

    /* A raw regular file shows its size up front: truncation and trailing
     * bytes are caught before anything is allocated. */
    int64_t size = source_raw_size(&s);
    bool size_checked = false;
    if (size >= 0) {
        uint64_t expect = h.bytes + total_bytes;
        if ((uint64_t)size < expect) {
            nb_status_set(
                status, NB_ERR_IO,
                "%s: truncated at byte %lld: expected %llu bytes of data", path,
                (long long)size, (unsigned long long)total_bytes);
            goto done;
        }
        if ((uint64_t)size > expect) {
            nb_status_set(
                status, NB_ERR_IO,
                "%s: trailing bytes at byte %llu: the data should end "
                "after %llu bytes, the file has %lld",
                path, (unsigned long long)expect, (unsigned long long)expect,
                (long long)size);
            goto done;
        }
        size_checked = true;
    }
    if (read_data(&s, &h, keep_bytes, total_bytes, size_checked, &data) != 0)
        goto done;

    int64_t shape[NB_MAX_RANK];
    int rank = h.rank;
    memcpy(shape, h.shape, sizeof shape);
    shape[0] = keep;
    if (req->flatten) {
        rank = 2;
        shape[1] = row_elems;
    }
    t = nb_tensor_new(req->dtype, rank, shape);
    if (!t) {
        nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory for the tensor",
                      path);
        goto done;
    }
    double scale = req->scale_bytes && h.type == IDX_U8 ? 1.0 / 255.0 : 1.0;
    size_t n = (size_t)(keep * row_elems);
    if (req->dtype == NB_F32)
        convert_f32(nb_tensor_f32(t), data, h.type, n, scale);
    else
        convert_f64(nb_tensor_f64(t), data, h.type, n, scale);
done:
    nb_free(data);
    source_close(&s);
    return t;
}

nb_tensor *nb_idx_read(const char *path, nb_dtype dtype, nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    idx_request req = {dtype, 0, false, false};
    return idx_load(path, &req, NULL, status);
}

int nb_dataset_load_idx(nb_dataset *ds, const char *images, const char *labels,
                        nb_dtype dtype, int64_t limit, nb_status *status)
{
    nb_status local; /* the code of a failed load, when status is NULL */
    if (!status)
        status = &local;
    nb_status_set(status, NB_OK, NULL);
    if (!ds)
        return nb_status_set(status, NB_ERR_ARG, "load_idx: dataset is NULL");
    ds->x = ds->y = NULL;
    if (!images || !labels)
        return nb_status_set(status, NB_ERR_ARG, "load_idx: a path is NULL");
    idx_header hi, hl;
    idx_request req = {dtype, limit, true, true};
    nb_tensor *x = idx_load(images, &req, &hi, status);
    if (!x)
        return status->code;
    req.flatten = false;
    req.scale_bytes = false;
    nb_tensor *y = idx_load(labels, &req, &hl, status);
    if (!y) {
        nb_tensor_free(x);
        return status->code;
    }
    int rc = NB_OK;
    if (hl.rank != 1)
        rc = nb_status_set(status, NB_ERR_IO,
                           "%s: labels have rank %d, expected 1", labels,
                           hl.rank);
    else if (hl.type == IDX_F32 || hl.type == IDX_F64)
        rc = nb_status_set(status, NB_ERR_IO,
                           "%s: labels have type %s, expected an integer type",
                           labels, idx_type_name(hl.type));
    else if (hl.shape[0] != hi.shape[0])
        rc = nb_status_set(
            status, NB_ERR_IO, "%s has %lld labels but %s has %lld images",
            labels, (long long)hl.shape[0], images, (long long)hi.shape[0]);
    if (rc) {
        nb_tensor_free(x);
        nb_tensor_free(y);
        return rc;
    }
    ds->x = x;
    ds->y = y;
    return NB_OK;
}
