/* Writes what follows from the op list (src/ops/ops.def) and the op
 * tables' doc strings into the source tree, or checks that it is up to
 * date:
 *
 *   docs/ops.md                 the table of every op's formula
 *   include/nabla/ops.h         the declarations of the constructors that
 *                               the list generates, between two markers
 *   README.md                   the op count ("N built-in ops")
 *
 * and checks (it cannot write them) that each op's doc string appears in
 * the leading comment of a file of src/ops/, so the formula on top of the
 * file and the one in docs/ops.md and ops.h cannot drift apart.
 *
 *   gen_ops_doc --check SOURCE_ROOT   exit 1, naming each stale file
 *   gen_ops_doc --write SOURCE_ROOT   regenerate the generated files
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

/* ---- what the list says about each op's constructor ---- */

typedef struct regular_op {
    const char *name;
    const char *args; /* after "nb_graph *g, " */
} regular_op;

static const regular_op regular_ops[] = {
#define NB_OP_BINARY(name, lo, hi) {#name, "nb_node *a, nb_node *b"},
#define NB_OP_UNARY(name, lo, hi) {#name, "nb_node *x"},
#define NB_OP_UNARY1(name, p, p_lo, p_hi, lo, hi)                             \
    {#name, "nb_node *x, double " #p},
#define NB_OP_UNARY2(name, p, p_lo, p_hi, q, q_lo, q_hi, lo, hi)              \
    {#name, "nb_node *x, double " #p ", double " #q},
#define NB_OP_OTHER(name)
#include "ops/ops.def"
};

#define HEADER_BEGIN                                                          \
    "/* ---- generated from src/ops/ops.def by tools/gen_ops_doc "             \
    "(ninja -C build ops-doc); do not edit by hand ---- */\n"
#define HEADER_END "/* ---- end of the generated declarations ---- */\n"

/* ---- text buffers ---- */

typedef struct text {
    char *data;
    size_t len;
} text;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + *len, 1, cap - *len - 1, f);
        *len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

/* docs/ops.md */
static char *render_doc(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    fprintf(f,
            "# nabla ops\n\n"
            "Generated from the op table by `tools/gen_ops_doc` "
            "(`ninja -C build ops-doc`); the `ops_doc` test fails when this "
            "file is out of date.\n\n"
            "Each line gives the forward formula and the derivative that "
            "backward implements (`dy` is the gradient arriving at the "
            "output). Binary elementwise ops broadcast numpy-style and sum "
            "the gradient over broadcast dimensions. Kinks: relu'(0) = 0; a "
            "max/min tie sends the whole gradient to the first winner.\n\n"
            "%d ops.\n\n"
            "| op | inputs | formula; derivative |\n"
            "| --- | --- | --- |\n",
            nb_builtin_op_count());
    for (int i = 0; i < nb_builtin_op_count(); i++) {
        const nb_op *op = nb_builtin_op(i);
        char arity[32];
        if (op->max_inputs < 0)
            snprintf(arity, sizeof arity, "%d+", op->min_inputs);
        else if (op->max_inputs != op->min_inputs)
            snprintf(arity, sizeof arity, "%d-%d", op->min_inputs,
                     op->max_inputs);
        else
            snprintf(arity, sizeof arity, "%d", op->min_inputs);
        fprintf(f, "| `%s` | %s | ", op->name, arity);
        /* Keep table cells intact: escape the column separator. */
        for (const char *p = op->doc; *p; p++)
            fputs(*p == '|' ? "\\|" : (char[]){*p, 0}, f);
        fputs(" |\n", f);
    }
    fclose(f);
    return buf;
}

/* A doc comment of `s` wrapped at 78 columns. */
static void comment(FILE *f, const char *s)
{
    const char *open = "/** ";
    int col = 0;
    fputs(open, f);
    col = 4;
    while (*s) {
        size_t word = strcspn(s, " ");
        if (col > 4 && col + 1 + (int)word > 75) {
            fputs("\n * ", f);
            col = 3;
        } else if (col > 4) {
            fputc(' ', f);
            col++;
        }
        fwrite(s, 1, word, f);
        col += (int)word;
        s += word;
        while (*s == ' ')
            s++;
    }
    fputs(col + 3 > 78 ? "\n */\n" : " */\n", f);
}

/* The generated part of ops.h, markers included. */
static char *render_decls(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    fputs(HEADER_BEGIN, f);
    fputs("/** @name Elementwise ops of the op list\n"
          " * Each comment is the op's formula and the derivative its "
          "backward\n"
          " * implements. The binary ones broadcast numpy-style and sum a\n"
          " * broadcast operand's gradient over the axes it was repeated "
          "along. */\n"
          "/** @{ */\n",
          f);
    for (size_t i = 0; i < sizeof regular_ops / sizeof *regular_ops; i++) {
        const nb_op *op = nb_find_op(regular_ops[i].name);
        comment(f, op ? op->doc : "(not registered)");
        fprintf(f, "NB_API nb_node *nb_%s(nb_graph *g, %s);\n",
                regular_ops[i].name, regular_ops[i].args);
    }
    fputs("/** @} */\n", f);
    fputs(HEADER_END, f);
    fclose(f);
    return buf;
}

/* ops.h with its generated part replaced; NULL when a marker is missing. */
static char *render_header(const char *have, size_t *len)
{
    const char *begin = strstr(have, HEADER_BEGIN);
    const char *end = begin ? strstr(begin, HEADER_END) : NULL;
    if (!end)
        return NULL;
    end += strlen(HEADER_END);
    size_t decls_len;
    char *decls = render_decls(&decls_len);
    if (!decls)
        return NULL;
    size_t head = (size_t)(begin - have), tail = strlen(end);
    *len = head + decls_len + tail;
    char *out = malloc(*len + 1);
    if (out) {
        memcpy(out, have, head);
        memcpy(out + head, decls, decls_len);
        memcpy(out + head + decls_len, end, tail + 1);
    }
    free(decls);
    return out;
}

/* README with "N built-in ops" set to the registry's count; NULL when the
 * phrase is missing. */
static char *render_readme(const char *have, size_t *len)
{
    const char *phrase = " built-in ops";
    const char *at = strstr(have, phrase);
    if (!at)
        return NULL;
    const char *digits = at;
    while (digits > have && isdigit((unsigned char)digits[-1]))
        digits--;
    if (digits == at)
        return NULL;
    char count[32];
    int n = snprintf(count, sizeof count, "%d", nb_builtin_op_count());
    size_t head = (size_t)(digits - have), tail = strlen(at);
    *len = head + (size_t)n + tail;
    char *out = malloc(*len + 1);
    if (out) {
        memcpy(out, have, head);
        memcpy(out + head, count, (size_t)n);
        memcpy(out + head + n, at, tail + 1);
    }
    return out;
}

/* ---- the formula on top of each op file ---- */

/* s with comment decoration removed and runs of white space made one
 * space, in place. */
static void squeeze(char *s)
{
    char *w = s;
    bool space = false;
    for (char *r = s; *r; r++) {
        if (*r == '\n') {
            /* drop the " * " that starts a comment line */
            while (r[1] == ' ' || r[1] == '\t')
                r++;
            if (r[1] == '*' && r[2] != '/')
                r++;
            space = true;
            continue;
        }
        if (isspace((unsigned char)*r)) {
            space = true;
            continue;
        }
        if (space && w > s)
            *w++ = ' ';
        space = false;
        *w++ = *r;
    }
    *w = '\0';
}

/* The leading comments of every file of src/ops/, squeezed, one after the
 * other (each ends with a newline so a doc cannot span two files). */
static char *op_file_headers(const char *root)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/src/ops", root);
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char *all = NULL;
    size_t all_len = 0;
    FILE *out = open_memstream(&all, &all_len);
    struct dirent *e;
    while (out && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *src = slurp(path, &len);
        if (!src)
            continue;
        char *start = strstr(src, "/*");
        char *stop = start ? strstr(start, "*/") : NULL;
        if (start == src && stop) {
            *stop = '\0';
            squeeze(start + 2);
            fprintf(out, "%s\n", start + 2);
        }
        free(src);
    }
    closedir(d);
    if (out)
        fclose(out);
    return all;
}

static int check_headers(const char *root)
{
    char *headers = op_file_headers(root);
    if (!headers) {
        printf("cannot read the files of %s/src/ops\n", root);
        return 1;
    }
    int missing = 0;
    for (int i = 0; i < nb_builtin_op_count(); i++) {
        const nb_op *op = nb_builtin_op(i);
        char doc[1024];
        snprintf(doc, sizeof doc, "%s", op->doc);
        squeeze(doc);
        if (!strstr(headers, doc)) {
            printf("the doc of op '%s' is not in the leading comment of any "
                   "file of src/ops: \"%s\"\n",
                   op->name, doc);
            missing++;
        }
    }
    free(headers);
    return missing;
}

/* ---- check or write one generated file ---- */

typedef char *(*renderer)(const char *have, size_t *len);

static char *doc_renderer(const char *have, size_t *len)
{
    (void)have;
    return render_doc(len);
}

static int one_file(const char *root, const char *rel, renderer render,
                    bool write, int *stale)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    size_t have_len = 0;
    char *have = slurp(path, &have_len);
    size_t want_len = 0;
    char *want = have ? render(have, &want_len) : NULL;
    int rc = 0;
    if (!want) {
        printf("%s: cannot read it or find the place to generate into\n", rel);
        rc = 1;
    } else if (have_len != want_len || memcmp(have, want, want_len) != 0) {
        if (write) {
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(want, 1, want_len, f) != want_len ||
                fclose(f) != 0) {
                printf("%s: cannot write it\n", rel);
                rc = 1;
            }
        } else {
            printf("%s is out of date with the op list; regenerate it with "
                   "`ninja -C build ops-doc`\n",
                   rel);
            (*stale)++;
        }
    }
    free(have);
    free(want);
    return rc;
}

int main(int argc, char **argv)
{
    bool write = argc == 3 && strcmp(argv[1], "--write") == 0;
    if (argc != 3 || (!write && strcmp(argv[1], "--check") != 0)) {
        fprintf(stderr, "usage: gen_ops_doc --check|--write SOURCE_ROOT\n");
        return 2;
    }
    const char *root = argv[2];
    int stale = 0, rc = 0;
    rc |= one_file(root, "docs/ops.md", doc_renderer, write, &stale);
    rc |= one_file(root, "include/nabla/ops.h", render_header, write, &stale);
    rc |= one_file(root, "README.md", render_readme, write, &stale);
    int drifted = check_headers(root);
    if (write)
        return rc || drifted ? 1 : 0;
    int failed = stale + drifted + rc;
    printf("%d ops; %d generated files stale, %d docs missing from their "
           "file's header\n%d passed, %d failed\n",
           nb_builtin_op_count(), stale, drifted, failed ? 0 : 1,
           failed ? 1 : 0);
    return failed ? 1 : 0;
}
