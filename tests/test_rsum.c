/* test_rsum: the reproducible sum is exact and independent of order and of
 * how partials are split across ranks; the fast sum is a plain sum. */
#include "imx/rsum.h"

#include "testing.h"

#define COUNT 64
#define PARTS 1000

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

  imx_ctx_finalize(&ctx);
  int rc = t_finish();
  MPI_Finalize();
  return rc;
}
