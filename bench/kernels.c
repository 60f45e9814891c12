/* Kernel benchmarks, single thread, f32.
 *
 *   gemm     GFLOP/s (2 m n k flops per product) of nabla's internal GEMM
 *            (nb_gemm_f32 from src/kernels, with its workspace) on the
 *            eight products of one batch-64 step of the 784-256-128-10 MLP
 *            and on 1024^3, next to three packaged peers on the same
 *            operands in the same process, each when built with it:
 *            OpenBLAS's cblas_sgemm (its kernel follows OPENBLAS_CORETYPE,
 *            so bench/run runs this section with and without the pin),
 *            BLIS's typed bli_sgemm (row and column strides, so no name
 *            clashes with OpenBLAS's cblas_sgemm/sgemm_, which BLIS also
 *            exports) and libxsmm's JIT kernels from libxsmm_smmdispatch
 *            (column-major: C^T = op(B)^T op(A)^T; where it generates no
 *            kernel, libxsmm_sgemm, i.e. the linked BLAS). Forward: Y = X W
 *            (beta 0). Backward, with beta 1 since backward adds its
 *            messages: dW = X^T dY, dX = dY W^T, transposes absorbed by the
 *            GEMM's flags in every library. Before a peer is timed its
 *            product is checked against nabla's (max |difference| / max
 *            |C| <= 1e-4, else it is reported as null).
 *   eltwise  GB/s of the public graph ops relu, add, sigmoid, tanh and exp
 *            (nb_forward of one op node on constant inputs of 1M and 16M
 *            elements), bytes counted as STREAM does: those the op must
 *            read and write (8 per element unary, 12 for add). Next to the
 *            bounds measured in the same run: memcpy (8 per element),
 *            STREAM scale y = q x (8) and STREAM add z = x + y (12).
 *   vmath    elements/ns of SLEEF through nabla's dispatched kernels
 *            (nb_vm_exp_f32, nb_vm_tanh_f32, nb_vm_sigmoid_f32) against a
 *            plain loop over the scalar libm functions (expf, tanhf,
 *            1 / (1 + expf(-x))) on 1M elements in [-5, 5].
 *
 * Every figure is the median of `reps` samples, each sample long enough
 * (>= ~20 ms, or one call if a call takes longer) to be timed well.
 *
 *   kernels [--only gemm|eltwise|vmath] [--reps R] [--big N]
 */
/* dladdr and RTLD_DEFAULT name the library behind each peer's symbol. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "kernels/kernels.h"
#include "nabla/nabla.h"

#ifdef BENCH_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef BENCH_HAVE_BLIS
#include <blis.h>
#endif
#ifdef BENCH_HAVE_LIBXSMM
#include <libxsmm.h>
#endif

static int reps = 7;

static float *alloc_f32(int64_t n)
{
    size_t bytes = ((size_t)n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        fprintf(stderr, "kernels: out of memory\n");
        exit(1);
    }
    return p;
}

static void fill_uniform(float *p, int64_t n, uint64_t seed, float lo,
                         float hi)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15u + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p[i] = lo + (hi - lo) * (float)((double)(s >> 40) / 16777216.0);
    }
}

/* A timed workload: fn(ctx) runs it once. */
typedef void (*work_fn)(void *ctx);

/* Median seconds per call. Calls per sample are calibrated so that a
 * sample lasts ~20 ms. */
static double time_call(work_fn fn, void *ctx)
{
    fn(ctx); /* warm caches, fault pages in */
    double t0 = bench_now();
    fn(ctx);
    double one = bench_now() - t0;
    int64_t calls = one > 0.02 ? 1 : (int64_t)(0.02 / (one > 1e-9 ? one : 1e-9)) + 1;
    double *v = malloc((size_t)reps * sizeof *v);
    for (int r = 0; r < reps; r++) {
        double a = bench_now();
        for (int64_t c = 0; c < calls; c++) {
            fn(ctx);
            /* Each call's stores must happen: without this barrier the
             * compiler may inline a loop and drop the repeated ones. */
            __asm__ volatile("" ::: "memory");
        }
        v[r] = (bench_now() - a) / (double)calls;
    }
    double m = bench_median(v, reps);
    free(v);
    return m;
}

/* ---- GEMM ---- */
typedef struct gemm_case {
    const char *name;
    bool ta, tb;
    int64_t m, n, k;
    float beta;
} gemm_case;

typedef struct gemm_ctx {
    const gemm_case *c;
    const float *a, *b;
    float *cm;
    int64_t lda, ldb;
    void *ws;
#ifdef BENCH_HAVE_LIBXSMM
    libxsmm_smmfunction xsmm; /* JIT kernel, NULL when libxsmm has none */
#endif
} gemm_ctx;

#if defined(BENCH_HAVE_OPENBLAS) || defined(BENCH_HAVE_BLIS)
/* The shared object that defines a symbol as the program resolves it (the
 * peers export clashing names, so each figure names where its code came
 * from). */
static const char *lib_of_symbol(const char *name)
{
    Dl_info d;
    void *p = dlsym(RTLD_DEFAULT, name);
    if (p && dladdr(p, &d) && d.dli_fname)
        return d.dli_fname;
    return "";
}
#endif

static void run_nabla_gemm(void *p)
{
    gemm_ctx *x = p;
    const gemm_case *c = x->c;
    nb_gemm_f32(c->ta, c->tb, c->m, c->n, c->k, 1.0f, x->a, x->lda, x->b,
                x->ldb, c->beta, x->cm, c->n, x->ws);
}

#ifdef BENCH_HAVE_OPENBLAS
static void run_openblas_gemm(void *p)
{
    gemm_ctx *x = p;
    const gemm_case *c = x->c;
    cblas_sgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans,
                c->tb ? CblasTrans : CblasNoTrans, (int)c->m, (int)c->n,
                (int)c->k, 1.0f, x->a, (int)x->lda, x->b, (int)x->ldb, c->beta,
                x->cm, (int)c->n);
}
#endif

#ifdef BENCH_HAVE_BLIS
/* BLIS's typed API takes a row and a column stride per operand, so the
 * row-major operands go in as they are (row stride = leading dimension,
 * column stride 1); its names (bli_*) clash with nothing in OpenBLAS. */
static void run_blis_gemm(void *p)
{
    gemm_ctx *x = p;
    const gemm_case *c = x->c;
    float alpha = 1.0f, beta = c->beta;
    bli_sgemm(c->ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
              c->tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, c->m, c->n, c->k,
              &alpha, (float *)x->a, x->lda, 1, (float *)x->b, x->ldb, 1, &beta,
              x->cm, c->n, 1);
}
#endif

#ifdef BENCH_HAVE_LIBXSMM
/* libxsmm is column-major. A row-major C = op(A) op(B) (m x n, ld n) is,
 * read column-major, C^T = op(B)^T op(A)^T (n x m): libxsmm's first operand
 * is our B (its transpose flag is our tb), its second our A (flag ta), with
 * M = n, N = m, K = k and the same leading dimensions. */
static int xsmm_flags(const gemm_case *c)
{
    return (c->tb ? LIBXSMM_GEMM_FLAG_TRANS_A : 0) |
           (c->ta ? LIBXSMM_GEMM_FLAG_TRANS_B : 0);
}

static libxsmm_smmfunction xsmm_dispatch(const gemm_ctx *x)
{
    const gemm_case *c = x->c;
    libxsmm_blasint lda = (libxsmm_blasint)x->ldb,
                    ldb = (libxsmm_blasint)x->lda, ldc = (libxsmm_blasint)c->n;
    float alpha = 1.0f, beta = c->beta;
    int flags = xsmm_flags(c);
    return libxsmm_smmdispatch((libxsmm_blasint)c->n, (libxsmm_blasint)c->m,
                               (libxsmm_blasint)c->k, &lda, &ldb, &ldc, &alpha,
                               &beta, &flags, NULL);
}

/* The JIT kernel when libxsmm generated one (dispatched once, outside the
 * timing, as its users cache the pointer); otherwise libxsmm_sgemm, which
 * hands such a product to the BLAS that the program links. */
static void run_xsmm_gemm(void *p)
{
    gemm_ctx *x = p;
    const gemm_case *c = x->c;
    if (x->xsmm) {
        x->xsmm(x->b, x->a, x->cm);
        return;
    }
    libxsmm_blasint m = (libxsmm_blasint)c->n, n = (libxsmm_blasint)c->m,
                    k = (libxsmm_blasint)c->k, lda = (libxsmm_blasint)x->ldb,
                    ldb = (libxsmm_blasint)x->lda, ldc = (libxsmm_blasint)c->n;
    float alpha = 1.0f, beta = c->beta;
    char ta = c->tb ? 't' : 'n', tb = c->ta ? 't' : 'n';
    libxsmm_sgemm(&ta, &tb, &m, &n, &k, &alpha, x->b, &lda, x->a, &ldb, &beta,
                  x->cm, &ldc);
}
#endif

#if defined(BENCH_HAVE_OPENBLAS) || defined(BENCH_HAVE_BLIS) ||               \
    defined(BENCH_HAVE_LIBXSMM)
/* Runs one library once on C = c0 and returns max |C - ref| / max(1,
 * max |ref|): every peer must compute the same product as nabla (the
 * transposes and the beta included) before its time counts. */
static double gemm_check(work_fn fn, gemm_ctx *x, const float *c0,
                         const float *ref)
{
    const gemm_case *c = x->c;
    int64_t n = c->m * c->n;
    memcpy(x->cm, c0, (size_t)n * sizeof(float));
    fn(x);
    double err = 0, scale = 1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)x->cm[i] - (double)ref[i]);
        err = d > err ? d : err;
        scale = fabs((double)ref[i]) > scale ? fabs((double)ref[i]) : scale;
    }
    return err / scale;
}

/* Relative error above which a peer's product counts as wrong: f32 sums of
 * at most 1024 terms of size <= 1 differ by far less between orders. */
#define GEMM_CHECK_TOL 1e-4

/* Times one peer after checking it; NAN (shown as "-") when it is wrong. */
static double gemm_peer(const char *lib, work_fn fn, gemm_ctx *x,
                        const float *c0, const float *ref, double *err_out)
{
    double err = gemm_check(fn, x, c0, ref);
    *err_out = err;
    if (!(err <= GEMM_CHECK_TOL)) {
        fprintf(stderr,
                "kernels: %s gives a wrong product on %s (relative "
                "error %.3g); not timed\n",
                lib, x->c->name, err);
        return NAN;
    }
    memset(x->cm, 0, (size_t)(x->c->m * x->c->n) * sizeof(float));
    return time_call(fn, x);
}
#endif

static void bench_gemm(void)
{
    /* One batch-64 step of 784-256-128-10: three forward products, three
     * weight gradients dW = X^T dY, and the two input gradients that
     * backward needs (layer 1's input is the data, which needs none). */
    static const gemm_case cases[] = {
        {"fwd 64x784 * 784x256", false, false, 64, 256, 784, 0},
        {"fwd 64x256 * 256x128", false, false, 64, 128, 256, 0},
        {"fwd 64x128 * 128x10", false, false, 64, 10, 128, 0},
        {"dW1 = X^T dY 784x64 * 64x256", true, false, 784, 256, 64, 1},
        {"dW2 = X^T dY 256x64 * 64x128", true, false, 256, 128, 64, 1},
        {"dW3 = X^T dY 128x64 * 64x10", true, false, 128, 10, 64, 1},
        {"dX2 = dY W^T 64x128 * 128x256", false, true, 64, 256, 128, 1},
        {"dX3 = dY W^T 64x10 * 10x128", false, true, 64, 128, 10, 1},
        {"square 1024^3", false, false, 1024, 1024, 1024, 0},
    };
    const int n_cases = (int)(sizeof cases / sizeof cases[0]);
#ifdef BENCH_HAVE_OPENBLAS
    openblas_set_num_threads(1);
    const char *core = openblas_get_corename();
    /* cblas_sgemm must be OpenBLAS's, not BLIS's copy of the name. */
    const char *ob_lib = lib_of_symbol("cblas_sgemm");
    bool ob_ok = strstr(ob_lib, "openblas") != NULL;
    if (!ob_ok)
        fprintf(stderr,
                "kernels: cblas_sgemm resolves to %s, not OpenBLAS; "
                "OpenBLAS not timed\n",
                ob_lib);
#else
    const char *core = "", *ob_lib = "";
#endif
#ifdef BENCH_HAVE_BLIS
    /* The bench links BLIS's serial flavour when it finds it; any other
     * flavour is held to one thread here (and by BLIS_NUM_THREADS=1 from
     * bench/run). */
    bli_thread_set_num_threads(1);
    const char *blis_arch = bli_arch_string(bli_arch_query_id());
    const char *blis_threading = bli_info_get_enable_openmp()     ? "openmp"
                                 : bli_info_get_enable_pthreads() ? "pthreads"
                                                                  : "none";
    const char *blis_version = bli_info_get_version_str();
    const char *blis_lib = lib_of_symbol("bli_sgemm");
#else
    const char *blis_arch = "", *blis_threading = "", *blis_version = "",
               *blis_lib = "";
#endif
#ifdef BENCH_HAVE_LIBXSMM
    libxsmm_init();
    const char *xsmm_arch = libxsmm_get_target_arch();
    /* The BLAS that libxsmm_sgemm falls back to. */
    libxsmm_sgemm_function orig = libxsmm_original_sgemm();
    const char *xsmm_blas = "";
    Dl_info dl;
    void *orig_p;
    memcpy(&orig_p, &orig, sizeof orig_p);
    if (orig_p && dladdr(orig_p, &dl) && dl.dli_fname)
        xsmm_blas = dl.dli_fname;
#else
    const char *xsmm_arch = "", *xsmm_blas = "";
#endif
    const char *pin = getenv("OPENBLAS_CORETYPE");
    double step_flops = 0, step_nb = 0, step_ob = 0, step_bl = 0, step_xs = 0;
    for (int i = 0; i < n_cases; i++) {
        const gemm_case *c = &cases[i];
        /* Stored shapes: A is m x k, or k x m when transposed; B is k x n,
         * or n x k. */
        int64_t a_rows = c->ta ? c->k : c->m, a_cols = c->ta ? c->m : c->k;
        int64_t b_rows = c->tb ? c->n : c->k, b_cols = c->tb ? c->k : c->n;
        float *a = alloc_f32(a_rows * a_cols), *b = alloc_f32(b_rows * b_cols);
        float *cm = alloc_f32(c->m * c->n), *c0 = alloc_f32(c->m * c->n);
        float *ref = alloc_f32(c->m * c->n);
        fill_uniform(a, a_rows * a_cols, 1 + (uint64_t)i, -1, 1);
        fill_uniform(b, b_rows * b_cols, 100 + (uint64_t)i, -1, 1);
        fill_uniform(c0, c->m * c->n, 200 + (uint64_t)i, -1, 1);
        void *ws = aligned_alloc(
            64, (nb_gemm_workspace_f32(c->m, c->n, c->k) + 63) / 64 * 64 + 64);
        gemm_ctx ctx = {.c = c,
                        .a = a,
                        .b = b,
                        .cm = cm,
                        .lda = a_cols,
                        .ldb = b_cols,
                        .ws = ws};
        /* nabla's product on c0 is the reference the peers are held to. */
        memcpy(cm, c0, (size_t)(c->m * c->n) * sizeof(float));
        run_nabla_gemm(&ctx);
        memcpy(ref, cm, (size_t)(c->m * c->n) * sizeof(float));
        /* Backward accumulates into C, so C's values grow with every call;
         * they stay far from overflow in the calls a sample makes, and no
         * denormals arise from uniform inputs. */
        memset(cm, 0, (size_t)(c->m * c->n) * sizeof(float));
        double flops = 2.0 * (double)c->m * (double)c->n * (double)c->k;
        double t_nb = time_call(run_nabla_gemm, &ctx);
        double t_ob = NAN, t_bl = NAN, t_xs = NAN;
        double e_ob = NAN, e_bl = NAN, e_xs = NAN;
        const char *xsmm_path = "";
#ifdef BENCH_HAVE_OPENBLAS
        if (ob_ok)
            t_ob =
                gemm_peer("OpenBLAS", run_openblas_gemm, &ctx, c0, ref, &e_ob);
#endif
#ifdef BENCH_HAVE_BLIS
        t_bl = gemm_peer("BLIS", run_blis_gemm, &ctx, c0, ref, &e_bl);
#endif
#ifdef BENCH_HAVE_LIBXSMM
        ctx.xsmm = xsmm_dispatch(&ctx);
        xsmm_path = ctx.xsmm ? "jit" : "blas";
        t_xs = gemm_peer("libxsmm", run_xsmm_gemm, &ctx, c0, ref, &e_xs);
#endif
        if (i < 8) {
            step_flops += flops;
            step_nb += t_nb;
            step_ob += t_ob;
            step_bl += t_bl;
            step_xs += t_xs;
        }
        bench_log("gemm %-32s nabla %6.1f  openblas %6.1f  blis %6.1f  "
                  "libxsmm %6.1f%s GFLOP/s\n",
                  c->name, flops / t_nb * 1e-9, flops / t_ob * 1e-9,
                  flops / t_bl * 1e-9, flops / t_xs * 1e-9,
                  strcmp(xsmm_path, "blas") ? "" : " (blas)");
        bench_json j;
        bench_json_begin(&j, "gemm");
        bench_json_str(&j, "name", c->name);
        bench_json_num(&j, "m", (double)c->m);
        bench_json_num(&j, "n", (double)c->n);
        bench_json_num(&j, "k", (double)c->k);
        bench_json_num(&j, "trans_a", c->ta);
        bench_json_num(&j, "trans_b", c->tb);
        bench_json_num(&j, "nabla_gflops", flops / t_nb * 1e-9);
        bench_json_num(&j, "openblas_gflops", flops / t_ob * 1e-9);
        bench_json_num(&j, "blis_gflops", flops / t_bl * 1e-9);
        bench_json_num(&j, "libxsmm_gflops", flops / t_xs * 1e-9);
        bench_json_str(&j, "libxsmm_path", xsmm_path);
        bench_json_num(&j, "openblas_check_err", e_ob);
        bench_json_num(&j, "blis_check_err", e_bl);
        bench_json_num(&j, "libxsmm_check_err", e_xs);
        bench_json_str(&j, "openblas_core", core);
        bench_json_str(&j, "openblas_coretype_env", pin ? pin : "");
        bench_json_str(&j, "nabla_isa", nb_vm_isa());
        bench_json_end(&j);
        free(ws);
        free(ref);
        free(c0);
        free(cm);
        free(b);
        free(a);
    }
    bench_json j;
    bench_json_begin(&j, "gemm_step");
    bench_json_str(&j, "name", "8 GEMMs of one batch-64 step");
    bench_json_num(&j, "nabla_gflops", step_flops / step_nb * 1e-9);
    bench_json_num(&j, "openblas_gflops", step_flops / step_ob * 1e-9);
    bench_json_num(&j, "blis_gflops", step_flops / step_bl * 1e-9);
    bench_json_num(&j, "libxsmm_gflops", step_flops / step_xs * 1e-9);
    bench_json_str(&j, "openblas_core", core);
    bench_json_str(&j, "openblas_coretype_env", pin ? pin : "");
    bench_json_end(&j);
    bench_json_begin(&j, "gemm_libs");
    bench_json_str(&j, "openblas_lib", ob_lib);
    bench_json_str(&j, "openblas_core", core);
    bench_json_str(&j, "blis_version", blis_version);
    bench_json_str(&j, "blis_arch", blis_arch);
    bench_json_str(&j, "blis_threading", blis_threading);
    bench_json_str(&j, "blis_lib", blis_lib);
    bench_json_str(&j, "libxsmm_version",
#ifdef BENCH_HAVE_LIBXSMM
                   LIBXSMM_CONFIG_VERSION
#else
                   ""
#endif
    );
    bench_json_str(&j, "libxsmm_arch", xsmm_arch);
    bench_json_str(&j, "libxsmm_fallback_blas", xsmm_blas);
    bench_json_end(&j);
}

/* ---- elementwise ---- */
typedef struct stream_ctx {
    int64_t n;
    const float *x, *y;
    float *z;
    float q;
} stream_ctx;

static void run_memcpy(void *p)
{
    stream_ctx *s = p;
    memcpy(s->z, s->x, (size_t)s->n * sizeof(float));
}

static void run_scale(void *p)
{
    stream_ctx *s = p;
    const float *restrict x = s->x;
    float *restrict z = s->z;
    float q = s->q;
    for (int64_t i = 0; i < s->n; i++)
        z[i] = q * x[i];
}

static void run_add(void *p)
{
    stream_ctx *s = p;
    const float *restrict x = s->x, *restrict y = s->y;
    float *restrict z = s->z;
    for (int64_t i = 0; i < s->n; i++)
        z[i] = x[i] + y[i];
}

typedef struct op_ctx {
    nb_graph *g;
    nb_node *node;
} op_ctx;

static void run_op(void *p)
{
    op_ctx *o = p;
    if (nb_forward(o->g, o->node) != NB_OK) {
        fprintf(stderr, "kernels: %s\n", nb_graph_error(o->g));
        exit(1);
    }
}

static void emit_bw(const char *name, const char *what, int64_t n,
                    double bytes_per_elem, double seconds)
{
    double gbs = bytes_per_elem * (double)n / seconds * 1e-9;
    bench_log("eltwise %-8s n=%-9lld %7.1f GB/s  %6.3f elem/ns\n", name,
              (long long)n, gbs, (double)n / seconds * 1e-9);
    bench_json j;
    bench_json_begin(&j, "eltwise");
    bench_json_str(&j, "name", name);
    bench_json_str(&j, "what", what);
    bench_json_num(&j, "n", (double)n);
    bench_json_num(&j, "bytes_per_elem", bytes_per_elem);
    bench_json_num(&j, "gbs", gbs);
    bench_json_num(&j, "elem_per_ns", (double)n / seconds * 1e-9);
    bench_json_end(&j);
}

static void bench_eltwise(int64_t big)
{
    int64_t sizes[2] = {INT64_C(1) << 20, big};
    for (int si = 0; si < 2; si++) {
        int64_t n = sizes[si];
        float *x = alloc_f32(n), *y = alloc_f32(n), *z = alloc_f32(n);
        fill_uniform(x, n, 7, -5, 5);
        fill_uniform(y, n, 8, -5, 5);
        memset(z, 0, (size_t)n * sizeof(float));
        stream_ctx s = {n, x, y, z, 1.5f};
        emit_bw("memcpy", "bound", n, 8, time_call(run_memcpy, &s));
        emit_bw("scale", "bound", n, 8, time_call(run_scale, &s));
        emit_bw("add_loop", "bound", n, 12, time_call(run_add, &s));
        free(z);
        free(y);

        nb_graph *g = nb_graph_new();
        nb_node *a = nb_constant(g, "a", NB_F32, 1, (int64_t[]){n});
        nb_node *b = nb_constant(g, "b", NB_F32, 1, (int64_t[]){n});
        if (!a || !b) {
            fprintf(stderr, "kernels: %s\n", nb_graph_error(g));
            exit(1);
        }
        memcpy(nb_tensor_f32(nb_node_value(a)), x, (size_t)n * sizeof(float));
        fill_uniform(nb_tensor_f32(nb_node_value(b)), n, 9, -5, 5);
        free(x);
        struct {
            const char *name;
            nb_node *node;
            double bytes;
        } ops[] = {
            {"relu", nb_relu(g, a), 8},    {"add", nb_add(g, a, b), 12},
            {"sigmoid", nb_sigmoid(g, a), 8}, {"tanh", nb_tanh(g, a), 8},
            {"exp", nb_exp(g, a), 8},
        };
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            if (!ops[i].node) {
                fprintf(stderr, "kernels: %s\n", nb_graph_error(g));
                exit(1);
            }
            op_ctx o = {g, ops[i].node};
            emit_bw(ops[i].name, "graph op", n, ops[i].bytes,
                    time_call(run_op, &o));
        }
        nb_graph_free(g);
    }
}

/* ---- SLEEF against scalar libm ---- */
typedef struct vm_ctx {
    int64_t n;
    const float *x;
    float *y;
} vm_ctx;

static void run_sleef_exp(void *p)
{
    vm_ctx *v = p;
    nb_vm_exp_f32(v->n, v->x, v->y);
}

static void run_sleef_tanh(void *p)
{
    vm_ctx *v = p;
    nb_vm_tanh_f32(v->n, v->x, v->y);
}

static void run_sleef_sigmoid(void *p)
{
    vm_ctx *v = p;
    nb_vm_sigmoid_f32(v->n, v->x, v->y);
}

/* The scalar loops call libm once per element: without -ffast-math GCC
 * has no vector variant (libmvec) of expf or tanhf to substitute, so these
 * stay scalar calls (checked in the disassembly; see bench/README.md). */
static void run_libm_exp(void *p)
{
    vm_ctx *v = p;
    for (int64_t i = 0; i < v->n; i++)
        v->y[i] = expf(v->x[i]);
}

static void run_libm_tanh(void *p)
{
    vm_ctx *v = p;
    for (int64_t i = 0; i < v->n; i++)
        v->y[i] = tanhf(v->x[i]);
}

static void run_libm_sigmoid(void *p)
{
    vm_ctx *v = p;
    for (int64_t i = 0; i < v->n; i++)
        v->y[i] = 1.0f / (1.0f + expf(-v->x[i]));
}

static void bench_vmath(void)
{
    int64_t n = INT64_C(1) << 20;
    float *x = alloc_f32(n), *y = alloc_f32(n);
    fill_uniform(x, n, 11, -5, 5);
    memset(y, 0, (size_t)n * sizeof(float));
    vm_ctx v = {n, x, y};
    struct {
        const char *name;
        work_fn sleef, libm;
    } fns[] = {
        {"exp", run_sleef_exp, run_libm_exp},
        {"tanh", run_sleef_tanh, run_libm_tanh},
        {"sigmoid", run_sleef_sigmoid, run_libm_sigmoid},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        double ts = time_call(fns[i].sleef, &v);
        double tl = time_call(fns[i].libm, &v);
        double es = (double)n / ts * 1e-9, el = (double)n / tl * 1e-9;
        bench_log("vmath %-8s sleef (%s) %6.3f elem/ns  libm %6.3f elem/ns  "
                  "x%.1f\n",
                  fns[i].name, nb_vm_isa(), es, el, es / el);
        bench_json j;
        bench_json_begin(&j, "vmath");
        bench_json_str(&j, "name", fns[i].name);
        bench_json_str(&j, "isa", nb_vm_isa());
        bench_json_num(&j, "n", (double)n);
        bench_json_num(&j, "sleef_elem_per_ns", es);
        bench_json_num(&j, "libm_elem_per_ns", el);
        bench_json_num(&j, "ratio", es / el);
        bench_json_end(&j);
    }
    free(y);
    free(x);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    int64_t big = INT64_C(1) << 24;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: kernels [--only gemm|eltwise|vmath] "
                            "[--reps R] [--big N]\n");
            return 2;
        }
        const char *flag = argv[i], *val = argv[++i];
        if (!strcmp(flag, "--only"))
            only = val;
        else if (!strcmp(flag, "--reps"))
            reps = atoi(val);
        else if (!strcmp(flag, "--big"))
            big = atoll(val);
        else {
            fprintf(stderr, "kernels: unknown flag %s\n", flag);
            return 2;
        }
    }
    if (reps < 1 || big < 1) {
        fprintf(stderr, "kernels: --reps and --big must be positive\n");
        return 2;
    }
    if (!only || !strcmp(only, "gemm"))
        bench_gemm();
    if (!only || !strcmp(only, "eltwise"))
        bench_eltwise(big);
    if (!only || !strcmp(only, "vmath"))
        bench_vmath();
    return 0;
}
