/* train: PETSc TAO drives the optimization of one layer.
 *
 * The parameter Vec is sequential and replicated: every rank runs the same TAO
 * on the same reduced gradient, so the optimizer's own dot products do not
 * depend on the number of ranks and the whole run is bitwise reproducible.
 * Any gradient-based or derivative-free TAO type and option works from the
 * command line (-tao_type, -tao_monitor, -tao_test_gradient, -log_view) and
 * from the config's optimizer section; the command line wins.
 */
#ifndef IMX_TRAIN_H
#define IMX_TRAIN_H

#include "imx/config.h"
#include "imx/ctx.h"
#include "imx/layer.h"

typedef struct imx_train_result {
  int iterations;         /* TAO iterations done */
  int evaluations;        /* objective-and-gradient evaluations */
  char reason[64];        /* TAO convergence reason, e.g. CONVERGED_GATOL */
  char tao_type[32];      /* TAO type used */
  double grad_norm;       /* final gradient norm */
  imx_eval final;         /* terms and indicators at the final parameters */
  double seconds;         /* wall time of TaoSolve */
} imx_train_result;

/* Optimize theta (nparams, replicated; in: initial, out: the last accepted
 * iterate, also when an error stops the run) and log progress on rank 0; if
 * metrics is not NULL (rank 0), write one JSON line per iteration to it.
 * Collective. */
imx_err imx_train(imx_ctx *ctx, const imx_config *cfg, imx_layer *layer, double *theta,
                  FILE *metrics, imx_train_result *res);

/* Apply config-level PETSc options ("-tao_ls_type armijo ...") unless the
 * same option was given on the command line. Call after PetscInitialize.
 * Local (every rank does the same). */
imx_err imx_train_options(imx_ctx *ctx, const imx_config *cfg);

#endif
