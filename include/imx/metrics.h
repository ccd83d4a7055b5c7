/* metrics: the measures of a trained layer on a (sharded) data set (what
 * `infomax eval` and summary.json report), computed with the block-wise reductions of training:
 * in reproducible mode every measure has the same bits for any number of
 * ranks.
 *
 * On the outputs a = phi(z) of the N samples, with m and C = cov(a) as in the
 * objective:
 *  - dead units: C_jj <= 1e-12 * mean_k C_kk (the rule used while training);
 *  - winners: how often each unit wins argmax_k r_k, with r = a for softmax
 *    outputs and r = softmax(-a) otherwise (the responsibilities of the lse
 *    term: the unit with the smallest energy wins; ties go to the lowest
 *    index), the entropy of the winner frequencies in bits (log2 K when
 *    uniform) and the number of units that win at least once;
 *  - correlations R = D^-1/2 C D^-1/2 of the live units (D = diag C): max and
 *    mean |R_jk| over the pairs j < k;
 *  - Gaussian total correlation of the live units, -1/2 log det R =
 *    1/2 (sum_j log C_jj - log det C), in nats: 0 iff R = I. Softmax outputs
 *    sum to 1, so R has a null vector; the determinant is taken over the other
 *    directions (the smallest eigenvalue is left out). +infinity when R is
 *    singular (e.g. identity outputs with K > n);
 *  - effective rank exp(H(p)), p = eigenvalues of C / trace C (Roy and
 *    Vetterli 2007): 1 for K identical units, K for C = c I;
 *  - regions: the number of distinct sign patterns (z_k > 0)_k over the data,
 *    exact for any K, and the number of samples in the largest region.
 *    Patterns are hash-partitioned to owner ranks (MPI_Alltoallv), so no rank
 *    ever holds all of them;
 *  - sign entropy of each unit: H(p_j) in bits, p_j the fraction of samples
 *    with z_j > 0 (1 bit: the hyperplane halves the data; 0: every sample on
 *    one side); its mean and minimum, and the units with 0;
 *  - random regions: the regions of K random unit hyperplanes (the random
 *    baseline's directions) at the layer's own offsets b, z = W_rand x + b:
 *    what the offsets alone give, to set the regions against.
 * On the weights:
 *  - weight redundancy ||W W^T - I||_F (the square root of the objective term
 *    weight_redundancy);
 *  - Amari distance between W and the true mixing (synthetic ICA, K = n).
 */
#ifndef IMX_METRICS_H
#define IMX_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "imx/activation.h"
#include "imx/ctx.h"
#include "imx/data.h"
#include "imx/json.h"
#include "imx/layer.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* The measures of one layer (or baseline) on one data set. Scalars that do
 * not apply are NaN (JSON null). */
typedef struct imx_metrics {
  int K;                      /* units measured */
  long long N;                /* samples measured */
  int dead_units;             /* C_jj <= 1e-12 mean C_kk */
  long long *winners;         /* K winner counts (owned, see imx_metrics_clear) */
  int winning_units;          /* units that win at least one sample */
  double winner_entropy_bits; /* entropy of winners / N in bits */
  double max_abs_corr;        /* max |R_jk|, j < k, live units (NaN: fewer than 2) */
  double mean_abs_corr;       /* mean |R_jk| over the same pairs */
  double gaussian_tc;         /* nats; +infinity if R is singular */
  double effective_rank;      /* exp(entropy of eig(C) / trace C); NaN if C = 0 */
  long long regions;          /* distinct sign patterns of z */
  long long largest_region;   /* samples in the most populated one */
  double *sign_entropy;       /* K: H(fraction of samples with z_j > 0) in bits (owned) */
  double sign_entropy_mean;   /* their mean (bits) */
  double sign_entropy_min;    /* their minimum (bits) */
  int constant_sign_units;    /* units whose z_j has one sign on every sample */
  long long random_regions;   /* regions of K random hyperplanes at the offsets b (-1: not
                                 measured) */
  double weight_redundancy;   /* ||W W^T - I||_F; NaN without weights */
  double amari;               /* Amari distance to the true mixing; NaN if unknown */
  double *corr;               /* K x K: R_jk for live j, k (1 on their diagonal), 0 if
                                 either is dead (owned); NULL when measured on tiles */
  double *eigenvalues;        /* K eigenvalues of C, descending (owned) */
} imx_metrics;

/* The outputs of a layer on this rank's rows, as the measures see them. */
typedef struct imx_outputs {
  int64_t N;          /* global rows */
  int64_t nloc;       /* local rows; they start at a block boundary (imx_shard) */
  int block;          /* B */
  int K;              /* columns */
  imx_activation act; /* how A came from Z: picks the winner rule and the null vector */
  const double *Z;    /* nloc x K pre-activations z (sign patterns); NULL: z = A */
  const double *A;    /* nloc x K activations a = phi(z) */
  /* Optional, for random_regions (X or b NULL: not measured): */
  const double *X; /* nloc x n inputs the layer saw */
  int n;           /* their columns */
  const double *b; /* K offsets of the layer */
  uint64_t seed;   /* of the random directions (model.seed, as the random baseline's) */
  /* Where the moment measures work (imx_metrics_plan): */
  int tiles;                /* 0: replicated K x K matrices; > 0: block-cyclic tiles of this
                               size (doubled as the scalapack backend does for large K) */
  int grid_rows, grid_cols; /* their BLACS grid (0 = automatic, as parallel.grid_rows/cols) */
  /* On tiles only: write the K x K correlation matrix (the replicated
   * code's out->corr, which stays NULL there) to this .npy path,
   * collectively; NULL: not written. */
  const char *corr_path;
} imx_outputs;

/* Set every field to "not computed" (NaN, 0, NULL). Local. */
void imx_metrics_init(imx_metrics *m);
/* Free the arrays m owns and re-initialize it; accepts NULL. Local. */
void imx_metrics_clear(imx_metrics *m);

/* Bytes per rank the moment measures need for K units on P ranks, tiles as
 * in imx_outputs: on replicated K x K matrices (tiles = 0: the reproducible
 * sum, C, the correlation and a copy for the eigensolver, about 7 K^2
 * doubles), or on block-cyclic tiles (two local blocks of K^2 / P; z, phi(z)
 * and the centered outputs of nloc rows; the eigensolver's workspace). Local. */
double imx_metrics_bytes(int K, int P, int tiles, int64_t nloc);

/* Do measures of `measures` bytes per rank fit beside a trained layer of
 * `layer` bytes in avail bytes per rank (imx_linalg_memory_per_rank; 0 =
 * unknown: they fit)? With budget (parallel.memory_mib given) the layer counts
 * against avail; otherwise avail was read from the node (MemAvailable), which
 * already leaves out the layer's buffers, in use since training. They fit
 * when *need, the bytes counted, is at most 3/4 of avail. Local. */
int imx_metrics_fit(double measures, double layer, double avail, int budget, double *need);

/* m->eigenvalues (allocated, K) = w (K eigenvalues of C, ascending) in
 * descending order, and the effective rank from them (tiny negative ones are
 * rounding and count as 0). Local. */
void imx_metrics_spectrum(int K, const double *w, imx_metrics *m);

/* Where `infomax eval` takes the moment measures of K units: o->tiles,
 * grid_rows, grid_cols from parallel.linalg (replicated: 0; scalapack: the
 * tiles of parallel.scalapack_block on parallel.grid_rows x grid_cols; auto:
 * the layer's rule, imx_linalg_choose, with the bytes of imx_metrics_bytes).
 * Collective (reads the memory per rank). */
imx_err imx_metrics_plan(imx_ctx *ctx, const imx_config *cfg, int K, imx_outputs *o);

/* The moment measures of o (dead units, max and mean |corr|, Gaussian TC,
 * effective rank and the eigenvalues of C) on block-cyclic tiles
 * (src/eval/metrics_dist.c): C from the rows straight into its owners' tiles
 * (include/imx/dmoments.h); correlations over each rank's tiles, the mean
 * from exact per-tile deposits; Gaussian TC = -1/2 log det R from a
 * Cholesky of R (the dead units' rows and columns replaced by the identity;
 * for outputs on the simplex R + v v^T, v its null vector D^1/2 1 / norm);
 * +infinity where the Cholesky fails; the eigenvalues of C from ScaLAPACK's
 * pdsyevr (reducing C in place); with o->corr_path, the correlation matrix
 * written there from the tiles (include/imx/rowsout.h's imx_rows_put_runs).
 * No rank holds a K x K array; out->corr stays NULL. In
 * reproducible mode dead units, max and mean |corr| and Gaussian TC have the
 * same bits for any P and grid; the eigenvalues (and the effective rank)
 * depend on the grid within rounding. Against the replicated code the values
 * agree within rounding, except that the replicated code reports +infinity
 * from R's smallest eigenvalue <= 1e-12 while the Cholesky only fails near
 * the rounding level. Collective.
 * Errors (agreed): IMX_ERR_NOMEM, IMX_ERR_NUMERIC, IMX_ERR_MPI, IMX_ERR_CONFIG. */
imx_err imx_metrics_moments_tiles(imx_ctx *ctx, imx_reduction mode, const imx_outputs *o,
                                  imx_metrics *m);

/* Every measure of the layer at theta on the data d it was created on, the
 * moment measures where the layer's K x K matrices live (replicated, or the
 * scalapack backend's grid and tile size). Collective.
 *   cfg (in, global): parallel.reduction picks the reduction mode.
 *   layer (in): created on d; theta (in, global): its parameters.
 *   transform (in, global): the n x n preprocessing matrix P of
 *     imx_preprocess_apply (x <- (x - mu) P), or NULL for the identity; it
 *     maps d->truth (x = A s) into the coordinates the layer sees, for the
 *     Amari distance.
 *   out (out, global): initialized here; free its arrays with
 *     imx_metrics_clear. Every rank gets the same values.
 * Errors (agreed): IMX_ERR_NOMEM, IMX_ERR_NUMERIC (eigensolver), IMX_ERR_MPI. */
imx_err imx_metrics_compute(imx_ctx *ctx, const imx_config *cfg, imx_layer *layer,
                            const double *theta, const imx_data *d, const double *transform,
                            imx_metrics *out);

/* The output measures (all but the weight ones) of o; the moment measures
 * on replicated K x K matrices or, with o->tiles > 0, on block-cyclic tiles
 * (imx_metrics_moments_tiles). Collective.
 *   mode (in, global): reduction mode of the moments.
 *   out (out, global): initialized here; same values on every rank.
 * Errors (agreed): IMX_ERR_NOMEM, IMX_ERR_NUMERIC, IMX_ERR_MPI. */
imx_err imx_metrics_outputs(imx_ctx *ctx, imx_reduction mode, const imx_outputs *o,
                            imx_metrics *out);

/* The weight measures into out: redundancy of W (K x n, row-major) and, if
 * mixing (n x n, the true mixing in the coordinates W acts on) is not NULL
 * and K == n, the Amari distance of W mixing. rows: 0 forms W W^T whole
 * (K x K), > 0 that many of its rows at a time (rows x K). Local. Returns
 * IMX_ERR_NOMEM if scratch memory runs out (the measures are then NaN). */
imx_err imx_metrics_weights(imx_ctx *ctx, int K, int n, const double *W, const double *mixing,
                            int rows, imx_metrics *out);

/* Distinct sign patterns (z_k > 0) of the rows of Z (nloc x K local rows)
 * over all ranks, and the size of the largest group. Exact for any K (bit
 * arrays); each distinct pattern is counted by one owner rank chosen by its
 * hash. Collective; every rank gets the same counts. */
imx_err imx_metrics_regions(imx_ctx *ctx, int64_t nloc, int K, const double *Z, long long *regions,
                            long long *largest);

/* The winner of one row a (K outputs of activation act): the largest a for
 * outputs on the simplex (softmax, topk, sparsemax), the smallest otherwise;
 * ties go to the lowest index (the rule of the winner counts). Local. */
int imx_metrics_winner(imx_activation act, int K, const double *a);

/* Normalized Amari index of the n x n matrix P (row-major), in [0, 1]:
 * 0 iff P is a scaled permutation.
 *   1/(2n(n-1)) [sum_i (sum_j |p_ij| / max_j |p_ij| - 1)
 *              + sum_j (sum_i |p_ij| / max_i |p_ij| - 1)]
 * NaN if a row or column of P is zero. Local. */
double imx_metrics_amari(int n, const double *P);

/* The true mixing as the layer sees it: with x' = P^T (x - mu) and x = A s,
 * x' = (P^T A) s + const, so out = P^T A (n x n; P NULL: out = A). Local. */
void imx_metrics_mixing(int n, const double *transform, const double *A, double *out);

/* Write m as a JSON object member named key (winner counts as an array; the
 * matrices are not written). Local. */
void imx_metrics_json(imx_json *j, const char *key, const imx_metrics *m);

/* Print a table of measures on rank 0 to f: one row per measure, one column
 * per entry of cols (names: column headings). Local. */
#define IMX_METRICS_LABEL_WIDTH 24 /* width of the row labels */
#define IMX_METRICS_COL_WIDTH 13   /* width of each column */
void imx_metrics_table(const imx_ctx *ctx, FILE *f, int ncols, const char *const *names,
                       const imx_metrics *const *cols);

/* The table of one set of measures (rank 0). Local. */
void imx_metrics_print(const imx_ctx *ctx, FILE *f, const imx_metrics *m);

#endif
