/* Fused recurrent layers over a whole sequence, on raw arrays, for f32 and
 * f64: Elman (tanh), LSTM and GRU with PyTorch's weight layout and gate
 * order, batch first.
 *
 *   x [N, T, E], h0 [N, H], c0 [N, H] (LSTM only; either may be [1, H],
 *   one state shared by the batch),
 *   w_ih [G H, E], w_hh [G H, H], b_ih [G H], b_hh [G H] (NULL: no bias),
 *   G = 1 (Elman), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n);
 *   y [N, T + final_cell, H]: h_1..h_T, then c_T when final_cell (LSTM).
 *
 * Forward projects the inputs of all T steps with one GEMM, then for each
 * step adds the recurrent product (one GEMM of N rows) and applies the
 * gate functions (SLEEF kernels), keeping the activated gates in the
 * caller's scratch for backward; LSTM and Elman with 8 or more rows
 * instead multiply [h_{t-1} | x_t] by [W_hh | W_ih]^T, one GEMM a step.
 * Backward walks the steps in reverse, keeping one [N, H] message for the
 * hidden (and cell) state, and forms the weight gradients of all steps at
 * the end (LSTM and Elman both weights' with one GEMM, GRU one each).
 *
 * Memory: `scratch` (kept from forward to backward) and `workspace`
 * (transient, 64-byte aligned) are lent by the caller, of the sizes below,
 * so no call allocates. Threads: the GEMMs share their own strips, the gate
 * loops go through nb_parallel_for by batch rows; every element is
 * computed the same way whatever the split, so results are bitwise
 * identical for any thread count. */
#ifndef NB_KERNELS_RNN_H
#define NB_KERNELS_RNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { NB_SEQ_ELMAN = 1, NB_SEQ_LSTM = 4, NB_SEQ_GRU = 3 };

typedef struct nb_rnn_dims {
    int cell;        /* NB_SEQ_*: also the number of gates G */
    int64_t n, t, e, h;
    bool final_cell; /* LSTM: y holds c_T after the T hidden states */
    bool h0_rows, c0_rows; /* false: [1, H], one state for every sample */
} nb_rnn_dims;

/* Bytes of the scratch and of the workspace (forward and backward alike)
 * for dtype size 4 or 8. */
size_t nb_rnn_scratch_bytes(const nb_rnn_dims *d, size_t elem);
size_t nb_rnn_workspace_f32(const nb_rnn_dims *d);
size_t nb_rnn_workspace_f64(const nb_rnn_dims *d);

void nb_rnn_forward_f32(const nb_rnn_dims *d, const float *x, const float *h0,
                        const float *c0, const float *w_ih, const float *w_hh,
                        const float *b_ih, const float *b_hh, float *y,
                        void *scratch, void *workspace);
void nb_rnn_forward_f64(const nb_rnn_dims *d, const double *x,
                        const double *h0, const double *c0,
                        const double *w_ih, const double *w_hh,
                        const double *b_ih, const double *b_hh, double *y,
                        void *scratch, void *workspace);

/* The gradients wanted, each NULL when not: backward ADDS into them. */
typedef struct nb_rnn_grads_f32 {
    float *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh;
} nb_rnn_grads_f32;
typedef struct nb_rnn_grads_f64 {
    double *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh;
} nb_rnn_grads_f64;

/* dy is shaped like y. Reads the scratch forward left. */
void nb_rnn_backward_f32(const nb_rnn_dims *d, const float *x,
                         const float *h0, const float *c0, const float *w_ih,
                         const float *w_hh, const float *y, const float *dy,
                         const void *scratch, void *workspace,
                         const nb_rnn_grads_f32 *grad);
void nb_rnn_backward_f64(const nb_rnn_dims *d, const double *x,
                         const double *h0, const double *c0,
                         const double *w_ih, const double *w_hh,
                         const double *y, const double *dy,
                         const void *scratch, void *workspace,
                         const nb_rnn_grads_f64 *grad);

#endif
