/* test_batch: mini-batch training's pieces (include/imx/batch.h, imx_layer_use_blocks).
 * The shuffle visits every block once per epoch, is the same on every rank
 * and differs between epochs; the learning-rate schedules and the adam and sgd
 * updates against their formulas; a layer evaluated on a subset of its blocks
 * gives the objective and gradient of a layer made of exactly those rows
 * (relative 1e-12), its gradient matches finite differences, and all rows
 * again give the full objective's bits; with C blended across steps
 * (optimizer.cov_blend) the gradient matches finite differences and the
 * saved state gives the same bits. Collective. */
#include "imx/batch.h"
#include "imx/layer.h"
#include "imx/preprocess.h"
#include "imx/rng.h"

#include "testing.h"

static imx_ctx ctx;

/* FNV-1a over bytes. */
static uint64_t fnv(uint64_t h, const void *p, size_t len) {
  const unsigned char *b = p;
  for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}

/* The shuffle of one plan over 3 epochs; returns a hash of its permutations. */
static uint64_t check_plan(int64_t N, int B, int batch) {
  imx_batch_plan p;
  imx_batch_plan_init(&p, N, B, batch, 3);
  int64_t *perm = malloc((size_t)p.nb * sizeof *perm), *prev = malloc((size_t)p.nb * sizeof *prev);
  int *seen = calloc((size_t)p.nb, sizeof *seen);
  uint64_t h = 1469598103934665603ULL;
  int ok = 1, differ = p.nb < 3, fewest_ok = 1;
  for (int64_t e = 0; e < 3; e++) {
    imx_batch_permutation(&p, e, perm);
    h = fnv(h, perm, (size_t)p.nb * sizeof *perm);
    if (e > 0 && memcmp(perm, prev, (size_t)p.nb * sizeof *perm)) differ = 1;
    memcpy(prev, perm, (size_t)p.nb * sizeof *perm);
    memset(seen, 0, (size_t)p.nb * sizeof *seen);
    for (int64_t t = e * p.steps; t < (e + 1) * p.steps; t++) {
      int64_t first, count, rows = 0;
      imx_batch_of_step(&p, t, &first, &count);
      for (int64_t k = first; k < first + count; k++) {
        seen[perm[k]]++;
        rows += imx_batch_block_rows(&p, perm[k]);
      }
      if (count < p.per_batch || rows < imx_batch_min_rows(&p)) fewest_ok = 0;
    }
    for (int64_t i = 0; i < p.nb; i++) ok &= seen[i] == 1;
  }
  t_check(
      ok && differ && fewest_ok,
      "N=%lld B=%d batch=%d: %lld blocks, %d steps of >= %d blocks per epoch; every block "
      "once in each of 3 epochs: %s, the epochs' orders differ: %s, no batch below %lld rows: %s",
      (long long)N, B, batch, (long long)p.nb, p.steps, p.per_batch, ok ? "yes" : "NO",
      differ ? "yes" : "NO", (long long)imx_batch_min_rows(&p), fewest_ok ? "yes" : "NO");
  free(perm), free(prev), free(seen);
  return h;
}

static void check_updates(void) {
  imx_batch_plan p;
  imx_batch_plan_init(&p, 1000, 10, 100, 1); /* 10 steps per epoch */
  double c0 = imx_batch_lr(&p, IMX_SCHED_COSINE, 0.2, 0, 0, 0, 50);
  double c1 = imx_batch_lr(&p, IMX_SCHED_COSINE, 0.2, 0, 0, 25, 50);
  double s0 = imx_batch_lr(&p, IMX_SCHED_STEP, 0.2, 0.5, 2, 19, 50);
  double s1 = imx_batch_lr(&p, IMX_SCHED_STEP, 0.2, 0.5, 2, 20, 50);
  double k = imx_batch_lr(&p, IMX_SCHED_CONSTANT, 0.2, 0.5, 2, 37, 50);
  t_check(c0 == 0.2 && fabs(c1 - 0.1) < 1e-15 && s0 == 0.2 && s1 == 0.1 && k == 0.2,
          "schedules: cosine %g at 0, %g at half (want 0.2, 0.1); step %g at epoch 1.9, %g at 2 "
          "(want 0.2, 0.1); constant %g",
          c0, c1, s0, s1, k);
  /* adam, two steps by hand */
  double x = 1, m = 0, v = 0, g1 = 0.5, g2 = -2, b1 = 0.9, b2 = 0.99, eps = 1e-8, lr = 0.1;
  imx_batch_update(IMX_STOCH_ADAM, 1, &x, &g1, &m, &v, lr, b1, b2, eps, 0, 0);
  imx_batch_update(IMX_STOCH_ADAM, 1, &x, &g2, &m, &v, lr, b1, b2, eps, 0, 1);
  double M = 0, V = 0, X = 1;
  M = (1 - b1) * g1, V = (1 - b2) * g1 * g1;
  X -= lr * (M / (1 - b1)) / (sqrt(V / (1 - b2)) + eps);
  M = b1 * M + (1 - b1) * g2, V = b2 * V + (1 - b2) * g2 * g2;
  X -= lr * (M / (1 - b1 * b1)) / (sqrt(V / (1 - b2 * b2)) + eps);
  t_check(x == X && m == M && v == V, "adam, 2 steps: x %.17g (formula %.17g)", x, X);
  double y = 1, vel = 0, gs[2] = {0.5, -2};
  for (int t = 0; t < 2; t++)
    imx_batch_update(IMX_STOCH_SGD, 1, &y, gs + t, &vel, NULL, 0.1, 0, 0, 0, 0.9, t);
  double Y = 1 - 0.1 * 0.5 - 0.1 * (0.9 * 0.5 - 2);
  t_check(fabs(y - Y) < 1e-15, "sgd with momentum 0.9, 2 steps: x %.17g (formula %.17g)", y, Y);
}

/* The rows of the listed blocks held here, in block order, as a data set of
 * their own (its blocks on the ranks that hold them). Collective. */
static imx_data sub_data(const imx_data *d, const int64_t *blocks, int count) {
  imx_data s = {.n = d->n, .block = d->block};
  int64_t B = d->block, first = d->row0 / B, nlb = (d->nloc + B - 1) / B;
  s.X = malloc(((size_t)d->nloc + 1) * d->n * sizeof *s.X);
  for (int64_t j = 0; j < nlb; j++) {
    int listed = 0;
    for (int k = 0; k < count; k++) listed |= blocks[k] == first + j;
    if (!listed) continue;
    int64_t r = d->nloc - j * B < B ? d->nloc - j * B : B;
    memcpy(s.X + s.nloc * d->n, d->X + j * B * d->n, (size_t)(r * d->n) * sizeof *s.X);
    s.nloc += r;
  }
  MPI_Allreduce(&s.nloc, &s.N, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  MPI_Exscan(&s.nloc, &s.row0, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  if (ctx.rank == 0) s.row0 = 0;
  return s;
}

/* Directional derivative of the batch objective along 2 random directions:
 * the largest relative error. */
static double fd(imx_layer *l, const double *theta, const double *g, int np) {
  double *x = malloc((size_t)np * sizeof *x), worst = 0;
  for (int dir = 0; dir < 2; dir++) {
    double gd = 0, f[2][2];
    for (int i = 0; i < np; i++) gd += g[i] * imx_rng_normal(7, (uint64_t)dir, (uint64_t)i);
    for (int k = 0; k < 2; k++)
      for (int sgn = 0; sgn < 2; sgn++) {
        double h = (sgn ? -1e-4 : 1e-4) / (1 << k);
        for (int i = 0; i < np; i++)
          x[i] = theta[i] + h * imx_rng_normal(7, (uint64_t)dir, (uint64_t)i);
        imx_layer_eval(&ctx, l, x, &f[k][sgn], NULL, NULL);
      }
    double d0 = (f[0][0] - f[0][1]) / 2e-4, d1 = (f[1][0] - f[1][1]) / 1e-4;
    double err = t_relerr(gd, (4 * d1 - d0) / 3, 1e-6);
    worst = err > worst ? err : worst;
  }
  free(x);
  return worst;
}

static void check_layer(const imx_config *c, const imx_data *d, const char *what) {
  const int64_t blocks[] = {24, 3, 7, 0, 12, 13}; /* the short last one; 12, 13 a run */
  const int count = 6;
  imx_layer *l = NULL, *ls = NULL;
  imx_data s = sub_data(d, blocks, count);
  if (imx_layer_create(&ctx, c, d, &l) || imx_layer_create(&ctx, c, &s, &ls)) {
    t_check(0, "%s: create the layers: %s", what, ctx.msg);
    return;
  }
  int np = imx_layer_nparams(l);
  double *theta = malloc((size_t)np * sizeof *theta), *g1 = malloc((size_t)np * sizeof *g1),
         *g2 = malloc((size_t)np * sizeof *g2), *g0 = malloc((size_t)np * sizeof *g0);
  double f0, f1, f2, f3;
  imx_layer_init_params(&ctx, l, c, theta);
  for (int i = 0; i < np; i++) theta[i] += 0.2 * imx_rng_normal(5, 0, (uint64_t)i);
  imx_err e = imx_layer_eval(&ctx, l, theta, &f0, g0, NULL);
  if (!e) e = imx_layer_use_blocks(&ctx, l, blocks, count);
  if (!e) e = imx_layer_eval(&ctx, l, theta, &f1, g1, NULL);
  if (!e) e = imx_layer_eval(&ctx, ls, theta, &f2, g2, NULL);
  double gerr = 0, gmax = 0;
  for (int i = 0; i < np; i++)
    gerr = fmax(gerr, fabs(g1[i] - g2[i])), gmax = fmax(gmax, fabs(g2[i]));
  t_check(!e && t_relerr(f1, f2, 1e-300) <= 1e-12 && gerr <= 1e-12 * gmax,
          "%s: on blocks {24, 3, 7, 0, 12, 13} (%lld rows) = a layer of those rows alone: loss "
          "%.15g vs %.15g (rel %.1e), gradient rel %.1e (tol 1e-12)%s",
          what, (long long)s.N, f1, f2, t_relerr(f1, f2, 1e-300), gerr / gmax, e ? ctx.msg : "");
  double err = e ? INFINITY : fd(l, theta, g1, np);
  t_check(err < 1e-6, "%s: batch gradient vs finite differences: rel err %.2e (tol 1e-6)", what,
          err);
  if (!e) e = imx_layer_use_blocks(&ctx, l, NULL, 0);
  if (!e) e = imx_layer_eval(&ctx, l, theta, &f3, g1, NULL);
  t_check(!e && f3 == f0 && !memcmp(g0, g1, (size_t)np * sizeof *g0),
          "%s: all rows again: the full objective's bits (%.15g)", what, f3);
  free(theta), free(g0), free(g1), free(g2), free(s.X);
  imx_layer_free(&l), imx_layer_free(&ls);
}

/* optimizer.cov_blend: C_run committed on one batch, then an evaluation on
 * another is the objective at a C_run + (1 - a) C_batch with C_run a constant:
 * its gradient matches finite differences, evaluations do not move C_run (the
 * same bits again), it differs from the unblended objective, and the state
 * saved and loaded into a fresh layer gives the same bits. */
static void check_blend(const imx_config *c, const imx_data *d, const char *what) {
  const int64_t b1[] = {5, 9, 2, 17}, b2[] = {1, 24, 11, 6, 20};
  imx_layer *l = NULL, *l2 = NULL;
  if (imx_layer_create(&ctx, c, d, &l) || imx_layer_create(&ctx, c, d, &l2) ||
      imx_layer_set_blend(&ctx, l, 0.7) || imx_layer_set_blend(&ctx, l2, 0.7)) {
    t_check(0, "%s: create the blended layers: %s", what, ctx.msg);
    return;
  }
  int np = imx_layer_nparams(l);
  size_t ns = imx_layer_blend_count(l);
  double *theta = malloc((size_t)np * sizeof *theta), *g = malloc((size_t)np * sizeof *g),
         *g2 = malloc((size_t)np * sizeof *g2), *st = malloc(ns * sizeof *st);
  double f0, fb, fb2, fu, fl;
  imx_layer_init_params(&ctx, l, c, theta);
  for (int i = 0; i < np; i++) theta[i] += 0.2 * imx_rng_normal(5, 1, (uint64_t)i);
  imx_err e = imx_layer_use_blocks(&ctx, l, b1, 4);
  if (!e) e = imx_layer_eval(&ctx, l, theta, &f0, g, NULL);
  imx_layer_blend_commit(l);
  for (int i = 0; i < np; i++) theta[i] += 0.05 * imx_rng_normal(5, 2, (uint64_t)i);
  if (!e) e = imx_layer_use_blocks(&ctx, l, b2, 5);
  if (!e) e = imx_layer_eval(&ctx, l, theta, &fb, g, NULL);
  double err = e ? INFINITY : fd(l, theta, g, np);
  t_check(err < 1e-6, "%s, cov_blend 0.7: gradient vs finite differences: rel err %.2e (tol 1e-6)",
          what, err);
  if (!e) e = imx_layer_eval(&ctx, l, theta, &fb2, g2, NULL);
  t_check(!e && fb2 == fb && !memcmp(g, g2, (size_t)np * sizeof *g),
          "%s, cov_blend 0.7: evaluations leave C_run as it was (the same bits: %.15g)", what, fb2);
  /* l2 without a committed C_run: the batch's own C. */
  if (!e) e = imx_layer_use_blocks(&ctx, l2, b2, 5);
  if (!e) e = imx_layer_eval(&ctx, l2, theta, &fu, g2, NULL);
  t_check(!e && fabs(fu - fb) > 1e-6 * fabs(fu),
          "%s, cov_blend 0.7: the blended loss %.12g differs from the batch's own %.12g", what, fb,
          fu);
  imx_layer_blend_save(l, st);
  imx_layer_blend_load(l2, st);
  if (!e) e = imx_layer_eval(&ctx, l2, theta, &fl, g2, NULL);
  t_check(!e && fl == fb && !memcmp(g, g2, (size_t)np * sizeof *g) && st[0] == 1,
          "%s, cov_blend 0.7: C_run saved and loaded into another layer: the same bits (%zu "
          "values)",
          what, ns);
  free(theta), free(g), free(g2), free(st);
  imx_layer_free(&l), imx_layer_free(&l2);
}

int main(int argc, char **argv) {
  t_init(&argc, &argv, &ctx);
  /* 1. The shuffle, on every rank; the same hash everywhere. */
  uint64_t h = check_plan(2000, 64, 256) ^ check_plan(390, 16, 48) ^ check_plan(1000, 100, 1000) ^
               check_plan(17, 4, 8) ^ check_plan(100000, 256, 4096);
  uint64_t lo = h, hi = h;
  MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  t_check(lo == hi, "the shuffle is the same on all %d ranks (hash %016llx)", ctx.size,
          (unsigned long long)h);
  check_updates();

  /* 2. A layer on a subset of its blocks: 390 rows in 25 blocks of 16 (the last has 6). */
  imx_config c;
  t_small_config(&c, 390, 6, 5, 16);
  c.parallel.path = IMX_PATH_DATA;
  imx_data *d = NULL;
  if (imx_data_load(&ctx, &c, &d) || imx_preprocess_apply(&ctx, &c, d, NULL, NULL)) {
    t_check(0, "load data: %s", ctx.msg);
    return t_end(&ctx);
  }
  imx_config cs = c;
  cs.model.activation = IMX_ACT_SOFTMAX;
  snprintf(cs.objective.preset, sizeof cs.objective.preset, "gaussian");
  check_layer(&cs, d, "softmax, gaussian");
  imx_config cr = c;
  cr.model.activation = IMX_ACT_RELU;
  snprintf(cr.objective.preset, sizeof cr.objective.preset, "none");
  for (int t = 0; t < IMX_NTERMS; t++) cr.objective.weight[t] = 0;
  cr.objective.weight[IMX_TERM_LOGDET] = 1, cr.objective.weight[IMX_TERM_ENTROPY] = 0.5;
  cr.objective.eps = 1e-3;
  check_layer(&cr, d, "relu, logdet + entropy");
  check_blend(&cs, d, "softmax, gaussian");
  check_blend(&cr, d, "relu, logdet + entropy");

  /* 3. Where a batch cannot be evaluated: C from the input covariance. */
  imx_config ci = c;
  ci.model.activation = IMX_ACT_IDENTITY;
  snprintf(ci.objective.preset, sizeof ci.objective.preset, "gaussian");
  imx_layer *l = NULL;
  char why[200] = "";
  int can = imx_layer_create(&ctx, &ci, d, &l) ? -1 : imx_layer_batchable(l, why, sizeof why);
  t_check(can == 0 && strstr(why, "input covariance"),
          "identity units with moment terms: not batchable (\"%s\")", why);
  imx_layer_free(&l);
  imx_data_free(&d);
  return t_end(&ctx);
}
