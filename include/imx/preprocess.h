/* preprocess: centering, standardization and whitening of the sharded data,
 * with statistics from the same block-wise reductions as the layer (so the
 * result is bitwise independent of P in reproducible mode). */
#ifndef IMX_PREPROCESS_H
#define IMX_PREPROCESS_H

#include "imx/config.h"
#include "imx/ctx.h"
#include "imx/data.h"

/* Apply cfg->data.preprocess to d->X in place: x <- (x - mu) P, where P is the
 * identity (center), diag(1/sd) (standardize; constant columns keep sd = 1)
 * or the ZCA whitening matrix U diag(1/sqrt(lambda + whiten_eps)) U^T.
 * mean (n) and transform (n x n) receive mu and P if not NULL. Collective. */
imx_err imx_preprocess_apply(imx_ctx *ctx, const imx_config *cfg, imx_data *d, double *mean,
                             double *transform);

#endif
