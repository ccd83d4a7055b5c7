/* checkpoint: the state needed to continue a training run, written atomically.
 *
 * RUN_DIR/checkpoint.bin (layer 1; layerL_checkpoint.bin for layer L >= 2 of a
 * stack, include/imx/run_layer.h) holds a fixed header (magic, version, sizes, the
 * iteration and evaluation counts, the reduction mode and block size, the TAO
 * type, the loss, and what the run was trained on: the data's fingerprint, the
 * linear-algebra backend and the settings that shape the result, as text)
 * followed by the parameters theta, and a CRC-32 of all of it. Version 2;
 * version 1 (without the fingerprint) is refused.
 * It is written to NAME.tmp, fsync'd and renamed over the previous
 * one, so a crash while writing leaves the previous checkpoint intact.
 *
 * What is not in it: the optimizer's internal memory (L-BFGS pairs and
 * scaling, the line search's bracket). TAO starts those afresh on resume; see
 * docs/operations.md.
 */
#ifndef IMX_CHECKPOINT_H
#define IMX_CHECKPOINT_H

#include <stdint.h>

#include "imx/ctx.h"

#define IMX_CHECKPOINT_SETTINGS 4096 /* bytes of imx_checkpoint.settings */

typedef struct imx_checkpoint {
  int K, n;          /* layer shape */
  int64_t nparams;   /* K n + K */
  int iteration;     /* TAO iterations completed (over all resumes) */
  int evaluations;   /* objective evaluations (over all resumes) */
  int reduction;     /* imx_reduction of the run */
  int block;         /* B of the run */
  char tao_type[32]; /* optimizer that produced it */
  double loss;       /* objective at theta */
  int64_t data_rows; /* N of the data it was trained on */
  /* What the run was trained on, compared on resume (include/imx/run_layer.h). */
  uint64_t data_fingerprint;              /* imx_data_fingerprint of the rows as loaded */
  int linalg;                             /* imx_linalg_kind the layer used */
  int altered;                            /* 1: a resume changed settings or data (not exact) */
  char settings[IMX_CHECKPOINT_SETTINGS]; /* "key: value" lines (run_layer.c) */
} imx_checkpoint;

/* Write header and theta to DIR/NAME (checkpoint.bin, layer2_checkpoint.bin, ...)
 * atomically (rank 0 writes; all ranks agree on the result). Collective. */
imx_err imx_checkpoint_write(imx_ctx *ctx, const char *dir, const char *name,
                             const imx_checkpoint *h, const double *theta);

/* Read DIR/NAME on rank 0, verify magic, version, size and CRC,
 * broadcast. theta is allocated here (nparams doubles; free with free()).
 * Collective. */
imx_err imx_checkpoint_read(imx_ctx *ctx, const char *dir, const char *name, imx_checkpoint *h,
                            double **theta);

#endif
