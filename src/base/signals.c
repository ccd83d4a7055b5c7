/* signals: stop requests polled at iteration boundaries (see include/imx/signals.h). */
#include "imx/signals.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t pending = 0;

static void on_signal(int sig) {
  if (sig == SIGINT && pending == SIGINT) { /* second ^C: stop now */
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
  }
  pending = sig;
}

/* The stop signals. */
static void stop_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGUSR1);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
}

void imx_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* MPI and I/O calls continue; we poll the flag */
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

void imx_signals_hold(int hold) {
  sigset_t set;
  stop_set(&set);
  pthread_sigmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

int imx_signals_pending(void) { return pending; }

imx_err imx_signals_agree(imx_ctx *ctx, int *sig) {
  *sig = pending;
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, sig, 1, MPI_INT, MPI_MAX, ctx->comm));
  return IMX_OK;
}

const char *imx_signal_name(int sig) {
  return sig == SIGUSR1   ? "SIGUSR1"
         : sig == SIGTERM ? "SIGTERM"
         : sig == SIGINT  ? "SIGINT"
                          : "signal";
}
