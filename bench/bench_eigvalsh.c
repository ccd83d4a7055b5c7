/* bench_eigvalsh: the distributed eigenvalues of a K x K symmetric matrix
 * (the measures' effective rank), time and peak memory per rank.
 *
 *   mpiexec -n P build/bench/bench_eigvalsh K [library|query] [nb]
 *
 * library: imx_linalg_dist_eigvalsh (pdsyevr with the workspace of its
 * in-place reduction to tridiagonal form); query: pdsyevr with the workspace
 * its query returns (the code before: PDSYNTRD then copies the matrix onto a
 * floor(sqrt P)^2 subgrid, all of it onto one rank for P < 4; from K = 16384
 * on P < 4 ScaLAPACK's REDIST ends the process). The matrix: 1 / (1 + |i - j|)
 * plus a small symmetric ripple, 2 + sin(i / 100) added on the diagonal, in
 * nb x nb tiles (64) on the automatic grid. Prints one line on rank 0: wall
 * seconds, CPU seconds and peak RSS (VmHWM) of the slowest / largest rank,
 * the smallest and largest eigenvalue and their sum, /proc/loadavg after.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imx/dmat.h"
#include "imx/linalg.h"
#include "imx/scalapack.h"

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Peak resident set of this process in MiB (VmHWM), -1 if unknown. */
static double peak_mib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double v = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) v = atof(line + 6) / 1024;
  if (f) fclose(f);
  return v;
}

static void fill(imx_dmat *M) {
  const imx_grid *g = M->grid;
  for (int lj = 0; lj < M->nloc; lj++) {
    int gj = (lj / M->nb * g->pc + g->mycol) * M->nb + lj % M->nb;
    for (int li = 0; li < M->mloc; li++) {
      int gi = (li / M->nb * g->pr + g->myrow) * M->nb + li % M->nb;
      double v = 1.0 / (1.0 + abs(gi - gj)) +
                 1e-3 * sin(0.001 * ((double)gi * 31 + gj) * ((gi + gj) % 97));
      if (gi == gj) v += 2 + sin(0.01 * gi);
      M->a[li + (size_t)lj * M->lld] = v;
    }
  }
}

/* pdsyevr with the workspace its query returns (the code before). */
static int eigvalsh_query(imx_dmat *M, double *w) {
  int K = M->K, one = 1, m = 0, nz = 0, info = 0, lwork = -1, liwork = -1, iq = 0;
  double vl = 0, vu = 0, wq = 0, z = 0;
  pdsyevr_("N", "A", "L", &K, M->a, &one, &one, M->desc, &vl, &vu, &one, &one, &m, &nz, w, &z, &one,
           &one, M->desc, &wq, &lwork, &iq, &liwork, &info);
  lwork = (int)wq + 1, liwork = iq;
  double *work = malloc((size_t)lwork * sizeof *work);
  int *iwork = malloc((size_t)liwork * sizeof *iwork);
  if (!work || !iwork) info = -1;
  else
    pdsyevr_("N", "A", "L", &K, M->a, &one, &one, M->desc, &vl, &vu, &one, &one, &m, &nz, w, &z,
             &one, &one, M->desc, work, &lwork, iwork, &liwork, &info);
  free(work), free(iwork);
  return info;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  imx_ctx ctx;
  imx_ctx_init(&ctx, MPI_COMM_WORLD);
  int K = argc > 1 ? atoi(argv[1]) : 0, nb = argc > 3 ? atoi(argv[3]) : 64;
  const char *how = argc > 2 ? argv[2] : "library";
  if (K < 1 || nb < 1 || (strcmp(how, "library") && strcmp(how, "query"))) {
    if (ctx.rank == 0) fprintf(stderr, "usage: bench_eigvalsh K [library|query] [nb]\n");
    MPI_Finalize();
    return 2;
  }
  imx_grid *g = NULL;
  imx_dmat *M = NULL;
  double *w = malloc((size_t)K * sizeof *w);
  imx_err e = w ? IMX_OK : IMX_ERR_NOMEM;
  if (!e) e = imx_grid_create(&ctx, 0, 0, &g);
  if (!e) e = imx_dmat_create(&ctx, g, K, nb, &M);
  int info = 0;
  double t[3] = {0};
  if (!e) {
    fill(M);
    MPI_Barrier(ctx.comm);
    double t0 = MPI_Wtime(), c0 = cpu_seconds();
    if (!strcmp(how, "library")) e = imx_linalg_dist_eigvalsh(&ctx, M, "benchmark matrix", w);
    else info = eigvalsh_query(M, w);
    t[0] = MPI_Wtime() - t0, t[1] = cpu_seconds() - c0, t[2] = peak_mib();
    MPI_Allreduce(MPI_IN_PLACE, t, 3, MPI_DOUBLE, MPI_MAX, ctx.comm);
  }
  if (ctx.rank == 0) {
    char load[128] = "";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fgets(load, sizeof load, f)) load[strcspn(load, "\n")] = 0;
    if (f) fclose(f);
    double sum = 0;
    for (int k = 0; !e && k < K; k++) sum += w[k];
    if (e || info) printf("%s K=%d P=%d: failed: %s (INFO %d)\n", how, K, ctx.size, ctx.msg, info);
    else
      printf(
          "%s K=%d P=%d grid %dx%d nb=%d: wall %.2f s, cpu %.2f s, peak RSS %.0f MiB "
          "(max over ranks); eigenvalues %.6e .. %.6e, sum %.12e; load %s\n",
          how, K, ctx.size, g->pr, g->pc, nb, t[0], t[1], t[2], w[0], w[K - 1], sum, load);
  }
  imx_dmat_free(&M);
  imx_grid_free(&g);
  free(w);
  imx_ctx_finalize(&ctx);
  MPI_Finalize();
  return e || info ? 1 : 0;
}
