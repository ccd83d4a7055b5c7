/* probe: a linear probe on frozen features, multinomial logistic regression
 * trained with PETSc TAO and distributed like training.
 *
 * Features f_i (dim columns, standardized with the train split's mean and
 * standard deviation; constant columns become 0), labels y_i in [0, C):
 *
 *   L(V, c) = (1/N) sum_i [log sum_k exp(l_ik) - l_iy_i] + l2 ||V||_F^2,
 *   l_i = V f_i + c,   V: C x dim,   c: C (the bias is not penalized).
 *
 *   dL/dV = (1/N) (S - Y)^T F + 2 l2 V,  dL/dc = (1/N) colsum(S - Y),
 *   S: row-wise softmax of the logits, Y: one-hot labels.
 *
 * As in training (src/train/train.c), the parameters theta = [V (row-major), c]
 * live in a sequential Vec replicated on every rank; every rank runs the same
 * TAO on the same reduced value and gradient; the sums over rows are the
 * block-wise reductions of rsum/moments, so in reproducible mode the probe's
 * parameters and accuracies have the same bits for any number of ranks. The
 * probe's TAO takes options with the prefix "probe_" (-probe_tao_type bncg,
 * -probe_tao_monitor, ...), so those of the layer's optimizer do not leak in.
 */
#ifndef IMX_PROBE_H
#define IMX_PROBE_H

#include <stdint.h>

#include "imx/ctx.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

typedef struct imx_probe imx_probe;

/* One split's features and labels on this rank. */
typedef struct imx_probe_data {
  int64_t N;             /* global rows */
  int64_t nloc;          /* local rows; they start at a block boundary (imx_shard) */
  int block;             /* B */
  double *F;             /* nloc x dim features, row-major (standardized in place) */
  const int32_t *labels; /* nloc labels in [0, classes) */
} imx_probe_data;

/* What a probe run did and scored. */
typedef struct imx_probe_result {
  int dim, classes; /* feature columns, classes */
  long long n_train, n_test;
  double loss;           /* final objective on the train split */
  double train_accuracy; /* fraction of train rows classified right */
  double test_accuracy;  /* on the test split; NaN without one */
  int iterations, evaluations;
  char reason[64]; /* TAO convergence reason */
  char tao_type[32];
  double seconds; /* wall time of the whole probe */
} imx_probe_result;

/* A trained probe as a user applies it to features f (dim): f' = (f - mean)
 * * scale (scale = 1/sd of the train split, 0 for a constant column), logits
 * V f' + c, the class is the largest logit (the first of equal ones). */
typedef struct imx_probe_model {
  int dim, classes;
  double *mean, *scale; /* dim each, owned */
  double *V, *c;        /* classes x dim (row-major) and classes, owned */
} imx_probe_model;

/* Free the arrays of m and zero it (accepts NULL). Local. */
void imx_probe_model_clear(imx_probe_model *m);

/* Create a probe on the train split: its features are standardized in place
 * (the statistics are kept for imx_probe_standardize). train must stay valid
 * while the probe lives. Collective.
 *   cfg (in, global): parallel.reduction, eval.probe_l2, eval.probe_max_it.
 *   dim, classes (in, global): feature columns and classes (>= 2).
 * Errors (agreed): IMX_ERR_NOMEM, IMX_ERR_DATA (a label outside [0, classes)),
 * IMX_ERR_MPI. Free with imx_probe_free. */
imx_err imx_probe_create(imx_ctx *ctx, const imx_config *cfg, int dim, int classes,
                         imx_probe_data *train, imx_probe **out);
void imx_probe_free(imx_probe **p);

/* Number of parameters classes * dim + classes. Local. */
int imx_probe_nparams(const imx_probe *p);

/* Standardize another split's features with the train split's statistics.
 * Local. */
void imx_probe_standardize(const imx_probe *p, imx_probe_data *split);

/* Objective and gradient (may be NULL) at theta (nparams, replicated) on the
 * train split. Collective; every rank gets the same bits. */
imx_err imx_probe_eval(imx_ctx *ctx, imx_probe *p, const double *theta, double *f, double *grad);

/* Minimize with TAO from theta (in: start, out: the final iterate; a TAO
 * type's "diverged" reason such as a failed line search near the optimum is
 * reported in res, not an error). Collective. */
imx_err imx_probe_train(imx_ctx *ctx, imx_probe *p, double *theta, imx_probe_result *res);

/* Fraction of the rows of a standardized split classified right at theta.
 * Collective. */
imx_err imx_probe_accuracy(imx_ctx *ctx, imx_probe *p, const double *theta,
                           const imx_probe_data *split, double *accuracy);

/* The whole probe: create on train, train from zero, score train and (if not
 * NULL) test, whose features are standardized in place too. classes is the
 * number of classes of both splits. keep (may be NULL) receives the trained
 * probe (the same on every rank; clear with imx_probe_model_clear). Collective. */
imx_err imx_probe_run(imx_ctx *ctx, const imx_config *cfg, int dim, int classes,
                      imx_probe_data *train, imx_probe_data *test, imx_probe_result *res,
                      imx_probe_model *keep);

#endif
