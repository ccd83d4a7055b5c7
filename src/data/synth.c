/* synth: synthetic data sets (see src/data/data_impl.h).
 *
 * Every number is a pure function of (seed, stream, counter) through imx_rng,
 * with the global row index in the counter, so a row is the same whichever
 * rank generates it. The small replicated matrices (mixing matrix, means) are
 * computed by every rank with the same plain C loops in a fixed order, not by
 * BLAS/LAPACK, whose blocking and kernels may differ between machines.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data_impl.h"
#include "imx/rng.h"

static double dot(const double *a, const double *b, int n) {
  double s = 0.0;
  for (int k = 0; k < n; k++) s += a[k] * b[k];
  return s;
}

/* A random orthogonal matrix (rows orthonormal): Gram-Schmidt on the rows of a
 * Gaussian matrix. Modified Gram-Schmidt run twice ("twice is enough") keeps
 * the rows orthogonal to rounding even when a row is nearly dependent. */
static void random_orthogonal(int n, uint64_t seed, uint64_t stream, double *Q) {
  for (int64_t i = 0; i < (int64_t)n * n; i++) Q[i] = imx_rng_normal(seed, stream, (uint64_t)i);
  for (int j = 0; j < n; j++) {
    double *v = Q + (size_t)j * n;
    for (int pass = 0; pass < 2; pass++)
      for (int i = 0; i < j; i++) {
        const double *q = Q + (size_t)i * n;
        double r = dot(q, v, n);
        for (int k = 0; k < n; k++) v[k] -= r * q[k];
      }
    double nv = sqrt(dot(v, v, n));
    /* A Gaussian row in the span of the previous ones has probability 0;
     * fall back to a unit vector rather than divide by zero. */
    if (nv < 1e-300) {
      memset(v, 0, (size_t)n * sizeof *v);
      v[j] = 1.0;
      nv = 1.0;
    }
    for (int k = 0; k < n; k++) v[k] /= nv;
  }
}

/* The ICA mixing matrix (see data_impl.h). Local. */
int imx_synth_ica_mixing(int n, uint64_t seed, double *A) {
  double *Q1 = malloc((size_t)n * n * sizeof *Q1);
  double *Q2 = malloc((size_t)n * n * sizeof *Q2);
  if (!Q1 || !Q2) {
    free(Q1);
    free(Q2);
    return -1;
  }
  random_orthogonal(n, seed, IMX_STREAM_ICA_Q1, Q1);
  random_orthogonal(n, seed, IMX_STREAM_ICA_Q2, Q2);
  /* Singular values log-spaced in [1, 3]: condition number 3, so the unmixing
   * problem is well posed but not trivially orthogonal. Fold them into Q1. */
  for (int m = 0; m < n; m++) {
    double sv = n > 1 ? pow(3.0, (double)m / (n - 1)) : 1.0;
    for (int j = 0; j < n; j++) Q1[(size_t)j * n + m] *= sv;
  }
  /* A = (Q1 diag(sv)) Q2^T: entry (j, k) is a dot of row j of one with row k of the other. */
  for (int j = 0; j < n; j++)
    for (int k = 0; k < n; k++) A[(size_t)j * n + k] = dot(Q1 + (size_t)j * n, Q2 + (size_t)k * n, n);
  free(Q1);
  free(Q2);
  return 0;
}

/* Rows of the ICA data set (see data_impl.h). Local. */
int imx_synth_ica_rows(int n, uint64_t seed, const double *A, int64_t row0, int64_t nrows,
                       double *X) {
  double *s = malloc((size_t)n * sizeof *s);
  if (!s) return -1;
  for (int64_t r = 0; r < nrows; r++) {
    uint64_t i = (uint64_t)(row0 + r);
    for (int k = 0; k < n; k++)
      s[k] = imx_rng_laplace(seed, IMX_STREAM_ICA_SOURCES, i * (uint64_t)n + (uint64_t)k);
    double *x = X + (size_t)r * n;
    for (int j = 0; j < n; j++) x[j] = dot(A + (size_t)j * n, s, n);
  }
  free(s);
  return 0;
}

/* The gmm means (see data_impl.h). Local. */
void imx_synth_gmm_means(int n, int components, double separation, uint64_t seed, double *means) {
  /* Two independent N(0, sigma^2 I) points lie sigma*sqrt(2n) apart on average
   * (for large n), so sigma = separation / sqrt(2n). */
  double sigma = separation / sqrt(2.0 * n);
  for (int64_t i = 0; i < (int64_t)components * n; i++)
    means[i] = sigma * imx_rng_normal(seed, IMX_STREAM_GMM_MEANS, (uint64_t)i);
}

/* Rows of the gmm data set (see data_impl.h). Local. */
void imx_synth_gmm_rows(int n, int components, const double *means, uint64_t seed, int64_t row0,
                        int64_t nrows, double *X, int32_t *labels) {
  for (int64_t r = 0; r < nrows; r++) {
    uint64_t i = (uint64_t)(row0 + r);
    int c = (int)(imx_rng_uniform(seed, IMX_STREAM_GMM_COMPONENT, i) * components);
    if (c >= components) c = components - 1; /* rounding of u*C for u just below 1 */
    const double *mu = means + (size_t)c * n;
    double *x = X + (size_t)r * n;
    for (int j = 0; j < n; j++)
      x[j] = mu[j] + imx_rng_normal(seed, IMX_STREAM_GMM_NOISE, i * (uint64_t)n + (uint64_t)j);
    if (labels) labels[r] = c;
  }
}
