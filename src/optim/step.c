/* nb_optimizer_step: one update of every parameter with a gradient.
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
 * Plain SGD over fewer than 64 elements takes a shorter way of its own
 * (sgd_raw_small). Any other step validates (gathering what the loops need
 * into opt->items), takes
 * the norm (grad_norm.c), checks that every value the update would write is
 * finite, and only then updates, so a refused step changes nothing. The
 * norm is the test for NaN and infinity in the gradients; the check is the
 * update's own arithmetic run without stores, for results that overflow
 * from finite inputs (a learning rate of 1e30). Without clipping the check
 * rides on the norm's pass (the factor c is 1 whatever the norm), so a step
 * reads the parameters and the state twice but walks its tensors in two
 * passes, as before the check; with clipping c is known only after the
 * norm, and the check is a pass of its own. All passes run in one parallel
 * region whose threads each take the same slots in every pass (the data a
 * thread checked is the data it updates), with results bitwise equal to
 * one thread's.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nabla/parallel.h"
#include "optim_internal.h"

#define NSLOT NB_OPTIM_NSLOT

/* Elements per thread below which no team is tried: the cheapest rule
 * costs a fraction of a nanosecond per element, so 8 Ki elements take
 * less than a parallel region. Above it the choice is measured. */
#define GRAIN 8192

/* x - x is 0 for every finite x, NaN for infinities and NaN; as an integer
 * flag it vectorises as an OR of comparison masks. */
#define OPT_NONFINITE(x) ((x) - (x) != 0)

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
        nb_param_view v;
        if (!nb_node_param_view(p, &v))
            continue;
        if (v.grad_dtype != v.dtype || v.grad_size != v.size)
            return nb_graph_set_error(
                opt->g, NB_ERR_STATE,
                "optimizer_step: the gradient of '%s' (%s, %lld elements) "
                "does not match the parameter (%s, %lld elements)",
                nb_node_name(p), nb_dtype_name(v.grad_dtype),
                (long long)v.grad_size, nb_dtype_name(v.dtype),
                (long long)v.size);
        /* Plain SGD has no state array at all: no pointer is formed
         * into it (NULL plus an offset is undefined even when 0). */
        nb_tensor *const *st =
            opt->per_param > 0 ? opt->state + i * opt->per_param : NULL;
        for (int j = 0; j < opt->per_param; j++) {
            const nb_tensor *s = st[j];
            if (nb_tensor_dtype(s) != v.dtype || nb_tensor_size(s) != v.size)
                return nb_graph_set_error(
                    opt->g, NB_ERR_STATE,
                    "optimizer_step: the state '%s' no longer matches its "
                    "parameter",
                    opt->names[i * opt->per_param + j]);
        }
        struct item *it = &opt->items[k++];
        it->w = v.value;
        it->dw = v.grad;
        it->s0 = opt->per_param > 0 ? nb_tensor_data(st[0]) : NULL;
        it->s1 = opt->per_param > 1 ? nb_tensor_data(st[1]) : NULL;
        it->n = v.size;
        it->off = off;
        it->f32 = v.dtype == NB_F32;
        it->reg = c->decay_biases || v.rank >= 2;
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
    nb_optimizer *opt;
    const struct item *items;
    int n_items;
    int64_t total;
    double part[NSLOT]; /* the norm's slot sums */
    /* [f64 bias, f64 weight, f32 bias, f32 weight], without clipping */
    struct hyper hyp[4];
    bool early_check; /* no clipping: the check runs with the norm */
    bool bad[NSLOT];  /* per thread: some result would be non-finite */
    double norm;      /* the outcome, written by thread 0 */
    bool refuse_norm, refuse_result;
};

/* After the norm: hyp with its clipping factor, and whether the norm is
 * finite. Every thread works it out for itself from the same slot sums
 * (the same bits, so the same verdict), which spares a barrier. */
static bool step_decide(const struct step_ctx *c, struct hyper *hyp,
                        double *norm)
{
    *norm = nb_optim_finish_norm_items(c->items, c->n_items, c->part);
    double clip = c->opt->cfg.clip_norm;
    double cs = clip > 0 && *norm > clip ? clip / *norm : 1;
    for (int i = 0; i < 4; i++) {
        hyp[i] = c->hyp[i];
        hyp[i].cs = cs;
    }
    return isfinite(*norm);
}

/* Updates (store) or checks (returns true if a result would be
 * non-finite) elements [a, a + n) of one item. */
static bool rule_piece(const struct step_ctx *c, const struct hyper *hyp,
                       const struct item *it, int64_t a, int64_t n, int store)
{
    const struct hyper *h = &hyp[2 * it->f32 + it->reg];
    const nb_optimizer *opt = c->opt;
    if (it->f32) {
        float *w = (float *)it->w + a;
        float *s0 = it->s0 ? (float *)it->s0 + a : NULL;
        float *s1 = it->s1 ? (float *)it->s1 + a : NULL;
        const float *dw = (const float *)it->dw + a;
        switch (opt->cfg.kind) {
        case NB_OPTIM_SGD:
            return opt->per_param == 0 ? sgd_f32(n, w, dw, h, store)
                                       : momentum_f32(n, w, dw, s0, h, store);
        case NB_OPTIM_RMSPROP:
            return rmsprop_f32(n, w, dw, s0, h, store);
        case NB_OPTIM_ADAM:
        case NB_OPTIM_ADAMW:
            return adam_f32(n, w, dw, s0, s1, h, store);
        }
    } else {
        double *w = (double *)it->w + a;
        double *s0 = it->s0 ? (double *)it->s0 + a : NULL;
        double *s1 = it->s1 ? (double *)it->s1 + a : NULL;
        const double *dw = (const double *)it->dw + a;
        switch (opt->cfg.kind) {
        case NB_OPTIM_SGD:
            return opt->per_param == 0 ? sgd_f64(n, w, dw, h, store)
                                       : momentum_f64(n, w, dw, s0, h, store);
        case NB_OPTIM_RMSPROP:
            return rmsprop_f64(n, w, dw, s0, h, store);
        case NB_OPTIM_ADAM:
        case NB_OPTIM_ADAMW:
            return adam_f64(n, w, dw, s0, s1, h, store);
        }
    }
    return false;
}

/* Runs the rule over the elements of slots [s0, s1) of the
 * concatenation: updating (store), or checking (returns true if some
 * result would be non-finite). */
static bool rule_slots(const struct step_ctx *c, const struct hyper *hyp,
                       int s0, int s1, int store)
{
    int64_t lo = nb_optim_slot_bound(c->total, s0);
    int64_t hi = nb_optim_slot_bound(c->total, s1);
    bool bad = false;
    for (int i = 0; i < c->n_items; i++) {
        const struct item *it = &c->items[i];
        int64_t a = it->off > lo ? it->off : lo;
        int64_t b = it->off + it->n < hi ? it->off + it->n : hi;
        if (a < b)
            bad |= rule_piece(c, hyp, it, a - it->off, b - a, store);
    }
    return bad;
}

/* One thread's part of a step, on slots [s0, s1) of q threads: its norm
 * sums (and, without clipping, its check), a barrier so that every thread
 * sees every sum, the verdict on the norm, the check if clipping made it
 * wait for the norm (and a barrier), the verdict on the results, and the
 * update of the same slots. */
static void step_body(void *ctx, int64_t s0, int64_t s1, int t, int q)
{
    struct step_ctx *c = ctx;
    nb_optim_norm_slots_items(c->items, c->n_items, c->total, (int)s0,
                              (int)s1, c->part);
    if (c->early_check)
        c->bad[t] = rule_slots(c, c->hyp, (int)s0, (int)s1, 0);
    nb_parallel_barrier();
    struct hyper hyp[4];
    double norm;
    bool ok = step_decide(c, hyp, &norm);
    if (ok && !c->early_check) {
        c->bad[t] = rule_slots(c, hyp, (int)s0, (int)s1, 0);
        nb_parallel_barrier();
    }
    bool bad = false;
    for (int k = 0; ok && k < q; k++)
        bad |= c->bad[k];
    if (ok && !bad)
        rule_slots(c, hyp, (int)s0, (int)s1, 1);
    if (t == 0) {
        c->norm = norm;
        c->refuse_norm = !ok;
        c->refuse_result = ok && bad;
    }
}

static nb_parallel_site step_site = NB_PARALLEL_SITE("optim.step", GRAIN);

/* Plain SGD (no momentum, regularisation or clipping) over fewer than
 * NB_OPTIM_SLOT_ALIGN elements, the per-sample step of a small net, in one
 * walk over the parameters that checks each one, gathers it and updates
 * it at once: w - lr dw as sgd's REG_RAW body computes it, stored in place
 * with the old value kept on the stack and an integer flag set by a
 * non-finite result (a loop the compiler vectorises), then the sum of
 * squares in the order the norm's small sum takes it (items of 32
 * elements or more are left to that sum, whose lanes start at 32). A
 * non-finite gradient gives a non-finite result (w - r d is NaN or
 * infinite for any r when d is), so the flag alone tells whether the step
 * stands. Whatever stops the walk (a gradient that does not match its
 * parameter, or more elements than the path takes) and a refused step (a
 * non-finite norm or result) put every old value back, so they change
 * nothing; a step that passes, the common case, reads each parameter once.
 * Returns NB_OK with c's outcome set, an error recorded on the graph, or
 * NOT_SMALL when the step is for the general passes. */
enum { NOT_SMALL = 1 };

/* The update of sgd_raw_small by whole 16-byte vectors where the compiler
 * has them (GCC and Clang), the rest element by element: the same
 * operations on each element, so the same bits, in a few instructions per
 * vector where a loop the compiler vectorises itself pays more in set-up
 * and remainders than these sizes take. The sum of squares stays one
 * chain in element order, as the norm takes it. */
#if defined(__GNUC__)
typedef float sgd_vf __attribute__((vector_size(16)));
typedef double sgd_vd __attribute__((vector_size(16)));
#define SGD_RAW_BLOCKS(T, VT)                                                  \
    do {                                                                       \
        enum { L = sizeof(VT) / sizeof(T) };                                   \
        VT zv = {0};                                                           \
        for (; j + L <= v.size; j += L) {                                      \
            VT d, wj;                                                          \
            memcpy(&d, dw + j, sizeof d);                                      \
            memcpy(&wj, w + j, sizeof wj);                                     \
            const VT nj = wj - r * d;                                          \
            memcpy(o + j, &wj, sizeof wj);                                     \
            memcpy(w + j, &nj, sizeof nj);                                     \
            zv += nj - nj;                                                     \
            for (int l = 0; l < L; l++)                                        \
                si += (double)dw[j + l] * (double)dw[j + l];                   \
        }                                                                      \
        for (int l = 0; l < L; l++)                                            \
            z += zv[l];                                                        \
    } while (0)
#else
typedef float sgd_vf;
typedef double sgd_vd;
#define SGD_RAW_BLOCKS(T, VT) ((void)0)
#endif

static void sgd_small_restore(const struct item *items, int n, const float *kf,
                              const double *kd)
{
    for (int i = 0; i < n; i++) {
        const struct item *it = &items[i];
        if (it->f32)
            for (int64_t j = 0; j < it->n; j++)
                ((float *)it->w)[j] = kf[it->off + j];
        else
            for (int64_t j = 0; j < it->n; j++)
                ((double *)it->w)[j] = kd[it->off + j];
    }
}

static int sgd_raw_small(struct step_ctx *c)
{
    float kf[NB_OPTIM_SLOT_ALIGN];
    double kd[NB_OPTIM_SLOT_ALIGN];
    nb_optimizer *opt = c->opt;
    struct item *items = opt->items;
    const double lr = opt->cfg.lr;
    double s = 0;
    bool lanes = false;
    int bad = 0, k = 0;
    int64_t off = 0;
#define SGD_RAW(T, VT, keep)                                                   \
    do {                                                                       \
        T *w = v.value, *o = keep + off;                                       \
        const T *dw = v.grad, r = (T)lr;                                       \
        double si = 0;                                                         \
        T z = 0; /* wj - wj is 0, or NaN for a non-finite wj, which sticks */ \
        int64_t j = 0;                                                         \
        SGD_RAW_BLOCKS(T, VT);                                                 \
        for (; j < v.size; j++) {                                              \
            const T d = dw[j], wj = w[j] - r * d;                              \
            si += (double)d * (double)d;                                       \
            o[j] = w[j];                                                       \
            w[j] = wj;                                                         \
            z += wj - wj;                                                      \
        }                                                                      \
        s += si;                                                               \
        bad |= z != 0;                                                         \
    } while (0)
    for (int i = 0; i < opt->n_params; i++) {
        nb_node *p = opt->params[i];
        nb_param_view v;
        if (!nb_node_param_view(p, &v))
            continue;
        if (v.grad_dtype != v.dtype || v.grad_size != v.size) {
            /* check_step finds the mismatch again and words the error. */
            sgd_small_restore(items, k, kf, kd);
            int n_items;
            int64_t total;
            int rc = check_step(opt, &n_items, &total);
            return rc != NB_OK ? rc : NOT_SMALL;
        }
        if (v.size >= NB_OPTIM_SLOT_ALIGN - off) {
            sgd_small_restore(items, k, kf, kd);
            return NOT_SMALL;
        }
        struct item *it = &items[k++];
        it->w = v.value;
        it->dw = v.grad;
        it->n = v.size;
        it->off = off;
        it->f32 = v.dtype == NB_F32;
        lanes |= v.size >= 32;
        if (it->f32)
            SGD_RAW(float, sgd_vf, kf);
        else
            SGD_RAW(double, sgd_vd, kd);
        off += v.size;
    }
#undef SGD_RAW
#undef SGD_RAW_BLOCKS
    c->n_items = k;
    c->total = off;
    /* An overflowing sum is rescaled there. */
    double norm = lanes || isinf(s) ? nb_optim_norm_small_items(items, k)
                                    : sqrt(s);
    bool ok = isfinite(norm);
    if (!ok || bad)
        sgd_small_restore(items, k, kf, kd);
    c->norm = norm;
    c->refuse_norm = !ok;
    c->refuse_result = ok && bad;
    return NB_OK;
}

/* step_body for a step under NB_OPTIM_SLOT_ALIGN elements, which one
 * thread runs: every slot bound but the last is 0, so the norm is one sum
 * over the items and each pass one call per item, the same work in the
 * same order without the slots, the region or its barriers. */
static void step_small(struct step_ctx *c)
{
    bool bad = false;
    if (c->early_check)
        for (int i = 0; i < c->n_items; i++)
            bad |= rule_piece(c, c->hyp, &c->items[i], 0, c->items[i].n, 0);
    double norm = nb_optim_norm_small_items(c->items, c->n_items);
    double clip = c->opt->cfg.clip_norm;
    struct hyper hyp[4];
    for (int i = 0; i < 4; i++) {
        hyp[i] = c->hyp[i];
        hyp[i].cs = clip > 0 && norm > clip ? clip / norm : 1;
    }
    bool ok = isfinite(norm);
    if (ok && !c->early_check)
        for (int i = 0; i < c->n_items; i++)
            bad |= rule_piece(c, hyp, &c->items[i], 0, c->items[i].n, 0);
    if (ok && !bad)
        for (int i = 0; i < c->n_items; i++)
            rule_piece(c, hyp, &c->items[i], 0, c->items[i].n, 1);
    c->norm = norm;
    c->refuse_norm = !ok;
    c->refuse_result = ok && bad;
}

/* A step's hyper-parameters for each kind of item, and its passes: one
 * call per item for a step under NB_OPTIM_SLOT_ALIGN elements, the slotted
 * parallel passes otherwise. */
static void step_general(nb_optimizer *opt, struct step_ctx *c)
{
    const nb_optim_config *cfg = &opt->cfg;
    /* Weights: L2 enters g, except for AdamW, whose decay is decoupled. */
    struct hyper plain = step_hyper(opt), reg = plain;
    reg.l1 = cfg->l1;
    if (cfg->kind == NB_OPTIM_ADAMW)
        reg.decay = 1 - cfg->lr * cfg->weight_decay;
    else
        reg.l2 = cfg->weight_decay;
    c->hyp[0] = plain;
    c->hyp[1] = reg;
    /* An eps that rounds to 0 in float would turn 0/0 into NaN. */
    for (int i = 2; i < 4; i++) {
        c->hyp[i] = c->hyp[i - 2];
        c->hyp[i].eps = c->hyp[i].eps > FLT_MIN ? c->hyp[i].eps : FLT_MIN;
    }
    /* The work is the elements the passes read, in every array. */
    if (c->total < NB_OPTIM_SLOT_ALIGN)
        step_small(c);
    else
        nb_parallel_for(&step_site, NSLOT, c->total * (2 + opt->per_param),
                        NSLOT, step_body, c);
}

int nb_optimizer_step(nb_optimizer *opt)
{
    if (!opt)
        return NB_ERR_ARG;
    /* The count a step would leave must stay representable. */
    if (opt->steps >= INT64_MAX - 1)
        return nb_graph_set_error(opt->g, NB_ERR_STATE,
                                  "optimizer_step: the step count %lld "
                                  "cannot grow further",
                                  (long long)opt->steps);
    const nb_optim_config *cfg = &opt->cfg;
    struct step_ctx c;
    c.opt = opt;
    c.items = opt->items;
    c.early_check = !(cfg->clip_norm > 0);
    /* Plain SGD needs none of the hyper-parameters. */
    int rc = c.early_check && cfg->kind == NB_OPTIM_SGD &&
                     opt->per_param == 0 && cfg->weight_decay == 0 &&
                     cfg->l1 == 0
                 ? sgd_raw_small(&c)
                 : NOT_SMALL;
    if (rc == NOT_SMALL) {
        rc = check_step(opt, &c.n_items, &c.total);
        if (rc == NB_OK)
            step_general(opt, &c);
    }
    if (rc != NB_OK)
        return rc;
    opt->grad_norm = c.norm;
    if (c.refuse_norm)
        return nb_graph_set_error(opt->g, NB_ERR_NONFINITE,
                                  "optimizer_step: the gradient norm is %g "
                                  "(a gradient holds NaN or infinity); no "
                                  "parameter was updated",
                                  c.norm);
    if (c.refuse_result)
        return nb_graph_set_error(opt->g, NB_ERR_NONFINITE,
                                  "optimizer_step: the update would make a "
                                  "parameter or its state NaN or infinite "
                                  "(lr %g, gradient norm %g); no parameter "
                                  "was updated",
                                  cfg->lr, c.norm);
    opt->steps++;
    return NB_OK;
}
