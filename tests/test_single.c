/* test_single: parallel.precision: single against double. The float32
 * activations against the double ones; the loss and gradient of a layer in
 * single mode against the same layer in double mode at the same point (a
 * finite-difference check means nothing at float32 resolution); the
 * configurations single mode refuses. Bitwise independence of P in single
 * mode is in test_invariance. Collective. */
#include "imx/activation.h"
#include "imx/layer.h"
#include "imx/preprocess.h"
#include "imx/rng.h"

#include "testing.h"

static imx_ctx ctx;

/* Tolerances (docs/config.md, parallel.precision): the loss relative to its
 * magnitude, the gradient as ||g_single - g_double|| / ||g_double||. */
#define TOL_LOSS 1e-5
#define TOL_GRAD 1e-5
#define TOL_ACT 1e-6

/* phi in float on float(z) against phi in double on the same rounded z:
 * the largest |difference| relative to the row's largest |phi|. Local. */
static void activations(void) {
  const int K = 37, rows = 50;
  const imx_activation kinds[] = {IMX_ACT_IDENTITY, IMX_ACT_RELU, IMX_ACT_SOFTMAX, IMX_ACT_TOPK,
                                  IMX_ACT_SPARSEMAX};
  double *Z = malloc((size_t)rows * K * sizeof *Z), *work = malloc((size_t)K * sizeof *work);
  float *Zf = malloc((size_t)rows * K * sizeof *Zf);
  for (int a = 0; a < 5; a++) {
    imx_act phi = {.kind = kinds[a],
                   .tau = kinds[a] == IMX_ACT_SPARSEMAX ? 3 : 0.7,
                   .k = 5,
                   .K = K};
    for (int i = 0; i < rows * K; i++) {
      Zf[i] = (float)(2 * imx_rng_normal(7, (uint64_t)a, (uint64_t)i));
      Z[i] = Zf[i];
    }
    imx_act_forward(&phi, rows, Z, work);
    imx_act_forward_f(&phi, rows, Zf, work);
    double worst = 0;
    int support = 1; /* topk, sparsemax: the same zeros */
    for (int i = 0; i < rows; i++) {
      double mx = 0, d = 0;
      for (int k = 0; k < K; k++) mx = fmax(mx, fabs(Z[i * K + k]));
      for (int k = 0; k < K; k++) {
        d = fmax(d, fabs(Z[i * K + k] - Zf[i * K + k]));
        support &= (Z[i * K + k] == 0) == (Zf[i * K + k] == 0);
      }
      worst = fmax(worst, d / (mx > 0 ? mx : 1));
    }
    t_check(worst <= TOL_ACT && support,
            "%s in float32 vs double, %d rows of K = %d: max |diff| / row max %.2e (tol %.0e), "
            "zeros %s",
            imx_activation_name(kinds[a]), rows, K, worst, TOL_ACT,
            support ? "the same" : "DIFFER");
  }
  free(Z), free(Zf), free(work);
}

/* The layer of c in double and in single mode on the same data, evaluated at
 * model.init plus a small random step (so that biases and weights are not at
 * their symmetric start). Collective. */
static void compare(const char *name, const imx_config *c) {
  imx_data *d = NULL;
  imx_layer *ld = NULL, *ls = NULL;
  imx_config cs = *c;
  cs.parallel.precision = IMX_PRECISION_SINGLE;
  imx_err e = imx_data_load(&ctx, c, &d);
  if (!e) e = imx_preprocess_apply(&ctx, c, d, NULL, NULL);
  if (!e) e = imx_layer_create(&ctx, c, d, &ld);
  if (!e) e = imx_layer_create(&ctx, &cs, d, &ls);
  if (e) {
    t_check(0, "%s: setup: %s", name, ctx.msg);
    imx_layer_free(&ld), imx_layer_free(&ls), imx_data_free(&d);
    return;
  }
  int np = imx_layer_nparams(ld);
  double *theta = malloc((size_t)np * sizeof *theta), *gd = malloc((size_t)np * sizeof *gd),
         *gs = malloc((size_t)np * sizeof *gs), fd = 0, fs = 0;
  e = imx_layer_init_params(&ctx, ld, c, theta);
  for (int i = 0; i < np; i++) theta[i] += 0.05 * imx_rng_normal(11, 0, (uint64_t)i);
  if (!e) e = imx_layer_eval(&ctx, ld, theta, &fd, gd, NULL);
  if (!e) e = imx_layer_eval(&ctx, ls, theta, &fs, gs, NULL);
  if (e) t_check(0, "%s: evaluation: %s", name, ctx.msg);
  else {
    double num = 0, den = 0;
    for (int i = 0; i < np; i++) num += (gs[i] - gd[i]) * (gs[i] - gd[i]), den += gd[i] * gd[i];
    double lrel = t_relerr(fs, fd, 1e-300), grel = sqrt(num / (den > 0 ? den : 1));
    t_check(lrel <= TOL_LOSS && grel <= TOL_GRAD && (lrel > 0 || grel > 0),
            "%s: single vs double at the same point: loss %.10g vs %.10g, rel %.2e (tol %.0e); "
            "gradient rel %.2e (tol %.0e)%s",
            name, fs, fd, lrel, TOL_LOSS, grel, TOL_GRAD,
            lrel > 0 || grel > 0 ? "" : " (IDENTICAL: single mode did not run)");
  }
  free(theta), free(gd), free(gs);
  imx_layer_free(&ld), imx_layer_free(&ls), imx_data_free(&d);
}

/* What single mode refuses, with a message naming the key. Collective. */
static void refusals(void) {
  imx_config c;
  t_small_config(&c, 300, 6, 6, 16);
  c.parallel.precision = IMX_PRECISION_SINGLE;
  c.model.activation = IMX_ACT_IDENTITY, c.data.preprocess = IMX_PRE_WHITEN;
  snprintf(c.objective.preset, sizeof c.objective.preset, "decorrelation");
  imx_data *d = NULL;
  imx_layer *l = NULL;
  imx_err e = imx_data_load(&ctx, &c, &d);
  if (!e) e = imx_preprocess_apply(&ctx, &c, d, NULL, NULL);
  if (e) {
    t_check(0, "refusals: setup: %s", ctx.msg);
    imx_data_free(&d);
    return;
  }
  c.parallel.path = IMX_PATH_MOMENTS;
  t_expect_err(&ctx, imx_layer_create(&ctx, &c, d, &l), IMX_ERR_CONFIG, "parallel.path: moments",
               "single precision on the moments path");
  imx_layer_free(&l);
  c.parallel.path = IMX_PATH_AUTO;
  e = imx_layer_create(&ctx, &c, d, &l);
  t_check(!e && l && !strcmp(imx_layer_path(l), "data"),
          "single precision, parallel.path: auto on a moments-path configuration takes the %s "
          "path (want data)",
          l ? imx_layer_path(l) : "(no layer)");
  imx_layer_free(&l);
  c.parallel.linalg = IMX_LINALG_SCALAPACK;
  t_expect_err(&ctx, imx_layer_create(&ctx, &c, d, &l), IMX_ERR_CONFIG, "replicated backend only",
               "single precision on the scalapack backend");
  imx_layer_free(&l);
  /* Inputs beyond float32's comfortable range: refused, naming the column. */
  c.parallel.linalg = IMX_LINALG_AUTO, c.data.preprocess = IMX_PRE_NONE;
  c.data.scale = 1e13;
  imx_data *big = NULL;
  e = imx_data_load(&ctx, &c, &big);
  if (!e) e = imx_preprocess_apply(&ctx, &c, big, NULL, NULL);
  if (!e)
    t_expect_err(&ctx, imx_layer_create(&ctx, &c, big, &l), IMX_ERR_DATA, "input column 0",
                 "single precision on inputs scaled by 1e13");
  else t_check(0, "refusals: load scaled data: %s", ctx.msg);
  imx_layer_free(&l);
  imx_data_free(&big);
  imx_data_free(&d);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  activations();
  imx_config c;
  t_small_config(&c, 1000, 20, 12, 32);
  c.model.init_bias = 0.1;
  c.model.activation = IMX_ACT_SOFTMAX;
  compare("softmax, gaussian preset", &c);
  c.model.activation = IMX_ACT_TOPK, c.model.topk = 3, c.objective.eps = 1e-3;
  compare("topk (k = 3), gaussian preset", &c);
  c.parallel.sparse = 0;
  compare("topk (k = 3), gaussian preset, dense dL/dW (parallel.sparse: false)", &c);
  c.parallel.sparse = 1;
  c.model.activation = IMX_ACT_SPARSEMAX, c.model.temperature = 5;
  compare("sparsemax (tau = 5), gaussian preset", &c);
  c.model.temperature = 1, c.objective.eps = 0;
  c.model.activation = IMX_ACT_RELU, c.data.preprocess = IMX_PRE_STANDARDIZE;
  snprintf(c.objective.preset, sizeof c.objective.preset, "implicit-em");
  compare("relu, implicit-em preset, standardized", &c);
  c.model.activation = IMX_ACT_IDENTITY, c.data.preprocess = IMX_PRE_WHITEN;
  c.model.units = 20, c.parallel.path = IMX_PATH_DATA;
  snprintf(c.objective.preset, sizeof c.objective.preset, "ica");
  compare("identity, ica preset (entropy + logdet), whitened, data path", &c);
  {
    imx_config cs;
    t_small_config(&cs, 1000, 20, 12, 32);
    cs.model.activation = IMX_ACT_SOFTMAX, cs.model.init_bias = 0.1;
    cs.data.source = IMX_SRC_GMM, cs.data.components = 3;
    cs.objective.weight[IMX_TERM_SUPERVISED] = 1, cs.objective.label_fraction = 0.3;
    cs.objective.on = IMX_ON_Z, cs.objective.weight[IMX_TERM_ENTROPY] = 0.5;
    compare("softmax, on z: gaussian + entropy on z, supervised on r", &cs);
  }
  refusals();
  int rc = t_finish();
  imx_ctx_finalize(&ctx);
  MPI_Finalize();
  return rc;
}
