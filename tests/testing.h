/* testing: PASSED/FAILED checks for the numerical tests (HPL style: each
 * check prints the measured error and the tolerance). Rank 0 prints; a
 * failure on any rank fails the test. */
#ifndef IMX_TESTING_H
#define IMX_TESTING_H

#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imx/config.h"
#include "imx/ctx.h"

static int t_failed = 0;

/* Record a check on this rank; print it on world rank 0. */
static void t_check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void t_check(int ok, const char *fmt, ...) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (!ok) t_failed = 1;
  if (rank != 0 && ok) return;
  va_list ap;
  va_start(ap, fmt);
  printf("%s%s: ", rank ? "[other rank] " : "", ok ? "PASSED" : "FAILED");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

/* Relative error |a - b| / max(|b|, floor). */
__attribute__((unused)) static double t_relerr(double a, double b, double floor) {
  double d = fabs(b) > floor ? fabs(b) : floor;
  return fabs(a - b) / d;
}

/* Agree on the result and return the exit code (0 pass, 1 fail). Collective. */
static int t_finish(void) {
  int bad = t_failed;
  MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) printf("%s\n", bad ? "FAILED" : "PASSED");
  return bad;
}

/* A small synthetic configuration for numerical tests. */
__attribute__((unused)) static void t_small_config(imx_config *c, int N, int n, int K, int block) {
  imx_config_defaults(c);
  c->data.source = IMX_SRC_SYNTHETIC_ICA;
  c->data.samples = N;
  c->data.dim = n;
  c->model.units = K;
  c->parallel.block = block;
}

#endif
