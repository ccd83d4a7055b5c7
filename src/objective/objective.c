/* objective: InfoMax terms and presets (see include/imx/objective.h and
 * docs/objectives.md for the formulas). */
#include "imx/config.h"
#include "imx/objective.h"

#include <math.h>
#include <string.h>

#include "imx/activation.h"
#include "imx/blas.h"
#include "imx/linalg.h"

/* Default weights of a preset; lambda is the preset's redundancy weight. */
static int preset_weights(const char *preset, double lambda, double w[IMX_NTERMS]) {
  for (int t = 0; t < IMX_NTERMS; t++) w[t] = 0;
  if (!strcmp(preset, "none")) return 0;
  if (!strcmp(preset, "gaussian")) { /* -log det C + lambda sum_{j!=k} C_jk^2 */
    w[IMX_TERM_LOGDET] = 1, w[IMX_TERM_OFFDIAG] = lambda;
    return 0;
  }
  if (!strcmp(preset, "gaussian-tc")) {
    w[IMX_TERM_GAUSSIAN_TC] = 1;
    return 0;
  }
  if (!strcmp(preset, "decorrelation")) {
    w[IMX_TERM_VARIANCE] = 1, w[IMX_TERM_DECORRELATION] = lambda;
    return 0;
  }
  if (!strcmp(preset, "implicit-em")) {
    w[IMX_TERM_LSE] = 1, w[IMX_TERM_VARIANCE] = 1, w[IMX_TERM_DECORRELATION] = lambda;
    return 0;
  }
  if (!strcmp(preset, "ica")) { /* sum_j H(a_j) - 1/2 log det C: ML ICA on whitened data */
    w[IMX_TERM_ENTROPY] = 1, w[IMX_TERM_LOGDET] = 0.5;
    return 0;
  }
  if (!strcmp(preset, "hsic")) { /* -sum log C_jj + lambda sum_{j<k} HSIC(a_j, a_k) */
    w[IMX_TERM_VARIANCE] = 1, w[IMX_TERM_HSIC] = lambda;
    return 0;
  }
  return -1;
}

imx_err imx_objective_resolve(imx_ctx *ctx, const imx_config *cfg, int n, long long N,
                              imx_objective *obj) {
  memset(obj, 0, sizeof *obj);
  if (preset_weights(cfg->objective.preset, cfg->objective.lambda, obj->w))
    return imx_fail(ctx, IMX_ERR_CONFIG, "objective.preset: unknown preset \"%s\"",
                    cfg->objective.preset);
  for (int t = 0; t < IMX_NTERMS; t++)
    if (!isnan(cfg->objective.weight[t])) obj->w[t] = cfg->objective.weight[t];
  obj->eps = cfg->objective.eps;
  obj->null_vector = imx_activation_simplex(cfg->model.activation);
  int any = 0;
  for (int t = 0; t < IMX_NTERMS; t++) any |= obj->w[t] != 0;
  if (!any)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "objective: every term has weight 0 (preset \"%s\"): nothing to optimize",
                    cfg->objective.preset);
  if (obj->w[IMX_TERM_LSE] != 0 && cfg->model.activation == IMX_ACT_IDENTITY)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "objective: lse with identity activation is unbounded below (a = z goes to "
                    "-infinity with the biases); use model.activation: relu (distances >= 0, "
                    "lse >= -log K) or softmax");
  int K = cfg->model.units;
  int uses_logdet = obj->w[IMX_TERM_LOGDET] != 0 || obj->w[IMX_TERM_GAUSSIAN_TC] != 0;
  long long rank_bound = n < N - 1 ? n : N - 1;
  if (uses_logdet && cfg->model.activation == IMX_ACT_IDENTITY && obj->eps == 0 &&
      K > rank_bound)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "objective: log det of identity outputs with K=%d units but rank(C) <= "
                    "min(n, N-1) = %lld: C = W S_x W^T is singular and -log det C is +infinity. "
                    "Use model.activation: softmax (the post-softmax statistic), set "
                    "objective.eps > 0 (e.g. 1e-3), or use K <= %lld",
                    K, rank_bound, rank_bound);
  return IMX_OK;
}

int imx_objective_per_sample(const imx_objective *obj) {
  return obj->w[IMX_TERM_LSE] != 0 || obj->w[IMX_TERM_ENTROPY] != 0 || obj->w[IMX_TERM_HSIC] != 0 ||
         obj->w[IMX_TERM_SUPERVISED] != 0;
}

int imx_objective_needs_cov(const imx_objective *obj) {
  return obj->w[IMX_TERM_LOGDET] != 0 || obj->w[IMX_TERM_OFFDIAG] != 0 ||
         obj->w[IMX_TERM_VARIANCE] != 0 || obj->w[IMX_TERM_GAUSSIAN_TC] != 0 ||
         obj->w[IMX_TERM_DECORRELATION] != 0;
}

/* M = C + eps I + u u^T (u = NULL: no rank-one term); log det M and M^{-1}
 * (into M). */
static imx_err logdet_inverse(imx_ctx *ctx, const imx_objective *obj, int K, const double *C,
                              const double *u, double *M, const char *what, double *logdet) {
  for (int i = 0; i < K; i++)
    for (int j = 0; j < K; j++)
      M[(size_t)i * K + j] = C[(size_t)i * K + j] + (u ? u[i] * u[j] : 0.0);
  for (int i = 0; i < K; i++) M[(size_t)i * K + i] += obj->eps;
  return imx_linalg_logdet_inverse(ctx, K, M, what, logdet);
}

imx_err imx_objective_moments(imx_ctx *ctx, const imx_objective *obj, int K, const double *C,
                              double *G, double *work, double terms[IMX_NTERMS], double *value) {
  const double *w = obj->w;
  size_t KK = (size_t)K * K;
  double total = 0;
  for (size_t i = 0; i < KK; i++) G[i] = 0;
  for (int j = 0; j < K; j++)
    if (!(C[(size_t)j * K + j] >= 0))
      return imx_fail(ctx, IMX_ERR_NUMERIC, "covariance: C[%d][%d] = %g is not a variance", j, j,
                      C[(size_t)j * K + j]);
  /* d_j = C_jj + eps, shared by the terms on the variances. */
  double *d = work + KK;
  const char *diag_term = w[IMX_TERM_GAUSSIAN_TC] != 0   ? "gaussian_tc"
                          : w[IMX_TERM_VARIANCE] != 0     ? "variance"
                          : w[IMX_TERM_DECORRELATION] != 0 ? "decorrelation"
                                                           : NULL;
  for (int j = 0; diag_term && j < K; j++) {
    d[j] = C[(size_t)j * K + j] + obj->eps;
    if (!(d[j] > 0))
      return imx_fail(ctx, IMX_ERR_NUMERIC,
                      "%s: unit %d has zero variance (a dead unit: its log variance and "
                      "correlations are undefined); set objective.eps > 0 or change the "
                      "initialization", diag_term, j);
  }

  /* Softmax responsibilities sum to 1, so C has the null vector 1: the log
   * dets below are exact pseudo-log-dets, with a rank-one term along it. */
  double *u = work + KK + K, *q = work + KK + 2 * (size_t)K; /* K entries each */
  if (w[IMX_TERM_LOGDET] != 0) { /* -log det(C + eps I [+ 1 1^T/K]), dL/dC = -M^{-1} */
    double *Minv = work, ld;
    for (int j = 0; j < K; j++) u[j] = 1 / sqrt((double)K);
    IMX_TRY(logdet_inverse(ctx, obj, K, C, obj->null_vector ? u : NULL, Minv,
                           obj->null_vector ? "C + eps I + 1 1^T/K (outputs sum to 1)" : "C + eps I",
                           &ld));
    terms[IMX_TERM_LOGDET] = -ld;
    total += w[IMX_TERM_LOGDET] * -ld;
    for (size_t i = 0; i < KK; i++) G[i] -= w[IMX_TERM_LOGDET] * Minv[i];
  }
  if (w[IMX_TERM_GAUSSIAN_TC] != 0) {
    /* 1/2 (sum log d_j - log det M) = -1/2 log det R for the correlation matrix
     * R. For softmax outputs R has the null vector D^{1/2} 1; its exact
     * pseudo-log-det is log det(C + eps I + v v^T) - sum log d_j with
     * v = d / sqrt(sum d), which keeps the term bounded (>= -1/2 log e). */
    double *Minv = work, ld, S = 0, wt = w[IMX_TERM_GAUSSIAN_TC];
    for (int j = 0; j < K; j++) S += d[j];
    for (int j = 0; j < K; j++) u[j] = d[j] / sqrt(S);
    IMX_TRY(logdet_inverse(ctx, obj, K, C, obj->null_vector ? u : NULL, Minv,
                           obj->null_vector ? "C + eps I + v v^T (outputs sum to 1, gaussian_tc)"
                                            : "C + eps I",
                           &ld));
    double s = 0;
    for (int j = 0; j < K; j++) {
      s += log(d[j]);
      G[(size_t)j * K + j] += wt * 0.5 / d[j];
    }
    for (size_t i = 0; i < KK; i++) G[i] -= wt * 0.5 * Minv[i];
    if (obj->null_vector) {
      /* v depends on diag C: d(log det M) = tr(M^-1 dC) + 2 q^T dv, q = M^-1 v,
       * dv_j = dd_j / sqrt(S) - d_j sum_k dd_k / (2 S^{3/2}). */
      double qd = 0;
      for (int j = 0; j < K; j++) {
        q[j] = 0;
        for (int k = 0; k < K; k++) q[j] += Minv[(size_t)j * K + k] * u[k];
        qd += q[j] * d[j];
      }
      for (int j = 0; j < K; j++)
        G[(size_t)j * K + j] -= wt * (q[j] / sqrt(S) - qd / (2 * S * sqrt(S)));
    }
    terms[IMX_TERM_GAUSSIAN_TC] = 0.5 * (s - ld);
    total += wt * terms[IMX_TERM_GAUSSIAN_TC];
  }
  if (w[IMX_TERM_OFFDIAG] != 0) { /* sum_{j!=k} C_jk^2, dL/dC_jk = 2 C_jk */
    double s = 0, wt = w[IMX_TERM_OFFDIAG];
    for (int j = 0; j < K; j++)
      for (int k = 0; k < K; k++) {
        if (j == k) continue;
        double c = C[(size_t)j * K + k];
        s += c * c;
        G[(size_t)j * K + k] += wt * 2 * c;
      }
    terms[IMX_TERM_OFFDIAG] = s;
    total += wt * s;
  }
  if (w[IMX_TERM_VARIANCE] != 0) { /* -sum log(C_jj + eps) */
    double s = 0, wt = w[IMX_TERM_VARIANCE];
    for (int j = 0; j < K; j++) {
      s -= log(d[j]);
      G[(size_t)j * K + j] -= wt / d[j];
    }
    terms[IMX_TERM_VARIANCE] = s;
    total += wt * s;
  }
  if (w[IMX_TERM_DECORRELATION] != 0) {
    /* sum_{j!=k} C_jk^2 / (d_j d_k), d_j = C_jj + eps:
     * dL/dC_jk = 2 C_jk / (d_j d_k) (j != k), dL/dC_jj = -2 sum_{k!=j} C_jk^2 / (d_j^2 d_k). */
    double s = 0, wt = w[IMX_TERM_DECORRELATION];
    for (int j = 0; j < K; j++) {
      double gjj = 0;
      for (int k = 0; k < K; k++) {
        if (j == k) continue;
        double c = C[(size_t)j * K + k], q = c * c / (d[j] * d[k]);
        s += q;
        G[(size_t)j * K + k] += wt * 2 * c / (d[j] * d[k]);
        gjj -= 2 * q / d[j];
      }
      G[(size_t)j * K + j] += wt * gjj;
    }
    terms[IMX_TERM_DECORRELATION] = s;
    total += wt * s;
  }
  *value = total;
  return IMX_OK;
}

double imx_objective_weight_redundancy(const imx_objective *obj, int K, int n, const double *W,
                                       double *gW, double *work) {
  /* E = W W^T - I (row-major K x K = column-major (W^T)^T W^T). */
  const double one = 1, zero = 0;
  dgemm_("T", "N", &K, &K, &n, &one, W, &n, W, &n, &zero, work, &K);
  double s = 0;
  for (int i = 0; i < K; i++) work[(size_t)i * K + i] -= 1;
  for (size_t i = 0; i < (size_t)K * K; i++) s += work[i] * work[i];
  /* dL/dW = 4 E W: row-major gW (K x n) += 4 w E W, column-major gW^T += 4 w W^T E^T. */
  double a = 4 * obj->w[IMX_TERM_WEIGHT_REDUNDANCY];
  dgemm_("N", "T", &n, &K, &K, &a, W, &n, work, &K, &one, gW, &n);
  return s;
}

double imx_objective_weight_redundancy_rows(const imx_objective *obj, int K, int n,
                                            const double *W, double *gW, double *work, int rows) {
  const double one = 1, zero = 0;
  double s = 0, a = 4 * obj->w[IMX_TERM_WEIGHT_REDUNDANCY];
  for (int r0 = 0; r0 < K; r0 += rows) {
    int r = r0 + rows < K ? rows : K - r0;
    /* E_r = W_r W^T - I_r (row-major r x K = column-major K x r = W W_r^T). */
    dgemm_("T", "N", &K, &r, &n, &one, W, &n, W + (size_t)r0 * n, &n, &zero, work, &K);
    for (int i = 0; i < r; i++) work[(size_t)i * K + r0 + i] -= 1;
    for (size_t i = 0; i < (size_t)r * K; i++) s += work[i] * work[i];
    /* Rows r0.. of gW (row-major r x n = column-major n x r) += a W^T E_r^T. */
    dgemm_("N", "N", &n, &r, &K, &a, W, &n, work, &K, &one, gW + (size_t)r0 * n, &n);
  }
  return s;
}

double imx_objective_lse_row(int K, const double *a, double *g, double scale) {
  /* -log sum_k exp(-a_k) = amin - log sum_k exp(-(a_k - amin)), without overflow. */
  double amin = a[0];
  for (int k = 1; k < K; k++)
    if (a[k] < amin) amin = a[k];
  double s = 0;
  for (int k = 0; k < K; k++) s += exp(-(a[k] - amin));
  if (g)
    for (int k = 0; k < K; k++) g[k] += scale * exp(-(a[k] - amin)) / s;
  return amin - log(s);
}
