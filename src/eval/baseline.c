/* baseline: fixed layers (trained, raw input, PCA, random hyperplanes) and
 * their forward pass (see include/imx/baseline.h). */
#include "imx/baseline.h"
#include "imx/config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/activation.h"
#include "imx/layer.h"
#include "imx/linalg.h"
#include "imx/moments.h"
#include "imx/rng.h"
#include "imx/rsum.h"

const char *const imx_baseline_names[IMX_NBASELINES] = {"raw", "pca", "random"};

void imx_fixed_clear(imx_fixed *f) {
  if (!f) return;
  free(f->W), free(f->b);
  memset(f, 0, sizeof *f);
}

/* PCA: rows of W = eigenvectors of the K largest eigenvalues of S_x, largest
 * first; b = -W mu so that z = W (x - mu). Collective. */
static imx_err make_pca(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, imx_fixed *f) {
  int n = d->n, K = f->K;
  double *mu = malloc((size_t)n * sizeof *mu), *S = malloc((size_t)n * n * sizeof *S);
  double *lam = malloc((size_t)n * sizeof *lam);
  imx_err e = imx_agree(
      ctx, mu && S && lam ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "pca: %d x %d covariance", n, n));
  /* Mean mu and covariance S of the train split. */
  if (!e)
    e = imx_moments_covariance(ctx, cfg->parallel.reduction, d->block, d->N, d->nloc, n, d->X, mu,
                               S);
  /* Every rank holds the same S, so LAPACK gives every rank the same W. */
  if (!e) e = imx_agree(ctx, imx_linalg_eigh(ctx, n, S, lam));
  if (!e)
    for (int k = 0; k < K; k++) {
      const double *v = S + (size_t)(n - 1 - k) * n;
      double s = 0;
      for (int j = 0; j < n; j++) f->W[(size_t)k * n + j] = v[j], s += v[j] * mu[j];
      f->b[k] = -s;
    }
  free(mu), free(S), free(lam);
  return e;
}

void imx_baseline_random_rows(uint64_t seed, int K, int n, double *W) {
  for (int k = 0; k < K; k++) {
    double *w = W + (size_t)k * n, s = 0;
    for (int j = 0; j < n; j++) {
      w[j] = imx_rng_normal(seed, IMX_STREAM_RANDOM_HYPERPLANES, (uint64_t)k * n + j);
      s += w[j] * w[j];
    }
    for (int j = 0; j < n; j++) w[j] /= sqrt(s);
  }
}

/* Random unit hyperplanes through the origin. Local. */
static void make_random(const imx_config *cfg, imx_fixed *f) {
  imx_baseline_random_rows(cfg->model.seed, f->K, f->n, f->W);
  for (int k = 0; k < f->K; k++) f->b[k] = 0;
}

imx_err imx_baseline_make(imx_ctx *ctx, const imx_config *cfg, imx_baseline_kind kind,
                          const imx_data *train, imx_fixed *out) {
  memset(out, 0, sizeof *out);
  int n = train->n, K = cfg->model.units;
  out->n = n, out->tau = cfg->model.temperature;
  if (kind == IMX_BASE_RAW) {
    out->K = n, out->act = IMX_ACT_IDENTITY;
    return IMX_OK;
  }
  out->K = kind == IMX_BASE_PCA && K > n ? n : K;
  out->act = kind == IMX_BASE_PCA ? IMX_ACT_IDENTITY : cfg->model.activation;
  out->W = malloc((size_t)out->K * n * sizeof *out->W);
  out->b = malloc((size_t)out->K * sizeof *out->b);
  imx_err e = out->W && out->b ? IMX_OK
                               : imx_fail(ctx, IMX_ERR_NOMEM, "%s baseline: %d x %d weights",
                                          imx_baseline_names[kind], out->K, n);
  e = imx_agree(ctx, e);
  if (!e && kind == IMX_BASE_PCA) e = make_pca(ctx, cfg, train, out);
  if (!e && kind == IMX_BASE_RANDOM) make_random(cfg, out);
  if (e) imx_fixed_clear(out);
  return e;
}

imx_err imx_fixed_outputs(imx_ctx *ctx, const imx_config *cfg, const imx_fixed *f,
                          const imx_data *d, double **Z, double **A) {
  *Z = *A = NULL;
  int K = f->K, n = d->n;
  size_t rows = (size_t)(d->nloc ? d->nloc : 1);
  int need_z = f->W && f->act != IMX_ACT_IDENTITY;
  double *a = malloc(rows * K * sizeof *a), *z = need_z ? malloc(rows * K * sizeof *z) : NULL;
  imx_err e = a && (z || !need_z) ? IMX_OK
                                  : imx_fail(ctx, IMX_ERR_NOMEM, "outputs: %lld rows x %d features",
                                             (long long)d->nloc, K);
  if (!e && !f->W && K != n)
    e = imx_fail(ctx, IMX_ERR_INTERNAL, "raw features: K=%d but the data have n=%d", K, n);
  e = imx_agree(ctx, e);
  if (!e && !f->W) memcpy(a, d->X, (size_t)d->nloc * n * sizeof *a);
  if (!e && f->W) {
    /* A layer for the forward pass only: no weight normalization (W is used
     * as given), the data path, and an objective that every model accepts. */
    imx_config c = *cfg;
    c.model.units = K, c.model.activation = f->act, c.model.temperature = f->tau;
    c.model.weight_norm = 0;
    snprintf(c.objective.preset, sizeof c.objective.preset, "none");
    for (int t = 0; t < IMX_NTERMS; t++) c.objective.weight[t] = t == IMX_TERM_VARIANCE;
    c.parallel.path = IMX_PATH_DATA;
    c.parallel.linalg = IMX_LINALG_REPLICATED;
    imx_layer *l = NULL;
    double *theta = malloc(((size_t)K * n + K) * sizeof *theta);
    e = imx_agree(ctx, theta ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "parameters (%d x %d)", K, n));
    if (!e) e = imx_layer_create(ctx, &c, d, &l);
    if (!e) imx_layer_biases_as_given(l);
    if (!e) {
      memcpy(theta, f->W, (size_t)K * n * sizeof *theta);
      memcpy(theta + (size_t)K * n, f->b, (size_t)K * sizeof *theta);
      if (z) e = imx_layer_forward(ctx, l, theta, IMX_FEAT_Z, z);
      if (!e) e = imx_layer_forward(ctx, l, theta, IMX_FEAT_ACTIVATION, a);
      e = imx_agree(ctx, e);
    }
    imx_layer_free(&l);
    free(theta);
  }
  if (e) {
    free(a), free(z);
    return e;
  }
  *Z = z, *A = a;
  return IMX_OK;
}

imx_err imx_fixed_feed(imx_ctx *ctx, const imx_config *cfg, const imx_fixed *f, imx_data *x) {
  if (!x) return IMX_OK;
  double *Z = NULL, *A = NULL;
  IMX_TRY(imx_fixed_outputs(ctx, cfg, f, x, &Z, &A));
  if (cfg->model.feed != IMX_FEED_ACTIVATION && Z) free(A), A = Z, Z = NULL;
  if (cfg->model.feed == IMX_FEED_R) { /* r = softmax(-z/tau), whatever phi is */
    imx_act r = {.kind = IMX_ACT_SOFTMAX, .tau = f->tau, .k = 0, .K = f->K};
    imx_act_forward(&r, x->nloc, A, NULL);
  }
  free(Z), free(x->X);
  x->X = A, x->n = f->K;
  free(x->truth), x->truth = NULL;
  return IMX_OK;
}
