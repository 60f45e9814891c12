/* Data-parallel training over MPI, on the public API only.
 *
 * The reduction. MPI_Allreduce with MPI_SUM leaves the order of the
 * additions to the implementation, which picks an algorithm by message
 * size, rank count and transport (and may change it between versions), so
 * the bits it returns are not promised to be the same from run to run or
 * from rank to rank. Here every sum is a ring of point-to-point steps
 * (MPI_Sendrecv, or MPI_Isend and MPI_Irecv for the gradient buckets) to
 * fixed neighbours: the vector is cut into R chunks; in R - 1 reduce-
 * scatter steps, rank r sends chunk (r - s) mod R to rank r + 1 and adds
 * chunk (r - s - 1) mod R from rank r - 1 to its own, so that chunk c is
 * summed as g_{c+R-1} + (... + (g_{c+1} + g_c)) and ends complete on rank
 * c - 1; R - 1 allgather steps then copy each complete chunk around the
 * ring. Which operands each addition takes is fixed by R alone, never by
 * arrival time, and every rank receives the same bits. Each rank sends and
 * receives 2 (R - 1) / R of the vector, with no root doing R times the
 * work, as a gather, sum and broadcast would.
 *
 * Agreement. Every collective starts with a small ring sum of a vector
 * holding one slot per rank for its status (0 or its negative code) and,
 * after them, the caller's sums: a rank that failed still takes part, so
 * every rank learns of the failure at the same collective and returns an
 * error instead of waiting for a message that will never come.
 *
 * Buckets. The gradients of the optimiser's parameters are packed into one
 * buffer per dtype (scaled by the rank's weight on the way), each buffer
 * cut into buckets of at most bucket_bytes, and every bucket is reduced by
 * its own ring of MPI_Isend / MPI_Irecv steps on a communicator of their
 * own, tagged with the bucket's number, so that any number of rings can be
 * in flight in any order. Which operands each addition takes depends only
 * on the rank count and the layout (where each element sits in its
 * bucket), never on when a ring ran.
 *
 * Overlap. The layout is the order in which backward finishes the
 * parameters' gradients (libnabla's gradient-ready hook), learnt from a
 * step's backward and agreed on by every rank at the end of the step
 * before it is used. Once a layout is agreed (armed), nb_dist_begin_grads
 * hooks the graph: each parameter reported final is packed at once, a
 * bucket whose parameters are all packed starts its ring, and each report
 * moves the rings in flight on with MPI_Testsome; nb_dist_average_grads
 * starts what is left, waits for every ring, then agrees on the statuses.
 * A rank that failed still runs the rings (the others are in them) and
 * only its agreement carries the failure; the gradients are written back
 * only when every rank passed. Before a layout is armed (the first step,
 * or a loop without nb_dist_begin_grads) the agreement comes first and
 * the rings after it, in the optimiser's parameter order until a layout
 * is learnt.
 *
 * One node, on request (NABLA_DIST_REDUCE=window on every rank, or
 * nb_dist_set_shared_memory; the ring is the default, see window_env).
 * When every rank of the communicator shares one node (its
 * MPI_COMM_TYPE_SHARED split is all of it), the buckets skip the ring's
 * copies through MPI's transport: the packed buffers are the ranks'
 * segments of an MPI-3 shared-memory window, each rank packing into its
 * own. After a barrier (every rank has packed), rank r sums chunk r of
 * every bucket, with the ring's chunk boundaries, reading every segment
 * and adding g_{r+1}, ..., g_{r+R-1} onto g_r in its own segment, each
 * addition own-gradient + sum-so-far as on the ring: the same operands in
 * the same order, so the same bits as the ring for any rank count. After
 * a second synchronisation every rank copies each chunk of the sums out
 * of the segment of the rank that summed it. With an armed layout that
 * synchronisation is the agreement itself (no rank finishes it before
 * every rank has entered it, after its sums), which a failed rank makes
 * too after its barrier and sums, so none is left waiting; unarmed, the
 * agreement came first and a second barrier follows the sums. The window
 * has two halves per rank used by alternate steps: a rank packing step
 * k + 1 cannot overwrite what a slower rank still copies out of step k,
 * and cannot reach step k + 2's packing before every rank has passed step
 * k + 1's barrier, after its copying of step k. Whether to use the window
 * is decided after an agreement that passed, from values every rank
 * shares (the node split and whether the window is asked for, agreed on in
 * nb_dist_new and nb_dist_set_shared_memory, and the plans' sizes, which
 * ride on the agreement), so every rank takes the same path; the window is
 * made there (collectively) and, if any rank cannot have it, the ring is
 * used for good. Across nodes, the ring as above.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/dist.h"

static const char who[] = "dist";

/* Slots of the small agreement vector kept allocated for the hooks, after
 * four per rank (its status, its layout's signature and its plan's f32 and
 * f64 element counts). */
enum { SMALL_SUMS = 8 };

/* One bucket: elements [lo, lo + len) of the packed buffer of dtype t. */
typedef struct bucket {
    int t;
    int64_t lo, len;
    int need;      /* parameters with elements in it */
    int pending;   /* of which not yet packed this step */
    int step;      /* the ring step in flight; -1 not started; done at
                      2 (R - 1) */
    size_t tmp_at; /* its received chunk's place in gtmp, bytes */
} bucket;

struct nb_dist {
    MPI_Comm comm;
    MPI_Comm gcomm; /* the gradient rings' */
    int rank, size;
    size_t bucket_bytes;
    int max_tag;
    nb_train_dist hooks;
    double *small; /* 4 size + SMALL_SUMS */
    void *pack[2]; /* packed gradients by dtype, with their capacities */
    size_t pack_cap[2];
    void *tmp; /* one received chunk of a blocking sum */
    size_t tmp_cap;
    unsigned char *bytes; /* broadcast staging */
    size_t bytes_cap;

    /* The plan for one optimiser, all in one block (plan_mem). */
    nb_optimizer *opt; /* NULL: no plan */
    int np, nb;        /* parameters, buckets */
    int64_t nodes;     /* entries of param_of */
    int *param_of;     /* node id -> parameter index, or -1 */
    int *pt;           /* per parameter: dtype index */
    int64_t *pn;       /* per parameter: elements */
    int64_t *offset;   /* per parameter: place in pack[pt] (the layout) */
    int *bfirst, *blast; /* per parameter: the buckets it falls in */
    int *layout;       /* parameter indices in packing order */
    int *fired;        /* this step's reports, in order */
    int *next;         /* the layout they make, for the next step */
    unsigned char *done, *packed; /* per parameter, this step */
    bucket *buckets;
    MPI_Request *req;  /* 2 per bucket: receive, send */
    int *idx;          /* 2 per bucket, for MPI_Testsome */
    void *plan_mem;
    size_t plan_cap;
    void *gtmp; /* the buckets' received chunks */
    size_t gtmp_cap;
    int64_t per[2];        /* elements per bucket by dtype */
    int64_t pack_elems[2]; /* elements of each packed buffer */

    bool armed;   /* the layout is agreed: rings run before the agreement */
    bool overlap; /* start rings during backward (nb_dist_set_overlap) */
    bool began;   /* nb_dist_begin_grads hooked the graph for this step */
    double weight;
    int n_fired, active; /* reports so far; rings in flight */
    double started_early, started_before; /* bytes whose rings reports
                              started: all, and all before the latest */
    int step_err;        /* a misuse seen by the hook */
    int mpi_err;         /* the first MPI error of this step's rings */
    nb_dist_stats stats;

    /* The shared-memory sum (shm_*): ncomm is comm again as a node's
     * communicator when every rank shares one node, else MPI_COMM_NULL;
     * the window is two halves per rank, the steps alternating between
     * them, each half the f32 gradients then (at win_f64_at) the f64 ones
     * of a plan of win_elems. */
    MPI_Comm ncomm;
    MPI_Win win;             /* MPI_WIN_NULL: none */
    unsigned char **seg;     /* per rank: its segment, mapped here */
    int64_t win_elems[2];
    size_t win_half, win_f64_at;
    bool shm;      /* the plan's gradients are summed through the window */
    bool shm_dead; /* a window could not be had: the ring for good */
    bool ring_forced; /* the window is not asked for (the default):
                         NABLA_DIST_REDUCE=window, nb_dist_set_shared_memory */
    int half;      /* the half this step packs into */
};

/* A message for an MPI error code. */
static void mpi_message(int err, char *buf, size_t len)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(err, s, &n) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error %d", err);
    snprintf(buf, len, "%s", s);
}

/* Grows *buf to at least `need` bytes (contents not kept). */
static int reserve(void **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return NB_OK;
    void *p = nb_alloc(need);
    if (!p)
        return NB_ERR_NOMEM;
    nb_free(*buf);
    *buf = p;
    *cap = need;
    return NB_OK;
}

/* ---- the fixed-order ring sum ---- */

static int64_t chunk_lo(int64_t count, int size, int c)
{
    return count * c / size;
}

/* Step s of the ring over count elements on rank r of R: it sends chunk
 * [*slo, *slo + *slen) to the right and receives chunk [*rlo, *rlo +
 * *rlen) from the left, which it adds to its own (the reduce-scatter's
 * R - 1 steps) or takes as it is (the allgather's R - 1 after them). */
static bool ring_step(int64_t count, int R, int r, int s, int64_t *slo,
                      int *slen, int64_t *rlo, int *rlen)
{
    bool add = s < R - 1;
    int a = add ? s : s - (R - 1);
    int sc = (r - a + (add ? 0 : 1) + 2 * R) % R;
    int rc = (r - a - (add ? 1 : 0) + 2 * R) % R;
    *slo = chunk_lo(count, R, sc);
    *rlo = chunk_lo(count, R, rc);
    *slen = (int)(chunk_lo(count, R, sc + 1) - *slo);
    *rlen = (int)(chunk_lo(count, R, rc + 1) - *rlo);
    return add;
}

static void add_into(void *dst, const void *src, int n, size_t esize)
{
    if (esize == sizeof(float)) {
        float *d = dst;
        const float *x = src;
        for (int i = 0; i < n; i++)
            d[i] += x[i];
    } else {
        double *d = dst;
        const double *x = src;
        for (int i = 0; i < n; i++)
            d[i] += x[i];
    }
}

/* In-place sum over ranks of buf[0..count) of `type` (MPI_FLOAT or
 * MPI_DOUBLE, esize bytes each), blocking. Returns MPI_SUCCESS or an MPI
 * code (NB_ERR_NOMEM when the chunk buffer cannot be had). */
static int ring_sum(nb_dist *d, void *buf, int64_t count, MPI_Datatype type,
                    size_t esize)
{
    int R = d->size, r = d->rank;
    if (R == 1 || count == 0)
        return MPI_SUCCESS;
    if (reserve(&d->tmp, &d->tmp_cap, (size_t)(count / R + 1) * esize))
        return NB_ERR_NOMEM;
    unsigned char *b = buf;
    int right = (r + 1) % R, left = (r + R - 1) % R;
    for (int s = 0; s < 2 * (R - 1); s++) {
        int64_t slo, rlo;
        int slen, rlen;
        bool add = ring_step(count, R, r, s, &slo, &slen, &rlo, &rlen);
        void *into = add ? d->tmp : b + (size_t)rlo * esize;
        int err = MPI_Sendrecv(b + (size_t)slo * esize, slen, type, right, 1,
                               into, rlen, type, left, 1, d->comm,
                               MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS)
            return err;
        if (add)
            add_into(b + (size_t)rlo * esize, d->tmp, rlen, esize);
    }
    return MPI_SUCCESS;
}

/* ---- agreement ---- */

/* The ring sum of the statuses, the layout signatures, the plans' sizes
 * and sums[0..n). Returns NB_OK when every rank passed NB_OK; otherwise the
 * own code, or the first failing rank's code, with a message in msg. On a
 * rank's failure sums is unchanged. sig is this rank's signature of the
 * gradient layout its backward reported (0: none); *same (when not NULL)
 * says every rank reported the same one, and ranks that reported different
 * ones are an error. *same_plan (when not NULL) says every rank has a plan
 * of the same element counts, which the shared-memory sum needs. */
static int agree_sum(nb_dist *d, int own, double sig, double *sums, int n,
                     char *msg, size_t msglen, bool *same, bool *same_plan)
{
    int R = d->size;
    double *v = d->small;
    /* A long vector is summed in place after the agreement, with the chunk
     * buffer reserved before it so that no rank drops out in between. */
    bool apart = n > SMALL_SUMS;
    if (apart && own == NB_OK &&
        reserve(&d->tmp, &d->tmp_cap,
                ((size_t)n / (size_t)R + 1) * sizeof(double)) != NB_OK)
        own = NB_ERR_NOMEM;
    int m = apart ? 0 : n;
    memset(v, 0, 4 * (size_t)R * sizeof *v);
    v[d->rank] = own < 0 ? (double)own : 0;
    v[R + d->rank] = sig;
    if (same_plan && d->opt) {
        /* Counts below 2^53, each in its own slot: the sums are exact. */
        v[2 * R + d->rank] = (double)d->pack_elems[0] + 1;
        v[3 * R + d->rank] = (double)d->pack_elems[1] + 1;
    }
    if (m)
        memcpy(v + 4 * R, sums, (size_t)m * sizeof *v);
    int err = ring_sum(d, v, 4 * R + m, MPI_DOUBLE, sizeof(double));
    int rc = NB_OK;
    if (err == MPI_SUCCESS && own != NB_OK) {
        rc = own;
        snprintf(msg, msglen, "%s: rank %d failed", who, d->rank);
    } else if (err == MPI_SUCCESS) {
        for (int i = 0; i < R; i++)
            if (v[i] != 0) {
                rc = (int)v[i];
                snprintf(msg, msglen,
                         "%s: rank %d failed (code %d); its own message says "
                         "why",
                         who, i, rc);
                break;
            }
    }
    bool all = true;
    for (int i = 0; i < R && err == MPI_SUCCESS; i++) {
        all = all && v[R + i] == v[R] && v[R] != 0;
        if (rc == NB_OK && v[R + i] != 0 && v[R] != 0 && v[R + i] != v[R]) {
            rc = NB_ERR_ARG;
            snprintf(msg, msglen,
                     "%s: ranks 0 and %d report their gradients in different "
                     "orders or sizes; build the same graph and optimiser "
                     "on every rank",
                     who, i);
        }
    }
    if (same)
        *same = all && rc == NB_OK;
    if (same_plan) {
        *same_plan = err == MPI_SUCCESS && rc == NB_OK && v[2 * R] != 0;
        for (int i = 1; i < R && *same_plan; i++)
            *same_plan = v[2 * R + i] == v[2 * R] &&
                         v[3 * R + i] == v[3 * R];
    }
    if (err == MPI_SUCCESS && rc == NB_OK) {
        if (m)
            memcpy(sums, v + 4 * R, (size_t)m * sizeof *v);
        else if (apart)
            err = ring_sum(d, sums, n, MPI_DOUBLE, sizeof(double));
    }
    if (err != MPI_SUCCESS) {
        char s[MPI_MAX_ERROR_STRING + 1];
        mpi_message(err, s, sizeof s);
        snprintf(msg, msglen, "%s: a sum across ranks failed: %.160s", who, s);
        rc = NB_ERR_IO;
    }
    return rc;
}

/* agree_sum with the message on the graph, unless this rank's own failure
 * already put one there. */
static int agree_graph(nb_dist *d, nb_graph *g, int own, double sig,
                       double *sums, int n, bool *same, bool *same_plan)
{
    char msg[256];
    int rc = agree_sum(d, own, sig, sums, n, msg, sizeof msg, same,
                       same_plan);
    if (rc != NB_OK && own == NB_OK)
        nb_graph_set_error(g, rc, "%s", msg);
    return rc;
}

int nb_dist_agree(nb_dist *d, int own, nb_status *status)
{
    return nb_dist_sum(d, NULL, 0, own, status);
}

int nb_dist_sum(nb_dist *d, double *v, int n, int own, nb_status *status)
{
    if (!d)
        return nb_status_set(status, NB_ERR_ARG, "%s: context is NULL", who);
    if (n < 0 || (n > 0 && !v))
        own = own ? own : NB_ERR_ARG;
    char msg[256];
    int rc = agree_sum(d, own, 0, n > 0 && v ? v : NULL, n > 0 && v ? n : 0,
                       msg, sizeof msg, NULL, NULL);
    if (rc != NB_OK)
        return nb_status_set(status, rc, "%s", msg);
    return NB_OK;
}

/* ---- gradients ---- */

static int dtype_index(nb_dtype t)
{
    return t == NB_F64;
}

static size_t esize_of(int t)
{
    return t ? sizeof(double) : sizeof(float);
}

/* Whether parameter i is of dtype index t; then *n is its element count and
 * *grad its gradient, or NULL when backward left it none (or one of
 * another size, which a parameter's cannot be). */
static bool param_in(nb_optimizer *opt, int i, int t, int64_t *n,
                     nb_tensor **grad)
{
    nb_node *p = nb_optimizer_param(opt, i);
    nb_tensor *v = nb_node_value(p);
    if (dtype_index(nb_tensor_dtype(v)) != t)
        return false;
    *n = nb_tensor_size(v);
    *grad = nb_node_grad(p);
    if (*grad && (nb_tensor_size(*grad) != *n ||
                  nb_tensor_dtype(*grad) != nb_tensor_dtype(v)))
        *grad = NULL;
    return true;
}

/* The plan is d's for opt as it is now: the same parameter nodes, sizes
 * and dtypes (an optimiser freed and another made at its address is not
 * taken for it). */
static bool plan_fits(const nb_dist *d, nb_optimizer *opt)
{
    if (!d->opt || d->opt != opt || d->np != nb_optimizer_param_count(opt))
        return false;
    for (int p = 0; p < d->np; p++) {
        nb_node *n = nb_optimizer_param(opt, p);
        nb_tensor *v = nb_node_value(n);
        int64_t id = nb_node_id(n);
        if (id < 0 || id >= d->nodes || d->param_of[id] != p ||
            d->pn[p] != nb_tensor_size(v) ||
            d->pt[p] != dtype_index(nb_tensor_dtype(v)))
            return false;
    }
    return true;
}

/* Places the parameters in the order order[0..np): each one's offset in
 * its dtype's buffer, the buckets it falls in and each bucket's count of
 * parameters. */
static void lay_out(nb_dist *d, const int *order)
{
    int64_t at[2] = {0, 0};
    int base[2] = {0, (int)((d->pack_elems[0] + d->per[0] - 1) / d->per[0])};
    for (int b = 0; b < d->nb; b++)
        d->buckets[b].need = 0;
    for (int i = 0; i < d->np; i++) {
        int p = order[i], t = d->pt[p];
        d->layout[i] = p;
        d->offset[p] = at[t];
        d->bfirst[p] = base[t] + (int)(at[t] / d->per[t]);
        d->blast[p] = base[t] + (int)((at[t] + d->pn[p] - 1) / d->per[t]);
        if (d->pn[p] == 0)
            d->blast[p] = d->bfirst[p] - 1;
        for (int b = d->bfirst[p]; b <= d->blast[p]; b++)
            d->buckets[b].need++;
        at[t] += d->pn[p];
    }
}

/* Carves n bytes from *at, keeping 16-byte alignment. */
static void *carve(unsigned char **at, size_t n)
{
    void *p = *at;
    *at += (n + 15) & ~(size_t)15;
    return p;
}

/* Makes the plan for opt (its maps, buckets, buffers, in the optimiser's
 * parameter order) unless d has it: memory the rings need, reserved before
 * any ring starts. A new plan is not armed. */
static int plan_reserve(nb_dist *d, nb_optimizer *opt)
{
    if (plan_fits(d, opt))
        return NB_OK;
    d->opt = NULL;
    d->armed = false;
    d->shm = false;
    int np = nb_optimizer_param_count(opt), R = d->size;
    int64_t elems[2] = {0, 0}, nodes = 0;
    for (int p = 0; p < np; p++) {
        nb_node *n = nb_optimizer_param(opt, p);
        nb_tensor *v = nb_node_value(n);
        elems[dtype_index(nb_tensor_dtype(v))] += nb_tensor_size(v);
        if (nb_node_id(n) + 1 > nodes)
            nodes = nb_node_id(n) + 1;
    }
    int nbt[2];
    size_t gneed = 0;
    for (int t = 0; t < 2; t++) {
        size_t per = d->bucket_bytes / esize_of(t);
        per = per > (size_t)INT_MAX ? (size_t)INT_MAX : per < 1 ? 1 : per;
        /* Each bucket's ring has a tag of its own. */
        int64_t most = d->max_tag / 2;
        if (elems[t] / (int64_t)per >= most)
            per = (size_t)(elems[t] / most + 1);
        d->per[t] = (int64_t)per;
        nbt[t] = (int)((elems[t] + d->per[t] - 1) / d->per[t]);
        for (int k = 0; k < nbt[t]; k++) {
            int64_t len = elems[t] - k * d->per[t];
            len = len < d->per[t] ? len : d->per[t];
            gneed += (((size_t)(len / R + 1) * esize_of(t)) + 15) & ~(size_t)15;
        }
    }
    int nb = nbt[0] + nbt[1];
    size_t in = (size_t)np * sizeof(int), i64 = (size_t)np * sizeof(int64_t);
    size_t need = 16 * 16 + (size_t)nodes * sizeof(int) + 7 * in + 2 * i64 +
                  2 * (size_t)np + (size_t)nb * sizeof(bucket) +
                  2 * (size_t)nb * (sizeof(MPI_Request) + sizeof(int));
    if (reserve(&d->plan_mem, &d->plan_cap, need) ||
        reserve(&d->gtmp, &d->gtmp_cap, gneed ? gneed : 1) ||
        reserve(&d->pack[0], &d->pack_cap[0],
                (size_t)elems[0] * sizeof(float) + 1) ||
        reserve(&d->pack[1], &d->pack_cap[1],
                (size_t)elems[1] * sizeof(double) + 1))
        return NB_ERR_NOMEM;
    unsigned char *at = d->plan_mem;
    d->param_of = carve(&at, (size_t)nodes * sizeof(int));
    d->pt = carve(&at, in);
    d->bfirst = carve(&at, in);
    d->blast = carve(&at, in);
    d->layout = carve(&at, in);
    d->fired = carve(&at, in);
    d->next = carve(&at, in);
    d->idx = carve(&at, 2 * (size_t)nb * sizeof(int));
    d->pn = carve(&at, i64);
    d->offset = carve(&at, i64);
    d->done = carve(&at, (size_t)np);
    d->packed = carve(&at, (size_t)np);
    d->buckets = carve(&at, (size_t)nb * sizeof(bucket));
    d->req = carve(&at, 2 * (size_t)nb * sizeof(MPI_Request));
    for (int64_t i = 0; i < nodes; i++)
        d->param_of[i] = -1;
    for (int p = 0; p < np; p++) {
        nb_node *n = nb_optimizer_param(opt, p);
        nb_tensor *v = nb_node_value(n);
        d->param_of[nb_node_id(n)] = p;
        d->pt[p] = dtype_index(nb_tensor_dtype(v));
        d->pn[p] = nb_tensor_size(v);
        d->next[p] = p;
    }
    size_t tat = 0;
    for (int t = 0, b = 0; t < 2; t++)
        for (int k = 0; k < nbt[t]; k++, b++) {
            bucket *q = &d->buckets[b];
            q->t = t;
            q->lo = k * d->per[t];
            q->len = elems[t] - q->lo < d->per[t] ? elems[t] - q->lo
                                                  : d->per[t];
            q->tmp_at = tat;
            tat += (((size_t)(q->len / R + 1) * esize_of(t)) + 15) &
                   ~(size_t)15;
        }
    for (int i = 0; i < 2 * nb; i++)
        d->req[i] = MPI_REQUEST_NULL;
    d->np = np;
    d->nb = nb;
    d->nodes = nodes;
    d->pack_elems[0] = elems[0];
    d->pack_elems[1] = elems[1];
    lay_out(d, d->next);
    d->opt = opt;
    return NB_OK;
}

/* Forgets this step's reports, packing and rings (none is in flight). */
static void step_reset(nb_dist *d)
{
    memset(d->done, 0, (size_t)d->np);
    memset(d->packed, 0, (size_t)d->np);
    for (int b = 0; b < d->nb; b++) {
        d->buckets[b].pending = d->buckets[b].need;
        d->buckets[b].step = -1;
    }
    d->n_fired = 0;
    d->active = 0;
    d->step_err = 0;
    d->mpi_err = MPI_SUCCESS;
    d->started_early = d->started_before = 0;
}

/* Where rank r's packed gradients of dtype index t start in this step's
 * half of the window. */
static unsigned char *shm_at(const nb_dist *d, int r, int t)
{
    return d->seg[r] + (size_t)d->half * d->win_half +
           (t ? d->win_f64_at : 0);
}

/* The packed buffer of dtype index t that this step sums: the rank's own
 * segment of the window, or the ring's buffer. */
static void *pack_base(const nb_dist *d, int t)
{
    return d->shm ? shm_at(d, d->rank, t) : d->pack[t];
}

/* Parameter p's gradient times weight into its place in the packed
 * buffer (zeros for a parameter without a gradient). */
static void pack_param(nb_dist *d, int p, double weight)
{
    int t = d->pt[p];
    int64_t n;
    nb_tensor *gr;
    param_in(d->opt, p, t, &n, &gr);
    if (t) {
        double *dst = (double *)pack_base(d, 1) + d->offset[p];
        const double *src = gr ? nb_tensor_f64(gr) : NULL;
        for (int64_t k = 0; k < n; k++)
            dst[k] = src ? src[k] * weight : 0;
    } else {
        float *dst = (float *)pack_base(d, 0) + d->offset[p];
        const float *src = gr ? nb_tensor_f32(gr) : NULL;
        for (int64_t k = 0; k < n; k++)
            dst[k] = src ? (float)((double)src[k] * weight) : 0;
    }
    d->packed[p] = 1;
}

/* Posts bucket b's ring step in flight: receive from the left, send to the
 * right, tagged with the bucket. */
static int bucket_post(nb_dist *d, int b)
{
    bucket *q = &d->buckets[b];
    int R = d->size, r = d->rank;
    size_t es = esize_of(q->t);
    MPI_Datatype type = q->t ? MPI_DOUBLE : MPI_FLOAT;
    unsigned char *base = (unsigned char *)d->pack[q->t] + (size_t)q->lo * es;
    int64_t slo, rlo;
    int slen, rlen;
    bool add = ring_step(q->len, R, r, q->step, &slo, &slen, &rlo, &rlen);
    void *into = add ? (unsigned char *)d->gtmp + q->tmp_at
                     : base + (size_t)rlo * es;
    int err = MPI_Irecv(into, rlen, type, (r + R - 1) % R, b, d->gcomm,
                        &d->req[2 * b]);
    return err != MPI_SUCCESS
               ? err
               : MPI_Isend(base + (size_t)slo * es, slen, type, (r + 1) % R,
                           b, d->gcomm, &d->req[2 * b + 1]);
}

static int bucket_start(nb_dist *d, int b, bool early)
{
    bucket *q = &d->buckets[b];
    q->step = 0;
    d->active++;
    if (early)
        d->started_early += (double)q->len * (double)esize_of(q->t);
    return bucket_post(d, b);
}

/* Bucket b's step in flight has completed: adds what it received (in the
 * reduce-scatter), then posts the next step. */
static int bucket_advance(nb_dist *d, int b)
{
    bucket *q = &d->buckets[b];
    int R = d->size;
    int64_t slo, rlo;
    int slen, rlen;
    if (ring_step(q->len, R, d->rank, q->step, &slo, &slen, &rlo, &rlen)) {
        size_t es = esize_of(q->t);
        add_into((unsigned char *)d->pack[q->t] + (size_t)(q->lo + rlo) * es,
                 (unsigned char *)d->gtmp + q->tmp_at, rlen, es);
    }
    if (++q->step == 2 * (R - 1)) {
        d->active--;
        return MPI_SUCCESS;
    }
    return bucket_post(d, b);
}

/* Moves the rings in flight on: as far as they go without blocking, or
 * (wait) until every one is done. */
static int rings_progress(nb_dist *d, bool wait)
{
    while (d->active > 0) {
        int out = 0;
        int err = wait ? MPI_Waitsome(2 * d->nb, d->req, &out, d->idx,
                                      MPI_STATUSES_IGNORE)
                       : MPI_Testsome(2 * d->nb, d->req, &out, d->idx,
                                      MPI_STATUSES_IGNORE);
        if (err != MPI_SUCCESS)
            return err;
        if (out == MPI_UNDEFINED || out == 0)
            return wait ? MPI_ERR_INTERN : MPI_SUCCESS;
        for (int i = 0; i < out; i++) {
            int b = d->idx[i] / 2;
            bucket *q = &d->buckets[b];
            if (q->step >= 0 && q->step < 2 * (d->size - 1) &&
                d->req[2 * b] == MPI_REQUEST_NULL &&
                d->req[2 * b + 1] == MPI_REQUEST_NULL &&
                (err = bucket_advance(d, b)) != MPI_SUCCESS)
                return err;
        }
    }
    return MPI_SUCCESS;
}

/* Packs every parameter not packed yet, starts every bucket not started
 * and waits for all the rings. */
static int rings_finish(nb_dist *d, double weight)
{
    for (int p = 0; p < d->np; p++)
        if (!d->packed[p])
            pack_param(d, p, weight);
    int err = d->mpi_err;
    for (int b = 0; b < d->nb && err == MPI_SUCCESS; b++)
        if (d->buckets[b].step < 0)
            err = bucket_start(d, b, false);
    return err == MPI_SUCCESS ? rings_progress(d, true) : err;
}

static int ring_failed(nb_graph *g, int err)
{
    char s[MPI_MAX_ERROR_STRING + 1];
    mpi_message(err, s, sizeof s);
    return nb_graph_set_error(g, NB_ERR_IO, "%s: the gradient sum failed: %s",
                              who, s);
}

/* ---- the shared-memory sum ---- */

/* Collective on ncomm: frees the window. */
static void shm_detach(nb_dist *d)
{
    if (d->win == MPI_WIN_NULL)
        return;
    MPI_Win_unlock_all(d->win);
    MPI_Win_free(&d->win);
    d->win = MPI_WIN_NULL;
}

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* Collective, after an agreement that passed: whether the plan's
 * gradients are summed through the window, which is made (or made again
 * for a plan of other sizes) here. same_plan, the window's state and the
 * plan's sizes are the same on every rank, so every rank takes the same
 * branch. A window that some rank cannot have is the ring for good. */
static bool shm_attach(nb_dist *d, bool same_plan)
{
    if (d->ncomm == MPI_COMM_NULL || d->shm_dead || d->ring_forced ||
        !same_plan)
        return false;
    if (d->win != MPI_WIN_NULL && d->win_elems[0] == d->pack_elems[0] &&
        d->win_elems[1] == d->pack_elems[1])
        return true;
    shm_detach(d);
    size_t f32 = round64((size_t)d->pack_elems[0] * sizeof(float));
    size_t f64 = round64((size_t)d->pack_elems[1] * sizeof(double));
    if (f32 + f64 == 0)
        return false;
    /* Each rank's segment on pages of its own, where it first touches it. */
    MPI_Info info = MPI_INFO_NULL;
    if (MPI_Info_create(&info) == MPI_SUCCESS)
        MPI_Info_set(info, "alloc_shared_noncontig", "true");
    void *base = NULL;
    int ok = MPI_Win_allocate_shared((MPI_Aint)(2 * (f32 + f64)), 1, info,
                                     d->ncomm, &base, &d->win) == MPI_SUCCESS;
    if (info != MPI_INFO_NULL)
        MPI_Info_free(&info);
    if (!ok)
        d->win = MPI_WIN_NULL;
    if (ok)
        ok = MPI_Win_set_errhandler(d->win, MPI_ERRORS_RETURN) ==
                 MPI_SUCCESS &&
             MPI_Win_lock_all(MPI_MODE_NOCHECK, d->win) == MPI_SUCCESS;
    for (int i = 0; ok && i < d->size; i++) {
        MPI_Aint bytes = 0;
        int unit = 0;
        void *at = NULL;
        ok = MPI_Win_shared_query(d->win, i, &bytes, &unit, &at) ==
                 MPI_SUCCESS &&
             at && (size_t)bytes >= 2 * (f32 + f64);
        d->seg[i] = at;
    }
    int all = 0;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, d->ncomm) !=
            MPI_SUCCESS ||
        !all) {
        shm_detach(d);
        d->shm_dead = true;
        return false;
    }
    d->win_elems[0] = d->pack_elems[0];
    d->win_elems[1] = d->pack_elems[1];
    d->win_half = f32 + f64;
    d->win_f64_at = f32;
    d->half = 0;
    return true;
}

/* acc[i] = g[i] + acc[i]: the ring's own-plus-received addition, with the
 * operands in the same order. */
static void add_onto(void *restrict acc, const void *restrict g, int64_t n,
                     size_t esize)
{
    if (esize == sizeof(float)) {
        float *restrict a = acc;
        const float *restrict x = g;
        for (int64_t i = 0; i < n; i++)
            a[i] = x[i] + a[i];
    } else {
        double *restrict a = acc;
        const double *restrict x = g;
        for (int64_t i = 0; i < n; i++)
            a[i] = x[i] + a[i];
    }
}

/* Packs what is left, then, once every rank has packed, sums chunk `rank`
 * of every bucket (the ring's chunks) over the ranks into this rank's
 * segment, as g_{c+R-1} + (... + (g_{c+1} + g_c)) with c the chunk: the
 * ring's additions, operand for operand. With `fence`, waits for every
 * rank's sums; otherwise the agreement after it is that wait. Every rank
 * makes both barriers whatever happened before, so none is left in one. */
static int shm_reduce(nb_dist *d, double weight, bool fence)
{
    for (int p = 0; p < d->np; p++)
        if (!d->packed[p])
            pack_param(d, p, weight);
    int R = d->size, c = d->rank;
    int err = MPI_Win_sync(d->win);
    int e = MPI_Barrier(d->ncomm);
    err = err ? err : e;
    e = MPI_Win_sync(d->win);
    err = err ? err : e;
    for (int b = 0; b < d->nb && err == MPI_SUCCESS; b++) {
        const bucket *q = &d->buckets[b];
        size_t es = esize_of(q->t);
        int64_t lo = chunk_lo(q->len, R, c);
        size_t at = (size_t)(q->lo + lo) * es;
        for (int k = 1; k < R; k++)
            add_onto(shm_at(d, c, q->t) + at, shm_at(d, (c + k) % R, q->t) + at,
                     chunk_lo(q->len, R, c + 1) - lo, es);
    }
    e = MPI_Win_sync(d->win);
    err = err ? err : e;
    if (fence) {
        e = MPI_Barrier(d->ncomm);
        err = err ? err : e;
    }
    return err;
}

/* Parameter p's summed gradient into dst: each piece from the segment of
 * the rank that summed the chunk it falls in. */
static void shm_unpack(const nb_dist *d, int p, void *dst)
{
    int t = d->pt[p], R = d->size;
    size_t es = esize_of(t);
    int first = t ? (int)((d->pack_elems[0] + d->per[0] - 1) / d->per[0]) : 0;
    int64_t x = d->offset[p], end = x + d->pn[p];
    unsigned char *out = dst;
    while (x < end) {
        const bucket *q = &d->buckets[first + x / d->per[t]];
        int64_t o = x - q->lo;
        int c = (int)(o * R / q->len);
        while (c + 1 < R && chunk_lo(q->len, R, c + 1) <= o)
            c++;
        int64_t stop = q->lo + chunk_lo(q->len, R, c + 1);
        stop = stop < end ? stop : end;
        memcpy(out, shm_at(d, c, t) + (size_t)x * es, (size_t)(stop - x) * es);
        out += (size_t)(stop - x) * es;
        x = stop;
    }
}

/* libnabla's gradient-ready hook: parameter p's gradient is final. */
static void grad_ready(void *user, nb_node *leaf)
{
    nb_dist *d = user;
    int64_t id = nb_node_id(leaf);
    int p = id >= 0 && id < d->nodes ? d->param_of[id] : -1;
    if (p < 0)
        return; /* an input asking for a gradient, or not opt's */
    if (d->done[p]) {
        if (!d->step_err)
            d->step_err = nb_graph_set_error(
                nb_node_graph(leaf), NB_ERR_STATE,
                "%s: two backward passes between nb_dist_begin_grads and "
                "nb_dist_average_grads (begin before the last one only)",
                who);
        return;
    }
    d->done[p] = 1;
    d->fired[d->n_fired++] = p;
    if (!d->armed || !d->overlap || d->mpi_err != MPI_SUCCESS)
        return;
    /* What earlier reports started had backward work still to overlap;
     * what the pass's last report starts has none. */
    d->started_before = d->started_early;
    pack_param(d, p, d->weight);
    if (d->shm)
        return; /* summed after backward, in one go */
    int err = MPI_SUCCESS;
    for (int b = d->bfirst[p]; b <= d->blast[p] && err == MPI_SUCCESS; b++)
        if (--d->buckets[b].pending == 0)
            err = bucket_start(d, b, true);
    if (err == MPI_SUCCESS)
        err = rings_progress(d, false);
    d->mpi_err = err;
}

static void hash_mix(uint32_t *h, int64_t x)
{
    for (int i = 0; i < 8; i++)
        *h = (*h ^ (uint32_t)((uint64_t)x >> (8 * i) & 0xff)) * 16777619u;
}

/* The layout this step's reports make (the reported parameters in their
 * order, then the others in the optimiser's) into d->next, and its
 * signature, a whole number in [1, 2^31]; 0 when nothing was reported. */
static double next_layout(nb_dist *d)
{
    if (d->n_fired == 0)
        return 0;
    int i = 0;
    for (; i < d->n_fired; i++)
        d->next[i] = d->fired[i];
    for (int p = 0; p < d->np; p++)
        if (!d->done[p])
            d->next[i++] = p;
    uint32_t h = 2166136261u;
    hash_mix(&h, d->size);
    hash_mix(&h, d->per[0]);
    hash_mix(&h, d->per[1]);
    for (i = 0; i < d->np; i++) {
        hash_mix(&h, d->next[i]);
        hash_mix(&h, d->pn[d->next[i]] * 2 + d->pt[d->next[i]]);
    }
    return (double)(h >> 1) + 1;
}

int nb_dist_begin_grads(nb_dist *d, nb_optimizer *opt, double weight)
{
    if (!d || !opt)
        return NB_ERR_ARG;
    nb_graph *g = nb_node_graph(nb_optimizer_param(opt, 0));
    if (!g)
        return NB_ERR_ARG;
    if (d->began)
        return nb_graph_set_error(g, NB_ERR_STATE,
                                  "%s: nb_dist_begin_grads twice without "
                                  "nb_dist_average_grads",
                                  who);
    if (!(weight >= 0 && weight <= 1))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: weight %g is not in [0, 1]", who,
                                  weight);
    if (d->size == 1)
        return NB_OK; /* nothing to send */
    if (plan_reserve(d, opt) != NB_OK)
        return nb_graph_set_error(g, NB_ERR_NOMEM, "%s: out of memory", who);
    step_reset(d);
    d->began = true;
    d->weight = weight;
    return nb_graph_set_grad_ready(g, grad_ready, d);
}

/* One rank: the weighted gradient in place, as packing, summing over one
 * rank and unpacking would leave it. */
static void scale_grads(nb_optimizer *opt, double weight)
{
    for (int i = 0; weight != 1 && i < nb_optimizer_param_count(opt); i++) {
        int64_t n;
        nb_tensor *gr;
        for (int t = 0; t < 2; t++)
            if (param_in(opt, i, t, &n, &gr) && gr) {
                float *f = nb_tensor_f32(gr);
                double *x = nb_tensor_f64(gr);
                for (int64_t k = 0; k < n; k++) {
                    if (f)
                        f[k] = (float)((double)f[k] * weight);
                    else
                        x[k] *= weight;
                }
            }
    }
}

/* The step's end: the rings (before the agreement when a layout is armed,
 * after it otherwise), the agreement with the layout this step's backward
 * reported, the gradients written back when every rank passed. */
static int grads_finish(nb_dist *d, nb_graph *g, nb_optimizer *opt,
                        double weight, int own, double *sums, int n)
{
    bool began = d->began;
    d->began = false;
    if (began)
        nb_graph_set_grad_ready(g, NULL, NULL);
    if (d->size == 1) {
        int rc = agree_graph(d, g, own, 0, sums, n, NULL, NULL);
        if (rc == NB_OK)
            scale_grads(opt, weight);
        return rc;
    }
    if (own == NB_OK && began && (opt != d->opt || weight != d->weight))
        own = nb_graph_set_error(g, NB_ERR_ARG,
                                 "%s: nb_dist_average_grads's optimiser or "
                                 "weight (%g) differs from "
                                 "nb_dist_begin_grads' (%g)",
                                 who, weight, d->weight);
    if (own == NB_OK && began && d->step_err)
        own = d->step_err;
    bool armed = d->armed && plan_fits(d, opt);
    if (armed) {
        /* Every rank is in the rings already or can enter them: memory
         * and layout were agreed on. A rank that failed runs them too. */
        if (!began)
            step_reset(d);
        d->stats.bytes_early += d->started_before;
        for (int b = 0; b < d->nb; b++)
            if (d->buckets[b].step == 2 * (d->size - 1))
                d->stats.bytes_done_early += (double)d->buckets[b].len *
                                             (double)esize_of(d->buckets[b].t);
        int err = d->shm ? shm_reduce(d, weight, false)
                         : rings_finish(d, weight);
        if (err != MPI_SUCCESS && own == NB_OK)
            own = ring_failed(g, err);
    } else if (own == NB_OK && plan_reserve(d, opt) != NB_OK) {
        own = nb_graph_set_error(g, NB_ERR_NOMEM, "%s: out of memory", who);
    } else if (!began && d->opt) {
        step_reset(d);
    }
    double sig = d->opt && began ? next_layout(d) : 0;
    bool same = false, same_plan = false;
    int rc = agree_graph(d, g, own, sig, sums, n, &same, &same_plan);
    /* Whether this step used a half of the window, which the next one
     * leaves to the ranks still reading it. */
    bool used = armed && d->shm;
    if (rc == NB_OK && !armed) {
        if (same)
            lay_out(d, d->next); /* learnt: this step already uses it */
        d->shm = shm_attach(d, same_plan);
        used = d->shm;
        int err = d->shm ? shm_reduce(d, weight, true)
                         : rings_finish(d, weight);
        if (err != MPI_SUCCESS)
            rc = ring_failed(g, err);
    }
    if (rc == NB_OK) {
        if (d->shm)
            MPI_Win_sync(d->win);
        for (int p = 0; p < d->np; p++) {
            int64_t cnt;
            nb_tensor *gr;
            size_t es = esize_of(d->pt[p]);
            if (!param_in(opt, p, d->pt[p], &cnt, &gr) || !gr)
                continue;
            if (d->shm)
                shm_unpack(d, p, nb_tensor_data(gr));
            else
                memcpy(nb_tensor_data(gr),
                       (unsigned char *)d->pack[d->pt[p]] + d->offset[p] * es,
                       (size_t)cnt * es);
        }
        double bytes = (double)d->pack_elems[0] * sizeof(float) +
                       (double)d->pack_elems[1] * sizeof(double);
        d->stats.steps++;
        d->stats.bytes += bytes;
        if (d->shm)
            d->stats.bytes_shared += bytes;
    }
    if (used)
        d->half ^= 1;
    if (same) {
        if (armed && memcmp(d->next, d->layout, (size_t)d->np * sizeof(int)))
            lay_out(d, d->next);
        d->armed = true;
    }
    if (d->opt)
        step_reset(d);
    return rc;
}

int nb_dist_average_grads(nb_dist *d, nb_optimizer *opt, double weight,
                          int own)
{
    if (!d || !opt)
        return NB_ERR_ARG;
    nb_graph *g = nb_node_graph(nb_optimizer_param(opt, 0));
    if (!g)
        return NB_ERR_ARG;
    if (own == NB_OK && !(weight >= 0 && weight <= 1))
        own = nb_graph_set_error(g, NB_ERR_ARG,
                                 "%s: weight %g is not in [0, 1]", who,
                                 weight);
    return grads_finish(d, g, opt, weight, own, NULL, 0);
}

int nb_dist_set_overlap(nb_dist *d, bool overlap)
{
    if (!d)
        return NB_ERR_ARG;
    d->overlap = overlap;
    return NB_OK;
}

int nb_dist_set_shared_memory(nb_dist *d, bool on)
{
    if (!d)
        return NB_ERR_ARG;
    if (d->began)
        return NB_ERR_STATE;
    int want = on, all = 0;
    if (MPI_Allreduce(&want, &all, 1, MPI_INT, MPI_MIN, d->comm) !=
        MPI_SUCCESS)
        return NB_ERR_IO;
    /* The next step decides anew, on every rank alike. */
    d->ring_forced = !all;
    d->armed = false;
    d->shm = false;
    return NB_OK;
}

int nb_dist_get_stats(const nb_dist *d, nb_dist_stats *stats)
{
    if (!d || !stats)
        return NB_ERR_ARG;
    *stats = d->stats;
    return NB_OK;
}

void nb_dist_reset_stats(nb_dist *d)
{
    if (d)
        memset(&d->stats, 0, sizeof d->stats);
}

/* ---- broadcast ---- */

/* Calls fn on every tensor the broadcast carries, in a fixed order. */
static void each_tensor(nb_graph *g, nb_optimizer *opt,
                        void (*fn)(nb_tensor *t, void *user), void *user)
{
    int64_t nodes = nb_graph_node_count(g);
    for (int64_t i = 0; i < nodes; i++) {
        nb_node *n = nb_graph_node(g, i);
        nb_node_kind k = nb_node_get_kind(n);
        if (k == NB_NODE_PARAM || k == NB_NODE_STATE)
            fn(nb_node_value(n), user);
    }
    for (int i = 0; opt && i < nb_optimizer_state_count(opt); i++)
        fn(nb_optimizer_state(opt, i, NULL), user);
}

typedef struct tally {
    double tensors, bytes;
} tally;

static size_t tensor_bytes(const nb_tensor *t)
{
    return (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
}

static void count_one(nb_tensor *t, void *user)
{
    tally *c = user;
    c->tensors += 1;
    c->bytes += (double)tensor_bytes(t);
}

typedef struct cursor {
    unsigned char *at;
    bool write; /* pack into the buffer, else unpack from it */
} cursor;

static void move_one(nb_tensor *t, void *user)
{
    cursor *c = user;
    size_t n = tensor_bytes(t);
    if (c->write)
        memcpy(c->at, nb_tensor_cdata(t), n);
    else
        memcpy(nb_tensor_data(t), c->at, n);
    c->at += n;
}

/* The scalars after the tensors: RNG state, step count, learning rate. */
typedef struct scalars {
    uint64_t rng[4];
    int64_t steps;
    double lr;
} scalars;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

int nb_dist_broadcast(nb_dist *d, nb_graph *g, nb_optimizer *opt, int own)
{
    if (!d || !g)
        return NB_ERR_ARG;
    tally c = {0, 0};
    each_tensor(g, opt, count_one, &c);
    size_t total = (size_t)c.bytes + sizeof(scalars);
    if (own == NB_OK &&
        reserve((void **)&d->bytes, &d->bytes_cap, total) != NB_OK)
        own = nb_graph_set_error(g, NB_ERR_NOMEM, "%s: out of memory", who);
    int rc = agree_graph(d, g, own, 0, NULL, 0, NULL, NULL);
    if (rc != NB_OK)
        return rc;
    /* Models that differ are found before any byte moves: the largest and
     * (negated) smallest tally over ranks, whole numbers whose maximum does
     * not depend on the order MPI takes them in. */
    double sig[4] = {c.tensors, c.bytes, -c.tensors, -c.bytes}, all[4];
    int err = MPI_Allreduce(sig, all, 4, MPI_DOUBLE, MPI_MAX, d->comm);
    if (err != MPI_SUCCESS) {
        char m[MPI_MAX_ERROR_STRING + 1];
        mpi_message(err, m, sizeof m);
        return nb_graph_set_error(g, NB_ERR_IO, "%s: MPI_Allreduce failed: %s",
                                  who, m);
    }
    if (all[0] != -all[2] || all[1] != -all[3])
        return nb_graph_set_error(
            g, NB_ERR_ARG,
            "%s: the ranks' models differ: from %.0f to %.0f parameter, state "
            "and optimiser tensors, from %.0f to %.0f bytes; build the same "
            "model and optimiser on every rank",
            who, -all[2], all[0], -all[3], all[1]);
    cursor cur = {d->bytes, true};
    scalars s;
    if (d->rank == 0) {
        each_tensor(g, opt, move_one, &cur);
        nb_rng_get_state(g, s.rng);
        s.steps = opt ? nb_optimizer_steps(opt) : 0;
        s.lr = opt ? nb_optimizer_lr(opt) : 0;
        memcpy(cur.at, &s, sizeof s);
    }
    for (size_t lo = 0; lo < total; lo += (size_t)1 << 30) {
        size_t len = total - lo < (size_t)1 << 30 ? total - lo : (size_t)1 << 30;
        err = MPI_Bcast(d->bytes + lo, (int)len, MPI_BYTE, 0, d->comm);
        if (err != MPI_SUCCESS) {
            char m[MPI_MAX_ERROR_STRING + 1];
            mpi_message(err, m, sizeof m);
            return nb_graph_set_error(g, NB_ERR_IO,
                                      "%s: the broadcast failed: %s", who, m);
        }
    }
    if (d->rank != 0) {
        cur.write = false;
        each_tensor(g, opt, move_one, &cur);
        memcpy(&s, cur.at, sizeof s);
        if (opt) {
            nb_optimizer_set_steps(opt, s.steps);
            nb_optimizer_set_lr(opt, s.lr);
        }
        /* A stream of its own for dropout and the like; rank 0's stays
         * that of one process, which draws the shared shuffle. */
        nb_graph_seed(g, mix64(s.rng[0] ^ mix64(s.rng[1] + (uint64_t)d->rank)));
    }
    return NB_OK;
}

/* ---- the hooks for nb_train ---- */

static int hook_start(void *ctx, nb_graph *g, nb_optimizer *opt, int status)
{
    return nb_dist_broadcast(ctx, g, opt, status);
}

static int hook_epoch(void *ctx, nb_graph *g, int64_t *order, int64_t n)
{
    nb_dist *d = ctx;
    for (int64_t lo = 0; lo < n; lo += INT_MAX / 8) {
        int64_t len = n - lo < INT_MAX / 8 ? n - lo : INT_MAX / 8;
        int err = MPI_Bcast(order + lo, (int)len, MPI_INT64_T, 0, d->comm);
        if (err != MPI_SUCCESS) {
            char m[MPI_MAX_ERROR_STRING + 1];
            mpi_message(err, m, sizeof m);
            return nb_graph_set_error(
                g, NB_ERR_IO, "%s: the shuffle's broadcast failed: %s", who, m);
        }
    }
    return NB_OK;
}

static int hook_reduce(void *ctx, nb_graph *g, nb_optimizer *opt,
                       double weight, int status, double *sums, int n)
{
    return opt ? grads_finish(ctx, g, opt, weight, status, sums, n)
               : agree_graph(ctx, g, status, 0, sums, n, NULL, NULL);
}

static int hook_begin(void *ctx, nb_graph *g, nb_optimizer *opt,
                      double weight)
{
    (void)g;
    return nb_dist_begin_grads(ctx, opt, weight);
}

/* ---- the context ---- */

/* Whether the environment asks for the shared-memory window
 * (NABLA_DIST_REDUCE=window). The ring is the default: on the 2-core
 * machines this was measured on, packing into a segment the other rank
 * reads every step cost more in backward than the window saved in the
 * reduction (docs/distributed.md). */
static bool window_env(void)
{
    const char *env = getenv("NABLA_DIST_REDUCE");
    return env && strcmp(env, "window") == 0;
}

/* Collective: comm as a shared-memory communicator (the same ranks in the
 * same order) when every rank of it shares one node; MPI_COMM_NULL when
 * the ranks span nodes, there is one rank, or MPI cannot tell. */
static MPI_Comm node_comm(MPI_Comm comm, int rank, int size)
{
    MPI_Comm node = MPI_COMM_NULL;
    if (size < 2)
        return node;
    int n = 0;
    int ok = MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank,
                                 MPI_INFO_NULL, &node) == MPI_SUCCESS &&
             node != MPI_COMM_NULL && MPI_Comm_size(node, &n) == MPI_SUCCESS &&
             n == size;
    int all = 0;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        all = 0;
    if (!all && node != MPI_COMM_NULL)
        MPI_Comm_free(&node);
    if (node != MPI_COMM_NULL)
        MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN);
    return node;
}

nb_dist *nb_dist_new(MPI_Comm comm, size_t bucket_bytes, nb_status *status)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized) {
        nb_status_set(status, NB_ERR_STATE,
                      "%s: MPI is not initialised (call MPI_Init first)",
                      who);
        return NULL;
    }
    MPI_Comm dup;
    int err = MPI_Comm_dup(comm, &dup);
    if (err != MPI_SUCCESS) {
        char m[MPI_MAX_ERROR_STRING + 1];
        mpi_message(err, m, sizeof m);
        nb_status_set(status, NB_ERR_IO, "%s: MPI_Comm_dup failed: %s", who,
                      m);
        return NULL;
    }
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    nb_dist *d = nb_alloc_zeroed(sizeof *d);
    int size = 0;
    MPI_Comm_size(dup, &size);
    double *small =
        nb_alloc_zeroed((4 * (size_t)size + SMALL_SUMS) * sizeof *small);
    unsigned char **seg = nb_alloc_zeroed((size_t)size * sizeof *seg);
    /* Whether every rank got its memory is itself agreed on, with MPI's
     * own reduction: a count of 0 or 1 sums exactly in any order. So is
     * whether the window is wanted, which every rank must know alike. */
    int ok[2] = {d && small && seg, window_env()}, all[2] = {0, 0};
    if (ok[0] && reserve(&d->tmp, &d->tmp_cap,
                         ((size_t)SMALL_SUMS / (size_t)size + 5) *
                             sizeof(double)))
        ok[0] = 0;
    MPI_Comm gdup = MPI_COMM_NULL;
    if (ok[0] && MPI_Comm_dup(dup, &gdup) != MPI_SUCCESS)
        ok[0] = 0;
    err = MPI_Allreduce(ok, all, 2, MPI_INT, MPI_MIN, dup);
    if (err != MPI_SUCCESS || !all[0]) {
        if (d)
            nb_free(d->tmp);
        nb_free(seg);
        nb_free(small);
        nb_free(d);
        if (gdup != MPI_COMM_NULL)
            MPI_Comm_free(&gdup);
        MPI_Comm_free(&dup);
        nb_status_set(status, err != MPI_SUCCESS ? NB_ERR_IO : NB_ERR_NOMEM,
                      "%s: %s", who,
                      err != MPI_SUCCESS ? "MPI_Allreduce failed"
                                         : "out of memory on some rank");
        return NULL;
    }
    MPI_Comm_set_errhandler(gdup, MPI_ERRORS_RETURN);
    int *tag_ub = NULL, flag = 0;
    MPI_Comm_get_attr(gdup, MPI_TAG_UB, &tag_ub, &flag);
    d->max_tag = flag && tag_ub ? *tag_ub : 32767;
    d->comm = dup;
    d->gcomm = gdup;
    d->overlap = true;
    d->size = size;
    MPI_Comm_rank(dup, &d->rank);
    d->small = small;
    d->seg = seg;
    d->win = MPI_WIN_NULL;
    d->ring_forced = !all[1];
    d->ncomm = node_comm(dup, d->rank, size);
    d->bucket_bytes = bucket_bytes ? bucket_bytes : NB_DIST_BUCKET_BYTES;
    d->hooks = (nb_train_dist){.rank = d->rank,
                               .size = d->size,
                               .ctx = d,
                               .start = hook_start,
                               .epoch = hook_epoch,
                               .reduce = hook_reduce,
                               .begin = hook_begin};
    return d;
}

void nb_dist_free(nb_dist *d)
{
    if (!d)
        return;
    shm_detach(d);
    if (d->ncomm != MPI_COMM_NULL)
        MPI_Comm_free(&d->ncomm);
    MPI_Comm_free(&d->gcomm);
    MPI_Comm_free(&d->comm);
    nb_free(d->seg);
    nb_free(d->small);
    nb_free(d->plan_mem);
    nb_free(d->gtmp);
    nb_free(d->pack[0]);
    nb_free(d->pack[1]);
    nb_free(d->tmp);
    nb_free(d->bytes);
    nb_free(d);
}

int nb_dist_rank(const nb_dist *d)
{
    return d ? d->rank : -1;
}

int nb_dist_size(const nb_dist *d)
{
    return d ? d->size : 0;
}

const nb_train_dist *nb_dist_train(nb_dist *d)
{
    return d ? &d->hooks : NULL;
}
