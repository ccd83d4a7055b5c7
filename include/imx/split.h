/* split: the test split of an evaluation.
 *
 * eval.test_path (and eval.test_labels) are read like data.path (same
 * format, data.scale and block size; every rank reads only its rows) and
 * preprocessed with the TRAIN split's statistics, x <- (x - mu) P with the mu
 * and P that imx_preprocess_apply computed on the train split: a test sample
 * is seen exactly as a training sample would be.
 */
#ifndef IMX_SPLIT_H
#define IMX_SPLIT_H

#include "imx/ctx.h"
#include "imx/data.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* Load the test split of cfg->eval and preprocess it with the train split's
 * mean (n) and transform (n x n, row-major; NULL: identity). Collective.
 *   cfg (in, global): data.* as for the train split; eval.test_path,
 *     eval.test_labels. A test_path whose suffix names a format is read in
 *     it (.npy: npy, .h5/.hdf5: hdf5); any other in data.source's format, or
 *     as IDX when data.source is a generator.
 *   n (in, global): columns of the train split; the test split must match.
 *   out (out, local): the new data set (free with imx_data_free).
 * Errors (agreed): those of imx_data_load; IMX_ERR_DATA if the number of
 * columns differs from n; IMX_ERR_NOMEM. */
imx_err imx_split_load_test(imx_ctx *ctx, const imx_config *cfg, int n, const double *mean,
                            const double *transform, imx_data **out);

/* x <- (x - mean) P for the local rows of d, block by block (so each row's
 * bits do not depend on the number of ranks). mean and transform: NULL for
 * zero and the identity. Local. Errors: IMX_ERR_NOMEM. */
imx_err imx_split_apply(imx_ctx *ctx, imx_data *d, const double *mean, const double *transform);

#endif
