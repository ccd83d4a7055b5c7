/* exact: order-independent exact accumulation into caller-owned bins.
 *
 * The same split as imx_rsum (include/imx/rsum.h, docs/architecture.md):
 * a value r with |r| <= U (U a power of two) is cut into three pieces on the
 * grids U 2^-30, U 2^-60 and U 2^-90; each piece is added to its own bin
 * without rounding as long as at most IMX_RSUM_MAX_DEPOSITS values land in a
 * bin. The bin totals are therefore independent of the order of deposits, of
 * which rank made them and of the reduction tree, and (b0 + b1) + b2 is the
 * same bits for any number of ranks.
 *
 * imx_rsum owns a whole rows x cols array and reduces it with MPI_Allreduce.
 * This module is for callers whose bins are laid out differently: the tiles
 * of a block-cyclic matrix reduce-scattered to their owners (src/linalg/dmoments.c),
 * or a handful of scalars and vectors of the distributed objective terms.
 */
#ifndef IMX_EXACT_H
#define IMX_EXACT_H

#include <stdint.h>

#include "imx/ctx.h"

/* Bins per value in reproducible mode. */
#define IMX_EXACT_FOLD 3

/* The smallest power of two >= x (x finite and >= 0; 0 gives the floor),
 * clamped to the exponent range that keeps every quantum a normal double.
 * Products of two such bounds (and one more factor for the block size) are
 * what imx_exact_deposit expects. Local. */
double imx_exact_pow2(double x);

/* Deposit x[0..n) with bounds U_i = u[i] * v (u: n powers of two, v a power
 * of two; products of imx_exact_pow2 values) into the bins b0[i], b1[i],
 * b2[i]. Returns 1 if some |x_i| exceeded its bound (a bug upstream; the
 * deposit is then not exact), else 0. Local. */
int imx_exact_deposit(int n, const double *x, const double *u, double v, double *b0, double *b1,
                      double *b2);

/* imx_exact_deposit of float values. Local. */
int imx_exact_deposit_f(int n, const float *x, const double *u, double v, double *b0, double *b1,
                        double *b2);

/* The same with one bound U for all values. Local. */
int imx_exact_deposit1(int n, const double *x, double U, double *b0, double *b1, double *b2);

/* out[i] = (b0[i] + b1[i]) + b2[i]: the exact total rounded once in a fixed
 * order. Local. */
void imx_exact_total(int64_t n, const double *b0, const double *b1, const double *b2, double *out);

/* Agree on an exact sum's preconditions: any rank's partial beyond its bound
 * (violated != 0) is IMX_ERR_INTERNAL, more than IMX_RSUM_MAX_DEPOSITS
 * deposits in all (summed over ranks) IMX_ERR_DATA naming `what` and the
 * config key `knob` that lowers them. Collective. */
imx_err imx_exact_check(imx_ctx *ctx, int violated, int64_t deposits, const char *what,
                        const char *knob);

/* Sum the bins bins[0 .. nbins*n) across ranks (MPI_Allreduce, exact for
 * nbins = IMX_EXACT_FOLD) and write the totals to out[n] (for nbins = 1 a
 * plain sum). Collective; every rank gets the same bits in exact mode.
 * `violated` and `deposits` (this rank's deposit count per bin, at most) are
 * checked globally: a bound violation is IMX_ERR_INTERNAL, more than
 * IMX_RSUM_MAX_DEPOSITS deposits IMX_ERR_DATA naming `what`. */
imx_err imx_exact_allreduce(imx_ctx *ctx, int nbins, int n, double *bins, int violated,
                            int64_t deposits, const char *what, double *out);

#endif
