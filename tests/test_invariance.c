/* test_invariance: the same configuration trained on 1, 2, ..., P ranks (sub-
 * communicators of the world) gives bitwise identical weights and losses in
 * reproducible mode: data, preprocessing, every evaluation and the optimizer
 * included. Collective. */
#include <petscsys.h>

#include "imx/layer.h"
#include "imx/log.h"
#include "imx/preprocess.h"
#include "imx/train.h"

#include "testing.h"

/* The effective biases of the last run (imx_layer_weights): their sum and
 * largest magnitude, and the largest change from the initial ones. */
static double bias_sum, bias_max, bias_moved;

/* Train on the first p ranks of the world; world rank 0 gets theta and loss. */
static int run(int p, const imx_config *c, double **theta, int *np, double *loss, int *iters) {
  int wrank;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  MPI_Comm sub;
  MPI_Comm_split(MPI_COMM_WORLD, wrank < p ? 0 : MPI_UNDEFINED, wrank, &sub);
  if (sub == MPI_COMM_NULL) return 0;
  imx_ctx ctx;
  imx_ctx_init(&ctx, sub);
  imx_data *d = NULL;
  imx_layer *l = NULL;
  imx_train_result res;
  imx_err e = imx_data_load(&ctx, c, &d);
  if (!e) e = imx_preprocess_apply(&ctx, c, d, NULL, NULL);
  if (!e) e = imx_layer_create(&ctx, c, d, &l);
  if (!e) {
    *np = imx_layer_nparams(l);
    *theta = malloc((size_t)*np * sizeof **theta);
    e = imx_layer_init_params(&ctx, l, c, *theta);
  }
  imx_train_io io = {0};
  int K = c->model.units, n = c->data.dim;
  double *W = malloc((size_t)K * n * sizeof *W), *b0 = malloc(2 * (size_t)K * sizeof *b0);
  if (!e) imx_layer_weights(l, *theta, W, b0);
  if (!e) e = imx_train(&ctx, c, l, *theta, &io, &res);
  if (e) t_check(0, "training on %d ranks: %s", p, ctx.msg);
  if (!e) {
    double *b = b0 + K;
    imx_layer_weights(l, *theta, W, b);
    bias_sum = bias_max = bias_moved = 0;
    for (int j = 0; j < K; j++)
      bias_sum += b[j], bias_max = fmax(bias_max, fabs(b[j])),
                        bias_moved = fmax(bias_moved, fabs(b[j] - b0[j]));
  }
  free(W), free(b0);
  *loss = res.final.loss;
  *iters = res.iterations;
  imx_layer_free(&l);
  imx_data_free(&d);
  imx_ctx_finalize(&ctx);
  MPI_Comm_free(&sub);
  return e;
}

static void case_(const char *name, const imx_config *c) {
  int P, wrank;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  double *ref = NULL, ref_loss = 0;
  int np = 0, ref_it = 0;
  for (int p = 1; p <= P; p++) {
    double *theta = NULL, loss = 0;
    int it = 0;
    run(p, c, &theta, &np, &loss, &it);
    if (wrank == 0) {
      if (p == 1) {
        ref = theta, ref_loss = loss, ref_it = it;
        continue;
      }
      int same = !memcmp(ref, theta, (size_t)np * sizeof *ref) &&
                 !memcmp(&ref_loss, &loss, sizeof loss) && it == ref_it;
      t_check(same, "%s: %d ranks vs 1 rank: %d iterations, loss %.17g vs %.17g, weights %s", name,
              p, it, loss, ref_loss, same ? "bitwise identical" : "DIFFER");
      free(theta);
    } else {
      free(theta);
    }
  }
  if (wrank == 0 && P == 1)
    t_check(ref_it > 0, "%s: 1 rank trained %d iterations (run at P > 1 to compare)", name, ref_it);
  free(ref);
}

/* The gauge of the biases (regression: TAO lmvm's diagonal initial Hessian
 * moved the mean of softmax biases although dL/db sums to 0, to about -50 at
 * K = 64 on Fashion-MNIST). Outputs on the simplex: sum b = 0 after training,
 * and the biases did move; terms on z and nothing reading phi(z): b stays
 * where it started, bit for bit. */
static void gauge(void) {
  int wrank;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  imx_config c;
  t_small_config(&c, 1000, 6, 8, 32);
  c.optimizer.max_it = 15, c.model.init_bias = 0.5;
  const imx_activation acts[] = {IMX_ACT_SOFTMAX, IMX_ACT_TOPK, IMX_ACT_SPARSEMAX};
  for (int ai = 0; ai < 3; ai++) {
    c.model.activation = acts[ai], c.model.topk = 3, c.objective.eps = 1e-3;
    c.model.temperature = acts[ai] == IMX_ACT_SPARSEMAX ? 5 : 1;
    double *theta = NULL, loss;
    int np = 0, it = 0;
    run(1, &c, &theta, &np, &loss, &it);
    if (wrank == 0)
      t_check(fabs(bias_sum) <= 1e-13 * c.model.units * fmax(1, bias_max) && bias_moved > 1e-3,
              "%s, gaussian preset, %d iterations: sum b = %.2e (tol %.1e), biases moved by up "
              "to %.3g",
              imx_activation_name(acts[ai]), it, bias_sum,
              1e-13 * c.model.units * fmax(1, bias_max), bias_moved);
    free(theta);
  }
  c.model.activation = IMX_ACT_SOFTMAX, c.objective.on = IMX_ON_Z;
  snprintf(c.objective.preset, sizeof c.objective.preset, "ica");
  double *theta = NULL, loss;
  int np = 0, it = 0;
  run(1, &c, &theta, &np, &loss, &it);
  if (wrank == 0)
    t_check(bias_moved == 0 && it > 0,
            "softmax, ica preset on z (no term reads phi(z)), %d iterations: biases moved by %.2e "
            "(want 0: no term depends on b)",
            it, bias_moved);
  free(theta);
}

int main(int argc, char **argv) {
  PetscInitialize(&argc, &argv, NULL, NULL);
  imx_log_set_level(IMX_WARN);
  imx_config c;
  t_small_config(&c, 1000, 6, 6, 32);
  c.optimizer.max_it = 15;
  c.model.activation = IMX_ACT_SOFTMAX;
  c.model.init_bias = 0.1;
  case_("softmax, gaussian preset, data path", &c);
  c.model.activation = IMX_ACT_TOPK, c.model.topk = 2, c.objective.eps = 1e-3;
  case_("topk (k = 2), gaussian preset, data path", &c);
  c.model.units = 16; /* k/K = 1/8: dL/dW from the nonzeros of dZ */
  case_("topk (k = 2 of K = 16), gaussian preset, data path, sparse dL/dW", &c);
  c.model.units = 6;
  c.model.activation = IMX_ACT_SPARSEMAX, c.model.temperature = 5;
  case_("sparsemax (tau = 5), gaussian preset, data path", &c);
  c.model.temperature = 1, c.objective.eps = 0;
  {
    imx_config cs = c;
    cs.model.activation = IMX_ACT_SOFTMAX;
    cs.data.source = IMX_SRC_GMM, cs.data.components = 3;
    cs.objective.weight[IMX_TERM_SUPERVISED] = 1, cs.objective.label_fraction = 0.3;
    case_("softmax, gaussian + supervised (30% of the labels), data path", &cs);
    cs.parallel.linalg = IMX_LINALG_SCALAPACK, cs.parallel.scalapack_block = 2;
    case_("the same on the scalapack backend", &cs);
    /* The terms on z, the head on r: two backward paths in one pass. */
    cs.objective.on = IMX_ON_Z, cs.objective.weight[IMX_TERM_ENTROPY] = 0.5;
    cs.parallel.linalg = IMX_LINALG_REPLICATED;
    case_("softmax, on z: gaussian + entropy on z, supervised on r, data path", &cs);
    cs.parallel.linalg = IMX_LINALG_SCALAPACK;
    case_("the same on the scalapack backend", &cs);
  }
  gauge();
  {
    /* parallel.precision: single: float32 products per block, their sums in double. */
    imx_config cs = c;
    cs.parallel.precision = IMX_PRECISION_SINGLE, cs.model.activation = IMX_ACT_SOFTMAX;
    case_("single precision: softmax, gaussian preset, data path", &cs);
    cs.model.activation = IMX_ACT_TOPK, cs.model.topk = 2, cs.model.units = 16;
    cs.objective.eps = 1e-3, cs.parallel.sparse = 0;
    case_("single precision: topk (k = 2 of K = 16), gaussian preset, dense dL/dW", &cs);
    cs.model.units = 6, cs.model.activation = IMX_ACT_RELU, cs.objective.eps = 0;
    cs.data.preprocess = IMX_PRE_STANDARDIZE;
    snprintf(cs.objective.preset, sizeof cs.objective.preset, "implicit-em");
    case_("single precision: relu, implicit-em preset, standardized", &cs);
  }
  c.model.activation = IMX_ACT_IDENTITY;
  snprintf(c.objective.preset, sizeof c.objective.preset, "decorrelation");
  c.data.preprocess = IMX_PRE_WHITEN;
  case_("identity, decorrelation preset, whitened, moments path", &c);
  snprintf(c.objective.preset, sizeof c.objective.preset, "ica");
  case_("identity, ica preset (entropy + logdet), whitened, data path", &c);
  snprintf(c.objective.preset, sizeof c.objective.preset, "hsic");
  c.objective.hsic_features = 8;
  case_("identity, hsic preset (variance + hsic, D = 8), whitened, data path", &c);
  snprintf(c.objective.preset, sizeof c.objective.preset, "implicit-em");
  c.model.activation = IMX_ACT_RELU;
  c.data.preprocess = IMX_PRE_STANDARDIZE;
  case_("relu, implicit-em preset, standardized, data path", &c);
  int rc = t_finish();
  PetscFinalize();
  return rc;
}
