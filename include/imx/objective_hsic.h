/* objective_hsic: the `hsic` term, sum over unit pairs j < k of HSIC(a_j, a_k)
 * with a Gaussian kernel, estimated with random Fourier features:
 *
 *   phi_j,2m(a) = sqrt(2/D) cos(omega_jm a / sigma_j),
 *   phi_j,2m+1(a) = sqrt(2/D) sin(omega_jm a / sigma_j),   m = 0 .. D/2 - 1 (D even),
 *   omega ~ N(0, 1)   (counter-based RNG: (model.seed, stream 41, j D/2 + m)),
 *   F = (1/N) sum_i phi_i phi_i^T - mu mu^T        (K D x K D, mu = (1/N) sum_i phi_i),
 *   hsic = sum_{j<k} ||F_jk||_F^2                   (F_jk: the D x D block of units j, k),
 *
 * the biased (V-statistic) HSIC of the kernel k(a, a') = phi(a)^T phi(a'),
 * an unbiased estimate of exp(-(a - a')^2 / (2 sigma_j^2)). Shifting a_j
 * rotates each (cos, sin) pair of unit j, so the estimate is invariant to
 * the bias (its gradient through hsic is zero). The sums of phi
 * and phi phi^T are partial sums over blocks of rows, reduced across ranks
 * like C (both modes). With G = dL/dF (G_jk = F_jk off the diagonal blocks,
 * 0 on them): dL/dphi_i = (2/N) G (phi_i - mu), then through the features
 * to a. sigma_j is objective.hsic_bandwidth times the median of |a_ij - a_i'j|
 * over the pairs of a fixed subsample of at most 200 rows (global rows
 * spread evenly over the data set), taken from the initial parameters'
 * outputs and then kept (so the objective is one fixed function during a
 * run, an exact resume included); a bandwidth
 * given as a negative number is used as sigma directly (-value).
 * See docs/objectives.md.
 */
#ifndef IMX_OBJECTIVE_HSIC_H
#define IMX_OBJECTIVE_HSIC_H

#include <stddef.h>
#include <stdint.h>

#include "imx/ctx.h"
#include "imx/rsum.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

typedef struct imx_hsic imx_hsic;

/* Bytes per rank the term needs for K units and D features per unit, with
 * `chunk` rows per feature block: F, G, the sums and three chunk x K D
 * feature blocks. Local. */
double imx_hsic_bytes_needed(int K, int D, int64_t chunk, imx_reduction mode);

/* Create the term for K units, D features per unit (cfg->objective.
 * hsic_features), the bandwidth factor and seed of cfg, the local rows
 * [row0, row0 + rows) of N, blocks of `block` rows, and `chunk` rows per
 * feature block. Refuses (IMX_ERR_CONFIG) an odd D, and when the estimate of
 * imx_hsic_bytes_needed exceeds avail bytes, naming objective.hsic_features.
 * Collective (the error is agreed). Free with imx_hsic_free. */
imx_err imx_hsic_create(imx_ctx *ctx, const imx_config *cfg, int K, int64_t N, int64_t row0,
                        int64_t rows, int block, int64_t chunk, double avail, imx_hsic **out);
void imx_hsic_free(imx_hsic **h);
size_t imx_hsic_bytes(const imx_hsic *h);
/* The bandwidths sigma_j (K, valid after the first value). Local. */
const double *imx_hsic_bandwidths(const imx_hsic *h);

/* Set the bandwidths from the outputs A (rows x K local rows, row-major) by
 * the median heuristic (or to -hsic_bandwidth); they are then kept. The layer
 * calls it with the initial parameters' outputs. Collective. */
imx_err imx_hsic_set_bandwidths(imx_ctx *ctx, imx_hsic *h, const double *A);

/* The value from the outputs A (rows x K local rows, row-major); sets the
 * bandwidths at the first call if imx_hsic_set_bandwidths was not called. Keeps mu and G for imx_hsic_grad_rows.
 * invN = 1/N. Collective; every rank gets the same bits. */
imx_err imx_hsic_value(imx_ctx *ctx, imx_hsic *h, const double *A, double invN, double *value);

/* g (c x K) += scale * dL/da for local rows r0 .. r0 + c - 1 (A: all local
 * rows), from the last value. scale is the term's weight. Local. */
void imx_hsic_grad_rows(imx_hsic *h, const double *A, int64_t r0, int c, double *g, double scale,
                        double invN);

#endif
