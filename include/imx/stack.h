/* stack: layers trained greedily (model.layers).
 *
 * Layer 1 is trained by `infomax train` exactly as a one-layer run (so its
 * weights are the same bits as those of a one-layer run with the same
 * settings). Then, for l = 2..L, layer l is trained (include/imx/run_layer.h) on what layer l-1 feeds
 * forward (its model.feed: phi(z), z, or r = softmax(-z/tau)) over the same
 * rows, which stays fixed; each layer has its own model, objective and
 * optimizer settings (imx_config_layer). Layer l >= 2 sees the features as
 * they are (no preprocessing: its biases absorb their mean) and keeps the
 * labels of the data (for the supervised term). Its files go beside layer 1's:
 * layerL_W.npy, layerL_b.npy (and layerL_head_*.npy), layerL_metrics.jsonl,
 * layerL_summary.json, layerL_checkpoint.bin, layerL_optimizer_log.bin.
 */
#ifndef IMX_STACK_H
#define IMX_STACK_H

#include "imx/ctx.h"
#include "imx/data.h"
#include "imx/layer.h"
#include "imx/names.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* model.feed: what a layer passes to the next: phi(z), z, or r = softmax(-z/tau). */
typedef enum { IMX_FEED_ACTIVATION = 0, IMX_FEED_Z, IMX_FEED_R } imx_feed;
/* The names of imx_feed, in its order (config accepts and writes these). */
static const char *const imx_feed_names[] = {"activation", "z", "r", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_feed_name(imx_feed f) { return imx_name_of(imx_feed_names, (int)f); }

/* Write layer `index`'s W (K x n), b (K x 1) and, with the supervised term,
 * its head (layerINDEX_head_W.npy, C x K; layerINDEX_head_b.npy, C x 1) into
 * dir (rank 0). Collective (the status is agreed). */
imx_err imx_stack_write_layer(imx_ctx *ctx, const imx_layer *l, const double *theta,
                              const char *dir, int index);

/* The features a trained layer passes on (feed) for the nloc local rows of
 * the data it was created on, into out (nloc x K, caller-allocated). Local. */
imx_err imx_stack_features(imx_ctx *ctx, imx_layer *l, const double *theta, imx_feed feed,
                           double tau, int64_t nloc, double *out);

/* The rows of a layer L >= 2: the features (feed, with temperature tau for
 * r) that layer L-1 (l at theta, created on `below`) passes on, for the same
 * rows on the same ranks, with their labels. *out is allocated here (free
 * with imx_data_free). Collective. */
imx_err imx_stack_data(imx_ctx *ctx, imx_layer *l, const double *theta, const imx_data *below,
                       imx_feed feed, double tau, imx_data **out);

#endif
