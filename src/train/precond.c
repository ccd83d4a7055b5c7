/* precond: the ICA preconditioner of L-BFGS (see include/imx/precond.h). */
#include "imx/precond.h"

#include <math.h>
#include <string.h>

#include "imx/blas.h"

/* Solve [a c; c d] [x; y] = [u; v] after shifting the block so that its
 * smallest eigenvalue is at least lmin. */
static void solve2(double a, double c, double d, double lmin, double u, double v, double *x,
                   double *y) {
  double mid = 0.5 * (a + d), half = 0.5 * (a - d);
  double low = mid - sqrt(half * half + c * c);
  if (low < lmin) a += lmin - low, d += lmin - low;
  double det = a * d - c * c;
  *x = (d * u - c * v) / det;
  *y = (a * v - c * u) / det;
}

void imx_precond_adapt(imx_precond *p, double step) {
  p->damp = step >= 1 ? 0.5 * p->damp : 2 * p->damp;
  p->damp = p->damp < IMX_PRECOND_DAMP_MIN   ? IMX_PRECOND_DAMP_MIN
            : p->damp > IMX_PRECOND_DAMP_MAX ? IMX_PRECOND_DAMP_MAX
                                             : p->damp;
}

void imx_precond_apply(const imx_precond *p, const double *theta, const double *aux,
                       const double *g, double *out, int np, double *work) {
  int K = p->K;
  const double *kappa = aux, *beta = aux + K, *gamma = aux + 2 * K, *var = aux + 3 * K;
  double *W = work, *GE = W + (size_t)K * K, *E = GE + (size_t)K * K, *s = E + (size_t)K * K;
  const double one = 1, zero = 0, c = 2 * p->wl;
  double lmin = p->damp * (c > 0 ? c : 1);
  /* Unit rows W and their scales s (weight_norm), or W = theta. */
  for (int j = 0; j < K; j++) {
    const double *v = theta + (size_t)j * K;
    double nrm = 0;
    for (int i = 0; i < K; i++) nrm += v[i] * v[i];
    s[j] = p->wn ? sqrt(nrm) : 1;
    for (int i = 0; i < K; i++) W[(size_t)j * K + i] = v[i] / s[j];
  }
  /* GE = diag(s) g_W W^T (row-major; column-major GE^T = W g_W^T). */
  dgemm_("T", "N", &K, &K, &K, &one, W, &K, g, &K, &zero, GE, &K);
  for (int j = 0; j < K; j++)
    for (int k = 0; k < K; k++) GE[(size_t)j * K + k] *= s[j];
  for (int j = 0; j < K; j++) {
    double hjj = p->wn ? p->we * kappa[j] + c : p->we * gamma[j] + c;
    E[(size_t)j * K + j] = GE[(size_t)j * K + j] / (hjj > lmin ? hjj : lmin);
    for (int k = j + 1; k < K; k++) {
      double hjk = p->we * (kappa[j] * var[k] - (p->wn ? beta[j] : 0)) + (p->wn ? c : 0);
      double hkj = p->we * (kappa[k] * var[j] - (p->wn ? beta[k] : 0)) + (p->wn ? c : 0);
      solve2(hjk, c, hkj, lmin, GE[(size_t)j * K + k], GE[(size_t)k * K + j], &E[(size_t)j * K + k],
             &E[(size_t)k * K + j]);
    }
  }
  /* out_W = diag(s) E W (column-major out^T = W^T E^T). */
  dgemm_("N", "N", &K, &K, &K, &one, W, &K, E, &K, &zero, out, &K);
  for (int j = 0; j < K; j++)
    for (int i = 0; i < K; i++) out[(size_t)j * K + i] *= s[j];
  memcpy(out + (size_t)K * K, g + (size_t)K * K, (size_t)(np - K * K) * sizeof *out);
}
