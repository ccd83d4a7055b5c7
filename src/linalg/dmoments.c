/* dmoments: row-sharded data <-> block-cyclic K x K matrices (see
 * include/imx/dmoments.h and docs/architecture.md, "The scalapack backend"). */
#include "imx/dmoments.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/blas.h"
#include "imx/exact.h"
#include "imx/rsum.h"
#include "imx/scalapack.h"

struct imx_dmoments {
  int nbins;        /* IMX_EXACT_FOLD (reproducible) or 1 (fast) */
  int K, nb, kt, n; /* order, tile size, tiles per dimension, factor columns */
  int cp, gp;       /* compute panel and group widths, in tiles (gp a multiple of cp) */
  int rt;           /* tile rows of a partial per BLAS call in gram (about 512 rows) */
  imx_dpanel *pan;  /* layout of the current group */
  double *buf;      /* nbins * max_total: a group's partial-sum bins, or G's gathered group */
  double *part;     /* nbins * max_mine: this rank's reduced bins, or its packed tiles */
  double *R;        /* K x cp nb: one compute panel of a partial, or of G */
  double *pu, *pv;  /* K each: bounds of the partials (reproducible) */
  double *rbins;    /* nbins * K * n: bins of apply_replicated */
  double *S;        /* nb x n: one tile product */
  double *tpv;      /* n: bounds of the columns of T */
  size_t bytes;     /* all of the above */
};

static void *grab(size_t count, size_t *bytes, int *bad) {
  void *p = malloc((count ? count : 1) * sizeof(double));
  if (!p) *bad = 1;
  *bytes += count * sizeof(double);
  return p;
}

void imx_dmoments_free(imx_dmoments **dmp) {
  if (!dmp || !*dmp) return;
  imx_dmoments *dm = *dmp;
  imx_dpanel_free(&dm->pan);
  free(dm->buf), free(dm->part), free(dm->R), free(dm->pu), free(dm->pv);
  free(dm->rbins), free(dm->S), free(dm->tpv);
  free(dm);
  *dmp = NULL;
}

size_t imx_dmoments_bytes(const imx_dmoments *dm) { return dm->bytes; }

void imx_dmoments_panels(const imx_dmoments *dm, int *panel_tiles, int *group_tiles) {
  *panel_tiles = dm->cp, *group_tiles = dm->gp;
}

/* Compute panel cp and group gp widths in tiles. */
static void widths(int K, int nb, int nbins, int P, int panel_tiles, int group_tiles, int *cp,
                   int *gp) {
  int kt = (K + nb - 1) / nb;
  /* About 256 columns per BLAS call: wide enough for DGEMM to run at full
   * speed, and a function of nb alone so that partials do not depend on P. */
  int c = panel_tiles > 0 ? panel_tiles : (256 / nb > 1 ? 256 / nb : 1);
  if (c > kt) c = kt;
  /* Groups of panels: bins of at most K^2 / P doubles (a local block's worth)
   * and 2^24 (128 MiB) per exchange, at least one panel. */
  int64_t g = group_tiles;
  if (g <= 0) {
    int64_t budget = (int64_t)K * K / P, cap = (int64_t)1 << 24;
    int64_t cols = (budget < cap ? budget : cap) / ((int64_t)nbins * K);
    g = cols / ((int64_t)c * nb) * c;
  }
  if (g < c) g = c;
  if (g % c) g += c - g % c;
  if (g > kt) g = (kt + c - 1) / c * c;
  *cp = c, *gp = (int)g;
}

size_t imx_dmoments_estimate(int K, int nb, imx_reduction mode, int n, int P) {
  int nbins = mode == IMX_RED_REPRODUCIBLE ? IMX_EXACT_FOLD : 1, cp, gp;
  widths(K, nb, nbins, P, 0, 0, &cp, &gp);
  double w = (double)gp * nb < K ? (double)gp * nb : K, total = (double)K * w;
  double mine = total / P + (double)K * nb; /* share of the largest group, with imbalance */
  double d = nbins * (total + mine) + (double)K * (cp * nb < K ? cp * nb : K) + 2.0 * K +
             (double)nbins * K * n + (double)nb * n + n;
  return (size_t)(d * sizeof(double));
}

imx_err imx_dmoments_create(imx_ctx *ctx, const imx_dmat *C, imx_reduction mode, int n,
                            int panel_tiles, int group_tiles, imx_dmoments **out) {
  *out = NULL;
  imx_dmoments *dm = calloc(1, sizeof *dm);
  if (!dm) return imx_agree(ctx, imx_fail(ctx, IMX_ERR_NOMEM, "distributed moments"));
  dm->nbins = mode == IMX_RED_REPRODUCIBLE ? IMX_EXACT_FOLD : 1;
  dm->K = C->K, dm->nb = C->nb, dm->kt = C->kt, dm->n = n;
  int K = dm->K, nb = dm->nb, kt = dm->kt;
  widths(K, nb, dm->nbins, C->grid->pr * C->grid->pc, panel_tiles, group_tiles, &dm->cp, &dm->gp);
  /* A function of nb alone (like cp), so that partials do not depend on P; a
   * test's panel_tiles sets it too, to exercise many chunks. */
  dm->rt = panel_tiles > 0 ? panel_tiles : (512 / nb > 1 ? 512 / nb : 1);
  imx_err e = imx_dpanel_create(ctx, C, dm->gp, &dm->pan);
  /* The largest group (in total and in this rank's share) sizes the buffers. */
  int64_t max_total = 0, max_mine = 0;
  for (int g0 = 0; !e && g0 < kt; g0 += dm->gp) {
    imx_dpanel_set(dm->pan, C, g0, g0 + dm->gp < kt ? g0 + dm->gp : kt);
    if (dm->pan->total > max_total) max_total = dm->pan->total;
    if (dm->pan->count[ctx->rank] > max_mine) max_mine = dm->pan->count[ctx->rank];
  }
  if (!e && (int64_t)dm->nbins * max_total >= INT32_MAX)
    e = imx_fail(ctx, IMX_ERR_INTERNAL, "panel group of %lld elements overflows MPI counts",
                 (long long)max_total);
  int bad = 0;
  size_t panel = (size_t)K * (size_t)(dm->cp * nb < K ? dm->cp * nb : K);
  if (!e) {
    dm->buf = grab((size_t)dm->nbins * max_total, &dm->bytes, &bad);
    dm->part = grab((size_t)dm->nbins * max_mine, &dm->bytes, &bad);
    dm->R = grab(panel, &dm->bytes, &bad);
    dm->pu = grab((size_t)K, &dm->bytes, &bad);
    dm->pv = grab((size_t)K, &dm->bytes, &bad);
    dm->rbins = grab((size_t)dm->nbins * K * n, &dm->bytes, &bad);
    dm->S = grab((size_t)nb * n, &dm->bytes, &bad);
    dm->tpv = grab((size_t)n, &dm->bytes, &bad);
    if (bad)
      e = imx_fail(ctx, IMX_ERR_NOMEM, "distributed moments scratch: %.1f MiB on this rank",
                   (double)dm->bytes / 1048576);
  }
  e = imx_agree(ctx, e);
  if (e) {
    imx_dmoments_free(&dm);
    return e;
  }
  *out = dm;
  return IMX_OK;
}

/* Bins of tile (I, J) of the current group: nbins consecutive tile-sized arrays. */
static double *tile_bins(const imx_dmoments *dm, double *base, int I, int J) {
  return base + (int64_t)dm->nbins * dm->pan->off[(size_t)(J - dm->pan->jt0) * dm->kt + I];
}

static int tile_rows(const imx_dmoments *dm, int I) {
  int r = dm->K - I * dm->nb;
  return r < dm->nb ? r : dm->nb;
}

/* Add R (rows of tile rows [i0, i1), columns of tile columns [q0, q1),
 * leading dimension its row count) to the group's bins: the tiles I >= J. */
static int deposit(imx_dmoments *dm, int i0, int i1, int q0, int q1, const double *R) {
  int nb = dm->nb, r0 = i0 * nb, J0 = q0 * nb, bad = 0;
  int rl = (i1 * nb < dm->K ? i1 * nb : dm->K) - r0;
  for (int J = q0; J < q1; J++) {
    int tc = tile_rows(dm, J), cj = J * nb - J0;
    for (int I = J > i0 ? J : i0; I < i1; I++) {
      int tr = tile_rows(dm, I), ri = I * nb - r0;
      int64_t ts = (int64_t)tr * tc;
      double *base = tile_bins(dm, dm->buf, I, J);
      for (int jj = 0; jj < tc; jj++) {
        const double *x = R + ri + (size_t)(cj + jj) * rl;
        double *b0 = base + (size_t)jj * tr;
        if (dm->nbins == IMX_EXACT_FOLD)
          bad |= imx_exact_deposit(tr, x, dm->pu + (size_t)I * nb, dm->pv[J * nb + jj], b0, b0 + ts,
                                   b0 + 2 * ts);
        else
          for (int i = 0; i < tr; i++) b0[i] += x[i];
      }
    }
  }
  return bad;
}

/* Tiles of this rank in the current group = scale * reduced bins. */
static void unpack_group(const imx_ctx *ctx, imx_dmoments *dm, double scale, imx_dmat *C) {
  const imx_dpanel *p = dm->pan;
  int64_t mine0 = p->displ[ctx->rank];
  for (int J = p->jt0; J < p->jt1; J++)
    for (int I = J; I < dm->kt; I++) {
      if (!imx_dmat_mine(C, I, J)) continue;
      int tr = tile_rows(dm, I), tc = tile_rows(dm, J);
      int64_t ts = (int64_t)tr * tc;
      const double *s = dm->part +
                        (int64_t)dm->nbins * (p->off[(size_t)(J - p->jt0) * dm->kt + I] - mine0);
      double *t = imx_dmat_tile(C, I, J);
      for (int jj = 0; jj < tc; jj++)
        for (int i = 0; i < tr; i++) {
          int64_t k = (int64_t)jj * tr + i;
          double v = dm->nbins == IMX_EXACT_FOLD ? (s[k] + s[ts + k]) + s[2 * ts + k] : s[k];
          t[i + (size_t)jj * C->lld] = v * scale;
        }
    }
}

/* R = M[J0:K, J0:J1] (mr x w, leading dimension mr; M the gathered G or L) of compute panel q0..q1
 * from the gathered lower tiles of group g0; the upper part of its leading
 * w x w block is left as it is (the solves read the lower triangle; the
 * product with G mirrors it). */
static void panel_lower(const imx_dmoments *dm, int g0, int q0, int q1, double *R) {
  int K = dm->K, nb = dm->nb, kt = dm->kt, J0 = q0 * nb, mr = K - J0;
  for (int J = q0; J < q1; J++) {
    int tc = tile_rows(dm, J), cj = J * nb - J0;
    for (int I = J; I < kt; I++) {
      int tr = tile_rows(dm, I), ri = I * nb - J0;
      const double *s = dm->buf + dm->pan->off[(size_t)(J - g0) * kt + I];
      for (int jj = 0; jj < tc; jj++)
        memcpy(R + ri + (size_t)(cj + jj) * mr, s + (size_t)jj * tr, (size_t)tr * sizeof *R);
    }
  }
}

/* Agree on the bound check and the deposit count of an exact sum. */
static imx_err check_exact(imx_ctx *ctx, const imx_dmoments *dm, int bad, int64_t deposits,
                           const char *what) {
  if (dm->nbins != IMX_EXACT_FOLD) return IMX_OK;
  return imx_exact_check(ctx, bad, deposits, what, "parallel.block (or parallel.scalapack_block)");
}

imx_err imx_dmoments_gram(imx_ctx *ctx, imx_dmoments *dm, int block, int64_t m, const double *D,
                          const double *dmax, double scale, imx_dmat *C) {
  int K = dm->K, nb = dm->nb, kt = dm->kt, nbins = dm->nbins;
  int repro = nbins == IMX_EXACT_FOLD;
  if (repro) { /* the bound of imx_moments_atb: B max|d_i| max|d_j| */
    double ps = imx_exact_pow2((double)block);
    for (int i = 0; i < K; i++) {
      dm->pv[i] = imx_exact_pow2(dmax[i]);
      dm->pu[i] = ps * dm->pv[i];
    }
  }
  const double one = 1, zero = 0;
  int64_t step = repro ? block : (m > 0 ? m : 1), chunks = 0;
  int bad = 0;
  for (int64_t r0 = 0; r0 < m; r0 += step) chunks++;
  for (int g0 = 0; g0 < kt; g0 += dm->gp) {
    int g1 = g0 + dm->gp < kt ? g0 + dm->gp : kt;
    imx_dpanel_set(dm->pan, C, g0, g1);
    memset(dm->buf, 0, (size_t)nbins * dm->pan->total * sizeof *dm->buf);
    for (int q0 = g0; q0 < g1; q0 += dm->cp) {
      int q1 = q0 + dm->cp < g1 ? q0 + dm->cp : g1;
      int J0 = q0 * nb, w = (q1 * nb < K ? q1 * nb : K) - J0;
      /* Rows J0..K of the panel, rt tile rows at a time, so that their bins
       * stay in cache while every block of rows adds its partial. */
      for (int i0 = q0; i0 < kt; i0 += dm->rt) {
        int i1 = i0 + dm->rt < kt ? i0 + dm->rt : kt, R0 = i0 * nb;
        int rl = (i1 * nb < K ? i1 * nb : K) - R0;
        for (int64_t r0 = 0; r0 < m; r0 += step) {
          int c = (int)(r0 + step < m ? step : m - r0);
          const double *Dt = D + r0 * K; /* column-major K x c */
          /* rows R0..R0+rl, columns J0..J0+w of this block's D^T D */
          dgemm_("N", "T", &rl, &w, &c, &one, Dt + R0, &K, Dt + J0, &K, &zero, dm->R, &rl);
          bad |= deposit(dm, i0, i1, q0, q1, dm->R);
        }
      }
    }
    IMX_TRY(imx_dpanel_reduce_scatter(ctx, dm->pan, nbins, dm->buf, dm->part));
    unpack_group(ctx, dm, scale, C);
  }
  return check_exact(ctx, dm, bad, chunks, "covariance");
}

void imx_dmoments_outer(imx_dmoments *dm, imx_dmat *C, const double *T, const double *W) {
  int nb = dm->nb, n = dm->n;
  const double one = 1, zero = 0;
  for (int J = 0; J < dm->kt; J++)
    for (int I = J; I < dm->kt; I++) {
      if (!imx_dmat_mine(C, I, J)) continue;
      int tr = tile_rows(dm, I), tc = tile_rows(dm, J);
      /* tile(i, j) = T_{I0+i} . W_{J0+j} */
      dgemm_("T", "N", &tr, &tc, &n, &one, T + (size_t)I * nb * n, &n, W + (size_t)J * nb * n, &n,
             &zero, imx_dmat_tile(C, I, J), &C->lld);
    }
}

imx_err imx_dmoments_apply_rows(imx_ctx *ctx, imx_dmoments *dm, imx_dmat *G, int64_t step,
                                int64_t m, const double *D, double alpha, double *T) {
  memset(T, 0, (size_t)m * dm->K * sizeof *T);
  return imx_dmoments_apply_rows_add(ctx, dm, G, step, m, D, alpha, T);
}

imx_err imx_dmoments_apply_rows_add(imx_ctx *ctx, imx_dmoments *dm, imx_dmat *G, int64_t step,
                                    int64_t m, const double *D, double alpha, double *T) {
  int K = dm->K, nb = dm->nb, kt = dm->kt;
  const double one = 1;
  if (step < 1) step = 1;
  for (int g0 = 0; g0 < kt; g0 += dm->gp) {
    int g1 = g0 + dm->gp < kt ? g0 + dm->gp : kt;
    imx_dpanel_set(dm->pan, G, g0, g1);
    IMX_TRY(imx_dpanel_allgather(ctx, dm->pan, G, dm->part, dm->buf));
    for (int q0 = g0; q0 < g1; q0 += dm->cp) {
      int q1 = q0 + dm->cp < g1 ? q0 + dm->cp : g1;
      int J0 = q0 * nb, J1 = q1 * nb < K ? q1 * nb : K, w = J1 - J0, mr = K - J0;
      /* R = G[J0:K, J0:J1] from the gathered lower tiles, its leading w x w
       * block made symmetric (upper from lower). */
      double *R = dm->R;
      panel_lower(dm, g0, q0, q1, R);
      for (int j = 0; j < w; j++)
        for (int i = j + 1; i < w; i++) R[j + (size_t)i * mr] = R[i + (size_t)j * mr];
      /* T[:, J0:K] += alpha D[:, J0:J1] G[J0:J1, J0:K]   (lower part, column view)
       * T[:, J0:J1] += alpha D[:, J1:K] G[J1:K, J0:J1]   (the mirrored upper part) */
      for (int64_t r0 = 0; r0 < m; r0 += step) {
        int c = (int)(r0 + step < m ? step : m - r0), rest = mr - w;
        const double *Dt = D + r0 * K;
        double *Tt = T + r0 * K;
        dgemm_("N", "N", &mr, &c, &w, &alpha, R, &mr, Dt + J0, &K, &one, Tt + J0, &K);
        if (rest > 0)
          dgemm_("T", "N", &w, &c, &rest, &alpha, R + w, &mr, Dt + J1, &K, &one, Tt + J0, &K);
      }
    }
  }
  return IMX_OK;
}

imx_err imx_dmoments_solve_rows(imx_ctx *ctx, imx_dmoments *dm, imx_dmat *L, int64_t step,
                                int64_t m, const double *D, double alpha, double *T) {
  int K = dm->K, nb = dm->nb, kt = dm->kt;
  const double one = 1, mone = -1;
  if (step < 1) step = 1;
  for (int64_t i = 0; i < m * K; i++) T[i] = alpha * D[i];
  /* Row t of T as a column of T^T (K x m, leading dimension K): forward
   * Y = L^{-1} T^T over L's compute panels in ascending order, then
   * X = L^{-T} Y in descending order; each panel's DTRSM and DGEMM have
   * shapes fixed by K, nb and the panel, so a row's bits do not depend on
   * which rank holds it or on P. */
  for (int g0 = 0; g0 < kt; g0 += dm->gp) {
    int g1 = g0 + dm->gp < kt ? g0 + dm->gp : kt;
    imx_dpanel_set(dm->pan, L, g0, g1);
    IMX_TRY(imx_dpanel_allgather(ctx, dm->pan, L, dm->part, dm->buf));
    for (int q0 = g0; q0 < g1; q0 += dm->cp) {
      int q1 = q0 + dm->cp < g1 ? q0 + dm->cp : g1;
      int J0 = q0 * nb, J1 = q1 * nb < K ? q1 * nb : K, w = J1 - J0, mr = K - J0, rest = mr - w;
      panel_lower(dm, g0, q0, q1, dm->R);
      for (int64_t r0 = 0; r0 < m; r0 += step) {
        int c = (int)(r0 + step < m ? step : m - r0);
        double *Tt = T + r0 * K;
        dtrsm_("L", "L", "N", "N", &w, &c, &one, dm->R, &mr, Tt + J0, &K);
        if (rest > 0)
          dgemm_("N", "N", &rest, &c, &w, &mone, dm->R + w, &mr, Tt + J0, &K, &one, Tt + J1, &K);
      }
    }
  }
  for (int g0 = (kt - 1) / dm->gp * dm->gp; g0 >= 0; g0 -= dm->gp) {
    int g1 = g0 + dm->gp < kt ? g0 + dm->gp : kt;
    imx_dpanel_set(dm->pan, L, g0, g1);
    IMX_TRY(imx_dpanel_allgather(ctx, dm->pan, L, dm->part, dm->buf));
    for (int q0 = g0 + (g1 - 1 - g0) / dm->cp * dm->cp; q0 >= g0; q0 -= dm->cp) {
      int q1 = q0 + dm->cp < g1 ? q0 + dm->cp : g1;
      int J0 = q0 * nb, J1 = q1 * nb < K ? q1 * nb : K, w = J1 - J0, mr = K - J0, rest = mr - w;
      panel_lower(dm, g0, q0, q1, dm->R);
      for (int64_t r0 = 0; r0 < m; r0 += step) {
        int c = (int)(r0 + step < m ? step : m - r0);
        double *Tt = T + r0 * K;
        if (rest > 0)
          dgemm_("T", "N", &w, &c, &rest, &mone, dm->R + w, &mr, Tt + J1, &K, &one, Tt + J0, &K);
        dtrsm_("L", "L", "T", "N", &w, &c, &one, dm->R, &mr, Tt + J0, &K);
      }
    }
  }
  return IMX_OK;
}

imx_err imx_dmoments_apply_replicated(imx_ctx *ctx, imx_dmoments *dm, imx_dmat *G, const double *T,
                                      double alpha, double *out) {
  int K = dm->K, nb = dm->nb, kt = dm->kt, n = dm->n, nbins = dm->nbins;
  int repro = nbins == IMX_EXACT_FOLD;
  const double one = 1, zero = 0;
  imx_dmat_mirror_diag_tiles(G);
  if (repro) {
    /* Bound of one tile product: nb max_j |G_ij| max_j |T_jl|; the row maxima
     * of the symmetric G from its lower tiles, then across ranks (exact). */
    double *rm = dm->pu;
    for (int i = 0; i < K; i++) rm[i] = 0;
    for (int J = 0; J < kt; J++)
      for (int I = J; I < kt; I++) {
        if (!imx_dmat_mine(G, I, J)) continue;
        const double *t = imx_dmat_tile(G, I, J);
        int tr = tile_rows(dm, I), tc = tile_rows(dm, J);
        for (int j = 0; j < tc; j++)
          for (int i = 0; i < tr; i++) {
            double a = fabs(t[i + (size_t)j * G->lld]);
            if (a > rm[I * nb + i]) rm[I * nb + i] = a;
            if (a > rm[J * nb + j]) rm[J * nb + j] = a;
          }
      }
    imx_comm_sent(ctx, 8.0 * K, 1);
    IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, rm, K, MPI_DOUBLE, MPI_MAX, ctx->comm));
    double ps = imx_exact_pow2((double)nb);
    for (int i = 0; i < K; i++) rm[i] = ps * imx_exact_pow2(rm[i]);
    for (int l = 0; l < n; l++) {
      double mx = 0;
      for (int k = 0; k < K; k++) mx = fmax(mx, fabs(T[(size_t)k * n + l]));
      dm->tpv[l] = imx_exact_pow2(mx);
    }
  }
  int64_t kn = (int64_t)K * n, tiles = 0;
  memset(dm->rbins, 0, (size_t)nbins * kn * sizeof *dm->rbins);
  int bad = 0;
  /* Row r of a tile product into the bins of row `row` of out. */
#define DEPOSIT_ROW(src, row)                                                                \
  do {                                                                                       \
    double *b0_ = dm->rbins + (size_t)(row)*n;                                               \
    if (repro)                                                                               \
      bad |= imx_exact_deposit(n, (src), dm->tpv, dm->pu[row], b0_, b0_ + kn, b0_ + 2 * kn); \
    else                                                                                     \
      for (int l_ = 0; l_ < n; l_++) b0_[l_] += (src)[l_];                                   \
  } while (0)
  for (int J = 0; J < kt; J++)
    for (int I = J; I < kt; I++) {
      if (!imx_dmat_mine(G, I, J)) continue;
      tiles++;
      int tr = tile_rows(dm, I), tc = tile_rows(dm, J);
      const double *t = imx_dmat_tile(G, I, J);
      /* S (n x tr, column-major) = T_J^T G_IJ^T: row i of G_IJ T_J. */
      dgemm_("N", "T", &n, &tr, &tc, &one, T + (size_t)J * nb * n, &n, t, &G->lld, &zero, dm->S,
             &n);
      for (int i = 0; i < tr; i++) DEPOSIT_ROW(dm->S + (size_t)i * n, I * nb + i);
      if (I == J) continue;
      /* S (n x tc) = T_I^T G_IJ: row j of G_IJ^T T_I (the mirrored upper tile). */
      dgemm_("N", "N", &n, &tc, &tr, &one, T + (size_t)I * nb * n, &n, t, &G->lld, &zero, dm->S,
             &n);
      for (int j = 0; j < tc; j++) DEPOSIT_ROW(dm->S + (size_t)j * n, J * nb + j);
    }
#undef DEPOSIT_ROW
  IMX_TRY(imx_exact_allreduce(ctx, nbins, (int)kn, dm->rbins, bad, tiles, "G W S_x", out));
  for (int64_t i = 0; i < kn; i++) out[i] *= alpha;
  return IMX_OK;
}
