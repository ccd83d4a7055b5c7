/* test_probe: the linear probe (include/imx/probe.h), at any number of ranks:
 *   1. standardization: every feature has mean 0 and variance 1 over the
 *      train split; a constant feature becomes exactly 0;
 *   2. at theta = 0 the loss is log C exactly (C classes, uniform softmax);
 *   3. the gradient matches central finite differences (Richardson);
 *   4. well separated mixture components are classified (train and held-out
 *      accuracy >= 0.99), with the held-out split standardized with the train
 *      split's statistics;
 *   5. the trained parameters and accuracies on all ranks have the same bits
 *      as on one rank alone; fast reductions agree to rounding;
 *   6. a label outside [0, C) on one rank is an agreed IMX_ERR_DATA. Collective. */
#include <petscsys.h>

#include "imx/data.h"
#include "imx/probe.h"
#include "imx/rng.h"

#include "testing.h"

static imx_ctx ctx;

/* A mixture: 4 components in 10 dims, 1200 rows, means `separation` apart;
 * the features are the data plus a constant column (index 10). */
static imx_data *mixture(imx_ctx *c, imx_config *cfg, long long seed, double separation,
                         double **F) {
  imx_config_defaults(cfg);
  cfg->data.source = IMX_SRC_GMM;
  cfg->data.samples = 1200;
  cfg->data.dim = 10;
  cfg->data.components = 4;
  cfg->data.separation = separation;
  cfg->data.seed = (unsigned long long)seed;
  cfg->parallel.block = 32;
  cfg->eval.probe_max_it = 100;
  imx_data *d = NULL;
  if (imx_data_load(c, cfg, &d)) {
    t_check(0, "mixture: %s", c->msg);
    return NULL;
  }
  int dim = 11;
  *F = malloc((size_t)d->nloc * dim * sizeof **F);
  for (int64_t i = 0; i < d->nloc; i++) {
    for (int j = 0; j < 10; j++) (*F)[i * dim + j] = d->X[i * 10 + j];
    (*F)[i * dim + 10] = 3.7;
  }
  return d;
}

static imx_probe_data split_of(const imx_data *d, double *F) {
  return (
      imx_probe_data){.N = d->N, .nloc = d->nloc, .block = d->block, .F = F, .labels = d->labels};
}

static void standardization_and_gradient(void) {
  imx_config cfg;
  double *F = NULL;
  imx_data *d = mixture(&ctx, &cfg, 1, 12, &F);
  if (!d) return;
  int dim = 11, C = 4;
  imx_probe_data tr = split_of(d, F);
  imx_probe *p = NULL;
  if (imx_probe_create(&ctx, &cfg, dim, C, &tr, &p)) {
    t_check(0, "probe create: %s", ctx.msg);
    imx_data_free(&d);
    free(F);
    return;
  }
  /* 1. Moments of the standardized features (plain sums are fine here). */
  double s[22] = {0};
  int const_zero = 1;
  for (int64_t i = 0; i < d->nloc; i++)
    for (int j = 0; j < dim; j++)
      s[j] += F[i * dim + j], s[11 + j] += F[i * dim + j] * F[i * dim + j];
  for (int64_t i = 0; i < d->nloc; i++) const_zero &= F[i * dim + 10] == 0;
  MPI_Allreduce(MPI_IN_PLACE, s, 22, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &const_zero, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
  double merr = 0, verr = 0;
  for (int j = 0; j < 10; j++) {
    merr = fmax(merr, fabs(s[j] / d->N));
    verr = fmax(verr, fabs(s[11 + j] / d->N - 1));
  }
  t_check(merr < 1e-13 && verr < 1e-12 && const_zero,
          "standardized features: max |mean| %.2e (tol 1e-13), max |var - 1| %.2e (tol 1e-12), "
          "constant column exactly 0: %s",
          merr, verr, const_zero ? "yes" : "no");

  /* 2. Loss at zero. */
  int np = imx_probe_nparams(p);
  double *theta = calloc((size_t)np, sizeof *theta), *g = malloc((size_t)np * sizeof *g), f = 0;
  imx_probe_eval(&ctx, p, theta, &f, g);
  t_check(t_relerr(f, log(4.0), 1e-300) < 4e-15,
          "loss at theta = 0: %.17g (log 4 = %.17g, tol 4e-15)", f, log(4.0));

  /* 3. Finite differences at a random point, along random directions. */
  for (int i = 0; i < np; i++) theta[i] = 0.3 * imx_rng_normal(5, 0, (uint64_t)i);
  imx_probe_eval(&ctx, p, theta, &f, g);
  double worst = 0, *x = malloc((size_t)np * sizeof *x);
  for (int dir = 0; dir < 3; dir++) {
    double gd = 0, fd[2];
    for (int i = 0; i < np; i++) gd += g[i] * imx_rng_normal(6, (uint64_t)dir, (uint64_t)i);
    for (int k = 0; k < 2; k++) {
      double h = 1e-4 / (1 << k), fp, fm;
      for (int i = 0; i < np; i++)
        x[i] = theta[i] + h * imx_rng_normal(6, (uint64_t)dir, (uint64_t)i);
      imx_probe_eval(&ctx, p, x, &fp, NULL);
      for (int i = 0; i < np; i++)
        x[i] = theta[i] - h * imx_rng_normal(6, (uint64_t)dir, (uint64_t)i);
      imx_probe_eval(&ctx, p, x, &fm, NULL);
      fd[k] = (fp - fm) / (2 * h);
    }
    worst = fmax(worst, t_relerr(gd, (4 * fd[1] - fd[0]) / 3, 1e-6));
  }
  t_check(worst < 1e-8, "probe gradient vs finite differences: max rel err %.2e (tol 1e-8)", worst);
  free(theta), free(g), free(x);
  imx_probe_free(&p);
  imx_data_free(&d);
  free(F);
}

static void separable(void) {
  imx_config cfg;
  double *F = NULL, *Ft = NULL;
  /* The same rows twice: as the train split and as a "test" split, which
   * the probe standardizes with the train split's statistics. */
  imx_data *d = mixture(&ctx, &cfg, 2, 12, &F), *dt = mixture(&ctx, &cfg, 2, 12, &Ft);
  if (!d || !dt) return;
  imx_probe_data tr = split_of(d, F), te = split_of(dt, Ft);
  imx_probe_result res;
  imx_err e = imx_probe_run(&ctx, &cfg, 11, 4, &tr, &te, &res, NULL);
  t_check(!e && res.train_accuracy >= 0.99 && res.test_accuracy == res.train_accuracy,
          "separable mixture: train accuracy %.4f (>= 0.99); the same rows as a test split %.4f "
          "(equal: standardized with the train statistics); TAO %s after %d iterations",
          res.train_accuracy, res.test_accuracy, res.reason, res.iterations);
  imx_data_free(&d), imx_data_free(&dt);
  free(F), free(Ft);
}

/* Train on the first p ranks with the given reduction; world rank 0 keeps
 * theta and the train accuracy. */
static void train_on(int p, imx_reduction mode, double **theta, int *np, double *acc,
                     double *loss) {
  int wrank;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  MPI_Comm sub;
  MPI_Comm_split(MPI_COMM_WORLD, wrank < p ? 0 : MPI_UNDEFINED, wrank, &sub);
  if (sub == MPI_COMM_NULL) return;
  imx_ctx sc;
  imx_ctx_init(&sc, sub);
  imx_config cfg;
  double *F = NULL;
  /* Overlapping components: the optimum is interior, TAO runs all its iterations. */
  imx_data *d = mixture(&sc, &cfg, 3, 2, &F);
  cfg.parallel.reduction = mode;
  cfg.eval.probe_max_it = 40;
  if (d) {
    imx_probe_data tr = split_of(d, F);
    imx_probe *pr = NULL;
    imx_probe_result res;
    if (!imx_probe_create(&sc, &cfg, 11, 4, &tr, &pr)) {
      *np = imx_probe_nparams(pr);
      *theta = calloc((size_t)*np, sizeof **theta);
      imx_probe_train(&sc, pr, *theta, &res);
      imx_probe_accuracy(&sc, pr, *theta, &tr, acc);
      *loss = res.loss;
    }
    imx_probe_free(&pr);
  }
  imx_data_free(&d);
  free(F);
  imx_ctx_finalize(&sc);
  MPI_Comm_free(&sub);
}

static void rank_invariance(void) {
  int P;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  double *t1 = NULL, *tP = NULL, *tf = NULL, a1 = 0, aP = 0, af = 0, l1 = 0, lP = 0, lf = 0;
  int np = 0;
  train_on(1, IMX_RED_REPRODUCIBLE, &t1, &np, &a1, &l1);
  train_on(P, IMX_RED_REPRODUCIBLE, &tP, &np, &aP, &lP);
  train_on(P, IMX_RED_FAST, &tf, &np, &af, &lf);
  if (ctx.rank == 0) {
    int same = t1 && tP && !memcmp(t1, tP, (size_t)np * sizeof *t1) && a1 == aP && l1 == lP;
    t_check(same,
            "probe on %d ranks: parameters, loss %.17g and accuracy %.4f have the same bits as "
            "on 1 rank (%.17g, %.4f)",
            P, lP, aP, l1, a1);
    t_check(
        t_relerr(lf, l1, 1e-300) < 1e-6 && fabs(af - a1) <= 0.01,
        "fast reductions on %d ranks: loss rel err %.1e (tol 1e-6), accuracy %.4f vs %.4f (tol 0.01)",
        P, t_relerr(lf, l1, 1e-300), af, a1);
  }
  free(t1), free(tP), free(tf);
}

static void bad_label(void) {
  imx_config cfg;
  double *F = NULL;
  imx_data *d = mixture(&ctx, &cfg, 4, 12, &F);
  if (!d) return;
  /* The last rank holds a label 7 with C = 4. */
  int32_t *lab = malloc((size_t)d->nloc * sizeof *lab);
  memcpy(lab, d->labels, (size_t)d->nloc * sizeof *lab);
  if (ctx.rank == ctx.size - 1) lab[0] = 7;
  imx_probe_data tr = split_of(d, F);
  tr.labels = lab;
  imx_probe *p = NULL;
  imx_err e = imx_probe_create(&ctx, &cfg, 11, 4, &tr, &p);
  t_check(e == IMX_ERR_DATA && p == NULL && strstr(ctx.msg, "outside [0, 4)"),
          "a label outside [0, C) on one rank: agreed error on every rank: \"%s\"", ctx.msg);
  ctx.code = IMX_OK;
  imx_probe_free(&p);
  free(lab), free(F);
  imx_data_free(&d);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  PetscInitialize(&argc, &argv, NULL, NULL);
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  standardization_and_gradient();
  separable();
  rank_invariance();
  bad_label();
  int rc = t_finish();
  imx_ctx_finalize(&ctx);
  PetscFinalize();
  MPI_Finalize();
  return rc;
}
