/* signals: a stop request from outside (Slurm's --signal, scancel, ^C).
 *
 * SIGUSR1, SIGTERM and SIGINT only set a flag; training polls it at every
 * iteration boundary, all ranks agree (one flagged rank is enough), write a
 * checkpoint and exit with IMX_STOPPED (75). A second SIGINT kills at once. */
#ifndef IMX_SIGNALS_H
#define IMX_SIGNALS_H

/* Install the handlers. Local. */
void imx_signals_install(void);
/* The pending stop signal (SIGUSR1, SIGTERM, SIGINT) or 0. Local. */
int imx_signals_pending(void);
/* Name of a signal number ("SIGUSR1"). Local. */
const char *imx_signal_name(int sig);

#endif
