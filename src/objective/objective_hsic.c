/* objective_hsic: HSIC between unit pairs with random Fourier features (see
 * include/imx/objective_hsic.h and docs/objectives.md). */
#include "imx/config.h"
#include "imx/objective_hsic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/blas.h"
#include "imx/rng.h"
#include "imx/rsum.h"
#include "imx/select.h"

/* Stream of the random frequencies (imx_rng), apart from data and weights.
 * (Stream 42 held the phases of the former cos(omega u + beta) features.) */
#define STREAM_OMEGA 41
/* Rows of the fixed subsample of the median heuristic. */
#define SUB_ROWS 200

struct imx_hsic {
  int K, D, KD, block; /* D features per unit: D/2 frequencies, a cos and a sin each */
  int64_t N, row0, rows, chunk;
  double factor;          /* objective.hsic_bandwidth */
  int have_sigma;         /* bandwidths set */
  double *omega;          /* K D/2: the frequencies, unit j's at j D/2 .. */
  double *sigma;          /* K bandwidths */
  double *F, *G;          /* K D x K D: feature covariance, dL/dF */
  double *mu;             /* K D: feature means */
  double *Phi, *dPhi, *Y; /* chunk x K D scratch: features, their derivatives, dL/dphi */
  imx_rsum *sS, *sm;      /* sums of phi phi^T (lower) and of phi */
};

double imx_hsic_bytes_needed(int K, int D, int64_t chunk, imx_reduction mode) {
  double kd = (double)K * D, bins = mode == IMX_RED_REPRODUCIBLE ? 3 : 1;
  /* F, G, the sum of phi phi^T (bins + scratch), the features' parameters and
   * the three feature blocks. */
  return (kd * kd * (2 + bins + 1) + kd * (4 + bins + 1) + 3 * (double)chunk * kd) * 8;
}

static imx_err fill(imx_ctx *ctx, imx_hsic *h, const imx_config *cfg) {
  size_t kd = (size_t)h->KD, nf = kd / 2;
  h->omega = malloc(nf * sizeof *h->omega);
  h->sigma = malloc((size_t)h->K * sizeof *h->sigma), h->mu = malloc(kd * sizeof *h->mu);
  h->F = malloc(kd * kd * sizeof *h->F), h->G = malloc(kd * kd * sizeof *h->G);
  h->Phi = malloc((size_t)h->chunk * kd * sizeof *h->Phi);
  h->dPhi = malloc((size_t)h->chunk * kd * sizeof *h->dPhi);
  h->Y = malloc((size_t)h->chunk * kd * sizeof *h->Y);
  if (!h->omega || !h->sigma || !h->mu || !h->F || !h->G || !h->Phi || !h->dPhi || !h->Y)
    return imx_fail(ctx, IMX_ERR_NOMEM, "hsic: K D = %d features need %.1f MiB", h->KD,
                    imx_hsic_bytes_needed(h->K, h->D, h->chunk, cfg->parallel.reduction) / 1048576);
  /* objective.hsic_seed_offset: other features, the same initial weights */
  uint64_t seed = cfg->model.seed + (uint64_t)cfg->objective.hsic_seed_offset;
  for (size_t i = 0; i < nf; i++) h->omega[i] = imx_rng_normal(seed, STREAM_OMEGA, i);
  IMX_TRY(imx_rsum_create(ctx, cfg->parallel.reduction, h->KD, h->KD, 1, &h->sS));
  return imx_rsum_create(ctx, cfg->parallel.reduction, 1, h->KD, 0, &h->sm);
}

imx_err imx_hsic_create(imx_ctx *ctx, const imx_config *cfg, int K, int64_t N, int64_t row0,
                        int64_t rows, int block, int64_t chunk, double avail, imx_hsic **out) {
  *out = NULL;
  int D = cfg->objective.hsic_features;
  if (D < 2 || D % 2)
    return imx_agree(ctx, imx_fail(ctx, IMX_ERR_CONFIG,
                                   "hsic: objective.hsic_features = %d, but the features come in "
                                   "(cos, sin) pairs: it needs an even number >= 2",
                                   D));
  double need = imx_hsic_bytes_needed(K, D, chunk, cfg->parallel.reduction);
  if (avail > 0 && need > 0.75 * avail)
    return imx_agree(ctx, imx_fail(ctx, IMX_ERR_CONFIG,
                                   "hsic: K D = %d x %d = %d random features need (K D)^2 "
                                   "matrices of %.1f MiB per rank, more than 3/4 of the %.1f MiB "
                                   "available; lower objective.hsic_features or model.units "
                                   "(or raise parallel.memory_mib if more memory is available)",
                                   K, D, K * D, need / 1048576, avail / 1048576));
  imx_hsic *h = calloc(1, sizeof *h);
  if (!h) return imx_agree(ctx, imx_fail(ctx, IMX_ERR_NOMEM, "hsic"));
  h->K = K, h->D = D, h->KD = K * D, h->block = block;
  h->N = N, h->row0 = row0, h->rows = rows, h->chunk = chunk > 0 ? chunk : 1;
  h->factor = cfg->objective.hsic_bandwidth;
  imx_err e = imx_agree(ctx, fill(ctx, h, cfg));
  if (e) {
    imx_hsic_free(&h);
    return e;
  }
  *out = h;
  return IMX_OK;
}

void imx_hsic_free(imx_hsic **hp) {
  if (!hp || !*hp) return;
  imx_hsic *h = *hp;
  free(h->omega), free(h->sigma), free(h->mu), free(h->F), free(h->G);
  free(h->Phi), free(h->dPhi), free(h->Y);
  imx_rsum_free(&h->sS), imx_rsum_free(&h->sm);
  free(h);
  *hp = NULL;
}

size_t imx_hsic_bytes(const imx_hsic *h) {
  return h ? (size_t)imx_hsic_bytes_needed(
                 h->K, h->D, h->chunk,
                 imx_rsum_reproducible(h->sS) ? IMX_RED_REPRODUCIBLE : IMX_RED_FAST)
           : 0;
}

const double *imx_hsic_bandwidths(const imx_hsic *h) { return h->sigma; }

/* sigma_j = factor * median |a_ij - a_i'j| over the pairs of the subsample
 * rows floor(s N / M), s < M = min(N, SUB_ROWS). Each rank contributes the
 * rows it owns to a zero buffer; the sum is exact (one nonzero per entry).
 * Collective. */
static imx_err bandwidths(imx_ctx *ctx, imx_hsic *h, const double *A) {
  int K = h->K, M = (int)(h->N < SUB_ROWS ? h->N : SUB_ROWS);
  if (h->factor < 0) {
    for (int j = 0; j < K; j++) h->sigma[j] = -h->factor;
    return IMX_OK;
  }
  size_t np = (size_t)M * (M - 1) / 2;
  double *S = calloc((size_t)M * K, sizeof *S), *p = malloc((np ? np : 1) * sizeof *p);
  if (!S || !p) {
    free(S), free(p);
    return imx_fail(ctx, IMX_ERR_NOMEM, "hsic: median heuristic on %d rows", M);
  }
  for (int s = 0; s < M; s++) {
    int64_t r = (int64_t)((double)s * (double)h->N / M) - h->row0;
    if (r >= 0 && r < h->rows) memcpy(S + (size_t)s * K, A + r * K, (size_t)K * sizeof *S);
  }
  imx_comm_sent(ctx, 8.0 * M * K, 1);
  int rc = MPI_Allreduce(MPI_IN_PLACE, S, M * K, MPI_DOUBLE, MPI_SUM, ctx->comm);
  for (int j = 0; rc == MPI_SUCCESS && j < K; j++) {
    size_t q = 0;
    for (int s = 0; s < M; s++)
      for (int t = 0; t < s; t++) p[q++] = fabs(S[(size_t)s * K + j] - S[(size_t)t * K + j]);
    /* the upper median (np is even only for M = 4k or 4k + 1 rows; either is fine) */
    double med = np ? imx_select_kth(p, (int64_t)np, (int64_t)(np / 2)) : 0;
    /* A constant unit has no spread: any bandwidth gives it zero HSIC. */
    h->sigma[j] = h->factor * (med > 0 ? med : 1);
  }
  free(S), free(p);
  if (rc != MPI_SUCCESS) return imx_fail(ctx, IMX_ERR_MPI, "hsic: median heuristic Allreduce");
  return IMX_OK;
}

/* Features of rows r0 .. r0 + c - 1 into Phi (c x K D): for unit j and
 * frequency m < D/2, phi_{j,2m} = sqrt(2/D) cos(omega_jm u) and phi_{j,2m+1}
 * = sqrt(2/D) sin(omega_jm u), u = a_j / sigma_j. With dPhi != NULL also
 * their derivatives d/da: -sqrt(2/D) omega_jm / sigma_j sin(.) and
 * +sqrt(2/D) omega_jm / sigma_j cos(.). */
static void features(const imx_hsic *h, const double *A, int64_t r0, int c, double *Phi,
                     double *dPhi) {
  int K = h->K, D = h->D, KD = h->KD, M = D / 2;
  double amp = sqrt(2.0 / D);
  for (int i = 0; i < c; i++) {
    const double *a = A + (r0 + i) * K;
    double *f = Phi + (size_t)i * KD, *df = dPhi ? dPhi + (size_t)i * KD : NULL;
    for (int j = 0; j < K; j++) {
      double u = a[j] / h->sigma[j], ds = amp / h->sigma[j];
      const double *w = h->omega + (size_t)j * M;
      for (int m = 0; m < M; m++) {
        int q = j * D + 2 * m;
        double arg = w[m] * u, co = cos(arg), si = sin(arg);
        f[q] = amp * co, f[q + 1] = amp * si;
        if (df) df[q] = -ds * w[m] * si, df[q + 1] = ds * w[m] * co;
      }
    }
  }
}

imx_err imx_hsic_set_bandwidths(imx_ctx *ctx, imx_hsic *h, const double *A) {
  IMX_TRY(bandwidths(ctx, h, A));
  h->have_sigma = 1;
  return IMX_OK;
}

imx_err imx_hsic_value(imx_ctx *ctx, imx_hsic *h, const double *A, double invN, double *value) {
  if (!h->have_sigma) IMX_TRY(imx_hsic_set_bandwidths(ctx, h, A));
  int KD = h->KD;
  int repro = imx_rsum_reproducible(h->sS);
  const double one = 1;
  /* |phi| <= sqrt(2/D): a block's partials are bounded by B 2/D. */
  double amp2 = 2.0 / h->D;
  int64_t part = repro ? h->block : (h->rows > 0 ? h->rows : 1);
  imx_rsum_begin(h->sS, (double)(repro ? h->block : 1) * amp2, NULL, NULL);
  imx_rsum_begin(h->sm, (double)(repro ? h->block : 1) * sqrt(amp2), NULL, NULL);
  double *wS = imx_rsum_work(h->sS), *wm = imx_rsum_work(h->sm);
  for (int64_t p0 = 0; p0 < h->rows; p0 += part) {
    int64_t p1 = p0 + part < h->rows ? p0 + part : h->rows;
    double beta = 0;
    for (int q = 0; q < KD; q++) wm[q] = 0;
    for (int64_t c0 = p0; c0 < p1; c0 += h->chunk) {
      int c = (int)(c0 + h->chunk < p1 ? h->chunk : p1 - c0);
      features(h, A, c0, c, h->Phi, NULL);
      /* Column-major upper of Phi^T Phi is the row-major lower triangle. */
      dsyrk_("U", "N", &KD, &c, &one, h->Phi, &KD, &beta, wS, &KD);
      beta = 1;
      for (int i = 0; i < c; i++)
        for (int q = 0; q < KD; q++) wm[q] += h->Phi[(size_t)i * KD + q];
    }
    imx_rsum_add(h->sS, wS, KD);
    imx_rsum_add(h->sm, wm, KD);
  }
  IMX_TRY(imx_rsum_end(ctx, h->sS, h->F));
  IMX_TRY(imx_rsum_end(ctx, h->sm, h->mu));
  int D = h->D;
  double s = 0;
  for (int q = 0; q < KD; q++) h->mu[q] *= invN;
  for (int q = 0; q < KD; q++)
    for (int r = 0; r < KD; r++) {
      size_t i = (size_t)q * KD + r;
      h->F[i] = h->F[i] * invN - h->mu[q] * h->mu[r];
      int off = q / D != r / D; /* an off-diagonal block: two different units */
      h->G[i] = off ? h->F[i] : 0;
      if (off) s += h->F[i] * h->F[i];
    }
  *value = 0.5 * s; /* every pair j < k appears twice in the full matrix */
  return IMX_OK;
}

void imx_hsic_grad_rows(imx_hsic *h, const double *A, int64_t r0, int c, double *g, double scale,
                        double invN) {
  int K = h->K, D = h->D, KD = h->KD;
  const double a2 = 2 * invN * scale, zero = 0;
  for (int c0 = 0; c0 < c; c0 += (int)h->chunk) {
    int cc = c0 + h->chunk < c ? (int)h->chunk : c - c0;
    features(h, A, r0 + c0, cc, h->Phi, h->dPhi);
    for (int i = 0; i < cc; i++)
      for (int q = 0; q < KD; q++) h->Phi[(size_t)i * KD + q] -= h->mu[q];
    /* Y (cc x KD, row-major) = a2 (Phi - mu) G: column-major Y^T = a2 G (Phi - mu)^T. */
    dgemm_("N", "N", &KD, &cc, &KD, &a2, h->G, &KD, h->Phi, &KD, &zero, h->Y, &KD);
    for (int i = 0; i < cc; i++) {
      const double *y = h->Y + (size_t)i * KD, *df = h->dPhi + (size_t)i * KD;
      double *gi = g + (size_t)(c0 + i) * K;
      for (int j = 0; j < K; j++) {
        double acc = 0;
        for (int d = 0; d < D; d++) acc += y[j * D + d] * df[j * D + d];
        gi[j] += acc;
      }
    }
  }
}
