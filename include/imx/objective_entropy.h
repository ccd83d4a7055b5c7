/* objective_entropy: the `entropy` term, sum_j H(a_j), with a non-Gaussian
 * estimate of each marginal entropy: the cross-entropy of unit j's centered
 * outputs against the super-Gaussian density of Infomax ICA,
 *
 *   p(u) = sech(u)^2 / 2,   -log p(u) = 2 log cosh(u) + log 2,
 *   H_j = log 2 + (2/N) sum_i log cosh(a_ij - m_j),   m_j = (1/N) sum_i a_ij,
 *
 * an upper bound on the differential entropy of a_j (cross-entropy >= entropy)
 * that is tight when a_j has this density. It is a per-sample term like lse:
 * one pass over the local rows gives per-unit partial sums of log cosh and of
 * tanh, reduced across ranks like C (both reduction modes), and then
 *
 *   dL/da_ij = (2/N) (tanh(a_ij - m_j) - tbar_j),   tbar_j = (1/N) sum_i tanh(a_ij - m_j)
 *
 * (the centering makes the term independent of b for identity outputs).
 *
 * Extended Infomax (objective.extended_every > 0; Lee, Girolami and
 * Sejnowski 1999): unit j uses the density k_j picks, k_j = +1 the one
 * above, k_j = -1 the sub-Gaussian p(u) = (N(u; 1, 1) + N(u; -1, 1)) / 2,
 *
 *   -log p(u) = u^2/2 - log cosh u + 1/2 + log(2 pi)/2,
 *   dL/da_ij = (1/N) (d_ij - tanh d_ij + tbar_j),
 *
 * and imx_entropy_switch sets k_j = sign(E[sech^2 d_j] E[d_j^2] - E[d_j tanh d_j])
 * from a sixth per-unit sum (d^2) of the same reduction. See docs/objectives.md.
 */
#ifndef IMX_OBJECTIVE_ENTROPY_H
#define IMX_OBJECTIVE_ENTROPY_H

#include <stddef.h>
#include <stdint.h>

#include "imx/ctx.h"
#include "imx/rsum.h"

typedef struct imx_entropy imx_entropy;

/* Create the term's state for K units, `rows` local rows (it keeps tanh of
 * the centered outputs, rows x K doubles, between value and gradient) and the
 * reduction mode; with curvature != 0 each value pass also sums what
 * imx_entropy_curvature returns, with extended != 0 also E[d^2] for the
 * switch (every unit starts super-Gaussian, k_j = +1). Local. Free with imx_entropy_free (accepts
 * NULL, nulls the pointer). */
imx_err imx_entropy_create(imx_ctx *ctx, imx_reduction mode, int K, int64_t rows, int curvature,
                           int extended, imx_entropy **out);
void imx_entropy_free(imx_entropy **e);

/* Bytes held by e. Local. */
size_t imx_entropy_bytes(const imx_entropy *e);

/* The value sum_j H_j from the centered outputs D (rows x K local rows,
 * row-major, starting at a block boundary; blocks of `block` rows are the
 * partials in reproducible mode). Keeps tbar for imx_entropy_grad_rows.
 * invN = 1/N. Collective; every rank gets the same bits. */
imx_err imx_entropy_value(imx_ctx *ctx, imx_entropy *e, int block, int64_t rows, const double *D,
                          double invN, double *value);

/* g (rows x K) += scale * dL/da for local rows r0 .. r0 + rows - 1, from
 * the last imx_entropy_value: g_ij += scale * 2 (tanh(d_ij) - tbar_j)
 * (k_j = -1: scale (d_ij - tanh d_ij + tbar_j)); D: those rows of the centered
 * outputs. scale is w / N for the weight w. Local. */
void imx_entropy_grad_rows(const imx_entropy *e, int64_t r0, int64_t rows, const double *D,
                           double *g, double scale);

/* The curvature statistics of the last imx_entropy_value (created with
 * curvature != 0), per unit j, for
 * G(u) = 2 log cosh u: kappa_j = mean G''(d_j) = 2 mean sech^2 d_j, beta_j =
 * mean d_j G'(d_j) = 2 mean d_j tanh d_j, gamma_j = mean d_j^2 G''(d_j)
 * (k_j = -1: the same of G(u) = u^2/2 - log cosh u, G'' = tanh^2 u).
 * They build the ICA preconditioner (include/imx/precond.h). Local. */
void imx_entropy_curvature(const imx_entropy *e, double invN, double *kappa, double *beta,
                           double *gamma);

/* The Extended Infomax switch from the sums of the last imx_entropy_value
 * (created with extended != 0; otherwise nothing changes and it returns 0):
 * k_j = +1 where E[sech^2 d_j] E[d_j^2] - E[d_j tanh d_j] >= 0, else -1.
 * Returns the number of units whose k_j changed; *sub = units with k_j = -1.
 * Local; the same on every rank (the sums are). */
int imx_entropy_switch(imx_entropy *e, double invN, int *sub);

/* k (K) = the current signs k_j; set them from k (< 0: -1, else +1). Local. */
void imx_entropy_signs(const imx_entropy *e, signed char *k);
void imx_entropy_set_signs(imx_entropy *e, const signed char *k);

#endif
