/* layer_replicated: the layer's replicated backend. Every rank holds C and G
 * (K x K) and runs LAPACK on them (src/objective/objective.c); C is reduced
 * from the rows' block-wise partial sums, or formed from S_x for identity
 * units. The method table is in layer_impl.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imx/config.h"
#include "imx/blas.h"
#include "imx/linalg.h"
#include "imx/moments.h"
#include "imx/timer.h"
#include "layer_impl.h"

typedef struct replicated {
  double *C, *G;  /* K x K: the output covariance and dL/dC */
  double *T;      /* max(chunk, n) x K: dL/dA of a chunk (data path) or W S_x (K x n) */
  double *work;   /* 2 K^2 + 3 K: LAPACK and weight_redundancy scratch */
  imx_rsum *rKK;  /* the K x K sum of C */
  float *Gf;      /* K x K: G in float, per evaluation (single) */
  float *Df, *Tf; /* chunk x K: a chunk of D and its (2/N) D G in float (single) */
} replicated;

static double estimate(const imx_config *cfg, const imx_layer *l, int P, int moments,
                       double common) {
  (void)cfg, (void)P, (void)moments;
  double Kd = l->K, n = l->n, c = (double)imx_layer_chunk(l);
  /* T, C, G, LAPACK scratch and the K x K sum. */
  double chunkK = (c > n ? c : n) * Kd * 8;
  double single = l->single ? (Kd * Kd + 2 * c * Kd) * 4 : 0; /* Gf, Df, Tf */
  return common + chunkK + single + (4 * Kd * Kd + 3 * Kd) * 8 + imx_rsum_bytes(l->mode, Kd, Kd);
}

static imx_err create(imx_ctx *ctx, const imx_config *cfg, imx_layer *l) {
  (void)cfg;
  int K = l->K, bad = 0;
  size_t KK = (size_t)K * K;
  replicated *r = calloc(1, sizeof *r);
  l->impl = r;
  imx_err e = r ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "replicated backend");
  if (!e) {
    /* T: chunk x K for the backward pass, K x n for W S_x. */
    int64_t trows = imx_layer_chunk(l) < l->n ? l->n : imx_layer_chunk(l);
    r->T = imx_layer_alloc(l, (size_t)trows * K, &bad);
    r->C = imx_layer_alloc(l, KK, &bad), r->G = imx_layer_alloc(l, KK, &bad);
    r->work = imx_layer_alloc(l, 2 * KK + 3 * (size_t)K, &bad);
    if (l->single) {
      size_t cK = (size_t)imx_layer_chunk(l) * K;
      r->Gf = imx_layer_alloc_float(l, KK, &bad);
      r->Df = imx_layer_alloc_float(l, cK, &bad), r->Tf = imx_layer_alloc_float(l, cK, &bad);
    }
    if (bad)
      e = imx_fail(ctx, IMX_ERR_NOMEM,
                   "replicated backend buffers: K=%d, n=%d need about %.1f "
                   "MiB on this rank",
                   K, l->n, (double)l->bytes / 1048576);
  }
  if (!e) e = imx_rsum_create(ctx, l->mode, K, K, 1, &r->rKK);
  if (!e) l->bytes += (size_t)imx_rsum_bytes(l->mode, K, K);
  return imx_agree(ctx, e);
}

static void destroy(imx_layer *l) {
  replicated *r = l->impl;
  if (!r) return;
  free(r->C), free(r->G), free(r->T), free(r->work);
  free(r->Gf), free(r->Df), free(r->Tf);
  imx_rsum_free(&r->rKK);
  free(r);
  l->impl = NULL;
}

/* Identity units (or terms on z) take C = W S_x W^T exactly: a K x n x n product instead of
 * two N K^2 ones (C's and dL/dC's) per evaluation. */
static imx_err set_path(imx_ctx *ctx, imx_layer *l, int moments) {
  (void)ctx;
  l->cov_from_Sx = !moments && imx_layer_linear_stat(l) && imx_objective_needs_cov(&l->obj);
  return IMX_OK;
}

static imx_err set_panels(imx_ctx *ctx, imx_layer *l, int panel_tiles, int group_tiles) {
  (void)ctx, (void)l, (void)panel_tiles, (void)group_tiles;
  return IMX_OK;
}

/* C = WS W^T with WS = W S_x (column-major WS^T = S_x W^T), kept in T for the
 * gradient. Local. */
static void cov_from_Sx(imx_layer *l) {
  replicated *r = l->impl;
  int K = l->K, n = l->n;
  const double one = 1, zero = 0;
  dgemm_("N", "N", &n, &K, &n, &one, l->Sx, &n, l->W, &n, &zero, r->T, &n);
  dgemm_("T", "N", &K, &K, &n, &one, l->W, &n, r->T, &n, &zero, r->C, &K);
  imx_linalg_symmetrize_lower(K, r->C);
}

/* gW = beta gW + dL/dW of the moment terms, 2 G W S_x with W S_x in T (C
 * does not depend on b). Local. */
static void grad_from_Sx(imx_layer *l, double beta) {
  replicated *r = l->impl;
  int K = l->K, n = l->n;
  const double two = 2;
  dgemm_("N", "N", &n, &K, &K, &two, r->T, &n, r->G, &K, &beta, l->gW, &n);
}

static imx_err data_moments(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS], double *value) {
  replicated *r = l->impl;
  int K = l->K;
  double invN = 1.0 / (double)l->N;
  const double *dmax = l->mode == IMX_RED_REPRODUCIBLE ? l->dmax : NULL; /* taken with D */
  imx_err e = IMX_OK;
  imx_timer_start(IMX_T_MOMENTS);
  if (l->cov_from_Sx) {
    cov_from_Sx(l);       /* T (>= n x K) is free: the backward pass writes into D */
  } else if (l->single) { /* SSYRK per block, the blocks' sums in double */
    e = imx_moments_atb_single(ctx, r->rKK, l->block, l->nloc, K, l->D, K, dmax, K, NULL, K, NULL,
                               r->C);
    for (size_t i = 0; i < (size_t)K * K; i++) r->C[i] *= invN;
  } else {
    e = imx_moments_atb(ctx, r->rKK, l->block, l->nloc, K, l->D, K, dmax, K, l->D, K, NULL, r->C);
    for (size_t i = 0; i < (size_t)K * K; i++) r->C[i] *= invN;
  }
  imx_timer_stop(IMX_T_MOMENTS);
  if (e) return e;
  int blended = l->blend > 0 && l->on_batch && l->blend_have;
  if (l->blend > 0 && l->on_batch) { /* a C_run + (1 - a) C_batch */
    for (size_t i = 0; blended && i < (size_t)K * K; i++)
      r->C[i] = l->blend * l->Crun[i] + (1 - l->blend) * r->C[i];
    memcpy(l->Cnext, r->C, (size_t)K * K * sizeof *r->C);
    l->blend_pending = 1;
  }
  if (!imx_objective_needs_cov(&l->obj)) {
    for (size_t i = 0; i < (size_t)K * K; i++) r->G[i] = 0;
    return IMX_OK;
  }
  imx_timer_start(IMX_T_LINALG);
  e = imx_objective_moments(ctx, &l->obj, K, r->C, r->G, r->work, terms, value);
  for (size_t i = 0; !e && blended && i < (size_t)K * K; i++) r->G[i] *= 1 - l->blend;
  if (!e && l->single)
    for (size_t i = 0; i < (size_t)K * K; i++) r->Gf[i] = (float)r->G[i];
  imx_timer_stop(IMX_T_LINALG);
  return e;
}

/* dL/dZ goes into D, chunk by chunk. */
static imx_err grad_begin(imx_ctx *ctx, imx_layer *l, double **dZ) {
  (void)ctx;
  *dZ = l->D;
  return IMX_OK;
}

/* (2/N) D G into T while the product reads D; without it, zeros straight
 * into D. */
static double *grad_rows(imx_layer *l, int64_t r0, int c) {
  replicated *r = l->impl;
  int K = l->K;
  double twoN = 2 * (1.0 / (double)l->N);
  const double zero = 0;
  double *Dc = l->D + r0 * K;
  if (imx_objective_needs_cov(&l->obj) && !l->cov_from_Sx && l->single) {
    const float twoNf = (float)twoN, zerof = 0;
    for (size_t i = 0; i < (size_t)c * K; i++) r->Df[i] = (float)Dc[i];
    sgemm_("N", "N", &K, &c, &K, &twoNf, r->Gf, &K, r->Df, &K, &zerof, r->Tf, &K);
    for (size_t i = 0; i < (size_t)c * K; i++) r->T[i] = r->Tf[i];
    return r->T;
  }
  if (imx_objective_needs_cov(&l->obj) && !l->cov_from_Sx) {
    dgemm_("N", "N", &K, &c, &K, &twoN, r->G, &K, Dc, &K, &zero, r->T, &K);
    return r->T;
  }
  memset(Dc, 0, (size_t)c * K * sizeof *Dc);
  return Dc;
}

static void grad_end(imx_layer *l) {
  if (l->cov_from_Sx && imx_objective_needs_cov(&l->obj)) grad_from_Sx(l, 1);
}

static imx_err eval_moments(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS], double *value,
                            int want_grad) {
  replicated *r = l->impl;
  imx_timer_start(IMX_T_FORWARD);
  cov_from_Sx(l);
  imx_timer_stop(IMX_T_FORWARD);
  imx_timer_start(IMX_T_LINALG);
  imx_err e = imx_objective_moments(ctx, &l->obj, l->K, r->C, r->G, r->work, terms, value);
  imx_timer_stop(IMX_T_LINALG);
  if (e || !want_grad) return e;
  imx_timer_start(IMX_T_BACKWARD);
  grad_from_Sx(l, 0);
  imx_timer_stop(IMX_T_BACKWARD);
  return IMX_OK;
}

/* C's diagonal, strided. */
static const double *diag(const imx_layer *l, size_t *stride) {
  const replicated *r = l->impl;
  *stride = (size_t)l->K + 1;
  return r->C;
}

static double max_corr(const imx_layer *l) {
  const double *C = ((const replicated *)l->impl)->C;
  int K = l->K;
  double rmax = 0;
  for (int j = 0; j < K; j++)
    for (int k = 0; k < j; k++) {
      double d = C[(size_t)j * K + j] * C[(size_t)k * K + k];
      double r = d > 0 ? fabs(C[(size_t)j * K + k]) / sqrt(d) : 0;
      rmax = r > rmax ? r : rmax;
    }
  return rmax;
}

static double weight_redundancy(imx_layer *l) {
  replicated *r = l->impl;
  return imx_objective_weight_redundancy(&l->obj, l->K, l->n, l->W, l->gW, r->work);
}

static void describe(const imx_layer *l, char *buf, size_t len) {
  snprintf(buf, len, "replicated (%s); layer buffers %.1f MiB per rank", l->linalg_why,
           l->bytes_max / 1048576);
}

static void grid(const imx_layer *l, int *pr, int *pc, int *nb) {
  (void)l;
  *pr = 0, *pc = 0, *nb = 0;
}

const imx_layer_ops imx_layer_replicated_ops = {
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
    .no_precond = NULL,
};
