/* moments: block-wise sums over row-sharded matrices (see include/imx/moments.h). */
#include "imx/moments.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/blas.h"

void imx_colmax_local(int64_t m, int k, const double *A, int lda, double *acc) {
  for (int64_t i = 0; i < m; i++) {
    const double *a = A + i * lda;
    for (int j = 0; j < k; j++) {
      double v = fabs(a[j]);
      acc[j] = v > acc[j] ? v : acc[j]; /* a store either way: it vectorizes (maxpd) */
    }
  }
}

imx_err imx_colmax_reduce(imx_ctx *ctx, int k, double *acc) {
  imx_comm_sent(ctx, 8.0 * k, 1);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, acc, k, MPI_DOUBLE, MPI_MAX, ctx->comm));
  return IMX_OK;
}

imx_err imx_colmax(imx_ctx *ctx, int64_t m, int k, const double *A, int lda, double *out) {
  for (int j = 0; j < k; j++) out[j] = 0;
  imx_colmax_local(m, k, A, lda, out);
  return imx_colmax_reduce(ctx, k, out);
}

/* Rows per partial: one block (reproducible) or all local rows (fast). */
static int64_t chunk_rows(int block, int64_t m, int reproducible) {
  return reproducible ? block : (m > 0 ? m : 1);
}

/* Begin s with the bound B * max|A| (the column maxima of A: known, or
 * computed when known is NULL; as the rows' u with as_rows, else as the
 * columns' v) times v (as_rows only). Collective. */
static imx_err begin_bounded(imx_ctx *ctx, imx_rsum *s, int block, int64_t m, int k,
                             const double *A, int lda, const double *known, const double *v,
                             int as_rows) {
  double *amax = known ? NULL : malloc((size_t)k * sizeof *amax);
  if (!known && !amax) return imx_fail(ctx, IMX_ERR_NOMEM, "column maxima (%d)", k);
  imx_err e = !known && imx_rsum_reproducible(s) ? imx_colmax(ctx, m, k, A, lda, amax) : IMX_OK;
  const double *u = known ? known : amax;
  if (!e) imx_rsum_begin(s, (double)block, as_rows ? u : NULL, as_rows ? v : u);
  free(amax);
  return e;
}

/* The partials of s held in its scratch (imx_rsum_work), deposited
 * imx_rsum_group(s) at a time in one pass over the bins. */
typedef struct held {
  imx_rsum *s;
  const double *part[4];
  int n, room;
} held;

static held held_begin(imx_rsum *s) {
  int g = imx_rsum_group(s);
  return (held){.s = s, .n = 0, .room = g < 4 ? g : 4};
}

/* Where the next partial of count values goes. */
static double *held_next(const held *h, size_t count) {
  return imx_rsum_work(h->s) + (size_t)h->n * count;
}

/* The partial at held_next is formed: keep it, and deposit the group when
 * full or when last. */
static void held_push(held *h, size_t count, int ld, int last) {
  h->part[h->n] = held_next(h, count);
  if (++h->n == h->room || last) {
    imx_rsum_add_n(h->s, h->part, h->n, ld);
    h->n = 0;
  }
}

imx_err imx_moments_colsum(imx_ctx *ctx, imx_rsum *s, int block, int64_t m, int k, const double *A,
                           int lda, const double *amax, double *out) {
  IMX_TRY(begin_bounded(ctx, s, block, m, k, A, lda, amax, NULL, 0));
  held h = held_begin(s);
  int64_t step = chunk_rows(block, m, imx_rsum_reproducible(s));
  for (int64_t r0 = 0; r0 < m; r0 += step) {
    int64_t r1 = r0 + step < m ? r0 + step : m;
    double *w = held_next(&h, (size_t)k);
    for (int j = 0; j < k; j++) w[j] = 0;
    for (int64_t i = r0; i < r1; i++) {
      const double *a = A + i * lda;
      for (int j = 0; j < k; j++) w[j] += a[j];
    }
    held_push(&h, (size_t)k, k, r1 >= m);
  }
  return imx_rsum_end(ctx, s, out);
}

imx_err imx_moments_atb(imx_ctx *ctx, imx_rsum *s, int block, int64_t m, int ka, const double *A,
                        int lda, const double *amax, int kb, const double *Bm, int ldb,
                        const double *bmax, double *out) {
  int sym = (Bm == A);
  double *am = malloc((size_t)(ka + kb) * sizeof *am);
  if (!am) return imx_fail(ctx, IMX_ERR_NOMEM, "column maxima (%d)", ka + kb);
  double *bm = am + ka;
  imx_err e = IMX_OK;
  if (imx_rsum_reproducible(s)) { /* bounds are only needed for exact accumulation */
    if (!amax) e = imx_colmax(ctx, m, ka, A, lda, am);
    if (!e && !sym && !bmax) e = imx_colmax(ctx, m, kb, Bm, ldb, bm);
    if (e) {
      free(am);
      return e;
    }
  }
  const double *au = amax ? amax : am;
  imx_rsum_begin(s, (double)block, au, sym ? au : bmax ? bmax : bm);
  free(am);
  held h = held_begin(s);
  size_t prod = (size_t)ka * kb;
  const double one = 1, zero = 0;
  int64_t step = chunk_rows(block, m, imx_rsum_reproducible(s));
  for (int64_t r0 = 0; r0 < m; r0 += step) {
    int rows = (int)((r0 + step < m ? r0 + step : m) - r0);
    double *w = held_next(&h, prod);
    /* Row-major W (ka x kb) = A_b^T B_b is column-major W^T = B_b^T A_b. */
    if (sym) {
      /* Column-major upper of A_b^T A_b is the row-major lower triangle. */
      dsyrk_("U", "N", &ka, &rows, &one, A + r0 * lda, &lda, &zero, w, &ka);
    } else {
      dgemm_("N", "T", &kb, &ka, &rows, &one, Bm + r0 * ldb, &ldb, A + r0 * lda, &lda, &zero, w,
             &kb);
    }
    held_push(&h, prod, kb, r0 + step >= m);
  }
  return imx_rsum_end(ctx, s, out);
}

/* Blocks whose float products imx_moments_atb_single keeps before adding them
 * to the bins in one pass (imx_rsum_add_f: one read and write of the bins
 * per GROUP blocks instead of per block; the same sum). */
#define GROUP 4

imx_err imx_moments_atb_single(imx_ctx *ctx, imx_rsum *s, int block, int64_t m, int ka,
                               const double *A, int lda, const double *known, int kb,
                               const float *Bf, int ldb, const double *bmax, double *out) {
  int sym = Bf == NULL;
  int64_t step = block; /* float sums over at most B rows, in either mode */
  size_t prod = (size_t)ka * kb;
  float *Af = malloc(((size_t)step * ka + GROUP * prod) * sizeof *Af);
  double *amax = malloc((size_t)ka * sizeof *amax);
  imx_err e = Af && amax ? IMX_OK
                         : imx_fail(ctx, IMX_ERR_NOMEM, "single-precision block of %d x %d", block,
                                    ka > kb ? ka : kb);
  e = imx_agree(ctx, e);
  if (!e && imx_rsum_reproducible(s)) {
    if (known) memcpy(amax, known, (size_t)ka * sizeof *amax);
    else e = imx_colmax(ctx, m, ka, A, lda, amax);
  }
  if (e) {
    free(Af), free(amax);
    return e;
  }
  /* |a_i b_j| summed over B rows in float: at most B max|a| max|b| (1 + (B + 2) 2^-23)
   * with the rounding of the inputs to float and of the B additions. */
  imx_rsum_begin(s, (double)block * (1 + (block + 2.0) * 0x1p-23), amax, sym ? amax : bmax);
  free(amax);
  const float *parts[GROUP];
  int held = 0;
  const float one = 1, zero = 0;
  for (int64_t r0 = 0; r0 < m; r0 += step) {
    int rows = (int)((r0 + step < m ? r0 + step : m) - r0);
    float *wf = Af + (size_t)step * ka + held * prod;
    for (int64_t i = 0; i < rows; i++)
      for (int j = 0; j < ka; j++) Af[i * ka + j] = (float)A[(r0 + i) * lda + j];
    /* Row-major W (ka x kb) = A_b^T B_b is column-major W^T = B_b^T A_b; SSYRK's
     * column-major upper triangle is the row-major lower one. */
    if (sym) ssyrk_("U", "N", &ka, &rows, &one, Af, &ka, &zero, wf, &ka);
    else sgemm_("N", "T", &kb, &ka, &rows, &one, Bf + r0 * ldb, &ldb, Af, &ka, &zero, wf, &kb);
    parts[held++] = wf;
    if (held == GROUP || r0 + step >= m) {
      imx_rsum_add_f(s, parts, held, kb);
      held = 0;
    }
  }
  free(Af);
  return imx_rsum_end(ctx, s, out);
}

imx_err imx_moments_atb_sparse(imx_ctx *ctx, imx_rsum *s, int block, int64_t m, int ka,
                               const double *A, int lda, const double *amax, int kb,
                               const double *Bm, int ldb, const double *bmax, double density,
                               double *out) {
  IMX_TRY(begin_bounded(ctx, s, block, m, ka, A, lda, amax, bmax, 1));
  held h = held_begin(s);
  size_t prod = (size_t)ka * kb;
  const double one = 1, zero = 0;
  int64_t step = chunk_rows(block, m, imx_rsum_reproducible(s));
  for (int64_t r0 = 0; r0 < m; r0 += step) {
    int rows = (int)((r0 + step < m ? r0 + step : m) - r0);
    double *w = held_next(&h, prod);
    /* The choice depends only on the partial's own rows, so a block gives
     * the same bits on any rank. */
    int64_t nnz = 0;
    for (int64_t i = r0; i < r0 + rows; i++)
      for (int j = 0; j < ka; j++) nnz += A[i * lda + j] != 0;
    if ((double)nnz > density * (double)rows * ka) {
      dgemm_("N", "T", &kb, &ka, &rows, &one, Bm + r0 * ldb, &ldb, A + r0 * lda, &lda, &zero, w,
             &kb);
    } else {
      for (size_t t = 0; t < (size_t)ka * kb; t++) w[t] = 0;
      for (int64_t i = r0; i < r0 + rows; i++) {
        const double *a = A + i * lda, *b = Bm + i * ldb;
        for (int j = 0; j < ka; j++) {
          if (a[j] == 0) continue;
          double *wj = w + (size_t)j * kb, aj = a[j];
          for (int c = 0; c < kb; c++) wj[c] += aj * b[c];
        }
      }
    }
    held_push(&h, prod, kb, r0 + step >= m);
  }
  return imx_rsum_end(ctx, s, out);
}

imx_err imx_moments_covariance(imx_ctx *ctx, imx_reduction mode, int block, int64_t N, int64_t m,
                               int k, const double *A, double *mean, double *C) {
  double *mu = mean ? mean : malloc((size_t)k * sizeof *mu);
  double *D = imx_malloc_rows((size_t)(m ? m : 1) * k * sizeof *D);
  imx_rsum *rk = NULL, *rkk = NULL;
  imx_err e = mu && D ? IMX_OK
                      : imx_fail(ctx, IMX_ERR_NOMEM, "covariance: centered copy of %lld x %d",
                                 (long long)m, k);
  if (!e) e = imx_rsum_create(ctx, mode, 1, k, 0, &rk);
  if (!e) e = imx_rsum_create(ctx, mode, k, k, 1, &rkk);
  e = imx_agree(ctx, e);
  if (!e) e = imx_moments_colsum(ctx, rk, block, m, k, A, k, NULL, mu);
  if (!e) {
    for (int j = 0; j < k; j++) mu[j] /= (double)N;
    for (int64_t i = 0; i < m; i++)
      for (int j = 0; j < k; j++) D[i * k + j] = A[i * k + j] - mu[j];
    e = imx_moments_atb(ctx, rkk, block, m, k, D, k, NULL, k, D, k, NULL, C);
  }
  if (!e)
    for (size_t i = 0; i < (size_t)k * k; i++) C[i] /= (double)N;
  imx_rsum_free(&rk), imx_rsum_free(&rkk);
  if (mu != mean) free(mu);
  free(D);
  return e;
}
