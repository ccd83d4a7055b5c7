/* linalg: replicated LAPACK for K x K matrices (see include/imx/linalg.h). */
#include "imx/linalg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imx/blas.h"
#include "imx/timer.h"

/* From this K on, auto prefers scalapack (docs/performance.md): measured on
 * 2 cores, N = 8192, the scalapack backend was 7% (P = 1) and 3% (P = 2)
 * slower at K = 2048 and 9% and 18% faster at K = 4096, 25% and 34% at 8192. */
#define IMX_LINALG_CROSSOVER_K 4096

void imx_linalg_symmetrize_lower(int K, double *M) {
  for (int i = 0; i < K; i++)
    for (int j = 0; j < i; j++) M[(size_t)j * K + i] = M[(size_t)i * K + j];
}

imx_err imx_linalg_fail_not_spd(imx_ctx *ctx, const char *routine, const char *what, int info,
                                int K) {
  return imx_fail(ctx, IMX_ERR_NUMERIC,
                  "%s: %s INFO=%d (not positive definite), K=%d: the leading minor of "
                  "order %d is not positive, so unit %d is (nearly) a linear combination of "
                  "units 0..%d or has no variance. Hint: set objective.eps (e.g. 1e-6), use "
                  "fewer units, or check for dead or duplicate units",
                  what, routine, info, K, info, info - 1, info - 2 < 0 ? 0 : info - 2);
}

imx_err imx_linalg_logdet_inverse(imx_ctx *ctx, int K, double *M, const char *what,
                                  double *logdet) {
  for (size_t i = 0; i < (size_t)K * K; i++)
    if (!isfinite(M[i]))
      return imx_fail(ctx, IMX_ERR_NUMERIC, "%s (K=%d) has a non-finite entry at (%zu, %zu)", what,
                      K, i / K, i % K);
  int info = 0;
  /* Row-major lower = column-major upper: factor "U" of the column-major view. */
  dpotrf_("U", &K, M, &K, &info);
  if (info > 0) return imx_linalg_fail_not_spd(ctx, "dpotrf", what, info, K);
  if (info < 0) return imx_fail(ctx, IMX_ERR_INTERNAL, "dpotrf: argument %d illegal", -info);
  double ld = 0;
  for (int i = 0; i < K; i++) ld += log(M[(size_t)i * K + i]);
  *logdet = 2 * ld;
  dpotri_("U", &K, M, &K, &info);
  if (info != 0)
    return imx_fail(ctx, IMX_ERR_NUMERIC, "%s: dpotri INFO=%d (singular factor), K=%d", what, info,
                    K);
  /* Column-major upper holds the result: that is the row-major lower. */
  imx_linalg_symmetrize_lower(K, M);
  return IMX_OK;
}

imx_err imx_linalg_eigh(imx_ctx *ctx, int K, double *M, double *w) {
  int info = 0, lwork = -1, liwork = -1, iwq = 0;
  double wq = 0;
  dsyevd_("V", "U", &K, M, &K, w, &wq, &lwork, &iwq, &liwork, &info);
  lwork = (int)wq;
  liwork = iwq;
  double *work = malloc((size_t)lwork * sizeof *work);
  int *iwork = malloc((size_t)liwork * sizeof *iwork);
  if (!work || !iwork) {
    free(work);
    free(iwork);
    return imx_fail(ctx, IMX_ERR_NOMEM, "dsyevd workspace for K=%d", K);
  }
  /* Column-major: eigenvector i is column i, i.e. row i of our row-major M. */
  dsyevd_("V", "U", &K, M, &K, w, work, &lwork, iwork, &liwork, &info);
  free(work);
  free(iwork);
  if (info != 0) return imx_fail(ctx, IMX_ERR_NUMERIC, "dsyevd INFO=%d for K=%d", info, K);
  return IMX_OK;
}

/* ---- choice of backend ---- */

/* A "Key:   value kB" line of /proc/meminfo, in bytes; 0 if unknown. */
static double meminfo_bytes(const char *key) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  double v = 0;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl) && line[kl] == ':') {
      v = strtod(line + kl + 1, NULL) * 1024;
      break;
    }
  fclose(f);
  return v;
}

/* A number in a cgroup v2 file (memory.max is "max" when unlimited); 0 if none. */
static double cgroup_value(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char buf[64] = "";
  double v = 0;
  if (fgets(buf, sizeof buf, f) && buf[0] >= '0' && buf[0] <= '9') v = strtod(buf, NULL);
  fclose(f);
  return v;
}

imx_err imx_linalg_memory_per_rank(imx_ctx *ctx, double memory_mib, double *bytes) {
  if (memory_mib > 0) {
    *bytes = memory_mib * 1048576;
    return IMX_OK;
  }
  double avail = meminfo_bytes("MemAvailable");
  double limit = cgroup_value("/sys/fs/cgroup/memory.max");
  if (limit > 0) {
    double left = limit - cgroup_value("/sys/fs/cgroup/memory.current");
    if (left > 0 && (avail <= 0 || left < avail)) avail = left;
  }
  MPI_Comm node;
  int on_node = 1;
  IMX_MPI(ctx,
          MPI_Comm_split_type(ctx->comm, MPI_COMM_TYPE_SHARED, ctx->rank, MPI_INFO_NULL, &node));
  MPI_Comm_size(node, &on_node);
  MPI_Comm_free(&node);
  /* Unknown (0) on any rank makes the minimum 0: "no limit known". */
  double per = avail / on_node;
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &per, 1, MPI_DOUBLE, MPI_MIN, ctx->comm));
  *bytes = per;
  return IMX_OK;
}

int imx_linalg_crossover(int P) {
  /* The same K for P = 1 and 2 (measured). For more ranks the replicated
   * backend still repeats the O(K^3) work and the K x K sum on every rank
   * while the scalapack backend divides them, so the crossover can only move
   * down: keeping it fixed is conservative, and makes auto pick the same
   * backend for any P whenever memory does not decide. */
  (void)P;
  return IMX_LINALG_CROSSOVER_K;
}

/* "12.3 MiB", "4.5 GiB", "320 KiB": bytes for a reader. */
static const char *human(double bytes, char buf[32]) {
  if (bytes >= 1024.0 * 1048576) snprintf(buf, 32, "%.1f GiB", bytes / (1024.0 * 1048576));
  else if (bytes >= 1048576) snprintf(buf, 32, "%.1f MiB", bytes / 1048576);
  else snprintf(buf, 32, "%.0f KiB", bytes / 1024);
  return buf;
}

imx_linalg_kind imx_linalg_choose(imx_linalg_kind requested, int K, int P, double replicated_bytes,
                                  double scalapack_bytes, double avail, char *why, size_t len) {
  char rep[32], sl[32], av[32];
  human(replicated_bytes, rep), human(scalapack_bytes, sl), human(avail, av);
  if (requested == IMX_LINALG_REPLICATED) {
    snprintf(why, len, "parallel.linalg: replicated (%s per rank%s)", rep,
             avail > 0 && replicated_bytes > avail ? ", MORE than the memory available" : "");
    return IMX_LINALG_REPLICATED;
  }
  if (requested == IMX_LINALG_SCALAPACK) {
    snprintf(why, len, "parallel.linalg: scalapack (%s per rank)", sl);
    return IMX_LINALG_SCALAPACK;
  }
  int cross = imx_linalg_crossover(P);
  if (avail > 0 && replicated_bytes > 0.75 * avail) {
    snprintf(why, len,
             "auto: replicated K x K matrices need %s per rank, more than 3/4 of the %s "
             "available (scalapack: %s per rank)",
             rep, av, sl);
    return IMX_LINALG_SCALAPACK;
  }
  if (cross > 0 && K >= cross) {
    snprintf(why, len,
             "auto: K=%d >= %d, from where scalapack is faster on %d rank%s (%s per rank; "
             "replicated %s)",
             K, cross, P, P > 1 ? "s" : "", sl, rep);
    return IMX_LINALG_SCALAPACK;
  }
  char avs[64] = "memory not known";
  if (avail > 0) snprintf(avs, sizeof avs, "%s available", av);
  if (cross > 0)
    snprintf(why, len,
             "auto: fits (%s per rank, %s) and K=%d < %d, below which "
             "replicated is faster",
             rep, avs, K, cross);
  else
    snprintf(why, len, "auto: fits (%s per rank, %s); replicated is faster on %d rank%s", rep, avs,
             P, P > 1 ? "s" : "");
  return IMX_LINALG_REPLICATED;
}

imx_err imx_linalg_dgemm_rate(imx_ctx *ctx, int s, double *gflops) {
  *gflops = NAN;
  if (s <= 0) return IMX_OK;
  size_t ss = (size_t)s * s;
  double *a = malloc(3 * ss * sizeof *a);
  int bad = !a;
  imx_err e = IMX_MPI_ERR(ctx, MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, ctx->comm),
                          "MPI_Allreduce(dgemm probe)");
  if (!e && bad) e = imx_fail(ctx, IMX_ERR_NOMEM, "dgemm probe of %d x %d", s, s);
  if (e) {
    free(a);
    return e;
  }
  for (size_t i = 0; i < 3 * ss; i++) a[i] = (double)(i % 7) * 0.1 - 0.3;
  const double one = 1, zero = 0;
  double best = INFINITY;
  for (int r = 0; r < 4 && !e; r++) { /* the first call is a warm-up */
    e = IMX_MPI_ERR(ctx, MPI_Barrier(ctx->comm), "MPI_Barrier(dgemm probe)");
    double t = imx_now();
    dgemm_("N", "N", &s, &s, &s, &one, a, &s, a + ss, &s, &zero, a + 2 * ss, &s);
    t = imx_now() - t;
    if (r > 0 && t < best) best = t;
  }
  free(a);
  IMX_TRY(imx_agree(ctx, e));
  double rate = 2.0 * s * s * (double)s / best / 1e9;
  IMX_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &rate, 1, MPI_DOUBLE, MPI_MIN, ctx->comm));
  *gflops = rate;
  return IMX_OK;
}
