/* supervised: cross-entropy of a linear softmax head on a layer's outputs
 * (see include/imx/supervised.h and docs/objectives.md). */
#include "imx/config.h"
#include "imx/supervised.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/blas.h"
#include "imx/moments.h"
#include "imx/rng.h"
#include "imx/rsum.h"

struct imx_supervised {
  int K, C, block;
  int64_t nloc;
  long long L;         /* labeled rows, global */
  const int32_t *y;    /* nloc labels, borrowed from the data set */
  unsigned char *mask; /* nloc: 1 = labeled */
  double *S;           /* nloc x C: logits, then dL/ds (0 on unlabeled rows) */
  double *rowv;        /* nloc per-row cross-entropies */
  imx_rsum *r1, *rCK, *rC;
};

int imx_supervised_classes(const imx_supervised *s) { return s->C; }
int imx_supervised_nparams(const imx_supervised *s) { return s->C * s->K + s->C; }
long long imx_supervised_labeled(const imx_supervised *s) { return s->L; }

void imx_supervised_free(imx_supervised **sp) {
  if (!sp || !*sp) return;
  imx_supervised *s = *sp;
  free(s->mask), free(s->S), free(s->rowv);
  imx_rsum_free(&s->r1), imx_rsum_free(&s->rCK), imx_rsum_free(&s->rC);
  free(s);
  *sp = NULL;
}

imx_err imx_supervised_create(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, int K,
                              imx_supervised **out) {
  *out = NULL;
  if (!d->labels || d->nclasses < 2)
    return imx_agree(ctx,
                     imx_fail(ctx, IMX_ERR_CONFIG,
                              "objective.supervised needs labels with at least 2 classes: set "
                              "data.labels (IDX labels or a .npy vector; gmm data have them)"));
  imx_supervised *s = calloc(1, sizeof *s);
  imx_err e = s ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "supervised head");
  if (!e) {
    s->K = K, s->C = d->nclasses, s->block = d->block, s->nloc = d->nloc, s->y = d->labels;
    size_t rows = (size_t)(d->nloc ? d->nloc : 1);
    s->mask = malloc(rows), s->S = malloc(rows * s->C * sizeof *s->S);
    s->rowv = malloc(rows * sizeof *s->rowv);
    if (!s->mask || !s->S || !s->rowv)
      e = imx_fail(ctx, IMX_ERR_NOMEM, "supervised head: %lld rows x %d classes",
                   (long long)d->nloc, d->nclasses);
  }
  if (!e) e = imx_rsum_create(ctx, cfg->parallel.reduction, 1, 1, 0, &s->r1);
  if (!e) e = imx_rsum_create(ctx, cfg->parallel.reduction, s->C, K, 0, &s->rCK);
  if (!e) e = imx_rsum_create(ctx, cfg->parallel.reduction, 1, s->C, 0, &s->rC);
  e = imx_agree(ctx, e);
  if (e) {
    imx_supervised_free(&s);
    return e;
  }
  double f = cfg->objective.label_fraction;
  long long L = 0;
  for (int64_t i = 0; i < d->nloc; i++) {
    uint64_t g = (uint64_t)(d->row0 + i);
    s->mask[i] = f >= 1 || imx_rng_uniform(cfg->data.seed, IMX_SUPERVISED_STREAM, g) < f;
    L += s->mask[i];
  }
  IMX_MPI(ctx, MPI_Allreduce(&L, &s->L, 1, MPI_LONG_LONG, MPI_SUM, ctx->comm));
  if (s->L == 0) {
    e = imx_fail(ctx, IMX_ERR_CONFIG,
                 "objective.label_fraction = %g labels none of the N = %lld rows: raise it", f,
                 (long long)d->N);
    imx_supervised_free(&s);
    return imx_agree(ctx, e);
  }
  *out = s;
  return IMX_OK;
}

imx_err imx_supervised_value(imx_ctx *ctx, imx_supervised *s, const double *head, const double *A,
                             double *value) {
  int K = s->K, C = s->C;
  const double *U = head, *c = head + (size_t)C * K;
  const double one = 1, zero = 0;
  int64_t rows = s->nloc;
  /* Logits S = A U^T (row-major; column-major S^T = U A^T), per block of rows
   * so that a row's bits do not depend on the rows beside it. */
  for (int64_t r0 = 0; r0 < rows; r0 += s->block) {
    int m = (int)(r0 + s->block < rows ? s->block : rows - r0);
    dgemm_("T", "N", &C, &m, &K, &one, U, &K, A + r0 * K, &K, &zero, s->S + r0 * C, &C);
  }
  for (int64_t i = 0; i < rows; i++) {
    double *si = s->S + i * C, mx = -INFINITY, sum = 0;
    for (int k = 0; k < C; k++) si[k] += c[k], mx = si[k] > mx ? si[k] : mx;
    for (int k = 0; k < C; k++) sum += exp(si[k] - mx);
    double lse = mx + log(sum);
    s->rowv[i] = s->mask[i] ? lse - si[s->y[i]] : 0;
    /* dL/ds = (softmax(s) - onehot(y)) / L on labeled rows, 0 elsewhere */
    for (int k = 0; k < C; k++)
      si[k] = s->mask[i] ? (exp(si[k] - lse) - (k == s->y[i])) / (double)s->L : 0;
  }
  double tot = 0;
  IMX_TRY(imx_moments_colsum(ctx, s->r1, s->block, rows, 1, s->rowv, 1, NULL, &tot));
  *value = tot / (double)s->L;
  return IMX_OK;
}

void imx_supervised_backward_rows(const imx_supervised *s, const double *head, int64_t r0, int c,
                                  double scale, double *T) {
  int K = s->K, C = s->C;
  const double one = 1;
  /* T (c x K) += scale * dS_rows (c x C) U (C x K); column-major: T^T += U^T dS^T. */
  dgemm_("N", "N", &K, &c, &C, &scale, head, &K, s->S + r0 * C, &C, &one, T, &K);
}

imx_err imx_supervised_grad_head(imx_ctx *ctx, imx_supervised *s, const double *A, double scale,
                                 double *ghead) {
  int K = s->K, C = s->C;
  IMX_TRY(imx_moments_atb(ctx, s->rCK, s->block, s->nloc, C, s->S, C, NULL, K, A, K, NULL, ghead));
  IMX_TRY(
      imx_moments_colsum(ctx, s->rC, s->block, s->nloc, C, s->S, C, NULL, ghead + (size_t)C * K));
  for (int i = 0; i < C * K + C; i++) ghead[i] *= scale;
  return IMX_OK;
}
