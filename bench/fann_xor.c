/* The XOR net of tiny's "xor" bench, trained by FANN (libfann, float build)
 * as the peer a user of a fixed-topology C library would pick: 2-4-1,
 * sigmoid hidden and output units, one sample per fann_train call (FANN's
 * incremental training: one forward, one backward and one gradient-descent
 * update of every weight per call), the four cases in turn.
 *
 * How the work is matched to nabla's (bench/README.md says more): FANN's
 * FANN_SIGMOID is 1/(1+exp(-2*s*x)) for steepness s, so s = 0.5 makes it
 * the logistic function nabla's sigmoid is; the error function is set to
 * FANN_ERRORFUNC_LINEAR (plain difference, FANN's default stretches it with
 * atanh) and momentum to 0, so the update is plain SGD on squared error at
 * the same learning rate, 0.5, as nabla's.
 *
 *   fann_xor [--steps N] [--reps R]
 */
#include <fann.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static const fann_type xor_x[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
static const fann_type xor_t[4][1] = {{0}, {1}, {1}, {0}};

int main(int argc, char **argv)
{
    long long steps = 100000;
    int reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--steps"))
            steps = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
    }
    if (steps < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: fann_xor [--steps N] [--reps R]\n");
        return 2;
    }
    fann_seed_rand();
    struct fann *ann = fann_create_standard(3, 2, 4, 1);
    if (!ann)
        return 1;
    fann_set_activation_function_hidden(ann, FANN_SIGMOID);
    fann_set_activation_function_output(ann, FANN_SIGMOID);
    fann_set_activation_steepness_hidden(ann, 0.5f);
    fann_set_activation_steepness_output(ann, 0.5f);
    fann_set_train_error_function(ann, FANN_ERRORFUNC_LINEAR);
    fann_set_learning_rate(ann, 0.5f);
    fann_set_learning_momentum(ann, 0.0f);
    fann_randomize_weights(ann, -0.5f, 0.5f);

    double rate[100];
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        for (long long s = 0; s < steps; s++)
            fann_train(ann, (fann_type *)xor_x[s % 4],
                       (fann_type *)xor_t[s % 4]);
        rate[r] = (double)steps / (bench_now() - t0);
        bench_log("fann xor run %d: %.0f steps/s\n", r + 1, rate[r]);
    }
    double out[4];
    int right = 0;
    for (int c = 0; c < 4; c++) {
        out[c] = fann_run(ann, (fann_type *)xor_x[c])[0];
        right += (out[c] > 0.5) == (xor_t[c][0] > 0.5f);
    }
    bench_json j;
    bench_json_begin(&j, "fann_xor");
    bench_json_num(&j, "steps", (double)steps);
    bench_json_num(&j, "reps", reps);
    bench_json_num(&j, "steps_per_s", bench_median(rate, reps));
    bench_json_num(&j, "cases_right", right);
    bench_json_end(&j);
    fann_destroy(ann);
    return 0;
}
