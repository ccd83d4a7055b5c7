/* activation: a = phi(z) row by row and its backward pass dL/dz from dL/da.
 *
 * identity, relu, softmax(-z/tau), topk (softmax(-z/tau) over the k smallest
 * z of the row, renormalized, 0 elsewhere) and sparsemax(-z/tau) (the
 * Euclidean projection of -z/tau onto the probability simplex). softmax, topk
 * and sparsemax rows sum to 1 (imx_activation_simplex). Everything here is
 * Local and deterministic: a row's result depends only on its own values,
 * so it has the same bits whichever rank computes it.
 */
#ifndef IMX_ACTIVATION_H
#define IMX_ACTIVATION_H

#include <stdint.h>

#include "imx/names.h"

/* model.activation: phi. */
typedef enum {
  IMX_ACT_IDENTITY = 0,
  IMX_ACT_RELU,
  IMX_ACT_SOFTMAX,
  IMX_ACT_TOPK,     /* softmax over the k smallest z of each row, renormalized */
  IMX_ACT_SPARSEMAX /* Euclidean projection of -z/tau onto the simplex */
} imx_activation;
/* The names of imx_activation, in its order (config accepts and writes these). */
static const char *const imx_activation_names[] = {"identity", "relu",      "softmax",
                                                   "topk",     "sparsemax", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_activation_name(imx_activation a) {
  return imx_name_of(imx_activation_names, (int)a);
}

typedef struct imx_act {
  imx_activation kind;
  double tau; /* temperature of softmax, topk and sparsemax */
  int k;      /* topk: units kept per row (1..K) */
  int K;      /* units per row */
} imx_act;

/* Do rows of phi sum to 1 (softmax, topk, sparsemax)? Then C 1 = 0, and phi
 * ignores a common shift of z (phi(z + c 1) = phi(z)). Local. */
int imx_activation_simplex(imx_activation a);

/* Does phi have exact zeros by construction (topk, sparsemax)? Local. */
int imx_activation_sparse(imx_activation a);

/* Scratch doubles that imx_act_forward needs (topk: K; else 0). Local. */
int imx_act_work(const imx_act *a);

/* a = phi(z) in place on rows x K (row-major). work: imx_act_work(a)
 * doubles (may be NULL when that is 0). Local. */
void imx_act_forward(const imx_act *a, int64_t rows, double *Z, double *work);

/* The same in float32 (parallel.precision: single): the steps of
 * imx_act_forward in float arithmetic. work: imx_act_work(a) doubles. Local. */
void imx_act_forward_f(const imx_act *a, int64_t rows, float *Z, double *work);

/* g <- dL/dz from g = dL/da in place, for rows x K; A holds phi(z). The
 * topk and sparsemax gradients are exact where the kept set / support does
 * not change (almost everywhere). Local. */
void imx_act_backward(const imx_act *a, int64_t rows, const double *A, double *g);

#endif
