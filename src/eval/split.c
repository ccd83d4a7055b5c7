/* split: the test split, read like the train split and preprocessed with its
 * statistics (see include/imx/split.h). */
#include "imx/config.h"
#include "imx/split.h"

#include <stdlib.h>
#include <string.h>

#include "imx/blas.h"

/* Is P (n x n) diagonal? Is it the identity? */
static void classify(int n, const double *P, int *diagonal, int *identity) {
  *diagonal = *identity = 1;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      double v = P[(size_t)i * n + j];
      if (i != j && v != 0) *diagonal = *identity = 0;
      if (i == j && v != 1) *identity = 0;
    }
}

imx_err imx_split_apply(imx_ctx *ctx, imx_data *d, const double *mean, const double *transform) {
  int n = d->n, diagonal = 1, identity = 1;
  if (mean)
    for (int64_t i = 0; i < d->nloc; i++)
      for (int j = 0; j < n; j++) d->X[i * n + j] -= mean[j];
  if (transform) classify(n, transform, &diagonal, &identity);
  if (identity) return IMX_OK;
  if (diagonal) {
    for (int64_t i = 0; i < d->nloc; i++)
      for (int j = 0; j < n; j++) d->X[i * n + j] *= transform[(size_t)j * n + j];
    return IMX_OK;
  }
  double *tmp = malloc((size_t)d->block * n * sizeof *tmp);
  if (!tmp)
    return imx_fail(ctx, IMX_ERR_NOMEM, "test split: %d x %d transform scratch", d->block, n);
  const double one = 1, zero = 0;
  for (int64_t r0 = 0; r0 < d->nloc; r0 += d->block) {
    int c = (int)(r0 + d->block < d->nloc ? d->block : d->nloc - r0);
    /* Row-major Y = X_c P: column-major Y^T = P^T X_c^T. */
    dgemm_("T", "N", &n, &c, &n, &one, transform, &n, d->X + r0 * n, &n, &zero, tmp, &n);
    memcpy(d->X + r0 * n, tmp, (size_t)c * n * sizeof *tmp);
  }
  free(tmp);
  return IMX_OK;
}

imx_err imx_split_load_test(imx_ctx *ctx, const imx_config *cfg, int n, const double *mean,
                            const double *transform, imx_data **out) {
  *out = NULL;
  imx_config tc = *cfg;
  snprintf(tc.data.path, sizeof tc.data.path, "%s", cfg->eval.test_path);
  snprintf(tc.data.labels, sizeof tc.data.labels, "%s", cfg->eval.test_labels);
  tc.data.samples = 0;
  /* A suffix that names a format decides (a test split in .h5 beside .npy
   * training data); else the train split's format, or idx after a generator. */
  imx_source by_path = imx_source_of_path(tc.data.path);
  if (!imx_sources[tc.data.source].file || imx_sources[by_path].suffix) tc.data.source = by_path;
  imx_data *d = NULL;
  IMX_TRY(imx_data_load(ctx, &tc, &d));
  imx_err e = IMX_OK;
  if (d->n != n)
    e = imx_fail(ctx, IMX_ERR_DATA, "eval.test_path %s has %d columns but the train split has %d",
                 tc.data.path, d->n, n);
  if (!e) e = imx_split_apply(ctx, d, mean, transform);
  e = imx_agree(ctx, e);
  if (e) {
    imx_data_free(&d);
    return e;
  }
  *out = d;
  return IMX_OK;
}
