/* Body of the built-in GEMM, included once per REAL. */
void GEMM(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          REAL alpha, const REAL *a, int64_t lda, const REAL *b, int64_t ldb,
          REAL beta, REAL *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        REAL *ci = c + i * ldc;
        if (beta == 0)
            for (int64_t j = 0; j < n; j++)
                ci[j] = 0;
        else if (beta != 1)
            for (int64_t j = 0; j < n; j++)
                ci[j] *= beta;
    }
    if (!trans_b) {
        /* B rows are contiguous: C[i,:] += a_ip B[p,:] */
        for (int64_t i = 0; i < m; i++) {
            REAL *ci = c + i * ldc;
            for (int64_t p = 0; p < k; p++) {
                REAL aip = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
                const REAL *bp = b + p * ldb;
                for (int64_t j = 0; j < n; j++)
                    ci[j] += aip * bp[j];
            }
        }
    } else {
        /* B^T: C[i,j] = dot(A row i, B row j) */
        for (int64_t i = 0; i < m; i++) {
            REAL *ci = c + i * ldc;
            for (int64_t j = 0; j < n; j++) {
                const REAL *bj = b + j * ldb;
                REAL acc = 0;
                if (!trans_a) {
                    const REAL *ai = a + i * lda;
                    for (int64_t p = 0; p < k; p++)
                        acc += ai[p] * bj[p];
                } else {
                    for (int64_t p = 0; p < k; p++)
                        acc += a[p * lda + i] * bj[p];
                }
                ci[j] += alpha * acc;
            }
        }
    }
}
