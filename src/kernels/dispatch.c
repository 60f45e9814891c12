/* Run-time choice of the kernels' instruction set and thread count, and
 * the public elementwise entry points, which forward to the chosen
 * implementation.
 *
 * An elementwise call long enough to pay for waking threads (OpenMP builds)
 * is cut into one contiguous share per thread, each a whole number of
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
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/gemm.h"
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
        return true;
    }
    int wanted = isa_by_name(isa);
    if (wanted < 0 || !cpu_has((nb_isa)wanted))
        return false;
    atomic_store_explicit(&forced_isa, wanted, memory_order_relaxed);
    return true;
}

/* ---- threads ---- */

static _Atomic int threads_max = 0;

int nb_kernel_threads_max(void)
{
    int most = atomic_load_explicit(&threads_max, memory_order_relaxed);
    if (most > 0)
        return most;
#ifdef _OPENMP
    most = omp_get_num_procs();
#else
    most = 1;
#endif
    most = most < 1                       ? 1
           : most > NB_KERNEL_MAX_THREADS ? NB_KERNEL_MAX_THREADS
                                          : most;
    /* The first value stored wins, even if threads pinned to different
     * CPU sets race here: workspaces sized with it must stay valid. */
    int unset = 0;
    if (!atomic_compare_exchange_strong(&threads_max, &unset, most))
        most = unset;
    return most;
}

#ifdef _OPENMP
/* Until when (omp_get_wtime, in microseconds) the kernels stay on one
 * thread after a late team. 0.2 s: on a machine that stays overloaded, one
 * late region (a few ms) per back-off costs a few percent, and on an idle
 * machine a stray late region costs at most 0.2 s on one thread. */
static _Atomic int64_t single_until_us = 0;
#define BACKOFF_US 200000
/* A team is late when the master waited this much longer than its own
 * share took: far beyond the few microseconds a region costs, and beyond
 * the occasional slow wake-up of a worker that fell asleep while the
 * caller ran serial code (measured on this kind of VM: tens to hundreds of
 * microseconds, now and then more). */
#define LATE_SLACK 500e-6
/* Only this many late teams in a row mean an overloaded machine; a single
 * late one is a hiccup, and backing off on it cost the two-thread MLP its
 * whole gain on an idle machine. */
#define LATE_STREAK 4
static _Atomic int late_streak = 0;

void nb_kernel_team_times(double start, double own_done, double end)
{
    nb_kernel_team_report(own_done - start, end - own_done);
}

void nb_kernel_team_report(double own, double waited)
{
    if (waited <= own + LATE_SLACK) {
        atomic_store_explicit(&late_streak, 0, memory_order_relaxed);
        return;
    }
    if (atomic_fetch_add_explicit(&late_streak, 1, memory_order_relaxed) + 1 <
        LATE_STREAK)
        return;
    atomic_store_explicit(&late_streak, 0, memory_order_relaxed);
    atomic_store_explicit(&single_until_us,
                          (int64_t)(omp_get_wtime() * 1e6) + BACKOFF_US,
                          memory_order_relaxed);
}
#else
void nb_kernel_team_report(double own, double waited)
{
    (void)own;
    (void)waited;
}
#endif

int nb_kernel_threads(void)
{
#ifdef _OPENMP
    /* a caller that already runs a team keeps its threads busy itself */
    if (omp_in_parallel())
        return 1;
    int64_t until =
        atomic_load_explicit(&single_until_us, memory_order_relaxed);
    if (until != 0 && (int64_t)(omp_get_wtime() * 1e6) < until)
        return 1;
    int want = omp_get_max_threads(), most = nb_kernel_threads_max();
    return want < 1 ? 1 : want < most ? want : most;
#else
    return 1;
#endif
}

/* Elements per thread below which a second thread costs more than it
 * saves. Waking one costs a few microseconds, so a share should take about
 * 5 us on one core; measured f32 costs per element (ns, AVX-512): exp
 * 0.28; log, tanh, sigmoid, silu and the softplus and silu derivatives
 * 0.55-0.7; softplus, selu, elu 1.2-1.35; gelu and its derivative 3.7.
 * f64 costs 2.6 to 5.6 times as much; its shares are a quarter. exp f32
 * on 32 Ki elements: 11.9 us on one thread, 7.0 on two; on 16 Ki, the
 * smallest that would split, a share is about the cost of waking. */
#define SHARE_exp 16384
#define SHARE_log 8192
#define SHARE_tanh 8192
#define SHARE_sigmoid 8192
#define SHARE_silu 8192
#define SHARE_softplus 4096
#define SHARE_selu 4096
#define SHARE_elu 4096
#define SHARE_gelu 2048
#define SHARE_softplus_grad 8192
#define SHARE_silu_grad 8192
#define SHARE_gelu_grad 2048
#define VM_CHUNK 64

#ifdef _OPENMP
static int vm_threads(int64_t n, int64_t share)
{
    if (n < 2 * share)
        return 1;
    int64_t by_size = n / share;
    int avail = nb_kernel_threads();
    return by_size < avail ? (int)by_size : avail;
}

/* This thread's share [*off, *off + *len) of n elements. */
static void vm_share(int64_t n, int64_t *off, int64_t *len)
{
    int64_t t = omp_get_thread_num(), p = omp_get_num_threads();
    int64_t chunks = (n + VM_CHUNK - 1) / VM_CHUNK;
    int64_t lo = chunks * t / p * VM_CHUNK,
            hi = chunks * (t + 1) / p * VM_CHUNK;
    *off = lo;
    *len = (hi < n ? hi : n) - lo;
}

/* Runs `call` (which reads off and len) on each thread's share and returns
 * from the enclosing function, when n is worth threads (shares of at least
 * `share` elements); else does nothing,
 * and the caller's one-thread call follows. */
#define SPLIT(n, share, call)                                                  \
    do {                                                                       \
        int p_ = vm_threads(n, share);                                         \
        if (p_ > 1) {                                                          \
            double start_ = omp_get_wtime(), own_ = start_;                    \
            _Pragma("omp parallel num_threads(p_)")                            \
            {                                                                  \
                int64_t off, len;                                              \
                vm_share(n, &off, &len);                                       \
                if (len > 0)                                                   \
                    call;                                                      \
                if (omp_get_thread_num() == 0)                                 \
                    own_ = omp_get_wtime();                                    \
            }                                                                  \
            nb_kernel_team_times(start_, own_, omp_get_wtime());               \
            return;                                                            \
        }                                                                      \
    } while (0)
#else
#define SPLIT(n, share, call) ((void)0)
#endif

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
     .elu_f64 = PASTE(nb_vm_elu, _f64_, ISA)}
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
    return &tables[nb_isa_active()];
}

#define FORWARD(name)                                                          \
    void nb_vm_##name##_f32(int64_t n, const float *x, float *y)               \
    {                                                                          \
        if (n <= 0)                                                            \
            return;                                                            \
        const vm_table *tbl = active_table();                                  \
        SPLIT(n, SHARE_##name, tbl->name##_f32(len, x + off, y + off));        \
        tbl->name##_f32(n, x, y);                                              \
    }                                                                          \
    void nb_vm_##name##_f64(int64_t n, const double *x, double *y)             \
    {                                                                          \
        if (n <= 0)                                                            \
            return;                                                            \
        const vm_table *tbl = active_table();                                  \
        SPLIT(n, SHARE_##name / 4, tbl->name##_f64(len, x + off, y + off));    \
        tbl->name##_f64(n, x, y);                                              \
    }
NB_VM_UNARY(FORWARD)
#undef FORWARD

#define GRAD(name)                                                             \
    void nb_vm_##name##_grad_f32(int64_t n, const float *x, const float *dy,   \
                                 float *dx)                                    \
    {                                                                          \
        if (n <= 0)                                                            \
            return;                                                            \
        const vm_table *tbl = active_table();                                  \
        SPLIT(n, SHARE_##name##_grad,                                          \
              tbl->name##_grad_f32(len, x + off, dy + off, dx + off));         \
        tbl->name##_grad_f32(n, x, dy, dx);                                    \
    }                                                                          \
    void nb_vm_##name##_grad_f64(int64_t n, const double *x, const double *dy, \
                                 double *dx)                                   \
    {                                                                          \
        if (n <= 0)                                                            \
            return;                                                            \
        const vm_table *tbl = active_table();                                  \
        SPLIT(n, SHARE_##name##_grad / 4,                                      \
              tbl->name##_grad_f64(len, x + off, dy + off, dx + off));         \
        tbl->name##_grad_f64(n, x, dy, dx);                                    \
    }
NB_VM_GRAD(GRAD)
#undef GRAD

void nb_vm_elu_f32(int64_t n, float alpha, const float *x, float *y)
{
    if (n <= 0)
        return;
    const vm_table *tbl = active_table();
    SPLIT(n, SHARE_elu, tbl->elu_f32(len, alpha, x + off, y + off));
    tbl->elu_f32(n, alpha, x, y);
}

void nb_vm_elu_f64(int64_t n, double alpha, const double *x, double *y)
{
    if (n <= 0)
        return;
    const vm_table *tbl = active_table();
    SPLIT(n, SHARE_elu / 4, tbl->elu_f64(len, alpha, x + off, y + off));
    tbl->elu_f64(n, alpha, x, y);
}
