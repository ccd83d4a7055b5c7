/* linalg: replicated LAPACK for K x K matrices (see include/imx/linalg.h). */
#include "imx/linalg.h"

#include <math.h>
#include <stdlib.h>

#include "imx/blas.h"

void imx_linalg_symmetrize_lower(int K, double *M) {
  for (int i = 0; i < K; i++)
    for (int j = 0; j < i; j++) M[(size_t)j * K + i] = M[(size_t)i * K + j];
}

imx_err imx_linalg_logdet_inverse(imx_ctx *ctx, int K, double *M, const char *what,
                                  double *logdet) {
  for (size_t i = 0; i < (size_t)K * K; i++)
    if (!isfinite(M[i]))
      return imx_fail(ctx, IMX_ERR_NUMERIC, "%s (K=%d) has a non-finite entry at (%zu, %zu)",
                      what, K, i / K, i % K);
  int info = 0;
  /* Row-major lower = column-major upper: factor "U" of the column-major view. */
  dpotrf_("U", &K, M, &K, &info);
  if (info > 0)
    return imx_fail(ctx, IMX_ERR_NUMERIC,
                    "%s: dpotrf INFO=%d (not positive definite), K=%d: the leading minor of "
                    "order %d is not positive, so unit %d is (nearly) a linear combination of "
                    "units 0..%d or has no variance. Hint: set objective.eps (e.g. 1e-6), use "
                    "fewer units, or check for dead or duplicate units",
                    what, info, K, info, info - 1, info - 2 < 0 ? 0 : info - 2);
  if (info < 0) return imx_fail(ctx, IMX_ERR_INTERNAL, "dpotrf: argument %d illegal", -info);
  double ld = 0;
  for (int i = 0; i < K; i++) ld += log(M[(size_t)i * K + i]);
  *logdet = 2 * ld;
  dpotri_("U", &K, M, &K, &info);
  if (info != 0)
    return imx_fail(ctx, IMX_ERR_NUMERIC, "%s: dpotri INFO=%d (singular factor), K=%d", what,
                    info, K);
  /* Column-major upper holds the result: that is the row-major lower. */
  imx_linalg_symmetrize_lower(K, M);
  return IMX_OK;
}

imx_err imx_linalg_eigh(imx_ctx *ctx, int K, double *M, double *w) {
  int info = 0, lwork = -1, liwork = -1, iwq = 0;
  double wq = 0;
  dsyevd_("V", "U", &K, M, &K, w, &wq, &lwork, &iwq, &liwork, &info);
  lwork = (int)wq;
  liwork = iwq;
  double *work = malloc((size_t)lwork * sizeof *work);
  int *iwork = malloc((size_t)liwork * sizeof *iwork);
  if (!work || !iwork) {
    free(work);
    free(iwork);
    return imx_fail(ctx, IMX_ERR_NOMEM, "dsyevd workspace for K=%d", K);
  }
  /* Column-major: eigenvector i is column i, i.e. row i of our row-major M. */
  dsyevd_("V", "U", &K, M, &K, w, work, &lwork, iwork, &liwork, &info);
  free(work);
  free(iwork);
  if (info != 0) return imx_fail(ctx, IMX_ERR_NUMERIC, "dsyevd INFO=%d for K=%d", info, K);
  return IMX_OK;
}
