/* The public face of the kernels' thread policy (nabla/parallel.h): the
 * optimisers, the batch feed and the kernels share one back-off, so a busy
 * machine sends all of them to one thread at once. */
#include "nabla/parallel.h"

#include "kernels/gemm.h"

int nb_parallel_threads(void)
{
    return nb_kernel_threads();
}

void nb_parallel_report(double own_seconds, double waited_seconds)
{
    nb_kernel_team_report(own_seconds, waited_seconds);
}
