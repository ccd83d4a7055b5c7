/* layer: one InfoMax layer, z = W x + b, a = phi(z), and the objective's value
 * and gradient with respect to its parameters over the whole (sharded) data set.
 *
 * Parameters theta = [V (K x n, row-major), b (K)], replicated on every rank.
 * With weight normalization w_j = v_j / ||v_j||; without it W = V.
 *
 * Two evaluation paths give the same result up to rounding:
 *  - data: forward over the local rows, block-wise moments, reduction,
 *    objective, backward, reduction of the gradient;
 *  - moments (identity activation and moment terms only): C = W S_x W^T and
 *    dL/dW = 2 G W S_x from the input covariance S_x, reduced once; an
 *    evaluation then never touches the data.
 */
#ifndef IMX_LAYER_H
#define IMX_LAYER_H

#include <stddef.h>

#include "imx/ctx.h"
#include "imx/data.h"
#include "imx/names.h"
#include "imx/objective.h"
#include "imx/precond.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* parallel.path: data (a pass over the samples per evaluation) or moments
 * (the input-moment fast path); auto picks moments where it applies. */
typedef enum { IMX_PATH_AUTO = 0, IMX_PATH_DATA, IMX_PATH_MOMENTS } imx_path_kind;
/* The names of imx_path_kind, in its order (config accepts and writes these). */
static const char *const imx_path_names[] = {"auto", "data", "moments", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_path_name(imx_path_kind p) {
  return imx_name_of(imx_path_names, (int)p);
}

/* parallel.precision: the data path's row-block products and activation in
 * double (DGEMM) or single (SGEMM; their block partial sums converted to
 * double and reduced as in double mode). C, its factorization and the
 * optimizer's parameters stay double. */
typedef enum { IMX_PRECISION_DOUBLE = 0, IMX_PRECISION_SINGLE } imx_precision;
/* The names of imx_precision, in its order (config accepts and writes these). */
static const char *const imx_precision_names[] = {"double", "single", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_precision_name(imx_precision p) {
  return imx_name_of(imx_precision_names, (int)p);
}

/* What a layer's forward pass gives (imx_layer_forward) and what the
 * linear probe sees (eval.features): phi(z), z, or the raw input. */
typedef enum { IMX_FEAT_ACTIVATION = 0, IMX_FEAT_Z, IMX_FEAT_INPUT } imx_features;
/* The names of imx_features, in its order (config accepts and writes these). */
static const char *const imx_features_names[] = {"activation", "z", "input", NULL};
/* The name of a value, or "?" outside the enum. Local. */
static inline const char *imx_features_name(imx_features f) {
  return imx_name_of(imx_features_names, (int)f);
}

typedef struct imx_layer imx_layer;

/* Results of the last evaluation (all replicated). */
typedef struct imx_eval {
  double loss;              /* weighted objective */
  double terms[IMX_NTERMS]; /* unweighted value of each term with nonzero weight, else NAN */
  int dead_units;           /* units with variance <= 1e-12 of the mean variance */
  double max_abs_bias;      /* max |b_j| */
  double min_var, max_var;  /* extreme diagonal entries of C */
  double max_abs_corr;      /* max_{j!=k} |C_jk| / sqrt(C_jj C_kk) (0 for dead units) */
} imx_eval;

/* Create the layer for cfg->model on the (preprocessed) data d, which must
 * stay valid while the layer lives. Resolves the objective, chooses the
 * linear-algebra backend (parallel.linalg; auto decides from K, P and the
 * memory per rank) and the evaluation path; the log says which and why.
 * Collective. */
imx_err imx_layer_create(imx_ctx *ctx, const imx_config *cfg, const imx_data *d, imx_layer **out);
void imx_layer_free(imx_layer **l);

/* Number of parameters K n + K, plus C K + C for the supervised term's head
 * (theta = [V, b, U, c]; include/imx/supervised.h). Local. */
int imx_layer_nparams(const imx_layer *l);
/* Classes C of the supervised head (0 without the supervised term). Local. */
int imx_layer_head_classes(const imx_layer *l);
int imx_layer_units(const imx_layer *l);
int imx_layer_inputs(const imx_layer *l);
/* Global number of samples N. Local. */
long long imx_layer_samples(const imx_layer *l);
/* "data" or "moments". Local. */
const char *imx_layer_path(const imx_layer *l);
/* The linear-algebra backend, "replicated" or "scalapack", and one line on
 * why it was chosen (for logs and summaries; valid while the layer lives). Local. */
const char *imx_layer_linalg(const imx_layer *l);
const char *imx_layer_linalg_reason(const imx_layer *l);
/* One line for the run log: the backend, why, the grid and the memory of
 * the layer's buffers, e.g. "scalapack on a 1 x 2 BLACS grid, 64 x 64 tiles
 * (auto: K=8192 >= 4096, where scalapack is faster on 2 ranks ...); layer
 * buffers at most 1234.5 MiB per rank (...)". Local. */
void imx_layer_describe_linalg(const imx_layer *l, char *buf, size_t len);
/* The BLACS grid and tile size of the scalapack backend (0, 0, 0 for
 * replicated). Local. */
void imx_layer_grid(const imx_layer *l, int *pr, int *pc, int *nb);
/* Bytes of this layer's buffers on this rank (excluding the data set and
 * the libraries' own scratch). Local. */
double imx_layer_bytes(const imx_layer *l);
/* Bytes of the hsic term's (K D)^2 matrices and feature blocks on this rank
 * (0 without hsic). Local. */
double imx_layer_hsic_bytes(const imx_layer *l);
/* The resolved objective. Local. */
const imx_objective *imx_layer_objective(const imx_layer *l);

/* Initial parameters from cfg->model (seeded random, P-independent, or a .npy
 * file of K x n weights). theta: nparams doubles. With the hsic term it also
 * fixes the kernel bandwidths from the outputs at theta. Collective (file
 * read on rank 0, broadcast). */
imx_err imx_layer_init_params(imx_ctx *ctx, const imx_layer *l, const imx_config *cfg,
                              double *theta);

/* Initial parameters of a stage (optimizer.stages) from the previous stage's
 * final ones, from: the weights as layer1_W.npy holds them (with
 * model.weight_norm, each row of V scaled to w_j = v_j / ||v_j||, as
 * model.init would read that file), the biases and the supervised head as
 * they are. With the hsic term it fixes the kernel bandwidths from the outputs
 * at theta. from and theta: nparams doubles (may be the same). Collective. */
imx_err imx_layer_start_params(imx_ctx *ctx, const imx_layer *l, const double *from, double *theta);

/* Objective value and gradient at theta (grad may be NULL: value only).
 * Collective; every rank gets the same bits. ev (may be NULL) receives the
 * per-term values and collapse indicators. */
imx_err imx_layer_eval(imx_ctx *ctx, imx_layer *l, const double *theta, double *f, double *grad,
                       imx_eval *ev);

/* Forward pass only: z = W x + b (which = IMX_FEAT_Z) or phi(z)
 * (IMX_FEAT_ACTIVATION) for the local rows at theta, into out (nloc x K,
 * row-major, caller-allocated). Local: no communication. */
imx_err imx_layer_forward(imx_ctx *ctx, imx_layer *l, const double *theta, imx_features which,
                          double *out);

/* The effective weights W (K x n) and biases b (K) of theta. Where the
 * objective ignores a common shift of the biases (softmax, topk, sparsemax
 * outputs) b is theta's biases less their mean, so sum b = 0 (to rounding).
 * Local. */
void imx_layer_weights(const imx_layer *l, const double *theta, double *W, double *b);

/* Use theta's biases as given in imx_layer_weights and imx_layer_forward (a
 * layer that applies trained weights, whose biases were pinned when they
 * were trained). Local. */
void imx_layer_biases_as_given(imx_layer *l);

/* The Extended Infomax switch (objective.extended_every > 0): evaluate the
 * objective at theta and give every unit of the entropy term the density its
 * stability criterion picks (include/imx/objective_entropy.h). *flips:
 * units whose density changed, *sub: units now sub-Gaussian (both 0 without
 * an entropy term or the switch). Collective; the same on every rank and for
 * any rank count (the criterion is made of reproducible sums). */
imx_err imx_layer_switch(imx_ctx *ctx, imx_layer *l, const double *theta, int *flips, int *sub);

/* Has l an entropy term with the switch on (objective.extended_every > 0)? Local. */
int imx_layer_switch_applies(const imx_layer *l);

/* Does the ICA preconditioner (include/imx/precond.h) apply to this layer:
 * only the entropy and logdet terms, identity units, K = n, the replicated
 * backend? If so fill p and return 1; else return 0 and say why in why.
 * Local. */
int imx_layer_precond(const imx_layer *l, imx_precond *p, char *why, size_t len);

/* Its statistics (IMX_PRECOND_AUX(K) doubles) from the last evaluation with
 * imx_layer_precond true. Local. */
void imx_layer_precond_aux(const imx_layer *l, double *aux);

/* Can the layer evaluate over a subset of its rows (imx_layer_use_blocks)?
 * Not on the moments path, with C from the input covariance (identity units
 * or objective.on: z), or with the supervised or hsic terms, which are tied to
 * fixed rows: then 0 and why. Local. */
int imx_layer_batchable(const imx_layer *l, char *why, size_t len);

/* Evaluate over the global blocks blocks[0 .. count-1] of parallel.block rows
 * (mini-batch training; any order, each once) from now on: the objective, its
 * gradient and the forward pass take those rows alone, N their number over
 * all ranks. Each rank takes the listed blocks it holds, in block order;
 * they are used in place when they are one run of rows, else copied to a
 * buffer of the layer. blocks NULL: all rows again. The caller has checked
 * imx_layer_batchable. Local (every rank must list the same blocks). */
imx_err imx_layer_use_blocks(imx_ctx *ctx, imx_layer *l, const int64_t *blocks, int64_t count);

/* Blend C across mini-batch steps (optimizer.cov_blend = a; 0 turns it off):
 * while a subset of the blocks is in use, an evaluation's C is
 * a C_run + (1 - a) C_batch, with C_run the C of the last committed step (C_batch
 * alone until the first commit), and its gradient flows through the batch's
 * part (G scaled by 1 - a; C_run is a constant). IMX_ERR_CONFIG, saying why,
 * unless 0 <= a < 1 and the layer has terms on C on the replicated backend's
 * data path in double precision. Collective (agreed). */
imx_err imx_layer_set_blend(imx_ctx *ctx, imx_layer *l, double a);

/* The C of the last evaluation on a batch becomes C_run (a step was taken
 * there); nothing if there was none since the last commit. Local. */
void imx_layer_blend_commit(imx_layer *l);

/* The blend's state as doubles, for the optimizer's state file: the count (1
 * + K^2: whether C_run is set, then C_run; 0 when off), a copy out, and
 * back. Local. */
size_t imx_layer_blend_count(const imx_layer *l);
void imx_layer_blend_save(const imx_layer *l, double *out);
void imx_layer_blend_load(imx_layer *l, const double *in);

/* Force an evaluation path ("data" or "moments"); for tests. Returns
 * IMX_ERR_CONFIG if the moments path does not apply. Collective. */
imx_err imx_layer_set_path(imx_ctx *ctx, imx_layer *l, int moments);

/* Widths of the scalapack backend's compute panels (and Cholesky panel
 * groups) and exchange groups, in tiles (0 = automatic); for tests, which
 * exercise many panels with small K.
 * No effect with the replicated backend. Collective. */
imx_err imx_layer_set_panels(imx_ctx *ctx, imx_layer *l, int panel_tiles, int group_tiles);

#endif
