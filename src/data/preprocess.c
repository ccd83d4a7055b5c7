/* preprocess: distributed centering, standardization, whitening. */
#include "imx/config.h"
#include "imx/preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/blas.h"
#include "imx/linalg.h"
#include "imx/log.h"
#include "imx/moments.h"
#include "imx/rsum.h"
#include "imx/timer.h"

/* mu, centering of X, then S = (1/N) Xc^T Xc if wanted. */
static imx_err center(imx_ctx *ctx, const imx_config *cfg, imx_data *d, double *mu, double *S) {
  int n = d->n;
  imx_rsum *rn = NULL, *rnn = NULL;
  imx_err e = imx_rsum_create(ctx, cfg->parallel.reduction, 1, n, 0, &rn);
  if (!e && S) e = imx_rsum_create(ctx, cfg->parallel.reduction, n, n, 1, &rnn);
  e = imx_agree(ctx, e);
  if (!e) e = imx_moments_colsum(ctx, rn, d->block, d->nloc, n, d->X, n, NULL, mu);
  if (!e) {
    for (int j = 0; j < n; j++) mu[j] /= (double)d->N;
    for (int64_t i = 0; i < d->nloc; i++)
      for (int j = 0; j < n; j++) d->X[i * n + j] -= mu[j];
    if (S) e = imx_moments_atb(ctx, rnn, d->block, d->nloc, n, d->X, n, NULL, n, d->X, n, NULL, S);
  }
  if (!e && S)
    for (size_t i = 0; i < (size_t)n * n; i++) S[i] /= (double)d->N;
  imx_rsum_free(&rn);
  imx_rsum_free(&rnn);
  return e;
}

imx_err imx_preprocess_apply(imx_ctx *ctx, const imx_config *cfg, imx_data *d, double *mean,
                             double *transform) {
  int n = d->n;
  imx_preprocess how = cfg->data.preprocess;
  double *mu = calloc((size_t)n, sizeof *mu);
  double *P = calloc((size_t)n * n, sizeof *P);
  double *S = how == IMX_PRE_NONE || how == IMX_PRE_CENTER ? NULL
                                                           : malloc((size_t)n * n * sizeof *S);
  double *lam = malloc((size_t)n * sizeof *lam);
  imx_err e = (!mu || !P || !lam || (how > IMX_PRE_CENTER && !S))
                  ? imx_fail(ctx, IMX_ERR_NOMEM, "preprocessing buffers for n=%d", n)
                  : IMX_OK;
  e = imx_agree(ctx, e);
  imx_timer_start(IMX_T_PREPROC);
  for (int j = 0; !e && j < n; j++) P[(size_t)j * n + j] = 1;
  if (!e && how != IMX_PRE_NONE) e = center(ctx, cfg, d, mu, S);
  if (!e && how == IMX_PRE_STANDARDIZE) {
    int constant = 0;
    for (int j = 0; j < n; j++) {
      double v = S[(size_t)j * n + j];
      constant += !(v > 0);
      P[(size_t)j * n + j] = v > 0 ? 1 / sqrt(v) : 1;
    }
    for (int64_t i = 0; i < d->nloc; i++)
      for (int j = 0; j < n; j++) d->X[i * n + j] *= P[(size_t)j * n + j];
    if (constant) imx_log(ctx, IMX_INFO, "standardize: %d constant columns left at 0", constant);
  }
  if (!e && how == IMX_PRE_WHITEN) {
    /* ZCA: P = U diag(1/sqrt(lambda + eps)) U^T; every rank computes the same P
     * from the same S. */
    e = imx_linalg_eigh(ctx, n, S, lam);
    if (!e) {
      int small = 0;
      for (int k = 0; k < n; k++) small += lam[k] < 1e-10 * lam[n - 1];
      if (small && cfg->data.whiten_eps == 0)
        e = imx_fail(ctx, IMX_ERR_DATA,
                     "whiten: %d of %d input eigenvalues are below 1e-10 of the largest (%g): the "
                     "data are rank-deficient; set data.whiten_eps > 0 (e.g. 1e-3)",
                     small, n, lam[n - 1]);
      else if (small)
        imx_log(ctx, IMX_INFO,
                "whiten: %d of %d eigenvalues below 1e-10 of the largest, damped by "
                "whiten_eps=%g",
                small, n, cfg->data.whiten_eps);
    }
    if (!e) {
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
          double s = 0;
          for (int k = 0; k < n; k++)
            s += S[(size_t)k * n + i] * S[(size_t)k * n + j] / sqrt(lam[k] + cfg->data.whiten_eps);
          P[(size_t)i * n + j] = s;
        }
      /* X <- X P, block by block so that each row's bits do not depend on P ranks. */
      double *tmp = malloc((size_t)d->block * n * sizeof *tmp);
      if (!tmp) e = imx_fail(ctx, IMX_ERR_NOMEM, "whitening scratch");
      const double one = 1, zero = 0;
      for (int64_t r0 = 0; !e && r0 < d->nloc; r0 += d->block) {
        int c = (int)(r0 + d->block < d->nloc ? d->block : d->nloc - r0);
        /* Row-major Y = X_c P: column-major Y^T = P^T X_c^T (P symmetric). */
        dgemm_("T", "N", &n, &c, &n, &one, P, &n, d->X + r0 * n, &n, &zero, tmp, &n);
        memcpy(d->X + r0 * n, tmp, (size_t)c * n * sizeof *tmp);
      }
      free(tmp);
    }
  }
  imx_timer_stop(IMX_T_PREPROC);
  e = imx_agree(ctx, e);
  if (!e && mean) memcpy(mean, mu, (size_t)n * sizeof *mu);
  if (!e && transform) memcpy(transform, P, (size_t)n * n * sizeof *P);
  free(mu), free(P), free(S), free(lam);
  return e;
}
