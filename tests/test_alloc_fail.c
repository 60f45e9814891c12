/* Out of memory at every allocation of a build-train-save-load program.
 *
 * The program builds a two-layer network, trains it for three Adam steps,
 * saves its parameters and a checkpoint, loads both into a second graph and
 * reads a CSV file. It runs once to count its allocations, then once for
 * every N with the N-th allocation failing. Allocations are counted both
 * through the library's hook (nb_set_allocator) and, for code that still
 * calls malloc directly, through the C library's malloc family, wrapped at
 * link time (-Wl,--wrap=malloc and friends: this test links the static
 * library, so the wrap reaches the library's own calls). Allocations made
 * inside other libraries (zlib, stdio) are not reached.
 *
 * Each run must end either in the documented success of every call or in
 * the first failing call reporting an error with a message (on the graph or
 * in its error buffer); and every block it allocated, through either path,
 * must be released once the program has freed what it made. */
#include <stdint.h>

#include "test_files.h"
#include "test_util.h"

/* ---- counting and failing allocations ---- */

static long alloc_count;  /* allocations seen while armed */
static long fail_at = -1; /* the allocation (1-based) that fails; -1: none */
static int armed;
static long failed_count; /* how many were refused (at most one per run) */

static bool refuse(void)
{
    if (!armed)
        return false;
    alloc_count++;
    if (alloc_count == fail_at) {
        failed_count++;
        return true;
    }
    return false;
}

/* Live blocks of either path, by address: an open-addressing set, since
 * the C library also frees blocks it allocated itself (strdup, getline)
 * that this file never saw. */
#define LIVE_SLOTS 65536
static void *live[LIVE_SLOTS];
static long live_count;

static size_t slot_of(const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(h >> 48) % LIVE_SLOTS;
}

static void live_add(void *p)
{
    if (!p || !armed)
        return;
    size_t i = slot_of(p);
    while (live[i] && live[i] != (void *)-1)
        i = (i + 1) % LIVE_SLOTS;
    live[i] = p;
    live_count++;
}

static void live_remove(void *p)
{
    if (!p)
        return;
    for (size_t i = slot_of(p); live[i]; i = (i + 1) % LIVE_SLOTS) {
        if (live[i] == p) {
            live[i] = (void *)-1; /* a tombstone keeps later probes going */
            live_count--;
            return;
        }
    }
}

static void live_reset(void)
{
    memset(live, 0, sizeof live);
    live_count = 0;
}

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);

void *__wrap_malloc(size_t size)
{
    if (refuse())
        return NULL;
    void *p = __real_malloc(size);
    live_add(p);
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (refuse())
        return NULL;
    void *p = __real_calloc(n, size);
    live_add(p);
    return p;
}

void *__wrap_realloc(void *p, size_t size)
{
    if (refuse())
        return NULL;
    void *q = __real_realloc(p, size);
    if (q) {
        live_remove(p);
        live_add(q);
    }
    return q;
}

void __wrap_free(void *p)
{
    live_remove(p);
    __real_free(p);
}

static void *hook_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    if (refuse())
        return NULL;
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : align) != 0)
        return NULL;
    live_add(p);
    return p;
}

static void hook_free(void *p, void *user)
{
    (void)user;
    live_remove(p);
    free(p); /* wrapped too: it finds nothing to remove a second time */
}

/* ---- the program ---- */

static char dir[256];

struct outcome {
    const char *step;   /* the call that failed, or NULL */
    char message[512];  /* its message */
};

static bool fail_graph(struct outcome *o, nb_graph *g, const char *step)
{
    o->step = step;
    const char *msg = g ? nb_graph_error(g) : NULL;
    snprintf(o->message, sizeof o->message, "%s", msg ? msg : "");
    return false;
}

/* x [4,3] -> linear 3x5 -> tanh -> linear 5x2 -> softmax cross-entropy. */
static nb_node *build(nb_graph *g, nb_node **x, nb_node **labels)
{
    *x = nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 3));
    *labels = nb_input(g, "labels", NB_F32, 1, SHAPE(NB_DYNAMIC));
    nb_node *w1 = nb_param(g, "l1.W", NB_F32, 2, SHAPE(3, 5));
    nb_node *b1 = nb_param(g, "l1.b", NB_F32, 1, SHAPE(5));
    nb_node *w2 = nb_param(g, "l2.W", NB_F32, 2, SHAPE(5, 2));
    nb_node *b2 = nb_param(g, "l2.b", NB_F32, 1, SHAPE(2));
    if (w1)
        nb_init_xavier_uniform(g, w1, 3, 5, 1);
    if (w2)
        nb_init_xavier_uniform(g, w2, 5, 2, 1);
    nb_node *h = nb_tanh(g, nb_add(g, nb_matmul(g, *x, w1), b1));
    nb_node *z = nb_add(g, nb_matmul(g, h, w2), b2);
    return nb_softmax_ce_index_loss(g, z, *labels);
}

static bool train(nb_graph *g, nb_optimizer *opt, nb_node *x, nb_node *labels,
                  nb_node *loss, struct outcome *o)
{
    static const float xs[12] = {1, 0, 0.5f, 0, 1, -1, 2, 2, 0, -1, 0.5f, 1};
    static const float ys[4] = {0, 1, 1, 0};
    for (int step = 0; step < 3; step++) {
        if (nb_feed(g, x, 2, SHAPE(4, 3), xs) != NB_OK ||
            nb_feed(g, labels, 1, SHAPE(4), ys) != NB_OK)
            return fail_graph(o, g, "feed");
        if (nb_forward(g, loss) != NB_OK)
            return fail_graph(o, g, "forward");
        if (nb_backward(g, loss) != NB_OK)
            return fail_graph(o, g, "backward");
        if (nb_optimizer_step(opt) != NB_OK)
            return fail_graph(o, g, "step");
    }
    return true;
}

static bool program(struct outcome *o)
{
    char params[300 + sizeof dir], ckpt[300 + sizeof dir], csv[300 + sizeof dir];
    snprintf(params, sizeof params, "%s/params.safetensors", dir);
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
    snprintf(csv, sizeof csv, "%s/data.csv", dir);
    const nb_optim_config adam = {.kind = NB_OPTIM_ADAM, .lr = 0.01};
    bool ok = false;
    nb_graph *g = NULL, *g2 = NULL;
    nb_optimizer *opt = NULL, *opt2 = NULL;
    nb_tensor *features = NULL, *targets = NULL;
    nb_node *x, *labels, *loss;

    o->step = NULL;
    o->message[0] = '\0';
    if (!(g = nb_graph_new())) {
        o->step = "graph_new"; /* documented: NULL when memory runs out */
        goto done;
    }
    if (!(loss = build(g, &x, &labels))) {
        fail_graph(o, g, "build");
        goto done;
    }
    if (!(opt = nb_optimizer_new(g, &adam, 0, NULL))) {
        fail_graph(o, g, "optimizer_new");
        goto done;
    }
    if (!train(g, opt, x, labels, loss, o))
        goto done;
    if (nb_save_params(g, params, 0, NULL) != NB_OK) {
        fail_graph(o, g, "save_params");
        goto done;
    }
    if (nb_checkpoint_save(g, opt, 1, ckpt) != NB_OK) {
        fail_graph(o, g, "checkpoint_save");
        goto done;
    }
    if (!(g2 = nb_graph_new())) {
        o->step = "graph_new";
        goto done;
    }
    if (!build(g2, &x, &labels) || !(opt2 = nb_optimizer_new(g2, &adam, 0, NULL))) {
        fail_graph(o, g2, "build 2");
        goto done;
    }
    if (nb_load_params(g2, params, 0, NULL) != NB_OK) {
        fail_graph(o, g2, "load_params");
        goto done;
    }
    int64_t epoch = -1;
    if (nb_checkpoint_load(g2, opt2, &epoch, ckpt) != NB_OK) {
        fail_graph(o, g2, "checkpoint_load");
        goto done;
    }
    nb_status st = {0};
    nb_csv_options copt = {.header = true, .label_column = 2, .dtype = NB_F32};
    if (!(features = nb_csv_read(csv, &copt, &targets, &st))) {
        o->step = "csv_read";
        snprintf(o->message, sizeof o->message, "%s", st.message);
        goto done;
    }
    ok = epoch == 1 && nb_tensor_size(features) == 6 && nb_tensor_size(targets) == 3;
    if (!ok)
        o->step = "wrong result";
done:
    nb_tensor_free(features);
    nb_tensor_free(targets);
    nb_optimizer_free(opt2);
    nb_optimizer_free(opt);
    nb_graph_free(g2);
    nb_graph_free(g);
    return ok;
}

static void write_csv(void)
{
    char path[300 + sizeof dir];
    snprintf(path, sizeof path, "%s/data.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("a,b,label\n1,2,0\n3,4,1\n5,6,0\n", f);
    fclose(f);
}

/* Anything in the scratch directory but the three files the program
 * writes is a temporary file a failed save did not remove. */
static bool stray(const char *name)
{
    return strcmp(name, "params.safetensors") && strcmp(name, "run.ckpt") &&
           strcmp(name, "data.csv");
}

static int stray_files(void)
{
    return tf_count_files(dir, stray);
}

int main(void)
{
    if (tf_scratch_dir(dir, sizeof dir, "allocfail") != 0)
        return 1;
    write_csv();
    nb_set_allocator(&(nb_allocator){hook_alloc, hook_free, NULL});

    struct outcome o;
    live_reset();
    alloc_count = 0;
    armed = 1;
    bool ok = program(&o);
    armed = 0;
    long total = alloc_count;
    CHECK(ok, "the program fails with no allocation failing: %s: %s",
          o.step ? o.step : "", o.message);
    CHECK(live_count == 0, "%ld blocks left after a clean run", live_count);
    CHECK(total > 50, "only %ld allocations counted", total);

    long successes = 0, errors = 0, by_step_nomem = 0;
    for (long n = 1; n <= total; n++) {
        live_reset();
        alloc_count = 0;
        failed_count = 0;
        fail_at = n;
        armed = 1;
        ok = program(&o);
        armed = 0;
        fail_at = -1;
        if (ok) {
            /* A refused allocation the program recovered from (a cache that
             * is only an optimisation, say) is documented success. */
            successes++;
        } else {
            errors++;
            bool documented = o.step && strcmp(o.step, "graph_new") == 0;
            CHECK(documented || o.message[0] != '\0',
                  "allocation %ld: '%s' failed with no message", n,
                  o.step ? o.step : "?");
            CHECK(o.step && strcmp(o.step, "wrong result") != 0,
                  "allocation %ld: the program ran to the end with a wrong "
                  "result", n);
            if (strstr(o.message, "memory"))
                by_step_nomem++;
        }
        CHECK(live_count == 0, "allocation %ld (%s): %ld blocks leaked", n,
              o.step ? o.step : "success", live_count);
        CHECK(stray_files() == 0, "allocation %ld (%s): a temporary file was "
              "left behind", n, o.step ? o.step : "success");
    }
    printf("%ld allocations failed one at a time: %ld runs ended in an error "
           "with a message (%ld saying out of memory), %ld succeeded anyway\n",
           total, errors, by_step_nomem, successes);
    nb_set_allocator(NULL);
    tf_remove_dir(dir);
    return tu_finish("alloc_fail");
}
