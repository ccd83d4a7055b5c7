/* exact: order-independent exact accumulation into caller-owned bins (see
 * include/imx/exact.h; the method is imx_rsum's, docs/architecture.md). */
#include "imx/exact.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/rsum.h"

/* Exponent range of each bound factor (as in rsum.c): products of up to
 * three factors stay normal, and so do the quanta U 2^-90 below them. */
#define EMIN (-450)
#define EMAX 480

static double pow2i(int e) {
  uint64_t bits = (uint64_t)(e + 1023) << 52;
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

double imx_exact_pow2(double x) {
  if (!(x > 0)) return pow2i(EMIN);
  int e = EMAX;
  if (!isinf(x)) frexp(x, &e); /* x = f 2^e, f in [0.5, 1) */
  return pow2i(e < EMIN ? EMIN : e > EMAX ? EMAX : e);
}

/* Is some |x_i| > U_i = u[i] * v (or U, when u is NULL)? The plain test, for
 * the rare call whose vectorized test below flagged it (a violation, or a
 * NaN, which is not one). */
static int exceeds(int n, const double *x, const double *u, double v) {
  int bad = 0;
  for (int i = 0; i < n; i++) bad |= fabs(x[i]) > (u ? u[i] * v : v);
  return bad;
}

/* The sign bit of U - |r|: set when |r| > U (a nonzero difference of doubles
 * never rounds to 0) and possibly for a NaN r. An integer OR keeps the loops
 * below vectorizable (a comparison in them is not vectorized); a set bit is
 * confirmed by exceeds. */
static inline uint64_t sign_of(double t) {
  uint64_t b;
  memcpy(&b, &t, sizeof b);
  return b;
}

/* Adding M = 1.5 * 2^(q + 52) rounds r to a multiple of the quantum 2^q and
 * the subtraction is exact; the quanta are U 2^-30, U 2^-60, U 2^-90. No
 * branch in the loop, so it vectorizes (the same operations in any width: the
 * same bits). */
int imx_exact_deposit(int n, const double *x, const double *u, double v, double *b0, double *b1,
                      double *b2) {
  const double c0 = 1.5 * 0x1p22, c1 = 1.5 * 0x1p-8, c2 = 1.5 * 0x1p-38;
  uint64_t sign = 0;
  for (int i = 0; i < n; i++) {
    double U = u[i] * v, r = x[i];
    sign |= sign_of(U - fabs(r));
    double m0 = U * c0, p0 = (r + m0) - m0;
    r -= p0;
    double m1 = U * c1, p1 = (r + m1) - m1;
    r -= p1;
    double m2 = U * c2, p2 = (r + m2) - m2;
    b0[i] += p0;
    b1[i] += p1;
    b2[i] += p2;
  }
  return sign >> 63 ? exceeds(n, x, u, v) : 0;
}

/* Float values through a short double buffer (every float is a double: the
 * same pieces as imx_exact_deposit of the widened values). */
int imx_exact_deposit_f(int n, const float *x, const double *u, double v, double *b0, double *b1,
                        double *b2) {
  double buf[256];
  int bad = 0;
  for (int i0 = 0; i0 < n; i0 += 256) {
    int m = n - i0 < 256 ? n - i0 : 256;
    for (int i = 0; i < m; i++) buf[i] = x[i0 + i];
    bad |= imx_exact_deposit(m, buf, u + i0, v, b0 + i0, b1 + i0, b2 + i0);
  }
  return bad;
}

int imx_exact_deposit1(int n, const double *x, double U, double *b0, double *b1, double *b2) {
  const double c0 = 1.5 * 0x1p22, c1 = 1.5 * 0x1p-8, c2 = 1.5 * 0x1p-38;
  const double m0 = U * c0, m1 = U * c1, m2 = U * c2;
  uint64_t sign = 0;
  for (int i = 0; i < n; i++) {
    double r = x[i];
    sign |= sign_of(U - fabs(r));
    double p0 = (r + m0) - m0;
    r -= p0;
    double p1 = (r + m1) - m1;
    r -= p1;
    double p2 = (r + m2) - m2;
    b0[i] += p0;
    b1[i] += p1;
    b2[i] += p2;
  }
  return sign >> 63 ? exceeds(n, x, NULL, U) : 0;
}

void imx_exact_total(int64_t n, const double *b0, const double *b1, const double *b2, double *out) {
  for (int64_t i = 0; i < n; i++) out[i] = (b0[i] + b1[i]) + b2[i];
}

imx_err imx_exact_check(imx_ctx *ctx, int violated, int64_t deposits, const char *what,
                        const char *knob) {
  int64_t v[2] = {violated, deposits};
  imx_comm_sent(ctx, sizeof v, 1);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT64_T, MPI_SUM, ctx->comm));
  if (v[0])
    return imx_fail(ctx, IMX_ERR_INTERNAL,
                    "%s: a partial exceeded its magnitude bound (a bug: please report)", what);
  if (v[1] > IMX_RSUM_MAX_DEPOSITS)
    return imx_fail(ctx, IMX_ERR_DATA,
                    "%s: reproducible sum of %lld partials exceeds the exact limit of %lld: raise "
                    "%s or use parallel.reduction: fast",
                    what, (long long)v[1], (long long)IMX_RSUM_MAX_DEPOSITS, knob);
  return IMX_OK;
}

imx_err imx_exact_allreduce(imx_ctx *ctx, int nbins, int n, double *bins, int violated,
                            int64_t deposits, const char *what, double *out) {
  if (nbins == IMX_EXACT_FOLD)
    IMX_TRY(imx_exact_check(ctx, violated, deposits, what, "parallel.scalapack_block"));
  imx_comm_sent(ctx, 8.0 * nbins * n, 1);
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, bins, nbins * n, MPI_DOUBLE, MPI_SUM, ctx->comm));
  if (nbins == 1) {
    memcpy(out, bins, (size_t)n * sizeof *out);
    return IMX_OK;
  }
  imx_exact_total(n, bins, bins + n, bins + 2 * (int64_t)n, out);
  return IMX_OK;
}
