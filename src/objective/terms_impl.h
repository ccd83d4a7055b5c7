/* terms_impl: each moment term's formula, written once for the two places
 * that evaluate it: the replicated K x K C (src/objective/objective.c) and the
 * block-cyclic tiles of C (src/objective/objective_dist.c). Private to
 * src/objective/.
 *
 * The functions are per element of C (value part and dL/dC_jk, added to the
 * running g) or per unit (d_j, the null vectors, the sums of logs). The callers
 * differ only in how they walk C and how they sum across elements (in order
 * on one rank, or exactly per tile across ranks). The floating-point
 * operations and their order are part of the results (the runs are checked bit
 * for bit), so an expression here must not be regrouped: `g + w * 2 * c` is
 * (w * 2) * c added to g.
 */
#ifndef IMX_OBJECTIVE_TERMS_IMPL_H
#define IMX_OBJECTIVE_TERMS_IMPL_H

#include <math.h>

#include "imx/objective.h"

/* The order in which the moment terms add to the loss and to each G_jk (not
 * the order of imx_term). */
static const imx_term moment_order[] = {IMX_TERM_LOGDET, IMX_TERM_GAUSSIAN_TC, IMX_TERM_OFFDIAG,
                                        IMX_TERM_VARIANCE, IMX_TERM_DECORRELATION};

/* ---- checks and per-unit quantities ---------------------------------------- */

/* Every C_jj (diag[j * stride]) must be a variance (>= 0, not NaN). Local. */
static inline imx_err check_variances(imx_ctx *ctx, int K, const double *diag, size_t stride) {
  for (int j = 0; j < K; j++)
    if (!(diag[j * stride] >= 0))
      return imx_fail(ctx, IMX_ERR_NUMERIC, "covariance: C[%d][%d] = %g is not a variance", j, j,
                      diag[j * stride]);
  return IMX_OK;
}

/* d_j = C_jj + eps, shared by the terms on the variances; when one is on
 * (IMX_NEEDS_DIAG), a unit with d_j <= 0 is refused, under that term's name.
 * Local. */
static inline imx_err unit_variances(imx_ctx *ctx, const imx_objective *obj, int K,
                                     const double *diag, size_t stride, double *d) {
  const char *diag_term = NULL;
  for (int t = 0; t < IMX_NTERMS && !diag_term; t++)
    if (obj->w[t] != 0 && (imx_objective_terms[t].needs & IMX_NEEDS_DIAG))
      diag_term = imx_objective_terms[t].name;
  for (int j = 0; j < K; j++) {
    d[j] = diag[j * stride] + obj->eps;
    if (diag_term && !(d[j] > 0))
      return imx_fail(ctx, IMX_ERR_NUMERIC,
                      "%s: unit %d has zero variance (a dead unit: its log variance and "
                      "correlations are undefined); set objective.eps > 0 or change the "
                      "initialization",
                      diag_term, j);
  }
  return IMX_OK;
}

/* sum_j log d_j, in order. */
static inline double sum_log(int K, const double *d) {
  double s = 0;
  for (int j = 0; j < K; j++) s += log(d[j]);
  return s;
}

/* The loss from the unweighted values of the moment terms that are on:
 * terms[t] = value[t], returns sum_t w_t value[t] in moment_order. */
static inline double moment_total(const imx_objective *obj, const double value[IMX_NTERMS],
                                  double terms[IMX_NTERMS]) {
  double total = 0;
  for (size_t i = 0; i < sizeof moment_order / sizeof *moment_order; i++) {
    imx_term t = moment_order[i];
    if (obj->w[t] == 0) continue;
    terms[t] = value[t];
    total += obj->w[t] * terms[t];
  }
  return total;
}

/* ---- the factored matrix M = C + eps I + u u^T ---------------------------- */

/* Softmax responsibilities sum to 1, so C has the null vector 1: the log dets
 * are exact pseudo-log-dets, with a rank-one term u u^T along it (u = NULL:
 * none). M_ij from C_ij. */
static inline double shifted_entry(double c, const double *u, int i, int j, double eps) {
  double v = c + (u ? u[i] * u[j] : 0.0);
  return i == j ? v + eps : v;
}

/* ---- logdet: -log det M, M = C + eps I [+ 1 1^T/K], dL/dC = -M^{-1} ------- */

static inline const char *logdet_matrix(int null_vector) {
  return null_vector ? "C + eps I + 1 1^T/K (outputs sum to 1)" : "C + eps I";
}
static inline void logdet_null_vector(int K, double *u) {
  for (int j = 0; j < K; j++) u[j] = 1 / sqrt((double)K);
}
static inline double logdet_value(double ld) { return -ld; }
static inline double logdet_grad(double g, double w, double minv) { return g - w * minv; }

/* ---- gaussian_tc: 1/2 (sum log d_j - log det M) = -1/2 log det R ----------
 * For softmax outputs R has the null vector D^{1/2} 1; its exact
 * pseudo-log-det is log det(C + eps I + v v^T) - sum log d_j with
 * v = d / sqrt(sum d), which keeps the term bounded (>= -1/2 log e). */

static inline const char *gaussian_tc_matrix(int null_vector) {
  return null_vector ? "C + eps I + v v^T (outputs sum to 1, gaussian_tc)" : "C + eps I";
}
/* v = d / sqrt(S) into u; returns S = sum_j d_j. */
static inline double gaussian_tc_null_vector(int K, const double *d, double *u) {
  double S = 0;
  for (int j = 0; j < K; j++) S += d[j];
  for (int j = 0; j < K; j++) u[j] = d[j] / sqrt(S);
  return S;
}
static inline double gaussian_tc_value(double sumlogd, double ld) { return 0.5 * (sumlogd - ld); }
/* 1/2 diag(1/d_j) - 1/2 M^{-1}, for element (j, k) (diag: j == k). */
static inline double gaussian_tc_grad(double g, double w, int diag, double dj, double minv) {
  if (diag) g += w * 0.5 / dj;
  return g - w * 0.5 * minv;
}
/* v depends on diag C: d(log det M) = tr(M^-1 dC) + 2 q^T dv with q = M^-1 v,
 * dv_j = dd_j / sqrt(S) - d_j sum_k dd_k / (2 S^{3/2}): the extra G_jj, from
 * q_j and qd = q . d. */
static inline double gaussian_tc_null_grad(double g, double w, double qj, double S, double qd) {
  return g - w * (qj / sqrt(S) - qd / (2 * S * sqrt(S)));
}
/* q . d, in order. */
static inline double gaussian_tc_qd(int K, const double *q, const double *d) {
  double qd = 0;
  for (int j = 0; j < K; j++) qd += q[j] * d[j];
  return qd;
}

/* ---- offdiag: sum_{j!=k} C_jk^2, dL/dC_jk = 2 C_jk ------------------------ */

static inline double offdiag_value(double c) { return c * c; }
static inline double offdiag_grad(double g, double w, double c) { return g + w * 2 * c; }

/* ---- variance: -sum log(C_jj + eps), dL/dC_jj = -1/d_j --------------------- */

static inline double variance_value(int K, const double *d) {
  double s = 0;
  for (int j = 0; j < K; j++) s -= log(d[j]);
  return s;
}
static inline double variance_grad(double g, double w, double dj) { return g - w / dj; }

/* ---- decorrelation: sum_{j!=k} q_jk, q_jk = C_jk^2 / (d_j d_k) ---------------
 * dL/dC_jk = 2 C_jk / (d_j d_k) (j != k), dL/dC_jj = -2 sum_{k!=j} q_jk / d_j. */

static inline double decorrelation_value(double c, double dj, double dk) {
  return c * c / (dj * dk);
}
static inline double decorrelation_grad(double g, double w, double c, double dj, double dk) {
  return g + w * 2 * c / (dj * dk);
}
/* The diagonal part -2 qsum / d_j of a sum of q_jk over k (one term or a row). */
static inline double decorrelation_grad_diag(double qsum, double dj) { return -2 * qsum / dj; }

#endif
