/* A strict JSON reader (RFC 8259) for safetensors headers, which come from
 * files we do not trust.
 *
 * It accepts exactly one value with optional whitespace around it and
 * rejects everything the grammar does not allow: comments, trailing commas,
 * single quotes, leading zeros, bare control characters in strings, invalid
 * UTF-8 (overlong forms, surrogates, code points above U+10FFFF), lone
 * UTF-16 surrogates in \u escapes, and repeated keys in one object. "\u0000"
 * is refused too, since names become C strings.
 *
 * Limits bound the work a hostile header can cause: nesting depth
 * JSON_MAX_DEPTH (so the recursion is shallow), JSON_MAX_VALUES values in
 * all (so memory stays proportional to a sane header), and the caller caps
 * the text length. Numbers are kept as sign + integer magnitude with an
 * overflow flag; fractions and exponents are validated but only marked,
 * because the safetensors header has no use for non-integers.
 *
 * Why a parser of our own rather than a general JSON library: the header
 * is the one part of a safetensors file that is parsed before anything is
 * trusted, and what it needs is unusual for a general library. A repeated
 * key must be an error (most libraries keep the first or the last value
 * silently, so two readers could see two different tensors); offsets and
 * extents are 64-bit integers, which a reader that turns every number into
 * a double rounds above 2^53; and a hostile header must not be able to ask
 * for more memory than a fixed multiple of its length. All memory comes
 * from nb_alloc, so the allocator hook sees it, and running out of it is
 * NB_ERR_NOMEM, never a parse error.
 *
 * Decoded strings never exceed their quoted source (an escape of k bytes
 * decodes to fewer than k), so one arena of the text's length holds all of
 * them. Children are collected on a value stack and moved into an exact
 * array when their container closes.
 *
 * Why nabla has its own reader rather than a packaged one: the rules above
 * are the point. A header that names a key twice must be refused (two
 * readers could otherwise pick different offsets for one tensor), data
 * offsets are 64-bit integers that a double cannot hold exactly, and a
 * hostile header must not buy unbounded depth or memory. General-purpose
 * readers leave some of this to the caller (cJSON, for one, keeps numbers
 * as doubles and accepts repeated keys), so a wrapper around one would
 * recheck what this parser refuses outright.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

typedef struct parser {
    const unsigned char *text, *p, *end;
    size_t base;
    char *arena;
    size_t arena_used;
    jv *stack;
    size_t nstack, capstack;
    size_t nvalues;
    int depth;
    nb_status *status;
    int code; /* NB_ERR_IO (bad text) or NB_ERR_NOMEM, once failed */
} parser;

static bool fail(parser *ps, const unsigned char *at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static bool fail(parser *ps, const unsigned char *at, const char *fmt, ...)
{
    ps->code = NB_ERR_IO;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    nb_status_set(ps->status, NB_ERR_IO, "bad JSON: %s at byte %zu", what,
                  ps->base + (size_t)(at - ps->text));
    return false;
}

static bool out_of_memory(parser *ps)
{
    ps->code = NB_ERR_NOMEM;
    nb_status_set(ps->status, NB_ERR_NOMEM,
                  "out of memory while parsing the JSON at byte %zu",
                  ps->base + (size_t)(ps->p - ps->text));
    return false;
}

static void free_value(jv *v)
{
    if (v->kind == JV_ARRAY || v->kind == JV_OBJECT) {
        size_t count = v->kind == JV_OBJECT ? 2 * v->u.list.n : v->u.list.n;
        for (size_t i = 0; i < count; i++)
            free_value(&v->u.list.items[i]);
        nb_free(v->u.list.items);
        v->u.list.items = NULL;
        v->u.list.n = 0;
    }
}

static bool push(parser *ps, const jv *v)
{
    if (ps->nstack == ps->capstack) {
        size_t cap = ps->capstack ? 2 * ps->capstack : 64;
        jv *s =
            nb_realloc(ps->stack, ps->capstack * sizeof *s, cap * sizeof *s);
        if (!s)
            return false;
        ps->stack = s;
        ps->capstack = cap;
    }
    ps->stack[ps->nstack++] = *v;
    return true;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
                               *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Length of the UTF-8 sequence starting at s (at most n bytes available),
 * or 0 if it is malformed. Ranges from RFC 3629, section 4. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

bool json_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t k = utf8_seq(s + i, len - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

static int hex_digit(unsigned c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

/* Reads the 4 hex digits of a \u escape at p; -1 if they are not there. */
static long read_hex4(const parser *ps, const unsigned char *p)
{
    if (ps->end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ps->p is at the opening quote. */
static bool parse_string(parser *ps, jv *out)
{
    const unsigned char *open = ps->p;
    char *dst = ps->arena + ps->arena_used;
    size_t n = 0;
    ps->p++;
    for (;;) {
        if (ps->p >= ps->end)
            return fail(ps, open, "unterminated string");
        unsigned c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20)
            return fail(ps, ps->p, "control character 0x%02x in a string", c);
        if (c != '\\') {
            size_t k = utf8_seq(ps->p, (size_t)(ps->end - ps->p));
            if (k == 0)
                return fail(ps, ps->p, "invalid UTF-8 in a string");
            memcpy(dst + n, ps->p, k);
            n += k;
            ps->p += k;
            continue;
        }
        const unsigned char *esc = ps->p;
        if (ps->end - ps->p < 2)
            return fail(ps, esc, "unterminated escape");
        unsigned e = ps->p[1];
        ps->p += 2;
        char simple = 0;
        switch (e) {
        case '"':
            simple = '"';
            break;
        case '\\':
            simple = '\\';
            break;
        case '/':
            simple = '/';
            break;
        case 'b':
            simple = '\b';
            break;
        case 'f':
            simple = '\f';
            break;
        case 'n':
            simple = '\n';
            break;
        case 'r':
            simple = '\r';
            break;
        case 't':
            simple = '\t';
            break;
        case 'u':
            break;
        default:
            return fail(ps, esc, "invalid escape '\\%c'", (char)e);
        }
        if (simple) {
            dst[n++] = simple;
            continue;
        }
        long cp = read_hex4(ps, ps->p);
        if (cp < 0)
            return fail(ps, esc, "invalid \\u escape");
        ps->p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail(ps, esc, "lone low surrogate in a \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = -1;
            if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u')
                lo = read_hex4(ps, ps->p + 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return fail(ps, esc, "high surrogate without a low one");
            ps->p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp == 0)
            return fail(ps, esc, "NUL character (\\u0000) in a string");
        n += put_utf8(dst + n, (unsigned long)cp);
    }
    dst[n] = '\0';
    ps->arena_used += n + 1;
    out->kind = JV_STRING;
    out->u.str.s = dst;
    out->u.str.len = n;
    return true;
}

static bool is_digit(const parser *ps, const unsigned char *p)
{
    return p < ps->end && *p >= '0' && *p <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool parse_number(parser *ps, jv *out)
{
    const unsigned char *start = ps->p;
    out->kind = JV_NUMBER;
    out->u.num.negative = false;
    out->u.num.integer = true;
    out->u.num.overflow = false;
    out->u.num.magnitude = 0;
    if (*ps->p == '-') {
        out->u.num.negative = true;
        ps->p++;
    }
    if (!is_digit(ps, ps->p))
        return fail(ps, start, "malformed number");
    if (*ps->p == '0' && is_digit(ps, ps->p + 1))
        return fail(ps, start, "number with a leading zero");
    while (is_digit(ps, ps->p)) {
        uint64_t d = (uint64_t)(*ps->p - '0');
        if (out->u.num.magnitude > (UINT64_MAX - d) / 10)
            out->u.num.overflow = true;
        else
            out->u.num.magnitude = out->u.num.magnitude * 10 + d;
        ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        out->u.num.integer = false;
        ps->p++;
        if (!is_digit(ps, ps->p))
            return fail(ps, start, "malformed number");
        while (is_digit(ps, ps->p))
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        out->u.num.integer = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (!is_digit(ps, ps->p))
            return fail(ps, start, "malformed number");
        while (is_digit(ps, ps->p))
            ps->p++;
    }
    return true;
}

static int cmp_keys(const void *a, const void *b)
{
    const jv *ka = *(const jv *const *)a, *kb = *(const jv *const *)b;
    int c = strcmp(ka->u.str.s, kb->u.str.s);
    if (c)
        return c;
    return ka->offset < kb->offset ? -1 : ka->offset > kb->offset;
}

static bool check_unique_keys(parser *ps, const jv *obj)
{
    size_t n = obj->u.list.n;
    if (n < 2)
        return true;
    const jv **keys = nb_alloc(n * sizeof *keys);
    if (!keys)
        return out_of_memory(ps);
    for (size_t i = 0; i < n; i++)
        keys[i] = &obj->u.list.items[2 * i];
    qsort(keys, n, sizeof *keys, cmp_keys);
    bool ok = true;
    for (size_t i = 1; i < n && ok; i++)
        if (strcmp(keys[i - 1]->u.str.s, keys[i]->u.str.s) == 0)
            ok = fail(ps, ps->text + keys[i]->offset, "duplicate key '%.80s'",
                      keys[i]->u.str.s);
    nb_free(keys);
    return ok;
}

static bool parse_value(parser *ps, jv *out);

/* Moves the children above `base` on the stack into out's list. */
static bool close_container(parser *ps, jv *out, size_t base, size_t nitems)
{
    size_t count = ps->nstack - base;
    out->u.list.items = NULL;
    if (count) {
        out->u.list.items = nb_alloc(count * sizeof(jv));
        if (!out->u.list.items)
            return out_of_memory(ps);
        memcpy(out->u.list.items, ps->stack + base, count * sizeof(jv));
    }
    out->u.list.n = nitems;
    ps->nstack = base;
    return true;
}

static bool parse_array(parser *ps, jv *out)
{
    size_t base = ps->nstack, n = 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return close_container(ps, out, base, 0);
    }
    for (;;) {
        jv item;
        skip_ws(ps);
        if (!parse_value(ps, &item))
            return false;
        if (!push(ps, &item)) {
            free_value(&item);
            return out_of_memory(ps);
        }
        n++;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, ps->p, "unterminated array");
        if (*ps->p == ']') {
            ps->p++;
            return close_container(ps, out, base, n);
        }
        if (*ps->p != ',')
            return fail(ps, ps->p, "expected ',' or ']'");
        ps->p++;
    }
}

static bool parse_object(parser *ps, jv *out)
{
    size_t base = ps->nstack, n = 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return close_container(ps, out, base, 0);
    }
    for (;;) {
        jv key, value;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"')
            return fail(ps, ps->p, "expected a string key");
        if (++ps->nvalues > JSON_MAX_VALUES)
            return fail(ps, ps->p, "more than %d values", JSON_MAX_VALUES);
        memset(&key, 0, sizeof key);
        key.offset = (size_t)(ps->p - ps->text);
        if (!parse_string(ps, &key))
            return false;
        if (!push(ps, &key))
            return out_of_memory(ps);
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':')
            return fail(ps, ps->p, "expected ':'");
        ps->p++;
        skip_ws(ps);
        if (!parse_value(ps, &value))
            return false;
        if (!push(ps, &value)) {
            free_value(&value);
            return out_of_memory(ps);
        }
        n++;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, ps->p, "unterminated object");
        if (*ps->p == '}') {
            ps->p++;
            if (!close_container(ps, out, base, n))
                return false;
            if (!check_unique_keys(ps, out)) {
                free_value(out);
                return false;
            }
            return true;
        }
        if (*ps->p != ',')
            return fail(ps, ps->p, "expected ',' or '}'");
        ps->p++;
    }
}

static bool parse_literal(parser *ps, const char *word, jv_kind kind, jv *out)
{
    size_t len = strlen(word);
    if ((size_t)(ps->end - ps->p) < len || memcmp(ps->p, word, len) != 0)
        return fail(ps, ps->p, "unexpected character");
    ps->p += len;
    out->kind = kind;
    return true;
}

/* On failure out owns nothing; on success it owns its list, if any. */
static bool parse_value(parser *ps, jv *out)
{
    memset(out, 0, sizeof *out);
    if (ps->p >= ps->end)
        return fail(ps, ps->p, "unexpected end of text");
    if (++ps->nvalues > JSON_MAX_VALUES)
        return fail(ps, ps->p, "more than %d values", JSON_MAX_VALUES);
    out->offset = (size_t)(ps->p - ps->text);
    bool ok;
    switch (*ps->p) {
    case '{':
    case '[':
        if (ps->depth >= JSON_MAX_DEPTH)
            return fail(ps, ps->p, "nested too deep (limit %d)",
                        JSON_MAX_DEPTH);
        ps->depth++;
        if (*ps->p == '{') {
            out->kind = JV_OBJECT;
            ok = parse_object(ps, out);
        } else {
            out->kind = JV_ARRAY;
            ok = parse_array(ps, out);
        }
        ps->depth--;
        if (!ok) /* nothing was attached: the children are still stacked */
            out->kind = JV_NULL;
        return ok;
    case '"':
        return parse_string(ps, out);
    case 't':
        return parse_literal(ps, "true", JV_TRUE, out);
    case 'f':
        return parse_literal(ps, "false", JV_FALSE, out);
    case 'n':
        return parse_literal(ps, "null", JV_NULL, out);
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return parse_number(ps, out);
        if (*ps->p >= 0x20 && *ps->p < 0x7F)
            return fail(ps, ps->p, "unexpected character '%c'", *ps->p);
        return fail(ps, ps->p, "unexpected byte 0x%02x", *ps->p);
    }
}

int json_parse(const char *text, size_t len, size_t base_offset, json_doc *doc,
               nb_status *status)
{
    memset(doc, 0, sizeof *doc);
    parser ps = {0};
    ps.text = ps.p = (const unsigned char *)text;
    ps.end = ps.text + len;
    ps.base = base_offset;
    ps.status = status;
    if (len > SIZE_MAX - 1 || !(ps.arena = nb_alloc(len + 1))) {
        out_of_memory(&ps);
        return ps.code;
    }
    skip_ws(&ps);
    bool ok = parse_value(&ps, &doc->root);
    if (ok) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            free_value(&doc->root);
            ok = fail(&ps, ps.p, "trailing characters after the value");
        }
    }
    /* After a failure, children of unfinished containers are still here. */
    for (size_t i = 0; i < ps.nstack; i++)
        free_value(&ps.stack[i]);
    nb_free(ps.stack);
    if (!ok) {
        nb_free(ps.arena);
        memset(doc, 0, sizeof *doc);
        return ps.code;
    }
    doc->strings = ps.arena;
    return NB_OK;
}

void json_free(json_doc *doc)
{
    if (!doc)
        return;
    free_value(&doc->root);
    nb_free(doc->strings);
    memset(doc, 0, sizeof *doc);
}

const jv *json_get(const jv *object, const char *key)
{
    if (!object || object->kind != JV_OBJECT)
        return NULL;
    for (size_t i = 0; i < object->u.list.n; i++)
        if (strcmp(object->u.list.items[2 * i].u.str.s, key) == 0)
            return &object->u.list.items[2 * i + 1];
    return NULL;
}
