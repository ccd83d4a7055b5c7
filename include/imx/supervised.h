/* supervised: the `supervised` term, the cross-entropy of a linear softmax
 * head on a layer's outputs, trained jointly with the layer.
 *
 * With a_i the layer's output (phi(z_i), K values) and the head's parameters
 * [U (C x K, row-major), c (C)] appended to the layer's theta:
 *
 *   s_i = U a_i + c,   supervised = (1/L) sum_{i labeled} -log softmax(s_i)[y_i]
 *
 * L is the number of labeled rows. A row is labeled when
 * objective.label_fraction is 1, or when imx_rng_uniform(data.seed, stream
 * IMX_SUPERVISED_STREAM, global row index) < objective.label_fraction: the
 * subset depends only on the row, never on P. Everything is computed per
 * local row and summed with the block-wise reductions of moments.h, so the
 * term and its gradient have the same bits for any P in reproducible mode.
 */
#ifndef IMX_SUPERVISED_H
#define IMX_SUPERVISED_H

#include <stdint.h>

#include "imx/ctx.h"
#include "imx/data.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* The counter-based RNG stream that chooses the labeled rows. */
#define IMX_SUPERVISED_STREAM 5

typedef struct imx_supervised imx_supervised;

/* The head for K outputs on the data d (labels and their classes; d must
 * stay valid while the head lives). Refuses (IMX_ERR_CONFIG) data without
 * labels and a label fraction that labels no row. Collective. */
imx_err imx_supervised_create(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, int K,
                              imx_supervised **out);
void imx_supervised_free(imx_supervised **s);

/* Classes C, parameters C K + C, global labeled rows L. Local. */
int imx_supervised_classes(const imx_supervised *s);
int imx_supervised_nparams(const imx_supervised *s);
long long imx_supervised_labeled(const imx_supervised *s);

/* The term's value at head parameters `head` for the local outputs A (nloc x
 * K): *value = the mean cross-entropy over the labeled rows; keeps dL/ds for
 * the backward calls. Collective. */
imx_err imx_supervised_value(imx_ctx *ctx, imx_supervised *s, const double *head, const double *A,
                             double *value);

/* T (c x K) += scale * dL/dA for local rows r0..r0+c: scale * (dL/ds) U.
 * After imx_supervised_value. Local. */
void imx_supervised_backward_rows(const imx_supervised *s, const double *head, int64_t r0, int c,
                                  double scale, double *T);

/* ghead (C K + C) = scale * dL/d[U, c], summed over all rows. After
 * imx_supervised_value. Collective. */
imx_err imx_supervised_grad_head(imx_ctx *ctx, imx_supervised *s, const double *A, double scale,
                                 double *ghead);

#endif
