/* Data-parallel training over MPI, on the public API only.
 *
 * The reduction. MPI_Allreduce with MPI_SUM leaves the order of the
 * additions to the implementation, which picks an algorithm by message
 * size, rank count and transport (and may change it between versions), so
 * the bits it returns are not promised to be the same from run to run or
 * from rank to rank. Here every sum is a ring written with MPI_Sendrecv to
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
 * Buckets. The gradients of the optimiser's parameters are packed, in
 * parameter order, into one buffer per dtype (scaled by the rank's weight
 * on the way), and each buffer is reduced in buckets of at most
 * bucket_bytes. nabla's backward is one call with no per-node callback in
 * the public API, so a bucket cannot be started while backward is still
 * running: the buckets are reduced one after the other once it returns.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nabla/dist.h"

static const char who[] = "dist";

/* Slots of the small agreement vector kept allocated for the hooks, after
 * one per rank. */
enum { SMALL_SUMS = 8 };

struct nb_dist {
    MPI_Comm comm;
    int rank, size;
    size_t bucket_bytes;
    nb_train_dist hooks;
    double *small; /* size + SMALL_SUMS */
    void *pack[2]; /* packed gradients by dtype, with their capacities */
    size_t pack_cap[2];
    void *tmp; /* one received chunk */
    size_t tmp_cap;
    unsigned char *bytes; /* broadcast staging */
    size_t bytes_cap;
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

/* In-place sum over ranks of buf[0..count) of `type` (MPI_FLOAT or
 * MPI_DOUBLE, esize bytes each). Returns MPI_SUCCESS or an MPI code
 * (NB_ERR_NOMEM when the chunk buffer cannot be had). */
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
    for (int s = 0; s < R - 1; s++) {
        int sc = (r - s + 2 * R) % R, rc = (r - s - 1 + 2 * R) % R;
        int64_t slo = chunk_lo(count, R, sc), rlo = chunk_lo(count, R, rc);
        int slen = (int)(chunk_lo(count, R, sc + 1) - slo);
        int rlen = (int)(chunk_lo(count, R, rc + 1) - rlo);
        int err = MPI_Sendrecv(b + (size_t)slo * esize, slen, type, right, 1,
                               d->tmp, rlen, type, left, 1, d->comm,
                               MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS)
            return err;
        if (esize == sizeof(float)) {
            float *dst = (float *)(void *)(b + (size_t)rlo * esize);
            const float *src = d->tmp;
            for (int i = 0; i < rlen; i++)
                dst[i] += src[i];
        } else {
            double *dst = (double *)(void *)(b + (size_t)rlo * esize);
            const double *src = d->tmp;
            for (int i = 0; i < rlen; i++)
                dst[i] += src[i];
        }
    }
    /* Rank r now holds chunk r + 1 complete. */
    for (int s = 0; s < R - 1; s++) {
        int sc = (r + 1 - s + 2 * R) % R, rc = (r - s + 2 * R) % R;
        int64_t slo = chunk_lo(count, R, sc), rlo = chunk_lo(count, R, rc);
        int slen = (int)(chunk_lo(count, R, sc + 1) - slo);
        int rlen = (int)(chunk_lo(count, R, rc + 1) - rlo);
        int err = MPI_Sendrecv(b + (size_t)slo * esize, slen, type, right, 2,
                               b + (size_t)rlo * esize, rlen, type, left, 2,
                               d->comm, MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS)
            return err;
    }
    return MPI_SUCCESS;
}

/* ---- agreement ---- */

/* The ring sum of the statuses and sums[0..n). Returns NB_OK when every
 * rank passed NB_OK; otherwise the own code, or the first failing rank's
 * code, with a message in msg. On a rank's failure sums is unchanged. */
static int agree_sum(nb_dist *d, int own, double *sums, int n, char *msg,
                     size_t msglen)
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
    memset(v, 0, (size_t)R * sizeof *v);
    v[d->rank] = own < 0 ? (double)own : 0;
    if (m)
        memcpy(v + R, sums, (size_t)m * sizeof *v);
    int err = ring_sum(d, v, R + m, MPI_DOUBLE, sizeof(double));
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
    if (err == MPI_SUCCESS && rc == NB_OK) {
        if (m)
            memcpy(sums, v + R, (size_t)m * sizeof *v);
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
static int agree_graph(nb_dist *d, nb_graph *g, int own, double *sums, int n)
{
    char msg[256];
    int rc = agree_sum(d, own, sums, n, msg, sizeof msg);
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
    int rc = agree_sum(d, own, n > 0 && v ? v : NULL, n > 0 && v ? n : 0, msg,
                       sizeof msg);
    if (rc != NB_OK)
        return nb_status_set(status, rc, "%s", msg);
    return NB_OK;
}

/* ---- gradients ---- */

static int dtype_index(nb_dtype t)
{
    return t == NB_F64;
}

/* Reserves what grads_reduce needs, so that it cannot fail on one rank for
 * want of memory once the others are in the ring. */
static int grads_reserve(nb_dist *d, nb_optimizer *opt)
{
    size_t elems[2] = {0, 0};
    for (int i = 0; i < nb_optimizer_param_count(opt); i++) {
        nb_tensor *v = nb_node_value(nb_optimizer_param(opt, i));
        elems[dtype_index(nb_tensor_dtype(v))] += (size_t)nb_tensor_size(v);
    }
    for (int t = 0; t < 2; t++) {
        size_t es = t ? sizeof(double) : sizeof(float);
        size_t per = d->bucket_bytes / es;
        size_t count = elems[t] < per ? elems[t] : per;
        if (reserve(&d->pack[t], &d->pack_cap[t], elems[t] * es) ||
            reserve(&d->tmp, &d->tmp_cap, (count / (size_t)d->size + 1) * es))
            return NB_ERR_NOMEM;
    }
    return NB_OK;
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

static int grads_reduce(nb_dist *d, nb_graph *g, nb_optimizer *opt,
                        double weight)
{
    int np = nb_optimizer_param_count(opt);
    if (d->size == 1) {
        /* Nothing to add: the weighted gradient in place, as packing and
         * unpacking would leave it. */
        for (int i = 0; weight != 1 && i < np; i++) {
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
        return NB_OK;
    }
    size_t elems[2] = {0, 0};
    for (int i = 0; i < np; i++) {
        nb_tensor *v = nb_node_value(nb_optimizer_param(opt, i));
        elems[dtype_index(nb_tensor_dtype(v))] += (size_t)nb_tensor_size(v);
    }
    for (int t = 0; t < 2; t++) {
        if (elems[t] == 0)
            continue;
        size_t es = t ? sizeof(double) : sizeof(float);
        if (reserve(&d->pack[t], &d->pack_cap[t], elems[t] * es))
            return NB_ERR_NOMEM;
        size_t at = 0;
        int64_t n;
        nb_tensor *gr;
        for (int i = 0; i < np; i++) {
            if (!param_in(opt, i, t, &n, &gr))
                continue;
            bool has = gr != NULL;
            if (t) {
                double *dst = (double *)d->pack[t] + at;
                const double *src = has ? nb_tensor_f64(gr) : NULL;
                for (int64_t k = 0; k < n; k++)
                    dst[k] = src ? src[k] * weight : 0;
            } else {
                float *dst = (float *)d->pack[t] + at;
                const float *src = has ? nb_tensor_f32(gr) : NULL;
                for (int64_t k = 0; k < n; k++)
                    dst[k] = src ? (float)((double)src[k] * weight) : 0;
            }
            at += (size_t)n;
        }
        size_t per = d->bucket_bytes / es;
        if (per > (size_t)INT_MAX)
            per = (size_t)INT_MAX;
        if (per < 1)
            per = 1;
        unsigned char *base = d->pack[t];
        for (size_t lo = 0; lo < elems[t]; lo += per) {
            size_t len = elems[t] - lo < per ? elems[t] - lo : per;
            int err = ring_sum(d, base + lo * es, (int64_t)len,
                               t ? MPI_DOUBLE : MPI_FLOAT, es);
            if (err != MPI_SUCCESS) {
                char s[MPI_MAX_ERROR_STRING + 1];
                if (err == NB_ERR_NOMEM)
                    return nb_graph_set_error(g, NB_ERR_NOMEM,
                                              "%s: out of memory", who);
                mpi_message(err, s, sizeof s);
                return nb_graph_set_error(
                    g, NB_ERR_IO, "%s: the gradient sum failed: %s", who, s);
            }
        }
        at = 0;
        for (int i = 0; i < np; i++) {
            if (!param_in(opt, i, t, &n, &gr))
                continue;
            if (gr)
                memcpy(nb_tensor_data(gr), base + at * es, (size_t)n * es);
            at += (size_t)n;
        }
    }
    return NB_OK;
}

/* Packing needs memory that a rank may not get: reserved and agreed on
 * before the first bucket, so that no rank is left in a ring the others
 * skip. */
static int reduce_with_grads(nb_dist *d, nb_graph *g, nb_optimizer *opt,
                             double weight, int own, double *sums, int n)
{
    if (own == NB_OK && grads_reserve(d, opt) != NB_OK)
        own = nb_graph_set_error(g, NB_ERR_NOMEM, "%s: out of memory", who);
    int rc = agree_graph(d, g, own, sums, n);
    return rc ? rc : grads_reduce(d, g, opt, weight);
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
    return reduce_with_grads(d, g, opt, weight, own, NULL, 0);
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
    int rc = agree_graph(d, g, own, NULL, 0);
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
    return opt ? reduce_with_grads(ctx, g, opt, weight, status, sums, n)
               : agree_graph(ctx, g, status, sums, n);
}

/* ---- the context ---- */

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
        nb_alloc_zeroed(((size_t)size + SMALL_SUMS) * sizeof *small);
    /* Whether every rank got its memory is itself agreed on, with MPI's
     * own reduction: a count of 0 or 1 sums exactly in any order. */
    int ok = d && small, all = 0;
    if (ok && reserve(&d->tmp, &d->tmp_cap,
                      ((size_t)SMALL_SUMS / (size_t)size + 2) * sizeof(double)))
        ok = 0;
    err = MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, dup);
    if (err != MPI_SUCCESS || !all) {
        if (d)
            nb_free(d->tmp);
        nb_free(small);
        nb_free(d);
        MPI_Comm_free(&dup);
        nb_status_set(status, err != MPI_SUCCESS ? NB_ERR_IO : NB_ERR_NOMEM,
                      "%s: %s", who,
                      err != MPI_SUCCESS ? "MPI_Allreduce failed"
                                         : "out of memory on some rank");
        return NULL;
    }
    d->comm = dup;
    d->size = size;
    MPI_Comm_rank(dup, &d->rank);
    d->small = small;
    d->bucket_bytes = bucket_bytes ? bucket_bytes : NB_DIST_BUCKET_BYTES;
    d->hooks = (nb_train_dist){.rank = d->rank,
                               .size = d->size,
                               .ctx = d,
                               .start = hook_start,
                               .epoch = hook_epoch,
                               .reduce = hook_reduce};
    return d;
}

void nb_dist_free(nb_dist *d)
{
    if (!d)
        return;
    MPI_Comm_free(&d->comm);
    nb_free(d->small);
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
