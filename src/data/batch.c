/* Shuffling and batching: index permutations, row gathers with f32/f64
 * conversion, and feeding a gathered mini-batch to a graph input.
 *
 * Shuffle is Fisher-Yates (Durstenfeld's form): for i = n-1 down to 1 swap
 * idx[i] with idx[j], j uniform in [0, i]. With an unbiased j every one of
 * the n! orders is equally likely; nb_rng_below supplies j without modulo
 * bias, and the graph's seeded RNG makes the order reproducible.
 *
 * nb_feed_rows runs every training step, so it allocates nothing: the
 * batch goes into the caller's scratch tensor and the shape lives on the
 * stack; nb_feed reuses the input's buffer once it has seen the batch size.
 * The gather prefetches rows ahead and splits large batches across
 * threads (see gather).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nabla/data.h"
#include "nabla/parallel.h"

void nb_iota(int64_t *idx, int64_t n)
{
    for (int64_t i = 0; idx && i < n; i++)
        idx[i] = i;
}

void nb_shuffle(nb_graph *g, int64_t *idx, int64_t n)
{
    if (!g || !idx)
        return;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = nb_rng_below(g, i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* What is wrong with taking rows idx[0..count) (rows 0..count-1 when idx is
 * NULL) of src, or NULL. */
static const char *rows_problem(const nb_tensor *src, const int64_t *idx,
                                int64_t count, char *buf, size_t len)
{
    int64_t rows = nb_tensor_dim(src, 0);
    if (!idx && count > rows) {
        snprintf(buf, len, "%lld rows asked of a source with %lld",
                 (long long)count, (long long)rows);
        return buf;
    }
    for (int64_t i = 0; idx && i < count; i++)
        if (idx[i] < 0 || idx[i] >= rows) {
            snprintf(buf, len,
                     "index %lld at position %lld is outside the "
                     "source's %lld rows",
                     (long long)idx[i], (long long)i, (long long)rows);
            return buf;
        }
    return NULL;
}

/* Why dst cannot take rows idx[0..count) of src, or NULL if it can. */
static const char *gather_problem(const nb_tensor *dst, const nb_tensor *src,
                                  const int64_t *idx, int64_t count, char *buf,
                                  size_t len)
{
    if (!dst || !src)
        return "a tensor is NULL";
    if (!nb_tensor_cdata(dst) || !nb_tensor_cdata(src))
        return "a tensor has no data";
    int rank = nb_tensor_rank(src);
    if (rank < 1 || nb_tensor_rank(dst) != rank)
        return "source and destination need the same rank >= 1";
    for (int i = 1; i < rank; i++)
        if (nb_tensor_dim(dst, i) != nb_tensor_dim(src, i)) {
            char a[128], b[128];
            snprintf(buf, len,
                     "the destination %s and the source %s differ after "
                     "dimension 0",
                     nb_shape_str(rank, nb_tensor_shape(dst), a, sizeof a),
                     nb_shape_str(rank, nb_tensor_shape(src), b, sizeof b));
            return buf;
        }
    if (count < 0 || count > nb_tensor_dim(dst, 0)) {
        snprintf(buf, len, "%lld rows do not fit the destination's %lld",
                 (long long)count, (long long)nb_tensor_dim(dst, 0));
        return buf;
    }
    return rows_problem(src, idx, count, buf, len);
}

/* Rows of a gather: row i of dst takes row idx[i] of src (row i when idx
 * is NULL), with the element type converted when the two differ. */
struct rows {
    char *d;
    const char *s;
    const int64_t *idx;
    size_t row, sb, db; /* elements per row, bytes per row in src, dst */
    nb_dtype sd, dd;
};

/* A training batch takes random rows of a dataset far larger than the
 * caches, so each row starts with a cache (and often a TLB) miss that the
 * hardware prefetcher cannot foresee; once a row is under way it streams.
 * Asking for the first and last lines of the row PREFETCH_AHEAD rows ahead
 * overlaps those misses with the copy of the current row. */
#define PREFETCH_AHEAD 2

static void prefetch_row(const struct rows *r, int64_t i)
{
#if defined(__GNUC__)
    if (r->sb == 0)
        return;
    const char *from = r->s + (size_t)(r->idx ? r->idx[i] : i) * r->sb;
    __builtin_prefetch(from, 0, 0);
    __builtin_prefetch(from + r->sb - 1, 0, 0);
#else
    (void)r;
    (void)i;
#endif
}

/* Copies rows [lo, hi). */
static void copy_rows(const struct rows *r, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi && i < lo + PREFETCH_AHEAD; i++)
        prefetch_row(r, i);
    for (int64_t i = lo; i < hi; i++) {
        if (i + PREFETCH_AHEAD < hi)
            prefetch_row(r, i + PREFETCH_AHEAD);
        const char *from = r->s + (size_t)(r->idx ? r->idx[i] : i) * r->sb;
        char *to = r->d + (size_t)i * r->db;
        if (r->sd == r->dd) {
            memcpy(to, from, r->sb);
        } else if (r->sd == NB_F32) {
            const float *f = (const float *)(const void *)from;
            double *t = (double *)(void *)to;
            for (size_t k = 0; k < r->row; k++)
                t[k] = f[k];
        } else {
            const double *f = (const double *)(const void *)from;
            float *t = (float *)(void *)to;
            for (size_t k = 0; k < r->row; k++)
                t[k] = (float)f[k];
        }
    }
}

/* Bytes per thread below which no team is tried: 8 KB take about a
 * microsecond to gather, less than a parallel region costs. Above it,
 * nabla/parallel.h times one thread and the team where it runs. */
#define GRAIN_BYTES (8 * 1024)

static nb_parallel_site gather_site =
    NB_PARALLEL_SITE("data.gather", GRAIN_BYTES);

static void gather_body(void *ctx, int64_t lo, int64_t hi, int thread,
                        int threads)
{
    (void)thread;
    (void)threads;
    copy_rows(ctx, lo, hi);
}

/* The copy itself, arguments already checked. Large gathers split their
 * rows across threads: with rows scattered over memory, two cores keep
 * twice as many misses in flight. */
static void gather(nb_tensor *dst, const nb_tensor *src, const int64_t *idx,
                   int64_t count)
{
    int64_t rows = nb_tensor_dim(src, 0);
    if (count == 0 || rows == 0)
        return;
    struct rows r;
    r.row = (size_t)(nb_tensor_size(src) / rows);
    r.sd = nb_tensor_dtype(src);
    r.dd = nb_tensor_dtype(dst);
    r.s = nb_tensor_cdata(src);
    r.d = nb_tensor_data(dst);
    r.idx = idx;
    r.sb = r.row * nb_dtype_size(r.sd);
    r.db = r.row * nb_dtype_size(r.dd);
    size_t bytes = (size_t)count * (r.sb > r.db ? r.sb : r.db);
    nb_parallel_for(&gather_site, count,
                    bytes < INT64_MAX ? (int64_t)bytes : INT64_MAX, INT32_MAX,
                    gather_body, &r);
}

int nb_gather_rows(nb_tensor *dst, const nb_tensor *src, const int64_t *idx,
                   int64_t count, nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    char buf[256];
    const char *problem = gather_problem(dst, src, idx, count, buf, sizeof buf);
    if (problem)
        return nb_status_set(status, NB_ERR_ARG, "gather_rows: %s", problem);
    gather(dst, src, idx, count);
    return NB_OK;
}

int nb_feed_rows(nb_graph *g, nb_node *input, const nb_tensor *src,
                 const int64_t *idx, int64_t count)
{
    if (!g)
        return NB_ERR_ARG;
    if (!input)
        return nb_graph_set_error(g, NB_ERR_ARG, "feed_rows: input is NULL");
    const char *name = nb_node_name(input);
    if (count < 1)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "feed_rows '%s': count %lld is not >= 1",
                                  name, (long long)count);
    if (!src || !nb_tensor_cdata(src) || nb_tensor_rank(src) < 1)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "feed_rows '%s': the source is NULL, empty "
                                  "or of rank 0",
                                  name);
    char buf[256];
    const char *problem = rows_problem(src, idx, count, buf, sizeof buf);
    if (problem)
        return nb_graph_set_error(g, NB_ERR_ARG, "feed_rows '%s': %s", name,
                                  problem);
    /* The rows go straight into the input's buffer: one copy, not a
     * gather into a scratch tensor and a second copy by nb_feed. */
    int64_t shape[NB_MAX_RANK];
    int rank = nb_tensor_rank(src);
    memcpy(shape, nb_tensor_shape(src), (size_t)rank * sizeof *shape);
    shape[0] = count;
    if (!nb_feed_buffer(g, input, rank, shape))
        return nb_graph_status(g) != NB_OK ? nb_graph_status(g) : NB_ERR_ARG;
    gather(nb_node_value(input), src, idx, count);
    return NB_OK;
}
