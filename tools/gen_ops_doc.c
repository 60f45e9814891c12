/* Writes docs/ops.md from the op table, or checks that it is up to date.
 *
 *   gen_ops_doc --print            the document on stdout
 *   gen_ops_doc --check FILE       exit 1 (with a diff hint) if FILE differs
 *   gen_ops_doc --write FILE       regenerate FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

static char *render(size_t *len)
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

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len + 4096 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *grown = realloc(buf, cap);
            if (!grown)
                break;
            buf = grown;
        }
        size_t got = fread(buf + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    size_t len;
    char *doc = render(&len);
    if (!doc)
        return 2;
    int rc = 0;
    if (argc == 2 && strcmp(argv[1], "--print") == 0) {
        fwrite(doc, 1, len, stdout);
    } else if (argc == 3 && strcmp(argv[1], "--check") == 0) {
        size_t have_len;
        char *have = slurp(argv[2], &have_len);
        if (!have || have_len != len || memcmp(have, doc, len) != 0) {
            printf("%s is out of date with the op table; regenerate it with "
                   "`ninja -C build ops-doc`\n0 passed, 1 failed\n",
                   argv[2]);
            rc = 1;
        } else {
            printf("%s matches the op table (%d ops)\n1 passed, 0 failed\n",
                   argv[2], nb_builtin_op_count());
        }
        free(have);
    } else if (argc == 3 && strcmp(argv[1], "--write") == 0) {
        FILE *f = fopen(argv[2], "wb");
        if (!f || fwrite(doc, 1, len, f) != len || fclose(f) != 0) {
            fprintf(stderr, "gen_ops_doc: cannot write %s\n", argv[2]);
            rc = 1;
        }
    } else {
        fprintf(stderr, "usage: gen_ops_doc --print | --check FILE | --write FILE\n");
        rc = 2;
    }
    free(doc);
    return rc;
}
