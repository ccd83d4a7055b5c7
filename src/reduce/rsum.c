/* rsum: order-independent exact accumulation for reproducible reductions
 * (see include/imx/rsum.h for the method and its limits). */
#include "imx/rsum.h"

#include "imx/exact.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FOLD 3   /* pieces per value */
#define WIDTH 30 /* bits per piece: 2^(52 - WIDTH - 1) = 2^21 exact deposits */
/* Exponent range of each bound factor: products stay normal and so do the
 * quanta 2^(e - 3 WIDTH) below them. */
#define EMIN (-450)
#define EMAX 480
/* Partials a reproducible sum's scratch holds for imx_rsum_add_n (one pass
 * over the bins per group instead of per partial), fewer when GROUP of them
 * would exceed GROUP_BYTES. */
#define GROUP 4
#define GROUP_BYTES (256.0 * 1048576)
/* The Allreduce's trailer in reproducible mode: deposits, violated, clamped. */
#define CHECKS 3

struct imx_rsum {
  imx_reduction mode;
  int rows, cols, lower;
  int64_t count;    /* rows * cols */
  double *bins;     /* FOLD x count piece sums (fast mode: 1 x count plain sums) */
  int group;        /* partials the scratch holds (imx_rsum_group) */
  double *work;     /* group x rows x cols scratch for partials */
  double *pu, *pv;  /* bound: |partial(i,j)| <= pu[i] * pv[j], both powers of two */
  int64_t deposits; /* partials added since begin */
  int violated;     /* a partial exceeded its bound */
  int clamped;      /* a bound factor was above 2^EMAX and clamped to it */
};

/* Partials of count values a sum's scratch holds in mode. */
static int group_of(imx_reduction mode, double count) {
  if (mode != IMX_RED_REPRODUCIBLE) return 1;
  double fit = GROUP_BYTES / (8 * (count > 1 ? count : 1));
  return fit >= GROUP ? GROUP : fit >= 2 ? (int)fit : 1;
}

double imx_rsum_bytes(imx_reduction mode, double rows, double cols) {
  double count = rows * cols;
  int bins = mode == IMX_RED_REPRODUCIBLE ? FOLD : 1;
  return (bins * count + CHECKS + group_of(mode, count) * count) * sizeof(double);
}

imx_err imx_rsum_create(imx_ctx *ctx, imx_reduction mode, int rows, int cols, int lower,
                        imx_rsum **out) {
  *out = NULL;
  imx_rsum *s = calloc(1, sizeof *s);
  if (!s) return imx_fail(ctx, IMX_ERR_NOMEM, "reduction buffer struct");
  s->mode = mode, s->rows = rows, s->cols = cols, s->lower = lower;
  s->count = (int64_t)rows * cols;
  int nbins = mode == IMX_RED_REPRODUCIBLE ? FOLD : 1;
  s->group = group_of(mode, (double)s->count);
  s->bins = malloc(((size_t)nbins * (size_t)s->count + CHECKS) * sizeof *s->bins);
  s->work = malloc((size_t)s->group * (size_t)(s->count ? s->count : 1) * sizeof *s->work);
  s->pu = malloc((size_t)(rows ? rows : 1) * sizeof *s->pu);
  s->pv = malloc((size_t)(cols ? cols : 1) * sizeof *s->pv);
  if (!s->bins || !s->work || !s->pu || !s->pv) {
    imx_rsum_free(&s);
    return imx_fail(ctx, IMX_ERR_NOMEM, "reduction buffers for %d x %d values (%s mode)", rows,
                    cols, imx_reduction_name(mode));
  }
  *out = s;
  return IMX_OK;
}

void imx_rsum_free(imx_rsum **s) {
  if (!s || !*s) return;
  free((*s)->bins);
  free((*s)->work);
  free((*s)->pu);
  free((*s)->pv);
  free(*s);
  *s = NULL;
}

double *imx_rsum_work(imx_rsum *s) { return s->work; }

int imx_rsum_group(const imx_rsum *s) { return s->group; }

int imx_rsum_reproducible(const imx_rsum *s) { return s->mode == IMX_RED_REPRODUCIBLE; }

/* 2^e as a double (e within the normal range). */
static double pow2(int e) {
  uint64_t bits = (uint64_t)(e + 1023) << 52;
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

/* The smallest power of two >= x (x finite, >= 0), clamped to [2^EMIN, 2^EMAX]. */
static double bound_pow2(double x) {
  if (!(x > 0)) return pow2(EMIN); /* 0 (or NaN, caught later as a non-finite result) */
  int e = EMAX;
  if (!isinf(x)) frexp(x, &e); /* x = f 2^e, f in [0.5, 1) */
  return pow2(e < EMIN ? EMIN : e > EMAX ? EMAX : e);
}

void imx_rsum_begin(imx_rsum *s, double scale, const double *u, const double *v) {
  int nbins = s->mode == IMX_RED_REPRODUCIBLE ? FOLD : 1;
  memset(s->bins, 0, (size_t)nbins * (size_t)s->count * sizeof *s->bins);
  s->deposits = 0;
  s->violated = 0;
  s->clamped = 0;
  if (s->mode != IMX_RED_REPRODUCIBLE) return;
  const double top = pow2(EMAX);
  double ps = bound_pow2(scale);
  s->clamped = !(scale <= top);
  for (int i = 0; i < s->rows; i++) {
    s->pu[i] = ps * bound_pow2(u ? u[i] : 1.0);
    s->clamped |= u && !(u[i] <= top);
  }
  for (int j = 0; j < s->cols; j++) {
    s->pv[j] = bound_pow2(v ? v[j] : 1.0);
    s->clamped |= v && !(v[j] <= top);
  }
}

void imx_rsum_add(imx_rsum *s, const double *p, int ld) { imx_rsum_add_n(s, &p, 1, ld); }

/* nparts partials, double (f NULL) or float (d NULL), row by row, every
 * partial in turn: the row's bins stay in cache. Each bin gets the partials
 * in the order given (fast mode: the same rounding as one call per partial;
 * reproducible mode: exact in any order). */
static void add_parts(imx_rsum *s, const double *const *d, const float *const *f, int nparts,
                      int ld) {
  s->deposits += nparts;
  double *b0 = s->bins, *b1 = b0 + s->count, *b2 = b1 + s->count;
  int bad = 0, repro = s->mode == IMX_RED_REPRODUCIBLE;
  for (int i = 0; i < s->rows; i++) {
    int64_t off = (int64_t)i * s->cols, row = (int64_t)i * ld;
    int jend = s->lower ? i + 1 : s->cols;
    for (int k = 0; k < nparts; k++) {
      if (d && repro)
        bad |= imx_exact_deposit(jend, d[k] + row, s->pv, s->pu[i], b0 + off, b1 + off, b2 + off);
      else if (repro)
        bad |= imx_exact_deposit_f(jend, f[k] + row, s->pv, s->pu[i], b0 + off, b1 + off, b2 + off);
      else if (d)
        for (int j = 0; j < jend; j++) b0[off + j] += d[k][row + j];
      else
        for (int j = 0; j < jend; j++) b0[off + j] += f[k][row + j];
    }
  }
  s->violated |= bad;
}

void imx_rsum_add_n(imx_rsum *s, const double *const *parts, int nparts, int ld) {
  add_parts(s, parts, NULL, nparts, ld);
}

void imx_rsum_add_f(imx_rsum *s, const float *const *parts, int nparts, int ld) {
  add_parts(s, NULL, parts, nparts, ld);
}

/* The preconditions of the exact sum, from the totals over the ranks. */
static imx_err check(imx_ctx *ctx, double deposits, double violated, double clamped) {
  if (clamped) /* too large to sum, not a bug */
    return imx_fail(ctx, IMX_ERR_NUMERIC,
                    "reproducible sum: values beyond %g (2^%d), the largest it sums exactly; the "
                    "inputs (data: rescale them with data.scale) or the outputs have grown too "
                    "large",
                    pow2(EMAX), EMAX);
  if (violated)
    return imx_fail(
        ctx, IMX_ERR_INTERNAL,
        "reproducible sum: a partial exceeded its magnitude bound (a bug: please report)");
  if (deposits > (double)IMX_RSUM_MAX_DEPOSITS)
    return imx_fail(ctx, IMX_ERR_DATA,
                    "reproducible sum of %.0f blocks exceeds the exact limit of %lld: raise "
                    "parallel.block or use parallel.reduction: fast",
                    deposits, (long long)IMX_RSUM_MAX_DEPOSITS);
  return IMX_OK;
}

imx_err imx_rsum_end(imx_ctx *ctx, imx_rsum *s, double *out) {
  int nbins = s->mode == IMX_RED_REPRODUCIBLE ? FOLD : 1;
  int64_t n = nbins * s->count;
  /* A symmetric sum in reproducible mode sends its lower triangle only:
   * each bin's elements j <= i packed in place, in row-major order, to the
   * front (a packed index never exceeds its full one, so the copy reads
   * ahead of what it writes). Its pieces sum exactly in any order, so the
   * bits are those of the full exchange; fast mode keeps the full layout
   * (a different message size may change MPI's summation order). */
  int64_t tri = (int64_t)s->rows * (s->rows + 1) / 2;
  int packed = s->lower && nbins == FOLD && s->rows == s->cols;
  if (packed) {
    for (int b = 0; b < nbins; b++) {
      const double *src = s->bins + b * s->count;
      double *dst = s->bins + b * tri;
      for (int64_t i = 0, p = 0; i < s->rows; i++)
        for (int64_t j = 0; j <= i; j++) dst[p++] = src[i * s->cols + j];
    }
    n = nbins * tri;
  }
  /* Reproducible mode: the checks travel behind the bins, as doubles (exact
   * integers far below 2^53), in the same MPI_Allreduce. Fast mode sums no
   * checks and keeps its message (its size may change MPI's order). */
  int checks = nbins == FOLD ? CHECKS : 0;
  if (checks) {
    s->bins[n] = (double)s->deposits, s->bins[n + 1] = s->violated;
    s->bins[n + 2] = s->violated && s->clamped;
    n += checks;
  }
  /* MPI counts are int: reduce in chunks. Piece sums are exact, so any
   * reduction order gives the same bits. */
  const int64_t chunk = INT64_C(1) << 26;
  for (int64_t off = 0; off < n; off += chunk) {
    int len = (int)(n - off < chunk ? n - off : chunk);
    imx_comm_sent(ctx, 8.0 * len, 1);
    IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, s->bins + off, len, MPI_DOUBLE, MPI_SUM, ctx->comm));
  }
  if (checks) IMX_TRY(check(ctx, s->bins[n - 3], s->bins[n - 2], s->bins[n - 1]));
  int64_t stride = packed ? tri : s->count;
  for (int i = 0; i < s->rows; i++) {
    int jend = s->lower ? i + 1 : s->cols;
    for (int j = 0; j < jend; j++) {
      int64_t k = (int64_t)i * s->cols + j, q = packed ? (int64_t)i * (i + 1) / 2 + j : k;
      double v = s->bins[q];
      if (nbins == FOLD) v = (s->bins[q] + s->bins[stride + q]) + s->bins[2 * stride + q];
      out[k] = v;
      if (s->lower) out[(int64_t)j * s->cols + i] = v;
    }
  }
  return IMX_OK;
}
