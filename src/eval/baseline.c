/* baseline: fixed layers (trained, raw input, PCA, random hyperplanes,
 * k-means soft and triangle) and their forward pass (see include/imx/baseline.h). */
#include "imx/baseline.h"
#include "imx/config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/activation.h"
#include "imx/blas.h"
#include "imx/layer.h"
#include "imx/linalg.h"
#include "imx/metrics.h"
#include "imx/moments.h"
#include "imx/rng.h"
#include "imx/rsum.h"

const char *const imx_baseline_names[IMX_NBASELINES] = {
    "raw", "pca", "random", "kmeans", "kmeans-triangle", "gmm"};

void imx_fixed_clear(imx_fixed *f) {
  if (!f) return;
  free(f->W), free(f->b), free(f->centers), free(f->km.seeds), free(f->gmm);
  memset(f, 0, sizeof *f);
}

/* PCA: rows of W = eigenvectors of the K largest eigenvalues of S_x, largest
 * first; b = -W mu so that z = W (x - mu). Collective. */
static imx_err make_pca(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, imx_fixed *f) {
  int n = d->n, K = f->K;
  double *mu = malloc((size_t)n * sizeof *mu), *S = malloc((size_t)n * n * sizeof *S);
  double *lam = malloc((size_t)n * sizeof *lam);
  imx_err e = imx_agree(
      ctx, mu && S && lam ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "pca: %d x %d covariance", n, n));
  /* Mean mu and covariance S of the train split. */
  if (!e)
    e = imx_moments_covariance(ctx, cfg->parallel.reduction, d->block, d->N, d->nloc, n, d->X, mu,
                               S);
  /* Every rank holds the same S, so LAPACK gives every rank the same W. */
  if (!e) e = imx_agree(ctx, imx_linalg_eigh(ctx, n, S, lam));
  if (!e)
    for (int k = 0; k < K; k++) {
      const double *v = S + (size_t)(n - 1 - k) * n;
      double s = 0;
      for (int j = 0; j < n; j++) f->W[(size_t)k * n + j] = v[j], s += v[j] * mu[j];
      f->b[k] = -s;
    }
  free(mu), free(S), free(lam);
  return e;
}

void imx_baseline_random_rows(uint64_t seed, int K, int n, double *W) {
  for (int k = 0; k < K; k++) {
    double *w = W + (size_t)k * n, s = 0;
    for (int j = 0; j < n; j++) {
      w[j] = imx_rng_normal(seed, IMX_STREAM_RANDOM_HYPERPLANES, (uint64_t)k * n + j);
      s += w[j] * w[j];
    }
    for (int j = 0; j < n; j++) w[j] /= sqrt(s);
  }
}

/* Random unit hyperplanes through the origin. Local. */
static void make_random(const imx_config *cfg, imx_fixed *f) {
  imx_baseline_random_rows(cfg->model.seed, f->K, f->n, f->W);
  for (int k = 0; k < f->K; k++) f->b[k] = 0;
}

/* ---- k-means ---- */

/* A seed candidate: the key of a global row. */
typedef struct seed_key {
  uint64_t key;
  int64_t row;
} seed_key;

static int seed_cmp(const void *a, const void *b) {
  const seed_key *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return (x->row > y->row) - (x->row < y->row);
}

/* The K seed rows (smallest keys, in key order) into rows[K] and their
 * values into C (K x n): each rank offers its K smallest, all offers are
 * gathered and sorted the same way everywhere, and the owner of each chosen
 * row contributes it to a sum in which every other rank adds zeros (exact).
 * Collective. */
static imx_err kmeans_seed(imx_ctx *ctx, uint64_t seed, int K, const imx_data *d, int64_t *rows,
                           double *C) {
  int n = d->n, P = ctx->size;
  int64_t m = d->nloc;
  seed_key *loc = malloc((size_t)(m > K ? m : K) * sizeof *loc);
  seed_key *all = malloc((size_t)K * P * sizeof *all);
  imx_err e = imx_agree(
      ctx, loc && all ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "k-means seeds (%d x %d)", K, P));
  if (!e) {
    for (int64_t i = 0; i < m; i++)
      loc[i] = (seed_key){imx_rng_bits(seed, IMX_STREAM_KMEANS_SEEDS, (uint64_t)(d->row0 + i)),
                          d->row0 + i};
    qsort(loc, (size_t)m, sizeof *loc, seed_cmp);
    for (int64_t i = m; i < K; i++) loc[i] = (seed_key){UINT64_MAX, INT64_MAX}; /* no offer */
    int bytes = (int)(K * sizeof *loc);
    e = imx_agree(
        ctx, IMX_MPI_ERR(ctx, MPI_Allgather(loc, bytes, MPI_BYTE, all, bytes, MPI_BYTE, ctx->comm),
                         "MPI_Allgather (k-means seeds)"));
  }
  if (!e) {
    qsort(all, (size_t)K * P, sizeof *all, seed_cmp);
    memset(C, 0, (size_t)K * n * sizeof *C);
    for (int k = 0; k < K; k++) {
      rows[k] = all[k].row;
      int64_t i = all[k].row - d->row0;
      if (i >= 0 && i < m) memcpy(C + (size_t)k * n, d->X + i * n, (size_t)n * sizeof *C);
    }
    e = imx_agree(
        ctx, IMX_MPI_ERR(ctx, MPI_Allreduce(MPI_IN_PLACE, C, K * n, MPI_DOUBLE, MPI_SUM, ctx->comm),
                         "MPI_Allreduce (k-means seed rows)"));
  }
  free(loc), free(all);
  return e;
}

/* Nearest centers of the rows X (rows x n, one block) under C (K x n; cn:
 * halved squared norms), ties to the lowest k: a[i] and the squared distance
 * dist2[i]. G: rows x K scratch. Local. */
static void kmeans_assign(int K, int n, const double *C, const double *cn, const double *X,
                          int rows, double *G, int *a, double *dist2) {
  const double one = 1, zero = 0;
  /* Row-major G (rows x K) = X C^T is column-major G^T = C X^T. */
  dgemm_("T", "N", &K, &rows, &n, &one, C, &n, X, &n, &zero, G, &K);
  for (int i = 0; i < rows; i++) {
    const double *g = G + (size_t)i * K, *x = X + (size_t)i * n;
    int best = 0;
    double top = cn[0] - g[0];
    for (int k = 1; k < K; k++)
      if (cn[k] - g[k] < top) top = cn[k] - g[k], best = k;
    const double *c = C + (size_t)best * n;
    double s = 0;
    for (int j = 0; j < n; j++) s += (x[j] - c[j]) * (x[j] - c[j]);
    a[i] = best, dist2[i] = s;
  }
}

imx_err imx_baseline_kmeans(imx_ctx *ctx, imx_reduction mode, uint64_t seed, int K,
                            const imx_data *d, double *C, imx_kmeans_info *info) {
  int n = d->n, B = d->block, w = n + 2; /* a partial: K x (row sums, count, squared distances) */
  int64_t m = d->nloc;
  memset(info, 0, sizeof *info);
  if (K > d->N) /* the same on every rank */
    return imx_fail(ctx, IMX_ERR_DATA, "k-means baseline: K = %d centers but only %lld rows", K,
                    (long long)d->N);
  info->seeds = malloc((size_t)K * sizeof *info->seeds);
  int *a = malloc((size_t)(m ? m : 1) * sizeof *a), *na = malloc((size_t)B * sizeof *na);
  double *G = malloc((size_t)B * K * sizeof *G), *d2 = malloc((size_t)B * sizeof *d2);
  double *cn = malloc((size_t)K * sizeof *cn), *v = calloc((size_t)w, sizeof *v);
  double *tot = malloc((size_t)K * w * sizeof *tot);
  imx_rsum *s = NULL;
  imx_err e = info->seeds && a && na && G && d2 && cn && v && tot
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "k-means: %d centers x %d", K, n);
  e = imx_agree(ctx, e);
  if (!e) e = imx_agree(ctx, imx_rsum_create(ctx, mode, K, w, 0, &s));
  if (!e) e = kmeans_seed(ctx, seed, K, d, info->seeds, C);
  /* Bounds of a block's partial: B max|x_j|, B rows, B (2 max ||x||)^2 (a
   * center is a mean of rows, so ||x - c|| <= 2 max ||x||). */
  if (!e) e = imx_colmax(ctx, m, n, d->X, n, v);
  if (!e) {
    double r2 = 0;
    for (int64_t i = 0; i < m; i++) {
      double q = 0;
      for (int j = 0; j < n; j++) q += d->X[i * n + j] * d->X[i * n + j];
      if (q > r2) r2 = q;
    }
    e = imx_agree(
        ctx, IMX_MPI_ERR(ctx, MPI_Allreduce(MPI_IN_PLACE, &r2, 1, MPI_DOUBLE, MPI_MAX, ctx->comm),
                         "MPI_Allreduce (k-means: largest row norm)"));
    v[n] = 1, v[n + 1] = 4.5 * r2;
  }
  int64_t step = mode == IMX_RED_REPRODUCIBLE ? B : (m > 0 ? m : 1);
  for (int it = 0; !e; it++) {
    for (int k = 0; k < K; k++) {
      double q = 0;
      for (int j = 0; j < n; j++) q += C[(size_t)k * n + j] * C[(size_t)k * n + j];
      cn[k] = 0.5 * q;
    }
    /* Assign every row, and sum per cluster: one partial per block
     * (reproducible) or per rank (fast). */
    long long changed = 0;
    imx_rsum_begin(s, (double)B, NULL, v);
    double *part = imx_rsum_work(s);
    for (int64_t r0 = 0; r0 < m; r0 += step) {
      int64_t r1 = r0 + step < m ? r0 + step : m;
      memset(part, 0, (size_t)K * w * sizeof *part);
      for (int64_t b0 = r0; b0 < r1; b0 += B) { /* the products on whole blocks, as for any P */
        int rows = (int)((b0 + B < r1 ? b0 + B : r1) - b0);
        kmeans_assign(K, n, C, cn, d->X + b0 * n, rows, G, na, d2);
        for (int i = 0; i < rows; i++) {
          double *p = part + (size_t)na[i] * w;
          const double *x = d->X + (b0 + i) * n;
          for (int j = 0; j < n; j++) p[j] += x[j];
          p[n] += 1, p[n + 1] += d2[i];
          changed += it == 0 || a[b0 + i] != na[i];
          a[b0 + i] = na[i];
        }
      }
      imx_rsum_add(s, part, w);
    }
    e = imx_rsum_end(ctx, s, tot);
    if (!e)
      e = IMX_MPI_ERR(ctx,
                      MPI_Allreduce(MPI_IN_PLACE, &changed, 1, MPI_LONG_LONG, MPI_SUM, ctx->comm),
                      "MPI_Allreduce (k-means: changed assignments)");
    e = imx_agree(ctx, e);
    if (e) break;
    info->converged = it > 0 && changed == 0;
    if (info->converged || it == IMX_KMEANS_MAX_IT) break;
    /* Each center to the mean of its rows; an empty cluster keeps its center. */
    for (int k = 0; k < K; k++) {
      double cnt = tot[(size_t)k * w + n];
      for (int j = 0; cnt > 0 && j < n; j++) C[(size_t)k * n + j] = tot[(size_t)k * w + j] / cnt;
    }
    info->iterations++;
  }
  if (!e) {
    double sse = 0;
    for (int k = 0; k < K; k++) {
      sse += tot[(size_t)k * w + n + 1];
      info->empty += tot[(size_t)k * w + n] == 0;
    }
    info->inertia = sse / (double)d->N;
    info->s2 = info->inertia;
  }
  imx_rsum_free(&s);
  free(a), free(na), free(G), free(d2), free(cn), free(v), free(tot);
  if (e) free(info->seeds), info->seeds = NULL;
  return e;
}

/* The kmeans column: Lloyd's centers and their soft assignments as a fixed
 * softmax layer with tau = 1: z_k = (||c_k||^2 / 2 - c_k . x) / s^2
 * (s^2 = 1 if every row sits on its center). Collective. */
static imx_err make_kmeans(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, imx_fixed *f) {
  int K = f->K, n = f->n;
  f->centers = malloc((size_t)K * n * sizeof *f->centers);
  IMX_TRY(imx_agree(
      ctx, f->centers ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "k-means: %d x %d centers", K, n)));
  IMX_TRY(
      imx_baseline_kmeans(ctx, cfg->parallel.reduction, cfg->model.seed, K, d, f->centers, &f->km));
  double s2 = f->km.s2 > 0 ? f->km.s2 : 1;
  for (int k = 0; k < K; k++) {
    const double *c = f->centers + (size_t)k * n;
    double q = 0;
    for (int j = 0; j < n; j++) f->W[(size_t)k * n + j] = -c[j] / s2, q += c[j] * c[j];
    f->b[k] = 0.5 * q / s2;
  }
  return IMX_OK;
}

imx_err imx_baseline_triangle(imx_ctx *ctx, const imx_fixed *km, imx_fixed *out) {
  int K = km->K, n = km->n;
  *out = *km;
  out->act = IMX_ACT_RELU, out->triangle = 1;
  out->W = malloc((size_t)K * n * sizeof *out->W), out->b = malloc((size_t)K * sizeof *out->b);
  out->centers = malloc((size_t)K * n * sizeof *out->centers);
  out->km.seeds = malloc((size_t)K * sizeof *out->km.seeds);
  imx_err e = out->W && out->b && out->centers && out->km.seeds && km->centers
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "kmeans-triangle: %d x %d centers", K, n);
  e = imx_agree(ctx, e);
  if (e) {
    imx_fixed_clear(out);
    return e;
  }
  memcpy(out->W, km->W, (size_t)K * n * sizeof *out->W);
  memcpy(out->b, km->b, (size_t)K * sizeof *out->b);
  memcpy(out->centers, km->centers, (size_t)K * n * sizeof *out->centers);
  memcpy(out->km.seeds, km->km.seeds, (size_t)K * sizeof *out->km.seeds);
  return IMX_OK;
}

/* Triangle features of the rows X (rows x n, one block) into Z (z_k = mean_j
 * d_j - d_k) and A (relu(z)), d_k = ||x - c_k|| from ||x||^2 - 2 c_k . x +
 * ||c_k||^2 (clamped at 0). cn: squared center norms. Local. */
static void triangle_rows(int K, int n, const double *C, const double *cn, const double *X,
                          int rows, double *Z, double *A) {
  const double one = 1, zero = 0;
  dgemm_("T", "N", &K, &rows, &n, &one, C, &n, X, &n, &zero, Z, &K);
  for (int i = 0; i < rows; i++) {
    const double *x = X + (size_t)i * n;
    double *z = Z + (size_t)i * K, xx = 0, mean = 0;
    for (int j = 0; j < n; j++) xx += x[j] * x[j];
    for (int k = 0; k < K; k++) {
      double q = xx - 2 * z[k] + cn[k];
      z[k] = sqrt(q > 0 ? q : 0);
      mean += z[k];
    }
    mean /= K;
    for (int k = 0; k < K; k++) {
      z[k] = mean - z[k];
      A[(size_t)i * K + k] = z[k] > 0 ? z[k] : 0;
    }
  }
}

imx_err imx_baseline_winner_means(imx_ctx *ctx, imx_reduction mode, int K, imx_activation act,
                                  const double *A, const imx_data *d, double *P, double *count) {
  int n = d->n, B = d->block, w = n + 1;
  int64_t m = d->nloc;
  double *v = calloc((size_t)w, sizeof *v), *tot = malloc((size_t)K * w * sizeof *tot);
  imx_rsum *s = NULL;
  imx_err e = imx_agree(
      ctx, v && tot ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "winner means: %d x %d", K, n));
  if (!e) e = imx_agree(ctx, imx_rsum_create(ctx, mode, K, w, 0, &s));
  if (!e) e = imx_colmax(ctx, m, n, d->X, n, v);
  if (!e) {
    v[n] = 1;
    imx_rsum_begin(s, (double)B, NULL, v);
    double *part = imx_rsum_work(s);
    int64_t step = mode == IMX_RED_REPRODUCIBLE ? B : (m > 0 ? m : 1);
    for (int64_t r0 = 0; r0 < m; r0 += step) {
      int64_t r1 = r0 + step < m ? r0 + step : m;
      memset(part, 0, (size_t)K * w * sizeof *part);
      for (int64_t i = r0; i < r1; i++) {
        double *p = part + (size_t)imx_metrics_winner(act, K, A + i * K) * w;
        for (int j = 0; j < n; j++) p[j] += d->X[i * n + j];
        p[n] += 1;
      }
      imx_rsum_add(s, part, w);
    }
    e = imx_rsum_end(ctx, s, tot);
  }
  for (int k = 0; !e && k < K; k++) {
    count[k] = tot[(size_t)k * w + n];
    for (int j = 0; j < n; j++)
      P[(size_t)k * n + j] = count[k] > 0 ? tot[(size_t)k * w + j] / count[k] : 0;
  }
  imx_rsum_free(&s);
  free(v), free(tot);
  return e;
}

void imx_baseline_match(int K, int n, const double *P, const double *count, int C,
                        const double *truth, int *matched, double *mean, double *max,
                        double *separation) {
  double *D = malloc((size_t)K * C * sizeof *D);
  char *used = calloc((size_t)(K + C), 1);
  *matched = 0, *mean = *max = *separation = NAN;
  if (!D || !used) {
    free(D), free(used);
    return;
  }
  for (int k = 0; k < K; k++)
    for (int c = 0; c < C; c++) {
      double q = 0;
      for (int j = 0; j < n; j++) {
        double t = P[(size_t)k * n + j] - truth[(size_t)c * n + j];
        q += t * t;
      }
      D[(size_t)k * C + c] = count[k] > 0 ? sqrt(q) : INFINITY;
    }
  double sum = 0, top = 0;
  for (;;) { /* the closest unmatched pair, first in (k, c) order on ties */
    int bk = -1, bc = -1;
    for (int k = 0; k < K; k++)
      for (int c = 0; !used[k] && c < C; c++)
        if (!used[K + c] && isfinite(D[(size_t)k * C + c]) &&
            (bk < 0 || D[(size_t)k * C + c] < D[(size_t)bk * C + bc]))
          bk = k, bc = c;
    if (bk < 0) break;
    used[bk] = used[K + bc] = 1;
    double t = D[(size_t)bk * C + bc];
    sum += t, top = t > top ? t : top, (*matched)++;
  }
  if (*matched) *mean = sum / *matched, *max = top;
  double sep = 0;
  for (int c = 0; c < C; c++)
    for (int e = c + 1; e < C; e++) {
      double q = 0;
      for (int j = 0; j < n; j++) {
        double t = truth[(size_t)c * n + j] - truth[(size_t)e * n + j];
        q += t * t;
      }
      sep += sqrt(q);
    }
  if (C > 1) *separation = sep / (0.5 * C * (C - 1));
  free(D), free(used);
}

/* ---- GMM-EM with diagonal covariances ---- */

/* z = -log(pi_k N(x; mu_k, diag(v_k))) of the rows X (rows x n, one block)
 * into Z and, if A, r = softmax(-z) into A (Z may be Q). g: 1/v_kj (K x n)
 * then c_k = log pi_k - sum_j (log(2 pi v_kj) + mu_kj^2 / v_kj) / 2 (K);
 * W = -mu_kj / v_kj (K x n). XX: rows x n and Q: rows x K scratch. Local. */
static void gmm_rows(int K, int n, const double *g, const double *W, const double *X, int rows,
                     double *XX, double *Q, double *Z, double *A) {
  const double mone = -1, one = 1, zero = 0, mhalf = -0.5;
  for (size_t i = 0; i < (size_t)rows * n; i++) XX[i] = X[i] * X[i];
  /* Row-major Q (rows x K) = -XX V^T / 2 - X W^T: column-major Q^T. */
  dgemm_("T", "N", &K, &rows, &n, &mhalf, g, &n, XX, &n, &zero, Q, &K);
  dgemm_("T", "N", &K, &rows, &n, &mone, W, &n, X, &n, &one, Q, &K);
  const double *c = g + (size_t)K * n;
  for (int i = 0; i < rows; i++) {
    double *q = Q + (size_t)i * K, top = -INFINITY, s = 0;
    for (int k = 0; k < K; k++) {
      q[k] += c[k]; /* log pi_k p_k(x) */
      if (q[k] > top) top = q[k];
    }
    for (int k = 0; k < K; k++) s += exp(q[k] - top);
    for (int k = 0; k < K; k++) {
      if (A) A[(size_t)i * K + k] = exp(q[k] - top) / s;
      Z[(size_t)i * K + k] = -q[k];
    }
  }
}

/* The tables of gmm_rows (g and W, b = -c) from means mu (K x n), variances v
 * (K x n) and weights pi (K). Local. */
static void gmm_tables(int K, int n, const double *mu, const double *v, const double *pi, double *g,
                       double *W, double *b) {
  for (int k = 0; k < K; k++) {
    double c = log(pi[k]);
    for (int j = 0; j < n; j++) {
      size_t kj = (size_t)k * n + j;
      g[kj] = 1 / v[kj];
      W[kj] = -mu[kj] / v[kj];
      c -= 0.5 * (log(6.283185307179586 * v[kj]) + mu[kj] * mu[kj] / v[kj]);
    }
    g[(size_t)K * n + k] = c, b[k] = -c;
  }
}

imx_err imx_baseline_gmm(imx_ctx *ctx, const imx_config *cfg, const imx_fixed *km,
                         const imx_data *d, imx_fixed *out) {
  int K = km->K, n = d->n, B = d->block, w = 2 * n + 1; /* partial: K x (r x, r x^2, r) */
  int64_t m = d->nloc;
  imx_reduction mode = cfg->parallel.reduction;
  memset(out, 0, sizeof *out);
  out->K = K, out->n = n, out->act = IMX_ACT_SOFTMAX, out->tau = 1, out->km = km->km;
  out->km.seeds = NULL;
  out->W = malloc((size_t)K * n * sizeof *out->W), out->b = malloc((size_t)K * sizeof *out->b);
  out->centers = malloc((size_t)K * n * sizeof *out->centers);
  out->gmm = malloc(((size_t)K * n + K) * sizeof *out->gmm);
  out->km.seeds = malloc((size_t)K * sizeof *out->km.seeds);
  double *v = malloc((size_t)K * n * sizeof *v), *pi = malloc((size_t)K * sizeof *pi);
  double *bound = calloc((size_t)w, sizeof *bound);
  double *XX = malloc((size_t)B * n * sizeof *XX), *Q = malloc((size_t)B * K * sizeof *Q);
  double *R = malloc((size_t)B * K * sizeof *R), *tot = malloc((size_t)K * w * sizeof *tot);
  imx_rsum *s = NULL;
  imx_err e = out->W && out->b && out->centers && out->gmm && out->km.seeds && v && pi && bound &&
                      XX && Q && R && tot && km->centers
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "gmm: %d components x %d", K, n);
  e = imx_agree(ctx, e);
  if (!e) e = imx_agree(ctx, imx_rsum_create(ctx, mode, K, w, 0, &s));
  if (!e) e = imx_colmax(ctx, m, n, d->X, n, bound);
  /* Start: the k-means centers, every variance s^2 / n, equal weights. */
  double s2 = km->km.s2 > 0 ? km->km.s2 / n : 1, floor = IMX_GMM_VAR_FLOOR * s2;
  if (!e) {
    memcpy(out->km.seeds, km->km.seeds, (size_t)K * sizeof *out->km.seeds);
    memcpy(out->centers, km->centers, (size_t)K * n * sizeof *out->centers);
    for (int j = 0; j < n; j++) bound[n + j] = bound[j] * bound[j];
    bound[2 * n] = 1;
    for (int k = 0; k < K; k++) {
      pi[k] = 1.0 / K;
      for (int j = 0; j < n; j++) v[(size_t)k * n + j] = s2;
    }
  }
  const double one = 1;
  int64_t step = mode == IMX_RED_REPRODUCIBLE ? B : (m > 0 ? m : 1);
  for (int it = 0; !e && it < IMX_GMM_IT; it++) {
    gmm_tables(K, n, out->centers, v, pi, out->gmm, out->W, out->b);
    imx_rsum_begin(s, (double)B, NULL, bound);
    double *part = imx_rsum_work(s);
    for (int64_t r0 = 0; r0 < m; r0 += step) {
      int64_t r1 = r0 + step < m ? r0 + step : m;
      memset(part, 0, (size_t)K * w * sizeof *part);
      for (int64_t b0 = r0; b0 < r1; b0 += B) { /* E-step on whole blocks, as for any P */
        int rows = (int)((b0 + B < r1 ? b0 + B : r1) - b0);
        const double *X = d->X + b0 * n;
        gmm_rows(K, n, out->gmm, out->W, X, rows, XX, Q, Q, R);
        /* part[:, 0:n] += R^T X, part[:, n:2n] += R^T XX (column-major: X^T R). */
        dgemm_("N", "T", &n, &K, &rows, &one, X, &n, R, &K, &one, part, &w);
        dgemm_("N", "T", &n, &K, &rows, &one, XX, &n, R, &K, &one, part + n, &w);
        for (int i = 0; i < rows; i++)
          for (int k = 0; k < K; k++) part[(size_t)k * w + 2 * n] += R[(size_t)i * K + k];
      }
      imx_rsum_add(s, part, w);
    }
    e = imx_agree(ctx, imx_rsum_end(ctx, s, tot));
    /* M-step; a component without weight keeps its parameters. */
    for (int k = 0; !e && k < K; k++) {
      double Nk = tot[(size_t)k * w + 2 * n];
      if (!(Nk > 0)) continue;
      pi[k] = Nk / (double)d->N;
      for (int j = 0; j < n; j++) {
        double mu = tot[(size_t)k * w + j] / Nk, var = tot[(size_t)k * w + n + j] / Nk - mu * mu;
        out->centers[(size_t)k * n + j] = mu;
        v[(size_t)k * n + j] = (var > 0 ? var : 0) + floor;
      }
    }
    if (!e) out->gmm_it++;
  }
  /* The final tables; W x + b is the part of z linear in x (the weight measures see it). */
  if (!e) gmm_tables(K, n, out->centers, v, pi, out->gmm, out->W, out->b);
  imx_rsum_free(&s);
  free(v), free(pi), free(bound), free(XX), free(Q), free(R), free(tot);
  if (e) imx_fixed_clear(out);
  return e;
}

imx_err imx_baseline_make(imx_ctx *ctx, const imx_config *cfg, imx_baseline_kind kind,
                          const imx_data *train, imx_fixed *out) {
  memset(out, 0, sizeof *out);
  int n = train->n, K = cfg->model.units;
  out->n = n, out->tau = cfg->model.temperature;
  if (kind == IMX_BASE_RAW) {
    out->K = n, out->act = IMX_ACT_IDENTITY;
    return IMX_OK;
  }
  out->K = kind == IMX_BASE_PCA && K > n ? n : K;
  out->act = kind == IMX_BASE_PCA ? IMX_ACT_IDENTITY : cfg->model.activation;
  if (kind == IMX_BASE_KMEANS) out->act = IMX_ACT_SOFTMAX, out->tau = 1;
  out->W = malloc((size_t)out->K * n * sizeof *out->W);
  out->b = malloc((size_t)out->K * sizeof *out->b);
  imx_err e = out->W && out->b ? IMX_OK
                               : imx_fail(ctx, IMX_ERR_NOMEM, "%s baseline: %d x %d weights",
                                          imx_baseline_names[kind], out->K, n);
  e = imx_agree(ctx, e);
  if (!e && kind == IMX_BASE_PCA) e = make_pca(ctx, cfg, train, out);
  if (!e && kind == IMX_BASE_RANDOM) make_random(cfg, out);
  if (!e && kind == IMX_BASE_KMEANS) e = make_kmeans(ctx, cfg, train, out);
  if (!e && (kind == IMX_BASE_KMEANS_TRIANGLE || kind == IMX_BASE_GMM))
    e = imx_fail(ctx, IMX_ERR_INTERNAL,
                 "%s is made from kmeans (imx_baseline_triangle, imx_baseline_gmm)",
                 imx_baseline_names[kind]);
  if (e) imx_fixed_clear(out);
  return e;
}

imx_err imx_fixed_outputs(imx_ctx *ctx, const imx_config *cfg, const imx_fixed *f,
                          const imx_data *d, double **Z, double **A) {
  *Z = *A = NULL;
  int K = f->K, n = d->n;
  size_t rows = (size_t)(d->nloc ? d->nloc : 1);
  int need_z = f->W && f->act != IMX_ACT_IDENTITY;
  double *a = malloc(rows * K * sizeof *a), *z = need_z ? malloc(rows * K * sizeof *z) : NULL;
  imx_err e = a && (z || !need_z) ? IMX_OK
                                  : imx_fail(ctx, IMX_ERR_NOMEM, "outputs: %lld rows x %d features",
                                             (long long)d->nloc, K);
  if (!e && !f->W && K != n)
    e = imx_fail(ctx, IMX_ERR_INTERNAL, "raw features: K=%d but the data have n=%d", K, n);
  e = imx_agree(ctx, e);
  if (!e && !f->W) memcpy(a, d->X, (size_t)d->nloc * n * sizeof *a);
  if (!e && f->triangle) { /* not a layer: the distances directly, block by block */
    double *cn = malloc((size_t)K * sizeof *cn);
    e = imx_agree(ctx, cn ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "center norms (%d)", K));
    for (int k = 0; !e && k < K; k++) {
      double q = 0;
      for (int j = 0; j < n; j++)
        q += f->centers[(size_t)k * n + j] * f->centers[(size_t)k * n + j];
      cn[k] = q;
    }
    for (int64_t r0 = 0; !e && r0 < d->nloc; r0 += d->block) {
      int rows = (int)(r0 + d->block < d->nloc ? d->block : d->nloc - r0);
      triangle_rows(K, n, f->centers, cn, d->X + r0 * n, rows, z + r0 * K, a + r0 * K);
    }
    free(cn);
  } else if (!e && f->gmm) { /* not a layer either: the log densities */
    double *XX = malloc((size_t)d->block * n * sizeof *XX);
    e = imx_agree(ctx,
                  XX ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "gmm outputs (%d x %d)", d->block, n));
    for (int64_t r0 = 0; !e && r0 < d->nloc; r0 += d->block) {
      int rows = (int)(r0 + d->block < d->nloc ? d->block : d->nloc - r0);
      gmm_rows(K, n, f->gmm, f->W, d->X + r0 * n, rows, XX, z + r0 * K, z + r0 * K, a + r0 * K);
    }
    free(XX);
  } else if (!e && f->W) {
    /* A layer for the forward pass only: no weight normalization (W is used
     * as given), the data path, and an objective that every model accepts. */
    imx_config c = *cfg;
    c.model.units = K, c.model.activation = f->act, c.model.temperature = f->tau;
    c.model.weight_norm = 0;
    snprintf(c.objective.preset, sizeof c.objective.preset, "none");
    for (int t = 0; t < IMX_NTERMS; t++) c.objective.weight[t] = t == IMX_TERM_VARIANCE;
    c.objective.extended_every = 0; /* no entropy term here to switch */
    c.parallel.path = IMX_PATH_DATA;
    c.parallel.linalg = IMX_LINALG_REPLICATED;
    imx_layer *l = NULL;
    double *theta = malloc(((size_t)K * n + K) * sizeof *theta);
    e = imx_agree(ctx, theta ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "parameters (%d x %d)", K, n));
    if (!e) e = imx_layer_create(ctx, &c, d, &l);
    if (!e) imx_layer_biases_as_given(l);
    if (!e) {
      memcpy(theta, f->W, (size_t)K * n * sizeof *theta);
      memcpy(theta + (size_t)K * n, f->b, (size_t)K * sizeof *theta);
      if (z) e = imx_layer_forward(ctx, l, theta, IMX_FEAT_Z, z);
      if (!e) e = imx_layer_forward(ctx, l, theta, IMX_FEAT_ACTIVATION, a);
      e = imx_agree(ctx, e);
    }
    imx_layer_free(&l);
    free(theta);
  }
  if (e) {
    free(a), free(z);
    return e;
  }
  *Z = z, *A = a;
  return IMX_OK;
}

imx_err imx_fixed_feed(imx_ctx *ctx, const imx_config *cfg, const imx_fixed *f, imx_data *x) {
  if (!x) return IMX_OK;
  double *Z = NULL, *A = NULL;
  IMX_TRY(imx_fixed_outputs(ctx, cfg, f, x, &Z, &A));
  if (cfg->model.feed != IMX_FEED_ACTIVATION && Z) free(A), A = Z, Z = NULL;
  if (cfg->model.feed == IMX_FEED_R) { /* r = softmax(-z/tau), whatever phi is */
    imx_act r = {.kind = IMX_ACT_SOFTMAX, .tau = f->tau, .k = 0, .K = f->K};
    imx_act_forward(&r, x->nloc, A, NULL);
  }
  free(Z), free(x->X);
  x->X = A, x->n = f->K;
  free(x->truth), x->truth = NULL;
  return IMX_OK;
}
