/* objective_entropy: the log-cosh marginal entropies (see
 * include/imx/objective_entropy.h and docs/objectives.md). */
#include "imx/objective_entropy.h"

#include <math.h>
#include <stdlib.h>

#include "imx/moments.h"
#include "imx/rsum.h"

struct imx_entropy {
  int K;
  imx_rsum *sum; /* 2 x K: row 0 sums log cosh(d), row 1 sums tanh(d) */
  double *tbar;  /* K: mean tanh(d_j) of the last value */
  double *bound; /* K: max(1, global max |d_j|), the partials' bound per block row */
  double *tot;   /* 2 K: the reduced sums */
  double *th;    /* rows x K: tanh(d) of the last value, for the gradient */
  int64_t rows;  /* local rows */
};

imx_err imx_entropy_create(imx_ctx *ctx, imx_reduction mode, int K, int64_t rows,
                           imx_entropy **out) {
  *out = NULL;
  imx_entropy *e = calloc(1, sizeof *e);
  if (!e) return imx_fail(ctx, IMX_ERR_NOMEM, "entropy term (K=%d)", K);
  e->K = K;
  e->tbar = malloc((size_t)K * sizeof *e->tbar);
  e->bound = malloc((size_t)K * sizeof *e->bound);
  e->tot = malloc(2 * (size_t)K * sizeof *e->tot);
  e->rows = rows;
  e->th = malloc((size_t)(rows > 0 ? rows : 1) * K * sizeof *e->th);
  imx_err err = (!e->tbar || !e->bound || !e->tot || !e->th)
                    ? imx_fail(ctx, IMX_ERR_NOMEM,
                               "entropy term: tanh of %lld local rows x K=%d needs %.1f MiB",
                               (long long)rows, K, (double)rows * K * 8 / 1048576)
                    : imx_rsum_create(ctx, mode, 2, K, 0, &e->sum);
  if (err) {
    imx_entropy_free(&e);
    return err;
  }
  *out = e;
  return IMX_OK;
}

void imx_entropy_free(imx_entropy **ep) {
  if (!ep || !*ep) return;
  imx_entropy *e = *ep;
  imx_rsum_free(&e->sum);
  free(e->tbar), free(e->bound), free(e->tot), free(e->th), free(e);
  *ep = NULL;
}

size_t imx_entropy_bytes(const imx_entropy *e) {
  /* tanh(d), tbar, bound, tot, and the 2 x K sum (up to 3 bins and a scratch). */
  return e ? ((size_t)e->rows + 4 + 2 * 4) * e->K * 8 : 0;
}

/* Rows whose factors 1 + exp(-2|d|) (each in (1, 2]) are multiplied before
 * one log: the product stays below 2^32, far from overflow, and the log of
 * the product differs from the sum of logs by a few ulps of the product. */
#define PROD_ROWS 32

imx_err imx_entropy_value(imx_ctx *ctx, imx_entropy *e, int block, int64_t rows, const double *D,
                          double invN, double *value) {
  int K = e->K;
  int repro = imx_rsum_reproducible(e->sum);
  /* log cosh d <= |d| and |tanh d| <= 1: max(1, max|d_j|) bounds both per row. */
  if (repro) IMX_TRY(imx_colmax(ctx, rows, K, D, K, e->bound));
  for (int j = 0; repro && j < K; j++) e->bound[j] = e->bound[j] > 1 ? e->bound[j] : 1;
  imx_rsum_begin(e->sum, (double)block, NULL, repro ? e->bound : NULL);
  double *w = imx_rsum_work(e->sum), *prod = e->tot;
  int64_t step = repro ? block : (rows > 0 ? rows : 1);
  /* log cosh x = |x| + log(1 + t) - log 2 and tanh x = sign(x) (1 - t) / (1 + t),
   * t = exp(-2|x|): one exponential per entry, one log per PROD_ROWS rows. */
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    int64_t r1 = r0 + step < rows ? r0 + step : rows;
    for (int j = 0; j < 2 * K; j++) w[j] = 0;
    for (int64_t g0 = r0; g0 < r1; g0 += PROD_ROWS) {
      int64_t g1 = g0 + PROD_ROWS < r1 ? g0 + PROD_ROWS : r1;
      for (int j = 0; j < K; j++) prod[j] = 1;
      for (int64_t i = g0; i < g1; i++) {
        const double *d = D + i * K;
        double *th = e->th + i * K;
        for (int j = 0; j < K; j++) {
          double ax = fabs(d[j]), t = exp(-2 * ax);
          prod[j] *= 1 + t;
          w[j] += ax;
          th[j] = copysign((1 - t) / (1 + t), d[j]);
          w[K + j] += th[j];
        }
      }
      for (int j = 0; j < K; j++) w[j] += log(prod[j]) - (double)(g1 - g0) * 0.6931471805599453;
    }
    imx_rsum_add(e->sum, w, K);
  }
  IMX_TRY(imx_rsum_end(ctx, e->sum, e->tot));
  double s = 0;
  for (int j = 0; j < K; j++) {
    s += 0.6931471805599453 + 2 * e->tot[j] * invN;
    e->tbar[j] = e->tot[K + j] * invN;
  }
  *value = s;
  return IMX_OK;
}

void imx_entropy_grad_rows(const imx_entropy *e, int64_t r0, int64_t rows, double *g,
                           double scale) {
  int K = e->K;
  for (int64_t i = 0; i < rows; i++) {
    const double *th = e->th + (r0 + i) * K;
    double *gi = g + i * K;
    for (int j = 0; j < K; j++) gi[j] += 2 * scale * (th[j] - e->tbar[j]);
  }
}
