/* timer: wall-clock phases. An enum of phases and a name table in the same
 * order (CoMD). Each phase is also a PETSc log event once
 * imx_timer_register_petsc() has run, so -log_view lines up with our report. */
#ifndef IMX_TIMER_H
#define IMX_TIMER_H

#include "imx/ctx.h"

typedef enum {
  IMX_T_TOTAL = 0, /* whole command */
  IMX_T_LOAD,      /* read or generate data */
  IMX_T_PREPROC,   /* centering, standardization, whitening */
  IMX_T_FORWARD,   /* Z = X W^T + b, A = phi(Z) */
  IMX_T_MOMENTS,   /* local partial sums of a and a a^T */
  IMX_T_REDUCE,    /* MPI reductions */
  IMX_T_LINALG,    /* Cholesky, inverse, objective terms */
  IMX_T_BACKWARD,  /* dA, dZ, dW partial sums */
  IMX_T_OPTIMIZER, /* TAO's own work between evaluations */
  IMX_T_OUTPUT,    /* writing results */
  IMX_NTIMERS
} imx_timer_id;

extern const char *const imx_timer_names[IMX_NTIMERS];

/* Start/stop a phase (nesting of different phases is fine). Local. */
void imx_timer_start(imx_timer_id t);
void imx_timer_stop(imx_timer_id t);
/* Accumulated seconds of a phase on this rank. Local. */
double imx_timer_get(imx_timer_id t);
/* Zero all phases. Local. */
void imx_timer_reset(void);
/* Register the phases as PETSc log events (after PetscInitialize). Local. */
void imx_timer_register_petsc(void);

/* Statistics of one phase across ranks. */
typedef struct imx_timer_stat {
  double min, max, mean; /* seconds */
  int min_rank, max_rank;
} imx_timer_stat;

/* Gather min (with rank), max (with rank) and mean of every phase. Collective. */
imx_err imx_timer_stats(imx_ctx *ctx, imx_timer_stat stats[IMX_NTIMERS]);

/* Seconds since an arbitrary origin (MPI_Wtime). Local. */
double imx_now(void);

#endif
