/* objective: the InfoMax terms, their presets and their gradients.
 *
 * Moment terms are functions of the output covariance C (K x K); they return
 * their values and G = dL/dC (the weighted sum over terms, symmetric). The
 * per-sample term lse and the weight-only term weight_redundancy have their
 * own entry points. Everything here is Local and deterministic: replicated
 * inputs give the same bits on every rank.
 */
#ifndef IMX_OBJECTIVE_H
#define IMX_OBJECTIVE_H

#include "imx/config.h"
#include "imx/ctx.h"

typedef struct imx_objective {
  double w[IMX_NTERMS]; /* resolved weight of each term (0 = off) */
  double eps;           /* ridge added to C and to diag C */
  int null_vector;      /* add 1 1^T / K before log det (softmax responsibilities) */
} imx_objective;

/* Resolve the preset and the explicit weights of cfg->objective into obj and
 * check the combination against the model (e.g. log det of identity outputs
 * with K > n). n: input dimension, N: samples. Local. */
imx_err imx_objective_resolve(imx_ctx *ctx, const imx_config *cfg, int n, long long N,
                              imx_objective *obj);

/* Does any term need C? Local. */
int imx_objective_needs_cov(const imx_objective *obj);

/* Moment terms: terms[t] receives the unweighted value of every moment term t
 * with a nonzero weight (others untouched); *value the weighted sum; G (K x K)
 * the weighted dL/dC. work: K^2 + 3 K doubles of scratch. Errors: not SPD
 * (IMX_ERR_NUMERIC, with pivot and hint), zero variance in decorrelation. */
imx_err imx_objective_moments(imx_ctx *ctx, const imx_objective *obj, int K, const double *C,
                              double *G, double *work, double terms[IMX_NTERMS], double *value);

/* weight_redundancy = ||W W^T - I||_F^2 for W (K x n); adds weight * dL/dW to
 * gW and returns the unweighted value. work: K^2 doubles. */
double imx_objective_weight_redundancy(const imx_objective *obj, int K, int n, const double *W,
                                       double *gW, double *work);

/* lse of one sample: -log sum_k exp(-a_k), the negative log-likelihood of a
 * mixture with energies a_k (bounded below by -log K for a >= 0); if g != NULL,
 * g_k += scale * dlse/da_k = scale * r_k with r = softmax(-a), the
 * responsibilities: the implicit-EM gradient. */
double imx_objective_lse_row(int K, const double *a, double *g, double scale);

/* Names of the presets, NULL-terminated, for messages and docs. */
extern const char *const imx_preset_names[];

#endif
