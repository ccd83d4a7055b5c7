/* probe: multinomial logistic regression on frozen features with TAO (see
 * include/imx/probe.h). */
#include "imx/config.h"
#include "imx/probe.h"

#include <math.h>
#include <petsctao.h>
#include <stdlib.h>
#include <string.h>

#include "imx/blas.h"
#include "imx/moments.h"
#include "imx/rsum.h"
#include "imx/timer.h"

struct imx_probe {
  int dim, C; /* feature columns, classes */
  imx_reduction mode;
  double l2;             /* penalty weight on ||V||^2 */
  int max_it;            /* TAO iterations */
  imx_probe_data *train; /* borrowed; its features are standardized */
  double *mean, *scale;  /* dim: f <- (f - mean) * scale (scale 0: constant column) */
  double *fmax;          /* dim: global column maxima of the standardized |F| */
  double *G;             /* nloc x C: logits, then softmax - one-hot */
  double *loss;          /* nloc per-row cross-entropies */
  double *gV;            /* C x dim reduced gradient of the data term */
  imx_rsum *rCd, *rC, *r1;
};

void imx_probe_free(imx_probe **pp) {
  if (!pp || !*pp) return;
  imx_probe *p = *pp;
  free(p->mean), free(p->scale), free(p->fmax), free(p->G), free(p->loss), free(p->gV);
  imx_rsum_free(&p->rCd), imx_rsum_free(&p->rC), imx_rsum_free(&p->r1);
  free(p);
  *pp = NULL;
}

int imx_probe_nparams(const imx_probe *p) { return p->C * p->dim + p->C; }

/* Rows per partial sum: one block (reproducible) or all local rows (fast). */
static int64_t chunk_rows(const imx_probe *p, int64_t m) {
  return p->mode == IMX_RED_REPRODUCIBLE ? p->train->block : (m > 0 ? m : 1);
}

/* Column means and standard deviations of the train split through the
 * block-wise reductions, then standardize it in place. Collective. */
static imx_err standardize_train(imx_ctx *ctx, imx_probe *p) {
  imx_probe_data *t = p->train;
  int dim = p->dim;
  double *raw = malloc((size_t)dim * sizeof *raw), *var = malloc((size_t)dim * sizeof *var);
  imx_rsum *rd = NULL;
  imx_err e = raw && var ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "probe statistics (%d)", dim);
  if (!e) e = imx_rsum_create(ctx, p->mode, 1, dim, 0, &rd);
  e = imx_agree(ctx, e);
  if (!e) e = imx_colmax(ctx, t->nloc, dim, t->F, dim, raw);
  if (!e) e = imx_moments_colsum(ctx, rd, t->block, t->nloc, dim, t->F, dim, NULL, p->mean);
  if (!e) {
    for (int j = 0; j < dim; j++) p->mean[j] /= (double)t->N;
    for (int64_t i = 0; i < t->nloc; i++)
      for (int j = 0; j < dim; j++) t->F[i * dim + j] -= p->mean[j];
    e = imx_colmax(ctx, t->nloc, dim, t->F, dim, p->fmax);
  }
  if (!e) {
    /* Sums of squares per block, bounded by B max|f_j|^2. */
    for (int j = 0; j < dim; j++) var[j] = p->fmax[j] * p->fmax[j];
    imx_rsum_begin(rd, (double)t->block, NULL, var);
    double *w = imx_rsum_work(rd);
    int64_t step = chunk_rows(p, t->nloc);
    for (int64_t r0 = 0; r0 < t->nloc; r0 += step) {
      int64_t r1 = r0 + step < t->nloc ? r0 + step : t->nloc;
      for (int j = 0; j < dim; j++) w[j] = 0;
      for (int64_t i = r0; i < r1; i++)
        for (int j = 0; j < dim; j++) w[j] += t->F[i * dim + j] * t->F[i * dim + j];
      imx_rsum_add(rd, w, dim);
    }
    e = imx_rsum_end(ctx, rd, var);
  }
  if (!e) {
    /* A column whose spread is at rounding level of its values is constant:
     * it carries no information, and 1/sd would blow rounding up. */
    for (int j = 0; j < dim; j++) {
      double sd = sqrt(var[j] / (double)t->N);
      p->scale[j] = sd > 1e-10 * raw[j] && sd > 0 ? 1 / sd : 0;
    }
    for (int64_t i = 0; i < t->nloc; i++)
      for (int j = 0; j < dim; j++) t->F[i * dim + j] *= p->scale[j];
  }
  if (!e) e = imx_colmax(ctx, t->nloc, dim, t->F, dim, p->fmax);
  imx_rsum_free(&rd);
  free(raw), free(var);
  return e;
}

void imx_probe_standardize(const imx_probe *p, imx_probe_data *split) {
  int dim = p->dim;
  for (int64_t i = 0; i < split->nloc; i++)
    for (int j = 0; j < dim; j++) {
      double *f = split->F + i * dim + j;
      *f = (*f - p->mean[j]) * p->scale[j];
    }
}

imx_err imx_probe_create(imx_ctx *ctx, const imx_config *cfg, int dim, int classes,
                         imx_probe_data *train, imx_probe **out) {
  *out = NULL;
  imx_probe *p = calloc(1, sizeof *p);
  if (!p) return imx_agree(ctx, imx_fail(ctx, IMX_ERR_NOMEM, "probe"));
  p->dim = dim, p->C = classes, p->mode = cfg->parallel.reduction;
  p->l2 = cfg->eval.probe_l2, p->max_it = cfg->eval.probe_max_it, p->train = train;
  size_t rows = (size_t)(train->nloc ? train->nloc : 1);
  p->mean = malloc((size_t)dim * sizeof *p->mean),
  p->scale = malloc((size_t)dim * sizeof *p->scale);
  p->fmax = malloc((size_t)dim * sizeof *p->fmax),
  p->gV = malloc((size_t)classes * dim * sizeof *p->gV);
  p->G = malloc(rows * classes * sizeof *p->G), p->loss = malloc(rows * sizeof *p->loss);
  imx_err e = p->mean && p->scale && p->fmax && p->gV && p->G && p->loss
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM,
                             "probe buffers: %lld rows x %d classes, %d features",
                             (long long)train->nloc, classes, dim);
  if (!e && classes < 2)
    e = imx_fail(ctx, IMX_ERR_DATA, "probe: the labels name %d class; a probe needs at least 2",
                 classes);
  for (int64_t i = 0; !e && i < train->nloc; i++)
    if (train->labels[i] < 0 || train->labels[i] >= classes)
      e = imx_fail(ctx, IMX_ERR_DATA, "probe: train label %d is outside [0, %d)",
                   (int)train->labels[i], classes);
  if (!e) e = imx_rsum_create(ctx, p->mode, classes, dim, 0, &p->rCd);
  if (!e) e = imx_rsum_create(ctx, p->mode, 1, classes, 0, &p->rC);
  if (!e) e = imx_rsum_create(ctx, p->mode, 1, 1, 0, &p->r1);
  e = imx_agree(ctx, e);
  if (!e) e = imx_agree(ctx, standardize_train(ctx, p));
  if (e) {
    imx_probe_free(&p);
    return e;
  }
  *out = p;
  return IMX_OK;
}

/* Logits l = V f + c of rows [r0, r0 + rows) of F (ld dim) into L (rows x C).
 * One BLAS call per block, so a row's logits have the same bits on any rank. */
static void logits(const imx_probe *p, const double *theta, const double *F, int rows, double *L) {
  int C = p->C, dim = p->dim;
  const double one = 1, zero = 0;
  /* Row-major L (rows x C) = F V^T: column-major L^T = V F^T. */
  dgemm_("T", "N", &C, &rows, &dim, &one, theta, &dim, F, &dim, &zero, L, &C);
  const double *c = theta + (size_t)C * dim;
  for (int i = 0; i < rows; i++)
    for (int k = 0; k < C; k++) L[(size_t)i * C + k] += c[k];
}

imx_err imx_probe_eval(imx_ctx *ctx, imx_probe *p, const double *theta, double *f, double *grad) {
  const imx_probe_data *t = p->train;
  int C = p->C, dim = p->dim;
  int64_t step = t->block; /* whole blocks: see logits() */
  for (int64_t r0 = 0; r0 < t->nloc; r0 += step) {
    int rows = (int)(r0 + step < t->nloc ? step : t->nloc - r0);
    double *L = p->G + r0 * C;
    logits(p, theta, t->F + r0 * dim, rows, L);
    for (int i = 0; i < rows; i++) {
      double *l = L + (size_t)i * C, mx = l[0], s = 0;
      int y = t->labels[r0 + i];
      for (int k = 1; k < C; k++) mx = l[k] > mx ? l[k] : mx;
      for (int k = 0; k < C; k++) s += exp(l[k] - mx);
      p->loss[r0 + i] = mx + log(s) - l[y];
      for (int k = 0; k < C; k++) l[k] = exp(l[k] - mx) / s - (k == y);
    }
  }
  double sum = 0, invN = 1.0 / (double)t->N;
  imx_err e = imx_moments_colsum(ctx, p->r1, t->block, t->nloc, 1, p->loss, 1, NULL, &sum);
  if (!e && grad)
    e = imx_moments_atb(ctx, p->rCd, t->block, t->nloc, C, p->G, C, NULL, dim, t->F, dim, p->fmax,
                        p->gV);
  if (!e && grad)
    e = imx_moments_colsum(ctx, p->rC, t->block, t->nloc, C, p->G, C, NULL, grad + (size_t)C * dim);
  IMX_TRY(imx_agree(ctx, e));
  double pen = 0;
  for (size_t i = 0; i < (size_t)C * dim; i++) pen += theta[i] * theta[i];
  *f = sum * invN + p->l2 * pen;
  if (grad) {
    for (size_t i = 0; i < (size_t)C * dim; i++) grad[i] = p->gV[i] * invN + 2 * p->l2 * theta[i];
    for (int k = 0; k < C; k++) grad[(size_t)C * dim + k] *= invN;
  }
  /* Fast mode: MPI_Allreduce need not give every rank the same bits, and
   * every rank's TAO must see the same numbers: take rank 0's. */
  if (p->mode == IMX_RED_FAST) {
    IMX_MPI(ctx, MPI_Bcast(f, 1, MPI_DOUBLE, 0, ctx->comm));
    if (grad) IMX_MPI(ctx, MPI_Bcast(grad, imx_probe_nparams(p), MPI_DOUBLE, 0, ctx->comm));
  }
  return IMX_OK;
}

imx_err imx_probe_accuracy(imx_ctx *ctx, imx_probe *p, const double *theta,
                           const imx_probe_data *split, double *accuracy) {
  int C = p->C;
  int64_t step = split->block;
  double *L = malloc((size_t)step * C * sizeof *L);
  IMX_TRY(imx_agree(
      ctx,
      L ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "probe logits (%lld x %d)", (long long)step, C)));
  long long right = 0;
  for (int64_t r0 = 0; r0 < split->nloc; r0 += step) {
    int rows = (int)(r0 + step < split->nloc ? step : split->nloc - r0);
    logits(p, theta, split->F + r0 * p->dim, rows, L);
    for (int i = 0; i < rows; i++) {
      const double *l = L + (size_t)i * C;
      int best = 0;
      for (int k = 1; k < C; k++)
        if (l[k] > l[best]) best = k;
      right += best == split->labels[r0 + i];
    }
  }
  free(L);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &right, 1, MPI_LONG_LONG, MPI_SUM, ctx->comm));
  *accuracy = (double)right / (double)split->N;
  return IMX_OK;
}

/* ---- TAO ---- */

typedef struct fg_state {
  imx_ctx *ctx;
  imx_probe *p;
  int evals;
  imx_err err; /* our error that stopped TAO (already agreed) */
} fg_state;

/* Objective and gradient for TAO. Collective: every rank's TAO calls it at
 * the same point, in the same order. */
static PetscErrorCode form_fg(Tao tao, Vec x, PetscReal *f, Vec g, void *ptr) {
  fg_state *s = ptr;
  const PetscScalar *xa;
  PetscScalar *ga;
  (void)tao;
  PetscFunctionBeginUser;
  PetscCall(VecGetArrayRead(x, &xa));
  PetscCall(VecGetArray(g, &ga));
  imx_err e = imx_probe_eval(s->ctx, s->p, xa, f, ga);
  PetscCall(VecRestoreArray(g, &ga));
  PetscCall(VecRestoreArrayRead(x, &xa));
  s->evals++;
  if (e) {
    s->err = e;
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_USER, "probe evaluation failed");
  }
  PetscFunctionReturn(0);
}

static imx_err petsc_fail(imx_ctx *ctx, PetscErrorCode pe, const char *what) {
  const char *text = NULL;
  PetscErrorMessage(pe, &text, NULL);
  return imx_fail(ctx, IMX_ERR_PETSC, "probe: %s failed: PETSc error %d (%s)", what, (int)pe,
                  text ? text : "?");
}

imx_err imx_probe_train(imx_ctx *ctx, imx_probe *p, double *theta, imx_probe_result *res) {
  int np = imx_probe_nparams(p);
  fg_state s = {.ctx = ctx, .p = p};
  Vec x = NULL;
  Tao tao = NULL;
  imx_err e = IMX_OK;
  PetscErrorCode pe;
  PetscPushErrorHandler(PetscReturnErrorHandler, NULL);
  if ((pe = VecCreateSeq(PETSC_COMM_SELF, np, &x))) e = petsc_fail(ctx, pe, "VecCreateSeq");
  if (!e) {
    PetscScalar *xa;
    VecGetArray(x, &xa);
    memcpy(xa, theta, (size_t)np * sizeof *xa);
    VecRestoreArray(x, &xa);
  }
  if (!e && (pe = TaoCreate(PETSC_COMM_SELF, &tao))) e = petsc_fail(ctx, pe, "TaoCreate");
  if (!e) {
    TaoSetType(tao, TAOLMVM);
    TaoSetOptionsPrefix(tao, "probe_");
    TaoSetSolution(tao, x);
    TaoSetObjectiveAndGradient(tao, NULL, form_fg, &s);
    TaoSetTolerances(tao, 1e-8, 1e-10, 0);
    TaoSetMaximumIterations(tao, p->max_it);
    TaoSetMaximumFunctionEvaluations(tao, 10 * (p->max_it + 10));
    if ((pe = TaoSetFromOptions(tao))) e = petsc_fail(ctx, pe, "TaoSetFromOptions");
  }
  e = imx_agree(ctx, e);
  if (!e) {
    pe = TaoSolve(tao);
    if (s.err) e = s.err;
    else if (pe) e = petsc_fail(ctx, pe, "TaoSolve");
    e = imx_agree(ctx, e);
  }
  if (tao) {
    PetscInt its;
    PetscReal f;
    TaoConvergedReason reason;
    TaoType type;
    TaoGetSolutionStatus(tao, &its, &f, NULL, NULL, NULL, &reason);
    TaoGetType(tao, &type);
    res->iterations = (int)its;
    res->loss = f;
    snprintf(res->reason, sizeof res->reason, "%s", e ? "ERROR" : TaoConvergedReasons[reason]);
    snprintf(res->tao_type, sizeof res->tao_type, "%s", type ? type : "?");
  }
  res->evaluations = s.evals;
  PetscPopErrorHandler();
  if (!e) {
    const PetscScalar *xa;
    VecGetArrayRead(x, &xa);
    memcpy(theta, xa, (size_t)np * sizeof *xa);
    VecRestoreArrayRead(x, &xa);
    /* The loss at the returned point (TAO's value may belong to a trial point). */
    e = imx_probe_eval(ctx, p, theta, &res->loss, NULL);
  }
  TaoDestroy(&tao);
  VecDestroy(&x);
  return e;
}

void imx_probe_model_clear(imx_probe_model *m) {
  if (!m) return;
  free(m->mean), free(m->scale), free(m->V), free(m->c);
  memset(m, 0, sizeof *m);
}

/* The trained probe p at theta into keep. Local. */
static imx_err keep_model(imx_ctx *ctx, const imx_probe *p, const double *theta,
                          imx_probe_model *keep) {
  size_t dim = (size_t)p->dim, C = (size_t)p->C;
  *keep = (imx_probe_model){.dim = p->dim, .classes = p->C};
  keep->mean = malloc(dim * sizeof *keep->mean), keep->scale = malloc(dim * sizeof *keep->scale);
  keep->V = malloc(C * dim * sizeof *keep->V), keep->c = malloc(C * sizeof *keep->c);
  if (!keep->mean || !keep->scale || !keep->V || !keep->c) {
    imx_probe_model_clear(keep);
    return imx_fail(ctx, IMX_ERR_NOMEM, "probe: %zu x %zu parameters", C, dim);
  }
  memcpy(keep->mean, p->mean, dim * sizeof *keep->mean);
  memcpy(keep->scale, p->scale, dim * sizeof *keep->scale);
  memcpy(keep->V, theta, C * dim * sizeof *keep->V);
  memcpy(keep->c, theta + C * dim, C * sizeof *keep->c);
  return IMX_OK;
}

imx_err imx_probe_run(imx_ctx *ctx, const imx_config *cfg, int dim, int classes,
                      imx_probe_data *train, imx_probe_data *test, imx_probe_result *res,
                      imx_probe_model *keep) {
  double t0 = imx_now();
  memset(res, 0, sizeof *res);
  res->dim = dim, res->classes = classes;
  res->n_train = train->N, res->n_test = test ? test->N : 0;
  res->train_accuracy = res->test_accuracy = NAN;
  imx_probe *p = NULL;
  IMX_TRY(imx_probe_create(ctx, cfg, dim, classes, train, &p));
  int np = imx_probe_nparams(p);
  double *theta = calloc((size_t)np, sizeof *theta);
  imx_err e = imx_agree(ctx,
                        theta ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "probe parameters (%d)", np));
  if (!e) e = imx_probe_train(ctx, p, theta, res);
  if (!e) e = imx_probe_accuracy(ctx, p, theta, train, &res->train_accuracy);
  if (!e && test) {
    for (int64_t i = 0; !e && i < test->nloc; i++)
      if (test->labels[i] < 0 || test->labels[i] >= classes)
        e = imx_fail(ctx, IMX_ERR_DATA, "probe: test label %d is outside [0, %d)",
                     (int)test->labels[i], classes);
    e = imx_agree(ctx, e);
    if (!e) {
      imx_probe_standardize(p, test);
      e = imx_probe_accuracy(ctx, p, theta, test, &res->test_accuracy);
    }
  }
  if (!e && keep) e = keep_model(ctx, p, theta, keep);
  free(theta);
  imx_probe_free(&p);
  res->seconds = imx_now() - t0;
  return imx_agree(ctx, e);
}
