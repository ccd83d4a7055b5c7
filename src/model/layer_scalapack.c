/* layer_scalapack: the layer's scalapack backend for very wide layers. C and
 * G are block-cyclic on a BLACS grid (include/imx/dmat.h), so that no rank
 * holds a K x K array: C from the rows' partial sums straight to the owners
 * of its tiles, the moment terms on the tiles (src/objective/objective_dist.c),
 * and G applied to the local rows group by group of its columns
 * (include/imx/dmoments.h). The method table is in layer_impl.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imx/config.h"
#include "imx/blas.h"
#include "imx/dmat.h"
#include "imx/dmoments.h"
#include "imx/linalg.h"
#include "imx/moments.h"
#include "imx/timer.h"
#include "layer_impl.h"

/* Rows of W W^T formed at a time by weight_redundancy. */
#define WR_ROWS 64

typedef struct scalapack {
  imx_grid *grid;    /* the BLACS grid */
  imx_dmat *dC, *dG; /* C and G, lower tiles */
  imx_dmat *dM;      /* gaussian_tc's matrix when logdet also needs one; logdet's factor
                        when the solves run beside other terms */
  int solves;        /* data path: logdet's M^-1 applied by triangular solves
                        (imx_objective_dist_solves) */
  imx_dmat *L;       /* where its factor is: dG (logdet alone) or dM */
  imx_dmoments *dm;  /* panel plan and scratch */
  imx_dinv *inv;     /* scratch of M^{-1} (logdet, gaussian_tc; reproducible mode) */
  double *diag;      /* diag C (K) */
  double *T;         /* K x n: W S_x (moments path) */
  double *Tb;        /* nloc x K (data path): dL/dA, then dL/dZ */
  double *work;      /* WR_ROWS x K (weight_redundancy) */
  double corr;       /* max |correlation| of the last evaluation */
} scalapack;

/* Largest local block of a K x K matrix with nb tiles on a pr x pc grid. */
static double local_bytes(int K, int nb, int pr, int pc) {
  double kt = ceil((double)K / nb);
  return ceil(kt / pr) * nb * ceil(kt / pc) * nb * sizeof(double);
}

/* The tile size: parallel.scalapack_block, doubled while the lower tiles are
 * more than an exact sum can take (one partial per tile, include/imx/exact.h). */
static int tile_size(const imx_config *cfg, int K) {
  int nb = cfg->parallel.scalapack_block;
  if (cfg->parallel.reduction == IMX_RED_REPRODUCIBLE)
    for (;;) {
      int64_t kt = (K + nb - 1) / nb;
      if (kt * (kt + 1) / 2 <= IMX_RSUM_MAX_DEPOSITS) break;
      nb *= 2;
    }
  return nb;
}

/* A third matrix: gaussian_tc's M beside logdet's (softmax outputs), or
 * logdet's factor beside G when the solves run with other terms. */
static int extra_matrix(const imx_layer *l) {
  return imx_objective_dist_needs_work(&l->obj) ||
         (imx_objective_dist_solves(&l->obj, l->N, l->K) && imx_objective_dist_rest(&l->obj));
}

/* Two local blocks (three: extra_matrix), panel
 * scratch, W S_x, the backward rows and WR_ROWS x K. */
static double estimate(const imx_config *cfg, const imx_layer *l, int P, int moments,
                       double common) {
  int K = l->K, n = l->n, pr = 1, pc = P;
  double Kd = K, nK = (double)n * Kd * 8, rows = (double)l->nloc;
  int nb = tile_size(cfg, K);
  if (imx_grid_shape(P, cfg->parallel.grid_rows, cfg->parallel.grid_cols, &pr, &pc))
    imx_grid_shape(P, 0, 0, &pr, &pc);
  return common + nK + (2 + extra_matrix(l)) * local_bytes(K, nb, pr, pc) +
         (double)imx_dmoments_estimate(K, nb, l->mode, n, P) + (WR_ROWS + 2) * Kd * 8 +
         (imx_objective_needs_factor(&l->obj) && l->mode == IMX_RED_REPRODUCIBLE
              ? (double)imx_dinv_estimate(K, nb, P)
              : 0) +
         (moments ? 0 : rows * Kd * 8);
}

/* The grid, matrices and scratch. Collective (agreed). */
static imx_err create(imx_ctx *ctx, const imx_config *cfg, imx_layer *l) {
  int K = l->K, nb = tile_size(cfg, K), bad = 0;
  scalapack *s = calloc(1, sizeof *s);
  l->impl = s;
  IMX_TRY(imx_agree(ctx, s ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "scalapack backend")));
  IMX_TRY(imx_grid_create(ctx, cfg->parallel.grid_rows, cfg->parallel.grid_cols, &s->grid));
  IMX_TRY(imx_dmat_create(ctx, s->grid, K, nb, &s->dC));
  IMX_TRY(imx_dmat_create(ctx, s->grid, K, nb, &s->dG));
  if (extra_matrix(l)) IMX_TRY(imx_dmat_create(ctx, s->grid, K, nb, &s->dM));
  s->solves = imx_objective_dist_solves(&l->obj, l->N, K);
  s->L = imx_objective_dist_rest(&l->obj) ? s->dM : s->dG;
  if (imx_objective_needs_factor(&l->obj) && l->mode == IMX_RED_REPRODUCIBLE) {
    IMX_TRY(imx_dinv_create(ctx, s->dC, 0, 0, &s->inv));
    l->bytes += imx_dinv_bytes(s->inv);
  }
  IMX_TRY(imx_dmoments_create(ctx, s->dC, l->mode, l->n, 0, 0, &s->dm));
  l->bytes += imx_dmat_bytes(s->dC) + imx_dmat_bytes(s->dG) + imx_dmoments_bytes(s->dm);
  if (s->dM) l->bytes += imx_dmat_bytes(s->dM);
  s->T = imx_layer_alloc(l, (size_t)l->n * K, &bad);
  s->diag = imx_layer_alloc(l, (size_t)K, &bad);
  s->work = imx_layer_alloc(l, (size_t)WR_ROWS * K, &bad);
  imx_err e = bad ? imx_fail(ctx, IMX_ERR_NOMEM, "scalapack backend buffers (K=%d)", K) : IMX_OK;
  return imx_agree(ctx, e);
}

static void destroy(imx_layer *l) {
  scalapack *s = l->impl;
  if (!s) return;
  free(s->T), free(s->Tb), free(s->diag), free(s->work);
  imx_dmoments_free(&s->dm);
  imx_dinv_free(&s->inv);
  imx_dmat_free(&s->dC), imx_dmat_free(&s->dG), imx_dmat_free(&s->dM);
  imx_grid_free(&s->grid);
  free(s);
  l->impl = NULL;
}

/* The data path's dL/dZ rows (nloc x K). */
static imx_err set_path(imx_ctx *ctx, imx_layer *l, int moments) {
  scalapack *s = l->impl;
  if (moments || s->Tb) return IMX_OK;
  int bad = 0;
  s->Tb = imx_layer_alloc(l, (size_t)l->nloc * l->K, &bad);
  if (bad)
    return imx_fail(ctx, IMX_ERR_NOMEM,
                    "data-path buffers: dL/dZ of %lld local rows x K=%d need %.1f MiB on this rank",
                    (long long)l->nloc, l->K, (double)l->nloc * l->K * 8 / 1048576);
  return IMX_OK;
}

static imx_err set_panels(imx_ctx *ctx, imx_layer *l, int panel_tiles, int group_tiles) {
  scalapack *s = l->impl;
  l->bytes -= imx_dmoments_bytes(s->dm);
  imx_dmoments_free(&s->dm);
  IMX_TRY(imx_dmoments_create(ctx, s->dC, l->mode, l->n, panel_tiles, group_tiles, &s->dm));
  l->bytes += imx_dmoments_bytes(s->dm);
  if (s->inv) {
    l->bytes -= imx_dinv_bytes(s->inv);
    imx_dinv_free(&s->inv);
    IMX_TRY(imx_dinv_create(ctx, s->dC, panel_tiles, group_tiles, &s->inv));
    l->bytes += imx_dinv_bytes(s->inv);
  }
  return IMX_OK;
}

/* diag C and the largest correlation (the collapse indicators). Collective. */
static imx_err indicators(imx_ctx *ctx, scalapack *s) {
  IMX_TRY(imx_dmat_diag(ctx, s->dC, s->diag));
  return imx_objective_dist_max_corr(ctx, s->dC, s->diag, &s->corr);
}

/* The collapse indicators, then the moment terms on the tiles of C: L and G
 * (solves: logdet's factor in s->L, its part of G left to grad_begin).
 * Collective. */
static imx_err objective_dist(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS], double *value,
                              int solves) {
  scalapack *s = l->impl;
  IMX_TRY(indicators(ctx, s));
  if (solves)
    return imx_objective_moments_dist_factor(ctx, &l->obj, l->mode, s->dC, s->diag, s->dG, s->L,
                                             s->inv, terms, value);
  return imx_objective_moments_dist(ctx, &l->obj, l->mode, s->dC, s->diag, s->dG, s->dM, s->inv,
                                    terms, value);
}

/* Partial sums of D^T D go from the local rows straight to the owners of C's
 * tiles. */
static imx_err data_moments(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS], double *value) {
  scalapack *s = l->impl;
  int64_t rows = l->nloc;
  double invN = 1.0 / (double)l->N;
  imx_err e = IMX_OK;
  imx_timer_start(IMX_T_MOMENTS);
  /* D's maxima (reproducible mode) were taken with D (layer.c). */
  e = imx_dmoments_gram(ctx, s->dm, l->block, rows, l->D, l->dmax, invN, s->dC);
  imx_timer_stop(IMX_T_MOMENTS);
  if (e) return e;
  imx_timer_start(IMX_T_LINALG);
  if (imx_objective_needs_cov(&l->obj)) e = objective_dist(ctx, l, terms, value, s->solves);
  else /* C still gives the collapse indicators */ e = indicators(ctx, s);
  imx_timer_stop(IMX_T_LINALG);
  return e;
}

/* (2/N) D G for all local rows into Tb, G's columns all-gathered one group
 * at a time; dL/dZ stays there. With the solves, G = -w M^-1 + (the other
 * terms): Tb = -(2/N) w D M^-1 by two triangular solves with L, then
 * += (2/N) D G when other terms wrote G. */
static imx_err grad_begin(imx_ctx *ctx, imx_layer *l, double **dZ) {
  scalapack *s = l->impl;
  int64_t rows = l->nloc;
  double invN = 1.0 / (double)l->N;
  imx_err e = IMX_OK;
  *dZ = s->Tb;
  if (imx_objective_needs_cov(&l->obj) && s->solves) {
    double a = -2 * invN * l->obj.w[IMX_TERM_LOGDET];
    e = imx_dmoments_solve_rows(ctx, s->dm, s->L, imx_layer_chunk(l), rows, l->D, a, s->Tb);
    if (!e && imx_objective_dist_rest(&l->obj))
      e = imx_dmoments_apply_rows_add(ctx, s->dm, s->dG, imx_layer_chunk(l), rows, l->D, 2 * invN,
                                      s->Tb);
  } else if (imx_objective_needs_cov(&l->obj))
    e = imx_dmoments_apply_rows(ctx, s->dm, s->dG, imx_layer_chunk(l), rows, l->D, 2 * invN, s->Tb);
  else memset(s->Tb, 0, (size_t)rows * l->K * sizeof *s->Tb);
  return e;
}

static double *grad_rows(imx_layer *l, int64_t r0, int c) {
  (void)c;
  return ((scalapack *)l->impl)->Tb + r0 * l->K;
}

static void grad_end(imx_layer *l) { (void)l; }

/* Each rank forms its own tiles of C = (W S_x) W^T and sums its tiles' share
 * of dL/dW = 2 G (W S_x). */
static imx_err eval_moments(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS], double *value,
                            int want_grad) {
  scalapack *s = l->impl;
  int K = l->K, n = l->n;
  const double one = 1, zero = 0;
  imx_timer_start(IMX_T_FORWARD);
  dgemm_("N", "N", &n, &K, &n, &one, l->Sx, &n, l->W, &n, &zero, s->T, &n);
  imx_dmoments_outer(s->dm, s->dC, s->T, l->W);
  imx_timer_stop(IMX_T_FORWARD);
  imx_timer_start(IMX_T_LINALG);
  imx_err e = objective_dist(ctx, l, terms, value, 0);
  imx_timer_stop(IMX_T_LINALG);
  if (e || !want_grad) return e;
  imx_timer_start(IMX_T_BACKWARD);
  e = imx_dmoments_apply_replicated(ctx, s->dm, s->dG, s->T, 2, l->gW);
  imx_timer_stop(IMX_T_BACKWARD);
  return e;
}

/* diag C, gathered to every rank. */
static const double *diag(const imx_layer *l, size_t *stride) {
  *stride = 1;
  return ((const scalapack *)l->impl)->diag;
}

static double max_corr(const imx_layer *l) { return ((const scalapack *)l->impl)->corr; }

/* W W^T - I formed WR_ROWS rows at a time: never K x K. */
static double weight_redundancy(imx_layer *l) {
  scalapack *s = l->impl;
  return imx_objective_weight_redundancy_rows(&l->obj, l->K, l->n, l->W, l->gW, s->work, WR_ROWS);
}

static void describe(const imx_layer *l, char *buf, size_t len) {
  const scalapack *s = l->impl;
  snprintf(buf, len,
           "scalapack on a %d x %d BLACS grid, %d x %d tiles (%s); layer buffers at most %.1f "
           "MiB per rank (local C and G %.1f MiB each)",
           s->grid->pr, s->grid->pc, s->dC->nb, s->dC->nb, l->linalg_why, l->bytes_max / 1048576,
           (double)imx_dmat_bytes(s->dC) / 1048576);
}

static void grid(const imx_layer *l, int *pr, int *pc, int *nb) {
  const scalapack *s = l->impl;
  *pr = s->grid->pr, *pc = s->grid->pc, *nb = s->dC->nb;
}

const imx_layer_ops imx_layer_scalapack_ops = {
    .estimate = estimate,
    .create = create,
    .destroy = destroy,
    .set_path = set_path,
    .set_panels = set_panels,
    .data_moments = data_moments,
    .grad_begin = grad_begin,
    .grad_rows = grad_rows,
    .grad_end = grad_end,
    .eval_moments = eval_moments,
    .diag = diag,
    .max_corr = max_corr,
    .weight_redundancy = weight_redundancy,
    .describe = describe,
    .grid = grid,
    .no_precond = "it needs the replicated linalg backend",
};
