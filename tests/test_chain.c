/* A chain of 1,000,000 scalar tanh nodes: construction, forward and
 * backward complete (the executor uses no recursion), the gradient is the
 * product of the local derivatives, and memory grows linearly, at a bounded
 * cost per node. */
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

/* Builds, runs and checks a chain of n tanh nodes over a scalar of the
 * given dtype; returns bytes per node. */
static double run_chain(int64_t n, nb_dtype dtype, bool report)
{
    size_t before = live_bytes;
    double t0 = now();
    nb_graph *g = nb_graph_new();
    nb_node *p = nb_param(g, "p", dtype, 0, NULL);
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
    /* Near 0 the map contracts slowly (its slope is 1 - y^2), so a
     * step's rounding lingers for about 1/y^2 steps: f32 ends some 1e-3
     * off in relative terms, f64 some 1e-12. */
    double vtol = dtype == NB_F64 ? 1e-9 : 1e-2;
    double dtol = dtype == NB_F64 ? 1e-6 : 1e-2;
    CHECK(fabs(got_v - v) <= vtol * fabs(v), "value %.17g vs %.17g", got_v, v);
    CHECK(fabs(got_d - d) <= dtol * fabs(d), "gradient %.17g vs %.17g", got_d,
          d);
    if (report)
        printf("chain of %lld %s tanh nodes: build %.3f s, forward %.3f s, "
               "backward %.3f s, %.1f bytes per node\n",
               (long long)n, nb_dtype_name(dtype), t1 - t0, t2 - t1, t3 - t2,
               per_node);
    nb_graph_free(g);
    CHECK(live_bytes == before, "graph_free returns every byte (%zu left)",
          live_bytes - before);
    return per_node;
}

int main(void)
{
    nb_set_allocator(&(nb_allocator){counting_alloc, counting_free, NULL});
    double small = run_chain(100000, NB_F64, false);
    double large = run_chain(1000000, NB_F64, true);
    /* Linear growth: the same cost per node at ten times the length. */
    CHECK(large < 1.2 * small && large > 0.8 * small,
          "bytes per node %.1f at 1e5 vs %.1f at 1e6", small, large);
    /* What a scalar op node costs (docs/design.md, "Node memory"): the
     * 96-byte node, its place in the planner's order (8) and its mark (1),
     * its value and gradient in the arena (2 x 8 in f64, 2 x 4 in f32):
     * 121 and 113 bytes, about 1.5 more of growth slack, and the node
     * blocks a slab holds ahead (NB_SLAB_BLOCKS; 11 of them at this size,
     * 4.3 bytes a node of address space, not of memory touched). A field
     * or an arena block more per node fails here. */
    CHECK(large < 128, "%.1f bytes per f64 node (expected 126.9)", large);
    double f32 = run_chain(1000000, NB_F32, true);
    CHECK(f32 < 120, "%.1f bytes per f32 node (expected 118.5)", f32);
    nb_set_allocator(NULL);
    return tu_finish("chain");
}
