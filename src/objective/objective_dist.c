/* objective_dist: the moment terms on a block-cyclic C (the scalapack
 * backend). The formulas are those of src/objective/terms_impl.h, shared with
 * the replicated src/objective/objective.c (docs/objectives.md); here every
 * term reads only this rank's lower tiles of C and the replicated diagonal,
 * writes this rank's tiles of G, and combines its scalar and
 * per-unit sums across ranks exactly (include/imx/exact.h): one partial per
 * tile, so the values are the same bits on every rank and for any grid. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imx/exact.h"
#include "imx/linalg.h"
#include "imx/objective.h"
#include "terms_impl.h"

/* Slots of the exact sums: two scalars, then one value per unit. */
enum { S_OFFDIAG = 0, S_DECOR = 1, S_ROWS = 2 };

/* max |C_jk| and max C_jk^2 / (d_j d_k) over j != k (global, exact). */
static imx_err off_maxima(imx_ctx *ctx, const imx_dmat *C, const double *d, double mx[2]) {
  mx[0] = mx[1] = 0;
  for (int J = 0; J < C->kt; J++)
    for (int I = J; I < C->kt; I++) {
      if (!imx_dmat_mine(C, I, J)) continue;
      const double *t = imx_dmat_tile(C, I, J);
      int tr = imx_dmat_tile_rows(C, I), tc = imx_dmat_tile_rows(C, J);
      for (int j = 0; j < tc; j++) {
        int gj = J * C->nb + j;
        for (int i = (I == J ? j + 1 : 0); i < tr; i++) {
          int gi = I * C->nb + i;
          double c = t[i + (size_t)j * C->lld];
          mx[0] = fmax(mx[0], fabs(c));
          if (d) mx[1] = fmax(mx[1], decorrelation_value(c, d[gi], d[gj]));
        }
      }
    }
  imx_comm_sent(ctx, 2 * sizeof *mx, 1);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, mx, 2, MPI_DOUBLE, MPI_MAX, ctx->comm));
  return IMX_OK;
}

/* With softmax outputs, logdet and gaussian_tc factor different matrices
 * (their rank-one terms differ); without, both factor C + eps I. */
int imx_objective_dist_needs_work(const imx_objective *obj) {
  int factors = 0;
  for (int t = 0; t < IMX_NTERMS; t++)
    factors += obj->w[t] != 0 && (imx_objective_terms[t].needs & IMX_NEEDS_FACTOR);
  return factors > 1 && obj->null_vector;
}

int imx_objective_dist_rest(const imx_objective *obj) {
  const double *w = obj->w;
  return w[IMX_TERM_GAUSSIAN_TC] != 0 || w[IMX_TERM_OFFDIAG] != 0 || w[IMX_TERM_VARIANCE] != 0 ||
         w[IMX_TERM_DECORRELATION] != 0;
}

/* Solves cost 2 N K^2 flops, as the product D G they replace when logdet is
 * G's only term; beside other terms (G still applied to the rows) they cost
 * 2 N K^2 more, against 2/3 K^3 for M^{-1} = L^{-T} L^{-1}. */
int imx_objective_dist_solves(const imx_objective *obj, int64_t N, int K) {
  const double *w = obj->w;
  if (w[IMX_TERM_LOGDET] == 0 || w[IMX_TERM_GAUSSIAN_TC] != 0) return 0;
  return !imx_objective_dist_rest(obj) || 3 * (double)N < (double)K;
}

/* M = C + eps I + u u^T (u = NULL: no rank-one term) into M's lower tiles,
 * then log det M and M^{-1} (lower tiles), or only its Cholesky factor L
 * (inverse = 0). work: K doubles. Collective. */
static imx_err logdet_inverse(imx_ctx *ctx, const imx_objective *obj, const imx_dmat *C,
                              const double *u, imx_dmat *M, const char *what, double *logdet,
                              double *work, imx_dinv *inv, int inverse) {
  int nb = C->nb;
  for (int J = 0; J < C->kt; J++)
    for (int I = J; I < C->kt; I++) {
      if (!imx_dmat_mine(M, I, J)) continue;
      const double *c = imx_dmat_tile(C, I, J);
      double *m = imx_dmat_tile(M, I, J);
      int tr = imx_dmat_tile_rows(M, I), tc = imx_dmat_tile_rows(M, J);
      for (int j = 0; j < tc; j++)
        for (int i = 0; i < tr; i++) {
          int gi = I * nb + i, gj = J * nb + j;
          m[i + (size_t)j * M->lld] = shifted_entry(c[i + (size_t)j * C->lld], u, gi, gj, obj->eps);
        }
    }
  if (!inverse) return imx_linalg_dist_logdet_factor(ctx, M, what, logdet, work, inv);
  return imx_linalg_dist_logdet_inverse(ctx, M, what, logdet, work, inv);
}

/* q = M v for the symmetric M (lower tiles) and replicated v (K), exactly
 * summed over tiles (the same bits on every rank). Collective. */
static imx_err sym_matvec(imx_ctx *ctx, int nbins, const imx_dmat *M, const double *v, double *q) {
  int K = M->K, nb = M->nb;
  double mx[1] = {0}, vmax = 0;
  for (int J = 0; J < M->kt; J++)
    for (int I = J; I < M->kt; I++) {
      if (!imx_dmat_mine(M, I, J)) continue;
      const double *t = imx_dmat_tile(M, I, J);
      int tr = imx_dmat_tile_rows(M, I), tc = imx_dmat_tile_rows(M, J);
      for (int j = 0; j < tc; j++)
        for (int i = (I == J ? j : 0); i < tr; i++)
          mx[0] = fmax(mx[0], fabs(t[i + (size_t)j * M->lld]));
    }
  imx_comm_sent(ctx, sizeof mx, 1);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, mx, 1, MPI_DOUBLE, MPI_MAX, ctx->comm));
  for (int k = 0; k < K; k++) vmax = fmax(vmax, fabs(v[k]));
  /* One tile's partial of q_i: at most nb products |m_ij v_j|. */
  double U = imx_exact_pow2((double)nb) * imx_exact_pow2(mx[0]) * imx_exact_pow2(vmax);
  double *bins = calloc((size_t)nbins * K, sizeof *bins), *pr = malloc(2 * (size_t)nb * sizeof *pr);
  if (!bins || !pr) {
    free(bins), free(pr);
    return imx_fail(ctx, IMX_ERR_NOMEM, "matrix-vector product (K=%d)", K);
  }
  double *pc = pr + nb;
  int bad = 0;
  int64_t tiles = 0;
  for (int J = 0; J < M->kt; J++)
    for (int I = J; I < M->kt; I++) {
      if (!imx_dmat_mine(M, I, J)) continue;
      tiles++;
      const double *t = imx_dmat_tile(M, I, J);
      int tr = imx_dmat_tile_rows(M, I), tc = imx_dmat_tile_rows(M, J);
      const double *vi = v + (size_t)I * nb, *vj = v + (size_t)J * nb;
      for (int i = 0; i < tr; i++) pr[i] = 0;
      for (int j = 0; j < tc; j++) pc[j] = 0;
      for (int j = 0; j < tc; j++)
        for (int i = (I == J ? j : 0); i < tr; i++) {
          double mij = t[i + (size_t)j * M->lld];
          pr[i] += mij * vj[j];
          if (I != J || i != j) pc[j] += mij * vi[i]; /* the mirrored element (j, i) */
        }
      if (I == J)
        for (int i = 0; i < tr; i++) pr[i] += pc[i];
      double *r0 = bins + (size_t)I * nb, *c0 = bins + (size_t)J * nb;
      if (nbins == 1) {
        for (int i = 0; i < tr; i++) r0[i] += pr[i];
        if (I != J)
          for (int j = 0; j < tc; j++) c0[j] += pc[j];
        continue;
      }
      bad |= imx_exact_deposit1(tr, pr, U, r0, r0 + K, r0 + 2 * (size_t)K);
      if (I != J) bad |= imx_exact_deposit1(tc, pc, U, c0, c0 + K, c0 + 2 * (size_t)K);
    }
  imx_err e = imx_exact_allreduce(ctx, nbins, K, bins, bad, tiles, "M^-1 v", q);
  free(bins), free(pr);
  return e;
}

/* The state of one evaluation of the moment terms on the tiles. */
typedef struct dist_eval {
  const imx_objective *obj;
  int K, nb, kt, nbins, nv, two;
  double *d;           /* K: C_jj + eps */
  double *u, *q;       /* K: a null vector; gaussian_tc's M^-1 v */
  double *sums;        /* K + 2: the exact sums (offdiag, decorrelation, rows) */
  double *bins;        /* nbins x (K + 2) */
  double *rp, *cq;     /* nb each: one tile's row and column sums */
  double ld, ldtc;     /* log det of logdet's and of gaussian_tc's M */
  double S, qd;        /* gaussian_tc's null-vector scalars */
  const imx_dmat *Mtc; /* the matrix holding gaussian_tc's M^-1 (G when shared) */
  imx_dmat *L;         /* logdet's Cholesky factor, its M^-1 not formed (NULL: formed into G) */
} dist_eval;

/* logdet's M^-1 into G and gaussian_tc's into G or work (one factorization
 * when both use the same M), and gaussian_tc's q = M^-1 v. Collective. */
static imx_err factorizations(imx_ctx *ctx, dist_eval *st, const imx_dmat *C, imx_dmat *G,
                              imx_dmat *work, imx_dinv *inv) {
  const imx_objective *obj = st->obj;
  int K = st->K, nv = st->nv;
  st->Mtc = G;
  if (obj->w[IMX_TERM_LOGDET] != 0) {
    logdet_null_vector(K, st->u);
    IMX_TRY(logdet_inverse(ctx, obj, C, nv ? st->u : NULL, st->L ? st->L : G, logdet_matrix(nv),
                           &st->ld, st->sums, inv, !st->L));
  }
  if (obj->w[IMX_TERM_GAUSSIAN_TC] == 0) return IMX_OK;
  st->S = gaussian_tc_null_vector(K, st->d, st->u);
  if (obj->w[IMX_TERM_LOGDET] != 0 && !st->two) { /* the same M as logdet's */
    st->ldtc = st->ld;
  } else {
    imx_dmat *M = st->two ? work : G;
    IMX_TRY(logdet_inverse(ctx, obj, C, nv ? st->u : NULL, M, gaussian_tc_matrix(nv), &st->ldtc,
                           st->sums, inv, 1));
    st->Mtc = M;
  }
  if (nv) { /* q = M^-1 v, summed exactly over tiles */
    IMX_TRY(sym_matvec(ctx, st->nbins, st->Mtc, st->u, st->q));
    st->qd = gaussian_tc_qd(K, st->q, st->d);
  }
  return IMX_OK;
}

/* One pass over this rank's lower tiles: G's elements (in the order of the
 * replicated code: logdet, gaussian_tc, offdiag, variance, decorrelation)
 * and each tile's partial sums deposited into the bins (bounds from the
 * maxima mx). Returns nonzero if a partial exceeded its bound; *tiles counts
 * the tiles. Local. */
static int tile_pass(dist_eval *st, const imx_dmat *C, imx_dmat *G, const double mx[2],
                     int64_t *tiles) {
  const double *w = st->obj->w, *d = st->d, *q = st->q;
  double wld = st->L ? 0 : w[IMX_TERM_LOGDET], wtc = w[IMX_TERM_GAUSSIAN_TC],
         woff = w[IMX_TERM_OFFDIAG];
  double wvar = w[IMX_TERM_VARIANCE], wdec = w[IMX_TERM_DECORRELATION];
  int K = st->K, nb = st->nb, nv = st->nv;
  double *rp = st->rp, *cq = st->cq, S = st->S, qd = st->qd;
  const imx_dmat *Mtc = st->Mtc;
  /* Bounds of one tile's partials: nb^2 values of at most max c^2 (max q),
   * and per row at most nb values. */
  double pc = imx_exact_pow2(mx[0]), Uoff = imx_exact_pow2((double)nb * nb) * pc * pc;
  double pq = imx_exact_pow2(mx[1]), Udec = imx_exact_pow2((double)nb * nb) * pq;
  double Urow = imx_exact_pow2((double)nb) * pq;
  double *b0 = st->bins, *b1 = st->bins + (K + 2), *b2 = st->bins + 2 * (K + 2);
  int bad = 0;
  for (int J = 0; J < st->kt; J++)
    for (int I = J; I < st->kt; I++) {
      if (!imx_dmat_mine(G, I, J)) continue;
      (*tiles)++;
      const double *c = imx_dmat_tile(C, I, J), *mt = imx_dmat_tile(Mtc, I, J);
      double *g = imx_dmat_tile(G, I, J);
      int tr = imx_dmat_tile_rows(G, I), tc = imx_dmat_tile_rows(G, J);
      double soff = 0, sdec = 0;
      for (int i = 0; i < tr; i++) rp[i] = 0;
      for (int j = 0; j < tc; j++) cq[j] = 0;
      for (int j = 0; j < tc; j++) {
        int gj = J * nb + j;
        for (int i = (I == J ? j : 0); i < tr; i++) {
          int gi = I * nb + i, diag = gi == gj;
          double cij = c[i + (size_t)j * C->lld], v = 0;
          if (wld != 0) v = logdet_grad(v, wld, g[i + (size_t)j * G->lld]);
          if (wtc != 0) {
            v = gaussian_tc_grad(v, wtc, diag, d[gj], mt[i + (size_t)j * Mtc->lld]);
            if (diag && nv) v = gaussian_tc_null_grad(v, wtc, q[gj], S, qd);
          }
          if (woff != 0 && !diag) {
            soff += offdiag_value(cij);
            v = offdiag_grad(v, woff, cij);
          }
          if (wvar != 0 && diag) v = variance_grad(v, wvar, d[gj]);
          if (wdec != 0 && !diag) {
            double qq = decorrelation_value(cij, d[gi], d[gj]);
            sdec += qq;
            rp[i] += qq, cq[j] += qq;
            v = decorrelation_grad(v, wdec, cij, d[gi], d[gj]);
          }
          g[i + (size_t)j * G->lld] = v; /* (where Mtc is G, its element was read above) */
        }
      }
      if (woff == 0 && wdec == 0) continue;
      if (I == J)
        for (int i = 0; i < tr; i++) rp[i] += cq[i];
      if (st->nbins == 1) {
        b0[S_OFFDIAG] += soff, b0[S_DECOR] += sdec;
        for (int i = 0; i < tr; i++) b0[S_ROWS + I * nb + i] += rp[i];
        if (I != J)
          for (int j = 0; j < tc; j++) b0[S_ROWS + J * nb + j] += cq[j];
        continue;
      }
      bad |= imx_exact_deposit1(1, &soff, Uoff, b0 + S_OFFDIAG, b1 + S_OFFDIAG, b2 + S_OFFDIAG);
      bad |= imx_exact_deposit1(1, &sdec, Udec, b0 + S_DECOR, b1 + S_DECOR, b2 + S_DECOR);
      int r0 = S_ROWS + I * nb, c0 = S_ROWS + J * nb;
      bad |= imx_exact_deposit1(tr, rp, Urow, b0 + r0, b1 + r0, b2 + r0);
      if (I != J) bad |= imx_exact_deposit1(tc, cq, Urow, b0 + c0, b1 + c0, b2 + c0);
    }
  return bad;
}

/* decorrelation's G_jj from the row sums of q, on this rank's diagonal
 * tiles. Local. */
static void decorrelation_diagonal(const dist_eval *st, imx_dmat *G) {
  double wdec = st->obj->w[IMX_TERM_DECORRELATION];
  for (int I = 0; I < st->kt; I++) {
    if (!imx_dmat_mine(G, I, I)) continue;
    double *g = imx_dmat_tile(G, I, I);
    for (int i = 0; i < imx_dmat_tile_rows(G, I); i++) {
      int gi = I * st->nb + i;
      g[i + (size_t)i * G->lld] += wdec * decorrelation_grad_diag(st->sums[S_ROWS + gi], st->d[gi]);
    }
  }
}

/* imx_objective_moments_dist, and with L: logdet's factor into L, G
 * without logdet's -w M^{-1} (G untouched when no other term writes it, so
 * L may be G then). */
static imx_err moments_dist(imx_ctx *ctx, const imx_objective *obj, imx_reduction mode,
                            const imx_dmat *C, const double *diagC, imx_dmat *G, imx_dmat *work,
                            imx_dinv *inv, imx_dmat *L, double terms[IMX_NTERMS], double *value) {
  const double *w = obj->w;
  int K = C->K, nb = C->nb;
  double val[IMX_NTERMS] = {0};
  IMX_TRY(check_variances(ctx, K, diagC, 1)); /* diagC is replicated: every rank returns */
  dist_eval st = {.obj = obj,
                  .K = K,
                  .nb = nb,
                  .kt = C->kt,
                  .nv = obj->null_vector,
                  .nbins = mode == IMX_RED_REPRODUCIBLE ? IMX_EXACT_FOLD : 1,
                  /* logdet and gaussian_tc factor two matrices */
                  .two = imx_objective_dist_needs_work(obj),
                  .L = L};
  st.d = malloc((size_t)K * sizeof *st.d), st.sums = malloc((size_t)(K + 2) * sizeof *st.sums);
  st.u = malloc((size_t)K * sizeof *st.u), st.q = calloc((size_t)K, sizeof *st.q);
  st.bins = calloc((size_t)st.nbins * (K + 2), sizeof *st.bins);
  st.rp = malloc(2 * (size_t)nb * sizeof *st.rp), st.cq = st.rp ? st.rp + nb : NULL;
  imx_err e = IMX_OK;
  if (!st.d || !st.sums || !st.u || !st.q || !st.bins || !st.rp)
    e = imx_fail(ctx, IMX_ERR_NOMEM, "objective sums (K=%d)", K);
  if (!e && st.two && !work)
    e = imx_fail(ctx, IMX_ERR_INTERNAL, "distributed objective: second matrix missing");
  if (!e) e = unit_variances(ctx, obj, K, diagC, 1, st.d); /* d_j = C_jj + eps */
  /* Everything so far is replicated except the allocations: agree before
   * the collective part. */
  e = imx_agree(ctx, e);
  if (!e) e = factorizations(ctx, &st, C, G, work, inv);
  int sums = w[IMX_TERM_OFFDIAG] != 0 || w[IMX_TERM_DECORRELATION] != 0;
  double mx[2] = {0, 0};
  if (!e && sums) e = off_maxima(ctx, C, w[IMX_TERM_DECORRELATION] != 0 ? st.d : NULL, mx);
  if (!e && (!L || imx_objective_dist_rest(obj))) {
    int64_t tiles = 0;
    int bad = tile_pass(&st, C, G, mx, &tiles);
    if (sums)
      e = imx_exact_allreduce(ctx, st.nbins, K + 2, st.bins, bad, tiles, "objective sums", st.sums);
  }
  if (!e) {
    /* Values; sum_{j != k} = 2 sum_{j > k}. */
    if (w[IMX_TERM_LOGDET] != 0) val[IMX_TERM_LOGDET] = logdet_value(st.ld);
    if (w[IMX_TERM_GAUSSIAN_TC] != 0)
      val[IMX_TERM_GAUSSIAN_TC] = gaussian_tc_value(sum_log(K, st.d), st.ldtc);
    if (w[IMX_TERM_OFFDIAG] != 0) val[IMX_TERM_OFFDIAG] = 2 * st.sums[S_OFFDIAG];
    if (w[IMX_TERM_VARIANCE] != 0) val[IMX_TERM_VARIANCE] = variance_value(K, st.d);
    if (w[IMX_TERM_DECORRELATION] != 0) {
      decorrelation_diagonal(&st, G);
      val[IMX_TERM_DECORRELATION] = 2 * st.sums[S_DECOR];
    }
    *value = moment_total(obj, val, terms);
  }
  free(st.d), free(st.sums), free(st.u), free(st.q), free(st.bins), free(st.rp);
  return e;
}

imx_err imx_objective_moments_dist(imx_ctx *ctx, const imx_objective *obj, imx_reduction mode,
                                   const imx_dmat *C, const double *diagC, imx_dmat *G,
                                   imx_dmat *work, imx_dinv *inv, double terms[IMX_NTERMS],
                                   double *value) {
  return moments_dist(ctx, obj, mode, C, diagC, G, work, inv, NULL, terms, value);
}

imx_err imx_objective_moments_dist_factor(imx_ctx *ctx, const imx_objective *obj,
                                          imx_reduction mode, const imx_dmat *C,
                                          const double *diagC, imx_dmat *G, imx_dmat *L,
                                          imx_dinv *inv, double terms[IMX_NTERMS], double *value) {
  if (!imx_objective_dist_solves(obj, 0, INT32_MAX))
    return imx_agree(ctx, imx_fail(ctx, IMX_ERR_INTERNAL,
                                   "objective: the factor-only path needs logdet without "
                                   "gaussian_tc"));
  return moments_dist(ctx, obj, mode, C, diagC, G, NULL, inv, L, terms, value);
}

imx_err imx_objective_dist_max_corr(imx_ctx *ctx, const imx_dmat *C, const double *diagC,
                                    double *rmax) {
  double r = 0;
  for (int J = 0; J < C->kt; J++)
    for (int I = J; I < C->kt; I++) {
      if (!imx_dmat_mine(C, I, J)) continue;
      const double *t = imx_dmat_tile(C, I, J);
      int tr = imx_dmat_tile_rows(C, I), tc = imx_dmat_tile_rows(C, J);
      for (int j = 0; j < tc; j++)
        for (int i = (I == J ? j + 1 : 0); i < tr; i++) {
          double dd = diagC[I * C->nb + i] * diagC[J * C->nb + j];
          double v = dd > 0 ? fabs(t[i + (size_t)j * C->lld]) / sqrt(dd) : 0;
          r = v > r ? v : r;
        }
    }
  imx_comm_sent(ctx, sizeof r, 1);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &r, 1, MPI_DOUBLE, MPI_MAX, ctx->comm));
  *rmax = r;
  return IMX_OK;
}
