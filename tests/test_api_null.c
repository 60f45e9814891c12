/* Every public function called with NULL arguments: once with every pointer
 * NULL and every number 0, and once per pointer parameter with that one NULL
 * and the others valid. The calls are generated from the NB_API
 * declarations of include/nabla (tools/gen_api_null_test.py), so a new
 * public function is called here without anyone listing it; the symbols
 * test (tools/check_symbols.py) makes sure the declarations are exactly
 * what the library exports.
 *
 * A call passes when it returns (no crash, and no sanitizer report in the
 * sanitizer builds), when a negative code it returns on a valid graph or
 * status comes with a message there, and when the graph it was given still
 * runs forward afterwards. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nabla/nabla.h"

enum { RET_NONE, RET_INT, RET_PTR };

struct fixture {
    nb_graph *g;
    nb_node *node;
    nb_tensor *t;
    nb_tensor *tensors[8];
    nb_node *nodes[8];
    const char *names[8];
    char buf[4096];
    double dbl[1024];
    int64_t i64[1024];
    int ints[64];
    uint64_t state[4];
    void *mem;
    FILE *file;
    nb_status status;
    const nb_op *op;
    nb_allocator allocator;
    nb_csv_options csv;
    nb_gradcheck_options gc_options;
    nb_gradcheck_result gc_result;
    nb_mlp_spec mlp_spec;
    nb_optim_config optim_config;
    nb_param_view param_view;
    nb_schedule schedule;
    nb_metrics metrics;
    nb_train_config train_config;
    nb_train_result train_result;

    int ret;
    int ret_int;
    const void *ret_ptr;
};

struct api_call {
    const char *function;
    const char *null_param; /* "all" or the one parameter passed NULL */
    void (*call)(struct fixture *f);
    int has_graph, has_status;
};

#include "api_null_calls.h"

/* Functions that hand the caller an object even for these arguments (a
 * rank-0 tensor from nb_tensor_new(0, 0, NULL), a new graph, a block of
 * memory) and how it is released, so the leak checker sees only real
 * leaks. */
static void release_tensor(void *p) { nb_tensor_free(p); }
static void release_graph(void *p) { nb_graph_free(p); }
static void release_memory(void *p) { nb_free(p); }
static const struct {
    const char *function;
    void (*release)(void *);
} owned[] = {
    {"nb_tensor_new", release_tensor},
    {"nb_one_hot", release_tensor},
    {"nb_graph_new", release_graph},
    {"nb_alloc", release_memory},
    {"nb_alloc_zeroed", release_memory},
    {"nb_realloc", release_memory},
    {"nb_trace_to_string", release_memory},
};

static const char *current = "";

static void on_signal(int sig)
{
    /* Only async-signal-safe calls: which function crashed. */
    static const char msg[] = "test_api_null: crashed in ";
    (void)!write(2, msg, sizeof msg - 1);
    (void)!write(2, current, strlen(current));
    (void)!write(2, "\n", 1);
    _exit(128 + sig);
}

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    f->g = nb_graph_new();
    int64_t two = 2;
    f->node = nb_param(f->g, "w", NB_F32, 1, &two);
    f->t = nb_tensor_new(NB_F32, 1, &two);
    for (int i = 0; i < 8; i++) {
        f->tensors[i] = f->t;
        f->nodes[i] = f->node;
        f->names[i] = "w";
    }
    for (int i = 0; i < 1024; i++) {
        f->i64[i] = 2;
        f->dbl[i] = 0.5;
    }
    for (int i = 0; i < 64; i++)
        f->ints[i] = 2;
    for (int i = 0; i < 4; i++)
        f->state[i] = (uint64_t)i + 1;
    f->mem = nb_alloc_zeroed(1 << 16);
    f->file = tmpfile();
    f->op = nb_find_op("add");
    f->schedule.lr0 = 0.1;
}

static void teardown(struct fixture *f)
{
    nb_graph_free(f->g);
    nb_tensor_free(f->t);
    nb_free(f->mem);
    if (f->file)
        fclose(f->file);
}

/* The graph still builds and runs a node after the call. */
static int graph_usable(struct fixture *f)
{
    nb_graph_clear_error(f->g);
    nb_node *sum = nb_add(f->g, f->node, f->node);
    return sum && nb_forward(f->g, sum) == NB_OK;
}

int main(void)
{
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);
    static char label[256];
    size_t n_calls = sizeof api_calls / sizeof api_calls[0];
    size_t n_functions = sizeof api_names / sizeof api_names[0];
    int failures = 0;
    /* A parser that lost the declarations would pass vacuously. */
    if (n_functions < 150) {
        fprintf(stderr, "only %zu public functions parsed\n", n_functions);
        return 1;
    }
    for (size_t i = 0; i < n_calls; i++) {
        const struct api_call *c = &api_calls[i];
        snprintf(label, sizeof label, "%s (NULL: %s)", c->function,
                 c->null_param);
        current = label;
        struct fixture *f = calloc(1, sizeof *f);
        if (!f)
            return 1;
        setup(f);
        if (!f->g || !f->node || !f->t || !f->mem) {
            fprintf(stderr, "fixture: out of memory\n");
            return 1;
        }
        c->call(f);
        if (f->ret == RET_INT && f->ret_int < 0) {
            if (c->has_graph && !nb_graph_error(f->g)) {
                fprintf(stderr, "%s: returned %d with no message on the graph\n",
                        label, f->ret_int);
                failures++;
            }
            if (c->has_status &&
                (f->status.code != f->ret_int || !f->status.message[0])) {
                fprintf(stderr, "%s: returned %d, status holds %d \"%s\"\n",
                        label, f->ret_int, f->status.code, f->status.message);
                failures++;
            }
        }
        if (f->ret == RET_PTR && f->ret_ptr) {
            for (size_t k = 0; k < sizeof owned / sizeof owned[0]; k++)
                if (strcmp(owned[k].function, c->function) == 0)
                    owned[k].release((void *)f->ret_ptr);
        }
        if (!graph_usable(f)) {
            fprintf(stderr, "%s: the graph no longer runs: %s\n", label,
                    nb_graph_error(f->g) ? nb_graph_error(f->g) : "(no message)");
            failures++;
        }
        teardown(f);
        free(f);
    }
    printf("%zu calls of %zu public functions, %d failures\n", n_calls,
           n_functions, failures);
    return failures != 0;
}
