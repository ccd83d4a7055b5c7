/* preprocess: centering, standardization and whitening of the sharded data,
 * with statistics from the same block-wise reductions as the layer (so the
 * result is bitwise independent of P in reproducible mode). */
#ifndef IMX_PREPROCESS_H
#define IMX_PREPROCESS_H

#include "imx/ctx.h"
#include "imx/data.h"
#include "imx/names.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* data.preprocess: the transform applied to the inputs before training. */
typedef enum {
  IMX_PRE_NONE = 0,
  IMX_PRE_CENTER,
  IMX_PRE_STANDARDIZE,
  IMX_PRE_WHITEN
} imx_preprocess;
/* The names of imx_preprocess, in its order (config accepts and writes these). */
static const char *const imx_preprocess_names[] = {"none", "center", "standardize", "whiten", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_preprocess_name(imx_preprocess p) {
  return imx_name_of(imx_preprocess_names, (int)p);
}

/* Apply cfg->data.preprocess to d->X in place: x <- (x - mu) P, where P is the
 * identity (center), diag(1/sd) (standardize; constant columns keep sd = 1)
 * or the ZCA whitening matrix U diag(1/sqrt(lambda + whiten_eps)) U^T.
 * mean (n) and transform (n x n) receive mu and P if not NULL. Collective. */
imx_err imx_preprocess_apply(imx_ctx *ctx, const imx_config *cfg, imx_data *d, double *mean,
                             double *transform);

#endif
