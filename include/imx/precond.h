/* precond: the ICA preconditioner of L-BFGS (Picard: Ablin, Cardoso and
 * Gramfort, "Faster independent component analysis by preconditioning with
 * Hessian approximations", IEEE TSP 2018), for entropy + logdet on K = n
 * identity units.
 *
 * Near a solution the Hessian of w_e sum_j E[G(y_j)] - w_l log det C, G(u) =
 * 2 log cosh u, in relative coordinates (W -> (I + E) W) is, to a good
 * approximation, block diagonal with one 2 x 2 block per unit pair j < k:
 *
 *   [ h_jk  c    ]   c = 2 w_l,  h_jk = w_e kappa_j var_k
 *   [ c     h_kj ]               (weight_norm: w_e (kappa_j var_k - beta_j) + 2 w_l)
 *
 * (kappa_j = E[G''(y_j)], beta_j = E[y_j G'(y_j)], var_k = C_kk) and one
 * entry per unit (E_jj: w_e gamma_j + 2 w_l, gamma_j = E[y_j^2 G''(y_j)];
 * with weight_norm the radial direction, where the gradient is zero, gets
 * w_e kappa_j + 2 w_l). The coupling c makes rotations (E_jk = -E_kj) far
 * flatter than shears: L-BFGS alone needs many iterations to learn that,
 * and this block solve gives it from the first step.
 *
 * P g = M^T H^-1 M g with M g = diag(s) g_W W^T (s_j = ||v_j|| with
 * weight_norm, else 1; W the unit rows), so P is symmetric; every block is
 * shifted until its smallest eigenvalue is >= damp x c (damp x 1 without a
 * logdet term), so P is positive definite anywhere. The other parameters (b)
 * pass unchanged.
 *
 * Far from a solution the outputs are close to Gaussian and the rotation
 * curvature is near zero or negative: there the damping bounds the step. It
 * adapts like a Levenberg-Marquardt parameter: halved after a step the line
 * search took whole, doubled after one it had to shorten, within
 * [IMX_PRECOND_DAMP_MIN, IMX_PRECOND_DAMP_MAX].
 */
#ifndef IMX_PRECOND_H
#define IMX_PRECOND_H

#include "imx/names.h"

/* optimizer.precondition: none (plain L-BFGS) or ica (this preconditioner). */
typedef enum { IMX_PRECONDITION_NONE = 0, IMX_PRECONDITION_ICA } imx_precondition;
/* The names of imx_precondition, in its order (config accepts and writes these). */
static const char *const imx_precondition_names[] = {"none", "ica", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_precondition_name(imx_precondition p) {
  return imx_name_of(imx_precondition_names, (int)p);
}

/* Range and start of the damping (smallest eigenvalue of a block relative to c). */
#define IMX_PRECOND_DAMP_MIN 0.05
#define IMX_PRECOND_DAMP_MAX 1.0

typedef struct imx_precond {
  int K;         /* units = inputs */
  int wn;        /* model.weight_norm */
  double we, wl; /* weights of the entropy and logdet terms */
  double damp;   /* smallest eigenvalue of a block, relative to c (start: IMX_PRECOND_DAMP_MAX) */
} imx_precond;

/* Adapt p->damp to the step length the line search accepted. Local. */
void imx_precond_adapt(imx_precond *p, double step);

/* Statistics per evaluation: kappa, beta, gamma, var (K each). */
#define IMX_PRECOND_AUX(K) (4 * (K))

/* Doubles of scratch imx_precond_apply needs. */
#define IMX_PRECOND_WORK(K) (3 * (size_t)(K) * (K) + (K))

/* out[0 .. np) = P g at the parameters theta (W row-major K x K first),
 * with the statistics aux of the evaluation at theta. out may not alias g.
 * Local; the same bits on every rank for the same inputs. */
void imx_precond_apply(const imx_precond *p, const double *theta, const double *aux,
                       const double *g, double *out, int np, double *work);

#endif
