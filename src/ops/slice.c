/* Slice: every step-th element from start up to (not including) end of one
 * axis, every other axis whole.
 *
 *   y[..., i, ...] = x[..., start + i step, ...]
 *   dx[..., start + i step, ...] += dy[..., i, ...], the rest of dx untouched
 *
 * A negative start or end counts from the end of the axis (-1 is the last
 * element, as in Python), resolved again by every shape inference, so
 * slicing a dynamic batch from the end follows each feed. After that,
 * 0 <= start <= end <= extent must hold; out-of-range bounds are an error,
 * not clamped. start == end gives an empty slice; end = NB_SLICE_END runs
 * to the end of the axis, whatever its extent at each feed. The step is at
 * least 1; y has ceil((end - start) / step) elements on the axis.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   slice: y = x[start:end:step] along axis; dx[start:end:step] += dy, 0
 *       elsewhere
 */
#include "nabla/ops.h"
#include "ops/op_util.h"

typedef struct slice_attrs {
    int axis;
    int64_t start, end; /* as given; negative counts from the end */
    int64_t step;
} slice_attrs;

typedef struct bounds {
    int axis;
    int64_t start, end;
} bounds;

static bounds bounds_of(const slice_attrs *at, const nb_tensor *x)
{
    bounds b;
    b.axis = at->axis < 0 ? at->axis + x->rank : at->axis;
    int64_t extent = b.axis >= 0 && b.axis < x->rank ? x->shape[b.axis] : 0;
    b.start = at->start < 0 ? at->start + extent : at->start;
    b.end = at->end == NB_SLICE_END ? extent
            : at->end < 0          ? at->end + extent
                                   : at->end;
    return b;
}

/* Elements taken from [start, end) every `step`: the ceiling of the length
 * over step, written so that a step near INT64_MAX cannot overflow. */
static int64_t taken_count(bounds b, int64_t step)
{
    int64_t len = b.end - b.start;
    return len == 0 ? 0 : (len - 1) / step + 1;
}

static int slice_infer(nb_op_call *c)
{
    const slice_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    int axis;
    int rc = nb_normalize_axis(c, at->axis, x->rank, &axis);
    if (rc != NB_OK)
        return rc;
    if (at->step < 1) {
        char sx[128];
        return nb_op_fail(c, "step %lld on axis %d of x %s: must be at least 1",
                          (long long)at->step, at->axis, NB_SHAPE(x, sx));
    }
    bounds b = bounds_of(at, x);
    int64_t extent = x->shape[axis];
    if (!(0 <= b.start && b.start <= b.end && b.end <= extent)) {
        char sx[128];
        return nb_op_fail(c,
                          "start %lld, end %lld do not fit axis %d of x %s "
                          "(need 0 <= start <= end <= %lld, negative counting "
                          "from the end)",
                          (long long)at->start, (long long)at->end, at->axis,
                          NB_SHAPE(x, sx), (long long)extent);
    }
    nb_same_as_input(c, 0);
    c->out_shape[axis] = taken_count(b, at->step);
    return NB_OK;
}

/* Runs of the slice: outer times `count` of them, run o * count + i
 * `run` long and starting at o * stride + first + i * step in x (count 1
 * for step 1: the whole slice of one outer index is contiguous). */
typedef struct runs {
    int64_t outer, count, run, stride, first, step;
} runs;

static runs runs_of(const slice_attrs *at, const nb_tensor *x)
{
    bounds b = bounds_of(at, x);
    int64_t inner = 1;
    runs r = {1, 1, 0, 0, 0, 0};
    for (int k = 0; k < b.axis; k++)
        r.outer *= x->shape[k];
    for (int k = b.axis + 1; k < x->rank; k++)
        inner *= x->shape[k];
    int64_t taken = taken_count(b, at->step);
    if (at->step == 1) {
        r.run = taken * inner;
    } else {
        r.count = taken;
        r.run = inner;
    }
    /* With two or more taken, step < extent, so this cannot overflow; with
     * one, step is never used (and may be huge). */
    r.step = taken > 1 ? at->step * inner : 0;
    r.stride = x->shape[b.axis] * inner;
    r.first = b.start * inner;
    return r;
}

static int slice_forward(nb_op_call *c)
{
    const nb_tensor *x = c->in[0];
    runs r = runs_of(c->attrs, x);
    size_t elem = nb_dtype_size(x->dtype);
    const char *src = x->data;
    char *dst = c->out->data;
    for (int64_t o = 0; o < r.outer && r.run > 0; o++)
        for (int64_t i = 0; i < r.count; i++)
            memcpy(dst + (size_t)((o * r.count + i) * r.run) * elem,
                   src + (size_t)(o * r.stride + r.first + i * r.step) * elem,
                   (size_t)r.run * elem);
    return NB_OK;
}

static int slice_backward(nb_op_call *c)
{
    nb_tensor *gx = c->in_grad[0];
    if (!gx)
        return NB_OK;
    runs r = runs_of(c->attrs, c->in[0]);
    NB_TYPED(gx->dtype, {
        const T *dy = c->out_grad->data;
        T *dx = gx->data;
        for (int64_t o = 0; o < r.outer; o++)
            for (int64_t i = 0; i < r.count; i++) {
                T *d = dx + o * r.stride + r.first + i * r.step;
                const T *s = dy + (o * r.count + i) * r.run;
                for (int64_t j = 0; j < r.run; j++)
                    d[j] += s[j];
            }
    });
    return NB_OK;
}

const nb_op nb_op_slice = {
    .struct_size = sizeof(nb_op),
    .name = "slice",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(slice_attrs),
    .doc = "y = x[start:end:step] along axis; dx[start:end:step] += dy, 0 elsewhere",
    .infer = slice_infer,
    .forward = slice_forward,
    .backward = slice_backward,
};

nb_node *nb_slice_step(nb_graph *g, nb_node *x, int axis, int64_t start,
                       int64_t end, int64_t step)
{
    slice_attrs at = {axis, start, end, step};
    return nb_apply(g, &nb_op_slice, 1, &x, &at);
}

nb_node *nb_slice(nb_graph *g, nb_node *x, int axis, int64_t start,
                  int64_t end)
{
    return nb_slice_step(g, x, axis, start, end, 1);
}
