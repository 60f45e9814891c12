/** @file
 * The op table, shared by built-in and user-defined ops.
 *
 * An op is a const nb_op: a name, how many inputs it takes, a shape/dtype
 * rule, a forward and a backward function, and a one-line doc with its
 * formula and derivative. nb_apply creates a node from any op, built-in or
 * not, so a custom op takes part in forward, backward, gradient checks and
 * DOT export exactly as the built-in ones do (see examples/custom_op.c).
 */
#ifndef NABLA_OP_H
#define NABLA_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What an op's functions are given. Fields an op does not need in a given
 * phase are NULL (for instance `out` during infer). */
typedef struct nb_op_call {
    nb_graph *graph;        /**< the graph the node belongs to */
    const struct nb_op *op; /**< the op being run */
    int n_inputs;           /**< number of inputs of this node */
    /** Input values. */
    const nb_tensor *const *in;
    /** The node's value (forward writes it; backward may read it). */
    nb_tensor *out;
    /** d loss / d out, during backward. */
    const nb_tensor *out_grad;
    /** d loss / d in[i], during backward: backward ADDS its message into
     * in_grad[i]. NULL where input i needs no gradient. */
    nb_tensor *const *in_grad;
    /** The attribute block given to nb_apply (op->attr_size bytes). */
    const void *attrs;
    /** Per-node workspace of scratch_bytes bytes (64-byte aligned), kept
     * from forward to backward: masks, arg-max indices, probabilities. */
    void *scratch;
    /** Transient space of workspace_bytes bytes (64-byte aligned), shared by
     * every node of the graph and valid only during this one call: for
     * packing and temporaries that need not outlive it. */
    void *workspace;

    nb_dtype out_dtype;     /**< set by infer: the output's dtype */
    int out_rank;           /**< set by infer: the output's rank */
    int64_t out_shape[NB_MAX_RANK];  /**< set by infer: the output's extents */
    size_t scratch_bytes;   /**< set by infer: size of `scratch` (0: none) */
    size_t workspace_bytes; /**< set by infer: size of `workspace` (0: none) */
    /** During backward of an op whose flags hold NB_OP_FRESH_GRADS:
     * in_grad_fresh[i] true means no message has reached in_grad[i] yet in
     * this pass and its contents are undefined, so backward must WRITE its
     * message there instead of adding it. NULL for every other op (and in
     * the other phases). */
    const bool *in_grad_fresh;
} nb_op_call;

/** @name Op capabilities (nb_op.flags) */
/** @{ */
/** Backward honours nb_op_call.in_grad_fresh: a gradient no message has
 * reached yet is written outright (for instance by a GEMM with beta = 0)
 * instead of being cleared by the executor and added to. */
#define NB_OP_FRESH_GRADS 0x1u
/** The inputs may have different dtypes. Without this flag nb_apply
 * rejects inputs whose dtypes differ, so an op's loops may assume one. */
#define NB_OP_MIXED_DTYPES 0x2u
/** The output is input 0's elements under the shape infer gives it (the
 * same dtype and element count, checked at every shape rule): instead of
 * a buffer of its own the output is pointed at input 0's, so forward has
 * nothing to copy and must not write (out->data == in[0]->data). Writing
 * into such a node's value (nb_node_value) writes into input 0's. */
#define NB_OP_VIEW 0x4u
/** @} */

/** An op: the const table of functions and facts that nb_apply runs.
 *
 * Write tables with designated initialisers and set `struct_size` to
 * sizeof(nb_op):
 *
 *     static const nb_op my_op = {
 *         .struct_size = sizeof(nb_op), .name = "my_op",
 *         .min_inputs = 1, .max_inputs = 1, .doc = "y = ...; dx = ...",
 *         .infer = my_infer, .forward = my_forward, .backward = my_backward,
 *     };
 *
 * Growth rule: fields are only ever added at the end, and every field
 * added reads as 0 (the old behaviour) when absent. nb_apply accepts a
 * table whose struct_size is from NB_OP_MIN_SIZE up to sizeof(nb_op) as
 * this library knows it: a shorter table (a custom op compiled against an
 * older header) runs with its missing fields taken as zeros; a longer one
 * (compiled against a newer header than the library) or a struct_size of
 * 0 is rejected with a message. */
typedef struct nb_op {
    /** sizeof(nb_op) as the op's code was compiled: see the growth rule. */
    size_t struct_size;
    const char *name; /**< the op's name, as in node names and messages */
    /** Number of inputs: at least min_inputs... */
    int min_inputs, max_inputs; /**< ...and at most max_inputs; max_inputs
                                     < 0 means unbounded. */
    /** Bytes of the attribute block copied by nb_apply (at most 65536). */
    size_t attr_size;
    /** One line: the forward formula and the derivative backward uses. */
    const char *doc;
    /** Shape/dtype rule. Reads in[i] shapes and attrs, sets out_dtype,
     * out_rank, out_shape, and scratch_bytes and workspace_bytes if the op
     * needs them. Returns 0, or reports with
     * nb_op_fail and returns its negative code. */
    int (*infer)(nb_op_call *call);
    /** Computes out from in. Returns 0 or nb_op_fail(...). */
    int (*forward)(nb_op_call *call);
    /** Adds d loss / d in[i] into every non-NULL in_grad[i]. Returns 0 or
     * nb_op_fail(...). NULL for ops whose gradient is zero everywhere. */
    int (*backward)(nb_op_call *call);
    /** Capabilities: NB_OP_FRESH_GRADS, NB_OP_MIXED_DTYPES, NB_OP_VIEW (0:
     * none). */
    unsigned flags;
} nb_op;

/** The smallest struct_size nb_apply accepts: a table that ends before
 * `flags` (its flags read as 0). */
#define NB_OP_MIN_SIZE offsetof(nb_op, flags)

/** Creates a node applying `op` to inputs; attrs (op->attr_size bytes) is
 * copied. Returns NULL on error (message on the graph).
 * @param g        the graph
 * @param op       the op table; it must outlive the graph. Its struct_size
 *                 is checked (see nb_op), and unless its flags hold
 *                 NB_OP_MIXED_DTYPES all inputs must share one dtype.
 * @param n_inputs number of inputs, within op's min_inputs and max_inputs
 * @param inputs   the input nodes, of g
 * @param attrs    op->attr_size bytes of attributes; NULL means zeros */
NB_API nb_node *nb_apply(nb_graph *g, const nb_op *op, int n_inputs,
                  nb_node *const *inputs, const void *attrs);

/** Records "opname: message" as the graph's error (if none is recorded yet)
 * and returns NB_ERR_ARG. For use inside infer/forward/backward. A NULL
 * call records nothing and returns NB_ERR_ARG. */
NB_API int nb_op_fail(nb_op_call *call, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** Training flag, for ops such as dropout: true in training mode (false
 * for a NULL call). Their
 * random numbers come from the graph's RNG, call->graph (nb_rng_uniform). */
NB_API bool nb_op_training(const nb_op_call *call);

/** @name Helpers for writing an op
 * What the built-in ops use, for custom ops: typed views of the data, one
 * loop for both dtypes, broadcasting, and the vectorised math kernels. */
/** @{ */

/** Expands the code once per dtype with `T` naming the element type (float
 * or double), so a loop is written once:
 *
 *     NB_TYPED(nb_tensor_dtype(c->out), {
 *         const T *x = nb_tensor_cview(c->in[0]);
 *         T *y = nb_tensor_view(c->out);
 *         for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
 *     });
 */
#define NB_TYPED(dtype, ...)                                                  \
    do {                                                                      \
        if ((dtype) == NB_F64) {                                              \
            typedef double T;                                                 \
            __VA_ARGS__                                                       \
        } else {                                                              \
            typedef float T;                                                  \
            __VA_ARGS__                                                       \
        }                                                                     \
    } while (0)

/** The f32 or f64 variant of a function for element type T (inside
 * NB_TYPED): NB_KERNEL(nb_vmath_exp, T)(n, x, y) calls nb_vmath_exp_f32 or
 * nb_vmath_exp_f64. */
#define NB_KERNEL(name, T) _Generic((T)0, float: name##_f32, double: name##_f64)

/** The tensor's elements, writable, whatever its dtype (cast by NB_TYPED's
 * T); NULL for NULL. Same as nb_tensor_data. */
NB_API void *nb_tensor_view(nb_tensor *t);
/** The tensor's elements, read-only (the inputs of an op are const);
 * NULL for NULL. */
NB_API const void *nb_tensor_cview(const nb_tensor *t);
/** The elements as const floats; NULL unless the dtype is NB_F32. */
NB_API const float *nb_tensor_cf32(const nb_tensor *t);
/** The elements as const doubles; NULL unless the dtype is NB_F64. */
NB_API const double *nb_tensor_cf64(const nb_tensor *t);

/** Shape rule of an elementwise op of inputs a and b: sets call's out_rank
 * and out_shape to their numpy-style broadcast (and out_dtype to input
 * a's), or fails naming both shapes. Returns 0 or a negative code. */
NB_API int nb_op_broadcast_shape(nb_op_call *call, int a, int b);
/** The flat index into `t` of element `i` of `out`, where t broadcasts to
 * out's shape numpy-style (t's shape right-aligned, extents 1 repeated).
 * For loops of custom elementwise ops; a tensor of out's own shape maps i
 * to i. -1 when t or out is NULL or i is not an index of out. */
NB_API int64_t nb_broadcast_index(const nb_tensor *t, const nb_tensor *out,
                                  int64_t i);
/** Adds `g` (shaped like an op's output) into `acc` (shaped like an input
 * that broadcast to it), summing over the axes that input was repeated
 * along: the backward of a broadcast. Same dtype. Returns 0, or NB_ERR_ARG
 * (acc unchanged) when acc does not broadcast to g's shape. */
NB_API int nb_reduce_broadcast_add(const nb_tensor *g, nb_tensor *acc);

/** y = exp(x) over n floats (SLEEF, the instruction set picked at run time;
 * y may be x; NULL x or y does nothing). The other nb_vmath_ functions take
 * the same arguments. */
NB_API void nb_vmath_exp_f32(int64_t n, const float *x, float *y);
/** y = exp(x), doubles. */
NB_API void nb_vmath_exp_f64(int64_t n, const double *x, double *y);
/** y = log(x), floats. */
NB_API void nb_vmath_log_f32(int64_t n, const float *x, float *y);
/** y = log(x), doubles. */
NB_API void nb_vmath_log_f64(int64_t n, const double *x, double *y);
/** y = tanh(x), floats. */
NB_API void nb_vmath_tanh_f32(int64_t n, const float *x, float *y);
/** y = tanh(x), doubles. */
NB_API void nb_vmath_tanh_f64(int64_t n, const double *x, double *y);
/** y = 1 / (1 + exp(-x)), floats. */
NB_API void nb_vmath_sigmoid_f32(int64_t n, const float *x, float *y);
/** y = 1 / (1 + exp(-x)), doubles. */
NB_API void nb_vmath_sigmoid_f64(int64_t n, const double *x, double *y);
/** y = log(1 + exp(x)), floats. */
NB_API void nb_vmath_softplus_f32(int64_t n, const float *x, float *y);
/** y = log(1 + exp(x)), doubles. */
NB_API void nb_vmath_softplus_f64(int64_t n, const double *x, double *y);
/** y = x Phi(x) (exact GELU), floats. */
NB_API void nb_vmath_gelu_f32(int64_t n, const float *x, float *y);
/** y = x Phi(x) (exact GELU), doubles. */
NB_API void nb_vmath_gelu_f64(int64_t n, const double *x, double *y);
/** y = x sigmoid(x), floats. */
NB_API void nb_vmath_silu_f32(int64_t n, const float *x, float *y);
/** y = x sigmoid(x), doubles. */
NB_API void nb_vmath_silu_f64(int64_t n, const double *x, double *y);
/** @} */

/** The number of built-in ops, for tools that list or check them all. */
NB_API int nb_builtin_op_count(void);
/** Built-in op `index` (0 <= index < nb_builtin_op_count), or NULL. */
NB_API const nb_op *nb_builtin_op(int index);
/** The built-in op with this name, or NULL. */
NB_API const nb_op *nb_find_op(const char *name);

#ifdef __cplusplus
}
#endif
#endif
