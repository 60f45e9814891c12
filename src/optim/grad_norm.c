/* The global L2 norm of many gradients, the same bits for any number of
 * threads, and clipping by it (nb_clip_grad_norm).
 *
 * A pass runs over the concatenation of its tensors, `total` elements, cut
 * into NSLOT slots whose bounds depend on total alone; a thread takes a
 * run of whole slots (nabla/parallel.h decides how many threads, by
 * measurement). The norm sums each slot on its own, one tensor piece after
 * another, and then the slots in order, so it comes out the same for any
 * number of threads; scaling is elementwise and splits anywhere. The norm
 * doubles as the test for NaN and infinity: a non-finite gradient makes it
 * non-finite.
 */
#include <math.h>
#include <stdint.h>

#include "nabla/parallel.h"
#include "optim_internal.h"

#define NSLOT NB_OPTIM_NSLOT
#define SLOT_ALIGN NB_OPTIM_SLOT_ALIGN

/* Elements per thread below which no team is tried for the norm alone or
 * for the scaling: 8 Ki elements are read in well under a microsecond,
 * less than a parallel region costs. Above it the choice is measured. */
#define GRAIN 8192

#define REAL float
#define SFX f32
#include "norm_impl.h"
#undef REAL
#undef SFX

#define REAL double
#define SFX f64
#include "norm_impl.h"
#undef REAL
#undef SFX

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

nb_tensor *nb_optim_active_grad(nb_node *p)
{
    if (!p || !nb_node_is_trainable(p))
        return NULL;
    return nb_node_grad(p);
}

int64_t nb_optim_slot_bound(int64_t total, int k)
{
    if (k >= NSLOT)
        return total;
    int64_t b = total / NSLOT * k + total % NSLOT * k / NSLOT;
    return b / SLOT_ALIGN * SLOT_ALIGN;
}


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
    nb_tensor *dw = nb_optim_active_grad(plist_get(l->pl, i));
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
    int64_t lo = nb_optim_slot_bound(total, s0), hi = nb_optim_slot_bound(total, s1), off = 0;
    int k = s0;
    struct span sp;
    for (int64_t i = 0; i < l->n && off < hi; i++) {
        if (!glist_span(l, i, &sp))
            continue;
        int64_t a = off > lo ? off : lo;
        int64_t end = off + sp.n < hi ? off + sp.n : hi;
        while (a < end) {
            while (nb_optim_slot_bound(total, k + 1) <= a)
                k++;
            int64_t b = nb_optim_slot_bound(total, k + 1);
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

void nb_optim_norm_slots_items(const struct item *items, int n_items,
                               int64_t total, int s0, int s1, double *part)
{
    struct glist l = {items, NULL, n_items};
    norm_slots(&l, total, s0, s1, part);
}

double nb_optim_finish_norm_items(const struct item *items, int n_items,
                                  const double *part)
{
    struct glist l = {items, NULL, n_items};
    return finish_norm(&l, part);
}

double nb_optim_norm_small_items(const struct item *items, int n_items)
{
    /* norm_slots puts the whole of a total under SLOT_ALIGN in the last
     * slot, in item order, and finish_norm adds the 63 zero slots before
     * it: the same sum, without the slots. */
    double s = 0;
    for (int i = 0; i < n_items; i++)
        s += items[i].f32 ? sum_squares_f32(items[i].n, items[i].dw)
                          : sum_squares_f64(items[i].n, items[i].dw);
    if (!isinf(s))
        return sqrt(s);
    double part[NSLOT] = {0};
    part[NSLOT - 1] = s;
    return nb_optim_finish_norm_items(items, n_items, part);
}

/* A pass of the norm or of the scaling over a parameter list. */
struct pass {
    const struct glist *l;
    int64_t total;
    double part[NSLOT];
    double c; /* the scaling factor */
};

static void norm_body(void *ctx, int64_t lo, int64_t hi, int thread,
                      int threads)
{
    (void)thread;
    (void)threads;
    struct pass *ps = ctx;
    norm_slots(ps->l, ps->total, (int)lo, (int)hi, ps->part);
}

static void scale_body(void *ctx, int64_t lo, int64_t hi, int thread,
                       int threads)
{
    (void)thread;
    (void)threads;
    const struct pass *ps = ctx;
    scale_range(ps->l, nb_optim_slot_bound(ps->total, (int)lo),
                nb_optim_slot_bound(ps->total, (int)hi), ps->c);
}

static nb_parallel_site norm_site = NB_PARALLEL_SITE("optim.norm", GRAIN);
static nb_parallel_site scale_site =
    NB_PARALLEL_SITE("optim.clip_scale", GRAIN);

int nb_clip_grad_norm(nb_graph *g, int n, nb_node *const *params,
                      double max_norm, double *norm)
{
    if (norm)
        *norm = NAN;
    if (!g)
        return NB_ERR_ARG;
    if (!(max_norm > 0))
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "clip_grad_norm: max_norm must be > 0 "
                                  "(got %g)",
                                  max_norm);
    int rc = nb_optim_check_params(g, "clip_grad_norm", n, params);
    if (rc != NB_OK)
        return rc;
    struct plist pl = plist_make(g, n, params);
    struct glist l = {NULL, &pl, pl.n};
    struct pass ps = {.l = &l, .total = glist_total(&l)};
    nb_parallel_for(&norm_site, NSLOT, ps.total, NSLOT, norm_body, &ps);
    double before = finish_norm(&l, ps.part);
    if (norm)
        *norm = before;
    if (!isfinite(before))
        return nb_graph_set_error(g, NB_ERR_NONFINITE,
                                  "clip_grad_norm: the gradient norm is %g "
                                  "(a gradient holds NaN or infinity); "
                                  "nothing was scaled",
                                  before);
    if (before > max_norm) {
        ps.c = max_norm / before;
        nb_parallel_for(&scale_site, NSLOT, ps.total, NSLOT, scale_body, &ps);
    }
    return NB_OK;
}
