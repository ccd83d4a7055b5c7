/* timer: wall-clock phases with cross-rank statistics (see include/imx/timer.h). */
#include "imx/timer.h"

#include <petscsys.h>

const char *const imx_timer_names[IMX_NTIMERS] = {"total",     "load",   "preprocess", "forward",
                                                  "moments",   "reduce", "linalg",     "backward",
                                                  "optimizer", "output"};

static double acc[IMX_NTIMERS];     /* accumulated seconds */
static double started[IMX_NTIMERS]; /* start time of a running phase */
static PetscLogEvent events[IMX_NTIMERS];
static int petsc_events = 0; /* events registered? */

double imx_now(void) { return MPI_Wtime(); }

void imx_timer_start(imx_timer_id t) {
  started[t] = MPI_Wtime();
  if (petsc_events) (void)PetscLogEventBegin(events[t], 0, 0, 0, 0);
}

void imx_timer_stop(imx_timer_id t) {
  acc[t] += MPI_Wtime() - started[t];
  if (petsc_events) (void)PetscLogEventEnd(events[t], 0, 0, 0, 0);
}

double imx_timer_get(imx_timer_id t) { return acc[t]; }

void imx_timer_reset(void) {
  for (int i = 0; i < IMX_NTIMERS; i++) acc[i] = 0;
}

void imx_timer_register_petsc(void) {
  PetscClassId cls;
  if (PetscClassIdRegister("InfoMax", &cls)) return;
  for (int i = 0; i < IMX_NTIMERS; i++) {
    char name[64];
    snprintf(name, sizeof name, "imx_%s", imx_timer_names[i]);
    if (PetscLogEventRegister(name, cls, &events[i])) return;
  }
  petsc_events = 1;
}

imx_err imx_timer_stats(imx_ctx *ctx, imx_timer_stat stats[IMX_NTIMERS]) {
  struct {
    double v;
    int r;
  } in[IMX_NTIMERS], mn[IMX_NTIMERS], mx[IMX_NTIMERS];
  double sum[IMX_NTIMERS];
  for (int i = 0; i < IMX_NTIMERS; i++) in[i].v = acc[i], in[i].r = ctx->rank;
  IMX_MPI(ctx, MPI_Allreduce(in, mn, IMX_NTIMERS, MPI_DOUBLE_INT, MPI_MINLOC, ctx->comm));
  IMX_MPI(ctx, MPI_Allreduce(in, mx, IMX_NTIMERS, MPI_DOUBLE_INT, MPI_MAXLOC, ctx->comm));
  IMX_MPI(ctx, MPI_Allreduce(acc, sum, IMX_NTIMERS, MPI_DOUBLE, MPI_SUM, ctx->comm));
  for (int i = 0; i < IMX_NTIMERS; i++) {
    stats[i].min = mn[i].v, stats[i].min_rank = mn[i].r;
    stats[i].max = mx[i].v, stats[i].max_rank = mx[i].r;
    stats[i].mean = sum[i] / ctx->size;
  }
  return IMX_OK;
}
