/* The instruction set the kernels run on, chosen once per process from the
 * CPU (dispatch.c) and shared by the elementwise kernels and the GEMM. */
#ifndef NABLA_KERNELS_ISA_H
#define NABLA_KERNELS_ISA_H

typedef enum {
    NB_ISA_SCALAR,
    NB_ISA_SSE2,
    NB_ISA_AVX2, /* with FMA */
    NB_ISA_AVX512,
    NB_ISA_COUNT
} nb_isa;

/* The forced instruction set if a test forced one, else NABLA_ISA if it
 * names one the CPU has, else the best the CPU has. */
nb_isa nb_isa_active(void);

#endif
