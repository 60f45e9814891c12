/* Run-time choice of the kernels' instruction set, and
 * the public elementwise entry points, which forward to the chosen
 * implementation.
 *
 * An elementwise call that nabla/parallel.h's policy runs on a team is cut
 * into one contiguous share per thread, each a whole number of
 * 64-element chunks (the last takes the remainder). Every kernel computes
 * an element the same way wherever it sits in the array (vmath_simd_impl.h
 * runs tails through the vector code), so results are bitwise identical
 * for any thread count.
 *
 * The choice is made on first use (CPU features, then the NABLA_ISA
 * environment variable) and cached; tests can override it with
 * nb_vm_force_isa. The vector paths exist only in x86-64 builds
 * (NB_X86_KERNELS); elsewhere every name but "scalar" is unavailable. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "nabla/parallel.h"
#include "kernels/isa.h"
#include "kernels/vmath_scalar.h"
#if NB_X86_KERNELS
#include "kernels/vmath_simd.h"
#endif

static const char *const isa_names[NB_ISA_COUNT] = {
    [NB_ISA_SCALAR] = "scalar",
    [NB_ISA_SSE2] = "sse2",
    [NB_ISA_AVX2] = "avx2",
    [NB_ISA_AVX512] = "avx512",
};

static bool cpu_has(nb_isa isa)
{
#if NB_X86_KERNELS
    __builtin_cpu_init();
    switch (isa) {
    case NB_ISA_SCALAR:
    case NB_ISA_SSE2:
        return true;
    case NB_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case NB_ISA_AVX512:
        return __builtin_cpu_supports("avx512f");
    default:
        return false;
    }
#else
    return isa == NB_ISA_SCALAR;
#endif
}

static int isa_by_name(const char *name)
{
    for (int i = 0; i < NB_ISA_COUNT; i++)
        if (strcmp(name, isa_names[i]) == 0)
            return i;
    return -1;
}

static int choose_isa(void)
{
    const char *env = getenv("NABLA_ISA");
    int wanted = env ? isa_by_name(env) : -1;
    if (wanted >= 0 && cpu_has((nb_isa)wanted))
        return wanted;
    for (int i = NB_ISA_COUNT - 1; i > 0; i--)
        if (cpu_has((nb_isa)i))
            return i;
    return NB_ISA_SCALAR;
}

/* -1 = not chosen yet / not forced. Threads racing on the first call all
 * compute the same choice, so relaxed atomics suffice. */
static _Atomic int chosen_isa = -1;
static _Atomic int forced_isa = -1;
/* The elementwise kernels' table for the active ISA (active_table), NULL
 * until the first call after a choice or a forcing: one load per call
 * instead of working out the ISA again. */
static _Atomic(const void *) active_kernels = NULL;

nb_isa nb_isa_active(void)
{
    int isa = atomic_load_explicit(&forced_isa, memory_order_relaxed);
    if (isa >= 0)
        return (nb_isa)isa;
    isa = atomic_load_explicit(&chosen_isa, memory_order_relaxed);
    if (isa < 0) {
        isa = choose_isa();
        atomic_store_explicit(&chosen_isa, isa, memory_order_relaxed);
    }
    return (nb_isa)isa;
}

const char *nb_vm_isa(void)
{
    return isa_names[nb_isa_active()];
}

bool nb_vm_force_isa(const char *isa)
{
    if (isa == NULL) {
        atomic_store_explicit(&forced_isa, -1, memory_order_relaxed);
        atomic_store_explicit(&active_kernels, NULL, memory_order_relaxed);
        return true;
    }
    int wanted = isa_by_name(isa);
    if (wanted < 0 || !cpu_has((nb_isa)wanted))
        return false;
    atomic_store_explicit(&forced_isa, wanted, memory_order_relaxed);
    atomic_store_explicit(&active_kernels, NULL, memory_order_relaxed);
    return true;
}

/* ---- threads ----
 *
 * Whether a call runs on one thread or a team is nabla/parallel.h's
 * decision, measured per kernel, dtype and size class. A kernel states
 * only the floor below which no machine gains (an element costs 0.25 to 4
 * ns, a region a microsecond or more), and cuts its range in 64-element
 * chunks so that every share starts on a vector boundary. */
#define VM_CHUNK 64
#define VM_GRAIN 4096

/* One elementwise call, whatever its signature. */
typedef struct {
    int form; /* VM_UNARY, VM_GRAD, VM_ELU */
    bool f64;
    union {
        void (*unary32)(int64_t, const float *, float *);
        void (*unary64)(int64_t, const double *, double *);
        void (*grad32)(int64_t, const float *, const float *, float *);
        void (*grad64)(int64_t, const double *, const double *, double *);
        void (*elu32)(int64_t, float, const float *, float *);
        void (*elu64)(int64_t, double, const double *, double *);
    } fn;
    int64_t n;
    const void *x, *dy;
    void *y;
    double alpha;
} vm_call;
enum { VM_UNARY, VM_GRAD, VM_ELU };

/* The elements of chunks [lo, hi); every kernel computes an element the
 * same way wherever its share starts. */
static void vm_body(void *ctx, int64_t lo, int64_t hi, int thread,
                    int threads)
{
    (void)thread;
    (void)threads;
    const vm_call *c = ctx;
    int64_t off = lo * VM_CHUNK, end = hi * VM_CHUNK < c->n ? hi * VM_CHUNK
                                                            : c->n;
    int64_t len = end - off;
    if (len <= 0)
        return;
    if (c->f64) {
        const double *x = (const double *)c->x + off;
        double *y = (double *)c->y + off;
        if (c->form == VM_UNARY)
            c->fn.unary64(len, x, y);
        else if (c->form == VM_GRAD)
            c->fn.grad64(len, x, (const double *)c->dy + off, y);
        else
            c->fn.elu64(len, c->alpha, x, y);
    } else {
        const float *x = (const float *)c->x + off;
        float *y = (float *)c->y + off;
        if (c->form == VM_UNARY)
            c->fn.unary32(len, x, y);
        else if (c->form == VM_GRAD)
            c->fn.grad32(len, x, (const float *)c->dy + off, y);
        else
            c->fn.elu32(len, (float)c->alpha, x, y);
    }
}

/* A call of one chunk is far under any team's floor (VM_GRAIN): VM_DIRECT
 * calls the kernel straight away, as the one-thread path would (the same
 * kernel on the same elements), before a vm_call is even assembled, which
 * costs more than a tiny graph's arithmetic; larger calls go through
 * nb_parallel_for. */
#define VM_DIRECT(n, call)                                                     \
    do {                                                                       \
        if ((n) <= VM_CHUNK) {                                                 \
            call;                                                              \
            return;                                                            \
        }                                                                      \
    } while (0)

static void vm_run(nb_parallel_site *site, vm_call *c)
{
    nb_parallel_for(site, (c->n + VM_CHUNK - 1) / VM_CHUNK, c->n, INT32_MAX,
                    vm_body, c);
}

/* ---- one table of kernels per instruction set ---- */

typedef void (*unary_f32)(int64_t, const float *, float *);
typedef void (*unary_f64)(int64_t, const double *, double *);
typedef void (*grad_f32)(int64_t, const float *, const float *, float *);
typedef void (*grad_f64)(int64_t, const double *, const double *, double *);

#define UNARY_FIELDS(name)                                                     \
    unary_f32 name##_f32;                                                      \
    unary_f64 name##_f64;
#define GRAD_FIELDS(name)                                                      \
    grad_f32 name##_grad_f32;                                                  \
    grad_f64 name##_grad_f64;
typedef struct {
    NB_VM_UNARY(UNARY_FIELDS)
    NB_VM_GRAD(GRAD_FIELDS)
    void (*elu_f32)(int64_t, float, const float *, float *);
    void (*elu_f64)(int64_t, double, const double *, double *);
    void (*lstm_cell_f32)(int64_t, float *, const float *, float *, float *,
                          float *);
    void (*lstm_cell_f64)(int64_t, double *, const double *, double *,
                          double *, double *);
    void (*lstm_cell_back_f32)(int64_t, const float *, const float *,
                               const float *, const float *, const float *,
                               float *, float *, float *);
    void (*lstm_cell_back_f64)(int64_t, const double *, const double *,
                               const double *, const double *,
                               const double *, double *, double *, double *);
    void (*gru_cell_back_f32)(int64_t, const float *, const float *,
                              const float *, const float *, float *, float *,
                              float *, float *);
    void (*gru_cell_back_f64)(int64_t, const double *, const double *,
                              const double *, const double *, double *,
                              double *, double *, double *);
} vm_table;
#undef UNARY_FIELDS
#undef GRAD_FIELDS

/* Each table is built with ISA defined as the name suffix; the extra level
 * of PASTE lets ISA expand before it is pasted. */
#define PASTE_(a, b, c) a##b##c
#define PASTE(a, b, c) PASTE_(a, b, c)
#define UNARY_ENTRY(name)                                                      \
    .name##_f32 = PASTE(nb_vm_##name, _f32_, ISA),                             \
    .name##_f64 = PASTE(nb_vm_##name, _f64_, ISA),
#define GRAD_ENTRY(name)                                                       \
    .name##_grad_f32 = PASTE(nb_vm_##name, _grad_f32_, ISA),                   \
    .name##_grad_f64 = PASTE(nb_vm_##name, _grad_f64_, ISA),
/* clang-format off */
#define TABLE                                                                 \
    {NB_VM_UNARY(UNARY_ENTRY) NB_VM_GRAD(GRAD_ENTRY)                          \
     .elu_f32 = PASTE(nb_vm_elu, _f32_, ISA),                                 \
     .elu_f64 = PASTE(nb_vm_elu, _f64_, ISA),                                 \
     .lstm_cell_f32 = PASTE(nb_vm_lstm_cell, _f32_, ISA),                     \
     .lstm_cell_f64 = PASTE(nb_vm_lstm_cell, _f64_, ISA),                     \
     .lstm_cell_back_f32 = PASTE(nb_vm_lstm_cell_back, _f32_, ISA),           \
     .lstm_cell_back_f64 = PASTE(nb_vm_lstm_cell_back, _f64_, ISA),           \
     .gru_cell_back_f32 = PASTE(nb_vm_gru_cell_back, _f32_, ISA),             \
     .gru_cell_back_f64 = PASTE(nb_vm_gru_cell_back, _f64_, ISA)}
/* clang-format on */

static const vm_table tables[NB_ISA_COUNT] = {
#define ISA scalar
    [NB_ISA_SCALAR] = TABLE,
#undef ISA
#if NB_X86_KERNELS
#define ISA sse2
    [NB_ISA_SSE2] = TABLE,
#undef ISA
#define ISA avx2
    [NB_ISA_AVX2] = TABLE,
#undef ISA
#define ISA avx512
    [NB_ISA_AVX512] = TABLE,
#undef ISA
#endif
};

static const vm_table *active_table(void)
{
    const vm_table *t =
        atomic_load_explicit(&active_kernels, memory_order_relaxed);
    if (!t) {
        t = &tables[nb_isa_active()];
        atomic_store_explicit(&active_kernels, t, memory_order_relaxed);
    }
    return t;
}

#define SITE(name)                                                             \
    static nb_parallel_site site_##name =                                      \
        NB_PARALLEL_SITE("vm." #name, VM_GRAIN);

#define FORWARD(name)                                                          \
    SITE(name##_f32)                                                      \
    SITE(name##_f64)                                                      \
    void nb_vm_##name##_f32(int64_t n, const float *x, float *y)               \
    {                                                                          \
        if (n <= 0)                                                            \
            return;                                                            \
        VM_DIRECT(n, active_table()->name##_f32(n, x, y));                     \
        vm_call c = {.form = VM_UNARY, .fn.unary32 = active_table()->name##_f32, \
                     .n = n, .x = x, .y = y};                                  \
        vm_run(&site_##name##_f32, &c);                                        \
    }                                                                          \
    void nb_vm_##name##_f64(int64_t n, const double *x, double *y)             \
    {                                                                          \
        if (n <= 0)                                                            \
            return;                                                            \
        VM_DIRECT(n, active_table()->name##_f64(n, x, y));                     \
        vm_call c = {.form = VM_UNARY, .f64 = true,                            \
                     .fn.unary64 = active_table()->name##_f64, .n = n,         \
                     .x = x, .y = y};                                          \
        vm_run(&site_##name##_f64, &c);                                        \
    }
NB_VM_UNARY(FORWARD)
#undef FORWARD

#define GRAD(name)                                                             \
    SITE(name##_grad_f32)                                                 \
    SITE(name##_grad_f64)                                                 \
    void nb_vm_##name##_grad_f32(int64_t n, const float *x, const float *dy,   \
                                 float *dx)                                    \
    {                                                                          \
        if (n <= 0)                                                            \
            return;                                                            \
        VM_DIRECT(n, active_table()->name##_grad_f32(n, x, dy, dx));           \
        vm_call c = {.form = VM_GRAD,                                          \
                     .fn.grad32 = active_table()->name##_grad_f32, .n = n,     \
                     .x = x, .dy = dy, .y = dx};                               \
        vm_run(&site_##name##_grad_f32, &c);                                   \
    }                                                                          \
    void nb_vm_##name##_grad_f64(int64_t n, const double *x, const double *dy, \
                                 double *dx)                                   \
    {                                                                          \
        if (n <= 0)                                                            \
            return;                                                            \
        VM_DIRECT(n, active_table()->name##_grad_f64(n, x, dy, dx));           \
        vm_call c = {.form = VM_GRAD, .f64 = true,                             \
                     .fn.grad64 = active_table()->name##_grad_f64, .n = n,     \
                     .x = x, .dy = dy, .y = dx};                               \
        vm_run(&site_##name##_grad_f64, &c);                                   \
    }
NB_VM_GRAD(GRAD)
#undef GRAD

SITE(elu_f32)
SITE(elu_f64)

void nb_vm_elu_f32(int64_t n, float alpha, const float *x, float *y)
{
    if (n <= 0)
        return;
    VM_DIRECT(n, active_table()->elu_f32(n, alpha, x, y));
    vm_call c = {.form = VM_ELU, .fn.elu32 = active_table()->elu_f32,
                 .n = n, .x = x, .y = y, .alpha = alpha};
    vm_run(&site_elu_f32, &c);
}

void nb_vm_elu_f64(int64_t n, double alpha, const double *x, double *y)
{
    if (n <= 0)
        return;
    VM_DIRECT(n, active_table()->elu_f64(n, alpha, x, y));
    vm_call c = {.form = VM_ELU, .f64 = true,
                 .fn.elu64 = active_table()->elu_f64, .n = n, .x = x, .y = y,
                 .alpha = alpha};
    vm_run(&site_elu_f64, &c);
}

/* No nb_parallel_for: a cell is one batch row of a recurrent step, and
 * the recurrent kernels already share the rows among threads. */
void nb_vm_lstm_cell_f32(int64_t n, float *a, const float *cp, float *c,
                         float *tc, float *h)
{
    if (n > 0)
        active_table()->lstm_cell_f32(n, a, cp, c, tc, h);
}

void nb_vm_lstm_cell_f64(int64_t n, double *a, const double *cp, double *c,
                         double *tc, double *h)
{
    if (n > 0)
        active_table()->lstm_cell_f64(n, a, cp, c, tc, h);
}

void nb_vm_lstm_cell_back_f32(int64_t n, const float *a, const float *cp,
                              const float *tc, const float *dy,
                              const float *dhn, float *dc, float *da,
                              float *da2)
{
    if (n > 0)
        active_table()->lstm_cell_back_f32(n, a, cp, tc, dy, dhn, dc, da, da2);
}

void nb_vm_lstm_cell_back_f64(int64_t n, const double *a, const double *cp,
                              const double *tc, const double *dy,
                              const double *dhn, double *dc, double *da,
                              double *da2)
{
    if (n > 0)
        active_table()->lstm_cell_back_f64(n, a, cp, tc, dy, dhn, dc, da, da2);
}

void nb_vm_gru_cell_back_f32(int64_t n, const float *a, const float *hn,
                             const float *hp, const float *dy, float *dhn,
                             float *da, float *dah, float *dah2)
{
    if (n > 0)
        active_table()->gru_cell_back_f32(n, a, hn, hp, dy, dhn, da, dah, dah2);
}

void nb_vm_gru_cell_back_f64(int64_t n, const double *a, const double *hn,
                             const double *hp, const double *dy, double *dhn,
                             double *da, double *dah, double *dah2)
{
    if (n > 0)
        active_table()->gru_cell_back_f64(n, a, hn, hp, dy, dhn, da, dah, dah2);
}
