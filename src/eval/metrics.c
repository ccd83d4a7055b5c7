/* metrics: measures of a trained layer (see include/imx/metrics.h). */
#include "imx/config.h"
#include "imx/metrics.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "imx/activation.h"
#include "imx/baseline.h"
#include "imx/blas.h"
#include "imx/linalg.h"
#include "imx/moments.h"
#include "imx/rsum.h"

void imx_metrics_init(imx_metrics *m) {
  memset(m, 0, sizeof *m);
  m->winner_entropy_bits = m->max_abs_corr = m->mean_abs_corr = NAN;
  m->gaussian_tc = m->effective_rank = m->weight_redundancy = m->amari = NAN;
  m->sign_entropy_mean = m->sign_entropy_min = NAN;
  m->random_regions = -1;
}

void imx_metrics_clear(imx_metrics *m) {
  if (!m) return;
  free(m->winners), free(m->corr), free(m->eigenvalues), free(m->sign_entropy);
  imx_metrics_init(m);
}

/* ---- moments: dead units, correlations, total correlation, effective rank ---- */

void imx_metrics_spectrum(int K, const double *w, imx_metrics *m) {
  double tr = 0, h = 0;
  for (int k = 0; k < K; k++) m->eigenvalues[k] = w[K - 1 - k], tr += w[k] > 0 ? w[k] : 0;
  for (int k = 0; k < K; k++)
    if (w[k] > 0 && tr > 0) h -= w[k] / tr * log(w[k] / tr);
  m->effective_rank = tr > 0 ? exp(h) : NAN;
}

/* Dead units, correlations of the live ones, their total correlation, and
 * the effective rank, from the replicated C. Local (the same bits on every
 * rank). */
static imx_err from_covariance(imx_ctx *ctx, imx_activation act, int K, const double *C,
                               imx_metrics *m) {
  double mean = 0;
  for (int j = 0; j < K; j++) mean += C[(size_t)j * K + j] / K;
  int *live = malloc((size_t)K * sizeof *live);
  double *M = malloc((size_t)K * K * sizeof *M), *w = malloc((size_t)K * sizeof *w);
  m->corr = calloc((size_t)K * K, sizeof *m->corr);
  m->eigenvalues = malloc((size_t)K * sizeof *m->eigenvalues);
  if (!live || !M || !w || !m->corr || !m->eigenvalues) {
    free(live), free(M), free(w);
    return imx_fail(ctx, IMX_ERR_NOMEM, "measures: correlations of K=%d units", K);
  }
  int L = 0;
  for (int j = 0; j < K; j++)
    if (C[(size_t)j * K + j] > 1e-12 * mean && C[(size_t)j * K + j] > 0) live[L++] = j;
  m->dead_units = K - L;

  /* Correlations of the live units; M holds R restricted to them (L x L). */
  double rmax = 0, rsum = 0;
  for (int a = 0; a < L; a++) {
    int j = live[a];
    for (int c = 0; c < L; c++) {
      int k = live[c];
      double r = C[(size_t)j * K + k] / sqrt(C[(size_t)j * K + j] * C[(size_t)k * K + k]);
      if (j == k) r = 1;
      m->corr[(size_t)j * K + k] = r;
      M[(size_t)a * L + c] = r;
      if (c < a) {
        rmax = fabs(r) > rmax ? fabs(r) : rmax;
        rsum += fabs(r);
      }
    }
  }
  double pairs = 0.5 * L * (L - 1.0);
  m->max_abs_corr = L >= 2 ? rmax : NAN;
  m->mean_abs_corr = L >= 2 ? rsum / pairs : NAN;

  imx_err e = IMX_OK;
  m->gaussian_tc = L >= 2 ? 0 : NAN;
  if (L >= 2) {
    e = imx_linalg_eigh(ctx, L, M, w);
    /* Softmax, topk and sparsemax rows sum to 1: leave out the null direction (the smallest). */
    int first = imx_activation_simplex(act) ? 1 : 0;
    double tc = 0;
    for (int a = first; !e && a < L; a++) tc += log(w[a]);
    m->gaussian_tc = !e && first < L && w[first] > 1e-12 ? -0.5 * tc : INFINITY;
  }
  /* Effective rank from the eigenvalues of C (tiny negative ones are rounding). */
  if (!e) {
    memcpy(M, C, (size_t)K * K * sizeof *M);
    e = imx_linalg_eigh(ctx, K, M, w);
  }
  if (!e) imx_metrics_spectrum(K, w, m);
  free(live), free(M), free(w);
  return e;
}

/* ---- winners ---- */

/* The winner of a row: argmax r with r = a (softmax, topk, sparsemax) or r = softmax(-a), i.e.
 * the largest a or the smallest a; ties go to the lowest index. */
int imx_metrics_winner(imx_activation act, int K, const double *a) {
  int best = 0;
  for (int k = 1; k < K; k++)
    if (imx_activation_simplex(act) ? a[k] > a[best] : a[k] < a[best]) best = k;
  return best;
}

static imx_err winners(imx_ctx *ctx, const imx_outputs *o, imx_metrics *m) {
  int K = o->K;
  m->winners = calloc((size_t)K, sizeof *m->winners);
  IMX_TRY(
      imx_agree(ctx, m->winners ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "winner counts (%d)", K)));
  for (int64_t i = 0; i < o->nloc; i++) m->winners[imx_metrics_winner(o->act, K, o->A + i * K)]++;
  /* Integer sums: exact in any order. */
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, m->winners, K, MPI_LONG_LONG, MPI_SUM, ctx->comm));
  double h = 0;
  m->winning_units = 0;
  for (int k = 0; k < K; k++)
    if (m->winners[k] > 0) {
      double p = (double)m->winners[k] / (double)o->N;
      h -= p * log2(p);
      m->winning_units++;
    }
  m->winner_entropy_bits = h;
  return IMX_OK;
}

/* ---- regions: distinct sign patterns ----
 *
 * A record is a pattern of w = ceil(K/64) words followed by one word with the
 * number of samples that have it. */

/* Compare the patterns of two records (w words). */
static int pattern_cmp(const uint64_t *a, const uint64_t *b, int w) {
  for (int i = 0; i < w; i++)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/* Sort n records of rw words by pattern: bottom-up merge sort (stable, no
 * global state), tmp holds n * rw words. */
static void sort_records(uint64_t *rec, size_t n, int w, int rw, uint64_t *tmp) {
  uint64_t *src = rec, *dst = tmp;
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      size_t a = lo, b = mid, out = lo;
      while (a < mid || b < hi) {
        int take_a = b >= hi || (a < mid && pattern_cmp(src + a * rw, src + b * rw, w) <= 0);
        size_t from = take_a ? a++ : b++;
        memcpy(dst + out++ * rw, src + from * rw, (size_t)rw * sizeof *dst);
      }
    }
    uint64_t *t = src;
    src = dst, dst = t;
  }
  if (src != rec) memcpy(rec, src, n * (size_t)rw * sizeof *rec);
}

/* Merge sorted records with equal patterns, adding their counts; returns the
 * number of distinct records left at the start of rec. */
static size_t merge_records(uint64_t *rec, size_t n, int w, int rw) {
  size_t u = 0;
  for (size_t i = 0; i < n; i++) {
    if (u > 0 && !pattern_cmp(rec + (u - 1) * rw, rec + i * rw, w)) {
      rec[(u - 1) * rw + w] += rec[i * rw + w];
    } else {
      if (u != i) memcpy(rec + u * rw, rec + i * rw, (size_t)rw * sizeof *rec);
      u++;
    }
  }
  return u;
}

/* The rank that counts a pattern: a mix of its words (splitmix64 finalizer). */
static int owner(const uint64_t *p, int w, int size) {
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < w; i++) {
    h ^= p[i];
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
  }
  return (int)(h % (uint64_t)size);
}

imx_err imx_metrics_regions(imx_ctx *ctx, int64_t nloc, int K, const double *Z, long long *regions,
                            long long *largest) {
  int w = (K + 63) / 64, rw = w + 1, P = ctx->size;
  size_t n = (size_t)nloc;
  uint64_t *rec = calloc((n ? n : 1) * rw, sizeof *rec);
  uint64_t *tmp = imx_malloc_rows((n ? n : 1) * rw * sizeof *tmp);
  int *scount = calloc((size_t)P, sizeof *scount), *rcount = malloc((size_t)P * sizeof *rcount);
  int *sdispl = malloc((size_t)P * sizeof *sdispl), *rdispl = malloc((size_t)P * sizeof *rdispl);
  int *fill = malloc((size_t)P * sizeof *fill);
  uint64_t *recv = NULL;
  imx_err e = rec && tmp && scount && rcount && sdispl && rdispl && fill
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "regions: %lld sign patterns of %d words",
                             (long long)nloc, rw);
  /* MPI counts are ints. */
  if (!e && (double)n * rw > (double)INT32_MAX)
    e = imx_fail(ctx, IMX_ERR_DATA,
                 "regions: %lld local patterns of %d words exceed the MPI count "
                 "limit; use more ranks",
                 (long long)nloc, rw);
  e = imx_agree(ctx, e);
  size_t u = 0, total = 0;
  if (!e) {
    for (size_t i = 0; i < n; i++) {
      uint64_t *r = rec + i * rw;
      for (int k = 0; k < K; k++)
        if (Z[i * (size_t)K + k] > 0) r[k / 64] |= (uint64_t)1 << (k % 64);
      r[w] = 1;
    }
    /* Local duplicates first: less to send. */
    sort_records(rec, n, w, rw, tmp);
    u = merge_records(rec, n, w, rw);
    for (size_t i = 0; i < u; i++) scount[owner(rec + i * rw, w, P)] += rw;
    for (int p = 0, off = 0; p < P; p++) sdispl[p] = off, off += scount[p], fill[p] = sdispl[p];
    for (size_t i = 0; i < u; i++) {
      int p = owner(rec + i * rw, w, P);
      memcpy(tmp + fill[p], rec + i * rw, (size_t)rw * sizeof *tmp);
      fill[p] += rw;
    }
    int rc = MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, ctx->comm);
    if (rc != MPI_SUCCESS)
      e = imx_fail_mpi(ctx, rc, "MPI_Alltoall(pattern counts)", __func__, __FILE__, __LINE__);
    for (int p = 0; !e && p < P; p++) rdispl[p] = (int)total, total += (size_t)rcount[p];
    if (!e && total > (size_t)INT32_MAX)
      e = imx_fail(ctx, IMX_ERR_DATA,
                   "regions: %zu pattern words for one rank exceed the MPI "
                   "count limit; use more ranks",
                   total);
    if (!e && !(recv = malloc((total ? total : 1) * sizeof *recv)))
      e = imx_fail(ctx, IMX_ERR_NOMEM, "regions: %zu received pattern words", total);
  }
  e = imx_agree(ctx, e);
  long long v[2] = {0, 0}; /* distinct patterns owned here, largest group */
  if (!e) {
    int rc = MPI_Alltoallv(tmp, scount, sdispl, MPI_UINT64_T, recv, rcount, rdispl, MPI_UINT64_T,
                           ctx->comm);
    e = IMX_MPI_ERR(ctx, rc, "MPI_Alltoallv(patterns)");
  }
  e = imx_agree(ctx, e);
  if (!e) {
    size_t nr = total / rw;
    uint64_t *scratch = nr <= (n ? n : 1) ? tmp : malloc(nr * rw * sizeof *scratch);
    if (!scratch) e = imx_fail(ctx, IMX_ERR_NOMEM, "regions: sort scratch");
    if (!e) {
      sort_records(recv, nr, w, rw, scratch);
      size_t d = merge_records(recv, nr, w, rw);
      v[0] = (long long)d;
      for (size_t i = 0; i < d; i++)
        if ((long long)recv[i * rw + w] > v[1]) v[1] = (long long)recv[i * rw + w];
    }
    if (scratch && scratch != tmp) free(scratch);
  }
  e = imx_agree(ctx, e);
  if (!e) {
    long long s = v[0], mx = v[1];
    int rc = MPI_Allreduce(&v[0], &s, 1, MPI_LONG_LONG, MPI_SUM, ctx->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Allreduce(&v[1], &mx, 1, MPI_LONG_LONG, MPI_MAX, ctx->comm);
    e = IMX_MPI_ERR(ctx, rc, "MPI_Allreduce(regions)");
    *regions = s, *largest = mx;
  }
  free(rec), free(tmp), free(recv);
  free(scount), free(rcount), free(sdispl), free(rdispl), free(fill);
  return imx_agree(ctx, e);
}

/* ---- sign partitions ---- */

/* The sign entropy of each unit from exact counts of z_j > 0. Collective. */
static imx_err sign_entropy(imx_ctx *ctx, int64_t N, int64_t nloc, int K, const double *Z,
                            imx_metrics *m) {
  long long *pos = calloc((size_t)K, sizeof *pos);
  m->sign_entropy = malloc((size_t)K * sizeof *m->sign_entropy);
  imx_err e = pos && m->sign_entropy
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "sign entropy of K=%d units", K);
  if ((e = imx_agree(ctx, e))) {
    free(pos);
    return e;
  }
  for (int64_t i = 0; i < nloc; i++)
    for (int k = 0; k < K; k++) pos[k] += Z[i * K + k] > 0;
  /* Integer sums: exact in any order. */
  int rc = MPI_Allreduce(MPI_IN_PLACE, pos, K, MPI_LONG_LONG, MPI_SUM, ctx->comm);
  if (rc != MPI_SUCCESS)
    e = imx_fail_mpi(ctx, rc, "MPI_Allreduce(signs)", __func__, __FILE__, __LINE__);
  double sum = 0, mn = INFINITY;
  m->constant_sign_units = 0;
  for (int k = 0; !e && k < K; k++) {
    double p = (double)pos[k] / (double)N, h = 0;
    if (p > 0 && p < 1) h = -p * log2(p) - (1 - p) * log2(1 - p);
    m->sign_entropy[k] = h;
    sum += h, mn = h < mn ? h : mn;
    m->constant_sign_units += pos[k] == 0 || pos[k] == N;
  }
  if (!e && K > 0) m->sign_entropy_mean = sum / K, m->sign_entropy_min = mn;
  free(pos);
  return imx_agree(ctx, e);
}

/* The regions of K random unit hyperplanes at the offsets o->b. Collective. */
static imx_err random_regions(imx_ctx *ctx, const imx_outputs *o, imx_metrics *m) {
  int K = o->K, n = o->n;
  size_t rows = (size_t)(o->nloc ? o->nloc : 1);
  double *W = malloc((size_t)K * n * sizeof *W), *Z = imx_malloc_rows(rows * K * sizeof *Z);
  imx_err e = W && Z ? IMX_OK
                     : imx_fail(ctx, IMX_ERR_NOMEM, "random regions: %lld rows x K=%d",
                                (long long)o->nloc, K);
  e = imx_agree(ctx, e);
  if (!e) {
    imx_baseline_random_rows(o->seed, K, n, W);
    const double one = 1, zero = 0;
    int c = (int)o->nloc;
    /* Row-major Z (nloc x K) = X W^T: column-major Z^T = W X^T. */
    if (c > 0) dgemm_("T", "N", &K, &c, &n, &one, W, &n, o->X, &n, &zero, Z, &K);
    for (int64_t i = 0; i < o->nloc; i++)
      for (int k = 0; k < K; k++) Z[i * K + k] += o->b[k];
    long long largest = 0;
    e = imx_metrics_regions(ctx, o->nloc, K, Z, &m->random_regions, &largest);
  }
  free(W), free(Z);
  return e;
}

/* ---- the outputs ---- */

imx_err imx_metrics_outputs(imx_ctx *ctx, imx_reduction mode, const imx_outputs *o,
                            imx_metrics *out) {
  imx_metrics_init(out);
  int K = o->K;
  out->K = K, out->N = (long long)o->N;
  double *C = NULL;
  imx_err e = IMX_OK;
  if (o->tiles > 0) {
    e = imx_metrics_moments_tiles(ctx, mode, o, out);
  } else {
    C = malloc((size_t)K * K * sizeof *C);
    e = imx_agree(ctx, C ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "covariance %d x %d", K, K));
    if (!e) e = imx_moments_covariance(ctx, mode, o->block, o->N, o->nloc, K, o->A, NULL, C);
    /* Every rank has the same C: no agreement needed until the next collective. */
    if (!e) e = imx_agree(ctx, from_covariance(ctx, o->act, K, C, out));
  }
  if (!e) e = winners(ctx, o, out);
  if (!e)
    e = imx_metrics_regions(ctx, o->nloc, K, o->Z ? o->Z : o->A, &out->regions,
                            &out->largest_region);
  if (!e) e = sign_entropy(ctx, o->N, o->nloc, K, o->Z ? o->Z : o->A, out);
  if (!e && o->X && o->b) e = random_regions(ctx, o, out);
  free(C);
  return e;
}

/* ---- the weights ---- */

double imx_metrics_amari(int n, const double *P) {
  if (n < 2) return n == 1 && P[0] != 0 ? 0 : NAN;
  double s = 0;
  for (int i = 0; i < n; i++) {
    double mx = 0, sum = 0, cmx = 0, csum = 0;
    for (int j = 0; j < n; j++) {
      double a = fabs(P[(size_t)i * n + j]), c = fabs(P[(size_t)j * n + i]);
      sum += a, mx = a > mx ? a : mx;
      csum += c, cmx = c > cmx ? c : cmx;
    }
    if (!(mx > 0) || !(cmx > 0)) return NAN;
    s += sum / mx - 1 + csum / cmx - 1;
  }
  return s / (2.0 * n * (n - 1.0));
}

void imx_metrics_mixing(int n, const double *transform, const double *A, double *out) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      double s = 0;
      if (!transform) s = A[(size_t)i * n + j];
      else
        for (int k = 0; k < n; k++) s += transform[(size_t)k * n + i] * A[(size_t)k * n + j];
      out[(size_t)i * n + j] = s;
    }
}

imx_err imx_metrics_weights(imx_ctx *ctx, int K, int n, const double *W, const double *mixing,
                            int rows, imx_metrics *out) {
  const double one = 1, zero = 0;
  double s = 0;
  if (rows <= 0) {
    double *G = malloc((size_t)K * K * sizeof *G);
    if (!G) return imx_fail(ctx, IMX_ERR_NOMEM, "weight redundancy: %d x %d Gram matrix", K, K);
    /* Row-major G = W W^T is column-major W^T^T W^T: syrk of the n x K column-major W^T. */
    dsyrk_("U", "T", &K, &n, &one, W, &n, &zero, G, &K);
    for (int j = 0; j < K; j++)
      for (int k = 0; k <= j; k++) {
        /* Column-major upper = row-major lower triangle. */
        double g = G[(size_t)j * K + k] - (j == k);
        s += (j == k ? 1 : 2) * g * g;
      }
    free(G);
  } else {
    /* Rows j0..j0+r of W W^T at a time; the same order of the sum. */
    double *G = malloc((size_t)rows * K * sizeof *G);
    if (!G) return imx_fail(ctx, IMX_ERR_NOMEM, "weight redundancy: %d x %d rows", rows, K);
    for (int j0 = 0; j0 < K; j0 += rows) {
      int r = K - j0 < rows ? K - j0 : rows;
      /* Row-major G (r x K) = W_rows W^T: column-major G^T (K x r) = W^T^T W_rows^T. */
      dgemm_("T", "N", &K, &r, &n, &one, W, &n, W + (size_t)j0 * n, &n, &zero, G, &K);
      for (int j = j0; j < j0 + r; j++)
        for (int k = 0; k <= j; k++) {
          double g = G[(size_t)(j - j0) * K + k] - (j == k);
          s += (j == k ? 1 : 2) * g * g;
        }
    }
    free(G);
  }
  out->weight_redundancy = sqrt(s);
  if (mixing && K == n) {
    double *P = malloc((size_t)n * n * sizeof *P);
    if (!P) return imx_fail(ctx, IMX_ERR_NOMEM, "Amari distance: %d x %d", n, n);
    const int nn = n;
    /* Row-major P = W M: column-major P^T = M^T W^T. */
    dgemm_("N", "N", &nn, &nn, &nn, &one, mixing, &nn, W, &nn, &zero, P, &nn);
    out->amari = imx_metrics_amari(n, P);
    free(P);
  }
  return IMX_OK;
}

/* Rows of W W^T the weight measures form at a time on tiles. */
#define WR_ROWS 64

double imx_metrics_bytes(int K, int P, int tiles, int64_t nloc) {
  if (tiles <= 0) return 7.0 * K * K * sizeof(double);
  return (2.0 * K * K / P + 3.0 * (double)nloc * K + (2.0 * tiles + 8) * K) * sizeof(double);
}

int imx_metrics_fit(double measures, double layer, double avail, int budget, double *need) {
  *need = measures + (budget ? layer : 0);
  return avail <= 0 || *need <= 0.75 * avail;
}

imx_err imx_metrics_plan(imx_ctx *ctx, const imx_config *cfg, int K, imx_outputs *o) {
  int nb = cfg->parallel.scalapack_block;
  o->tiles = 0, o->grid_rows = cfg->parallel.grid_rows, o->grid_cols = cfg->parallel.grid_cols;
  double avail = 0;
  if (cfg->parallel.linalg == IMX_LINALG_AUTO)
    IMX_TRY(imx_linalg_memory_per_rank(ctx, cfg->parallel.memory_mib, &avail));
  char why[512];
  imx_linalg_kind k = imx_linalg_choose(
      cfg->parallel.linalg, K, ctx->size, imx_metrics_bytes(K, ctx->size, 0, o->nloc),
      imx_metrics_bytes(K, ctx->size, nb, o->nloc), avail, why, sizeof why);
  if (k == IMX_LINALG_SCALAPACK) o->tiles = nb;
  return IMX_OK;
}

imx_err imx_metrics_compute(imx_ctx *ctx, const imx_config *cfg, imx_layer *layer,
                            const double *theta, const imx_data *d, const double *transform,
                            imx_metrics *out) {
  imx_metrics_init(out);
  int K = imx_layer_units(layer), n = imx_layer_inputs(layer), wr_rows = 0;
  size_t rows = (size_t)(d->nloc ? d->nloc : 1);
  /* Identity units: the outputs are z, one buffer for both. */
  int same = cfg->model.activation == IMX_ACT_IDENTITY;
  double *Z = imx_malloc_rows(rows * K * sizeof *Z);
  double *A = same ? Z : imx_malloc_rows(rows * K * sizeof *A);
  double *W = malloc((size_t)K * n * sizeof *W), *b = malloc((size_t)K * sizeof *b);
  double *mix = d->truth ? malloc((size_t)n * n * sizeof *mix) : NULL;
  imx_err e = Z && A && W && b && (mix || !d->truth)
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "measures: outputs of %lld rows x K=%d",
                             (long long)d->nloc, K);
  e = imx_agree(ctx, e);
  if (!e) imx_layer_weights(layer, theta, W, b);
  if (!e) e = imx_layer_forward(ctx, layer, theta, IMX_FEAT_Z, Z);
  if (!e && !same) e = imx_layer_forward(ctx, layer, theta, IMX_FEAT_ACTIVATION, A);
  e = imx_agree(ctx, e);
  if (!e) {
    imx_outputs o = {.N = d->N,
                     .nloc = d->nloc,
                     .block = d->block,
                     .K = K,
                     .act = cfg->model.activation,
                     .Z = Z,
                     .A = A,
                     .X = d->X,
                     .n = n,
                     .b = b,
                     .seed = cfg->model.seed};
    /* The measures work where the layer's K x K matrices do: on its tiles
     * (the same grid and tile size) or replicated. */
    imx_layer_grid(layer, &o.grid_rows, &o.grid_cols, &o.tiles);
    e = imx_metrics_outputs(ctx, cfg->parallel.reduction, &o, out);
    wr_rows = o.tiles > 0 ? WR_ROWS : 0;
  }
  if (!e) {
    if (mix) imx_metrics_mixing(n, transform, d->truth, mix);
    e = imx_agree(ctx, imx_metrics_weights(ctx, K, n, W, mix, wr_rows, out));
  }
  if (A != Z) free(A);
  free(Z), free(W), free(b), free(mix);
  return e;
}

/* ---- output ---- */

void imx_metrics_json(imx_json *j, const char *key, const imx_metrics *m) {
  imx_json_object(j, key);
  imx_json_int(j, "K", m->K);
  imx_json_int(j, "N", m->N);
  imx_json_int(j, "dead_units", m->dead_units);
  imx_json_num(j, "max_abs_corr", m->max_abs_corr);
  imx_json_num(j, "mean_abs_corr", m->mean_abs_corr);
  imx_json_num(j, "gaussian_tc", m->gaussian_tc);
  imx_json_bool(j, "gaussian_tc_singular", isinf(m->gaussian_tc));
  imx_json_num(j, "effective_rank", m->effective_rank);
  imx_json_int(j, "regions", m->regions);
  imx_json_int(j, "largest_region", m->largest_region);
  if (m->random_regions >= 0) imx_json_int(j, "random_regions", m->random_regions);
  else imx_json_num(j, "random_regions", NAN);
  imx_json_num(j, "sign_entropy_mean_bits", m->sign_entropy_mean);
  imx_json_num(j, "sign_entropy_min_bits", m->sign_entropy_min);
  imx_json_int(j, "constant_sign_units", m->constant_sign_units);
  imx_json_num(j, "winner_entropy_bits", m->winner_entropy_bits);
  imx_json_int(j, "winning_units", m->winning_units);
  imx_json_num(j, "weight_redundancy", m->weight_redundancy);
  imx_json_num(j, "amari_distance", m->amari);
  imx_json_array(j, "winner_counts");
  for (int k = 0; m->winners && k < m->K; k++) imx_json_int(j, NULL, m->winners[k]);
  imx_json_end(j);
  imx_json_array(j, "sign_entropy_bits");
  for (int k = 0; m->sign_entropy && k < m->K; k++) imx_json_num(j, NULL, m->sign_entropy[k]);
  imx_json_end(j);
  imx_json_end(j);
}

/* One cell: a number with up to 6 significant digits, "inf", or "-". */
static void cell_num(FILE *f, double v) {
  if (isnan(v)) fprintf(f, "%*s", IMX_METRICS_COL_WIDTH, "-");
  else if (isinf(v)) fprintf(f, "%*s", IMX_METRICS_COL_WIDTH, v > 0 ? "inf" : "-inf");
  else fprintf(f, "%*.6g", IMX_METRICS_COL_WIDTH, v);
}

/* The rows of the table: a label and the field of imx_metrics it shows. */
typedef enum { CELL_INT, CELL_LLONG, CELL_COUNT, CELL_NUM } cell_type; /* COUNT: < 0 is "-" */
typedef struct table_row {
  const char *label;
  cell_type type;
  size_t offset;
} table_row;

static const table_row table_rows[] = {
    {"units", CELL_INT, offsetof(imx_metrics, K)},
    {"samples", CELL_LLONG, offsetof(imx_metrics, N)},
    {"dead units", CELL_INT, offsetof(imx_metrics, dead_units)},
    {"max |corr|", CELL_NUM, offsetof(imx_metrics, max_abs_corr)},
    {"mean |corr|", CELL_NUM, offsetof(imx_metrics, mean_abs_corr)},
    {"Gaussian TC (nats)", CELL_NUM, offsetof(imx_metrics, gaussian_tc)},
    {"effective rank", CELL_NUM, offsetof(imx_metrics, effective_rank)},
    {"regions (sign patterns)", CELL_LLONG, offsetof(imx_metrics, regions)},
    {"largest region", CELL_LLONG, offsetof(imx_metrics, largest_region)},
    {"random regions, same b", CELL_COUNT, offsetof(imx_metrics, random_regions)},
    {"sign entropy mean (bits)", CELL_NUM, offsetof(imx_metrics, sign_entropy_mean)},
    {"sign entropy min (bits)", CELL_NUM, offsetof(imx_metrics, sign_entropy_min)},
    {"constant-sign units", CELL_INT, offsetof(imx_metrics, constant_sign_units)},
    {"winner entropy (bits)", CELL_NUM, offsetof(imx_metrics, winner_entropy_bits)},
    {"winning units", CELL_INT, offsetof(imx_metrics, winning_units)},
    {"||W W^T - I||_F", CELL_NUM, offsetof(imx_metrics, weight_redundancy)},
    {"Amari distance", CELL_NUM, offsetof(imx_metrics, amari)},
};

void imx_metrics_table(const imx_ctx *ctx, FILE *f, int ncols, const char *const *names,
                       const imx_metrics *const *cols) {
  if (ctx->rank != 0) return;
  fprintf(f, "%-*s", IMX_METRICS_LABEL_WIDTH, "");
  for (int c = 0; c < ncols; c++) fprintf(f, "%*s", IMX_METRICS_COL_WIDTH, names[c]);
  fputc('\n', f);
  for (size_t r = 0; r < sizeof table_rows / sizeof table_rows[0]; r++) {
    const table_row *row = &table_rows[r];
    /* The Amari distance only exists with a known mixing. */
    int any = row->offset != offsetof(imx_metrics, amari);
    for (int c = 0; c < ncols && !any; c++) any = !isnan(cols[c]->amari);
    if (!any) continue;
    fprintf(f, "%-*s", IMX_METRICS_LABEL_WIDTH, row->label);
    for (int c = 0; c < ncols; c++) {
      const char *field = (const char *)cols[c] + row->offset;
      if (row->type == CELL_INT) fprintf(f, "%*d", IMX_METRICS_COL_WIDTH, *(const int *)field);
      else if (row->type == CELL_LLONG ||
               (row->type == CELL_COUNT && *(const long long *)field >= 0))
        fprintf(f, "%*lld", IMX_METRICS_COL_WIDTH, *(const long long *)field);
      else if (row->type == CELL_COUNT) fprintf(f, "%*s", IMX_METRICS_COL_WIDTH, "-");
      else cell_num(f, *(const double *)field);
    }
    fputc('\n', f);
  }
  fflush(f);
}

void imx_metrics_print(const imx_ctx *ctx, FILE *f, const imx_metrics *m) {
  const char *name = "layer";
  imx_metrics_table(ctx, f, 1, &name, &m);
}
