/* linalg: K x K dense linear algebra, in two backends, and the choice between
 * them.
 *
 * replicated (src/linalg/linalg.c): LAPACK on matrices every rank holds; every rank
 * holds the same input bits and computes the same output bits, so no
 * broadcast is needed. These functions are Local.
 *
 * scalapack (src/linalg/linalg_scalapack.c): ScaLAPACK on block-cyclic matrices
 * (include/imx/dmat.h); no rank holds a K x K array. Collective.
 */
#ifndef IMX_LINALG_H
#define IMX_LINALG_H

#include <stddef.h>

#include "imx/ctx.h"
#include "imx/dmat.h"
#include "imx/names.h"

/* parallel.linalg: the dense K x K backend (auto: imx_linalg_choose). */
typedef enum { IMX_LINALG_AUTO = 0, IMX_LINALG_REPLICATED, IMX_LINALG_SCALAPACK } imx_linalg_kind;
/* The names of imx_linalg_kind, in its order (config accepts and writes these). */
static const char *const imx_linalg_names[] = {"auto", "replicated", "scalapack", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_linalg_name(imx_linalg_kind k) {
  return imx_name_of(imx_linalg_names, (int)k);
}

/* Cholesky of the symmetric positive definite M (K x K, row-major, full), then
 * log det M into *logdet and M^{-1} (full, symmetric) into M. `what` names the
 * matrix in the error message ("C + eps I"). A matrix that is not SPD returns
 * IMX_ERR_NUMERIC with the failing pivot and a hint. */
imx_err imx_linalg_logdet_inverse(imx_ctx *ctx, int K, double *M, const char *what, double *logdet);

/* Eigen-decomposition of the symmetric M (K x K, row-major): eigenvalues in
 * ascending order into w[K]; M is overwritten so that row i is the unit
 * eigenvector of w[i]. */
imx_err imx_linalg_eigh(imx_ctx *ctx, int K, double *M, double *w);

/* Record the not-SPD error of a Cholesky factorization (`routine` "dpotrf"
 * or "pdpotrf" returned INFO = info > 0 for the K x K matrix `what`): the same
 * message, pivot and hint in both backends. Returns IMX_ERR_NUMERIC. Local. */
imx_err imx_linalg_fail_not_spd(imx_ctx *ctx, const char *routine, const char *what, int info,
                                int K);

/* Copy the lower triangle of the row-major K x K matrix M to its upper triangle. */
void imx_linalg_symmetrize_lower(int K, double *M);

/* ---- scalapack backend ---- */

/* Scratch of the reproducible distributed factorization and inverse
 * (below): the columns of M^{-1} this rank solves for (about K^2 / 2P
 * doubles) and one group of L's panels. */
typedef struct imx_dinv imx_dinv;

/* Create the scratch for matrices laid out like M. panel_tiles: panels per
 * trailing update of the Cholesky; group_tiles: tile columns per exchange of
 * the inverse (0 = automatic; tests set small values). Collective (agreed). */
imx_err imx_dinv_create(imx_ctx *ctx, const imx_dmat *M, int panel_tiles, int group_tiles,
                        imx_dinv **out);
void imx_dinv_free(imx_dinv **w);
/* Bytes held on this rank. Local. */
size_t imx_dinv_bytes(const imx_dinv *w);
/* About the bytes imx_dinv_create takes per rank (for planning). Local. */
size_t imx_dinv_estimate(int K, int nb, int P);

/* Scratch for imx_linalg_dist_cholesky_logdet alone (no inverse: one
 * tile column of L per exchange, about (cq + 1) K nb doubles). Collective
 * (agreed). Free with imx_dinv_free. */
imx_err imx_dinv_create_factor(imx_ctx *ctx, const imx_dmat *M, imx_dinv **out);

/* Cholesky M = L L^T of the symmetric M (lower tiles, overwritten by L) and
 * log det M = 2 sum_i log L_ii (summed in index order: the same bits on every
 * rank) into *logdet; work: K doubles. w != NULL: the reproducible tile
 * Cholesky (the same bits for any grid and P; w from imx_dinv_create_factor
 * or imx_dinv_create), NULL: pdpotrf. A matrix that is not positive definite
 * is not an error here: *info > 0 is the failing pivot (1-based, the same on
 * every rank) and *logdet is NaN. Errors: a non-finite entry
 * (IMX_ERR_NUMERIC, naming `what`), IMX_ERR_MPI. Collective. */
imx_err imx_linalg_dist_cholesky_logdet(imx_ctx *ctx, imx_dmat *M, const char *what, double *work,
                                        imx_dinv *w, double *logdet, int *info);

/* Eigenvalues of the symmetric M (lower tiles; M is destroyed) into w[K],
 * ascending, with ScaLAPACK's pdsyevr (eigenvalues only: no eigenvector
 * matrix; real workspace imx_linalg_dist_eigvalsh_work). Rank 0's values are
 * broadcast, so every rank has the same bits; they depend on the grid
 * (different grids block the reduction to tridiagonal form differently),
 * within rounding. No rank holds more than its tiles of M and about
 * (K / pr + 1) nb + 17 K doubles. Errors (agreed): IMX_ERR_NOMEM,
 * IMX_ERR_NUMERIC (INFO != 0, naming `what`), IMX_ERR_MPI. Collective. */
imx_err imx_linalg_dist_eigvalsh(imx_ctx *ctx, imx_dmat *M, const char *what, double *w);

/* The real workspace (doubles per rank) imx_linalg_dist_eigvalsh gives
 * pdsyevr for order K, tile size nb and pr grid rows: pdsyevr's minimum for
 * eigenvalues only (17 K + 2) and what PDSYNTRD needs to reduce M to
 * tridiagonal form in place ((rows + 1) nb, rows = the most local rows of
 * any rank). Not the size pdsyevr's query returns (about K^2 / floor(sqrt P)^2
 * more): given that, PDSYNTRD copies M onto a square subgrid of floor(sqrt P)^2
 * ranks through ScaLAPACK's REDIST, the whole matrix onto one rank for P < 4,
 * and REDIST's buffer size in bytes is a C int: from K = 16384 on 1 to 3
 * ranks it printed "xxmr2d:out of memory" and exited. Local. */
int64_t imx_linalg_dist_eigvalsh_work(int K, int nb, int pr);

/* Cholesky M = L L^T of the SPD M (lower tiles), log det M into *logdet (the
 * diagonal of L gathered, its logs summed in index order: the same bits on
 * every rank), then M^{-1} into M's lower tiles. work: K doubles.
 *
 * w != NULL (reproducible): our tile algorithms, whose every BLAS call has a
 * shape fixed by K and nb, so that L, log det M and M^{-1} are the same bits
 * for any grid and any P: a right-looking tile Cholesky (LAPACK dpotrf on
 * the diagonal tiles, one DGEMM per trailing tile), then M^{-1} = L^{-T}
 * L^{-1} solved column tile by column tile with L streamed panel by panel.
 * w == NULL (fast): ScaLAPACK's pdpotrf and pdpotri (their bits depend on
 * the grid).
 *
 * Errors as imx_linalg_logdet_inverse: a non-finite entry (the first in
 * row-major order), or not SPD (the same message, naming dpotrf, or pdpotrf
 * in fast mode). Collective; all ranks return the same status. */
imx_err imx_linalg_dist_logdet_inverse(imx_ctx *ctx, imx_dmat *M, const char *what, double *logdet,
                                       double *work, imx_dinv *w);

/* The first half of imx_linalg_dist_logdet_inverse: the Cholesky factor L
 * into M's lower tiles and log det M, without the inverse (for the
 * triangular solves of imx_dmoments_solve_rows). The same bits of L and
 * log det, the same errors. Collective. */
imx_err imx_linalg_dist_logdet_factor(imx_ctx *ctx, imx_dmat *M, const char *what, double *logdet,
                                      double *work, imx_dinv *w);

/* ---- choice of backend ---- */

/* Memory per rank the choice may plan with, in bytes: memory_mib if > 0, else
 * MemAvailable of the node (/proc/meminfo) divided by the ranks on that node,
 * the minimum over all ranks. Collective. */
imx_err imx_linalg_memory_per_rank(imx_ctx *ctx, double memory_mib, double *bytes);

/* Pick the backend for `requested` (auto | replicated | scalapack) for K
 * units on P = ctx->size ranks, given the bytes per rank each backend would
 * allocate (the layer's estimates) and the memory per rank `avail` (bytes).
 * auto: replicated when it fits in 3/4 of avail and K is below the measured
 * crossover for P (docs/performance.md), else scalapack. why receives one
 * line for the log. Local (same result on every rank for the same inputs). */
/* The machine's DGEMM rate: the best of 3 square DGEMMs of size s (after a
 * warm-up) on every rank at once, GFLOP/s of the slowest rank into *gflops
 * (NAN when s <= 0). Errors (agreed): IMX_ERR_NOMEM, IMX_ERR_MPI. Collective. */
imx_err imx_linalg_dgemm_rate(imx_ctx *ctx, int s, double *gflops);

imx_linalg_kind imx_linalg_choose(imx_linalg_kind requested, int K, int P, double replicated_bytes,
                                  double scalapack_bytes, double avail, char *why, size_t len);

/* The K from which auto prefers scalapack on P ranks when both fit
 * (measured, docs/performance.md: 4096 for every P; 0 would mean never on
 * time alone). Local. */
int imx_linalg_crossover(int P);

#endif
