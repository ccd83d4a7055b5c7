/* baseline: layers with fixed parameters, scored like a trained one.
 *
 * An evaluation compares the trained layer with three baselines on the same
 * data, measures and probe:
 *  - raw: the (preprocessed) input itself, n features;
 *  - pca: z = W (x - mu) with the rows of W the top min(K, n) unit
 *    eigenvectors of the input covariance S_x of the train split (identity
 *    activation: the PCA features);
 *  - random: K random unit hyperplanes (normal rows, normalized; rng stream 11
 *    of model.seed, so the same for any P; the initial weights use streams 1
 *    and 2), b = 0, with the model's activation and temperature.
 */
#ifndef IMX_BASELINE_H
#define IMX_BASELINE_H

#include "imx/activation.h"
#include "imx/ctx.h"
#include "imx/data.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

typedef enum { IMX_BASE_RAW = 0, IMX_BASE_PCA, IMX_BASE_RANDOM, IMX_NBASELINES } imx_baseline_kind;
extern const char *const imx_baseline_names[IMX_NBASELINES]; /* "raw", "pca", "random" */

/* RNG stream of the random hyperplanes. */
#define IMX_STREAM_RANDOM_HYPERPLANES 11

/* A layer with fixed parameters: a trained one read back, or a baseline. */
typedef struct imx_fixed {
  int K, n;           /* units (feature columns), inputs */
  imx_activation act; /* phi */
  double tau;         /* softmax temperature */
  double *W, *b;      /* K x n and K (owned); both NULL for the raw input (features = x) */
} imx_fixed;

/* Build a baseline for cfg->model (K, activation, seed) on the train split.
 * Collective (pca reduces S_x; the others are local).
 *   out (out, global): the same on every rank; free with imx_fixed_clear.
 * Errors (agreed): IMX_ERR_NOMEM, IMX_ERR_NUMERIC (eigensolver), IMX_ERR_MPI. */
imx_err imx_baseline_make(imx_ctx *ctx, const imx_config *cfg, imx_baseline_kind kind,
                          const imx_data *train, imx_fixed *out);

/* The random baseline's K unit rows (K x n, row-major) for a seed:
 * normalized draws of the counter-based RNG, the same for any P. Local. */
void imx_baseline_random_rows(uint64_t seed, int K, int n, double *W);

/* Free the parameters of f (accepts NULL) and zero it. Local. */
void imx_fixed_clear(imx_fixed *f);

/* The outputs of f on the local rows of d: *Z = W x + b and *A = phi(z)
 * (nloc x K each, new buffers owned by the caller, free()). For the identity
 * activation (and the raw input) z = a: *Z is NULL and *A holds both.
 * Collective (the forward pass runs through imx_layer_forward on a layer
 * created for the purpose).
 * Errors (agreed): IMX_ERR_NOMEM, those of imx_layer_create. */
imx_err imx_fixed_outputs(imx_ctx *ctx, const imx_config *cfg, const imx_fixed *f,
                          const imx_data *d, double **Z, double **A);

/* What f passes on as cfg->model.feed says (phi(z), z, or r = softmax(-z/tau)
 * with f's tau, whatever its activation) for the local rows of x, which it
 * replaces: x->X becomes nloc x K and x->n = K; the labels stay, the
 * synthetic ground truth goes. x NULL: nothing. The outputs are those of
 * imx_fixed_outputs with cfg (`infomax eval` and `infomax transform` pass
 * rows up a stack with this). Collective.
 * Errors (agreed): those of imx_fixed_outputs. */
imx_err imx_fixed_feed(imx_ctx *ctx, const imx_config *cfg, const imx_fixed *f, imx_data *x);

#endif
