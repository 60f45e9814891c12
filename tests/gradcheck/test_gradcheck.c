/* Runs the gradient-check table: every case, several random draws, f64,
 * central differences. Fails when a registered op has no case. */
#include <stdbool.h>

#include "gradcheck_cases.h"
#include "test_util.h"

#define DRAWS 3

static const gc_case *const families[] = {
    gc_cases_elementwise, gc_cases_activation, gc_cases_softmax,
    gc_cases_matmul,      gc_cases_reduce,     gc_cases_shape,
    gc_cases_loss,        gc_cases_conv,  gc_cases_norm,
    gc_cases_sequence,
    gc_cases_rnn,
};

int main(void)
{
    int n_cases = 0;
    double worst_rel = 0;
    const char *worst_where = "";
    static char where[160];

    /* Completeness: every op the registry lists (src/ops/registry.c, made
     * from ops.def) appears in the table. */
    for (int i = 0; i < nb_builtin_op_count(); i++) {
        const char *name = nb_builtin_op(i)->name;
        bool found = false;
        for (size_t f = 0; f < sizeof families / sizeof *families; f++)
            for (const gc_case *c = families[f]; c->op && !found; c++)
                found = strcmp(c->op, name) == 0;
        CHECK(found, "op '%s' is registered but has no gradient-check case",
              name);
    }

    for (size_t f = 0; f < sizeof families / sizeof *families; f++) {
        for (const gc_case *c = families[f]; c->op; c++) {
            CHECK(nb_find_op(c->op) != NULL, "case names unknown op '%s'",
                  c->op);
            n_cases++;
            for (int draw = 0; draw < DRAWS; draw++) {
                gc_ctx ctx = {.rng = 1000003u * (uint64_t)n_cases + draw,
                              .op = c->op};
                nb_graph *g = nb_graph_new();
                nb_node *out = c->build(g, &ctx);
                CHECK(out != NULL, "%s (%s): build failed: %s", c->op, c->what,
                      nb_graph_error(g) ? nb_graph_error(g) : "no message");
                if (out) {
                    nb_gradcheck_result r;
                    int rc = nb_gradcheck(g, out, NULL, &r);
                    CHECK(rc == NB_OK, "%s (%s): gradcheck could not run: %s",
                          c->op, c->what, nb_graph_error(g));
                    CHECK(r.passed, "%s (%s), draw %d: %s", c->op, c->what,
                          draw, r.message);
                    if (rc == NB_OK && r.max_rel_err > worst_rel) {
                        worst_rel = r.max_rel_err;
                        snprintf(where, sizeof where, "%s (%s)", c->op,
                                 c->what);
                        worst_where = where;
                    }
                }
                nb_graph_free(g);
            }
        }
    }
    printf("gradcheck: %d ops registered, %d cases x %d draws, largest "
           "relative error %.3g in %s\n",
           nb_builtin_op_count(), n_cases, DRAWS, worst_rel, worst_where);
    return tu_finish("gradcheck");
}
