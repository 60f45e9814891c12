/* CSV reader for numeric tables: features [rows, columns] plus an optional
 * label column (the dialect is documented at nb_csv_read in data.h).
 *
 * The file is read whole (up to NB_CSV_MAX_BYTES) and walked twice: the
 * first walk counts the non-blank lines whose field count is the first
 * line's, stopping at the first that differs, so both tensors are
 * allocated once and never larger than the file can fill (every value
 * takes at least one byte and one separator, so the tensors stay within a
 * few times the file's size whatever its first line claims); the second
 * walk parses, and reports the first error in line order.
 * Every field is bounded by its line, never by a terminating NUL, so a NUL
 * byte in the file is just an invalid character.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/data.h"

#include "data_util.h"

/* Longest number text accepted; longer digit strings add nothing to a
 * double's 17 significant digits. */
#define FIELD_MAX 128

typedef struct text {
    const char *p;
    size_t n;
} text;

typedef struct csv {
    const char *path;
    char delim;
    nb_dtype dtype; /* values must fit it */
    char *buf;      /* the whole file */
    size_t size;
    size_t next;    /* offset of the next line */
    long long line; /* number of the line last returned */
    nb_status *status;
    bool missing_as_nan;
} csv;

static bool is_blank_char(char c, char delim)
{
    return (c == ' ' || c == '\t') && c != delim;
}

static text trim(text t, char delim)
{
    while (t.n > 0 && is_blank_char(t.p[0], delim)) {
        t.p++;
        t.n--;
    }
    while (t.n > 0 && is_blank_char(t.p[t.n - 1], delim))
        t.n--;
    return t;
}

/* The next line that holds anything but blanks, without its "\n" or
 * "\r\n"; false at the end of the file. */
static bool next_line(csv *c, text *line)
{
    while (c->next < c->size) {
        const char *start = c->buf + c->next;
        size_t left = c->size - c->next;
        const char *nl = memchr(start, '\n', left);
        size_t len = nl ? (size_t)(nl - start) : left;
        c->next += nl ? len + 1 : len;
        c->line++;
        if (len > 0 && start[len - 1] == '\r')
            len--;
        text t = {start, len};
        if (trim(t, '\0').n > 0) {
            *line = t;
            return true;
        }
    }
    return false;
}

/* Splits off the field at *rest; false when the line is used up. A line
 * "a,b," has three fields, the last one empty. */
static bool next_field(text *rest, bool *more, char delim, text *field)
{
    if (!*more)
        return false;
    const char *d = memchr(rest->p, delim, rest->n);
    size_t len = d ? (size_t)(d - rest->p) : rest->n;
    field->p = rest->p;
    field->n = len;
    *more = d != NULL;
    rest->p += d ? len + 1 : len;
    rest->n -= d ? len + 1 : len;
    return true;
}

static int64_t count_fields(text line, char delim)
{
    int64_t n = 1;
    for (size_t i = 0; i < line.n; i++)
        n += line.p[i] == delim;
    return n;
}

/* A printable, shortened copy of a field for messages. */
static const char *shown(text t, char *buf, size_t len)
{
    size_t n = t.n < len - 4 ? t.n : len - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t.p[i];
        buf[i] = ch >= 32 && ch < 127 ? (char)ch : '?';
    }
    if (n < t.n) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static int parse_number(csv *c, text field, long long column, double *out)
{
    text t = trim(field, c->delim);
    char show[48];
    if (t.n == 0 && c->missing_as_nan) {
        *out = NAN;
        return 0;
    }
    if (t.n == 0) {
        nb_status_set(c->status, NB_ERR_IO,
                      "%s: line %lld, column %lld: empty field", c->path,
                      c->line, column);
        return -1;
    }
    /* Only the characters of a plain decimal number, so strtod cannot
     * accept "nan", "inf", hex floats or locale-specific forms. */
    bool plain = t.n < FIELD_MAX;
    for (size_t i = 0; i < t.n && plain; i++)
        plain = strchr("0123456789+-.eE", t.p[i]) != NULL && t.p[i] != '\0';
    char num[FIELD_MAX];
    char *end = num;
    double v = 0;
    if (plain) {
        memcpy(num, t.p, t.n);
        num[t.n] = '\0';
        errno = 0;
        v = strtod(num, &end);
    }
    if (t.n >= FIELD_MAX) {
        nb_status_set(
            c->status, NB_ERR_IO,
            "%s: line %lld, column %lld: a field of %zu characters is "
            "too long for a number",
            c->path, c->line, column, t.n);
        return -1;
    }
    if (!plain || end != num + t.n) {
        nb_status_set(c->status, NB_ERR_IO,
                      "%s: line %lld, column %lld: '%s' is not a number",
                      c->path, c->line, column, shown(t, show, sizeof show));
        return -1;
    }
    if (errno == ERANGE && fabs(v) > 1.0) {
        nb_status_set(c->status, NB_ERR_IO,
                      "%s: line %lld, column %lld: '%s' is out of the range of "
                      "double",
                      c->path, c->line, column, shown(t, show, sizeof show));
        return -1;
    }
    if (c->dtype == NB_F32 && isinf((float)v)) {
        nb_status_set(c->status, NB_ERR_IO,
                      "%s: line %lld, column %lld: '%s' is out of the range "
                      "of f32",
                      c->path, c->line, column, shown(t, show, sizeof show));
        return -1;
    }
    /* Underflow to a subnormal or zero is the closest value: accepted. */
    *out = v;
    return 0;
}

static int read_file(csv *c)
{
    char ebuf[128];
    FILE *f = fopen(c->path, "rb");
    if (!f) {
        nb_status_set(c->status, NB_ERR_IO, "%s: cannot open: %s", c->path,
                      errno_text(errno, ebuf, sizeof ebuf));
        return -1;
    }
    /* Grows by doubling up to one byte past the limit: filling that byte
     * is how an oversized file shows itself without a size query (which
     * pipes cannot answer). */
    const size_t limit = (size_t)NB_CSV_MAX_BYTES;
    size_t cap = (size_t)1 << 16, size = 0;
    char *buf = nb_alloc(cap);
    for (;;) {
        if (!buf) {
            nb_status_set(c->status, NB_ERR_NOMEM, "%s: out of memory",
                          c->path);
            break;
        }
        size += fread(buf + size, 1, cap - size, f);
        if (ferror(f)) {
            nb_status_set(c->status, NB_ERR_IO,
                          "%s: read error at byte %llu: %s", c->path,
                          (unsigned long long)size,
                          errno_text(errno, ebuf, sizeof ebuf));
            break;
        }
        if (size < cap) {
            fclose(f);
            c->buf = buf;
            c->size = size;
            return 0;
        }
        if (cap > limit) {
            nb_status_set(c->status, NB_ERR_IO,
                          "%s: larger than the limit of %zu bytes", c->path,
                          limit);
            break;
        }
        size_t next = cap * 2 <= limit ? cap * 2 : limit + 1;
        char *grown = nb_realloc(buf, cap, next);
        if (!grown) {
            nb_free(buf);
            buf = NULL;
            continue;
        }
        buf = grown;
        cap = next;
    }
    nb_free(buf);
    fclose(f);
    return -1;
}

/* The label column's index, -1 for none, -2 after an error. */
static int64_t label_index(csv *c, const nb_csv_options *o, text header,
                           int64_t ncols)
{
    if (o->label_name) {
        if (!o->header) {
            nb_status_set(
                c->status, NB_ERR_ARG,
                "%s: label column '%s' given by name, but the options "
                "say the file has no header",
                c->path, o->label_name);
            return -2;
        }
        size_t want = strlen(o->label_name);
        text rest = header, field;
        bool more = true;
        for (int64_t i = 0; next_field(&rest, &more, c->delim, &field); i++) {
            text name = trim(field, c->delim);
            if (name.n >= 2 && name.p[0] == '"' && name.p[name.n - 1] == '"') {
                name.p++;
                name.n -= 2;
            }
            if (name.n == want && memcmp(name.p, o->label_name, want) == 0)
                return i;
        }
        nb_status_set(c->status, NB_ERR_ARG,
                      "%s: no column named '%s' in the header", c->path,
                      o->label_name);
        return -2;
    }
    if (o->label_column < -1 || o->label_column >= ncols) {
        nb_status_set(c->status, NB_ERR_ARG,
                      "%s: label column %d is out of range (the file has %lld "
                      "columns, numbered from 0; -1 means none)",
                      c->path, o->label_column, (long long)ncols);
        return -2;
    }
    return o->label_column;
}

/* Parses the rows after the header into x and y (rows of them); a row
 * beyond them is the one whose field count differs, and is parsed only to
 * report its first error. */
static int parse_rows(csv *c, int64_t ncols, int64_t label, int64_t rows,
                      nb_tensor *x, nb_tensor *y)
{
    text line;
    int64_t row = 0;
    int64_t fcols = ncols - (label >= 0);
    while (next_line(c, &line)) {
        text rest = line, field;
        bool more = true;
        int64_t col = 0, f = 0;
        for (; next_field(&rest, &more, c->delim, &field); col++) {
            if (col >= ncols) {
                nb_status_set(
                    c->status, NB_ERR_IO,
                    "%s: line %lld, column %lld: extra field (rows have "
                    "%lld fields)",
                    c->path, c->line, (long long)col + 1, (long long)ncols);
                return -1;
            }
            double v;
            if (parse_number(c, field, (long long)col + 1, &v) != 0)
                return -1;
            if (row >= rows)
                continue;
            if (col == label) {
                if (y)
                    nb_tensor_set(y, row, v);
            } else {
                nb_tensor_set(x, row * fcols + f++, v);
            }
        }
        if (col < ncols) {
            nb_status_set(
                c->status, NB_ERR_IO,
                "%s: line %lld, column %lld: missing field (the row has "
                "%lld fields, expected %lld)",
                c->path, c->line, (long long)col + 1, (long long)col,
                (long long)ncols);
            return -1;
        }
        row++;
    }
    return 0;
}

nb_tensor *nb_csv_read(const char *path, const nb_csv_options *options,
                       nb_tensor **labels, nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    static const nb_csv_options defaults = {
        .delimiter = ',', .label_column = -1, .dtype = NB_F32};
    const nb_csv_options *o = options ? options : &defaults;
    if (labels)
        *labels = NULL;
    if (!path) {
        nb_status_set(status, NB_ERR_ARG, "csv: path is NULL");
        return NULL;
    }
    csv c = {path,  o->delimiter ? o->delimiter : ',', o->dtype, NULL, 0, 0, 0,
             status, o->missing_as_nan};
    if (strchr("\r\n\"0123456789+-.eE", c.delim)) {
        nb_status_set(status, NB_ERR_ARG,
                      "%s: the delimiter 0x%02x cannot separate "
                      "numbers",
                      path, (unsigned)(unsigned char)c.delim);
        return NULL;
    }
    if (o->dtype != NB_F32 && o->dtype != NB_F64) {
        nb_status_set(status, NB_ERR_ARG, "%s: bad dtype %d", path,
                      (int)o->dtype);
        return NULL;
    }
    if (read_file(&c) != 0)
        return NULL;

    nb_tensor *x = NULL, *y = NULL;
    text first;
    if (!next_line(&c, &first)) {
        nb_status_set(status, NB_ERR_IO, "%s: no data rows (the file is empty)",
                      path);
        goto fail;
    }
    int64_t ncols = count_fields(first, c.delim);
    int64_t label = label_index(&c, o, first, ncols);
    if (label == -2)
        goto fail;
    int64_t rows = o->header ? 0 : 1;
    text line;
    bool uneven = false; /* stopped at a line of another field count */
    while (!uneven && next_line(&c, &line)) {
        uneven = count_fields(line, c.delim) != ncols;
        rows += !uneven;
    }
    int64_t fcols = ncols - (label >= 0);
    if (rows == 0 && !uneven) {
        nb_status_set(status, NB_ERR_IO, "%s: no data rows after the header",
                      path);
        goto fail;
    }
    if (fcols == 0) {
        nb_status_set(status, NB_ERR_IO,
                      "%s: no feature columns besides the label", path);
        goto fail;
    }
    /* rows and fcols are each below the byte count, itself below 2^30, so
     * the product cannot overflow int64. */
    if (rows * fcols > (INT64_C(1) << 31)) {
        nb_status_set(status, NB_ERR_IO,
                      "%s: %lld x %lld values exceed the limit of 2^31", path,
                      (long long)rows, (long long)fcols);
        goto fail;
    }
    /* No rows before an uneven line: parse_rows fails on that line, so x
     * is never returned NULL. */
    if (rows > 0)
        x = nb_tensor_new(o->dtype, 2, (const int64_t[]){rows, fcols});
    if (rows > 0 && label >= 0 && labels)
        y = nb_tensor_new(o->dtype, 1, (const int64_t[]){rows});
    if (rows > 0 && (!x || (label >= 0 && labels && !y))) {
        nb_status_set(status, NB_ERR_NOMEM,
                      "%s: out of memory for %lld x %lld values", path,
                      (long long)rows, (long long)fcols);
        goto fail;
    }
    /* Second walk from the top, so that line numbers count blank lines
     * before the header too. */
    c.next = 0;
    c.line = 0;
    if (o->header)
        next_line(&c, &line);
    if (parse_rows(&c, ncols, label, rows, x, y) != 0)
        goto fail;
    nb_free(c.buf);
    if (labels)
        *labels = y;
    return x;
fail:
    nb_free(c.buf);
    nb_tensor_free(x);
    nb_tensor_free(y);
    return NULL;
}
