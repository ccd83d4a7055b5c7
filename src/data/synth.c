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
    for (int k = 0; k < n; k++)
      A[(size_t)j * n + k] = dot(Q1 + (size_t)j * n, Q2 + (size_t)k * n, n);
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

/* ---- the generators (data.source: synthetic-ica, gmm) ---- */

/* Generate this rank's rows of synthetic-ica (x = A s, the truth A kept) or
 * gmm (labels = components, the means kept). Collective, agreed. */
static imx_err generate(imx_ctx *ctx, const imx_config *cfg, imx_data *d) {
  int ica = cfg->data.source == IMX_SRC_SYNTHETIC_ICA;
  const char *what = imx_source_name(cfg->data.source);
  int n = cfg->data.dim, C = cfg->data.components;
  uint64_t seed = cfg->data.seed;
  imx_err err = imx_data_check_scale(ctx, cfg->data.scale);
  long long N = cfg->data.samples ? cfg->data.samples : IMX_SYNTH_DEFAULT_SAMPLES;
  if (!err && N < 1)
    err = imx_fail(ctx, IMX_ERR_CONFIG,
                   "data.samples = %lld: %s needs the number of rows to generate",
                   cfg->data.samples, what);
  if (!err && n < 1) err = imx_fail(ctx, IMX_ERR_CONFIG, "data.dim = %d: %s needs n >= 1", n, what);
  if (!err && !ica && C < 1)
    err = imx_fail(ctx, IMX_ERR_CONFIG, "data.components = %d: a mixture needs at least 1", C);
  if (!err && !ica && !(isfinite(cfg->data.separation) && cfg->data.separation >= 0))
    err = imx_fail(ctx, IMX_ERR_CONFIG, "data.separation = %g: need a finite value >= 0",
                   cfg->data.separation);
  IMX_TRY(imx_agree(ctx, err));
  IMX_TRY(imx_data_layout(ctx, cfg, d, N, n, what));

  size_t nn = (size_t)n * (size_t)(ica ? n : C);
  if (ica) {
    d->truth = malloc(nn * sizeof *d->truth);
    if (!d->truth || imx_synth_ica_mixing(n, seed, d->truth) ||
        imx_synth_ica_rows(n, seed, d->truth, d->row0, d->nloc, d->X))
      err = imx_fail(ctx, IMX_ERR_NOMEM, "%s: %d x %d mixing matrix and its scratch", what, n, n);
  } else {
    d->means = malloc(nn * sizeof *d->means);
    d->labels = malloc((size_t)d->nloc * sizeof *d->labels);
    if (!d->means || !d->labels) {
      err = imx_fail(ctx, IMX_ERR_NOMEM, "%s: %d x %d means and %lld labels", what, C, n,
                     (long long)d->nloc);
    } else {
      imx_synth_gmm_means(n, C, cfg->data.separation, seed, d->means);
      imx_synth_gmm_rows(n, C, d->means, seed, d->row0, d->nloc, d->X, d->labels);
      /* The true number of classes, even if some component drew no row. */
      d->nclasses = C;
    }
  }
  IMX_TRY(imx_agree(ctx, err));
  /* Scale the truth with the data so that x = A s and the means still
   * describe the data as returned. */
  imx_data_scale(d->X, (size_t)d->nloc * (size_t)n, cfg->data.scale);
  imx_data_scale(ica ? d->truth : d->means, nn, cfg->data.scale);
  return imx_data_check_finite(ctx, d, what);
}

const imx_source_ops imx_synth_source = {.generate = generate};
