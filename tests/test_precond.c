/* test_precond: the ICA preconditioner (include/imx/precond.h) is symmetric
 * and positive definite at any point, solves its 2 x 2 blocks exactly, and
 * maps a relative step through W (P = M^T H^-1 M) for both weight
 * parametrizations. Its effect on training (fewer iterations, same optimum)
 * is checked end to end in tests/test_run.py. Local. */
#include "imx/precond.h"
#include "imx/blas.h"
#include "imx/rng.h"

#include "testing.h"

#define KU 6
#define NP (KU * KU + KU)

static double dot(const double *a, const double *b, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* Random parameters and plausible statistics; some blocks indefinite. */
static void point(uint64_t seed, double *theta, double *aux) {
  for (int i = 0; i < NP; i++)
    theta[i] = imx_rng_normal(seed, 1, (uint64_t)i) + (i % (KU + 1) == 0 && i < KU * KU ? 2 : 0);
  for (int j = 0; j < KU; j++) {
    aux[j] = 0.5 + imx_rng_uniform(seed, 2, (uint64_t)j); /* kappa */
    aux[KU + j] = 0.5 +
                  1.5 * imx_rng_uniform(seed, 3, (uint64_t)j);     /* beta: kappa - beta < 0 too */
    aux[2 * KU + j] = 0.3 + imx_rng_uniform(seed, 4, (uint64_t)j); /* gamma */
    aux[3 * KU + j] = 0.5 + imx_rng_uniform(seed, 5, (uint64_t)j); /* var */
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  static double theta[NP], aux[4 * KU], g1[NP], g2[NP], p1[NP], p2[NP];
  static double work[IMX_PRECOND_WORK(KU)];
  for (int wn = 0; wn < 2; wn++) {
    imx_precond p = {.K = KU, .wn = wn, .we = 1, .wl = 0.5, .damp = 0.01};
    double asym = 0, minq = INFINITY;
    for (uint64_t seed = 1; seed <= 20; seed++) {
      point(seed, theta, aux);
      for (int i = 0; i < NP; i++)
        g1[i] = imx_rng_normal(seed, 6, (uint64_t)i), g2[i] = imx_rng_normal(seed, 7, (uint64_t)i);
      imx_precond_apply(&p, theta, aux, g1, p1, NP, work);
      imx_precond_apply(&p, theta, aux, g2, p2, NP, work);
      double a = dot(g1, p2, NP), b = dot(p1, g2, NP);
      double r = fabs(a - b) / (fabs(a) + fabs(b) + 1e-300);
      asym = r > asym ? r : asym;
      /* The smallest eigenvalue of P, assembled column by column. */
      static double P[NP * NP], w[NP], wk[1 + 6 * NP + 2 * NP * NP];
      static int iwk[3 + 5 * NP];
      for (int i = 0; i < NP; i++) {
        memset(g2, 0, sizeof g2);
        g2[i] = 1;
        imx_precond_apply(&p, theta, aux, g2, P + (size_t)i * NP, NP, work);
      }
      int n = NP, lw = 1 + 6 * NP + 2 * NP * NP, liw = 3 + 5 * NP, info = 0;
      dsyevd_("N", "L", &n, P, &n, w, wk, &lw, iwk, &liw, &info);
      minq = info == 0 && w[0] < minq ? w[0] : info ? -INFINITY : minq;
    }
    t_check(asym < 1e-12,
            "weight_norm=%d: <g1, P g2> = <P g1, g2> at 20 random points: worst "
            "relative difference %.2e (tol 1e-12)",
            wn, asym);
    t_check(minq > 0,
            "weight_norm=%d: P positive definite: smallest eigenvalue %.3e over 20 "
            "random points (with indefinite blocks)",
            wn, minq);
  }
  /* W = I, no weight normalization: P g solves each block of H exactly. */
  imx_precond p = {.K = KU, .wn = 0, .we = 1, .wl = 0.5, .damp = 0.01};
  point(3, theta, aux);
  for (int i = 0; i < KU * KU; i++) theta[i] = i % (KU + 1) == 0;
  for (int j = 0; j < KU; j++)
    aux[KU + j] = 0, aux[j] = 2 + j, aux[3 * KU + j] = 1; /* all blocks SPD */
  for (int i = 0; i < NP; i++) g1[i] = imx_rng_normal(5, 8, (uint64_t)i);
  imx_precond_apply(&p, theta, aux, g1, p1, NP, work);
  double worst = 0;
  for (int j = 0; j < KU; j++)
    for (int k = 0; k < KU; k++) {
      /* row (j,k) of H applied to the solution: h_jk e_jk + c e_kj (j != k), h_jj e_jj */
      double r = j == k ? (aux[2 * KU + j] + 1) * p1[j * KU + j]
                        : aux[j] * aux[3 * KU + k] * p1[j * KU + k] + 1 * p1[k * KU + j];
      double err = fabs(r - g1[j * KU + k]);
      worst = err > worst ? err : worst;
    }
  double bpass = 0;
  for (int i = KU * KU; i < NP; i++) bpass += fabs(p1[i] - g1[i]);
  t_check(worst < 1e-13,
          "W = I: H (P g) = g for every 2 x 2 block and diagonal entry: worst "
          "residual %.2e (tol 1e-13)",
          worst);
  t_check(bpass == 0, "the biases pass unchanged (sum |P g - g| over b = %g)", bpass);
  /* The damping halves after whole steps and doubles after shortened ones, within its range. */
  imx_precond q = {.damp = IMX_PRECOND_DAMP_MAX};
  for (int i = 0; i < 10; i++) imx_precond_adapt(&q, 1.0);
  double lo = q.damp;
  imx_precond_adapt(&q, 0.3);
  double up = q.damp;
  for (int i = 0; i < 10; i++) imx_precond_adapt(&q, 0.3);
  t_check(lo == IMX_PRECOND_DAMP_MIN && up == 2 * IMX_PRECOND_DAMP_MIN &&
              q.damp == IMX_PRECOND_DAMP_MAX,
          "damping: floor %g after whole steps, %g after one shortened step, cap %g", lo, up,
          q.damp);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
