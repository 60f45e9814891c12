/* A chain of 1,000,000 scalar tanh nodes: construction, forward and
 * backward complete (the executor uses no recursion), the gradient is the
 * product of the local derivatives, and memory grows linearly. */
#include <time.h>

#include "test_util.h"

static size_t live_bytes;

/* Counts the bytes the library holds, to measure memory per node. */
static void *counting_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *p = NULL;
    if (posix_memalign(&p, align, size + align) != 0)
        return NULL;
    *(size_t *)p = size;
    live_bytes += size;
    return (char *)p + align;
}

static void counting_free(void *ptr, void *user)
{
    (void)user;
    /* Blocks are always 64-aligned with the size stored one block earlier. */
    char *base = (char *)ptr - 64;
    live_bytes -= *(size_t *)base;
    free(base);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Builds, runs and checks a chain of n tanh nodes; returns bytes per node. */
static double run_chain(int64_t n, bool report)
{
    size_t before = live_bytes;
    double t0 = now();
    nb_graph *g = nb_graph_new();
    nb_node *p = nb_param(g, "p", NB_F64, 0, NULL);
    SET(p, 0.9);
    nb_node *y = p;
    for (int64_t i = 0; i < n; i++)
        y = nb_tanh(g, y);
    double t1 = now();
    CHECK(y != NULL, "build: %s", nb_graph_error(g));
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    double t2 = now();
    CHECK(nb_backward(g, y) == NB_OK, "%s", nb_graph_error(g));
    double t3 = now();
    double per_node = (double)(live_bytes - before) / (double)n;

    /* The same recurrence in plain C: y_{i+1} = tanh(y_i),
     * dy_n/dp = prod (1 - y_{i+1}^2). */
    double v = 0.9, d = 1.0;
    for (int64_t i = 0; i < n; i++) {
        v = tanh(v);
        d *= 1 - v * v;
    }
    double got_v = nb_tensor_get(nb_node_value(y), 0);
    double got_d = nb_tensor_get(nb_node_grad(p), 0);
    CHECK(fabs(got_v - v) <= 1e-9 * fabs(v), "value %.17g vs %.17g", got_v, v);
    CHECK(fabs(got_d - d) <= 1e-6 * fabs(d), "gradient %.17g vs %.17g", got_d,
          d);
    if (report)
        printf("chain of %lld tanh nodes: build %.3f s, forward %.3f s, "
               "backward %.3f s, %.0f bytes per node\n",
               (long long)n, t1 - t0, t2 - t1, t3 - t2, per_node);
    nb_graph_free(g);
    CHECK(live_bytes == before, "graph_free returns every byte (%zu left)",
          live_bytes - before);
    return per_node;
}

int main(void)
{
    nb_set_allocator(&(nb_allocator){counting_alloc, counting_free, NULL});
    double small = run_chain(100000, false);
    double large = run_chain(1000000, true);
    /* Linear growth: the same cost per node at ten times the length. */
    CHECK(large < 1.2 * small && large > 0.8 * small,
          "bytes per node %.1f at 1e5 vs %.1f at 1e6", small, large);
    nb_set_allocator(NULL);
    return tu_finish("chain");
}
