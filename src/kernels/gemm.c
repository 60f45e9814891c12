/* The built-in GEMM: C = alpha op(A) op(B) + beta C, row-major, with the
 * kernels chosen by instruction set: AVX-512 or AVX2 (gemm_avx512.c,
 * gemm_avx2.c) where the CPU has them, else a portable one. Three paths
 * (gemm_impl.h), chosen per product:
 *
 * - blocked: Goto/BLIS blocking, op(A) and op(B) packed into the
 *   workspace, the register-tile micro-kernel over the packed panels;
 *   for large products, and the only path of the portable kernel.
 * - direct: no packing. Tiles of MR rows by two vectors read op(B)'s rows
 *   where they lie (or from B^T, transposed once, when trans_b) and
 *   broadcast op(A)'s elements straight from A; the last columns are
 *   masked rather than padded. For products whose A fits L2 (256 KiB) and
 *   k <= 1024 -- every product of the batch-64 784-256-128-10 MLP.
 * - narrow: C of few columns built by columns, a vector holding 2 W rows
 *   of one column, so n = 10 fills every lane instead of 10 of 16; op(A)'s
 *   columns are read where they lie (trans_a) or from A^T made in L1-sized
 *   strips by an in-register transpose.
 *
 * Packing does not pay on small products (A and B are reused only m / 8
 * and n / 32 times), and padding n = 10 to a 32-wide tile wastes two thirds
 * of it. The limits: a direct tile sweeps A once per 32 columns from L2
 * and its sliver of B once per 8 rows, so A's 256 KiB and k 1024;
 * B^T must fit 512 KiB. Narrow: up to 16 columns with trans_a (no
 * transpose needed), up to 12 and k <= 256 otherwise (each A^T strip of
 * 32 rows stays within 32 KiB f32 / 64 KiB f64 per thread, keeping the
 * workspace bound); 12 is what one AVX-512 pass holds (24 accumulators),
 * not tuned further. The transpose of A is a large share of a narrow
 * product, which is why that path only draws level with OpenBLAS.
 * (Measurements behind these limits: bench/results/history.md.)
 *
 * Workspace: the caller lends it (the graph keeps one), so a GEMM in a
 * training step allocates nothing. Blocked: kc = 256 deep, an A block of
 * up to 192 KiB (fits L2 next to the B panel's working slivers) and a B
 * panel of up to 1 MiB. Direct: B^T (at most 512 KiB), shared by the
 * threads, and the narrow path's A^T strip per thread.
 *
 * Threads (OpenMP builds): a product that nabla/parallel.h's policy runs
 * on a team of p (it times one thread and the team per size class on the
 * machine at hand) is cut into p strips
 * of whole micro-tiles, across the columns of C (when n >= m) or its rows,
 * and each thread runs the one-thread algorithm on its strip with its own
 * slice of the workspace. The path is chosen on the whole product, never
 * on a strip. k is never split, and strips start on the tile grid of the
 * whole product, so every element of C sees the same k blocks, the same
 * micro-kernel and the same edge handling whatever p is: results are
 * bitwise identical for any thread count. (The direct and narrow kernels
 * compute each element the same way in any tile: one fused multiply-add
 * chain over all of k in order, then alpha acc, then beta C + that as one
 * fused multiply-add.) On the blocked path the operand all strips need (A
 * when splitting columns, B when splitting rows) is packed by every
 * thread; splitting the larger of m and n keeps that repeated packing the
 * smaller. The p slices share the one-thread budget (each block cap
 * divided by p), so the workspace stays about 1.2 MiB at most however
 * many threads.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "nabla/parallel.h"

#define GEMM_KC 256
#define GEMM_A_BYTES (192 * 1024)
#define GEMM_B_BYTES (1024 * 1024)
/* Every micro-kernel's MR divides the first (lcm of 4, 6, 8) and every NR
 * the second (lcm of 4, 8, 16, 32), so rounding a dimension up to it
 * bounds the packed block whatever kernel the CPU gets. */
#define GEMM_MR_UNIT 24
#define GEMM_NR_UNIT 32
/* Multiply-adds (m n k) per thread below which no team is tried: 64 Ki
 * take well under a microsecond at the FMA peak of one core, less than a
 * parallel region costs. Above it, nabla/parallel.h times one thread and
 * the team on the machine at hand and runs the faster. */
#define GEMM_GRAIN (64 * 1024)
/* ... and each thread gets a strip at least this wide (a whole AVX-512
 * tile of columns, four of rows). */
#define GEMM_MIN_STRIP 32
/* The direct path reads A and B where they lie when A fits
 * GEMM_DIRECT_A_BYTES (it is swept once per 2 W columns of C, from L2) or
 * C has at most GEMM_DIRECT_TALL_N columns, and k <= GEMM_DIRECT_K (a
 * column sliver of op(B), k x 2 W, is swept once per tile of rows, from
 * L1/L2). With trans_b, op(B) is transposed once into the workspace and
 * must fit GEMM_DIRECT_BT_BYTES.
 *
 * A tall product, many rows of A and a few dozen columns of C (the input
 * gradient of a sequence layer's projection, [rows, 4H] x [4H, E]), sweeps
 * a large A only a few times on the direct path, once per 2 W columns, and
 * packs nothing; the blocked path packs all of A for a B that is one
 * panel wide. On AVX-512 and AVX2 the direct path measured faster for
 * every such n up to 64; beyond it the paths crossed over at an n that
 * depended on k (bench/results/history.md). */
#define GEMM_DIRECT_A_BYTES (256 * 1024)
#define GEMM_DIRECT_TALL_N 64
#define GEMM_DIRECT_K 1024
#define GEMM_DIRECT_BT_BYTES (512 * 1024)
/* C is narrow, built by columns (the narrow kernel), for n up to
 * GEMM_NARROW_N when op(A)'s columns lie contiguous (trans_a); otherwise
 * for n up to GEMM_NARROW_N_T and k up to GEMM_NARROW_K_T, A^T being made
 * in strips of rows of about GEMM_T_BYTES (still in L1 when used), whole
 * tiles of GEMM_T_ROWS rows (a multiple of every narrow tile's height). */
#define GEMM_NARROW_N 16
#define GEMM_NARROW_N_T 12
#define GEMM_NARROW_K_T 256
#define GEMM_T_BYTES (16 * 1024)
#define GEMM_T_ROWS 32

static int64_t round_up(int64_t x, int64_t unit)
{
    return (x + unit - 1) / unit * unit;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* How a product is computed, decided on the whole product (never on a
 * thread's strip), so that every strip takes the same path. */
typedef enum { PATH_BLOCKED, PATH_DIRECT, PATH_NARROW } gemm_path;

/* have_direct, have_narrow, have_transpose: what the CPU's kernels offer
 * (the portable kernel has none). */
static gemm_path path_for(size_t elem, int64_t m, int64_t n, int64_t k,
                          bool trans_a, bool trans_b, bool have_direct,
                          bool have_narrow, bool have_transpose)
{
    double a_bytes = (double)m * (double)k * (double)elem;
    double bt_bytes =
        (double)k * (double)round_up(n, GEMM_NR_UNIT) * (double)elem;
    if (!have_direct || k > GEMM_DIRECT_K ||
        (a_bytes > GEMM_DIRECT_A_BYTES && n > GEMM_DIRECT_TALL_N) ||
        (trans_b && bt_bytes > GEMM_DIRECT_BT_BYTES))
        return PATH_BLOCKED;
    if (have_narrow && trans_a && n <= GEMM_NARROW_N)
        return PATH_NARROW;
    if (have_narrow && have_transpose && !trans_a && n <= GEMM_NARROW_N_T &&
        k <= GEMM_NARROW_K_T)
        return PATH_NARROW;
    return PATH_DIRECT;
}

/* Rows of A transposed at a time on the narrow path for m rows: as many
 * whole tiles as fit GEMM_T_BYTES, at least one, at most those m needs. */
static int64_t narrow_strip(size_t elem, int64_t m, int64_t k)
{
    int64_t rows = GEMM_T_BYTES / (int64_t)elem / k / GEMM_T_ROWS * GEMM_T_ROWS;
    return min64(max64(rows, GEMM_T_ROWS), round_up(m, GEMM_T_ROWS));
}

/* Workspace of the direct and narrow paths: op(B) transposed (k rows of
 * round_up(n, nr)), shared by all threads, then each thread's strip of A^T
 * (narrow path). Bytes of each, multiples of 64, for the worst flags (the
 * caller of nb_gemm_workspace_* does not give them); 0 when no path that
 * needs them can be taken. */
static size_t direct_bt_bytes(size_t elem, int64_t m, int64_t n, int64_t k)
{
    if (path_for(elem, m, n, k, false, true, true, true, true) == PATH_BLOCKED)
        return 0;
    return (size_t)round_up(k * round_up(n, GEMM_NR_UNIT) * (int64_t)elem, 64);
}

static size_t direct_at_bytes(size_t elem, int64_t m, int64_t n, int64_t k)
{
    if (path_for(elem, m, n, k, false, false, true, true, true) != PATH_NARROW)
        return 0;
    return (size_t)round_up(narrow_strip(elem, m, k) * k * (int64_t)elem, 64);
}

/* Elements of the packed A block and B panel for an m x n x k product
 * whose blocks may take a_bytes and b_bytes. */
static void pack_sizes(size_t elem, int64_t m, int64_t n, int64_t k,
                       int64_t a_bytes, int64_t b_bytes, int64_t *a_elems,
                       int64_t *b_elems)
{
    int64_t kc = min64(k, GEMM_KC);
    int64_t mc_cap = a_bytes / (int64_t)elem / GEMM_KC;
    int64_t nc_cap = b_bytes / (int64_t)elem / GEMM_KC;
    *a_elems = round_up(min64(round_up(m, GEMM_MR_UNIT), mc_cap) * kc, 16);
    *b_elems = min64(round_up(n, GEMM_NR_UNIT), nc_cap) * kc;
}

/* How a product is run: on `threads` threads, each taking a strip of
 * columns (split_n) or of rows of C. */
typedef struct {
    int threads;
    bool split_n;
} gemm_plan;

static gemm_plan plan_for(int64_t m, int64_t n, int64_t k, int available)
{
    gemm_plan plan = {1, n >= m};
    int64_t strip = plan.split_n ? n : m;
    /* in double: m n k may pass 2^63 */
    double by_work = (double)m * (double)n * (double)k / GEMM_GRAIN;
    int64_t most = min64(strip / GEMM_MIN_STRIP, available);
    if (by_work < (double)most)
        most = (int64_t)by_work;
    plan.threads = most > 1 ? (int)most : 1;
    return plan;
}

/* Bytes of one thread's slice of the workspace on the blocked path when
 * `threads` threads split the product: its strip is at most ceil(d / p)
 * plus two tiles of the widest kernel (the strips are whole tiles), and
 * its block caps are the one-thread caps over p. A multiple of 64, so
 * every slice stays aligned. */
static size_t slice_bytes(size_t elem, int64_t m, int64_t n, int64_t k,
                          gemm_plan plan)
{
    int64_t p = plan.threads;
    int64_t strip = plan.split_n ? n : m;
    strip = min64(strip, (strip + p - 1) / p + 2 * GEMM_NR_UNIT);
    int64_t a_elems, b_elems;
    pack_sizes(elem, plan.split_n ? m : strip, plan.split_n ? strip : n, k,
               GEMM_A_BYTES / p, GEMM_B_BYTES / p, &a_elems, &b_elems);
    return (size_t)round_up((a_elems + b_elems) * (int64_t)elem, 64);
}

/* Room for the one-thread run and for every plan a call may choose, on
 * any path: a call uses at most nb_parallel_threads_max() threads, fixed for
 * the process. */
static size_t workspace_bytes(size_t elem, int64_t m, int64_t n, int64_t k)
{
    if (m <= 0 || n <= 0 || k <= 0)
        return 0;
    int64_t a_elems, b_elems;
    pack_sizes(elem, m, n, k, GEMM_A_BYTES, GEMM_B_BYTES, &a_elems, &b_elems);
    size_t bytes = (size_t)(a_elems + b_elems) * elem;
    gemm_plan most = plan_for(m, n, k, nb_parallel_threads_max());
    for (int p = 2; p <= most.threads; p++) {
        gemm_plan plan = {p, most.split_n};
        size_t all = (size_t)p * slice_bytes(elem, m, n, k, plan);
        bytes = all > bytes ? all : bytes;
    }
    size_t direct = direct_bt_bytes(elem, m, n, k) +
                    (size_t)most.threads * direct_at_bytes(elem, m, n, k);
    return direct > bytes ? direct : bytes;
}

size_t nb_gemm_workspace_f32(int64_t m, int64_t n, int64_t k)
{
    return workspace_bytes(sizeof(float), m, n, k);
}

size_t nb_gemm_workspace_f64(int64_t m, int64_t n, int64_t k)
{
    return workspace_bytes(sizeof(double), m, n, k);
}

#if NB_X86_KERNELS
#define SIMD_KERNEL(type, isa)                                                 \
    ((isa) == NB_ISA_AVX512 ? &nb_gemm_kernel_##type##_avx512                  \
     : (isa) == NB_ISA_AVX2 ? &nb_gemm_kernel_##type##_avx2                    \
                            : NULL)
#else
#define SIMD_KERNEL(type, isa) ((void)(isa), NULL)
#endif

#define REAL float
#define NAME(x) x##_f32
#define KDESC_TYPE nb_gemm_kernel_f32
#define GEN_MR 4
#define GEN_NR 8
#define PICK_SIMD_KERNEL(isa) SIMD_KERNEL(f32, isa)
#define GEMM_TYPE_NAME "f32"
#include "kernels/gemm_impl.h"

#define REAL double
#define NAME(x) x##_f64
#define KDESC_TYPE nb_gemm_kernel_f64
#define GEN_MR 4
#define GEN_NR 4
#define PICK_SIMD_KERNEL(isa) SIMD_KERNEL(f64, isa)
#define GEMM_TYPE_NAME "f64"
#include "kernels/gemm_impl.h"
