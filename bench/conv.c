/* Convolution layers: GFLOP/s of conv2d forward and of its two backward
 * products (input gradient, weight gradient) on the Fashion-MNIST CNN's
 * layers at batch 64, f32, through the kernel entry points of
 * src/kernels/conv.h, beside the machine's FMA peak measured here.
 *
 *   bench/conv [--reps R] [--threads T] [--piece P]
 *
 * Two timings of each product, each the best over R passes (after one
 * warm-up pass): on a shared machine the best is the call least disturbed
 * by other processes.
 * - per piece: the batch over P times the best call on P samples (P = 1
 *   unless --piece says otherwise). A call of a few hundred microseconds
 *   is far more often left alone than the whole batch's milliseconds, so
 *   this is what the kernels do on a core of their own (the kernels take
 *   one sample per product, so P changes only how often a call is
 *   disturbed).
 * - batch: the best whole-batch call, as a training step makes it.
 * The shares of peak use the per-piece figure; "total" is both layers'
 * flops over their summed times, which is what the step spends.
 * Prints one JSON object per line. A product of m x n x k multiply-adds
 * counts 2 m n k flops; each of the three products of a convolution has
 * 2 N O OH OW (C/groups) KH KW. */
#include <math.h>
#include <stdio.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"
#include "kernels/conv.h"
#include "nabla/base.h"

typedef struct layer {
    const char *name;
    nb_conv_geom g;
} layer;

static void fill(float *p, size_t n)
{
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
}

int main(int argc, char **argv)
{
    int reps = 20, threads = 1, piece = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--piece") && i + 1 < argc)
            piece = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
    }
    if (piece < 1 || 64 % piece != 0) {
        fprintf(stderr, "conv: --piece must divide the batch, 64\n");
        return 2;
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    double peak = bench_fma_peak(200);
    printf("{\"kind\": \"fma_peak\", \"gflops_per_core_f32\": %.1f}\n",
           peak);
    const layer layers[] = {
        {"conv1 1->32 3x3 pad 1, 28x28",
         {.batch = 64, .groups = 1, .c = 1, .h = 28, .w = 28, .o = 32,
          .oh = 28, .ow = 28, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
          .pw = 1, .dh = 1, .dw = 1}},
        {"conv2 32->64 3x3 pad 1, 14x14",
         {.batch = 64, .groups = 1, .c = 32, .h = 14, .w = 14, .o = 64,
          .oh = 14, .ow = 14, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1,
          .pw = 1, .dh = 1, .dw = 1}},
    };
    double total_flops = 0, total_s = 0, total_batch_s = 0;
    for (size_t l = 0; l < sizeof layers / sizeof *layers; l++) {
        const nb_conv_geom *g = &layers[l].g;
        size_t xs = (size_t)(g->batch * g->c * g->h * g->w);
        size_t ws = (size_t)(g->o * g->c / g->groups * g->kh * g->kw);
        size_t ys = (size_t)(g->batch * g->o * g->oh * g->ow);
        float *x = nb_alloc(xs * sizeof *x), *dx = nb_alloc(xs * sizeof *x);
        float *w = nb_alloc(ws * sizeof *w), *dw = nb_alloc(ws * sizeof *w);
        float *y = nb_alloc(ys * sizeof *y), *dy = nb_alloc(ys * sizeof *y);
        nb_conv_geom one = *g;
        one.batch = piece;
        size_t wb = nb_conv_workspace_f32(g), wp = nb_conv_workspace_f32(&one);
        void *work = nb_alloc(wb > wp ? wb : wp);
        fill(x, xs);
        fill(w, ws);
        fill(dy, ys);
        double flops = 2.0 * (double)ys * (double)(g->c / g->groups) *
                       (double)(g->kh * g->kw);
        /* Timed a piece at a time (see the top); the weight gradient of
         * each piece adds into dw (beta 1), as the batch's do. */
        size_t xo = (size_t)(g->c * g->h * g->w),
               yo = (size_t)(g->o * g->oh * g->ow);
        double best[3] = {1e30, 1e30, 1e30}, whole[3] = {1e30, 1e30, 1e30};
        for (int r = 0; r <= reps; r++) {
            for (int64_t n = 0; n + piece <= g->batch; n += piece) {
                double t0 = bench_now();
                nb_conv_forward_f32(&one, x + n * xo, w, 0, y + n * yo, work);
                double t1 = bench_now();
                nb_conv_backward_data_f32(&one, w, dy + n * yo, 0,
                                          dx + n * xo, work);
                double t2 = bench_now();
                nb_conv_backward_weight_f32(&one, x + n * xo, dy + n * yo, 1,
                                            dw, work);
                double t3 = bench_now();
                if (r == 0)
                    continue; /* warm-up */
                double t[3] = {t1 - t0, t2 - t1, t3 - t2};
                for (int i = 0; i < 3; i++)
                    best[i] = t[i] < best[i] ? t[i] : best[i];
            }
            double t0 = bench_now();
            nb_conv_forward_f32(g, x, w, 0, y, work);
            double t1 = bench_now();
            nb_conv_backward_data_f32(g, w, dy, 0, dx, work);
            double t2 = bench_now();
            nb_conv_backward_weight_f32(g, x, dy, 0, dw, work);
            double t3 = bench_now();
            double t[3] = {t1 - t0, t2 - t1, t3 - t2};
            for (int i = 0; i < 3 && r > 0; i++)
                whole[i] = t[i] < whole[i] ? t[i] : whole[i];
        }
        const char *part[3] = {"forward", "input gradient", "weight gradient"};
        for (int i = 0; i < 3; i++) {
            best[i] *= (double)g->batch / (double)piece;
            /* conv1's input needs no gradient in a model (it is the data),
             * so the step never makes that product. */
            bool in_step = !(l == 0 && i == 1);
            total_flops += in_step ? flops : 0;
            total_s += in_step ? best[i] : 0;
            total_batch_s += in_step ? whole[i] : 0;
            bench_json j;
            bench_json_begin(&j, "conv");
            bench_json_str(&j, "layer", layers[l].name);
            bench_json_str(&j, "product", part[i]);
            bench_json_num(&j, "threads", threads);
            bench_json_num(&j, "in_step", in_step);
            bench_json_num(&j, "mflop", flops / 1e6);
            bench_json_num(&j, "batch_us", best[i] * 1e6);
            bench_json_num(&j, "gflops", flops / best[i] / 1e9);
            bench_json_num(&j, "batch_call_gflops", flops / whole[i] / 1e9);
            bench_json_num(&j, "share_of_peak",
                           peak > 0 ? flops / best[i] / 1e9 / (peak * threads)
                                    : NAN);
            bench_json_end(&j);
        }
        nb_free(x);
        nb_free(dx);
        nb_free(w);
        nb_free(dw);
        nb_free(y);
        nb_free(dy);
        nb_free(work);
    }
    bench_json j;
    bench_json_begin(&j, "conv_total");
    bench_json_num(&j, "threads", threads);
    bench_json_num(&j, "mflop", total_flops / 1e6);
    bench_json_num(&j, "gflops", total_flops / total_s / 1e9);
    bench_json_num(&j, "batch_call_gflops", total_flops / total_batch_s / 1e9);
    bench_json_num(&j, "share_of_peak",
                   peak > 0 ? total_flops / total_s / 1e9 / (peak * threads)
                            : NAN);
    bench_json_end(&j);
    return 0;
}
