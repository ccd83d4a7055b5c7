/* linalg_scalapack: log det and inverse of a block-cyclic SPD matrix with
 * ScaLAPACK (see include/imx/linalg.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imx/blas.h"
#include "imx/linalg.h"
#include "imx/scalapack.h"

struct imx_dinv {
  int K, nb, kt, gp;  /* order, tile size, tiles per dimension, tile columns per exchange */
  int cq;             /* panels per trailing update of the Cholesky */
  int nj;             /* tile columns of M^{-1} this rank solves for */
  int *jt;            /* their indices, ascending */
  int64_t *xoff;      /* offset of each in x */
  double *x;          /* rows J nb..K of tile column J, leading dimension K - J nb */
  imx_dpanel *pan;    /* layout of the current group */
  double *buf, *part; /* a group's lower tiles: gathered (total) / this rank's (max) */
  double *R;          /* cq slots of K x nb: rows k nb..K of L's tile column k; nb^2 + 1 */
  size_t bytes;
};

/* The rank that solves for tile column J: one of the ranks of J's process
 * column, round robin, so the work spreads over the whole grid. */
static int solver(const imx_dmat *M, int J) {
  int pr = M->grid->pr, pc = M->grid->pc;
  return ((J / pc) % pr) * pc + J % pc;
}

static int group_width(int K, int nb, int kt, int P) {
  /* Panels of at most K^2 / 2P doubles (half a local block) and 2^24 (128 MiB) per exchange. */
  int64_t budget = (int64_t)K * K / (2 * P), cap = (int64_t)1 << 24;
  int64_t g = (budget < cap ? budget : cap) / K / nb;
  if (g < 1) g = 1;
  return (int)(g < kt ? g : kt);
}

size_t imx_dinv_estimate(int K, int nb, int P) {
  int kt = (K + nb - 1) / nb, gp = group_width(K, nb, kt, P), cq = 256 / nb > 1 ? 256 / nb : 1;
  double w = (double)gp * nb < K ? (double)gp * nb : K;
  /* x (this rank's columns of M^{-1}, with imbalance), a gathered group and
   * this rank's share of it, the panel slots. */
  double d = (double)K * K / (2.0 * P) + (double)K * nb + K * w * (1 + 1.0 / P) +
             (double)cq * K * nb + (double)nb * nb + 1;
  return (size_t)(d * sizeof(double));
}

void imx_dinv_free(imx_dinv **wp) {
  if (!wp || !*wp) return;
  imx_dinv *w = *wp;
  free(w->jt), free(w->xoff), free(w->x), free(w->buf), free(w->part), free(w->R);
  imx_dpanel_free(&w->pan);
  free(w);
  *wp = NULL;
}

size_t imx_dinv_bytes(const imx_dinv *w) { return w->bytes; }

/* The scratch; without `inverse` only the factorization's (no x, one tile
 * column per exchange). */
static imx_err create(imx_ctx *ctx, const imx_dmat *M, int panel_tiles, int group_tiles,
                      int inverse, imx_dinv **out) {
  *out = NULL;
  imx_dinv *w = calloc(1, sizeof *w);
  if (!w) return imx_agree(ctx, imx_fail(ctx, IMX_ERR_NOMEM, "inverse scratch"));
  w->K = M->K, w->nb = M->nb, w->kt = M->kt;
  /* About 256 columns per trailing pass, as dmoments' panels. */
  w->cq = panel_tiles > 0 ? panel_tiles : (256 / w->nb > 1 ? 256 / w->nb : 1);
  w->gp = !inverse          ? 1
          : group_tiles > 0 ? (group_tiles < w->kt ? group_tiles : w->kt)
                            : group_width(w->K, w->nb, w->kt, ctx->size);
  imx_err e = imx_dpanel_create(ctx, M, w->gp, &w->pan);
  int64_t xs = 0, max_total = 0, max_mine = 0;
  w->jt = malloc((size_t)w->kt * sizeof *w->jt);
  w->xoff = malloc((size_t)w->kt * sizeof *w->xoff);
  if (!e && (!w->jt || !w->xoff)) e = imx_fail(ctx, IMX_ERR_NOMEM, "inverse scratch");
  for (int J = 0; !e && inverse && J < w->kt; J++)
    if (solver(M, J) == ctx->rank) {
      w->jt[w->nj] = J, w->xoff[w->nj] = xs, w->nj++;
      xs += (int64_t)(w->K - J * w->nb) * imx_dmat_tile_rows(M, J);
    }
  for (int g0 = 0; !e && g0 < w->kt; g0 += w->gp) {
    imx_dpanel_set(w->pan, M, g0, g0 + w->gp < w->kt ? g0 + w->gp : w->kt);
    if (w->pan->total > max_total) max_total = w->pan->total;
    if (w->pan->count[ctx->rank] > max_mine) max_mine = w->pan->count[ctx->rank];
  }
  if (!e) {
    w->x = malloc((size_t)(xs ? xs : 1) * sizeof *w->x);
    w->buf = malloc((size_t)(max_total ? max_total : 1) * sizeof *w->buf);
    w->part = malloc((size_t)(max_mine ? max_mine : 1) * sizeof *w->part);
    int64_t rs = (int64_t)w->cq * w->K * w->nb + (int64_t)w->nb * w->nb + 1;
    w->R = malloc((size_t)rs * sizeof *w->R);
    w->bytes = (size_t)(xs + max_total + max_mine + rs) * sizeof(double);
    if (!w->x || !w->buf || !w->part || !w->R)
      e = imx_fail(ctx, IMX_ERR_NOMEM, "inverse scratch: %.1f MiB on this rank",
                   (double)w->bytes / 1048576);
  }
  e = imx_agree(ctx, e);
  if (e) {
    imx_dinv_free(&w);
    return e;
  }
  *out = w;
  return IMX_OK;
}

imx_err imx_dinv_create(imx_ctx *ctx, const imx_dmat *M, int panel_tiles, int group_tiles,
                        imx_dinv **out) {
  return create(ctx, M, panel_tiles, group_tiles, 1, out);
}

imx_err imx_dinv_create_factor(imx_ctx *ctx, const imx_dmat *M, imx_dinv **out) {
  return create(ctx, M, 0, 1, 0, out);
}

/* R = rows k nb..K of tile column k, from the gathered group (column-major,
 * leading dimension K - k nb). */
static void panel_of(const imx_dinv *w, const imx_dmat *M, int k, double *R) {
  int mr = w->K - k * w->nb, tc = imx_dmat_tile_rows(M, k);
  for (int i = k; i < w->kt; i++) {
    int tr = imx_dmat_tile_rows(M, i);
    const double *s = w->buf + w->pan->off[(size_t)(k - w->pan->jt0) * w->kt + i];
    for (int j = 0; j < tc; j++)
      memcpy(R + (size_t)(i - k) * w->nb + (size_t)j * mr, s + (size_t)j * tr,
             (size_t)tr * sizeof *R);
  }
}

/* M^{-1} = L^{-T} L^{-1} from the factor L in M's lower tiles, into M's
 * lower tiles. Each rank solves L L^T X_J = E_J for its tile columns J (only
 * rows >= J are needed and computed): forward over L's panels k = J..kt-1,
 * then backward k = kt-1..J, every step a BLAS call whose shape depends on
 * (K, nb, k, J) only. Then the tiles go to their owners. Collective. */
static imx_err inverse_from_factor(imx_ctx *ctx, imx_dmat *M, imx_dinv *w) {
  int K = w->K, nb = w->nb, kt = w->kt;
  const double one = 1, mone = -1;
  for (int t = 0; t < w->nj; t++) {
    int J = w->jt[t], ld = K - J * nb, c = imx_dmat_tile_rows(M, J);
    double *x = w->x + w->xoff[t];
    memset(x, 0, (size_t)ld * c * sizeof *x);
    for (int j = 0; j < c; j++) x[j + (size_t)j * ld] = 1;
  }
  /* Forward: Y = L^{-1} E, panel k applied to every Y_J with J <= k. */
  for (int g0 = 0; g0 < kt; g0 += w->gp) {
    int g1 = g0 + w->gp < kt ? g0 + w->gp : kt;
    imx_dpanel_set(w->pan, M, g0, g1);
    IMX_TRY(imx_dpanel_allgather(ctx, w->pan, M, w->part, w->buf));
    for (int k = g0; k < g1; k++) {
      panel_of(w, M, k, w->R);
      int mr = K - k * nb, nk = imx_dmat_tile_rows(M, k), rest = mr - nk;
      for (int t = 0; t < w->nj && w->jt[t] <= k; t++) {
        int J = w->jt[t], ld = K - J * nb, c = imx_dmat_tile_rows(M, J);
        double *y = w->x + w->xoff[t] + (size_t)(k - J) * nb;
        dtrsm_("L", "L", "N", "N", &nk, &c, &one, w->R, &mr, y, &ld);
        if (rest > 0)
          dgemm_("N", "N", &rest, &c, &nk, &mone, w->R + nk, &mr, y, &ld, &one, y + nk, &ld);
      }
    }
  }
  /* Backward: X = L^{-T} Y, panels k = kt-1..0. */
  for (int g0 = (kt - 1) / w->gp * w->gp; g0 >= 0; g0 -= w->gp) {
    int g1 = g0 + w->gp < kt ? g0 + w->gp : kt;
    imx_dpanel_set(w->pan, M, g0, g1);
    IMX_TRY(imx_dpanel_allgather(ctx, w->pan, M, w->part, w->buf));
    for (int k = g1 - 1; k >= g0; k--) {
      panel_of(w, M, k, w->R);
      int mr = K - k * nb, nk = imx_dmat_tile_rows(M, k), rest = mr - nk;
      for (int t = 0; t < w->nj && w->jt[t] <= k; t++) {
        int J = w->jt[t], ld = K - J * nb, c = imx_dmat_tile_rows(M, J);
        double *y = w->x + w->xoff[t] + (size_t)(k - J) * nb;
        if (rest > 0)
          dgemm_("T", "N", &nk, &c, &rest, &mone, w->R + nk, &mr, y + nk, &ld, &one, y, &ld);
        dtrsm_("L", "L", "T", "N", &nk, &c, &one, w->R, &mr, y, &ld);
      }
    }
  }
  /* To the owners: each tile has one contributor, so the sum moves it exactly. */
  for (int g0 = 0; g0 < kt; g0 += w->gp) {
    int g1 = g0 + w->gp < kt ? g0 + w->gp : kt;
    imx_dpanel_set(w->pan, M, g0, g1);
    memset(w->buf, 0, (size_t)w->pan->total * sizeof *w->buf);
    for (int t = 0; t < w->nj; t++) {
      int J = w->jt[t], ld = K - J * nb, c = imx_dmat_tile_rows(M, J);
      if (J < g0 || J >= g1) continue;
      for (int i = J; i < kt; i++) {
        int r = imx_dmat_tile_rows(M, i);
        double *dst = w->buf + w->pan->off[(size_t)(J - g0) * kt + i];
        const double *src = w->x + w->xoff[t] + (size_t)(i - J) * nb;
        for (int j = 0; j < c; j++)
          memcpy(dst + (size_t)j * r, src + (size_t)j * ld, (size_t)r * sizeof *dst);
      }
    }
    IMX_TRY(imx_dpanel_reduce_scatter(ctx, w->pan, 1, w->buf, w->part));
    int64_t mine0 = w->pan->displ[ctx->rank];
    for (int J = g0; J < g1; J++)
      for (int i = J; i < kt; i++) {
        if (!imx_dmat_mine(M, i, J)) continue;
        int r = imx_dmat_tile_rows(M, i), c = imx_dmat_tile_rows(M, J);
        const double *src = w->part + (w->pan->off[(size_t)(J - g0) * kt + i] - mine0);
        double *t = imx_dmat_tile(M, i, J);
        for (int j = 0; j < c; j++)
          memcpy(t + (size_t)j * M->lld, src + (size_t)j * r, (size_t)r * sizeof *t);
      }
  }
  return IMX_OK;
}

/* The first non-finite entry of the symmetric M in row-major order (as the
 * replicated check reports it), from the lower tiles: (i, j) with i >= j
 * is also (j, i), which comes first. -1 if none. Collective. */
static imx_err first_nonfinite(imx_ctx *ctx, const imx_dmat *M, int64_t *first) {
  int64_t best = INT64_MAX, K = M->K;
  for (int J = 0; J < M->kt; J++)
    for (int I = J; I < M->kt; I++) {
      if (!imx_dmat_mine(M, I, J)) continue;
      const double *t = imx_dmat_tile(M, I, J);
      int tr = imx_dmat_tile_rows(M, I), tc = imx_dmat_tile_rows(M, J);
      for (int j = 0; j < tc; j++)
        for (int i = (I == J ? j : 0); i < tr; i++)
          if (!isfinite(t[i + (size_t)j * M->lld])) {
            int64_t gi = (int64_t)I * M->nb + i, gj = (int64_t)J * M->nb + j;
            if (gj * K + gi < best) best = gj * K + gi;
          }
    }
  imx_comm_sent(ctx, sizeof best, 1);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &best, 1, MPI_INT64_T, MPI_MIN, ctx->comm));
  *first = best == INT64_MAX ? -1 : best;
  return IMX_OK;
}

/* Right-looking tile Cholesky of M's lower tiles in place. For each k the
 * owner factors tile (k, k) (LAPACK) and broadcasts it, the owners of tile
 * column k solve their tiles, and the column goes to every rank. Every tile
 * (i, j) then receives the updates L_ik L_jk^T for k = 0, 1, ... in that
 * order, one DGEMM (nb x nb x nb) each: every BLAS call has a shape fixed by
 * K and nb, so L has the same bits for any grid (pdpotrf's do not: its local
 * BLAS calls span as many tiles as the grid gives a rank). Panels come in
 * groups of w->cq: within a group the updates go only to the group's own
 * columns, and the trailing tiles then take the group's cq updates while
 * they are in cache (one pass over the trailing matrix per group instead of
 * per panel; the order per tile is the same). *info: the failing pivot
 * (1-based, global) or 0. Collective. */
static imx_err tile_cholesky(imx_ctx *ctx, imx_dmat *M, imx_dinv *w, int *info) {
  int K = w->K, nb = w->nb, kt = w->kt, lld = M->lld;
  const double one = 1, mone = -1;
  double *L = w->R + (size_t)w->cq * K * nb; /* L_kk (nk x nk, ld nk), then its INFO */
  *info = 0;
  /* Tile i of panel k in the group's slots: rows k nb..K of tile column k. */
#define SLOT(k) (w->R + (size_t)((k) % w->cq) * K * nb)
#define LD(k) (K - (k)*nb)
  for (int k0 = 0; k0 < kt; k0 += w->cq) {
    int k1 = k0 + w->cq < kt ? k0 + w->cq : kt;
    for (int k = k0; k < k1; k++) {
      int nk = imx_dmat_tile_rows(M, k), root = imx_dmat_owner(M, k, k), kinfo = 0;
      if (imx_dmat_mine(M, k, k)) {
        double *t = imx_dmat_tile(M, k, k);
        dpotrf_("L", &nk, t, &lld, &kinfo);
        for (int j = 0; j < nk; j++)
          memcpy(L + (size_t)j * nk, t + (size_t)j * lld, (size_t)nk * sizeof *L);
        L[(size_t)nk * nk] = kinfo;
      }
      imx_comm_sent(ctx, 8.0 * (nk * nk + 1), 0);
      IMX_MPI(ctx, MPI_Bcast(L, nk * nk + 1, MPI_DOUBLE, root, ctx->comm));
      kinfo = (int)L[(size_t)nk * nk];
      if (kinfo) {
        *info = k * nb + kinfo;
        return IMX_OK;
      }
      for (int i = k + 1; i < kt; i++)
        if (imx_dmat_mine(M, i, k)) {
          int ri = imx_dmat_tile_rows(M, i);
          dtrsm_("R", "L", "T", "N", &ri, &nk, &one, L, &nk, imx_dmat_tile(M, i, k), &lld);
        }
      if (k + 1 == kt) break;
      imx_dpanel_set(w->pan, M, k, k + 1);
      IMX_TRY(imx_dpanel_allgather(ctx, w->pan, M, w->part, w->buf));
      panel_of(w, M, k, SLOT(k));
      /* Updates within the group: columns k+1 .. k1-1. */
      const double *P = SLOT(k);
      int ldp = LD(k);
      for (int j = k + 1; j < k1; j++)
        for (int i = j; i < kt; i++) {
          if (!imx_dmat_mine(M, i, j)) continue;
          int ri = imx_dmat_tile_rows(M, i), rj = imx_dmat_tile_rows(M, j);
          dgemm_("N", "T", &ri, &rj, &nk, &mone, P + (size_t)(i - k) * nb, &ldp,
                 P + (size_t)(j - k) * nb, &ldp, &one, imx_dmat_tile(M, i, j), &lld);
        }
    }
    /* The trailing tiles: the group's updates in order, tile by tile. */
    for (int j = k1; j < kt; j++)
      for (int i = j; i < kt; i++) {
        if (!imx_dmat_mine(M, i, j)) continue;
        int ri = imx_dmat_tile_rows(M, i), rj = imx_dmat_tile_rows(M, j);
        double *t = imx_dmat_tile(M, i, j);
        for (int k = k0; k < k1; k++) {
          int nk = imx_dmat_tile_rows(M, k), ldp = LD(k);
          const double *P = SLOT(k);
          dgemm_("N", "T", &ri, &rj, &nk, &mone, P + (size_t)(i - k) * nb, &ldp,
                 P + (size_t)(j - k) * nb, &ldp, &one, t, &lld);
        }
      }
  }
#undef SLOT
#undef LD
  return IMX_OK;
}

imx_err imx_linalg_dist_cholesky_logdet(imx_ctx *ctx, imx_dmat *M, const char *what, double *work,
                                        imx_dinv *w, double *logdet, int *info) {
  int K = M->K, one = 1;
  int64_t bad = -1;
  *info = 0, *logdet = NAN;
  IMX_TRY(first_nonfinite(ctx, M, &bad));
  if (bad >= 0)
    return imx_fail(ctx, IMX_ERR_NUMERIC, "%s (K=%d) has a non-finite entry at (%zu, %zu)", what, K,
                    (size_t)(bad / K), (size_t)(bad % K));
  if (w) {
    IMX_TRY(tile_cholesky(ctx, M, w, info));
  } else {
    pdpotrf_("L", &K, M->a, &one, &one, M->desc, info);
    /* pdpotrf returns the same INFO on every rank of the grid; agree anyway,
     * so that no rank goes on alone. */
    int v[2] = {*info > 0 ? *info : INT32_MAX, *info < 0 ? *info : 0};
    IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MIN, ctx->comm));
    if (v[1]) return imx_fail(ctx, IMX_ERR_INTERNAL, "pdpotrf: argument %d illegal", -v[1]);
    *info = v[0] == INT32_MAX ? 0 : v[0];
  }
  if (*info) return IMX_OK;
  IMX_TRY(imx_dmat_diag(ctx, M, work));
  double ld = 0;
  for (int i = 0; i < K; i++) ld += log(work[i]);
  *logdet = 2 * ld;
  return IMX_OK;
}

imx_err imx_linalg_dist_logdet_factor(imx_ctx *ctx, imx_dmat *M, const char *what, double *logdet,
                                      double *work, imx_dinv *w) {
  int info = 0;
  IMX_TRY(imx_linalg_dist_cholesky_logdet(ctx, M, what, work, w, logdet, &info));
  /* The tile algorithm's failing call is LAPACK's dpotrf on a diagonal tile
   * (INFO made global): the replicated backend's message, word for word. */
  if (info) return imx_linalg_fail_not_spd(ctx, w ? "dpotrf" : "pdpotrf", what, info, M->K);
  return IMX_OK;
}

imx_err imx_linalg_dist_logdet_inverse(imx_ctx *ctx, imx_dmat *M, const char *what, double *logdet,
                                       double *work, imx_dinv *w) {
  IMX_TRY(imx_linalg_dist_logdet_factor(ctx, M, what, logdet, work, w));
  if (w) return inverse_from_factor(ctx, M, w);
  int K = M->K, one = 1, info = 0;
  pdpotri_("L", &K, M->a, &one, &one, M->desc, &info);
  int v = info;
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, ctx->comm));
  if (v != 0)
    return imx_fail(ctx, IMX_ERR_NUMERIC, "%s: pdpotri INFO=%d (singular factor), K=%d", what, v,
                    K);
  return IMX_OK;
}

int64_t imx_linalg_dist_eigvalsh_work(int K, int nb, int pr) {
  int zero = 0, rows = numroc_(&K, &nb, &zero, &zero, &pr);
  int64_t trd = (int64_t)(rows + 1) * nb, least = 12 * (int64_t)K;
  if (trd < 3 * (int64_t)nb) trd = 3 * (int64_t)nb;
  return 5 * (int64_t)K + 2 + (trd > least ? trd : least);
}

imx_err imx_linalg_dist_eigvalsh(imx_ctx *ctx, imx_dmat *M, const char *what, double *w) {
  int K = M->K, one = 1, m = 0, nz = 0, info = 0, lwork = -1, liwork = -1, iq = 0;
  double vl = 0, vu = 0, wq = 0, zdummy = 0;
  /* Eigenvalues only: Z is not referenced, its descriptor is M's. The query
   * gives the integer workspace; the real one is ours (see linalg.h): the
   * size the query returns would let PDSYNTRD copy the matrix onto a square
   * subgrid, all of it onto one rank for P < 4. */
  pdsyevr_("N", "A", "L", &K, M->a, &one, &one, M->desc, &vl, &vu, &one, &one, &m, &nz, w, &zdummy,
           &one, &one, M->desc, &wq, &lwork, &iq, &liwork, &info);
  int64_t lw = imx_linalg_dist_eigvalsh_work(K, M->nb, M->grid->pr);
  lwork = lw < INT32_MAX ? (int)lw : INT32_MAX, liwork = iq > 1 ? iq : 1;
  double *work = malloc((size_t)lwork * sizeof *work);
  int *iwork = malloc((size_t)liwork * sizeof *iwork);
  imx_err e = work && iwork
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "%s: pdsyevr workspace of %.1f MiB (K=%d)", what,
                             (double)lwork * 8 / 1048576, K);
  e = imx_agree(ctx, e);
  if (!e) {
    pdsyevr_("N", "A", "L", &K, M->a, &one, &one, M->desc, &vl, &vu, &one, &one, &m, &nz, w,
             &zdummy, &one, &one, M->desc, work, &lwork, iwork, &liwork, &info);
    int v[2] = {info != 0 ? info : 0, m != K};
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, ctx->comm);
    e = IMX_MPI_ERR(ctx, rc, "MPI_Allreduce(pdsyevr INFO)");
    if (!e && (v[0] != 0 || v[1]))
      e = imx_fail(ctx, IMX_ERR_NUMERIC, "%s: pdsyevr INFO=%d, %d of %d eigenvalues", what, v[0], m,
                   K);
    e = imx_agree(ctx, e);
  }
  /* The eigenvalues are global output; rank 0's go to all, so that every
   * rank has the same bits. */
  if (!e) {
    int rc = MPI_Bcast(w, K, MPI_DOUBLE, 0, ctx->comm);
    e = imx_agree(ctx, IMX_MPI_ERR(ctx, rc, "MPI_Bcast(eigenvalues)"));
  }
  free(work), free(iwork);
  return e;
}
