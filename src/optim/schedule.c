/* Learning-rate schedules, lr(t) for t = 0, 1, 2, ...:
 *   constant     lr0
 *   step         lr0 gamma^floor(t / step_size)
 *   exponential  lr0 gamma^t
 *   inverse time lr0 / (1 + decay t)
 *   cosine       min_lr + (lr0 - min_lr) (1 + cos(pi t / period)) / 2 for
 *                t < period, min_lr after
 * A schedule whose fields make no sense gives NaN rather than a rate that
 * would quietly train badly.
 */
#include <math.h>
#include <stddef.h>

#include "nabla/optim.h"

static const double pi = 3.14159265358979323846;

static bool finite_nonneg(double v)
{
    return isfinite(v) && v >= 0;
}

double nb_schedule_lr(const nb_schedule *s, int64_t t)
{
    if (!s || t < 0 || !finite_nonneg(s->lr0))
        return NAN;
    double lr0 = s->lr0;
    switch (s->kind) {
    case NB_SCHEDULE_CONSTANT:
        return lr0;
    case NB_SCHEDULE_STEP:
        if (!isfinite(s->gamma) || s->gamma <= 0 || s->step_size <= 0)
            return NAN;
        /* The exponent is an integer, so the rate is piecewise constant. */
        return lr0 * pow(s->gamma, (double)(t / s->step_size));
    case NB_SCHEDULE_EXPONENTIAL:
        if (!isfinite(s->gamma) || s->gamma <= 0)
            return NAN;
        return lr0 * pow(s->gamma, (double)t);
    case NB_SCHEDULE_INVERSE_TIME:
        if (!finite_nonneg(s->decay))
            return NAN;
        return lr0 / (1 + s->decay * (double)t);
    case NB_SCHEDULE_COSINE:
        if (s->period <= 0 || !finite_nonneg(s->min_lr) || s->min_lr > lr0)
            return NAN;
        if (t >= s->period)
            return s->min_lr;
        return s->min_lr + (lr0 - s->min_lr) *
                               (1 + cos(pi * (double)t / (double)s->period)) /
                               2;
    }
    return NAN;
}
