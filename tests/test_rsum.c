/* test_rsum: the reproducible sum is exact and independent of order and of
 * how partials are split across ranks; the fast sum is a plain sum. */
#include "imx/rsum.h"

#include "imx/blas.h"
#include "imx/exact.h"
#include "imx/moments.h"
#include "testing.h"

#define COUNT 64
#define PARTS 1000

/* Random values in [-1, 1] with ~1/8 of them exactly on the bound edge
 * (+-1, the largest a bound of 1 admits), a few zeros and tiny ones. */
static double edge_value(void) {
  int r = rand() % 16;
  if (r == 0) return 1.0;
  if (r == 1) return -1.0;
  if (r == 2) return 0.0;
  if (r == 3) return ldexp((double)rand() / RAND_MAX, -200);
  if (r == 4) return 1.0 - 0x1p-53;
  return 2.0 * rand() / RAND_MAX - 1.0;
}

/* imx_rsum_add_n: groups of 1 to 7 partials give the bits of imx_rsum_add
 * one at a time, for full and lower (symmetric) sums, in both modes, with
 * values on the bound edge. */
static void grouped_deposits(imx_ctx *ctx) {
  enum { R = 13, Cc = 13, NP = 200 };
  static double p[NP][R * Cc];
  double u[R], v[Cc];
  for (int i = 0; i < R; i++) u[i] = ldexp(1.0, (rand() % 40) - 20);
  for (int j = 0; j < Cc; j++) v[j] = ldexp(1.0, (rand() % 40) - 20);
  for (int k = 0; k < NP; k++)
    for (int i = 0; i < R; i++)
      for (int j = 0; j < Cc; j++) /* the bound: a power of two rounds up to twice itself */
        p[k][i * Cc + j] = edge_value() * (2 * u[i]) * (2 * v[j]);
  for (int mode = 0; mode < 2; mode++)
    for (int lower = 0; lower < 2; lower++) {
      imx_rsum *s = NULL;
      imx_err e = imx_rsum_create(ctx, mode ? IMX_RED_FAST : IMX_RED_REPRODUCIBLE, R, Cc, lower,
                                  &s);
      double one[R * Cc], grouped[R * Cc];
      imx_rsum_begin(s, 1.0, u, v);
      for (int k = 0; k < NP; k++) imx_rsum_add(s, p[k], Cc);
      if (!e) e = imx_rsum_end(ctx, s, one);
      imx_rsum_begin(s, 1.0, u, v);
      const double *parts[7];
      for (int k = 0; k < NP;) {
        int g = 0;
        for (; g < 1 + (k / 3) % 7 && k < NP; g++, k++) parts[g] = p[k];
        imx_rsum_add_n(s, parts, g, Cc);
      }
      if (!e) e = imx_rsum_end(ctx, s, grouped);
      t_check(!e && !memcmp(one, grouped, sizeof one),
              "%s %s sum of %d partials (1/8 on the bound edge): 1 to 7 at a time (imx_rsum_add_n) "
              "gives the bits of one at a time (%s)",
              mode ? "fast" : "reproducible", lower ? "lower" : "full", NP, e ? ctx->msg : "ok");
      imx_rsum_free(&s);
    }
}

/* imx_exact_deposit (vectorized) against the split written one value at a
 * time (include/imx/exact.h), on values up to and at the bound: the same bins. */
static void deposit_reference(void) {
  enum { N = 1001 };
  static double x[N], u[N], b[3][N], r[3][N];
  for (int i = 0; i < N; i++) {
    u[i] = ldexp(1.0, (rand() % 60) - 30);
    x[i] = edge_value() * u[i] * 0.5;
  }
  for (int rep = 0; rep < 3; rep++) {
    int bad = imx_exact_deposit(N - rep, x + rep, u + rep, 0.5, b[0], b[1], b[2]);
    for (int i = 0; i < N - rep; i++) {
      double U = u[i + rep] * 0.5, v = x[i + rep];
      double q0 = U * (1.5 * 0x1p22), p0 = (v + q0) - q0;
      v -= p0;
      double q1 = U * (1.5 * 0x1p-8), p1 = (v + q1) - q1;
      v -= p1;
      double q2 = U * (1.5 * 0x1p-38), p2 = (v + q2) - q2;
      r[0][i] += p0, r[1][i] += p1, r[2][i] += p2;
    }
    t_check(!bad && !memcmp(b, r, sizeof b),
            "imx_exact_deposit (vectorized) of %d values, 1/8 at the bound: the bins of the "
            "one-value-at-a-time split (offset %d)",
            N - rep, rep);
  }
}

/* imx_moments_colsum and imx_moments_atb (which deposit 4 blocks at a time)
 * against one imx_rsum_add per block, and with maxima taken by the caller in
 * pieces (imx_colmax_local) against maxima computed inside: the same bits. */
static void moments_grouped(imx_ctx *ctx) {
  enum { M = 900, KA = 5, KB = 7, BL = 64 }; /* 15 blocks: groups of 4, 4, 4, 3 */
  static double A[M * KA], Bm[M * KB];
  for (int i = 0; i < M * KA; i++) A[i] = edge_value() * 3;
  for (int i = 0; i < M * KB; i++) Bm[i] = edge_value();
  double amax[KA] = {0}, bmax[KB];
  for (int r0 = 0; r0 < M; r0 += 100)
    imx_colmax_local(M - r0 < 100 ? M - r0 : 100, KA, A + r0 * KA, KA, amax);
  imx_err e = imx_colmax_reduce(ctx, KA, amax);
  if (!e) e = imx_colmax(ctx, M, KB, Bm, KB, bmax);
  imx_rsum *s = NULL, *sc = NULL, *ss = NULL;
  if (!e) e = imx_rsum_create(ctx, IMX_RED_REPRODUCIBLE, KA, KB, 0, &s);
  if (!e) e = imx_rsum_create(ctx, IMX_RED_REPRODUCIBLE, 1, KA, 0, &sc);
  if (!e) e = imx_rsum_create(ctx, IMX_RED_REPRODUCIBLE, KA, KA, 1, &ss);
  double ref[KA * KB], got[KA * KB], got2[KA * KB], cref[KA], cgot[KA], cgot2[KA];
  double sref[KA * KA], sgot[KA * KA], sgot2[KA * KA];
  if (!e) { /* the reference: one deposit per block, as before grouping */
    imx_rsum_begin(s, (double)BL, amax, bmax);
    imx_rsum_begin(sc, (double)BL, NULL, amax);
    imx_rsum_begin(ss, (double)BL, amax, amax);
    for (int r0 = 0; r0 < M; r0 += BL) {
      int rows = M - r0 < BL ? M - r0 : BL;
      double w[KA * KB], wc[KA] = {0}, ws[KA * KA];
      for (int i = r0; i < r0 + rows; i++)
        for (int a = 0; a < KA; a++) wc[a] += A[i * KA + a];
      /* The block's products by the BLAS calls imx_moments_atb makes. */
      const double one = 1, zero = 0;
      int ka = KA, kb = KB, lda = KA, ldb = KB;
      dgemm_("N", "T", &kb, &ka, &rows, &one, Bm + r0 * ldb, &ldb, A + r0 * lda, &lda, &zero, w,
             &kb);
      dsyrk_("U", "N", &ka, &rows, &one, A + r0 * lda, &lda, &zero, ws, &ka);
      imx_rsum_add(s, w, KB);
      imx_rsum_add(sc, wc, KA);
      imx_rsum_add(ss, ws, KA);
    }
    e = imx_rsum_end(ctx, s, ref);
    if (!e) e = imx_rsum_end(ctx, sc, cref);
    if (!e) e = imx_rsum_end(ctx, ss, sref);
  }
  if (!e) e = imx_moments_atb(ctx, s, BL, M, KA, A, KA, amax, KB, Bm, KB, bmax, got);
  if (!e) e = imx_moments_atb(ctx, s, BL, M, KA, A, KA, NULL, KB, Bm, KB, NULL, got2);
  if (!e) e = imx_moments_colsum(ctx, sc, BL, M, KA, A, KA, amax, cgot);
  if (!e) e = imx_moments_colsum(ctx, sc, BL, M, KA, A, KA, NULL, cgot2);
  if (!e) e = imx_moments_atb(ctx, ss, BL, M, KA, A, KA, amax, KA, A, KA, NULL, sgot);
  if (!e) e = imx_moments_atb(ctx, ss, BL, M, KA, A, KA, NULL, KA, A, KA, NULL, sgot2);
  t_check(!e && !memcmp(ref, got, sizeof ref) && !memcmp(ref, got2, sizeof ref),
          "imx_moments_atb over 15 blocks (4 at a time): the bits of one deposit per block, with "
          "the maxima given or computed (%s)",
          e ? ctx->msg : "ok");
  t_check(!e && !memcmp(sref, sgot, sizeof sref) && !memcmp(sref, sgot2, sizeof sref),
          "imx_moments_atb of A^T A (dsyrk, lower) over 15 blocks: the bits of one deposit per "
          "block, with the maxima given or computed");
  t_check(!e && !memcmp(cref, cgot, sizeof cref) && !memcmp(cref, cgot2, sizeof cref),
          "imx_moments_colsum over 15 blocks: the bits of one deposit per block, with the maxima "
          "given or computed");
  imx_rsum_free(&s), imx_rsum_free(&sc), imx_rsum_free(&ss);
}

/* The checks that travel with the bins (imx_rsum_end): the deposit limit
 * (at it: fine; one more: IMX_ERR_DATA) and values beyond 2^480. */
static void limits(imx_ctx *ctx) {
  imx_rsum *s = NULL;
  double x = 0.5, out;
  imx_err e = imx_rsum_create(ctx, IMX_RED_REPRODUCIBLE, 1, 1, 0, &s);
  if (e) {
    t_check(0, "limits: %s", ctx->msg);
    return;
  }
  imx_rsum_begin(s, 1.0, NULL, NULL);
  for (int64_t k = 0; k < IMX_RSUM_MAX_DEPOSITS; k++) imx_rsum_add(s, &x, 1);
  e = imx_rsum_end(ctx, s, &out);
  t_check(!e && out == 0.5 * (double)IMX_RSUM_MAX_DEPOSITS,
          "2^21 deposits (the limit): sum %.17g (want %.17g), code %d", out,
          0.5 * (double)IMX_RSUM_MAX_DEPOSITS, e);
  imx_rsum_begin(s, 1.0, NULL, NULL);
  for (int64_t k = 0; k <= IMX_RSUM_MAX_DEPOSITS; k++) imx_rsum_add(s, &x, 1);
  e = imx_rsum_end(ctx, s, &out);
  t_check(e == IMX_ERR_DATA && strstr(ctx->msg, "2097153 blocks"),
          "2^21 + 1 deposits: IMX_ERR_DATA (code %d, \"%s\")", e, ctx->msg);
  /* The vectorized bound test: a value one ulp above its bound is caught,
   * one at the bound and a NaN (found later as a non-finite result) are not
   * violations. */
  double xs[5] = {0.25, 1.0, -1.0, 0.5, 0.0}, u1 = 0.75;
  const double *xp = xs;
  for (int c = 0; c < 3; c++) {
    xs[4] = c == 0 ? 0.0 : c == 1 ? nextafter(1.0, 2.0) : NAN;
    imx_rsum *s5 = NULL;
    imx_rsum_create(ctx, IMX_RED_REPRODUCIBLE, 1, 5, 0, &s5);
    imx_rsum_begin(s5, 0.375, &u1, NULL); /* 0.5 x 1 x 2 (v: 1 rounds up to 2) */
    imx_rsum_add_n(s5, &xp, 1, 5);
    double o5[5];
    e = imx_rsum_end(ctx, s5, o5);
    const char *what[] = {"values at the bound (+-1) pass", "1 + 2^-52 is a violation",
                          "a NaN is not a violation"};
    t_check(c == 1 ? e == IMX_ERR_INTERNAL : e == IMX_OK, "bound 1: %s (code %d)", what[c], e);
    imx_rsum_free(&s5);
  }
  double big = 0x1p500;
  imx_rsum_begin(s, 1.0, NULL, &big);
  x = 0x1p490;
  imx_rsum_add(s, &x, 1);
  e = imx_rsum_end(ctx, s, &out);
  t_check(e == IMX_ERR_NUMERIC, "a value beyond 2^480: IMX_ERR_NUMERIC (code %d, \"%s\")", e,
          ctx->msg);
  imx_rsum_free(&s);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx ctx;
  imx_ctx_init(&ctx, MPI_COMM_SELF);
  /* Partials spanning 12 orders of magnitude with heavy cancellation. */
  static double p[PARTS][COUNT];
  double bound[COUNT];
  for (int j = 0; j < COUNT; j++) bound[j] = 0;
  srand(7);
  for (int i = 0; i < PARTS; i++)
    for (int j = 0; j < COUNT; j++) {
      double mag = pow(10.0, (rand() % 13) - 6);
      p[i][j] = mag * ((double)rand() / RAND_MAX - 0.5);
      if (fabs(p[i][j]) > bound[j]) bound[j] = fabs(p[i][j]);
    }
  imx_rsum *s = NULL;
  imx_rsum_create(&ctx, IMX_RED_REPRODUCIBLE, 1, COUNT, 0, &s);
  double fwd[COUNT], rev[COUNT], odd[COUNT];
  imx_rsum_begin(s, 1.0, NULL, bound);
  for (int i = 0; i < PARTS; i++) imx_rsum_add(s, p[i], COUNT);
  imx_rsum_end(&ctx, s, fwd);
  imx_rsum_begin(s, 1.0, NULL, bound);
  for (int i = PARTS - 1; i >= 0; i--) imx_rsum_add(s, p[i], COUNT);
  imx_rsum_end(&ctx, s, rev);
  imx_rsum_begin(s, 1.0, NULL, bound);
  for (int i = 1; i < PARTS; i += 2) imx_rsum_add(s, p[i], COUNT);
  for (int i = 0; i < PARTS; i += 2) imx_rsum_add(s, p[i], COUNT);
  imx_rsum_end(&ctx, s, odd);
  t_check(!memcmp(fwd, rev, sizeof fwd) && !memcmp(fwd, odd, sizeof fwd),
          "reproducible sum: forward, reverse and interleaved orders give identical bits");

  /* Accuracy against a long double sum: within a few ulps of the true sum. */
  double worst = 0;
  for (int j = 0; j < COUNT; j++) {
    long double t = 0;
    for (int i = 0; i < PARTS; i++) t += p[i][j];
    double err = fabs(fwd[j] - (double)t) / (fabs((double)t) > 1e-300 ? fabs((double)t) : 1);
    worst = err > worst ? err : worst;
  }
  t_check(worst < 1e-15, "reproducible sum accuracy: max rel err %.2e (tol 1e-15)", worst);

  /* Float partials added several at a time (imx_rsum_add_f) give the bits
   * of imx_rsum_add of each widened to double, in any grouping. */
  static float pf[PARTS][COUNT];
  double wide[COUNT], grouped[COUNT];
  const float *parts[7];
  for (int i = 0; i < PARTS; i++)
    for (int j = 0; j < COUNT; j++) pf[i][j] = (float)p[i][j];
  imx_rsum_begin(s, 1.0, NULL, bound);
  for (int i = 0; i < PARTS; i++) {
    for (int j = 0; j < COUNT; j++) wide[j] = pf[i][j];
    imx_rsum_add(s, wide, COUNT);
  }
  imx_rsum_end(&ctx, s, wide);
  imx_rsum_begin(s, 1.0, NULL, bound);
  for (int i = 0; i < PARTS;) {
    int g = 0;
    for (; g < 1 + i % 7 && i < PARTS; g++, i++) parts[g] = pf[i];
    imx_rsum_add_f(s, parts, g, COUNT);
  }
  imx_rsum_end(&ctx, s, grouped);
  t_check(!memcmp(wide, grouped, sizeof wide),
          "reproducible sum of float partials: 1 to 7 at a time (imx_rsum_add_f) gives the bits "
          "of one at a time widened to double");

  /* A violated bound is reported, not silently wrong. */
  double small[COUNT];
  for (int j = 0; j < COUNT; j++) small[j] = 1e-9;
  imx_rsum_begin(s, 1.0, NULL, small);
  imx_rsum_add(s, p[0], COUNT);
  imx_err e = imx_rsum_end(&ctx, s, odd);
  t_check(e == IMX_ERR_INTERNAL, "bound violation reported (code %d, \"%s\")", e, ctx.msg);
  imx_rsum_free(&s);

  /* Symmetric (lower) mode mirrors. */
  imx_rsum_create(&ctx, IMX_RED_FAST, 3, 3, 1, &s);
  double m[9] = {1, 99, 99, 2, 3, 99, 4, 5, 6}, out[9];
  imx_rsum_begin(s, 1.0, NULL, NULL);
  imx_rsum_add(s, m, 3);
  imx_rsum_end(&ctx, s, out);
  double want[9] = {1, 2, 4, 2, 3, 5, 4, 5, 6};
  t_check(!memcmp(out, want, sizeof out), "lower mode sums the lower triangle and mirrors it");
  imx_rsum_free(&s);

  deposit_reference();
  grouped_deposits(&ctx);
  moments_grouped(&ctx);
  limits(&ctx);

  imx_ctx_finalize(&ctx);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
