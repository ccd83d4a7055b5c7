/* metrics_dist: the moment measures (dead units, correlations, Gaussian total
 * correlation, effective rank) on the block-cyclic tiles of C, for layers too
 * wide for replicated K x K matrices (see include/imx/metrics.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/activation.h"
#include "imx/dmat.h"
#include "imx/dmoments.h"
#include "imx/exact.h"
#include "imx/linalg.h"
#include "imx/log.h"
#include "imx/metrics.h"
#include "imx/moments.h"
#include "imx/rowsout.h"
#include "imx/rsum.h"

/* The tile size: nb, doubled while the lower tiles are more than an exact sum
 * can take (one deposit per tile; the scalapack backend's rule). */
static int tile_size(int K, int nb) {
  for (;;) {
    int64_t kt = (K + nb - 1) / nb;
    if (kt * (kt + 1) / 2 <= IMX_RSUM_MAX_DEPOSITS) return nb;
    nb *= 2;
  }
}

/* Global row (or column) of local row (column) l of a matrix on grid
 * coordinate p of np. */
static int global_index(const imx_dmat *m, int l, int p, int np) {
  return (l / m->nb * np + p) * m->nb + l % m->nb;
}

/* C = the covariance of the outputs A over all rows, lower tiles (the
 * reductions of the scalapack backend's gram: the same bits for any P in
 * reproducible mode). Collective. */
static imx_err covariance(imx_ctx *ctx, imx_reduction mode, const imx_outputs *o, imx_dmat *C) {
  int K = o->K;
  size_t rows = (size_t)(o->nloc ? o->nloc : 1);
  double *mean = malloc((size_t)K * sizeof *mean), *dmax = malloc((size_t)K * sizeof *dmax);
  double *D = malloc(rows * K * sizeof *D);
  imx_rsum *rs = NULL;
  imx_dmoments *dm = NULL;
  imx_err e = mean && dmax && D
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "measures: centered outputs of %lld rows x K=%d",
                             (long long)o->nloc, K);
  if (!e) e = imx_rsum_create(ctx, mode, 1, K, 0, &rs);
  e = imx_agree(ctx, e);
  if (!e) e = imx_moments_colsum(ctx, rs, o->block, o->nloc, K, o->A, K, NULL, mean);
  if (!e) {
    for (int k = 0; k < K; k++) mean[k] /= (double)o->N;
    for (int64_t i = 0; i < o->nloc; i++)
      for (int k = 0; k < K; k++) D[i * K + k] = o->A[i * K + k] - mean[k];
    e = imx_dmoments_create(ctx, C, mode, 1, 0, 0, &dm);
  }
  if (!e && mode == IMX_RED_REPRODUCIBLE) e = imx_colmax(ctx, o->nloc, K, D, K, dmax);
  if (!e)
    e = imx_dmoments_gram(ctx, dm, o->block, o->nloc, D, mode == IMX_RED_REPRODUCIBLE ? dmax : NULL,
                          1.0 / (double)o->N, C);
  imx_dmoments_free(&dm);
  imx_rsum_free(&rs);
  free(mean), free(dmax), free(D);
  return e;
}

/* max and mean |R_jk| over the pairs j < k of live units, from the strictly
 * lower part of this rank's tiles. The max is exact in any order; each tile's
 * sum (taken in a fixed order, so its bits do not depend on the grid) is one
 * exact deposit, so the mean has the same bits for any P. Collective. */
static imx_err correlations(imx_ctx *ctx, const imx_dmat *C, const double *d, const int *live,
                            int L, imx_metrics *m) {
  double rmax = 0, bins[IMX_EXACT_FOLD] = {0}, sum = 0;
  double U = imx_exact_pow2(2.0 * C->nb * C->nb); /* |r| <= 1 up to rounding */
  int violated = 0;
  int64_t deposits = 0;
  for (int J = 0; J < C->kt; J++)
    for (int I = J; I < C->kt; I++) {
      if (!imx_dmat_mine(C, I, J)) continue;
      const double *t = imx_dmat_tile(C, I, J);
      int tr = imx_dmat_tile_rows(C, I), tc = imx_dmat_tile_rows(C, J);
      double ts = 0;
      for (int j = 0; j < tc; j++) {
        int gj = J * C->nb + j;
        if (!live[gj]) continue;
        for (int i = (I == J ? j + 1 : 0); i < tr; i++) {
          int gi = I * C->nb + i;
          if (!live[gi]) continue;
          double r = fabs(t[i + (size_t)j * C->lld] / sqrt(d[gi] * d[gj]));
          rmax = r > rmax ? r : rmax;
          ts += r;
        }
      }
      violated |= imx_exact_deposit1(1, &ts, U, &bins[0], &bins[1], &bins[2]);
      deposits++;
    }
  IMX_TRY(
      imx_exact_allreduce(ctx, IMX_EXACT_FOLD, 1, bins, violated, deposits, "mean |corr|", &sum));
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &rmax, 1, MPI_DOUBLE, MPI_MAX, ctx->comm));
  m->max_abs_corr = L >= 2 ? rmax : NAN;
  m->mean_abs_corr = L >= 2 ? sum / (0.5 * L * (L - 1.0)) : NAN;
  return IMX_OK;
}

/* Entry (gi, gj) of the correlation matrix from c = C_{gi gj}, as the
 * replicated code forms it: 0 in a dead unit's row and column, 1 on a live
 * unit's diagonal. Local. */
static double corr_entry(const double *d, const int *live, int gi, int gj, double c) {
  if (!live[gi] || !live[gj]) return 0;
  return gi == gj ? 1 : c / sqrt(d[gi] * d[gj]);
}

/* The correlation matrix into path (.npy, K x K, row-major), each rank
 * writing the entries of its lower tiles and their mirror images, a group of
 * tile rows (at most 64 MiB of the file) per collective write: in row gi,
 * tile column J comes from tile (gi / nb, J) below the diagonal and from
 * the transpose of tile (J, gi / nb) above it. No rank holds more than its
 * share of one group. Collective. */
static imx_err write_correlation(imx_ctx *ctx, const imx_dmat *C, const double *d, const int *live,
                                 const char *path) {
  int K = C->K, nb = C->nb, kt = C->kt;
  int64_t group = ((int64_t)8 << 20) / ((int64_t)K * nb); /* tile rows per write */
  if (group < 1) group = 1;
  if (group > kt) group = kt;
  int64_t most = group * nb * (int64_t)kt; /* runs: one per row and tile column at most */
  int64_t *off = malloc((size_t)most * sizeof *off);
  int *len = malloc((size_t)most * sizeof *len);
  double *val = malloc((size_t)group * nb * K * sizeof *val);
  imx_rows_file *f = NULL;
  imx_err e = off && len && val ? IMX_OK
                                : imx_fail(ctx, IMX_ERR_NOMEM, "%s: buffers of %lld rows x K=%d",
                                           path, (long long)(group * nb), K);
  e = imx_agree(ctx, e);
  if (!e) e = imx_rows_open(ctx, path, &f);
  for (int R0 = 0; !e && R0 < kt; R0 += (int)group) {
    int R1 = R0 + group < kt ? R0 + (int)group : kt, n = 0;
    int64_t v = 0;
    for (int gi = R0 * nb; gi < (R1 * nb < K ? R1 * nb : K); gi++) {
      int I = gi / nb, i = gi % nb;
      for (int J = 0; J < kt; J++) {
        int lower = I >= J, ti = lower ? I : J, tj = lower ? J : I, tc = imx_dmat_tile_rows(C, J);
        if (!imx_dmat_mine(C, ti, tj)) continue;
        const double *t = imx_dmat_tile(C, ti, tj);
        int64_t o = (int64_t)gi * K + (int64_t)J * nb;
        if (n && off[n - 1] + len[n - 1] == o) len[n - 1] += tc;
        else off[n] = o, len[n] = tc, n++;
        for (int j = 0; j < tc; j++) {
          /* (i, j) of tile (I, J), from the lower triangle of the tiles */
          int below = I > J || (I == J && i >= j);
          double c = below ? t[i + (size_t)j * C->lld] : t[j + (size_t)i * C->lld];
          val[v++] = corr_entry(d, live, gi, J * nb + j, c);
        }
      }
    }
    e = imx_rows_put_runs(ctx, f, K, K, n, off, len, val);
  }
  if (f) {
    imx_err c = imx_rows_close(ctx, &f, e == IMX_OK);
    if (!e) e = c;
  }
  free(off), free(len), free(val);
  return e;
}

/* M's lower tiles = the correlations R of the live units, with the identity
 * in the rows and columns of the dead ones (log det unchanged), plus v v^T
 * for outputs on the simplex: there C 1 = 0, so R's null vector is
 * v = D^1/2 1 / ||D^1/2 1|| (live units), and det(R + v v^T) is the product
 * of R's other eigenvalues, the determinant the replicated code takes. Local. */
static void correlation_matrix(const imx_dmat *C, const double *d, const int *live, int simplex,
                               imx_dmat *M) {
  const imx_grid *g = C->grid;
  double nrm = 0;
  for (int k = 0; simplex && k < C->K; k++)
    if (live[k]) nrm += d[k];
  nrm = sqrt(nrm);
  for (int lj = 0; lj < C->nloc; lj++) {
    int gj = global_index(C, lj, g->mycol, g->pc);
    for (int li = 0; li < C->mloc; li++) {
      int gi = global_index(C, li, g->myrow, g->pr);
      size_t at = li + (size_t)lj * C->lld;
      if (gi < gj) continue; /* upper: not referenced */
      /* the identity in a dead unit's row and column */
      double r = gi == gj && !live[gi] ? 1 : corr_entry(d, live, gi, gj, C->a[at]);
      if (simplex && live[gi] && live[gj]) r += sqrt(d[gi]) / nrm * (sqrt(d[gj]) / nrm);
      M->a[at] = r;
    }
  }
}

imx_err imx_metrics_moments_tiles(imx_ctx *ctx, imx_reduction mode, const imx_outputs *o,
                                  imx_metrics *m) {
  int K = o->K, nb = tile_size(K, o->tiles > 0 ? o->tiles : 64);
  imx_grid *g = NULL;
  imx_dmat *C = NULL, *M = NULL;
  imx_dinv *w = NULL;
  double *d = malloc((size_t)K * sizeof *d), *ev = malloc((size_t)K * sizeof *ev);
  int *live = malloc((size_t)K * sizeof *live);
  m->eigenvalues = malloc((size_t)K * sizeof *m->eigenvalues);
  imx_err e = d && ev && live && m->eigenvalues
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "measures: %d-vectors", K);
  e = imx_agree(ctx, e);
  if (!e) e = imx_grid_create(ctx, o->grid_rows, o->grid_cols, &g);
  if (!e) e = imx_dmat_create(ctx, g, K, nb, &C);
  if (!e) e = covariance(ctx, mode, o, C);
  if (!e) e = imx_dmat_diag(ctx, C, d);
  /* Dead units: the rule of the replicated code and of training. */
  int L = 0;
  if (!e) {
    double mean = 0;
    for (int j = 0; j < K; j++) mean += d[j] / K;
    for (int j = 0; j < K; j++) live[j] = d[j] > 1e-12 * mean && d[j] > 0, L += live[j];
    m->dead_units = K - L;
    e = correlations(ctx, C, d, live, L, m);
  }
  if (!e && o->corr_path) e = write_correlation(ctx, C, d, live, o->corr_path);
  /* Gaussian total correlation: -1/2 log det R by Cholesky (the replicated
   * code sums the logs of R's eigenvalues); not positive definite: +inf. */
  m->gaussian_tc = NAN;
  if (!e && L >= 2) {
    e = imx_dmat_create(ctx, g, K, nb, &M);
    if (!e && mode == IMX_RED_REPRODUCIBLE) e = imx_dinv_create_factor(ctx, M, &w);
    if (!e) {
      double logdet = NAN;
      int info = 0;
      correlation_matrix(C, d, live, imx_activation_simplex(o->act), M);
      e = imx_linalg_dist_cholesky_logdet(ctx, M, "correlation of the live units", ev, w, &logdet,
                                          &info);
      m->gaussian_tc = info ? INFINITY : -0.5 * logdet;
    }
    imx_dinv_free(&w);
    imx_dmat_free(&M);
  }
  /* Effective rank from the eigenvalues of C (tiny negative ones are rounding). */
  if (!e) e = imx_linalg_dist_eigvalsh(ctx, C, "covariance of the outputs", ev);
  if (!e && m->eigenvalues) imx_metrics_spectrum(K, ev, m);
  imx_dmat_free(&C);
  imx_grid_free(&g);
  free(d), free(ev), free(live);
  return e;
}
