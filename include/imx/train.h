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

#include "imx/ctx.h"
#include "imx/layer.h"
#include "imx/optlog.h"

/* Only used through pointers here: the full struct is in imx/config.h. */
typedef struct imx_config imx_config;

/* TAO's settings after TaoSetFromOptions (the options may override the config's). */
typedef struct imx_tao_settings {
  int max_it;          /* iterations in total, as optimizer.max_it (those before a resume too) */
  long long max_funcs; /* objective evaluations TAO allows this session */
  double gatol, grtol, gttol; /* gradient tolerances: absolute, relative, decrease */
} imx_tao_settings;

typedef struct imx_train_result {
  int iterations;        /* iterations done in total (including those before a resume) */
  int evaluations;       /* objective-and-gradient evaluations in total */
  char reason[64];       /* TAO convergence reason, e.g. CONVERGED_GATOL */
  char tao_type[32];     /* TAO type used */
  imx_tao_settings tao;  /* TAO's settings as used */
  char precondition[16]; /* "ica" (include/imx/precond.h) or "none" */
  double grad_norm;      /* final gradient norm */
  imx_eval final;        /* terms and indicators at the final parameters */
  double seconds;        /* wall time of TaoSolve (this process) */
  int stopped_by;        /* signal that stopped the run at an iteration boundary, or 0 */
  int checkpoints;       /* checkpoints written */
} imx_train_result;

/* Where training writes, and where it starts. */
typedef struct imx_train_io {
  FILE *metrics;                      /* rank 0: one JSON line per iteration (NULL: none) */
  const char *dir;                    /* run directory for checkpoints (NULL: none) */
  const char *checkpoint;             /* the checkpoint's file name in dir (NULL: checkpoint.bin) */
  imx_optlog *log;                    /* optimizer log to append to (NULL: none) */
  int start_iteration;                /* iterations done before (resume without replay), else 0 */
  int start_evaluations;              /* evaluations done before (resume without replay), else 0 */
  int64_t replay_evaluations;         /* resume with replay: evaluations to serve from log */
  int replay_iterations;              /* ... and the iteration they end at (the checkpoint's) */
  const struct imx_checkpoint *stamp; /* what the run trains on (data fingerprint, backend,
                                       * settings), copied into every checkpoint (NULL: none) */
  /* Called on every rank after each checkpoint is written, with its parameters (NULL:
   * nothing); an error it returns (agreed) stops the run like a failed checkpoint. */
  imx_err (*checkpointed)(imx_ctx *ctx, void *arg, const double *theta);
  void *arg;         /* checkpointed's first argument */
  int stage, stages; /* optimizer.stages: this stage (1-based) of how many, shown in the progress
                      * line and in every metrics line ("stage"); 0: a run without stages */
  /* Mini-batch types (adam, sgd): the file of the optimizer's moments in dir,
   * written before each checkpoint (its header names the same iteration), and
   * the moments to start from (2 nparams: adam's m and v, sgd's velocity and
   * unused; NULL: zeros, a fresh run). */
  const char *state;
  const double *moments;
} imx_train_io;

/* Optimize theta (nparams, replicated; in: initial, out: the last accepted
 * iterate, also when an error stops the run) and log progress on rank 0.
 * Checkpoints go to io->dir/io->checkpoint every output.checkpoint_every iterations, at the
 * end, and when a stop signal arrives (then res->stopped_by is set and the
 * return value is IMX_STOPPED). When TAO gives up before converging (any
 * reason but CONVERGED_* and the limits DIVERGED_MAXITS, DIVERGED_MAXFCN) the
 * run ends as usual, with a warning, and returns IMX_DIVERGED. A fresh run
 * stopped at iteration 0 writes a checkpoint of its initial parameters.
 * optimizer.max_it counts iterations in total,
 * so a resumed run does max_it - start_iteration more. With replay, theta must
 * be the run's initial parameters: TAO retraces the logged run (no data
 * passes, no output) up to the checkpoint and continues from there exactly.
 * Collective. */
imx_err imx_train(imx_ctx *ctx, const imx_config *cfg, imx_layer *layer, double *theta,
                  const imx_train_io *io, imx_train_result *res);

/* Apply config-level PETSc options ("-tao_ls_type armijo ...") unless the
 * same option was given on the command line. Call after PetscInitialize.
 * Local (every rank does the same). */
imx_err imx_train_options(imx_ctx *ctx, const imx_config *cfg);

/* Every option in PETSc's database ("-tao_max_it 5 -tao_monitor"): from the
 * command line, PETSC_OPTIONS and optimizer.options (with -tao_type). A
 * string to free(), or NULL. Local. */
char *imx_train_options_in_use(void);

/* The options nobody has read so far ("-tao_monitr -foo 3"; "" if none): a
 * string to free(), or NULL. Local. */
char *imx_train_options_unused(void);

/* Statistics per evaluation the ICA preconditioner needs (include/imx/precond.h):
 * IMX_PRECOND_AUX(K) when optimizer.precondition is ica and the layer's
 * objective is the one it is for, else 0. The optimizer log keeps them, so
 * that a resumed run retraces the preconditioned steps. Local. */
int imx_train_precond_aux(const imx_config *cfg, const imx_layer *l);

#endif
