/* objective_entropy: the log-cosh marginal entropies (see
 * include/imx/objective_entropy.h and docs/objectives.md). */
#include "imx/objective_entropy.h"

#include <math.h>
#include <stdlib.h>

#include "imx/moments.h"
#include "imx/rsum.h"

#ifdef IMX_HAVE_MVEC
#include <emmintrin.h>
/* glibc's libmvec, SSE calling convention; it dispatches to the machine's
 * best variant (AVX2, FMA) itself. Within 3 ulp of exp(). */
__m128d _ZGVbN2v_exp(__m128d);
#endif

/* Per-unit sums of one value pass: the value and gradient need the first
 * two, the curvature (imx_entropy_curvature) the next three, the Extended
 * Infomax switch the sixth (d^2; with it all six are summed). */
#define NSUMS 6

struct imx_entropy {
  int K;
  int nsums;      /* 2, 5 with the curvature, NSUMS with the switch */
  imx_rsum *sum;  /* nsums x K: log cosh d, tanh d[, sech^2 d, d tanh d, d^2 sech^2 d[, d^2]] */
  signed char *k; /* K: +1 super-Gaussian (log cosh), -1 sub-Gaussian density */
  double *tbar;   /* K: mean tanh(d_j) of the last value */
  double *bound;  /* K: max(1, global max |d_j|), the partials' bound per block row */
  double *tot;    /* NSUMS K: the reduced sums */
  double *th;     /* rows x K: tanh(d) of the last value, for the gradient */
  int64_t rows;   /* local rows */
};

imx_err imx_entropy_create(imx_ctx *ctx, imx_reduction mode, int K, int64_t rows, int curvature,
                           int extended, imx_entropy **out) {
  *out = NULL;
  imx_entropy *e = calloc(1, sizeof *e);
  if (!e) return imx_fail(ctx, IMX_ERR_NOMEM, "entropy term (K=%d)", K);
  e->K = K, e->nsums = extended ? NSUMS : curvature ? 5 : 2;
  e->k = malloc((size_t)K);
  for (int j = 0; e->k && j < K; j++) e->k[j] = 1;
  e->tbar = malloc((size_t)K * sizeof *e->tbar);
  e->bound = malloc((size_t)K * sizeof *e->bound);
  e->tot = malloc(NSUMS * (size_t)K * sizeof *e->tot);
  e->rows = rows;
  e->th = imx_malloc_rows((size_t)(rows > 0 ? rows : 1) * K * sizeof *e->th);
  imx_err err = (!e->tbar || !e->bound || !e->tot || !e->th || !e->k)
                    ? imx_fail(ctx, IMX_ERR_NOMEM,
                               "entropy term: tanh of %lld local rows x K=%d needs %.1f MiB",
                               (long long)rows, K, (double)rows * K * 8 / 1048576)
                    : imx_rsum_create(ctx, mode, e->nsums, K, 0, &e->sum);
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
  free(e->tbar), free(e->bound), free(e->tot), free(e->th), free(e->k), free(e);
  *ep = NULL;
}

size_t imx_entropy_bytes(const imx_entropy *e) {
  /* tanh(d), tbar, bound, tot, and the nsums x K sum (up to 3 bins and a scratch). */
  return e ? ((size_t)e->rows + 2 + NSUMS + (size_t)e->nsums * 4) * e->K * 8 + (size_t)e->K : 0;
}

/* Rows whose factors 1 + exp(-2|d|) (each in (1, 2]) are multiplied before
 * one log: the product stays below 2^32, far from overflow, and the log of
 * the product differs from the sum of logs by a few ulps of the product. */
#define PROD_ROWS 32

/* -log p_sub(u) = u^2 / 2 - log cosh u + SUB_CONST, p_sub = (N(1, 1) + N(-1, 1)) / 2:
 * SUB_CONST = 1/2 + log(2 pi) / 2. */
#define SUB_CONST 1.4189385332046727

/* t[q] = exp(-2 |d[q]|), q < n. With libmvec two at a time (an odd last
 * entry in lane 0 of its own pair): every entry gets its value from the same
 * function wherever it sits, so the bits do not depend on the rank count. */
static void exp_neg2abs(const double *d, double *t, int64_t n) {
#ifdef IMX_HAVE_MVEC
  const __m128d m2 = _mm_set1_pd(-2.0), sign = _mm_set1_pd(-0.0);
  int64_t q = 0;
  for (; q + 2 <= n; q += 2)
    _mm_storeu_pd(t + q, _ZGVbN2v_exp(_mm_mul_pd(m2, _mm_andnot_pd(sign, _mm_loadu_pd(d + q)))));
  if (q < n) {
    double out[2];
    _mm_storeu_pd(out, _ZGVbN2v_exp(_mm_set_pd(0.0, -2 * fabs(d[q]))));
    t[q] = out[0];
  }
#else
  for (int64_t q = 0; q < n; q++) t[q] = exp(-2 * fabs(d[q]));
#endif
}

/* One row: th holds t = exp(-2|d|) on entry and tanh d on return; the
 * nsums partial sums (log cosh without its log, see below) go to w. */
static void sums_row(int K, int nsums, const double *restrict d, double *restrict th,
                     double *restrict prod, double *restrict w) {
  for (int j = 0; j < K; j++) {
    double t = th[j];
    prod[j] *= 1 + t;
    th[j] = copysign((1 - t) / (1 + t), d[j]);
    w[j] += fabs(d[j]);
    w[K + j] += th[j];
  }
  if (nsums == 2) return;
  for (int j = 0; j < K; j++) {
    double tj = th[j], s2 = 1 - tj * tj;
    w[2 * K + j] += s2;
    w[3 * K + j] += d[j] * tj;
    w[4 * K + j] += d[j] * d[j] * s2;
  }
  if (nsums == 5) return;
  for (int j = 0; j < K; j++) w[5 * K + j] += d[j] * d[j];
}

imx_err imx_entropy_value(imx_ctx *ctx, imx_entropy *e, int block, int64_t rows, const double *D,
                          double invN, double *value) {
  int K = e->K;
  int repro = imx_rsum_reproducible(e->sum);
  /* log cosh d <= |d|, |tanh d| <= 1, sech^2 d <= 1, |d tanh d| <= |d| and
   * d^2 sech^2 d < 0.44: max(1, max|d_j|) bounds all five per row. */
  if (repro) IMX_TRY(imx_colmax(ctx, rows, K, D, K, e->bound));
  /* d^2 <= max_j bound_j * bound_j: its row of the bound is scaled by the largest. */
  double u[NSUMS] = {1, 1, 1, 1, 1, 1};
  for (int j = 0; repro && j < K; j++) {
    e->bound[j] = e->bound[j] > 1 ? e->bound[j] : 1;
    u[5] = e->bound[j] > u[5] ? e->bound[j] : u[5];
  }
  imx_rsum_begin(e->sum, (double)block, e->nsums == NSUMS ? u : NULL, repro ? e->bound : NULL);
  double *w = imx_rsum_work(e->sum), *prod = e->tot;
  int64_t step = repro ? block : (rows > 0 ? rows : 1);
  /* log cosh x = |x| + log(1 + t) - log 2 and tanh x = sign(x) (1 - t) / (1 + t),
   * t = exp(-2|x|): one exponential per entry, one log per PROD_ROWS rows. */
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    int64_t r1 = r0 + step < rows ? r0 + step : rows;
    for (int j = 0; j < e->nsums * K; j++) w[j] = 0;
    for (int64_t g0 = r0; g0 < r1; g0 += PROD_ROWS) {
      int64_t g1 = g0 + PROD_ROWS < r1 ? g0 + PROD_ROWS : r1;
      for (int j = 0; j < K; j++) prod[j] = 1;
      /* The exponentials first, then arithmetic the compiler vectorizes. */
      exp_neg2abs(D + g0 * K, e->th + g0 * K, (g1 - g0) * K);
      for (int64_t i = g0; i < g1; i++) sums_row(K, e->nsums, D + i * K, e->th + i * K, prod, w);
      for (int j = 0; j < K; j++) w[j] += log(prod[j]) - (double)(g1 - g0) * 0.6931471805599453;
    }
    imx_rsum_add(e->sum, w, K);
  }
  IMX_TRY(imx_rsum_end(ctx, e->sum, e->tot));
  double s = 0;
  for (int j = 0; j < K; j++) {
    if (e->k[j] > 0) s += 0.6931471805599453 + 2 * e->tot[j] * invN;
    else s += SUB_CONST + (0.5 * e->tot[5 * K + j] - e->tot[j]) * invN;
    e->tbar[j] = e->tot[K + j] * invN;
  }
  *value = s;
  return IMX_OK;
}

void imx_entropy_grad_rows(const imx_entropy *e, int64_t r0, int64_t rows, const double *D,
                           double *g, double scale) {
  int K = e->K;
  if (e->nsums < NSUMS) { /* all units super-Gaussian: today's loop, bit for bit */
    for (int64_t i = 0; i < rows; i++) {
      const double *th = e->th + (r0 + i) * K;
      double *gi = g + i * K;
      for (int j = 0; j < K; j++) gi[j] += 2 * scale * (th[j] - e->tbar[j]);
    }
    return;
  }
  /* G'(d) - mean G'(d): super 2 (tanh d - tbar); sub (d - tanh d) - (0 - tbar),
   * the mean of the centered d being 0. */
  for (int64_t i = 0; i < rows; i++) {
    const double *th = e->th + (r0 + i) * K, *d = D + i * K;
    double *gi = g + i * K;
    for (int j = 0; j < K; j++)
      gi[j] += e->k[j] > 0 ? 2 * scale * (th[j] - e->tbar[j]) : scale * (d[j] - th[j] + e->tbar[j]);
  }
}

void imx_entropy_curvature(const imx_entropy *e, double invN, double *kappa, double *beta,
                           double *gamma) {
  int K = e->K;
  for (int j = 0; j < K; j++) {
    if (e->nsums < NSUMS || e->k[j] > 0) {
      kappa[j] = 2 * e->tot[2 * K + j] * invN;
      beta[j] = 2 * e->tot[3 * K + j] * invN;
      gamma[j] = 2 * e->tot[4 * K + j] * invN;
    } else { /* G = u^2/2 - log cosh u: G' = u - tanh u, G'' = 1 - sech^2 u = tanh^2 u */
      kappa[j] = 1 - e->tot[2 * K + j] * invN;
      beta[j] = (e->tot[5 * K + j] - e->tot[3 * K + j]) * invN;
      gamma[j] = (e->tot[5 * K + j] - e->tot[4 * K + j]) * invN;
    }
  }
}

int imx_entropy_switch(imx_entropy *e, double invN, int *sub) {
  int K = e->K, flips = 0;
  *sub = 0;
  if (e->nsums < NSUMS) return 0;
  for (int j = 0; j < K; j++) {
    double crit = e->tot[2 * K + j] * invN * (e->tot[5 * K + j] * invN) - e->tot[3 * K + j] * invN;
    signed char k = crit >= 0 ? 1 : -1;
    flips += k != e->k[j];
    e->k[j] = k;
    *sub += k < 0;
  }
  return flips;
}

void imx_entropy_signs(const imx_entropy *e, signed char *k) {
  for (int j = 0; j < e->K; j++) k[j] = e->k[j];
}

void imx_entropy_set_signs(imx_entropy *e, const signed char *k) {
  for (int j = 0; j < e->K; j++) e->k[j] = k[j] < 0 ? -1 : 1;
}
