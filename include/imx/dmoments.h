/* dmoments: between row-sharded data and block-cyclic K x K matrices (the
 * scalapack backend of the layer).
 *
 *  - gram:          C = sum over all rows of d d^T, from each rank's rows
 *                   straight into the owners' tiles (reduce-scatter of
 *                   partial sums, one group of tile columns at a time);
 *  - outer:         C = T W^T from replicated K x n factors (moments path);
 *  - apply_rows:    T = alpha D G for the local rows (data-path backward),
 *                   G's columns all-gathered one group at a time;
 *  - solve_rows:    T = alpha D M^{-1} for the local rows from M's Cholesky
 *                   factor (two triangular solves per row, L's columns
 *                   all-gathered one group at a time);
 *  - apply_replicated: out = alpha G T (K x n, replicated; moments-path
 *                   backward), the tile products summed exactly.
 *
 * Work is organized in "compute panels" of cp tile columns (one BLAS call
 * per panel and block of rows; cp depends only on nb, so every partial has
 * the same bits for any P) grouped into "groups" of tile columns (one MPI
 * exchange per group; the group width only bounds the scratch and does not
 * change any result). In reproducible mode every partial (one block of B
 * rows, or one tile product) is deposited exactly (include/imx/exact.h), so
 * C, T and out are bitwise identical for any number of ranks and any grid.
 * Scratch per rank: about 4 K w + 2 K cp nb + 3 K n doubles, w the group
 * width in columns (at most 2^24 / (3 K) rounded to panels, at least one
 * panel): never K x K.
 */
#ifndef IMX_DMOMENTS_H
#define IMX_DMOMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "imx/ctx.h"
#include "imx/dmat.h"
#include "imx/rsum.h"

typedef struct imx_dmoments imx_dmoments;

/* Create the plan and scratch for matrices laid out like `layout` (K, nb,
 * grid) and replicated factors of n columns. panel_tiles, group_tiles: cp and
 * the group width in tiles (0 = automatic; tests set small values to
 * exercise many panels). Collective (agreed). Free with imx_dmoments_free. */
imx_err imx_dmoments_create(imx_ctx *ctx, const imx_dmat *layout, imx_reduction mode, int n,
                            int panel_tiles, int group_tiles, imx_dmoments **out);
void imx_dmoments_free(imx_dmoments **dm);

/* The scratch bytes imx_dmoments_create would take per rank (about; for
 * planning). Local. */
size_t imx_dmoments_estimate(int K, int nb, imx_reduction mode, int n, int P);

/* Scratch bytes held on this rank. Local. */
size_t imx_dmoments_bytes(const imx_dmoments *dm);
/* Compute panel and group widths in tiles. Local. */
void imx_dmoments_panels(const imx_dmoments *dm, int *panel_tiles, int *group_tiles);

/* C's lower tiles = scale * sum over all global rows of d d^T, D the m local
 * rows (m x K, row-major) starting at a block boundary. Reproducible mode:
 * one partial per block of `block` rows, bounded by dmax (the global column
 * maxima of |D|, K values); fast mode: the local rows are one partial and
 * dmax may be NULL. Collective. */
imx_err imx_dmoments_gram(imx_ctx *ctx, imx_dmoments *dm, int block, int64_t m, const double *D,
                          const double *dmax, double scale, imx_dmat *C);

/* C's lower tiles = T W^T for replicated T, W (K x n, row-major). Local. */
void imx_dmoments_outer(imx_dmoments *dm, imx_dmat *C, const double *T, const double *W);

/* T = alpha D G (m x K, row-major) for the m local rows of D (m x K,
 * row-major), G symmetric (lower tiles), rows taken `step` at a time.
 * Mirrors G's diagonal tiles. Collective. */
imx_err imx_dmoments_apply_rows(imx_ctx *ctx, imx_dmoments *dm, imx_dmat *G, int64_t step,
                                int64_t m, const double *D, double alpha, double *T);

/* The same without zeroing T first: T += alpha D G. Collective. */
imx_err imx_dmoments_apply_rows_add(imx_ctx *ctx, imx_dmoments *dm, imx_dmat *G, int64_t step,
                                    int64_t m, const double *D, double alpha, double *T);

/* T = alpha D M^{-1} (m x K, row-major) for the m local rows of D, from the
 * Cholesky factor M = L L^T in L's lower tiles, by two triangular solves per
 * row (L's compute panels all-gathered one group at a time, forward then
 * backward: 2 m K^2 flops, as apply_rows, without forming M^{-1}). Each
 * row's bits depend on K, nb and the row only (not on P or the grid).
 * Collective. */
imx_err imx_dmoments_solve_rows(imx_ctx *ctx, imx_dmoments *dm, imx_dmat *L, int64_t step,
                                int64_t m, const double *D, double alpha, double *T);

/* out = alpha G T (K x n, row-major, the same bits on every rank) for G
 * symmetric (lower tiles) and replicated T (K x n, row-major). Mirrors G's
 * diagonal tiles. Collective. */
imx_err imx_dmoments_apply_replicated(imx_ctx *ctx, imx_dmoments *dm, imx_dmat *G, const double *T,
                                      double alpha, double *out);

#endif
