/* layer: forward, moments, objective and backward of one InfoMax layer over
 * the sharded data (see include/imx/layer.h and docs/architecture.md). */
#include "imx/config.h"
#include "imx/layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/activation.h"
#include "imx/blas.h"
#include "imx/dmat.h"
#include "imx/dmoments.h"
#include "imx/linalg.h"
#include "imx/log.h"
#include "imx/moments.h"
#include "imx/objective_entropy.h"
#include "imx/objective_hsic.h"
#include "imx/rng.h"
#include "imx/rsum.h"
#include "imx/supervised.h"
#include "imx/timer.h"

struct imx_layer {
  int K, n;              /* units, inputs */
  int64_t N, nloc, row0; /* global and local rows, first global row here */
  int block;             /* B */
  imx_activation act;
  double tau;            /* softmax temperature */
  imx_act phi;           /* the activation (kind, tau, topk's k) */
  double *actwork;       /* its scratch (imx_act_work doubles) */
  imx_supervised *sup;   /* the supervised term's head (NULL when its weight is 0) */
  const double *head;    /* its parameters in the theta being evaluated */
  double *ghead;         /* its gradient */
  int sparse;            /* use the zeros of dZ in dL/dW (topk, sparsemax; parallel.sparse) */
  int wn;                /* weight normalization */
  imx_reduction mode;
  imx_objective obj;
  const double *X;       /* nloc x n, borrowed from the data set */
  double *xmax;          /* n: global column maxima of |X| */
  int moments_path;      /* evaluate from S_x instead of the data */
  int cov_from_Sx;       /* data path, identity units: C = W S_x W^T (W S_x in T), not from the rows */
  double *mux;           /* n: mean of the inputs (with S_x) */
  int moments_ok;        /* the moments path applies */
  double *Sx;            /* n x n input covariance (moments path) */
  double *W, *norms, *b; /* effective weights, ||v_j||, biases */
  double *A;             /* nloc x K outputs */
  double *D;             /* nloc x K: centered outputs, then dL/dZ */
  double *T;             /* chunk x K (data path) or K x n (moments path) scratch */
  double *m, *C, *G;     /* K, K x K, K x K (C, G: replicated backend only) */
  double *work;          /* replicated: 2 K^2 + K scratch; scalapack: WR_ROWS x K */
  double *gW, *gb;       /* K x n, K */
  double *rowv;          /* nloc per-sample values */
  imx_rsum *rK, *rKK, *rKn, *r1; /* rKK: replicated backend only */
  /* The linear-algebra backend (include/imx/linalg.h). */
  imx_linalg_kind linalg;  /* IMX_LINALG_REPLICATED or IMX_LINALG_SCALAPACK */
  char linalg_why[400];    /* why it was chosen, for the log */
  imx_grid *grid;          /* scalapack: the BLACS grid */
  imx_dmat *dC, *dG;       /* scalapack: C and G, lower tiles */
  imx_dmat *dM;            /* scalapack: gaussian_tc's matrix when logdet also needs one */
  imx_dmoments *dm;        /* scalapack: panel plan and scratch */
  imx_dinv *inv;           /* scalapack: scratch of M^{-1} (logdet, gaussian_tc) */
  double *diag, *dmax;     /* scalapack: diag C; column maxima of |D| (K each) */
  double *Tb;              /* scalapack data path: nloc x K, dL/dA then dL/dZ */
  double corr;             /* scalapack: max |correlation| of the last evaluation */
  imx_entropy *ent;        /* the entropy term's sums (NULL when its weight is 0) */
  imx_hsic *hsic;          /* the hsic term's features and sums (NULL when its weight is 0) */
  size_t bytes;            /* bytes of the buffers above on this rank */
  double bytes_max;        /* the largest bytes over the ranks (at creation) */
};

/* Rows of W W^T formed at a time by weight_redundancy in the scalapack backend. */
#define WR_ROWS 64

/* Rows per BLAS call in the data path. Reproducible mode must use whole
 * blocks so that every row's result has the same bits for any P. */
static int64_t chunk(const imx_layer *l) {
  if (l->mode == IMX_RED_REPRODUCIBLE) return l->block;
  return l->nloc < 4096 ? (l->nloc > 0 ? l->nloc : 1) : 4096;
}

int imx_layer_nparams(const imx_layer *l) {
  return l->K * l->n + l->K + (l->sup ? imx_supervised_nparams(l->sup) : 0);
}
int imx_layer_head_classes(const imx_layer *l) { return l->sup ? imx_supervised_classes(l->sup) : 0; }
int imx_layer_units(const imx_layer *l) { return l->K; }
int imx_layer_inputs(const imx_layer *l) { return l->n; }
long long imx_layer_samples(const imx_layer *l) { return (long long)l->N; }
const char *imx_layer_path(const imx_layer *l) { return l->moments_path ? "moments" : "data"; }
const char *imx_layer_linalg(const imx_layer *l) { return imx_linalg_name(l->linalg); }
const char *imx_layer_linalg_reason(const imx_layer *l) { return l->linalg_why; }
double imx_layer_bytes(const imx_layer *l) { return (double)l->bytes; }
void imx_layer_grid(const imx_layer *l, int *pr, int *pc, int *nb) {
  *pr = l->grid ? l->grid->pr : 0, *pc = l->grid ? l->grid->pc : 0, *nb = l->dC ? l->dC->nb : 0;
}
const imx_objective *imx_layer_objective(const imx_layer *l) { return &l->obj; }

void imx_layer_free(imx_layer **lp) {
  if (!lp || !*lp) return;
  imx_layer *l = *lp;
  free(l->xmax), free(l->Sx), free(l->mux), free(l->W), free(l->norms), free(l->b);
  free(l->A), free(l->D);
  free(l->T), free(l->m), free(l->C), free(l->G), free(l->work), free(l->gW), free(l->gb);
  free(l->rowv), free(l->actwork), free(l->ghead), free(l->diag), free(l->dmax), free(l->Tb);
  imx_entropy_free(&l->ent), imx_hsic_free(&l->hsic);
  imx_rsum_free(&l->rK), imx_rsum_free(&l->rKK), imx_rsum_free(&l->rKn), imx_rsum_free(&l->r1);
  imx_dmoments_free(&l->dm);
  imx_supervised_free(&l->sup);
  imx_dinv_free(&l->inv);
  imx_dmat_free(&l->dC), imx_dmat_free(&l->dG), imx_dmat_free(&l->dM);
  imx_grid_free(&l->grid);
  free(l);
  *lp = NULL;
}

static void *alloc(size_t count, int *bad) {
  void *p = malloc((count ? count : 1) * sizeof(double));
  if (!p) *bad = 1;
  return p;
}

/* The same, counted in l->bytes. */
static void *lalloc(imx_layer *l, size_t count, int *bad) {
  l->bytes += count * sizeof(double);
  return alloc(count, bad);
}

/* Input covariance S_x = (1/N) sum (x - mu)(x - mu)^T, reduced like C. */
static imx_err input_covariance(imx_ctx *ctx, imx_layer *l) {
  int n = l->n, bad = 0;
  double *mu = alloc((size_t)n, &bad);
  double *Xc = alloc((size_t)l->nloc * n, &bad);
  imx_rsum *rn = NULL, *rnn = NULL;
  l->Sx = lalloc(l, (size_t)n * n, &bad), l->mux = lalloc(l, (size_t)n, &bad);
  imx_err e = bad ? imx_fail(ctx, IMX_ERR_NOMEM, "input covariance %d x %d", n, n) : IMX_OK;
  if (!e) e = imx_rsum_create(ctx, l->mode, 1, n, 0, &rn);
  if (!e) e = imx_rsum_create(ctx, l->mode, n, n, 1, &rnn);
  e = imx_agree(ctx, e);
  if (!e) e = imx_moments_colsum(ctx, rn, l->block, l->nloc, n, l->X, n, mu);
  if (!e) {
    for (int j = 0; j < n; j++) mu[j] /= (double)l->N;
    for (int64_t i = 0; i < l->nloc; i++)
      for (int j = 0; j < n; j++) Xc[i * n + j] = l->X[i * n + j] - mu[j];
    e = imx_moments_atb(ctx, rnn, l->block, l->nloc, n, Xc, n, n, Xc, n, NULL, l->Sx);
  }
  if (!e) {
    for (size_t i = 0; i < (size_t)n * n; i++) l->Sx[i] /= (double)l->N;
    memcpy(l->mux, mu, (size_t)n * sizeof *mu);
  }
  imx_rsum_free(&rn), imx_rsum_free(&rnn);
  free(mu), free(Xc);
  return e;
}

/* The per-row buffers of the data path (nloc x K twice, nloc). */
static imx_err data_buffers(imx_ctx *ctx, imx_layer *l) {
  if (l->A) return IMX_OK;
  int bad = 0, nbuf = l->linalg == IMX_LINALG_SCALAPACK ? 3 : 2;
  size_t rows = (size_t)l->nloc, K = (size_t)l->K;
  l->A = lalloc(l, rows * K, &bad), l->D = lalloc(l, rows * K, &bad);
  l->rowv = lalloc(l, rows, &bad);
  if (nbuf == 3) l->Tb = lalloc(l, rows * K, &bad);
  if (bad)
    return imx_fail(ctx, IMX_ERR_NOMEM,
                    "data-path buffers: %d x %lld local rows x K=%d need %.1f MiB on this rank",
                    nbuf, (long long)l->nloc, l->K, ((double)nbuf * rows * K + rows) * 8 / 1048576);
  return IMX_OK;
}

imx_err imx_layer_set_path(imx_ctx *ctx, imx_layer *l, int moments) {
  imx_err e = IMX_OK;
  if (moments && !l->moments_ok)
    e = imx_fail(ctx, IMX_ERR_CONFIG,
                 "parallel.path: moments needs identity activation and moment terms only "
                 "(no lse, entropy or hsic)");
  else if (!moments)
    e = data_buffers(ctx, l);
  IMX_TRY(imx_agree(ctx, e));
  /* Identity units: C = W S_x W^T exactly, for a K x n x n product instead
   * of two N K^2 ones (C's and dL/dC's) per evaluation. */
  int from_Sx = !moments && l->act == IMX_ACT_IDENTITY && l->linalg == IMX_LINALG_REPLICATED &&
                imx_objective_needs_cov(&l->obj);
  if ((moments || from_Sx) && !l->Sx) IMX_TRY(input_covariance(ctx, l));
  l->moments_path = moments;
  l->cov_from_Sx = from_Sx;
  return IMX_OK;
}

/* Bytes of an imx_rsum of rows x cols (bins and its scratch). */
static double rsum_bytes(imx_reduction mode, double rows, double cols) {
  return ((mode == IMX_RED_REPRODUCIBLE ? 3 : 1) + 1) * rows * cols * sizeof(double);
}

/* Largest local block of a K x K matrix with nb tiles on a pr x pc grid. */
static double local_bytes(int K, int nb, int pr, int pc) {
  double kt = ceil((double)K / nb);
  return ceil(kt / pr) * nb * ceil(kt / pc) * nb * sizeof(double);
}

/* The tile size of the scalapack backend: parallel.scalapack_block, doubled
 * while the lower tiles are more than an exact sum can take (one partial per
 * tile, include/imx/exact.h). */
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

/* Does the objective factor a K x K matrix (logdet, gaussian_tc)? */
static int uses_inverse(const imx_objective *obj) {
  return obj->w[IMX_TERM_LOGDET] != 0 || obj->w[IMX_TERM_GAUSSIAN_TC] != 0;
}

/* Choose the backend from K, P and the memory per rank (the log says which
 * and why). Collective (memory detection); every rank chooses the same. */
static imx_err choose_linalg(imx_ctx *ctx, const imx_config *cfg, imx_layer *l, int want_moments) {
  int K = l->K, n = l->n, P = ctx->size, pr = 1, pc = P;
  double Kd = K, nd = n, rows = (double)l->nloc;
  /* Both backends: weights, gradients, K- and K x n-sums, chunk scratch and
   * the per-row (data) or input-moment (moments) buffers. */
  double chunkK = (double)(chunk(l) > n ? chunk(l) : n) * Kd * 8, nK = nd * Kd * 8;
  double common = (2 * Kd * nd + 5 * Kd + nd) * 8 + rsum_bytes(l->mode, 1, Kd) +
                  rsum_bytes(l->mode, Kd, nd) +
                  (want_moments ? nd * nd * 8 : (2 * rows * Kd + rows) * 8);
  /* replicated: C, G, LAPACK scratch and the K x K sum. */
  double rep = common + chunkK + (4 * Kd * Kd + 3 * Kd) * 8 + rsum_bytes(l->mode, Kd, Kd);
  /* scalapack: two local blocks (three for logdet + gaussian_tc of softmax
   * outputs), panel scratch, the backward rows and WR_ROWS x K. */
  int nb = tile_size(cfg, K);
  if (imx_grid_shape(P, cfg->parallel.grid_rows, cfg->parallel.grid_cols, &pr, &pc))
    imx_grid_shape(P, 0, 0, &pr, &pc);
  double sl = common + nK + (2 + imx_objective_dist_needs_work(&l->obj)) * local_bytes(K, nb, pr, pc) +
              (double)imx_dmoments_estimate(K, nb, l->mode, n, P) + (WR_ROWS + 2) * Kd * 8 +
              (uses_inverse(&l->obj) && l->mode == IMX_RED_REPRODUCIBLE
                   ? (double)imx_dinv_estimate(K, nb, P)
                   : 0) +
              (want_moments ? 0 : rows * Kd * 8);
  double avail = 0;
  IMX_TRY(imx_linalg_memory_per_rank(ctx, cfg->parallel.memory_mib, &avail));
  l->linalg = imx_linalg_choose(cfg->parallel.linalg, K, P, rep, sl, avail, l->linalg_why,
                                sizeof l->linalg_why);
  return IMX_OK;
}

/* The scalapack backend's grid, matrices and scratch. Collective (agreed). */
static imx_err scalapack_create(imx_ctx *ctx, const imx_config *cfg, imx_layer *l) {
  int K = l->K, nb = tile_size(cfg, K), bad = 0;
  IMX_TRY(imx_grid_create(ctx, cfg->parallel.grid_rows, cfg->parallel.grid_cols, &l->grid));
  IMX_TRY(imx_dmat_create(ctx, l->grid, K, nb, &l->dC));
  IMX_TRY(imx_dmat_create(ctx, l->grid, K, nb, &l->dG));
  if (imx_objective_dist_needs_work(&l->obj)) IMX_TRY(imx_dmat_create(ctx, l->grid, K, nb, &l->dM));
  if (uses_inverse(&l->obj) && l->mode == IMX_RED_REPRODUCIBLE) {
    IMX_TRY(imx_dinv_create(ctx, l->dC, 0, 0, &l->inv));
    l->bytes += imx_dinv_bytes(l->inv);
  }
  IMX_TRY(imx_dmoments_create(ctx, l->dC, l->mode, l->n, 0, 0, &l->dm));
  l->bytes += imx_dmat_bytes(l->dC) + imx_dmat_bytes(l->dG) + imx_dmoments_bytes(l->dm);
  if (l->dM) l->bytes += imx_dmat_bytes(l->dM);
  l->diag = lalloc(l, (size_t)K, &bad), l->dmax = lalloc(l, (size_t)K, &bad);
  l->work = lalloc(l, (size_t)WR_ROWS * K, &bad);
  imx_err e = bad ? imx_fail(ctx, IMX_ERR_NOMEM, "scalapack backend buffers (K=%d)", K) : IMX_OK;
  return imx_agree(ctx, e);
}

imx_err imx_layer_set_panels(imx_ctx *ctx, imx_layer *l, int panel_tiles, int group_tiles) {
  if (!l->dm) return IMX_OK;
  l->bytes -= imx_dmoments_bytes(l->dm);
  imx_dmoments_free(&l->dm);
  IMX_TRY(imx_dmoments_create(ctx, l->dC, l->mode, l->n, panel_tiles, group_tiles, &l->dm));
  l->bytes += imx_dmoments_bytes(l->dm);
  if (l->inv) {
    l->bytes -= imx_dinv_bytes(l->inv);
    imx_dinv_free(&l->inv);
    IMX_TRY(imx_dinv_create(ctx, l->dC, panel_tiles, group_tiles, &l->inv));
    l->bytes += imx_dinv_bytes(l->inv);
  }
  return IMX_OK;
}

/* The largest l->bytes over the ranks, for the log line. Collective. */
static imx_err max_bytes(imx_ctx *ctx, imx_layer *l) {
  double mx = (double)l->bytes;
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_DOUBLE, MPI_MAX, ctx->comm));
  l->bytes_max = mx;
  return IMX_OK;
}

void imx_layer_describe_linalg(const imx_layer *l, char *buf, size_t len) {
  if (l->linalg == IMX_LINALG_SCALAPACK)
    snprintf(buf, len,
             "scalapack on a %d x %d BLACS grid, %d x %d tiles (%s); layer buffers at most %.1f "
             "MiB per rank (local C and G %.1f MiB each)",
             l->grid->pr, l->grid->pc, l->dC->nb, l->dC->nb, l->linalg_why, l->bytes_max / 1048576,
             (double)imx_dmat_bytes(l->dC) / 1048576);
  else
    snprintf(buf, len, "replicated (%s); layer buffers %.1f MiB per rank", l->linalg_why,
             l->bytes_max / 1048576);
}

/* The hsic term, refused when its (K D)^2 matrices do not fit. Collective
 * (agreed). */
static imx_err hsic_create(imx_ctx *ctx, const imx_config *cfg, imx_layer *l) {
  double avail = 0;
  IMX_TRY(imx_agree(ctx, imx_linalg_memory_per_rank(ctx, cfg->parallel.memory_mib, &avail)));
  IMX_TRY(imx_hsic_create(ctx, cfg, l->K, l->N, l->row0, l->nloc, l->block, chunk(l), avail,
                          &l->hsic));
  l->bytes += imx_hsic_bytes(l->hsic);
  return IMX_OK;
}

double imx_layer_hsic_bytes(const imx_layer *l) { return (double)imx_hsic_bytes(l->hsic); }

imx_err imx_layer_create(imx_ctx *ctx, const imx_config *cfg, const imx_data *d,
                         imx_layer **out) {
  *out = NULL;
  imx_layer *l = calloc(1, sizeof *l);
  if (!l) return imx_agree(ctx, imx_fail(ctx, IMX_ERR_NOMEM, "layer"));
  l->K = cfg->model.units, l->n = d->n, l->N = d->N, l->nloc = d->nloc, l->block = d->block;
  l->row0 = d->row0;
  l->act = cfg->model.activation, l->tau = cfg->model.temperature;
  l->phi = (imx_act){.kind = l->act, .tau = l->tau, .k = cfg->model.topk, .K = l->K};
  l->sparse = cfg->parallel.sparse && imx_activation_sparse(l->act);
  l->wn = cfg->model.weight_norm, l->mode = cfg->parallel.reduction;
  l->X = d->X;
  imx_err e = imx_objective_resolve(ctx, cfg, d->n, (long long)d->N, &l->obj);
  e = imx_agree(ctx, e);
  if (e) {
    imx_layer_free(&l);
    return e;
  }
  int K = l->K, n = l->n, bad = 0;
  size_t KK = (size_t)K * K;
  l->moments_ok = l->act == IMX_ACT_IDENTITY && !imx_objective_per_sample(&l->obj);
  int want_moments = cfg->parallel.path == IMX_PATH_MOMENTS ||
                     (cfg->parallel.path == IMX_PATH_AUTO && l->moments_ok);
  e = imx_agree(ctx, choose_linalg(ctx, cfg, l, want_moments && l->moments_ok));
  if (e) {
    imx_layer_free(&l);
    return e;
  }
  l->xmax = lalloc(l, (size_t)n, &bad);
  l->W = lalloc(l, (size_t)K * n, &bad), l->norms = lalloc(l, (size_t)K, &bad);
  l->b = lalloc(l, (size_t)K, &bad), l->m = lalloc(l, (size_t)K, &bad);
  l->gW = lalloc(l, (size_t)K * n, &bad), l->gb = lalloc(l, (size_t)K, &bad);
  /* T: chunk x K (replicated data path; W S_x there too for identity units) or K x n
   * (moments paths, W S_x). */
  int64_t trows = l->linalg == IMX_LINALG_SCALAPACK || chunk(l) < n ? n : chunk(l);
  l->T = lalloc(l, (size_t)trows * K, &bad);
  l->actwork = lalloc(l, (size_t)imx_act_work(&l->phi), &bad);
  if (l->obj.w[IMX_TERM_SUPERVISED] != 0) {
    e = imx_supervised_create(ctx, cfg, d, K, &l->sup);
    if (e) {
      imx_layer_free(&l);
      return e;
    }
    l->ghead = lalloc(l, (size_t)imx_supervised_nparams(l->sup), &bad);
  }
  if (l->linalg == IMX_LINALG_REPLICATED) {
    l->C = lalloc(l, KK, &bad), l->G = lalloc(l, KK, &bad);
    l->work = lalloc(l, 2 * KK + 3 * (size_t)K, &bad);
  }
  if (bad)
    e = imx_fail(ctx, IMX_ERR_NOMEM, "layer buffers: K=%d, n=%d need about %.1f MiB on this rank",
                 K, n, (double)l->bytes / 1048576);
  if (!e) e = imx_rsum_create(ctx, l->mode, 1, K, 0, &l->rK);
  if (!e && l->linalg == IMX_LINALG_REPLICATED) e = imx_rsum_create(ctx, l->mode, K, K, 1, &l->rKK);
  if (!e) e = imx_rsum_create(ctx, l->mode, K, n, 0, &l->rKn);
  if (!e) e = imx_rsum_create(ctx, l->mode, 1, 1, 0, &l->r1);
  /* The ICA preconditioner's statistics come from the entropy pass. */
  int curvature = cfg->optimizer.precondition == IMX_PRECONDITION_ICA;
  if (!e && l->obj.w[IMX_TERM_ENTROPY] != 0)
    e = imx_entropy_create(ctx, l->mode, K, l->nloc, curvature, &l->ent);
  l->bytes += imx_entropy_bytes(l->ent);
  e = imx_agree(ctx, e);
  if (!e && l->obj.w[IMX_TERM_HSIC] != 0) e = hsic_create(ctx, cfg, l);
  l->bytes += (size_t)(rsum_bytes(l->mode, 1, K) + rsum_bytes(l->mode, K, n) +
                       (l->rKK ? rsum_bytes(l->mode, K, K) : 0));
  e = imx_agree(ctx, e);
  if (!e && l->linalg == IMX_LINALG_SCALAPACK) e = scalapack_create(ctx, cfg, l);
  if (!e) e = imx_colmax(ctx, l->nloc, n, l->X, n, l->xmax);
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

static void forward(const imx_layer *l, double *out, int apply_phi);

/* theta from model.init and model.seed. Collective. */
static imx_err init_theta(imx_ctx *ctx, const imx_layer *l, const imx_config *cfg, double *theta) {
  int K = l->K, n = l->n;
  double *V = theta, *b = theta + (size_t)K * n;
  uint64_t seed = cfg->model.seed;
  for (int j = 0; j < K; j++) b[j] = cfg->model.init_bias * imx_rng_normal(seed, 2, (uint64_t)j);
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
      e = imx_fail(ctx, IMX_ERR_DATA, "model.init: %s holds a %lld x %lld array, need K x n = %d x %d",
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
      return imx_fail(ctx, IMX_ERR_DATA, "model.init: row %d of %s is zero (weight "
                      "normalization needs nonzero rows)", j, cfg->model.init);
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
  forward(l, l->A, 1);
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
}

/* a = phi(z) in place on rows x K (include/imx/activation.h). */
static void activate(const imx_layer *l, int64_t rows, double *Z) {
  imx_act_forward(&l->phi, rows, Z, l->actwork);
}

/* dL/dz from g = dL/da in place, for rows x K; A holds phi(z). */
static void activate_backward(const imx_layer *l, int64_t rows, const double *A, double *g) {
  imx_act_backward(&l->phi, rows, A, g);
}

/* Z = X W^T + 1 b^T over the local rows into out (nloc x K), then phi if asked. */
static void forward(const imx_layer *l, double *out, int apply_phi) {
  int K = l->K, n = l->n;
  int64_t rows = l->nloc, step = chunk(l);
  const double one = 1, zero = 0;
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    int c = (int)(r0 + step < rows ? step : rows - r0);
    double *Z = out + r0 * K;
    /* Row-major Z (c x K) = X_c W^T: column-major Z^T = W X_c^T. */
    dgemm_("T", "N", &K, &c, &n, &one, l->W, &n, l->X + r0 * n, &n, &zero, Z, &K);
    for (int i = 0; i < c; i++)
      for (int k = 0; k < K; k++) Z[(size_t)i * K + k] += l->b[k];
    if (apply_phi) activate(l, c, Z);
  }
}

imx_err imx_layer_forward(imx_ctx *ctx, imx_layer *l, const double *theta, imx_features which,
                          double *out) {
  imx_layer_weights(l, theta, l->W, l->b);
  if (which == IMX_FEAT_INPUT)
    return imx_fail(ctx, IMX_ERR_INTERNAL, "imx_layer_forward: the input is not an output");
  forward(l, out, which == IMX_FEAT_ACTIVATION);
  return IMX_OK;
}

static void fill_eval(const imx_layer *l, const double *terms, double loss, imx_eval *ev) {
  if (!ev) return;
  int K = l->K;
  /* Diagonal entries of C: strided in the replicated C, gathered in diag. */
  const double *dg = l->linalg == IMX_LINALG_SCALAPACK ? l->diag : l->C;
  size_t stride = l->linalg == IMX_LINALG_SCALAPACK ? 1 : (size_t)K + 1;
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
  if (l->linalg == IMX_LINALG_SCALAPACK) {
    ev->max_abs_corr = l->corr;
    return;
  }
  double rmax = 0;
  for (int j = 0; j < K; j++)
    for (int k = 0; k < j; k++) {
      double d = l->C[(size_t)j * K + j] * l->C[(size_t)k * K + k];
      double r = d > 0 ? fabs(l->C[(size_t)j * K + k]) / sqrt(d) : 0;
      rmax = r > rmax ? r : rmax;
    }
  ev->max_abs_corr = rmax;
}

int imx_layer_precond(const imx_layer *l, imx_precond *p, char *why, size_t len) {
  const char *no = NULL;
  for (int t = 0; t < IMX_NTERMS && !no; t++)
    if (t != IMX_TERM_ENTROPY && t != IMX_TERM_LOGDET && l->obj.w[t] != 0)
      no = "it is for entropy + logdet only (the ica preset)";
  if (!no && !l->ent) no = "the objective has no entropy term";
  if (!no && l->act != IMX_ACT_IDENTITY) no = "it needs identity units";
  if (!no && l->K != l->n) no = "it needs as many units as inputs (K = n)";
  if (!no && l->linalg != IMX_LINALG_REPLICATED) no = "it needs the replicated linalg backend";
  if (no) {
    snprintf(why, len, "%s", no);
    return 0;
  }
  *p = (imx_precond){.K = l->K, .wn = l->wn, .we = l->obj.w[IMX_TERM_ENTROPY],
                     .wl = l->obj.w[IMX_TERM_LOGDET]};
  return 1;
}

void imx_layer_precond_aux(const imx_layer *l, double *aux) {
  int K = l->K;
  imx_entropy_curvature(l->ent, 1.0 / (double)l->N, aux, aux + K, aux + 2 * K);
  for (int j = 0; j < K; j++) aux[3 * K + j] = l->C[(size_t)j * K + j] + l->obj.eps;
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

/* Identity units: C = WS W^T with WS = W S_x (column-major WS^T = S_x W^T),
 * kept for the gradient. Local. */
static void cov_from_Sx(imx_layer *l, double *WS) {
  int K = l->K, n = l->n;
  const double one = 1, zero = 0;
  dgemm_("N", "N", &n, &K, &n, &one, l->Sx, &n, l->W, &n, &zero, WS, &n);
  dgemm_("T", "N", &K, &K, &n, &one, l->W, &n, WS, &n, &zero, l->C, &K);
  imx_linalg_symmetrize_lower(K, l->C);
}

/* gW = beta gW + dL/dW of the moment terms, 2 G W S_x (C does not depend on b). Local. */
static void grad_from_Sx(imx_layer *l, const double *WS, double beta) {
  int K = l->K, n = l->n;
  const double two = 2;
  dgemm_("N", "N", &n, &K, &K, &two, WS, &n, l->G, &K, &beta, l->gW, &n);
}

static imx_err eval_moments_path(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS],
                                 double *value, int want_grad) {
  int K = l->K;
  imx_timer_start(IMX_T_FORWARD);
  cov_from_Sx(l, l->T);
  imx_timer_stop(IMX_T_FORWARD);
  imx_timer_start(IMX_T_LINALG);
  imx_err e = imx_objective_moments(ctx, &l->obj, K, l->C, l->G, l->work, terms, value);
  imx_timer_stop(IMX_T_LINALG);
  if (e || !want_grad) return e;
  imx_timer_start(IMX_T_BACKWARD);
  grad_from_Sx(l, l->T, 0);
  for (int j = 0; j < K; j++) l->gb[j] = 0;
  imx_timer_stop(IMX_T_BACKWARD);
  return IMX_OK;
}

/* The lse term: one value per local row, summed like a moment. */
static imx_err lse_value(imx_ctx *ctx, imx_layer *l, int64_t rows, double invN,
                         double terms[IMX_NTERMS], double *value) {
  imx_timer_start(IMX_T_MOMENTS);
  for (int64_t i = 0; i < rows; i++)
    l->rowv[i] = imx_objective_lse_row(l->K, l->A + i * l->K, NULL, 0);
  double s = 0;
  imx_err e = imx_moments_colsum(ctx, l->r1, l->block, rows, 1, l->rowv, 1, &s);
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
static imx_err reduce_gW(imx_ctx *ctx, imx_layer *l, int64_t rows, const double *dZ) {
  if (l->sparse)
    return imx_moments_atb_sparse(ctx, l->rKn, l->block, rows, l->K, dZ, l->K, l->n, l->X, l->n,
                                  l->xmax, SPARSE_DENSITY, l->gW);
  return imx_moments_atb(ctx, l->rKn, l->block, rows, l->K, dZ, l->K, l->n, l->X, l->n, l->xmax,
                         l->gW);
}

/* The supervised term on the outputs A (include/imx/supervised.h). */
static imx_err supervised_value(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS],
                                double *value) {
  imx_timer_start(IMX_T_MOMENTS);
  imx_err e = imx_supervised_value(ctx, l->sup, l->head, l->A, &terms[IMX_TERM_SUPERVISED]);
  imx_timer_stop(IMX_T_MOMENTS);
  if (!e) *value += l->obj.w[IMX_TERM_SUPERVISED] * terms[IMX_TERM_SUPERVISED];
  return e;
}

/* The per-sample terms of src/objective_*.c from the outputs A and the
 * centered outputs D. */
static imx_err nonlinear_value(imx_ctx *ctx, imx_layer *l, int64_t rows, double invN,
                               double terms[IMX_NTERMS], double *value) {
  imx_err e = IMX_OK;
  imx_timer_start(IMX_T_MOMENTS);
  if (l->ent) e = imx_entropy_value(ctx, l->ent, l->block, rows, l->D, invN, &terms[IMX_TERM_ENTROPY]);
  if (!e && l->ent) *value += l->obj.w[IMX_TERM_ENTROPY] * terms[IMX_TERM_ENTROPY];
  if (!e && l->hsic) e = imx_hsic_value(ctx, l->hsic, l->A, invN, &terms[IMX_TERM_HSIC]);
  if (!e && l->hsic) *value += l->obj.w[IMX_TERM_HSIC] * terms[IMX_TERM_HSIC];
  imx_timer_stop(IMX_T_MOMENTS);
  return e;
}

/* Their dL/dA added to T (c rows x K) for the local rows r0 .. r0 + c - 1. */
static void nonlinear_grad(imx_layer *l, int64_t r0, int c, double *T, double invN) {
  if (l->ent) imx_entropy_grad_rows(l->ent, r0, c, T, l->obj.w[IMX_TERM_ENTROPY] * invN);
  if (l->hsic) imx_hsic_grad_rows(l->hsic, l->A, r0, c, T, l->obj.w[IMX_TERM_HSIC], invN);
}

/* Both data paths begin here: A = phi(X W^T + b) for the local rows, the
 * means m (reduced) and the centered outputs D = A - m. Collective. */
static imx_err outputs_centered(imx_ctx *ctx, imx_layer *l, double invN) {
  int K = l->K;
  int64_t rows = l->nloc;
  imx_timer_start(IMX_T_FORWARD);
  forward(l, l->A, 1);
  imx_timer_stop(IMX_T_FORWARD);
  imx_timer_start(IMX_T_MOMENTS);
  imx_err e = IMX_OK;
  if (l->cov_from_Sx) { /* identity units: m = W mu_x + b, no pass over the rows */
    for (int k = 0; k < K; k++) {
      double s = 0;
      for (int i = 0; i < l->n; i++) s += l->W[(size_t)k * l->n + i] * l->mux[i];
      l->m[k] = s + l->b[k];
    }
  } else {
    e = imx_moments_colsum(ctx, l->rK, l->block, rows, K, l->A, K, l->m);
    for (int k = 0; !e && k < K; k++) l->m[k] *= invN;
  }
  if (!e) {
    for (int64_t i = 0; i < rows; i++)
      for (int k = 0; k < K; k++) l->D[i * K + k] = l->A[i * K + k] - l->m[k];
  }
  imx_timer_stop(IMX_T_MOMENTS);
  return e;
}

static imx_err eval_data_path(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS],
                              double *value, int want_grad) {
  int K = l->K;
  int64_t rows = l->nloc, step = chunk(l);
  double invN = 1.0 / (double)l->N;
  const double zero = 0;
  imx_err e = IMX_OK;

  double moment_value = 0;
  int cov = imx_objective_needs_cov(&l->obj);
  e = outputs_centered(ctx, l, invN);
  imx_timer_start(IMX_T_MOMENTS);
  if (!e && l->cov_from_Sx) {
    cov_from_Sx(l, l->T); /* T (>= n x K) is free: the backward pass below writes into D */
  } else if (!e) {
    e = imx_moments_atb(ctx, l->rKK, l->block, rows, K, l->D, K, K, l->D, K, NULL, l->C);
    for (size_t i = 0; i < (size_t)K * K; i++) l->C[i] *= invN;
  }
  imx_timer_stop(IMX_T_MOMENTS);
  if (e) return e;
  if (cov) {
    imx_timer_start(IMX_T_LINALG);
    e = imx_objective_moments(ctx, &l->obj, K, l->C, l->G, l->work, terms, &moment_value);
    imx_timer_stop(IMX_T_LINALG);
    if (e) return e;
  } else {
    for (size_t i = 0; i < (size_t)K * K; i++) l->G[i] = 0;
  }
  double wl = l->obj.w[IMX_TERM_LSE];
  if (wl != 0) IMX_TRY(lse_value(ctx, l, rows, invN, terms, &moment_value));
  if (l->sup) IMX_TRY(supervised_value(ctx, l, terms, &moment_value));
  IMX_TRY(nonlinear_value(ctx, l, rows, invN, terms, &moment_value));
  *value = moment_value;
  if (!want_grad) return IMX_OK;

  imx_timer_start(IMX_T_BACKWARD);
  /* dL/dA = (2/N) (A - m) G + per-sample terms, then through phi, into D. */
  double twoN = 2 * invN;
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    int c = (int)(r0 + step < rows ? step : rows - r0);
    double *Dc = l->D + r0 * K;
    /* dL/dA goes to T while the product reads D, else straight into D. */
    int gemm = cov && !l->cov_from_Sx;
    double *Tc = gemm ? l->T : Dc;
    if (gemm)
      dgemm_("N", "N", &K, &c, &K, &twoN, l->G, &K, Dc, &K, &zero, Tc, &K);
    else
      memset(Tc, 0, (size_t)c * K * sizeof *Tc);
    if (wl != 0)
      for (int i = 0; i < c; i++) imx_objective_lse_row(K, l->A + (r0 + i) * K, Tc + (size_t)i * K, wl * invN);
    if (l->sup)
      imx_supervised_backward_rows(l->sup, l->head, r0, c, l->obj.w[IMX_TERM_SUPERVISED], Tc);
    nonlinear_grad(l, r0, c, Tc, invN);
    activate_backward(l, c, l->A + r0 * K, Tc);
    if (gemm) memcpy(Dc, Tc, (size_t)c * K * sizeof *Dc);
  }
  imx_timer_stop(IMX_T_BACKWARD);
  imx_timer_start(IMX_T_REDUCE);
  e = reduce_gW(ctx, l, rows, l->D);
  if (!e) e = imx_moments_colsum(ctx, l->rK, l->block, rows, K, l->D, K, l->gb);
  if (!e && l->sup)
    e = imx_supervised_grad_head(ctx, l->sup, l->A, l->obj.w[IMX_TERM_SUPERVISED], l->ghead);
  if (!e && cov && l->cov_from_Sx) grad_from_Sx(l, l->T, 1);
  imx_timer_stop(IMX_T_REDUCE);
  return e;
}

/* The moment terms on the distributed C (scalapack backend): diag C, the
 * largest correlation, then L and G. Collective. */
static imx_err objective_dist(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS],
                              double *value) {
  IMX_TRY(imx_dmat_diag(ctx, l->dC, l->diag));
  IMX_TRY(imx_objective_dist_max_corr(ctx, l->dC, l->diag, &l->corr));
  return imx_objective_moments_dist(ctx, &l->obj, l->mode, l->dC, l->diag, l->dG, l->dM, l->inv,
                                    terms, value);
}

/* The moments path with C and G block-cyclic: each rank forms its own tiles
 * of C = (W S_x) W^T and sums its tiles' share of dL/dW = 2 G (W S_x). */
static imx_err eval_moments_dist(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS],
                                 double *value, int want_grad) {
  int K = l->K, n = l->n;
  const double one = 1, zero = 0;
  imx_timer_start(IMX_T_FORWARD);
  dgemm_("N", "N", &n, &K, &n, &one, l->Sx, &n, l->W, &n, &zero, l->T, &n);
  imx_dmoments_outer(l->dm, l->dC, l->T, l->W);
  imx_timer_stop(IMX_T_FORWARD);
  imx_timer_start(IMX_T_LINALG);
  imx_err e = objective_dist(ctx, l, terms, value);
  imx_timer_stop(IMX_T_LINALG);
  if (e || !want_grad) return e;
  imx_timer_start(IMX_T_BACKWARD);
  e = imx_dmoments_apply_replicated(ctx, l->dm, l->dG, l->T, 2, l->gW);
  for (int j = 0; j < K; j++) l->gb[j] = 0;
  imx_timer_stop(IMX_T_BACKWARD);
  return e;
}

/* The data path with C and G block-cyclic: partial sums of D^T D go from the
 * local rows straight to the owners of C's tiles; the backward pass applies
 * G to the local rows group by group of its columns. */
static imx_err eval_data_dist(imx_ctx *ctx, imx_layer *l, double terms[IMX_NTERMS],
                              double *value, int want_grad) {
  int K = l->K;
  int64_t rows = l->nloc, step = chunk(l);
  double invN = 1.0 / (double)l->N;
  imx_err e = IMX_OK;

  double moment_value = 0;
  int cov = imx_objective_needs_cov(&l->obj);
  e = outputs_centered(ctx, l, invN);
  imx_timer_start(IMX_T_MOMENTS);
  if (!e) {
    if (l->mode == IMX_RED_REPRODUCIBLE) e = imx_colmax(ctx, rows, K, l->D, K, l->dmax);
  }
  if (!e) e = imx_dmoments_gram(ctx, l->dm, l->block, rows, l->D, l->dmax, invN, l->dC);
  imx_timer_stop(IMX_T_MOMENTS);
  if (e) return e;
  imx_timer_start(IMX_T_LINALG);
  if (cov) {
    e = objective_dist(ctx, l, terms, &moment_value);
  } else { /* C still gives the collapse indicators */
    e = imx_dmat_diag(ctx, l->dC, l->diag);
    if (!e) e = imx_objective_dist_max_corr(ctx, l->dC, l->diag, &l->corr);
  }
  imx_timer_stop(IMX_T_LINALG);
  if (e) return e;
  double wl = l->obj.w[IMX_TERM_LSE];
  if (wl != 0) IMX_TRY(lse_value(ctx, l, rows, invN, terms, &moment_value));
  if (l->sup) IMX_TRY(supervised_value(ctx, l, terms, &moment_value));
  IMX_TRY(nonlinear_value(ctx, l, rows, invN, terms, &moment_value));
  *value = moment_value;
  if (!want_grad) return IMX_OK;

  imx_timer_start(IMX_T_BACKWARD);
  /* dL/dA = (2/N) (A - m) G + per-sample terms, then through phi, into Tb. */
  if (cov)
    e = imx_dmoments_apply_rows(ctx, l->dm, l->dG, step, rows, l->D, 2 * invN, l->Tb);
  else
    memset(l->Tb, 0, (size_t)rows * K * sizeof *l->Tb);
  for (int64_t r0 = 0; !e && r0 < rows; r0 += step) {
    int c = (int)(r0 + step < rows ? step : rows - r0);
    double *Tc = l->Tb + r0 * K;
    if (wl != 0)
      for (int i = 0; i < c; i++) imx_objective_lse_row(K, l->A + (r0 + i) * K, Tc + (size_t)i * K, wl * invN);
    if (l->sup)
      imx_supervised_backward_rows(l->sup, l->head, r0, c, l->obj.w[IMX_TERM_SUPERVISED], Tc);
    nonlinear_grad(l, r0, c, Tc, invN);
    activate_backward(l, c, l->A + r0 * K, Tc);
  }
  imx_timer_stop(IMX_T_BACKWARD);
  if (e) return e;
  imx_timer_start(IMX_T_REDUCE);
  e = reduce_gW(ctx, l, rows, l->Tb);
  if (!e) e = imx_moments_colsum(ctx, l->rK, l->block, rows, K, l->Tb, K, l->gb);
  if (!e && l->sup)
    e = imx_supervised_grad_head(ctx, l->sup, l->A, l->obj.w[IMX_TERM_SUPERVISED], l->ghead);
  imx_timer_stop(IMX_T_REDUCE);
  return e;
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
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_BAND, ctx->comm));
  /* A bit that differs anywhere is 0 in the AND of h or in the AND of ~h, so
   * every rank sees the difference and all of them take the broadcast. */
  if (v[0] != h || v[1] != ~h) {
    IMX_MPI(ctx, MPI_Bcast(f, 1, MPI_DOUBLE, 0, ctx->comm));
    IMX_MPI(ctx, MPI_Bcast(grad, np, MPI_DOUBLE, 0, ctx->comm));
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
  imx_err e;
  if (l->linalg == IMX_LINALG_SCALAPACK)
    e = l->moments_path ? eval_moments_dist(ctx, l, terms, &value, g)
                        : eval_data_dist(ctx, l, terms, &value, g);
  else
    e = l->moments_path ? eval_moments_path(ctx, l, terms, &value, g)
                        : eval_data_path(ctx, l, terms, &value, g);
  e = imx_agree(ctx, e);
  if (e) return e;
  if (l->obj.w[IMX_TERM_WEIGHT_REDUNDANCY] != 0) {
    if (!grad) memset(l->gW, 0, (size_t)K * n * sizeof *l->gW); /* value only: gW is scratch */
    terms[IMX_TERM_WEIGHT_REDUNDANCY] =
        l->linalg == IMX_LINALG_SCALAPACK
            ? imx_objective_weight_redundancy_rows(&l->obj, K, n, l->W, l->gW, l->work, WR_ROWS)
            : imx_objective_weight_redundancy(&l->obj, K, n, l->W, l->gW, l->work);
    value += l->obj.w[IMX_TERM_WEIGHT_REDUNDANCY] * terms[IMX_TERM_WEIGHT_REDUNDANCY];
  }
  if (!isfinite(value))
    return imx_fail(ctx, IMX_ERR_NUMERIC, "objective is %g (terms: logdet %g, offdiag %g, "
                    "variance %g, gaussian_tc %g, decorrelation %g, weight_redundancy %g, lse %g, "
                    "entropy %g, hsic %g)", value, terms[0], terms[1], terms[2], terms[3], terms[4],
                    terms[5], terms[6], terms[7], terms[8]);
  *f = value;
  fill_eval(l, terms, value, ev);
  if (!grad) return IMX_OK;
  if (l->wn) chain_weight_norm(l, l->gW);
  memcpy(grad, l->gW, (size_t)K * n * sizeof *grad);
  memcpy(grad + (size_t)K * n, l->gb, (size_t)K * sizeof *grad);
  if (l->sup)
    memcpy(grad + (size_t)K * n + K, l->ghead, (size_t)imx_supervised_nparams(l->sup) * sizeof *grad);
  if (l->mode == IMX_RED_FAST) IMX_TRY(same_on_all_ranks(ctx, f, grad, imx_layer_nparams(l)));
  return IMX_OK;
}
