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
 *    and 2), b = 0, with the model's activation and temperature;
 *  - kmeans: K centers c_k from Lloyd's algorithm on the train split
 *    (imx_baseline_kmeans), judged through their soft assignments
 *    r = softmax(-||x - c_k||^2 / (2 s^2)): the fixed softmax layer (tau = 1)
 *    z_k = (||c_k||^2 / 2 - c_k . x) / s^2, which differs from
 *    ||x - c_k||^2 / (2 s^2) by a term constant in k that softmax ignores;
 *    s^2 is the mean squared distance of a row to its own center (n times
 *    the spherical Gaussian's maximum likelihood variance: with that
 *    variance the assignments are almost hard in many dimensions);
 *  - kmeans-triangle: the same centers through the Coates-Ng "triangle"
 *    features a_k = max(0, mean_j d_j - d_k), d_k = ||x - c_k||, computed
 *    directly (z_k = mean_j d_j - d_k, activation relu); W and b stay those
 *    of the soft layer (for the weight measures);
 *  - gmm: EM for a Gaussian mixture with diagonal covariances started at
 *    the k-means centers, judged through its responsibilities
 *    (imx_baseline_gmm).
 */
#ifndef IMX_BASELINE_H
#define IMX_BASELINE_H

#include "imx/activation.h"
#include "imx/ctx.h"
#include "imx/data.h"
#include "imx/rsum.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

typedef enum {
  IMX_BASE_RAW = 0,
  IMX_BASE_PCA,
  IMX_BASE_RANDOM,
  IMX_BASE_KMEANS,
  IMX_BASE_KMEANS_TRIANGLE, /* made from the kmeans column (imx_baseline_triangle) */
  IMX_BASE_GMM,             /* made from the kmeans column (imx_baseline_gmm) */
  IMX_NBASELINES
} imx_baseline_kind;
/* "raw", "pca", "random", "kmeans", "kmeans-triangle", "gmm" */
extern const char *const imx_baseline_names[IMX_NBASELINES];

/* RNG stream of the random hyperplanes. */
#define IMX_STREAM_RANDOM_HYPERPLANES 11
/* RNG stream of the k-means seeding: row i gets the key imx_rng_bits(seed,
 * 12, i) and the K rows with the smallest keys (ties: lower row) are the
 * initial centers, in increasing key order. */
#define IMX_STREAM_KMEANS_SEEDS 12
/* Lloyd steps at most; k-means stops earlier when a step changes no assignment. */
#define IMX_KMEANS_MAX_IT 100
/* EM steps of the gmm baseline, and its variance floor in units of the
 * k-means s^2 / n. */
#define IMX_GMM_IT 20
#define IMX_GMM_VAR_FLOOR 1e-3

/* How Lloyd's algorithm went. */
typedef struct imx_kmeans_info {
  int iterations; /* center updates made (<= IMX_KMEANS_MAX_IT) */
  int converged;  /* 1: the assignments to the final centers are those of the last update */
  int empty;      /* clusters without rows under the final centers */
  double inertia; /* mean over rows of ||x - c_a(x)||^2 (a(x): the nearest center) */
  double s2;      /* s^2 = inertia, the soft assignments' scale */
  int64_t *seeds; /* K global rows of the initial centers (owned) */
} imx_kmeans_info;

/* A layer with fixed parameters: a trained one read back, or a baseline. */
typedef struct imx_fixed {
  int K, n;           /* units (feature columns), inputs */
  imx_activation act; /* phi */
  double tau;         /* softmax temperature */
  double *W, *b;      /* K x n and K (owned); both NULL for the raw input (features = x) */
  double *centers;    /* kmeans, kmeans-triangle: K x n centers (owned), else NULL */
  int triangle;       /* 1: outputs are the triangle features of centers, not phi(W x + b) */
  imx_kmeans_info km; /* kmeans, kmeans-triangle: how the centers were found (gmm: its start) */
  double *gmm;        /* gmm: 1/v_kj (K x n) then log pi_k - sum_j (log(2 pi v_kj) +
                         mu_kj^2 / v_kj) / 2 (K) (owned), the means in centers; else NULL */
  int gmm_it;         /* gmm: EM steps made */
} imx_fixed;

/* Build a baseline for cfg->model (K, activation, seed) on the train split.
 * Collective (pca reduces S_x; the others are local).
 *   out (out, global): the same on every rank; free with imx_fixed_clear.
 * Errors (agreed): IMX_ERR_NOMEM, IMX_ERR_NUMERIC (eigensolver), IMX_ERR_MPI. */
imx_err imx_baseline_make(imx_ctx *ctx, const imx_config *cfg, imx_baseline_kind kind,
                          const imx_data *train, imx_fixed *out);

/* Lloyd's algorithm with K centers on the rows of d, the same bits for any
 * P in reproducible mode. Seeds: see IMX_STREAM_KMEANS_SEEDS. A step assigns
 * every row to its nearest center (argmin_k ||c_k||^2 / 2 - c_k . x, ties to
 * the lowest k; the products per block of B rows), sums the rows and counts
 * per cluster block by block through an imx_rsum and sets each center to the
 * mean of its rows; an empty cluster keeps its center. It stops when the
 * assignments no longer change or after IMX_KMEANS_MAX_IT updates. centers:
 * K x n (out, global). info->seeds is allocated here. Collective.
 * Errors (agreed): IMX_ERR_DATA (K > N), IMX_ERR_NOMEM, IMX_ERR_MPI. */
imx_err imx_baseline_kmeans(imx_ctx *ctx, imx_reduction mode, uint64_t seed, int K,
                            const imx_data *d, double *centers, imx_kmeans_info *info);

/* The kmeans-triangle column from the kmeans column km (a copy of its
 * centers, W, b and info with triangle = 1, activation relu). Collective.
 * Errors (agreed): IMX_ERR_NOMEM. */
imx_err imx_baseline_triangle(imx_ctx *ctx, const imx_fixed *km, imx_fixed *out);

/* The gmm column: EM for a mixture of K Gaussians with diagonal
 * covariances on the rows of d, from the kmeans column km: means c_k,
 * every variance s^2 / n (the spherical maximum likelihood), weights 1/K; IMX_GMM_IT steps, each an E-step
 * (responsibilities r_ik per block of B rows) and an M-step from the sums
 * of r, r x and r x^2 (reproducible sums: the same bits for any P): pi_k =
 * N_k / N, mu_k, v_kj = max(0, E_r[x_j^2] - mu_kj^2) + IMX_GMM_VAR_FLOOR
 * s^2 / n; a component with N_k = 0 keeps its parameters. Its outputs:
 * z_k = -log(pi_k N(x; mu_k, diag(v_k))) and r = softmax(-z) (activation
 * softmax, tau 1), computed directly; W, b hold the part of z linear in x.
 * Collective. Errors (agreed): IMX_ERR_NOMEM, IMX_ERR_MPI. */
imx_err imx_baseline_gmm(imx_ctx *ctx, const imx_config *cfg, const imx_fixed *km,
                         const imx_data *d, imx_fixed *out);

/* The mean of the rows of d whose winner (imx_metrics_winner on A, nloc x K
 * outputs of activation act) is unit k, into P (K x n), and the row counts
 * into count (K); a unit that wins no row gets zeros. Reproducible sums.
 * Collective. Errors (agreed): IMX_ERR_NOMEM, IMX_ERR_MPI. */
imx_err imx_baseline_winner_means(imx_ctx *ctx, imx_reduction mode, int K, imx_activation act,
                                  const double *A, const imx_data *d, double *P, double *count);

/* Prototypes against true means: greedy matching (repeatedly the closest
 * pair of an unmatched prototype with count[k] > 0 and an unmatched true
 * mean), over min(C, live prototypes) pairs. *matched, the mean and the
 * largest distance of the matched pairs, and *separation, the mean distance
 * between two different true means (the scale to read them against). Local. */
void imx_baseline_match(int K, int n, const double *P, const double *count, int C,
                        const double *truth, int *matched, double *mean, double *max,
                        double *separation);

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
