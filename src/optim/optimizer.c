/* Optimisers (SGD, momentum, Nesterov, RMSprop, Adam, AdamW) and clipping
 * by global gradient norm, on the public API only.
 *
 * A step, per element, with dL/dw the latest backward's gradient:
 *   c = clip_norm / ||dL/dw||_2 when clipping is on and the norm exceeds
 *       it, else 1; the norm runs over every trainable parameter of the
 *       optimiser that has a gradient
 *   g = c dL/dw + weight_decay w + l1 sign(w)   (weights only, see below)
 *   then the rule of the kind (include/nabla/optim.h, update_impl.h), e.g.
 *   Adam: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
 *         w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *   AdamW drops weight_decay from g and multiplies w by 1 - lr weight_decay.
 *
 * Everything a step needs is allocated by nb_optimizer_new; a step only
 * validates (gathering what the loops need into opt->items), takes the
 * norm (one pass over the gradients) and runs one fused loop per
 * parameter. The norm doubles as the test for NaN and infinity: a
 * non-finite gradient makes it non-finite, and the step is refused before
 * anything is written. (A separate all-finite test measured no faster than
 * the vectorised norm, both being bound by reading the gradients, and the
 * norm is reported by nb_optimizer_grad_norm with or without clipping.)
 * Large steps split both passes across OpenMP threads, with results
 * bitwise equal to one thread's (see "passes over many tensors").
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "nabla/graph.h"
#include "nabla/optim.h"
#include "nabla/parallel.h"
#include "nabla/tensor.h"

/* The hyper-parameters of one step for one parameter, in double. */
struct hyper {
    double cs;     /* clipping factor */
    double l2, l1; /* 0 for parameters that are not regularised */
    double lr;
    double mu;             /* momentum */
    bool nesterov;         /* step = g + mu v rather than v */
    double rho, crho;      /* RMSprop: rho and 1 - rho */
    double b1, c1, b2, c2; /* Adam: beta and 1 - beta */
    double a, ic2;         /* Adam: lr / (1 - b1^t), 1 / sqrt(1 - b2^t) */
    double eps;
    double decay; /* AdamW: 1 - lr weight_decay; otherwise 1 */
};

/* The form of g = cs dw + l2 w + l1 sign(w) a loop computes: dw alone
 * (cs = 1, no regularisation), cs dw, with L2, with L1 and L2. */
enum { REG_RAW, REG_SCALED, REG_L2, REG_L1L2 };

/* Runs `call` with REG a compile-time constant matching h's terms, so each
 * always-inlined loop body is compiled once per form. */
#define OPT_REG_CASES(h, call)                                                 \
    do {                                                                       \
        if ((h)->l1 != 0) {                                                    \
            enum { REG = REG_L1L2 };                                           \
            call;                                                              \
        } else if ((h)->l2 != 0) {                                             \
            enum { REG = REG_L2 };                                             \
            call;                                                              \
        } else if ((h)->cs != 1) {                                             \
            enum { REG = REG_SCALED };                                         \
            call;                                                              \
        } else {                                                               \
            enum { REG = REG_RAW };                                            \
            call;                                                              \
        }                                                                      \
    } while (0)

#if defined(__GNUC__)
#define OPT_INLINE inline __attribute__((always_inline))
#else
#define OPT_INLINE inline
#endif

/* The loops are built for the baseline x86-64 (SSE2) unless the whole
 * library is built for a newer CPU; GCC and Clang can add AVX2 and AVX-512
 * copies chosen when the library loads (an ifunc, hence glibc only). On
 * this workload they are memory-bound only from AVX2 on: the momentum step
 * plus the norm of a 235k-element MLP took 58 us with SSE2 and 42 us with
 * AVX2 or AVX-512 on one Zen 4 core. Every copy does the same operations
 * in the same order (C11 mode forbids contracting a * b + c into an FMA),
 * so they give the same bits. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute) &&   \
    !defined(__AVX512F__) && !defined(NB_OPTIM_NO_CLONES)
#if __has_attribute(target_clones)
#define OPT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef OPT_CLONES
#define OPT_CLONES
#endif

#define REAL float
#define SFX f32
#define SQRT sqrtf
#include "update_impl.h"
#undef REAL
#undef SFX
#undef SQRT

#define REAL double
#define SFX f64
#define SQRT sqrt
#include "update_impl.h"
#undef REAL
#undef SFX
#undef SQRT

/* One parameter's part in a step, gathered by check_step so that the
 * passes need no lookups: its arrays, its size and its place in the
 * concatenation of the step's tensors. */
struct item {
    void *w, *dw;
    void *s0, *s1; /* the state arrays the rule uses, else NULL */
    int64_t n, off;
    bool f32;
    bool reg; /* a weight (regularised) rather than a bias */
};

struct nb_optimizer {
    nb_graph *g;
    nb_optim_config cfg; /* defaults resolved; cfg.lr is the current rate */
    int64_t steps;
    double grad_norm;
    int n_params;
    int per_param; /* state tensors per parameter: 0, 1 or 2 */
    nb_node **params;
    nb_tensor **state;  /* n_params * per_param, parameter-major */
    char **names;       /* the state tensors' names */
    struct item *items; /* n_params entries, filled by each step */
};

static const char *kind_name(nb_optim_kind kind)
{
    switch (kind) {
    case NB_OPTIM_SGD:
        return "SGD";
    case NB_OPTIM_RMSPROP:
        return "RMSprop";
    case NB_OPTIM_ADAM:
        return "Adam";
    case NB_OPTIM_ADAMW:
        return "AdamW";
    }
    return "?";
}

static const char *node_kind_name(const nb_node *n)
{
    switch (nb_node_get_kind(n)) {
    case NB_NODE_INPUT:
        return "an input";
    case NB_NODE_PARAM:
        return "a parameter";
    case NB_NODE_CONSTANT:
        return "a constant";
    case NB_NODE_STATE:
        return "a state tensor (never trained)";
    case NB_NODE_OP:
        return "an op node";
    }
    return "?";
}

/* ---- parameter lists ---- */

/* Either an explicit list or, when params is NULL, the graph's nodes
 * 0..n-1 of which only the parameters count. Walking the graph in place
 * lets nb_clip_grad_norm cover "every parameter" without allocating. */
struct plist {
    nb_graph *g;
    nb_node *const *params;
    int64_t n;
};

static struct plist plist_make(nb_graph *g, int n, nb_node *const *params)
{
    struct plist l = {g, params, n};
    if (n == 0) {
        l.params = NULL;
        l.n = nb_graph_node_count(g);
    }
    return l;
}

static nb_node *plist_get(const struct plist *l, int64_t i)
{
    if (l->params)
        return l->params[i];
    nb_node *x = nb_graph_node(l->g, i);
    return x && nb_node_get_kind(x) == NB_NODE_PARAM ? x : NULL;
}

/* The gradient a step uses: none for frozen parameters, none when the
 * latest backward gave the parameter none. */
static nb_tensor *active_grad(nb_node *p)
{
    if (!p || !nb_node_is_trainable(p))
        return NULL;
    return nb_node_grad(p);
}

static int check_param_list(nb_graph *g, const char *fn, int n,
                            nb_node *const *params)
{
    if (n < 0)
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: n must be >= 0 (got %d)",
                                  fn, n);
    if (n > 0 && !params)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "%s: params is NULL with n = %d", fn, n);
    for (int i = 0; i < n; i++) {
        nb_node *p = params[i];
        if (!p)
            return nb_graph_set_error(g, NB_ERR_ARG, "%s: params[%d] is NULL",
                                      fn, i);
        if (nb_node_graph(p) != g)
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "%s: params[%d] ('%s') belongs to "
                                      "another graph",
                                      fn, i, nb_node_name(p));
        if (nb_node_get_kind(p) != NB_NODE_PARAM)
            return nb_graph_set_error(g, NB_ERR_ARG,
                                      "%s: params[%d] ('%s') is not a "
                                      "parameter but %s",
                                      fn, i, nb_node_name(p),
                                      node_kind_name(p));
        /* A parameter listed twice would be updated (or scaled) twice. */
        for (int j = 0; j < i; j++)
            if (params[j] == p)
                return nb_graph_set_error(g, NB_ERR_ARG,
                                          "%s: params[%d] and params[%d] "
                                          "are the same parameter ('%s')",
                                          fn, j, i, nb_node_name(p));
    }
    return NB_OK;
}

/* ---- passes over many tensors ---- */

/* A pass (the norm, the updates, the scaling) runs over the concatenation
 * of its tensors, `total` elements, cut into NSLOT slots whose bounds
 * depend on total alone. A thread takes a run of whole slots. The norm sums
 * each slot on its own, one tensor piece after another, and then the slots
 * in order, so it comes out the same for any number of threads; the other
 * passes are elementwise and split anywhere. Slot bounds are multiples of
 * SLOT_ALIGN elements (whole cache lines when a tensor starts on one). */
#define NSLOT 64
#define SLOT_ALIGN 64

/* Elements per thread below which a second thread does not pay, for the
 * step of each rule (the norm and the update together) and for the norm
 * alone. A parallel region with its barrier costs about 3 us on the 2-core
 * Zen 4 this was tuned on, and two threads save half the one-thread time,
 * measured there at about 0.24 ns per element for a momentum step (norm
 * included) and 0.045 ns for the norm alone: the break-even is near 25k
 * and 130k elements in all. The shares put the switch at 2.5 times that
 * for the steps, so that a stray slow wake-up is paid for, and at the
 * break-even for the bare norm. In the MLP benchmark (235k parameters, 2
 * threads) the momentum step went from 86-95 us to 43-47 us.
 * RMSprop and Adam stay on one thread: threaded, Adam's own step in that
 * benchmark fell from 139 to 78 us, but the forward and backward passes
 * that followed slowed by more (the whole step: 559 us on one thread for
 * the optimiser, 610 us threaded), so they are off until a machine shows
 * otherwise. */
#define SHARE_STEP_SGD 32768
#define SHARE_STEP_MOMENTUM 32768
#define SHARE_STEP_RMSPROP INT64_MAX
#define SHARE_STEP_ADAM INT64_MAX
#define SHARE_NORM 65536

static int64_t slot_bound(int64_t total, int k)
{
    if (k >= NSLOT)
        return total;
    int64_t b = total / NSLOT * k + total % NSLOT * k / NSLOT;
    return b / SLOT_ALIGN * SLOT_ALIGN;
}

#ifdef _OPENMP
/* How many threads a pass over `total` elements should use, each getting
 * at least `share`: 1 when the pass is small, else what nabla's thread
 * policy allows now (nb_parallel_threads: 1 inside a parallel region or
 * while backing off from a busy machine; every region of more than one
 * thread reports its times with nb_parallel_report). */
static int team_size(int64_t total, int64_t share)
{
    if (total / 2 < share)
        return 1;
    int64_t p = nb_parallel_threads();
    if (p > total / share)
        p = total / share;
    if (p > NSLOT)
        p = NSLOT;
    return p < 1 ? 1 : (int)p;
}
#endif

/* One gradient a pass reads. */
struct span {
    void *p;
    int64_t n;
    bool f32;
};

/* The gradients of a pass: the items of a step, or a parameter list walked
 * in place (its inactive entries skipped). */
struct glist {
    const struct item *items;
    const struct plist *pl;
    int64_t n;
};

static bool glist_span(const struct glist *l, int64_t i, struct span *sp)
{
    if (l->items) {
        sp->p = l->items[i].dw;
        sp->n = l->items[i].n;
        sp->f32 = l->items[i].f32;
        return true;
    }
    nb_tensor *dw = active_grad(plist_get(l->pl, i));
    if (!dw)
        return false;
    sp->p = nb_tensor_data(dw);
    sp->n = nb_tensor_size(dw);
    sp->f32 = nb_tensor_dtype(dw) == NB_F32;
    return true;
}

static int64_t glist_total(const struct glist *l)
{
    int64_t total = 0;
    struct span sp;
    for (int64_t i = 0; i < l->n; i++)
        if (glist_span(l, i, &sp))
            total += sp.n;
    return total;
}

static double span_sum_squares(const struct span *sp, int64_t a, int64_t n)
{
    if (sp->f32)
        return sum_squares_f32(n, (const float *)sp->p + a);
    return sum_squares_f64(n, (const double *)sp->p + a);
}

/* part[k] = the sum of squares of slot k, for slots s0..s1-1. One walk of
 * the list, moving through the slots alongside (a list may be every node
 * of a large graph). */
static void norm_slots(const struct glist *l, int64_t total, int s0, int s1,
                       double *part)
{
    for (int k = s0; k < s1; k++)
        part[k] = 0;
    if (total < SLOT_ALIGN) {
        /* Every bound but the last is 0, so the last slot holds it all:
         * the same sums in the same order, without walking 64 slots (a
         * tiny net's step is a microsecond). */
        struct span sp;
        for (int64_t i = 0; i < l->n && s1 == NSLOT; i++)
            if (glist_span(l, i, &sp))
                part[NSLOT - 1] += span_sum_squares(&sp, 0, sp.n);
        return;
    }
    int64_t lo = slot_bound(total, s0), hi = slot_bound(total, s1), off = 0;
    int k = s0;
    struct span sp;
    for (int64_t i = 0; i < l->n && off < hi; i++) {
        if (!glist_span(l, i, &sp))
            continue;
        int64_t a = off > lo ? off : lo;
        int64_t end = off + sp.n < hi ? off + sp.n : hi;
        while (a < end) {
            while (slot_bound(total, k + 1) <= a)
                k++;
            int64_t b = slot_bound(total, k + 1);
            b = b < end ? b : end;
            part[k] += span_sum_squares(&sp, a - off, b - a);
            a = b;
        }
        off += sp.n;
    }
}

/* ||dL/dw||_2 from the slot sums: NaN if a gradient holds a NaN, infinity
 * if one holds an infinity. Squares of finite values can overflow (|g| >
 * 1e154 in f64, 1.8e19 in the float lanes of f32), so that rare case is
 * redone, on one thread, scaled by the largest magnitude. */
static double finish_norm(const struct glist *l, const double *part)
{
    double s = 0;
    for (int k = 0; k < NSLOT; k++)
        s += part[k];
    if (!isinf(s))
        return sqrt(s);
    double mx = 0;
    struct span sp;
    for (int64_t i = 0; i < l->n; i++)
        if (glist_span(l, i, &sp)) {
            double m =
                sp.f32 ? max_abs_f32(sp.n, sp.p) : max_abs_f64(sp.n, sp.p);
            mx = m > mx ? m : mx;
        }
    if (!isfinite(mx))
        return mx;
    double r = 0;
    for (int64_t i = 0; i < l->n; i++)
        if (glist_span(l, i, &sp))
            r += sp.f32 ? sum_squares_scaled_f32(sp.n, sp.p, 1.0 / mx)
                        : sum_squares_scaled_f64(sp.n, sp.p, 1.0 / mx);
    return mx * sqrt(r);
}

static double global_norm(const struct glist *l, int64_t total)
{
    double part[NSLOT];
#ifdef _OPENMP
    int p = team_size(total, SHARE_NORM);
    if (p > 1) {
        double start = omp_get_wtime(), own = start;
#pragma omp parallel num_threads(p)
        {
            int t = omp_get_thread_num(), q = omp_get_num_threads();
            norm_slots(l, total, NSLOT * t / q, NSLOT * (t + 1) / q, part);
            if (t == 0)
                own = omp_get_wtime();
        }
        nb_parallel_report(own - start, omp_get_wtime() - own);
        return finish_norm(l, part);
    }
#endif
    norm_slots(l, total, 0, NSLOT, part);
    return finish_norm(l, part);
}

/* Multiplies the gradients' elements [lo, hi) of the concatenation by c. */
static void scale_range(const struct glist *l, int64_t lo, int64_t hi, double c)
{
    int64_t off = 0;
    struct span sp;
    for (int64_t i = 0; i < l->n && off < hi; i++) {
        if (!glist_span(l, i, &sp))
            continue;
        int64_t a = off > lo ? off : lo;
        int64_t b = off + sp.n < hi ? off + sp.n : hi;
        if (a < b) {
            if (sp.f32)
                scale_f32(b - a, (float *)sp.p + (a - off), c);
            else
                scale_f64(b - a, (double *)sp.p + (a - off), c);
        }
        off += sp.n;
    }
}

double nb_clip_grad_norm(nb_graph *g, int n, nb_node *const *params,
                         double max_norm)
{
    if (!g)
        return NB_ERR_ARG;
    if (!(max_norm > 0))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "clip_grad_norm: max_norm must be > 0 "
                                  "(got %g)",
                                  max_norm);
    int rc = check_param_list(g, "clip_grad_norm", n, params);
    if (rc != NB_OK)
        return rc;
    struct plist pl = plist_make(g, n, params);
    struct glist l = {NULL, &pl, pl.n};
    int64_t total = glist_total(&l);
    double norm = global_norm(&l, total);
    if (!isfinite(norm))
        return nb_graph_set_error(g, NB_ERR_NONFINITE,
                                  "clip_grad_norm: the gradient norm is %g "
                                  "(a gradient holds NaN or infinity); "
                                  "nothing was scaled",
                                  norm);
    if (norm > max_norm) {
        double c = max_norm / norm;
#ifdef _OPENMP
        int p = team_size(total, SHARE_STEP_SGD);
        if (p > 1) {
            double start = omp_get_wtime(), own = start;
#pragma omp parallel num_threads(p)
            {
                int t = omp_get_thread_num(), q = omp_get_num_threads();
                scale_range(&l, slot_bound(total, NSLOT * t / q),
                            slot_bound(total, NSLOT * (t + 1) / q), c);
                if (t == 0)
                    own = omp_get_wtime();
            }
            nb_parallel_report(own - start, omp_get_wtime() - own);
        } else
#endif
            scale_range(&l, 0, total, c);
    }
    return norm;
}

/* ---- configuration ---- */

#define FN_NEW "optimizer_new"

static int check_finite(nb_graph *g, const char *field, double v)
{
    if (isnan(v))
        return nb_graph_set_error(g, NB_ERR_ARG, FN_NEW ": %s is NaN", field);
    if (isinf(v))
        return nb_graph_set_error(g, NB_ERR_ARG, FN_NEW ": %s is infinite",
                                  field);
    return NB_OK;
}

static int check_unused(nb_graph *g, nb_optim_kind kind, const char *field,
                        bool set, const char *hint)
{
    if (!set)
        return NB_OK;
    return nb_graph_set_error(g, NB_ERR_ARG,
                              FN_NEW ": %s is not used by %s; leave it 0%s",
                              field, kind_name(kind), hint);
}

static int check_unit(nb_graph *g, const char *field, double v)
{
    if (v < 0 || v >= 1)
        return nb_graph_set_error(
            g, NB_ERR_ARG, FN_NEW ": %s must be in [0, 1) (got %g)", field, v);
    return NB_OK;
}

static int check_nonneg(nb_graph *g, const char *field, double v)
{
    if (v < 0)
        return nb_graph_set_error(
            g, NB_ERR_ARG, FN_NEW ": %s must be >= 0 (got %g)", field, v);
    return NB_OK;
}

/* Validates c and writes it with the defaults filled in to out. */
static int resolve_config(nb_graph *g, const nb_optim_config *c,
                          nb_optim_config *out)
{
    if (c->kind != NB_OPTIM_SGD && c->kind != NB_OPTIM_RMSPROP &&
        c->kind != NB_OPTIM_ADAM && c->kind != NB_OPTIM_ADAMW)
        return nb_graph_set_error(
            g, NB_ERR_ARG, FN_NEW ": unknown optimiser kind %d", (int)c->kind);
    const struct {
        const char *name;
        double v;
    } fields[] = {
        {"lr", c->lr},
        {"momentum", c->momentum},
        {"beta1", c->beta1},
        {"beta2", c->beta2},
        {"rho", c->rho},
        {"eps", c->eps},
        {"weight_decay", c->weight_decay},
        {"l1", c->l1},
        {"clip_norm", c->clip_norm},
    };
    int rc;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if ((rc = check_finite(g, fields[i].name, fields[i].v)) != NB_OK)
            return rc;

    nb_optim_kind k = c->kind;
    bool sgd = k == NB_OPTIM_SGD, rms = k == NB_OPTIM_RMSPROP;
    bool adam = k == NB_OPTIM_ADAM || k == NB_OPTIM_ADAMW;
    if ((rc = check_unused(g, k, "momentum", !sgd && c->momentum != 0,
                           adam ? " (Adam's averaging is set by beta1)"
                                : "")) != NB_OK ||
        (rc = check_unused(g, k, "nesterov", !sgd && c->nesterov, "")) !=
            NB_OK ||
        (rc = check_unused(g, k, "beta1", !adam && c->beta1 != 0, "")) !=
            NB_OK ||
        (rc = check_unused(g, k, "beta2", !adam && c->beta2 != 0,
                           rms ? " (RMSprop's decay is rho)" : "")) != NB_OK ||
        (rc = check_unused(g, k, "rho", !rms && c->rho != 0,
                           adam ? " (Adam's decay is beta2)" : "")) != NB_OK ||
        (rc = check_unused(g, k, "eps", sgd && c->eps != 0, "")) != NB_OK)
        return rc;

    if ((rc = check_nonneg(g, "lr", c->lr)) != NB_OK ||
        (rc = check_unit(g, "momentum", c->momentum)) != NB_OK ||
        (rc = check_unit(g, "beta1", c->beta1)) != NB_OK ||
        (rc = check_unit(g, "beta2", c->beta2)) != NB_OK ||
        (rc = check_unit(g, "rho", c->rho)) != NB_OK ||
        (rc = check_nonneg(g, "eps", c->eps)) != NB_OK ||
        (rc = check_nonneg(g, "weight_decay", c->weight_decay)) != NB_OK ||
        (rc = check_nonneg(g, "l1", c->l1)) != NB_OK ||
        (rc = check_nonneg(g, "clip_norm", c->clip_norm)) != NB_OK)
        return rc;
    if (c->nesterov && c->momentum == 0)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  FN_NEW ": nesterov needs momentum > 0");

    *out = *c;
    if (out->lr == 0)
        out->lr = sgd ? 0.01 : 0.001;
    if (adam) {
        if (out->beta1 == 0)
            out->beta1 = 0.9;
        if (out->beta2 == 0)
            out->beta2 = 0.999;
    }
    if (rms && out->rho == 0)
        out->rho = 0.99;
    if (!sgd && out->eps == 0)
        out->eps = 1e-8;
    return NB_OK;
}

/* ---- creation ---- */

static int state_per_param(const nb_optim_config *c)
{
    switch (c->kind) {
    case NB_OPTIM_SGD:
        return c->momentum > 0 ? 1 : 0;
    case NB_OPTIM_RMSPROP:
        return 1;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        return 2;
    }
    return 0;
}

static const char *state_prefix(const nb_optim_config *c, int k)
{
    switch (c->kind) {
    case NB_OPTIM_SGD:
        return "momentum";
    case NB_OPTIM_RMSPROP:
        return "rmsprop.s";
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        return k == 0 ? "adam.m" : "adam.v";
    }
    return "?";
}

void nb_optimizer_free(nb_optimizer *opt)
{
    if (!opt)
        return;
    int n_state = opt->n_params * opt->per_param;
    for (int i = 0; opt->state && i < n_state; i++)
        nb_tensor_free(opt->state[i]);
    for (int i = 0; opt->names && i < n_state; i++)
        free(opt->names[i]);
    free(opt->state);
    free(opt->names);
    free(opt->params);
    free(opt->items);
    free(opt);
}

static char *state_name(const char *prefix, const char *param)
{
    size_t len = strlen(prefix) + 1 + strlen(param) + 1;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s/%s", prefix, param);
    return s;
}

static int alloc_state(nb_optimizer *opt)
{
    int n_state = opt->n_params * opt->per_param;
    if (n_state == 0)
        return NB_OK;
    opt->state = calloc((size_t)n_state, sizeof *opt->state);
    opt->names = calloc((size_t)n_state, sizeof *opt->names);
    if (!opt->state || !opt->names)
        return NB_ERR_NOMEM;
    for (int i = 0; i < opt->n_params; i++) {
        const nb_tensor *w = nb_node_value(opt->params[i]);
        for (int k = 0; k < opt->per_param; k++) {
            int s = i * opt->per_param + k;
            opt->state[s] = nb_tensor_new(nb_tensor_dtype(w), nb_tensor_rank(w),
                                          nb_tensor_shape(w));
            opt->names[s] = state_name(state_prefix(&opt->cfg, k),
                                       nb_node_name(opt->params[i]));
            if (!opt->state[s] || !opt->names[s])
                return NB_ERR_NOMEM;
        }
    }
    return NB_OK;
}

nb_optimizer *nb_optimizer_new(nb_graph *g, const nb_optim_config *config,
                               int n, nb_node *const *params)
{
    if (!g)
        return NULL;
    if (!config) {
        nb_graph_set_error(g, NB_ERR_ARG, FN_NEW ": config is NULL");
        return NULL;
    }
    nb_optim_config cfg;
    if (resolve_config(g, config, &cfg) != NB_OK ||
        check_param_list(g, FN_NEW, n, params) != NB_OK)
        return NULL;

    int64_t count = n;
    if (n == 0) {
        count = 0;
        for (int64_t id = 0; id < nb_graph_node_count(g); id++)
            count += nb_node_get_kind(nb_graph_node(g, id)) == NB_NODE_PARAM;
        if (count == 0) {
            nb_graph_set_error(g, NB_ERR_ARG,
                               FN_NEW ": the graph has no parameters");
            return NULL;
        }
        if (count > INT_MAX / 2) {
            nb_graph_set_error(g, NB_ERR_ARG,
                               FN_NEW ": too many parameters (%lld)",
                               (long long)count);
            return NULL;
        }
    }

    nb_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt) {
        nb_graph_set_error(g, NB_ERR_NOMEM, FN_NEW ": out of memory");
        return NULL;
    }
    opt->g = g;
    opt->cfg = cfg;
    opt->n_params = (int)count;
    opt->per_param = state_per_param(&cfg);
    opt->params = malloc((size_t)count * sizeof *opt->params);
    opt->items = malloc((size_t)count * sizeof *opt->items);
    if (!opt->params || !opt->items) {
        nb_optimizer_free(opt);
        nb_graph_set_error(g, NB_ERR_NOMEM, FN_NEW ": out of memory");
        return NULL;
    }
    if (n > 0) {
        memcpy(opt->params, params, (size_t)n * sizeof *params);
    } else {
        int k = 0;
        for (int64_t id = 0; id < nb_graph_node_count(g); id++) {
            nb_node *x = nb_graph_node(g, id);
            if (nb_node_get_kind(x) == NB_NODE_PARAM)
                opt->params[k++] = x;
        }
    }
    if (alloc_state(opt) != NB_OK) {
        nb_optimizer_free(opt);
        nb_graph_set_error(g, NB_ERR_NOMEM,
                           FN_NEW ": out of memory for the optimiser state");
        return NULL;
    }
    return opt;
}

/* ---- the step ---- */

/* Checks everything the update loops rely on before any of them runs, so
 * a failing step changes nothing, and gathers the step's items. */
static int check_step(nb_optimizer *opt, int *n_items, int64_t *total)
{
    const nb_optim_config *c = &opt->cfg;
    int k = 0;
    int64_t off = 0;
    *n_items = 0;
    *total = 0;
    for (int i = 0; i < opt->n_params; i++) {
        nb_node *p = opt->params[i];
        nb_tensor *dw = active_grad(p);
        if (!dw)
            continue;
        nb_tensor *w = nb_node_value(p);
        if (nb_tensor_dtype(dw) != nb_tensor_dtype(w) ||
            nb_tensor_size(dw) != nb_tensor_size(w))
            return nb_graph_set_error(
                opt->g, NB_ERR_STATE,
                "optimizer_step: the gradient of '%s' (%s, %lld elements) "
                "does not match the parameter (%s, %lld elements)",
                nb_node_name(p), nb_dtype_name(nb_tensor_dtype(dw)),
                (long long)nb_tensor_size(dw),
                nb_dtype_name(nb_tensor_dtype(w)),
                (long long)nb_tensor_size(w));
        nb_tensor *const *st = opt->state + i * opt->per_param;
        for (int j = 0; j < opt->per_param; j++) {
            const nb_tensor *s = st[j];
            if (nb_tensor_dtype(s) != nb_tensor_dtype(w) ||
                nb_tensor_size(s) != nb_tensor_size(w))
                return nb_graph_set_error(
                    opt->g, NB_ERR_STATE,
                    "optimizer_step: the state '%s' no longer matches its "
                    "parameter",
                    opt->names[i * opt->per_param + j]);
        }
        struct item *it = &opt->items[k++];
        it->w = nb_tensor_data(w);
        it->dw = nb_tensor_data(dw);
        it->s0 = opt->per_param > 0 ? nb_tensor_data(st[0]) : NULL;
        it->s1 = opt->per_param > 1 ? nb_tensor_data(st[1]) : NULL;
        it->n = nb_tensor_size(w);
        it->off = off;
        it->f32 = nb_tensor_dtype(w) == NB_F32;
        it->reg = c->decay_biases || nb_tensor_rank(w) >= 2;
        off += it->n;
    }
    *n_items = k;
    *total = off;
    return NB_OK;
}

/* The parts of a step's hyper-parameters that all parameters share. */
static struct hyper step_hyper(const nb_optimizer *opt)
{
    const nb_optim_config *c = &opt->cfg;
    double t = (double)(opt->steps + 1);
    struct hyper h = {0};
    h.cs = 1;
    h.lr = c->lr;
    h.decay = 1;
    switch (c->kind) {
    case NB_OPTIM_SGD:
        h.mu = c->momentum;
        h.nesterov = c->nesterov;
        break;
    case NB_OPTIM_RMSPROP:
        h.rho = c->rho;
        h.crho = 1 - c->rho;
        h.eps = c->eps;
        break;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        h.b1 = c->beta1;
        h.c1 = 1 - c->beta1;
        h.b2 = c->beta2;
        h.c2 = 1 - c->beta2;
        h.a = c->lr / (1 - pow(c->beta1, t));
        h.ic2 = 1 / sqrt(1 - pow(c->beta2, t));
        h.eps = c->eps;
        break;
    }
    return h;
}

/* What the threads of a step share. */
struct step_ctx {
    const nb_optimizer *opt;
    const struct item *items;
    int n_items;
    int64_t total;
    double part[NSLOT]; /* the norm's slot sums */
    /* [f64 bias, f64 weight, f32 bias, f32 weight], without clipping */
    struct hyper hyp[4];
    double norm; /* the outcome, written by thread 0 */
    bool refuse;
};

/* After the norm: the step's verdict and hyp with its clipping factor.
 * Every thread works it out for itself from the same slot sums (the same
 * bits, so the same verdict), which spares a second barrier. */
static bool step_decide(const struct step_ctx *c, struct hyper *hyp,
                        double *norm)
{
    struct glist l = {c->items, NULL, c->n_items};
    *norm = finish_norm(&l, c->part);
    double clip = c->opt->cfg.clip_norm;
    double cs = clip > 0 && *norm > clip ? clip / *norm : 1;
    for (int i = 0; i < 4; i++) {
        hyp[i] = c->hyp[i];
        hyp[i].cs = cs;
    }
    return isfinite(*norm);
}

static void update_piece(const struct step_ctx *c, const struct hyper *hyp,
                         const struct item *it, int64_t a, int64_t n)
{
    const struct hyper *h = &hyp[2 * it->f32 + it->reg];
    const nb_optimizer *opt = c->opt;
    if (it->f32) {
        float *w = (float *)it->w + a;
        float *s0 = it->s0 ? (float *)it->s0 + a : NULL;
        const float *dw = (const float *)it->dw + a;
        switch (opt->cfg.kind) {
        case NB_OPTIM_SGD:
            if (opt->per_param == 0)
                sgd_f32(n, w, dw, h);
            else
                momentum_f32(n, w, dw, s0, h);
            break;
        case NB_OPTIM_RMSPROP:
            rmsprop_f32(n, w, dw, s0, h);
            break;
        case NB_OPTIM_ADAM:
        case NB_OPTIM_ADAMW:
            adam_f32(n, w, dw, s0, (float *)it->s1 + a, h);
            break;
        }
    } else {
        double *w = (double *)it->w + a;
        double *s0 = it->s0 ? (double *)it->s0 + a : NULL;
        const double *dw = (const double *)it->dw + a;
        switch (opt->cfg.kind) {
        case NB_OPTIM_SGD:
            if (opt->per_param == 0)
                sgd_f64(n, w, dw, h);
            else
                momentum_f64(n, w, dw, s0, h);
            break;
        case NB_OPTIM_RMSPROP:
            rmsprop_f64(n, w, dw, s0, h);
            break;
        case NB_OPTIM_ADAM:
        case NB_OPTIM_ADAMW:
            adam_f64(n, w, dw, s0, (double *)it->s1 + a, h);
            break;
        }
    }
}

/* Updates the elements [lo, hi) of the concatenation. */
static void update_range(const struct step_ctx *c, const struct hyper *hyp,
                         int64_t lo, int64_t hi)
{
    for (int i = 0; i < c->n_items; i++) {
        const struct item *it = &c->items[i];
        int64_t a = it->off > lo ? it->off : lo;
        int64_t b = it->off + it->n < hi ? it->off + it->n : hi;
        if (a < b)
            update_piece(c, hyp, it, a - it->off, b - a);
    }
}

#ifdef _OPENMP
static int64_t step_share(const nb_optimizer *opt)
{
    switch (opt->cfg.kind) {
    case NB_OPTIM_SGD:
        return opt->per_param ? SHARE_STEP_MOMENTUM : SHARE_STEP_SGD;
    case NB_OPTIM_RMSPROP:
        return SHARE_STEP_RMSPROP;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        return SHARE_STEP_ADAM;
    }
    return SHARE_STEP_SGD;
}
#endif

/* The norm and the updates. With threads, one parallel region: each thread
 * sums its slots, and after one barrier decides and updates the elements
 * of its own slots, the gradients of which it has just read. */
static void run_step(struct step_ctx *c)
{
    struct glist l = {c->items, NULL, c->n_items};
#ifdef _OPENMP
    int p = team_size(c->total, step_share(c->opt));
    if (p > 1) {
        /* The caller's (thread 0's) clock: when it finished its norm, when
         * the barrier let it go, when it finished its updates. */
        double start = omp_get_wtime(), own1 = start, go = start, own2 = start;
#pragma omp parallel num_threads(p)
        {
            int t = omp_get_thread_num(), q = omp_get_num_threads();
            int s0 = NSLOT * t / q, s1 = NSLOT * (t + 1) / q;
            norm_slots(&l, c->total, s0, s1, c->part);
            if (t == 0)
                own1 = omp_get_wtime();
#pragma omp barrier
            if (t == 0)
                go = omp_get_wtime();
            struct hyper hyp[4];
            double norm;
            bool ok = step_decide(c, hyp, &norm);
            if (ok)
                update_range(c, hyp, slot_bound(c->total, s0),
                             slot_bound(c->total, s1));
            if (t == 0) {
                c->norm = norm;
                c->refuse = !ok;
                own2 = omp_get_wtime();
            }
        }
        double end = omp_get_wtime();
        nb_parallel_report((own1 - start) + (own2 - go),
                           (go - own1) + (end - own2));
        return;
    }
#endif
    norm_slots(&l, c->total, 0, NSLOT, c->part);
    struct hyper hyp[4];
    c->refuse = !step_decide(c, hyp, &c->norm);
    if (!c->refuse)
        update_range(c, hyp, 0, c->total);
}

int nb_optimizer_step(nb_optimizer *opt)
{
    if (!opt)
        return NB_ERR_ARG;
    struct step_ctx c;
    int rc = check_step(opt, &c.n_items, &c.total);
    if (rc != NB_OK)
        return rc;
    const nb_optim_config *cfg = &opt->cfg;
    c.opt = opt;
    c.items = opt->items;
    /* Weights: L2 enters g, except for AdamW, whose decay is decoupled. */
    struct hyper plain = step_hyper(opt), reg = plain;
    reg.l1 = cfg->l1;
    if (cfg->kind == NB_OPTIM_ADAMW)
        reg.decay = 1 - cfg->lr * cfg->weight_decay;
    else
        reg.l2 = cfg->weight_decay;
    c.hyp[0] = plain;
    c.hyp[1] = reg;
    /* An eps that rounds to 0 in float would turn 0/0 into NaN. */
    for (int i = 2; i < 4; i++) {
        c.hyp[i] = c.hyp[i - 2];
        c.hyp[i].eps = c.hyp[i].eps > FLT_MIN ? c.hyp[i].eps : FLT_MIN;
    }
    run_step(&c);
    opt->grad_norm = c.norm;
    if (c.refuse)
        return nb_graph_set_error(opt->g, NB_ERR_NONFINITE,
                                  "optimizer_step: the gradient norm is %g "
                                  "(a gradient holds NaN or infinity); no "
                                  "parameter was updated",
                                  c.norm);
    opt->steps++;
    return NB_OK;
}

/* ---- accessors ---- */

double nb_optimizer_grad_norm(const nb_optimizer *opt)
{
    return opt ? opt->grad_norm : NAN;
}

double nb_optimizer_lr(const nb_optimizer *opt)
{
    return opt ? opt->cfg.lr : NAN;
}

void nb_optimizer_set_lr(nb_optimizer *opt, double lr)
{
    if (!opt)
        return;
    if (!(lr >= 0) || isinf(lr)) {
        nb_graph_set_error(opt->g, NB_ERR_ARG,
                           "optimizer_set_lr: lr must be finite and >= 0 "
                           "(got %g)",
                           lr);
        return;
    }
    opt->cfg.lr = lr;
}

int64_t nb_optimizer_steps(const nb_optimizer *opt)
{
    return opt ? opt->steps : NB_ERR_ARG;
}

void nb_optimizer_set_steps(nb_optimizer *opt, int64_t steps)
{
    if (!opt)
        return;
    if (steps < 0) {
        nb_graph_set_error(opt->g, NB_ERR_ARG,
                           "optimizer_set_steps: steps must be >= 0 (got "
                           "%lld)",
                           (long long)steps);
        return;
    }
    opt->steps = steps;
}

const nb_optim_config *nb_optimizer_config(const nb_optimizer *opt)
{
    return opt ? &opt->cfg : NULL;
}

int nb_optimizer_param_count(const nb_optimizer *opt)
{
    return opt ? opt->n_params : 0;
}

nb_node *nb_optimizer_param(const nb_optimizer *opt, int i)
{
    if (!opt)
        return NULL;
    if (i < 0 || i >= opt->n_params) {
        nb_graph_set_error(opt->g, NB_ERR_ARG,
                           "optimizer_param: index %d is out of range "
                           "[0, %d)",
                           i, opt->n_params);
        return NULL;
    }
    return opt->params[i];
}

int nb_optimizer_state_count(const nb_optimizer *opt)
{
    return opt ? opt->n_params * opt->per_param : 0;
}

nb_tensor *nb_optimizer_state(nb_optimizer *opt, int i, const char **name)
{
    if (name)
        *name = NULL;
    if (!opt)
        return NULL;
    int n_state = opt->n_params * opt->per_param;
    if (i < 0 || i >= n_state) {
        nb_graph_set_error(opt->g, NB_ERR_ARG,
                           "optimizer_state: index %d is out of range "
                           "[0, %d)",
                           i, n_state);
        return NULL;
    }
    if (name)
        *name = opt->names[i];
    return opt->state[i];
}
