/* stack: greedy training of model.layers (see include/imx/stack.h and
 * docs/architecture.md, "Stacked layers"). */
#include "imx/config.h"
#include "imx/stack.h"

#include <stdlib.h>
#include <string.h>

#include "imx/activation.h"

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
    *d = (imx_data){.N = below->N,
                    .n = K,
                    .block = below->block,
                    .row0 = below->row0,
                    .nloc = below->nloc,
                    .nclasses = below->nclasses};
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

imx_err imx_stack_data(imx_ctx *ctx, imx_layer *l, const double *theta, const imx_data *below,
                       imx_feed feed, double tau, imx_data **out) {
  imx_err e = stacked_data(ctx, below, imx_layer_units(l), out);
  if (!e) e = imx_agree(ctx, imx_stack_features(ctx, l, theta, feed, tau, below->nloc, (*out)->X));
  if (e) imx_data_free(out);
  return e;
}
