/* objective: the weights from a preset row and the explicit weights, the
 * predicates on the terms table (both tables are in src/objective/terms.c),
 * the moment terms on a replicated C (their formulas in
 * src/objective/terms_impl.h), weight_redundancy and lse (see
 * include/imx/objective.h and docs/objectives.md). */
#include "imx/config.h"
#include "imx/objective.h"

#include <math.h>
#include <string.h>

#include "imx/activation.h"
#include "imx/blas.h"
#include "imx/linalg.h"
#include "terms_impl.h"

imx_err imx_objective_resolve(imx_ctx *ctx, const imx_config *cfg, int n, long long N,
                              imx_objective *obj) {
  memset(obj, 0, sizeof *obj);
  const imx_preset *p = imx_objective_preset(cfg->objective.preset);
  if (!p)
    return imx_fail(ctx, IMX_ERR_CONFIG, "objective.preset: unknown preset \"%s\"",
                    cfg->objective.preset);
  for (int t = 0; t < IMX_NTERMS; t++)
    obj->w[t] = !isnan(cfg->objective.weight[t]) ? cfg->objective.weight[t]
                : p->w[t] == IMX_PRESET_LAMBDA   ? cfg->objective.lambda
                                                 : p->w[t];
  obj->eps = cfg->objective.eps;
  obj->on = cfg->objective.on;
  /* z does not sum to 1 whatever the activation. */
  obj->null_vector = obj->on == IMX_ON_ACTIVATION && imx_activation_simplex(cfg->model.activation);
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
  if (cfg->objective.extended_every > 0 && obj->w[IMX_TERM_ENTROPY] == 0)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "objective.extended_every = %d switches the densities of the entropy term, "
                    "which is off (preset \"%s\"); use preset ica or objective.entropy > 0, or "
                    "objective.extended_every: 0",
                    cfg->objective.extended_every, cfg->objective.preset);
  int K = cfg->model.units;
  long long rank_bound = n < N - 1 ? n : N - 1;
  if (imx_objective_needs_factor(obj) && obj->on == IMX_ON_Z && obj->eps == 0 && K > rank_bound)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "objective: log det of z with K=%d units but rank(C) <= min(n, N-1) = %lld "
                    "(objective.on: z): C = W S_x W^T is singular and -log det C is +infinity. "
                    "Set objective.eps > 0 (e.g. 1e-3), use K <= %lld, or objective.on: "
                    "activation with model.activation: softmax (the post-softmax statistic)",
                    K, rank_bound, rank_bound);
  if (imx_objective_needs_factor(obj) && cfg->model.activation == IMX_ACT_IDENTITY &&
      obj->eps == 0 && K > rank_bound)
    return imx_fail(ctx, IMX_ERR_CONFIG,
                    "objective: log det of identity outputs with K=%d units but rank(C) <= "
                    "min(n, N-1) = %lld: C = W S_x W^T is singular and -log det C is +infinity. "
                    "Use model.activation: softmax (the post-softmax statistic), set "
                    "objective.eps > 0 (e.g. 1e-3), or use K <= %lld",
                    K, rank_bound, rank_bound);
  return IMX_OK;
}

int imx_objective_has_kind(const imx_objective *obj, imx_term_kind kind) {
  for (int t = 0; t < IMX_NTERMS; t++)
    if (obj->w[t] != 0 && imx_objective_terms[t].kind == kind) return 1;
  return 0;
}

int imx_objective_per_sample(const imx_objective *obj) {
  return imx_objective_has_kind(obj, IMX_KIND_PER_ROW);
}

int imx_objective_reads_activation(const imx_objective *obj) {
  return obj->w[IMX_TERM_LSE] != 0 || obj->w[IMX_TERM_SUPERVISED] != 0;
}

int imx_objective_needs_cov(const imx_objective *obj) {
  return imx_objective_has_kind(obj, IMX_KIND_MOMENT);
}

int imx_objective_needs_factor(const imx_objective *obj) {
  for (int t = 0; t < IMX_NTERMS; t++)
    if (obj->w[t] != 0 && (imx_objective_terms[t].needs & IMX_NEEDS_FACTOR)) return 1;
  return 0;
}

/* M = C + eps I + u u^T (u = NULL: no rank-one term); log det M and M^{-1}
 * (into M). */
static imx_err logdet_inverse(imx_ctx *ctx, const imx_objective *obj, int K, const double *C,
                              const double *u, double *M, const char *what, double *logdet) {
  for (int i = 0; i < K; i++)
    for (int j = 0; j < K; j++)
      M[(size_t)i * K + j] = shifted_entry(C[(size_t)i * K + j], u, i, j, obj->eps);
  return imx_linalg_logdet_inverse(ctx, K, M, what, logdet);
}

/* The formulas are in terms_impl.h; here each term walks the whole K x K C in
 * order, one term after the other (moment_order). */
imx_err imx_objective_moments(imx_ctx *ctx, const imx_objective *obj, int K, const double *C,
                              double *G, double *work, double terms[IMX_NTERMS], double *value) {
  const double *w = obj->w;
  size_t KK = (size_t)K * K;
  int nv = obj->null_vector;
  double val[IMX_NTERMS] = {0};
  for (size_t i = 0; i < KK; i++) G[i] = 0;
  IMX_TRY(check_variances(ctx, K, C, (size_t)K + 1));
  double *d = work + KK; /* d_j = C_jj + eps */
  IMX_TRY(unit_variances(ctx, obj, K, C, (size_t)K + 1, d));

  double *u = work + KK + K, *q = work + KK + 2 * (size_t)K; /* K entries each */
  if (w[IMX_TERM_LOGDET] != 0) {
    double *Minv = work, ld, wt = w[IMX_TERM_LOGDET];
    logdet_null_vector(K, u);
    IMX_TRY(logdet_inverse(ctx, obj, K, C, nv ? u : NULL, Minv, logdet_matrix(nv), &ld));
    val[IMX_TERM_LOGDET] = logdet_value(ld);
    for (size_t i = 0; i < KK; i++) G[i] = logdet_grad(G[i], wt, Minv[i]);
  }
  if (w[IMX_TERM_GAUSSIAN_TC] != 0) {
    double *Minv = work, ld, wt = w[IMX_TERM_GAUSSIAN_TC];
    double S = gaussian_tc_null_vector(K, d, u);
    IMX_TRY(logdet_inverse(ctx, obj, K, C, nv ? u : NULL, Minv, gaussian_tc_matrix(nv), &ld));
    for (int j = 0; j < K; j++)
      for (int k = 0; k < K; k++)
        G[(size_t)j * K + k] = gaussian_tc_grad(G[(size_t)j * K + k], wt, j == k, d[j],
                                                Minv[(size_t)j * K + k]);
    if (nv) {
      for (int j = 0; j < K; j++) {
        q[j] = 0;
        for (int k = 0; k < K; k++) q[j] += Minv[(size_t)j * K + k] * u[k];
      }
      double qd = gaussian_tc_qd(K, q, d);
      for (int j = 0; j < K; j++)
        G[(size_t)j * K + j] = gaussian_tc_null_grad(G[(size_t)j * K + j], wt, q[j], S, qd);
    }
    val[IMX_TERM_GAUSSIAN_TC] = gaussian_tc_value(sum_log(K, d), ld);
  }
  if (w[IMX_TERM_OFFDIAG] != 0) {
    double s = 0, wt = w[IMX_TERM_OFFDIAG];
    for (int j = 0; j < K; j++)
      for (int k = 0; k < K; k++) {
        if (j == k) continue;
        double c = C[(size_t)j * K + k];
        s += offdiag_value(c);
        G[(size_t)j * K + k] = offdiag_grad(G[(size_t)j * K + k], wt, c);
      }
    val[IMX_TERM_OFFDIAG] = s;
  }
  if (w[IMX_TERM_VARIANCE] != 0) {
    for (int j = 0; j < K; j++)
      G[(size_t)j * K + j] = variance_grad(G[(size_t)j * K + j], w[IMX_TERM_VARIANCE], d[j]);
    val[IMX_TERM_VARIANCE] = variance_value(K, d);
  }
  if (w[IMX_TERM_DECORRELATION] != 0) {
    double s = 0, wt = w[IMX_TERM_DECORRELATION];
    for (int j = 0; j < K; j++) {
      double gjj = 0;
      for (int k = 0; k < K; k++) {
        if (j == k) continue;
        double c = C[(size_t)j * K + k], qjk = decorrelation_value(c, d[j], d[k]);
        s += qjk;
        G[(size_t)j * K + k] = decorrelation_grad(G[(size_t)j * K + k], wt, c, d[j], d[k]);
        gjj += decorrelation_grad_diag(qjk, d[j]);
      }
      G[(size_t)j * K + j] += wt * gjj;
    }
    val[IMX_TERM_DECORRELATION] = s;
  }
  *value = moment_total(obj, val, terms);
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

double imx_objective_weight_redundancy_rows(const imx_objective *obj, int K, int n, const double *W,
                                            double *gW, double *work, int rows) {
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
