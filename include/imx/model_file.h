/* model_file: RUN/model.h5, the trained model in one self-contained file.
 *
 * What `infomax transform` and tools/infomax_model.py need to apply a run to
 * new data, in one HDF5 file (format_version 1, docs/guide.md "The model
 * file"): the resolved configuration, the preprocessing of the train split
 * (data.scale, mean, transform: the input of layer 1 is
 * u = (scale x - mean) transform, exactly imx_split_apply's arithmetic), and
 * every trained layer (effective W, b, activation, temperature, top-k, feed,
 * the supervised head). `infomax train` keeps an imx_model while it trains and
 * writes it atomically (rank 0, serial HDF5: temporary file, fsync, rename)
 * with every checkpoint (status "training") and at the end of every layer and
 * of the run ("finished", "stopped", "diverged" or "failed", as summary.json's
 * status; a layer of a stack below the last ends in "training"). Writing it
 * changes no bit of the training.
 *
 *   imx_model *m;
 *   IMX_TRY(imx_model_read(ctx, "runs/demo", &m));   // every rank gets all of it
 *   ... m->layer[0].W ...
 *   imx_model_free(&m);
 */
#ifndef IMX_MODEL_FILE_H
#define IMX_MODEL_FILE_H

#include "imx/config.h"
#include "imx/ctx.h"
#include "imx/layer.h"

#define IMX_MODEL_FILE "model.h5"
#define IMX_MODEL_FORMAT "infomax-model" /* the root attribute `format` */
#define IMX_MODEL_VERSION 1              /* the format_version written and the newest read */

/* One layer as applied: z = W u + b, a = phi(z), what it passes on. */
typedef struct imx_model_layer {
  int K, n;           /* units, inputs */
  imx_activation act; /* phi */
  double tau;         /* temperature */
  int topk;           /* k of topk (0 otherwise) */
  imx_feed feed;      /* what it passes to the layer above */
  double *W, *b;      /* K x n (effective weights, after weight normalization), K; owned */
  int classes;        /* C of the supervised head, 0 without one */
  double *U, *c;      /* the head: C x K and C (NULL without one); owned */
} imx_model_layer;

/* A model: written by train, read by transform. Every pointer is owned. */
typedef struct imx_model {
  int format_version;  /* as read (IMX_MODEL_VERSION when built here) */
  char status[16];     /* "training", "finished", "stopped", "diverged", "failed" */
  char version[128];   /* infomax_version of the writer: imx_version() */
  imx_config cfg;      /* the resolved configuration (the run's config.yaml, model.layers too) */
  int inputs;          /* n: columns of the raw data */
  imx_preprocess kind; /* data.preprocess */
  double scale;        /* data.scale */
  double *mean;        /* n (zeros for none) */
  double *transform;   /* n x n row-major (identity for none and center) */
  int layers;          /* layers present: layer[0 .. layers-1] */
  imx_model_layer layer[IMX_MAX_LAYERS];
} imx_model;

/* A new model for the run of cfg (the top configuration, with model.layers)
 * on n inputs, with the train split's preprocessing (mean: n, transform:
 * n x n; NULL: zeros and the identity), no layer yet. Local.
 * Errors: IMX_ERR_NOMEM. Free with imx_model_free. */
imx_err imx_model_create(imx_ctx *ctx, const imx_config *cfg, int n, const double *mean,
                         const double *transform, imx_model **out);

/* Free m and its arrays (accepts NULL) and set *m to NULL. Local. */
void imx_model_free(imx_model **m);

/* Set layer `index` (1-based, at most one above the layers present) from the
 * layer l at theta (its effective weights and head), with the layer's
 * configuration lc (activation, temperature, topk, feed). Layers above index
 * are dropped (they were trained on what this layer passed on before).
 * Local (every rank may keep its own copy; rank 0's is written).
 * Errors: IMX_ERR_NOMEM, IMX_ERR_INTERNAL (an index out of order). */
imx_err imx_model_set_layer(imx_ctx *ctx, imx_model *m, int index, const imx_config *lc,
                            const imx_layer *l, const double *theta);

/* Write m to DIR/model.h5 with status ("training", "finished", ...): rank 0,
 * serial HDF5 into DIR/model.h5.tmp, fsync, rename (a reader never sees a
 * partial file; a failed write leaves the previous model.h5 and no
 * temporary file). Collective (the status is agreed).
 * Errors (agreed): IMX_ERR_IO naming the file, IMX_ERR_NOMEM. */
imx_err imx_model_write(imx_ctx *ctx, const imx_model *m, const char *dir, const char *status);

/* Read a model: path is a run directory (its model.h5) or the file itself.
 * Rank 0 reads and checks it, every rank receives all of it. Collective.
 *   out (out, global): the model (free with imx_model_free), NULL on error.
 * Errors (agreed): IMX_ERR_IO (no such file: names it and says that runs of
 * infomax before model.h5 have none), IMX_ERR_DATA (not an HDF5 file, not
 * an infomax model, a format_version newer than IMX_MODEL_VERSION, a missing
 * or misshapen dataset or attribute, named), IMX_ERR_CONFIG (its config does
 * not load), IMX_ERR_NOMEM. */
imx_err imx_model_read(imx_ctx *ctx, const char *path, imx_model **out);

#endif
