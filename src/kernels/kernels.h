/* Raw-array math. Knows nothing of graphs or nodes.
 *
 * Elementwise transcendental functions go through SLEEF's vector functions,
 * with the instruction set (AVX-512, AVX2, SSE2, scalar) chosen once at run
 * time from the CPU (or forced with the NABLA_ISA environment variable:
 * avx512, avx2, sse2, scalar). Arrays may alias exactly (y == x) but must
 * not overlap otherwise. Lengths are element counts. Every kernel is within
 * a few ulps of the exact result over the whole range, and NaN, +-inf and
 * huge arguments give the limits (sigmoid(-1000) = 0, softplus(1000) =
 * 1000, gelu(-inf) = -0); tests/test_kernels.c states the bounds.
 */
#ifndef NABLA_KERNELS_H
#define NABLA_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- elementwise, y = f(x) ---- */
#define NB_VM_UNARY(X)                                                         \
    X(exp)                                                                     \
    X(log)                                                                     \
    X(tanh)                                                                    \
    X(sigmoid)                                                                 \
    X(softplus)                                                                \
    X(selu)                                                                    \
    X(gelu)                                                                    \
    X(silu)

#define NB_VM_DECLARE(name)                                                    \
    void nb_vm_##name##_f32(int64_t n, const float *x, float *y);              \
    void nb_vm_##name##_f64(int64_t n, const double *x, double *y);
NB_VM_UNARY(NB_VM_DECLARE)
#undef NB_VM_DECLARE

/* y = x > 0 ? x : alpha * (exp(x) - 1) */
void nb_vm_elu_f32(int64_t n, float alpha, const float *x, float *y);
void nb_vm_elu_f64(int64_t n, double alpha, const double *x, double *y);

/* One LSTM cell of n units in one pass: a holds the pre-activations of
 * the gates i, f, g, o (blocks of n), activated in place (sigmoid,
 * sigmoid, tanh, sigmoid); then c = f cp + i g, tc = tanh(c), h = o tc.
 * Element for element the values of nb_vm_sigmoid and nb_vm_tanh followed
 * by those products; the arrays must not overlap. Runs on the calling
 * thread: the recurrent kernels call it per batch row from their own
 * nb_parallel_for. */
void nb_vm_lstm_cell_f32(int64_t n, float *a, const float *cp, float *c,
                         float *tc, float *h);
void nb_vm_lstm_cell_f64(int64_t n, double *a, const double *cp, double *c,
                         double *tc, double *h);

/* The backward of one LSTM cell of n units, from the activated gates a
 * (i, f, g, o in blocks of n), c_{t-1} (cp) and tanh(c_t) (tc): with
 * dh = dy + dhn, dc_t = dc + dh o (1 - tc^2); then da (4 n, the gates'
 * pre-activation messages, written to da and to da2 alike) and dc <- dc_t f.
 * Only multiplications and additions, in one order for every ISA, so the
 * results are the same bits everywhere. The arrays must not overlap;
 * runs on the calling thread, as nb_vm_lstm_cell. */
void nb_vm_lstm_cell_back_f32(int64_t n, const float *a, const float *cp,
                              const float *tc, const float *dy,
                              const float *dhn, float *dc, float *da,
                              float *da2);
void nb_vm_lstm_cell_back_f64(int64_t n, const double *a, const double *cp,
                              const double *tc, const double *dy,
                              const double *dhn, double *dc, double *da,
                              double *da2);

/* The backward of one GRU cell of n units, from the activated gates a
 * (r, z, n in blocks of n), W_hn h_{t-1} + b_hn (hn) and h_{t-1} (hp):
 * with dh = dy + dhn, the pre-activation messages da (3 n: r, z and n's
 * input part), the recurrent ones dah (r, z as in da, then da_n r),
 * written to dah and dah2 alike, and dhn <- dh z (h_{t-1}'s direct
 * message). Products and sums only, the same bits on every ISA; the
 * arrays must not overlap; runs on the calling thread. */
void nb_vm_gru_cell_back_f32(int64_t n, const float *a, const float *hn,
                             const float *hp, const float *dy, float *dhn,
                             float *da, float *dah, float *dah2);
void nb_vm_gru_cell_back_f64(int64_t n, const double *a, const double *hn,
                             const double *hp, const double *dy, double *dhn,
                             double *da, double *dah, double *dah2);

/* ---- elementwise derivatives that need transcendental math:
 * dx += dy * f'(x) ---- */
#define NB_VM_GRAD(X)                                                          \
    X(softplus)                                                                \
    X(gelu)                                                                    \
    X(silu)

#define NB_VM_DECLARE_GRAD(name)                                               \
    void nb_vm_##name##_grad_f32(int64_t n, const float *x, const float *dy,   \
                                 float *dx);                                   \
    void nb_vm_##name##_grad_f64(int64_t n, const double *x, const double *dy, \
                                 double *dx);
NB_VM_GRAD(NB_VM_DECLARE_GRAD)
#undef NB_VM_DECLARE_GRAD

/* Which instruction set the kernels use, elementwise and GEMM alike:
 * "avx512", "avx2", "sse2" or "scalar" (the last two share the portable
 * GEMM micro-kernel). Chosen on first use: NABLA_ISA if it names one the
 * CPU has, else the best the CPU has. */
const char *nb_vm_isa(void);
/* Forces an instruction set (for tests); returns false if the CPU lacks it
 * or the name is unknown. NULL returns to the automatic choice. Process-
 * wide: not for use while other threads run kernels. */
bool nb_vm_force_isa(const char *isa);

/* ---- matrix product ----
 * C = alpha * op(A) * op(B) + beta * C, row-major, where op(A) is A or its
 * transpose (trans_a) and is m x k, op(B) is k x n, C is m x n. lda, ldb,
 * ldc are the row strides of A, B, C as stored. beta = 1 accumulates, which
 * is how backward adds its messages; beta = 0 overwrites C without reading
 * it (NaN in C does not survive), and alpha = 0 or k = 0 only scales C.
 * Transposes are never materialised: packing absorbs them.
 *
 * The caller lends the packing space: `workspace`, 64-byte aligned, of at
 * least nb_gemm_workspace_*(m, n, k) bytes (at most about 1.2 MiB however
 * large the product). The graph keeps one such buffer, so no call
 * allocates and no thread carries a buffer it never uses. The size covers
 * the slices of every thread a call may use (gemm.c), so it depends on the
 * processors OpenMP sees, not on OMP_NUM_THREADS.
 *
 * Threads (OpenMP builds): a product of enough work, or an elementwise call
 * on a long enough array, is shared among up to omp_get_max_threads()
 * threads (none inside an active parallel region). Each element is
 * computed by one thread in the same order as with one, so results are
 * bitwise identical for any thread count; with one thread no parallel
 * region is entered. Calls on different data may run concurrently. */
size_t nb_gemm_workspace_f32(int64_t m, int64_t n, int64_t k);
size_t nb_gemm_workspace_f64(int64_t m, int64_t n, int64_t k);
/* dst[j ldd + i] = src[i ld + j] for i < rows, j < cols (gemm.c): the
 * GEMM's in-register transpose, for a weight that many products read
 * transposed. */
void nb_transpose_f32(int64_t rows, int64_t cols, const float *src,
                      int64_t ld, float *dst, int64_t ldd);
void nb_transpose_f64(int64_t rows, int64_t cols, const double *src,
                      int64_t ld, double *dst, int64_t ldd);
void nb_gemm_f32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float *a, int64_t lda, const float *b,
                 int64_t ldb, float beta, float *c, int64_t ldc,
                 void *workspace);
void nb_gemm_f64(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 double alpha, const double *a, int64_t lda, const double *b,
                 int64_t ldb, double beta, double *c, int64_t ldc,
                 void *workspace);

#endif
