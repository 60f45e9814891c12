/* The fused recurrent kernels (rnn.h), instantiated for f32 and f64 from
 * rnn_impl.h. */
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/rnn.h"
#include "nabla/parallel.h"

/* Gate elements per thread below which no team is tried: a few
 * nanoseconds each against a microsecond or more for a region. */
#define RNN_GRAIN 4096

/* Batch rows from which a forward step's product takes x_t along
 * (rnn_impl.h, rnn_fuse_x). */
#define RNN_FUSE_ROWS 8

enum { RNN_FORWARD_STEP, RNN_BACKWARD_STEP };

size_t nb_rnn_scratch_bytes(const nb_rnn_dims *d, size_t elem)
{
    int64_t per_row = d->cell == NB_SEQ_LSTM  ? 6 * d->h
                      : d->cell == NB_SEQ_GRU ? 4 * d->h
                                              : 0;
    return (size_t)(d->n * d->t * per_row) * elem;
}

#define REAL float
#define SUFFIX(name) name##_f32
#define DTYPE "f32"
#include "kernels/rnn_impl.h"
#undef REAL
#undef SUFFIX
#undef DTYPE

#define REAL double
#define SUFFIX(name) name##_f64
#define DTYPE "f64"
#include "kernels/rnn_impl.h"
#undef REAL
#undef SUFFIX
#undef DTYPE
