/* signals: a stop request from outside (Slurm's --signal, scancel, ^C).
 *
 * SIGUSR1, SIGTERM and SIGINT only set a flag; training polls it at every
 * iteration boundary, all ranks agree (one flagged rank is enough), write a
 * checkpoint and exit with IMX_STOPPED (75). A second SIGINT kills at once.
 * main installs the handlers before anything else and holds the signals
 * while MPI and PETSc start and finish (PETSc sets SIGTERM to its own handler
 * and back to the default), so that a signal at any time is a stop request:
 * one that arrives before training is seen at the first safe point (before or
 * after loading the data, or at iteration 0). */
#ifndef IMX_SIGNALS_H
#define IMX_SIGNALS_H

#include "imx/ctx.h"

/* Install the handlers (again: after PetscInitialize). Local. */
void imx_signals_install(void);
/* hold = 1: keep the stop signals pending instead of delivering them (they
 * stay recorded); hold = 0: deliver them again, the pending ones first. Local. */
void imx_signals_hold(int hold);
/* The pending stop signal (SIGUSR1, SIGTERM, SIGINT) or 0. Local. */
int imx_signals_pending(void);
/* The stop signal any rank has received, or 0, on every rank. Collective. */
imx_err imx_signals_agree(imx_ctx *ctx, int *sig);
/* Name of a signal number ("SIGUSR1"). Local. */
const char *imx_signal_name(int sig);

#endif
