/* rsum: sums of per-block partial results across ranks, in two modes.
 *
 * `fast`: partials are added in the order they arrive and combined with
 * MPI_Allreduce(MPI_SUM); the result depends on P in the last bits.
 *
 * `reproducible`: every partial is split, exactly, into F = 3 pieces on a fixed
 * grid of quanta derived from a bound U on its magnitude (|partial| <= U, U
 * rounded up to a power of two). Pieces on the same grid add without rounding
 * as long as at most 2^21 partials are deposited, so the sum of the pieces,
 * locally and in MPI_Allreduce, is exact and does not depend on the order, the
 * number of ranks or the reduction tree. The three piece sums are finally
 * added in a fixed order. The result keeps 3 x 30 = 90 bits below U: it is as
 * accurate as a plain double sum, and bitwise identical for any P as long as
 * each partial is computed from the same rows (whole blocks of B rows).
 *
 * The bound is the outer product U(i,j) = scale * u[i] * v[j] (e.g. for
 * sum over a block of a_i a_j: B * max|a_i| * max|a_j|). It must hold for
 * every partial; a violation is reported as an internal error.
 */
#ifndef IMX_RSUM_H
#define IMX_RSUM_H

#include <stdint.h>

#include "imx/ctx.h"
#include "imx/names.h"

/* parallel.reduction: the two modes above. */
typedef enum { IMX_RED_REPRODUCIBLE = 0, IMX_RED_FAST } imx_reduction;
/* The names of imx_reduction, in its order (config accepts and writes these). */
static const char *const imx_reduction_names[] = {"reproducible", "fast", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_reduction_name(imx_reduction r) {
  return imx_name_of(imx_reduction_names, (int)r);
}

typedef struct imx_rsum imx_rsum;

/* Largest number of partials a reproducible sum can take exactly. */
#define IMX_RSUM_MAX_DEPOSITS (INT64_C(1) << 21)

/* Create a sum of a rows x cols row-major array. With lower != 0 only the
 * elements j <= i are summed (symmetric matrices) and mirrored at the end.
 * Local. Free with imx_rsum_free. */
imx_err imx_rsum_create(imx_ctx *ctx, imx_reduction mode, int rows, int cols, int lower,
                        imx_rsum **out);
void imx_rsum_free(imx_rsum **s);

/* Start a sum with bound scale * u[i] * v[j] (u: rows entries, v: cols
 * entries, either NULL for all ones; identical on every rank). Local. */
void imx_rsum_begin(imx_rsum *s, double scale, const double *u, const double *v);

/* Is s in reproducible mode? Local. */
int imx_rsum_reproducible(const imx_rsum *s);

/* A scratch buffer owned by s for callers to form partials in before adding
 * them: imx_rsum_group(s) consecutive arrays of rows x cols (valid until
 * imx_rsum_free). Local. */
double *imx_rsum_work(imx_rsum *s);

/* How many partials imx_rsum_work holds: 1 in fast mode (one partial per
 * call there), 4 in reproducible mode (fewer, down to 1, when 4 would
 * exceed 256 MiB). Local. */
int imx_rsum_group(const imx_rsum *s);

/* Bytes an imx_rsum of rows x cols takes in mode (bins and scratch). Local. */
double imx_rsum_bytes(imx_reduction mode, double rows, double cols);

/* Add one partial (rows x cols, row-major, leading dimension ld). Local. */
void imx_rsum_add(imx_rsum *s, const double *partial, int ld);

/* Add nparts partials (each rows x cols, row-major, leading dimension ld) in
 * one pass over the bins: the same bits as imx_rsum_add of each in turn, with
 * one read and write of the bins per call instead of per partial. Local. */
void imx_rsum_add_n(imx_rsum *s, const double *const *parts, int nparts, int ld);

/* Add nparts float partials (each rows x cols, row-major, leading dimension
 * ld), the same sum as imx_rsum_add of each widened to double, in one pass
 * over the bins. Local. */
void imx_rsum_add_f(imx_rsum *s, const float *const *parts, int nparts, int ld);

/* Combine across ranks and write the total (rows x cols, full) to out: one
 * MPI_Allreduce of the bins, which in reproducible mode carries the checks
 * (deposits, bound violations) behind them. Collective; all ranks get the
 * same bits. */
imx_err imx_rsum_end(imx_ctx *ctx, imx_rsum *s, double *out);

#endif
