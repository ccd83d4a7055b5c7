/* linalg: K x K dense linear algebra on replicated matrices (LAPACK). Every
 * rank holds the same input bits and computes the same output bits, so no
 * broadcast is needed. All functions are Local. */
#ifndef IMX_LINALG_H
#define IMX_LINALG_H

#include "imx/ctx.h"

/* Cholesky of the symmetric positive definite M (K x K, row-major, full), then
 * log det M into *logdet and M^{-1} (full, symmetric) into M. `what` names the
 * matrix in the error message ("C + eps I"). A matrix that is not SPD returns
 * IMX_ERR_NUMERIC with the failing pivot and a hint. */
imx_err imx_linalg_logdet_inverse(imx_ctx *ctx, int K, double *M, const char *what,
                                  double *logdet);

/* Eigen-decomposition of the symmetric M (K x K, row-major): eigenvalues in
 * ascending order into w[K]; M is overwritten so that row i is the unit
 * eigenvector of w[i]. */
imx_err imx_linalg_eigh(imx_ctx *ctx, int K, double *M, double *w);

/* Copy the lower triangle of the row-major K x K matrix M to its upper triangle. */
void imx_linalg_symmetrize_lower(int K, double *M);

#endif
