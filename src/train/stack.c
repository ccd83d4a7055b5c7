/* stack: greedy training of model.layers (see include/imx/stack.h and
 * docs/architecture.md, "Stacked layers"). */
#include "imx/config.h"
#include "imx/stack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imx/activation.h"
#include "imx/log.h"
#include "imx/metrics.h"
#include "imx/summary.h"
#include "imx/timer.h"
#include "imx/train.h"

imx_err imx_stack_write_layer(imx_ctx *ctx, const imx_layer *l, const double *theta,
                              const char *dir, int index) {
  imx_err e = IMX_OK;
  if (ctx->rank == 0) {
    int K = imx_layer_units(l), n = imx_layer_inputs(l), C = imx_layer_head_classes(l);
    double *W = malloc((size_t)K * n * sizeof *W), *b = malloc((size_t)K * sizeof *b);
    const double *head = theta + (size_t)K * n + K; /* [U (C x K), c (C)] after W and b */
    char path[2 * IMX_PATH_LEN];
    if (!W || !b) e = imx_fail(ctx, IMX_ERR_NOMEM, "weights for output");
    if (!e) {
      imx_layer_weights(l, theta, W, b);
      snprintf(path, sizeof path, "%s/layer%d_W.npy", dir, index);
      e = imx_npy_write(ctx, path, W, K, n);
    }
    if (!e) {
      snprintf(path, sizeof path, "%s/layer%d_b.npy", dir, index);
      e = imx_npy_write(ctx, path, b, K, 1);
    }
    if (!e && C) {
      snprintf(path, sizeof path, "%s/layer%d_head_W.npy", dir, index);
      e = imx_npy_write(ctx, path, head, C, K);
    }
    if (!e && C) {
      snprintf(path, sizeof path, "%s/layer%d_head_b.npy", dir, index);
      e = imx_npy_write(ctx, path, head + (size_t)C * K, C, 1);
    }
    free(W), free(b);
  }
  return imx_agree(ctx, e);
}

imx_err imx_stack_features(imx_ctx *ctx, imx_layer *l, const double *theta, imx_feed feed,
                           double tau, int64_t nloc, double *out) {
  imx_features which = feed == IMX_FEED_ACTIVATION ? IMX_FEAT_ACTIVATION : IMX_FEAT_Z;
  IMX_TRY(imx_layer_forward(ctx, l, theta, which, out));
  if (feed == IMX_FEED_R) { /* r = softmax(-z/tau), whatever the layer's own activation */
    imx_act r = {.kind = IMX_ACT_SOFTMAX, .tau = tau, .k = 0, .K = imx_layer_units(l)};
    imx_act_forward(&r, nloc, out, NULL);
  }
  return IMX_OK;
}

/* The data set of layer l >= 2: the features of the layer below over the
 * same rows, with the rows' labels. */
static imx_err stacked_data(imx_ctx *ctx, const imx_data *below, int K, imx_data **out) {
  imx_data *d = calloc(1, sizeof *d);
  size_t rows = (size_t)(below->nloc ? below->nloc : 1);
  if (d) {
    *d = (imx_data){.N = below->N, .n = K, .block = below->block, .row0 = below->row0,
                    .nloc = below->nloc, .nclasses = below->nclasses};
    d->X = malloc(rows * K * sizeof *d->X);
    if (below->labels) d->labels = malloc(rows * sizeof *d->labels);
  }
  imx_err e = d && d->X && (d->labels || !below->labels)
                  ? IMX_OK
                  : imx_fail(ctx, IMX_ERR_NOMEM, "features of %lld rows x %d units",
                             (long long)below->nloc, K);
  if (!e && below->labels) memcpy(d->labels, below->labels, rows * sizeof *d->labels);
  *out = d;
  return imx_agree(ctx, e);
}

/* Train layer `index` (1-based, >= 2) with configuration c on d, the `fed`
 * features of the layer below; the layer and its theta out. */
static imx_err train_one(imx_ctx *ctx, const imx_config *c, const imx_data *d, imx_feed fed,
                         const char *dir, int index, imx_layer **lout, double **thetaout) {
  imx_layer *l = NULL;
  double *theta = NULL;
  FILE *metrics = NULL;
  imx_train_result res;
  imx_metrics measures;
  memset(&res, 0, sizeof res);
  imx_metrics_init(&measures);
  int trained = 0, measured = 0;
  imx_log(ctx, IMX_INFO, "\nlayer %d: K=%d %s units on the %s of layer %d (n=%d), preset %s, "
          "TAO %s, max_it %d", index, c->model.units, imx_activation_name(c->model.activation),
          imx_feed_name(fed), index - 1, d->n, c->objective.preset, c->optimizer.type,
          c->optimizer.max_it);
  imx_err e = imx_layer_create(ctx, c, d, &l);
  if (!e) {
    theta = malloc((size_t)imx_layer_nparams(l) * sizeof *theta);
    e = imx_agree(ctx, theta ? IMX_OK : imx_fail(ctx, IMX_ERR_NOMEM, "parameters of layer %d", index));
  }
  if (!e) e = imx_layer_init_params(ctx, l, c, theta);
  if (!e && ctx->rank == 0) {
    char path[2 * IMX_PATH_LEN];
    snprintf(path, sizeof path, "%s/layer%d_metrics.jsonl", dir, index);
    metrics = fopen(path, "w");
    if (!metrics) e = imx_fail(ctx, IMX_ERR_IO, "cannot write %s", path);
  }
  e = imx_agree(ctx, e);
  if (!e) {
    /* No checkpoints (they would replace layer 1's): --resume retrains it. */
    imx_train_io io = {.metrics = metrics};
    e = imx_train(ctx, c, l, theta, &io, &res);
    trained = 1;
  }
  if (metrics) fclose(metrics);
  if (!e) {
    e = imx_metrics_compute(ctx, c, l, theta, d, NULL, &measures);
    measured = !e;
  }
  if (e && e != IMX_STOPPED) imx_report(ctx);
  imx_err we = trained ? imx_stack_write_layer(ctx, l, theta, dir, index) : IMX_OK;
  char name[32];
  snprintf(name, sizeof name, "layer%d_summary.json", index);
  imx_summary s = {.cfg = c, .data = d, .layer = l, .train = trained ? &res : NULL,
                   .measures = measured ? &measures : NULL, .status = e ? e : we,
                   .message = (e && e != IMX_STOPPED) || we ? ctx->msg : "", .file = name};
  imx_err se = imx_summary_write(ctx, &s, dir);
  if (!e && !we && !se) {
    if (ctx->rank == 0) fputc('\n', stdout);
    imx_metrics_print(ctx, stdout, &measures);
    imx_log(ctx, IMX_INFO, "layer %d: %s after %d iterations, final loss %.10g, dead units %d "
            "(layer%d_W.npy, layer%d_b.npy, layer%d_metrics.jsonl, layer%d_summary.json)", index,
            res.reason, res.iterations, res.final.loss, res.final.dead_units, index, index, index,
            index);
  }
  imx_metrics_clear(&measures);
  *lout = l, *thetaout = theta;
  return e ? e : we ? we : se;
}

imx_err imx_stack_train(imx_ctx *ctx, const imx_config *top, const imx_data *d1, imx_layer *l1,
                        const double *theta1, const char *dir) {
  imx_config below_cfg, c;
  IMX_TRY(imx_config_layer(ctx, top, 0, &below_cfg));
  imx_layer *below = l1, *l = NULL;
  const imx_data *dbelow = d1;
  imx_data *d = NULL, *dprev = NULL;
  const double *tbelow = theta1;
  double *theta = NULL, *tprev = NULL;
  imx_err e = IMX_OK;
  for (int i = 1; !e && i < top->model.nlayers; i++) {
    e = imx_config_layer(ctx, top, i, &c);
    if (!e) e = stacked_data(ctx, dbelow, imx_layer_units(below), &d);
    if (!e)
      e = imx_agree(ctx, imx_stack_features(ctx, below, tbelow, below_cfg.model.feed,
                                            below_cfg.model.temperature, dbelow->nloc, d->X));
    if (!e) e = train_one(ctx, &c, d, below_cfg.model.feed, dir, i + 1, &l, &theta);
    /* Layer i (and its data) is no longer needed once layer i+1 has its features. */
    if (below != l1) imx_layer_free(&below);
    imx_data_free(&dprev);
    free(tprev);
    below = l, dbelow = d, dprev = d, tbelow = theta, tprev = theta, below_cfg = c;
    l = NULL, d = NULL, theta = NULL;
  }
  if (below != l1) imx_layer_free(&below);
  imx_data_free(&dprev), imx_data_free(&d);
  free(tprev);
  return e;
}
