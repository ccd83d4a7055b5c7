/* layer: the common core of one InfoMax layer over the sharded data (see
 * include/imx/layer.h and docs/architecture.md): creation and the choice of
 * backend, weights, forward, the centered outputs, the per-row terms (lse,
 * supervised, entropy, hsic), one backward loop over chunks of rows and the
 * reductions of dL/dW and dL/db. C, G and the moment terms belong to the
 * backend (layer_impl.h: layer_replicated.c, layer_scalapack.c). */
#include "imx/config.h"
#include "imx/layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/activation.h"
#include "imx/blas.h"
#include "imx/linalg.h"
#include "imx/log.h"
#include "imx/moments.h"
#include "imx/objective_entropy.h"
#include "imx/objective_hsic.h"
#include "imx/rng.h"
#include "imx/rsum.h"
#include "imx/supervised.h"
#include "imx/timer.h"
#include "layer_impl.h"

/* The backends, by kind (the choice happens once, in choose_backend). */
static const imx_layer_ops *const backends[] = {
    [IMX_LINALG_REPLICATED] = &imx_layer_replicated_ops,
    [IMX_LINALG_SCALAPACK] = &imx_layer_scalapack_ops,
};

/* Rows per BLAS call in the data path. Reproducible mode must use whole
 * blocks so that every row's result has the same bits for any P. */
int64_t imx_layer_chunk(const imx_layer *l) {
  if (l->mode == IMX_RED_REPRODUCIBLE) return l->block;
  return l->nloc < 4096 ? (l->nloc > 0 ? l->nloc : 1) : 4096;
}

int imx_layer_nparams(const imx_layer *l) {
  return l->K * l->n + l->K + (l->sup ? imx_supervised_nparams(l->sup) : 0);
}
int imx_layer_head_classes(const imx_layer *l) {
  return l->sup ? imx_supervised_classes(l->sup) : 0;
}
int imx_layer_units(const imx_layer *l) { return l->K; }
int imx_layer_inputs(const imx_layer *l) { return l->n; }
long long imx_layer_samples(const imx_layer *l) { return (long long)l->N_all; }
const char *imx_layer_path(const imx_layer *l) { return l->moments_path ? "moments" : "data"; }
const char *imx_layer_linalg(const imx_layer *l) { return imx_linalg_name(l->linalg); }
const char *imx_layer_linalg_reason(const imx_layer *l) { return l->linalg_why; }
double imx_layer_bytes(const imx_layer *l) { return (double)l->bytes; }
void imx_layer_grid(const imx_layer *l, int *pr, int *pc, int *nb) { l->ops->grid(l, pr, pc, nb); }
const imx_objective *imx_layer_objective(const imx_layer *l) { return &l->obj; }

void imx_layer_free(imx_layer **lp) {
  if (!lp || !*lp) return;
  imx_layer *l = *lp;
  free(l->xmax), free(l->Sx), free(l->mux), free(l->W), free(l->norms), free(l->b);
  free(l->A), free(l->P), free(l->H), free(l->D), free(l->m), free(l->gW), free(l->gb);
  free(l->amax), free(l->dmax), free(l->zmax);
  free(l->rowv), free(l->actwork), free(l->ghead), free(l->Xb), free(l->Crun), free(l->Cnext);
  free(l->Xf), free(l->Wf), free(l->bf), free(l->Zf);
  imx_entropy_free(&l->ent), imx_hsic_free(&l->hsic);
  imx_rsum_free(&l->rK), imx_rsum_free(&l->rKn), imx_rsum_free(&l->r1);
  imx_supervised_free(&l->sup);
  if (l->ops) l->ops->destroy(l);
  free(l);
  *lp = NULL;
}

static void *alloc(size_t count, int *bad) {
  void *p = imx_malloc_rows((count ? count : 1) * sizeof(double));
  if (!p) *bad = 1;
  return p;
}

void *imx_layer_alloc(imx_layer *l, size_t count, int *bad) {
  l->bytes += count * sizeof(double);
  return alloc(count, bad);
}

float *imx_layer_alloc_float(imx_layer *l, size_t count, int *bad) {
  l->bytes += count * sizeof(float);
  float *p = malloc((count ? count : 1) * sizeof(float));
  if (!p) *bad = 1;
  return p;
}

/* Input covariance S_x = (1/N) sum (x - mu)(x - mu)^T, reduced like C. */
static imx_err input_covariance(imx_ctx *ctx, imx_layer *l) {
  int n = l->n, bad = 0;
  double *mu = alloc((size_t)n, &bad);
  double *Xc = alloc((size_t)l->nloc * n, &bad);
  imx_rsum *rn = NULL, *rnn = NULL;
  l->Sx = imx_layer_alloc(l, (size_t)n * n, &bad), l->mux = imx_layer_alloc(l, (size_t)n, &bad);
  imx_err e = bad ? imx_fail(ctx, IMX_ERR_NOMEM, "input covariance %d x %d", n, n) : IMX_OK;
  if (!e) e = imx_rsum_create(ctx, l->mode, 1, n, 0, &rn);
  if (!e) e = imx_rsum_create(ctx, l->mode, n, n, 1, &rnn);
  e = imx_agree(ctx, e);
  if (!e) e = imx_moments_colsum(ctx, rn, l->block, l->nloc, n, l->X, n, NULL, mu);
  if (!e) {
    for (int j = 0; j < n; j++) mu[j] /= (double)l->N;
    for (int64_t i = 0; i < l->nloc; i++)
      for (int j = 0; j < n; j++) Xc[i * n + j] = l->X[i * n + j] - mu[j];
    e = imx_moments_atb(ctx, rnn, l->block, l->nloc, n, Xc, n, NULL, n, Xc, n, NULL, l->Sx);
  }
  if (!e) {
    for (size_t i = 0; i < (size_t)n * n; i++) l->Sx[i] /= (double)l->N;
    memcpy(l->mux, mu, (size_t)n * sizeof *mu);
  }
  imx_rsum_free(&rn), imx_rsum_free(&rnn);
  free(mu), free(Xc);
  return e;
}

/* Does the data path keep phi(z) beside z (terms on z, and lse or supervised
 * on phi(z))? */
static int keeps_activation(const imx_layer *l) {
  return l->on_z && imx_objective_reads_activation(&l->obj);
}

/* The per-row buffers of the data path (nloc x K twice, three times with
 * keeps_activation; nloc). */
static imx_err data_buffers(imx_ctx *ctx, imx_layer *l) {
  if (l->A) return IMX_OK;
  int bad = 0;
  size_t rows = (size_t)l->nloc, K = (size_t)l->K, copies = 2 + keeps_activation(l);
  l->A = imx_layer_alloc(l, rows * K, &bad), l->D = imx_layer_alloc(l, rows * K, &bad);
  l->rowv = imx_layer_alloc(l, rows, &bad);
  if (keeps_activation(l)) {
    l->P = imx_layer_alloc(l, rows * K, &bad);
    l->H = imx_layer_alloc(l, (size_t)imx_layer_chunk(l) * K, &bad);
  }
  if (bad)
    return imx_fail(ctx, IMX_ERR_NOMEM,
                    "data-path buffers: %zu x %lld local rows x K=%d need %.1f MiB on this rank",
                    copies, (long long)l->nloc, l->K,
                    ((double)copies * rows * K + rows) * 8 / 1048576);
  return IMX_OK;
}

imx_err imx_layer_set_path(imx_ctx *ctx, imx_layer *l, int moments) {
  imx_err e = IMX_OK;
  if (moments && !l->moments_ok)
    e = imx_fail(ctx, IMX_ERR_CONFIG,
                 "parallel.path: moments needs identity activation (or objective.on: z) and "
                 "moment terms only (no lse, supervised, entropy or hsic)");
  else if (!moments) e = data_buffers(ctx, l);
  if (!e) e = l->ops->set_path(ctx, l, moments);
  IMX_TRY(imx_agree(ctx, e));
  if ((moments || l->cov_from_Sx) && !l->Sx) IMX_TRY(input_covariance(ctx, l));
  l->moments_path = moments;
  return IMX_OK;
}

/* Choose the backend from K, P and the memory per rank (the log says which
 * and why). Collective (memory detection); every rank chooses the same. */
static imx_err choose_backend(imx_ctx *ctx, const imx_config *cfg, imx_layer *l, int want_moments) {
  int K = l->K, n = l->n, P = ctx->size;
  double Kd = K, nd = n, rows = (double)l->nloc;
  /* Every backend: weights, gradients, K- and K x n-sums and the per-row
   * (data) or input-moment (moments) buffers. */
  double keep = keeps_activation(l); /* P and H */
  double per_row = ((2 + keep) * rows + keep * (double)imx_layer_chunk(l)) * Kd + rows;
  double common = (2 * Kd * nd + 5 * Kd + nd) * 8 + imx_rsum_bytes(l->mode, 1, Kd) +
                  imx_rsum_bytes(l->mode, Kd, nd) + (want_moments ? nd * nd : per_row) * 8;
  if (l->single) /* X, W, b and a chunk of z in float */
    common += (rows * nd + Kd * nd + Kd + (double)imx_layer_chunk(l) * Kd) * 4;
  double est[IMX_LINALG_SCALAPACK + 1] = {0}, avail = 0;
  for (int k = IMX_LINALG_REPLICATED; k <= IMX_LINALG_SCALAPACK; k++)
    est[k] = backends[k]->estimate(cfg, l, P, want_moments, common);
  IMX_TRY(imx_linalg_memory_per_rank(ctx, cfg->parallel.memory_mib, &avail));
  l->linalg = imx_linalg_choose(cfg->parallel.linalg, K, P, est[IMX_LINALG_REPLICATED],
                                est[IMX_LINALG_SCALAPACK], avail, l->linalg_why,
                                sizeof l->linalg_why);
  l->ops = backends[l->linalg];
  return IMX_OK;
}

imx_err imx_layer_set_panels(imx_ctx *ctx, imx_layer *l, int panel_tiles, int group_tiles) {
  return l->ops->set_panels(ctx, l, panel_tiles, group_tiles);
}

/* The largest l->bytes over the ranks, for the log line. Collective. */
static imx_err max_bytes(imx_ctx *ctx, imx_layer *l) {
  double mx = (double)l->bytes;
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_DOUBLE, MPI_MAX, ctx->comm));
  l->bytes_max = mx;
  return IMX_OK;
}

void imx_layer_describe_linalg(const imx_layer *l, char *buf, size_t len) {
  l->ops->describe(l, buf, len);
}

/* The hsic term, refused when its (K D)^2 matrices do not fit. Collective
 * (agreed). */
static imx_err hsic_create(imx_ctx *ctx, const imx_config *cfg, imx_layer *l) {
  double avail = 0;
  IMX_TRY(imx_agree(ctx, imx_linalg_memory_per_rank(ctx, cfg->parallel.memory_mib, &avail)));
  IMX_TRY(imx_hsic_create(ctx, cfg, l->K, l->N, l->row0, l->nloc, l->block, imx_layer_chunk(l),
                          avail, &l->hsic));
  l->bytes += imx_hsic_bytes(l->hsic);
  return IMX_OK;
}

double imx_layer_hsic_bytes(const imx_layer *l) { return (double)imx_hsic_bytes(l->hsic); }

/* The buffers, sums and terms every backend uses. Collective (agreed). */
static imx_err common_create(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, imx_layer *l) {
  int K = l->K, n = l->n, bad = 0;
  imx_err e = IMX_OK;
  l->xmax = imx_layer_alloc(l, (size_t)n, &bad);
  l->W = imx_layer_alloc(l, (size_t)K * n, &bad), l->norms = imx_layer_alloc(l, (size_t)K, &bad);
  l->b = imx_layer_alloc(l, (size_t)K, &bad), l->m = imx_layer_alloc(l, (size_t)K, &bad);
  l->amax = imx_layer_alloc(l, (size_t)K, &bad), l->dmax = imx_layer_alloc(l, (size_t)K, &bad);
  l->zmax = imx_layer_alloc(l, (size_t)K, &bad);
  l->gW = imx_layer_alloc(l, (size_t)K * n, &bad), l->gb = imx_layer_alloc(l, (size_t)K, &bad);
  l->actwork = imx_layer_alloc(l, (size_t)imx_act_work(&l->phi), &bad);
  if (l->obj.w[IMX_TERM_SUPERVISED] != 0) {
    IMX_TRY(imx_supervised_create(ctx, cfg, d, K, &l->sup));
    l->ghead = imx_layer_alloc(l, (size_t)imx_supervised_nparams(l->sup), &bad);
  }
  if (l->single) {
    size_t rows = (size_t)l->nloc, chunk = (size_t)imx_layer_chunk(l);
    l->Xf = imx_layer_alloc_float(l, rows * n, &bad);
    l->Wf = imx_layer_alloc_float(l, (size_t)K * n, &bad);
    l->bf = imx_layer_alloc_float(l, (size_t)K, &bad);
    l->Zf = imx_layer_alloc_float(l, chunk * K, &bad);
    if (!bad)
      for (size_t i = 0; i < rows * n; i++) l->Xf[i] = (float)l->X[i];
  }
  if (bad)
    e = imx_fail(ctx, IMX_ERR_NOMEM, "layer buffers: K=%d, n=%d need about %.1f MiB on this rank",
                 K, n, (double)l->bytes / 1048576);
  if (!e) e = imx_rsum_create(ctx, l->mode, 1, K, 0, &l->rK);
  if (!e) e = imx_rsum_create(ctx, l->mode, K, n, 0, &l->rKn);
  if (!e) e = imx_rsum_create(ctx, l->mode, 1, 1, 0, &l->r1);
  /* The ICA preconditioner's statistics come from the entropy pass. */
  int curvature = cfg->optimizer.precondition == IMX_PRECONDITION_ICA;
  l->extended = cfg->objective.extended_every > 0;
  if (!e && l->obj.w[IMX_TERM_ENTROPY] != 0)
    e = imx_entropy_create(ctx, l->mode, K, l->nloc, curvature, cfg->objective.extended_every > 0,
                           &l->ent);
  l->bytes += imx_entropy_bytes(l->ent);
  e = imx_agree(ctx, e);
  if (!e && l->obj.w[IMX_TERM_HSIC] != 0) e = hsic_create(ctx, cfg, l);
  l->bytes += (size_t)(imx_rsum_bytes(l->mode, 1, K) + imx_rsum_bytes(l->mode, K, n));
  return imx_agree(ctx, e);
}

/* Outputs on the simplex ignore a common shift of z, so terms on them only
 * see b - mean(b); terms on z (a covariance, centered entropy, shift-
 * invariant hsic) see no bias at all, so b is what lse and supervised make
 * of it through phi, or nothing. */
static imx_gauge choose_gauge(const imx_layer *l) {
  int shift_free = imx_activation_simplex(l->act);
  if (!l->on_z) return shift_free ? IMX_GAUGE_MEAN : IMX_GAUGE_NONE;
  if (!imx_objective_reads_activation(&l->obj)) return IMX_GAUGE_FIXED;
  return shift_free ? IMX_GAUGE_MEAN : IMX_GAUGE_NONE;
}

void imx_layer_biases_as_given(imx_layer *l) { l->gauge = IMX_GAUGE_NONE; }

/* v -= mean(v) over K entries, summed in index order (the same bits on every
 * rank for a replicated v). */
static void subtract_mean(int K, const double *v, double *out) {
  double s = 0;
  for (int j = 0; j < K; j++) s += v[j];
  double mean = s / K;
  for (int j = 0; j < K; j++) out[j] = v[j] - mean;
}

/* Single precision: every column's largest |x| (global, l->xmax) is 0 or
 * within [SINGLE_MIN_ABS, SINGLE_MAX_ABS], so that the inputs, their products
 * and the sums of a block stay normal floats. Local (xmax is global). */
#define SINGLE_MIN_ABS 1e-12
#define SINGLE_MAX_ABS 1e12
static imx_err single_range(imx_ctx *ctx, const imx_layer *l) {
  for (int j = 0; j < l->n; j++) {
    double v = l->xmax[j];
    if (v != 0 && !(v >= SINGLE_MIN_ABS && v <= SINGLE_MAX_ABS))
      return imx_fail(ctx, IMX_ERR_DATA,
                      "parallel.precision: single: input column %d has largest |x| = %g, outside "
                      "[%g, %g] (float32 products and block sums need it): rescale the data "
                      "with data.scale, or use parallel.precision: double",
                      j, v, SINGLE_MIN_ABS, SINGLE_MAX_ABS);
  }
  return IMX_OK;
}

imx_err imx_layer_create(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, imx_layer **out) {
  *out = NULL;
  imx_layer *l = calloc(1, sizeof *l);
  if (!l) return imx_agree(ctx, imx_fail(ctx, IMX_ERR_NOMEM, "layer"));
  l->K = cfg->model.units, l->n = d->n, l->N = d->N, l->nloc = d->nloc, l->block = d->block;
  l->row0 = d->row0;
  l->act = cfg->model.activation, l->tau = cfg->model.temperature;
  l->phi = (imx_act){.kind = l->act, .tau = l->tau, .k = cfg->model.topk, .K = l->K};
  l->sparse = cfg->parallel.sparse && imx_activation_sparse(l->act);
  l->wn = cfg->model.weight_norm, l->mode = cfg->parallel.reduction;
  l->X = l->X_all = d->X;
  l->nloc_all = d->nloc, l->N_all = d->N;
  l->single = cfg->parallel.precision == IMX_PRECISION_SINGLE;
  imx_err e = imx_agree(ctx, imx_objective_resolve(ctx, cfg, d->n, (long long)d->N, &l->obj));
  /* With identity units z and phi(z) are the same: the terms read A either way. */
  l->on_z = l->obj.on == IMX_ON_Z && l->act != IMX_ACT_IDENTITY;
  l->moments_ok = imx_layer_linear_stat(l) && !imx_objective_per_sample(&l->obj);
  l->gauge = choose_gauge(l);
  /* Single precision is a mode of the data path: auto takes the data path. */
  int want_moments = cfg->parallel.path == IMX_PATH_MOMENTS ||
                     (cfg->parallel.path == IMX_PATH_AUTO && l->moments_ok && !l->single);
  if (!e && l->single && want_moments)
    e = imx_fail(ctx, IMX_ERR_CONFIG,
                 "parallel.precision: single runs the data path only; the moments path "
                 "(parallel.path: moments) is double: set parallel.path: data or auto, or "
                 "parallel.precision: double");
  if (!e) e = imx_agree(ctx, choose_backend(ctx, cfg, l, want_moments && l->moments_ok));
  if (!e && l->single && l->linalg != IMX_LINALG_REPLICATED)
    e = imx_fail(ctx, IMX_ERR_CONFIG,
                 "parallel.precision: single runs on the replicated backend only, and "
                 "parallel.linalg: %s chose %s (%s): set parallel.linalg: replicated, or "
                 "parallel.precision: double",
                 imx_linalg_name(cfg->parallel.linalg), imx_linalg_name(l->linalg), l->linalg_why);
  e = imx_agree(ctx, e);
  if (!e) e = common_create(ctx, cfg, d, l);
  if (!e) e = l->ops->create(ctx, cfg, l);
  if (!e) e = imx_colmax(ctx, l->nloc, l->n, l->X, l->n, l->xmax);
  if (!e && l->single) e = single_range(ctx, l);
  if (!e) e = imx_layer_set_path(ctx, l, want_moments);
  e = imx_agree(ctx, e);
  if (!e) e = max_bytes(ctx, l);
  if (e) {
    imx_layer_free(&l);
    return e;
  }
  *out = l;
  return IMX_OK;
}

static void forward(const imx_layer *l, double *out, int apply_phi, double *amax);

/* theta from model.init and model.seed. Collective. */
static imx_err init_theta(imx_ctx *ctx, const imx_layer *l, const imx_config *cfg, double *theta) {
  int K = l->K, n = l->n;
  double *V = theta, *b = theta + (size_t)K * n;
  uint64_t seed = cfg->model.seed;
  for (int j = 0; j < K; j++) b[j] = cfg->model.init_bias * imx_rng_normal(seed, 2, (uint64_t)j);
  if (l->gauge == IMX_GAUGE_MEAN) subtract_mean(K, b, b); /* start on sum b = 0 */
  /* The supervised head starts at 0: uniform class probabilities. */
  if (l->sup) memset(b + K, 0, (size_t)imx_supervised_nparams(l->sup) * sizeof *b);
  if (!strcmp(cfg->model.init, "random")) {
    for (size_t i = 0; i < (size_t)K * n; i++) V[i] = imx_rng_normal(seed, 1, i);
    return IMX_OK;
  }
  /* Weights from a .npy file: read on rank 0, agree, broadcast. */
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    double *a = NULL;
    int64_t r = 0, c = 0;
    e = imx_npy_read_all(ctx, cfg->model.init, &a, &r, &c);
    if (!e && (r != K || c != n))
      e = imx_fail(ctx, IMX_ERR_DATA,
                   "model.init: %s holds a %lld x %lld array, need K x n = %d x %d",
                   cfg->model.init, (long long)r, (long long)c, K, n);
    if (!e) memcpy(V, a, (size_t)K * n * sizeof *V);
    free(a);
  }
  IMX_TRY(imx_agree(ctx, e));
  IMX_MPI(ctx, MPI_Bcast(V, K * n, MPI_DOUBLE, 0, ctx->comm));
  for (int j = 0; j < K; j++) {
    double s = 0;
    for (int i = 0; i < n; i++) s += V[(size_t)j * n + i] * V[(size_t)j * n + i];
    if (!(s > 0) && l->wn)
      return imx_fail(ctx, IMX_ERR_DATA,
                      "model.init: row %d of %s is zero (weight "
                      "normalization needs nonzero rows)",
                      j, cfg->model.init);
  }
  return IMX_OK;
}

imx_err imx_layer_init_params(imx_ctx *ctx, const imx_layer *l, const imx_config *cfg,
                              double *theta) {
  IMX_TRY(init_theta(ctx, l, cfg, theta));
  if (!l->hsic) return IMX_OK;
  /* hsic's bandwidths from the initial outputs: one objective for the whole
   * run, also after an exact resume, which recomputes these parameters. */
  imx_layer_weights(l, theta, l->W, l->b);
  forward(l, l->A, !l->on_z, NULL);
  return imx_hsic_set_bandwidths(ctx, l->hsic, l->A);
}

imx_err imx_layer_start_params(imx_ctx *ctx, const imx_layer *l, const double *from,
                               double *theta) {
  int K = l->K, n = l->n;
  if (theta != from) memcpy(theta, from, (size_t)imx_layer_nparams(l) * sizeof *theta);
  if (l->wn) {
    imx_layer_weights(l, from, l->W, l->b);
    memcpy(theta, l->W, (size_t)K * n * sizeof *theta);
  }
  if (!l->hsic) return IMX_OK;
  imx_layer_weights(l, theta, l->W, l->b);
  forward(l, l->A, !l->on_z, NULL);
  return imx_hsic_set_bandwidths(ctx, l->hsic, l->A);
}

void imx_layer_weights(const imx_layer *l, const double *theta, double *W, double *b) {
  int K = l->K, n = l->n;
  for (int j = 0; j < K; j++) {
    const double *v = theta + (size_t)j * n;
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i] * v[i];
    double nrm = sqrt(s), inv = l->wn ? 1.0 / nrm : 1.0;
    l->norms[j] = nrm;
    for (int i = 0; i < n; i++) W[(size_t)j * n + i] = v[i] * inv;
    b[j] = theta[(size_t)K * n + j];
  }
  /* TAO's lmvm scales each component of a step by its own factor (a diagonal
   * initial Hessian), so a step can move sum b although dL/db sums to 0:
   * evaluate at the pinned biases whatever theta holds. */
  if (l->gauge == IMX_GAUGE_MEAN) subtract_mean(K, b, b);
}

/* a = phi(z) in place on rows x K (include/imx/activation.h). */
static void activate(const imx_layer *l, int64_t rows, double *Z) {
  imx_act_forward(&l->phi, rows, Z, l->actwork);
}

/* dL/dz from g = dL/da in place, for rows x K; A holds phi(z). */
static void activate_backward(const imx_layer *l, int64_t rows, const double *A, double *g) {
  imx_act_backward(&l->phi, rows, A, g);
}

/* a = phi(z) in float32 on rows x K doubles in place, through Zf (single). */
static void activate_single(const imx_layer *l, int64_t rows, double *Z) {
  for (size_t i = 0; i < (size_t)rows * l->K; i++) l->Zf[i] = (float)Z[i];
  imx_act_forward_f(&l->phi, rows, l->Zf, l->actwork);
  for (size_t i = 0; i < (size_t)rows * l->K; i++) Z[i] = l->Zf[i];
}

/* forward in float32: W and b rounded to float once, then per chunk
 * Z = Xf Wf^T + bf (SGEMM) and phi in float, widened into out. */
static void forward_single(const imx_layer *l, double *out, int apply_phi, double *amax) {
  int K = l->K, n = l->n;
  int64_t rows = l->nloc, step = imx_layer_chunk(l);
  const float one = 1, zero = 0;
  for (size_t i = 0; i < (size_t)K * n; i++) l->Wf[i] = (float)l->W[i];
  for (int k = 0; k < K; k++) l->bf[k] = (float)l->b[k];
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    int c = (int)(r0 + step < rows ? step : rows - r0);
    float *Z = l->Zf;
    sgemm_("T", "N", &K, &c, &n, &one, l->Wf, &n, l->Xf + r0 * n, &n, &zero, Z, &K);
    for (int i = 0; i < c; i++)
      for (int k = 0; k < K; k++) Z[(size_t)i * K + k] += l->bf[k];
    if (apply_phi) imx_act_forward_f(&l->phi, c, Z, l->actwork);
    double *o = out + r0 * K;
    for (size_t i = 0; i < (size_t)c * K; i++) o[i] = Z[i];
    if (amax) imx_colmax_local(c, K, o, K, amax);
  }
}

/* Z = X W^T + 1 b^T over the local rows into out (nloc x K), then phi if
 * asked; with amax (K) also the local column maxima of |out|, chunk by chunk
 * while it is in cache. */
static void forward(const imx_layer *l, double *out, int apply_phi, double *amax) {
  int K = l->K, n = l->n;
  int64_t rows = l->nloc, step = imx_layer_chunk(l);
  const double one = 1, zero = 0;
  if (amax)
    for (int k = 0; k < K; k++) amax[k] = 0;
  if (l->single) {
    forward_single(l, out, apply_phi, amax);
    return;
  }
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    int c = (int)(r0 + step < rows ? step : rows - r0);
    double *Z = out + r0 * K;
    /* Row-major Z (c x K) = X_c W^T: column-major Z^T = W X_c^T. */
    dgemm_("T", "N", &K, &c, &n, &one, l->W, &n, l->X + r0 * n, &n, &zero, Z, &K);
    for (int i = 0; i < c; i++)
      for (int k = 0; k < K; k++) Z[(size_t)i * K + k] += l->b[k];
    if (apply_phi) activate(l, c, Z);
    if (amax) imx_colmax_local(c, K, Z, K, amax);
  }
}

imx_err imx_layer_forward(imx_ctx *ctx, imx_layer *l, const double *theta, imx_features which,
                          double *out) {
  imx_layer_weights(l, theta, l->W, l->b);
  if (which == IMX_FEAT_INPUT)
    return imx_fail(ctx, IMX_ERR_INTERNAL, "imx_layer_forward: the input is not an output");
  forward(l, out, which == IMX_FEAT_ACTIVATION, NULL);
  return IMX_OK;
}

/* The collapse indicators from the backend's diag C and max |corr|. */
static void fill_eval(const imx_layer *l, const double *terms, double loss, imx_eval *ev) {
  if (!ev) return;
  int K = l->K;
  size_t stride = 1;
  const double *dg = l->ops->diag(l, &stride);
  ev->loss = loss;
  memcpy(ev->terms, terms, sizeof ev->terms);
  double mean = 0, mn = INFINITY, mx = 0, bmax = 0;
  for (int j = 0; j < K; j++) {
    double c = dg[j * stride];
    mean += c / K;
    mn = c < mn ? c : mn, mx = c > mx ? c : mx;
    bmax = fabs(l->b[j]) > bmax ? fabs(l->b[j]) : bmax;
  }
  ev->dead_units = 0;
  for (int j = 0; j < K; j++) ev->dead_units += dg[j * stride] <= 1e-12 * mean;
  ev->min_var = mn, ev->max_var = mx, ev->max_abs_bias = bmax;
  ev->max_abs_corr = l->ops->max_corr(l);
}

int imx_layer_precond(const imx_layer *l, imx_precond *p, char *why, size_t len) {
  const char *no = NULL;
  for (int t = 0; t < IMX_NTERMS && !no; t++)
    if (t != IMX_TERM_ENTROPY && t != IMX_TERM_LOGDET && l->obj.w[t] != 0)
      no = "it is for entropy + logdet only (the ica preset)";
  if (!no && !l->ent) no = "the objective has no entropy term";
  if (!no && l->act != IMX_ACT_IDENTITY) no = "it needs identity units";
  if (!no && l->K != l->n) no = "it needs as many units as inputs (K = n)";
  if (!no && l->ops->no_precond) no = l->ops->no_precond;
  if (no) {
    snprintf(why, len, "%s", no);
    return 0;
  }
  *p = (imx_precond){.K = l->K,
                     .wn = l->wn,
                     .we = l->obj.w[IMX_TERM_ENTROPY],
                     .wl = l->obj.w[IMX_TERM_LOGDET]};
  return 1;
}

int imx_layer_switch_applies(const imx_layer *l) { return l->ent && l->extended; }

imx_err imx_layer_switch(imx_ctx *ctx, imx_layer *l, const double *theta, int *flips, int *sub) {
  *flips = 0, *sub = 0;
  if (!l->ent) return IMX_OK;
  double f;
  imx_eval ev;
  IMX_TRY(imx_layer_eval(ctx, l, theta, &f, NULL, &ev));
  *flips = imx_entropy_switch(l->ent, 1.0 / (double)l->N, sub);
  return IMX_OK;
}

void imx_layer_precond_aux(const imx_layer *l, double *aux) {
  int K = l->K;
  imx_entropy_curvature(l->ent, 1.0 / (double)l->N, aux, aux + K, aux + 2 * K);
  size_t stride = 1;
  const double *dg = l->ops->diag(l, &stride);
  for (int j = 0; j < K; j++) aux[3 * K + j] = dg[j * stride] + l->obj.eps;
}

/* Weight-normalization chain rule: dL/dv_j = (g_j - w_j <w_j, g_j>) / ||v_j||. */
static void chain_weight_norm(const imx_layer *l, double *gV) {
  int K = l->K, n = l->n;
  for (int j = 0; j < K; j++) {
    const double *w = l->W + (size_t)j * n;
    double *g = gV + (size_t)j * n, wg = 0;
    for (int i = 0; i < n; i++) wg += w[i] * g[i];
    for (int i = 0; i < n; i++) g[i] = (g[i] - w[i] * wg) / l->norms[j];
  }
}

/* The rows of phi(z) that lse and supervised read. */
static const double *activation_rows(const imx_layer *l) { return l->P ? l->P : l->A; }

/* The lse term: one value per local row, summed like a moment. */
static imx_err lse_value(imx_ctx *ctx, imx_layer *l, int64_t rows, double invN,
                         double terms[IMX_NTERMS], double *value) {
  imx_timer_start(IMX_T_MOMENTS);
  for (int64_t i = 0; i < rows; i++)
    l->rowv[i] = imx_objective_lse_row(l->K, activation_rows(l) + i * l->K, NULL, 0);
  double s = 0;
  imx_err e = imx_moments_colsum(ctx, l->r1, l->block, rows, 1, l->rowv, 1, NULL, &s);
  imx_timer_stop(IMX_T_MOMENTS);
  if (e) return e;
  terms[IMX_TERM_LSE] = s * invN;
  *value += l->obj.w[IMX_TERM_LSE] * terms[IMX_TERM_LSE];
  return IMX_OK;
}

/* dL/dW = dZ^T X over the local rows, reduced. topk and sparsemax give a dZ
 * with the zeros of their outputs: partials with at most SPARSE_DENSITY
 * nonzeros skip them (parallel.sparse). */
#define SPARSE_DENSITY 0.125
static imx_err reduce_gW(imx_ctx *ctx, imx_layer *l, int64_t rows, const double *dZ,
                         const double *zmax) {
  if (l->single && !l->sparse)
    return imx_moments_atb_single(ctx, l->rKn, l->block, rows, l->K, dZ, l->K, zmax, l->n, l->Xf,
                                  l->n, l->xmax, l->gW);
  if (l->sparse)
    return imx_moments_atb_sparse(ctx, l->rKn, l->block, rows, l->K, dZ, l->K, zmax, l->n, l->X,
                                  l->n, l->xmax, SPARSE_DENSITY, l->gW);
  return imx_moments_atb(ctx, l->rKn, l->block, rows, l->K, dZ, l->K, zmax, l->n, l->X, l->n,
                         l->xmax, l->gW);
}

/* The supervised term on the outputs A (include/imx/supervised.h). */
static imx_err supervised_value(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS],
                                double *value) {
  imx_timer_start(IMX_T_MOMENTS);
  imx_err e = imx_supervised_value(ctx, l->sup, l->head, activation_rows(l),
                                   &terms[IMX_TERM_SUPERVISED]);
  imx_timer_stop(IMX_T_MOMENTS);
  if (!e) *value += l->obj.w[IMX_TERM_SUPERVISED] * terms[IMX_TERM_SUPERVISED];
  return e;
}

/* The per-sample terms of src/objective/objective_*.c from the outputs A and the
 * centered outputs D. */
static imx_err nonlinear_value(imx_ctx *ctx, imx_layer *l, int64_t rows, double invN,
                               double terms[IMX_NTERMS], double *value) {
  imx_err e = IMX_OK;
  imx_timer_start(IMX_T_MOMENTS);
  if (l->ent)
    e = imx_entropy_value(ctx, l->ent, l->block, rows, l->D, invN, &terms[IMX_TERM_ENTROPY]);
  if (!e && l->ent) *value += l->obj.w[IMX_TERM_ENTROPY] * terms[IMX_TERM_ENTROPY];
  if (!e && l->hsic) e = imx_hsic_value(ctx, l->hsic, l->A, invN, &terms[IMX_TERM_HSIC]);
  if (!e && l->hsic) *value += l->obj.w[IMX_TERM_HSIC] * terms[IMX_TERM_HSIC];
  imx_timer_stop(IMX_T_MOMENTS);
  return e;
}

/* Their dL/dA added to T (c rows x K) for the local rows r0 .. r0 + c - 1. */
static void nonlinear_grad(imx_layer *l, int64_t r0, int c, double *T, double invN) {
  if (l->ent)
    imx_entropy_grad_rows(l->ent, r0, c, l->D + r0 * l->K, T, l->obj.w[IMX_TERM_ENTROPY] * invN);
  if (l->hsic) imx_hsic_grad_rows(l->hsic, l->A, r0, c, T, l->obj.w[IMX_TERM_HSIC], invN);
}

/* The dL/da of lse and supervised added to T (c rows x K) for the local rows
 * r0 .. r0 + c - 1. */
static void activation_grad(imx_layer *l, int64_t r0, int c, double *T, double invN) {
  double wl = l->obj.w[IMX_TERM_LSE];
  if (wl != 0)
    for (int i = 0; i < c; i++)
      imx_objective_lse_row(l->K, activation_rows(l) + (r0 + i) * l->K, T + (size_t)i * l->K,
                            wl * invN);
  if (l->sup)
    imx_supervised_backward_rows(l->sup, l->head, r0, c, l->obj.w[IMX_TERM_SUPERVISED], T);
}

/* The data path begins here: A = phi(X W^T + b) (or z, when on_z; then
 * P = phi(z) if lse or supervised read it) for the local rows, the means m
 * (reduced) and the centered outputs D = A - m. Collective. */
static imx_err outputs_centered(imx_ctx *ctx, imx_layer *l, double invN) {
  int K = l->K;
  int64_t rows = l->nloc, step = imx_layer_chunk(l);
  /* Reproducible sums need the maxima of A (its column sums) and of D (C). */
  int maxima = l->mode == IMX_RED_REPRODUCIBLE && !l->cov_from_Sx;
  imx_timer_start(IMX_T_FORWARD);
  forward(l, l->A, !l->on_z, maxima ? l->amax : NULL);
  if (l->P) {
    memcpy(l->P, l->A, (size_t)rows * K * sizeof *l->P);
    for (int64_t r0 = 0; r0 < rows; r0 += step) {
      int64_t c = r0 + step < rows ? step : rows - r0;
      if (l->single) activate_single(l, c, l->P + r0 * K);
      else activate(l, c, l->P + r0 * K);
    }
  }
  imx_timer_stop(IMX_T_FORWARD);
  imx_timer_start(IMX_T_MOMENTS);
  imx_err e = IMX_OK;
  if (l->cov_from_Sx) { /* A = z: m = W mu_x + b, no pass over the rows */
    for (int k = 0; k < K; k++) {
      double s = 0;
      for (int i = 0; i < l->n; i++) s += l->W[(size_t)k * l->n + i] * l->mux[i];
      l->m[k] = s + l->b[k];
    }
  } else {
    if (maxima) e = imx_colmax_reduce(ctx, K, l->amax);
    if (!e)
      e = imx_moments_colsum(ctx, l->rK, l->block, rows, K, l->A, K, maxima ? l->amax : NULL, l->m);
    for (int k = 0; !e && k < K; k++) l->m[k] *= invN;
  }
  if (!e) {
    if (maxima)
      for (int k = 0; k < K; k++) l->dmax[k] = 0;
    for (int64_t i = 0; i < rows; i++) {
      double *d = l->D + i * K;
      for (int k = 0; k < K; k++) d[k] = l->A[i * K + k] - l->m[k];
      if (maxima) imx_colmax_local(1, K, d, K, l->dmax);
    }
    if (maxima) e = imx_colmax_reduce(ctx, K, l->dmax);
  }
  imx_timer_stop(IMX_T_MOMENTS);
  return e;
}

/* The data path: the outputs and their centered values, the backend's C and
 * moment terms, the per-row terms; then dL/dA = (2/N) (A - m) G (the
 * backend's) + the per-row terms, through phi, chunk by chunk into dZ, and the
 * reductions. Collective. */
static imx_err eval_data(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS], double *value,
                         int want_grad) {
  int K = l->K;
  int64_t rows = l->nloc, step = imx_layer_chunk(l);
  double invN = 1.0 / (double)l->N;
  double moment_value = 0;
  imx_err e = outputs_centered(ctx, l, invN);
  if (!e) e = l->ops->data_moments(ctx, l, terms, &moment_value);
  if (e) return e;
  double wl = l->obj.w[IMX_TERM_LSE];
  if (wl != 0) IMX_TRY(lse_value(ctx, l, rows, invN, terms, &moment_value));
  if (l->sup) IMX_TRY(supervised_value(ctx, l, terms, &moment_value));
  IMX_TRY(nonlinear_value(ctx, l, rows, invN, terms, &moment_value));
  *value = moment_value;
  if (!want_grad) return IMX_OK;

  imx_timer_start(IMX_T_BACKWARD);
  double *dZ = NULL, *zmax = l->mode == IMX_RED_REPRODUCIBLE ? l->zmax : NULL;
  if (zmax)
    for (int k = 0; k < K; k++) zmax[k] = 0;
  e = l->ops->grad_begin(ctx, l, &dZ);
  for (int64_t r0 = 0; !e && r0 < rows; r0 += step) {
    int c = (int)(r0 + step < rows ? step : rows - r0);
    double *Tc = l->ops->grad_rows(l, r0, c), *dZc = dZ + r0 * K;
    if (!l->on_z) { /* every term reads phi(z): one pass through phi */
      activation_grad(l, r0, c, Tc, invN);
      nonlinear_grad(l, r0, c, Tc, invN);
      activate_backward(l, c, l->A + r0 * K, Tc);
    } else { /* Tc is dL/dz already; lse and supervised pass through phi alone */
      nonlinear_grad(l, r0, c, Tc, invN);
      if (l->P) {
        memset(l->H, 0, (size_t)c * K * sizeof *l->H);
        activation_grad(l, r0, c, l->H, invN);
        activate_backward(l, c, l->P + r0 * K, l->H);
        for (size_t i = 0; i < (size_t)c * K; i++) Tc[i] += l->H[i];
      }
    }
    if (Tc != dZc) memcpy(dZc, Tc, (size_t)c * K * sizeof *dZc);
    if (zmax) imx_colmax_local(c, K, dZc, K, zmax);
  }
  imx_timer_stop(IMX_T_BACKWARD);
  if (e) return e;
  imx_timer_start(IMX_T_REDUCE);
  if (zmax) e = imx_colmax_reduce(ctx, K, zmax);
  if (!e) e = reduce_gW(ctx, l, rows, dZ, zmax);
  if (!e) e = imx_moments_colsum(ctx, l->rK, l->block, rows, K, dZ, K, zmax, l->gb);
  if (!e && l->sup)
    e = imx_supervised_grad_head(ctx, l->sup, activation_rows(l), l->obj.w[IMX_TERM_SUPERVISED],
                                 l->ghead);
  if (!e) l->ops->grad_end(l);
  imx_timer_stop(IMX_T_REDUCE);
  return e;
}

/* The moments path: the backend's C = W S_x W^T, moment terms and dL/dW;
 * C does not depend on b. Collective. */
static imx_err eval_moments(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS], double *value,
                            int want_grad) {
  imx_err e = l->ops->eval_moments(ctx, l, terms, value, want_grad);
  if (!e && want_grad)
    for (int j = 0; j < l->K; j++) l->gb[j] = 0;
  return e;
}

/* The non-finite objective: its value and every term with a nonzero weight,
 * by name. Returns IMX_ERR_NUMERIC. Local. */
static imx_err fail_not_finite(imx_ctx *ctx, const imx_layer *l, double value,
                               const double terms[IMX_NTERMS]) {
  char list[IMX_NTERMS * 48] = "";
  size_t len = 0;
  for (int t = 0; t < IMX_NTERMS && len < sizeof list; t++)
    if (l->obj.w[t] != 0)
      len += (size_t)snprintf(list + len, sizeof list - len, "%s%s %g", len ? ", " : "",
                              imx_term_names[t], terms[t]);
  return imx_fail(ctx, IMX_ERR_NUMERIC, "objective is %g (terms: %s)", value, list);
}

/* Every rank runs the same optimizer on the reduced (f, grad), so they must be
 * the same bits everywhere. MPI does not promise that MPI_Allreduce gives
 * every rank the same rounding; if a hash of the bits differs anywhere, take
 * rank 0's values. Collective. */
static imx_err same_on_all_ranks(imx_ctx *ctx, double *f, double *grad, int np) {
  uint64_t h = 1469598103934665603ULL, bits;
  memcpy(&bits, f, sizeof bits);
  h = (h ^ bits) * 1099511628211ULL;
  for (int i = 0; i < np; i++) {
    memcpy(&bits, grad + i, sizeof bits);
    h = (h ^ bits) * 1099511628211ULL;
  }
  uint64_t v[2] = {h, ~h};
  imx_comm_sent(ctx, sizeof v, 1);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_BAND, ctx->comm));
  /* A bit that differs anywhere is 0 in the AND of h or in the AND of ~h, so
   * every rank sees the difference and all of them take the broadcast. */
  if (v[0] != h || v[1] != ~h) {
    IMX_MPI(ctx, MPI_Bcast(f, 1, MPI_DOUBLE, 0, ctx->comm));
    IMX_MPI(ctx, MPI_Bcast(grad, np, MPI_DOUBLE, 0, ctx->comm));
    imx_comm_sent(ctx, 8.0 * (np + 1), 0);
  }
  return IMX_OK;
}

imx_err imx_layer_eval(imx_ctx *ctx, imx_layer *l, const double *theta, double *f, double *grad,
                       imx_eval *ev) {
  int K = l->K, n = l->n;
  double terms[IMX_NTERMS], value = 0;
  for (int t = 0; t < IMX_NTERMS; t++) terms[t] = NAN;
  imx_layer_weights(l, theta, l->W, l->b);
  l->head = theta + (size_t)K * n + K;
  if (l->wn)
    for (int j = 0; j < K; j++)
      if (!(l->norms[j] > 0))
        return imx_fail(ctx, IMX_ERR_NUMERIC, "weight row %d has norm %g", j, l->norms[j]);
  int g = grad != NULL;
  imx_err e = l->moments_path ? eval_moments(ctx, l, terms, &value, g)
                              : eval_data(ctx, l, terms, &value, g);
  e = imx_agree(ctx, e);
  if (e) return e;
  if (l->obj.w[IMX_TERM_WEIGHT_REDUNDANCY] != 0) {
    if (!grad) memset(l->gW, 0, (size_t)K * n * sizeof *l->gW); /* value only: gW is scratch */
    terms[IMX_TERM_WEIGHT_REDUNDANCY] = l->ops->weight_redundancy(l);
    value += l->obj.w[IMX_TERM_WEIGHT_REDUNDANCY] * terms[IMX_TERM_WEIGHT_REDUNDANCY];
  }
  if (!isfinite(value)) return fail_not_finite(ctx, l, value, terms);
  *f = value;
  fill_eval(l, terms, value, ev);
  if (!grad) return IMX_OK;
  if (l->wn) chain_weight_norm(l, l->gW);
  /* The gradient of L(b - mean b) is dL/db less its mean: 0 along the
   * common shift, where rounding would otherwise leave a little. */
  if (l->gauge == IMX_GAUGE_MEAN) subtract_mean(K, l->gb, l->gb);
  if (l->gauge == IMX_GAUGE_FIXED) memset(l->gb, 0, (size_t)K * sizeof *l->gb);
  memcpy(grad, l->gW, (size_t)K * n * sizeof *grad);
  memcpy(grad + (size_t)K * n, l->gb, (size_t)K * sizeof *grad);
  if (l->sup)
    memcpy(grad + (size_t)K * n + K, l->ghead,
           (size_t)imx_supervised_nparams(l->sup) * sizeof *grad);
  if (l->mode == IMX_RED_FAST) IMX_TRY(same_on_all_ranks(ctx, f, grad, imx_layer_nparams(l)));
  return IMX_OK;
}

int imx_layer_batchable(const imx_layer *l, char *why, size_t len) {
  const char *no = l->moments_path || l->cov_from_Sx
                       ? "its C is formed from the input covariance of all rows (identity units, "
                         "or objective.on: z, with moment terms)"
                   : l->sup  ? "the supervised term's labeled rows are fixed per row"
                   : l->hsic ? "the hsic term's features are fixed per row"
                             : NULL;
  if (no) snprintf(why, len, "%s", no);
  return !no;
}

imx_err imx_layer_use_blocks(imx_ctx *ctx, imx_layer *l, const int64_t *blocks, int64_t count) {
  l->X = l->X_all, l->nloc = l->nloc_all, l->N = l->N_all;
  l->on_batch = blocks != NULL;
  if (!blocks) return IMX_OK;
  int64_t B = l->block, first = l->row0 / B, nlb = (l->nloc_all + B - 1) / B;
  unsigned char *mine = calloc((size_t)(nlb > 0 ? nlb : 1), 1);
  if (!mine) return imx_fail(ctx, IMX_ERR_NOMEM, "batch: %lld local blocks", (long long)nlb);
  int64_t N = 0, rows = 0, lo = nlb, hi = -1;
  for (int64_t k = 0; k < count; k++) {
    int64_t i = blocks[k], r0 = i * B, r = l->N_all - r0 < B ? l->N_all - r0 : B;
    N += r;
    if (i >= first && i < first + nlb) {
      mine[i - first] = 1, rows += r;
      if (i - first < lo) lo = i - first;
      if (i - first > hi) hi = i - first;
    }
  }
  /* In block order, so that the short last block of the data stays last. */
  if (rows == 0) l->X = l->X_all;
  else if ((hi - lo) * B < rows) l->X = l->X_all + (size_t)(lo * B) * l->n; /* one run: no copy */
  else {
    if ((size_t)rows > l->Xb_rows) {
      free(l->Xb);
      l->Xb = malloc((size_t)rows * l->n * sizeof *l->Xb);
      l->Xb_rows = l->Xb ? (size_t)rows : 0;
      if (!l->Xb) {
        free(mine);
        return imx_fail(ctx, IMX_ERR_NOMEM, "batch: %lld local rows x %d", (long long)rows, l->n);
      }
    }
    size_t at = 0;
    for (int64_t j = lo; j <= hi; j++) {
      if (!mine[j]) continue;
      int64_t r0 = j * B, r = l->nloc_all - r0 < B ? l->nloc_all - r0 : B;
      memcpy(l->Xb + at, l->X_all + (size_t)r0 * l->n, (size_t)(r * l->n) * sizeof *l->Xb);
      at += (size_t)(r * l->n);
    }
    l->X = l->Xb;
  }
  free(mine);
  l->nloc = rows, l->N = N;
  return IMX_OK;
}

imx_err imx_layer_set_blend(imx_ctx *ctx, imx_layer *l, double a) {
  const char *no = !(a >= 0 && a < 1) ? "it needs 0 <= a < 1"
                   : !imx_objective_needs_cov(&l->obj)
                       ? "the objective has no term on C (nothing to blend)"
                   : l->linalg != IMX_LINALG_REPLICATED
                       ? "it is built for the replicated backend only (parallel.linalg: "
                         "replicated); the scalapack backend's C lives in tiles"
                   : l->moments_path || l->cov_from_Sx ? "C is formed from the input covariance"
                   : l->single                         ? "it is built for double precision"
                                                       : NULL;
  if (no) return imx_fail(ctx, IMX_ERR_CONFIG, "optimizer.cov_blend = %g: %s", a, no);
  free(l->Crun), free(l->Cnext);
  l->Crun = l->Cnext = NULL;
  l->blend = a, l->blend_have = l->blend_pending = 0;
  if (a == 0) return IMX_OK;
  int bad = 0;
  l->Crun = imx_layer_alloc(l, (size_t)l->K * l->K, &bad);
  l->Cnext = imx_layer_alloc(l, (size_t)l->K * l->K, &bad);
  imx_err e = bad ? imx_fail(ctx, IMX_ERR_NOMEM, "optimizer.cov_blend: two %d x %d matrices", l->K,
                             l->K)
                  : IMX_OK;
  return imx_agree(ctx, e);
}

void imx_layer_blend_commit(imx_layer *l) {
  if (!l->blend_pending) return;
  double *t = l->Crun;
  l->Crun = l->Cnext, l->Cnext = t;
  l->blend_have = 1, l->blend_pending = 0;
}

size_t imx_layer_blend_count(const imx_layer *l) {
  return l->blend > 0 ? 1 + (size_t)l->K * l->K : 0;
}

void imx_layer_blend_save(const imx_layer *l, double *out) {
  if (l->blend <= 0) return;
  out[0] = l->blend_have;
  memcpy(out + 1, l->Crun, (size_t)l->K * l->K * sizeof *out);
}

void imx_layer_blend_load(imx_layer *l, const double *in) {
  if (l->blend <= 0) return;
  l->blend_have = in[0] != 0, l->blend_pending = 0;
  memcpy(l->Crun, in + 1, (size_t)l->K * l->K * sizeof *in);
}
